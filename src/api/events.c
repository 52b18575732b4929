/* events.c - following a job without polling: long polls and Server-Sent Events.
 *
 * GET /v1/jobs/{id}?wait=N parks the request until the job's status changes or it
 * ends, or N seconds pass (waiters.c resumes it), then answers the monitor as a
 * plain GET would. GET /v1/jobs/{id}/events streams text/event-stream:
 *   event: progress       the job monitor, when it changed, at most once a second
 *                         (and every 15 s as a heartbeat)
 *   event: items.failed   {"items": [...]} newly failed items, up to 100 per event
 *   event: job.succeeded | job.failed | job.canceled   the final monitor; then the
 *                         stream ends
 * Every event's id is the index of the last failed item reported (-1 before any), so
 * a client reconnecting with Last-Event-ID gets only failures it has not seen. A
 * stream ends after 5 minutes; EventSource clients reconnect by themselves. Between
 * events the connection is suspended: no server thread waits for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/common.h"
#include "api/render.h"
#include "api/slots.h"
#include "api/waiters.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/xmalloc.h"

#define STREAM_MAX_MS (5 * 60 * 1000)
#define HEARTBEAT_MS 15000
#define FAILED_BATCH 100

/* ---- parked slots --------------------------------------------------------------------
 * A long poll or a stream holds its connection for up to minutes: each takes one of
 * --max-parked slots, a tenant at most its share (api/slots.h), given back when the
 * request ends however it ends. */

static void give_parked(struct request *req)
{
    slots_give(api_of(req)->slots, SLOT_PARKED, req_tenant(req));
}

/* Takes a parked slot for req. Returns 0, or -1 after replying 429 (the tenant holds
 * its share) or 503 (all slots taken), or when reply is 0, without replying. */
static int take_parked(struct request *req, int reply)
{
    struct api *api = api_of(req);
    if (!api->slots)
        return 0;
    int rc = slots_take(api->slots, SLOT_PARKED, req_tenant(req));
    if (rc == 0) {
        req_at_end(req, give_parked);
        return 0;
    }
    if (!reply)
        return -1;
    reply_header(req, "Retry-After", "5");
    if (rc == -SLUICE_E_TENANT_SHARE)
        reply_errorf(req, rc, NULL,
                     "this tenant has %u event streams and long polls open, its share of this "
                     "server's %u; close one or retry later",
                     slots_tenant_cap(api->slots, SLOT_PARKED), api->cfg.max_parked);
    else
        reply_errorf(req, rc, NULL,
                     "%u event streams and long polls are open, the most this server holds; "
                     "retry later",
                     api->cfg.max_parked);
    return -1;
}

/* ---- long polling ------------------------------------------------------------------ */

static void get_resumed(struct request *req)
{
    struct store_job job;
    memset(&job, 0, sizeof job);
    int rc = store_job_get(api_of(req)->st, req_tenant(req), req_param(req, "id"), &job);
    api_reply_job(req, rc, &job, 200);
    store_job_release(&job);
}

void api_jobs_get(struct request *req)
{
    struct api *api = api_of(req);
    int64_t wait;
    if (api_query_int(req, "wait", 0, 0, 60, &wait) < 0)
        return;
    struct store_job job;
    memset(&job, 0, sizeof job);
    int rc = store_job_get(api->st, req_tenant(req), req_param(req, "id"), &job);
    if (rc == 1 && wait > 0 && !render_job_terminal(job.status) && !waiters_closing(api->waiters)) {
        int status = job.status;
        store_job_release(&job);
        if (take_parked(req, 1) < 0)
            return;
        req_park(req, get_resumed);
        waiters_add(api->waiters, req, WAIT_CHANGE, req_tenant(req), req_param(req, "id"), status,
                    clock_now_ms() + wait * 1000);
        return;
    }
    api_reply_job(req, rc, &job, 200);
    store_job_release(&job);
}

/* ---- Prefer: wait=N on submit -------------------------------------------------------- */

/* The seconds of a "wait=N" preference (RFC 7240), 0 when absent or out of range. */
static int64_t preferred_wait(struct request *req)
{
    return api_parse_prefer_wait(req_header(req, "Prefer"), 60);
}

static void submit_resumed(struct request *req)
{
    struct api *api = api_of(req);
    struct store_job job;
    memset(&job, 0, sizeof job);
    int rc = store_job_get(api->st, req_tenant(req), req_note(req), &job);
    if (rc <= 0) {
        api_reply_job(req, rc, &job, 200);
        store_job_release(&job);
        return;
    }
    struct buf b = BUF_INIT, loc = BUF_INIT;
    buf_printf(&loc, "%s/v1/jobs/%s", req_base_url(req), job.id);
    reply_header(req, "Location", loc.data);
    reply_header(req, "Operation-Location", loc.data);
    int done = render_job_terminal(job.status);
    if (done) {
        char pref[32];
        snprintf(pref, sizeof pref, "wait=%lld", (long long)preferred_wait(req));
        reply_header(req, "Preference-Applied", pref);
    } else {
        reply_header(req, "Retry-After", "1");
    }
    api_render_job(req, &b, &job);
    reply_buf(req, done ? 200 : 202, "application/json", &b);
    buf_release(&b);
    buf_release(&loc);
    store_job_release(&job);
}

int api_prefer_wait(struct request *req, const struct store_job *job)
{
    struct api *api = api_of(req);
    int64_t wait = preferred_wait(req);
    if (wait <= 0 || waiters_closing(api->waiters))
        return 0;
    /* The job exists now: past the tenant's share the preference is just not applied
     * (RFC 7240 lets a server ignore it), the client gets its 202 at once. */
    if (take_parked(req, 0) < 0)
        return 0;
    req_set_note(req, job->id);
    req_park(req, submit_resumed);
    waiters_add(api->waiters, req, WAIT_TERMINAL, req_tenant(req), job->id, job->status,
                clock_now_ms() + wait * 1000);
    return 1;
}

/* ---- Server-Sent Events ------------------------------------------------------------- */

struct sse {
    struct request *req;
    struct api *api;
    char tenant[STORE_NAME_MAX];
    char job[STORE_ID_MAX];
    int64_t failed_after; /* index of the last failed item sent */
    int64_t started, last_progress;
    char last_sig[200]; /* status and counts of the last progress event */
    int done;
    struct buf out;
    size_t off;
};

static void emit(struct sse *s, const char *event, const char *data, size_t len)
{
    buf_printf(&s->out, "id: %lld\nevent: %s\ndata: ", (long long)s->failed_after, event);
    buf_append(&s->out, data, len);
    buf_puts(&s->out, "\n\n");
}

/* Fills s->out with whatever is new. Returns 0, or -1 on a store error. */
static int sse_fill(struct sse *s)
{
    struct store_job job;
    memset(&job, 0, sizeof job);
    int rc = store_job_get(s->api->st, s->tenant, s->job, &job);
    if (rc <= 0) {
        store_job_release(&job);
        if (rc == 0) { /* deleted while watched */
            static const char gone[] = "{\"error\":{\"code\":\"NotFound\",\"message\":\"the job "
                                       "was deleted\",\"target\":\"id\"}}";
            emit(s, "error", gone, sizeof gone - 1);
            s->done = 1;
            return 0;
        }
        return -1;
    }
    int64_t now = clock_now_ms();
    /* New failures first, so a client sees them before the counts that include them. */
    struct store_item *items = NULL;
    size_t n = 0;
    struct store_item_filter f = {ITEM_FAILED, NULL, NULL, NULL};
    rc = store_item_list(s->api->st, s->tenant, s->job, &f, s->failed_after, FAILED_BATCH, 0,
                         &items, &n);
    if (rc > 0 && n > 0) {
        struct buf d = BUF_INIT;
        buf_puts(&d, "{\"items\":[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_putc(&d, ',');
            render_item(&d, &items[i], 0);
        }
        buf_puts(&d, "]}");
        s->failed_after = items[n - 1].index;
        emit(s, "items.failed", d.data, d.len);
        buf_release(&d);
    }
    store_items_free(items, n);
    struct buf mon = BUF_INIT;
    api_render_job(s->req, &mon, &job);
    char sig[200];
    const struct store_counts *c = &job.counts;
    snprintf(sig, sizeof sig, "%d/%lld/%lld/%lld/%lld/%lld/%lld", job.status, (long long)c->pending,
             (long long)c->processing, (long long)c->succeeded, (long long)c->failed,
             (long long)c->skipped, (long long)c->canceled);
    int terminal = render_job_terminal(job.status);
    if (terminal && n < FAILED_BATCH) {
        const char *name = job.status == JOB_SUCCEEDED ? "job.succeeded"
                           : job.status == JOB_FAILED  ? "job.failed"
                                                       : "job.canceled";
        emit(s, name, mon.data, mon.len);
        s->done = 1;
    } else if ((strcmp(sig, s->last_sig) != 0 && now - s->last_progress >= 1000) ||
               now - s->last_progress >= HEARTBEAT_MS) {
        emit(s, "progress", mon.data, mon.len);
        snprintf(s->last_sig, sizeof s->last_sig, "%s", sig);
        s->last_progress = now;
    }
    if (!s->done && now - s->started >= STREAM_MAX_MS)
        s->done = 1; /* the client reconnects with Last-Event-ID */
    buf_release(&mon);
    store_job_release(&job);
    return 0;
}

static long sse_read(void *ctx, char *out, size_t max)
{
    struct sse *s = ctx;
    if (s->off == s->out.len) {
        buf_reset(&s->out);
        s->off = 0;
        if (s->done)
            return 0;
        if (sse_fill(s) < 0)
            return -1;
        if (s->out.len == 0) {
            /* Nothing new: leave the event loop until the next tick. */
            req_suspend_stream(s->req);
            waiters_add(s->api->waiters, s->req, WAIT_TICK, s->tenant, s->job, 0,
                        clock_now_ms() + 1000);
            return REPLY_READER_SUSPENDED;
        }
    }
    size_t n = s->out.len - s->off;
    if (n > max)
        n = max;
    memcpy(out, s->out.data + s->off, n);
    s->off += n;
    return (long)n;
}

static void sse_free(void *ctx)
{
    struct sse *s = ctx;
    buf_release(&s->out);
    free(s);
}

void api_jobs_events(struct request *req)
{
    struct api *api = api_of(req);
    struct store_job job;
    memset(&job, 0, sizeof job);
    int rc = store_job_get(api->st, req_tenant(req), req_param(req, "id"), &job);
    store_job_release(&job);
    if (rc <= 0) {
        api_reply_job(req, rc, &job, 200);
        return;
    }
    if (take_parked(req, 1) < 0)
        return;
    struct sse *s = xcalloc(1, sizeof *s);
    s->req = req;
    s->api = api;
    snprintf(s->tenant, sizeof s->tenant, "%s", req_tenant(req));
    snprintf(s->job, sizeof s->job, "%s", req_param(req, "id"));
    s->failed_after = -1;
    const char *last = req_header(req, "Last-Event-ID");
    int64_t v;
    if (last && api_parse_int(last, -1, (int64_t)UINT32_MAX - 1, &v) == 0)
        s->failed_after = v; /* anything else: from the start */
    s->started = clock_now_ms();
    s->last_progress = 0;
    buf_init(&s->out);
    reply_header(req, "Cache-Control", "no-cache");
    reply_header(req, "X-Accel-Buffering", "no");
    reply_stream(req, 200, "text/event-stream", sse_read, s, sse_free);
}
