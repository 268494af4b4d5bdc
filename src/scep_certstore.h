/* Licensed under the Apache License, Version 2.0.
 *
 * The certificate store and CRLs (CORE: APR, apr_dbd, OpenSSL): every
 * certificate issued through mod_scep is recorded (GetCert, renewal checks,
 * revocation), and the local CA's CRL is generated from it, kept in SQL so
 * that every farm node serves the same one, and regenerated on revocation
 * and before nextUpdate.  Tables: scep_certificate, scep_crl (conf/).
 */
#ifndef SCEP_CERTSTORE_H
#define SCEP_CERTSTORE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <openssl/x509.h>

#include "mod_scep.h"
#include "scep_store.h"

/** The statements of this file, prepared like scep_store_statements. */
extern const scep_store_stmt_t scep_certstore_statements[];

#define SCEP_CERT_VALID    0
#define SCEP_CERT_REVOKED  1

typedef struct {
    const char *serial;          /* uppercase hex */
    const char *subject;         /* RFC 2253 */
    apr_int64_t not_before;
    apr_int64_t not_after;
    int status;                  /* SCEP_CERT_* */
    apr_int64_t revoked_at;
    int reason;                  /* CRLReason, -1 none */
    const char *der_b64;
    const char *transaction_id;
    const char *profile;
} scep_cert_row_t;

/** Hex SHA-256 of the DER of an issuer name: the store's issuer key. */
const char *scep_issuer_hash(const X509_NAME *issuer, apr_pool_t *p);

/** A serial number typed by a person ("0x1a", "1A:2B", "1a2b") as the store
 *  keeps it (scep_serial_str: uppercase, whole octets); NULL if not hex. */
const char *scep_serial_normalize(const char *hex, apr_pool_t *p);

/** RFC 5280 CRLReason name of a code ("keyCompromise"); "none" for -1. */
const char *scep_crl_reason_name(int reason);

/** A CRLReason from a number or a name (any case); -1 when it is neither,
 *  or 7 (unused) or 8 (removeFromCRL, delta CRLs only). */
int scep_crl_reason_parse(const char *s);

/** Record an issued certificate (idempotent on issuer + serial). */
apr_status_t scep_cert_record(scep_db_t *db, X509 *cert, const char *tid,
                              const char *profile, const char **why,
                              apr_pool_t *p);

/** A certificate by issuer and serial; *row NULL when unknown. */
apr_status_t scep_cert_lookup(scep_db_t *db, const X509_NAME *issuer,
                              const ASN1_INTEGER *serial,
                              scep_cert_row_t **row, const char **why,
                              apr_pool_t *p);

/** Revoke by issuer and serial (hex); *done 1 when it was valid before. */
apr_status_t scep_cert_revoke(scep_db_t *db, const X509_NAME *issuer,
                              const char *serial_hex, int reason,
                              apr_int64_t now, int *done, const char **why,
                              apr_pool_t *p);

/** Certificates of an issuer, newest first, at most @a limit (and at
 *  most 1000). */
apr_status_t scep_cert_list(scep_db_t *db, const X509_NAME *issuer,
                            int limit, apr_array_header_t **rows,
                            const char **why, apr_pool_t *p);

/**
 * The current CRL of @a ca as DER: the stored one, or a new one signed by
 * @a key when there is none, @a force is set (after a revocation), or its
 * nextUpdate is less than a quarter of @a validity away.  A new CRL gets the
 * next cRLNumber, thisUpdate now, nextUpdate now + @a validity seconds.
 */
apr_status_t scep_crl_current(scep_db_t *db, X509 *ca, EVP_PKEY *key,
                              apr_int64_t validity, int force,
                              apr_int64_t now, const unsigned char **der,
                              apr_size_t *len, const char **why,
                              apr_pool_t *p);

/** Build a CRL (no store): the building block of scep_crl_current. */
apr_status_t scep_crl_build(X509 *ca, EVP_PKEY *key,
                            const apr_array_header_t *revoked, /* scep_cert_row_t* */
                            apr_int64_t crl_number, apr_int64_t this_update,
                            apr_int64_t next_update,
                            const unsigned char **der, apr_size_t *len,
                            const char **why, apr_pool_t *p);

/** What a CRL says about itself (Unix seconds). */
typedef struct {
    apr_int64_t crl_number;      /* 0 when it has none */
    apr_int64_t this_update;
    apr_int64_t next_update;     /* 0 when it has none */
    int entries;                 /* revoked certificates listed */
} scep_crl_info_t;

/** Read a DER CRL; with @a ca, also check that @a ca issued and signed it
 *  (APR_EINVAL with *why when not). */
apr_status_t scep_crl_info(const unsigned char *der, apr_size_t len,
                           X509 *ca, scep_crl_info_t *info, const char **why,
                           apr_pool_t *p);

#endif /* SCEP_CERTSTORE_H */
