/* outbox.c - the PostgreSQL backend's completion callbacks: the outbox of deliveries
 * (store_delivery_claim, store_delivery_record, store_delivery_list).
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>

#include "store/postgres/pg_int.h"
#include "util/buf.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* ---- completion callbacks: the outbox ---------------------------------------------- */

static int delivery_claim_body(struct conn *c, void *vctx)
{
    struct rules_outbox_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_i64(&p, c->now);
    pg_param_i64(&p, (int64_t)x->max);
    int rc = pg_exec(c,
                     "SELECT " DELIVERY_COLS ", did FROM outbox WHERE state = 0 AND next_at <= $1 "
                     "AND lease_until <= $1 ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                     &p, &r);
    if (rc < 0)
        return rc;
    int nrows = rc;
    x->list = xcalloc(x->max ? x->max : 1, sizeof *x->list);
    for (int i = 0; i < nrows && x->n < x->max; i++) {
        struct store_delivery *d = &x->list[x->n++];
        int64_t until;
        rules_delivery_read(&pg_cols, &(struct pg_row){r, i}, 0, d);
        if ((rc = rules_delivery_lease(d, c->now, x->lease_ms, &until)) < 0)
            break;
        struct pg_params q = {0};
        pg_param_i64(&q, pg_col_i64(r, i, DELIVERY_NCOLS));
        pg_param_i64(&q, until);
        pg_param_str(&q, d->token);
        if ((rc = pg_exec(c, "UPDATE outbox SET lease_until = $2, token = $3 WHERE did = $1", &q,
                          NULL)) < 0)
            break;
    }
    PQclear(r);
    return rc < 0 ? rc : (int)x->n;
}

int pg_delivery_claim(void *impl, int64_t lease_ms, size_t max, struct store_delivery **out,
                      size_t *n)
{
    struct rules_outbox_ctx x = {.lease_ms = lease_ms, .max = max};
    int rc = pg_run_tx(impl, delivery_claim_body, rules_outbox_undo, &x);
    return rules_outbox_done(&x, rc, out, n);
}

static int delivery_record_body(struct conn *c, void *vctx)
{
    struct rules_outbox_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->d->id);
    pg_param_str(&p, x->d->token);
    pg_param_i64(&p, x->state);
    pg_param_i64(&p, x->next_at);
    if (x->a) {
        rules_delivery_attempt(x, &c->tmp);
        pg_param_str(&p, buf_cstr(&c->tmp));
    } else {
        pg_param_str(&p, NULL);
    }
    pg_param_i64(&p, c->now);
    int rc = pg_exec(c,
                     "UPDATE outbox SET state = $3, next_at = $4, lease_until = 0, token = '', "
                     "attempts = attempts + (CASE WHEN $5::text IS NULL THEN 0 ELSE 1 END), "
                     "updated_at = $6, log = CASE WHEN $5::text IS NULL THEN log WHEN log = '[]' "
                     "THEN '[' || $5 || ']' ELSE left(log, -1) || ',' || $5 || ']' END "
                     "WHERE id = $1 AND token = $2 AND token <> '' AND state = 0",
                     &p, NULL);
    if (rc < 0)
        return rc;
    return rc == 1 ? 1 : -SLUICE_E_LEASE_LOST;
}

int pg_delivery_record(void *impl, const struct store_delivery *d,
                       const struct store_delivery_attempt *a, int state, int64_t next_at)
{
    struct rules_outbox_ctx x;
    int rc = rules_delivery_record_args(&x, d, a, state, next_at);
    return rc < 0 ? rc : pg_run_tx(impl, delivery_record_body, NULL, &x);
}

static int delivery_list_body(struct conn *c, void *vctx)
{
    struct rules_outbox_ctx *x = vctx;
    struct rules_jobrow jr;
    PGresult *r;
    int rc = pg_job_load(c, x->tenant, x->job_id, 0, &jr);
    if (rc <= 0)
        return rc;
    store_job_release(&jr.j);
    struct pg_params p = {0};
    pg_param_i64(&p, jr.jid);
    rc =
        pg_exec(c, "SELECT " DELIVERY_COLS ", log FROM outbox WHERE jid = $1 ORDER BY did", &p, &r);
    if (rc < 0)
        return rc;
    x->list = xcalloc((size_t)rc + 1, sizeof *x->list);
    for (int i = 0; i < rc; i++)
        rules_delivery_read(&pg_cols, &(struct pg_row){r, i}, 1, &x->list[x->n++]);
    PQclear(r);
    return 1;
}

int pg_delivery_list(void *impl, const char *tenant, const char *job_id,
                     struct store_delivery **out, size_t *n)
{
    struct rules_outbox_ctx x = {.tenant = tenant, .job_id = job_id};
    int rc = pg_run_tx(impl, delivery_list_body, rules_outbox_undo, &x);
    return rules_outbox_done(&x, rc, out, n);
}
