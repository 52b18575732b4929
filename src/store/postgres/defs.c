/* defs.c - the PostgreSQL backend's tenant-owned definitions: workflows (versioned),
 * hooks, limits and secrets.
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <string.h>

#include "store/postgres/pg_int.h"
#include "util/errors.h"
#include "util/xmalloc.h"

#define WF_COLS "name, version, definition, created_at, deleted"
#define HOOK_COLS "name, tenant, definition, created_at, updated_at"
#define LIMIT_COLS "name, tenant, definition, created_at, updated_at"
#define SECRET_COLS "name, tenant, value, created_at, updated_at"

/* ---- workflow definitions, hooks, limits ------------------------------------------ */

struct defs_ctx {
    const char *tenant, *name, *definition, *after_name;
    int64_t version;
    size_t limit;
    struct store_workflow *wf, *wfs;
    struct store_hook *hook, *hooks;
    struct store_limit *lim, *lims;
    struct store_secret *sec, *secs;
    size_t n;
};

static void defs_undo(void *vctx)
{
    struct defs_ctx *x = vctx;
    if (x->wf) {
        store_workflow_release(x->wf);
        memset(x->wf, 0, sizeof *x->wf);
    }
    if (x->hook) {
        store_hook_release(x->hook);
        memset(x->hook, 0, sizeof *x->hook);
    }
    if (x->lim) {
        store_limit_release(x->lim);
        memset(x->lim, 0, sizeof *x->lim);
    }
    if (x->sec) {
        store_secret_release(x->sec);
        memset(x->sec, 0, sizeof *x->sec);
    }
    store_workflows_free(x->wfs, x->n);
    store_hooks_free(x->hooks, x->n);
    store_limits_free(x->lims, x->n);
    store_secrets_free(x->secs, x->n);
    x->secs = NULL;
    x->wfs = NULL;
    x->hooks = NULL;
    x->lims = NULL;
    x->n = 0;
}

static void read_workflow(const PGresult *r, int row, struct store_workflow *w)
{
    memset(w, 0, sizeof *w);
    pg_col_copy(r, row, 0, w->name, sizeof w->name);
    w->version = pg_col_i64(r, row, 1);
    w->definition = pg_col_strdup(r, row, 2, NULL);
    w->created_at = pg_col_i64(r, row, 3);
    w->deleted = (int)pg_col_i64(r, row, 4);
}

static int workflow_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->name);
    pg_param_str(&p, x->definition);
    pg_param_i64(&p, c->now);
    /* versions continue from the highest ever used; the primary key makes a
     * concurrent put of the same name a conflict, retried as a soft error */
    int rc = pg_exec(c,
                     "INSERT INTO workflows(tenant, name, version, definition, created_at) "
                     "SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4 FROM workflows "
                     "WHERE tenant = $1 AND name = $2 RETURNING version",
                     &p, &r);
    if (rc == -SLUICE_E_CONFLICT)
        return E_SOFT;
    if (rc < 0)
        return rc;
    int64_t version = pg_col_i64(r, 0, 0);
    PQclear(r);
    if (x->wf) {
        memset(x->wf, 0, sizeof *x->wf);
        pg_copy_str(x->wf->name, sizeof x->wf->name, x->name);
        x->wf->version = version;
        x->wf->definition = xstrdup(x->definition);
        x->wf->created_at = c->now;
    }
    return 0;
}

int pg_workflow_put(void *impl, const char *tenant, const char *name, const char *definition,
                    struct store_workflow *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .wf = out};
    if (!definition)
        return -SLUICE_E_INVALID_PARAMETER;
    if (out)
        memset(out, 0, sizeof *out);
    return pg_run_tx(impl, workflow_put_body, defs_undo, &x);
}

static int workflow_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->name);
    pg_param_i64(&p, x->version);
    int rc = pg_exec(c,
                     "SELECT " WF_COLS " FROM workflows WHERE tenant = $1 AND name = $2 "
                     "AND (CASE WHEN $3::bigint > 0 THEN version = $3 ELSE deleted = 0 END) "
                     "ORDER BY version DESC LIMIT 1",
                     &p, &r);
    if (rc <= 0)
        return rc;
    read_workflow(r, 0, x->wf);
    PQclear(r);
    return 1;
}

int pg_workflow_get(void *impl, const char *tenant, const char *name, int64_t version,
                    struct store_workflow *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .version = version, .wf = out};
    memset(out, 0, sizeof *out);
    return pg_run_tx(impl, workflow_get_body, defs_undo, &x);
}

static int workflow_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->after_name ? x->after_name : "");
    pg_param_i64(&p, (int64_t)x->limit);
    int rc = pg_exec(c,
                     "SELECT " WF_COLS " FROM workflows w WHERE tenant = $1 AND name > $2 "
                     "AND deleted = 0 AND version = (SELECT max(version) FROM workflows v "
                     "WHERE v.tenant = w.tenant AND v.name = w.name) ORDER BY name LIMIT $3",
                     &p, &r);
    if (rc < 0)
        return rc;
    x->wfs = xcalloc(x->limit ? x->limit : 1, sizeof *x->wfs);
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_workflow(r, i, &x->wfs[x->n++]);
    PQclear(r);
    return 0;
}

int pg_workflow_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                     struct store_workflow **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = pg_run_tx(impl, workflow_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.wfs;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int workflow_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->name);
    int rc = pg_exec(
        c, "UPDATE workflows SET deleted = 1 WHERE tenant = $1 AND name = $2 AND deleted = 0", &p,
        NULL);
    return rc < 0 ? rc : rc > 0;
}

int pg_workflow_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return pg_run_tx(impl, workflow_delete_body, NULL, &x);
}

static void read_hook(const PGresult *r, int row, struct store_hook *h)
{
    memset(h, 0, sizeof *h);
    pg_col_copy(r, row, 0, h->name, sizeof h->name);
    pg_col_copy(r, row, 1, h->tenant, sizeof h->tenant);
    h->definition = pg_col_strdup(r, row, 2, NULL);
    h->created_at = pg_col_i64(r, row, 3);
    h->updated_at = pg_col_i64(r, row, 4);
}

static int hook_load(struct conn *c, const char *tenant, const char *name, struct store_hook *h)
{
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, name);
    pg_param_str(&p, tenant);
    int rc = pg_exec(c,
                     "SELECT " HOOK_COLS " FROM hooks WHERE name = $1 AND ($2::text IS NULL OR "
                     "tenant = $2)",
                     &p, &r);
    if (rc <= 0)
        return rc;
    read_hook(r, 0, h);
    PQclear(r);
    return 1;
}

static int hook_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    int replaced = 0;
    pg_param_str(&p, x->name);
    int rc = pg_exec(c, "SELECT tenant FROM hooks WHERE name = $1 FOR UPDATE", &p, &r);
    if (rc < 0)
        return rc;
    if (rc > 0) {
        if (strcmp(PQgetvalue(r, 0, 0), x->tenant) != 0)
            rc = -SLUICE_E_CONFLICT; /* names are global: the events URL has no key */
        replaced = 1;
    }
    PQclear(r);
    if (rc < 0)
        return rc;
    struct pg_params q = {0};
    pg_param_str(&q, x->name);
    pg_param_str(&q, x->tenant);
    pg_param_str(&q, x->definition);
    pg_param_i64(&q, c->now);
    rc = pg_exec(c,
                 "INSERT INTO hooks(name, tenant, definition, created_at, updated_at) "
                 "VALUES($1, $2, $3, $4, $4) ON CONFLICT(name) DO UPDATE SET "
                 "definition = excluded.definition, updated_at = excluded.updated_at",
                 &q, NULL);
    if (rc < 0)
        return rc;
    if (x->hook && (rc = hook_load(c, x->tenant, x->name, x->hook)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return replaced ? 2 : 1;
}

int pg_hook_put(void *impl, const char *tenant, const char *name, const char *definition,
                struct store_hook *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .hook = out};
    if (!tenant || !definition)
        return -SLUICE_E_INVALID_PARAMETER;
    if (out)
        memset(out, 0, sizeof *out);
    return pg_run_tx(impl, hook_put_body, defs_undo, &x);
}

static int hook_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return hook_load(c, x->tenant, x->name, x->hook);
}

int pg_hook_get(void *impl, const char *tenant, const char *name, struct store_hook *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .hook = out};
    memset(out, 0, sizeof *out);
    return pg_run_tx(impl, hook_get_body, defs_undo, &x);
}

static int hook_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->after_name ? x->after_name : "");
    pg_param_i64(&p, (int64_t)x->limit);
    int rc = pg_exec(c,
                     "SELECT " HOOK_COLS " FROM hooks WHERE tenant = $1 AND name > $2 "
                     "ORDER BY name LIMIT $3",
                     &p, &r);
    if (rc < 0)
        return rc;
    x->hooks = xcalloc(x->limit ? x->limit : 1, sizeof *x->hooks);
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_hook(r, i, &x->hooks[x->n++]);
    PQclear(r);
    return 0;
}

int pg_hook_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                 struct store_hook **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = pg_run_tx(impl, hook_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.hooks;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int hook_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->name);
    pg_param_str(&p, x->tenant);
    int rc = pg_exec(c, "DELETE FROM hooks WHERE name = $1 AND tenant = $2", &p, NULL);
    return rc < 0 ? rc : rc > 0;
}

int pg_hook_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return pg_run_tx(impl, hook_delete_body, NULL, &x);
}

static void read_limit(const PGresult *r, int row, struct store_limit *l)
{
    memset(l, 0, sizeof *l);
    pg_col_copy(r, row, 0, l->name, sizeof l->name);
    pg_col_copy(r, row, 1, l->tenant, sizeof l->tenant);
    l->definition = pg_col_strdup(r, row, 2, NULL);
    l->created_at = pg_col_i64(r, row, 3);
    l->updated_at = pg_col_i64(r, row, 4);
}

static int limit_load(struct conn *c, const char *tenant, const char *name, struct store_limit *l)
{
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, tenant);
    pg_param_str(&p, name);
    int rc =
        pg_exec(c, "SELECT " LIMIT_COLS " FROM limits WHERE tenant = $1 AND name = $2", &p, &r);
    if (rc <= 0)
        return rc;
    if (l)
        read_limit(r, 0, l);
    PQclear(r);
    return 1;
}

static int limit_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    int existed = limit_load(c, x->tenant, x->name, NULL);
    if (existed < 0)
        return existed;
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->name);
    pg_param_str(&p, x->definition);
    pg_param_i64(&p, c->now);
    int rc = pg_exec(c,
                     "INSERT INTO limits(tenant, name, definition, created_at, updated_at) "
                     "VALUES($1, $2, $3, $4, $4) ON CONFLICT(tenant, name) DO UPDATE SET "
                     "definition = excluded.definition, updated_at = excluded.updated_at",
                     &p, NULL);
    if (rc < 0)
        return rc;
    if (x->lim && (rc = limit_load(c, x->tenant, x->name, x->lim)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return existed ? 2 : 1;
}

int pg_limit_put(void *impl, const char *tenant, const char *name, const char *definition,
                 struct store_limit *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .lim = out};
    if (!tenant || !name || !definition)
        return -SLUICE_E_INVALID_PARAMETER;
    if (out)
        memset(out, 0, sizeof *out);
    return pg_run_tx(impl, limit_put_body, defs_undo, &x);
}

static int limit_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return limit_load(c, x->tenant, x->name, x->lim);
}

int pg_limit_get(void *impl, const char *tenant, const char *name, struct store_limit *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .lim = out};
    memset(out, 0, sizeof *out);
    return pg_run_tx(impl, limit_get_body, defs_undo, &x);
}

static int limit_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    int rc;
    if (x->tenant) {
        pg_param_str(&p, x->tenant);
        pg_param_str(&p, x->after_name ? x->after_name : "");
        pg_param_i64(&p, (int64_t)x->limit);
        rc = pg_exec(c,
                     "SELECT " LIMIT_COLS " FROM limits WHERE tenant = $1 AND name > $2 "
                     "ORDER BY name LIMIT $3",
                     &p, &r);
    } else {
        pg_param_i64(&p, (int64_t)x->limit);
        rc = pg_exec(c, "SELECT " LIMIT_COLS " FROM limits ORDER BY tenant, name LIMIT $1", &p, &r);
    }
    if (rc < 0)
        return rc;
    x->lims = xcalloc(x->limit ? x->limit : 1, sizeof *x->lims);
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_limit(r, i, &x->lims[x->n++]);
    PQclear(r);
    return 0;
}

int pg_limit_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                  struct store_limit **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = pg_run_tx(impl, limit_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.lims;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int limit_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->name);
    int rc = pg_exec(c, "DELETE FROM limits WHERE tenant = $1 AND name = $2", &p, NULL);
    return rc < 0 ? rc : rc > 0;
}

int pg_limit_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return pg_run_tx(impl, limit_delete_body, NULL, &x);
}

/* ---- tenant secrets (the limits' twin: same shape, the value instead of a definition) */

static void read_secret(const PGresult *r, int row, struct store_secret *l)
{
    memset(l, 0, sizeof *l);
    pg_col_copy(r, row, 0, l->name, sizeof l->name);
    pg_col_copy(r, row, 1, l->tenant, sizeof l->tenant);
    l->value = pg_col_strdup(r, row, 2, NULL);
    l->created_at = pg_col_i64(r, row, 3);
    l->updated_at = pg_col_i64(r, row, 4);
}

static int secret_load(struct conn *c, const char *tenant, const char *name, struct store_secret *l)
{
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, tenant);
    pg_param_str(&p, name);
    int rc =
        pg_exec(c, "SELECT " SECRET_COLS " FROM secrets WHERE tenant = $1 AND name = $2", &p, &r);
    if (rc <= 0)
        return rc;
    if (l)
        read_secret(r, 0, l);
    PQclear(r);
    return 1;
}

static int secret_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    int existed = secret_load(c, x->tenant, x->name, NULL);
    if (existed < 0)
        return existed;
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->name);
    pg_param_str(&p, x->definition);
    pg_param_i64(&p, c->now);
    int rc = pg_exec(c,
                     "INSERT INTO secrets(tenant, name, value, created_at, updated_at) "
                     "VALUES($1, $2, $3, $4, $4) ON CONFLICT(tenant, name) DO UPDATE SET "
                     "value = excluded.value, updated_at = excluded.updated_at",
                     &p, NULL);
    if (rc < 0)
        return rc;
    if (x->sec && (rc = secret_load(c, x->tenant, x->name, x->sec)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return existed ? 2 : 1;
}

int pg_secret_put(void *impl, const char *tenant, const char *name, const char *value,
                  struct store_secret *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = value, .sec = out};
    if (!tenant || !name || !value)
        return -SLUICE_E_INVALID_PARAMETER;
    if (out)
        memset(out, 0, sizeof *out);
    return pg_run_tx(impl, secret_put_body, defs_undo, &x);
}

static int secret_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return secret_load(c, x->tenant, x->name, x->sec);
}

int pg_secret_get(void *impl, const char *tenant, const char *name, struct store_secret *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .sec = out};
    memset(out, 0, sizeof *out);
    return pg_run_tx(impl, secret_get_body, defs_undo, &x);
}

static int secret_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    int rc;
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->after_name ? x->after_name : "");
    pg_param_i64(&p, (int64_t)x->limit);
    rc = pg_exec(c,
                 "SELECT " SECRET_COLS " FROM secrets WHERE tenant = $1 AND name > $2 "
                 "ORDER BY name LIMIT $3",
                 &p, &r);
    if (rc < 0)
        return rc;
    x->secs = xcalloc(x->limit ? x->limit : 1, sizeof *x->secs);
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_secret(r, i, &x->secs[x->n++]);
    PQclear(r);
    return 0;
}

int pg_secret_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                   struct store_secret **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    *out = NULL;
    *n = 0;
    if (!tenant)
        return -SLUICE_E_INVALID_PARAMETER;
    int rc = pg_run_tx(impl, secret_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.secs;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int secret_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->name);
    int rc = pg_exec(c, "DELETE FROM secrets WHERE tenant = $1 AND name = $2", &p, NULL);
    return rc < 0 ? rc : rc > 0;
}

int pg_secret_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return pg_run_tx(impl, secret_delete_body, NULL, &x);
}
