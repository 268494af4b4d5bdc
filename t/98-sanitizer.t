# Runs before 99-errorlog.t: no AddressSanitizer, LeakSanitizer or
# UndefinedBehaviorSanitizer report anywhere in this run -- neither in
# t/logs/error_log (the sanitized module inside httpd writes there) nor in
# $SCEP_BUILD/sanitizer/report.* (the unit tests, scep-client, scep-craft and the
# fuzz replay binaries write there; see t/setup/sanitize.sh).  Without
# SANITIZE=1 the same checks run and find nothing to complain about.
use strict;
use warnings;
use Test::More;
use ScepTest;

my $sanitized = ($ENV{SCEP_SANITIZE} // '') eq '1';
note($sanitized ? 'sanitized run (SANITIZE=1)'
                : 'not a sanitized run: checking for stray reports only');

my $report_re = qr/ERROR: (?:AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (?:Address|Leak|UndefinedBehavior)Sanitizer/;

# the one stack that matters: from the ERROR line, at most 60 lines
sub excerpt {
    my ($text) = @_;
    my @l = split /\n/, $text;
    my ($i) = grep { $l[$_] =~ $report_re } 0 .. $#l;
    return '' unless defined $i;
    my $end = $i + 59 < $#l ? $i + 59 : $#l;
    return join "\n", @l[$i .. $end];
}

# ---- the error log --------------------------------------------------------
my $log = error_log_path();
select(undef, undef, undef, 0.5);    # a child that just died
my $text = -e $log ? slurp($log) : '';
ok(-e $log, 't/logs/error_log exists');
my @hits = grep { /$report_re/ } split /\n/, $text;
is(scalar @hits, 0, 'no sanitizer report in t/logs/error_log')
    or diag(excerpt($text));

# ---- reports of the programs run by the tests ------------------------------
my @reports = glob(build_path('sanitizer', 'report.*'));
is(scalar @reports, 0, 'no sanitizer report in ' . build_path('sanitizer'))
    or do {
        for my $f (@reports[0 .. ($#reports < 4 ? $#reports : 4)]) {
            diag("---- $f\n" . excerpt(slurp($f)));
        }
        diag(scalar(@reports) . ' reports in all') if @reports > 5;
    };

if ($sanitized) {
    ok(-x build_path('sanitize-httpd'),
       'httpd ran through ' . build_path('sanitize-httpd') . ' (libasan preloaded)');
    my $pm = slurp(top_dir() . '/t/conf/apache_test_config.pm');
    like($pm, qr/sanitize-httpd/,
         'Apache::Test was configured with the sanitizing httpd wrapper '
         . '(t/TEST.PL honours SCEP_TEST_HTTPD)');
}

done_testing;
