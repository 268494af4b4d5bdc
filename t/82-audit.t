# The audit log (SCEPAuditLog, src/mod_scep_audit.c; docs/audit.md): the
# test server writes t/logs/audit.log.  This file makes one decision of
# each kind and reads the lines they left: an issued enrollment (serial,
# profile, challenge, CA provider), a refused one (fail_info, rule), a
# request answered with an HTTP error (http_400), a request left for an
# administrator (pending), an administrator's approval (admin, serial) and
# rejection; one line per decision, every line of the whole file valid
# JSON with the documented fields, and no password anywhere in it.
use strict;
use warnings;
use Test::More;
use File::Spec ();
use JSON::PP ();
use URI::Escape ();
use Sys::Hostname ();
use ScepTest;
use Scep8894;

need_programs('build/scep-client', 'openssl');

my $LOG = File::Spec->catfile(top_dir(), 't', 'logs', 'audit.log');
my $W = tempdir();
my $json = JSON::PP->new;

ok(-f $LOG, 't/logs/audit.log exists (SCEPAuditLog in t/conf/extra.conf.in)')
    or BAIL_OUT('no audit log: add "SCEPAuditLog @ServerRoot@/logs/audit.log" to t/conf/extra.conf.in');

sub audit_size { -s $LOG || 0 }

sub audit_since {
    my ($mark) = @_;
    open my $fh, '<', $LOG or return ();
    seek $fh, $mark, 0;
    my @lines = <$fh>;
    close $fh;
    return @lines;
}

# the decoded lines since MARK that satisfy CODE, once there are WANT of
# them (the line is written before the answer, but allow a moment)
sub wait_lines {
    my ($mark, $want, $code) = @_;
    my @hit;
    for (1 .. 30) {
        @hit = grep { $code->($_) }
               map { eval { $json->decode($_) } || () } audit_since($mark);
        last if @hit >= $want;
        select(undef, undef, undef, 0.1);
    }
    return @hit;
}

my %SECRETS;     # every password this file uses: none may be logged
$SECRETS{challenge()} = 'the static challenge password';

# ==== issued =================================================================
my $mark = audit_size();
my $pw = otp_password();
$SECRETS{$pw} = 'a one-time password';
my $cn = "audit-$$";
my ($r, $tid) = enroll_as('enroll', '/otp/certsrv/mscep', key => "$W/k1.pem",
                          out => "$W/c1.pem", cn => $cn,
                          extra => ['--challenge', $pw, '--san', "dns:$cn.example.com"]);
issued_ok('an enrollment with a one-time password', $r, "$W/c1.pem");
my $serial = cert_serial("$W/c1.pem") // '';
my @l = wait_lines($mark, 1, sub { ($_[0]{transaction_id} // '') eq $tid });
is(scalar @l, 1, 'issued: exactly one line for the transaction');
my $a = $l[0] || {};
is($a->{decision}, 'issued', 'issued: decision');
is($a->{message_type}, 'PKCSReq', 'issued: message_type');
is($a->{serial}, $serial, 'issued: serial, as in the certificate');
is($a->{profile}, 'IPSECIntermediateOffline', 'issued: profile (NDES\'s default template)');
is($a->{challenge}, 'otp: ok', 'issued: challenge');
is($a->{ca_provider}, 'local: issued', 'issued: ca_provider');
is($a->{rule}, 'challenge', 'issued: rule (granted on the challenge)');
is($a->{subject}, "CN=$cn", 'issued: subject of the CSR');
is($a->{sans}, "dns:$cn.example.com", 'issued: sans of the CSR');
is($a->{uri}, '/otp/certsrv/mscep', 'issued: uri');
is($a->{requester}, '127.0.0.1', 'issued: requester');
is($a->{node}, Sys::Hostname::hostname(), 'issued: node (the host name)');
like($a->{time} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
     'issued: time, UTC with milliseconds');
ok(!exists $a->{fail_info}, 'issued: no fail_info');

# ==== the retry of an answered transaction: the same certificate ==========
$mark = audit_size();
($r) = enroll_as('enroll', '/otp/certsrv/mscep', key => "$W/k1.pem",
                 out => "$W/c1b.pem", cn => $cn, tid => $tid,
                 extra => ['--challenge', $pw, '--san', "dns:$cn.example.com"]);
is($r->{rc}, 0, 'the retry: SUCCESS') or diag("$r->{cmd}\n$r->{out}$r->{err}");
@l = wait_lines($mark, 1, sub { ($_[0]{transaction_id} // '') eq $tid });
is(scalar @l, 1, 'retry: one line');
is($l[0] && $l[0]{rule}, 'retry', 'retry: rule retry');
is($l[0] && $l[0]{serial}, $serial, 'retry: the same serial');

# ==== refused ================================================================
$mark = audit_size();
my $wrong = join '', map { sprintf '%02X', int rand 256 } 1 .. 8;
$SECRETS{$wrong} = 'a wrong password';
my $rtid;
($r, $rtid) = enroll_as('enroll', '/otp/certsrv/mscep', key => "$W/k2.pem",
                        out => "$W/c2.pem", cn => "audit-refused-$$",
                        extra => ['--challenge', $wrong]);
is($r->{rc}, 2, 'an unknown password: FAILURE') or diag("$r->{cmd}\n$r->{out}$r->{err}");
@l = wait_lines($mark, 1, sub { ($_[0]{transaction_id} // '') eq $rtid });
is(scalar @l, 1, 'refused: exactly one line');
$a = $l[0] || {};
is($a->{decision}, 'refused', 'refused: decision');
is($a->{fail_info}, 'badMessageCheck', 'refused: fail_info');
is($a->{rule}, 'challenge otp', 'refused: rule');
like($a->{reason} // '', qr/password is unknown/, 'refused: reason');
ok(!exists $a->{serial}, 'refused: no serial');

# a refusal by profile policy names the profile's rule
$mark = audit_size();
($r, $rtid) = enroll_as('enroll', '/policy/mscep', key => "$W/k3.pem",
                        out => "$W/c3.pem", cn => "not-allowed-$$",
                        extra => ['--challenge', challenge()]);
is($r->{rc}, 2, 'a CN the profile does not allow: FAILURE');
@l = wait_lines($mark, 1, sub { ($_[0]{transaction_id} // '') eq $rtid });
is(scalar @l, 1, 'policy refusal: one line');
like($l[0] && $l[0]{rule} // '', qr/^profile Strict /, 'policy refusal: rule names the profile');
ok($l[0] && $l[0]{fail_info}, 'policy refusal: fail_info');

# ==== http_NNN ===============================================================
$mark = audit_size();
my $op = "Bogus$$";
my $h = http_get("/certsrv/mscep/mscep.dll?operation=$op");
is($h->{status}, 400, 'an unknown operation: 400');
@l = wait_lines($mark, 1, sub { ($_[0]{reason} // '') =~ /\Q$op\E/ });
is(scalar @l, 1, 'http_400: one line');
$a = $l[0] || {};
is($a->{decision}, 'http_400', 'http_400: decision');
is($a->{rule}, 'http', 'http_400: rule http');
is($a->{uri}, '/certsrv/mscep/mscep.dll', 'http_400: uri (the path)');
ok(!exists $a->{message_type}, 'http_400: no message_type (nothing decoded)');

# ==== pending, approved, rejected (manual approval) ==========================
my %tid;
for my $k (qw(approve reject)) {
    $mark = audit_size();
    ($r, $tid{$k}) = enroll_as('enroll', '/manual/mscep', key => "$W/m-$k.pem",
                               cn => "audit-$k-$$", extra => ['--challenge', challenge()]);
    is($r->{rc}, 3, "manual approval ($k): PENDING") or diag("$r->{cmd}\n$r->{out}$r->{err}");
    @l = wait_lines($mark, 1, sub { ($_[0]{transaction_id} // '') eq $tid{$k} });
    is(scalar @l, 1, "pending ($k): one line");
    is($l[0] && $l[0]{decision}, 'pending', "pending ($k): decision");
    is($l[0] && $l[0]{rule}, 'approval', "pending ($k): rule approval");
    is($l[0] && $l[0]{profile}, 'Manual', "pending ($k): profile");
}
{
    $mark = audit_size();
    my $d = admin_post('/manual/admin/?approve=' . URI::Escape::uri_escape($tid{approve}));
    is($d->{status}, 200, 'approve: 200') or diag($d->{body});
    my $aserial = $d->{json} && $d->{json}{serial};
    @l = wait_lines($mark, 1, sub { ($_[0]{reason} // '') =~ /\Q$tid{approve}\E/ });
    is(scalar @l, 1, 'approved: one line');
    $a = $l[0] || {};
    is($a->{decision}, 'approved', 'approved: decision');
    is($a->{admin}, 'admin', 'approved: admin (the authenticated user)');
    is($a->{serial}, $aserial, 'approved: serial of the issued certificate');
    is($a->{profile}, 'Manual', 'approved: profile');
    is($a->{rule}, 'administrator', 'approved: rule administrator');
    is($a->{uri}, '/manual/admin/', 'approved: uri of the admin page');

    $mark = audit_size();
    $d = admin_post('/manual/admin/?reject=' . URI::Escape::uri_escape($tid{reject})
                    . '&reason=' . URI::Escape::uri_escape("not ours $$"));
    is($d->{status}, 200, 'reject: 200') or diag($d->{body});
    @l = wait_lines($mark, 1, sub { ($_[0]{reason} // '') =~ /\Q$tid{reject}\E/ });
    is(scalar @l, 1, 'rejected: one line');
    is($l[0] && $l[0]{decision}, 'rejected', 'rejected: decision');
    is($l[0] && $l[0]{admin}, 'admin', 'rejected: admin');
    like($l[0] && $l[0]{reason} // '', qr/not ours $$/, 'rejected: the administrator\'s reason');
}

# ==== the whole file =========================================================
{
    open my $fh, '<', $LOG or die "$LOG: $!";
    my @all = <$fh>;
    close $fh;
    my ($bad, $fields, $leak) = (0, 0, 0);
    my %known = map { $_ => 1 } qw(time node requester uri decision message_type
                                   transaction_id subject sans admin profile
                                   challenge ca_provider serial fail_info rule reason);
    for my $i (0 .. $#all) {
        my $line = $all[$i];
        my $d = eval { $json->decode($line) };
        if (!$d || ref $d ne 'HASH' || $line !~ /\n\z/) {
            diag("line " . ($i + 1) . " is not one JSON object: $line") if $bad++ < 3;
            next;
        }
        my @unknown = grep { !$known{$_} } keys %$d;
        my $ok = !@unknown
                 && defined $d->{time} && defined $d->{node} && defined $d->{uri}
                 && ($d->{decision} // '') =~ /^(?:issued|pending|refused|approved|rejected|password_issued|password_revoked|certificate_revoked|http_\d{3})$/;
        diag("line " . ($i + 1) . " fields: @unknown / " . $line) if !$ok && $fields++ < 3;
        for my $s (keys %SECRETS) {
            if (index(uc $line, uc $s) >= 0) {
                diag("line " . ($i + 1) . " holds $SECRETS{$s}") if $leak++ < 3;
            }
        }
    }
    ok(@all >= 9, 'the file holds the lines of this test (and the others\')');
    is($bad, 0, 'every line is one JSON object, newline-terminated');
    is($fields, 0, 'every line has time, node, uri and a known decision, and only documented fields');
    is($leak, 0, 'no line holds a password (the static one, one-time ones, wrong ones)');
}

done_testing();
