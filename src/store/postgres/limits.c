/* limits.c - the processing limits shared by the nodes of a PostgreSQL store: rate
 * buckets (store_bucket_take, store_bucket_block) and concurrency units
 * (store_sem_adjust).
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/postgres/pg_int.h"
#include "util/errors.h"

/* ---- shared rate buckets and concurrency units ------------------------------------ */

struct bucket_ctx {
    const char *id;
    double interval, tolerance;
    int64_t n, until;
    struct store_bucket_lease *out;
};

/* One statement: the bucket is created or advanced under its row lock, on the
 * database clock, so every node draws its slots from the same schedule. */
static int bucket_take_body(struct conn *c, void *vctx)
{
    struct bucket_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    char interval[48];
    snprintf(interval, sizeof interval, "%.17g", x->interval);
    pg_param_str(&p, x->id);
    pg_param_i64(&p, c->now);
    pg_param_i64(&p, x->n);
    pg_param_str(&p, interval);
    int rc =
        pg_exec(c,
                "INSERT INTO buckets AS b (id, tat, epoch) VALUES($1, $2::float8 + $3::float8 * "
                "$4::float8, 0) ON CONFLICT (id) DO UPDATE SET tat = greatest(b.tat, $2::float8) "
                "+ $3::float8 * $4::float8 RETURNING tat - $3::float8 * $4::float8, epoch",
                &p, &r);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    rules_bucket_lease(x->out, c->now, strtod(PQgetvalue(r, 0, 0), NULL),
                       (uint64_t)pg_col_i64(r, 0, 1));
    PQclear(r);
    return 0;
}

int pg_bucket_take(void *impl, const char *id, double interval_ms, double tolerance_ms, int64_t n,
                   struct store_bucket_lease *out)
{
    struct bucket_ctx x = {id, interval_ms, tolerance_ms, n, 0, out};
    return pg_run_tx(impl, bucket_take_body, NULL, &x);
}

static int bucket_block_body(struct conn *c, void *vctx)
{
    struct bucket_ctx *x = vctx;
    struct pg_params p = {0};
    pg_param_str(&p, x->id);
    pg_param_i64(&p, x->until);
    int rc = pg_exec(c,
                     "INSERT INTO buckets AS b (id, tat, epoch) VALUES($1, $2::float8, 1) "
                     "ON CONFLICT (id) DO UPDATE SET tat = excluded.tat, epoch = b.epoch + 1 "
                     "WHERE b.tat < excluded.tat",
                     &p, NULL);
    return rc < 0 ? rc : 0;
}

int pg_bucket_block(void *impl, const char *id, int64_t until_ms)
{
    struct bucket_ctx x = {id, 0, 0, 0, until_ms, NULL};
    return pg_run_tx(impl, bucket_block_body, NULL, &x);
}

struct sem_ctx {
    const char *id, *node;
    int64_t cap, delta, timeout_ms, held;
};

/* Units of one id are counted under a transaction-scoped advisory lock on the id, so
 * two nodes taking units at once cannot both see room for the last one. Units of
 * silent nodes do not count (and store_heartbeat deletes them). */
static int sem_body(struct conn *c, void *vctx)
{
    struct sem_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, x->id);
    int rc =
        pg_exec(c, "SELECT pg_advisory_xact_lock(hashtext('sluice.sem:' || $1::text))", &p, NULL);
    if (rc < 0)
        return rc;
    pg_param_str(&p, x->node);
    pg_param_i64(&p, c->now - x->timeout_ms);
    rc =
        pg_exec(c,
                "SELECT coalesce(sum(held) FILTER (WHERE node = $2), 0), coalesce(sum(held) FILTER "
                "(WHERE node <> $2 AND node IN (SELECT node FROM nodes WHERE last_seen >= $3)), 0) "
                "FROM sems WHERE id = $1",
                &p, &r);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    int64_t held = pg_col_i64(r, 0, 0), others = pg_col_i64(r, 0, 1);
    PQclear(r);
    held = rules_sem_held(held, others, x->cap, x->delta);
    x->held = held;
    struct pg_params q = {0};
    pg_param_str(&q, x->id);
    pg_param_str(&q, x->node);
    pg_param_i64(&q, held);
    rc = pg_exec(c,
                 "INSERT INTO sems(id, node, held) VALUES($1, $2, $3) "
                 "ON CONFLICT(id, node) DO UPDATE SET held = excluded.held",
                 &q, NULL);
    return rc < 0 ? rc : 0;
}

int pg_sem_adjust(void *impl, const char *id, int64_t cap, int64_t delta, int64_t *held)
{
    struct pg *s = impl;
    struct sem_ctx x = {id, s->node, cap, delta, s->opt.node_timeout_ms, 0};
    int rc = pg_run_tx(s, sem_body, NULL, &x);
    if (rc >= 0)
        *held = x.held;
    return rc;
}
