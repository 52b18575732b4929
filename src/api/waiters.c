/* waiters.c - the watcher that resumes parked requests; see waiters.h. */
#include "api/waiters.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "util/errors.h"
#include "util/xmalloc.h"

#define SWEEP_MS 100

struct waiter {
    struct waiter *next;
    struct request *req;
    enum waiter_kind kind;
    char tenant[STORE_NAME_MAX];
    char job[STORE_ID_MAX];
    int status;
    int64_t deadline;
};

struct waiters {
    struct store *st;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct waiter *head; /* new waiters; the watcher takes the whole list each sweep */
    size_t active;       /* registered and not resumed yet */
    int closing, stop;
    pthread_t thread;
};

/* One store read per job and sweep, whatever the number of waiters on it. */
struct seen {
    const char *tenant, *job;
    int status; /* a job status, or SEEN_GONE */
};

/* What job_status answers besides a job status. */
enum { SEEN_GONE = -1, SEEN_UNKNOWN = -2 /* store error: check again later */ };

static int job_status(struct waiters *ws, struct seen *cache, size_t *n, size_t cap,
                      const struct waiter *w)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(cache[i].job, w->job) && !strcmp(cache[i].tenant, w->tenant))
            return cache[i].status;
    struct store_job j;
    memset(&j, 0, sizeof j);
    int rc = store_job_get(ws->st, w->tenant, w->job, &j);
    int status = rc == 1 ? j.status : rc == 0 ? SEEN_GONE : SEEN_UNKNOWN;
    store_job_release(&j);
    if (*n < cap && status != SEEN_UNKNOWN)
        cache[(*n)++] = (struct seen){w->tenant, w->job, status};
    return status;
}

static int due(struct waiters *ws, struct waiter *w, int64_t now, struct seen *cache, size_t *n,
               size_t cap)
{
    if (ws->closing || now >= w->deadline)
        return 1;
    if (w->kind == WAIT_TICK)
        return 0;
    int st = job_status(ws, cache, n, cap, w);
    if (st == SEEN_UNKNOWN)
        return 0;
    if (st == SEEN_GONE || st == JOB_SUCCEEDED || st == JOB_FAILED || st == JOB_CANCELED)
        return 1;
    return w->kind == WAIT_CHANGE && st != w->status;
}

static void *watch(void *arg)
{
    struct waiters *ws = arg;
    struct seen cache[256];
    pthread_mutex_lock(&ws->mu);
    while (!ws->stop) {
        struct waiter *list = ws->head;
        ws->head = NULL;
        pthread_mutex_unlock(&ws->mu);
        int64_t now = clock_now_ms();
        size_t n = 0;
        struct waiter *keep = NULL, *resumed = NULL;
        while (list) {
            struct waiter *w = list;
            list = w->next;
            if (due(ws, w, now, cache, &n, sizeof cache / sizeof cache[0])) {
                req_resume(w->req);
                /* freed after the sweep: the cache points at its tenant and job */
                w->next = resumed;
                resumed = w;
                pthread_mutex_lock(&ws->mu);
                ws->active--;
                pthread_mutex_unlock(&ws->mu);
            } else {
                w->next = keep;
                keep = w;
            }
        }
        while (resumed) {
            struct waiter *w = resumed;
            resumed = w->next;
            free(w);
        }
        pthread_mutex_lock(&ws->mu);
        while (keep) { /* put back behind what arrived meanwhile */
            struct waiter *w = keep;
            keep = w->next;
            w->next = ws->head;
            ws->head = w;
        }
        if (ws->stop)
            break;
        struct timespec ts;
        clock_deadline(CLOCK_REALTIME, SWEEP_MS, &ts);
        pthread_cond_timedwait(&ws->cv, &ws->mu, &ts);
    }
    pthread_mutex_unlock(&ws->mu);
    return NULL;
}

struct waiters *waiters_start(struct store *st)
{
    struct waiters *ws = xcalloc(1, sizeof *ws);
    ws->st = st;
    pthread_mutex_init(&ws->mu, NULL);
    pthread_cond_init(&ws->cv, NULL);
    if (pthread_create(&ws->thread, NULL, watch, ws) != 0)
        abort(); /* no thread for the watcher: nothing sensible to serve without it */
    return ws;
}

int waiters_add(struct waiters *ws, struct request *req, enum waiter_kind kind, const char *tenant,
                const char *job_id, int status, int64_t deadline_ms)
{
    pthread_mutex_lock(&ws->mu);
    if (ws->closing) {
        pthread_mutex_unlock(&ws->mu);
        req_resume(req);
        return -SLUICE_E_SHUTTING_DOWN;
    }
    struct waiter *w = xcalloc(1, sizeof *w);
    w->req = req;
    w->kind = kind;
    snprintf(w->tenant, sizeof w->tenant, "%s", tenant);
    snprintf(w->job, sizeof w->job, "%s", job_id);
    w->status = status;
    w->deadline = deadline_ms;
    w->next = ws->head;
    ws->head = w;
    ws->active++;
    pthread_mutex_unlock(&ws->mu);
    return 0;
}

int waiters_closing(struct waiters *ws)
{
    pthread_mutex_lock(&ws->mu);
    int c = ws->closing;
    pthread_mutex_unlock(&ws->mu);
    return c;
}

void waiters_shutdown(struct waiters *ws)
{
    if (!ws)
        return;
    pthread_mutex_lock(&ws->mu);
    ws->closing = 1;
    pthread_cond_broadcast(&ws->cv);
    pthread_mutex_unlock(&ws->mu);
    /* Wait until the watcher has resumed everyone (one sweep; bounded anyway). */
    for (int i = 0; i < 250; i++) {
        pthread_mutex_lock(&ws->mu);
        int done = ws->active == 0;
        pthread_mutex_unlock(&ws->mu);
        if (done)
            break;
        struct timespec t = {0, 20 * 1000000L};
        nanosleep(&t, NULL);
    }
}

void waiters_free(struct waiters *ws)
{
    if (!ws)
        return;
    pthread_mutex_lock(&ws->mu);
    ws->stop = 1;
    pthread_cond_broadcast(&ws->cv);
    pthread_mutex_unlock(&ws->mu);
    pthread_join(ws->thread, NULL);
    while (ws->head) { /* only after a shutdown that timed out */
        struct waiter *w = ws->head;
        ws->head = w->next;
        req_resume(w->req);
        free(w);
    }
    pthread_mutex_destroy(&ws->mu);
    pthread_cond_destroy(&ws->cv);
    free(ws);
}
