/* Licensed under the Apache License, Version 2.0.
 *
 * libFuzzer target: scep_json_parse_flat() -- the JSON body of the admin
 * page (a flat object; cn, san and profile become password bindings).  The
 * bindings parsed are then checked against a fixed CSR (their fnmatch
 * patterns are the admin's input), and every value is written back with
 * scep_json_str().
 */
#include <string.h>

#include <apr_tables.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "fuzz_common.h"
#include "scep_challenge.h"
#include "scep_json.h"

static X509_REQ *csr;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    EVP_PKEY *key;
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *ext;

    (void)argc;
    (void)argv;
    scep_fuzz_setup();
    /* one CSR with a CN and SANs of every kind, for the bindings */
    key = EVP_EC_gen("P-256");
    csr = X509_REQ_new();
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(csr), "CN",
                               MBSTRING_ASC,
                               (const unsigned char *)"device-01.example.com",
                               -1, -1, 0);
    X509_REQ_set_pubkey(csr, key);
    ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
                              "DNS:device-01.example.com,IP:10.1.2.3,"
                              "IP:fe80::1,email:a@example.com,"
                              "URI:https://example.com/x");
    sk_X509_EXTENSION_push(exts, ext);
    X509_REQ_add_extensions(csr, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_sign(csr, key, EVP_sha256());
    EVP_PKEY_free(key);
    return 0;
}

static int each_value(void *rec, const char *key, const char *value)
{
    apr_pool_t *p = rec;

    (void)scep_json_str(key, p);
    (void)scep_json_str(value, p);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    apr_table_t *t = NULL;
    const char *in, *why = NULL;
    scep_challenge_binding_t bind;

    apr_pool_create(&p, scep_fuzz_root());
    in = scep_fuzz_dup(data, size, 0, p);
    if (scep_json_parse_flat(&t, in, size, &why, p) == APR_SUCCESS) {
        apr_table_do(each_value, p, t, NULL);
        memset(&bind, 0, sizeof(bind));
        bind.cn = apr_table_get(t, "cn");
        bind.san = apr_table_get(t, "san");
        bind.profile = apr_table_get(t, "profile");
        (void)scep_binding_check(&bind, csr, "Gen", p);
    }
    else if (why == NULL) {
        abort();   /* a refusal always says why */
    }
    apr_pool_destroy(p);
    return 0;
}
