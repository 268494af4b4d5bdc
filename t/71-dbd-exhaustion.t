# Database connection exhaustion (issue #8, "Limits"), self-contained like
# t/70-farm.t (t/farm/ScepFarm.pm): a private PostgreSQL on a free loopback
# port with max_connections = 8 (none reserved for superusers), and two
# httpd nodes of t/farm/node.conf.in:
#
#   * "pool": ONE child with 8 threads and a mod_dbd pool of ONE connection
#     (DBDPersist On, DBDMax 1), SCEPDBDConnections auto 800ms (auto: as
#     many as DBDMax);
#   * "fresh": DBDPersist Off (mod_dbd opens a connection per request).
#
# 1. Pool exhausted: the pool's only connection is stuck behind a table
#    lock held in PostgreSQL for 5 s.  Of 6 simultaneous enrollments on
#    "pool" the one that holds the connection waits for the lock and gets
#    its certificate; the others are answered 503 with Retry-After after the
#    bounded wait (0.8 s, not the 5 s of the lock: without
#    SCEPDBDConnections they would all wait in mod_dbd), SCEP00106 in the
#    error log; the health check says "busy" (503, Retry-After).
# 2. Database refusing: every connection slot of PostgreSQL is held.  An
#    enrollment and the admin page on "fresh" are answered 503 with
#    Retry-After at once, SCEP00101 and mod_dbd's reason ("too many
#    clients") in the error log.
# 3. Afterwards, by themselves: every 503'd request retried with its
#    password and its transactionID gets its certificate (the password was
#    not consumed), both nodes are healthy, and the database is consistent:
#    one issued transaction, one used password and one certificate per
#    success, nothing pending or reserved.
#
# SCEP_TEST_KEEP=1 keeps the directory (configs, logs) for a look.
use strict;
use warnings;
use Test::More;
use FindBin ();
use lib "$FindBin::Bin/farm";
use HTTP::Tiny ();
use File::Spec ();
use JSON::PP ();
use MIME::Base64 ();
use POSIX ();
use Time::HiRes ();
use ScepTest;
use ScepFarm;

my $T0 = Time::HiRes::time();
my $W = tempdir();
my $F = ScepFarm->new(dir => $W);

need_programs('build/scep-client', 'openssl', 'timeout',
              $F->prog('initdb'), $F->prog('pg_ctl'), $F->prog('psql'),
              $F->prog('httpd'), ($> == 0 ? ('runuser') : ()));
# a threaded MPM (the threads of one child share its pool), and mod_dbd
for my $m (qw(mpm_event dbd)) {
    next if -f $F->prog('moddir') . "/mod_$m.so";
    need_programs($F->prog('moddir') . "/mod_$m.so");
}
if (!-f $F->prog('so')) {
    plan skip_all => 'build/mod_scep.so is not built (make build)';
}

my $N = 6;            # simultaneous enrollments on the exhausted pool
my $LOCK_S = 5;       # how long PostgreSQL holds the lock
my $WAIT_MS = 800;    # SCEPDBDConnections' wait on node "pool"
my $MAXCONN = 8;      # PostgreSQL max_connections

my @KIDS;
sub kill_kids {
    kill 'KILL', @KIDS if @KIDS;
    waitpid($_, 0) for @KIDS;
    @KIDS = ();
}
END {
    my $rc = $?;
    if ($F && $$ == $F->{owner}) {
        kill_kids();
        $F->stop_all;
    }
    $? = $rc;
}
$SIG{ALRM} = sub {
    diag(sprintf 't/71-dbd-exhaustion.t: timed out after %.0f s',
         Time::HiRes::time() - $T0);
    exit 1;    # END stops everything
};
alarm 150;

my $client = program_path('build/scep-client');
my $JSON = JSON::PP->new;
my $UA = HTTP::Tiny->new(timeout => 20, keep_alive => 0, proxy => undef,
                         http_proxy => undef, agent => 'mod_scep-dbd-test/1');
sub elapsed { sprintf '%.1f s', Time::HiRes::time() - $T0 }

# ---- the pieces -------------------------------------------------------------------------------

my ($PKI, $ADMIN_PW) = $F->make_pki;

# the device keys, made while PostgreSQL and the nodes start
my $NKEYS = $N + 3;
my $KEYGEN = fork;
die "fork: $!" unless defined $KEYGEN;
if ($KEYGEN == 0) {
    { exec 'timeout', '-k', '5', '60', 'sh', '-c', 'i=1; while [ $i -le "$2" ]; do '
          . 'openssl genrsa -out "$1/key$i.pem" 2048 2>/dev/null & i=$((i+1)); done; wait',
          'sh', $W, $NKEYS };
    POSIX::_exit(127);
}
push @KIDS, $KEYGEN;
my $KEYNO = 0;
sub new_key {
    if ($KEYGEN) {
        waitpid($KEYGEN, 0);
        @KIDS = grep { $_ != $KEYGEN } @KIDS;
        $KEYGEN = 0;
        my @missing = grep { !-s "$W/key$_.pem" } 1 .. $NKEYS;
        die "cannot generate the device keys (@missing)\n" if @missing;
    }
    die "out of keys\n" if $KEYNO >= $NKEYS;
    return "$W/key" . ++$KEYNO . '.pem';
}

# PostgreSQL: few connections, none kept for superusers (so that a full
# server says "too many clients" to everyone);
# client_connection_check_interval: a backend whose client went away stops
$F->pg_init(conf => ["max_connections = $MAXCONN",
                     'superuser_reserved_connections = 0',
                     'client_connection_check_interval = 200ms']);
$F->pg_start;
$F->pg_setup_db(File::Spec->catfile(top_dir(), 'conf', 'schema-pgsql.sql'));
is($F->sql('SHOW max_connections'), $MAXCONN,
   "PostgreSQL on 127.0.0.1:$F->{pgport} with max_connections $MAXCONN (" . elapsed() . ')');

# what each node logs of its answers: the status and Retry-After
my $RALOG = "CustomLog \"logs/retry_log\" \"%>s ra=%{Retry-After}o us=%D %m %U%q\"\n";
my $POOL = $F->node('pool', pki => $PKI, htpasswd => "$W/htpasswd", dbd => <<"EOF" . $RALOG);
DBDPersist On
DBDMin 0
DBDKeep 1
DBDMax 1
DBDExptime 300
# auto: as many as DBDMax, here 1
SCEPDBDConnections auto ${WAIT_MS}ms
<IfModule mpm_event_module>
    StartServers          1
    ServerLimit           1
    ThreadLimit           8
    ThreadsPerChild       8
    MinSpareThreads       1
    MaxSpareThreads       8
    MaxRequestWorkers     8
</IfModule>
EOF
my $FRESH = $F->node('fresh', pki => $PKI, htpasswd => "$W/htpasswd",
                     dbd => "DBDPersist Off\n$RALOG");
for my $n ($POOL, $FRESH) {
    my ($ok, $out) = $F->configtest($n);
    ok($ok, "$n->{name}: httpd -t accepts its configuration") or diag($out);
    die "the configuration of $n->{name} is refused: stopping here\n" unless $ok;
    $F->start($n);
}
# the directive's syntax is checked when httpd reads its configuration
for my $bad (['SCEPDBDConnections 0', qr/auto or a number of connections/],
             ['SCEPDBDConnections auto 301', qr/the wait is a time from 0 to 300/],
             ["<VirtualHost 127.0.0.1:1>\nSCEPDBDConnections 4\n</VirtualHost>",
              qr/SCEPDBDConnections cannot occur within <VirtualHost> section/]) {
    my $conf = "$W/bad.conf";
    spit($conf, slurp($FRESH->{conf}) . "\n$bad->[0]\n");
    my ($ok, $out) = $F->configtest({ %$FRESH, conf => $conf });
    ok(!$ok && $out =~ $bad->[1], "httpd -t refuses '" . ($bad->[0] =~ s/\n/ /gr) . "'")
        or diag($out);
}
diag("nodes up after " . elapsed() . ": pool :$POOL->{port}, fresh :$FRESH->{port}");

# ---- helpers ----------------------------------------------------------------------------------

my $EP = '/certsrv/mscep/mscep.dll';
sub auth { ('Authorization' => 'Basic ' . MIME::Base64::encode_base64("admin:$ADMIN_PW", '')) }

sub http {
    my ($method, $url, %h) = @_;
    my $t = Time::HiRes::time();
    my $res = $UA->request($method, $url, { headers => { %h } });
    my $json = eval { $JSON->decode($res->{content}) };
    return { status => $res->{status}, body => $res->{content}, json => $json,
             headers => $res->{headers}, secs => Time::HiRes::time() - $t };
}

sub password {
    my ($n) = @_;
    my $r = http('GET', "$n->{url}/certsrv/mscep_admin/", Accept => 'application/json', auth());
    return $r->{json}{password} if $r->{status} == 200 && $r->{json} && $r->{json}{password};
    diag("admin page of $n->{name}: HTTP $r->{status} $r->{body}");
    return undef;
}

sub parse_out {
    my ($j, $text) = @_;
    $j->{text} = $text;
    ($j->{status}) = $text =~ /^status: (\w+)$/m;
    ($j->{http}) = $text =~ /^HTTP (\d+)$/m;
    ($j->{serial}) = $text =~ /^serial: (\S+)$/m;
    return $j;
}

# start enrollments together (0.8 s from now); returns the jobs, to reap()
sub fire {
    my ($jobs) = @_;
    my $start = Time::HiRes::time() + 0.8;
    for my $j (@$jobs) {
        $j->{file} = "$W/out-$j->{tid}";
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>', $j->{file} or POSIX::_exit(100);
            open STDERR, '>&', \*STDOUT;
            my $wait = $start - Time::HiRes::time();
            Time::HiRes::sleep($wait) if $wait > 0;
            { exec 'timeout', '-k', '5', '30', $client, 'enroll', $j->{node}{url} . $EP,
                  '--ca', "$W/ca-ra.pem", '--key', $j->{key}, '--cn', $j->{tid},
                  '--tid', $j->{tid}, '--challenge', $j->{pw}, '--out', "$W/$j->{tid}.pem" };
            POSIX::_exit(127);
        }
        $j->{pid} = $pid;
        push @KIDS, $pid;
    }
    return $start;
}
sub reap {
    my ($jobs) = @_;
    for my $j (@$jobs) {
        waitpid($j->{pid}, 0);
        $j->{rc} = $? >> 8;
        parse_out($j, -e $j->{file} ? slurp($j->{file}) : '');
    }
    my %mine = map { $_->{pid} => 1 } @$jobs;
    @KIDS = grep { !$mine{$_} } @KIDS;
    return $jobs;
}
sub enroll {
    my ($j) = @_;
    fire([$j]);
    return reap([$j])->[0];
}

# PKIOperation answers in a node's retry_log since MARK: [{status, ra, secs}]
sub answers {
    my ($n, $mark) = @_;
    my @a;
    for (split /\n/, ScepFarm::read_from("$n->{dir}/logs/retry_log", $mark)) {
        next unless /^(\d+) ra=(\S+) us=(\d+) \S+ \S*operation=PKIOperation/;
        push @a, { status => $1, ra => $2, secs => $3 / 1e6 };
    }
    return \@a;
}
sub size_of { -s $_[0] || 0 }

my %DONE;    # tid -> serial of every certificate this test was given
sub issued {
    my ($j) = @_;
    return 0 unless $j->{rc} == 0 && ($j->{status} // '') eq 'SUCCESS'
                    && -s "$W/$j->{tid}.pem";
    $DONE{ $j->{tid} } = $j->{serial} // '?';
    return 1;
}

# ---- 0. both nodes serve -----------------------------------------------------------------------
for my $n ($POOL, $FRESH) {
    my $j = enroll({ node => $n, key => new_key(), tid => "warm-$n->{name}-$$",
                     pw => password($n) });
    ok(issued($j), "$n->{name}: an enrollment before any load gets its certificate")
        or diag($j->{text});
}

# ---- 1. the pool of node "pool" exhausted ------------------------------------------------------
my @BUSY;    # jobs answered 503
{
    my @jobs = map { { node => $POOL, key => new_key(), tid => "busy-$_-$$",
                       pw => password($POOL) } } 1 .. $N;
    is(scalar(grep { $_->{pw} } @jobs), $N, "pool: $N passwords from its admin page");
    my $elog = size_of($POOL->{log});
    my $rlog = size_of("$POOL->{dir}/logs/retry_log");
    my $locker = $F->sql_background("BEGIN; LOCK TABLE scep_transaction IN ACCESS "
                                    . "EXCLUSIVE MODE; SELECT pg_sleep($LOCK_S); COMMIT",
                                    "$W/locker.out", 'locker');
    push @KIDS, $locker;
    my $locked = 0;
    for (1 .. 100) {
        $locked = $F->sql("SELECT COUNT(*) FROM pg_locks l JOIN pg_class c ON c.oid = "
                          . "l.relation WHERE c.relname = 'scep_transaction' AND l.mode = "
                          . "'AccessExclusiveLock' AND l.granted") and last;
        Time::HiRes::sleep(0.05);
    }
    my $t_lock = Time::HiRes::time();
    ok($locked, "PostgreSQL: scep_transaction locked for $LOCK_S s");
    my $start = fire(\@jobs);
    # while the requests are inside: the health check cannot have a
    # connection either, and says so within the wait
    Time::HiRes::sleep($start + 0.6 - Time::HiRes::time());
    my $h = http('GET', "$POOL->{url}/scep-status");
    is($h->{status}, 503, 'pool: meanwhile the health check answers 503') or diag($h->{body});
    ok(defined $h->{headers}{'retry-after'}, '... with Retry-After');
    like(($h->{json} && $h->{json}{checks}{database} && $h->{json}{checks}{database}{error}) // $h->{body},
         qr/busy/, '... and says the database connections are busy');
    cmp_ok($h->{secs}, '<', $WAIT_MS / 1000 + 2, sprintf '... after %.2f s: the bounded wait',
           $h->{secs});
    reap(\@jobs);
    my $t_all = Time::HiRes::time() - $start;
    waitpid($locker, 0);
    @KIDS = grep { $_ != $locker } @KIDS;

    my @ok = grep { issued($_) } @jobs;
    @BUSY = grep { ($_->{http} // 0) == 503 && $_->{rc} != 0 } @jobs;
    my @other = grep { !issued($_) && !(($_->{http} // 0) == 503) } @jobs;
    is(scalar @other, 0, "pool: each of the $N answers is a certificate or a 503")
        or diag(join "\n", map { "$_->{tid}: rc $_->{rc}\n$_->{text}" } @other);
    cmp_ok(scalar @ok, '>=', 1, 'the request that holds the connection gets its certificate '
           . 'once the lock is gone (' . scalar(@ok) . ')');
    cmp_ok(scalar @BUSY, '>=', $N - 2, 'the others are 503 (' . scalar(@BUSY)
           . "): they did not wait $LOCK_S s for mod_dbd");
    ok(!grep({ $_->{text} !~ /busy/ } @BUSY), '... whose one-line reason says busy')
        or diag($BUSY[0]{text});
    my $ans = answers($POOL, $rlog);
    my @a503 = grep { $_->{status} == 503 } @$ans;
    is(scalar @a503, scalar @BUSY, 'access log: as many 503 PKIOperation answers');
    ok(@a503 && !grep({ $_->{ra} !~ /^\d+$/ } @a503),
       '... every one with Retry-After (' . join(',', map { $_->{ra} } @a503) . ')');
    ok(@a503 && !grep({ $_->{secs} < $WAIT_MS / 1000 - 0.05 || $_->{secs} > $LOCK_S - 1 } @a503),
       "... answered after the ${WAIT_MS} ms wait, well before the lock's end ("
       . join(', ', map { sprintf '%.2f s', $_->{secs} } @a503) . ')');
    ok(!grep({ $_->{status} == 500 } @$ans), '... and no 500');
    my $log = ScepFarm::read_from($POOL->{log}, $elog);
    my $n106 = () = $log =~ /SCEP00106: database connection pool exhausted: the 1 connection/g;
    cmp_ok($n106, '>=', scalar @BUSY, "error log: SCEP00106 'pool exhausted' for each ($n106), "
           . 'naming the 1 connection that auto took from DBDMax') or diag($log);
    diag(sprintf 'pool exhausted: %d certificates, %d x 503 in %.1f s (lock held %.1f s)',
         scalar @ok, scalar @BUSY, $t_all, Time::HiRes::time() - $t_lock);
}

# ---- 2. PostgreSQL refuses connections -----------------------------------------------------------
my @REFUSED;
{
    my $job = { node => $FRESH, key => new_key(), tid => "refused-$$", pw => password($FRESH) };
    ok($job->{pw}, 'fresh: a password from its admin page');
    my $elog = size_of($FRESH->{log});
    my $rlog = size_of("$FRESH->{dir}/logs/retry_log");
    # every slot: psql sessions that sleep.  Whoever connects at the same
    # moment (this test's own check, a backend of part 1 still exiting)
    # can make a holder fail with "too many clients", and that slot would
    # then be free again: so another holder is started whenever a check
    # still gets in, until none does.  The holders end by themselves (or
    # are stopped below), long enough for a slow, sanitized run to see them
    # all connected and still make its requests.
    my $HOLD_S = 3 * $LOCK_S;
    my $t_hold = Time::HiRes::time();
    my $nh = 0;
    my @holders;
    my $hold = sub {
        $nh++;
        push @holders, $F->sql_background("SELECT pg_sleep($HOLD_S)", "$W/holder-$nh.out",
                                          "holder-$nh");
        push @KIDS, $holders[-1];
    };
    $hold->() for 1 .. $MAXCONN;
    Time::HiRes::sleep(0.5);
    my $full = 0;
    while (Time::HiRes::time() - $t_hold < $HOLD_S - 6) {
        $full = !defined $F->sql('SELECT 1', may_fail => 1) and last;
        $hold->() if $nh < 4 * $MAXCONN;
        Time::HiRes::sleep(0.2);
    }
    ok($full, sprintf "PostgreSQL: all $MAXCONN connections in use (after %.1f s, %d holders "
       . 'started)', Time::HiRes::time() - $t_hold, $nh)
        or diag(join "\n", map { -e "$W/holder-$_.out" ? slurp("$W/holder-$_.out") : '' }
                1 .. $nh);
    enroll($job);
    is($job->{http}, 503, 'fresh: an enrollment while the database refuses: HTTP 503')
        or diag($job->{text});
    push @REFUSED, $job if ($job->{http} // 0) == 503;
    my $adm = http('GET', "$FRESH->{url}/certsrv/mscep_admin/", Accept => 'application/json',
                   auth());
    is($adm->{status}, 503, 'fresh: the admin page meanwhile: 503');
    ok(defined $adm->{headers}{'retry-after'}, '... with Retry-After');
    my @ans = @{ answers($FRESH, $rlog) };
    is(scalar(@ans), 1, 'access log: one PKIOperation');
    is($ans[0]{status} // 0, 503, '... answered 503');
    like($ans[0]{ra} // '', qr/^\d+$/, "... with Retry-After ($ans[0]{ra})");
    cmp_ok($ans[0]{secs} // 99, '<', 3, sprintf '... at once (%.2f s)', $ans[0]{secs} // 99);
    my $log = ScepFarm::read_from($FRESH->{log}, $elog);
    like($log, qr/SCEP00101: no database connection from mod_dbd: the database refused/,
         "error log: SCEP00101 'the database refused'");
    like($log, qr/too many clients/, "error log: mod_dbd's reason, PostgreSQL's 'too many clients'");
    # done: the holders stop (PostgreSQL sees their client gone within
    # client_connection_check_interval)
    kill 'TERM', @holders;
    waitpid($_, 0) for @holders;
    my %h = map { $_ => 1 } @holders;
    @KIDS = grep { !$h{$_} } @KIDS;
}

# ---- 3. recovered by themselves -------------------------------------------------------------------
{
    for my $n ($POOL, $FRESH) {
        my $h;
        for (1 .. 40) {
            $h = http('GET', "$n->{url}/scep-status");
            last if $h->{status} == 200;
            Time::HiRes::sleep(0.25);
        }
        is($h->{status}, 200, "$n->{name}: healthy again") or diag($h->{body});
    }
    my @retry = (@BUSY, @REFUSED);
    ok(scalar @retry, 'there are 503 answers to retry (' . scalar(@retry) . ')');
    for my $j (@retry) {
        delete @$j{qw(pid rc text status http serial)};
        enroll($j);
        ok(issued($j), "$j->{node}{name}: $j->{tid} retried with the same password: "
           . 'its certificate (the password was not consumed by the 503)') or diag($j->{text});
    }
    my $n = scalar keys %DONE;
    is($F->sql('SELECT COUNT(*) FROM scep_certificate'), $n,
       "database: $n certificates, one per success seen");
    is($F->sql('SELECT COUNT(*) FROM scep_password WHERE state = 2'), $n,
       "database: $n passwords used");
    is($F->sql('SELECT COUNT(*) FROM scep_transaction WHERE state = 1'), $n,
       "database: $n issued transactions");
    is($F->sql('SELECT COUNT(*) FROM scep_transaction WHERE state <> 1'), 0,
       'database: no transaction left pending or rejected');
    is($F->sql('SELECT COUNT(*) FROM scep_password WHERE state = 1'), 0,
       'database: no password left reserved');
    is($F->sql('SELECT COUNT(*) FROM scep_password p WHERE p.state = 2 AND NOT EXISTS '
               . '(SELECT 1 FROM scep_transaction t WHERE t.transaction_id = p.transaction_id '
               . 'AND t.state = 1)'), 0,
       'database: every used password belongs to an issued transaction');
    is($F->sql('SELECT COUNT(*) FROM scep_password WHERE state = 0'), 0,
       'database: no password of this test is left unused');
    my $m = http('GET', "$POOL->{url}/scep-metrics");
    my ($busy) = ($m->{body} // '') =~ /^scep_db_unavailable_total\{cause="busy"\} (\d+)$/m;
    cmp_ok($busy // 0, '>=', scalar @BUSY, "pool: scep_db_unavailable_total{cause=\"busy\"} "
           . ($busy // 'missing'));
    $m = http('GET', "$FRESH->{url}/scep-metrics");
    my ($ref) = ($m->{body} // '') =~ /^scep_db_unavailable_total\{cause="refused"\} (\d+)$/m;
    cmp_ok($ref // 0, '>=', 1, "fresh: scep_db_unavailable_total{cause=\"refused\"} "
           . ($ref // 'missing'));
    for my $node ($POOL, $FRESH) {
        unlike(slurp($node->{log}), qr/Segmentation fault|exit signal|AH00052/,
               "$node->{name}: no crashed child");
    }
}
diag('done in ' . elapsed());
done_testing();
