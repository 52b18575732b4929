/* http_batch.c - the http step with "batch" (spec/batch.h): many items per request.
 *
 * DESIGN
 * Each live item's request is rendered as for one item (http_prepare); its body is the
 * item's element. Items whose URL and header lines render the same form a group, and a
 * group is cut, in input order, into requests of at most maxItems elements and maxBytes
 * of elements. The requests of a wave run concurrently (outbound_run), each paced by
 * the step's limits as one request and retried whole by outbound under its
 * Idempotency-Key: a hash of the job, the step and the items' indexes, so the same set
 * gets the same key when a claim is run again after a crash.
 *
 * The answer is split back per item (the results pointer, by position or by key) on
 * its text (pointer_array_texts): each result is kept as its text, spliced into the
 * item's result as it is, and made a value only when a status, a key, an event or a
 * later step reads it - parsing and re-writing every answer cost a third of the step's
 * CPU. Then each result's status decides its item: passed, failed, or - for the
 * "retry" values - sent again in a later round that holds only the items to retry (a
 * new set, so a new key), while the step's retry.maxAttempts allows; rounds wait the
 * step's backoff.
 *
 * Items that share a ref never share a request: the later one goes in a later wave,
 * which starts once every request of the wave before has ended. That keeps the promise
 * that the next same-ref request starts after the previous one ended, at the price of
 * a whole wave's wait - only where one claim holds one ref twice. */
#include "steps/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lang/pointer.h"
#include "lang/template.h"
#include "spec/batch.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/jload.h"
#include "util/jsonw.h"
#include "util/secmask.h"
#include "util/xmalloc.h"

/* Stands for the elements array while the batch body's template is evaluated: its
 * escaped form in the written body marks where the array goes. A definition cannot
 * hold the control character it is made of (spec/batch.c refuses it), and "{{items}}"
 * is its one string, so the mark is found exactly once. */
#define ITEMS_SENTINEL "\001sluice-items\001"
#define ITEMS_SENTINEL_JSON "\"\\u0001sluice-items\\u0001\""
#define ROUND_BACKOFF_CAP_MS 5000 /* a worker sleeps here: keep shutdown prompt */
#define RESULT_EVENT_MAX 2048     /* a result longer than this is not copied into events */

enum { B_SEND, B_DONE, B_RETRY };

struct bitem {
    struct hreq h;
    char *group;   /* URL and header lines: items with the same group share requests */
    char *key;     /* match by key: the item's key, rendered */
    size_t elen;   /* element bytes */
    int state;     /* B_SEND, B_DONE, B_RETRY */
    size_t wave;   /* this round's wave */
    size_t req;    /* this wave's request */
    size_t rounds; /* requests this item went in */
};

struct breq {
    size_t *idx; /* items (indexes into the items array) in body order */
    size_t n, bytes;
    char *body, *key;
};

static void bitem_release(struct bitem *b)
{
    http_hreq_release(&b->h);
    free(b->group);
    free(b->key);
}

/* The group of a rendered request: its URL and header lines, NUL-separated. */
static char *group_of(const struct hreq *h)
{
    struct buf g = BUF_INIT;
    buf_puts(&g, h->url);
    for (size_t i = 0; i < h->nheaders; i++) {
        buf_putc(&g, '\n');
        buf_puts(&g, h->headers[i]);
    }
    return buf_detach(&g, NULL);
}

/* The Idempotency-Key of a request: stable for one set of items of one step. */
static char *batch_key(struct step_run *r, size_t k, const struct bitem *items,
                       const struct breq *q)
{
    struct ids_sha256 *h = ids_sha256_new();
    char num[32], hex[65];
    for (size_t i = 0; i < q->n; i++) {
        int n = snprintf(num, sizeof num, "%lld,", (long long)items[q->idx[i]].h.p->in->index);
        ids_sha256_update(h, num, (size_t)n);
    }
    ids_sha256_finish(h, hex);
    ids_sha256_free(h);
    hex[24] = '\0';
    return xasprintf("%s:batch-%s:%s", r->job_id ? r->job_id : r->run_id, hex, r->w->steps[k].name);
}

/* Renders q's body: the elements array, inside the batch body template if there is
 * one. 0, or -1 with a message in err. */
static int batch_body(struct step_run *r, const struct http_batch *b, const struct bitem *items,
                      struct breq *q, char *err, size_t errlen)
{
    struct buf arr = BUF_INIT;
    buf_grow(&arr, q->bytes + q->n + 2);
    buf_putc(&arr, '[');
    for (size_t i = 0; i < q->n; i++) {
        if (i)
            buf_putc(&arr, ',');
        const char *e = items[q->idx[i]].h.body;
        buf_puts(&arr, e ? e : "null");
    }
    buf_putc(&arr, ']');
    if (!b->body) {
        q->body = buf_detach(&arr, NULL);
        return 0;
    }
    json_t *ctx = json_pack("{s:s,s:I,s:s?}", "items", ITEMS_SENTINEL, "count", (json_int_t)q->n,
                            "job", r->job_id);
    json_t *v = template_eval(b->body, ctx, err, errlen);
    json_decref(ctx);
    if (!v) {
        buf_release(&arr);
        return -1;
    }
    char *text = jsonw_dump(v, NULL);
    json_decref(v);
    const char *at = strstr(text, ITEMS_SENTINEL_JSON);
    struct buf out = BUF_INIT;
    buf_append(&out, text, (size_t)(at - text));
    buf_append(&out, arr.data, arr.len);
    buf_puts(&out, at + sizeof ITEMS_SENTINEL_JSON - 1);
    free(text);
    buf_release(&arr);
    q->body = buf_detach(&out, NULL);
    return 0;
}

/* The event fields of an item's part in request q: the request's (http_extra) plus
 * "batch": {"key", "items", "position"}. */
static json_t *batch_extra(const struct step_def *s, const char *masked,
                           const struct outbound_response *resp, const struct breq *q, size_t pos)
{
    json_t *extra = http_extra(s, masked, resp), *batch = json_object();
    json_object_set_new_nocheck(batch, "key", json_string(q->key));
    json_object_set_new_nocheck(batch, "items", json_integer((json_int_t)q->n));
    json_object_set_new_nocheck(batch, "position", json_integer((json_int_t)pos));
    json_object_set_new_nocheck(extra, "batch", batch);
    return extra;
}

/* Adds what the upstream said about one item: its result's status, and - when the
 * result is not kept as the step's output, that is when the item did not pass - the
 * result itself, if short. */
static void extra_result(json_t *extra, const struct http_batch *b, json_t *res, int kept)
{
    if (b->status) {
        json_t *st = pointer_get(res, b->status);
        json_object_set(extra, "resultStatus", st ? st : json_null());
    }
    if (!kept && jsonw_len(res, RESULT_EVENT_MAX) <= RESULT_EVENT_MAX)
        json_object_set(extra, "result", res);
}

/* Result keys compare as text: a number key 17 matches the item key "17". */
static char *key_text(json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_integer(v) || json_is_real(v))
        return jsonw_dump(v, NULL);
    return NULL;
}

/* The answer's results: each element's text, and its value once something reads it. */
struct results {
    struct pointer_text *el;
    json_t **val;
    long n;      /* -1: no results array */
    json_t *byk; /* match by key: key -> element index */
};

static json_t *result_value(struct results *rs, long j)
{
    if (!rs->val[j]) {
        json_t *v = jload(rs->el[j].text, rs->el[j].len, JLOAD_ALLOW_NUL);
        rs->val[j] = v ? v : json_null();
    }
    return rs->val[j];
}

/* Reads the results array out of a JSON answer without making values of it: the
 * elements stay text unless a status, a key or an event needs one. */
static void results_read(struct results *rs, const struct http_batch *b,
                         const struct outbound_response *resp)
{
    rs->n = -1;
    if (resp->body && resp->body_len && !resp->body_truncated && resp->content_type &&
        strstr(resp->content_type, "json"))
        rs->n = pointer_array_texts(resp->body, resp->body_len, b->results, &rs->el);
    if (rs->n < 0)
        return;
    rs->val = xcalloc(rs->n ? (size_t)rs->n : 1, sizeof *rs->val);
    if (!b->by_key)
        return;
    rs->byk = json_object();
    for (long j = 0; j < rs->n; j++) {
        char *kt = key_text(pointer_get(result_value(rs, j), b->result_key));
        if (kt && !json_object_get(rs->byk, kt)) /* the first result of a key counts */
            json_object_set_new_nocheck(rs->byk, kt, json_integer(j));
        free(kt);
    }
}

static void results_release(struct results *rs)
{
    for (long j = 0; j < rs->n; j++) {
        free(rs->el[j].text);
        json_decref(rs->val[j]);
    }
    free(rs->el);
    free(rs->val);
    json_decref(rs->byk);
}

/* The index of item pos's result, or -1. */
static long result_index(const struct http_batch *b, struct results *rs, const struct bitem *it,
                         size_t pos)
{
    if (!b->by_key)
        return (long)pos < rs->n ? (long)pos : -1;
    json_t *j = it->key ? json_object_get(rs->byk, it->key) : NULL;
    return j ? (long)json_integer_value(j) : -1;
}

/* Decides every item of q from its answer. */
static void batch_finish(struct step_run *r, size_t k, struct bitem *items, struct breq *q,
                         const struct outbound_response *resp)
{
    const struct step_def *s = &r->w->steps[k];
    const struct http_batch *b = s->batch;
    char *masked = secmask_text(r->mask, items[q->idx[0]].h.url);
    char msg[700];
    int64_t start, end;
    http_span(resp, items[q->idx[0]].h.start, &start, &end);
    struct results rs = {.n = -1};
    const char *whole = NULL; /* why every item of q fails, or NULL */
    if (!resp->error && (resp->status < 200 || resp->status > 299)) {
        snprintf(msg, sizeof msg, "%s %s answered %d%s for a batch of %zu", s->method, masked,
                 resp->status, resp->attempts > 1 ? " after retries" : "", q->n);
        whole = msg;
    } else if (!resp->error) {
        results_read(&rs, b, resp);
        if (rs.n < 0) {
            snprintf(msg, sizeof msg, "%s %s answered %d without a results array at \"%s\"%s",
                     s->method, masked, resp->status, b->results,
                     resp->body_truncated ? " (the answer was cut)" : "");
            whole = msg;
        }
    }
    /* an output is {"status":...,"body":<the result>,"headers":{...}}, as one item's
     * (http_output), written around each result's text; a passed item's event fields
     * are the request's (http_extra) and the batch's, written once, and its position */
    struct buf head = BUF_INIT, tail = BUF_INIT, ev = BUF_INIT;
    char pass_msg[700];
    size_t ev_len = 0;
    if (!whole && !resp->error) {
        json_t *o = http_output(resp, json_null());
        jsonw_put(&tail, json_object_get(o, "headers"));
        json_decref(o);
        buf_printf(&head, "{\"status\":%d,\"body\":", resp->status);
        o = http_extra(s, masked, resp);
        size_t n;
        char *t = jsonw_dump(o, &n);
        json_decref(o);
        buf_putc(&ev, ',');
        buf_append(&ev, t + 1, n - 2); /* its members, without the braces */
        free(t);
        buf_puts(&ev, ",\"batch\":{\"key\":");
        buf_json_str(&ev, q->key, strlen(q->key));
        buf_printf(&ev, ",\"items\":%zu,\"position\":", q->n);
        ev_len = ev.len;
        snprintf(pass_msg, sizeof pass_msg, "%s %s answered %d for a batch of %zu", s->method,
                 masked, resp->status, q->n);
    }
    for (size_t pos = 0; pos < q->n; pos++) {
        struct bitem *it = &items[q->idx[pos]];
        struct step_item *p = it->h.p;
        it->state = B_DONE;
        long j = resp->error || whole ? -1 : result_index(b, &rs, it, pos);
        json_t *st = j >= 0 && b->status ? pointer_get(result_value(&rs, j), b->status) : NULL;
        int pass = j >= 0 && (!b->status || batch_status_in(b->success, st));
        int again = j >= 0 && b->status && batch_status_in(b->retry, st) &&
                    it->rounds < (size_t)s->max_attempts;
        if (pass && !again) {
            struct buf out = BUF_INIT;
            buf_grow(&out, head.len + rs.el[j].len + tail.len + 16);
            buf_append(&out, head.data, head.len);
            buf_append(&out, rs.el[j].text, rs.el[j].len);
            buf_puts(&out, ",\"headers\":");
            buf_append(&out, tail.data, tail.len);
            buf_putc(&out, '}');
            size_t len;
            char *text = buf_detach(&out, &len);
            if (step_keep_text(r, p, k, text, len) == 0) {
                ev.len = ev_len;
                buf_put_i64(&ev, (long long)pos);
                buf_putc(&ev, '}');
                if (b->status) {
                    buf_puts(&ev, ",\"resultStatus\":");
                    jsonw_put(&ev, st ? st : json_null());
                }
                step_pass_text(r, p, k, start, end, "Delivered", pass_msg, ev.data);
            } else {
                json_t *extra = batch_extra(s, masked, resp, q, pos);
                extra_result(extra, b, result_value(&rs, j), 1);
                http_too_large(r, p, k, start, end, pass_msg, extra);
            }
            continue;
        }
        json_t *extra = batch_extra(s, masked, resp, q, pos);
        if (resp->error) {
            http_unanswered(r, p, k, start, end, masked, resp, extra);
            continue;
        }
        if (whole) {
            step_error_span(r, p, k, start, end, SLUICE_E_UPSTREAM_ERROR, NULL, whole, extra);
            continue;
        }
        if (j < 0) {
            if (b->by_key)
                snprintf(msg, sizeof msg, "%s %s answered %d with no result for this item's key %s",
                         s->method, masked, resp->status, it->key);
            else
                snprintf(msg, sizeof msg, "%s %s answered %d with no result at position %zu",
                         s->method, masked, resp->status, pos);
            step_error_span(r, p, k, start, end, SLUICE_E_UPSTREAM_ERROR, NULL, msg, extra);
            continue;
        }
        extra_result(extra, b, result_value(&rs, j), pass);
        char *sv = st ? jsonw_dump(st, NULL) : xstrdup("null");
        if (again) {
            snprintf(msg, sizeof msg, "%s %s: this item's result says %s; sent again", s->method,
                     masked, sv);
            step_event(p, start, "retry", NULL, p->in->attempt, "warn", "BatchItemRetry", msg,
                       end - start, extra);
            it->state = B_RETRY;
        } else {
            snprintf(msg, sizeof msg, "%s %s answered %d; this item's result says %s", s->method,
                     masked, resp->status, sv);
            step_error_span(r, p, k, start, end, SLUICE_E_UPSTREAM_ERROR, NULL, msg, extra);
        }
        free(sv);
    }
    buf_release(&ev);
    buf_release(&head);
    buf_release(&tail);
    results_release(&rs);
    free(masked);
}

/* Cuts the items to send in wave w into requests: [out] *qs (caller frees each idx,
 * body, key), returns their count. Groups keep their first appearance's order. */
static size_t plan_wave(const struct http_batch *b, struct bitem *items, size_t n, size_t w,
                        struct breq **qs)
{
    size_t nq = 0, cap = 0;
    json_t *open = json_object(); /* group -> index of its open request */
    *qs = NULL;
    for (size_t i = 0; i < n; i++) {
        struct bitem *it = &items[i];
        if (it->state != B_SEND || it->wave != w)
            continue;
        json_t *o = json_object_get(open, it->group);
        struct breq *q = o ? &(*qs)[json_integer_value(o)] : NULL;
        if (q &&
            (q->n == (size_t)b->max_items || q->bytes + q->n + 2 + it->elen > (size_t)b->max_bytes))
            q = NULL;
        if (!q) {
            if (nq == cap) {
                cap = cap ? cap * 2 : 8;
                *qs = xrealloc(*qs, cap * sizeof **qs);
            }
            q = &(*qs)[nq];
            memset(q, 0, sizeof *q);
            q->idx = xcalloc((size_t)b->max_items, sizeof *q->idx);
            json_object_set_new_nocheck(open, it->group, json_integer((json_int_t)nq));
            nq++;
        }
        it->req = (size_t)(q - *qs);
        q->idx[q->n++] = i;
        q->bytes += it->elen;
    }
    json_decref(open);
    return nq;
}

/* Sends wave w of the items to send and decides its items. */
static void run_wave(struct step_run *r, size_t k, const struct step_pacer *pacer,
                     struct bitem *items, size_t n, size_t w)
{
    const struct step_def *s = &r->w->steps[k];
    struct breq *qs;
    size_t nq = plan_wave(s->batch, items, n, w, &qs);
    struct outbound_request *reqs = xcalloc(nq ? nq : 1, sizeof *reqs);
    struct outbound_response *resps = xcalloc(nq ? nq : 1, sizeof *resps);
    size_t m = 0; /* requests whose body rendered: reqs[0..m) */
    size_t *of = xcalloc(nq ? nq : 1, sizeof *of);
    for (size_t j = 0; j < nq; j++) {
        struct breq *q = &qs[j];
        char err[300];
        q->key = batch_key(r, k, items, q);
        if (batch_body(r, s->batch, items, q, err, sizeof err) < 0) {
            char msg[400];
            snprintf(msg, sizeof msg, "batch.body: %s", err);
            for (size_t i = 0; i < q->n; i++) {
                struct bitem *it = &items[q->idx[i]];
                it->state = B_DONE;
                step_error(r, it->h.p, k, it->h.start, SLUICE_E_TEMPLATE_ERROR, NULL, msg, NULL);
            }
            continue;
        }
        const struct hreq *h = &items[q->idx[0]].h;
        http_request_fill(&reqs[m], r, s, pacer, h->url, h->headers, q->body, q->key);
        of[m++] = j;
        for (size_t i = 0; i < q->n; i++)
            items[q->idx[i]].rounds++;
    }
    if (m)
        http_send(r, reqs, resps, m);
    for (size_t i = 0; i < m; i++) {
        batch_finish(r, k, items, &qs[of[i]], &resps[i]);
        outbound_response_release(&resps[i]);
    }
    for (size_t j = 0; j < nq; j++) {
        free(qs[j].idx);
        free(qs[j].body);
        free(qs[j].key);
    }
    free(qs);
    free(of);
    free(reqs);
    free(resps);
}

/* Gives each item to send its wave: how many earlier items to send share its ref.
 * Returns the number of waves. */
static size_t assign_waves(struct bitem *items, size_t n)
{
    json_t *seen = json_object(); /* ref -> items to send so far */
    size_t waves = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].state != B_SEND)
            continue;
        const char *ref = items[i].h.p->in->ref ? items[i].h.p->in->ref : "";
        json_t *c = json_object_get(seen, ref);
        items[i].wave = c ? (size_t)json_integer_value(c) : 0;
        json_object_set_new_nocheck(seen, ref, json_integer((json_int_t)items[i].wave + 1));
        if (items[i].wave + 1 > waves)
            waves = items[i].wave + 1;
    }
    json_decref(seen);
    return waves;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Renders each live item's element (and key); -1 for an item already failed. */
static int prepare_item(struct step_run *r, size_t k, struct step_item *p, struct bitem *it)
{
    const struct step_def *s = &r->w->steps[k];
    if (http_prepare(r, k, p, &it->h) < 0)
        return -1;
    it->elen = it->h.body ? strlen(it->h.body) : 4;
    if (it->elen + 2 > (size_t)s->batch->max_bytes) {
        char why[200];
        snprintf(why, sizeof why, "its element alone (%zu bytes) passes batch.maxBytes (%ld)",
                 it->elen, s->batch->max_bytes);
        step_too_large(r, p, k, it->h.start, "batch", why);
        return -1;
    }
    if (s->batch->by_key) {
        struct buf kb = BUF_INIT;
        char err[256];
        if (template_render(s->batch->item_key, step_ctx(r, p), 0, &kb, err, sizeof err) < 0) {
            char msg[320];
            snprintf(msg, sizeof msg, "batch.itemKey: %s", err);
            step_error(r, p, k, it->h.start, SLUICE_E_TEMPLATE_ERROR, NULL, msg, NULL);
            buf_release(&kb);
            return -1;
        }
        it->key = buf_detach(&kb, NULL);
    }
    it->group = group_of(&it->h);
    return 0;
}

void step_http_batch(struct step_run *r, size_t k)
{
    const struct step_def *s = &r->w->steps[k];
    struct bitem *items = xcalloc(r->n ? r->n : 1, sizeof *items);
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (!r->items[i].live)
            continue;
        if (prepare_item(r, k, &r->items[i], &items[n]) == 0) {
            n++;
        } else {
            bitem_release(&items[n]);
            memset(&items[n], 0, sizeof items[n]);
        }
    }
    struct step_pacer pacer;
    r->pacer_begin(r, k, &pacer);
    for (int round = 0; n; round++) {
        size_t waves = assign_waves(items, n);
        if (!waves)
            break;
        for (size_t w = 0; w < waves; w++)
            run_wave(r, k, &pacer, items, n, w);
        int again = 0;
        for (size_t i = 0; i < n; i++)
            if (items[i].state == B_RETRY) {
                items[i].state = B_SEND;
                again = 1;
            }
        if (!again)
            break;
        long wait = s->backoff_ms << (round < 20 ? round : 20);
        if (wait > s->max_backoff_ms && s->max_backoff_ms > 0)
            wait = s->max_backoff_ms;
        sleep_ms(wait < ROUND_BACKOFF_CAP_MS ? wait : ROUND_BACKOFF_CAP_MS);
    }
    r->pacer_end(&pacer);
    for (size_t i = 0; i < n; i++)
        bitem_release(&items[i]);
    free(items);
}
