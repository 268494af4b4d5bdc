/* Licensed under the Apache License, Version 2.0.
 *
 * Unit tests of the certificate store and CRLs (scep_certstore.h): the CRL
 * built by scep_crl_build read back and verified, issuer hashes, serial
 * and reason parsing, and the store itself against a temporary SQLite
 * database through apr_dbd (record, lookup, revoke, list, scep_crl_current
 * reusing, regenerating and numbering CRLs), and on the same database the
 * one-time password provider's reservation with the row read before the
 * store lock (scep_otp_prefetch).
 *
 * SCEP_TEST_DBD="pgsql|host=/tmp port=5432 dbname=scratch" (or mysql|...)
 * runs the store tests on that database instead: a SCRATCH one, whose
 * scep_certificate and scep_crl rows are deleted first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <apr_base64.h>
#include <apr_dbd.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "scep_certstore.h"
#include "scep_challenge.h"
#include "scep_pki.h"
#include "scep_store.h"
#include "tap.h"

typedef struct {
    EVP_PKEY *ca_key, *other_key, *leaf_key;
    X509 *ca, *ca_nocrlsign, *ca_renewed, *other_ca;
} test_pki_t;

static test_pki_t pki;

static void make_pki(apr_pool_t *p)
{
    pki.ca_key = scep_tap_rsa_key(p, 2048);
    pki.other_key = scep_tap_rsa_key(p, 2048);
    pki.leaf_key = scep_tap_rsa_key(p, 2048);
    pki.ca = scep_tap_cert(p, "CRL Test CA", pki.ca_key, NULL, NULL, 1,
                           KU_KEY_CERT_SIGN | KU_CRL_SIGN, 3650);
    pki.ca_nocrlsign = scep_tap_cert(p, "No cRLSign CA", pki.ca_key, NULL,
                                     NULL, 1, KU_KEY_CERT_SIGN, 3650);
    /* same name, another key: a renewed CA */
    pki.ca_renewed = scep_tap_cert(p, "CRL Test CA", pki.other_key, NULL,
                                   NULL, 1, KU_KEY_CERT_SIGN | KU_CRL_SIGN,
                                   3650);
    pki.other_ca = scep_tap_cert(p, "Other CA", pki.other_key, NULL, NULL, 1,
                                 KU_KEY_CERT_SIGN | KU_CRL_SIGN, 3650);
}

static scep_cert_row_t *revoked_row(apr_pool_t *p, const char *serial,
                                    apr_int64_t when, int reason)
{
    scep_cert_row_t *r = apr_pcalloc(p, sizeof(*r));

    r->serial = serial;
    r->status = SCEP_CERT_REVOKED;
    r->revoked_at = when;
    r->reason = reason;
    return r;
}

static X509_CRL *parse_crl(const unsigned char *der, apr_size_t len)
{
    const unsigned char *q = der;

    return d2i_X509_CRL(NULL, &q, (long)len);
}

static apr_int64_t asn1_unix(const ASN1_TIME *t)
{
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0, secs = 0;

    ASN1_TIME_diff(&days, &secs, epoch, t);
    ASN1_TIME_free(epoch);
    return (apr_int64_t)days * 86400 + secs;
}

static const char *entry_serial(X509_REVOKED *rev, apr_pool_t *p)
{
    return scep_serial_str(X509_REVOKED_get0_serialNumber(rev), p);
}

static int entry_reason(X509_REVOKED *rev)
{
    int crit = 0;
    ASN1_ENUMERATED *e = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, &crit,
                                                  NULL);
    long v;

    if (e == NULL) {
        return -1;
    }
    v = ASN1_ENUMERATED_get(e);
    ASN1_ENUMERATED_free(e);
    return (int)v;
}

/* ---- scep_crl_build ---------------------------------------------------- */

static void test_build_round_trip(apr_pool_t *p)
{
    apr_array_header_t *rows = apr_array_make(p, 4, sizeof(void *));
    const unsigned char *der = NULL;
    apr_size_t len = 0;
    const char *why = NULL;
    apr_int64_t t0 = 1700000000;
    X509_CRL *crl;
    STACK_OF(X509_REVOKED) *revs;
    ASN1_INTEGER *num;
    AUTHORITY_KEYID *akid;
    const ASN1_OCTET_STRING *ski;
    scep_crl_info_t info;
    int i, crit = -1;

    /* deliberately out of order: the CRL sorts them */
    APR_ARRAY_PUSH(rows, scep_cert_row_t *) =
        revoked_row(p, "7F0011223344556677", t0 - 300, 1);
    APR_ARRAY_PUSH(rows, scep_cert_row_t *) =
        revoked_row(p, "0A1B", t0 - 200, 4);
    APR_ARRAY_PUSH(rows, scep_cert_row_t *) =
        revoked_row(p, "3C", t0 - 100, 0);
    APR_ARRAY_PUSH(rows, scep_cert_row_t *) =
        revoked_row(p, "4D5E", t0 - 50, -1);

    ok(scep_crl_build(pki.ca, pki.ca_key, rows, 7, t0, t0 + 86400, &der,
                      &len, &why, p) == APR_SUCCESS, "build");
    if (der == NULL) {
        skip(14, "no CRL");
        return;
    }
    crl = parse_crl(der, len);
    ok(crl != NULL, "the DER parses as a CRL");
    if (crl == NULL) {
        skip(13, "no CRL");
        return;
    }
    is_int(X509_CRL_get_version(crl), X509_CRL_VERSION_2, "version v2");
    is_int(X509_CRL_verify(crl, X509_get0_pubkey(pki.ca)), 1,
           "signature verifies with the CA key");
    is_int(X509_CRL_verify(crl, X509_get0_pubkey(pki.other_ca)), 0,
           "and not with another key");
    is_int(X509_NAME_cmp(X509_CRL_get_issuer(crl),
                         X509_get_subject_name(pki.ca)), 0,
           "issuer is the CA's subject");
    is_int(X509_CRL_get_signature_nid(crl),
           NID_sha256WithRSAEncryption, "signed with SHA-256");
    is_int(asn1_unix(X509_CRL_get0_lastUpdate(crl)), t0, "thisUpdate");
    is_int(asn1_unix(X509_CRL_get0_nextUpdate(crl)), t0 + 86400,
           "nextUpdate");
    num = X509_CRL_get_ext_d2i(crl, NID_crl_number, &crit, NULL);
    is_int(num ? ASN1_INTEGER_get(num) : -1, 7, "cRLNumber 7, %s",
           crit == 0 ? "not critical" : "CRITICAL");
    ASN1_INTEGER_free(num);
    akid = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL,
                                NULL);
    ski = X509_get0_subject_key_id(pki.ca);
    ok(akid && akid->keyid && ski
       && ASN1_OCTET_STRING_cmp(akid->keyid, ski) == 0,
       "authorityKeyIdentifier is the CA's subjectKeyIdentifier");
    AUTHORITY_KEYID_free(akid);

    revs = X509_CRL_get_REVOKED(crl);
    is_int(sk_X509_REVOKED_num(revs), 4, "four entries");
    {
        /* sorted by serial; reasons: 1, 4, none for 0, none for -1 */
        static const char *const want_serial[] = { "3C", "0A1B", "4D5E",
                                                   "7F0011223344556677" };
        static const int want_reason[] = { -1, 4, -1, 1 };
        static const apr_int64_t want_when[] = { 100, 200, 50, 300 };
        int good = sk_X509_REVOKED_num(revs) == 4;
        for (i = 0; good && i < 4; i++) {
            X509_REVOKED *rev = sk_X509_REVOKED_value(revs, i);
            if (strcmp(entry_serial(rev, p), want_serial[i])
                || entry_reason(rev) != want_reason[i]
                || asn1_unix(X509_REVOKED_get0_revocationDate(rev))
                   != t0 - want_when[i]) {
                diag("entry %d: serial %s reason %d", i,
                     entry_serial(rev, p), entry_reason(rev));
                good = 0;
            }
        }
        ok(good, "serials sorted, dates, CRLReason (absent for "
           "unspecified and none)");
    }
    X509_CRL_free(crl);

    ok(scep_crl_info(der, len, pki.ca, &info, &why, p) == APR_SUCCESS
       && info.crl_number == 7 && info.this_update == t0
       && info.next_update == t0 + 86400 && info.entries == 4,
       "scep_crl_info reads number, dates, entries and verifies");
    ok(scep_crl_info(der, len, pki.ca_renewed, &info, &why, p)
       != APR_SUCCESS, "scep_crl_info: not signed by a renewed CA's key");
}

static void test_build_empty_and_refusals(apr_pool_t *p)
{
    const unsigned char *der = NULL;
    apr_size_t len = 0;
    const char *why = NULL;
    scep_crl_info_t info;
    X509_CRL *crl;

    ok(scep_crl_build(pki.ca, pki.ca_key, NULL, 1, 1000, 2000, &der, &len,
                      &why, p) == APR_SUCCESS, "empty CRL builds");
    crl = der ? parse_crl(der, len) : NULL;
    ok(crl && X509_CRL_get_REVOKED(crl) == NULL
       && X509_CRL_verify(crl, X509_get0_pubkey(pki.ca)) == 1,
       "no revokedCertificates, signature good");
    X509_CRL_free(crl);
    ok(scep_crl_info(der, len, NULL, &info, &why, p) == APR_SUCCESS
       && info.entries == 0 && info.crl_number == 1, "info of an empty CRL");

    why = NULL;
    ok(scep_crl_build(pki.ca_nocrlsign, pki.ca_key, NULL, 1, 1000, 2000,
                      &der, &len, &why, p) != APR_SUCCESS
       && why && strstr(why, "cRLSign"), "refused: CA without cRLSign");
    why = NULL;
    ok(scep_crl_build(pki.ca, pki.other_key, NULL, 1, 1000, 2000, &der,
                      &len, &why, p) != APR_SUCCESS
       && why && strstr(why, "does not match"),
       "refused: key does not match");
    ok(scep_crl_build(pki.ca, pki.ca_key, NULL, 0, 1000, 2000, &der, &len,
                      &why, p) != APR_SUCCESS, "refused: cRLNumber 0");
    ok(scep_crl_build(pki.ca, pki.ca_key, NULL, 1, 2000, 2000, &der, &len,
                      &why, p) != APR_SUCCESS,
       "refused: nextUpdate not after thisUpdate");
    {
        apr_array_header_t *rows = apr_array_make(p, 1, sizeof(void *));
        APR_ARRAY_PUSH(rows, scep_cert_row_t *) =
            revoked_row(p, "XYZ", 1000, 1);
        ok(scep_crl_build(pki.ca, pki.ca_key, rows, 1, 1000, 2000, &der,
                          &len, &why, p) != APR_SUCCESS,
           "refused: a stored serial that is not hex");
    }
    ok(scep_crl_info((const unsigned char *)"junk", 4, NULL, &info, &why, p)
       != APR_SUCCESS, "scep_crl_info: junk refused");
}

/* ---- names, serials, reasons ------------------------------------------ */

static void test_issuer_hash(apr_pool_t *p)
{
    const char *h1 = scep_issuer_hash(X509_get_subject_name(pki.ca), p);
    const char *h2 = scep_issuer_hash(X509_get_subject_name(pki.ca), p);
    X509_NAME *dup = scep_own_name(p, X509_NAME_dup(
                                       X509_get_subject_name(pki.ca)));
    const char *h3 = scep_issuer_hash(dup, p);
    const char *h4 = scep_issuer_hash(X509_get_subject_name(pki.other_ca), p);
    const char *h5 = scep_issuer_hash(X509_get_subject_name(pki.ca_renewed),
                                      p);
    unsigned char md[32];
    unsigned char *der = NULL;
    int n, i;
    char want[65];

    ok(h1 && strlen(h1) == 64, "64 hex digits");
    is_str(h1, h2, "stable");
    is_str(h1, h3, "same for a copy of the name");
    is_str(h1, h5, "same for a renewed CA of the same name");
    ok(h4 && strcmp(h1, h4), "another name, another hash");
    n = i2d_X509_NAME(X509_get_subject_name(pki.ca), &der);
    EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL);
    OPENSSL_free(der);
    for (i = 0; i < 32; i++) {
        snprintf(want + i * 2, 3, "%02x", md[i]);
    }
    is_str(h1, want, "lowercase hex SHA-256 of the name's DER");
    ok(scep_issuer_hash(NULL, p) == NULL, "NULL name: NULL");
}

static void test_serial_and_reason(apr_pool_t *p)
{
    is_str(scep_serial_normalize("1a2b", p), "1A2B", "lowercase");
    is_str(scep_serial_normalize("0x1A2B", p), "1A2B", "0x prefix");
    is_str(scep_serial_normalize("1a:2b:3c", p), "1A2B3C", "colons");
    is_str(scep_serial_normalize("abc", p), "0ABC",
           "whole octets like scep_serial_str");
    is_str(scep_serial_normalize("00001A", p), "1A", "leading zeros");
    ok(scep_serial_normalize("xyz", p) == NULL, "not hex: NULL");
    ok(scep_serial_normalize("", p) == NULL, "empty: NULL");
    ok(scep_serial_normalize("1A 2B", p) == NULL, "space: NULL");
    ok(scep_serial_normalize(apr_psprintf(p, "%065d", 1), p) == NULL,
       "longer than 64 digits: NULL");
    {
        BIGNUM *bn = NULL;
        ASN1_INTEGER *ai;
        BN_hex2bn(&bn, "0ABC");
        ai = BN_to_ASN1_INTEGER(bn, NULL);
        is_str(scep_serial_normalize("abc", p), scep_serial_str(ai, p),
               "agrees with scep_serial_str");
        ASN1_INTEGER_free(ai);
        BN_free(bn);
    }

    is_str(scep_crl_reason_name(1), "keyCompromise", "name of 1");
    is_str(scep_crl_reason_name(6), "certificateHold", "name of 6");
    is_str(scep_crl_reason_name(-1), "none", "name of -1");
    is_str(scep_crl_reason_name(7), "unknown", "name of 7");
    is_int(scep_crl_reason_parse("keycompromise"), 1, "parse a name");
    is_int(scep_crl_reason_parse("superseded"), 4, "parse superseded");
    is_int(scep_crl_reason_parse("0"), 0, "parse 0");
    is_int(scep_crl_reason_parse("10"), 10, "parse 10");
    is_int(scep_crl_reason_parse("7"), -1, "7 refused");
    is_int(scep_crl_reason_parse("8"), -1, "removeFromCRL refused");
    is_int(scep_crl_reason_parse("11"), -1, "11 refused");
    is_int(scep_crl_reason_parse("1x"), -1, "junk refused");
    is_int(scep_crl_reason_parse(""), -1, "empty refused");
}

/* ---- the store, on a temporary SQLite database ------------------------ */

static scep_db_t store_db;
static const char *store_path;
static int store_ok;

static const char *find_schema(const char *driver, apr_pool_t *p)
{
    static const char *const dirs[] = { ".", "..", "../..", NULL };
    const char *dir = getenv("SCEP_SRCDIR"), *f;
    int i;

    if (dir) {
        return apr_psprintf(p, "%s/conf/schema-%s.sql", dir, driver);
    }
    for (i = 0; dirs[i]; i++) {
        f = apr_psprintf(p, "%s/conf/schema-%s.sql", dirs[i], driver);
        if (access(f, R_OK) == 0) {
            return f;
        }
    }
    return NULL;
}

/* Execute the schema file statement by statement (apr_dbd runs one at a
 * time); comments dropped.  The PRAGMA's row is no error. */
static int load_schema(apr_pool_t *p, const char *path)
{
    char *text = NULL, *s, *d, *stmt, *last = NULL;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t n;
    int nrows, bad = 0;

    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, p) != APR_SUCCESS
        || apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS) {
        return 0;
    }
    n = (apr_size_t)fi.size;
    text = apr_palloc(p, n + 1);
    if (apr_file_read_full(f, text, n, &n) != APR_SUCCESS) {
        apr_file_close(f);
        return 0;
    }
    apr_file_close(f);
    text[n] = '\0';
    for (s = d = text; *s; ) {
        if (s[0] == '-' && s[1] == '-') {
            while (*s && *s != '\n') {
                s++;
            }
            continue;
        }
        *d++ = *s++;
    }
    *d = '\0';
    for (stmt = apr_strtok(text, ";", &last); stmt;
         stmt = apr_strtok(NULL, ";", &last)) {
        while (apr_isspace(*stmt)) {
            stmt++;
        }
        if (!*stmt || !strncasecmp(stmt, "PRAGMA", 6)
            || !strncasecmp(stmt, "SET ", 4)) {
            continue;
        }
        if (apr_dbd_query(store_db.driver, store_db.handle, &nrows, stmt)
            != 0) {
            diag("schema: %s: %s", stmt,
                 apr_dbd_error(store_db.driver, store_db.handle, 1));
            bad = 1;
        }
    }
    return !bad;
}

static void store_open(apr_pool_t *p)
{
    const scep_store_stmt_t *const sets[] = { scep_store_statements,
                                              scep_certstore_statements,
                                              NULL };
    const scep_store_stmt_t *const *set;
    const scep_store_stmt_t *st;
    const char *env = getenv("SCEP_TEST_DBD"), *driver = "sqlite3";
    const char *params = NULL, *schema, *err = NULL;
    apr_dbd_prepared_t *prep;
    char tmpl[] = "/tmp/scep-test-crl-XXXXXX";
    int fd, n;

    if (env && *env) {
        char *bar = strchr(env, '|');
        driver = bar ? apr_pstrmemdup(p, env, (apr_size_t)(bar - env)) : env;
        params = bar ? bar + 1 : "";
    }
    if ((schema = find_schema(driver, p)) == NULL) {
        diag("conf/schema-%s.sql not found (run from the source tree or "
             "set SCEP_SRCDIR)", driver);
        return;
    }
    apr_dbd_init(p);
    if (apr_dbd_get_driver(p, driver, &store_db.driver) != APR_SUCCESS) {
        diag("apr_dbd %s driver missing (libaprutil1-dbd-%s)", driver,
             driver);
        return;
    }
    if (params == NULL) {
        if ((fd = mkstemp(tmpl)) < 0) {
            return;
        }
        close(fd);
        store_path = apr_pstrdup(p, tmpl);
        params = store_path;
    }
    if (apr_dbd_open_ex(store_db.driver, p, params, &store_db.handle,
                        &err) != APR_SUCCESS) {
        diag("cannot open %s database %s: %s", driver, params,
             err ? err : "-");
        return;
    }
    diag("store tests on %s (%s)", driver, schema);
    if (!load_schema(p, schema)) {
        return;
    }
    if (store_path == NULL
        && (apr_dbd_query(store_db.driver, store_db.handle, &n,
                          "DELETE FROM scep_certificate") != 0
            || apr_dbd_query(store_db.driver, store_db.handle, &n,
                             "DELETE FROM scep_crl") != 0)) {
        diag("cannot empty the scratch tables");
        return;
    }
    store_db.prepared = apr_hash_make(p);
    for (set = sets; *set; set++) {
        for (st = *set; st->label; st++) {
            /* a fresh pointer each time: drivers (pgsql) reuse the
             * statement it points to */
            prep = NULL;
            if (apr_dbd_prepare(store_db.driver, p, store_db.handle, st->sql,
                                st->label, &prep) != 0) {
                diag("cannot prepare %s: %s", st->label,
                     apr_dbd_error(store_db.driver, store_db.handle, 1));
                return;
            }
            apr_hash_set(store_db.prepared, st->label, APR_HASH_KEY_STRING,
                         prep);
        }
    }
    store_ok = 1;
}

static void store_close(apr_pool_t *p)
{
    if (store_db.handle) {
        apr_dbd_close(store_db.driver, store_db.handle);
    }
    if (store_path) {
        unlink(store_path);
        unlink(apr_pstrcat(p, store_path, "-wal", NULL));
        unlink(apr_pstrcat(p, store_path, "-shm", NULL));
        unlink(apr_pstrcat(p, store_path, "-journal", NULL));
    }
}

/* Leaves, made once: a, b (valid), expired (expired 30 days ago), and a
 * twin of a with a's serial. */
static X509 *leaf_a, *leaf_b, *leaf_expired, *leaf_twin;

static void make_leaves(apr_pool_t *p)
{
    leaf_a = scep_tap_cert(p, "leaf a", pki.leaf_key, pki.ca, pki.ca_key, 0,
                           KU_DIGITAL_SIGNATURE, 365);
    leaf_b = scep_tap_cert(p, "leaf b", pki.leaf_key, pki.ca, pki.ca_key, 0,
                           KU_DIGITAL_SIGNATURE, 365);
    leaf_expired = scep_tap_cert(p, "leaf expired", pki.leaf_key, pki.ca,
                                 pki.ca_key, 0, KU_DIGITAL_SIGNATURE, -30);
    leaf_twin = X509_dup(leaf_b);
    X509_set_serialNumber(leaf_twin, X509_get_serialNumber(leaf_a));
    X509_sign(leaf_twin, pki.ca_key, EVP_sha256());
    scep_own_x509(p, leaf_twin);
}

#define NEED_STORE(n)                                                  \
    if (!store_ok) {                                                   \
        skip((n), "no SQLite store");                                  \
        return;                                                        \
    }

static void test_record_lookup(apr_pool_t *p)
{
    const char *why = NULL;
    scep_cert_row_t *row = NULL;
    const unsigned char *der;
    apr_size_t len;
    char *b64;

    NEED_STORE(12);
    ok(scep_cert_record(&store_db, leaf_a, "tid-a", "default", &why, p)
       == APR_SUCCESS, "record a");
    why = NULL;
    ok(scep_cert_record(&store_db, leaf_a, "tid-a", "default", &why, p)
       == APR_SUCCESS && why == NULL, "record a again: idempotent");
    ok(scep_cert_record(&store_db, leaf_b, NULL, NULL, &why, p)
       == APR_SUCCESS, "record b without transaction or profile");
    ok(scep_cert_record(&store_db, leaf_expired, "tid-x", "default", &why, p)
       == APR_SUCCESS, "record an expired one");
    ok(scep_cert_record(&store_db, leaf_twin, "tid-t", "default", &why, p)
       == APR_EEXIST, "another certificate with a's serial: refused");

    ok(scep_cert_lookup(&store_db, X509_get_subject_name(pki.ca),
                        X509_get0_serialNumber(leaf_a), &row, &why, p)
       == APR_SUCCESS && row != NULL, "lookup a");
    if (row == NULL) {
        skip(5, "not found");
        return;
    }
    is_str(row->serial, scep_serial_str(X509_get0_serialNumber(leaf_a), p),
           "serial as scep_serial_str");
    is_str(row->subject, "CN=leaf a", "subject");
    ok(row->status == SCEP_CERT_VALID && row->reason == -1
       && row->revoked_at == 0, "valid, no reason");
    is_str(row->transaction_id, "tid-a", "transaction id kept");
    scep_cert_der(&der, &len, leaf_a, p);
    b64 = apr_palloc(p, apr_base64_encode_len((int)len));
    apr_base64_encode(b64, (const char *)der, (int)len);
    ok(row->der_b64 && !strcmp(row->der_b64, b64)
       && row->not_after == asn1_unix(X509_get0_notAfter(leaf_a))
       && row->not_before == asn1_unix(X509_get0_notBefore(leaf_a)),
       "DER and validity as issued");
    ok(scep_cert_lookup(&store_db, X509_get_subject_name(pki.other_ca),
                        X509_get0_serialNumber(leaf_a), &row, &why, p)
       == APR_SUCCESS && row == NULL, "another issuer: unknown");
}

static void test_crl_current(apr_pool_t *p)
{
    const apr_int64_t validity = 7 * 86400;
    apr_int64_t now = (apr_int64_t)time(NULL);
    const unsigned char *d1 = NULL, *d2 = NULL, *d3 = NULL, *d4 = NULL;
    apr_size_t l1 = 0, l2 = 0, l3 = 0, l4 = 0;
    const char *why = NULL;
    const char *sa = scep_serial_str(X509_get0_serialNumber(leaf_a), p);
    const char *sx = scep_serial_str(X509_get0_serialNumber(leaf_expired), p);
    scep_crl_info_t info;
    int done = -1, nrows;
    X509_CRL *crl;

    NEED_STORE(22);
    ok(scep_crl_current(&store_db, pki.ca, pki.ca_key, validity, 0, now,
                        &d1, &l1, &why, p) == APR_SUCCESS,
       "first CRL");
    ok(d1 && scep_crl_info(d1, l1, pki.ca, &info, &why, p) == APR_SUCCESS
       && info.crl_number == 1 && info.entries == 0
       && info.this_update == now && info.next_update == now + validity,
       "number 1, empty, thisUpdate now, nextUpdate now + validity");
    ok(scep_crl_current(&store_db, pki.ca, pki.ca_key, validity, 0, now + 60,
                        &d2, &l2, &why, p) == APR_SUCCESS
       && l2 == l1 && !memcmp(d1, d2, l1), "a minute later: the same CRL");

    ok(scep_cert_revoke(&store_db, X509_get_subject_name(pki.ca),
                        apr_pstrcat(p, "0x", sa, NULL), 1, now + 100, &done,
                        &why, p) == APR_SUCCESS && done == 1,
       "revoke a (keyCompromise), serial given as 0x...");
    ok(scep_cert_revoke(&store_db, X509_get_subject_name(pki.ca), sa, 4,
                        now + 101, &done, &why, p) == APR_SUCCESS && done == 0,
       "revoke a again: nothing to do");
    ok(scep_cert_revoke(&store_db, X509_get_subject_name(pki.ca), "DEAD", 1,
                        now, &done, &why, p) == APR_SUCCESS && done == 0,
       "revoke an unknown serial: nothing to do");
    ok(scep_cert_revoke(&store_db, X509_get_subject_name(pki.ca), "nothex",
                        1, now, &done, &why, p) == APR_EINVAL,
       "revoke 'nothex': refused");
    ok(scep_cert_revoke(&store_db, X509_get_subject_name(pki.ca), sa, 7, now,
                        &done, &why, p) == APR_EINVAL,
       "reason 7: refused");
    ok(scep_cert_revoke(&store_db, X509_get_subject_name(pki.ca), sx, 5,
                        now + 102, &done, &why, p) == APR_SUCCESS && done == 1,
       "revoke the expired one");

    /* a revocation newer than the stored CRL: the next reader makes a new
     * one even unforced (the revoking section may not hold the CA key) */
    ok(scep_crl_current(&store_db, pki.ca, pki.ca_key, validity, 0, now + 120,
                        &d2, &l2, &why, p) == APR_SUCCESS
       && !(l2 == l1 && !memcmp(d1, d2, l1))
       && scep_crl_info(d2, l2, pki.ca, &info, &why, p) == APR_SUCCESS
       && info.crl_number == 2 && info.entries == 1,
       "not forced, but revoked since: regenerated, number 2");
    ok(scep_crl_current(&store_db, pki.ca, pki.ca_key, validity, 0, now + 125,
                        &d1, &l1, &why, p) == APR_SUCCESS
       && l2 == l1 && !memcmp(d1, d2, l1),
       "not forced, nothing revoked since: the stored CRL");
    ok(scep_crl_current(&store_db, pki.ca, pki.ca_key, validity, 1, now + 130,
                        &d3, &l3, &why, p) == APR_SUCCESS,
       "forced after the revocation");
    ok(d3 && scep_crl_info(d3, l3, pki.ca, &info, &why, p) == APR_SUCCESS
       && info.crl_number == 3 && info.entries == 1
       && info.this_update == now + 130, "number 3, one entry");
    crl = d3 ? parse_crl(d3, l3) : NULL;
    ok(crl && sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) == 1
       && !strcmp(entry_serial(sk_X509_REVOKED_value(
                      X509_CRL_get_REVOKED(crl), 0), p), sa)
       && entry_reason(sk_X509_REVOKED_value(X509_CRL_get_REVOKED(crl), 0))
          == 1
       && asn1_unix(X509_REVOKED_get0_revocationDate(sk_X509_REVOKED_value(
                        X509_CRL_get_REVOKED(crl), 0))) == now + 100,
       "a is listed with keyCompromise and its date; the long-expired one "
       "is not");
    X509_CRL_free(crl);

    ok(scep_crl_current(&store_db, pki.ca, pki.ca_key, validity, 0,
                        now + 130 + validity - validity / 4 - 1, &d4, &l4,
                        &why, p) == APR_SUCCESS
       && scep_crl_info(d4, l4, pki.ca, &info, &why, p) == APR_SUCCESS
       && info.crl_number == 3, "a quarter of validity left: kept");
    ok(scep_crl_current(&store_db, pki.ca, pki.ca_key, validity, 0,
                        now + 130 + validity - validity / 4 + 1, &d4, &l4,
                        &why, p) == APR_SUCCESS
       && scep_crl_info(d4, l4, pki.ca, &info, &why, p) == APR_SUCCESS
       && info.crl_number == 4 && info.entries == 1,
       "less than a quarter left: number 4, regenerated");

    /* another node moved the number on (as after a lost race) */
    ok(apr_dbd_query(store_db.driver, store_db.handle, &nrows,
                     "UPDATE scep_crl SET crl_number = 41") == 0
       && nrows == 1, "the stored number moved to 41 behind our back");
    ok(scep_crl_current(&store_db, pki.ca, pki.ca_key, validity, 1, now + 200,
                        &d4, &l4, &why, p) == APR_SUCCESS
       && scep_crl_info(d4, l4, pki.ca, &info, &why, p) == APR_SUCCESS
       && info.crl_number == 42, "forced: number 42");

    /* a renewed CA (same name, new key): the stored CRL is not served */
    ok(scep_crl_current(&store_db, pki.ca_renewed, pki.other_key, validity,
                        0, now + 210, &d4, &l4, &why, p) == APR_SUCCESS
       && scep_crl_info(d4, l4, pki.ca_renewed, &info, &why, p)
          == APR_SUCCESS && info.crl_number == 43 && info.entries == 1,
       "renewed CA key: a new CRL signed by it, number 43");

    ok(scep_crl_current(&store_db, pki.ca_nocrlsign, pki.ca_key, validity, 0,
                        now, &d4, &l4, &why, p) == APR_EINVAL,
       "a CA without cRLSign: refused");
    ok(scep_crl_current(&store_db, pki.other_ca, pki.other_key, validity, 0,
                        now, &d4, &l4, &why, p) == APR_SUCCESS
       && scep_crl_info(d4, l4, pki.other_ca, &info, &why, p) == APR_SUCCESS
       && info.crl_number == 1 && info.entries == 0,
       "another issuer has its own CRL, number 1");
    ok(scep_crl_current(&store_db, pki.ca, pki.ca_key, 0, 0, now, &d4, &l4,
                        &why, p) == APR_EINVAL, "validity 0: refused");
}

static void test_list(apr_pool_t *p)
{
    apr_array_header_t *rows = NULL;
    const char *why = NULL;
    scep_cert_row_t *r0, *r1;
    int i, revoked = 0;

    NEED_STORE(4);
    ok(scep_cert_list(&store_db, X509_get_subject_name(pki.ca), 200, &rows,
                      &why, p) == APR_SUCCESS && rows && rows->nelts == 3,
       "three certificates of the CA");
    if (rows == NULL || rows->nelts != 3) {
        skip(3, "no list");
        return;
    }
    for (i = 0; i < rows->nelts; i++) {
        scep_cert_row_t *r = APR_ARRAY_IDX(rows, i, scep_cert_row_t *);
        if (r->status == SCEP_CERT_REVOKED && r->reason >= 0) {
            revoked++;
        }
        if (r->der_b64) {
            revoked = -100;   /* the list leaves the DER out */
        }
    }
    is_int(revoked, 2, "two revoked with reasons, no DER in the list");
    r0 = APR_ARRAY_IDX(rows, 0, scep_cert_row_t *);
    r1 = APR_ARRAY_IDX(rows, 1, scep_cert_row_t *);
    ok(r0->not_before >= r1->not_before, "newest first");
    ok(scep_cert_list(&store_db, X509_get_subject_name(pki.ca), 1, &rows,
                      &why, p) == APR_SUCCESS && rows->nelts == 1,
       "limit 1: one row");
}

/* ---- one-time passwords: the row read before the lock ----------------- */

static scep_db_t *unit_db(void *baton)
{
    return baton;
}

static scep_challenge_settings_t otp_settings;

static void otp_req(scep_challenge_req_t *req, apr_pool_t *rp,
                    const char *tid)
{
    memset(req, 0, sizeof(*req));
    req->pool = rp;
    req->settings = &otp_settings;
    req->db = unit_db;
    req->db_baton = &store_db;
    req->user = "unit";
    req->transaction_id = tid;
}

static const char *otp_new(apr_pool_t *p)
{
    scep_challenge_req_t req;
    const char *pw = NULL, *why = NULL;
    apr_time_t exp;
    int multi;

    otp_req(&req, p, NULL);
    if (scep_challenge_otp.generate(NULL, &req, NULL, &pw, &exp, &multi, &why)
        != SCEP_CHALLENGE_OK) {
        diag("otp generate: %s", why ? why : "-");
        return NULL;
    }
    return pw;
}

/* One enrollment's verify in a pool of its own (the request's), the row
 * read first when prefetch is set (or by an earlier scep_otp_prefetch in
 * the same pool). */
static scep_challenge_status_e otp_try(apr_pool_t *rp, const char *pw,
                                       const char *tid, int prefetch,
                                       const char **why)
{
    scep_challenge_req_t req;

    otp_req(&req, rp, tid);
    *why = NULL;
    if (prefetch) {
        scep_otp_prefetch(&store_db, &otp_settings, pw, rp);
    }
    return scep_challenge_otp.verify(NULL, &req, pw, why);
}

static void otp_issued(apr_pool_t *rp, const char *pw, const char *tid)
{
    scep_challenge_req_t req;

    otp_req(&req, rp, tid);
    scep_challenge_otp.notify(NULL, &req, pw, SCEP_OUTCOME_ISSUED);
}

static int otp_state(const char *pw, const char **tid, apr_pool_t *p)
{
    scep_pw_row_t *row = NULL;
    const char *why = NULL;

    if (scep_pw_lookup(&store_db, otp_settings.endpoint,
                       scep_password_hash(&otp_settings, pw, p), &row, &why,
                       p) != APR_SUCCESS || row == NULL) {
        return -1;
    }
    if (tid) {
        *tid = row->transaction_id;
    }
    return row->state;
}

/* scep_otp_acceptable in a new request's pool, the row read first */
static int read_acceptable(const char *pw, const char *profile,
                           apr_pool_t *p)
{
    apr_pool_t *rp;
    int yes;

    apr_pool_create(&rp, p);
    scep_otp_prefetch(&store_db, &otp_settings, pw, rp);
    yes = scep_otp_acceptable(&otp_settings, pw, NULL, profile, rp);
    apr_pool_destroy(rp);
    return yes;
}

static void test_otp_prefetch(apr_pool_t *p)
{
    static const unsigned char key[] = "unit test password key, 32 bytes";
    apr_pool_t *r1, *r2;
    const char *pw, *why, *tid = NULL;
    scep_pw_row_t *row = NULL;
    scep_challenge_status_e cs;
    int done = 0;

    NEED_STORE(31);
    otp_settings.length = 8;
    otp_settings.validity = apr_time_from_sec(600);
    otp_settings.max = 1000;
    otp_settings.key = key;
    otp_settings.key_len = sizeof(key) - 1;
    otp_settings.endpoint = apr_psprintf(p, "unit-otp-%d", (int)getpid());

    /* read first, reserved, used: by the row's id */
    pw = otp_new(p);
    apr_pool_create(&r1, p);
    cs = otp_try(r1, pw, "T1", 1, &why);
    ok(cs == SCEP_CHALLENGE_OK, "read before the lock, then reserved (%s)",
       why ? why : "ok");
    is_str(apr_psprintf(p, "%d", otp_state(pw, &tid, p)), "1", "reserved");
    otp_issued(r1, pw, "T1");
    ok(otp_state(pw, &tid, p) == SCEP_PW_USED && tid && !strcmp(tid, "T1"),
       "used by T1, found by the id the reservation kept");
    apr_pool_destroy(r1);

    /* read while unused, used by another request before this one reserves:
     * refused, and the reason is read again */
    pw = otp_new(p);
    apr_pool_create(&r1, p);
    apr_pool_create(&r2, p);
    scep_otp_prefetch(&store_db, &otp_settings, pw, r1);
    ok(otp_try(r2, pw, "T3", 0, &why) == SCEP_CHALLENGE_OK,
       "another request (no read before) reserves it");
    otp_issued(r2, pw, "T3");
    cs = otp_try(r1, pw, "T2", 0, &why);
    ok(cs == SCEP_CHALLENGE_REFUSED, "the request that read it unused "
       "is refused");
    ok(why && strstr(why, "used already (transaction T3)"),
       "and says by whom: %s", why ? why : "-");
    ok(otp_state(pw, &tid, p) == SCEP_PW_USED && tid && !strcmp(tid, "T3"),
       "still T3's");
    apr_pool_destroy(r1);
    apr_pool_destroy(r2);

    /* read while unused, revoked before the reservation */
    pw = otp_new(p);
    apr_pool_create(&r1, p);
    scep_otp_prefetch(&store_db, &otp_settings, pw, r1);
    ok(scep_pw_lookup(&store_db, otp_settings.endpoint,
                      scep_password_hash(&otp_settings, pw, p), &row, &why,
                      p) == APR_SUCCESS && row
       && scep_pw_revoke(&store_db, otp_settings.endpoint, row->id, &done,
                         &why, p) == APR_SUCCESS && done,
       "revoked by an administrator meanwhile");
    cs = otp_try(r1, pw, "T4", 0, &why);
    ok(cs == SCEP_CHALLENGE_REFUSED && why && strstr(why, "revoked"),
       "refused: %s", why ? why : "-");
    apr_pool_destroy(r1);

    /* reserved by another request right now */
    pw = otp_new(p);
    apr_pool_create(&r1, p);
    apr_pool_create(&r2, p);
    scep_otp_prefetch(&store_db, &otp_settings, pw, r1);
    ok(otp_try(r2, pw, "T6", 1, &why) == SCEP_CHALLENGE_OK,
       "T6 reserves it");
    cs = otp_try(r1, pw, "T5", 0, &why);
    ok(cs == SCEP_CHALLENGE_REFUSED && why
       && strstr(why, "being used by another request"),
       "T5, which read it unused, is refused: %s", why ? why : "-");
    ok(otp_state(pw, &tid, p) == SCEP_PW_RESERVED && tid
       && !strcmp(tid, "T6"), "the reservation stays T6's");
    apr_pool_destroy(r1);
    apr_pool_destroy(r2);

    /* unknown, read first or not */
    apr_pool_create(&r1, p);
    cs = otp_try(r1, "0123456789ABCDEF", "T7", 1, &why);
    ok(cs == SCEP_CHALLENGE_REFUSED && why && strstr(why, "unknown"),
       "unknown, read first: %s", why ? why : "-");
    apr_pool_destroy(r1);
    apr_pool_create(&r1, p);
    cs = otp_try(r1, "0123456789ABCDEF", "T7", 0, &why);
    ok(cs == SCEP_CHALLENGE_REFUSED && why && strstr(why, "unknown"),
       "unknown, not read first: %s", why ? why : "-");
    apr_pool_destroy(r1);

    /* the early read is what verify decides on: a row that appears after
     * it (no client can know such a password) is not seen */
    {
        const char *late = "FEEDFACE01234567";
        apr_int64_t now = apr_time_sec(apr_time_now());

        apr_pool_create(&r1, p);
        scep_otp_prefetch(&store_db, &otp_settings, late, r1);
        ok(scep_pw_insert(&store_db, otp_settings.endpoint,
                          scep_password_hash(&otp_settings, late, p), now,
                          now + 600, "unit", NULL, &why, p) == APR_SUCCESS,
           "the password is stored after the read");
        cs = otp_try(r1, late, "T9", 0, &why);
        ok(cs == SCEP_CHALLENGE_REFUSED && why && strstr(why, "unknown"),
           "verify decides on the early read: %s", why ? why : "-");
        apr_pool_destroy(r1);
        apr_pool_create(&r1, p);
        cs = otp_try(r1, late, "T9", 0, &why);
        ok(cs == SCEP_CHALLENGE_OK, "read again in a new request, it is "
           "reserved (%s)", why ? why : "ok");
        apr_pool_destroy(r1);
    }

    /* scep_otp_acceptable: the early read's verdict, for signing before
     * the lock (mod_scep_enroll.c, sign_early) */
    {
        scep_challenge_req_t req;
        scep_challenge_binding_t bind = { NULL, NULL, "P1" };
        const char *bound = NULL;
        apr_time_t exp;
        int multi;

        pw = otp_new(p);
        apr_pool_create(&r1, p);
        ok(!scep_otp_acceptable(&otp_settings, pw, NULL, NULL, r1),
           "acceptable: not without the early read");
        scep_otp_prefetch(&store_db, &otp_settings, pw, r1);
        ok(scep_otp_acceptable(&otp_settings, pw, NULL, NULL, r1),
           "acceptable: read unused");
        ok(!scep_otp_acceptable(&otp_settings, "0123456789ABCDEF", NULL,
                                NULL, r1),
           "acceptable: not for another password than the one read");
        apr_pool_destroy(r1);
        apr_pool_create(&r1, p);
        ok(otp_try(r1, pw, "T10", 1, &why) == SCEP_CHALLENGE_OK,
           "T10 reserves it");
        ok(!read_acceptable(pw, NULL, p), "acceptable: not when read reserved");
        otp_issued(r1, pw, "T10");
        apr_pool_destroy(r1);
        ok(!read_acceptable(pw, NULL, p), "acceptable: not when read used");

        pw = otp_new(p);
        ok(scep_pw_lookup(&store_db, otp_settings.endpoint,
                          scep_password_hash(&otp_settings, pw, p), &row,
                          &why, p) == APR_SUCCESS && row
           && scep_pw_revoke(&store_db, otp_settings.endpoint, row->id,
                             &done, &why, p) == APR_SUCCESS && done,
           "a password revoked by an administrator");
        ok(!read_acceptable(pw, NULL, p), "acceptable: not when read revoked");
        {
            const char *old = "0BADC0DE0BADC0DE";
            apr_int64_t now = apr_time_sec(apr_time_now());

            ok(scep_pw_insert(&store_db, otp_settings.endpoint,
                              scep_password_hash(&otp_settings, old, p),
                              now - 700, now - 100, "unit", NULL, &why, p)
               == APR_SUCCESS, "a password that expired 100 s ago");
            ok(!read_acceptable(old, NULL, p),
               "acceptable: not when read expired");
        }

        otp_req(&req, p, NULL);
        ok(scep_challenge_otp.generate(NULL, &req, &bind, &bound, &exp,
                                       &multi, &why) == SCEP_CHALLENGE_OK
           && bound, "a password bound to profile P1");
        ok(read_acceptable(bound, "P1", p), "acceptable: for profile P1");
        ok(!read_acceptable(bound, "P2", p), "acceptable: not for profile P2");
    }

    /* the read of another password in the same request is not used */
    pw = otp_new(p);
    apr_pool_create(&r1, p);
    scep_otp_prefetch(&store_db, &otp_settings, "0123456789ABCDEF", r1);
    cs = otp_try(r1, pw, "T8", 0, &why);
    ok(cs == SCEP_CHALLENGE_OK, "a read of another password is ignored "
       "(%s)", why ? why : "ok");
    apr_pool_destroy(r1);
}

int main(void)
{
    apr_pool_t *pool;

    scep_tap_init();
    apr_pool_create(&pool, NULL);
    make_pki(pool);
    scep_tap_run("scep_crl_build round trip", test_build_round_trip);
    scep_tap_run("scep_crl_build refusals", test_build_empty_and_refusals);
    scep_tap_run("scep_issuer_hash", test_issuer_hash);
    scep_tap_run("serials and reasons", test_serial_and_reason);
    store_open(pool);
    make_leaves(pool);
    scep_tap_run("store: record and lookup", test_record_lookup);
    scep_tap_run("store: scep_crl_current", test_crl_current);
    scep_tap_run("store: list", test_list);
    scep_tap_run("store: one-time password read before the lock",
                 test_otp_prefetch);
    store_close(pool);
    apr_pool_destroy(pool);
    return scep_tap_done();
}
