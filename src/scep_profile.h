/* Licensed under the Apache License, Version 2.0.
 *
 * Certificate profiles (NDES's certificate templates) and the request
 * policy they carry.  CORE: APR and OpenSSL only.
 */
#ifndef SCEP_PROFILE_H
#define SCEP_PROFILE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <openssl/x509.h>

#include "mod_scep.h"

#define SCEP_KEY_RSA     0x01
#define SCEP_KEY_EC256   0x02
#define SCEP_KEY_EC384   0x04

/** NDES's template purposes, chosen by the CSR's keyUsage. */
typedef enum {
    SCEP_PURPOSE_SIGNATURE = 0,   /* digitalSignature only: SignatureTemplate */
    SCEP_PURPOSE_ENCRYPTION = 1,  /* keyEncipherment only: EncryptionTemplate */
    SCEP_PURPOSE_GENERAL = 2,     /* both or neither: GeneralPurposeTemplate */
    SCEP_PURPOSE_COUNT = 3
} scep_purpose_e;

typedef struct scep_profile_t {
    const char *name;
    int validity_days;          /* 0: the endpoint's SCEPCertificateValidity */
    unsigned int key_usage;     /* KU_* to set; 0: the CSR's (bounded) */
    apr_array_header_t *eku;    /* OIDs (text) to set; NULL: the CSR's
                                 * common ones, else clientAuth */
    int subject_from_csr;       /* 1: the CSR's subject; 0: its CN only */
    int san_from_csr;           /* 1: take the CSR's SANs (checked below) */
    apr_array_header_t *san_patterns; /* "dns:*.example.com", "ip:10.*",
                                       * "email:*@example.com", "uri:..."
                                       * (fnmatch); NULL: any */
    apr_array_header_t *cn_patterns;  /* fnmatch; NULL: any */
    int max_sans;               /* refuse more SANs than this */
    int max_exts;               /* refuse more requested extensions */
    int min_rsa_bits;           /* 2048 by default */
    int key_types;              /* SCEP_KEY_* allowed */
    int manual_approval;        /* 1: requests wait for an administrator */
    int allow_renewal;          /* 1: RenewalReq / signed PKCSReq allowed */
    int renewal_window_days;    /* renew only this close to expiry; 0 any */
    int revoke_on_renewal;      /* revoke the replaced certificate */
} scep_profile_t;

/** A profile with NDES's IPSECIntermediateOffline-like defaults. */
scep_profile_t *scep_profile_make(const char *name, apr_pool_t *p);

/** Apply "key=value" settings; NULL on success, else what is wrong. */
const char *scep_profile_set(scep_profile_t *prof, const char *kv,
                             apr_pool_t *p);

/** Which template purpose a CSR asks for (by its keyUsage). */
scep_purpose_e scep_profile_purpose(X509_REQ *csr);

/**
 * Check a CSR against a profile: key type and size, subject and SAN
 * patterns, SAN count.  Returns NULL when it passes; otherwise the rule that
 * refused in *rule ("key-size", "san-pattern"...), the failInfo to answer
 * in *fail_info and a one-line reason.
 */
const char *scep_profile_check(const scep_profile_t *prof, X509_REQ *csr,
                               const char **rule, int *fail_info,
                               apr_pool_t *p);

#endif /* SCEP_PROFILE_H */
