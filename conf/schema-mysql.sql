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
CREATE INDEX scep_password_live
    ON scep_password (endpoint, state, expires);

CREATE TABLE IF NOT EXISTS scep_transaction (
    endpoint       VARCHAR(255) NOT NULL,
    transaction_id VARCHAR(255) NOT NULL,
    req_digest     VARCHAR(64)  NOT NULL,         -- SHA-256 of the CSR, hex
    subject        TEXT,
    state          INTEGER      NOT NULL,         -- 0 pending 1 issued
    certs          TEXT,                          -- base64 degenerate PKCS#7
    serial         VARCHAR(64),
    created        BIGINT       NOT NULL,
    updated        BIGINT       NOT NULL,
    PRIMARY KEY (endpoint, transaction_id)
) ENGINE=InnoDB;
