/* step.h - the contract of a step runner: what one step type receives and how it reports.
 *
 * DESIGN
 * engine/pipeline.c runs a batch of items through a workflow stage by stage (see
 * engine/pipeline.h). For each step it looks the step's type up in the one table
 * (steps.h) and calls its runner:
 *   - an item runner (validate, map, document, noop, fail) once per live item;
 *   - a batch runner (http) once with the whole batch, so the requests of all live
 *     items go out together.
 * A runner reads the step's compiled definition (r->w->steps[k]) and the item's context
 * (step_ctx), and ends every item it ran on with exactly one step_pass or step_error
 * (step_too_large is a step_error); a failed or skipped item is no longer live. What the
 * runner needs of the engine reaches it through struct step_run: the store and outbound
 * handles, and callbacks the pipeline fills for secrets and pacing, so that nothing here
 * includes an engine header. Runners are thread-safe for distinct runs. */
#ifndef SLUICE_STEPS_STEP_H
#define SLUICE_STEPS_STEP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/workflow.h"
#include "store/store.h"
#include "util/buf.h"

struct outbound;
struct secmask;

/* One item as the pipeline receives it. */
struct pipeline_item {
    int64_t index;
    const char *ref;
    const char *data; /* raw JSON or NULL */
    size_t data_len;
    int attempt; /* 1-based */
};

/* One item's outcome, filled by the runners and the pipeline. */
struct pipeline_result {
    int status;               /* ITEM_SUCCEEDED, ITEM_FAILED or ITEM_SKIPPED */
    char *error_code;         /* heap or NULL */
    char *error_message;      /* heap or NULL */
    char *failed_step;        /* heap or NULL */
    char *result;             /* heap JSON text or NULL (built-ins: the store writes it) */
    char *events;             /* heap JSON array text */
    char *warnings;           /* heap JSON array text or NULL */
    struct store_doc_op *ops; /* heap (DEFERRED mode); op strings owned by the result */
    size_t nops;
    int aborted;     /* an http call was cut by the server's shutdown: the outcome
                        says nothing about the item; give the item back instead */
    int out_of_time; /* an http call ended unanswered at the caller's deadline
                        (outbound_response.deadline_reached): a synchronous run's
                        504, not the item's failure */
};

/* A step's output kept as its JSON text (step_keep_text). */
struct step_text_out {
    const char *name; /* the step's (the workflow's) */
    char *text;       /* compact JSON, owned */
    size_t len;
};

/* One item's trip through the pipeline. */
struct step_item {
    const struct pipeline_item *in;
    struct pipeline_result *out;
    json_t *ctx;      /* {"data","ref","job","index","steps"}; NULL until a step needs it */
    int bare;         /* ctx has no "data" yet: only outputs were kept (step_outputs) */
    int dirty;        /* a map step changed data: doc ops and bodies use ctx.data */
    int live;         /* not failed or skipped yet */
    struct buf ev;    /* the events array's elements, comma-separated */
    int64_t ev_base;  /* the claim event's time and attempt, the events after it are */
    int ev_n;         /* written against (util/events.h); 0: no claim event in ev */
    json_t *warnings; /* array or NULL */
    size_t capops;
    /* Outputs kept as text, after ctx's "steps" in the result; they become values in
     * ctx when a step reads it (step_outputs), so they are always its latest outputs. */
    struct step_text_out *texts;
    size_t ntexts;
};

/* What paces an http step's requests: the outbound request's pace, pace_backoff and
 * pace_ctx (outbound/outbound.h). ctx NULL: nothing paces. */
struct step_pacer {
    int64_t (*pace)(void *ctx, const char *host, int64_t now_mono, int64_t *hold);
    void (*backoff)(void *ctx, const char *host, int64_t until_mono);
    void (*observe)(void *ctx, const char *host, int status, int timed_out, const char *headers,
                    int64_t sent_mono);
    void *ctx;
};

/* One run of a batch through a workflow; built and owned by pipeline_run. */
struct step_run {
    const struct wfdef *w;
    const char *tenant, *job_id; /* job_id NULL: a synchronous run */
    int immediate;               /* document steps write at once (PIPELINE_IMMEDIATE) */
    struct step_item *items;
    size_t n;
    struct store_step_count *counts; /* [w->nsteps] */
    char run_id[32];                 /* idempotency keys of synchronous runs */
    struct secmask *mask;            /* every secret value resolved: masked in all the run writes */
    size_t max_item_bytes;           /* what steps build for one item is held to this */
    struct store *st;
    struct outbound *ob;   /* NULL: http steps fail with UpstreamUnavailable */
    int64_t deadline_mono; /* monotonic ms the http calls must end by; 0: none */
    /* Resolves {{secrets.name}} for the run's tenant (added to mask). Returns 1 and
     * [out] *value (borrowed; lives as long as the run), 0 when not visible, or a
     * negative store error. */
    int (*secret)(struct step_run *r, const char *name, json_t **value);
    /* Starts pacing step k's requests by the limits it names ([out] *p, p->ctx NULL
     * when nothing paces); pacer_end ends it. */
    void (*pacer_begin)(struct step_run *r, size_t k, struct step_pacer *p);
    void (*pacer_end)(struct step_pacer *p);
};

/* Runs step k on one live item. */
typedef void (*step_item_fn)(struct step_run *r, struct step_item *p, size_t k);
/* Runs step k on every live item of the batch. */
typedef void (*step_batch_fn)(struct step_run *r, size_t k);

/* A step type's runner: exactly one of each and batch is set. */
struct step_kind {
    step_item_fn each;
    step_batch_fn batch;
};

/* The runner of type t, from the dispatch table (steps.c). */
const struct step_kind *steps_kind(enum step_type t);

/* ---- what every runner uses (step.c) ------------------------------------------------- */

/* The item's context, built on first use (borrowed; owned by p). */
json_t *step_ctx(struct step_run *r, struct step_item *p);
/* ctx.steps, the outputs kept so far (borrowed). Parses nothing: a step that only keeps
 * an output (an http step whose request needed no template over data) does not pay for
 * reading the item's data; step_ctx() adds it when something needs it. */
json_t *step_outputs(struct step_run *r, struct step_item *p);
/* Keeps v (stolen) as ctx.steps.<step>, for later steps and the item's result. */
void step_set_output(struct step_run *r, struct step_item *p, const char *step, json_t *v);
/* Appends one event. A step event (s != NULL) also names the step, its type, its
 * outcome (passed | failed | skipped | continued) and its end time. extra (stolen, may
 * be NULL) adds fields (http details, violations). */
void step_event(struct step_item *p, int64_t at, const char *stage, const struct step_def *s,
                int attempt, const char *level, const char *code, const char *msg, int64_t dur_ms,
                json_t *extra);
/* step_pass_span whose extra fields are written already: extra_text, members each led
 * by ',' (util/events.h), for fields that many items' events share. */
void step_pass_text(struct step_run *r, struct step_item *p, size_t k, int64_t start, int64_t end,
                    const char *code, const char *msg, const char *extra_text);
/* Appends the item's claim event: "claimed by worker W (attempt N)", stored as the
 * numbers (util/events.h). */
void step_claim_event(struct step_item *p, int64_t at, unsigned worker, int attempt);
/* Step k passed for this item (started at start): counted, and an info event with code
 * and msg; extra (stolen, may be NULL) as in step_event. */
void step_pass(struct step_run *r, struct step_item *p, size_t k, int64_t start, const char *code,
               const char *msg, json_t *extra);
/* A step failed for this item: its onError decides what happens to the item. err is
 * the SLUICE_E_* code; code (NULL: err's name) and msg are recorded. */
void step_error(struct step_run *r, struct step_item *p, size_t k, int64_t start, int err,
                const char *code, const char *msg, json_t *extra);
/* step_pass and step_error for work whose own span is known, from start to end (wall
 * ms): an http step's items share the step's run but each has its own request, whose
 * event says when that request started and ended, not when the batch did. */
void step_pass_span(struct step_run *r, struct step_item *p, size_t k, int64_t start, int64_t end,
                    const char *code, const char *msg, json_t *extra);
void step_error_span(struct step_run *r, struct step_item *p, size_t k, int64_t start, int64_t end,
                     int err, const char *code, const char *msg, json_t *extra);
/* The item would grow past r->max_item_bytes at step k: ItemTooLarge, with the place as
 * target ("steps.shape.ops[3].value") both in the message and in the event. */
void step_too_large(struct step_run *r, struct step_item *p, size_t k, int64_t start,
                    const char *where, const char *why);
/* The length of the item's result, {"steps":steps}, as pipeline_run writes it, or
 * cap + 1 when it passes cap. */
size_t step_result_len(json_t *steps, size_t cap);
/* Keeps text[0..len) (stolen: compact JSON that jload accepts with JLOAD_ALLOW_NUL) as
 * step k's output without making it a value, for a runner that has the output's text
 * already: the result splices it, and a later step that reads the context sees it as
 * a value. 0; or -1 when the item's result would then pass r->max_item_bytes: the text
 * is freed and nothing is kept (the caller fails the item). */
int step_keep_text(struct step_run *r, struct step_item *p, size_t k, char *text, size_t len);
/* The item's result text, {"steps":{...}}, with its length in *len; NULL when no step
 * kept an output. */
char *step_result_text(struct step_item *p, size_t *len);
/* Frees what the item holds (context, outputs kept as text). */
void step_item_release(struct step_item *p);

/* ---- the runners (one file each) ----------------------------------------------------- */

void step_validate(struct step_run *r, struct step_item *p, size_t k); /* validate.c */
void step_map(struct step_run *r, struct step_item *p, size_t k);      /* map.c */
void step_document(struct step_run *r, struct step_item *p, size_t k); /* document.c */
void step_noop(struct step_run *r, struct step_item *p, size_t k);     /* control.c */
void step_fail(struct step_run *r, struct step_item *p, size_t k);     /* control.c */
void step_http(struct step_run *r, size_t k);                          /* http.c */

/* Collects into names (a JSON array) the secret names an http step's templates use:
 * its header values, and its body when it sets secretBody. Returns 0, or -1 when one
 * is not a plain {{secrets.NAME}} (the names found are collected all the same). */
int step_http_secret_names(const struct step_def *s, json_t *names);

#endif
