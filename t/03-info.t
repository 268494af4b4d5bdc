# The NDES-like page on a plain GET, and unknown operations.
use strict;
use warnings;
use Test::More;
use ScepTest;

for my $path ('/certsrv/mscep/mscep.dll', '/certsrv/mscep/mscep.dll/pkiclient.exe',
              '/certsrv/mscep/') {
    my $r = http_get($path);
    is($r->{status}, 200, "GET $path: 200");
    is($r->{type}, 'text/html', "GET $path: text/html")
        or diag("Content-Type: $r->{content_type}");
    like($r->{body}, qr/Network Device Enrollment Service/,
         "GET $path: says Network Device Enrollment Service");
    like($r->{body}, qr{/certsrv/mscep_admin/}, "GET $path: points at /certsrv/mscep_admin/");
}

for my $q ('operation=GetCRLs', 'operation=Bogus&message=x',
           'operation=PKIOperationX') {
    my $r = http_get("/certsrv/mscep/mscep.dll?$q");
    is($r->{status}, 400, "?$q: 400");
}

done_testing;
