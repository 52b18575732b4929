/* step.c - what every step runner uses: the item's context, its events, and the three
 * ways a step ends for an item (pass, error, too large); see step.h. */
#include "steps/step.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/template.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/events.h"
#include "util/jload.h"
#include "util/jsonw.h"
#include "util/xmalloc.h"

static json_t *item_data(const struct step_item *p)
{
    json_t *data = NULL;
    if (p->in->data)
        data = jload(p->in->data, p->in->data_len, JLOAD_ALLOW_NUL);
    return data ? data : json_null();
}

json_t *step_outputs(struct step_run *r, struct step_item *p)
{
    if (!p->ctx) { /* member by member: json_pack would read a format for every item */
        p->ctx = json_object();
        json_object_set_new_nocheck(p->ctx, "ref", json_string(p->in->ref));
        json_object_set_new_nocheck(p->ctx, "job",
                                    r->job_id ? json_string(r->job_id) : json_null());
        json_object_set_new_nocheck(p->ctx, "index", json_integer((json_int_t)p->in->index));
        json_object_set_new_nocheck(p->ctx, "steps", json_object());
        p->bare = 1;
    }
    json_t *steps = json_object_get(p->ctx, "steps");
    for (size_t i = 0; i < p->ntexts; i++) { /* a step reads them: values now */
        json_t *v = jload(p->texts[i].text, p->texts[i].len, JLOAD_ALLOW_NUL);
        json_object_set_new(steps, p->texts[i].name, v ? v : json_null());
        free(p->texts[i].text);
    }
    free(p->texts);
    p->texts = NULL;
    p->ntexts = 0;
    return steps;
}

json_t *step_ctx(struct step_run *r, struct step_item *p)
{
    step_outputs(r, p);
    if (p->bare) {
        json_object_set_new(p->ctx, "data", item_data(p));
        p->bare = 0;
    }
    return p->ctx;
}

void step_set_output(struct step_run *r, struct step_item *p, const char *step,
                     json_t *v /* stolen */)
{
    json_object_set_new(step_outputs(r, p), step, v);
}

/* Appends one event (util/events.h has the stored form). A step event (s != NULL)
 * also names the step, its type and its outcome (passed | failed | skipped |
 * continued). extra (stolen, may be NULL) adds fields (http details, violations). */
static void event_put(struct step_item *p, int64_t at, const char *stage, const struct step_def *s,
                      int attempt, const char *level, const char *code, const char *msg,
                      int64_t dur_ms, json_t *extra, const char *extra_text)
{
    struct item_event e = {.at = at,
                           .stage = stage,
                           .attempt = attempt,
                           .level = level,
                           .code = code,
                           .message = msg,
                           .duration_ms = dur_ms,
                           .extra_text = extra_text};
    if (s) {
        e.step = s->name;
        e.type = wfdef_step_type_name(s->type);
        e.outcome = !strcmp(level, "info")         ? "passed"
                    : !strcmp(level, "error")      ? "failed"
                    : s->on_error == ON_ERROR_SKIP ? "skipped"
                                                   : "continued";
        e.same_attempt = p->ev_n > 0 && attempt == p->ev_n;
    }
    e.base = p->ev_base;
    events_put(&p->ev, &e, extra);
    json_decref(extra);
}

void step_event(struct step_item *p, int64_t at, const char *stage, const struct step_def *s,
                int attempt, const char *level, const char *code, const char *msg, int64_t dur_ms,
                json_t *extra)
{
    event_put(p, at, stage, s, attempt, level, code, msg, dur_ms, extra, NULL);
}

void step_claim_event(struct step_item *p, int64_t at, unsigned worker, int attempt)
{
    char msg[96];
    struct item_event e = {
        .at = at, .stage = "claim", .level = "info", .code = "Claimed", .duration_ms = -1};
    if (worker > 0 && worker <= INT_MAX && attempt > 0) {
        e.worker = (int)worker;
        e.attempt = attempt;
    } else { /* the numbers cannot stand for the text: keep the text */
        snprintf(msg, sizeof msg, "claimed by worker %u (attempt %d)", worker, attempt);
        e.message = msg;
    }
    events_put(&p->ev, &e, NULL);
    if (at > 0) { /* the events after it are written against it */
        p->ev_base = at;
        p->ev_n = e.attempt;
    }
}

void step_pass_span(struct step_run *r, struct step_item *p, size_t k, int64_t start, int64_t end,
                    const char *code, const char *msg, json_t *extra)
{
    r->counts[k].passed++;
    step_event(p, start, "step", &r->w->steps[k], p->in->attempt, "info", code, msg, end - start,
               extra);
}

void step_pass_text(struct step_run *r, struct step_item *p, size_t k, int64_t start, int64_t end,
                    const char *code, const char *msg, const char *extra_text)
{
    r->counts[k].passed++;
    event_put(p, start, "step", &r->w->steps[k], p->in->attempt, "info", code, msg, end - start,
              NULL, extra_text);
}

void step_pass(struct step_run *r, struct step_item *p, size_t k, int64_t start, const char *code,
               const char *msg, json_t *extra)
{
    step_pass_span(r, p, k, start, clock_now_ms(), code, msg, extra);
}

/* A step failed for this item: its onError decides what happens to the item. */
void step_error_span(struct step_run *r, struct step_item *p, size_t k, int64_t start, int64_t end,
                     int err, const char *code, const char *msg, json_t *extra)
{
    const struct step_def *s = &r->w->steps[k];
    if (!code)
        code = sluice_err_code(err);
    if (s->on_error == ON_ERROR_CONTINUE) {
        r->counts[k].failed++;
        if (!p->warnings)
            p->warnings = json_array();
        json_array_append_new(
            p->warnings, json_pack("{s:s,s:s,s:s}", "step", s->name, "code", code, "message", msg));
        step_event(p, start, "step", s, p->in->attempt, "warn", code, msg, end - start, extra);
        return;
    }
    int skip = s->on_error == ON_ERROR_SKIP;
    if (skip)
        r->counts[k].skipped++;
    else
        r->counts[k].failed++;
    step_event(p, start, "step", s, p->in->attempt, skip ? "warn" : "error", code, msg, end - start,
               extra);
    p->live = 0;
    p->out->status = skip ? ITEM_SKIPPED : ITEM_FAILED;
    p->out->error_code = xstrdup(code);
    p->out->error_message = xstrdup(msg);
    p->out->failed_step = xstrdup(s->name);
}

void step_error(struct step_run *r, struct step_item *p, size_t k, int64_t start, int err,
                const char *code, const char *msg, json_t *extra)
{
    step_error_span(r, p, k, start, clock_now_ms(), err, code, msg, extra);
}

/* The item would grow past r->max_item_bytes at step k: ItemTooLarge, with the place as
 * target ("steps.shape.ops[3].value") both in the message and in the event. */
void step_too_large(struct step_run *r, struct step_item *p, size_t k, int64_t start,
                    const char *where, const char *why)
{
    char target[200], msg[700];
    snprintf(target, sizeof target, "steps.%s%s%s", r->w->steps[k].name, where && *where ? "." : "",
             where ? where : "");
    snprintf(msg, sizeof msg, "%s: %s", target, why);
    step_error(
        r, p, k, start, SLUICE_E_ITEM_TOO_LARGE, NULL, msg,
        json_pack("{s:s,s:I}", "target", target, "limitBytes", (json_int_t)r->max_item_bytes));
}

/* The length of the item's result, {"steps":steps}, as pipeline_run writes it, or
 * cap + 1 when it passes cap. */
size_t step_result_len(json_t *steps, size_t cap)
{
    static const size_t wrap = sizeof "{\"steps\":}" - 1;
    if (cap < wrap)
        return cap + 1;
    size_t n = template_json_len(steps, cap - wrap);
    return n > cap - wrap ? cap + 1 : n + wrap;
}

/* The bytes a member "name":<len bytes> adds to an object, after a comma if it has
 * members already. */
static size_t member_len(const char *name, size_t len, int after)
{
    return (after ? 1 : 0) + 2 + jsonw_str_len(name, strlen(name), SIZE_MAX - 4) + 1 + len;
}

int step_keep_text(struct step_run *r, struct step_item *p, size_t k, char *text, size_t len)
{
    size_t cap = r->max_item_bytes;
    json_t *steps = p->ctx ? json_object_get(p->ctx, "steps") : NULL;
    size_t n = steps ? step_result_len(steps, cap) : sizeof "{\"steps\":{}}" - 1;
    int members = steps && json_object_size(steps);
    for (size_t i = 0; i < p->ntexts && n <= cap; i++)
        n += member_len(p->texts[i].name, p->texts[i].len, members++);
    n += member_len(r->w->steps[k].name, len, members);
    if (n > cap) {
        free(text);
        return -1;
    }
    p->texts = xrealloc(p->texts, (p->ntexts + 1) * sizeof *p->texts);
    p->texts[p->ntexts++] = (struct step_text_out){r->w->steps[k].name, text, len};
    return 0;
}

char *step_result_text(struct step_item *p, size_t *len)
{
    json_t *steps = p->ctx ? json_object_get(p->ctx, "steps") : NULL;
    int members = steps && json_object_size(steps);
    if (!members && !p->ntexts)
        return NULL;
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"steps\":");
    if (members) {
        jsonw_put(&b, steps);
        b.len--; /* its '}': the texts join it */
    } else {
        buf_putc(&b, '{');
    }
    for (size_t i = 0; i < p->ntexts; i++) {
        if (members++)
            buf_putc(&b, ',');
        buf_json_str(&b, p->texts[i].name, strlen(p->texts[i].name));
        buf_putc(&b, ':');
        buf_append(&b, p->texts[i].text, p->texts[i].len);
    }
    buf_puts(&b, "}}");
    return buf_detach(&b, len);
}

void step_item_release(struct step_item *p)
{
    json_decref(p->ctx);
    p->ctx = NULL;
    for (size_t i = 0; i < p->ntexts; i++)
        free(p->texts[i].text);
    free(p->texts);
    p->texts = NULL;
    p->ntexts = 0;
}
