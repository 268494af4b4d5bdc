# The Debian package: "dpkg-buildpackage -us -uc -b" in a temporary copy of
# the tree (the sources, debian/, docs, man pages; nothing of the test tree
# but the unit tests), then what the .debs hold (dpkg-deb -c, -I, -e, -x):
# the module in /usr/lib/apache2/modules, scep.load and scep.conf in
# mods-available, the sample site in sites-available and not enabled,
# scepadm in /usr/sbin, the schemas, the man pages, the header in the -dev
# package; Depends on apache2-api-20120211 and libssl3; maintainer scripts
# through apache2-maintscript-helper; "a2enmod scep" pulls in dbd (the
# .load file as a2enmod reads it, and a2enmod itself in a scratch
# configuration directory); scep.conf enables nothing; the packaged
# scepadm runs and the packaged module loads into httpd -t; the sample
# site, with keys made by the packaged scepadm, passes scepadm check and
# httpd -t.
#
# Needs dpkg-buildpackage and debhelper (dh); without them the file is
# skipped, or fails under CI=true.  The build takes 40-60 s (the unit tests
# run in it unless SCEP_TEST_DEB_NOCHECK=1).
use strict;
use warnings;
use Test::More;
use File::Spec ();
use File::Path ();
use Time::HiRes ();
use ScepTest;

need_programs('dpkg-buildpackage', 'dh', 'dpkg-deb', 'dpkg-checkbuilddeps');

my $TOP = top_dir();
my $W = tempdir();
my $SRC = "$W/src";

$SIG{ALRM} = sub { diag('t/81-debian.t timed out (the package build takes too long)'); exit 1 };
alarm 300;

# ---- the build dependencies (debian/control), then the build in a copy ---------
{
    my $r = run_cmd(['sh', '-c', "cd '$TOP' && dpkg-checkbuilddeps"], timeout => 60);
    if ($r->{rc} != 0) {
        if (in_ci()) {
            plan(tests => 1);
            fail("Build-Depends are installed (CI=true): $r->{err}");
            exit 1;
        }
        plan(skip_all => "Build-Depends missing: $r->{err}");
    }
}

mkdir $SRC or die "$SRC: $!";
mkdir "$SRC/t" or die;
my @copy = qw(Makefile README.md mod_scep.c src include tools conf docs man debian);
for my $f (@copy, 't/unit') {
    my $r = run_cmd(['cp', '-a', "$TOP/$f", "$SRC/$f"], timeout => 60);
    is($r->{rc}, 0, "copy $f") or diag($r->{err});
}
# what an earlier build in the source tree may have left
File::Path::rmtree("$SRC/debian/$_") for grep { -e "$SRC/debian/$_" }
    qw(.debhelper tmp files libapache2-mod-scep libapache2-mod-scep-dev
       libapache2-mod-scep-dbgsym debhelper-build-stamp);
unlink glob("$SRC/debian/*.substvars"), glob("$SRC/debian/*.debhelper"),
       glob("$SRC/debian/*.debhelper.log");
File::Path::rmtree("$SRC/build") if -e "$SRC/build";

my $t0 = Time::HiRes::time();
# The package is built as a user would, whatever this run is: no sanitizer
# (SANITIZE from "make test SANITIZE=1", its runtime options, the httpd
# wrapper), no build directory and no make command line of the make that
# runs the suite (MAKEFLAGS would hand SANITIZE=1 B=build/asan down to
# debian/rules' make).
my %env = (DEB_BUILD_OPTIONS => $ENV{SCEP_TEST_DEB_NOCHECK} ? 'nocheck' : '',
           map { ($_ => undef) }
               qw(SANITIZE ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
                  SCEP_TEST_HTTPD SCEP_SANITIZE SCEP_BUILD B
                  MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES));
my $b = run_cmd(['sh', '-c', "cd '$SRC' && dpkg-buildpackage -us -uc -b"], timeout => 280,
                env => \%env);
my $took = Time::HiRes::time() - $t0;
is($b->{rc}, 0, sprintf('dpkg-buildpackage -us -uc -b: exit 0 (%.0f s)', $took))
    or diag(substr($b->{out} . $b->{err}, -6000));
diag(sprintf('the package build took %.0f s', $took)) if $ENV{SCEP_TEST_VERBOSE} || $took > 120;
cmp_ok($took, '<', 180, 'the package builds in less than 3 minutes');

my ($deb) = glob("$W/libapache2-mod-scep_*_*.deb");
my ($dev) = glob("$W/libapache2-mod-scep-dev_*_all.deb");
ok($deb && -s $deb, 'libapache2-mod-scep_*.deb') or BAIL_OUT("no package built");
ok($dev && -s $dev, 'libapache2-mod-scep-dev_*_all.deb');

# ---- contents ----------------------------------------------------------------------
sub contents {
    my ($file) = @_;
    my $r = run_cmd(['dpkg-deb', '-c', $file], timeout => 60);
    my %c;
    for (split /\n/, $r->{out}) {
        my @f = split /\s+/, $_, 6;
        (my $path = $f[5] // '') =~ s/ -> .*//;
        $path =~ s{^\./}{/};
        $c{$path} = $f[0];
    }
    return \%c;
}
my $c = contents($deb);
for my $f (qw(/usr/lib/apache2/modules/mod_scep.so
              /etc/apache2/mods-available/scep.load
              /etc/apache2/mods-available/scep.conf
              /etc/apache2/sites-available/scep-ndes.conf
              /usr/sbin/scepadm
              /usr/share/libapache2-mod-scep/schema-sqlite3.sql
              /usr/share/libapache2-mod-scep/schema-pgsql.sql
              /usr/share/libapache2-mod-scep/schema-mysql.sql
              /usr/share/man/man8/scepadm.8.gz
              /usr/share/man/man7/mod_scep.7.gz
              /usr/share/doc/libapache2-mod-scep/copyright)) {
    ok(exists $c->{$f}, "the package holds $f");
}
like($c->{'/usr/sbin/scepadm'} // '', qr/^-rwxr-xr-x/, 'scepadm is executable');
ok((grep { m{^/usr/share/doc/libapache2-mod-scep/docs/directives\.md} } keys %$c),
   'the directive reference is in /usr/share/doc');
ok(!(grep { m{/(?:sites|mods|conf)-enabled/} } keys %$c), 'nothing is shipped enabled');
ok(!(grep { m{^/usr/include/} } keys %$c), 'no header in the module package');
my $cd = contents($dev);
ok(exists $cd->{'/usr/include/apache2/mod_scep.h'}, 'the -dev package holds /usr/include/apache2/mod_scep.h');

# ---- control -----------------------------------------------------------------------
my $info = run_cmd(['dpkg-deb', '-I', $deb], timeout => 60)->{out};
my ($depends) = $info =~ /^ Depends: (.*)$/m;
like($depends // '', qr/(?:^|, )apache2-api-20120211(?:,|$)/, 'Depends: apache2-api-20120211');
like($depends // '', qr/(?:^|, )libssl3(?:t64)? \(/, 'Depends: libssl3');
like($depends // '', qr/(?:^|, )libaprutil1 \(/, 'Depends: libaprutil1 (scepadm)');
like($info, qr/^ Section: httpd$/m, 'Section: httpd');

my $ctl = "$W/control";
run_cmd(['dpkg-deb', '-e', $deb, $ctl], timeout => 60);
my $postinst = -f "$ctl/postinst" ? slurp("$ctl/postinst") : '';
my $prerm = -f "$ctl/prerm" ? slurp("$ctl/prerm") : '';
like($postinst, qr/apache2-maintscript-helper/, 'postinst uses apache2-maintscript-helper');
like($postinst, qr/apache2_invoke enmod/, 'postinst enables the module with apache2_invoke');
unlike($postinst, qr/ensite/, 'postinst does not enable the sample site');
like($postinst, qr{/var/lib/apache2/scep}, 'postinst makes the database directory');
like($prerm, qr/apache2_invoke dismod/, 'prerm disables the module on removal');
my $conffiles = -f "$ctl/conffiles" ? slurp("$ctl/conffiles") : '';
for my $f (qw(/etc/apache2/mods-available/scep.load /etc/apache2/mods-available/scep.conf
              /etc/apache2/sites-available/scep-ndes.conf)) {
    like($conffiles, qr/^\Q$f\E$/m, "$f is a conffile");
}
for my $s (grep { -f "$ctl/$_" } qw(postinst prerm postrm)) {
    my $r = run_cmd(['sh', '-n', "$ctl/$s"], timeout => 30);
    is($r->{rc}, 0, "$s is valid sh");
}

# ---- the files themselves ------------------------------------------------------------
my $root = "$W/root";
run_cmd(['dpkg-deb', '-x', $deb, $root], timeout => 60);
my $load = slurp("$root/etc/apache2/mods-available/scep.load");
like($load, qr{^LoadModule scep_module /usr/lib/apache2/modules/mod_scep\.so$}m,
     'scep.load loads /usr/lib/apache2/modules/mod_scep.so');

# a2enmod's own rule: "# Depends: a b" before the first line that is not a comment
sub load_deps {
    my ($file) = @_;
    open my $fh, '<', $file or return ();
    while (my $line = <$fh>) {
        chomp $line;
        return split /[\n\s]+/, $1 if $line =~ /^# Depends:\s+(.*?)\s*$/;
        last if $line !~ /^\s*(?:#.*)?$/;
    }
    return ();
}
my @deps = load_deps("$root/etc/apache2/mods-available/scep.load");
ok((grep { $_ eq 'dbd' } @deps), 'scep.load: "# Depends: dbd", where a2enmod reads it')
    or diag($load);

SKIP: {
    my $a2enmod = program_path('a2enmod');
    skip 'no a2enmod (apache2)', 4 unless $a2enmod;
    # a scratch configuration directory: a2enmod honours APACHE_CONFDIR
    my $conf = "$W/apache2";
    File::Path::make_path("$conf/mods-available", "$conf/mods-enabled", "$W/state");
    for my $f (qw(scep.load scep.conf)) {
        spit("$conf/mods-available/$f", slurp("$root/etc/apache2/mods-available/$f"));
    }
    spit("$conf/mods-available/dbd.load",
         -f '/etc/apache2/mods-available/dbd.load'
         ? slurp('/etc/apache2/mods-available/dbd.load')
         : "LoadModule dbd_module /usr/lib/apache2/modules/mod_dbd.so\n");
    spit("$conf/envvars", "# empty\n");
    my $r = run_cmd([$a2enmod, 'scep'], timeout => 60,
                    env => { APACHE_CONFDIR => $conf, APACHE_STATE_DIRECTORY => "$W/state",
                             APACHE_ENVVARS => "$conf/envvars" });
    is($r->{rc}, 0, 'a2enmod scep (APACHE_CONFDIR=scratch): exit 0') or diag("$r->{out}$r->{err}");
    ok(-l "$conf/mods-enabled/dbd.load", 'a2enmod scep enabled dbd') or diag("$r->{out}$r->{err}");
    ok(-l "$conf/mods-enabled/scep.load", 'a2enmod scep enabled scep.load');
    ok(-l "$conf/mods-enabled/scep.conf", 'and scep.conf');
}

# scep.conf: commented defaults, nothing active but the <IfModule> around them
{
    my $sc = slurp("$root/etc/apache2/mods-available/scep.conf");
    my @active = grep { !/^\s*(?:#.*)?$/ && !m{^\s*</?IfModule\b} } split /\n/, $sc;
    is(scalar @active, 0, 'scep.conf sets nothing (every setting commented)') or diag(join "\n", @active);
    like($sc, qr/^\s*#\s*SCEPAuditLog /m, 'scep.conf shows SCEPAuditLog');
    like($sc, qr/^\s*#\s*LimitRequestLine\s+65534/m, 'scep.conf shows the long-GET limits');
}

# the sample site: a complete NDES set-up, for a2ensite once the keys exist
{
    my $site = slurp("$root/etc/apache2/sites-available/scep-ndes.conf");
    like($site, qr/^\s*SetHandler scep$/m, 'scep-ndes.conf: the SCEP endpoint');
    like($site, qr/<Location \/certsrv\/mscep>/, 'scep-ndes.conf: at NDES\'s URL');
    like($site, qr/^\s*SetHandler scep-admin$/m, 'scep-ndes.conf: the admin page');
    like($site, qr{/usr/share/libapache2-mod-scep/schema-sqlite3\.sql}, 'scep-ndes.conf: says where the schema is');
}

# the packaged programs work
{
    my $r = run_cmd(["$root/usr/sbin/scepadm", 'version'], timeout => 30);
    is($r->{rc}, 0, 'the packaged scepadm runs') or diag($r->{err});
    like($r->{out}, qr/^scepadm \(mod_scep\) /, 'scepadm version');
    my $m = run_cmd(['sh', '-c', "man -l '$root/usr/share/man/man8/scepadm.8.gz' 2>&1 >/dev/null"],
                    timeout => 30, env => { MANWIDTH => 80, LC_ALL => 'C.UTF-8' });
    is($m->{out}, '', 'scepadm.8 formats without warnings') if program_path('man');
}
SKIP: {
    my $httpd = -x '/usr/sbin/apache2' ? '/usr/sbin/apache2' : undef;
    my $mods = '/usr/lib/apache2/modules';
    skip 'no /usr/sbin/apache2', 2 unless $httpd && -f "$mods/mod_dbd.so" && -f "$mods/mod_mpm_event.so";
    my $so = "$root/usr/lib/apache2/modules/mod_scep.so";
    my $conf = "$W/httpd-t.conf";
    spit($conf, <<"EOF");
ServerRoot $W
PidFile $W/httpd.pid
ErrorLog $W/error.log
ServerName localhost
Listen 127.0.0.1:9
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule dbd_module $mods/mod_dbd.so
LoadModule scep_module $so
SCEPPasswordLength 8
EOF
    my $r = run_cmd([$httpd, '-t', '-f', $conf], timeout => 60);
    is($r->{rc}, 0, 'httpd -t loads the packaged mod_scep.so') or diag("$r->{out}$r->{err}");
    like($r->{err} . $r->{out}, qr/Syntax OK/, 'Syntax OK');
}

# the sample site, with keys made by the packaged scepadm and a database
# from the packaged schema, passes scepadm check and httpd -t
SKIP: {
    my $httpd = -x '/usr/sbin/apache2' ? '/usr/sbin/apache2' : undef;
    my $mods = '/usr/lib/apache2/modules';
    skip 'no /usr/sbin/apache2 or sqlite3', 5
        unless $httpd && -f "$mods/mod_authz_host.so" && program_path('sqlite3');
    my $adm = "$root/usr/sbin/scepadm";
    my $d = "$W/site";
    File::Path::make_path("$d/scep", "$d/lib");
    my $r = run_cmd([$adm, 'ca', 'create', '--cert', "$d/scep/ca.pem", '--key', "$d/scep/ca.key",
                     '--subject', 'CN=Package Test CA'], timeout => 120);
    is($r->{rc}, 0, 'packaged scepadm: ca create') or diag($r->{err});
    $r = run_cmd([$adm, 'ra', 'issue', '--ca-cert', "$d/scep/ca.pem", '--ca-key', "$d/scep/ca.key",
                  '--out-dir', "$d/scep"], timeout => 120);
    is($r->{rc}, 0, 'packaged scepadm: ra issue') or diag($r->{err});
    spit("$d/scep/otp.key", join('', map { sprintf '%02x', int rand 256 } 1 .. 32) . "\n");
    chmod 0600, "$d/scep/otp.key";
    run_cmd(['sqlite3', "$d/lib/scep.db"], timeout => 60,
            stdin => "$root/usr/share/libapache2-mod-scep/schema-sqlite3.sql");
    (my $site = slurp("$root/etc/apache2/sites-available/scep-ndes.conf"))
        =~ s{/etc/apache2/scep}{$d/scep}g;
    $site =~ s{/var/lib/apache2/scep}{$d/lib}g;
    spit("$d/site.conf", $site);
    $r = run_cmd([$adm, 'check', "$d/site.conf"], timeout => 60);
    is($r->{rc}, 0, 'scepadm check on the sample site: no problem') or diag("$r->{out}$r->{err}");
    spit("$d/httpd.conf", join("\n",
        "ServerRoot $d", "PidFile $d/httpd.pid", "ErrorLog $d/error.log",
        "ServerName localhost", "Listen 127.0.0.1:9",
        "LoadModule mpm_event_module $mods/mod_mpm_event.so",
        "LoadModule authz_core_module $mods/mod_authz_core.so",
        "LoadModule authz_host_module $mods/mod_authz_host.so",
        "LoadModule dbd_module $mods/mod_dbd.so",
        "LoadModule scep_module $root/usr/lib/apache2/modules/mod_scep.so",
        "Include $d/site.conf", ''));
    $r = run_cmd([$httpd, '-t', '-f', "$d/httpd.conf"], timeout => 60,
                 env => { APACHE_LOG_DIR => $d });
    is($r->{rc}, 0, 'httpd -t: the sample site with the packaged module')
        or diag("$r->{out}$r->{err}" . (-f "$d/error.log" ? slurp("$d/error.log") : ''));
    like($r->{err} . $r->{out}, qr/Syntax OK/, 'Syntax OK');
}

done_testing();
