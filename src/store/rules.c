/* rules.c - the store's rules that do not depend on the database, once for both
 * backends (contracts in rules.h): decoding job, item, document and delivery rows
 * through the backend's column readers, the job's last transition and the callback it
 * owes, the derived item status, the encoding of item events, filling and releasing
 * claims, turning a completion's doc ops into events, results and failed items, and
 * the transaction bodies both backends ran with the same flow (jobs, items, documents,
 * the outbox, keys), over the backends' tables of SQL-level steps.
 *
 * On the hot paths (claim, complete, doc_apply, add_items) they add no allocation and
 * no formatting per item beyond what the backends did before, and an indirect call
 * only per transaction, per batch, per op (rules_apply_ops -> the backend's doc_apply)
 * or per column of a job row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/rules.h"
#include "store/store_int.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/events.h"
#include "util/ids.h"
#include "util/xmalloc.h"

void rules_copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- job rows -------------------------------------------------------------------- */

void rules_job_read(const struct rules_cols *cols, const void *row, int64_t retention_ms,
                    struct rules_jobrow *r)
{
    struct store_job *j = &r->j;
    memset(r, 0, sizeof *r);
    r->jid = cols->i64(row, 0);
    cols->copy(row, 1, j->id, sizeof j->id);
    cols->copy(row, 2, j->tenant, sizeof j->tenant);
    cols->copy(row, 3, j->workflow, sizeof j->workflow);
    j->client_reference = cols->dup(row, 4, NULL);
    j->status = (int)cols->i64(row, 5);
    j->outcome = (int)cols->i64(row, 6);
    cols->copy(row, 7, j->error_code, sizeof j->error_code);
    j->counts.total = cols->i64(row, 8);
    j->counts.pending = cols->i64(row, 9);
    j->counts.processing = cols->i64(row, 10);
    j->counts.succeeded = cols->i64(row, 11);
    j->counts.failed = cols->i64(row, 12);
    j->counts.skipped = cols->i64(row, 13);
    j->counts.canceled = cols->i64(row, 14);
    j->created_at = cols->i64(row, 15);
    j->started_at = cols->i64(row, 16);
    j->last_progress_at = cols->i64(row, 17);
    j->completed_at = cols->i64(row, 18);
    j->win_at = cols->i64(row, 19);
    j->win_done = cols->i64(row, 20);
    r->cursor = cols->i64(row, 21);
    r->cancel_at = cols->i64(row, 22);
    r->last_claim = cols->i64(row, 23);
    j->workflow_version = cols->i64(row, 24);
    cols->copy(row, 25, j->parent_job, sizeof j->parent_job);
    j->priority = (int)cols->i64(row, 26);
    j->uses = cols->dup(row, 27, NULL);
    j->ref_order = (int)cols->i64(row, 28);
    j->seq = r->jid;
    if (rules_job_terminal(j->status) && j->completed_at > 0 && retention_ms > 0)
        j->expires_at = j->completed_at + retention_ms;
}

int rules_job_terminal(int status)
{
    return status == JOB_SUCCEEDED || status == JOB_FAILED || status == JOB_CANCELED;
}

int rules_job_finish(struct rules_jobrow *r, int64_t now)
{
    struct store_job *j = &r->j;
    if ((j->status == JOB_RUNNING || j->status == JOB_NOT_STARTED) && j->counts.pending == 0 &&
        j->counts.processing == 0 && r->cursor >= j->counts.total) {
        if (j->counts.failed == 0) {
            j->status = JOB_SUCCEEDED;
            j->outcome = OUTCOME_ALL_SUCCEEDED;
        } else if (j->counts.succeeded + j->counts.skipped == 0) {
            j->status = JOB_FAILED;
            rules_copy_str(j->error_code, sizeof j->error_code, "AllItemsFailed");
        } else {
            j->status = JOB_SUCCEEDED;
            j->outcome = OUTCOME_PARTIALLY_SUCCEEDED;
        }
        j->completed_at = now;
        return 1;
    }
    if (j->status == JOB_CANCELING && j->counts.processing == 0) {
        j->status = JOB_CANCELED;
        j->completed_at = now;
        return 1;
    }
    return 0;
}

int rules_job_cancel(struct rules_jobrow *r, int64_t now)
{
    if (r->j.status != JOB_NOT_STARTED && r->j.status != JOB_RUNNING)
        return 0;
    /* O(1): everything at or above the cursor is Canceled from now on. */
    r->cancel_at = r->cursor;
    r->j.counts.canceled += r->j.counts.pending;
    r->j.counts.pending = 0;
    r->j.status = JOB_CANCELING;
    rules_job_finish(r, now);
    return 1;
}

int rules_job_retry_check(const struct rules_jobrow *r)
{
    if (!rules_job_terminal(r->j.status))
        return -SLUICE_E_CONFLICT;
    return r->j.counts.failed == 0 ? -SLUICE_E_EMPTY_JOB : 0;
}

int64_t rules_sweep_budget(size_t max_rows)
{
    return max_rows == 0 ? 1 : (max_rows > INT32_MAX ? INT32_MAX : (int64_t)max_rows);
}

const char *rules_job_event(int status, int *bit)
{
    *bit = status == JOB_SUCCEEDED ? STORE_CB_COMPLETED
           : status == JOB_FAILED  ? STORE_CB_FAILED
                                   : STORE_CB_CANCELED;
    return status == JOB_SUCCEEDED ? "job.completed"
           : status == JOB_FAILED  ? "job.failed"
                                   : "job.canceled";
}

/* ---- items and documents --------------------------------------------------------- */

int rules_item_status(int stored, int64_t idx, const struct rules_jobrow *r)
{
    if (stored != ITEM_PENDING)
        return stored;
    if (r->cancel_at >= 0 && idx >= r->cancel_at)
        return ITEM_CANCELED;
    if (idx < r->cursor)
        return ITEM_PROCESSING;
    return ITEM_PENDING;
}

void rules_item_read(const struct rules_cols *cols, const void *row, const struct rules_jobrow *r,
                     int64_t index, int with_data, struct store_item *it)
{
    memset(it, 0, sizeof *it);
    it->index = index;
    it->status = rules_item_status((int)cols->i64(row, 1), it->index, r);
    it->attempts = (int)cols->i64(row, 2);
    it->ref = cols->dup(row, 3, NULL);
    if (with_data)
        it->data = cols->dup(row, 4, &it->data_len);
    it->result = cols->dup(row, 5, NULL);
    cols->copy(row, 6, it->error_code, sizeof it->error_code);
    it->error_message = cols->dup(row, 7, NULL);
    it->created_at = r->j.created_at;
    it->updated_at = cols->i64(row, 8);
    if (!it->updated_at)
        it->updated_at = it->created_at;
    cols->copy(row, 9, it->failed_step, sizeof it->failed_step);
    it->warnings = cols->dup(row, 10, NULL);
    it->parent_index = cols->i64(row, 11);
}

void rules_doc_read(const struct rules_cols *cols, const void *row, int first, struct store_doc *d)
{
    d->data = cols->dup(row, first, &d->data_len);
    d->version = cols->i64(row, first + 1);
    d->updated_at = cols->i64(row, first + 2);
    cols->copy(row, first + 3, d->job_id, sizeof d->job_id);
    d->item_index = cols->i64(row, first + 4);
}

/* ---- tenant-owned definitions ------------------------------------------------------ */

void rules_def_read(const struct rules_cols *cols, const void *row, enum store_def_kind kind,
                    struct store_def *d)
{
    memset(d, 0, sizeof *d);
    d->kind = kind;
    cols->copy(row, 0, d->name, sizeof d->name);
    cols->copy(row, 1, d->tenant, sizeof d->tenant);
    d->text = cols->dup(row, 2, NULL);
    d->created_at = cols->i64(row, 3);
    d->updated_at = cols->i64(row, 4);
    d->version = cols->i64(row, 5);
    d->deleted = (int)cols->i64(row, 6);
}

void rules_defs_undo(void *vctx)
{
    struct store_def_call *x = vctx;
    if (x->one) {
        store_def_release(x->one);
        memset(x->one, 0, sizeof *x->one);
        x->one->kind = x->kind;
    }
    store_defs_free(x->many, x->n);
    x->many = NULL;
    x->n = 0;
}

/* ---- events ---------------------------------------------------------------------- */

void rules_event_add(struct buf *b, int64_t at, const char *stage, const char *step,
                     const char *level, const char *code, const char *message)
{
    const struct item_event e = {.at = at,
                                 .stage = stage,
                                 .step = step,
                                 .level = level,
                                 .code = code,
                                 .message = message,
                                 .duration_ms = -1,
                                 .base = events_base(b->data, b->len)};
    events_put(b, &e, NULL);
}

void rules_events_add_array(struct buf *b, const char *arr)
{
    if (!arr)
        return;
    const char *p = arr, *e = arr + strlen(arr);
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t'))
        e--;
    if (e - p < 2 || *p != '[' || e[-1] != ']')
        return;
    p++, e--;
    const char *q0 = p;
    while (q0 < e && (*q0 == ' ' || *q0 == '\n' || *q0 == '\r' || *q0 == '\t'))
        q0++;
    if (q0 == e)
        return;
    if (b->len > 1)
        buf_putc(b, ',');
    buf_append(b, p, (size_t)(e - p));
}

/* ---- claims ---------------------------------------------------------------------- */

int rules_claim_range(const struct rules_jobrow *r, size_t max_items, int64_t *lo, int64_t *hi)
{
    if ((r->j.status != JOB_NOT_STARTED && r->j.status != JOB_RUNNING) ||
        r->cursor >= r->j.counts.total)
        return 0;
    *lo = r->cursor;
    *hi = r->cursor + (int64_t)max_items;
    if (*hi > r->j.counts.total)
        *hi = r->j.counts.total;
    return 1;
}

void rules_claim_fill(struct store_claim *out, const struct rules_jobrow *r, int64_t claim_id,
                      const char *token, int64_t lo, int64_t hi, int64_t now, int64_t lease_until,
                      struct store_claim_item *items, size_t n)
{
    memset(out, 0, sizeof *out);
    out->claim_id = claim_id;
    rules_copy_str(out->token, sizeof out->token, token);
    rules_copy_str(out->job_id, sizeof out->job_id, r->j.id);
    rules_copy_str(out->tenant, sizeof out->tenant, r->j.tenant);
    rules_copy_str(out->workflow, sizeof out->workflow, r->j.workflow);
    out->from = lo;
    out->to = hi;
    out->claimed_at = now;
    out->lease_until = lease_until;
    out->n = n;
    out->items = items;
}

size_t rules_claim_admit(const struct store_claim_gate *gate, const struct rules_jobrow *r,
                         struct store_claim_item *items, size_t n)
{
    if (!gate)
        return n;
    /* The scheduler's limits: a shorter range, or none from this job now. */
    size_t granted = gate->admit(gate->ctx, &r->j, n);
    if (granted >= n)
        return n;
    rules_claim_items_clear(items + granted, n - granted);
    return granted;
}

int rules_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

const struct store_claim_item *rules_claim_find(const struct store_claim *cl, int64_t index)
{
    size_t lo = 0, hi = cl->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cl->items[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < cl->n && cl->items[lo].index == index ? &cl->items[lo] : NULL;
}

void rules_claim_items_clear(struct store_claim_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].ref);
        free(items[i].data);
    }
}

void rules_claim_items_free(struct store_claim_item *items, size_t n)
{
    rules_claim_items_clear(items, n);
    free(items);
}

/* ---- ref order across jobs ------------------------------------------------------ */

int rules_ref_blocked(void *conn, rules_ref_lookup_fn lookup, int64_t jid, int64_t idx)
{
    struct rules_ref_item it;
    /* Each step goes to an item of the same job at a lower index or to one of an
     * earlier job, so the walk ends; the guard only bounds a damaged store. */
    for (int guard = 0; guard < 100000; guard++) {
        int rc = lookup(conn, jid, idx, &it);
        if (rc < 0)
            return rc;
        if (!it.found || (it.status != ITEM_PENDING && it.status != ITEM_CANCELED))
            return 0;
        if (it.status == ITEM_PENDING && !(it.cancel_at >= 0 && idx >= it.cancel_at))
            return 1; /* Pending or Processing */
        if (it.prev_idx >= 0) {
            idx = it.prev_idx;
        } else if (it.wait_jid > 0) {
            jid = it.wait_jid;
            idx = it.wait_idx;
        } else {
            return 0;
        }
    }
    return -SLUICE_E_INTERNAL;
}

int rules_ref_parked_free(void *conn, rules_ref_lookup_fn lookup, int64_t jid, int64_t idx)
{
    struct rules_ref_item it;
    int rc = lookup(conn, jid, idx, &it);
    if (rc < 0)
        return rc;
    if (!it.found || it.status != ITEM_PENDING || it.cancel_at >= 0 || it.wait_jid <= 0)
        return 1; /* gone, settled, or canceling: the claim that takes it over settles it */
    rc = rules_ref_blocked(conn, lookup, it.wait_jid, it.wait_idx);
    return rc < 0 ? rc : !rc;
}

/* ---- claims: transaction bodies ------------------------------------------------ */

void rules_claim_args(struct rules_claim_ctx *x, const struct store_claim_opts *o,
                      struct store_claim *out)
{
    *x = (struct rules_claim_ctx){.max_items = o->max_items ? o->max_items : 1,
                                  .lease_ms = o->lease_ms,
                                  .max_attempts = o->max_attempts,
                                  .max_active_jobs = o->max_active_jobs,
                                  .gate = o->gate,
                                  .out = out};
    memset(out, 0, sizeof *out);
}

void rules_claim_undo(void *ctx)
{
    struct rules_claim_ctx *x = ctx;
    store_claim_release(x->out);
    memset(x->out, 0, sizeof *x->out);
}

void rules_complete_args(struct rules_claim_ctx *x, const struct store_claim *c,
                         struct store_outcome *outs, size_t n, const struct store_step_count *steps,
                         size_t nsteps)
{
    *x = (struct rules_claim_ctx){.c = c, .outs = outs, .n = n, .steps = steps, .nsteps = nsteps};
}

void rules_complete_undo(void *ctx)
{
    struct rules_claim_ctx *x = ctx;
    rules_outcomes_reset(x->outs, x->n);
}

int rules_complete_done(struct rules_claim_ctx *x, int rc)
{
    /* An op that could not apply failed its item: tell the caller (see store.h). */
    if (rc >= 0)
        rules_outcomes_settle(x->outs, x->n);
    return rc;
}

int rules_claim_take(const struct store_claim_gate *gate, const struct rules_jobrow *r,
                     struct store_claim_item *items, size_t *n, int64_t lo, int64_t *hi,
                     char token[STORE_ID_MAX])
{
    if ((*n = rules_claim_admit(gate, r, items, *n)) == 0)
        return 0;
    *hi = lo + (int64_t)*n;
    int rc = ids_random("lt_", 24, token);
    return rc < 0 ? rc : 1;
}

int rules_outcome_begin(const struct store_claim *cl, const struct store_outcome *o, int64_t lo,
                        int64_t hi, const struct store_claim_item **ci, struct buf *ev)
{
    *ci = rules_claim_find(cl, o->index);
    if (!*ci || o->index < lo || o->index >= hi)
        return 0; /* not an item this claim owes */
    if (!rules_outcome_valid(o))
        return -SLUICE_E_INVALID_PARAMETER;
    buf_reset(ev);
    buf_putc(ev, '[');
    rules_events_add_array(ev, o->events);
    return 1;
}

/* ---- items: transaction bodies ------------------------------------------------- */

/* The visible job of x for reading its items: its row without its strings. */
static int items_job(const struct rules_items_prims *p, void *conn, const struct rules_items_ctx *x,
                     struct rules_jobrow *r)
{
    int rc = p->job_load_visible(conn, x->tenant, x->job_id, r);
    if (rc > 0)
        store_job_release(&r->j);
    return rc;
}

int rules_item_get_body(const struct rules_items_prims *p, void *conn, struct rules_items_ctx *x)
{
    struct rules_jobrow r;
    memset(x->out, 0, sizeof *x->out);
    int rc = items_job(p, conn, x, &r);
    if (rc <= 0)
        return rc;
    if (x->index < 0 || x->index >= r.j.counts.total)
        return 0;
    rc = p->item_read(conn, &r, x->index, x->out);
    if (rc == 1) { /* stored compact (util/events.h), shown in full */
        struct buf ev = BUF_INIT;
        events_expand(&ev, x->out->events ? x->out->events : "[]");
        free(x->out->events);
        x->out->events = buf_detach(&ev, NULL);
    }
    return rc;
}

int rules_item_list_body(const struct rules_items_prims *p, void *conn, struct rules_items_ctx *x)
{
    struct rules_jobrow r;
    int rc = items_job(p, conn, x, &r);
    if (rc <= 0)
        return rc;
    /* Clamp the cursor into this job's range: an index past the end must not overflow
     * into the next job's items (SQLite's item keys). */
    int64_t after = x->after_index < -1 ? -1 : x->after_index;
    if (after > r.j.counts.total)
        after = r.j.counts.total;
    x->list = xcalloc(x->limit ? x->limit : 1, sizeof *x->list);
    x->n = 0;
    if ((rc = p->items_read(conn, &r, after, x)) < 0) {
        rules_items_undo(x);
        return rc;
    }
    return 1;
}

void rules_items_undo(void *ctx)
{
    struct rules_items_ctx *x = ctx;
    if (x->out) {
        store_item_release(x->out);
        memset(x->out, 0, sizeof *x->out);
    }
    store_items_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}

void rules_items_list_args(struct rules_items_ctx *x, const char *tenant, const char *job_id,
                           const struct store_item_filter *f, int64_t after_index, size_t limit,
                           int with_data)
{
    *x = (struct rules_items_ctx){.tenant = tenant,
                                  .job_id = job_id,
                                  .f = {.status = -1},
                                  .after_index = after_index,
                                  .limit = limit,
                                  .with_data = with_data ? 1 : 0};
    if (f)
        x->f = *f;
    if (x->f.status < 0)
        x->f.status = -1;
}

int rules_items_list_done(struct rules_items_ctx *x, int rc, struct store_item **out, size_t *n)
{
    *out = rc <= 0 ? NULL : x->list;
    *n = rc <= 0 ? 0 : x->n;
    return rc;
}

/* ---- documents: transaction bodies --------------------------------------------- */

int rules_doc_write_body(rules_doc_apply_fn apply, void *conn, int64_t now,
                         struct rules_docs_ctx *x)
{
    struct rules_doc_result w;
    int rc = apply(conn, x->tenant, x->coll, x->ref, strlen(x->ref), x->op, x->data, x->data_len,
                   x->if_match, "", -1, now, &w);
    if (rc < 0)
        return rc;
    if (x->created)
        *x->created = w.created;
    if (x->out) {
        store_doc_release(x->out);
        memset(x->out, 0, sizeof *x->out);
        x->out->ref = xstrdup(x->ref);
        x->out->data = w.data ? xstrndup(w.data, w.data_len) : NULL;
        x->out->data_len = w.data ? w.data_len : 0;
        x->out->version = w.version;
        x->out->updated_at = w.updated_at;
        x->out->item_index = -1;
    }
    return 0;
}

void rules_doc_write_args(struct rules_docs_ctx *x, const char *tenant, const char *collection,
                          const char *ref, enum store_op op, const char *data, size_t data_len,
                          int64_t if_match, struct store_doc *out, int *created)
{
    *x = (struct rules_docs_ctx){.tenant = tenant,
                                 .coll = collection,
                                 .ref = ref,
                                 .op = op,
                                 .data = data,
                                 .data_len = data_len,
                                 .if_match = if_match,
                                 .out = out,
                                 .created = created};
    if (out)
        memset(out, 0, sizeof *out);
}

void rules_docs_undo(void *ctx)
{
    struct rules_docs_ctx *x = ctx;
    if (x->out) {
        store_doc_release(x->out);
        memset(x->out, 0, sizeof *x->out);
    }
    store_docs_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}

int rules_docs_list_done(struct rules_docs_ctx *x, int rc, struct store_doc **out, size_t *n)
{
    *out = rc < 0 ? NULL : x->list;
    *n = rc < 0 ? 0 : x->n;
    return rc;
}

/* ---- completion callbacks: the outbox ------------------------------------------ */

void rules_delivery_read(const struct rules_cols *cols, const void *row, int with_log,
                         struct store_delivery *d)
{
    memset(d, 0, sizeof *d);
    cols->copy(row, 0, d->id, sizeof d->id);
    cols->copy(row, 1, d->job_id, sizeof d->job_id);
    cols->copy(row, 2, d->tenant, sizeof d->tenant);
    cols->copy(row, 3, d->event, sizeof d->event);
    d->url = cols->dup(row, 4, NULL);
    d->state = (int)cols->i64(row, 5);
    d->attempts = (int)cols->i64(row, 6);
    d->created_at = cols->i64(row, 7);
    d->next_at = cols->i64(row, 8);
    d->updated_at = cols->i64(row, 9);
    d->format = (int)cols->i64(row, 10);
    if (with_log)
        d->log = cols->dup(row, DELIVERY_NCOLS, NULL);
}

void rules_callback_prefs_read(const struct rules_cols *cols, const void *row,
                               struct store_callback_prefs *p)
{
    p->format = (int)cols->i64(row, 0);
    p->key_gen = cols->i64(row, 1);
    p->prev_gen = cols->i64(row, 2);
    p->prev_until = cols->i64(row, 3);
    p->updated_at = cols->i64(row, 4);
}

int rules_delivery_lease(struct store_delivery *d, int64_t now, int64_t lease_ms, int64_t *until)
{
    *until = now + (lease_ms > 0 ? lease_ms : 1);
    return ids_random("lease_", 24, d->token);
}

int rules_delivery_record_args(struct rules_outbox_ctx *x, const struct store_delivery *d,
                               const struct store_delivery_attempt *a, int state, int64_t next_at)
{
    if (state < DELIVERY_PENDING || state > DELIVERY_ABANDONED)
        return -SLUICE_E_INVALID_PARAMETER;
    *x = (struct rules_outbox_ctx){.d = d, .a = a, .state = state, .next_at = next_at};
    return 0;
}

void rules_delivery_attempt(const struct rules_outbox_ctx *x, struct buf *b)
{
    const struct store_delivery_attempt *a = x->a;
    char ts[25];
    buf_reset(b);
    buf_printf(b, "{\"attempt\":%d,\"at\":\"%s\",\"latencyMs\":%lld,\"status\":%d",
               x->d->attempts + 1, clock_fmt_ms(a->at, ts), (long long)a->latency_ms, a->status);
    if (a->error_code) {
        const char *m = a->error_message ? a->error_message : "";
        buf_puts(b, ",\"error\":{\"code\":");
        buf_json_str(b, a->error_code, strlen(a->error_code));
        buf_puts(b, ",\"message\":");
        buf_json_str(b, m, strlen(m));
        buf_putc(b, '}');
    }
    buf_putc(b, '}');
}

void rules_outbox_undo(void *ctx)
{
    struct rules_outbox_ctx *x = ctx;
    store_deliveries_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}

int rules_outbox_done(struct rules_outbox_ctx *x, int rc, struct store_delivery **out, size_t *n)
{
    if (rc <= 0)
        rules_outbox_undo(x);
    *out = x->list;
    *n = x->n;
    return rc;
}

/* ---- API keys, tenants, settings ------------------------------------------------ */

void rules_keys_undo(void *ctx)
{
    struct rules_keys_ctx *x = ctx;
    free(x->list);
    x->list = NULL;
    x->n = 0;
    free(x->out);
    x->out = NULL;
}

int rules_key_list_done(struct rules_keys_ctx *x, int rc, struct store_key **out, size_t *n)
{
    *out = rc < 0 ? NULL : x->list;
    *n = rc < 0 ? 0 : x->n;
    return rc < 0 ? rc : 0;
}

int rules_tenant_load_done(const struct rules_keys_ctx *x, int rc, int64_t *open_jobs,
                           int64_t *pending)
{
    if (rc >= 0) {
        *open_jobs = x->open_jobs;
        *pending = x->pending;
    }
    return rc;
}

int rules_setting_done(struct rules_keys_ctx *x, int rc, char **out)
{
    if (rc < 0)
        rules_keys_undo(x);
    *out = x->out;
    return rc;
}

/* ---- limits: rate buckets and concurrency units -------------------------------- */

void rules_bucket_lease(struct store_bucket_lease *out, int64_t now, double tat, uint64_t epoch)
{
    out->now = now;
    out->tat0 = tat > (double)now ? tat : (double)now;
    out->epoch = epoch;
}

int64_t rules_sem_held(int64_t held, int64_t others, int64_t cap, int64_t delta)
{
    if (delta > 0) {
        int64_t room = cap - held - others;
        return held + (delta < room ? delta : (room > 0 ? room : 0));
    }
    return held + delta > 0 ? held + delta : 0;
}

/* ---- claims: holding one, and the completion loop ------------------------------ */

int rules_release_body(const struct rules_claims_prims *p, void *conn, struct rules_claim_ctx *x)
{
    struct rules_held h;
    struct rules_jobrow r;
    int rc = p->claim_check(conn, x->c, &h, &r);
    if (rc < 0)
        return rc;
    store_job_release(&r.j);
    if (r.j.status == JOB_CANCELING || r.j.status == JOB_CANCELED) /* nothing to give back */
        return p->settle_released(conn, x, &h);
    return p->give_back(conn, x->c, &h);
}

void rules_outcomes_start(struct rules_outcomes *w, const struct rules_claim_ctx *x,
                          const struct rules_held *h, struct buf *ev)
{
    *w = (struct rules_outcomes){.x = x, .h = h, .ev = ev};
}

int rules_outcome_next(struct rules_outcomes *w, struct store_outcome **o,
                       const struct store_claim_item **ci)
{
    while (w->i < w->x->n) {
        *o = &w->x->outs[w->i++];
        int rc = rules_outcome_begin(w->x->c, *o, w->h->lo, w->h->hi, ci, w->ev);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void rules_outcome_end(struct rules_outcomes *w, const struct store_outcome *o, int ops_rc,
                       const char *res, const char *msg, struct rules_item_end *e)
{
    buf_putc(w->ev, ']');
    rules_item_end(e, o, ops_rc, res, msg);
}

/* ---- completions ----------------------------------------------------------------- */

int rules_doc_change(enum store_op op, const char *data, size_t data_len, int live, const char *cur,
                     size_t cur_len, struct buf *tmp, size_t max_doc_bytes,
                     struct rules_doc_result *w)
{
    int rc;
    switch (op) {
    case STORE_OP_UPSERT:
        if (!data)
            return -SLUICE_E_INVALID_DATA;
        w->data = data;
        w->data_len = data_len;
        break;
    case STORE_OP_PATCH:
        if (!live)
            return -SLUICE_E_DOCUMENT_NOT_FOUND;
        if (!data || !cur)
            return -SLUICE_E_INVALID_DATA;
        if ((rc = store_doc_merge(cur, cur_len, data, data_len, tmp)) < 0)
            return rc;
        w->data = buf_cstr(tmp);
        w->data_len = tmp->len;
        break;
    case STORE_OP_DELETE:
        if (!live)
            return -SLUICE_E_DOCUMENT_NOT_FOUND;
        break;
    default:
        return -SLUICE_E_INVALID_PARAMETER;
    }
    /* Checked on the result, not the request: two patches within the limit each must
     * not leave a document twice its size. */
    if (op != STORE_OP_DELETE && w->data_len > max_doc_bytes)
        return -SLUICE_E_ITEM_TOO_LARGE;
    return 0;
}

void rules_op_written(struct buf *ev, struct buf *res, int64_t at,
                      const struct store_claim_item *ci, const struct store_doc_op *op, int last,
                      char *msg, size_t cap)
{
    const char *coll = op->collection ? op->collection : "";
    const char *ref = op->ref ? op->ref : ci->ref;
    snprintf(msg, cap, "%s/%s %sversion %lld", coll, ref,
             op->op == STORE_OP_DELETE ? "deleted, " : "", (long long)op->version);
    rules_event_add(ev, at, "apply", op->step, "info", "VersionWritten", msg);
    if (last) {
        buf_reset(res);
        buf_puts(res, "{\"collection\":");
        buf_json_str(res, coll, strlen(coll));
        buf_puts(res, ",\"ref\":");
        buf_json_str(res, ref, strlen(ref));
        buf_printf(res, ",\"version\":%lld,\"created\":%s}", (long long)op->version,
                   op->created ? "true" : "false");
    }
}

int rules_apply_ops(const struct rules_apply *a, const struct rules_jobrow *r,
                    const struct store_claim_item *ci, struct store_outcome *o, char *msg,
                    size_t cap)
{
    struct rules_doc_result w;
    for (size_t j = 0; j < o->nops; j++) {
        struct store_doc_op *op = &o->ops[j];
        const char *coll = op->collection ? op->collection : "";
        const char *ref = op->ref ? op->ref : ci->ref;
        int rc = a->apply(a->conn, r->j.tenant, coll, ref, strlen(ref), op->op,
                          op->data ? op->data : ci->data, op->data ? op->data_len : ci->data_len,
                          -1, r->j.id, o->index, a->now, &w);
        if (rc == -SLUICE_E_DOCUMENT_NOT_FOUND || rc == -SLUICE_E_INVALID_DATA ||
            rc == -SLUICE_E_ITEM_TOO_LARGE) {
            op->error = rc;
            if (rc == -SLUICE_E_DOCUMENT_NOT_FOUND)
                snprintf(msg, cap, "%s/%s does not exist", coll, ref);
            else if (rc == -SLUICE_E_ITEM_TOO_LARGE)
                snprintf(msg, cap, "%s/%s would be larger than %zu bytes after the %s", coll, ref,
                         a->max_doc_bytes, op->op == STORE_OP_PATCH ? "patch" : "upsert");
            else
                snprintf(msg, cap, "%s/%s: data cannot be applied as %s", coll, ref,
                         op->op == STORE_OP_PATCH ? "a merge patch" : "a document");
            rules_event_add(a->ev, a->now, "apply", op->step, "error", sluice_err_code(rc), msg);
            return 1;
        }
        if (rc < 0)
            return rc;
        op->version = w.version;
        op->created = w.created;
        rules_op_written(a->ev, a->res, a->now, ci, op, j + 1 == o->nops, msg, cap);
    }
    return 0;
}

int rules_outcome_valid(const struct store_outcome *o)
{
    return o->status == ITEM_SUCCEEDED || o->status == ITEM_FAILED || o->status == ITEM_SKIPPED;
}

void rules_item_end(struct rules_item_end *e, const struct store_outcome *o, int ops_rc,
                    const char *res, const char *msg)
{
    e->status = o->status;
    e->result = o->result;
    e->code = o->error_code;
    e->message = o->error_message;
    e->failed_step = o->failed_step;
    if (ops_rc ==
        1) { /* ops applied before the failing one stay (see Doc ops in sqlite/claims.c) */
        e->status = ITEM_FAILED;
        e->result = NULL;
        for (size_t j = 0; j < o->nops; j++)
            if (o->ops[j].error) {
                e->code = sluice_err_code(o->ops[j].error);
                e->failed_step = o->ops[j].step;
                break;
            }
        e->message = msg;
    } else if (ops_rc == 0 && !e->result && e->status != ITEM_FAILED) {
        e->result = res;
    }
    if (e->status == ITEM_SUCCEEDED)
        e->code = e->message = e->failed_step = NULL;
}

void rules_count_end(struct store_counts *c, int status)
{
    if (status == ITEM_SUCCEEDED)
        c->succeeded++;
    else if (status == ITEM_FAILED)
        c->failed++;
    else
        c->skipped++;
}

void rules_outcomes_reset(struct store_outcome *outs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < outs[i].nops; j++) {
            outs[i].ops[j].version = 0;
            outs[i].ops[j].created = 0;
            outs[i].ops[j].error = 0;
        }
    }
}

void rules_outcomes_settle(struct store_outcome *outs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < outs[i].nops; j++) {
            if (outs[i].ops[j].error) {
                outs[i].status = ITEM_FAILED;
                outs[i].error_code = sluice_err_code(outs[i].ops[j].error);
                outs[i].failed_step = outs[i].ops[j].step;
                break;
            }
        }
    }
}

/* ---- jobs: transaction bodies ---------------------------------------------------- */

int rules_job_begin_body(void *conn, void *vctx)
{
    struct rules_submit *x = vctx;
    const struct rules_jobs_prims *p = x->tx.p;
    return p->job_insert(conn, x->tenant, x->job_id, p->now(conn));
}

int rules_job_add_items_body(void *conn, void *vctx)
{
    struct rules_submit *x = vctx;
    const struct rules_jobs_prims *p = x->tx.p;
    int64_t jid = 0;
    int rc = p->receiving_jid(conn, x->job_id, &jid);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_NOT_FOUND;
    for (size_t i = 0; i < x->n; i++) /* SQLite keeps the index in a key's low 32 bits */
        if (x->items[i].index < 0 || x->items[i].index >= 4294967296LL)
            return -SLUICE_E_INVALID_PARAMETER;
    if (x->n > 0 && (rc = p->items_insert(conn, jid, x->items, x->n)) < 0)
        return rc;
    return p->job_touch(conn, jid, p->now(conn));
}

int rules_job_commit_body(void *conn, void *vctx)
{
    struct rules_submit *x = vctx;
    const struct rules_jobs_prims *p = x->tx.p;
    const struct store_job_meta *m = x->meta;
    int64_t jid = 0, existing = 0, now = p->now(conn);
    struct rules_jobrow r;
    int result = 1;
    int rc = p->receiving_jid(conn, x->job_id, &jid);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_NOT_FOUND;
    if (m->idem_key) {
        if ((rc = p->job_load_jid(conn, jid, &r)) < 0)
            return rc;
        char tenant[STORE_NAME_MAX];
        rules_copy_str(tenant, sizeof tenant, r.j.tenant);
        store_job_release(&r.j);
        if ((rc = p->idem_claim(conn, jid, tenant, m, now, &existing)) < 0)
            return rc;
    }
    if (existing) {
        /* Already done once: the staged copy goes, the caller gets the first job. */
        if ((rc = p->job_remove(conn, jid)) < 0)
            return rc;
        jid = existing;
        result = 2;
    } else if ((rc = p->job_commit(conn, jid, m, x->total, now)) < 0 ||
               (m->ref_order == STORE_REF_ORDER_TENANT && (rc = p->ref_link(conn, jid)) < 0)) {
        return rc;
    }
    if (x->out) {
        if ((rc = p->job_load_jid(conn, jid, &r)) < 0)
            return rc;
        *x->out = r.j;
    }
    return result;
}

void rules_submit_undo(void *vctx)
{
    struct rules_submit *x = vctx;
    if (x->out) {
        store_job_release(x->out);
        memset(x->out, 0, sizeof *x->out);
    }
}

int rules_job_retry_body(void *conn, void *vctx)
{
    struct rules_submit *x = vctx;
    const struct rules_jobs_prims *p = x->tx.p;
    struct rules_jobrow r;
    int64_t now = p->now(conn), existing = 0, jid = 0;
    int rc;
    memset(&r, 0, sizeof r);
    if (x->meta && x->meta->idem_key) {
        if ((rc = p->idem_find(conn, x->tenant, x->meta, &existing)) < 0)
            return rc;
        if (existing) {
            if (x->out) {
                if ((rc = p->job_load_jid(conn, existing, &r)) < 0)
                    return rc;
                *x->out = r.j;
            }
            return 2;
        }
    }
    rc = p->job_load(conn, x->tenant, x->job_id, 0, &r);
    if (rc <= 0)
        return rc;
    if ((rc = rules_job_retry_check(&r)) < 0)
        goto out;
    int64_t n = r.j.counts.failed; /* counts move with the rows: this is the row count */
    if ((rc = p->retry_insert(conn, &r, x->new_job_id, x->staging, now, &jid)) < 0)
        goto out;
    if (!x->staging) { /* else store_job_retry_stage copies the items */
        int64_t copied = p->retry_items(conn, jid, &r);
        if (copied < 0) {
            rc = (int)copied;
            goto out;
        }
        if (copied != n) { /* the job's failed count disagrees with its rows */
            rc = -SLUICE_E_INTERNAL;
            goto out;
        }
        /* a retry is a later job like any other: it comes after the jobs before it */
        if (r.j.ref_order == STORE_REF_ORDER_TENANT && (rc = p->ref_link(conn, jid)) < 0)
            goto out;
    }
    if (x->meta && x->meta->idem_key && (rc = p->idem_record(conn, jid, x->meta, now)) < 0)
        goto out;
    if (!x->staging && p->runnable && (rc = p->runnable(conn, jid)) < 0)
        goto out; /* a staging retry is runnable once staged */
    store_job_release(&r.j);
    if (x->out) {
        if ((rc = p->job_load_jid(conn, jid, &r)) < 0)
            goto out;
        *x->out = r.j;
        memset(&r.j, 0, sizeof r.j); /* now owned by out */
    }
    rc = 1;
out:
    store_job_release(&r.j);
    return rc;
}

/* A staging retry is ordered when it is published (see REF ORDER in store.h). */
static int stage_link(void *conn, const struct rules_jobs_prims *p, int64_t jid)
{
    struct rules_jobrow r;
    int rc = p->job_load_jid(conn, jid, &r);
    if (rc < 0)
        return rc;
    int ordered = r.j.ref_order == STORE_REF_ORDER_TENANT;
    store_job_release(&r.j);
    return ordered ? p->ref_link(conn, jid) : 0;
}

int rules_stage_body(void *conn, void *vctx)
{
    struct rules_stage *x = vctx;
    const struct rules_jobs_prims *p = x->tx.p;
    char tenant[STORE_NAME_MAX], parent[STORE_ID_MAX];
    int64_t jid = 0, total = 0, pjid = 0, staged = 0, pnext = 0, n;
    x->job_id[0] = '\0';
    int rc = p->stage_pick(conn, x->after, &jid, tenant, parent, &total, x->job_id);
    if (rc <= 0)
        return rc; /* 0: nothing staging */
    if (x->seq)
        *x->seq = jid;
    if ((rc = p->stage_last(conn, jid, &staged, &pnext)) < 0)
        return rc;
    if (staged < total && (rc = p->stage_parent(conn, tenant, parent, &pjid)) < 0)
        return rc;
    if (staged < total && pjid) {
        int64_t max = total - staged < (int64_t)x->max_rows ? total - staged : (int64_t)x->max_rows;
        if ((n = p->stage_items(conn, jid, pjid, staged, pnext, max)) < 0)
            return (int)n;
        if (n > 0) {
            rc = p->stage_refs(conn, jid, staged, staged + n);
            return rc < 0 ? rc : 1;
        }
        /* no failed item left in the parent: fewer than counted (cannot happen while
         * the parent is terminal); end with what is staged */
    }
    /* Everything staged (or the parent is gone): drop the ref links, then publish. */
    if ((n = p->stage_forget(conn, jid, (int64_t)x->max_rows)) != 0)
        return n < 0 ? (int)n : 1;
    if (staged == 0) /* the parent went before anything was staged: nothing to retry */
        rc = p->job_remove(conn, jid);
    else if ((rc = stage_link(conn, p, jid)) >= 0)
        rc = p->stage_done(conn, jid, staged, p->now(conn));
    return rc < 0 ? rc : 2;
}

int rules_job_abort_body(void *conn, void *vctx)
{
    struct rules_submit *x = vctx;
    int64_t jid = 0;
    int rc = x->tx.p->receiving_jid(conn, x->job_id, &jid);
    if (rc <= 0)
        return rc;
    rc = x->tx.p->job_remove(conn, jid);
    return rc < 0 ? rc : 1;
}

int rules_gc_body(void *conn, void *vctx)
{
    struct rules_submit *x = vctx;
    int64_t *jids = NULL;
    size_t n = 0;
    int rc = x->tx.p->gc_list(conn, x->older_than, &jids, &n);
    for (size_t i = 0; rc >= 0 && i < n; i++)
        rc = x->tx.p->job_remove(conn, jids[i]);
    free(jids);
    return rc < 0 ? rc : (int)n;
}

/* jid of the job to remove next: one hidden by an earlier call first, else the
 * terminal job that completed first before x->jobs_before, which gets hidden (its
 * claims, step counts, key and delivery go at once: they are few; [out] *removed
 * counts them). 0: nothing to remove. */
static int sweep_next_job(void *conn, const struct rules_sweep *x, int64_t *jid, int64_t *removed)
{
    const struct rules_jobs_prims *p = x->tx.p;
    int rc = p->sweep_hidden(conn, jid);
    if (rc != 0)
        return rc;
    if ((rc = p->sweep_expired(conn, x->jobs_before, jid)) <= 0)
        return rc;
    int64_t gone = p->sweep_hide(conn, *jid);
    if (gone < 0)
        return (int)gone;
    *removed += gone;
    return 1;
}

int rules_sweep_body(void *conn, void *vctx)
{
    struct rules_sweep *x = vctx;
    const struct rules_jobs_prims *p = x->tx.p;
    int64_t removed, jid = 0;
    int rc;
    if ((removed = p->sweep_keys(conn, x->keys_before, x->budget)) < 0)
        return (int)removed;
    while (removed < x->budget) {
        if ((rc = sweep_next_job(conn, x, &jid, &removed)) < 0)
            return rc;
        if (rc == 0)
            break;
        int64_t want = x->budget - removed;
        int64_t gone = p->sweep_items(conn, jid, want);
        if (gone < 0)
            return (int)gone;
        removed += gone;
        if (gone == want)
            break; /* maybe more items: the next call goes on with this job */
        if ((rc = p->job_delete_row(conn, jid)) < 0)
            return rc;
        removed++;
    }
    return removed > INT32_MAX ? INT32_MAX : (int)removed;
}

int rules_job_get_body(void *conn, void *vctx)
{
    struct rules_jobs *x = vctx;
    struct rules_jobrow r;
    int rc = x->tx.p->job_load_visible(conn, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    if ((rc = x->tx.p->job_load_steps(conn, r.jid, &r.j)) < 0) {
        store_job_release(&r.j);
        return rc;
    }
    *x->out = r.j;
    return 1;
}

int rules_job_list_body(void *conn, void *vctx)
{
    struct rules_jobs *x = vctx;
    x->list = xcalloc(x->limit ? x->limit : 1, sizeof *x->list);
    x->n = 0;
    int rc = x->tx.p->job_list(conn, x);
    if (rc < 0) {
        store_jobs_free(x->list, x->n);
        x->list = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

int rules_job_cancel_body(void *conn, void *vctx)
{
    struct rules_jobs *x = vctx;
    const struct rules_jobs_prims *p = x->tx.p;
    struct rules_jobrow r;
    int64_t now = p->now(conn);
    int rc;
    if (p->cancel_lock && (rc = p->cancel_lock(conn, x->tenant, x->job_id)) < 0)
        return rc;
    if ((rc = p->job_load(conn, x->tenant, x->job_id, 1, &r)) <= 0)
        return rc;
    if (rules_job_cancel(&r, now) && ((rc = p->job_save(conn, &r, now)) < 0 ||
                                      (p->unrunnable && (rc = p->unrunnable(conn, r.jid)) < 0))) {
        store_job_release(&r.j);
        return rc;
    }
    if (x->out)
        *x->out = r.j;
    else
        store_job_release(&r.j);
    return 1;
}

int rules_job_delete_body(void *conn, void *vctx)
{
    struct rules_jobs *x = vctx;
    struct rules_jobrow r;
    int rc = x->tx.p->job_load(conn, x->tenant, x->job_id, 1, &r);
    if (rc <= 0)
        return rc;
    store_job_release(&r.j);
    if (!rules_job_terminal(r.j.status))
        return -SLUICE_E_CONFLICT;
    rc = x->tx.p->job_remove(conn, r.jid);
    return rc < 0 ? rc : 1;
}

void rules_jobs_undo(void *vctx)
{
    struct rules_jobs *x = vctx;
    if (x->out) {
        store_job_release(x->out);
        memset(x->out, 0, sizeof *x->out);
    }
    store_jobs_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}
