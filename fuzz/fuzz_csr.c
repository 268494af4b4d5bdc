/* Licensed under the Apache License, Version 2.0.
 *
 * libFuzzer target: a CSR as it comes out of a decrypted PKCSReq --
 * d2i_X509_REQ, then what the server does with it: the template purpose
 * (keyUsage), scep_profile_check() against a permissive and a strict
 * profile (SAN patterns and counts, CN patterns, key types), and
 * scep_binding_check() against password bindings (CN, SAN, profile).
 */
#include <openssl/err.h>

#include "fuzz_common.h"
#include "scep_challenge.h"
#include "scep_profile.h"

static scep_profile_t *loose, *strict;
static scep_challenge_binding_t binds[3];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_pool_t *p = scep_fuzz_root();
    static const char *const settings[] = {
        "allow-cn=*.example.com,dev-*", "allow-san=dns:*.example.com,ip:10.*,"
        "email:*@example.com,uri:https://*", "max-san=3", "min-rsa=2048",
        "keys=rsa,p256", "subject=cn", NULL
    };
    int i;

    (void)argc;
    (void)argv;
    loose = scep_profile_make("Loose", p);
    loose->max_sans = 1000;
    strict = scep_profile_make("Strict", p);
    for (i = 0; settings[i]; i++) {
        if (scep_profile_set(strict, settings[i], p) != NULL) {
            return 1;
        }
    }
    binds[0].cn = "device-*";
    binds[1].san = "*.example.com";
    binds[2].cn = "*";
    binds[2].san = "10.*";
    binds[2].profile = "Strict";
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const unsigned char *q;
    X509_REQ *csr;
    const char *rule;
    int fail_info;
    unsigned int i;

    apr_pool_create(&p, scep_fuzz_root());
    q = (const unsigned char *)scep_fuzz_dup(data, size, 0, p);
    csr = d2i_X509_REQ(NULL, &q, (long)size);
    if (csr) {
        (void)X509_REQ_verify(csr, X509_REQ_get0_pubkey(csr));
        (void)scep_profile_purpose(csr);
        (void)scep_profile_check(loose, csr, &rule, &fail_info, p);
        (void)scep_profile_check(strict, csr, &rule, &fail_info, p);
        for (i = 0; i < sizeof(binds) / sizeof(binds[0]); i++) {
            (void)scep_binding_check(&binds[i], csr, "Strict", p);
        }
        X509_REQ_free(csr);
    }
    ERR_clear_error();
    apr_pool_destroy(p);
    return 0;
}
