# One-time passwords at the SCEP endpoint (/otp/certsrv/mscep, pool "otp";
# /short/mscep, pool "short", passwords that live 2 seconds): a password
# enrolls once; reuse, unknown, revoked and expired passwords are refused
# with FAILURE badMessageCheck and a log line that says why; the retry of an
# answered transaction gets the same certificate; a transactionID reused for
# another CSR is badRequest; a CA refusal does not burn the password; and
# micromdm's scepclient, strongSwan's pki and certmonger (whose retry of an
# answered transaction must not be taken for a second use) each enroll with
# a password from the JSON API.
use strict;
use warnings;
use Test::More;
use File::Spec ();
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 ();
use Digest::SHA ();
use POSIX ();
use Time::HiRes ();
use ScepTest;

need_programs('build/scep-client', 'openssl', 'sqlite3');

my $client = program_path('build/scep-client');
my $W = tempdir();
my $json = JSON::PP->new;
my $SCEP = '/otp/certsrv/mscep';
my $ADMIN = '/otp/certsrv/mscep_admin/';
my $SHORT = '/short/mscep';
my $SHORT_ADMIN = '/short/admin/';

# everything here is bounded; the helpers below kill what they started
my @KILL;   # [pid, process group?]
sub stop_all {
    while (my $k = pop @KILL) {
        my ($pid, $group) = @$k;
        kill 'TERM', ($group ? -$pid : ()), $pid;
        for (1 .. 30) {
            last if waitpid($pid, POSIX::WNOHANG()) != 0;
            select(undef, undef, undef, 0.1);
        }
        if (kill 0, $pid) {
            kill 'KILL', ($group ? -$pid : ()), $pid;
            waitpid($pid, 0);
        }
    }
}
END { my $rc = $?; stop_all(); $? = $rc; }
$SIG{$_} = sub { stop_all(); exit 1 } for qw(INT TERM HUP);
$SIG{ALRM} = sub { diag('t/21-otp-enroll.t timed out'); stop_all(); exit 1 };
alarm 150;

# ---- the admin page's JSON API -----------------------------------------------------------
my $UA = HTTP::Tiny->new(max_redirect => 0, timeout => 30, keep_alive => 0,
                         agent => 'mod_scep-tests/1',
                         proxy => undef, http_proxy => undef);

sub new_password {
    my ($path, $user) = @_;
    my %h = (Accept => 'application/json');
    $h{Authorization} = 'Basic ' . MIME::Base64::encode_base64("$user:secret", '')
        if $user;
    my $res = $UA->get(base_url() . $path, { headers => \%h });
    my $d = eval { $json->decode($res->{content}) } || {};
    diag("$path: HTTP $res->{status} $res->{content}") unless $d->{password};
    return $d->{password};
}
sub otp_password { new_password($ADMIN, 'admin') }

# ---- the database, white-box -------------------------------------------------------------------
my $DB = File::Spec->catfile(top_dir(), 't', 'db', 'scep.db');
my $PWKEY = slurp(pki('otp.key'));

sub sql {
    my ($q) = @_;
    my $r = run_cmd(['sqlite3', '-readonly', '-batch', $DB, $q], timeout => 30);
    diag("sqlite3: $r->{err}") if $r->{rc};
    chomp(my $out = $r->{out});
    return $out;
}

sub pw_row {
    my ($pw) = @_;
    my $h = Digest::SHA::hmac_sha256_hex($pw, $PWKEY);
    my $out = sql("SELECT id, endpoint, state, COALESCE(transaction_id, ''), "
                  . "COALESCE(used_at, '') FROM scep_password WHERE hash = '$h'");
    return {} unless length $out;
    my %row;
    @row{qw(id endpoint state tid used_at)} = split /\|/, $out, 5;
    return \%row;
}

sub tx_rows {
    my ($pool, $tid) = @_;
    (my $q = $tid) =~ s/'/''/g;
    return sql("SELECT state || '|' || COALESCE(serial, '') FROM scep_transaction "
               . "WHERE endpoint = '$pool' AND transaction_id = '$q'");
}

# ---- the project's client ---------------------------------------------------------------------------
my $n = 0;

# enroll(PATH, PW, CN, key => FILE, tid => TID, args => [...])
sub enroll {
    my ($path, $pw, $cn, %o) = @_;
    $n++;
    my $key = $o{key} // "$W/key$n.pem";
    my $tid = $o{tid} // "t21-$$-$n";
    my $out = "$W/cert$n.pem";
    my $mark = log_mark();
    my $r = run_cmd([$client, 'enroll', base_url() . $path, '--key', $key,
                     '--out', $out, '--cn', $cn, '--tid', $tid,
                     (defined $pw ? ('--challenge', $pw) : ()),
                     @{ $o{args} || [] }], timeout => 60);
    $r->{cert} = $out;
    $r->{key} = $key;
    $r->{tid} = $tid;
    my $log = wait_log($mark, qr/SCEP0001[236]:[^\n]*transaction \Q$tid\E\b/);
    $r->{log} = join '', grep { /transaction \Q$tid\E\b/ } split /^/m, $log;
    return $r;
}

sub enroll_ok {
    my ($what, @args) = @_;
    my $r = enroll(@args);
    is($r->{rc}, 0, "$what: SUCCESS") or diag("$r->{cmd}\n$r->{out}$r->{err}$r->{log}");
    ok(-s $r->{cert} && openssl_verify($r->{cert}), "$what: certificate verifies");
    return $r;
}

sub enroll_refused {
    my ($what, $failinfo, $log_re, @args) = @_;
    my $r = enroll(@args);
    is($r->{rc}, 2, "$what: FAILURE") or diag("$r->{cmd}\n$r->{out}$r->{err}$r->{log}");
    like($r->{out}, qr/^failInfo: \Q$failinfo\E$/m, "$what: $failinfo");
    ok(!-e $r->{cert}, "$what: no certificate");
    like($r->{log}, qr/SCEP00012: PKCSReq refused \(\Q$failinfo\E\)/,
         "$what: SCEP00012 for transaction $r->{tid}") or diag($r->{log});
    like($r->{log}, $log_re, "$what: the log says why") or diag($r->{log});
    return $r;
}

sub serial_of {
    my $r = run_cmd(['openssl', 'x509', '-noout', '-serial', '-in', $_[0]], timeout => 30);
    my ($s) = $r->{out} =~ /serial=([0-9A-F]+)/i;
    return $s ? uc $s : undef;
}

# ---- a password of pool "short" now: it is used for the expiry check at the end -----------
my $short_pw = new_password($SHORT_ADMIN);
my $short_at = Time::HiRes::time();
ok($short_pw, '/short/admin/: a 2-second password');

# ==== a password enrolls once ===============================================================
{
    my $pw = otp_password();
    ok($pw, 'a one-time password from the JSON API');
    my $first = enroll_ok('first use', $SCEP, $pw, "once-$$");
    like($first->{log}, qr/SCEP00013: PKCSReq issued: transaction \Q$first->{tid}\E, .*challenge otp/,
         'first use: SCEP00013, challenge otp');
    my $row = pw_row($pw);
    is($row->{state}, '2', 'scep_password: used (state 2)');
    is($row->{tid}, $first->{tid}, 'scep_password: consumed by that transaction');
    like($row->{used_at}, qr/^\d+$/, 'scep_password: used_at set');

    enroll_refused('second use, another key', 'badMessageCheck',
                   qr/used already \(transaction \Q$first->{tid}\E\)/,
                   $SCEP, $pw, "twice-$$");
    enroll_refused('second use, the same CN', 'badMessageCheck', qr/used already/,
                   $SCEP, $pw, "once-$$");
    is(pw_row($pw)->{tid}, $first->{tid}, 'the refusals did not touch the row');

    # devices sometimes lower-case the hex; NDES passwords are uppercase
    my $pw2 = otp_password();
    enroll_ok('a password typed in lowercase', $SCEP, lc($pw2 // ''), "lower-$$");
    is(pw_row($pw2)->{state}, '2', 'the lowercase use consumed it');
}

# ==== unknown, missing, foreign ===================================================================
{
    my $unknown = join '', map { sprintf '%02X', int rand 256 } 1 .. 8;
    enroll_refused('an unknown password', 'badMessageCheck', qr/the password is unknown/,
                   $SCEP, $unknown, "unknown-$$");
    enroll_refused('no challengePassword', 'badMessageCheck', qr/no challenge password/,
                   $SCEP, undef, "nopw-$$");
    enroll_refused('the static password at the OTP endpoint', 'badMessageCheck',
                   qr/the password is unknown/, $SCEP, challenge(), "static-$$");
    # a password of pool "short" is not one of pool "otp"
    my $other = new_password($SHORT_ADMIN);
    enroll_refused('a password of another pool', 'badMessageCheck',
                   qr/the password is unknown/, $SCEP, $other, "otherpool-$$");
    is(pw_row($other)->{state}, '0', 'the foreign password stays unused in its pool');
}

# ==== the retry of an answered transaction =========================================================
{
    my $pw = otp_password();
    my $key = "$W/retry.pem";
    my $tid = "t21-retry-$$";
    my $cn = "retry-$$";
    my $a = enroll_ok('retry: the first request', $SCEP, $pw, $cn, key => $key, tid => $tid);
    my $b = enroll_ok('retry: the same request again (same tid, key, CN, password)',
                      $SCEP, $pw, $cn, key => $key, tid => $tid);
    my ($da, $db) = map { -s $_->{cert} ? pem_to_der($_->{cert}) : "none-$_" } $a, $b;
    ok($da eq $db, 'retry: the very same certificate (DER)');
    like($b->{log}, qr/SCEP00016: PKCSReq: transaction \Q$tid\E was answered before/,
         'retry: SCEP00016 (answered before)');
    unlike($b->{log}, qr/used already/, 'retry: not refused as "used already"');
    is(pw_row($pw)->{tid}, $tid, 'retry: the password is still the one used by that transaction');
    my $tx = tx_rows('otp', $tid);
    is(scalar(() = $tx =~ /^/mg), 1, 'retry: one scep_transaction row');
    like($tx, qr/^1\|[0-9A-F]+$/, 'retry: state issued, with a serial');

    enroll_refused('the same tid with another key', 'badRequest',
                   qr/transaction-id: this transactionID was used before with a different CSR/,
                   $SCEP, $pw, $cn, tid => $tid);
    enroll_refused('the same tid and key, another CN', 'badRequest',
                   qr/different CSR/, $SCEP, $pw, "$cn-x", key => $key, tid => $tid);
    my $c = enroll_ok('retry after the refusals still answers', $SCEP, $pw, $cn,
                      key => $key, tid => $tid);
    ok(-s $c->{cert} && pem_to_der($c->{cert}) eq $da, '... with the same certificate');
}

# ==== a CA refusal does not burn the password =======================================================
# The local CA rejects a CSR with neither a subject nor a subjectAltName
# (src/ca_local.c).  scep-client cannot make such a CSR (--cn "" is refused:
# an empty CN is not a valid X.509 name), so the CSR is built here in DER and
# sent with --content; it is signed with the key scep-client signs the
# message with, so it is an initial request and the password decides.
sub der_len {
    my ($l) = @_;
    return chr($l) if $l < 0x80;
    my $b = '';
    while ($l) { $b = chr($l & 0xff) . $b; $l >>= 8 }
    return chr(0x80 | length $b) . $b;
}
sub der { my ($tag, $c) = @_; return chr($tag) . der_len(length $c) . $c }

sub empty_subject_csr {
    my ($keyfile, $pw, $out) = @_;
    my $spki = run_cmd(['openssl', 'pkey', '-in', $keyfile, '-pubout', '-outform', 'DER'],
                       timeout => 30)->{out};
    my $cri = der(0x30, der(0x02, "\0")                       # version 0
                      . der(0x30, '')                         # subject: empty Name
                      . $spki
                      . der(0xA0, der(0x30,                    # attributes
                            der(0x06, pack('H*', '2a864886f70d010907'))   # challengePassword
                            . der(0x31, der(0x13, $pw)))));
    spit("$W/cri.der", $cri);
    my $s = run_cmd(['openssl', 'dgst', '-sha256', '-sign', $keyfile, '-out', "$W/cri.sig",
                     "$W/cri.der"], timeout => 30);
    die "openssl dgst: $s->{err}" if $s->{rc};
    my $sigalg = der(0x30, der(0x06, pack('H*', '2a864886f70d01010b')) . "\x05\x00");
    spit($out, der(0x30, $cri . $sigalg . der(0x03, "\0" . slurp("$W/cri.sig"))));
    return $out;
}

{
    my $chk = run_cmd([$client, 'enroll', base_url() . $SCEP, '--key', "$W/emptycn.pem",
                       '--cn', '', '--challenge', 'X', '--out', "$W/emptycn-cert.pem"],
                      timeout => 30);
    isnt($chk->{rc}, 0, 'scep-client cannot send an empty CN (so the CSR is made here)');

    my $pw = otp_password();
    my $key = new_rsa_key("$W/nosubject.pem");
    my $csr = empty_subject_csr($key, $pw, "$W/nosubject.der");
    my $v = run_cmd(['openssl', 'req', '-inform', 'DER', '-in', $csr, '-noout', '-verify',
                     '-subject', '-text'], timeout => 30);
    ok($v->{rc} == 0 && ($v->{out} . $v->{err}) =~ /verify OK/i, 'the hand-made CSR verifies')
        or diag("$v->{out}$v->{err}");
    like($v->{out}, qr/challengePassword\s*:\s*\Q$pw\E/, '... and carries the password');

    my $r = enroll_refused('CSR without subject or SAN: the CA rejects it', 'badRequest',
                           qr/ca-provider: CA provider local rejected the request: CSR has neither a subject nor subjectAltName/,
                           $SCEP, undef, 'ignored', key => $key,
                           args => ['--content', $csr]);
    my $row = pw_row($pw);
    is($row->{state}, '0', 'after the CA refusal the password is unused again (state 0)');
    is($row->{tid}, '', '... and not tied to the transaction');
    is(tx_rows('otp', $r->{tid}), '', '... and the transaction is forgotten');

    enroll_ok('the same password, a proper CSR', $SCEP, $pw, "after-ca-$$");
    is(pw_row($pw)->{state}, '2', '... consumes it');
    # the refused transactionID (same key) can be used again too
    my $again = enroll_ok('the refused transactionID with a proper CSR and a new password',
                          $SCEP, otp_password(), "after-ca2-$$", key => $key,
                          tid => $r->{tid});
}

# ==== revoked ========================================================================================
{
    my $pw = otp_password();
    my $id = pw_row($pw)->{id};
    my $res = $UA->request('POST', base_url() . "$ADMIN?revoke=$id",
        { headers => { Accept => 'application/json', Authorization => 'Basic '
                       . MIME::Base64::encode_base64('admin:secret', '') } });
    is($res->{status}, 200, 'revoked through the admin page');
    enroll_refused('a revoked password', 'badMessageCheck', qr/revoked by an administrator/,
                   $SCEP, $pw, "revoked-$$");
}

# ==== interop: micromdm, strongSwan, certmonger, each with its own password ========================

# a program a part needs: missing means skip here, a failure in CI
sub have {
    my @missing = grep { !program_path($_) } @_;
    return 1 unless @missing;
    fail("missing program(s) @missing (CI=true)") if in_ci();
    return 0;
}

sub used_by_one {
    my ($what, $pw, $cn) = @_;
    my $row = pw_row($pw);
    is($row->{state}, '2', "$what: the password is used");
    my $sub = sql("SELECT subject FROM scep_transaction WHERE endpoint = 'otp' "
                  . "AND transaction_id = '" . (($row->{tid} // '') =~ s/'/''/gr) . "'");
    like($sub, qr/CN=\Q$cn\E/, "$what: by the transaction of CN=$cn");
}

SKIP: {
    skip 'micromdm scepclient is not installed', 6 unless have('scepclient');
    my $pw = otp_password();
    my $d = "$W/micromdm";
    mkdir $d;
    my $cn = "micromdm-otp-$$";
    my $r = run_cmd(['sh', '-c', 'cd "$1" && shift && exec "$@"', 'sh', $d,
                     'scepclient', '-server-url', base_url() . $SCEP, '-challenge', $pw,
                     '-private-key', "$d/key.pem", '-certificate', "$d/cert.pem",
                     '-cn', $cn], timeout => 60);
    is($r->{rc}, 0, 'micromdm scepclient enrolls with a one-time password')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    ok(-s "$d/cert.pem" && openssl_verify("$d/cert.pem"), 'micromdm: certificate verifies');
    is(-s "$d/cert.pem" ? cert_cn("$d/cert.pem") : undef, $cn, "micromdm: CN=$cn");
    used_by_one('micromdm', $pw, $cn);
}

SKIP: {
    skip 'strongSwan pki is not installed', 6 unless have('pki');
    my $pw = otp_password();
    my $cn = "strongswan-otp-$$";
    my $g = run_cmd(['pki', '--gen', '--type', 'rsa', '--size', '2048', '--outform', 'pem'],
                    timeout => 60);
    spit("$W/sw-key.pem", $g->{out});
    my $r = run_cmd(['pki', '--scep', '--url', base_url() . $SCEP, '--in', "$W/sw-key.pem",
                     '--dn', "CN=$cn", '--password', $pw,
                     '--cacert-enc', pki('ra-enc.pem'), '--cacert-sig', pki('ra-sign.pem'),
                     '--cacert', pki('ca.pem'), '--interval', '2', '--maxpolltime', '30',
                     '--outform', 'pem'], timeout => 60);
    is($r->{rc}, 0, 'strongSwan pki --scep enrolls with a one-time password')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    spit("$W/sw-cert.pem", $r->{out});
    ok(openssl_verify("$W/sw-cert.pem"), 'strongSwan: certificate verifies');
    is(cert_cn("$W/sw-cert.pem"), $cn, "strongSwan: CN=$cn");
    used_by_one('strongSwan', $pw, $cn);
}

# certmonger goes through a proxy that passes everything but swallows the
# reply to the first PKIOperation (the server has issued by then): certmonger
# sees "Server returned nothing", and "getcert refresh" makes it send the
# same PKCSReq (same transactionID) again -- which must get the certificate
# issued the first time, not "the password has been used already".
sub start_proxy {
    my ($drop, $logfile) = @_;
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                    Listen => 16, ReuseAddr => 1)
        or die "proxy: $!";
    my $up = port();
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP ALRM);
        $SIG{PIPE} = 'IGNORE';
        open my $log, '>', $logfile or POSIX::_exit(1);
        $log->autoflush(1);
        my $dropped = 0;
        while (my $c = $srv->accept) {
            my $head = '';
            while (defined(my $l = <$c>)) { $head .= $l; last if $l eq "\r\n" }
            my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
            my $body = '';
            read($c, $body, $len) if $len;
            $head =~ s/^Connection:[^\n]*\n//mig;
            $head =~ s/\r\n\r\n\z/\r\nConnection: close\r\n\r\n/;
            my $u = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$up", Timeout => 30);
            my $resp = '';
            if ($u) {
                print $u $head, $body;
                local $/;
                $resp = <$u> // '';
                close $u;
            }
            my ($line) = $head =~ /^(\S+ \S{0,60})/;
            if ($head =~ /operation=PKIOperation/ && $dropped < $drop) {
                $dropped++;
                print $log "dropped reply: $line\n";
                close $c;
                next;
            }
            print $log "passed: $line\n";
            print $c $resp;
            close $c;
        }
        POSIX::_exit(0);
    }
    my $lport = $srv->sockport;
    close $srv;
    push @KILL, [$pid, 0];
    return $lport;
}

SKIP: {
    my $daemon = '/usr/lib/certmonger/certmonger-session';
    skip 'certmonger is not installed', 12 unless have('getcert', $daemon);
    my $pw = otp_password();
    my $cm = "$W/cm";
    mkdir $cm;
    mkdir "$cm/$_" or die "mkdir $cm/$_: $!" for qw(cfg req cas local tmp);
    local %ENV = (%ENV,
        CERTMONGER_CONFIG_DIR => "$cm/cfg", CERTMONGER_REQUESTS_DIR => "$cm/req",
        CERTMONGER_CAS_DIR => "$cm/cas", CERTMONGER_LOCAL_CA_DIR => "$cm/local",
        CERTMONGER_TMPDIR => "$cm/tmp", CERTMONGER_PVT_ADDRESS => "unix:path=$cm/sock");
    my $pport = start_proxy(1, "$cm/proxy.log");
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$cm/daemon.log";
        open STDERR, '>&', \*STDOUT;
        { exec $daemon, '-n', '-L', '-P', "$cm/sock" }
        POSIX::_exit(127);
    }
    push @KILL, [$pid, 1];
    for (1 .. 100) { last if -S "$cm/sock"; select(undef, undef, undef, 0.1) }
    ok(-S "$cm/sock", 'certmonger-session on its private socket')
        or skip 'no certmonger daemon', 11;

    my $getcert = sub { run_cmd(['getcert', @_], timeout => 60) };
    my $r = $getcert->('add-scep-ca', '-c', 'OTP', '-u', "http://127.0.0.1:$pport$SCEP");
    is($r->{rc}, 0, 'getcert add-scep-ca (through the proxy)') or diag("$r->{out}$r->{err}");

    my $cn = "certmonger-otp-$$";
    my $mark = log_mark();
    $r = $getcert->('request', '-c', 'OTP', '-k', "$cm/key.pem", '-f', "$cm/cert.pem",
                    '-N', "CN=$cn", '-L', $pw, '-I', 'otp', '-w', '--wait-timeout', '30');
    my $first = wait_log($mark, qr/SCEP00013: PKCSReq issued: transaction \d+, subject CN=\Q$cn\E/);
    my ($tid, $serial) = $first =~
        /SCEP00013: PKCSReq issued: transaction (\d+), subject CN=\Q$cn\E, serial ([0-9A-F]+)/;
    ok($tid, "certmonger's first PKCSReq was issued (transaction " . ($tid // '?') . ')')
        or diag($first . "\n" . slurp("$cm/proxy.log"));
    like(slurp("$cm/proxy.log"), qr/dropped reply: GET \S*operation=PKIOperation/,
         'the proxy swallowed the reply');
    my $list = $getcert->('list', '-i', 'otp');
    unlike($list->{out}, qr/status:\s*MONITORING/, 'certmonger has no certificate yet')
        or diag($list->{out});

    $mark = log_mark();
    $r = $getcert->('refresh', '-i', 'otp');
    is($r->{rc}, 0, 'getcert refresh (certmonger sends the request again)')
        or diag("$r->{out}$r->{err}");
    my $deadline = time + 30;
    do { $list = $getcert->('list', '-i', 'otp'); select(undef, undef, undef, 0.2) }
        until $list->{out} =~ /status:\s*MONITORING/ || time > $deadline;
    like($list->{out}, qr/status:\s*MONITORING/, 'certmonger: MONITORING after the retry')
        or diag("$list->{out}\n" . slurp("$cm/proxy.log") . slurp("$cm/daemon.log"));
    my $retry = log_since($mark);
    my ($qt, $qs) = ($tid // '-', $serial // '-');
    my @lines = grep { /transaction \Q$qt\E\b/ } split /^/m, $retry;
    like(join('', @lines), qr/SCEP00016: PKCSReq: transaction \d+ was answered before: the same certificate again \(serial \Q$qs\E\)/,
         'the retry (same transactionID) was answered from the store')
        or diag($retry);
    unlike(join('', @lines), qr/used already|SCEP00012/, 'the retry was not refused');
    ok(-s "$cm/cert.pem" && openssl_verify("$cm/cert.pem"), 'certmonger: certificate verifies');
    is(-s "$cm/cert.pem" ? serial_of("$cm/cert.pem") : undef, $serial,
       'certmonger got the certificate issued the first time');
    is(pw_row($pw)->{tid}, $tid // '-', 'the password was used once, by that transaction');
    $getcert->('stop-tracking', '-i', 'otp');
}
stop_all();

# ==== expiry (pool "short": 2 seconds) =============================================================
{
    my $fresh = new_password($SHORT_ADMIN);
    enroll_ok('/short: a password used at once', $SHORT, $fresh, "short-ok-$$");

    my $wait = $short_at + 3 - Time::HiRes::time();
    Time::HiRes::sleep($wait) if $wait > 0;
    enroll_refused('/short: a password used after 3 seconds', 'badMessageCheck',
                   qr/the password expired \d+ seconds ago/, $SHORT, $short_pw, "short-late-$$");
    is(pw_row($short_pw)->{state}, '0', 'the expired password was not consumed');
}

alarm 0;
done_testing;
