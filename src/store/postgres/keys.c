/* keys.c - the PostgreSQL backend's API keys, tenant weights, a tenant's load
 * (store_tenant_load) and the settings (store_setting_ensure).
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>

#include "store/postgres/pg_int.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* ---- API keys -------------------------------------------------------------------- */

static int key_create_body(struct conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->key_id);
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->hash);
    pg_param_i64(&p, c->now);
    int rc =
        pg_exec(c, "INSERT INTO api_keys(key_id, tenant, hash, created_at) VALUES($1, $2, $3, $4)",
                &p, NULL);
    return rc < 0 ? rc : 0;
}

int pg_key_create(void *impl, const char *key_id, const char *tenant, const char *hash_hex)
{
    struct rules_keys_ctx x = {.key_id = key_id, .tenant = tenant, .hash = hash_hex};
    return pg_run_tx(impl, key_create_body, NULL, &x);
}

static int key_lookup_body(struct conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, x->hash);
    int rc = pg_exec(c, "SELECT tenant FROM api_keys WHERE hash = $1 AND revoked_at = 0 LIMIT 1",
                     &p, &r);
    if (rc < 0)
        return rc;
    if (rc == 1)
        pg_col_copy(r, 0, 0, x->tenant_out, STORE_NAME_MAX);
    PQclear(r);
    return rc > 0;
}

int pg_key_lookup(void *impl, const char *hash_hex, char tenant[STORE_NAME_MAX])
{
    struct rules_keys_ctx x = {.hash = hash_hex, .tenant_out = tenant};
    return pg_run_tx(impl, key_lookup_body, NULL, &x);
}

static int key_list_body(struct conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    PGresult *r;
    int rc = pg_exec(c, "SELECT key_id, tenant, created_at, revoked_at FROM api_keys ORDER BY seq",
                     NULL, &r);
    if (rc < 0)
        return rc;
    x->list = xcalloc((size_t)rc + 1, sizeof *x->list);
    x->n = (size_t)rc;
    for (int i = 0; i < rc; i++) {
        struct store_key *k = &x->list[i];
        pg_col_copy(r, i, 0, k->key_id, sizeof k->key_id);
        pg_col_copy(r, i, 1, k->tenant, sizeof k->tenant);
        k->created_at = pg_col_i64(r, i, 2);
        k->revoked_at = pg_col_i64(r, i, 3);
    }
    PQclear(r);
    return 0;
}

int pg_key_list(void *impl, struct store_key **out, size_t *n)
{
    struct rules_keys_ctx x = {0};
    int rc = pg_run_tx(impl, key_list_body, rules_keys_undo, &x);
    return rules_key_list_done(&x, rc, out, n);
}

static int key_revoke_body(struct conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->key_id);
    int rc = pg_exec(c, "SELECT 1 FROM api_keys WHERE key_id = $1 FOR UPDATE", &p, NULL);
    if (rc <= 0)
        return rc;
    pg_param_i64(&p, c->now);
    rc = pg_exec(c, "UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at = 0", &p,
                 NULL);
    return rc < 0 ? rc : 1;
}

int pg_key_revoke(void *impl, const char *key_id)
{
    struct rules_keys_ctx x = {.key_id = key_id};
    return pg_run_tx(impl, key_revoke_body, NULL, &x);
}

/* ---- tenants --------------------------------------------------------------------- */

static int tenant_weight_body(struct conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->tenant);
    pg_param_i64(&p, x->weight);
    int rc = pg_exec(c,
                     "INSERT INTO tenants(tenant, weight) VALUES($1, $2) "
                     "ON CONFLICT(tenant) DO UPDATE SET weight = excluded.weight",
                     &p, NULL);
    return rc < 0 ? rc : 0;
}

int pg_tenant_set_weight(void *impl, const char *tenant, int weight)
{
    struct rules_keys_ctx x = {.tenant = tenant, .weight = weight};
    return pg_run_tx(impl, tenant_weight_body, NULL, &x);
}

/* ---- a tenant's load ------------------------------------------------------------ */

static int tenant_load_body(struct conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, x->tenant);
    int rc = pg_exec(c,
                     "SELECT count(*), coalesce(sum(pending), 0) FROM jobs WHERE tenant = $1 "
                     "AND status IN (1, 2, 3)",
                     &p, &r);
    if (rc < 0)
        return rc;
    x->open_jobs = pg_col_i64(r, 0, 0);
    x->pending = pg_col_i64(r, 0, 1);
    PQclear(r);
    return 0;
}

int pg_tenant_load(void *impl, const char *tenant, int64_t *open_jobs, int64_t *pending)
{
    struct rules_keys_ctx x = {.tenant = tenant};
    int rc = pg_run_tx(impl, tenant_load_body, NULL, &x);
    return rules_tenant_load_done(&x, rc, open_jobs, pending);
}

/* ---- settings -------------------------------------------------------------------- */

static int setting_ensure_body(struct conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, x->name);
    pg_param_str(&p, x->value);
    pg_param_i64(&p, c->now);
    int rc = pg_exec(c,
                     "INSERT INTO settings(name, value, created_at) VALUES($1, $2, $3) "
                     "ON CONFLICT DO NOTHING",
                     &p, NULL);
    if (rc < 0)
        return rc;
    struct pg_params q = {0};
    pg_param_str(&q, x->name);
    if ((rc = pg_exec(c, "SELECT value FROM settings WHERE name = $1", &q, &r)) < 0)
        return rc;
    if (rc > 0)
        x->out = pg_col_strdup(r, 0, 0, NULL);
    PQclear(r);
    return x->out ? 1 : -SLUICE_E_INTERNAL;
}

int pg_setting_ensure(void *impl, const char *name, const char *value, char **out)
{
    struct rules_keys_ctx x = {.name = name, .value = value};
    int rc = pg_run_tx(impl, setting_ensure_body, rules_keys_undo, &x);
    return rules_setting_done(&x, rc, out);
}

/* ---- callback settings (store_callback_prefs_get, _format_set, _key_rotate) ----- */

/* The query's one row (if any) into x->prefs: 1 found, 0 not. */
static int cb_prefs_row(struct conn *c, const char *sql, struct pg_params *p,
                        struct rules_keys_ctx *x)
{
    PGresult *r;
    int rc = pg_exec(c, sql, p, &r);
    if (rc < 0)
        return rc;
    if (rc > 0)
        rules_callback_prefs_read(&pg_cols, &(struct pg_row){r, 0}, x->prefs);
    PQclear(r);
    return rc > 0 ? 1 : 0;
}

static int cb_prefs_get_body(struct conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->tenant);
    return cb_prefs_row(c, "SELECT " CALLBACK_PREFS_COLS " FROM callback_prefs WHERE tenant = $1",
                        &p, x);
}

int pg_callback_prefs_get(void *impl, const char *tenant, struct store_callback_prefs *out)
{
    struct rules_keys_ctx x = {.tenant = tenant, .prefs = out};
    return pg_run_tx(impl, cb_prefs_get_body, NULL, &x);
}

static int cb_format_set_body(struct conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->tenant);
    pg_param_i64(&p, x->format);
    pg_param_i64(&p, c->now);
    int rc = pg_exec(c,
                     "INSERT INTO callback_prefs(tenant, format, updated_at) VALUES($1, $2, $3) "
                     "ON CONFLICT(tenant) DO UPDATE SET format = excluded.format, "
                     "updated_at = excluded.updated_at",
                     &p, NULL);
    return rc < 0 ? rc : 0;
}

int pg_callback_format_set(void *impl, const char *tenant, int format)
{
    struct rules_keys_ctx x = {.tenant = tenant, .format = format};
    return pg_run_tx(impl, cb_format_set_body, NULL, &x);
}

/* One statement, so two rotations at once both count (the row lock orders them); every
 * right-hand side reads the row as it was: prev_gen takes the old key_gen. */
static int cb_key_rotate_body(struct conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->tenant);
    pg_param_i64(&p, x->until);
    pg_param_i64(&p, c->now);
    int rc = cb_prefs_row(c,
                          "INSERT INTO callback_prefs AS cp(tenant, key_gen, prev_gen, prev_until, "
                          "updated_at) VALUES($1, 1, 0, $2, $3) ON CONFLICT(tenant) DO UPDATE "
                          "SET prev_gen = cp.key_gen, key_gen = cp.key_gen + 1, "
                          "prev_until = excluded.prev_until, updated_at = excluded.updated_at "
                          "RETURNING " CALLBACK_PREFS_COLS,
                          &p, x);
    return rc < 0 ? rc : (rc == 1 ? 0 : -SLUICE_E_INTERNAL);
}

int pg_callback_key_rotate(void *impl, const char *tenant, int64_t prev_until,
                           struct store_callback_prefs *out)
{
    struct rules_keys_ctx x = {.tenant = tenant, .until = prev_until, .prefs = out};
    return pg_run_tx(impl, cb_key_rotate_body, NULL, &x);
}
