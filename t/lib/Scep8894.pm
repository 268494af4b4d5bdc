package Scep8894;
# Helpers of the RFC 8894 flow tests (t/30-*.t .. t/35-*.t): the project
# client with an explicit transactionID per request (so that the log line
# of a refusal can be found by it), the admin pages with Basic auth and
# JSON, certificates made with openssl outside the module (foreign CA,
# expired), and reading certificates and CRLs.
use strict;
use warnings;

use Exporter 'import';
use MIME::Base64 ();
use JSON::PP ();
use Time::Local ();
use Test::More ();
use ScepTest;

our @EXPORT = qw(
    client scep enroll_as refused issued_ok
    admin_get admin_post otp_password
    cert_serial cert_not_after cert_ext crl_text crl_serials
    make_foreign_ca sign_with_ca make_csr
    days_left ts
);

my $CLIENT;
sub client { $CLIENT //= program_path('build/scep-client') }

my $SEQ = 0;

# a transactionID unique in this run: it finds the request's log lines
sub ts {
    my ($tag) = @_;
    $SEQ++;
    return "$tag-$$-$SEQ-" . time;
}

# scep(SUBCOMMAND, PATH, ARGS...): build/scep-client against the test server
sub scep {
    my ($cmd, $path, @args) = @_;
    return run_cmd([client(), $cmd, base_url() . $path, @args],
                   timeout => 120);
}

# enroll_as(PATH, %o): key, out, cn, tid, plus extra => [...]; a fresh
# transactionID unless one is given.  Returns (result, tid).
sub enroll_as {
    my ($cmd, $path, %o) = @_;
    my $tid = $o{tid} // ts($o{tag} // 'rfc');
    my @a = ('--tid', $tid);
    push @a, '--key', $o{key} if $o{key};
    push @a, '--out', $o{out} if $o{out};
    push @a, '--cn', $o{cn} if defined $o{cn};
    push @a, @{ $o{extra} || [] };
    return (scep($cmd, $path, @a), $tid);
}

# issued_ok(WHAT, RESULT, FILE): exit 0, SUCCESS, a certificate that
# verifies against t/pki/ca.pem
sub issued_ok {
    my ($what, $r, $file) = @_;
    my $ok = Test::More::is($r->{rc}, 0, "$what: SUCCESS (exit 0)");
    Test::More::diag("$r->{cmd}\n$r->{out}$r->{err}") unless $ok;
    Test::More::like($r->{out}, qr/^status: SUCCESS$/m, "$what: status SUCCESS");
    my ($v) = $file && -s $file ? openssl_verify($file) : (0);
    Test::More::ok($v, "$what: the certificate verifies against t/pki/ca.pem");
    return $ok && $v;
}

# refused(WHAT, RESULT, TID, FAILINFO, RULE, MARK, [OUTFILE]): exit 2,
# FAILURE with FAILINFO, no certificate, and a SCEPnnnnn line in the error
# log for this transaction naming RULE (a string: "renewal-signer",
# "profile Strict cn-pattern"...)
sub refused {
    my ($what, $r, $tid, $failinfo, $rule, $mark, $out) = @_;
    Test::More::is($r->{rc}, 2, "$what: FAILURE (exit 2)")
        or Test::More::diag("$r->{cmd}\n$r->{out}$r->{err}");
    Test::More::like($r->{out}, qr/^status: FAILURE$/m, "$what: status FAILURE");
    Test::More::like($r->{out}, qr/^failInfo: \Q$failinfo\E$/m,
                     "$what: failInfo $failinfo") or Test::More::diag($r->{out});
    Test::More::unlike($r->{out}, qr/^serial: /m, "$what: no certificate");
    Test::More::ok(!($out && -s $out), "$what: nothing written") if $out;
    my $re = qr/SCEP\d{5}: .*refused \(\Q$failinfo\E\), transaction \Q$tid\E, \Q$rule\E: /;
    my $log = wait_log($mark, $re);
    Test::More::like($log, $re, "$what: SCEPnnnnn line naming rule '$rule'")
        or Test::More::diag(join "\n", grep { /SCEP\d{5}/ && /\Q$tid\E/ }
                                       split /\n/, $log);
}

# ---- admin pages (Basic auth admin/secret, JSON) ---------------------------

my $UA;
sub _ua {
    require LWP::UserAgent;
    $UA //= do {
        my $ua = LWP::UserAgent->new(timeout => 60, keep_alive => 0,
                                     agent => 'mod_scep-tests/1',
                                     max_redirect => 0);
        $ua->env_proxy(0);
        $ua->proxy(['http'], undef);
        $ua;
    };
    return $UA;
}

sub _admin {
    my ($method, $path, $user, $body) = @_;
    require HTTP::Request;
    my $req = HTTP::Request->new($method => base_url() . $path);
    $req->header(Accept => 'application/json');
    $req->header(Authorization => 'Basic '
        . MIME::Base64::encode_base64($user // 'admin:secret', ''));
    if ($method eq 'POST') {
        $req->content($body // '');
        $req->header('Content-Length' => length($body // ''));
    }
    my $res = _ua()->request($req);
    my $json = eval { JSON::PP::decode_json($res->decoded_content // '') };
    return { status => $res->code, body => $res->decoded_content // '',
             json => $json, type => scalar $res->header('Content-Type') };
}

sub admin_get  { _admin('GET', @_) }
sub admin_post { _admin('POST', $_[0], $_[1], $_[2]) }

# a fresh one-time password of pool "otp"
sub otp_password {
    my $r = admin_get('/otp/certsrv/mscep_admin/');
    die "no one-time password: HTTP $r->{status} $r->{body}\n"
        unless $r->{status} == 200 && $r->{json} && $r->{json}{password};
    return $r->{json}{password};
}

# ---- certificates ------------------------------------------------------------

sub cert_serial {
    my ($file) = @_;
    my $r = run_cmd(['openssl', 'x509', '-noout', '-serial', '-in', $file],
                    timeout => 30);
    my ($s) = $r->{out} =~ /serial=([0-9A-Fa-f]+)/;
    return defined $s ? uc $s : undef;
}

my %MON = (Jan => 0, Feb => 1, Mar => 2, Apr => 3, May => 4, Jun => 5,
           Jul => 6, Aug => 7, Sep => 8, Oct => 9, Nov => 10, Dec => 11);

# "Dec  6 07:52:02 2026 GMT" -> Unix seconds
sub _gmt {
    my ($s) = @_;
    my ($mon, $d, $h, $mi, $se, $y) =
        $s =~ /(\w{3})\s+(\d+)\s+(\d+):(\d+):(\d+)\s+(\d{4})/ or return undef;
    return Time::Local::timegm($se, $mi, $h, $d, $MON{$mon}, $y);
}

sub cert_not_after {
    my ($file) = @_;
    my $r = run_cmd(['openssl', 'x509', '-noout', '-enddate', '-in', $file],
                    timeout => 30);
    my ($s) = $r->{out} =~ /notAfter=(.*)/;
    return defined $s ? _gmt($s) : undef;
}

# days from now to notAfter, as a fraction
sub days_left {
    my $na = cert_not_after($_[0]) // return -1;
    return ($na - time) / 86400;
}

# openssl x509 -ext NAME output
sub cert_ext {
    my ($file, $ext) = @_;
    my $r = run_cmd(['openssl', 'x509', '-noout', '-ext', $ext, '-in', $file],
                    timeout => 30);
    return $r->{out};
}

sub crl_text {
    my ($file, $inform) = @_;
    my $r = run_cmd(['openssl', 'crl', '-noout', '-text', '-inform',
                     $inform // 'PEM', '-in', $file], timeout => 30);
    return $r->{rc} == 0 ? $r->{out} : '';
}

# { SERIAL => reason text or '' } of a CRL's text
sub crl_serials {
    my ($text) = @_;
    my %s;
    my $cur;
    for my $line (split /\n/, $text) {
        if ($line =~ /Serial Number:\s*([0-9A-Fa-f]+)/) {
            $cur = uc $1;
            $s{$cur} = '';
        }
        elsif ($cur && $line =~ /^\s+(Unspecified|Key Compromise|CA Compromise|Affiliation Changed|Superseded|Cessation Of Operation|Certificate Hold|Privilege Withdrawn|AA Compromise)\s*$/) {
            $s{$cur} = $1;
        }
    }
    return \%s;
}

# ---- certificates from outside the module ------------------------------------

sub _ossl {
    my $r = run_cmd(['openssl', @_], timeout => 60);
    die "openssl @_: $r->{err}" unless $r->{rc} == 0;
    return $r;
}

# make_foreign_ca(DIR, NAME, CN): a self-signed CA that is not ours,
# (NAME.pem, NAME.key)
sub make_foreign_ca {
    my ($dir, $name, $cn) = @_;
    _ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256',
          '-days', '30', '-keyout', "$dir/$name.key",
          '-out', "$dir/$name.pem", '-subj', "/CN=$cn",
          '-addext', 'basicConstraints=critical,CA:TRUE',
          '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    return ("$dir/$name.pem", "$dir/$name.key");
}

# make_csr(DIR, NAME, CN): key NAME.key (RSA 2048) and NAME.csr
sub make_csr {
    my ($dir, $name, $cn) = @_;
    _ossl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-sha256',
          '-keyout', "$dir/$name.key", '-out', "$dir/$name.csr",
          '-subj', "/CN=$cn");
    return ("$dir/$name.csr", "$dir/$name.key");
}

# sign_with_ca(DIR, NAME, CN, CA, CAKEY, STARTDATE, ENDDATE): NAME.pem and
# NAME.key, a certificate for CN from CA with the given validity
# (YYYYMMDDHHMMSSZ) -- "openssl ca" can date a certificate in the past,
# "openssl x509 -req" of OpenSSL 3.0 cannot.
sub sign_with_ca {
    my ($dir, $name, $cn, $ca, $cakey, $start, $end) = @_;
    my ($csr) = make_csr($dir, $name, $cn);
    my $cadir = "$dir/ca-$name";
    mkdir $cadir;
    spit("$cadir/index.txt", '');
    spit("$cadir/serial", sprintf("%016X\n", int(rand(2**31)) * 65536 + $$));
    spit("$cadir/ca.cnf", <<"EOF");
[ ca ]
default_ca = tca
[ tca ]
database = $cadir/index.txt
new_certs_dir = $cadir
serial = $cadir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = leaf
[ anything ]
commonName = supplied
[ leaf ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
EOF
    _ossl('ca', '-batch', '-config', "$cadir/ca.cnf", '-cert', $ca,
          '-keyfile', $cakey, '-in', $csr, '-out', "$dir/$name.pem",
          '-startdate', $start, '-enddate', $end, '-notext');
    return ("$dir/$name.pem", "$dir/$name.key");
}

1;
