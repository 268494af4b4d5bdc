# The "cmp" CA provider against OpenSSL's mock CMP server (t/setup/cmp.sh,
# t/conf/provider-cmp.conf.in): enrollment with a shared secret (PBM) and
# with a signature-protected RA certificate, the upstream CA's "waiting"
# answer as SCEP PENDING and the certificate on poll, and every way the
# upstream can fail -- refusal, a certificate for another key, responses
# nobody can trust, no answer within timeout=, garbage, a closed port --
# each a FAILURE with a one-line reason in the error log that names the
# provider, and a one-time password the failure did not consume.
#
# The mock server returns one fixed certificate (t/pki/cmp/ee.pem), made
# for the key t/pki/cmp/ee.key; every enrollment here uses that key, so
# each gets its own --tid.
use strict;
use warnings;
use Test::More;
use File::Spec;
use HTTP::Tiny;
use JSON::PP ();
use ScepTest;

need_programs('build/scep-client', 'openssl');

my $CMP = pki('cmp');
unless (-s "$CMP/ports" && -s "$CMP/ee.pem") {
    plan(skip_all => 't/pki/cmp is missing: t/setup/cmp.sh did not run '
                   . '(run the suite with t/run-tests.sh)');
}
my %PORT = map { /^(\w+)=(\d+)$/ ? ($1 => $2) : () }
           split /\n/, slurp("$CMP/ports");

my $client = program_path('build/scep-client');
my $W = tempdir();
my $pw = challenge();
my $KEY = "$CMP/ee.key";
my $CN = 'cmp-enrollee';
my $n = 0;

sub tid { sprintf 'cmp-%s-%d-%d-%d', $_[0], $$, time, ++$n }

# scep(CMD, PATH, TID, extra args): the project client with the known key
sub scep {
    my ($cmd, $path, $tid, @args) = @_;
    my $out = "$W/$tid.pem";
    my $r = run_cmd([$client, $cmd, base_url() . $path, '--key', $KEY,
                     '--cn', $CN, '--tid', $tid, '--out', $out, @args],
                    timeout => 120);
    $r->{file} = $out;
    return $r;
}

sub der_of {
    my ($file) = @_;
    my $r = run_cmd(['openssl', 'x509', '-in', $file, '-outform', 'DER'],
                    timeout => 30);
    return $r->{rc} == 0 ? $r->{out} : '';
}
my $MOCK_DER = der_of("$CMP/ee.pem");
ok(length $MOCK_DER, "the mock's certificate t/pki/cmp/ee.pem");

# issued(WHAT, RESULT): SUCCESS and the certificate is the mock's, chained
# to the upstream CA
sub issued {
    my ($what, $r) = @_;
    my $ok = is($r->{rc}, 0, "$what: SUCCESS (exit 0)");
    diag("$r->{cmd}\n$r->{out}$r->{err}") unless $ok;
    like($r->{out}, qr/^status: SUCCESS$/m, "$what: status SUCCESS");
    ok(-s $r->{file} && der_of($r->{file}) eq $MOCK_DER,
       "$what: the certificate is the one the upstream CA returned");
    my ($v, $vr) = -s $r->{file} ? openssl_verify($r->{file}, "$CMP/upca.pem")
                                 : (0, { out => 'no file', err => '' });
    ok($v, "$what: it verifies against the upstream CA")
        or diag("$vr->{out}$vr->{err}");
}

# refused(WHAT, RESULT, TID, MARK, FAILINFO, REASON-RE): FAILURE, nothing
# issued, and the error log line of this transaction names the provider and
# matches REASON-RE
sub refused {
    my ($what, $r, $tid, $mark, $failinfo, $re) = @_;
    is($r->{rc}, 2, "$what: FAILURE (exit 2)")
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    like($r->{out}, qr/^failInfo: \Q$failinfo\E$/m, "$what: failInfo $failinfo")
        or diag($r->{out});
    ok(!-e $r->{file}, "$what: no certificate");
    my $line_re = qr/SCEP\d{5}: .*refused \(\Q$failinfo\E\), transaction \Q$tid\E, ca-provider: CA provider cmp [^\n]*/;
    my $log = wait_log($mark, $line_re);
    my ($line) = $log =~ /($line_re)/;
    ok($line, "$what: an error log line for the transaction naming the provider")
        or diag(join "\n", grep { /\Q$tid\E/ } split /\n/, $log);
    like($line // '', $re, "$what: ... and the reason") or diag($line // $log);
    return $line // '';
}

# ---- 1. enrollment --------------------------------------------------------------------
{
    my $tid = tid('pbm');
    issued('shared secret (PBM)', scep('enroll', '/cmp/pbm', $tid,
                                       '--challenge', $pw));
}
{
    my $tid = tid('sig');
    issued('signature-protected RA certificate, implicit confirm',
           scep('enroll', '/cmp/sig', $tid, '--challenge', $pw));
}
{
    my $tid = tid('pbm-get');
    issued('shared secret, GET', scep('enroll', '/cmp/pbm', $tid,
                                      '--challenge', $pw, '--get'));
}

# ---- 2. "waiting": PENDING, then the certificate ----------------------------------------
{
    my $tid = tid('poll');
    my $mark = log_mark();
    my $r = scep('enroll', '/cmp/poll', $tid, '--challenge', $pw);
    is($r->{rc}, 3, 'the CA answers "waiting": PENDING (exit 3)')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    like($r->{out}, qr/^status: PENDING$/m, '... status PENDING');
    like(wait_log($mark, qr/pending at CA provider cmp: transaction \Q$tid\E/),
         qr/pending at CA provider cmp: transaction \Q$tid\E/,
         '... logged as pending at CA provider cmp');
    sleep 1;   # the mock's checkAfter
    issued('CertPoll: the CA delivers on the pollReq',
           scep('poll', '/cmp/poll', $tid));
    issued('CertPoll again: the same certificate from the store',
           scep('poll', '/cmp/poll', $tid));
}
{
    # two pollReqs: the second one answers the CA's latest nonce, which
    # only the reference poll() returned knows
    my $tid = tid('poll2');
    my $r = scep('enroll', '/cmp/poll2', $tid, '--challenge', $pw);
    is($r->{rc}, 3, 'poll2: PENDING (exit 3)')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    sleep 1;
    $r = scep('poll', '/cmp/poll2', $tid);
    is($r->{rc}, 3, 'poll2: still waiting after the first pollReq: PENDING')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    sleep 1;
    # a repeated PKCSReq with the same transactionID is a poll too
    my $r2 = scep('enroll', '/cmp/poll2', $tid, '--challenge', $pw);
    is($r2->{rc}, 0, 'poll2: repeated PKCSReq: SUCCESS on the second pollReq')
        or diag("$r2->{cmd}\n$r2->{out}$r2->{err}");
}

# ---- 3. the upstream CA fails ------------------------------------------------------------
{
    my $tid = tid('reject');
    my $mark = log_mark();
    my $r = scep('enroll', '/cmp/reject', $tid, '--challenge', $pw);
    refused('PKIStatus rejection', $r, $tid, $mark, 'badRequest',
            qr/rejected the request: CMP p10cr at http:\/\/127\.0\.0\.1:$PORT{reject}\/pkix\/ rejected: PKIStatus: rejection; PKIFailureInfo: badRequest; StatusString: "refused by the test CA policy"/);
}
{
    my $tid = tid('wrongkey');
    my $mark = log_mark();
    my $r = scep('enroll', '/cmp/wrongkey', $tid, '--challenge', $pw);
    refused('a certificate for another key', $r, $tid, $mark, 'badRequest',
            qr/rejected the request: CMP p10cr .*public key/);
}
{
    my $tid = tid('untrusted');
    my $mark = log_mark();
    my $r = scep('enroll', '/cmp/untrusted', $tid, '--challenge', $pw);
    refused('responses signed by a CA not in trusted=', $r, $tid, $mark,
            'badRequest', qr/failed: CMP p10cr at \S+ failed: .*error validating protection/);
}
{
    my $tid = tid('slow');
    my $mark = log_mark();
    my $t0 = time;
    my $r = scep('enroll', '/cmp/slow', $tid, '--challenge', $pw);
    my $took = time - $t0;
    refused('no answer within timeout=2', $r, $tid, $mark, 'badRequest',
            qr/failed: CMP p10cr at http:\/\/127\.0\.0\.1:$PORT{silent}\/pkix\/ failed: .*timeout/);
    cmp_ok($took, '<=', 15, "no answer within timeout=2: over in ${took}s");
}
{
    my $tid = tid('garbage');
    my $mark = log_mark();
    my $r = scep('enroll', '/cmp/garbage', $tid, '--challenge', $pw);
    refused('garbage for an answer', $r, $tid, $mark, 'badRequest',
            qr/failed: CMP p10cr at http:\/\/127\.0\.0\.1:$PORT{garbage}\/pkix\/ failed: error:/);
}

# ---- 4. a closed port, and the one-time password it did not consume ------------------
{
    my $ua = HTTP::Tiny->new(timeout => 30, proxy => undef,
                             http_proxy => undef);
    my $res = $ua->get(base_url() . '/cmp/otp-admin/',
                       { headers => { Accept => 'application/json' } });
    my $d = eval { JSON::PP::decode_json($res->{content}) } || {};
    my $otp = $d->{password};
    ok($otp, 'a one-time password of pool cmp-otp')
        or diag("HTTP $res->{status} $res->{content}");

    my $tid = tid('down');
    my $mark = log_mark();
    my $t0 = time;
    my $r = scep('enroll', '/cmp/down', $tid, '--challenge', $otp);
    my $took = time - $t0;
    refused('the upstream CA is down', $r, $tid, $mark, 'badRequest',
            qr/failed: CMP p10cr at http:\/\/127\.0\.0\.1:$PORT{down}\/pkix\/ failed: .*Connection refused/);
    cmp_ok($took, '<=', 10, "a closed port costs no timeout: over in ${took}s");

    issued('the password the failure left unconsumed works on /cmp/otp',
           scep('enroll', '/cmp/otp', tid('otp'), '--challenge', $otp));

    $tid = tid('otp-again');
    $r = scep('enroll', '/cmp/otp', $tid, '--challenge', $otp);
    is($r->{rc}, 2, 'and once only: used again, FAILURE')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    like($r->{out}, qr/^failInfo: badMessageCheck$/m, '... badMessageCheck');
}

# ---- 5. httpd -t: the arguments are checked at start-up --------------------------------
sub configtest {
    my ($args) = @_;
    my $httpd = httpd_bin() or return (-1, 'no httpd binary');
    my $top = top_dir();
    my $conf = "$W/configtest.conf";
    spit($conf, "Include \"$top/t/conf/httpd.conf\"\n"
              . "<Location /cmp-configtest>\n    SetHandler scep\n"
              . "    SCEPCACertificateFile \"$CMP/upca.pem\"\n"
              . "    SCEPRAEncryption \"$CMP/ra-scep.pem\" \"$CMP/ra-scep.key\"\n"
              . "    SCEPCAProvider cmp $args\n"
              . "    SCEPChallenge static configtest\n</Location>\n");
    my $r = run_cmd([$httpd, '-t', '-d', "$top/t", '-f', $conf,
                     '-D', 'APACHE2', '-D', 'APACHE2_4'], timeout => 60);
    my $out = join "\n", grep { !/:trace\d\]/ } split /\n/, "$r->{out}$r->{err}";
    return ($r->{rc}, $out);
}

{
    my $srv = "server=http://127.0.0.1:$PORT{main}/pkix/";
    my ($rc, $out) = configtest("$srv secret=file:$CMP/secret ref=scep-ra");
    is($rc, 0, 'httpd -t: a good cmp section: Syntax OK') or diag($out);

    my @bad = (
        ["secret=pass:x ref=y", qr/server=http:\/\/host:port\/path is required/,
         'no server='],
        ["$srv", qr/give either secret= \(with ref=\) or cert= and key=/,
         'no protection'],
        ["$srv secret=pass:x", qr/secret= needs ref=/, 'secret= without ref='],
        ["$srv secret=pass:x ref=y cert=$CMP/ra-cmp.pem key=$CMP/ra-cmp.key",
         qr/give either secret=/, 'both secret= and cert='],
        ["$srv cert=$CMP/ra-cmp.pem key=$CMP/ra-cmp.key",
         qr/needs trusted= or srvcert=/, 'cert= without trust anchors'],
        ["$srv cert=$CMP/ra-cmp.pem key=$CMP/ee.key trusted=$CMP/upca.pem",
         qr/key= does not match the certificate/, 'a key that does not match'],
        ["server=https://127.0.0.1:1/ secret=pass:x ref=y",
         qr/https is not supported/, 'https'],
        ["server=ftp://x/ secret=pass:x ref=y", qr/an http:\/\/ URL is needed/,
         'not http'],
        ["$srv secret=pass:x ref=y timeout=forever",
         qr/timeout= takes seconds from 1 to 3600, not 'forever'/, 'timeout=forever'],
        ["$srv secret=pass:x ref=y colour=blue", qr/unknown keyword 'colour'/,
         'an unknown keyword'],
        ["$srv secret=env:SCEP_NO_SUCH_VARIABLE_$$ ref=y",
         qr/the variable is not set/, 'secret=env: unset'],
        ["$srv secret=file:$W/no-such-file ref=y", qr/secret=file:\S+: No such file/,
         'secret=file: missing'],
        ["$srv secret=pass:x ref=y digest=md17", qr/digest=md17: unknown digest/,
         'an unknown digest'],
    );
    for my $b (@bad) {
        my ($args, $re, $what) = @$b;
        ($rc, $out) = configtest($args);
        isnt($rc, 0, "httpd -t refuses $what");
        like($out, qr/SCEPCAProvider cmp: .*$re/, "... saying so") or diag($out);
    }
}

done_testing;
