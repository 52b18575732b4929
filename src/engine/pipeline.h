/* pipeline.h - runs a batch of items through a workflow's steps.
 *
 * DESIGN
 * Steps run stage by stage over the whole batch: every live item passes step 1,
 * then step 2, ... so an http step sends the batch's requests together (libcurl
 * multi, src/outbound) instead of one at a time. Each item carries a context
 * {"data", "ref", "job", "index", "steps": {name: output}} that templates read;
 * data is parsed lazily (only steps that look at it pay for JSON parsing), so the
 * built-in one-step workflows stay as fast as before.
 *
 * Document steps (upsert/patch/delete) depend on the mode:
 *   PIPELINE_DEFERRED   (jobs) the op is returned in the result and applied by
 *                       store_complete in the transaction that records the item's
 *                       outcome, so a re-run after a crash never applies it twice.
 *                       When a later step calls out (http), the op is checked first
 *                       (a patch or delete of a missing document fails the item at
 *                       its own step, before anything is sent).
 *   PIPELINE_IMMEDIATE  (POST /v1/workflows/{name}:run) the op is applied at once.
 *   PIPELINE_VALIDATE   only validate steps run; nothing is stored or called.
 *
 * On a step error the step's onError decides: fail (item Failed), skip (item
 * Skipped, later steps do not run) or continue (a warning; the item goes on).
 * Every step appends an event to the item (step, type, attempt, start, duration,
 * outcome; for http also method, URL with secrets masked, status, latency). */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/workflow.h"
#include "steps/step.h"
#include "store/store.h"

struct outbound;
struct limits;
struct secrets;

enum pipeline_mode { PIPELINE_DEFERRED, PIPELINE_IMMEDIATE, PIPELINE_VALIDATE };

struct pipeline_env {
    struct store *st;
    struct outbound *ob;           /* NULL: http steps fail with UpstreamUnavailable */
    const struct secrets *secrets; /* the operator's (engine/secrets.h), borrowed; may be
                                    * NULL; a tenant's own come from st */
    unsigned worker;               /* for the claim event ("claimed by worker N") */
    int64_t claimed_at;            /* wall ms of the claim; 0: no claim event (synchronous runs) */
    struct limits *limits;         /* paces http steps that name limits; NULL: no pacing */
    int64_t deadline_mono;         /* monotonic ms the http calls must end by; 0: none (jobs).
                                      Synchronous runs pass their total deadline (runs.h). */
    size_t max_item_bytes;         /* what steps build for one item is held to this (its data
                                      after a map, a rendered request, a document written, the
                                      outputs kept): past it the item fails ItemTooLarge; 0: 1 MiB */
};

/* struct pipeline_item (one item in) and struct pipeline_result (its outcome) are in
 * steps/step.h: the step runners fill the result. */

/* Runs items[0..n) through w. tenant/job_id name the owner (job_id NULL for a
 * synchronous run). res[i] receives item i's outcome; counts[0..w->nsteps) receive
 * per-step tallies (names borrowed from w). Thread-safe for distinct results. */
void pipeline_run(const struct pipeline_env *env, const struct wfdef *w, const char *tenant,
                  const char *job_id, enum pipeline_mode mode, const struct pipeline_item *items,
                  size_t n, struct pipeline_result *res, struct store_step_count *counts);
void pipeline_result_release(struct pipeline_result *r);

/* The item data of a synchronous run (borrowed JSON) as the text the pipeline takes
 * (pipeline_item.data), written the way the pipeline writes JSON, and held to the
 * item size limit like a submitted item's bytes: measured before it is written.
 * max_bytes: the limit (0: 1 MiB).
 * out, out_len: [out] a new string (caller frees with free()), NULL on error.
 * Returns 0, or -SLUICE_E_ITEM_TOO_LARGE when the text would pass max_bytes. */
int pipeline_item_data(json_t *data, size_t max_bytes, char **out, size_t *out_len);

/* The size limit of what the steps build for one item (--max-item-bytes; default
 * 1 MiB): the data a map step leaves, a rendered URL, header or body, a document an
 * upsert/patch step writes, and the step outputs kept (http responses). Past it the
 * item fails with ItemTooLarge at that step, and nothing much larger is built first.
 * Call once at startup before any pipeline_run (not synchronised); 0 is ignored. */

#endif
