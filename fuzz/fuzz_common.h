/* Licensed under the Apache License, Version 2.0.
 *
 * What every fuzz target shares: APR and OpenSSL set up once, a fresh pool
 * per input, the fixed test RA pair (fuzz_ra.h).  Each target defines
 * LLVMFuzzerInitialize and LLVMFuzzerTestOneInput; built with clang
 * -fsanitize=fuzzer it is a libFuzzer binary, linked with fuzz/replay.c
 * (gcc) it replays a corpus (fuzz/run.sh, t/06-fuzz-replay.t).
 */
#ifndef SCEP_FUZZ_COMMON_H
#define SCEP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <apr_pools.h>
#include <openssl/x509.h>

#include "scep_msg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/** apr_initialize, OpenSSL's default and legacy providers (single DES);
 *  idempotent.  Aborts when something is missing. */
void scep_fuzz_setup(void);

/** Free all of the above (the replay main calls it before exit, so that
 *  LeakSanitizer reports only what the inputs leaked). */
void scep_fuzz_teardown(void);

/** The parent pool; make a subpool per input and destroy it. */
apr_pool_t *scep_fuzz_root(void);

/** The fixed RA pair (certificate and key of fuzz_ra.h). */
const scep_ra_t *scep_fuzz_ra(void);

/** A copy of the input in a buffer of exactly @a size bytes (so that an
 *  over-read is a heap-buffer-overflow), from @a p.  With @a nul, one byte
 *  more holding '\0'. */
char *scep_fuzz_dup(const uint8_t *data, size_t size, int nul, apr_pool_t *p);

#endif /* SCEP_FUZZ_COMMON_H */
