/* runs.c - synchronous runs: POST /v1/workflows/{name}:run runs one item through a
 * workflow on a run thread (engine/runs.h) while its request is parked, and answers
 * with the item's outcome. (The stored workflows themselves are api/defs.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/common.h"
#include "api/render.h"
#include "engine/pipeline.h"
#include "engine/runs.h"
#include "engine/wfload.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* The reply of a run that ended (the failing step's error, or the item). */
static void reply_run(struct request *req, const char *ref, int validate_only,
                      const struct pipeline_result *res)
{
    if (res->status == ITEM_FAILED) {
        /* The one error body, with the status of a failed step; the code is the failing
         * step's own (ValidationFailed, UpstreamError, ...), the target names the step. */
        char target[96];
        snprintf(target, sizeof target, "steps.%s", res->failed_step ? res->failed_step : "");
        reply_error_code(req, SLUICE_E_STEP_FAILED, res->error_code, target, res->error_message);
        return;
    }
    struct buf b = BUF_INIT;
    render_run(&b, ref, validate_only, res);
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
 * stays in req_ctx until api_runs_end frees it. */
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

void api_runs_end(struct request *req, int completed)
{
    (void)completed;
    sync_run_free(req_ctx(req));
    req_set_ctx(req, NULL);
}

/* POST /v1/workflows/{name}:run {"ref": "...", "data": ...}
 * The item runs on a run thread (engine/runs.h) while the request is parked, so a
 * slow upstream holds no HTTP thread; validateOnly runs only validate steps and
 * stays on this thread. */
void api_runs_start(struct request *req)
{
    struct api *api = api_of(req);
    const char *v = req_query(req, "validateOnly");
    int validate_only = v && (!strcmp(v, "true") || !strcmp(v, "1"));
    if (v && !validate_only && strcmp(v, "false") && strcmp(v, "0")) {
        reply_error(req, SLUICE_E_INVALID_PARAMETER, "validateOnly",
                    "validateOnly is true or false");
        return;
    }
    json_t *body = api_json_body(req);
    if (!body)
        return;
    json_t *ref = json_object_get(body, "ref"), *data = json_object_get(body, "data");
    const char *k;
    json_t *x;
    int unknown = 0;
    if (json_is_object(body))
        json_object_foreach(body, k, x) unknown |= strcmp(k, "ref") && strcmp(k, "data");
    if (!json_is_object(body) || unknown || !json_is_string(ref) || json_string_length(ref) == 0 ||
        json_string_length(ref) > 256 ||
        memchr(json_string_value(ref), 0, json_string_length(ref))) {
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
