/* pool.c - the connection pool of both backends (contract in pool.h): a mutex, a stack
 * of idle connections and a count of the open ones. The lock is held only to take or
 * return a connection, never while one is opened or freed, so a slow connect (a
 * server far away or down) does not hold up the callers that find an idle one. */
#include <stdlib.h>

#include "store/pool.h"
#include "util/clock.h"
#include "util/xmalloc.h"

void pool_init(struct pool *p, int max, int backoff_first_ms, int backoff_max_ms, void *owner,
               pool_open_fn open, pool_free_fn free)
{
    *p = (struct pool){.max = max,
                       .owner = owner,
                       .open = open,
                       .free = free,
                       .backoff_first_ms = backoff_first_ms,
                       .backoff_max_ms = backoff_max_ms};
    p->idle = xcalloc((size_t)max, sizeof *p->idle);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

void pool_release(struct pool *p)
{
    while (p->nidle > 0)
        p->free(p->idle[--p->nidle]);
    free(p->idle);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

int pool_get(struct pool *p, void **conn)
{
    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0 && p->nopen >= p->max)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->nidle > 0) {
        *conn = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    if (p->backoff_ms && clock_mono_ms() < p->down_until) {
        int rc = p->down_rc;
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    p->nopen++; /* the slot is ours while we open */
    pthread_mutex_unlock(&p->mu);
    int rc = p->open(p->owner, conn);
    pthread_mutex_lock(&p->mu);
    if (rc < 0) {
        p->nopen--;
        if (p->backoff_first_ms > 0) {
            int next =
                p->backoff_ms * 2 > p->backoff_max_ms ? p->backoff_max_ms : p->backoff_ms * 2;
            p->backoff_ms = p->backoff_ms ? next : p->backoff_first_ms;
            p->down_until = clock_mono_ms() + p->backoff_ms;
            p->down_rc = rc;
        }
        pthread_cond_signal(&p->cv);
    } else {
        p->backoff_ms = 0;
        p->down_until = 0;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void pool_put(struct pool *p, void *conn)
{
    pthread_mutex_lock(&p->mu);
    p->idle[p->nidle++] = conn;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void pool_discard(struct pool *p, void *conn)
{
    p->free(conn);
    pthread_mutex_lock(&p->mu);
    p->nopen--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
