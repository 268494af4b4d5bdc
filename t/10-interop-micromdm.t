# Interop: micromdm's scepclient (Debian package "scep") against the NDES
# endpoint.  It always uses SHA-1 + single DES (SCEPLegacyProvider On,
# SCEPCiphers ... DES), encrypts to every certificate of GetCACert and takes
# certs[0] of the reply as its certificate.
use strict;
use warnings;
use Test::More;
use ScepTest;

need_programs('scepclient', 'openssl');

my $W = tempdir();
my $cn = "micromdm-$$";

sub scepclient {
    return run_cmd(['sh', '-c', 'cd "$1" && shift && exec "$@"', 'sh', $W,
                    'scepclient', '-server-url', NDES_URL(),
                    '-challenge', challenge(),
                    '-private-key', "$W/key.pem", '-certificate', "$W/cert.pem",
                    '-cn', $cn], timeout => 120);
}

sub serial {
    my $r = run_cmd(['openssl', 'x509', '-noout', '-serial', '-in', $_[0]],
                    timeout => 30);
    return $r->{rc} == 0 ? $r->{out} : undef;
}

# ---- enrollment (PKCSReq) -------------------------------------------------------
my $r = scepclient();
is($r->{rc}, 0, 'scepclient enrollment exits 0')
    or diag("$r->{cmd}\n$r->{out}$r->{err}");
ok(-s "$W/cert.pem", 'certificate written');
my ($ok, $v) = openssl_verify("$W/cert.pem");
ok($ok, 'openssl verify -CAfile t/pki/ca.pem: OK') or diag($v->{out} . $v->{err});
is(cert_cn("$W/cert.pem"), $cn, "subject CN=$cn")
    or diag('subject: ' . (cert_subject("$W/cert.pem") // '?'));

# the certificate is for scepclient's key
{
    my $a = run_cmd(['openssl', 'x509', '-noout', '-pubkey', '-in', "$W/cert.pem"],
                    timeout => 30);
    my $b = run_cmd(['openssl', 'pkey', '-pubout', '-in', "$W/key.pem"], timeout => 30);
    ok($a->{rc} == 0 && $a->{out} eq $b->{out}, 'certificate matches the private key');
}

# ---- renewal (RenewalReq, same key, signed with the old certificate) -------------
SKIP: {
    skip 'no first certificate', 4 unless -s "$W/cert.pem";
    my $old = serial("$W/cert.pem");
    $r = scepclient();
    is($r->{rc}, 0, 'scepclient renewal (cert.pem present) exits 0')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    ($ok, $v) = openssl_verify("$W/cert.pem");
    ok($ok, 'renewed certificate verifies') or diag($v->{out} . $v->{err});
    is(cert_cn("$W/cert.pem"), $cn, 'renewed certificate: same CN');
    isnt(serial("$W/cert.pem"), $old, 'renewed certificate is a new one');
}

done_testing;
