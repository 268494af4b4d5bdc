/* Licensed under the Apache License, Version 2.0.
 *
 * Unit tests of the SCEP codec: client encode -> server decode, server
 * CertRep encode -> client decode, and every refusal of scep_msg_decode().
 * The PKI (CA, RA encryption, RA signing, client) is made in memory.
 */
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include "scep_msg.h"
#include "scep_pki.h"
#include "scep_client.h"
#include "tap.h"

#define TID "4F1C0D6B2A9E8E1A5C3B7D0E9F8A6B5C4D3E2F10"

typedef struct {
    EVP_PKEY *ca_key, *enc_key, *sign_key, *cli_key, *other_key;
    X509 *ca, *enc, *sign, *cli, *other, *issued;
    scep_ra_t enc_ra, sign_ra;
    const scep_ra_t *ras[3];
    scep_decode_ctx_t ctx;
    X509_REQ *csr;
    const unsigned char *csr_der;
    apr_size_t csr_len;
    unsigned char nonce[SCEP_NONCE_LEN];
    int have_des;
} test_pki_t;

static test_pki_t pki;
static OSSL_PROVIDER *prov_legacy, *prov_default;

typedef struct {
    const char *name;
    const EVP_CIPHER *(*cipher)(void);
    int nid;
    int bit;
} cipher_case_t;

typedef struct {
    const char *name;
    const EVP_MD *(*md)(void);
    int nid;
    int bit;
} digest_case_t;

static const cipher_case_t ciphers[] = {
    { "AES-128", EVP_aes_128_cbc, NID_aes_128_cbc, SCEP_CIPHER_AES128 },
    { "AES-192", EVP_aes_192_cbc, NID_aes_192_cbc, SCEP_CIPHER_AES192 },
    { "AES-256", EVP_aes_256_cbc, NID_aes_256_cbc, SCEP_CIPHER_AES256 },
    { "DES3",    EVP_des_ede3_cbc, NID_des_ede3_cbc, SCEP_CIPHER_DES3 },
    { "DES",     EVP_des_cbc,     NID_des_cbc,     SCEP_CIPHER_DES },
};

static const digest_case_t digests[] = {
    { "SHA-1",   EVP_sha1,   NID_sha1,   SCEP_DIGEST_SHA1 },
    { "SHA-256", EVP_sha256, NID_sha256, SCEP_DIGEST_SHA256 },
    { "SHA-384", EVP_sha384, NID_sha384, SCEP_DIGEST_SHA384 },
    { "SHA-512", EVP_sha512, NID_sha512, SCEP_DIGEST_SHA512 },
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static void make_pki(apr_pool_t *p)
{
    unsigned int i;

    pki.ca_key = scep_tap_rsa_key(p, 2048);
    pki.enc_key = scep_tap_rsa_key(p, 2048);
    pki.sign_key = scep_tap_rsa_key(p, 2048);
    pki.cli_key = scep_tap_rsa_key(p, 2048);
    pki.other_key = scep_tap_rsa_key(p, 2048);
    pki.ca = scep_tap_cert(p, "Test CA", pki.ca_key, NULL, NULL, 1,
                           KU_KEY_CERT_SIGN | KU_CRL_SIGN, 3650);
    pki.enc = scep_tap_cert(p, "Test RA Encryption", pki.enc_key, pki.ca,
                            pki.ca_key, 0, KU_KEY_ENCIPHERMENT, 365);
    pki.sign = scep_tap_cert(p, "Test RA Signing", pki.sign_key, pki.ca,
                             pki.ca_key, 0, KU_DIGITAL_SIGNATURE, 365);
    pki.cli = scep_tap_cert(p, "client", pki.cli_key, NULL, NULL, 0, 0, 1);
    pki.other = scep_tap_cert(p, "Someone Else", pki.other_key, NULL, NULL,
                              0, KU_KEY_ENCIPHERMENT, 30);
    pki.issued = scep_tap_cert(p, "client", pki.cli_key, pki.ca, pki.ca_key,
                               0, KU_DIGITAL_SIGNATURE, 365);
    pki.enc_ra.cert = pki.enc;
    pki.enc_ra.key = pki.enc_key;
    pki.sign_ra.cert = pki.sign;
    pki.sign_ra.key = pki.sign_key;
    pki.ras[0] = &pki.enc_ra;
    pki.ras[1] = &pki.sign_ra;
    pki.ras[2] = NULL;
    pki.ctx.recipients = pki.ras;
    pki.ctx.allowed_ciphers = SCEP_CIPHER_AES128 | SCEP_CIPHER_AES192
                              | SCEP_CIPHER_AES256 | SCEP_CIPHER_DES3
                              | SCEP_CIPHER_DES;
    pki.ctx.allowed_digests = SCEP_DIGEST_SHA1 | SCEP_DIGEST_SHA256
                              | SCEP_DIGEST_SHA384 | SCEP_DIGEST_SHA512;
    pki.csr = scep_tap_csr(p, "client", pki.cli_key, "secret");
    pki.csr_der = scep_tap_csr_der(p, pki.csr, &pki.csr_len);
    for (i = 0; i < SCEP_NONCE_LEN; i++) {
        pki.nonce[i] = (unsigned char)(0xA0 + i);
    }

    /* single DES needs OpenSSL's legacy provider (SCEPLegacyProvider) */
    prov_legacy = OSSL_PROVIDER_load(NULL, "legacy");
    prov_default = OSSL_PROVIDER_load(NULL, "default");
    if (prov_legacy != NULL && prov_default != NULL) {
        EVP_CIPHER *des = EVP_CIPHER_fetch(NULL, "DES-CBC", NULL);
        pki.have_des = des != NULL;
        EVP_CIPHER_free(des);
    }
    ERR_clear_error();
}

/* A PKCSReq as a well-behaved client sends it; callers change fields. */
static void default_req(scep_req_t *req)
{
    memset(req, 0, sizeof(*req));
    req->message_type = SCEP_MT_PKCSREQ;
    req->transaction_id = TID;
    req->sender_nonce = pki.nonce;
    req->content = pki.csr_der;
    req->content_len = pki.csr_len;
    req->cipher = EVP_aes_128_cbc();
    req->signer_cert = pki.cli;
    req->signer_key = pki.cli_key;
    req->digest = EVP_sha256();
}

/* Encode @a req to the RA encryption certificate (unless it has its own
 * recipients) and decode it with pki.ctx (or @a ctx). */
static apr_status_t encode_decode(scep_req_t *req,
                                  const scep_decode_ctx_t *ctx,
                                  scep_msg_t **msg, scep_decode_result_t *res,
                                  apr_pool_t *p)
{
    const unsigned char *der = NULL;
    apr_size_t len = 0;
    const char *why = NULL;
    apr_status_t rv;

    if (req->recipients == NULL) {
        req->recipients = scep_tap_certs(p, pki.enc, NULL);
    }
    rv = scep_req_encode(&der, &len, req, &why, p);
    if (!ok(rv == APR_SUCCESS && der != NULL && len > 0,
            "scep_req_encode succeeds")) {
        diag("scep_req_encode: %s", why ? why : "(no reason)");
        return rv;
    }
    return scep_msg_decode(msg, res, ctx ? ctx : &pki.ctx, der, len, p);
}

static int csr_equal(X509_REQ *csr, apr_pool_t *p)
{
    const unsigned char *der;
    apr_size_t len;

    if (csr == NULL) {
        return 0;
    }
    der = scep_tap_csr_der(p, csr, &len);
    return len == pki.csr_len && memcmp(der, pki.csr_der, len) == 0;
}

static void check_good_pkcsreq(scep_msg_t *msg, scep_decode_result_t *res,
                               apr_status_t rv, const char *what,
                               apr_pool_t *p)
{
    is_int(rv, APR_SUCCESS, "%s: decode returns APR_SUCCESS", what);
    if (!is_int(res->fail_info, SCEP_FAIL_NONE, "%s: no failInfo", what)) {
        diag("why: %s", res->why ? res->why : "(none)");
    }
    is_int(msg->message_type, SCEP_MT_PKCSREQ, "%s: messageType PKCSReq", what);
    is_str(msg->transaction_id, TID, "%s: transactionID", what);
    ok(msg->has_sender_nonce
       && memcmp(msg->sender_nonce, pki.nonce, SCEP_NONCE_LEN) == 0,
       "%s: senderNonce", what);
    ok(!msg->has_recipient_nonce, "%s: no recipientNonce", what);
    ok(msg->signer != NULL && X509_cmp(msg->signer, pki.cli) == 0,
       "%s: signer is the client certificate", what);
    ok(msg->content_len == pki.csr_len
       && memcmp(msg->content, pki.csr_der, pki.csr_len) == 0,
       "%s: content is the CSR", what);
    ok(csr_equal(msg->csr, p), "%s: CSR parsed", what);
}

static void test_ciphers(apr_pool_t *p)
{
    unsigned int i;

    for (i = 0; i < N_ELEMS(ciphers); i++) {
        scep_req_t req;
        scep_msg_t *msg = NULL;
        scep_decode_result_t res;
        apr_status_t rv;
        const char *what = apr_psprintf(p, "cipher %s", ciphers[i].name);

        if (ciphers[i].bit == SCEP_CIPHER_DES && !pki.have_des) {
            skip(13, "DES: OpenSSL legacy provider not available");
            continue;
        }
        default_req(&req);
        req.cipher = ciphers[i].cipher();
        rv = encode_decode(&req, NULL, &msg, &res, p);
        if (rv != APR_SUCCESS && msg == NULL) {
            continue;
        }
        check_good_pkcsreq(msg, &res, rv, what, p);
        is_int(msg->cipher_nid, ciphers[i].nid, "%s: cipher_nid", what);
        is_int(msg->cipher, ciphers[i].bit, "%s: cipher bit", what);
        is_int(msg->digest_nid, NID_sha256, "%s: digest_nid sha256", what);
        ok(msg->decrypted_by == &pki.enc_ra,
           "%s: decrypted by the RA encryption pair", what);
    }
}

static void test_digests(apr_pool_t *p)
{
    unsigned int i;

    for (i = 0; i < N_ELEMS(digests); i++) {
        scep_req_t req;
        scep_msg_t *msg = NULL;
        scep_decode_result_t res;
        apr_status_t rv;
        const char *what = apr_psprintf(p, "digest %s", digests[i].name);

        default_req(&req);
        req.digest = digests[i].md();
        rv = encode_decode(&req, NULL, &msg, &res, p);
        if (rv != APR_SUCCESS && msg == NULL) {
            continue;
        }
        check_good_pkcsreq(msg, &res, rv, what, p);
        is_int(msg->digest_nid, digests[i].nid, "%s: digest_nid", what);
        is_int(msg->digest, digests[i].bit, "%s: digest bit", what);
        is_int(msg->cipher_nid, NID_aes_128_cbc, "%s: cipher_nid aes-128",
               what);
    }
}

static void test_recipients(apr_pool_t *p)
{
    scep_req_t req;
    scep_msg_t *msg = NULL;
    scep_decode_result_t res;
    apr_status_t rv;

    /* like micromdm: to every certificate of GetCACert */
    default_req(&req);
    req.recipients = scep_tap_certs(p, pki.ca, pki.sign, pki.enc, NULL);
    rv = encode_decode(&req, NULL, &msg, &res, p);
    check_good_pkcsreq(msg, &res, rv, "three recipients", p);
    ok(msg->decrypted_by == &pki.enc_ra || msg->decrypted_by == &pki.sign_ra,
       "three recipients: decrypted by one of our RA pairs");

    /* to the signing RA only: one RA pair serves both roles elsewhere */
    default_req(&req);
    req.recipients = scep_tap_certs(p, pki.sign, NULL);
    rv = encode_decode(&req, NULL, &msg, &res, p);
    check_good_pkcsreq(msg, &res, rv, "to RA signing cert", p);
    ok(msg->decrypted_by == &pki.sign_ra,
       "to RA signing cert: decrypted by the signing pair");
}

static void test_other_types(apr_pool_t *p)
{
    scep_req_t req;
    scep_msg_t *msg = NULL;
    scep_decode_result_t res;
    apr_status_t rv;
    const unsigned char *der;
    apr_size_t len;

    /* CertPoll: IssuerAndSubject */
    rv = scep_client_issuer_and_subject(&der, &len,
                                        X509_get_subject_name(pki.ca),
                                        X509_REQ_get_subject_name(pki.csr), p);
    is_int(rv, APR_SUCCESS, "IssuerAndSubject encodes");
    default_req(&req);
    req.message_type = SCEP_MT_CERTPOLL;
    req.content = der;
    req.content_len = len;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "CertPoll decodes");
    is_int(res.fail_info, SCEP_FAIL_NONE, "CertPoll: no failInfo");
    is_int(msg->message_type, SCEP_MT_CERTPOLL, "CertPoll: messageType 20");
    ok(msg->issuer && X509_NAME_cmp(msg->issuer,
                                    X509_get_subject_name(pki.ca)) == 0,
       "CertPoll: issuer");
    ok(msg->subject && X509_NAME_cmp(msg->subject,
                                     X509_REQ_get_subject_name(pki.csr)) == 0,
       "CertPoll: subject");

    /* GetCert: IssuerAndSerialNumber */
    rv = scep_client_issuer_and_serial(&der, &len,
                                       X509_get_issuer_name(pki.issued),
                                       X509_get0_serialNumber(pki.issued), p);
    is_int(rv, APR_SUCCESS, "IssuerAndSerialNumber encodes");
    default_req(&req);
    req.message_type = SCEP_MT_GETCERT;
    req.content = der;
    req.content_len = len;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "GetCert decodes");
    is_int(res.fail_info, SCEP_FAIL_NONE, "GetCert: no failInfo");
    is_int(msg->message_type, SCEP_MT_GETCERT, "GetCert: messageType 21");
    ok(msg->issuer && X509_NAME_cmp(msg->issuer,
                                    X509_get_subject_name(pki.ca)) == 0,
       "GetCert: issuer");
    ok(msg->serial && ASN1_INTEGER_cmp(msg->serial,
                                       X509_get0_serialNumber(pki.issued)) == 0,
       "GetCert: serial");
}

/* ---- CertRep: server encode, client decode ---------------------------- */

static void default_rep(scep_certrep_t *rep, int status, apr_pool_t *p)
{
    memset(rep, 0, sizeof(*rep));
    rep->pki_status = status;
    rep->fail_info = SCEP_FAIL_NONE;
    rep->transaction_id = TID;
    rep->recipient_nonce = pki.nonce;
    rep->encrypt_to = pki.cli;
    rep->cipher_nid = NID_aes_256_cbc;
    rep->signer_cert = pki.sign;
    rep->signer_key = pki.sign_key;
    rep->digest_nid = NID_sha256;
    if (status == SCEP_STATUS_SUCCESS) {
        rep->certs = scep_tap_certs(p, pki.issued, pki.ca, NULL);
    }
}

static apr_status_t rep_round_trip(const scep_certrep_t *rep, scep_msg_t **msg,
                                   const unsigned char **pder,
                                   apr_size_t *plen, apr_pool_t *p)
{
    const unsigned char *der = NULL;
    apr_size_t len = 0;
    const char *why = NULL;
    apr_status_t rv;

    rv = scep_certrep_encode(&der, &len, rep, &why, p);
    if (!ok(rv == APR_SUCCESS && der != NULL, "scep_certrep_encode succeeds")) {
        diag("scep_certrep_encode: %s", why ? why : "(no reason)");
        *msg = NULL;
        return rv;
    }
    if (pder) {
        *pder = der;
        *plen = len;
    }
    rv = scep_certrep_decode(msg, &why,
                             der, len,
                             scep_tap_certs(p, pki.enc, pki.sign, pki.ca, NULL),
                             pki.cli, pki.cli_key, p);
    if (rv != APR_SUCCESS) {
        diag("scep_certrep_decode: %s", why ? why : "(no reason)");
    }
    return rv;
}

static void check_rep_common(scep_msg_t *msg, const char *what)
{
    is_int(msg->message_type, SCEP_MT_CERTREP, "%s: messageType CertRep", what);
    is_str(msg->transaction_id, TID, "%s: transactionID echoed", what);
    ok(msg->has_recipient_nonce
       && memcmp(msg->recipient_nonce, pki.nonce, SCEP_NONCE_LEN) == 0,
       "%s: recipientNonce is the request's senderNonce", what);
    ok(msg->has_sender_nonce
       && memcmp(msg->sender_nonce, pki.nonce, SCEP_NONCE_LEN) != 0,
       "%s: own senderNonce", what);
    ok(msg->signer != NULL && X509_cmp(msg->signer, pki.sign) == 0,
       "%s: signed by the RA signing certificate", what);
}

static void test_certrep_success(apr_pool_t *p)
{
    scep_certrep_t rep;
    scep_msg_t *msg;
    STACK_OF(X509) *certs = NULL;
    const unsigned char *der;
    apr_size_t len;
    int dig = NID_undef;
    apr_status_t rv;

    default_rep(&rep, SCEP_STATUS_SUCCESS, p);
    rv = rep_round_trip(&rep, &msg, &der, &len, p);
    is_int(rv, APR_SUCCESS, "SUCCESS: decodes");
    if (msg == NULL) {
        return;
    }
    is_int(msg->pki_status, SCEP_STATUS_SUCCESS, "SUCCESS: pkiStatus 0");
    is_int(msg->fail_info, SCEP_FAIL_NONE, "SUCCESS: no failInfo");
    check_rep_common(msg, "SUCCESS");
    is_int(msg->cipher_nid, NID_aes_256_cbc, "SUCCESS: reply cipher AES-256");
    is_int(msg->digest_nid, NID_sha256, "SUCCESS: reply digest SHA-256");
    rv = scep_certs_p7_decode(&certs, msg->content, msg->content_len, p);
    is_int(rv, APR_SUCCESS, "SUCCESS: content is a degenerate PKCS#7");
    ok(certs && sk_X509_num(certs) == 2
       && X509_cmp(sk_X509_value(certs, 0), pki.issued) == 0
       && X509_cmp(sk_X509_value(certs, 1), pki.ca) == 0,
       "SUCCESS: issued certificate first, then the CA");
    /* strongSwan accepts nothing but plain rsaEncryption */
    is_int(scep_client_signer_sig_nid(der, len, &dig), NID_rsaEncryption,
           "SUCCESS: SignerInfo signatureAlgorithm is rsaEncryption");
    is_int(dig, NID_sha256, "SUCCESS: SignerInfo digestAlgorithm sha256");

    /* the order given is kept, even when it is not DER-sorted */
    default_rep(&rep, SCEP_STATUS_SUCCESS, p);
    rep.certs = scep_tap_certs(p, pki.ca, pki.sign, pki.issued, pki.enc, NULL);
    rv = rep_round_trip(&rep, &msg, NULL, NULL, p);
    certs = NULL;
    if (rv == APR_SUCCESS) {
        scep_certs_p7_decode(&certs, msg->content, msg->content_len, p);
    }
    ok(certs && sk_X509_num(certs) == 4
       && X509_cmp(sk_X509_value(certs, 0), pki.ca) == 0
       && X509_cmp(sk_X509_value(certs, 1), pki.sign) == 0
       && X509_cmp(sk_X509_value(certs, 2), pki.issued) == 0
       && X509_cmp(sk_X509_value(certs, 3), pki.enc) == 0,
       "SUCCESS: four certificates in the order given");

    /* SHA-1 + DES3 reply, as old clients need */
    default_rep(&rep, SCEP_STATUS_SUCCESS, p);
    rep.cipher_nid = NID_des_ede3_cbc;
    rep.digest_nid = NID_sha1;
    rv = rep_round_trip(&rep, &msg, &der, &len, p);
    is_int(rv, APR_SUCCESS, "SUCCESS DES3/SHA-1: decodes");
    if (rv == APR_SUCCESS) {
        is_int(msg->cipher_nid, NID_des_ede3_cbc, "SUCCESS DES3: cipher");
        is_int(msg->digest_nid, NID_sha1, "SUCCESS SHA-1: digest");
        is_int(scep_client_signer_sig_nid(der, len, NULL), NID_rsaEncryption,
               "SUCCESS SHA-1: signatureAlgorithm rsaEncryption");
    }
}

static void test_certrep_failure(apr_pool_t *p)
{
    int f;

    for (f = SCEP_FAIL_BADALG; f <= SCEP_FAIL_BADCERTID; f++) {
        scep_certrep_t rep;
        scep_msg_t *msg;
        apr_status_t rv;
        const char *what = apr_psprintf(p, "FAILURE %s", scep_fail_name(f));

        default_rep(&rep, SCEP_STATUS_FAILURE, p);
        rep.fail_info = f;
        rv = rep_round_trip(&rep, &msg, NULL, NULL, p);
        is_int(rv, APR_SUCCESS, "%s: decodes", what);
        if (msg == NULL || rv != APR_SUCCESS) {
            continue;
        }
        is_int(msg->pki_status, SCEP_STATUS_FAILURE, "%s: pkiStatus 2", what);
        is_int(msg->fail_info, f, "%s: failInfo", what);
        ok(msg->content == NULL, "%s: no content", what);
        check_rep_common(msg, what);
    }
}

static void test_certrep_pending(apr_pool_t *p)
{
    scep_certrep_t rep;
    scep_msg_t *msg;
    apr_status_t rv;

    default_rep(&rep, SCEP_STATUS_PENDING, p);
    rv = rep_round_trip(&rep, &msg, NULL, NULL, p);
    is_int(rv, APR_SUCCESS, "PENDING: decodes");
    if (msg == NULL || rv != APR_SUCCESS) {
        return;
    }
    is_int(msg->pki_status, SCEP_STATUS_PENDING, "PENDING: pkiStatus 3");
    is_int(msg->fail_info, SCEP_FAIL_NONE, "PENDING: no failInfo");
    check_rep_common(msg, "PENDING");
}

static void test_certrep_bad(apr_pool_t *p)
{
    scep_certrep_t rep;
    scep_msg_t *msg;
    const unsigned char *der;
    unsigned char *copy;
    apr_size_t len;
    const char *why = NULL;
    apr_status_t rv;
    static const unsigned char garbage[] = "<html>Service Unavailable</html>";

    rv = scep_certrep_decode(&msg, &why, garbage, sizeof(garbage) - 1, NULL,
                             pki.cli, pki.cli_key, p);
    is_int(rv, APR_EINVAL, "CertRep garbage: APR_EINVAL");

    default_rep(&rep, SCEP_STATUS_SUCCESS, p);
    rv = scep_certrep_encode(&der, &len, &rep, &why, p);
    is_int(rv, APR_SUCCESS, "CertRep for the negative cases encodes");
    if (rv != APR_SUCCESS) {
        return;
    }
    copy = apr_pmemdup(p, der, len);
    is_int(scep_client_corrupt_signature(copy, len), APR_SUCCESS,
           "CertRep signature corrupted");
    rv = scep_certrep_decode(&msg, &why, copy, len, NULL, pki.cli,
                             pki.cli_key, p);
    ok(rv != APR_SUCCESS, "CertRep with a bad signature is refused (%s)",
       why ? why : "no reason");

    rv = scep_certrep_decode(&msg, &why, der, len, NULL, pki.other,
                             pki.other_key, p);
    ok(rv != APR_SUCCESS, "CertRep for someone else does not decrypt (%s)",
       why ? why : "no reason");

    /* a request is no CertRep */
    {
        scep_req_t req;
        default_req(&req);
        req.recipients = scep_tap_certs(p, pki.enc, NULL);
        rv = scep_req_encode(&der, &len, &req, &why, p);
        rv = rv == APR_SUCCESS
             ? scep_certrep_decode(&msg, &why, der, len, NULL, pki.cli,
                                   pki.cli_key, p)
             : APR_SUCCESS;
        ok(rv != APR_SUCCESS && msg->message_type == SCEP_MT_PKCSREQ,
           "a PKCSReq is refused as CertRep (%s)", why ? why : "no reason");
    }
}

/* ---- every refusal of scep_msg_decode --------------------------------- */

static void test_decode_garbage(apr_pool_t *p)
{
    static const unsigned char junk[] = "GET / HTTP/1.0\r\n\r\n";
    static const unsigned char truncated_seq[] = { 0x30, 0x82, 0x10, 0x00,
                                                   0x06, 0x09 };
    scep_msg_t *msg;
    scep_decode_result_t res;
    const unsigned char *der;
    apr_size_t len;
    apr_status_t rv;

    rv = scep_msg_decode(&msg, &res, &pki.ctx, junk, sizeof(junk) - 1, p);
    is_int(rv, APR_EINVAL, "garbage: APR_EINVAL");
    ok(res.why != NULL, "garbage: a reason (%s)", res.why ? res.why : "");
    rv = scep_msg_decode(&msg, &res, &pki.ctx, junk, 0, p);
    is_int(rv, APR_EINVAL, "empty: APR_EINVAL");
    rv = scep_msg_decode(&msg, &res, &pki.ctx, truncated_seq,
                         sizeof(truncated_seq), p);
    is_int(rv, APR_EINVAL, "truncated DER: APR_EINVAL");

    /* a certificate is DER but no ContentInfo */
    scep_cert_der(&der, &len, pki.ca, p);
    rv = scep_msg_decode(&msg, &res, &pki.ctx, der, len, p);
    is_int(rv, APR_EINVAL, "a certificate: APR_EINVAL");

    /* a degenerate certs-only SignedData has no signer */
    scep_certs_p7_encode(&der, &len, scep_tap_certs(p, pki.ca, NULL), p);
    rv = scep_msg_decode(&msg, &res, &pki.ctx, der, len, p);
    is_int(rv, APR_EINVAL, "certs-only SignedData: APR_EINVAL");
}

static void test_decode_bad_alg(apr_pool_t *p)
{
    scep_req_t req;
    scep_msg_t *msg;
    scep_decode_result_t res;
    scep_decode_ctx_t ctx = pki.ctx;
    apr_status_t rv;

    ctx.allowed_ciphers = SCEP_CIPHER_AES128 | SCEP_CIPHER_AES256;
    default_req(&req);
    req.cipher = EVP_des_ede3_cbc();
    rv = encode_decode(&req, &ctx, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "disallowed cipher: APR_SUCCESS");
    is_int(res.fail_info, SCEP_FAIL_BADALG, "disallowed cipher: badAlg (%s)",
           res.why ? res.why : "");
    is_int(msg->cipher_nid, NID_des_ede3_cbc, "disallowed cipher: reported");

    ctx = pki.ctx;
    ctx.allowed_digests = SCEP_DIGEST_SHA256 | SCEP_DIGEST_SHA512;
    default_req(&req);
    req.digest = EVP_sha1();
    rv = encode_decode(&req, &ctx, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "disallowed digest: APR_SUCCESS");
    is_int(res.fail_info, SCEP_FAIL_BADALG, "disallowed digest: badAlg (%s)",
           res.why ? res.why : "");
    is_int(msg->digest_nid, NID_sha1, "disallowed digest: reported");
    is_str(msg->transaction_id, TID,
           "disallowed digest: transactionID read for the CertRep");

    /* a digest outside the SCEP set (SHA-224) */
    default_req(&req);
    req.digest = EVP_sha224();
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "SHA-224: APR_SUCCESS");
    is_int(res.fail_info, SCEP_FAIL_BADALG, "SHA-224: badAlg");

    /* a cipher outside the SCEP set (AES-128-OFB is no CBC) */
    default_req(&req);
    req.cipher = EVP_aes_128_ofb();
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "AES-128-OFB: APR_SUCCESS");
    is_int(res.fail_info, SCEP_FAIL_BADALG, "AES-128-OFB: badAlg");
}

static void test_decode_unknown_recipient(apr_pool_t *p)
{
    scep_req_t req;
    scep_msg_t *msg;
    scep_decode_result_t res;
    apr_status_t rv;

    default_req(&req);
    req.recipients = scep_tap_certs(p, pki.other, NULL);
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "unknown recipient: APR_SUCCESS");
    ok(res.fail_info != SCEP_FAIL_NONE, "unknown recipient: failure (%s: %s)",
       scep_fail_name(res.fail_info), res.why ? res.why : "");
    ok(msg->decrypted_by == NULL && msg->csr == NULL,
       "unknown recipient: nothing decrypted");

    /* the CA certificate without an RA pair for it */
    default_req(&req);
    req.recipients = scep_tap_certs(p, pki.ca, NULL);
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "encrypted to the CA: APR_SUCCESS");
    ok(res.fail_info != SCEP_FAIL_NONE, "encrypted to the CA: failure (%s)",
       scep_fail_name(res.fail_info));
}

static void test_decode_bad_signature(apr_pool_t *p)
{
    scep_req_t req;
    scep_msg_t *msg;
    scep_decode_result_t res;
    const unsigned char *der;
    unsigned char *copy;
    apr_size_t len;
    const char *why;
    apr_status_t rv;

    default_req(&req);
    req.recipients = scep_tap_certs(p, pki.enc, NULL);
    rv = scep_req_encode(&der, &len, &req, &why, p);
    is_int(rv, APR_SUCCESS, "request for corruption encodes");
    if (rv != APR_SUCCESS) {
        return;
    }
    copy = apr_pmemdup(p, der, len);
    is_int(scep_client_corrupt_signature(copy, len), APR_SUCCESS,
           "signature corrupted");
    ok(memcmp(copy, der, len) != 0, "one bit differs");
    rv = scep_msg_decode(&msg, &res, &pki.ctx, copy, len, p);
    is_int(rv, APR_SUCCESS, "corrupted signature: APR_SUCCESS");
    is_int(res.fail_info, SCEP_FAIL_BADMSGCHECK,
           "corrupted signature: badMessageCheck (%s)", res.why ? res.why : "");
    ok(msg->csr == NULL && msg->decrypted_by == NULL,
       "corrupted signature: nothing decrypted");
}

static void test_decode_message_type(apr_pool_t *p)
{
    scep_req_t req;
    scep_msg_t *msg;
    scep_decode_result_t res;
    apr_status_t rv;

    /* the draft UpdateReq: decoded and reported, refused by the glue */
    default_req(&req);
    req.message_type_string = "18";
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "messageType 18: APR_SUCCESS");
    is_int(msg->message_type, SCEP_MT_UPDATEREQ, "messageType 18: reported");
    is_int(res.fail_info, SCEP_FAIL_NONE,
           "messageType 18: decode leaves the refusal to the glue");
    is_str(msg->transaction_id, TID, "messageType 18: transactionID");

    default_req(&req);
    req.message_type_string = "abc";
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "messageType abc: APR_SUCCESS");
    is_int(msg->message_type, -1, "messageType abc: reported as -1");
    is_int(res.fail_info, SCEP_FAIL_NONE,
           "messageType abc: decode leaves the refusal to the glue");
    is_str(msg->transaction_id, TID, "messageType abc: transactionID");

    /* a number that is no SCEP type */
    default_req(&req);
    req.message_type = 99;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "messageType 99: APR_SUCCESS");
    is_int(msg->message_type, 99, "messageType 99: reported");
}

static void test_decode_missing_attrs(apr_pool_t *p)
{
    scep_req_t req;
    scep_msg_t *msg;
    scep_decode_result_t res;
    apr_status_t rv;

    /* scep_msg.h: no transactionID, no CertRep can answer: APR_EINVAL
     * (HTTP 400) with the reason */
    default_req(&req);
    req.transaction_id = NULL;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_EINVAL, "missing transactionID: APR_EINVAL (header)");
    ok(res.why && strstr(res.why, "2.16.840.1.113733.1.9.7"),
       "missing transactionID: the reason names the attribute (%s)",
       res.why ? res.why : "");

    /* no messageType at all: FAILURE badRequest, the nonce still read so
     * that the CertRep can echo it */
    default_req(&req);
    req.message_type = -1;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "missing messageType: APR_SUCCESS");
    is_int(res.fail_info, SCEP_FAIL_BADREQUEST,
           "missing messageType: badRequest (%s)", res.why ? res.why : "");
    ok(msg->has_sender_nonce, "missing messageType: senderNonce read");
}

static void test_decode_bad_csr(apr_pool_t *p)
{
    static const unsigned char not_a_csr[] = "this is not a CSR";
    scep_req_t req;
    scep_msg_t *msg;
    scep_decode_result_t res;
    apr_status_t rv;
    unsigned char *broken;

    default_req(&req);
    req.content = not_a_csr;
    req.content_len = sizeof(not_a_csr) - 1;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "malformed CSR: APR_SUCCESS");
    is_int(res.fail_info, SCEP_FAIL_BADREQUEST, "malformed CSR: badRequest "
           "(%s)", res.why ? res.why : "");
    ok(msg->csr == NULL, "malformed CSR: no CSR");

    /* a truncated CSR */
    default_req(&req);
    req.content_len = pki.csr_len / 2;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "truncated CSR: APR_SUCCESS");
    is_int(res.fail_info, SCEP_FAIL_BADREQUEST, "truncated CSR: badRequest");

    /* a CSR whose self-signature is broken (last byte flipped) */
    broken = apr_pmemdup(p, pki.csr_der, pki.csr_len);
    broken[pki.csr_len - 1] ^= 0x01;
    default_req(&req);
    req.content = broken;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "CSR bad self-signature: APR_SUCCESS");
    ok(res.fail_info == SCEP_FAIL_BADREQUEST
       || res.fail_info == SCEP_FAIL_BADMSGCHECK,
       "CSR bad self-signature: refused (%s)", scep_fail_name(res.fail_info));

    /* RenewalReq carries a CSR too */
    default_req(&req);
    req.message_type = SCEP_MT_RENEWALREQ;
    req.content = not_a_csr;
    req.content_len = sizeof(not_a_csr) - 1;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(res.fail_info, SCEP_FAIL_BADREQUEST,
           "RenewalReq malformed CSR: badRequest");

    /* CertPoll and GetCert with a CSR instead of their own structures */
    default_req(&req);
    req.message_type = SCEP_MT_CERTPOLL;
    req.content = not_a_csr;
    req.content_len = sizeof(not_a_csr) - 1;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(res.fail_info, SCEP_FAIL_BADREQUEST,
           "CertPoll malformed IssuerAndSubject: badRequest");
    default_req(&req);
    req.message_type = SCEP_MT_GETCERT;
    req.content = not_a_csr;
    req.content_len = sizeof(not_a_csr) - 1;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(res.fail_info, SCEP_FAIL_BADREQUEST,
           "GetCert malformed IssuerAndSerialNumber: badRequest");
}

/* A device with another kind of key: its CSR carries it, and the request
 * is signed with it when @a sign (an RSA-PSS signer fails CMS_verify with
 * "illegal or unsupported padding mode", with or without the parsing
 * context); with an EC key the CertRep is encrypted to its certificate too
 * (key agreement). */
static void key_client(EVP_PKEY *key, int sign, const char *what,
                       const char *group, apr_pool_t *p)
{
    X509 *cert;
    X509_REQ *csr;
    scep_req_t req;
    scep_msg_t *msg;
    scep_decode_result_t res;
    scep_certrep_t rep;
    const unsigned char *der, *csr_der;
    apr_size_t len, csr_len;
    const char *why = NULL;
    char got[64] = "";
    apr_status_t rv;

    if (!ok(key != NULL, "%s: key made", what)) {
        return;
    }
    key = scep_own_pkey(p, key);
    cert = scep_tap_cert(p, "device", key, NULL, NULL, 0, 0, 1);
    csr = scep_tap_csr(p, "device", key, "secret");
    csr_der = scep_tap_csr_der(p, csr, &csr_len);

    default_req(&req);
    if (sign) {
        req.signer_cert = cert;
        req.signer_key = key;
    }
    req.content = csr_der;
    req.content_len = csr_len;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "%s: decode returns APR_SUCCESS", what);
    if (!is_int(res.fail_info, SCEP_FAIL_NONE, "%s: no failInfo", what)) {
        diag("why: %s", res.why ? res.why : "(none)");
    }
    if (msg->signer == NULL || msg->csr == NULL) {
        ok(0, "%s: signer and CSR decoded", what);
        return;
    }
    is_int(EVP_PKEY_eq(X509_get0_pubkey(msg->signer),
                       X509_REQ_get0_pubkey(msg->csr)) == 1, sign,
           "%s: signer key %s CSR key", what, sign ? "==" : "!=");
    is_int(EVP_PKEY_eq(key, X509_REQ_get0_pubkey(msg->csr)), 1,
           "%s: CSR key == the device's key", what);
    is_int(EVP_PKEY_get_bits(X509_REQ_get0_pubkey(msg->csr)),
           EVP_PKEY_get_bits(key), "%s: key size", what);
    if (group == NULL) {
        ERR_clear_error();
        return;
    }
    EVP_PKEY_get_utf8_string_param(X509_REQ_get0_pubkey(msg->csr), "group",
                                   got, sizeof(got), NULL);
    is_str(got, group, "%s: curve of the CSR key", what);

    /* the answer, encrypted to the signer certificate as decoded */
    default_rep(&rep, SCEP_STATUS_SUCCESS, p);
    rep.encrypt_to = msg->signer;
    rv = scep_certrep_encode(&der, &len, &rep, &why, p);
    if (!ok(rv == APR_SUCCESS, "%s: CertRep encrypted to the signer", what)) {
        diag("scep_certrep_encode: %s", why ? why : "(no reason)");
        return;
    }
    rv = scep_certrep_decode(&msg, &why, der, len,
                             scep_tap_certs(p, pki.sign, NULL), cert, key, p);
    if (!ok(rv == APR_SUCCESS && msg->pki_status == SCEP_STATUS_SUCCESS,
            "%s: the device decrypts the CertRep", what)) {
        diag("scep_certrep_decode: %s", why ? why : "(no reason)");
    }
    ERR_clear_error();
}

static void test_other_keys(apr_pool_t *p)
{
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    EVP_PKEY *pss = NULL;

    key_client(EVP_EC_gen("P-256"), 1, "EC P-256", "prime256v1", p);
    if (kctx == NULL || EVP_PKEY_keygen_init(kctx) != 1
        || EVP_PKEY_CTX_set_rsa_keygen_bits(kctx, 2048) != 1
        || EVP_PKEY_keygen(kctx, &pss) != 1) {
        pss = NULL;
    }
    EVP_PKEY_CTX_free(kctx);
    key_client(pss, 0, "RSA-PSS", NULL, p);
}

/* ---- the parsing library context -------------------------------------- */

/* Decoded in the parsing context (scep_msg_parse_init): the keys work with
 * each other and with keys and certificates of the global context, as the
 * enrollment, the renewal check and the CA providers use them. */
static void test_parse_context(apr_pool_t *p)
{
    scep_req_t req;
    scep_msg_t *msg;
    scep_decode_result_t res;
    apr_status_t rv;
    EVP_PKEY *signer_key, *csr_key;
    X509_STORE *store;
    X509_STORE_CTX *sctx;

    default_req(&req);
    req.signer_cert = pki.issued;
    req.message_type = SCEP_MT_RENEWALREQ;
    rv = encode_decode(&req, NULL, &msg, &res, p);
    is_int(rv, APR_SUCCESS, "RenewalReq: decode returns APR_SUCCESS");
    if (!is_int(res.fail_info, SCEP_FAIL_NONE, "RenewalReq: no failInfo")) {
        diag("why: %s", res.why ? res.why : "(none)");
    }
    if (msg->signer == NULL || msg->csr == NULL) {
        ok(0, "RenewalReq: signer and CSR decoded");
        return;
    }
    signer_key = X509_get0_pubkey(msg->signer);
    csr_key = X509_REQ_get0_pubkey(msg->csr);
    ok(signer_key != NULL && csr_key != NULL, "keys decoded");
    is_int(EVP_PKEY_eq(signer_key, csr_key), 1, "signer key == CSR key");
    is_int(EVP_PKEY_eq(X509_get0_pubkey(pki.issued), csr_key), 1,
           "CSR key == the same key parsed in the global context");
    is_int(EVP_PKEY_eq(X509_get0_pubkey(pki.other), csr_key), 0,
           "CSR key != another key of the global context");
    is_int(EVP_PKEY_get_bits(csr_key), 2048, "CSR key size");
    ok(EVP_PKEY_is_a(csr_key, "RSA"), "CSR key is RSA");
    is_int(X509_verify(msg->signer, X509_get0_pubkey(pki.ca)), 1,
           "signer certificate verifies with the CA key");
    is_int(X509_REQ_verify(msg->csr, csr_key), 1,
           "X509_REQ_verify of the decoded CSR");

    /* the renewal check: a chain to the CA certificate */
    store = X509_STORE_new();
    sctx = X509_STORE_CTX_new();
    ok(store && sctx && X509_STORE_add_cert(store, pki.ca) == 1
       && X509_STORE_CTX_init(sctx, store, msg->signer, NULL) == 1
       && X509_verify_cert(sctx) == 1, "signer chains to the CA");
    X509_STORE_CTX_free(sctx);
    X509_STORE_free(store);
    ERR_clear_error();
}

int main(void)
{
    apr_pool_t *pool;

    scep_tap_init();
    apr_pool_create(&pool, NULL);
    make_pki(pool);
    diag("DES (legacy provider): %s", pki.have_des ? "yes" : "no");

    scep_tap_run("round trip per cipher", test_ciphers);
    scep_tap_run("round trip per digest", test_digests);
    scep_tap_run("recipients", test_recipients);
    scep_tap_run("CertPoll and GetCert content", test_other_types);
    scep_tap_run("CertRep SUCCESS", test_certrep_success);
    scep_tap_run("CertRep FAILURE", test_certrep_failure);
    scep_tap_run("CertRep PENDING", test_certrep_pending);
    scep_tap_run("CertRep refused by the client", test_certrep_bad);
    scep_tap_run("decode: garbage", test_decode_garbage);
    scep_tap_run("decode: badAlg", test_decode_bad_alg);
    scep_tap_run("decode: unknown recipient", test_decode_unknown_recipient);
    scep_tap_run("decode: bad signature", test_decode_bad_signature);
    scep_tap_run("decode: messageType", test_decode_message_type);
    scep_tap_run("decode: missing attributes", test_decode_missing_attrs);
    scep_tap_run("decode: bad CSR", test_decode_bad_csr);
    scep_tap_run("EC and RSA-PSS client keys", test_other_keys);

    /* again, parsed in the library context of scep_msg_parse_init() */
    {
        const char *why = NULL;

        if (!ok(scep_msg_parse_init(&why) == APR_SUCCESS,
                "scep_msg_parse_init")) {
            diag("why: %s", why ? why : "(none)");
        }
    }
    scep_tap_run("parse context: round trip per cipher", test_ciphers);
    scep_tap_run("parse context: round trip per digest", test_digests);
    scep_tap_run("parse context: recipients", test_recipients);
    scep_tap_run("parse context: CertPoll and GetCert content",
                 test_other_types);
    scep_tap_run("parse context: keys across contexts", test_parse_context);
    scep_tap_run("parse context: EC and RSA-PSS client keys",
                 test_other_keys);
    scep_tap_run("parse context: decode: garbage", test_decode_garbage);
    scep_tap_run("parse context: decode: badAlg", test_decode_bad_alg);
    scep_tap_run("parse context: decode: bad signature",
                 test_decode_bad_signature);
    scep_tap_run("parse context: decode: messageType",
                 test_decode_message_type);
    scep_tap_run("parse context: decode: bad CSR", test_decode_bad_csr);

    apr_pool_destroy(pool);
    if (prov_legacy) {
        OSSL_PROVIDER_unload(prov_legacy);
    }
    if (prov_default) {
        OSSL_PROVIDER_unload(prov_default);
    }
    return scep_tap_done();
}
