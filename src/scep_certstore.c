/* Licensed under the Apache License, Version 2.0.
 *
 * The certificate store and CRLs (CORE: APR, apr_dbd, OpenSSL; no httpd).
 */
#include <stdlib.h>
#include <string.h>

#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "scep_certstore.h"
#include "scep_pki.h"

/* Portable SQL only (apr_dbd turns %s, %d, %lld into each driver's
 * placeholder: typed, which PostgreSQL needs for the integer columns);
 * arguments go as text.  The column lists of the selects are fixed: see
 * cert_row(). */
#define CERT_LIST_MAX   1000
#define CERT_LIST_MAX_S "1000"

#define CERT_COLS "serial, subject, not_before, not_after, status, " \
                  "revoked_at, reason, transaction_id, profile"

const scep_store_stmt_t scep_certstore_statements[] = {
    { "scep_cert_insert",
      "INSERT INTO scep_certificate (issuer_hash, serial, subject, "
      "not_before, not_after, der, transaction_id, profile, status) "
      "VALUES (%s, %s, %s, %lld, %lld, %s, %s, %s, 0)" },
    { "scep_cert_get",
      "SELECT " CERT_COLS ", der FROM scep_certificate "
      "WHERE issuer_hash = %s AND serial = %s" },
    { "scep_cert_revoke",
      "UPDATE scep_certificate SET status = 1, revoked_at = %lld, "
      "reason = %d WHERE issuer_hash = %s AND serial = %s AND status = 0" },
    /* a constant LIMIT: MySQL refuses a text argument there */
    { "scep_cert_list",
      "SELECT " CERT_COLS " FROM scep_certificate WHERE issuer_hash = %s "
      "ORDER BY not_before DESC, serial DESC LIMIT " CERT_LIST_MAX_S },
    /* revoked and not expired long ago: RFC 5280 5.1.2.6 lets an entry go
     * once it has been on one CRL issued after the certificate expired.
     * No ORDER BY: scep_crl_build() sorts the entries (X509_CRL_sort, by
     * number, not as text), and "ORDER BY serial" made SQLite walk the
     * primary key through every certificate of the issuer rather than the
     * index of the revoked ones (4.7 s instead of 0.4 s for the rows of
     * 100,000 revoked among 1,000,000: bench/scale.sh) */
    { "scep_cert_revoked",
      "SELECT " CERT_COLS " FROM scep_certificate "
      "WHERE issuer_hash = %s AND status = 1 AND not_after > %lld" },
    { "scep_cert_revoked_since",
      "SELECT COUNT(*) FROM scep_certificate "
      "WHERE issuer_hash = %s AND status = 1 AND revoked_at >= %lld" },
    { "scep_crl_get",
      "SELECT crl_number, this_update, next_update, der FROM scep_crl "
      "WHERE issuer_hash = %s" },
    { "scep_crl_insert",
      "INSERT INTO scep_crl (issuer_hash, crl_number, this_update, "
      "next_update, der) VALUES (%s, %lld, %lld, %lld, %s)" },
    /* the WHERE on the old number: of two nodes regenerating at once, one
     * wins and the other re-reads */
    { "scep_crl_update",
      "UPDATE scep_crl SET crl_number = %lld, this_update = %lld, "
      "next_update = %lld, der = %s "
      "WHERE issuer_hash = %s AND crl_number = %lld" },
    { NULL, NULL }
};

/* How often scep_crl_current tries to store a CRL it had to make when
 * other nodes keep storing theirs first. */
#define CRL_WRITE_ATTEMPTS 3

static const char *nz(const char *s)
{
    return (s && *s) ? s : NULL;
}

/* A row of CERT_COLS, and der when the select has it (10th column). */
static scep_cert_row_t *cert_row(const char **v, int with_der, apr_pool_t *p)
{
    scep_cert_row_t *r = apr_pcalloc(p, sizeof(*r));

    r->serial = v[0];
    r->subject = nz(v[1]);
    r->not_before = scep_store_to_i64(v[2]);
    r->not_after = scep_store_to_i64(v[3]);
    r->status = (int)scep_store_to_i64(v[4]);
    r->revoked_at = scep_store_to_i64(v[5]);
    r->reason = nz(v[6]) ? (int)scep_store_to_i64(v[6]) : -1;
    r->transaction_id = nz(v[7]);
    r->profile = nz(v[8]);
    r->der_b64 = with_der ? nz(v[9]) : NULL;
    return r;
}

static const char *b64_encode(const unsigned char *der, apr_size_t len,
                              apr_pool_t *p)
{
    char *out = apr_palloc(p, apr_base64_encode_len((int)len));

    apr_base64_encode(out, (const char *)der, (int)len);
    return out;
}

static apr_status_t b64_decode(const unsigned char **der, apr_size_t *len,
                               const char *b64, apr_pool_t *p)
{
    unsigned char *out;
    int n;

    if (b64 == NULL || *b64 == '\0') {
        return APR_EINVAL;
    }
    out = apr_palloc(p, apr_base64_decode_len(b64));
    n = apr_base64_decode_binary(out, b64);
    if (n <= 0) {
        return APR_EINVAL;
    }
    *der = out;
    *len = (apr_size_t)n;
    return APR_SUCCESS;
}

/* ---- names, serials, reasons ------------------------------------------ */

const char *scep_issuer_hash(const X509_NAME *issuer, apr_pool_t *p)
{
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    int n = issuer ? i2d_X509_NAME(issuer, &der) : -1;
    char *hex;

    if (n <= 0 || !EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(),
                              NULL)) {
        OPENSSL_free(der);
        ERR_clear_error();
        return NULL;
    }
    OPENSSL_free(der);
    hex = apr_palloc(p, mdlen * 2 + 1);
    for (i = 0; i < mdlen; i++) {
        apr_snprintf(hex + i * 2, 3, "%02x", md[i]);
    }
    return hex;
}

const char *scep_serial_normalize(const char *hex, apr_pool_t *p)
{
    BIGNUM *bn = NULL;
    const char *s = hex, *out = NULL;
    char *h;
    int n;

    if (s == NULL) {
        return NULL;
    }
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
    }
    /* up to 20 octets (RFC 5280), colons as openssl prints them allowed */
    h = apr_pstrdup(p, s);
    for (n = 0; *s; s++) {
        if (*s == ':') {
            continue;
        }
        if (!apr_isxdigit(*s) || n >= 64) {
            return NULL;
        }
        h[n++] = *s;
    }
    h[n] = '\0';
    if (n == 0 || BN_hex2bn(&bn, h) != n) {
        BN_free(bn);
        return NULL;
    }
    if ((h = BN_bn2hex(bn)) != NULL) {
        out = apr_pstrdup(p, h);
        OPENSSL_free(h);
    }
    BN_free(bn);
    return out;
}

static const char *const reason_names[] = {
    "unspecified",            /* 0 */
    "keyCompromise",          /* 1 */
    "cACompromise",           /* 2 */
    "affiliationChanged",     /* 3 */
    "superseded",             /* 4 */
    "cessationOfOperation",   /* 5 */
    "certificateHold",        /* 6 */
    NULL,                     /* 7 is not used */
    "removeFromCRL",          /* 8: delta CRLs only */
    "privilegeWithdrawn",     /* 9 */
    "aACompromise"            /* 10 */
};

#define REASON_MAX 10

const char *scep_crl_reason_name(int reason)
{
    if (reason < 0) {
        return "none";
    }
    if (reason > REASON_MAX || reason_names[reason] == NULL) {
        return "unknown";
    }
    return reason_names[reason];
}

int scep_crl_reason_parse(const char *s)
{
    char *end;
    long v;
    int i;

    if (s == NULL || *s == '\0') {
        return -1;
    }
    for (i = 0; i <= REASON_MAX; i++) {
        if (reason_names[i] && !strcasecmp(s, reason_names[i])) {
            v = i;
            goto check;
        }
    }
    v = strtol(s, &end, 10);
    if (*end || end == s) {
        return -1;
    }
check:
    /* 7 does not exist, removeFromCRL only in delta CRLs */
    if (v < 0 || v > REASON_MAX || v == 7 || v == 8) {
        return -1;
    }
    return (int)v;
}

/* ---- certificates ----------------------------------------------------- */

static apr_int64_t asn1_time_unix(const ASN1_TIME *t)
{
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0, secs = 0;
    int ok = epoch && t && ASN1_TIME_diff(&days, &secs, epoch, t);

    ASN1_TIME_free(epoch);
    return ok ? (apr_int64_t)days * 86400 + secs : 0;
}

static apr_status_t cert_get(scep_db_t *db, const char *ihash,
                             const char *serial, scep_cert_row_t **row,
                             const char **why, apr_pool_t *p)
{
    const char *args[2];
    apr_array_header_t *rows;
    apr_status_t rv;

    *row = NULL;
    args[0] = ihash;
    args[1] = serial;
    rv = scep_store_select(db, "scep_cert_get", &rows, why, p, 2, args);
    if (rv == APR_SUCCESS && rows->nelts > 0) {
        *row = cert_row(APR_ARRAY_IDX(rows, 0, const char **), 1, p);
    }
    return rv;
}

apr_status_t scep_cert_record(scep_db_t *db, X509 *cert, const char *tid,
                              const char *profile, const char **why,
                              apr_pool_t *p)
{
    const char *args[8], *w2 = NULL;
    const unsigned char *der;
    apr_size_t len;
    scep_cert_row_t *row = NULL;
    apr_status_t rv;
    int n = 0;

    if (cert == NULL
        || scep_cert_der(&der, &len, cert, p) != APR_SUCCESS
        || (args[0] = scep_issuer_hash(X509_get_issuer_name(cert), p))
           == NULL) {
        *why = "record: not an encodable certificate";
        return APR_EINVAL;
    }
    args[1] = scep_serial_str(X509_get0_serialNumber(cert), p);
    args[2] = scep_name_str(X509_get_subject_name(cert), p);
    args[3] = scep_store_i64(asn1_time_unix(X509_get0_notBefore(cert)), p);
    args[4] = scep_store_i64(asn1_time_unix(X509_get0_notAfter(cert)), p);
    args[5] = b64_encode(der, len, p);
    args[6] = nz(tid);
    args[7] = nz(profile);
    rv = scep_store_exec(db, "scep_cert_insert", &n, why, p, 8, args);
    if (rv == APR_SUCCESS && n == 1) {
        return APR_SUCCESS;
    }
    /* a retry: the row is there already, which is what we wanted, unless
     * it holds another certificate with the same serial */
    if (cert_get(db, args[0], args[1], &row, &w2, p) == APR_SUCCESS && row) {
        if (row->der_b64 && strcmp(row->der_b64, args[5])) {
            *why = apr_psprintf(p, "record: serial %s of %s is already "
                                "recorded for another certificate (%s)",
                                args[1], args[2],
                                row->subject ? row->subject : "-");
            return APR_EEXIST;
        }
        *why = NULL;
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        *why = apr_psprintf(p, "record: no row inserted for serial %s",
                            args[1]);
        return APR_EGENERAL;
    }
    return rv;
}

apr_status_t scep_cert_lookup(scep_db_t *db, const X509_NAME *issuer,
                              const ASN1_INTEGER *serial,
                              scep_cert_row_t **row, const char **why,
                              apr_pool_t *p)
{
    const char *ihash = scep_issuer_hash(issuer, p);

    *row = NULL;
    if (ihash == NULL || serial == NULL) {
        *why = "lookup: no issuer or serial";
        return APR_EINVAL;
    }
    return cert_get(db, ihash, scep_serial_str(serial, p), row, why, p);
}

apr_status_t scep_cert_revoke(scep_db_t *db, const X509_NAME *issuer,
                              const char *serial_hex, int reason,
                              apr_int64_t now, int *done, const char **why,
                              apr_pool_t *p)
{
    const char *args[4];
    apr_status_t rv;
    int n = 0;

    *done = 0;
    args[2] = scep_issuer_hash(issuer, p);
    args[3] = scep_serial_normalize(serial_hex, p);
    if (args[2] == NULL || args[3] == NULL) {
        *why = apr_psprintf(p, "revoke: '%s' is not a hex serial number",
                            serial_hex ? serial_hex : "");
        return APR_EINVAL;
    }
    if (reason != -1 && scep_crl_reason_parse(scep_store_i64(reason, p)) != reason) {
        *why = apr_psprintf(p, "revoke: %d is not a CRLReason code (0-6, 9, "
                            "10)", reason);
        return APR_EINVAL;
    }
    args[0] = scep_store_i64(now, p);
    args[1] = reason >= 0 ? scep_store_i64(reason, p) : NULL;
    rv = scep_store_exec(db, "scep_cert_revoke", &n, why, p, 4, args);
    *done = rv == APR_SUCCESS && n == 1;
    return rv;
}

static apr_status_t cert_rows(scep_db_t *db, const char *label,
                              int nargs, const char **args,
                              apr_array_header_t **out, const char **why,
                              apr_pool_t *p)
{
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    rv = scep_store_select(db, label, &rows, why, p, nargs, args);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *out = apr_array_make(p, rows->nelts, sizeof(scep_cert_row_t *));
    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(*out, scep_cert_row_t *) =
            cert_row(APR_ARRAY_IDX(rows, i, const char **), 0, p);
    }
    return APR_SUCCESS;
}

apr_status_t scep_cert_list(scep_db_t *db, const X509_NAME *issuer,
                            int limit, apr_array_header_t **rows,
                            const char **why, apr_pool_t *p)
{
    const char *args[1];
    apr_status_t rv;

    args[0] = scep_issuer_hash(issuer, p);
    if (args[0] == NULL) {
        *why = "list: no issuer";
        return APR_EINVAL;
    }
    rv = cert_rows(db, "scep_cert_list", 1, args, rows, why, p);
    if (rv == APR_SUCCESS && limit > 0 && (*rows)->nelts > limit) {
        (*rows)->nelts = limit;
    }
    return rv;
}

/* ---- CRLs ------------------------------------------------------------- */

/* keyIdentifier of the CA: its subjectKeyIdentifier, else the SHA-1 of its
 * public key (RFC 5280 4.2.1.2 method 1, what OpenSSL's "hash" makes). */
static ASN1_OCTET_STRING *ca_key_id(X509 *ca)
{
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
    ASN1_OCTET_STRING *id;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (ski) {
        return ASN1_OCTET_STRING_dup(ski);
    }
    if (!X509_pubkey_digest(ca, EVP_sha1(), md, &n)
        || (id = ASN1_OCTET_STRING_new()) == NULL) {
        return NULL;
    }
    if (!ASN1_OCTET_STRING_set(id, md, (int)n)) {
        ASN1_OCTET_STRING_free(id);
        return NULL;
    }
    return id;
}

static int crl_set_time(X509_CRL *crl, int last, apr_int64_t t)
{
    ASN1_TIME *tm = ASN1_TIME_set(NULL, (time_t)t);
    int ok = tm && (last ? X509_CRL_set1_lastUpdate(crl, tm)
                         : X509_CRL_set1_nextUpdate(crl, tm));

    ASN1_TIME_free(tm);
    return ok;
}

static int crl_add_revoked(X509_CRL *crl, const scep_cert_row_t *row)
{
    X509_REVOKED *rev = X509_REVOKED_new();
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial = NULL;
    ASN1_TIME *when = NULL;
    ASN1_ENUMERATED *reason = NULL;
    int ok = 0;

    if (rev == NULL || row->serial == NULL || !BN_hex2bn(&bn, row->serial)
        || (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL
        || !X509_REVOKED_set_serialNumber(rev, serial)
        || (when = ASN1_TIME_set(NULL, (time_t)row->revoked_at)) == NULL
        || !X509_REVOKED_set_revocationDate(rev, when)) {
        goto leave;
    }
    /* RFC 5280 5.3.1: absent rather than unspecified (0) */
    if (row->reason > 0) {
        if ((reason = ASN1_ENUMERATED_new()) == NULL
            || !ASN1_ENUMERATED_set(reason, row->reason)
            || !X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, reason, 0,
                                          0)) {
            goto leave;
        }
    }
    if (!X509_CRL_add0_revoked(crl, rev)) {
        goto leave;
    }
    rev = NULL;
    ok = 1;
leave:
    X509_REVOKED_free(rev);
    BN_free(bn);
    ASN1_INTEGER_free(serial);
    ASN1_TIME_free(when);
    ASN1_ENUMERATED_free(reason);
    return ok;
}

apr_status_t scep_crl_build(X509 *ca, EVP_PKEY *key,
                            const apr_array_header_t *revoked,
                            apr_int64_t crl_number, apr_int64_t this_update,
                            apr_int64_t next_update,
                            const unsigned char **der, apr_size_t *len,
                            const char **why, apr_pool_t *p)
{
    X509_CRL *crl = NULL;
    AUTHORITY_KEYID *akid = NULL;
    ASN1_INTEGER *num = NULL;
    const EVP_MD *md = EVP_sha256();
    unsigned char *buf, *q;
    apr_status_t rv = APR_EGENERAL;
    int i, n, mdnid = NID_undef;

    *der = NULL;
    *len = 0;
    if (ca == NULL || key == NULL) {
        *why = "CRL: no CA certificate or key";
        return APR_EINVAL;
    }
    if (!scep_cert_has_ku(ca, KU_CRL_SIGN)) {
        *why = apr_psprintf(p, "CRL: the CA certificate %s lacks the cRLSign "
                            "key usage (relying parties would reject its "
                            "CRLs)",
                            scep_name_str(X509_get_subject_name(ca), p));
        return APR_EINVAL;
    }
    if (!scep_key_matches_cert(key, ca)) {
        *why = apr_psprintf(p, "CRL: the CA key does not match the CA "
                            "certificate %s",
                            scep_name_str(X509_get_subject_name(ca), p));
        return APR_EINVAL;
    }
    if (crl_number < 1 || next_update <= this_update) {
        *why = "CRL: bad number or dates";
        return APR_EINVAL;
    }
    /* Ed25519 and the like sign without a separate digest */
    if (EVP_PKEY_get_default_digest_nid(key, &mdnid) == 2
        && mdnid == NID_undef) {
        md = NULL;
    }
    ERR_clear_error();
    if ((crl = X509_CRL_new()) == NULL
        || !X509_CRL_set_version(crl, X509_CRL_VERSION_2)
        || !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca))
        || !crl_set_time(crl, 1, this_update)
        || !crl_set_time(crl, 0, next_update)) {
        goto ssl_fail;
    }
    for (i = 0; revoked && i < revoked->nelts; i++) {
        const scep_cert_row_t *row = APR_ARRAY_IDX(revoked, i,
                                                   scep_cert_row_t *);
        if (!crl_add_revoked(crl, row)) {
            *why = apr_psprintf(p, "CRL: cannot add serial %s: %s",
                                row->serial ? row->serial : "(none)",
                                scep_ssl_errors(p));
            goto leave;
        }
    }
    if (!X509_CRL_sort(crl)) {
        goto ssl_fail;
    }
    if ((akid = AUTHORITY_KEYID_new()) == NULL
        || (akid->keyid = ca_key_id(ca)) == NULL
        || !X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid,
                                  0, 0)
        || (num = ASN1_INTEGER_new()) == NULL
        || !ASN1_INTEGER_set_int64(num, crl_number)
        || !X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0)) {
        goto ssl_fail;
    }
    if (X509_CRL_sign(crl, key, md) <= 0) {
        goto ssl_fail;
    }
    if ((n = i2d_X509_CRL(crl, NULL)) <= 0) {
        goto ssl_fail;
    }
    buf = q = apr_palloc(p, (apr_size_t)n);
    i2d_X509_CRL(crl, &q);
    *der = buf;
    *len = (apr_size_t)n;
    rv = APR_SUCCESS;
    goto leave;

ssl_fail:
    *why = apr_psprintf(p, "CRL: %s", scep_ssl_errors(p));
leave:
    X509_CRL_free(crl);
    AUTHORITY_KEYID_free(akid);
    ASN1_INTEGER_free(num);
    ERR_clear_error();
    return rv;
}

apr_status_t scep_crl_info(const unsigned char *der, apr_size_t len,
                           X509 *ca, scep_crl_info_t *info, const char **why,
                           apr_pool_t *p)
{
    const unsigned char *q = der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &q, (long)len);
    ASN1_INTEGER *num = NULL;
    EVP_PKEY *pub;
    apr_status_t rv = APR_EINVAL;
    int64_t v = 0;

    memset(info, 0, sizeof(*info));
    if (crl == NULL || q != der + len) {
        *why = apr_psprintf(p, "not a DER CRL: %s", scep_ssl_errors(p));
        goto leave;
    }
    info->this_update = asn1_time_unix(X509_CRL_get0_lastUpdate(crl));
    info->next_update = X509_CRL_get0_nextUpdate(crl)
                        ? asn1_time_unix(X509_CRL_get0_nextUpdate(crl)) : 0;
    num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    if (num && ASN1_INTEGER_get_int64(&v, num)) {
        info->crl_number = v;
    }
    info->entries = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl));
    if (info->entries < 0) {
        info->entries = 0;
    }
    if (ca) {
        if (X509_NAME_cmp(X509_CRL_get_issuer(crl),
                          X509_get_subject_name(ca)) != 0) {
            *why = "the CRL is not issued by this CA (issuer name)";
            goto leave;
        }
        if ((pub = X509_get0_pubkey(ca)) == NULL
            || X509_CRL_verify(crl, pub) != 1) {
            *why = "the CRL's signature does not verify with this CA's key";
            goto leave;
        }
    }
    rv = APR_SUCCESS;
leave:
    ASN1_INTEGER_free(num);
    X509_CRL_free(crl);
    ERR_clear_error();
    return rv;
}

typedef struct {
    apr_int64_t crl_number;
    apr_int64_t this_update;
    apr_int64_t next_update;
    const char *der_b64;
} crl_row_t;

static apr_status_t crl_row_get(scep_db_t *db, const char *ihash,
                                crl_row_t **row, const char **why,
                                apr_pool_t *p)
{
    const char *args[1];
    apr_array_header_t *rows;
    apr_status_t rv;
    const char **v;

    *row = NULL;
    args[0] = ihash;
    rv = scep_store_select(db, "scep_crl_get", &rows, why, p, 1, args);
    if (rv == APR_SUCCESS && rows->nelts > 0) {
        v = APR_ARRAY_IDX(rows, 0, const char **);
        *row = apr_pcalloc(p, sizeof(crl_row_t));
        (*row)->crl_number = scep_store_to_i64(v[0]);
        (*row)->this_update = scep_store_to_i64(v[1]);
        (*row)->next_update = scep_store_to_i64(v[2]);
        (*row)->der_b64 = v[3];
    }
    return rv;
}

/* Was a certificate of the issuer revoked since the stored CRL was made?
 * (A revocation from a section that cannot sign a CRL, or from another
 * node, is then published by the next reader that can.)  On a store
 * error: no, the stored CRL stays in use. */
static int revoked_since(scep_db_t *db, const char *ihash,
                         apr_int64_t this_update, apr_pool_t *p)
{
    const char *args[2], *why = NULL;
    apr_int64_t n = 0;

    args[0] = ihash;
    args[1] = scep_store_i64(this_update, p);
    return scep_store_count(db, "scep_cert_revoked_since", &n, &why, p, 2,
                            args) == APR_SUCCESS && n > 0;
}

apr_status_t scep_crl_current(scep_db_t *db, X509 *ca, EVP_PKEY *key,
                              apr_int64_t validity, int force,
                              apr_int64_t now, const unsigned char **der,
                              apr_size_t *len, const char **why,
                              apr_pool_t *p)
{
    const char *ihash, *args[6], *w2 = NULL;
    const unsigned char *d;
    apr_size_t l;
    apr_array_header_t *revoked;
    crl_row_t *row;
    scep_crl_info_t info;
    apr_status_t rv, insert_failed = APR_SUCCESS;
    int attempt, n;

    *der = NULL;
    *len = 0;
    if (ca == NULL || validity <= 0
        || (ihash = scep_issuer_hash(X509_get_subject_name(ca), p)) == NULL) {
        *why = "CRL: no CA certificate or no validity";
        return APR_EINVAL;
    }
    for (attempt = 0; attempt < CRL_WRITE_ATTEMPTS; attempt++) {
        if ((rv = crl_row_get(db, ihash, &row, why, p)) != APR_SUCCESS) {
            return rv;
        }
        if (row == NULL && insert_failed) {
            /* not a lost race: the INSERT itself failed */
            *why = apr_psprintf(p, "CRL: cannot store: %s", w2);
            return insert_failed;
        }
        if (row && !force && row->next_update - now >= validity / 4
            && !revoked_since(db, ihash, row->this_update, p)
            && b64_decode(&d, &l, row->der_b64, p) == APR_SUCCESS) {
            /* a CRL signed by a former key of a CA with the same name
             * (renewed CA) is not served: a new one is made */
            if (scep_crl_info(d, l, ca, &info, &w2, p) == APR_SUCCESS) {
                *der = d;
                *len = l;
                return APR_SUCCESS;
            }
        }
        args[0] = ihash;
        args[1] = scep_store_i64(now - validity, p);
        rv = cert_rows(db, "scep_cert_revoked", 2, args, &revoked, why, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        rv = scep_crl_build(ca, key, revoked,
                            row ? row->crl_number + 1 : 1, now,
                            now + validity, &d, &l, why, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        n = 0;
        if (row == NULL) {
            args[1] = "1";
            args[2] = scep_store_i64(now, p);
            args[3] = scep_store_i64(now + validity, p);
            args[4] = b64_encode(d, l, p);
            rv = scep_store_exec(db, "scep_crl_insert", &n, &w2, p, 5, args);
            insert_failed = rv;
        }
        else {
            args[0] = scep_store_i64(row->crl_number + 1, p);
            args[1] = scep_store_i64(now, p);
            args[2] = scep_store_i64(now + validity, p);
            args[3] = b64_encode(d, l, p);
            args[4] = ihash;
            args[5] = scep_store_i64(row->crl_number, p);
            rv = scep_store_exec(db, "scep_crl_update", &n, &w2, p, 6, args);
            if (rv != APR_SUCCESS) {
                *why = w2;
                return rv;
            }
        }
        if (n == 1) {
            *der = d;
            *len = l;
            return APR_SUCCESS;
        }
        /* another node wrote first (an INSERT refused by the primary key,
         * or the number moved on): read theirs; after a revocation, make
         * one more so that it surely holds the revocation */
    }
    *why = apr_psprintf(p, "CRL: other nodes kept writing a new CRL first "
                        "(%d attempts)%s%s", CRL_WRITE_ATTEMPTS,
                        w2 ? ": " : "", w2 ? w2 : "");
    return APR_EAGAIN;
}
