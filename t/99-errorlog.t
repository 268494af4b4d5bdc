# Runs last: the whole error log of this test run must be free of crashes and
# of [crit]/[alert]/[emerg] lines that nobody expected.
use strict;
use warnings;
use Test::More;
use ScepTest;

# Lines that are known and harmless; each entry is a regular expression.
my @expected = (
);

# what a dead or corrupted process leaves behind (httpd's parent logs
# "AH00052: child pid N exit signal Segmentation fault (11)")
my @crash_patterns = (
    qr/exit signal/,
    qr/segfault|Segmentation fault|dumped core/,
    qr/AddressSanitizer|LeakSanitizer|runtime error:/,
    qr/double free|free\(\): invalid|stack smashing|malloc\(\):/,
);

my $file = error_log_path();
ok(-e $file, 't/logs/error_log exists') or do { done_testing; exit };

# give the parent a moment to reap (and log) a child that just died
select(undef, undef, undef, 0.5);

my (@severe, @crash);
open my $fh, '<', $file or die "$file: $!";
while (my $line = <$fh>) {
    chomp $line;
    next if grep { $line =~ $_ } @expected;
    push @severe, $line if $line =~ /\[(?:[\w.-]+:)?(?:crit|alert|emerg)\]/;
    push @crash, $line if grep { $line =~ $_ } @crash_patterns;
}
close $fh;

is(scalar @crash, 0, 'no crash in t/logs/error_log') or diag(join "\n", @crash);
is(scalar @severe, 0, 'no unexpected [crit]/[alert]/[emerg] in t/logs/error_log')
    or diag(join "\n", @severe);

done_testing;
