# The farm (issue "Farm: stateless nodes behind a virtual IP, sharing
# PostgreSQL"), self-contained: this file builds and starts everything it
# uses and stops it on every path.
#
#   * a private PostgreSQL cluster on a free loopback port (initdb into a
#     temporary directory, as the postgres user when run as root), a role
#     "scep" with a password, database "scep", conf/schema-pgsql.sql;
#   * one demo PKI (tools/mkpki.sh) and one password key, copied byte for
#     byte into two node directories;
#   * two httpd nodes (t/farm/node.conf.in: DBDriver pgsql, SCEPChallenge
#     otp, the admin page, a manual-approval endpoint, scep-status and
#     scep-metrics), each on its own free port;
#   * a balancer (t/farm/balancer.conf.in: mod_proxy_balancer, byrequests
#     round robin, no stickiness) on a third port.
#
# Then: a password from node A's admin page is good once through the
# balancer, whichever node answers; a request left pending on A is approved
# on B and polled to SUCCESS through the balancer; one password raced by ten
# devices on both nodes at once gives one certificate; a retry on the other
# node gets the same certificate; each node's metrics count its own
# requests across its children; health; PostgreSQL stopped: both nodes say
# 503 (status, enrollment through the balancer, admin page), nothing is
# half-written; PostgreSQL started again: both nodes recover by themselves;
# node a killed (SIGKILL to its process group) in the middle of 40
# enrollments by 8 clients through the balancer: the balancer routes around
# it, the requests it had inside are retried with the same transaction and
# taken over on node b once their claim is older than SCEPTransactionTimeout
# (3 s here), every password gives exactly one certificate; node a started
# again serves; the RA encryption certificate rotated node by node with
# SCEPRAPreviousEncryption and graceful restarts (requests encrypted to the
# old and to the new certificate); no crash in any log.
#
# SCEP_FARM_DBD overrides the mod_dbd pool lines of the nodes (e.g.
# "DBDPersist On"), to try other settings; SCEP_TEST_KEEP=1 keeps the
# directory (configs, logs, the database) for a look afterwards.
use strict;
use warnings;
use Test::More;
use FindBin ();
use lib "$FindBin::Bin/farm";
use HTTP::Tiny ();
use JSON::PP ();
use MIME::Base64 ();
use Digest::SHA ();
use File::Copy ();
use File::Spec ();
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
for my $m (qw(dbd proxy proxy_http proxy_balancer lbmethod_byrequests slotmem_shm)) {
    next if -f $F->prog('moddir') . "/mod_$m.so";
    need_programs($F->prog('moddir') . "/mod_$m.so");
}
if (!-f $F->prog('so')) {
    need_programs($F->prog('so'));
}

# The mod_dbd pool of every node.  DBDPersist Off: a connection per request,
# opened (and its statements prepared) by mod_dbd when the request first
# asks for one and closed at its end -- the setting that comes back by itself
# after a database restart (see docs/farm.md, "Database restarts").
my $DBD = $ENV{SCEP_FARM_DBD} // 'DBDPersist Off';

my @KIDS;    # scep-client processes of the bursts
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
    diag(sprintf 't/70-farm.t: timed out after %.0f s', Time::HiRes::time() - $T0);
    exit 1;    # END stops everything
};
alarm 170;

my $client = program_path('build/scep-client');
my $JSON = JSON::PP->new;
my $UA = HTTP::Tiny->new(timeout => 20, keep_alive => 0, agent => 'mod_scep-farm-test/1',
                         proxy => undef, http_proxy => undef);

sub elapsed { sprintf '%.1f s', Time::HiRes::time() - $T0 }

# ==== the pieces ==============================================================================

# one PKI for the whole farm, the password key, the admin user
my ($PKI, $ADMIN_PW) = $F->make_pki;
my $PWKEY = slurp("$PKI/otp.key");

# RSA keys for every device of the run, made in the background: the first
# batch while PostgreSQL and the nodes start (waited for before the first
# enrollment), the second (the load of section 10, the RA rotation of 11)
# while sections 1-9 run
my @BATCH = ([1, 24], [25, 74]);
my @KEYGEN;    # pid of each batch's generator, 0 once its keys are there
sub keygen {
    my ($from, $to) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        { exec 'timeout', '-k', '5', '90', 'sh', '-c', 'i=$2; while [ $i -le "$3" ]; do '
              . 'openssl genrsa -out "$1/key$i.pem.tmp" 2048 2>/dev/null && '
              . 'mv "$1/key$i.pem.tmp" "$1/key$i.pem" & i=$((i+1)); done; wait',
              'sh', $W, $from, $to };
        POSIX::_exit(127);
    }
    push @KIDS, $pid;
    return $pid;
}
$KEYGEN[0] = keygen(@{ $BATCH[0] });
sub keys_ready {
    my ($b) = @_;
    return unless $KEYGEN[$b];
    waitpid($KEYGEN[$b], 0);
    @KIDS = grep { $_ != $KEYGEN[$b] } @KIDS;
    $KEYGEN[$b] = 0;
    my @missing = grep { !-s "$W/key$_.pem" } $BATCH[$b][0] .. $BATCH[$b][1];
    die "cannot generate the device keys (@missing)\n" if @missing;
}
my $KEYNO = 0;
sub new_key {
    keys_ready(0);
    $KEYGEN[1] //= keygen(@{ $BATCH[1] });
    $KEYNO++;
    die "out of keys" if $KEYNO > $BATCH[-1][1];
    keys_ready(1) if $KEYNO >= $BATCH[1][0];
    return "$W/key$KEYNO.pem";
}

# PostgreSQL
$F->pg_init;
$F->pg_start;
my $SCHEMA = File::Spec->catfile(top_dir(), 'conf', 'schema-pgsql.sql');
$F->pg_setup_db($SCHEMA);
{
    my $tables = () = slurp($SCHEMA) =~ /^CREATE TABLE/mg;
    is($F->sql("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'"), $tables,
       "PostgreSQL on 127.0.0.1:$F->{pgport}: database scep with the $tables tables of "
       . 'conf/schema-pgsql.sql (' . elapsed() . ')');
}

# the nodes and the balancer
my $A = $F->node('a', pki => $PKI, htpasswd => "$W/htpasswd", dbd => $DBD);
my $B = $F->node('b', pki => $PKI, htpasswd => "$W/htpasswd", dbd => $DBD);
my $LB = $F->balancer([$A, $B]);
my %NODE = (a => $A, b => $B);
for my $n ($A, $B, $LB) {
    my ($ok, $out) = $F->configtest($n);
    ok($ok, "$n->{name}: httpd -t accepts its configuration") or diag($out);
    die "the configuration of $n->{name} is refused: stopping here\n" unless $ok;
}
{
    my @diff = grep { slurp("$A->{dir}/pki/$_") ne slurp("$B->{dir}/pki/$_") }
               qw(ca.pem ca.key ra-enc.pem ra-enc.key ra-sign.pem ra-sign.key otp.key);
    is("@diff", '', 'the nodes have byte-identical copies of the RA/CA files and the password key');
}
for my $n ($A, $B, $LB) {
    $F->start($n);
    pass("$n->{name} runs on 127.0.0.1:$n->{port}");
}
diag("farm up after " . elapsed() . ": PostgreSQL :$F->{pgport}, node a :$A->{port}, "
     . "node b :$B->{port}, balancer :$LB->{port}; mod_dbd: $DBD");

# ==== helpers =================================================================================

my $EP = '/certsrv/mscep/mscep.dll';
my $MANUAL_EP = '/manual/mscep';
my %ISSUED;     # node name -> passwords its admin page handed out
my %SENT;       # PKCSReq outcome -> how many this test saw

sub auth { ('Authorization' => 'Basic ' . MIME::Base64::encode_base64("admin:$ADMIN_PW", '')) }

sub http {
    my ($method, $url, %h) = @_;
    my $res = $UA->request($method, $url, { headers => { %h } });
    my $json = eval { $JSON->decode($res->{content}) };
    return { status => $res->{status}, body => $res->{content}, json => $json,
             headers => $res->{headers} };
}

# a one-time password from NODE's admin page (pool farm, or manual)
sub password {
    my ($n, $path) = @_;
    my $r = http('GET', $n->{url} . ($path // '/certsrv/mscep_admin/'),
                 Accept => 'application/json', auth());
    if ($r->{status} == 200 && $r->{json} && $r->{json}{password}) {
        $ISSUED{ $n->{name} }++;
        return $r->{json}{password};
    }
    diag("admin page of $n->{name}: HTTP $r->{status} $r->{body}");
    return undef;
}

sub status {
    my ($n) = @_;
    return http('GET', "$n->{url}/scep-status");
}

sub metrics {
    my ($n) = @_;
    my $r = http('GET', "$n->{url}/scep-metrics");
    my %m;
    for (split /\n/, $r->{body} // '') {
        next if /^#/;
        $m{$1} = $2 if /^(\S+)\s+(\S+)$/;
    }
    return \%m;
}

sub parse_client {
    my ($r) = @_;
    ($r->{status}) = $r->{out} =~ /^status: (\w+)$/m;
    ($r->{failinfo}) = $r->{out} =~ /^failInfo: (\w+)$/m;
    ($r->{http}) = $r->{out} =~ /^HTTP (\d+)$/m;
    ($r->{serial}) = $r->{out} =~ /^serial: (\S+)$/m;
    return $r;
}

sub count_sent {
    my ($r) = @_;
    my $o = $r->{rc} == 0 ? 'success' : $r->{rc} == 2 ? 'failure'
          : $r->{rc} == 3 ? 'pending' : 'error';
    $SENT{$o}++;
}

# enroll(BASEURL, key =>, tid =>, cn =>, pw =>, out =>, path =>, extra => [])
sub enroll {
    my ($base, %o) = @_;
    my @a = ($client, 'enroll', $base . ($o{path} // $EP), '--ca', "$W/ca-ra.pem",
             '--key', $o{key}, '--cn', $o{cn}, '--tid', $o{tid});
    push @a, '--challenge', $o{pw} if defined $o{pw};
    push @a, '--out', $o{out} if $o{out};
    push @a, @{ $o{extra} || [] };
    my $r = parse_client(run_cmd(\@a, timeout => 60));
    count_sent($r);
    return $r;
}

sub poll {
    my ($base, %o) = @_;
    my @a = ($client, 'poll', $base . ($o{path} // $EP), '--ca', "$W/ca-ra.pem",
             '--key', $o{key}, '--cn', $o{cn}, '--tid', $o{tid});
    push @a, '--out', $o{out} if $o{out};
    return parse_client(run_cmd(\@a, timeout => 60));
}

# many enrollments at the same instant: [ {base, key, cn, tid, pw, out}, ... ]
sub burst {
    my ($jobs) = @_;
    my $start = Time::HiRes::time() + 0.8;
    for my $j (@$jobs) {
        $j->{file} = "$W/burst-$$-" . $j->{tid} . '.out';
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>', $j->{file} or POSIX::_exit(100);
            open STDERR, '>&', \*STDOUT;
            my $wait = $start - Time::HiRes::time();
            Time::HiRes::sleep($wait) if $wait > 0;
            { exec 'timeout', '-k', '5', '60', $client, 'enroll',
                  $j->{base} . ($j->{path} // $EP), '--ca', "$W/ca-ra.pem",
                  '--key', $j->{key}, '--cn', $j->{cn}, '--tid', $j->{tid},
                  '--challenge', $j->{pw}, '--out', $j->{out} };
            POSIX::_exit(127);
        }
        $j->{pid} = $pid;
        push @KIDS, $pid;
    }
    for my $j (@$jobs) {
        waitpid($j->{pid}, 0);
        $j->{rc} = $? >> 8;
        $j->{out_text} = -e $j->{file} ? slurp($j->{file}) : '';
        ($j->{status}) = $j->{out_text} =~ /^status: (\w+)$/m;
        ($j->{failinfo}) = $j->{out_text} =~ /^failInfo: (\w+)$/m;
        ($j->{http}) = $j->{out_text} =~ /^HTTP (\d+)$/m;
        count_sent($j);
    }
    my %mine = map { $_->{pid} => 1 } @$jobs;
    @KIDS = grep { !$mine{$_} } @KIDS;
    return $jobs;
}

# the PKIOperation requests in a node's access log: [{status, pid, line}]
sub pkiops {
    my ($n) = @_;
    my @ops;
    for my $l (split /\n/, ScepFarm::read_from($n->{access})) {
        next unless $l =~ /"(?:GET|POST) \S*[?&]operation=PKIOperation\S* HTTP\/[\d.]+" (\d+) .* pid=(\d+)/;
        push @ops, { status => $1, pid => $2, line => $l };
    }
    return \@ops;
}

# served_by(N, CODE): which nodes answered the N PKIOperation requests
# that CODE makes (from the nodes' access logs), and what CODE returned
sub served_by {
    my ($want, $code) = @_;
    my %before = map { $_ => scalar @{ pkiops($NODE{$_}) } } keys %NODE;
    my @r = $code->();
    my @who;
    # the access log line is written just after the answer went out
    for (1 .. 40) {
        @who = ();
        for my $name (sort keys %NODE) {
            my $now = scalar @{ pkiops($NODE{$name}) };
            push @who, ($name) x ($now - $before{$name});
        }
        last if @who >= $want;
        Time::HiRes::sleep(0.05);
    }
    return (\@who, @r);
}

sub pw_row {
    my ($pw) = @_;
    my $h = Digest::SHA::hmac_sha256_hex($pw, $PWKEY);
    return $F->sql("SELECT state || '|' || COALESCE(transaction_id, '') "
                   . "FROM scep_password WHERE hash = '$h'");
}

sub der { pem_to_der($_[0]) }

# the serial numbers on NODE's CRL (undef when there is no CRL)
sub crl_serials {
    my ($n) = @_;
    my $res = $UA->get("$n->{url}/crl/ca.crl");
    return undef unless $res->{status} == 200;
    spit("$W/crl.der", $res->{content});
    my $r = run_cmd(['openssl', 'crl', '-inform', 'DER', '-in', "$W/crl.der", '-noout', '-text'],
                    timeout => 30);
    return undef if $r->{rc};
    return { map { uc($_) => 1 } $r->{out} =~ /Serial Number:\s*([0-9A-Fa-f]+)/g };
}
my ($REVOKED, $REVOKED_AT);

# ==== 1. a password from node A, twice through the balancer ===================================
{
    my $pw = password($A);
    ok($pw, 'node a: the admin page issues a password (JSON)');
    my ($k1, $k2) = (new_key(), new_key());
    my ($who1, $r1) = served_by(1, sub {
        enroll($LB->{url}, key => $k1, cn => "farm-once-1-$$", tid => "once-1-$$",
               pw => $pw, out => "$W/once-1.pem") });
    is($r1->{rc}, 0, 'through the balancer: the first enrollment with it succeeds')
        or diag("$r1->{cmd}\n$r1->{out}$r1->{err}");
    is($r1->{status}, 'SUCCESS', '... status SUCCESS');
    ok(-s "$W/once-1.pem" && openssl_verify("$W/once-1.pem", "$PKI/ca.pem"),
       '... its certificate verifies against the farm CA');
    my ($who2, $r2) = served_by(1, sub {
        enroll($LB->{url}, key => $k2, cn => "farm-once-2-$$", tid => "once-2-$$",
               pw => $pw, out => "$W/once-2.pem") });
    is($r2->{rc}, 2, 'through the balancer: a second device with the same password: FAILURE (exit 2)')
        or diag("$r2->{cmd}\n$r2->{out}$r2->{err}");
    is($r2->{failinfo}, 'badMessageCheck', '... failInfo badMessageCheck');
    ok(!-e "$W/once-2.pem", '... and no certificate');
    is(scalar @$who1, 1, 'the first enrollment reached one node (' . "@$who1" . ')');
    is(scalar @$who2, 1, 'the second enrollment reached one node (' . "@$who2" . ')');
    isnt($who1->[0] // 'x', $who2->[0] // 'x',
         'round robin: the two enrollments were answered by different nodes');
    is(pw_row($pw), "2|once-1-$$", 'scep_password: used (state 2) by the first transaction');

    # revoked on node a, for node b's CRL (checked below, after its cache
    # had time to notice): node b's children read the CRL first
    for (1 .. 4) { crl_serials($B) }
    $REVOKED = uc($r1->{serial} // '');
    my $v = http('POST', "$A->{url}/certsrv/mscep_admin/?revoke-cert=$REVOKED&reason=keyCompromise",
                 Accept => 'application/json', auth());
    is($v->{status}, 200, 'node a: the admin page revokes that certificate') or diag($v->{body});
    ok($v->{json} && $v->{json}{revoked}, '... revoked: true');
    $REVOKED_AT = Time::HiRes::time();
}

# ==== 2. pending on A, approved on B, polled through the balancer ==============================
{
    my $pw = password($A, '/manual/admin/');
    ok($pw, 'node a: a password from the manual-approval admin page');
    my $k = new_key();
    my %req = (key => $k, cn => "farm-manual-$$", tid => "manual-$$", path => $MANUAL_EP);
    my $r = enroll($A->{url}, %req, pw => $pw, out => "$W/manual.pem");
    is($r->{rc}, 3, 'node a: PKCSReq on the manual-approval endpoint: PENDING (exit 3)')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    $r = poll($B->{url}, %req, out => "$W/manual.pem");
    is($r->{rc}, 3, 'node b: CertPoll for it: PENDING (b knows the transaction)')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    my $p = http('GET', "$B->{url}/manual/admin/?pending", Accept => 'application/json', auth());
    my @mine = grep { $_->{transaction_id} eq "manual-$$" } @{ ($p->{json} || {})->{pending} || [] };
    is(scalar @mine, 1, 'node b: its admin page lists the request made on node a')
        or diag("HTTP $p->{status} $p->{body}");
    is($mine[0] && $mine[0]{subject}, "CN=farm-manual-$$", '... with its subject');
    my $d = http('POST', "$B->{url}/manual/admin/?approve=manual-$$",
                 Accept => 'application/json', auth());
    is($d->{status}, 200, 'node b: POST ?approve=TID: 200') or diag($d->{body});
    my $serial = $d->{json} && $d->{json}{serial};
    like($serial // '', qr/^[0-9A-F]+$/i, '... with the serial of the new certificate');
    my ($who, $r1, $r2) = served_by(2, sub {
        (poll($LB->{url}, %req, out => "$W/manual-1.pem"),
         poll($LB->{url}, %req, out => "$W/manual-2.pem")) });
    is($r1->{rc}, 0, 'through the balancer: CertPoll: SUCCESS') or diag("$r1->{out}$r1->{err}");
    is($r2->{rc}, 0, 'through the balancer again: SUCCESS') or diag("$r2->{out}$r2->{err}");
    is(join(',', sort @$who), 'a,b', 'the two polls were answered by both nodes');
    ok(-s "$W/manual-1.pem" && openssl_verify("$W/manual-1.pem", "$PKI/ca.pem"),
       '... the certificate verifies');
    ok(-s "$W/manual-1.pem" && -s "$W/manual-2.pem"
       && der("$W/manual-1.pem") eq der("$W/manual-2.pem"),
       '... both nodes hand out the same certificate');
    is(uc($r1->{serial} // ''), uc($serial // '-'), '... the one approved on node b');
    is($F->sql("SELECT state FROM scep_transaction WHERE endpoint = 'manual' "
               . "AND transaction_id = 'manual-$$'"), 1, 'scep_transaction: issued');
}

# ==== 3. one password, ten devices, both nodes at once =========================================
{
    my $pw = password($B);
    ok($pw, 'node b: a password for the race');
    my @jobs;
    for my $i (1 .. 10) {
        my $n = $i % 2 ? $A : $B;
        push @jobs, { base => $n->{url}, node => $n->{name}, key => new_key(),
                      cn => "farm-race-$$-$i", tid => "race-$$-$i", pw => $pw,
                      out => "$W/race-$i.pem" };
    }
    my $t = Time::HiRes::time();
    burst(\@jobs);
    my @win = grep { $_->{rc} == 0 } @jobs;
    my @lose = grep { $_->{rc} != 0 } @jobs;
    is(scalar @win, 1, sprintf('race: 10 enrollments with one password, 5 on each node at '
                               . 'once: exactly one SUCCESS (%.1f s)', Time::HiRes::time() - $t))
        or diag(join "\n", map { "$_->{node} $_->{tid}: rc $_->{rc} $_->{out_text}" } @jobs);
    is(scalar(grep { $_->{rc} == 2 && ($_->{failinfo} // '') eq 'badMessageCheck' } @lose), 9,
       'race: the nine others: FAILURE badMessageCheck')
        or diag(join "\n", map { "$_->{node} $_->{tid}: rc $_->{rc} $_->{out_text}" } @lose);
    is(scalar(grep { -e $_->{out} } @lose), 0, 'race: no other certificate');
    my $wt = $win[0] ? $win[0]{tid} : '-';
    is(pw_row($pw), "2|$wt", 'race: the password is used, by the winner (node '
                              . ($win[0] ? $win[0]{node} : '-') . ')');
    is($F->sql("SELECT COUNT(*) FROM scep_transaction WHERE transaction_id LIKE 'race-$$-%'"), 1,
       'race: one transaction recorded');
    is($F->sql("SELECT COUNT(*) FROM scep_certificate WHERE transaction_id LIKE 'race-$$-%'"), 1,
       'race: one certificate recorded');
}

# ==== 4. a retry on the other node ==============================================================
my %RETRY;
{
    my $pw = password($A);
    my $k = new_key();
    my %req = (key => $k, cn => "farm-retry-$$", tid => "retry-$$", pw => $pw);
    %RETRY = %req;
    my $r1 = enroll($A->{url}, %req, out => "$W/retry-a.pem");
    is($r1->{rc}, 0, 'node a: enrollment: SUCCESS') or diag("$r1->{out}$r1->{err}");
    my $mark = ScepFarm::log_size($B->{log});
    my $r2 = enroll($B->{url}, %req, out => "$W/retry-b.pem");
    is($r2->{rc}, 0, 'node b: the same request again (same transactionID and CSR): SUCCESS')
        or diag("$r2->{out}$r2->{err}");
    ok(-s "$W/retry-a.pem" && -s "$W/retry-b.pem"
       && der("$W/retry-a.pem") eq der("$W/retry-b.pem"),
       'node b answers with the certificate node a issued');
    my $log = '';
    for (1 .. 20) {
        $log = ScepFarm::read_from($B->{log}, $mark);
        last if $log =~ /SCEP00016/;
        Time::HiRes::sleep(0.05);
    }
    like($log, qr/SCEP00016.*retry-\Q$$\E/, 'node b logs it as a repeated request (SCEP00016)');
    is($F->sql("SELECT COUNT(*) FROM scep_certificate WHERE transaction_id = 'retry-$$'"), 1,
       'one certificate issued for the transaction');
}

# ==== 4b. the revocation made on node a is on node b's CRL ======================================
{
    my ($streak, $t, $last) = (0, 0, undef);
    my $deadline = Time::HiRes::time() + 20;
    while (Time::HiRes::time() < $deadline) {
        $last = crl_serials($B);
        $streak = $last && $last->{$REVOKED} ? $streak + 1 : 0;
        if ($streak >= 4) { $t = Time::HiRes::time() - $REVOKED_AT; last }
        Time::HiRes::sleep(0.25);
    }
    ok($streak >= 4, 'node b: its CRL lists the certificate revoked on node a, on 4 fetches in a row'
                     . ($streak >= 4 ? sprintf(' (%.1f s after the revocation)', $t) : ' (not within 20 s)'));
    my $lb = crl_serials($LB);
    ok($lb && $lb->{$REVOKED}, 'the CRL through the balancer lists it too');
}

# ==== 5. metrics and health ======================================================================
sub pkiop_metric_sum {
    my ($m) = @_;
    my $sum = 0;
    for my $k (keys %$m) {
        $sum += $m->{$k} if $k =~ /^scep_requests_total\{operation="(?:PKCSReq|RenewalReq|CertPoll|GetCert|GetCRL|other)",/;
    }
    return $sum;
}

sub check_metrics {
    my ($when) = @_;
    my (%sum, %pids);
    for my $n ($A, $B) {
        my $m = metrics($n);
        my $ops = pkiops($n);
        my %p = map { $_->{pid} => 1 } @$ops;
        $pids{ $n->{name} } = [ sort keys %p ];
        is(pkiop_metric_sum($m), scalar @$ops,
           "$when: node $n->{name}: scep_requests_total of PKIOperation messages = the "
           . scalar(@$ops) . " PKIOperation requests of its access log, answered by "
           . scalar(keys %p) . " child processes");
        for my $o (qw(success failure pending)) {
            $sum{$o} += $m->{qq{scep_requests_total{operation="PKCSReq",outcome="$o"}}} // 0;
        }
        is($m->{scep_passwords_issued_total} // -1, $ISSUED{ $n->{name} } // 0,
           "$when: node $n->{name}: scep_passwords_issued_total = the passwords its admin page gave us");
    }
    for my $o (qw(success failure pending)) {
        is($sum{$o}, $SENT{$o} // 0,
           "$when: PKCSReq $o summed over both nodes = what the test saw (" . ($SENT{$o} // 0) . ')');
    }
    return \%pids;
}

{
    my $pids = check_metrics('metrics');
    my @multi = grep { @{ $pids->{$_} } >= 2 } sort keys %$pids;
    is("@multi", 'a b', 'each node answered with more than one child process '
                        . "(a: @{ $pids->{a} }; b: @{ $pids->{b} })");
    for my $n ($A, $B) {
        my $s = status($n);
        is($s->{status}, 200, "node $n->{name}: scep-status 200");
        is($s->{json} && $s->{json}{status}, 'ok', "node $n->{name}: status ok");
        ok($s->{json} && $s->{json}{checks}{database}{ok}, "node $n->{name}: database check ok")
            or diag($s->{body});
    }
}

# ==== 6. PostgreSQL goes away ====================================================================
my $PW_OUT = password($A);
ok($PW_OUT, 'node a: a password issued before the outage');
my $K_OUT = new_key();
my %OUT = (key => $K_OUT, cn => "farm-outage-$$", tid => "outage-$$", pw => $PW_OUT);
my $ROWS_BEFORE = $F->sql('SELECT (SELECT COUNT(*) FROM scep_password) || \'|\' || '
                          . '(SELECT COUNT(*) FROM scep_transaction) || \'|\' || '
                          . '(SELECT COUNT(*) FROM scep_certificate)');
my %LOGMARK = map { $_ => ScepFarm::log_size($NODE{$_}{log}) } keys %NODE;
{
    my $t = Time::HiRes::time();
    ok($F->pg_stop('fast'), 'PostgreSQL stopped (pg_ctl stop -m fast)');
    my %down;
    my $deadline = Time::HiRes::time() + 10;
    while (Time::HiRes::time() < $deadline && keys %down < 2) {
        for my $n ($A, $B) {
            next if $down{ $n->{name} };
            my $s = status($n);
            $down{ $n->{name} } = { s => $s, t => Time::HiRes::time() - $t }
                if $s->{status} == 503;
        }
        Time::HiRes::sleep(0.2) if keys %down < 2;
    }
    for my $n ($A, $B) {
        my $d = $down{ $n->{name} };
        ok($d, "node $n->{name}: scep-status 503 within 10 s"
               . ($d ? sprintf(' (%.1f s)', $d->{t}) : ''));
        is($d && $d->{s}{json} && $d->{s}{json}{status}, 'fail', "node $n->{name}: status fail");
        ok($d && $d->{s}{json} && !$d->{s}{json}{checks}{database}{ok},
           "node $n->{name}: the database check says why")
            or diag($d ? $d->{s}{body} : '-');
        # and it stays so
        my $s = status($n);
        is($s->{status}, 503, "node $n->{name}: scep-status again: still 503");
    }

    # an enrollment through the balancer, and the same request to the other node
    my ($who, $r) = served_by(1, sub {
        enroll($LB->{url}, %OUT, out => "$W/outage.pem",
               extra => ['--dump-request', "$W/outage.req"]) });
    is($r->{rc}, 1, 'through the balancer: enrollment while the database is down: '
                    . 'not a CertRep (exit 1)') or diag("$r->{out}$r->{err}");
    is($r->{http}, 503, '... HTTP 503') or diag("$r->{out}$r->{err}");
    ok(!-e "$W/outage.pem", '... and no certificate');
    my $other = ($who->[0] // 'a') eq 'a' ? $B : $A;
    my $res = $UA->request('POST', "$other->{url}$EP?operation=PKIOperation",
                           { content => slurp("$W/outage.req"),
                             headers => { 'Content-Type' => 'application/x-pki-message' } });
    is($res->{status}, 503, "node $other->{name} directly: the same request: HTTP 503");
    is($res->{headers}{'retry-after'}, '30', '... with Retry-After: 30');
    my $rlb = $UA->request('POST', "$LB->{url}$EP?operation=PKIOperation",
                           { content => slurp("$W/outage.req"),
                             headers => { 'Content-Type' => 'application/x-pki-message' } });
    is($rlb->{status}, 503, 'through the balancer, once more: HTTP 503');
    $SENT{error} += 2;
    for my $n ($A, $B) {
        my @e = grep { $_->{status} == 503 } @{ pkiops($n) };
        ok(@e >= 1, "node $n->{name}: its access log shows a PKIOperation answered 503");
    }

    # the admin pages
    for my $n ($A, $B, $LB) {
        my $a = http('GET', "$n->{url}/certsrv/mscep_admin/", Accept => 'application/json', auth());
        is($a->{status}, 503, "$n->{name}: admin page, a password (JSON) while the database is down: 503");
        my $h = http('GET', "$n->{url}/certsrv/mscep_admin/", auth());
        is($h->{status}, 503, "$n->{name}: admin page, a password (HTML): 503");
    }
    my $p = http('GET', "$A->{url}/manual/admin/?pending", Accept => 'application/json', auth());
    is($p->{status}, 503, 'node a: the pending list: 503');

    for my $n ($A, $B) {
        ok($n->{pid} && kill(0, $n->{pid}), "node $n->{name}: still running");
        my $log = ScepFarm::read_from($n->{log}, $LOGMARK{ $n->{name} });
        like($log, qr/SCEP00101|SCEP00114|SCEP00102/,
             "node $n->{name}: its error log says the database is missing");
    }
}

# ==== 7. PostgreSQL comes back ===================================================================
{
    $F->pg_start;
    my $t = Time::HiRes::time();
    pass('PostgreSQL started again');
    my %up;
    my $deadline = $t + 30;
    while (Time::HiRes::time() < $deadline && keys %up < 2) {
        for my $n ($A, $B) {
            next if $up{ $n->{name} };
            $up{ $n->{name} } = Time::HiRes::time() - $t if status($n)->{status} == 200;
        }
        Time::HiRes::sleep(0.25) if keys %up < 2;
    }
    for my $n ($A, $B) {
        ok(defined $up{ $n->{name} }, "node $n->{name}: scep-status 200 again by itself"
           . (defined $up{ $n->{name} } ? sprintf(' after %.1f s', $up{ $n->{name} }) : ' (not within 30 s)'));
    }
    # every child, every connection: many status requests, all 200
    for my $n ($A, $B) {
        my @codes = map { status($n)->{status} } 1 .. 12;
        is(scalar(grep { $_ != 200 } @codes), 0, "node $n->{name}: 12 more status requests: all 200")
            or diag("@codes");
    }
    is(pw_row($PW_OUT), '0|', 'the password tried during the outage is still unused');
    is($F->sql("SELECT (SELECT COUNT(*) FROM scep_password) || '|' || "
               . "(SELECT COUNT(*) FROM scep_transaction) || '|' || "
               . "(SELECT COUNT(*) FROM scep_certificate)"), $ROWS_BEFORE,
       'no row was added while the database was down (passwords|transactions|certificates)');
    my $r = enroll($LB->{url}, %OUT, out => "$W/outage.pem");
    is($r->{rc}, 0, 'through the balancer: the enrollment refused during the outage now succeeds')
        or diag("$r->{out}$r->{err}");
    ok(-s "$W/outage.pem" && openssl_verify("$W/outage.pem", "$PKI/ca.pem"), '... its certificate verifies');

    # both nodes, several children at once: new passwords, enrollments
    my @jobs;
    for my $n ($A, $B) {
        for my $i (1 .. 4) {
            my $pw = password($n);
            push @jobs, { base => $n->{url}, node => $n->{name}, key => new_key(),
                          cn => "farm-after-$$-$n->{name}$i", tid => "after-$$-$n->{name}$i",
                          pw => $pw // 'none', out => "$W/after-$n->{name}$i.pem" };
        }
    }
    is(scalar(grep { $_->{pw} ne 'none' } @jobs), 8, 'after the restart: 4 passwords from each admin page');
    burst(\@jobs);
    is(scalar(grep { $_->{rc} == 0 } @jobs), 8, 'after the restart: 4 enrollments at once on each node: all SUCCESS')
        or diag(join "\n", map { "$_->{node} $_->{tid}: rc $_->{rc} $_->{out_text}" } grep { $_->{rc} } @jobs);
}

# ==== 8. the books balance, the logs are clean ===================================================
check_metrics('at the end');
{
    my %q = (
        'passwords left reserved (state 1)' => 'SELECT COUNT(*) FROM scep_password WHERE state = 1',
        'used passwords without their transaction' =>
            'SELECT COUNT(*) FROM scep_password p WHERE state = 2 AND NOT EXISTS '
            . '(SELECT 1 FROM scep_transaction t WHERE t.transaction_id = p.transaction_id)',
        'issued transactions without a certificate' =>
            "SELECT COUNT(*) FROM scep_transaction WHERE state = 1 AND (certs IS NULL OR serial IS NULL "
            . "OR NOT EXISTS (SELECT 1 FROM scep_certificate c WHERE c.serial = scep_transaction.serial))",
        'transactions of pool farm left pending' =>
            "SELECT COUNT(*) FROM scep_transaction WHERE endpoint = 'farm' AND state = 0",
        'certificates issued twice for a transaction' =>
            'SELECT COUNT(*) FROM (SELECT transaction_id FROM scep_certificate '
            . 'GROUP BY transaction_id HAVING COUNT(*) > 1) x',
    );
    for my $what (sort keys %q) {
        is($F->sql($q{$what}), 0, "database: no $what");
    }
}
if ($DBD =~ /^DBDPersist Off$/i) {
    # a connection per request, closed at its end: none is left open
    my $n;
    for (1 .. 20) {
        $n = $F->sql("SELECT COUNT(*) FROM pg_stat_activity WHERE usename = 'scep'");
        last if $n == 0;
        Time::HiRes::sleep(0.1);
    }
    is($n, 0, 'DBDPersist Off: no connection of the nodes is left open in PostgreSQL');
}

# ==== 9. the pooled setting (DBDPersist On) after the connections died ==========================
# A third node, not behind the balancer, with mod_dbd's default pool.
# PostgreSQL terminates its connections, as a restart or a failover does:
# a failing select must not read as "no rows" (a final badCertId), the
# status must say so, and the pooled connection, which apr_dbd_pgsql
# resets with PQreset (losing mod_dbd's prepared statements), recovers
# because the store prepares them again.
my $C = $F->node('c', pki => $PKI, htpasswd => "$W/htpasswd", dbd => 'DBDPersist On');
{
    my ($ok, $out) = $F->configtest($C);
    ok($ok, 'c: httpd -t accepts its configuration (DBDPersist On)') or diag($out);
    $F->start($C);
    my %req = (key => $RETRY{key}, cn => $RETRY{cn}, tid => $RETRY{tid});
    my $r = poll($C->{url}, %req);
    is($r->{rc}, 0, "node c (mod_dbd's pool, DBDPersist On): CertPoll for an issued transaction: SUCCESS")
        or diag("$r->{out}$r->{err}");
    my $killed = $F->sql("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         . "WHERE usename = 'scep'");
    ok($killed >= 1, "PostgreSQL terminated node c's $killed pooled connection(s)");
    my (@polls, @stat);
    # each of node c's children meets its dead connection once: poll more
    # often than it has children, the last must be served
    for (1 .. 8) {
        push @polls, poll($C->{url}, %req);
        push @stat, status($C)->{status};
    }
    my $desc = join '; ', map { "poll rc $polls[$_]{rc}"
                                . ($polls[$_]{failinfo} ? " $polls[$_]{failinfo}" : '')
                                . ($polls[$_]{http} ? " HTTP $polls[$_]{http}" : '')
                                . ", status $stat[$_]" } 0 .. $#polls;
    is(scalar(grep { $_->{rc} == 2 } @polls), 0,
       'node c: after its connections died, no CertPoll is answered FAILURE (503 or SUCCESS only)')
        or diag($desc);
    is(scalar(grep { $_->{rc} != 0 && !($_->{http} && $_->{http} == 503) } @polls), 0,
       'node c: a request it cannot serve gets HTTP 503 (retry later), nothing else')
        or diag($desc);

    is($polls[-1]{rc}, 0, 'node c: recovers by itself (the last CertPoll: SUCCESS)')
        or diag($desc);
    $F->stop($C);
}

# ==== helpers of sections 10 and 11 ===========================================================

# wait_until(SECONDS, CODE): CODE's first true value, or undef after SECONDS
sub wait_until {
    my ($secs, $code, $step) = @_;
    my $deadline = Time::HiRes::time() + $secs;
    while (1) {
        my $v = $code->();
        return $v if $v;
        return undef if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep($step // 0.05);
    }
}

# the certificates of a node's GetCACert answer, as base64 DER (no line breaks)
sub pem_bodies {
    my ($pem) = @_;
    return map { (my $b = $_) =~ s/\s+//g; $b }
           $pem =~ /-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----/sg;
}
sub getcacert {
    my ($n) = @_;
    my $res = $UA->get("$n->{url}$EP?operation=GetCACert&message=CA");
    return undef unless $res->{status} == 200;
    spit("$W/getcacert-$n->{name}.der", $res->{content});
    my $r = run_cmd(['openssl', 'pkcs7', '-inform', 'DER', '-in', "$W/getcacert-$n->{name}.der",
                     '-print_certs'], timeout => 30);
    return undef if $r->{rc};
    return [ pem_bodies($r->{out}) ];
}

# ==== 10. node a killed (SIGKILL) in the middle of a load ======================================
# 40 enrollments, 8 clients at a time, through the balancer; each client
# has its own key, transactionID and password (fetched beforehand from the
# admin pages of a and b) and retries the SAME transaction after any
# answer but SUCCESS or FAILURE (HTTP 502/503, a cut connection, PENDING).
#
# To kill node a while requests are surely inside it, the test holds row
# locks on the load's passwords once 12 enrollments are done: every
# request then stops in PostgreSQL, after claiming its transaction, at the
# reservation (or the consumption) of its password; pg_stat_activity
# (application_name scep-a / scep-b) shows where.  Node a's whole process
# group gets SIGKILL, the locks go, and the dead requests' statements
# still commit in PostgreSQL -- the state a killed child leaves: a claimed
# transaction, a password reserved for it.  Their retries land on node b,
# are answered PENDING while the claim is younger than
# SCEPTransactionTimeout (3 s in t/farm/node.conf.in), then take the
# transaction over (SCEP00032) and its password back, and succeed.
my @LOAD;
my $LOAD_PAR = 8;
my $LOAD_KILL_AFTER = 12;
sub load_attempt_line {
    my ($j, $n, $t0, $t1, $rc, $out) = @_;
    my ($status) = $out =~ /^status: (\w+)$/m;
    my ($fi) = $out =~ /^failInfo: (\w+)$/m;
    my ($http) = $out =~ /^HTTP (\d+)$/m;
    my ($serial) = $out =~ /^serial: (\S+)$/m;
    return join("\t", $n, sprintf('%.3f', $t0), sprintf('%.3f', $t1), $rc, $http // '-',
                $status // '-', $fi // '-', $serial // '-') . "\n";
}
sub load_worker {
    my ($jobs, $deadline) = @_;
    for my $j (@$jobs) {
        # no new enrollment while the test sets its lock up (see below)
        Time::HiRes::sleep(0.05)
            while -e "$W/load-hold" && Time::HiRes::time() < $deadline;
        for my $n (1 .. 60) {
            last if Time::HiRes::time() >= $deadline;
            my $file = "$j->{log}.$n";
            my $t0 = Time::HiRes::time();
            system('/bin/sh', '-c', 'f=$1; shift; exec timeout -k 5 30 "$@" <"/dev/null" >"$f" 2>&1',
                   'sh', $file, $client, 'enroll', "$LB->{url}$EP", '--ca', "$W/ca-ra.pem",
                   '--key', $j->{key}, '--cn', $j->{cn}, '--tid', $j->{tid},
                   '--challenge', $j->{pw}, '--out', $j->{out});
            my $rc = $? == -1 ? -1 : ($? & 127) ? 128 + ($? & 127) : $? >> 8;
            my $t1 = Time::HiRes::time();
            my $out = -e $file ? slurp($file) : '';
            open my $fh, '>>', $j->{log} or POSIX::_exit(101);
            print $fh load_attempt_line($j, $n, $t0, $t1, $rc, $out);
            close $fh;
            if ($rc == 0) { spit($j->{done}, "$n\n"); last }
            last if $rc == 2;    # FAILURE is final: not retried
            Time::HiRes::sleep(0.3);
        }
    }
}
sub load_attempts {
    my ($j) = @_;
    my @a;
    for (split /\n/, -e $j->{log} ? slurp($j->{log}) : '') {
        my %x;
        @x{qw(n t0 t1 rc http status failinfo serial)} = split /\t/;
        push @a, \%x;
    }
    return \@a;
}
sub attempt_str {
    my ($x) = @_;
    return "#$x->{n} rc $x->{rc}" . ($x->{http} ne '-' ? " HTTP $x->{http}" : '')
         . ($x->{status} ne '-' ? " $x->{status}" : '')
         . ($x->{failinfo} ne '-' ? " $x->{failinfo}" : '');
}
{
    my $t_load = Time::HiRes::time();
    for my $i (1 .. 40) {
        my $n = $i % 2 ? $A : $B;
        push @LOAD, { i => $i, key => new_key(), cn => "farm-load-$$-$i", tid => "load-$$-$i",
                      pw => password($n) // 'none', out => "$W/load-$i.pem",
                      log => "$W/load-$i.log", done => "$W/load-$i.done" };
    }
    is(scalar(grep { $_->{pw} ne 'none' } @LOAD), 40,
       'load: 40 passwords fetched beforehand from the admin pages of a and b (JSON)');
    my %HASH = map { $_->{tid} => Digest::SHA::hmac_sha256_hex($_->{pw}, $PWKEY) } @LOAD;
    my $marks = { map { $_->{name} => { log => ScepFarm::log_size($_->{log}),
                                        access => ScepFarm::log_size($_->{access}) } } ($A, $B, $LB) };

    my $t_start = Time::HiRes::time();
    my $deadline = $t_start + 50;
    my @workers;
    for my $k (0 .. $LOAD_PAR - 1) {
        my @mine = grep { ($_->{i} - 1) % $LOAD_PAR == $k } @LOAD;
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            load_worker(\@mine, $deadline);
            POSIX::_exit(0);
        }
        push @workers, $pid;
        push @KIDS, $pid;
    }
    my $ndone = sub { scalar grep { -e $_->{done} } @LOAD };
    ok(wait_until(40, sub { $ndone->() >= $LOAD_KILL_AFTER }),
       "load: $LOAD_KILL_AFTER of 40 enrollments done through the balancer ("
       . sprintf('%.1f s', Time::HiRes::time() - $t_start) . ')');
    # Hold new enrollments until the lock below is in place: a fast server
    # would otherwise finish most of the load while psql takes the lock,
    # leaving little to send after the kill.  Requests in flight go on.
    spit("$W/load-hold", "1\n");

    # every request stops in PostgreSQL at its password
    my $lockq = 'BEGIN; SELECT hash FROM scep_password WHERE hash IN ('
              . join(',', map { "'$_'" } values %HASH) . ') FOR UPDATE; '
              . 'SELECT pg_sleep(25); COMMIT;';
    my $locker = $F->sql_background($lockq, "$W/lock.out", 'farm-lock');
    push @KIDS, $locker;
    ok(wait_until(10, sub { $F->sql("SELECT COUNT(*) FROM pg_stat_activity WHERE "
                                    . "application_name = 'farm-lock' AND wait_event = 'PgSleep'") }),
       'PostgreSQL: the passwords of the load are locked (SELECT ... FOR UPDATE)')
        or diag(slurp("$W/lock.out"));
    unlink "$W/load-hold";    # the next enrollments stop at the lock
    my $waitq = "SELECT application_name || '|' || CASE WHEN query LIKE '%SET state = 1,%' "
              . "THEN 'reserve' WHEN query LIKE '%SET state = 2,%' THEN 'consume' ELSE 'other' END "
              . "FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name LIKE 'scep-%'";
    my (%wait, $t_w);
    $t_w = Time::HiRes::time();
    wait_until(10, sub {
        %wait = ();
        $wait{$_}++ for split /\n/, $F->sql($waitq);
        my $total = 0;
        $total += $_ for values %wait;
        my $at_a = ($wait{'scep-a|reserve'} // 0) + ($wait{'scep-a|consume'} // 0);
        return $total >= $LOAD_PAR || ($at_a >= 1 && Time::HiRes::time() - $t_w > 3);
    }, 0.1);
    my $wdesc = join(', ', map { "$_: $wait{$_}" } sort keys %wait) || 'none';
    ok(($wait{'scep-a|reserve'} // 0) >= 1,
       "load: requests inside node a, waiting in PostgreSQL to reserve their password ($wdesc)");

    # SIGKILL to node a's process group, parent and children at once
    my $pids_before = () = $F->node_pids($A);
    my $t_kill0 = Time::HiRes::time();
    my @killed = $F->kill_group($A);
    my $t_kill = Time::HiRes::time();
    ok(@killed >= 2, 'node a: SIGKILL to its whole process group (' . scalar(@killed)
                     . " processes: @killed)");
    diag("node a: $A->{rekilled} process(es) needed a second SIGKILL") if $A->{rekilled};
    my @left = $F->node_pids($A);
    is(scalar @left, 0, 'node a: none of its processes is left')
        or diag(join "\n", map { my $p = $_; my $st = -r "/proc/$p/status" ? slurp("/proc/$p/status") : '';
                                 my ($stat) = -r "/proc/$p/stat" ? slurp("/proc/$p/stat") : '';
                                 "pid $p: " . join(' ', $st =~ /^((?:Name|State|PPid|Tgid):.*)$/mg)
                                 . " stat: $stat" } @left);
    # the locks go; the statements of the dead requests still run and commit
    $F->sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'farm-lock'");
    waitpid($locker, 0);
    @KIDS = grep { $_ != $locker } @KIDS;
    ok(wait_until(10, sub { !$F->sql("SELECT COUNT(*) FROM pg_stat_activity "
                                     . "WHERE application_name = 'scep-a'") }),
       "PostgreSQL: the connections of node a's killed requests are gone once the locks are released");
    my $orphans = $F->sql("SELECT COUNT(*) FROM scep_transaction t JOIN scep_password p "
                          . "ON p.transaction_id = t.transaction_id WHERE t.state = 0 "
                          . "AND p.state = 1 AND t.transaction_id LIKE 'load-$$-%'");
    diag("load: killed node a after " . sprintf('%.1f s', $t_kill - $t_start)
         . " with $pids_before processes; waiting in PostgreSQL: $wdesc; undecided "
         . "transactions holding a reserved password right after: $orphans");

    # the rest of the load, and the retries
    for my $pid (@workers) {
        waitpid($pid, 0);
    }
    my %w = map { $_ => 1 } @workers;
    @KIDS = grep { !$w{$_} } @KIDS;
    my $t_end = Time::HiRes::time();
    for my $j (@LOAD) {
        $j->{attempts} = load_attempts($j);
        $j->{last} = $j->{attempts}[-1];
        $j->{ok} = -e $j->{done} && $j->{last} && $j->{last}{rc} == 0;
        $j->{cut} = [ grep { $_->{rc} != 0 && $_->{rc} != 2 && $_->{rc} != 3 } @{ $j->{attempts} } ];
        $j->{pending} = [ grep { $_->{rc} == 3 } @{ $j->{attempts} } ];
    }
    my $desc = sub {
        join "\n", map { my $j = $_; "$j->{tid}: " . join('; ', map { attempt_str($_) } @{ $j->{attempts} }) } @_;
    };
    my @ok = grep { $_->{ok} } @LOAD;
    my @cut = grep { @{ $_->{cut} } } @LOAD;
    is(scalar @ok, 40, sprintf('load: all 40 enrollments end in SUCCESS (%.1f s, %d attempts)',
                               $t_end - $t_start, scalar(map { @{ $_->{attempts} } } @LOAD)))
        or diag($desc->(grep { !$_->{ok} } @LOAD));
    is(scalar(grep { $_->{rc} == 2 } map { @{ $_->{attempts} } } @LOAD), 0,
       'load: no attempt was answered FAILURE') or diag($desc->(@LOAD));
    ok(@cut >= 1, 'load: ' . scalar(@cut) . ' request(s) were cut by the kill ('
                  . join(', ', map { attempt_str($_->{cut}[0]) } @cut) . ') and retried');
    my @late = grep { $_->{t0} > $t_kill } map { @{ $_->{cut} } } @LOAD;
    is(scalar @late, 0, 'load: the balancer routes around node a: no request sent after the '
                        . 'kill got an HTTP error or a cut connection')
        or diag($desc->(grep { grep { $_->{t0} > $t_kill } @{ $_->{cut} } } @LOAD));
    my @early = grep { $_->{t1} < $t_kill0 } map { @{ $_->{cut} } } @LOAD;
    is(scalar @early, 0, 'load: no request failed before the kill')
        or diag($desc->(grep { grep { $_->{t1} < $t_kill0 } @{ $_->{cut} } } @LOAD));
    my %cut = map { $_->{tid} => 1 } @cut;
    my @pend_other = grep { @{ $_->{pending} } && !$cut{ $_->{tid} } } @LOAD;
    is(scalar @pend_other, 0, 'load: only retries of cut requests were answered PENDING')
        or diag($desc->(@pend_other));
    my $after = grep { $_->{t0} > $t_kill } map { @{ $_->{attempts} } } grep { !$cut{ $_->{tid} } } @LOAD;
    ok($after >= 8, "load: $after enrollments sent after the kill, all through node b");

    # node b took the dead transactions over, and nothing else
    my $blog = ScepFarm::read_from($B->{log}, $marks->{b}{log});
    my %taken = map { $_ => 1 } $blog =~ /SCEP00032.*?transaction (load-\Q$$\E-\d+) was left undecided/g;
    ok(scalar(keys %taken) >= 1, 'node b: took over ' . scalar(keys %taken)
                                 . ' transaction(s) left undecided by node a (SCEP00032): '
                                 . join(' ', sort keys %taken));
    is(join(' ', grep { !$cut{$_} } sort keys %taken), '',
       '... only transactions whose request had been cut');
    is(scalar(keys %taken), $wait{'scep-a|reserve'} // 0,
       '... one for each request node a had inside PostgreSQL, waiting to reserve its password');
    diag($desc->(@cut));

    # the balancer: node a refused, b answered
    my $lberr = ScepFarm::read_from($LB->{log}, $marks->{balancer}{log});
    like($lberr, qr/127\.0\.0\.1:\Q$A->{port}\E/, "the balancer's error log names node a as unreachable");
    my $bops = scalar grep { $_->{status} == 200 } @{ pkiops($B) };

    # the books
    my %tx = map { my @f = split /\|/; $f[0] => { state => $f[1], serial => $f[2], certs => $f[3] } }
             split /\n/, $F->sql("SELECT transaction_id || '|' || state || '|' || COALESCE(serial, '') "
                                 . "|| '|' || (SELECT COUNT(*) FROM scep_certificate c WHERE "
                                 . "c.serial = t.serial AND c.transaction_id = t.transaction_id) "
                                 . "FROM scep_transaction t WHERE endpoint = 'farm' AND "
                                 . "transaction_id LIKE 'load-$$-%'");
    my @bad = grep {
        my $t = $tx{ $_->{tid} };
        !$t || $t->{state} != 1 || uc($t->{serial}) ne uc($_->{last}{serial} // '') || $t->{certs} != 1
    } @ok;
    is(scalar @bad, 0, 'load: every SUCCESS has its certificate (by serial) in scep_certificate '
                       . 'and its transaction issued (state 1) with that serial in scep_transaction')
        or diag(join "\n", map { my $t = $tx{ $_->{tid} } || {};
                                 "$_->{tid}: client serial " . ($_->{last}{serial} // '-')
                                 . ", tx state " . ($t->{state} // '-') . " serial "
                                 . ($t->{serial} // '-') . ", certificates $t->{certs}" } @bad);
    my %pw = map { my @f = split /\|/; $f[0] => "$f[1]|$f[2]" }
             split /\n/, $F->sql("SELECT hash || '|' || state || '|' || COALESCE(transaction_id, '') "
                                 . "FROM scep_password WHERE hash IN ("
                                 . join(',', map { "'$_'" } values %HASH) . ')');
    my @pwbad = grep { ($pw{ $HASH{ $_->{tid} } } // '-') ne "2|$_->{tid}" } @LOAD;
    is(scalar @pwbad, 0, 'load: every password is used (state 2), by its own transaction')
        or diag(join "\n", map { "$_->{tid}: " . ($pw{ $HASH{ $_->{tid} } } // 'no row') } @pwbad);
    is($F->sql('SELECT COUNT(*) FROM scep_password p WHERE state = 2 AND NOT EXISTS '
               . '(SELECT 1 FROM scep_transaction t WHERE t.transaction_id = p.transaction_id '
               . 'AND t.state IN (0, 1))'), 0,
       'database: no password used (state 2) without its transaction issued or pending');
    is($F->sql("SELECT COUNT(*) FROM scep_password WHERE state = 1"), 0,
       'database: no password left reserved (state 1)');
    is($F->sql("SELECT COUNT(*) FROM scep_transaction WHERE endpoint = 'farm' AND state = 0"), 0,
       'database: no transaction of pool farm left undecided');
    my %serials;
    $serials{ uc($_->{last}{serial} // '') }++ for @ok;
    is(scalar(keys %serials), scalar @ok, 'load: the clients got ' . scalar(@ok) . ' distinct serial numbers');
    is($F->sql('SELECT COUNT(*) - COUNT(DISTINCT serial) FROM scep_certificate'), 0,
       'scep_certificate: every serial number once');
    is($F->sql("SELECT COUNT(*) FROM scep_certificate WHERE transaction_id LIKE 'load-$$-%'"), 40,
       'scep_certificate: one certificate for each of the 40 transactions');
    my $v = run_cmd(['openssl', 'verify', '-CAfile', "$PKI/ca.pem", map { $_->{out} } @ok], timeout => 60);
    is(scalar(() = $v->{out} =~ /: OK$/mg), scalar @ok, "load: the certificates verify against the farm's CA")
        or diag("$v->{out}$v->{err}");
    diag(sprintf 'load: %d enrollments in %.1f s, %d attempts, %d cut by the kill, '
                 . '%d answered PENDING, node b answered %d PKIOperations 200 in all',
         scalar(@ok), $t_end - $t_start, scalar(map { @{ $_->{attempts} } } @LOAD),
         scalar(map { @{ $_->{cut} } } @LOAD), scalar(map { @{ $_->{pending} } } @LOAD), $bops);
}

# ==== 10b. node a comes back ====================================================================
{
    my $mark = ScepFarm::log_size($A->{access});
    $F->start($A);
    pass('node a started again after the SIGKILL (its stale pid file and runtime files left behind)');
    my $s = status($A);
    is($s->{status}, 200, 'node a: scep-status 200') or diag($s->{body});
    my $pw = password($A);
    ok($pw, 'node a: its admin page issues a password');
    my $r = enroll($A->{url}, key => new_key(), cn => "farm-back-$$", tid => "back-$$",
                   pw => $pw, out => "$W/back.pem");
    is($r->{rc}, 0, 'node a directly: an enrollment: SUCCESS') or diag("$r->{out}$r->{err}");
    ok(-s "$W/back.pem" && openssl_verify("$W/back.pem", "$PKI/ca.pem"), '... its certificate verifies');
    # the balancer tries it again (retry=1) and sends it requests
    $mark = ScepFarm::log_size($A->{access});
    my $back = wait_until(15, sub {
        http('GET', "$LB->{url}/scep-status");
        scalar grep { m{"GET /scep-status } } split /\n/, ScepFarm::read_from($A->{access}, $mark);
    }, 0.2);
    ok($back, 'the balancer sends requests to node a again');
}

# ==== 11. RA encryption certificate rotated without downtime ===================================
# A new RA encryption pair from the farm's CA.  Node a advertises it
# (SCEPRAEncryption) and keeps decrypting for the old one
# (SCEPRAPreviousEncryption); node b, still on the old pair, refuses what is
# encrypted to the new one.  Node b then first accepts the new pair without
# advertising it (old one as SCEPRAEncryption, new one as
# SCEPRAPreviousEncryption), then gets a's configuration.  Every change is a
# graceful restart of one node; requests encrypted to either certificate
# are served throughout by the nodes that hold its key.
{
    my $d = "$W/ra2";
    mkdir $d;
    spit("$d/ext.cnf", "[ req ]\ndistinguished_name = dn\nprompt = no\n[ dn ]\nCN = unused\n"
                       . "[ ra_enc ]\nbasicConstraints = critical, CA:FALSE\n"
                       . "keyUsage = critical, keyEncipherment, dataEncipherment\n"
                       . "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n");
    my $serial = '0x' . join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    for my $cmd (['openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048',
                  '-out', "$d/ra-enc-2.key"],
                 ['openssl', 'req', '-new', '-key', "$d/ra-enc-2.key", '-subj',
                  '/CN=mod_scep RA Encryption 2', '-config', "$d/ext.cnf", '-out', "$d/ra-enc-2.csr"],
                 ['openssl', 'x509', '-req', '-in', "$d/ra-enc-2.csr", '-sha256', '-days', '730',
                  '-CA', "$PKI/ca.pem", '-CAkey', "$PKI/ca.key", '-set_serial', $serial,
                  '-extfile', "$d/ext.cnf", '-extensions', 'ra_enc', '-out', "$d/ra-enc-2.pem"]) {
        my $r = run_cmd($cmd, timeout => 60);
        die "@$cmd: $r->{out}$r->{err}" if $r->{rc};
    }
    ok(openssl_verify("$d/ra-enc-2.pem", "$PKI/ca.pem"),
       'a new RA encryption certificate (keyEncipherment) from the farm CA');
    for my $n ($A, $B) {
        for my $f (qw(ra-enc-2.pem ra-enc-2.key)) {
            File::Copy::copy("$d/$f", "$n->{dir}/pki/$f") or die "copy $f: $!";
            chmod $f =~ /\.key$/ ? 0600 : 0644, "$n->{dir}/pki/$f";
        }
    }
    spit("$W/ca-ra-new.pem", join '', map { slurp($_) } "$PKI/ca.pem", "$d/ra-enc-2.pem", "$PKI/ra-sign.pem");
    my ($OLD) = pem_bodies(slurp("$PKI/ra-enc.pem"));
    my ($NEW) = pem_bodies(slurp("$d/ra-enc-2.pem"));
    my %bundle = (old => "$W/ca-ra.pem", new => "$W/ca-ra-new.pem");

    # NODE's RA encryption lines: MAIN (old|new), PREVIOUS (old|new|undef);
    # checked with httpd -t, then a graceful restart, and GetCACert until
    # every child answers with the new generation (6 answers in a row)
    my %path = (old => 'pki/ra-enc', new => 'pki/ra-enc-2');
    my $switch = sub {
        my ($n, $main, $prev) = @_;
        my $conf = slurp($n->{conf});
        $conf =~ s/^SCEPRAPreviousEncryption .*\n//mg;
        my $lines = "SCEPRAEncryption      $path{$main}.pem $path{$main}.key\n"
                  . ($prev ? "SCEPRAPreviousEncryption $path{$prev}.pem $path{$prev}.key\n" : '');
        $conf =~ s/^SCEPRAEncryption .*\n/$lines/m or die "no SCEPRAEncryption line";
        spit($n->{conf}, $conf);
        my ($ok, $out) = $F->configtest($n);
        ok($ok, "node $n->{name}: httpd -t accepts SCEPRAEncryption $main"
                . ($prev ? " + SCEPRAPreviousEncryption $prev" : '')) or diag($out);
        $F->graceful($n);
        my $want = $main eq 'new' ? $NEW : $OLD;
        my $streak = 0;
        my $got = wait_until(15, sub {
            my $c = getcacert($n);
            $streak = $c && grep({ $_ eq $want } @$c) ? $streak + 1 : 0;
            return $streak >= 6 ? $c : undef;
        });
        ok($got, "node $n->{name}: graceful restart; GetCACert now advertises the $main "
                 . 'RA encryption certificate (6 answers in a row)');
        return $got;
    };
    my $try = sub {
        my ($n, $enc, %o) = @_;
        my $key = $o{key} // new_key();
        my $tid = $o{tid} // "ra-$$-$n->{name}-$enc-$KEYNO";
        my $pw = $o{pw} // password($n);
        my @a = ($client, 'enroll', "$n->{url}$EP", '--ca', $bundle{$enc}, '--key', $key,
                 '--cn', "farm-$tid", '--tid', $tid, '--challenge', $pw // 'none',
                 '--out', "$W/$tid.pem");
        my $r = parse_client(run_cmd(\@a, timeout => 60));
        @$r{qw(key tid pw)} = ($key, $tid, $pw);
        return $r;
    };

    my $ca_a = $switch->($A, 'new', 'old');
    ok($ca_a && !grep({ $_ eq $OLD } @$ca_a), 'node a: GetCACert no longer has the old RA encryption certificate');
    is($ca_a ? scalar @$ca_a : 0, 3, 'node a: GetCACert: 3 certificates (new RA encryption, RA signing, CA)');
    my $ca_b = getcacert($B);
    ok($ca_b && grep({ $_ eq $OLD } @$ca_b) && !grep({ $_ eq $NEW } @$ca_b),
       'node b (not switched yet): GetCACert still has the old one only');

    my $r = $try->($A, 'old');
    is($r->{rc}, 0, 'node a: a request encrypted to the OLD RA certificate (SCEPRAPreviousEncryption): SUCCESS')
        or diag("$r->{out}$r->{err}");
    $r = $try->($A, 'new');
    is($r->{rc}, 0, 'node a: a request encrypted to the NEW RA certificate: SUCCESS')
        or diag("$r->{out}$r->{err}");
    my $mark = ScepFarm::log_size($B->{log});
    my $refused = $try->($B, 'new');
    is($refused->{rc}, 2, 'node b (old pair only): a request encrypted to the NEW certificate: FAILURE')
        or diag("$refused->{out}$refused->{err}");
    is($refused->{failinfo}, 'badRequest', '... failInfo badRequest');
    my $log = wait_until(5, sub {
        my $l = ScepFarm::read_from($B->{log}, $mark);
        $l =~ /not encrypted to any of our RA certificates/ ? $l : undef });
    ok($log, "node b's error log: not encrypted to any of our RA certificates")
        or diag(ScepFarm::read_from($B->{log}, $mark));
    is(pw_row($refused->{pw}), '0|', '... its password is still unused');
    is($F->sql("SELECT COUNT(*) FROM scep_transaction WHERE transaction_id = '$refused->{tid}'"), 0,
       '... and no transaction was recorded');

    # node b accepts the new certificate first, advertising the old one
    $ca_b = $switch->($B, 'old', 'new');
    ok($ca_b && !grep({ $_ eq $NEW } @$ca_b),
       'node b: the new pair as SCEPRAPreviousEncryption is not advertised');
    $r = $try->($B, 'new', map { $_ => $refused->{$_} } qw(key tid pw));
    is($r->{rc}, 0, 'node b: the refused request again (same key, transactionID, password): SUCCESS')
        or diag("$r->{out}$r->{err}");
    $r = $try->($B, 'old');
    is($r->{rc}, 0, 'node b: encrypted to the OLD certificate: SUCCESS') or diag("$r->{out}$r->{err}");

    # and then a's configuration
    $ca_b = $switch->($B, 'new', 'old');
    ok($ca_b && !grep({ $_ eq $OLD } @$ca_b), 'node b: GetCACert no longer has the old one');
    for my $enc (qw(old new)) {
        $r = $try->($B, $enc);
        is($r->{rc}, 0, "node b (new + previous): encrypted to the \U$enc\E certificate: SUCCESS")
            or diag("$r->{out}$r->{err}");
    }
    for my $enc (qw(old new)) {
        my $k = new_key();
        my $pw = password($A);
        my ($who, $r2) = served_by(1, sub { $try->($LB, $enc, key => $k, pw => $pw,
                                                    tid => "ra-$$-lb-$enc") });
        is($r2->{rc}, 0, "through the balancer: encrypted to the \U$enc\E certificate: SUCCESS (node @$who)")
            or diag("$r2->{out}$r2->{err}");
    }
    is($F->sql("SELECT COUNT(*) FROM scep_transaction WHERE transaction_id LIKE 'ra-$$-%' AND state = 1"), 8,
       'scep_transaction: the 8 enrollments of the rotation are issued');
}

{
    my @crash = (qr/exit signal/, qr/segfault|Segmentation fault|dumped core/,
                 qr/AddressSanitizer|LeakSanitizer|runtime error:/,
                 qr/double free|free\(\): invalid|stack smashing|malloc\(\):/);
    Time::HiRes::sleep(0.3);
    for my $n ($A, $B, $LB, $C) {
        my $log = ScepFarm::read_from($n->{log}) . ScepFarm::read_from("$n->{dir}/logs/stdout");
        my @c = grep { my $l = $_; grep { $l =~ $_ } @crash } split /\n/, $log;
        is(scalar @c, 0, "$n->{name}: no crash in its error log") or diag(join "\n", @c);
        my @s = grep { /\[(?:[\w.-]+:)?(?:crit|alert|emerg)\]/ } split /\n/, $log;
        is(scalar @s, 0, "$n->{name}: no [crit]/[alert]/[emerg] in its error log") or diag(join "\n", @s);
    }
}

$F->stop_all;
pass('everything stopped after ' . elapsed());
alarm 0;
done_testing;
