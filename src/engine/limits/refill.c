/* refill.c - shared mode (limits_share, for a store several nodes use): rate buckets
 * live in the store and a thread of this process, the refiller, leases their slots a
 * fraction of a second ahead (store_bucket_take), tells the store of back-offs
 * (store_bucket_block) and takes and gives back units of concurrency caps
 * (store_sem_adjust). The leased slots wait in each bucket's stock, where admission
 * and pacing take them. Store calls never run under the registry's mutex. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/limits/limits_int.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* Drops leased slots too old to use. Under mu. */
static void stock_trim(struct bucket *b, int64_t now)
{
    size_t k = 0;
    int64_t late = b->t_ms > STALE_MS ? (int64_t)b->t_ms : STALE_MS;
    while (k < b->nstock && b->stock[k] < now - late)
        k++;
    if (k) {
        memmove(b->stock, b->stock + k, (b->nstock - k) * sizeof *b->stock);
        b->nstock -= k;
    }
}

int64_t stock_until(struct bucket *b, int64_t now, int64_t until)
{
    stock_trim(b, now);
    int64_t n = 0;
    while ((size_t)n < b->nstock && b->stock[n] <= until && b->stock[n] >= b->blocked_until)
        n++;
    return n;
}

void stock_want(struct limits *l, struct bucket *b, int64_t n, double t_ms, double tau)
{
    b->t_ms = t_ms;
    b->tau = tau;
    if (n > b->demand)
        b->demand = n;
    pthread_cond_signal(&l->refill_cv);
}

int64_t stock_take(struct bucket *b, size_t n)
{
    int64_t last = b->stock[n - 1];
    memmove(b->stock, b->stock + n, (b->nstock - n) * sizeof *b->stock);
    b->nstock -= n;
    return last;
}

void stock_add(struct bucket *b, int64_t at)
{
    if (b->nstock == b->capstock) {
        b->capstock = b->capstock ? b->capstock * 2 : 16;
        b->stock = xrealloc(b->stock, b->capstock * sizeof *b->stock);
    }
    size_t i = b->nstock++;
    while (i > 0 && b->stock[i - 1] > at) { /* keep them in order */
        b->stock[i] = b->stock[i - 1];
        i--;
    }
    b->stock[i] = at;
}

#define UNITS_IDLE_MS 500 /* concurrency units unused this long go back to the store */

struct refill_job {
    char *id;
    double t_ms, tau;
    int64_t n, block_wall;
    int64_t cap, units; /* units: > 0 to take, < 0 to give back */
};

/* What the refiller is to do for b now, into [out] j: 0 when nothing. Units held but
 * unused for a while are given back here (units < 0). Under mu. */
static int refill_job_of(struct bucket *b, int64_t mono, struct refill_job *j)
{
    int64_t units = 0;
    if (b->unit_demand > 0) {
        units = b->unit_demand;
        b->unit_demand = 0;
    } else if (b->units > b->inflight) {
        /* units held but unused for a while go back for other nodes */
        if (!b->idle_since)
            b->idle_since = mono;
        else if (mono - b->idle_since > UNITS_IDLE_MS) {
            units = b->inflight - b->units;
            b->units = b->inflight; /* not to be granted meanwhile */
            b->idle_since = 0;
        }
    } else {
        b->idle_since = 0;
    }
    if (b->demand <= 0 && !b->block_wall && !units)
        return 0;
    int64_t most =
        b->t_ms > 0 ? (int64_t)(LEASE_MS / b->t_ms) + 1 + (int64_t)(b->tau / b->t_ms) : 0;
    *j = (struct refill_job){.id = xstrdup(b->id),
                             .t_ms = b->t_ms,
                             .tau = b->tau,
                             .n = b->demand < most ? b->demand : most,
                             .block_wall = b->block_wall,
                             .cap = b->cap,
                             .units = units};
    b->demand = 0;
    b->block_wall = 0;
    return 1;
}

/* Runs j against the store, then, under mu, puts what came back into its bucket: the
 * leased slots, the units held, or the demand again when the store failed. Called
 * without the lock. Frees j->id. */
static void refill_run(struct limits *l, struct refill_job *j)
{
    struct store_bucket_lease lease = {0};
    int rc = 0;
    if (j->block_wall)
        rc = store_bucket_block(l->shared, j->id, j->block_wall);
    if (rc >= 0 && j->n > 0)
        rc = store_bucket_take(l->shared, j->id, j->t_ms, j->tau, j->n, &lease);
    int64_t held = -1;
    if (j->units) {
        char sem[600];
        snprintf(sem, sizeof sem, "%s#c", j->id);
        if (store_sem_adjust(l->shared, sem, j->cap, j->units, &held) < 0)
            held = -1;
    }
    int64_t mono = clock_mono_ms();
    pthread_mutex_lock(&l->mu);
    struct bucket *b = bucket_get(l, j->id, mono);
    if (j->units > 0 && held >= 0)
        b->units = held;
    else if (j->units < 0 && held < 0)
        b->units -= j->units; /* not given back: still ours */
    else if (j->units < 0)
        b->units = held > b->inflight ? held : b->inflight;
    if (rc < 0) {
        b->demand = j->n > b->demand ? j->n : b->demand; /* again, later */
    } else if (j->n > 0) {
        if (lease.epoch != b->store_epoch) { /* someone was told to wait */
            b->nstock = 0;
            b->store_epoch = lease.epoch;
        }
        for (int64_t k = 0; k < j->n; k++) {
            double at = lease.tat0 + (double)k * j->t_ms - j->tau;
            if (at < (double)lease.now)
                at = (double)lease.now;
            stock_add(b, mono + (int64_t)ceil(at - (double)lease.now));
        }
        /* the local view of the shared schedule, for admission estimates */
        double tat = (double)mono + (lease.tat0 - (double)lease.now) + (double)j->n * j->t_ms;
        if (tat > b->tat)
            b->tat = tat;
    }
    pthread_mutex_unlock(&l->mu);
    free(j->id);
}

/* The refiller: leases what the buckets want from the store, tells it of back-offs,
 * outside the mutex (store calls never run under it). */
static void *refill_main(void *arg)
{
    struct limits *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->refill_stop) {
        struct refill_job *jobs = NULL;
        size_t nj = 0, cap = 0;
        for (size_t i = 0; i < NHASH; i++)
            for (struct bucket *b = l->hash[i]; b; b = b->next) {
                struct refill_job j;
                if (!refill_job_of(b, clock_mono_ms(), &j))
                    continue;
                if (nj == cap) {
                    cap = cap ? cap * 2 : 8;
                    jobs = xrealloc(jobs, cap * sizeof *jobs);
                }
                jobs[nj++] = j;
            }
        pthread_mutex_unlock(&l->mu);
        for (size_t i = 0; i < nj; i++)
            refill_run(l, &jobs[i]);
        free(jobs);
        pthread_mutex_lock(&l->mu);
        if (!l->refill_stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&l->refill_cv, &l->mu, &ts);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int limits_share(struct limits *l, struct store *st)
{
    l->shared = st;
    if (pthread_create(&l->refiller, NULL, refill_main, l) != 0) {
        l->shared = NULL;
        return -SLUICE_E_INTERNAL;
    }
    l->refill_started = 1;
    return 0;
}

void refill_stop(struct limits *l)
{
    if (!l->refill_started)
        return;
    pthread_mutex_lock(&l->mu);
    l->refill_stop = 1;
    pthread_cond_signal(&l->refill_cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->refiller, NULL);
}
