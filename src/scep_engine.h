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
 * @param key     out: the key, owned by the caller (EVP_PKEY_free)
 * @param engine  out: the ENGINE, initialised; give it to
 *                scep_engine_release() after the key is freed
 * @param p       for strings only
 * @return APR_SUCCESS; APR_ENOENT when there is no such engine; else an
 *         error; with a one-line reason in @a why (never the PIN)
 */
apr_status_t scep_engine_load_key(EVP_PKEY **key, void **engine,
                                  const char *uri, const char **why,
                                  apr_pool_t *p);

/**
 * @a uri as it may be shown in a message: a pkcs11: URI with its pin-value
 * masked ("pin-value=***"), anything else as it is.
 */
const char *scep_engine_uri_shown(const char *uri, apr_pool_t *p);

/** Finish and free the ENGINE of scep_engine_load_key(). */
void scep_engine_release(void *engine);

#endif /* SCEP_ENGINE_H */
