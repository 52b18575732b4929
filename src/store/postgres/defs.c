/* defs.c - the PostgreSQL backend's tenant-owned definitions: workflows (versioned),
 * hooks, limits and secrets.
 *
 * One implementation for the four kinds (store.h: TENANT-OWNED DEFINITIONS), the twin
 * of sqlite/defs.c: each verb runs its kind's statement, picked from a per-kind array
 * of statements right above it. What sets a kind apart is written in its statements,
 * not in the code:
 *   workflows  one row per version; put inserts the next version (versions continue
 *              from the highest ever used), delete marks the live versions deleted;
 *              a row reads with updated_at = created_at (of the version)
 *   hooks      names are global (the events URL carries no API key): put finds (and
 *              locks) a name of any tenant, and get with tenant NULL reads any
 *              tenant's
 *   limits     list with tenant NULL: every tenant's, by tenant then name
 *   secrets    the value in the column of the text
 * The argument rules (which tenant may be NULL, a version only for workflows, a name
 * and a text to put) are checked above every backend, in store.c.
 *
 * Every statement takes $1 tenant and $2 name (a list: the name to start after), so
 * that key_params() serves them all.
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <string.h>

#include "store/postgres/pg_int.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* The columns rules_def_read decodes, per table: name, tenant, text, created_at, updated_at,
 * version, deleted (0 for the tables without versions). */
#define WF_COLS "name, tenant, definition, created_at, created_at, version, deleted"
#define HOOK_COLS "name, tenant, definition, created_at, updated_at, 0, 0"
#define LIMIT_COLS "name, tenant, definition, created_at, updated_at, 0, 0"
#define SECRET_COLS "name, tenant, value, created_at, updated_at, 0, 0"

/* Row `row` of r into d (rules_def_read over the column readers of pg_int.h). */
static void read_def(const PGresult *r, int row, enum store_def_kind kind, struct store_def *d)
{
    const struct pg_row at = {r, row};
    rules_def_read(&pg_cols, &at, kind, d);
}

/* p (empty) with $1 tenant and $2 name. */
static void key_params(struct pg_params *p, const struct store_def_call *x)
{
    pg_param_str(p, x->tenant);
    pg_param_str(p, x->name);
}

/* ---- get ----------------------------------------------------------------------------- */

/* $3 (workflows only) > 0: that version, deleted or not; else the newest live version */
static const char *const sql_get[STORE_DEF__COUNT] = {
    [STORE_DEF_WORKFLOW] = "SELECT " WF_COLS " FROM workflows WHERE tenant = $1 AND name = $2 "
                           "AND (CASE WHEN $3::bigint > 0 THEN version = $3 ELSE deleted = 0 END) "
                           "ORDER BY version DESC LIMIT 1",
    [STORE_DEF_HOOK] = "SELECT " HOOK_COLS " FROM hooks WHERE name = $2 "
                       "AND ($1::text IS NULL OR tenant = $1)",
    [STORE_DEF_LIMIT] = "SELECT " LIMIT_COLS " FROM limits WHERE tenant = $1 AND name = $2",
    [STORE_DEF_SECRET] = "SELECT " SECRET_COLS " FROM secrets WHERE tenant = $1 AND name = $2",
};

/* The get body: 1 found ([out] x->one), 0 not found: x's definition (a workflow: of
 * version x->version). */
static int load(struct conn *c, void *vctx)
{
    struct store_def_call *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    key_params(&p, x);
    if (x->kind == STORE_DEF_WORKFLOW) /* the only kind with versions */
        pg_param_i64(&p, x->version);
    int rc = pg_exec(c, sql_get[x->kind], &p, &r);
    if (rc <= 0)
        return rc;
    read_def(r, 0, x->kind, x->one);
    PQclear(r);
    return 1;
}

int pg_def_get(void *impl, enum store_def_kind kind, const char *tenant, const char *name,
               int64_t version, struct store_def *out)
{
    struct store_def_call x = {
        .kind = kind, .tenant = tenant, .name = name, .version = version, .one = out};
    return pg_run_tx(impl, load, rules_defs_undo, &x);
}

/* ---- put ----------------------------------------------------------------------------- */

/* A row when the name is taken (a workflow's: live), whose column is 1 when another
 * tenant holds it: only a hook's can be, its name being global (locked, so that the
 * owner cannot change before the write). */
static const char *const sql_owner[STORE_DEF__COUNT] = {
    [STORE_DEF_WORKFLOW] = "SELECT 0 FROM workflows WHERE tenant = $1 AND name = $2 "
                           "AND deleted = 0 LIMIT 1",
    [STORE_DEF_HOOK] = "SELECT tenant <> $1 FROM hooks WHERE name = $2 FOR UPDATE",
    [STORE_DEF_LIMIT] = "SELECT 0 FROM limits WHERE tenant = $1 AND name = $2",
    [STORE_DEF_SECRET] = "SELECT 0 FROM secrets WHERE tenant = $1 AND name = $2",
};

/* $3 the text, $4 now; returns the row as stored. A workflow's version is the next
 * after the highest ever used (so a deleted one's are never reused); the others are
 * created or replaced. */
static const char *const sql_put[STORE_DEF__COUNT] = {
    [STORE_DEF_WORKFLOW] = "INSERT INTO workflows(tenant, name, version, definition, created_at) "
                           "SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4 FROM workflows "
                           "WHERE tenant = $1 AND name = $2 RETURNING " WF_COLS,
    [STORE_DEF_HOOK] = "INSERT INTO hooks(name, tenant, definition, created_at, updated_at) "
                       "VALUES($2, $1, $3, $4, $4) ON CONFLICT(name) DO UPDATE SET "
                       "definition = excluded.definition, updated_at = excluded.updated_at "
                       "WHERE hooks.tenant = excluded.tenant RETURNING " HOOK_COLS,
    [STORE_DEF_LIMIT] = "INSERT INTO limits(tenant, name, definition, created_at, updated_at) "
                        "VALUES($1, $2, $3, $4, $4) ON CONFLICT(tenant, name) DO UPDATE SET "
                        "definition = excluded.definition, updated_at = excluded.updated_at "
                        "RETURNING " LIMIT_COLS,
    [STORE_DEF_SECRET] = "INSERT INTO secrets(tenant, name, value, created_at, updated_at) "
                         "VALUES($1, $2, $3, $4, $4) ON CONFLICT(tenant, name) DO UPDATE SET "
                         "value = excluded.value, updated_at = excluded.updated_at "
                         "RETURNING " SECRET_COLS,
};

static int put_body(struct conn *c, void *vctx)
{
    struct store_def_call *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    key_params(&p, x);
    int taken = pg_exec(c, sql_owner[x->kind], &p, &r);
    if (taken < 0)
        return taken;
    int others = taken > 0 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (others)
        return -SLUICE_E_CONFLICT; /* names are global: the events URL has no key */
    pg_param_str(&p, x->text);
    pg_param_i64(&p, c->now);
    int rc = pg_exec(c, sql_put[x->kind], &p, &r);
    /* a workflow put at the same time took this version: the primary key makes it a
     * conflict, retried as a soft error (the retry sees the name live) */
    if (rc == -SLUICE_E_CONFLICT)
        return E_SOFT;
    /* No row: another tenant created the hook name since the owner check (the guard
     * on DO UPDATE keeps its definition): the same conflict as above. */
    if (rc == 0 && x->kind == STORE_DEF_HOOK)
        return -SLUICE_E_CONFLICT;
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    if (x->one)
        read_def(r, 0, x->kind, x->one);
    PQclear(r);
    return taken > 0 ? STORE_PUT_REPLACED : STORE_PUT_CREATED;
}

int pg_def_put(void *impl, enum store_def_kind kind, const char *tenant, const char *name,
               const char *text, struct store_def *out)
{
    struct store_def_call x = {
        .kind = kind, .tenant = tenant, .name = name, .text = text, .one = out};
    return pg_run_tx(impl, put_body, rules_defs_undo, &x);
}

/* ---- list ---------------------------------------------------------------------------- */

/* $3 the most rows, by name. A workflow name's live rows are the versions put since
 * its last delete; the newest row of a name is live exactly when the name is. Limits
 * with tenant NULL: every tenant's, by tenant then name. */
static const char *const sql_list[STORE_DEF__COUNT] = {
    [STORE_DEF_WORKFLOW] = "SELECT " WF_COLS " FROM workflows w "
                           "WHERE tenant = $1 AND name > $2 AND deleted = 0 "
                           "AND version = (SELECT max(version) FROM workflows v "
                           "WHERE v.tenant = w.tenant AND v.name = w.name) "
                           "ORDER BY name LIMIT $3",
    [STORE_DEF_HOOK] = "SELECT " HOOK_COLS " FROM hooks WHERE tenant = $1 AND name > $2 "
                       "ORDER BY name LIMIT $3",
    [STORE_DEF_LIMIT] = "SELECT " LIMIT_COLS " FROM limits "
                        "WHERE ($1::text IS NULL OR tenant = $1 AND name > $2) "
                        "ORDER BY tenant, name LIMIT $3",
    [STORE_DEF_SECRET] = "SELECT " SECRET_COLS " FROM secrets WHERE tenant = $1 AND name > $2 "
                         "ORDER BY name LIMIT $3",
};

static int list_body(struct conn *c, void *vctx)
{
    struct store_def_call *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    key_params(&p, x);
    pg_param_i64(&p, (int64_t)x->limit);
    int rc = pg_exec(c, sql_list[x->kind], &p, &r);
    if (rc < 0)
        return rc;
    x->many = xcalloc(x->limit ? x->limit : 1, sizeof *x->many);
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_def(r, i, x->kind, &x->many[x->n++]);
    PQclear(r);
    return 0;
}

int pg_def_list(void *impl, enum store_def_kind kind, const char *tenant, const char *after_name,
                size_t limit, struct store_def **out, size_t *n)
{
    struct store_def_call x = {
        .kind = kind, .tenant = tenant, .name = after_name ? after_name : "", .limit = limit};
    int rc = pg_run_tx(impl, list_body, rules_defs_undo, &x);
    *out = rc < 0 ? NULL : x.many;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

/* ---- delete -------------------------------------------------------------------------- */

/* A workflow's versions stay (running jobs use them), marked deleted. */
static const char *const sql_delete[STORE_DEF__COUNT] = {
    [STORE_DEF_WORKFLOW] = "UPDATE workflows SET deleted = 1 "
                           "WHERE tenant = $1 AND name = $2 AND deleted = 0",
    [STORE_DEF_HOOK] = "DELETE FROM hooks WHERE tenant = $1 AND name = $2",
    [STORE_DEF_LIMIT] = "DELETE FROM limits WHERE tenant = $1 AND name = $2",
    [STORE_DEF_SECRET] = "DELETE FROM secrets WHERE tenant = $1 AND name = $2",
};

static int delete_body(struct conn *c, void *vctx)
{
    struct store_def_call *x = vctx;
    struct pg_params p = {0};
    key_params(&p, x);
    int rc = pg_exec(c, sql_delete[x->kind], &p, NULL);
    return rc < 0 ? rc : rc > 0;
}

int pg_def_delete(void *impl, enum store_def_kind kind, const char *tenant, const char *name)
{
    struct store_def_call x = {.kind = kind, .tenant = tenant, .name = name};
    return pg_run_tx(impl, delete_body, NULL, &x);
}
