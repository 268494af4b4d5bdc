# The admin pages in a real browser: headless Chromium (Debian chromium and
# chromium-driver) driven over the W3C WebDriver protocol (t/lib/
# ScepWebDriver.pm).  The pages must render, and the buttons must work when
# clicked, as an administrator uses them:
#
#   1. the password page (/otp/certsrv/mscep_admin/, UTF-16LE): the browser
#      decodes it and shows the NDES phrases, a 16-hex password and the CA
#      thumbprint;
#   2. manual approval (/manual/admin/?pending): two requests made PENDING by
#      build/scep-client on /manual/mscep; Approve on one, Reject on the other;
#      after the redirect neither is listed; the client's CertPoll then gets
#      SUCCESS (a certificate of t/pki/ca.pem) and FAILURE;
#   3. outstanding passwords (?list): Revoke on the password of step 1 removes
#      that row only, and the password no longer enrolls;
#   4. certificates (?certs): the certificate of step 2 is listed; Revoke with
#      a reason marks it revoked.
#
# A screenshot of every page visited is kept: t/artifacts/browser-NN-name.png.
# SCEP_TEST_VERBOSE=1 shows the page texts.
use strict;
use warnings;
use Test::More;
use File::Path qw(make_path);
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use ScepTest;
use ScepWebDriver;

need_programs('chromium', 'chromedriver', 'build/scep-client', 'openssl');

my $T0 = time;
my $client = program_path('build/scep-client');
my $W = tempdir();
my $port = port();
my $base = base_url();
my ($USER, $PASS) = ('admin', 'secret');
my $ADMIN = '/otp/certsrv/mscep_admin/';     # passwords, certificates
my $OTP_SCEP = '/otp/certsrv/mscep/mscep.dll';
my $MANUAL = '/manual/mscep';                # approval=manual
my $MANUAL_ADMIN = '/manual/admin/';
my $TITLE = 'Network Device Enrollment Service';

# ---- artifacts -----------------------------------------------------------------
my $ART = top_dir() . '/t/artifacts';
make_path($ART);
unlink glob("$ART/browser-*.png");
my $nshot = 0;

# shot(NAME): the browser's viewport as t/artifacts/browser-NN-NAME.png
sub shot {
    my ($wd, $name) = @_;
    my $file = sprintf '%s/browser-%02d-%s.png', $ART, ++$nshot, $name;
    my $n = eval { $wd->screenshot($file) } // 0;
    my $err = $@;
    my $png = -s $file ? slurp($file) : '';
    ok($n > 1000 && substr($png, 0, 8) eq "\x89PNG\r\n\x1a\n",
       "screenshot t/artifacts/browser-" . sprintf('%02d', $nshot)
       . "-$name.png is a PNG ($n bytes)") or diag($err);
    return $file;
}

# ---- the admin pages without a browser (the JSON form) for the bookkeeping ----
my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0, proxy => undef,
                           http_proxy => undef, agent => 'mod_scep-tests/1');

sub admin_json {
    my ($method, $path) = @_;
    my $r = $http->request($method, $base . $path, { headers => {
        Authorization => 'Basic ' . encode_base64("$USER:$PASS", ''),
        Accept => 'application/json' } });
    my $v = eval { JSON::PP->new->utf8->decode($r->{content}) };
    return ($r->{status}, $v, $r->{content});
}

sub password_ids {
    my ($st, $v, $raw) = admin_json(GET => "$ADMIN?list");
    die "GET $ADMIN?list (JSON): HTTP $st $raw\n" unless $st == 200 && $v;
    return { map { $_->{id} => $_ } @{ $v->{passwords} || [] } };
}

# ---- helpers for the browser --------------------------------------------------------
sub page_text {
    my ($wd, $what) = @_;
    my $t = eval { $wd->text } // '';
    diag("--- $what: " . $wd->url . "\n$t") if $ENV{SCEP_TEST_VERBOSE};
    return $t;
}

# click_and_wait(WD, BUTTON, URL_RE): click a submit button and wait for the page
# it leads to (after the server's 303) to be loaded
sub click_and_wait {
    my ($wd, $button, $url_re) = @_;
    $wd->click($button);
    my $ok = $wd->wait_until(sub {
        $wd->stale($button)
            && $wd->script('return document.readyState') eq 'complete'
            && $wd->url =~ $url_re }, 15);
    return $ok;
}

# the row of the table whose first cell is TEXT (an element id or undef)
sub row_by_first_cell {
    my ($wd, $text, $table_css) = @_;
    my $v = $wd->script(q{
        var want = arguments[0].toUpperCase(), sel = arguments[1];
        var rows = document.querySelectorAll(sel);
        for (var i = 0; i < rows.length; i++) {
            var td = rows[i].querySelector('td');
            if (td && td.textContent.trim().toUpperCase() === want)
                return rows[i];
        }
        return null;
    }, $text, ($table_css // 'table') . ' tr');
    return ScepWebDriver::_elid($v);
}

sub first_cells {
    my ($wd) = @_;
    return @{ $wd->script(q{
        var out = [], rows = document.querySelectorAll('table tr');
        for (var i = 0; i < rows.length; i++) {
            var td = rows[i].querySelector('td');
            if (td) out.push(td.textContent.trim());
        }
        return out;
    }) || [] };
}

# the row of serial HEX (written with or without leading zeros or colons)
sub cert_row {
    my ($wd, $hex) = @_;
    my $norm = sub { (my $c = uc shift) =~ s/[:\s]//g; $c =~ s/^0+(?=.)//; $c };
    my ($cell) = grep { $norm->($_) eq $norm->($hex) } first_cells($wd);
    return $cell ? row_by_first_cell($wd, $cell) : undef;
}

sub scroll_to {
    my ($wd, $el) = @_;
    eval { $wd->script('arguments[0].scrollIntoView({block: "center"})',
                       { ScepWebDriver::ELEMENT() => $el }) };
}

# section(NAME, CODE): a subtest; a WebDriver error fails it, not the file
sub section {
    my ($name, $code) = @_;
    subtest $name => sub {
        eval { $code->(); 1 } or fail("$name: $@");
        done_testing();
    };
}

# ---- the browser ------------------------------------------------------------------------
my $wd = eval {
    ScepWebDriver->new(dir => $W, timeout => 20,
                       chromium => program_path('chromium'),
                       chromedriver => program_path('chromedriver'));
};
if (!$wd) {
    plan tests => 1;
    fail("headless Chromium through chromedriver: $@");
    exit 1;
}
diag('browser: ' . ($wd->{capabilities}{browserName} // '?') . ' '
     . ($wd->{capabilities}{browserVersion} // '?')) if $ENV{SCEP_TEST_VERBOSE};

my $thumb_want = do {
    my $r = run_cmd(['openssl', 'x509', '-noout', '-fingerprint', '-md5',
                     '-in', pki('ca.pem')], timeout => 30);
    my ($f) = $r->{out} =~ /=\s*([0-9A-F:]+)/i;
    $f //= '';
    $f =~ s/://g;
    uc $f;
};

my ($pw1, $pw1_id);
my %before;
eval { %before = %{ password_ids() }; 1 } or diag($@);

# ---- 1. the password page --------------------------------------------------------------------
section('password page (UTF-16LE) renders in Chromium' => sub {
    # Basic auth: the credentials in the URL (Chromium takes them for a
    # top-level navigation and keeps them for the realm); else a header
    $wd->get("http://$USER:$PASS\@127.0.0.1:$port$ADMIN");
    if (($wd->title // '') ne $TITLE) {
        diag('credentials in the URL did not work (title "' . $wd->title
             . '"); an Authorization header through DevTools instead');
        $wd->basic_auth($USER, $PASS);
        $wd->get("$base$ADMIN");
    }
    my $text = page_text($wd, 'password page');
    shot($wd, 'password');
    is($wd->title, $TITLE, "title: $TITLE");
    is($wd->script('return document.characterSet'), 'UTF-16LE',
       'the browser decoded the page as UTF-16LE (Content-Type charset)');
    like($text, qr/\Q$TITLE\E/, 'the banner is shown');
    like($text, qr/The enrollment challenge password is:\s*([0-9A-F]{16})\s*$/m,
         'visible: "The enrollment challenge password is:" and 16 hex digits')
        or diag($text);
    ($pw1) = $text =~ /The enrollment challenge password is:\s*([0-9A-F]{16})/;
    like($text, qr/This password can be used only once and will expire within \d+ minutes\./,
         'visible: the one-time password notice');
    my ($thumb) = $text =~ /The thumbprint \(hash value\) for the CA certificate is:\s*([0-9A-F ]+?)\s*$/m;
    $thumb //= '';
    (my $t = $thumb) =~ s/ //g;
    is($t, $thumb_want, "the thumbprint shown ($thumb) is the MD5 of t/pki/ca.pem");
    unlike($wd->source, qr/\x{FFFD}|\0/, 'no replacement characters or NULs in the DOM');
    # the password's row for part 3 (JSON list before and after)
    my %after = %{ password_ids() };
    my @new = grep { !$before{$_} && ($after{$_}{issuer} // '') eq $USER } keys %after;
    is(scalar @new, 1, 'the page issued one password (the JSON ?list has one new row)')
        or diag("new ids: @new");
    $pw1_id = $new[0] if @new == 1;
});

# ---- 2. manual approval -----------------------------------------------------------------------------
my %req;
my $stamp = sprintf '%d-%d', $$, time;
section('pending requests: Approve and Reject buttons' => sub {
    my $chal = challenge();
    for my $k (qw(approve reject)) {
        my %q = (tid => "browser-$k-$stamp", cn => "browser-$k-$stamp",
                 key => "$W/$k.key", out => "$W/$k.pem");
        my $r = run_cmd([$client, 'enroll', $base . $MANUAL, '--key', $q{key},
                         '--out', $q{out}, '--cn', $q{cn}, '--challenge', $chal,
                         '--tid', $q{tid}], timeout => 30);
        is($r->{rc}, 3, "scep-client enroll $q{cn}: PENDING (exit 3)")
            or diag("$r->{cmd}\n$r->{out}$r->{err}");
        $req{$k} = \%q;
    }

    $wd->get("$base$MANUAL_ADMIN?pending");
    my $text = page_text($wd, 'pending');
    shot($wd, 'pending');
    is($wd->title, $TITLE, "?pending: title $TITLE");
    like($text, qr/Requests waiting for approval/, '?pending: the heading');
    for my $k (qw(approve reject)) {
        my $row = row_by_first_cell($wd, $req{$k}{tid}, 'table#pending');
        ok($row, "?pending lists $req{$k}{tid}") or next;
        like($wd->text($row), qr/CN\s*=\s*\Q$req{$k}{cn}\E/,
             "its row shows the subject CN=$req{$k}{cn}");
        $req{$k}{row} = $row;
    }
    for my $k (qw(approve reject)) {
        next unless $req{$k}{row};
        # find the row again: a click reloads the page
        my $row = row_by_first_cell($wd, $req{$k}{tid}, 'table#pending');
        my $btn = $row && $wd->find("input[name=$k-button]", $row);
        ok($btn, "the row of $req{$k}{tid} has a $k button") or next;
        is($wd->attr($btn, 'value'), ucfirst $k, "its label is " . ucfirst $k);
        ok(click_and_wait($wd, $btn, qr{\Q$MANUAL_ADMIN\E\?pending$}),
           "clicking " . ucfirst($k) . " leads back to ?pending (303)")
            or diag('at ' . $wd->url . ': ' . page_text($wd, 'after click'));
        my $after = page_text($wd, "after $k");
        shot($wd, $k eq 'approve' ? 'pending-approved' : 'pending-rejected');
        is($wd->title, $TITLE, "after $k: the page renders");
        unlike($after, qr/\Q$req{$k}{tid}\E/, "after $k: $req{$k}{tid} is no longer listed");
    }
    ok(!row_by_first_cell($wd, $req{$_}{tid}, 'table#pending'), "finally $_: not listed")
        for qw(approve reject);

    # the devices poll (CertPoll, the same transactionID and key)
    my $a = $req{approve};
    my $r = run_cmd([$client, 'poll', $base . $MANUAL, '--key', $a->{key},
                     '--out', $a->{out}, '--cn', $a->{cn}, '--tid', $a->{tid}],
                    timeout => 30);
    is($r->{rc}, 0, 'poll of the approved request: SUCCESS (exit 0)')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    like($r->{out}, qr/^status: SUCCESS$/m, 'poll: status SUCCESS');
    ok(-s $a->{out} && openssl_verify($a->{out}),
       'the certificate verifies against t/pki/ca.pem');
    is(-s $a->{out} ? cert_cn($a->{out}) : undef, $a->{cn}, "its subject is CN=$a->{cn}");

    my $j = $req{reject};
    $r = run_cmd([$client, 'poll', $base . $MANUAL, '--key', $j->{key},
                  '--out', $j->{out}, '--cn', $j->{cn}, '--tid', $j->{tid}],
                 timeout => 30);
    is($r->{rc}, 2, 'poll of the rejected request: FAILURE (exit 2)')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    like($r->{out}, qr/^status: FAILURE$/m, 'poll: status FAILURE');
    ok(!-e $j->{out}, 'no certificate for the rejected request');
});

# ---- 3. outstanding passwords -------------------------------------------------------------
section('outstanding passwords: Revoke button' => sub {
    ok($pw1 && $pw1_id, 'a password from part 1 to revoke') or return;
    # a second password (the JSON form), which must stay
    my %b = %{ password_ids() };
    my ($st, $v, $raw) = admin_json(GET => $ADMIN);
    is($st, 200, 'a second password (JSON)') or diag($raw);
    my $pw2 = $v && $v->{password};
    my %a = %{ password_ids() };
    my @new = grep { !$b{$_} && ($a{$_}{issuer} // '') eq $USER } keys %a;
    is(scalar @new, 1, 'its row id') or return;
    my $pw2_id = $new[0];

    $wd->get("$base$ADMIN?list");
    my $text = page_text($wd, '?list');
    is($wd->title, $TITLE, "?list: title $TITLE");
    like($text, qr/Outstanding enrollment passwords/, '?list: the heading');
    my $row = row_by_first_cell($wd, $pw1_id);
    scroll_to($wd, $row) if $row;
    shot($wd, 'passwords');
    ok($row, "?list shows the password of part 1 (id $pw1_id)") or return;
    like($wd->text($row), qr/\Q$USER\E/, 'its row names the issuer');
    ok(row_by_first_cell($wd, $pw2_id), "?list shows the second one (id $pw2_id)");
    my $btn = $wd->find('input[type=submit]', $row);
    ok($btn && $wd->attr($btn, 'value') eq 'Revoke', 'the row has a Revoke button')
        or return;
    ok(click_and_wait($wd, $btn, qr{\Q$ADMIN\E\?list$}),
       'clicking Revoke leads back to ?list (303)')
        or diag('at ' . $wd->url . ': ' . page_text($wd, 'after revoke'));
    page_text($wd, '?list after revoke');
    my $row2 = row_by_first_cell($wd, $pw2_id);
    scroll_to($wd, $row2) if $row2;
    shot($wd, 'passwords-revoked');
    is($wd->title, $TITLE, 'after Revoke: the page renders');
    ok(!row_by_first_cell($wd, $pw1_id), "after Revoke: $pw1_id is gone");
    ok($row2, "after Revoke: $pw2_id is still listed");

    # the revoked password no longer enrolls; the other one does
    my $r = run_cmd([$client, 'enroll', $base . $OTP_SCEP, '--key', "$W/pw1.key",
                     '--out', "$W/pw1.pem", '--cn', "browser-pw1-$stamp",
                     '--challenge', $pw1], timeout => 30);
    is($r->{rc}, 2, 'enrolling with the revoked password: FAILURE (exit 2)')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    $r = run_cmd([$client, 'enroll', $base . $OTP_SCEP, '--key', "$W/pw2.key",
                  '--out', "$W/pw2.pem", '--cn', "browser-pw2-$stamp",
                  '--challenge', $pw2], timeout => 30);
    is($r->{rc}, 0, 'enrolling with the other password: SUCCESS (exit 0)')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
});

# ---- 4. certificates -----------------------------------------------------------------------
section('certificates: Revoke button' => sub {
    my $a = $req{approve};
    ok($a && -s $a->{out}, 'the certificate approved in part 2') or return;
    my $r = run_cmd(['openssl', 'x509', '-noout', '-serial', '-in', $a->{out}],
                    timeout => 30);
    my ($serial) = $r->{out} =~ /serial=([0-9A-F]+)/i;
    ok($serial, "its serial (" . ($serial // "none") . ")") or return;
    (my $want = uc $serial) =~ s/^0+(?=.)//;

    $wd->get("$base$ADMIN?certs");
    my $text = page_text($wd, '?certs');
    if (($wd->title // '') ne $TITLE || $text !~ /Certificates issued by/) {
        shot($wd, 'certs');
        fail("the certificates page $ADMIN?certs is not there (not implemented "
             . "yet, or broken): title '" . ($wd->title // '') . "', text: "
             . substr($text, 0, 300));
        return;
    }
    pass("?certs renders: 'Certificates issued by ...'");
    my $row = cert_row($wd, $want);
    scroll_to($wd, $row) if $row;
    shot($wd, 'certs');
    ok($row, "?certs lists serial $want") or do {
        diag('first cells: ' . join(' ', first_cells($wd)));
        return;
    };
    like($wd->text($row), qr/\Q$a->{cn}\E/, "its row shows CN=$a->{cn}");
    like($wd->text($row), qr/\bValid\b/, 'its status is Valid');
    # reason keyCompromise (1), then Revoke
    my $opt = $wd->find('select[name=reason] option[value="1"]', $row);
    ok($opt, 'the row has a reason list with keyCompromise') and $wd->click($opt);
    my $btn = $wd->find('input[type=submit]', $row);
    ok($btn && $wd->attr($btn, 'value') eq 'Revoke', 'the row has a Revoke button')
        or return;
    ok(click_and_wait($wd, $btn, qr{\Q$ADMIN\E\?certs$}),
       'clicking Revoke leads back to ?certs (303)')
        or diag('at ' . $wd->url . ': ' . page_text($wd, 'after revoke'));
    page_text($wd, '?certs after revoke');
    my $row2 = cert_row($wd, $want);
    scroll_to($wd, $row2) if $row2;
    shot($wd, 'certs-revoked');
    is($wd->title, $TITLE, 'after Revoke: the page renders');
    ok($row2, "after Revoke: serial $want is still listed") or return;
    my $rt = $wd->text($row2);
    like($rt, qr/Revoked .*keyCompromise/i, 'its status: Revoked (keyCompromise)')
        or diag($rt);
    ok(!$wd->find('input[type=submit]', $row2), 'no Revoke button any more');
    # the same through the JSON form
    my ($st, $v) = admin_json(GET => "$ADMIN?certs");
    my ($c) = grep { (my $s = uc($_->{serial} // '')) =~ s/^0+(?=.)//; $s eq $want }
              @{ ($v && $v->{certificates}) || [] };
    is($c && $c->{status}, 'revoked', 'JSON ?certs: status revoked');
    is($c && $c->{reason_code}, 1, 'JSON ?certs: reason_code 1');
});

# ---- 5. a page of another site cannot act with the admin's credentials ----------------
# The browser holds the admin's Basic credentials for 127.0.0.1 (part 1); a
# page of another origin (here a data: URL: an opaque origin, so Chromium
# sends Sec-Fetch-Site: cross-site) submits the admin page's own forms.  The
# module must refuse (403), as it does for ?revoke-cert (same_origin() in
# src/mod_scep_certs.c).
sub forged_post {
    my ($name, $path) = @_;
    my $html = '<html><head><title>elsewhere</title></head><body>'
             . qq{<form method=POST action="$base$path">}
             . '<input type=hidden name=x value=1>'
             . '<input type=submit id=go value="Win a prize"></form></body></html>';
    $wd->get('data:text/html;base64,' . encode_base64($html, ''));
    my $go = $wd->find('#go') or die "the forged page did not load\n";
    $wd->click($go);
    $wd->wait_until(sub { $wd->stale($go)
        && $wd->script('return document.readyState') eq 'complete' }, 15);
    my $text = page_text($wd, "forged $name");
    shot($wd, "forged-$name");
    return $text;
}

section('a page of another site cannot approve, reject or revoke (CSRF)' => sub {
    # control: ?revoke-cert is protected today
    my ($st, $v) = admin_json(GET => "$ADMIN?certs");
    my ($c) = grep { ($_->{subject} // '') =~ /browser-pw2-\Q$stamp\E/ && $_->{status} eq 'valid' }
              @{ ($v && $v->{certificates}) || [] };
    if (ok($c, 'a valid certificate (part 3) to aim at')) {
        forged_post('revoke-cert', "$ADMIN?revoke-cert=$c->{serial}");
        ($st, $v) = admin_json(GET => "$ADMIN?certs");
        my ($c2) = grep { $_->{serial} eq $c->{serial} } @{ ($v && $v->{certificates}) || [] };
        is($c2 && $c2->{status}, 'valid',
           'a forged POST ?revoke-cert from another site: the certificate stays valid');
    }

    # ?approve, ?reject (manual approval): one pending request for each
    my $pending = sub {
        my ($tid) = @_;
        my ($s, $j) = admin_json(GET => "$MANUAL_ADMIN?pending");
        return scalar grep { $_->{transaction_id} eq $tid } @{ ($j && $j->{pending}) || [] };
    };
    my @tids;
    for my $act (qw(approve reject)) {
        my $tid = "browser-csrf-$act-$stamp";
        my $r = run_cmd([$client, 'enroll', $base . $MANUAL, '--key', "$W/csrf-$act.key",
                         '--out', "$W/csrf-$act.pem", '--cn', $tid,
                         '--challenge', challenge(), '--tid', $tid], timeout => 30);
        is($r->{rc}, 3, "scep-client enroll $tid: PENDING (exit 3)")
            or diag("$r->{cmd}\n$r->{out}$r->{err}");
        push @tids, $tid;
        forged_post($act, "$MANUAL_ADMIN?$act=$tid");
        ok($pending->($tid), "a forged POST ?$act from another site: $tid is still "
                             . 'pending (refused, like ?revoke-cert)');
    }

    # ?revoke (passwords)
    my %b = %{ password_ids() };
    admin_json(GET => $ADMIN);
    my %a = %{ password_ids() };
    my ($id) = grep { !$b{$_} && ($a{$_}{issuer} // '') eq $USER } keys %a;
    if (ok($id, 'a password to aim at')) {
        forged_post('revoke', "$ADMIN?revoke=$id");
        ok(password_ids()->{$id}, 'a forged POST ?revoke from another site: '
                                  . "password $id is still outstanding");
        admin_json(POST => "$ADMIN?revoke=$id");        # tidy up
    }
    # tidy up (a script: no Origin, allowed)
    $pending->($_) and admin_json(POST => "$MANUAL_ADMIN?reject=$_") for @tids;
});

$wd->quit;
diag(sprintf 'browser test: %d s, screenshots in t/artifacts/', time - $T0)
    if $ENV{SCEP_TEST_VERBOSE};
done_testing();
