/* stager.h - copies the items of retries off the HTTP threads.
 *
 * POST /v1/jobs/{id}:retry creates the new job staging (store_job_retry_begin) and
 * answers at once; this thread then copies the parent's failed items into it with
 * store_job_retry_stage, one bounded transaction (STAGER_BATCH items) at a time,
 * behind client writes (a background transaction), until the job is NotStarted and
 * the workers take it. Progress lives in the store, so after a crash or a restart
 * the first pass finds the staging retries and goes on; on a shared PostgreSQL
 * store every node's stager helps, each on a job the others have not locked. */
#ifndef SLUICE_STAGER_H
#define SLUICE_STAGER_H

#include <stddef.h>

#include "store/store.h"

/* Items copied per transaction. */
#define STAGER_BATCH 5000

struct stager;

/* Starts the thread, which looks for staging retries at once. Never fails
 * (allocation aborts); returns NULL only when no thread could be created (logged). */
struct stager *stager_start(struct store *st);
/* Wakes the thread: a retry was just created. Thread-safe; NULL is a no-op. */
void stager_kick(struct stager *sg);
/* Stops after the current batch, joins and frees. NULL is a no-op. What is left
 * staging goes on at the next start. */
void stager_stop(struct stager *sg);

#endif
