/* secrets.h - who may use which secret, and resolving it for a run.
 *
 * DESIGN
 * A secret is a value an http step sends in a header ({{secrets.NAME}}) that nothing
 * sluice writes may show. Two owners:
 *   - a tenant's own secrets, PUT /v1/secrets/{name} (store_def_*, STORE_DEF_SECRET): write-only,
 *     visible to that tenant's runs only;
 *   - the operator's secrets, SLUICE_SECRET_<NAME> environment variables, each usable
 *     only by the tenants SLUICE_SECRET_<NAME>_TENANTS names ("acme,globex"; a name
 *     ending in '*' matches by prefix, "*" alone every tenant). No list: no tenant.
 * {{secrets.NAME}} for tenant T resolves to T's own NAME, else the operator's NAME if T
 * is allowed, else the item fails with SecretNotFound (naming NAME, never a value).
 * Placement (checked when a workflow is compiled: spec/secrets.h): only in http header
 * values and, when the step says "secretBody": true, its body.
 * Every value a run resolved is masked (util/secmask.h) in everything the run writes.
 *
 * The operator's set is built at start-up and then only read (thread-safe). */
#ifndef SLUICE_ENGINE_SECRETS_H
#define SLUICE_ENGINE_SECRETS_H

#include <stddef.h>

#include "spec/secrets.h"
#include "store/store.h"

#define SECRETS_VALUE_MAX 4096

struct secrets;

/* An empty operator set (never NULL); free with secrets_free(). */
struct secrets *secrets_new(void);
void secrets_free(struct secrets *s);
/* Adds the operator's secret name = value (copied), usable by the tenants listed in
 * tenants ("a,b,pre*", "*"; NULL or "": by none). 0, or -SLUICE_E_INVALID_PARAMETER
 * for a bad name or an empty value. */
int secrets_add(struct secrets *s, const char *name, const char *value, const char *tenants);
/* Number of operator secrets; secrets_info() gives the i-th's name and tenant list
 * ("" when none) for the start-up log, never its value. */
size_t secrets_count(const struct secrets *s);
void secrets_info(const struct secrets *s, size_t i, const char **name, const char **tenants);

/* Resolves {{secrets.name}} for tenant: its own secret (from st), else the operator's
 * if tenant may use it. s and st may be NULL (nothing of that kind).
 * Returns 1 and [out] *value (heap; caller wipes and frees), 0 when not visible
 * (*value NULL), or a negative store error. */
int secrets_resolve(const struct secrets *s, struct store *st, const char *tenant, const char *name,
                    char **value);

#endif
