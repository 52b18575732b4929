/* engine.c - worker threads: claim a batch, decide outcomes, complete in one commit.
 * See engine.h for the design. */
#include "engine/engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/workflow.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

struct engine {
    struct store *st;
    struct engine_config cfg;
    pthread_t *threads;
    unsigned nthreads;
    atomic_int stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned long wakeups; /* bumped by engine_notify, under mu */
};

struct worker {
    struct engine *eng;
    unsigned id;
};

void engine_config_default(struct engine_config *cfg)
{
    cfg->workers = 2;
    cfg->batch = 500;
    cfg->lease_ms = 30000;
    cfg->max_attempts = 5;
    cfg->poll_ms = 200;
}

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
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)eng->cfg.poll_ms * 1000000L;
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&eng->mu);
    while (eng->wakeups == seen && !atomic_load(&eng->stopping))
        if (pthread_cond_timedwait(&eng->cv, &eng->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&eng->mu);
}

static void event(struct buf *b, int64_t at, const char *stage, const char *level,
                  const char *code, const char *msg)
{
    char ts[25];
    buf_printf(b, "%s{\"at\":\"%s\",\"stage\":\"%s\",\"level\":\"%s\",\"code\":\"%s\",\"message\":",
               b->len > 1 ? "," : "", clock_fmt_ms(at, ts), stage, level, code);
    buf_json_str(b, msg, strlen(msg));
    buf_putc(b, '}');
}

/* Decides the outcome of each claimed item and records them. Outcome strings live
 * in `texts` until store_complete returns. */
static int process(struct worker *w, const struct store_claim *c)
{
    struct workflow wf;
    int wf_rc = workflow_resolve(c->workflow, &wf);
    struct store_outcome *outs = xcalloc(c->n ? c->n : 1, sizeof *outs);
    struct store_doc_op *ops = xcalloc(c->n ? c->n : 1, sizeof *ops); /* one per item */
    char **texts = xcalloc(c->n ? c->n : 1, sizeof *texts);
    int64_t now = clock_now_ms();
    int64_t ok = 0, failed = 0;
    for (size_t i = 0; i < c->n; i++) {
        const struct store_claim_item *it = &c->items[i];
        struct store_outcome *o = &outs[i];
        struct buf ev = BUF_INIT;
        char msg[128];
        buf_putc(&ev, '[');
        snprintf(msg, sizeof msg, "claimed by worker %u (attempt %d)", w->id, it->attempts + 1);
        event(&ev, c->claimed_at, "claim", "info", "Claimed", msg);
        o->index = it->index;
        o->status = ITEM_SUCCEEDED;
        if (wf_rc < 0) {
            /* A workflow valid at submit cannot vanish; if it does, fail loudly per item. */
            o->status = ITEM_FAILED;
            o->error_code = sluice_err_code(SLUICE_E_UNKNOWN_WORKFLOW);
            o->error_message = "workflow no longer exists";
        } else if (wf.kind == WORKFLOW_NOOP) {
            event(&ev, now, "noop", "info", "Succeeded", "no-op workflow: nothing to apply");
        } else if (!it->data && wf.op != STORE_OP_DELETE) {
            o->status = ITEM_FAILED;
            o->error_code = sluice_err_code(SLUICE_E_INVALID_DATA);
            o->error_message = "item has no data to apply";
        } else {
            /* step stays NULL: a built-in workflow has no named steps, and its item
             * events keep their public shape {at, stage, level, code, message}. */
            ops[i].op = wf.op;
            ops[i].collection = wf.collection;
            o->ops = &ops[i];
            o->nops = 1;
        }
        if (o->status == ITEM_FAILED)
            event(&ev, now, "validate", "error", o->error_code, o->error_message);
        buf_putc(&ev, ']');
        texts[i] = buf_detach(&ev, NULL);
        o->events = texts[i];
    }
    int rc = store_complete(w->eng->st, c, outs, c->n, NULL, 0);
    if (rc >= 0) {
        for (size_t i = 0; i < c->n; i++) {
            if (outs[i].status == ITEM_SUCCEEDED)
                ok++;
            else if (outs[i].status == ITEM_FAILED)
                failed++;
        }
        metrics_items(ok, failed, (int64_t)c->n - ok - failed);
    }
    for (size_t i = 0; i < c->n; i++)
        free(texts[i]);
    free(texts);
    free(ops);
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
        int rc = store_claim(eng->st, eng->cfg.batch, eng->cfg.lease_ms, eng->cfg.max_attempts, &c);
        if (rc < 0) {
            /* The store is busy or failing: back off, then try again. */
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2) : 20;
            log_write(LOG_WARN, "claim failed", "error", sluice_err_code(rc), NULL);
            struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        backoff_ms = 0;
        if (rc == 0) {
            idle_wait(eng, seen);
            continue;
        }
        rc = process(w, &c);
        if (rc == -SLUICE_E_LEASE_LOST) {
            log_write(LOG_WARN, "lease lost; outcomes discarded", "job", c.job_id, NULL);
        } else if (rc < 0) {
            log_write(LOG_WARN, "completing a batch failed; releasing it", "job", c.job_id,
                      "error", sluice_err_code(rc), NULL);
            store_release(eng->st, &c); /* if this fails too, the lease expires */
        }
        store_claim_release(&c);
    }
    free(w);
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
        struct worker *w = xmalloc(sizeof *w);
        w->eng = eng;
        w->id = i + 1;
        if (pthread_create(&eng->threads[i], NULL, worker_main, w) != 0) {
            free(w);
            eng->nthreads = i;
            engine_stop(eng);
            return -SLUICE_E_INTERNAL;
        }
    }
    eng->nthreads = cfg->workers;
    *out = eng;
    return 0;
}

void engine_stop(struct engine *eng)
{
    atomic_store(&eng->stopping, 1);
    engine_notify(eng);
    for (unsigned i = 0; i < eng->nthreads; i++)
        pthread_join(eng->threads[i], NULL);
    pthread_mutex_destroy(&eng->mu);
    pthread_cond_destroy(&eng->cv);
    free(eng->threads);
    free(eng);
}
