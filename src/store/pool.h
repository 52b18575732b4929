/* pool.h - private to src/store/: the bounded pool of database connections that both
 * backends check their transactions' connections out of (pool.c).
 *
 * A pool knows nothing of the database: it keeps the connections not in use (the one
 * returned last is handed out first, so a warm one serves), opens a new one through
 * the backend's open function while fewer than max are open, and makes a caller wait
 * when max are in use. A backend whose server can be away (PostgreSQL) sets a
 * reconnect backoff: after a failed open no new one is tried before a growing delay
 * has passed, and callers get that open's error meanwhile. Every function is
 * thread-safe but pool_init and pool_release. */
#ifndef SLUICE_STORE_POOL_H
#define SLUICE_STORE_POOL_H

#include <pthread.h>
#include <stdint.h>

/* Opens a new connection of owner: 0 and [out] *conn, or a negative error. */
typedef int (*pool_open_fn)(void *owner, void **conn);
/* Closes and frees a connection open_fn made. */
typedef void (*pool_free_fn)(void *conn);

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void **idle; /* connections not in use; idle[nidle - 1] returned last */
    int nidle, nopen, max;
    void *owner;
    pool_open_fn open;
    pool_free_fn free;
    int backoff_first_ms, backoff_max_ms; /* 0: no backoff */
    int backoff_ms;     /* the delay after the last failed open (0: it succeeded) */
    int64_t down_until; /* monotonic ms: no open before */
    int down_rc;        /* the error of the failed open, returned meanwhile */
};

/* Makes p an empty pool of at most max connections of owner, opened by open and freed
 * by free. backoff_first_ms > 0: after a failed open, none before that many ms,
 * doubling per further failure up to backoff_max_ms. Release with pool_release. */
void pool_init(struct pool *p, int max, int backoff_first_ms, int backoff_max_ms, void *owner,
               pool_open_fn open, pool_free_fn free);
/* Frees the idle connections and p's own resources; no connection may be out. */
void pool_release(struct pool *p);
/* [out] *conn: an idle connection or a new one, waiting while max are in use. 0, or
 * the open function's error (also, under backoff, that of the last failed open). */
int pool_get(struct pool *p, void **conn);
/* Returns conn (from pool_get) for the next caller. */
void pool_put(struct pool *p, void *conn);
/* Frees conn (from pool_get) instead of returning it: one that must serve no one
 * else (a broken session, a connection left in a bad state). */
void pool_discard(struct pool *p, void *conn);

#endif
