/* http.c - the http step: renders each live item's request (URL, headers, body:
 * lang/template.h), sends the batch's requests together (outbound/outbound.h) and keeps
 * each response as the step's output. Secrets are resolved and requests paced through
 * the run (step.h), never by calling the engine. */
#include "steps/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lang/template.h"
#include "outbound/outbound.h"
#include "spec/secrets.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/jload.h"
#include "util/jsonw.h"
#include "util/secmask.h"
#include "util/xmalloc.h"

/* Collects the secret names a template value (string, or strings inside) uses; -1 when
 * one is not a plain {{secrets.NAME}} (a definition stored before the placement rule
 * could hold one: it is refused at load time too, see spec/workflow.c). */
static int scan_value(json_t *v, json_t *names)
{
    if (json_is_string(v))
        return secrets_scan(json_string_value(v), names) < 0 ? -1 : 0;
    size_t i;
    const char *k;
    json_t *e;
    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
        {
            if (scan_value(e, names) < 0)
                return -1;
        }
    }
    if (json_is_object(v)) {
        json_object_foreach(v, k, e)
        {
            if (scan_value(e, names) < 0)
                return -1;
        }
    }
    return 0;
}

int step_http_secret_names(const struct step_def *s, json_t *names)
{
    int bad = s->headers && scan_value(s->headers, names) < 0;
    if (s->secret_body && s->body && scan_value(s->body, names) < 0)
        bad = 1;
    return bad ? -1 : 0;
}

/* The context for a step's header (and marked body) templates: the item's, plus
 * "secrets" holding only the names the step uses, resolved for the tenant. NULL after
 * failing the item (SecretNotFound names the secret, never a value). */
static json_t *secret_ctx(struct step_run *r, struct step_item *p, size_t k, int64_t start)
{
    const struct step_def *s = &r->w->steps[k];
    char msg[300];
    json_t *names = json_array(), *sec = json_object(), *n;
    size_t i;
    if (step_http_secret_names(s, names) < 0) {
        json_decref(names);
        json_decref(sec);
        step_error(r, p, k, start, SLUICE_E_TEMPLATE_ERROR, NULL,
                   "only single secrets can be named, as {{secrets.NAME}}", NULL);
        return NULL;
    }
    json_array_foreach(names, i, n)
    {
        const char *name = json_string_value(n);
        json_t *value = NULL;
        int rc = r->secret(r, name, &value);
        if (rc == 1) {
            json_object_set(sec, name, value);
            continue;
        }
        if (rc < 0)
            snprintf(msg, sizeof msg, "cannot read secret '%s': %s", name, sluice_err_message(rc));
        else
            snprintf(msg, sizeof msg,
                     "secret '%s' is not defined for this tenant (PUT /v1/secrets/%s, or an "
                     "operator secret the server lets this tenant use)",
                     name, name);
        step_error(r, p, k, start, rc < 0 ? rc : SLUICE_E_SECRET_NOT_FOUND, NULL, msg, NULL);
        json_decref(names);
        json_decref(sec);
        return NULL;
    }
    json_decref(names);
    json_t *c = json_copy(step_ctx(r, p)); /* shallow: shares data and steps */
    json_object_set_new(c, "secrets", sec);
    return c;
}

void http_hreq_release(struct hreq *h)
{
    free(h->url);
    free(h->body);
    free(h->key);
    for (size_t i = 0; i < h->nheaders; i++)
        free(h->headers[i]);
    free(h->headers);
}

/* The bytes of a request's head: URL and header lines. The item's size limit holds
 * for the head and for the body, each: an item of the limit's size may be sent whole
 * behind its URL and headers. */
static size_t head_len(const struct hreq *h)
{
    size_t n = h->url ? strlen(h->url) : 0;
    for (size_t i = 0; i < h->nheaders; i++)
        n += strlen(h->headers[i]);
    return n;
}

/* Whether a header value (or a secretBody body) may name a secret: a cheap look for
 * the word before the exact scan (secret_ctx) runs. */
static int may_name_secrets(const struct step_def *s)
{
    const char *name;
    json_t *v;
    if (s->secret_body && s->body)
        return 1;
    if (s->headers)
        json_object_foreach(s->headers, name, v)
        {
            if (strstr(json_string_value(v), "secrets"))
                return 1;
        }
    return 0;
}

/* What a template is rendered against: nothing when it has no placeholder. */
static json_t *tpl_ctx(struct step_run *r, struct step_item *p, const char *tpl)
{
    return strstr(tpl, "{{") ? step_ctx(r, p) : json_null();
}

int http_prepare(struct step_run *r, size_t k, struct step_item *p, struct hreq *h)
{
    const struct step_def *s = &r->w->steps[k];
    char err[256];
    const char *where = "url";
    struct buf b = BUF_INIT;
    size_t budget = r->max_item_bytes; /* for URL and headers together, then the body */
    h->p = p;
    h->start = clock_now_ms();
    /* The secrets' context only when the step can name one; the item's context only
     * when a template has a placeholder: reading the item's data is the largest part of
     * rendering a request that does not use it. */
    json_t *sctx = NULL;
    if (may_name_secrets(s) && !(sctx = secret_ctx(r, p, k, h->start)))
        return -1;
    /* The URL never sees secrets: hosts, paths and queries end up in events and logs. */
    int rc = template_render_within(s->url, tpl_ctx(r, p, s->url), 1, &budget, &b, err, sizeof err);
    if (rc < 0)
        goto bad;
    h->url = buf_detach(&b, NULL);
    size_t nh = s->headers ? json_object_size(s->headers) : 0;
    h->headers = xcalloc(nh + 2, sizeof *h->headers);
    const char *name;
    json_t *tpl;
    int has_ct = 0;
    if (s->headers)
        json_object_foreach(s->headers, name, tpl)
        {
            buf_printf(&b, "%s: ", name);
            where = "headers";
            const char *t = json_string_value(tpl);
            if ((rc = template_render_within(t, sctx ? sctx : tpl_ctx(r, p, t), 0, &budget, &b, err,
                                             sizeof err)) < 0)
                goto bad;
            if (strpbrk(b.data, "\r\n")) {
                snprintf(err, sizeof err, "header %s renders to a value with a line break", name);
                rc = -1;
                goto bad;
            }
            has_ct |= !strcasecmp(name, "Content-Type");
            h->headers[h->nheaders++] = buf_detach(&b, NULL);
        }
    if (strcmp(s->method, "GET") && strcmp(s->method, "DELETE")) {
        budget = r->max_item_bytes;
        if (s->body) {
            json_t *v = NULL;
            where = "body";
            if ((rc = template_eval_within(s->body, s->secret_body && sctx ? sctx : step_ctx(r, p),
                                           &budget, &v, err, sizeof err)) < 0)
                goto bad;
            h->body = jsonw_dump(v, NULL); /* what the budget was charged */
            json_decref(v);
        } else if (!p->dirty && p->in->data) {
            h->body = xstrndup(p->in->data, p->in->data_len);
        } else {
            json_t *data = json_object_get(step_ctx(r, p), "data");
            where = "body";
            if (template_json_len(data, budget) > budget) { /* measured before it is written */
                snprintf(err, sizeof err, "the data would pass the size limit (%zu bytes left)",
                         budget);
                rc = -SLUICE_E_ITEM_TOO_LARGE;
                goto bad;
            }
            h->body = jsonw_dump(data, NULL);
        }
        if (!has_ct)
            h->headers[h->nheaders++] = xstrdup("Content-Type: application/json");
    }
    /* the backstop, whatever built them */
    if (head_len(h) > r->max_item_bytes || (h->body && strlen(h->body) > r->max_item_bytes)) {
        where = head_len(h) > r->max_item_bytes ? "headers" : "body";
        snprintf(err, sizeof err, "the request's %s would pass %zu bytes",
                 where[0] == 'h' ? "URL and headers" : "body", r->max_item_bytes);
        rc = -SLUICE_E_ITEM_TOO_LARGE;
        goto bad;
    }
    if (r->job_id)
        h->key = xasprintf("%s:%lld:%s", r->job_id, (long long)p->in->index, s->name);
    else
        h->key = xasprintf("%s:%s", r->run_id, s->name);
    json_decref(sctx);
    return 0;
bad:
    json_decref(sctx);
    buf_release(&b);
    if (rc == -SLUICE_E_ITEM_TOO_LARGE)
        step_too_large(r, p, k, h->start, where, err);
    else
        step_error(r, p, k, h->start, SLUICE_E_TEMPLATE_ERROR, NULL, err, NULL);
    return -1;
}

json_t *http_response_body(const struct outbound_response *resp)
{
    if (!resp->body || !resp->body_len)
        return json_null();
    if (!resp->body_truncated && resp->content_type && strstr(resp->content_type, "json")) {
        json_t *v = jload(resp->body, resp->body_len, 0);
        if (v)
            return v;
    }
    return json_stringn_nocheck(resp->body, resp->body_len);
}

json_t *http_output(const struct outbound_response *resp, json_t *body)
{
    json_t *out = json_object(), *headers = json_object();
    json_object_set_new_nocheck(out, "status", json_integer(resp->status));
    json_object_set_new_nocheck(out, "body", body);
    json_object_set_new_nocheck(headers, "content-type",
                                resp->content_type ? json_string(resp->content_type) : json_null());
    json_object_set_new_nocheck(headers, "location",
                                resp->location ? json_string(resp->location) : json_null());
    json_object_set_new_nocheck(out, "headers", headers);
    return out;
}

json_t *http_extra(const struct step_def *s, const char *masked_url,
                   const struct outbound_response *resp)
{
    /* Built member by member: json_pack reads its format string for every item. */
    json_t *extra = json_object();
    json_object_set_new_nocheck(extra, "method", json_string(s->method));
    json_object_set_new_nocheck(extra, "url", json_string(masked_url));
    json_object_set_new_nocheck(extra, "status", json_integer(resp->status));
    json_object_set_new_nocheck(extra, "latencyMs", json_integer((json_int_t)resp->latency_ms));
    json_object_set_new_nocheck(extra, "totalMs", json_integer((json_int_t)resp->total_ms));
    json_object_set_new_nocheck(extra, "attempts", json_integer(resp->attempts));
    if (resp->error)
        json_object_set_new(extra, "failure", json_string(outbound_failure_name(resp->failure)));
    return extra;
}

void http_span(const struct outbound_response *resp, int64_t fallback, int64_t *start, int64_t *end)
{
    *start = resp->started_at ? resp->started_at : fallback;
    *end = resp->finished_at >= *start ? resp->finished_at : *start;
}

void http_unanswered(struct step_run *r, struct step_item *p, size_t k, int64_t start, int64_t end,
                     const char *masked_url, const struct outbound_response *resp, json_t *extra)
{
    const struct step_def *s = &r->w->steps[k];
    char msg[600];
    int err = resp->failure == OUTBOUND_NOT_ALLOWED ? SLUICE_E_TARGET_NOT_ALLOWED
                                                    : SLUICE_E_UPSTREAM_UNAVAILABLE;
    if (resp->failure == OUTBOUND_SHUTTING_DOWN)
        p->out->aborted = 1;
    if (resp->deadline_reached)
        p->out->out_of_time = 1;
    snprintf(msg, sizeof msg, "%s %s: %s", s->method, masked_url, resp->message);
    step_error_span(r, p, k, start, end, err, NULL, msg, extra);
}

int http_keep(struct step_run *r, struct step_item *p, size_t k, json_t *out, int64_t start,
              int64_t end, const char *what, json_t *extra)
{
    const struct step_def *s = &r->w->steps[k];
    /* Kept for later steps and the item's result: all the outputs together stay
     * within the item's size (the outbound cap bounds one body, not their sum),
     * measured as the result is written: {"steps":{...,"name":out}}. */
    json_t *steps = step_outputs(r, p);
    step_set_output(r, p, s->name, out);
    if (step_result_len(steps, r->max_item_bytes) <= r->max_item_bytes)
        return 0;
    json_object_del(steps, s->name);
    http_too_large(r, p, k, start, end, what, extra);
    return -1;
}

void http_too_large(struct step_run *r, struct step_item *p, size_t k, int64_t start, int64_t end,
                    const char *what, json_t *extra)
{
    char msg[700], target[200];
    snprintf(msg, sizeof msg, "%s: the outputs kept would pass %zu bytes", what, r->max_item_bytes);
    snprintf(target, sizeof target, "steps.%s.response.body", r->w->steps[k].name);
    json_object_set_new(extra, "target", json_string(target));
    step_error_span(r, p, k, start, end, SLUICE_E_ITEM_TOO_LARGE, NULL, msg, extra);
}

static void http_finish(struct step_run *r, size_t k, struct hreq *h,
                        const struct outbound_response *resp)
{
    const struct step_def *s = &r->w->steps[k];
    struct step_item *p = h->p;
    char *masked = secmask_text(r->mask, h->url);
    char msg[600];
    json_t *extra = http_extra(s, masked, resp);
    int64_t start, end; /* the item's own request: from when it could start to its end */
    http_span(resp, h->start, &start, &end);
    if (resp->error) {
        http_unanswered(r, p, k, start, end, masked, resp, extra);
    } else {
        json_t *out = http_output(resp, http_response_body(resp));
        snprintf(msg, sizeof msg, "%s %s answered %d with %zu body bytes%s", s->method, masked,
                 resp->status, resp->body_len, resp->body_truncated ? " (cut)" : "");
        if (http_keep(r, p, k, out, start, end, msg, extra) < 0) {
            free(masked);
            return;
        }
        if (resp->status >= 200 && resp->status < 300) {
            snprintf(msg, sizeof msg, "%s %s answered %d", s->method, masked, resp->status);
            step_pass_span(r, p, k, start, end, "Delivered", msg, extra);
        } else {
            snprintf(msg, sizeof msg, "%s %s answered %d%s", s->method, masked, resp->status,
                     resp->attempts > 1 ? " after retries" : "");
            step_error_span(r, p, k, start, end, SLUICE_E_UPSTREAM_ERROR, NULL, msg, extra);
        }
    }
    free(masked);
}

void http_request_fill(struct outbound_request *q, const struct step_run *r,
                       const struct step_def *s, const struct step_pacer *pacer, const char *url,
                       char **headers, const char *body, const char *key)
{
    q->method = s->method;
    q->url = url;
    q->headers = (const char *const *)headers;
    q->body = body;
    q->body_len = body ? strlen(body) : 0;
    q->timeout_ms = s->timeout_ms;
    q->max_attempts = s->max_attempts;
    q->backoff_ms = s->backoff_ms;
    q->max_backoff_ms = s->max_backoff_ms;
    q->idempotency_key = key;
    q->deadline_mono = r->deadline_mono;
    if (pacer->ctx) {
        q->pace = pacer->pace;
        q->pace_backoff = pacer->backoff;
        q->pace_observe = pacer->observe;
        q->pace_ctx = pacer->ctx;
    }
}

void http_send(struct step_run *r, struct outbound_request *reqs, struct outbound_response *resps,
               size_t m)
{
    if (r->ob) {
        outbound_run(r->ob, reqs, resps, m);
    } else {
        for (size_t i = 0; i < m; i++) {
            memset(&resps[i], 0, sizeof resps[i]);
            resps[i].error = -SLUICE_E_UPSTREAM_UNAVAILABLE;
            snprintf(resps[i].message, sizeof resps[i].message, "outbound calls are disabled");
        }
    }
    /* libcurl's error text can quote what was sent: masked before any use, and
     * before the events' messages truncate it (a cut rendering is not found later). */
    for (size_t i = 0; i < m; i++)
        secmask_inplace(r->mask, resps[i].message, sizeof resps[i].message);
}

void step_http(struct step_run *r, size_t k)
{
    const struct step_def *s = &r->w->steps[k];
    if (s->batch) {
        step_http_batch(r, k);
        return;
    }
    struct hreq *hs = xcalloc(r->n ? r->n : 1, sizeof *hs);
    size_t m = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (!r->items[i].live)
            continue;
        if (http_prepare(r, k, &r->items[i], &hs[m]) == 0) {
            m++;
        } else {
            http_hreq_release(&hs[m]);
            memset(&hs[m], 0, sizeof hs[m]);
        }
    }
    if (m == 0) {
        free(hs);
        return;
    }
    struct outbound_request *reqs = xcalloc(m, sizeof *reqs);
    struct outbound_response *resps = xcalloc(m, sizeof *resps);
    struct step_pacer pacer;
    r->pacer_begin(r, k, &pacer);
    /* Items that share a ref reach the upstream one after another, in input order: each
     * request waits for the previous same-ref one's final outcome (docs/integrating.md).
     * last: ref -> index in reqs of the latest request for it. */
    json_t *last = json_object();
    for (size_t i = 0; i < m; i++) {
        const char *ref = hs[i].p->in->ref;
        if (!ref)
            continue;
        json_t *j = json_object_get(last, ref);
        if (j)
            reqs[i].after = &reqs[json_integer_value(j)];
        json_object_set_new_nocheck(last, ref, json_integer((json_int_t)i));
    }
    json_decref(last);
    for (size_t i = 0; i < m; i++)
        http_request_fill(&reqs[i], r, s, &pacer, hs[i].url, hs[i].headers, hs[i].body, hs[i].key);
    http_send(r, reqs, resps, m);
    for (size_t i = 0; i < m; i++) {
        http_finish(r, k, &hs[i], &resps[i]);
        outbound_response_release(&resps[i]);
        http_hreq_release(&hs[i]);
    }
    r->pacer_end(&pacer);
    free(reqs);
    free(resps);
    free(hs);
}
