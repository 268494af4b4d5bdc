/* Licensed under the Apache License, Version 2.0.
 *
 * mod_scep: SCEP (RFC 8894) for Apache httpd, a drop-in for Microsoft NDES.
 *
 * This file is the httpd glue: directives, start-up checks and the "scep"
 * handler.  Message decoding, encoding and issuance are in the core
 * (src/scep_*.c, src/ca_*.c), which knows nothing of httpd.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_provider.h"
#include "util_script.h"
#include "util_cfgtree.h"
#include "util_mutex.h"

#include <apr_base64.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>

#include <openssl/crypto.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <apr_dbd.h>
#include "mod_dbd.h"

#include "mod_scep.h"
#include "mod_scep_private.h"
#include "scep_msg.h"
#include "scep_pki.h"
#include "scep_engine.h"
#include "scep_store.h"
#include "scep_challenge.h"
#include "scep_certstore.h"
#include "scep_profile.h"
#include "scep_queue.h"
#include "ca_local.h"

#define CHALLENGE_LABEL_PREFIX "scep_"

#define DEFAULT_VALIDITY_DAYS  365
#define DEFAULT_MAX_REQUEST    65536
#define DEFAULT_CIPHERS  (SCEP_CIPHER_AES128 | SCEP_CIPHER_AES192 \
                          | SCEP_CIPHER_AES256 | SCEP_CIPHER_DES3)
#define DEFAULT_DIGESTS  (SCEP_DIGEST_SHA1 | SCEP_DIGEST_SHA256 \
                          | SCEP_DIGEST_SHA384 | SCEP_DIGEST_SHA512)
#define RA_WARN_SECONDS  (30LL * 86400)
/* mod_dbd's own default for DBDMax (modules/database/mod_dbd.c) */
#define DBD_DEFAULT_NMAX       10
#define DEFAULT_DBD_WAIT       apr_time_from_sec(5)
#define MAX_DBD_WAIT           apr_time_from_sec(300)

/* Process-wide state, rebuilt on every configuration (re)load. */
typedef struct {
    apr_pool_t *pool;                 /* pconf */
    apr_hash_t *endpoints;            /* key: the inputs' pointers */
    apr_thread_mutex_t *mutex;
    int legacy;                       /* SCEPLegacyProvider */
    apr_hash_t *dbd_prepared;         /* servers whose statements are in */
    int dbd_slots;                    /* SCEPDBDConnections; SCEP_UNSET:
                                       * auto, the smallest DBDMax */
    apr_interval_time_t dbd_wait;     /* its wait, -1: unset */
} scep_global_t;

static scep_global_t *global;

/* httpd's Mutex directive names it; see scep_store_begin() */
#define STORE_MUTEX "scep-store"
static apr_global_mutex_t *store_mutex;

/* ---- configuration ---------------------------------------------------- */

static void *create_dir_conf(apr_pool_t *p, char *dir)
{
    scep_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->validity_days = SCEP_UNSET;
    c->pw_length = SCEP_UNSET;
    c->pw_validity = SCEP_UNSET;
    c->pw_max = SCEP_UNSET;
    c->store = SCEP_UNSET;
    c->admin_utf8 = SCEP_UNSET;
    c->admin_anonymous = SCEP_UNSET;
    c->crl_validity = SCEP_UNSET;
    c->tx_timeout = SCEP_UNSET;
    c->replay_window = SCEP_UNSET;
    c->ciphers = SCEP_UNSET;
    c->digests = SCEP_UNSET;
    c->max_request = SCEP_UNSET;
    c->context = dir ? apr_pstrdup(p, dir) : "server config";
    return c;
}

#define MERGE_PTR(f) c->f = add->f ? add->f : base->f
#define MERGE_INT(f) c->f = add->f != SCEP_UNSET ? add->f : base->f

static void *merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    scep_dir_conf_t *base = basev, *add = addv;
    scep_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));

    MERGE_PTR(ca_file);
    MERGE_PTR(ca_chain);
    MERGE_PTR(next_ca_file);
    MERGE_PTR(next_ca);
    MERGE_PTR(ra_enc);
    MERGE_PTR(ra_sign);
    MERGE_PTR(ra_prev);
    MERGE_INT(tx_timeout);
    if (add->provider) {
        c->provider = add->provider;
        c->provider_inst = add->provider_inst;
        c->provider_name = add->provider_name;
    }
    else {
        c->provider = base->provider;
        c->provider_inst = base->provider_inst;
        c->provider_name = base->provider_name;
    }
    MERGE_INT(validity_days);
    if (add->challenge) {
        c->challenge = add->challenge;
        c->challenge_inst = add->challenge_inst;
        c->challenge_name = add->challenge_name;
    }
    else {
        c->challenge = base->challenge;
        c->challenge_inst = base->challenge_inst;
        c->challenge_name = base->challenge_name;
    }
    MERGE_INT(pw_length);
    MERGE_INT(pw_validity);
    MERGE_INT(pw_max);
    if (add->pw_key) {
        c->pw_key = add->pw_key;
        c->pw_key_len = add->pw_key_len;
        c->pw_key_file = add->pw_key_file;
    }
    else {
        c->pw_key = base->pw_key;
        c->pw_key_len = base->pw_key_len;
        c->pw_key_file = base->pw_key_file;
    }
    MERGE_PTR(pw_pool);
    MERGE_INT(store);
    MERGE_INT(admin_utf8);
    MERGE_INT(admin_anonymous);
    MERGE_PTR(admin_users);
    if (add->profiles && base->profiles) {
        c->profiles = apr_hash_overlay(p, add->profiles, base->profiles);
    }
    else {
        MERGE_PTR(profiles);
    }
    MERGE_PTR(templates[0]);
    MERGE_PTR(templates[1]);
    MERGE_PTR(templates[2]);
    MERGE_PTR(crl_url);
    MERGE_INT(crl_validity);
    MERGE_INT(replay_window);
    MERGE_INT(ciphers);
    MERGE_INT(digests);
    MERGE_INT(max_request);
    MERGE_PTR(context);
    return c;
}

static const char *set_ca_file(cmd_parms *cmd, void *dc, const char *arg)
{
    scep_dir_conf_t *c = dc;
    const char *why = NULL, *path = ap_server_root_relative(cmd->pool, arg);

    if (!path || scep_load_certs(&c->ca_chain, path, &why, cmd->pool)
        != APR_SUCCESS) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ",
                           why ? why : "bad path", NULL);
    }
    c->ca_file = path;
    return NULL;
}

static const char *set_next_ca_file(cmd_parms *cmd, void *dc, const char *arg)
{
    scep_dir_conf_t *c = dc;
    const char *why = NULL, *path = ap_server_root_relative(cmd->pool, arg);

    if (!path || scep_load_certs(&c->next_ca, path, &why, cmd->pool)
        != APR_SUCCESS) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ",
                           why ? why : "bad path", NULL);
    }
    c->next_ca_file = path;
    return NULL;
}

/* A private key file others may read is worth a warning at start-up. */
static void warn_key_perms(cmd_parms *cmd, const char *path)
{
    apr_finfo_t fi;

    if (path && !ap_strchr_c(path, ':')
        && apr_stat(&fi, path, APR_FINFO_PROT, cmd->temp_pool) == APR_SUCCESS
        && (fi.protection & (APR_GREAD | APR_WREAD))) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cmd->server,
                     SCEP_LOGNO(00033) "%s: private key '%s' is readable by "
                     "group or others; chmod 600 it (or 640 with the httpd "
                     "group)", cmd->cmd->name, path);
    }
}

/* SCEPRAEncryption / SCEPRASigning cert-file key-file */
static const char *set_ra(cmd_parms *cmd, void *dc, const char *certf,
                          const char *keyf)
{
    scep_dir_conf_t *c = dc;
    int enc = cmd->info != NULL;   /* 1: encryption, 2: previous one */
    const char *why = NULL;
    const char *cpath = ap_server_root_relative(cmd->pool, certf);
    const char *kpath = ap_server_root_relative(cmd->pool, keyf);
    STACK_OF(X509) *certs;
    scep_ra_t *ra = apr_pcalloc(cmd->pool, sizeof(*ra));
    unsigned int ku = enc ? KU_KEY_ENCIPHERMENT : KU_DIGITAL_SIGNATURE;

    if (!cpath || !kpath) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": bad path", NULL);
    }
    if (scep_load_certs(&certs, cpath, &why, cmd->pool) != APR_SUCCESS
        || scep_load_key(&ra->key, strchr(keyf, ':') ? keyf : kpath, &why,
                         cmd->pool) != APR_SUCCESS) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", why, NULL);
    }
    ra->cert = sk_X509_value(certs, 0);
    warn_key_perms(cmd, strchr(keyf, ':') ? NULL : kpath);
    if (!scep_key_matches_cert(ra->key, ra->cert)) {
        return apr_psprintf(cmd->pool, "%s: key '%s' does not match the "
                            "certificate '%s'", cmd->cmd->name,
                            scep_engine_uri_shown(keyf, cmd->pool), certf);
    }
    if (EVP_PKEY_get_base_id(ra->key) != EVP_PKEY_RSA) {
        return apr_psprintf(cmd->pool, "%s: the RA key must be RSA (SCEP "
                            "encrypts to it with key transport)",
                            cmd->cmd->name);
    }
    if (!scep_cert_has_ku(ra->cert, ku)) {
        return apr_psprintf(cmd->pool, "%s: certificate '%s' lacks the %s "
                            "key usage an RA %s certificate needs",
                            cmd->cmd->name, certf,
                            enc ? "keyEncipherment" : "digitalSignature",
                            enc ? "encryption" : "signing");
    }
    if (scep_cert_seconds_left(ra->cert) <= 0) {
        return apr_psprintf(cmd->pool, "%s: certificate '%s' (%s) has "
                            "expired", cmd->cmd->name, certf,
                            scep_name_str(X509_get_subject_name(ra->cert),
                                          cmd->pool));
    }
    if (X509_cmp_current_time(X509_get0_notBefore(ra->cert)) > 0) {
        return apr_psprintf(cmd->pool, "%s: certificate '%s' is not valid "
                            "yet", cmd->cmd->name, certf);
    }
    if (cmd->info == (void *)2) {
        if (c->ra_prev == NULL) {
            c->ra_prev = apr_array_make(cmd->pool, 2, sizeof(scep_ra_t *));
        }
        APR_ARRAY_PUSH(c->ra_prev, scep_ra_t *) = ra;
    }
    else if (enc) {
        c->ra_enc = ra;
    }
    else {
        c->ra_sign = ra;
    }
    return NULL;
}

static const char *set_int_range(cmd_parms *cmd, int *slot, const char *arg,
                                 int lo, int hi);

static const char *set_tx_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    return set_int_range(cmd, &((scep_dir_conf_t *)dc)->tx_timeout, arg, 1,
                         86400);
}

static const char **provider_args(cmd_parms *cmd, int argc,
                                  char *const argv[], int plain_files);

static const char *set_provider(cmd_parms *cmd, void *dc, int argc,
                                char *const argv[])
{
    scep_dir_conf_t *c = dc;
    const scep_ca_provider_t *prov;
    const char **args;
    const char *err;

    if (argc < 1) {
        return "SCEPCAProvider: a provider name is required";
    }
    prov = ap_lookup_provider(SCEP_CA_PROVIDER_GROUP, argv[0],
                              SCEP_CA_PROVIDER_VERSION);
    if (prov == NULL) {
        return apr_psprintf(cmd->pool, "SCEPCAProvider: unknown CA provider "
                            "'%s' (built in: local, command, cmp; is the module providing "
                            "it loaded, and built for API version %s?)",
                            argv[0], SCEP_CA_PROVIDER_VERSION);
    }
    args = provider_args(cmd, argc - 1, argv + 1, 1);
    if (prov == &scep_ca_local_provider && argc > 1) {
        warn_key_perms(cmd, args[0]);
    }
    err = prov->create(&c->provider_inst, cmd->pool, argc - 1, args);
    if (err) {
        return apr_psprintf(cmd->pool, "SCEPCAProvider %s: %s", argv[0], err);
    }
    c->provider = prov;
    c->provider_name = apr_pstrdup(cmd->pool, argv[0]);
    return NULL;
}

static const char *set_validity(cmd_parms *cmd, void *dc, const char *arg)
{
    scep_dir_conf_t *c = dc;
    char *end;
    long v = strtol(arg, &end, 10);

    if (*end || v < 1 || v > 36500) {
        return "SCEPCertificateValidity: a number of days from 1 to 36500";
    }
    c->validity_days = (int)v;
    return NULL;
}

/* Make the arguments that name files relative to ServerRoot absolute:
 * an existing file, or the path after "file:". */
static const char **provider_args(cmd_parms *cmd, int argc,
                                  char *const argv[], int plain_files)
{
    const char **args = apr_pcalloc(cmd->pool, sizeof(char *) * (argc + 1));
    int i;

    for (i = 0; i < argc; i++) {
        const char *a = argv[i], *abs, *eq;
        apr_finfo_t fi;

        args[i] = a;
        if (plain_files && (eq = ap_strchr_c(a, '=')) != NULL && eq[1]
            && eq[1] != '/' && !ap_strchr_c(eq + 1, ':')
            && (abs = ap_server_root_relative(cmd->temp_pool, eq + 1))
               != NULL
            && apr_stat(&fi, abs, APR_FINFO_TYPE, cmd->temp_pool)
               == APR_SUCCESS) {
            /* keyword=FILE (cert=, key=, trusted=...) */
            args[i] = apr_pstrcat(cmd->pool,
                                  apr_pstrmemdup(cmd->temp_pool, a,
                                                 eq - a + 1),
                                  ap_server_root_relative(cmd->pool, eq + 1),
                                  NULL);
            continue;
        }
        if (!strncmp(a, "file:", 5)) {
            abs = ap_server_root_relative(cmd->pool, a + 5);
            if (abs) {
                args[i] = apr_pstrcat(cmd->pool, "file:", abs, NULL);
            }
        }
        else if (plain_files && !ap_strchr_c(a, ':')
                 && (abs = ap_server_root_relative(cmd->temp_pool, a)) != NULL
                 && apr_stat(&fi, abs, APR_FINFO_TYPE, cmd->temp_pool)
                    == APR_SUCCESS) {
            args[i] = apr_pstrdup(cmd->pool, abs);
        }
    }
    return args;
}

static APR_OPTIONAL_FN_TYPE(ap_dbd_prepare) *dbd_prepare_fn;
static APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *dbd_acquire_fn;

/* The store's statements, prepared with mod_dbd once per server. */
/* Every statement of the store, prepared for each server that uses it. */
static const scep_store_stmt_t *const all_statements[] = {
    scep_store_statements, scep_certstore_statements, NULL
};

static const char *prepare_store(cmd_parms *cmd)
{
    const scep_store_stmt_t *const *set;
    const scep_store_stmt_t *st;

    if (dbd_prepare_fn == NULL) {
        dbd_prepare_fn = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_prepare);
        dbd_acquire_fn = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    }
    if (dbd_prepare_fn == NULL || dbd_acquire_fn == NULL) {
        return apr_psprintf(cmd->pool, "%s: the SQL store needs mod_dbd: "
                            "load it first (LoadModule dbd_module ...)",
                            cmd->cmd->name);
    }
    if (apr_hash_get(global->dbd_prepared, &cmd->server, sizeof(server_rec *))) {
        return NULL;
    }
    for (set = all_statements; *set; set++) {
        for (st = *set; st->label; st++) {
            dbd_prepare_fn(cmd->server, st->sql, st->label);
        }
    }
    apr_hash_set(global->dbd_prepared,
                 apr_pmemdup(cmd->pool, &cmd->server, sizeof(server_rec *)),
                 sizeof(server_rec *), cmd->server);
    return NULL;
}

/* SCEPChallenge provider [args...] */
static const char *set_challenge(cmd_parms *cmd, void *dc, int argc,
                                 char *const argv[])
{
    scep_dir_conf_t *c = dc;
    const scep_challenge_provider_t *prov;
    const char *err;

    if (argc < 1) {
        return "SCEPChallenge: otp | static password | static file:path | "
               "none | a provider's name and arguments";
    }
    prov = ap_lookup_provider(SCEP_CHALLENGE_PROVIDER_GROUP, argv[0],
                              SCEP_CHALLENGE_PROVIDER_VERSION);
    if (prov == NULL) {
        return apr_psprintf(cmd->pool, "SCEPChallenge: unknown challenge "
                            "provider '%s' (built in: otp, static, none)",
                            argv[0]);
    }
    err = prov->create(&c->challenge_inst, cmd->pool, argc - 1,
                       provider_args(cmd, argc - 1, argv + 1, 0));
    if (err) {
        return apr_psprintf(cmd->pool, "SCEPChallenge %s: %s", argv[0], err);
    }
    c->challenge = prov;
    c->challenge_name = apr_pstrdup(cmd->pool, argv[0]);
    if (prov == &scep_challenge_otp) {
        return prepare_store(cmd);
    }
    return NULL;
}

/* SCEPProfile name key=value... */
static const char *set_profile(cmd_parms *cmd, void *dc, int argc,
                               char *const argv[])
{
    scep_dir_conf_t *c = dc;
    scep_profile_t *prof;
    const char *err;
    int i;

    if (argc < 1) {
        return "SCEPProfile: a name, then key=value settings";
    }
    if (c->profiles == NULL) {
        c->profiles = apr_hash_make(cmd->pool);
    }
    prof = apr_hash_get(c->profiles, argv[0], APR_HASH_KEY_STRING);
    if (prof == NULL) {
        prof = scep_profile_make(argv[0], cmd->pool);
        apr_hash_set(c->profiles, prof->name, APR_HASH_KEY_STRING, prof);
    }
    for (i = 1; i < argc; i++) {
        if ((err = scep_profile_set(prof, argv[i], cmd->pool)) != NULL) {
            return apr_psprintf(cmd->pool, "SCEPProfile %s: %s", argv[0],
                                err);
        }
    }
    return NULL;
}

/* SCEPSignatureTemplate / SCEPEncryptionTemplate /
 * SCEPGeneralPurposeTemplate profile-name (NDES's registry values) */
static const char *set_template(cmd_parms *cmd, void *dc, const char *arg)
{
    scep_dir_conf_t *c = dc;

    c->templates[(apr_size_t)cmd->info] = arg;
    return NULL;
}

static const char *set_crl_url(cmd_parms *cmd, void *dc, const char *arg)
{
    if (strncasecmp(arg, "http://", 7) && strncasecmp(arg, "https://", 8)
        && strncasecmp(arg, "ldap://", 7)) {
        return "SCEPCRLURL: an http://, https:// or ldap:// URL";
    }
    ((scep_dir_conf_t *)dc)->crl_url = arg;
    return NULL;
}

static const char *set_crl_validity(cmd_parms *cmd, void *dc, const char *arg)
{
    return set_int_range(cmd, &((scep_dir_conf_t *)dc)->crl_validity, arg, 1,
                         8760);
}

static const char *set_replay_window(cmd_parms *cmd, void *dc,
                                     const char *arg)
{
    return set_int_range(cmd, &((scep_dir_conf_t *)dc)->replay_window, arg, 0,
                         30 * 86400);
}

static const char *set_store(cmd_parms *cmd, void *dc, const char *arg)
{
    scep_dir_conf_t *c = dc;

    if (!strcasecmp(arg, "none")) {
        c->store = 0;
        return NULL;
    }
    if (strcasecmp(arg, "dbd")) {
        return "SCEPStore: dbd or none";
    }
    c->store = 1;
    return prepare_store(cmd);
}

static const char *set_int_range(cmd_parms *cmd, int *slot, const char *arg,
                                 int lo, int hi)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (*end || end == arg || v < lo || v > hi) {
        return apr_psprintf(cmd->pool, "%s: a number from %d to %d",
                            cmd->cmd->name, lo, hi);
    }
    *slot = (int)v;
    return NULL;
}

static const char *set_pw_length(cmd_parms *cmd, void *dc, const char *arg)
{
    return set_int_range(cmd, &((scep_dir_conf_t *)dc)->pw_length, arg, 4, 32);
}

static const char *set_pw_max(cmd_parms *cmd, void *dc, const char *arg)
{
    return set_int_range(cmd, &((scep_dir_conf_t *)dc)->pw_max, arg, 1,
                         1000000);
}

/* minutes, as NDES's PasswordValidity; "Ns" for seconds (tests) */
static const char *set_pw_validity(cmd_parms *cmd, void *dc, const char *arg)
{
    scep_dir_conf_t *c = dc;
    char *end;
    long v = strtol(arg, &end, 10);

    if (end == arg || v < 1 || (*end && strcmp(end, "s"))
        || v > (*end ? 366L * 86400 : 366L * 1440)) {
        return "SCEPPasswordValidity: minutes (1 to 527040), or seconds "
               "with an s suffix";
    }
    c->pw_validity = *end ? apr_time_from_sec(v) : apr_time_from_sec(v * 60);
    return NULL;
}

static const char *set_pw_key_file(cmd_parms *cmd, void *dc, const char *arg)
{
    scep_dir_conf_t *c = dc;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_file_t *f;
    apr_finfo_t fi;
    unsigned char *buf;
    apr_size_t n;

    if (!path || apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                               0, cmd->pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "SCEPPasswordKeyFile: cannot read "
                            "'%s'", arg);
    }
    if (apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_PROT, f)
        != APR_SUCCESS || fi.size < 16 || fi.size > 4096) {
        apr_file_close(f);
        return apr_psprintf(cmd->pool, "SCEPPasswordKeyFile: '%s' must hold "
                            "16 to 4096 bytes (e.g. openssl rand -hex 32)",
                            arg);
    }
    n = (apr_size_t)fi.size;
    buf = apr_palloc(cmd->pool, n);
    if (apr_file_read_full(f, buf, n, &n) != APR_SUCCESS) {
        apr_file_close(f);
        return apr_psprintf(cmd->pool, "SCEPPasswordKeyFile: cannot read "
                            "'%s'", arg);
    }
    apr_file_close(f);
    if (fi.protection & (APR_GREAD | APR_WREAD)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cmd->server,
                     SCEP_LOGNO(00007) "SCEPPasswordKeyFile '%s' is readable "
                     "by group or others; chmod 600 it", path);
    }
    c->pw_key = buf;
    c->pw_key_len = n;
    c->pw_key_file = path;
    return NULL;
}

static const char *set_admin_encoding(cmd_parms *cmd, void *dc,
                                      const char *arg)
{
    scep_dir_conf_t *c = dc;

    if (!strcasecmp(arg, "UTF-16LE") || !strcasecmp(arg, "UTF-16")) {
        c->admin_utf8 = 0;
    }
    else if (!strcasecmp(arg, "UTF-8")) {
        c->admin_utf8 = 1;
    }
    else {
        return "SCEPAdminEncoding: UTF-16LE (as Windows) or UTF-8";
    }
    return NULL;
}

static const char *set_admin_users(cmd_parms *cmd, void *dc, int argc,
                                   char *const argv[])
{
    scep_dir_conf_t *c = dc;
    int i;

    if (argc < 1) {
        return "SCEPAdminEnrollUsers: one or more user names";
    }
    if (c->admin_users == NULL) {
        c->admin_users = apr_array_make(cmd->pool, argc,
                                        sizeof(const char *));
    }
    for (i = 0; i < argc; i++) {
        APR_ARRAY_PUSH(c->admin_users, const char *) =
            apr_pstrdup(cmd->pool, argv[i]);
    }
    return NULL;
}

static const char *set_flag_slot_int(cmd_parms *cmd, void *dc, int flag)
{
    int *slot = (int *)((char *)dc + (apr_size_t)cmd->info);

    *slot = flag ? 1 : 0;
    return NULL;
}

static const char *set_pw_pool(cmd_parms *cmd, void *dc, const char *arg)
{
    ((scep_dir_conf_t *)dc)->pw_pool = arg;
    return NULL;
}

static const struct {
    const char *name;
    int bit;
} cipher_names[] = {
    { "AES-128", SCEP_CIPHER_AES128 }, { "AES-192", SCEP_CIPHER_AES192 },
    { "AES-256", SCEP_CIPHER_AES256 }, { "DES3", SCEP_CIPHER_DES3 },
    { "DES", SCEP_CIPHER_DES }, { NULL, 0 }
}, digest_names[] = {
    { "SHA-1", SCEP_DIGEST_SHA1 }, { "SHA-256", SCEP_DIGEST_SHA256 },
    { "SHA-384", SCEP_DIGEST_SHA384 }, { "SHA-512", SCEP_DIGEST_SHA512 },
    { NULL, 0 }
};

static const char *set_algs(cmd_parms *cmd, void *dc, int argc,
                            char *const argv[])
{
    scep_dir_conf_t *c = dc;
    int digests = cmd->info != NULL, set = 0, i, j;
    const char *known = digests ? "SHA-1 SHA-256 SHA-384 SHA-512"
                                : "AES-128 AES-192 AES-256 DES3 DES";

    if (argc < 1) {
        return apr_psprintf(cmd->pool, "%s: name at least one of %s",
                            cmd->cmd->name, known);
    }
    for (i = 0; i < argc; i++) {
        int bit = 0;
        for (j = 0; (digests ? digest_names : cipher_names)[j].name; j++) {
            if (!strcasecmp(argv[i], (digests ? digest_names
                                              : cipher_names)[j].name)) {
                bit = (digests ? digest_names : cipher_names)[j].bit;
            }
        }
        if (!bit) {
            return apr_psprintf(cmd->pool, "%s: unknown name '%s' (known: %s)",
                                cmd->cmd->name, argv[i], known);
        }
        set |= bit;
    }
    if (digests) {
        c->digests = set;
    }
    else {
        c->ciphers = set;
    }
    return NULL;
}

static const char *set_max_request(cmd_parms *cmd, void *dc, const char *arg)
{
    scep_dir_conf_t *c = dc;
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10);

    if (*end || v < 1024 || v > 16 * 1024 * 1024) {
        return "SCEPMaxRequestSize: bytes, from 1024 to 16777216";
    }
    c->max_request = (apr_off_t)v;
    return NULL;
}

static const char *set_legacy(cmd_parms *cmd, void *dc, int flag)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    global->legacy = flag;
    return NULL;
}

/* SCEPDBDConnections auto|number [wait]; auto: the smallest DBDMax */
static const char *set_dbd_connections(cmd_parms *cmd, void *dc,
                                       const char *n, const char *w)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_interval_time_t wait = DEFAULT_DBD_WAIT;
    char *end;
    apr_int64_t v;

    if (err) {
        return err;
    }
    if (!strcasecmp(n, "auto")) {
        v = SCEP_UNSET;
    }
    else {
        v = apr_strtoi64(n, &end, 10);
        if (*end || v < 1 || v > 100000) {
            return "SCEPDBDConnections: auto or a number of connections "
                   "from 1 to 100000, then optionally the longest wait "
                   "(seconds, or with ms)";
        }
    }
    if (w && (ap_timeout_parameter_parse(w, &wait, "s") != APR_SUCCESS
              || wait < 0 || wait > MAX_DBD_WAIT)) {
        return "SCEPDBDConnections: the wait is a time from 0 to 300 "
               "seconds (\"5\", \"500ms\")";
    }
    global->dbd_slots = (int)v;
    global->dbd_wait = wait;
    return NULL;
}

static const command_rec scep_cmds[] = {
    AP_INIT_TAKE1("SCEPCACertificateFile", set_ca_file, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "the issuing CA certificate, optionally followed by its chain"),
    AP_INIT_TAKE1("SCEPNextCACertificateFile", set_next_ca_file, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "the next CA certificate (GetNextCACert)"),
    AP_INIT_TAKE2("SCEPRAEncryption", set_ra, (void *)1,
                  RSRC_CONF | ACCESS_CONF,
                  "RA encryption certificate and key file"),
    AP_INIT_TAKE2("SCEPRASigning", set_ra, NULL, RSRC_CONF | ACCESS_CONF,
                  "RA signing certificate and key file"),
    AP_INIT_TAKE2("SCEPRAPreviousEncryption", set_ra, (void *)2,
                  RSRC_CONF | ACCESS_CONF,
                  "an earlier RA encryption certificate and key that still "
                  "decrypt during a rotation (repeatable)"),
    AP_INIT_TAKE1("SCEPTransactionTimeout", set_tx_timeout, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "seconds after which an undecided transaction of a request "
                  "that died is taken over by its retry"),
    AP_INIT_TAKE_ARGV("SCEPCAProvider", set_provider, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "CA backend provider name and its arguments"),
    AP_INIT_TAKE1("SCEPCertificateValidity", set_validity, NULL,
                  RSRC_CONF | ACCESS_CONF, "validity of issued certificates "
                  "in days"),
    AP_INIT_TAKE_ARGV("SCEPChallenge", set_challenge, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "otp | static password | static file:path | none"),
    AP_INIT_TAKE_ARGV("SCEPProfile", set_profile, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "a certificate profile (NDES template): name and "
                      "key=value settings"),
    AP_INIT_TAKE1("SCEPSignatureTemplate", set_template, (void *)0,
                  RSRC_CONF | ACCESS_CONF, "profile for CSRs asking for "
                  "digitalSignature only"),
    AP_INIT_TAKE1("SCEPEncryptionTemplate", set_template, (void *)1,
                  RSRC_CONF | ACCESS_CONF, "profile for CSRs asking for "
                  "keyEncipherment only"),
    AP_INIT_TAKE1("SCEPGeneralPurposeTemplate", set_template, (void *)2,
                  RSRC_CONF | ACCESS_CONF, "profile for CSRs asking for "
                  "both or neither"),
    AP_INIT_TAKE1("SCEPCRLURL", set_crl_url, NULL, RSRC_CONF | ACCESS_CONF,
                  "CRL distribution point put into issued certificates"),
    AP_INIT_TAKE1("SCEPCRLValidity", set_crl_validity, NULL,
                  RSRC_CONF | ACCESS_CONF, "hours from thisUpdate to "
                  "nextUpdate of the local CA's CRL"),
    AP_INIT_TAKE1("SCEPReplayWindow", set_replay_window, NULL,
                  RSRC_CONF | ACCESS_CONF, "seconds a senderNonce is "
                  "remembered (0: off)"),
    AP_INIT_TAKE1("SCEPStore", set_store, NULL, RSRC_CONF | ACCESS_CONF,
                  "dbd (transactions and passwords in SQL) or none"),
    AP_INIT_TAKE1("SCEPPasswordLength", set_pw_length, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "random bytes in a one-time password (NDES PasswordLength)"),
    AP_INIT_TAKE1("SCEPPasswordValidity", set_pw_validity, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "minutes a one-time password lives (NDES PasswordValidity)"),
    AP_INIT_TAKE1("SCEPPasswordMax", set_pw_max, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "unused passwords that may exist (NDES PasswordMax)"),
    AP_INIT_TAKE1("SCEPPasswordKeyFile", set_pw_key_file, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "secret key of the stored password hashes"),
    AP_INIT_TAKE1("SCEPPasswordPool", set_pw_pool, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "name of the password pool shared by an admin page and "
                  "its SCEP endpoints"),
    AP_INIT_TAKE1("SCEPAdminEncoding", set_admin_encoding, NULL,
                  RSRC_CONF | ACCESS_CONF, "UTF-16LE (default) or UTF-8"),
    AP_INIT_FLAG("SCEPAdminAllowAnonymous", set_flag_slot_int,
                 (void *)APR_OFFSETOF(scep_dir_conf_t, admin_anonymous),
                 RSRC_CONF | ACCESS_CONF,
                 "let unauthenticated users fetch passwords"),
    AP_INIT_TAKE_ARGV("SCEPAdminEnrollUsers", set_admin_users, NULL,
                      RSRC_CONF | ACCESS_CONF,
                      "authenticated users who may obtain passwords "
                      "(default: all)"),
    AP_INIT_TAKE_ARGV("SCEPCiphers", set_algs, NULL, RSRC_CONF | ACCESS_CONF,
                      "allowed content ciphers: AES-128 AES-192 AES-256 DES3 "
                      "DES"),
    AP_INIT_TAKE_ARGV("SCEPDigests", set_algs, (void *)1,
                      RSRC_CONF | ACCESS_CONF,
                      "allowed digests: SHA-1 SHA-256 SHA-384 SHA-512"),
    AP_INIT_TAKE1("SCEPMaxRequestSize", set_max_request, NULL,
                  RSRC_CONF | ACCESS_CONF, "largest SCEP request in bytes"),
    AP_INIT_TAKE12("SCEPDBDConnections", set_dbd_connections, NULL,
                   RSRC_CONF, "auto (the smallest DBDMax) or how many "
                   "mod_dbd connections the SCEP requests of one child may "
                   "hold at once, and how long one waits for a free one "
                   "before it is answered 503"),
    AP_INIT_FLAG("SCEPLegacyProvider", set_legacy, NULL, RSRC_CONF,
                 "load OpenSSL's legacy provider (single DES)"),
    AP_INIT_TAKE1("SCEPAuditLog", scep_audit_set, NULL, RSRC_CONF,
                  "file or |pipe receiving one JSON line per decision"),
    { NULL }
};

/* ---- the endpoint: derived once per process --------------------------- */

static int conf_ciphers(const scep_dir_conf_t *c)
{
    return c->ciphers == SCEP_UNSET ? DEFAULT_CIPHERS : c->ciphers;
}

static int conf_digests(const scep_dir_conf_t *c)
{
    return c->digests == SCEP_UNSET ? DEFAULT_DIGESTS : c->digests;
}

static const char *build_caps(const scep_dir_conf_t *c, apr_pool_t *p)
{
    int ci = conf_ciphers(c), di = conf_digests(c);

    /* NDES's list, AES before DES3 (certmonger takes the first it knows),
     * SHA-384 listed (strongSwan 5.9.8 uses AES only when it sees it). */
    return apr_pstrcat(p,
        c->next_ca ? "GetNextCACert\n" : "",
        "POSTPKIOperation\n",
        "Renewal\n",
        (di & SCEP_DIGEST_SHA512) ? "SHA-512\n" : "",
        (di & SCEP_DIGEST_SHA384) ? "SHA-384\n" : "",
        (di & SCEP_DIGEST_SHA256) ? "SHA-256\n" : "",
        (di & SCEP_DIGEST_SHA1) ? "SHA-1\n" : "",
        (ci & (SCEP_CIPHER_AES128 | SCEP_CIPHER_AES192 | SCEP_CIPHER_AES256))
            ? "AES\n" : "",
        (ci & SCEP_CIPHER_DES3) ? "DES3\n" : "",
        "SCEPStandard\n", NULL);
}

/* GetNextCACert: the next CA certificate(s) as a degenerate PKCS#7, signed
 * by the current RA signing key. */
static const char *build_nextca(scep_endpoint_t *ep, STACK_OF(X509) *next,
                                apr_pool_t *p)
{
    const unsigned char *inner;
    apr_size_t innerlen;
    BIO *in;
    CMS_ContentInfo *cms;
    unsigned char *buf, *q;
    int n;

    if (scep_certs_p7_encode(&inner, &innerlen, next, p) != APR_SUCCESS) {
        return "cannot encode the next CA certificate";
    }
    in = BIO_new_mem_buf(inner, (int)innerlen);
    cms = CMS_sign(ep->sign->cert, ep->sign->key, NULL, in,
                   CMS_BINARY | CMS_NOSMIMECAP);
    BIO_free(in);
    if (cms == NULL || (n = i2d_CMS_ContentInfo(cms, NULL)) <= 0) {
        CMS_ContentInfo_free(cms);
        return apr_psprintf(p, "cannot sign the next CA certificate: %s",
                            scep_ssl_errors(p));
    }
    buf = q = apr_palloc(p, n);
    i2d_CMS_ContentInfo(cms, &q);
    CMS_ContentInfo_free(cms);
    ep->nextca = buf;
    ep->nextca_len = (apr_size_t)n;
    return NULL;
}

/* Build the endpoint of a (merged) configuration.  Errors are kept in
 * ep->error: at start-up they stop httpd, at request time they are 500. */
static scep_endpoint_t *endpoint_build(const scep_dir_conf_t *c, apr_pool_t *p)
{
    scep_endpoint_t *ep = apr_pcalloc(p, sizeof(*ep));
    STACK_OF(X509) *out;
    scep_ra_t *ca_ra;
    int i, k = 0;

    if (!c->ca_chain) {
        ep->error = "SCEPCACertificateFile is not set";
        return ep;
    }
    ep->chain = c->ca_chain;
    if (!c->provider) {
        ep->error = "SCEPCAProvider is not set";
        return ep;
    }
    if (c->provider->init
        && (ep->error = c->provider->init(c->provider_inst, p, c->ca_chain))
           != NULL) {
        ep->error = apr_psprintf(p, "SCEPCAProvider %s: %s",
                                 c->provider_name, ep->error);
        return ep;
    }
    ep->enc = c->ra_enc ? c->ra_enc : c->ra_sign;
    ep->sign = c->ra_sign ? c->ra_sign : c->ra_enc;
    if (ep->enc == NULL) {
        /* No RA: the CA answers itself with its own key. */
        EVP_PKEY *key = c->provider == &scep_ca_local_provider
                        ? scep_ca_local_key(c->provider_inst) : NULL;
        if (key == NULL) {
            ep->error = "no RA certificate (SCEPRAEncryption, SCEPRASigning) "
                        "and no local CA key to act as RA";
            return ep;
        }
        ca_ra = apr_pcalloc(p, sizeof(*ca_ra));
        ca_ra->cert = sk_X509_value(c->ca_chain, 0);
        ca_ra->key = key;
        ep->enc = ep->sign = ca_ra;
    }
    else if (ep->enc == ep->sign
             && !scep_cert_has_ku(ep->enc->cert, KU_KEY_ENCIPHERMENT
                                                 | KU_DIGITAL_SIGNATURE)) {
        ep->error = "a single RA certificate serves both roles and needs "
                    "both keyEncipherment and digitalSignature (or configure "
                    "SCEPRAEncryption and SCEPRASigning)";
        return ep;
    }
    ep->recipients = apr_pcalloc(p, sizeof(scep_ra_t *)
                                    * (3 + (c->ra_prev ? c->ra_prev->nelts
                                                       : 0)));
    ep->recipients[k++] = ep->enc;
    if (ep->sign != ep->enc
        && scep_cert_has_ku(ep->sign->cert, KU_KEY_ENCIPHERMENT)) {
        ep->recipients[k++] = ep->sign;
    }
    /* RA rotation: earlier encryption keys still decrypt, the request's
     * RecipientInfo picks the key; they are not advertised any more */
    for (i = 0; c->ra_prev && i < c->ra_prev->nelts; i++) {
        ep->recipients[k++] = APR_ARRAY_IDX(c->ra_prev, i, scep_ra_t *);
    }
    ep->recipients[k] = NULL;
    ep->dctx.recipients = ep->recipients;
    ep->dctx.allowed_ciphers = conf_ciphers(c);
    ep->dctx.allowed_digests = conf_digests(c);
    if ((ep->dctx.allowed_ciphers & SCEP_CIPHER_DES) && !global->legacy) {
        ep->error = "SCEPCiphers allows DES, which needs SCEPLegacyProvider On";
        return ep;
    }
    ep->caps = build_caps(c, p);

    if (c->ra_enc == NULL && c->ra_sign == NULL) {
        ep->cacert_type = "application/x-x509-ca-cert";
        scep_cert_der(&ep->cacert, &ep->cacert_len, ep->enc->cert, p);
    }
    else {
        /* NDES order: RA encryption, RA signing, then the CA chain. */
        out = sk_X509_new_null();
        sk_X509_push(out, ep->enc->cert);
        if (ep->sign != ep->enc) {
            sk_X509_push(out, ep->sign->cert);
        }
        for (i = 0; i < sk_X509_num(c->ca_chain); i++) {
            sk_X509_push(out, sk_X509_value(c->ca_chain, i));
        }
        i = scep_certs_p7_encode(&ep->cacert, &ep->cacert_len, out, p);
        sk_X509_free(out);
        if (i != APR_SUCCESS) {
            ep->error = "cannot encode the GetCACert answer";
            return ep;
        }
        ep->cacert_type = "application/x-x509-ca-ra-cert";
    }
    if (c->next_ca) {
        ep->error = build_nextca(ep, c->next_ca, p);
    }
    return ep;
}

static const char *endpoint_key(const scep_dir_conf_t *c, apr_pool_t *p)
{
    return apr_psprintf(p, "%pp|%pp|%pp|%pp|%pp|%pp|%pp|%d|%d", c->ca_chain,
                        c->next_ca, c->ra_enc, c->ra_sign, c->ra_prev,
                        c->provider, c->provider_inst, conf_ciphers(c),
                        conf_digests(c));
}

/* The endpoint of a merged configuration: built at start-up for every
 * section that names a CA, or else on first use in this process. */
static scep_endpoint_t *endpoint_get(const scep_dir_conf_t *c, apr_pool_t *tp)
{
    const char *key = endpoint_key(c, tp);
    scep_endpoint_t *ep;

    if (global->mutex) {
        apr_thread_mutex_lock(global->mutex);
    }
    ep = apr_hash_get(global->endpoints, key, APR_HASH_KEY_STRING);
    if (ep == NULL) {
        ep = endpoint_build(c, global->pool);
        apr_hash_set(global->endpoints, apr_pstrdup(global->pool, key),
                     APR_HASH_KEY_STRING, ep);
    }
    if (global->mutex) {
        apr_thread_mutex_unlock(global->mutex);
    }
    return ep;
}

/* ---- database connections: a bounded wait ------------------------------ */

/* mod_dbd lends a child at most DBDMax connections and makes the next
 * request wait for one with no time limit (apr_reslist_acquire without a
 * timeout): a burst of enrollments, or one slow CA holding its connection,
 * would park every worker thread, for good if the database hangs.  So a
 * SCEP request first takes one of the child's SCEPDBDConnections slots,
 * waiting at most its wait, and only then asks mod_dbd: with no more slots
 * than DBDMax, mod_dbd never has to make it wait.  A slot is held until
 * the request's pool goes, after mod_dbd has taken its connection back
 * (cleanups run in reverse order of registration). */
typedef struct {
    scep_queue_t *queue;              /* NULL: no limit in this process */
    int max;
    apr_interval_time_t wait;
} dbd_slots_t;

static dbd_slots_t slots;             /* this child's */

static apr_status_t slot_release(void *d)
{
    scep_queue_give(slots.queue);
    return APR_SUCCESS;
}

/* 1: a slot is the request's until its pool is cleared; 0: none came to
 * it within the wait.  Waiters are served in the order they came
 * (scep_queue.h). */
static int slot_take(request_rec *r)
{
    if (slots.queue == NULL) {
        return 1;
    }
    if (!scep_queue_take(slots.queue, slots.wait)) {
        return 0;
    }
    apr_pool_cleanup_register(r->pool, NULL, slot_release,
                              apr_pool_cleanup_null);
    return 1;
}

/* What the configuration says of mod_dbd's pools, for "auto": the
 * smallest DBDMax anywhere (0: none set), and whether any DBDPersist says
 * Off or On.  One count of slots serves the whole child, every virtual
 * host: the smallest pool is the one that must not be overrun. */
typedef struct {
    int nmax;
    int persist_off;
    int persist_on;
} dbd_seen_t;

static void dbd_conf_scan(const ap_directive_t *d, dbd_seen_t *seen)
{
    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "DBDMax") && d->args) {
            int v = atoi(d->args);
            if (v > 0 && (seen->nmax == 0 || v < seen->nmax)) {
                seen->nmax = v;
            }
        }
        else if (!strcasecmp(d->directive, "DBDPersist") && d->args) {
            if (!strcasecmp(d->args, "off") || !strcmp(d->args, "0")) {
                seen->persist_off = 1;
            }
            else {
                seen->persist_on = 1;
            }
        }
        if (d->first_child) {
            dbd_conf_scan(d->first_child, seen);
        }
    }
}

/* post_config: "auto" made a number, and a word where the setting cannot
 * work.  Without any pool (DBDPersist Off everywhere) mod_dbd never makes
 * a request wait, and auto sets no limit. */
static void dbd_slots_config(server_rec *s)
{
    dbd_seen_t seen = { 0, 0, 0 };
    int nmax, pooled;

    dbd_conf_scan(ap_conftree, &seen);
    nmax = seen.nmax ? seen.nmax : DBD_DEFAULT_NMAX;
    pooled = !seen.persist_off || seen.persist_on;
    if (global->dbd_slots == SCEP_UNSET) {
        global->dbd_slots = pooled ? nmax : 0;
    }
    else if (pooled && global->dbd_slots > nmax) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, SCEP_LOGNO(00104)
                     "SCEPDBDConnections %d is more than DBDMax %d: when "
                     "the SCEP requests of a child hold all of mod_dbd's "
                     "connections, the next one waits for mod_dbd without "
                     "a time limit; set SCEPDBDConnections to DBDMax or less "
                     "(or auto)", global->dbd_slots, nmax);
    }
    if (global->dbd_wait < 0) {
        global->dbd_wait = DEFAULT_DBD_WAIT;
    }
}

static void dbd_slots_child_init(apr_pool_t *pchild, server_rec *s)
{
    memset(&slots, 0, sizeof(slots));
    if (global == NULL || global->dbd_slots < 1) {
        return;
    }
    if (scep_queue_create(&slots.queue, global->dbd_slots, pchild)
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, SCEP_LOGNO(00105)
                     "cannot create the lock of SCEPDBDConnections: "
                     "requests wait for mod_dbd without a time limit");
        slots.queue = NULL;
        return;
    }
    slots.max = global->dbd_slots;
    slots.wait = global->dbd_wait;
}

/* ---- start-up --------------------------------------------------------- */

static apr_status_t global_cleanup(void *d)
{
    global = NULL;
    return APR_SUCCESS;
}

static int scep_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp)
{
    global = apr_pcalloc(pconf, sizeof(*global));
    global->pool = pconf;
    global->endpoints = apr_hash_make(pconf);
    global->dbd_prepared = apr_hash_make(pconf);
    global->dbd_slots = SCEP_UNSET;
    global->dbd_wait = -1;
    store_mutex = NULL;
    /* APR's default (on Linux a robust, priority-inheriting pthread mutex):
     * fair, so the p99 stays low; fcntl and sysvsem give ~7 % more
     * throughput at twice the p99 (docs/performance.md, docs/store.md) */
    ap_mutex_register(pconf, STORE_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
    scep_audit_reset();
    apr_pool_cleanup_register(pconf, NULL, global_cleanup,
                              apr_pool_cleanup_null);
    return OK;
}

static void warn_expiry(server_rec *s, X509 *cert, const char *what,
                        apr_pool_t *p)
{
    long long left = scep_cert_seconds_left(cert);

    if (left < RA_WARN_SECONDS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, SCEP_LOGNO(00002)
                     "%s %s expires in %" APR_INT64_T_FMT " days (%s): renew it before "
                     "clients stop enrolling", what,
                     scep_name_str(X509_get_subject_name(cert), p),
                     (apr_int64_t)(left / 86400), ASN1_STRING_get0_data(
                         (ASN1_STRING *)X509_get0_notAfter(cert)));
    }
}

/* Can the store of server @a s be used: driver, connection, schema?  Done
 * at start-up on a connection of our own with mod_dbd's DBDriver and
 * DBDParams, so that a missing table stops "apachectl configtest". */
static const char *check_store(server_rec *s, apr_pool_t *p)
{
    module *m = ap_find_linked_module("mod_dbd.c");
    dbd_cfg_t **svr;   /* mod_dbd's server config starts with its dbd_cfg_t */
    const apr_dbd_driver_t *drv = NULL;
    apr_dbd_t *h = NULL;
    const char *err = NULL, *why = NULL;
    const scep_store_stmt_t *const *set;
    const scep_store_stmt_t *st;
    scep_db_t db;

    if (m == NULL) {
        return "mod_dbd is not loaded (LoadModule dbd_module ...)";
    }
    svr = ap_get_module_config(s->module_config, m);
    if (!svr || !*svr || !(*svr)->name || (*svr)->name[0] == '[') {
        return "no DBDriver is configured for this server (DBDriver sqlite3, "
               "DBDParams /path/scep.db)";
    }
    if (!strcmp((*svr)->name, "sqlite3") && (*svr)->params) {
        /* opening would create an empty file (as root, at configtest) */
        apr_finfo_t fi;
        if (apr_stat(&fi, (*svr)->params, APR_FINFO_TYPE, p) != APR_SUCCESS) {
            return apr_psprintf(p, "the SQLite database %s does not exist: "
                                "create it with sqlite3 %s < "
                                "conf/schema-sqlite3.sql and give it to the "
                                "httpd user", (*svr)->params,
                                (*svr)->params);
        }
    }
    apr_dbd_init(p);
    if (apr_dbd_get_driver(p, (*svr)->name, &drv) != APR_SUCCESS) {
        return apr_psprintf(p, "cannot load the apr_dbd driver '%s' (Debian: "
                            "libaprutil1-dbd-%s)", (*svr)->name, (*svr)->name);
    }
    if (apr_dbd_open_ex(drv, p, (*svr)->params, &h, &err) != APR_SUCCESS
        || h == NULL) {
        return apr_psprintf(p, "cannot connect to the %s database: %s",
                            (*svr)->name, err ? err : "no reason given");
    }
    db.driver = drv;
    db.handle = h;
    db.prepared = apr_hash_make(p);
    for (set = all_statements; *set && !why; set++) {
        for (st = *set; st->label && !why; st++) {
            apr_dbd_prepared_t *ps = NULL;
            int rc = apr_dbd_prepare(drv, p, h, st->sql, st->label, &ps);
            if (rc != 0) {
                why = apr_psprintf(p, "statement %s does not prepare: %s (is "
                                   "conf/schema-%s.sql loaded?)", st->label,
                                   apr_dbd_error(drv, h, rc), (*svr)->name);
            }
            apr_hash_set(db.prepared, st->label, APR_HASH_KEY_STRING, ps);
        }
    }
    if (!why) {
        scep_store_check(&db, &why, p);
    }
    apr_dbd_close(drv, h);
    return why;
}

static int check_endpoint(server_rec *s, const char *where,
                          const scep_dir_conf_t *c, apr_pool_t *ptemp)
{
    scep_endpoint_t *ep = endpoint_get(c, ptemp);
    int k;

    if (ep->error) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SCEP_LOGNO(00005)
                     "SCEP endpoint <%s>: %s", where, ep->error);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (k = 0; k < SCEP_PURPOSE_COUNT; k++) {
        const char *t = c->templates[k];
        if (t && strcmp(t, "IPSECIntermediateOffline")
            && !(c->profiles
                 && apr_hash_get(c->profiles, t, APR_HASH_KEY_STRING))) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SCEP_LOGNO(00025)
                         "SCEP endpoint <%s>: template profile '%s' is not "
                         "defined (SCEPProfile %s ...)", where, t, t);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (c->challenge == &scep_challenge_none) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, SCEP_LOGNO(00006)
                     "SCEP endpoint <%s>: SCEPChallenge none: anyone who can "
                     "reach it gets a certificate", where);
    }
    else if (c->challenge == NULL) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, SCEP_LOGNO(00008)
                     "SCEP endpoint <%s>: no SCEPChallenge: every enrollment "
                     "is refused", where);
    }
    warn_expiry(s, ep->enc->cert, "RA certificate", ptemp);
    if (ep->sign != ep->enc) {
        warn_expiry(s, ep->sign->cert, "RA certificate", ptemp);
    }
    warn_expiry(s, sk_X509_value(c->ca_chain, 0), "CA certificate", ptemp);
    return OK;
}

/* Check every section that configures an endpoint (a CA provider or RA
 * certificates), merged with its server's defaults as a request would see
 * it, and prepare the endpoints (built once here, before the children are
 * forked).  SetHandler's value cannot be read from a module, hence "what it
 * configures" rather than "what handler it sets". */
static int check_sections(apr_pool_t *ptemp, server_rec *s)
{
    server_rec *vs;
    int i, k, rc;

    for (vs = s; vs; vs = vs->next) {
        core_server_config *sc = ap_get_core_module_config(vs->module_config);
        apr_array_header_t *lists[3];

        lists[0] = sc->sec_url;
        lists[1] = sc->sec_dir;
        lists[2] = NULL;   /* the server's own defaults */
        for (k = 0; k < 3; k++) {
            int n = lists[k] ? lists[k]->nelts : 1;
            for (i = 0; i < n; i++) {
                ap_conf_vector_t *sec = lists[k]
                    ? ((ap_conf_vector_t **)lists[k]->elts)[i] : NULL;
                core_dir_config *cd = sec ? ap_get_core_module_config(sec)
                                          : NULL;
                const char *where = cd && cd->d ? cd->d : "server config";
                ap_conf_vector_t *merged = sec
                    ? ap_merge_per_dir_configs(ptemp, vs->lookup_defaults,
                                               sec)
                    : vs->lookup_defaults;
                scep_dir_conf_t *c = ap_get_module_config(merged,
                                                          &scep_module);

                if (c == NULL) {
                    continue;
                }
                if (c->ca_chain && (c->provider || c->ra_enc || c->ra_sign)
                    && (rc = check_endpoint(vs, where, c, ptemp)) != OK) {
                    return rc;
                }
                if (c->challenge == &scep_challenge_otp && c->store == 0) {
                    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs,
                                 SCEP_LOGNO(00030) "SCEPChallenge otp in <%s> "
                                 "keeps its passwords in the SQL store, which "
                                 "SCEPStore none turns off", where);
                    return HTTP_INTERNAL_SERVER_ERROR;
                }
                if (c->challenge == &scep_challenge_otp && c->pw_key == NULL) {
                    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs,
                                 SCEP_LOGNO(00009) "SCEPChallenge otp in <%s> "
                                 "needs SCEPPasswordKeyFile (a secret file: "
                                 "openssl rand -hex 32 > key; chmod 600 key)",
                                 where);
                    return HTTP_INTERNAL_SERVER_ERROR;
                }
            }
        }
    }
    return OK;
}

/* The store of every server that uses it. */
static int check_stores(apr_pool_t *ptemp, server_rec *s)
{
    apr_hash_t *checked = apr_hash_make(ptemp);
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        const char *why;
        if (!apr_hash_get(global->dbd_prepared, &vs, sizeof(server_rec *))
            || apr_hash_get(checked, &vs, sizeof(server_rec *))) {
            continue;
        }
        apr_hash_set(checked, apr_pmemdup(ptemp, &vs, sizeof(vs)),
                     sizeof(server_rec *), vs);
        if ((why = check_store(vs, ptemp)) != NULL) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs, SCEP_LOGNO(00100)
                         "SCEP store: %s", why);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

static int load_openssl_providers(server_rec *s, apr_pool_t *ptemp)
{
    static OSSL_PROVIDER *legacy, *deflt;

    if (global->legacy && !legacy) {
        /* Loading one provider turns off the implicit default: load both. */
        deflt = OSSL_PROVIDER_load(NULL, "default");
        legacy = OSSL_PROVIDER_load(NULL, "legacy");
        if (!legacy || !deflt) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SCEP_LOGNO(00003)
                         "SCEPLegacyProvider On: cannot load OpenSSL's legacy "
                         "provider: %s", scep_ssl_errors(ptemp));
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

/* apachectl configtest (-t) stops before post_config: check there too. */
static void scep_test_config(apr_pool_t *pconf, server_rec *s)
{
    apr_pool_t *ptemp;
    int rc;

    apr_pool_create(&ptemp, pconf);
    rc = load_openssl_providers(s, ptemp);
    if (rc == OK) {
        rc = check_sections(ptemp, s);
    }
    if (rc == OK) {
        rc = check_stores(ptemp, s);
    }
    apr_pool_destroy(ptemp);
    if (rc != OK) {
        /* test_config has no way to fail but to stop: say it like -t does */
        fprintf(stderr, "mod_scep: configuration check failed, see the "
                "error log\n");
        exit(1);
    }
}

static int scep_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                            apr_pool_t *ptemp, server_rec *s)
{
    int rc = load_openssl_providers(s, ptemp);

    if (rc != OK) {
        return rc;
    }
    if (apr_thread_mutex_create(&global->mutex, APR_THREAD_MUTEX_DEFAULT,
                                pconf) != APR_SUCCESS) {
        global->mutex = NULL;
    }
    scep_metrics_init(pconf, s);
    dbd_slots_config(s);
    /* the SQLite writers of all children queue on one lock (scep_store.c) */
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG
        && ap_global_mutex_create(&store_mutex, NULL, STORE_MUTEX, NULL, s,
                                  pconf, 0) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, SCEP_LOGNO(00192)
                     "cannot create the SQL store's lock (Mutex %s): SQLite "
                     "writes are not grouped", STORE_MUTEX);
        store_mutex = NULL;
    }
    if (scep_audit_open(pconf, s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rc = check_sections(ptemp, s);
    return rc == OK ? check_stores(ptemp, s) : rc;
}

/* ---- the handler ------------------------------------------------------ */

/* HTTP error with a one-line reason, logged with which rule refused. */
int scep_glue_refuse(request_rec *r, int status, const char *why)
{
    scep_glue_db_commit(r);
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, SCEP_LOGNO(00010)
                  "refused with HTTP %d: %s", status, why);
    scep_audit(r, NULL, apr_psprintf(r->pool, "http_%d", status), -1,
               "http", why);
    r->status = status;
    if (status == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    ap_set_content_type(r, "text/plain; charset=utf-8");
    ap_rprintf(r, "%s\n", why);
    return OK;
}

static const char *query_arg(request_rec *r, const char *name)
{
    char *args, *tok, *last = NULL;
    size_t nlen = strlen(name);

    if (!r->args) {
        return NULL;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (tok = apr_strtok(args, "&", &last); tok;
         tok = apr_strtok(NULL, "&", &last)) {
        if (!strncasecmp(tok, name, nlen) && tok[nlen] == '=') {
            char *v = tok + nlen + 1;
            /* '+' stays '+': it is base64 far more often than a space;
             * %2F is fine here (ap_unescape_url would refuse it) */
            char *raw = apr_pstrdup(r->pool, v);
            /* badly escaped: hand on as it came, decoding then says why */
            return ap_unescape_all(v) == OK ? v : raw;
        }
        if (!strcasecmp(tok, name)) {
            return "";
        }
    }
    return NULL;
}

/* The whole answer, flushed: without the flush the core output filter
 * keeps a short answer back until httpd has looked for a pipelined next
 * request, which a keep-alive client cannot have sent yet, so every
 * request took a trip through the event MPM's listener (two epoll_ctl and
 * a worker hand-over) before its answer left.  A static file of the same
 * size goes out at once; now so does this. */
static int send_body(request_rec *r, const char *type,
                     const void *data, apr_size_t len)
{
    ap_set_content_type(r, type);
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only) {
        ap_rwrite(data, (int)len, r);
    }
    ap_rflush(r);
    return OK;
}

static int send_info_page(request_rec *r)
{
    static const char page[] =
        "<!DOCTYPE html>\n<html>\n<head>\n"
        "<meta http-equiv=\"Content-Type\" content=\"text/html; "
        "charset=utf-8\">\n"
        "<title>Network Device Enrollment Service</title>\n</head>\n"
        "<body>\n<h1>Network Device Enrollment Service</h1>\n"
        "<p>Network Device Enrollment Service allows you to obtain "
        "certificates for routers or other network devices using the "
        "Simple Certificate Enrollment Protocol (SCEP).</p>\n"
        "<p>This URL is used by network devices to submit certificate "
        "requests.</p>\n"
        "<p>To obtain an enrollment challenge password, go to the admin URL. "
        "By default, the admin URL is "
        "<a href=\"/certsrv/mscep_admin/\">/certsrv/mscep_admin/</a>.</p>\n"
        "<p>For more information see the mod_scep documentation.</p>\n"
        "</body>\n</html>\n";

    return send_body(r, "text/html; charset=utf-8", page, sizeof(page) - 1);
}

int scep_glue_read_body(request_rec *r, apr_off_t limit,
                        unsigned char **out, apr_size_t *outlen,
                        const char **why)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_size_t cap = 8192, n = 0;
    unsigned char *buf;
    long got;
    int rc;

    *why = NULL;
    if (cl) {
        char *end;
        apr_off_t v;
        if (apr_strtoff(&v, cl, &end, 10) != APR_SUCCESS || *end || v < 0) {
            *why = "bad Content-Length";
            return HTTP_BAD_REQUEST;
        }
        if (v > limit) {
            *why = apr_psprintf(r->pool, "request body of %" APR_OFF_T_FMT
                                " bytes exceeds SCEPMaxRequestSize %"
                                APR_OFF_T_FMT, v, limit);
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
        if (v > 0) {
            cap = (apr_size_t)v + 1;
        }
    }
    if ((rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK)) != OK) {
        *why = "cannot read the request body";
        return rc;
    }
    buf = apr_palloc(r->pool, cap);
    if (ap_should_client_block(r)) {
        for (;;) {
            if (n == cap) {
                unsigned char *nb = apr_palloc(r->pool, cap * 2);
                memcpy(nb, buf, n);
                buf = nb;
                cap *= 2;
            }
            got = ap_get_client_block(r, (char *)buf + n, cap - n);
            if (got == 0) {
                break;
            }
            if (got < 0) {
                *why = "error reading the request body";
                return HTTP_BAD_REQUEST;
            }
            n += (apr_size_t)got;
            if ((apr_off_t)n > limit) {
                *why = apr_psprintf(r->pool, "request body exceeds "
                                    "SCEPMaxRequestSize %" APR_OFF_T_FMT,
                                    limit);
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
        }
    }
    if (n == cap) {
        unsigned char *nb = apr_palloc(r->pool, cap + 1);
        memcpy(nb, buf, n);
        buf = nb;
    }
    *out = buf;     /* one byte of room after the body, for a NUL */
    *outlen = n;
    return OK;
}

static int op_of(int message_type)
{
    switch (message_type) {
    case SCEP_MT_PKCSREQ:    return SCEP_OP_PKCSREQ;
    case SCEP_MT_RENEWALREQ: return SCEP_OP_RENEWALREQ;
    case SCEP_MT_CERTPOLL:   return SCEP_OP_CERTPOLL;
    case SCEP_MT_GETCERT:    return SCEP_OP_GETCERT;
    case SCEP_MT_GETCRL:     return SCEP_OP_GETCRL;
    default:                 return SCEP_OP_OTHER;
    }
}

/* Encode, count and send a CertRep answering @a msg. */
static int send_certrep(scep_req_ctx_t *rc, const scep_msg_t *msg,
                        scep_certrep_t *rep)
{
    request_rec *r = rc->r;
    const unsigned char *der;
    apr_size_t len;
    const char *why = NULL;

    rep->transaction_id = msg->transaction_id;
    rep->recipient_nonce = msg->has_sender_nonce ? msg->sender_nonce : NULL;
    rep->encrypt_to = msg->signer;
    rep->cipher_nid = msg->cipher_nid;
    rep->signer_cert = rc->ep->sign->cert;
    rep->signer_key = rc->ep->sign->key;
    /* answer with the request's digest when it is one we allow */
    rep->digest_nid = (msg->digest & rc->ep->dctx.allowed_digests)
                      ? msg->digest_nid : NID_sha256;
    scep_metrics_note(r, op_of(msg->message_type),
                      rep->pki_status == SCEP_STATUS_SUCCESS ? SCEP_OUT_SUCCESS
                      : rep->pki_status == SCEP_STATUS_PENDING
                        ? SCEP_OUT_PENDING : SCEP_OUT_FAILURE,
                      rep->fail_info, msg->cipher, msg->digest);
    if (scep_certrep_encode(&der, &len, rep, &why, r->pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00011)
                      "cannot encode the CertRep for transaction %s: %s",
                      msg->transaction_id, why);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return send_body(r, "application/x-pki-message", der, len);
}

int scep_glue_certrep(scep_req_ctx_t *rc, const scep_msg_t *msg,
                      int status, int fail_info, STACK_OF(X509) *certs)
{
    scep_certrep_t rep;

    /* what this answer reports is written before it is sent */
    scep_glue_db_commit(rc->r);
    memset(&rep, 0, sizeof(rep));
    rep.pki_status = status;
    rep.fail_info = fail_info;
    rep.certs = certs;
    return send_certrep(rc, msg, &rep);
}

int scep_glue_certrep_crl(scep_req_ctx_t *rc, const scep_msg_t *msg,
                          const unsigned char *der, apr_size_t len)
{
    scep_certrep_t rep;

    memset(&rep, 0, sizeof(rep));
    rep.pki_status = SCEP_STATUS_SUCCESS;
    rep.crl_der = der;
    rep.crl_len = len;
    return send_certrep(rc, msg, &rep);
}

int scep_glue_failure(scep_req_ctx_t *rc, const scep_msg_t *msg,
                        int fail_info, const char *rule, const char *why)
{
    scep_audit(rc->r, msg, "refused", fail_info, rule, why);
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, rc->r, SCEP_LOGNO(00012)
                  "%s refused (%s), transaction %s, %s: %s",
                  scep_msg_type_name(msg->message_type),
                  scep_fail_name(fail_info),
                  msg->transaction_id ? msg->transaction_id : "-", rule, why);
    return scep_glue_certrep(rc, msg, SCEP_STATUS_FAILURE, fail_info, NULL);
}

/* ---- the store and challenge glue ----------------------------------- */

scep_challenge_settings_t *scep_glue_settings(const scep_dir_conf_t *c,
                                              apr_pool_t *p)
{
    scep_challenge_settings_t *st = apr_pcalloc(p, sizeof(*st));

    st->length = c->pw_length == SCEP_UNSET ? SCEP_DEFAULT_PW_LENGTH
                                            : c->pw_length;
    st->validity = c->pw_validity == SCEP_UNSET ? SCEP_DEFAULT_PW_VALIDITY
                                                : c->pw_validity;
    st->max = c->pw_max == SCEP_UNSET ? SCEP_DEFAULT_PW_MAX : c->pw_max;
    st->key = c->pw_key;
    st->key_len = c->pw_key_len;
    st->endpoint = c->pw_pool ? c->pw_pool : SCEP_DEFAULT_PW_POOL;
    return st;
}

int scep_glue_store_on(const scep_dir_conf_t *c)
{
    return c->store == 1
           || (c->store == SCEP_UNSET && c->challenge == &scep_challenge_otp);
}

void scep_glue_db_refused(request_rec *r)
{
    const char *busy = apr_table_get(r->notes, "scep-db-busy");

    apr_table_setn(r->err_headers_out, "Retry-After", busy ? "10" : "30");
}

scep_db_t *scep_glue_db(void *baton)
{
    request_rec *r = baton;
    scep_db_t *db = ap_get_module_config(r->request_config, &scep_module);
    ap_dbd_t *d;

    if (db) {
        return db->handle ? db : NULL;
    }
    db = apr_pcalloc(r->pool, sizeof(*db));
    ap_set_module_config(r->request_config, &scep_module, db);
    if (!slot_take(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00106)
                      "database connection pool exhausted: the %d "
                      "connection(s) this child may use "
                      "(SCEPDBDConnections) are all in use and none came "
                      "free within %" APR_TIME_T_FMT " ms; answering 503 "
                      "(see docs/farm.md, \"Sizing the database "
                      "connections\")", slots.max,
                      (apr_time_t)apr_time_as_msec(slots.wait));
        apr_table_setn(r->notes, "scep-db-busy", "1");
        scep_metrics_count(SCEP_CTR_DB_BUSY);
        scep_glue_db_refused(r);
        return NULL;
    }
    d = dbd_acquire_fn ? dbd_acquire_fn(r) : NULL;
    if (d == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00101)
                      "no database connection from mod_dbd: the database "
                      "refused it or cannot be reached (mod_dbd logs why "
                      "just before: PostgreSQL's \"too many clients "
                      "already\" means max_connections is full); is the "
                      "database up, are DBDriver/DBDParams right and the "
                      "schema (conf/schema-*.sql) loaded?");
        scep_metrics_count(SCEP_CTR_DB_REFUSED);
        scep_glue_db_refused(r);
        return NULL;
    }
    db->driver = d->driver;
    db->handle = d->handle;
    db->prepared = d->prepared;
    return db;
}

/* Commit the request's open group of statements, if any (see
 * scep_store_begin): before an answer goes out, never while a slow client
 * reads it. */
static apr_status_t db_commit(request_rec *r, int durable)
{
    scep_db_t *db = ap_get_module_config(r->request_config, &scep_module);
    const char *why = NULL;
    apr_status_t rv;

    if (db == NULL || !db->grouped) {
        return APR_SUCCESS;
    }
    rv = durable ? scep_store_commit(db, &why, r->pool)
                 : scep_store_publish(db, &why, r->pool);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00190)
                      "SQL store: the request's writes are not on disk: %s",
                      why ? why : "-");
    }
    return rv;
}

apr_status_t scep_glue_db_commit(request_rec *r)
{
    return db_commit(r, 1);
}

/* Commit the open group for every other connection to see, without
 * waiting for the disk (scep_store_publish): only where no answer goes out
 * before the request's next durable commit. */
apr_status_t scep_glue_db_publish(request_rec *r)
{
    return db_commit(r, 0);
}

static int handle_pkioperation(scep_req_ctx_t *rc, int is_post)
{
    request_rec *r = rc->r;
    apr_off_t limit = rc->conf->max_request == SCEP_UNSET
                      ? DEFAULT_MAX_REQUEST : rc->conf->max_request;
    unsigned char *der = NULL;
    apr_size_t len = 0;
    const char *why = NULL;
    scep_msg_t *msg;
    scep_decode_result_t res;
    int st;

    if (is_post) {
        st = scep_glue_read_body(r, limit, &der, &len, &why);
        if (st != OK) {
            return scep_glue_refuse(r, st, why);
        }
    }
    else {
        const char *m = query_arg(r, "message");
        apr_size_t mlen;
        if (m == NULL || !*m) {
            return scep_glue_refuse(r, HTTP_BAD_REQUEST,
                               "PKIOperation: the message parameter is missing");
        }
        mlen = strlen(m);
        if ((apr_off_t)(mlen / 4 * 3) > limit) {
            return scep_glue_refuse(r, HTTP_REQUEST_ENTITY_TOO_LARGE,
                               apr_psprintf(r->pool, "PKIOperation message "
                                            "exceeds SCEPMaxRequestSize %"
                                            APR_OFF_T_FMT, limit));
        }
        if (scep_base64_decode(&der, &len, m, mlen, r->pool) != APR_SUCCESS) {
            return scep_glue_refuse(r, HTTP_BAD_REQUEST,
                               "PKIOperation: the message parameter is not "
                               "base64");
        }
    }
    if (len == 0) {
        return scep_glue_refuse(r, HTTP_BAD_REQUEST, "PKIOperation: empty message");
    }
    if (scep_msg_decode(&msg, &res, &rc->ep->dctx, der, len, r->pool)
        != APR_SUCCESS) {
        return scep_glue_refuse(r, HTTP_BAD_REQUEST,
                           apr_pstrcat(r->pool, "PKIOperation: cannot decode "
                                       "the pkiMessage: ", res.why, NULL));
    }
    if (res.fail_info != SCEP_FAIL_NONE) {
        return scep_glue_failure(rc, msg, res.fail_info, "decode", res.why);
    }
    switch (msg->message_type) {
    case SCEP_MT_PKCSREQ:
    case SCEP_MT_RENEWALREQ:
        return scep_enroll_pkcsreq(rc, msg);
    case SCEP_MT_CERTPOLL:
        return scep_enroll_certpoll(rc, msg);
    case SCEP_MT_GETCERT:
        return scep_certs_getcert(rc, msg);
    case SCEP_MT_GETCRL:
        return scep_certs_getcrl(rc, msg);
    default:
        return scep_glue_failure(rc, msg, SCEP_FAIL_BADREQUEST, "message-type",
                            msg->message_type >= 0
                            ? apr_psprintf(r->pool, "unknown or unregistered "
                                           "messageType %d",
                                           msg->message_type)
                            : apr_psprintf(r->pool, "unknown or unregistered "
                                           "messageType \"%s\" (not a "
                                           "number)", ap_escape_logitem(
                                               r->pool, msg->message_type_raw
                                               ? msg->message_type_raw
                                               : "")));
    }
}

/* One request to the SCEP endpoint; *opn says which operation it was. */
static int scep_handle(request_rec *r, int *opn)
{
    scep_req_ctx_t rc;
    const char *op;
    int is_post;

    r->allowed |= (AP_METHOD_BIT << M_GET) | (AP_METHOD_BIT << M_POST);
    if (r->method_number != M_GET && r->method_number != M_POST) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    is_post = r->method_number == M_POST;

    rc.r = r;
    rc.conf = ap_get_module_config(r->per_dir_config, &scep_module);
    rc.ep = endpoint_get(rc.conf, r->pool);
    if (rc.ep->error) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEP_LOGNO(00020)
                      "SCEP endpoint not usable: %s", rc.ep->error);
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    op = query_arg(r, "operation");
    if (op == NULL) {
        *opn = SCEP_OP_INFO;
        if (is_post) {
            return scep_glue_refuse(r, HTTP_BAD_REQUEST,
                               "POST without operation=PKIOperation");
        }
        return send_info_page(r);
    }
    if (!strcasecmp(op, "PKIOperation")) {
        *opn = SCEP_OP_OTHER;   /* until the message type is known */
        return handle_pkioperation(&rc, is_post);
    }
    if (is_post) {
        return scep_glue_refuse(r, HTTP_BAD_REQUEST,
                           apr_psprintf(r->pool, "operation %s is not a POST",
                                        ap_escape_logitem(r->pool, op)));
    }
    if (!strcasecmp(op, "GetCACaps")) {
        *opn = SCEP_OP_GETCACAPS;
        return send_body(r, "text/plain", rc.ep->caps, strlen(rc.ep->caps));
    }
    if (!strcasecmp(op, "GetCACert")) {
        *opn = SCEP_OP_GETCACERT;
        return send_body(r, rc.ep->cacert_type, rc.ep->cacert,
                         rc.ep->cacert_len);
    }
    if (!strcasecmp(op, "GetNextCACert")) {
        *opn = SCEP_OP_GETNEXTCACERT;
        if (!rc.ep->nextca) {
            return scep_glue_refuse(r, HTTP_BAD_REQUEST, "GetNextCACert: no next "
                               "CA certificate is configured "
                               "(SCEPNextCACertificateFile)");
        }
        return send_body(r, "application/x-x509-next-ca-cert", rc.ep->nextca,
                         rc.ep->nextca_len);
    }
    return scep_glue_refuse(r, HTTP_BAD_REQUEST,
                       apr_psprintf(r->pool, "unknown operation '%s'",
                                    ap_escape_logitem(r->pool, op)));
}

static int scep_handler(request_rec *r)
{
    apr_time_t start = apr_time_now();
    int op = SCEP_OP_OTHER, rc;

    if (!r->handler || strcmp(r->handler, "scep")) {
        return DECLINED;
    }
    rc = scep_handle(r, &op);
    scep_metrics_done(r, op, rc, start);
    return rc;
}

scep_endpoint_t *scep_glue_endpoint(const scep_dir_conf_t *c, apr_pool_t *p)
{
    return endpoint_get(c, p);
}

static apr_status_t child_exiting(void *d)
{
    scep_pki_process_exiting();
    return APR_SUCCESS;
}

/* A child tears its pools down on the way out; from then on our cleanups
 * leave OpenSSL alone (see scep_pki_process_exiting). */
static void scep_child_init(apr_pool_t *pchild, server_rec *s)
{
    const char *why;

    if (store_mutex != NULL
        && apr_global_mutex_child_init(&store_mutex,
                                       apr_global_mutex_lockfile(store_mutex),
                                       pchild) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, SCEP_LOGNO(00191)
                     "cannot attach to the SQL store's lock (Mutex %s): "
                     "SQLite writes are not grouped in this process",
                     STORE_MUTEX);
        store_mutex = NULL;
    }
    scep_store_child_init(store_mutex);
    dbd_slots_child_init(pchild, s);
    /* requests are parsed in a library context of their own (scep_msg.h);
     * without it as before, only slower */
    if (scep_msg_parse_init(&why) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, SCEP_LOGNO(00193)
                     "requests are parsed in OpenSSL's global library "
                     "context: %s", why);
    }
    apr_pool_cleanup_register(pchild, NULL, child_exiting,
                              apr_pool_cleanup_null);
}

static void scep_register_hooks(apr_pool_t *p)
{
    /* OpenSSL must not clean up at exit: APR's apr_terminate (registered
     * with atexit before us) would then free our keys and certificates in
     * pool cleanups after OpenSSL is gone, and children crashed on exit.
     * mod_ssl does the same. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
    ap_register_provider(p, SCEP_CA_PROVIDER_GROUP, "local",
                         SCEP_CA_PROVIDER_VERSION, &scep_ca_local_provider);
    ap_register_provider(p, SCEP_CA_PROVIDER_GROUP, "command",
                         SCEP_CA_PROVIDER_VERSION, &scep_ca_command_provider);
    ap_register_provider(p, SCEP_CA_PROVIDER_GROUP, "cmp",
                         SCEP_CA_PROVIDER_VERSION, &scep_ca_cmp_provider);
    ap_register_provider(p, SCEP_CHALLENGE_PROVIDER_GROUP, "otp",
                         SCEP_CHALLENGE_PROVIDER_VERSION, &scep_challenge_otp);
    ap_register_provider(p, SCEP_CHALLENGE_PROVIDER_GROUP, "static",
                         SCEP_CHALLENGE_PROVIDER_VERSION,
                         &scep_challenge_static);
    ap_register_provider(p, SCEP_CHALLENGE_PROVIDER_GROUP, "none",
                         SCEP_CHALLENGE_PROVIDER_VERSION, &scep_challenge_none);
    ap_hook_handler(scep_admin_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(scep_crl_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(scep_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(scep_metrics_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_pre_config(scep_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_test_config(scep_test_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(scep_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(scep_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(scep_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(scep) = {
    STANDARD20_MODULE_STUFF,
    create_dir_conf,
    merge_dir_conf,
    NULL,
    NULL,
    scep_cmds,
    scep_register_hooks,
#if defined(AP_MODULE_FLAG_NONE)
    AP_MODULE_FLAG_NONE
#endif
};
