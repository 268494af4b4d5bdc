# Hostile input to the NDES endpoint, each case with its documented answer
# (docs/security.md, "Hostile input"):
#
#  * what cannot be read as a pkiMessage with a transactionID: HTTP 400 (413
#    past SCEPMaxRequestSize), a one-line text/plain reason, SCEP00010;
#  * what can be read but is wrong: a CertRep FAILURE with the failInfo,
#    and a SCEP00012 line naming the rule;
#  * what httpd refuses before the module sees it (a request line past
#    LimitRequestLine): httpd's own status and AH line.
#
# Messages scep-client cannot make come from build/scep-craft; bytes that
# are not a message at all are made here.  Ends with the log hygiene
# checks: no password and no key in the error log or the audit log.
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);
use ScepTest;

my $top    = top_dir();
need_programs('build/scep-client', 'build/scep-craft');
my $client = program_path('build/scep-client');
my $craft  = program_path('build/scep-craft');
my $ndes = '/certsrv/mscep/mscep.dll';
my $url  = base_url() . $ndes;
my $ra   = pki('ra-enc.pem');
my $pw   = challenge();
my $tmp  = tempdir();
my $n    = 0;

# ---- helpers ------------------------------------------------------------------

sub one_line_text {
    my ($r, $what) = @_;
    (my $b = $r->{body} // '') =~ s/\r?\n\z//;
    ok($r->{type} eq 'text/plain' && length($b) && $b !~ /\n/,
       "$what: a one-line text/plain reason") or diag("body: $r->{body}");
    note("$what: \"$b\"");
}

# HTTP STATUS, a one-line reason, and a SCEPnnnnn line matching WHY
sub refused_http {
    my ($what, $r, $status, $mark, $why) = @_;
    is($r->{status}, $status, "$what: HTTP $status")
        or diag("status $r->{status}: " . substr($r->{body} // '', 0, 300));
    one_line_text($r, $what);
    my $log = wait_log($mark, qr/SCEP\d{5}.*$why/);
    like($log, qr/SCEP\d{5}.*$why/, "$what: SCEPnnnnn log line ($why)")
        or diag("error_log since the request:\n$log");
}

# scep-client raw: a CertRep FAILURE with FAIL, a SCEP00012 line naming WHY
sub failure_certrep {
    my ($what, $res, $fail, $mark, $why) = @_;
    like($res->{out}, qr/^HTTP 200$/m, "$what: HTTP 200")
        or diag("$res->{out}$res->{err}");
    like($res->{out}, qr/^status: FAILURE$/m, "$what: CertRep FAILURE");
    like($res->{out}, qr/^failInfo: $fail$/m, "$what: failInfo $fail");
    my $log = wait_log($mark, qr/SCEP00012.*$why/);
    like($log, qr/SCEP00012.*$why/, "$what: SCEP00012 names the rule ($why)")
        or diag("error_log since the request:\n$log");
}

sub raw_post {
    my ($file, @args) = @_;
    return run_cmd([$client, 'raw', $url, '--body', $file, @args],
                   timeout => 120);
}

# a crafted message file (scep-craft message ...)
sub crafted {
    my (@args) = @_;
    my $f = "$tmp/msg-" . ++$n . '.der';
    my $r = run_cmd([$craft, 'message', '--ra', $ra, '--out', $f,
                     '--cn', "hostile-$n", @args], timeout => 120);
    die "scep-craft @args: $r->{err}" unless $r->{rc} == 0;
    return $f;
}

sub file_with {
    my ($bytes) = @_;
    my $f = "$tmp/bytes-" . ++$n;
    spit($f, $bytes);
    return $f;
}

my ($mark, $r, $t0);

# ---- 1. not a pkiMessage: HTTP 400 ------------------------------------------------
my $valid = crafted('--challenge', $pw);

$mark = log_mark();
refused_http('empty body', http_post("$ndes?operation=PKIOperation", '',
             'Content-Type' => 'application/x-pki-message'), 400, $mark,
             qr/empty message/);

$mark = log_mark();
my $whole = slurp($valid);
refused_http('truncated message (first half)',
             http_post("$ndes?operation=PKIOperation",
                       substr($whole, 0, int(length($whole) / 2)),
                       'Content-Type' => 'application/x-pki-message'),
             400, $mark, qr/cannot decode the pkiMessage/);

# a valid message with something glued on after its DER: refused, not
# ignored (a line end or NUL padding after it is tolerated)
$mark = log_mark();
refused_http('a valid message with 7 bytes after its DER',
             http_post("$ndes?operation=PKIOperation", $whole . 'GARBAGE',
                       'Content-Type' => 'application/x-pki-message'),
             400, $mark, qr/7 bytes after the pkiMessage's DER/);
{
    my $r = http_post("$ndes?operation=PKIOperation", $whole . "\r\n",
                      'Content-Type' => 'application/x-pki-message');
    is($r->{status}, 200, 'a valid message followed by CRLF: answered '
       . '(a CertRep), the line end tolerated');
}

$mark = log_mark();
srand(8894);
my $garbage = join '', map { chr int rand 256 } 1 .. 4096;
refused_http('4 KiB of random bytes',
             http_post("$ndes?operation=PKIOperation", $garbage,
                       'Content-Type' => 'application/x-pki-message'),
             400, $mark, qr/cannot decode the pkiMessage/);

# BER: indefinite lengths (a SignedData that never ends), absurd lengths,
# deep nesting.  Each answered at once.
my %ber = (
    'BER indefinite length, unterminated' =>
        "\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0\x80\x30\x80"
        . "\x02\x01\x01" . ("\x31\x80" x 20),
    'absurd length 0x30 0x84 0xff 0xff 0xff 0xff' =>
        "\x30\x84\xff\xff\xff\xff" . ("\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02" x 20),
    'length of length 0x89 (beyond 8 bytes)' =>
        "\x30\x89\x01\x00\x00\x00\x00\x00\x00\x00\x00" . ("\x00" x 64),
    '5000 nested indefinite SEQUENCEs' => "\x30\x80" x 5000,
    'SignedData with a 2 GiB certificate set' =>
        "\x30\x82\x01\x00\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0\x82"
        . "\x00\xf0\x30\x82\x00\xec\x02\x01\x01\x31\x00\x30\x0b\x06\x09\x2a"
        . "\x86\x48\x86\xf7\x0d\x01\x07\x01\xa0\x84\x7f\xff\xff\xff" . ("\x30" x 200),
);
for my $what (sort keys %ber) {
    $mark = log_mark();
    $t0 = time;
    $r = http_post("$ndes?operation=PKIOperation", $ber{$what},
                   'Content-Type' => 'application/x-pki-message');
    my $dt = time - $t0;
    refused_http($what, $r, 400, $mark, qr/cannot decode the pkiMessage/);
    ok($dt < 5, sprintf("%s: answered in %.2f s", $what, $dt));
}

$mark = log_mark();
refused_http('a message without transactionID (nothing to answer to)',
             http_post("$ndes?operation=PKIOperation",
                       slurp(crafted('--no-tid', '--challenge', $pw)),
                       'Content-Type' => 'application/x-pki-message'),
             400, $mark, qr/1\.9\.7 missing/);

$mark = log_mark();
refused_http('multipart/form-data instead of a pkiMessage',
             http_post("$ndes?operation=PKIOperation",
                       "--xyz\r\nContent-Disposition: form-data; name=\"m\"\r\n\r\n"
                       . "$whole\r\n--xyz--\r\n",
                       'Content-Type' => 'multipart/form-data; boundary=xyz'),
             400, $mark, qr/cannot decode the pkiMessage/);

$mark = log_mark();
refused_http('GET with message= of base64 garbage',
             http_get("$ndes?operation=PKIOperation&message="
                      . encode_base64('x' x 3000, '')),
             400, $mark, qr/cannot decode the pkiMessage/);

# ---- 2. too large: 413 from the module, 414 from httpd -------------------------------
# a chunked body has no Content-Length to refuse up front: the bounded read
# loop stops at SCEPMaxRequestSize (65536 here)
{
    $mark = log_mark();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(),
                                  Timeout => 30) or die "connect: $!";
    print $s "POST $ndes?operation=PKIOperation HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Content-Type: application/x-pki-message\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    my $chunk = "\x30" x 8192;
    for (1 .. 13) {      # 104 KiB, unless the server closes first
        last unless print $s sprintf("%x\r\n", length $chunk), $chunk, "\r\n";
    }
    print $s "0\r\n\r\n";
    local $/;
    my $reply = <$s> // '';
    close $s;
    my ($status) = $reply =~ m{^HTTP/1\.\d (\d+)};
    is($status, 413, 'chunked POST of 104 KiB: 413') or diag(substr($reply, 0, 400));
    my ($body) = $reply =~ /\r\n\r\n(.*)\z/s;
    $body //= '';
    $body =~ s/^[0-9a-f]+\r\n//;    # a chunked reply
    like($body, qr/exceeds SCEPMaxRequestSize/, 'chunked POST: the reason says which limit');
    my $log = wait_log($mark, qr/SCEP00010.*413/);
    like($log, qr/SCEP00010.*413/, 'chunked POST: SCEP00010 line');
}

{
    $mark = log_mark();
    my $q = 'A' x (64 * 1024 + 100);
    $r = http_get("$ndes?operation=PKIOperation&message=$q");
    ok($r->{status} == 414 || $r->{status} == 413,
       "GET with a 64 KiB query: $r->{status} from httpd (LimitRequestLine 65534)")
        or diag("status $r->{status}");
    my $log = wait_log($mark, qr/AH\d+|SCEP\d{5}/);
    like($log, qr/AH00565|URI too long|SCEP00010/,
         'GET with a 64 KiB query: httpd logs why (AH00565)')
        or diag($log);
}

# ---- 3. content types are not checked (NDES does not either) ---------------------------
for my $ct (['--content-type', 'text/plain'], ['--no-content-type']) {
    my $res = run_cmd([$client, 'enroll', $url, '--cn', "hostile-ct-" . ++$n,
                       '--key', "$tmp/ct-$n.key", '--challenge', $pw, @$ct],
                      timeout => 120);
    is($res->{rc}, 0, "a valid PKCSReq POSTed with @$ct is answered (SUCCESS)")
        or diag("$res->{out}$res->{err}");
}

# ---- 4. readable, but wrong: CertRep FAILURE ---------------------------------------------
{
    my $other = "$tmp/other-ra.pem";
    my $c = run_cmd([$craft, 'cert', '--out', $other, '--key-out', "$tmp/other-ra.key",
                     '--cn', 'Somebody else\'s RA'], timeout => 120);
    die "scep-craft cert: $c->{err}" unless $c->{rc} == 0;
    $mark = log_mark();
    my $f = "$tmp/other.der";
    $c = run_cmd([$craft, 'message', '--ra', $other, '--out', $f,
                  '--challenge', $pw], timeout => 120);
    die "scep-craft: $c->{err}" unless $c->{rc} == 0;
    failure_certrep('encrypted to somebody else\'s certificate', raw_post($f),
                    'badRequest', $mark, qr/not encrypted to any of our RA/);
}

my @cases = (
    [ 'messageType twice (19 and 21)', [qw(--type 19 --type 21)],
      'badRequest', qr/1\.9\.2 repeated/ ],
    [ 'no messageType', ['--no-type'], 'badRequest', qr/1\.9\.2 missing/ ],
    [ 'no senderNonce', [qw(--nonce-len 0)], 'badRequest',
      qr/1\.9\.5.*missing/ ],
    [ 'senderNonce of 15 bytes', [qw(--nonce-len 15)], 'badRequest',
      qr/nonce of 15 bytes/ ],
    [ 'senderNonce of 64 bytes', [qw(--nonce-len 64)], 'badRequest',
      qr/nonce of 64 bytes/ ],
    [ 'senderNonce twice', ['--dup-nonce'], 'badRequest', qr/1\.9\.5 repeated/ ],
    [ 'a bad signature', ['--corrupt-signature'], 'badMessageCheck',
      qr/signature does not verify/ ],
    [ 'unregistered messageType 99', [qw(--type 99)], 'badRequest',
      qr/unknown or unregistered messageType 99/ ],
    [ 'UpdateReq (18, draft only)', [qw(--type 18)], 'badRequest',
      qr/unknown or unregistered messageType 18/ ],
    [ 'a CertRep (3) sent to the server', [qw(--type 3)], 'badRequest',
      qr/unknown or unregistered messageType 3/ ],
    [ 'messageType "abc"', [qw(--type abc)], 'badRequest',
      qr/unknown or unregistered messageType "abc" \(not a number\)/ ],
    [ 'messageType "0019"', [qw(--type 0019)], 'badRequest',
      qr/./ ],
    [ 'GetCert (21) with a CSR inside', [qw(--type 21)], 'badRequest',
      qr/malformed IssuerAndSerialNumber/ ],
    [ 'GetCRL (22) with a CSR inside', [qw(--type 22)], 'badRequest',
      qr/malformed IssuerAndSerialNumber/ ],
    [ 'CertPoll (20) with a CSR inside', [qw(--type 20)], 'badRequest',
      qr/malformed IssuerAndSubject/ ],
);
for my $c (@cases) {
    my ($what, $args, $fail, $why) = @$c;
    my $f = crafted(@$args, '--challenge', $pw);
    $mark = log_mark();
    my $res = raw_post($f);
    if ($what eq 'messageType "0019"') {
        # leading zeros: still 19 to a decimal reader; either answer is fine,
        # as long as it is one
        like($res->{out}, qr/^status: (?:SUCCESS|FAILURE)$/m,
             "$what: answered with a CertRep") or diag($res->{out});
        next;
    }
    failure_certrep($what, $res, $fail, $mark, $why);
}

{
    # PKCSReq whose messageData is not a CSR
    my $ias = "$tmp/ias.der";
    spit($ias, "\x30\x0b\x30\x00\x02\x07" . ("\x01" x 7));
    $mark = log_mark();
    failure_certrep('PKCSReq with an IssuerAndSerialNumber inside',
                    raw_post(crafted('--content', $ias)), 'badRequest', $mark,
                    qr/malformed CSR/);
}

{
    # signed with a certificate whose key is not the CSR's (and not ours)
    my $k = new_rsa_key("$tmp/stranger.key");
    $mark = log_mark();
    failure_certrep('signer key is not the CSR\'s (a stranger\'s self-signed)',
                    raw_post(crafted('--signer-key', $k, '--challenge', $pw)),
                    'badRequest', $mark, qr/renewal-signer|self-signed/);
}

# ---- 5. size of what is inside: 1000 SANs, 1000 extensions ---------------------------------
{
    $t0 = time;
    my $f = crafted('--sans', 1000, '--challenge', $pw);
    note(sprintf('1000-SAN message: %d bytes', -s $f));
    $mark = log_mark();
    $t0 = time;
    my $res = raw_post($f);
    my $dt = time - $t0;
    failure_certrep('a CSR with 1000 subjectAltNames', $res, 'badRequest',
                    $mark, qr/san-count.*1000 subjectAltNames/);
    ok($dt < 10, sprintf('1000 SANs: answered in %.2f s', $dt));
}
{
    my $f = crafted('--exts', 1000, '--challenge', $pw);
    note(sprintf('1000-extension message: %d bytes', -s $f));
    $mark = log_mark();
    $t0 = time;
    my $res = raw_post($f);
    my $dt = time - $t0;
    my ($status) = $res->{out} =~ /^status: (\w+)/m;
    note(sprintf('1000 extensions: %s in %.2f s', $status // 'no CertRep', $dt));
    ok($dt < 10, sprintf('1000 extensions: answered in %.2f s', $dt));
    is($status, 'FAILURE', '1000 extensions: refused with a clear reason');
    like(log_since($mark), qr/SCEP00012.*ext-count/,
         '1000 extensions: the log names the rule ext-count');
}

# ---- 6. the server is still there --------------------------------------------------------
$r = http_get("$ndes?operation=GetCACaps");
is($r->{status}, 200, 'GetCACaps still answers after all that');

# ---- 7. no password, no key in the logs ------------------------------------------------
my @secrets = ($pw);
{
    # a one-time password: fetched, used, used again (refused)
    my $res = HTTP::Tiny->new(timeout => 30)->get(base_url() . '/otp/admin-anon/',
        { headers => { Accept => 'application/json' } });
    my $otp = eval { decode_json($res->{content})->{password} };
    ok($otp, 'a one-time password from /otp/admin-anon/')
        or diag("HTTP $res->{status} $res->{content}");
    if ($otp) {
        push @secrets, $otp;
        my $otp_url = base_url() . '/otp/certsrv/mscep/mscep.dll';
        my $e = run_cmd([$client, 'enroll', $otp_url, '--cn', 'hostile-otp',
                         '--key', "$tmp/otp.key", '--challenge', $otp],
                        timeout => 120);
        is($e->{rc}, 0, 'the one-time password enrolls once')
            or diag("$e->{out}$e->{err}");
        $e = run_cmd([$client, 'enroll', $otp_url, '--cn', 'hostile-otp-2',
                      '--key', "$tmp/otp2.key", '--challenge', $otp],
                     timeout => 120);
        is($e->{rc}, 2, 'and not twice (FAILURE)') or diag("$e->{out}$e->{err}");
        # lower case, as devices sometimes send it
        $e = run_cmd([$client, 'enroll', $otp_url, '--cn', 'hostile-otp-3',
                      '--key', "$tmp/otp3.key", '--challenge', lc $otp],
                     timeout => 120);
        push @secrets, lc $otp;
    }
}
select(undef, undef, undef, 0.5);
for my $file (error_log_path(), "$top/t/logs/audit.log") {
    next unless -e $file;
    my $text = slurp($file);
    (my $name = $file) =~ s{^\Q$top\E/}{};
    my @lines = split /\n/, $text;
    for my $s (@secrets) {
        my $shown = substr($s, 0, 3) . '...';
        my @hit = grep { index($_, $s) >= 0 } @lines;
        ok(!@hit, "$name: the password $shown does not appear")
            or diag(join "\n", map { substr($_, 0, 300) } @hit[0 .. ($#hit < 4 ? $#hit : 4)]);
    }
    # key material: a PEM block or its base64 body; the words alone may
    # appear in a reason ("stdout holds a PEM \"PRIVATE KEY\" block")
    my @keys = grep { /-----BEGIN [A-Z ]*PRIVATE KEY-----|MII[EJ][A-Za-z0-9+\/]{40}/ } @lines;
    ok(!@keys, "$name: no private key material (PEM block)")
        or diag(join "\n", map { substr($_, 0, 300) } @keys[0 .. ($#keys < 4 ? $#keys : 4)]);
    my @words = grep { /PRIVATE KEY/ } @lines;
    note("$name: " . scalar(@words) . " line(s) name \"PRIVATE KEY\" without a key: "
         . substr($words[0], 0, 200)) if @words;
}

done_testing;
