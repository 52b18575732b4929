/* defs.c - the definitions a tenant owns in the embedded backend: workflows
 * (versioned), webhook entry points, processing limits and secrets.
 *
 * One implementation for the four kinds (store.h: TENANT-OWNED DEFINITIONS): each
 * verb runs its kind's statement, picked from a per-kind array of statements right
 * above it. What sets a kind apart is written in its statements, not in the code:
 *   workflows  one row per version; put inserts the next version (versions continue
 *              from the highest ever used), delete marks the live versions deleted;
 *              a row reads with updated_at = created_at (of the version)
 *   hooks      names are global (the events URL carries no API key): put finds a name
 *              of any tenant, and get with tenant NULL reads any tenant's
 *   limits     list with tenant NULL: every tenant's, by tenant then name
 *   secrets    the value in the column of the text
 * The argument rules (which tenant may be NULL, a version only for workflows, a name
 * and a text to put) are checked above every backend, in store.c.
 *
 * Every statement takes ?1 tenant and ?2 name (a list: the name to start after), so
 * that bind_key() serves them all. */
#include <string.h>

#include "store/sqlite/sqlite_int.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* An element of a per-kind array of statements (SQ_SQL's descriptor). */
/* clang-format off */
#define KIND_SQL(text) {(text), -1}
/* clang-format on */

/* The columns rules_def_read decodes, per table: name, tenant, text, created_at, updated_at,
 * version, deleted (0 for the tables without versions). */
#define WF_COLS "name, tenant, definition, created_at, created_at, version, deleted"
#define HOOK_COLS "name, tenant, definition, created_at, updated_at, 0, 0"
#define LIMIT_COLS "name, tenant, definition, created_at, updated_at, 0, 0"
#define SECRET_COLS "name, tenant, value, created_at, updated_at, 0, 0"

/* [out] *s: the statement of x's kind in sqls, with ?1 tenant and ?2 name bound. */
static int bind_key(struct sq_conn *c, struct sq_sql *sqls, const struct store_def_call *x,
                    sqlite3_stmt **s)
{
    int rc = sq_q(c, &sqls[x->kind], s);
    if (rc == 0) {
        sq_bind_str(*s, 1, x->tenant);
        sq_bind_str(*s, 2, x->name);
    }
    return rc;
}

/* ---- get ----------------------------------------------------------------------------- */

/* ?3 (workflows) > 0: that version, deleted or not; else the newest live version */
static struct sq_sql sql_get[STORE_DEF__COUNT] = {
    [STORE_DEF_WORKFLOW] =
        KIND_SQL("SELECT " WF_COLS " FROM workflows WHERE tenant = ?1 AND name = ?2 "
                 "AND (CASE WHEN ?3 > 0 THEN version = ?3 ELSE deleted = 0 END) "
                 "ORDER BY version DESC LIMIT 1"),
    [STORE_DEF_HOOK] = KIND_SQL("SELECT " HOOK_COLS " FROM hooks WHERE name = ?2 "
                                "AND (?1 IS NULL OR tenant = ?1)"),
    [STORE_DEF_LIMIT] =
        KIND_SQL("SELECT " LIMIT_COLS " FROM limits WHERE tenant = ?1 AND name = ?2"),
    [STORE_DEF_SECRET] =
        KIND_SQL("SELECT " SECRET_COLS " FROM secrets WHERE tenant = ?1 AND name = ?2"),
};

/* The get body: 1 found ([out] x->one), 0 not found: x's definition (a workflow: of
 * version x->version). */
static int load(struct sq_conn *c, void *vctx)
{
    struct store_def_call *x = vctx;
    sqlite3_stmt *s;
    int rc = bind_key(c, sql_get, x, &s);
    if (rc < 0)
        return rc;
    if (x->kind == STORE_DEF_WORKFLOW) /* the only kind with versions */
        sqlite3_bind_int64(s, 3, x->version);
    rc = sq_step(s);
    if (rc == 1)
        rules_def_read(&sq_cols, s, x->kind, x->one);
    sqlite3_reset(s);
    return rc;
}

int sq_def_get(void *impl, enum store_def_kind kind, const char *tenant, const char *name,
               int64_t version, struct store_def *out)
{
    struct store_def_call x = {
        .kind = kind, .tenant = tenant, .name = name, .version = version, .one = out};
    return sq_run_tx(impl, TX_READ, load, rules_defs_undo, &x);
}

/* ---- put ----------------------------------------------------------------------------- */

/* A row when the name is taken (a workflow's: live), whose column is 1 when another
 * tenant holds it: only a hook's can be, its name being global. */
static struct sq_sql sql_owner[STORE_DEF__COUNT] = {
    [STORE_DEF_WORKFLOW] = KIND_SQL("SELECT 0 FROM workflows WHERE tenant = ?1 AND name = ?2 "
                                    "AND deleted = 0 LIMIT 1"),
    [STORE_DEF_HOOK] = KIND_SQL("SELECT tenant <> ?1 FROM hooks WHERE name = ?2"),
    [STORE_DEF_LIMIT] = KIND_SQL("SELECT 0 FROM limits WHERE tenant = ?1 AND name = ?2"),
    [STORE_DEF_SECRET] = KIND_SQL("SELECT 0 FROM secrets WHERE tenant = ?1 AND name = ?2"),
};

/* ?3 the text, ?4 now. A workflow's version is the next after the highest ever used
 * (so a deleted one's are never reused); the others are created or replaced. */
static struct sq_sql sql_put[STORE_DEF__COUNT] = {
    [STORE_DEF_WORKFLOW] =
        KIND_SQL("INSERT INTO workflows(tenant, name, version, definition, created_at) "
                 "SELECT ?1, ?2, coalesce(max(version), 0) + 1, ?3, ?4 FROM workflows "
                 "WHERE tenant = ?1 AND name = ?2"),
    [STORE_DEF_HOOK] =
        KIND_SQL("INSERT INTO hooks(name, tenant, definition, created_at, updated_at) "
                 "VALUES(?2, ?1, ?3, ?4, ?4) ON CONFLICT(name) DO UPDATE SET "
                 "definition = excluded.definition, updated_at = excluded.updated_at"),
    [STORE_DEF_LIMIT] =
        KIND_SQL("INSERT INTO limits(tenant, name, definition, created_at, updated_at) "
                 "VALUES(?1, ?2, ?3, ?4, ?4) ON CONFLICT(tenant, name) DO UPDATE SET "
                 "definition = excluded.definition, updated_at = excluded.updated_at"),
    [STORE_DEF_SECRET] =
        KIND_SQL("INSERT INTO secrets(tenant, name, value, created_at, updated_at) "
                 "VALUES(?1, ?2, ?3, ?4, ?4) ON CONFLICT(tenant, name) DO UPDATE SET "
                 "value = excluded.value, updated_at = excluded.updated_at"),
};

static int put_body(struct sq_conn *c, void *vctx)
{
    struct store_def_call *x = vctx;
    sqlite3_stmt *s;
    int rc = bind_key(c, sql_owner, x, &s);
    if (rc < 0)
        return rc;
    int taken = sq_step(s);
    int others = taken == 1 && sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    if (taken < 0)
        return taken;
    if (others)
        return -SLUICE_E_CONFLICT; /* names are global: the events URL has no key */
    if ((rc = bind_key(c, sql_put, x, &s)) < 0)
        return rc;
    sq_bind_str(s, 3, x->text);
    sqlite3_bind_int64(s, 4, clock_now_ms());
    if ((rc = sq_step(s)) < 0)
        return rc;
    /* read back as stored (a workflow: version 0 is the one just put) */
    if (x->one && (rc = load(c, x)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return taken ? STORE_PUT_REPLACED : STORE_PUT_CREATED;
}

int sq_def_put(void *impl, enum store_def_kind kind, const char *tenant, const char *name,
               const char *text, struct store_def *out)
{
    struct store_def_call x = {
        .kind = kind, .tenant = tenant, .name = name, .text = text, .one = out};
    return sq_run_tx(impl, TX_WRITE, put_body, rules_defs_undo, &x);
}

/* ---- list ---------------------------------------------------------------------------- */

/* ?3 the most rows, by name. A workflow name's live rows are the versions put since
 * its last delete; the newest row of a name is live exactly when the name is. Limits
 * with tenant NULL: every tenant's, by tenant then name. */
static struct sq_sql sql_list[STORE_DEF__COUNT] = {
    [STORE_DEF_WORKFLOW] = KIND_SQL("SELECT " WF_COLS " FROM workflows w "
                                    "WHERE tenant = ?1 AND name > ?2 AND deleted = 0 "
                                    "AND version = (SELECT max(version) FROM workflows v "
                                    "WHERE v.tenant = w.tenant AND v.name = w.name) "
                                    "ORDER BY name LIMIT ?3"),
    [STORE_DEF_HOOK] = KIND_SQL("SELECT " HOOK_COLS " FROM hooks WHERE tenant = ?1 "
                                "AND name > ?2 ORDER BY name LIMIT ?3"),
    [STORE_DEF_LIMIT] = KIND_SQL("SELECT " LIMIT_COLS " FROM limits "
                                 "WHERE (?1 IS NULL OR tenant = ?1 AND name > ?2) "
                                 "ORDER BY tenant, name LIMIT ?3"),
    [STORE_DEF_SECRET] = KIND_SQL("SELECT " SECRET_COLS " FROM secrets WHERE tenant = ?1 "
                                  "AND name > ?2 ORDER BY name LIMIT ?3"),
};

static int list_body(struct sq_conn *c, void *vctx)
{
    struct store_def_call *x = vctx;
    sqlite3_stmt *s;
    int rc = bind_key(c, sql_list, x, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 3, (sqlite3_int64)x->limit);
    x->many = xcalloc(x->limit ? x->limit : 1, sizeof *x->many);
    x->n = 0;
    while (x->n < x->limit && (rc = sq_step(s)) == 1)
        rules_def_read(&sq_cols, s, x->kind, &x->many[x->n++]);
    sqlite3_reset(s);
    if (rc < 0) {
        store_defs_free(x->many, x->n);
        x->many = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

int sq_def_list(void *impl, enum store_def_kind kind, const char *tenant, const char *after_name,
                size_t limit, struct store_def **out, size_t *n)
{
    struct store_def_call x = {
        .kind = kind, .tenant = tenant, .name = after_name ? after_name : "", .limit = limit};
    int rc = sq_run_tx(impl, TX_READ, list_body, rules_defs_undo, &x);
    *out = rc < 0 ? NULL : x.many;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

/* ---- delete -------------------------------------------------------------------------- */

/* A workflow's versions stay (running jobs use them), marked deleted. */
static struct sq_sql sql_delete[STORE_DEF__COUNT] = {
    [STORE_DEF_WORKFLOW] = KIND_SQL("UPDATE workflows SET deleted = 1 "
                                    "WHERE tenant = ?1 AND name = ?2 AND deleted = 0"),
    [STORE_DEF_HOOK] = KIND_SQL("DELETE FROM hooks WHERE tenant = ?1 AND name = ?2"),
    [STORE_DEF_LIMIT] = KIND_SQL("DELETE FROM limits WHERE tenant = ?1 AND name = ?2"),
    [STORE_DEF_SECRET] = KIND_SQL("DELETE FROM secrets WHERE tenant = ?1 AND name = ?2"),
};

static int delete_body(struct sq_conn *c, void *vctx)
{
    struct store_def_call *x = vctx;
    sqlite3_stmt *s;
    int rc = bind_key(c, sql_delete, x, &s);
    if (rc < 0)
        return rc;
    rc = sq_step(s);
    sqlite3_reset(s);
    return rc < 0 ? rc : sqlite3_changes(c->db) > 0;
}

int sq_def_delete(void *impl, enum store_def_kind kind, const char *tenant, const char *name)
{
    struct store_def_call x = {.kind = kind, .tenant = tenant, .name = name};
    return sq_run_tx(impl, TX_WRITE, delete_body, NULL, &x);
}
