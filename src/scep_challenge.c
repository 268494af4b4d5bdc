/* Licensed under the Apache License, Version 2.0.
 *
 * Built-in challenge providers.  CORE: APR, apr_dbd and OpenSSL only.
 */
#include <string.h>

#include <apr_fnmatch.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "scep_challenge.h"
#include "scep_pki.h"
#include "scep_store.h"

static char *normalise(const char *pw, apr_pool_t *p)
{
    char *s;
    apr_size_t n, i;
    int hex = 1;

    while (*pw == ' ' || *pw == '\t') {
        pw++;
    }
    s = apr_pstrdup(p, pw);
    n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'
                 || s[n - 1] == '\n')) {
        s[--n] = '\0';
    }
    for (i = 0; i < n; i++) {
        hex &= apr_isxdigit(s[i]) != 0;
    }
    if (hex) {
        /* NDES passwords are uppercase hex; devices sometimes lower it */
        for (i = 0; i < n; i++) {
            s[i] = (char)apr_toupper(s[i]);
        }
    }
    return s;
}

const char *scep_password_hash(const scep_challenge_settings_t *settings,
                               const char *password, apr_pool_t *p)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    const char *norm = normalise(password, p);
    char *out;

    if (!HMAC(EVP_sha256(), settings->key, (int)settings->key_len,
              (const unsigned char *)norm, strlen(norm), md, &n)) {
        return NULL;
    }
    out = apr_palloc(p, n * 2 + 1);
    for (i = 0; i < n; i++) {
        apr_snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    return out;
}

static const char *csr_cn(X509_REQ *csr, apr_pool_t *p)
{
    X509_NAME *name = X509_REQ_get_subject_name(csr);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    unsigned char *utf8 = NULL;
    const char *out;
    int n;

    if (idx < 0) {
        return NULL;
    }
    n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
                                X509_NAME_get_entry(name, idx)));
    if (n < 0) {
        return NULL;
    }
    out = apr_pstrmemdup(p, (const char *)utf8, n);
    OPENSSL_free(utf8);
    return out;
}

/* The text of an IP address SAN: dotted quad, or eight groups of hex. */
static const char *ip_text(const ASN1_OCTET_STRING *os, apr_pool_t *p)
{
    const unsigned char *b = ASN1_STRING_get0_data(os);
    int n = ASN1_STRING_length(os);

    if (n == 4) {
        return apr_psprintf(p, "%d.%d.%d.%d", b[0], b[1], b[2], b[3]);
    }
    if (n == 16) {
        return apr_psprintf(p, "%x:%x:%x:%x:%x:%x:%x:%x",
                            b[0] << 8 | b[1], b[2] << 8 | b[3],
                            b[4] << 8 | b[5], b[6] << 8 | b[7],
                            b[8] << 8 | b[9], b[10] << 8 | b[11],
                            b[12] << 8 | b[13], b[14] << 8 | b[15]);
    }
    return NULL;
}

/* Do the CSR's subjectAltNames all match the pattern (and is there one)?
 * One stray name would otherwise ride along into the certificate. */
static int csr_san_matches(X509_REQ *csr, const char *pattern, apr_pool_t *p)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    GENERAL_NAMES *names = X509V3_get_d2i(exts, NID_subject_alt_name, NULL,
                                          NULL);
    int i, hit = names && sk_GENERAL_NAME_num(names) > 0;

    const char *type = NULL;
    const char *colon = strchr(pattern, ':');

    /* "dns:*.example.com" (as profiles write it) matches DNS names only */
    if (colon && (!strncasecmp(pattern, "dns:", 4)
                  || !strncasecmp(pattern, "ip:", 3)
                  || !strncasecmp(pattern, "email:", 6)
                  || !strncasecmp(pattern, "uri:", 4))) {
        type = apr_pstrmemdup(p, pattern, colon - pattern);
        pattern = colon + 1;
    }
    for (i = 0; names && hit && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const char *v = NULL;
        if (gn->type == GEN_DNS || gn->type == GEN_EMAIL
            || gn->type == GEN_URI) {
            v = apr_pstrmemdup(p, (const char *)ASN1_STRING_get0_data(
                                   gn->d.ia5), ASN1_STRING_length(gn->d.ia5));
        }
        else if (gn->type == GEN_IPADD) {
            v = ip_text(gn->d.ip, p);
        }
        if (type && !((gn->type == GEN_DNS && !strcasecmp(type, "dns"))
                      || (gn->type == GEN_IPADD && !strcasecmp(type, "ip"))
                      || (gn->type == GEN_EMAIL
                          && !strcasecmp(type, "email"))
                      || (gn->type == GEN_URI && !strcasecmp(type, "uri")))) {
            v = NULL;
        }
        if (!v || apr_fnmatch(pattern, v, APR_FNM_CASE_BLIND) != APR_SUCCESS) {
            hit = 0;
        }
    }
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return hit;
}

const char *scep_binding_check(const scep_challenge_binding_t *bind,
                               X509_REQ *csr, const char *profile,
                               apr_pool_t *p)
{
    if (bind->cn) {
        const char *cn = csr_cn(csr, p);
        if (!cn || apr_fnmatch(bind->cn, cn, APR_FNM_CASE_BLIND)
                   != APR_SUCCESS) {
            return apr_psprintf(p, "the password is bound to CN '%s', the "
                                "CSR has '%s'", bind->cn, cn ? cn : "");
        }
    }
    if (bind->san && !csr_san_matches(csr, bind->san, p)) {
        return apr_psprintf(p, "the password is bound to subjectAltNames "
                            "matching '%s'; the CSR has none, or one that "
                            "does not match", bind->san);
    }
    if (bind->profile && (!profile || strcmp(bind->profile, profile))) {
        return apr_psprintf(p, "the password is bound to profile '%s', the "
                            "request is for '%s'", bind->profile,
                            profile ? profile : "");
    }
    return NULL;
}

/* ---- otp -------------------------------------------------------------- */

static const char *otp_create(void **instance, apr_pool_t *p, int argc,
                              const char *const *argv)
{
    if (argc != 0) {
        return "otp takes no arguments (see SCEPPasswordLength, "
               "SCEPPasswordValidity, SCEPPasswordMax, SCEPPasswordKeyFile)";
    }
    *instance = apr_pcalloc(p, 1);
    return NULL;
}

static scep_db_t *otp_db(const scep_challenge_req_t *req, const char **reason)
{
    scep_db_t *db = req->db ? req->db(req->db_baton) : NULL;

    if (db == NULL) {
        *reason = "the password store is not reachable (mod_dbd)";
    }
    return db;
}

static scep_challenge_status_e otp_generate(void *instance,
                                            const scep_challenge_req_t *req,
                                            const scep_challenge_binding_t *bind,
                                            const char **password,
                                            apr_time_t *expires, int *multi,
                                            const char **reason)
{
    const scep_challenge_settings_t *st = req->settings;
    apr_pool_t *p = req->pool;
    scep_db_t *db = otp_db(req, reason);
    apr_int64_t now = apr_time_sec(apr_time_now());
    apr_int64_t exp = now + apr_time_sec(st->validity);
    unsigned char raw[64];
    char *pw;
    int count = 0, i;

    if (db == NULL) {
        return SCEP_CHALLENGE_ERROR;
    }
    if (st->key == NULL || st->key_len == 0) {
        *reason = "no SCEPPasswordKeyFile: passwords cannot be stored";
        return SCEP_CHALLENGE_ERROR;
    }
    if (scep_pw_count_live(db, st->endpoint, now, &count, reason, p)
        != APR_SUCCESS) {
        return SCEP_CHALLENGE_ERROR;
    }
    if (count >= st->max) {
        *reason = apr_psprintf(p, "%d unused passwords are outstanding "
                               "(SCEPPasswordMax %d)", count, st->max);
        return SCEP_CHALLENGE_FULL;
    }
    if (st->length < 1 || st->length > (int)sizeof(raw)
        || RAND_bytes(raw, st->length) != 1) {
        *reason = "no random bytes";
        return SCEP_CHALLENGE_ERROR;
    }
    pw = apr_palloc(p, st->length * 2 + 1);
    for (i = 0; i < st->length; i++) {
        apr_snprintf(pw + 2 * i, 3, "%02X", raw[i]);
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    if (scep_pw_insert(db, st->endpoint, scep_password_hash(st, pw, p), now,
                       exp, req->user, bind, reason, p) != APR_SUCCESS) {
        return SCEP_CHALLENGE_ERROR;
    }
    *password = pw;
    *expires = apr_time_from_sec(exp);
    *multi = 0;
    return SCEP_CHALLENGE_OK;
}

/* The password's row as read before the store lock, and the id of the
 * row a verify reserved: kept in the request's pool, found again by the
 * password as the CSR gave it (its keyed hash is made once). */
typedef struct {
    const char *password;
    const char *hash;
    scep_pw_row_t *row;      /* NULL: unknown */
    const char *reserved;    /* the id otp_verify reserved, for notify */
} otp_seen_t;

#define OTP_SEEN_KEY "scep-otp-seen"

static otp_seen_t *otp_seen(apr_pool_t *p, const char *password)
{
    otp_seen_t *s = NULL;

    apr_pool_userdata_get((void **)&s, OTP_SEEN_KEY, p);
    return s && password && !strcmp(s->password, password) ? s : NULL;
}

/* Reading the row needs no lock, and what otp_verify decides from it
 * stays true: a used or revoked password stays so, the expiry and the
 * binding never change, a password nobody has been given cannot appear,
 * and the reservation checks state and expiry again as it writes. */
void scep_otp_prefetch(scep_db_t *db, const scep_challenge_settings_t *st,
                       const char *password, apr_pool_t *p)
{
    otp_seen_t *s;
    const char *why = NULL;

    if (db == NULL || password == NULL || !*password || st->key == NULL
        || st->key_len == 0) {
        return;
    }
    s = apr_pcalloc(p, sizeof(*s));
    s->password = password;
    if ((s->hash = scep_password_hash(st, password, p)) == NULL) {
        return;
    }
    if (scep_pw_lookup(db, st->endpoint, s->hash, &s->row, &why, p)
        == APR_SUCCESS) {
        apr_pool_userdata_setn(s, OTP_SEEN_KEY, NULL, p);
    }
}

/* Why a password that was not reserved could not be: NULL when it is
 * unused or reserved (by another request) */
static const char *otp_refusal(const scep_pw_row_t *row, apr_int64_t now,
                               apr_pool_t *p)
{
    if (row == NULL) {
        return "the password is unknown (mistyped, or issued for another "
               "endpoint)";
    }
    switch (row->state) {
    case SCEP_PW_USED:
        return apr_psprintf(p, "the password has been used already "
                            "(transaction %s)",
                            row->transaction_id ? row->transaction_id : "-");
    case SCEP_PW_REVOKED:
        return "the password was revoked by an administrator";
    default:
        break;
    }
    if (row->expires <= now) {
        return apr_psprintf(p, "the password expired %" APR_INT64_T_FMT
                            " seconds ago", now - row->expires);
    }
    return NULL;
}

int scep_otp_acceptable(const scep_challenge_settings_t *st,
                        const char *password, X509_REQ *csr,
                        const char *profile, apr_pool_t *p)
{
    scep_challenge_binding_t bind;
    otp_seen_t *s;

    if (password == NULL || !*password || st->key == NULL
        || st->key_len == 0
        || (s = otp_seen(p, password)) == NULL
        || s->row == NULL || s->row->state != SCEP_PW_UNUSED
        || otp_refusal(s->row, apr_time_sec(apr_time_now()), p) != NULL) {
        return 0;
    }
    bind.cn = s->row->bind_cn;
    bind.san = s->row->bind_san;
    bind.profile = s->row->bind_profile;
    return scep_binding_check(&bind, csr, profile, p) == NULL;
}

static scep_challenge_status_e otp_verify(void *instance,
                                          const scep_challenge_req_t *req,
                                          const char *password,
                                          const char **reason)
{
    const scep_challenge_settings_t *st = req->settings;
    apr_pool_t *p = req->pool;
    scep_db_t *db;
    scep_pw_row_t *row = NULL;
    scep_challenge_binding_t bind;
    apr_int64_t now = apr_time_sec(apr_time_now());
    const char *hash, *why;
    otp_seen_t *seen;
    int reserved = 0;

    if (password == NULL || !*password) {
        *reason = "the CSR has no challenge password";
        return SCEP_CHALLENGE_REFUSED;
    }
    if ((db = otp_db(req, reason)) == NULL) {
        return SCEP_CHALLENGE_ERROR;
    }
    if (st->key == NULL || st->key_len == 0) {
        *reason = "no SCEPPasswordKeyFile: passwords cannot be checked";
        return SCEP_CHALLENGE_ERROR;
    }
    /* read before the store lock when the caller could (scep_otp_prefetch) */
    if ((seen = otp_seen(p, password)) != NULL) {
        hash = seen->hash;
        row = seen->row;
    }
    else {
        hash = scep_password_hash(st, password, p);
        if (scep_pw_lookup(db, st->endpoint, hash, &row, reason, p)
            != APR_SUCCESS) {
            return SCEP_CHALLENGE_ERROR;
        }
    }
    if ((why = otp_refusal(row, now, p)) != NULL) {
        *reason = why;
        return SCEP_CHALLENGE_REFUSED;
    }
    bind.cn = row->bind_cn;
    bind.san = row->bind_san;
    bind.profile = row->bind_profile;
    if ((why = scep_binding_check(&bind, req->csr, req->profile, p)) != NULL) {
        *reason = why;
        return SCEP_CHALLENGE_REFUSED;
    }
    if (scep_pw_reserve(db, st->endpoint, row, hash, req->transaction_id, now,
                        &reserved, reason, p) != APR_SUCCESS) {
        return SCEP_CHALLENGE_ERROR;
    }
    if (!reserved) {
        /* taken, used or revoked since it was read: say which */
        if (seen && scep_pw_lookup(db, st->endpoint, hash, &row, &why, p)
                    == APR_SUCCESS
            && (why = otp_refusal(row, now, p)) != NULL) {
            *reason = why;
            return SCEP_CHALLENGE_REFUSED;
        }
        *reason = "the password is being used by another request right now";
        return SCEP_CHALLENGE_REFUSED;
    }
    if (seen == NULL) {
        seen = apr_pcalloc(p, sizeof(*seen));
        seen->password = password;
        seen->hash = hash;
        apr_pool_userdata_setn(seen, OTP_SEEN_KEY, NULL, p);
    }
    seen->row = row;
    seen->reserved = row->id;
    return SCEP_CHALLENGE_OK;
}

static void otp_notify(void *instance, const scep_challenge_req_t *req,
                       const char *password, scep_challenge_outcome_e outcome)
{
    const char *why = NULL, *hash;
    scep_db_t *db = req->db ? req->db(req->db_baton) : NULL;
    otp_seen_t *seen;

    if (db == NULL || password == NULL) {
        return;
    }
    seen = otp_seen(req->pool, password);
    hash = seen ? seen->hash
                : scep_password_hash(req->settings, password, req->pool);
    scep_pw_finish(db, seen ? seen->reserved : NULL, hash,
                   req->transaction_id, outcome != SCEP_OUTCOME_FAILED,
                   apr_time_sec(apr_time_now()), &why, req->pool);
}

const scep_challenge_provider_t scep_challenge_otp = {
    "otp", otp_create, otp_generate, otp_verify, otp_notify
};

/* ---- static ----------------------------------------------------------- */

static const char *static_create(void **instance, apr_pool_t *p, int argc,
                                 const char *const *argv)
{
    const char *pw;
    char line[1024];   /* outlives the block: pw may point into it */

    if (argc != 1 || !*argv[0]) {
        return "static takes one argument: the password, or file:path";
    }
    pw = argv[0];
    if (!strncmp(pw, "file:", 5)) {
        apr_file_t *f;
        if (apr_file_open(&f, pw + 5, APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
            return apr_psprintf(p, "cannot read '%s'", pw + 5);
        }
        if (apr_file_gets(line, sizeof(line), f) != APR_SUCCESS) {
            line[0] = '\0';
        }
        apr_file_close(f);
        pw = line;
    }
    /* compared as verify() compares what a device sends */
    pw = normalise(pw, p);
    if (!*pw) {
        return "the password is empty";
    }
    *instance = apr_pstrdup(p, pw);
    return NULL;
}

static scep_challenge_status_e static_generate(void *instance,
                                               const scep_challenge_req_t *req,
                                               const scep_challenge_binding_t *b,
                                               const char **password,
                                               apr_time_t *expires, int *multi,
                                               const char **reason)
{
    *password = instance;
    *expires = 0;
    *multi = 1;
    return SCEP_CHALLENGE_OK;
}

static scep_challenge_status_e static_verify(void *instance,
                                             const scep_challenge_req_t *req,
                                             const char *password,
                                             const char **reason)
{
    const char *want = instance, *got;

    if (password == NULL || !*password) {
        *reason = "the CSR has no challenge password";
        return SCEP_CHALLENGE_REFUSED;
    }
    got = normalise(password, req->pool);
    if (strlen(got) != strlen(want)
        || CRYPTO_memcmp(got, want, strlen(want)) != 0) {
        *reason = "it is not the shared password";
        return SCEP_CHALLENGE_REFUSED;
    }
    return SCEP_CHALLENGE_OK;
}

const scep_challenge_provider_t scep_challenge_static = {
    "static", static_create, static_generate, static_verify, NULL
};

/* ---- none ------------------------------------------------------------- */

static const char *none_create(void **instance, apr_pool_t *p, int argc,
                               const char *const *argv)
{
    if (argc != 0) {
        return "none takes no arguments";
    }
    *instance = apr_pcalloc(p, 1);
    return NULL;
}

static scep_challenge_status_e none_verify(void *instance,
                                           const scep_challenge_req_t *req,
                                           const char *password,
                                           const char **reason)
{
    return SCEP_CHALLENGE_OK;
}

const scep_challenge_provider_t scep_challenge_none = {
    "none", none_create, NULL, none_verify, NULL
};
