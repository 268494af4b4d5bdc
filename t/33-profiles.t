# Profiles (NDES certificate templates) and the request policy.
#   /tmpl/mscep: Sig (ku=digitalSignature, clientAuth, 10 days), Enc
#   (ku=keyEncipherment, emailProtection, 20 days), Gen (both or neither,
#   serverAuth+clientAuth, 30 days), chosen by the CSR's keyUsage;
#   /policy/mscep: profile Strict allow-cn=*.example.com
#   allow-san=dns:*.example.com,ip:10.* max-san=2 min-rsa=3072 keys=rsa
#   subject=cn validity=7.
use strict;
use warnings;
use Test::More;
use ScepTest;
use Scep8894;

need_programs('build/scep-client', 'openssl');

my $W = tempdir();
my $pw = challenge();
my $n = 0;

# ---- /tmpl: the template by keyUsage -------------------------------------------------
my @tmpl = (
    ['digitalSignature', 'Sig', 10, qr/^\s*Digital Signature\s*$/m,
     qr/^\s*TLS Web Client Authentication\s*$/m],
    ['keyEncipherment', 'Enc', 20, qr/^\s*Key Encipherment\s*$/m,
     qr/^\s*E-mail Protection\s*$/m],
    ['digitalSignature,keyEncipherment', 'Gen', 30,
     qr/^\s*Digital Signature, Key Encipherment\s*$/m,
     qr/^\s*TLS Web Server Authentication, TLS Web Client Authentication\s*$/m],
    [undef, 'Gen', 30, qr/^\s*Digital Signature, Key Encipherment\s*$/m,
     qr/^\s*TLS Web Server Authentication, TLS Web Client Authentication\s*$/m],
);
for my $t (@tmpl) {
    my ($ku, $prof, $days, $ku_re, $eku_re) = @$t;
    my $what = '/tmpl, CSR keyUsage ' . ($ku // 'absent');
    $n++;
    my $mark = log_mark();
    my ($r, $tid) = enroll_as('enroll', '/tmpl/mscep', key => "$W/t$n.key",
                              out => "$W/t$n.pem", cn => "tmpl-$n-$$",
                              extra => ['--challenge', $pw,
                                        defined $ku ? ('--ku', $ku) : ()]);
    issued_ok($what, $r, "$W/t$n.pem") or next;
    like(wait_log($mark, qr/SCEP00013/),
         qr/SCEP00013: PKCSReq issued: transaction \Q$tid\E, .*profile \Q$prof\E,/,
         "$what: profile $prof");
    my $left = days_left("$W/t$n.pem");
    ok($left > $days - 0.1 && $left <= $days + 0.01, "$what: $days days of validity")
        or diag("days left: $left");
    like(cert_ext("$W/t$n.pem", 'keyUsage'), $ku_re, "$what: keyUsage of $prof");
    like(cert_ext("$W/t$n.pem", 'extendedKeyUsage'), $eku_re, "$what: EKU of $prof");
}

# ---- /policy ----------------------------------------------------------------------------
my $EP = '/policy/mscep';
new_rsa_key("$W/rsa3072.key", 3072);
new_rsa_key("$W/rsa2048.key", 2048);
{
    my $r = run_cmd(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt',
                     'ec_paramgen_curve:P-256', '-out', "$W/ec.key"], timeout => 30);
    die "EC key: $r->{err}" unless $r->{rc} == 0;
}

sub policy_refused {
    my ($what, $fi, $rule, %o) = @_;
    $n++;
    my $mark = log_mark();
    my ($r, $tid) = enroll_as('enroll', $EP, key => $o{key} // "$W/rsa3072.key",
                              out => "$W/p$n.pem", cn => $o{cn},
                              extra => ['--challenge', $pw,
                                        map { ('--san', $_) } @{ $o{san} || [] }]);
    refused($what, $r, $tid, $fi, "profile Strict $rule", $mark, "$W/p$n.pem");
}

sub policy_ok {
    my ($what, %o) = @_;
    $n++;
    my ($r, $tid) = enroll_as('enroll', $EP, key => $o{key} // "$W/rsa3072.key",
                              out => "$W/p$n.pem", cn => $o{cn},
                              extra => ['--challenge', $pw,
                                        map { ('--san', $_) } @{ $o{san} || [] }]);
    issued_ok($what, $r, "$W/p$n.pem");
    return "$W/p$n.pem";
}

policy_refused('CN outside *.example.com', 'badRequest', 'cn-pattern',
               cn => "evil-$$.org");
policy_refused('CN example.com itself (not *.example.com)', 'badRequest', 'cn-pattern',
               cn => 'example.com');
policy_refused('CN with example.com in the middle', 'badRequest', 'cn-pattern',
               cn => "a.example.com.evil-$$.org");
policy_refused('SAN dns:evil.org', 'badRequest', 'san-pattern',
               cn => "a-$$.example.com", san => ['dns:evil.org']);
policy_refused('SAN ip:192.168.1.1 (only ip:10.*)', 'badRequest', 'san-pattern',
               cn => "a-$$.example.com", san => ['ip:192.168.1.1']);
policy_refused('SAN email: (no email pattern)', 'badRequest', 'san-pattern',
               cn => "a-$$.example.com", san => ['email:x@example.com']);
policy_refused('3 SANs (max-san=2)', 'badRequest', 'san-count',
               cn => "a-$$.example.com",
               san => ['dns:a.example.com', 'dns:b.example.com', 'ip:10.0.0.1']);
policy_refused('a 2048-bit RSA key (min-rsa=3072)', 'badRequest', 'key-size',
               cn => "a-$$.example.com", key => "$W/rsa2048.key");
policy_refused('an EC P-256 key (keys=rsa)', 'badAlg', 'key-type',
               cn => "a-$$.example.com", key => "$W/ec.key");

# the good request
{
    my $cn = "a-$$.example.com";
    my $f = policy_ok('3072-bit RSA, CN and SAN in *.example.com', cn => $cn,
                      san => ["dns:$cn"]);
    is(cert_subject($f), "CN=$cn", 'the subject is the CN');
    like(cert_ext($f, 'subjectAltName'), qr/DNS:\Q$cn\E/, 'the SAN is kept');
    my $left = days_left($f);
    ok($left > 6.9 && $left <= 7.01, 'profile Strict: 7 days of validity')
        or diag("days left: $left");

    $f = policy_ok('two SANs, dns: and ip:10.*', cn => "b-$$.example.com",
                   san => ["dns:b-$$.example.com", 'ip:10.1.2.3']);
    like(cert_ext($f, 'subjectAltName'), qr/IP Address:10\.1\.2\.3/, 'the IP SAN is kept');
    policy_ok('CN in upper case (patterns ignore case)', cn => "C-$$.EXAMPLE.COM");
}

# subject=cn: a CSR with more than a CN gets a certificate with the CN only
{
    $n++;
    my $cn = "full-$$.example.com";
    spit("$W/req.cnf", <<"EOF");
[ req ]
prompt = no
distinguished_name = dn
attributes = attrs
req_extensions = ext
[ dn ]
C = XX
O = Evil Corp
OU = Domain Admins
CN = $cn
[ attrs ]
challengePassword = $pw
[ ext ]
subjectAltName = DNS:$cn
EOF
    my $r = run_cmd(['openssl', 'req', '-new', '-config', "$W/req.cnf", '-key',
                     "$W/rsa3072.key", '-outform', 'DER', '-out', "$W/full.der"],
                    timeout => 30);
    is($r->{rc}, 0, 'a CSR with C, O, OU and CN') or diag($r->{err});
    my ($e) = enroll_as('enroll', $EP, key => "$W/rsa3072.key", out => "$W/full.pem",
                        cn => $cn, extra => ['--content', "$W/full.der"]);
    issued_ok('the CSR with C, O, OU and CN', $e, "$W/full.pem");
    is(-s "$W/full.pem" ? cert_subject("$W/full.pem") : undef, "CN=$cn",
       'subject=cn: only the CN is certified');
}

done_testing;
