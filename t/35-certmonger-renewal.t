# certmonger's renewal against /renew/mscep (revoke-replaced=on): a tracked
# request, then "getcert rekey" (a new key, the request signed with the old
# certificate and key) and "getcert resubmit" (the same key again).  Each
# gets a new certificate without the password being checked, and the
# replaced one is revoked (superseded).  A private certmonger-session on a
# unix socket, as in t/12-interop-certmonger.t.
use strict;
use warnings;
use Test::More;
use POSIX ();
use ScepTest;
use Scep8894;

my $daemon = '/usr/lib/certmonger/certmonger-session';
need_programs('getcert', $daemon, 'openssl', 'build/scep-client');

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
$SIG{ALRM} = sub { diag('certmonger renewal test timed out'); stop_daemon(); exit 1 };
alarm 150;

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

sub getcert { run_cmd(['getcert', @_], timeout => 100) }
sub daemon_log { -e "$W/daemon.log" ? slurp("$W/daemon.log") : '' }

sub wait_for {
    my ($secs, $code) = @_;
    my $v;
    for (1 .. $secs * 2) {
        return $v if ($v = $code->());
        select(undef, undef, undef, 0.5);
    }
    return $code->();
}

sub admin_status {
    my ($serial) = @_;
    my $r = admin_get('/manual/admin/?certs');
    my ($row) = grep { uc($_->{serial}) eq $serial }
                @{ ($r->{json} || {})->{certificates} || [] };
    return $row;
}

# the CRL by GetCRL on /renew/mscep lists SERIAL as superseded (10 s)
sub crl_superseded {
    my ($serial, $any_cert) = @_;
    my $crl = "$W/crl-$serial.pem";
    return wait_for(10, sub {
        my $r = scep('getcrl', '/renew/mscep', '--cert', $any_cert, '--out', $crl);
        return undef unless $r->{rc} == 0;
        my $s = crl_serials(crl_text($crl));
        return exists $s->{$serial} ? $s->{$serial} : undef;
    });
}

# where the certificate is: the serial changing (certmonger writes the file)
sub wait_new_cert {
    my ($file, $old) = @_;
    return wait_for(60, sub {
        my $l = getcert('list', '-i', 't');
        return undef unless $l->{out} =~ /status:\s*MONITORING/;
        my $s = -s $file ? cert_serial($file) : undef;
        return $s && $s ne $old ? $s : undef;
    });
}

my $url = base_url() . '/renew/mscep';
my $r = getcert('add-scep-ca', '-c', 'R', '-u', $url);
is($r->{rc}, 0, 'getcert add-scep-ca /renew/mscep') or diag("$r->{cmd}\n$r->{out}$r->{err}");

my $cn = "certmonger-renew-$$";
$r = getcert('request', '-c', 'R', '-k', "$W/key.pem", '-f', "$W/cert.pem",
             '-N', "CN=$cn", '-L', challenge(), '-I', 't',
             '-w', '--wait-timeout', '60');
is($r->{rc}, 0, 'getcert request -w') or diag("$r->{cmd}\n$r->{out}$r->{err}\n" . daemon_log());
ok(-s "$W/cert.pem" && openssl_verify("$W/cert.pem"), 'the first certificate verifies');
my $s0 = -s "$W/cert.pem" ? cert_serial("$W/cert.pem") : 'none';
my $k0 = -s "$W/key.pem" ? slurp("$W/key.pem") : '';

# ---- getcert rekey: a new key, signed with the old certificate ------------------------------
my $mark = log_mark();
$r = getcert('rekey', '-i', 't', '-w', '--wait-timeout', '60');
is($r->{rc}, 0, 'getcert rekey -w') or diag("$r->{cmd}\n$r->{out}$r->{err}\n" . daemon_log());
my $s1 = wait_new_cert("$W/cert.pem", $s0);
ok($s1, 'rekey: a new certificate (new serial)')
    or diag(getcert('list', '-i', 't')->{out} . daemon_log());
$s1 //= 'none';
ok(openssl_verify("$W/cert.pem"), 'rekey: it verifies');
is(cert_cn("$W/cert.pem"), $cn, "rekey: CN=$cn");
isnt(slurp("$W/key.pem"), $k0, 'rekey: a new key');
my $log = wait_log($mark, qr/SCEP00013: \w+ issued: .*serial \Q$s1\E/);
like($log, qr/SCEP00013: (?:PKCSReq|RenewalReq) issued: transaction \S+, subject CN=\Q$cn\E, serial \Q$s1\E, profile Renew, .*renewal of serial \Q$s0\E/,
     'rekey: logged as a renewal of the old serial (no password path)');
my ($mt) = $log =~ /SCEP00013: (\w+) issued: .*serial \Q$s1\E/;
note('certmonger renewed with ' . ($mt // '?'));
is(crl_superseded($s0, "$W/cert.pem"), 'Superseded', 'rekey: the CRL lists the old serial as superseded');
is((admin_status($s0) || {})->{status}, 'revoked', 'rekey: admin ?certs: the old one revoked');

# ---- getcert resubmit: the same key again -----------------------------------------------
$mark = log_mark();
my $k1 = slurp("$W/key.pem");
$r = getcert('resubmit', '-i', 't', '-w', '--wait-timeout', '60');
is($r->{rc}, 0, 'getcert resubmit -w') or diag("$r->{cmd}\n$r->{out}$r->{err}\n" . daemon_log());
my $s2 = wait_new_cert("$W/cert.pem", $s1);
ok($s2, 'resubmit: a new certificate (new serial)')
    or diag(getcert('list', '-i', 't')->{out} . daemon_log());
$s2 //= 'none';
is(slurp("$W/key.pem"), $k1, 'resubmit: the same key');
$log = wait_log($mark, qr/SCEP00013: \w+ issued: .*serial \Q$s2\E/);
like($log, qr/SCEP00013: (?:PKCSReq|RenewalReq) issued: transaction \S+, subject CN=\Q$cn\E, serial \Q$s2\E, profile Renew, .*renewal of serial \Q$s1\E/,
     'resubmit: logged as a renewal of the previous serial');
is(crl_superseded($s1, "$W/cert.pem"), 'Superseded', 'resubmit: the CRL lists the previous serial as superseded');
is((admin_status($s1) || {})->{status}, 'revoked', 'resubmit: admin ?certs: the previous one revoked');
is((admin_status($s2) || {})->{status}, 'valid', 'resubmit: admin ?certs: the new one valid');

$r = getcert('stop-tracking', '-i', 't');
is($r->{rc}, 0, 'getcert stop-tracking');
stop_daemon();
alarm 0;
done_testing;
