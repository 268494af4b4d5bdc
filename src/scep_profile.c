/* Licensed under the Apache License, Version 2.0.
 *
 * Certificate profiles and the request policy (CORE).
 */
#include <string.h>
#include <stdlib.h>

#include <apr_fnmatch.h>
#include <apr_strings.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "scep_profile.h"
#include "scep_msg.h"

scep_profile_t *scep_profile_make(const char *name, apr_pool_t *p)
{
    scep_profile_t *prof = apr_pcalloc(p, sizeof(*prof));

    prof->name = apr_pstrdup(p, name);
    prof->subject_from_csr = 1;
    prof->san_from_csr = 1;
    prof->max_sans = 20;
    prof->max_exts = 32;
    prof->min_rsa_bits = 2048;
    prof->key_types = SCEP_KEY_RSA | SCEP_KEY_EC256 | SCEP_KEY_EC384;
    prof->allow_renewal = 1;
    return prof;
}

static const struct {
    const char *name;
    unsigned int bit;
} ku_names[] = {
    { "digitalSignature", KU_DIGITAL_SIGNATURE },
    { "nonRepudiation", KU_NON_REPUDIATION },
    { "keyEncipherment", KU_KEY_ENCIPHERMENT },
    { "dataEncipherment", KU_DATA_ENCIPHERMENT },
    { "keyAgreement", KU_KEY_AGREEMENT },
    { NULL, 0 }
};

static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "on") || !strcasecmp(v, "yes") || !strcmp(v, "1")
        || !strcasecmp(v, "true")) {
        *out = 1;
        return 1;
    }
    if (!strcasecmp(v, "off") || !strcasecmp(v, "no") || !strcmp(v, "0")
        || !strcasecmp(v, "false")) {
        *out = 0;
        return 1;
    }
    return 0;
}

static int parse_num(const char *v, int lo, int hi, int *out)
{
    char *end;
    long n = strtol(v, &end, 10);

    if (end == v || *end || n < lo || n > hi) {
        return 0;
    }
    *out = (int)n;
    return 1;
}

/* comma-separated list into an array of strings */
static apr_array_header_t *split(const char *v, apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, 4, sizeof(const char *));
    char *s = apr_pstrdup(p, v), *last = NULL, *tok;

    for (tok = apr_strtok(s, ",", &last); tok;
         tok = apr_strtok(NULL, ",", &last)) {
        APR_ARRAY_PUSH(a, const char *) = tok;
    }
    return a;
}

const char *scep_profile_set(scep_profile_t *prof, const char *kv,
                             apr_pool_t *p)
{
    const char *eq = strchr(kv, '=');
    const char *key, *v;
    apr_array_header_t *list;
    int i, j;

    if (!eq || eq == kv) {
        return apr_psprintf(p, "'%s' is not key=value", kv);
    }
    key = apr_pstrmemdup(p, kv, eq - kv);
    v = eq + 1;

    if (!strcasecmp(key, "validity")) {
        if (!parse_num(v, 1, 36500, &prof->validity_days)) {
            return "validity: days from 1 to 36500";
        }
    }
    else if (!strcasecmp(key, "ku") || !strcasecmp(key, "keyUsage")) {
        list = split(v, p);
        prof->key_usage = 0;
        for (i = 0; i < list->nelts; i++) {
            const char *n = APR_ARRAY_IDX(list, i, const char *);
            unsigned int bit = 0;
            for (j = 0; ku_names[j].name; j++) {
                if (!strcasecmp(n, ku_names[j].name)) {
                    bit = ku_names[j].bit;
                }
            }
            if (!bit) {
                return apr_psprintf(p, "ku: unknown key usage '%s' "
                                    "(digitalSignature, nonRepudiation, "
                                    "keyEncipherment, dataEncipherment, "
                                    "keyAgreement)", n);
            }
            prof->key_usage |= bit;
        }
    }
    else if (!strcasecmp(key, "eku") || !strcasecmp(key, "extendedKeyUsage")) {
        list = split(v, p);
        prof->eku = apr_array_make(p, list->nelts, sizeof(const char *));
        for (i = 0; i < list->nelts; i++) {
            const char *n = APR_ARRAY_IDX(list, i, const char *);
            ASN1_OBJECT *o = OBJ_txt2obj(n, 0);
            char buf[80];
            if (o == NULL) {
                return apr_psprintf(p, "eku: unknown purpose '%s' (a name "
                                    "such as clientAuth, serverAuth, "
                                    "ipsecIKE, or a dotted OID)", n);
            }
            OBJ_obj2txt(buf, sizeof(buf), o, 1);
            ASN1_OBJECT_free(o);
            APR_ARRAY_PUSH(prof->eku, const char *) = apr_pstrdup(p, buf);
        }
    }
    else if (!strcasecmp(key, "subject")) {
        if (!strcasecmp(v, "csr")) {
            prof->subject_from_csr = 1;
        }
        else if (!strcasecmp(v, "cn")) {
            prof->subject_from_csr = 0;
        }
        else {
            return "subject: csr (the CSR's whole subject) or cn (its CN only)";
        }
    }
    else if (!strcasecmp(key, "san")) {
        if (!parse_bool(v, &prof->san_from_csr)) {
            return "san: on or off";
        }
    }
    else if (!strcasecmp(key, "allow-san")) {
        list = split(v, p);
        for (i = 0; i < list->nelts; i++) {
            const char *n = APR_ARRAY_IDX(list, i, const char *);
            if (strncasecmp(n, "dns:", 4) && strncasecmp(n, "ip:", 3)
                && strncasecmp(n, "email:", 6) && strncasecmp(n, "uri:", 4)) {
                return apr_psprintf(p, "allow-san: '%s' must start with "
                                    "dns:, ip:, email: or uri:", n);
            }
        }
        prof->san_patterns = list;
    }
    else if (!strcasecmp(key, "allow-cn")) {
        prof->cn_patterns = split(v, p);
    }
    else if (!strcasecmp(key, "max-san")) {
        if (!parse_num(v, 0, 1000, &prof->max_sans)) {
            return "max-san: a number from 0 to 1000";
        }
    }
    else if (!strcasecmp(key, "max-ext")) {
        if (!parse_num(v, 0, 1000, &prof->max_exts)) {
            return "max-ext: a number from 0 to 1000";
        }
    }
    else if (!strcasecmp(key, "min-rsa")) {
        if (!parse_num(v, 1024, 16384, &prof->min_rsa_bits)) {
            return "min-rsa: bits from 1024 to 16384";
        }
    }
    else if (!strcasecmp(key, "keys")) {
        list = split(v, p);
        prof->key_types = 0;
        for (i = 0; i < list->nelts; i++) {
            const char *n = APR_ARRAY_IDX(list, i, const char *);
            if (!strcasecmp(n, "rsa")) {
                prof->key_types |= SCEP_KEY_RSA;
            }
            else if (!strcasecmp(n, "ec") || !strcasecmp(n, "p256")
                     || !strcasecmp(n, "P-256")) {
                prof->key_types |= SCEP_KEY_EC256
                                   | (!strcasecmp(n, "ec") ? SCEP_KEY_EC384
                                                           : 0);
            }
            else if (!strcasecmp(n, "p384") || !strcasecmp(n, "P-384")) {
                prof->key_types |= SCEP_KEY_EC384;
            }
            else {
                return apr_psprintf(p, "keys: unknown key type '%s' (rsa, "
                                    "ec, p256, p384)", n);
            }
        }
    }
    else if (!strcasecmp(key, "approval")) {
        if (!strcasecmp(v, "manual")) {
            prof->manual_approval = 1;
        }
        else if (!strcasecmp(v, "auto")) {
            prof->manual_approval = 0;
        }
        else {
            return "approval: auto or manual";
        }
    }
    else if (!strcasecmp(key, "renewal")) {
        if (!parse_bool(v, &prof->allow_renewal)) {
            return "renewal: on or off";
        }
    }
    else if (!strcasecmp(key, "renewal-window")) {
        if (!parse_num(v, 0, 36500, &prof->renewal_window_days)) {
            return "renewal-window: days from 0 (any time) to 36500";
        }
    }
    else if (!strcasecmp(key, "revoke-replaced")) {
        if (!parse_bool(v, &prof->revoke_on_renewal)) {
            return "revoke-replaced: on or off";
        }
    }
    else {
        return apr_psprintf(p, "unknown profile setting '%s'", key);
    }
    return NULL;
}

scep_purpose_e scep_profile_purpose(X509_REQ *csr)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    ASN1_BIT_STRING *ku = X509V3_get_d2i(exts, NID_key_usage, NULL, NULL);
    int sig = 0, enc = 0;

    if (ku) {
        sig = ASN1_BIT_STRING_get_bit(ku, 0);  /* digitalSignature */
        enc = ASN1_BIT_STRING_get_bit(ku, 2);  /* keyEncipherment */
    }
    ASN1_BIT_STRING_free(ku);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    if (sig && !enc) {
        return SCEP_PURPOSE_SIGNATURE;
    }
    if (enc && !sig) {
        return SCEP_PURPOSE_ENCRYPTION;
    }
    return SCEP_PURPOSE_GENERAL;
}

static int any_match(const apr_array_header_t *pats, const char *prefix,
                     const char *value)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    int i;

    for (i = 0; i < pats->nelts; i++) {
        const char *pat = APR_ARRAY_IDX(pats, i, const char *);
        if (prefix) {
            if (strncasecmp(pat, prefix, plen)) {
                continue;
            }
            pat += plen;
        }
        if (apr_fnmatch(pat, value, APR_FNM_CASE_BLIND) == APR_SUCCESS) {
            return 1;
        }
    }
    return 0;
}

const char *scep_profile_check(const scep_profile_t *prof, X509_REQ *csr,
                               const char **rule, int *fail_info,
                               apr_pool_t *p)
{
    EVP_PKEY *pk = X509_REQ_get0_pubkey(csr);
    STACK_OF(X509_EXTENSION) *exts = NULL;
    GENERAL_NAMES *names = NULL;
    X509_NAME *subj = X509_REQ_get_subject_name(csr);
    const char *why = NULL;
    int i, kt;

    *fail_info = SCEP_FAIL_BADREQUEST;
    if (pk == NULL) {
        *rule = "key";
        return "the CSR has no public key";
    }
    kt = EVP_PKEY_get_base_id(pk);
    if (kt == EVP_PKEY_RSA) {
        if (!(prof->key_types & SCEP_KEY_RSA)) {
            *rule = "key-type";
            *fail_info = SCEP_FAIL_BADALG;
            return apr_psprintf(p, "profile %s does not allow RSA keys",
                                prof->name);
        }
        if (EVP_PKEY_get_bits(pk) < prof->min_rsa_bits) {
            *rule = "key-size";
            return apr_psprintf(p, "RSA key of %d bits, profile %s needs at "
                                "least %d", EVP_PKEY_get_bits(pk), prof->name,
                                prof->min_rsa_bits);
        }
    }
    else if (kt == EVP_PKEY_EC) {
        char curve[64] = "";
        size_t cl = 0;
        int bit = 0;
        EVP_PKEY_get_utf8_string_param(pk, "group", curve, sizeof(curve),
                                       &cl);
        if (!strcmp(curve, "prime256v1") || !strcmp(curve, "P-256")) {
            bit = SCEP_KEY_EC256;
        }
        else if (!strcmp(curve, "secp384r1") || !strcmp(curve, "P-384")) {
            bit = SCEP_KEY_EC384;
        }
        if (!(prof->key_types & bit)) {
            *rule = "key-type";
            *fail_info = SCEP_FAIL_BADALG;
            return apr_psprintf(p, "profile %s does not allow EC keys on "
                                "curve '%s'", prof->name, curve);
        }
    }
    else {
        *rule = "key-type";
        *fail_info = SCEP_FAIL_BADALG;
        return apr_psprintf(p, "key type %s is not allowed",
                            OBJ_nid2sn(kt));
    }

    if (prof->cn_patterns) {
        int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        unsigned char *utf8 = NULL;
        int n = idx < 0 ? -1 : ASN1_STRING_to_UTF8(&utf8,
                    X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));
        const char *cn = n < 0 ? "" : apr_pstrmemdup(p, (char *)utf8, n);
        OPENSSL_free(utf8);
        if (!any_match(prof->cn_patterns, NULL, cn)) {
            *rule = "cn-pattern";
            return apr_psprintf(p, "CN '%s' is not allowed by profile %s",
                                cn, prof->name);
        }
    }

    exts = X509_REQ_get_extensions(csr);
    if (sk_X509_EXTENSION_num(exts) > prof->max_exts) {
        *rule = "ext-count";
        why = apr_psprintf(p, "%d extensions requested, profile %s allows "
                           "%d", sk_X509_EXTENSION_num(exts), prof->name,
                           prof->max_exts);
        goto leave;
    }
    names = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
    if (names && prof->san_from_csr) {
        if (sk_GENERAL_NAME_num(names) > prof->max_sans) {
            *rule = "san-count";
            why = apr_psprintf(p, "%d subjectAltNames, profile %s allows %d",
                               sk_GENERAL_NAME_num(names), prof->name,
                               prof->max_sans);
            goto leave;
        }
        for (i = 0; prof->san_patterns && i < sk_GENERAL_NAME_num(names);
             i++) {
            GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
            const char *prefix = NULL, *v = NULL;
            switch (gn->type) {
            case GEN_DNS:   prefix = "dns:"; break;
            case GEN_EMAIL: prefix = "email:"; break;
            case GEN_URI:   prefix = "uri:"; break;
            case GEN_IPADD: prefix = "ip:"; break;
            default: break;
            }
            if (prefix && gn->type != GEN_IPADD) {
                v = apr_pstrmemdup(p, (const char *)ASN1_STRING_get0_data(
                                       gn->d.ia5),
                                   ASN1_STRING_length(gn->d.ia5));
            }
            else if (prefix) {
                const unsigned char *b = ASN1_STRING_get0_data(gn->d.ip);
                v = ASN1_STRING_length(gn->d.ip) == 4
                    ? apr_psprintf(p, "%d.%d.%d.%d", b[0], b[1], b[2], b[3])
                    : "(IPv6)";
            }
            if (!prefix || !v || !any_match(prof->san_patterns, prefix, v)) {
                *rule = "san-pattern";
                why = apr_psprintf(p, "subjectAltName %s%s is not allowed by "
                                   "profile %s", prefix ? prefix : "other:",
                                   v ? v : "", prof->name);
                goto leave;
            }
        }
    }
leave:
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return why;
}
