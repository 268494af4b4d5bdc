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
#include <apr_hash.h>
#include <apr_time.h>
#include <apr_dbd.h>
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
    int validity_days;               /**< validity from the profile or endpoint */
    /* What the profile says the certificate carries.  A provider that
     * cannot honour them (an external CA with its own templates) may ignore
     * them; the local CA follows them. */
    unsigned int key_usage;          /**< KU_* bits (x509v3.h); 0: the CSR's,
                                      *   bounded to end-entity usages */
    const char *const *ext_key_usage;/**< dotted OIDs, NULL-terminated; NULL:
                                      *   the CSR's common ones or clientAuth */
    int subject_cn_only;             /**< issue with the CSR's CN only */
    int copy_san;                    /**< copy the CSR's subjectAltName (policy
                                      *   has checked it) */
    const char *crl_url;             /**< CRL distribution point, or NULL */
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

    /** Optional. Ask again about a PENDING request by its reference.  A
     *  PENDING answer may carry a new reference in reply->reference, which
     *  replaces the old one for the next poll (from any node). */
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

/* ---- challenge providers (NDES's policy module idea) ------------------ */

#define SCEP_CHALLENGE_PROVIDER_GROUP   "scep_challenge"
#define SCEP_CHALLENGE_PROVIDER_VERSION "1"

/** A database connection lent by mod_dbd for one request. */
typedef struct scep_db_t {
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_hash_t *prepared;   /**< label -> apr_dbd_prepared_t* */
    int grouped;            /**< internal to the store: the statements of
                                 this request are being grouped into one
                                 transaction (SQLite); providers leave it */
} scep_db_t;

/** NDES's password registry values, as configured for the endpoint. */
typedef struct scep_challenge_settings_t {
    int length;                 /**< PasswordLength: random bytes (8) */
    apr_interval_time_t validity; /**< PasswordValidity (60 minutes) */
    int max;                    /**< PasswordMax: unused, unexpired (5) */
    const unsigned char *key;   /**< key of the stored keyed hash */
    apr_size_t key_len;
    const char *endpoint;       /**< name of the password pool (the
                                 *   <Location>), passwords are not
                                 *   shared between pools */
} scep_challenge_settings_t;

/** Restrictions a password may be bound to when it is issued. */
typedef struct scep_challenge_binding_t {
    const char *cn;       /**< subject CN pattern (fnmatch), or NULL */
    const char *san;      /**< a SAN the CSR must contain (fnmatch), or NULL */
    const char *profile;  /**< the profile the request must fall under */
} scep_challenge_binding_t;

/** The facts of one call.  Everything lives as long as @a pool. */
typedef struct scep_challenge_req_t {
    apr_pool_t *pool;                 /**< request pool */
    const scep_challenge_settings_t *settings;
    /** The database, acquired on first use; NULL when none is configured
     *  or reachable (the provider then answers SCEP_CHALLENGE_ERROR). */
    scep_db_t *(*db)(void *baton);
    void *db_baton;
    const char *user;                 /**< generate: the authenticated admin */
    const char *requester;            /**< client address */
    /* verify and notify: */
    const char *transaction_id;
    X509_REQ *csr;
    const char *profile;
} scep_challenge_req_t;

typedef enum {
    SCEP_CHALLENGE_OK = 0,
    SCEP_CHALLENGE_REFUSED = 1,   /**< wrong, used, expired, unbound... */
    SCEP_CHALLENGE_FULL = 2,      /**< generate: the password cache is full */
    SCEP_CHALLENGE_DENIED = 3,    /**< generate: this user may not enroll */
    SCEP_CHALLENGE_ERROR = 4      /**< store unreachable or failing */
} scep_challenge_status_e;

/** Outcome given to notify(). */
typedef enum {
    SCEP_OUTCOME_ISSUED = 0,
    SCEP_OUTCOME_PENDING = 1,
    SCEP_OUTCOME_FAILED = 2
} scep_challenge_outcome_e;

typedef struct scep_challenge_provider_t {
    const char *name;

    /** Parse "SCEPChallenge name args..." at configuration time; @a p is
     *  the configuration pool.  NULL on success, else an error message. */
    const char *(*create)(void **instance, apr_pool_t *p,
                          int argc, const char *const *argv);

    /**
     * Optional: issue a password for the admin page.
     * @param password out: the password, from req->pool
     * @param expires  out: expiry time, 0 when it never expires
     * @param multi    out: nonzero when it may be used more than once
     * @param reason   out: one line when not OK
     */
    scep_challenge_status_e (*generate)(void *instance,
                                        const scep_challenge_req_t *req,
                                        const scep_challenge_binding_t *bind,
                                        const char **password,
                                        apr_time_t *expires, int *multi,
                                        const char **reason);

    /**
     * Check the challenge password of a request (NULL when the CSR has
     * none).  A one-time password is reserved here for this transaction so
     * that no concurrent request can use it, and consumed or released by
     * notify().  @a reason: one line for the log when not OK.
     */
    scep_challenge_status_e (*verify)(void *instance,
                                      const scep_challenge_req_t *req,
                                      const char *password,
                                      const char **reason);

    /** Optional: the outcome of a verified request.  ISSUED and PENDING
     *  consume a one-time password, FAILED releases it. */
    void (*notify)(void *instance, const scep_challenge_req_t *req,
                   const char *password, scep_challenge_outcome_e outcome);
} scep_challenge_provider_t;

#ifdef __cplusplus
}
#endif

#endif /* MOD_SCEP_H */
