/* Licensed under the Apache License, Version 2.0.
 *
 * The admin page (handler "scep-admin"), NDES's /certsrv/mscep_admin/:
 * hands out enrollment challenge passwords with the exact phrases that
 * scripts in the field scrape, in UTF-16LE like Windows (or UTF-8), and a
 * JSON form for automation.  Also lists and revokes outstanding passwords.
 */
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"

#include <apr_strings.h>
#include <apr_xlate.h>

#include "mod_scep_private.h"
#include "scep_challenge.h"
#include "scep_json.h"
#include "scep_pki.h"
#include "scep_store.h"

APLOG_USE_MODULE(scep);

#define ADMIN_MAX_BODY 8192

typedef struct {
    request_rec *r;
    const scep_dir_conf_t *conf;
    int json;
    const char *thumbprint;
} admin_ctx_t;

static const char *rfc3339(apr_time_t t, apr_pool_t *p)
{
    apr_time_exp_t x;

    apr_time_exp_gmt(&x, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", x.tm_year + 1900,
                        x.tm_mon + 1, x.tm_mday, x.tm_hour, x.tm_min,
                        x.tm_sec);
}

static int wants_json(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");
    const char *ct = apr_table_get(r->headers_in, "Content-Type");

    return (accept && ap_strcasestr(accept, "application/json"))
           || (ct && ap_strcasestr(ct, "application/json"))
           || (r->args && ap_strstr_c(r->args, "format=json"));
}

static int send_json(admin_ctx_t *ac, int status, const char *body)
{
    request_rec *r = ac->r;

    r->status = status;
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "application/json");
    ap_rputs(body, r);
    ap_rputs("\n", r);
    return OK;
}

/* The NDES page frame around @a inner, in the configured encoding. */
static int send_page(admin_ctx_t *ac, const char *inner)
{
    request_rec *r = ac->r;
    const char *page = apr_pstrcat(r->pool,
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; "
        "charset=UTF-8\">\r\n"
        "<Title>Network Device Enrollment Service</Title></Head>\r\n"
        "<Body BgColor=#FFFFFF><Font ID=locPageFont Face=\"Arial\">\r\n"
        "<Table Border=0 CellSpacing=0 CellPadding=4 Width=100% "
        "BgColor=#008080>\r\n<TR><TD><Font Color=#FFFFFF><Font Face=\"Arial\" "
        "Size=-1><B><I>mod_scep</I></B></Font><Br><Font Face=\"Arial\" "
        "Size=+1><B>Network Device Enrollment Service</B></Font></Font>"
        "</TD></TR>\r\n</Table>\r\n"
        "<P ID=locPageDesc> Network Device Enrollment Service allows you to "
        "obtain certificates for routers or other network devices using the "
        "Simple Certificate Enrollment Protocol (SCEP). </P>\r\n",
        inner,
        "</Font></Body></HTML>\r\n", NULL);
    apr_size_t inlen = strlen(page), outlen, outsize;
    char *out;
    apr_xlate_t *x;

    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (ac->conf->admin_utf8 == 1) {
        ap_set_content_type(r, "text/html; charset=utf-8");
        ap_rwrite(page, (int)inlen, r);
        return OK;
    }
    /* UTF-16LE without a BOM, as Windows serves it */
    outsize = outlen = inlen * 4 + 4;
    out = apr_palloc(r->pool, outsize);
    if (apr_xlate_open(&x, "UTF-16LE", "UTF-8", r->pool) != APR_SUCCESS
        || apr_xlate_conv_buffer(x, page, &inlen, out, &outlen) != APR_SUCCESS
        || inlen != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00110)
                      "cannot convert the admin page to UTF-16LE "
                      "(SCEPAdminEncoding UTF-8 avoids it)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_set_content_type(r, "text/html; charset=utf-16le");
    apr_xlate_close(x);
    ap_rwrite(out, (int)(outsize - outlen), r);
    return OK;
}

static const char *page_password(admin_ctx_t *ac, const char *pw,
                                 apr_interval_time_t validity, int multi)
{
    apr_pool_t *p = ac->r->pool;
    long minutes = (long)((apr_time_sec(validity) + 59) / 60);

    return apr_psprintf(p,
        "<P> To complete certificate enrollment for your network device you "
        "will need the following information:\r\n"
        "<P> The thumbprint (hash value) for the CA certificate is: "
        "<B> %s </B>\r\n"
        "<P> The enrollment challenge password is: <B> %s </B>\r\n"
        "<P> %s\r\n"
        "<P> %s</P>\r\n",
        ap_escape_html(p, ac->thumbprint), ap_escape_html(p, pw),
        multi ? "This password can be used multiple times and will not "
                "expire."
              : apr_psprintf(p, "This password can be used only once and "
                             "will expire within %ld minute%s.",
                             minutes < 1 ? 1 : minutes,
                             minutes > 1 ? "s" : ""),
        multi ? "" : "Each enrollment requires a new challenge password. "
                     "You can refresh this web page to obtain a new "
                     "challenge password.");
}

static int do_generate(admin_ctx_t *ac, const scep_challenge_binding_t *bind)
{
    request_rec *r = ac->r;
    const scep_dir_conf_t *c = ac->conf;
    scep_challenge_req_t req;
    const char *pw = NULL, *reason = NULL;
    apr_time_t expires = 0;
    int multi = 0;
    scep_challenge_status_e st;

    if (c->challenge == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00111)
                      "admin page: no SCEPChallenge configured here");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (c->challenge->generate == NULL) {
        if (ac->json) {
            return send_json(ac, HTTP_OK, apr_psprintf(r->pool,
                             "{\"password\": null, \"required\": false, "
                             "\"thumbprint\": %s}",
                             scep_json_str(ac->thumbprint, r->pool)));
        }
        return send_page(ac, apr_psprintf(r->pool,
            "<P> The thumbprint (hash value) for the CA certificate is: "
            "<B> %s </B>\r\n<P> No enrollment challenge password is "
            "required.</P>\r\n", ap_escape_html(r->pool, ac->thumbprint)));
    }
    memset(&req, 0, sizeof(req));
    req.pool = r->pool;
    req.settings = scep_glue_settings(c, r->pool);
    req.db = scep_glue_db;
    req.db_baton = r;
    req.user = r->user ? r->user : "-";
    req.requester = r->useragent_ip;
    st = c->challenge->generate(c->challenge_inst, &req, bind, &pw, &expires,
                                &multi, &reason);
    switch (st) {
    case SCEP_CHALLENGE_OK:
        scep_metrics_count(SCEP_CTR_PW_ISSUED);
        apr_table_setn(r->notes, "scep-audit-user", req.user);
        scep_audit(r, NULL, "password_issued", -1, "administrator",
                   apr_pstrcat(r->pool, multi ? "the shared password"
                                              : "a one-time password",
                               bind && bind->cn ? ", bound to CN " : "",
                               bind && bind->cn ? bind->cn : "",
                               bind && bind->san ? ", bound to SAN " : "",
                               bind && bind->san ? bind->san : "",
                               bind && bind->profile ? ", bound to profile "
                                                     : "",
                               bind && bind->profile ? bind->profile : "",
                               NULL));
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SCEP_LOGNO(00112)
                      "admin page: %s password issued to %s%s%s%s%s",
                      multi ? "the shared" : "a one-time", req.user,
                      bind && bind->cn ? ", bound to CN " : "",
                      bind && bind->cn ? bind->cn : "",
                      bind && bind->san ? ", bound to SAN " : "",
                      bind && bind->san ? bind->san : "");
        if (ac->json) {
            return send_json(ac, HTTP_OK, apr_psprintf(r->pool,
                "{\"password\": %s, \"expires\": %s, \"thumbprint\": %s, "
                "\"validity_minutes\": %ld, \"single_use\": %s}",
                scep_json_str(pw, r->pool),
                expires ? scep_json_str(rfc3339(expires, r->pool), r->pool)
                        : "null",
                scep_json_str(ac->thumbprint, r->pool),
                multi ? 0L : (long)((apr_time_sec(req.settings->validity)
                                     + 59) / 60),
                multi ? "false" : "true"));
        }
        return send_page(ac, page_password(ac, pw, req.settings->validity,
                                           multi));
    case SCEP_CHALLENGE_FULL:
        scep_metrics_count(SCEP_CTR_PW_FULL);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00113)
                      "admin page: password cache full for %s: %s",
                      req.user, reason ? reason : "-");
        if (ac->json) {
            apr_table_setn(r->headers_out, "Retry-After", "60");
            return send_json(ac, HTTP_TOO_MANY_REQUESTS, apr_psprintf(r->pool,
                "{\"error\": \"cache_full\", \"reason\": \"The password "
                "cache is full.\", \"detail\": %s, \"max\": %d}",
                scep_json_str(reason, r->pool), req.settings->max));
        }
        return send_page(ac,
            "<P> The password cache is full. </P>\r\n"
            "<P> You can use a password that was issued before and has not "
            "been used yet, wait for one to expire, or ask the administrator "
            "to raise the limit (SCEPPasswordMax, NDES's PasswordMax). </P>"
            "\r\n");
    case SCEP_CHALLENGE_DENIED:
        return HTTP_FORBIDDEN;
    default:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00114)
                      "admin page: cannot issue a password: %s",
                      reason ? reason : "-");
        apr_table_setn(r->err_headers_out, "Retry-After", "30");
        return HTTP_SERVICE_UNAVAILABLE;
    }
}

static int do_list(admin_ctx_t *ac)
{
    request_rec *r = ac->r;
    scep_challenge_settings_t *st = scep_glue_settings(ac->conf, r->pool);
    apr_array_header_t *rows;
    scep_db_t *db;
    const char *why = NULL, *out;
    int i;

    if (!scep_glue_store_on(ac->conf) || (db = scep_glue_db(r)) == NULL) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (scep_pw_list(db, st->endpoint, apr_time_sec(apr_time_now()), &rows,
                     &why, r->pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00115)
                      "admin page: cannot list passwords: %s", why);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    out = ac->json ? "{\"passwords\": [" :
        "<H3>Outstanding enrollment passwords</H3>\r\n"
        "<Table Border=1 CellPadding=4><TR><TH>Id</TH><TH>Issued to</TH>"
        "<TH>Created</TH><TH>Expires</TH><TH>Bound to</TH><TH></TH></TR>\r\n";
    for (i = 0; i < rows->nelts; i++) {
        scep_pw_row_t *pr = APR_ARRAY_IDX(rows, i, scep_pw_row_t *);
        const char *created = rfc3339(apr_time_from_sec(pr->created), r->pool);
        const char *expires = rfc3339(apr_time_from_sec(pr->expires), r->pool);
        const char *bound = apr_pstrcat(r->pool,
            pr->bind_cn ? "CN=" : "", pr->bind_cn ? pr->bind_cn : "",
            pr->bind_san ? " SAN=" : "", pr->bind_san ? pr->bind_san : "",
            pr->bind_profile ? " profile=" : "",
            pr->bind_profile ? pr->bind_profile : "", NULL);
        if (ac->json) {
            out = apr_psprintf(r->pool, "%s%s{\"id\": %s, \"issuer\": %s, "
                               "\"created\": %s, \"expires\": %s, "
                               "\"bind_cn\": %s, \"bind_san\": %s, "
                               "\"bind_profile\": %s}", out, i ? ", " : "",
                               scep_json_str(pr->id, r->pool),
                               scep_json_str(pr->issuer, r->pool),
                               scep_json_str(created, r->pool),
                               scep_json_str(expires, r->pool),
                               scep_json_str(pr->bind_cn, r->pool),
                               scep_json_str(pr->bind_san, r->pool),
                               scep_json_str(pr->bind_profile, r->pool));
        }
        else {
            out = apr_psprintf(r->pool, "%s<TR><TD>%s</TD><TD>%s</TD>"
                               "<TD>%s</TD><TD>%s</TD><TD>%s</TD><TD>"
                               "<Form Method=POST Action=\"?revoke=%s\">"
                               "<Input Type=submit Value=\"Revoke\"></Form>"
                               "</TD></TR>\r\n", out,
                               ap_escape_html(r->pool, pr->id),
                               ap_escape_html(r->pool, pr->issuer),
                               created, expires,
                               ap_escape_html(r->pool, bound),
                               ap_escape_uri(r->pool, pr->id));
        }
    }
    if (ac->json) {
        return send_json(ac, HTTP_OK, apr_pstrcat(r->pool, out, "]}", NULL));
    }
    return send_page(ac, apr_pstrcat(r->pool, out, "</Table>\r\n", NULL));
}

static int do_revoke(admin_ctx_t *ac, const char *id)
{
    request_rec *r = ac->r;
    scep_challenge_settings_t *st = scep_glue_settings(ac->conf, r->pool);
    scep_db_t *db;
    const char *why = NULL;
    int done = 0;

    if (!*id || id[strspn(id, "0123456789")] != '\0') {
        return HTTP_BAD_REQUEST;    /* ids are numbers */
    }
    if (!scep_glue_store_on(ac->conf) || (db = scep_glue_db(r)) == NULL) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (scep_pw_revoke(db, st->endpoint, id, &done, &why, r->pool)
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00116)
                      "admin page: cannot revoke password %s: %s", id, why);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    apr_table_setn(r->notes, "scep-audit-user", r->user ? r->user : "-");
    if (done) {
        scep_audit(r, NULL, "password_revoked", -1, "administrator",
                   apr_pstrcat(r->pool, "password id ", id, NULL));
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SCEP_LOGNO(00117)
                  "admin page: %s revoked password %s: %s",
                  r->user ? r->user : "-", id, done ? "done" : "not found");
    if (ac->json) {
        return send_json(ac, done ? HTTP_OK : HTTP_NOT_FOUND,
                         done ? "{\"revoked\": true}"
                              : "{\"revoked\": false, \"error\": "
                                "\"not_found\"}");
    }
    if (!done) {
        return HTTP_NOT_FOUND;
    }
    apr_table_setn(r->headers_out, "Location",
                   ap_construct_url(r->pool, apr_pstrcat(r->pool, r->uri,
                                                          "?list", NULL), r));
    return HTTP_SEE_OTHER;
}

/* Requests waiting for an administrator (manual-approval profiles). */
static int do_pending(admin_ctx_t *ac)
{
    request_rec *r = ac->r;
    apr_array_header_t *rows;
    scep_db_t *db;
    const char *why = NULL, *out;
    const char *pool = ac->conf->pw_pool ? ac->conf->pw_pool
                                         : SCEP_DEFAULT_PW_POOL;
    int i;

    if (!scep_glue_store_on(ac->conf) || (db = scep_glue_db(r)) == NULL) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (scep_tx_list_pending(db, pool, &rows, &why, r->pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00121)
                      "admin page: cannot list pending requests: %s", why);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    out = ac->json ? "{\"pending\": [" :
        "<H3>Requests waiting for approval</H3>\r\n"
        "<Table Border=1 CellPadding=4 ID=pending><TR><TH>Transaction</TH>"
        "<TH>Subject</TH><TH>Profile</TH><TH>From</TH><TH>Received</TH>"
        "<TH></TH></TR>\r\n";
    for (i = 0; i < rows->nelts; i++) {
        scep_tx_row_t *tx = APR_ARRAY_IDX(rows, i, scep_tx_row_t *);
        const char *when = rfc3339(apr_time_from_sec(tx->created), r->pool);
        if (ac->json) {
            out = apr_psprintf(r->pool, "%s%s{\"transaction_id\": %s, "
                               "\"subject\": %s, \"profile\": %s, "
                               "\"requester\": %s, \"received\": %s}", out,
                               i ? ", " : "",
                               scep_json_str(tx->transaction_id, r->pool),
                               scep_json_str(tx->subject, r->pool),
                               scep_json_str(tx->profile, r->pool),
                               scep_json_str(tx->requester, r->pool),
                               scep_json_str(when, r->pool));
        }
        else {
            const char *q = ap_escape_uri(r->pool, tx->transaction_id);
            out = apr_psprintf(r->pool, "%s<TR><TD>%s</TD><TD>%s</TD>"
                               "<TD>%s</TD><TD>%s</TD><TD>%s</TD><TD>"
                               "<Form Method=POST Action=\"?approve=%s\" "
                               "Style=\"display:inline\"><Input Type=submit "
                               "Name=approve-button Value=\"Approve\"></Form> "
                               "<Form Method=POST Action=\"?reject=%s\" "
                               "Style=\"display:inline\"><Input Type=submit "
                               "Name=reject-button Value=\"Reject\"></Form>"
                               "</TD></TR>\r\n", out,
                               ap_escape_html(r->pool, tx->transaction_id),
                               ap_escape_html(r->pool, tx->subject
                                                       ? tx->subject : ""),
                               ap_escape_html(r->pool, tx->profile
                                                       ? tx->profile : ""),
                               ap_escape_html(r->pool, tx->requester
                                                       ? tx->requester : ""),
                               when, q, q);
        }
    }
    if (ac->json) {
        return send_json(ac, HTTP_OK, apr_pstrcat(r->pool, out, "]}", NULL));
    }
    return send_page(ac, apr_pstrcat(r->pool, out, "</Table>\r\n",
                                     rows->nelts ? "" : "<P ID=none> No "
                                     "request is waiting. </P>\r\n", NULL));
}

static int do_decide(admin_ctx_t *ac, const char *tid, int approve,
                     const char *reason)
{
    request_rec *r = ac->r;
    const char *why = NULL;
    int st = scep_enroll_decide(r, ac->conf, tid, approve, reason, &why);

    if (ac->json) {
        if (st == HTTP_OK) {
            return send_json(ac, st, apr_psprintf(r->pool,
                             "{\"transaction_id\": %s, \"decision\": \"%s\"%s%s}",
                             scep_json_str(tid, r->pool),
                             approve ? "approved" : "rejected",
                             approve ? ", \"serial\": " : "",
                             approve ? scep_json_str(why, r->pool) : ""));
        }
        return send_json(ac, st, apr_psprintf(r->pool, "{\"error\": %s}",
                                              scep_json_str(why, r->pool)));
    }
    if (st != HTTP_OK) {
        if (why) {
            apr_table_setn(r->notes, "error-notes",
                           ap_escape_html(r->pool, why));
        }
        return st;
    }
    apr_table_setn(r->headers_out, "Location",
                   ap_construct_url(r->pool, apr_pstrcat(r->pool, r->uri,
                                                          "?pending", NULL),
                                    r));
    return HTTP_SEE_OTHER;
}

/* Add "a=b&c=d" (form encoding) to a table. */
static void form_to_table(apr_table_t *t, char *body, apr_pool_t *p)
{
    char *tok, *last = NULL;

    for (tok = apr_strtok(body, "&", &last); tok;
         tok = apr_strtok(NULL, "&", &last)) {
        char *eq = strchr(tok, '=');
        char *k = tok, *v = eq ? eq + 1 : "1";
        if (eq) {
            *eq = '\0';
        }
        if (ap_unescape_urlencoded(k) == OK && ap_unescape_urlencoded(v) == OK
            && *k) {
            apr_table_set(t, k, v);
        }
    }
}

/* The request's parameters: the query string, and a POST body (JSON or
 * form-encoded) on top of it; the binding among them. */
int scep_glue_params(request_rec *r, apr_table_t **params)
{
    apr_table_t *t = NULL;
    const char *why = NULL;
    unsigned char *body = NULL;
    apr_size_t n = 0;
    void *cached = NULL;
    int rc;

    /* the body can be read once: keep what came of it */
    apr_pool_userdata_get(&cached, "scep-params", r->pool);
    if (cached) {
        *params = cached;
        return OK;
    }
    ap_args_to_table(r, &t);
    if (t == NULL) {
        t = apr_table_make(r->pool, 4);
    }
    if (r->method_number == M_POST) {
        const char *ct = apr_table_get(r->headers_in, "Content-Type");
        if ((rc = scep_glue_read_body(r, ADMIN_MAX_BODY, &body, &n, &why))
            != OK) {
            if (why) {
                apr_table_setn(r->notes, "error-notes", why);
            }
            return rc;
        }
        body[n] = '\0';
        if (n > 0 && ct && ap_strcasestr(ct, "application/json")) {
            apr_table_t *j = NULL;
            if (scep_json_parse_flat(&j, (const char *)body, n, &why,
                                     r->pool) != APR_SUCCESS) {
                ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                              SCEP_LOGNO(00118) "admin page: bad JSON: %s",
                              why);
                apr_table_setn(r->notes, "error-notes", why);
                return HTTP_BAD_REQUEST;
            }
            t = apr_table_overlay(r->pool, j, t);
        }
        else if (n > 0) {
            form_to_table(t, (char *)body, r->pool);
        }
    }
    apr_pool_userdata_setn(t, "scep-params", NULL, r->pool);
    *params = t;
    return OK;
}

/* The binding a password is to be issued with, among the parameters. */
static int read_binding(admin_ctx_t *ac, scep_challenge_binding_t *bind,
                        apr_table_t **params)
{
    apr_table_t *t;
    int rc;

    memset(bind, 0, sizeof(*bind));
    if ((rc = scep_glue_params(ac->r, &t)) != OK) {
        return rc;
    }
    bind->cn = apr_table_get(t, "cn");
    bind->san = apr_table_get(t, "san");
    bind->profile = apr_table_get(t, "profile");
    *params = t;
    return OK;
}

int scep_admin_handler(request_rec *r)
{
    admin_ctx_t ac;
    scep_challenge_binding_t bind;
    apr_table_t *params = NULL;
    const char *revoke, *approve, *reject;
    apr_size_t ulen;
    int rc, i;

    if (!r->handler || strcmp(r->handler, "scep-admin")) {
        return DECLINED;
    }
    memset(&ac, 0, sizeof(ac));
    ac.r = r;
    ac.conf = ap_get_module_config(r->per_dir_config, &scep_module);
    ac.json = wants_json(r);

    /* The page lives at the directory URL: NDES answers the form without
     * the slash with a redirect to it. */
    ulen = strlen(r->uri);
    if (ulen && r->uri[ulen - 1] != '/') {
        apr_table_setn(r->headers_out, "Location",
                       ap_construct_url(r->pool, apr_pstrcat(r->pool, r->uri,
                                        "/", r->args ? "?" : "",
                                        r->args ? r->args : "", NULL), r));
        return HTTP_MOVED_PERMANENTLY;
    }
    r->allowed |= (AP_METHOD_BIT << M_GET) | (AP_METHOD_BIT << M_POST);
    if (r->method_number != M_GET && r->method_number != M_POST) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (r->user == NULL && ac.conf->admin_anonymous != 1) {
        /* no authentication is configured here (else httpd would have
         * answered 401 itself): nobody can log in, so 403 */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00119)
                      "admin page refused: no authenticated user (configure "
                      "AuthType and Require for this location, or "
                      "SCEPAdminAllowAnonymous On)");
        return HTTP_FORBIDDEN;
    }
    ac.thumbprint = ac.conf->ca_chain
        ? scep_cert_md5_thumbprint(sk_X509_value(ac.conf->ca_chain, 0),
                                   r->pool)
        : "(no CA certificate configured)";

    if (ac.conf->admin_users) {
        int allowed = 0;
        for (i = 0; r->user && i < ac.conf->admin_users->nelts; i++) {
            if (!strcmp(r->user, APR_ARRAY_IDX(ac.conf->admin_users, i,
                                               const char *))) {
                allowed = 1;
            }
        }
        if (!allowed) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00120)
                          "admin page refused: %s is not in "
                          "SCEPAdminEnrollUsers", r->user ? r->user : "-");
            if (ac.json) {
                return send_json(&ac, HTTP_FORBIDDEN,
                                 "{\"error\": \"denied\", \"reason\": \"You do "
                                 "not have sufficient permission to enroll "
                                 "with SCEP.\"}");
            }
            return send_page(&ac, "<P> You do not have sufficient permission "
                             "to enroll with SCEP.  Please contact your "
                             "system administrator. </P>\r\n");
        }
    }

    /* certificates: list, revoke */
    if (r->user && (rc = scep_certs_admin(r, ac.conf, ac.json)) != DECLINED) {
        return rc;
    }
    /* a POST changes state (approve, reject, revoke, a bound password):
     * never on behalf of another site's page */
    if (r->method_number == M_POST && !scep_glue_same_origin(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00122)
                      "admin page refused a cross-site POST (Origin %s, "
                      "Sec-Fetch-Site %s)",
                      apr_table_get(r->headers_in, "Origin")
                      ? apr_table_get(r->headers_in, "Origin") : "-",
                      apr_table_get(r->headers_in, "Sec-Fetch-Site")
                      ? apr_table_get(r->headers_in, "Sec-Fetch-Site") : "-");
        return HTTP_FORBIDDEN;
    }
    if ((rc = read_binding(&ac, &bind, &params)) != OK) {
        return rc;
    }
    revoke = apr_table_get(params, "revoke");
    approve = apr_table_get(params, "approve");
    reject = apr_table_get(params, "reject");
    if (r->user == NULL
        && (revoke || approve || reject || apr_table_get(params, "list")
            || apr_table_get(params, "pending"))) {
        /* anonymous use (SCEPAdminAllowAnonymous) issues passwords only */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00123)
                      "admin page refused: listing, revoking and deciding "
                      "need an authenticated user");
        return HTTP_FORBIDDEN;
    }
    if (approve || reject) {
        if (r->method_number != M_POST) {
            return HTTP_METHOD_NOT_ALLOWED;
        }
        return do_decide(&ac, approve ? approve : reject, approve != NULL,
                         apr_table_get(params, "reason"));
    }
    if (apr_table_get(params, "pending")) {
        return do_pending(&ac);
    }
    if (revoke) {
        if (r->method_number != M_POST) {
            return HTTP_METHOD_NOT_ALLOWED;
        }
        return do_revoke(&ac, revoke);
    }
    if (apr_table_get(params, "list")) {
        return do_list(&ac);
    }
    if (r->header_only) {
        /* HEAD: what a GET would send, without issuing a password */
        ap_set_content_type(r, ac.json ? "application/json"
                                       : ac.conf->admin_utf8 == 1
                                         ? "text/html; charset=utf-8"
                                         : "text/html; charset=utf-16le");
        return OK;
    }
    return do_generate(&ac, (bind.cn || bind.san || bind.profile) ? &bind
                                                                  : NULL);
}
