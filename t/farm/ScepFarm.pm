package ScepFarm;
# What t/70-farm.t needs to build a farm of its own: a private PostgreSQL
# cluster, httpd nodes and a balancer, each on a free loopback port, all in
# one temporary directory, and all stopped again on every path (stop_all,
# called from the test's END block and from its alarm).
#
#   my $f = ScepFarm->new(dir => $W);           # programs found, or skip
#   $f->pg_init; $f->pg_start; $f->pg_setup_db;  # cluster, role, schema
#   my $a = $f->node('a'); $f->start($a);        # httpd node from node.conf.in
#   my $lb = $f->balancer([$a, $b]); $f->start($lb);
#   $f->sql("SELECT ...");                       # psql -At as the superuser
#   $f->pg_stop('fast'); $f->pg_start;           # the outage
#   $f->stop_all;
#
# Started as root, PostgreSQL runs as the postgres user (runuser) and the
# httpd children as www-data/daemon/nobody, like a real installation.
use strict;
use warnings;

use Cwd ();
use File::Copy ();
use File::Path ();
use File::Spec ();
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes ();
use ScepTest;

my $HERE = File::Spec->catdir(top_dir(), 't', 'farm');

sub _first_exec {
    for my $p (@_) { return $p if defined $p && -f $p && -x _ }
    return undef;
}

# ---- what is needed ---------------------------------------------------------------------

sub find_programs {
    my %p;
    # PostgreSQL server programs: $SCEP_FARM_PGBIN, pg_config, or the newest
    # Debian /usr/lib/postgresql/N/bin
    my @bins;
    push @bins, $ENV{SCEP_FARM_PGBIN} if $ENV{SCEP_FARM_PGBIN};
    if (my $pgc = program_path('pg_config')) {
        my $b = `'$pgc' --bindir 2>/dev/null`;
        chomp $b;
        push @bins, $b if $b;
    }
    push @bins, sort { ($b =~ m{/(\d+)/bin$})[0] <=> ($a =~ m{/(\d+)/bin$})[0] }
                grep { m{/\d+/bin$} } glob('/usr/lib/postgresql/*/bin');
    for my $b (@bins) {
        if (-x "$b/initdb" && -x "$b/pg_ctl" && -x "$b/postgres") {
            $p{pgbin} = $b;
            last;
        }
    }
    $p{initdb} = $p{pgbin} ? "$p{pgbin}/initdb" : 'initdb';
    $p{pg_ctl} = $p{pgbin} ? "$p{pgbin}/pg_ctl" : 'pg_ctl';
    $p{psql}   = _first_exec($p{pgbin} ? "$p{pgbin}/psql" : undef)
                 // program_path('psql') // 'psql';

    # httpd and its modules, from apxs like the Makefile
    my $apxs = $ENV{APXS} || program_path('apxs') || '/usr/bin/apxs';
    my ($sbin, $target, $libexec);
    if (-x $apxs) {
        chomp($sbin = `'$apxs' -q SBINDIR 2>/dev/null` // '');
        chomp($target = `'$apxs' -q TARGET 2>/dev/null` // '');
        chomp($libexec = `'$apxs' -q LIBEXECDIR 2>/dev/null` // '');
    }
    # SANITIZE=1: the wrapper preloading libasan (t/setup/sanitize.sh)
    $p{httpd} = _first_exec($ENV{SCEP_TEST_HTTPD},
                            $sbin && $target ? "$sbin/$target" : undef,
                            '/usr/sbin/apache2', '/usr/sbin/httpd') // 'apache2';
    $p{moddir} = $libexec && -d $libexec ? $libexec : '/usr/lib/apache2/modules';
    $p{client} = program_path('build/scep-client') // 'build/scep-client';
    $p{so} = build_path('mod_scep.so');
    return \%p;
}

# ---- the object -----------------------------------------------------------------------------

sub new {
    my ($class, %o) = @_;
    my $self = bless { dir => $o{dir}, prog => find_programs(), procs => [],
                       owner => $$, ports => {} }, $class;
    $self->{root} = $> == 0;
    if ($self->{root}) {
        for my $u (qw(www-data daemon nobody)) {
            if (defined getpwnam($u)) { $self->{user} = $u; last }
        }
        $self->{group} = $self->{user}
            ? scalar getgrgid((getpwnam($self->{user}))[3]) : undef;
    }
    # the httpd children (another user) walk into the directory
    chmod 0755, $self->{dir};
    return $self;
}

sub prog { $_[0]{prog}{$_[1]} }
sub dir  { $_[0]{dir} }

# A free TCP port on 127.0.0.1 (the kernel's choice), never one handed out
# before in this run.
sub free_port {
    my ($self) = @_;
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Proto => 'tcp')
            or die "cannot bind 127.0.0.1: $!";
        my $port = $s->sockport;
        close $s;
        next if $self->{ports}{$port}++;
        return $port;
    }
    die "no free port";
}

sub port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# run a command as the PostgreSQL owner (postgres when we are root), from /
sub _pg_argv {
    my ($self, @argv) = @_;
    my @sh = ('sh', '-c', 'cd / && exec "$@"', 'sh');
    return $self->{root} ? ('runuser', '-u', 'postgres', '--', @sh, @argv)
                         : (@sh, @argv);
}

sub _pg_run {
    my ($self, $argv, %o) = @_;
    return run_cmd([$self->_pg_argv(@$argv)], timeout => $o{timeout} // 60,
                   %o);
}

# ---- PostgreSQL -------------------------------------------------------------------------------

# pg_init(conf => [LINE, ...]): the lines go after ours in
# postgresql.conf (the last setting of a name wins)
# The PKI, password key and admin user the nodes of a farm share:
# tools/mkpki.sh into DIR/pki with a random otp.key, DIR/htpasswd with user
# "admin" and a random password, and DIR/ca-ra.pem (what a client trusts).
# Returns the PKI directory and the admin password.
sub make_pki {
    my ($self) = @_;
    my $dir = $self->{dir};
    my $pki = "$dir/pki";
    my $r = run_cmd(['sh', File::Spec->catfile(top_dir(), 'tools', 'mkpki.sh'), $pki],
                    timeout => 60);
    die "tools/mkpki.sh failed: $r->{out}$r->{err}" if $r->{rc};
    $r = run_cmd(['openssl', 'rand', '-hex', '32'], timeout => 10);
    spit("$pki/otp.key", $r->{out});
    chmod 0600, "$pki/otp.key";
    my $pw = join '', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 16;
    $r = run_cmd(['openssl', 'passwd', '-apr1', $pw], timeout => 10);
    chomp(my $h = $r->{out});
    spit("$dir/htpasswd", "admin:$h\n");
    spit("$dir/ca-ra.pem", join '', map { slurp("$pki/$_") } qw(ca.pem ra-enc.pem ra-sign.pem));
    return ($pki, $pw);
}

sub pg_init {
    my ($self, %o) = @_;
    my $d = $self->{dir};
    $self->{pgdata} = "$d/pg/data";
    $self->{pgsock} = "$d/pg/sock";
    $self->{pglog}  = "$d/pg/server.log";
    $self->{pgport} = $self->free_port;
    $self->{pgpass} = join '', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 24;
    File::Path::make_path("$d/pg/sock", { mode => 0755 });
    if ($self->{root}) {
        my ($uid, $gid) = (getpwnam('postgres'))[2, 3];
        die "running as root but there is no postgres user\n" unless defined $uid;
        chown $uid, $gid, "$d/pg", "$d/pg/sock";
    }
    my $r = $self->_pg_run([$self->prog('initdb'), '-D', $self->{pgdata},
                            '-U', 'postgres', '-E', 'UTF8', '--no-locale',
                            '--no-sync', '--auth-local=trust',
                            '--auth-host=scram-sha-256']);
    die "initdb failed ($r->{rc}):\n$r->{out}$r->{err}" if $r->{rc};
    # loopback only: TCP on 127.0.0.1, the socket in our directory
    my $conf = join "\n",
        "# t/70-farm.t",
        "listen_addresses = '127.0.0.1'",
        "port = $self->{pgport}",
        "unix_socket_directories = '$self->{pgsock}'",
        "max_connections = 100",
        "fsync = off",
        "synchronous_commit = off",
        "full_page_writes = off",
        "log_min_messages = warning",
        "log_connections = off",
        @{ $o{conf} || [] },
        '';
    $r = $self->_pg_run(['sh', '-c', 'cat >> "$1"', 'sh',
                         "$self->{pgdata}/postgresql.conf"],
                        stdin => _tmpfile($self, 'pg.conf', $conf));
    die "cannot configure PostgreSQL: $r->{err}" if $r->{rc};
    return 1;
}

sub _tmpfile {
    my ($self, $name, $content) = @_;
    my $f = "$self->{dir}/$name";
    spit($f, $content);
    chmod 0644, $f;
    return $f;
}

sub pg_start {
    my ($self) = @_;
    my $r = $self->_pg_run([$self->prog('pg_ctl'), 'start', '-w', '-t', '30',
                            '-D', $self->{pgdata}, '-l', $self->{pglog}],
                           timeout => 40);
    $self->{pg_started} = 1;
    die "pg_ctl start failed ($r->{rc}):\n$r->{out}$r->{err}\n"
        . (-r $self->{pglog} ? slurp($self->{pglog}) : '') if $r->{rc};
    return 1;
}

sub pg_pid {
    my ($self) = @_;
    my $f = "$self->{pgdata}/postmaster.pid";
    return undef unless -r $f;
    my ($pid) = split /\n/, slurp($f);
    return $pid && $pid =~ /^\d+$/ ? $pid : undef;
}

# pg_stop(MODE): fast (clients are disconnected, clean shutdown) or
# immediate; falls back to SIGKILL of the postmaster.
sub pg_stop {
    my ($self, $mode) = @_;
    return 1 unless $self->{pgdata} && -d $self->{pgdata};
    my $pid = $self->pg_pid;
    return 1 unless $pid;
    my $r = $self->_pg_run([$self->prog('pg_ctl'), 'stop', '-w', '-t', '20',
                            '-m', $mode // 'fast', '-D', $self->{pgdata}],
                           timeout => 30);
    if ($r->{rc} && kill(0, $pid)) {
        kill 'KILL', $pid;
        for (1 .. 50) { last unless kill 0, $pid; Time::HiRes::sleep(0.1) }
    }
    return $r->{rc} == 0;
}

# psql as the superuser over the socket: the output, one row a line,
# columns separated by |.  die()s on an SQL error unless $o{may_fail}.
sub sql {
    my ($self, $q, %o) = @_;
    my $r = $self->_pg_run([$self->prog('psql'), '-X', '-q', '-At',
                            '-v', 'ON_ERROR_STOP=1', '-h', $self->{pgsock},
                            '-p', $self->{pgport}, '-U', 'postgres',
                            '-d', $o{db} // 'scep', '-c', $q], timeout => 30);
    if ($r->{rc}) {
        return undef if $o{may_fail};
        die "psql: $q: $r->{err}";
    }
    chomp(my $out = $r->{out});
    return $out;
}

# sql_background(QUERY, OUTFILE, APPNAME): psql as the superuser in the
# background (to hold a lock while the test does something else), its
# connection named APPNAME in pg_stat_activity; returns its pid, to
# waitpid().  Bounded: killed after 60 s.
sub sql_background {
    my ($self, $q, $out, $app) = @_;
    my @argv = $self->_pg_argv($self->prog('psql'), '-X', '-q', '-At',
                               '-v', 'ON_ERROR_STOP=1', '-h', $self->{pgsock},
                               '-p', $self->{pgport}, '-U', 'postgres',
                               '-d', "dbname=scep application_name=$app", '-c', $q);
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(100);
        open STDERR, '>&', \*STDOUT;
        { exec 'timeout', '-k', '5', '60', @argv };
        POSIX::_exit(127);
    }
    return $pid;
}

# the role and database of the nodes, and the schema loaded as that role
# over TCP with its password (what a node does)
sub pg_setup_db {
    my ($self, $schema) = @_;
    $self->sql("CREATE ROLE scep LOGIN PASSWORD '$self->{pgpass}'", db => 'postgres');
    $self->sql('CREATE DATABASE scep OWNER scep', db => 'postgres');
    my $r = $self->_pg_run([$self->prog('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1',
                            '-h', '127.0.0.1', '-p', $self->{pgport}, '-U', 'scep',
                            '-d', 'scep', '-f', '-'],
                           stdin => $schema, env => { PGPASSWORD => $self->{pgpass} });
    die "loading $schema failed: $r->{out}$r->{err}" if $r->{rc};
    return 1;
}

# ---- httpd ------------------------------------------------------------------------------------

sub _loadmod {
    my ($self, @mods) = @_;
    my $dir = $self->prog('moddir');
    my $out = '';
    for my $m (@mods) {
        next unless -f "$dir/mod_$m.so";
        $out .= "<IfModule !${m}_module>\n    LoadModule ${m}_module $dir/mod_$m.so\n</IfModule>\n";
    }
    return $out;
}

sub _mpm {
    my ($self) = @_;
    my $dir = $self->prog('moddir');
    my $mpm = -f "$dir/mod_mpm_event.so" ? 'event' : 'prefork';
    return "<IfModule !mpm_event_module>\n<IfModule !mpm_prefork_module>\n"
         . "<IfModule !mpm_worker_module>\n"
         . "    LoadModule mpm_${mpm}_module $dir/mod_mpm_$mpm.so\n"
         . "</IfModule>\n</IfModule>\n</IfModule>\n";
}

sub _user_lines {
    my ($self) = @_;
    return '' unless $self->{root};
    die "running as root but no www-data/daemon/nobody user\n" unless $self->{user};
    return "User $self->{user}\nGroup $self->{group}\n";
}

sub _fill {
    my ($template, %v) = @_;
    my $t = slurp(File::Spec->catfile($HERE, $template));
    $t =~ s/\@([A-Z]+)\@/exists $v{$1} ? $v{$1} : die "$template: no value for \@$1\@\n"/ge;
    return $t;
}

# node(NAME, dbd => "DBDPersist ...", pki => DIR, htpasswd => FILE): a node
# directory with its own copy of the PKI and its config; not started.
sub node {
    my ($self, $name, %o) = @_;
    my $dir = "$self->{dir}/node-$name";
    File::Path::make_path("$dir/logs", "$dir/htdocs", "$dir/pki");
    chmod 0755, $dir, "$dir/logs", "$dir/htdocs", "$dir/pki";
    for my $f (qw(ca.pem ca.key ra-enc.pem ra-enc.key ra-sign.pem ra-sign.key otp.key)) {
        File::Copy::copy("$o{pki}/$f", "$dir/pki/$f") or die "copy $f: $!";
        chmod $f =~ /\.key$/ ? 0600 : 0644, "$dir/pki/$f";
    }
    File::Copy::copy($o{htpasswd}, "$dir/htpasswd") or die "copy htpasswd: $!";
    chmod 0644, "$dir/htpasswd";
    my $port = $self->free_port;
    my $conf = _fill('node.conf.in',
        DIR => $dir, PORT => $port, NODE => $name, SO => $self->prog('so'),
        MODULES => $self->_mpm . $self->_loadmod(qw(unixd authz_core authz_host
                       log_config dbd auth_basic authn_core authn_file authz_user)),
        USER => $self->_user_lines, PGPORT => $self->{pgport},
        PGPASS => $self->{pgpass}, DBDPOOL => $o{dbd} // '');
    spit("$dir/httpd.conf", $conf);
    return { name => $name, dir => $dir, port => $port, conf => "$dir/httpd.conf",
             url => "http://127.0.0.1:$port", log => "$dir/logs/error_log",
             access => "$dir/logs/access_log" };
}

sub balancer {
    my ($self, $nodes) = @_;
    my $dir = "$self->{dir}/balancer";
    File::Path::make_path("$dir/logs", "$dir/htdocs");
    chmod 0755, $dir, "$dir/logs", "$dir/htdocs";
    my $port = $self->free_port;
    # retry=1: a member that refused a connection is left out for one
    # second (then tried again); connectiontimeout=2: a member that does not
    # accept within 2 s counts as down.  A connection failure makes
    # mod_proxy_balancer try the request on the other member (maxattempts).
    # disablereuse=On: a new connection to the node for every request.  A
    # pooled keep-alive connection that the node closes (KeepAliveTimeout,
    # an idle child stopped by the MPM) just as the balancer sends a POST
    # on it is answered 502 (AH01102), and a POST is not retried elsewhere.
    my $members = join '', map {
        "    BalancerMember \"http://127.0.0.1:$_->{port}\" route=$_->{name} "
        . "retry=1 connectiontimeout=2 disablereuse=On\n"
    } @$nodes;
    my $conf = _fill('balancer.conf.in',
        DIR => $dir, PORT => $port, MEMBERS => $members,
        MODULES => $self->_mpm . $self->_loadmod(qw(unixd authz_core authz_host
                       log_config slotmem_shm proxy proxy_http proxy_balancer
                       lbmethod_byrequests)),
        USER => $self->_user_lines);
    spit("$dir/httpd.conf", $conf);
    return { name => 'balancer', dir => $dir, port => $port,
             conf => "$dir/httpd.conf", url => "http://127.0.0.1:$port",
             log => "$dir/logs/error_log", access => "$dir/logs/access_log" };
}

# httpd -t on the config: (ok, output)
sub configtest {
    my ($self, $n) = @_;
    my $r = run_cmd([$self->prog('httpd'), '-t', '-d', $n->{dir}, '-f', $n->{conf}],
                    timeout => 60);
    return ($r->{rc} == 0, "$r->{out}$r->{err}");
}

# start(NODE): httpd -DFOREGROUND in a process group of its own; returns
# once it answers on its port (or die()s with its error log).
sub start {
    my ($self, $n) = @_;
    my $mark = -s $n->{log} || 0;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$n->{dir}/logs/stdout";
        open STDERR, '>&', \*STDOUT;
        { exec $self->prog('httpd'), '-d', $n->{dir}, '-f', $n->{conf}, '-DFOREGROUND' };
        POSIX::_exit(127);
    }
    $n->{pid} = $pid;
    push @{ $self->{procs} }, $n;
    my $deadline = Time::HiRes::time() + 20;
    while (Time::HiRes::time() < $deadline) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            delete $n->{pid};
            die "httpd $n->{name} exited at start ($?):\n"
                . (-r "$n->{dir}/logs/stdout" ? slurp("$n->{dir}/logs/stdout") : '')
                . (-r $n->{log} ? slurp($n->{log}) : '');
        }
        my $log = '';
        if (open my $fh, '<', $n->{log}) { seek $fh, $mark, 0; local $/; $log = <$fh> // '' }
        return 1 if $log =~ /resuming normal operations/ && port_open($n->{port});
        Time::HiRes::sleep(0.1);
    }
    die "httpd $n->{name} did not come up on port $n->{port} within 20 s\n";
}

# stop(NODE): SIGTERM to the parent (it stops its children), then SIGKILL
# for the whole process group if anything is left after 10 s.
sub stop {
    my ($self, $n) = @_;
    my $pid = $n->{pid} or return 1;
    kill 'TERM', $pid;
    my $deadline = Time::HiRes::time() + 10;
    my $gone = 0;
    while (Time::HiRes::time() < $deadline) {
        my $w = waitpid($pid, POSIX::WNOHANG());
        if ($w == $pid || $w == -1) { $gone = 1; last }
        Time::HiRes::sleep(0.05);
    }
    # the children share the group; anything still in it is killed
    if (kill 0, -$pid) {
        kill 'KILL', -$pid;
        waitpid($pid, 0) unless $gone;
    }
    delete $n->{pid};
    return $gone;
}

# pids of the processes whose command line names NODE's config file (the
# parent and its children: they are started as "httpd -d DIR -f CONF")
sub node_pids {
    my ($self, $n) = @_;
    my @pids;
    opendir my $dh, '/proc' or return ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/cmdline" or next;
        local $/;
        my $cmd = <$fh> // '';
        close $fh;
        push @pids, $p if index($cmd, "\0$n->{conf}\0") >= 0;
    }
    closedir $dh;
    return sort { $a <=> $b } @pids;
}

# kill_group(NODE): SIGKILL to the node's whole process group (parent and
# children at once, as a power cut or the OOM killer of a container would
# do), found from its pid file; returns the pids that were in it.  The node
# is no longer counted as running (start() it again).
sub kill_group {
    my ($self, $n) = @_;
    my $pidfile = "$n->{dir}/logs/httpd.pid";
    my ($pid) = -r $pidfile ? slurp($pidfile) =~ /(\d+)/ : ();
    $pid //= $n->{pid};
    die "kill_group $n->{name}: no pid\n" unless $pid;
    my @before = $self->node_pids($n);
    kill 'KILL', -$pid;
    if ($n->{pid}) {
        waitpid($n->{pid}, 0);
    }
    # the children are reparented to init, which reaps them.  A child the
    # parent was forking at that instant may have missed the group's signal:
    # whatever is still there gets SIGKILL again (counted in {rekilled}).
    $n->{rekilled} = 0;
    my $deadline = Time::HiRes::time() + 10;
    while (Time::HiRes::time() < $deadline) {
        my @left = $self->node_pids($n);
        last unless @left;
        Time::HiRes::sleep(0.05);
        @left = $self->node_pids($n) or last;
        $n->{rekilled} += kill 'KILL', -$pid, @left;
    }
    delete $n->{pid};
    @{ $self->{procs} } = grep { $_ != $n } @{ $self->{procs} };
    return @before;
}

# graceful(NODE): SIGUSR1 to the parent (apachectl graceful): it reads its
# configuration again; requests in progress finish in the old children.
# Returns once the parent says "resuming normal operations" again (or
# die()s with the error log).
sub graceful {
    my ($self, $n) = @_;
    my $pid = $n->{pid} or die "graceful $n->{name}: not running\n";
    my $mark = -s $n->{log} || 0;
    kill 'USR1', $pid;
    my $deadline = Time::HiRes::time() + 20;
    while (Time::HiRes::time() < $deadline) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            delete $n->{pid};
            die "httpd $n->{name} exited on graceful restart ($?):\n"
                . read_from($n->{log}, $mark);
        }
        my $log = read_from($n->{log}, $mark);
        return 1 if $log =~ /resuming normal operations/;
        Time::HiRes::sleep(0.05);
    }
    die "httpd $n->{name}: no graceful restart within 20 s:\n" . read_from($n->{log}, $mark);
}

# Everything this object started, in reverse order; safe to call twice and
# from a signal handler.  Only the process that made the object does it.
sub stop_all {
    my ($self) = @_;
    return unless $$ == $self->{owner};
    for my $n (reverse @{ $self->{procs} }) {
        eval { $self->stop($n) };
    }
    @{ $self->{procs} } = ();
    if ($self->{pg_started}) {
        eval { $self->pg_stop('immediate') };
        $self->{pg_started} = 0;
    }
}

# ---- logs ---------------------------------------------------------------------------------------

sub log_size { -s $_[0] || 0 }

sub read_from {
    my ($file, $mark) = @_;
    open my $fh, '<', $file or return '';
    seek $fh, $mark // 0, 0;
    local $/;
    my $s = <$fh> // '';
    close $fh;
    return $s;
}

1;
