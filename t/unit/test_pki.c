/* Licensed under the Apache License, Version 2.0.
 *
 * Unit tests of the PKI helpers (scep_pki.h): key/certificate match, key
 * usage, the NDES thumbprint, names, serials, loading files.
 */
#include <stdio.h>
#include <string.h>

#include <apr_general.h>
#include <apr_file_io.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "scep_pki.h"
#include "tap.h"

typedef struct {
    EVP_PKEY *ca_key, *key2;
    X509 *ca, *enc, *sign, *both, *noku;
} test_pki_t;

static test_pki_t pki;

static void make_pki(apr_pool_t *p)
{
    pki.ca_key = scep_tap_rsa_key(p, 2048);
    pki.key2 = scep_tap_rsa_key(p, 2048);
    pki.ca = scep_tap_cert(p, "Test CA", pki.ca_key, NULL, NULL, 1,
                           KU_KEY_CERT_SIGN | KU_CRL_SIGN, 3650);
    pki.enc = scep_tap_cert(p, "RA enc", pki.key2, pki.ca, pki.ca_key, 0,
                            KU_KEY_ENCIPHERMENT, 365);
    pki.sign = scep_tap_cert(p, "RA sign", pki.key2, pki.ca, pki.ca_key, 0,
                             KU_DIGITAL_SIGNATURE, 365);
    pki.both = scep_tap_cert(p, "RA both", pki.key2, pki.ca, pki.ca_key, 0,
                             KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT, 365);
    pki.noku = scep_tap_cert(p, "no KU", pki.key2, pki.ca, pki.ca_key, 0, 0,
                             365);
}

static void test_key_matches(apr_pool_t *p)
{
    ok(scep_key_matches_cert(pki.ca_key, pki.ca), "CA key matches CA cert");
    ok(scep_key_matches_cert(pki.key2, pki.enc), "RA key matches RA cert");
    ok(!scep_key_matches_cert(pki.key2, pki.ca), "RA key does not match CA");
    ok(!scep_key_matches_cert(pki.ca_key, pki.sign),
       "CA key does not match RA cert");
}

static void test_has_ku(apr_pool_t *p)
{
    ok(scep_cert_has_ku(pki.enc, KU_KEY_ENCIPHERMENT),
       "encryption RA: keyEncipherment");
    ok(!scep_cert_has_ku(pki.enc, KU_DIGITAL_SIGNATURE),
       "encryption RA: no digitalSignature");
    ok(scep_cert_has_ku(pki.sign, KU_DIGITAL_SIGNATURE),
       "signing RA: digitalSignature");
    ok(!scep_cert_has_ku(pki.sign, KU_KEY_ENCIPHERMENT),
       "signing RA: no keyEncipherment");
    ok(scep_cert_has_ku(pki.both, KU_KEY_ENCIPHERMENT | KU_DIGITAL_SIGNATURE),
       "combined RA: both usages at once");
    ok(!scep_cert_has_ku(pki.enc, KU_KEY_ENCIPHERMENT | KU_DIGITAL_SIGNATURE),
       "encryption RA: not both usages");
    ok(scep_cert_has_ku(pki.noku, KU_KEY_ENCIPHERMENT)
       && scep_cert_has_ku(pki.noku, KU_DIGITAL_SIGNATURE),
       "no keyUsage extension: every usage");
    ok(!scep_cert_has_ku(pki.ca, KU_KEY_ENCIPHERMENT),
       "CA (keyCertSign, cRLSign): no keyEncipherment");
    ok(scep_cert_has_ku(pki.ca, KU_KEY_CERT_SIGN), "CA: keyCertSign");
}

static int is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static void test_thumbprint(apr_pool_t *p)
{
    const char *t = scep_cert_md5_thumbprint(pki.ca, p);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    char want[64], *w = want;
    int shape = 1;

    if (!ok(t != NULL, "thumbprint computed")) {
        return;
    }
    is_int(strlen(t), 35, "35 characters (%s)", t);
    for (i = 0; i < 35 && t[i]; i++) {
        if (i % 9 == 8) {
            shape = shape && t[i] == ' ';
        }
        else {
            shape = shape && is_upper_hex(t[i]);
        }
    }
    ok(shape, "four groups of eight uppercase hex digits, single spaces");
    X509_digest(pki.ca, EVP_md5(), md, &n);
    for (i = 0; i < n; i++) {
        w += sprintf(w, "%s%02X", (i && i % 4 == 0) ? " " : "", md[i]);
    }
    is_str(t, want, "MD5 of the DER certificate");
    ok(strcmp(scep_cert_md5_thumbprint(pki.enc, p), t) != 0,
       "another certificate, another thumbprint");
}

static void test_names(apr_pool_t *p)
{
    X509_NAME *n = X509_NAME_new();
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial;

    is_str(scep_name_str(X509_get_subject_name(pki.ca), p), "CN=Test CA",
           "scep_name_str of CN=Test CA");
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8,
                               (const unsigned char *)"Example", -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
                               (const unsigned char *)"host,1", -1, -1, 0);
    is_str(scep_name_str(n, p), "CN=host\\,1,O=Example",
           "scep_name_str: RFC 2253 order and escaping");
    X509_NAME_free(n);

    serial = ASN1_INTEGER_new();
    BN_hex2bn(&bn, "0ABCDEF0123456789");
    BN_to_ASN1_INTEGER(bn, serial);
    is_str(scep_serial_str(serial, p), "ABCDEF0123456789",
           "scep_serial_str: uppercase hex");
    ASN1_INTEGER_set(serial, 255);
    is_str(scep_serial_str(serial, p), "FF", "scep_serial_str 255");
    ASN1_INTEGER_free(serial);
    BN_free(bn);
}

static void test_times(apr_pool_t *p)
{
    X509 *old = scep_tap_cert(p, "expired", pki.key2, pki.ca, pki.ca_key, 0,
                              0, -2);
    long long s = scep_cert_seconds_left(pki.enc);

    ok(s > 364LL * 86400 && s <= 365LL * 86400,
       "365 day certificate: %lld seconds left", s);
    ok(scep_cert_seconds_left(old) < 0, "expired certificate: negative");
}

static const char *write_tmp(apr_pool_t *p, const char *data, apr_size_t len)
{
    apr_file_t *f;
    const char *dir = NULL;
    char *tmpl;
    apr_size_t n = len;

    apr_temp_dir_get(&dir, p);
    tmpl = apr_pstrcat(p, dir, "/scep_test_XXXXXX", NULL);
    if (apr_file_mktemp(&f, tmpl, APR_FOPEN_CREATE | APR_FOPEN_READ
                        | APR_FOPEN_WRITE | APR_FOPEN_EXCL
                        | APR_FOPEN_DELONCLOSE, p) != APR_SUCCESS) {
        return NULL;
    }
    apr_file_write_full(f, data, len, &n);
    apr_file_flush(f);
    /* the file goes when the pool does */
    return tmpl;
}

static const char *pem_of(X509 *x, EVP_PKEY *k, apr_pool_t *p)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *d;
    long n;
    const char *out;

    if (x) {
        PEM_write_bio_X509(b, x);
    }
    if (k) {
        PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    }
    n = BIO_get_mem_data(b, &d);
    out = apr_pstrmemdup(p, d, (apr_size_t)n);
    BIO_free(b);
    return out;
}

static void test_load(apr_pool_t *p)
{
    STACK_OF(X509) *certs = NULL;
    EVP_PKEY *key = NULL;
    const char *why = NULL, *path, *pem;
    const unsigned char *der;
    apr_size_t len;
    apr_status_t rv;

    /* PEM with the chain: order kept */
    pem = apr_pstrcat(p, pem_of(pki.enc, NULL, p), pem_of(pki.ca, NULL, p),
                      NULL);
    path = write_tmp(p, pem, strlen(pem));
    rv = scep_load_certs(&certs, path, &why, p);
    is_int(rv, APR_SUCCESS, "PEM chain loads");
    ok(certs && sk_X509_num(certs) == 2
       && X509_cmp(sk_X509_value(certs, 0), pki.enc) == 0
       && X509_cmp(sk_X509_value(certs, 1), pki.ca) == 0,
       "PEM chain: file order");

    /* one DER certificate */
    rv = scep_cert_der(&der, &len, pki.sign, p);
    is_int(rv, APR_SUCCESS, "scep_cert_der");
    path = write_tmp(p, (const char *)der, len);
    certs = NULL;
    rv = scep_load_certs(&certs, path, &why, p);
    is_int(rv, APR_SUCCESS, "DER certificate loads");
    ok(certs && sk_X509_num(certs) == 1
       && X509_cmp(sk_X509_value(certs, 0), pki.sign) == 0,
       "DER certificate: the one written");

    why = NULL;
    rv = scep_load_certs(&certs, "/nonexistent/scep/ca.pem", &why, p);
    ok(rv != APR_SUCCESS && why != NULL, "missing file refused (%s)",
       why ? why : "");
    path = write_tmp(p, "hello\n", 6);
    why = NULL;
    rv = scep_load_certs(&certs, path, &why, p);
    ok(rv != APR_SUCCESS && why != NULL, "file without certificate refused "
       "(%s)", why ? why : "");

    /* keys */
    pem = pem_of(NULL, pki.key2, p);
    path = write_tmp(p, pem, strlen(pem));
    rv = scep_load_key(&key, path, &why, p);
    is_int(rv, APR_SUCCESS, "PEM key loads");
    ok(key && scep_key_matches_cert(key, pki.enc), "loaded key matches");
    rv = scep_load_key(&key, apr_pstrcat(p, "file:", path, NULL), &why, p);
    is_int(rv, APR_SUCCESS, "key by file: URI loads");
    why = NULL;
    rv = scep_load_key(&key, "/nonexistent/scep/key.pem", &why, p);
    ok(rv != APR_SUCCESS && why != NULL, "missing key refused (%s)",
       why ? why : "");
    pem = pem_of(pki.ca, NULL, p);
    path = write_tmp(p, pem, strlen(pem));
    why = NULL;
    rv = scep_load_key(&key, path, &why, p);
    ok(rv != APR_SUCCESS && why != NULL, "certificate is no key (%s)",
       why ? why : "");
}

int main(void)
{
    apr_pool_t *pool;

    scep_tap_init();
    apr_pool_create(&pool, NULL);
    make_pki(pool);
    scep_tap_run("scep_key_matches_cert", test_key_matches);
    scep_tap_run("scep_cert_has_ku", test_has_ku);
    scep_tap_run("scep_cert_md5_thumbprint", test_thumbprint);
    scep_tap_run("names and serials", test_names);
    scep_tap_run("validity", test_times);
    scep_tap_run("loading files", test_load);
    apr_pool_destroy(pool);
    return scep_tap_done();
}
