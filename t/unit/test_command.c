/* Licensed under the Apache License, Version 2.0.
 *
 * Unit tests of the "command" CA provider (src/ca_command.c): the exit-code
 * contract, the environment and argv the program gets, the CSR on stdin,
 * timeouts that kill the process group, crashes, output that is not a
 * certificate of the CSR's key from the endpoint's CA, output bounds.  The
 * programs are small sh scripts written to a scratch directory; the ones
 * that issue call "openssl x509 -req" with a CA made here.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca_local.h"
#include "scep_pki.h"
#include "tap.h"

static const scep_ca_provider_t *prov = &scep_ca_command_provider;
static apr_pool_t *gp;            /* lives for the whole file */
static const char *dir;           /* scratch directory */
static EVP_PKEY *ca_key, *other_ca_key, *req_key, *other_key;
static X509 *ca, *other_ca;
static STACK_OF(X509) *chain;
static X509_REQ *csr;

/* ---- fixtures ----------------------------------------------------------- */

static void write_file(const char *name, const char *data, int mode)
{
    const char *path = apr_pstrcat(gp, dir, "/", name, NULL);
    FILE *f = fopen(path, "w");

    if (f == NULL || fputs(data, f) < 0 || fclose(f) != 0) {
        printf("Bail out! cannot write %s: %s\n", path, strerror(errno));
        exit(255);
    }
    chmod(path, (mode_t)mode);
}

static const char *path_of(const char *name)
{
    return apr_pstrcat(gp, dir, "/", name, NULL);
}

/* A program: "#!/bin/sh", D=the scratch directory, then @a body. */
static const char *script(const char *name, const char *body)
{
    write_file(name, apr_pstrcat(gp, "#!/bin/sh\nD='", dir, "'\n", body,
                                 NULL), 0755);
    return path_of(name);
}

static char *read_text(const char *name, apr_pool_t *p)
{
    char *buf = NULL;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t n;

    if (apr_file_open(&f, path_of(name), APR_FOPEN_READ, 0, p) != APR_SUCCESS
        || apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS) {
        return NULL;
    }
    n = (apr_size_t)fi.size;
    buf = apr_palloc(p, n + 1);
    apr_file_read_full(f, buf, n, &n);
    buf[n] = '\0';
    apr_file_close(f);
    return buf;
}

static void write_pem_cert(const char *name, X509 *x)
{
    FILE *f = fopen(path_of(name), "w");

    if (f == NULL || !PEM_write_X509(f, x) || fclose(f) != 0) {
        printf("Bail out! cannot write %s\n", name);
        exit(255);
    }
}

static void write_pem_key(const char *name, EVP_PKEY *k)
{
    FILE *f = fopen(path_of(name), "w");

    if (f == NULL || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)
        || fclose(f) != 0) {
        printf("Bail out! cannot write %s\n", name);
        exit(255);
    }
}

/* CSR CN=device-1 with dns, ip (v4 and v6), email and uri SANs. */
static X509_REQ *make_csr(EVP_PKEY *key)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *san;

    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               (const unsigned char *)"Example, Inc.", -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               (const unsigned char *)"device-1", -1, -1, 0);
    X509_REQ_set_subject_name(req, name);
    X509_REQ_set_pubkey(req, key);
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    static const struct { int type; const char *v; } names[] = {
        { GEN_DNS, "a.example.com" }, { GEN_IPADD, "10.0.0.1" },
        { GEN_IPADD, "2001:db8::1" }, { GEN_EMAIL, "x@example.com" },
        { GEN_URI, "http://x/a,b" }
    };
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        sk_GENERAL_NAME_push(gens, a2i_GENERAL_NAME(NULL, NULL, NULL,
                                                    names[i].type,
                                                    names[i].v, 0));
    }
    san = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
    GENERAL_NAMES_free(gens);
    sk_X509_EXTENSION_push(exts, san);
    X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_sign(req, key, EVP_sha256());
    X509_NAME_free(name);
    return scep_own_req(gp, req);
}

static void make_fixtures(void)
{
    char tmpl[] = "/tmp/test_command.XXXXXX";

    if (mkdtemp(tmpl) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        exit(255);
    }
    dir = apr_pstrdup(gp, tmpl);
    ca_key = scep_tap_rsa_key(gp, 2048);
    other_ca_key = scep_tap_rsa_key(gp, 2048);
    req_key = scep_tap_rsa_key(gp, 2048);
    other_key = scep_tap_rsa_key(gp, 2048);
    ca = scep_tap_cert(gp, "Unit Command CA", ca_key, NULL, NULL, 1,
                       KU_KEY_CERT_SIGN | KU_CRL_SIGN, 30);
    other_ca = scep_tap_cert(gp, "Unit Other CA", other_ca_key, NULL, NULL, 1,
                             KU_KEY_CERT_SIGN | KU_CRL_SIGN, 30);
    chain = scep_tap_certs(gp, ca, NULL);
    csr = make_csr(req_key);
    write_pem_cert("ca.pem", ca);
    write_pem_key("ca.key", ca_key);
    write_pem_cert("other-ca.pem", other_ca);
    write_pem_key("other-ca.key", other_ca_key);
    write_pem_key("other.key", other_key);
    {
        /* a certificate for another key, from the right CA */
        X509 *x = scep_tap_cert(gp, "someone else", other_key, ca, ca_key, 0,
                                KU_DIGITAL_SIGNATURE, 10);
        write_pem_cert("other-key-cert.pem", x);
        /* one for the CSR's key from the wrong CA */
        x = scep_tap_cert(gp, "device-1", req_key, other_ca, other_ca_key, 0,
                          KU_DIGITAL_SIGNATURE, 10);
        write_pem_cert("wrong-ca-cert.pem", x);
        /* and the right one, made in advance */
        x = scep_tap_cert(gp, "device-1", req_key, ca, ca_key, 0,
                          KU_DIGITAL_SIGNATURE, 10);
        write_pem_cert("good-cert.pem", x);
    }
}

static void rmtree(const char *path, apr_pool_t *p)
{
    apr_dir_t *d;
    apr_finfo_t fi;

    if (apr_dir_open(&d, path, p) == APR_SUCCESS) {
        while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d)
               == APR_SUCCESS) {
            const char *sub;
            if (!strcmp(fi.name, ".") || !strcmp(fi.name, "..")) {
                continue;
            }
            sub = apr_pstrcat(p, path, "/", fi.name, NULL);
            if (fi.filetype == APR_DIR) {
                rmtree(sub, p);
            }
            else {
                apr_file_remove(sub, p);
            }
        }
        apr_dir_close(d);
    }
    apr_dir_remove(path, p);
}

/* ---- helpers ------------------------------------------------------------ */

static void *instance(apr_pool_t *p, const char *prog, const char *a1,
                      const char *a2)
{
    const char *argv[4];
    void *inst = NULL;
    const char *err;
    int argc = 0;

    argv[argc++] = prog;
    if (a1) {
        argv[argc++] = a1;
    }
    if (a2) {
        argv[argc++] = a2;
    }
    argv[argc] = NULL;
    err = prov->create(&inst, p, argc, argv);
    if (err) {
        diag("create: %s", err);
        return NULL;
    }
    err = prov->init(inst, p, chain);
    if (err) {
        diag("init: %s", err);
        return NULL;
    }
    return inst;
}

static void request(scep_ca_request_t *req)
{
    static const char *const eku[] = { "clientAuth", "1.3.6.1.5.5.7.3.1",
                                       NULL };

    memset(req, 0, sizeof(*req));
    req->csr = csr;
    req->transaction_id = "TID-0001";
    req->profile = "Devices";
    req->requester = "192.0.2.7";
    req->validity_days = 7;
    req->key_usage = KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT;
    req->ext_key_usage = eku;
    req->subject_cn_only = 0;
    req->copy_san = 1;
    req->crl_url = "http://crl.example/ca.crl";
}

static scep_ca_reply_t *enroll(void *inst, apr_pool_t *p)
{
    scep_ca_request_t req;
    scep_ca_reply_t *reply = apr_pcalloc(p, sizeof(*reply));

    request(&req);
    if (prov->enroll(inst, &req, reply, p) != APR_SUCCESS) {
        diag("enroll returned an error status");
    }
    if (reply->reason) {
        diag("reason: %s", reply->reason);
    }
    return reply;
}

static int has(const char *hay, const char *needle)
{
    return hay && needle && strstr(hay, needle) != NULL;
}

#define SIGN "openssl x509 -req -CA \"$D/ca.pem\" -CAkey \"$D/ca.key\" " \
             "-days \"${SCEP_VALIDITY_DAYS:-30}\" 2>\"$D/openssl.err\" "

/* ---- tests -------------------------------------------------------------- */

static void test_create(apr_pool_t *p)
{
    void *inst = NULL;
    const char *none[] = { NULL };
    const char *bad0[] = { "/bin/true", "timeout=0", NULL };
    const char *badx[] = { "/bin/true", "timeout=abc", NULL };
    const char *big[] = { "/bin/true", "timeout=3601", NULL };
    const char *good[] = { "/bin/true", "timeout=5", NULL };
    const char *err;

    ok(prov->create(&inst, p, 0, none) != NULL, "no program: an error");
    err = prov->create(&inst, p, 2, bad0);
    ok(has(err, "timeout=0"), "timeout=0: an error naming it (%s)",
       err ? err : "none");
    ok(prov->create(&inst, p, 2, badx) != NULL, "timeout=abc: an error");
    ok(prov->create(&inst, p, 2, big) != NULL, "timeout=3601: an error");
    ok(prov->create(&inst, p, 2, good) == NULL, "timeout=5: accepted");
    is_str(prov->name, "command", "registered name");
    ok(prov->poll != NULL, "poll is implemented");
}

static void test_init(apr_pool_t *p)
{
    void *inst = NULL;
    const char *argv[2] = { NULL, NULL };
    const char *err;

    argv[0] = path_of("does-not-exist");
    prov->create(&inst, p, 1, argv);
    err = prov->init(inst, p, chain);
    ok(has(err, "does-not-exist"), "missing program: init names it (%s)",
       err ? err : "no error");

    write_file("not-exec", "#!/bin/sh\nexit 0\n", 0644);
    argv[0] = path_of("not-exec");
    prov->create(&inst, p, 1, argv);
    err = prov->init(inst, p, chain);
    ok(has(err, "not executable"), "mode 0644: not executable (%s)",
       err ? err : "no error");

    argv[0] = dir;
    prov->create(&inst, p, 1, argv);
    err = prov->init(inst, p, chain);
    ok(has(err, "not a regular file"), "a directory: refused (%s)",
       err ? err : "no error");

    argv[0] = "relative/prog";
    prov->create(&inst, p, 1, argv);
    err = prov->init(inst, p, chain);
    ok(has(err, "relative/prog"), "a relative name: refused (%s)",
       err ? err : "no error");

    argv[0] = "/bin/true";
    prov->create(&inst, p, 1, argv);
    ok(prov->init(inst, p, chain) == NULL, "/bin/true: fine");
}

static void test_issue(apr_pool_t *p)
{
    const char *prog = script("issue.sh",
        "cat > \"$D/stdin.pem\"\n"
        "env > \"$D/env.txt\"\n"
        "pwd > \"$D/pwd.txt\"\n"
        "for a in \"$@\"; do echo \"[$a]\"; done > \"$D/args.txt\"\n"
        SIGN "< \"$D/stdin.pem\"\n");
    void *inst = instance(p, prog, "one two", "$(touch x); `id` *");
    scep_ca_reply_t *r;
    char *env, *args, *in;
    X509 *leaf;

    setenv("SCEP_LEAKED", "from the parent", 1);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ISSUED, "exit 0 with a certificate: ISSUED");
    ok(r->certs && sk_X509_num(r->certs) == 1, "one certificate");
    leaf = r->certs ? sk_X509_value(r->certs, 0) : NULL;
    ok(leaf && EVP_PKEY_eq(X509_get0_pubkey(leaf), req_key) == 1,
       "for the CSR's key");
    ok(leaf && X509_check_issued(ca, leaf) == X509_V_OK, "issued by the CA");

    in = read_text("stdin.pem", p);
    ok(has(in, "-----BEGIN CERTIFICATE REQUEST-----"),
       "the CSR on stdin, PEM");

    args = read_text("args.txt", p);
    is_str(args, "[one two]\n[$(touch x); `id` *]\n",
           "argv as configured, no shell, timeout= not passed on");
    ok(access(path_of("x"), F_OK) != 0, "nothing was expanded");
    is_str(read_text("pwd.txt", p), "/\n", "working directory /");

    env = read_text("env.txt", p);
    ok(has(env, "PATH=/usr/bin:/bin\n"), "PATH=/usr/bin:/bin");
    ok(!has(env, "SCEP_LEAKED") && !has(env, "HOME="),
       "nothing else from the parent's environment");
    ok(has(env, "SCEP_OPERATION=enroll\n"), "SCEP_OPERATION=enroll");
    ok(!has(env, "SCEP_REFERENCE"), "no SCEP_REFERENCE on enroll");
    ok(has(env, "SCEP_PROFILE=Devices\n"), "SCEP_PROFILE");
    ok(has(env, "SCEP_TRANSACTION_ID=TID-0001\n"), "SCEP_TRANSACTION_ID");
    ok(has(env, "SCEP_SUBJECT=CN=device-1,O=Example\\, Inc.\n"),
       "SCEP_SUBJECT in RFC 2253");
    ok(has(env, "SCEP_SANS=dns:a.example.com,ip:10.0.0.1,ip:2001:db8::1,"
                "email:x@example.com,uri:http://x/a\\,b\n"),
       "SCEP_SANS: type:value, commas escaped");
    ok(has(env, "SCEP_REQUESTER=192.0.2.7\n"), "SCEP_REQUESTER");
    ok(has(env, "SCEP_VALIDITY_DAYS=7\n"), "SCEP_VALIDITY_DAYS");
    ok(has(env, "SCEP_KEY_USAGE=digitalSignature,keyEncipherment\n"),
       "SCEP_KEY_USAGE");
    ok(has(env, "SCEP_EXT_KEY_USAGE=1.3.6.1.5.5.7.3.2,1.3.6.1.5.5.7.3.1\n"),
       "SCEP_EXT_KEY_USAGE as dotted OIDs");
    ok(has(env, "SCEP_COPY_SAN=1\n") && has(env, "SCEP_SUBJECT_CN_ONLY=0\n"),
       "SCEP_COPY_SAN, SCEP_SUBJECT_CN_ONLY");
    ok(has(env, "SCEP_CRL_URL=http://crl.example/ca.crl\n"), "SCEP_CRL_URL");
    if (!has(env, "SCEP_SANS=")) {
        diag("environment:\n%s", env ? env : "(none)");
    }
    unsetenv("SCEP_LEAKED");
}

static void test_chain(apr_pool_t *p)
{
    const char *prog = script("chain.sh",
        SIGN "\ncat \"$D/ca.pem\"\n");
    void *inst = instance(p, prog, NULL, NULL);
    scep_ca_reply_t *r = enroll(inst, p);

    is_int(r->status, SCEP_CA_ISSUED, "certificate and chain: ISSUED");
    is_int(r->certs ? sk_X509_num(r->certs) : 0, 2, "both, in order");
    ok(r->certs && X509_cmp(sk_X509_value(r->certs, 1), ca) == 0,
       "the CA second");

    /* text around the PEM (openssl x509 -text style) is fine */
    prog = script("text.sh",
        "echo 'Certificate:'\necho '  issued just now'\n" SIGN
        "\necho 'the end'\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ISSUED, "text around the PEM block: ISSUED");

    /* it need not read stdin */
    prog = script("noread.sh", "cat \"$D/good-cert.pem\"\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ISSUED, "a program that ignores stdin: ISSUED");

    /* a leaf from another CA, with that CA printed after it */
    prog = script("ownchain.sh",
        "openssl x509 -req -CA \"$D/other-ca.pem\" -CAkey "
        "\"$D/other-ca.key\" -days 3 2>/dev/null\ncat \"$D/other-ca.pem\"\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ISSUED,
           "issued by a CA it prints after the certificate: ISSUED");
}

static void test_pending_poll(apr_pool_t *p)
{
    const char *prog = script("pend.sh",
        "env > \"$D/env-$SCEP_OPERATION.txt\"\n"
        "cat > \"$D/stdin-$SCEP_OPERATION.pem\"\n"
        "if [ \"$SCEP_OPERATION\" = enroll ]; then\n"
        "    echo \"ticket/42 $SCEP_TRANSACTION_ID\"; echo second line\n"
        "    exit 3\n"
        "fi\n"
        "if [ -f \"$D/approved\" ]; then\n"
        "    " SIGN "< \"$D/stdin-poll.pem\"\n"
        "    exit 0\n"
        "fi\n"
        "exit 3\n");
    void *inst = instance(p, prog, NULL, NULL);
    scep_ca_request_t req;
    scep_ca_reply_t r;
    char *env;

    request(&req);
    memset(&r, 0, sizeof(r));
    prov->enroll(inst, &req, &r, p);
    is_int(r.status, SCEP_CA_PENDING, "exit 3: PENDING");
    is_str(r.reference, "ticket/42 TID-0001",
           "the reference is the first line of stdout");

    memset(&req, 0, sizeof(req));   /* what the glue knows on a poll */
    req.csr = csr;
    req.transaction_id = "TID-0001";
    req.profile = "Devices";
    req.requester = "192.0.2.8";
    memset(&r, 0, sizeof(r));
    prov->poll(inst, &req, "ticket/42 TID-0001", &r, p);
    is_int(r.status, SCEP_CA_PENDING, "poll, exit 3 again: still PENDING");
    is_str(r.reference, "ticket/42 TID-0001", "the same reference");
    env = read_text("env-poll.txt", p);
    ok(has(env, "SCEP_OPERATION=poll\n"), "SCEP_OPERATION=poll");
    ok(has(env, "SCEP_REFERENCE=ticket/42 TID-0001\n"), "SCEP_REFERENCE");
    ok(has(read_text("stdin-poll.pem", p), "BEGIN CERTIFICATE REQUEST"),
       "the CSR on stdin on poll too");

    write_file("approved", "", 0644);
    memset(&r, 0, sizeof(r));
    prov->poll(inst, &req, "ticket/42 TID-0001", &r, p);
    is_int(r.status, SCEP_CA_ISSUED, "poll after approval: ISSUED");
    if (r.reason) {
        diag("reason: %s", r.reason);
    }
    ok(r.certs && EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(r.certs, 0)),
                              req_key) == 1, "for the CSR's key");

    /* without the CSR nothing can be checked */
    req.csr = NULL;
    memset(&r, 0, sizeof(r));
    prov->poll(inst, &req, "ticket/42 TID-0001", &r, p);
    is_int(r.status, SCEP_CA_ERROR, "poll without the CSR: ERROR");

    /* no reference */
    prog = script("pend-noref.sh", "exit 3\n");
    inst = instance(p, prog, NULL, NULL);
    is_int(enroll(inst, p)->status, SCEP_CA_ERROR,
           "exit 3 without a reference: ERROR");
}

static void test_reject(apr_pool_t *p)
{
    const char *prog = script("reject.sh",
        "echo 'the policy says no' >&2\necho 'more detail' >&2\nexit 2\n");
    void *inst = instance(p, prog, NULL, NULL);
    scep_ca_reply_t *r = enroll(inst, p);

    is_int(r->status, SCEP_CA_REJECTED, "exit 2: REJECTED");
    ok(has(r->reason, "the policy says no") && !has(r->reason, "more detail"),
       "the first stderr line is the reason");
    ok(has(r->reason, prog), "the reason names the program");
}

static void test_errors(apr_pool_t *p)
{
    const char *prog;
    void *inst;
    scep_ca_reply_t *r;
    apr_time_t t0;

    prog = script("down.sh", "echo 'cannot reach ca.example: refused' >&2\n"
                             "exit 1\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "exit 1: ERROR");
    ok(has(r->reason, prog) && has(r->reason, "exited with status 1")
       && has(r->reason, "cannot reach ca.example"),
       "the reason names the program, the status, stderr");

    prog = script("crash.sh", "kill -SEGV $$\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "a crash (SIGSEGV): ERROR");
    ok(has(r->reason, "signal 11"), "the reason names the signal");

    prog = script("garbage.sh", "echo 'hello, world'\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "garbage on stdout: ERROR");
    ok(has(r->reason, "no PEM certificate"), "the reason says so");

    prog = script("empty.sh", "exit 0\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "nothing on stdout: ERROR");

    prog = script("key.sh", "cat \"$D/other.key\"\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "a PEM private key: ERROR");
    ok(has(r->reason, "PRIVATE KEY"), "the reason names the PEM type");

    prog = script("badpem.sh", "printf -- '-----BEGIN CERTIFICATE-----\\n"
                               "AAAA\\n-----END CERTIFICATE-----\\n'\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "a PEM block that does not parse: ERROR");

    prog = script("otherkey.sh", "cat \"$D/other-key-cert.pem\"\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "a certificate for another key: ERROR");
    ok(has(r->reason, "not for the CSR's public key"), "the reason says so");

    prog = script("cafirst.sh", "cat \"$D/ca.pem\" \"$D/good-cert.pem\"\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "the CA certificate first: ERROR");

    prog = script("wrongca.sh", "cat \"$D/wrong-ca-cert.pem\"\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR,
           "the CSR's key, but from a CA the endpoint does not have: ERROR");
    ok(has(r->reason, "not signed by the endpoint's CA"),
       "the reason says so");

    prog = script("flood.sh", "head -c 2000000 /dev/zero | tr '\\0' A\n");
    inst = instance(p, prog, NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "2 MB on stdout: ERROR");
    ok(has(r->reason, "more than 1048576 bytes"), "the reason says so");

    /* 4 MB on stderr before the certificate: no deadlock, stderr dropped */
    prog = script("chatty.sh", "head -c 4000000 /dev/zero | tr '\\0' E >&2\n"
                               SIGN "\n");
    inst = instance(p, prog, "timeout=20", NULL);
    t0 = apr_time_now();
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ISSUED, "4 MB on stderr, then the certificate: "
           "ISSUED (stderr is read alongside)");
    ok(apr_time_now() - t0 < apr_time_from_sec(15), "in time");

    /* the program disappears after init: an error at run time */
    prog = script("vanish.sh", "exit 0\n");
    inst = instance(p, prog, NULL, NULL);
    apr_file_remove(prog, p);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "program removed after init: ERROR");
    ok(has(r->reason, "vanish.sh") && has(r->reason, "cannot run"),
       "the reason names the program (%s)", r->reason ? r->reason : "-");

    /* an interpreter that does not exist: exec fails in the child */
    write_file("badinterp.sh", "#!/nonexistent/interpreter\n", 0755);
    inst = instance(p, path_of("badinterp.sh"), NULL, NULL);
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "exec fails: ERROR");
    ok(has(r->reason, "exec of"), "the child says why (%s)",
       r->reason ? r->reason : "-");

    /* how it runs: the leader of its own process group from the start,
     * only its three descriptors, no signal blocked, SIGPIPE not ignored
     * (the test's own SIGPIPE is ignored and a signal blocked, as in an
     * httpd worker thread) */
    {
        sigset_t blk, old;
        void (*oldpipe)(int);
        char *facts = NULL;
        apr_size_t flen = 0;
        apr_file_t *ff;
        int pid = 0, pgid = -1, nfd = -1, mfd;
        char blocked[32] = "", ignored[32] = "";

        /* a descriptor of the server's that is not close-on-exec */
        write_file("marker", "x", 0644);
        mfd = open(path_of("marker"), O_RDONLY);
        sigemptyset(&blk);
        sigaddset(&blk, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &blk, &old);
        oldpipe = signal(SIGPIPE, SIG_IGN);
        prog = script("facts.sh",
                      "set -- $(cat /proc/$$/stat | sed 's/^.*) //')\n"
                      "n=0; for f in /proc/$$/fd/*; do\n"
                      "  case $(readlink $f) in *marker) n=$((n+1));; esac\n"
                      "done\n"
                      "b=$(sed -n 's/^SigBlk:[[:space:]]*//p' /proc/$$/status)\n"
                      "i=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status)\n"
                      "echo \"$$ $3 $n $b $i\" > \"$D/facts\"\n"
                      "echo no >&2; exit 3\n");
        inst = instance(p, prog, NULL, NULL);
        r = enroll(inst, p);
        signal(SIGPIPE, oldpipe);
        close(mfd);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (apr_file_open(&ff, path_of("facts"), APR_FOPEN_READ,
                          APR_FPROT_OS_DEFAULT, p) == APR_SUCCESS) {
            facts = apr_pcalloc(p, 256);
            flen = 255;
            apr_file_read(ff, facts, &flen);
            apr_file_close(ff);
        }
        ok(facts && sscanf(facts, "%d %d %d %31s %31s", &pid, &pgid, &nfd,
                           blocked, ignored) == 5,
           "the program wrote what it saw (%s)", facts ? facts : "nothing");
        ok(pid > 0 && pgid == pid, "it leads its own process group "
           "(pid %d, pgid %d)", pid, pgid);
        is_int(nfd, 0, "not a descriptor of the server's, even one that "
               "is not close-on-exec");
        ok(strspn(blocked, "0") == strlen(blocked) && blocked[0],
           "no signal blocked (SigBlk %s)", blocked);
        /* SIGPIPE is signal 13: bit 12 of SigIgn, in its 4th hex digit
         * from the right */
        ok(strlen(ignored) >= 4
           && !((ignored[strlen(ignored) - 4] - '0') & 0x1),
           "SIGPIPE not ignored (SigIgn %s)", ignored);
    }
}

static int pid_alive(long pid)
{
    char path[64], buf[512];
    FILE *f;
    char *s;
    int alive = 0;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if ((f = fopen(path, "r")) == NULL) {
        return 0;
    }
    if (fgets(buf, sizeof(buf), f) && (s = strrchr(buf, ')')) != NULL
        && s[1] == ' ') {
        alive = s[2] != 'Z' && s[2] != 'X';
    }
    fclose(f);
    return alive;
}

static void test_timeout(apr_pool_t *p)
{
    const char *prog = script("slow.sh",
        "sleep 60 &\necho $! > \"$D/grandchild.pid\"\n"
        "echo 'working on it' >&2\nwait\n");
    void *inst = instance(p, prog, "timeout=1", NULL);
    scep_ca_reply_t *r;
    apr_time_t t0 = apr_time_now();
    char *pidtxt;
    long pid;
    int i;

    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "sleeps past timeout=1: ERROR");
    ok(has(r->reason, "timed out after 1 s"), "the reason says so");
    ok(has(r->reason, "working on it"), "with its stderr");
    ok(apr_time_now() - t0 < apr_time_from_sec(5),
       "back within the timeout and the grace period");
    pidtxt = read_text("grandchild.pid", p);
    pid = pidtxt ? atol(pidtxt) : 0;
    /* SIGKILL is immediate, but a loaded machine (a package build beside
     * other suites) may take a while to reap */
    for (i = 0; pid > 0 && pid_alive(pid) && i < 250; i++) {
        apr_sleep(apr_time_from_msec(20));
    }
    if (!ok(pid > 0 && !pid_alive(pid),
            "what it started in the background is killed too (process group)")) {
        scep_tap_diag("grandchild pid %ld (0: the script never wrote it), "
                      "%s", pid, pid > 0 && pid_alive(pid) ? "still alive"
                                                          : "gone");
    }

    /* closes its output and lingers */
    prog = script("linger.sh", "exec >&- 2>&-\nsleep 60\n");
    inst = instance(p, prog, "timeout=1", NULL);
    t0 = apr_time_now();
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "output closed, no exit: ERROR");
    ok(apr_time_now() - t0 < apr_time_from_sec(5), "in time");

    /* ignores SIGTERM: SIGKILL after the grace period */
    prog = script("stubborn.sh", "trap '' TERM\nwhile :; do sleep 1; done\n");
    inst = instance(p, prog, "timeout=1", NULL);
    t0 = apr_time_now();
    r = enroll(inst, p);
    is_int(r->status, SCEP_CA_ERROR, "ignores SIGTERM: ERROR");
    ok(apr_time_now() - t0 < apr_time_from_sec(6), "killed anyway, in time");
}

static void test_init_chains(apr_pool_t *p)
{
    /* one instance inherited by two sections with different CAs */
    const char *prog = script("wrongca2.sh", "cat \"$D/wrong-ca-cert.pem\"\n");
    void *inst = instance(p, prog, NULL, NULL);
    STACK_OF(X509) *chain2 = scep_tap_certs(p, other_ca, NULL);

    is_int(enroll(inst, p)->status, SCEP_CA_ERROR,
           "before the second init: the other CA is not accepted");
    ok(prov->init(inst, p, chain2) == NULL, "init again with another chain");
    is_int(enroll(inst, p)->status, SCEP_CA_ISSUED,
           "then it is accepted");
}

int main(void)
{
    scep_tap_init();
    signal(SIGPIPE, SIG_IGN);   /* as httpd does */
    apr_pool_create(&gp, NULL);
    make_fixtures();
    scep_tap_run("create", test_create);
    scep_tap_run("init", test_init);
    scep_tap_run("issue: environment, argv, stdin", test_issue);
    scep_tap_run("chains and text", test_chain);
    scep_tap_run("pending, poll", test_pending_poll);
    scep_tap_run("reject", test_reject);
    scep_tap_run("errors", test_errors);
    scep_tap_run("timeout", test_timeout);
    scep_tap_run("several CA chains", test_init_chains);
    if (!getenv("SCEP_TEST_KEEP")) {
        rmtree(dir, gp);
    }
    else {
        diag("kept %s", dir);
    }
    apr_pool_destroy(gp);
    return scep_tap_done();
}
