# The admin page (handler scep-admin, NDES's /certsrv/mscep_admin/) with
# one-time passwords in the SQL store: authentication, the redirect to the
# slash form, the exact phrases that scrapers in the field match, UTF-16LE
# and UTF-8, the JSON form, SCEPAdminEnrollUsers, anonymous pages, the
# static password's page, the password cache (SCEPPasswordMax), that the
# database never holds a password, listing and revoking, and passwords bound
# to a CN or a subjectAltName.
use strict;
use warnings;
use Test::More;
use Encode ();
use HTTP::Tiny;
use JSON::PP ();
use MIME::Base64 ();
use Digest::SHA ();
use Time::Local ();
use File::Spec ();
use ScepTest;

need_programs('build/scep-client', 'openssl', 'sqlite3');

my $client = program_path('build/scep-client');
my $W = tempdir();
my $json = JSON::PP->new;

my $ADMIN = '/otp/certsrv/mscep_admin/';
my $SCEP = '/otp/certsrv/mscep';
my @ADMIN_AUTH = (user => 'admin');
my %PASSWORDS = (admin => 'secret', alice => 'secret');

# ---- HTTP without following redirects, with Basic credentials -------------------
# req(METHOD, PATH, user => NAME, accept => TYPE, json => {...}, body => BYTES,
#     headers => {...}): a hash like ScepTest's http_get.
my $UA = HTTP::Tiny->new(max_redirect => 0, timeout => 30, keep_alive => 0,
                         agent => 'mod_scep-tests/1',
                         proxy => undef, http_proxy => undef);

sub req {
    my ($method, $path, %o) = @_;
    my %h = %{ $o{headers} || {} };
    $h{Authorization} = 'Basic '
        . MIME::Base64::encode_base64("$o{user}:$PASSWORDS{$o{user}}", '')
        if $o{user};
    $h{Accept} = $o{accept} if $o{accept};
    my %args = (headers => \%h);
    if ($o{json}) {
        $h{'Content-Type'} = 'application/json';
        $args{content} = $json->encode($o{json});
    }
    elsif (defined $o{body}) {
        $args{content} = $o{body};
    }
    my $res = $UA->request($method, base_url() . $path, \%args);
    my %hd = map { lc($_) => $res->{headers}{$_} } keys %{ $res->{headers} };
    my $ct = $hd{'content-type'} // '';
    $ct = $ct->[0] if ref $ct;
    (my $type = $ct) =~ s/\s*;.*//s;
    diag("HTTP::Tiny: $res->{content}") if $res->{status} == 599;
    return { status => $res->{status}, content_type => $ct, type => lc $type,
             body => $res->{content} // '', headers => \%hd };
}

# The page as text: UTF-16LE (default) or UTF-8 (SCEPAdminEncoding UTF-8)
sub page_text {
    my ($r) = @_;
    my $enc = $r->{content_type} =~ /charset=utf-16le/i ? 'UTF-16LE' : 'UTF-8';
    return Encode::decode($enc, $r->{body}, Encode::FB_CROAK | Encode::LEAVE_SRC);
}

sub json_of {
    my ($r) = @_;
    my $d = eval { $json->decode($r->{body}) };
    diag("not JSON: $r->{body}") unless $d;
    return $d || {};
}

# A new one-time password from the JSON form of an admin page
sub new_password {
    my ($path, %o) = @_;
    my $r = req($o{json} ? 'POST' : 'GET', $path, accept => 'application/json',
                @ADMIN_AUTH, %o);
    my $d = $r->{status} == 200 ? json_of($r) : {};
    diag("$path: HTTP $r->{status} $r->{body}") unless $d->{password};
    return $d->{password};
}

# The CA certificate's MD5 thumbprint as NDES prints it
my $thumb = do {
    my $r = run_cmd(['openssl', 'x509', '-in', pki('ca.pem'), '-noout',
                     '-fingerprint', '-md5'], timeout => 30);
    my ($hex) = $r->{out} =~ /=\s*([0-9A-F:]+)/i;
    $hex =~ s/://g;
    join ' ', uc($hex) =~ /(.{8})/g;
};
like($thumb, qr/^[0-9A-F]{8}(?: [0-9A-F]{8}){3}$/,
     "MD5 thumbprint of t/pki/ca.pem: $thumb");

# ---- the database, white-box ---------------------------------------------------------
my $DB = File::Spec->catfile(top_dir(), 't', 'db', 'scep.db');
my $PWKEY = slurp(pki('otp.key'));   # SCEPPasswordKeyFile: the file's bytes

sub sql {
    my ($q) = @_;
    my $r = run_cmd(['sqlite3', '-readonly', '-batch', $DB, $q], timeout => 30);
    diag("sqlite3: $r->{err}") if $r->{rc};
    chomp(my $out = $r->{out});
    return $out;
}

# the stored form: hex HMAC-SHA256 of the password under the key file
sub pw_hash { Digest::SHA::hmac_sha256_hex($_[0], $PWKEY) }

sub pw_row {
    my ($pw) = @_;
    my $h = pw_hash($pw);
    my $out = sql("SELECT id, endpoint, state, issuer, "
                  . "COALESCE(transaction_id, '') FROM scep_password "
                  . "WHERE hash = '$h'");
    return undef unless length $out;
    my %row;
    @row{qw(id endpoint state issuer tid)} = split /\|/, $out, 5;
    return \%row;
}

# ---- enrollment through /otp/certsrv/mscep ---------------------------------------------
my $n = 0;
sub enroll {
    my ($pw, $cn, @args) = @_;
    $n++;
    my %f = (key => "$W/key$n.pem", out => "$W/cert$n.pem");
    my $tid = "t20-$$-$n";
    my $mark = log_mark();
    my $r = run_cmd([$client, 'enroll', base_url() . $SCEP, '--key', $f{key},
                     '--out', $f{out}, '--cn', $cn, '--tid', $tid,
                     (defined $pw ? ('--challenge', $pw) : ()), @args],
                    timeout => 60);
    $r->{cert} = $f{out};
    $r->{tid} = $tid;
    # this transaction's lines only (other tests may share the server)
    my $log = wait_log($mark, qr/SCEP0001[23]:[^\n]*transaction \Q$tid\E\b/);
    $r->{log} = join '', grep { /transaction \Q$tid\E\b/ } split /^/m, $log;
    return $r;
}

sub enroll_ok {
    my ($what, $pw, $cn, @args) = @_;
    my $r = enroll($pw, $cn, @args);
    is($r->{rc}, 0, "$what: SUCCESS") or diag("$r->{cmd}\n$r->{out}$r->{err}$r->{log}");
    ok(-s $r->{cert} && openssl_verify($r->{cert}), "$what: certificate verifies");
    is(cert_cn($r->{cert}), $cn, "$what: CN=$cn") if -s $r->{cert};
    return $r;
}

sub enroll_refused {
    my ($what, $pw, $cn, $log_re, @args) = @_;
    my $r = enroll($pw, $cn, @args);
    is($r->{rc}, 2, "$what: FAILURE") or diag("$r->{cmd}\n$r->{out}$r->{err}");
    like($r->{out}, qr/^failInfo: badMessageCheck$/m, "$what: badMessageCheck");
    ok(!-e $r->{cert}, "$what: no certificate");
    like($r->{log}, $log_re, "$what: the error log says why") or diag($r->{log});
    return $r;
}

my @issued;   # every password this test saw, for the plaintext check

# ==== authentication =======================================================================
{
    my $r = req('GET', $ADMIN);
    is($r->{status}, 401, "$ADMIN without credentials: 401");
    like($r->{headers}{'www-authenticate'} // '', qr/^Basic /,
         '401 asks for Basic credentials');
    unlike(eval { page_text($r) } // '', qr/challenge password is/,
           'no password in the 401 page');

    $PASSWORDS{admin} = 'wrong';
    my $bad = req('GET', $ADMIN, user => 'admin');
    $PASSWORDS{admin} = 'secret';
    is($bad->{status}, 401, "$ADMIN with a wrong password: 401");

    my $mark = log_mark();
    $r = req('GET', '/otp/admin-noauth/');
    is($r->{status}, 403,
       "/otp/admin-noauth/ (no Auth*, not anonymous): 403 (nobody could log in)");
    unlike($r->{body}, qr/challenge password is/i, '/otp/admin-noauth/: no password');
    like(wait_log($mark, qr/SCEP00119/),
         qr/SCEP00119: admin page refused: no authenticated user/,
         '/otp/admin-noauth/: SCEP00119 says why');
}

# ==== the redirect to the slash form =======================================================
{
    (my $noslash = $ADMIN) =~ s{/$}{};
    my $r = req('GET', $noslash, @ADMIN_AUTH);
    is($r->{status}, 301, "$noslash: 301");
    like($r->{headers}{location} // '', qr{^http://[^/]+\Q$ADMIN\E$},
         "Location: ...$ADMIN");
    unlike($r->{body}, qr/challenge password is/i, 'the redirect issues no password');
    $r = req('GET', "$noslash?list", @ADMIN_AUTH);
    is($r->{status}, 301, "$noslash?list: 301");
    like($r->{headers}{location} // '', qr{\Q$ADMIN\E\?list$},
         'the query string is kept');
}

# ==== the default page: UTF-16LE, the exact NDES phrases ====================================
my ($page_pw, $page_utf16);
{
    my $r = req('GET', $ADMIN, @ADMIN_AUTH);
    is($r->{status}, 200, "$ADMIN as admin: 200");
    is($r->{type}, 'text/html', 'Content-Type text/html');
    like($r->{content_type}, qr/;\s*charset=utf-16le\b/i, 'charset=utf-16le');
    like($r->{headers}{'cache-control'} // '', qr/no-store/, 'Cache-Control: no-store');
    ok(length($r->{body}) % 2 == 0, 'an even number of bytes');
    isnt(substr($r->{body}, 0, 2), "\xFF\xFE", 'no byte order mark (like Windows)');
    is(substr($r->{body}, 0, 2), "<\0", 'starts with "<" in UTF-16LE');
    my $t = eval { page_text($r) };
    ok(defined $t, 'decodes as UTF-16LE') or diag($@);
    $t //= '';
    $page_utf16 = $t;
    like($t, qr{<Title>Network Device Enrollment Service</Title>}i,
         'title Network Device Enrollment Service');
    like($t, qr/The thumbprint \(hash value\) for the CA certificate is: <B> \Q$thumb\E <\/B>/,
         'thumbprint phrase with the MD5 of t/pki/ca.pem (four groups of 8)');
    like($t, qr/The enrollment challenge password is: <B> [0-9A-F]{16} <\/B>/,
         'password phrase: 16 uppercase hex characters');
    like($t, qr/This password can be used only once and will expire within 60 minutes\./,
         'one-time, 60 minutes');
    unlike($t, qr/used multiple times/, 'not the static wording');

    # what the scrapers in the field do
    my ($pw) = $t =~ /The enrollment challenge password is: <B> (\S*)/;
    ok(defined $pw, 'scraper regex "The enrollment challenge password is: <B> (\S*)" matches');
    my ($pw2) = ($pw // '') =~ /([A-Z0-9]{16,32})/;
    is($pw2, $pw, 'and ([A-Z0-9]{16,32}) takes the whole password');
    my ($tp) = $t =~ /The thumbprint \(hash value\) for the CA certificate is: <B> ([0-9A-F ]+?) <\/B>/;
    is($tp, $thumb, 'thumbprint scraped');
    $page_pw = $pw;
    push @issued, $pw if $pw;

    # the page's password is a live one-time password of pool "otp", issued to admin
    my $row = $pw ? pw_row($pw) : undef;
    ok($row, 'the page password is in scep_password (by its HMAC)');
    is($row && $row->{endpoint}, 'otp', '... in pool otp');
    is($row && $row->{state}, '0', '... unused');
    is($row && $row->{issuer}, 'admin', '... issued to admin');
}

# ---- a refresh issues a new password -----------------------------------------------------
{
    my $r = req('GET', $ADMIN, @ADMIN_AUTH);
    my ($pw) = eval { page_text($r) } =~ /challenge password is: <B> ([0-9A-F]{16}) /;
    ok($pw, 'refresh: a password');
    isnt($pw, $page_pw, 'refresh: a new password');
    push @issued, $pw if $pw;
}

# ---- the same page in UTF-8 ------------------------------------------------------------------
{
    my $r = req('GET', '/otp/admin-utf8/', @ADMIN_AUTH);
    is($r->{status}, 200, '/otp/admin-utf8/: 200');
    like($r->{content_type}, qr{^text/html;\s*charset=utf-8$}i, 'charset=utf-8');
    unlike($r->{body}, qr/\0/, 'no NUL bytes (not UTF-16)');
    isnt(substr($r->{body}, 0, 3), "\xEF\xBB\xBF", 'no UTF-8 BOM');
    my $t = eval { page_text($r) } // '';
    like($t, qr{<Title>Network Device Enrollment Service</Title>}i, 'UTF-8: title');
    like($t, qr/The thumbprint \(hash value\) for the CA certificate is: <B> \Q$thumb\E <\/B>/,
         'UTF-8: thumbprint phrase');
    like($t, qr/The enrollment challenge password is: <B> [0-9A-F]{16} <\/B>/,
         'UTF-8: password phrase');
    like($t, qr/This password can be used only once and will expire within 60 minutes\./,
         'UTF-8: one-time, 60 minutes');
    my ($pw) = $t =~ /The enrollment challenge password is: <B> (\S*)/;
    ok($pw && $pw =~ /^[A-Z0-9]{16,32}$/, 'UTF-8: scraper regexes match');
    push @issued, $pw if $pw;
    (my $a = $t) =~ s/[0-9A-F]{16}/PW/;
    (my $b = $page_utf16) =~ s/[0-9A-F]{16}/PW/;
    is($a, $b, 'UTF-8 and UTF-16LE pages are the same text');
}

# ==== JSON ===================================================================================
{
    my $before = time;
    my $r = req('GET', $ADMIN, @ADMIN_AUTH, accept => 'application/json');
    is($r->{status}, 200, 'JSON: 200');
    is($r->{type}, 'application/json', 'JSON: Content-Type application/json');
    my $d = json_of($r);
    like($d->{password} // '', qr/^[0-9A-F]{16}$/, 'JSON: password, 16 uppercase hex');
    push @issued, $d->{password} if $d->{password};
    is($d->{thumbprint}, $thumb, 'JSON: thumbprint');
    is($d->{validity_minutes}, 60, 'JSON: validity_minutes 60');
    ok(JSON::PP::is_bool($d->{single_use}) && $d->{single_use}, 'JSON: single_use true');
    my $exp = $d->{expires} // '';
    like($exp, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/,
         "JSON: expires is RFC 3339 ($exp)");
    if ($exp =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(Z|([+-])(\d\d):(\d\d))$/) {
        my $t = Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1);
        $t -= ($8 eq '+' ? 1 : -1) * ($9 * 3600 + $10 * 60) if $7 ne 'Z';
        my $ahead = $t - $before;
        ok($ahead >= 59 * 60 && $ahead <= 61 * 60,
           "JSON: expires ~60 minutes ahead ($ahead s)");
    }
    else {
        fail('JSON: expires parses');
    }
    # format=json does the same
    $r = req('GET', "$ADMIN?format=json", @ADMIN_AUTH);
    is($r->{type}, 'application/json', '?format=json: application/json');
    my $d2 = json_of($r);
    push @issued, $d2->{password} if $d2->{password};
    ok($d2->{password} && $d2->{password} ne ($d->{password} // ''),
       '?format=json: another new password');
}

# ==== SCEPAdminEnrollUsers alice ===============================================================
{
    my $r = req('GET', '/otp/admin-limited/', user => 'admin');
    my $t = eval { page_text($r) } // '';
    like($t, qr/You do not have sufficient permission to enroll with SCEP\.  Please contact your system administrator\./,
         '/otp/admin-limited/ as admin: the NDES permission phrase (two spaces)');
    unlike($t, qr/challenge password is/, '/otp/admin-limited/ as admin: no password');
    like($t, qr{<Title>Network Device Enrollment Service</Title>}i, '... in the NDES page');

    $r = req('GET', '/otp/admin-limited/', user => 'admin', accept => 'application/json');
    is($r->{status}, 403, '/otp/admin-limited/ as admin, JSON: 403');
    is(json_of($r)->{error}, 'denied', '... error denied');
    ok(!exists json_of($r)->{password}, '... no password');

    $r = req('GET', '/otp/admin-limited/', user => 'alice');
    is($r->{status}, 200, '/otp/admin-limited/ as alice: 200');
    $t = eval { page_text($r) } // '';
    my ($pw) = $t =~ /The enrollment challenge password is: <B> ([0-9A-F]{16}) <\/B>/;
    ok($pw, '/otp/admin-limited/ as alice: a password');
    unlike($t, qr/sufficient permission/, '... and no refusal');
    push @issued, $pw if $pw;
    my $row = $pw ? pw_row($pw) : undef;
    is($row && $row->{issuer}, 'alice', '... issued to alice (scep_password.issuer)');
}

# ==== anonymous page ============================================================================
{
    my $r = req('GET', '/otp/admin-anon/');
    is($r->{status}, 200, '/otp/admin-anon/ without credentials: 200');
    my ($pw) = (eval { page_text($r) } // '') =~
        /The enrollment challenge password is: <B> ([0-9A-F]{16}) <\/B>/;
    ok($pw, '/otp/admin-anon/: a password');
    push @issued, $pw if $pw;
    # anonymous use issues passwords only: no listing, revoking, deciding
    my $l = req('GET', '/otp/admin-anon/?list', accept => 'application/json');
    is($l->{status}, 403, '/otp/admin-anon/?list without credentials: 403');
    my $rv = req('POST', '/otp/admin-anon/?revoke=1', accept => 'application/json');
    is($rv->{status}, 403, '/otp/admin-anon/?revoke without credentials: 403');
}

# ==== the static password's page (NDES UseSinglePassword) ========================================
{
    my $r = req('GET', '/certsrv/mscep_admin/');
    is($r->{status}, 200, '/certsrv/mscep_admin/ (static): 200');
    my $t = eval { page_text($r) } // '';
    my $static = challenge();
    like($t, qr/The enrollment challenge password is: <B> \Q$static\E <\/B>/,
         'static: the password of t/pki/challenge');
    like($t, qr/This password can be used multiple times and will not expire\./,
         'static: the multiple-use wording');
    unlike($t, qr/used only once/, 'static: not the one-time wording');
    like($t, qr/The thumbprint \(hash value\) for the CA certificate is: <B> \Q$thumb\E <\/B>/,
         'static: thumbprint');
    my $again = eval { page_text(req('GET', '/certsrv/mscep_admin/')) } // '';
    like($again, qr/<B> \Q$static\E <\/B>/, 'static: a refresh shows the same password');
    my $d = json_of(req('GET', '/certsrv/mscep_admin/', accept => 'application/json'));
    is($d->{password}, $static, 'static, JSON: the password');
    ok(JSON::PP::is_bool($d->{single_use}) && !$d->{single_use}, 'static, JSON: single_use false');
    is($d->{expires}, undef, 'static, JSON: expires null');
}

# ==== the password cache (pool "full", SCEPPasswordMax 2) =========================================
{
    my $FULL = '/full/admin/';
    # start empty: revoke what an earlier run against this server left
    my $list = json_of(req('GET', "$FULL?list", @ADMIN_AUTH, accept => 'application/json'));
    for my $p (@{ $list->{passwords} || [] }) {
        req('POST', "$FULL?revoke=$p->{id}", @ADMIN_AUTH, accept => 'application/json');
    }
    $list = json_of(req('GET', "$FULL?list", @ADMIN_AUTH, accept => 'application/json'));
    is(ref $list->{passwords}, 'ARRAY', "$FULL?list answers a list");
    is(scalar @{ $list->{passwords} || [] }, 0, "$FULL: no outstanding password to begin with");

    # HEAD (link previews, monitors) answers like a GET but issues nothing
    my $head = req('HEAD', $FULL, @ADMIN_AUTH);
    is($head->{status}, 200, "HEAD $FULL: 200");
    like($head->{content_type}, qr/charset=utf-16le/i, "HEAD $FULL: the GET's Content-Type");
    $list = json_of(req('GET', "$FULL?list", @ADMIN_AUTH, accept => 'application/json'));
    is(scalar @{ $list->{passwords} || [] }, 0, "HEAD $FULL issued no password");

    my @pw;
    for my $i (1, 2) {
        my $t = eval { page_text(req('GET', $FULL, @ADMIN_AUTH)) } // '';
        my ($pw) = $t =~ /The enrollment challenge password is: <B> ([0-9A-F]{16}) <\/B>/;
        ok($pw, "$FULL: password $i of 2");
        push @pw, $pw if $pw;
    }
    push @issued, @pw;
    my $mark = log_mark();
    my $r = req('GET', $FULL, @ADMIN_AUTH);
    is($r->{status}, 200, "$FULL: the third page is still 200 (as NDES)");
    my $t = eval { page_text($r) } // '';
    like($t, qr/The password cache is full\./, 'third: "The password cache is full."');
    like($t, qr/use a password that was issued before.*wait for one to expire.*raise the limit/s,
         'third: the advice');
    unlike($t, qr/challenge password is: <B>/, 'third: no password');
    like(wait_log($mark, qr/SCEP00113/), qr/SCEP00113: admin page: password cache full/,
         'third: SCEP00113 in the error log');

    $r = req('GET', $FULL, @ADMIN_AUTH, accept => 'application/json');
    is($r->{status}, 429, 'JSON when full: 429');
    my $d = json_of($r);
    is($d->{error}, 'cache_full', 'JSON when full: error cache_full');
    is($d->{max}, 2, 'JSON when full: max 2');
    ok(!exists $d->{password}, 'JSON when full: no password');
    like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'JSON when full: Retry-After');

    # a revoked password no longer counts
    $list = json_of(req('GET', "$FULL?list", @ADMIN_AUTH, accept => 'application/json'));
    is(scalar @{ $list->{passwords} || [] }, 2, "$FULL?list: two outstanding");
    my $id = $list->{passwords}[0]{id};
    $r = req('POST', "$FULL?revoke=$id", @ADMIN_AUTH, accept => 'application/json');
    is($r->{status}, 200, "$FULL: revoke one");
    $d = json_of(req('GET', $FULL, @ADMIN_AUTH, accept => 'application/json'));
    ok($d->{password}, "$FULL: after a revocation there is room for one more");
    push @issued, $d->{password} if $d->{password};
}

# ==== ?list: outstanding passwords, without secrets ================================================
my ($list_pw, $list_id);
{
    $list_pw = new_password($ADMIN);
    push @issued, $list_pw if $list_pw;
    my $row = $list_pw ? pw_row($list_pw) : undef;
    $list_id = $row && $row->{id};
    ok($list_id, "the new password's row id is $list_id") if $list_id;

    my $r = req('GET', "$ADMIN?list", @ADMIN_AUTH, accept => 'application/json');
    is($r->{status}, 200, '?list, JSON: 200');
    is($r->{type}, 'application/json', '?list, JSON: application/json');
    my $d = json_of($r);
    my @rows = @{ $d->{passwords} || [] };
    ok(@rows >= 1, '?list, JSON: passwords listed (' . scalar(@rows) . ')');
    my ($mine) = grep { ($_->{id} // '') eq ($list_id // '-') } @rows;
    ok($mine, '?list, JSON: the new password is listed by id');
    is($mine && $mine->{issuer}, 'admin', '?list, JSON: issuer admin');
    like($mine && $mine->{created}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, '?list: created RFC 3339');
    like($mine && $mine->{expires}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, '?list: expires RFC 3339');
    my %keys = map { %$_ } @rows;
    is(join(',', sort keys %keys), 'bind_cn,bind_profile,bind_san,created,expires,id,issuer',
       '?list, JSON: no password or hash field');
    my @shown = grep { $r->{body} =~ /\Q$_\E/i } @issued;
    is(scalar @shown, 0, '?list, JSON: none of the ' . scalar(@issued)
                         . ' passwords issued so far is shown') or diag("@shown");
    my $h = pw_hash($list_pw // '');
    unlike($r->{body}, qr/\Q$h\E/, '?list, JSON: hash not shown');

    $r = req('GET', "$ADMIN?list", @ADMIN_AUTH);
    is($r->{status}, 200, '?list, HTML: 200');
    my $t = eval { page_text($r) } // '';
    like($t, qr{<TR><TD>\Q$list_id\E</TD><TD>admin</TD>}, '?list, HTML: the row, issuer admin')
        if $list_id;
    like($t, qr{Action="\?revoke=\Q$list_id\E"}, '?list, HTML: a Revoke form for it') if $list_id;
    my @shown_html = grep { $t =~ /\Q$_\E/i } @issued;
    is(scalar @shown_html, 0, '?list, HTML: none of the ' . scalar(@issued)
                         . ' passwords issued so far is shown') or diag("@shown_html");
    unlike($t, qr/challenge password is/, '?list issues no password');
}

# ==== POST ?revoke=ID ==========================================================================
{
    my $r = req('GET', "$ADMIN?revoke=$list_id", @ADMIN_AUTH);
    is($r->{status}, 405, 'GET ?revoke=: 405');
    is(pw_row($list_pw)->{state}, '0', 'the GET revoked nothing');

    my $mark = log_mark();
    $r = req('POST', "$ADMIN?revoke=$list_id", @ADMIN_AUTH);
    is($r->{status}, 303, 'POST ?revoke=ID (HTML form): 303');
    like($r->{headers}{location} // '', qr{\Q$ADMIN\E\?list$}, '... back to ?list');
    like(wait_log($mark, qr/SCEP00117/),
         qr/SCEP00117: admin page: admin revoked password \Q$list_id\E: done/,
         'SCEP00117: who revoked which');
    is(pw_row($list_pw)->{state}, '3', 'scep_password.state 3 (revoked)');

    $r = req('POST', "$ADMIN?revoke=$list_id", @ADMIN_AUTH, accept => 'application/json');
    is($r->{status}, 404, 'revoke again, JSON: 404');
    is(json_of($r)->{error}, 'not_found', '... not_found');
    my $d = json_of(req('GET', "$ADMIN?list", @ADMIN_AUTH, accept => 'application/json'));
    ok(!grep({ $_->{id} eq $list_id } @{ $d->{passwords} || [] }),
       'a revoked password is no longer listed');

    enroll_refused('enroll with the revoked password', $list_pw, "revoked-$$",
                   qr/SCEP00012: PKCSReq refused \(badMessageCheck\).*revoked/);

    # JSON revoke
    my $pw = new_password($ADMIN);
    push @issued, $pw if $pw;
    my $id = $pw && pw_row($pw)->{id};
    $r = req('POST', "$ADMIN?revoke=$id", @ADMIN_AUTH, accept => 'application/json');
    is($r->{status}, 200, 'POST ?revoke=ID, JSON: 200');
    ok(json_of($r)->{revoked}, '... revoked: true');
    enroll_refused('enroll with a password revoked through JSON', $pw, "revoked2-$$",
                   qr/revoked/);
}

# ==== parameters and cross-site POSTs =========================================================
{
    my $r = req('POST', "$ADMIN?revoke=abc", @ADMIN_AUTH, accept => 'application/json');
    is($r->{status}, 400, 'POST ?revoke=abc (not a number): 400');
    $r = req('GET', "$ADMIN?format=json&list", @ADMIN_AUTH);
    ok($r->{type} eq 'application/json' && exists json_of($r)->{passwords},
       '?format=json&list lists (list need not come first)');

    # a form-encoded POST body binds too
    $r = req('POST', $ADMIN, @ADMIN_AUTH, accept => 'application/json',
             headers => { 'Content-Type' => 'application/x-www-form-urlencoded' },
             body => 'cn=form.example.com');
    my $pw = json_of($r)->{password};
    ok($pw, 'a password from a form-encoded POST');
    push @issued, $pw if $pw;
    my $id = $pw ? pw_row($pw)->{id} : '-';
    my $d = json_of(req('GET', "$ADMIN?list", @ADMIN_AUTH, accept => 'application/json'));
    my ($row) = grep { $_->{id} eq $id } @{ $d->{passwords} || [] };
    is($row && $row->{bind_cn}, 'form.example.com', '... bound to CN form.example.com');

    # a POST from another site's page (the admin's browser holds the
    # credentials) changes nothing
    my $mark = log_mark();
    $r = req('POST', "$ADMIN?revoke=$id", @ADMIN_AUTH, accept => 'application/json',
             headers => { Origin => 'http://evil.example' });
    is($r->{status}, 403, 'POST ?revoke= with Origin http://evil.example: 403');
    like(wait_log($mark, qr/SCEP00122/), qr/SCEP00122: admin page refused a cross-site POST \(Origin http:\/\/evil\.example/,
         '... SCEP00122');
    $r = req('POST', "$ADMIN?revoke=$id", @ADMIN_AUTH, accept => 'application/json',
             headers => { 'Sec-Fetch-Site' => 'cross-site' });
    is($r->{status}, 403, 'POST ?revoke= with Sec-Fetch-Site cross-site: 403');
    $r = req('POST', $ADMIN, @ADMIN_AUTH, accept => 'application/json',
             headers => { Origin => 'http://evil.example' }, json => { cn => 'x' });
    is($r->{status}, 403, 'a bound password from another site: 403');
    unlike($r->{body}, qr/"password"/, '... no password');
    is(pw_row($pw)->{state}, '0', 'the cross-site revokes did nothing') if $pw;
    (my $origin = base_url()) =~ s{/+$}{};
    $r = req('POST', "$ADMIN?revoke=$id", @ADMIN_AUTH, accept => 'application/json',
             headers => { Origin => $origin, 'Sec-Fetch-Site' => 'same-origin' });
    is($r->{status}, 200, 'the same POST from the page itself (same origin): 200');
    is(pw_row($pw)->{state}, '3', '... revoked') if $pw;
}

# ==== bound passwords =============================================================================
{
    # bound to a CN: a JSON body in a POST
    my $pw = new_password($ADMIN, json => { cn => 'bound.example.com' });
    ok($pw, 'a password bound to CN bound.example.com');
    push @issued, $pw if $pw;
    my $d = json_of(req('GET', "$ADMIN?list", @ADMIN_AUTH, accept => 'application/json'));
    my $id = $pw && pw_row($pw)->{id};
    my ($row) = grep { $_->{id} eq ($id // '') } @{ $d->{passwords} || [] };
    is($row && $row->{bind_cn}, 'bound.example.com', '?list shows bind_cn');

    enroll_refused('bound password, CN=other.example.com', $pw, 'other.example.com',
                   qr/bound to CN 'bound\.example\.com', the CSR has 'other\.example\.com'/);
    my $pr = pw_row($pw);
    is($pr->{state}, '0', 'the refused attempt did not consume it (state 0)');
    is($pr->{tid}, '', '... nor reserve it');
    my $ok = enroll_ok('bound password, CN=bound.example.com', $pw, 'bound.example.com');
    is(pw_row($pw)->{state}, '2', 'now it is used (state 2)');
    enroll_refused('bound password, used, right CN again (new key)', $pw,
                   'bound.example.com', qr/used already/);

    # the CN pattern is a wildcard, case-insensitive
    $pw = new_password($ADMIN, json => { cn => 'router-*.example.com' });
    push @issued, $pw if $pw;
    enroll_refused('CN pattern router-*.example.com, CN=switch-1.example.com', $pw,
                   'switch-1.example.com', qr/bound to CN/);
    enroll_ok('CN pattern router-*.example.com, CN=Router-7.Example.com', $pw,
              'Router-7.Example.com');

    # bound to a SAN: the pattern matches the value, without a type prefix
    $pw = new_password($ADMIN, json => { san => '*.example.com' });
    ok($pw, 'a password bound to SAN *.example.com');
    push @issued, $pw if $pw;
    enroll_refused('SAN binding, no SAN at all', $pw, 'san-none',
                   qr/bound to (?:a )?subjectAltNames? matching '\*\.example\.com'/);
    enroll_refused('SAN binding, SAN dns:host.example.org', $pw, 'san-other',
                   qr/bound to (?:a )?subjectAltNames? matching/, '--san', 'dns:host.example.org');
    # every SAN must match: a stray one would ride along into the certificate
    enroll_refused('SAN binding, one matching and one stray SAN', $pw, 'san-stray',
                   qr/bound to (?:a )?subjectAltNames? matching/,
                   '--san', 'dns:host.example.com', '--san', 'dns:evil.example.net');
    is(pw_row($pw)->{state}, '0', 'the refused attempts did not consume it');
    my $r = enroll_ok('SAN binding, SAN dns:host.example.com', $pw, 'san-ok',
                      '--san', 'dns:host.example.com');
    if (-s $r->{cert}) {
        my $x = run_cmd(['openssl', 'x509', '-noout', '-ext', 'subjectAltName',
                         '-in', $r->{cert}], timeout => 30);
        like($x->{out}, qr/DNS:host\.example\.com/, 'SAN binding: the certificate has the SAN');
    }

    # the query-string form of the binding (GET ?cn=...)
    $pw = new_password("$ADMIN?cn=query.example.com");
    push @issued, $pw if $pw;
    enroll_refused('binding from ?cn=, wrong CN', $pw, 'nope.example.com', qr/bound to CN/);
    enroll_ok('binding from ?cn=, right CN', $pw, 'query.example.com');

    # bound to a profile: the NDES template the CSR's keyUsage selects
    # (/otp defines none: NDES's default IPSECIntermediateOffline)
    $pw = new_password($ADMIN, json => { profile => 'SomeOtherTemplate' });
    push @issued, $pw if $pw;
    enroll_refused('bound to profile SomeOtherTemplate', $pw, "prof-$$",
                   qr/bound to profile 'SomeOtherTemplate', the request is for 'IPSECIntermediateOffline'/);
    $pw = new_password($ADMIN, json => { profile => 'IPSECIntermediateOffline' });
    push @issued, $pw if $pw;
    enroll_ok('bound to profile IPSECIntermediateOffline', $pw, "prof-ok-$$");

    # The profile syntax writes SAN patterns with a type (allow-san=dns:...);
    # a binding written that way matches names of that type only.
    my $r2 = req('POST', $ADMIN, @ADMIN_AUTH, accept => 'application/json',
                 json => { san => 'dns:*.example.com' });
    is($r2->{status}, 200, 'SAN binding "dns:*.example.com" issued');
    my $pfx = $r2->{status} == 200 ? json_of($r2)->{password} : undef;
    push @issued, $pfx if $pfx;
    my $t = enroll($pfx, 'prefixed', '--san', 'dns:pfx.example.com');
    is($t->{rc}, 0, 'SAN binding "dns:*.example.com" is usable by SAN dns:pfx.example.com');
}

# ==== the database never holds a password =====================================================
{
    ok(scalar(@issued) >= 8, 'passwords collected: ' . scalar @issued);
    my @files = grep { -e } map { "$DB$_" } ('', '-wal', '-shm', '-journal');
    my $bytes = join '', map { slurp($_) } @files;
    ok(length $bytes, 'read ' . join(' ', map { s{.*/}{}r } @files));
    my @found = grep { index($bytes, $_) >= 0 || index($bytes, lc $_) >= 0
                       || index($bytes, Encode::encode('UTF-16LE', $_)) >= 0 } @issued;
    is(scalar @found, 0, 'no issued password appears in t/db/scep.db*')
        or diag("found: @found");
    my $n_hash = 0;
    for my $pw (@issued) {
        my $row = pw_row($pw);
        $n_hash++ if $row;
    }
    is($n_hash, scalar @issued, 'each issued password has its HMAC in scep_password.hash');
    like(sql('SELECT hash FROM scep_password ORDER BY id DESC LIMIT 1'),
         qr/^[0-9a-f]{64}$/, 'the hash column holds 64 hex digits');
}

# ---- leave pool "otp" as we found it: revoke what this test left unused ---------------
for my $pw (@issued) {
    my $row = pw_row($pw) or next;
    next unless $row->{endpoint} eq 'otp' && $row->{state} eq '0';
    req('POST', "$ADMIN?revoke=$row->{id}", @ADMIN_AUTH, accept => 'application/json');
}

done_testing;
