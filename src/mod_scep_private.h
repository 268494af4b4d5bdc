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
    const scep_ra_t *recipients[3];
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

/** The "scep-admin" handler. */
int scep_admin_handler(request_rec *r);

#endif /* MOD_SCEP_PRIVATE_H */
