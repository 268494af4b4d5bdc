/* Licensed under the Apache License, Version 2.0.
 *
 * What the httpd glue files (mod_scep.c, src/mod_scep_*.c) share.
 */
#ifndef MOD_SCEP_PRIVATE_H
#define MOD_SCEP_PRIVATE_H

#include "httpd.h"
#include "http_config.h"

#include <apr_hash.h>
#include <apr_thread_mutex.h>

#include "mod_scep.h"
#include "scep_msg.h"

/* Our own numbered log tags (httpd's AH numbers are for httpd's modules).
 * 000xx start-up and SCEP, 001xx admin page and store. */
#define SCEP_LOGNO(n) "SCEP" #n ": "

#define SCEP_UNSET -1

/* What a <Location> (or the server) configures.  Pointers NULL and ints
 * SCEP_UNSET mean "not set here": merged field by field. */
typedef struct scep_dir_conf_t {
    const char *ca_file;
    STACK_OF(X509) *ca_chain;
    const char *next_ca_file;
    STACK_OF(X509) *next_ca;
    scep_ra_t *ra_enc;
    scep_ra_t *ra_sign;
    apr_array_header_t *ra_prev; /* SCEPRAPreviousEncryption: scep_ra_t* */
    int tx_timeout;              /* SCEPTransactionTimeout, seconds */
    const scep_ca_provider_t *provider;
    void *provider_inst;
    const char *provider_name;
    int validity_days;
    const scep_challenge_provider_t *challenge;
    void *challenge_inst;
    const char *challenge_name;
    int pw_length;
    apr_interval_time_t pw_validity;
    int pw_max;
    const unsigned char *pw_key;
    apr_size_t pw_key_len;
    const char *pw_key_file;
    const char *pw_pool;
    int store;                   /* SCEPStore dbd (1) / none (0) */
    int admin_utf8;              /* SCEPAdminEncoding UTF-8 (1) / UTF-16LE */
    int admin_anonymous;         /* SCEPAdminAllowAnonymous */
    apr_array_header_t *admin_users; /* SCEPAdminEnrollUsers, NULL: anyone */
    apr_hash_t *profiles;        /* SCEPProfile: name -> scep_profile_t* */
    const char *templates[3];    /* SCEP*Template: scep_purpose_e -> name */
    const char *crl_url;         /* SCEPCRLURL: CRL distribution point */
    int crl_validity;            /* SCEPCRLValidity, hours */
    int replay_window;           /* SCEPReplayWindow, seconds (0: off) */
    int ciphers;
    int digests;
    apr_off_t max_request;
    const char *context;         /* the section's path, "server config" */
} scep_dir_conf_t;

/* Derived from a merged configuration once per process. */
typedef struct scep_endpoint_t {
    const char *error;            /* why this endpoint cannot serve */
    STACK_OF(X509) *chain;
    const scep_ra_t *enc;
    const scep_ra_t *sign;
    const scep_ra_t **recipients;  /* NULL-terminated */
    scep_decode_ctx_t dctx;
    const char *caps;
    const unsigned char *cacert;
    apr_size_t cacert_len;
    const char *cacert_type;
    const unsigned char *nextca;
    apr_size_t nextca_len;
} scep_endpoint_t;

extern module AP_MODULE_DECLARE_DATA scep_module;

/* Defaults (NDES's registry defaults where there is one). */
#define SCEP_DEFAULT_PW_LENGTH     8
#define SCEP_DEFAULT_PW_VALIDITY   apr_time_from_sec(60 * 60)
#define SCEP_DEFAULT_PW_MAX        5
#define SCEP_DEFAULT_PW_POOL       "default"

/** The challenge settings of a merged configuration, from r->pool. */
scep_challenge_settings_t *scep_glue_settings(const scep_dir_conf_t *c,
                                              apr_pool_t *p);

/** Is the SQL store in use for this configuration? */
int scep_glue_store_on(const scep_dir_conf_t *c);

/** The request's database connection from mod_dbd (baton: request_rec),
 *  NULL when there is none; logged once per request. */
scep_db_t *scep_glue_db(void *baton);
apr_status_t scep_glue_db_commit(request_rec *r);
apr_status_t scep_glue_db_publish(request_rec *r);

/** After scep_glue_db gave NULL: the Retry-After of the 503 (sooner when
 *  this child's connections were all in use than when the database
 *  refused).  scep_glue_db calls it; a handler that answers 503 for
 *  another store failure may too. */
void scep_glue_db_refused(request_rec *r);

/** One SCEP request being answered. */
typedef struct scep_req_ctx_t {
    request_rec *r;
    const scep_dir_conf_t *conf;
    scep_endpoint_t *ep;
} scep_req_ctx_t;

/** HTTP error with a one-line text/plain reason, logged (returns OK). */
int scep_glue_refuse(request_rec *r, int status, const char *why);

/** Send a CertRep answering @a msg: SUCCESS with @a certs (or a CRL in
 *  msg-independent form via scep_glue_certrep_crl), PENDING or FAILURE. */
int scep_glue_certrep(scep_req_ctx_t *rc, const scep_msg_t *msg,
                      int status, int fail_info, STACK_OF(X509) *certs);

/** CertRep FAILURE, logged with the rule that refused. */
int scep_glue_failure(scep_req_ctx_t *rc, const scep_msg_t *msg,
                      int fail_info, const char *rule, const char *why);

/** CertRep SUCCESS carrying a CRL (GetCRL). */
int scep_glue_certrep_crl(scep_req_ctx_t *rc, const scep_msg_t *msg,
                          const unsigned char *der, apr_size_t len);

/* ---- src/mod_scep_enroll.c: PKCSReq, RenewalReq, CertPoll ---- */
int scep_enroll_pkcsreq(scep_req_ctx_t *rc, scep_msg_t *msg);
int scep_enroll_certpoll(scep_req_ctx_t *rc, scep_msg_t *msg);
/** Approve (issue now) or reject a request waiting for an administrator;
 *  HTTP status for the admin page, *why for its message. */
int scep_enroll_decide(request_rec *r, const scep_dir_conf_t *c,
                       const char *tid, int approve, const char *reason,
                       const char **why);

/* ---- src/mod_scep_certs.c: GetCert, GetCRL, CRL over HTTP, revocation ---- */
int scep_certs_getcert(scep_req_ctx_t *rc, scep_msg_t *msg);
int scep_certs_getcrl(scep_req_ctx_t *rc, scep_msg_t *msg);
/** Record certificates just issued (the first of @a certs). */
void scep_certs_issued(request_rec *r, const scep_dir_conf_t *c,
                       STACK_OF(X509) *certs, const char *tid,
                       const char *profile);
/** Revoke a certificate of this section's CA by serial: the store, the
 *  CRL regenerated at once, provider->revoke when there is one.  Returns an
 *  HTTP status; *reason goes in as asked and comes back as on record. */
int scep_certs_revoke(request_rec *r, const scep_dir_conf_t *c,
                      const char *serial, int *reason, int *already,
                      apr_int64_t *crl_number, const char **why);
/** The "scep-crl" handler: the CRL over plain HTTP (DER, application/pkix-crl). */
int scep_crl_handler(request_rec *r);
/** Admin page actions on certificates: GET ?certs lists, POST
 *  ?revoke-cert=SERIAL[&reason=N] revokes.  DECLINED when the request is
 *  not one of these. */
int scep_certs_admin(request_rec *r, const scep_dir_conf_t *c, int json);

/* ---- src/mod_scep_status.c: health and metrics ---- */
typedef enum {
    SCEP_OP_GETCACAPS = 0, SCEP_OP_GETCACERT, SCEP_OP_GETNEXTCACERT,
    SCEP_OP_PKCSREQ, SCEP_OP_RENEWALREQ, SCEP_OP_CERTPOLL, SCEP_OP_GETCERT,
    SCEP_OP_GETCRL, SCEP_OP_OTHER, SCEP_OP_INFO, SCEP_OP_COUNT
} scep_op_e;
typedef enum {
    SCEP_OUT_SUCCESS = 0, SCEP_OUT_PENDING, SCEP_OUT_FAILURE,
    SCEP_OUT_HTTP_ERROR, SCEP_OUT_COUNT
} scep_outcome_e;
typedef enum {
    SCEP_CTR_PW_ISSUED = 0, SCEP_CTR_PW_CONSUMED, SCEP_CTR_PW_REFUSED,
    SCEP_CTR_PW_FULL, SCEP_CTR_DB_BUSY, SCEP_CTR_DB_REFUSED, SCEP_CTR_COUNT
} scep_counter_e;
apr_status_t scep_metrics_init(apr_pool_t *pconf, server_rec *s);
/** Record what a PKIOperation came to (read when the request is done). */
void scep_metrics_note(request_rec *r, int op, int outcome, int fail_info,
                       int cipher_bit, int digest_bit);
void scep_metrics_count(int counter);
/** Count a finished request; @a rc is what its handler returned. */
void scep_metrics_done(request_rec *r, int op, int rc, apr_time_t start);
int scep_metrics_handler(request_rec *r);
int scep_status_handler(request_rec *r);
/** The endpoint of a merged configuration (built once per process). */
scep_endpoint_t *scep_glue_endpoint(const scep_dir_conf_t *c, apr_pool_t *p);

/* ---- src/mod_scep_audit.c: one JSON line per decision ---- */
const char *scep_audit_set(cmd_parms *cmd, void *dc, const char *arg);
void scep_audit_reset(void);
apr_status_t scep_audit_open(apr_pool_t *pconf, server_rec *s);
/** Write one decision.  @a msg may be NULL (admin actions, HTTP errors);
 *  notes "scep-audit-{user,profile,challenge,ca,serial}" add fields. */
void scep_audit(request_rec *r, const scep_msg_t *msg, const char *decision,
                int fail_info, const char *rule, const char *reason);

/** Did a state-changing request come from our own pages (or from no
 *  browser at all)?  Sec-Fetch-Site, else Origin against Host: a page on
 *  another site cannot use the admin's cached login (CSRF). */
int scep_glue_same_origin(request_rec *r);

/** Read a request body of at most @a limit bytes (413 past it, with the
 *  reason in *why); there is room for a NUL after the body. */
int scep_glue_read_body(request_rec *r, apr_off_t limit,
                        unsigned char **out, apr_size_t *outlen,
                        const char **why);

/** The parameters of an admin request: the query string, and a POST body
 *  (JSON or form-encoded) over it; read once per request, cached. */
int scep_glue_params(request_rec *r, apr_table_t **params);

/** The "scep-admin" handler. */
int scep_admin_handler(request_rec *r);

#endif /* MOD_SCEP_PRIVATE_H */
