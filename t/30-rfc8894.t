# RFC 8894 renewal: RenewalReq (17) and the PKCSReq (19) signed by the old
# certificate (certmonger's form) renew without a password and, on
# /renew/mscep (revoke-replaced=on), revoke the replaced certificate
# (superseded).  Renewal is refused for a signer of another CA, an expired
# signer, another subject, outside the renewal window (/renew-late/mscep)
# and a revoked signer; UpdateReq (18) and unknown types are refused even
# when signed by a valid certificate of ours (NDES.md, security lessons).
use strict;
use warnings;
use Test::More;
use ScepTest;
use Scep8894;

need_programs('build/scep-client', 'openssl');

my $W = tempdir();
my $pw = challenge();
my $cn = "renew-$$.example.com";

# wait_for(SECONDS, CODE): CODE's value once true, polled every 0.5 s
sub wait_for {
    my ($secs, $code) = @_;
    my $v;
    for (1 .. $secs * 2) {
        return $v if ($v = $code->());
        select(undef, undef, undef, 0.5);
    }
    return $code->();
}

# the CRL by GetCRL on PATH (for the issuer of FILE): { serial => reason }
sub getcrl_serials {
    my ($path, $file, $out) = @_;
    my $r = scep('getcrl', $path, '--cert', $file, '--out', $out);
    return undef unless $r->{rc} == 0 && -s $out;
    return crl_serials(crl_text($out));
}

# the admin page's certificate list (JSON): { serial => row }
sub admin_certs {
    my $r = admin_get('/manual/admin/?certs');
    return {} unless $r->{status} == 200 && $r->{json};
    return { map { (uc($_->{serial}) => $_) } @{ $r->{json}{certificates} } };
}

# superseded_ok(WHAT, SERIAL, ANY_CERT_FILE): the CRL lists SERIAL as
# superseded (within 10 s), and the admin page shows it revoked
sub superseded_ok {
    my ($what, $serial, $file) = @_;
    my $crl = "$W/crl-$serial.pem";
    # 10 s: other processes re-read the stored CRL that often; once a
    # wait has run out, later ones do not wait as long (the file stays short)
    our $crl_late;
    my $s = wait_for($crl_late ? 2 : 10, sub {
        my $x = getcrl_serials('/renew/mscep', $file, $crl);
        $x && exists $x->{$serial} ? $x : undef;
    });
    ok($s && exists $s->{$serial}, "$what: GetCRL lists the replaced serial $serial")
        or do { $crl_late = 1; diag(-s $crl ? join("\n", grep { !/^\s+[0-9a-f]{2}(?::[0-9a-f]{2})+:?$/ } split /\n/, crl_text($crl)) : 'no CRL') };
    is($s && $s->{$serial}, 'Superseded', "$what: reason superseded");
    my $v = run_cmd(['openssl', 'crl', '-noout', '-verify', '-CAfile',
                     pki('ca.pem'), '-in', $crl], timeout => 30);
    like($v->{out} . $v->{err}, qr/verify OK/, "$what: the CRL verifies");
    my $row = admin_certs()->{$serial};
    is($row && $row->{status}, 'revoked', "$what: admin ?certs: status revoked");
    is($row && $row->{reason_code}, 4, "$what: admin ?certs: reason_code 4");
}

# ---- the certificate to renew ---------------------------------------------------
my ($r, $tid) = enroll_as('enroll', '/renew/mscep', key => "$W/k0.pem",
                          out => "$W/c0.pem", cn => $cn,
                          extra => ['--challenge', $pw]);
issued_ok('first certificate on /renew/mscep', $r, "$W/c0.pem")
    or BAIL_OUT('no certificate to renew: is the server up?');
my $s0 = cert_serial("$W/c0.pem");

# ---- RenewalReq (17), the project client ------------------------------------------
{
    my $mark = log_mark();
    ($r, $tid) = enroll_as('renew', '/renew/mscep', key => "$W/k1.pem",
                           out => "$W/c1.pem",
                           extra => ['--signer-cert', "$W/c0.pem",
                                     '--signer-key', "$W/k0.pem"]);
    issued_ok('RenewalReq without a password', $r, "$W/c1.pem");
    my $s1 = cert_serial("$W/c1.pem") // '';
    isnt($s1, $s0, 'RenewalReq: a new serial');
    is(cert_cn("$W/c1.pem"), $cn, 'RenewalReq: the same subject');
    my $log = wait_log($mark, qr/SCEP00013/);
    like($log,
         qr/SCEP00013: RenewalReq issued: transaction \Q$tid\E, .*serial \Q$s1\E, .*renewal of serial \Q$s0\E/,
         'RenewalReq: logged as a renewal of the old serial');
    # the renewal rules held before the store lock: the local CA signed
    # first, one commit (src/mod_scep_enroll.c, sign_early)
    like($log, qr/SCEP00035: transaction \Q$tid\E: signed by CA provider local before the store lock/,
         'RenewalReq: signed before the store lock (SCEP00035)');
    superseded_ok('RenewalReq', $s0, "$W/c1.pem");
    is(admin_certs()->{$s1} && admin_certs()->{$s1}{status}, 'valid',
       'RenewalReq: the new certificate is valid');
}

# ---- PKCSReq (19) signed by the old certificate (certmonger's renewal) ---------------
{
    my $s1 = cert_serial("$W/c1.pem") // '';
    my $mark = log_mark();
    ($r, $tid) = enroll_as('enroll', '/renew/mscep', key => "$W/k2.pem",
                           out => "$W/c2.pem",
                           extra => ['--message-type', '19',
                                     '--signer-cert', "$W/c1.pem",
                                     '--signer-key', "$W/k1.pem"]);
    issued_ok('PKCSReq signed by the old certificate, no password', $r, "$W/c2.pem");
    my $s2 = cert_serial("$W/c2.pem") // '';
    ok($s2 && $s2 ne $s1 && $s2 ne $s0, 'PKCSReq renewal: a new serial');
    is(cert_cn("$W/c2.pem"), $cn, 'PKCSReq renewal: the same subject');
    like(wait_log($mark, qr/SCEP00013/),
         qr/SCEP00013: PKCSReq issued: transaction \Q$tid\E, .*serial \Q$s2\E, .*renewal of serial \Q$s1\E/,
         'PKCSReq renewal: logged as a renewal of the old serial');
    superseded_ok('PKCSReq renewal', $s1, "$W/c2.pem");
}

# ---- the same key again: RenewalReq (micromdm's renewal) and PKCSReq signed by
# ---- the old certificate (certmonger's resubmit) -------------------------------------
{
    my $s2 = cert_serial("$W/c2.pem") // '';
    ($r, $tid) = enroll_as('renew', '/renew/mscep', key => "$W/k2.pem",
                           out => "$W/c3.pem",
                           extra => ['--signer-cert', "$W/c2.pem",
                                     '--signer-key', "$W/k2.pem"]);
    issued_ok('RenewalReq with the same key', $r, "$W/c3.pem");
    my $s3 = cert_serial("$W/c3.pem") // '';
    ok($s3 && $s3 ne $s2, 'RenewalReq with the same key: a new serial');
    superseded_ok('RenewalReq with the same key', $s2, "$W/c3.pem");

    my $mark = log_mark();
    ($r, $tid) = enroll_as('enroll', '/renew/mscep', key => "$W/k2.pem",
                           out => "$W/c4.pem",
                           extra => ['--message-type', '19',
                                     '--signer-cert', "$W/c3.pem",
                                     '--signer-key', "$W/k2.pem"]);
    issued_ok('PKCSReq with the same key signed by the old certificate, no password',
              $r, "$W/c4.pem");
    my $s4 = cert_serial("$W/c4.pem") // '';
    ok($s4 && $s4 ne $s3, 'PKCSReq with the same key: a new serial');
    like(wait_log($mark, qr/SCEP00013/),
         qr/SCEP00013: PKCSReq issued: transaction \Q$tid\E, .*renewal of serial \Q$s3\E/,
         'PKCSReq with the same key: logged as a renewal');
    superseded_ok('PKCSReq with the same key', $s3, "$W/c4.pem");
}
# the latest certificate, valid
my ($cur, $curkey) = ("$W/c4.pem", "$W/k2.pem");

# ---- refusals ------------------------------------------------------------------------
# renew_refused(WHAT, PATH, SIGNER_CERT, SIGNER_KEY, FAILINFO, RULE, extra...)
sub renew_refused {
    my ($what, $path, $cert, $key, $fi, $rule, @extra) = @_;
    my $n = ts('k');
    my $mark = log_mark();
    my ($res, $t) = enroll_as('renew', $path, key => "$W/$n.key",
                              out => "$W/$n.pem",
                              extra => ['--signer-cert', $cert,
                                        '--signer-key', $key, @extra]);
    refused($what, $res, $t, $fi, $rule, $mark, "$W/$n.pem");
}

# a CA that is not ours, another name
my ($fca, $fkey) = make_foreign_ca($W, 'foreign-ca', "Foreign CA $$");
my ($fc, $fk) = sign_with_ca($W, 'foreign', $cn, $fca, $fkey,
                             '20200101000000Z', '20991231000000Z');
renew_refused('RenewalReq signed by a certificate of a foreign CA',
              '/renew/mscep', $fc, $fk, 'badRequest', 'renewal-signer');
renew_refused('PKCSReq signed by a certificate of a foreign CA',
              '/renew/mscep', $fc, $fk, 'badRequest', 'renewal-signer',
              '--message-type', '19');

# an impostor CA with our CA's very name (only the signature tells)
my ($ica, $ikey) = make_foreign_ca($W, 'impostor-ca', 'mod_scep Demo Root CA');
my ($ic, $ik) = sign_with_ca($W, 'impostor', $cn, $ica, $ikey,
                             '20200101000000Z', '20991231000000Z');
renew_refused('RenewalReq signed under an impostor CA of the same name',
              '/renew/mscep', $ic, $ik, 'badRequest', 'renewal-signer');

# expired: issued by our CA, notAfter in the past
my ($xc, $xk) = sign_with_ca($W, 'expired', $cn, pki('ca.pem'), pki('ca.key'),
                             '20200101000000Z', '20200201000000Z');
like(run_cmd(['openssl', 'x509', '-noout', '-enddate', '-in', $xc])->{out},
     qr/notAfter=Feb\s+1 00:00:00 2020 GMT/, 'the expired signer: notAfter 2020-02-01');
renew_refused('RenewalReq signed by an expired certificate of our CA',
              '/renew/mscep', $xc, $xk, 'badRequest', 'renewal-expired');
renew_refused('PKCSReq signed by an expired certificate of our CA',
              '/renew/mscep', $xc, $xk, 'badRequest', 'renewal-expired',
              '--message-type', '19');

# RenewalReq signed by the requester's own self-signed certificate, with a
# good password: a RenewalReq is only ever accepted from a certificate of ours
{
    my $mark = log_mark();
    my ($res, $t) = enroll_as('enroll', '/renew/mscep', key => "$W/ss.key",
                              out => "$W/ss.pem", cn => $cn,
                              extra => ['--message-type', '17',
                                        '--challenge', $pw]);
    refused('RenewalReq signed by a self-signed certificate (with the password)',
            $res, $t, 'badRequest', 'renewal-signer', $mark, "$W/ss.pem");
}

# another subject than the certificate being renewed
renew_refused('RenewalReq for another subject', '/renew/mscep',
              $cur, $curkey, 'badRequest', 'renewal-subject',
              '--cn', "other-$$.example.com");
renew_refused('PKCSReq renewal for another subject', '/renew/mscep',
              $cur, $curkey, 'badRequest', 'renewal-subject',
              '--cn', "other-$$.example.com", '--message-type', '19');

# the replaced (superseded) certificates are revoked
renew_refused('RenewalReq signed by a revoked (superseded) certificate',
              '/renew/mscep', "$W/c0.pem", "$W/k0.pem", 'badRequest',
              'renewal-revoked');
renew_refused('PKCSReq signed by a revoked (superseded) certificate',
              '/renew/mscep', "$W/c1.pem", "$W/k1.pem", 'badRequest',
              'renewal-revoked', '--message-type', '19');

# ---- the renewal window (/renew-late: the last 10 days only) --------------------------
{
    ($r, $tid) = enroll_as('enroll', '/renew-late/mscep', key => "$W/l0.key",
                           out => "$W/l0.pem", cn => "late-$$",
                           extra => ['--challenge', $pw]);
    issued_ok('/renew-late: a certificate (a year)', $r, "$W/l0.pem");
    cmp_ok(days_left("$W/l0.pem"), '>', 10, '/renew-late: it has more than 10 days left');
    renew_refused('RenewalReq outside the renewal window', '/renew-late/mscep',
                  "$W/l0.pem", "$W/l0.key", 'badRequest', 'renewal-window');
    renew_refused('PKCSReq renewal outside the renewal window',
                  '/renew-late/mscep', "$W/l0.pem", "$W/l0.key", 'badRequest',
                  'renewal-window', '--message-type', '19');

    # a certificate with 7 days left (/policy issues 7-day certificates)
    new_rsa_key("$W/p0.key", 3072);
    ($r, $tid) = enroll_as('enroll', '/policy/mscep', key => "$W/p0.key",
                           out => "$W/p0.pem", cn => "late-$$.example.com",
                           extra => ['--challenge', $pw]);
    issued_ok('a 7-day certificate from /policy', $r, "$W/p0.pem");
    cmp_ok(days_left("$W/p0.pem"), '<', 10, 'it has less than 10 days left');
    ($r, $tid) = enroll_as('renew', '/renew-late/mscep', key => "$W/p1.key",
                           out => "$W/p1.pem",
                           extra => ['--signer-cert', "$W/p0.pem",
                                     '--signer-key', "$W/p0.key"]);
    issued_ok('RenewalReq inside the renewal window', $r, "$W/p1.pem");
    is(cert_subject("$W/p1.pem"), "CN=late-$$.example.com",
       'inside the window: the same subject');
}

# ---- UpdateReq (18) and unknown types: never a certificate -----------------------------
for my $mt (18, 99) {
    my $mark = log_mark();
    ($r, $tid) = enroll_as('enroll', '/renew/mscep', key => "$W/m$mt.key",
                           out => "$W/m$mt.pem", cn => "mt$mt-$$",
                           extra => ['--challenge', $pw, '--message-type', $mt]);
    refused("messageType $mt with the password", $r, $tid, 'badRequest',
            'message-type', $mark, "$W/m$mt.pem");

    $mark = log_mark();
    ($r, $tid) = enroll_as('enroll', '/renew/mscep', key => "$W/n$mt.key",
                           out => "$W/n$mt.pem",
                           extra => ['--message-type', $mt,
                                     '--signer-cert', $cur,
                                     '--signer-key', $curkey]);
    refused("messageType $mt signed by a valid certificate of ours", $r, $tid,
            'badRequest', 'message-type', $mark, "$W/n$mt.pem");
}
# the certificate that signed them is still valid (nothing replaced it)
{
    my $row = admin_certs()->{cert_serial($cur)};
    is($row && $row->{status}, 'valid',
       'UpdateReq signed by a certificate did not revoke it');
}

done_testing;
