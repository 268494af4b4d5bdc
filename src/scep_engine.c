/* Licensed under the Apache License, Version 2.0.
 *
 * Private keys through an OpenSSL ENGINE (PKCS#11 tokens: SoftHSM2, smart
 * cards, network HSMs).  OpenSSL 3.0 deprecates the ENGINE API in favour of
 * providers, but Debian 12 ships no PKCS#11 provider, only the engine
 * (libengine-pkcs11-openssl), so this file -- and only this file -- uses
 * the deprecated calls.  CORE: APR + OpenSSL only.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_file_io.h>

#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/ui.h>

#include "scep_engine.h"
#include "scep_pki.h"

#define PKCS11_SCHEME  "pkcs11:"
#define ENGINE_SCHEME  "engine:"
#define PIN_MAX        256

int scep_engine_uri(const char *uri)
{
    return uri != NULL
           && (!strncasecmp(uri, PKCS11_SCHEME, sizeof(PKCS11_SCHEME) - 1)
               || !strncmp(uri, ENGINE_SCHEME, sizeof(ENGINE_SCHEME) - 1));
}

void scep_engine_release(void *engine)
{
    ENGINE *e = engine;

    if (e != NULL) {
        ENGINE_finish(e);   /* the functional reference of ENGINE_init */
        ENGINE_free(e);     /* the structural reference of ENGINE_by_id */
    }
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* RFC 3986 percent-decoding of @a s (length @a n), NULL when malformed. */
static char *pct_decode(const char *s, apr_size_t n, apr_pool_t *p)
{
    char *out = apr_palloc(p, n + 1), *o = out;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n
                || !isxdigit((unsigned char)s[i + 1])
                || !isxdigit((unsigned char)s[i + 2])) {
                return NULL;
            }
            *o++ = (char)(hexval((unsigned char)s[i + 1]) * 16
                          + hexval((unsigned char)s[i + 2]));
            i += 2;
        }
        else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* The first line of a file (a PIN), at most PIN_MAX bytes. */
static const char *first_line(const char *path, const char **why,
                              apr_pool_t *p)
{
    apr_file_t *f;
    char buf[PIN_MAX + 2];
    apr_size_t n;
    apr_status_t rv;

    if (!strncmp(path, "file:", 5)) {
        path += 5;
    }
    rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(p, "cannot read the PIN file '%s': %pm", path,
                            &rv);
        return NULL;
    }
    memset(buf, 0, sizeof(buf));
    n = sizeof(buf) - 1;
    rv = apr_file_read(f, buf, &n);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        *why = apr_psprintf(p, "cannot read the PIN file '%s': %pm", path,
                            &rv);
        return NULL;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        *why = apr_psprintf(p, "the PIN file '%s' is empty", path);
        return NULL;
    }
    return apr_pstrdup(p, buf);
}

typedef struct {
    const char *engine_id;   /* "pkcs11" or the ID of engine:ID:KEYID */
    const char *key_id;      /* what ENGINE_load_private_key gets */
    const char *shown;       /* the URI for messages: no PIN in it */
    const char *pin;         /* NULL: none given */
    const char *pin_source;
    const char *module;
} engine_uri_t;

/* One attribute "name=value" of a PKCS#11 URI: pin-value, pin-source,
 * module-path and module-name are ours, the others of the path go on to the
 * engine (in *kept). */
static const char *pkcs11_attr(engine_uri_t *u, const char *s, apr_size_t n,
                               int in_query, const char **kept, int *pin_seen,
                               apr_pool_t *p)
{
    const char *eq = memchr(s, '=', n);
    const char *attr = apr_pstrmemdup(p, s, n);
    char *name, *value;

    if (n == 0) {
        return NULL;
    }
    if (eq == NULL) {
        return apr_psprintf(p, "PKCS#11 URI attribute '%s' has no value",
                            attr);
    }
    name = apr_pstrmemdup(p, s, eq - s);
    value = pct_decode(eq + 1, n - (eq + 1 - s), p);
    if (value == NULL) {
        return apr_psprintf(p, "bad percent-encoding in PKCS#11 URI "
                            "attribute '%s'", name);
    }
    if (!strcmp(name, "pin-value")) {
        u->pin = value;
        *pin_seen = 1;
    }
    else if (!strcmp(name, "pin-source")) {
        u->pin_source = value;
    }
    else if (!strcmp(name, "module-path")) {
        u->module = value;
    }
    else if (!strcmp(name, "module-name")) {
        /* the module is module-path, $SCEP_PKCS11_MODULE or the engine's
         * default; a name alone is only a hint */
    }
    else if (in_query) {
        return apr_psprintf(p, "PKCS#11 URI query attribute '%s' is not "
                            "supported (pin-value, pin-source, module-path "
                            "are)", name);
    }
    else {
        *kept = *kept ? apr_pstrcat(p, *kept, ";", attr, NULL) : attr;
    }
    return NULL;
}

/* Split "pkcs11:a=b;c=d?e=f&g=h" (RFC 7512): our attributes come out, the
 * rest of the path is what the engine gets. */
static const char *parse_pkcs11(engine_uri_t *u, const char *uri,
                                apr_pool_t *p)
{
    const char *s = uri + sizeof(PKCS11_SCHEME) - 1;
    const char *q = strchr(s, '?');
    const char *path_end = q ? q : s + strlen(s);
    const char *kept = NULL, *err;
    int pin_seen = 0;
    apr_size_t n;

    u->engine_id = "pkcs11";
    while (s < path_end) {
        n = strcspn(s, ";");
        if (s + n > path_end) {
            n = path_end - s;
        }
        if ((err = pkcs11_attr(u, s, n, 0, &kept, &pin_seen, p)) != NULL) {
            return err;
        }
        s += n;
        if (s < path_end) {
            s++;
        }
    }
    s = q ? q + 1 : path_end;
    while (*s) {
        n = strcspn(s, "&");
        if ((err = pkcs11_attr(u, s, n, 1, &kept, &pin_seen, p)) != NULL) {
            return err;
        }
        s += n;
        if (*s) {
            s++;
        }
    }
    u->key_id = apr_pstrcat(p, PKCS11_SCHEME, kept ? kept : "", NULL);
    u->shown = pin_seen ? apr_pstrcat(p, u->key_id, kept ? ";" : "",
                                      "pin-value=***", NULL)
                        : u->key_id;
    return NULL;
}

static const char *parse_engine(engine_uri_t *u, const char *uri,
                                apr_pool_t *p)
{
    const char *s = uri + sizeof(ENGINE_SCHEME) - 1;
    const char *colon = strchr(s, ':');

    if (colon == NULL || colon == s || colon[1] == '\0') {
        return apr_psprintf(p, "'%s' is not engine:ID:KEYID", uri);
    }
    u->engine_id = apr_pstrmemdup(p, s, colon - s);
    u->key_id = colon + 1;
    u->shown = uri;
    return NULL;
}

const char *scep_engine_uri_shown(const char *uri, apr_pool_t *p)
{
    engine_uri_t u;

    if (uri == NULL || strncasecmp(uri, PKCS11_SCHEME,
                                   sizeof(PKCS11_SCHEME) - 1)) {
        return uri;
    }
    memset(&u, 0, sizeof(u));
    if (parse_pkcs11(&u, uri, p) != NULL) {
        /* not parsed: show no attribute that might hold the PIN */
        return strstr(uri, "pin-value") ? PKCS11_SCHEME "(unreadable URI)"
                                        : uri;
    }
    return u.shown;
}

apr_status_t scep_engine_load_key(EVP_PKEY **key, void **engine,
                                  const char *uri, const char **why,
                                  apr_pool_t *p)
{
    engine_uri_t u;
    ENGINE *e = NULL;
    EVP_PKEY *k;
    const char *err;
    int initialised = 0;

    *key = NULL;
    *engine = NULL;
    memset(&u, 0, sizeof(u));
    ERR_clear_error();
    err = strncmp(uri, ENGINE_SCHEME, sizeof(ENGINE_SCHEME) - 1)
          ? parse_pkcs11(&u, uri, p) : parse_engine(&u, uri, p);
    if (err) {
        *why = err;
        return APR_EINVAL;
    }
    if (u.pin == NULL && u.pin_source != NULL) {
        if ((u.pin = first_line(u.pin_source, why, p)) == NULL) {
            return APR_EINVAL;
        }
    }
    if (u.pin == NULL && getenv(SCEP_PKCS11_PIN_ENV) != NULL
        && *getenv(SCEP_PKCS11_PIN_ENV) != '\0') {
        u.pin = apr_pstrdup(p, getenv(SCEP_PKCS11_PIN_ENV));
    }
    if (u.module == NULL && !strcmp(u.engine_id, "pkcs11")
        && getenv(SCEP_PKCS11_MODULE_ENV) != NULL
        && *getenv(SCEP_PKCS11_MODULE_ENV) != '\0') {
        u.module = apr_pstrdup(p, getenv(SCEP_PKCS11_MODULE_ENV));
    }

    if ((e = ENGINE_by_id(u.engine_id)) == NULL) {
        *why = apr_psprintf(p, "cannot load key '%s': no OpenSSL engine "
                            "'%s'%s: %s", u.shown, u.engine_id,
                            strcmp(u.engine_id, "pkcs11") ? ""
                            : " (apt-get install libengine-pkcs11-openssl)",
                            scep_ssl_errors(p));
        return APR_ENOENT;
    }
    /* libp11 talks on stderr unless told not to; what went wrong is in
     * the error queue, and so in our reason (optional: other engines) */
    (void)ENGINE_ctrl_cmd_string(e, "QUIET", NULL, 1);
    ERR_clear_error();
    if (u.module != NULL
        && !ENGINE_ctrl_cmd_string(e, "MODULE_PATH", u.module, 0)) {
        *why = apr_psprintf(p, "cannot load key '%s': engine %s refuses "
                            "MODULE_PATH %s: %s", u.shown, u.engine_id,
                            u.module, scep_ssl_errors(p));
        goto fail;
    }
    if (!ENGINE_init(e)) {
        *why = apr_psprintf(p, "cannot load key '%s': engine %s does not "
                            "initialise: %s", u.shown, u.engine_id,
                            scep_ssl_errors(p));
        goto fail;
    }
    initialised = 1;
    if (u.pin != NULL && !ENGINE_ctrl_cmd_string(e, "PIN", u.pin, 0)) {
        *why = apr_psprintf(p, "cannot load key '%s': engine %s takes no "
                            "PIN: %s", u.shown, u.engine_id,
                            scep_ssl_errors(p));
        goto fail;
    }
    /* UI_null(): never prompt on a terminal httpd does not have (the API
     * predates const) */
    k = ENGINE_load_private_key(e, u.key_id, (UI_METHOD *)UI_null(), NULL);
    if (k == NULL) {
        *why = apr_psprintf(p, "no private key '%s' in engine %s%s: %s",
                            u.shown, u.engine_id,
                            u.pin ? "" : " (no PIN given: pin-value=, "
                                         "pin-source= or $"
                                         SCEP_PKCS11_PIN_ENV ")",
                            scep_ssl_errors(p));
        goto fail;
    }
    *key = k;
    *engine = e;
    ERR_clear_error();
    return APR_SUCCESS;

fail:
    if (initialised) {
        ENGINE_finish(e);
    }
    ENGINE_free(e);
    ERR_clear_error();
    return APR_EINVAL;
}
