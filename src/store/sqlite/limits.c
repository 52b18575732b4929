/* limits.c - the rate buckets and concurrency semaphores of the embedded backend
 * (store_bucket_take, store_sem_adjust): one process owns a SQLite store, so they are
 * shared only by its own schedulers. */
#include "store/sqlite/sqlite_int.h"
#include "util/clock.h"
#include "util/errors.h"

/* ---- shared rate buckets -------------------------------------------------------------- */

struct bucket_ctx {
    const char *id;
    double interval, tolerance;
    int64_t n, until;
    int block;
    struct store_bucket_lease *out;
};

SQ_SQL(sql_bucket_get, "SELECT tat, epoch FROM buckets WHERE id = ?1");
SQ_SQL(sql_bucket_put, "INSERT INTO buckets(id, tat, epoch) VALUES(?1, ?2, ?3) "
                       "ON CONFLICT(id) DO UPDATE SET tat = excluded.tat, epoch = excluded.epoch");

static int bucket_body(struct sq_conn *c, void *vctx)
{
    struct bucket_ctx *x = vctx;
    sqlite3_stmt *s;
    double tat = 0;
    uint64_t epoch = 0;
    int64_t now = clock_now_ms();
    int rc = sq_q(c, &sql_bucket_get, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->id);
    rc = sq_step(s);
    if (rc == 1) {
        tat = sqlite3_column_double(s, 0);
        epoch = (uint64_t)sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if (x->block) {
        if ((double)x->until <= tat)
            return 0;
        tat = (double)x->until;
        epoch++;
    } else {
        rules_bucket_lease(x->out, now, tat, epoch);
        if (x->n == 0)
            return 0;
        tat = x->out->tat0 + (double)x->n * x->interval;
    }
    if ((rc = sq_q(c, &sql_bucket_put, &s)) < 0)
        return rc;
    sq_bind_str(s, 1, x->id);
    sqlite3_bind_double(s, 2, tat);
    sqlite3_bind_int64(s, 3, (int64_t)epoch);
    rc = sq_step(s);
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

int sq_bucket_take(void *impl, const char *id, double interval_ms, double tolerance_ms, int64_t n,
                   struct store_bucket_lease *out)
{
    struct bucket_ctx x = {id, interval_ms, tolerance_ms, n, 0, 0, out};
    /* a lost lease only leaves its slots unused: no fsync needed */
    return sq_run_tx(impl, TX_WRITE_NOSYNC, bucket_body, NULL, &x);
}

int sq_bucket_block(void *impl, const char *id, int64_t until_ms)
{
    struct bucket_ctx x = {id, 0, 0, 0, until_ms, 1, NULL};
    return sq_run_tx(impl, TX_WRITE_NOSYNC, bucket_body, NULL, &x);
}

struct sem_ctx {
    const char *id;
    int64_t cap, delta, held;
};

SQ_SQL(sql_sem_get, "SELECT held FROM sems WHERE id = ?1");
SQ_SQL(sql_sem_put, "INSERT INTO sems(id, held) VALUES(?1, ?2) "
                    "ON CONFLICT(id) DO UPDATE SET held = excluded.held");

static int sem_body(struct sq_conn *c, void *vctx)
{
    struct sem_ctx *x = vctx;
    sqlite3_stmt *s;
    int64_t held = 0;
    int rc = sq_q(c, &sql_sem_get, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->id);
    rc = sq_step(s);
    if (rc == 1)
        held = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    held = rules_sem_held(held, 0, x->cap, x->delta); /* the only holder */
    x->held = held;
    if ((rc = sq_q(c, &sql_sem_put, &s)) < 0)
        return rc;
    sq_bind_str(s, 1, x->id);
    sqlite3_bind_int64(s, 2, held);
    rc = sq_step(s);
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

int sq_sem_adjust(void *impl, const char *id, int64_t cap, int64_t delta, int64_t *held)
{
    struct sem_ctx x = {id, cap, delta, 0};
    int rc = sq_run_tx(impl, TX_WRITE_NOSYNC, sem_body, NULL, &x);
    if (rc >= 0)
        *held = x.held;
    return rc;
}
