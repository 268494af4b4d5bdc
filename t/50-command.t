# The "command" CA provider (src/ca_command.c) behind real endpoints
# (t/conf/providers.conf.in, pool "cmd"; the program is
# t/bin/scep-ca-command.sh MODE CADIR):
#   * /cmd/sign issues: the certificate comes from the program (CA 1), with
#     the profile's validity and usages, and the program saw the request's
#     facts in its environment and its argv as configured;
#   * a CA that is down, exec'ing a program that is not there, a timeout,
#     garbage, a PEM that is not a certificate, a certificate for another
#     key or from another CA, a crash: CertRep FAILURE, the error log names
#     the provider, the program and the reason, and the one-time password is
#     left unconsumed (it then works on /cmd/sign);
#   * a refusal (exit 2): FAILURE with the program's reason;
#   * pending (exit 3): PENDING, CertPoll polls the program with the
#     reference until its state file says "issue" (SUCCESS) or "reject";
#   * httpd -t refuses a missing or non-executable program and a bad
#     timeout=.
use strict;
use warnings;
use Test::More;
use ScepTest;
use ScepProviders;

need_programs('build/scep-client', 'openssl');
need_provider_fixtures(providers_dir('ca1', 'ca.key'));

my $W = tempdir();
my $ADMIN = '/cmd/admin/';
my $CA1 = pki('ca.pem');
my $CADIR = providers_dir('ca1');
my $PROG = File::Spec->catfile(top_dir(), 't', 'bin', 'scep-ca-command.sh');
my $n = 0;

# a device: its key, certificate file, CN and transactionID
sub device {
    my ($what) = @_;
    $n++;
    return { key => "$W/key$n.pem", out => "$W/cert$n.pem",
             cn => "cmd-$what-$n-$$", tid => "cmd-$what-$n-$$" };
}

sub enroll_dev {
    my ($path, $d, $pw, @args) = @_;
    return client_enroll($path, key => $d->{key}, out => $d->{out},
                         cn => $d->{cn}, tid => $d->{tid}, challenge => $pw,
                         args => \@args);
}

sub facts {
    my ($tid, $op) = @_;
    my $f = "$CADIR/env/$tid.$op";
    return {} unless -e $f;
    my %e = map { /^([^=]+)=(.*)$/ ? ($1 => $2) : () } split /\n/, slurp($f);
    return \%e;
}

# ---- 1. issuing ----------------------------------------------------------------------
subtest 'command provider issues (/cmd/sign)' => sub {
    my $pw = otp_password($ADMIN);
    ok($pw, 'a one-time password of pool cmd') or return;
    my $d = device('sign');
    my $mark = log_mark();
    my $r = enroll_dev('/cmd/sign', $d, $pw, '--san', 'dns:dev.example.com',
                       '--san', 'ip:192.0.2.10');
    is($r->{rc}, 0, 'SUCCESS') or diag("$r->{cmd}\n$r->{out}$r->{err}");
    like($r->{out}, qr/^issuer: CN=mod_scep Demo Root CA$/m, 'issuer CA 1');
    ok(-s $d->{out} && cert_issuer_is($d->{out}, $CA1),
       'the certificate verifies against t/pki/ca.pem');
    ok(cert_key_is($d->{out}, $d->{key}), "it is for the device's key");
    is(cert_cn($d->{out}), $d->{cn}, "subject CN=$d->{cn}");
    is(cert_days($d->{out}), 9, 'validity 9 days (profile Cmd, SCEP_VALIDITY_DAYS)');
    like(cert_ext($d->{out}, 'extendedKeyUsage'),
         qr/TLS Web Server Authentication, TLS Web Client Authentication/,
         'EKU serverAuth, clientAuth (profile Cmd, SCEP_EXT_KEY_USAGE)');
    like(cert_ext($d->{out}, 'subjectAltName'),
         qr/DNS:dev\.example\.com, IP Address:192\.0\.2\.10/,
         'SANs copied (SCEP_SANS)');
    like(wait_log($mark, qr/transaction \Q$d->{tid}\E.*CA provider command/),
         qr/SCEP00013: PKCSReq issued: transaction \Q$d->{tid}\E, .*profile Cmd, CA provider command/,
         'SCEP00013 names the command provider');

    my $f = facts($d->{tid}, 'enroll');
    is($f->{SCEP_OPERATION}, 'enroll', 'SCEP_OPERATION=enroll');
    is($f->{SCEP_TRANSACTION_ID}, $d->{tid}, 'SCEP_TRANSACTION_ID');
    is($f->{SCEP_PROFILE}, 'Cmd', 'SCEP_PROFILE');
    is($f->{SCEP_SUBJECT}, "CN=$d->{cn}", 'SCEP_SUBJECT (RFC 2253)');
    is($f->{SCEP_SANS}, 'dns:dev.example.com,ip:192.0.2.10', 'SCEP_SANS');
    is($f->{SCEP_REQUESTER}, '127.0.0.1', 'SCEP_REQUESTER');
    is($f->{SCEP_VALIDITY_DAYS}, 9, 'SCEP_VALIDITY_DAYS');
    is($f->{SCEP_EXT_KEY_USAGE}, '1.3.6.1.5.5.7.3.1,1.3.6.1.5.5.7.3.2',
       'SCEP_EXT_KEY_USAGE');
    ok(!exists $f->{SCEP_REFERENCE}, 'no SCEP_REFERENCE on enroll');
    my $args = -e "$CADIR/env/$d->{tid}.enroll.args"
        ? slurp("$CADIR/env/$d->{tid}.enroll.args") : '';
    is($args, "sign\n$CADIR\n", 'argv as configured, without timeout=');

    # the same password again: used
    my $d2 = device('sign-again');
    $r = enroll_dev('/cmd/sign', $d2, $pw);
    is($r->{rc}, 2, 'the password again, another device: FAILURE');
    like($r->{out}, qr/^failInfo: badMessageCheck$/m, '... badMessageCheck');
};

# ---- 2. failures leave the password unconsumed ----------------------------------------
my @failures = (
    [ down => 'the CA is down (exit 1)',
      qr/CA provider command failed: \Q$PROG\E \(enroll\): exited with status 1: cannot connect to ca-backend\.example:8443: connection refused/ ],
    [ missing => 'the program execs one that is not there',
      qr/CA provider command failed: \Q$PROG\E \(enroll\): exited with status 127: .*no-such-ca-backend/ ],
    [ slow => 'it takes longer than timeout=2',
      qr/CA provider command failed: \Q$PROG\E \(enroll\): timed out after 2 s \(killed\); stderr: waiting for the CA/ ],
    [ garbage => 'garbage on stdout',
      qr/CA provider command failed: \Q$PROG\E \(enroll\): exited 0 but printed no PEM certificate on stdout/ ],
    [ notcert => 'a PEM private key, not a certificate',
      qr/CA provider command failed: \Q$PROG\E \(enroll\): stdout holds a PEM "PRIVATE KEY" block, not a certificate/ ],
    [ otherkey => 'a certificate for another key',
      qr/CA provider command failed: \Q$PROG\E \(enroll\): the certificate it printed first \(CN=someone else\) is not for the CSR's public key/ ],
    [ wrongca => 'a certificate from a CA the endpoint does not publish',
      qr/CA provider command failed: \Q$PROG\E \(enroll\): the certificate it printed first \(CN=\S+\) is not signed by the endpoint's CA/ ],
    [ crash => 'the program crashes (SIGSEGV)',
      qr/CA provider command failed: \Q$PROG\E \(enroll\): killed by signal 11/ ],
    [ reject => 'the CA refuses (exit 2)',
      qr/CA provider command rejected the request: \Q$PROG\E: the example CA refuses subject CN=\S+$/m ],
);

for my $f (@failures) {
    my ($mode, $what, $re) = @$f;
    subtest "/cmd/$mode: $what" => sub {
        my $pw = otp_password($ADMIN);
        ok($pw, 'a one-time password of pool cmd') or return;
        my $d = device($mode);
        my $mark = log_mark();
        my $t0 = time;
        my $r = enroll_dev("/cmd/$mode", $d, $pw);
        my $took = time - $t0;
        is($r->{rc}, 2, 'CertRep FAILURE (exit 2)')
            or diag("$r->{cmd}\n$r->{out}$r->{err}");
        like($r->{out}, qr/^failInfo: badRequest$/m, 'failInfo badRequest');
        ok(!-e $d->{out}, 'no certificate');
        my $log = wait_log($mark, qr/transaction \Q$d->{tid}\E, ca-provider/);
        like($log, qr/SCEP00012: PKCSReq refused \(badRequest\), transaction \Q$d->{tid}\E, ca-provider: /,
             'SCEP00012: refused by the CA provider');
        like($log, $re, 'the log names the provider, the program and why')
            or diag($log);
        unlike($log, qr/a second line that is not the reason/,
               'only the first line of stderr') if $mode eq 'reject';
        if ($mode eq 'slow') {
            cmp_ok($took, '>=', 2, 'it waited for the timeout (2 s)');
            cmp_ok($took, '<=', 10, 'and not much longer');
            # the whole process group went: no "sleep 30" of the program
            my $ps = run_cmd(['ps', '-eo', 'pid,args'], timeout => 10);
            my @left = grep { /^\s*\d+\s+sleep 30$/ } split /\n/, $ps->{out};
            is(scalar @left, 0, "the program's sleep was killed with it")
                or diag(join "\n", @left);
        }
        # the password is still good: the device tries again where the CA works
        $r = enroll_dev('/cmd/sign', $d, $pw);
        is($r->{rc}, 0, 'the same password, device and transactionID on '
                        . '/cmd/sign: SUCCESS (the password was not consumed)')
            or diag("$r->{cmd}\n$r->{out}$r->{err}");
        ok(-s $d->{out} && cert_issuer_is($d->{out}, $CA1),
           'a certificate from CA 1');
    };
}

# ---- 3. pending, then CertPoll -----------------------------------------------------------
subtest 'pending at the CA (exit 3), CertPoll until it issues' => sub {
    my $pw = otp_password($ADMIN);
    ok($pw, 'a one-time password of pool cmd') or return;
    my $d = device('pending');
    my $mark = log_mark();
    my $r = enroll_dev('/cmd/pending', $d, $pw);
    is($r->{rc}, 3, 'PENDING (exit 3)') or diag("$r->{cmd}\n$r->{out}$r->{err}");
    like($r->{out}, qr/^status: PENDING$/m, 'status PENDING');
    my $ref = "ticket-$d->{tid}";
    my $state = "$CADIR/pending/$ref.state";
    ok(-e $state, "the program kept ticket $ref");
    like(wait_log($mark, qr/SCEP00014/),
         qr/SCEP00014: PKCSReq pending at CA provider command: transaction \Q$d->{tid}\E/,
         'SCEP00014: pending at the command provider');

    # PENDING consumed the password
    my $other = device('pending-pw');
    $r = enroll_dev('/cmd/sign', $other, $pw);
    is($r->{rc}, 2, 'the password of a pending request is used up');

    # the CA has not decided
    $r = client_poll('/cmd/pending', key => $d->{key}, out => $d->{out},
                     cn => $d->{cn}, tid => $d->{tid});
    is($r->{rc}, 3, 'CertPoll while the CA waits: PENDING')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    my $f = facts($d->{tid}, 'poll');
    is($f->{SCEP_OPERATION}, 'poll', 'the program ran with SCEP_OPERATION=poll');
    is($f->{SCEP_REFERENCE}, $ref, "and SCEP_REFERENCE=$ref");
    is($f->{SCEP_TRANSACTION_ID}, $d->{tid}, 'and the transactionID');

    # a repeated PKCSReq is a poll too
    $r = enroll_dev('/cmd/pending', $d, $pw);
    is($r->{rc}, 3, 'the same PKCSReq again: PENDING');

    # the CA issues
    spit($state, "issue\n");
    $mark = log_mark();
    $r = client_poll('/cmd/pending', key => $d->{key}, out => $d->{out},
                     cn => $d->{cn}, tid => $d->{tid});
    is($r->{rc}, 0, 'CertPoll after the state file says "issue": SUCCESS')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    ok(-s $d->{out} && cert_issuer_is($d->{out}, $CA1), 'from CA 1');
    ok(-s $d->{out} && cert_key_is($d->{out}, $d->{key}), "for the device's key");
    is(-s $d->{out} ? cert_days($d->{out}) : undef, 9,
       'with the validity the program kept from the enrollment');
    like(wait_log($mark, qr/SCEP00027/),
         qr/SCEP00027: CertPoll: CA provider command issued pending transaction \Q$d->{tid}\E/,
         'SCEP00027: issued on poll');
    my ($serial) = $r->{out} =~ /^serial: (\S+)$/m;

    # answered from the store from now on
    unlink "$CADIR/env/$d->{tid}.poll";
    $r = client_poll('/cmd/pending', key => $d->{key}, out => $d->{out},
                     cn => $d->{cn}, tid => $d->{tid});
    is($r->{rc}, 0, 'CertPoll again: SUCCESS');
    like($r->{out}, qr/^serial: \Q$serial\E$/m, 'the same certificate')
        if $serial;
    ok(!-e "$CADIR/env/$d->{tid}.poll", 'without asking the program again');
};

subtest 'pending at the CA, then rejected by it' => sub {
    my $pw = otp_password($ADMIN);
    ok($pw, 'a one-time password of pool cmd') or return;
    my $d = device('pending-reject');
    my $r = enroll_dev('/cmd/pending', $d, $pw);
    is($r->{rc}, 3, 'PENDING') or diag("$r->{cmd}\n$r->{out}$r->{err}");
    spit("$CADIR/pending/ticket-$d->{tid}.state", "reject\n");
    my $mark = log_mark();
    $r = client_poll('/cmd/pending', key => $d->{key}, out => $d->{out},
                     cn => $d->{cn}, tid => $d->{tid});
    is($r->{rc}, 2, 'CertPoll after "reject": FAILURE')
        or diag("$r->{cmd}\n$r->{out}$r->{err}");
    ok(!-e $d->{out}, 'no certificate');
    like(wait_log($mark, qr/rejected pending transaction/),
         qr/CA provider command rejected pending transaction: \Q$PROG\E: ticket ticket-\Q$d->{tid}\E was rejected by the CA operator/,
         'the log has the program\'s reason');
    $r = client_poll('/cmd/pending', key => $d->{key}, out => $d->{out},
                     cn => $d->{cn}, tid => $d->{tid});
    is($r->{rc}, 2, 'and stays FAILURE');
};

# ---- 4. start-up checks ---------------------------------------------------------------
subtest 'httpd -t checks the program and the arguments' => sub {
    my $section = sub {
        my ($args) = @_;
        return "<Location /cmd-configtest>\n    SetHandler scep\n"
             . "    SCEPCACertificateFile \"$CA1\"\n"
             . "    SCEPRAEncryption \"" . pki('ra-both.pem') . '" "'
             . pki('ra-both.key') . "\"\n"
             . "    SCEPCAProvider command $args\n"
             . "    SCEPChallenge static configtest\n</Location>\n";
    };
    my ($rc, $out) = httpd_configtest($section->("$PROG sign $CADIR timeout=5"));
    is($rc, 0, 'a good section: Syntax OK') or diag($out);

    ($rc, $out) = httpd_configtest($section->(top_dir() . '/t/bin/no-such-ca-program'));
    isnt($rc, 0, 'a program that does not exist: refused');
    like($out, qr/SCEP00005: SCEP endpoint <\/cmd-configtest>: SCEPCAProvider command: program \S*no-such-ca-program: No such file or directory/,
         '... naming the section and the program') or diag($out);

    my $noexec = "$W/not-executable.sh";
    spit($noexec, "#!/bin/sh\nexit 0\n");
    chmod 0644, $noexec;
    ($rc, $out) = httpd_configtest($section->($noexec));
    isnt($rc, 0, 'a program that is not executable: refused');
    like($out, qr/program \Q$noexec\E is not executable/, '... saying so')
        or diag($out);

    ($rc, $out) = httpd_configtest($section->("$PROG sign $CADIR timeout=forever"));
    isnt($rc, 0, 'timeout=forever: refused');
    like($out, qr/SCEPCAProvider command: timeout=forever: a number of seconds from 1 to 3600/,
         '... as a syntax error of the directive') or diag($out);

    ($rc, $out) = httpd_configtest($section->(''));
    isnt($rc, 0, 'no program at all: refused');
    like($out, qr/the command CA provider needs the program to run/, '... saying so')
        or diag($out);
};

done_testing;
