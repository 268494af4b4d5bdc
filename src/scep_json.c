/* Licensed under the Apache License, Version 2.0.
 *
 * Flat JSON objects (CORE).
 */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "scep_json.h"

typedef struct {
    const char *s;
    const char *end;
    apr_pool_t *p;
    const char *why;
} jp_t;

static void skip_ws(jp_t *j)
{
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n'
                             || *j->s == '\r')) {
        j->s++;
    }
}

static int hexval(char c)
{
    return apr_isdigit(c) ? c - '0' : (apr_tolower(c) - 'a' + 10);
}

/* A string at j->s (after the opening quote is checked), UTF-8 out. */
static const char *parse_string(jp_t *j)
{
    char *out = apr_palloc(j->p, (apr_size_t)(j->end - j->s) * 2 + 1);
    apr_size_t n = 0;

    if (j->s >= j->end || *j->s != '"') {
        j->why = "expected a string";
        return NULL;
    }
    j->s++;
    while (j->s < j->end && *j->s != '"') {
        unsigned char c = (unsigned char)*j->s++;
        if (c < 0x20) {
            j->why = "control character in a string";
            return NULL;
        }
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (j->s >= j->end) {
            break;
        }
        c = (unsigned char)*j->s++;
        switch (c) {
        case '"': case '\\': case '/': out[n++] = (char)c; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned int cp = 0;
            int i;
            if (j->end - j->s < 4) {
                j->why = "short \\u escape";
                return NULL;
            }
            for (i = 0; i < 4; i++) {
                if (!apr_isxdigit(j->s[i])) {
                    j->why = "bad \\u escape";
                    return NULL;
                }
                cp = cp * 16 + (unsigned int)hexval(j->s[i]);
            }
            j->s += 4;
            if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) {
                j->why = "\\u0000 and surrogates are not accepted";
                return NULL;
            }
            if (cp < 0x80) {
                out[n++] = (char)cp;
            }
            else if (cp < 0x800) {
                out[n++] = (char)(0xC0 | (cp >> 6));
                out[n++] = (char)(0x80 | (cp & 0x3F));
            }
            else {
                out[n++] = (char)(0xE0 | (cp >> 12));
                out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[n++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            j->why = "bad escape";
            return NULL;
        }
    }
    if (j->s >= j->end) {
        j->why = "unterminated string";
        return NULL;
    }
    j->s++;
    out[n] = '\0';
    return out;
}

/* A scalar other than a string: number, true, false, null (NULL out,
 * j->why unset). */
static const char *parse_bare(jp_t *j, int *is_null)
{
    const char *start = j->s;

    *is_null = 0;
    while (j->s < j->end && (apr_isalnum(*j->s) || *j->s == '-'
                             || *j->s == '+' || *j->s == '.')) {
        j->s++;
    }
    if (j->s == start) {
        j->why = "expected a value (objects and arrays are not accepted)";
        return NULL;
    }
    if (j->s - start == 4 && !strncmp(start, "null", 4)) {
        *is_null = 1;
        return NULL;
    }
    return apr_pstrmemdup(j->p, start, j->s - start);
}

apr_status_t scep_json_parse_flat(apr_table_t **out, const char *in,
                                  apr_size_t len, const char **why,
                                  apr_pool_t *p)
{
    jp_t j;
    apr_table_t *t = apr_table_make(p, 4);

    j.s = in;
    j.end = in + len;
    j.p = p;
    j.why = NULL;
    skip_ws(&j);
    if (j.s >= j.end || *j.s != '{') {
        *why = "not a JSON object";
        return APR_EINVAL;
    }
    j.s++;
    skip_ws(&j);
    if (j.s < j.end && *j.s == '}') {
        j.s++;
        goto done;
    }
    for (;;) {
        const char *key, *val;
        int is_null = 0;

        skip_ws(&j);
        if ((key = parse_string(&j)) == NULL) {
            break;
        }
        skip_ws(&j);
        if (j.s >= j.end || *j.s != ':') {
            j.why = "expected ':'";
            break;
        }
        j.s++;
        skip_ws(&j);
        val = (j.s < j.end && *j.s == '"') ? parse_string(&j)
                                           : parse_bare(&j, &is_null);
        if (val == NULL && !is_null) {
            break;
        }
        if (val) {
            apr_table_set(t, key, val);
        }
        skip_ws(&j);
        if (j.s < j.end && *j.s == ',') {
            j.s++;
            continue;
        }
        if (j.s < j.end && *j.s == '}') {
            j.s++;
            goto done;
        }
        j.why = "expected ',' or '}'";
        break;
    }
    *why = j.why ? j.why : "bad JSON";
    return APR_EINVAL;
done:
    skip_ws(&j);
    if (j.s != j.end) {
        *why = "trailing data after the JSON object";
        return APR_EINVAL;
    }
    *out = t;
    return APR_SUCCESS;
}

const char *scep_json_str(const char *s, apr_pool_t *p)
{
    apr_size_t n = 2;
    const unsigned char *c;
    char *out, *o;

    if (s == NULL) {
        return "null";
    }
    for (c = (const unsigned char *)s; *c; c++) {
        n += (*c < 0x20 || *c == '"' || *c == '\\') ? 6 : 1;
    }
    out = o = apr_palloc(p, n + 1);
    *o++ = '"';
    for (c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            *o++ = '\\';
            *o++ = (char)*c;
        }
        else if (*c < 0x20) {
            o += apr_snprintf(o, 7, "\\u%04x", *c);
        }
        else {
            *o++ = (char)*c;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}
