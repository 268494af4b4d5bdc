# scepadm, the administrator's tool (build/scepadm, tools/scepadm.c): every
# subcommand.  ca create (RSA and EC), ra issue (NDES's two RA certificates,
# or one with both usages), ra request, thumbprint (as the admin page shows
# it), password issue/list/revoke on a scratch database and on the test
# server's (t/db/scep.db, key t/pki/otp.key, pool "otp"): a password issued
# by scepadm enrolls once through /otp/certsrv/mscep and one it revokes is
# refused; cert list shows the certificate, cert revoke with the CA key puts
# it on /crl/ca.crl; check passes on the test configuration and on scepadm's
# own PKI, and names each problem of a broken one on a line of its own.
use strict;
use warnings;
use Test::More;
use File::Spec ();
use JSON::PP ();
use Digest::SHA ();
use ScepTest;

need_programs('build/scepadm', 'build/scep-client', 'openssl', 'sqlite3');

my $adm = program_path('build/scepadm');
my $client = program_path('build/scep-client');
my $W = tempdir();
my $json = JSON::PP->new;
my $TOP = top_dir();
my $DB = File::Spec->catfile($TOP, 't', 'db', 'scep.db');
my $SCEP = '/otp/certsrv/mscep';

$SIG{ALRM} = sub { diag('t/80-scepadm.t timed out'); exit 1 };
alarm 240;

sub adm {
    my (@args) = @_;
    my $r = run_cmd([$adm, @args], timeout => 120);
    return $r;
}

sub adm_ok {
    my ($what, @args) = @_;
    my $r = adm(@args);
    is($r->{rc}, 0, "scepadm $what: exit 0") or diag("$r->{cmd}\n$r->{out}$r->{err}");
    return $r;
}

sub x509_text {
    my ($file, $inform) = @_;
    my $r = run_cmd(['openssl', 'x509', '-noout', '-text', '-nameopt', 'RFC2253',
                     '-inform', $inform // 'PEM', '-in', $file], timeout => 30);
    return $r->{rc} == 0 ? $r->{out} : '';
}

sub mode_of { sprintf '%04o', (stat $_[0])[2] & 07777 }

sub serial_of {
    my $r = run_cmd(['openssl', 'x509', '-noout', '-serial', '-in', $_[0]], timeout => 30);
    my ($s) = $r->{out} =~ /serial=([0-9A-F]+)/i;
    return $s ? uc $s : undef;
}

# ==== help, version, usage errors ============================================
{
    my $r = adm_ok('help', 'help');
    like($r->{out}, qr/password issue/, 'help lists the subcommands');
    $r = adm_ok('version', 'version');
    like($r->{out}, qr/^scepadm \(mod_scep\) \d+\.\d+/, 'version: scepadm (mod_scep) X.Y');
    $r = adm('frobnicate');
    is($r->{rc}, 64, 'an unknown command: exit 64');
    $r = adm('ca', 'create', '--cert', "$W/x.pem");
    is($r->{rc}, 64, 'ca create without --key: exit 64');
    like($r->{err}, qr/--key is required/, 'and says what is missing');
    $r = adm('password', 'list', '--dbd', "sqlite3:$W/none.db");
    is($r->{rc}, 1, 'password list on a database that does not exist: exit 1');
    like($r->{err}, qr/does not exist/, 'and says so (no empty file made)');
    ok(!-e "$W/none.db", 'no empty SQLite file left behind');
}

# ==== ca create ==============================================================
my ($CA, $CAKEY) = ("$W/ca.pem", "$W/ca.key");
{
    my $r = adm_ok('ca create (RSA)', 'ca', 'create', '--cert', $CA, '--key', $CAKEY,
                   '--subject', 'CN=scepadm Test Root,O=Example,C=DE', '--rsa', 2048,
                   '--days', 30);
    like($r->{out}, qr/^thumbprint:\s+[0-9A-F]{8}( [0-9A-F]{8}){3}$/m,
         'ca create prints the thumbprint');
    is(mode_of($CAKEY), '0600', 'the CA key is mode 0600');
    my $t = x509_text($CA);
    like($t, qr/Subject: CN=scepadm Test Root,O=Example,C=DE/, 'the subject as given (RFC 2253)');
    like($t, qr/Issuer: CN=scepadm Test Root,O=Example,C=DE/, 'self-signed');
    like($t, qr/Basic Constraints: critical\s+CA:TRUE/, 'basicConstraints critical CA:TRUE');
    like($t, qr/Key Usage: critical\s+Certificate Sign, CRL Sign/, 'keyUsage keyCertSign, cRLSign');
    like($t, qr/Public-Key: \(2048 bit\)/, 'RSA 2048 as asked');
    like($t, qr/Subject Key Identifier/, 'a subjectKeyIdentifier');
    ok(openssl_verify($CA, $CA), 'the certificate verifies against itself');
    my $k = run_cmd(['openssl', 'pkey', '-in', $CAKEY, '-pubout'], timeout => 30);
    my $c = run_cmd(['openssl', 'x509', '-in', $CA, '-noout', '-pubkey'], timeout => 30);
    is($k->{out}, $c->{out}, 'the key belongs to the certificate');

    $r = adm('ca', 'create', '--cert', $CA, '--key', $CAKEY);
    is($r->{rc}, 1, 'ca create does not overwrite: exit 1');
    like($r->{err}, qr/exists \(--force replaces it\)/, 'and says --force would');

    $r = adm_ok('ca create (EC P-384, OpenSSL-style subject)', 'ca', 'create',
                '--cert', "$W/ec.pem", '--key', "$W/ec.key", '--ec', 'P-384',
                '--subject', '/C=DE/O=Example/CN=scepadm EC Root', '--pathlen', 0);
    $t = x509_text("$W/ec.pem");
    like($t, qr/ASN1 OID: secp384r1/, 'EC P-384 key');
    like($t, qr/ecdsa-with-SHA384/, 'signed with SHA-384');
    like($t, qr/Subject: CN=scepadm EC Root,O=Example,C=DE/, '/C=/O=/CN= order kept');
    like($t, qr/CA:TRUE, pathlen:0/, '--pathlen 0');

    # an expired CA, for check below
    adm_ok('ca create (expired, --not-before/--not-after)', 'ca', 'create',
           '--cert', "$W/old.pem", '--key', "$W/old.key",
           '--not-before', '20200101000000Z', '--not-after', '20210101000000Z');
}

# ==== thumbprint =============================================================
{
    my $r = adm_ok('thumbprint', 'thumbprint', pki('ca.pem'));
    my $f = run_cmd(['openssl', 'x509', '-noout', '-fingerprint', '-md5', '-in', pki('ca.pem')],
                    timeout => 30);
    my ($hex) = $f->{out} =~ /=([0-9A-F:]+)/;
    $hex =~ s/://g;
    my $want = join ' ', unpack '(A8)*', $hex;
    is($r->{out}, "$want\n", 'MD5 of the DER certificate, four groups of eight');
    # the static admin page (anonymous) shows the same
    my $h = http_get('/certsrv/mscep_admin/?format=json');
    my $d = eval { $json->decode($h->{body}) } || {};
    is($d->{thumbprint}, $want, 'the same as the admin page shows');
}

# ==== ra issue / ra request ==================================================
{
    mkdir "$W/ra";
    my $r = adm_ok('ra issue', 'ra', 'issue', '--ca-cert', $CA, '--ca-key', $CAKEY,
                   '--out-dir', "$W/ra", '--subject', 'CN=TEST-MSCEP-RA,O=Example',
                   '--days', 730);
    for my $f (qw(ra-enc ra-sign)) {
        ok(-s "$W/ra/$f.pem" && -s "$W/ra/$f.key", "ra issue: $f.pem and $f.key");
        is(mode_of("$W/ra/$f.key"), '0600', "$f.key is mode 0600");
        ok(openssl_verify("$W/ra/$f.pem", $CA), "$f.pem verifies against the CA");
    }
    my $enc = x509_text("$W/ra/ra-enc.pem");
    my $sig = x509_text("$W/ra/ra-sign.pem");
    like($enc, qr/Key Usage: critical\s+Key Encipherment/, 'encryption RA: keyEncipherment');
    unlike($enc, qr/Digital Signature/, 'encryption RA: no digitalSignature');
    like($sig, qr/Key Usage: critical\s+Digital Signature/, 'signing RA: digitalSignature');
    like($sig, qr/Extended Key Usage:\s+1\.3\.6\.1\.4\.1\.311\.20\.2\.1/,
         'signing RA: EKU Certificate Request Agent (1.3.6.1.4.1.311.20.2.1)');
    unlike($sig, qr/Key Encipherment/, 'signing RA: no keyEncipherment');
    like($enc, qr/CA:FALSE/, 'RA certificates are end-entity certificates');
    like($enc, qr/Subject: CN=TEST-MSCEP-RA,O=Example/, 'the RA subject as given');
    like($enc, qr/Public-Key: \(2048 bit\)/, 'RA keys are RSA 2048');
    # capped at the CA's end (the CA lives 30 days)
    my $ca_end = run_cmd(['openssl', 'x509', '-noout', '-enddate', '-in', $CA], timeout => 30)->{out};
    my $ra_end = run_cmd(['openssl', 'x509', '-noout', '-enddate', '-in', "$W/ra/ra-enc.pem"],
                         timeout => 30)->{out};
    is($ra_end, $ca_end, 'an RA certificate never outlives its CA');

    mkdir "$W/both";
    adm_ok('ra issue --both', 'ra', 'issue', '--ca-cert', $CA, '--ca-key', $CAKEY,
           '--out-dir', "$W/both", '--both');
    my $both = x509_text("$W/both/ra.pem");
    like($both, qr/Digital Signature, Key Encipherment/, 'one RA: both key usages');
    like($both, qr/Subject: CN=[^\n]*-MSCEP-RA/, 'default subject: HOST-MSCEP-RA, as NDES');

    $r = adm('ra', 'issue', '--ca-cert', $CA, '--ca-key', "$W/ec.key", '--out-dir', "$W/both",
             '--force');
    is($r->{rc}, 1, 'ra issue with a key that is not the CA\'s: exit 1');
    like($r->{err}, qr/does not belong to the CA certificate/, 'and says so');

    mkdir "$W/req";
    adm_ok('ra request', 'ra', 'request', '--out-dir', "$W/req", '--subject', 'CN=REQ-MSCEP-RA');
    my $q = run_cmd(['openssl', 'req', '-noout', '-text', '-verify', '-in', "$W/req/ra-sign.csr"],
                    timeout => 30);
    like($q->{out} . $q->{err}, qr/verify OK/i, 'ra request: the CSR is signed by its key');
    like($q->{out}, qr/Requested Extensions:.*Digital Signature.*1\.3\.6\.1\.4\.1\.311\.20\.2\.1/s,
         'ra request: the CSR asks for the signing RA usages');
}

# ==== check ==================================================================
{
    my $r = adm_ok('check (the test configuration)', 'check', '--config',
                   File::Spec->catfile($TOP, 't', 'conf', 'extra.conf'));
    unlike($r->{out}, qr/^problem:/m, 'no problem in t/conf/extra.conf');

    $r = adm_ok('check (scepadm\'s own PKI)', 'check', '--ca-cert', $CA, '--ca-key', $CAKEY,
                '--ra-enc', "$W/ra/ra-enc.pem", "$W/ra/ra-enc.key",
                '--ra-sign', "$W/ra/ra-sign.pem", "$W/ra/ra-sign.key");
    unlike($r->{out}, qr/^problem:/m, 'no problem');
    my @w = grep { /^warning: / } split /\n/, $r->{out};
    is(scalar @w, 3, 'three warnings: the CA and both RA certificates expire within 30 days')
        or diag($r->{out});
    like($w[0] // '', qr/^warning: --ca-cert: .*expires in 2\d days, on \d{4}-/,
         'each warning says when');
    $r = adm_ok('check --warn-days 7', 'check', '--warn-days', 7, '--ca-cert', $CA,
                '--ca-key', $CAKEY, '--ra-enc', "$W/both/ra.pem", "$W/both/ra.key");
    is($r->{out}, '', 'nothing to say with --warn-days 7');

    # a broken configuration: four problems, one line each
    open my $fh, '>', "$W/broken.conf" or die;
    print $fh <<"EOF";
ServerRoot $W
SCEPCACertificateFile ca.pem
<Location /swapped>
    SetHandler scep
    SCEPCAProvider local ec.key
    SCEPRAEncryption ra/ra-sign.pem ra/ra-sign.key
    SCEPRASigning ra/ra-enc.pem ra/ra-sign.key
</Location>
<Location /old>
    SetHandler scep
    SCEPCACertificateFile old.pem
    SCEPCAProvider local old.key
    SCEPRAEncryption both/ra.pem both/ra.key
</Location>
EOF
    close $fh;
    $r = adm('check', "$W/broken.conf");
    is($r->{rc}, 1, 'check on a broken configuration: exit 1');
    my @problems = grep { /^problem: / } split /\n/, $r->{out};
    like($r->{out}, qr/^problem: \Q$W\E\/broken\.conf:5: SCEPCAProvider local: the key \S+ec\.key does not belong to the CA certificate/m,
         'the CA key that is not the CA\'s, with file and line');
    like($r->{out}, qr/^problem: \S+broken\.conf:6: SCEPRAEncryption: certificate \S+ra-sign\.pem lacks the keyEncipherment key usage/m,
         'the encryption RA without keyEncipherment');
    like($r->{out}, qr/^problem: \S+broken\.conf:7: SCEPRASigning: the key \S+ra-sign\.key does not belong to the certificate/m,
         'the RA pair that does not match');
    like($r->{out}, qr/^problem: \S+broken\.conf:11: SCEPCACertificateFile: certificate \S+old\.pem .* expired on 2021-01-01/m,
         'the expired CA certificate');
    is(scalar @problems, 4, 'four problems, four lines') or diag($r->{out});
    like($r->{err}, qr/check: 4 problems/, 'a summary on stderr');

    # <IfDefine> counts as httpd counts it (Define, and --define for -D)
    open $fh, '>', "$W/ifdefine.conf" or die;
    print $fh "ServerRoot $W\nSCEPCACertificateFile ca.pem\n"
            . "<IfDefine SCEPADM_T>\n    SCEPPasswordKeyFile missing.key\n</IfDefine>\n";
    close $fh;
    $r = adm('check', '--warn-days', 0, "$W/ifdefine.conf");
    is($r->{rc}, 0, 'check: a false <IfDefine> section is not checked') or diag($r->{out});
    $r = adm('check', '--warn-days', 0, '--define', 'SCEPADM_T', "$W/ifdefine.conf");
    is($r->{rc}, 1, 'check --define SCEPADM_T: now it is');
    like($r->{out}, qr/^problem: \S+ifdefine\.conf:4: SCEPPasswordKeyFile: cannot read \S+missing\.key/m,
         'and the missing file is named, with its line');
}

# ==== password issue / list / revoke on a scratch database ==================
my $SDB = "$W/scratch.db";
{
    my $s = run_cmd(['sqlite3', $SDB], stdin => File::Spec->catfile($TOP, 'conf', 'schema-sqlite3.sql'),
                    timeout => 30);
    is($s->{rc}, 0, 'a scratch database from conf/schema-sqlite3.sql');
    spit("$W/pw.key", join('', map { sprintf '%02x', int rand 256 } 1 .. 32) . "\n");
    chmod 0600, "$W/pw.key";
    my @db = ('--dbd', "sqlite3:$SDB");

    my $r = adm_ok('password issue', 'password', 'issue', @db, '--key-file', "$W/pw.key");
    my ($pw) = $r->{out} =~ /^([0-9A-F]{16})$/m;
    ok($pw, 'a password of 16 uppercase hex characters, alone on stdout') or diag($r->{out});
    my $h = Digest::SHA::hmac_sha256_hex($pw // '', slurp("$W/pw.key"));
    my $row = `sqlite3 '$SDB' "SELECT endpoint || '|' || state || '|' || issuer || '|' || (expires - created) FROM scep_password WHERE hash = '$h'"`;
    like($row, qr/^default\|0\|scepadm:\S+\|3600$/,
         'stored as the module stores it: HMAC-SHA256 under the key file, pool default, 60 minutes');
    my $all = `sqlite3 '$SDB' "SELECT group_concat(hash || issuer) FROM scep_password"`;
    unlike($all, qr/\Q$pw\E/, 'the password itself is not in the database') if $pw;

    $r = adm_ok('password issue --json (bound, pool, length, validity)', 'password', 'issue', @db,
                '--key-file', "$W/pw.key", '--json', '--pool', 'phones', '--cn', 'phone-*',
                '--length', 12, '--validity', 5, '--issuer', 'alice');
    my $d = eval { $json->decode($r->{out}) } || {};
    like($d->{password} // '', qr/^[0-9A-F]{24}$/, 'JSON: 12 bytes, 24 hex characters');
    is($d->{validity_minutes}, 5, 'JSON: validity_minutes');
    ok($d->{single_use}, 'JSON: single_use');
    is($d->{pool}, 'phones', 'JSON: pool');
    is($d->{bind_cn}, 'phone-*', 'JSON: bind_cn');
    like($d->{expires} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'JSON: expires, RFC 3339');

    $r = adm_ok('password list --json', 'password', 'list', @db, '--pool', 'phones', '--json');
    $d = eval { $json->decode($r->{out}) } || {};
    is(scalar @{ $d->{passwords} || [] }, 1, 'one outstanding password in pool phones');
    is($d->{passwords}[0]{issuer}, 'alice', 'issued by alice');
    is($d->{passwords}[0]{bind_cn}, 'phone-*', 'bound to phone-*');
    my $id = $d->{passwords}[0]{id};

    $r = adm_ok('password list (table)', 'password', 'list', @db);
    like($r->{out}, qr/^ID\s+ISSUER\s+CREATED\s+EXPIRES\s+BINDING$/m, 'a table with a header');

    # the cache limit, when asked for
    adm_ok('password issue --max 2', 'password', 'issue', @db, '--key-file', "$W/pw.key",
           '--max', 2);
    $r = adm('password', 'issue', @db, '--key-file', "$W/pw.key", '--max', 2);
    is($r->{rc}, 1, 'password issue --max 2 with two outstanding: exit 1');
    like($r->{err}, qr/password cache of pool default is full/, 'the password cache is full');

    $r = adm_ok('password revoke ID', 'password', 'revoke', @db, '--pool', 'phones', $id);
    like($r->{out}, qr/revoked password \Q$id\E of pool phones/, 'revoked by id');
    $r = adm('password', 'revoke', @db, '--pool', 'phones', $id);
    is($r->{rc}, 1, 'revoking it again: exit 1');
    like($r->{err}, qr/not outstanding/, 'it is not outstanding any more');
    $r = adm_ok('password revoke --password', 'password', 'revoke', @db, '--key-file', "$W/pw.key",
                '--password', lc($pw // ''));
    like(`sqlite3 '$SDB' "SELECT state FROM scep_password WHERE hash = '$h'"`, qr/^3$/,
         'revoked by the password itself (typed in lowercase): state 3');
    $r = adm('password', 'revoke', @db, 'abc');
    is($r->{rc}, 64, 'a revoke id that is not a number: exit 64');
}

# ==== the test server: a scepadm password enrolls, a revoked one does not ====
my @TDB = ('--dbd', "sqlite3:$DB", '--key-file', pki('otp.key'), '--pool', 'otp');
my $n = 0;
sub enroll {
    my ($pw, $cn) = @_;
    $n++;
    my $tid = "t80-$$-$n";
    my $mark = log_mark();
    my $r = run_cmd([$client, 'enroll', base_url() . $SCEP, '--key', "$W/k$n.pem",
                     '--out', "$W/c$n.pem", '--cn', $cn, '--tid', $tid,
                     '--challenge', $pw], timeout => 60);
    $r->{cert} = "$W/c$n.pem";
    $r->{log} = wait_log($mark, qr/SCEP0001[23]:[^\n]*transaction \Q$tid\E\b/);
    return $r;
}

my $issued_cert;
{
    my $r = adm_ok('password issue (t/db/scep.db, pool otp)', 'password', 'issue', @TDB);
    my ($pw) = $r->{out} =~ /^([0-9A-F]{16})$/m;
    ok($pw, 'a password for the test server');
    my $e = enroll($pw // '-', "scepadm-$$");
    is($e->{rc}, 0, 'the scepadm password enrolls through /otp/certsrv/mscep')
        or diag("$e->{cmd}\n$e->{out}$e->{err}$e->{log}");
    ok(-s $e->{cert} && openssl_verify($e->{cert}), 'the certificate verifies');
    like($e->{log}, qr/SCEP00013: PKCSReq issued: .*challenge otp/, 'SCEP00013: issued, challenge otp');
    $issued_cert = $e->{cert};

    $e = enroll($pw // '-', "scepadm-again-$$");
    is($e->{rc}, 2, 'the same password a second time: FAILURE');
    like($e->{log}, qr/used already/, 'the log says it was used already');

    $r = adm_ok('password issue (to be revoked)', 'password', 'issue', @TDB, '--json');
    my $d = eval { $json->decode($r->{out}) } || {};
    $r = adm_ok('password list (pool otp)', 'password', 'list', @TDB, '--json');
    my $l = eval { $json->decode($r->{out}) } || {};
    my ($mine) = grep { $_->{expires} eq ($d->{expires} // '') && $_->{issuer} =~ /^scepadm:/ }
                 @{ $l->{passwords} || [] };
    ok($mine, 'password list shows it');
    adm_ok('password revoke (pool otp)', 'password', 'revoke', @TDB, $mine ? $mine->{id} : 0);
    $e = enroll($d->{password} // '-', "scepadm-revoked-$$");
    is($e->{rc}, 2, 'a password revoked by scepadm: FAILURE');
    like($e->{log}, qr/revoked by an administrator/, 'the log says it was revoked');
}

# ==== cert list / revoke: the revocation reaches /crl/ca.crl =================
SKIP: {
    skip 'no certificate was issued', 14 unless $issued_cert && -s $issued_cert;
    my $serial = serial_of($issued_cert);
    my @C = ('--dbd', "sqlite3:$DB", '--ca', pki('ca.pem'));
    my $r = adm_ok('cert list --json', 'cert', 'list', @C, '--json', '--status', 'valid');
    my $d = eval { $json->decode($r->{out}) } || {};
    my ($row) = grep { $_->{serial} eq $serial } @{ $d->{certificates} || [] };
    ok($row, 'cert list shows the certificate just issued');
    is($row && $row->{subject}, "CN=scepadm-$$", 'with its subject');

    my $crl = sub {
        my $h = http_get('/crl/ca.crl');
        return '' unless $h->{status} == 200;
        spit("$W/crl.der", $h->{body});
        my $t = run_cmd(['openssl', 'crl', '-inform', 'DER', '-in', "$W/crl.der", '-noout',
                         '-text'], timeout => 30);
        return $t->{out};
    };
    unlike($crl->(), qr/Serial Number: \Q$serial\E/, 'not on /crl/ca.crl before');

    $r = adm_ok('cert revoke --ca-key', 'cert', 'revoke', @C, $serial, '--reason', 'keyCompromise',
                '--ca-key', pki('ca.key'), '--crl-validity', 24, '--crl-out', "$W/new.crl");
    like($r->{out}, qr/revoked certificate \Q$serial\E .*reason keyCompromise/, 'revoked, reason keyCompromise');
    like($r->{out}, qr/CRL number \d+/, 'and a new CRL made');
    my $v = run_cmd(['openssl', 'crl', '-inform', 'DER', '-in', "$W/new.crl", '-noout', '-verify',
                     '-CAfile', pki('ca.pem')], timeout => 30);
    like($v->{out} . $v->{err}, qr/verify OK/, '--crl-out: the CRL verifies against the CA');

    # each child re-reads the stored CRL at most every 10 seconds
    my $text = '';
    for (1 .. 30) {
        $text = $crl->();
        last if $text =~ /Serial Number: \Q$serial\E/;
        sleep 1;
    }
    like($text, qr/Serial Number: \Q$serial\E\s+Revocation Date:[^\n]*\n\s+CRL entry extensions:\s+X509v3 CRL Reason Code:\s+Key Compromise/,
         'the certificate revoked by scepadm is on /crl/ca.crl, reason keyCompromise');

    $r = adm_ok('cert list --status revoked', 'cert', 'list', @C, '--status', 'revoked');
    like($r->{out}, qr/^\Q$serial\E\s+revoked/m, 'listed as revoked');

    # without the CA key: the module publishes the CRL at its next reading
    my $pw = adm('password', 'issue', @TDB, '--quiet')->{out};
    chomp $pw;
    my $e = enroll($pw, "scepadm-nokey-$$");
    is($e->{rc}, 0, 'another certificate') or diag("$e->{cmd}\n$e->{out}$e->{err}$e->{log}");
    my $s2 = serial_of($e->{cert}) // 'none';
    $r = adm_ok('cert revoke without --ca-key', 'cert', 'revoke', @C, $s2);
    like($r->{err}, qr/no --ca-key/, 'it says the module will publish the CRL');
    for (1 .. 30) {
        $text = $crl->();
        last if $text =~ /Serial Number: \Q$s2\E/;
        sleep 1;
    }
    like($text, qr/Serial Number: \Q$s2\E/,
         'a certificate revoked without the CA key is on /crl/ca.crl too');
}
{
    my $r = adm('cert', 'revoke', '--dbd', "sqlite3:$DB", '--ca', pki('ca.pem'), 'DEADBEEF0001');
    is($r->{rc}, 1, 'cert revoke of an unknown serial: exit 1');
    like($r->{err}, qr/no certificate with serial DEADBEEF0001/, 'and says so');
}

done_testing();
