/* Licensed under the Apache License, Version 2.0.
 *
 * scep-client: the project's own SCEP (RFC 8894) test client.  It can send
 * every operation the real clients never send (GetCert, GetCRL, CertPoll,
 * GetNextCACert) and craft broken messages on purpose (wrong messageType,
 * no transactionID, bad signature, disallowed algorithms, arbitrary bytes).
 *
 *   scep-client getcaps URL
 *   scep-client getcacert URL --out DIR
 *   scep-client getnextcacert URL --out DIR
 *   scep-client enroll URL --key key.pem --out cert.pem --cn NAME [...]
 *   scep-client renew URL --signer-cert old.pem --signer-key old.key ...
 *   scep-client poll URL --key key.pem --cn NAME [...]
 *   scep-client getcert URL --serial HEX [--out cert.pem] [...]
 *   scep-client getcrl URL --cert cert.pem [--out crl.pem] [...]
 *   scep-client raw URL --body FILE [--get]
 *
 * HTTP/1.1 over plain TCP with APR sockets, one request per connection.
 * Exit status: 0 SUCCESS (or the operation worked), 2 FAILURE, 3 PENDING,
 * 1 transport, HTTP or decoding error, 64 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_network_io.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_uri.h>

#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "scep_msg.h"
#include "scep_pki.h"
#include "scep_client.h"

#define EXIT_OK        0
#define EXIT_ERROR     1
#define EXIT_FAILURE_  2
#define EXIT_PENDING   3
#define EXIT_USAGE     64

#define HTTP_MAX_REPLY (64 * 1024 * 1024)
#define HTTP_TIMEOUT   60

typedef struct {
    const char *cmd;
    const char *url;
    const char *out;
    const char *key;
    const char *cn;
    const char *challenge;
    int utf8_challenge;
    const char *ca;
    const char *cipher;
    const char *digest;
    int get;
    int urlsafe;
    int no_content_type;
    const char *content_type;
    const char *tid;
    int no_tid;
    int message_type;
    const char *message_type_string;
    int no_message_type;
    apr_array_header_t *sans;
    const char *encrypt_to;
    int corrupt_signature;
    const char *dump_request;
    const char *dump_reply;
    int verbose;
    const char *body;
    int query;
    const char *signer_cert;
    const char *signer_key;
    const char *serial;
    const char *cert;
    const char *content;
    const char *message;
    int no_check;
    int legacy;
    const char *nonce;
    int oaep;
    const char *ku;
} opts_t;

typedef struct {
    int status;
    const char *status_line;
    const char *content_type;
    const unsigned char *body;
    apr_size_t body_len;
} http_reply_t;

static opts_t o;
static apr_pool_t *pool;
static OSSL_PROVIDER *prov_legacy, *prov_default;

/* ---- output helpers ---------------------------------------------------- */

static void verbose(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void verbose(const char *fmt, ...)
{
    va_list ap;

    if (!o.verbose) {
        return;
    }
    va_start(ap, fmt);
    fputs("* ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("scep-client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

static const char *ssl_err(void)
{
    return scep_ssl_errors(pool);
}

/* First line of a body, printable: control and high bytes as \xNN. */
static const char *first_line(const unsigned char *b, apr_size_t len)
{
    apr_size_t i;
    char *out = apr_palloc(pool, 4 * 200 + 1), *w = out;

    for (i = 0; i < len && i < 200; i++) {
        if (b[i] == '\n' || b[i] == '\r') {
            break;
        }
        if (b[i] >= 0x20 && b[i] < 0x7f) {
            *w++ = (char)b[i];
        }
        else {
            w += sprintf(w, "\\x%02x", b[i]);
        }
    }
    *w = 0;
    return out;
}

static apr_status_t write_file(const char *path, const void *data,
                               apr_size_t len, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    const char *d = data;
    ssize_t n;

    if (fd < 0) {
        return errno;
    }
    while (len > 0) {
        n = write(fd, d, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            close(fd);
            return errno;
        }
        d += n;
        len -= (apr_size_t)n;
    }
    return close(fd) == 0 ? APR_SUCCESS : errno;
}

static apr_status_t read_file(const char *path, const unsigned char **data,
                              apr_size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    apr_size_t n = 0, cap = 0, r;

    if (f == NULL) {
        return errno;
    }
    for (;;) {
        if (cap - n < 65536) {
            unsigned char *nb;
            cap = cap ? cap * 2 : 65536;
            nb = apr_palloc(pool, cap);
            if (n) {
                memcpy(nb, buf, n);
            }
            buf = nb;
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            break;
        }
    }
    fclose(f);
    *data = buf;
    *len = n;
    return APR_SUCCESS;
}

static const char *pem_cert(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *d;
    long n;
    const char *out;

    PEM_write_bio_X509(b, x);
    n = BIO_get_mem_data(b, &d);
    out = apr_pstrmemdup(pool, d, (apr_size_t)n);
    BIO_free(b);
    return out;
}

static const char *ku_str(X509 *x)
{
    static const struct { unsigned int bit; const char *name; } kus[] = {
        { KU_DIGITAL_SIGNATURE, "digitalSignature" },
        { KU_NON_REPUDIATION, "nonRepudiation" },
        { KU_KEY_ENCIPHERMENT, "keyEncipherment" },
        { KU_DATA_ENCIPHERMENT, "dataEncipherment" },
        { KU_KEY_AGREEMENT, "keyAgreement" },
        { KU_KEY_CERT_SIGN, "keyCertSign" },
        { KU_CRL_SIGN, "cRLSign" },
        { KU_ENCIPHER_ONLY, "encipherOnly" },
        { KU_DECIPHER_ONLY, "decipherOnly" },
    };
    uint32_t ku = X509_get_key_usage(x);
    const char *out = NULL;
    unsigned int i;

    if (ku == UINT32_MAX) {
        return "(no keyUsage extension)";
    }
    for (i = 0; i < sizeof(kus) / sizeof(kus[0]); i++) {
        if (ku & kus[i].bit) {
            out = out ? apr_pstrcat(pool, out, ",", kus[i].name, NULL)
                      : kus[i].name;
        }
    }
    return out ? out : "(empty)";
}

/* ---- HTTP -------------------------------------------------------------- */

static const char *find_header(const char *headers, const char *name)
{
    const char *h = headers;
    apr_size_t nl = strlen(name);

    while (h && *h) {
        const char *eol = strstr(h, "\r\n");
        if (eol == NULL) {
            eol = h + strlen(h);
        }
        if ((apr_size_t)(eol - h) > nl && strncasecmp(h, name, nl) == 0
            && h[nl] == ':') {
            const char *v = h + nl + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            return apr_pstrmemdup(pool, v, (apr_size_t)(eol - v));
        }
        h = *eol ? eol + 2 : eol;
    }
    return NULL;
}

/* Undo Transfer-Encoding: chunked.  APR_EINVAL when malformed. */
static apr_status_t dechunk(const unsigned char *in, apr_size_t len,
                            const unsigned char **out, apr_size_t *outlen)
{
    unsigned char *buf = apr_palloc(pool, len + 1);
    apr_size_t pos = 0, n = 0;

    for (;;) {
        char *end;
        unsigned long sz;
        const unsigned char *eol;

        eol = memchr(in + pos, '\n', len - pos);
        if (eol == NULL) {
            return APR_EINVAL;
        }
        sz = strtoul((const char *)in + pos, &end, 16);
        pos = (apr_size_t)(eol - in) + 1;
        if (sz == 0) {
            break;
        }
        if (sz > len - pos) {
            return APR_EINVAL;
        }
        memcpy(buf + n, in + pos, sz);
        n += sz;
        pos += sz;
        if (pos + 2 <= len && in[pos] == '\r' && in[pos + 1] == '\n') {
            pos += 2;
        }
        else if (pos + 1 <= len && in[pos] == '\n') {
            pos += 1;
        }
    }
    *out = buf;
    *outlen = n;
    return APR_SUCCESS;
}

static apr_status_t send_all(apr_socket_t *s, const char *data,
                             apr_size_t len)
{
    apr_status_t rv = APR_SUCCESS;

    while (rv == APR_SUCCESS && len > 0) {
        apr_size_t n = len;
        rv = apr_socket_send(s, data, &n);
        data += n;
        len -= n;
    }
    return rv;
}

static apr_status_t http_request(http_reply_t *rep, const char *method,
                                 const char *url, const char *ctype,
                                 const unsigned char *body, apr_size_t blen)
{
    apr_uri_t uri;
    apr_sockaddr_t *sa;
    apr_socket_t *s = NULL;
    apr_port_t port;
    apr_status_t rv;
    const char *path, *req, *hostport;
    unsigned char *buf;
    apr_size_t n = 0, cap = 65536;
    const char *hdr_end, *h, *cl, *te;
    char *headers;

    memset(rep, 0, sizeof(*rep));
    if (apr_uri_parse(pool, url, &uri) != APR_SUCCESS || uri.hostname == NULL
        || uri.scheme == NULL || strcasecmp(uri.scheme, "http") != 0) {
        fail(0, "not an http:// URL: %s", url);
        return APR_EINVAL;
    }
    port = uri.port ? uri.port : 80;
    path = uri.path ? uri.path : "/";
    if (uri.query) {
        path = apr_pstrcat(pool, path, "?", uri.query, NULL);
    }
    hostport = uri.port_str ? apr_pstrcat(pool, uri.hostname, ":",
                                          uri.port_str, NULL)
                            : uri.hostname;
    req = apr_psprintf(pool, "%s %s HTTP/1.1\r\nHost: %s\r\n"
                       "User-Agent: scep-client (mod_scep tests)\r\n"
                       "Accept: */*\r\nConnection: close\r\n",
                       method, path, hostport);
    if (ctype) {
        req = apr_pstrcat(pool, req, "Content-Type: ", ctype, "\r\n", NULL);
    }
    if (body || strcmp(method, "POST") == 0) {
        req = apr_pstrcat(pool, req, "Content-Length: ",
                          apr_psprintf(pool, "%" APR_SIZE_T_FMT, blen),
                          "\r\n", NULL);
    }
    req = apr_pstrcat(pool, req, "\r\n", NULL);
    verbose("%s %s (%" APR_SIZE_T_FMT " bytes of request line)", method,
            hostport, strlen(path));

    rv = apr_sockaddr_info_get(&sa, uri.hostname, APR_UNSPEC, port, 0, pool);
    if (rv == APR_SUCCESS) {
        rv = apr_socket_create(&s, sa->family, SOCK_STREAM, APR_PROTO_TCP,
                               pool);
    }
    if (rv == APR_SUCCESS) {
        apr_socket_timeout_set(s, apr_time_from_sec(HTTP_TIMEOUT));
        rv = apr_socket_connect(s, sa);
    }
    if (rv != APR_SUCCESS) {
        char err[256];
        fail(0, "cannot connect to %s: %s", hostport,
             apr_strerror(rv, err, sizeof(err)));
        return rv;
    }
    rv = send_all(s, req, strlen(req));
    if (rv == APR_SUCCESS && blen > 0) {
        rv = send_all(s, (const char *)body, blen);
    }
    if (rv != APR_SUCCESS) {
        char err[256];
        apr_socket_close(s);
        fail(0, "sending the request: %s", apr_strerror(rv, err, sizeof(err)));
        return rv;
    }

    buf = apr_palloc(pool, cap + 1);
    for (;;) {
        apr_size_t got;
        if (cap - n < 16384) {
            unsigned char *nb;
            if (cap >= HTTP_MAX_REPLY) {
                apr_socket_close(s);
                fail(0, "reply larger than %d bytes", HTTP_MAX_REPLY);
                return APR_ENOSPC;
            }
            cap *= 2;
            nb = apr_palloc(pool, cap + 1);
            memcpy(nb, buf, n);
            buf = nb;
        }
        got = cap - n;
        rv = apr_socket_recv(s, (char *)buf + n, &got);
        n += got;
        if (rv == APR_EOF) {
            break;
        }
        if (rv != APR_SUCCESS) {
            char err[256];
            apr_socket_close(s);
            fail(0, "reading the reply: %s", apr_strerror(rv, err,
                                                          sizeof(err)));
            return rv;
        }
    }
    apr_socket_close(s);
    buf[n] = 0;

    hdr_end = strstr((const char *)buf, "\r\n\r\n");
    if (n < 12 || strncmp((const char *)buf, "HTTP/1.", 7) != 0
        || hdr_end == NULL) {
        fail(0, "no HTTP reply (%" APR_SIZE_T_FMT " bytes)", n);
        return APR_EGENERAL;
    }
    headers = apr_pstrmemdup(pool, (const char *)buf,
                             (apr_size_t)(hdr_end - (const char *)buf) + 2);
    h = strstr(headers, "\r\n");
    rep->status_line = apr_pstrmemdup(pool, headers,
                                      (apr_size_t)(h - headers));
    rep->status = atoi(rep->status_line + 9);
    h += 2;
    rep->content_type = find_header(h, "Content-Type");
    rep->body = (const unsigned char *)hdr_end + 4;
    rep->body_len = n - (apr_size_t)(rep->body - buf);
    te = find_header(h, "Transfer-Encoding");
    cl = find_header(h, "Content-Length");
    if (te && strcasecmp(te, "chunked") == 0) {
        if (dechunk(rep->body, rep->body_len, &rep->body, &rep->body_len)
            != APR_SUCCESS) {
            fail(0, "malformed chunked reply");
            return APR_EGENERAL;
        }
    }
    else if (cl) {
        apr_size_t want = (apr_size_t)apr_atoi64(cl);
        if (want > rep->body_len) {
            fail(0, "reply truncated: Content-Length %s, got %"
                 APR_SIZE_T_FMT, cl, rep->body_len);
            return APR_EGENERAL;
        }
        rep->body_len = want;
    }
    verbose("%s, Content-Type %s, %" APR_SIZE_T_FMT " bytes",
            rep->status_line, rep->content_type ? rep->content_type : "-",
            rep->body_len);
    return APR_SUCCESS;
}

/* URL with operation (and message) appended. */
static const char *op_url(const char *op, const char *message)
{
    const char *u = apr_pstrcat(pool, o.url, strchr(o.url, '?') ? "&" : "?",
                                "operation=", op, NULL);

    if (message) {
        u = apr_pstrcat(pool, u, "&message=", message, NULL);
    }
    return u;
}

static int http_error(const http_reply_t *rep)
{
    printf("HTTP %d\n", rep->status);
    printf("%s\n", first_line(rep->body, rep->body_len));
    return fail(EXIT_ERROR, "%s", rep->status_line);
}

static int ctype_is(const http_reply_t *rep, const char *type)
{
    apr_size_t l = strlen(type);

    return rep->content_type && strncasecmp(rep->content_type, type, l) == 0
           && (rep->content_type[l] == 0 || rep->content_type[l] == ';'
               || rep->content_type[l] == ' ');
}

/* ---- base64 for GET ---------------------------------------------------- */

static const char *b64_message(const unsigned char *der, apr_size_t len)
{
    char *b64 = apr_palloc(pool, 4 * (len / 3 + 1) + 1);
    int n = EVP_EncodeBlock((unsigned char *)b64, der, (int)len);
    char *out = apr_palloc(pool, 3 * (apr_size_t)n + 1), *w = out;
    int i;

    for (i = 0; i < n; i++) {
        char c = b64[i];
        if (o.urlsafe && c == '+') {
            c = '-';
        }
        else if (o.urlsafe && c == '/') {
            c = '_';
        }
        if (c == '+' || c == '/' || c == '=') {
            w += sprintf(w, "%%%02X", (unsigned char)c);
        }
        else {
            *w++ = c;
        }
    }
    *w = 0;
    return out;
}

/* ---- getcaps, getcacert, getnextcacert --------------------------------- */

static int cmd_getcaps(void)
{
    http_reply_t rep;

    if (http_request(&rep, "GET", op_url("GetCACaps", o.message), NULL, NULL,
                     0) != APR_SUCCESS) {
        return EXIT_ERROR;
    }
    if (rep.status != 200) {
        return http_error(&rep);
    }
    fwrite(rep.body, 1, rep.body_len, stdout);
    if (rep.body_len > 0 && rep.body[rep.body_len - 1] != '\n') {
        fputc('\n', stdout);
    }
    return EXIT_OK;
}

/* The CA/RA certificates of GetCACert, in server order. */
static int fetch_ca_certs(STACK_OF(X509) **certs)
{
    http_reply_t rep;
    apr_status_t rv;
    const unsigned char *q;
    const char *url;

    *certs = NULL;
    url = op_url("GetCACert", o.message ? o.message : "CAIdentifier");
    if (http_request(&rep, "GET", url, NULL, NULL, 0) != APR_SUCCESS) {
        return EXIT_ERROR;
    }
    if (rep.status != 200) {
        return http_error(&rep);
    }
    if (ctype_is(&rep, "application/x-x509-ca-cert")) {
        X509 *x;
        q = rep.body;
        x = d2i_X509(NULL, &q, (long)rep.body_len);
        if (x == NULL) {
            return fail(EXIT_ERROR, "GetCACert: application/x-x509-ca-cert "
                        "is not a DER certificate: %s", ssl_err());
        }
        *certs = scep_own_certs(pool, sk_X509_new_null());
        sk_X509_push(*certs, x);
    }
    else {
        if (!ctype_is(&rep, "application/x-x509-ca-ra-cert")) {
            fprintf(stderr, "scep-client: warning: GetCACert Content-Type "
                    "%s\n", rep.content_type ? rep.content_type : "(none)");
        }
        rv = scep_certs_p7_decode(certs, rep.body, rep.body_len, pool);
        if (rv != APR_SUCCESS || *certs == NULL || sk_X509_num(*certs) == 0) {
            return fail(EXIT_ERROR, "GetCACert: no certificates in the reply");
        }
    }
    return EXIT_OK;
}

static int write_certs(STACK_OF(X509) *certs, const char *prefix)
{
    int i;

    if (o.out && mkdir(o.out, 0755) != 0 && errno != EEXIST) {
        return fail(EXIT_ERROR, "cannot create %s: %s", o.out,
                    strerror(errno));
    }
    for (i = 0; i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        const char *path = apr_psprintf(pool, "%s/%s-%d.pem",
                                        o.out ? o.out : ".", prefix, i);
        const char *pem = pem_cert(x);

        if (o.out && write_file(path, pem, strlen(pem), 0644) != APR_SUCCESS) {
            return fail(EXIT_ERROR, "cannot write %s: %s", path,
                        strerror(errno));
        }
        printf("%s-%d: subject=%s keyUsage=%s%s\n", prefix, i,
               scep_name_str(X509_get_subject_name(x), pool), ku_str(x),
               X509_check_ca(x) ? " CA" : "");
    }
    return EXIT_OK;
}

static int cmd_getcacert(void)
{
    STACK_OF(X509) *certs;
    int rc = fetch_ca_certs(&certs);

    return rc != EXIT_OK ? rc : write_certs(certs, "cacert");
}

static int cmd_getnextcacert(void)
{
    http_reply_t rep;
    STACK_OF(X509) *certs = NULL, *ra = NULL;
    CMS_ContentInfo *cms;
    const unsigned char *q;
    int rc;

    if (o.ca) {
        const char *why;
        if (scep_load_certs(&ra, o.ca, &why, pool) != APR_SUCCESS) {
            return fail(EXIT_ERROR, "--ca: %s", why);
        }
    }
    else if ((rc = fetch_ca_certs(&ra)) != EXIT_OK) {
        return rc;
    }
    if (http_request(&rep, "GET", op_url("GetNextCACert", o.message), NULL,
                     NULL, 0) != APR_SUCCESS) {
        return EXIT_ERROR;
    }
    if (rep.status != 200) {
        return http_error(&rep);
    }
    if (!ctype_is(&rep, "application/x-x509-next-ca-cert")) {
        fprintf(stderr, "scep-client: warning: GetNextCACert Content-Type "
                "%s\n", rep.content_type ? rep.content_type : "(none)");
    }
    if (o.dump_reply) {
        write_file(o.dump_reply, rep.body, rep.body_len, 0644);
    }
    /* a SignedData by the RA: check the signature, then take its certs */
    q = rep.body;
    cms = d2i_CMS_ContentInfo(NULL, &q, (long)rep.body_len);
    if (cms == NULL) {
        return fail(EXIT_ERROR, "GetNextCACert: not a CMS message: %s",
                    ssl_err());
    }
    if (CMS_get0_SignerInfos(cms) == NULL
        || sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) < 1) {
        CMS_ContentInfo_free(cms);
        return fail(EXIT_ERROR, "GetNextCACert: SignedData without signer");
    }
    if (CMS_verify(cms, ra, NULL, NULL, NULL,
                   CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
        CMS_ContentInfo_free(cms);
        return fail(EXIT_ERROR, "GetNextCACert: signature does not verify: "
                    "%s", ssl_err());
    }
    CMS_ContentInfo_free(cms);
    printf("signature: ok\n");
    if (scep_certs_p7_decode(&certs, rep.body, rep.body_len, pool)
        != APR_SUCCESS || sk_X509_num(certs) == 0) {
        return fail(EXIT_ERROR, "GetNextCACert: no certificates");
    }
    return write_certs(certs, "nextca");
}

/* ---- building a request ------------------------------------------------ */

static const EVP_CIPHER *pick_cipher(const char *name)
{
    if (name == NULL || strcasecmp(name, "aes128") == 0
        || strcasecmp(name, "aes") == 0) {
        return EVP_aes_128_cbc();
    }
    if (strcasecmp(name, "aes192") == 0) {
        return EVP_aes_192_cbc();
    }
    if (strcasecmp(name, "aes256") == 0) {
        return EVP_aes_256_cbc();
    }
    if (strcasecmp(name, "des3") == 0) {
        return EVP_des_ede3_cbc();
    }
    if (strcasecmp(name, "des") == 0) {
        o.legacy = 1;
        return EVP_des_cbc();
    }
    return NULL;
}

static const EVP_MD *pick_digest(const char *name)
{
    if (name == NULL || strcasecmp(name, "sha256") == 0) {
        return EVP_sha256();
    }
    if (strcasecmp(name, "sha1") == 0) {
        return EVP_sha1();
    }
    if (strcasecmp(name, "sha384") == 0) {
        return EVP_sha384();
    }
    if (strcasecmp(name, "sha512") == 0) {
        return EVP_sha512();
    }
    if (strcasecmp(name, "md5") == 0) {
        return EVP_md5();   /* for badAlg tests */
    }
    if (strcasecmp(name, "sha224") == 0) {
        return EVP_sha224();
    }
    return NULL;
}

/* scep_load_key() takes OSSL_STORE URIs; "file:" needs an absolute path. */
static apr_status_t load_key(EVP_PKEY **key, const char *path,
                             const char **why)
{
    char cwd[4096];

    if (path[0] != '/' && !strchr(path, ':') && getcwd(cwd, sizeof(cwd))) {
        path = apr_pstrcat(pool, cwd, "/", path, NULL);
    }
    return scep_load_key(key, path, why, pool);
}

/* --key: load it, or generate RSA 2048 and write it (mode 0600). */
static int load_or_make_key(EVP_PKEY **key, const char *path)
{
    const char *why;
    BIO *b;
    EVP_PKEY *k;
    char *d;
    long n;

    if (path && access(path, F_OK) == 0) {
        if (load_key(key, path, &why) != APR_SUCCESS) {
            return fail(EXIT_ERROR, "--key: %s", why);
        }
        return EXIT_OK;
    }
    k = EVP_RSA_gen(2048);
    if (k == NULL) {
        return fail(EXIT_ERROR, "RSA key generation: %s", ssl_err());
    }
    *key = scep_own_pkey(pool, k);
    if (path) {
        b = BIO_new(BIO_s_mem());
        PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
        n = BIO_get_mem_data(b, &d);
        if (write_file(path, d, (apr_size_t)n, 0600) != APR_SUCCESS) {
            BIO_free(b);
            return fail(EXIT_ERROR, "cannot write %s: %s", path,
                        strerror(errno));
        }
        BIO_free(b);
        verbose("generated RSA 2048 key in %s", path);
    }
    return EXIT_OK;
}

static X509_NAME *make_name(const char *cn)
{
    X509_NAME *name = X509_NAME_new();

    if (name == NULL
        || !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                       (const unsigned char *)cn, -1, -1, 0)) {
        X509_NAME_free(name);
        return NULL;
    }
    return scep_own_name(pool, name);
}

/* "dns:a", "ip:1.2.3.4", "email:x@y", "uri:..." -> "DNS:a,IP:..." */
static const char *san_conf(void)
{
    const char *conf = NULL;
    int i;

    for (i = 0; o.sans && i < o.sans->nelts; i++) {
        const char *s = APR_ARRAY_IDX(o.sans, i, const char *);
        const char *c = strchr(s, ':');
        const char *type;

        if (c == NULL) {
            fail(0, "--san %s: want dns:, ip:, email: or uri:", s);
            return NULL;
        }
        if (strncasecmp(s, "dns:", 4) == 0) {
            type = "DNS";
        }
        else if (strncasecmp(s, "ip:", 3) == 0) {
            type = "IP";
        }
        else if (strncasecmp(s, "email:", 6) == 0) {
            type = "email";
        }
        else if (strncasecmp(s, "uri:", 4) == 0) {
            type = "URI";
        }
        else {
            fail(0, "--san %s: want dns:, ip:, email: or uri:", s);
            return NULL;
        }
        conf = apr_pstrcat(pool, conf ? conf : "", conf ? "," : "", type,
                           c, NULL);
    }
    return conf ? conf : "";
}

static int make_csr(const unsigned char **der, apr_size_t *len,
                    X509_REQ **pcsr, EVP_PKEY *key, X509_NAME *subject,
                    const EVP_MD *md)
{
    X509_REQ *req = scep_own_req(pool, X509_REQ_new());
    const char *sans = san_conf();
    unsigned char *buf = NULL;
    int n;

    if (sans == NULL) {
        return EXIT_USAGE;
    }
    if (req == NULL || !X509_REQ_set_version(req, 0)
        || !X509_REQ_set_subject_name(req, subject)
        || !X509_REQ_set_pubkey(req, key)) {
        return fail(EXIT_ERROR, "building the CSR: %s", ssl_err());
    }
    if (*sans || o.ku) {
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        X509V3_CTX v3;
        X509_EXTENSION *ext;

        X509V3_set_ctx(&v3, NULL, NULL, req, NULL, 0);
        if (*sans) {
            ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, sans);
            if (ext == NULL) {
                sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
                return fail(EXIT_USAGE, "--san: %s", ssl_err());
            }
            sk_X509_EXTENSION_push(exts, ext);
        }
        if (o.ku) {
            /* NDES picks its template by the CSR's keyUsage */
            ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, o.ku);
            if (ext == NULL) {
                sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
                return fail(EXIT_USAGE, "--ku %s: %s", o.ku, ssl_err());
            }
            sk_X509_EXTENSION_push(exts, ext);
        }
        n = X509_REQ_add_extensions(req, exts);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        if (!n) {
            return fail(EXIT_ERROR, "adding the extensions: %s", ssl_err());
        }
    }
    if (o.challenge
        && !X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword,
                                      o.utf8_challenge ? V_ASN1_UTF8STRING
                                                       : V_ASN1_PRINTABLESTRING,
                                      (const unsigned char *)o.challenge,
                                      (int)strlen(o.challenge))) {
        return fail(EXIT_ERROR, "adding challengePassword: %s", ssl_err());
    }
    if (!X509_REQ_sign(req, key, md)) {
        return fail(EXIT_ERROR, "signing the CSR: %s", ssl_err());
    }
    n = i2d_X509_REQ(req, &buf);
    if (n <= 0) {
        return fail(EXIT_ERROR, "encoding the CSR: %s", ssl_err());
    }
    *der = apr_pmemdup(pool, buf, (apr_size_t)n);
    *len = (apr_size_t)n;
    OPENSSL_free(buf);
    *pcsr = req;
    return EXIT_OK;
}

/* The self-signed certificate SCEP clients sign their first request with. */
static X509 *self_signed(EVP_PKEY *key, X509_NAME *subject, const EVP_MD *md)
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    int ok;

    ok = x && bn && X509_set_version(x, X509_VERSION_3)
         && BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY)
         && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))
         && X509_set_subject_name(x, subject)
         && X509_set_issuer_name(x, subject)
         && X509_gmtime_adj(X509_getm_notBefore(x), -3600)
         && X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400)
         && X509_set_pubkey(x, key)
         && X509_sign(x, key, md);
    BN_free(bn);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return scep_own_x509(pool, x);
}

/* Default transactionID: uppercase hex SHA-1 of the public key (RFC 8894
 * suggests a hash of the key; strongSwan does the same). */
static const char *key_tid(EVP_PKEY *key)
{
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    int n = i2d_PUBKEY(key, &der);
    char *out, *w;

    if (n <= 0 || !EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha1(), NULL)) {
        OPENSSL_free(der);
        return "0";
    }
    OPENSSL_free(der);
    out = w = apr_palloc(pool, 2 * mdlen + 1);
    for (i = 0; i < mdlen; i++) {
        w += sprintf(w, "%02X", md[i]);
    }
    return out;
}

/* The CA that issues: the first CA certificate among the GetCACert ones
 * that issued an RA certificate, else the first CA, else the first. */
static X509 *issuing_ca(STACK_OF(X509) *certs)
{
    int i, j;
    X509 *first_ca = NULL;

    for (i = 0; i < sk_X509_num(certs); i++) {
        X509 *c = sk_X509_value(certs, i);
        if (!X509_check_ca(c)) {
            continue;
        }
        if (first_ca == NULL) {
            first_ca = c;
        }
        for (j = 0; j < sk_X509_num(certs); j++) {
            X509 *r = sk_X509_value(certs, j);
            if (r != c && !X509_check_ca(r)
                && X509_check_issued(c, r) == X509_V_OK) {
                return c;
            }
        }
    }
    return first_ca ? first_ca : sk_X509_value(certs, 0);
}

/* Frees a stack whose certificates belong to someone else. */
static apr_status_t free_stack(void *sk)
{
    sk_X509_free(sk);
    return APR_SUCCESS;
}

/* --encrypt-to: N, "all", or by default the keyEncipherment one. */
static int pick_recipients(STACK_OF(X509) **to, STACK_OF(X509) *certs)
{
    int i, idx = -1;

    *to = sk_X509_new_null();
    apr_pool_cleanup_register(pool, *to, free_stack, apr_pool_cleanup_null);
    if (o.encrypt_to && strcasecmp(o.encrypt_to, "all") == 0) {
        for (i = 0; i < sk_X509_num(certs); i++) {
            sk_X509_push(*to, sk_X509_value(certs, i));
        }
        return EXIT_OK;
    }
    if (o.encrypt_to) {
        char *end;
        idx = (int)strtol(o.encrypt_to, &end, 10);
        if (*end || idx < 0 || idx >= sk_X509_num(certs)) {
            return fail(EXIT_USAGE, "--encrypt-to %s: there are %d "
                        "certificates (0..%d) or 'all'", o.encrypt_to,
                        sk_X509_num(certs), sk_X509_num(certs) - 1);
        }
    }
    else {
        for (i = 0; i < sk_X509_num(certs) && idx < 0; i++) {
            X509 *x = sk_X509_value(certs, i);
            if ((X509_get_extension_flags(x) & EXFLAG_KUSAGE)
                && (X509_get_key_usage(x) & KU_KEY_ENCIPHERMENT)) {
                idx = i;
            }
        }
        if (idx < 0) {
            idx = 0;
        }
    }
    sk_X509_push(*to, sk_X509_value(certs, idx));
    verbose("encrypting to [%d] %s", idx,
            scep_name_str(X509_get_subject_name(sk_X509_value(certs, idx)),
                          pool));
    return EXIT_OK;
}

static const char *status_name(int s)
{
    switch (s) {
    case SCEP_STATUS_SUCCESS: return "SUCCESS";
    case SCEP_STATUS_FAILURE: return "FAILURE";
    case SCEP_STATUS_PENDING: return "PENDING";
    default:                  return "unknown";
    }
}

/* Print what a CertRep says; the exit status it means. */
static int report_certrep(scep_msg_t *msg)
{
    printf("status: %s\n", status_name(msg->pki_status));
    if (msg->pki_status == SCEP_STATUS_FAILURE) {
        printf("failInfo: %s\n", scep_fail_name(msg->fail_info));
        return EXIT_FAILURE_;
    }
    if (msg->pki_status == SCEP_STATUS_PENDING) {
        return EXIT_PENDING;
    }
    return msg->pki_status == SCEP_STATUS_SUCCESS ? EXIT_OK : EXIT_ERROR;
}

typedef enum {
    REQ_CSR,          /* PKCSReq, RenewalReq: the CSR */
    REQ_POLL,         /* CertPoll: IssuerAndSubject */
    REQ_GETCERT,      /* GetCert: IssuerAndSerialNumber from --serial */
    REQ_GETCRL        /* GetCRL: IssuerAndSerialNumber of --cert */
} req_kind_e;

static int write_reply_content(scep_msg_t *msg, req_kind_e kind)
{
    const unsigned char *q = msg->content;
    PKCS7 *p7;
    STACK_OF(X509) *certs = NULL;
    X509 *x;
    const char *pem;

    if (kind == REQ_GETCRL) {
        BIO *b;
        char *d;
        long n;
        STACK_OF(X509_CRL) *crls;

        p7 = d2i_PKCS7(NULL, &q, (long)msg->content_len);
        crls = (p7 && PKCS7_type_is_signed(p7) && p7->d.sign)
               ? p7->d.sign->crl : NULL;
        if (crls == NULL || sk_X509_CRL_num(crls) < 1) {
            PKCS7_free(p7);
            return fail(EXIT_ERROR, "SUCCESS without a CRL in the reply");
        }
        printf("crl issuer: %s\n",
               scep_name_str(X509_CRL_get_issuer(sk_X509_CRL_value(crls, 0)),
                             pool));
        printf("crl revoked: %d\n",
               sk_X509_REVOKED_num(X509_CRL_get_REVOKED(
                   sk_X509_CRL_value(crls, 0))));
        if (o.out) {
            b = BIO_new(BIO_s_mem());
            PEM_write_bio_X509_CRL(b, sk_X509_CRL_value(crls, 0));
            n = BIO_get_mem_data(b, &d);
            if (write_file(o.out, d, (apr_size_t)n, 0644) != APR_SUCCESS) {
                BIO_free(b);
                PKCS7_free(p7);
                return fail(EXIT_ERROR, "cannot write %s: %s", o.out,
                            strerror(errno));
            }
            BIO_free(b);
        }
        PKCS7_free(p7);
        return EXIT_OK;
    }
    if (scep_certs_p7_decode(&certs, msg->content, msg->content_len, pool)
        != APR_SUCCESS || sk_X509_num(certs) < 1) {
        return fail(EXIT_ERROR, "SUCCESS without a certificate in the reply");
    }
    /* micromdm takes certs[0]: the issued certificate comes first */
    x = sk_X509_value(certs, 0);
    printf("subject: %s\n", scep_name_str(X509_get_subject_name(x), pool));
    printf("issuer: %s\n", scep_name_str(X509_get_issuer_name(x), pool));
    printf("serial: %s\n", scep_serial_str(X509_get0_serialNumber(x), pool));
    printf("certificates: %d\n", sk_X509_num(certs));
    if (o.out) {
        pem = pem_cert(x);
        if (write_file(o.out, pem, strlen(pem), 0644) != APR_SUCCESS) {
            return fail(EXIT_ERROR, "cannot write %s: %s", o.out,
                        strerror(errno));
        }
    }
    return EXIT_OK;
}

static int has_cert(STACK_OF(X509) *certs, X509 *x)
{
    int i;

    for (i = 0; certs && i < sk_X509_num(certs); i++) {
        if (X509_cmp(sk_X509_value(certs, i), x) == 0) {
            return 1;
        }
    }
    return 0;
}

static int cmd_pkioperation(req_kind_e kind, int default_type)
{
    STACK_OF(X509) *ca_certs = NULL, *to = NULL;
    EVP_PKEY *key = NULL, *signer_key;
    X509 *signer = NULL;
    X509_NAME *subject = NULL;
    X509_REQ *csr = NULL;
    scep_req_t req;
    scep_msg_t *msg = NULL;
    unsigned char nonce[SCEP_NONCE_LEN];
    const unsigned char *content = NULL, *der;
    unsigned char *wire;
    apr_size_t content_len = 0, len;
    http_reply_t rep;
    const char *why = NULL;
    const EVP_MD *md;
    int rc;

    memset(&req, 0, sizeof(req));
    req.cipher = pick_cipher(o.cipher);
    md = req.digest = pick_digest(o.digest);
    if (req.cipher == NULL) {
        return fail(EXIT_USAGE, "--cipher %s: aes128 aes192 aes256 des3 des",
                    o.cipher);
    }
    if (req.digest == NULL) {
        return fail(EXIT_USAGE, "--digest %s: sha1 sha256 sha384 sha512",
                    o.digest);
    }
    if (o.legacy) {
        prov_legacy = OSSL_PROVIDER_load(NULL, "legacy");
        prov_default = OSSL_PROVIDER_load(NULL, "default");
        if (prov_legacy == NULL || prov_default == NULL) {
            return fail(EXIT_ERROR, "DES needs OpenSSL's legacy provider: %s",
                        ssl_err());
        }
    }

    /* CA and RA certificates */
    if (o.ca) {
        if (scep_load_certs(&ca_certs, o.ca, &why, pool) != APR_SUCCESS) {
            return fail(EXIT_ERROR, "--ca: %s", why);
        }
    }
    else if ((rc = fetch_ca_certs(&ca_certs)) != EXIT_OK) {
        return rc;
    }
    if ((rc = pick_recipients(&to, ca_certs)) != EXIT_OK) {
        return rc;
    }

    /* keys: the CSR's key, and who signs the message */
    if ((rc = load_or_make_key(&key, o.key)) != EXIT_OK) {
        return rc;
    }
    if (o.cn) {
        subject = make_name(o.cn);
    }
    if (o.signer_cert) {
        STACK_OF(X509) *sc;
        if (scep_load_certs(&sc, o.signer_cert, &why, pool) != APR_SUCCESS) {
            return fail(EXIT_ERROR, "--signer-cert: %s", why);
        }
        signer = sk_X509_value(sc, 0);
        if (o.signer_key) {
            if (load_key(&signer_key, o.signer_key, &why) != APR_SUCCESS) {
                return fail(EXIT_ERROR, "--signer-key: %s", why);
            }
        }
        else {
            signer_key = key;
        }
        if (!scep_key_matches_cert(signer_key, signer)) {
            return fail(EXIT_USAGE, "--signer-key does not match "
                        "--signer-cert");
        }
        if (subject == NULL) {
            subject = X509_get_subject_name(signer);
        }
    }
    else {
        signer_key = key;
    }
    if (subject == NULL) {
        if (kind == REQ_CSR || kind == REQ_POLL) {
            return fail(EXIT_USAGE, "--cn NAME is needed");
        }
        subject = make_name("scep-client");
    }
    if (signer == NULL) {
        signer = self_signed(signer_key, subject, md);
        if (signer == NULL) {
            return fail(EXIT_ERROR, "self-signed certificate: %s", ssl_err());
        }
    }

    /* messageData */
    if (o.content) {
        if (read_file(o.content, &content, &content_len) != APR_SUCCESS) {
            return fail(EXIT_ERROR, "--content %s: %s", o.content,
                        strerror(errno));
        }
    }
    else if (kind == REQ_CSR) {
        if ((rc = make_csr(&content, &content_len, &csr, key, subject, md))
            != EXIT_OK) {
            return rc;
        }
    }
    else if (kind == REQ_POLL) {
        if (scep_client_issuer_and_subject(
                &content, &content_len,
                X509_get_subject_name(issuing_ca(ca_certs)), subject, pool)
            != APR_SUCCESS) {
            return fail(EXIT_ERROR, "IssuerAndSubject: %s", ssl_err());
        }
    }
    else if (kind == REQ_GETCERT) {
        ASN1_INTEGER *serial;
        BIGNUM *bn = NULL;
        if (o.serial == NULL || !BN_hex2bn(&bn, o.serial)) {
            return fail(EXIT_USAGE, "getcert needs --serial HEX");
        }
        serial = scep_own_int(pool, BN_to_ASN1_INTEGER(bn, NULL));
        BN_free(bn);
        if (serial == NULL
            || scep_client_issuer_and_serial(
                   &content, &content_len,
                   X509_get_subject_name(issuing_ca(ca_certs)), serial, pool)
               != APR_SUCCESS) {
            return fail(EXIT_ERROR, "IssuerAndSerialNumber: %s", ssl_err());
        }
    }
    else {
        STACK_OF(X509) *cc;
        X509 *c;
        if (o.cert == NULL) {
            return fail(EXIT_USAGE, "getcrl needs --cert FILE");
        }
        if (scep_load_certs(&cc, o.cert, &why, pool) != APR_SUCCESS) {
            return fail(EXIT_ERROR, "--cert: %s", why);
        }
        c = sk_X509_value(cc, 0);
        if (scep_client_issuer_and_serial(&content, &content_len,
                                          X509_get_issuer_name(c),
                                          X509_get0_serialNumber(c), pool)
            != APR_SUCCESS) {
            return fail(EXIT_ERROR, "IssuerAndSerialNumber: %s", ssl_err());
        }
    }

    /* the pkiMessage */
    if (o.nonce) {
        long nl = 0;
        unsigned char *nb = OPENSSL_hexstr2buf(o.nonce, &nl);
        if (nb == NULL || nl != SCEP_NONCE_LEN) {
            OPENSSL_free(nb);
            return fail(EXIT_USAGE, "--nonce %s: want %d bytes in hex",
                        o.nonce, SCEP_NONCE_LEN);
        }
        memcpy(nonce, nb, SCEP_NONCE_LEN);
        OPENSSL_free(nb);
    }
    else if (scep_nonce(nonce) != APR_SUCCESS) {
        return fail(EXIT_ERROR, "no random nonce");
    }
    req.message_type = o.no_message_type ? -1
                       : (o.message_type >= 0 ? o.message_type : default_type);
    req.message_type_string = o.no_message_type ? NULL : o.message_type_string;
    req.transaction_id = o.no_tid ? NULL : (o.tid ? o.tid : key_tid(key));
    req.sender_nonce = nonce;
    req.content = content;
    req.content_len = content_len;
    req.recipients = to;
    req.signer_cert = signer;
    req.signer_key = signer_key;
    if (scep_client_req_encode(&der, &len, &req,
                               o.oaep ? SCEP_CLIENT_OAEP : 0, &why, pool)
        != APR_SUCCESS) {
        return fail(EXIT_ERROR, "encoding the request: %s", why);
    }
    wire = apr_pmemdup(pool, der, len);
    if (o.corrupt_signature
        && scep_client_corrupt_signature(wire, len) != APR_SUCCESS) {
        return fail(EXIT_ERROR, "cannot corrupt the signature");
    }
    verbose("%s (%s), transactionID %s, %s + %s, %" APR_SIZE_T_FMT " bytes",
            req.message_type_string ? req.message_type_string
                                    : scep_msg_type_name(req.message_type),
            req.message_type_string ? "as given"
                                    : apr_itoa(pool, req.message_type),
            req.transaction_id ? req.transaction_id : "(none)",
            EVP_CIPHER_get0_name(req.cipher), EVP_MD_get0_name(req.digest),
            len);
    if (o.dump_request
        && write_file(o.dump_request, wire, len, 0644) != APR_SUCCESS) {
        return fail(EXIT_ERROR, "cannot write %s: %s", o.dump_request,
                    strerror(errno));
    }

    /* send it */
    if (o.get) {
        rc = http_request(&rep, "GET", op_url("PKIOperation",
                                              b64_message(wire, len)),
                          NULL, NULL, 0) == APR_SUCCESS;
    }
    else {
        rc = http_request(&rep, "POST", op_url("PKIOperation", NULL),
                          o.no_content_type ? NULL
                          : (o.content_type ? o.content_type
                                            : "application/x-pki-message"),
                          wire, len) == APR_SUCCESS;
    }
    if (!rc) {
        return EXIT_ERROR;
    }
    if (o.dump_reply
        && write_file(o.dump_reply, rep.body, rep.body_len, 0644)
           != APR_SUCCESS) {
        return fail(EXIT_ERROR, "cannot write %s: %s", o.dump_reply,
                    strerror(errno));
    }
    if (rep.status != 200) {
        return http_error(&rep);
    }
    if (!ctype_is(&rep, "application/x-pki-message")) {
        fprintf(stderr, "scep-client: warning: reply Content-Type %s\n",
                rep.content_type ? rep.content_type : "(none)");
    }

    /* the CertRep */
    if (scep_certrep_decode(&msg, &why, rep.body, rep.body_len, ca_certs,
                            signer, signer_key, pool) != APR_SUCCESS) {
        if (msg && msg->pki_status >= 0) {
            printf("status: %s\n", status_name(msg->pki_status));
            if (msg->fail_info != SCEP_FAIL_NONE) {
                printf("failInfo: %s\n", scep_fail_name(msg->fail_info));
            }
        }
        return fail(EXIT_ERROR, "CertRep: %s", why);
    }
    verbose("CertRep signed by %s with %s%s%s",
            msg->signer ? scep_name_str(X509_get_subject_name(msg->signer),
                                        pool) : "?",
            OBJ_nid2sn(msg->digest_nid),
            msg->cipher_nid ? ", content " : "",
            msg->cipher_nid ? OBJ_nid2sn(msg->cipher_nid) : "");
    if (msg->signer && !has_cert(ca_certs, msg->signer)) {
        fprintf(stderr, "scep-client: warning: CertRep signed by %s, which "
                "is not among the CA/RA certificates\n",
                scep_name_str(X509_get_subject_name(msg->signer), pool));
    }
    rc = report_certrep(msg);
    if (!o.no_check) {
        if (req.transaction_id
            && strcmp(msg->transaction_id, req.transaction_id) != 0) {
            return fail(EXIT_ERROR, "CertRep transactionID '%s' is not the "
                        "request's '%s'", msg->transaction_id,
                        req.transaction_id);
        }
        if (memcmp(msg->recipient_nonce, nonce, SCEP_NONCE_LEN) != 0) {
            return fail(EXIT_ERROR, "CertRep recipientNonce is not the "
                        "request's senderNonce");
        }
    }
    if (rc == EXIT_OK) {
        rc = write_reply_content(msg, kind);
    }
    return rc;
}

/* ---- raw --------------------------------------------------------------- */

static int cmd_raw(void)
{
    const unsigned char *body;
    apr_size_t len;
    http_reply_t rep;
    apr_status_t rv;
    const char *why;
    scep_msg_t *msg = NULL;

    if (o.body == NULL) {
        return fail(EXIT_USAGE, "raw needs --body FILE");
    }
    if (read_file(o.body, &body, &len) != APR_SUCCESS) {
        return fail(EXIT_ERROR, "--body %s: %s", o.body, strerror(errno));
    }
    if (o.query) {
        /* the file is the message= value, sent as it is */
        const char *m = apr_pstrmemdup(pool, (const char *)body, len);
        apr_size_t l = strlen(m);
        while (l > 0 && (m[l - 1] == '\n' || m[l - 1] == '\r')) {
            l--;
        }
        rv = http_request(&rep, "GET", op_url("PKIOperation",
                                              apr_pstrmemdup(pool, m, l)),
                          NULL, NULL, 0);
    }
    else if (o.get) {
        rv = http_request(&rep, "GET", op_url("PKIOperation",
                                              b64_message(body, len)),
                          NULL, NULL, 0);
    }
    else {
        rv = http_request(&rep, "POST", op_url("PKIOperation", NULL),
                          o.no_content_type ? NULL
                          : (o.content_type ? o.content_type
                                            : "application/x-pki-message"),
                          body, len);
    }
    if (rv != APR_SUCCESS) {
        return EXIT_ERROR;
    }
    if (o.dump_reply) {
        write_file(o.dump_reply, rep.body, rep.body_len, 0644);
    }
    printf("HTTP %d\n", rep.status);
    printf("Content-Type: %s\n", rep.content_type ? rep.content_type : "");
    printf("%s\n", first_line(rep.body, rep.body_len));
    if (rep.status == 200 && ctype_is(&rep, "application/x-pki-message")) {
        /* status and failInfo need no key */
        scep_certrep_decode(&msg, &why, rep.body, rep.body_len, NULL, NULL,
                            NULL, pool);
        if (msg && msg->pki_status >= 0) {
            printf("status: %s\n", status_name(msg->pki_status));
            if (msg->pki_status == SCEP_STATUS_FAILURE) {
                printf("failInfo: %s\n", scep_fail_name(msg->fail_info));
            }
        }
    }
    return EXIT_OK;
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: scep-client COMMAND URL [options]\n"
"commands:\n"
"  getcaps URL                     print GetCACaps\n"
"  getcacert URL --out DIR         write DIR/cacert-N.pem in server order\n"
"  getnextcacert URL --out DIR     verify and write DIR/nextca-N.pem\n"
"  enroll URL --cn NAME            PKCSReq (19)\n"
"  renew URL --signer-cert C --signer-key K   RenewalReq (17)\n"
"  poll URL --cn NAME              CertPoll (20) with IssuerAndSubject\n"
"  getcert URL --serial HEX        GetCert (21)\n"
"  getcrl URL --cert FILE          GetCRL (22) for FILE's issuer/serial\n"
"  raw URL --body FILE [--get|--query]  send arbitrary bytes\n"
"options for PKIOperation commands:\n"
"  --key FILE            CSR key (RSA 2048 generated and written if missing)\n"
"  --out FILE            issued certificate (CRL for getcrl), PEM\n"
"  --cn NAME             subject CN\n"
"  --challenge PW        challengePassword (PrintableString)\n"
"  --utf8-challenge      ... as UTF8String (strongSwan style)\n"
"  --san dns:N|ip:A|email:E|uri:U   subjectAltName (repeatable)\n"
"  --ca FILE             CA/RA certificates instead of GetCACert\n"
"  --cipher aes128|aes192|aes256|des3|des   (default aes128)\n"
"  --digest sha1|sha256|sha384|sha512       (default sha256)\n"
"  --encrypt-to N|all    recipient among the GetCACert certificates\n"
"                        (default: the keyEncipherment one, else the first)\n"
"  --oaep                RSAES-OAEP (SHA-256) key transport, not PKCS#1 v1.5\n"
"  --ku LIST             keyUsage extension in the CSR, e.g.\n"
"                        digitalSignature,keyEncipherment\n"
"  --nonce HEX           senderNonce (16 bytes) instead of a random one\n"
"  --signer-cert FILE --signer-key FILE   sign with this instead of a\n"
"                        self-signed certificate of --key\n"
"  --get [--urlsafe]     GET with base64 message= instead of POST\n"
"  --no-content-type     POST without Content-Type\n"
"  --content-type T      POST with this Content-Type\n"
"  --tid STRING | --no-tid          transactionID (default: SHA-1 of key)\n"
"  --message-type N | --message-type-string S | --no-message-type\n"
"  --content FILE        messageData DER instead of the CSR/...\n"
"  --corrupt-signature   flip a bit of the signature\n"
"  --dump-request FILE --dump-reply FILE\n"
"  --no-check            accept a CertRep with wrong transactionID/nonce\n"
"  --message M           message= for GetCACert/GetCACaps\n"
"  --verbose\n"
"exit: 0 SUCCESS, 2 FAILURE, 3 PENDING, 1 error, 64 usage\n");
}

enum {
    OPT_OUT = 256, OPT_KEY, OPT_CN, OPT_CHALLENGE, OPT_UTF8, OPT_CA,
    OPT_CIPHER, OPT_DIGEST, OPT_GET, OPT_URLSAFE, OPT_NO_CT, OPT_CT, OPT_TID,
    OPT_NO_TID, OPT_MT, OPT_MTS, OPT_NO_MT, OPT_SAN, OPT_ENCRYPT_TO,
    OPT_CORRUPT, OPT_DUMP_REQ, OPT_DUMP_REP, OPT_VERBOSE, OPT_BODY, OPT_QUERY,
    OPT_SIGNER_CERT, OPT_SIGNER_KEY, OPT_SERIAL, OPT_CERT, OPT_CONTENT,
    OPT_MESSAGE, OPT_NO_CHECK, OPT_NONCE, OPT_OAEP, OPT_KU, OPT_HELP
};

static const struct option long_opts[] = {
    { "out", required_argument, NULL, OPT_OUT },
    { "key", required_argument, NULL, OPT_KEY },
    { "cn", required_argument, NULL, OPT_CN },
    { "challenge", required_argument, NULL, OPT_CHALLENGE },
    { "utf8-challenge", no_argument, NULL, OPT_UTF8 },
    { "ca", required_argument, NULL, OPT_CA },
    { "cipher", required_argument, NULL, OPT_CIPHER },
    { "digest", required_argument, NULL, OPT_DIGEST },
    { "get", no_argument, NULL, OPT_GET },
    { "urlsafe", no_argument, NULL, OPT_URLSAFE },
    { "no-content-type", no_argument, NULL, OPT_NO_CT },
    { "content-type", required_argument, NULL, OPT_CT },
    { "tid", required_argument, NULL, OPT_TID },
    { "no-tid", no_argument, NULL, OPT_NO_TID },
    { "message-type", required_argument, NULL, OPT_MT },
    { "message-type-string", required_argument, NULL, OPT_MTS },
    { "no-message-type", no_argument, NULL, OPT_NO_MT },
    { "san", required_argument, NULL, OPT_SAN },
    { "encrypt-to", required_argument, NULL, OPT_ENCRYPT_TO },
    { "corrupt-signature", no_argument, NULL, OPT_CORRUPT },
    { "dump-request", required_argument, NULL, OPT_DUMP_REQ },
    { "dump-reply", required_argument, NULL, OPT_DUMP_REP },
    { "verbose", no_argument, NULL, OPT_VERBOSE },
    { "body", required_argument, NULL, OPT_BODY },
    { "query", no_argument, NULL, OPT_QUERY },
    { "signer-cert", required_argument, NULL, OPT_SIGNER_CERT },
    { "signer-key", required_argument, NULL, OPT_SIGNER_KEY },
    { "serial", required_argument, NULL, OPT_SERIAL },
    { "cert", required_argument, NULL, OPT_CERT },
    { "content", required_argument, NULL, OPT_CONTENT },
    { "message", required_argument, NULL, OPT_MESSAGE },
    { "no-check", no_argument, NULL, OPT_NO_CHECK },
    { "nonce", required_argument, NULL, OPT_NONCE },
    { "oaep", no_argument, NULL, OPT_OAEP },
    { "ku", required_argument, NULL, OPT_KU },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 }
};

static int parse_args(int argc, char **argv)
{
    int c;

    o.message_type = -1;
    o.sans = apr_array_make(pool, 4, sizeof(const char *));
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    o.cmd = argv[1];
    if (strcmp(o.cmd, "--help") == 0 || strcmp(o.cmd, "-h") == 0) {
        usage(stdout);
        return -1;
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "vh", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_OUT:          o.out = optarg; break;
        case OPT_KEY:          o.key = optarg; break;
        case OPT_CN:           o.cn = optarg; break;
        case OPT_CHALLENGE:    o.challenge = optarg; break;
        case OPT_UTF8:         o.utf8_challenge = 1; break;
        case OPT_CA:           o.ca = optarg; break;
        case OPT_CIPHER:       o.cipher = optarg; break;
        case OPT_DIGEST:       o.digest = optarg; break;
        case OPT_GET:          o.get = 1; break;
        case OPT_URLSAFE:      o.urlsafe = 1; break;
        case OPT_NO_CT:        o.no_content_type = 1; break;
        case OPT_CT:           o.content_type = optarg; break;
        case OPT_TID:          o.tid = optarg; break;
        case OPT_NO_TID:       o.no_tid = 1; break;
        case OPT_MT: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 0 || v > 1000000) {
                fail(0, "--message-type %s: a number (or use "
                     "--message-type-string)", optarg);
                return EXIT_USAGE;
            }
            o.message_type = (int)v;
            break;
        }
        case OPT_MTS:          o.message_type_string = optarg; break;
        case OPT_NO_MT:        o.no_message_type = 1; break;
        case OPT_SAN:
            APR_ARRAY_PUSH(o.sans, const char *) = optarg;
            break;
        case OPT_ENCRYPT_TO:   o.encrypt_to = optarg; break;
        case OPT_CORRUPT:      o.corrupt_signature = 1; break;
        case OPT_DUMP_REQ:     o.dump_request = optarg; break;
        case OPT_DUMP_REP:     o.dump_reply = optarg; break;
        case 'v':
        case OPT_VERBOSE:      o.verbose = 1; break;
        case OPT_BODY:         o.body = optarg; break;
        case OPT_QUERY:        o.query = 1; break;
        case OPT_SIGNER_CERT:  o.signer_cert = optarg; break;
        case OPT_SIGNER_KEY:   o.signer_key = optarg; break;
        case OPT_SERIAL:       o.serial = optarg; break;
        case OPT_CERT:         o.cert = optarg; break;
        case OPT_CONTENT:      o.content = optarg; break;
        case OPT_MESSAGE:      o.message = optarg; break;
        case OPT_NO_CHECK:     o.no_check = 1; break;
        case OPT_NONCE:        o.nonce = optarg; break;
        case OPT_OAEP:         o.oaep = 1; break;
        case OPT_KU:           o.ku = optarg; break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fail(0, "%s: want exactly one URL", o.cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    o.url = argv[optind];
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    int rc;

    apr_app_initialize(&argc, (const char *const **)&argv, NULL);
    apr_pool_create(&pool, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    rc = parse_args(argc, argv);
    if (rc == EXIT_OK) {
        if (strcmp(o.cmd, "getcaps") == 0) {
            rc = cmd_getcaps();
        }
        else if (strcmp(o.cmd, "getcacert") == 0) {
            rc = cmd_getcacert();
        }
        else if (strcmp(o.cmd, "getnextcacert") == 0) {
            rc = cmd_getnextcacert();
        }
        else if (strcmp(o.cmd, "enroll") == 0) {
            rc = cmd_pkioperation(REQ_CSR, SCEP_MT_PKCSREQ);
        }
        else if (strcmp(o.cmd, "renew") == 0) {
            if (o.signer_cert == NULL) {
                rc = fail(EXIT_USAGE, "renew needs --signer-cert (and "
                          "--signer-key) of the certificate to renew");
            }
            else {
                rc = cmd_pkioperation(REQ_CSR, SCEP_MT_RENEWALREQ);
            }
        }
        else if (strcmp(o.cmd, "poll") == 0) {
            rc = cmd_pkioperation(REQ_POLL, SCEP_MT_CERTPOLL);
        }
        else if (strcmp(o.cmd, "getcert") == 0) {
            rc = cmd_pkioperation(REQ_GETCERT, SCEP_MT_GETCERT);
        }
        else if (strcmp(o.cmd, "getcrl") == 0) {
            rc = cmd_pkioperation(REQ_GETCRL, SCEP_MT_GETCRL);
        }
        else if (strcmp(o.cmd, "raw") == 0) {
            rc = cmd_raw();
        }
        else {
            rc = fail(EXIT_USAGE, "unknown command '%s'", o.cmd);
            usage(stderr);
        }
    }
    else if (rc < 0) {
        rc = EXIT_OK;
    }
    ERR_clear_error();
    apr_pool_destroy(pool);
    if (prov_legacy) {
        OSSL_PROVIDER_unload(prov_legacy);
    }
    if (prov_default) {
        OSSL_PROVIDER_unload(prov_default);
    }
    apr_terminate();
    return rc;
}
