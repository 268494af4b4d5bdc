/* Licensed under the Apache License, Version 2.0.
 *
 * SCEP message codec, server side, plus the helpers both sides share.
 */
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include <openssl/asn1t.h>
#include <openssl/cms.h>
#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "scep_msg.h"
#include "scep_pki.h"
#include "scep_asn1.h"

/* ---- the SCEP attribute OIDs, created once per process ---------------- */

static ASN1_OBJECT *oid_tab[SCEP_OID_COUNT];
static CRYPTO_ONCE oid_once = CRYPTO_ONCE_STATIC_INIT;

static void oid_init(void)
{
    static const char *const txt[SCEP_OID_COUNT] = {
        "2.16.840.1.113733.1.9.2",  /* messageType */
        "2.16.840.1.113733.1.9.3",  /* pkiStatus */
        "2.16.840.1.113733.1.9.4",  /* failInfo */
        "2.16.840.1.113733.1.9.5",  /* senderNonce */
        "2.16.840.1.113733.1.9.6",  /* recipientNonce */
        "2.16.840.1.113733.1.9.7",  /* transactionID */
    };
    int i;

    for (i = 0; i < SCEP_OID_COUNT; i++) {
        oid_tab[i] = OBJ_txt2obj(txt[i], 1);
    }
}

const ASN1_OBJECT *scep_oid(scep_oid_e which)
{
    CRYPTO_THREAD_run_once(&oid_once, oid_init);
    return oid_tab[which];
}

/* ---- a library context for parsing requests ---------------------------- */

/*
 * OpenSSL 3.0 decodes the key of every SubjectPublicKeyInfo it parses (the
 * certificates of a request's SignedData, its CSR) with a decoder context
 * that it builds each time by going through every key manager and every
 * decoder of every provider of the library context (3.2 caches it), an
 * eighth of the server's CPU.  Requests are therefore parsed in a library
 * context of their own, whose one provider ("scep-parse") hands out the
 * algorithms of the global context's default provider, with that
 * provider's own provctx, but of its decoders only those the DER
 * SubjectPublicKeyInfo path uses.  The keys decoded there belong to that
 * context; the SignedData and the CSR are verified there too, and a key
 * used with one of the global context (EVP_PKEY_eq, a chain check against
 * the CA certificate) is exported across by OpenSSL as usual.
 *
 * Set up once per process by scep_msg_parse_init(), never torn down (the
 * objects parsed in it live in pools until the process ends).  Without it
 * requests are parsed in the global context, as before.
 */
static CRYPTO_ONCE parse_once = CRYPTO_ONCE_STATIC_INIT;
static OSSL_LIB_CTX *parse_libctx;
static OSSL_PROVIDER *parse_deflt;        /* the global default provider */
static OSSL_ALGORITHM *parse_decoders;    /* the decoders kept, terminated */
static const char *parse_why;             /* why there is no parse context */

/* Is @a item one of the comma-separated properties of @a def? */
static int prop_has(const char *def, const char *item)
{
    size_t n = strlen(item);

    while (def != NULL && *def != '\0') {
        while (*def == ' ') {
            def++;
        }
        if (strncasecmp(def, item, n) == 0
            && (def[n] == '\0' || def[n] == ',' || def[n] == ' ')) {
            return 1;
        }
        def = strchr(def, ',');
        if (def != NULL) {
            def++;
        }
    }
    return 0;
}

static const OSSL_ALGORITHM *parse_prov_query(void *provctx, int operation,
                                              int *no_cache)
{
    (void)provctx;
    if (operation == OSSL_OP_DECODER) {
        *no_cache = 0;
        return parse_decoders;
    }
    return OSSL_PROVIDER_query_operation(parse_deflt, operation, no_cache);
}

static void parse_prov_unquery(void *provctx, int operation,
                               const OSSL_ALGORITHM *algs)
{
    (void)provctx;
    if (operation != OSSL_OP_DECODER) {
        OSSL_PROVIDER_unquery_operation(parse_deflt, operation, algs);
    }
}

static int parse_prov_capabilities(void *provctx, const char *capability,
                                   OSSL_CALLBACK *cb, void *arg)
{
    (void)provctx;
    return OSSL_PROVIDER_get_capabilities(parse_deflt, capability, cb, arg);
}

/* No teardown: the provctx is the default provider's. */
static const OSSL_DISPATCH parse_prov_dispatch[] = {
    { OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))parse_prov_query },
    { OSSL_FUNC_PROVIDER_UNQUERY_OPERATION,
      (void (*)(void))parse_prov_unquery },
    { OSSL_FUNC_PROVIDER_GET_CAPABILITIES,
      (void (*)(void))parse_prov_capabilities },
    { 0, NULL }
};

static int parse_prov_init(const OSSL_CORE_HANDLE *handle,
                           const OSSL_DISPATCH *in, const OSSL_DISPATCH **out,
                           void **provctx)
{
    (void)handle;
    (void)in;
    *provctx = OSSL_PROVIDER_get0_provider_ctx(parse_deflt);
    *out = parse_prov_dispatch;
    return *provctx != NULL;
}

/* The default provider's SubjectPublicKeyInfo decoders (DER to key, and
 * the one that reads the algorithm to pick the key type), copied once. */
static int parse_pick_decoders(void)
{
    const OSSL_ALGORITHM *all;
    int no_cache = 0, i, n = 0;

    all = OSSL_PROVIDER_query_operation(parse_deflt, OSSL_OP_DECODER,
                                        &no_cache);
    if (all == NULL) {
        return 0;
    }
    for (i = 0; all[i].algorithm_names != NULL; i++) {
        continue;
    }
    parse_decoders = OPENSSL_zalloc(sizeof(*parse_decoders) * (i + 1));
    for (i = 0; parse_decoders && all[i].algorithm_names != NULL; i++) {
        if (prop_has(all[i].property_definition, "input=der")
            && prop_has(all[i].property_definition,
                        "structure=SubjectPublicKeyInfo")) {
            parse_decoders[n++] = all[i];
        }
    }
    OSSL_PROVIDER_unquery_operation(parse_deflt, OSSL_OP_DECODER, all);
    return n;
}

static void parse_init(void)
{
    OSSL_LIB_CTX *lc = NULL;

    /* only where the global context has the default provider (not with a
     * FIPS-only configuration, say): the same algorithms are used then */
    if (!OSSL_PROVIDER_available(NULL, "default")
        || (parse_deflt = OSSL_PROVIDER_try_load(NULL, "default", 1))
           == NULL) {
        parse_why = "OpenSSL's default provider is not loaded";
        goto leave;
    }
    if (parse_pick_decoders() == 0) {
        parse_why = "the default provider has no SubjectPublicKeyInfo "
                    "decoders";
        goto leave;
    }
    if ((lc = OSSL_LIB_CTX_new()) == NULL
        || !OSSL_PROVIDER_add_builtin(lc, "scep-parse", parse_prov_init)
        || OSSL_PROVIDER_load(lc, "scep-parse") == NULL) {
        parse_why = "cannot load the parsing provider";
        goto leave;
    }
    parse_libctx = lc;
    lc = NULL;

leave:
    if (parse_libctx == NULL) {
        OSSL_LIB_CTX_free(lc);
        OPENSSL_free(parse_decoders);
        parse_decoders = NULL;
        if (parse_deflt != NULL) {
            OSSL_PROVIDER_unload(parse_deflt);
            parse_deflt = NULL;
        }
    }
    ERR_clear_error();
}

apr_status_t scep_msg_parse_init(const char **why)
{
    if (!CRYPTO_THREAD_run_once(&parse_once, parse_init)) {
        *why = "CRYPTO_THREAD_run_once failed";
        return APR_EGENERAL;
    }
    *why = parse_why;
    return parse_libctx != NULL ? APR_SUCCESS : APR_ENOTIMPL;
}

/* A CMS ContentInfo made in the parsing context and decoded into: its
 * certificates and their keys are decoded there, and verified there. */
static CMS_ContentInfo *parse_cms(const unsigned char **in, long len)
{
    CMS_ContentInfo *cms;

    if (parse_libctx == NULL) {
        return d2i_CMS_ContentInfo(NULL, in, len);
    }
    if ((cms = CMS_ContentInfo_new_ex(parse_libctx, NULL)) == NULL) {
        return NULL;
    }
    /* frees it and sets it to NULL on failure */
    return d2i_CMS_ContentInfo(&cms, in, len);
}

/* The CSR's key is decoded in the parsing context.  (d2i into an
 * X509_REQ_new_ex() object would not do: its X509_PUBKEY exists already,
 * made without the context.)  It is verified with X509_REQ_verify_ex(). */
static X509_REQ *parse_req(const unsigned char **in, long len)
{
    if (parse_libctx == NULL) {
        return d2i_X509_REQ(NULL, in, len);
    }
    return (X509_REQ *)ASN1_item_d2i_ex(NULL, in, len,
                                        ASN1_ITEM_rptr(X509_REQ),
                                        parse_libctx, NULL);
}

/* ---- IssuerAndSubject (GetCertInitial) -------------------------------- */

ASN1_SEQUENCE(SCEP_ISSUER_AND_SUBJECT) = {
    ASN1_SIMPLE(SCEP_ISSUER_AND_SUBJECT, issuer, X509_NAME),
    ASN1_SIMPLE(SCEP_ISSUER_AND_SUBJECT, subject, X509_NAME)
} ASN1_SEQUENCE_END(SCEP_ISSUER_AND_SUBJECT)

IMPLEMENT_ASN1_FUNCTIONS(SCEP_ISSUER_AND_SUBJECT)

/* ---- small helpers ----------------------------------------------------- */

static apr_status_t free_cms(void *d)
{
    CMS_ContentInfo_free(d);
    return APR_SUCCESS;
}

static apr_status_t free_bio(void *d)
{
    BIO_free(d);
    return APR_SUCCESS;
}

static apr_status_t free_p7(void *d)
{
    PKCS7_free(d);
    return APR_SUCCESS;
}

static CMS_ContentInfo *own_cms(apr_pool_t *p, CMS_ContentInfo *c)
{
    if (c) {
        apr_pool_cleanup_register(p, c, free_cms, apr_pool_cleanup_null);
    }
    return c;
}

static BIO *own_bio(apr_pool_t *p, BIO *b)
{
    if (b) {
        apr_pool_cleanup_register(p, b, free_bio, apr_pool_cleanup_null);
    }
    return b;
}

/* Copy a memory BIO's contents into the pool. */
static void bio_take(BIO *b, const unsigned char **data, apr_size_t *len,
                     apr_pool_t *p)
{
    char *mem = NULL;
    long n = BIO_get_mem_data(b, &mem);

    *data = (const unsigned char *)apr_pmemdup(p, mem, n > 0 ? n : 1);
    *len = n > 0 ? (apr_size_t)n : 0;
}

const char *scep_msg_type_name(int t)
{
    switch (t) {
    case SCEP_MT_CERTREP:    return "CertRep";
    case SCEP_MT_RENEWALREQ: return "RenewalReq";
    case SCEP_MT_UPDATEREQ:  return "UpdateReq";
    case SCEP_MT_PKCSREQ:    return "PKCSReq";
    case SCEP_MT_CERTPOLL:   return "CertPoll";
    case SCEP_MT_GETCERT:    return "GetCert";
    case SCEP_MT_GETCRL:     return "GetCRL";
    default:                 return "unknown";
    }
}

const char *scep_fail_name(int f)
{
    switch (f) {
    case SCEP_FAIL_BADALG:      return "badAlg";
    case SCEP_FAIL_BADMSGCHECK: return "badMessageCheck";
    case SCEP_FAIL_BADREQUEST:  return "badRequest";
    case SCEP_FAIL_BADTIME:     return "badTime";
    case SCEP_FAIL_BADCERTID:   return "badCertId";
    default:                    return "none";
    }
}

int scep_cipher_bit(int nid)
{
    switch (nid) {
    case NID_des_cbc:         return SCEP_CIPHER_DES;
    case NID_des_ede3_cbc:    return SCEP_CIPHER_DES3;
    case NID_aes_128_cbc:     return SCEP_CIPHER_AES128;
    case NID_aes_192_cbc:     return SCEP_CIPHER_AES192;
    case NID_aes_256_cbc:     return SCEP_CIPHER_AES256;
    default:                  return 0;
    }
}

int scep_digest_bit(int nid)
{
    switch (nid) {
    case NID_sha1:            return SCEP_DIGEST_SHA1;
    case NID_sha256:          return SCEP_DIGEST_SHA256;
    case NID_sha384:          return SCEP_DIGEST_SHA384;
    case NID_sha512:          return SCEP_DIGEST_SHA512;
    default:                  return 0;
    }
}

apr_status_t scep_nonce(unsigned char nonce[SCEP_NONCE_LEN])
{
    return RAND_bytes(nonce, SCEP_NONCE_LEN) == 1 ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t scep_base64_decode(unsigned char **out, apr_size_t *outlen,
                                const char *in, apr_size_t inlen,
                                apr_pool_t *p)
{
    char *norm;
    apr_size_t i, n = 0;
    unsigned char *buf;
    EVP_ENCODE_CTX *ctx;
    int l1 = 0, l2 = 0, ok;

    /* Normalise: URL-safe alphabet to standard, '+' that became ' ' in a
     * form-decoded query back to '+', line breaks dropped, padding added. */
    norm = apr_palloc(p, inlen + 4);
    for (i = 0; i < inlen; i++) {
        char c = in[i];
        if (c == '\r' || c == '\n' || c == '\t') {
            continue;
        }
        if (c == '-' || c == ' ') {
            c = '+';
        }
        else if (c == '_') {
            c = '/';
        }
        else if (!(apr_isalnum(c) || c == '+' || c == '/' || c == '=')) {
            return APR_EINVAL;
        }
        norm[n++] = c;
    }
    while (n % 4) {
        norm[n++] = '=';
    }
    if (n == 0) {
        return APR_EINVAL;
    }
    buf = apr_palloc(p, (n / 4) * 3 + 1);
    if ((ctx = EVP_ENCODE_CTX_new()) == NULL) {
        return APR_ENOMEM;
    }
    EVP_DecodeInit(ctx);
    ok = EVP_DecodeUpdate(ctx, buf, &l1, (const unsigned char *)norm, (int)n);
    if (ok >= 0) {
        ok = EVP_DecodeFinal(ctx, buf + l1, &l2);
    }
    EVP_ENCODE_CTX_free(ctx);
    if (ok < 0 || l1 + l2 <= 0) {
        return APR_EINVAL;
    }
    *out = buf;
    *outlen = (apr_size_t)(l1 + l2);
    return APR_SUCCESS;
}

/* The single value of a signed attribute; NULL when absent, repeated, or
 * not of the expected ASN.1 type. */
static const ASN1_STRING *signed_attr(CMS_SignerInfo *si, scep_oid_e which,
                                      int type, const char **why,
                                      apr_pool_t *p)
{
    const ASN1_OBJECT *obj = scep_oid(which);
    int idx = CMS_signed_get_attr_by_OBJ(si, obj, -1);
    X509_ATTRIBUTE *attr;
    ASN1_TYPE *val;
    char name[80];

    OBJ_obj2txt(name, sizeof(name), obj, 1);
    if (idx < 0) {
        *why = apr_psprintf(p, "attribute %s missing", name);
        return NULL;
    }
    if (CMS_signed_get_attr_by_OBJ(si, obj, idx) >= 0) {
        *why = apr_psprintf(p, "attribute %s repeated", name);
        return NULL;
    }
    attr = CMS_signed_get_attr(si, idx);
    if (X509_ATTRIBUTE_count(attr) != 1
        || (val = X509_ATTRIBUTE_get0_type(attr, 0)) == NULL
        || val->type != type) {
        *why = apr_psprintf(p, "attribute %s has not one value of the "
                            "expected type", name);
        return NULL;
    }
    return val->value.asn1_string;
}

static int parse_int_string(const ASN1_STRING *s)
{
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int n = ASN1_STRING_length(s), i, v = 0;

    if (n <= 0 || n > 4) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9') {
            return -1;
        }
        v = v * 10 + (d[i] - '0');
    }
    return v;
}

static int nonce_attr(CMS_SignerInfo *si, scep_oid_e which,
                      unsigned char *out, const char **why, apr_pool_t *p)
{
    const ASN1_STRING *s = signed_attr(si, which, V_ASN1_OCTET_STRING, why, p);

    if (s == NULL) {
        return 0;
    }
    if (ASN1_STRING_length(s) != SCEP_NONCE_LEN) {
        *why = apr_psprintf(p, "nonce of %d bytes, not %d",
                            ASN1_STRING_length(s), SCEP_NONCE_LEN);
        return 0;
    }
    memcpy(out, ASN1_STRING_get0_data(s), SCEP_NONCE_LEN);
    return 1;
}

#define FAIL(code, ...) do {                          \
        res->fail_info = (code);                      \
        res->why = apr_psprintf(p, __VA_ARGS__);      \
        goto leave;                                   \
    } while (0)

/* Read the SCEP attributes shared by every pkiMessage into msg. */
apr_status_t scep_msg_read_attrs(scep_msg_t *msg, CMS_SignerInfo *si,
                                 const char **why, apr_pool_t *p)
{
    const ASN1_STRING *s;
    const char *w = NULL;

    s = signed_attr(si, SCEP_OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING, &w, p);
    if (s == NULL || ASN1_STRING_length(s) == 0) {
        *why = s ? "transactionID is empty" : w;
        return APR_EINVAL;
    }
    msg->transaction_id = apr_pstrmemdup(p,
                                         (const char *)ASN1_STRING_get0_data(s),
                                         ASN1_STRING_length(s));
    /* the nonces before messageType: a FAILURE answer echoes them */
    if (CMS_signed_get_attr_by_OBJ(si, scep_oid(SCEP_OID_SENDER_NONCE), -1) >= 0) {
        if (!nonce_attr(si, SCEP_OID_SENDER_NONCE, msg->sender_nonce, why, p)) {
            return APR_EINVAL;
        }
        msg->has_sender_nonce = 1;
    }
    if (CMS_signed_get_attr_by_OBJ(si, scep_oid(SCEP_OID_RECIPIENT_NONCE), -1) >= 0) {
        if (!nonce_attr(si, SCEP_OID_RECIPIENT_NONCE, msg->recipient_nonce,
                        why, p)) {
            return APR_EINVAL;
        }
        msg->has_recipient_nonce = 1;
    }
    s = signed_attr(si, SCEP_OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING, &w, p);
    if (s == NULL) {
        *why = w;
        return APR_EINVAL;
    }
    msg->message_type = parse_int_string(s);
    msg->message_type_raw = apr_pstrmemdup(p,
        (const char *)ASN1_STRING_get0_data(s),
        ASN1_STRING_length(s) > 32 ? 32 : (apr_size_t)ASN1_STRING_length(s));
    /* RFC 8894 3.2.1: every message carries a fresh senderNonce (without
     * one, the replay check of a new transaction has nothing to check) */
    if (!msg->has_sender_nonce) {
        *why = apr_psprintf(p, "attribute 2.16.840.1.113733.1.9.5 "
                            "(senderNonce) missing");
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/* The certificate of the SignerInfo among the certificates carried. */
X509 *scep_msg_find_signer(CMS_ContentInfo *cms, CMS_SignerInfo *si,
                           STACK_OF(X509) *extra, apr_pool_t *p)
{
    STACK_OF(X509) *certs = CMS_get1_certs(cms);
    X509 *found = NULL;
    int i, pass;

    for (pass = 0; pass < 2 && !found; pass++) {
        STACK_OF(X509) *sk = pass == 0 ? certs : extra;
        for (i = 0; sk && i < sk_X509_num(sk); i++) {
            if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(sk, i)) == 0) {
                found = sk_X509_value(sk, i);
                X509_up_ref(found);
                break;
            }
        }
    }
    sk_X509_pop_free(certs, X509_free);
    return scep_own_x509(p, found);
}

static int ra_matches_recipient(CMS_ContentInfo *env, X509 *cert)
{
    STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(env);
    int i;

    for (i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
        CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
        if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS
            && CMS_RecipientInfo_ktri_cert_cmp(ri, cert) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The content-encryption algorithm of an EnvelopedData.  The CMS API has
 * no getter for it in OpenSSL 3.0, the PKCS7 structures are public. */
static int envelope_cipher_nid(const unsigned char *der, apr_size_t len)
{
    const unsigned char *q = der;
    PKCS7 *p7 = d2i_PKCS7(NULL, &q, (long)len);
    int nid = NID_undef;

    if (p7 && PKCS7_type_is_enveloped(p7) && p7->d.enveloped->enc_data
        && p7->d.enveloped->enc_data->algorithm) {
        nid = OBJ_obj2nid(p7->d.enveloped->enc_data->algorithm->algorithm);
    }
    PKCS7_free(p7);
    ERR_clear_error();
    return nid;
}

apr_status_t scep_msg_decode(scep_msg_t **pmsg, scep_decode_result_t *res,
                             const scep_decode_ctx_t *ctx,
                             const unsigned char *der, apr_size_t len,
                             apr_pool_t *p)
{
    scep_msg_t *msg = apr_pcalloc(p, sizeof(*msg));
    const unsigned char *q = der;
    CMS_ContentInfo *cms, *env = NULL;
    STACK_OF(CMS_SignerInfo) *sis;
    CMS_SignerInfo *si;
    X509_ALGOR *digalg = NULL;
    STACK_OF(X509) *signers;
    BIO *out;
    const unsigned char *envder;
    apr_size_t envlen;
    const scep_ra_t *const *ra;
    const char *w = NULL;
    int i;

    msg->message_type = -1;
    msg->pki_status = -1;
    msg->fail_info = SCEP_FAIL_NONE;
    res->fail_info = SCEP_FAIL_NONE;
    res->why = NULL;
    *pmsg = msg;
    ERR_clear_error();

    if (len == 0 || len > LONG_MAX) {
        res->why = "empty message";
        return APR_EINVAL;
    }
    cms = own_cms(p, parse_cms(&q, (long)len));
    /* Bytes after the DER are no part of what was signed.  A line end or
     * NUL padding some HTTP stacks append is tolerated; anything else is a
     * different message glued on, and refused rather than ignored. */
    if (cms != NULL && q > der && (apr_size_t)(q - der) < len) {
        apr_size_t extra = len - (apr_size_t)(q - der), k = 0;

        while (k < extra && (q[k] == '\r' || q[k] == '\n' || q[k] == ' '
                             || q[k] == '\0')) {
            k++;
        }
        if (k < extra) {
            res->why = apr_psprintf(p, "%" APR_SIZE_T_FMT " bytes after the "
                                    "pkiMessage's DER", extra);
            return APR_EINVAL;
        }
    }
    if (cms == NULL || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        res->why = cms ? "not a CMS SignedData"
                       : apr_psprintf(p, "not a CMS message: %s",
                                      scep_ssl_errors(p));
        return APR_EINVAL;
    }
    sis = CMS_get0_SignerInfos(cms);
    if (sk_CMS_SignerInfo_num(sis) != 1) {
        res->why = apr_psprintf(p, "SignedData has %d signers, not one",
                                sk_CMS_SignerInfo_num(sis));
        return APR_EINVAL;
    }
    si = sk_CMS_SignerInfo_value(sis, 0);

    /* From here on the message can be answered with a CertRep, as far as
     * its transactionID can be read. */
    if (scep_msg_read_attrs(msg, si, &w, p) != APR_SUCCESS) {
        if (msg->transaction_id == NULL) {
            res->why = w;
            return APR_EINVAL;
        }
        FAIL(SCEP_FAIL_BADREQUEST, "%s", w);
    }
    msg->signer = scep_msg_find_signer(cms, si, NULL, p);
    if (msg->signer == NULL) {
        FAIL(SCEP_FAIL_BADREQUEST, "the signer certificate is not in the "
             "message");
    }
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &digalg, NULL);
    msg->digest_nid = digalg ? OBJ_obj2nid(digalg->algorithm) : NID_undef;
    msg->digest = scep_digest_bit(msg->digest_nid);
    if (!(msg->digest & ctx->allowed_digests)) {
        FAIL(SCEP_FAIL_BADALG, "digest %s is not allowed (SCEPDigests)",
             OBJ_nid2sn(msg->digest_nid));
    }

    /* Signature and messageDigest; the signer is the requester's own
     * (often self-signed) certificate, its chain is policy's business. */
    out = own_bio(p, BIO_new(BIO_s_mem()));
    signers = sk_X509_new_null();
    sk_X509_push(signers, msg->signer);
    i = CMS_verify(cms, signers, NULL, NULL, out,
                   CMS_NO_SIGNER_CERT_VERIFY | CMS_NOINTERN | CMS_BINARY);
    sk_X509_free(signers);
    if (i != 1) {
        FAIL(SCEP_FAIL_BADMSGCHECK, "signature does not verify: %s",
             scep_ssl_errors(p));
    }
    bio_take(out, &envder, &envlen, p);
    if (envlen == 0) {
        FAIL(SCEP_FAIL_BADREQUEST, "%s without content",
             scep_msg_type_name(msg->message_type));
    }

    /* pkcsPKIEnvelope */
    q = envder;
    env = own_cms(p, d2i_CMS_ContentInfo(NULL, &q, (long)envlen));
    if (env == NULL
        || OBJ_obj2nid(CMS_get0_type(env)) != NID_pkcs7_enveloped) {
        FAIL(SCEP_FAIL_BADREQUEST, "content is not an EnvelopedData");
    }
    msg->cipher_nid = envelope_cipher_nid(envder, envlen);
    msg->cipher = scep_cipher_bit(msg->cipher_nid);
    if (!(msg->cipher & ctx->allowed_ciphers)) {
        FAIL(SCEP_FAIL_BADALG, "content cipher %s is not allowed (SCEPCiphers)",
             msg->cipher_nid == NID_undef ? "unknown"
                                          : OBJ_nid2sn(msg->cipher_nid));
    }
    for (ra = ctx->recipients; ra && *ra; ra++) {
        if (ra_matches_recipient(env, (*ra)->cert)) {
            break;
        }
    }
    if (ra == NULL || *ra == NULL) {
        FAIL(SCEP_FAIL_BADREQUEST, "not encrypted to any of our RA "
             "certificates");
    }
    out = own_bio(p, BIO_new(BIO_s_mem()));
    if (CMS_decrypt_set1_pkey_and_peer(env, (*ra)->key, (*ra)->cert, NULL) != 1
        || CMS_decrypt(env, NULL, NULL, NULL, out, CMS_BINARY) != 1) {
        FAIL(SCEP_FAIL_BADMSGCHECK, "cannot decrypt the envelope: %s",
             scep_ssl_errors(p));
    }
    msg->decrypted_by = *ra;
    bio_take(out, &msg->content, &msg->content_len, p);

    q = msg->content;
    switch (msg->message_type) {
    case SCEP_MT_PKCSREQ:
    case SCEP_MT_RENEWALREQ:
        msg->csr = scep_own_req(p, parse_req(&q, (long)msg->content_len));
        if (msg->csr == NULL) {
            FAIL(SCEP_FAIL_BADREQUEST, "malformed CSR: %s", scep_ssl_errors(p));
        }
        if (X509_REQ_verify_ex(msg->csr, X509_REQ_get0_pubkey(msg->csr),
                               parse_libctx, NULL) != 1) {
            FAIL(SCEP_FAIL_BADMSGCHECK, "CSR self-signature does not verify: %s",
                 scep_ssl_errors(p));
        }
        break;
    case SCEP_MT_CERTPOLL: {
        SCEP_ISSUER_AND_SUBJECT *ias =
            d2i_SCEP_ISSUER_AND_SUBJECT(NULL, &q, (long)msg->content_len);
        if (ias == NULL) {
            FAIL(SCEP_FAIL_BADREQUEST, "malformed IssuerAndSubject");
        }
        msg->issuer = scep_own_name(p, ias->issuer);
        msg->subject = scep_own_name(p, ias->subject);
        ias->issuer = ias->subject = NULL;
        SCEP_ISSUER_AND_SUBJECT_free(ias);
        break;
    }
    case SCEP_MT_GETCERT:
    case SCEP_MT_GETCRL: {
        PKCS7_ISSUER_AND_SERIAL *ias =
            d2i_PKCS7_ISSUER_AND_SERIAL(NULL, &q, (long)msg->content_len);
        if (ias == NULL) {
            FAIL(SCEP_FAIL_BADREQUEST, "malformed IssuerAndSerialNumber");
        }
        msg->issuer = scep_own_name(p, ias->issuer);
        msg->serial = scep_own_int(p, ias->serial);
        ias->issuer = NULL;
        ias->serial = NULL;
        PKCS7_ISSUER_AND_SERIAL_free(ias);
        break;
    }
    default:
        /* the content of unknown types is not interpreted */
        break;
    }

leave:
    ERR_clear_error();
    return APR_SUCCESS;
}

/* ---- degenerate PKCS#7 ------------------------------------------------ */

static apr_status_t p7_degenerate(const unsigned char **der, apr_size_t *len,
                                  STACK_OF(X509) *certs, X509_CRL *crl,
                                  apr_pool_t *p)
{
    PKCS7 *p7 = PKCS7_new();
    unsigned char *buf, *q;
    int i, n;
    apr_status_t rv = APR_ENOMEM;

    if (p7 == NULL || !PKCS7_set_type(p7, NID_pkcs7_signed)
        || !PKCS7_content_new(p7, NID_pkcs7_data)) {
        goto leave;
    }
    /* no content at all, as in a certs-only message */
    ASN1_OCTET_STRING_free(p7->d.sign->contents->d.data);
    p7->d.sign->contents->d.data = NULL;
    /* PKCS7's certificate field is a SEQUENCE OF in OpenSSL's template, so
     * the order given is the order encoded (CMS would sort the SET). */
    for (i = 0; certs && i < sk_X509_num(certs); i++) {
        if (!PKCS7_add_certificate(p7, sk_X509_value(certs, i))) {
            goto leave;
        }
    }
    if (crl && !PKCS7_add_crl(p7, crl)) {
        goto leave;
    }
    if ((n = i2d_PKCS7(p7, NULL)) <= 0) {
        rv = APR_EGENERAL;
        goto leave;
    }
    buf = q = apr_palloc(p, n);
    i2d_PKCS7(p7, &q);
    *der = buf;
    *len = (apr_size_t)n;
    rv = APR_SUCCESS;
leave:
    PKCS7_free(p7);
    return rv;
}

apr_status_t scep_certs_p7_encode(const unsigned char **der, apr_size_t *len,
                                  STACK_OF(X509) *certs, apr_pool_t *p)
{
    return p7_degenerate(der, len, certs, NULL, p);
}

apr_status_t scep_certs_p7_decode(STACK_OF(X509) **certs,
                                  const unsigned char *der, apr_size_t len,
                                  apr_pool_t *p)
{
    const unsigned char *q = der;
    PKCS7 *p7 = d2i_PKCS7(NULL, &q, (long)len);
    STACK_OF(X509) *sk;
    int i;

    *certs = NULL;
    if (p7 == NULL || !PKCS7_type_is_signed(p7) || p7->d.sign == NULL) {
        PKCS7_free(p7);
        ERR_clear_error();
        return APR_EINVAL;
    }
    apr_pool_cleanup_register(p, p7, free_p7, apr_pool_cleanup_null);
    sk = sk_X509_new_null();
    for (i = 0; p7->d.sign->cert && i < sk_X509_num(p7->d.sign->cert); i++) {
        X509 *x = sk_X509_value(p7->d.sign->cert, i);
        X509_up_ref(x);
        sk_X509_push(sk, x);
    }
    *certs = scep_own_certs(p, sk);
    return APR_SUCCESS;
}

/* ---- CertRep ---------------------------------------------------------- */

/* len -1: a NUL-terminated string (OpenSSL itself would read -1 as "data
 * is an ASN1_STRING"). */
static int add_str_attr(CMS_SignerInfo *si, scep_oid_e which, int type,
                        const void *data, int len)
{
    if (len < 0) {
        len = (int)strlen(data);
    }
    return CMS_signed_add1_attr_by_OBJ(si, scep_oid(which), type, data, len);
}

apr_status_t scep_certrep_encode(const unsigned char **der, apr_size_t *len,
                                 const scep_certrep_t *rep, const char **why,
                                 apr_pool_t *p)
{
    CMS_ContentInfo *cms = NULL, *env = NULL;
    CMS_SignerInfo *si;
    BIO *content = NULL;
    STACK_OF(X509) *to = NULL;
    const EVP_MD *md;
    const EVP_CIPHER *cipher;
    unsigned char nonce[SCEP_NONCE_LEN];
    const unsigned char *inner;
    apr_size_t innerlen;
    char num[16];
    unsigned char *buf, *q;
    int n, flags = CMS_PARTIAL | CMS_BINARY | CMS_NOSMIMECAP;
    apr_status_t rv = APR_EGENERAL;

    *why = NULL;
    ERR_clear_error();
    md = EVP_get_digestbynid(rep->digest_nid);
    if (md == NULL) {
        md = EVP_sha256();
    }

    if (rep->pki_status == SCEP_STATUS_SUCCESS) {
        X509_CRL *crl = NULL;
        if (rep->crl_der) {
            const unsigned char *cq = rep->crl_der;
            crl = d2i_X509_CRL(NULL, &cq, (long)rep->crl_len);
            if (crl == NULL) {
                *why = "CRL does not parse";
                goto leave;
            }
        }
        rv = p7_degenerate(&inner, &innerlen, rep->certs, crl, p);
        X509_CRL_free(crl);
        if (rv != APR_SUCCESS) {
            *why = "cannot encode the certificates";
            goto leave;
        }
        rv = APR_EGENERAL;
        cipher = EVP_get_cipherbynid(rep->cipher_nid);
        if (cipher == NULL || rep->encrypt_to == NULL) {
            *why = cipher ? "no requester certificate to encrypt to"
                          : "reply cipher not available";
            goto leave;
        }
        to = sk_X509_new_null();
        sk_X509_push(to, rep->encrypt_to);
        content = BIO_new_mem_buf(inner, (int)innerlen);
        env = CMS_encrypt(to, content, cipher, CMS_BINARY);
        BIO_free(content);
        content = NULL;
        if (env == NULL) {
            *why = apr_psprintf(p, "cannot encrypt the reply: %s",
                                scep_ssl_errors(p));
            goto leave;
        }
        n = i2d_CMS_ContentInfo(env, NULL);
        buf = q = apr_palloc(p, n > 0 ? n : 1);
        i2d_CMS_ContentInfo(env, &q);
        content = BIO_new_mem_buf(buf, n);
    }
    else {
        /* FAILURE and PENDING carry no messageData */
        content = BIO_new_mem_buf("", 0);
        flags |= CMS_DETACHED;
    }

    cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
    if (cms == NULL) {
        *why = apr_psprintf(p, "CMS_sign: %s", scep_ssl_errors(p));
        goto leave;
    }
    si = CMS_add1_signer(cms, rep->signer_cert, rep->signer_key, md, flags);
    if (si == NULL) {
        *why = apr_psprintf(p, "CMS_add1_signer: %s", scep_ssl_errors(p));
        goto leave;
    }
    if (rep->extra_certs) {
        int i;
        for (i = 0; i < sk_X509_num(rep->extra_certs); i++) {
            CMS_add1_cert(cms, sk_X509_value(rep->extra_certs, i));
        }
    }
    apr_snprintf(num, sizeof(num), "%d", SCEP_MT_CERTREP);
    if (!add_str_attr(si, SCEP_OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING,
                      num, -1)) {
        goto attr_fail;
    }
    apr_snprintf(num, sizeof(num), "%d", rep->pki_status);
    if (!add_str_attr(si, SCEP_OID_PKI_STATUS, V_ASN1_PRINTABLESTRING,
                      num, -1)) {
        goto attr_fail;
    }
    if (rep->pki_status == SCEP_STATUS_FAILURE) {
        apr_snprintf(num, sizeof(num), "%d", rep->fail_info);
        if (!add_str_attr(si, SCEP_OID_FAIL_INFO, V_ASN1_PRINTABLESTRING,
                          num, -1)) {
            goto attr_fail;
        }
    }
    if (rep->transaction_id
        && !add_str_attr(si, SCEP_OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING,
                         rep->transaction_id, -1)) {
        goto attr_fail;
    }
    if (scep_nonce(nonce) != APR_SUCCESS
        || !add_str_attr(si, SCEP_OID_SENDER_NONCE, V_ASN1_OCTET_STRING,
                         nonce, SCEP_NONCE_LEN)) {
        goto attr_fail;
    }
    if (rep->recipient_nonce
        && !add_str_attr(si, SCEP_OID_RECIPIENT_NONCE, V_ASN1_OCTET_STRING,
                         rep->recipient_nonce, SCEP_NONCE_LEN)) {
        goto attr_fail;
    }
    if (CMS_final(cms, content, NULL, flags & ~CMS_PARTIAL) != 1) {
        *why = apr_psprintf(p, "CMS_final: %s", scep_ssl_errors(p));
        goto leave;
    }
    n = i2d_CMS_ContentInfo(cms, NULL);
    if (n <= 0) {
        *why = "cannot encode the CertRep";
        goto leave;
    }
    buf = q = apr_palloc(p, n);
    i2d_CMS_ContentInfo(cms, &q);
    *der = buf;
    *len = (apr_size_t)n;
    rv = APR_SUCCESS;
    goto leave;

attr_fail:
    *why = apr_psprintf(p, "cannot add a SCEP attribute: %s",
                        scep_ssl_errors(p));
leave:
    BIO_free(content);
    CMS_ContentInfo_free(cms);
    CMS_ContentInfo_free(env);
    sk_X509_free(to);
    ERR_clear_error();
    return rv;
}
