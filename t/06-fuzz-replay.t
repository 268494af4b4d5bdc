# The fuzz corpora, replayed without libFuzzer: every file of
# fuzz/corpus/NAME (seeds from scep-craft and what fuzzing found) and of
# fuzz/crashes/NAME (crashes kept as regression cases) goes once through
# the target's LLVMFuzzerTestOneInput, built with the project's compiler
# into $SCEP_BUILD/fuzz-replay-NAME by "fuzz/run.sh --build-replay" (with the
# sanitizers when libscep.a has them: make test SANITIZE=1).  Needs no
# httpd.
use strict;
use warnings;
use Test::More;
use ScepTest;

my @targets = qw(pkimessage base64 csr json p7);
my $top = top_dir();
chdir $top or die "$top: $!";

my $r = run_cmd(['sh', 'fuzz/run.sh', '--build-replay', @targets],
                timeout => 600);
ok($r->{rc} == 0, 'fuzz/run.sh --build-replay builds every replay binary')
    or do { diag("$r->{out}$r->{err}"); done_testing; exit };

sub files_in {
    my ($dir) = @_;
    return () unless -d $dir;
    opendir my $dh, $dir or return ();
    my @f = grep { !/^\./ && -f "$dir/$_" } readdir $dh;
    closedir $dh;
    return @f;
}

for my $t (@targets) {
    my @corpus = files_in("fuzz/corpus/$t");
    my @crashes = files_in("fuzz/crashes/$t");
    ok(scalar @corpus, "$t: fuzz/corpus/$t has inputs (" . scalar(@corpus) . ')');
    note("$t: regression cases: @crashes") if @crashes;
    my $run = run_cmd([build_path("fuzz-replay-$t"), "fuzz/corpus/$t",
                       "fuzz/crashes/$t"], timeout => 600);
    my ($n) = $run->{out} =~ /replayed (\d+) inputs/;
    ok($run->{rc} == 0 && defined $n && $n == @corpus + @crashes,
       "$t: all " . (@corpus + @crashes) . ' inputs replay without a crash')
        or diag("exit $run->{rc}\n$run->{out}" . substr($run->{err}, 0, 6000));
}

done_testing;
