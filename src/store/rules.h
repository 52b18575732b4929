/* rules.h - private to src/store/: the rules of the store that do not depend on the
 * database, written once for both backends (rules.c).
 *
 * A backend (sqlite/, postgres/) holds only what differs between engines: its SQL and
 * how it runs it. Here live what a job row means (its decoding, its last transition,
 * the callback its end owes), how an item's status is derived, how events are encoded,
 * how a claim is filled and how a completion's doc ops turn into events, results and
 * failed items; and, where the two backends' transaction bodies had the same flow,
 * that body itself (jobs, items, documents, releasing a claim, the outbox, keys),
 * written over a small table of the backend's SQL-level steps (rules_jobs_prims,
 * rules_items_prims, rules_claims_prims, ...) that each backend fills with its own
 * functions. The job ops go furthest: store.c runs rules.c's bodies on the backend's
 * rules_jobs_prims (store_ops.jobs), so a backend has no job entry points at all.
 *
 * The pure functions work on memory the caller hands them; the bodies run inside the
 * transaction the backend's runner opened and reach SQL only through its steps. None
 * locks; all may be called from any thread on data the caller owns. */
#ifndef SLUICE_STORE_RULES_H
#define SLUICE_STORE_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct buf;

/* ---- result rows ----------------------------------------------------------------- */

/* How rules.c reads a column of the backend's current result row `row` (a
 * sqlite3_stmt, or a PGresult and a row number): i64 (NULL reads 0), copy into dst of
 * cap bytes (cut to fit, NUL-terminated; NULL reads ""), dup (a heap copy the caller
 * frees with free(), NULL for NULL; [out] *len its length when len is not NULL). */
struct rules_cols {
    int64_t (*i64)(const void *row, int col);
    void (*copy)(const void *row, int col, char *dst, size_t cap);
    char *(*dup)(const void *row, int col, size_t *len);
};

/* src (NULL: "") copied into dst of cap bytes, cut to fit, always NUL-terminated. */
void rules_copy_str(char *dst, size_t cap, const char *src);

/* ---- job rows -------------------------------------------------------------------- */

/* The columns of a job row, in the order rules_job_read decodes them. */
#define JOB_COLS                                                                                   \
    "jid, id, tenant, workflow, client_reference, status, outcome, error_code, total, pending, "   \
    "processing, succeeded, failed, skipped, canceled, created_at, started_at, "                   \
    "last_progress_at, completed_at, win_at, win_done, next_idx, cancel_at, last_claim, "          \
    "workflow_version, parent_job, priority, uses, ref_order"

/* A job row: the public struct plus the claim cursor and cancel point. */
struct rules_jobrow {
    int64_t jid, cursor, cancel_at, last_claim;
    struct store_job j;
};

/* Fills r from the JOB_COLS of row (from column 0) read through cols; a terminal job
 * gets expires_at = completed_at + retention_ms (retention_ms > 0). The caller
 * releases r->j with store_job_release. */
void rules_job_read(const struct rules_cols *cols, const void *row, int64_t retention_ms,
                    struct rules_jobrow *r);
/* 1 when status (enum store_job_status) is Succeeded, Failed or Canceled. */
int rules_job_terminal(int status);
/* The job's last transition, in memory: Running/NotStarted with nothing left ->
 * Succeeded/Failed; Canceling with nothing in flight -> Canceled (completed_at = now).
 * 1 when it changed r, 0 when not. */
int rules_job_finish(struct rules_jobrow *r, int64_t now);
/* Cancels a NotStarted or Running job in memory: everything at or above the cursor is
 * Canceled from now on (O(1)), then rules_job_finish. 1 when it changed r (the caller
 * saves it), 0 when the job was past that. */
int rules_job_cancel(struct rules_jobrow *r, int64_t now);
/* Whether job r can be retried: 0, -SLUICE_E_CONFLICT (not terminal) or
 * -SLUICE_E_EMPTY_JOB (no failed item); the retry has r->j.counts.failed items. */
int rules_job_retry_check(const struct rules_jobrow *r);
/* The rows one store_retention_sweep transaction may remove: max_rows, at least 1, at
 * most INT32_MAX (its result is an int). */
int64_t rules_sweep_budget(size_t max_rows);
/* The completion callback a terminal job owes (see COMPLETION CALLBACKS in store.h):
 * its event name, and [out] *bit its STORE_CB_* bit. */
const char *rules_job_event(int status, int *bit);

/* ---- items ----------------------------------------------------------------------- */

/* An item's status as shown: Pending items are Canceled at or above the job's cancel
 * point, Processing below its cursor (neither is stored). */
int rules_item_status(int stored, int64_t idx, const struct rules_jobrow *r);
/* Fills it (zeroed first) from an item row of job r read through cols: columns 1..11
 * are status, attempts, ref, data, result, error_code, error_message, updated_at,
 * failed_step, warnings, parent_index (column 0, the index, is the backend's: index);
 * data only when with_data. */
void rules_item_read(const struct rules_cols *cols, const void *row, const struct rules_jobrow *r,
                     int64_t index, int with_data, struct store_item *it);
/* Fills d's data, version, updated_at, job_id and item_index from columns first..first+4
 * of row. */
void rules_doc_read(const struct rules_cols *cols, const void *row, int first, struct store_doc *d);

/* ---- tenant-owned definitions ------------------------------------------------------ */

/* Fills d (zeroed first) from columns 0..6 of row: name, tenant, text, created_at,
 * updated_at, version, deleted (the column order of both backends' defs.c). */
void rules_def_read(const struct rules_cols *cols, const void *row, enum store_def_kind kind,
                    struct store_def *d);
/* The undo of a def op's transaction (vctx: its struct store_def_call, store_int.h):
 * drops what the body put in the outputs, leaving `one` empty of x's kind. */
void rules_defs_undo(void *vctx);

/* ---- events ---------------------------------------------------------------------- */

/* Appends one event (at: epoch ms) to b, which holds "[" and zero or more events, in
 * the compact form of util/events.h; step may be NULL (no "step" member). */
void rules_event_add(struct buf *b, int64_t at, const char *stage, const char *step,
                     const char *level, const char *code, const char *message);
/* Appends the elements of a JSON array text (the engine's events; NULL: none) to b. */
void rules_events_add_array(struct buf *b, const char *arr);

/* ---- claims ---------------------------------------------------------------------- */

/* The range a new claim of job r takes, up to max_items from its cursor: 1 and [out]
 * [*lo, *hi), or 0 when the job is not NotStarted or Running or has nothing left. */
int rules_claim_range(const struct rules_jobrow *r, size_t max_items, int64_t *lo, int64_t *hi);
/* Fills out (zeroed first) for the claim claim_id of job r: items (n, owned by out
 * from now on) of [lo, hi) under token, leased from now to lease_until. */
void rules_claim_fill(struct store_claim *out, const struct rules_jobrow *r, int64_t claim_id,
                      const char *token, int64_t lo, int64_t hi, int64_t now, int64_t lease_until,
                      struct store_claim_item *items, size_t n);
/* The scheduler's limits on a new range of job r: how many of items[0..n) gate (may
 * be NULL: all) admits; the strings of those cut off are freed. */
size_t rules_claim_admit(const struct store_claim_gate *gate, const struct rules_jobrow *r,
                         struct store_claim_item *items, size_t n);
/* qsort/bsearch order of int64_t values (item indexes, keys). */
int rules_cmp_i64(const void *a, const void *b);
/* The item of index in claim cl (its items sorted by index), or NULL. */
const struct store_claim_item *rules_claim_find(const struct store_claim *cl, int64_t index);
/* Frees the strings of items[0..n), not the array. */
void rules_claim_items_clear(struct store_claim_item *items, size_t n);
/* Frees the strings of items[0..n) and the array (may be NULL). */
void rules_claim_items_free(struct store_claim_item *items, size_t n);

/* ---- ref order across jobs (REF ORDER in store.h) --------------------------------- */

/* What rules_ref_blocked needs to know of one item (the backend's lookup). */
struct rules_ref_item {
    int found;                  /* 0: the item or its job is gone (deleted) */
    int status;                 /* stored status (enum store_item_status) */
    int64_t prev_idx;           /* the previous same-ref item of its job, or -1 */
    int64_t wait_jid, wait_idx; /* its link to an earlier job's item (ref_waits); wait_jid
                                   0: none */
    int64_t cancel_at;          /* its job's cancel point, -1 when not canceled */
};

/* The backend's lookup of item idx of job jid, on conn inside the claim's transaction:
 * 0 ([out] it, it->found 0 when gone) or an error. */
typedef int (*rules_ref_lookup_fn)(void *conn, int64_t jid, int64_t idx, struct rules_ref_item *it);

/* Whether an item linked to item idx of job jid (an earlier job's latest same-ref item
 * at commit) must wait: 1 while that item is Pending or Processing, 0 when it is
 * terminal or gone. A Canceled one (at or above its job's cancel point, or settled
 * Canceled without having run) is passed through to its own predecessor (the previous same-ref item
 * of its job, else its own link), so canceling a job in the middle of a chain does not let a later
 * job overtake an earlier one. A terminal item ends the walk: it was claimed only once everything
 * before it was done. Negative: lookup's error. */
int rules_ref_blocked(void *conn, rules_ref_lookup_fn lookup, int64_t jid, int64_t idx);
/* Whether parked item idx of job jid (PARKING in sqlite/claims.c) may go back to work:
 * 1 when its link no longer blocks (rules_ref_blocked) or its job is being canceled
 * (it is then settled Canceled), 0 while it must still wait, or lookup's error. */
int rules_ref_parked_free(void *conn, rules_ref_lookup_fn lookup, int64_t jid, int64_t idx);

/* ---- claims: transaction bodies ------------------------------------------------ */

/* The arguments and outputs of store_claim, store_complete and store_release, as the
 * backends' transaction bodies see them. */
struct rules_claim_ctx {
    const char *node; /* the node a claim is recorded for (PostgreSQL), or NULL */
    size_t max_items;
    int64_t lease_ms;
    int max_attempts;
    const struct store_claim_gate *gate;
    int max_active_jobs;
    struct store_claim *out;     /* for store_claim */
    const struct store_claim *c; /* for store_complete / store_release */
    struct store_outcome *outs;
    size_t n;
    const struct store_step_count *steps;
    size_t nsteps;
};

/* Fills x with the arguments of store_claim (o) and zeroes out. */
void rules_claim_args(struct rules_claim_ctx *x, const struct store_claim_opts *o,
                      struct store_claim *out);
/* The undo of store_claim's body (a tx_undo_fn): releases and zeroes x->out. */
void rules_claim_undo(void *ctx);
/* Fills x with the arguments of store_complete. */
void rules_complete_args(struct rules_claim_ctx *x, const struct store_claim *c,
                         struct store_outcome *outs, size_t n, const struct store_step_count *steps,
                         size_t nsteps);
/* The undo of store_complete's body (a tx_undo_fn): rules_outcomes_reset. */
void rules_complete_undo(void *ctx);
/* After store_complete's transaction returned rc: rules_outcomes_settle when it
 * committed. Returns rc. */
int rules_complete_done(struct rules_claim_ctx *x, int rc);
/* The items of a new range [lo, *hi) of job r that the scheduler admits (gate, see
 * rules_claim_admit): [out] *n and *hi cut to them, and the new claim's token. 1, 0
 * none admitted (*n 0), or an error. */
int rules_claim_take(const struct store_claim_gate *gate, const struct rules_jobrow *r,
                     struct store_claim_item *items, size_t *n, int64_t lo, int64_t *hi,
                     char token[STORE_ID_MAX]);
/* Whether outcome o of a completion counts: 1 it reports an item claim cl (of range
 * [lo, hi)) owes ([out] *ci; ev then holds the start of its events array: '[' and the
 * engine's events, for the store's own to follow), 0 not (skipped), or
 * -SLUICE_E_INVALID_PARAMETER when its status is not one store_complete accepts. */
int rules_outcome_begin(const struct store_claim *cl, const struct store_outcome *o, int64_t lo,
                        int64_t hi, const struct store_claim_item **ci, struct buf *ev);

/* ---- items: transaction bodies ------------------------------------------------- */

/* The arguments and outputs of store_item_get and store_item_list, which the
 * backends' transaction bodies hand to rules_item_get_body / rules_item_list_body. */
struct rules_items_ctx {
    const char *tenant, *job_id;
    struct store_item_filter f; /* f.status -1: any */
    int with_data;              /* 0 or 1 */
    int64_t index, after_index;
    size_t limit;
    struct store_item *out;  /* store_item_get */
    struct store_item *list; /* store_item_list: limit (at least 1) slots, n filled */
    size_t n;
};

/* What reading items needs of a backend, on its connection conn inside the read
 * transaction. Job r is the item's job (its strings already released). */
struct rules_items_prims {
    /* The backend's job_load_visible: 1 found ([out] r), 0 not, or an error. */
    int (*job_load_visible)(void *conn, const char *tenant, const char *job_id,
                            struct rules_jobrow *r);
    /* Item index (0 <= index < total) of job r, with its data and events, into out:
     * 1, 0 when its row is missing, or an error. */
    int (*item_read)(void *conn, const struct rules_jobrow *r, int64_t index,
                     struct store_item *out);
    /* The items of job r past index after (-1 <= after <= total) that match x->f,
     * in index order, appended to x->list up to x->limit: 0 or an error. */
    int (*items_read)(void *conn, const struct rules_jobrow *r, int64_t after,
                      struct rules_items_ctx *x);
};

/* The body of store_item_get on x (x->out is zeroed first; events "[]" when none):
 * 1 found, 0 not (no such visible job or index), or an error. */
int rules_item_get_body(const struct rules_items_prims *p, void *conn, struct rules_items_ctx *x);
/* The body of store_item_list on x (arguments from rules_items_list_args): 1 and
 * x->list / x->n, 0 no such visible job, or an error (x->list freed). */
int rules_item_list_body(const struct rules_items_prims *p, void *conn, struct rules_items_ctx *x);
/* The undo of both bodies (a tx_undo_fn): drops what they put in x's outputs. */
void rules_items_undo(void *ctx);
/* Fills x with the arguments of store_item_list (f may be NULL: no filter). */
void rules_items_list_args(struct rules_items_ctx *x, const char *tenant, const char *job_id,
                           const struct store_item_filter *f, int64_t after_index, size_t limit,
                           int with_data);
/* The outputs of store_item_list after its transaction returned rc: [out] *out (the
 * caller frees with store_items_free) and *n, empty unless rc > 0. Returns rc. */
int rules_items_list_done(struct rules_items_ctx *x, int rc, struct store_item **out, size_t *n);

/* ---- documents: transaction bodies --------------------------------------------- */

/* What one document change did (the backend's doc_apply). */
struct rules_doc_result {
    int64_t version, updated_at;
    int created;
    const char *data; /* the document after: borrowed from the input or the backend's
                         scratch buffer until its next change; NULL deleted */
    size_t data_len;
};

/* The backend's doc_apply (sq_doc_apply, pg_doc_apply), on its connection conn inside
 * the transaction: applies one document change at time now (the transaction's time),
 * checking if_match (-1: no check) against the current version. 0 applied ([out] w),
 * -SLUICE_E_DOCUMENT_NOT_FOUND, -SLUICE_E_INVALID_DATA, -SLUICE_E_ITEM_TOO_LARGE,
 * -SLUICE_E_PRECONDITION_FAILED or a store error. */
typedef int (*rules_doc_apply_fn)(void *conn, const char *tenant, const char *coll, const char *ref,
                                  size_t ref_len, enum store_op op, const char *data,
                                  size_t data_len, int64_t if_match, const char *job_id,
                                  int64_t item_index, int64_t now, struct rules_doc_result *w);

/* The arguments and outputs of store_doc_get, store_doc_write and store_doc_list, as
 * the backends' transaction bodies see them. */
struct rules_docs_ctx {
    const char *tenant, *coll, *ref, *after_ref;
    enum store_op op;
    const char *data;
    size_t data_len, limit;
    int64_t if_match;
    struct store_doc *out; /* may be NULL for store_doc_write */
    int *created;          /* may be NULL */
    struct store_doc *list;
    size_t n;
};

/* The body of store_doc_write on x: the change through the backend's apply on conn at
 * time now, then x's outputs. 0 or apply's error. */
int rules_doc_write_body(rules_doc_apply_fn apply, void *conn, int64_t now,
                         struct rules_docs_ctx *x);
/* Fills x with the arguments of store_doc_write and zeroes out (may be NULL). */
void rules_doc_write_args(struct rules_docs_ctx *x, const char *tenant, const char *collection,
                          const char *ref, enum store_op op, const char *data, size_t data_len,
                          int64_t if_match, struct store_doc *out, int *created);
/* The undo of the document bodies (a tx_undo_fn): drops what they put in x's outputs. */
void rules_docs_undo(void *ctx);
/* The outputs of store_doc_list after its transaction returned rc: [out] *out (the
 * caller frees with store_docs_free) and *n, empty when rc < 0. Returns rc. */
int rules_docs_list_done(struct rules_docs_ctx *x, int rc, struct store_doc **out, size_t *n);

/* ---- completion callbacks: the outbox ------------------------------------------ */

/* The columns of a delivery row, in the order rules_delivery_read decodes them. */
#define DELIVERY_COLS                                                                              \
    "id, job_id, tenant, event, url, state, attempts, created_at, next_at, updated_at, format"
/* How many: the column after them is the first a query adds (the log, a row id). */
#define DELIVERY_NCOLS 11

/* The arguments and outputs of store_delivery_claim, store_delivery_record and
 * store_delivery_list, as the backends' transaction bodies see them. */
struct rules_outbox_ctx {
    int64_t lease_ms;
    size_t max;
    const char *tenant, *job_id;
    const struct store_delivery *d;
    const struct store_delivery_attempt *a;
    int state;
    int64_t next_at;
    struct store_delivery *list;
    size_t n;
};

/* Fills d (zeroed first) from the DELIVERY_COLS of row (from column 0) read through
 * cols; with_log: column DELIVERY_NCOLS is its log. */
void rules_delivery_read(const struct rules_cols *cols, const void *row, int with_log,
                         struct store_delivery *d);
/* A new lease of delivery d taken at now for lease_ms (at least 1 ms): a new token in
 * d->token and [out] *until, the lease's end. 0 or an error. */
int rules_delivery_lease(struct store_delivery *d, int64_t now, int64_t lease_ms, int64_t *until);
/* Fills x with the arguments of store_delivery_record: 0, or
 * -SLUICE_E_INVALID_PARAMETER when state is not an enum store_delivery_state. */
int rules_delivery_record_args(struct rules_outbox_ctx *x, const struct store_delivery *d,
                               const struct store_delivery_attempt *a, int state, int64_t next_at);
/* The log element of x's attempt (x->a, not NULL) of x->d, a JSON object text, into b
 * (reset first). */
void rules_delivery_attempt(const struct rules_outbox_ctx *x, struct buf *b);
/* The undo of the outbox bodies (a tx_undo_fn): frees x->list and zeroes it. */
void rules_outbox_undo(void *ctx);
/* The outputs of store_delivery_claim and store_delivery_list after their transaction
 * returned rc: [out] *out (the caller frees with store_deliveries_free) and *n, empty
 * (x->list freed) unless rc > 0. Returns rc. */
int rules_outbox_done(struct rules_outbox_ctx *x, int rc, struct store_delivery **out, size_t *n);

/* ---- API keys, tenants, settings ------------------------------------------------ */

/* The arguments and outputs of the key, tenant and setting operations, as the
 * backends' transaction bodies see them. */
struct rules_keys_ctx {
    const char *key_id, *tenant, *hash; /* store_key_create, _lookup, _revoke */
    char *tenant_out;                   /* store_key_lookup: STORE_NAME_MAX bytes */
    struct store_key *list;             /* store_key_list */
    size_t n;
    int weight;                 /* store_tenant_set_weight */
    int64_t open_jobs, pending; /* store_tenant_load */
    const char *name, *value;   /* store_setting_ensure */
    char *out;
    int format;                         /* store_callback_format_set */
    int64_t until;                      /* store_callback_key_rotate */
    struct store_callback_prefs *prefs; /* store_callback_prefs_get, _key_rotate */
};

/* The columns of a callback_prefs row, in the order rules_callback_prefs_read decodes. */
#define CALLBACK_PREFS_COLS "format, key_gen, prev_gen, prev_until, updated_at"
/* Fills p from the CALLBACK_PREFS_COLS of row (from column 0) read through cols. */
void rules_callback_prefs_read(const struct rules_cols *cols, const void *row,
                               struct store_callback_prefs *p);

/* The undo of the key list and setting bodies (a tx_undo_fn): frees x->list and
 * x->out and zeroes them. */
void rules_keys_undo(void *ctx);
/* The outputs of store_key_list after its transaction returned rc: [out] *out (the
 * caller frees with free()) and *n, empty when rc < 0. 0 or rc. */
int rules_key_list_done(struct rules_keys_ctx *x, int rc, struct store_key **out, size_t *n);
/* The outputs of store_tenant_load after its transaction returned rc: [out] *open_jobs
 * and *pending unless rc < 0. Returns rc. */
int rules_tenant_load_done(const struct rules_keys_ctx *x, int rc, int64_t *open_jobs,
                           int64_t *pending);
/* The output of store_setting_ensure after its transaction returned rc: [out] *out
 * (the caller frees with free()), NULL (x->out freed) when rc < 0. Returns rc. */
int rules_setting_done(struct rules_keys_ctx *x, int rc, char **out);

/* ---- limits: rate buckets and concurrency units -------------------------------- */

/* The lease of store_bucket_take on a bucket whose TAT is tat and epoch is epoch, at
 * now (the store's clock), into out: its tat0 is the later of tat and now (the
 * bucket's TAT after n slots of interval ms is tat0 + n * interval). */
void rules_bucket_lease(struct store_bucket_lease *out, int64_t now, double tat, uint64_t epoch);
/* The units of a concurrency cap this holder has after store_sem_adjust: it held
 * held, the others (other live nodes) hold others; delta > 0 takes as many as cap
 * leaves (never fewer than it held), delta < 0 gives -delta back (never below 0). */
int64_t rules_sem_held(int64_t held, int64_t others, int64_t cap, int64_t delta);

/* ---- claims: holding one, and the completion loop ------------------------------ */

struct rules_item_end;

/* A claim's row as its holder finds it (struct store_claim names it). */
struct rules_held {
    int64_t jid, lo, hi, remaining;
};

/* What store_release needs of a backend, on its connection conn inside the
 * transaction (rules_release_body). */
struct rules_claims_prims {
    /* The row of claim cl if cl's token still holds it (locked where the engine locks)
     * and its job: 1 ([out] h, and r: release r->j with store_job_release),
     * -SLUICE_E_LEASE_LOST when it was taken over or is gone, or an error. */
    int (*claim_check)(void *conn, const struct store_claim *cl, struct rules_held *h,
                       struct rules_jobrow *r);
    /* Settles claim x->c (row h) given back on a canceling or canceled job (its pending
     * items Canceled, the claim dropped): 0 or an error. */
    int (*settle_released)(void *conn, const struct rules_claim_ctx *x, const struct rules_held *h);
    /* Gives claim cl (row h) back with its remaining items: expired at once and
     * marked released (the next store_claim re-leases it without counting an
     * attempt), its token emptied to fence the old holder. 0 or an error. */
    int (*give_back)(void *conn, const struct store_claim *cl, const struct rules_held *h);
};

/* The body of store_release on x (x->c): the claim's items go back, or, on a
 * canceling job, are settled (nothing to give back). 0, -SLUICE_E_LEASE_LOST or an
 * error. */
int rules_release_body(const struct rules_claims_prims *p, void *conn, struct rules_claim_ctx *x);

/* A walk over the outcomes of a completion (x->outs of claim x->c, row h) that count:
 * rules_outcome_next hands them out one by one. */
struct rules_outcomes {
    const struct rules_claim_ctx *x;
    const struct rules_held *h;
    struct buf *ev; /* the connection's events buffer */
    size_t i;
};

/* Starts walk w over x's outcomes (claim row h), their events built in ev. */
void rules_outcomes_start(struct rules_outcomes *w, const struct rules_claim_ctx *x,
                          const struct rules_held *h, struct buf *ev);
/* The next outcome of w that reports an item its claim owes (rules_outcome_begin):
 * 1 ([out] *o, *ci; w->ev holds the start of its events array), 0 none left, or
 * -SLUICE_E_INVALID_PARAMETER. */
int rules_outcome_next(struct rules_outcomes *w, struct store_outcome **o,
                       const struct store_claim_item **ci);
/* The end of outcome o of w once its ops ran (ops_rc, res, msg: see rules_item_end):
 * closes its events array in w->ev and fills e. */
void rules_outcome_end(struct rules_outcomes *w, const struct store_outcome *o, int ops_rc,
                       const char *res, const char *msg, struct rules_item_end *e);

/* ---- completions ----------------------------------------------------------------- */

/* The new text of a document for a change op with data (data_len bytes) when the
 * current one is live (text cur of cur_len bytes, NULL for SQL NULL): sets w->data and
 * w->data_len (a patch's result is written into tmp, which w->data then borrows). 0,
 * -SLUICE_E_INVALID_DATA, -SLUICE_E_DOCUMENT_NOT_FOUND, -SLUICE_E_ITEM_TOO_LARGE (over
 * max_doc_bytes) or -SLUICE_E_INVALID_PARAMETER (an unknown op). */
int rules_doc_change(enum store_op op, const char *data, size_t data_len, int live, const char *cur,
                     size_t cur_len, struct buf *tmp, size_t max_doc_bytes,
                     struct rules_doc_result *w);

/* Where rules_apply_ops works: the backend's doc_apply on conn, the connection's
 * scratch buffers for events (ev, holding "[" and events) and the result JSON (res),
 * its document limit (for the message), and the completion's time (now). */
struct rules_apply {
    rules_doc_apply_fn apply;
    void *conn;
    struct buf *ev, *res;
    size_t max_doc_bytes;
    int64_t now;
};

/* Applies the doc ops of outcome o (claimed item ci of job r) in order, appending an
 * "apply" event per op to a->ev and writing each op's [out] fields. 0 all applied
 * (a->res holds the last op's result JSON), 1 an op could not apply (its error is set,
 * msg holds the message; later ops are not applied), or a store error. */
int rules_apply_ops(const struct rules_apply *a, const struct rules_jobrow *r,
                    const struct store_claim_item *ci, struct store_outcome *o, char *msg,
                    size_t cap);
/* The event and result of op (of item ci) written at its version: appends the
 * "VersionWritten" event to ev (msg, cap: scratch) and, when last, writes the result
 * JSON into res. rules_apply_ops calls it per op; a backend that applied ops its own
 * way (postgres' batched upserts) calls it for each. */
void rules_op_written(struct buf *ev, struct buf *res, int64_t at,
                      const struct store_claim_item *ci, const struct store_doc_op *op, int last,
                      char *msg, size_t cap);

/* What a completion writes for one item. */
struct rules_item_end {
    int status;
    const char *result, *code, *message, *failed_step; /* borrowed */
};

/* 1 when o's status is one store_complete accepts (Succeeded, Failed, Skipped). */
int rules_outcome_valid(const struct store_outcome *o);
/* The end of outcome o: as reported, or, when ops_rc is 1 (rules_apply_ops could not
 * apply an op), Failed with that op's code and step and message msg; when ops applied
 * (ops_rc 0) and o has no result, res (the last op's result JSON) unless Failed; a
 * Succeeded item keeps no code, message or failed step. ops_rc -1: o had no ops. */
void rules_item_end(struct rules_item_end *e, const struct store_outcome *o, int ops_rc,
                    const char *res, const char *msg);
/* Counts one finished item of status (Succeeded, Failed or Skipped) in c. */
void rules_count_end(struct store_counts *c, int status);
/* Clears the [out] fields of every op of outs[0..n) (before a completion, and when
 * its transaction did not commit). */
void rules_outcomes_reset(struct store_outcome *outs, size_t n);
/* After a committed completion: an outcome one of whose ops could not apply failed
 * (see store.h, store_complete): its status, error_code and failed_step say so. */
void rules_outcomes_settle(struct store_outcome *outs, size_t n);

/* ---- jobs: transaction bodies ---------------------------------------------------- */

/* The job operations (store_job_begin ... store_job_delete, store_gc_receiving,
 * store_retention_sweep) are the same transactions in both backends over different
 * SQL, so their bodies are written once here and each backend gives only its steps:
 * a struct rules_jobs_prims, the `jobs` member of its store_ops. The wrapper in
 * store.c fills a context (struct rules_submit, rules_stage, rules_sweep, rules_jobs)
 * that starts with a struct rules_tx naming the body and the steps, and hands it to
 * the backend's run, which runs the body in one transaction of its retry loop
 * (sq_run_tx / pg_run_tx, through one trampoline of its own: they take a body on
 * their connection type) on a connection `conn` that every step then runs on. The
 * indirect calls are per transaction and per step, none per item. */

struct rules_jobs_prims;
struct rules_jobs;

/* What a transaction is, for a backend that schedules or syncs kinds differently
 * (SQLite: its tx_mode, see Durability in sqlite/conn.c; PostgreSQL runs all alike). */
enum rules_tx_kind {
    RULES_TX_READ,
    RULES_TX_WRITE,        /* a write a client request waits on */
    RULES_TX_WRITE_NOSYNC, /* a write whose loss in a crash is harmless (an upload's items) */
    RULES_TX_WRITE_BG,     /* a background write (workers, tasks): behind RULES_TX_WRITE */
};

/* The head of every context of a body here: the body and the backend's steps. */
struct rules_tx {
    int (*body)(void *conn, void *ctx);
    const struct rules_jobs_prims *p;
};

/* What the bodies need of a backend. Every step runs on conn inside the current
 * transaction and returns a negative error on failure; NULL members do nothing. */
struct rules_jobs_prims {
    /* Runs tx->body(conn, tx) (tx heads its context) in one transaction of kind on a
     * connection of the backend's handle impl, retrying the whole transaction on soft
     * errors; when the body or the commit fails, undo(tx) (may be NULL) drops what the
     * body put in the context's outputs. The body's result or a negative error. Any
     * thread, outside any transaction. */
    int (*run)(void *impl, enum rules_tx_kind kind, struct rules_tx *tx, void (*undo)(void *ctx));
    /* The transaction's time (ms). */
    int64_t (*now)(void *conn);
    /* jid of a Receiving job (locked where the engine locks): 1, or 0 when there is none. */
    int (*receiving_jid)(void *conn, const char *job_id, int64_t *jid);
    /* Deletes a job and everything of it: 0. */
    int (*job_remove)(void *conn, int64_t jid);
    /* Inserts the Receiving job job_id of tenant, created at now: 0. */
    int (*job_insert)(void *conn, const char *tenant, const char *job_id, int64_t now);
    /* Inserts items[0..n) (their indexes checked: 0 <= index < 2^32) into Receiving job
     * jid: 0. */
    int (*items_insert)(void *conn, int64_t jid, const struct store_new_item *items, size_t n);
    /* Sets the updated_at of Receiving job jid to now (store_gc_receiving ages uploads
     * by it): 0. */
    int (*job_touch)(void *conn, int64_t jid, int64_t now);
    /* A visible job of tenant by public id (lock: for an update): 1 found, 0 not. */
    int (*job_load)(void *conn, const char *tenant, const char *job_id, int lock,
                    struct rules_jobrow *r);
    /* job_load for readers: also a staging retry. */
    int (*job_load_visible)(void *conn, const char *tenant, const char *job_id,
                            struct rules_jobrow *r);
    /* Job jid, which the caller knows exists: 1. */
    int (*job_load_jid)(void *conn, int64_t jid, struct rules_jobrow *r);
    /* The step counts of job jid into j->steps: >= 0. */
    int (*job_load_steps)(void *conn, int64_t jid, struct store_job *j);
    /* Writes the job row back (a terminal one queues its callback): 0. */
    int (*job_save)(void *conn, const struct rules_jobrow *r, int64_t now);
    /* Before a cancel loads the job: takes the locks that come first (may be NULL). */
    int (*cancel_lock)(void *conn, const char *tenant, const char *job_id);
    /* After a canceled job r was saved: it is no longer runnable (may be NULL). */
    int (*unrunnable)(void *conn, int64_t jid);
    /* Makes committed job jid runnable and wakes the workers (may be NULL). */
    int (*runnable)(void *conn, int64_t jid);
    /* For job jid, committed (or published) in this transaction with ref_order
     * STORE_REF_ORDER_TENANT: links each of its items that is the first of its ref in
     * the job to the latest item of that ref of the tenant's earlier such jobs of its
     * workflow while that one is still Pending (ref_waits), then makes the job's last
     * item of each ref the latest (ref_tails). Serialized against other commits of the
     * same tenant and workflow. 0. */
    int (*ref_link)(void *conn, int64_t jid);

    /* Idempotency keys: the job m's key of tenant names, 1 ([out] *jid) when the
     * request replays, 0 when no key counts, -SLUICE_E_IDEMPOTENCY_KEY_REUSED. */
    int (*idem_find)(void *conn, const char *tenant, const struct store_job_meta *m, int64_t *jid);
    /* Before job jid of tenant is committed under m's key: [out] *existing the job
     * that holds the key already (0: none; the key is the new job's, or the
     * commit records it). */
    int (*idem_claim)(void *conn, int64_t jid, const char *tenant, const struct store_job_meta *m,
                      int64_t now, int64_t *existing);
    /* Records m's key for the new job jid: 0 (a backend that finds the key taken
     * meanwhile asks for the transaction to be run again). */
    int (*idem_record)(void *conn, int64_t jid, const struct store_job_meta *m, int64_t now);
    /* Makes Receiving job jid visible with meta m and total items (the caller
     * resolved m's key); a soft error or -SLUICE_E_CONFLICT (m->job_id names
     * another job). */
    int (*job_commit)(void *conn, int64_t jid, const struct store_job_meta *m, int64_t total,
                      int64_t now);

    /* Retries: inserts the retry of job r (new_job_id; staging: Receiving, else
     * NotStarted with r's failed count): 0 and [out] *jid. */
    int (*retry_insert)(void *conn, const struct rules_jobrow *r, const char *new_job_id,
                        int staging, int64_t now, int64_t *jid);
    /* Copies r's failed items into retry jid at once: the number copied. */
    int64_t (*retry_items)(void *conn, int64_t jid, const struct rules_jobrow *r);

    /* Staging retries: the first staging retry after jid `after` (1, [out] its jid,
     * tenant, parent, total and public job_id of STORE_ID_MAX bytes) or 0. */
    int (*stage_pick)(void *conn, int64_t after, int64_t *jid, char tenant[STORE_NAME_MAX],
                      char parent[STORE_ID_MAX], int64_t *total, char *job_id);
    /* [out] *staged and *pnext: one past the index and parent index of the last item
     * staged into retry jid (left as they are when none is). */
    int (*stage_last)(void *conn, int64_t jid, int64_t *staged, int64_t *pnext);
    /* [out] *pjid the visible job parent of tenant (left when gone). */
    int (*stage_parent)(void *conn, const char *tenant, const char *parent, int64_t *pjid);
    /* Copies up to max failed items of parent pjid from parent index pnext into retry
     * jid from index staged on: the number copied. */
    int64_t (*stage_items)(void *conn, int64_t jid, int64_t pjid, int64_t staged, int64_t pnext,
                           int64_t max);
    /* Remembers the last index per ref of items [staged, end) of retry jid: 0. */
    int (*stage_refs)(void *conn, int64_t jid, int64_t staged, int64_t end);
    /* Forgets up to max refs remembered for retry jid: how many it forgot. */
    int64_t (*stage_forget)(void *conn, int64_t jid, int64_t max);
    /* Publishes retry jid with its staged items: NotStarted, runnable. 0. */
    int (*stage_done)(void *conn, int64_t jid, int64_t staged, int64_t now);

    /* Garbage: [out] the jids (heap, caller frees) of the Receiving jobs idle since
     * before older_than and of the jobs left hidden by retention. */
    int (*gc_list)(void *conn, int64_t older_than, int64_t **jids, size_t *n);

    /* Retention: deletes up to max idempotency keys created before `before`: how many. */
    int64_t (*sweep_keys)(void *conn, int64_t before, int64_t max);
    /* A job hidden by an earlier sweep: 1 ([out] *jid) or 0. */
    int (*sweep_hidden)(void *conn, int64_t *jid);
    /* The terminal job that completed first before `before`: 1 ([out] *jid) or 0. */
    int (*sweep_expired)(void *conn, int64_t before, int64_t *jid);
    /* Hides job jid and deletes its claims, step counts, key and delivery: the number
     * of those rows deleted. */
    int64_t (*sweep_hide)(void *conn, int64_t jid);
    /* Deletes up to max items of job jid, lowest index first: how many. */
    int64_t (*sweep_items)(void *conn, int64_t jid, int64_t max);
    /* Deletes the row of job jid: 0. */
    int (*job_delete_row)(void *conn, int64_t jid);

    /* The visible jobs of x->tenant with status x->status (-1: any) and jid below
     * x->before_seq (<= 0: no bound), newest first, appended to x->list up to x->limit:
     * 0 (on an error the caller frees what it appended). */
    int (*job_list)(void *conn, struct rules_jobs *x);
};

/* The steps every backend gives as static functions of the member's own name, so that
 * its table reads { .now = ..., ..., RULES_JOBS_STEPS(RULES_STEP), } and a step it lacks
 * fails to compile instead of being called as NULL. The others (now, the job row's
 * load and save, idem_record, and the optional cancel_lock, unrunnable, runnable) it
 * names itself. */
/* clang-format off */
#define RULES_JOBS_STEPS(X)                                                                \
    X(run), X(receiving_jid), X(job_remove), X(job_load_steps),                            \
    X(job_insert), X(items_insert), X(job_touch), X(idem_find), X(idem_claim),             \
    X(job_commit), X(ref_link), X(retry_insert), X(retry_items),                                        \
    X(stage_pick), X(stage_last), X(stage_parent), X(stage_items), X(stage_refs),          \
    X(stage_forget), X(stage_done),                                                        \
    X(gc_list), X(sweep_keys), X(sweep_hidden), X(sweep_expired), X(sweep_hide),           \
    X(sweep_items), X(job_delete_row), X(job_list)
/* clang-format on */
#define RULES_STEP(name) .name = name

/* The context of the submit, retry, abort and gc bodies. */
struct rules_submit {
    struct rules_tx tx;
    const char *tenant, *job_id, *new_job_id;
    const struct store_new_item *items; /* store_job_add_items: n of them */
    size_t n;
    const struct store_job_meta *meta;
    int64_t total, older_than;
    struct store_job *out;
    int staging; /* job_retry_begin: the retry is created staging, without items */
};

/* Bodies on a struct rules_submit: store_job_begin and store_job_add_items (0, or
 * -SLUICE_E_NOT_FOUND: no such upload), store_job_commit (1 committed, 2 replayed its
 * key's job), store_job_retry and store_job_retry_begin (x->staging; 1, 2 replayed, 0
 * no such job), store_job_abort (1 aborted, 0 no such upload), store_gc_receiving (how
 * many went). x->out (may be NULL) gets the job; undo: rules_submit_undo. */
int rules_job_begin_body(void *conn, void *ctx);
int rules_job_add_items_body(void *conn, void *ctx);
int rules_job_commit_body(void *conn, void *ctx);
int rules_job_retry_body(void *conn, void *ctx);
int rules_job_abort_body(void *conn, void *ctx);
int rules_gc_body(void *conn, void *ctx);
/* Releases x->out (a struct rules_submit) and zeroes it. */
void rules_submit_undo(void *ctx);

/* The context of store_job_retry_stage's body. */
struct rules_stage {
    struct rules_tx tx;
    size_t max_rows;
    char *job_id;  /* [out] STORE_ID_MAX */
    int64_t after; /* pick the first staging retry with jid > after */
    int64_t *seq;  /* [out] the jid picked; may be NULL */
};

/* One batch of the oldest staging retry: copy up to max_rows failed items of the
 * parent, then (all copied) forget its refs in batches, then make it NotStarted.
 * Where it stands is read from the rows themselves (the last item staged), so a crash
 * between batches loses and doubles nothing. 0 nothing staging, 1 a batch done, 2
 * the retry published (or removed: its parent went before anything was staged). */
int rules_stage_body(void *conn, void *ctx);

/* The context of store_retention_sweep's body. */
struct rules_sweep {
    struct rules_tx tx;
    int64_t jobs_before, keys_before;
    int64_t budget; /* rules_sweep_budget */
};

/* One bounded transaction of the retention sweep (see Retention in sqlite/jobs.c):
 * the rows it removed. */
int rules_sweep_body(void *conn, void *ctx);

/* The context of the bodies that read and control jobs. */
struct rules_jobs {
    struct rules_tx tx;
    const char *tenant, *job_id;
    int status;
    int64_t before_seq;
    size_t limit;
    struct store_job *out;
    struct store_job *list;
    size_t n;
};

/* Bodies on a struct rules_jobs: store_job_get, store_job_cancel (x->out may be NULL)
 * and store_job_delete: 1 done, 0 no such job; store_job_list: 0 and x->list (x->limit
 * slots, at least 1) with x->n jobs. Undo: rules_jobs_undo. */
int rules_job_get_body(void *conn, void *ctx);
int rules_job_list_body(void *conn, void *ctx);
int rules_job_cancel_body(void *conn, void *ctx);
int rules_job_delete_body(void *conn, void *ctx);
/* Releases x->out and x->list (a struct rules_jobs) and zeroes them. */
void rules_jobs_undo(void *ctx);

#endif
