/* jobs.c - the PostgreSQL backend's jobs: the SQL-level steps (pg_jobs, a struct
 * rules_jobs_prims) that rules.c's job bodies run on, and loading and saving the job
 * row (its decoding and last transition are in rules.c), for submitting (begin, add
 * items, commit, retry and retry staging, abort, the gc of Receiving jobs),
 * idempotency keys, the retention sweep, and reading, canceling and deleting jobs.
 *
 * Accept path: store_job_add_items inserts its whole batch with one INSERT ... SELECT
 * FROM unnest() of array parameters; store_job_commit makes the job visible, inserts
 * its runnable row and sends one NOTIFY (delivered at COMMIT, so a woken node sees
 * the job).
 *
 * Retention: as in sqlite/jobs.c (hide the job, then delete its items a bounded number of
 * rows per transaction, then the row), with SKIP LOCKED so nodes sweeping at the
 * same time take different jobs.
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres/pg_int.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* ---- job rows -------------------------------------------------------------------- */

/* Fills r from row `row` of JOB_COLS (rules.h) starting at column 0. */
static void read_job(const struct conn *c, const PGresult *res, int row, struct rules_jobrow *r)
{
    const struct pg_row at = {res, row};
    rules_job_read(&pg_cols, &at, c->retention_ms, r);
}

/* Runs a statement returning JOB_COLS; 1 and [out] r when it returned a row. */
int pg_job_query(struct conn *c, const char *sql, const struct pg_params *p, struct rules_jobrow *r)
{
    PGresult *res;
    int rc = pg_exec(c, sql, p, &res);
    if (rc < 0)
        return rc;
    if (rc > 0)
        read_job(c, res, 0, r);
    PQclear(res);
    return rc > 0;
}

/* A visible job of tenant by public id: 1 found, 0 not. `lock`: FOR UPDATE. */
int pg_job_load(void *conn, const char *tenant, const char *job_id, int lock,
                struct rules_jobrow *r)
{
    struct pg_params p = {0};
    pg_param_str(&p, job_id);
    pg_param_str(&p, tenant);
    return pg_job_query(conn,
                        lock ? "SELECT " JOB_COLS " FROM jobs WHERE id = $1 AND tenant = $2 "
                               "AND status > 0 FOR UPDATE"
                             : "SELECT " JOB_COLS " FROM jobs WHERE id = $1 AND tenant = $2 "
                               "AND status > 0",
                        &p, r);
}

/* pg_job_load for readers: also a staging retry (status 0 with a parent_job), which
 * store.c shows NotStarted. Writers use pg_job_load and do not see it. */
int pg_job_load_visible(void *conn, const char *tenant, const char *job_id, struct rules_jobrow *r)
{
    struct pg_params p = {0};
    pg_param_str(&p, job_id);
    pg_param_str(&p, tenant);
    return pg_job_query(conn,
                        "SELECT " JOB_COLS " FROM jobs WHERE id = $1 AND tenant = $2 "
                        "AND (status > 0 OR parent_job <> '') AND updated_at >= 0",
                        &p, r);
}

int pg_job_load_jid(void *conn, int64_t jid, struct rules_jobrow *r)
{
    struct pg_params p = {0};
    pg_param_i64(&p, jid);
    int rc = pg_job_query(conn, "SELECT " JOB_COLS " FROM jobs WHERE jid = $1", &p, r);
    return rc == 0 ? -SLUICE_E_INTERNAL : rc; /* callers hold a reference to the row */
}

static int job_load_steps(void *conn, int64_t jid, struct store_job *j)
{
    struct pg_params p = {0};
    PGresult *r;
    pg_param_i64(&p, jid);
    int rc = pg_exec(
        conn, "SELECT step, passed, failed, skipped FROM job_steps WHERE jid = $1 ORDER BY seq", &p,
        &r);
    if (rc <= 0)
        return rc;
    j->steps = xcalloc((size_t)rc, sizeof *j->steps);
    j->nsteps = (size_t)rc;
    for (int i = 0; i < rc; i++) {
        struct store_step_count *sc = &j->steps[i];
        sc->step = pg_col_strdup(r, i, 0, NULL);
        if (!sc->step)
            sc->step = xstrdup("");
        sc->passed = pg_col_i64(r, i, 1);
        sc->failed = pg_col_i64(r, i, 2);
        sc->skipped = pg_col_i64(r, i, 3);
    }
    PQclear(r);
    return 0;
}

/* Writes the whole job row back at now, the transaction's time (the caller holds its
 * lock); a terminal job also queues its completion callback (once: the outbox has one
 * row per job). */
static int job_save(void *conn, const struct rules_jobrow *r, int64_t now)
{
    struct conn *c = conn;
    const struct store_job *j = &r->j;
    struct pg_params p = {0};
    pg_param_i64(&p, r->jid);
    pg_param_i64(&p, j->status);
    pg_param_i64(&p, j->outcome);
    pg_param_str(&p, j->error_code);
    pg_param_i64(&p, j->counts.pending);
    pg_param_i64(&p, j->counts.processing);
    pg_param_i64(&p, j->counts.succeeded);
    pg_param_i64(&p, j->counts.failed);
    pg_param_i64(&p, j->counts.skipped);
    pg_param_i64(&p, j->counts.canceled);
    pg_param_i64(&p, j->started_at);
    pg_param_i64(&p, j->last_progress_at);
    pg_param_i64(&p, j->completed_at);
    pg_param_i64(&p, j->win_at);
    pg_param_i64(&p, j->win_done);
    pg_param_i64(&p, r->cursor);
    pg_param_i64(&p, r->cancel_at);
    pg_param_i64(&p, r->last_claim);
    pg_param_i64(&p, now);
    int rc = pg_exec(c,
                     "UPDATE jobs SET status = $2, outcome = $3, error_code = $4, pending = $5, "
                     "processing = $6, succeeded = $7, failed = $8, skipped = $9, canceled = $10, "
                     "started_at = $11, last_progress_at = $12, completed_at = $13, win_at = $14, "
                     "win_done = $15, next_idx = $16, cancel_at = $17, last_claim = $18, "
                     "updated_at = $19 WHERE jid = $1",
                     &p, NULL);
    if (rc < 0 || !rules_job_terminal(j->status))
        return rc < 0 ? rc : 0;
    int bit;
    const char *event = rules_job_event(j->status, &bit);
    struct pg_params q = {0};
    pg_param_i64(&q, r->jid);
    pg_param_str(&q, event);
    pg_param_i64(&q, bit);
    pg_param_i64(&q, now);
    rc =
        pg_exec(c,
                "INSERT INTO outbox(id, jid, tenant, job_id, event, url, format, next_at, "
                "created_at, updated_at) SELECT 'dlv_' || substr(md5(random()::text || "
                "clock_timestamp()::text || jid::text), 1, 24), jid, tenant, id, $2, callback_url, "
                "callback_format, $4, $4, $4 FROM jobs "
                "WHERE jid = $1 AND callback_url IS NOT NULL AND (callback_events & $3::int) <> 0 "
                "ON CONFLICT DO NOTHING",
                &q, NULL);
    return rc < 0 ? rc : 0;
}

/* After a relative update of the counts (row r as returned, lock held): finishes the
 * job when its last item is done. */
int pg_job_finish_if_done(struct conn *c, struct rules_jobrow *r)
{
    if (!rules_job_finish(r, c->now))
        return 0;
    return job_save(c, r, c->now);
}

/* ---- the steps of the job transactions ------------------------------------------- */

/* The bodies of the job transactions are in rules.c (jobs: transaction bodies), which
 * store.c runs on this backend's steps: pg_jobs, at the end of this file. */

/* A pg_tx_fn for a body of rules.c (its context starts with a struct rules_tx). */
static int run_rules(struct conn *c, void *vctx)
{
    const struct rules_tx *t = vctx;
    return t->body(c, vctx);
}

/* pg_run_tx for rules.c: every kind of transaction runs alike here. */
static int run(void *impl, enum rules_tx_kind kind, struct rules_tx *tx, void (*undo)(void *ctx))
{
    (void)kind;
    return pg_run_tx(impl, run_rules, undo, tx);
}

static int64_t tx_now(void *conn)
{
    const struct conn *c = conn;
    return c->now;
}

/* Runs sql with $1, $2, ... the numbers args[0..n): the rows it returned or changed,
 * or a negative error. */
static int64_t run_i64s(void *conn, const char *sql, const int64_t *args, int n)
{
    struct pg_params p = {0};
    for (int i = 0; i < n; i++)
        pg_param_i64(&p, args[i]);
    return pg_exec(conn, sql, &p, NULL);
}

/* ---- submitting ------------------------------------------------------------------ */

static int job_insert(void *conn, const char *tenant, const char *job_id, int64_t now)
{
    struct pg_params p = {0};
    pg_param_str(&p, job_id);
    pg_param_str(&p, tenant);
    pg_param_i64(&p, now);
    int rc = pg_exec(conn,
                     "INSERT INTO jobs(id, tenant, status, created_at, updated_at) "
                     "VALUES($1, $2, 0, $3, $3)",
                     &p, NULL);
    return rc < 0 ? rc : 0;
}

/* The first value of sql's first row as a number: 1 ([out] *v), 0 no row. */
static int first_i64(struct conn *c, const char *sql, const struct pg_params *p, int64_t *v)
{
    PGresult *r;
    int rc = pg_exec(c, sql, p, &r);
    if (rc <= 0)
        return rc;
    *v = pg_col_i64(r, 0, 0);
    PQclear(r);
    return 1;
}

/* Runs sql, a lookup of one job's jid, with $1 job_id and $2 tenant (when not NULL), or
 * (job_id NULL) $1 num: 1 ([out] *jid) or 0. */
static int jid_query(void *conn, const char *sql, const char *job_id, const char *tenant,
                     int64_t num, int64_t *jid)
{
    struct pg_params p = {0};
    if (job_id) {
        pg_param_str(&p, job_id);
        if (tenant)
            pg_param_str(&p, tenant);
    } else {
        pg_param_i64(&p, num);
    }
    return first_i64(conn, sql, &p, jid);
}

/* jid of a Receiving job (locked), or 0 (not found / no longer receiving). */
static int receiving_jid(void *conn, const char *job_id, int64_t *jid)
{
    return jid_query(conn,
                     "SELECT jid FROM jobs WHERE id = $1 AND status = 0 AND updated_at >= 0 "
                     "FOR UPDATE",
                     job_id, NULL, 0, jid);
}

/* One upload's items, in one INSERT ... SELECT FROM unnest() of array parameters
 * (rules.c checked the indexes). */
static int items_insert(void *conn, int64_t jid, const struct store_new_item *items, size_t n)
{
    struct conn *c = conn;
    struct buf *bi = &c->arr[0], *bp = &c->arr[1], *br = &c->arr[2], *bd = &c->arr[3];
    pg_arr_begin(bi, PG_ELEM_INT8);
    pg_arr_begin(bp, PG_ELEM_INT8);
    pg_arr_begin(br, PG_ELEM_TEXT);
    pg_arr_begin(bd, PG_ELEM_TEXT);
    for (size_t i = 0; i < n; i++) {
        const struct store_new_item *it = &items[i];
        pg_arr_i64(bi, it->index);
        pg_arr_i64(bp, it->prev_idx);
        pg_arr_strn(br, it->ref, it->ref_len);
        pg_arr_strn(bd, it->data, it->data_len);
    }
    struct pg_params p = {0};
    pg_param_i64(&p, jid);
    pg_param_arr(&p, bi);
    pg_param_arr(&p, bp);
    pg_param_arr(&p, br);
    pg_param_arr(&p, bd);
    int rc = pg_exec(c,
                     "INSERT INTO items(jid, idx, prev_idx, ref, data) SELECT $1, * FROM "
                     "unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[])",
                     &p, NULL);
    return rc < 0 ? rc : 0;
}

static int job_touch(void *conn, int64_t jid, int64_t now)
{
    int64_t rc = run_i64s(conn, "UPDATE jobs SET updated_at = $2 WHERE jid = $1",
                          (const int64_t[]){jid, now}, 2);
    return rc < 0 ? (int)rc : 0;
}

/* Runs the statements sqls[0..n), each with jid as $1: the rows they changed, or a
 * negative error. */
static int64_t run_by_jid(struct conn *c, const char *const *sqls, size_t n, int64_t jid)
{
    struct pg_params p = {0};
    int64_t changed = 0;
    pg_param_i64(&p, jid);
    for (size_t i = 0; i < n; i++) {
        int rc = pg_exec(c, sqls[i], &p, NULL);
        if (rc < 0)
            return rc;
        changed += rc;
    }
    return changed;
}

/* Deletes a job's items, claims, step counts, keys, delivery, runnable row and row. */
static int job_remove(void *conn, int64_t jid)
{
    static const char *const by_jid[] = {
        "DELETE FROM items WHERE jid = $1",     "DELETE FROM item_outcomes WHERE jid = $1",
        "DELETE FROM claims WHERE jid = $1",    "DELETE FROM job_steps WHERE jid = $1",
        "DELETE FROM idem_keys WHERE jid = $1", "DELETE FROM outbox WHERE jid = $1",
        "DELETE FROM runnable WHERE jid = $1",  "DELETE FROM ref_tails WHERE jid = $1",
        "DELETE FROM ref_waits WHERE jid = $1", "DELETE FROM jobs WHERE jid = $1",
    };
    int64_t rc = run_by_jid(conn, by_jid, sizeof by_jid / sizeof by_jid[0], jid);
    return rc < 0 ? (int)rc : 0;
}

/* As in sqlite/jobs.c: 1 ([out] *jid) when the key of tenant replays, 0 when no key
 * counts, -SLUICE_E_IDEMPOTENCY_KEY_REUSED when it covers another request. */
static int idem_find(void *conn, const char *tenant, const struct store_job_meta *m, int64_t *jid)
{
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, tenant);
    pg_param_str(&p, m->idem_key);
    int rc = pg_exec(
        conn, "SELECT jid, body_hash, created_at FROM idem_keys WHERE tenant = $1 AND key = $2", &p,
        &r);
    if (rc <= 0)
        return rc;
    const char *h = PQgetvalue(r, 0, 1);
    if (pg_col_i64(r, 0, 2) < m->idem_not_before)
        rc = 0;
    else if (m->body_hash && m->body_hash[0] && h && h[0] && strcmp(h, m->body_hash) != 0)
        rc = -SLUICE_E_IDEMPOTENCY_KEY_REUSED;
    else
        *jid = pg_col_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

/* Takes m's key for job jid: 1 taken (new, or an aged-out key replaced), 0 when a job
 * committed meanwhile on another connection holds it (the caller looks again). */
static int idem_take(struct conn *c, int64_t jid, const struct store_job_meta *m)
{
    struct pg_params p = {0};
    pg_param_i64(&p, jid);
    pg_param_str(&p, m->idem_key);
    pg_param_str(&p, m->body_hash);
    pg_param_i64(&p, c->now);
    pg_param_i64(&p, m->idem_not_before);
    int rc = pg_exec(c,
                     "INSERT INTO idem_keys AS k (tenant, key, jid, body_hash, created_at) "
                     "SELECT tenant, $2, jid, coalesce($3::text, ''), $4 FROM jobs WHERE jid = $1 "
                     "ON CONFLICT (tenant, key) DO UPDATE SET jid = excluded.jid, "
                     "body_hash = excluded.body_hash, created_at = excluded.created_at "
                     "WHERE k.created_at < $5",
                     &p, NULL);
    return rc < 0 ? rc : rc > 0;
}

/* Before a commit: other nodes commit at the same time, so the key is taken (or the
 * job holding it found) before the job becomes visible, a few times over. */
static int idem_claim(void *conn, int64_t jid, const char *tenant, const struct store_job_meta *m,
                      int64_t now, int64_t *existing)
{
    int rc = 0;
    (void)now;
    for (int tries = 0; tries < 3 && !*existing; tries++) {
        if ((rc = idem_find(conn, tenant, m, existing)) < 0)
            return rc;
        if (*existing || (rc = idem_take(conn, jid, m)) == 1)
            break;
        if (rc < 0)
            return rc;
    }
    return *existing || rc == 1 ? 0 : E_SOFT;
}

/* A retry takes its key after its row is in: taken meanwhile, the next attempt
 * replays it. */
static int idem_record(void *conn, int64_t jid, const struct store_job_meta *m, int64_t now)
{
    (void)now;
    int rc = idem_take(conn, jid, m);
    return rc < 0 ? rc : rc == 0 ? E_SOFT : 0;
}

int pg_notify_work(struct conn *c)
{
    int rc = pg_exec(c, "SELECT pg_notify('sluice_work', '')", NULL, NULL);
    return rc < 0 ? rc : 0;
}

/* Makes job jid runnable (when it has items) and wakes the nodes at COMMIT. */
static int runnable_insert(void *conn, int64_t jid)
{
    struct pg_params p = {0};
    pg_param_i64(&p, jid);
    int rc = pg_exec(conn,
                     "INSERT INTO runnable(jid, tenant, priority) SELECT jid, tenant, priority "
                     "FROM jobs WHERE jid = $1 AND total > 0 ON CONFLICT DO NOTHING",
                     &p, NULL);
    return rc < 0 ? rc : pg_notify_work(conn);
}

static int job_commit(void *conn, int64_t jid, const struct store_job_meta *m, int64_t total,
                      int64_t now)
{
    struct pg_params p = {0};
    pg_param_i64(&p, jid);
    pg_param_str(&p, m->workflow ? m->workflow : "");
    pg_param_str(&p, m->client_reference);
    pg_param_i64(&p, total);
    pg_param_i64(&p, now);
    pg_param_i64(&p, m->workflow_version);
    pg_param_str(&p, m->job_id);
    pg_param_str(&p, m->callback_url);
    pg_param_i64(&p,
                 m->callback_url ? (m->callback_events ? m->callback_events : STORE_CB_ALL) : 0);
    pg_param_i64(&p, m->priority);
    pg_param_str(&p, m->uses && *m->uses ? m->uses : NULL);
    pg_param_i64(&p, m->callback_url ? m->callback_format : 0);
    pg_param_i64(&p, m->ref_order);
    int rc =
        pg_exec(conn,
                "UPDATE jobs SET status = 1, workflow = $2, client_reference = $3, total = $4, "
                "pending = $4, updated_at = $5, workflow_version = $6, "
                "id = coalesce($7::text, id), callback_url = $8, callback_events = $9, "
                "priority = $10, uses = $11, callback_format = $12, ref_order = $13 "
                "WHERE jid = $1",
                &p, NULL);
    if (rc < 0)
        return rc; /* -SLUICE_E_CONFLICT: m->job_id names another job */
    return runnable_insert(conn, jid);
}

/* Ref order across jobs (REF ORDER in store.h), as in sqlite/jobs.c. Commits of one
 * tenant's workflow on several nodes take turns on an advisory lock, so each reads
 * the ref_tails the previous one left (READ COMMITTED: every statement after the
 * lock sees what committed before it was granted). */
static int ref_link(void *conn, int64_t jid)
{
    static const char *const steps[] = {
        "SELECT pg_advisory_xact_lock(hashtext('sluice.ref:' || tenant || '/' || workflow)) "
        "FROM jobs WHERE jid = $1",
        "INSERT INTO ref_waits(jid, idx, prev_jid, prev_idx) SELECT i.jid, i.idx, t.jid, t.idx "
        "FROM jobs j JOIN items i ON i.jid = j.jid JOIN ref_tails t ON t.tenant = j.tenant "
        "AND t.workflow = j.workflow AND t.ref = i.ref JOIN item_rows p ON p.jid = t.jid "
        "AND p.idx = t.idx WHERE j.jid = $1 AND i.prev_idx = -1 AND p.status = 0",
        "INSERT INTO ref_tails(tenant, workflow, ref, jid, idx) SELECT j.tenant, j.workflow, "
        "i.ref, j.jid, max(i.idx) FROM jobs j JOIN items i ON i.jid = j.jid WHERE j.jid = $1 "
        "GROUP BY j.tenant, j.workflow, i.ref, j.jid ON CONFLICT(tenant, workflow, ref) "
        "DO UPDATE SET jid = excluded.jid, idx = excluded.idx",
    };
    int64_t rc = run_by_jid(conn, steps, sizeof steps / sizeof steps[0], jid);
    return rc < 0 ? (int)rc : 0;
}

static int retry_insert(void *conn, const struct rules_jobrow *r, const char *new_job_id,
                        int staging, int64_t now, int64_t *jid)
{
    struct pg_params p = {0};
    pg_param_str(&p, new_job_id);
    pg_param_str(&p, r->j.tenant);
    pg_param_str(&p, r->j.workflow);
    pg_param_i64(&p, r->j.workflow_version);
    pg_param_str(&p, r->j.id);
    pg_param_str(&p, r->j.client_reference);
    pg_param_i64(&p, r->j.counts.failed);
    pg_param_i64(&p, now);
    pg_param_i64(&p, r->j.priority);
    pg_param_str(&p, r->j.uses);
    pg_param_i64(&p, staging ? JOB_RECEIVING : JOB_NOT_STARTED);
    pg_param_i64(&p, r->j.ref_order);
    int rc = first_i64(conn,
                       "INSERT INTO jobs(id, tenant, workflow, workflow_version, parent_job, "
                       "client_reference, status, total, pending, created_at, updated_at, "
                       "priority, uses, ref_order) "
                       "VALUES($1, $2, $3, $4, $5, $6, $11, $7, $7, $8, $8, $9, $10, $12) "
                       "RETURNING jid",
                       &p, jid);
    return rc < 0 ? rc : 0;
}

static int64_t retry_items(void *conn, int64_t jid, const struct rules_jobrow *r)
{
    return run_i64s(
        conn,
        "INSERT INTO items(jid, idx, prev_idx, ref, data, parent_index) "
        "SELECT $1, idx, coalesce(lag(idx) OVER (PARTITION BY ref ORDER BY idx), -1), ref, "
        "data, pidx FROM (SELECT row_number() OVER (ORDER BY o.idx) - 1 AS idx, i.ref, i.data, "
        "o.idx AS pidx FROM item_outcomes o JOIN items i ON i.jid = o.jid AND i.idx = o.idx "
        "WHERE o.jid = $2 AND o.status = 3) f ORDER BY idx",
        (const int64_t[]){jid, r->jid}, 2);
}

/* Retry staging (store_job_retry_stage; the body is rules_stage_body, as in sqlite/jobs.c):
 * the oldest staging retry this node can lock. */
static int stage_pick(void *conn, int64_t after, int64_t *jid, char tenant[STORE_NAME_MAX],
                      char parent[STORE_ID_MAX], int64_t *total, char *job_id)
{
    PGresult *r;
    struct pg_params a = {0};
    pg_param_i64(&a, after);
    int rc = pg_exec(conn,
                     "SELECT jid, tenant, parent_job, total, id FROM jobs WHERE status = 0 AND "
                     "parent_job <> '' AND updated_at >= 0 AND jid > $1 ORDER BY jid LIMIT 1 "
                     "FOR UPDATE SKIP LOCKED",
                     &a, &r);
    if (rc <= 0)
        return rc;
    *jid = pg_col_i64(r, 0, 0);
    pg_col_copy(r, 0, 1, tenant, STORE_NAME_MAX);
    pg_col_copy(r, 0, 2, parent, STORE_ID_MAX);
    *total = pg_col_i64(r, 0, 3);
    pg_col_copy(r, 0, 4, job_id, STORE_ID_MAX);
    PQclear(r);
    return 1;
}

static int stage_last(void *conn, int64_t jid, int64_t *staged, int64_t *pnext)
{
    PGresult *r;
    struct pg_params p = {0};
    pg_param_i64(&p, jid);
    int rc = pg_exec(conn,
                     "SELECT idx, parent_index FROM items WHERE jid = $1 ORDER BY idx DESC LIMIT 1",
                     &p, &r);
    if (rc <= 0)
        return rc;
    *staged = pg_col_i64(r, 0, 0) + 1;
    *pnext = pg_col_i64(r, 0, 1) + 1;
    PQclear(r);
    return 1;
}

static int stage_parent(void *conn, const char *tenant, const char *parent, int64_t *pjid)
{
    return jid_query(conn, "SELECT jid FROM jobs WHERE id = $1 AND tenant = $2 AND status > 0",
                     parent, tenant, 0, pjid);
}

static int64_t stage_items(void *conn, int64_t jid, int64_t pjid, int64_t staged, int64_t pnext,
                           int64_t max)
{
    /* the LIMIT sits inside, so a batch reads only its own rows (item_outcomes_failed) */
    return run_i64s(
        conn,
        "INSERT INTO items(jid, idx, prev_idx, ref, data, parent_index) "
        "SELECT $1, idx, coalesce(lag(idx) OVER (PARTITION BY ref ORDER BY idx), "
        "(SELECT last_idx FROM retry_refs rr WHERE rr.jid = $1 AND rr.ref = f.ref), -1), "
        "ref, data, pidx FROM (SELECT $3 + row_number() OVER (ORDER BY idx) - 1 AS idx, "
        "ref, data, idx AS pidx FROM (SELECT o.idx, i.ref, i.data FROM item_outcomes o "
        "JOIN items i ON i.jid = o.jid AND i.idx = o.idx WHERE o.jid = $2 AND o.status = 3 "
        "AND o.idx >= $4 ORDER BY o.idx LIMIT $5) b) f ORDER BY idx",
        (const int64_t[]){jid, pjid, staged, pnext, max}, 5);
}

static int stage_refs(void *conn, int64_t jid, int64_t staged, int64_t end)
{
    int64_t rc =
        run_i64s(conn,
                 "INSERT INTO retry_refs(jid, ref, last_idx) SELECT $1, ref, max(idx) FROM "
                 "items WHERE jid = $1 AND idx >= $2 AND idx < $3 GROUP BY ref "
                 "ON CONFLICT (jid, ref) DO UPDATE SET last_idx = EXCLUDED.last_idx",
                 (const int64_t[]){jid, staged, end}, 3);
    return rc < 0 ? (int)rc : 0;
}

static int64_t stage_forget(void *conn, int64_t jid, int64_t max)
{
    return run_i64s(conn,
                    "DELETE FROM retry_refs WHERE jid = $1 AND ref IN "
                    "(SELECT ref FROM retry_refs WHERE jid = $1 LIMIT $2)",
                    (const int64_t[]){jid, max}, 2);
}

static int stage_done(void *conn, int64_t jid, int64_t staged, int64_t now)
{
    int64_t rc = run_i64s(conn,
                          "UPDATE jobs SET status = 1, total = $2, pending = $2, updated_at = $3 "
                          "WHERE jid = $1",
                          (const int64_t[]){jid, staged, now}, 3);
    return rc < 0 ? (int)rc : runnable_insert(conn, jid);
}

static int gc_list(void *conn, int64_t older_than, int64_t **jids, size_t *n)
{
    struct pg_params p = {0};
    PGresult *r;
    pg_param_i64(&p, older_than);
    int rc = pg_exec(conn,
                     "SELECT jid FROM jobs WHERE status = 0 AND updated_at < $1 "
                     "AND (parent_job = '' OR updated_at < 0) FOR UPDATE SKIP LOCKED",
                     &p, &r);
    if (rc <= 0)
        return rc;
    *jids = xcalloc((size_t)rc, sizeof **jids);
    for (*n = 0; *n < (size_t)rc; (*n)++)
        (*jids)[*n] = pg_col_i64(r, (int)*n, 0);
    PQclear(r);
    return 0;
}

/* ---- retention ------------------------------------------------------------------- */

/* As in sqlite/jobs.c, with SKIP LOCKED: nodes sweeping at once take different jobs. */
static int sweep_hidden(void *conn, int64_t *jid)
{
    return first_i64(conn,
                     "SELECT jid FROM jobs WHERE status = 0 AND updated_at < 0 LIMIT 1 "
                     "FOR UPDATE SKIP LOCKED",
                     NULL, jid);
}

static int sweep_expired(void *conn, int64_t before, int64_t *jid)
{
    return jid_query(conn,
                     "SELECT jid FROM jobs WHERE status IN (4, 5, 6) AND completed_at < $1 "
                     "ORDER BY completed_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                     NULL, NULL, before, jid);
}

static int64_t sweep_hide(void *conn, int64_t jid)
{
    static const char *const by_jid[] = {
        "DELETE FROM claims WHERE jid = $1",
        "DELETE FROM job_steps WHERE jid = $1",
        "DELETE FROM idem_keys WHERE jid = $1",
        "DELETE FROM outbox WHERE jid = $1",
    };
    static const char *const hide = "UPDATE jobs SET status = 0, updated_at = -1 WHERE jid = $1";
    int64_t rc = run_by_jid(conn, &hide, 1, jid);
    return rc < 0 ? rc : run_by_jid(conn, by_jid, sizeof by_jid / sizeof by_jid[0], jid);
}

static int64_t sweep_keys(void *conn, int64_t before, int64_t max)
{
    return run_i64s(
        conn,
        "DELETE FROM idem_keys WHERE (tenant, key) IN (SELECT tenant, key FROM idem_keys "
        "WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        (const int64_t[]){before, max}, 2);
}

/* The job's ref order rows go first, then its items, up to max rows in all. */
static int64_t sweep_items(void *conn, int64_t jid, int64_t max)
{
    static const char *const steps[] = {
        "DELETE FROM ref_tails WHERE (tenant, workflow, ref) IN (SELECT tenant, workflow, ref "
        "FROM ref_tails WHERE jid = $1 LIMIT $2)",
        "DELETE FROM ref_waits WHERE jid = $1 AND idx IN (SELECT idx FROM ref_waits "
        "WHERE jid = $1 LIMIT $2)",
        /* a batch counts items; their outcomes go with them */
        "WITH b AS (SELECT idx FROM items WHERE jid = $1 ORDER BY idx LIMIT $2), "
        "e AS (DELETE FROM item_outcomes o USING b WHERE o.jid = $1 AND o.idx = b.idx) "
        "DELETE FROM items WHERE jid = $1 AND idx IN (SELECT idx FROM b)",
    };
    int64_t gone = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && gone < max; i++) {
        int64_t rc = run_i64s(conn, steps[i], (const int64_t[]){jid, max - gone}, 2);
        if (rc < 0)
            return rc;
        gone += rc;
    }
    return gone;
}

static int job_delete_row(void *conn, int64_t jid)
{
    static const char *const del = "DELETE FROM jobs WHERE jid = $1";
    int64_t rc = run_by_jid(conn, &del, 1, jid);
    return rc < 0 ? (int)rc : 0;
}

/* ---- reading and controlling jobs ------------------------------------------------ */

static int job_list(void *conn, struct rules_jobs *x)
{
    struct conn *c = conn;
    struct pg_params p = {0};
    PGresult *r;
    struct rules_jobrow jr;
    pg_param_str(&p, x->tenant);
    pg_param_i64(&p, x->status);
    pg_param_i64(&p, x->before_seq > 0 ? x->before_seq : INT64_MAX);
    pg_param_i64(&p, (int64_t)x->limit);
    int rc = pg_exec(c,
                     "SELECT " JOB_COLS " FROM jobs WHERE tenant = $1 AND status > 0 "
                     "AND ($2::int < 0 OR status = $2) AND jid < $3 ORDER BY jid DESC LIMIT $4",
                     &p, &r);
    if (rc <= 0)
        return rc;
    for (int i = 0; i < rc && x->n < x->limit; i++) {
        read_job(c, r, i, &jr);
        x->list[x->n++] = jr.j;
    }
    PQclear(r);
    return 0;
}

/* The runnable row first (lock order): no claim moves the cursor meanwhile. */
static int cancel_lock(void *conn, const char *tenant, const char *job_id)
{
    struct pg_params p = {0};
    PGresult *res;
    pg_param_str(&p, job_id);
    pg_param_str(&p, tenant);
    int rc = pg_exec(conn,
                     "SELECT r.jid FROM runnable r JOIN jobs j ON j.jid = r.jid WHERE j.id = $1 "
                     "AND j.tenant = $2 FOR UPDATE OF r",
                     &p, &res);
    if (rc < 0)
        return rc;
    PQclear(res);
    return 0;
}

static int unrunnable(void *conn, int64_t jid)
{
    static const char *const del = "DELETE FROM runnable WHERE jid = $1";
    int64_t rc = run_by_jid(conn, &del, 1, jid);
    return rc < 0 ? (int)rc : 0;
}

/* ---- the steps, for rules.c ------------------------------------------------------ */

const struct rules_jobs_prims pg_jobs = {
    .now = tx_now,
    .job_load = pg_job_load,
    .job_load_visible = pg_job_load_visible,
    .job_load_jid = pg_job_load_jid,
    .job_save = job_save,
    .cancel_lock = cancel_lock,
    .unrunnable = unrunnable,
    .runnable = runnable_insert,
    .idem_record = idem_record,
    RULES_JOBS_STEPS(RULES_STEP), /* the steps named as their members */
};
