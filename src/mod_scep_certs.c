/* STUB written by the lead so that the tree links while helper-5 writes the
 * real file: helper-5, replace this whole file. */
#include "httpd.h"
#include "http_config.h"

#include "mod_scep_private.h"

int scep_certs_getcert(scep_req_ctx_t *rc, scep_msg_t *msg)
{
    return scep_glue_failure(rc, msg, SCEP_FAIL_BADCERTID, "getcert",
                             "GetCert is not available yet");
}

int scep_certs_getcrl(scep_req_ctx_t *rc, scep_msg_t *msg)
{
    return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "getcrl",
                             "GetCRL is not available yet");
}

void scep_certs_issued(request_rec *r, const scep_dir_conf_t *c,
                       STACK_OF(X509) *certs, const char *tid,
                       const char *profile)
{
}

int scep_crl_handler(request_rec *r)
{
    return DECLINED;
}

int scep_certs_admin(request_rec *r, const scep_dir_conf_t *c, int json)
{
    return DECLINED;
}
