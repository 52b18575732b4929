/* engine.h - the worker pool that processes items.
 *
 * DESIGN
 * A fixed pool of worker threads. Each loops: claim a batch (one store transaction
 * that leases a contiguous range of one job, taking turns between jobs), run the
 * batch through the job's workflow (engine/pipeline.c: step by step, http requests
 * of the batch in flight together), and record all outcomes with store_complete
 * (one transaction: document writes, item rows, job and step counts - group
 * commit). Idle workers sleep on a condition variable, woken by engine_notify()
 * after a submit or by a short poll timeout (expired leases of crashed runs are
 * found by polling). Workers share nothing but the store handle, the limiter and the
 * stop flag.
 *
 * Processing limits (engine/limits.h) act through the store's claim gate: a claim is
 * cut to what the job's limits allow now, a throttled job is passed over, and the
 * grant is given back when the batch is done. http steps pace each request on the
 * outbound I/O thread.
 *
 * engine_stop() lets each worker finish the batch in hand (or release it to the store
 * if completing fails), then joins them. */
#ifndef SLUICE_ENGINE_H
#define SLUICE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store/store.h"

struct outbound;
struct limits;
struct secrets;

/* Items per claim when the configuration names none. A claim is the unit of a store
 * transaction pair (claim, complete) and of a lease: a job whose workflow calls no
 * upstream runs its items in microseconds, so it claims more of them at once and pays
 * for fewer commits (W2 at 200,000 items: 88,000 items/s at 500, 112,000 at 2,000); one
 * with an http step holds its items while their requests are paced, so it claims as
 * before. */
#define ENGINE_BATCH_CALLS 500
#define ENGINE_BATCH_LOCAL 2000

struct engine_config {
    unsigned workers;    /* threads; default 2 */
    size_t batch;        /* items per claim; 0 (the default): by the job's workflow,
                            ENGINE_BATCH_CALLS or ENGINE_BATCH_LOCAL */
    int64_t lease_ms;    /* claim lease; default 30000 */
    int max_attempts;    /* default 5 */
    int max_active_jobs; /* per tenant: more jobs wait NotStarted (store_claim_opts); 0 = no cap */
    int poll_ms;         /* idle poll interval; default 200 */
    struct outbound *outbound;     /* for http steps (borrowed); NULL: they fail */
    const struct secrets *secrets; /* the operator's secrets (engine/secrets.h), borrowed;
                                    * may be NULL */
    struct limits *limits;         /* processing limits (borrowed, engine/limits.h); NULL: none */
    size_t max_item_bytes;         /* what steps may build per item (pipeline.h); 0: 1 MiB */
};

struct engine;

void engine_config_default(struct engine_config *cfg);
/* Starts the workers. [out] *eng; stop with engine_stop(). 0 or -SLUICE_E_INTERNAL. */
int engine_start(struct store *st, const struct engine_config *cfg, struct engine **eng);
/* Wakes idle workers: new work may be runnable. Thread-safe. */
void engine_notify(struct engine *eng);
/* Finishes in-flight batches, joins the workers, frees eng (may be NULL). */
void engine_stop(struct engine *eng);

#endif
