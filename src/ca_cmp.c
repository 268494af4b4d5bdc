/* STUB written by the lead so that the tree links: the helper writing the
 * "cmp" CA provider replaces this whole file. */
#include "ca_local.h"

static const char *stub_create(void **instance, apr_pool_t *p, int argc,
                               const char *const *argv)
{
    return "the cmp CA provider is not built yet";
}

const scep_ca_provider_t scep_ca_cmp_provider = {
    "cmp", stub_create, NULL, NULL, NULL, NULL, NULL, NULL
};
