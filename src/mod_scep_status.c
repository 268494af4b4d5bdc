/* Licensed under the Apache License, Version 2.0.
 *
 * Health and metrics (glue): the "scep-status" handler tells a load
 * balancer whether this node can serve (JSON, 503 when it cannot), the
 * "scep-metrics" handler exposes Prometheus counters kept in shared memory,
 * so that every child process of the node counts into the same numbers.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"

#include <apr_atomic.h>
#include <apr_shm.h>
#include <apr_strings.h>

#include "mod_scep_private.h"
#include "scep_challenge.h"
#include "scep_json.h"
#include "scep_pki.h"
#include "scep_store.h"

APLOG_USE_MODULE(scep);

static const char *const op_names[SCEP_OP_COUNT] = {
    "GetCACaps", "GetCACert", "GetNextCACert", "PKCSReq", "RenewalReq",
    "CertPoll", "GetCert", "GetCRL", "other", "info"
};
static const char *const outcome_names[SCEP_OUT_COUNT] = {
    "success", "pending", "failure", "http_error"
};
static const char *const fail_names[5] = {
    "badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId"
};
static const char *const cipher_names[5] = {
    "DES", "DES3", "AES-128", "AES-192", "AES-256"
};
static const char *const digest_names[4] = {
    "SHA-1", "SHA-256", "SHA-384", "SHA-512"
};
/* request latency buckets, seconds, and their labels */
static const double lat_bounds[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
static const char *const lat_labels[] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10"
};
#define LAT_N ((int)(sizeof(lat_bounds) / sizeof(lat_bounds[0])))

typedef struct {
    apr_uint64_t ops[SCEP_OP_COUNT][SCEP_OUT_COUNT];
    apr_uint64_t fail[5];
    apr_uint64_t cipher[5];
    apr_uint64_t digest[4];
    apr_uint64_t counters[SCEP_CTR_COUNT];
    apr_uint64_t lat[LAT_N + 1];     /* last: +Inf */
    apr_uint64_t lat_sum_us;
    apr_uint64_t lat_count;
} scep_metrics_t;

static scep_metrics_t *metrics;     /* in shared memory, or private */
static apr_time_t started;

apr_status_t scep_metrics_init(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *shm = NULL;
    apr_status_t rv;

    /* anonymous shared memory: the children inherit it across fork */
    rv = apr_shm_create(&shm, sizeof(scep_metrics_t), NULL, pconf);
    if (rv == APR_SUCCESS) {
        metrics = apr_shm_baseaddr_get(shm);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, SCEP_LOGNO(00300)
                     "no shared memory for the metrics: each child counts "
                     "for itself");
        metrics = apr_palloc(pconf, sizeof(*metrics));
    }
    memset(metrics, 0, sizeof(*metrics));
    started = apr_time_now();
    return APR_SUCCESS;
}

void scep_metrics_count(int counter)
{
    if (metrics && counter >= 0 && counter < SCEP_CTR_COUNT) {
        apr_atomic_inc64(&metrics->counters[counter]);
    }
}

void scep_metrics_note(request_rec *r, int op, int outcome, int fail_info,
                       int cipher_bit, int digest_bit)
{
    apr_table_setn(r->notes, "scep-op", apr_itoa(r->pool, op));
    apr_table_setn(r->notes, "scep-outcome", apr_itoa(r->pool, outcome));
    apr_table_setn(r->notes, "scep-fail", apr_itoa(r->pool, fail_info));
    apr_table_setn(r->notes, "scep-cipher", apr_itoa(r->pool, cipher_bit));
    apr_table_setn(r->notes, "scep-digest", apr_itoa(r->pool, digest_bit));
}

static int bit_index(int bit)
{
    int i;

    for (i = 0; bit > 1 && i < 8; i++) {
        bit >>= 1;
    }
    return bit == 1 ? i : -1;
}

void scep_metrics_done(request_rec *r, int op, int rc, apr_time_t start)
{
    const char *v;
    apr_interval_time_t took = apr_time_now() - start;
    double secs = (double)took / APR_USEC_PER_SEC;
    int outcome, k;

    if (metrics == NULL) {
        return;
    }
    if ((v = apr_table_get(r->notes, "scep-op")) != NULL) {
        op = atoi(v);
    }
    v = apr_table_get(r->notes, "scep-outcome");
    outcome = v ? atoi(v)
                : ((rc != OK && rc != DONE) || r->status >= 400)
                  ? SCEP_OUT_HTTP_ERROR : SCEP_OUT_SUCCESS;
    if (op >= 0 && op < SCEP_OP_COUNT && outcome >= 0
        && outcome < SCEP_OUT_COUNT) {
        apr_atomic_inc64(&metrics->ops[op][outcome]);
    }
    if ((v = apr_table_get(r->notes, "scep-fail")) != NULL
        && (k = atoi(v)) >= 0 && k < 5 && outcome == SCEP_OUT_FAILURE) {
        apr_atomic_inc64(&metrics->fail[k]);
    }
    if ((v = apr_table_get(r->notes, "scep-cipher")) != NULL
        && (k = bit_index(atoi(v))) >= 0 && k < 5) {
        apr_atomic_inc64(&metrics->cipher[k]);
    }
    if ((v = apr_table_get(r->notes, "scep-digest")) != NULL
        && (k = bit_index(atoi(v))) >= 0 && k < 4) {
        apr_atomic_inc64(&metrics->digest[k]);
    }
    for (k = 0; k < LAT_N && secs > lat_bounds[k]; k++) {
        ;
    }
    apr_atomic_inc64(&metrics->lat[k]);
    apr_atomic_add64(&metrics->lat_sum_us, (apr_uint64_t)took);
    apr_atomic_inc64(&metrics->lat_count);
}

/* ---- scep-metrics ----------------------------------------------------- */

static void counter_head(request_rec *r, const char *name, const char *help,
                         const char *type)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int scep_metrics_handler(request_rec *r)
{
    int i, j;
    apr_uint64_t cum = 0;
    const scep_dir_conf_t *c;

    if (!r->handler || strcmp(r->handler, "scep-metrics")) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (metrics == NULL) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    c = ap_get_module_config(r->per_dir_config, &scep_module);
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    if (r->header_only) {
        return OK;
    }
    counter_head(r, "scep_requests_total", "SCEP requests by operation or "
                 "message type and outcome", "counter");
    for (i = 0; i < SCEP_OP_COUNT; i++) {
        for (j = 0; j < SCEP_OUT_COUNT; j++) {
            ap_rprintf(r, "scep_requests_total{operation=\"%s\",outcome="
                       "\"%s\"} %" APR_UINT64_T_FMT "\n", op_names[i],
                       outcome_names[j],
                       apr_atomic_read64(&metrics->ops[i][j]));
        }
    }
    counter_head(r, "scep_failures_total", "CertRep FAILURE answers by "
                 "failInfo", "counter");
    for (i = 0; i < 5; i++) {
        ap_rprintf(r, "scep_failures_total{fail_info=\"%s\"} %"
                   APR_UINT64_T_FMT "\n", fail_names[i],
                   apr_atomic_read64(&metrics->fail[i]));
    }
    counter_head(r, "scep_ciphers_total", "content ciphers of decoded "
                 "requests", "counter");
    for (i = 0; i < 5; i++) {
        ap_rprintf(r, "scep_ciphers_total{cipher=\"%s\"} %" APR_UINT64_T_FMT
                   "\n", cipher_names[i],
                   apr_atomic_read64(&metrics->cipher[i]));
    }
    counter_head(r, "scep_digests_total", "digests of decoded requests",
                 "counter");
    for (i = 0; i < 4; i++) {
        ap_rprintf(r, "scep_digests_total{digest=\"%s\"} %" APR_UINT64_T_FMT
                   "\n", digest_names[i],
                   apr_atomic_read64(&metrics->digest[i]));
    }
    counter_head(r, "scep_passwords_issued_total", "enrollment passwords "
                 "handed out by the admin page", "counter");
    ap_rprintf(r, "scep_passwords_issued_total %" APR_UINT64_T_FMT "\n",
               apr_atomic_read64(&metrics->counters[SCEP_CTR_PW_ISSUED]));
    counter_head(r, "scep_passwords_consumed_total", "one-time passwords "
                 "used by an issued or pending enrollment", "counter");
    ap_rprintf(r, "scep_passwords_consumed_total %" APR_UINT64_T_FMT "\n",
               apr_atomic_read64(&metrics->counters[SCEP_CTR_PW_CONSUMED]));
    counter_head(r, "scep_passwords_refused_total", "enrollments refused "
                 "for their challenge password", "counter");
    ap_rprintf(r, "scep_passwords_refused_total %" APR_UINT64_T_FMT "\n",
               apr_atomic_read64(&metrics->counters[SCEP_CTR_PW_REFUSED]));
    counter_head(r, "scep_password_cache_full_total", "admin page requests "
                 "refused because the password cache was full", "counter");
    ap_rprintf(r, "scep_password_cache_full_total %" APR_UINT64_T_FMT "\n",
               apr_atomic_read64(&metrics->counters[SCEP_CTR_PW_FULL]));
    counter_head(r, "scep_db_unavailable_total", "requests that got no "
                 "database connection: busy (SCEPDBDConnections all in use "
                 "for the wait) or refused (the database refused or is "
                 "down)", "counter");
    ap_rprintf(r, "scep_db_unavailable_total{cause=\"busy\"} %"
               APR_UINT64_T_FMT "\n",
               apr_atomic_read64(&metrics->counters[SCEP_CTR_DB_BUSY]));
    ap_rprintf(r, "scep_db_unavailable_total{cause=\"refused\"} %"
               APR_UINT64_T_FMT "\n",
               apr_atomic_read64(&metrics->counters[SCEP_CTR_DB_REFUSED]));
    if (c && scep_glue_store_on(c)) {
        scep_db_t *db = scep_glue_db(r);
        int live = 0, expired = 0;
        const char *why = NULL;
        const char *pool = c->pw_pool ? c->pw_pool : SCEP_DEFAULT_PW_POOL;
        apr_int64_t now = apr_time_sec(apr_time_now());
        if (db == NULL) {
            /* the metrics are answered anyway, without the gauges */
            apr_table_unset(r->err_headers_out, "Retry-After");
        }
        if (db && scep_pw_count_live(db, pool, now, &live, &why, r->pool)
                  == APR_SUCCESS
            && scep_pw_count_expired(db, pool, now, &expired, &why, r->pool)
               == APR_SUCCESS) {
            counter_head(r, "scep_passwords_outstanding", "unused, unexpired "
                         "passwords in the pool (the NDES password cache)",
                         "gauge");
            ap_rprintf(r, "scep_passwords_outstanding{pool=\"%s\"} %d\n",
                       pool, live);
            counter_head(r, "scep_passwords_expired", "passwords that "
                         "expired unused", "gauge");
            ap_rprintf(r, "scep_passwords_expired{pool=\"%s\"} %d\n", pool,
                       expired);
        }
    }
    counter_head(r, "scep_request_duration_seconds", "time to answer SCEP "
                 "requests", "histogram");
    for (i = 0; i <= LAT_N; i++) {
        cum += apr_atomic_read64(&metrics->lat[i]);
        if (i < LAT_N) {
            ap_rprintf(r, "scep_request_duration_seconds_bucket{le=\"%s\"} %"
                       APR_UINT64_T_FMT "\n", lat_labels[i], cum);
        }
        else {
            ap_rprintf(r, "scep_request_duration_seconds_bucket{le=\"+Inf\"} "
                       "%" APR_UINT64_T_FMT "\n", cum);
        }
    }
    ap_rprintf(r, "scep_request_duration_seconds_sum %.6f\n",
               (double)apr_atomic_read64(&metrics->lat_sum_us)
               / APR_USEC_PER_SEC);
    ap_rprintf(r, "scep_request_duration_seconds_count %" APR_UINT64_T_FMT
               "\n", apr_atomic_read64(&metrics->lat_count));
    counter_head(r, "scep_start_time_seconds", "when the counters started "
                 "(a restart resets them)", "gauge");
    ap_rprintf(r, "scep_start_time_seconds %" APR_TIME_T_FMT "\n",
               apr_time_sec(started));
    return OK;
}

/* ---- scep-status ------------------------------------------------------ */

static const char *asn1_time_iso(const ASN1_TIME *t, apr_pool_t *p)
{
    struct tm tm;

    if (ASN1_TIME_to_tm(t, &tm) != 1) {
        return "?";
    }
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                        tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static const char *cert_json(X509 *cert, long long warn_secs, int *ok,
                             apr_pool_t *p)
{
    long long left = scep_cert_seconds_left(cert);

    if (left <= 0) {
        *ok = 0;
    }
    return apr_psprintf(p, "{\"subject\": %s, \"not_after\": %s, "
                        "\"days_left\": %" APR_INT64_T_FMT ", \"ok\": %s%s}",
                        scep_json_str(scep_name_str(
                            X509_get_subject_name(cert), p), p),
                        scep_json_str(asn1_time_iso(X509_get0_notAfter(cert),
                                                    p), p),
                        (apr_int64_t)(left / 86400),
                        left > 0 ? "true" : "false",
                        left > 0 && left < warn_secs
                        ? ", \"warning\": \"expires soon\"" : "");
}

int scep_status_handler(request_rec *r)
{
    const scep_dir_conf_t *c;
    scep_endpoint_t *ep = NULL;
    const char *db_json = "null", *ra_json = "null", *ra2_json = "null";
    const char *ca_json = "null", *prov_json = "null", *keys_json;
    char host[256];
    int ok = 1;

    if (!r->handler || strcmp(r->handler, "scep-status")) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    c = ap_get_module_config(r->per_dir_config, &scep_module);
    if (gethostname(host, sizeof(host)) != 0) {
        apr_cpystrn(host, "?", sizeof(host));
    }
    host[sizeof(host) - 1] = '\0';

    /* keys and certificates: the endpoint this section configures */
    if (c && c->ca_chain && (c->provider || c->ra_enc || c->ra_sign)) {
        ep = scep_glue_endpoint(c, r->pool);
    }
    if (ep && !ep->error) {
        keys_json = "{\"ok\": true}";
        ra_json = cert_json(ep->enc->cert, 30LL * 86400, &ok, r->pool);
        if (ep->sign != ep->enc) {
            ra2_json = cert_json(ep->sign->cert, 30LL * 86400, &ok, r->pool);
        }
        ca_json = cert_json(sk_X509_value(ep->chain, 0), 30LL * 86400, &ok,
                            r->pool);
        prov_json = apr_psprintf(r->pool, "{\"name\": %s, \"ok\": true}",
                                 scep_json_str(c->provider_name, r->pool));
    }
    else {
        ok = 0;
        keys_json = apr_psprintf(r->pool, "{\"ok\": false, \"error\": %s}",
                                 scep_json_str(ep ? ep->error
                                               : "no SCEP endpoint is "
                                                 "configured here (CA, RA, "
                                                 "provider)", r->pool));
    }

    /* the database round trip */
    if (c && scep_glue_store_on(c)) {
        apr_time_t t0 = apr_time_now();
        scep_db_t *db = scep_glue_db(r);
        const char *why = NULL;
        if (db && scep_store_check(db, &why, r->pool) == APR_SUCCESS) {
            db_json = apr_psprintf(r->pool, "{\"ok\": true, \"latency_ms\": "
                                   "%.3f}", (double)(apr_time_now() - t0)
                                            / 1000.0);
        }
        else {
            ok = 0;
            db_json = apr_psprintf(r->pool, "{\"ok\": false, \"error\": %s}",
                                   scep_json_str(db ? why
                                                 : apr_table_get(r->notes,
                                                       "scep-db-busy")
                                                 ? "busy: every database "
                                                   "connection of this "
                                                   "process is in use "
                                                   "(SCEPDBDConnections)"
                                                 : "no connection from "
                                                   "mod_dbd", r->pool));
        }
    }

    r->status = ok ? HTTP_OK : HTTP_SERVICE_UNAVAILABLE;
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "application/json");
    if (!r->header_only) {
        ap_rprintf(r, "{\"status\": \"%s\", \"node\": %s, \"pid\": %d, "
                   "\"checks\": {\"database\": %s, \"keys\": %s, "
                   "\"ra_encryption\": %s, \"ra_signing\": %s, "
                   "\"ca\": %s, \"provider\": %s}}\n",
                   ok ? "ok" : "fail",
                   scep_json_str(apr_psprintf(r->pool, "%s:%u", host,
                                              ap_get_server_port(r)),
                                 r->pool),
                   (int)getpid(), db_json, keys_json, ra_json, ra2_json,
                   ca_json, prov_json);
    }
    if (!ok) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00301)
                      "status: this node cannot serve (answered 503)");
    }
    return OK;
}
