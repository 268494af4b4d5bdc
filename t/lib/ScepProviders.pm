package ScepProviders;
# Helpers of the CA provider tests (t/50-command.t, t/51-example-provider.t,
# t/52-multi-endpoint.t): one-time passwords from an admin page, enrollment
# and polling with build/scep-client, what an issued certificate carries,
# and "httpd -t" with an extra configuration snippet.
use strict;
use warnings;

use Exporter 'import';
use File::Spec ();
use HTTP::Tiny ();
use JSON::PP ();
use Test::More ();
use Time::Local ();
use ScepTest;

our @EXPORT = qw(
    pki2 providers_dir need_provider_fixtures
    otp_password client_enroll client_poll
    cert_days cert_ext cert_issuer_is cert_key_is
    httpd_configtest
);

sub pki2 { File::Spec->catfile(top_dir(), 't', 'pki2', @_) }

sub providers_dir { File::Spec->catfile(top_dir(), 't', 'providers', @_) }

# The fixtures t/setup/providers.sh makes (t/run-tests.sh sources it): their
# absence is a broken run, not a reason to skip.
sub need_provider_fixtures {
    my @missing = grep { !-e $_ } @_;
    return 1 unless @missing;
    Test::More::plan(tests => 1);
    Test::More::fail("missing @missing: t/setup/providers.sh did not run "
                     . "(use t/run-tests.sh, or source it by hand)");
    exit 1;
}

# A fresh one-time password from an anonymous admin page (JSON).
sub otp_password {
    my ($admin) = @_;
    my $ua = HTTP::Tiny->new(timeout => 30, keep_alive => 0,
                             agent => 'mod_scep-tests/1', proxy => undef,
                             http_proxy => undef);
    my $res = $ua->get(base_url() . $admin,
                       { headers => { Accept => 'application/json' } });
    my $d = $res->{status} == 200
        ? eval { JSON::PP->new->decode($res->{content}) } : undef;
    Test::More::diag("$admin: HTTP $res->{status} $res->{content}")
        unless $d && $d->{password};
    return $d ? $d->{password} : undef;
}

my $CLIENT;
sub _client { $CLIENT //= program_path('build/scep-client') }

# client_enroll(PATH, key => FILE, out => FILE, cn => NAME, tid => ID,
#               challenge => PW, args => [...])
sub client_enroll {
    my ($path, %o) = @_;
    unlink $o{out} if $o{out};
    my @a = (_client(), 'enroll', base_url() . $path, '--key', $o{key},
             '--out', $o{out}, '--cn', $o{cn});
    push @a, '--tid', $o{tid} if defined $o{tid};
    push @a, '--challenge', $o{challenge} if defined $o{challenge};
    push @a, @{ $o{args} || [] };
    return run_cmd(\@a, timeout => $o{timeout} // 120);
}

# client_poll(PATH, key => FILE, out => FILE, cn => NAME, tid => ID)
sub client_poll {
    my ($path, %o) = @_;
    unlink $o{out} if $o{out};
    return run_cmd([_client(), 'poll', base_url() . $path, '--key', $o{key},
                    '--out', $o{out}, '--cn', $o{cn}, '--tid', $o{tid}],
                   timeout => $o{timeout} // 120);
}

my %MON = (Jan => 0, Feb => 1, Mar => 2, Apr => 3, May => 4, Jun => 5,
           Jul => 6, Aug => 7, Sep => 8, Oct => 9, Nov => 10, Dec => 11);

sub _time {
    my ($s) = @_;
    my ($mon, $d, $h, $m, $sec, $y) =
        $s =~ /(\w{3})\s+(\d+)\s+(\d+):(\d+):(\d+)\s+(\d{4})/ or return undef;
    return Time::Local::timegm($sec, $m, $h, $d, $MON{$mon}, $y);
}

# Validity of a PEM certificate in days (notAfter - notBefore), rounded.
sub cert_days {
    my ($file) = @_;
    my $r = run_cmd(['openssl', 'x509', '-in', $file, '-noout', '-startdate',
                     '-enddate'], timeout => 30);
    my ($nb) = $r->{out} =~ /notBefore=(.*)/;
    my ($na) = $r->{out} =~ /notAfter=(.*)/;
    return undef unless $nb && $na;
    my ($b, $a) = (_time($nb), _time($na));
    return undef unless defined $b && defined $a;
    return sprintf('%.0f', ($a - $b) / 86400);
}

# The text of one extension ("openssl x509 -ext NAME"), without its title.
sub cert_ext {
    my ($file, $name) = @_;
    my $r = run_cmd(['openssl', 'x509', '-in', $file, '-noout', '-ext', $name],
                    timeout => 30);
    my @l = split /\n/, $r->{out};
    shift @l;
    s/^\s+|\s+$//g for @l;
    return join ' ', @l;
}

# Signed by CAFILE's certificate (and not just named like it).
sub cert_issuer_is {
    my ($file, $cafile) = @_;
    return scalar openssl_verify($file, $cafile);
}

# Is the certificate's public key the one of the private key file?
sub cert_key_is {
    my ($file, $keyfile) = @_;
    my $c = run_cmd(['openssl', 'x509', '-in', $file, '-noout', '-pubkey'],
                    timeout => 30);
    my $k = run_cmd(['openssl', 'pkey', '-in', $keyfile, '-pubout'],
                    timeout => 30);
    return $c->{rc} == 0 && $k->{rc} == 0 && $c->{out} eq $k->{out};
}

# httpd -t over the suite's configuration plus SNIPPET: (exit code, output).
sub httpd_configtest {
    my ($snippet) = @_;
    my $top = top_dir();
    my $httpd = httpd_bin();
    return (-1, 'no httpd binary found') unless $httpd;
    my $dir = tempdir();
    my $conf = "$dir/configtest.conf";
    spit($conf, "Include \"$top/t/conf/httpd.conf\"\n$snippet\n");
    my $r = run_cmd([$httpd, '-t', '-d', "$top/t", '-f', $conf,
                     '-D', 'APACHE2', '-D', 'APACHE2_4'], timeout => 60);
    my $out = join "\n", grep { !/:trace\d\]/ } split /\n/, "$r->{out}$r->{err}";
    return ($r->{rc}, $out);
}

1;
