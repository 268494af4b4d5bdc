#!/usr/bin/perl
# t/bin/cmp-listener.pl SILENT-PORT GARBAGE-PORT -- two bad upstream CAs for
# t/60-cmp.t, started by t/setup/cmp.sh, on 127.0.0.1:
#
#   SILENT-PORT   accepts connections, reads, and never answers (a CA that
#                 hangs: the cmp provider's timeout= must end the wait)
#   GARBAGE-PORT  answers every request "HTTP/1.0 200 OK" with the CMP
#                 content type and bytes that are no CMP message
#
# Prints "ready" once both listen.  Runs until killed (TERM).
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;

my ($silent_port, $garbage_port) = @ARGV;
die "usage: $0 SILENT-PORT GARBAGE-PORT\n" unless $garbage_port;

$SIG{PIPE} = 'IGNORE';
$SIG{TERM} = sub { exit 0 };

my %listen;
for my $p ([silent => $silent_port], [garbage => $garbage_port]) {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $p->[1], Listen => 64,
                                  ReuseAddr => 1)
        or die "cannot listen on 127.0.0.1:$p->[1]: $!\n";
    $listen{fileno $s} = [$p->[0], $s];
}
$| = 1;
print "ready\n";

my $sel = IO::Select->new(map { $_->[1] } values %listen);
my %kept;    # the silent connections, held open (closed after 10 minutes)
my %inbuf;   # what a garbage connection sent so far
while (1) {
    for my $fh ($sel->can_read(1)) {
        my $l = $listen{fileno $fh};
        if ($l) {
            my $c = $fh->accept or next;
            if ($l->[0] eq 'silent') {
                $kept{fileno $c} = [$c, time];
                next;
            }
            $sel->add($c);
            next;
        }
        # a garbage connection: read the whole request, answer nonsense
        my $buf = '';
        my $n = sysread($fh, $buf, 65536);
        $inbuf{fileno $fh} .= $buf if $n;
        my $req = $inbuf{fileno $fh} // '';
        my ($head) = $req =~ /^(.*?\r\n\r\n)/s;
        my ($len) = ($head // '') =~ /^Content-Length:\s*(\d+)/mi;
        if ($n && !(defined $head && length($req) >= length($head) + ($len // 0))) {
            next;    # more to come
        }
        if ($n) {
            my $body = "this is not a CMP message\n";
            syswrite($fh, "HTTP/1.0 200 OK\r\n"
                          . "Content-Type: application/pkixcmp\r\n"
                          . "Content-Length: " . length($body) . "\r\n"
                          . "Connection: close\r\n\r\n" . $body);
        }
        delete $inbuf{fileno $fh};
        $sel->remove($fh);
        close $fh;
    }
    for my $k (keys %kept) {
        delete $kept{$k} if time - $kept{$k}[1] > 600;
    }
}
