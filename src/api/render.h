/* render.h - JSON for the API's resources, shared by handlers. Output is appended
 * to a struct buf; raw JSON stored by the store (item data, results, documents) is
 * embedded as it is (it was validated when accepted). */
#ifndef SLUICE_RENDER_H
#define SLUICE_RENDER_H

#include <stdint.h>

#include "store/store.h"
#include "util/buf.h"

/* The job monitor. now: wall ms, for throughput and ETA. */
void render_job(struct buf *b, const struct store_job *j, const char *base_url, int64_t now);
/* The same, with th (may be NULL) the limit that holds the job back: phase Throttled,
 * throughput.throttledBy, and an ETA at most at the limit's pace. */
struct limits_throttle;
void render_job_throttled(struct buf *b, const struct store_job *j, const char *base_url,
                          int64_t now, const struct limits_throttle *th);
/* An item; detail adds data and events (with the synthesized "Accepted" event). */
void render_item(struct buf *b, const struct store_item *it, int detail);
/* One NDJSON results line (with the trailing newline). */
void render_result_line(struct buf *b, const struct store_item *it);
/* A document. */
void render_doc(struct buf *b, const struct store_doc *d);
/* The outcome of a synchronous run of the item ref that did not fail (a failed run is
 * an error reply): {"ref","status"[,"validateOnly"][,"error"],"result","warnings",
 * "events"}. */
struct pipeline_result;
void render_run(struct buf *b, const char *ref, int validate_only,
                const struct pipeline_result *res);
/* Nonzero when status is Succeeded, Failed or Canceled. */
int render_job_terminal(int status);

#endif
