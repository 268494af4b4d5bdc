/* Licensed under the Apache License, Version 2.0.
 *
 * The "cmp" CA provider: the CSR goes to an upstream CA over CMP (RFC 4210,
 * RFC 9480; HTTP transfer, RFC 6712) as a p10cr, with OpenSSL's CMP client.
 * CORE: APR and OpenSSL only.
 *
 *   SCEPCAProvider cmp server=http://host:port/path
 *                  (secret=pass:...|file:...|env:... ref=NAME
 *                   | cert=FILE key=FILE-or-URI)
 *                  [trusted=FILE] [untrusted=FILE] [srvcert=FILE]
 *                  [recipient=/CN=...]
 *                  [timeout=S] [total-timeout=S] [implicit-confirm=on]
 *                  [unprotected-errors=on] [digest=NAME] [proxy=URL]
 *
 * docs/providers-cmp-hsm.md has every keyword.
 *
 * Pending requests.  A CA that answers "waiting" (PKIStatus 3, RFC 4210
 * 5.3.22) wants pollReq messages in the same CMP transaction until it
 * delivers.  OpenSSL 3.0 keeps that state inside its OSSL_CMP_CTX, which
 * cannot outlive the request (and may not be shared between threads), while
 * the SCEP poll may reach another process or another node.  So the
 * reference handed to the SCEP layer carries the transaction itself: the
 * pollReq the library built right after the "waiting" answer (transactionID,
 * sender, recipient, senderNonce, and recipNonce = the CA's last
 * senderNonce), DER in base64, and the server it belongs to.  poll() runs
 * the library's request again in a fresh context with the same
 * transactionID, and its transfer callback sends the kept pollReq -- re-
 * protected with the current credentials -- in place of the new request,
 * with the context's senderNonce set to the one of the pollReq.  The CA's
 * answer is then checked and processed by OpenSSL as usual: a certificate
 * response is validated, confirmed (certConf) and returned; a pollRep
 * (still waiting) is validated and gives PENDING with an updated reference
 * (recipNonce = the CA's new senderNonce).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <apr_base64.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_thread_mutex.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/cmp.h>
#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/x509v3.h>

#include "ca_local.h"
#include "scep_pki.h"

#define CMP_DEFAULT_TIMEOUT   30      /* seconds per message */
#define CMP_MAX_TIMEOUT       3600
#define CMP_REASON_MAX        1000    /* characters of a reason line */
#define CMP_REF_MAGIC         "cmp1"

/* PKIBody choices (RFC 4210 5.1.2); OpenSSL 3.0 exports only the requests */
#define CMP_BODY_POLLREQ      25
#define CMP_BODY_POLLREP      26

typedef struct {
    const char *url;           /* server= as configured */
    const char *host;
    const char *path;
    int port;
    const char *proxy;         /* NULL: none (the environment is ignored) */
    const char *proxy_host;
    int proxy_port;
    unsigned char *secret;     /* PBM shared secret */
    int secret_len;
    const char *ref;           /* senderKID with the secret */
    X509 *cert;                /* RA certificate for signature protection */
    STACK_OF(X509) *untrusted; /* its chain (cert= file) plus untrusted= */
    EVP_PKEY *key;
    STACK_OF(X509) *trusted;   /* trust anchors for the CA's responses */
    X509 *srvcert;             /* the CA's CMP certificate, pinned */
    X509_NAME *recipient;      /* header recipient; NULL: the endpoint's CA */
    int msg_timeout;
    int total_timeout;
    int implicit_confirm;
    int unprotected_errors;
    int digest_nid;
    apr_thread_mutex_t *mutex; /* guards issuers: init may run late */
    apr_array_header_t *issuers; /* STACK_OF(X509) *: the endpoint chains */
} ca_cmp_t;

/* One exchange with the CA: the state of the callbacks. */
typedef enum {
    CALL_ENROLL = 0,           /* send the p10cr; keep a pollReq, do not
                                * send it */
    CALL_POLL = 1              /* send the kept pollReq instead of the
                                * p10cr */
} cmp_mode_e;

typedef struct {
    ca_cmp_t *cmp;
    cmp_mode_e mode;
    X509_REQ *csr;
    apr_pool_t *pool;
    OSSL_CMP_MSG *captured;    /* ENROLL: the pollReq after "waiting" */
    OSSL_CMP_MSG *pollreq;     /* POLL: the kept pollReq */
    ASN1_OCTET_STRING *nonce;  /* POLL: its senderNonce */
    ASN1_OCTET_STRING *tid;    /* POLL: its transactionID */
    int pollreq_sent;
    int waiting;               /* POLL: a valid pollRep came back */
    STACK_OF(X509) *chain;     /* the endpoint chain the certificate is of */
    const char *refused;       /* why certConf rejected the certificate */
} cmp_call_t;

/* ---- configuration ---------------------------------------------------- */

static const char *parse_onoff(const char *kw, const char *v, int *out,
                               apr_pool_t *p)
{
    if (!strcasecmp(v, "on") || !strcasecmp(v, "yes") || !strcmp(v, "1")) {
        *out = 1;
        return NULL;
    }
    if (!strcasecmp(v, "off") || !strcasecmp(v, "no") || !strcmp(v, "0")) {
        *out = 0;
        return NULL;
    }
    return apr_psprintf(p, "%s= takes on or off, not '%s'", kw, v);
}

static const char *parse_seconds(const char *kw, const char *v, int *out,
                                 int zero_ok, apr_pool_t *p)
{
    char *end;
    long n = strtol(v, &end, 10);

    if (*v == '\0' || *end || n < (zero_ok ? 0 : 1) || n > CMP_MAX_TIMEOUT) {
        return apr_psprintf(p, "%s= takes seconds from %d to %d, not '%s'",
                            kw, zero_ok ? 0 : 1, CMP_MAX_TIMEOUT, v);
    }
    *out = (int)n;
    return NULL;
}

/* secret=pass:TEXT | file:PATH (its first line) | env:VARIABLE */
static const char *parse_secret(ca_cmp_t *cmp, const char *v, apr_pool_t *p)
{
    const char *s = NULL;

    if (!strncmp(v, "pass:", 5)) {
        s = v + 5;
    }
    else if (!strncmp(v, "env:", 4)) {
        s = getenv(v + 4);
        if (s == NULL) {
            return apr_psprintf(p, "secret=%s: the variable is not set", v);
        }
    }
    else if (!strncmp(v, "file:", 5)) {
        apr_file_t *f;
        char buf[1024];
        apr_size_t n = sizeof(buf) - 1;
        apr_status_t rv = apr_file_open(&f, v + 5, APR_FOPEN_READ,
                                        APR_FPROT_OS_DEFAULT, p);
        if (rv != APR_SUCCESS) {
            return apr_psprintf(p, "secret=%s: %pm", v, &rv);
        }
        memset(buf, 0, sizeof(buf));
        rv = apr_file_read(f, buf, &n);
        apr_file_close(f);
        if (rv != APR_SUCCESS && rv != APR_EOF) {
            return apr_psprintf(p, "secret=%s: %pm", v, &rv);
        }
        buf[strcspn(buf, "\r\n")] = '\0';
        s = apr_pstrdup(p, buf);
        OPENSSL_cleanse(buf, sizeof(buf));
    }
    else {
        return "secret= takes pass:TEXT, file:PATH or env:VARIABLE";
    }
    if (*s == '\0') {
        return "secret= is empty";
    }
    cmp->secret = (unsigned char *)apr_pstrdup(p, s);
    cmp->secret_len = (int)strlen(s);
    return NULL;
}

static const char *parse_server(ca_cmp_t *cmp, const char *v, apr_pool_t *p)
{
    char *host = NULL, *port = NULL, *path = NULL, *query = NULL;
    char *frag = NULL, *user = NULL;
    int ssl = 0, port_num = 0;
    const char *err = NULL;

    if (strncasecmp(v, "http://", 7) && strncasecmp(v, "https://", 8)) {
        return apr_psprintf(p, "server=%s: an http:// URL is needed", v);
    }
    if (!OSSL_HTTP_parse_url(v, &ssl, &user, &host, &port, &port_num, &path,
                             &query, &frag)) {
        err = apr_psprintf(p, "server=%s: not a URL: %s", v,
                           scep_ssl_errors(p));
    }
    else if (ssl) {
        err = apr_psprintf(p, "server=%s: https is not supported (CMP "
                           "messages are protected themselves; use http://, "
                           "or a TLS-terminating proxy with proxy=)", v);
    }
    else if ((user != NULL && *user) || (query != NULL && *query)
             || (frag != NULL && *frag)) {
        err = apr_psprintf(p, "server=%s: no user, query or fragment, "
                           "please", v);
    }
    else {
        cmp->url = apr_pstrdup(p, v);
        cmp->host = apr_pstrdup(p, host);
        cmp->port = port_num;
        cmp->path = apr_pstrdup(p, path && *path ? path : "/");
    }
    OPENSSL_free(host);
    OPENSSL_free(port);
    OPENSSL_free(path);
    OPENSSL_free(query);
    OPENSSL_free(frag);
    OPENSSL_free(user);
    ERR_clear_error();
    return err;
}

/* proxy=http://host:port (a plain HTTP proxy) */
static const char *parse_proxy(ca_cmp_t *cmp, const char *v, apr_pool_t *p)
{
    char *host = NULL, *port = NULL, *path = NULL, *user = NULL;
    int ssl = 0, port_num = 0;
    const char *err = NULL;

    if (strncasecmp(v, "http://", 7)
        || !OSSL_HTTP_parse_url(v, &ssl, &user, &host, &port, &port_num,
                                &path, NULL, NULL)
        || (user != NULL && *user) || host == NULL || *host == '\0') {
        err = apr_psprintf(p, "proxy=%s: a proxy is http://host:port", v);
    }
    else {
        cmp->proxy = apr_pstrdup(p, v);
        cmp->proxy_host = apr_pstrdup(p, host);
        cmp->proxy_port = port_num;
    }
    OPENSSL_free(host);
    OPENSSL_free(port);
    OPENSSL_free(path);
    OPENSSL_free(user);
    ERR_clear_error();
    return err;
}

/* recipient=/CN=Upstream CA/O=Example (OpenSSL's one-line form) */
static const char *parse_dn(ca_cmp_t *cmp, const char *v, apr_pool_t *p)
{
    X509_NAME *name = scep_own_name(p, X509_NAME_new());
    char *copy = apr_pstrdup(p, v), *last = NULL, *rdn;

    if (name == NULL) {
        return "out of memory";
    }
    if (*copy != '/') {
        return apr_psprintf(p, "recipient=%s: a name like /CN=Example CA/O="
                            "Example, please", v);
    }
    for (rdn = apr_strtok(copy, "/", &last); rdn;
         rdn = apr_strtok(NULL, "/", &last)) {
        char *eq = strchr(rdn, '=');
        if (eq == NULL || eq == rdn || eq[1] == '\0') {
            return apr_psprintf(p, "recipient=%s: '%s' is not TYPE=value",
                                v, rdn);
        }
        *eq = '\0';
        if (!X509_NAME_add_entry_by_txt(name, rdn, MBSTRING_UTF8,
                                        (const unsigned char *)eq + 1, -1,
                                        -1, 0)) {
            ERR_clear_error();
            return apr_psprintf(p, "recipient=%s: unknown attribute type "
                                "'%s'", v, rdn);
        }
    }
    cmp->recipient = name;
    return NULL;
}

static const char *cmp_create(void **instance, apr_pool_t *p,
                              int argc, const char *const *argv)
{
    ca_cmp_t *cmp = apr_pcalloc(p, sizeof(*cmp));
    const char *cert_file = NULL, *key_uri = NULL, *trusted_file = NULL;
    const char *untrusted_file = NULL, *srvcert_file = NULL, *err = NULL;
    const char *why = NULL;
    STACK_OF(X509) *certs;
    int i;

    cmp->msg_timeout = CMP_DEFAULT_TIMEOUT;
    cmp->digest_nid = NID_sha256;
    for (i = 0; i < argc && err == NULL; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        const char *kw, *v;

        if (eq == NULL || eq == a) {
            return apr_psprintf(p, "'%s' is not keyword=value (server=, "
                                "secret=, ref=, cert=, key=, trusted=, "
                                "untrusted=, srvcert=, recipient=, timeout=, "
                                "total-timeout=, implicit-confirm=, "
                                "unprotected-errors=, digest=, proxy=)", a);
        }
        kw = apr_pstrmemdup(p, a, eq - a);
        v = eq + 1;
        if (!strcmp(kw, "server")) {
            err = parse_server(cmp, v, p);
        }
        else if (!strcmp(kw, "secret")) {
            err = parse_secret(cmp, v, p);
        }
        else if (!strcmp(kw, "ref")) {
            cmp->ref = *v ? v : NULL;
        }
        else if (!strcmp(kw, "cert")) {
            cert_file = v;
        }
        else if (!strcmp(kw, "key")) {
            key_uri = v;
        }
        else if (!strcmp(kw, "trusted")) {
            trusted_file = v;
        }
        else if (!strcmp(kw, "untrusted")) {
            untrusted_file = v;
        }
        else if (!strcmp(kw, "srvcert")) {
            srvcert_file = v;
        }
        else if (!strcmp(kw, "recipient")) {
            err = parse_dn(cmp, v, p);
        }
        else if (!strcmp(kw, "timeout")) {
            err = parse_seconds(kw, v, &cmp->msg_timeout, 0, p);
        }
        else if (!strcmp(kw, "total-timeout")) {
            err = parse_seconds(kw, v, &cmp->total_timeout, 1, p);
        }
        else if (!strcmp(kw, "implicit-confirm")) {
            err = parse_onoff(kw, v, &cmp->implicit_confirm, p);
        }
        else if (!strcmp(kw, "unprotected-errors")) {
            err = parse_onoff(kw, v, &cmp->unprotected_errors, p);
        }
        else if (!strcmp(kw, "digest")) {
            const EVP_MD *md = EVP_get_digestbyname(v);
            if (md == NULL) {
                err = apr_psprintf(p, "digest=%s: unknown digest", v);
            }
            else {
                cmp->digest_nid = EVP_MD_get_type(md);
            }
        }
        else if (!strcmp(kw, "proxy")) {
            err = *v ? parse_proxy(cmp, v, p) : NULL;
        }
        else {
            err = apr_psprintf(p, "unknown keyword '%s'", kw);
        }
    }
    if (err) {
        return err;
    }
    if (cmp->url == NULL) {
        return "server=http://host:port/path is required";
    }
    if ((cmp->secret != NULL) == (cert_file != NULL)) {
        return "message protection: give either secret= (with ref=) or "
               "cert= and key=";
    }
    if (cmp->secret && cmp->ref == NULL) {
        return "secret= needs ref= (the reference the CA knows the secret "
               "by)";
    }
    if ((cert_file != NULL) != (key_uri != NULL)) {
        return "cert= and key= go together";
    }
    if (cert_file && trusted_file == NULL && srvcert_file == NULL) {
        return "cert= (signature protection) needs trusted= or srvcert= to "
               "check the CA's signed responses";
    }

    if (cert_file) {
        if (scep_load_certs(&certs, cert_file, &why, p) != APR_SUCCESS) {
            return apr_pstrcat(p, "cert=: ", why, NULL);
        }
        cmp->cert = sk_X509_value(certs, 0);
        cmp->untrusted = scep_own_certs(p, sk_X509_new_null());
        for (i = 1; i < sk_X509_num(certs); i++) {
            X509_up_ref(sk_X509_value(certs, i));
            sk_X509_push(cmp->untrusted, sk_X509_value(certs, i));
        }
        if (scep_load_key(&cmp->key, key_uri, &why, p) != APR_SUCCESS) {
            return apr_pstrcat(p, "key=: ", why, NULL);
        }
        if (!scep_key_matches_cert(cmp->key, cmp->cert)) {
            return apr_psprintf(p, "key= does not match the certificate %s "
                                "of cert=%s",
                                scep_name_str(X509_get_subject_name(cmp->cert),
                                              p), cert_file);
        }
    }
    if (untrusted_file) {
        if (scep_load_certs(&certs, untrusted_file, &why, p) != APR_SUCCESS) {
            return apr_pstrcat(p, "untrusted=: ", why, NULL);
        }
        if (cmp->untrusted == NULL) {
            cmp->untrusted = scep_own_certs(p, sk_X509_new_null());
        }
        for (i = 0; i < sk_X509_num(certs); i++) {
            X509_up_ref(sk_X509_value(certs, i));
            sk_X509_push(cmp->untrusted, sk_X509_value(certs, i));
        }
    }
    if (trusted_file
        && scep_load_certs(&cmp->trusted, trusted_file, &why, p)
           != APR_SUCCESS) {
        return apr_pstrcat(p, "trusted=: ", why, NULL);
    }
    if (srvcert_file) {
        if (scep_load_certs(&certs, srvcert_file, &why, p) != APR_SUCCESS) {
            return apr_pstrcat(p, "srvcert=: ", why, NULL);
        }
        cmp->srvcert = sk_X509_value(certs, 0);
    }
    if (apr_thread_mutex_create(&cmp->mutex, APR_THREAD_MUTEX_DEFAULT, p)
        != APR_SUCCESS) {
        return "cannot create a mutex";
    }
    cmp->issuers = apr_array_make(p, 2, sizeof(STACK_OF(X509) *));
    *instance = cmp;
    return NULL;
}

static const char *cmp_init(void *instance, apr_pool_t *p,
                            STACK_OF(X509) *ca_chain)
{
    ca_cmp_t *cmp = instance;
    int i, known = 0;

    if (ca_chain == NULL || sk_X509_num(ca_chain) == 0) {
        return "the cmp CA provider needs SCEPCACertificateFile: the "
               "upstream CA that issues the certificates";
    }
    apr_thread_mutex_lock(cmp->mutex);
    for (i = 0; i < cmp->issuers->nelts; i++) {
        if (APR_ARRAY_IDX(cmp->issuers, i, STACK_OF(X509) *) == ca_chain) {
            known = 1;
        }
    }
    if (!known) {
        APR_ARRAY_PUSH(cmp->issuers, STACK_OF(X509) *) = ca_chain;
    }
    apr_thread_mutex_unlock(cmp->mutex);
    return NULL;
}

/* ---- helpers ------------------------------------------------------------ */

/* OpenSSL's error queue as one line, with the data the CMP library adds
 * (status strings, error details of the CA); emptied. */
static const char *cmp_errors(apr_pool_t *p)
{
    unsigned long e;
    const char *data = NULL, *out = NULL, *item;
    int flags = 0;
    char buf[256];

    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        item = (flags & ERR_TXT_STRING) && data && *data
               ? apr_pstrcat(p, buf, " (", data, ")", NULL) : buf;
        out = out ? apr_pstrcat(p, out, "; ", item, NULL)
                  : apr_pstrdup(p, item);
    }
    if (out == NULL) {
        return "no OpenSSL error";
    }
    if (strlen(out) > CMP_REASON_MAX) {
        out = apr_pstrcat(p, apr_pstrmemdup(p, out, CMP_REASON_MAX), "...",
                          NULL);
    }
    {
        char *s = (char *)out;
        for (; *s; s++) {
            if (*s == '\n' || *s == '\r') {
                *s = ' ';
            }
        }
    }
    return out;
}

static const char *hex_of(const ASN1_OCTET_STRING *o, apr_pool_t *p)
{
    const unsigned char *d = ASN1_STRING_get0_data(o);
    int i, n = ASN1_STRING_length(o);
    char *out = apr_palloc(p, (apr_size_t)n * 2 + 1);

    for (i = 0; i < n; i++) {
        apr_snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
    out[2 * n] = '\0';
    return out;
}

/* The senderNonce ([5] of the PKIHeader, RFC 4210 5.1.1) of @a msg; the
 * 3.0 API has no getter for it. */
static ASN1_OCTET_STRING *sender_nonce(const OSSL_CMP_MSG *msg)
{
    unsigned char *der = NULL;
    const unsigned char *q, *end, *inner;
    long len, ilen;
    int n, tag, cls, ret;
    ASN1_OCTET_STRING *nonce = NULL;

    n = i2d_OSSL_CMP_PKIHEADER(OSSL_CMP_MSG_get0_header(msg), &der);
    if (n <= 0) {
        return NULL;
    }
    q = der;
    ret = ASN1_get_object(&q, &len, &tag, &cls, n);
    if ((ret & 0x80) || tag != V_ASN1_SEQUENCE) {
        goto leave;
    }
    end = q + len;
    while (q < end && nonce == NULL) {
        ret = ASN1_get_object(&q, &len, &tag, &cls, end - q);
        if ((ret & 0x80) || len > end - q) {
            break;
        }
        if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 5) {
            inner = q;
            ilen = len;
            nonce = d2i_ASN1_OCTET_STRING(NULL, &inner, ilen);
        }
        q += len;
    }
leave:
    OPENSSL_free(der);
    return nonce;
}

/* certConf: is the certificate the CA returned one of the CSR's key, issued
 * by the endpoint's CA?  A non-zero failInfo rejects it (and the CA hears
 * so in certConf). */
static int cmp_check_cert(OSSL_CMP_CTX *ctx, X509 *cert, int fail_info,
                          const char **txt)
{
    cmp_call_t *call = OSSL_CMP_CTX_get_certConf_cb_arg(ctx);
    ca_cmp_t *cmp = call->cmp;
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    int i;

    if (fail_info != 0) {
        return fail_info;
    }
    if (pub == NULL || call->csr == NULL
        || EVP_PKEY_eq(pub, X509_REQ_get0_pubkey(call->csr)) != 1) {
        call->refused = "the certificate the CA returned is not for the "
                        "CSR's public key";
        *txt = call->refused;
        ERR_clear_error();
        return 1 << OSSL_CMP_PKIFAILUREINFO_badCertTemplate;
    }
    apr_thread_mutex_lock(cmp->mutex);
    for (i = 0; i < cmp->issuers->nelts && call->chain == NULL; i++) {
        STACK_OF(X509) *chain = APR_ARRAY_IDX(cmp->issuers, i,
                                              STACK_OF(X509) *);
        X509 *ca = sk_X509_value(chain, 0);
        if (X509_check_issued(ca, cert) == X509_V_OK
            && X509_verify(cert, X509_get0_pubkey(ca)) == 1) {
            call->chain = chain;
        }
    }
    apr_thread_mutex_unlock(cmp->mutex);
    ERR_clear_error();
    if (call->chain == NULL) {
        call->refused = apr_psprintf(call->pool, "the certificate the CA "
                                     "returned (issuer %s) is not issued by "
                                     "the endpoint's CA "
                                     "(SCEPCACertificateFile)",
                                     scep_name_str(X509_get_issuer_name(cert),
                                                   call->pool));
        *txt = call->refused;
        return 1 << OSSL_CMP_PKIFAILUREINFO_incorrectData;
    }
    return 0;
}

/* Connect to host:port within the timeout.  Not BIO_do_connect_retry()
 * (what OSSL_CMP_MSG_http_perform uses): it retries a refused connection
 * until the timeout, and a CA that is down should cost no time. */
static BIO *cmp_connect(const char *host, const char *port, int timeout)
{
    BIO *bio = BIO_new_connect(host);
    time_t max_time = timeout > 0 ? time(NULL) + timeout : 0;
    int rv;

    if (bio == NULL || !BIO_set_conn_port(bio, port)
        || BIO_set_nbio(bio, 1) <= 0) {
        BIO_free_all(bio);
        return NULL;
    }
    for (;;) {
        rv = BIO_do_connect(bio);
        if (rv > 0) {
            return bio;
        }
        if (!BIO_should_retry(bio)) {
            break;      /* refused, unreachable, no such host */
        }
        rv = BIO_wait(bio, max_time, 100);
        if (rv <= 0) {
            if (rv == 0) {
                ERR_raise_data(ERR_LIB_BIO, BIO_R_CONNECT_TIMEOUT,
                               "%s:%s after %d s", host, port, timeout);
            }
            break;
        }
    }
    BIO_free_all(bio);
    return NULL;
}

/* One CMP message over HTTP (RFC 6712) and the answer.  One connection per
 * message: a pending transaction goes on over another connection anyway,
 * and OpenSSL's own server drops the transaction when a kept-alive
 * connection closes.  No proxy unless proxy= says so (the environment's
 * http_proxy is not httpd's business). */
static OSSL_CMP_MSG *cmp_http(ca_cmp_t *cmp, const OSSL_CMP_MSG *req,
                              int timeout)
{
    BIO *conn = NULL, *body = NULL, *rsp = NULL;
    OSSL_CMP_MSG *msg = NULL;
    char port[16], at_port[16];
    const char *path = cmp->path;

    apr_snprintf(port, sizeof(port), "%d", cmp->port);
    if (cmp->proxy) {
        /* to the proxy, asking for the absolute URL */
        apr_snprintf(at_port, sizeof(at_port), "%d", cmp->proxy_port);
        path = cmp->url;
    }
    if ((body = BIO_new(BIO_s_mem())) == NULL
        || i2d_OSSL_CMP_MSG_bio(body, req) <= 0
        || (conn = cmp_connect(cmp->proxy ? cmp->proxy_host : cmp->host,
                               cmp->proxy ? at_port : port,
                               timeout)) == NULL) {
        goto leave;
    }
    rsp = OSSL_HTTP_transfer(NULL, cmp->host, port, path, 0, NULL, NULL,
                             conn, NULL, NULL, NULL, 0, NULL,
                             "application/pkixcmp", body,
                             "application/pkixcmp", 1,
                             OSSL_HTTP_DEFAULT_MAX_RESP_LEN, timeout, 0);
    if (rsp != NULL) {
        msg = d2i_OSSL_CMP_MSG_bio(rsp, NULL);
    }
leave:
    BIO_free(rsp);
    BIO_free(body);
    BIO_free_all(conn);
    return msg;
}

/* Every message to the CA goes through here (one HTTP POST each). */
static OSSL_CMP_MSG *cmp_transfer(OSSL_CMP_CTX *ctx, const OSSL_CMP_MSG *req)
{
    cmp_call_t *call = OSSL_CMP_CTX_get_transfer_cb_arg(ctx);
    OSSL_CMP_MSG *rsp;
    int type = OSSL_CMP_MSG_get_bodytype(req), our_pollreq = 0;

    if (call->mode == CALL_ENROLL && type == CMP_BODY_POLLREQ) {
        /* The CA said "waiting".  Keep the pollReq for later, do not ask
         * again now: the SCEP client polls at its own pace. */
        call->captured = OSSL_CMP_MSG_dup(req);
        return NULL;
    }
    if (call->mode == CALL_POLL && !call->pollreq_sent) {
        /* The library's opening request (a p10cr): send the pollReq of the
         * transaction instead, and expect the CA to answer it. */
        call->pollreq_sent = 1;
        if (!OSSL_CMP_CTX_set1_senderNonce(ctx, call->nonce)) {
            return NULL;
        }
        req = call->pollreq;
        our_pollreq = 1;
    }
    /* the library shortens the message timeout to what total-timeout
     * leaves */
    rsp = cmp_http(call->cmp, req,
                   OSSL_CMP_CTX_get_option(ctx, OSSL_CMP_OPT_MSG_TIMEOUT));
    if (rsp != NULL && our_pollreq
        && OSSL_CMP_MSG_get_bodytype(rsp) == CMP_BODY_POLLREP) {
        /* Still waiting.  The library expects a certificate response and
         * will refuse the pollRep after checking it; check it here too, so
         * that "waiting" is only believed from the CA itself. */
        OSSL_CMP_PKIHEADER *hdr = OSSL_CMP_MSG_get0_header(rsp);
        const ASN1_OCTET_STRING *tid = OSSL_CMP_HDR_get0_transactionID(hdr);
        const ASN1_OCTET_STRING *rn = OSSL_CMP_HDR_get0_recipNonce(hdr);

        call->waiting = OSSL_CMP_validate_msg(ctx, rsp)
                        && tid && ASN1_OCTET_STRING_cmp(tid, call->tid) == 0
                        && rn && ASN1_OCTET_STRING_cmp(rn, call->nonce) == 0;
    }
    return rsp;
}

static OSSL_CMP_CTX *cmp_ctx_make(ca_cmp_t *cmp, cmp_call_t *call,
                                  apr_pool_t *p)
{
    OSSL_CMP_CTX *ctx = OSSL_CMP_CTX_new(NULL, NULL);
    X509_STORE *store = NULL;
    const X509_NAME *recipient;
    int i;

    if (ctx == NULL) {
        return NULL;
    }
    if (!OSSL_CMP_CTX_set1_server(ctx, cmp->host)
        || !OSSL_CMP_CTX_set_serverPort(ctx, cmp->port)
        || !OSSL_CMP_CTX_set1_serverPath(ctx, cmp->path)
        || !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_LOG_VERBOSITY,
                                    OSSL_CMP_LOG_EMERG)
        || !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_MSG_TIMEOUT,
                                    cmp->msg_timeout)
        || !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_TOTAL_TIMEOUT,
                                    cmp->total_timeout)
        || !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_IMPLICIT_CONFIRM,
                                    cmp->implicit_confirm)
        || !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_UNPROTECTED_ERRORS,
                                    cmp->unprotected_errors)
        || !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_DIGEST_ALGNID,
                                    cmp->digest_nid)
        || !OSSL_CMP_CTX_set_transfer_cb(ctx, cmp_transfer)
        || !OSSL_CMP_CTX_set_transfer_cb_arg(ctx, call)
        || !OSSL_CMP_CTX_set_certConf_cb(ctx, cmp_check_cert)
        || !OSSL_CMP_CTX_set_certConf_cb_arg(ctx, call)
        || (call->csr && !OSSL_CMP_CTX_set1_p10CSR(ctx, call->csr))) {
        goto fail;
    }
    if (cmp->secret
        && (!OSSL_CMP_CTX_set1_secretValue(ctx, cmp->secret,
                                           cmp->secret_len)
            || !OSSL_CMP_CTX_set1_referenceValue(
                   ctx, (const unsigned char *)cmp->ref,
                   (int)strlen(cmp->ref)))) {
        goto fail;
    }
    if (cmp->cert
        && (!OSSL_CMP_CTX_set1_cert(ctx, cmp->cert)
            || !OSSL_CMP_CTX_set1_pkey(ctx, cmp->key))) {
        goto fail;
    }
    /* (3.0 leaves the context without a stack when given an empty one) */
    if (cmp->untrusted && sk_X509_num(cmp->untrusted) > 0
        && !OSSL_CMP_CTX_set1_untrusted(ctx, cmp->untrusted)) {
        goto fail;
    }
    if (cmp->srvcert && !OSSL_CMP_CTX_set1_srvCert(ctx, cmp->srvcert)) {
        goto fail;
    }
    /* the header's recipient: as configured, else the CA that issues */
    recipient = cmp->recipient;
    if (recipient == NULL) {
        apr_thread_mutex_lock(cmp->mutex);
        if (cmp->issuers->nelts > 0) {
            recipient = X509_get_subject_name(sk_X509_value(
                APR_ARRAY_IDX(cmp->issuers, 0, STACK_OF(X509) *), 0));
        }
        apr_thread_mutex_unlock(cmp->mutex);
    }
    if (recipient && !OSSL_CMP_CTX_set1_recipient(ctx, recipient)) {
        goto fail;
    }
    if (cmp->trusted) {
        if ((store = X509_STORE_new()) == NULL) {
            goto fail;
        }
        for (i = 0; i < sk_X509_num(cmp->trusted); i++) {
            if (!X509_STORE_add_cert(store, sk_X509_value(cmp->trusted, i))) {
                goto fail;
            }
        }
        if (!OSSL_CMP_CTX_set0_trustedStore(ctx, store)) {
            goto fail;
        }
        store = NULL;   /* the context's now */
    }
    return ctx;

fail:
    X509_STORE_free(store);
    OSSL_CMP_CTX_free(ctx);
    return NULL;
}

/* The issued certificate first, then the endpoint's chain. */
static void reply_issued(cmp_call_t *call, OSSL_CMP_CTX *ctx,
                         scep_ca_reply_t *reply, apr_pool_t *p)
{
    X509 *cert = OSSL_CMP_CTX_get0_newCert(ctx);
    STACK_OF(X509) *certs;
    int i;

    if (cert == NULL || call->chain == NULL) {
        reply->status = SCEP_CA_ERROR;
        reply->reason = "CMP: the CA's answer holds no usable certificate";
        return;
    }
    certs = scep_own_certs(p, sk_X509_new_null());
    if (certs == NULL) {
        reply->status = SCEP_CA_ERROR;
        reply->reason = "CMP: out of memory";
        return;
    }
    X509_up_ref(cert);
    sk_X509_push(certs, cert);
    for (i = 0; i < sk_X509_num(call->chain); i++) {
        X509 *c = sk_X509_value(call->chain, i);
        X509_up_ref(c);
        sk_X509_push(certs, c);
    }
    reply->certs = certs;
    reply->status = SCEP_CA_ISSUED;
}

/* The CA refused, or the exchange failed: which, and why, in one line. */
static void reply_failed(cmp_call_t *call, OSSL_CMP_CTX *ctx,
                         scep_ca_reply_t *reply, const char *what,
                         apr_pool_t *p)
{
    char buf[OSSL_CMP_PKISI_BUFLEN];
    const char *errs = cmp_errors(p);

    if (call->refused) {
        /* we refused what the CA sent, and told it so in certConf */
        reply->status = SCEP_CA_REJECTED;
        reply->reason = apr_psprintf(p, "CMP %s at %s: %s (%s)", what,
                                     call->cmp->url, call->refused, errs);
    }
    else if (OSSL_CMP_CTX_get_status(ctx) == OSSL_CMP_PKISTATUS_rejection) {
        reply->status = SCEP_CA_REJECTED;
        reply->reason = apr_psprintf(
            p, "CMP %s at %s rejected: %s (%s)", what, call->cmp->url,
            OSSL_CMP_CTX_snprint_PKIStatus(ctx, buf, sizeof(buf))
            ? buf : "rejection", errs);
    }
    else {
        reply->status = SCEP_CA_ERROR;
        reply->reason = apr_psprintf(p, "CMP %s at %s failed: %s", what,
                                     call->cmp->url, errs);
    }
}

/* "cmp1 TID-HEX BASE64-DER-OF-POLLREQ SERVER-URL" */
static const char *make_reference(ca_cmp_t *cmp, const OSSL_CMP_MSG *pollreq,
                                  apr_pool_t *p)
{
    unsigned char *der = NULL;
    int n = i2d_OSSL_CMP_MSG(pollreq, &der);
    const ASN1_OCTET_STRING *tid;
    char *b64;

    if (n <= 0) {
        return NULL;
    }
    b64 = apr_palloc(p, apr_base64_encode_len(n));
    apr_base64_encode_binary(b64, der, n);
    OPENSSL_free(der);
    tid = OSSL_CMP_HDR_get0_transactionID(OSSL_CMP_MSG_get0_header(pollreq));
    if (tid == NULL) {
        return NULL;
    }
    return apr_pstrcat(p, CMP_REF_MAGIC " ", hex_of(tid, p), " ", b64, " ",
                       cmp->url, NULL);
}

/* ---- enroll and poll ---------------------------------------------------- */

static apr_status_t cmp_enroll(void *instance, const scep_ca_request_t *req,
                               scep_ca_reply_t *reply, apr_pool_t *p)
{
    ca_cmp_t *cmp = instance;
    cmp_call_t call;
    OSSL_CMP_CTX *ctx;
    int rc, check_after = 0;

    memset(&call, 0, sizeof(call));
    call.cmp = cmp;
    call.mode = CALL_ENROLL;
    call.csr = req->csr;
    call.pool = p;
    reply->status = SCEP_CA_ERROR;
    ERR_clear_error();
    if ((ctx = cmp_ctx_make(cmp, &call, p)) == NULL) {
        reply->reason = apr_psprintf(p, "CMP: cannot set up the client: %s",
                                     cmp_errors(p));
        return APR_SUCCESS;
    }
    rc = OSSL_CMP_try_certreq(ctx, OSSL_CMP_P10CR, NULL,
                              &check_after);
    if (rc == 1) {
        reply_issued(&call, ctx, reply, p);
    }
    else if (call.captured != NULL) {
        /* "waiting": the pollReq is the handle */
        ERR_clear_error();
        reply->reference = make_reference(cmp, call.captured, p);
        if (reply->reference == NULL) {
            reply->status = SCEP_CA_ERROR;
            reply->reason = apr_psprintf(p, "CMP: cannot keep the pending "
                                         "transaction: %s", cmp_errors(p));
        }
        else {
            reply->status = SCEP_CA_PENDING;
        }
    }
    else {
        reply_failed(&call, ctx, reply, "p10cr", p);
    }
    OSSL_CMP_MSG_free(call.captured);
    OSSL_CMP_CTX_free(ctx);
    ERR_clear_error();
    return APR_SUCCESS;
}

/* Split a reference; the pollReq is decoded into *msg (caller frees). */
static const char *parse_reference(const char *ref, OSSL_CMP_MSG **msg,
                                   const char **server, apr_pool_t *p)
{
    char *copy = apr_pstrdup(p, ref), *last = NULL;
    const char *magic, *tid, *b64, *url;
    unsigned char *der;
    const unsigned char *q;
    int n;

    *msg = NULL;
    /* (apr_strtok must not go on once it returned NULL) */
    tid = b64 = url = NULL;
    if ((magic = apr_strtok(copy, " ", &last)) != NULL
        && (tid = apr_strtok(NULL, " ", &last)) != NULL
        && (b64 = apr_strtok(NULL, " ", &last)) != NULL) {
        url = apr_strtok(NULL, " ", &last);
    }
    if (magic == NULL || strcmp(magic, CMP_REF_MAGIC) || url == NULL) {
        return "not a reference of the cmp provider";
    }
    der = apr_palloc(p, apr_base64_decode_len(b64));
    n = apr_base64_decode_binary(der, b64);
    q = der;
    if (n <= 0 || (*msg = d2i_OSSL_CMP_MSG(NULL, &q, n)) == NULL
        || OSSL_CMP_MSG_get_bodytype(*msg) != CMP_BODY_POLLREQ) {
        OSSL_CMP_MSG_free(*msg);
        *msg = NULL;
        ERR_clear_error();
        return "the reference holds no CMP pollReq";
    }
    *server = url;
    return NULL;
}

static apr_status_t cmp_poll(void *instance, const scep_ca_request_t *req,
                             const char *reference, scep_ca_reply_t *reply,
                             apr_pool_t *p)
{
    ca_cmp_t *cmp = instance;
    cmp_call_t call;
    OSSL_CMP_CTX *ctx = NULL;
    const char *err, *server = NULL;
    int rc, check_after = 0;

    memset(&call, 0, sizeof(call));
    call.cmp = cmp;
    call.mode = CALL_POLL;
    call.csr = req->csr;
    call.pool = p;
    reply->status = SCEP_CA_ERROR;
    ERR_clear_error();
    if ((err = parse_reference(reference ? reference : "", &call.pollreq,
                               &server, p)) != NULL) {
        reply->status = SCEP_CA_REJECTED;
        reply->reason = apr_pstrcat(p, "CMP poll: ", err, NULL);
        goto leave;
    }
    if (strcmp(server, cmp->url)) {
        /* the transaction lives at the CA it was sent to */
        reply->status = SCEP_CA_REJECTED;
        reply->reason = apr_psprintf(p, "CMP poll: the request is pending "
                                     "at %s, this endpoint now uses %s",
                                     server, cmp->url);
        goto leave;
    }
    if (req->csr == NULL) {
        reply->reason = "CMP poll: the CSR of the pending request is not "
                        "available";
        goto leave;
    }
    call.tid = ASN1_OCTET_STRING_dup(OSSL_CMP_HDR_get0_transactionID(
                                         OSSL_CMP_MSG_get0_header(
                                             call.pollreq)));
    call.nonce = sender_nonce(call.pollreq);
    if (call.tid == NULL || call.nonce == NULL) {
        reply->status = SCEP_CA_REJECTED;
        reply->reason = "CMP poll: the kept pollReq has no transactionID "
                        "or senderNonce";
        goto leave;
    }
    if ((ctx = cmp_ctx_make(cmp, &call, p)) == NULL
        || !OSSL_CMP_CTX_set1_transactionID(ctx, call.tid)
        /* re-protect with today's credentials (same transaction) */
        || !OSSL_CMP_MSG_update_transactionID(ctx, call.pollreq)) {
        reply->reason = apr_psprintf(p, "CMP poll: cannot set up the "
                                     "client: %s", cmp_errors(p));
        goto leave;
    }
    rc = OSSL_CMP_try_certreq(ctx, OSSL_CMP_P10CR, NULL,
                              &check_after);
    if (rc == 1) {
        reply_issued(&call, ctx, reply, p);
    }
    else if (call.waiting) {
        /* the next pollReq answers the CA's latest message */
        ERR_clear_error();
        reply->status = SCEP_CA_PENDING;
        reply->reference = reference;
        if (OSSL_CMP_MSG_update_recipNonce(ctx, call.pollreq)) {
            const char *next = make_reference(cmp, call.pollreq, p);
            if (next) {
                reply->reference = next;
            }
        }
    }
    else {
        reply_failed(&call, ctx, reply, "pollReq", p);
    }

leave:
    OSSL_CMP_CTX_free(ctx);
    OSSL_CMP_MSG_free(call.pollreq);
    ASN1_OCTET_STRING_free(call.tid);
    ASN1_OCTET_STRING_free(call.nonce);
    ERR_clear_error();
    return APR_SUCCESS;
}

const scep_ca_provider_t scep_ca_cmp_provider = {
    "cmp",
    cmp_create,
    cmp_init,
    cmp_enroll,
    cmp_poll,
    NULL,   /* get_cert: the upstream CA keeps its certificates */
    NULL,   /* get_crl */
    NULL    /* revoke: an rr to the CA would do; not yet */
};
