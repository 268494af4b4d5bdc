/* Licensed under the Apache License, Version 2.0.
 *
 * Private keys held by an OpenSSL ENGINE (CORE: APR + OpenSSL only), for
 * hardware and software tokens that OpenSSL 3.0 reaches only through the
 * PKCS#11 engine (Debian 12 has no PKCS#11 provider).  scep_load_key()
 * calls this for "pkcs11:" and "engine:" URIs.
 */
#ifndef SCEP_ENGINE_H
#define SCEP_ENGINE_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <openssl/evp.h>

/** Environment variable with the PIN when the URI carries none. */
#define SCEP_PKCS11_PIN_ENV     "SCEP_PKCS11_PIN"
/** Environment variable with the PKCS#11 module when the URI names none. */
#define SCEP_PKCS11_MODULE_ENV  "SCEP_PKCS11_MODULE"

/** Is @a uri for the engine loader ("pkcs11:..." or "engine:ID:KEYID")? */
int scep_engine_uri(const char *uri);

/**
 * Load a private key through an ENGINE:
 *
 *  - "pkcs11:<RFC 7512 URI>": the "pkcs11" engine (libengine-pkcs11-openssl).
 *    The PIN comes from the attribute pin-value=, else from pin-source= (a
 *    file, "file:" optional, its first line), else from $SCEP_PKCS11_PIN;
 *    the PKCS#11 module from module-path=, else $SCEP_PKCS11_MODULE, else
 *    the engine's default (p11-kit-proxy, which loads every registered
 *    module).  These attributes may stand in the path (";") or the query
 *    ("?", "&") part; they are taken out before the engine sees the URI.
 *  - "engine:ID:KEYID": the engine ID, key KEYID as that engine reads it;
 *    the PIN, if any, from $SCEP_PKCS11_PIN (given as the "PIN" control
 *    when the engine has one).
 *
 * The key is pool-owned; the ENGINE stays initialised while the key lives
 * (the pool cleanup frees the key, then finishes and frees the ENGINE).
 * @return APR_SUCCESS, else an error with a one-line reason in @a why.
 */
apr_status_t scep_engine_load_key(EVP_PKEY **key, const char *uri,
                                  const char **why, apr_pool_t *p);

#endif /* SCEP_ENGINE_H */
