/* hooks.c - /v1/hooks: webhook entry points (tenant-scoped definitions) and the
 * public events endpoint, which needs no API key but a valid HMAC signature.
 * An event becomes a job through the same submit path as a bulk request; its event
 * id becomes the job's idempotency key, so a replayed event returns the original
 * job (200) and creates no work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/common.h"
#include "api/render.h"
#include "engine/hook.h"
#include "engine/submit.h"
#include "engine/wfdef.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/metrics.h"
#include "util/url.h"

static int check_name(struct request *req)
{
    const char *n = req_param(req, "name");
    size_t len = strlen(n);
    int ok = len > 0 && len <= 64;
    for (const char *s = n; ok && *s; s++)
        ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
             *s == '_' || *s == '-' || *s == '.';
    if (!ok)
        reply_error(req, SLUICE_E_INVALID_PARAMETER, "name",
                    "hook names are 1 to 64 characters of A-Z a-z 0-9 _ - .");
    return ok ? 0 : -1;
}

static void render_hook(struct buf *b, struct request *req, const struct store_hook *h)
{
    char ts[25];
    json_error_t je;
    json_t *def = json_loads(h->definition, 0, &je);
    json_t *red = def ? hook_redact(def) : NULL;
    char *text = red ? json_dumps(red, JSON_COMPACT) : NULL;
    buf_puts(b, "{\"name\":");
    buf_json_str(b, h->name, strlen(h->name));
    buf_printf(b, ",\"eventsUrl\":\"%s/v1/hooks/", req_base_url(req));
    url_encode(b, h->name);
    buf_printf(b, "/events\",\"updatedAt\":\"%s\",\"definition\":%s}", clock_fmt_ms(h->updated_at, ts),
               text ? text : "null");
    free(text);
    json_decref(red);
    json_decref(def);
}

void api_hooks_put(struct request *req)
{
    if (check_name(req) < 0)
        return;
    size_t len;
    const char *body = req_body(req, &len);
    json_error_t je;
    json_t *def = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!def) {
        reply_errorf(req, SLUICE_E_INVALID_JSON, NULL, "%s", je.text);
        return;
    }
    char err[300], target[160];
    struct hook *h = NULL;
    int rc = hook_compile(def, &h, err, sizeof err, target, sizeof target);
    if (rc < 0) {
        json_decref(def);
        reply_error(req, rc, target[0] ? target : NULL, err);
        return;
    }
    /* The target workflow must exist now (it may still be deleted later: events then
     * answer 422). */
    struct wfdef *w = NULL;
    if (wfdef_builtin(hook_workflow(h), &w) == 0) {
        wfdef_free(w);
    } else {
        struct store_workflow sw;
        memset(&sw, 0, sizeof sw);
        rc = store_workflow_get(api_of(req)->st, req_tenant(req), hook_workflow(h), 0, &sw);
        store_workflow_release(&sw);
        if (rc <= 0) {
            if (rc < 0)
                reply_error(req, rc, NULL, NULL);
            else
                reply_errorf(req, SLUICE_E_UNKNOWN_WORKFLOW, "workflow", "no workflow '%.128s'",
                             hook_workflow(h));
            hook_free(h);
            json_decref(def);
            return;
        }
    }
    hook_free(h);
    char *text = json_dumps(def, JSON_COMPACT);
    json_decref(def);
    struct store_hook sh;
    memset(&sh, 0, sizeof sh);
    rc = store_hook_put(api_of(req)->st, req_tenant(req), req_param(req, "name"), text, &sh);
    free(text);
    if (rc == -SLUICE_E_CONFLICT) {
        reply_error(req, rc, "name", "another tenant uses this hook name; choose another");
        return;
    }
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    struct buf b = BUF_INIT;
    render_hook(&b, req, &sh);
    reply_buf(req, rc == 1 ? 201 : 200, "application/json", &b);
    buf_release(&b);
    store_hook_release(&sh);
}

void api_hooks_get(struct request *req)
{
    struct store_hook sh;
    memset(&sh, 0, sizeof sh);
    int rc = store_hook_get(api_of(req)->st, req_tenant(req), req_param(req, "name"), &sh);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
    } else if (rc == 0) {
        reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no hook '%.64s'", req_param(req, "name"));
    } else {
        struct buf b = BUF_INIT;
        render_hook(&b, req, &sh);
        reply_buf(req, 200, "application/json", &b);
        buf_release(&b);
    }
    store_hook_release(&sh);
}

void api_hooks_delete(struct request *req)
{
    int rc = store_hook_delete(api_of(req)->st, req_tenant(req), req_param(req, "name"));
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else if (rc == 0)
        reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no hook '%.64s'", req_param(req, "name"));
    else
        reply_empty(req, 204);
}

static void page_hook(struct buf *b, const void *e, struct request *req)
{
    render_hook(b, req, e);
}

static void cursor_hook(struct buf *q, const void *e)
{
    buf_puts(q, "after=");
    url_encode(q, ((const struct store_hook *)e)->name);
}

void api_hooks_list(struct request *req)
{
    int64_t limit;
    if (api_query_int(req, "limit", 100, 1, 1000, &limit) < 0)
        return;
    struct store_hook *hs = NULL;
    size_t n = 0;
    int rc = store_hook_list(api_of(req)->st, req_tenant(req), req_query(req, "after"),
                             (size_t)limit + 1, &hs, &n);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    api_reply_page(req, hs, n, sizeof *hs, limit, page_hook, cursor_hook, NULL);
    store_hooks_free(hs, n);
}

/* POST /v1/hooks/{name}/events: signature instead of an API key. */
void api_hooks_event(struct request *req)
{
    struct api *api = api_of(req);
    struct store_hook sh;
    memset(&sh, 0, sizeof sh);
    struct hook *h = NULL;
    struct hook_item *items = NULL;
    size_t n = 0;
    struct submit *sub = NULL;
    char err[300], event_id[HOOK_EVENT_ID_SIZE];
    int rc = store_hook_get(api->st, NULL, req_param(req, "name"), &sh);
    if (rc <= 0) {
        if (rc < 0)
            reply_error(req, rc, NULL, NULL);
        else
            reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no hook '%.64s'", req_param(req, "name"));
        goto out;
    }
    req_set_tenant(req, sh.tenant);
    json_error_t je;
    json_t *def = json_loads(sh.definition, 0, &je);
    rc = def ? hook_compile(def, &h, err, sizeof err, NULL, 0) : -SLUICE_E_INTERNAL;
    json_decref(def);
    if (rc < 0) {
        reply_error(req, SLUICE_E_INTERNAL, NULL, "the stored hook definition does not compile");
        goto out;
    }
    size_t len;
    const char *body = req_body(req, &len);
    rc = hook_verify(h, req_header(req, hook_signature_header(h)), body, len,
                     clock_now_ms() / 1000, err, sizeof err);
    if (rc < 0) {
        reply_header(req, "WWW-Authenticate", "Signature");
        reply_error(req, rc, hook_signature_header(h), err);
        goto out;
    }
    rc = hook_items(h, body, len, &items, &n, event_id, req_header(req, hook_event_id_header(h)),
                    err, sizeof err);
    if (rc < 0) {
        reply_error(req, rc, NULL, err);
        goto out;
    }
    sub = submit_new(api->st, sh.tenant, api->cfg.submit_batch);
    if ((rc = submit_set_workflow(sub, hook_workflow(h))) < 0) {
        reply_errorf(req, rc, "workflow", "the hook's workflow '%.128s' no longer exists",
                     hook_workflow(h));
        goto out;
    }
    if (event_id[0]) {
        char key[STORE_NAME_MAX + HOOK_EVENT_ID_SIZE + 8];
        snprintf(key, sizeof key, "hook:%s:%s", sh.name, event_id);
        submit_set_idem_key(sub, key);
    }
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
    store_hook_release(&sh);
}
