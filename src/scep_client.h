/* Licensed under the Apache License, Version 2.0.
 *
 * Client side helpers of the SCEP codec beyond src/scep_msg.h: the things
 * a test client needs to craft requests the server has to refuse, and the
 * small ASN.1 bodies of the non-enrollment message types.  CORE: APR and
 * OpenSSL only.
 *
 * scep_req_encode() and scep_certrep_decode() themselves are declared in
 * scep_msg.h and implemented in scep_client.c.
 */
#ifndef SCEP_CLIENT_H
#define SCEP_CLIENT_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <openssl/x509.h>

#include "scep_msg.h"

/**
 * Flip one bit of the (first) SignerInfo signature of the pkiMessage
 * @a der in place, so that the signature no longer verifies while the
 * message stays well formed.  APR_EINVAL when @a der is no SignedData.
 */
apr_status_t scep_client_corrupt_signature(unsigned char *der, apr_size_t len);

/**
 * DER of IssuerAndSerialNumber (GetCert, GetCRL messageData), allocated
 * from @a p.
 */
apr_status_t scep_client_issuer_and_serial(const unsigned char **der,
                                           apr_size_t *len,
                                           const X509_NAME *issuer,
                                           const ASN1_INTEGER *serial,
                                           apr_pool_t *p);

/**
 * DER of IssuerAndSubject (CertPoll / GetCertInitial messageData),
 * allocated from @a p.
 */
apr_status_t scep_client_issuer_and_subject(const unsigned char **der,
                                            apr_size_t *len,
                                            const X509_NAME *issuer,
                                            const X509_NAME *subject,
                                            apr_pool_t *p);

/**
 * Signature algorithm NID of the first SignerInfo of a CMS SignedData
 * (NID_rsaEncryption for what strongSwan accepts), NID_undef if none.
 * @a digest_nid (may be NULL) receives the SignerInfo digest NID.
 */
int scep_client_signer_sig_nid(const unsigned char *der, apr_size_t len,
                               int *digest_nid);

/** scep_client_req_encode() flag: RSAES-OAEP key transport (SHA-256). */
#define SCEP_CLIENT_OAEP 0x01

/**
 * scep_req_encode() with @a flags (SCEP_CLIENT_*): the same pkiMessage,
 * built differently where a flag says so.
 */
apr_status_t scep_client_req_encode(const unsigned char **der,
                                    apr_size_t *len, const scep_req_t *req,
                                    int flags, const char **why,
                                    apr_pool_t *p);

#endif /* SCEP_CLIENT_H */
