/* render.c - JSON rendering of jobs, items, results, documents, validateOnly reports and
 * callback deliveries; see render.h. */
#include "api/render.h"

#include <string.h>

#include "engine/callbacks.h"
#include "engine/limits.h"
#include "engine/pipeline.h"
#include "util/clock.h"
#include "util/events.h"

static void key(struct buf *b, const char *k)
{
    buf_printf(b, "\"%s\":", k);
}

static void time_field(struct buf *b, const char *k, int64_t ms)
{
    char ts[25];
    key(b, k);
    if (ms > 0)
        buf_printf(b, "\"%s\"", clock_fmt_ms(ms, ts));
    else
        buf_puts(b, "null");
}

static void str_field(struct buf *b, const char *k, const char *v)
{
    key(b, k);
    if (v)
        buf_json_str(b, v, strlen(v));
    else
        buf_puts(b, "null");
}

/* The same two after an earlier field: with the comma before them. */
static void and_str_field(struct buf *b, const char *k, const char *v)
{
    buf_putc(b, ',');
    str_field(b, k, v);
}

static void and_time_field(struct buf *b, const char *k, int64_t ms)
{
    buf_putc(b, ',');
    time_field(b, k, ms);
}

int render_job_terminal(int status)
{
    return status == JOB_SUCCEEDED || status == JOB_FAILED || status == JOB_CANCELED;
}

/* Where the job is, finer than its status: Queued (not started: waiting for a worker
 * or for its tenant's active-job cap), Processing, Throttled (a processing limit held
 * it back in the last seconds), Canceling, Completed. */
static const char *phase(const struct store_job *j, const struct limits_throttle *th)
{
    if (j->staging) /* a retry whose items are still being copied */
        return "Staging";
    switch (j->status) {
    case JOB_NOT_STARTED:
        return "Queued";
    case JOB_RUNNING:
        return th ? "Throttled" : "Processing";
    case JOB_CANCELING:
        return "Canceling";
    default:
        return "Completed";
    }
}

void render_job(struct buf *b, const struct store_job *j, const char *base_url, int64_t now)
{
    render_job_throttled(b, j, base_url, now, NULL);
}

void render_job_throttled(struct buf *b, const struct store_job *j, const char *base_url,
                          int64_t now, const struct limits_throttle *th)
{
    const struct store_counts *c = &j->counts;
    int64_t done = c->succeeded + c->failed + c->skipped;
    int64_t finished = done + c->canceled;
    int terminal = render_job_terminal(j->status);
    double rate = 0;
    if (terminal) {
        if (j->completed_at > j->started_at && j->started_at > 0)
            rate = (double)done * 1000.0 / (double)(j->completed_at - j->started_at);
    } else if (j->win_at > 0 && now > j->win_at) {
        rate = (double)(done - j->win_done) * 1000.0 / (double)(now - j->win_at);
    } else if (j->started_at > 0 && now > j->started_at) {
        rate = (double)done * 1000.0 / (double)(now - j->started_at);
    }
    if (rate < 0)
        rate = 0;

    buf_putc(b, '{');
    str_field(b, "id", j->id);
    and_str_field(b, "status", store_job_status_name(j->status));
    and_str_field(b, "phase", phase(j, th));
    and_str_field(b, "workflow", j->workflow);
    and_str_field(b, "clientReference", j->client_reference);
    if (j->status == JOB_SUCCEEDED)
        buf_printf(b, ",\"outcome\":\"%s\"",
                   j->outcome == OUTCOME_PARTIALLY_SUCCEEDED ? "PartiallySucceeded"
                                                             : "AllSucceeded");
    if (j->status == JOB_FAILED) {
        buf_puts(b, ",\"error\":{\"code\":");
        const char *code = j->error_code[0] ? j->error_code : "AllItemsFailed";
        buf_json_str(b, code, strlen(code));
        buf_printf(b, ",\"message\":\"all %lld items failed; see the failed items\"}",
                   (long long)c->total);
    } else if (j->status == JOB_CANCELED) {
        /* A generic poller (an LRO client) reports why it stopped from this. */
        buf_printf(b,
                   ",\"error\":{\"code\":\"Canceled\",\"message\":\"the job was canceled; "
                   "%lld of its %lld items were not processed (counts.canceled)\"}",
                   (long long)c->canceled, (long long)c->total);
    }
    buf_printf(
        b,
        ",\"counts\":{\"total\":%lld,\"pending\":%lld,\"processing\":%lld,\"succeeded\":%lld,"
        "\"failed\":%lld,\"skipped\":%lld,\"canceled\":%lld}",
        (long long)c->total, (long long)c->pending, (long long)c->processing,
        (long long)c->succeeded, (long long)c->failed, (long long)c->skipped,
        (long long)c->canceled);
    buf_printf(b, ",\"priority\":%d", j->priority);
    if (j->workflow_version > 0)
        buf_printf(b, ",\"workflowVersion\":%lld", (long long)j->workflow_version);
    if (j->parent_job[0])
        buf_printf(b, ",\"parentJob\":\"%s\"", j->parent_job);
    if (j->steps) {
        /* Where a pipeline loses items: per step, how many passed, failed, skipped. */
        buf_puts(b, ",\"steps\":[");
        for (size_t i = 0; i < j->nsteps; i++) {
            const struct store_step_count *sc = &j->steps[i];
            buf_printf(b, "%s{\"name\":", i ? "," : "");
            buf_json_str(b, sc->step, strlen(sc->step));
            buf_printf(b, ",\"passed\":%lld,\"failed\":%lld,\"skipped\":%lld}",
                       (long long)sc->passed, (long long)sc->failed, (long long)sc->skipped);
        }
        buf_putc(b, ']');
    }
    double pct = c->total ? 100.0 * (double)finished / (double)c->total : 100.0;
    buf_printf(b, ",\"percentComplete\":%.1f", pct);
    buf_printf(b, ",\"throughput\":{\"itemsPerSecond\":%.1f", rate);
    double eta_rate = rate;
    if (th && !terminal) {
        /* Which limit holds the job back; the ETA goes at most at the limit's pace. */
        buf_puts(b, ",\"throttledBy\":{");
        str_field(b, "limit", th->name);
        and_str_field(b, "scope", th->scope);
        and_str_field(b, "key", th->key);
        and_str_field(b, "reason", th->reason);
        if (th->host[0]) /* the upstream whose Retry-After (or learned limit) holds it */
            and_str_field(b, "host", th->host);
        if (th->source[0]) /* reason "learned": the header family it was learned from */
            and_str_field(b, "source", th->source);
        if (th->items_per_s > 0) {
            buf_printf(b, ",\"itemsPerSecond\":%.3f", th->items_per_s);
            if (eta_rate <= 0 || eta_rate > th->items_per_s)
                eta_rate = th->items_per_s;
        }
        and_time_field(b, "at", th->at);
        buf_putc(b, '}');
    }
    buf_puts(b, "},");
    int64_t remaining = c->pending + c->processing;
    if (!terminal && eta_rate > 0 && remaining > 0)
        time_field(b, "estimatedCompletionAt",
                   now + (int64_t)((double)remaining * 1000.0 / eta_rate));
    else
        time_field(b, "estimatedCompletionAt", 0); /* unknown, or done */
    and_time_field(b, "createdAt", j->created_at);
    and_time_field(b, "startedAt", j->started_at);
    and_time_field(b, "lastProgressAt", j->last_progress_at);
    and_time_field(b, "completedAt", j->completed_at);
    if (terminal && j->expires_at > 0) /* retention: the janitor removes it after this */
        and_time_field(b, "expiresAt", j->expires_at);
    buf_printf(b,
               ",\"links\":{\"self\":\"%s/v1/jobs/%s\",\"items\":\"%s/v1/jobs/%s/items\","
               "\"failedItems\":\"%s/v1/jobs/%s/items?status=Failed\","
               "\"results\":\"%s/v1/jobs/%s/results\",\"cancel\":\"%s/v1/jobs/%s:cancel\"}}",
               base_url, j->id, base_url, j->id, base_url, j->id, base_url, j->id, base_url, j->id);
}

static void error_obj(struct buf *b, const struct store_item *it)
{
    buf_puts(b, ",\"error\":");
    if (!it->error_code[0]) {
        buf_puts(b, "null");
        return;
    }
    buf_puts(b, "{\"code\":");
    buf_json_str(b, it->error_code, strlen(it->error_code));
    buf_puts(b, ",\"message\":");
    const char *m = it->error_message ? it->error_message : "";
    buf_json_str(b, m, strlen(m));
    buf_putc(b, '}');
}

void render_item(struct buf *b, const struct store_item *it, int detail)
{
    buf_printf(b, "{\"index\":%lld,", (long long)it->index);
    str_field(b, "ref", it->ref);
    and_str_field(b, "status", store_item_status_name(it->status));
    buf_printf(b, ",\"attempts\":%d", it->attempts);
    error_obj(b, it);
    if (it->failed_step[0]) {
        buf_puts(b, ",\"failedStep\":");
        buf_json_str(b, it->failed_step, strlen(it->failed_step));
    }
    if (it->warnings)
        buf_printf(b, ",\"warnings\":%s", it->warnings);
    if (it->parent_index >= 0)
        buf_printf(b, ",\"parentIndex\":%lld", (long long)it->parent_index);
    buf_printf(b, ",\"result\":%s,", it->result ? it->result : "null");
    time_field(b, "createdAt", it->created_at);
    and_time_field(b, "updatedAt", it->updated_at);
    if (detail) {
        buf_printf(b, ",\"data\":%s", it->data ? it->data : "null");
        char ts[25];
        buf_printf(b,
                   ",\"events\":[{\"at\":\"%s\",\"stage\":\"accept\",\"level\":\"info\","
                   "\"code\":\"Accepted\",\"message\":\"stored with the job\"}",
                   clock_fmt_ms(it->created_at, ts));
        /* Stored events are a JSON array: splice its elements after ours. */
        const char *ev = it->events;
        if (ev) {
            while (*ev == ' ' || *ev == '\n')
                ev++;
            if (*ev == '[' && ev[1] != ']') {
                buf_putc(b, ',');
                buf_puts(b, ev + 1);
                while (b->len && b->data[b->len - 1] != ']')
                    b->len--;
                b->len--; /* drop the stored array's ']' */
            }
        }
        buf_puts(b, "]");
    }
    buf_putc(b, '}');
}

void render_result_line(struct buf *b, const struct store_item *it)
{
    buf_printf(b, "{\"index\":%lld,\"ref\":", (long long)it->index);
    buf_json_str(b, it->ref, strlen(it->ref));
    buf_printf(b, ",\"status\":\"%s\"", store_item_status_name(it->status));
    if (it->result)
        buf_printf(b, ",\"result\":%s", it->result);
    if (it->error_code[0])
        error_obj(b, it);
    if (it->failed_step[0]) {
        buf_puts(b, ",\"failedStep\":");
        buf_json_str(b, it->failed_step, strlen(it->failed_step));
    }
    buf_puts(b, "}\n");
}

void render_doc(struct buf *b, const struct store_doc *d)
{
    buf_putc(b, '{');
    str_field(b, "ref", d->ref);
    buf_printf(b, ",\"data\":%s,\"version\":%lld,", d->data ? d->data : "null",
               (long long)d->version);
    time_field(b, "updatedAt", d->updated_at);
    and_str_field(b, "lastJob", d->job_id[0] ? d->job_id : NULL);
    if (d->item_index >= 0)
        buf_printf(b, ",\"lastItem\":%lld}", (long long)d->item_index);
    else
        buf_puts(b, ",\"lastItem\":null}");
}

void render_run(struct buf *b, const char *ref, int validate_only,
                const struct pipeline_result *res)
{
    buf_puts(b, "{\"ref\":");
    buf_json_str(b, ref, strlen(ref));
    buf_printf(b, ",\"status\":\"%s\"", store_item_status_name(res->status));
    if (validate_only)
        buf_puts(b, ",\"validateOnly\":true");
    if (res->error_code) {
        buf_puts(b, ",\"error\":{\"code\":");
        buf_json_str(b, res->error_code, strlen(res->error_code));
        buf_puts(b, ",\"message\":");
        buf_json_str(b, res->error_message, strlen(res->error_message));
        buf_puts(b, "}");
    }
    buf_printf(b, ",\"result\":%s,\"warnings\":%s,\"events\":", res->result ? res->result : "null",
               res->warnings ? res->warnings : "[]");
    events_expand(b, res->events); /* the engine writes them compact (util/events.h) */
    buf_putc(b, '}');
}

void render_invalid_item(struct buf *b, uint64_t index, const char *ref, size_t ref_len,
                         const struct pipeline_result *res)
{
    buf_printf(b, "{\"index\":%llu,\"ref\":", (unsigned long long)index);
    buf_json_str(b, ref, ref_len);
    buf_puts(b, ",\"error\":{\"code\":");
    buf_json_str(b, res->error_code, strlen(res->error_code));
    buf_puts(b, ",\"message\":");
    buf_json_str(b, res->error_message, strlen(res->error_message));
    buf_puts(b, "},\"failedStep\":");
    buf_json_str(b, res->failed_step, strlen(res->failed_step));
    buf_printf(b, ",\"status\":\"%s\"}", store_item_status_name(res->status));
}

void render_validate_report(struct buf *b, const char *workflow, int64_t total, int64_t invalid,
                            const char *invalid_items, int truncated)
{
    buf_puts(b, "{\"validateOnly\":true,\"workflow\":");
    buf_json_str(b, workflow, strlen(workflow));
    buf_printf(b,
               ",\"counts\":{\"total\":%lld,\"valid\":%lld,\"invalid\":%lld},"
               "\"invalidItems\":[%s],\"truncated\":%s}",
               (long long)total, (long long)(total - invalid), (long long)invalid, invalid_items,
               truncated ? "true" : "false");
}

void render_delivery(struct buf *b, const struct store_delivery *d)
{
    char ts[25];
    buf_puts(b, "{\"id\":");
    buf_json_str(b, d->id, strlen(d->id));
    buf_puts(b, ",\"event\":");
    buf_json_str(b, d->event, strlen(d->event));
    buf_puts(b, ",\"url\":");
    buf_json_str(b, d->url ? d->url : "", d->url ? strlen(d->url) : 0);
    buf_printf(b, ",\"state\":\"%s\",\"attemptCount\":%d,\"createdAt\":\"%s\"",
               store_delivery_state_name(d->state), d->attempts, clock_fmt_ms(d->created_at, ts));
    if (d->state == DELIVERY_PENDING)
        buf_printf(b, ",\"nextAttemptAt\":\"%s\"", clock_fmt_ms(d->next_at, ts));
    else
        buf_puts(b, ",\"nextAttemptAt\":null");
    buf_printf(b, ",\"updatedAt\":\"%s\",\"attempts\":%s}", clock_fmt_ms(d->updated_at, ts),
               d->log ? d->log : "[]");
}

/* "secret" and "standardWebhooksSecret" of one key (no braces). */
static void render_callback_key(struct buf *b, const struct callbacks_key *k)
{
    buf_puts(b, "\"secret\":");
    buf_json_str(b, k->secret, strlen(k->secret));
    buf_puts(b, ",\"standardWebhooksSecret\":");
    buf_json_str(b, k->whsec, strlen(k->whsec));
}

void render_callbacks_secret(struct buf *b, const struct callbacks_signer *sg)
{
    char ts[32];
    buf_putc(b, '{');
    render_callback_key(b, &sg->cur);
    buf_puts(b, ",\"algorithm\":\"HMAC-SHA256\",\"header\":\"Sluice-Signature\"");
    if (sg->has_prev) {
        buf_puts(b, ",\"previous\":{");
        render_callback_key(b, &sg->prev);
        buf_printf(b, ",\"expiresAt\":\"%s\"}", clock_fmt_ms(sg->prev_until, ts));
    }
    buf_putc(b, '}');
}

void render_callback_settings(struct buf *b, const char *format)
{
    buf_puts(b, "{\"format\":");
    buf_json_str(b, format, strlen(format));
    buf_putc(b, '}');
}
