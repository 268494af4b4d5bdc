/* Licensed under the Apache License, Version 2.0.
 *
 * Unit tests of scep_base64_decode(): the GET PKIOperation message in both
 * alphabets (standard: certmonger; URL-safe: micromdm), with or without
 * padding, wrapped lines, and what it must refuse.
 */
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "scep_msg.h"
#include "tap.h"

/* Decode @a in and compare with @a want (@a wlen bytes). */
static void decodes_to(const char *in, apr_size_t inlen,
                       const void *want, apr_size_t wlen, const char *what,
                       apr_pool_t *p)
{
    unsigned char *out = NULL;
    apr_size_t outlen = 0;
    apr_status_t rv = scep_base64_decode(&out, &outlen, in, inlen, p);

    if (!is_int(rv, APR_SUCCESS, "%s: decodes", what)) {
        skip(1, "%s: no output", what);
        return;
    }
    ok(outlen == wlen && memcmp(out, want, wlen) == 0,
       "%s: %" APR_SIZE_T_FMT " bytes as expected", what, wlen);
}

static void refused(const char *in, apr_size_t inlen, const char *what,
                    apr_pool_t *p)
{
    unsigned char *out = NULL;
    apr_size_t outlen = 0;

    is_int(scep_base64_decode(&out, &outlen, in, inlen, p), APR_EINVAL,
           "%s: APR_EINVAL", what);
}

#define S(s) (s), (sizeof(s) - 1)

static void test_standard(apr_pool_t *p)
{
    static const unsigned char bin[] = { 0xfb, 0xef, 0xbe, 0xff, 0xff, 0xfe,
                                         0x01 };

    decodes_to(S("QUJD"), "ABC", 3, "QUJD", p);
    decodes_to(S("QUJDRA=="), "ABCD", 4, "padded, 2 pad chars", p);
    decodes_to(S("QUJDREU="), "ABCDE", 5, "padded, 1 pad char", p);
    decodes_to(S("++++///+AQ=="), bin, sizeof(bin), "standard '+' '/'", p);
    /* the length is what counts, not a NUL */
    decodes_to("QUJDRA==trailing", 8, "ABCD", 4, "inlen respected", p);
}

static void test_no_padding(apr_pool_t *p)
{
    decodes_to(S("QUJDRA"), "ABCD", 4, "no padding, 2 missing", p);
    decodes_to(S("QUJDREU"), "ABCDE", 5, "no padding, 1 missing", p);
}

static void test_urlsafe(apr_pool_t *p)
{
    static const unsigned char bin[] = { 0xfb, 0xef, 0xbe, 0xff, 0xff, 0xfe,
                                         0x01 };

    decodes_to(S("----___-AQ=="), bin, sizeof(bin), "URL-safe '-' '_'", p);
    decodes_to(S("----___-AQ"), bin, sizeof(bin), "URL-safe, no padding", p);
}

static void test_whitespace(apr_pool_t *p)
{
    static const unsigned char bin[] = { 0xfb, 0xef, 0xbe, 0xff, 0xff, 0xfe,
                                         0x01 };

    decodes_to(S("QUJD\r\nRA==\r\n"), "ABCD", 4, "CRLF line breaks", p);
    decodes_to(S("\tQUJD\nREU="), "ABCDE", 5, "tab and LF", p);
    decodes_to(S("QUJDRA==\n"), "ABCD", 4, "trailing newline", p);
    /* a '+' turned into ' ' by form decoding of the query is read as '+'
     * (scep_msg.c); CR, LF and TAB are the whitespace that is dropped */
    decodes_to(S("    ///+AQ=="), bin, sizeof(bin),
               "space read as '+' (form-decoded query)", p);
}

static void test_invalid(apr_pool_t *p)
{
    refused(S("QU*D"), "'*'", p);
    refused(S("QUJD!"), "'!'", p);
    refused(S("QUJD%2BRA"), "percent escape left in", p);
    refused(S("QUJD.RA="), "'.'", p);
    refused("QU\0D", 4, "NUL byte", p);
    refused(S("QUJD\xc3\xa9"), "UTF-8 letter", p);
    refused("", 0, "empty", p);
    refused(S("\r\n\t"), "only whitespace", p);
    refused(S("Q"), "a single character", p);
    refused(S("QUJDR"), "5 characters (6 bits left over)", p);
}

static void test_long(apr_pool_t *p)
{
    unsigned char bin[3001];
    char *std, *url, *wrapped, *w;
    int n, i;
    apr_size_t j, k;

    RAND_bytes(bin, sizeof(bin));
    std = apr_palloc(p, 4 * sizeof(bin) / 3 + 8);
    n = EVP_EncodeBlock((unsigned char *)std, bin, (int)sizeof(bin));
    decodes_to(std, (apr_size_t)n, bin, sizeof(bin), "3001 random bytes", p);

    /* the same in the URL-safe alphabet without padding */
    url = apr_pstrmemdup(p, std, (apr_size_t)n);
    for (i = 0; i < n; i++) {
        if (url[i] == '+') {
            url[i] = '-';
        }
        else if (url[i] == '/') {
            url[i] = '_';
        }
    }
    while (n > 0 && url[n - 1] == '=') {
        n--;
    }
    decodes_to(url, (apr_size_t)n, bin, sizeof(bin),
               "3001 random bytes, URL-safe, unpadded", p);

    /* PEM-like lines of 64 */
    j = strlen(std);
    wrapped = w = apr_palloc(p, j + j / 64 * 2 + 4);
    for (k = 0; k < j; k++) {
        *w++ = std[k];
        if (k % 64 == 63) {
            *w++ = '\r';
            *w++ = '\n';
        }
    }
    decodes_to(wrapped, (apr_size_t)(w - wrapped), bin, sizeof(bin),
               "3001 random bytes in lines of 64", p);
}

int main(void)
{
    scep_tap_init();
    scep_tap_run("standard alphabet", test_standard);
    scep_tap_run("no padding", test_no_padding);
    scep_tap_run("URL-safe alphabet", test_urlsafe);
    scep_tap_run("whitespace", test_whitespace);
    scep_tap_run("invalid input", test_invalid);
    scep_tap_run("long input", test_long);
    return scep_tap_done();
}
