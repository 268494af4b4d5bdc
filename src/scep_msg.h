/* Licensed under the Apache License, Version 2.0.
 *
 * SCEP (RFC 8894) message codec: the CORE, APR and OpenSSL only.
 *
 * Server side: scep_msg_decode() reads a pkiMessage (CMS SignedData around
 * an EnvelopedData), scep_certrep_encode() writes the CertRep answer.
 * Client side (test client, benchmark, fuzzers): scep_req_encode() and
 * scep_certrep_decode().
 *
 * OpenSSL objects handed out are owned by the pool they came with (freed by
 * a pool cleanup) unless said otherwise.
 */
#ifndef SCEP_MSG_H
#define SCEP_MSG_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <openssl/x509.h>
#include <openssl/evp.h>

/* messageType values */
#define SCEP_MT_CERTREP        3
#define SCEP_MT_RENEWALREQ    17
#define SCEP_MT_UPDATEREQ     18   /* draft only, never accepted */
#define SCEP_MT_PKCSREQ       19
#define SCEP_MT_CERTPOLL      20   /* GetCertInitial */
#define SCEP_MT_GETCERT       21
#define SCEP_MT_GETCRL        22

/* pkiStatus values */
#define SCEP_STATUS_SUCCESS    0
#define SCEP_STATUS_FAILURE    2
#define SCEP_STATUS_PENDING    3

/* failInfo values; SCEP_FAIL_NONE means "no failure" */
#define SCEP_FAIL_NONE        -1
#define SCEP_FAIL_BADALG       0
#define SCEP_FAIL_BADMSGCHECK  1
#define SCEP_FAIL_BADREQUEST   2
#define SCEP_FAIL_BADTIME      3
#define SCEP_FAIL_BADCERTID    4

#define SCEP_NONCE_LEN        16

/* Content ciphers (bit set, for allow lists) */
#define SCEP_CIPHER_DES        0x01
#define SCEP_CIPHER_DES3       0x02
#define SCEP_CIPHER_AES128     0x04
#define SCEP_CIPHER_AES192     0x08
#define SCEP_CIPHER_AES256     0x10

/* Digests (bit set, for allow lists) */
#define SCEP_DIGEST_SHA1       0x01
#define SCEP_DIGEST_SHA256     0x02
#define SCEP_DIGEST_SHA384     0x04
#define SCEP_DIGEST_SHA512     0x08

/** One RA certificate with its private key. */
typedef struct scep_ra_t {
    X509 *cert;
    EVP_PKEY *key;
} scep_ra_t;

/** What the server needs to decode requests. */
typedef struct scep_decode_ctx_t {
    const scep_ra_t *const *recipients; /* RA pairs that may decrypt, NULL-terminated */
    int allowed_ciphers;                /* SCEP_CIPHER_* bits */
    int allowed_digests;                /* SCEP_DIGEST_* bits */
} scep_decode_ctx_t;

/** A decoded request.  Every field is set as far as decoding got. */
typedef struct scep_msg_t {
    int message_type;                  /* -1 when absent or unreadable */
    const char *message_type_raw;      /* as sent (at most 32 bytes) */
    const char *transaction_id;        /* NULL when absent */
    unsigned char sender_nonce[SCEP_NONCE_LEN];
    int has_sender_nonce;
    unsigned char recipient_nonce[SCEP_NONCE_LEN];
    int has_recipient_nonce;
    X509 *signer;                      /* signer certificate (pool-owned) */
    int digest_nid;                    /* digest of the SignerInfo */
    int digest;                        /* SCEP_DIGEST_* bit, 0 if other */
    int cipher_nid;                    /* content cipher of the envelope */
    int cipher;                        /* SCEP_CIPHER_* bit, 0 if other */
    const scep_ra_t *decrypted_by;     /* RA pair whose key decrypted it */
    /* the decrypted messageData, DER */
    const unsigned char *content;
    apr_size_t content_len;
    /* for PKCSReq / RenewalReq: the parsed CSR (pool-owned) */
    X509_REQ *csr;
    /* for GetCertInitial: issuer and subject; GetCert/GetCRL: issuer, serial */
    X509_NAME *issuer;
    X509_NAME *subject;
    ASN1_INTEGER *serial;
    /* CertRep only (client side) */
    int pki_status;
    int fail_info;
} scep_msg_t;

/**
 * Outcome of decoding.  When the outer SignedData could not be read, or it
 * carries no transactionID (a CertRep must echo one), decode returns
 * APR_EINVAL (the glue answers HTTP 400).  When it was read but the request
 * is bad, decode returns APR_SUCCESS with fail_info set, so the glue answers
 * CertRep FAILURE; @a why says which rule refused.
 */
typedef struct scep_decode_result_t {
    int fail_info;        /* SCEP_FAIL_NONE when the message is good */
    const char *why;      /* one line, for the log; NULL when good */
} scep_decode_result_t;

/**
 * Parse requests from now on in a library context of their own, whose
 * provider offers the default provider's algorithms but only the decoders a
 * SubjectPublicKeyInfo needs: OpenSSL 3.0 builds a decoder context from all
 * decoders of the context for every certificate and CSR key it parses.
 * Once per process, before threads use scep_msg_decode(); later calls only
 * say how the first went.  APR_SUCCESS when set up; otherwise @a why says
 * why not, and requests are parsed in the global context as before.
 */
apr_status_t scep_msg_parse_init(const char **why);

apr_status_t scep_msg_decode(scep_msg_t **pmsg, scep_decode_result_t *res,
                             const scep_decode_ctx_t *ctx,
                             const unsigned char *der, apr_size_t len,
                             apr_pool_t *p);

/** Everything a CertRep needs. */
typedef struct scep_certrep_t {
    int pki_status;                 /* SCEP_STATUS_* */
    int fail_info;                  /* FAILURE only */
    const char *transaction_id;     /* echoed */
    const unsigned char *recipient_nonce; /* the request's senderNonce, may be NULL */
    STACK_OF(X509) *certs;          /* SUCCESS: issued cert first */
    const unsigned char *crl_der;   /* SUCCESS for GetCRL: instead of certs */
    apr_size_t crl_len;
    X509 *encrypt_to;               /* requester certificate (SUCCESS) */
    int cipher_nid;                 /* content cipher (the request's) */
    X509 *signer_cert;              /* RA signing certificate */
    EVP_PKEY *signer_key;
    int digest_nid;                 /* SignerInfo digest */
    STACK_OF(X509) *extra_certs;    /* more certs for the SignedData, may be NULL */
} scep_certrep_t;

apr_status_t scep_certrep_encode(const unsigned char **der, apr_size_t *len,
                                 const scep_certrep_t *rep, const char **why,
                                 apr_pool_t *p);

/**
 * A degenerate certs-only PKCS#7 SignedData keeping the order of @a certs
 * (GetCACert, CertRep content).
 */
apr_status_t scep_certs_p7_encode(const unsigned char **der, apr_size_t *len,
                                  STACK_OF(X509) *certs, apr_pool_t *p);

/** Certificates of a degenerate PKCS#7, in encoded order (pool-owned). */
apr_status_t scep_certs_p7_decode(STACK_OF(X509) **certs,
                                  const unsigned char *der, apr_size_t len,
                                  apr_pool_t *p);

/* ---- client side ---- */

/** A request to build (test client, benchmark). */
typedef struct scep_req_t {
    int message_type;
    const char *transaction_id;
    const unsigned char *sender_nonce;  /* SCEP_NONCE_LEN bytes; NULL: random */
    const unsigned char *content;       /* messageData DER (CSR, IssuerAndSerial...) */
    apr_size_t content_len;
    STACK_OF(X509) *recipients;         /* encrypt to these */
    const EVP_CIPHER *cipher;
    X509 *signer_cert;
    EVP_PKEY *signer_key;
    const EVP_MD *digest;
    const char *message_type_string;    /* sent as messageType instead of the
                                         * number (broken messages), or NULL */
} scep_req_t;

apr_status_t scep_req_encode(const unsigned char **der, apr_size_t *len,
                             const scep_req_t *req, const char **why,
                             apr_pool_t *p);

/**
 * Decode a CertRep: verify its signature against @a ra_certs (the RA signing
 * certificate must be among them or in the message), read status, failInfo
 * and nonces, and on SUCCESS decrypt with @a key/@a cert and return the
 * certificates in (*pmsg)->content as a degenerate PKCS#7.
 */
apr_status_t scep_certrep_decode(scep_msg_t **pmsg, const char **why,
                                 const unsigned char *der, apr_size_t len,
                                 STACK_OF(X509) *ra_certs,
                                 X509 *cert, EVP_PKEY *key, apr_pool_t *p);

/* ---- helpers ---- */

/** Name of a message type ("PKCSReq"...), "unknown" otherwise. */
const char *scep_msg_type_name(int message_type);
/** Name of a failInfo ("badAlg"...). */
const char *scep_fail_name(int fail_info);

/** SCEP_CIPHER_* bit of an OpenSSL cipher NID, 0 if not a SCEP cipher. */
int scep_cipher_bit(int nid);
/** SCEP_DIGEST_* bit of an OpenSSL digest NID, 0 if not a SCEP digest. */
int scep_digest_bit(int nid);

/**
 * Decode base64 in either alphabet (standard or URL-safe), with or without
 * padding, dropping CR, LF and tab, and reading a space as '+' (a query
 * whose '+' became a space in form decoding).  Percent-decoding is the
 * caller's.
 */
apr_status_t scep_base64_decode(unsigned char **out, apr_size_t *outlen,
                                const char *in, apr_size_t inlen,
                                apr_pool_t *p);

/** Fresh random nonce. */
apr_status_t scep_nonce(unsigned char nonce[SCEP_NONCE_LEN]);

#endif /* SCEP_MSG_H */
