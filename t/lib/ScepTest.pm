package ScepTest;
# Shared helpers for the mod_scep integration tests (t/*.t).
#
# The tests run from the top of the source tree (t/run-tests.sh does that)
# against the httpd that "t/TEST -start-httpd" started.  The port comes from
# $SCEP_TEST_PORT (set by t/run-tests.sh) or else from Apache::Test's saved
# configuration (t/conf/apache_test_config.pm).
use strict;
use warnings;

use Exporter 'import';
use File::Temp ();
use File::Spec ();
use Cwd ();
use Test::More ();

our @EXPORT = qw(
    top_dir build_dir build_path pki base_url port challenge
    http_get http_post
    run_cmd need_programs program_path in_ci httpd_bin
    tempdir slurp spit
    openssl_verify cert_subject cert_cn pem_to_der new_rsa_key
    error_log_path log_mark log_since wait_log
    NDES_URL
);

# die by exit() on a signal so that END blocks and File::Temp clean up
for my $sig (qw(INT TERM HUP PIPE)) {
    $SIG{$sig} = sub { exit 128 + 2 } if !$SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
}

use constant NDES_PATH => '/certsrv/mscep/mscep.dll';

my $TOP;

sub top_dir {
    return $TOP if $TOP;
    # this file is t/lib/ScepTest.pm
    my $here = Cwd::abs_path(__FILE__);
    (my $top = $here) =~ s{/t/lib/ScepTest\.pm$}{};
    $TOP = $top;
    return $TOP;
}

sub pki { File::Spec->catfile(top_dir(), 't', 'pki', @_) }

# The build directory the suite tests ($SCEP_BUILD from t/run-tests.sh:
# build, or build/asan for the sanitized pass), absolute.
sub build_dir {
    my $b = $ENV{SCEP_BUILD} || 'build';
    return $b =~ m{^/} ? $b : File::Spec->catdir(top_dir(), $b);
}

sub build_path { File::Spec->catfile(build_dir(), @_) }

sub in_ci { ($ENV{CI} // '') =~ /^(?:1|true|yes)$/i }

my $PORT;

sub port {
    return $PORT if $PORT;
    if ($ENV{SCEP_TEST_PORT}) {
        $PORT = $ENV{SCEP_TEST_PORT};
    }
    else {
        my $cwd = Cwd::getcwd();
        chdir top_dir();
        require Apache::Test;
        $PORT = eval { Apache::Test::vars('port') };
        chdir $cwd;
    }
    die "no server port: set SCEP_TEST_PORT or run t/run-tests.sh\n"
        unless $PORT;
    return $PORT;
}

sub base_url { "http://127.0.0.1:" . port() }

# SCEP_TEST_NDES_URL points the interop tests elsewhere (debugging only)
sub NDES_URL { $ENV{SCEP_TEST_NDES_URL} || base_url() . NDES_PATH }

sub challenge {
    my $pw = slurp(pki('challenge'));
    ($pw) = split /\r?\n/, $pw;
    return $pw;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "cannot read $file: $!\n";
    binmode $fh;
    local $/;
    my $data = <$fh>;
    close $fh;
    return $data;
}

sub spit {
    my ($file, $data) = @_;
    open my $fh, '>', $file or die "cannot write $file: $!\n";
    binmode $fh;
    print $fh $data;
    close $fh or die "cannot write $file: $!\n";
}

sub tempdir {
    return File::Temp::tempdir('scep-test-XXXXXX', TMPDIR => 1,
                               CLEANUP => !$ENV{SCEP_TEST_KEEP});
}

# ---- HTTP ------------------------------------------------------------------
# Every call returns a hash: status, type (Content-Type without parameters),
# content_type (as sent), body (raw bytes), reason, headers (lower-case names).

my $HAVE_LWP = eval { require LWP::UserAgent; 1 };
my $UA;

sub _ua {
    return $UA if $UA;
    if ($HAVE_LWP) {
        $UA = LWP::UserAgent->new(timeout => 60, keep_alive => 0,
                                  agent => 'mod_scep-tests/1');
        $UA->env_proxy(0);
        $UA->proxy(['http'], undef);
        $UA->no_proxy('127.0.0.1');
    }
    else {
        require HTTP::Tiny;
        $UA = HTTP::Tiny->new(timeout => 60, keep_alive => 0,
                              agent => 'mod_scep-tests/1');
    }
    return $UA;
}

sub _url {
    my ($path) = @_;
    return $path if $path =~ m{^https?://};
    return base_url() . $path;
}

sub _result_lwp {
    my ($res) = @_;
    my %h;
    for my $name ($res->headers->header_field_names) {
        $h{lc $name} = scalar $res->headers->header($name);
    }
    my $ct = $res->headers->header('Content-Type') // '';
    (my $type = $ct) =~ s/\s*;.*//s;
    return {
        status       => $res->code,
        reason       => $res->message,
        content_type => $ct,
        type         => lc $type,
        body         => $res->content,
        headers      => \%h,
        client_error => ($res->headers->header('Client-Warning') // '') eq
                        'Internal response' ? $res->content : undef,
    };
}

sub _result_tiny {
    my ($res) = @_;
    my %h = map { lc($_) => $res->{headers}{$_} } keys %{ $res->{headers} };
    my $ct = $h{'content-type'} // '';
    $ct = $ct->[0] if ref $ct;
    (my $type = $ct) =~ s/\s*;.*//s;
    return {
        status       => $res->{status},
        reason       => $res->{reason},
        content_type => $ct,
        type         => lc $type,
        body         => $res->{content} // '',
        headers      => \%h,
        client_error => $res->{status} == 599 ? $res->{content} : undef,
    };
}

sub http_get {
    my ($path) = @_;
    my $url = _url($path);
    if ($HAVE_LWP) {
        return _result_lwp(_ua()->get($url));
    }
    return _result_tiny(_ua()->get($url));
}

# http_post(PATH, BODY, [Header => value, ...]); a Content-Type of undef
# sends no Content-Type header at all.
sub http_post {
    my ($path, $body, %hdr) = @_;
    my $url = _url($path);
    if ($HAVE_LWP) {
        require HTTP::Request;
        my $req = HTTP::Request->new(POST => $url);
        $req->content($body);
        $req->header('Content-Length' => length $body);
        for my $k (keys %hdr) {
            $req->header($k => $hdr{$k}) if defined $hdr{$k};
        }
        $req->remove_header('Content-Type')
            if exists $hdr{'Content-Type'} && !defined $hdr{'Content-Type'};
        return _result_lwp(_ua()->request($req));
    }
    my %h = map { ($_ => $hdr{$_}) } grep { defined $hdr{$_} } keys %hdr;
    return _result_tiny(_ua()->request('POST', $url,
                                       { headers => \%h, content => $body }));
}

# ---- external programs -----------------------------------------------------

# program_path(PROG): the executable PROG, absolute, or undef.  "build/X"
# is X in the build directory under test (build_dir()).
sub program_path {
    my ($prog) = @_;
    if ($prog =~ m{^build/(.+)}) {
        my $p = build_path($1);
        return -x $p ? $p : undef;
    }
    if ($prog =~ m{/}) {
        my $p = $prog =~ m{^/} ? $prog : File::Spec->catfile(top_dir(), $prog);
        return -x $p ? $p : undef;
    }
    for my $d (split /:/, ($ENV{PATH} // '') . ':/usr/sbin:/sbin') {
        my $p = "$d/$prog";
        return $p if -f $p && -x _;
    }
    return undef;
}

# The httpd binary of the test server, for "httpd -t" runs: with
# SANITIZE=1 the wrapper preloading libasan (t/setup/sanitize.sh;
# /proc/PID/exe would name the real binary, which cannot load the
# sanitized module), else the binary of the running test server
# (t/logs/httpd.pid), else apxs's.
sub httpd_bin {
    return $ENV{SCEP_TEST_HTTPD}
        if $ENV{SCEP_TEST_HTTPD} && -x $ENV{SCEP_TEST_HTTPD};
    my $pidfile = File::Spec->catfile(top_dir(), 't', 'logs', 'httpd.pid');
    if (-e $pidfile) {
        my ($pid) = slurp($pidfile) =~ /(\d+)/;
        my $exe = $pid ? readlink("/proc/$pid/exe") : undef;
        return $exe if $exe && -x $exe;
    }
    for my $apxs (grep { defined } $ENV{APXS}, program_path('apxs')) {
        my $s = run_cmd([$apxs, '-q', 'SBINDIR'], timeout => 30);
        my $t = run_cmd([$apxs, '-q', 'TARGET'], timeout => 30);
        chomp(my $bin = "$s->{out}/$t->{out}");
        return $bin if $s->{rc} == 0 && -x $bin;
    }
    return undef;
}

# need_programs(prog...): returns when every program is there.  Otherwise,
# in CI (CI=true) the test file FAILS (a missing client is a broken test
# machine, not a reason to pass), elsewhere it is skipped.
sub need_programs {
    my @missing = grep { !program_path($_) } @_;
    return 1 unless @missing;
    my $what = "missing program(s): @missing";
    if (in_ci()) {
        Test::More::plan(tests => 1);
        Test::More::fail("$what (CI=true: a missing program is a failure)");
        exit 1;
    }
    Test::More::plan(skip_all => $what);
    exit 0;
}

sub _q {
    my ($s) = @_;
    return $s if $s =~ m{^[\w./:=@%+,-]+$};
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

# one scratch directory per test process for run_cmd's output files
my ($SCRATCH, $SCRATCH_PID);
sub _scratch {
    if (!$SCRATCH || $SCRATCH_PID != $$) {
        $SCRATCH = File::Temp::tempdir('scep-cmd-XXXXXX', TMPDIR => 1,
                                       CLEANUP => 1);
        $SCRATCH_PID = $$;
    }
    return $SCRATCH;
}

# run_cmd(\@argv, timeout => 120, stdin => FILE, env => {K => V})
# Runs under timeout(1) (SIGKILL 5 s after the TERM); env V undef removes K
# from the command's environment.  Returns a hash:
# rc (exit status, 124 = timed out, -1 = could not run), out, err, cmd.
sub run_cmd {
    my ($argv, %o) = @_;
    my $timeout = $o{timeout} // 120;
    my $dir = _scratch();
    my $cmd = join ' ', map { _q($_) } @$argv;
    my $full = "timeout -k 5 $timeout $cmd"
             . ' <' . ($o{stdin} ? _q($o{stdin}) : '/dev/null')
             . " >$dir/out 2>$dir/err";
    my %env = %{ $o{env} || {} };
    local %ENV = (%ENV, map { ($_ => $env{$_}) } grep { defined $env{$_} } keys %env);
    delete @ENV{ grep { !defined $env{$_} } keys %env };
    system('/bin/sh', '-c', $full);
    my $rc = $? == -1 ? -1 : ($? & 127) ? 128 + ($? & 127) : $? >> 8;
    my %r = (rc => $rc, cmd => $cmd,
             out => -e "$dir/out" ? slurp("$dir/out") : '',
             err => -e "$dir/err" ? slurp("$dir/err") : '');
    if ($ENV{SCEP_TEST_VERBOSE}) {
        Test::More::diag("\$ $cmd -> $rc\n$r{out}$r{err}");
    }
    return \%r;
}

# ---- certificates ----------------------------------------------------------

# openssl verify -CAfile t/pki/ca.pem FILE: true when "FILE: OK"
sub openssl_verify {
    my ($file, $cafile) = @_;
    $cafile //= pki('ca.pem');
    my $r = run_cmd(['openssl', 'verify', '-CAfile', $cafile, $file],
                    timeout => 30);
    return wantarray ? ($r->{rc} == 0 && $r->{out} =~ /: OK$/m, $r) :
        ($r->{rc} == 0 && $r->{out} =~ /: OK$/m);
}

sub cert_subject {
    my ($file, $inform) = @_;
    my $r = run_cmd(['openssl', 'x509', '-noout', '-subject',
                     '-nameopt', 'RFC2253', '-inform', $inform // 'PEM',
                     '-in', $file], timeout => 30);
    return undef unless $r->{rc} == 0;
    my ($s) = $r->{out} =~ /^subject=\s*(.*?)\s*$/m;
    return $s;
}

sub cert_cn {
    my $s = cert_subject(@_) // return undef;
    my ($cn) = $s =~ /(?:^|,)CN=((?:[^,\\]|\\.)*)/;
    return $cn;
}

sub pem_to_der {
    my ($pemfile) = @_;
    my $r = run_cmd(['openssl', 'x509', '-in', $pemfile, '-outform', 'DER'],
                    timeout => 30);
    die "openssl x509 $pemfile: $r->{err}" unless $r->{rc} == 0;
    return $r->{out};
}

sub new_rsa_key {
    my ($file, $bits) = @_;
    my $r = run_cmd(['openssl', 'genpkey', '-algorithm', 'RSA',
                     '-pkeyopt', 'rsa_keygen_bits:' . ($bits // 2048),
                     '-out', $file], timeout => 60);
    die "openssl genpkey: $r->{err}" unless $r->{rc} == 0;
    return $file;
}

# ---- the server's error log ------------------------------------------------

sub error_log_path { File::Spec->catfile(top_dir(), 't', 'logs', 'error_log') }

sub log_mark { -s error_log_path() || 0 }

sub log_since {
    my ($mark) = @_;
    open my $fh, '<', error_log_path() or return '';
    seek $fh, $mark, 0;
    local $/;
    my $s = <$fh> // '';
    close $fh;
    return $s;
}

# wait_log(MARK, qr/.../): the log text since MARK once it matches the
# pattern (the log line may land a moment after the response), or whatever
# is there after ~3 s.
sub wait_log {
    my ($mark, $re) = @_;
    my $s = '';
    for (1 .. 30) {
        $s = log_since($mark);
        return $s if $s =~ $re;
        select(undef, undef, undef, 0.1);
    }
    return $s;
}

1;
