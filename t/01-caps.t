# GetCACaps: text/plain, NDES URL forms, exact capability list and order.
use strict;
use warnings;
use Test::More;
use ScepTest;

my @expect = qw(POSTPKIOperation Renewal SHA-512 SHA-384 SHA-256 SHA-1
                AES DES3 SCEPStandard);

sub caps {
    my ($path) = @_;
    my $r = http_get("$path?operation=GetCACaps");
    my @caps = grep { length } map { s/\s+$//r } split /\r?\n/, $r->{body};
    return ($r, @caps);
}

for my $path ('/certsrv/mscep/mscep.dll',
              '/certsrv/mscep/mscep.dll/pkiclient.exe',
              '/certsrv/mscep/') {
    my ($r, @caps) = caps($path);
    is($r->{status}, 200, "$path: GetCACaps 200");
    is($r->{type}, 'text/plain', "$path: text/plain");
    is_deeply(\@caps, \@expect, "$path: exact capability list, one per line")
        or diag("got:\n$r->{body}");
    unlike($r->{body}, qr/[ \t]\S/, "$path: one capability per line, no spaces");
    my %pos;
    @pos{@caps} = 0 .. $#caps;
    ok(defined $pos{AES} && defined $pos{DES3} && $pos{AES} < $pos{DES3},
       "$path: AES before DES3 (certmonger takes the first it knows)");
    ok(defined $pos{'SHA-384'}, "$path: SHA-384 present (strongSwan needs it for AES)");
    ok(!grep({ $_ eq 'GetNextCACert' } @caps),
       "$path: no GetNextCACert without a next CA");
}

# the message= CA identifier does not change the answer
{
    my ($r, @caps) = caps('/certsrv/mscep/mscep.dll');
    my $r2 = http_get('/certsrv/mscep/mscep.dll?operation=GetCACaps&message=CAIdentifier');
    is($r2->{status}, 200, 'GetCACaps with message=CAIdentifier: 200');
    is($r2->{body}, $r->{body}, 'GetCACaps with message=: same list');
}

# Other endpoints
{
    my ($r, @caps) = caps('/scep-next');
    is($r->{status}, 200, '/scep-next: GetCACaps 200');
    ok(grep({ $_ eq 'GetNextCACert' } @caps), '/scep-next: GetNextCACert advertised')
        or diag("got:\n$r->{body}");
    my @rest = grep { $_ ne 'GetNextCACert' } @caps;
    is_deeply(\@rest, \@expect, '/scep-next: otherwise the same list');
}

for my $path ('/scep-both', '/scep-ca') {
    my ($r, @caps) = caps($path);
    is($r->{status}, 200, "$path: GetCACaps 200");
    is_deeply(\@caps, \@expect, "$path: default capability list")
        or diag("got:\n$r->{body}");
}

# only what the configuration allows is listed
{
    my ($r, @caps) = caps('/scep-strict');
    is($r->{status}, 200, '/scep-strict: GetCACaps 200');
    my %c = map { $_ => 1 } @caps;
    ok($c{'SHA-256'} && $c{AES}, '/scep-strict: SHA-256 and AES listed')
        or diag("got:\n$r->{body}");
    ok(!$c{'SHA-1'} && !$c{'SHA-384'} && !$c{'SHA-512'} && !$c{DES3},
       '/scep-strict: no SHA-1/384/512, no DES3')
        or diag("got:\n$r->{body}");
}

done_testing;
