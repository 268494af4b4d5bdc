/* Licensed under the Apache License, Version 2.0.
 *
 * mod_scep public API: the certification authority (CA) backend providers.
 *
 * A CA provider turns a verified certificate request into certificates.
 * Providers are registered with ap_register_provider() under the group
 * SCEP_CA_PROVIDER_GROUP and the version SCEP_CA_PROVIDER_VERSION, and chosen
 * per <Location> with "SCEPCAProvider name [args...]".  Lookup is exact on the
 * version string: it is bumped on every incompatible change of this file.
 *
 * This header uses APR and OpenSSL types only; a provider does not need
 * httpd headers unless it registers itself (which needs ap_provider.h).
 */
#ifndef MOD_SCEP_H
#define MOD_SCEP_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <openssl/x509.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SCEP_CA_PROVIDER_GROUP   "scep_ca"
#define SCEP_CA_PROVIDER_VERSION "1"

/** Outcome of a CA operation. */
typedef enum {
    SCEP_CA_ISSUED = 0,   /**< certificate(s) returned */
    SCEP_CA_PENDING = 1,  /**< accepted, decision later; poll with reference */
    SCEP_CA_REJECTED = 2, /**< refused by the CA or its policy */
    SCEP_CA_ERROR = 3     /**< the CA could not be reached or failed */
} scep_ca_status_e;

/** What the SCEP layer knows about one request; read-only for providers. */
typedef struct scep_ca_request_t {
    X509_REQ *csr;                   /**< verified CSR (lives as long as the request pool) */
    X509 *signer;                    /**< certificate that signed the SCEP message */
    const char *transaction_id;      /**< SCEP transactionID, printable */
    const char *profile;             /**< profile (template) name, never NULL */
    const char *requester;           /**< client IP address as text, may be NULL */
    int validity_days;               /**< validity configured for the endpoint */
} scep_ca_request_t;

/** What a provider answers. Allocate everything from the pool passed in. */
typedef struct scep_ca_reply_t {
    scep_ca_status_e status;
    STACK_OF(X509) *certs;   /**< ISSUED: issued certificate first, then chain;
                              *   owned by the caller after return (freed by a
                              *   cleanup of the request pool) */
    const char *reference;   /**< PENDING: opaque handle for poll() */
    const char *reason;      /**< REJECTED/ERROR: one line, for the log */
} scep_ca_reply_t;

/**
 * A CA backend. Members marked optional may be NULL; callers check.
 */
typedef struct scep_ca_provider_t {
    /** Name the provider is registered under, for log lines. */
    const char *name;

    /**
     * Parse the directive arguments at configuration time.
     * @param instance  out: provider state, allocated from @a p
     * @param p         configuration pool (lives until restart)
     * @param argc,argv arguments after the provider name; file names are
     *                  already made absolute against ServerRoot
     * @return NULL on success, else an error message (allocated from @a p)
     */
    const char *(*create)(void **instance, apr_pool_t *p,
                          int argc, const char *const *argv);

    /**
     * Start-up check and expensive preparation (post_config, real pass).
     * @param ca_chain  the endpoint's CA chain, issuing CA first
     * @return NULL on success, else an error message from @a p
     */
    const char *(*init)(void *instance, apr_pool_t *p,
                        STACK_OF(X509) *ca_chain);

    /**
     * Issue a certificate for a verified request.
     * @param p  request pool: everything in @a reply is allocated from it
     *           or freed by a cleanup registered on it
     */
    apr_status_t (*enroll)(void *instance, const scep_ca_request_t *req,
                           scep_ca_reply_t *reply, apr_pool_t *p);

    /** Optional. Ask again about a PENDING request by its reference. */
    apr_status_t (*poll)(void *instance, const scep_ca_request_t *req,
                         const char *reference,
                         scep_ca_reply_t *reply, apr_pool_t *p);

    /** Optional. Return an issued certificate by issuer and serial. */
    apr_status_t (*get_cert)(void *instance, const X509_NAME *issuer,
                             const ASN1_INTEGER *serial,
                             scep_ca_reply_t *reply, apr_pool_t *p);

    /** Optional. Return the current CRL as DER. */
    apr_status_t (*get_crl)(void *instance, const X509_NAME *issuer,
                            const unsigned char **der, apr_size_t *len,
                            apr_pool_t *p);

    /** Optional. Revoke by serial with an RFC 5280 reason code. */
    apr_status_t (*revoke)(void *instance, const ASN1_INTEGER *serial,
                           int reason, apr_pool_t *p);
} scep_ca_provider_t;

#ifdef __cplusplus
}
#endif

#endif /* MOD_SCEP_H */
