/* Licensed under the Apache License, Version 2.0.
 *
 * libFuzzer target: scep_base64_decode() -- the message= parameter of a
 * PKIOperation GET after percent-decoding (both alphabets, padding or not,
 * line breaks, '+' turned into ' ').  Checks the size promise too.
 */
#include <stdlib.h>

#include "fuzz_common.h"

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
    unsigned char *out = NULL;
    apr_size_t outlen = 0;
    const char *in;

    apr_pool_create(&p, scep_fuzz_root());
    in = scep_fuzz_dup(data, size, 0, p);
    if (scep_base64_decode(&out, &outlen, in, size, p) == APR_SUCCESS) {
        /* never more than 3 bytes per 4 characters (plus padding) */
        if (out == NULL || outlen == 0 || outlen > (size + 3) / 4 * 3) {
            abort();
        }
    }
    apr_pool_destroy(p);
    return 0;
}
