/* defs.c - the definitions a tenant owns in the embedded backend: workflows
 * (versioned), webhook entry points, processing limits and secrets. */
#include <string.h>

#include "store/sqlite/sqlite_int.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* ---- workflow definitions -------------------------------------------------------- */

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

#define WF_COLS "name, version, definition, created_at, deleted"

static void read_workflow(sqlite3_stmt *s, struct store_workflow *w)
{
    memset(w, 0, sizeof *w);
    sq_col_copy(s, 0, w->name, sizeof w->name);
    w->version = sqlite3_column_int64(s, 1);
    w->definition = sq_col_dup(s, 2, NULL);
    w->created_at = sqlite3_column_int64(s, 3);
    w->deleted = sqlite3_column_int(s, 4);
}

static void defs_undo(void *vctx)
{
    struct defs_ctx *x = vctx;
    if (x->wf)
        store_workflow_release(x->wf);
    if (x->hook)
        store_hook_release(x->hook);
    store_workflows_free(x->wfs, x->n);
    store_hooks_free(x->hooks, x->n);
    x->wfs = NULL;
    x->hooks = NULL;
    if (x->lim)
        store_limit_release(x->lim);
    store_limits_free(x->lims, x->n);
    x->lims = NULL;
    if (x->sec)
        store_secret_release(x->sec);
    store_secrets_free(x->secs, x->n);
    x->secs = NULL;
    x->n = 0;
}

SQ_SQL(sql_wf_next, "SELECT coalesce(max(version), 0) + 1 FROM workflows "
                    "WHERE tenant = ?1 AND name = ?2");
SQ_SQL(sql_wf_insert, "INSERT INTO workflows(tenant, name, version, definition, created_at) "
                      "VALUES(?1, ?2, ?3, ?4, ?5)");

static int workflow_put_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int64_t now = clock_now_ms(), version = 0;
    int rc = sq_q(c, &sql_wf_next, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->name);
    if ((rc = sq_step(s)) < 0)
        return rc;
    version = sqlite3_column_int64(s, 0); /* an aggregate always has a row */
    sqlite3_reset(s);
    if ((rc = sq_q(c, &sql_wf_insert, &s)) < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->name);
    sqlite3_bind_int64(s, 3, version);
    sq_bind_str(s, 4, x->definition);
    sqlite3_bind_int64(s, 5, now);
    if ((rc = sq_step(s)) < 0)
        return rc;
    if (x->wf) {
        memset(x->wf, 0, sizeof *x->wf);
        sq_copy_str(x->wf->name, sizeof x->wf->name, x->name);
        x->wf->version = version;
        x->wf->definition = xstrdup(x->definition);
        x->wf->created_at = now;
    }
    return 0;
}

int sq_workflow_put(void *impl, const char *tenant, const char *name, const char *definition,
                    struct store_workflow *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .wf = out};
    if (!definition)
        return -SLUICE_E_INVALID_PARAMETER;
    return sq_run_tx(impl, TX_WRITE, workflow_put_body, defs_undo, &x);
}

/* ?3 > 0: that version, deleted or not; else the newest live version */
SQ_SQL(sql_wf_get, "SELECT " WF_COLS " FROM workflows WHERE tenant = ?1 AND name = ?2 "
                   "AND (CASE WHEN ?3 > 0 THEN version = ?3 ELSE deleted = 0 END) "
                   "ORDER BY version DESC LIMIT 1");

static int workflow_get_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_wf_get, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->name);
    sqlite3_bind_int64(s, 3, x->version);
    rc = sq_step(s);
    if (rc == 1)
        read_workflow(s, x->wf);
    return rc;
}

int sq_workflow_get(void *impl, const char *tenant, const char *name, int64_t version,
                    struct store_workflow *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .version = version, .wf = out};
    return sq_run_tx(impl, TX_READ, workflow_get_body, defs_undo, &x);
}

/* A name's live rows are the versions put since its last delete; the newest row
 * of a name is live exactly when the name is. */
SQ_SQL(sql_wf_list, "SELECT " WF_COLS " FROM workflows w WHERE tenant = ?1 AND name > ?2 "
                    "AND deleted = 0 AND version = (SELECT max(version) FROM workflows v "
                    "WHERE v.tenant = w.tenant AND v.name = w.name) ORDER BY name LIMIT ?3");

static int workflow_list_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_wf_list, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->after_name ? x->after_name : "");
    sqlite3_bind_int64(s, 3, (sqlite3_int64)x->limit);
    x->wfs = xcalloc(x->limit ? x->limit : 1, sizeof *x->wfs);
    x->n = 0;
    while (x->n < x->limit && (rc = sq_step(s)) == 1)
        read_workflow(s, &x->wfs[x->n++]);
    if (rc < 0) {
        store_workflows_free(x->wfs, x->n);
        x->wfs = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

int sq_workflow_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                     struct store_workflow **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = sq_run_tx(impl, TX_READ, workflow_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.wfs;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

SQ_SQL(sql_wf_delete, "UPDATE workflows SET deleted = 1 "
                      "WHERE tenant = ?1 AND name = ?2 AND deleted = 0");

static int workflow_delete_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_wf_delete, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->name);
    rc = sq_step(s);
    return rc < 0 ? rc : sqlite3_changes(c->db) > 0;
}

int sq_workflow_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return sq_run_tx(impl, TX_WRITE, workflow_delete_body, NULL, &x);
}

/* ---- webhook entry points --------------------------------------------------------- */

#define HOOK_COLS "name, tenant, definition, created_at, updated_at"

static void read_hook(sqlite3_stmt *s, struct store_hook *h)
{
    memset(h, 0, sizeof *h);
    sq_col_copy(s, 0, h->name, sizeof h->name);
    sq_col_copy(s, 1, h->tenant, sizeof h->tenant);
    h->definition = sq_col_dup(s, 2, NULL);
    h->created_at = sqlite3_column_int64(s, 3);
    h->updated_at = sqlite3_column_int64(s, 4);
}

SQ_SQL(sql_hook_get, "SELECT " HOOK_COLS " FROM hooks WHERE name = ?1 "
                     "AND (?2 IS NULL OR tenant = ?2)");

/* 1 found ([out] h), 0 not found: the hook name of tenant (NULL: of any tenant). */
static int hook_load(struct sq_conn *c, const char *tenant, const char *name, struct store_hook *h)
{
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_hook_get, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, name);
    sq_bind_str(s, 2, tenant);
    rc = sq_step(s);
    if (rc == 1)
        read_hook(s, h);
    sqlite3_reset(s);
    return rc;
}

SQ_SQL(sql_hook_owner, "SELECT tenant FROM hooks WHERE name = ?1");
SQ_SQL(sql_hook_put, "INSERT INTO hooks(name, tenant, definition, created_at, updated_at) "
                     "VALUES(?1, ?2, ?3, ?4, ?4) ON CONFLICT(name) DO UPDATE SET "
                     "definition = excluded.definition, updated_at = excluded.updated_at");

static int hook_put_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int replaced = 0;
    int rc = sq_q(c, &sql_hook_owner, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->name);
    rc = sq_step(s);
    if (rc == 1) {
        const char *owner = (const char *)sqlite3_column_text(s, 0);
        if (!owner || strcmp(owner, x->tenant) != 0)
            rc = -SLUICE_E_CONFLICT; /* names are global: the events URL has no key */
        replaced = 1;
    }
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if ((rc = sq_q(c, &sql_hook_put, &s)) < 0)
        return rc;
    sq_bind_str(s, 1, x->name);
    sq_bind_str(s, 2, x->tenant);
    sq_bind_str(s, 3, x->definition);
    sqlite3_bind_int64(s, 4, clock_now_ms());
    if ((rc = sq_step(s)) < 0)
        return rc;
    if (x->hook && (rc = hook_load(c, x->tenant, x->name, x->hook)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return replaced ? 2 : 1;
}

int sq_hook_put(void *impl, const char *tenant, const char *name, const char *definition,
                struct store_hook *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .hook = out};
    if (!tenant || !definition)
        return -SLUICE_E_INVALID_PARAMETER;
    return sq_run_tx(impl, TX_WRITE, hook_put_body, defs_undo, &x);
}

static int hook_get_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return hook_load(c, x->tenant, x->name, x->hook);
}

int sq_hook_get(void *impl, const char *tenant, const char *name, struct store_hook *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .hook = out};
    return sq_run_tx(impl, TX_READ, hook_get_body, defs_undo, &x);
}

SQ_SQL(sql_hook_list, "SELECT " HOOK_COLS " FROM hooks WHERE tenant = ?1 AND name > ?2 "
                      "ORDER BY name LIMIT ?3");

static int hook_list_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_hook_list, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->after_name ? x->after_name : "");
    sqlite3_bind_int64(s, 3, (sqlite3_int64)x->limit);
    x->hooks = xcalloc(x->limit ? x->limit : 1, sizeof *x->hooks);
    x->n = 0;
    while (x->n < x->limit && (rc = sq_step(s)) == 1)
        read_hook(s, &x->hooks[x->n++]);
    if (rc < 0) {
        store_hooks_free(x->hooks, x->n);
        x->hooks = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

int sq_hook_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                 struct store_hook **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = sq_run_tx(impl, TX_READ, hook_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.hooks;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

SQ_SQL(sql_hook_delete, "DELETE FROM hooks WHERE name = ?1 AND tenant = ?2");

static int hook_delete_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_hook_delete, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->name);
    sq_bind_str(s, 2, x->tenant);
    rc = sq_step(s);
    return rc < 0 ? rc : sqlite3_changes(c->db) > 0;
}

int sq_hook_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return sq_run_tx(impl, TX_WRITE, hook_delete_body, NULL, &x);
}

/* ---- processing limits ------------------------------------------------------------ */

#define LIMIT_COLS "name, tenant, definition, created_at, updated_at"

static void read_limit(sqlite3_stmt *s, struct store_limit *l)
{
    memset(l, 0, sizeof *l);
    sq_col_copy(s, 0, l->name, sizeof l->name);
    sq_col_copy(s, 1, l->tenant, sizeof l->tenant);
    l->definition = sq_col_dup(s, 2, NULL);
    l->created_at = sqlite3_column_int64(s, 3);
    l->updated_at = sqlite3_column_int64(s, 4);
}

SQ_SQL(sql_limit_get, "SELECT " LIMIT_COLS " FROM limits WHERE tenant = ?1 AND name = ?2");

/* 1 found ([out] l unless NULL), 0 not found. */
static int limit_load(struct sq_conn *c, const char *tenant, const char *name,
                      struct store_limit *l)
{
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_limit_get, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, tenant);
    sq_bind_str(s, 2, name);
    rc = sq_step(s);
    if (rc == 1 && l)
        read_limit(s, l);
    sqlite3_reset(s);
    return rc;
}

SQ_SQL(sql_limit_put, "INSERT INTO limits(tenant, name, definition, created_at, updated_at) "
                      "VALUES(?1, ?2, ?3, ?4, ?4) ON CONFLICT(tenant, name) DO UPDATE SET "
                      "definition = excluded.definition, updated_at = excluded.updated_at");

static int limit_put_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int existed = limit_load(c, x->tenant, x->name, NULL);
    if (existed < 0)
        return existed;
    int rc = sq_q(c, &sql_limit_put, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->name);
    sq_bind_str(s, 3, x->definition);
    sqlite3_bind_int64(s, 4, clock_now_ms());
    if ((rc = sq_step(s)) < 0)
        return rc;
    if (x->lim && (rc = limit_load(c, x->tenant, x->name, x->lim)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return existed ? 2 : 1;
}

int sq_limit_put(void *impl, const char *tenant, const char *name, const char *definition,
                 struct store_limit *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .lim = out};
    if (!tenant || !name || !definition)
        return -SLUICE_E_INVALID_PARAMETER;
    return sq_run_tx(impl, TX_WRITE, limit_put_body, defs_undo, &x);
}

static int limit_get_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return limit_load(c, x->tenant, x->name, x->lim);
}

int sq_limit_get(void *impl, const char *tenant, const char *name, struct store_limit *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .lim = out};
    return sq_run_tx(impl, TX_READ, limit_get_body, defs_undo, &x);
}

SQ_SQL(sql_limit_list, "SELECT " LIMIT_COLS " FROM limits WHERE tenant = ?1 AND name > ?2 "
                       "ORDER BY name LIMIT ?3");
SQ_SQL(sql_limit_list_all, "SELECT " LIMIT_COLS " FROM limits ORDER BY tenant, name LIMIT ?3");

static int limit_list_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, x->tenant ? &sql_limit_list : &sql_limit_list_all, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->after_name ? x->after_name : "");
    sqlite3_bind_int64(s, 3, (sqlite3_int64)x->limit);
    x->lims = xcalloc(x->limit ? x->limit : 1, sizeof *x->lims);
    x->n = 0;
    while (x->n < x->limit && (rc = sq_step(s)) == 1)
        read_limit(s, &x->lims[x->n++]);
    sqlite3_reset(s);
    if (rc < 0) {
        store_limits_free(x->lims, x->n);
        x->lims = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

int sq_limit_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                  struct store_limit **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = sq_run_tx(impl, TX_READ, limit_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.lims;
    *n = rc < 0 ? 0 : x.n;
    x.lims = NULL;
    return rc;
}

SQ_SQL(sql_limit_delete, "DELETE FROM limits WHERE tenant = ?1 AND name = ?2");

static int limit_delete_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_limit_delete, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->name);
    rc = sq_step(s);
    sqlite3_reset(s);
    return rc < 0 ? rc : sqlite3_changes(c->db) > 0;
}

int sq_limit_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return sq_run_tx(impl, TX_WRITE, limit_delete_body, NULL, &x);
}

/* ---- tenant secrets (the limits' twin: same shape, the value instead of a definition) */

#define SECRET_COLS "name, tenant, value, created_at, updated_at"

static void read_secret(sqlite3_stmt *s, struct store_secret *l)
{
    memset(l, 0, sizeof *l);
    sq_col_copy(s, 0, l->name, sizeof l->name);
    sq_col_copy(s, 1, l->tenant, sizeof l->tenant);
    l->value = sq_col_dup(s, 2, NULL);
    l->created_at = sqlite3_column_int64(s, 3);
    l->updated_at = sqlite3_column_int64(s, 4);
}

SQ_SQL(sql_secret_get, "SELECT " SECRET_COLS " FROM secrets WHERE tenant = ?1 AND name = ?2");

/* 1 found ([out] l unless NULL), 0 not found. */
static int secret_load(struct sq_conn *c, const char *tenant, const char *name,
                       struct store_secret *l)
{
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_secret_get, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, tenant);
    sq_bind_str(s, 2, name);
    rc = sq_step(s);
    if (rc == 1 && l)
        read_secret(s, l);
    sqlite3_reset(s);
    return rc;
}

SQ_SQL(sql_secret_put, "INSERT INTO secrets(tenant, name, value, created_at, updated_at) "
                       "VALUES(?1, ?2, ?3, ?4, ?4) ON CONFLICT(tenant, name) DO UPDATE SET "
                       "value = excluded.value, updated_at = excluded.updated_at");

static int secret_put_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int existed = secret_load(c, x->tenant, x->name, NULL);
    if (existed < 0)
        return existed;
    int rc = sq_q(c, &sql_secret_put, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->name);
    sq_bind_str(s, 3, x->definition);
    sqlite3_bind_int64(s, 4, clock_now_ms());
    if ((rc = sq_step(s)) < 0)
        return rc;
    if (x->sec && (rc = secret_load(c, x->tenant, x->name, x->sec)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return existed ? 2 : 1;
}

int sq_secret_put(void *impl, const char *tenant, const char *name, const char *value,
                  struct store_secret *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = value, .sec = out};
    if (!tenant || !name || !value)
        return -SLUICE_E_INVALID_PARAMETER;
    return sq_run_tx(impl, TX_WRITE, secret_put_body, defs_undo, &x);
}

static int secret_get_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return secret_load(c, x->tenant, x->name, x->sec);
}

int sq_secret_get(void *impl, const char *tenant, const char *name, struct store_secret *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .sec = out};
    return sq_run_tx(impl, TX_READ, secret_get_body, defs_undo, &x);
}

SQ_SQL(sql_secret_list, "SELECT " SECRET_COLS " FROM secrets WHERE tenant = ?1 AND name > ?2 "
                        "ORDER BY name LIMIT ?3");

static int secret_list_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_secret_list, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->after_name ? x->after_name : "");
    sqlite3_bind_int64(s, 3, (sqlite3_int64)x->limit);
    x->secs = xcalloc(x->limit ? x->limit : 1, sizeof *x->secs);
    x->n = 0;
    while (x->n < x->limit && (rc = sq_step(s)) == 1)
        read_secret(s, &x->secs[x->n++]);
    sqlite3_reset(s);
    if (rc < 0) {
        store_secrets_free(x->secs, x->n);
        x->secs = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

int sq_secret_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                   struct store_secret **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    *out = NULL;
    *n = 0;
    if (!tenant)
        return -SLUICE_E_INVALID_PARAMETER;
    int rc = sq_run_tx(impl, TX_READ, secret_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.secs;
    *n = rc < 0 ? 0 : x.n;
    x.secs = NULL;
    return rc;
}

SQ_SQL(sql_secret_delete, "DELETE FROM secrets WHERE tenant = ?1 AND name = ?2");

static int secret_delete_body(struct sq_conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_secret_delete, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->name);
    rc = sq_step(s);
    sqlite3_reset(s);
    return rc < 0 ? rc : sqlite3_changes(c->db) > 0;
}

int sq_secret_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return sq_run_tx(impl, TX_WRITE, secret_delete_body, NULL, &x);
}
