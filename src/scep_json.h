/* Licensed under the Apache License, Version 2.0.
 *
 * Just enough JSON for the admin API (CORE): a flat object of strings,
 * numbers, booleans and nulls in; escaped strings out.
 */
#ifndef SCEP_JSON_H
#define SCEP_JSON_H

#include <apr_pools.h>
#include <apr_tables.h>

/** Parse a flat JSON object into a table (numbers, true/false kept as
 *  text, null left out).  APR_EINVAL with *why on anything else. */
apr_status_t scep_json_parse_flat(apr_table_t **out, const char *in,
                                  apr_size_t len, const char **why,
                                  apr_pool_t *p);

/** A JSON string literal, quotes included. */
const char *scep_json_str(const char *s, apr_pool_t *p);

#endif /* SCEP_JSON_H */
