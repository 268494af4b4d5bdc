/* Licensed under the Apache License, Version 2.0.
 *
 * SCEP (RFC 8894) codec, CLIENT side: build a pkiMessage (SignedData around
 * an EnvelopedData) and read a CertRep.  Used by the test client, the unit
 * tests and the benchmark; the server never calls this file.
 *
 * CORE: APR and OpenSSL only.  Every temporary OpenSSL object is freed on
 * every path before return; objects handed out belong to the pool.
 */
#include <limits.h>
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "scep_msg.h"
#include "scep_pki.h"
#include "scep_asn1.h"
#include "scep_client.h"

/* Largest decimal attribute value we read ("3", "19"...). */
#define SCEP_SMALL_NUM_MAX       8

/* Copy a memory BIO's content into the pool. */
static apr_status_t bio_to_pool(const unsigned char **out, apr_size_t *outlen,
                                BIO *bio, apr_pool_t *p)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    unsigned char *buf;

    if (n < 0) {
        return APR_EGENERAL;
    }
    buf = apr_palloc(p, (apr_size_t)n + 1);
    if (n > 0) {
        memcpy(buf, data, (apr_size_t)n);
    }
    buf[n] = 0;
    *out = buf;
    *outlen = (apr_size_t)n;
    return APR_SUCCESS;
}

/* DER of a CMS ContentInfo into the pool. */
static apr_status_t cms_to_pool(const unsigned char **out, apr_size_t *outlen,
                                CMS_ContentInfo *cms, apr_pool_t *p)
{
    unsigned char *der = NULL;
    unsigned char *buf;
    int n = i2d_CMS_ContentInfo(cms, &der);

    if (n <= 0) {
        return APR_EGENERAL;
    }
    buf = apr_pmemdup(p, der, (apr_size_t)n);
    OPENSSL_free(der);
    *out = buf;
    *outlen = (apr_size_t)n;
    return APR_SUCCESS;
}

/* Add one SCEP signed attribute. */
static int add_attr(CMS_SignerInfo *si, scep_oid_e which, int type,
                    const void *bytes, int len)
{
    const ASN1_OBJECT *obj = scep_oid(which);

    return obj != NULL && CMS_signed_add1_attr_by_OBJ(si, obj, type, bytes,
                                                      len);
}

/* EnvelopedData of @a content to every recipient; with SCEP_CLIENT_OAEP
 * the content-encryption key is wrapped with RSAES-OAEP (SHA-256, MGF1
 * SHA-256) instead of PKCS#1 v1.5. */
static CMS_ContentInfo *envelope(const scep_req_t *req, BIO *content,
                                 int flags)
{
    CMS_ContentInfo *env;
    CMS_RecipientInfo *ri;
    EVP_PKEY_CTX *pctx;
    int i;

    if (!(flags & SCEP_CLIENT_OAEP)) {
        return CMS_encrypt(req->recipients, content, req->cipher, CMS_BINARY);
    }
    env = CMS_encrypt(NULL, NULL, req->cipher, CMS_BINARY | CMS_PARTIAL);
    if (env == NULL) {
        return NULL;
    }
    for (i = 0; i < sk_X509_num(req->recipients); i++) {
        ri = CMS_add1_recipient_cert(env, sk_X509_value(req->recipients, i),
                                     CMS_KEY_PARAM);
        if (ri == NULL
            || (pctx = CMS_RecipientInfo_get0_pkey_ctx(ri)) == NULL
            || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0
            || EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0
            || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0) {
            CMS_ContentInfo_free(env);
            return NULL;
        }
    }
    if (!CMS_final(env, content, NULL, CMS_BINARY)) {
        CMS_ContentInfo_free(env);
        return NULL;
    }
    return env;
}

apr_status_t scep_req_encode(const unsigned char **der, apr_size_t *len,
                             const scep_req_t *req, const char **why,
                             apr_pool_t *p)
{
    return scep_client_req_encode(der, len, req, 0, why, p);
}

apr_status_t scep_client_req_encode(const unsigned char **der,
                                    apr_size_t *len, const scep_req_t *req,
                                    int flags, const char **why,
                                    apr_pool_t *p)
{
    apr_status_t rv = APR_EGENERAL;
    BIO *content = NULL, *envbio = NULL;
    CMS_ContentInfo *env = NULL, *cms = NULL;
    CMS_SignerInfo *si;
    unsigned char nonce[SCEP_NONCE_LEN];
    unsigned char *envder = NULL;
    int envlen;
    const char *mtype = NULL;

    *der = NULL;
    *len = 0;
    *why = NULL;
    ERR_clear_error();

    if (req->recipients == NULL || sk_X509_num(req->recipients) < 1) {
        *why = "request has no recipient certificate";
        rv = APR_EINVAL;
        goto leave;
    }
    if (req->cipher == NULL || req->digest == NULL
        || req->signer_cert == NULL || req->signer_key == NULL) {
        *why = "request needs a cipher, a digest, a signer certificate and key";
        rv = APR_EINVAL;
        goto leave;
    }

    /* pkcsPKIEnvelope: EnvelopedData of the messageData */
    content = BIO_new_mem_buf(req->content ? (const void *)req->content : "",
                              (int)req->content_len);
    if (content == NULL) {
        *why = "out of memory";
        goto leave;
    }
    env = envelope(req, content, flags);
    if (env == NULL) {
        *why = apr_pstrcat(p, "CMS_encrypt: ", scep_ssl_errors(p), NULL);
        goto leave;
    }
    envlen = i2d_CMS_ContentInfo(env, &envder);
    if (envlen <= 0) {
        *why = apr_pstrcat(p, "encoding the EnvelopedData: ",
                           scep_ssl_errors(p), NULL);
        goto leave;
    }
    envbio = BIO_new_mem_buf(envder, envlen);
    if (envbio == NULL) {
        *why = "out of memory";
        goto leave;
    }

    /* SignedData around it, id-data, signer certificate included */
    cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    if (cms == NULL) {
        *why = apr_pstrcat(p, "CMS_sign: ", scep_ssl_errors(p), NULL);
        goto leave;
    }
    si = CMS_add1_signer(cms, req->signer_cert, req->signer_key, req->digest,
                         CMS_BINARY | CMS_NOSMIMECAP);
    if (si == NULL) {
        *why = apr_pstrcat(p, "CMS_add1_signer: ", scep_ssl_errors(p), NULL);
        goto leave;
    }

    if (req->message_type_string != NULL) {
        mtype = req->message_type_string;
    }
    else if (req->message_type >= 0) {
        mtype = apr_itoa(p, req->message_type);
    }
    if (mtype != NULL
        && !add_attr(si, SCEP_OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING,
                     mtype, (int)strlen(mtype))) {
        *why = apr_pstrcat(p, "adding messageType: ", scep_ssl_errors(p), NULL);
        goto leave;
    }
    if (req->transaction_id != NULL
        && !add_attr(si, SCEP_OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING,
                     req->transaction_id, (int)strlen(req->transaction_id))) {
        *why = apr_pstrcat(p, "adding transactionID: ", scep_ssl_errors(p),
                           NULL);
        goto leave;
    }
    if (req->sender_nonce != NULL) {
        memcpy(nonce, req->sender_nonce, SCEP_NONCE_LEN);
    }
    else {
        rv = scep_nonce(nonce);
        if (rv != APR_SUCCESS) {
            *why = "no random nonce";
            goto leave;
        }
        rv = APR_EGENERAL;
    }
    if (!add_attr(si, SCEP_OID_SENDER_NONCE, V_ASN1_OCTET_STRING,
                  nonce, SCEP_NONCE_LEN)) {
        *why = apr_pstrcat(p, "adding senderNonce: ", scep_ssl_errors(p), NULL);
        goto leave;
    }

    if (!CMS_final(cms, envbio, NULL, CMS_BINARY)) {
        *why = apr_pstrcat(p, "CMS_final: ", scep_ssl_errors(p), NULL);
        goto leave;
    }
    if (cms_to_pool(der, len, cms, p) != APR_SUCCESS) {
        *why = apr_pstrcat(p, "encoding the SignedData: ", scep_ssl_errors(p),
                           NULL);
        goto leave;
    }
    rv = APR_SUCCESS;

leave:
    BIO_free(content);
    BIO_free(envbio);
    OPENSSL_free(envder);
    CMS_ContentInfo_free(env);
    CMS_ContentInfo_free(cms);
    return rv;
}

/*
 * The single value of a signed attribute.  Returns NULL when the attribute
 * is absent; *bad is set when it is present but not exactly one attribute
 * with exactly one value.
 */
static ASN1_TYPE *get_attr(CMS_SignerInfo *si, scep_oid_e which, int *bad)
{
    const ASN1_OBJECT *obj = scep_oid(which);
    X509_ATTRIBUTE *attr;
    int idx;

    *bad = 0;
    if (obj == NULL) {
        *bad = 1;
        return NULL;
    }
    idx = CMS_signed_get_attr_by_OBJ(si, obj, -1);
    if (idx >= 0 && CMS_signed_get_attr_by_OBJ(si, obj, idx) >= 0) {
        *bad = 1;    /* twice */
        idx = -1;
    }
    if (idx < 0) {
        return NULL;
    }
    attr = CMS_signed_get_attr(si, idx);
    if (attr == NULL || X509_ATTRIBUTE_count(attr) != 1) {
        *bad = 1;
        return NULL;
    }
    return X509_ATTRIBUTE_get0_type(attr, 0);
}

/* A string-valued attribute as a C string from the pool. */
static const char *get_str_attr(CMS_SignerInfo *si, scep_oid_e which,
                                const char *name, const char **why,
                                apr_pool_t *p)
{
    int bad;
    ASN1_TYPE *t = get_attr(si, which, &bad);
    const ASN1_STRING *s;

    if (t == NULL) {
        *why = apr_psprintf(p, "%s %s", name,
                            bad ? "is repeated or has several values"
                                : "is missing");
        return NULL;
    }
    if (t->type != V_ASN1_PRINTABLESTRING && t->type != V_ASN1_UTF8STRING
        && t->type != V_ASN1_IA5STRING) {
        *why = apr_psprintf(p, "%s is not a PrintableString (ASN.1 tag %d)",
                            name, t->type);
        return NULL;
    }
    s = t->value.asn1_string;
    if (memchr(ASN1_STRING_get0_data(s), 0, (size_t)ASN1_STRING_length(s))) {
        *why = apr_psprintf(p, "%s contains a NUL byte", name);
        return NULL;
    }
    return apr_pstrmemdup(p, (const char *)ASN1_STRING_get0_data(s),
                          (apr_size_t)ASN1_STRING_length(s));
}

/* A 16-byte OCTET STRING nonce attribute.  1 found, 0 absent, -1 bad. */
static int get_nonce_attr(CMS_SignerInfo *si, scep_oid_e which,
                          unsigned char nonce[SCEP_NONCE_LEN],
                          const char *name, const char **why, apr_pool_t *p)
{
    int bad;
    ASN1_TYPE *t = get_attr(si, which, &bad);

    if (t == NULL) {
        *why = apr_psprintf(p, "%s %s", name,
                            bad ? "is repeated or has several values"
                                : "is missing");
        return bad ? -1 : 0;
    }
    if (t->type != V_ASN1_OCTET_STRING
        || ASN1_STRING_length(t->value.octet_string) != SCEP_NONCE_LEN) {
        *why = apr_psprintf(p, "%s is not a %d byte OCTET STRING", name,
                            SCEP_NONCE_LEN);
        return -1;
    }
    memcpy(nonce, ASN1_STRING_get0_data(t->value.octet_string),
           SCEP_NONCE_LEN);
    return 1;
}

/* Small non-negative decimal number, -1 when it is none. */
static int small_num(const char *s)
{
    int n = 0;
    size_t i, l = strlen(s);

    if (l == 0 || l > SCEP_SMALL_NUM_MAX) {
        return -1;
    }
    for (i = 0; i < l; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        n = n * 10 + (s[i] - '0');
    }
    return n;
}

/* Content cipher of an EnvelopedData, read through the PKCS7 structures. */
static int envelope_cipher_nid(const unsigned char *der, apr_size_t len)
{
    const unsigned char *q = der;
    PKCS7 *p7 = d2i_PKCS7(NULL, &q, (long)len);
    int nid = NID_undef;

    if (p7 != NULL && PKCS7_type_is_enveloped(p7)
        && p7->d.enveloped != NULL && p7->d.enveloped->enc_data != NULL
        && p7->d.enveloped->enc_data->algorithm != NULL) {
        nid = OBJ_obj2nid(p7->d.enveloped->enc_data->algorithm->algorithm);
    }
    PKCS7_free(p7);
    return nid;
}

apr_status_t scep_certrep_decode(scep_msg_t **pmsg, const char **why,
                                 const unsigned char *der, apr_size_t len,
                                 STACK_OF(X509) *ra_certs,
                                 X509 *cert, EVP_PKEY *key, apr_pool_t *p)
{
    apr_status_t rv = APR_EGENERAL;
    scep_msg_t *msg;
    CMS_ContentInfo *cms = NULL, *env = NULL;
    BIO *dcont = NULL, *out = NULL, *plain = NULL;
    STACK_OF(CMS_SignerInfo) *sis;
    STACK_OF(X509) *signers = NULL;
    CMS_SignerInfo *si;
    ASN1_OCTET_STRING **pos;
    X509_ALGOR *digalg = NULL;
    const ASN1_OBJECT *aobj;
    const unsigned char *q = der;
    const unsigned char *envder;
    apr_size_t envlen;
    const char *s;
    int n;

    msg = apr_pcalloc(p, sizeof(*msg));
    msg->message_type = -1;
    msg->pki_status = -1;
    msg->fail_info = SCEP_FAIL_NONE;
    *pmsg = msg;
    *why = NULL;
    ERR_clear_error();

    if (der == NULL || len == 0 || len > (apr_size_t)LONG_MAX) {
        *why = "empty CertRep";
        rv = APR_EINVAL;
        goto leave;
    }
    cms = d2i_CMS_ContentInfo(NULL, &q, (long)len);
    if (cms == NULL || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        *why = apr_pstrcat(p, "CertRep is not a CMS SignedData: ",
                           scep_ssl_errors(p), NULL);
        rv = APR_EINVAL;
        goto leave;
    }
    sis = CMS_get0_SignerInfos(cms);
    if (sis == NULL || sk_CMS_SignerInfo_num(sis) != 1) {
        *why = apr_psprintf(p, "CertRep has %d SignerInfos, not 1",
                            sis ? sk_CMS_SignerInfo_num(sis) : 0);
        goto leave;
    }
    si = sk_CMS_SignerInfo_value(sis, 0);

    /* FAILURE and PENDING may come without eContent: verify over "" */
    pos = CMS_get0_content(cms);
    if (pos == NULL || *pos == NULL) {
        dcont = BIO_new_mem_buf("", 0);
    }
    out = BIO_new(BIO_s_mem());
    if (out == NULL) {
        *why = "out of memory";
        goto leave;
    }
    if (CMS_verify(cms, ra_certs, NULL, dcont, out,
                   CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
        *why = apr_pstrcat(p, "CertRep signature does not verify: ",
                           scep_ssl_errors(p), NULL);
        goto leave;
    }
    signers = CMS_get0_signers(cms);
    if (signers != NULL && sk_X509_num(signers) > 0) {
        X509 *x = sk_X509_value(signers, 0);

        X509_up_ref(x);
        msg->signer = scep_own_x509(p, x);
    }
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &digalg, NULL);
    if (digalg != NULL) {
        X509_ALGOR_get0(&aobj, NULL, NULL, digalg);
        msg->digest_nid = OBJ_obj2nid(aobj);
        msg->digest = scep_digest_bit(msg->digest_nid);
    }

    /* signed attributes */
    s = get_str_attr(si, SCEP_OID_MESSAGE_TYPE, "messageType", why, p);
    if (s == NULL) {
        goto leave;
    }
    msg->message_type = small_num(s);
    if (msg->message_type != SCEP_MT_CERTREP) {
        *why = apr_psprintf(p, "messageType is \"%s\", not CertRep (3)", s);
        goto leave;
    }
    /* status first, so that a caller can show it when more is wrong */
    s = get_str_attr(si, SCEP_OID_PKI_STATUS, "pkiStatus", why, p);
    if (s == NULL) {
        goto leave;
    }
    msg->pki_status = small_num(s);
    if (msg->pki_status != SCEP_STATUS_SUCCESS
        && msg->pki_status != SCEP_STATUS_FAILURE
        && msg->pki_status != SCEP_STATUS_PENDING) {
        *why = apr_psprintf(p, "pkiStatus \"%s\" is not 0, 2 or 3", s);
        msg->pki_status = -1;
        goto leave;
    }
    if (msg->pki_status == SCEP_STATUS_FAILURE) {
        s = get_str_attr(si, SCEP_OID_FAIL_INFO, "failInfo", why, p);
        if (s == NULL) {
            goto leave;
        }
        msg->fail_info = small_num(s);
        if (msg->fail_info < SCEP_FAIL_BADALG
            || msg->fail_info > SCEP_FAIL_BADCERTID) {
            *why = apr_psprintf(p, "failInfo \"%s\" is not 0..4", s);
            msg->fail_info = SCEP_FAIL_NONE;
            goto leave;
        }
    }
    s = get_str_attr(si, SCEP_OID_TRANSACTION_ID, "transactionID", why, p);
    if (s == NULL) {
        goto leave;
    }
    msg->transaction_id = s;
    n = get_nonce_attr(si, SCEP_OID_SENDER_NONCE, msg->sender_nonce,
                       "senderNonce", why, p);
    if (n <= 0) {
        goto leave;
    }
    msg->has_sender_nonce = 1;
    n = get_nonce_attr(si, SCEP_OID_RECIPIENT_NONCE, msg->recipient_nonce,
                       "recipientNonce", why, p);
    if (n <= 0) {
        goto leave;
    }
    msg->has_recipient_nonce = 1;
    if (msg->pki_status != SCEP_STATUS_SUCCESS) {
        rv = APR_SUCCESS;
        goto leave;
    }

    /* SUCCESS: decrypt the pkcsPKIEnvelope */
    if (bio_to_pool(&envder, &envlen, out, p) != APR_SUCCESS || envlen == 0) {
        *why = "CertRep SUCCESS without content";
        goto leave;
    }
    if (cert == NULL || key == NULL) {
        *why = "CertRep SUCCESS but no certificate and key to decrypt with";
        goto leave;
    }
    q = envder;
    env = d2i_CMS_ContentInfo(NULL, &q, (long)envlen);
    if (env == NULL || OBJ_obj2nid(CMS_get0_type(env)) != NID_pkcs7_enveloped) {
        *why = apr_pstrcat(p, "CertRep content is not a CMS EnvelopedData: ",
                           scep_ssl_errors(p), NULL);
        goto leave;
    }
    msg->cipher_nid = envelope_cipher_nid(envder, envlen);
    msg->cipher = scep_cipher_bit(msg->cipher_nid);
    plain = BIO_new(BIO_s_mem());
    if (plain == NULL) {
        *why = "out of memory";
        goto leave;
    }
    if (CMS_decrypt(env, key, cert, NULL, plain, CMS_BINARY) != 1) {
        *why = apr_pstrcat(p, "cannot decrypt the CertRep: ",
                           scep_ssl_errors(p), NULL);
        goto leave;
    }
    if (bio_to_pool(&msg->content, &msg->content_len, plain, p)
        != APR_SUCCESS) {
        *why = "out of memory";
        goto leave;
    }
    rv = APR_SUCCESS;

leave:
    sk_X509_free(signers);
    BIO_free(dcont);
    BIO_free(out);
    BIO_free(plain);
    CMS_ContentInfo_free(cms);
    CMS_ContentInfo_free(env);
    return rv;
}

apr_status_t scep_client_corrupt_signature(unsigned char *der, apr_size_t len)
{
    const unsigned char *q = der;
    CMS_ContentInfo *cms;
    STACK_OF(CMS_SignerInfo) *sis;
    ASN1_OCTET_STRING *sig;
    const unsigned char *sd;
    apr_size_t sl, i;
    apr_status_t rv = APR_EINVAL;

    if (len == 0 || len > (apr_size_t)LONG_MAX) {
        return APR_EINVAL;
    }
    cms = d2i_CMS_ContentInfo(NULL, &q, (long)len);
    if (cms == NULL || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        goto leave;
    }
    sis = CMS_get0_SignerInfos(cms);
    if (sis == NULL || sk_CMS_SignerInfo_num(sis) < 1) {
        goto leave;
    }
    sig = CMS_SignerInfo_get0_signature(sk_CMS_SignerInfo_value(sis, 0));
    if (sig == NULL || ASN1_STRING_length(sig) < 1) {
        goto leave;
    }
    sd = ASN1_STRING_get0_data(sig);
    sl = (apr_size_t)ASN1_STRING_length(sig);
    if (sl > len) {
        goto leave;
    }
    /* the signature value is the last occurrence of these bytes */
    for (i = len - sl + 1; i > 0; i--) {
        if (memcmp(der + i - 1, sd, sl) == 0) {
            der[i - 1 + sl / 2] ^= 0x01;
            rv = APR_SUCCESS;
            break;
        }
    }

leave:
    CMS_ContentInfo_free(cms);
    return rv;
}

apr_status_t scep_client_issuer_and_serial(const unsigned char **der,
                                           apr_size_t *len,
                                           const X509_NAME *issuer,
                                           const ASN1_INTEGER *serial,
                                           apr_pool_t *p)
{
    PKCS7_ISSUER_AND_SERIAL *ias = PKCS7_ISSUER_AND_SERIAL_new();
    unsigned char *buf = NULL;
    apr_status_t rv = APR_EGENERAL;
    int n;

    if (ias == NULL) {
        return APR_ENOMEM;
    }
    if (!X509_NAME_set(&ias->issuer, issuer)) {
        goto leave;
    }
    ASN1_INTEGER_free(ias->serial);
    ias->serial = ASN1_INTEGER_dup(serial);
    if (ias->serial == NULL) {
        goto leave;
    }
    n = i2d_PKCS7_ISSUER_AND_SERIAL(ias, &buf);
    if (n <= 0) {
        goto leave;
    }
    *der = apr_pmemdup(p, buf, (apr_size_t)n);
    *len = (apr_size_t)n;
    rv = APR_SUCCESS;

leave:
    OPENSSL_free(buf);
    PKCS7_ISSUER_AND_SERIAL_free(ias);
    return rv;
}

apr_status_t scep_client_issuer_and_subject(const unsigned char **der,
                                            apr_size_t *len,
                                            const X509_NAME *issuer,
                                            const X509_NAME *subject,
                                            apr_pool_t *p)
{
    SCEP_ISSUER_AND_SUBJECT *ias = SCEP_ISSUER_AND_SUBJECT_new();
    unsigned char *buf = NULL;
    apr_status_t rv = APR_EGENERAL;
    int n;

    if (ias == NULL) {
        return APR_ENOMEM;
    }
    if (!X509_NAME_set(&ias->issuer, issuer)
        || !X509_NAME_set(&ias->subject, subject)) {
        goto leave;
    }
    n = i2d_SCEP_ISSUER_AND_SUBJECT(ias, &buf);
    if (n <= 0) {
        goto leave;
    }
    *der = apr_pmemdup(p, buf, (apr_size_t)n);
    *len = (apr_size_t)n;
    rv = APR_SUCCESS;

leave:
    OPENSSL_free(buf);
    SCEP_ISSUER_AND_SUBJECT_free(ias);
    return rv;
}

int scep_client_signer_sig_nid(const unsigned char *der, apr_size_t len,
                               int *digest_nid)
{
    const unsigned char *q = der;
    CMS_ContentInfo *cms;
    STACK_OF(CMS_SignerInfo) *sis;
    X509_ALGOR *dig = NULL, *sig = NULL;
    const ASN1_OBJECT *obj;
    int nid = NID_undef;

    if (digest_nid != NULL) {
        *digest_nid = NID_undef;
    }
    if (len == 0 || len > (apr_size_t)LONG_MAX) {
        return NID_undef;
    }
    cms = d2i_CMS_ContentInfo(NULL, &q, (long)len);
    if (cms == NULL) {
        return NID_undef;
    }
    sis = CMS_get0_SignerInfos(cms);
    if (sis != NULL && sk_CMS_SignerInfo_num(sis) > 0) {
        CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(sis, 0), NULL, NULL,
                                 &dig, &sig);
        if (sig != NULL) {
            X509_ALGOR_get0(&obj, NULL, NULL, sig);
            nid = OBJ_obj2nid(obj);
        }
        if (dig != NULL && digest_nid != NULL) {
            X509_ALGOR_get0(&obj, NULL, NULL, dig);
            *digest_nid = OBJ_obj2nid(obj);
        }
    }
    CMS_ContentInfo_free(cms);
    return nid;
}
