/* metrics.h - process-wide counters for GET /metrics (Prometheus text format).
 * All functions are thread-safe (atomics). Store-derived gauges (jobs by status,
 * queue depth) are added by the api layer at scrape time. */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stdint.h>

#include "util/buf.h"

/* Records one HTTP request with its status and duration. */
void metrics_request(int status, int64_t duration_ns);
/* Counts items finished by this process's workers. */
void metrics_items(int64_t succeeded, int64_t failed, int64_t skipped);
/* Counts jobs accepted by this process. */
void metrics_job_accepted(int64_t items);
/* Appends this process's counters and the request latency histogram. */
void metrics_render(struct buf *b);

#endif
