/* Licensed under the Apache License, Version 2.0.
 *
 * libFuzzer target: scep_certs_p7_decode() -- a degenerate certs-only
 * PKCS#7 (GetCACert and CertRep content on the client side; the server
 * decodes the certificates it stored itself), and the one-line names and
 * serials the logs print for each certificate.
 */
#include "fuzz_common.h"
#include "scep_pki.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    scep_fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    STACK_OF(X509) *certs = NULL;
    const unsigned char *der, *out;
    apr_size_t len;
    int i;

    apr_pool_create(&p, scep_fuzz_root());
    der = (const unsigned char *)scep_fuzz_dup(data, size, 0, p);
    if (scep_certs_p7_decode(&certs, der, size, p) == APR_SUCCESS && certs) {
        for (i = 0; i < sk_X509_num(certs); i++) {
            X509 *x = sk_X509_value(certs, i);
            (void)scep_name_str(X509_get_subject_name(x), p);
            (void)scep_name_str(X509_get_issuer_name(x), p);
            (void)scep_serial_str(X509_get0_serialNumber(x), p);
            (void)scep_cert_md5_thumbprint(x, p);
        }
        /* and back: what a CertRep would carry */
        (void)scep_certs_p7_encode(&out, &len, certs, p);
    }
    apr_pool_destroy(p);
    return 0;
}
