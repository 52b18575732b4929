/* waiters.h - requests waiting for a job to change, without a thread each.
 *
 * Long polls (GET /v1/jobs/{id}?wait=N, Prefer: wait=N on submit) and event streams
 * park their connection (req_park / req_suspend_stream) and register here. One
 * watcher thread checks the registered jobs a few times a second (one store read per
 * job per sweep, however many clients wait on it) and resumes each waiter when its
 * condition holds or its deadline passes; the resumed handler then reads the job and
 * replies. On shutdown every waiter is resumed at once. */
#ifndef SLUICE_WAITERS_H
#define SLUICE_WAITERS_H

#include <stdint.h>

#include "http/request.h"
#include "store/store.h"

enum waiter_kind {
    WAIT_CHANGE,   /* job status differs from `status`, or the job is gone */
    WAIT_TERMINAL, /* job is Succeeded, Failed or Canceled, or gone */
    WAIT_TICK,     /* just the deadline (event streams: the next snapshot) */
};

struct waiters;

/* Starts the watcher thread. Never fails (allocation aborts). */
struct waiters *waiters_start(struct store *st);
/* Registers a request parked just before (req_park / req_suspend_stream). The watcher
 * calls req_resume(req) exactly once: when the condition holds, at deadline_ms
 * (wall clock), or at shutdown. Returns 0, or -SLUICE_E_SHUTTING_DOWN, in which case
 * it has resumed the request itself. Thread-safe. */
int waiters_add(struct waiters *ws, struct request *req, enum waiter_kind kind, const char *tenant,
                const char *job_id, int status, int64_t deadline_ms);
/* Nonzero once waiters_shutdown() ran. */
int waiters_closing(struct waiters *ws);
/* Resumes every waiter and refuses new ones; the watcher keeps running. ws may be
 * NULL. */
void waiters_shutdown(struct waiters *ws);
/* Stops the watcher (after waiters_shutdown) and frees. */
void waiters_free(struct waiters *ws);

#endif
