/* rules.h - private to src/store/: the rules of the store that do not depend on the
 * database, written once for both backends (rules.c).
 *
 * A backend (sqlite/, postgres/) holds only what differs between engines: its SQL and
 * how it runs it. What a job row means (its decoding, its last transition, the
 * callback its end owes), how an item's status is derived, how events are encoded,
 * how a claim is filled and how a completion's doc ops turn into events, results and
 * failed items live here, and both backends' private headers include this one. Every
 * function here is pure or works on memory the caller hands it: none runs SQL, none
 * locks, and all may be called from any thread on data the caller owns. */
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
    "workflow_version, parent_job, priority, uses"

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

/* ---- events ---------------------------------------------------------------------- */

/* Appends one event object to b, which holds "[" and zero or more events; step may be
 * NULL (no "step" member). */
void rules_event_add(struct buf *b, const char *at, const char *stage, const char *step,
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
/* The item of index in claim cl (its items sorted by index), or NULL. */
const struct store_claim_item *rules_claim_find(const struct store_claim *cl, int64_t index);
/* Frees the strings of items[0..n), not the array. */
void rules_claim_items_clear(struct store_claim_item *items, size_t n);
/* Frees the strings of items[0..n) and the array (may be NULL). */
void rules_claim_items_free(struct store_claim_item *items, size_t n);

/* ---- completions ----------------------------------------------------------------- */

/* What one document change did (the backend's doc_apply). */
struct rules_doc_result {
    int64_t version, updated_at;
    int created;
    const char *data; /* the document after: borrowed from the input or the backend's
                         scratch buffer until its next change; NULL deleted */
    size_t data_len;
};

/* The new text of a document for a change op with data (data_len bytes) when the
 * current one is live (text cur of cur_len bytes, NULL for SQL NULL): sets w->data and
 * w->data_len (a patch's result is written into tmp, which w->data then borrows). 0,
 * -SLUICE_E_INVALID_DATA, -SLUICE_E_DOCUMENT_NOT_FOUND, -SLUICE_E_ITEM_TOO_LARGE (over
 * max_doc_bytes) or -SLUICE_E_INVALID_PARAMETER (an unknown op). */
int rules_doc_change(enum store_op op, const char *data, size_t data_len, int live, const char *cur,
                     size_t cur_len, struct buf *tmp, size_t max_doc_bytes,
                     struct rules_doc_result *w);

/* The backend's doc_apply for the doc ops of store_complete, on its connection conn
 * (inside the completing transaction): the contract of sq_doc_apply / pg_doc_apply
 * with if_match -1. */
typedef int (*rules_doc_apply_fn)(void *conn, const char *tenant, const char *coll, const char *ref,
                                  size_t ref_len, enum store_op op, const char *data,
                                  size_t data_len, const char *job_id, int64_t item_index,
                                  int64_t now, struct rules_doc_result *w);

/* Where rules_apply_ops works: the backend's doc_apply on conn, the connection's
 * scratch buffers for events (ev, holding "[" and events) and the result JSON (res),
 * its document limit (for the message), and the completion's time (now; ts its text). */
struct rules_apply {
    rules_doc_apply_fn apply;
    void *conn;
    struct buf *ev, *res;
    size_t max_doc_bytes;
    int64_t now;
    const char *ts;
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
void rules_op_written(struct buf *ev, struct buf *res, const char *ts,
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

#endif
