-- mod_scep store, MySQL / MariaDB (InnoDB).
-- mysql scep < schema-mysql.sql


CREATE TABLE IF NOT EXISTS scep_password (
    id             BIGINT PRIMARY KEY AUTO_INCREMENT,
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
) ENGINE=InnoDB;
-- MySQL has no partial indexes: this one covers every row (SQLite and
-- PostgreSQL index only the unused and the reserved passwords).
CREATE INDEX scep_password_live
    ON scep_password (endpoint, state, expires);

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
) ENGINE=InnoDB;
CREATE INDEX scep_transaction_state
    ON scep_transaction (endpoint, state);

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
) ENGINE=InnoDB;
-- The CRL: the revoked certificates of an issuer (scep_cert_revoked) and
-- whether one was revoked after the stored CRL was made
-- (scep_cert_revoked_since, at every read of the CRL).  With only
-- (issuer_hash, status), SQLite read every certificate of the issuer for
-- the first and every revoked one for the second: 4.7 s and 0.2 s with
-- 1,000,000 certificates (bench/scale.sh).  It replaces
-- scep_certificate_status (its prefix); on an older store:
--   DROP INDEX scep_certificate_status ON scep_certificate;
CREATE INDEX scep_certificate_revoked
    ON scep_certificate (issuer_hash, status, revoked_at);

-- The current CRL of each issuer, shared by every node.
CREATE TABLE IF NOT EXISTS scep_crl (
    issuer_hash    VARCHAR(64)  NOT NULL PRIMARY KEY,
    crl_number     BIGINT       NOT NULL,
    this_update    BIGINT       NOT NULL,
    next_update    BIGINT       NOT NULL,
    der            MEDIUMTEXT   NOT NULL          -- base64 DER (a large CRL)
) ENGINE=InnoDB;

-- senderNonces seen recently (replay protection).
CREATE TABLE IF NOT EXISTS scep_nonce (
    nonce          VARCHAR(32)  NOT NULL PRIMARY KEY, -- hex
    seen           BIGINT       NOT NULL
) ENGINE=InnoDB;
CREATE INDEX scep_nonce_seen ON scep_nonce (seen);
