/* janitor.h - the background task that enforces retention.
 *
 * One thread wakes every interval_ms (or at janitor_notify()) and calls
 * store_retention_sweep until it returns 0: terminal jobs completed more than
 * retention_ms ago go with their items, and idempotency keys older than
 * SUBMIT_IDEM_TTL_MS go too. Each call is one short transaction of at most
 * max_rows rows, and the thread yields the store between calls, so a big job's
 * removal never holds the write lock long. Errors are logged and retried at the
 * next wake-up. Each wake-up also retries the deletes of failed submits' staged rows
 * that the store refused at the time (submit_retry_aborts). */
#ifndef SLUICE_JANITOR_H
#define SLUICE_JANITOR_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct janitor_config {
    int64_t retention_ms; /* keep terminal jobs this long after completion; > 0 */
    int64_t interval_ms;  /* wake-up period; default 5000 */
    size_t max_rows;      /* rows per transaction; default 2000 */
};

struct janitor;

/* Fills cfg with defaults (retention 30 days). */
void janitor_config_default(struct janitor_config *cfg);
/* Starts the thread on st (borrowed: close it after janitor_stop). [out] *j.
 * 0 or -SLUICE_E_INTERNAL. */
int janitor_start(struct store *st, const struct janitor_config *cfg, struct janitor **j);
/* Makes the thread sweep now. Thread-safe. */
void janitor_notify(struct janitor *j);
/* Stops and joins the thread (an ongoing transaction finishes first), frees j.
 * NULL is fine. */
void janitor_stop(struct janitor *j);

#endif
