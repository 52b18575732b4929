/* pipeline.c - running items through a workflow's steps; see pipeline.h. */
#include "engine/pipeline.h"

#include "engine/limits.h"
#include "engine/secrets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lang/map.h"
#include "lang/path.h"
#include "lang/schema.h"
#include "lang/template.h"
#include "outbound/outbound.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/jsonw.h"
#include "util/secmask.h"
#include "util/xmalloc.h"

/* One item's trip through the pipeline. */
struct pstate {
    const struct pipeline_item *in;
    struct pipeline_result *out;
    json_t *ctx;      /* {"data","ref","job","index","steps"}; NULL until a step needs it */
    int dirty;        /* a map step changed data: doc ops and bodies use ctx.data */
    int live;         /* not failed or skipped yet */
    struct buf ev;    /* the events array's elements, comma-separated */
    json_t *warnings; /* array or NULL */
    size_t capops;
};

struct run {
    const struct pipeline_env *env;
    const struct wfdef *w;
    const char *tenant, *job_id;
    enum pipeline_mode mode;
    struct pstate *ps;
    size_t n;
    struct store_step_count *counts;
    char run_id[32]; /* idempotency keys of synchronous runs */
    json_t *vis;     /* NAME -> value: the secrets resolved for this run's tenant */
    json_t *gone;    /* NAME -> true: names not visible to the tenant */
    struct secmask *mask;  /* every value in vis: masked in all the run writes */
    size_t max_item_bytes; /* env's, or its default */
};

/* ---- context and events ------------------------------------------------------------ */

static json_t *ctx_of(struct run *r, struct pstate *p)
{
    if (p->ctx)
        return p->ctx;
    json_t *data = NULL;
    if (p->in->data) {
        json_error_t e;
        data = json_loadb(p->in->data, p->in->data_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    }
    if (!data)
        data = json_null();
    p->ctx = json_pack("{s:o,s:s,s:s?,s:I,s:{}}", "data", data, "ref", p->in->ref, "job",
                       r->job_id, "index", (json_int_t)p->in->index, "steps");
    return p->ctx;
}

static void set_output(struct run *r, struct pstate *p, const char *step, json_t *v /* stolen */)
{
    json_object_set_new(json_object_get(ctx_of(r, p), "steps"), step, v);
}

/* Appends one event. A step event (s != NULL) also names the step, its type, its
 * outcome (passed | failed | skipped | continued) and its end time. extra (stolen, may
 * be NULL) adds fields (http details, violations). */
static void event(struct pstate *p, int64_t at, const char *stage, const struct step_def *s,
                  int attempt, const char *level, const char *code, const char *msg,
                  int64_t dur_ms, json_t *extra)
{
    char ts[25];
    struct buf *b = &p->ev;
    buf_printf(b, "%s{\"at\":\"%s\",\"stage\":\"%s\",", b->len ? "," : "", clock_fmt_ms(at, ts),
               stage);
    if (s) {
        const char *outcome = !strcmp(level, "info")   ? "passed"
                            : !strcmp(level, "error")  ? "failed"
                            : s->on_error == ON_ERROR_SKIP ? "skipped"
                                                           : "continued";
        buf_printf(b, "\"step\":\"%s\",\"type\":\"%s\",\"outcome\":\"%s\",\"endedAt\":\"%s\",",
                   s->name, wfdef_step_type_name(s->type), outcome,
                   clock_fmt_ms(at + (dur_ms > 0 ? dur_ms : 0), ts));
    }
    if (attempt > 0)
        buf_printf(b, "\"attempt\":%d,", attempt);
    buf_printf(b, "\"level\":\"%s\",\"code\":\"%s\",\"message\":", level, code);
    buf_json_str(b, msg, strlen(msg));
    if (dur_ms >= 0)
        buf_printf(b, ",\"durationMs\":%lld", (long long)dur_ms);
    if (extra) {
        char *x = json_dumps(extra, JSON_COMPACT);
        if (x && x[0] == '{' && x[1] != '}') {
            buf_putc(b, ',');
            buf_append(b, x + 1, strlen(x) - 2);
        }
        free(x);
        json_decref(extra);
    }
    buf_putc(b, '}');
}

static void pass(struct run *r, struct pstate *p, size_t k, int64_t start, const char *code,
                 const char *msg, json_t *extra)
{
    r->counts[k].passed++;
    event(p, start, "step", &r->w->steps[k], p->in->attempt, "info", code, msg,
          clock_now_ms() - start, extra);
}

/* A step failed for this item: its onError decides what happens to the item. */
static void step_error(struct run *r, struct pstate *p, size_t k, int64_t start, int err,
                       const char *code, const char *msg, json_t *extra)
{
    const struct step_def *s = &r->w->steps[k];
    if (!code)
        code = sluice_err_code(err);
    if (s->on_error == ON_ERROR_CONTINUE) {
        r->counts[k].failed++;
        if (!p->warnings)
            p->warnings = json_array();
        json_array_append_new(p->warnings,
                              json_pack("{s:s,s:s,s:s}", "step", s->name, "code", code, "message", msg));
        event(p, start, "step", s, p->in->attempt, "warn", code, msg, clock_now_ms() - start, extra);
        return;
    }
    int skip = s->on_error == ON_ERROR_SKIP;
    if (skip)
        r->counts[k].skipped++;
    else
        r->counts[k].failed++;
    event(p, start, "step", s, p->in->attempt, skip ? "warn" : "error", code, msg,
          clock_now_ms() - start, extra);
    p->live = 0;
    p->out->status = skip ? ITEM_SKIPPED : ITEM_FAILED;
    p->out->error_code = xstrdup(code);
    p->out->error_message = xstrdup(msg);
    p->out->failed_step = xstrdup(s->name);
}

/* The item would grow past r->max_item_bytes at step k: ItemTooLarge, with the place as
 * target ("steps.shape.ops[3].value") both in the message and in the event. */
static void too_large(struct run *r, struct pstate *p, size_t k, int64_t start, const char *where,
                      const char *why)
{
    char target[200], msg[700];
    snprintf(target, sizeof target, "steps.%s%s%s", r->w->steps[k].name, where && *where ? "." : "",
             where ? where : "");
    snprintf(msg, sizeof msg, "%s: %s", target, why);
    step_error(
        r, p, k, start, SLUICE_E_ITEM_TOO_LARGE, NULL, msg,
        json_pack("{s:s,s:I}", "target", target, "limitBytes", (json_int_t)r->max_item_bytes));
}

/* ---- simple steps ------------------------------------------------------------------ */

static void run_validate(struct run *r, struct pstate *p, size_t k)
{
    const struct step_def *s = &r->w->steps[k];
    int64_t start = clock_now_ms();
    json_t *data = json_object_get(ctx_of(r, p), "data");
    json_t *v = json_array();
    int nv = schema_validate(s->schema, data, v);
    if (nv <= 0) {
        json_decref(v);
        pass(r, p, k, start, "Valid", "data matches the schema", NULL);
        return;
    }
    struct buf m = BUF_INIT;
    buf_printf(&m, "%d schema violation%s: ", nv, nv == 1 ? "" : "s");
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        if (i == 5) {
            buf_puts(&m, "; ...");
            break;
        }
        buf_printf(&m, "%s%s: %s", i ? "; " : "",
                   json_string_length(json_object_get(x, "pointer"))
                       ? json_string_value(json_object_get(x, "pointer"))
                       : "(root)",
                   json_string_value(json_object_get(x, "message")));
    }
    step_error(r, p, k, start, SLUICE_E_VALIDATION_FAILED, NULL, buf_cstr(&m),
               json_pack("{s:o}", "violations", v));
    buf_release(&m);
}

static void run_map(struct run *r, struct pstate *p, size_t k)
{
    char err[256], where[64];
    int64_t start = clock_now_ms();
    int rc = map_apply_within(r->w->steps[k].map, ctx_of(r, p), r->max_item_bytes, where,
                              sizeof where, err, sizeof err);
    if (rc == -SLUICE_E_ITEM_TOO_LARGE) {
        too_large(r, p, k, start, where, err);
        return;
    }
    if (rc < 0) {
        step_error(r, p, k, start, SLUICE_E_MAP_FAILED, NULL, err, NULL);
        return;
    }
    p->dirty = 1;
    pass(r, p, k, start, "Mapped", "data reshaped", NULL);
}

/* ---- document steps ---------------------------------------------------------------- */

/* The ref a document step works on: the item's, or read from refFrom. */
static int doc_ref(struct run *r, struct pstate *p, const struct step_def *s, char *out, size_t len,
                   char *err, size_t errlen)
{
    if (!s->ref_from) {
        snprintf(out, len, "%s", p->in->ref);
        return 0;
    }
    json_t *v = path_get(ctx_of(r, p), s->ref_from);
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= 256 &&
        !memchr(json_string_value(v), 0, json_string_length(v))) {
        snprintf(out, len, "%s", json_string_value(v));
        return 0;
    }
    if (json_is_integer(v)) {
        snprintf(out, len, "%lld", (long long)json_integer_value(v));
        return 0;
    }
    snprintf(err, errlen, "refFrom %s is missing or not a string of 1 to 256 bytes", s->ref_from);
    return -1;
}

static void run_doc(struct run *r, struct pstate *p, size_t k)
{
    const struct step_def *s = &r->w->steps[k];
    enum store_op op = wfdef_step_store_op(s->type);
    int64_t start = clock_now_ms();
    char ref[300], err[300], msg[700];
    if (doc_ref(r, p, s, ref, sizeof ref, err, sizeof err) < 0) {
        step_error(r, p, k, start, SLUICE_E_INVALID_DATA, NULL, err, NULL);
        return;
    }
    /* A ref read from the data can carry a secret the run resolved (an upstream that
     * echoes it, copied by a map). Masking it would write another document than the one
     * asked for, and the ref shows in listings and URLs: the item fails instead, before
     * anything is written. The item's own ref comes from the submitter, not a secret. */
    if (s->ref_from && secmask_hit(r->mask, ref, strlen(ref))) {
        snprintf(err, sizeof err, "refFrom would reveal a secret (step %s, refFrom %s)", s->name,
                 s->ref_from);
        step_error(r, p, k, start, SLUICE_E_INVALID_DATA, NULL, err, NULL);
        return;
    }
    /* The document body: the item's raw bytes unless a step changed data. */
    char *body = NULL;
    size_t body_len = 0;
    if (op != STORE_OP_DELETE) {
        if (p->dirty) {
            body = jsonw_dump(json_object_get(p->ctx, "data"), &body_len);
            if (body_len > r->max_item_bytes) { /* the store would refuse it too; say where */
                free(body);
                snprintf(err, sizeof err, "the document would be larger than %zu bytes",
                         r->max_item_bytes);
                too_large(r, p, k, start, NULL, err);
                return;
            }
        } else if (!p->in->data) {
            step_error(r, p, k, start, SLUICE_E_INVALID_DATA, NULL, "item has no data to apply",
                       NULL);
            return;
        }
    }
    if (r->mode == PIPELINE_IMMEDIATE) {
        /* Written now, so mask_result() never sees it: mask here what a step produced
         * (the item's own bytes, unchanged, are the submitter's and are stored as
         * sent, as in deferred mode). */
        if (body && !secmask_empty(r->mask)) {
            char *t = secmask_json(r->mask, body);
            free(body);
            body = t;
            body_len = strlen(t);
        }
        struct store_doc d;
        memset(&d, 0, sizeof d);
        int created = 0;
        int rc = store_doc_write(r->env->st, r->tenant, s->collection, ref, op,
                                 body ? body : p->in->data, body ? body_len : p->in->data_len, -1,
                                 &d, &created);
        free(body);
        if (rc < 0) {
            snprintf(msg, sizeof msg, "%s/%s: %s", s->collection, ref, sluice_err_message(rc));
            step_error(r, p, k, start, rc, NULL, msg, NULL);
            return;
        }
        set_output(r, p, s->name,
                   json_pack("{s:s,s:s,s:I,s:b}", "collection", s->collection, "ref", ref,
                             "version", (json_int_t)d.version, "created", created));
        snprintf(msg, sizeof msg, "%s/%s version %lld", s->collection, ref, (long long)d.version);
        store_doc_release(&d);
        pass(r, p, k, start, "VersionWritten", msg, NULL);
        return;
    }
    /* Deferred: applied with the outcome. A patch or delete of a missing document is
     * caught now, so the item fails at its own step (before any later http step, and
     * with the step counts right); only a concurrent delete can still make the op
     * fail when it is applied. */
    if (op == STORE_OP_PATCH || op == STORE_OP_DELETE) {
        int earlier = 0; /* an earlier op of this item creates it */
        for (size_t i = 0; i < p->out->nops; i++)
            if (!strcmp(p->out->ops[i].collection, s->collection) && !strcmp(p->out->ops[i].ref, ref))
                earlier = p->out->ops[i].op != STORE_OP_DELETE;
        struct store_doc d;
        memset(&d, 0, sizeof d);
        int rc = earlier ? 1 : store_doc_get(r->env->st, r->tenant, s->collection, ref, &d);
        store_doc_release(&d);
        if (rc == 0) {
            free(body);
            snprintf(msg, sizeof msg, "%s/%s does not exist", s->collection, ref);
            step_error(r, p, k, start, SLUICE_E_DOCUMENT_NOT_FOUND, NULL, msg, NULL);
            return;
        }
    }
    if (p->out->nops == p->capops) {
        p->capops = p->capops ? p->capops * 2 : 2;
        p->out->ops = xrealloc(p->out->ops, p->capops * sizeof *p->out->ops);
    }
    struct store_doc_op *o = &p->out->ops[p->out->nops++];
    memset(o, 0, sizeof *o);
    o->op = op;
    o->collection = s->collection;
    o->ref = xstrdup(ref);
    o->data = body; /* NULL: the item's stored data */
    o->data_len = body_len;
    o->step = s->name;
    if (!r->w->builtin)
        set_output(r, p, s->name,
                   json_pack("{s:s,s:s,s:s}", "collection", s->collection, "ref", ref, "op",
                             wfdef_step_type_name(s->type)));
    if (r->w->builtin) { /* the store's VersionWritten event tells the rest */
        r->counts[k].passed++;
        return;
    }
    snprintf(msg, sizeof msg, "%s/%s: %s is applied with the item's outcome", s->collection, ref,
             wfdef_step_type_name(s->type));
    pass(r, p, k, start, "Queued", msg, NULL);
}

/* ---- http steps -------------------------------------------------------------------- */

/* Resolves one secret name for the run's tenant (cached in r->vis / r->gone). 1 found,
 * 0 not visible, < 0 store error. */
static int resolve_secret(struct run *r, const char *name)
{
    if (json_object_get(r->vis, name))
        return 1;
    if (json_object_get(r->gone, name))
        return 0;
    char *val = NULL;
    int rc = secrets_resolve(r->env->secrets, r->env->st, r->tenant, name, &val);
    if (rc == 1) {
        json_object_set_new(r->vis, name, json_stringn_nocheck(val, strlen(val)));
        secmask_add(r->mask, val);
        memset(val, 0, strlen(val));
    } else if (rc == 0) {
        json_object_set_new(r->gone, name, json_true());
    }
    free(val);
    return rc;
}

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

/* The context for a step's header (and marked body) templates: the item's, plus
 * "secrets" holding only the names the step uses, resolved for the tenant. NULL after
 * failing the item (SecretNotFound names the secret, never a value). */
static json_t *secret_ctx(struct run *r, struct pstate *p, size_t k, int64_t start)
{
    const struct step_def *s = &r->w->steps[k];
    char msg[300];
    json_t *names = json_array(), *sec = json_object(), *n;
    size_t i;
    int bad = (s->headers && scan_value(s->headers, names) < 0) ||
              (s->secret_body && s->body && scan_value(s->body, names) < 0);
    if (bad) {
        json_decref(names);
        json_decref(sec);
        step_error(r, p, k, start, SLUICE_E_TEMPLATE_ERROR, NULL,
                   "only single secrets can be named, as {{secrets.NAME}}", NULL);
        return NULL;
    }
    json_array_foreach(names, i, n)
    {
        const char *name = json_string_value(n);
        int rc = resolve_secret(r, name);
        if (rc == 1) {
            json_object_set(sec, name, json_object_get(r->vis, name));
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
    json_t *c = json_copy(ctx_of(r, p)); /* shallow: shares data and steps */
    json_object_set_new(c, "secrets", sec);
    return c;
}

/* The length of the item's result, {"steps":steps}, as pipeline_run writes it, or
 * cap + 1 when it passes cap. */
static size_t result_len(json_t *steps, size_t cap)
{
    static const size_t wrap = sizeof "{\"steps\":}" - 1;
    if (cap < wrap)
        return cap + 1;
    size_t n = template_json_len(steps, cap - wrap);
    return n > cap - wrap ? cap + 1 : n + wrap;
}

struct hreq {
    struct pstate *p;
    char *url, *body, *key;
    char **headers; /* NULL-terminated */
    size_t nheaders;
    int64_t start;
};

static void hreq_release(struct hreq *h)
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

/* Renders one item's request; -1 after reporting the template error. */
static int http_prepare(struct run *r, size_t k, struct pstate *p, struct hreq *h)
{
    const struct step_def *s = &r->w->steps[k];
    char err[256];
    const char *where = "url";
    struct buf b = BUF_INIT;
    size_t budget = r->max_item_bytes; /* for URL and headers together, then the body */
    h->p = p;
    h->start = clock_now_ms();
    json_t *sctx = secret_ctx(r, p, k, h->start);
    if (!sctx)
        return -1;
    /* The URL never sees secrets: hosts, paths and queries end up in events and logs. */
    int rc = template_render_within(s->url, ctx_of(r, p), 1, &budget, &b, err, sizeof err);
    if (rc < 0)
        goto bad;
    h->url = buf_detach(&b, NULL);
    size_t nh = s->headers ? json_object_size(s->headers) : 0;
    h->headers = xcalloc(nh + 2, sizeof *h->headers);
    const char *name;
    json_t *tpl;
    int has_ct = 0;
    if (s->headers)
        json_object_foreach(s->headers, name, tpl) {
            buf_printf(&b, "%s: ", name);
            where = "headers";
            if ((rc = template_render_within(json_string_value(tpl), sctx, 0, &budget, &b, err,
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
            if ((rc = template_eval_within(s->body, s->secret_body ? sctx : ctx_of(r, p), &budget,
                                           &v, err, sizeof err)) < 0)
                goto bad;
            h->body = jsonw_dump(v, NULL); /* what the budget was charged */
            json_decref(v);
        } else if (!p->dirty && p->in->data) {
            h->body = xstrndup(p->in->data, p->in->data_len);
        } else {
            json_t *data = json_object_get(ctx_of(r, p), "data");
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
        too_large(r, p, k, h->start, where, err);
    else
        step_error(r, p, k, h->start, SLUICE_E_TEMPLATE_ERROR, NULL, err, NULL);
    return -1;
}

static json_t *response_body(const struct outbound_response *resp)
{
    if (!resp->body || !resp->body_len)
        return json_null();
    if (!resp->body_truncated && resp->content_type && strstr(resp->content_type, "json")) {
        json_error_t e;
        json_t *v = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, &e);
        if (v)
            return v;
    }
    return json_stringn_nocheck(resp->body, resp->body_len);
}

static void http_finish(struct run *r, size_t k, struct hreq *h, const struct outbound_response *resp)
{
    const struct step_def *s = &r->w->steps[k];
    struct pstate *p = h->p;
    char *masked = secmask_text(r->mask, h->url);
    char msg[600];
    json_t *extra = json_pack("{s:s,s:s,s:i,s:I,s:I,s:i}", "method", s->method, "url", masked,
                              "status", resp->status, "latencyMs", (json_int_t)resp->latency_ms,
                              "totalMs", (json_int_t)resp->total_ms, "attempts", resp->attempts);
    if (resp->failure == OUTBOUND_SHUTTING_DOWN)
        p->out->aborted = 1;
    if (resp->error) {
        int err = resp->failure == OUTBOUND_NOT_ALLOWED ? SLUICE_E_TARGET_NOT_ALLOWED
                                                         : SLUICE_E_UPSTREAM_UNAVAILABLE;
        json_object_set_new(extra, "failure", json_string(outbound_failure_name(resp->failure)));
        snprintf(msg, sizeof msg, "%s %s: %s", s->method, masked, resp->message);
        step_error(r, p, k, h->start, err, NULL, msg, extra);
    } else {
        json_t *out = json_pack("{s:i,s:o,s:{s:s?,s:s?}}", "status", resp->status, "body",
                                response_body(resp), "headers", "content-type",
                                resp->content_type, "location", resp->location);
        /* Kept for later steps and the item's result: all the outputs together stay
         * within the item's size (the outbound cap bounds one body, not their sum),
         * measured as the result is written: {"steps":{...,"name":out}}. */
        json_t *steps = json_object_get(ctx_of(r, p), "steps");
        set_output(r, p, s->name, out);
        if (result_len(steps, r->max_item_bytes) > r->max_item_bytes) {
            json_object_del(steps, s->name);
            snprintf(msg, sizeof msg,
                     "%s %s answered %d with %zu body bytes%s: the outputs "
                     "kept would pass %zu bytes",
                     s->method, masked, resp->status, resp->body_len,
                     resp->body_truncated ? " (cut)" : "", r->max_item_bytes);
            char target[200];
            snprintf(target, sizeof target, "steps.%s.response.body", s->name);
            json_object_set_new(extra, "target", json_string(target));
            step_error(r, p, k, h->start, SLUICE_E_ITEM_TOO_LARGE, NULL, msg, extra);
            free(masked);
            return;
        }
        if (resp->status >= 200 && resp->status < 300) {
            snprintf(msg, sizeof msg, "%s %s answered %d", s->method, masked, resp->status);
            pass(r, p, k, h->start, "Delivered", msg, extra);
        } else {
            snprintf(msg, sizeof msg, "%s %s answered %d%s", s->method, masked, resp->status,
                     resp->attempts > 1 ? " after retries" : "");
            step_error(r, p, k, h->start, SLUICE_E_UPSTREAM_ERROR, NULL, msg, extra);
        }
    }
    free(masked);
}

static void run_http(struct run *r, size_t k)
{
    const struct step_def *s = &r->w->steps[k];
    struct hreq *hs = xcalloc(r->n ? r->n : 1, sizeof *hs);
    size_t m = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (!r->ps[i].live)
            continue;
        if (http_prepare(r, k, &r->ps[i], &hs[m]) == 0) {
            m++;
        } else {
            hreq_release(&hs[m]);
            memset(&hs[m], 0, sizeof hs[m]);
        }
    }
    if (m == 0) {
        free(hs);
        return;
    }
    struct outbound_request *reqs = xcalloc(m, sizeof *reqs);
    struct outbound_response *resps = xcalloc(m, sizeof *resps);
    struct limits_pacer *pacer = NULL;
    if (r->env->limits && s->nlimits) {
        const char *names[8];
        for (size_t i = 0; i < s->nlimits && i < 8; i++)
            names[i] = s->limits[i];
        pacer = limits_pacer_new(r->env->limits, r->tenant, r->w->name, s->name, names,
                                 s->nlimits < 8 ? s->nlimits : 8);
        limits_pacer_set_job(pacer, r->job_id);
    }
    for (size_t i = 0; i < m; i++) {
        reqs[i].method = s->method;
        reqs[i].url = hs[i].url;
        reqs[i].headers = (const char *const *)hs[i].headers;
        reqs[i].body = hs[i].body;
        reqs[i].body_len = hs[i].body ? strlen(hs[i].body) : 0;
        reqs[i].timeout_ms = s->timeout_ms;
        reqs[i].max_attempts = s->max_attempts;
        reqs[i].backoff_ms = s->backoff_ms;
        reqs[i].max_backoff_ms = s->max_backoff_ms;
        reqs[i].idempotency_key = hs[i].key;
        reqs[i].deadline_mono = r->env->deadline_mono;
        if (pacer) {
            reqs[i].pace = limits_pace;
            reqs[i].pace_backoff = limits_backoff;
            reqs[i].pace_ctx = pacer;
        }
    }
    if (r->env->ob) {
        outbound_run(r->env->ob, reqs, resps, m);
    } else {
        for (size_t i = 0; i < m; i++) {
            resps[i].error = -SLUICE_E_UPSTREAM_UNAVAILABLE;
            snprintf(resps[i].message, sizeof resps[i].message, "outbound calls are disabled");
        }
    }
    for (size_t i = 0; i < m; i++) {
        /* libcurl's error text can quote what was sent: masked before any use, and
         * before http_finish's messages truncate it (a cut rendering is not found later). */
        secmask_inplace(r->mask, resps[i].message, sizeof resps[i].message);
        http_finish(r, k, &hs[i], &resps[i]);
        outbound_response_release(&resps[i]);
        hreq_release(&hs[i]);
    }
    limits_pacer_free(pacer);
    free(reqs);
    free(resps);
    free(hs);
}

/* ---- the driver ---------------------------------------------------------------------- */

/* The backstop for the item's result: the outputs kept passed the limit after all
 * (http outputs are checked as they are kept, but a document step's output after one
 * that just fitted is not). The item fails at the last step that kept an output,
 * rather than keeping more than its size; what that step counted becomes a failure. */
static void result_too_large(struct run *r, struct pstate *p, json_t *steps)
{
    size_t k = r->w->nsteps;
    while (k > 0 && !json_object_get(steps, r->w->steps[k - 1].name))
        k--;
    if (k == 0 || p->out->status != ITEM_SUCCEEDED)
        return; /* an item that failed or was skipped keeps its own error; no result */
    const struct step_def *s = &r->w->steps[k - 1];
    char target[200], msg[400];
    snprintf(target, sizeof target, "steps.%s", s->name);
    snprintf(msg, sizeof msg, "%s: the outputs kept would pass %zu bytes", target,
             r->max_item_bytes);
    int warned = 0; /* onError continue: the step already counted as failed */
    size_t i;
    json_t *x;
    json_array_foreach(p->warnings, i, x) warned |=
        !strcmp(json_string_value(json_object_get(x, "step")), s->name);
    if (!warned && r->counts[k - 1].passed > 0) {
        r->counts[k - 1].passed--;
        r->counts[k - 1].failed++;
    }
    event(p, clock_now_ms(), "step", s, p->in->attempt, "error", "ItemTooLarge", msg, 0,
          json_pack("{s:s,s:I}", "target", target, "limitBytes", (json_int_t)r->max_item_bytes));
    /* a document op of that step, queued for the outcome, is not applied: the item
     * failed at the step (a synchronous run's write is already made) */
    while (p->out->nops > 0 && p->out->ops[p->out->nops - 1].step &&
           !strcmp(p->out->ops[p->out->nops - 1].step, s->name)) {
        struct store_doc_op *o = &p->out->ops[--p->out->nops];
        free((char *)o->ref);
        free((char *)o->data);
    }
    p->out->status = ITEM_FAILED;
    p->out->error_code = xstrdup(sluice_err_code(SLUICE_E_ITEM_TOO_LARGE));
    p->out->error_message = xstrdup(msg);
    p->out->failed_step = xstrdup(s->name);
}

static void mask_swap(char **s, char *(*fn)(const struct secmask *, const char *),
                      const struct secmask *m)
{
    if (!*s)
        return;
    char *t = fn(m, *s);
    free(*s);
    *s = t;
}

/* Resolves, before any step runs, every secret the workflow's http steps name, so the
 * mask is complete from the start: a document written at once (:run) or a ref checked
 * at a step before the http step that uses the secret would otherwise miss a value an
 * upstream already echoed. A name not visible or a store error is left to the http
 * step, which resolves again and fails the item as before. */
static void mask_prepare(struct run *r)
{
    json_t *names = json_array(), *n;
    size_t i;
    for (size_t k = 0; k < r->w->nsteps; k++) {
        const struct step_def *s = &r->w->steps[k];
        if (s->type != STEP_HTTP)
            continue;
        if (s->headers)
            (void)scan_value(s->headers, names);
        if (s->secret_body && s->body)
            (void)scan_value(s->body, names);
    }
    json_array_foreach(names, i, n)
    {
        (void)resolve_secret(r, json_string_value(n));
    }
    json_decref(names);
}

/* Everything the run writes about an item passes here: any rendering of a secret value
 * the run resolved becomes "***" (util/secmask.h). */
static void mask_result(const struct secmask *m, struct pipeline_result *res)
{
    if (secmask_empty(m))
        return;
    mask_swap(&res->error_message, secmask_text, m);
    mask_swap(&res->events, secmask_json, m);
    mask_swap(&res->warnings, secmask_json, m);
    mask_swap(&res->result, secmask_json, m);
    /* ops[i].ref is not masked: run_doc() refuses a ref that would reveal a secret. */
    for (size_t i = 0; i < res->nops; i++)
        if (res->ops[i].data) {
            char *t = secmask_json(m, res->ops[i].data);
            free((char *)res->ops[i].data);
            res->ops[i].data = t;
            res->ops[i].data_len = strlen(t);
        }
}

void pipeline_run(const struct pipeline_env *env, const struct wfdef *w, const char *tenant,
                  const char *job_id, enum pipeline_mode mode, const struct pipeline_item *items,
                  size_t n, struct pipeline_result *res, struct store_step_count *counts)
{
    struct run r = {env,
                    w,
                    tenant,
                    job_id,
                    mode,
                    NULL,
                    n,
                    counts,
                    {0},
                    json_object(),
                    json_object(),
                    secmask_new(),
                    env->max_item_bytes ? env->max_item_bytes : (size_t)1 << 20};
    if (!job_id)
        ids_random("run_", 20, r.run_id);
    r.ps = xcalloc(n ? n : 1, sizeof *r.ps);
    if (mode != PIPELINE_VALIDATE && n)
        mask_prepare(&r);
    for (size_t k = 0; k < w->nsteps; k++) {
        counts[k].step = w->steps[k].name;
        counts[k].passed = counts[k].failed = counts[k].skipped = 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct pstate *p = &r.ps[i];
        memset(&res[i], 0, sizeof res[i]);
        p->in = &items[i];
        p->out = &res[i];
        p->live = 1;
        res[i].status = ITEM_SUCCEEDED;
        buf_init(&p->ev);
        if (env->claimed_at) {
            char msg[96];
            snprintf(msg, sizeof msg, "claimed by worker %u (attempt %d)", env->worker,
                     items[i].attempt);
            event(p, env->claimed_at, "claim", NULL, 0, "info", "Claimed", msg, -1, NULL);
        }
    }
    for (size_t k = 0; k < w->nsteps; k++) {
        const struct step_def *s = &w->steps[k];
        if (mode == PIPELINE_VALIDATE && s->type != STEP_VALIDATE)
            continue;
        if (s->type == STEP_HTTP) {
            run_http(&r, k);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            struct pstate *p = &r.ps[i];
            if (!p->live)
                continue;
            int64_t start = clock_now_ms();
            switch (s->type) {
            case STEP_NOOP:
                pass(&r, p, k, start, "Succeeded", "noop: nothing to apply", NULL);
                break;
            case STEP_FAIL:
                step_error(&r, p, k, start, SLUICE_E_STEP_FAILED, s->fail_code, s->fail_message,
                           NULL);
                break;
            case STEP_VALIDATE:
                run_validate(&r, p, k);
                break;
            case STEP_MAP:
                run_map(&r, p, k);
                break;
            default:
                run_doc(&r, p, k);
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct pstate *p = &r.ps[i];
        /* The result first: its backstop may fail the item and add an event. */
        json_t *steps = p->ctx ? json_object_get(p->ctx, "steps") : NULL;
        if (!w->builtin && steps && json_object_size(steps)) {
            if (result_len(steps, r.max_item_bytes) > r.max_item_bytes) {
                result_too_large(&r, p, steps);
            } else {
                json_t *o = json_pack("{s:O}", "steps", steps);
                res[i].result = jsonw_dump(o, NULL); /* as result_len measured */
                json_decref(o);
            }
        }
        struct buf ev = BUF_INIT;
        buf_putc(&ev, '[');
        buf_append(&ev, p->ev.data ? p->ev.data : "", p->ev.len);
        buf_putc(&ev, ']');
        res[i].events = buf_detach(&ev, NULL);
        buf_release(&p->ev);
        if (p->warnings) {
            res[i].warnings = json_dumps(p->warnings, JSON_COMPACT);
            json_decref(p->warnings);
        }
        json_decref(p->ctx);
        mask_result(r.mask, &res[i]);
    }
    free(r.ps);
    json_decref(r.vis);
    json_decref(r.gone);
    secmask_free(r.mask);
}

void pipeline_result_release(struct pipeline_result *r)
{
    free(r->error_code);
    free(r->error_message);
    free(r->failed_step);
    free(r->result);
    free(r->events);
    free(r->warnings);
    for (size_t i = 0; i < r->nops; i++) {
        free((char *)r->ops[i].ref);
        free((char *)r->ops[i].data);
    }
    free(r->ops);
    memset(r, 0, sizeof *r);
}

int pipeline_item_data(json_t *data, size_t max_bytes, char **out, size_t *out_len)
{
    size_t max = max_bytes ? max_bytes : (size_t)1 << 20;
    *out = NULL;
    if (template_json_len(data, max) > max)
        return -SLUICE_E_ITEM_TOO_LARGE;
    *out = jsonw_dump(data, out_len);
    return 0;
}
