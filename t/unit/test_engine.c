/* Licensed under the Apache License, Version 2.0.
 *
 * Unit tests of keys through an OpenSSL ENGINE (src/scep_engine.c, reached
 * by scep_load_key): the pkcs11: URIs mod_scep reads itself (pin-value,
 * pin-source, module-path, percent-encoding, what it refuses), the
 * engine:ID:KEYID form, and that a PIN never shows in a message.
 *
 * The token tests use the SoftHSM2 token of t/setup/hsm.sh (t/pki/hsm, run
 * from the top of the tree), on a copy of its token directory so that this
 * process (root, when the suite runs as root) leaves no files in the one
 * httpd's children use; without the token they are skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "scep_engine.h"
#include "scep_pki.h"
#include "tap.h"

#define HSM_DIR "t/pki/hsm"

static char module[512];
static char pin[64];
static const char *workdir;    /* the copy of the token, or NULL */

static int read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        return 0;
    }
    if (fgets(buf, (int)n, f) == NULL) {
        fclose(f);
        return 0;
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] != '\0';
}

static apr_status_t load(EVP_PKEY **key, const char *uri, const char **why,
                         apr_pool_t *p)
{
    *why = NULL;
    return scep_load_key(key, uri, why, p);
}

static void refused(apr_pool_t *p, const char *uri, const char *want)
{
    EVP_PKEY *key = NULL;
    const char *why = NULL;
    apr_status_t rv = load(&key, uri, &why, p);

    ok(rv != APR_SUCCESS && key == NULL && why && strstr(why, want),
       "%s: refused, '%s' (%s)", uri, want, why ? why : "no reason");
}

static void test_uri_syntax(apr_pool_t *p)
{
    ok(scep_engine_uri("pkcs11:token=a"), "pkcs11: is an engine URI");
    ok(scep_engine_uri("PKCS11:token=a"), "PKCS11: too (schemes ignore case)");
    ok(scep_engine_uri("engine:pkcs11:x"), "engine:ID:KEYID is one");
    ok(!scep_engine_uri("/etc/ssl/key.pem") && !scep_engine_uri("file:/k")
       && !scep_engine_uri(NULL), "files are not");

    is_str(scep_engine_uri_shown("pkcs11:token=t;object=k;pin-value=1234;"
                                 "type=private?module-path=/m.so", p),
           "pkcs11:token=t;object=k;type=private;pin-value=***",
           "scep_engine_uri_shown: the PIN masked");
    is_str(scep_engine_uri_shown("pkcs11:token=t?pin-value=12%zz", p),
           "pkcs11:(unreadable URI)",
           "scep_engine_uri_shown: nothing of an unreadable URI with a PIN");
    is_str(scep_engine_uri_shown("/etc/k.pem", p), "/etc/k.pem",
           "scep_engine_uri_shown: a file name as it is");

    refused(p, "pkcs11:object=a%zzb;type=private", "bad percent-encoding");
    refused(p, "pkcs11:object=a%4", "bad percent-encoding");
    refused(p, "pkcs11:object;type=private",
            "attribute 'object' has no value");
    refused(p, "pkcs11:object=a?pin-value=1&colour=blue",
            "query attribute 'colour' is not supported");
    refused(p, "pkcs11:object=a?pin-source=/nonexistent/pin",
            "cannot read the PIN file '/nonexistent/pin'");
    refused(p, "engine:", "is not engine:ID:KEYID");
    refused(p, "engine:pkcs11", "is not engine:ID:KEYID");
    refused(p, "engine:pkcs11:", "is not engine:ID:KEYID");
    refused(p, "engine:no-such-engine-here:key", "no OpenSSL engine "
            "'no-such-engine-here'");
}

/* a copy of the token directory and a SoftHSM2 configuration for it */
static const char *copy_token(apr_pool_t *p)
{
    char tmpl[] = "/tmp/test_engine.XXXXXX";
    const char *dir, *conf, *cmd;
    FILE *f;

    if (mkdtemp(tmpl) == NULL) {
        return NULL;
    }
    dir = apr_pstrdup(p, tmpl);
    cmd = apr_psprintf(p, "cp -R '" HSM_DIR "/tokens' '%s/tokens'", dir);
    if (system(cmd) != 0) {
        return NULL;
    }
    conf = apr_pstrcat(p, dir, "/softhsm2.conf", NULL);
    if ((f = fopen(conf, "w")) == NULL) {
        return NULL;
    }
    fprintf(f, "directories.tokendir = %s/tokens\nobjectstore.backend = "
            "file\nlog.level = ERROR\nslots.removable = false\n", dir);
    fclose(f);
    setenv("SOFTHSM2_CONF", conf, 1);
    return dir;
}

static X509 *ca_cert(apr_pool_t *p)
{
    STACK_OF(X509) *certs;
    const char *why = NULL;

    if (scep_load_certs(&certs, HSM_DIR "/ca.pem", &why, p) != APR_SUCCESS) {
        return NULL;
    }
    return sk_X509_value(certs, 0);
}

/* Does @a key sign what @a cert's public key verifies? */
static int signs(EVP_PKEY *key, X509 *cert)
{
    static const unsigned char data[] = "mod_scep engine test";
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md
             && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1
             && EVP_DigestSign(md, sig, &siglen, data, sizeof(data)) == 1;

    EVP_MD_CTX_free(md);
    if (!ok) {
        return 0;
    }
    md = EVP_MD_CTX_new();
    ok = md
         && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
                                 X509_get0_pubkey(cert)) == 1
         && EVP_DigestVerify(md, sig, siglen, data, sizeof(data)) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

#define NEED_TOKEN(n)                                                    \
    if (workdir == NULL) {                                               \
        skip((n), "no SoftHSM2 token (t/setup/hsm.sh)");                 \
        return;                                                          \
    }

#define BASE "pkcs11:token=mod_scep%20test;object=scep-ca;type=private"
#define BASE_FMT "pkcs11:token=mod_scep%%20test;object=scep-ca;type=private"

static void test_wrong_pin(apr_pool_t *p)
{
    EVP_PKEY *key = NULL;
    const char *why = NULL;
    const char *wrong = strcmp(pin, "00000000") ? "00000000" : "11111111";
    apr_status_t rv;

    NEED_TOKEN(3);
    /* first, while the token is not logged in by this process */
    rv = load(&key, apr_psprintf(p, BASE_FMT ";pin-value=%s?module-path=%s",
                                 wrong, module), &why, p);
    ok(rv != APR_SUCCESS && why && strstr(why, "PIN incorrect"),
       "a wrong PIN: refused (%s)", why ? why : "-");
    ok(why && strstr(why, "pin-value=***") && !strstr(why, wrong),
       "... the PIN masked in the reason");
    rv = load(&key, apr_psprintf(p, BASE_FMT "?module-path=%s", module),
              &why, p);
    ok(rv != APR_SUCCESS && why && strstr(why, "no PIN given"),
       "no PIN: refused, saying where one comes from (%s)", why ? why : "-");
}

static void test_pin_value(apr_pool_t *p)
{
    EVP_PKEY *key = NULL;
    const char *why = NULL;
    X509 *ca = ca_cert(p);

    NEED_TOKEN(3);
    ok(load(&key, apr_psprintf(p, BASE_FMT "?pin-value=%s&module-path=%s", pin,
                               module), &why, p) == APR_SUCCESS,
       "pin-value= and module-path= in the query (%s)", why ? why : "ok");
    ok(key && ca && scep_key_matches_cert(key, ca),
       "the token key matches t/pki/hsm/ca.pem");
    ok(key && ca && signs(key, ca), "and signs with it");
}

static void test_pin_in_path(apr_pool_t *p)
{
    EVP_PKEY *key = NULL;
    const char *why = NULL;
    X509 *ca = ca_cert(p);

    NEED_TOKEN(2);
    ok(load(&key, apr_psprintf(p, "pkcs11:token=mod_scep%%20test;id=%%01;"
                               "pin-value=%s;module-path=%s;type=private",
                               pin, module), &why, p) == APR_SUCCESS,
       "by id=%%01, pin-value= and module-path= in the path (%s)",
       why ? why : "ok");
    ok(key && ca && scep_key_matches_cert(key, ca), "the same key");
}

static void test_pin_source(apr_pool_t *p)
{
    EVP_PKEY *key = NULL;
    const char *why = NULL;

    NEED_TOKEN(2);
    ok(load(&key, apr_psprintf(p, BASE_FMT "?pin-source=file:" HSM_DIR "/pin"
                               "&module-path=%s", module), &why, p)
       == APR_SUCCESS, "pin-source=file:PATH (%s)", why ? why : "ok");
    key = NULL;
    ok(load(&key, apr_psprintf(p, "pkcs11:token=mod_scep%%20test;"
                               "object=scep-ra;type=private?pin-source="
                               HSM_DIR "/pin&module-path=%s", module),
            &why, p) == APR_SUCCESS && EVP_PKEY_get_bits(key) == 2048,
       "pin-source=PATH, the RA key (%s)", why ? why : "ok");
}

static void test_environment(apr_pool_t *p)
{
    EVP_PKEY *key = NULL;
    const char *why = NULL;
    apr_status_t rv;
    X509 *ca = ca_cert(p);

    NEED_TOKEN(3);
    setenv(SCEP_PKCS11_PIN_ENV, pin, 1);
    setenv(SCEP_PKCS11_MODULE_ENV, module, 1);
    ok(load(&key, BASE, &why, p) == APR_SUCCESS,
       "$" SCEP_PKCS11_PIN_ENV " and $" SCEP_PKCS11_MODULE_ENV " (%s)",
       why ? why : "ok");
    key = NULL;
    ok(load(&key, "engine:pkcs11:" BASE, &why, p) == APR_SUCCESS
       && ca && scep_key_matches_cert(key, ca),
       "engine:pkcs11:URI, the PIN from the environment (%s)",
       why ? why : "ok");
    unsetenv(SCEP_PKCS11_PIN_ENV);
    unsetenv(SCEP_PKCS11_MODULE_ENV);
    key = NULL;
    rv = load(&key, apr_psprintf(p, "pkcs11:token=mod_scep%%20test;"
                                 "object=no-such-key;type=private?"
                                 "pin-value=%s&module-path=%s", pin, module),
              &why, p);
    ok(rv != APR_SUCCESS && why && strstr(why, "no-such-key"),
       "a key the token does not have: refused (%s)", why ? why : "-");
}

static void test_pool_lifetime(apr_pool_t *p)
{
    apr_pool_t *sub;
    EVP_PKEY *key = NULL;
    const char *why = NULL;
    int i, good = 0;

    NEED_TOKEN(1);
    /* load and free through pools, as httpd's restarts do */
    for (i = 0; i < 5; i++) {
        apr_pool_create(&sub, p);
        if (load(&key, apr_psprintf(sub, BASE_FMT "?pin-value=%s"
                                    "&module-path=%s", pin, module),
                 &why, sub) == APR_SUCCESS
            && signs(key, ca_cert(sub))) {
            good++;
        }
        apr_pool_destroy(sub);
    }
    is_int(good, 5, "5 rounds of load, sign, free (the engine finished "
           "each time)");
}

int main(void)
{
    apr_pool_t *p;

    scep_tap_init();
    apr_pool_create(&p, NULL);
    if (read_line(HSM_DIR "/module", module, sizeof(module))
        && read_line(HSM_DIR "/pin", pin, sizeof(pin))) {
        workdir = copy_token(p);
    }
    if (workdir == NULL) {
        diag("no SoftHSM2 token in " HSM_DIR " (t/setup/hsm.sh): the token "
             "tests are skipped");
    }
    scep_tap_run("URI syntax", test_uri_syntax);
    scep_tap_run("wrong or no PIN", test_wrong_pin);
    scep_tap_run("pin-value", test_pin_value);
    scep_tap_run("pin-value in the path, by id", test_pin_in_path);
    scep_tap_run("pin-source", test_pin_source);
    scep_tap_run("environment, engine:ID:KEYID", test_environment);
    scep_tap_run("pool lifetime", test_pool_lifetime);
    if (workdir && system(apr_psprintf(p, "rm -rf '%s'", workdir)) != 0) {
        diag("cannot remove %s", workdir);
    }
    apr_pool_destroy(p);
    return scep_tap_done();
}
