/* claims.c - the PostgreSQL backend's claims of work: store_claim (settling expired
 * claims, then a new range, tenant by tenant), store_complete (the item outcomes, their
 * doc ops - batched when they are all upserts - and step tallies), store_release,
 * store_expire_claims and store_stats. The encoding of item events, the doc ops' loop
 * (rules_apply_ops) and filling claims are in rules.c.
 *
 * DESIGN
 * Locks (always taken in this order, so transactions do not deadlock; a deadlock that
 * still happens - two batches upserting the same documents in opposite orders - is
 * a soft error and retried): runnable row -> claim row -> item rows -> documents ->
 * job row -> tenant row. Claims lock a runnable row (SKIP LOCKED: a job being claimed
 * elsewhere is passed over for the next; only when every candidate is busy does a
 * claim wait for one), read the job row without a lock (only claims and cancels,
 * both holding the runnable row, move the cursor or the status away from runnable),
 * and change the counts with relative updates at the end. Completions lock the claim
 * row FOR UPDATE (a takeover in flight makes them wait, then the token no longer
 * matches: LEASE_LOST, nothing written), lock and update the item rows in one
 * statement (unnest of arrays), then update the job counts relatively, so the job row
 * is locked only from that update to COMMIT. The job finishes in the transaction that
 * sees pending = processing = 0 under that lock, so exactly one transaction finishes
 * it and queues its callback.
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres/pg_int.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/xmalloc.h"

#define WIN_MS 5000
#define CLAIM_TRIES 64

/* ids[0..n) as an array parameter of p, built in b. */
static void jid_array(struct pg_params *p, struct buf *b, const int64_t *ids, int n)
{
    pg_arr_begin(b, PG_ELEM_INT8);
    for (int i = 0; i < n; i++)
        pg_arr_i64(b, ids[i]);
    pg_param_arr(p, b);
}

/* ---- claims ---------------------------------------------------------------------- */

static int cmp_claim_item(const void *a, const void *b)
{
    const struct store_claim_item *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The claim item of row i of res, whose columns are idx, attempts, ref, data. */
static void claim_item_read(const PGresult *res, int i, struct store_claim_item *it)
{
    it->index = pg_col_i64(res, i, 0);
    it->attempts = (int)pg_col_i64(res, i, 1);
    it->ref = pg_col_strdup(res, i, 2, NULL);
    it->data = pg_col_strdup(res, i, 3, &it->data_len);
}

/* Applies relative count changes to job jid and finishes it when done (the job row
 * is locked from here to COMMIT). progress: also sets last_progress_at. */
static int job_counts_add(struct conn *c, int64_t jid, int64_t processing, int64_t failed,
                          int64_t canceled, int progress, struct rules_jobrow *out)
{
    struct pg_params p = {0};
    struct rules_jobrow r;
    pg_param_i64(&p, jid);
    pg_param_i64(&p, processing);
    pg_param_i64(&p, failed);
    pg_param_i64(&p, canceled);
    pg_param_i64(&p, c->now);
    pg_param_i64(&p, progress);
    int rc = pg_job_query(c,
                          "UPDATE jobs SET processing = processing + $2, failed = failed + $3, "
                          "canceled = canceled + $4, updated_at = $5, last_progress_at = "
                          "CASE WHEN $6 = 1 THEN $5 ELSE last_progress_at END WHERE jid = $1 "
                          "RETURNING " JOB_COLS,
                          &p, &r);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    rc = progress ? pg_job_finish_if_done(c, &r) : 0;
    if (out && rc >= 0)
        *out = r;
    else
        store_job_release(&r.j);
    return rc;
}

/* Settles a claim whose holder is gone (see sqlite/claims.c): canceled job -> its pending
 * items Canceled; else unless released each counts the lost attempt and fails at
 * max_attempts. Items left are re-leased to out (1); else the claim goes (0). */
static int settle_claim(struct conn *c, const char *node, int64_t claim_id, int64_t jid, int64_t lo,
                        int64_t hi, int released, int max_attempts, int64_t lease_ms,
                        struct store_claim *out)
{
    struct rules_jobrow r;
    PGresult *res = NULL;
    struct store_claim_item *items = NULL;
    size_t n = 0;
    char ts[25], token[STORE_ID_MAX];
    int64_t failed = 0, canceled = 0;
    int rc = pg_job_load_jid(c, jid, &r);
    if (rc < 0)
        return rc;
    clock_fmt_ms(c->now, ts);
    int canceling = r.j.status == JOB_CANCELING || r.j.status == JOB_CANCELED;
    struct pg_params p = {0};
    pg_param_i64(&p, jid);
    pg_param_i64(&p, lo);
    pg_param_i64(&p, hi);
    pg_param_i64(&p, c->now);
    if (canceling) {
        rc = pg_exec(c,
                     "INSERT INTO item_outcomes AS o (jid, idx, status, updated_at) "
                     "SELECT jid, idx, 5, $4 FROM item_rows WHERE jid = $1 AND idx >= $2 "
                     "AND idx < $3 AND status = 0 ON CONFLICT (jid, idx) DO UPDATE "
                     "SET status = 5, updated_at = $4 WHERE o.status = 0",
                     &p, NULL);
        if (rc < 0)
            goto out;
        canceled = rc;
        goto drop;
    }
    if (released) {
        rc = pg_exec(
            c,
            "SELECT idx, attempts, ref, data, status FROM item_rows WHERE jid = $1 AND idx >= $2 "
            "AND idx < $3 AND status = 0 AND $4::bigint > 0 ORDER BY idx",
            &p, &res);
    } else {
        pg_param_str(&p, ts);
        pg_param_i64(&p, max_attempts);
        pg_param_str(&p, sluice_err_code(SLUICE_E_MAX_ATTEMPTS));
        rc = pg_exec(
            c,
            "WITH up AS (INSERT INTO item_outcomes AS o (jid, idx, attempts, updated_at, status, "
            "error_code, error_message, events) SELECT jid, idx, attempts + 1, $4, "
            "CASE WHEN $6 > 0 AND attempts + 1 >= $6 THEN 3 ELSE 0 END, "
            "CASE WHEN $6 > 0 AND attempts + 1 >= $6 THEN $7 ELSE error_code END, "
            "CASE WHEN $6 > 0 AND attempts + 1 >= $6 THEN "
            "format('abandoned after %s attempts', attempts + 1) ELSE error_message END, "
            "(SELECT CASE WHEN events IS NULL OR events = '[]' THEN '[' || e || ']' "
            "ELSE left(events, -1) || ',' || e || ']' END FROM (SELECT format("
            "'{\"at\":\"%s\",\"stage\":\"claim\",\"level\":\"warn\",\"code\":\"LeaseExpired\","
            "\"message\":\"lease expired on attempt %s; item given to another worker\"}', "
            "$5::text, attempts + 1) || CASE WHEN $6 > 0 AND attempts + 1 >= $6 THEN format("
            "',{\"at\":\"%s\",\"stage\":\"claim\",\"level\":\"error\",\"code\":\"%s\","
            "\"message\":\"abandoned after %s attempts\"}', $5::text, $7::text, attempts + 1)"
            " ELSE '' END AS e) ev) "
            "FROM item_rows WHERE jid = $1 AND idx >= $2 AND idx < $3 AND status = 0 "
            "ON CONFLICT (jid, idx) DO UPDATE SET attempts = excluded.attempts, "
            "updated_at = excluded.updated_at, status = excluded.status, "
            "error_code = excluded.error_code, error_message = excluded.error_message, "
            "events = excluded.events WHERE o.status = 0 RETURNING idx, attempts, status) "
            "SELECT up.idx, up.attempts, i.ref, i.data, up.status FROM up JOIN items i "
            "ON i.jid = $1 AND i.idx = up.idx",
            &p, &res);
    }
    if (rc < 0)
        goto out;
    items = xcalloc((size_t)rc + 1, sizeof *items);
    for (int i = 0; i < rc; i++) {
        if (pg_col_i64(res, i, 4) == ITEM_PENDING)
            claim_item_read(res, i, &items[n++]);
        else
            failed++;
    }
    PQclear(res);
    res = NULL;
    if (n > 0 && out) {
        qsort(items, n, sizeof *items, cmp_claim_item);
        if ((rc = ids_random("lt_", 24, token)) < 0)
            goto out;
        struct pg_params q = {0};
        pg_param_i64(&q, claim_id);
        pg_param_str(&q, token);
        pg_param_i64(&q, (int64_t)n);
        pg_param_i64(&q, c->now + lease_ms);
        pg_param_i64(&q, c->now);
        pg_param_str(&q, node);
        rc = pg_exec(
            c,
            "UPDATE claims SET token = $2, remaining = $3, lease_until = $4, claimed_at = $5, "
            "released = 0, node = $6 WHERE claim_id = $1",
            &q, NULL);
        if (rc < 0)
            goto out;
        if (failed > 0 && (rc = job_counts_add(c, jid, -failed, failed, 0, 0, NULL)) < 0)
            goto out;
        rules_claim_fill(out, &r, claim_id, token, lo, hi, c->now, c->now + lease_ms, items, n);
        items = NULL;
        n = 0;
        rc = 1;
        goto out;
    }
    if (n > 0) { /* only reachable without out: keep the claim as is */
        rc = 0;
        goto out;
    }
drop:;
    struct pg_params d = {0};
    pg_param_i64(&d, claim_id);
    if ((rc = pg_exec(c, "DELETE FROM claims WHERE claim_id = $1", &d, NULL)) < 0)
        goto out;
    rc = job_counts_add(c, jid, -(failed + canceled), failed, canceled, 1, NULL);
    if (rc > 0)
        rc = 0;
out:
    PQclear(res);
    rules_claim_items_free(items, n);
    store_job_release(&r.j);
    return rc;
}

/* rules_ref_lookup_fn of this backend. */
static int ref_lookup(void *conn, int64_t jid, int64_t idx, struct rules_ref_item *it)
{
    PGresult *res = NULL;
    struct pg_params p = {0};
    pg_param_i64(&p, jid);
    pg_param_i64(&p, idx);
    memset(it, 0, sizeof *it);
    int rc =
        pg_exec(conn,
                "SELECT i.status, i.prev_idx, w.prev_jid, w.prev_idx, j.cancel_at FROM item_rows i "
                "JOIN jobs j ON j.jid = i.jid LEFT JOIN ref_waits w ON w.jid = i.jid AND "
                "w.idx = i.idx WHERE i.jid = $1 AND i.idx = $2",
                &p, &res);
    if (rc > 0) {
        it->found = 1;
        it->status = (int)pg_col_i64(res, 0, 0);
        it->prev_idx = pg_col_i64(res, 0, 1);
        it->wait_jid = pg_col_i64(res, 0, 2); /* NULL reads 0: no link */
        it->wait_idx = pg_col_i64(res, 0, 3);
        it->cancel_at = pg_col_i64(res, 0, 4);
    }
    PQclear(res);
    return rc < 0 ? rc : 0;
}

/* Inserts the claim of items [lo, hi) of job jid under token: 0 and [out] *claim_id. */
static int claim_insert(struct conn *c, const struct rules_claim_ctx *x, int64_t jid, int64_t lo,
                        int64_t hi, const char *token, int64_t *claim_id)
{
    PGresult *res = NULL;
    struct pg_params q = {0};
    pg_param_str(&q, token);
    pg_param_i64(&q, jid);
    pg_param_i64(&q, lo);
    pg_param_i64(&q, hi);
    pg_param_i64(&q, c->now + x->lease_ms);
    pg_param_i64(&q, c->now);
    pg_param_str(&q, x->node);
    int rc = pg_exec(c,
                     "INSERT INTO claims(token, jid, lo, hi, remaining, lease_until, claimed_at, "
                     "node) VALUES($1, $2, $3, $4, $4::bigint - $3::bigint, $5, $6, $7) "
                     "RETURNING claim_id",
                     &q, &res);
    if (rc > 0)
        *claim_id = pg_col_i64(res, 0, 0);
    PQclear(res);
    return rc < 0 ? rc : 0;
}

/* Parks item idx of job jid (PARKING in sqlite/claims.c). */
static int park(struct conn *c, int64_t jid, int64_t idx)
{
    struct pg_params p = {0};
    pg_param_i64(&p, jid);
    pg_param_i64(&p, idx);
    int rc = pg_exec(c, "UPDATE ref_waits SET parked = 1 WHERE jid = $1 AND idx = $2", &p, NULL);
    return rc < 0 ? rc : 0;
}

/* As in sqlite/claims.c: parked items that may go become released claims of their own
 * (their links stay, for the walk through canceled items).
 * SKIP LOCKED: a parked item another node is unparking right now is its. */
static int unpark(struct conn *c)
{
    PGresult *res = NULL;
    struct pg_params q = {0};
    pg_param_i64(&q, c->unpark_jid);
    pg_param_i64(&q, c->unpark_idx);
    int rc = pg_exec(c,
                     "SELECT jid, idx FROM ref_waits WHERE parked = 1 AND (jid, idx) > ($1, $2) "
                     "ORDER BY jid, idx LIMIT 16 FOR UPDATE SKIP LOCKED",
                     &q, &res);
    c->unpark_jid = rc == 16 ? pg_col_i64(res, 15, 0) : 0; /* the next call goes on after */
    c->unpark_idx = rc == 16 ? pg_col_i64(res, 15, 1) : 0;
    for (int i = 0, rows = rc; rc >= 0 && i < rows; i++) {
        int64_t jid = pg_col_i64(res, i, 0), idx = pg_col_i64(res, i, 1);
        if ((rc = rules_ref_parked_free(c, ref_lookup, jid, idx)) <= 0)
            continue;
        struct pg_params p = {0};
        pg_param_i64(&p, jid);
        pg_param_i64(&p, idx);
        pg_param_i64(&p, c->now);
        rc = pg_exec(c,
                     "WITH d AS (UPDATE ref_waits SET parked = 0 WHERE jid = $1 AND idx = $2) "
                     "INSERT INTO claims(token, jid, lo, hi, remaining, lease_until, claimed_at, "
                     "released, node) VALUES('', $1, $2, $2::bigint + 1, 1, 0, $3, 1, '')",
                     &p, NULL);
    }
    PQclear(res);
    return rc < 0 ? rc : 0;
}

/* A new range from the cursor of job jid, whose runnable row the caller holds:
 * 1 claimed into x->out, 0 nothing runnable in it now. */
static int claim_new_range(struct conn *c, int64_t jid, const struct rules_claim_ctx *x)
{
    struct rules_jobrow r;
    PGresult *res = NULL;
    struct store_claim_item *items = NULL;
    size_t n = 0;
    char token[STORE_ID_MAX];
    int rc = pg_job_load_jid(c, jid, &r);
    if (rc < 0)
        return rc;
    int64_t lo, hi;
    if ((rc = rules_claim_range(&r, x->max_items, &lo, &hi)) == 0)
        goto out;
    struct pg_params p = {0};
    pg_param_i64(&p, jid);
    pg_param_i64(&p, lo);
    pg_param_i64(&p, hi);
    /* Each item with the status of its previous same-ref item when that one lies
     * before the range (-1 otherwise): the range stops before one still pending; and,
     * for a job that orders refs across jobs, its link to an earlier job's item (REF
     * ORDER in store.h; 0, 0 when none). */
#define RANGE_COLS                                                                                 \
    "SELECT i.idx, i.attempts, i.ref, i.data, CASE WHEN i.prev_idx >= 0 AND i.prev_idx < $2 "      \
    "THEN coalesce((SELECT p.status FROM item_outcomes p WHERE p.jid = i.jid "                     \
    "AND p.idx = i.prev_idx), "                                                                    \
    "0) ELSE -1 END, "
#define RANGE_WHERE "WHERE i.jid = $1 AND i.idx >= $2 AND i.idx < $3 ORDER BY i.idx"
    rc = pg_exec(c,
                 r.j.ref_order == STORE_REF_ORDER_TENANT
                     ? RANGE_COLS "w.prev_jid, w.prev_idx, i.prev_idx FROM item_rows i LEFT JOIN "
                                  "ref_waits w ON w.jid = i.jid AND w.idx = i.idx " RANGE_WHERE
                     : RANGE_COLS "0, 0, -1 FROM item_rows i " RANGE_WHERE,
                 &p, &res);
    if (rc < 0)
        goto out;
    int rows = rc;
    int64_t first = lo, parked = 0, claim_id = 0;
    items = xcalloc((size_t)rows + 1, sizeof *items);
    rc = 0;
    for (int i = 0; i < rows && pg_col_i64(res, i, 4) != ITEM_PENDING; i++) {
        int64_t wait_jid = pg_col_i64(res, i, 5), idx = pg_col_i64(res, i, 0);
        if (pg_col_i64(res, i, 7) >= first && pg_col_i64(res, i, 7) < lo)
            break; /* its previous same-ref item was parked just now */
        /* REF ORDER: parked at the start of the range, else the range stops (PARKING
         * in sqlite/claims.c) */
        int blocked =
            wait_jid > 0 ? rules_ref_blocked(c, ref_lookup, wait_jid, pg_col_i64(res, i, 6)) : 0;
        if (blocked > 0 && n == 0 && (blocked = park(c, jid, idx)) == 0) {
            parked++;
            lo = idx + 1;
            continue;
        }
        if (blocked != 0) {
            rc = blocked < 0 ? blocked : 0;
            break;
        }
        claim_item_read(res, i, &items[n++]);
    }
    PQclear(res);
    res = NULL;
    if (rc < 0 || (n > 0 && (rc = rules_claim_take(x->gate, &r, items, &n, lo, &hi, token)) < 0))
        goto out;
    rc = 0;
    if (n == 0) /* no claim; the cursor still passes what was parked */
        hi = lo;
    if (n == 0 && parked == 0)
        goto out;
    if (n > 0 && (rc = claim_insert(c, x, jid, lo, hi, token, &claim_id)) < 0)
        goto out;
    struct pg_params u = {0};
    pg_param_i64(&u, jid);
    pg_param_i64(&u, hi);
    pg_param_i64(&u, (int64_t)n + parked);
    pg_param_i64(&u, claim_id);
    pg_param_i64(&u, c->now);
    rc = pg_exec(c,
                 "UPDATE jobs SET status = CASE WHEN status = 1 THEN 2 ELSE status END, "
                 "started_at = CASE WHEN status = 1 THEN $5 ELSE started_at END, "
                 "win_done = CASE WHEN win_at = 0 THEN 0 ELSE win_done END, "
                 "win_at = CASE WHEN win_at = 0 THEN $5 ELSE win_at END, next_idx = $2, "
                 "pending = pending - $3, processing = processing + $3, "
                 "last_claim = CASE WHEN $4 > 0 THEN $4 ELSE last_claim END, "
                 "updated_at = $5 WHERE jid = $1",
                 &u, NULL);
    if (rc < 0)
        goto out;
    struct pg_params v = {0};
    pg_param_i64(&v, jid);
    pg_param_i64(&v, claim_id);
    rc = pg_exec(c,
                 hi >= r.j.counts.total
                     ? "DELETE FROM runnable WHERE jid = $1 AND $2::bigint >= 0"
                     : "UPDATE runnable SET last_claim = CASE WHEN $2 > 0 THEN $2 ELSE "
                       "last_claim END, started = 1 WHERE jid = $1",
                 &v, NULL);
    if (rc < 0 || n == 0) {
        rc = rc < 0 ? rc : 0;
        goto out;
    }
    if (r.j.status == JOB_NOT_STARTED)
        r.j.status = JOB_RUNNING;
    rules_claim_fill(x->out, &r, claim_id, token, lo, hi, c->now, c->now + x->lease_ms, items, n);
    items = NULL;
    n = 0;
    rc = 1;
out:
    PQclear(res);
    rules_claim_items_free(items, n);
    store_job_release(&r.j);
    return rc;
}

/* Tenant turn (see FAIRNESS in sqlite/claims.c). */
static int tenant_turn(struct conn *c, const char *tenant, int64_t claim_id)
{
    struct pg_params p = {0};
    pg_param_str(&p, tenant);
    pg_param_i64(&p, claim_id);
    int rc = pg_exec(c,
                     "INSERT INTO tenants AS t (tenant, last_claim) VALUES($1, $2) "
                     "ON CONFLICT(tenant) DO UPDATE SET "
                     "turns = CASE WHEN t.turns + 1 >= t.weight THEN 0 ELSE t.turns + 1 END, "
                     "last_claim = CASE WHEN t.turns + 1 >= t.weight THEN $2 ELSE t.last_claim END",
                     &p, NULL);
    return rc < 0 ? rc : 0;
}

/* How many of tenant's jobs are Running or Canceling, or a store error. With `lock`,
 * first takes the tenant's start lock (to the end of the transaction): two claims that
 * would each start one of its jobs then count one after the other, and never both see
 * room under max_active_jobs (each counting before the other's start committed did).
 * It also moves the transaction's time (c->now) to the moment the lock was taken: a
 * job started here is then dated after the end of any job the count no longer saw,
 * whose completedAt is its last transaction's start. */
static int64_t active_jobs(struct conn *c, const char *tenant, int lock)
{
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, tenant);
    int rc;
    if (lock) {
        if ((rc = pg_exec(c,
                          "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint "
                          "FROM pg_advisory_xact_lock(hashtext('sluice.start:' || $1::text))",
                          &p, &r)) < 0)
            return rc;
        int64_t at = pg_col_i64(r, 0, 0);
        PQclear(r);
        if (at > c->now)
            c->now = at;
    }
    if ((rc = pg_exec(c, "SELECT count(*) FROM jobs WHERE tenant = $1 AND status IN (2, 3)", &p,
                      &r)) < 0)
        return rc;
    int64_t n = pg_col_i64(r, 0, 0);
    PQclear(r);
    return n;
}

static int claim_body(struct conn *c, void *vctx)
{
    struct rules_claim_ctx *x = vctx;
    PGresult *r = NULL;
    int rc;
    memset(x->out, 0, sizeof *x->out);

    /* 0. Parked items that may go become released claims, taken over next. */
    if ((rc = unpark(c)) < 0)
        return rc;
    /* 1. Expired (or released) claims first; SKIP LOCKED: one another node settles
     *    or completes right now is not ours to take. */
    int settled = 0;
    for (int guard = 0; guard < 256; guard++, settled++) {
        struct pg_params p = {0};
        pg_param_i64(&p, c->now);
        rc = pg_exec(c,
                     "SELECT claim_id, jid, lo, hi, released FROM claims WHERE lease_until <= $1 "
                     "ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED",
                     &p, &r);
        if (rc <= 0)
            break;
        int64_t claim_id = pg_col_i64(r, 0, 0), jid = pg_col_i64(r, 0, 1), lo = pg_col_i64(r, 0, 2),
                hi = pg_col_i64(r, 0, 3);
        int released = (int)pg_col_i64(r, 0, 4);
        PQclear(r);
        r = NULL;
        rc = settle_claim(c, x->node, claim_id, jid, lo, hi, released, x->max_attempts, x->lease_ms,
                          x->out);
        if (rc != 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    PQclear(r);
    r = NULL;

    /* 2. A new range: the tenant, then its job (see FAIRNESS in sqlite/claims.c). */
    char tenants[16][STORE_NAME_MAX];
    int ntenants = 0, tries = 0;
    rc = pg_exec(
        c,
        "SELECT rt.tenant FROM (SELECT DISTINCT tenant FROM runnable) rt LEFT JOIN tenants t "
        "ON t.tenant = rt.tenant ORDER BY coalesce(t.last_claim, 0), rt.tenant LIMIT 16",
        NULL, &r);
    if (rc < 0)
        return rc;
    for (int i = 0; i < rc && i < 16; i++)
        pg_col_copy(r, i, 0, tenants[ntenants++], STORE_NAME_MAX);
    PQclear(r);
    r = NULL;
    int64_t tried[CLAIM_TRIES];
    int ntried = 0;
    /* Each tenant's cap as the first pass found it, kept for the second: a job that
     * ended meanwhile must not let this claim start the next one, whose start would
     * then be dated (this transaction's start) before that end. */
    signed char capped[16];
    memset(capped, -1, sizeof capped);
    for (int wait = 0; wait < 2; wait++) {
        for (int t = 0; t < ntenants && tries < CLAIM_TRIES; t++) {
            int at_cap = capped[t] > 0;
            if (x->max_active_jobs > 0 && capped[t] < 0) {
                int64_t active = active_jobs(c, tenants[t], 0);
                if (active < 0)
                    return (int)active;
                at_cap = active >= x->max_active_jobs;
                capped[t] = (signed char)at_cap;
            }
            /* First pass: the best job nobody is claiming from (SKIP LOCKED). Second
             * pass, only when a candidate was busy: wait for the best one. */
            for (; tries < CLAIM_TRIES; tries++) {
                struct pg_params p = {0};
                pg_param_str(&p, tenants[t]);
                pg_param_i64(&p, at_cap);
                jid_array(&p, &c->arr[0], tried, ntried);
                rc = pg_exec(
                    c,
                    wait ? "SELECT jid, started FROM runnable WHERE tenant = $1 AND ($2 = 0 OR "
                           "started = 1) AND jid <> ALL($3::bigint[]) ORDER BY priority DESC, "
                           "last_claim, jid LIMIT 1 FOR UPDATE"
                         : "SELECT jid, started FROM runnable WHERE tenant = $1 AND ($2 = 0 OR "
                           "started = 1) AND jid <> ALL($3::bigint[]) ORDER BY priority DESC, "
                           "last_claim, jid LIMIT 1 FOR UPDATE SKIP LOCKED",
                    &p, &r);
                if (rc < 0)
                    return rc;
                int64_t jid = rc > 0 ? pg_col_i64(r, 0, 0) : 0;
                int started = rc > 0 && pg_col_i64(r, 0, 1) != 0;
                PQclear(r);
                r = NULL;
                if (rc == 0)
                    break;
                tried[ntried++] = jid;
                if (x->max_active_jobs > 0 && !started) {
                    /* Starting a job: counted again under the tenant's start lock. */
                    int64_t active = active_jobs(c, tenants[t], 1);
                    if (active < 0)
                        return (int)active;
                    if (active >= x->max_active_jobs) {
                        at_cap = 1; /* another claim started one meanwhile */
                        capped[t] = 1;
                        continue;
                    }
                }
                rc = claim_new_range(c, jid, x);
                if (rc < 0)
                    return rc;
                if (rc == 0) {
                    if (wait)
                        break; /* waited once; the next poll tries again */
                    continue;
                }
                rc = tenant_turn(c, tenants[t], x->out->claim_id);
                return rc < 0 ? rc : 1;
            }
        }
        /* No waiting while this transaction holds job rows of settled claims: the
         * holder of the runnable row may be waiting for one of them. */
        if (wait || tries >= CLAIM_TRIES || settled)
            break;
        /* Was a job passed over because another claim held it? Not only a started one:
         * a job's first claim marks it started inside its own transaction, so a job
         * that a worker (or a node woken by the same NOTIFY) is claiming for the first
         * time looks unstarted here; skipping the wait then left the rest of a fresh
         * job to one worker until the next poll (200 ms). */
        struct pg_params p = {0};
        jid_array(&p, &c->arr[0], tried, ntried);
        rc = pg_exec(c, "SELECT 1 FROM runnable WHERE jid <> ALL($1::bigint[]) LIMIT 1", &p, NULL);
        if (rc <= 0)
            return rc;
    }
    return 0;
}

int pg_claim(void *impl, const struct store_claim_opts *o, struct store_claim *out)
{
    struct rules_claim_ctx x;
    rules_claim_args(&x, o, out);
    x.node = ((struct pg *)impl)->node;
    return pg_run_tx(impl, claim_body, rules_claim_undo, &x);
}

/* The claim's row, locked, if cl's token still holds it, and its job
 * (rules_claims_prims): 1, -SLUICE_E_LEASE_LOST when taken over, or an error. */
static int claim_check(void *conn, const struct store_claim *cl, struct rules_held *h,
                       struct rules_jobrow *r)
{
    struct conn *c = conn;
    struct pg_params p = {0};
    PGresult *res;
    pg_param_i64(&p, cl->claim_id);
    pg_param_str(&p, cl->token);
    int rc = pg_exec(c,
                     "SELECT jid, lo, hi, remaining FROM claims WHERE claim_id = $1 AND token = $2 "
                     "AND token <> '' FOR UPDATE",
                     &p, &res);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_LEASE_LOST;
    h->jid = pg_col_i64(res, 0, 0);
    h->lo = pg_col_i64(res, 0, 1);
    h->hi = pg_col_i64(res, 0, 2);
    h->remaining = pg_col_i64(res, 0, 3);
    PQclear(res);
    return pg_job_load_jid(c, h->jid, r);
}

/* One document op of a batch (batch_upserts). */
struct bop {
    struct store_doc_op *op;
    const char *coll, *ref, *data;
    size_t data_len;
    int64_t index;
};

static int cmp_bop(const void *a, const void *b)
{
    const struct bop *x = a, *y = b;
    int d = strcmp(x->coll, y->coll);
    return d ? d : strcmp(x->ref, y->ref);
}

/* 1 when none of the documents of tenant named by the arrays of collections and
 * refs exists (not even deleted), 0 when one does, or a store error. One index probe
 * per name: the LATERAL ... LIMIT keeps the planner from a hash join, which would
 * read all of a tenant's documents whenever its statistics say it has few. */
static int none_exist(struct conn *c, const char *tenant, struct buf *colls, struct buf *refs)
{
    struct pg_params p = {0};
    pg_param_str(&p, tenant);
    pg_param_arr(&p, colls);
    pg_param_arr(&p, refs);
    int rc = pg_exec(c,
                     "SELECT 1 FROM unnest($2::text[], $3::text[]) AS u(coll, ref), LATERAL "
                     "(SELECT 1 FROM docs d WHERE d.tenant = $1 AND d.collection = u.coll "
                     "AND d.ref = u.ref LIMIT 1) AS hit LIMIT 1",
                     &p, NULL);
    return rc < 0 ? rc : rc == 0;
}

/* The fast path of store_complete's doc ops: when every op of the items this call
 * finishes is an upsert with data, each of a different document, they are applied by
 * one INSERT over arrays (a plain one when none of the documents exists yet, else
 * ... ON CONFLICT), in (collection, ref) order so that batches running at once on
 * several nodes lock documents in the same order. Fills each op's
 * version and created. 1 applied, 0 not eligible (nothing done: the caller applies
 * the ops one by one), or a store error. */
static int batch_upserts(struct conn *c, const struct rules_jobrow *r, const struct store_claim *cl,
                         struct store_outcome *outs, size_t n, int64_t lo, int64_t hi,
                         const int64_t *pending, size_t npending)
{
    struct bop *b = NULL;
    size_t nb = 0, cap = 0;
    PGresult *res = NULL;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct store_outcome *o = &outs[i];
        const struct store_claim_item *ci = rules_claim_find(cl, o->index);
        if (!ci || o->index < lo || o->index >= hi ||
            !bsearch(&o->index, pending, npending, sizeof *pending, rules_cmp_i64))
            continue;
        for (size_t j = 0; j < o->nops; j++) {
            struct store_doc_op *op = &o->ops[j];
            const char *data = op->data ? op->data : ci->data;
            if (op->op != STORE_OP_UPSERT || !data)
                goto out; /* not eligible */
            if (nb == cap) {
                cap = cap ? cap * 2 : 256;
                b = xrealloc(b, cap * sizeof *b);
            }
            b[nb++] = (struct bop){
                op,   op->collection ? op->collection : "",   op->ref ? op->ref : ci->ref,
                data, op->data ? op->data_len : ci->data_len, o->index};
        }
    }
    if (nb < 2)
        goto out;
    qsort(b, nb, sizeof *b, cmp_bop);
    for (size_t i = 1; i < nb; i++)
        if (cmp_bop(&b[i - 1], &b[i]) == 0)
            goto out; /* one document twice: the ops must apply in order, one by one */
    struct buf *ac = &c->arr[1], *ar = &c->arr[2], *ad = &c->arr[3], *ai = &c->arr[4];
    pg_arr_begin(ac, PG_ELEM_TEXT);
    pg_arr_begin(ar, PG_ELEM_TEXT);
    pg_arr_begin(ad, PG_ELEM_TEXT);
    pg_arr_begin(ai, PG_ELEM_INT8);
    for (size_t i = 0; i < nb; i++) {
        pg_arr_str(ac, b[i].coll);
        pg_arr_str(ar, b[i].ref);
        pg_arr_strn(ad, b[i].data, b[i].data_len);
        pg_arr_i64(ai, b[i].index);
    }
    struct pg_params p = {0};
    pg_param_str(&p, r->j.tenant);
    pg_param_i64(&p, c->now);
    pg_param_str(&p, r->j.id);
    pg_param_arr(&p, ac);
    pg_param_arr(&p, ar);
    pg_param_arr(&p, ad);
    pg_param_arr(&p, ai);
    if ((rc = none_exist(c, r->j.tenant, ac, ar)) < 0)
        goto out;
    if (rc == 1) {
        /* A plain INSERT costs a quarter less per row than ON CONFLICT's speculative
         * insertion. A writer that created one of the documents since the check makes
         * it fail on the key: the transaction is then run again, and the check sees
         * that document. */
        rc = pg_exec(c,
                     "INSERT INTO docs (tenant, collection, ref, data, version, deleted, "
                     "prev_deleted, updated_at, job_id, item_index) SELECT $1, u.coll, u.ref, "
                     "u.data, 1, 0, 1, $2, $3, u.idx FROM unnest($4::text[], $5::text[], "
                     "$6::text[], $7::bigint[]) WITH ORDINALITY AS u(coll, ref, data, idx, ord) "
                     "ORDER BY u.ord",
                     &p, NULL);
        if (rc < 0) {
            rc = rc == -SLUICE_E_CONFLICT ? E_SOFT : rc;
            goto out;
        }
        if ((size_t)rc != nb) {
            rc = -SLUICE_E_INTERNAL;
            goto out;
        }
        for (size_t i = 0; i < nb; i++) {
            b[i].op->version = 1;
            b[i].op->created = 1;
        }
        rc = 1;
        goto out;
    }
    rc = pg_exec(
        c,
        "INSERT INTO docs AS d (tenant, collection, ref, data, version, deleted, prev_deleted, "
        "updated_at, job_id, item_index) SELECT $1, u.coll, u.ref, u.data, 1, 0, 1, $2, $3, "
        "u.idx FROM unnest($4::text[], $5::text[], $6::text[], $7::bigint[]) WITH ORDINALITY "
        "AS u(coll, ref, data, idx, ord) ORDER BY u.ord "
        "ON CONFLICT (tenant, collection, ref) DO UPDATE SET data = excluded.data, "
        "version = d.version + 1, deleted = 0, prev_deleted = d.deleted, "
        "updated_at = excluded.updated_at, job_id = excluded.job_id, "
        "item_index = excluded.item_index RETURNING collection, ref, version, prev_deleted",
        &p, &res);
    if (rc < 0)
        goto out;
    if ((size_t)rc != nb) {
        rc = -SLUICE_E_INTERNAL;
        goto out;
    }
    for (int i = 0; i < (int)nb; i++) {
        struct bop key = {.coll = PQgetvalue(res, i, 0), .ref = PQgetvalue(res, i, 1)};
        struct bop *hit = bsearch(&key, b, nb, sizeof *b, cmp_bop);
        if (!hit) {
            rc = -SLUICE_E_INTERNAL;
            goto out;
        }
        hit->op->version = pg_col_i64(res, i, 2);
        hit->op->created = pg_col_i64(res, i, 3) != 0;
    }
    rc = 1;
out:
    PQclear(res);
    free(b);
    return rc;
}

/* The events and result of an outcome whose ops batch_upserts applied. */
static void batched_ops_events(struct conn *c, const struct store_claim_item *ci,
                               const struct store_outcome *o, char *msg, size_t cap)
{
    for (size_t j = 0; j < o->nops; j++)
        rules_op_written(&c->ev, &c->res, c->now, ci, &o->ops[j], j + 1 == o->nops, msg, cap);
}

static int steps_add(struct conn *c, int64_t jid, const struct store_step_count *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!steps[i].step)
            continue;
        struct pg_params p = {0};
        pg_param_i64(&p, jid);
        pg_param_str(&p, steps[i].step);
        pg_param_i64(&p, steps[i].passed);
        pg_param_i64(&p, steps[i].failed);
        pg_param_i64(&p, steps[i].skipped);
        int rc =
            pg_exec(c,
                    "INSERT INTO job_steps AS s (jid, step, passed, failed, skipped) "
                    "VALUES($1, $2, $3, $4, $5) ON CONFLICT(jid, step) DO UPDATE SET "
                    "passed = s.passed + excluded.passed, failed = s.failed + excluded.failed, "
                    "skipped = s.skipped + excluded.skipped",
                    &p, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* complete_body's statement for the outcomes of one call: OUTCOMES_INSERT alone when
 * the claim's items have no outcome row yet, else with OUTCOMES_UPSERT (a retried item
 * has one: its events are appended, its attempts counted). */
#define OUTCOMES_INSERT                                                                            \
    "INSERT INTO item_outcomes AS o (jid, idx, status, attempts, result, error_code, "             \
    "error_message, events, updated_at, failed_step, warnings) SELECT $1, u.idx, u.st, 1, "        \
    "u.res, u.code, u.msg, u.ev, $2, u.fs, u.w FROM unnest($3::bigint[], $4::bigint[], "           \
    "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) "                    \
    "AS u(idx, st, res, code, msg, ev, fs, w) WHERE u.idx >= $11 AND u.idx < $12 "
#define OUTCOMES_UPSERT                                                                            \
    "ON CONFLICT (jid, idx) DO UPDATE SET status = excluded.status, "                              \
    "attempts = o.attempts + 1, result = excluded.result, error_code = excluded.error_code, "      \
    "error_message = excluded.error_message, events = CASE WHEN excluded.events IS NULL "          \
    "THEN o.events WHEN o.events IS NULL OR o.events = '[]' THEN excluded.events "                 \
    "ELSE left(o.events, -1) || ',' || substr(excluded.events, 2) END, "                           \
    "updated_at = excluded.updated_at, failed_step = excluded.failed_step, "                       \
    "warnings = excluded.warnings WHERE o.status = 0"

static int complete_body(struct conn *c, void *vctx)
{
    struct rules_claim_ctx *x = vctx;
    const struct store_claim *cl = x->c;
    struct rules_jobrow r;
    PGresult *res = NULL;
    struct rules_held h;
    struct rules_outcomes w;
    struct store_outcome *o;
    const struct store_claim_item *ci;
    int64_t done = 0;
    struct store_counts ended = {0}; /* succeeded, failed, skipped by this call */
    int64_t *pending = NULL;
    size_t npending = 0;
    char *taken = NULL; /* taken[i]: pending[i]'s outcome is in this call's arrays */
    char msg[STORE_NAME_MAX + 2 * 256 + 64];
    memset(&r, 0, sizeof r);
    rules_outcomes_reset(x->outs, x->n);
    int rc = claim_check(c, cl, &h, &r);
    if (rc < 0)
        return rc;
    const struct rules_apply ap = {pg_doc_apply, c, &c->ev, &c->res, c->max_doc_bytes, c->now};
    /* The items this call reports that are still pending: those of the claim without
     * an outcome row that ended them. The claim's outcome rows are read by its range
     * (no rows at all on a first attempt), which costs less than probing every item.
     * No row lock: every writer of a claim's items holds its claim row (claim_check
     * above, settling), and the outcome insert below changes only rows still pending.
     * When none of the claim's items has an outcome row yet, that insert needs no
     * ON CONFLICT (a speculative insertion costs two-thirds more per row). */
    struct pg_params p = {0};
    pg_param_i64(&p, h.jid);
    pg_param_i64(&p, h.lo);
    pg_param_i64(&p, h.hi);
    rc = pg_exec(c,
                 "SELECT idx, status FROM item_outcomes WHERE jid = $1 AND idx >= $2 "
                 "AND idx < $3 ORDER BY idx",
                 &p, &res);
    if (rc < 0)
        goto out;
    int fresh = rc == 0; /* no outcome row in the claim's range */
    int64_t *ended_idx = xcalloc((size_t)rc + 1, sizeof *ended_idx);
    size_t nended = 0;
    for (int i = 0; i < rc; i++)
        if (pg_col_i64(res, i, 1) != 0)
            ended_idx[nended++] = pg_col_i64(res, i, 0);
    PQclear(res);
    res = NULL;
    pending = xcalloc(x->n + 1, sizeof *pending);
    for (size_t i = 0; i < x->n; i++) {
        int64_t idx = x->outs[i].index;
        if (idx >= h.lo && idx < h.hi && rules_claim_find(cl, idx) &&
            !bsearch(&idx, ended_idx, nended, sizeof *ended_idx, rules_cmp_i64))
            pending[npending++] = idx;
    }
    free(ended_idx);
    qsort(pending, npending, sizeof *pending, rules_cmp_i64);
    size_t uniq = 0; /* an index reported twice: once here; its first outcome wins */
    for (size_t i = 0; i < npending; i++)
        if (uniq == 0 || pending[i] != pending[uniq - 1])
            pending[uniq++] = pending[i];
    npending = uniq;
    taken = xcalloc(npending + 1, 1);
    /* Duplicate indexes in outs: the first wins (see below), so no batch. */
    int batched = 0;
    {
        int dup = 0;
        int64_t *seen = xcalloc(x->n + 1, sizeof *seen);
        for (size_t i = 0; i < x->n; i++)
            seen[i] = x->outs[i].index;
        qsort(seen, x->n, sizeof *seen, rules_cmp_i64);
        for (size_t i = 1; i < x->n; i++)
            dup |= seen[i] == seen[i - 1];
        free(seen);
        if (!dup &&
            (rc = batch_upserts(c, &r, cl, x->outs, x->n, h.lo, h.hi, pending, npending)) < 0)
            goto out;
        batched = !dup && rc == 1;
    }
    struct buf *ai = &c->arr[1], *as = &c->arr[2], *ar = &c->arr[3], *ac = &c->arr[4],
               *am = &c->arr[5], *ae = &c->arr[6], *af = &c->arr[7], *aw = &c->arr[8];
    pg_arr_begin(ai, PG_ELEM_INT8);
    pg_arr_begin(as, PG_ELEM_INT8);
    pg_arr_begin(ar, PG_ELEM_TEXT);
    pg_arr_begin(ac, PG_ELEM_TEXT);
    pg_arr_begin(am, PG_ELEM_TEXT);
    pg_arr_begin(ae, PG_ELEM_TEXT);
    pg_arr_begin(af, PG_ELEM_TEXT);
    pg_arr_begin(aw, PG_ELEM_TEXT);
    rules_outcomes_start(&w, x, &h, &c->ev);
    while ((rc = rules_outcome_next(&w, &o, &ci)) > 0) {
        struct rules_item_end e;
        int ops_rc = -1;
        int64_t *slot = bsearch(&o->index, pending, npending, sizeof *pending, rules_cmp_i64);
        if (!slot || taken[slot - pending])
            continue; /* finished by an earlier call, or twice in this one */
        taken[slot - pending] = 1;
        if (o->nops > 0 && batched) {
            batched_ops_events(c, ci, o, msg, sizeof msg);
            ops_rc = 0;
        } else if (o->nops > 0) {
            if ((rc = ops_rc = rules_apply_ops(&ap, &r, ci, o, msg, sizeof msg)) < 0)
                goto out;
        }
        rules_outcome_end(&w, o, ops_rc, buf_cstr(&c->res), msg, &e);
        pg_arr_i64(ai, o->index);
        pg_arr_i64(as, e.status);
        pg_arr_str(ar, e.result);
        pg_arr_str(ac, e.code && *e.code ? e.code : NULL);
        pg_arr_str(am, e.message);
        pg_arr_str(ae, c->ev.len > 2 ? buf_cstr(&c->ev) : NULL);
        pg_arr_str(af, e.failed_step && *e.failed_step ? e.failed_step : NULL);
        pg_arr_str(aw, o->warnings);
        done++;
        rules_count_end(&ended, e.status);
    }
    if (rc < 0)
        goto out;
    if (done == 0)
        goto out; /* a repeated call: its step tallies were counted the first time */
    struct pg_params u = {0};
    pg_param_i64(&u, h.jid);
    pg_param_i64(&u, c->now);
    pg_param_arr(&u, ai);
    pg_param_arr(&u, as);
    pg_param_arr(&u, ar);
    pg_param_arr(&u, ac);
    pg_param_arr(&u, am);
    pg_param_arr(&u, ae);
    pg_param_arr(&u, af);
    pg_param_arr(&u, aw);
    pg_param_i64(&u, h.lo);
    pg_param_i64(&u, h.hi);
    /* The range bounds keep the plan an index range scan of at most one claim's rows
     * even when the table's statistics are stale (a job just inserted). */
    rc = pg_exec(c, fresh ? OUTCOMES_INSERT : OUTCOMES_INSERT OUTCOMES_UPSERT, &u, NULL);
    if (rc < 0)
        goto out;
    if (rc != done) {
        rc = -SLUICE_E_INTERNAL;
        goto out;
    }
    store_job_release(&r.j);
    struct pg_params j = {0};
    pg_param_i64(&j, h.jid);
    pg_param_i64(&j, ended.succeeded);
    pg_param_i64(&j, ended.failed);
    pg_param_i64(&j, ended.skipped);
    pg_param_i64(&j, done);
    pg_param_i64(&j, c->now);
    pg_param_i64(&j, WIN_MS);
    rc = pg_job_query(c,
                      "UPDATE jobs SET succeeded = succeeded + $2, failed = failed + $3, "
                      "skipped = skipped + $4, processing = processing - $5, "
                      "last_progress_at = $6, updated_at = $6, "
                      "win_done = CASE WHEN $6 - win_at >= $7 THEN succeeded + failed + skipped "
                      "+ $5 ELSE win_done END, "
                      "win_at = CASE WHEN $6 - win_at >= $7 THEN $6 ELSE win_at END "
                      "WHERE jid = $1 RETURNING " JOB_COLS,
                      &j, &r);
    if (rc <= 0) {
        rc = rc < 0 ? rc : -SLUICE_E_INTERNAL;
        goto out;
    }
    if ((rc = pg_job_finish_if_done(c, &r)) < 0)
        goto out;
    if ((rc = steps_add(c, h.jid, x->steps, x->nsteps)) < 0)
        goto out;
    h.remaining -= done;
    struct pg_params k = {0};
    pg_param_i64(&k, cl->claim_id);
    pg_param_i64(&k, h.remaining);
    rc = pg_exec(c,
                 h.remaining <= 0 ? "DELETE FROM claims WHERE claim_id = $1 AND $2::bigint <= 0"
                                  : "UPDATE claims SET remaining = $2 WHERE claim_id = $1",
                 &k, NULL);
    if (rc > 0)
        rc = 0;
out:
    PQclear(res);
    free(pending);
    free(taken);
    store_job_release(&r.j);
    return rc;
}

int pg_complete(void *impl, const struct store_claim *c, struct store_outcome *outs, size_t n,
                const struct store_step_count *steps, size_t nsteps)
{
    struct rules_claim_ctx x;
    rules_complete_args(&x, c, outs, n, steps, nsteps);
    return rules_complete_done(&x, pg_run_tx(impl, complete_body, rules_complete_undo, &x));
}

static int settle_released(void *conn, const struct rules_claim_ctx *x, const struct rules_held *h)
{
    return settle_claim(conn, x->node, x->c->claim_id, h->jid, h->lo, h->hi, 1, 0, 0, NULL);
}

static int give_back(void *conn, const struct store_claim *cl, const struct rules_held *h)
{
    struct conn *c = conn;
    struct pg_params p = {0};
    (void)h;
    pg_param_i64(&p, cl->claim_id);
    pg_param_i64(&p, c->now);
    int rc = pg_exec(c,
                     "UPDATE claims SET token = '', lease_until = 0, claimed_at = $2, released = 1 "
                     "WHERE claim_id = $1",
                     &p, NULL);
    if (rc < 0)
        return rc;
    return pg_notify_work(c); /* the items are runnable again: wake a node */
}

static const struct rules_claims_prims pg_claims = {
    .claim_check = claim_check, .settle_released = settle_released, .give_back = give_back};

static int release_body(struct conn *c, void *vctx)
{
    return rules_release_body(&pg_claims, c, vctx);
}

int pg_release(void *impl, const struct store_claim *c)
{
    struct rules_claim_ctx x = {.node = ((struct pg *)impl)->node, .c = c};
    return pg_run_tx(impl, release_body, NULL, &x);
}

/* ---- stats ----------------------------------------------------------------------- */

static int stats_body(struct conn *c, void *vctx)
{
    struct store_stats *st = vctx;
    PGresult *r;
    memset(st, 0, sizeof *st);
    int rc =
        pg_exec(c,
                "SELECT status, count(*), coalesce(sum(pending), 0), coalesce(sum(processing), 0) "
                "FROM jobs GROUP BY status",
                NULL, &r);
    if (rc < 0)
        return rc;
    for (int i = 0; i < rc; i++) {
        int status = (int)pg_col_i64(r, i, 0);
        if (status >= 0 && status < 7)
            st->jobs_by_status[status] = pg_col_i64(r, i, 1);
        st->items_pending += pg_col_i64(r, i, 2);
        st->items_processing += pg_col_i64(r, i, 3);
    }
    PQclear(r);
    struct pg_params p = {0};
    pg_param_i64(&p, c->now);
    if ((rc = pg_exec(c, "SELECT count(*) FROM claims WHERE lease_until > $1", &p, &r)) < 0)
        return rc;
    st->claims_active = pg_col_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

int pg_stats(void *impl, struct store_stats *out)
{
    return pg_run_tx(impl, stats_body, NULL, out);
}

static int claims_expire_body(struct conn *c, void *ctx)
{
    (void)ctx;
    int n = pg_exec(c, "UPDATE claims SET lease_until = 0 WHERE lease_until > 0", NULL, NULL);
    if (n < 0)
        return n;
    int rc = pg_exec(
        c, "UPDATE outbox SET lease_until = 0, token = '' WHERE state = 0 AND lease_until > 0",
        NULL, NULL);
    if (rc >= 0)
        rc = pg_exec(c, "DELETE FROM sems", NULL, NULL); /* every node's concurrency units */
    return rc < 0 ? rc : n;
}

int pg_expire_claims(void *impl)
{
    return pg_run_tx(impl, claims_expire_body, NULL, NULL);
}
