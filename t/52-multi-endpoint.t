# Several SCEP endpoints on one server, each with its own CA, CA provider,
# profile and challenge (t/conf/providers.conf.in):
#
#   /multi/a  local    CA 1 (t/pki)   static password of t/pki    MultiA 11 days clientAuth
#   /multi/b  command  CA 2 (t/pki2)  one-time, pool multi-b      MultiB 22 days serverAuth
#   /multi/c  example  CA 2 (t/pki2)  static password of t/pki2   MultiC 33 days clientAuth, emailProtection
#   /multi/d  local    CA 1 (t/pki)   one-time, pool multi-d      MultiD 44 days ipsecIKE
#
# Each publishes its own CA and RA certificates, issues from its own CA with
# its own profile through its own provider, and accepts its own passwords
# only: a password of one endpoint is refused by every other, and that
# refusal does not use a one-time password up.
use strict;
use warnings;
use Test::More;
use ScepTest;
use ScepProviders;

need_programs('build/scep-client', 'openssl');
need_provider_fixtures(pki2('ca.pem'), providers_dir('ca2', 'ca.key'));

my $W = tempdir();
my $client = program_path('build/scep-client');
my ($CA1, $CA2) = (pki('ca.pem'), pki2('ca.pem'));
my $P1 = challenge();
my $P2 = do { my ($l) = split /\r?\n/, slurp(pki2('challenge')); $l };
isnt($P1, $P2, 'the two static passwords differ');

my %EP = (
    a => { ca => $CA1, other => $CA2, provider => 'local', profile => 'MultiA',
           days => 11, eku => qr/^TLS Web Client Authentication$/,
           ra => 'mod_scep RA Encryption' },
    b => { ca => $CA2, other => $CA1, provider => 'command', profile => 'MultiB',
           days => 22, eku => qr/^TLS Web Server Authentication$/,
           ra => 'Second RA Encryption', admin => '/multi/b-admin/' },
    c => { ca => $CA2, other => $CA1, provider => 'example', profile => 'MultiC',
           days => 33, eku => qr/^TLS Web Client Authentication, E-mail Protection$/,
           ra => 'Second RA Encryption' },
    d => { ca => $CA1, other => $CA2, provider => 'local', profile => 'MultiD',
           days => 44, eku => qr/^ipsec Internet Key Exchange$/i,
           ra => 'mod_scep RA Encryption', admin => '/multi/d-admin/' },
);
my @EPS = sort keys %EP;

my $n = 0;
sub enroll_at {
    my ($ep, $pw) = @_;
    $n++;
    my %d = (key => "$W/key$n.pem", out => "$W/cert$n.pem",
             cn => "multi-$ep-$n-$$", tid => "multi-$ep-$n-$$");
    my $r = client_enroll("/multi/$ep", %d, challenge => $pw);
    return ($r, \%d);
}

sub fingerprint {
    my ($file) = @_;
    my $r = run_cmd(['openssl', 'x509', '-in', $file, '-noout', '-fingerprint',
                     '-sha256'], timeout => 30);
    return $r->{rc} == 0 ? $r->{out} : "none: $r->{err}";
}

# ---- GetCACert: each its own CA and RA ------------------------------------------------
for my $ep (@EPS) {
    my $e = $EP{$ep};
    my $dir = "$W/cacert-$ep";
    mkdir $dir;
    my $r = run_cmd([$client, 'getcacert', base_url() . "/multi/$ep", '--out', $dir],
                    timeout => 60);
    is($r->{rc}, 0, "/multi/$ep: GetCACert") or do { diag("$r->{out}$r->{err}"); next };
    my @pems = sort glob("$dir/cacert-*.pem");
    is(scalar @pems, 3, "/multi/$ep: RA encryption, RA signing, CA");
    is(cert_cn($pems[0]), $e->{ra}, "/multi/$ep: RA $e->{ra} first");
    is(fingerprint($pems[-1]), fingerprint($e->{ca}),
       "/multi/$ep: the CA is " . ($e->{ca} eq $CA1 ? 'CA 1' : 'CA 2'));
}

# ---- the passwords ------------------------------------------------------------------------
my %PW = (a => $P1, c => $P2);
for my $ep (qw(b d)) {
    $PW{$ep} = otp_password($EP{$ep}{admin});
    ok($PW{$ep}, "a one-time password of pool multi-$ep");
}
my %OTHER_PW = (otp_b2 => otp_password($EP{b}{admin}),
                otp_d2 => otp_password($EP{d}{admin}));

# ---- refusals first: every password everywhere else ----------------------------------------
for my $ep (@EPS) {
    for my $from (grep { $_ ne $ep } @EPS) {
        my $mark = log_mark();
        my ($r, $d) = enroll_at($ep, $PW{$from});
        is($r->{rc}, 2, "the password of /multi/$from at /multi/$ep: FAILURE")
            or diag("$r->{cmd}\n$r->{out}$r->{err}");
        like($r->{out}, qr/^failInfo: badMessageCheck$/m, '... badMessageCheck');
        ok(!-e $d->{out}, '... no certificate');
        like(wait_log($mark, qr/transaction \Q$d->{tid}\E/),
             qr/transaction \Q$d->{tid}\E, challenge (?:static|otp): the password in the certificate request cannot be verified/,
             "... refused by the challenge of /multi/$ep");
    }
}

# ---- then each endpoint with its own password ---------------------------------------------
for my $ep (@EPS) {
    my $e = $EP{$ep};
    subtest "/multi/$ep: $e->{provider} provider, profile $e->{profile}" => sub {
        my $mark = log_mark();
        my ($r, $d) = enroll_at($ep, $PW{$ep});
        is($r->{rc}, 0, 'its own password: SUCCESS'
                        . ($e->{admin} ? ' (not used up by the refusals elsewhere)' : ''))
            or diag("$r->{cmd}\n$r->{out}$r->{err}");
        return unless -s $d->{out};
        ok(cert_issuer_is($d->{out}, $e->{ca}), 'signed by its CA');
        ok(!cert_issuer_is($d->{out}, $e->{other}), 'not by the other CA');
        ok(cert_key_is($d->{out}, $d->{key}), "for the device's key");
        is(cert_days($d->{out}), $e->{days}, "valid $e->{days} days ($e->{profile})");
        like(cert_ext($d->{out}, 'extendedKeyUsage'), $e->{eku},
             "extended key usage of $e->{profile}");
        like(wait_log($mark, qr/transaction \Q$d->{tid}\E/),
             qr/SCEP00013: PKCSReq issued: transaction \Q$d->{tid}\E, .*profile \Q$e->{profile}\E, CA provider \Q$e->{provider}\E, challenge (?:static|otp)/,
             "SCEP00013: profile $e->{profile}, CA provider $e->{provider}");
    };
}

# ---- one-time passwords are single use, and only in their pool -----------------------------
for my $ep (qw(b d)) {
    my ($r) = enroll_at($ep, $PW{$ep});
    is($r->{rc}, 2, "/multi/$ep: its one-time password a second time: FAILURE");
}
{
    my ($r) = enroll_at('d', $OTHER_PW{otp_b2});
    is($r->{rc}, 2, 'an unused password of pool multi-b at /multi/d: FAILURE');
    ($r) = enroll_at('b', $OTHER_PW{otp_b2});
    is($r->{rc}, 0, '... and still good at /multi/b')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    ($r) = enroll_at('b', $OTHER_PW{otp_d2});
    is($r->{rc}, 2, 'an unused password of pool multi-d at /multi/b: FAILURE');
    ($r) = enroll_at('d', $OTHER_PW{otp_d2});
    is($r->{rc}, 0, '... and still good at /multi/d')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
}

# ---- static passwords stay: again on a and c --------------------------------------------
for my $ep (qw(a c)) {
    my ($r) = enroll_at($ep, $PW{$ep});
    is($r->{rc}, 0, "/multi/$ep: the static password again: SUCCESS")
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
}

done_testing;
