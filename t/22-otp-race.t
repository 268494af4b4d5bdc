# One one-time password, many devices at the same instant: 20 enrollments
# (different keys, different transactionIDs) with ONE password of pool
# "otp", started together and served by at least two httpd children (the
# test configuration has StartServers 2, ThreadsPerChild 8).  Exactly one
# may succeed; every other one is FAILURE badMessageCheck; the database
# shows the password used once, by the winner's transaction.
#
# Then the same burst for ONE transaction (a client retrying while its
# first request is still being answered): no copy may be issued a second
# certificate, and none is refused.
use strict;
use warnings;
use Test::More;
use File::Spec ();
use HTTP::Tiny;
use JSON::PP ();
use MIME::Base64 ();
use Digest::SHA ();
use POSIX ();
use Time::HiRes ();
use ScepTest;

need_programs('build/scep-client', 'openssl', 'sqlite3', 'timeout');

my $client = program_path('build/scep-client');
my $W = tempdir();
my $N = 20;           # simultaneous enrollments per burst
my $ATTEMPTS = 3;     # bursts until two httpd children answered

my @children;
sub kill_children {
    for my $pid (@children) { kill 'KILL', $pid }
    waitpid($_, 0) for @children;
    @children = ();
}
END { my $rc = $?; kill_children(); $? = $rc; }
$SIG{ALRM} = sub { diag('t/22-otp-race.t timed out'); kill_children(); exit 1 };
alarm 120;

# ---- helpers ----------------------------------------------------------------------------
my $UA = HTTP::Tiny->new(timeout => 30, keep_alive => 0, agent => 'mod_scep-tests/1',
                         proxy => undef, http_proxy => undef);

sub otp_password {
    my $res = $UA->get(base_url() . '/otp/certsrv/mscep_admin/', { headers => {
        Accept => 'application/json',
        Authorization => 'Basic ' . MIME::Base64::encode_base64('admin:secret', '') } });
    my $d = eval { JSON::PP->new->decode($res->{content}) } || {};
    diag("admin page: HTTP $res->{status} $res->{content}") unless $d->{password};
    return $d->{password};
}

my $DB = File::Spec->catfile(top_dir(), 't', 'db', 'scep.db');
my $PWKEY = slurp(pki('otp.key'));

sub sql {
    my ($q) = @_;
    my $r = run_cmd(['sqlite3', '-readonly', '-batch', $DB, $q], timeout => 30);
    diag("sqlite3: $r->{err}") if $r->{rc};
    chomp(my $out = $r->{out});
    return $out;
}

sub sql_list { join ', ', map { "'" . s/'/''/gr . "'" } @_ }

# ---- keys first (so that the burst is only the requests), and the CA/RA
# certificates in one file (no GetCACert round trip before the PKIOperation)
{
    my $r = run_cmd(['sh', '-c', 'i=1; while [ $i -le "$2" ]; do '
                     . 'openssl genrsa -out "$1/key$i.pem" 2048 2>/dev/null & '
                     . 'i=$((i+1)); done; wait', 'sh', $W, $N], timeout => 60);
    my @keys = grep { -s "$W/key$_.pem" } 1 .. $N;
    is(scalar @keys, $N, "$N RSA keys generated beforehand");
    spit("$W/ca-ra.pem", join '', map { slurp(pki($_)) } qw(ca.pem ra-enc.pem ra-sign.pem));
}

# burst(PW, TAG, same => 1): N scep-client processes that wait for one
# common start time; different keys and transactionIDs unless "same" (then
# all copies are one request: key1, one transactionID, one CN).
sub burst {
    my ($pw, $tag, %o) = @_;
    my $mark = log_mark();
    my $start = Time::HiRes::time() + 1.0;
    my @runs;
    for my $i (1 .. $N) {
        my $k = $o{same} ? 1 : $i;
        my %run = (i => $i, tid => $o{same} ? "race-$tag-$$" : "race-$tag-$$-$i",
                   cn => $o{same} ? "race-$tag-$$" : "race-$tag-$$-$i",
                   out => "$W/$tag-$i.out", cert => "$W/$tag-$i.pem");
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>', $run{out} or POSIX::_exit(100);
            open STDERR, '>&', \*STDOUT;
            my $wait = $start - Time::HiRes::time();
            Time::HiRes::sleep($wait) if $wait > 0;
            { exec 'timeout', '-k', '5', '60', $client, 'enroll',
                base_url() . '/otp/certsrv/mscep', '--ca', "$W/ca-ra.pem",
                '--key', "$W/key$k.pem", '--cn', $run{cn}, '--tid', $run{tid},
                '--challenge', $pw, '--out', $run{cert} }
            POSIX::_exit(127);
        }
        $run{pid} = $pid;
        push @children, $pid;
        push @runs, \%run;
    }
    for my $run (@runs) {
        waitpid($run->{pid}, 0);
        $run->{rc} = $? >> 8;
        $run->{text} = -e $run->{out} ? slurp($run->{out}) : '';
        ($run->{status}) = $run->{text} =~ /^status: (\w+)$/m;
        ($run->{failinfo}) = $run->{text} =~ /^failInfo: (\w+)$/m;
    }
    @children = ();
    my $took = Time::HiRes::time() - $start;

    # the decision lines (SCEP00012/13; 15/16 for copies of one transaction)
    my %tids = map { $_->{tid} => 1 } @runs;
    my $want = $o{same} ? $N : scalar keys %tids;
    my (%lines, $log);
    for (1 .. 50) {
        $log = log_since($mark);
        %lines = ();
        while ($log =~ /^(.*\[pid (\d+):tid \d+\].*(SCEP000(?:12|13|15|16)):.*?transaction (\S+?),? .*)$/mg) {
            my ($line, $pid, $tag2, $tid) = ($1, $2, $3, $4);
            push @{ $lines{$tid} }, { pid => $pid, tag => $tag2, line => $line }
                if $tids{$tid};
        }
        my $count = 0;
        $count += @{ $lines{$_} } for keys %lines;
        last if $count >= $want;
        select(undef, undef, undef, 0.1);
    }
    my %pids;
    for my $l (map { @$_ } values %lines) { $pids{ $l->{pid} }++ }
    return { runs => \@runs, lines => \%lines, pids => \%pids, took => $took };
}

# ==== different devices, one password =========================================================
my ($b, $pw, $attempt);
for $attempt (1 .. $ATTEMPTS) {
    $pw = otp_password();
    ok($pw, "burst $attempt: a one-time password");
    $b = burst($pw, "a$attempt");
    my $ok = grep { $_->{rc} == 0 } @{ $b->{runs} };
    is($ok, 1, "burst $attempt: exactly one of $N enrollments succeeded "
               . sprintf('(%.1f s)', $b->{took}));
    my $np = keys %{ $b->{pids} };
    last if $np >= 2;
    diag("burst $attempt: all decisions came from one httpd child "
         . "(pid @{[ keys %{ $b->{pids} } ]}); again with a new password");
}

{
    my @runs = @{ $b->{runs} };
    my @win = grep { $_->{rc} == 0 } @runs;
    my @lose = grep { $_->{rc} != 0 } @runs;
    is(scalar @win, 1, 'one SUCCESS');
    is($win[0] && $win[0]{status}, 'SUCCESS', 'the winner: status SUCCESS');
    ok($win[0] && -s $win[0]{cert} && openssl_verify($win[0]{cert}),
       'the winner: its certificate verifies');
    is(scalar(grep { $_->{rc} == 2 } @lose), $N - 1, 'all others: FAILURE (exit 2)')
        or diag(join "\n", map { "$_->{tid}: rc $_->{rc}: $_->{text}" }
                           grep { $_->{rc} != 2 } @lose);
    is(scalar(grep { ($_->{failinfo} // '') eq 'badMessageCheck' } @lose), $N - 1,
       'all others: badMessageCheck');
    is(scalar(grep { -e $_->{cert} } @lose), 0, 'no other certificate written');

    # the log: one decision per transaction, from at least two children
    my %lines = %{ $b->{lines} };
    is(scalar(grep { @{ $lines{ $_->{tid} } || [] } == 1 } @runs), $N,
       'the error log has one SCEP00012/SCEP00013 line per transaction');
    my $winner_tid = $win[0] ? $win[0]{tid} : '-';
    like(($lines{$winner_tid} || [{}])->[0]{line} // '', qr/SCEP00013: PKCSReq issued/,
         'the winner: SCEP00013');
    my @reasons = map { ($lines{ $_->{tid} } || [{}])->[0]{line} // '' } @lose;
    is(scalar(grep { /SCEP00012: PKCSReq refused \(badMessageCheck\).*challenge otp: .*(?:used already|being used by another request right now)/ } @reasons),
       $N - 1, 'the others: SCEP00012, the password is used or being used')
        or diag(join "\n", @reasons);
    my %why;
    $why{ /used already/ ? 'used already' : /being used/ ? 'being used right now' : 'other' }++
        for @reasons;
    note('refusals: ' . join(', ', map { "$why{$_} $_" } sort keys %why));
    my @pids = sort keys %{ $b->{pids} };
    ok(@pids >= 2, 'the decisions came from ' . scalar(@pids) . " httpd children (pids @pids)");

    # the database: used once, by the winner
    my $h = Digest::SHA::hmac_sha256_hex($pw, $PWKEY);
    is(sql("SELECT state || '|' || COALESCE(transaction_id, '') FROM scep_password "
           . "WHERE hash = '$h'"), "2|$winner_tid",
       'scep_password: used (state 2) by the winner\'s transaction');
    my $tids = sql_list(map { $_->{tid} } @runs);
    is(sql("SELECT COUNT(*) FROM scep_password WHERE transaction_id IN ($tids)"), 1,
       'no other password row names one of these transactions');
    is(sql("SELECT transaction_id || '|' || state FROM scep_transaction "
           . "WHERE endpoint = 'otp' AND transaction_id IN ($tids)"), "$winner_tid|1",
       'scep_transaction: only the winner\'s transaction, issued');
    # the local CA signs before the store lock for a password that looks
    # unused (src/mod_scep_enroll.c, sign_early): the losers' certificates
    # must go nowhere
    is(sql("SELECT transaction_id FROM scep_certificate WHERE transaction_id IN ($tids)"),
       $winner_tid, 'scep_certificate: one certificate, the winner\'s');
}

# ==== one transaction, many copies at once (a client retrying) ==================================
{
    my $pw1 = otp_password();
    my $s = burst($pw1, 'same', same => 1);
    my @runs = @{ $s->{runs} };
    my @ok = grep { $_->{rc} == 0 } @runs;
    my @pending = grep { $_->{rc} == 3 } @runs;
    my @failed = grep { $_->{rc} != 0 && $_->{rc} != 3 } @runs;
    ok(@ok >= 1, 'copies of one transaction: at least one SUCCESS ('
                 . scalar(@ok) . ' SUCCESS, ' . scalar(@pending) . ' PENDING, '
                 . scalar(@failed) . ' other)');
    my %der = map { pem_to_der($_->{cert}) => 1 } grep { -s $_->{cert} } @ok;
    is(scalar keys %der, 1, 'copies of one transaction: every SUCCESS carries the same certificate');
    my $h = Digest::SHA::hmac_sha256_hex($pw1, $PWKEY);
    is(sql("SELECT state || '|' || COALESCE(transaction_id, '') FROM scep_password "
           . "WHERE hash = '$h'"), "2|race-same-$$",
       'copies of one transaction: the password is used, by that transaction');
    is(sql("SELECT COUNT(*) FROM scep_certificate WHERE transaction_id = 'race-same-$$'"), 1,
       'copies of one transaction: one certificate issued');
    is(scalar @failed, 0, 'copies of one transaction: none refused')
        or diag(join "\n", map { $_->{line} } grep { $_->{tag} eq 'SCEP00012' }
                            @{ $s->{lines}{"race-same-$$"} || [] });
}

alarm 0;
done_testing;
