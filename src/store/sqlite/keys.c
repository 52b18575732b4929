/* keys.c - API keys, tenants (weights, load) and settings in the embedded backend. */
#include <stdlib.h>

#include "store/sqlite/sqlite_int.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* ---- API keys -------------------------------------------------------------------- */

SQ_SQL(sql_key_insert,
       "INSERT INTO api_keys(key_id, tenant, hash, created_at) VALUES(?1, ?2, ?3, ?4)");

static int key_create_body(struct sq_conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_key_insert, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->key_id);
    sq_bind_str(s, 2, x->tenant);
    sq_bind_str(s, 3, x->hash);
    sqlite3_bind_int64(s, 4, clock_now_ms());
    rc = sq_step(s);
    return rc < 0 ? rc : 0;
}

int sq_key_create(void *impl, const char *key_id, const char *tenant, const char *hash_hex)
{
    struct rules_keys_ctx x = {.key_id = key_id, .tenant = tenant, .hash = hash_hex};
    return sq_run_tx(impl, TX_WRITE, key_create_body, NULL, &x);
}

SQ_SQL(sql_key_lookup, "SELECT tenant FROM api_keys WHERE hash = ?1 AND revoked_at = 0 LIMIT 1");

static int key_lookup_body(struct sq_conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_key_lookup, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->hash);
    rc = sq_step(s);
    if (rc == 1)
        sq_col_copy(s, 0, x->tenant_out, STORE_NAME_MAX);
    return rc;
}

int sq_key_lookup(void *impl, const char *hash_hex, char tenant[STORE_NAME_MAX])
{
    struct rules_keys_ctx x = {.hash = hash_hex, .tenant_out = tenant};
    return sq_run_tx(impl, TX_READ, key_lookup_body, NULL, &x);
}

SQ_SQL(sql_key_list, "SELECT key_id, tenant, created_at, revoked_at FROM api_keys ORDER BY rowid");

static int key_list_body(struct sq_conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    sqlite3_stmt *s;
    size_t cap = 0;
    int rc = sq_q(c, &sql_key_list, &s);
    if (rc < 0)
        return rc;
    x->list = NULL;
    x->n = 0;
    while ((rc = sq_step(s)) == 1) {
        if (x->n == cap) {
            cap = cap ? cap * 2 : 16;
            x->list = xrealloc(x->list, cap * sizeof *x->list);
        }
        struct store_key *k = &x->list[x->n++];
        sq_col_copy(s, 0, k->key_id, sizeof k->key_id);
        sq_col_copy(s, 1, k->tenant, sizeof k->tenant);
        k->created_at = sqlite3_column_int64(s, 2);
        k->revoked_at = sqlite3_column_int64(s, 3);
    }
    if (rc < 0)
        rules_keys_undo(x);
    return rc;
}

int sq_key_list(void *impl, struct store_key **out, size_t *n)
{
    struct rules_keys_ctx x = {0};
    int rc = sq_run_tx(impl, TX_READ, key_list_body, rules_keys_undo, &x);
    return rules_key_list_done(&x, rc, out, n);
}

SQ_SQL(sql_key_exists, "SELECT 1 FROM api_keys WHERE key_id = ?1");
SQ_SQL(sql_key_revoke, "UPDATE api_keys SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at = 0");

static int key_revoke_body(struct sq_conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_key_exists, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->key_id);
    rc = sq_step(s);
    if (rc <= 0)
        return rc;
    if ((rc = sq_q(c, &sql_key_revoke, &s)) < 0)
        return rc;
    sq_bind_str(s, 1, x->key_id);
    sqlite3_bind_int64(s, 2, clock_now_ms());
    rc = sq_step(s);
    return rc < 0 ? rc : 1;
}

int sq_key_revoke(void *impl, const char *key_id)
{
    struct rules_keys_ctx x = {.key_id = key_id};
    return sq_run_tx(impl, TX_WRITE, key_revoke_body, NULL, &x);
}

/* ---- tenants --------------------------------------------------------------------- */

SQ_SQL(sql_tenant_weight, "INSERT INTO tenants(tenant, weight) VALUES(?1, ?2) "
                          "ON CONFLICT(tenant) DO UPDATE SET weight = excluded.weight");

static int tenant_weight_body(struct sq_conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_tenant_weight, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sqlite3_bind_int(s, 2, x->weight);
    rc = sq_step(s);
    return rc < 0 ? rc : 0;
}

int sq_tenant_set_weight(void *impl, const char *tenant, int weight)
{
    struct rules_keys_ctx x = {.tenant = tenant, .weight = weight};
    return sq_run_tx(impl, TX_WRITE, tenant_weight_body, NULL, &x);
}

SQ_SQL(sql_tenant_load, "SELECT count(*), coalesce(sum(pending), 0) FROM jobs "
                        "WHERE tenant = ?1 AND status IN (1, 2, 3)");

static int tenant_load_body(struct sq_conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_tenant_load, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    rc = sq_step(s);
    if (rc == 1) {
        x->open_jobs = sqlite3_column_int64(s, 0);
        x->pending = sqlite3_column_int64(s, 1);
        rc = 0;
    }
    sqlite3_reset(s);
    return rc;
}

int sq_tenant_load(void *impl, const char *tenant, int64_t *open_jobs, int64_t *pending)
{
    struct rules_keys_ctx x = {.tenant = tenant};
    int rc = sq_run_tx(impl, TX_READ, tenant_load_body, NULL, &x);
    return rules_tenant_load_done(&x, rc, open_jobs, pending);
}

/* ---- settings ------------------------------------------------------------------- */

SQ_SQL(sql_setting_add,
       "INSERT OR IGNORE INTO settings(name, value, created_at) VALUES(?1, ?2, ?3)");
SQ_SQL(sql_setting_get, "SELECT value FROM settings WHERE name = ?1");

static int setting_ensure_body(struct sq_conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_setting_add, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->name);
    sq_bind_str(s, 2, x->value);
    sqlite3_bind_int64(s, 3, clock_now_ms());
    if ((rc = sq_step(s)) < 0)
        return rc;
    if ((rc = sq_q(c, &sql_setting_get, &s)) < 0)
        return rc;
    sq_bind_str(s, 1, x->name);
    if ((rc = sq_step(s)) == 1)
        x->out = sq_col_dup(s, 0, NULL);
    sqlite3_reset(s);
    return rc < 0 ? rc : (x->out ? 1 : -SLUICE_E_INTERNAL);
}

int sq_setting_ensure(void *impl, const char *name, const char *value, char **out)
{
    struct rules_keys_ctx x = {.name = name, .value = value};
    int rc = sq_run_tx(impl, TX_WRITE, setting_ensure_body, rules_keys_undo, &x);
    return rules_setting_done(&x, rc, out);
}

/* ---- callback settings (store_callback_prefs_get, _format_set, _key_rotate) ----- */

SQ_SQL(sql_cb_prefs_get, "SELECT " CALLBACK_PREFS_COLS " FROM callback_prefs WHERE tenant = ?1");
SQ_SQL(sql_cb_format_set, "INSERT INTO callback_prefs(tenant, format, updated_at) "
                          "VALUES(?1, ?2, ?3) ON CONFLICT(tenant) DO UPDATE SET "
                          "format = excluded.format, updated_at = excluded.updated_at");
/* Every right-hand side reads the row as it was: prev_gen takes the old key_gen. */
SQ_SQL(sql_cb_key_rotate, "INSERT INTO callback_prefs(tenant, key_gen, prev_gen, prev_until, "
                          "updated_at) VALUES(?1, 1, 0, ?2, ?3) ON CONFLICT(tenant) DO UPDATE "
                          "SET prev_gen = key_gen, key_gen = key_gen + 1, "
                          "prev_until = excluded.prev_until, updated_at = excluded.updated_at");

static int cb_prefs_get_body(struct sq_conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_cb_prefs_get, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    rc = sq_step(s);
    if (rc == 1)
        rules_callback_prefs_read(&sq_cols, s, x->prefs);
    sqlite3_reset(s);
    return rc;
}

int sq_callback_prefs_get(void *impl, const char *tenant, struct store_callback_prefs *out)
{
    struct rules_keys_ctx x = {.tenant = tenant, .prefs = out};
    return sq_run_tx(impl, TX_READ, cb_prefs_get_body, NULL, &x);
}

static int cb_format_set_body(struct sq_conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_cb_format_set, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sqlite3_bind_int(s, 2, x->format);
    sqlite3_bind_int64(s, 3, clock_now_ms());
    rc = sq_step(s);
    return rc < 0 ? rc : 0;
}

int sq_callback_format_set(void *impl, const char *tenant, int format)
{
    struct rules_keys_ctx x = {.tenant = tenant, .format = format};
    return sq_run_tx(impl, TX_WRITE, cb_format_set_body, NULL, &x);
}

static int cb_key_rotate_body(struct sq_conn *c, void *vctx)
{
    struct rules_keys_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_cb_key_rotate, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sqlite3_bind_int64(s, 2, x->until);
    sqlite3_bind_int64(s, 3, clock_now_ms());
    if ((rc = sq_step(s)) < 0)
        return rc;
    rc = cb_prefs_get_body(c, x);
    return rc < 0 ? rc : (rc == 1 ? 0 : -SLUICE_E_INTERNAL);
}

int sq_callback_key_rotate(void *impl, const char *tenant, int64_t prev_until,
                           struct store_callback_prefs *out)
{
    struct rules_keys_ctx x = {.tenant = tenant, .until = prev_until, .prefs = out};
    return sq_run_tx(impl, TX_WRITE, cb_key_rotate_body, NULL, &x);
}
