/* Licensed under the Apache License, Version 2.0.
 *
 * Issued certificates and CRLs (glue): GetCert (21) and GetCRL (22), the
 * "scep-crl" handler that serves the CRL over plain HTTP (the URL that
 * SCEPCRLURL writes into issued certificates), recording issued
 * certificates, and the admin page's certificate list and revocation.
 *
 * The CRL of the local CA lives in SQL (scep_crl_current); each process
 * keeps a copy and re-reads the stored one at most every CRL_RECHECK
 * seconds, so a revocation made on any farm node is served everywhere
 * within that time.  The node that revokes regenerates the CRL at once.
 */
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_uri.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "mod_scep_private.h"
#include "scep_certstore.h"
#include "scep_json.h"
#include "scep_pki.h"
#include "ca_local.h"

APLOG_USE_MODULE(scep);

#define CRL_DEFAULT_VALIDITY_HOURS 168  /* SCEPCRLValidity unset: a week */
#define CRL_RECHECK        10           /* seconds between store reads */
#define CRL_MAX_AGE        3600         /* Cache-Control cap, seconds */
#define CERTS_LIST_LIMIT   200
#define CERTS_MAX_BODY     8192

/* Not in mod_scep_private.h yet: revoke by serial from other glue (the
 * renewal path should use it so that the CRL is regenerated at once). */

/* ---- the per-process CRL cache ---------------------------------------- */

/* One CA's CRL.  Entries are never freed (a process serves a handful of
 * CAs); the DER is malloc'ed and replaced under the lock. */
typedef struct crl_entry_t {
    struct crl_entry_t *next;
    char key[2 * 32 + 32];      /* hex SHA-256 of the CA certificate and
                                 * the source (crl_source) */
    unsigned char *der;
    apr_size_t len;
    scep_crl_info_t info;
    apr_int64_t recheck_at;     /* when to ask the store again */
    int refreshing;             /* a thread is asking: others serve this */
} crl_entry_t;

static crl_entry_t *crl_cache;
static volatile void *crl_mutex;

/* Why a CRL could not be had: misconfiguration (answer 500 / FAILURE)
 * or the store or CA being unavailable (503). */
#define CRL_MISCONFIGURED APR_ENOTIMPL

static apr_thread_mutex_t *cache_lock(request_rec *r)
{
#if APR_HAS_THREADS
    apr_thread_mutex_t *m = (apr_thread_mutex_t *)apr_atomic_casptr(
                                &crl_mutex, NULL, NULL);
    apr_pool_t *mp;
    void *old;

    if (m == NULL) {
        /* first use in this process: an unmanaged pool of our own, as
         * threads may race here and the request's pools are theirs */
        if (apr_pool_create_unmanaged_ex(&mp, NULL, NULL) != APR_SUCCESS) {
            return NULL;
        }
        if (apr_thread_mutex_create(&m, APR_THREAD_MUTEX_DEFAULT, mp)
            != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00220)
                          "cannot create the CRL cache mutex: the CRL is "
                          "read from the store on every request");
            apr_pool_destroy(mp);
            return NULL;
        }
        old = apr_atomic_casptr(&crl_mutex, m, NULL);
        if (old != NULL) {
            apr_pool_destroy(mp);
            m = old;
        }
    }
    apr_thread_mutex_lock(m);
    return m;
#else
    return (apr_thread_mutex_t *)1;
#endif
}

static void cache_unlock(apr_thread_mutex_t *m)
{
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(m);
#endif
}

static const char *cert_key(X509 *ca, apr_pool_t *p)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    char *hex;

    if (!X509_digest(ca, EVP_sha256(), md, &n) || n != 32) {
        return NULL;
    }
    hex = apr_palloc(p, n * 2 + 1);
    for (i = 0; i < n; i++) {
        apr_snprintf(hex + i * 2, 3, "%02x", md[i]);
    }
    return hex;
}

/* Where a section's CRL comes from: the store, memory (no store) or the CA
 * provider instance.  Part of the cache key: sections of one CA with
 * different sources must not share a copy (a CRL made in memory would
 * un-revoke the store's certificates). */
static const char *crl_source(const scep_dir_conf_t *c, apr_pool_t *p)
{
    if (c->provider == &scep_ca_local_provider) {
        return scep_glue_store_on(c) ? "store" : "memory";
    }
    return apr_psprintf(p, "%pp", c->provider_inst);
}

static apr_int64_t crl_validity(const scep_dir_conf_t *c)
{
    return (apr_int64_t)(c->crl_validity == SCEP_UNSET
                         ? CRL_DEFAULT_VALIDITY_HOURS : c->crl_validity)
           * 3600;
}

/* Ask the source for the CRL of @a ca: the store (local CA), a CRL made in
 * memory (local CA without a store: nothing can be revoked then), or the
 * CA provider.  *recheck_at: when to ask again. */
static apr_status_t crl_fetch(request_rec *r, const scep_dir_conf_t *c,
                              X509 *ca, int force, apr_int64_t now,
                              const unsigned char **der, apr_size_t *len,
                              apr_int64_t *recheck_at, const char **why)
{
    apr_int64_t validity = crl_validity(c);
    EVP_PKEY *key;
    scep_db_t *db;
    apr_status_t rv;

    if (c->provider == &scep_ca_local_provider) {
        key = scep_ca_local_key(c->provider_inst);
        if (key == NULL) {
            *why = "the local CA provider has no key";
            return CRL_MISCONFIGURED;
        }
        if (!scep_glue_store_on(c)) {
            *recheck_at = now + validity - validity / 4;
            rv = scep_crl_build(ca, key, NULL, now, now, now + validity,
                                der, len, why, r->pool);
            return rv == APR_SUCCESS ? rv : CRL_MISCONFIGURED;
        }
        if ((db = scep_glue_db(r)) == NULL) {
            *why = "no database connection";
            return APR_EAGAIN;
        }
        *recheck_at = now + CRL_RECHECK;
        rv = scep_crl_current(db, ca, key, validity, force, now, der, len,
                              why, r->pool);
        /* a CA the CRL cannot be made for is a configuration error */
        return rv == APR_EINVAL ? CRL_MISCONFIGURED : rv;
    }
    if (c->provider && c->provider->get_crl) {
        *recheck_at = now + CRL_RECHECK;
        rv = c->provider->get_crl(c->provider_inst,
                                  X509_get_subject_name(ca), der, len,
                                  r->pool);
        if (rv != APR_SUCCESS || *der == NULL || *len == 0) {
            *why = apr_psprintf(r->pool, "CA provider %s gave no CRL",
                                c->provider_name);
            return rv != APR_SUCCESS ? rv : APR_EGENERAL;
        }
        return APR_SUCCESS;
    }
    *why = apr_psprintf(r->pool, "SCEPCAProvider %s makes no CRL (only the "
                        "local CA, or a provider with get_crl)",
                        c->provider_name ? c->provider_name : "(none)");
    return CRL_MISCONFIGURED;
}

static void entry_copy(crl_entry_t *e, request_rec *r,
                       const unsigned char **der, apr_size_t *len,
                       scep_crl_info_t *info)
{
    *der = apr_pmemdup(r->pool, e->der, e->len);
    *len = e->len;
    *info = e->info;
}

/**
 * The current CRL of @a ca for this request, copied into r->pool: from
 * this process's cache while it is fresh, else from crl_fetch().  With
 * @a force (after a revocation) a new CRL is made.  CRL_MISCONFIGURED,
 * or another error when the source is unavailable and no valid copy is
 * at hand; *why says why.
 */
static apr_status_t crl_obtain(request_rec *r, const scep_dir_conf_t *c,
                               X509 *ca, int force,
                               const unsigned char **der, apr_size_t *len,
                               scep_crl_info_t *info, const char **why)
{
    apr_int64_t now = apr_time_sec(apr_time_now()), recheck_at = 0;
    const char *key = cert_key(ca, r->pool), *w2 = NULL;
    crl_entry_t *e = NULL;
    const unsigned char *d = NULL;
    apr_size_t l = 0;
    apr_thread_mutex_t *m;
    scep_crl_info_t fresh;
    apr_int64_t old_number = -1;
    apr_status_t rv;

    if (key == NULL) {
        *why = "cannot hash the CA certificate";
        return CRL_MISCONFIGURED;
    }
    key = apr_pstrcat(r->pool, key, "/", crl_source(c, r->pool), NULL);
    if (strlen(key) >= sizeof(e->key)) {
        *why = "cache key too long";
        return CRL_MISCONFIGURED;
    }
    if ((m = cache_lock(r)) != NULL) {
        for (e = crl_cache; e && strcmp(e->key, key); e = e->next) {
        }
        if (e && e->der && !force) {
            int valid = e->info.next_update == 0
                        || now < e->info.next_update;
            if (valid && (now < e->recheck_at || e->refreshing)) {
                entry_copy(e, r, der, len, info);
                cache_unlock(m);
                return APR_SUCCESS;
            }
        }
        if (e) {
            e->refreshing = 1;
            old_number = e->der ? e->info.crl_number : -1;
        }
        cache_unlock(m);
    }

    /* no lock held while the store or the CA provider works */
    rv = crl_fetch(r, c, ca, force, now, &d, &l, &recheck_at, why);
    if (rv == APR_SUCCESS
        && scep_crl_info(d, l, NULL, &fresh, &w2, r->pool) != APR_SUCCESS) {
        *why = apr_pstrcat(r->pool, "unreadable CRL: ", w2, NULL);
        rv = APR_EGENERAL;
    }

    if (m == NULL) {
        if (rv == APR_SUCCESS) {
            *der = d;
            *len = l;
            *info = fresh;
        }
        return rv;
    }
    m = cache_lock(r);
    for (e = crl_cache; e && strcmp(e->key, key); e = e->next) {
    }
    if (rv == APR_SUCCESS && e && e->der
        && (fresh.crl_number < e->info.crl_number
            || (fresh.crl_number == e->info.crl_number
                && fresh.this_update < e->info.this_update))
        && (e->info.next_update == 0 || now < e->info.next_update)) {
        /* a revocation in another thread stored a newer one meanwhile */
        e->refreshing = 0;
        entry_copy(e, r, der, len, info);
        cache_unlock(m);
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        unsigned char *copy = malloc(l);
        if (e == NULL && copy != NULL) {
            e = calloc(1, sizeof(*e));
            if (e != NULL) {
                apr_cpystrn(e->key, key, sizeof(e->key));
                e->next = crl_cache;
                crl_cache = e;
            }
        }
        if (e != NULL && copy != NULL) {
            memcpy(copy, d, l);
            free(e->der);
            e->der = copy;
            e->len = l;
            e->info = fresh;
            e->recheck_at = recheck_at;
            e->refreshing = 0;
        }
        else {
            free(copy);
        }
        cache_unlock(m);
        if (fresh.crl_number != old_number) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, SCEP_LOGNO(00213)
                          "CRL of %s: number %" APR_INT64_T_FMT ", %d "
                          "entries, next update in %" APR_INT64_T_FMT " s",
                          scep_name_str(X509_get_subject_name(ca), r->pool),
                          fresh.crl_number, fresh.entries,
                          fresh.next_update - now);
        }
        *der = d;
        *len = l;
        *info = fresh;
        return APR_SUCCESS;
    }
    /* the source failed: a copy still before its nextUpdate is served
     * (never a CRL made up without the store: it would un-revoke) */
    if (e) {
        e->refreshing = 0;
        if (!force && e->der && rv != CRL_MISCONFIGURED
            && (e->info.next_update == 0 || now < e->info.next_update)) {
            /* asked again in CRL_RECHECK seconds, not on every request */
            e->recheck_at = now + CRL_RECHECK;
            entry_copy(e, r, der, len, info);
            cache_unlock(m);
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, SCEP_LOGNO(00212)
                          "CRL of %s: serving the copy of this process "
                          "(number %" APR_INT64_T_FMT "), the source failed: "
                          "%s", scep_name_str(X509_get_subject_name(ca),
                                              r->pool),
                          info->crl_number, *why);
            return APR_SUCCESS;
        }
    }
    cache_unlock(m);
    return rv;
}

/* ---- the "scep-crl" handler ------------------------------------------- */

int scep_crl_handler(request_rec *r)
{
    const scep_dir_conf_t *c;
    const unsigned char *der = NULL;
    apr_size_t len = 0;
    scep_crl_info_t info;
    const char *why = NULL;
    apr_int64_t now, max_age;
    apr_status_t rv;
    X509 *ca;
    int rc;

    if (!r->handler || strcmp(r->handler, "scep-crl")) {
        return DECLINED;
    }
    r->allowed |= (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET) {     /* HEAD is a GET, header_only */
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if ((rc = ap_discard_request_body(r)) != OK) {
        return rc;
    }
    c = ap_get_module_config(r->per_dir_config, &scep_module);
    if (c == NULL || c->ca_chain == NULL || sk_X509_num(c->ca_chain) == 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00210)
                      "CRL handler: no SCEPCACertificateFile applies to %s "
                      "(set it, and SCEPCAProvider, for this location or "
                      "the server)", r->uri);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ca = sk_X509_value(c->ca_chain, 0);
    rv = crl_obtain(r, c, ca, 0, &der, &len, &info, &why);
    if (rv == CRL_MISCONFIGURED) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00221)
                      "CRL handler: no CRL for %s at %s: %s",
                      scep_name_str(X509_get_subject_name(ca), r->pool),
                      r->uri, why);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, SCEP_LOGNO(00211)
                      "CRL handler: cannot get the CRL of %s: %s",
                      scep_name_str(X509_get_subject_name(ca), r->pool), why);
        apr_table_setn(r->err_headers_out, "Retry-After", "30");
        return HTTP_SERVICE_UNAVAILABLE;
    }

    now = apr_time_sec(apr_time_now());
    max_age = info.next_update ? info.next_update - now : CRL_MAX_AGE;
    if (max_age > CRL_MAX_AGE) {
        max_age = CRL_MAX_AGE;
    }
    if (max_age < 0) {
        max_age = 0;
    }
    apr_table_setn(r->headers_out, "Cache-Control",
                   apr_psprintf(r->pool, "max-age=%" APR_INT64_T_FMT,
                                max_age));
    apr_table_setn(r->headers_out, "ETag",
                   apr_psprintf(r->pool, "\"%" APR_INT64_T_FMT "-%"
                                APR_INT64_T_FMT "\"", info.crl_number,
                                info.this_update));
    ap_update_mtime(r, apr_time_from_sec(info.this_update));
    ap_set_last_modified(r);
    if ((rc = ap_meets_conditions(r)) != OK) {
        return rc;
    }
    ap_set_content_type(r, "application/pkix-crl");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only) {
        ap_rwrite(der, (int)len, r);
    }
    return OK;
}

/* ---- SCEP: GetCert, GetCRL -------------------------------------------- */

static X509 *ca_of(const scep_req_ctx_t *rc)
{
    STACK_OF(X509) *chain = rc->ep->chain ? rc->ep->chain
                                          : rc->conf->ca_chain;

    return chain && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : NULL;
}

/* A stack of one certificate from stored base64 DER (pool-owned). */
static STACK_OF(X509) *certs_from_b64(const char *b64, apr_pool_t *p)
{
    unsigned char *der = NULL;
    const unsigned char *q;
    apr_size_t len = 0;
    STACK_OF(X509) *certs;
    X509 *x;

    if (b64 == NULL
        || scep_base64_decode(&der, &len, b64, strlen(b64), p)
           != APR_SUCCESS) {
        return NULL;
    }
    q = der;
    if ((x = d2i_X509(NULL, &q, (long)len)) == NULL) {
        return NULL;
    }
    certs = scep_own_certs(p, sk_X509_new_null());
    if (certs == NULL || !sk_X509_push(certs, x)) {
        X509_free(x);
        return NULL;
    }
    return certs;
}

int scep_certs_getcert(scep_req_ctx_t *rc, scep_msg_t *msg)
{
    request_rec *r = rc->r;
    const scep_dir_conf_t *c = rc->conf;
    X509 *ca = ca_of(rc);
    scep_cert_row_t *row = NULL;
    STACK_OF(X509) *certs;
    scep_db_t *db;
    const char *why = NULL, *serial, *issuer;
    int store_failed = 0;

    if (msg->issuer == NULL || msg->serial == NULL) {
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "getcert",
                                 "no IssuerAndSerialNumber in the request");
    }
    serial = scep_serial_str(msg->serial, r->pool);
    issuer = scep_name_str(msg->issuer, r->pool);
    if (ca == NULL
        || X509_NAME_cmp(msg->issuer, X509_get_subject_name(ca)) != 0) {
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADCERTID, "getcert",
                                 apr_psprintf(r->pool, "issuer %s is not "
                                              "this endpoint's CA", issuer));
    }
    if (scep_glue_store_on(c)) {
        if ((db = scep_glue_db(r)) == NULL) {
            store_failed = 1;
        }
        else if (scep_cert_lookup(db, X509_get_subject_name(ca), msg->serial,
                                  &row, &why, r->pool) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00203)
                          "GetCert: cannot look up serial %s: %s", serial,
                          why);
            store_failed = 1;
        }
        else if (row != NULL) {
            certs = certs_from_b64(row->der_b64, r->pool);
            if (certs == NULL) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00205)
                              "GetCert: the stored certificate %s of %s is "
                              "unreadable: %s", serial, issuer,
                              scep_ssl_errors(r->pool));
                return scep_glue_refuse(r, HTTP_INTERNAL_SERVER_ERROR,
                                        "GetCert: the stored certificate "
                                        "is unreadable");
            }
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SCEP_LOGNO(00204)
                          "GetCert: certificate %s (%s)%s sent, transaction "
                          "%s", serial, row->subject ? row->subject : "-",
                          row->status == SCEP_CERT_REVOKED ? ", revoked," : "",
                          msg->transaction_id);
            return scep_glue_certrep(rc, msg, SCEP_STATUS_SUCCESS,
                                     SCEP_FAIL_NONE, certs);
        }
    }
    if (c->provider && c->provider->get_cert) {
        scep_ca_reply_t reply;
        apr_status_t rv;
        X509 *x;

        memset(&reply, 0, sizeof(reply));
        rv = c->provider->get_cert(c->provider_inst, msg->issuer, msg->serial,
                                   &reply, r->pool);
        if (rv == APR_SUCCESS && reply.status == SCEP_CA_ISSUED
            && reply.certs && sk_X509_num(reply.certs) > 0) {
            x = sk_X509_value(reply.certs, 0);
            if (ASN1_INTEGER_cmp(X509_get0_serialNumber(x), msg->serial)
                || X509_NAME_cmp(X509_get_issuer_name(x), msg->issuer)) {
                return scep_glue_failure(rc, msg, SCEP_FAIL_BADCERTID,
                                         "getcert", apr_psprintf(r->pool,
                                         "CA provider %s answered serial %s "
                                         "with another certificate",
                                         c->provider_name, serial));
            }
            certs = scep_own_certs(r->pool, sk_X509_new_null());
            X509_up_ref(x);
            sk_X509_push(certs, x);
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SCEP_LOGNO(00222)
                          "GetCert: certificate %s from CA provider %s sent, "
                          "transaction %s", serial, c->provider_name,
                          msg->transaction_id);
            return scep_glue_certrep(rc, msg, SCEP_STATUS_SUCCESS,
                                     SCEP_FAIL_NONE, certs);
        }
        if (rv != APR_SUCCESS || reply.status == SCEP_CA_ERROR) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, SCEP_LOGNO(00206)
                          "GetCert: CA provider %s failed for serial %s: %s",
                          c->provider_name, serial,
                          reply.reason ? reply.reason : "-");
            apr_table_setn(r->err_headers_out, "Retry-After", "30");
            return scep_glue_refuse(r, HTTP_SERVICE_UNAVAILABLE,
                                    "GetCert: the CA is not available");
        }
    }
    if (store_failed) {
        apr_table_setn(r->err_headers_out, "Retry-After", "30");
        return scep_glue_refuse(r, HTTP_SERVICE_UNAVAILABLE,
                                "GetCert: the certificate store is not "
                                "available");
    }
    return scep_glue_failure(rc, msg, SCEP_FAIL_BADCERTID, "getcert",
                             apr_psprintf(r->pool, "no certificate with "
                                          "serial %s from %s is known%s",
                                          serial, issuer,
                                          scep_glue_store_on(c) ? ""
                                          : " (SCEPStore is off)"));
}

int scep_certs_getcrl(scep_req_ctx_t *rc, scep_msg_t *msg)
{
    request_rec *r = rc->r;
    const scep_dir_conf_t *c = rc->conf;
    X509 *ca = ca_of(rc);
    const unsigned char *der = NULL;
    apr_size_t len = 0;
    scep_crl_info_t info;
    const char *why = NULL, *issuer;
    apr_status_t rv;

    if (msg->issuer == NULL) {
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "getcrl",
                                 "no IssuerAndSerialNumber in the request");
    }
    issuer = scep_name_str(msg->issuer, r->pool);
    if (ca && X509_NAME_cmp(msg->issuer, X509_get_subject_name(ca)) == 0
        && (c->provider == &scep_ca_local_provider
            || (c->provider && c->provider->get_crl))) {
        rv = crl_obtain(r, c, ca, 0, &der, &len, &info, &why);
        if (rv == CRL_MISCONFIGURED) {
            return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "getcrl",
                                     why);
        }
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, SCEP_LOGNO(00208)
                          "GetCRL: cannot get the CRL of %s: %s", issuer,
                          why);
            apr_table_setn(r->err_headers_out, "Retry-After", "30");
            return scep_glue_refuse(r, HTTP_SERVICE_UNAVAILABLE,
                                    "GetCRL: the CRL is not available");
        }
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SCEP_LOGNO(00207)
                      "GetCRL: CRL number %" APR_INT64_T_FMT " of %s sent "
                      "(%d entries), transaction %s", info.crl_number,
                      issuer, info.entries, msg->transaction_id);
        return scep_glue_certrep_crl(rc, msg, der, len);
    }
    if (c->provider && c->provider != &scep_ca_local_provider
        && c->provider->get_crl) {
        /* another issuer the CA provider may know of */
        rv = c->provider->get_crl(c->provider_inst, msg->issuer, &der, &len,
                                  r->pool);
        if (rv == APR_SUCCESS && der && len) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SCEP_LOGNO(00223)
                          "GetCRL: CRL of %s from CA provider %s sent, "
                          "transaction %s", issuer, c->provider_name,
                          msg->transaction_id);
            return scep_glue_certrep_crl(rc, msg, der, len);
        }
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "getcrl",
                                 apr_psprintf(r->pool, "CA provider %s has "
                                              "no CRL of %s",
                                              c->provider_name, issuer));
    }
    return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "getcrl",
                             apr_psprintf(r->pool, "no CRL of %s here (%s)",
                                          issuer,
                                          ca && X509_NAME_cmp(msg->issuer,
                                              X509_get_subject_name(ca)) == 0
                                          ? "the CA provider makes none"
                                          : "not this endpoint's CA"));
}

/* ---- recording and revoking ------------------------------------------- */

void scep_certs_issued(request_rec *r, const scep_dir_conf_t *c,
                       STACK_OF(X509) *certs, const char *tid,
                       const char *profile)
{
    X509 *x = certs && sk_X509_num(certs) > 0 ? sk_X509_value(certs, 0)
                                              : NULL;
    const char *why = NULL, *serial;
    scep_db_t *db;

    if (x == NULL || !scep_glue_store_on(c)) {
        return;
    }
    serial = scep_serial_str(X509_get0_serialNumber(x), r->pool);
    if ((db = scep_glue_db(r)) == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00202)
                      "certificate %s issued (transaction %s) but not "
                      "recorded: no database connection", serial,
                      tid ? tid : "-");
        return;
    }
    if (scep_cert_record(db, x, tid, profile, &why, r->pool) != APR_SUCCESS) {
        /* issued already: the requester gets it, only GetCert and
         * revocation will not know it */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00201)
                      "certificate %s issued (transaction %s) but not "
                      "recorded: %s", serial, tid ? tid : "-", why);
        return;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, SCEP_LOGNO(00200)
                  "certificate %s (%s) recorded, transaction %s", serial,
                  scep_name_str(X509_get_subject_name(x), r->pool),
                  tid ? tid : "-");
}

/**
 * Revoke @a serial (hex) of the section's CA with CRLReason *@a reason (-1:
 * none): the CA provider's revoke first when it has one, then the store,
 * then a new CRL (local CA).  Revoking a revoked certificate succeeds with
 * *already set and *reason the recorded one (and makes a new CRL, in case
 * the first attempt could not).  Returns an HTTP status; *why says why when
 * it is not 200.
 */
int scep_certs_revoke(request_rec *r, const scep_dir_conf_t *c,
                      const char *serial, int *reason, int *already,
                      apr_int64_t *crl_number, const char **why)
{
    apr_int64_t now = apr_time_sec(apr_time_now());
    const char *norm = scep_serial_normalize(serial, r->pool);
    scep_cert_row_t *row = NULL;
    ASN1_INTEGER *aserial = NULL;
    BIGNUM *bn = NULL;
    scep_db_t *db = NULL;
    X509 *ca;
    const unsigned char *der;
    apr_size_t len;
    scep_crl_info_t info;
    int done = 0, store = scep_glue_store_on(c);
    apr_status_t rv;

    *already = 0;
    *crl_number = 0;
    if (c->ca_chain == NULL || sk_X509_num(c->ca_chain) == 0) {
        *why = "no SCEPCACertificateFile applies here";
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ca = sk_X509_value(c->ca_chain, 0);
    if (norm == NULL) {
        *why = apr_psprintf(r->pool, "'%s' is not a hex serial number",
                            serial ? serial : "");
        return HTTP_BAD_REQUEST;
    }
    if (BN_hex2bn(&bn, norm) == 0
        || (aserial = scep_own_int(r->pool, BN_to_ASN1_INTEGER(bn, NULL)))
           == NULL) {
        BN_free(bn);
        *why = "cannot convert the serial number";
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    BN_free(bn);
    if (!store && !(c->provider && c->provider->revoke)) {
        *why = "revocation needs SCEPStore dbd (or a CA provider that "
               "revokes)";
        return HTTP_NOT_IMPLEMENTED;
    }
    if (store) {
        if ((db = scep_glue_db(r)) == NULL) {
            *why = "no database connection";
            return HTTP_SERVICE_UNAVAILABLE;
        }
        if (scep_cert_lookup(db, X509_get_subject_name(ca), aserial, &row,
                             why, r->pool) != APR_SUCCESS) {
            return HTTP_SERVICE_UNAVAILABLE;
        }
        if (row == NULL && !(c->provider && c->provider->revoke)) {
            *why = apr_psprintf(r->pool, "no certificate with serial %s "
                                "from %s is recorded", norm,
                                scep_name_str(X509_get_subject_name(ca),
                                              r->pool));
            return HTTP_NOT_FOUND;
        }
        *already = row && row->status == SCEP_CERT_REVOKED;
        if (*already) {
            *reason = row->reason;
        }
    }
    if (!*already && c->provider && c->provider->revoke) {
        rv = c->provider->revoke(c->provider_inst, aserial, *reason,
                                 r->pool);
        if (rv != APR_SUCCESS) {
            *why = apr_psprintf(r->pool, "CA provider %s could not revoke "
                                "serial %s", c->provider_name, norm);
            return HTTP_BAD_GATEWAY;
        }
    }
    if (row != NULL && !*already) {
        if (scep_cert_revoke(db, X509_get_subject_name(ca), norm, *reason,
                             now, &done, why, r->pool) != APR_SUCCESS) {
            return HTTP_SERVICE_UNAVAILABLE;
        }
        /* revoked by someone else in between */
        *already = !done;
    }
    if (c->provider == &scep_ca_local_provider && store) {
        rv = crl_obtain(r, c, ca, 1, &der, &len, &info, why);
        if (rv != APR_SUCCESS) {
            *why = apr_pstrcat(r->pool, "revoked, but no new CRL: ", *why,
                               " (revoking again makes one)", NULL);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        *crl_number = info.crl_number;
    }
    return HTTP_OK;
}

/* ---- the admin page's certificate actions ------------------------------ */

static const char *rfc3339(apr_int64_t secs, apr_pool_t *p)
{
    apr_time_exp_t x;

    if (secs <= 0) {
        return NULL;
    }
    apr_time_exp_gmt(&x, apr_time_from_sec(secs));
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", x.tm_year + 1900,
                        x.tm_mon + 1, x.tm_mday, x.tm_hour, x.tm_min,
                        x.tm_sec);
}

static int admin_json(request_rec *r, int status, const char *body)
{
    r->status = status;
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "application/json");
    ap_rputs(body, r);
    ap_rputs("\n", r);
    return OK;
}

static int admin_html(request_rec *r, const char *inner)
{
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rvputs(r,
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; "
        "charset=UTF-8\">\r\n"
        "<Title>Network Device Enrollment Service</Title></Head>\r\n"
        "<Body BgColor=#FFFFFF><Font ID=locPageFont Face=\"Arial\">\r\n"
        "<Table Border=0 CellSpacing=0 CellPadding=4 Width=100% "
        "BgColor=#008080>\r\n<TR><TD><Font Color=#FFFFFF><Font Face=\"Arial\" "
        "Size=-1><B><I>mod_scep</I></B></Font><Br><Font Face=\"Arial\" "
        "Size=+1><B>Network Device Enrollment Service</B></Font></Font>"
        "</TD></TR>\r\n</Table>\r\n", inner,
        "</Font></Body></HTML>\r\n", NULL);
    return OK;
}

static const char *reason_options(apr_pool_t *p)
{
    static const int codes[] = { 0, 1, 2, 3, 4, 5, 6, 9, 10 };
    const char *out = "";
    int i;

    for (i = 0; i < (int)(sizeof(codes) / sizeof(codes[0])); i++) {
        out = apr_psprintf(p, "%s<Option Value=%d>%s</Option>", out, codes[i],
                           scep_crl_reason_name(codes[i]));
    }
    return out;
}

static int certs_list(request_rec *r, const scep_dir_conf_t *c, int json,
                      X509 *ca)
{
    apr_array_header_t *rows;
    scep_db_t *db;
    const char *why = NULL, *out, *options = NULL;
    int i;

    if (!scep_glue_store_on(c) || (db = scep_glue_db(r)) == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00218)
                      "admin page: no certificate list: %s",
                      scep_glue_store_on(c) ? "no database connection"
                                            : "SCEPStore is off here");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (scep_cert_list(db, X509_get_subject_name(ca), CERTS_LIST_LIMIT,
                       &rows, &why, r->pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00224)
                      "admin page: cannot list certificates: %s", why);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    out = json ? "{\"certificates\": [" : apr_psprintf(r->pool,
        "<H3>Certificates issued by %s</H3>\r\n"
        "<P> The latest %d are listed. </P>\r\n"
        "<Table Border=1 CellPadding=4><TR><TH>Serial</TH><TH>Subject</TH>"
        "<TH>Not after</TH><TH>Status</TH><TH></TH></TR>\r\n",
        ap_escape_html(r->pool, scep_name_str(X509_get_subject_name(ca),
                                              r->pool)),
        CERTS_LIST_LIMIT);
    for (i = 0; i < rows->nelts; i++) {
        scep_cert_row_t *cr = APR_ARRAY_IDX(rows, i, scep_cert_row_t *);
        int revoked = cr->status == SCEP_CERT_REVOKED;
        const char *not_after = rfc3339(cr->not_after, r->pool);

        if (json) {
            out = apr_psprintf(r->pool, "%s%s{\"serial\": %s, "
                               "\"subject\": %s, \"not_before\": %s, "
                               "\"not_after\": %s, "
                               "\"status\": \"%s\", \"revoked_at\": %s, "
                               "\"reason\": %s, \"reason_code\": %s, "
                               "\"transaction_id\": %s, \"profile\": %s}",
                               out, i ? ", " : "",
                               scep_json_str(cr->serial, r->pool),
                               scep_json_str(cr->subject, r->pool),
                               scep_json_str(rfc3339(cr->not_before, r->pool),
                                             r->pool),
                               scep_json_str(not_after, r->pool),
                               revoked ? "revoked" : "valid",
                               revoked ? scep_json_str(rfc3339(cr->revoked_at,
                                                               r->pool),
                                                       r->pool) : "null",
                               revoked && cr->reason >= 0
                               ? scep_json_str(scep_crl_reason_name(
                                                   cr->reason), r->pool)
                               : "null",
                               revoked && cr->reason >= 0
                               ? apr_itoa(r->pool, cr->reason) : "null",
                               scep_json_str(cr->transaction_id, r->pool),
                               scep_json_str(cr->profile, r->pool));
            continue;
        }
        if (!revoked && options == NULL) {
            options = reason_options(r->pool);
        }
        out = apr_psprintf(r->pool, "%s<TR><TD>%s</TD><TD>%s</TD><TD>%s</TD>"
                           "<TD>%s</TD><TD>%s</TD></TR>\r\n", out,
                           ap_escape_html(r->pool, cr->serial),
                           ap_escape_html(r->pool, cr->subject ? cr->subject
                                                               : ""),
                           not_after ? not_after : "",
                           revoked ? apr_psprintf(r->pool, "Revoked %s (%s)",
                                         cr->revoked_at > 0
                                         ? rfc3339(cr->revoked_at, r->pool)
                                         : "",
                                         scep_crl_reason_name(cr->reason))
                                   : "Valid",
                           revoked ? "" : apr_psprintf(r->pool,
                               "<Form Method=POST Action=\"?revoke-cert=%s\">"
                               "<Select Name=reason>%s</Select> "
                               "<Input Type=submit Value=\"Revoke\"></Form>",
                               ap_escape_uri(r->pool, cr->serial), options));
    }
    if (json) {
        return admin_json(r, HTTP_OK, apr_pstrcat(r->pool, out, "]}", NULL));
    }
    return admin_html(r, apr_pstrcat(r->pool, out, "</Table>\r\n", NULL));
}

static const char *or_dash(const char *s)
{
    return s ? s : "-";
}

/* A POST from a page of another site (cross-site request forgery with the
 * administrator's credentials) is refused. */
int scep_glue_same_origin(request_rec *r)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *origin = apr_table_get(r->headers_in, "Origin");
    const char *host = apr_table_get(r->headers_in, "Host");
    apr_uri_t u;

    if (site) {
        return !strcasecmp(site, "same-origin") || !strcasecmp(site, "none");
    }
    if (origin == NULL) {
        return 1;     /* not a browser (curl, scripts) */
    }
    return apr_uri_parse(r->pool, origin, &u) == APR_SUCCESS && u.hostinfo
           && host && !strcasecmp(u.hostinfo, host);
}

/* The reason of a revocation: the query string, else a form or JSON body
 * (bounded). */
static int revoke_reason(request_rec *r, apr_table_t *args,
                         const char **reason)
{
    apr_table_t *t = NULL;
    int rc;

    *reason = apr_table_get(args, "reason");
    if (*reason) {
        return OK;
    }
    if ((rc = scep_glue_params(r, &t)) != OK) {
        return rc;
    }
    *reason = apr_table_get(t, "reason");
    return OK;
}

static int certs_revoke(request_rec *r, const scep_dir_conf_t *c, int json,
                        const char *serial, apr_table_t *args)
{
    const char *reason_s = NULL, *why = NULL;
    int reason = 0, already = 0, status, rc;
    apr_int64_t number = 0;

    if (r->method_number != M_POST) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00215)
                      "admin page: revocation refused (rule: POST only)");
        r->allowed |= (AP_METHOD_BIT << M_POST);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (r->user == NULL && c->admin_anonymous != 1) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00219)
                      "admin page: revocation refused (rule: authenticated "
                      "user): no authenticated user");
        return HTTP_UNAUTHORIZED;
    }
    if (!scep_glue_same_origin(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00225)
                      "admin page: revocation of %s refused (rule: "
                      "same-origin): a page of another site posted it "
                      "(Origin %s, Sec-Fetch-Site %s)",
                      ap_escape_logitem(r->pool, serial),
                      ap_escape_logitem(r->pool, or_dash(apr_table_get(
                          r->headers_in, "Origin"))),
                      ap_escape_logitem(r->pool, or_dash(apr_table_get(
                          r->headers_in, "Sec-Fetch-Site"))));
        return HTTP_FORBIDDEN;
    }
    if ((rc = revoke_reason(r, args, &reason_s)) != OK) {
        return rc;
    }
    if (reason_s && *reason_s
        && (reason = scep_crl_reason_parse(reason_s)) < 0) {
        why = apr_psprintf(r->pool, "'%s' is not a CRLReason (0-6, 9, 10 or "
                           "a name such as keyCompromise)", reason_s);
        status = HTTP_BAD_REQUEST;
    }
    else {
        status = scep_certs_revoke(r, c, serial, &reason, &already, &number,
                                   &why);
    }
    if (status != HTTP_OK) {
        int level = status >= 500 ? APLOG_ERR : APLOG_WARNING;
        ap_log_rerror(APLOG_MARK, level, 0, r, SCEP_LOGNO(00226)
                      "admin page: revocation of certificate %s by %s "
                      "refused (rule: revoke): %s",
                      ap_escape_logitem(r->pool, serial),
                      r->user ? r->user : "-", why);
        if (json) {
            return admin_json(r, status, apr_psprintf(r->pool,
                "{\"revoked\": false, \"error\": \"%s\", \"reason\": %s}",
                status == HTTP_NOT_FOUND ? "not_found"
                : status == HTTP_BAD_REQUEST ? "bad_request" : "failed",
                scep_json_str(why, r->pool)));
        }
        apr_table_setn(r->notes, "error-notes",
                       ap_escape_html(r->pool, why));
        return status;
    }
    apr_table_setn(r->notes, "scep-audit-user", r->user ? r->user : "-");
    apr_table_setn(r->notes, "scep-audit-serial",
                   scep_serial_normalize(serial, r->pool));
    scep_audit(r, NULL, "certificate_revoked", -1, "administrator",
               apr_pstrcat(r->pool, scep_crl_reason_name(reason),
                           already ? ", it was revoked already" : "", NULL));
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, SCEP_LOGNO(00214)
                  "admin page: %s revoked certificate %s (%s)%s, CRL number "
                  "%" APR_INT64_T_FMT, r->user ? r->user : "-",
                  scep_serial_normalize(serial, r->pool),
                  scep_crl_reason_name(reason),
                  already ? ", it was revoked already" : "", number);
    if (json) {
        return admin_json(r, HTTP_OK, apr_psprintf(r->pool,
            "{\"revoked\": true, \"serial\": %s, \"reason\": %s, "
            "\"reason_code\": %s, \"already_revoked\": %s, "
            "\"crl_number\": %s}",
            scep_json_str(scep_serial_normalize(serial, r->pool), r->pool),
            reason >= 0 ? scep_json_str(scep_crl_reason_name(reason), r->pool)
                        : "null",
            reason >= 0 ? apr_itoa(r->pool, reason) : "null",
            already ? "true" : "false",
            number > 0 ? apr_off_t_toa(r->pool, (apr_off_t)number) : "null"));
    }
    apr_table_setn(r->headers_out, "Location",
                   ap_construct_url(r->pool, apr_pstrcat(r->pool, r->uri,
                                                          "?certs", NULL), r));
    return HTTP_SEE_OTHER;
}

int scep_certs_admin(request_rec *r, const scep_dir_conf_t *c, int json)
{
    apr_table_t *args = NULL;
    const char *revoke;
    X509 *ca;

    if (r->args == NULL) {
        return DECLINED;
    }
    ap_args_to_table(r, &args);
    revoke = apr_table_get(args, "revoke-cert");
    if (revoke == NULL && apr_table_get(args, "certs") == NULL) {
        return DECLINED;
    }
    if (c->ca_chain == NULL || sk_X509_num(c->ca_chain) == 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00227)
                      "admin page: no SCEPCACertificateFile applies to %s",
                      r->uri);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ca = sk_X509_value(c->ca_chain, 0);
    if (revoke) {
        return certs_revoke(r, c, json, revoke, args);
    }
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    return certs_list(r, c, json, ca);
}
