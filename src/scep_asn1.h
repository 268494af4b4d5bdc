/* Licensed under the Apache License, Version 2.0.
 *
 * ASN.1 pieces of SCEP shared by the server and client halves of the codec.
 * CORE: OpenSSL and APR only.
 */
#ifndef SCEP_ASN1_H
#define SCEP_ASN1_H

#include <apr_pools.h>
#include <openssl/asn1.h>
#include <openssl/cms.h>
#include <openssl/x509.h>

#include "scep_msg.h"

typedef enum {
    SCEP_OID_MESSAGE_TYPE = 0,
    SCEP_OID_PKI_STATUS,
    SCEP_OID_FAIL_INFO,
    SCEP_OID_SENDER_NONCE,
    SCEP_OID_RECIPIENT_NONCE,
    SCEP_OID_TRANSACTION_ID,
    SCEP_OID_COUNT
} scep_oid_e;

/** The ASN1_OBJECT of a SCEP attribute (process-wide, never freed). */
const ASN1_OBJECT *scep_oid(scep_oid_e which);

/** IssuerAndSubject of GetCertInitial (RFC 8894 3.3.3). */
typedef struct {
    X509_NAME *issuer;
    X509_NAME *subject;
} SCEP_ISSUER_AND_SUBJECT;

DECLARE_ASN1_FUNCTIONS(SCEP_ISSUER_AND_SUBJECT)

/** messageType, transactionID and the nonces of a SignerInfo into @a msg. */
apr_status_t scep_msg_read_attrs(scep_msg_t *msg, CMS_SignerInfo *si,
                                 const char **why, apr_pool_t *p);

/** The SignerInfo's certificate, from the message or @a extra (pool-owned). */
X509 *scep_msg_find_signer(CMS_ContentInfo *cms, CMS_SignerInfo *si,
                           STACK_OF(X509) *extra, apr_pool_t *p);

#endif /* SCEP_ASN1_H */
