# Undecodable or oversized PKIOperation input: HTTP 400 / 413, a one-line
# text/plain reason, and a tagged error log line (SCEPnnnnn) naming the cause.
use strict;
use warnings;
use Test::More;
use MIME::Base64 qw(encode_base64);
use ScepTest;

my $ndes = '/certsrv/mscep/mscep.dll?operation=PKIOperation';

sub logged {
    my ($mark, $what) = @_;
    my $log = wait_log($mark, qr/SCEP\d{5}/);
    my @lines = grep { /SCEP\d{5}/ } split /\n/, $log;
    ok(@lines, "$what: error_log has a SCEPnnnnn line")
        or diag("error_log since the request:\n$log");
    note("log: $_") for @lines;
    return @lines;
}

sub one_line_reason {
    my ($r, $what) = @_;
    is($r->{type}, 'text/plain', "$what: text/plain")
        or diag("Content-Type: $r->{content_type}");
    (my $b = $r->{body}) =~ s/\r?\n\z//;
    ok(length($b) && $b !~ /\n/, "$what: a one-line reason")
        or diag("body: $r->{body}");
}

sub check_400 {
    my ($what, $r, $mark) = @_;
    is($r->{status}, 400, "$what: 400") or diag("body: $r->{body}");
    one_line_reason($r, $what);
    logged($mark, $what);
}

my $mark;

$mark = log_mark();
check_400('empty POST', http_post($ndes, '', 'Content-Type' => 'application/x-pki-message'),
          $mark);

$mark = log_mark();
check_400('empty POST without Content-Type', http_post($ndes, '', 'Content-Type' => undef),
          $mark);

$mark = log_mark();
check_400('garbage POST',
          http_post($ndes, "this is not a pkiMessage\x00\x01\x02" x 10,
                    'Content-Type' => 'application/x-pki-message'), $mark);

$mark = log_mark();
check_400('POST of a DER certificate (not a SignedData)',
          http_post($ndes, pem_to_der(pki('ca.pem')),
                    'Content-Type' => 'application/x-pki-message'), $mark);

$mark = log_mark();
check_400('GET message=!!!', http_get("$ndes&message=!!!"), $mark);

$mark = log_mark();
check_400('GET without message', http_get($ndes), $mark);

$mark = log_mark();
my $junk = encode_base64("\x30\x82\x01\x00" . ("\xAA" x 300), '');
$junk =~ s/([+\/=])/sprintf('%%%02X', ord $1)/ge;
check_400('GET with base64 of garbage', http_get("$ndes&message=$junk"), $mark);

# ---- too large: 413 -----------------------------------------------------------
{
    $mark = log_mark();
    my $r = http_post('/scep-small?operation=PKIOperation', "\x30" x 2000,
                      'Content-Type' => 'application/x-pki-message');
    is($r->{status}, 413, '/scep-small (SCEPMaxRequestSize 1024): 2000-byte POST -> 413')
        or diag("status $r->{status}: $r->{body}");
    logged($mark, '/scep-small POST 413');

    $mark = log_mark();
    my $b64 = encode_base64("\x30" x 1500, '');
    $b64 =~ s/([+\/=])/sprintf('%%%02X', ord $1)/ge;
    $r = http_get("/scep-small?operation=PKIOperation&message=$b64");
    is($r->{status}, 413, '/scep-small: GET with a 1500-byte message -> 413')
        or diag("status $r->{status}: $r->{body}");
    logged($mark, '/scep-small GET 413');

    $mark = log_mark();
    $r = http_post($ndes, "\x30" x 70000, 'Content-Type' => 'application/x-pki-message');
    is($r->{status}, 413, 'NDES endpoint (default 65536): 70000-byte POST -> 413')
        or diag("status $r->{status}: $r->{body}");
    logged($mark, 'default limit 413');
}

# the server is still there and sane
{
    my $r = http_get('/certsrv/mscep/mscep.dll?operation=GetCACaps');
    is($r->{status}, 200, 'GetCACaps still answers after the bad input');
}

done_testing;
