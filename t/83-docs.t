# The documentation keeps up with the code: every directive of mod_scep.c's
# scep_cmds[] (its AP_INIT_* lines) has a section in docs/directives.md in
# httpd's manual style (the Description/Syntax/Default/Context/Status/Module
# table, a Context that matches where the directive is allowed) and a line
# in the index at the top; every handler the module answers (r->handler
# compared in mod_scep.c and src/mod_scep_*.c) has a "## Handler" section;
# no section documents a directive that does not exist; the local links
# between README.md, docs/*.md and man/*.md point at files and headings
# that exist.  Needs no server.
use strict;
use warnings;
use Test::More;
use File::Spec ();
use Cwd ();

my $top = Cwd::abs_path(File::Spec->catdir((File::Spec->splitpath(Cwd::abs_path(__FILE__)))[1], '..'));

sub slurp_file {
    my ($f) = @_;
    open my $fh, '<', $f or die "cannot read $f: $!\n";
    local $/;
    return scalar <$fh>;
}

my $src = slurp_file("$top/mod_scep.c");
my $doc = slurp_file("$top/docs/directives.md");

# ---- the directives of scep_cmds[] -------------------------------------------
my ($table) = $src =~ /scep_cmds\[\]\s*=\s*\{(.*?)\n\};/s;
ok($table, 'mod_scep.c: the scep_cmds[] table');
my %cmds;    # name => "directory" | "server"
while (($table // '') =~ /AP_INIT_\w+\(\s*"(\w+)"\s*,(.*?)\)\s*,\s*(?=AP_INIT_|\{\s*NULL)/gs) {
    my ($name, $rest) = ($1, $2);
    $cmds{$name} = $rest =~ /ACCESS_CONF|OR_\w+/ ? 'directory' : 'server';
}
my $n = keys %cmds;
my $expected = () = ($table // '') =~ /AP_INIT_\w+\(/g;
ok($n >= 20 && $n == $expected, "scep_cmds[]: $n directives parsed of $expected AP_INIT_* lines");

# the sections of directives.md: "## Name" up to the next "## "
my %sections;
while ($doc =~ /^## ([^\n]+)\n(.*?)(?=^## |\z)/gms) {
    $sections{$1} = $2;
}

for my $name (sort keys %cmds) {
    my $body = $sections{$name};
    ok(defined $body, "docs/directives.md has a section \"## $name\"") or next;
    for my $row (qw(Description Syntax Default Context Status Module)) {
        like($body, qr/^\| $row: \| .+ \|$/m, "$name: a \"$row:\" row");
    }
    like($body, qr/^\| Syntax: \| `\Q$name\E\b/m, "$name: the Syntax row names it");
    my ($ctx) = $body =~ /^\| Context: \| (.+) \|$/m;
    if ($cmds{$name} eq 'directory') {
        like($ctx // '', qr/\bdirectory\b/, "$name: Context includes directory (ACCESS_CONF)");
    }
    else {
        unlike($ctx // '', qr/\bdirectory\b/, "$name: Context without directory (RSRC_CONF only)");
    }
    like($body, qr/^Examples?:?\s*$/m, "$name: an example");
    like($doc, qr/^\* \[\Q$name\E\]\(#\L$name\E\)$/m, "$name: listed in the index at the top");
}

# no section for a directive that is not in the table
for my $s (sort keys %sections) {
    next unless $s =~ /^SCEP\w+$/;
    ok($cmds{$s}, "## $s is a directive of scep_cmds[]");
}

# ---- the handlers -------------------------------------------------------------
my %handlers;
for my $f ("$top/mod_scep.c", glob("$top/src/mod_scep_*.c")) {
    my $c = slurp_file($f);
    $handlers{$1} = 1 while $c =~ /strcmp\(r->handler,\s*"([\w-]+)"\)/g;
}
ok($handlers{scep} && $handlers{'scep-admin'}, 'the handlers scep and scep-admin are found in the sources');
for my $h (sort keys %handlers) {
    my $heading = $h eq 'scep' ? 'Handler' : "Handler $h";
    ok(exists $sections{$heading}, "docs/directives.md has a section \"## $heading\"");
    like($doc, qr/SetHandler \Q$h\E\b/, "docs/directives.md shows SetHandler $h");
}

# ---- local links ----------------------------------------------------------------
# GitHub's anchors: lower case, punctuation dropped, blanks to hyphens
sub anchors_of {
    my ($text) = @_;
    my %a;
    my $in_code = 0;
    for my $line (split /\n/, $text) {
        $in_code = !$in_code if $line =~ /^```/;
        next if $in_code;
        next unless $line =~ /^#{1,6}\s+(.*?)\s*$/;
        my $t = lc $1;
        $t =~ s/`//g;
        $t =~ s/[^\w\- ]//g;
        $t =~ s/ /-/g;
        my $k = $t;
        my $i = 1;
        $k = "$t-" . $i++ while $a{$k};
        $a{$k} = 1;
    }
    return \%a;
}

my @docs = ("$top/README.md", glob("$top/docs/*.md"), glob("$top/man/*.md"));
my %anchors;
$anchors{Cwd::abs_path($_)} = anchors_of(slurp_file($_)) for @docs;
my $bad = 0;
for my $f (@docs) {
    my $text = slurp_file($f);
    $text =~ s/^```.*?^```//gms;          # not in code blocks
    my $dir = (File::Spec->splitpath($f))[1];
    while ($text =~ /\]\(([^)\s]+)\)/g) {
        my $link = $1;
        next if $link =~ m{^[a-z]+:}i;     # http:, mailto:
        my ($path, $frag) = split /#/, $link, 2;
        my $target = length $path ? Cwd::abs_path(File::Spec->catfile($dir, $path)) : Cwd::abs_path($f);
        (my $short = $f) =~ s{^\Q$top\E/}{};
        if (!$target || !-e $target) {
            fail("$short: link $link: no such file");
            $bad++;
            next;
        }
        next unless defined $frag && length $frag && $target =~ /\.md$/;
        $anchors{$target} //= anchors_of(slurp_file($target));
        if (!$anchors{$target}{$frag}) {
            fail("$short: link $link: no such heading");
            $bad++;
        }
    }
}
is($bad, 0, 'every local link of README.md, docs/*.md and man/*.md resolves');

# ---- the documents the index promises ---------------------------------------
my $index = slurp_file("$top/docs/README.md");
for my $d (qw(directives.md admin-page.md store.md ndes-migration.md admin-guide.md audit.md)) {
    ok(-f "$top/docs/$d", "docs/$d exists");
    like($index, qr/\]\(\Q$d\E\)/, "docs/README.md lists $d");
}

done_testing();
