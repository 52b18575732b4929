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

/* One element of a validateOnly report's invalidItems: the item (index, ref of
 * ref_len bytes) and why the workflow's validate steps refused it (res: status,
 * error_code, error_message and failed_step, all set). */
struct pipeline_result;
void render_invalid_item(struct buf *b, uint64_t index, const char *ref, size_t ref_len,
                         const struct pipeline_result *res);
/* The answer to a validateOnly submit: the counts, invalid_items (the elements of the
 * invalidItems array, rendered by render_invalid_item and separated by commas) and
 * whether that list was cut short. */
void render_validate_report(struct buf *b, const char *workflow, int64_t total, int64_t invalid,
                            const char *invalid_items, int truncated);
/* A completion callback delivery with its attempts (store_delivery_list). */
void render_delivery(struct buf *b, const struct store_delivery *d);
struct callbacks_signer;
/* A tenant's secrets for verifying its callbacks (both formats), with the previous ones
 * during a rotation's overlap. */
void render_callbacks_secret(struct buf *b, const struct callbacks_signer *sg);
/* A tenant's callback settings: {"format": format}. */
void render_callback_settings(struct buf *b, const char *format);

#endif
