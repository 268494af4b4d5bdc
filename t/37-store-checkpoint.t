# Checkpoints of the SQLite store (issue #7, "scale with data"): SQLite
# would copy the WAL into the database file inside the commit that makes
# the WAL reach wal_autocheckpoint frames (1000 by default), while that
# commit holds the store lock; mod_scep runs the checkpoint after the lock
# instead (src/scep_store.c, "checkpoints after the lock").  A checkpoint
# that runs while other writers go on must still let the WAL start again
# from its beginning, or the WAL grows with every commit and each commit
# checkpoints (the first version of that code did exactly this).
#
# Some thousands of WAL frames from 500 enrollments at concurrency 8 (the
# benchmark's load generator against an endpoint of the test server with
# the static challenge and the store, /bulk/mscep); the
# WAL file, sampled all along, never holds much more than 1000 frames, and
# the store is whole afterwards.
use strict;
use warnings;
use Test::More;
use File::Spec ();
use JSON::PP ();
use POSIX ();
use Time::HiRes ();
use ScepTest;

need_programs('build/scep-bench', 'sqlite3');

my $bench = program_path('build/scep-bench');
my $W = tempdir();
my $top = top_dir();
my $db = File::Spec->catfile($top, 't', 'db', 'scep.db');
my $wal = "$db-wal";
my $N = 500;
my $FRAME = 4096 + 24;     # page_size 4096 (conf/schema-sqlite3.sql)

my ($page) = `sqlite3 '$db' 'PRAGMA page_size'` =~ /(\d+)/;
is($page, 4096, 'the store has 4 KiB pages');
my ($ckpt) = `sqlite3 '$db' 'PRAGMA wal_autocheckpoint'` =~ /(\d+)/;
is($ckpt, 1000, 'wal_autocheckpoint is SQLite\'s default (1000 frames)');
my $COUNT = "SELECT COUNT(*) FROM scep_certificate c JOIN scep_transaction t "
    . "ON t.transaction_id = c.transaction_id WHERE t.endpoint = 'bulk'";
my ($before) = `sqlite3 '$db' "$COUNT"` =~ /(\d+)/;
ok(defined $before, "certificates in the store before: " . ($before // '?'));

my $challenge = slurp(File::Spec->catfile($top, 't', 'pki', 'challenge'));
$challenge =~ s/\s+\z//;
my $url = base_url() . '/bulk/mscep/pkiclient.exe';

# the load, with the WAL's size sampled every 10 ms meanwhile
my $out = File::Spec->catfile($W, 'bench.json');
my $err = File::Spec->catfile($W, 'bench.err');
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    open(STDOUT, '>', $out) or POSIX::_exit(111);
    open(STDERR, '>', $err) or POSIX::_exit(111);
    exec($bench, 'enroll', $url, '--challenge', $challenge,
         '--cache', File::Spec->catdir($W, 'keys'), '--keys', '8',
         '--concurrency', '8', '--max', $N, '--seconds', '120',
         '--warmup', '0', '--verify', '5', '--label', 't37')
        or POSIX::_exit(112);
}
my ($max, $samples, $rc) = (0, 0, undef);
my $deadline = time + 240;
while (time < $deadline) {
    my $size = -s $wal;
    $samples++;
    $max = $size if defined $size && $size > $max;
    if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
        $rc = $?;
        last;
    }
    Time::HiRes::sleep(0.01);
}
unless (defined $rc) {
    kill 'KILL', $pid;
    waitpid($pid, 0);
}
is($rc, 0, 'scep-bench ran to its end') or diag(slurp($err));
my $r = eval { JSON::PP->new->decode(slurp($out)) } || {};
my ($lv) = @{ $r->{levels} || [] };
$lv ||= {};
is($lv->{success}, $N, "$N enrollments, all SUCCESS")
    or diag(slurp($out) . slurp($err));
is($lv->{verified}, 5, 'replies checked completely (5 of them)');

my ($after) = `sqlite3 '$db' "$COUNT"` =~ /(\d+)/;
is(($after // 0) - ($before // 0), $N, "$N more certificates in the store");
my ($ok) = `sqlite3 '$db' 'PRAGMA integrity_check'`;
is($ok, "ok\n", 'the store is whole (integrity_check)');

# an enrollment commits three times, each writing at least two pages: the
# load wrote some thousands of frames, more than one WAL can hold
my $frames = int($max / $FRAME);
ok($samples > 20, "the WAL sampled $samples times");
cmp_ok($frames, '>=', 900,
       "the WAL reached its checkpoint size ($frames frames at most)");
cmp_ok($frames, '<=', 1600,
       'and it started again from its beginning after checkpoints, '
       . 'instead of growing (at most 1600 frames)');

done_testing();
