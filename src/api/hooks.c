/* hooks.c - the public events endpoint of webhook entry points (the hooks themselves
 * are tenant-owned definitions: api/defs.c), which needs no API key but a valid HMAC
 * signature.
 * An event becomes a job through the same submit path as a bulk request; its event
 * id (engine/hook.h: from the payload, the signed delivery id or the body's hash)
 * becomes the job's idempotency key, so a replayed event returns the original job (200)
 * and creates no work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/common.h"
#include "api/render.h"
#include "engine/hook.h"
#include "engine/submit.h"
#include "spec/hook.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/metrics.h"

/* The request's headers, for hook_verify_event(). */
static const char *header_of(void *req, const char *name)
{
    return req_header(req, name);
}

/* POST /v1/hooks/{name}/events: signature instead of an API key. */
void api_hooks_event(struct request *req)
{
    struct api *api = api_of(req);
    struct store_def sh;
    struct hook *h = NULL;
    struct hook_item *items = NULL;
    size_t n = 0;
    struct submit *sub = NULL;
    char err[300], target[320], event_id[HOOK_EVENT_ID_SIZE], signed_id[HOOK_EVENT_ID_SIZE];
    int rc = store_def_get(api->st, STORE_DEF_HOOK, NULL, req_param(req, "name"), 0, &sh);
    if (rc <= 0) {
        if (rc < 0)
            reply_error(req, rc, NULL, NULL);
        else
            reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no hook '%.64s'",
                         req_param(req, "name"));
        goto out;
    }
    req_set_tenant(req, sh.tenant);
    json_error_t je;
    json_t *def = json_loads(sh.text, 0, &je);
    rc = def ? hook_compile(def, &h, err, sizeof err, NULL, 0) : -SLUICE_E_INTERNAL;
    json_decref(def);
    if (rc < 0) {
        reply_error(req, SLUICE_E_INTERNAL, NULL, "the stored hook definition does not compile");
        goto out;
    }
    size_t len;
    const char *body = req_body(req, &len);
    rc = hook_verify_event(h, header_of, req, body, len, clock_now_ms() / 1000, signed_id, err,
                           sizeof err, target, sizeof target);
    if (rc == -SLUICE_E_UNAUTHORIZED)
        reply_header(req, "WWW-Authenticate", "Signature");
    if (rc < 0) {
        reply_error(req, rc, target[0] ? target : NULL, err);
        goto out;
    }
    rc = hook_items(h, body, len, &items, &n, event_id, signed_id, err, sizeof err, target,
                    sizeof target);
    if (rc < 0) {
        reply_error(req, rc, target[0] ? target : NULL, err);
        goto out;
    }
    sub = submit_new(api->st, sh.tenant, api->cfg.submit_batch);
    if ((rc = submit_set_workflow(sub, hook_workflow(h))) < 0) {
        reply_errorf(req, rc, "workflow", "the hook's workflow '%.128s' no longer exists",
                     hook_workflow(h));
        goto out;
    }
    char key[STORE_NAME_MAX + HOOK_EVENT_ID_SIZE + 8];
    snprintf(key, sizeof key, "hook:%s:%s", sh.name, event_id);
    submit_set_idem_key(sub, key);
    for (size_t i = 0; i < n && rc >= 0; i++)
        rc = submit_add(sub, (int64_t)i, items[i].ref, items[i].ref_len, items[i].data,
                        items[i].data_len);
    struct store_job job;
    memset(&job, 0, sizeof job);
    if (rc >= 0)
        rc = submit_commit(sub, &job);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        goto out;
    }
    int replay = rc == STORE_JOB_REPLAYED;
    if (!replay) {
        metrics_job_accepted(job.counts.total);
        engine_notify(api->eng);
    }
    struct buf b = BUF_INIT, loc = BUF_INIT;
    buf_printf(&loc, "%s/v1/jobs/%s", req_base_url(req), job.id);
    reply_header(req, "Location", loc.data);
    if (replay)
        reply_header(req, "Idempotent-Replayed", "true");
    api_render_job(req, &b, &job);
    reply_buf(req, replay ? 200 : 202, "application/json", &b);
    buf_release(&b);
    buf_release(&loc);
    store_job_release(&job);
out:
    submit_free(sub);
    hook_items_free(items, n);
    hook_free(h);
    store_def_release(&sh);
}
