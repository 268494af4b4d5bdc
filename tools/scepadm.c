/* Licensed under the Apache License, Version 2.0.
 *
 * scepadm: the administrator's command-line tool for mod_scep, on the core
 * library (libscep.a: APR, apr-util and OpenSSL, no httpd).
 *
 *   scepadm ca create        a standalone CA: key and self-signed certificate
 *   scepadm ra issue         NDES's two RA certificates (or one with both
 *                            usages) from a CA certificate and key
 *   scepadm ra request       the same keys with CSRs, for a CA whose key is
 *                            elsewhere (AD CS)
 *   scepadm password issue|list|revoke
 *                            one-time passwords directly in the SQL store,
 *                            hashed exactly as the module hashes them
 *   scepadm cert list|revoke the certificate store; revoke makes a new CRL
 *                            when given the CA key
 *   scepadm thumbprint       the CA thumbprint as the admin page shows it
 *   scepadm check            keys and certificates of a configuration
 *
 * Exit status: 0 done (check: no problem), 1 failed (check: problems
 * found), 64 usage error.  See man/scepadm.8.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_general.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "mod_scep.h"
#include "scep_certstore.h"
#include "scep_challenge.h"
#include "scep_json.h"
#include "scep_pki.h"
#include "scep_store.h"

#ifndef MOD_SCEP_VERSION
#define MOD_SCEP_VERSION "0.1.0"
#endif

#define EXIT_OK     0
#define EXIT_FAIL   1
#define EXIT_USAGE  64

/* the module's defaults (src/mod_scep_private.h, src/mod_scep_certs.c) */
#define DEFAULT_POOL            "default"
#define DEFAULT_PW_LENGTH       8
#define DEFAULT_PW_VALIDITY     60
#define DEFAULT_CRL_HOURS       168
#define DEFAULT_WARN_DAYS       30

/* Certificate Request Agent: NDES's "Exchange Enrollment Agent (Offline
 * request)" RA certificate carries it */
#define OID_CERT_REQUEST_AGENT  "1.3.6.1.4.1.311.20.2.1"

static apr_pool_t *pool;
static int quiet;

/* ---- output ------------------------------------------------------------ */

static int fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("scepadm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
    va_list ap;

    if (quiet) {
        return;
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const char *ssl_err(void)
{
    return scep_ssl_errors(pool);
}

static const char *rfc3339(apr_int64_t secs)
{
    apr_time_exp_t x;

    if (secs <= 0) {
        return NULL;
    }
    apr_time_exp_gmt(&x, apr_time_from_sec(secs));
    return apr_psprintf(pool, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                        x.tm_year + 1900, x.tm_mon + 1, x.tm_mday,
                        x.tm_hour, x.tm_min, x.tm_sec);
}

static const char *asn1_time_str(const ASN1_TIME *t)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        return "?";
    }
    return apr_psprintf(pool, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                        tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* A JSON string, or null. */
static const char *js(const char *s)
{
    return s ? scep_json_str(s, pool) : "null";
}

/* ---- command lines ------------------------------------------------------ */

/* One option as given: --name, --name VALUE, --name=VALUE, --name V1 V2. */
typedef struct {
    const char *name;
    const char *v1;
    const char *v2;
} opt_t;

typedef struct {
    apr_array_header_t *opts;     /* opt_t */
    apr_array_header_t *args;     /* const char *, the positional ones */
} cmdline_t;

/* How many values the option @a name takes in @a spec ("name" a flag,
 * "name=" one value, "name==" two), -1 when it is not in the spec. */
static int spec_values(const char *spec, const char *name)
{
    apr_size_t n = strlen(name);
    const char *s = spec;

    while (*s) {
        const char *e = s;
        while (*e && *e != ' ') {
            e++;
        }
        if ((apr_size_t)(e - s) >= n && !strncmp(s, name, n)
            && (s + n == e || s[n] == '=')) {
            int k = 0;
            const char *q = s + n;
            while (q < e && *q == '=') {
                k++;
                q++;
            }
            if (q == e) {
                return k;
            }
        }
        s = *e ? e + 1 : e;
    }
    return -1;
}

static int parse_cmdline(cmdline_t *cl, int argc, const char *const *argv,
                         const char *spec, const char *cmd)
{
    int i, only_args = 0;

    cl->opts = apr_array_make(pool, 8, sizeof(opt_t));
    cl->args = apr_array_make(pool, 4, sizeof(const char *));
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        opt_t *o;
        char *name;
        const char *eq;
        int k;

        if (only_args || a[0] != '-' || a[1] == '\0') {
            APR_ARRAY_PUSH(cl->args, const char *) = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_args = 1;
            continue;
        }
        if (a[1] != '-') {
            return fail(EXIT_USAGE, "%s: unknown option '%s' (options are "
                        "spelt --name; scepadm help)", cmd, a);
        }
        name = apr_pstrdup(pool, a + 2);
        eq = strchr(name, '=');
        if (eq) {
            name[eq - name] = '\0';
        }
        if ((k = spec_values(spec, name)) < 0) {
            return fail(EXIT_USAGE, "%s: unknown option --%s (scepadm help)",
                        cmd, name);
        }
        o = apr_array_push(cl->opts);
        o->name = name;
        o->v1 = o->v2 = NULL;
        if (k == 0) {
            if (eq) {
                return fail(EXIT_USAGE, "%s: --%s takes no value", cmd, name);
            }
            continue;
        }
        if (eq) {
            o->v1 = eq + 1;
        }
        else if (i + 1 < argc) {
            o->v1 = argv[++i];
        }
        else {
            return fail(EXIT_USAGE, "%s: --%s needs a value", cmd, name);
        }
        if (k == 2) {
            if (i + 1 >= argc) {
                return fail(EXIT_USAGE, "%s: --%s needs two values", cmd,
                            name);
            }
            o->v2 = argv[++i];
        }
    }
    return EXIT_OK;
}

/* The last value of an option, NULL when it is not given. */
static const char *opt(const cmdline_t *cl, const char *name)
{
    const char *v = NULL;
    int i;

    for (i = 0; i < cl->opts->nelts; i++) {
        const opt_t *o = &APR_ARRAY_IDX(cl->opts, i, opt_t);
        if (!strcmp(o->name, name)) {
            v = o->v1 ? o->v1 : "";
        }
    }
    return v;
}

static int flag(const cmdline_t *cl, const char *name)
{
    return opt(cl, name) != NULL;
}

/* A whole number option within [lo, hi]; *out keeps its default when the
 * option is not given. */
static int opt_num(const cmdline_t *cl, const char *name, long lo, long hi,
                   long *out)
{
    const char *v = opt(cl, name);
    char *end;
    long n;

    if (v == NULL) {
        return EXIT_OK;
    }
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        return fail(EXIT_USAGE, "--%s: a number from %ld to %ld, not '%s'",
                    name, lo, hi, v);
    }
    *out = n;
    return EXIT_OK;
}

static int need(const cmdline_t *cl, const char *name, const char *cmd,
                const char **out)
{
    *out = opt(cl, name);
    if (*out == NULL || !**out) {
        return fail(EXIT_USAGE, "%s: --%s is required (scepadm help)", cmd,
                    name);
    }
    return EXIT_OK;
}

/* ---- files ------------------------------------------------------------- */

static int write_file(const char *path, const void *data, apr_size_t len,
                      int mode, int force)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | (force ? 0 : O_EXCL),
                  mode);
    const char *d = data;
    ssize_t n;

    if (fd < 0) {
        if (errno == EEXIST) {
            return fail(EXIT_FAIL, "%s exists (--force replaces it)", path);
        }
        return fail(EXIT_FAIL, "cannot write %s: %s", path, strerror(errno));
    }
    /* an existing file keeps its mode with O_TRUNC: a key must not */
    if (fchmod(fd, (mode_t)mode) != 0) {
        close(fd);
        return fail(EXIT_FAIL, "cannot chmod %s: %s", path, strerror(errno));
    }
    while (len > 0) {
        n = write(fd, d, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            close(fd);
            return fail(EXIT_FAIL, "cannot write %s: %s", path,
                        strerror(errno));
        }
        d += n;
        len -= (apr_size_t)n;
    }
    if (close(fd) != 0) {
        return fail(EXIT_FAIL, "cannot write %s: %s", path, strerror(errno));
    }
    return EXIT_OK;
}

/* Refuse before any key is made when one of the outputs exists. */
static int check_new(const char *path, int force)
{
    struct stat st;

    if (!force && stat(path, &st) == 0) {
        return fail(EXIT_FAIL, "%s exists (--force replaces it)", path);
    }
    return EXIT_OK;
}

/* PEM of a certificate, a request or a private key (unencrypted PKCS#8). */
static int write_pem(const char *path, X509 *cert, X509_REQ *req,
                     EVP_PKEY *key, int force)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;
    int ok, rc;

    if (bio == NULL) {
        return fail(EXIT_FAIL, "out of memory");
    }
    ok = cert ? PEM_write_bio_X509(bio, cert)
         : req ? PEM_write_bio_X509_REQ(bio, req)
         : PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
    if (!ok) {
        BIO_free(bio);
        return fail(EXIT_FAIL, "cannot encode %s: %s", path, ssl_err());
    }
    n = BIO_get_mem_data(bio, &data);
    rc = write_file(path, data, (apr_size_t)n, key ? 0600 : 0644, force);
    BIO_free(bio);
    return rc;
}

/* The whole content of a file, at most @a max bytes. */
static int read_file(const char *path, apr_size_t max, unsigned char **out,
                     apr_size_t *len, struct stat *st)
{
    int fd = open(path, O_RDONLY);
    unsigned char *buf;
    apr_size_t n = 0;
    ssize_t got;

    if (fd < 0) {
        return fail(EXIT_FAIL, "cannot read %s: %s", path, strerror(errno));
    }
    if (fstat(fd, st) != 0) {
        close(fd);
        return fail(EXIT_FAIL, "cannot stat %s: %s", path, strerror(errno));
    }
    buf = apr_palloc(pool, max + 1);
    while (n <= max) {
        got = read(fd, buf + n, max + 1 - n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        n += (apr_size_t)got;
    }
    close(fd);
    *out = buf;
    *len = n;
    return EXIT_OK;
}

/* The key file of the stored password hashes, as SCEPPasswordKeyFile reads
 * it: every byte of it, 16 to 4096. */
static int read_pw_key(const char *path, const unsigned char **key,
                       apr_size_t *len)
{
    unsigned char *buf;
    struct stat st;
    int rc;

    if ((rc = read_file(path, 4096, &buf, len, &st)) != EXIT_OK) {
        return rc;
    }
    if (*len < 16 || *len > 4096) {
        return fail(EXIT_FAIL, "%s must hold 16 to 4096 bytes, as "
                    "SCEPPasswordKeyFile (openssl rand -hex 32 > FILE)", path);
    }
    *key = buf;
    return EXIT_OK;
}

static int load_cert(const char *path, X509 **cert, STACK_OF(X509) **chain)
{
    STACK_OF(X509) *sk;
    const char *why = NULL;

    if (scep_load_certs(&sk, path, &why, pool) != APR_SUCCESS) {
        return fail(EXIT_FAIL, "%s", why);
    }
    *cert = sk_X509_value(sk, 0);
    if (chain) {
        *chain = sk;
    }
    return EXIT_OK;
}

static int load_key(const char *path, EVP_PKEY **key)
{
    const char *why = NULL;

    if (scep_load_key(key, path, &why, pool) != APR_SUCCESS) {
        return fail(EXIT_FAIL, "%s", why);
    }
    return EXIT_OK;
}

/* ---- names, keys, certificates ----------------------------------------- */

/* A distinguished name as OpenSSL's -subj writes it ("/C=DE/O=Example/
 * CN=Root", most significant first) or as RFC 2253 prints it
 * ("CN=Root,O=Example,C=DE", least significant first).  A backslash escapes
 * the next character. */
static X509_NAME *parse_dn(const char *s, const char **why)
{
    X509_NAME *name = scep_own_name(pool, X509_NAME_new());
    apr_array_header_t *parts = apr_array_make(pool, 4, sizeof(char *));
    char sep = s[0] == '/' ? '/' : ',';
    char *buf = apr_palloc(pool, strlen(s) + 1), *w = buf;
    const char *r = sep == '/' ? s + 1 : s;
    int i;

    if (name == NULL) {
        *why = "out of memory";
        return NULL;
    }
    for (;; r++) {
        if (*r == '\\' && r[1]) {
            *w++ = *++r;
            continue;
        }
        if (*r == sep || *r == '\0') {
            *w = '\0';
            while (*buf == ' ') {
                buf++;
            }
            if (*buf) {
                APR_ARRAY_PUSH(parts, char *) = buf;
            }
            if (*r == '\0') {
                break;
            }
            buf = w = w + 1;
            continue;
        }
        *w++ = *r;
    }
    if (parts->nelts == 0) {
        *why = apr_psprintf(pool, "'%s' is not a distinguished name "
                            "(CN=name,O=org or /O=org/CN=name)", s);
        return NULL;
    }
    for (i = 0; i < parts->nelts; i++) {
        /* RFC 2253 lists the most significant RDN last */
        char *kv = APR_ARRAY_IDX(parts, sep == ',' ? parts->nelts - 1 - i
                                                  : i, char *);
        char *eq = strchr(kv, '=');
        apr_size_t n;
        if (eq == NULL || eq == kv) {
            *why = apr_psprintf(pool, "'%s' in '%s' is not type=value", kv,
                                s);
            return NULL;
        }
        *eq = '\0';
        n = strlen(kv);
        while (n && kv[n - 1] == ' ') {
            kv[--n] = '\0';
        }
        if (!X509_NAME_add_entry_by_txt(name, kv, MBSTRING_UTF8,
                                        (unsigned char *)eq + 1, -1, -1, 0)) {
            ERR_clear_error();
            *why = apr_psprintf(pool, "unknown attribute type '%s' in '%s' "
                                "(CN, O, OU, C, ST, L, emailAddress, DC...)",
                                kv, s);
            return NULL;
        }
    }
    return name;
}

/* A new key: "rsa" with @a bits, or "ec" on @a curve. */
static EVP_PKEY *new_key(int ec, long bits, const char *curve)
{
    EVP_PKEY *k;

    if (ec) {
        const char *c = curve;
        if (!strcasecmp(c, "P-256") || !strcasecmp(c, "p256")) {
            c = "prime256v1";
        }
        else if (!strcasecmp(c, "P-384") || !strcasecmp(c, "p384")) {
            c = "secp384r1";
        }
        else if (!strcasecmp(c, "P-521") || !strcasecmp(c, "p521")) {
            c = "secp521r1";
        }
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", c);
    }
    else {
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    }
    return scep_own_pkey(pool, k);
}

static const char *key_desc(EVP_PKEY *k)
{
    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
        return apr_psprintf(pool, "RSA %d", EVP_PKEY_get_bits(k));
    }
    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_EC) {
        char curve[64];
        size_t n = 0;
        if (EVP_PKEY_get_utf8_string_param(k, "group", curve, sizeof(curve),
                                           &n)) {
            return apr_psprintf(pool, "EC %s", curve);
        }
        return "EC";
    }
    return OBJ_nid2sn(EVP_PKEY_get_base_id(k));
}

/* The digest to sign with: --digest, else SHA-384 for P-384 and larger
 * curves, else SHA-256. */
static const EVP_MD *sign_md(const char *name, EVP_PKEY *key)
{
    if (name) {
        return EVP_get_digestbyname(name);
    }
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC
        && EVP_PKEY_get_bits(key) >= 384) {
        return EVP_sha384();
    }
    return EVP_sha256();
}

/* An extension into @a cert, or else into @a req_exts (a request's). */
static int add_ext(X509 *cert, STACK_OF(X509_EXTENSION) **req_exts,
                   X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok;

    if (ex == NULL) {
        return fail(EXIT_FAIL, "cannot make the %s extension '%s': %s",
                    OBJ_nid2sn(nid), value, ssl_err());
    }
    if (cert) {
        ok = X509_add_ext(cert, ex, -1);
    }
    else {
        ok = X509v3_add_ext(req_exts, ex, -1) != NULL;
    }
    X509_EXTENSION_free(ex);
    if (!ok) {
        return fail(EXIT_FAIL, "cannot add the %s extension: %s",
                    OBJ_nid2sn(nid), ssl_err());
    }
    return EXIT_OK;
}

/* notBefore/notAfter: --not-before/--not-after (YYYYMMDDHHMMSSZ) or now
 * (less five minutes of clock skew) and now + @a days. */
static int set_validity(X509 *cert, const cmdline_t *cl, long days)
{
    const char *nb = opt(cl, "not-before"), *na = opt(cl, "not-after");
    ASN1_TIME *t;
    int ok;

    t = nb ? ASN1_TIME_new() : X509_gmtime_adj(NULL, -300);
    ok = t && (!nb || ASN1_TIME_set_string_X509(t, nb));
    ok = ok && X509_set1_notBefore(cert, t);
    ASN1_TIME_free(t);
    if (!ok) {
        return fail(EXIT_USAGE, "--not-before: a time as YYYYMMDDHHMMSSZ, "
                    "not '%s'", nb ? nb : "");
    }
    t = na ? ASN1_TIME_new() : X509_time_adj_ex(NULL, (int)days, 0, NULL);
    ok = t && (!na || ASN1_TIME_set_string_X509(t, na));
    ok = ok && X509_set1_notAfter(cert, t);
    ASN1_TIME_free(t);
    if (!ok) {
        return fail(EXIT_USAGE, "--not-after: a time as YYYYMMDDHHMMSSZ, not "
                    "'%s'", na ? na : "");
    }
    return EXIT_OK;
}

static int set_random_serial(X509 *cert)
{
    BIGNUM *bn = BN_new();
    ASN1_INTEGER *serial = NULL;
    int ok;

    /* 128 random bits, positive, never zero (RFC 5280: at most 20 octets) */
    ok = bn && BN_rand(bn, 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY)
         && (serial = BN_to_ASN1_INTEGER(bn, NULL)) != NULL
         && X509_set_serialNumber(cert, serial);
    BN_free(bn);
    ASN1_INTEGER_free(serial);
    if (!ok) {
        return fail(EXIT_FAIL, "cannot make a serial number: %s", ssl_err());
    }
    return EXIT_OK;
}

/* ---- ca create ---------------------------------------------------------- */

#define CA_CREATE_SPEC "cert= key= subject= rsa= ec= days= pathlen= digest= " \
                       "not-before= not-after= force quiet"

static int key_options(const cmdline_t *cl, long default_bits, int *ec,
                       long *bits, const char **curve)
{
    int rc;

    *ec = 0;
    *bits = default_bits;
    *curve = NULL;
    if ((rc = opt_num(cl, "rsa", 2048, 16384, bits)) != EXIT_OK) {
        return rc;
    }
    if ((*curve = opt(cl, "ec")) != NULL) {
        if (opt(cl, "rsa")) {
            return fail(EXIT_USAGE, "--rsa and --ec exclude each other");
        }
        *ec = 1;
    }
    return EXIT_OK;
}

static int cmd_ca_create(int argc, const char *const *argv)
{
    cmdline_t cl;
    const char *certf, *keyf, *why = NULL;
    const char *subject = "CN=mod_scep CA";
    X509_NAME *name;
    X509 *cert;
    X509V3_CTX ctx;
    EVP_PKEY *key;
    const EVP_MD *md;
    long bits, days = 3650, pathlen = -1;
    const char *curve;
    int rc, ec, force;

    if ((rc = parse_cmdline(&cl, argc, argv, CA_CREATE_SPEC, "ca create"))
        != EXIT_OK
        || (rc = need(&cl, "cert", "ca create", &certf)) != EXIT_OK
        || (rc = need(&cl, "key", "ca create", &keyf)) != EXIT_OK
        || (rc = key_options(&cl, 3072, &ec, &bits, &curve)) != EXIT_OK
        || (rc = opt_num(&cl, "days", 1, 36500, &days)) != EXIT_OK
        || (rc = opt_num(&cl, "pathlen", 0, 32, &pathlen)) != EXIT_OK) {
        return rc;
    }
    if (cl.args->nelts) {
        return fail(EXIT_USAGE, "ca create: unexpected argument '%s'",
                    APR_ARRAY_IDX(cl.args, 0, const char *));
    }
    quiet = flag(&cl, "quiet");
    force = flag(&cl, "force");
    if (opt(&cl, "subject")) {
        subject = opt(&cl, "subject");
    }
    if ((name = parse_dn(subject, &why)) == NULL) {
        return fail(EXIT_USAGE, "--subject: %s", why);
    }
    if ((rc = check_new(certf, force)) != EXIT_OK
        || (rc = check_new(keyf, force)) != EXIT_OK) {
        return rc;
    }
    if ((key = new_key(ec, bits, curve)) == NULL) {
        return fail(EXIT_FAIL, "cannot make a %s key: %s",
                    ec ? curve : "RSA", ssl_err());
    }
    if ((md = sign_md(opt(&cl, "digest"), key)) == NULL) {
        return fail(EXIT_USAGE, "--digest: unknown digest '%s' (sha256, "
                    "sha384, sha512)", opt(&cl, "digest"));
    }
    cert = scep_own_x509(pool, X509_new());
    if (cert == NULL || !X509_set_version(cert, 2)
        || !X509_set_subject_name(cert, name)
        || !X509_set_issuer_name(cert, name)
        || !X509_set_pubkey(cert, key)) {
        return fail(EXIT_FAIL, "cannot make the certificate: %s", ssl_err());
    }
    if ((rc = set_random_serial(cert)) != EXIT_OK
        || (rc = set_validity(cert, &cl, days)) != EXIT_OK) {
        return rc;
    }
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    if ((rc = add_ext(cert, NULL, &ctx, NID_basic_constraints,
                      pathlen >= 0
                      ? apr_psprintf(pool, "critical,CA:TRUE,pathlen:%ld",
                                     pathlen)
                      : "critical,CA:TRUE")) != EXIT_OK
        || (rc = add_ext(cert, NULL, &ctx, NID_key_usage,
                         "critical,keyCertSign,cRLSign")) != EXIT_OK
        || (rc = add_ext(cert, NULL, &ctx, NID_subject_key_identifier,
                         "hash")) != EXIT_OK
        || (rc = add_ext(cert, NULL, &ctx,
                         NID_authority_key_identifier, "keyid:always"))
           != EXIT_OK) {
        return rc;
    }
    if (!X509_sign(cert, key, md)) {
        return fail(EXIT_FAIL, "cannot sign the certificate: %s", ssl_err());
    }
    /* the key first: a certificate without its key is of no use */
    if ((rc = write_pem(keyf, NULL, NULL, key, force)) != EXIT_OK
        || (rc = write_pem(certf, cert, NULL, NULL, force)) != EXIT_OK) {
        return rc;
    }
    printf("CA certificate: %s\n", certf);
    printf("CA key:         %s (%s, mode 0600)\n", keyf, key_desc(key));
    printf("subject:        %s\n",
           scep_name_str(X509_get_subject_name(cert), pool));
    printf("serial:         %s\n",
           scep_serial_str(X509_get0_serialNumber(cert), pool));
    printf("valid until:    %s\n", asn1_time_str(X509_get0_notAfter(cert)));
    printf("thumbprint:     %s\n", scep_cert_md5_thumbprint(cert, pool));
    return EXIT_OK;
}

/* ---- ra issue / ra request ---------------------------------------------- */

#define RA_SPEC "ca-cert= ca-key= out-dir= subject= enc-subject= " \
                "sign-subject= bits= days= digest= both not-before= " \
                "not-after= force quiet"

typedef struct {
    const char *file;          /* base name: ra-enc, ra-sign, ra */
    const char *what;          /* for people */
    const char *ku;
    const char *eku;           /* or NULL */
    const char *subject;
} ra_kind_t;

static const char *default_ra_subject(void)
{
    char host[256];

    /* NDES names its RA certificates COMPUTERNAME-MSCEP-RA */
    if (gethostname(host, sizeof(host)) != 0) {
        apr_cpystrn(host, "mod_scep", sizeof(host));
    }
    host[sizeof(host) - 1] = '\0';
    if (strchr(host, '.')) {
        *strchr(host, '.') = '\0';
    }
    return apr_psprintf(pool, "CN=%s-MSCEP-RA", host);
}

static int ra_one(const cmdline_t *cl, const ra_kind_t *k, X509 *ca,
                  EVP_PKEY *cakey, const char *dir, long bits, long days,
                  int force, int request)
{
    const char *keyf = apr_pstrcat(pool, dir, "/", k->file, ".key", NULL);
    const char *outf = apr_pstrcat(pool, dir, "/", k->file,
                                   request ? ".csr" : ".pem", NULL);
    const char *why = NULL;
    X509_NAME *name = parse_dn(k->subject, &why);
    EVP_PKEY *key;
    X509 *cert = NULL;
    X509_REQ *req = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    X509V3_CTX ctx;
    const EVP_MD *md;
    int rc;

    if (name == NULL) {
        return fail(EXIT_USAGE, "subject of the %s certificate: %s", k->what,
                    why);
    }
    if ((key = new_key(0, bits, NULL)) == NULL) {
        return fail(EXIT_FAIL, "cannot make an RSA key: %s", ssl_err());
    }
    if ((md = sign_md(opt(cl, "digest"), request ? key : cakey)) == NULL) {
        return fail(EXIT_USAGE, "--digest: unknown digest '%s'",
                    opt(cl, "digest"));
    }
    if (request) {
        req = scep_own_req(pool, X509_REQ_new());
        if (req == NULL || !X509_REQ_set_version(req, 0)
            || !X509_REQ_set_subject_name(req, name)
            || !X509_REQ_set_pubkey(req, key)) {
            return fail(EXIT_FAIL, "cannot make the request: %s", ssl_err());
        }
        X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
    }
    else {
        cert = scep_own_x509(pool, X509_new());
        if (cert == NULL || !X509_set_version(cert, 2)
            || !X509_set_subject_name(cert, name)
            || !X509_set_issuer_name(cert, X509_get_subject_name(ca))
            || !X509_set_pubkey(cert, key)) {
            return fail(EXIT_FAIL, "cannot make the certificate: %s",
                        ssl_err());
        }
        if ((rc = set_random_serial(cert)) != EXIT_OK
            || (rc = set_validity(cert, cl, days)) != EXIT_OK) {
            return rc;
        }
        /* never beyond the CA certificate */
        if (ASN1_TIME_compare(X509_get0_notAfter(cert),
                              X509_get0_notAfter(ca)) > 0) {
            note("scepadm: the %s certificate ends with the CA certificate, "
                 "%s", k->what, asn1_time_str(X509_get0_notAfter(ca)));
            X509_set1_notAfter(cert, X509_get0_notAfter(ca));
        }
        X509V3_set_ctx(&ctx, ca, cert, NULL, NULL, 0);
    }
    if ((rc = add_ext(cert, &exts, &ctx, NID_basic_constraints,
                      "critical,CA:FALSE")) != EXIT_OK
        || (rc = add_ext(cert, &exts, &ctx, NID_key_usage, k->ku))
           != EXIT_OK
        || (k->eku && (rc = add_ext(cert, &exts, &ctx,
                                    NID_ext_key_usage, k->eku)) != EXIT_OK)) {
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        return rc;
    }
    if (request) {
        int ok = X509_REQ_add_extensions(req, exts);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        if (!ok || !X509_REQ_sign(req, key, md)) {
            return fail(EXIT_FAIL, "cannot sign the request: %s", ssl_err());
        }
    }
    else {
        if ((rc = add_ext(cert, NULL, &ctx, NID_subject_key_identifier,
                          "hash")) != EXIT_OK
            || (rc = add_ext(cert, NULL, &ctx,
                             NID_authority_key_identifier,
                             X509_get0_subject_key_id(ca) ? "keyid:always"
                                                          : "issuer:always"))
               != EXIT_OK) {
            return rc;
        }
        if (!X509_sign(cert, cakey, md)) {
            return fail(EXIT_FAIL, "cannot sign the certificate: %s",
                        ssl_err());
        }
    }
    if ((rc = write_pem(keyf, NULL, NULL, key, force)) != EXIT_OK
        || (rc = write_pem(outf, cert, req, NULL, force)) != EXIT_OK) {
        return rc;
    }
    if (request) {
        printf("%s: %s (request), %s (RSA %ld, mode 0600), subject %s\n",
               k->what, outf, keyf, bits,
               scep_name_str(X509_REQ_get_subject_name(req), pool));
    }
    else {
        printf("%s: %s, %s (RSA %ld, mode 0600), subject %s, serial %s, "
               "valid until %s\n", k->what, outf, keyf, bits,
               scep_name_str(X509_get_subject_name(cert), pool),
               scep_serial_str(X509_get0_serialNumber(cert), pool),
               asn1_time_str(X509_get0_notAfter(cert)));
    }
    return EXIT_OK;
}

static int cmd_ra(int argc, const char *const *argv, int request)
{
    const char *cmd = request ? "ra request" : "ra issue";
    cmdline_t cl;
    const char *dir, *caf = NULL, *cakf = NULL, *subject;
    X509 *ca = NULL;
    EVP_PKEY *cakey = NULL;
    long bits = 2048, days = 730;
    ra_kind_t kinds[2];
    int rc, n, i, force;
    struct stat st;

    if ((rc = parse_cmdline(&cl, argc, argv, RA_SPEC, cmd)) != EXIT_OK
        || (rc = need(&cl, "out-dir", cmd, &dir)) != EXIT_OK
        || (rc = opt_num(&cl, "bits", 2048, 16384, &bits)) != EXIT_OK
        || (rc = opt_num(&cl, "days", 1, 36500, &days)) != EXIT_OK) {
        return rc;
    }
    if (cl.args->nelts) {
        return fail(EXIT_USAGE, "%s: unexpected argument '%s'", cmd,
                    APR_ARRAY_IDX(cl.args, 0, const char *));
    }
    quiet = flag(&cl, "quiet");
    force = flag(&cl, "force");
    if (!request) {
        if ((rc = need(&cl, "ca-cert", cmd, &caf)) != EXIT_OK
            || (rc = need(&cl, "ca-key", cmd, &cakf)) != EXIT_OK
            || (rc = load_cert(caf, &ca, NULL)) != EXIT_OK
            || (rc = load_key(cakf, &cakey)) != EXIT_OK) {
            return rc;
        }
        if (!scep_key_matches_cert(cakey, ca)) {
            return fail(EXIT_FAIL, "the key %s does not belong to the CA "
                        "certificate %s", cakf, caf);
        }
        if (X509_check_ca(ca) == 0) {
            note("scepadm: warning: %s is not a CA certificate (no "
                 "basicConstraints CA:TRUE): clients will not accept "
                 "certificates it signs", caf);
        }
        if (scep_cert_seconds_left(ca) <= 0) {
            return fail(EXIT_FAIL, "the CA certificate %s has expired", caf);
        }
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return fail(EXIT_FAIL, "--out-dir %s is not a directory", dir);
    }
    subject = opt(&cl, "subject") ? opt(&cl, "subject")
                                  : default_ra_subject();
    if (flag(&cl, "both")) {
        kinds[0].file = "ra";
        kinds[0].what = "RA (encryption and signing)";
        kinds[0].ku = "critical,digitalSignature,keyEncipherment";
        kinds[0].eku = OID_CERT_REQUEST_AGENT;
        kinds[0].subject = subject;
        n = 1;
    }
    else {
        /* NDES: "CEP Encryption" and "Exchange Enrollment Agent (Offline
         * request)" */
        kinds[0].file = "ra-enc";
        kinds[0].what = "RA encryption (CEP Encryption)";
        kinds[0].ku = "critical,keyEncipherment,dataEncipherment";
        kinds[0].eku = NULL;
        kinds[0].subject = opt(&cl, "enc-subject") ? opt(&cl, "enc-subject")
                                                   : subject;
        kinds[1].file = "ra-sign";
        kinds[1].what = "RA signing (Enrollment Agent)";
        kinds[1].ku = "critical,digitalSignature";
        kinds[1].eku = OID_CERT_REQUEST_AGENT;
        kinds[1].subject = opt(&cl, "sign-subject")
                           ? opt(&cl, "sign-subject") : subject;
        n = 2;
    }
    for (i = 0; i < n; i++) {
        const char *base = apr_pstrcat(pool, dir, "/", kinds[i].file, NULL);
        if ((rc = check_new(apr_pstrcat(pool, base, ".key", NULL), force))
            != EXIT_OK
            || (rc = check_new(apr_pstrcat(pool, base, request ? ".csr"
                                           : ".pem", NULL), force))
               != EXIT_OK) {
            return rc;
        }
    }
    for (i = 0; i < n; i++) {
        if ((rc = ra_one(&cl, &kinds[i], ca, cakey, dir, bits, days, force,
                         request)) != EXIT_OK) {
            return rc;
        }
    }
    {
        /* the lines for httpd.conf name the files absolutely */
        char *abs = realpath(dir, NULL);
        if (abs) {
            dir = apr_pstrdup(pool, abs);
            free(abs);
        }
    }
    if (request) {
        note("Submit the requests to the CA (AD CS: certreq -submit -attrib "
             "\"CertificateTemplate:CEPEncryption\" ra-enc.csr, and "
             "CertificateTemplate:EnrollmentAgentOffline for ra-sign.csr), "
             "then point SCEPRAEncryption and SCEPRASigning at the "
             "certificates and these keys.");
    }
    else if (n == 2) {
        note("httpd.conf:\n    SCEPRAEncryption %s/ra-enc.pem %s/ra-enc.key"
             "\n    SCEPRASigning %s/ra-sign.pem %s/ra-sign.key", dir, dir,
             dir, dir);
    }
    else {
        note("httpd.conf:\n    SCEPRAEncryption %s/ra.pem %s/ra.key", dir,
             dir);
    }
    return EXIT_OK;
}

/* ---- thumbprint --------------------------------------------------------- */

static int cmd_thumbprint(int argc, const char *const *argv)
{
    cmdline_t cl;
    X509 *cert;
    int rc;

    if ((rc = parse_cmdline(&cl, argc, argv, "verbose quiet", "thumbprint"))
        != EXIT_OK) {
        return rc;
    }
    if (cl.args->nelts != 1) {
        return fail(EXIT_USAGE, "thumbprint: one certificate file (the CA "
                    "certificate: SCEPCACertificateFile)");
    }
    if ((rc = load_cert(APR_ARRAY_IDX(cl.args, 0, const char *), &cert,
                        NULL)) != EXIT_OK) {
        return rc;
    }
    if (flag(&cl, "verbose")) {
        printf("subject:    %s\nthumbprint: ",
               scep_name_str(X509_get_subject_name(cert), pool));
    }
    printf("%s\n", scep_cert_md5_thumbprint(cert, pool));
    return EXIT_OK;
}

/* ---- the database ------------------------------------------------------ */

typedef struct {
    scep_db_t db;
    const char *name;          /* driver */
    int dropped;               /* euid lowered to the SQLite file's owner */
} admdb_t;

static scep_db_t *db_baton(void *baton)
{
    return baton;
}

/* "--dbd sqlite3:/var/lib/apache2/scep/scep.db", "--dbd 'pgsql:host=db
 * dbname=scep user=scep'": mod_dbd's DBDriver and DBDParams joined by a
 * colon.  Every statement of the store is prepared, as the module does at
 * start-up, so a missing schema is said at once. */
static int db_open(admdb_t *d, const char *spec)
{
    static const scep_store_stmt_t *const sets[] = {
        scep_store_statements, scep_certstore_statements, NULL
    };
    const scep_store_stmt_t *const *set;
    const scep_store_stmt_t *st;
    const char *colon = spec ? strchr(spec, ':') : NULL;
    const char *params, *err = NULL, *why = NULL;
    apr_status_t rv;
    int n;

    memset(d, 0, sizeof(*d));
    if (colon == NULL || colon == spec) {
        return fail(EXIT_USAGE, "--dbd: DRIVER:PARAMS, as DBDriver and "
                    "DBDParams (sqlite3:/var/lib/apache2/scep/scep.db, "
                    "'pgsql:host=db dbname=scep user=scep')");
    }
    d->name = apr_pstrmemdup(pool, spec, (apr_size_t)(colon - spec));
    params = colon + 1;
    apr_dbd_init(pool);
    if ((rv = apr_dbd_get_driver(pool, d->name, &d->db.driver))
        != APR_SUCCESS) {
        return fail(EXIT_FAIL, "cannot load the apr_dbd driver '%s' "
                    "(Debian: libaprutil1-dbd-%s)", d->name, d->name);
    }
    if (!strcmp(d->name, "sqlite3")) {
        struct stat sb;
        /* opening would create an empty file */
        if (stat(params, &sb) != 0) {
            return fail(EXIT_FAIL, "the SQLite database %s does not exist "
                        "(sqlite3 %s < schema-sqlite3.sql)", params, params);
        }
        /* as root, work as the owner of the database: files SQLite makes
         * beside it (-wal, -shm) must stay writable by httpd's children */
        if (geteuid() == 0 && sb.st_uid != 0) {
            if (setegid(sb.st_gid) != 0 || seteuid(sb.st_uid) != 0) {
                return fail(EXIT_FAIL, "cannot act as the owner (uid %ld) "
                            "of %s: %s", (long)sb.st_uid, params,
                            strerror(errno));
            }
            d->dropped = 1;
        }
    }
    if (apr_dbd_open_ex(d->db.driver, pool, params, &d->db.handle, &err)
        != APR_SUCCESS || d->db.handle == NULL) {
        return fail(EXIT_FAIL, "cannot connect to the %s database: %s",
                    d->name, err ? err : "no reason given");
    }
    if (!strcmp(d->name, "sqlite3")) {
        /* httpd's children write too: wait for them, as DBDInitSQL does */
        apr_dbd_query(d->db.driver, d->db.handle, &n,
                      "PRAGMA busy_timeout = 10000");
    }
    d->db.prepared = apr_hash_make(pool);
    for (set = sets; *set; set++) {
        for (st = *set; st->label; st++) {
            apr_dbd_prepared_t *ps = NULL;
            int e = apr_dbd_prepare(d->db.driver, pool, d->db.handle,
                                    st->sql, st->label, &ps);
            if (e != 0) {
                return fail(EXIT_FAIL, "statement %s does not prepare: %s "
                            "(is schema-%s.sql loaded?)", st->label,
                            apr_dbd_error(d->db.driver, d->db.handle, e),
                            d->name);
            }
            apr_hash_set(d->db.prepared, st->label, APR_HASH_KEY_STRING, ps);
        }
    }
    if (scep_store_check(&d->db, &why, pool) != APR_SUCCESS) {
        return fail(EXIT_FAIL, "the %s database lacks the schema: %s",
                    d->name, why);
    }
    return EXIT_OK;
}

static void db_close(admdb_t *d)
{
    if (d->db.handle) {
        apr_dbd_close(d->db.driver, d->db.handle);
        d->db.handle = NULL;
    }
    if (d->dropped) {
        if (seteuid(0) != 0 || setegid(0) != 0) {
            fail(EXIT_FAIL, "cannot return to root: %s", strerror(errno));
        }
        d->dropped = 0;
    }
}

/* ---- password issue / list / revoke ------------------------------------ */

#define PW_SPEC "dbd= key-file= pool= validity= length= max= cn= san= " \
                "profile= issuer= password= json quiet"

static const char *who_am_i(void)
{
    const char *u = getenv("SUDO_USER");
    struct passwd *pw;

    if (u == NULL || !*u) {
        pw = getpwuid(getuid());
        u = pw ? pw->pw_name : getenv("LOGNAME");
    }
    return apr_pstrcat(pool, "scepadm:", u ? u : "?", NULL);
}

static int pw_issue(const cmdline_t *cl, admdb_t *d, const unsigned char *key,
                    apr_size_t key_len, const char *pool_name)
{
    const scep_challenge_provider_t *otp = &scep_challenge_otp;
    scep_challenge_settings_t st;
    scep_challenge_req_t req;
    scep_challenge_binding_t bind;
    scep_challenge_status_e cs;
    void *inst = NULL;
    const char *pw = NULL, *reason = NULL;
    apr_time_t expires = 0;
    long length = DEFAULT_PW_LENGTH, validity = DEFAULT_PW_VALIDITY;
    long max = INT_MAX;
    int multi = 0, rc;

    if ((rc = opt_num(cl, "length", 4, 32, &length)) != EXIT_OK
        || (rc = opt_num(cl, "validity", 1, 527040, &validity)) != EXIT_OK
        || (rc = opt_num(cl, "max", 1, 1000000, &max)) != EXIT_OK) {
        return rc;
    }
    memset(&st, 0, sizeof(st));
    st.length = (int)length;
    st.validity = apr_time_from_sec((apr_int64_t)validity * 60);
    st.max = (int)max;
    st.key = key;
    st.key_len = key_len;
    st.endpoint = pool_name;
    memset(&req, 0, sizeof(req));
    req.pool = pool;
    req.settings = &st;
    req.db = db_baton;
    req.db_baton = &d->db;
    req.user = opt(cl, "issuer") ? opt(cl, "issuer") : who_am_i();
    memset(&bind, 0, sizeof(bind));
    bind.cn = opt(cl, "cn");
    bind.san = opt(cl, "san");
    bind.profile = opt(cl, "profile");
    /* the module's own generator: same randomness, same hash */
    if (otp->create(&inst, pool, 0, NULL) != NULL) {
        return fail(EXIT_FAIL, "cannot set up the otp provider");
    }
    cs = otp->generate(inst, &req, &bind, &pw, &expires, &multi, &reason);
    if (cs == SCEP_CHALLENGE_FULL) {
        return fail(EXIT_FAIL, "the password cache of pool %s is full: %s",
                    pool_name, reason);
    }
    if (cs != SCEP_CHALLENGE_OK) {
        return fail(EXIT_FAIL, "no password: %s", reason ? reason : "-");
    }
    if (flag(cl, "json")) {
        printf("{\"password\": %s, \"expires\": %s, \"validity_minutes\": "
               "%ld, \"single_use\": true, \"pool\": %s, \"issuer\": %s, "
               "\"bind_cn\": %s, \"bind_san\": %s, \"bind_profile\": %s}\n",
               js(pw), js(rfc3339(apr_time_sec(expires))), validity,
               js(pool_name), js(req.user), js(bind.cn), js(bind.san),
               js(bind.profile));
    }
    else {
        printf("%s\n", pw);
        note("one-time password of pool %s, expires %s", pool_name,
             rfc3339(apr_time_sec(expires)));
    }
    return EXIT_OK;
}

static int pw_list(const cmdline_t *cl, admdb_t *d, const char *pool_name)
{
    apr_array_header_t *rows;
    const char *why = NULL;
    int json = flag(cl, "json"), i;

    if (scep_pw_list(&d->db, pool_name, apr_time_sec(apr_time_now()), &rows,
                     &why, pool) != APR_SUCCESS) {
        return fail(EXIT_FAIL, "cannot list the passwords: %s", why);
    }
    if (json) {
        printf("{\"pool\": %s, \"passwords\": [", js(pool_name));
    }
    else if (rows->nelts) {
        printf("%-6s %-20s %-20s %-20s %s\n", "ID", "ISSUER", "CREATED",
               "EXPIRES", "BINDING");
    }
    for (i = 0; i < rows->nelts; i++) {
        const scep_pw_row_t *r = APR_ARRAY_IDX(rows, i, scep_pw_row_t *);
        if (json) {
            printf("%s{\"id\": %s, \"issuer\": %s, \"created\": %s, "
                   "\"expires\": %s, \"bind_cn\": %s, \"bind_san\": %s, "
                   "\"bind_profile\": %s}", i ? ", " : "", js(r->id),
                   js(r->issuer), js(rfc3339(r->created)),
                   js(rfc3339(r->expires)), js(r->bind_cn), js(r->bind_san),
                   js(r->bind_profile));
        }
        else {
            const char *b = "";
            if (r->bind_cn) {
                b = apr_pstrcat(pool, b, "cn=", r->bind_cn, " ", NULL);
            }
            if (r->bind_san) {
                b = apr_pstrcat(pool, b, "san=", r->bind_san, " ", NULL);
            }
            if (r->bind_profile) {
                b = apr_pstrcat(pool, b, "profile=", r->bind_profile, NULL);
            }
            printf("%-6s %-20s %-20s %-20s %s\n", r->id,
                   r->issuer ? r->issuer : "-", rfc3339(r->created),
                   rfc3339(r->expires), *b ? b : "-");
        }
    }
    if (json) {
        printf("]}\n");
    }
    else {
        note("%d outstanding password%s in pool %s", rows->nelts,
             rows->nelts == 1 ? "" : "s", pool_name);
    }
    return EXIT_OK;
}

static int pw_revoke(const cmdline_t *cl, admdb_t *d, const char *id,
                     const unsigned char *key, apr_size_t key_len,
                     const char *pool_name)
{
    const char *why = NULL, *p;
    int done = 0;

    if (id == NULL) {
        /* by the password itself: its hash finds the row */
        scep_challenge_settings_t st;
        scep_pw_row_t *row = NULL;

        memset(&st, 0, sizeof(st));
        st.key = key;
        st.key_len = key_len;
        if (scep_pw_lookup(&d->db, pool_name,
                           scep_password_hash(&st, opt(cl, "password"), pool),
                           &row, &why, pool) != APR_SUCCESS) {
            return fail(EXIT_FAIL, "cannot look the password up: %s", why);
        }
        if (row == NULL) {
            return fail(EXIT_FAIL, "no such password in pool %s (mistyped, "
                        "another pool, or another key file)", pool_name);
        }
        id = row->id;
    }
    for (p = id; *p; p++) {
        if (!apr_isdigit(*p)) {
            return fail(EXIT_USAGE, "password revoke: '%s' is not an id "
                        "(password list shows them)", id);
        }
    }
    if (scep_pw_revoke(&d->db, pool_name, id, &done, &why, pool)
        != APR_SUCCESS) {
        return fail(EXIT_FAIL, "cannot revoke password %s: %s", id, why);
    }
    if (!done) {
        return fail(EXIT_FAIL, "password %s is not outstanding in pool %s "
                    "(unknown, used, expired or revoked already)", id,
                    pool_name);
    }
    if (flag(cl, "json")) {
        printf("{\"revoked\": true, \"id\": %s}\n", js(id));
    }
    else {
        printf("revoked password %s of pool %s\n", id, pool_name);
    }
    return EXIT_OK;
}

static int cmd_password(int argc, const char *const *argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    const char *cmd = apr_pstrcat(pool, "password ", sub, NULL);
    cmdline_t cl;
    admdb_t d;
    const char *dbd, *keyf = NULL, *pool_name, *id = NULL;
    const unsigned char *key = NULL;
    apr_size_t key_len = 0;
    int rc, issue = !strcmp(sub, "issue"), list = !strcmp(sub, "list");
    int revoke = !strcmp(sub, "revoke");

    if (!issue && !list && !revoke) {
        return fail(EXIT_USAGE, "password: issue, list or revoke");
    }
    if ((rc = parse_cmdline(&cl, argc - 1, argv + 1, PW_SPEC, cmd))
        != EXIT_OK
        || (rc = need(&cl, "dbd", cmd, &dbd)) != EXIT_OK) {
        return rc;
    }
    quiet = flag(&cl, "quiet");
    pool_name = opt(&cl, "pool") ? opt(&cl, "pool") : DEFAULT_POOL;
    if (revoke) {
        if (cl.args->nelts == 1 && !opt(&cl, "password")) {
            id = APR_ARRAY_IDX(cl.args, 0, const char *);
        }
        else if (cl.args->nelts || !opt(&cl, "password")) {
            return fail(EXIT_USAGE, "password revoke: one id (password list "
                        "shows them), or --password PW with --key-file");
        }
    }
    else if (cl.args->nelts) {
        return fail(EXIT_USAGE, "%s: unexpected argument '%s'", cmd,
                    APR_ARRAY_IDX(cl.args, 0, const char *));
    }
    if (issue || (revoke && id == NULL)) {
        /* read as root, before the database may lower privileges */
        if ((rc = need(&cl, "key-file", cmd, &keyf)) != EXIT_OK
            || (rc = read_pw_key(keyf, &key, &key_len)) != EXIT_OK) {
            return rc;
        }
    }
    if ((rc = db_open(&d, dbd)) != EXIT_OK) {
        db_close(&d);
        return rc;
    }
    rc = issue ? pw_issue(&cl, &d, key, key_len, pool_name)
         : list ? pw_list(&cl, &d, pool_name)
         : pw_revoke(&cl, &d, id, key, key_len, pool_name);
    db_close(&d);
    return rc;
}

/* ---- cert list / revoke ------------------------------------------------- */

#define CERT_SPEC "dbd= ca= ca-key= limit= status= reason= crl-validity= " \
                  "crl-out= json quiet"

static int cert_list(const cmdline_t *cl, admdb_t *d, X509 *ca)
{
    apr_array_header_t *rows;
    const char *why = NULL, *status = opt(cl, "status");
    long limit = 1000;
    int json = flag(cl, "json"), i, shown = 0, rc;

    if ((rc = opt_num(cl, "limit", 1, 1000, &limit)) != EXIT_OK) {
        return rc;
    }
    if (status && strcmp(status, "valid") && strcmp(status, "revoked")) {
        return fail(EXIT_USAGE, "--status: valid or revoked");
    }
    if (scep_cert_list(&d->db, X509_get_subject_name(ca), 1000, &rows, &why,
                       pool) != APR_SUCCESS) {
        return fail(EXIT_FAIL, "cannot list the certificates: %s", why);
    }
    if (json) {
        printf("{\"issuer\": %s, \"certificates\": [",
               js(scep_name_str(X509_get_subject_name(ca), pool)));
    }
    for (i = 0; i < rows->nelts && shown < limit; i++) {
        const scep_cert_row_t *r = APR_ARRAY_IDX(rows, i, scep_cert_row_t *);
        int revoked = r->status == SCEP_CERT_REVOKED;
        if (status && (revoked != !strcmp(status, "revoked"))) {
            continue;
        }
        if (json) {
            printf("%s{\"serial\": %s, \"subject\": %s, \"not_before\": %s, "
                   "\"not_after\": %s, \"status\": \"%s\", \"revoked_at\": "
                   "%s, \"reason\": %s, \"transaction_id\": %s, "
                   "\"profile\": %s}", shown ? ", " : "", js(r->serial),
                   js(r->subject), js(rfc3339(r->not_before)),
                   js(rfc3339(r->not_after)), revoked ? "revoked" : "valid",
                   revoked ? js(rfc3339(r->revoked_at)) : "null",
                   revoked && r->reason >= 0
                   ? js(scep_crl_reason_name(r->reason)) : "null",
                   js(r->transaction_id), js(r->profile));
        }
        else {
            if (shown == 0) {
                printf("%-40s %-8s %-20s %s\n", "SERIAL", "STATUS",
                       "NOT AFTER", "SUBJECT");
            }
            printf("%-40s %-8s %-20s %s\n", r->serial,
                   revoked ? "revoked" : "valid", rfc3339(r->not_after),
                   r->subject ? r->subject : "-");
        }
        shown++;
    }
    if (json) {
        printf("]}\n");
    }
    else {
        note("%d certificate%s of %s", shown, shown == 1 ? "" : "s",
             scep_name_str(X509_get_subject_name(ca), pool));
    }
    return EXIT_OK;
}

static int cert_revoke(const cmdline_t *cl, admdb_t *d, X509 *ca,
                       EVP_PKEY *cakey, const char *serial)
{
    const char *why = NULL, *norm = scep_serial_normalize(serial, pool);
    const char *rs = opt(cl, "reason"), *crl_out = opt(cl, "crl-out");
    scep_cert_row_t *row = NULL;
    ASN1_INTEGER *aserial;
    BIGNUM *bn = NULL;
    apr_int64_t now = apr_time_sec(apr_time_now());
    long hours = DEFAULT_CRL_HOURS;
    int reason = 0, done = 0, already, rc;
    const unsigned char *der = NULL;
    apr_size_t len = 0;
    scep_crl_info_t info;

    if (norm == NULL) {
        return fail(EXIT_USAGE, "cert revoke: '%s' is not a hex serial "
                    "number", serial);
    }
    if (rs && (reason = scep_crl_reason_parse(rs)) < 0) {
        return fail(EXIT_USAGE, "--reason: '%s' is not a CRLReason (0-6, 9, "
                    "10 or a name such as keyCompromise, superseded)", rs);
    }
    if ((rc = opt_num(cl, "crl-validity", 1, 8760, &hours)) != EXIT_OK) {
        return rc;
    }
    if (!BN_hex2bn(&bn, norm)
        || (aserial = scep_own_int(pool, BN_to_ASN1_INTEGER(bn, NULL)))
           == NULL) {
        BN_free(bn);
        return fail(EXIT_FAIL, "cannot convert the serial number");
    }
    BN_free(bn);
    if (scep_cert_lookup(&d->db, X509_get_subject_name(ca), aserial, &row,
                         &why, pool) != APR_SUCCESS) {
        return fail(EXIT_FAIL, "cannot look the certificate up: %s", why);
    }
    if (row == NULL) {
        return fail(EXIT_FAIL, "no certificate with serial %s from %s is "
                    "recorded", norm,
                    scep_name_str(X509_get_subject_name(ca), pool));
    }
    already = row->status == SCEP_CERT_REVOKED;
    if (!already) {
        if (scep_cert_revoke(&d->db, X509_get_subject_name(ca), norm, reason,
                             now, &done, &why, pool) != APR_SUCCESS) {
            return fail(EXIT_FAIL, "cannot revoke %s: %s", norm, why);
        }
        already = !done;
    }
    if (already) {
        printf("certificate %s (%s) was revoked already\n", norm,
               row->subject ? row->subject : "-");
    }
    else {
        printf("revoked certificate %s (%s), reason %s\n", norm,
               row->subject ? row->subject : "-",
               scep_crl_reason_name(reason));
    }
    if (cakey == NULL) {
        note("scepadm: no --ca-key: the module publishes the new CRL when "
             "it is next asked for it (scep-crl, GetCRL), within seconds");
        return EXIT_OK;
    }
    /* a new CRL in the store at once: every node serves it within seconds */
    if (scep_crl_current(&d->db, ca, cakey, (apr_int64_t)hours * 3600, 1, now,
                         &der, &len, &why, pool) != APR_SUCCESS) {
        return fail(EXIT_FAIL, "revoked, but no new CRL: %s (running this "
                    "again makes one)", why);
    }
    if (scep_crl_info(der, len, ca, &info, &why, pool) != APR_SUCCESS) {
        return fail(EXIT_FAIL, "the new CRL does not read back: %s", why);
    }
    printf("CRL number %" APR_INT64_T_FMT ", %d revoked, next update %s\n",
           info.crl_number, info.entries, rfc3339(info.next_update));
    if (crl_out) {
        /* written after db_close, with the privileges we started with */
        apr_pool_userdata_setn(apr_pmemdup(pool, der, len), "crl-der", NULL,
                               pool);
        apr_pool_userdata_setn((void *)(apr_size_t)len, "crl-len", NULL,
                               pool);
    }
    return EXIT_OK;
}

static int cmd_cert(int argc, const char *const *argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    const char *cmd = apr_pstrcat(pool, "cert ", sub, NULL);
    cmdline_t cl;
    admdb_t d;
    const char *dbd, *caf, *cakf;
    X509 *ca;
    EVP_PKEY *cakey = NULL;
    int rc, list = !strcmp(sub, "list"), revoke = !strcmp(sub, "revoke");
    void *der = NULL, *len = NULL;

    if (!list && !revoke) {
        return fail(EXIT_USAGE, "cert: list or revoke");
    }
    if ((rc = parse_cmdline(&cl, argc - 1, argv + 1, CERT_SPEC, cmd))
        != EXIT_OK
        || (rc = need(&cl, "dbd", cmd, &dbd)) != EXIT_OK
        || (rc = need(&cl, "ca", cmd, &caf)) != EXIT_OK
        || (rc = load_cert(caf, &ca, NULL)) != EXIT_OK) {
        return rc;
    }
    quiet = flag(&cl, "quiet");
    if (revoke && cl.args->nelts != 1) {
        return fail(EXIT_USAGE, "cert revoke: one serial number (hex; cert "
                    "list shows them)");
    }
    if (list && cl.args->nelts) {
        return fail(EXIT_USAGE, "cert list: unexpected argument '%s'",
                    APR_ARRAY_IDX(cl.args, 0, const char *));
    }
    if (revoke && (cakf = opt(&cl, "ca-key")) != NULL) {
        if ((rc = load_key(cakf, &cakey)) != EXIT_OK) {
            return rc;
        }
        if (!scep_key_matches_cert(cakey, ca)) {
            return fail(EXIT_FAIL, "the key %s does not belong to the CA "
                        "certificate %s", cakf, caf);
        }
    }
    if ((rc = db_open(&d, dbd)) != EXIT_OK) {
        db_close(&d);
        return rc;
    }
    rc = list ? cert_list(&cl, &d, ca)
         : cert_revoke(&cl, &d, ca, cakey,
                       APR_ARRAY_IDX(cl.args, 0, const char *));
    db_close(&d);
    apr_pool_userdata_get(&der, "crl-der", pool);
    apr_pool_userdata_get(&len, "crl-len", pool);
    if (rc == EXIT_OK && der && opt(&cl, "crl-out")) {
        rc = write_file(opt(&cl, "crl-out"), der, (apr_size_t)len, 0644, 1);
    }
    return rc;
}

/* ---- check -------------------------------------------------------------- */

/* One directive that names files. */
typedef struct {
    const char *where;         /* file:line, or "command line" */
    const char *directive;
    const char *path;          /* the certificate or key-hash file */
    const char *key;           /* the key: RA pairs, SCEPCAProvider local */
    const char *provider;      /* SCEPCAProvider: its name */
} setting_t;

/* A configuration section: what it sets itself; the rest it inherits. */
typedef struct scope_t {
    struct scope_t *parent;
    const char *name;
    setting_t *ca;
    setting_t *next_ca;
    setting_t *ra_enc;
    setting_t *ra_sign;
    setting_t *provider;
    setting_t *pw_key;
    setting_t *challenge;
} scope_t;

typedef struct {
    apr_array_header_t *scopes;      /* scope_t *, in order of appearance */
    apr_hash_t *defines;
    const char *server_root;
    apr_hash_t *said;                /* lines printed already */
    apr_hash_t *certs;               /* path -> STACK_OF(X509) * */
    apr_hash_t *keys;                /* path -> EVP_PKEY * */
    apr_hash_t *bad;                 /* paths that do not load */
    long warn_days;
    int problems;
    int warnings;
    int ncerts;
    int nkeys;
    int depth;
} checker_t;

static void report(checker_t *ck, int problem, const char *where,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One line per problem (and per warning), each said once. */
static void report(checker_t *ck, int problem, const char *where,
                   const char *fmt, ...)
{
    va_list ap;
    const char *line;

    va_start(ap, fmt);
    line = apr_pstrcat(pool, problem ? "problem: " : "warning: ", where, ": ",
                       apr_pvsprintf(pool, fmt, ap), NULL);
    va_end(ap);
    if (apr_hash_get(ck->said, line, APR_HASH_KEY_STRING)) {
        return;
    }
    apr_hash_set(ck->said, line, APR_HASH_KEY_STRING, line);
    if (problem) {
        ck->problems++;
    }
    else {
        ck->warnings++;
    }
    printf("%s\n", line);
}

static const char *server_root_relative(checker_t *ck, const char *path)
{
    if (path[0] == '/') {
        return path;
    }
    return apr_pstrcat(pool, ck->server_root, "/", path, NULL);
}

/* ${NAME} from Define, else the environment; *unknown set when one is
 * neither (httpd would warn and leave it). */
static const char *expand_vars(checker_t *ck, const char *s, int *unknown)
{
    const char *out = "", *p = s, *start, *end, *v;

    while ((start = strstr(p, "${")) != NULL
           && (end = strchr(start, '}')) != NULL) {
        const char *name = apr_pstrmemdup(pool, start + 2,
                                          (apr_size_t)(end - start - 2));
        v = apr_hash_get(ck->defines, name, APR_HASH_KEY_STRING);
        if (v == NULL) {
            v = getenv(name);
        }
        if (v == NULL) {
            *unknown = 1;
            v = apr_pstrmemdup(pool, start, (apr_size_t)(end - start + 1));
        }
        out = apr_pstrcat(pool, out, apr_pstrmemdup(pool, p,
                                                    (apr_size_t)(start - p)),
                          v, NULL);
        p = end + 1;
    }
    return apr_pstrcat(pool, out, p, NULL);
}

/* httpd's words: blanks separate, "..." and '...' quote (a backslash
 * escapes the quote character inside). */
static apr_array_header_t *split_words(const char *line)
{
    apr_array_header_t *w = apr_array_make(pool, 4, sizeof(char *));
    const char *p = line;

    for (;;) {
        char *word, *o;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        word = o = apr_palloc(pool, strlen(p) + 1);
        if (*p == '"' || *p == '\'') {
            char q = *p++;
            while (*p && *p != q) {
                if (*p == '\\' && (p[1] == q || p[1] == '\\')) {
                    p++;
                }
                *o++ = *p++;
            }
            if (*p) {
                p++;
            }
        }
        else {
            while (*p && *p != ' ' && *p != '\t') {
                *o++ = *p++;
            }
        }
        *o = '\0';
        APR_ARRAY_PUSH(w, char *) = word;
    }
    return w;
}

static setting_t *new_setting(const char *where, const char *directive)
{
    setting_t *s = apr_pcalloc(pool, sizeof(*s));

    s->where = where;
    s->directive = directive;
    return s;
}

static scope_t *new_scope(checker_t *ck, scope_t *parent, const char *name)
{
    scope_t *sc = apr_pcalloc(pool, sizeof(*sc));

    sc->parent = parent;
    sc->name = name;
    APR_ARRAY_PUSH(ck->scopes, scope_t *) = sc;
    return sc;
}

/* Sections that only filter which lines count: their content belongs to
 * the section around them (all of it is read: scepadm cannot know which
 * modules or defines httpd will have). */
static int transparent_section(const char *tag)
{
    static const char *const tags[] = {
        "IfModule", "IfDefine", "IfVersion", "IfFile", "IfDirective",
        "IfSection", NULL
    };
    int i;

    for (i = 0; tags[i]; i++) {
        if (!strcasecmp(tag, tags[i])) {
            return 1;
        }
    }
    return 0;
}

static int read_config(checker_t *ck, const char *path, scope_t *scope,
                       int optional);

/* Is the condition of a section true?  <IfDefine [!]NAME> as Define (and
 * check --define) say, <IfFile [!]PATH> as the file system says; every
 * other section (<IfModule> included: which modules httpd will have is not
 * known here) counts as true. */
static int section_true(checker_t *ck, apr_array_header_t *w)
{
    const char *tag = APR_ARRAY_IDX(w, 0, const char *) + 1;
    char *arg;
    int neg, yes;
    struct stat st;

    if (w->nelts < 2 || (strncasecmp(tag, "IfDefine", 8)
                         && strncasecmp(tag, "IfFile", 6))) {
        return 1;
    }
    arg = apr_pstrdup(pool, APR_ARRAY_IDX(w, 1, const char *));
    if (arg[0] && arg[strlen(arg) - 1] == '>') {
        arg[strlen(arg) - 1] = '\0';
    }
    neg = arg[0] == '!';
    if (neg) {
        arg++;
    }
    if (!strncasecmp(tag, "IfDefine", 8)) {
        yes = apr_hash_get(ck->defines, arg, APR_HASH_KEY_STRING) != NULL;
    }
    else {
        yes = stat(server_root_relative(ck, arg), &st) == 0;
    }
    return yes != neg;
}

static void do_include(checker_t *ck, const char *where, const char *pattern,
                       scope_t *scope, int optional)
{
    const char *pat = server_root_relative(ck, pattern);
    struct stat st;
    glob_t g;
    size_t i;
    int rc;

    if (stat(pat, &st) == 0 && S_ISDIR(st.st_mode)) {
        pat = apr_pstrcat(pool, pat, "/*", NULL);
    }
    memset(&g, 0, sizeof(g));
    rc = glob(pat, 0, NULL, &g);
    if (rc != 0) {
        if (!optional && !strpbrk(pattern, "*?[")) {
            report(ck, 1, where, "Include %s: no such file", pat);
        }
        globfree(&g);
        return;
    }
    for (i = 0; i < g.gl_pathc; i++) {
        if (stat(g.gl_pathv[i], &st) == 0 && S_ISREG(st.st_mode)) {
            read_config(ck, apr_pstrdup(pool, g.gl_pathv[i]), scope,
                        optional);
        }
    }
    globfree(&g);
}

/* What SCEPCAProvider local's argument names: as the module resolves it
 * (a "file:" prefix, or an existing file relative to ServerRoot). */
static const char *provider_key_arg(checker_t *ck, const char *a)
{
    struct stat st;
    const char *abs;

    if (!strncmp(a, "file:", 5)) {
        return server_root_relative(ck, a + 5);
    }
    if (!strchr(a, ':')) {
        abs = server_root_relative(ck, a);
        if (stat(abs, &st) == 0) {
            return abs;
        }
    }
    return a;
}

/* One line of the configuration; @a unresolved is the line when it holds
 * a ${VARIABLE} that neither Define nor the environment knows. */
static void config_directive(checker_t *ck, const char *where,
                             apr_array_header_t *w, scope_t *scope,
                             const char *unresolved)
{
    const char *d = APR_ARRAY_IDX(w, 0, const char *);
    const char *a1 = w->nelts > 1 ? APR_ARRAY_IDX(w, 1, const char *) : NULL;
    const char *a2 = w->nelts > 2 ? APR_ARRAY_IDX(w, 2, const char *) : NULL;
    setting_t *s;

    if (!strcasecmp(d, "ServerRoot") && a1) {
        ck->server_root = apr_pstrdup(pool, a1);
        return;
    }
    if (!strcasecmp(d, "Define") && a1) {
        apr_hash_set(ck->defines, a1, APR_HASH_KEY_STRING, a2 ? a2 : "");
        return;
    }
    if ((!strcasecmp(d, "Include") || !strcasecmp(d, "IncludeOptional"))
        && a1) {
        if (unresolved) {
            report(ck, 0, where, "%s: undefined variable in '%s': not "
                   "followed", d, unresolved);
            return;
        }
        do_include(ck, where, a1, scope, !strcasecmp(d, "IncludeOptional"));
        return;
    }
    if (strncasecmp(d, "SCEP", 4)) {
        return;
    }
    if (unresolved && (!strcasecmp(d, "SCEPCACertificateFile")
                       || !strcasecmp(d, "SCEPNextCACertificateFile")
                       || !strcasecmp(d, "SCEPRAEncryption")
                       || !strcasecmp(d, "SCEPRASigning")
                       || !strcasecmp(d, "SCEPCAProvider")
                       || !strcasecmp(d, "SCEPPasswordKeyFile")
                       || !strcasecmp(d, "SCEPChallenge"))) {
        report(ck, 1, where, "%s: undefined variable in '%s' (Define it, or "
               "run with the environment of apache2ctl: . "
               "/etc/apache2/envvars)", d, unresolved);
        return;
    }
    s = new_setting(where, d);
    if (!strcasecmp(d, "SCEPCACertificateFile") && a1) {
        s->path = server_root_relative(ck, a1);
        scope->ca = s;
    }
    else if (!strcasecmp(d, "SCEPNextCACertificateFile") && a1) {
        s->path = server_root_relative(ck, a1);
        scope->next_ca = s;
    }
    else if ((!strcasecmp(d, "SCEPRAEncryption")
              || !strcasecmp(d, "SCEPRASigning")) && a1 && a2) {
        s->path = server_root_relative(ck, a1);
        s->key = strchr(a2, ':') ? a2 : server_root_relative(ck, a2);
        if (!strcasecmp(d, "SCEPRAEncryption")) {
            scope->ra_enc = s;
        }
        else {
            scope->ra_sign = s;
        }
    }
    else if (!strcasecmp(d, "SCEPCAProvider") && a1) {
        s->provider = apr_pstrdup(pool, a1);
        if (!strcmp(a1, "local") && a2) {
            s->key = provider_key_arg(ck, a2);
        }
        scope->provider = s;
    }
    else if (!strcasecmp(d, "SCEPPasswordKeyFile") && a1) {
        s->path = server_root_relative(ck, a1);
        scope->pw_key = s;
    }
    else if (!strcasecmp(d, "SCEPChallenge") && a1) {
        if (!strcmp(a1, "static") && a2 && !strncmp(a2, "file:", 5)) {
            s->path = server_root_relative(ck, a2 + 5);
            scope->challenge = s;
        }
    }
}

static int read_config(checker_t *ck, const char *path, scope_t *scope,
                       int optional)
{
    typedef struct {
        const char *tag;
        scope_t *scope;
    } open_t;
    apr_array_header_t *stack = apr_array_make(pool, 4, sizeof(open_t));
    FILE *f;
    char buf[8192];
    const char *line = "";
    int lineno = 0, first = 0, skip = 0;

    if (++ck->depth > 32) {
        report(ck, 1, path, "Include nested more than 32 deep (a loop?)");
        ck->depth--;
        return EXIT_FAIL;
    }
    if ((f = fopen(path, "r")) == NULL) {
        if (!optional) {
            report(ck, 1, path, "cannot read the configuration: %s",
                   strerror(errno));
        }
        ck->depth--;
        return EXIT_FAIL;
    }
    while (fgets(buf, sizeof(buf), f) != NULL) {
        apr_size_t n = strlen(buf);
        apr_array_header_t *w;
        const char *text, *where, *d;
        int unknown = 0;

        lineno++;
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
            buf[--n] = '\0';
        }
        if (!*line) {
            first = lineno;
        }
        /* a backslash at the end continues the line */
        if (n && buf[n - 1] == '\\') {
            buf[n - 1] = ' ';
            line = apr_pstrcat(pool, line, buf, NULL);
            continue;
        }
        text = apr_pstrcat(pool, line, buf, NULL);
        line = "";
        while (*text == ' ' || *text == '\t') {
            text++;
        }
        if (*text == '#' || *text == '\0') {
            continue;
        }
        where = apr_psprintf(pool, "%s:%d", path, first);
        text = expand_vars(ck, text, &unknown);
        w = split_words(text);
        if (w->nelts == 0) {
            continue;
        }
        d = APR_ARRAY_IDX(w, 0, const char *);
        if (skip) {
            /* inside a false <IfDefine> or <IfFile>: sections only count */
            if (d[0] == '<' && d[1] == '/') {
                skip--;
            }
            else if (d[0] == '<') {
                skip++;
            }
            continue;
        }
        if (d[0] == '<' && d[1] != '/' && !section_true(ck, w)) {
            skip = 1;
            continue;
        }
        if (d[0] == '<' && d[1] == '/') {
            /* the end of a section: back to the scope around it */
            char *tag = apr_pstrdup(pool, d + 2);
            if (strchr(tag, '>')) {
                *strchr(tag, '>') = '\0';
            }
            if (stack->nelts) {
                open_t *o = &APR_ARRAY_IDX(stack, stack->nelts - 1, open_t);
                scope = o->scope;
                stack->nelts--;
            }
            continue;
        }
        if (d[0] == '<') {
            char *tag = apr_pstrdup(pool, d + 1);
            open_t *o = apr_array_push(stack);
            if (strchr(tag, '>')) {
                *strchr(tag, '>') = '\0';
            }
            o->tag = tag;
            o->scope = scope;
            if (!transparent_section(tag)) {
                char *name = apr_pstrdup(pool, text);
                if (strchr(name, '>')) {
                    strchr(name, '>')[1] = '\0';
                }
                scope = new_scope(ck, scope, name);
            }
            continue;
        }
        config_directive(ck, where, w, scope, unknown ? text : NULL);
    }
    fclose(f);
    ck->depth--;
    return EXIT_OK;
}

/* The certificates of a file, checked once: loads, validity period. */
static STACK_OF(X509) *check_certs(checker_t *ck, const setting_t *s)
{
    STACK_OF(X509) *sk = apr_hash_get(ck->certs, s->path,
                                      APR_HASH_KEY_STRING);
    const char *why = NULL;
    int i;

    if (sk || apr_hash_get(ck->bad, s->path, APR_HASH_KEY_STRING)) {
        return sk;
    }
    if (access(s->path, R_OK) != 0) {
        report(ck, 1, s->where, "%s: cannot read %s: %s", s->directive,
               s->path, strerror(errno));
        apr_hash_set(ck->bad, s->path, APR_HASH_KEY_STRING, "");
        return NULL;
    }
    if (scep_load_certs(&sk, s->path, &why, pool) != APR_SUCCESS) {
        report(ck, 1, s->where, "%s: %s", s->directive, why);
        apr_hash_set(ck->bad, s->path, APR_HASH_KEY_STRING, "");
        return NULL;
    }
    apr_hash_set(ck->certs, s->path, APR_HASH_KEY_STRING, sk);
    for (i = 0; i < sk_X509_num(sk); i++) {
        X509 *x = sk_X509_value(sk, i);
        long long left = scep_cert_seconds_left(x);
        const char *what = apr_psprintf(pool, "%s: certificate %s%s (%s)",
                                        s->directive, s->path,
                                        i ? apr_psprintf(pool, " #%d", i + 1)
                                          : "",
                                        scep_name_str(X509_get_subject_name(x),
                                                      pool));
        ck->ncerts++;
        if (left <= 0) {
            report(ck, 1, s->where, "%s expired on %s", what,
                   asn1_time_str(X509_get0_notAfter(x)));
        }
        else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
            report(ck, 1, s->where, "%s is not valid before %s", what,
                   asn1_time_str(X509_get0_notBefore(x)));
        }
        else if (left < (long long)ck->warn_days * 86400) {
            report(ck, 0, s->where, "%s expires in %" APR_INT64_T_FMT
                   " days, on %s", what, (apr_int64_t)(left / 86400),
                   asn1_time_str(X509_get0_notAfter(x)));
        }
    }
    return sk;
}

static EVP_PKEY *check_key(checker_t *ck, const setting_t *s)
{
    EVP_PKEY *k = apr_hash_get(ck->keys, s->key, APR_HASH_KEY_STRING);
    const char *why = NULL;

    if (k || apr_hash_get(ck->bad, s->key, APR_HASH_KEY_STRING)) {
        return k;
    }
    if (!strchr(s->key, ':') && access(s->key, R_OK) != 0) {
        report(ck, 1, s->where, "%s: cannot read the key %s: %s",
               s->directive, s->key, strerror(errno));
        apr_hash_set(ck->bad, s->key, APR_HASH_KEY_STRING, "");
        return NULL;
    }
    if (scep_load_key(&k, s->key, &why, pool) != APR_SUCCESS) {
        report(ck, 1, s->where, "%s: %s", s->directive, why);
        apr_hash_set(ck->bad, s->key, APR_HASH_KEY_STRING, "");
        return NULL;
    }
    ck->nkeys++;
    apr_hash_set(ck->keys, s->key, APR_HASH_KEY_STRING, k);
    return k;
}

/* A certificate and its key: loaded, matching. */
static int check_pair(checker_t *ck, const setting_t *s, X509 **cert,
                      EVP_PKEY **key)
{
    STACK_OF(X509) *sk = check_certs(ck, s);

    *cert = sk ? sk_X509_value(sk, 0) : NULL;
    *key = check_key(ck, s);
    if (*cert == NULL || *key == NULL) {
        return 0;
    }
    if (!scep_key_matches_cert(*key, *cert)) {
        report(ck, 1, s->where, "%s: the key %s does not belong to the "
               "certificate %s (%s)", s->directive, s->key, s->path,
               scep_name_str(X509_get_subject_name(*cert), pool));
        return 0;
    }
    return 1;
}

static void check_ra(checker_t *ck, const setting_t *s, int enc)
{
    X509 *cert;
    EVP_PKEY *key;
    unsigned int ku = enc ? KU_KEY_ENCIPHERMENT : KU_DIGITAL_SIGNATURE;

    if (!check_pair(ck, s, &cert, &key)) {
        return;
    }
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        report(ck, 1, s->where, "%s: the RA key %s is %s; it must be RSA "
               "(SCEP encrypts to it with key transport)", s->directive,
               s->key, key_desc(key));
    }
    if (!scep_cert_has_ku(cert, ku)) {
        report(ck, 1, s->where, "%s: certificate %s lacks the %s key usage "
               "an RA %s certificate needs", s->directive, s->path,
               enc ? "keyEncipherment" : "digitalSignature",
               enc ? "encryption" : "signing");
    }
    if (X509_check_ca(cert) == 1 && !enc) {
        report(ck, 0, s->where, "%s: %s is a CA certificate; NDES's RA "
               "certificates are end-entity certificates", s->directive,
               s->path);
    }
}

static void check_ca_file(checker_t *ck, const setting_t *s, int local)
{
    STACK_OF(X509) *sk = check_certs(ck, s);
    X509 *ca;
    int i;

    if (sk == NULL) {
        return;
    }
    ca = sk_X509_value(sk, 0);
    if (X509_check_ca(ca) == 0) {
        report(ck, 1, s->where, "%s: %s (%s) is not a CA certificate (no "
               "basicConstraints CA:TRUE): clients refuse what it issues",
               s->directive, s->path,
               scep_name_str(X509_get_subject_name(ca), pool));
    }
    else if (local && !scep_cert_has_ku(ca, KU_KEY_CERT_SIGN)) {
        report(ck, 1, s->where, "%s: %s lacks the keyCertSign key usage the "
               "local CA signs certificates with", s->directive, s->path);
    }
    else if (local && !scep_cert_has_ku(ca, KU_CRL_SIGN)) {
        report(ck, 0, s->where, "%s: %s lacks the cRLSign key usage: the "
               "CRLs the local CA signs will not verify", s->directive,
               s->path);
    }
    for (i = 1; i < sk_X509_num(sk); i++) {
        if (X509_check_issued(sk_X509_value(sk, i), sk_X509_value(sk, i - 1))
            != X509_V_OK) {
            report(ck, 0, s->where, "%s: certificate #%d of %s did not issue "
                   "#%d: the chain should go from the issuing CA to the "
                   "root", s->directive, i + 1, s->path, i);
        }
    }
}

/* Did one of the CA chain's certificates sign @a cert? */
static int issued_by_chain(X509 *cert, STACK_OF(X509) *chain)
{
    int i;

    for (i = 0; i < sk_X509_num(chain); i++) {
        X509 *ca = sk_X509_value(chain, i);
        if (X509_check_issued(ca, cert) == X509_V_OK
            && X509_verify(cert, X509_get0_pubkey(ca)) == 1) {
            return 1;
        }
    }
    ERR_clear_error();
    return 0;
}

#define EFFECTIVE(sc, field, out) do {                                      \
        const scope_t *s_ = (sc);                                           \
        (out) = NULL;                                                       \
        while (s_ && (out) == NULL) {                                       \
            (out) = s_->field;                                              \
            s_ = s_->parent;                                                \
        }                                                                   \
    } while (0)

/* A section as a request would see it: its own settings over those of the
 * sections around it. */
static void check_scope(checker_t *ck, const scope_t *sc)
{
    setting_t *ca, *next_ca, *ra_enc, *ra_sign, *prov, *pw_key, *chal;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *cakey = NULL;
    int local;

    EFFECTIVE(sc, ca, ca);
    EFFECTIVE(sc, next_ca, next_ca);
    EFFECTIVE(sc, ra_enc, ra_enc);
    EFFECTIVE(sc, ra_sign, ra_sign);
    EFFECTIVE(sc, provider, prov);
    EFFECTIVE(sc, pw_key, pw_key);
    EFFECTIVE(sc, challenge, chal);
    local = prov && prov->provider && !strcmp(prov->provider, "local");

    if (ca) {
        check_ca_file(ck, ca, local);
        chain = apr_hash_get(ck->certs, ca->path, APR_HASH_KEY_STRING);
    }
    if (next_ca) {
        check_certs(ck, next_ca);
    }
    if (ra_enc) {
        check_ra(ck, ra_enc, 1);
    }
    if (ra_sign) {
        check_ra(ck, ra_sign, 0);
    }
    if (pw_key) {
        struct stat st;
        int fd = open(pw_key->path, O_RDONLY);
        if (fd < 0 || fstat(fd, &st) != 0) {
            report(ck, 1, pw_key->where, "%s: cannot read %s: %s",
                   pw_key->directive, pw_key->path, strerror(errno));
        }
        else if (st.st_size < 16 || st.st_size > 4096) {
            report(ck, 1, pw_key->where, "%s: %s must hold 16 to 4096 bytes "
                   "(openssl rand -hex 32 > FILE)", pw_key->directive,
                   pw_key->path);
        }
        else if (st.st_mode & 044) {
            report(ck, 0, pw_key->where, "%s: %s is readable by group or "
                   "others; chmod 600 it", pw_key->directive, pw_key->path);
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    if (chal) {
        FILE *f = fopen(chal->path, "r");
        char line[1024];
        char *p = NULL;
        if (f == NULL) {
            report(ck, 1, chal->where, "%s static file:%s: cannot read it: %s",
                   chal->directive, chal->path, strerror(errno));
        }
        else {
            p = fgets(line, sizeof(line), f);
            fclose(f);
            while (p && (*p == ' ' || *p == '\t')) {
                p++;
            }
            if (p == NULL || *p == '\n' || *p == '\r' || *p == '\0') {
                report(ck, 1, chal->where, "%s static file:%s: the password "
                       "is empty", chal->directive, chal->path);
            }
        }
    }
    if (local && prov->key == NULL) {
        report(ck, 1, prov->where, "SCEPCAProvider local: the CA key is "
               "missing");
    }
    else if (local) {
        setting_t k = *prov;
        k.directive = "SCEPCAProvider local";
        cakey = check_key(ck, &k);
    }
    /* an endpoint, as the module decides: a CA and a provider or RA */
    if (!ca || !(prov || ra_enc || ra_sign) || chain == NULL) {
        return;
    }
    if (local && prov->key) {
        EVP_PKEY *key = cakey;
        if (key != NULL) {
            if (!scep_key_matches_cert(key, sk_X509_value(chain, 0))) {
                report(ck, 1, prov->where, "SCEPCAProvider local: the key %s "
                       "does not belong to the CA certificate %s (%s)",
                       prov->key, ca->path,
                       scep_name_str(X509_get_subject_name(
                                         sk_X509_value(chain, 0)), pool));
            }
            else if (!ra_enc && !ra_sign
                     && EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
                report(ck, 1, prov->where, "without SCEPRAEncryption the CA "
                       "key answers as RA and must be RSA; %s is %s",
                       prov->key, key_desc(key));
            }
        }
    }
    if (!ra_enc && !ra_sign && !local) {
        report(ck, 1, prov ? prov->where : ca->where, "no RA certificate "
               "(SCEPRAEncryption, SCEPRASigning) and no local CA key to act "
               "as RA");
    }
    if ((ra_enc != NULL) != (ra_sign != NULL)) {
        setting_t *one = ra_enc ? ra_enc : ra_sign;
        STACK_OF(X509) *sk = apr_hash_get(ck->certs, one->path,
                                          APR_HASH_KEY_STRING);
        if (sk && !scep_cert_has_ku(sk_X509_value(sk, 0),
                                    KU_KEY_ENCIPHERMENT
                                    | KU_DIGITAL_SIGNATURE)) {
            report(ck, 1, one->where, "%s: a single RA certificate serves "
                   "both roles and needs both keyEncipherment and "
                   "digitalSignature (or configure SCEPRAEncryption and "
                   "SCEPRASigning)", one->directive);
        }
    }
    if (ra_enc || ra_sign) {
        setting_t *ras[2];
        int i;
        ras[0] = ra_enc;
        ras[1] = ra_sign;
        for (i = 0; i < 2; i++) {
            STACK_OF(X509) *sk = ras[i] ? apr_hash_get(ck->certs,
                                                       ras[i]->path,
                                                       APR_HASH_KEY_STRING)
                                        : NULL;
            if (sk && !issued_by_chain(sk_X509_value(sk, 0), chain)) {
                report(ck, 0, ras[i]->where, "%s: %s was not issued by the "
                       "CA of %s (%s): clients that check the RA certificate "
                       "against the CA refuse it", ras[i]->directive,
                       ras[i]->path, ca->directive, ca->path);
            }
        }
    }
}

#define CHECK_SPEC "config= server-root= pair== ca-cert= ca-key= ra-enc== " \
                   "ra-sign== warn-days= define= quiet"

static int cmd_check(int argc, const char *const *argv)
{
    cmdline_t cl;
    checker_t ck;
    scope_t *top = NULL, *cmdl = NULL;
    int i, configs = 0, pairs = 0, found;

    if (parse_cmdline(&cl, argc, argv, CHECK_SPEC, "check") != EXIT_OK) {
        return EXIT_USAGE;
    }
    memset(&ck, 0, sizeof(ck));
    ck.scopes = apr_array_make(pool, 16, sizeof(scope_t *));
    ck.defines = apr_hash_make(pool);
    ck.said = apr_hash_make(pool);
    ck.certs = apr_hash_make(pool);
    ck.keys = apr_hash_make(pool);
    ck.bad = apr_hash_make(pool);
    ck.warn_days = DEFAULT_WARN_DAYS;
    quiet = flag(&cl, "quiet");
    if (opt_num(&cl, "warn-days", 0, 3650, &ck.warn_days) != EXIT_OK) {
        return EXIT_USAGE;
    }
    /* httpd -D NAME */
    for (i = 0; i < cl.opts->nelts; i++) {
        const opt_t *o = &APR_ARRAY_IDX(cl.opts, i, opt_t);
        if (!strcmp(o->name, "define")) {
            apr_hash_set(ck.defines, o->v1, APR_HASH_KEY_STRING, "");
        }
    }
    /* files named on the command line: "scepadm check FILE" is --config */
    for (i = 0; i < cl.args->nelts; i++) {
        opt_t *o = apr_array_push(cl.opts);
        o->name = "config";
        o->v1 = APR_ARRAY_IDX(cl.args, i, const char *);
        o->v2 = NULL;
    }
    for (i = 0; i < cl.opts->nelts; i++) {
        const opt_t *o = &APR_ARRAY_IDX(cl.opts, i, opt_t);
        setting_t *s;

        if (!strcmp(o->name, "config")) {
            char *dir = apr_pstrdup(pool, o->v1);
            if (opt(&cl, "server-root")) {
                ck.server_root = opt(&cl, "server-root");
            }
            else if (strrchr(dir, '/')) {
                *strrchr(dir, '/') = '\0';
                ck.server_root = *dir ? dir : "/";
            }
            else {
                ck.server_root = ".";
            }
            top = new_scope(&ck, NULL, "server config");
            read_config(&ck, o->v1, top, 0);
            configs++;
            continue;
        }
        if (cmdl == NULL && strcmp(o->name, "server-root")
            && strcmp(o->name, "warn-days") && strcmp(o->name, "quiet")
            && strcmp(o->name, "define")) {
            cmdl = new_scope(&ck, NULL, "command line");
        }
        if (!strcmp(o->name, "pair")) {
            X509 *cert;
            EVP_PKEY *key;
            s = new_setting("--pair", "pair");
            s->path = o->v1;
            s->key = o->v2;
            check_pair(&ck, s, &cert, &key);
            pairs++;
        }
        else if (!strcmp(o->name, "ca-cert")) {
            s = new_setting("--ca-cert", "CA certificate");
            s->path = o->v1;
            cmdl->ca = s;
        }
        else if (!strcmp(o->name, "ca-key")) {
            s = new_setting("--ca-key", "CA key");
            s->provider = "local";
            s->key = o->v1;
            cmdl->provider = s;
        }
        else if (!strcmp(o->name, "ra-enc") || !strcmp(o->name, "ra-sign")) {
            int enc = !strcmp(o->name, "ra-enc");
            s = new_setting(enc ? "--ra-enc" : "--ra-sign",
                            enc ? "RA encryption" : "RA signing");
            s->path = o->v1;
            s->key = o->v2;
            if (enc) {
                cmdl->ra_enc = s;
            }
            else {
                cmdl->ra_sign = s;
            }
        }
    }
    if (ck.scopes->nelts == 0) {
        return fail(EXIT_USAGE, "check: an httpd configuration file "
                    "(--config FILE) or certificates and keys (--pair CERT "
                    "KEY, --ca-cert, --ca-key, --ra-enc CERT KEY, --ra-sign "
                    "CERT KEY)");
    }
    for (i = 0; i < ck.scopes->nelts; i++) {
        check_scope(&ck, APR_ARRAY_IDX(ck.scopes, i, scope_t *));
    }
    for (i = 0, found = 0; i < ck.scopes->nelts; i++) {
        const scope_t *sc = APR_ARRAY_IDX(ck.scopes, i, scope_t *);
        found += sc->ca || sc->next_ca || sc->ra_enc || sc->ra_sign
                 || sc->provider || sc->pw_key || sc->challenge;
    }
    if (configs && !found && !pairs) {
        report(&ck, 0, "configuration", "no SCEP certificate or key "
               "directive found (is this the right file? Include lines are "
               "followed)");
    }
    if (ck.problems) {
        note("check: %d problem%s, %d warning%s", ck.problems,
             ck.problems == 1 ? "" : "s", ck.warnings,
             ck.warnings == 1 ? "" : "s");
        return EXIT_FAIL;
    }
    note("check: %d certificate%s and %d key%s checked, no problem%s",
         ck.ncerts, ck.ncerts == 1 ? "" : "s", ck.nkeys,
         ck.nkeys == 1 ? "" : "s",
         ck.warnings ? apr_psprintf(pool, " (%d warning%s)", ck.warnings,
                                    ck.warnings == 1 ? "" : "s") : "");
    return EXIT_OK;
}

/* ---- main --------------------------------------------------------------- */

static const char usage_text[] =
"usage: scepadm COMMAND [options]     (scepadm(8); Apache mod_scep)\n"
"\n"
"  ca create --cert FILE --key FILE [--subject DN] [--rsa BITS|--ec CURVE]\n"
"            [--days N] [--pathlen N] [--digest MD] [--force]\n"
"      a standalone CA: key (mode 0600) and self-signed certificate\n"
"  ra issue --ca-cert FILE --ca-key FILE --out-dir DIR [--both]\n"
"           [--subject DN] [--enc-subject DN] [--sign-subject DN]\n"
"           [--bits N] [--days N] [--force]\n"
"      NDES's RA certificates: ra-enc (keyEncipherment) and ra-sign\n"
"      (digitalSignature, EKU Certificate Request Agent), or one ra.pem\n"
"  ra request --out-dir DIR [--both] [subjects, --bits N]\n"
"      the same keys with CSRs, for a CA whose key is elsewhere (AD CS)\n"
"  password issue --dbd DRIVER:PARAMS --key-file FILE [--pool NAME]\n"
"           [--validity MINUTES] [--length BYTES] [--max N] [--cn PATTERN]\n"
"           [--san PATTERN] [--profile NAME] [--issuer NAME] [--json]\n"
"  password list --dbd DRIVER:PARAMS [--pool NAME] [--json]\n"
"  password revoke --dbd DRIVER:PARAMS [--pool NAME] ID\n"
"  password revoke --dbd DRIVER:PARAMS --key-file FILE --password PW\n"
"      one-time passwords in the SQL store (as the admin page issues them)\n"
"  cert list --dbd DRIVER:PARAMS --ca FILE [--status valid|revoked]\n"
"           [--limit N] [--json]\n"
"  cert revoke --dbd DRIVER:PARAMS --ca FILE SERIAL [--reason REASON]\n"
"           [--ca-key FILE [--crl-validity HOURS] [--crl-out FILE]]\n"
"      issued certificates; with the CA key a new CRL is made at once\n"
"  thumbprint CERT\n"
"      MD5 thumbprint as the admin page shows it\n"
"  check [--config] HTTPD.CONF [--server-root DIR] [--warn-days N]\n"
"        [--define NAME]...\n"
"  check [--ca-cert FILE] [--ca-key FILE] [--ra-enc CERT KEY]\n"
"        [--ra-sign CERT KEY] [--pair CERT KEY]...\n"
"      keys and certificates: pairs match, validity, key usages; one line\n"
"      per problem, exit status 1 when there is one\n"
"  version | help\n"
"\n"
"--dbd is mod_dbd's DBDriver and DBDParams: sqlite3:/var/lib/apache2/scep/\n"
"scep.db or 'pgsql:host=db dbname=scep user=scep password=...'.\n"
"--key-file is SCEPPasswordKeyFile, --pool SCEPPasswordPool (default).\n";

int main(int argc, const char *const *argv)
{
    const char *cmd, *sub;
    int rc;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&pool, NULL);
    cmd = argc > 1 ? argv[1] : "";
    sub = argc > 2 ? argv[2] : "";

    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help")
        || !strcmp(cmd, "-h")) {
        fputs(usage_text, stdout);
        rc = EXIT_OK;
    }
    else if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("scepadm (mod_scep) %s, %s\n", MOD_SCEP_VERSION,
               OpenSSL_version(OPENSSL_VERSION));
        rc = EXIT_OK;
    }
    else if (!strcmp(cmd, "ca") && !strcmp(sub, "create")) {
        rc = cmd_ca_create(argc - 3, argv + 3);
    }
    else if (!strcmp(cmd, "ra") && !strcmp(sub, "issue")) {
        rc = cmd_ra(argc - 3, argv + 3, 0);
    }
    else if (!strcmp(cmd, "ra") && !strcmp(sub, "request")) {
        rc = cmd_ra(argc - 3, argv + 3, 1);
    }
    else if (!strcmp(cmd, "password")) {
        rc = cmd_password(argc - 2, argv + 2);
    }
    else if (!strcmp(cmd, "cert")) {
        rc = cmd_cert(argc - 2, argv + 2);
    }
    else if (!strcmp(cmd, "thumbprint")) {
        rc = cmd_thumbprint(argc - 2, argv + 2);
    }
    else if (!strcmp(cmd, "check")) {
        rc = cmd_check(argc - 2, argv + 2);
    }
    else {
        fputs(usage_text, stderr);
        rc = *cmd ? fail(EXIT_USAGE, "unknown command '%s%s%s'", cmd,
                         *sub ? " " : "", sub)
                  : EXIT_USAGE;
    }
    fflush(stdout);
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}
