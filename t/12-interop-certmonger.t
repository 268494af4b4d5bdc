# Interop: certmonger (a private certmonger-session daemon on a unix socket,
# no system D-Bus) against the NDES endpoint.  certmonger does PKIOperation
# as a GET with standard base64 (~3.5 KB query), picks the keyEncipherment RA
# certificate itself and takes the first cipher of GetCACaps it knows.
use strict;
use warnings;
use Test::More;
use POSIX ();
use ScepTest;

my $daemon = '/usr/lib/certmonger/certmonger-session';
need_programs('getcert', $daemon, 'openssl');

my $W = tempdir();
mkdir "$W/$_" or die "mkdir $W/$_: $!" for qw(cfg req cas local tmp);
my %env = (
    CERTMONGER_CONFIG_DIR    => "$W/cfg",
    CERTMONGER_REQUESTS_DIR  => "$W/req",
    CERTMONGER_CAS_DIR       => "$W/cas",
    CERTMONGER_LOCAL_CA_DIR  => "$W/local",
    CERTMONGER_TMPDIR        => "$W/tmp",
    CERTMONGER_PVT_ADDRESS   => "unix:path=$W/sock",
);
@ENV{keys %env} = values %env;

# ---- the private daemon: started here, killed on every path -------------------------
my $pid;
sub stop_daemon {
    return unless $pid;
    my $p = $pid;
    undef $pid;
    kill 'TERM', -$p, $p;
    for (1 .. 50) {
        last if waitpid($p, POSIX::WNOHANG()) == $p;
        select(undef, undef, undef, 0.1);
    }
    if (kill 0, $p) {
        kill 'KILL', -$p, $p;
        waitpid($p, 0);
    }
}
END { my $rc = $?; stop_daemon(); $? = $rc; }
$SIG{$_} = sub { stop_daemon(); exit 1 } for qw(INT TERM HUP PIPE);
$SIG{ALRM} = sub { diag('certmonger test timed out'); stop_daemon(); exit 1 };
alarm 240;

$pid = fork;
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    POSIX::setpgid(0, 0);
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', "$W/daemon.log";
    open STDERR, '>&', \*STDOUT;
    { exec $daemon, '-n', '-L', '-P', "$W/sock" }
    POSIX::_exit(127);
}
for (1 .. 100) {
    last if -S "$W/sock";
    select(undef, undef, undef, 0.1);
}
ok(-S "$W/sock", 'certmonger-session listens on its private socket')
    or do { diag(slurp("$W/daemon.log")); stop_daemon(); done_testing; exit 1 };

sub getcert { run_cmd(['getcert', @_], timeout => 120) }

sub daemon_log { -e "$W/daemon.log" ? slurp("$W/daemon.log") : '' }

# ---- CA, then one request ----------------------------------------------------------------
my $r = getcert('add-scep-ca', '-c', 'T', '-u', NDES_URL());
is($r->{rc}, 0, 'getcert add-scep-ca') or diag("$r->{cmd}\n$r->{out}$r->{err}");

my $cn = "certmonger-$$";
$r = getcert('request', '-c', 'T', '-k', "$W/key.pem", '-f', "$W/cert.pem",
             '-N', "CN=$cn", '-L', challenge(), '-I', 't',
             '-w', '--wait-timeout', '90');
is($r->{rc}, 0, 'getcert request -w exits 0') or diag("$r->{cmd}\n$r->{out}$r->{err}");

my $list = getcert('list', '-i', 't');
like($list->{out}, qr/status:\s*MONITORING/, 'request status MONITORING')
    or diag("$list->{out}$list->{err}\n--- daemon log:\n" . daemon_log());
ok(-s "$W/cert.pem", 'certificate written');
my ($ok, $v) = openssl_verify("$W/cert.pem");
ok($ok, 'openssl verify -CAfile t/pki/ca.pem: OK') or diag($v->{out} . $v->{err});
is(cert_cn("$W/cert.pem"), $cn, "subject CN=$cn")
    or diag('subject: ' . (cert_subject("$W/cert.pem") // '?'));

# the CA certificate certmonger fetched is ours
like($list->{out}, qr/CA:\s*T\b/, 'request uses CA T');

$r = getcert('stop-tracking', '-i', 't');
is($r->{rc}, 0, 'getcert stop-tracking');

stop_daemon();
alarm 0;
done_testing;
