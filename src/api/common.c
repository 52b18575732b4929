/* common.c - helpers shared by handlers; see common.h. */
#include "api/common.h"

#include "api/render.h"
#include "engine/limits.h"
#include "util/clock.h"
#include "util/errors.h"

int api_query_int(struct request *req, const char *name, int64_t def, int64_t min, int64_t max,
                  int64_t *out)
{
    const char *v = req_query(req, name);
    if (!v) {
        *out = def;
        return 0;
    }
    if (api_parse_int(v, min, max, out) < 0) {
        reply_errorf(req, SLUICE_E_INVALID_PARAMETER, name,
                     "%s must be an integer from %lld to %lld", name, (long long)min,
                     (long long)max);
        return -1;
    }
    return 0;
}

json_t *api_json_body(struct request *req)
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

static void list_begin(struct buf *b)
{
    buf_puts(b, "{\"value\":[");
}

static void list_end(struct buf *b, struct request *req, const char *next_query)
{
    buf_putc(b, ']');
    if (next_query) {
        buf_printf(b, ",\"nextLink\":");
        struct buf link = BUF_INIT;
        buf_printf(&link, "%s%s?%s", req_base_url(req), req_path(req), next_query);
        buf_json_str(b, link.data, link.len);
        buf_release(&link);
    }
    buf_putc(b, '}');
}

void api_reply_page_next(struct request *req, const void *elems, size_t n, size_t size,
                         int64_t limit, api_render_fn render, const char *next_query,
                         const char *extra_query)
{
    struct buf b = BUF_INIT, next = BUF_INIT;
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    const char *base = elems;
    list_begin(&b);
    for (size_t i = 0; i < shown; i++) {
        if (i)
            buf_putc(&b, ',');
        render(&b, base + i * size, req);
    }
    if (n > shown && next_query) {
        buf_puts(&next, next_query);
        buf_printf(&next, "&limit=%lld%s", (long long)limit, extra_query ? extra_query : "");
    }
    list_end(&b, req, next.data);
    reply_buf(req, 200, "application/json", &b);
    buf_release(&b);
    buf_release(&next);
}

void api_reply_page(struct request *req, const void *elems, size_t n, size_t size, int64_t limit,
                    api_render_fn render, api_cursor_fn cursor, const char *extra_query)
{
    struct buf q = BUF_INIT;
    if (n > (size_t)limit)
        cursor(&q, (const char *)elems + ((size_t)limit - 1) * size);
    api_reply_page_next(req, elems, n, size, limit, render, q.data, extra_query);
    buf_release(&q);
}

void api_render_job(struct request *req, struct buf *b, const struct store_job *j)
{
    struct limits_throttle th;
    struct api *api = api_of(req);
    int held = api->limits && limits_job_throttle(api->limits, j->id, &th);
    render_job_throttled(b, j, req_base_url(req), clock_now_ms(), held ? &th : NULL);
}

int api_reply_no_job(struct request *req, int rc)
{
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else if (rc == 0)
        reply_errorf(req, SLUICE_E_NOT_FOUND, "id", "no job '%.60s'", req_param(req, "id"));
    return rc <= 0;
}

void api_reply_job(struct request *req, int rc, const struct store_job *job, int status)
{
    if (api_reply_no_job(req, rc))
        return;
    if (!render_job_terminal(job->status))
        reply_header(req, "Retry-After", "1");
    struct buf b = BUF_INIT;
    api_render_job(req, &b, job);
    reply_buf(req, status, "application/json", &b);
    buf_release(&b);
}
