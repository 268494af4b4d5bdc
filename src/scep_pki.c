/* Licensed under the Apache License, Version 2.0.
 *
 * PKI helpers of the core: pool-owned OpenSSL objects, loading, checks.
 */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <openssl/store.h>
#include <openssl/ui.h>

#include "scep_engine.h"
#include "scep_pki.h"

/* Set once the process is ending: the pools are torn down by exit
 * handlers, possibly after OpenSSL's own, and freeing then would touch
 * what OpenSSL already released.  The memory goes with the process. */
static volatile int exiting;

void scep_pki_process_exiting(void)
{
    exiting = 1;
}

static apr_status_t free_x509(void *d)
{
    if (!exiting) {
        X509_free(d);
    }
    return APR_SUCCESS;
}

static apr_status_t free_req(void *d)
{
    if (!exiting) {
        X509_REQ_free(d);
    }
    return APR_SUCCESS;
}

static apr_status_t free_pkey(void *d)
{
    if (!exiting) {
        EVP_PKEY_free(d);
    }
    return APR_SUCCESS;
}

/* An ENGINE that holds keys: registered before the key it serves, so that
 * the pool frees the key first. */
static apr_status_t free_engine(void *d)
{
    if (!exiting) {
        scep_engine_release(d);
    }
    return APR_SUCCESS;
}

static apr_status_t free_name(void *d)
{
    if (!exiting) {
        X509_NAME_free(d);
    }
    return APR_SUCCESS;
}

static apr_status_t free_int(void *d)
{
    if (!exiting) {
        ASN1_INTEGER_free(d);
    }
    return APR_SUCCESS;
}

static apr_status_t free_certs(void *d)
{
    if (!exiting) {
        sk_X509_pop_free(d, X509_free);
    }
    return APR_SUCCESS;
}

#define OWN(fn, type, freefn)                                              \
    type *fn(apr_pool_t *p, type *x)                                       \
    {                                                                      \
        if (x) {                                                           \
            apr_pool_cleanup_register(p, x, freefn,                        \
                                      apr_pool_cleanup_null);              \
        }                                                                  \
        return x;                                                          \
    }

OWN(scep_own_x509, X509, free_x509)
OWN(scep_own_req, X509_REQ, free_req)
OWN(scep_own_pkey, EVP_PKEY, free_pkey)
OWN(scep_own_name, X509_NAME, free_name)
OWN(scep_own_int, ASN1_INTEGER, free_int)

STACK_OF(X509) *scep_own_certs(apr_pool_t *p, STACK_OF(X509) *sk)
{
    if (sk) {
        apr_pool_cleanup_register(p, sk, free_certs, apr_pool_cleanup_null);
    }
    return sk;
}

const char *scep_ssl_errors(apr_pool_t *p)
{
    unsigned long e;
    const char *out = NULL;
    char buf[256];

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        out = out ? apr_pstrcat(p, out, "; ", buf, NULL)
                  : apr_pstrdup(p, buf);
    }
    return out ? out : "no OpenSSL error";
}

apr_status_t scep_load_certs(STACK_OF(X509) **certs, const char *path,
                             const char **why, apr_pool_t *p)
{
    BIO *bio = NULL;
    STACK_OF(X509) *sk = NULL;
    X509 *x;
    apr_status_t rv = APR_EINVAL;

    *certs = NULL;
    ERR_clear_error();
    if ((bio = BIO_new_file(path, "rb")) == NULL) {
        *why = apr_psprintf(p, "cannot open '%s': %s", path,
                            scep_ssl_errors(p));
        return APR_ENOENT;
    }
    sk = sk_X509_new_null();
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        sk_X509_push(sk, x);
    }
    if (sk_X509_num(sk) == 0) {
        /* not PEM: try one DER certificate */
        ERR_clear_error();
        (void)BIO_reset(bio);
        if ((x = d2i_X509_bio(bio, NULL)) != NULL) {
            sk_X509_push(sk, x);
        }
    }
    if (sk_X509_num(sk) == 0) {
        *why = apr_psprintf(p, "no certificate in '%s': %s", path,
                            scep_ssl_errors(p));
        sk_X509_free(sk);
        goto leave;
    }
    ERR_clear_error();
    *certs = scep_own_certs(p, sk);
    rv = APR_SUCCESS;
leave:
    BIO_free(bio);
    return rv;
}

apr_status_t scep_load_key(EVP_PKEY **key, const char *path_or_uri,
                           const char **why, apr_pool_t *p)
{
    OSSL_STORE_CTX *ctx;
    OSSL_STORE_INFO *info;
    EVP_PKEY *k = NULL;
    apr_status_t rv;
    const char *engine_why = NULL;

    *key = NULL;
    ERR_clear_error();
    /* PKCS#11 tokens: OpenSSL 3.0 on Debian 12 reaches them only through
     * the pkcs11 engine; a store loader for the scheme (a pkcs11 provider
     * in openssl.cnf) is the fallback when no such engine is installed */
    if (scep_engine_uri(path_or_uri)) {
        void *engine = NULL;

        rv = scep_engine_load_key(&k, &engine, path_or_uri, &engine_why, p);
        if (rv == APR_SUCCESS) {
            /* cleanups run last-registered first: the key, then the ENGINE */
            apr_pool_cleanup_register(p, engine, free_engine,
                                      apr_pool_cleanup_null);
            *key = scep_own_pkey(p, k);
            return APR_SUCCESS;
        }
        if (rv != APR_ENOENT || strncasecmp(path_or_uri, "pkcs11:", 7)) {
            *why = engine_why;
            return rv;
        }
    }
    /* a plain path works as it is ("file:" would want it absolute) */
    ctx = OSSL_STORE_open(path_or_uri, UI_null(), NULL, NULL, NULL);
    if (ctx == NULL) {
        *why = engine_why ? engine_why
               : apr_psprintf(p, "cannot open key '%s': %s", path_or_uri,
                              scep_ssl_errors(p));
        return APR_ENOENT;
    }
    while (k == NULL && !OSSL_STORE_eof(ctx)) {
        info = OSSL_STORE_load(ctx);
        if (info == NULL) {
            if (OSSL_STORE_error(ctx)) {
                break;
            }
            continue;
        }
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) {
            k = OSSL_STORE_INFO_get1_PKEY(info);
        }
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(ctx);
    if (k == NULL) {
        *why = engine_why ? engine_why
               : apr_psprintf(p, "no private key in '%s': %s", path_or_uri,
                              scep_ssl_errors(p));
        return APR_EINVAL;
    }
    ERR_clear_error();
    *key = scep_own_pkey(p, k);
    return APR_SUCCESS;
}

int scep_key_matches_cert(EVP_PKEY *key, X509 *cert)
{
    int ok = X509_check_private_key(cert, key);
    ERR_clear_error();
    return ok == 1;
}

int scep_cert_has_ku(X509 *cert, unsigned int ku)
{
    uint32_t have = X509_get_key_usage(cert);
    /* UINT32_MAX: no keyUsage extension, every usage allowed */
    return (have & ku) == ku;
}

long long scep_cert_seconds_left(X509 *cert)
{
    int days = 0, secs = 0;

    if (!ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert))) {
        return -1;
    }
    return (long long)days * 86400 + secs;
}

apr_status_t scep_cert_der(const unsigned char **der, apr_size_t *len,
                           X509 *cert, apr_pool_t *p)
{
    int n = i2d_X509(cert, NULL);
    unsigned char *buf, *q;

    if (n <= 0) {
        return APR_EINVAL;
    }
    buf = q = apr_palloc(p, n);
    i2d_X509(cert, &q);
    *der = buf;
    *len = n;
    return APR_SUCCESS;
}

const char *scep_cert_md5_thumbprint(X509 *cert, apr_pool_t *p)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    char *out, *o;

    if (!X509_digest(cert, EVP_md5(), md, &n) || n != 16) {
        return NULL;
    }
    out = o = apr_palloc(p, 16 * 2 + 3 + 1);
    for (i = 0; i < n; i++) {
        if (i && i % 4 == 0) {
            *o++ = ' ';
        }
        o += apr_snprintf(o, 3, "%02X", md[i]);
    }
    *o = '\0';
    return out;
}

const char *scep_name_str(const X509_NAME *name, apr_pool_t *p)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;
    const char *out;

    if (!bio) {
        return "";
    }
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    n = BIO_get_mem_data(bio, &data);
    out = apr_pstrmemdup(p, data, n);
    BIO_free(bio);
    return out;
}

const char *scep_serial_str(const ASN1_INTEGER *serial, apr_pool_t *p)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    char *hex;
    const char *out;

    if (!bn) {
        return "?";
    }
    hex = BN_bn2hex(bn);
    out = apr_pstrdup(p, hex ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
    return out;
}
