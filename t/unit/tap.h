/* Licensed under the Apache License, Version 2.0.
 *
 * Tiny TAP (Test Anything Protocol) helpers for the C unit tests of the
 * core, run by prove beside the Apache::Test files.
 *
 *     int main(void)
 *     {
 *         scep_tap_init();
 *         scep_tap_run("round trip", test_round_trip);
 *         return scep_tap_done();
 *     }
 *
 * Each test function gets a fresh APR pool, destroyed after it returns.
 * Without scep_tap_plan() the plan is printed at the end.
 */
#ifndef SCEP_TAP_H
#define SCEP_TAP_H

#include <apr_pools.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

typedef void scep_tap_fn(apr_pool_t *p);

/** apr_initialize(), unbuffered stdout. */
void scep_tap_init(void);
/** "1..n" up front (optional). */
void scep_tap_plan(int n);
/** Run @a fn with a fresh pool; prints "# name" first. */
void scep_tap_run(const char *name, scep_tap_fn *fn);
/** Prints the plan if not given yet, apr_terminate(); exit status. */
int scep_tap_done(void);
/** The whole file cannot run ("1..0 # SKIP why"); returns 0 for main. */
int scep_tap_skip_all(const char *why);

int scep_tap_ok(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int scep_tap_is_int(long long got, long long want, const char *file, int line,
                    const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int scep_tap_is_str(const char *got, const char *want, const char *file,
                    int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/** "ok n # skip why" for @a count tests. */
void scep_tap_skip(int count, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** "# ..." on stdout. */
void scep_tap_diag(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* ---- an in-memory test PKI (objects owned by the pool given) ---- */

/** Fresh RSA key of @a bits. */
EVP_PKEY *scep_tap_rsa_key(apr_pool_t *p, int bits);
/**
 * Certificate for @a key named CN=@a cn, signed by @a issuer_key (self-signed
 * when @a issuer is NULL), SHA-256, valid @a days from an hour ago, random
 * serial.  @a ku: KU_* bits of x509v3.h for a keyUsage extension, 0 for none;
 * @a ca: basicConstraints CA:TRUE.
 */
X509 *scep_tap_cert(apr_pool_t *p, const char *cn, EVP_PKEY *key,
                    X509 *issuer, EVP_PKEY *issuer_key, int ca,
                    unsigned int ku, int days);
/** CSR CN=@a cn, challengePassword @a challenge (NULL: none), signed. */
X509_REQ *scep_tap_csr(apr_pool_t *p, const char *cn, EVP_PKEY *key,
                       const char *challenge);
/** DER of a CSR, from the pool. */
const unsigned char *scep_tap_csr_der(apr_pool_t *p, X509_REQ *csr,
                                      apr_size_t *len);
/** A stack of the certificates given, NULL-terminated (pool-owned stack,
 *  certificates up-referenced). */
STACK_OF(X509) *scep_tap_certs(apr_pool_t *p, ...);

#define ok(cond, ...) scep_tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) \
    scep_tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, \
                    __VA_ARGS__)
#define is_str(got, want, ...) \
    scep_tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)
#define skip(count, ...) scep_tap_skip((count), __VA_ARGS__)
#define diag(...) scep_tap_diag(__VA_ARGS__)

#endif /* SCEP_TAP_H */
