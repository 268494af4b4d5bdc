# A CA provider from another module: examples/mod_scep_example_ca.c, built
# by t/setup/providers.sh with apxs against mod_scep.h as installed (and
# nothing else of the tree), loaded with LoadModule from build/examples and
# registered as "example" (t/conf/providers.conf.in, /example/mscep, CA 1,
# profile Example: 42 days, serverAuth + clientAuth).
use strict;
use warnings;
use Test::More;
use ScepTest;
use ScepProviders;

need_programs('build/scep-client', 'openssl');

my $SO = File::Spec->catfile(top_dir(), 'build', 'examples', '.libs',
                             'mod_scep_example_ca.so');
my $BUILDLOG = File::Spec->catfile(top_dir(), 't', 'logs', 'example-build.log');

# ---- the build --------------------------------------------------------------------------
ok(-f $SO, 'build/examples/.libs/mod_scep_example_ca.so was built')
    or diag(-e $BUILDLOG ? slurp($BUILDLOG)
                         : 'no t/logs/example-build.log: t/setup/providers.sh did not run');
my $log = -e $BUILDLOG ? slurp($BUILDLOG) : '';
my ($cc) = $log =~ /^(libtool: compile: .*)$/m;
ok($cc, 'the compile line is in t/logs/example-build.log') or diag($log);
$cc //= '';
my ($inc) = $cc =~ m{-I(\S*/t/providers/destdir\S*)};
ok($inc, 'compiled with -I the header installation directory')
    or diag($cc);
my $top = top_dir();
unlike($cc, qr{-I\s*(?:\Q$top\E/)?(?:include|src)\b},
       "not with the tree's include/ or src/");
if ($inc) {
    opendir(my $dh, $inc) or die "$inc: $!";
    my @files = grep { !/^\.\.?$/ } readdir $dh;
    closedir $dh;
    ok((grep { $_ eq 'mod_scep.h' } @files), 'which holds mod_scep.h');
    is_deeply([grep { /^(?:scep_|ca_local|mod_scep_)/ } @files], [],
              'and none of the private headers of src/');
}
my $nm = run_cmd(['nm', '-D', '--undefined-only', $SO], timeout => 30);
unlike($nm->{out}, qr/\bscep_/, 'the module uses no symbol of mod_scep')
    if $nm->{rc} == 0;

unless (-f $SO) {
    done_testing;
    exit 1;
}

# ---- loaded and registered ---------------------------------------------------------------
my $W = tempdir();
my $URL = '/example/mscep';
my $r = http_get("$URL?operation=GetCACaps");
is($r->{status}, 200, "$URL answers GetCACaps: the section was configured, "
                      . 'SCEPCAProvider example found') or diag($r->{body});

# ---- an enrollment through it ------------------------------------------------------------
my $cn = "example-$$";
my %d = (key => "$W/key.pem", out => "$W/cert.pem", cn => $cn, tid => "example-$$");
my $mark = log_mark();
$r = client_enroll($URL, %d, challenge => challenge(),
                   args => ['--san', 'dns:example.example.com']);
is($r->{rc}, 0, 'PKCSReq: SUCCESS') or diag("$r->{cmd}\n$r->{out}$r->{err}");
like($r->{out}, qr/^certificates: 2$/m, 'the certificate and the CA');
ok(-s $d{out} && openssl_verify($d{out}), 'the certificate verifies against t/pki/ca.pem');
ok(-s $d{out} && cert_key_is($d{out}, $d{key}), "for the device's key");
is(-s $d{out} ? cert_cn($d{out}) : undef, $cn, "subject CN=$cn");
is(-s $d{out} ? cert_days($d{out}) : undef, 42, 'valid 42 days (profile Example)');
like(-s $d{out} ? cert_ext($d{out}, 'extendedKeyUsage') : '',
     qr/TLS Web Server Authentication, TLS Web Client Authentication/,
     'EKU serverAuth, clientAuth (profile Example)');
like(-s $d{out} ? cert_ext($d{out}, 'subjectAltName') : '',
     qr/DNS:example\.example\.com/, 'the SAN of the CSR');
like(wait_log($mark, qr/transaction \Q$d{tid}\E/),
     qr/SCEP00013: PKCSReq issued: transaction \Q$d{tid}\E, .*profile Example, CA provider example/,
     'SCEP00013 names the provider "example"');

# the rest of mod_scep is unchanged: a wrong password never reaches it
$r = client_enroll($URL, key => "$W/key2.pem", out => "$W/cert2.pem",
                   cn => "example-wrong-$$", challenge => 'WRONG' . challenge());
is($r->{rc}, 2, 'a wrong password: FAILURE');
like($r->{out}, qr/^failInfo: badMessageCheck$/m, 'badMessageCheck');

# ---- configuration checks through the provider --------------------------------------------
{
    my $ca = pki('ca.pem');
    my $sec = sub {
        my ($cafile, $args) = @_;
        return "<Location /example-configtest>\n    SetHandler scep\n"
             . "    SCEPCACertificateFile \"$cafile\"\n"
             . "    SCEPRAEncryption \"" . pki('ra-both.pem') . '" "'
             . pki('ra-both.key') . "\"\n"
             . "    SCEPCAProvider $args\n"
             . "    SCEPChallenge static configtest\n</Location>\n";
    };
    my ($rc, $out) = httpd_configtest($sec->($ca, "example $ca " . pki('ca.key')));
    is($rc, 0, 'httpd -t: a good example section') or diag($out);

    ($rc, $out) = httpd_configtest($sec->($ca, "example $ca"));
    isnt($rc, 0, "httpd -t: the provider's create() refuses one argument");
    like($out, qr/SCEPCAProvider example: the example CA provider takes two arguments/,
         "... with the provider's message") or diag($out);

    ($rc, $out) = httpd_configtest($sec->(pki('next-ca.pem'),
                                          "example $ca " . pki('ca.key')));
    isnt($rc, 0, "httpd -t: the provider's init() refuses another endpoint CA");
    like($out, qr/SCEP00005: SCEP endpoint <\/example-configtest>: SCEPCAProvider example: the example CA \S+ must be the first certificate of SCEPCACertificateFile/,
         '... with its message') or diag($out);

    ($rc, $out) = httpd_configtest($sec->($ca, "exampel $ca " . pki('ca.key')));
    isnt($rc, 0, 'httpd -t: a misspelt provider name');
    like($out, qr/unknown CA provider 'exampel'/, '... is unknown') or diag($out);
}

done_testing;
