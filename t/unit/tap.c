/* Licensed under the Apache License, Version 2.0.
 *
 * Tiny TAP helpers, see tap.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#include <openssl/bn.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "scep_pki.h"
#include "tap.h"

static int tap_count;
static int tap_failed;
static int tap_planned = -1;

static void tap_vline(const char *fmt, va_list ap)
{
    char buf[1024];
    char *c;

    vsnprintf(buf, sizeof(buf), fmt, ap);
    /* a description must stay on its line */
    for (c = buf; *c; c++) {
        if (*c == '\n' || *c == '\r' || *c == '#') {
            *c = (*c == '#') ? '*' : ' ';
        }
    }
    fputs(buf, stdout);
}

void scep_tap_init(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (apr_initialize() != APR_SUCCESS) {
        printf("Bail out! apr_initialize failed\n");
        exit(255);
    }
}

void scep_tap_plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
}

void scep_tap_run(const char *name, scep_tap_fn *fn)
{
    apr_pool_t *p = NULL;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        printf("Bail out! apr_pool_create failed\n");
        exit(255);
    }
    printf("# %s\n", name);
    fn(p);
    apr_pool_destroy(p);
}

int scep_tap_done(void)
{
    if (tap_planned < 0) {
        printf("1..%d\n", tap_count);
    }
    else if (tap_planned != tap_count) {
        printf("# planned %d tests but ran %d\n", tap_planned, tap_count);
        tap_failed++;
    }
    if (tap_failed) {
        printf("# failed %d of %d tests\n", tap_failed, tap_count);
    }
    apr_terminate();
    return tap_failed ? 1 : 0;
}

int scep_tap_skip_all(const char *why)
{
    printf("1..0 # SKIP %s\n", why);
    apr_terminate();
    return 0;
}

static int tap_result(int cond, const char *file, int line, const char *fmt,
                      va_list ap)
{
    tap_count++;
    printf("%sok %d - ", cond ? "" : "not ", tap_count);
    tap_vline(fmt, ap);
    printf("\n");
    if (!cond) {
        tap_failed++;
        printf("#   Failed test at %s line %d.\n", file, line);
    }
    return cond;
}

int scep_tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = tap_result(cond, file, line, fmt, ap);
    va_end(ap);
    return r;
}

int scep_tap_is_int(long long got, long long want, const char *file, int line,
                    const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = tap_result(got == want, file, line, fmt, ap);
    va_end(ap);
    if (!r) {
        printf("#          got: %lld\n#     expected: %lld\n", got, want);
    }
    return r;
}

int scep_tap_is_str(const char *got, const char *want, const char *file,
                    int line, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = tap_result((got == NULL && want == NULL)
                   || (got != NULL && want != NULL && strcmp(got, want) == 0),
                   file, line, fmt, ap);
    va_end(ap);
    if (!r) {
        printf("#          got: %s%s%s\n#     expected: %s%s%s\n",
               got ? "'" : "", got ? got : "NULL", got ? "'" : "",
               want ? "'" : "", want ? want : "NULL", want ? "'" : "");
    }
    return r;
}

void scep_tap_skip(int count, const char *fmt, ...)
{
    va_list ap;
    int i;

    for (i = 0; i < count; i++) {
        tap_count++;
        printf("ok %d # skip ", tap_count);
        va_start(ap, fmt);
        tap_vline(fmt, ap);
        va_end(ap);
        printf("\n");
    }
}

void scep_tap_diag(const char *fmt, ...)
{
    va_list ap;

    printf("# ");
    va_start(ap, fmt);
    tap_vline(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* ---- test PKI ---------------------------------------------------------- */

static void tap_bail(const char *what)
{
    printf("Bail out! %s\n", what);
    exit(255);
}

EVP_PKEY *scep_tap_rsa_key(apr_pool_t *p, int bits)
{
    EVP_PKEY *k = EVP_RSA_gen((unsigned int)bits);

    if (k == NULL) {
        tap_bail("RSA key generation failed");
    }
    return scep_own_pkey(p, k);
}

static void tap_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL || !X509_add_ext(x, ext, -1)) {
        tap_bail("cannot add a certificate extension");
    }
    X509_EXTENSION_free(ext);
}

X509 *scep_tap_cert(apr_pool_t *p, const char *cn, EVP_PKEY *key,
                    X509 *issuer, EVP_PKEY *issuer_key, int ca,
                    unsigned int ku, int days)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    BIGNUM *bn = BN_new();
    char kus[256];

    if (x == NULL || name == NULL || bn == NULL
        || !X509_set_version(x, X509_VERSION_3)
        || !BN_rand(bn, 63, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY)
        || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))
        || !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                       (const unsigned char *)cn, -1, -1, 0)
        || !X509_set_subject_name(x, name)
        || !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
                                           : name)
        || !X509_gmtime_adj(X509_getm_notBefore(x), -3600)
        || !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400)
        || !X509_set_pubkey(x, key)) {
        tap_bail("cannot build a certificate");
    }
    tap_add_ext(x, issuer, NID_basic_constraints,
                ca ? "critical,CA:TRUE" : "CA:FALSE");
    tap_add_ext(x, issuer, NID_subject_key_identifier, "hash");
    if (ku) {
        kus[0] = 0;
        if (ku & KU_DIGITAL_SIGNATURE) {
            strcat(kus, ",digitalSignature");
        }
        if (ku & KU_KEY_ENCIPHERMENT) {
            strcat(kus, ",keyEncipherment");
        }
        if (ku & KU_DATA_ENCIPHERMENT) {
            strcat(kus, ",dataEncipherment");
        }
        if (ku & KU_KEY_CERT_SIGN) {
            strcat(kus, ",keyCertSign");
        }
        if (ku & KU_CRL_SIGN) {
            strcat(kus, ",cRLSign");
        }
        tap_add_ext(x, issuer, NID_key_usage, kus + 1);
    }
    if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256())) {
        tap_bail("cannot sign a certificate");
    }
    X509_NAME_free(name);
    BN_free(bn);
    return scep_own_x509(p, x);
}

X509_REQ *scep_tap_csr(apr_pool_t *p, const char *cn, EVP_PKEY *key,
                       const char *challenge)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();

    if (req == NULL || name == NULL
        || !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                       (const unsigned char *)cn, -1, -1, 0)
        || !X509_REQ_set_subject_name(req, name)
        || !X509_REQ_set_pubkey(req, key)) {
        tap_bail("cannot build a CSR");
    }
    if (challenge
        && !X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword,
                                      V_ASN1_PRINTABLESTRING,
                                      (const unsigned char *)challenge,
                                      (int)strlen(challenge))) {
        tap_bail("cannot add challengePassword");
    }
    if (!X509_REQ_sign(req, key, EVP_sha256())) {
        tap_bail("cannot sign a CSR");
    }
    X509_NAME_free(name);
    return scep_own_req(p, req);
}

const unsigned char *scep_tap_csr_der(apr_pool_t *p, X509_REQ *csr,
                                      apr_size_t *len)
{
    int n = i2d_X509_REQ(csr, NULL);
    unsigned char *buf, *q;

    if (n <= 0) {
        tap_bail("cannot encode a CSR");
    }
    buf = q = apr_palloc(p, (apr_size_t)n);
    i2d_X509_REQ(csr, &q);
    *len = (apr_size_t)n;
    return buf;
}

STACK_OF(X509) *scep_tap_certs(apr_pool_t *p, ...)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    va_list ap;
    X509 *x;

    va_start(ap, p);
    while ((x = va_arg(ap, X509 *)) != NULL) {
        X509_up_ref(x);
        sk_X509_push(sk, x);
    }
    va_end(ap);
    return scep_own_certs(p, sk);
}
