/* engine.c - worker threads: claim a batch, decide outcomes, complete in one commit.
 * See engine.h for the design. */
#include "engine/engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/limits.h"
#include "engine/pipeline.h"
#include "engine/wfload.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

#define RELOAD_MS 5000 /* how often tenants' limits are read again from the store */

struct engine {
    struct store *st;
    struct engine_config cfg;
    pthread_t *threads;
    unsigned nthreads;
    pthread_t heartbeat; /* store_heartbeat every HEARTBEAT_MS (shared stores) */
    int heartbeat_running;
    atomic_int stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned long wakeups; /* bumped by engine_notify, under mu */
};

struct worker {
    struct engine *eng;
    unsigned id;
    struct wfcache *cache;     /* this worker's compiled definitions */
    struct limits_grant grant; /* the last admission of the claim being made */
    int granted;               /* grant holds something to give back */
    int64_t reloaded_at;       /* monotonic ms of the last limits_reload (worker 1) */
};

/* 1 when the workflow makes no upstream call: its items take microseconds each. */
static int wf_local(const struct wfdef *d)
{
    for (size_t k = 0; d && k < d->nsteps; k++)
        if (d->steps[k].type == STEP_HTTP)
            return 0;
    return d != NULL;
}

/* The store's claim gate: a job whose workflow calls upstreams (or is not compiled
 * here yet) claims ENGINE_BATCH_CALLS when no batch is configured; then the limiter
 * decides, and only its last admission counts (a store may retry its transaction and
 * call again). */
static size_t worker_admit(void *ctx, const struct store_job *job, size_t want)
{
    struct worker *w = ctx;
    if (!w->eng->cfg.batch && want > ENGINE_BATCH_CALLS &&
        !wf_local(wfcache_peek(w->cache, job->tenant, job->workflow, job->workflow_version)))
        want = ENGINE_BATCH_CALLS;
    if (!w->eng->cfg.limits)
        return want;
    if (w->granted) {
        limits_undo(w->eng->cfg.limits, &w->grant);
        w->granted = 0;
    }
    size_t n = limits_admit(w->eng->cfg.limits, job->tenant, job->id, job->uses ? job->uses : "",
                            want, &w->grant);
    w->granted = 1;
    return n;
}

void engine_config_default(struct engine_config *cfg)
{
    cfg->workers = 2;
    cfg->batch = 0;
    cfg->lease_ms = 30000;
    cfg->max_attempts = 5;
    cfg->max_active_jobs = 0;
    cfg->poll_ms = 200;
    cfg->outbound = NULL;
    cfg->secrets = NULL;
    cfg->limits = NULL;
}

/* A node heartbeats well within the store's node timeout (15 s by default), so one
 * or two missed beats (a slow database) do not cost it its leases. */
#define HEARTBEAT_MS 2000

void engine_notify(struct engine *eng)
{
    pthread_mutex_lock(&eng->mu);
    eng->wakeups++;
    pthread_cond_broadcast(&eng->cv);
    pthread_mutex_unlock(&eng->mu);
}

static void idle_wait(struct engine *eng, unsigned long seen)
{
    struct timespec ts;
    long wait_ms = eng->cfg.poll_ms;
    if (eng->cfg.limits) {
        /* a limit that held work back has a slot again sooner than the next poll */
        int64_t in = limits_wake_in(eng->cfg.limits, clock_mono_ms());
        if (in >= 0 && in < wait_ms)
            wait_ms = in < 1 ? 1 : (long)in;
    }
    clock_deadline(CLOCK_REALTIME, wait_ms, &ts);
    pthread_mutex_lock(&eng->mu);
    while (eng->wakeups == seen && !atomic_load(&eng->stopping))
        if (pthread_cond_timedwait(&eng->cv, &eng->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&eng->mu);
}

/* A store error that says "not now" (busy, I/O error, out of space), not "never". */
static int store_unavailable(int rc)
{
    return rc == -SLUICE_E_STORE_BUSY || rc == -SLUICE_E_STORE_IO || rc == -SLUICE_E_STORE_FULL;
}

/* Sleeps ms, or less when the engine stops (engine_notify does not end it). */
static void backoff_wait(struct engine *eng, long ms)
{
    struct timespec ts;
    clock_deadline(CLOCK_REALTIME, ms, &ts);
    pthread_mutex_lock(&eng->mu);
    while (!atomic_load(&eng->stopping))
        if (pthread_cond_timedwait(&eng->cv, &eng->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&eng->mu);
}

/* The definition a claim's job runs: a built-in by name, or the stored version the
 * job was submitted with (read from the job row; versions never change). */
static int claim_workflow(struct worker *w, const struct store_claim *c, const struct wfdef **def)
{
    int64_t version = 0;
    if (wfdef_name_valid(c->workflow)) {
        struct store_job job;
        memset(&job, 0, sizeof job);
        int rc = store_job_get(w->eng->st, c->tenant, c->job_id, &job);
        version = job.workflow_version;
        store_job_release(&job);
        if (rc <= 0)
            return rc < 0 ? rc : -SLUICE_E_UNKNOWN_WORKFLOW;
    }
    return wfcache_get(w->cache, w->eng->st, c->tenant, c->workflow, version, def);
}

/* store_complete, tried again after a backoff while the store is unavailable and the
 * lease holds: a repeated call is harmless (store.h), and a short store outage then
 * costs no second round of the batch's http calls. Past the lease, or when the
 * engine stops, the error is returned and the caller hands the batch back. */
static int complete(struct worker *w, const struct store_claim *c, struct store_outcome *outs,
                    size_t n, const struct store_step_count *counts, size_t nsteps)
{
    struct engine *eng = w->eng;
    long wait_ms = 20;
    for (;;) {
        int rc = store_complete(eng->st, c, outs, n, counts, nsteps);
        if (!store_unavailable(rc) || atomic_load(&eng->stopping) ||
            clock_now_ms() + wait_ms >= c->lease_until)
            return rc;
        log_write(LOG_WARN, "completing a batch failed; trying again", "job", c->job_id, "error",
                  sluice_err_code(rc), NULL);
        backoff_wait(eng, wait_ms);
        wait_ms = wait_ms * 2 > 1000 ? 1000 : wait_ms * 2;
    }
}

/* Runs the claimed items through their workflow and records every outcome, the
 * documents they write and the per-step counts in one store_complete. */
static int process(struct worker *w, const struct store_claim *c)
{
    struct engine *eng = w->eng;
    const struct wfdef *def = NULL;
    size_t n = c->n;
    struct store_outcome *outs = xcalloc(n ? n : 1, sizeof *outs);
    struct pipeline_result *res = xcalloc(n ? n : 1, sizeof *res);
    struct store_step_count *counts = NULL;
    size_t nsteps = 0;
    int rc = claim_workflow(w, c, &def);
    if (store_unavailable(rc)) {
        /* The store did not answer (busy, I/O, full), which says nothing about the
         * job: hand the batch back to run when the store serves again. */
        goto out;
    }
    if (rc < 0) {
        /* A workflow valid at submit cannot vanish (versions are kept); if it does,
         * fail each item loudly rather than retrying forever. */
        log_write(LOG_ERROR, "cannot load the job's workflow", "job", c->job_id, "workflow",
                  c->workflow, "error", sluice_err_code(rc), NULL);
        for (size_t i = 0; i < n; i++) {
            outs[i].index = c->items[i].index;
            outs[i].status = ITEM_FAILED;
            outs[i].error_code = sluice_err_code(SLUICE_E_UNKNOWN_WORKFLOW);
            outs[i].error_message = "the job's workflow definition cannot be loaded";
        }
    } else {
        struct pipeline_item *in = xcalloc(n ? n : 1, sizeof *in);
        for (size_t i = 0; i < n; i++) {
            const struct store_claim_item *it = &c->items[i];
            in[i] = (struct pipeline_item){it->index, it->ref, it->data, it->data_len,
                                           it->attempts + 1};
        }
        nsteps = def->nsteps;
        counts = xcalloc(nsteps, sizeof *counts);
        struct pipeline_env env = {eng->st, eng->cfg.outbound,      eng->cfg.secrets,
                                   w->id,   c->claimed_at,          eng->cfg.limits,
                                   0,       eng->cfg.max_item_bytes};
        pipeline_run(&env, def, c->tenant, c->job_id, PIPELINE_DEFERRED, in, n, res, counts);
        free(in);
        for (size_t i = 0; i < n; i++)
            if (res[i].aborted) {
                /* Shutdown cut an http call short: record nothing, give the batch back;
                 * the next run repeats the calls with the same Idempotency-Keys. */
                rc = -SLUICE_E_SHUTTING_DOWN;
                goto out;
            }
        for (size_t i = 0; i < n; i++) {
            struct store_outcome *o = &outs[i];
            o->index = c->items[i].index;
            o->status = res[i].status;
            o->ops = res[i].ops;
            o->nops = res[i].nops;
            o->result = res[i].result;
            o->error_code = res[i].error_code;
            o->error_message = res[i].error_message;
            o->failed_step = res[i].failed_step;
            o->warnings = res[i].warnings;
            o->events = res[i].events;
        }
    }
    rc = complete(w, c, outs, n, counts, nsteps);
    if (rc >= 0) {
        int64_t ok = 0, failed = 0;
        for (size_t i = 0; i < n; i++) {
            if (outs[i].status == ITEM_SUCCEEDED)
                ok++;
            else if (outs[i].status == ITEM_FAILED)
                failed++;
        }
        metrics_items(ok, failed, (int64_t)n - ok - failed);
    }
out:
    for (size_t i = 0; i < n; i++)
        pipeline_result_release(&res[i]);
    free(res);
    free(counts);
    free(outs);
    return rc;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct engine *eng = w->eng;
    int backoff_ms = 0;
    while (!atomic_load(&eng->stopping)) {
        pthread_mutex_lock(&eng->mu);
        unsigned long seen = eng->wakeups;
        pthread_mutex_unlock(&eng->mu);
        struct store_claim c;
        memset(&c, 0, sizeof c);
        struct store_claim_gate gate = {worker_admit, w};
        struct store_claim_opts o = {eng->cfg.batch ? eng->cfg.batch : ENGINE_BATCH_LOCAL,
                                     eng->cfg.lease_ms, eng->cfg.max_attempts,
                                     eng->cfg.max_active_jobs,
                                     eng->cfg.limits || !eng->cfg.batch ? &gate : NULL};
        if (eng->cfg.limits && w->id == 1 && clock_mono_ms() - w->reloaded_at > RELOAD_MS) {
            /* Tenants' limits written through another node (or this one) */
            limits_reload(eng->cfg.limits, eng->st);
            w->reloaded_at = clock_mono_ms();
        }
        int rc = store_claim(eng->st, &o, &c);
        if (w->granted && (rc != 1 || strcmp(c.job_id, w->grant.job_id) != 0)) {
            /* admitted, then not claimed (or an expired claim was taken over) */
            limits_undo(eng->cfg.limits, &w->grant);
            w->granted = 0;
        }
        if (rc < 0) {
            /* The store is busy or failing: back off, then try again. */
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2) : 20;
            log_write(LOG_WARN, "claim failed", "error", sluice_err_code(rc), NULL);
            backoff_wait(eng, backoff_ms);
            continue;
        }
        if (rc == 0) {
            backoff_ms = 0;
            idle_wait(eng, seen);
            continue;
        }
        rc = process(w, &c);
        if (rc == -SLUICE_E_LEASE_LOST) {
            log_write(LOG_WARN, "lease lost; outcomes discarded", "job", c.job_id, NULL);
        } else if (rc == -SLUICE_E_SHUTTING_DOWN) {
            store_release(eng->st, &c); /* unfinished by our shutdown: no attempt counted */
        } else if (rc < 0) {
            log_write(LOG_WARN, "processing a batch failed; releasing it", "job", c.job_id, "error",
                      sluice_err_code(rc), NULL);
            store_release(eng->st, &c); /* if this fails too, the lease expires */
        }
        store_claim_release(&c);
        if (w->granted) { /* the batch is done (or given back): so is its grant */
            if (limits_finish(eng->cfg.limits, &w->grant))
                engine_notify(eng); /* a throttled job may go now */
            w->granted = 0;
        }
        if (rc < 0 && rc != -SLUICE_E_LEASE_LOST && rc != -SLUICE_E_SHUTTING_DOWN) {
            /* the store failed us: do not take the next batch at once */
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2) : 20;
            backoff_wait(eng, backoff_ms);
        } else {
            backoff_ms = 0;
        }
    }
    wfcache_free(w->cache);
    free(w);
    return NULL;
}

/* Another node made work runnable (store_watch): wake idle workers. */
static void on_store_work(void *ctx)
{
    engine_notify(ctx);
}

/* Proves this node alive to the other nodes of a shared store, and ends the leases
 * of nodes that went silent (their items are retaken by the next claims). */
static void *heartbeat_main(void *arg)
{
    struct engine *eng = arg;
    int64_t next = 0;
    pthread_mutex_lock(&eng->mu);
    while (!atomic_load(&eng->stopping)) {
        int64_t now = clock_mono_ms();
        if (now >= next) {
            pthread_mutex_unlock(&eng->mu);
            int rc = store_heartbeat(eng->st);
            if (rc < 0) {
                log_write(LOG_WARN, "heartbeat failed", "error", sluice_err_code(rc), NULL);
            } else if (rc > 0) {
                char n[24];
                snprintf(n, sizeof n, "=%d", rc);
                log_write(LOG_INFO, "ended the leases of silent nodes", "claims", n, NULL);
                engine_notify(eng);
            }
            next = clock_mono_ms() + HEARTBEAT_MS;
            pthread_mutex_lock(&eng->mu);
            continue;
        }
        struct timespec ts;
        clock_deadline(CLOCK_REALTIME, next - now, &ts);
        pthread_cond_timedwait(&eng->cv, &eng->mu, &ts);
    }
    pthread_mutex_unlock(&eng->mu);
    return NULL;
}

int engine_start(struct store *st, const struct engine_config *cfg, struct engine **out)
{
    struct engine *eng = xcalloc(1, sizeof *eng);
    eng->st = st;
    eng->cfg = *cfg;
    atomic_init(&eng->stopping, 0);
    pthread_mutex_init(&eng->mu, NULL);
    pthread_cond_init(&eng->cv, NULL);
    eng->threads = xcalloc(cfg->workers, sizeof *eng->threads);
    for (unsigned i = 0; i < cfg->workers; i++) {
        struct worker *w = xcalloc(1, sizeof *w);
        w->eng = eng;
        w->id = i + 1;
        w->cache = wfcache_new();
        if (pthread_create(&eng->threads[i], NULL, worker_main, w) != 0) {
            wfcache_free(w->cache);
            free(w);
            eng->nthreads = i;
            engine_stop(eng);
            return -SLUICE_E_INTERNAL;
        }
    }
    eng->nthreads = cfg->workers;
    if (store_shared(st)) {
        if (pthread_create(&eng->heartbeat, NULL, heartbeat_main, eng) == 0)
            eng->heartbeat_running = 1;
        if (!eng->heartbeat_running || store_watch(st, on_store_work, eng) < 0) {
            engine_stop(eng);
            return -SLUICE_E_INTERNAL;
        }
    }
    *out = eng;
    return 0;
}

void engine_stop(struct engine *eng)
{
    if (!eng)
        return;
    store_watch(eng->st, NULL, NULL); /* no more calls into eng from the store */
    atomic_store(&eng->stopping, 1);
    engine_notify(eng);
    if (eng->heartbeat_running)
        pthread_join(eng->heartbeat, NULL);
    for (unsigned i = 0; i < eng->nthreads; i++)
        pthread_join(eng->threads[i], NULL);
    pthread_mutex_destroy(&eng->mu);
    pthread_cond_destroy(&eng->cv);
    free(eng->threads);
    free(eng);
}
