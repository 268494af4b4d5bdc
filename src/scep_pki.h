/* Licensed under the Apache License, Version 2.0.
 *
 * PKI helpers of the CORE (APR + OpenSSL only): OpenSSL objects owned by
 * pools, loading certificates and keys, checks used at start-up, and the
 * drain of OpenSSL's error queue into one line.
 */
#ifndef SCEP_PKI_H
#define SCEP_PKI_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <openssl/x509.h>
#include <openssl/evp.h>

/* Pool ownership: the object is freed when the pool is cleared. */
X509 *scep_own_x509(apr_pool_t *p, X509 *x);
X509_REQ *scep_own_req(apr_pool_t *p, X509_REQ *x);
EVP_PKEY *scep_own_pkey(apr_pool_t *p, EVP_PKEY *k);
X509_NAME *scep_own_name(apr_pool_t *p, X509_NAME *n);
ASN1_INTEGER *scep_own_int(apr_pool_t *p, ASN1_INTEGER *i);
/** Frees the stack and its certificates. */
STACK_OF(X509) *scep_own_certs(apr_pool_t *p, STACK_OF(X509) *sk);

/** The process is ending: pool cleanups stop freeing OpenSSL objects. */
void scep_pki_process_exiting(void);

/** OpenSSL's error queue as one line (emptied), or "no OpenSSL error". */
const char *scep_ssl_errors(apr_pool_t *p);

/** All certificates of a PEM or DER file, in file order (pool-owned). */
apr_status_t scep_load_certs(STACK_OF(X509) **certs, const char *path,
                             const char **why, apr_pool_t *p);

/**
 * A private key from a PEM/DER file or any OpenSSL 3 store URI
 * ("file:", "pkcs11:"...), pool-owned.
 */
apr_status_t scep_load_key(EVP_PKEY **key, const char *path_or_uri,
                           const char **why, apr_pool_t *p);

/** Does @a key hold the private half of @a cert's public key? */
int scep_key_matches_cert(EVP_PKEY *key, X509 *cert);

/** Has @a cert this keyUsage bit (KU_* of x509v3.h)? No extension: yes. */
int scep_cert_has_ku(X509 *cert, unsigned int ku);

/** Seconds from now until notAfter (negative when expired). */
long long scep_cert_seconds_left(X509 *cert);

/** DER of a certificate, allocated from @a p. */
apr_status_t scep_cert_der(const unsigned char **der, apr_size_t *len,
                           X509 *cert, apr_pool_t *p);

/** MD5 thumbprint as NDES prints it: "XXXXXXXX XXXXXXXX XXXXXXXX XXXXXXXX". */
const char *scep_cert_md5_thumbprint(X509 *cert, apr_pool_t *p);

/** One-line subject, RFC 2253 ("CN=a,O=b"). */
const char *scep_name_str(const X509_NAME *name, apr_pool_t *p);

/** Serial number as uppercase hex. */
const char *scep_serial_str(const ASN1_INTEGER *serial, apr_pool_t *p);

#endif /* SCEP_PKI_H */
