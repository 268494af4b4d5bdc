/* Licensed under the Apache License, Version 2.0.
 *
 * libFuzzer target: scep_msg_decode() -- a pkiMessage as a client sends it
 * (PKIOperation POST body, or the base64-decoded GET message), decoded with
 * the fixed RA pair of fuzz_ra.h and every cipher and digest allowed.  When
 * decoding gets far enough to answer, the FAILURE CertRep the glue would
 * send is encoded too (it echoes the client's transactionID and nonce).
 */
#include <string.h>

#include "fuzz_common.h"
#include "scep_profile.h"

static const scep_ra_t *recipients[2];
static scep_decode_ctx_t ctx;
static scep_profile_t *prof;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *why;

    (void)argc;
    (void)argv;
    /* parsed as the server parses (scep_msg.h) */
    (void)scep_msg_parse_init(&why);
    recipients[0] = scep_fuzz_ra();
    recipients[1] = NULL;
    ctx.recipients = recipients;
    ctx.allowed_ciphers = SCEP_CIPHER_DES | SCEP_CIPHER_DES3
                          | SCEP_CIPHER_AES128 | SCEP_CIPHER_AES192
                          | SCEP_CIPHER_AES256;
    ctx.allowed_digests = SCEP_DIGEST_SHA1 | SCEP_DIGEST_SHA256
                          | SCEP_DIGEST_SHA384 | SCEP_DIGEST_SHA512;
    prof = scep_profile_make("fuzz", scep_fuzz_root());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    scep_msg_t *msg = NULL;
    scep_decode_result_t res;
    const unsigned char *der;
    apr_size_t len;
    const char *why, *rule;
    int fail_info;
    apr_status_t rv;

    apr_pool_create(&p, scep_fuzz_root());
    der = (const unsigned char *)scep_fuzz_dup(data, size, 0, p);
    rv = scep_msg_decode(&msg, &res, &ctx, der, size, p);
    if (rv == APR_SUCCESS && msg) {
        scep_certrep_t rep;

        /* what the glue logs and answers */
        (void)scep_msg_type_name(msg->message_type);
        (void)scep_fail_name(res.fail_info);
        if (msg->csr) {
            (void)scep_profile_purpose(msg->csr);
            (void)scep_profile_check(prof, msg->csr, &rule, &fail_info, p);
        }
        memset(&rep, 0, sizeof(rep));
        rep.pki_status = SCEP_STATUS_FAILURE;
        rep.fail_info = res.fail_info == SCEP_FAIL_NONE ? SCEP_FAIL_BADREQUEST
                                                        : res.fail_info;
        rep.transaction_id = msg->transaction_id;
        rep.recipient_nonce = msg->has_sender_nonce ? msg->sender_nonce : NULL;
        rep.signer_cert = scep_fuzz_ra()->cert;
        rep.signer_key = scep_fuzz_ra()->key;
        rep.digest_nid = msg->digest ? msg->digest_nid : NID_sha256;
        (void)scep_certrep_encode(&der, &len, &rep, &why, p);
    }
    apr_pool_destroy(p);
    return 0;
}
