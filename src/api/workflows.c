/* workflows.c - /v1/workflows: stored definitions (versioned) and synchronous runs.
 *
 * PUT validates the definition completely (wfdef_compile) before storing it, so a
 * stored version always compiles again when a job runs it. A job records the
 * version it was submitted with; a later PUT makes a new version and never changes
 * a running job. POST /v1/workflows/{name}:run runs one item on a run thread
 * (engine/runs.h) while its request is parked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/common.h"
#include "engine/pipeline.h"
#include "engine/runs.h"
#include "engine/wfload.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/url.h"
#include "util/xmalloc.h"

static void render_workflow(struct buf *b, const struct store_workflow *w)
{
    char ts[25];
    buf_puts(b, "{\"name\":");
    buf_json_str(b, w->name, strlen(w->name));
    buf_printf(b, ",\"version\":%lld,\"createdAt\":\"%s\",\"definition\":%s}", (long long)w->version,
               clock_fmt_ms(w->created_at, ts), w->definition ? w->definition : "null");
}

static int check_name(struct request *req)
{
    if (!wfdef_name_valid(req_param(req, "name"))) {
        reply_error(req, SLUICE_E_INVALID_PARAMETER, "name",
                    "workflow names are 1 to 128 characters of A-Z a-z 0-9 _ - . and not a "
                    "built-in name (noop, <collection>.upsert|patch|delete)");
        return -1;
    }
    return 0;
}

/* Parses the body as one JSON value (duplicate keys refused); replies 400 on error. */
static json_t *json_body(struct request *req)
{
    size_t len;
    const char *body = req_body(req, &len);
    struct ingest_error ie;
    if (ingest_validate_json(body, len, api_of(req)->cfg.limits.max_depth, &ie) < 0) {
        reply_error(req, SLUICE_E_INVALID_JSON, NULL, ie.message[0] ? ie.message : NULL);
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!v)
        reply_errorf(req, SLUICE_E_INVALID_JSON, NULL, "%s", je.text);
    return v;
}

void api_workflows_put(struct request *req)
{
    if (check_name(req) < 0)
        return;
    json_t *def = json_body(req);
    if (!def)
        return;
    char err[300], target[160];
    struct wfdef *w = NULL;
    int rc = wfdef_compile(req_param(req, "name"), 0, def, &w, err, sizeof err, target, sizeof target);
    if (rc < 0) {
        json_decref(def);
        reply_error(req, rc, target[0] ? target : NULL, err);
        return;
    }
    wfdef_free(w);
    char *text = json_dumps(def, JSON_COMPACT);
    json_decref(def);
    struct store_workflow sw;
    memset(&sw, 0, sizeof sw);
    /* 201 when the name is not live now (new, or deleted before), 200 for a new version. */
    rc = store_workflow_get(api_of(req)->st, req_tenant(req), req_param(req, "name"), 0, &sw);
    int existed = rc == 1;
    store_workflow_release(&sw);
    memset(&sw, 0, sizeof sw);
    if (rc >= 0)
        rc = store_workflow_put(api_of(req)->st, req_tenant(req), req_param(req, "name"), text, &sw);
    free(text);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    struct buf b = BUF_INIT, loc = BUF_INIT;
    buf_printf(&loc, "%s/v1/workflows/", req_base_url(req));
    url_encode(&loc, sw.name);
    reply_header(req, "Location", loc.data);
    render_workflow(&b, &sw);
    reply_buf(req, existed ? 200 : 201, "application/json", &b);
    buf_release(&b);
    buf_release(&loc);
    store_workflow_release(&sw);
}

void api_workflows_get(struct request *req)
{
    int64_t version;
    if (api_query_int(req, "version", 0, 0, INT64_MAX, &version) < 0)
        return;
    struct store_workflow sw;
    memset(&sw, 0, sizeof sw);
    int rc = store_workflow_get(api_of(req)->st, req_tenant(req), req_param(req, "name"), version,
                                &sw);
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else if (rc == 0)
        reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no workflow '%.128s'", req_param(req, "name"));
    else {
        struct buf b = BUF_INIT;
        render_workflow(&b, &sw);
        reply_buf(req, 200, "application/json", &b);
        buf_release(&b);
    }
    store_workflow_release(&sw);
}

void api_workflows_delete(struct request *req)
{
    int rc = store_workflow_delete(api_of(req)->st, req_tenant(req), req_param(req, "name"));
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else if (rc == 0)
        reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no workflow '%.128s'", req_param(req, "name"));
    else
        reply_empty(req, 204);
}

static void page_workflow(struct buf *b, const void *e, struct request *req)
{
    (void)req;
    render_workflow(b, e);
}

static void cursor_workflow(struct buf *q, const void *e)
{
    buf_puts(q, "after=");
    url_encode(q, ((const struct store_workflow *)e)->name);
}

void api_workflows_list(struct request *req)
{
    int64_t limit;
    if (api_query_int(req, "limit", 100, 1, 1000, &limit) < 0)
        return;
    const char *after = req_query(req, "after");
    struct store_workflow *ws = NULL;
    size_t n = 0;
    int rc = store_workflow_list(api_of(req)->st, req_tenant(req), after, (size_t)limit + 1, &ws, &n);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    api_reply_page(req, ws, n, sizeof *ws, limit, page_workflow, cursor_workflow, NULL);
    store_workflows_free(ws, n);
}

/* The reply of a run that ended (the failing step's error, or the item). */
static void reply_run(struct request *req, const char *ref, int validate_only,
                      const struct pipeline_result *res)
{
    if (res->status == ITEM_FAILED) {
        /* The one error body; the code is the failing step's own (ValidationFailed,
         * UpstreamError, ...), the target names the step. */
        char target[96];
        snprintf(target, sizeof target, "steps.%s", res->failed_step ? res->failed_step : "");
        struct buf b = BUF_INIT;
        buf_puts(&b, "{\"error\":{\"code\":");
        buf_json_str(&b, res->error_code, strlen(res->error_code));
        buf_puts(&b, ",\"message\":");
        buf_json_str(&b, res->error_message, strlen(res->error_message));
        buf_puts(&b, ",\"target\":");
        buf_json_str(&b, target, strlen(target));
        buf_puts(&b, "}}");
        reply_buf(req, 422, "application/json", &b);
        buf_release(&b);
        return;
    }
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"ref\":");
    buf_json_str(&b, ref, strlen(ref));
    buf_printf(&b, ",\"status\":\"%s\"", store_item_status_name(res->status));
    if (validate_only)
        buf_puts(&b, ",\"validateOnly\":true");
    if (res->error_code) {
        buf_puts(&b, ",\"error\":{\"code\":");
        buf_json_str(&b, res->error_code, strlen(res->error_code));
        buf_puts(&b, ",\"message\":");
        buf_json_str(&b, res->error_message, strlen(res->error_message));
        buf_puts(&b, "}");
    }
    buf_printf(&b, ",\"result\":%s,\"warnings\":%s,\"events\":%s}",
               res->result ? res->result : "null", res->warnings ? res->warnings : "[]",
               res->events);
    reply_buf(req, 200, "application/json", &b);
    buf_release(&b);
}

/* Runs one item on this thread: validateOnly runs (no calls, nothing stored), and
 * servers without a run pool (api.runs NULL). */
static void run_inline(struct request *req, struct wfdef *w, const char *ref, const char *raw,
                       int validate_only)
{
    struct api *api = api_of(req);
    struct pipeline_item item = {0, ref, raw, raw ? strlen(raw) : 0, 1};
    struct pipeline_result res;
    struct store_step_count *counts = calloc(w->nsteps ? w->nsteps : 1, sizeof *counts);
    struct pipeline_env env = {
        api->st, api->ob, api->secrets, 0, 0, api->limits, 0, api->cfg.limits.max_item_bytes};
    pipeline_run(&env, w, req_tenant(req), NULL,
                 validate_only ? PIPELINE_VALIDATE : PIPELINE_IMMEDIATE, &item, 1, &res, counts);
    reply_run(req, ref, validate_only, &res);
    pipeline_result_release(&res);
    free(counts);
}

/* A run thread (or the refusal below) is done with the run: wake its request. */
static void run_done(struct sync_run *run)
{
    req_resume(run->arg);
}

/* The parked request's continuation, on an HTTP thread: reply from the run, which
 * stays in req_ctx until api_workflows_run_end frees it. */
static void run_resumed(struct request *req)
{
    struct sync_run *run = req_ctx(req);
    if (run->rc == -SLUICE_E_TOO_MANY_RUNS) {
        reply_header(req, "Retry-After", "1");
        reply_errorf(req, SLUICE_E_TOO_MANY_RUNS, NULL,
                     "too many synchronous runs in progress for this tenant or server; retry "
                     "later or submit a job");
    } else if (run->rc == -SLUICE_E_RUN_TIMEOUT) {
        reply_error(req, SLUICE_E_RUN_TIMEOUT, NULL,
                    "the run did not finish within its deadline (--run-timeout); steps that "
                    "already ran are not undone");
    } else if (run->rc < 0) {
        reply_error(req, run->rc, NULL, NULL);
    } else {
        reply_run(req, run->ref, 0, &run->res);
    }
}

void api_workflows_run_end(struct request *req, int completed)
{
    (void)completed;
    sync_run_free(req_ctx(req));
    req_set_ctx(req, NULL);
}

/* POST /v1/workflows/{name}:run {"ref": "...", "data": ...}
 * The item runs on a run thread (engine/runs.h) while the request is parked, so a
 * slow upstream holds no HTTP thread; validateOnly runs only validate steps and
 * stays on this thread. */
void api_workflows_run(struct request *req)
{
    struct api *api = api_of(req);
    const char *v = req_query(req, "validateOnly");
    int validate_only = v && (!strcmp(v, "true") || !strcmp(v, "1"));
    if (v && !validate_only && strcmp(v, "false") && strcmp(v, "0")) {
        reply_error(req, SLUICE_E_INVALID_PARAMETER, "validateOnly", "validateOnly is true or false");
        return;
    }
    json_t *body = json_body(req);
    if (!body)
        return;
    json_t *ref = json_object_get(body, "ref"), *data = json_object_get(body, "data");
    const char *k;
    json_t *x;
    int unknown = 0;
    if (json_is_object(body))
        json_object_foreach(body, k, x) unknown |= strcmp(k, "ref") && strcmp(k, "data");
    if (!json_is_object(body) || unknown || !json_is_string(ref) || json_string_length(ref) == 0 ||
        json_string_length(ref) > 256 || memchr(json_string_value(ref), 0, json_string_length(ref))) {
        json_decref(body);
        reply_error(req, SLUICE_E_INVALID_ITEM, "ref",
                    "the body is one item: {\"ref\": \"1 to 256 bytes\", \"data\": ...}");
        return;
    }
    struct wfdef *w = NULL;
    int rc = wfload(api->st, req_tenant(req), req_param(req, "name"), 0, &w);
    if (rc < 0) {
        json_decref(body);
        if (rc == -SLUICE_E_UNKNOWN_WORKFLOW)
            reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no workflow '%.128s'",
                         req_param(req, "name"));
        else
            reply_error(req, rc, NULL, NULL);
        return;
    }
    /* Held to the item limit as a submitted item is: the body's own cap is larger, and
     * an http step without a body forwards these bytes as they are. */
    char *raw = NULL;
    if (data && pipeline_item_data(data, api->cfg.limits.max_item_bytes, &raw, NULL) < 0) {
        wfdef_free(w);
        json_decref(body);
        reply_errorf(req, SLUICE_E_ITEM_TOO_LARGE, "data",
                     "the item's data is larger than %zu bytes (--max-item-bytes)",
                     api->cfg.limits.max_item_bytes);
        return;
    }
    if (validate_only || !api->runs) {
        run_inline(req, w, json_string_value(ref), raw, validate_only);
        free(raw);
        wfdef_free(w);
        json_decref(body);
        return;
    }
    struct sync_run *run = sync_run_new();
    snprintf(run->tenant, sizeof run->tenant, "%s", req_tenant(req));
    run->w = w;
    run->ref = xstrdup(json_string_value(ref));
    run->data = raw;
    run->done = run_done;
    run->arg = req;
    json_decref(body);
    /* Park before handing over: the run thread may finish and resume at once. */
    req_set_ctx(req, run);
    req_park(req, run_resumed);
    rc = runs_submit(api->runs, run);
    if (rc < 0) { /* refused: still ours; answer it through the same continuation */
        run->rc = rc;
        run_done(run);
    }
}
