/* Licensed under the Apache License, Version 2.0.
 *
 * mod_scep_example_ca: an out-of-tree CA backend provider for mod_scep.
 *
 * A complete, small httpd module that registers the CA provider "example"
 * with mod_scep, using nothing of mod_scep but its installed public header
 * <mod_scep.h>.  It is a tiny self-contained CA: it signs requests with a CA
 * certificate and key of its own, given as arguments.
 *
 * Build and install (see examples/README.md):
 *
 *   apxs -c -i -I/path/where/mod_scep.h/is mod_scep_example_ca.c -lcrypto
 *
 * Configure:
 *
 *   LoadModule scep_module         modules/mod_scep.so
 *   LoadModule scep_example_ca_module modules/mod_scep_example_ca.so
 *   <Location /example/mscep>
 *       SetHandler scep
 *       SCEPCACertificateFile /etc/scep/ca.pem
 *       SCEPCAProvider example /etc/scep/ca.pem /etc/scep/ca.key
 *       ...
 *   </Location>
 *
 * The module that provides a CA provider must be loaded before the first
 * SCEPCAProvider line that names it: mod_scep looks the name up when it
 * reads the directive.
 */
#include <string.h>
#include <time.h>

#include "httpd.h"
#include "http_config.h"
#include "ap_provider.h"

#include "apr_strings.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "mod_scep.h"

module AP_MODULE_DECLARE_DATA scep_example_ca_module;

/* One instance per SCEPCAProvider line, allocated from the configuration
 * pool: it lives until the next restart. */
typedef struct {
    const char *cert_path;
    X509 *cert;          /* the CA certificate */
    EVP_PKEY *key;       /* its private key */
} example_ca_t;

/* OpenSSL objects are freed with the pool that owns them. */
static apr_status_t free_x509(void *x)
{
    X509_free(x);
    return APR_SUCCESS;
}

static apr_status_t free_pkey(void *k)
{
    EVP_PKEY_free(k);
    return APR_SUCCESS;
}

static apr_status_t free_certs(void *sk)
{
    sk_X509_pop_free(sk, X509_free);
    return APR_SUCCESS;
}

/* OpenSSL's error queue as one line, emptied. */
static const char *ssl_error(apr_pool_t *p)
{
    char buf[256];
    unsigned long e = ERR_get_error();

    if (e == 0) {
        return "no OpenSSL error";
    }
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return apr_pstrdup(p, buf);
}

/* ---- create: parse the directive's arguments (configuration time) ---- */

static const char *example_create(void **instance, apr_pool_t *p, int argc,
                                  const char *const *argv)
{
    example_ca_t *ca = apr_pcalloc(p, sizeof(*ca));
    FILE *f;

    if (argc != 2) {
        return "the example CA provider takes two arguments: the CA "
               "certificate file and its key file (PEM)";
    }
    /* mod_scep has made names of existing files absolute (ServerRoot) */
    ca->cert_path = argv[0];
    if ((f = fopen(argv[0], "r")) == NULL) {
        return apr_psprintf(p, "cannot open the CA certificate %s", argv[0]);
    }
    ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (ca->cert == NULL) {
        return apr_psprintf(p, "%s: no PEM certificate: %s", argv[0],
                            ssl_error(p));
    }
    apr_pool_cleanup_register(p, ca->cert, free_x509, apr_pool_cleanup_null);

    /* the key is read now, as root, before httpd drops privileges */
    if ((f = fopen(argv[1], "r")) == NULL) {
        return apr_psprintf(p, "cannot open the CA key %s", argv[1]);
    }
    ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (ca->key == NULL) {
        return apr_psprintf(p, "%s: no PEM private key: %s", argv[1],
                            ssl_error(p));
    }
    apr_pool_cleanup_register(p, ca->key, free_pkey, apr_pool_cleanup_null);

    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        ERR_clear_error();
        return apr_psprintf(p, "the key %s does not belong to %s", argv[1],
                            argv[0]);
    }
    *instance = ca;
    return NULL;
}

/* ---- init: start-up check with the endpoint's merged configuration ---- */

static const char *example_init(void *instance, apr_pool_t *p,
                                STACK_OF(X509) *ca_chain)
{
    example_ca_t *ca = instance;

    /* Clients check what they get against GetCACert: the endpoint must
     * publish this CA. */
    if (ca_chain == NULL || sk_X509_num(ca_chain) == 0
        || X509_cmp(sk_X509_value(ca_chain, 0), ca->cert) != 0) {
        return apr_psprintf(p, "the example CA %s must be the first "
                            "certificate of SCEPCACertificateFile",
                            ca->cert_path);
    }
    return NULL;
}

/* ---- enroll: issue a certificate (request time) ------------------------ */

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1);

    X509_EXTENSION_free(ext);
    return ok;
}

static apr_status_t example_enroll(void *instance,
                                   const scep_ca_request_t *req,
                                   scep_ca_reply_t *reply, apr_pool_t *p)
{
    example_ca_t *ca = instance;
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    STACK_OF(X509) *certs;
    STACK_OF(X509_EXTENSION) *req_exts = NULL;
    X509V3_CTX v3;
    time_t now = time(NULL);
    long days = req->validity_days > 0 ? req->validity_days : 365;
    const char *eku = "clientAuth";
    int i, idx;

    reply->status = SCEP_CA_ERROR;
    if (x == NULL || bn == NULL) {
        goto fail;
    }
    /* The profile's extended key usages, as dotted OIDs. */
    if (req->ext_key_usage && req->ext_key_usage[0]) {
        eku = apr_pstrdup(p, req->ext_key_usage[0]);
        for (i = 1; req->ext_key_usage[i]; i++) {
            eku = apr_pstrcat(p, eku, ",", req->ext_key_usage[i], NULL);
        }
    }
    /* a random positive 128-bit serial */
    if (!X509_set_version(x, X509_VERSION_3)
        || !BN_rand(bn, 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY)
        || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))
        || !X509_set_issuer_name(x, X509_get_subject_name(ca->cert))
        || !X509_set_subject_name(x, X509_REQ_get_subject_name(req->csr))
        || !X509_set_pubkey(x, X509_REQ_get0_pubkey(req->csr))
        || !X509_time_adj_ex(X509_getm_notBefore(x), 0, -300, &now)
        || !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &now)) {
        goto fail;
    }
    X509V3_set_ctx(&v3, ca->cert, x, NULL, NULL, 0);
    if (!add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE")
        || !add_ext(x, &v3, NID_key_usage,
                    "critical,digitalSignature,keyEncipherment")
        || !add_ext(x, &v3, NID_ext_key_usage, eku)
        || !add_ext(x, &v3, NID_subject_key_identifier, "hash")
        || !add_ext(x, &v3, NID_authority_key_identifier, "keyid")) {
        goto fail;
    }
    /* the CSR's subjectAltName, when the profile says so (mod_scep's
     * policy has checked it) */
    if (req->copy_san) {
        req_exts = X509_REQ_get_extensions(req->csr);
        idx = X509v3_get_ext_by_NID(req_exts, NID_subject_alt_name, -1);
        if (idx >= 0 && !X509_add_ext(x, X509v3_get_ext(req_exts, idx), -1)) {
            goto fail;
        }
    }
    if (X509_sign(x, ca->key, EVP_sha256()) <= 0) {
        goto fail;
    }

    /* The reply: the new certificate, then the CA.  The stack and its
     * certificates belong to the request pool. */
    certs = sk_X509_new_null();
    if (certs == NULL) {
        goto fail;
    }
    apr_pool_cleanup_register(p, certs, free_certs, apr_pool_cleanup_null);
    sk_X509_push(certs, x);
    x = NULL;
    X509_up_ref(ca->cert);
    sk_X509_push(certs, ca->cert);
    reply->certs = certs;
    reply->status = SCEP_CA_ISSUED;
    goto leave;

fail:
    reply->status = SCEP_CA_ERROR;
    reply->reason = apr_psprintf(p, "example CA: %s", ssl_error(p));
leave:
    sk_X509_EXTENSION_pop_free(req_exts, X509_EXTENSION_free);
    X509_free(x);
    BN_free(bn);
    return APR_SUCCESS;
}

static const scep_ca_provider_t example_provider = {
    "example",
    example_create,
    example_init,
    example_enroll,
    NULL,   /* poll: this CA decides at once, nothing is ever pending */
    NULL,   /* get_cert */
    NULL,   /* get_crl */
    NULL    /* revoke */
};

static void register_hooks(apr_pool_t *p)
{
    ap_register_provider(p, SCEP_CA_PROVIDER_GROUP, "example",
                         SCEP_CA_PROVIDER_VERSION, &example_provider);
}

AP_DECLARE_MODULE(scep_example_ca) = {
    STANDARD20_MODULE_STUFF,
    NULL,               /* per-directory config */
    NULL,               /* merge per-directory */
    NULL,               /* per-server config */
    NULL,               /* merge per-server */
    NULL,               /* no directives of its own */
    register_hooks,
#if defined(AP_MODULE_FLAG_NONE)
    AP_MODULE_FLAG_NONE
#endif
};
