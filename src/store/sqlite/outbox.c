/* outbox.c - completion callback deliveries in the embedded backend: claiming the due
 * ones, recording attempts, listing a job's. sq_job_save (jobs.c) queues them. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sqlite_int.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/xmalloc.h"

/* ---- completion callbacks: the outbox ---------------------------------------------- */

struct outbox_ctx {
    int64_t lease_ms;
    size_t max;
    const char *tenant, *job_id;
    const struct store_delivery *d;
    const struct store_delivery_attempt *a;
    int state;
    int64_t next_at;
    struct store_delivery *list;
    size_t n;
};

static void outbox_undo(void *vctx)
{
    struct outbox_ctx *x = vctx;
    store_deliveries_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}

SQ_SQL(sql_outbox_due, "SELECT did, id, job_id, tenant, event, url, attempts, created_at, next_at, "
                       "updated_at FROM outbox WHERE state = 0 AND next_at <= ?1 "
                       "AND lease_until <= ?1 ORDER BY next_at LIMIT ?2");
SQ_SQL(sql_outbox_lease, "UPDATE outbox SET lease_until = ?2, token = ?3 WHERE did = ?1");

static int delivery_claim_body(struct sq_conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
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
        struct store_delivery *d = &x->list[x->n];
        dids[x->n++] = sqlite3_column_int64(s, 0);
        sq_col_copy(s, 1, d->id, sizeof d->id);
        sq_col_copy(s, 2, d->job_id, sizeof d->job_id);
        sq_col_copy(s, 3, d->tenant, sizeof d->tenant);
        sq_col_copy(s, 4, d->event, sizeof d->event);
        d->url = sq_col_dup(s, 5, NULL);
        d->attempts = sqlite3_column_int(s, 6);
        d->created_at = sqlite3_column_int64(s, 7);
        d->next_at = sqlite3_column_int64(s, 8);
        d->updated_at = sqlite3_column_int64(s, 9);
        d->state = DELIVERY_PENDING;
    }
    sqlite3_reset(s);
    for (size_t i = 0; rc >= 0 && i < x->n; i++) {
        struct store_delivery *d = &x->list[i];
        if ((rc = ids_random("lease_", 24, d->token)) < 0)
            break;
        if ((rc = sq_q(c, &sql_outbox_lease, &u)) < 0)
            break;
        sqlite3_bind_int64(u, 1, dids[i]);
        sqlite3_bind_int64(u, 2, now + (x->lease_ms > 0 ? x->lease_ms : 1));
        sq_bind_str(u, 3, d->token);
        rc = sq_step(u);
    }
    free(dids);
    if (rc < 0) {
        outbox_undo(x);
        return rc;
    }
    return (int)x->n;
}

int sq_delivery_claim(void *impl, int64_t lease_ms, size_t max, struct store_delivery **out,
                      size_t *n)
{
    struct outbox_ctx x = {.lease_ms = lease_ms, .max = max};
    /* Like a claim, a lease need not survive a crash: the delivery is simply due. */
    int rc = sq_run_tx(impl, TX_WRITE_NOSYNC, delivery_claim_body, outbox_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    if (rc <= 0) {
        store_deliveries_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
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
    struct outbox_ctx *x = vctx;
    const struct store_delivery_attempt *a = x->a;
    sqlite3_stmt *s;
    int64_t now = clock_now_ms();
    int rc = sq_q(c, &sql_outbox_record, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->d->id);
    sq_bind_str(s, 2, x->d->token);
    sqlite3_bind_int(s, 3, x->state);
    sqlite3_bind_int64(s, 4, x->next_at);
    if (a) {
        char ts[25];
        buf_reset(&c->tmp);
        buf_printf(&c->tmp, "{\"attempt\":%d,\"at\":\"%s\",\"latencyMs\":%lld,\"status\":%d",
                   x->d->attempts + 1, clock_fmt_ms(a->at, ts), (long long)a->latency_ms,
                   a->status);
        if (a->error_code) {
            const char *m = a->error_message ? a->error_message : "";
            buf_puts(&c->tmp, ",\"error\":{\"code\":");
            buf_json_str(&c->tmp, a->error_code, strlen(a->error_code));
            buf_puts(&c->tmp, ",\"message\":");
            buf_json_str(&c->tmp, m, strlen(m));
            buf_putc(&c->tmp, '}');
        }
        buf_putc(&c->tmp, '}');
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
    if (state < DELIVERY_PENDING || state > DELIVERY_ABANDONED)
        return -SLUICE_E_INVALID_PARAMETER;
    struct outbox_ctx x = {.d = d, .a = a, .state = state, .next_at = next_at};
    return sq_run_tx(impl, TX_WRITE_BG, delivery_record_body, NULL, &x);
}

SQ_SQL(sql_outbox_list, "SELECT id, job_id, tenant, event, url, state, attempts, created_at, "
                        "next_at, updated_at, log FROM outbox WHERE jid = ?1 ORDER BY did");

static int delivery_list_body(struct sq_conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
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
        struct store_delivery *d = &x->list[x->n++];
        memset(d, 0, sizeof *d);
        sq_col_copy(s, 0, d->id, sizeof d->id);
        sq_col_copy(s, 1, d->job_id, sizeof d->job_id);
        sq_col_copy(s, 2, d->tenant, sizeof d->tenant);
        sq_col_copy(s, 3, d->event, sizeof d->event);
        d->url = sq_col_dup(s, 4, NULL);
        d->state = sqlite3_column_int(s, 5);
        d->attempts = sqlite3_column_int(s, 6);
        d->created_at = sqlite3_column_int64(s, 7);
        d->next_at = sqlite3_column_int64(s, 8);
        d->updated_at = sqlite3_column_int64(s, 9);
        d->log = sq_col_dup(s, 10, NULL);
    }
    sqlite3_reset(s);
    if (rc < 0) {
        outbox_undo(x);
        return rc;
    }
    return 1;
}

int sq_delivery_list(void *impl, const char *tenant, const char *job_id,
                     struct store_delivery **out, size_t *n)
{
    struct outbox_ctx x = {.tenant = tenant, .job_id = job_id};
    int rc = sq_run_tx(impl, TX_READ, delivery_list_body, outbox_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}
