/* pipeline.c - running items through a workflow's steps; see pipeline.h. The step
 * runners are in steps/ (one file per type, dispatched through steps_kind()); this file
 * builds the run, loops over steps and items, masks what the run writes and makes the
 * results. Everything the runners need of the engine (secrets, limits) is handed to
 * them through struct step_run from here. */
#include "engine/pipeline.h"

#include "engine/limits.h"
#include "engine/secrets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/template.h"
#include "steps/step.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/jsonw.h"
#include "util/secmask.h"
#include "util/xmalloc.h"

/* The run: what the runners see (base, first, so a runner's struct step_run * is this
 * run), and what only the pipeline uses. */
struct run {
    struct step_run base;
    const struct pipeline_env *env;
    json_t *vis;  /* NAME -> value: the secrets resolved for this run's tenant */
    json_t *gone; /* NAME -> true: names not visible to the tenant */
};

/* ---- what the runners reach through the run ---------------------------------------- */

/* Resolves one secret name for the run's tenant (cached in r->vis / r->gone). 1 found,
 * 0 not visible, < 0 store error. */
static int resolve_secret(struct run *r, const char *name)
{
    if (json_object_get(r->vis, name))
        return 1;
    if (json_object_get(r->gone, name))
        return 0;
    char *val = NULL;
    int rc = secrets_resolve(r->env->secrets, r->env->st, r->base.tenant, name, &val);
    if (rc == 1) {
        json_object_set_new(r->vis, name, json_stringn_nocheck(val, strlen(val)));
        secmask_add(r->base.mask, val);
        memset(val, 0, strlen(val));
    } else if (rc == 0) {
        json_object_set_new(r->gone, name, json_true());
    }
    free(val);
    return rc;
}

/* struct step_run's secret(). */
static int run_secret(struct step_run *sr, const char *name, json_t **value)
{
    struct run *r = (struct run *)sr;
    int rc = resolve_secret(r, name);
    *value = rc == 1 ? json_object_get(r->vis, name) : NULL;
    return rc;
}

/* struct step_run's pacer_begin(): the named limits of step k (engine/limits.h), and
 * what its upstreams said of their own limits (a pacer without names paces that). */
static void run_pacer_begin(struct step_run *sr, size_t k, struct step_pacer *p)
{
    struct run *r = (struct run *)sr;
    const struct step_def *s = &sr->w->steps[k];
    memset(p, 0, sizeof *p);
    if (!r->env->limits)
        return;
    const char *names[8];
    for (size_t i = 0; i < s->nlimits && i < 8; i++)
        names[i] = s->limits[i];
    struct limits_pacer *pacer = limits_pacer_new(r->env->limits, sr->tenant, sr->w->name, s->name,
                                                  names, s->nlimits < 8 ? s->nlimits : 8);
    limits_pacer_set_job(pacer, sr->job_id);
    p->pace = limits_pace;
    p->backoff = limits_backoff;
    p->observe = limits_observe;
    p->ctx = pacer;
}

static void run_pacer_end(struct step_pacer *p)
{
    limits_pacer_free(p->ctx);
}

/* ---- the driver ---------------------------------------------------------------------- */

/* The backstop for the item's result: the outputs kept passed the limit after all
 * (http outputs are checked as they are kept, but a document step's output after one
 * that just fitted is not). The item fails at the last step that kept an output,
 * rather than keeping more than its size; what that step counted becomes a failure. */
static void result_too_large(struct step_run *r, struct step_item *p, json_t *steps)
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
    step_event(
        p, clock_now_ms(), "step", s, p->in->attempt, "error", "ItemTooLarge", msg, 0,
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
    for (size_t k = 0; k < r->base.w->nsteps; k++) {
        const struct step_def *s = &r->base.w->steps[k];
        if (s->type == STEP_HTTP)
            (void)step_http_secret_names(s, names);
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
    /* ops[i].ref is not masked: step_document() refuses a ref that would reveal a secret. */
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
    struct run r = {.env = env, .vis = json_object(), .gone = json_object()};
    struct step_run *sr = &r.base;
    sr->w = w;
    sr->tenant = tenant;
    sr->job_id = job_id;
    sr->immediate = mode == PIPELINE_IMMEDIATE;
    sr->n = n;
    sr->counts = counts;
    sr->mask = secmask_new();
    sr->max_item_bytes = env->max_item_bytes ? env->max_item_bytes : (size_t)1 << 20;
    sr->st = env->st;
    sr->ob = env->ob;
    sr->deadline_mono = env->deadline_mono;
    sr->secret = run_secret;
    sr->pacer_begin = run_pacer_begin;
    sr->pacer_end = run_pacer_end;
    if (!job_id)
        ids_random("run_", 20, sr->run_id);
    sr->items = xcalloc(n ? n : 1, sizeof *sr->items);
    if (mode != PIPELINE_VALIDATE && n)
        mask_prepare(&r);
    for (size_t k = 0; k < w->nsteps; k++) {
        counts[k].step = w->steps[k].name;
        counts[k].passed = counts[k].failed = counts[k].skipped = 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct step_item *p = &sr->items[i];
        memset(&res[i], 0, sizeof res[i]);
        p->in = &items[i];
        p->out = &res[i];
        p->live = 1;
        res[i].status = ITEM_SUCCEEDED;
        buf_init(&p->ev);
        if (env->claimed_at)
            step_claim_event(p, env->claimed_at, env->worker, items[i].attempt);
    }
    for (size_t k = 0; k < w->nsteps; k++) {
        const struct step_def *s = &w->steps[k];
        if (mode == PIPELINE_VALIDATE && s->type != STEP_VALIDATE)
            continue;
        const struct step_kind *run = steps_kind(s->type);
        if (run->batch) {
            run->batch(sr, k);
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if (sr->items[i].live)
                run->each(sr, &sr->items[i], k);
    }
    for (size_t i = 0; i < n; i++) {
        struct step_item *p = &sr->items[i];
        /* The result first: its backstop may fail the item and add an event. */
        if (!w->builtin) {
            /* Written, then measured: each step kept its outputs within the size as it
             * went, so this is a backstop, and a second walk to measure first would cost
             * as much as the writing. */
            size_t len;
            char *text = step_result_text(p, &len);
            if (text && len > sr->max_item_bytes) {
                free(text);
                result_too_large(sr, p, step_outputs(sr, p));
            } else {
                res[i].result = text; /* as step_result_len measures */
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
        step_item_release(p);
        mask_result(sr->mask, &res[i]);
    }
    free(sr->items);
    json_decref(r.vis);
    json_decref(r.gone);
    secmask_free(sr->mask);
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
