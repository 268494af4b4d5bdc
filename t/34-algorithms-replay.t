# Algorithms and replays.
#   /scep-strict allows only AES-256 and SHA-256: every other digest and
#   cipher is badAlg; RSAES-OAEP key transport (RFC 8894 allows any CMS
#   key transport) is accepted everywhere; MD5 and SHA-224 are never
#   accepted.
#   Replays on /otp/certsrv/mscep (store on): the same bytes again are a
#   retry (same certificate); the same senderNonce under a new
#   transactionID is a replay: FAILURE/badRequest, rule "replay", and the
#   one-time password it carried is not used up.
use strict;
use warnings;
use Test::More;
use File::Spec ();
use ScepTest;
use Scep8894;

need_programs('build/scep-client', 'openssl', 'sqlite3');

# one number from the test server's store
sub sql_count {
    my ($q) = @_;
    my $r = run_cmd(['sqlite3', '-readonly', '-batch',
                     File::Spec->catfile(top_dir(), 't', 'db', 'scep.db'), $q], timeout => 30);
    diag("sqlite3: $r->{err}") if $r->{rc};
    return $r->{rc} ? undef : ($r->{out} =~ /(\d+)/)[0];
}

my $W = tempdir();
my $pw = challenge();
my $n = 0;

sub alg_ok {
    my ($what, $path, @args) = @_;
    $n++;
    my ($r) = enroll_as('enroll', $path, key => "$W/a$n.key", out => "$W/a$n.pem",
                        cn => "alg-$n-$$", extra => ['--challenge', $pw, @args]);
    issued_ok($what, $r, "$W/a$n.pem");
}

sub alg_refused {
    my ($what, $path, $detail, @args) = @_;
    $n++;
    my $mark = log_mark();
    my ($r, $tid) = enroll_as('enroll', $path, key => "$W/a$n.key", out => "$W/a$n.pem",
                              cn => "alg-$n-$$", extra => ['--challenge', $pw, @args]);
    refused($what, $r, $tid, 'badAlg', 'decode', $mark, "$W/a$n.pem");
    like(log_since($mark), qr/transaction \Q$tid\E, decode: .*\Q$detail\E/,
         "$what: the log line says $detail");
}

# ---- /scep-strict ------------------------------------------------------------------
alg_ok('/scep-strict AES-256 + SHA-256', '/scep-strict', '--cipher', 'aes256',
       '--digest', 'sha256');
alg_ok('/scep-strict AES-256 + SHA-256, RSA-OAEP key transport', '/scep-strict',
       '--cipher', 'aes256', '--digest', 'sha256', '--oaep');
for my $d (qw(sha1 sha384 sha512 sha224 md5)) {
    alg_refused("/scep-strict digest $d", '/scep-strict', 'SCEPDigests',
                '--cipher', 'aes256', '--digest', $d);
}
for my $c (qw(aes128 aes192 des3)) {
    alg_refused("/scep-strict cipher $c", '/scep-strict', 'SCEPCiphers',
                '--cipher', $c, '--digest', 'sha256');
}
alg_refused('/scep-strict cipher aes128 with OAEP', '/scep-strict', 'SCEPCiphers',
            '--cipher', 'aes128', '--digest', 'sha256', '--oaep');

# ---- digests nobody may use ---------------------------------------------------------
my $ndes = '/certsrv/mscep/mscep.dll';
alg_refused('NDES endpoint, digest MD5', $ndes, 'SCEPDigests', '--digest', 'md5');
alg_refused('NDES endpoint, digest SHA-224', $ndes, 'SCEPDigests', '--digest', 'sha224');

# ---- RSA-OAEP key transport ---------------------------------------------------------
alg_ok('NDES endpoint, RSA-OAEP', $ndes, '--oaep');
alg_ok('NDES endpoint, RSA-OAEP + 3DES', $ndes, '--oaep', '--cipher', 'des3');
alg_ok('NDES endpoint, RSA-OAEP to all three certificates', $ndes, '--oaep',
       '--encrypt-to', 'all');
alg_ok('/scep-both (one RA pair), RSA-OAEP', '/scep-both', '--oaep');
alg_ok('/scep-ca (the CA decrypts), RSA-OAEP', '/scep-ca', '--oaep');
{
    # the request really is RSAES-OAEP
    $n++;
    my ($r) = enroll_as('enroll', $ndes, key => "$W/a$n.key", out => "$W/a$n.pem",
                        cn => "oaep-$$", extra => ['--challenge', $pw, '--oaep',
                                                   '--dump-request', "$W/oaep.der"]);
    is($r->{rc}, 0, 'OAEP request for inspection: SUCCESS');
    my $v = run_cmd(['openssl', 'cms', '-verify', '-noverify', '-binary', '-inform',
                     'DER', '-in', "$W/oaep.der", '-out', "$W/oaep-env.der"], timeout => 30);
    my $p = run_cmd(['openssl', 'cms', '-cmsout', '-print', '-inform', 'DER',
                     '-in', "$W/oaep-env.der"], timeout => 30);
    like($p->{out}, qr/keyEncryptionAlgorithm:\s*\n\s*algorithm: rsaesOaep/,
         'the request\'s key transport is rsaesOaep');
}

# ---- replays (/otp/certsrv/mscep) ---------------------------------------------------
{
    my $EP = '/otp/certsrv/mscep';
    my $nonce = uc unpack('H*', join '', map { chr int rand 256 } 1 .. 16);
    my $otp1 = otp_password();
    my ($r, $tid1) = enroll_as('enroll', $EP, key => "$W/r1.key", out => "$W/r1.pem",
                               cn => "replay-$$",
                               extra => ['--challenge', $otp1, '--nonce', $nonce,
                                         '--dump-request', "$W/r1.der"]);
    issued_ok('first message (senderNonce N, transaction T1)', $r, "$W/r1.pem");
    my $serial = cert_serial("$W/r1.pem") // '';

    # the very same bytes again: a retry of T1, answered from the store
    my $mark = log_mark();
    my $raw = run_cmd([client(), 'raw', base_url() . $EP, '--body', "$W/r1.der",
                       '--dump-reply', "$W/r1-again.der"], timeout => 60);
    like($raw->{out}, qr/^HTTP 200$/m, 'the same bytes again: HTTP 200');
    like($raw->{out}, qr/^status: SUCCESS$/m, 'the same bytes again: SUCCESS (a retry)');
    like(wait_log($mark, qr/SCEP00016/),
         qr/SCEP00016: PKCSReq: transaction \Q$tid1\E was answered before: the same certificate again \(serial \Q$serial\E\)/,
         'the same bytes again: the same certificate, from the store');

    # the same senderNonce under a new transactionID: a replay
    my $otp2 = otp_password();
    $mark = log_mark();
    my $tid2;
    ($r, $tid2) = enroll_as('enroll', $EP, key => "$W/r2.key", out => "$W/r2.pem",
                            cn => "replay2-$$",
                            extra => ['--challenge', $otp2, '--nonce', $nonce]);
    refused('same senderNonce, new transactionID', $r, $tid2, 'badRequest', 'replay',
            $mark, "$W/r2.pem");
    # an unused password and the local CA: signed before the store lock
    # (sign_early), refused under it; the certificate goes nowhere
    my $since = log_since($mark);
    like($since, qr/SCEP00035: transaction \Q$tid2\E: signed by CA provider local before the store lock/,
         'the replay was signed before the store lock (SCEP00035)');
    unlike($since, qr/SCEP00013: PKCSReq issued: transaction \Q$tid2\E/,
           'and not issued');
    is(sql_count("SELECT COUNT(*) FROM scep_certificate WHERE transaction_id = '$tid2'"), 0,
       'no certificate recorded for the refused replay');

    # and with T1's key and CSR but another transactionID
    $mark = log_mark();
    my $tid3;
    ($r, $tid3) = enroll_as('enroll', $EP, key => "$W/r1.key", out => "$W/r3.pem",
                            cn => "replay-$$",
                            extra => ['--challenge', $otp1, '--nonce', $nonce]);
    refused('T1\'s CSR and senderNonce under a new transactionID', $r, $tid3, 'badRequest',
            'replay', $mark, "$W/r3.pem");

    # the refused replay did not use up its one-time password
    ($r) = enroll_as('enroll', $EP, key => "$W/r2.key", out => "$W/r4.pem",
                     cn => "replay2-$$", extra => ['--challenge', $otp2]);
    issued_ok('the replay\'s password still works with a fresh senderNonce', $r, "$W/r4.pem");

    # a password is good for one enrollment
    $mark = log_mark();
    my $tid5;
    ($r, $tid5) = enroll_as('enroll', $EP, key => "$W/r5.key", out => "$W/r5.pem",
                            cn => "replay5-$$", extra => ['--challenge', $otp2]);
    refused('the used password again (new transaction)', $r, $tid5, 'badMessageCheck',
            'challenge otp', $mark, "$W/r5.pem");
}

done_testing;
