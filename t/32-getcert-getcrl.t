# GetCert (21), GetCRL (22), the CRL over HTTP (the scep-crl handler at the
# URL that /otp/certsrv/mscep writes into the certificates it issues), and
# revocation through the admin page (POST ?revoke-cert=SERIAL&reason=N):
# the CRL lists the serial within 10 s.
use strict;
use warnings;
use Test::More;
use ScepTest;
use Scep8894;

need_programs('build/scep-client', 'openssl');

my $W = tempdir();
my $EP = '/otp/certsrv/mscep';
my $ADMIN = '/otp/certsrv/mscep_admin/';

sub wait_for {
    my ($secs, $code) = @_;
    my $v;
    for (1 .. $secs * 2) {
        return $v if ($v = $code->());
        select(undef, undef, undef, 0.5);
    }
    return $code->();
}

sub crl_verifies {
    my ($file, $inform) = @_;
    my $r = run_cmd(['openssl', 'crl', '-noout', '-verify', '-inform', $inform // 'PEM',
                     '-CAfile', pki('ca.pem'), '-in', $file], timeout => 30);
    return ($r->{out} . $r->{err}) =~ /verify OK/;
}

sub crl_field {
    my ($file, $inform, $opt) = @_;
    my $r = run_cmd(['openssl', 'crl', '-noout', $opt, '-nameopt', 'RFC2253',
                     '-inform', $inform // 'PEM', '-in', $file], timeout => 30);
    return $r->{rc} == 0 ? $r->{out} : '';
}

# ---- a certificate with the CRL URL ----------------------------------------------------
my $otp = eval { otp_password() };
ok($otp, 'a one-time password from the admin page') or diag($@);
my ($r, $tid) = enroll_as('enroll', $EP, key => "$W/k1.pem", out => "$W/c1.pem",
                          cn => "getcert-$$", extra => ['--challenge', $otp // '-']);
issued_ok('PKCSReq on /otp/certsrv/mscep', $r, "$W/c1.pem")
    or BAIL_OUT('no certificate: is the server up?');
my $serial = cert_serial("$W/c1.pem");
my $cdp = cert_ext("$W/c1.pem", 'crlDistributionPoints');
my ($crl_url) = $cdp =~ m{URI:(http://\S+)};
is($crl_url, base_url() . '/crl/ca.crl', 'the certificate names the CRL URL')
    or diag($cdp);
$crl_url //= base_url() . '/crl/ca.crl';

# ---- GetCert ---------------------------------------------------------------------------
{
    my $mark = log_mark();
    ($r, $tid) = enroll_as('getcert', $EP, out => "$W/got.pem",
                           extra => ['--serial', $serial]);
    is($r->{rc}, 0, 'GetCert by issuer and serial: SUCCESS') or diag("$r->{cmd}\n$r->{out}$r->{err}");
    like($r->{out}, qr/^serial: \Q$serial\E$/m, 'GetCert: the serial asked for');
    is(-s "$W/got.pem" ? pem_to_der("$W/got.pem") : '', pem_to_der("$W/c1.pem"),
       'GetCert: that exact certificate (same DER)');
    like(wait_log($mark, qr/SCEP00204/), qr/SCEP00204: GetCert: certificate \Q$serial\E/,
         'GetCert: logged');

    # a leading zero or lower case in the serial asked for: the same number
    ($r) = enroll_as('getcert', $EP, out => "$W/got2.pem",
                     extra => ['--serial', '00' . lc $serial]);
    is($r->{rc}, 0, 'GetCert with 00 and lower case: SUCCESS') or diag("$r->{out}$r->{err}");

    my $unknown = '7E' . ('0' x 30) . sprintf('%08X', $$);
    $mark = log_mark();
    ($r, $tid) = enroll_as('getcert', $EP, out => "$W/none.pem",
                           extra => ['--serial', $unknown]);
    refused('GetCert of an unknown serial', $r, $tid, 'badCertId', 'getcert', $mark,
            "$W/none.pem");
}

# GetCert where no store keeps the issued certificates
{
    my $mark = log_mark();
    ($r, $tid) = enroll_as('getcert', '/certsrv/mscep/mscep.dll', out => "$W/none2.pem",
                           extra => ['--serial', $serial]);
    refused('GetCert where there is no store', $r, $tid, 'badCertId', 'getcert', $mark,
            "$W/none2.pem");
}

# ---- GetCRL ----------------------------------------------------------------------------
my $crl0;
{
    my $mark = log_mark();
    ($r, $tid) = enroll_as('getcrl', $EP, out => "$W/crl0.pem",
                           extra => ['--cert', "$W/c1.pem"]);
    is($r->{rc}, 0, 'GetCRL: SUCCESS') or diag("$r->{cmd}\n$r->{out}$r->{err}");
    ok(-s "$W/crl0.pem", 'GetCRL: a CRL in the reply');
    ok(crl_verifies("$W/crl0.pem"), 'GetCRL: openssl crl -verify -CAfile t/pki/ca.pem: OK');
    like(crl_field("$W/crl0.pem", 'PEM', '-issuer'), qr/issuer=CN=mod_scep Demo Root CA/,
         'GetCRL: issued by our CA');
    like(crl_field("$W/crl0.pem", 'PEM', '-nextupdate'), qr/nextUpdate=\w+/,
         'GetCRL: has a nextUpdate');
    ok(!exists crl_serials(crl_text("$W/crl0.pem"))->{$serial},
       'GetCRL: the new certificate is not listed');
    like(wait_log($mark, qr/SCEP00207/), qr/SCEP00207: GetCRL: CRL number \d+ of /,
         'GetCRL: logged');
    $crl0 = crl_text("$W/crl0.pem");
}

# ---- the CRL over HTTP ---------------------------------------------------------------
sub http_crl {
    my ($file) = @_;
    my $h = http_get($crl_url);
    spit($file, $h->{body}) if $h->{status} == 200;
    return $h;
}
{
    my $h = http_crl("$W/http0.crl");
    is($h->{status}, 200, "GET $crl_url: 200");
    is($h->{type}, 'application/pkix-crl', 'HTTP CRL: application/pkix-crl');
    ok(crl_verifies("$W/http0.crl", 'DER'), 'HTTP CRL: DER, verifies against t/pki/ca.pem');
    is(crl_field("$W/http0.crl", 'DER', '-issuer'), crl_field("$W/crl0.pem", 'PEM', '-issuer'),
       'HTTP CRL: the same issuer as GetCRL');
    like(crl_field("$W/http0.crl", 'DER', '-nextupdate'), qr/nextUpdate=\w+/,
         'HTTP CRL: has a nextUpdate');
    like($h->{headers}{'cache-control'} // '', qr/max-age=\d+/, 'HTTP CRL: Cache-Control max-age');
    ok($h->{headers}{etag}, 'HTTP CRL: an ETag');
    my $p = http_post($crl_url, 'x');
    is($p->{status}, 405, 'HTTP CRL: POST is 405');
}

# ---- revocation through the admin page ---------------------------------------------------
{
    my $a = http_post("$ADMIN?revoke-cert=$serial&reason=1", '');
    is($a->{status}, 401, 'revoke without credentials: 401');
    $a = admin_get("$ADMIN?revoke-cert=$serial&reason=1");
    is($a->{status}, 405, 'revoke by GET: 405');
    $a = admin_post("$ADMIN?revoke-cert=7E" . ('0' x 30) . "&reason=1");
    is($a->{status}, 404, 'revoke an unknown serial: 404') or diag($a->{body});
    $a = admin_post("$ADMIN?revoke-cert=$serial&reason=7");
    is($a->{status}, 400, 'revoke with reason 7 (unused): 400') or diag($a->{body});

    my $mark = log_mark();
    $a = admin_post("$ADMIN?revoke-cert=$serial&reason=1");
    is($a->{status}, 200, 'POST ?revoke-cert=SERIAL&reason=1 as admin: 200') or diag($a->{body});
    is($a->{json} && $a->{json}{revoked}, JSON::PP::true(), 'revoke: revoked true');
    is($a->{json} && $a->{json}{reason_code}, 1, 'revoke: reason_code 1');
    is($a->{json} && $a->{json}{reason}, 'keyCompromise', 'revoke: reason keyCompromise');
    like(wait_log($mark, qr/SCEP00214/), qr/SCEP00214: admin page: admin revoked certificate \Q$serial\E \(keyCompromise\)/,
         'revoke: logged with the user');

    my $s = wait_for(10, sub {
        my $h = http_crl("$W/http1.crl");
        return undef unless $h->{status} == 200;
        my $x = crl_serials(crl_text("$W/http1.crl", 'DER'));
        exists $x->{$serial} ? $x : undef;
    });
    ok($s && exists $s->{$serial}, 'the HTTP CRL lists the serial within 10 s')
        or diag(crl_text("$W/http1.crl", 'DER'));
    is($s && $s->{$serial}, 'Key Compromise', 'HTTP CRL: reason keyCompromise');
    ok(crl_verifies("$W/http1.crl", 'DER'), 'HTTP CRL after revocation: verifies');

    $s = wait_for(10, sub {
        my ($g) = enroll_as('getcrl', $EP, out => "$W/crl1.pem", extra => ['--cert', "$W/c1.pem"]);
        return undef unless $g->{rc} == 0;
        my $x = crl_serials(crl_text("$W/crl1.pem"));
        exists $x->{$serial} ? $x : undef;
    });
    ok($s && exists $s->{$serial}, 'GetCRL lists the serial within 10 s');
    ok(crl_verifies("$W/crl1.pem"), 'GetCRL after revocation: verifies');
    my ($n0) = crl_text("$W/http0.crl", 'DER') =~ /CRL Number:\s*\n?\s*(\d+)/;
    my ($n1) = crl_text("$W/http1.crl", 'DER') =~ /CRL Number:\s*\n?\s*(\d+)/;
    ok(defined $n0 && defined $n1 && $n1 > $n0, 'a higher CRL number after revocation')
        or diag('before ' . ($n0 // '?') . ', after ' . ($n1 // '?'));

    my $l = admin_get("$ADMIN?certs");
    my ($row) = grep { uc($_->{serial}) eq $serial } @{ ($l->{json} || {})->{certificates} || [] };
    is($row && $row->{status}, 'revoked', 'admin ?certs: status revoked');
    is($row && $row->{reason_code}, 1, 'admin ?certs: reason_code 1');

    # revoking again: fine, and the recorded reason stays
    $a = admin_post("$ADMIN?revoke-cert=$serial&reason=4");
    is($a->{status}, 200, 'revoking it again: 200');
    is($a->{json} && $a->{json}{already_revoked}, JSON::PP::true(), 'again: already_revoked');
    is($a->{json} && $a->{json}{reason_code}, 1, 'again: the first reason stays');

    # GetCert still hands out a revoked certificate (it is public)
    my ($g) = enroll_as('getcert', $EP, out => "$W/got3.pem", extra => ['--serial', $serial]);
    is($g->{rc}, 0, 'GetCert of the revoked certificate: SUCCESS');
}

done_testing;
