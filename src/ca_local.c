/* Licensed under the Apache License, Version 2.0.
 *
 * The "local" CA provider: an in-process OpenSSL CA that signs the CSR with
 * the key of the endpoint's CA certificate.  CORE: APR and OpenSSL only.
 */
#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "ca_local.h"
#include "scep_pki.h"
#include "scep_engine.h"

typedef struct {
    const char *key_path;
    EVP_PKEY *key;
    X509 *ca;                  /* issuing CA certificate */
    STACK_OF(X509) *chain;     /* CA chain, issuing CA first */
} ca_local_t;

/* Key usages a requester may ask for; anything else is dropped. */
#define LOCAL_KU_ALLOWED (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION      \
                          | KU_KEY_ENCIPHERMENT | KU_DATA_ENCIPHERMENT   \
                          | KU_KEY_AGREEMENT)

static const char *local_create(void **instance, apr_pool_t *p,
                                int argc, const char *const *argv)
{
    ca_local_t *ca = apr_pcalloc(p, sizeof(*ca));
    const char *why = NULL;

    if (argc != 1) {
        return "the local CA provider takes one argument: the CA key "
               "(file name or OpenSSL store URI such as pkcs11:...)";
    }
    ca->key_path = argv[0];
    if (scep_load_key(&ca->key, ca->key_path, &why, p) != APR_SUCCESS) {
        return why;
    }
    *instance = ca;
    return NULL;
}

static const char *local_init(void *instance, apr_pool_t *p,
                              STACK_OF(X509) *ca_chain)
{
    ca_local_t *ca = instance;

    if (ca_chain == NULL || sk_X509_num(ca_chain) == 0) {
        return "the local CA provider needs SCEPCACertificateFile";
    }
    if (ca->ca && X509_cmp(ca->ca, sk_X509_value(ca_chain, 0)) != 0) {
        /* one instance is one CA: sections that inherit it with another
         * SCEPCACertificateFile would otherwise take turns */
        return apr_psprintf(p, "this SCEPCAProvider local instance already "
                            "serves %s; give each CA its own SCEPCAProvider "
                            "local line",
                            scep_name_str(X509_get_subject_name(ca->ca), p));
    }
    ca->chain = ca_chain;
    ca->ca = sk_X509_value(ca_chain, 0);
    if (!scep_key_matches_cert(ca->key, ca->ca)) {
        return apr_psprintf(p, "CA key '%s' does not match the CA "
                            "certificate %s",
                            scep_engine_uri_shown(ca->key_path, p),
                            scep_name_str(X509_get_subject_name(ca->ca), p));
    }
    if (!scep_cert_has_ku(ca->ca, KU_KEY_CERT_SIGN)) {
        return apr_psprintf(p, "CA certificate %s lacks keyCertSign",
                            scep_name_str(X509_get_subject_name(ca->ca), p));
    }
    return NULL;
}

EVP_PKEY *scep_ca_local_key(void *instance)
{
    return instance ? ((ca_local_t *)instance)->key : NULL;
}

static int add_ext_nconf(X509 *x, X509V3_CTX *ctx, int nid, const char *val)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, val);
    int ok = ext && X509_add_ext(x, ext, -1);

    X509_EXTENSION_free(ext);
    return ok;
}

/* keyUsage: the CSR's request within LOCAL_KU_ALLOWED, else the usual
 * digitalSignature + keyEncipherment. */
static int add_key_usage(X509 *x, STACK_OF(X509_EXTENSION) *req_exts,
                         unsigned int want)
{
    ASN1_BIT_STRING *req_ku = X509V3_get_d2i(req_exts, NID_key_usage, NULL,
                                             NULL);
    ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
    static const int bits[] = { 0, 1, 2, 3, 4 };  /* digitalSignature..keyAgreement */
    int i, any = 0, ok;

    if (want) {
        /* the profile's usages, KU_* bits as x509v3.h numbers them */
        static const unsigned int kus[] = { KU_DIGITAL_SIGNATURE,
            KU_NON_REPUDIATION, KU_KEY_ENCIPHERMENT, KU_DATA_ENCIPHERMENT,
            KU_KEY_AGREEMENT };
        for (i = 0; i < (int)(sizeof(kus) / sizeof(kus[0])); i++) {
            if (want & kus[i]) {
                ASN1_BIT_STRING_set_bit(ku, bits[i], 1);
                any = 1;
            }
        }
    }
    for (i = 0; !want && req_ku && i < (int)(sizeof(bits) / sizeof(bits[0]));
         i++) {
        if (ASN1_BIT_STRING_get_bit(req_ku, bits[i])) {
            ASN1_BIT_STRING_set_bit(ku, bits[i], 1);
            any = 1;
        }
    }
    if (!any) {
        ASN1_BIT_STRING_set_bit(ku, 0, 1);
        ASN1_BIT_STRING_set_bit(ku, 2, 1);
    }
    ok = X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) == 1;
    ASN1_BIT_STRING_free(ku);
    ASN1_BIT_STRING_free(req_ku);
    return ok;
}

/* extendedKeyUsage: the CSR's request among the common end-entity
 * purposes, else clientAuth. */
static int add_eku(X509 *x, STACK_OF(X509_EXTENSION) *req_exts,
                   const char *const *want)
{
    static const int allowed[] = { NID_server_auth, NID_client_auth,
                                   NID_email_protect, NID_ipsec_IKE };
    EXTENDED_KEY_USAGE *req = X509V3_get_d2i(req_exts, NID_ext_key_usage,
                                             NULL, NULL);
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    int i, j, ok;

    for (i = 0; want && want[i]; i++) {
        ASN1_OBJECT *o = OBJ_txt2obj(want[i], 1);
        if (o) {
            sk_ASN1_OBJECT_push(eku, o);
        }
    }
    if (want) {
        ok = sk_ASN1_OBJECT_num(eku) == 0
             || X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0,
                                  X509V3_ADD_DEFAULT) == 1;
        sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
        sk_ASN1_OBJECT_pop_free(req, ASN1_OBJECT_free);
        return ok;
    }
    for (i = 0; req && i < sk_ASN1_OBJECT_num(req); i++) {
        int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(req, i));
        for (j = 0; j < (int)(sizeof(allowed) / sizeof(allowed[0])); j++) {
            if (nid == allowed[j]) {
                sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(nid));
            }
        }
    }
    if (sk_ASN1_OBJECT_num(eku) == 0) {
        sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth));
    }
    ok = X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0,
                           X509V3_ADD_DEFAULT) == 1;
    sk_ASN1_OBJECT_free(eku);   /* OBJ_nid2obj objects are static */
    sk_ASN1_OBJECT_pop_free(req, ASN1_OBJECT_free);
    return ok;
}

/* The CSR's SubjectPublicKeyInfo into the certificate as it is, without
 * X509_set_pubkey(): with OpenSSL 3.0 that encodes the EVP_PKEY and decodes
 * it back through the provider decoders, a tenth of an enrollment's CPU.
 * The certificate's key is only encoded and hashed (subjectKeyIdentifier)
 * from here on, never used, so the cached EVP_PKEY is not needed. */
static int copy_pubkey(X509 *x, X509_REQ *csr)
{
    X509_PUBKEY *to = X509_get_X509_PUBKEY(x);
    X509_ALGOR *from_alg = NULL, *alg;
    ASN1_TYPE *t;
    const unsigned char *bits = NULL;
    unsigned char *copy;
    int len = 0, ptype = V_ASN1_UNDEF;
    void *pval = NULL;
    ASN1_OBJECT *obj;

    if (to == NULL
        || !X509_PUBKEY_get0_param(NULL, &bits, &len, &from_alg,
                                   X509_REQ_get_X509_PUBKEY(csr))
        || bits == NULL || len <= 0
        || (alg = X509_ALGOR_dup(from_alg)) == NULL) {
        return 0;
    }
    if ((copy = OPENSSL_memdup(bits, (size_t)len)) == NULL) {
        X509_ALGOR_free(alg);
        return 0;
    }
    /* take the algorithm's OID and parameter out of the copy */
    obj = alg->algorithm;
    alg->algorithm = NULL;
    if ((t = alg->parameter) != NULL) {
        ptype = t->type;
        pval = t->value.ptr;
        alg->parameter = NULL;
        OPENSSL_free(t);
    }
    X509_ALGOR_free(alg);
    if (!X509_PUBKEY_set0_param(to, obj, ptype, pval, copy, len)) {
        ASN1_OBJECT_free(obj);
        if (pval != NULL) {
            ASN1_TYPE *tmp = ASN1_TYPE_new();
            if (tmp != NULL) {
                ASN1_TYPE_set(tmp, ptype, pval);
                ASN1_TYPE_free(tmp);
            }
        }
        OPENSSL_free(copy);
        return 0;
    }
    return 1;
}

static apr_status_t local_enroll(void *instance, const scep_ca_request_t *req,
                                 scep_ca_reply_t *reply, apr_pool_t *p)
{
    ca_local_t *ca = instance;
    X509 *x = NULL;
    BIGNUM *bn = NULL;
    STACK_OF(X509_EXTENSION) *req_exts = NULL;
    X509_EXTENSION *san;
    X509V3_CTX v3;
    STACK_OF(X509) *certs;
    int i, idx;
    long days = req->validity_days > 0 ? req->validity_days : 365;
    time_t now = time(NULL);

    reply->status = SCEP_CA_ERROR;
    ERR_clear_error();
    if ((x = X509_new()) == NULL || (bn = BN_new()) == NULL) {
        goto fail;
    }
    /* 159 random bits, top bit set: a positive 20-byte serial with at least
     * 128 bits of entropy (CA/B Forum asks for 64). */
    if (!X509_set_version(x, X509_VERSION_3)
        || !BN_rand(bn, 159, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY)
        || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))
        || !X509_set_issuer_name(x, X509_get_subject_name(ca->ca))
        || !copy_pubkey(x, req->csr)) {
        goto fail;
    }
    if (req->subject_cn_only) {
        X509_NAME *in = X509_REQ_get_subject_name(req->csr);
        X509_NAME *cn = X509_NAME_new();
        int k = X509_NAME_get_index_by_NID(in, NID_commonName, -1);
        if (cn == NULL || (k >= 0 && !X509_NAME_add_entry(
                               cn, X509_NAME_get_entry(in, k), -1, 0))
            || !X509_set_subject_name(x, cn)) {
            X509_NAME_free(cn);
            goto fail;
        }
        X509_NAME_free(cn);
    }
    else if (!X509_set_subject_name(x, X509_REQ_get_subject_name(req->csr))) {
        goto fail;
    }
    /* a few minutes back for clocks that run late; never past the CA */
    if (!X509_time_adj_ex(X509_getm_notBefore(x), 0, -300, &now)
        || !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &now)) {
        goto fail;
    }
    if (ASN1_TIME_compare(X509_get0_notAfter(x),
                          X509_get0_notAfter(ca->ca)) > 0) {
        X509_set1_notAfter(x, X509_get0_notAfter(ca->ca));
    }

    X509V3_set_ctx(&v3, ca->ca, x, NULL, NULL, 0);
    req_exts = X509_REQ_get_extensions(req->csr);
    if (!add_ext_nconf(x, &v3, NID_basic_constraints, "critical,CA:FALSE")
        || !add_ext_nconf(x, &v3, NID_subject_key_identifier, "hash")
        || !add_ext_nconf(x, &v3, NID_authority_key_identifier, "keyid")
        || !add_key_usage(x, req_exts, req->key_usage)
        || !add_eku(x, req_exts, req->ext_key_usage)
        || (req->crl_url
            && !add_ext_nconf(x, &v3, NID_crl_distribution_points,
                              apr_pstrcat(p, "URI:", req->crl_url, NULL)))) {
        goto fail;
    }
    idx = req->copy_san ? X509v3_get_ext_by_NID(req_exts, NID_subject_alt_name,
                                                -1)
                        : -1;
    if (idx >= 0) {
        san = X509v3_get_ext(req_exts, idx);
        if (!X509_add_ext(x, san, -1)) {
            goto fail;
        }
    }
    if (X509_get_subject_name(x) == NULL
        || (X509_NAME_entry_count(X509_get_subject_name(x)) == 0 && idx < 0)) {
        reply->status = SCEP_CA_REJECTED;
        reply->reason = "CSR has neither a subject nor subjectAltName";
        goto leave;
    }
    if (X509_sign(x, ca->key, EVP_sha256()) <= 0) {
        goto fail;
    }

    certs = scep_own_certs(p, sk_X509_new_null());
    sk_X509_push(certs, x);
    x = NULL;
    for (i = 0; i < sk_X509_num(ca->chain); i++) {
        X509 *c = sk_X509_value(ca->chain, i);
        X509_up_ref(c);
        sk_X509_push(certs, c);
    }
    reply->certs = certs;
    reply->status = SCEP_CA_ISSUED;
    goto leave;

fail:
    reply->status = SCEP_CA_ERROR;
    reply->reason = apr_psprintf(p, "local CA: %s", scep_ssl_errors(p));
leave:
    sk_X509_EXTENSION_pop_free(req_exts, X509_EXTENSION_free);
    X509_free(x);
    BN_free(bn);
    ERR_clear_error();
    return APR_SUCCESS;
}

const scep_ca_provider_t scep_ca_local_provider = {
    "local",
    local_create,
    local_init,
    local_enroll,
    NULL,   /* poll: the local CA decides at once */
    NULL,   /* get_cert: with the certificate store (issue 4) */
    NULL,   /* get_crl */
    NULL    /* revoke */
};
