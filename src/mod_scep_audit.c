/* Licensed under the Apache License, Version 2.0.
 *
 * The audit log (glue): SCEPAuditLog names a file or a pipe ("|program",
 * as CustomLog does) that receives one JSON line per decision: what was
 * asked, by whom, what decided it and what came of it.  The fields are
 * documented in docs/audit.md.
 */
#include <string.h>
#include <unistd.h>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include <apr_strings.h>

#include <openssl/x509v3.h>

#include "mod_scep_private.h"
#include "scep_json.h"
#include "scep_pki.h"

APLOG_USE_MODULE(scep);

static const char *audit_spec;   /* SCEPAuditLog as configured */
static apr_file_t *audit_file;   /* opened in post_config */
static char node[256];

const char *scep_audit_set(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    audit_spec = arg[0] == '|' ? apr_pstrdup(cmd->pool, arg)
                               : ap_server_root_relative(cmd->pool, arg);
    if (audit_spec == NULL) {
        return "SCEPAuditLog: bad path";
    }
    return NULL;
}

void scep_audit_reset(void)
{
    audit_spec = NULL;
    audit_file = NULL;
}

apr_status_t scep_audit_open(apr_pool_t *pconf, server_rec *s)
{
    apr_status_t rv;

    if (gethostname(node, sizeof(node)) != 0) {
        apr_cpystrn(node, "?", sizeof(node));
    }
    node[sizeof(node) - 1] = '\0';
    audit_file = NULL;
    if (audit_spec == NULL) {
        return APR_SUCCESS;
    }
    if (audit_spec[0] == '|') {
        piped_log *pl = ap_open_piped_log(pconf, audit_spec + 1);
        if (pl == NULL) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SCEP_LOGNO(00400)
                         "SCEPAuditLog: cannot start '%s'", audit_spec + 1);
            return APR_EGENERAL;
        }
        audit_file = ap_piped_log_write_fd(pl);
        return APR_SUCCESS;
    }
    rv = apr_file_open(&audit_file, audit_spec,
                       APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD,
                       pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, SCEP_LOGNO(00401)
                     "SCEPAuditLog: cannot open '%s'", audit_spec);
        audit_file = NULL;
    }
    return rv;
}

/* The CSR's subjectAltNames as "type:value" joined by commas. */
static const char *sans_of(X509_REQ *csr, apr_pool_t *p)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    GENERAL_NAMES *names = X509V3_get_d2i(exts, NID_subject_alt_name, NULL,
                                          NULL);
    const char *out = NULL;
    int i;

    for (i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const char *v = NULL;
        switch (gn->type) {
        case GEN_DNS:
        case GEN_EMAIL:
        case GEN_URI:
            v = apr_pstrcat(p, gn->type == GEN_DNS ? "dns:"
                               : gn->type == GEN_EMAIL ? "email:" : "uri:",
                            apr_pstrmemdup(p, (const char *)
                                           ASN1_STRING_get0_data(gn->d.ia5),
                                           ASN1_STRING_length(gn->d.ia5)),
                            NULL);
            break;
        case GEN_IPADD:
            if (ASN1_STRING_length(gn->d.ip) == 4) {
                const unsigned char *b = ASN1_STRING_get0_data(gn->d.ip);
                v = apr_psprintf(p, "ip:%d.%d.%d.%d", b[0], b[1], b[2], b[3]);
            }
            else {
                v = "ip:(IPv6)";
            }
            break;
        default:
            v = "other";
        }
        out = out ? apr_pstrcat(p, out, ",", v, NULL) : v;
    }
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return out;
}

void scep_audit(request_rec *r, const scep_msg_t *msg, const char *decision,
                int fail_info, const char *rule, const char *reason)
{
    apr_pool_t *p = r->pool;
    const char *line, *n;
    char ts[APR_RFC822_DATE_LEN];
    apr_time_exp_t x;
    apr_size_t len;

    if (audit_file == NULL) {
        return;
    }
    apr_time_exp_gmt(&x, r->request_time);
    apr_snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 x.tm_year + 1900, x.tm_mon + 1, x.tm_mday, x.tm_hour,
                 x.tm_min, x.tm_sec, x.tm_usec / 1000);
    line = apr_psprintf(p, "{\"time\": \"%s\", \"node\": %s, \"requester\": "
                        "%s, \"uri\": %s, \"decision\": %s",
                        ts, scep_json_str(node, p),
                        scep_json_str(r->useragent_ip, p),
                        scep_json_str(r->uri, p), scep_json_str(decision, p));
    if (msg) {
        line = apr_psprintf(p, "%s, \"message_type\": %s, "
                            "\"transaction_id\": %s", line,
                            scep_json_str(scep_msg_type_name(
                                msg->message_type), p),
                            scep_json_str(msg->transaction_id, p));
        if (msg->csr) {
            line = apr_psprintf(p, "%s, \"subject\": %s, \"sans\": %s", line,
                                scep_json_str(scep_name_str(
                                    X509_REQ_get_subject_name(msg->csr), p),
                                              p),
                                scep_json_str(sans_of(msg->csr, p), p));
        }
    }
#define NOTE(key, field)                                                    \
    if ((n = apr_table_get(r->notes, key)) != NULL) {                       \
        line = apr_psprintf(p, "%s, \"" field "\": %s", line,               \
                            scep_json_str(n, p));                           \
    }
    if (!msg) {
        NOTE("scep-audit-tid", "transaction_id")
    }
    NOTE("scep-audit-user", "admin")
    NOTE("scep-audit-profile", "profile")
    NOTE("scep-audit-challenge", "challenge")
    NOTE("scep-audit-ca", "ca_provider")
    NOTE("scep-audit-serial", "serial")
#undef NOTE
    if (fail_info >= 0) {
        line = apr_psprintf(p, "%s, \"fail_info\": %s", line,
                            scep_json_str(scep_fail_name(fail_info), p));
    }
    if (rule) {
        line = apr_psprintf(p, "%s, \"rule\": %s", line,
                            scep_json_str(rule, p));
    }
    if (reason) {
        line = apr_psprintf(p, "%s, \"reason\": %s", line,
                            scep_json_str(reason, p));
    }
    line = apr_pstrcat(p, line, "}\n", NULL);
    len = strlen(line);
    /* one write per line: appends and pipes keep lines whole */
    apr_file_write_full(audit_file, line, len, NULL);
}
