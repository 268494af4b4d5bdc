# GetCACert (NDES layout, one RA pair, no RA) and GetNextCACert.
use strict;
use warnings;
use Test::More;
use ScepTest;

need_programs('openssl');

my $tmp = tempdir();
my $n = 0;

# the certificates of a PEM file / of openssl's -print_certs output, as
# base64 bodies without whitespace (comparable)
sub pem_blocks {
    my ($text) = @_;
    my @b;
    while ($text =~ /-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----/gs) {
        (my $x = $1) =~ s/\s+//g;
        push @b, $x;
    }
    return @b;
}

sub file_certs { pem_blocks(slurp($_[0])) }

# certificates inside a DER PKCS#7 (in order), undef if it does not parse
sub p7_certs {
    my ($der) = @_;
    my $f = "$tmp/p7-" . ++$n . '.der';
    spit($f, $der);
    my $r = run_cmd(['openssl', 'pkcs7', '-inform', 'DER', '-in', $f,
                     '-print_certs'], timeout => 30);
    if ($r->{rc} != 0) {
        diag("openssl pkcs7: $r->{err}");
        return undef;
    }
    return [pem_blocks($r->{out})];
}

my ($ca)      = file_certs(pki('ca.pem'));
my ($ra_enc)  = file_certs(pki('ra-enc.pem'));
my ($ra_sign) = file_certs(pki('ra-sign.pem'));
my ($ra_both) = file_certs(pki('ra-both.pem'));
my ($next)    = file_certs(pki('next-ca.pem'));
my %name = ($ca => 'CA', $ra_enc => 'RA enc', $ra_sign => 'RA sign',
            $ra_both => 'RA both', $next => 'next CA');
sub names { join ', ', map { $name{$_} // 'unknown cert' } @{ $_[0] } }

# ---- NDES layout: RA enc, RA sign, then the CA ------------------------------
for my $msg (undef, 'default', 'ca', 'CAIdentifier', '0') {
    for my $path ('/certsrv/mscep/mscep.dll',
                  '/certsrv/mscep/mscep.dll/pkiclient.exe') {
        my $q = "$path?operation=GetCACert" . (defined $msg ? "&message=$msg" : '');
        my $r = http_get($q);
        is($r->{status}, 200, "$q: 200");
        is($r->{type}, 'application/x-x509-ca-ra-cert', "$q: content type")
            or diag("Content-Type: $r->{content_type}");
        my $certs = p7_certs($r->{body});
        ok($certs, "$q: a DER PKCS#7");
        is_deeply($certs, [$ra_enc, $ra_sign, $ca],
                  "$q: RA enc, RA sign, CA in that order")
            or diag('got: ' . names($certs || []));
    }
}

# /certsrv/mscep/ reaches the handler too
{
    my $r = http_get('/certsrv/mscep/?operation=GetCACert&message=default');
    is($r->{status}, 200, '/certsrv/mscep/: GetCACert 200');
    is_deeply(p7_certs($r->{body}), [$ra_enc, $ra_sign, $ca],
              '/certsrv/mscep/: RA enc, RA sign, CA');
}

# ---- one RA pair for both roles ---------------------------------------------
{
    my $r = http_get('/scep-both?operation=GetCACert&message=default');
    is($r->{status}, 200, '/scep-both: GetCACert 200');
    is($r->{type}, 'application/x-x509-ca-ra-cert', '/scep-both: content type');
    my $certs = p7_certs($r->{body});
    is_deeply($certs, [$ra_both, $ca], '/scep-both: RA (both usages), then CA')
        or diag('got: ' . names($certs || []));
}

# ---- no RA: the lone CA certificate, DER ------------------------------------
{
    my $r = http_get('/scep-ca?operation=GetCACert&message=default');
    is($r->{status}, 200, '/scep-ca: GetCACert 200');
    is($r->{type}, 'application/x-x509-ca-cert', '/scep-ca: application/x-x509-ca-cert')
        or diag("Content-Type: $r->{content_type}");
    ok($r->{body} eq pem_to_der(pki('ca.pem')), '/scep-ca: DER of t/pki/ca.pem');
}

# ---- GetNextCACert ------------------------------------------------------------
{
    my $r = http_get('/scep-next?operation=GetNextCACert&message=default');
    is($r->{status}, 200, '/scep-next: GetNextCACert 200');
    is($r->{type}, 'application/x-x509-next-ca-cert',
       '/scep-next: application/x-x509-next-ca-cert')
        or diag("Content-Type: $r->{content_type}");
    my $f = "$tmp/next.der";
    spit($f, $r->{body});
    # RFC 8894 4.6.1: SignedData (by the CA or RA) whose content is a
    # degenerate certs-only PKCS#7 with the next CA certificate
    my $v = run_cmd(['openssl', 'cms', '-verify', '-inform', 'DER', '-in', $f,
                     '-binary', '-purpose', 'any', '-CAfile', pki('ca.pem'),
                     '-certfile', pki('ra-sign.pem'),
                     '-out', "$tmp/next-inner.der"], timeout => 30);
    ok($v->{rc} == 0, '/scep-next: SignedData verifies against the current CA')
        or diag($v->{err});
    my $inner = -s "$tmp/next-inner.der" ? p7_certs(slurp("$tmp/next-inner.der")) : undef;
    ok($inner && grep({ $_ eq $next } @$inner),
       '/scep-next: signed content holds t/pki/next-ca.pem')
        or diag('got: ' . names($inner || []));

    # the next CA's GetCACert is unchanged
    my $c = http_get('/scep-next?operation=GetCACert&message=default');
    is_deeply(p7_certs($c->{body}), [$ra_enc, $ra_sign, $ca],
              '/scep-next: GetCACert still the current CA');
}

for my $path ('/certsrv/mscep/mscep.dll', '/scep-ca') {
    my $r = http_get("$path?operation=GetNextCACert&message=default");
    is($r->{status}, 400, "$path: GetNextCACert refused (400) without a next CA");
}

done_testing;
