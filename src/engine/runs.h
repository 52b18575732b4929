/* runs.h - synchronous runs (POST /v1/workflows/{name}:run) off the HTTP threads.
 *
 * DESIGN
 * A small pool of run threads, separate from the HTTP threads and the job workers,
 * executes one-item pipelines in PIPELINE_IMMEDIATE mode. The HTTP handler builds a
 * struct sync_run, parks its request and hands the run over with runs_submit(); the
 * run thread executes it and calls run->done(run), which resumes the request; the
 * resumed handler replies from run->res. So an upstream that never answers holds a
 * run thread and its caller's connection, never an HTTP thread.
 *
 * Admission: at most cfg.per_tenant runs of one tenant are queued or running, and at
 * most cfg.threads + cfg.queue in all; beyond either runs_submit() refuses with
 * -SLUICE_E_TOO_MANY_RUNS (429 with Retry-After) and the caller keeps the run.
 *
 * Deadline: every run has a total deadline (cfg.timeout_ms from acceptance, queueing
 * included). It is passed to the pipeline, which cuts the http calls' timeouts,
 * retries and waits for a processing limit's slot to it (outbound_request.deadline_mono);
 * a run still queued at its deadline is ended then, by a reaper thread, without being
 * started; a call whose retry or slot would come past it ends the run at once. Either
 * way the run ends with rc -SLUICE_E_RUN_TIMEOUT (504).
 *
 * Ownership: the caller owns a run until runs_submit() returns 0; then the pool does,
 * until it calls run->done(run), which hands it back (done is called exactly once,
 * from a run thread or from runs_shutdown(); the pool never touches the run after).
 *
 * Shutdown: runs_shutdown() refuses new runs and ends queued ones at once with
 * -SLUICE_E_SHUTTING_DOWN; running ones end when their calls do (outbound_stop()
 * cuts them short; such a run also ends with -SLUICE_E_SHUTTING_DOWN). runs_drain()
 * joins the threads; runs_submit() still answers -SLUICE_E_SHUTTING_DOWN after it, so
 * the HTTP server may stop after the drain and runs_free() come last. */
#ifndef SLUICE_RUNS_H
#define SLUICE_RUNS_H

#include <stdint.h>

#include "engine/pipeline.h"
#include "spec/workflow.h"
#include "store/store.h"

struct runs_config {
    unsigned threads;    /* run threads (32): idle ones cost only their stacks */
    unsigned per_tenant; /* runs of one tenant queued or running (4) */
    unsigned queue;      /* runs waiting for a thread beyond `threads`, all tenants (64) */
    unsigned timeout_ms; /* total deadline of one run, from acceptance (30000) */
};

void runs_config_default(struct runs_config *cfg);

struct sync_run {
    /* Set by the caller before runs_submit(). */
    char tenant[STORE_NAME_MAX];
    struct wfdef *w;                    /* owned by the run (sync_run_free frees it) */
    char *ref;                          /* heap, owned */
    char *data;                         /* heap raw JSON or NULL, owned */
    void (*done)(struct sync_run *run); /* hands the run back; see above */
    void *arg;                          /* the caller's (the parked request) */
    /* Set by the pool before done(). */
    int rc;                     /* 0: res holds the outcome; else -SLUICE_E_RUN_TIMEOUT
                                   or -SLUICE_E_SHUTTING_DOWN (res empty) */
    struct pipeline_result res; /* valid when rc == 0 */
    /* The pool's. */
    int64_t deadline_mono;
    struct sync_run *next;
};

/* A zeroed run; free with sync_run_free(). Never fails (allocation aborts). */
struct sync_run *sync_run_new(void);
/* Frees the run, its definition, strings and result. NULL is a no-op. */
void sync_run_free(struct sync_run *run);

struct runs;

/* Starts cfg->threads run threads executing pipelines against env (copied; the
 * store, outbound engine, secrets and limiter it points to must outlive runs_free).
 * [out] *out. Returns 0 or -SLUICE_E_INTERNAL (no thread could be created). */
int runs_start(const struct runs_config *cfg, const struct pipeline_env *env, struct runs **out);
/* Queues run (see Ownership). Returns 0; -SLUICE_E_TOO_MANY_RUNS when a cap is reached
 * or -SLUICE_E_SHUTTING_DOWN after runs_shutdown(): then the caller still owns run.
 * Thread-safe. */
int runs_submit(struct runs *rs, struct sync_run *run);
/* Refuses new runs and ends the queued ones (done() called here). Thread-safe. */
void runs_shutdown(struct runs *rs);
/* Shuts down (if not yet), waits for the running runs (every done() has been called
 * when it returns) and joins the threads. The struct stays valid for runs_submit().
 * Idempotent; NULL is a no-op. */
void runs_drain(struct runs *rs);
/* Drains (if not yet) and frees. NULL is a no-op. */
void runs_free(struct runs *rs);

#endif
