-- bench/scale-fill.sql: 1,000,000 rows in each of scep_password,
-- scep_transaction and scep_certificate, for bench/scale.sh ("make
-- bench-scale").  Run by sqlite3 on a store that already holds a few real
-- enrollments of the benchmark PKI (made by scale.sh through httpd): their
-- rows give the issuer hash, the certificate and reply sizes and the
-- endpoint, so the filler rows look like the module's own:
--   * one certificate a minute for ~1.9 years (half of them expired now),
--     each with its transaction (issued; 1 % rejected) and the one-time
--     password it consumed (90 % used, 5 % expired unused, 4 % revoked,
--     1 % still live);
--   * 100,000 certificates revoked and not yet expired (on the CRL), and
--     9,480 revoked and expired (off the CRL, RFC 5280 5.1.2.6);
--   * random transaction ids, digests, password hashes and serial numbers
--     inserted in random order, so the indexes are as fragmented as those
--     the module grows.
-- One transaction; about a minute and 4 GB.
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
BEGIN;
CREATE TEMP TABLE tpl AS
    SELECT t.endpoint AS endpoint, t.certs AS certs, t.profile AS profile,
           c.issuer_hash AS issuer_hash, c.der AS der,
           CAST(strftime('%s', 'now') AS INTEGER) AS now
    FROM scep_transaction t JOIN scep_certificate c
         ON c.transaction_id = t.transaction_id
    WHERE t.state = 1
    LIMIT 1;
CREATE TEMP TABLE seq AS
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
                            WHERE i < 1000000)
    SELECT i,
           upper(hex(randomblob(20))) AS tid,
           -- RFC 5280 serials as mod_scep's CA makes them: 20 octets,
           -- positive, normalized uppercase hex without a leading zero
           (1 + abs(random()) % 7) || substr(upper(hex(randomblob(20))), 2)
               AS serial,
           (SELECT now FROM tpl) - (1000000 - i) * 60 AS nb
    FROM n;
INSERT INTO scep_transaction (endpoint, transaction_id, req_digest,
        subject, state, certs, serial, csr, profile, requester, decided_by,
        reason, ca_ref, created, updated)
    SELECT tpl.endpoint, seq.tid, lower(hex(randomblob(32))),
           'CN=scale-' || seq.i,
           CASE WHEN seq.i % 100 = 7 THEN 2 ELSE 1 END,
           CASE WHEN seq.i % 100 = 7 THEN NULL ELSE tpl.certs END,
           CASE WHEN seq.i % 100 = 7 THEN NULL ELSE seq.serial END,
           NULL, tpl.profile, '192.0.2.' || (seq.i % 250 + 1),
           CASE WHEN seq.i % 100 = 7 THEN 'admin' END,
           CASE WHEN seq.i % 100 = 7 THEN 'rejected by the filler' END,
           NULL, seq.nb + 300, seq.nb + 300
    FROM seq, tpl
    ORDER BY random();
INSERT INTO scep_certificate (issuer_hash, serial, subject, not_before,
        not_after, der, transaction_id, profile, status, revoked_at, reason)
    SELECT tpl.issuer_hash, seq.serial, 'CN=scale-' || seq.i, seq.nb,
           seq.nb + 365 * 86400, tpl.der, seq.tid, tpl.profile,
           CASE WHEN (seq.i > 600000 AND seq.i % 4 = 0)
                  OR (seq.i <= 474000 AND seq.i % 50 = 0) THEN 1 ELSE 0 END,
           CASE WHEN (seq.i > 600000 AND seq.i % 4 = 0)
                  OR (seq.i <= 474000 AND seq.i % 50 = 0)
                THEN min(seq.nb + 86400 * (seq.i % 200), tpl.now - 60) END,
           CASE WHEN (seq.i > 600000 AND seq.i % 4 = 0)
                  OR (seq.i <= 474000 AND seq.i % 50 = 0)
                THEN (seq.i / 4) % 6 END
    FROM seq, tpl
    WHERE seq.i % 100 != 7
       OR (seq.i > 600000 AND seq.i % 4 = 0)
    ORDER BY random();
-- the rejected transactions have no certificate: as many again, issued
-- without a transaction row (renewals whose transaction was forgotten)
INSERT INTO scep_certificate (issuer_hash, serial, subject, not_before,
        not_after, der, transaction_id, profile, status)
    SELECT tpl.issuer_hash,
           (1 + abs(random()) % 7) || substr(upper(hex(randomblob(20))), 2),
           'CN=scale-extra-' || seq.i, seq.nb, seq.nb + 365 * 86400,
           tpl.der, NULL, tpl.profile, 0
    FROM seq, tpl
    WHERE seq.i % 100 = 7 AND NOT (seq.i > 600000 AND seq.i % 4 = 0)
    ORDER BY random();
INSERT INTO scep_password (hash, endpoint, created, expires, issuer,
        bind_cn, bind_san, bind_profile, state, reserved_at, used_at,
        transaction_id)
    SELECT lower(hex(randomblob(32))), tpl.endpoint,
           CASE WHEN seq.i % 100 = 99 THEN tpl.now - 600 ELSE seq.nb - 600 END,
           CASE WHEN seq.i % 100 = 99 THEN tpl.now + 86400 ELSE seq.nb + 3000 END,
           'admin',
           CASE WHEN seq.i % 10 = 3 THEN 'scale-' || seq.i END, NULL, NULL,
           CASE WHEN seq.i % 100 < 90 THEN 2
                WHEN seq.i % 100 < 95 THEN 0
                WHEN seq.i % 100 < 99 THEN 3
                ELSE 0 END,
           CASE WHEN seq.i % 100 < 90 THEN seq.nb + 290 END,
           CASE WHEN seq.i % 100 < 90 THEN seq.nb + 300 END,
           CASE WHEN seq.i % 100 < 90 THEN seq.tid END
    FROM seq, tpl
    ORDER BY random();
COMMIT;
-- no ANALYZE: the module never runs it, so the planner works without
-- statistics, as on a real store
PRAGMA wal_checkpoint(TRUNCATE);
