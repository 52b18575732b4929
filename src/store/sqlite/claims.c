/* claims.c - the work queue of the embedded backend: claiming ranges of items
 * (FAIRNESS below), completing them (with their doc ops and step counts), releasing
 * and settling claims, expiring them at start-up, and the store's stats. The encoding
 * of item events, the doc ops' loop (rules_apply_ops) and filling claims are in
 * rules.c.
 *
 * DESIGN
 * FAIRNESS (store_claim, after expired claims): first the tenant, then its job.
 *   tenant   among tenants with a runnable job, the one whose last round ended
 *            longest ago (tenants.last_claim, absent = 0; ties by name). Each new
 *            range counts a turn; the turn that reaches the weight ends the round
 *            (turns = 0, last_claim = the claim id), so a tenant of weight w takes w
 *            claims in a row per round.
 *   job      within the tenant, the highest priority, then the job claimed from least
 *            recently (jobs.last_claim), then the oldest.
 *   The runnable tenants are found by skipping through the partial index jobs_ready
 *   (tenant, priority DESC, last_claim, jid) one tenant at a time - O(T log n) for T
 *   tenants with runnable jobs - and the same index orders the tenant's jobs. The
 *   tenants row changes in the claim's transaction. A job whose next item waits for
 *   an in-flight same-ref item yields no range; the next job (or tenant) is tried,
 *   at most CLAIM_TRIES in all.
 *
 * PARKING (REF ORDER in store.h): an item of a job that orders refs across jobs and
 *   must wait for an earlier job's item does not hold up the rest of its job. Met at
 *   the start of a new range, it is parked: its ref_waits row is marked, the cursor
 *   passes it (it counts and shows as Processing from then on) and the range goes on
 *   after it; met later, the range stops before it, and the next claim parks it. An
 *   item whose previous same-ref item was parked stops the range as usual. Each
 *   store_claim first looks at up to 16 parked items (in key order, going on where
 *   the connection's last call stopped, so every parked item is looked at within a
 *   few calls however many wait): one whose
 *   wait is over, or whose job is being canceled, becomes a released claim of its
 *   own, which the takeover of released claims right after leases (or settles
 *   Canceled), so the parked item needs no path of its own.
 *
 * Doc ops: store_complete applies an outcome's ops in order inside the batch's one
 * transaction. When an op cannot apply (DocumentNotFound, InvalidData), the item
 * fails there and later ops are skipped, but the ops before it stay applied: the
 * transaction covers the whole batch, not one item, and this matches how steps that
 * ran before a failing step keep their effects (an HTTP call cannot be undone
 * either). A retry of the item then re-applies them; upserts and patches are
 * idempotent for the same input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sqlite_int.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/xmalloc.h"

#define WIN_MS 5000
#define CLAIM_TRIES 64 /* runnable jobs tried by one store_claim (see FAIRNESS) */

/* ---- expiry at start-up ---------------------------------------------------------- */

SQ_SQL(sql_claims_expire, "UPDATE claims SET lease_until = 0 WHERE lease_until > 0");
SQ_SQL(sql_outbox_expire, "UPDATE outbox SET lease_until = 0, token = '' "
                          "WHERE state = 0 AND lease_until > 0");
SQ_SQL(sql_sems_clear, "DELETE FROM sems");

static int claims_expire_body(struct sq_conn *c, void *ctx)
{
    (void)ctx;
    int rc = sq_exec(c, &sql_claims_expire);
    if (rc < 0)
        return rc;
    int n = sqlite3_changes(c->db);
    rc = sq_exec(c, &sql_outbox_expire); /* leased deliveries: due again at once */
    if (rc >= 0)
        rc = sq_exec(c, &sql_sems_clear); /* concurrency units the dead process held */
    return rc < 0 ? rc : n;
}

int sq_expire_claims(void *impl)
{
    return sq_run_tx(impl, TX_WRITE_BG, claims_expire_body, NULL, NULL);
}

/* ---- claims ---------------------------------------------------------------------- */

SQ_SQL(sql_items_range, "SELECT k, status, attempts, prev_idx, ref, data FROM item_rows "
                        "WHERE k >= ?1 AND k < ?2 ORDER BY k");

/* Appends the claim item of job jid in the row of s (sql_items_range) to *items (*n
 * of *cap, grown as needed). */
static int claim_item_add(struct sq_conn *c, sqlite3_stmt *s, int64_t jid,
                          struct store_claim_item **items, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *items = xrealloc(*items, *cap * sizeof **items);
    }
    struct store_claim_item *it = &(*items)[(*n)++];
    it->index = sqlite3_column_int64(s, 0) - KEY(jid, 0);
    it->attempts = sqlite3_column_int(s, 2);
    it->ref = sq_col_dup(s, 4, NULL);
    it->data_len = 0;
    return sq_zdata_col_claim(c, s, 5, jid, it->index, &it->data, &it->data_len);
}

/* Pending items of [lo, hi) of job r, copied: the items a claim still owes. */
static int pending_in_range(struct sq_conn *c, const struct rules_jobrow *r, int64_t lo, int64_t hi,
                            struct store_claim_item **items, size_t *n)
{
    sqlite3_stmt *s;
    size_t cap = 0;
    int rc = sq_q(c, &sql_items_range, &s);
    *items = NULL;
    *n = 0;
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, KEY(r->jid, lo));
    sqlite3_bind_int64(s, 2, KEY(r->jid, hi));
    while ((rc = sq_step(s)) == 1) {
        if (sqlite3_column_int(s, 1) != ITEM_PENDING)
            continue;
        if ((rc = claim_item_add(c, s, r->jid, items, n, &cap)) < 0)
            break;
    }
    sqlite3_reset(s);
    return rc;
}

/* ?7: a JSON array text of events to append, or NULL. */
#define EVENTS_APPEND                                                                              \
    "CASE WHEN ?7 IS NULL THEN events WHEN events IS NULL OR events = '[]' THEN ?7 "               \
    "ELSE substr(events, 1, length(events) - 1) || ',' || substr(?7, 2) END"
/* The outcome row is new unless an earlier attempt was counted (a lease expired). */
SQ_SQL(sql_item_set,
       "INSERT INTO item_outcomes(k, status, attempts, result, error_code, error_message, events, "
       "updated_at, failed_step, warnings) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
       "ON CONFLICT(k) DO UPDATE SET status = ?2, attempts = attempts + ?3, result = ?4, "
       "error_code = ?5, error_message = ?6, events = " EVENTS_APPEND ", "
       "updated_at = ?8, failed_step = ?9, warnings = ?10 WHERE status = 0");

/* Writes one item's end (or, status PENDING, only attempts/events). 1 written, 0 the
 * item was not pending. */
static int item_set(struct sq_conn *c, int64_t k, int status, int add_attempts, const char *result,
                    const char *code, const char *message, const char *failed_step,
                    const char *warnings, const struct buf *events, int64_t now)
{
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_item_set, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, k);
    sqlite3_bind_int(s, 2, status);
    sqlite3_bind_int(s, 3, add_attempts);
    sq_bind_str(s, 4, result);
    sq_bind_str(s, 5, code && *code ? code : NULL);
    sq_bind_str(s, 6, message);
    if (events && events->len > 2)
        sq_bind_strn(s, 7, events->data, events->len);
    sqlite3_bind_int64(s, 8, now);
    sq_bind_str(s, 9, failed_step && *failed_step ? failed_step : NULL);
    sq_bind_str(s, 10, warnings);
    rc = sq_step(s);
    if (rc < 0)
        return rc;
    return sqlite3_changes(c->db) > 0;
}

SQ_SQL(sql_claim_update, "UPDATE claims SET token = ?2, remaining = ?3, lease_until = ?4, "
                         "claimed_at = ?5, released = ?6 WHERE claim_id = ?1");

static int claim_write(struct sq_conn *c, int64_t claim_id, const char *token, int64_t remaining,
                       int64_t lease_until, int64_t claimed_at, int released)
{
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_claim_update, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, claim_id);
    sq_bind_str(s, 2, token);
    sqlite3_bind_int64(s, 3, remaining);
    sqlite3_bind_int64(s, 4, lease_until);
    sqlite3_bind_int64(s, 5, claimed_at);
    sqlite3_bind_int(s, 6, released);
    rc = sq_step(s);
    return rc < 0 ? rc : 0;
}

SQ_SQL(sql_claim_delete, "DELETE FROM claims WHERE claim_id = ?1");

static int claim_delete(struct sq_conn *c, int64_t claim_id)
{
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_claim_delete, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, claim_id);
    rc = sq_step(s);
    return rc < 0 ? rc : 0;
}

/* Settles a claim whose holder is gone (lease expired, or released): on a canceling
 * or canceled job its pending items become Canceled; otherwise, unless released,
 * each counts the lost attempt (LeaseExpired event) and fails with
 * MaxAttemptsExceeded at max_attempts. When items remain and out != NULL they are
 * re-leased to out under a new token (returns 1); else the claim is dropped
 * (returns 0). */
static int settle_claim(struct sq_conn *c, int64_t claim_id, int64_t jid, int64_t lo, int64_t hi,
                        int released, int max_attempts, int64_t lease_ms, int64_t now,
                        struct store_claim *out)
{
    struct rules_jobrow r;
    struct store_claim_item *items = NULL;
    size_t n = 0, kept = 0;
    char token[STORE_ID_MAX], msg[128];
    int rc = sq_job_load_jid(c, jid, &r);
    if (rc < 0)
        return rc;
    int canceling = r.j.status == JOB_CANCELING || r.j.status == JOB_CANCELED;
    if ((rc = pending_in_range(c, &r, lo, hi, &items, &n)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct store_claim_item *it = &items[i];
        int64_t k = KEY(jid, it->index);
        if (canceling) {
            rc = item_set(c, k, ITEM_CANCELED, 0, NULL, NULL, NULL, NULL, NULL, NULL, now);
            if (rc < 0)
                goto out;
            r.j.counts.processing--;
            r.j.counts.canceled++;
            continue;
        }
        if (!released) {
            it->attempts++;
            buf_reset(&c->ev);
            buf_putc(&c->ev, '[');
            snprintf(msg, sizeof msg, "lease expired on attempt %d; item given to another worker",
                     it->attempts);
            rules_event_add(&c->ev, now, "claim", NULL, "warn", "LeaseExpired", msg);
            if (max_attempts > 0 && it->attempts >= max_attempts) {
                snprintf(msg, sizeof msg, "abandoned after %d attempts", it->attempts);
                rules_event_add(&c->ev, now, "claim", NULL, "error",
                                sluice_err_code(SLUICE_E_MAX_ATTEMPTS), msg);
                buf_putc(&c->ev, ']');
                rc = item_set(c, k, ITEM_FAILED, 1, NULL, sluice_err_code(SLUICE_E_MAX_ATTEMPTS),
                              msg, NULL, NULL, &c->ev, now);
                if (rc < 0)
                    goto out;
                r.j.counts.processing--;
                r.j.counts.failed++;
                continue;
            }
            buf_putc(&c->ev, ']');
            rc = item_set(c, k, ITEM_PENDING, 1, NULL, NULL, NULL, NULL, NULL, &c->ev, now);
            if (rc < 0)
                goto out;
        }
        if (kept != i) {
            struct store_claim_item t = items[kept];
            items[kept] = *it;
            *it = t;
        }
        kept++;
    }
    if (kept > 0 && out && !canceling) {
        if ((rc = ids_random("lt_", 24, token)) < 0)
            goto out;
        if ((rc = claim_write(c, claim_id, token, (int64_t)kept, now + lease_ms, now, 0)) < 0)
            goto out;
        if ((rc = sq_job_save(c, &r, now)) < 0)
            goto out;
        rules_claim_items_clear(items + kept, n - kept);
        sq_zdefer_claimed(c, r.jid);
        rules_claim_fill(out, &r, claim_id, token, lo, hi, now, now + lease_ms, items, kept);
        items = NULL;
        n = 0;
        rc = 1;
        goto out;
    }
    if (kept > 0) { /* only reachable without out: cannot happen; keep the claim as is */
        rc = 0;
        goto out;
    }
    if ((rc = claim_delete(c, claim_id)) < 0)
        goto out;
    r.j.last_progress_at = now;
    rules_job_finish(&r, now);
    rc = sq_job_save(c, &r, now);
out:
    rules_claim_items_free(items, n);
    store_job_release(&r.j);
    return rc;
}

SQ_SQL(sql_item_status, "SELECT status FROM item_rows WHERE k = ?1");
/* sql_items_range for a job that orders refs across jobs: also each item's link to an
 * earlier job's item (REF ORDER in store.h). */
SQ_SQL(sql_items_range_linked,
       "SELECT i.k, i.status, i.attempts, i.prev_idx, i.ref, i.data, w.prev_k FROM item_rows i "
       "LEFT JOIN ref_waits w ON w.k = i.k WHERE i.k >= ?1 AND i.k < ?2 ORDER BY i.k");
SQ_SQL(sql_ref_item, "SELECT i.status, i.prev_idx, w.prev_k, j.cancel_at FROM item_rows i "
                     "JOIN jobs j ON j.jid = ?2 LEFT JOIN ref_waits w ON w.k = i.k WHERE i.k = ?1");

/* rules_ref_lookup_fn of this backend: item keys are KEY(jid, idx). */
static int ref_lookup(void *conn, int64_t jid, int64_t idx, struct rules_ref_item *it)
{
    sqlite3_stmt *s;
    int rc = sq_q(conn, &sql_ref_item, &s);
    memset(it, 0, sizeof *it);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, KEY(jid, idx));
    sqlite3_bind_int64(s, 2, jid);
    if ((rc = sq_step(s)) == 1) {
        it->found = 1;
        it->status = sqlite3_column_int(s, 0);
        it->prev_idx = sqlite3_column_int64(s, 1);
        int64_t wk = sqlite3_column_type(s, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 2);
        it->wait_jid = wk < 0 ? 0 : wk / KEY(1, 0);
        it->wait_idx = wk < 0 ? -1 : wk % KEY(1, 0);
        it->cancel_at = sqlite3_column_int64(s, 3);
    }
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}
SQ_SQL(sql_claim_insert,
       "INSERT INTO claims(token, jid, lo, hi, remaining, lease_until, claimed_at) "
       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");

SQ_SQL(sql_ref_park, "UPDATE ref_waits SET parked = 1 WHERE k = ?1");

/* Parks item key k (see PARKING). */
static int park(struct sq_conn *c, int64_t k)
{
    int64_t rc = sq_run_i64s(c, &sql_ref_park, &k, 1);
    return rc < 0 ? (int)rc : 0;
}

/* Moves the cursor of job r to `cursor`, past `taken` items (claimed or parked): they
 * count as Processing from now on, and the job is Running. */
static void cursor_advance(struct rules_jobrow *r, int64_t cursor, int64_t taken, int64_t now)
{
    if (r->j.status == JOB_NOT_STARTED) {
        r->j.status = JOB_RUNNING;
        r->j.started_at = now;
    }
    if (!r->j.win_at) {
        r->j.win_at = now;
        r->j.win_done = 0;
    }
    r->cursor = cursor;
    r->j.counts.pending -= taken;
    r->j.counts.processing += taken;
}

SQ_SQL(sql_parked, "SELECT k FROM ref_waits INDEXED BY ref_waits_parked WHERE parked = 1 "
                   "AND k > ?1 ORDER BY k LIMIT 16");
/* The link stays: a canceled item passes its wait on through it (rules_ref_blocked). */
SQ_SQL(sql_wait_unpark, "UPDATE ref_waits SET parked = 0 WHERE k = ?1");
SQ_SQL(sql_claim_give, "INSERT INTO claims(token, jid, lo, hi, remaining, lease_until, "
                       "claimed_at, released) VALUES('', ?1, ?2, ?2 + 1, 1, 0, ?3, 1)");

/* Unparks the first parked items that may go (rules_ref_parked_free): each becomes a
 * released claim of its own, which the takeover of released claims then leases (or,
 * on a canceled job, settles Canceled). */
static int unpark(struct sq_conn *c, int64_t now)
{
    sqlite3_stmt *s;
    int64_t ks[16];
    int nk = 0, rc = sq_q(c, &sql_parked, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, c->unpark_after);
    while (nk < 16 && (rc = sq_step(s)) == 1)
        ks[nk++] = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    c->unpark_after = nk == 16 ? ks[15] : 0; /* the next call goes on after these */
    for (int i = 0; rc >= 0 && i < nk; i++) {
        int64_t jid = ks[i] / KEY(1, 0), idx = ks[i] % KEY(1, 0);
        if ((rc = rules_ref_parked_free(c, ref_lookup, jid, idx)) <= 0)
            continue;
        int64_t rows = sq_run_i64s(c, &sql_wait_unpark, (const int64_t[]){ks[i]}, 1);
        if (rows >= 0)
            rows = sq_run_i64s(c, &sql_claim_give, (const int64_t[]){jid, idx, now}, 3);
        rc = rows < 0 ? (int)rows : 0;
    }
    return rc < 0 ? rc : 0;
}

/* A new range from the cursor of job jid: 1 claimed into out, 0 nothing runnable. */
static int claim_new_range(struct sq_conn *c, int64_t jid, const struct rules_claim_ctx *x,
                           int64_t now)
{
    struct rules_jobrow r;
    sqlite3_stmt *s, *ps;
    struct store_claim_item *items = NULL;
    size_t n = 0, cap = 0;
    char token[STORE_ID_MAX];
    int rc = sq_job_load_jid(c, jid, &r);
    if (rc < 0)
        return rc;
    int64_t lo, hi;
    if ((rc = rules_claim_range(&r, x->max_items, &lo, &hi)) == 0)
        goto out;
    int linked = r.j.ref_order == STORE_REF_ORDER_TENANT;
    int64_t parked = 0;
    if ((rc = sq_q(c, linked ? &sql_items_range_linked : &sql_items_range, &s)) < 0)
        goto out;
    sqlite3_bind_int64(s, 1, KEY(jid, lo));
    sqlite3_bind_int64(s, 2, KEY(jid, hi));
    while ((rc = sq_step(s)) == 1) {
        int64_t prev = sqlite3_column_int64(s, 3);
        if (linked && sqlite3_column_type(s, 6) != SQLITE_NULL) {
            /* REF ORDER: wait while an earlier job's item of this ref is unfinished;
             * at the start of the range it is parked (see PARKING) */
            int64_t wk = sqlite3_column_int64(s, 6);
            int blocked = rules_ref_blocked(c, ref_lookup, wk / KEY(1, 0), wk % KEY(1, 0));
            if (blocked > 0 && n == 0 && (blocked = park(c, sqlite3_column_int64(s, 0))) == 0) {
                parked++;
                lo = sqlite3_column_int64(s, 0) - KEY(jid, 0) + 1;
                continue;
            }
            if (blocked != 0) {
                rc = blocked < 0 ? blocked : 0;
                break;
            }
        }
        if (prev >= 0 && prev < lo) { /* (an item parked just now is below lo too) */
            /* Same-ref ordering: wait until the previous item of this ref is done. */
            if ((rc = sq_q(c, &sql_item_status, &ps)) < 0)
                goto out;
            sqlite3_bind_int64(ps, 1, KEY(jid, prev));
            rc = sq_step(ps);
            int st = rc == 1 ? sqlite3_column_int(ps, 0) : ITEM_PENDING;
            sqlite3_reset(ps);
            if (rc < 0)
                goto out;
            rc = 0;
            if (st == ITEM_PENDING)
                break;
        }
        if ((rc = claim_item_add(c, s, jid, &items, &n, &cap)) < 0)
            break;
    }
    sqlite3_reset(s);
    if (rc < 0 || (n > 0 && (rc = rules_claim_take(x->gate, &r, items, &n, lo, &hi, token)) < 0))
        goto out;
    if (n == 0) { /* no claim; the cursor still passes what was parked */
        rc = 0;
        if (parked > 0) {
            cursor_advance(&r, lo, parked, now);
            rc = sq_job_save(c, &r, now);
        }
        goto out;
    }
    if ((rc = sq_q(c, &sql_claim_insert, &s)) < 0)
        goto out;
    sq_bind_str(s, 1, token);
    sqlite3_bind_int64(s, 2, jid);
    sqlite3_bind_int64(s, 3, lo);
    sqlite3_bind_int64(s, 4, hi);
    sqlite3_bind_int64(s, 5, (int64_t)n);
    sqlite3_bind_int64(s, 6, now + x->lease_ms);
    sqlite3_bind_int64(s, 7, now);
    if ((rc = sq_step(s)) < 0)
        goto out;
    int64_t claim_id = sqlite3_last_insert_rowid(c->db);
    cursor_advance(&r, hi, (int64_t)n + parked, now);
    r.last_claim = claim_id;
    if ((rc = sq_job_save(c, &r, now)) < 0)
        goto out;
    sq_zdefer_claimed(c, r.jid);
    rules_claim_fill(x->out, &r, claim_id, token, lo, hi, now, now + x->lease_ms, items, n);
    items = NULL;
    n = 0;
    rc = 1;
out:
    rules_claim_items_free(items, n);
    store_job_release(&r.j);
    return rc;
}

SQ_SQL(sql_claim_expired, "SELECT claim_id, jid, lo, hi, released FROM claims "
                          "WHERE lease_until <= ?1 ORDER BY lease_until LIMIT 1");
/* Runnable: status IN (1, 2) AND next_idx < total, the condition of jobs_ready. */
#define RUNNABLE "jobs INDEXED BY jobs_ready WHERE status IN (1, 2) AND next_idx < total"
/* The tenants with a runnable job (a skip scan: one index seek per tenant), the one
 * whose round ended longest ago first. */
SQ_SQL(sql_run_tenants,
       "WITH RECURSIVE rt(tenant) AS ("
       "SELECT (SELECT tenant FROM " RUNNABLE " ORDER BY tenant LIMIT 1) "
       "UNION ALL SELECT (SELECT tenant FROM " RUNNABLE " AND tenant > rt.tenant "
       "ORDER BY tenant LIMIT 1) FROM rt WHERE rt.tenant IS NOT NULL) "
       "SELECT rt.tenant FROM rt LEFT JOIN tenants t ON t.tenant = rt.tenant "
       "WHERE rt.tenant IS NOT NULL ORDER BY coalesce(t.last_claim, 0), rt.tenant LIMIT ?1");
SQ_SQL(sql_run_jobs, "SELECT jid FROM " RUNNABLE " AND tenant = ?1 "
                     "ORDER BY priority DESC, last_claim, jid LIMIT ?2");
/* The same, for a tenant at its active-job cap: only jobs already started. */
SQ_SQL(sql_run_jobs_started, "SELECT jid FROM " RUNNABLE " AND tenant = ?1 AND status = 2 "
                             "ORDER BY priority DESC, last_claim, jid LIMIT ?2");
SQ_SQL(sql_tenant_active, "SELECT count(*) FROM jobs INDEXED BY jobs_active "
                          "WHERE tenant = ?1 AND status IN (2, 3)");
/* A new range of tenant ?1 under claim ?2: one turn; the last of the round moves
 * the tenant to the back. SET expressions see the row before the update. */
SQ_SQL(sql_tenant_turn, "INSERT INTO tenants(tenant, last_claim) VALUES(?1, ?2) "
                        "ON CONFLICT(tenant) DO UPDATE SET "
                        "turns = CASE WHEN turns + 1 >= weight THEN 0 ELSE turns + 1 END, "
                        "last_claim = CASE WHEN turns + 1 >= weight THEN ?2 ELSE last_claim END");

static int claim_body(struct sq_conn *c, void *vctx)
{
    struct rules_claim_ctx *x = vctx;
    sqlite3_stmt *s;
    int64_t now = clock_now_ms();
    int64_t jids[16];
    int njobs = 0;
    int rc;

    /* 0. Parked items that may go become released claims, taken over next. */
    if ((rc = unpark(c, now)) < 0)
        return rc;
    /* 1. Expired (or released) claims first. */
    for (int guard = 0; guard < 256; guard++) {
        if ((rc = sq_q(c, &sql_claim_expired, &s)) < 0)
            return rc;
        sqlite3_bind_int64(s, 1, now);
        if ((rc = sq_step(s)) <= 0)
            break;
        int64_t claim_id = sqlite3_column_int64(s, 0), jid = sqlite3_column_int64(s, 1);
        int64_t lo = sqlite3_column_int64(s, 2), hi = sqlite3_column_int64(s, 3);
        int released = sqlite3_column_int(s, 4);
        sqlite3_reset(s);
        rc = settle_claim(c, claim_id, jid, lo, hi, released, x->max_attempts, x->lease_ms, now,
                          x->out);
        if (rc != 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    /* 2. A new range: the tenant, then its job (see FAIRNESS). */
    char tenants[16][STORE_NAME_MAX];
    int ntenants = 0, tries = 0;
    if ((rc = sq_q(c, &sql_run_tenants, &s)) < 0)
        return rc;
    sqlite3_bind_int(s, 1, 16);
    while (ntenants < 16 && (rc = sq_step(s)) == 1)
        sq_col_copy(s, 0, tenants[ntenants++], STORE_NAME_MAX);
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    for (int t = 0; t < ntenants && tries < CLAIM_TRIES; t++) {
        int at_cap = 0;
        if (x->max_active_jobs > 0) {
            if ((rc = sq_q(c, &sql_tenant_active, &s)) < 0)
                return rc;
            sq_bind_str(s, 1, tenants[t]);
            rc = sq_step(s);
            at_cap = rc == 1 && sqlite3_column_int64(s, 0) >= x->max_active_jobs;
            sqlite3_reset(s);
            if (rc < 0)
                return rc;
        }
        if ((rc = sq_q(c, at_cap ? &sql_run_jobs_started : &sql_run_jobs, &s)) < 0)
            return rc;
        sq_bind_str(s, 1, tenants[t]);
        sqlite3_bind_int(s, 2, 16);
        njobs = 0;
        while (njobs < 16 && (rc = sq_step(s)) == 1)
            jids[njobs++] = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (rc < 0)
            return rc;
        for (int i = 0; i < njobs && tries < CLAIM_TRIES; i++, tries++) {
            rc = claim_new_range(c, jids[i], x, now);
            if (rc == 0)
                continue;
            if (rc < 0)
                return rc;
            if ((rc = sq_q(c, &sql_tenant_turn, &s)) < 0)
                return rc;
            sq_bind_str(s, 1, tenants[t]);
            sqlite3_bind_int64(s, 2, x->out->claim_id);
            rc = sq_step(s);
            return rc < 0 ? rc : 1;
        }
    }
    return 0;
}

/* store_claim's arguments and the items' data it expands after its transaction (x
 * first: rules_claim_undo gets this as its rules_claim_ctx). */
struct claim_ctx {
    struct rules_claim_ctx x;
    struct sq_zdefer *zdefer;
};

static int claim_body_deferred(struct sq_conn *c, void *vctx)
{
    struct claim_ctx *k = vctx;
    sq_zdefer_reset(k->zdefer);
    c->zdefer = k->zdefer;
    int rc = claim_body(c, &k->x);
    c->zdefer = NULL;
    return rc;
}

int sq_claim(void *impl, const struct store_claim_opts *o, struct store_claim *out)
{
    struct claim_ctx k;
    rules_claim_args(&k.x, o, out);
    k.zdefer = sq_zdefer_new();
    /* No fsync: a claim lost in a crash only hands its items out again, and any
     * completion under it commits with fsync, which makes the claim durable first. */
    int rc = sq_run_tx(impl, TX_WRITE_NOSYNC, claim_body_deferred, rules_claim_undo, &k);
    if (rc == 1) {
        int e = sq_zdefer_expand(k.zdefer, out->items, out->n);
        if (e < 0) { /* a value that cannot be expanded: given back, as if never taken */
            sq_release(impl, out);
            store_claim_release(out);
            memset(out, 0, sizeof *out);
            rc = e;
        }
    }
    sq_zdefer_free(k.zdefer);
    return rc;
}

SQ_SQL(sql_claim_get,
       "SELECT jid, lo, hi, remaining FROM claims WHERE claim_id = ?1 AND token = ?2");

/* The claim's row if cl's token still holds it, and its job (rules_claims_prims):
 * 1, -SLUICE_E_LEASE_LOST when taken over or gone, or an error. */
static int claim_check(void *conn, const struct store_claim *cl, struct rules_held *h,
                       struct rules_jobrow *r)
{
    struct sq_conn *c = conn;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_claim_get, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, cl->claim_id);
    sq_bind_str(s, 2, cl->token);
    rc = sq_step(s);
    if (rc == 1) {
        h->jid = sqlite3_column_int64(s, 0);
        h->lo = sqlite3_column_int64(s, 1);
        h->hi = sqlite3_column_int64(s, 2);
        h->remaining = sqlite3_column_int64(s, 3);
    }
    sqlite3_reset(s);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_LEASE_LOST;
    return sq_job_load_jid(c, h->jid, r);
}

SQ_SQL(sql_steps_add, "INSERT INTO job_steps(jid, step, passed, failed, skipped) "
                      "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(jid, step) DO UPDATE SET "
                      "passed = passed + excluded.passed, failed = failed + excluded.failed, "
                      "skipped = skipped + excluded.skipped");

/* Adds the call's per-step tallies to job jid's step counts. */
static int steps_add(struct sq_conn *c, int64_t jid, const struct store_step_count *steps, size_t n)
{
    sqlite3_stmt *s;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!steps[i].step)
            continue;
        if ((rc = sq_q(c, &sql_steps_add, &s)) < 0)
            return rc;
        sqlite3_bind_int64(s, 1, jid);
        sq_bind_str(s, 2, steps[i].step);
        sqlite3_bind_int64(s, 3, steps[i].passed);
        sqlite3_bind_int64(s, 4, steps[i].failed);
        sqlite3_bind_int64(s, 5, steps[i].skipped);
        if ((rc = sq_step(s)) < 0)
            return rc;
    }
    return 0;
}

SQ_SQL(sql_claim_remaining, "UPDATE claims SET remaining = ?2 WHERE claim_id = ?1");
SQ_SQL(sql_outcomes_ended, "SELECT k FROM item_outcomes WHERE k >= ?1 AND k < ?2 AND status <> 0 "
                           "ORDER BY k");

/* The keys in [lo, hi) of items that already ended (an earlier call finished them), in
 * order, in [out] *keys (heap; NULL when none) and *n: one range read, where a status
 * lookup per item cost two (items and item_outcomes). 0 or an error. */
static int ended_keys(struct sq_conn *c, int64_t lo, int64_t hi, int64_t **keys, size_t *n)
{
    *keys = NULL;
    *n = 0;
    return sq_list_i64s(c, &sql_outcomes_ended, (const int64_t[]){lo, hi}, 2, keys, n);
}

/* store_complete's arguments and its documents' data compressed before the write
 * transaction (x first: rules_complete_undo gets this as its rules_claim_ctx). */
struct complete_ctx {
    struct rules_claim_ctx x;
    struct sq_zpre *zpre;
};

static int complete_body_ops(struct sq_conn *c, struct rules_claim_ctx *x);

static int complete_body(struct sq_conn *c, void *vctx)
{
    struct complete_ctx *k = vctx;
    c->zpre = k->zpre;
    int rc = complete_body_ops(c, &k->x);
    c->zpre = NULL;
    return rc;
}

static int complete_body_ops(struct sq_conn *c, struct rules_claim_ctx *x)
{
    const struct store_claim *cl = x->c;
    struct rules_jobrow r;
    struct rules_held h;
    struct rules_outcomes w;
    struct store_outcome *o;
    const struct store_claim_item *ci;
    int64_t now = clock_now_ms(), done = 0;
    char msg[STORE_NAME_MAX + 2 * 256 + 64];
    const struct rules_apply ap = {sq_doc_apply, c, &c->ev, &c->res, c->max_doc_bytes, now};
    /* The ops' [out] fields start empty; rules_apply_ops() fills those of the ops it runs. */
    rules_outcomes_reset(x->outs, x->n);
    int64_t *ended = NULL;
    size_t nended = 0;
    int rc = claim_check(c, cl, &h, &r);
    if (rc < 0)
        return rc;
    if ((rc = ended_keys(c, KEY(h.jid, h.lo), KEY(h.jid, h.hi), &ended, &nended)) < 0)
        goto out;
    rules_outcomes_start(&w, x, &h, &c->ev);
    while ((rc = rules_outcome_next(&w, &o, &ci)) > 0) {
        struct rules_item_end e;
        int ops_rc = -1;
        int64_t k = KEY(h.jid, o->index);
        if (o->nops > 0) { /* whatever the status: the caller passes only the ops of
                              steps the item got through (see store.h) */
            if (nended && bsearch(&k, ended, nended, sizeof *ended, rules_cmp_i64))
                continue; /* already finished by an earlier call */
            if ((rc = ops_rc = rules_apply_ops(&ap, &r, ci, o, msg, sizeof msg)) < 0)
                goto out;
        }
        rules_outcome_end(&w, o, ops_rc, buf_cstr(&c->res), msg, &e);
        rc = item_set(c, k, e.status, 1, e.result, e.code, e.message, e.failed_step, o->warnings,
                      &c->ev, now);
        if (rc < 0)
            goto out;
        if (rc == 0)
            continue;
        done++;
        rules_count_end(&r.j.counts, e.status);
    }
    if (rc < 0)
        goto out;
    if (done == 0)
        goto out; /* a repeated call: its step tallies were counted the first time */
    r.j.counts.processing -= done;
    r.j.last_progress_at = now;
    int64_t finished = r.j.counts.succeeded + r.j.counts.failed + r.j.counts.skipped;
    if (now - r.j.win_at >= WIN_MS) {
        r.j.win_at = now;
        r.j.win_done = finished;
    }
    rules_job_finish(&r, now);
    if ((rc = sq_job_save(c, &r, now)) < 0)
        goto out;
    if ((rc = steps_add(c, h.jid, x->steps, x->nsteps)) < 0)
        goto out;
    h.remaining -= done;
    sqlite3_stmt *s;
    if (h.remaining <= 0) {
        rc = claim_delete(c, cl->claim_id);
    } else if ((rc = sq_q(c, &sql_claim_remaining, &s)) == 0) {
        sqlite3_bind_int64(s, 1, cl->claim_id);
        sqlite3_bind_int64(s, 2, h.remaining);
        rc = sq_step(s);
    }
    if (rc > 0)
        rc = 0;
out:
    free(ended);
    store_job_release(&r.j);
    return rc;
}

/* The data of the upserts of outs, compressed before the write transaction (see
 * sq_zdoc_prepack); NULL when none. */
static struct sq_zpre *prepack(struct sq *s, const struct store_claim *c,
                               const struct store_outcome *outs, size_t n)
{
    struct sq_zpre_in *in = NULL;
    size_t nin = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        const struct store_claim_item *ci = rules_claim_find(c, outs[i].index);
        for (size_t j = 0; ci && j < outs[i].nops; j++) {
            const struct store_doc_op *op = &outs[i].ops[j];
            if (op->op != STORE_OP_UPSERT)
                continue;
            if (nin == cap) {
                cap = cap ? cap * 2 : 256;
                in = xrealloc(in, cap * sizeof *in);
            }
            in[nin++] = (struct sq_zpre_in){op->collection ? op->collection : "",
                                            op->data ? op->data : ci->data,
                                            op->data ? op->data_len : ci->data_len};
        }
    }
    struct sq_zpre *p = NULL;
    if (nin)
        sq_zdoc_prepack(s, c->tenant, in, nin, &p);
    free(in);
    return p;
}

int sq_complete(void *impl, const struct store_claim *c, struct store_outcome *outs, size_t n,
                const struct store_step_count *steps, size_t nsteps)
{
    struct complete_ctx k;
    rules_complete_args(&k.x, c, outs, n, steps, nsteps);
    k.zpre = prepack(impl, c, outs, n);
    int rc = rules_complete_done(
        &k.x, sq_run_tx(impl, TX_WRITE_BG, complete_body, rules_complete_undo, &k));
    sq_zpre_free(k.zpre);
    return rc;
}

static int settle_released(void *conn, const struct rules_claim_ctx *x, const struct rules_held *h)
{
    return settle_claim(conn, x->c->claim_id, h->jid, h->lo, h->hi, 1, 0, 0, clock_now_ms(), NULL);
}

static int give_back(void *conn, const struct store_claim *cl, const struct rules_held *h)
{
    /* Expired at once and marked released: the next store_claim re-leases it without
     * counting an attempt; the empty token fences the old holder. */
    return claim_write(conn, cl->claim_id, "", h->remaining, 0, clock_now_ms(), 1);
}

static const struct rules_claims_prims sq_claims = {
    .claim_check = claim_check, .settle_released = settle_released, .give_back = give_back};

static int release_body(struct sq_conn *c, void *vctx)
{
    return rules_release_body(&sq_claims, c, vctx);
}

int sq_release(void *impl, const struct store_claim *c)
{
    struct rules_claim_ctx x = {.c = c};
    return sq_run_tx(impl, TX_WRITE_BG, release_body, NULL, &x);
}

/* ---- stats ----------------------------------------------------------------------- */

SQ_SQL(sql_stats_jobs, "SELECT status, count(*), sum(pending), sum(processing) FROM jobs "
                       "GROUP BY status");
SQ_SQL(sql_stats_claims, "SELECT count(*) FROM claims WHERE lease_until > ?1");

static int stats_body(struct sq_conn *c, void *vctx)
{
    struct store_stats *st = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_stats_jobs, &s);
    if (rc < 0)
        return rc;
    memset(st, 0, sizeof *st);
    while ((rc = sq_step(s)) == 1) {
        int status = sqlite3_column_int(s, 0);
        if (status >= 0 && status < 7)
            st->jobs_by_status[status] = sqlite3_column_int64(s, 1);
        st->items_pending += sqlite3_column_int64(s, 2);
        st->items_processing += sqlite3_column_int64(s, 3);
    }
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if ((rc = sq_q(c, &sql_stats_claims, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, clock_now_ms());
    if ((rc = sq_step(s)) == 1)
        st->claims_active = sqlite3_column_int64(s, 0);
    return rc < 0 ? rc : 0;
}

int sq_stats(void *impl, struct store_stats *out)
{
    return sq_run_tx(impl, TX_READ, stats_body, NULL, out);
}
