# Durability of the SQLite store, seen from the system calls (issue #7,
# "the sqlite settings that keep durability without a sync per request
# where possible"): the test server's store is SQLite in WAL mode with
# synchronous = FULL.  Its groups of statements commit at NORMAL and the
# WAL is synced after the store lock is released (src/scep_store.c,
# "syncing after the lock").  strace on the server's children shows, for one
# enrollment and for one refusal:
#
#   * the thread that answers synced the WAL (fdatasync or fsync of
#     scep.db-wal) and the sync had returned before the answer was written:
#     nothing is answered before what it depends on is on disk;
#   * the enrollment needed exactly one sync of the WAL (the commit before
#     the CA is asked is made durable by the one after), or two when that
#     thread also ran a checkpoint, which syncs the WAL first.
use strict;
use warnings;
use Test::More;
use File::Spec ();
use POSIX ();
use Time::HiRes ();
use ScepTest;
use Scep8894;

need_programs('build/scep-client', 'openssl', 'strace', 'timeout');

my $client = program_path('build/scep-client');
my $W = tempdir();
my $SCEP = '/otp/certsrv/mscep';

my $STRACE;
sub stop_strace {
    return unless $STRACE;
    kill 'INT', $STRACE;
    for (1 .. 50) {
        last if waitpid($STRACE, POSIX::WNOHANG()) != 0;
        Time::HiRes::sleep(0.1);
    }
    if (kill 0, $STRACE) {
        kill 'KILL', $STRACE;
        waitpid($STRACE, 0);
    }
    $STRACE = undef;
}
END { my $rc = $?; stop_strace(); $? = $rc; }
$SIG{ALRM} = sub { diag('t/36-store-sync.t timed out'); stop_strace(); exit 1 };
alarm 120;

# the children of the test server
my $pidfile = File::Spec->catfile(top_dir(), 't', 'logs', 'httpd.pid');
my ($ppid) = slurp($pidfile) =~ /(\d+)/;
ok($ppid && kill(0, $ppid), "the test server runs (pid " . ($ppid // '?') . ')');
my @kids;
for (1 .. 20) {
    opendir(my $d, '/proc') or last;
    @kids = grep {
        my $st = -r "/proc/$_/stat" ? slurp("/proc/$_/stat") : '';
        $st =~ /^\d+ \(.*?\) \S (\d+)/ && $1 == $ppid
    } grep { /^\d+$/ } readdir $d;
    last if @kids;
    Time::HiRes::sleep(0.25);
}
ok(scalar @kids, "its children: @kids");

# one traced request: returns the trace
sub traced {
    my ($what, $argv) = @_;
    my $trace = "$W/trace-$what";
    my $errf = "$W/strace-$what.err";
    $STRACE = fork;
    die "fork: $!" unless defined $STRACE;
    if ($STRACE == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $errf or POSIX::_exit(100);
        { exec 'timeout', '-k', '5', '60', 'strace', '-f', '-y', '-s', '400', '-o', $trace,
              '-e', 'trace=fdatasync,fsync,writev,write,sendmsg,sendfile',
              map { ('-p', $_) } @kids };
        POSIX::_exit(127);
    }
    # every thread of every child attached
    my $want = 0;
    for my $k (@kids) {
        opendir(my $d, "/proc/$k/task") or next;
        $want += grep { /^\d+$/ } readdir $d;
    }
    for (1 .. 100) {
        my $err = -e $errf ? slurp($errf) : '';
        my $n = () = $err =~ /attached/g;
        last if $n >= $want;
        Time::HiRes::sleep(0.1);
    }
    my $r = run_cmd($argv, timeout => 60);
    Time::HiRes::sleep(0.3);
    stop_strace();
    $r->{trace} = -e $trace ? slurp($trace) : '';
    return $r;
}

# the answering thread's WAL syncs before its answer: (syncs, answered, checkpoint)
sub syncs_before_answer {
    my ($trace) = @_;
    my (%syncs, %ckpt, %pending);
    for my $line (split /\n/, $trace) {
        my ($tid, $rest) = $line =~ /^(\d+)\s+(.*)$/ or next;
        if ($rest =~ /^f(?:data)?sync\(\d+<([^>]*)>/) {
            my $file = $1;
            if ($rest =~ /<unfinished \.\.\.>$/) {
                $pending{$tid} = $file;
                next;
            }
            next unless $rest =~ /\) = 0$/;
            $file =~ /-wal$/ ? $syncs{$tid}++ : $ckpt{$tid}++;
        }
        elsif ($rest =~ /^<\.\.\. f(?:data)?sync resumed>\) = 0$/ && exists $pending{$tid}) {
            my $file = delete $pending{$tid};
            $file =~ /-wal$/ ? $syncs{$tid}++ : $ckpt{$tid}++;
        }
        elsif ($rest =~ /^(?:writev|write|sendmsg)\(\d+<(?:TCP|socket)[^>]*>.*HTTP\/1\.1 200 .*x-pki-message/) {
            return ($syncs{$tid} // 0, 1, $ckpt{$tid} // 0);
        }
    }
    return (0, 0, 0);
}

# ---- one enrollment --------------------------------------------------------------------------
{
    # pool "otp", Scep8894's admin; it dies saying why when there is none
    my $pw = eval { otp_password() };
    ok($pw, 'a one-time password from the admin page') or diag($@);
    my $mark = log_mark();
    my $r = traced('enroll', [$client, 'enroll', base_url() . $SCEP, '--key', "$W/k1.pem",
                              '--out', "$W/c1.pem", '--cn', "sync-$$", '--tid', "t36-$$-1",
                              '--challenge', $pw]);
    is($r->{rc}, 0, 'the enrollment: SUCCESS') or diag("$r->{out}$r->{err}");
    my ($n, $answered, $ckpt) = syncs_before_answer($r->{trace});
    ok($answered, 'the trace shows the answer written') or diag($r->{trace});
    cmp_ok($n, '>=', 1, "the answering thread synced the WAL before it answered ($n)")
        or diag($r->{trace});
    cmp_ok($n, '<=', $ckpt ? 2 : 1, 'one sync of the WAL per enrollment'
           . ($ckpt ? ' (and one of a checkpoint)' : '')) or diag($r->{trace});
    # the local CA signed before the store lock: one commit in all
    like(wait_log($mark, qr/SCEP00035/), qr/SCEP00035: transaction t36-$$-1: signed by CA provider/,
         'the certificate was signed before the store lock (SCEP00035)');
}

# ---- one refusal (a wrong password): what it wrote is on disk before the FAILURE -------------
{
    my $r = traced('refused', [$client, 'enroll', base_url() . $SCEP, '--key', "$W/k2.pem",
                               '--out', "$W/c2.pem", '--cn', "sync-bad-$$",
                               '--tid', "t36-$$-2", '--challenge', 'NOT-A-PASSWORD']);
    is($r->{rc}, 2, 'a wrong password: FAILURE') or diag("$r->{out}$r->{err}");
    my ($n, $answered) = syncs_before_answer($r->{trace});
    ok($answered, 'the trace shows the answer written') or diag($r->{trace});
    cmp_ok($n, '>=', 1, "the answering thread synced the WAL before the FAILURE ($n)")
        or diag($r->{trace});
}

done_testing();
