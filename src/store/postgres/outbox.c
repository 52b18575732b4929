/* outbox.c - the PostgreSQL backend's completion callbacks: the outbox of deliveries
 * (store_delivery_claim, store_delivery_record, store_delivery_list).
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres/pg_int.h"
#include "util/buf.h"
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

static int delivery_claim_body(struct conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_i64(&p, c->now);
    pg_param_i64(&p, (int64_t)x->max);
    int rc =
        pg_exec(c,
                "SELECT did, id, job_id, tenant, event, url, attempts, created_at, next_at, "
                "updated_at FROM outbox WHERE state = 0 AND next_at <= $1 AND lease_until <= $1 "
                "ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                &p, &r);
    if (rc < 0)
        return rc;
    int nrows = rc;
    x->list = xcalloc(x->max ? x->max : 1, sizeof *x->list);
    for (int i = 0; i < nrows && x->n < x->max; i++) {
        struct store_delivery *d = &x->list[x->n++];
        pg_col_copy(r, i, 1, d->id, sizeof d->id);
        pg_col_copy(r, i, 2, d->job_id, sizeof d->job_id);
        pg_col_copy(r, i, 3, d->tenant, sizeof d->tenant);
        pg_col_copy(r, i, 4, d->event, sizeof d->event);
        d->url = pg_col_strdup(r, i, 5, NULL);
        d->attempts = (int)pg_col_i64(r, i, 6);
        d->created_at = pg_col_i64(r, i, 7);
        d->next_at = pg_col_i64(r, i, 8);
        d->updated_at = pg_col_i64(r, i, 9);
        d->state = DELIVERY_PENDING;
        if ((rc = ids_random("lease_", 24, d->token)) < 0)
            break;
        struct pg_params q = {0};
        pg_param_i64(&q, pg_col_i64(r, i, 0));
        pg_param_i64(&q, c->now + (x->lease_ms > 0 ? x->lease_ms : 1));
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
    struct outbox_ctx x = {.lease_ms = lease_ms, .max = max};
    int rc = pg_run_tx(impl, delivery_claim_body, outbox_undo, &x);
    *out = rc <= 0 ? NULL : x.list;
    *n = rc <= 0 ? 0 : x.n;
    if (rc == 0)
        store_deliveries_free(x.list, x.n);
    return rc;
}

static int delivery_record_body(struct conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
    const struct store_delivery_attempt *a = x->a;
    struct pg_params p = {0};
    pg_param_str(&p, x->d->id);
    pg_param_str(&p, x->d->token);
    pg_param_i64(&p, x->state);
    pg_param_i64(&p, x->next_at);
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
    if (state < DELIVERY_PENDING || state > DELIVERY_ABANDONED)
        return -SLUICE_E_INVALID_PARAMETER;
    struct outbox_ctx x = {.d = d, .a = a, .state = state, .next_at = next_at};
    return pg_run_tx(impl, delivery_record_body, NULL, &x);
}

static int delivery_list_body(struct conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
    struct rules_jobrow jr;
    PGresult *r;
    int rc = pg_job_load(c, x->tenant, x->job_id, 0, &jr);
    if (rc <= 0)
        return rc;
    store_job_release(&jr.j);
    struct pg_params p = {0};
    pg_param_i64(&p, jr.jid);
    rc = pg_exec(c,
                 "SELECT id, job_id, tenant, event, url, state, attempts, created_at, next_at, "
                 "updated_at, log FROM outbox WHERE jid = $1 ORDER BY did",
                 &p, &r);
    if (rc < 0)
        return rc;
    x->list = xcalloc((size_t)rc + 1, sizeof *x->list);
    for (int i = 0; i < rc; i++) {
        struct store_delivery *d = &x->list[x->n++];
        pg_col_copy(r, i, 0, d->id, sizeof d->id);
        pg_col_copy(r, i, 1, d->job_id, sizeof d->job_id);
        pg_col_copy(r, i, 2, d->tenant, sizeof d->tenant);
        pg_col_copy(r, i, 3, d->event, sizeof d->event);
        d->url = pg_col_strdup(r, i, 4, NULL);
        d->state = (int)pg_col_i64(r, i, 5);
        d->attempts = (int)pg_col_i64(r, i, 6);
        d->created_at = pg_col_i64(r, i, 7);
        d->next_at = pg_col_i64(r, i, 8);
        d->updated_at = pg_col_i64(r, i, 9);
        d->log = pg_col_strdup(r, i, 10, NULL);
    }
    PQclear(r);
    return 1;
}

int pg_delivery_list(void *impl, const char *tenant, const char *job_id,
                     struct store_delivery **out, size_t *n)
{
    struct outbox_ctx x = {.tenant = tenant, .job_id = job_id};
    int rc = pg_run_tx(impl, delivery_list_body, outbox_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}
