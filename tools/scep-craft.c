/* Licensed under the Apache License, Version 2.0.
 *
 * scep-craft: hostile and seed input for mod_scep's tests and fuzzers.  It
 * writes files, it sends nothing (t/07-hostile.t sends them with
 * "scep-client raw").  What scep-client cannot make: SCEP attributes
 * repeated or of the wrong size, CSRs with thousands of names or
 * extensions, and the seed corpora of fuzz/ (encrypted to the fixed test
 * RA of fuzz/fuzz_ra.h).
 *
 *   scep-craft message --ra CERT --out FILE [options]
 *       --type T            messageType attribute (repeat: one attribute
 *                           per --type; T is sent as given, "19", "abc")
 *       --no-type           no messageType attribute
 *       --tid S | --no-tid  transactionID (default: a fixed test string)
 *       --nonce-len N       senderNonce of N bytes (default 16; 0: none)
 *       --dup-nonce         two senderNonce attributes
 *       --content FILE      messageData DER (default: a CSR, below)
 *       --key FILE          the CSR's key (PEM; default: a new RSA 2048)
 *       --signer-key FILE   sign with this key (default: the CSR's key)
 *       --cn NAME --challenge PW --sans N --exts N   the CSR (as below)
 *       --cipher des|des3|aes128|aes192|aes256  --digest sha1|sha256|...
 *       --corrupt-signature
 *   scep-craft csr --out FILE [--key FILE] [--cn NAME] [--challenge PW]
 *       [--sans N] [--exts N]      DER CSR with N DNS names / N extensions
 *   scep-craft cert --out FILE --key-out FILE [--cn NAME]
 *       a self-signed certificate (PEM) and its new RSA 2048 key
 *   scep-craft seeds DIR   the seed corpora DIR/{pkimessage,csr,p7,base64,
 *                          json}/seed-* (fuzz/run.sh --seeds)
 *
 * Exit status 0, 1 on error, 64 on usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include "scep_msg.h"
#include "scep_pki.h"
#include "scep_asn1.h"
#include "scep_client.h"
#include "../fuzz/fuzz_ra.h"

#define EXIT_USAGE 64

typedef struct {
    apr_array_header_t *types;  /* messageType values, as strings */
    const char *tid;
    int nonce_len;
    int dup_nonce;
    const unsigned char *content;
    apr_size_t content_len;
    STACK_OF(X509) *to;
    X509 *signer;
    EVP_PKEY *signer_key;
    const EVP_CIPHER *cipher;
    const EVP_MD *md;
    int corrupt;
} craft_t;

static apr_pool_t *pool;

static int fail(const char *what)
{
    fprintf(stderr, "scep-craft: %s: %s\n", what, scep_ssl_errors(pool));
    return 1;
}

static int write_file(const char *path, const void *data, apr_size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL || (len && fwrite(data, 1, len, f) != len)) {
        if (f) {
            fclose(f);
        }
        fprintf(stderr, "scep-craft: cannot write %s\n", path);
        return 1;
    }
    return fclose(f) == 0 ? 0 : 1;
}

static int read_file(const char *path, const unsigned char **data,
                     apr_size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;

    if (f == NULL) {
        fprintf(stderr, "scep-craft: cannot read %s\n", path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = apr_palloc(pool, n > 0 ? (apr_size_t)n : 1);
    if (n < 0 || (n && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        fclose(f);
        fprintf(stderr, "scep-craft: cannot read %s\n", path);
        return 1;
    }
    fclose(f);
    *data = buf;
    *len = (apr_size_t)n;
    return 0;
}

static EVP_PKEY *load_key(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;

    if (f == NULL) {
        return NULL;
    }
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return scep_own_pkey(pool, k);
}

static EVP_PKEY *new_rsa(void)
{
    return scep_own_pkey(pool, EVP_RSA_gen(2048));
}

static EVP_PKEY *new_ec(void)
{
    return scep_own_pkey(pool, EVP_EC_gen("P-256"));
}

static X509_NAME *cn_name(const char *cn)
{
    X509_NAME *n = X509_NAME_new();

    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
                               (const unsigned char *)cn, -1, -1, 0);
    return scep_own_name(pool, n);
}

static X509 *self_signed(EVP_PKEY *key, const char *cn, int ku)
{
    X509 *x = X509_new();
    X509_NAME *name = cn_name(cn);
    BIGNUM *bn = BN_new();
    int ok;

    ok = x && bn && X509_set_version(x, X509_VERSION_3)
         && BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY)
         && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))
         && X509_set_subject_name(x, name)
         && X509_set_issuer_name(x, name)
         && X509_gmtime_adj(X509_getm_notBefore(x), -3600)
         && X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400)
         && X509_set_pubkey(x, key);
    if (ok && ku) {
        X509V3_CTX v3;
        X509_EXTENSION *ext;
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage,
                                  "critical,digitalSignature,keyEncipherment");
        ok = ext && X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    ok = ok && X509_sign(x, key, EVP_sha256());
    BN_free(bn);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return scep_own_x509(pool, x);
}

/* A CSR: @a sans DNS names in one subjectAltName, @a exts extra
 * extensions (nsComment, each with its own text), @a extra_conf more
 * subjectAltName text ("IP:10.1.2.3,email:a@b") or NULL, @a ku keyUsage
 * text or NULL, @a utf8_pw: the challenge as UTF8String. */
static X509_REQ *make_csr(EVP_PKEY *key, const char *cn, const char *pw,
                          int utf8_pw, int sans, int exts,
                          const char *extra_conf, const char *ku)
{
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *sk = sk_X509_EXTENSION_new_null();
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int i, ok;

    ok = req && sk && X509_REQ_set_version(req, 0)
         && (cn == NULL || X509_REQ_set_subject_name(req, cn_name(cn)))
         && X509_REQ_set_pubkey(req, key);
    X509V3_set_ctx(&v3, NULL, NULL, req, NULL, 0);
    if (ok && (sans > 0 || extra_conf)) {
        char *conf = apr_pstrdup(pool, extra_conf ? extra_conf : "");
        for (i = 0; i < sans; i++) {
            conf = apr_psprintf(pool, "%s%sDNS:host-%d.example.com", conf,
                                *conf ? "," : "", i);
        }
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, conf);
        ok = ext && sk_X509_EXTENSION_push(sk, ext);
    }
    if (ok && ku) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, ku);
        ok = ext && sk_X509_EXTENSION_push(sk, ext);
    }
    for (i = 0; ok && i < exts; i++) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_netscape_comment,
                                  apr_psprintf(pool, "extension %d", i));
        ok = ext && sk_X509_EXTENSION_push(sk, ext);
    }
    if (ok && sk_X509_EXTENSION_num(sk) > 0) {
        ok = X509_REQ_add_extensions(req, sk);
    }
    if (ok && pw) {
        ok = X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword,
                                       utf8_pw ? MBSTRING_UTF8 : MBSTRING_ASC,
                                       (const unsigned char *)pw, -1);
    }
    ok = ok && X509_REQ_sign(req, key, EVP_sha256()) > 0;
    sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
    if (!ok) {
        X509_REQ_free(req);
        return NULL;
    }
    return scep_own_req(pool, req);
}

static int csr_der(X509_REQ *req, const unsigned char **der, apr_size_t *len)
{
    unsigned char *buf = NULL;
    int n = i2d_X509_REQ(req, &buf);

    if (n <= 0) {
        return 1;
    }
    *der = apr_pmemdup(pool, buf, (apr_size_t)n);
    *len = (apr_size_t)n;
    OPENSSL_free(buf);
    return 0;
}

static int add_attr(CMS_SignerInfo *si, scep_oid_e which, int type,
                    const void *bytes, int len)
{
    return CMS_signed_add1_attr_by_OBJ(si, scep_oid(which), type, bytes, len);
}

/* A pkiMessage as @a c says; 0 on success. */
static int craft_msg(const craft_t *c, const unsigned char **out,
                     apr_size_t *outlen)
{
    BIO *content = NULL, *envbio = NULL;
    CMS_ContentInfo *env = NULL, *cms = NULL;
    CMS_SignerInfo *si;
    unsigned char *envder = NULL, *der = NULL, nonce[64];
    int envlen, n, i, rc = 1;

    content = BIO_new_mem_buf(c->content ? (const void *)c->content : "",
                              (int)c->content_len);
    env = CMS_encrypt(c->to, content, c->cipher, CMS_BINARY);
    if (env == NULL || (envlen = i2d_CMS_ContentInfo(env, &envder)) <= 0) {
        fail("CMS_encrypt");
        goto leave;
    }
    envbio = BIO_new_mem_buf(envder, envlen);
    cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL | CMS_BINARY);
    si = cms ? CMS_add1_signer(cms, c->signer, c->signer_key, c->md,
                               CMS_BINARY | CMS_NOSMIMECAP) : NULL;
    if (si == NULL) {
        fail("CMS_add1_signer");
        goto leave;
    }
    for (i = 0; c->types && i < c->types->nelts; i++) {
        const char *t = APR_ARRAY_IDX(c->types, i, const char *);
        if (!add_attr(si, SCEP_OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING, t,
                      (int)strlen(t))) {
            fail("messageType");
            goto leave;
        }
    }
    if (c->tid && !add_attr(si, SCEP_OID_TRANSACTION_ID,
                            V_ASN1_PRINTABLESTRING, c->tid,
                            (int)strlen(c->tid))) {
        fail("transactionID");
        goto leave;
    }
    for (i = 0; c->nonce_len > 0 && i < (c->dup_nonce ? 2 : 1); i++) {
        if (c->nonce_len > (int)sizeof(nonce) || scep_nonce(nonce)
            || scep_nonce(nonce + 16) || scep_nonce(nonce + 32)
            || scep_nonce(nonce + 48)
            || !add_attr(si, SCEP_OID_SENDER_NONCE, V_ASN1_OCTET_STRING,
                         nonce, c->nonce_len)) {
            fail("senderNonce");
            goto leave;
        }
    }
    if (!CMS_final(cms, envbio, NULL, CMS_BINARY)
        || (n = i2d_CMS_ContentInfo(cms, &der)) <= 0) {
        fail("CMS_final");
        goto leave;
    }
    *out = apr_pmemdup(pool, der, (apr_size_t)n);
    *outlen = (apr_size_t)n;
    if (c->corrupt
        && scep_client_corrupt_signature((unsigned char *)*out, *outlen)
           != APR_SUCCESS) {
        fail("corrupt signature");
        goto leave;
    }
    rc = 0;
leave:
    BIO_free(content);
    BIO_free(envbio);
    OPENSSL_free(envder);
    OPENSSL_free(der);
    CMS_ContentInfo_free(env);
    CMS_ContentInfo_free(cms);
    return rc;
}

static const EVP_CIPHER *pick_cipher(const char *n)
{
    if (!strcmp(n, "des"))    return EVP_des_cbc();
    if (!strcmp(n, "des3"))   return EVP_des_ede3_cbc();
    if (!strcmp(n, "aes128")) return EVP_aes_128_cbc();
    if (!strcmp(n, "aes192")) return EVP_aes_192_cbc();
    if (!strcmp(n, "aes256")) return EVP_aes_256_cbc();
    return NULL;
}

static const EVP_MD *pick_md(const char *n)
{
    if (!strcmp(n, "sha1"))   return EVP_sha1();
    if (!strcmp(n, "sha256")) return EVP_sha256();
    if (!strcmp(n, "sha384")) return EVP_sha384();
    if (!strcmp(n, "sha512")) return EVP_sha512();
    return NULL;
}

/* ---- seeds ------------------------------------------------------------ */

static int seed(const char *dir, const char *sub, const char *name,
                const void *data, apr_size_t len)
{
    const char *d = apr_pstrcat(pool, dir, "/", sub, NULL);

    mkdir(dir, 0755);
    mkdir(d, 0755);
    return write_file(apr_pstrcat(pool, d, "/seed-", name, NULL), data, len);
}

static const char *b64(const unsigned char *d, apr_size_t n)
{
    char *out = apr_palloc(pool, 4 * (n / 3 + 1) + 1);

    EVP_EncodeBlock((unsigned char *)out, d, (int)n);
    return out;
}

static int cmd_seeds(const char *dir)
{
    static const char *const ciphers[] = { "des", "des3", "aes128", "aes192",
                                           "aes256" };
    static const char *const digests[] = { "sha1", "sha384", "sha512" };
    static const struct { const char *name, *text; } json[] = {
        { "empty", "{}" },
        { "binding", "{\"cn\": \"device-*.example.com\", \"san\": "
                     "\"*.example.com\", \"profile\": \"Gen\"}" },
        { "scalars", "{\"count\": 3, \"multi\": true, \"x\": null, "
                     "\"f\": -1.5e3, \"no\": false}" },
        { "escapes", "{\"cn\": \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9"
                     "\\u20ac\\u0041\"}" },
        { "surrogate", "{\"cn\": \"\\ud83d\\ude00\"}" },
        { "nested", "{\"a\": {\"b\": 1}}" },
        { "array", "{\"a\": [1, 2]}" },
        { "trailing", "{\"a\": \"b\"} x" },
        { "unterminated", "{\"a\": \"b" },
        { "ws", " \t\r\n{ \"cn\" : \"x\" , \"san\" : \"10.*\" } \n" },
        { "bracketpat", "{\"cn\": \"[a-\", \"san\": \"*[!]*\\\\\"}" },
        { "starpat", "{\"cn\": \"*a*a*a*a*a*a*a*a*a*a*a*a*a*b\"}" },
    };
    BIO *b;
    X509 *ra, *other, *renew_cert;
    EVP_PKEY *rsa = new_rsa(), *ec = new_ec(), *otherkey = new_rsa();
    STACK_OF(X509) *to = sk_X509_new_null(), *to_other = sk_X509_new_null();
    STACK_OF(X509) *chain = sk_X509_new_null();
    const unsigned char *csr, *ias, *iasub, *msg, *p7, *big, *weird;
    apr_size_t csr_len, ias_len, iasub_len, msg_len, p7_len,
               weird_len;
    X509_REQ *req;
    craft_t c;
    unsigned int i, k;
    int rc = 0;
    struct { int type; const unsigned char **content; apr_size_t *len;
             const char *name; } kinds[] = {
        { SCEP_MT_PKCSREQ, &csr, &csr_len, "pkcsreq" },
        { SCEP_MT_RENEWALREQ, &csr, &csr_len, "renewalreq" },
        { SCEP_MT_CERTPOLL, &iasub, &iasub_len, "certpoll" },
        { SCEP_MT_GETCERT, &ias, &ias_len, "getcert" },
        { SCEP_MT_GETCRL, &ias, &ias_len, "getcrl" },
    };

    b = BIO_new_mem_buf(scep_fuzz_ra_cert_pem, -1);
    ra = scep_own_x509(pool, PEM_read_bio_X509(b, NULL, NULL, NULL));
    BIO_free(b);
    other = self_signed(otherkey, "someone else's RA", 1);
    renew_cert = self_signed(ec, "old certificate (EC)", 0);
    if (!ra || !rsa || !ec || !other || !renew_cert) {
        return fail("seed keys");
    }
    sk_X509_push(to, ra);
    sk_X509_push(to_other, other);

    /* csr */
    req = make_csr(rsa, "device-01.example.com", "0123456789ABCDEF", 0, 0, 0,
                   "DNS:device-01.example.com,IP:10.1.2.3", NULL);
    if (req == NULL || csr_der(req, &csr, &csr_len)) {
        return fail("CSR");
    }
    rc |= seed(dir, "csr", "rsa", csr, csr_len);
    {
        static const struct { const char *name, *cn, *pw, *san, *ku;
                              int utf8, sans, exts, ec; } v[] = {
            { "ec", "dev-ec", "pw", NULL, NULL, 1, 0, 0, 1 },
            { "sans-all", "x.example.com", NULL,
              "DNS:x.example.com,IP:10.0.0.1,IP:fe80::1,email:a@example.com,"
              "URI:https://example.com/,RID:1.2.3.4,dirName:dn_sect_none",
              NULL, 0, 0, 0, 1 },
            { "ku-sig", "sig", NULL, NULL, "digitalSignature", 0, 0, 0, 1 },
            { "ku-enc", "enc", NULL, NULL, "keyEncipherment", 0, 0, 0, 1 },
            { "sans-30", "many", NULL, NULL, NULL, 0, 30, 0, 1 },
            { "exts-30", "many", NULL, NULL, NULL, 0, 0, 30, 1 },
            { "nocn", NULL, NULL, "DNS:a.example.com", NULL, 0, 0, 0, 1 },
        };
        for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
            const unsigned char *d;
            apr_size_t l;
            X509_REQ *r = make_csr(v[i].ec ? ec : rsa, v[i].cn, v[i].pw,
                                   v[i].utf8, v[i].sans, v[i].exts,
                                   v[i].san, v[i].ku);
            if (r == NULL) {
                /* dirName needs a config section: drop it */
                ERR_clear_error();
                r = make_csr(ec, v[i].cn, v[i].pw, v[i].utf8, v[i].sans,
                             v[i].exts, "DNS:x.example.com,IP:10.0.0.1,"
                             "IP:fe80::1,email:a@example.com,"
                             "URI:https://example.com/,RID:1.2.3.4", v[i].ku);
            }
            if (r == NULL || csr_der(r, &d, &l)) {
                return fail(v[i].name);
            }
            rc |= seed(dir, "csr", v[i].name, d, l);
        }
    }

    /* message contents */
    if (scep_client_issuer_and_serial(&ias, &ias_len,
                                      X509_get_subject_name(ra),
                                      X509_get0_serialNumber(ra), pool)
        || scep_client_issuer_and_subject(&iasub, &iasub_len,
                                          X509_get_subject_name(ra),
                                          X509_REQ_get_subject_name(req),
                                          pool)) {
        return fail("IssuerAndSerial");
    }

    /* pkiMessage: every type in every cipher (SHA-256) and every other
     * digest (AES-128) */
    for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        for (i = 0; i < 5 + 3; i++) {
            memset(&c, 0, sizeof(c));
            c.types = apr_array_make(pool, 1, sizeof(const char *));
            APR_ARRAY_PUSH(c.types, const char *) = apr_itoa(pool,
                                                             kinds[k].type);
            c.tid = "4E0A7C0FFEE0123456789ABCDEF0123456789ABC";
            c.nonce_len = SCEP_NONCE_LEN;
            c.content = *kinds[k].content;
            c.content_len = *kinds[k].len;
            c.to = to;
            c.signer = kinds[k].type == SCEP_MT_RENEWALREQ ? renew_cert
                       : self_signed(rsa, "device-01.example.com", 0);
            c.signer_key = kinds[k].type == SCEP_MT_RENEWALREQ ? ec : rsa;
            c.cipher = pick_cipher(i < 5 ? ciphers[i] : "aes128");
            c.md = pick_md(i < 5 ? "sha256" : digests[i - 5]);
            if (craft_msg(&c, &msg, &msg_len)) {
                return 1;
            }
            rc |= seed(dir, "pkimessage",
                       apr_psprintf(pool, "%s-%s-%s", kinds[k].name,
                                    i < 5 ? ciphers[i] : "aes128",
                                    i < 5 ? "sha256" : digests[i - 5]),
                       msg, msg_len);
            if (k == 0 && i == 2) {
                rc |= seed(dir, "pkimessage", "truncated", msg, msg_len / 2);
                big = apr_palloc(pool, msg_len + 16);
                memcpy((unsigned char *)big, msg, msg_len);
                memset((unsigned char *)big + msg_len, 0x30, 16);
                rc |= seed(dir, "pkimessage", "trailing-bytes", big,
                           msg_len + 16);
                /* the GET forms of one message */
                const char *t = b64(msg, msg_len);
                char *u = apr_pstrdup(pool, t), *w;
                rc |= seed(dir, "base64", "std", t, strlen(t));
                for (w = u; *w; w++) {
                    *w = *w == '+' ? '-' : *w == '/' ? '_' : *w;
                }
                while (w > u && w[-1] == '=') {
                    *--w = '\0';
                }
                rc |= seed(dir, "base64", "urlsafe-nopad", u, strlen(u));
                u = apr_pstrdup(pool, t);
                for (w = u; *w; w++) {
                    *w = *w == '+' ? ' ' : *w;
                }
                rc |= seed(dir, "base64", "plus-as-space", u, strlen(u));
                u = apr_pstrcat(pool, apr_pstrndup(pool, t, 64), "\r\n",
                                apr_pstrndup(pool, t + 64, 64), "\n\t",
                                t + 128, NULL);
                rc |= seed(dir, "base64", "linebreaks", u, strlen(u));
            }
        }
    }

    /* pkiMessage: broken on purpose */
    {
        static const struct { const char *name; const char *types[3];
                              int no_tid, nonce_len, dup_nonce, corrupt,
                                  other_ra, content; } v[] = {
            { "no-tid", { "19" }, 1, 16, 0, 0, 0, 0 },
            { "no-type", { NULL }, 0, 16, 0, 0, 0, 0 },
            { "type-abc", { "abc" }, 0, 16, 0, 0, 0, 0 },
            { "type-twice", { "19", "21" }, 0, 16, 0, 0, 0, 0 },
            { "type-99", { "99" }, 0, 16, 0, 0, 0, 0 },
            { "type-updatereq", { "18" }, 0, 16, 0, 0, 0, 0 },
            { "no-nonce", { "19" }, 0, 0, 0, 0, 0, 0 },
            { "nonce-15", { "19" }, 0, 15, 0, 0, 0, 0 },
            { "nonce-twice", { "19" }, 0, 16, 1, 0, 0, 0 },
            { "bad-signature", { "19" }, 0, 16, 0, 1, 0, 0 },
            { "other-ra", { "19" }, 0, 16, 0, 0, 1, 0 },
            { "getcert-with-csr", { "21" }, 0, 16, 0, 0, 0, 0 },
            { "pkcsreq-with-ias", { "19" }, 0, 16, 0, 0, 0, 1 },
            { "empty-content", { "19" }, 0, 16, 0, 0, 0, 2 },
        };
        for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
            memset(&c, 0, sizeof(c));
            c.types = apr_array_make(pool, 2, sizeof(const char *));
            for (k = 0; k < 3 && v[i].types[k]; k++) {
                APR_ARRAY_PUSH(c.types, const char *) = v[i].types[k];
            }
            c.tid = v[i].no_tid ? NULL : "BROKEN-SEED";
            c.nonce_len = v[i].nonce_len;
            c.dup_nonce = v[i].dup_nonce;
            c.corrupt = v[i].corrupt;
            c.content = v[i].content == 1 ? ias : v[i].content == 2
                        ? (const unsigned char *)"" : csr;
            c.content_len = v[i].content == 1 ? ias_len : v[i].content == 2
                            ? 0 : csr_len;
            c.to = v[i].other_ra ? to_other : to;
            c.signer = self_signed(rsa, "device-01.example.com", 0);
            c.signer_key = rsa;
            c.cipher = EVP_aes_128_cbc();
            c.md = EVP_sha256();
            if (craft_msg(&c, &msg, &msg_len)) {
                return 1;
            }
            rc |= seed(dir, "pkimessage", v[i].name, msg, msg_len);
        }
    }
    /* indefinite and absurd lengths */
    weird = (const unsigned char *)"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d"
                                   "\x01\x07\x02\xa0\x80\x30\x80\x00\x00\x00"
                                   "\x00\x00\x00";
    weird_len = 23;
    rc |= seed(dir, "pkimessage", "indefinite", weird, weird_len);
    rc |= seed(dir, "pkimessage", "absurd-length",
               "\x30\x84\xff\xff\xff\xff\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01"
               "\x07\x02", 17);

    /* p7: degenerate certs-only, 0, 1 and 3 certificates */
    for (i = 0; i < 3; i++) {
        if (i == 1) {
            sk_X509_push(chain, ra);
        }
        if (i == 2) {
            sk_X509_push(chain, other);
            sk_X509_push(chain, renew_cert);
        }
        if (scep_certs_p7_encode(&p7, &p7_len, chain, pool) != APR_SUCCESS) {
            return fail("p7");
        }
        rc |= seed(dir, "p7", apr_psprintf(pool, "certs-%d",
                                           sk_X509_num(chain)), p7, p7_len);
    }

    /* base64: odd ones */
    rc |= seed(dir, "base64", "garbage", "!!!", 3);
    rc |= seed(dir, "base64", "padding-only", "====", 4);
    rc |= seed(dir, "base64", "mid-padding", "QQ==QQ==", 8);
    rc |= seed(dir, "base64", "short", "QQ", 2);

    /* json */
    for (i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
        rc |= seed(dir, "json", json[i].name, json[i].text,
                   strlen(json[i].text));
    }
    sk_X509_free(to);
    sk_X509_free(to_other);
    sk_X509_free(chain);
    return rc;
}

/* ---- main ------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: scep-craft message --ra CERT --out FILE [--type T]... "
            "[--no-type]\n"
            "         [--tid S|--no-tid] [--nonce-len N] [--dup-nonce] "
            "[--content FILE]\n"
            "         [--key FILE] [--signer-key FILE] [--cn NAME] "
            "[--challenge PW]\n"
            "         [--sans N] [--exts N] [--cipher C] [--digest D] "
            "[--corrupt-signature]\n"
            "       scep-craft csr --out FILE [--key FILE] [--cn NAME] "
            "[--challenge PW]\n"
            "         [--sans N] [--exts N]\n"
            "       scep-craft cert --out FILE --key-out FILE [--cn NAME]\n"
            "       scep-craft seeds DIR\n");
}

static int craft_main(int argc, char **argv)
{
    const char *cmd, *out = NULL, *ra = NULL, *content = NULL, *keyf = NULL;
    const char *signer_keyf = NULL, *cn = "scep-craft", *pw = NULL;
    const char *key_out = NULL, *cipher = "aes128", *digest = "sha256";
    int sans = 0, exts = 0, no_type = 0, i;
    craft_t c;
    EVP_PKEY *key, *skey;
    X509_REQ *req;
    STACK_OF(X509) *racerts = NULL;
    const char *why;
    const unsigned char *der;
    apr_size_t len;

    if (argc < 2) {
        usage();
        return EXIT_USAGE;
    }
    cmd = argv[1];
    if (!strcmp(cmd, "seeds")) {
        if (argc != 3) {
            usage();
            return EXIT_USAGE;
        }
        return cmd_seeds(argv[2]);
    }

    memset(&c, 0, sizeof(c));
    c.types = apr_array_make(pool, 2, sizeof(const char *));
    c.tid = "SCEP-CRAFT-0001";
    c.nonce_len = SCEP_NONCE_LEN;
    for (i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && ++i)
        if (ARG("--out"))              out = v;
        else if (ARG("--key-out"))     key_out = v;
        else if (ARG("--ra"))          ra = v;
        else if (ARG("--type"))        APR_ARRAY_PUSH(c.types, const char *) = v;
        else if (!strcmp(a, "--no-type")) no_type = 1;
        else if (ARG("--tid"))         c.tid = v;
        else if (!strcmp(a, "--no-tid")) c.tid = NULL;
        else if (ARG("--nonce-len"))   c.nonce_len = atoi(v);
        else if (!strcmp(a, "--dup-nonce")) c.dup_nonce = 1;
        else if (ARG("--content"))     content = v;
        else if (ARG("--key"))         keyf = v;
        else if (ARG("--signer-key"))  signer_keyf = v;
        else if (ARG("--cn"))          cn = v;
        else if (ARG("--challenge"))   pw = v;
        else if (ARG("--sans"))        sans = atoi(v);
        else if (ARG("--exts"))        exts = atoi(v);
        else if (ARG("--cipher"))      cipher = v;
        else if (ARG("--digest"))      digest = v;
        else if (!strcmp(a, "--corrupt-signature")) c.corrupt = 1;
        else {
            usage();
            return EXIT_USAGE;
        }
#undef ARG
    }
    if (out == NULL) {
        usage();
        return EXIT_USAGE;
    }
    key = keyf ? load_key(keyf) : new_rsa();
    if (key == NULL) {
        return fail("--key");
    }
    if (!strcmp(cmd, "cert")) {
        X509 *x = self_signed(key, cn, 1);
        BIO *b;
        int ok;
        if (x == NULL || key_out == NULL) {
            return x ? (usage(), EXIT_USAGE) : fail("certificate");
        }
        b = BIO_new_file(out, "w");
        ok = b && PEM_write_bio_X509(b, x);
        BIO_free(b);
        b = ok ? BIO_new_file(key_out, "w") : NULL;
        ok = b && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
        BIO_free(b);
        return ok ? 0 : fail(out);
    }
    if (!content || !strcmp(cmd, "csr")) {
        req = make_csr(key, cn, pw, 0, sans, exts, NULL, NULL);
        if (req == NULL || csr_der(req, &der, &len)) {
            return fail("CSR");
        }
        if (!strcmp(cmd, "csr")) {
            return write_file(out, der, len);
        }
        c.content = der;
        c.content_len = len;
    }
    else if (read_file(content, &c.content, &c.content_len)) {
        return 1;
    }
    if (strcmp(cmd, "message") || ra == NULL) {
        usage();
        return EXIT_USAGE;
    }
    if (scep_load_certs(&racerts, ra, &why, pool) != APR_SUCCESS) {
        fprintf(stderr, "scep-craft: --ra %s: %s\n", ra, why);
        return 1;
    }
    c.to = sk_X509_new_null();
    sk_X509_push(c.to, sk_X509_value(racerts, 0));
    if (c.types->nelts == 0 && !no_type) {
        APR_ARRAY_PUSH(c.types, const char *) = "19";
    }
    skey = signer_keyf ? load_key(signer_keyf) : key;
    if (skey == NULL) {
        return fail("--signer-key");
    }
    c.signer = self_signed(skey, cn, 0);
    c.signer_key = skey;
    c.cipher = pick_cipher(cipher);
    c.md = pick_md(digest);
    if (c.signer == NULL || c.cipher == NULL || c.md == NULL) {
        usage();
        return EXIT_USAGE;
    }
    if (craft_msg(&c, &der, &len)) {
        return 1;
    }
    sk_X509_free(c.to);
    return write_file(out, der, len);
}

int main(int argc, char **argv)
{
    OSSL_PROVIDER *deflt, *legacy;
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    deflt = OSSL_PROVIDER_load(NULL, "default");
    legacy = OSSL_PROVIDER_load(NULL, "legacy");
    ERR_clear_error();
    rc = craft_main(argc, argv);
    /* everything freed, so that a sanitized build reports only real leaks */
    apr_pool_destroy(pool);
    apr_terminate();
    if (legacy) {
        OSSL_PROVIDER_unload(legacy);
    }
    if (deflt) {
        OSSL_PROVIDER_unload(deflt);
    }
    return rc;
}
