/* jobs.c - jobs in the embedded backend: the SQL-level steps (sq_jobs, a struct
 * rules_jobs_prims) that rules.c's job bodies run on, for submitting (begin, add items,
 * commit), idempotency keys, retries and their staging, aborts and the garbage of
 * uploads, retention, reading, canceling and deleting; and loading and saving the job
 * row (struct rules_jobrow; its decoding and last transition are in rules.c) that
 * items.c, claims.c and outbox.c use.
 *
 * DESIGN
 * Retention: store_retention_sweep removes expired terminal jobs a bounded number of
 * rows per transaction, so the write lock is never held long. The first transaction
 * that touches a job hides it: status 0 (like Receiving, which every read skips) with
 * updated_at -1, which tells it from a live upload (partial index jobs_removing);
 * the next calls delete its items from the lowest key up, and the call that deletes
 * the last items deletes the row. A crash in between leaves a hidden job that the
 * next sweep (or store_gc_receiving at start) finishes.
 *
 * Retries: store_job_retry copies the failed rows of the parent with one INSERT ...
 * SELECT (the item_outcomes_failed index finds them), numbering them with row_number() and
 * linking same-ref items with lag() over the new numbering, so the copy costs no
 * round trip per row and keeps the same-ref order of the parent.
 */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sqlite_int.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* ---- job rows -------------------------------------------------------------------- */

SQ_SQL(sql_job_by_id, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1 AND tenant = ?2 AND status > 0");
/* store_job_get also sees a staging retry (status 0 with a parent_job). */
SQ_SQL(sql_job_by_id_staging, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1 AND tenant = ?2 "
                              "AND (status > 0 OR parent_job <> '') AND updated_at >= 0");
SQ_SQL(sql_job_by_jid, "SELECT " JOB_COLS " FROM jobs WHERE jid = ?1");

/* Runs sql, a lookup of one job, with ?1 job_id and ?2 tenant (when not NULL), or (job_id
 * NULL) ?1 num (unless num < 0: no parameter). 1 when it returned a row, with [out] r
 * read from its JOB_COLS (rules.h), or, r NULL, *jid from its column 0; 0 when not. */
static int job_query(struct sq_conn *c, struct sq_sql *sql, const char *job_id, const char *tenant,
                     int64_t num, struct rules_jobrow *r, int64_t *jid)
{
    sqlite3_stmt *s;
    int rc = sq_q(c, sql, &s);
    if (rc < 0)
        return rc;
    if (job_id) {
        sq_bind_str(s, 1, job_id);
        if (tenant)
            sq_bind_str(s, 2, tenant);
    } else if (num >= 0) {
        sqlite3_bind_int64(s, 1, num);
    }
    if ((rc = sq_step(s)) == 1 && r)
        rules_job_read(&sq_cols, s, c->retention_ms, r);
    else if (rc == 1)
        *jid = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc;
}

int sq_job_load(struct sq_conn *c, const char *tenant, const char *job_id, struct rules_jobrow *r)
{
    return job_query(c, &sql_job_by_id, job_id, tenant, 0, r, NULL);
}

/* Readers see a staging retry (status 0 with a parent_job) too, which store.c shows
 * NotStarted. Writers use sq_job_load and do not see it. */
int sq_job_load_visible(void *conn, const char *tenant, const char *job_id, struct rules_jobrow *r)
{
    return job_query(conn, &sql_job_by_id_staging, job_id, tenant, 0, r, NULL);
}

int sq_job_load_jid(void *conn, int64_t jid, struct rules_jobrow *r)
{
    int rc = job_query(conn, &sql_job_by_jid, NULL, NULL, jid, r, NULL);
    return rc == 0 ? -SLUICE_E_INTERNAL : rc; /* callers hold a reference to the row */
}

/* rowid order is first-seen order: a new row's rowid is above every existing one */
SQ_SQL(sql_steps_get, "SELECT step, passed, failed, skipped FROM job_steps WHERE jid = ?1 "
                      "ORDER BY rowid");

/* Loads the step counts of job jid into j->steps (heap, first-seen order). */
static int job_load_steps(void *conn, int64_t jid, struct store_job *j)
{
    sqlite3_stmt *s;
    size_t cap = 0;
    int rc = sq_q(conn, &sql_steps_get, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, jid);
    while ((rc = sq_step(s)) == 1) {
        if (j->nsteps == cap) {
            cap = cap ? cap * 2 : 8;
            j->steps = xrealloc(j->steps, cap * sizeof *j->steps);
        }
        struct store_step_count *sc = &j->steps[j->nsteps++];
        sc->step = sq_col_dup(s, 0, NULL);
        if (!sc->step)
            sc->step = xstrdup("");
        sc->passed = sqlite3_column_int64(s, 1);
        sc->failed = sqlite3_column_int64(s, 2);
        sc->skipped = sqlite3_column_int64(s, 3);
    }
    sqlite3_reset(s);
    return rc;
}

SQ_SQL(sql_job_save, "UPDATE jobs SET status = ?2, outcome = ?3, error_code = ?4, pending = ?5, "
                     "processing = ?6, succeeded = ?7, failed = ?8, skipped = ?9, canceled = ?10, "
                     "started_at = ?11, last_progress_at = ?12, completed_at = ?13, win_at = ?14, "
                     "win_done = ?15, next_idx = ?16, cancel_at = ?17, last_claim = ?18, "
                     "updated_at = ?19 WHERE jid = ?1");
/* One delivery per job (UNIQUE jid): OR IGNORE makes a repeated save of a terminal
 * job harmless. ?2 the event, ?3 its STORE_CB_* bit, ?4 now. */
SQ_SQL(sql_outbox_add, "INSERT OR IGNORE INTO outbox(id, jid, tenant, job_id, event, url, format, "
                       "next_at, created_at, updated_at) SELECT 'dlv_' || "
                       "lower(hex(randomblob(12))), jid, tenant, id, ?2, callback_url, "
                       "callback_format, ?4, ?4, ?4 FROM jobs WHERE jid = ?1 "
                       "AND callback_url IS NOT NULL AND (callback_events & ?3) <> 0");

/* Writes the job row back; when the job is terminal, also queues its completion
 * callback (once: later saves of a terminal job add nothing). */
int sq_job_save(void *conn, const struct rules_jobrow *r, int64_t now)
{
    struct sq_conn *c = conn;
    const struct store_job *j = &r->j;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_job_save, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, r->jid);
    sqlite3_bind_int(s, 2, j->status);
    sqlite3_bind_int(s, 3, j->outcome);
    sq_bind_str(s, 4, j->error_code);
    sqlite3_bind_int64(s, 5, j->counts.pending);
    sqlite3_bind_int64(s, 6, j->counts.processing);
    sqlite3_bind_int64(s, 7, j->counts.succeeded);
    sqlite3_bind_int64(s, 8, j->counts.failed);
    sqlite3_bind_int64(s, 9, j->counts.skipped);
    sqlite3_bind_int64(s, 10, j->counts.canceled);
    sqlite3_bind_int64(s, 11, j->started_at);
    sqlite3_bind_int64(s, 12, j->last_progress_at);
    sqlite3_bind_int64(s, 13, j->completed_at);
    sqlite3_bind_int64(s, 14, j->win_at);
    sqlite3_bind_int64(s, 15, j->win_done);
    sqlite3_bind_int64(s, 16, r->cursor);
    sqlite3_bind_int64(s, 17, r->cancel_at);
    sqlite3_bind_int64(s, 18, r->last_claim);
    sqlite3_bind_int64(s, 19, now);
    if ((rc = sq_step(s)) < 0 || !rules_job_terminal(j->status))
        return rc < 0 ? rc : 0;
    /* Every transition to a terminal state goes through here: the callback owed for it
     * is queued in the same transaction (see COMPLETION CALLBACKS in store.h). */
    int bit;
    const char *event = rules_job_event(j->status, &bit);
    if ((rc = sq_q(c, &sql_outbox_add, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, r->jid);
    sq_bind_str(s, 2, event);
    sqlite3_bind_int(s, 3, bit);
    sqlite3_bind_int64(s, 4, now);
    rc = sq_step(s);
    return rc < 0 ? rc : 0;
}

/* ---- the steps of the job transactions ------------------------------------------- */

/* The bodies of the job transactions are in rules.c (jobs: transaction bodies), which
 * store.c runs on this backend's steps: sq_jobs, at the end of this file. */

/* A tx_fn for a body of rules.c (its context starts with a struct rules_tx). */
static int run_rules(struct sq_conn *c, void *vctx)
{
    const struct rules_tx *t = vctx;
    return t->body(c, vctx);
}

/* sq_run_tx for rules.c: its kinds are this backend's tx modes. */
static int run(void *impl, enum rules_tx_kind kind, struct rules_tx *tx, void (*undo)(void *ctx))
{
    static const enum tx_mode modes[] = {
        [RULES_TX_READ] = TX_READ,
        [RULES_TX_WRITE] = TX_WRITE,
        [RULES_TX_WRITE_NOSYNC] = TX_WRITE_NOSYNC,
        [RULES_TX_WRITE_BG] = TX_WRITE_BG,
    };
    return sq_run_tx(impl, modes[kind], run_rules, undo, tx);
}

static int64_t tx_now(void *conn)
{
    (void)conn;
    return clock_now_ms();
}

/* Runs the statements sqls[0..n), each with jid as ?1: the rows they changed, or a
 * negative error. */
static int64_t run_by_jid(struct sq_conn *c, struct sq_sql *const *sqls, size_t n, int64_t jid)
{
    sqlite3_stmt *s;
    int64_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = sq_q(c, sqls[i], &s);
        if (rc < 0)
            return rc;
        sqlite3_bind_int64(s, 1, jid);
        if ((rc = sq_step(s)) < 0)
            return rc;
        changed += sqlite3_changes(c->db);
    }
    return changed;
}

int64_t sq_run_i64s(struct sq_conn *c, struct sq_sql *sql, const int64_t *args, int n)
{
    sqlite3_stmt *s;
    int rc = sq_q(c, sql, &s);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++)
        sqlite3_bind_int64(s, i + 1, args[i]);
    if ((rc = sq_step(s)) < 0)
        return rc;
    return sqlite3_changes64(c->db);
}

int sq_list_i64s(struct sq_conn *c, struct sq_sql *sql, const int64_t *args, int n, int64_t **out,
                 size_t *nout)
{
    sqlite3_stmt *s;
    size_t cap = *nout;
    int rc = sq_q(c, sql, &s);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++)
        sqlite3_bind_int64(s, i + 1, args[i]);
    while ((rc = sq_step(s)) == 1) {
        if (*nout == cap) {
            cap = cap ? cap * 2 : 64;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        (*out)[(*nout)++] = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

/* ---- submitting ------------------------------------------------------------------ */

SQ_SQL(sql_job_insert, "INSERT INTO jobs(id, tenant, status, created_at, updated_at) "
                       "VALUES(?1, ?2, 0, ?3, ?3)");

static int job_insert(void *conn, const char *tenant, const char *job_id, int64_t now)
{
    sqlite3_stmt *s;
    int rc = sq_q(conn, &sql_job_insert, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, job_id);
    sq_bind_str(s, 2, tenant);
    sqlite3_bind_int64(s, 3, now);
    rc = sq_step(s);
    return rc < 0 ? rc : 0;
}

/* updated_at < 0: a job being removed by retention, not an upload */
SQ_SQL(sql_job_receiving, "SELECT jid FROM jobs WHERE id = ?1 AND status = 0 AND updated_at >= 0");

/* jid of a Receiving job, or 0 (not found / no longer receiving). */
static int receiving_jid(void *conn, const char *job_id, int64_t *jid)
{
    return job_query(conn, &sql_job_receiving, job_id, NULL, 0, NULL, jid);
}

SQ_SQL(sql_item_insert, "INSERT INTO items(k, prev_idx, ref, data) VALUES(?1, ?2, ?3, ?4)");
SQ_SQL(sql_job_touch, "UPDATE jobs SET updated_at = ?2 WHERE jid = ?1");

/* Items of one upload: their keys KEY(jid, index) (rules.c checked the index). */
static int items_insert(void *conn, int64_t jid, const struct store_new_item *items, size_t n)
{
    sqlite3_stmt *s;
    struct sq_zdict *d;
    struct sq_zpack zp;
    int rc = sq_zdata_dict(conn, jid, items, n, &d);
    if (rc < 0 || (rc = sq_q(conn, &sql_item_insert, &s)) < 0) {
        sq_zdict_free(d);
        return rc;
    }
    sq_zdata_pack(conn, d, items, n, &zp);
    sq_zdict_free(d);
    for (size_t i = 0; i < n; i++) {
        const struct store_new_item *it = &items[i];
        sqlite3_bind_int64(s, 1, KEY(jid, it->index));
        sqlite3_bind_int64(s, 2, it->prev_idx);
        sq_bind_strn(s, 3, it->ref, it->ref_len);
        sq_zpack_bind(&zp, s, 4, i, it);
        rc = sq_step(s);
        sqlite3_reset(s);
        if (rc < 0)
            break;
    }
    sq_zpack_release(&zp);
    return rc < 0 ? rc : 0;
}

static int job_touch(void *conn, int64_t jid, int64_t now)
{
    int64_t rc = sq_run_i64s(conn, &sql_job_touch, (const int64_t[]){jid, now}, 2);
    return rc < 0 ? (int)rc : 0;
}

SQ_SQL(sql_items_delete, "DELETE FROM items WHERE k >= ?1 AND k < ?2");
SQ_SQL(sql_outcomes_delete, "DELETE FROM item_outcomes WHERE k >= ?1 AND k < ?2");
SQ_SQL(sql_claims_delete_job, "DELETE FROM claims WHERE jid = ?1");
SQ_SQL(sql_steps_delete_job, "DELETE FROM job_steps WHERE jid = ?1");
SQ_SQL(sql_idem_delete_job, "DELETE FROM idem_keys WHERE jid = ?1");
SQ_SQL(sql_outbox_delete_job, "DELETE FROM outbox WHERE jid = ?1");
SQ_SQL(sql_job_delete, "DELETE FROM jobs WHERE jid = ?1");
SQ_SQL(sql_dict_delete_job, "DELETE FROM job_dicts WHERE jid = ?1");

SQ_SQL(sql_ref_tails_sweep, "DELETE FROM ref_tails WHERE (tenant, workflow, ref) IN (SELECT "
                            "tenant, workflow, ref FROM ref_tails WHERE k >= ?1 AND k < ?2 "
                            "LIMIT ?3)");
SQ_SQL(sql_ref_waits_sweep, "DELETE FROM ref_waits WHERE k IN (SELECT k FROM ref_waits "
                            "WHERE k >= ?1 AND k < ?2 LIMIT ?3)");

/* Deletes up to max of job jid's ref_tails and ref_waits rows: how many. */
static int64_t sweep_refs(struct sq_conn *c, int64_t jid, int64_t max)
{
    int64_t args[] = {KEY(jid, 0), KEY(jid + 1, 0), max};
    int64_t gone = sq_run_i64s(c, &sql_ref_tails_sweep, args, 3);
    if (gone < 0 || gone >= max)
        return gone;
    args[2] = max - gone;
    int64_t more = sq_run_i64s(c, &sql_ref_waits_sweep, args, 3);
    return more < 0 ? more : gone + more;
}

/* Deletes a job's items, claims, step counts, idempotency key, ref order rows and row. */
static int job_remove(void *conn, int64_t jid)
{
    static struct sq_sql *const by_jid[] = {&sql_claims_delete_job, &sql_steps_delete_job,
                                            &sql_idem_delete_job,   &sql_outbox_delete_job,
                                            &sql_dict_delete_job,   &sql_job_delete};
    struct sq_conn *c = conn;
    const int64_t range[] = {KEY(jid, 0), KEY(jid + 1, 0)};
    int64_t changed = sq_run_i64s(c, &sql_items_delete, range, 2);
    if (changed >= 0)
        changed = sq_run_i64s(c, &sql_outcomes_delete, range, 2);
    if (changed >= 0)
        changed = sweep_refs(c, jid, INT64_MAX);
    if (changed >= 0)
        changed = run_by_jid(c, by_jid, sizeof by_jid / sizeof by_jid[0], jid);
    return changed < 0 ? (int)changed : 0;
}

SQ_SQL(sql_idem_get,
       "SELECT jid, body_hash, created_at FROM idem_keys WHERE tenant = ?1 AND key = ?2");

/* The job an idempotency key of tenant names: 1 ([out] *jid) when the request
 * replays, 0 when no key counts (none, or created before m->idem_not_before: the
 * caller's insert replaces it), -SLUICE_E_IDEMPOTENCY_KEY_REUSED when the key covers
 * another request (both hashes known and different). */
static int idem_find(void *conn, const char *tenant, const struct store_job_meta *m, int64_t *jid)
{
    sqlite3_stmt *s;
    int rc = sq_q(conn, &sql_idem_get, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, tenant);
    sq_bind_str(s, 2, m->idem_key);
    rc = sq_step(s);
    if (rc == 1) {
        const char *h = (const char *)sqlite3_column_text(s, 1);
        if (sqlite3_column_int64(s, 2) < m->idem_not_before)
            rc = 0;
        else if (m->body_hash && m->body_hash[0] && h && h[0] && strcmp(h, m->body_hash) != 0)
            rc = -SLUICE_E_IDEMPOTENCY_KEY_REUSED;
        else
            *jid = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    return rc;
}

/* A commit looks its key up first and records it with the commit (idem_insert): one
 * process writes at a time, so nothing can take the key in between. */
static int idem_claim(void *conn, int64_t jid, const char *tenant, const struct store_job_meta *m,
                      int64_t now, int64_t *existing)
{
    (void)jid, (void)now;
    int rc = idem_find(conn, tenant, m, existing);
    return rc < 0 ? rc : 0;
}

/* REPLACE: an aged-out key (see idem_find) passes to the new job */
SQ_SQL(sql_idem_insert, "INSERT OR REPLACE INTO idem_keys(tenant, key, jid, body_hash, created_at) "
                        "SELECT tenant, ?2, jid, coalesce(?3, ''), ?4 FROM jobs WHERE jid = ?1");

/* Records m's idempotency key for job jid. */
static int idem_insert(void *conn, int64_t jid, const struct store_job_meta *m, int64_t now)
{
    sqlite3_stmt *s;
    int rc = sq_q(conn, &sql_idem_insert, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, jid);
    sq_bind_str(s, 2, m->idem_key);
    sq_bind_str(s, 3, m->body_hash);
    sqlite3_bind_int64(s, 4, now);
    rc = sq_step(s);
    return rc < 0 ? rc : 0;
}

SQ_SQL(sql_job_commit, "UPDATE jobs SET status = 1, workflow = ?2, client_reference = ?3, "
                       "total = ?4, pending = ?4, updated_at = ?5, workflow_version = ?6, "
                       "id = coalesce(?7, id), callback_url = ?8, callback_events = ?9, "
                       "priority = ?10, uses = ?11, callback_format = ?12, ref_order = ?13 "
                       "WHERE jid = ?1");

static int job_commit(void *conn, int64_t jid, const struct store_job_meta *m, int64_t total,
                      int64_t now)
{
    sqlite3_stmt *s;
    int rc = sq_q(conn, &sql_job_commit, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, jid);
    sq_bind_str(s, 2, m->workflow ? m->workflow : "");
    sq_bind_str(s, 3, m->client_reference);
    sqlite3_bind_int64(s, 4, total);
    sqlite3_bind_int64(s, 5, now);
    sqlite3_bind_int64(s, 6, m->workflow_version);
    sq_bind_str(s, 7, m->job_id); /* unbound = NULL: keep the staged id */
    sq_bind_str(s, 8, m->callback_url);
    sqlite3_bind_int(
        s, 9, m->callback_url ? (m->callback_events ? m->callback_events : STORE_CB_ALL) : 0);
    sqlite3_bind_int(s, 10, m->priority);
    sq_bind_str(s, 11, m->uses && *m->uses ? m->uses : NULL);
    sqlite3_bind_int(s, 12, m->callback_url ? m->callback_format : 0);
    sqlite3_bind_int(s, 13, m->ref_order);
    if ((rc = sq_step(s)) < 0)
        return rc; /* -SLUICE_E_CONFLICT: m->job_id names another job */
    if (m->idem_key && (rc = idem_insert(conn, jid, m, now)) < 0)
        return rc;
    return 0;
}

/* Ref order across jobs (REF ORDER in store.h): the job's first item of each ref
 * waits for the latest committed item of that ref while it is still pending (CROSS
 * JOIN fixes the plan: the job row, its items by key, their tails and tail items by
 * key), then the job's last item of each ref becomes the latest. */
SQ_SQL(sql_ref_waits_link,
       "INSERT INTO ref_waits(k, prev_k) SELECT i.k, t.k FROM jobs j CROSS JOIN items i "
       "CROSS JOIN ref_tails t CROSS JOIN item_rows p WHERE j.jid = ?1 AND i.k >= ?2 AND i.k < ?3 "
       "AND i.prev_idx = -1 AND t.tenant = j.tenant AND t.workflow = j.workflow "
       "AND t.ref = i.ref AND p.k = t.k AND p.status = 0");
SQ_SQL(sql_ref_tails_set,
       "INSERT INTO ref_tails(tenant, workflow, ref, k) SELECT j.tenant, j.workflow, i.ref, "
       "max(i.k) FROM jobs j CROSS JOIN items i WHERE j.jid = ?1 AND i.k >= ?2 AND i.k < ?3 "
       "GROUP BY i.ref ON CONFLICT(tenant, workflow, ref) DO UPDATE SET k = excluded.k");

/* One writer at a time: the write transaction serializes the commits. */
static int ref_link(void *conn, int64_t jid)
{
    const int64_t args[] = {jid, KEY(jid, 0), KEY(jid + 1, 0)};
    int64_t rc = sq_run_i64s(conn, &sql_ref_waits_link, args, 3);
    if (rc >= 0)
        rc = sq_run_i64s(conn, &sql_ref_tails_set, args, 3);
    return rc < 0 ? (int)rc : 0;
}

SQ_SQL(sql_retry_job_insert,
       "INSERT INTO jobs(id, tenant, workflow, workflow_version, parent_job, client_reference, "
       "status, total, pending, created_at, updated_at, priority, uses, ref_order) "
       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?11, ?7, ?7, ?8, ?8, ?9, ?10, ?12)");

static int retry_insert(void *conn, const struct rules_jobrow *r, const char *new_job_id,
                        int staging, int64_t now, int64_t *jid)
{
    struct sq_conn *c = conn;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_retry_job_insert, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, new_job_id);
    sq_bind_str(s, 2, r->j.tenant);
    sq_bind_str(s, 3, r->j.workflow);
    sqlite3_bind_int64(s, 4, r->j.workflow_version);
    sq_bind_str(s, 5, r->j.id);
    sq_bind_str(s, 6, r->j.client_reference);
    sqlite3_bind_int64(s, 7, r->j.counts.failed);
    sqlite3_bind_int64(s, 8, now);
    sqlite3_bind_int(s, 9, r->j.priority); /* a retry runs at its parent's priority */
    sq_bind_str(s, 10, r->j.uses);         /* ... and consumes the same limits */
    sqlite3_bind_int(s, 11, staging ? JOB_RECEIVING : JOB_NOT_STARTED);
    sqlite3_bind_int(s, 12, r->j.ref_order); /* ... in the same order across jobs */
    if ((rc = sq_step(s)) < 0)
        return rc;
    *jid = sqlite3_last_insert_rowid(c->db);
    return 0;
}

/* The failed items of the parent (key range [?2, ?3), via item_outcomes_failed) become items
 * 0, 1, ... of the new job (key base ?1) in parent order; prev_idx links each to the
 * previous item of the same ref in the new job. */
SQ_SQL(sql_retry_items,
       "INSERT INTO items(k, prev_idx, ref, data, parent_index) "
       "SELECT ?1 + idx, coalesce(lag(idx) OVER (PARTITION BY ref ORDER BY idx), -1), ref, "
       "data, pidx FROM (SELECT row_number() OVER (ORDER BY o.k) - 1 AS idx, ref, data, "
       "o.k - ?2 AS pidx FROM item_outcomes o CROSS JOIN items i WHERE o.status = 3 "
       "AND o.k >= ?2 AND o.k < ?3 AND i.k = o.k) ORDER BY idx");

/* A retry's rows are copies of its parent's, compressed with the parent's dictionary
 * (zdata.c): the retry gets a copy of it. */
SQ_SQL(sql_dict_copy, "INSERT OR IGNORE INTO job_dicts(jid, dict) "
                      "SELECT ?1, dict FROM job_dicts WHERE jid = ?2");

static int64_t copy_dict(void *conn, int64_t jid, int64_t parent, int64_t copied)
{
    if (copied <= 0)
        return copied;
    int64_t rc = sq_run_i64s(conn, &sql_dict_copy, (const int64_t[]){jid, parent}, 2);
    return rc < 0 ? rc : copied;
}

static int64_t retry_items(void *conn, int64_t jid, const struct rules_jobrow *r)
{
    const int64_t args[] = {KEY(jid, 0), KEY(r->jid, 0), KEY(r->jid + 1, 0)};
    return copy_dict(conn, jid, r->jid, sq_run_i64s(conn, &sql_retry_items, args, 3));
}

/* Retry staging (store_job_retry_stage; the body is rules_stage_body): the oldest
 * staging retry, its parent, the last item staged so far (its index and parent index). */
SQ_SQL(sql_stage_pick, "SELECT jid, tenant, parent_job, total FROM jobs INDEXED BY jobs_staging "
                       "WHERE status = 0 AND parent_job <> '' AND updated_at >= 0 AND jid > ?1 "
                       "ORDER BY jid LIMIT 1");

static int stage_pick(void *conn, int64_t after, int64_t *jid, char tenant[STORE_NAME_MAX],
                      char parent[STORE_ID_MAX], int64_t *total, char *job_id)
{
    sqlite3_stmt *s;
    int rc = sq_q(conn, &sql_stage_pick, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, after);
    if ((rc = sq_step(s)) != 1) {
        sqlite3_reset(s);
        return rc; /* 0: nothing staging */
    }
    *jid = sqlite3_column_int64(s, 0);
    sq_col_copy(s, 1, tenant, STORE_NAME_MAX);
    sq_col_copy(s, 2, parent, STORE_ID_MAX);
    *total = sqlite3_column_int64(s, 3);
    sqlite3_reset(s);
    if ((rc = sq_q(conn, &sql_job_by_jid, &s)) < 0) /* the retry's public id, for the caller */
        return rc;
    sqlite3_bind_int64(s, 1, *jid);
    if ((rc = sq_step(s)) == 1)
        sq_col_copy(s, 1, job_id, STORE_ID_MAX);
    sqlite3_reset(s);
    return rc < 0 ? rc : 1;
}

SQ_SQL(sql_stage_last, "SELECT k - ?1, parent_index FROM items WHERE k >= ?1 AND k < ?2 "
                       "ORDER BY k DESC LIMIT 1");

static int stage_last(void *conn, int64_t jid, int64_t *staged, int64_t *pnext)
{
    sqlite3_stmt *s;
    int rc = sq_q(conn, &sql_stage_last, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, KEY(jid, 0));
    sqlite3_bind_int64(s, 2, KEY(jid + 1, 0));
    if ((rc = sq_step(s)) == 1) {
        *staged = sqlite3_column_int64(s, 0) + 1;
        *pnext = sqlite3_column_int64(s, 1) + 1;
    }
    sqlite3_reset(s);
    return rc;
}

SQ_SQL(sql_stage_parent, "SELECT jid FROM jobs WHERE id = ?1 AND tenant = ?2 AND status > 0");

static int stage_parent(void *conn, const char *tenant, const char *parent, int64_t *pjid)
{
    return job_query(conn, &sql_stage_parent, parent, tenant, 0, NULL, pjid);
}

/* The next ?7 failed items of the parent (key range [?2 + ?6, ?3)) become items ?4,
 * ?4 + 1, ... of the retry (key base ?1); prev_idx links each to the previous item
 * of its ref in this batch, or else in earlier batches (retry_refs of job ?5). The
 * LIMIT sits inside, so a batch reads only its own rows. */
SQ_SQL(sql_stage_items,
       "INSERT INTO items(k, prev_idx, ref, data, parent_index) "
       "SELECT ?1 + idx, coalesce(lag(idx) OVER (PARTITION BY ref ORDER BY idx), "
       "(SELECT last_idx FROM retry_refs r WHERE r.jid = ?5 AND r.ref = f.ref), -1), ref, "
       "data, pidx FROM (SELECT ?4 + row_number() OVER (ORDER BY k) - 1 AS idx, ref, data, "
       "k - ?2 AS pidx FROM (SELECT o.k AS k, i.ref AS ref, i.data AS data FROM item_outcomes o "
       "CROSS JOIN items i WHERE o.status = 3 AND o.k >= ?2 + ?6 AND o.k < ?3 AND i.k = o.k "
       "ORDER BY o.k LIMIT ?7)) f ORDER BY idx");

static int64_t stage_items(void *conn, int64_t jid, int64_t pjid, int64_t staged, int64_t pnext,
                           int64_t max)
{
    const int64_t args[] = {KEY(jid, 0), KEY(pjid, 0), KEY(pjid + 1, 0), staged, jid, pnext, max};
    return copy_dict(conn, jid, pjid, sq_run_i64s(conn, &sql_stage_items, args, 7));
}

SQ_SQL(sql_stage_refs,
       "INSERT INTO retry_refs(jid, ref, last_idx) "
       "SELECT ?1, ref, max(k) - ?2 FROM items WHERE k >= ?2 + ?3 AND k < ?2 + ?4 "
       "GROUP BY ref ON CONFLICT(jid, ref) DO UPDATE SET last_idx = excluded.last_idx");

static int stage_refs(void *conn, int64_t jid, int64_t staged, int64_t end)
{
    const int64_t args[] = {jid, KEY(jid, 0), staged, end};
    int64_t rc = sq_run_i64s(conn, &sql_stage_refs, args, 4);
    return rc < 0 ? (int)rc : 0;
}

SQ_SQL(sql_stage_refs_delete, "DELETE FROM retry_refs WHERE jid = ?1 AND ref IN "
                              "(SELECT ref FROM retry_refs WHERE jid = ?1 LIMIT ?2)");

static int64_t stage_forget(void *conn, int64_t jid, int64_t max)
{
    return sq_run_i64s(conn, &sql_stage_refs_delete, (const int64_t[]){jid, max}, 2);
}

/* Staged: NotStarted with as many items as staged (the parent may have gone). */
SQ_SQL(sql_stage_done, "UPDATE jobs SET status = 1, total = ?2, pending = ?2, updated_at = ?3 "
                       "WHERE jid = ?1");

static int stage_done(void *conn, int64_t jid, int64_t staged, int64_t now)
{
    int64_t rc = sq_run_i64s(conn, &sql_stage_done, (const int64_t[]){jid, staged, now}, 3);
    return rc < 0 ? (int)rc : 0;
}

SQ_SQL(sql_gc_select, "SELECT jid FROM jobs WHERE status = 0 AND updated_at < ?1 "
                      "AND (parent_job = '' OR updated_at < 0)");

static int gc_list(void *conn, int64_t older_than, int64_t **jids, size_t *n)
{
    return sq_list_i64s(conn, &sql_gc_select, &older_than, 1, jids, n);
}

/* ---- retention ------------------------------------------------------------------- */

SQ_SQL(sql_sweep_hidden, "SELECT jid FROM jobs WHERE status = 0 AND updated_at < 0 LIMIT 1");
SQ_SQL(sql_sweep_expired, "SELECT jid FROM jobs WHERE status IN (4, 5, 6) AND completed_at < ?1 "
                          "ORDER BY completed_at LIMIT 1");
SQ_SQL(sql_sweep_hide, "UPDATE jobs SET status = 0, updated_at = -1 WHERE jid = ?1");

static int sweep_hidden(void *conn, int64_t *jid)
{
    return job_query(conn, &sql_sweep_hidden, NULL, NULL, -1, NULL, jid);
}

static int sweep_expired(void *conn, int64_t before, int64_t *jid)
{
    return job_query(conn, &sql_sweep_expired, NULL, NULL, before, NULL, jid);
}

static int64_t sweep_hide(void *conn, int64_t jid)
{
    static struct sq_sql *const by_jid[] = {&sql_claims_delete_job, &sql_steps_delete_job,
                                            &sql_idem_delete_job, &sql_outbox_delete_job};
    int64_t rc = run_by_jid(conn, (struct sq_sql *const[]){&sql_sweep_hide}, 1, jid);
    return rc < 0 ? rc : run_by_jid(conn, by_jid, sizeof by_jid / sizeof by_jid[0], jid);
}

SQ_SQL(sql_sweep_keys, "DELETE FROM idem_keys WHERE (tenant, key) IN "
                       "(SELECT tenant, key FROM idem_keys WHERE created_at < ?1 LIMIT ?2)");
SQ_SQL(sql_sweep_items, "DELETE FROM items WHERE k IN "
                        "(SELECT k FROM items WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT ?3)");
/* The outcomes of the items sql_sweep_items is about to delete (a batch counts items). */
SQ_SQL(sql_sweep_outcomes, "DELETE FROM item_outcomes WHERE k >= ?1 AND k <= (SELECT max(k) "
                           "FROM (SELECT k FROM items WHERE k >= ?1 AND k < ?2 ORDER BY k "
                           "LIMIT ?3))");

static int64_t sweep_keys(void *conn, int64_t before, int64_t max)
{
    return sq_run_i64s(conn, &sql_sweep_keys, (const int64_t[]){before, max}, 2);
}

static int64_t sweep_items(void *conn, int64_t jid, int64_t max)
{
    int64_t gone = sweep_refs(conn, jid, max); /* the job's ref order rows go first */
    if (gone < 0 || gone >= max)
        return gone;
    const int64_t args[] = {KEY(jid, 0), KEY(jid + 1, 0), max - gone};
    int64_t items = sq_run_i64s(conn, &sql_sweep_outcomes, args, 3);
    if (items >= 0)
        items = sq_run_i64s(conn, &sql_sweep_items, args, 3);
    return items < 0 ? items : gone + items;
}

static int job_delete_row(void *conn, int64_t jid)
{
    int64_t rc =
        run_by_jid(conn, (struct sq_sql *const[]){&sql_dict_delete_job, &sql_job_delete}, 2, jid);
    return rc < 0 ? (int)rc : 0;
}

/* ---- reading and controlling jobs ------------------------------------------------ */

SQ_SQL(sql_job_list, "SELECT " JOB_COLS " FROM jobs WHERE tenant = ?1 AND status > 0 "
                     "AND (?2 < 0 OR status = ?2) AND jid < ?3 ORDER BY jid DESC LIMIT ?4");

static int job_list(void *conn, struct rules_jobs *x)
{
    struct sq_conn *c = conn;
    sqlite3_stmt *s;
    struct rules_jobrow r;
    int rc = sq_q(c, &sql_job_list, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sqlite3_bind_int(s, 2, x->status);
    sqlite3_bind_int64(s, 3, x->before_seq > 0 ? x->before_seq : INT64_MAX);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)x->limit);
    while (x->n < x->limit && (rc = sq_step(s)) == 1) {
        rules_job_read(&sq_cols, s, c->retention_ms, &r);
        x->list[x->n++] = r.j;
    }
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

/* ---- the steps, for rules.c ------------------------------------------------------ */

static int job_load(void *conn, const char *tenant, const char *job_id, int lock,
                    struct rules_jobrow *r)
{
    (void)lock; /* one writer at a time: the write transaction is the lock */
    return sq_job_load(conn, tenant, job_id, r);
}

const struct rules_jobs_prims sq_jobs = {
    .now = tx_now,
    .job_load = job_load,
    .job_load_visible = sq_job_load_visible,
    .job_load_jid = sq_job_load_jid,
    .job_save = sq_job_save,
    .idem_record = idem_insert,
    RULES_JOBS_STEPS(RULES_STEP), /* the steps named as their members */
};
