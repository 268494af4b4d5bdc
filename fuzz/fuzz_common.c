/* Licensed under the Apache License, Version 2.0.
 *
 * Shared set-up of the fuzz targets (see fuzz_common.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include "fuzz_common.h"
#include "fuzz_ra.h"

static apr_pool_t *root;
static scep_ra_t ra;
static OSSL_PROVIDER *prov_default, *prov_legacy;

static void die(const char *what)
{
    fprintf(stderr, "fuzz set-up: %s\n", what);
    ERR_print_errors_fp(stderr);
    abort();
}

void scep_fuzz_setup(void)
{
    BIO *b;

    if (root) {
        return;
    }
    if (apr_initialize() != APR_SUCCESS
        || apr_pool_create(&root, NULL) != APR_SUCCESS) {
        die("apr_initialize");
    }
    /* single DES is in the legacy provider (SCEPLegacyProvider On) */
    if ((prov_default = OSSL_PROVIDER_load(NULL, "default")) == NULL) {
        die("OpenSSL default provider");
    }
    if ((prov_legacy = OSSL_PROVIDER_load(NULL, "legacy")) == NULL) {
        fprintf(stderr, "fuzz set-up: no legacy provider, DES seeds will "
                "not decrypt\n");
        ERR_clear_error();
    }
    b = BIO_new_mem_buf(scep_fuzz_ra_cert_pem, -1);
    ra.cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf(scep_fuzz_ra_key_pem, -1);
    ra.key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (ra.cert == NULL || ra.key == NULL) {
        die("the fixed RA pair of fuzz_ra.h");
    }
}

apr_pool_t *scep_fuzz_root(void)
{
    scep_fuzz_setup();
    return root;
}

const scep_ra_t *scep_fuzz_ra(void)
{
    scep_fuzz_setup();
    return &ra;
}

static apr_status_t free_buf(void *d)
{
    free(d);
    return APR_SUCCESS;
}

char *scep_fuzz_dup(const uint8_t *data, size_t size, int nul, apr_pool_t *p)
{
    /* malloc, not the pool: ASan sees the exact end of a malloc block, an
     * APR pool hands out slices of bigger blocks */
    char *buf = malloc(size + (nul ? 1 : 0) + (size == 0 && !nul ? 1 : 0));

    if (buf == NULL) {
        abort();
    }
    if (size) {
        memcpy(buf, data, size);
    }
    if (nul) {
        buf[size] = '\0';
    }
    apr_pool_cleanup_register(p, buf, free_buf, apr_pool_cleanup_null);
    return buf;
}

void scep_fuzz_teardown(void)
{
    if (root == NULL) {
        return;
    }
    X509_free(ra.cert);
    EVP_PKEY_free(ra.key);
    ra.cert = NULL;
    ra.key = NULL;
    apr_pool_destroy(root);
    root = NULL;
    apr_terminate();
    if (prov_legacy) {
        OSSL_PROVIDER_unload(prov_legacy);
    }
    if (prov_default) {
        OSSL_PROVIDER_unload(prov_default);
    }
    prov_legacy = prov_default = NULL;
    OPENSSL_cleanup();
}
