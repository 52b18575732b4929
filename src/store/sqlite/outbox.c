/* outbox.c - completion callback deliveries in the embedded backend: claiming the due
 * ones, recording attempts, listing a job's. sq_job_save (jobs.c) queues them. */
#include <stdlib.h>

#include "store/sqlite/sqlite_int.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* ---- completion callbacks: the outbox ---------------------------------------------- */

SQ_SQL(sql_outbox_due, "SELECT " DELIVERY_COLS ", did FROM outbox WHERE state = 0 "
                       "AND next_at <= ?1 AND lease_until <= ?1 ORDER BY next_at LIMIT ?2");
SQ_SQL(sql_outbox_lease, "UPDATE outbox SET lease_until = ?2, token = ?3 WHERE did = ?1");

static int delivery_claim_body(struct sq_conn *c, void *vctx)
{
    struct rules_outbox_ctx *x = vctx;
    sqlite3_stmt *s, *u;
    int64_t now = clock_now_ms();
    int rc = sq_q(c, &sql_outbox_due, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)x->max);
    x->list = xcalloc(x->max ? x->max : 1, sizeof *x->list);
    x->n = 0;
    int64_t *dids = xcalloc(x->max ? x->max : 1, sizeof *dids);
    while (x->n < x->max && (rc = sq_step(s)) == 1) {
        rules_delivery_read(&sq_cols, s, 0, &x->list[x->n]);
        dids[x->n++] = sqlite3_column_int64(s, DELIVERY_NCOLS);
    }
    sqlite3_reset(s);
    for (size_t i = 0; rc >= 0 && i < x->n; i++) {
        int64_t until;
        if ((rc = rules_delivery_lease(&x->list[i], now, x->lease_ms, &until)) < 0)
            break;
        if ((rc = sq_q(c, &sql_outbox_lease, &u)) < 0)
            break;
        sqlite3_bind_int64(u, 1, dids[i]);
        sqlite3_bind_int64(u, 2, until);
        sq_bind_str(u, 3, x->list[i].token);
        rc = sq_step(u);
    }
    free(dids);
    if (rc < 0) {
        rules_outbox_undo(x);
        return rc;
    }
    return (int)x->n;
}

int sq_delivery_claim(void *impl, int64_t lease_ms, size_t max, struct store_delivery **out,
                      size_t *n)
{
    struct rules_outbox_ctx x = {.lease_ms = lease_ms, .max = max};
    /* Like a claim, a lease need not survive a crash: the delivery is simply due. */
    int rc = sq_run_tx(impl, TX_WRITE_NOSYNC, delivery_claim_body, rules_outbox_undo, &x);
    return rules_outbox_done(&x, rc, out, n);
}

/* ?5: the attempt as a JSON object text, or NULL */
SQ_SQL(sql_outbox_record,
       "UPDATE outbox SET state = ?3, next_at = ?4, lease_until = 0, token = '', "
       "attempts = attempts + (?5 IS NOT NULL), updated_at = ?6, log = CASE WHEN ?5 IS NULL "
       "THEN log WHEN log = '[]' THEN '[' || ?5 || ']' "
       "ELSE substr(log, 1, length(log) - 1) || ',' || ?5 || ']' END "
       "WHERE id = ?1 AND token = ?2 AND token <> '' AND state = 0");

static int delivery_record_body(struct sq_conn *c, void *vctx)
{
    struct rules_outbox_ctx *x = vctx;
    sqlite3_stmt *s;
    int64_t now = clock_now_ms();
    int rc = sq_q(c, &sql_outbox_record, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->d->id);
    sq_bind_str(s, 2, x->d->token);
    sqlite3_bind_int(s, 3, x->state);
    sqlite3_bind_int64(s, 4, x->next_at);
    if (x->a) {
        rules_delivery_attempt(x, &c->tmp);
        sq_bind_strn(s, 5, c->tmp.data, c->tmp.len);
    }
    sqlite3_bind_int64(s, 6, now);
    if ((rc = sq_step(s)) < 0)
        return rc;
    return sqlite3_changes(c->db) == 1 ? 1 : -SLUICE_E_LEASE_LOST;
}

int sq_delivery_record(void *impl, const struct store_delivery *d,
                       const struct store_delivery_attempt *a, int state, int64_t next_at)
{
    struct rules_outbox_ctx x;
    int rc = rules_delivery_record_args(&x, d, a, state, next_at);
    return rc < 0 ? rc : sq_run_tx(impl, TX_WRITE_BG, delivery_record_body, NULL, &x);
}

SQ_SQL(sql_outbox_list, "SELECT " DELIVERY_COLS ", log FROM outbox WHERE jid = ?1 ORDER BY did");

static int delivery_list_body(struct sq_conn *c, void *vctx)
{
    struct rules_outbox_ctx *x = vctx;
    struct rules_jobrow r;
    sqlite3_stmt *s;
    size_t cap = 0;
    int rc = sq_job_load(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    store_job_release(&r.j);
    if ((rc = sq_q(c, &sql_outbox_list, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, r.jid);
    while ((rc = sq_step(s)) == 1) {
        if (x->n == cap) {
            cap = cap ? cap * 2 : 2;
            x->list = xrealloc(x->list, cap * sizeof *x->list);
        }
        rules_delivery_read(&sq_cols, s, 1, &x->list[x->n++]);
    }
    sqlite3_reset(s);
    if (rc < 0) {
        rules_outbox_undo(x);
        return rc;
    }
    return 1;
}

int sq_delivery_list(void *impl, const char *tenant, const char *job_id,
                     struct store_delivery **out, size_t *n)
{
    struct rules_outbox_ctx x = {.tenant = tenant, .job_id = job_id};
    int rc = sq_run_tx(impl, TX_READ, delivery_list_body, rules_outbox_undo, &x);
    return rules_outbox_done(&x, rc, out, n);
}
