# Interop: strongSwan's pki --scepca / --scep (strongswan-pki +
# libstrongswan-extra-plugins) against the NDES endpoint, with the separate
# RA encryption and signing certificates picked by keyUsage.
use strict;
use warnings;
use Test::More;
use ScepTest;

need_programs('pki', 'openssl');

my $W = tempdir();
my $url = NDES_URL();

sub key_usage {
    my $r = run_cmd(['openssl', 'x509', '-noout', '-ext', 'keyUsage', '-in', $_[0]],
                    timeout => 30);
    return $r->{out};
}

# ---- GetCACaps + GetCACert ------------------------------------------------------
my $r = run_cmd(['pki', '--scepca', '--url', $url, '--caout', "$W/ca.pem",
                 '--raout', "$W/ra.pem", '--outform', 'pem', '--force'],
                timeout => 60);
is($r->{rc}, 0, 'pki --scepca exits 0') or diag("$r->{cmd}\n$r->{out}$r->{err}");
ok(-s "$W/ca.pem", 'CA certificate saved');
is(slurp("$W/ca.pem") =~ s/\s+//gr, slurp(pki('ca.pem')) =~ s/\s+//gr,
   'it is t/pki/ca.pem') if -s "$W/ca.pem";

my @ra = sort glob("$W/ra*.pem");
is(scalar @ra, 2, 'two RA certificates (NDES layout)') or diag("got: @ra");
my ($enc, $sig);
for my $f (@ra) {
    my $ku = key_usage($f);
    $enc = $f if $ku =~ /Key Encipherment/;
    $sig = $f if $ku =~ /Digital Signature/;
}
ok($enc, 'an RA certificate with keyEncipherment');
ok($sig, 'an RA certificate with digitalSignature');
ok($enc && $sig && $enc ne $sig, 'two different RA certificates');
$enc //= pki('ra-enc.pem');
$sig //= pki('ra-sign.pem');

sub scep {
    my ($key, $cn, @extra) = @_;
    return run_cmd(['pki', '--scep', '--url', $url, '--in', $key,
                    '--dn', "CN=$cn", '--cacert-enc', $enc,
                    '--cacert-sig', $sig, '--cacert', "$W/ca.pem",
                    '--interval', '2', '--maxpolltime', '60',
                    '--outform', 'pem', @extra], timeout => 120);
}

sub genkey {
    my $r = run_cmd(['pki', '--gen', '--type', 'rsa', '--size', '2048',
                     '--outform', 'pem'], timeout => 60);
    die "pki --gen: $r->{err}" unless $r->{rc} == 0;
    spit($_[0], $r->{out});
    return $_[0];
}

sub check_cert {
    my ($r, $file, $cn, $what) = @_;
    is($r->{rc}, 0, "$what: pki --scep exits 0") or diag("$r->{cmd}\n$r->{out}$r->{err}");
    spit($file, $r->{out});
    my ($ok, $v) = openssl_verify($file);
    ok($ok, "$what: openssl verify -CAfile t/pki/ca.pem OK") or diag($v->{out} . $v->{err});
    is(cert_cn($file), $cn, "$what: subject CN=$cn");
}

# ---- PKCSReq: default (AES-128 + SHA-256) -------------------------------------------
genkey("$W/key.pem");
my $cn = "strongswan-$$";
$r = scep("$W/key.pem", $cn, '--password', challenge());
check_cert($r, "$W/cert.pem", $cn, 'PKCSReq AES/SHA-256');

# ---- PKCSReq: 3DES + SHA-512 ----------------------------------------------------------
genkey("$W/key2.pem");
$r = scep("$W/key2.pem", "$cn-2", '--password', challenge(),
          '--cipher', 'des3', '--digest', 'sha512');
check_cert($r, "$W/cert2.pem", "$cn-2", 'PKCSReq 3DES/SHA-512');

# ---- RenewalReq: new key, signed with the old certificate and key ----------------------
SKIP: {
    skip 'no first certificate', 3 unless -s "$W/cert.pem" && openssl_verify("$W/cert.pem");
    genkey("$W/key3.pem");
    $r = scep("$W/key3.pem", $cn, '--cert', "$W/cert.pem", '--key', "$W/key.pem");
    check_cert($r, "$W/cert3.pem", $cn, 'RenewalReq');
}

done_testing;
