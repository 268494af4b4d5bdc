/* Licensed under the Apache License, Version 2.0.
 *
 * Built-in CA backend providers.
 */
#ifndef SCEP_CA_LOCAL_H
#define SCEP_CA_LOCAL_H

#include "mod_scep.h"

/** "local": the in-process OpenSSL CA.  Arguments: key file or store URI. */
extern const scep_ca_provider_t scep_ca_local_provider;

/** "command": an external program (src/ca_command.c). */
extern const scep_ca_provider_t scep_ca_command_provider;

/** "cmp": an upstream CA over CMP (src/ca_cmp.c). */
extern const scep_ca_provider_t scep_ca_cmp_provider;

/** The CA key of a local provider instance (for "no RA" mode), or NULL. */
EVP_PKEY *scep_ca_local_key(void *instance);

#endif /* SCEP_CA_LOCAL_H */
