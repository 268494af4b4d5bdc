/* Licensed under the Apache License, Version 2.0.
 *
 * Unit tests of the "cmp" CA provider (src/ca_cmp.c) that need no CMP
 * server: the directive arguments, what a CA that is down or silent costs,
 * and references that are not what poll() handed out (they come from the
 * database).  The exchanges with a CA are t/60-cmp.t's, against OpenSSL's
 * mock server.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <apr_general.h>
#include <apr_network_io.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "ca_local.h"
#include "scep_pki.h"
#include "tap.h"

static const scep_ca_provider_t *prov = &scep_ca_cmp_provider;

/* create() with a space-separated argument line */
static const char *create(void **inst, apr_pool_t *p, const char *line)
{
    char *copy = apr_pstrdup(p, line), *last = NULL, *a;
    const char *argv[32];
    int argc = 0;

    for (a = apr_strtok(copy, " ", &last); a && argc < 31;
         a = apr_strtok(NULL, " ", &last)) {
        argv[argc++] = a;
    }
    argv[argc] = NULL;
    *inst = NULL;
    return prov->create(inst, p, argc, argv);
}

static void expect_error(apr_pool_t *p, const char *line, const char *want)
{
    void *inst;
    const char *err = create(&inst, p, line);

    ok(err && strstr(err, want), "create(%s): error containing '%s' (%s)",
       line, want, err ? err : "no error");
}

static void test_create(apr_pool_t *p)
{
    void *inst;
    const char *err;

    err = create(&inst, p, "server=http://127.0.0.1:1/pkix/ "
                           "secret=pass:s3cret ref=ra");
    ok(err == NULL && inst != NULL,
       "server=, secret=pass:, ref=: accepted (%s)", err ? err : "ok");
    err = create(&inst, p, "server=http://ca.example.com/ secret=pass:x "
                           "ref=ra timeout=5 total-timeout=60 "
                           "implicit-confirm=on unprotected-errors=off "
                           "digest=sha384 proxy=http://proxy:3128 "
                           "recipient=/CN=Upstream/O=Example");
    ok(err == NULL, "every optional keyword: accepted (%s)", err ? err : "ok");

    expect_error(p, "secret=pass:x ref=y", "server=http://host:port/path is "
                 "required");
    expect_error(p, "server=http://h/", "give either secret=");
    expect_error(p, "server=http://h/ secret=pass:x", "secret= needs ref=");
    expect_error(p, "server=http://h/ secret=pass: ref=y", "secret= is empty");
    expect_error(p, "server=http://h/ secret=x ref=y", "secret= takes pass:");
    expect_error(p, "server=http://h/ secret=env:SCEP_TEST_NO_SUCH_VAR ref=y",
                 "the variable is not set");
    expect_error(p, "server=http://h/ secret=file:/nonexistent/secret ref=y",
                 "secret=file:/nonexistent/secret");
    expect_error(p, "server=http://h/ cert=/nonexistent/c.pem",
                 "cert= and key= go together");
    expect_error(p, "server=http://h/ cert=/nonexistent/c.pem key=/x.key",
                 "needs trusted= or srvcert=");
    expect_error(p, "server=http://h/ cert=/nonexistent/c.pem key=/x.key "
                 "trusted=/nonexistent/t.pem", "cert=:");
    expect_error(p, "server=https://h/ secret=pass:x ref=y",
                 "https is not supported");
    expect_error(p, "server=ldap://h/ secret=pass:x ref=y",
                 "an http:// URL is needed");
    expect_error(p, "server=http://h/?q=1 secret=pass:x ref=y",
                 "no user, query or fragment");
    expect_error(p, "server=http://u@h/ secret=pass:x ref=y",
                 "no user, query or fragment");
    expect_error(p, "server=http://h:99999/ secret=pass:x ref=y", "not a URL");
    expect_error(p, "server=http://h/ secret=pass:x ref=y timeout=0",
                 "timeout= takes seconds from 1");
    expect_error(p, "server=http://h/ secret=pass:x ref=y timeout=3601",
                 "timeout= takes seconds from 1 to 3600");
    expect_error(p, "server=http://h/ secret=pass:x ref=y total-timeout=-1",
                 "total-timeout= takes seconds from 0");
    expect_error(p, "server=http://h/ secret=pass:x ref=y "
                 "implicit-confirm=maybe",
                 "implicit-confirm= takes on or off");
    expect_error(p, "server=http://h/ secret=pass:x ref=y digest=nosuch",
                 "digest=nosuch: unknown digest");
    expect_error(p, "server=http://h/ secret=pass:x ref=y recipient=CN=x",
                 "a name like /CN=");
    expect_error(p, "server=http://h/ secret=pass:x ref=y recipient=/CN",
                 "is not TYPE=value");
    expect_error(p, "server=http://h/ secret=pass:x ref=y recipient=/XX=y",
                 "unknown attribute type 'XX'");
    expect_error(p, "server=http://h/ secret=pass:x ref=y proxy=socks://p:1",
                 "a proxy is http://host:port");
    expect_error(p, "server=http://h/ secret=pass:x ref=y flavour=x",
                 "unknown keyword 'flavour'");
    expect_error(p, "server=http://h/ secret=pass:x ref=y orphan",
                 "'orphan' is not keyword=value");

    err = create(&inst, p, "server=http://h/ secret=pass:x ref=y");
    ok(err == NULL && prov->init(inst, p, NULL) != NULL,
       "init() without a CA chain: an error");
}

/* A CA instance at @a url (PBM), initialised with a throwaway CA chain; the
 * CSR of a fresh key in *csr. */
static void *instance_at(apr_pool_t *p, const char *args, X509_REQ **csr)
{
    void *inst = NULL;
    EVP_PKEY *cakey = scep_tap_rsa_key(p, 2048);
    EVP_PKEY *key = scep_tap_rsa_key(p, 2048);
    X509 *ca = scep_tap_cert(p, "Unit CMP CA", cakey, NULL, NULL, 1,
                             KU_KEY_CERT_SIGN, 30);
    const char *err = create(&inst, p, args);

    if (err == NULL) {
        err = prov->init(inst, p, scep_tap_certs(p, ca, NULL));
    }
    ok(err == NULL, "instance %s (%s)", args, err ? err : "ok");
    *csr = scep_tap_csr(p, "unit-cmp", key, NULL);
    return err ? NULL : inst;
}

static void request_of(scep_ca_request_t *req, X509_REQ *csr)
{
    memset(req, 0, sizeof(*req));
    req->csr = csr;
    req->transaction_id = "unit-tid";
    req->profile = "unit";
}

/* a loopback port nobody listens on (bound, then closed) */
static int closed_port(apr_pool_t *p)
{
    apr_socket_t *s;
    apr_sockaddr_t *sa;
    apr_port_t port = 0;

    if (apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, p)
        != APR_SUCCESS
        || apr_socket_create(&s, APR_INET, SOCK_STREAM, APR_PROTO_TCP, p)
           != APR_SUCCESS) {
        return 0;
    }
    if (apr_socket_bind(s, sa) == APR_SUCCESS
        && apr_socket_addr_get(&sa, APR_LOCAL, s) == APR_SUCCESS) {
        port = sa->port;
    }
    apr_socket_close(s);
    return port;
}

static void test_down(apr_pool_t *p)
{
    X509_REQ *csr;
    scep_ca_request_t req;
    scep_ca_reply_t reply;
    int port = closed_port(p);
    time_t t0;
    void *inst = instance_at(p, apr_psprintf(p, "server=http://127.0.0.1:%d/"
                                             "pkix/ secret=pass:x ref=y "
                                             "timeout=20", port), &csr);

    if (inst == NULL || port == 0) {
        skip(3, "no instance or no port");
        return;
    }
    request_of(&req, csr);
    memset(&reply, 0, sizeof(reply));
    t0 = time(NULL);
    prov->enroll(inst, &req, &reply, p);
    is_int(reply.status, SCEP_CA_ERROR, "a closed port: ERROR");
    ok(reply.reason && strstr(reply.reason, "Connection refused")
       && strstr(reply.reason, apr_psprintf(p, "http://127.0.0.1:%d/pkix/",
                                            port)),
       "... the reason names the server and the refusal: %s",
       reply.reason ? reply.reason : "-");
    ok(time(NULL) - t0 <= 3, "... at once, not after timeout=20 (%ld s)",
       (long)(time(NULL) - t0));
}

static void test_silent(apr_pool_t *p)
{
    X509_REQ *csr;
    scep_ca_request_t req;
    scep_ca_reply_t reply;
    apr_socket_t *s;
    apr_sockaddr_t *sa;
    apr_port_t port = 0;
    time_t t0;
    void *inst;

    /* listening, never accepting: the connection is made (backlog), no
     * answer ever comes */
    if (apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, p)
        != APR_SUCCESS
        || apr_socket_create(&s, APR_INET, SOCK_STREAM, APR_PROTO_TCP, p)
           != APR_SUCCESS
        || apr_socket_bind(s, sa) != APR_SUCCESS
        || apr_socket_listen(s, 8) != APR_SUCCESS
        || apr_socket_addr_get(&sa, APR_LOCAL, s) != APR_SUCCESS
        || (port = sa->port) == 0) {
        skip(3, "cannot listen on the loopback");
        return;
    }
    inst = instance_at(p, apr_psprintf(p, "server=http://127.0.0.1:%d/ "
                                       "secret=pass:x ref=y timeout=1",
                                       port), &csr);
    if (inst == NULL) {
        skip(3, "no instance");
        return;
    }
    request_of(&req, csr);
    memset(&reply, 0, sizeof(reply));
    t0 = time(NULL);
    prov->enroll(inst, &req, &reply, p);
    is_int(reply.status, SCEP_CA_ERROR, "a CA that never answers: ERROR");
    ok(reply.reason && strstr(reply.reason, "timeout"),
       "... a timeout: %s", reply.reason ? reply.reason : "-");
    ok(time(NULL) - t0 <= 5, "... after about timeout=1 (%ld s)",
       (long)(time(NULL) - t0));
    apr_socket_close(s);
}

static void test_bad_references(apr_pool_t *p)
{
    static const char *const refs[] = {
        "", "cmp1", "cmp1 00", "cmp1 00 AAAA", "cmp2 00 AAAA http://h/",
        "cmp1 00 !!!notbase64!!! http://127.0.0.1:1/",
        "cmp1 00 MAA= http://127.0.0.1:1/",           /* SEQUENCE {} */
        "cmp1 00 MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA http://h/",
        NULL
    };
    X509_REQ *csr;
    scep_ca_request_t req;
    scep_ca_reply_t reply;
    void *inst = instance_at(p, "server=http://127.0.0.1:1/ secret=pass:x "
                                "ref=y timeout=1", &csr);
    int i;

    if (inst == NULL) {
        skip(8, "no instance");
        return;
    }
    request_of(&req, csr);
    for (i = 0; refs[i]; i++) {
        memset(&reply, 0, sizeof(reply));
        prov->poll(inst, &req, refs[i], &reply, p);
        ok(reply.status == SCEP_CA_REJECTED && reply.reason
           && strstr(reply.reason, "CMP poll: "),
           "poll('%.30s'): REJECTED, not a crash (%s)", refs[i],
           reply.reason ? reply.reason : "-");
    }
    memset(&reply, 0, sizeof(reply));
    prov->poll(inst, &req, NULL, &reply, p);
    is_int(reply.status, SCEP_CA_REJECTED, "poll(NULL): REJECTED");
}

int main(void)
{
    scep_tap_init();
    scep_tap_run("create", test_create);
    scep_tap_run("CA down", test_down);
    scep_tap_run("CA silent", test_silent);
    scep_tap_run("references that are not ours", test_bad_references);
    return scep_tap_done();
}
