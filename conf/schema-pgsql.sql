-- mod_scep store, PostgreSQL (the farm database).
-- psql -d scep -f schema-pgsql.sql


CREATE TABLE IF NOT EXISTS scep_password (
    id             BIGSERIAL PRIMARY KEY,
    hash           VARCHAR(64)  NOT NULL UNIQUE,  -- HMAC-SHA256, hex; never the password
    endpoint       VARCHAR(255) NOT NULL,         -- password pool (the <Location>)
    created        BIGINT       NOT NULL,         -- Unix seconds
    expires        BIGINT       NOT NULL,
    issuer         VARCHAR(255) NOT NULL,         -- authenticated admin who asked
    bind_cn        VARCHAR(255),
    bind_san       VARCHAR(255),
    bind_profile   VARCHAR(64),
    state          INTEGER      NOT NULL DEFAULT 0, -- 0 unused 1 reserved 2 used 3 revoked
    reserved_at    BIGINT,
    used_at        BIGINT,
    transaction_id VARCHAR(255)                   -- the enrollment that consumed it
);
-- Partial indexes: only the rows the module looks for by state, the
-- unused passwords (SCEPPasswordMax's count, the admin page's list) and
-- the reserved ones (a retried transaction settling its password).  A
-- password going from unused to used leaves the first and passes through
-- the second within one enrollment; the used and revoked ones, nearly all
-- rows of a store in service, are in neither.  They replace
-- scep_password_live (endpoint, state, expires) over every row: running
-- this file again on an older store upgrades it in place.
DROP INDEX IF EXISTS scep_password_live;
CREATE INDEX IF NOT EXISTS scep_password_unused
    ON scep_password (endpoint, state, expires) WHERE state = 0;
CREATE INDEX IF NOT EXISTS scep_password_held
    ON scep_password (endpoint, transaction_id) WHERE state = 1;

CREATE TABLE IF NOT EXISTS scep_transaction (
    endpoint       VARCHAR(255) NOT NULL,
    transaction_id VARCHAR(255) NOT NULL,
    req_digest     VARCHAR(64)  NOT NULL,         -- SHA-256 of the CSR, hex
    subject        TEXT,
    state          INTEGER      NOT NULL,         -- 0 pending 1 issued 2 rejected
    certs          TEXT,                          -- base64 degenerate PKCS#7
    serial         VARCHAR(64),
    csr            TEXT,                          -- base64 DER, kept while pending
    profile        VARCHAR(64),
    requester      VARCHAR(64),
    decided_by     VARCHAR(255),                  -- admin who approved or rejected
    reason         TEXT,
    ca_ref         TEXT,                          -- CA provider's handle while pending
    created        BIGINT       NOT NULL,
    updated        BIGINT       NOT NULL,
    PRIMARY KEY (endpoint, transaction_id)
);
-- The pending transactions (the admin page's approvals): a partial index,
-- which an issued transaction leaves; replaces scep_transaction_state
-- (endpoint, state) over every row.
DROP INDEX IF EXISTS scep_transaction_state;
CREATE INDEX IF NOT EXISTS scep_transaction_pending
    ON scep_transaction (endpoint) WHERE state = 0;

-- Every certificate issued through mod_scep (GetCert, renewal checks,
-- revocation and the CRL of the local CA).
CREATE TABLE IF NOT EXISTS scep_certificate (
    issuer_hash    VARCHAR(64)  NOT NULL,         -- SHA-256 of the issuer name DER, hex
    serial         VARCHAR(64)  NOT NULL,         -- uppercase hex
    subject        TEXT,
    not_before     BIGINT       NOT NULL,
    not_after      BIGINT       NOT NULL,
    der            TEXT         NOT NULL,         -- base64 DER
    transaction_id VARCHAR(255),
    profile        VARCHAR(64),
    status         INTEGER      NOT NULL DEFAULT 0, -- 0 valid 1 revoked
    revoked_at     BIGINT,
    reason         INTEGER,                       -- RFC 5280 CRLReason
    PRIMARY KEY (issuer_hash, serial)
);
-- The CRL: the revoked certificates of an issuer (scep_cert_revoked) and
-- whether one was revoked after the stored CRL was made
-- (scep_cert_revoked_since, at every read of the CRL).  With only
-- (issuer_hash, status), SQLite read every certificate of the issuer for
-- the first and every revoked one for the second: 4.7 s and 0.2 s with
-- 1,000,000 certificates (bench/scale.sh).
-- A partial index of the revoked ones only: a new certificate (status 0)
-- is not written to it.  It replaces scep_certificate_status and
-- scep_certificate_revoked (issuer_hash, status, ...) over every row:
-- running this file again on an older store upgrades it in place.
DROP INDEX IF EXISTS scep_certificate_status;
DROP INDEX IF EXISTS scep_certificate_revoked;
CREATE INDEX IF NOT EXISTS scep_certificate_revoked_at
    ON scep_certificate (issuer_hash, status, revoked_at) WHERE status = 1;

-- The current CRL of each issuer, shared by every node.
CREATE TABLE IF NOT EXISTS scep_crl (
    issuer_hash    VARCHAR(64)  NOT NULL PRIMARY KEY,
    crl_number     BIGINT       NOT NULL,
    this_update    BIGINT       NOT NULL,
    next_update    BIGINT       NOT NULL,
    der            TEXT         NOT NULL          -- base64 DER
);

-- senderNonces seen recently (replay protection).
CREATE TABLE IF NOT EXISTS scep_nonce (
    nonce          VARCHAR(32)  NOT NULL PRIMARY KEY, -- hex
    seen           BIGINT       NOT NULL
);
CREATE INDEX IF NOT EXISTS scep_nonce_seen ON scep_nonce (seen);
