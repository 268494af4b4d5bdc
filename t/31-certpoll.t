# CertPoll (20) with manual approval (/manual/mscep, profile Manual:
# approval=manual validity=30 eku=clientAuth,serverAuth) and its admin page
# (/manual/admin, Basic auth admin/secret, JSON): the project client polls
# PENDING, then SUCCESS after approval; a repeated PKCSReq with the same
# transactionID is a poll; a rejected request polls FAILURE/badRequest;
# strongSwan's pki --scep polls by itself while the test approves.
use strict;
use warnings;
use Test::More;
use POSIX ();
use URI::Escape ();
use ScepTest;
use Scep8894;

need_programs('build/scep-client', 'openssl');

my $W = tempdir();
my $pw = challenge();
my $EP = '/manual/mscep';
my $ADMIN = '/manual/admin/';

sub pending {
    my $r = admin_get("$ADMIN?pending");
    return {} unless $r->{status} == 200 && $r->{json};
    return { map { ($_->{transaction_id} => $_) } @{ $r->{json}{pending} } };
}

sub decide {
    my ($what, $tid, $reason) = @_;
    my $q = "$what=" . URI::Escape::uri_escape($tid);
    $q .= '&reason=' . URI::Escape::uri_escape($reason) if defined $reason;
    return admin_post("$ADMIN?$q");
}

# ---- the admin page wants a user -------------------------------------------------
{
    my $r = http_get("$ADMIN?pending");
    is($r->{status}, 401, 'admin page without credentials: 401');
    $r = admin_get("$ADMIN?pending", 'admin:wrong');
    is($r->{status}, 401, 'admin page with a wrong password: 401');
}

# ---- the project client: PKCSReq, CertPoll, approval -------------------------------
my $cn = "manual-$$";
my $tid = ts('poll');
my %o = (key => "$W/k1.pem", cn => $cn, tid => $tid);
my ($r) = enroll_as('enroll', $EP, %o, out => "$W/c1.pem",
                    extra => ['--challenge', $pw]);
is($r->{rc}, 3, 'PKCSReq on /manual: PENDING (exit 3)') or diag("$r->{cmd}\n$r->{out}$r->{err}");
like($r->{out}, qr/^status: PENDING$/m, 'PKCSReq: status PENDING');
ok(!-e "$W/c1.pem", 'PKCSReq: no certificate yet');

my $p = pending();
ok($p->{$tid}, 'the admin page lists the transaction as pending')
    or diag(explain $p);
is($p && $p->{$tid} && $p->{$tid}{subject}, "CN=$cn", 'pending: its subject');
is($p && $p->{$tid} && $p->{$tid}{profile}, 'Manual', 'pending: its profile');

my $mark = log_mark();
($r) = enroll_as('poll', $EP, %o, out => "$W/c1.pem");
is($r->{rc}, 3, 'CertPoll before approval: PENDING (exit 3)') or diag("$r->{cmd}\n$r->{out}$r->{err}");
like($r->{out}, qr/^status: PENDING$/m, 'CertPoll: status PENDING');
like(wait_log($mark, qr/SCEP00015/), qr/SCEP00015: CertPoll: transaction \Q$tid\E is still pending/,
     'CertPoll: logged as still pending');

$mark = log_mark();
($r) = enroll_as('enroll', $EP, %o, out => "$W/c1.pem", extra => ['--challenge', $pw]);
is($r->{rc}, 3, 'the same PKCSReq again (same transactionID): PENDING')
    or diag("$r->{cmd}\n$r->{out}$r->{err}");
like(wait_log($mark, qr/SCEP00015/), qr/SCEP00015: PKCSReq: transaction \Q$tid\E is still pending/,
     'the repeated PKCSReq is answered as a poll');
$p = pending();
is(scalar(grep { $_->{subject} && $_->{subject} eq "CN=$cn" } values %{ $p || {} }), 1,
   'still one pending request for the subject');

my $d = decide('approve', $tid);
is($d->{status}, 200, 'POST ?approve=TID: 200') or diag($d->{body});
is($d->{json} && $d->{json}{decision}, 'approved', 'approve: decision approved');
my $serial = $d->{json} && $d->{json}{serial};
like($serial // '', qr/^[0-9A-F]+$/, 'approve: the serial of the new certificate');
ok(!pending()->{$tid}, 'no longer pending');

$mark = log_mark();
($r) = enroll_as('poll', $EP, %o, out => "$W/c1.pem");
issued_ok('CertPoll after approval', $r, "$W/c1.pem");
is(cert_serial("$W/c1.pem"), $serial, 'CertPoll: the approved certificate');
is(cert_cn("$W/c1.pem"), $cn, "CertPoll: subject CN=$cn");
my $days = days_left("$W/c1.pem");
ok($days > 29.9 && $days <= 30.01, 'profile Manual: 30 days of validity')
    or diag("days left: $days");
like(cert_ext("$W/c1.pem", 'extendedKeyUsage'),
     qr/TLS Web Client Authentication, TLS Web Server Authentication|TLS Web Server Authentication, TLS Web Client Authentication/,
     'profile Manual: EKU clientAuth, serverAuth');

# a retry after issuance: the same certificate
($r) = enroll_as('enroll', $EP, %o, out => "$W/c1b.pem", extra => ['--challenge', $pw]);
is($r->{rc}, 0, 'the PKCSReq again after approval: SUCCESS') or diag("$r->{cmd}\n$r->{out}$r->{err}");
is(cert_serial("$W/c1b.pem"), $serial, 'the PKCSReq again: the same certificate');

$d = decide('approve', $tid);
is($d->{status}, 409, 'approving it twice: 409') or diag($d->{body});

# ---- a rejected request ------------------------------------------------------------
{
    my $tid2 = ts('reject');
    my %o2 = (key => "$W/k2.pem", cn => "rejected-$$", tid => $tid2);
    ($r) = enroll_as('enroll', $EP, %o2, out => "$W/c2.pem", extra => ['--challenge', $pw]);
    is($r->{rc}, 3, 'second request: PENDING') or diag("$r->{cmd}\n$r->{out}$r->{err}");
    ok(pending()->{$tid2}, 'second request: listed as pending');
    $d = decide('reject', $tid2, 'not on the inventory');
    is($d->{status}, 200, 'POST ?reject=TID&reason=...: 200') or diag($d->{body});
    is($d->{json} && $d->{json}{decision}, 'rejected', 'reject: decision rejected');
    ok(!pending()->{$tid2}, 'rejected: no longer pending');

    $mark = log_mark();
    ($r) = enroll_as('poll', $EP, %o2, out => "$W/c2.pem");
    refused('CertPoll of a rejected request', $r, $tid2, 'badRequest', 'rejected',
            $mark, "$W/c2.pem");
    like(log_since($mark), qr/transaction \Q$tid2\E, rejected: .*not on the inventory/,
         'the log line carries the reason');

    $mark = log_mark();
    ($r) = enroll_as('enroll', $EP, %o2, out => "$W/c2.pem", extra => ['--challenge', $pw]);
    refused('the PKCSReq again after rejection', $r, $tid2, 'badRequest', 'rejected',
            $mark, "$W/c2.pem");

    $d = decide('approve', $tid2);
    is($d->{status}, 409, 'approving a rejected request: 409') or diag($d->{body});
}

# ---- CertPoll of a transaction nobody sent -------------------------------------------
{
    my $tid3 = ts('unknown');
    $mark = log_mark();
    ($r) = enroll_as('poll', $EP, key => "$W/k3.pem", cn => "nobody-$$", tid => $tid3);
    refused('CertPoll of an unknown transaction', $r, $tid3, 'badCertId', 'certpoll', $mark);
    $d = decide('approve', $tid3);
    is($d->{status}, 404, 'approving an unknown transaction: 404') or diag($d->{body});
}

# ---- no store, nothing is ever pending: CertPoll is refused ------------------------------
{
    my $tid5 = ts('nostore');
    $mark = log_mark();
    ($r) = enroll_as('poll', '/certsrv/mscep/mscep.dll', key => "$W/k5.pem",
                     cn => "nostore-$$", tid => $tid5);
    refused('CertPoll where there is no store', $r, $tid5, 'badRequest', 'certpoll', $mark);
}

# ---- a wrong password is refused before anything is kept ------------------------------
{
    my $tid4 = ts('badpw');
    $mark = log_mark();
    ($r) = enroll_as('enroll', $EP, key => "$W/k4.pem", cn => "badpw-$$", tid => $tid4,
                     extra => ['--challenge', "x$pw"]);
    refused('PKCSReq with a wrong password on /manual', $r, $tid4, 'badMessageCheck',
            'challenge static', $mark);
    ok(!pending()->{$tid4}, 'a refused request is not pending');
}

# ---- strongSwan: pki --scep polls (CertPoll every 2 s) while we approve ----------------
SKIP: {
    skip 'strongSwan pki is not installed', 9 unless program_path('pki');
    my $url = base_url() . $EP;
    my $sr = run_cmd(['pki', '--scepca', '--url', $url, '--caout', "$W/ca.pem",
                      '--raout', "$W/ra.pem", '--outform', 'pem', '--force'], timeout => 60);
    my ($enc, $sig);
    for my $f (glob("$W/ra*.pem")) {
        my $ku = cert_ext($f, 'keyUsage');
        $enc = $f if $ku =~ /Key Encipherment/;
        $sig = $f if $ku =~ /Digital Signature/;
    }
    ok($sr->{rc} == 0 && $enc && $sig, 'pki --scepca: CA and both RA certificates')
        or diag("$sr->{cmd}\n$sr->{out}$sr->{err}");
    my $kr = run_cmd(['pki', '--gen', '--type', 'rsa', '--size', '2048',
                      '--outform', 'pem'], timeout => 60);
    spit("$W/ss.key", $kr->{out});
    my $sscn = "strongswan-poll-$$";

    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$W/ss.pem";
        open STDERR, '>', "$W/ss.err";
        { exec 'timeout', '-k', '5', '90', 'pki', '--scep', '--url', $url,
             '--in', "$W/ss.key", '--dn', "CN=$sscn", '--password', $pw,
             '--cacert-enc', $enc // pki('ra-enc.pem'),
             '--cacert-sig', $sig // pki('ra-sign.pem'),
             '--cacert', -s "$W/ca.pem" ? "$W/ca.pem" : pki('ca.pem'),
             '--interval', '2', '--maxpolltime', '60', '--outform', 'pem' }
        POSIX::_exit(127);
    }
    my ($sstid, $row);
    for (1 .. 40) {
        my $pp = pending() || {};
        ($row) = grep { ($_->{subject} // '') eq "CN=$sscn" } values %$pp;
        last if $row;
        select(undef, undef, undef, 0.5);
    }
    ok($row, 'strongSwan\'s request is pending on the admin page');
    $sstid = $row ? $row->{transaction_id} : 'none';
    # let it poll at least once before the approval
    my $polled = wait_log(0, qr/SCEP00015: CertPoll: transaction \Q$sstid\E is still pending/);
    like($polled, qr/SCEP00015: CertPoll: transaction \Q$sstid\E is still pending/,
         'strongSwan polls with CertPoll (20) while pending');
    $d = decide('approve', $sstid);
    is($d->{status}, 200, 'approve strongSwan\'s request: 200') or diag($d->{body});
    my $ssserial = $d->{json} && $d->{json}{serial};

    my $waited = 0;
    while (waitpid($pid, POSIX::WNOHANG()) == 0 && $waited++ < 150) {
        select(undef, undef, undef, 0.5);
    }
    if ($waited >= 150) { kill 'KILL', $pid; waitpid($pid, 0); }
    my $rc = $? >> 8;
    is($rc, 0, 'pki --scep exits 0 after the approval')
        or diag(slurp("$W/ss.err"));
    ok(-s "$W/ss.pem" && openssl_verify("$W/ss.pem"), 'strongSwan got a certificate that verifies');
    is(-s "$W/ss.pem" ? cert_cn("$W/ss.pem") : undef, $sscn, "strongSwan: CN=$sscn");
    is(-s "$W/ss.pem" ? cert_serial("$W/ss.pem") : undef, $ssserial,
       'strongSwan: the approved certificate');
    like(log_since(0), qr/SCEP00016: CertPoll: transaction \Q$sstid\E was answered before/,
         'strongSwan got it by CertPoll');
    like(slurp("$W/ss.err"), qr/pending/i, 'strongSwan reported the pending state');
}

done_testing;
