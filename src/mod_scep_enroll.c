/* Licensed under the Apache License, Version 2.0.
 *
 * Enrollment (glue): PKCSReq and RenewalReq from decoded message to CertRep
 * -- profile selection (NDES templates), request policy, renewal rules,
 * challenge, transaction store, CA provider, manual approval -- and
 * CertPoll (GetCertInitial).
 */
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"

#include <apr_base64.h>
#include <apr_strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "mod_scep_private.h"
#include "ca_local.h"
#include "scep_certstore.h"
#include "scep_challenge.h"
#include "scep_pki.h"
#include "scep_profile.h"
#include "scep_store.h"

APLOG_USE_MODULE(scep);

#define DEFAULT_VALIDITY_DAYS   365
#define DEFAULT_REPLAY_WINDOW   3600
#define DEFAULT_TEMPLATE        "IPSECIntermediateOffline"
/* seconds after which a claimed, undecided transaction is abandoned */
#define SCEP_TX_ABANDONED       120

/* The challengePassword attribute of a CSR, as text; NULL when absent. */
static const char *csr_challenge(X509_REQ *csr, apr_pool_t *p)
{
    int idx = X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1);
    X509_ATTRIBUTE *attr;
    ASN1_TYPE *t;

    if (idx < 0 || (attr = X509_REQ_get_attr(csr, idx)) == NULL
        || (t = X509_ATTRIBUTE_get0_type(attr, 0)) == NULL) {
        return NULL;
    }
    switch (t->type) {
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_UTF8STRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_T61STRING:
        return apr_pstrmemdup(p, (const char *)ASN1_STRING_get0_data(
                                  t->value.asn1_string),
                              ASN1_STRING_length(t->value.asn1_string));
    default:
        return NULL;
    }
}

/* The store cannot be reached: the client should come back later.  Nothing
 * was written for this request and its password is untouched. */
static int store_unavailable(request_rec *r, const char *what,
                             const char *why)
{
    if (strcmp(what, "connection")) {
        /* no connection: scep_glue_db has said why (SCEP00101, 00106) */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00102)
                      "SQL store failed (%s): %s", what, why ? why : "-");
    }
    if (!apr_table_get(r->err_headers_out, "Retry-After")) {
        apr_table_setn(r->err_headers_out, "Retry-After", "30");
    }
    if (apr_table_get(r->notes, "scep-db-busy")) {
        return scep_glue_refuse(r, HTTP_SERVICE_UNAVAILABLE,
                                "the server is busy: no database connection "
                                "is free, try again later");
    }
    return scep_glue_refuse(r, HTTP_SERVICE_UNAVAILABLE,
                            "the enrollment store is unavailable, try again "
                            "later");
}

static const char *hex(const unsigned char *d, apr_size_t n, apr_pool_t *p)
{
    char *out = apr_palloc(p, n * 2 + 1);
    apr_size_t i;

    for (i = 0; i < n; i++) {
        apr_snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
    out[2 * n] = '\0';
    return out;
}

static const char *b64(const unsigned char *d, apr_size_t n, apr_pool_t *p)
{
    char *out = apr_palloc(p, apr_base64_encode_len((int)n));

    apr_base64_encode(out, (const char *)d, (int)n);
    return out;
}

static const char *certs_b64(STACK_OF(X509) *certs, apr_pool_t *p)
{
    const unsigned char *der;
    apr_size_t len;

    if (scep_certs_p7_encode(&der, &len, certs, p) != APR_SUCCESS) {
        return NULL;
    }
    return b64(der, len, p);
}

static const char *pool_name(const scep_dir_conf_t *c)
{
    return c->pw_pool ? c->pw_pool : SCEP_DEFAULT_PW_POOL;
}

/* ---- profiles --------------------------------------------------------- */

static const scep_profile_t *find_profile(const scep_dir_conf_t *c,
                                          const char *name, apr_pool_t *p)
{
    const scep_profile_t *prof = c->profiles
        ? apr_hash_get(c->profiles, name, APR_HASH_KEY_STRING) : NULL;

    if (prof == NULL && !strcmp(name, DEFAULT_TEMPLATE)) {
        /* NDES's default template, when the admin has not defined it */
        prof = scep_profile_make(DEFAULT_TEMPLATE, p);
    }
    return prof;
}

static const char *template_for(const scep_dir_conf_t *c, X509_REQ *csr)
{
    scep_purpose_e pur = scep_profile_purpose(csr);

    return c->templates[pur] ? c->templates[pur] : DEFAULT_TEMPLATE;
}

/* What the CA provider is told about a request under @a prof. */
static void fill_creq(scep_ca_request_t *creq, request_rec *r,
                      const scep_dir_conf_t *c, const scep_profile_t *prof,
                      X509_REQ *csr, X509 *signer, const char *tid)
{
    const char **eku = NULL;
    int i;

    memset(creq, 0, sizeof(*creq));
    creq->csr = csr;
    creq->signer = signer;
    creq->transaction_id = tid;
    creq->profile = prof->name;
    creq->requester = r->useragent_ip;
    creq->validity_days = prof->validity_days ? prof->validity_days
                          : c->validity_days == SCEP_UNSET
                            ? DEFAULT_VALIDITY_DAYS : c->validity_days;
    creq->key_usage = prof->key_usage;
    if (prof->eku) {
        eku = apr_pcalloc(r->pool, sizeof(char *) * (prof->eku->nelts + 1));
        for (i = 0; i < prof->eku->nelts; i++) {
            eku[i] = APR_ARRAY_IDX(prof->eku, i, const char *);
        }
    }
    creq->ext_key_usage = eku;
    creq->subject_cn_only = !prof->subject_from_csr;
    creq->copy_san = prof->san_from_csr;
    creq->crl_url = c->crl_url;
}

/* Ask the CA provider for a certificate under @a prof. */
static void issue(request_rec *r, const scep_dir_conf_t *c,
                  const scep_profile_t *prof, X509_REQ *csr, X509 *signer,
                  const char *tid, scep_ca_reply_t *reply)
{
    scep_ca_request_t creq;
    apr_status_t rv;

    memset(reply, 0, sizeof(*reply));
    fill_creq(&creq, r, c, prof, csr, signer, tid);
    rv = c->provider->enroll(c->provider_inst, &creq, reply, r->pool);
    if (rv != APR_SUCCESS && reply->status == SCEP_CA_ISSUED) {
        reply->status = SCEP_CA_ERROR;
    }
    if (reply->status == SCEP_CA_ISSUED
        && (reply->certs == NULL || sk_X509_num(reply->certs) == 0)) {
        reply->status = SCEP_CA_ERROR;
        reply->reason = "returned no certificate";
    }
}

/* ---- answers from the store ------------------------------------------ */

/* Ask the CA provider again about a request it left pending.  Any node can,
 * the CSR and the provider's handle are in the store. */
static int poll_ca(scep_req_ctx_t *rc, scep_msg_t *msg,
                   const scep_tx_row_t *tx)
{
    request_rec *r = rc->r;
    const scep_dir_conf_t *c = rc->conf;
    scep_ca_request_t creq;
    scep_ca_reply_t reply;
    scep_db_t *db = scep_glue_db(r);
    const scep_profile_t *prof;
    X509_REQ *csr = NULL;
    unsigned char *der;
    const unsigned char *q;
    apr_size_t len;
    const char *why = NULL, *serial;
    apr_int64_t now = apr_time_sec(r->request_time);
    int done = 0;

    if (db == NULL) {
        return store_unavailable(r, "connection", NULL);
    }
    memset(&reply, 0, sizeof(reply));
    if (tx->csr && scep_base64_decode(&der, &len, tx->csr, strlen(tx->csr),
                                      r->pool) == APR_SUCCESS) {
        q = der;
        csr = scep_own_req(r->pool, d2i_X509_REQ(NULL, &q, (long)len));
    }
    /* the profile's facts again: a CA may issue only now */
    prof = find_profile(c, tx->profile ? tx->profile : DEFAULT_TEMPLATE,
                        r->pool);
    if (prof == NULL) {
        prof = scep_profile_make(tx->profile, r->pool);
    }
    fill_creq(&creq, r, c, prof, csr, msg->signer, msg->transaction_id);
    if (c->provider->poll(c->provider_inst, &creq, tx->ca_ref, &reply,
                          r->pool) != APR_SUCCESS
        && reply.status == SCEP_CA_ISSUED) {
        reply.status = SCEP_CA_ERROR;
    }
    if (reply.status == SCEP_CA_ISSUED
        && (reply.certs == NULL || sk_X509_num(reply.certs) == 0)) {
        reply.status = SCEP_CA_ERROR;
        reply.reason = "returned no certificate";
    }
    switch (reply.status) {
    case SCEP_CA_ISSUED:
        serial = scep_serial_str(X509_get0_serialNumber(
                                     sk_X509_value(reply.certs, 0)), r->pool);
        if (scep_tx_set_issued(db, pool_name(c), msg->transaction_id,
                               certs_b64(reply.certs, r->pool), serial, now,
                               &why, r->pool) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00103)
                          "certificate %s issued for transaction %s but not "
                          "recorded: %s", serial, msg->transaction_id, why);
        }
        scep_certs_issued(r, c, reply.certs, msg->transaction_id,
                          creq.profile);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SCEP_LOGNO(00027)
                      "%s: CA provider %s issued pending transaction %s: "
                      "serial %s", scep_msg_type_name(msg->message_type),
                      c->provider_name, msg->transaction_id, serial);
        return scep_glue_certrep(rc, msg, SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE,
                                 reply.certs);
    case SCEP_CA_REJECTED:
        scep_tx_reject(db, pool_name(c), msg->transaction_id,
                       reply.reason ? reply.reason : "rejected by the CA",
                       apr_pstrcat(r->pool, "CA provider ", c->provider_name,
                                   NULL), now, &done, &why, r->pool);
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "ca-provider",
                                 apr_psprintf(r->pool, "CA provider %s "
                                              "rejected pending transaction: "
                                              "%s", c->provider_name,
                                              reply.reason ? reply.reason
                                                           : "-"));
    case SCEP_CA_PENDING:
        /* the CA's handle may change from poll to poll (CMP nonces) */
        if (reply.reference && *reply.reference
            && strcmp(reply.reference, tx->ca_ref)
            && scep_tx_set_ca_ref(db, pool_name(c), msg->transaction_id,
                                  reply.reference, tx->csr, now, &why,
                                  r->pool) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00031)
                          "transaction %s still pending at the CA, but its "
                          "new handle was not recorded: %s",
                          msg->transaction_id, why);
        }
        return scep_glue_certrep(rc, msg, SCEP_STATUS_PENDING, SCEP_FAIL_NONE,
                                 NULL);
    default:
        /* the CA is unreachable now: still pending, the client polls on */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00028)
                      "%s: CA provider %s failed on poll of transaction %s, "
                      "answering PENDING: %s",
                      scep_msg_type_name(msg->message_type), c->provider_name,
                      msg->transaction_id, reply.reason ? reply.reason : "-");
        return scep_glue_certrep(rc, msg, SCEP_STATUS_PENDING, SCEP_FAIL_NONE,
                                 NULL);
    }
}

/* Answer a transaction seen before, as it was answered then. */
static int answer_known(scep_req_ctx_t *rc, scep_msg_t *msg,
                        const scep_tx_row_t *tx, const char *digest)
{
    request_rec *r = rc->r;
    STACK_OF(X509) *certs = NULL;
    unsigned char *der;
    apr_size_t len;

    if (digest && strcmp(tx->req_digest, digest)) {
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST,
                                 "transaction-id", "this transactionID was "
                                 "used before with a different CSR");
    }
    if (tx->state == SCEP_TX_REJECTED) {
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "rejected",
                                 apr_psprintf(r->pool, "an administrator "
                                              "rejected the request: %s",
                                              tx->reason ? tx->reason : "-"));
    }
    if (tx->state == SCEP_TX_PENDING && tx->ca_ref && rc->conf->provider
        && rc->conf->provider->poll) {
        return poll_ca(rc, msg, tx);
    }
    if (tx->state != SCEP_TX_ISSUED || tx->certs == NULL) {
        scep_audit(r, msg, "pending", -1, "transaction-id",
                   "the transaction is still being decided");
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SCEP_LOGNO(00015)
                      "%s: transaction %s is still pending",
                      scep_msg_type_name(msg->message_type),
                      msg->transaction_id);
        return scep_glue_certrep(rc, msg, SCEP_STATUS_PENDING, SCEP_FAIL_NONE,
                                 NULL);
    }
    if (scep_base64_decode(&der, &len, tx->certs, strlen(tx->certs), r->pool)
        != APR_SUCCESS
        || scep_certs_p7_decode(&certs, der, len, r->pool) != APR_SUCCESS) {
        return store_unavailable(r, "stored certificates", "do not decode");
    }
    apr_table_setn(r->notes, "scep-audit-serial",
                   tx->serial ? tx->serial : "-");
    {
        /* the first answer's request may have died before it marked its
         * password used: settle it now, whatever pool it came from */
        const char *w = NULL;
        scep_db_t *db = scep_glue_db(r);
        if (db) {
            scep_pw_settle(db, pool_name(rc->conf), msg->transaction_id,
                           apr_time_sec(r->request_time), &w, r->pool);
        }
    }
    scep_audit(r, msg, "issued", -1, "retry", "answered before: the same "
               "certificate again");
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SCEP_LOGNO(00016)
                  "%s: transaction %s was answered before: the same "
                  "certificate again (serial %s)",
                  scep_msg_type_name(msg->message_type), msg->transaction_id,
                  tx->serial ? tx->serial : "-");
    return scep_glue_certrep(rc, msg, SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE,
                             certs);
}

/* ---- renewal ---------------------------------------------------------- */

/* Was the message signed with a certificate our CA issued and that is
 * valid now?  NULL if so, else why not, with the rule in *rule. */
static const char *check_signer_ours(scep_req_ctx_t *rc, scep_msg_t *msg,
                                     const char **rule)
{
    request_rec *r = rc->r;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *chain = rc->ep->chain;
    int i, ok, err = 0;

    for (i = 0; store && i < sk_X509_num(chain); i++) {
        X509_STORE_add_cert(store, sk_X509_value(chain, i));
    }
    ok = store && ctx
         && X509_STORE_CTX_init(ctx, store, msg->signer, NULL) == 1
         && X509_verify_cert(ctx) == 1;
    if (!ok && ctx) {
        err = X509_STORE_CTX_get_error(ctx);
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();

    if (!ok) {
        if (err == X509_V_ERR_CERT_HAS_EXPIRED) {
            *rule = "renewal-expired";
            return apr_psprintf(r->pool, "the signer certificate %s (serial "
                                "%s) has expired",
                                scep_name_str(X509_get_subject_name(
                                                  msg->signer), r->pool),
                                scep_serial_str(X509_get0_serialNumber(
                                                    msg->signer), r->pool));
        }
        *rule = "renewal-signer";
        return apr_psprintf(r->pool, "the signer certificate %s was not "
                            "issued by this CA (%s)",
                            scep_name_str(X509_get_issuer_name(msg->signer),
                                          r->pool),
                            X509_verify_cert_error_string(err));
    }
    return NULL;
}

/* May @a msg renew the certificate it is signed with?  NULL if so, else
 * why not, with the rule in *rule. */
static const char *check_renewal(scep_req_ctx_t *rc, scep_msg_t *msg,
                                 const scep_profile_t *prof, scep_db_t *db,
                                 const char **rule)
{
    request_rec *r = rc->r;
    const char *why;

    if (!prof->allow_renewal) {
        *rule = "renewal-profile";
        return apr_psprintf(r->pool, "profile %s does not allow renewal",
                            prof->name);
    }
    if (X509_NAME_cmp(X509_get_subject_name(msg->signer),
                      X509_REQ_get_subject_name(msg->csr)) != 0) {
        *rule = "renewal-subject";
        return apr_psprintf(r->pool, "the CSR's subject %s is not the "
                            "subject %s of the certificate being renewed",
                            scep_name_str(X509_REQ_get_subject_name(msg->csr),
                                          r->pool),
                            scep_name_str(X509_get_subject_name(msg->signer),
                                          r->pool));
    }
    if (prof->renewal_window_days > 0
        && scep_cert_seconds_left(msg->signer)
           > (long long)prof->renewal_window_days * 86400) {
        *rule = "renewal-window";
        return apr_psprintf(r->pool, "the certificate has %" APR_INT64_T_FMT " days "
                            "left; profile %s renews only in the last %d "
                            "days", (apr_int64_t)(scep_cert_seconds_left(
                                msg->signer) / 86400),
                            prof->name, prof->renewal_window_days);
    }
    if (db) {
        scep_cert_row_t *row = NULL;
        if (scep_cert_lookup(db, X509_get_issuer_name(msg->signer),
                             X509_get0_serialNumber(msg->signer), &row, &why,
                             r->pool) != APR_SUCCESS) {
            *rule = "renewal-store";
            return apr_psprintf(r->pool, "cannot check revocation: %s", why);
        }
        if (row && row->status == SCEP_CERT_REVOKED) {
            *rule = "renewal-revoked";
            return apr_psprintf(r->pool, "the signer certificate (serial %s) "
                                "is revoked", row->serial);
        }
    }
    return NULL;
}

/* The issued certificate's serial and stored form, made before the store
 * lock is taken, not under it. */
static void encode_issued(const scep_ca_reply_t *reply, scep_db_t *db,
                          const char **serial, const char **b64,
                          apr_pool_t *p)
{
    *serial = scep_serial_str(X509_get0_serialNumber(
                                  sk_X509_value(reply->certs, 0)), p);
    *b64 = db ? certs_b64(reply->certs, p) : NULL;
}

/* The local CA signs before the store lock is taken, for a request that
 * will be accepted as far as can be told without the lock (its profile;
 * its password as read before the lock, scep_otp_prefetch; a renewal's
 * rules and the old certificate's status): the lock is then not held
 * over an RSA signature, and the decision and the outcome are one commit
 * instead of two (SQLite).  The certificate goes nowhere unless the
 * checks under the lock accept the request; a request they refuse has
 * cost one signature.  Other providers and other challenges keep the
 * order "decide, publish, ask the CA".  1 if @a reply holds the
 * certificate, signed under *@a used. */
static int sign_early(scep_req_ctx_t *rc, scep_msg_t *msg, int renewal,
                      scep_db_t *db, scep_challenge_req_t *chreq,
                      const char *pw, scep_ca_reply_t *reply,
                      const scep_profile_t **used)
{
    request_rec *r = rc->r;
    const scep_dir_conf_t *c = rc->conf;
    const scep_profile_t *prof;
    const char *rule = NULL, *why = NULL;
    int fail_info;

    if (c->provider != &scep_ca_local_provider
        || (!renewal && c->challenge == NULL)) {
        return 0;
    }
    prof = find_profile(c, template_for(c, msg->csr), r->pool);
    if (prof == NULL || prof->manual_approval
        || scep_profile_check(prof, msg->csr, &rule, &fail_info, r->pool)
           != NULL) {
        return 0;
    }
    if (renewal) {
        /* no side effect: asked again under the lock */
        if (check_renewal(rc, msg, prof, db, &rule) != NULL) {
            return 0;
        }
    }
    else if (c->challenge == &scep_challenge_otp) {
        if (!scep_otp_acceptable(chreq->settings, pw, msg->csr, prof->name,
                                 r->pool)) {
            return 0;
        }
    }
    else if (c->challenge == &scep_challenge_static
             || c->challenge == &scep_challenge_none) {
        /* no store, no side effect: asked again under the lock */
        chreq->profile = prof->name;
        if (c->challenge->verify(c->challenge_inst, chreq, pw, &why)
            != SCEP_CHALLENGE_OK) {
            return 0;
        }
    }
    else {
        return 0;
    }
    issue(r, c, prof, msg->csr, msg->signer, msg->transaction_id, reply);
    if (reply->status != SCEP_CA_ISSUED) {
        /* asked again, in order, after the decision */
        return 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, SCEP_LOGNO(00035)
                  "transaction %s: signed by CA provider %s before the store "
                  "lock, handed out only if the checks under it accept",
                  msg->transaction_id, c->provider_name);
    *used = prof;
    return 1;
}

/* ---- PKCSReq / RenewalReq --------------------------------------------- */

int scep_enroll_pkcsreq(scep_req_ctx_t *rc, scep_msg_t *msg)
{
    request_rec *r = rc->r;
    const scep_dir_conf_t *c = rc->conf;
    const scep_profile_t *prof;
    scep_ca_reply_t reply;
    scep_challenge_req_t chreq;
    scep_challenge_status_e cs;
    scep_db_t *db = NULL;
    scep_tx_row_t *tx = NULL;
    const char *pw = NULL, *subject, *digest = NULL, *why = NULL, *rule = NULL;
    const char *tmpl, *serial = NULL, *issued_b64 = NULL;
    apr_int64_t now = apr_time_sec(r->request_time);
    unsigned char md[SHA256_DIGEST_LENGTH];
    const char *signer_why, *signer_rule = NULL;
    int claimed = 0, renewal, fail_info, verified = 0, same_key, self_signed;
    int early = 0;
    const scep_profile_t *early_prof = NULL;

    subject = scep_name_str(X509_REQ_get_subject_name(msg->csr), r->pool);
    /* what the challenge provider is told (the profile once it is known) */
    memset(&chreq, 0, sizeof(chreq));
    chreq.pool = r->pool;
    chreq.settings = scep_glue_settings(c, r->pool);
    chreq.db = scep_glue_db;
    chreq.db_baton = r;
    chreq.requester = r->useragent_ip;
    chreq.transaction_id = msg->transaction_id;
    chreq.csr = msg->csr;

    /* Who signed: a self-signed certificate of the CSR's own key (an
     * initial request: the password decides), or a certificate of ours (a
     * renewal: RenewalReq, or certmonger's PKCSReq signed by the old
     * certificate, with a new key or the same).  A request signed by
     * another CA's certificate with the CSR's key is an initial request;
     * with another key it is refused. */
    same_key = EVP_PKEY_eq(X509_get0_pubkey(msg->signer),
                           X509_REQ_get0_pubkey(msg->csr)) == 1;
    self_signed = X509_check_issued(msg->signer, msg->signer) == X509_V_OK;
    signer_why = self_signed ? "the message is signed with a self-signed "
                               "certificate, not one this CA issued"
                             : check_signer_ours(rc, msg, &signer_rule);
    renewal = msg->message_type == SCEP_MT_RENEWALREQ || !same_key
              || signer_why == NULL;
    if (renewal && signer_why) {
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST,
                                 signer_rule ? signer_rule : "renewal-signer",
                                 signer_why);
    }
    if (!renewal) {
        pw = csr_challenge(msg->csr, r->pool);
    }

    /* A transaction answered before gets the same answer again. */
    if (scep_glue_store_on(c)) {
        if ((db = scep_glue_db(r)) == NULL) {
            return store_unavailable(r, "connection", NULL);
        }
        /* the request as signed, not its signature: a client that signs
         * again (ECDSA, RSA-PSS) for a retry sends the same request */
        {
            unsigned char *tbs = NULL;
            int tlen = i2d_re_X509_REQ_tbs(msg->csr, &tbs);
            if (tlen > 0) {
                SHA256(tbs, (size_t)tlen, md);
            }
            else {
                SHA256(msg->content, msg->content_len, md);
            }
            OPENSSL_free(tbs);
        }
        digest = hex(md, sizeof(md), r->pool);
        if (scep_tx_get(db, pool_name(c), msg->transaction_id, &tx, &why,
                        r->pool) != APR_SUCCESS) {
            return store_unavailable(r, "transaction lookup", why);
        }
        if (tx && renewal && tx->state == SCEP_TX_ISSUED && tx->serial
            && !strcmp(tx->serial, scep_serial_str(
                           X509_get0_serialNumber(msg->signer), r->pool))) {
            /* signed by the very certificate this transaction issued: a
             * renewal of it under the same transactionID, not a retry */
            if (scep_tx_forget_issued(db, pool_name(c), msg->transaction_id,
                                      tx->serial, &why, r->pool)
                != APR_SUCCESS) {
                return store_unavailable(r, "transaction renewal", why);
            }
            tx = NULL;
        }
        if (tx && tx->state == SCEP_TX_PENDING && !tx->csr && !tx->ca_ref
            && !strcmp(tx->req_digest, digest)
            && now - tx->created > (c->tx_timeout == SCEP_UNSET
                                    ? SCEP_TX_ABANDONED : c->tx_timeout)) {
            /* claimed by a request that died before a decision (a killed
             * child, a lost node): its retry takes the transaction over */
            ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, SCEP_LOGNO(00032)
                          "%s: transaction %s was left undecided %"
                          APR_INT64_T_FMT " s ago; this retry takes it over",
                          scep_msg_type_name(msg->message_type),
                          msg->transaction_id, (apr_int64_t)(now
                                                             - tx->created));
            scep_tx_delete(db, pool_name(c), msg->transaction_id, &why,
                           r->pool);
            tx = NULL;
        }
        if (tx) {
            return answer_known(rc, msg, tx, digest);
        }
        /* the one-time password's row is read before the store lock: the
         * lock is held for less (scep_otp_prefetch) */
        if (!renewal && c->challenge == &scep_challenge_otp) {
            scep_otp_prefetch(db, chreq.settings, pw, r->pool);
        }
        if ((early = sign_early(rc, msg, renewal, db, &chreq, pw, &reply,
                                &early_prof)) != 0) {
            encode_issued(&reply, db, &serial, &issued_b64, r->pool);
        }
        /* The nonce, the claim and the password's reservation: one commit
         * (SQLite) before the CA is asked, or with the outcome when the
         * local CA signed already; every answer from here on commits first
         * (scep_glue_certrep, scep_glue_refuse). */
        if (scep_store_begin(db, &why, r->pool) != APR_SUCCESS) {
            return store_unavailable(r, "transaction start", why);
        }
        /* a new transaction must not replay a message seen before */
        if (msg->has_sender_nonce && c->replay_window != 0) {
            int replayed = 0;
            apr_int64_t win = c->replay_window == SCEP_UNSET
                              ? DEFAULT_REPLAY_WINDOW : c->replay_window;
            if (scep_nonce_check(db, hex(msg->sender_nonce, SCEP_NONCE_LEN,
                                         r->pool),
                                 now, win, &replayed, &why, r->pool)
                != APR_SUCCESS) {
                return store_unavailable(r, "nonce", why);
            }
            if (replayed) {
                return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST,
                                         "replay", "this senderNonce was "
                                         "seen before (a replayed message)");
            }
        }
    }

    /* The profile (NDES template) the CSR's keyUsage selects, its policy. */
    tmpl = template_for(c, msg->csr);
    if ((prof = find_profile(c, tmpl, r->pool)) == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00018)
                      "profile %s (named by an SCEP*Template directive) is "
                      "not defined with SCEPProfile", tmpl);
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "profile",
                                 apr_psprintf(r->pool, "no profile %s", tmpl));
    }
    apr_table_setn(r->notes, "scep-audit-profile", prof->name);
    if ((why = scep_profile_check(prof, msg->csr, &rule, &fail_info,
                                  r->pool)) != NULL) {
        return scep_glue_failure(rc, msg, fail_info,
                                 apr_pstrcat(r->pool, "profile ", prof->name,
                                             " ", rule, NULL), why);
    }

    chreq.profile = prof->name;

    /* Claim the transactionID before the password is looked at, so that
     * copies of one request racing each other see one transaction (the
     * first is answered, the others wait: PENDING, then the same
     * certificate); keep the CSR when an administrator has to decide. */
    if (db) {
        if (scep_tx_claim(db, pool_name(c), msg->transaction_id, digest,
                          subject, prof->manual_approval
                                   ? b64(msg->content, msg->content_len,
                                         r->pool) : NULL,
                          prof->name, r->useragent_ip, now, &claimed, &why,
                          r->pool) != APR_SUCCESS) {
            return store_unavailable(r, "transaction claim", why);
        }
        if (!claimed) {
            /* answer_known may ask the CA: not with the group open */
            scep_glue_db_commit(r);
            if (scep_tx_get(db, pool_name(c), msg->transaction_id, &tx, &why,
                            r->pool) != APR_SUCCESS || tx == NULL) {
                return store_unavailable(r, "transaction lookup", why);
            }
            return answer_known(rc, msg, tx, digest);
        }
    }
#define UNCLAIM() do {                                                     \
        if (claimed) {                                                     \
            scep_tx_delete(db, pool_name(c), msg->transaction_id, &why,    \
                           r->pool);                                       \
        }                                                                  \
    } while (0)

    apr_table_setn(r->notes, "scep-audit-challenge",
                   renewal ? apr_pstrcat(r->pool, "renewal of ",
                                         scep_serial_str(X509_get0_serialNumber(
                                             msg->signer), r->pool), NULL)
                           : c->challenge_name ? c->challenge_name : "none");
    if (renewal) {
        /* signed by a valid certificate of ours: no password, but the
         * renewal rules of the profile */
        if ((why = check_renewal(rc, msg, prof, db, &rule)) != NULL) {
            UNCLAIM();
            return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, rule, why);
        }
    }
    else {
        if (c->challenge == NULL) {
            UNCLAIM();
            return scep_glue_failure(rc, msg, SCEP_FAIL_BADMSGCHECK,
                                     "challenge", "no SCEPChallenge is "
                                     "configured for this endpoint (fail "
                                     "closed)");
        }
        cs = c->challenge->verify(c->challenge_inst, &chreq, pw, &why);
        if (cs == SCEP_CHALLENGE_ERROR) {
            UNCLAIM();
            return store_unavailable(r, "challenge", why);
        }
        if (cs != SCEP_CHALLENGE_OK) {
            UNCLAIM();
            scep_metrics_count(SCEP_CTR_PW_REFUSED);
            return scep_glue_failure(rc, msg, SCEP_FAIL_BADMSGCHECK,
                                     apr_pstrcat(r->pool, "challenge ",
                                                 c->challenge_name, NULL),
                                     apr_pstrcat(r->pool, "the password in "
                                                 "the certificate request "
                                                 "cannot be verified: ",
                                                 why ? why : "-", NULL));
        }
        verified = 1;
        apr_table_setn(r->notes, "scep-audit-challenge",
                       apr_pstrcat(r->pool, c->challenge_name, ": ok", NULL));
    }

#define NOTIFY(outcome) do {                                               \
        if (verified && c->challenge->notify) {                            \
            c->challenge->notify(c->challenge_inst, &chreq, pw, (outcome)); \
        }                                                                  \
        if (verified && (outcome) != SCEP_OUTCOME_FAILED                   \
            && c->challenge == &scep_challenge_otp) {                      \
            scep_metrics_count(SCEP_CTR_PW_CONSUMED);                      \
        }                                                                  \
    } while (0)

    if (prof->manual_approval) {
        if (!db) {
            return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "profile",
                                     apr_psprintf(r->pool, "profile %s wants "
                                                  "manual approval, which "
                                                  "needs SCEPStore dbd",
                                                  prof->name));
        }
        NOTIFY(SCEP_OUTCOME_PENDING);
        scep_audit(r, msg, "pending", -1, "approval", apr_psprintf(
                       r->pool, "profile %s waits for an administrator",
                       prof->name));
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, SCEP_LOGNO(00019)
                      "%s pending: transaction %s, subject %s, profile %s "
                      "waits for an administrator",
                      scep_msg_type_name(msg->message_type),
                      msg->transaction_id, subject, prof->name);
        return scep_glue_certrep(rc, msg, SCEP_STATUS_PENDING, SCEP_FAIL_NONE,
                                 NULL);
    }

    /* the claim and the reservation, seen by every node and child before
     * the CA signs; durable with the outcome's commit, before any answer.
     * Signed already (sign_early): the same group goes on to the outcome
     * (SQLite; with a server database each statement was its own commit,
     * and the certificate is used only after the claim and the
     * reservation succeeded all the same). */
    if (early && strcmp(early_prof->name, prof->name) != 0) {
        /* never hand out what was signed under another profile */
        early = 0;
        serial = issued_b64 = NULL;
    }
    if (!early) {
        if (db && scep_glue_db_publish(r) != APR_SUCCESS) {
            return store_unavailable(r, "transaction claim",
                                     "not committed");
        }
        issue(r, c, prof, msg->csr, msg->signer, msg->transaction_id,
              &reply);
    }

    if (reply.status == SCEP_CA_ISSUED && serial == NULL) {
        encode_issued(&reply, db, &serial, &issued_b64, r->pool);
    }
    /* the outcome, the certificate and the password: one commit again */
    if (db && scep_store_begin(db, &why, r->pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00034)
                      "transaction %s: the outcome is written statement by "
                      "statement: %s", msg->transaction_id, why);
    }
    apr_table_setn(r->notes, "scep-audit-ca",
                   apr_pstrcat(r->pool, c->provider_name, ": ",
                               reply.status == SCEP_CA_ISSUED ? "issued"
                               : reply.status == SCEP_CA_PENDING ? "pending"
                               : reply.status == SCEP_CA_REJECTED
                                 ? "rejected" : "error", NULL));
    switch (reply.status) {
    case SCEP_CA_ISSUED:
        if (db && scep_tx_set_issued(db, pool_name(c), msg->transaction_id,
                                     issued_b64, serial,
                                     now, &why, r->pool) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00103)
                          "certificate %s issued for transaction %s but not "
                          "recorded: %s", serial, msg->transaction_id, why);
        }
        scep_certs_issued(r, c, reply.certs, msg->transaction_id, prof->name);
        NOTIFY(SCEP_OUTCOME_ISSUED);
        if (renewal && prof->revoke_on_renewal && db) {
            int reason = 4 /* superseded */, already = 0;
            apr_int64_t crl_number = 0;
            const char *old = scep_serial_str(
                X509_get0_serialNumber(msg->signer), r->pool);
            if (scep_certs_revoke(r, c, old, &reason, &already, &crl_number,
                                  &why) != HTTP_OK && !already) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00020)
                              "renewal: cannot revoke the replaced "
                              "certificate %s: %s", old, why);
            }
        }
        /* not recorded, not handed out: the device retries, and its retry
         * takes the transaction over once it is abandoned */
        if (db && scep_glue_db_commit(r) != APR_SUCCESS) {
            return store_unavailable(r, "certificate record",
                                     apr_psprintf(r->pool, "certificate %s "
                                                  "withheld", serial));
        }
        /* audited and logged once it is recorded, outside the store lock */
        apr_table_setn(r->notes, "scep-audit-serial", serial);
        scep_audit(r, msg, "issued", -1, renewal ? "renewal" : "challenge",
                   NULL);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SCEP_LOGNO(00013)
                      "%s issued: transaction %s, subject %s, serial %s, "
                      "profile %s, CA provider %s, %s%s, %s/%s",
                      scep_msg_type_name(msg->message_type),
                      msg->transaction_id, subject, serial, prof->name,
                      c->provider_name, renewal ? "renewal of serial " :
                      "challenge ", renewal
                      ? scep_serial_str(X509_get0_serialNumber(msg->signer),
                                        r->pool) : c->challenge_name,
                      OBJ_nid2sn(msg->cipher_nid),
                      OBJ_nid2sn(msg->digest_nid));
        return scep_glue_certrep(rc, msg, SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE,
                                 reply.certs);
    case SCEP_CA_PENDING:
        if (!db) {
            /* nothing could poll it later: do not leave the device waiting
             * for ever, and do not spend its password */
            NOTIFY(SCEP_OUTCOME_FAILED);
            return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST,
                                     "ca-provider", apr_psprintf(r->pool,
                                     "CA provider %s answered pending, "
                                     "which needs the SQL store (SCEPStore "
                                     "dbd) to be polled", c->provider_name));
        }
        if (scep_tx_set_ca_ref(db, pool_name(c), msg->transaction_id,
                                     reply.reference ? reply.reference : "",
                                     b64(msg->content, msg->content_len,
                                         r->pool), now, &why, r->pool)
                  != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00029)
                          "transaction %s pending at the CA, but its handle "
                          "was not recorded: %s", msg->transaction_id, why);
        }
        NOTIFY(SCEP_OUTCOME_PENDING);
        scep_audit(r, msg, "pending", -1, "ca-provider", reply.reference);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SCEP_LOGNO(00014)
                      "%s pending at CA provider %s: transaction %s, "
                      "subject %s", scep_msg_type_name(msg->message_type),
                      c->provider_name, msg->transaction_id, subject);
        return scep_glue_certrep(rc, msg, SCEP_STATUS_PENDING, SCEP_FAIL_NONE,
                                 NULL);
    default:
        if (db) {
            scep_tx_delete(db, pool_name(c), msg->transaction_id, &why,
                           r->pool);
        }
        NOTIFY(SCEP_OUTCOME_FAILED);
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "ca-provider",
                                 apr_psprintf(r->pool, "CA provider %s %s: %s",
                                              c->provider_name,
                                              reply.status == SCEP_CA_REJECTED
                                              ? "rejected the request"
                                              : "failed",
                                              reply.reason ? reply.reason
                                                           : "-"));
    }
#undef NOTIFY
#undef UNCLAIM
}

/* ---- CertPoll --------------------------------------------------------- */

int scep_enroll_certpoll(scep_req_ctx_t *rc, scep_msg_t *msg)
{
    request_rec *r = rc->r;
    scep_tx_row_t *tx = NULL;
    scep_db_t *db;
    const char *why = NULL;

    if (!scep_glue_store_on(rc->conf)) {
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "certpoll",
                                 "polling needs the SQL store (SCEPStore "
                                 "dbd): nothing is ever pending here");
    }
    if ((db = scep_glue_db(r)) == NULL) {
        return store_unavailable(r, "connection", NULL);
    }
    if (scep_tx_get(db, pool_name(rc->conf), msg->transaction_id, &tx, &why,
                    r->pool) != APR_SUCCESS) {
        return store_unavailable(r, "transaction lookup", why);
    }
    if (tx == NULL) {
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADCERTID, "certpoll",
                                 "no request with this transactionID");
    }
    return answer_known(rc, msg, tx, NULL);
}

/* ---- an administrator's decision -------------------------------------- */

int scep_enroll_decide(request_rec *r, const scep_dir_conf_t *c,
                       const char *tid, int approve, const char *reason,
                       const char **why)
{
    scep_db_t *db;
    scep_tx_row_t *tx = NULL;
    const scep_profile_t *prof;
    scep_ca_reply_t reply;
    X509_REQ *csr;
    unsigned char *der;
    const unsigned char *q;
    apr_size_t len;
    apr_int64_t now = apr_time_sec(apr_time_now());
    const char *who = r->user ? r->user : "-", *serial;
    int done = 0;

    *why = NULL;
    if (!scep_glue_store_on(c) || (db = scep_glue_db(r)) == NULL) {
        *why = "the SQL store is not available";
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (scep_tx_get(db, pool_name(c), tid, &tx, why, r->pool) != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (tx == NULL) {
        *why = "no such request";
        return HTTP_NOT_FOUND;
    }
    if (tx->state != SCEP_TX_PENDING || tx->csr == NULL) {
        *why = "the request is not waiting for a decision";
        return HTTP_CONFLICT;
    }
    if (!approve) {
        if (scep_tx_reject(db, pool_name(c), tid, reason ? reason : "rejected",
                           who, now, &done, why, r->pool) != APR_SUCCESS) {
            return HTTP_SERVICE_UNAVAILABLE;
        }
        apr_table_setn(r->notes, "scep-audit-user", who);
        apr_table_setn(r->notes, "scep-audit-tid", tid);
        scep_audit(r, NULL, "rejected", -1, "administrator",
                   apr_psprintf(r->pool, "transaction %s (%s): %s", tid,
                                tx->subject ? tx->subject : "-",
                                reason ? reason : "-"));
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, SCEP_LOGNO(00021)
                      "request %s (%s) rejected by %s: %s", tid,
                      tx->subject ? tx->subject : "-", who,
                      reason ? reason : "-");
        return done ? HTTP_OK : HTTP_CONFLICT;
    }
    if (scep_base64_decode(&der, &len, tx->csr, strlen(tx->csr), r->pool)
        != APR_SUCCESS) {
        *why = "the kept CSR does not decode";
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    q = der;
    csr = scep_own_req(r->pool, d2i_X509_REQ(NULL, &q, (long)len));
    if (csr == NULL) {
        *why = "the kept CSR does not parse";
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    prof = find_profile(c, tx->profile ? tx->profile : DEFAULT_TEMPLATE,
                        r->pool);
    if (prof == NULL) {
        *why = apr_psprintf(r->pool, "profile %s is no longer defined",
                            tx->profile);
        return HTTP_CONFLICT;
    }
    issue(r, c, prof, csr, NULL, tid, &reply);
    if (reply.status != SCEP_CA_ISSUED) {
        *why = apr_psprintf(r->pool, "CA provider %s: %s", c->provider_name,
                            reply.reason ? reply.reason : "not issued");
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00022)
                      "approval of %s by %s failed: %s", tid, who, *why);
        return HTTP_BAD_GATEWAY;
    }
    serial = scep_serial_str(X509_get0_serialNumber(
                                 sk_X509_value(reply.certs, 0)), r->pool);
    if (scep_tx_set_issued(db, pool_name(c), tid,
                           certs_b64(reply.certs, r->pool), serial, now, why,
                           r->pool) != APR_SUCCESS
        || scep_tx_set_decider(db, pool_name(c), tid, who, why, r->pool)
           != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00023)
                      "certificate %s issued on approval of %s but not "
                      "recorded: %s", serial, tid, *why);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    scep_certs_issued(r, c, reply.certs, tid, prof->name);
    apr_table_setn(r->notes, "scep-audit-user", who);
    apr_table_setn(r->notes, "scep-audit-tid", tid);
    apr_table_setn(r->notes, "scep-audit-profile", prof->name);
    apr_table_setn(r->notes, "scep-audit-serial", serial);
    scep_audit(r, NULL, "approved", -1, "administrator",
               apr_psprintf(r->pool, "transaction %s (%s)", tid,
                            tx->subject ? tx->subject : "-"));
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, SCEP_LOGNO(00024)
                  "request %s (%s) approved by %s: serial %s, profile %s",
                  tid, tx->subject ? tx->subject : "-", who, serial,
                  prof->name);
    *why = serial;
    return HTTP_OK;
}
