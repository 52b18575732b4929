/* runs.c - the pool of run threads behind synchronous runs; see runs.h.
 *
 * One mutex guards the queue, the per-tenant counts and the closing flag; a run
 * thread takes the oldest queued run, executes it without the lock, gives the
 * tenant's slot back and calls done(). The tenant counts are a short list: it holds
 * only tenants with a run queued or running, at most threads + queue entries. */
#include "engine/runs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/xmalloc.h"

struct tenant_slots {
    struct tenant_slots *next;
    unsigned n; /* queued + running */
    char tenant[STORE_NAME_MAX];
};

struct runs {
    struct runs_config cfg;
    struct pipeline_env env;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sync_run *head, *tail; /* queued, oldest first */
    unsigned queued, running;
    struct tenant_slots *tenants;
    int closing;
    pthread_t *threads;
    unsigned nthreads;
    /* The reaper ends queued runs at their deadline while every run thread is busy
     * (runs queue in arrival order with one timeout, so the head is due first). */
    pthread_cond_t reap_cv; /* CLOCK_MONOTONIC */
    pthread_t reaper;
    int reaper_started, drained;
};

void runs_config_default(struct runs_config *cfg)
{
    cfg->threads = 32;
    cfg->per_tenant = 4;
    cfg->queue = 64;
    cfg->timeout_ms = 30000;
}

struct sync_run *sync_run_new(void)
{
    return xcalloc(1, sizeof(struct sync_run));
}

void sync_run_free(struct sync_run *run)
{
    if (!run)
        return;
    wfdef_free(run->w);
    free(run->ref);
    free(run->data);
    pipeline_result_release(&run->res);
    free(run);
}

/* The tenant's entry; created when create is set. Under rs->mu. */
static struct tenant_slots *slots_of(struct runs *rs, const char *tenant, int create)
{
    for (struct tenant_slots *t = rs->tenants; t; t = t->next)
        if (!strcmp(t->tenant, tenant))
            return t;
    if (!create)
        return NULL;
    struct tenant_slots *t = xcalloc(1, sizeof *t);
    snprintf(t->tenant, sizeof t->tenant, "%s", tenant);
    t->next = rs->tenants;
    rs->tenants = t;
    return t;
}

/* Gives a tenant's slot back. Under rs->mu. */
static void slot_release(struct runs *rs, const char *tenant)
{
    for (struct tenant_slots **p = &rs->tenants; *p; p = &(*p)->next)
        if (!strcmp((*p)->tenant, tenant)) {
            struct tenant_slots *t = *p;
            if (--t->n == 0) {
                *p = t->next;
                free(t);
            }
            return;
        }
}

/* Executes one run on this thread; fills run->rc and run->res. */
static void execute(struct runs *rs, struct sync_run *run)
{
    if (clock_mono_ms() >= run->deadline_mono) { /* waited in the queue past it */
        run->rc = -SLUICE_E_RUN_TIMEOUT;
        return;
    }
    struct pipeline_env env = rs->env;
    env.deadline_mono = run->deadline_mono;
    struct pipeline_item item = {0, run->ref, run->data, run->data ? strlen(run->data) : 0, 1};
    struct store_step_count *counts = xcalloc(run->w->nsteps ? run->w->nsteps : 1, sizeof *counts);
    pipeline_run(&env, run->w, run->tenant, NULL, PIPELINE_IMMEDIATE, &item, 1, &run->res, counts);
    free(counts);
    if (run->res.aborted) /* an http call was cut by the shutdown */
        run->rc = -SLUICE_E_SHUTTING_DOWN;
    else if (run->res.out_of_time || clock_mono_ms() >= run->deadline_mono)
        run->rc = -SLUICE_E_RUN_TIMEOUT; /* out_of_time: a wait would have passed it */
    if (run->rc < 0) {
        pipeline_result_release(&run->res);
        memset(&run->res, 0, sizeof run->res);
    }
}

/* Takes the head of the queue. Under rs->mu. */
static struct sync_run *queue_pop(struct runs *rs)
{
    struct sync_run *run = rs->head;
    rs->head = run->next;
    if (!rs->head)
        rs->tail = NULL;
    run->next = NULL;
    rs->queued--;
    return run;
}

static void *reaper_thread(void *arg)
{
    struct runs *rs = arg;
    pthread_mutex_lock(&rs->mu);
    while (!rs->closing) {
        if (rs->head && clock_mono_ms() >= rs->head->deadline_mono) {
            struct sync_run *run = queue_pop(rs);
            slot_release(rs, run->tenant);
            pthread_mutex_unlock(&rs->mu);
            run->rc = -SLUICE_E_RUN_TIMEOUT; /* never started: nothing to undo */
            run->done(run);
            pthread_mutex_lock(&rs->mu);
            continue;
        }
        if (!rs->head) {
            pthread_cond_wait(&rs->reap_cv, &rs->mu);
            continue;
        }
        int64_t at = rs->head->deadline_mono;
        struct timespec ts = {(time_t)(at / 1000), (long)(at % 1000) * 1000000L};
        pthread_cond_timedwait(&rs->reap_cv, &rs->mu, &ts);
    }
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

static void *run_thread(void *arg)
{
    struct runs *rs = arg;
    pthread_mutex_lock(&rs->mu);
    for (;;) {
        while (!rs->head && !rs->closing)
            pthread_cond_wait(&rs->cv, &rs->mu);
        if (!rs->head) /* closing, and runs_shutdown() ended what was queued */
            break;
        struct sync_run *run = queue_pop(rs);
        rs->running++;
        pthread_mutex_unlock(&rs->mu);
        execute(rs, run);
        pthread_mutex_lock(&rs->mu);
        rs->running--;
        slot_release(rs, run->tenant);
        pthread_mutex_unlock(&rs->mu);
        run->done(run); /* the run is the caller's again: not touched after this */
        pthread_mutex_lock(&rs->mu);
    }
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

int runs_start(const struct runs_config *cfg, const struct pipeline_env *env, struct runs **out)
{
    struct runs *rs = xcalloc(1, sizeof *rs);
    rs->cfg = *cfg;
    if (rs->cfg.threads == 0)
        rs->cfg.threads = 1;
    rs->env = *env;
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* clock_mono_ms() deadlines */
    pthread_cond_init(&rs->reap_cv, &ca);
    pthread_condattr_destroy(&ca);
    rs->reaper_started = pthread_create(&rs->reaper, NULL, reaper_thread, rs) == 0;
    if (!rs->reaper_started)
        log_write(LOG_WARN, "no reaper thread: queued runs wait for a run thread", NULL);
    rs->threads = xcalloc(rs->cfg.threads, sizeof *rs->threads);
    for (unsigned i = 0; i < rs->cfg.threads; i++) {
        if (pthread_create(&rs->threads[i], NULL, run_thread, rs) != 0)
            break;
        rs->nthreads++;
    }
    if (rs->nthreads == 0) {
        runs_free(rs);
        *out = NULL;
        return -SLUICE_E_INTERNAL;
    }
    if (rs->nthreads < rs->cfg.threads)
        log_write(LOG_WARN, "fewer run threads than configured could be started", NULL);
    *out = rs;
    return 0;
}

int runs_submit(struct runs *rs, struct sync_run *run)
{
    int rc = 0;
    pthread_mutex_lock(&rs->mu);
    struct tenant_slots *t = slots_of(rs, run->tenant, 0);
    if (rs->closing)
        rc = -SLUICE_E_SHUTTING_DOWN;
    else if ((t && t->n >= rs->cfg.per_tenant) ||
             rs->queued + rs->running >= rs->cfg.threads + rs->cfg.queue)
        rc = -SLUICE_E_TOO_MANY_RUNS;
    if (rc == 0) {
        slots_of(rs, run->tenant, 1)->n++;
        run->deadline_mono = clock_mono_ms() + rs->cfg.timeout_ms;
        run->next = NULL;
        if (rs->tail)
            rs->tail->next = run;
        else
            rs->head = run;
        rs->tail = run;
        rs->queued++;
        pthread_cond_signal(&rs->cv);
        if (rs->head == run) /* the reaper sleeps on an empty queue */
            pthread_cond_signal(&rs->reap_cv);
    }
    pthread_mutex_unlock(&rs->mu);
    return rc;
}

void runs_shutdown(struct runs *rs)
{
    if (!rs)
        return;
    pthread_mutex_lock(&rs->mu);
    rs->closing = 1;
    struct sync_run *list = rs->head;
    rs->head = rs->tail = NULL;
    for (struct sync_run *r = list; r; r = r->next) {
        rs->queued--;
        slot_release(rs, r->tenant);
    }
    pthread_cond_broadcast(&rs->cv);
    pthread_cond_signal(&rs->reap_cv);
    pthread_mutex_unlock(&rs->mu);
    while (list) {
        struct sync_run *r = list;
        list = r->next;
        r->next = NULL;
        r->rc = -SLUICE_E_SHUTTING_DOWN;
        r->done(r);
    }
}

void runs_drain(struct runs *rs)
{
    if (!rs || rs->drained)
        return;
    runs_shutdown(rs);
    for (unsigned i = 0; i < rs->nthreads; i++)
        pthread_join(rs->threads[i], NULL);
    if (rs->reaper_started)
        pthread_join(rs->reaper, NULL);
    rs->drained = 1;
}

void runs_free(struct runs *rs)
{
    if (!rs)
        return;
    runs_drain(rs);
    while (rs->tenants) { /* empty by now; defensive */
        struct tenant_slots *t = rs->tenants;
        rs->tenants = t->next;
        free(t);
    }
    free(rs->threads);
    pthread_mutex_destroy(&rs->mu);
    pthread_cond_destroy(&rs->cv);
    pthread_cond_destroy(&rs->reap_cv);
    free(rs);
}
