# The SQLite schema upgrades a store in place (docs/store.md, "Upgrading a
# store"): a store made with the indexes of schema version 3, indexes over
# every row, gets the partial indexes of version 4 when
# conf/schema-sqlite3.sql is loaded again, keeps its rows, and the
# statements the module runs by state then search those indexes (the
# counts without reading a table row).  No server needed: a scratch
# database.
use strict;
use warnings;
use Test::More;
use File::Spec ();
use ScepTest;

need_programs('sqlite3');

my $W = tempdir();
my $db = "$W/old.db";
my $schema = File::Spec->catfile(top_dir(), 'conf', 'schema-sqlite3.sql');

sub sql {
    my ($q) = @_;
    my $r = run_cmd(['sqlite3', '-batch', $db, $q], timeout => 30);
    diag("sqlite3: $r->{err}") if $r->{rc};
    return $r->{rc} ? undef : $r->{out};
}
sub load_schema {
    my $r = run_cmd(['sh', '-c', 'sqlite3 -batch "$1" < "$2"', 'sh', $db, $schema],
                    timeout => 30);
    diag("schema: $r->{err}") if $r->{rc} || $r->{err};
    return $r->{rc} == 0 && $r->{err} eq '';
}
sub indexes {
    my $out = sql("SELECT name FROM sqlite_master WHERE type = 'index' "
                  . "AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name") // '';
    return join ' ', split /\n/, $out;
}

# ---- a version 3 store: the tables of today, the indexes of then ----------------
ok(load_schema(), 'the schema loads on a new file');
ok(defined sql(<<'EOF'), 'the indexes made as version 3 made them');
DROP INDEX scep_password_unused;
DROP INDEX scep_password_held;
DROP INDEX scep_transaction_pending;
DROP INDEX scep_certificate_revoked_at;
CREATE INDEX scep_password_live ON scep_password (endpoint, state, expires);
CREATE INDEX scep_transaction_state ON scep_transaction (endpoint, state);
CREATE INDEX scep_certificate_revoked
    ON scep_certificate (issuer_hash, status, revoked_at);
PRAGMA user_version = 3;
INSERT INTO scep_password (hash, endpoint, created, expires, issuer, state)
    VALUES ('H1', 'pool', 1, 4000000000, 'admin', 0),
           ('H2', 'pool', 1, 4000000000, 'admin', 2);
INSERT INTO scep_certificate (issuer_hash, serial, not_before, not_after, der,
                              status, revoked_at, reason)
    VALUES ('I', '01', 1, 4000000000, 'x', 1, 5, 1),
           ('I', '02', 1, 4000000000, 'x', 0, NULL, NULL);
EOF
is(indexes(), 'scep_certificate_revoked scep_nonce_seen scep_password_live '
   . 'scep_transaction_state', 'version 3: indexes over every row');

# ---- loaded again ------------------------------------------------------------------
ok(load_schema(), 'the schema loads again on the version 3 store');
is(indexes(), 'scep_certificate_revoked_at scep_nonce_seen scep_password_held '
   . 'scep_password_unused scep_transaction_pending',
   'the old indexes are gone, the partial ones are there');
like(sql('PRAGMA user_version') // '', qr/^4$/m, 'user_version 4');
is(sql("SELECT COUNT(*) FROM scep_password") // '', "2\n", 'the passwords kept');
is(sql("SELECT COUNT(*) FROM scep_password WHERE endpoint = 'pool' AND state = 0 "
       . "AND expires > 2") // '', "1\n", 'one unused password counted');
is(sql("SELECT serial FROM scep_certificate WHERE issuer_hash = 'I' AND status = 1 "
       . "AND not_after > 2") // '', "01\n", 'the revoked certificate found');
ok(load_schema(), 'and a third time: nothing to do');

# ---- the plans of the statements that look for rows by state ------------------------
my %plan = (
    'scep_pw_count' => ["SELECT COUNT(*) FROM scep_password WHERE endpoint = 'p' "
                        . "AND state = 0 AND expires > 1",
                        qr/USING COVERING INDEX scep_password_unused/],
    'scep_pw_settle' => ["UPDATE scep_password SET state = 2, used_at = 1 "
                         . "WHERE endpoint = 'p' AND state = 1 AND transaction_id = 'T'",
                         qr/USING INDEX scep_password_held/],
    'scep_tx_pending' => ["SELECT transaction_id FROM scep_transaction WHERE endpoint = 'p' "
                          . "AND state = 0 AND csr IS NOT NULL AND ca_ref IS NULL "
                          . "ORDER BY created, transaction_id",
                          qr/USING INDEX scep_transaction_pending/],
    'scep_cert_revoked_since' => ["SELECT COUNT(*) FROM scep_certificate "
                                  . "WHERE issuer_hash = 'I' AND status = 1 "
                                  . "AND revoked_at >= 1",
                                  qr/USING COVERING INDEX scep_certificate_revoked_at/],
);
for my $name (sort keys %plan) {
    my ($q, $want) = @{ $plan{$name} };
    like(sql("EXPLAIN QUERY PLAN $q") // '', $want, "$name searches the partial index");
}

done_testing();
