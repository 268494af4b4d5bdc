/* Licensed under the Apache License, Version 2.0.
 *
 * Built-in challenge providers of the CORE: otp (NDES one-time passwords in
 * the SQL store), static (one shared password), none.
 */
#ifndef SCEP_CHALLENGE_H
#define SCEP_CHALLENGE_H

#include "mod_scep.h"

extern const scep_challenge_provider_t scep_challenge_otp;
extern const scep_challenge_provider_t scep_challenge_static;
extern const scep_challenge_provider_t scep_challenge_none;

/** Keyed hash of a password as stored: hex HMAC-SHA256 of the normalised
 *  password (trimmed; hex digits upper-cased). */
const char *scep_password_hash(const scep_challenge_settings_t *settings,
                               const char *password, apr_pool_t *p);

/** Does the CSR satisfy a binding?  NULL if so, else why not. */
const char *scep_binding_check(const scep_challenge_binding_t *bind,
                               X509_REQ *csr, const char *profile,
                               apr_pool_t *p);

/** The one-time password's row, read before the store lock is taken and
 *  kept in @a p for the otp provider's verify (which reads it itself when
 *  this was not called or failed). */
void scep_otp_prefetch(scep_db_t *db, const scep_challenge_settings_t *st,
                       const char *password, apr_pool_t *p);

/** Would the otp provider's verify accept @a password as read by
 *  scep_otp_prefetch: unused, unexpired, its binding met by @a csr and
 *  @a profile?  1 if so; 0 if not or if nothing was read.  Only a hint:
 *  verify decides, under the store lock. */
int scep_otp_acceptable(const scep_challenge_settings_t *st,
                        const char *password, X509_REQ *csr,
                        const char *profile, apr_pool_t *p);

#endif /* SCEP_CHALLENGE_H */
