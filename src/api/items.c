/* items.c - a job's items: pages, one item with its events, and the results stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/common.h"
#include "api/render.h"
#include "util/errors.h"
#include "util/url.h"
#include "util/xmalloc.h"

#define RESULTS_PAGE 1000

static void reply_no_job(struct request *req)
{
    reply_errorf(req, SLUICE_E_NOT_FOUND, "id", "no job '%.60s'", req_param(req, "id"));
}

static void page_item(struct buf *b, const void *e, struct request *req)
{
    (void)req;
    render_item(b, e, 0);
}

static void cursor_item(struct buf *q, const void *e)
{
    buf_printf(q, "cursor=%lld", (long long)((const struct store_item *)e)->index);
}

void api_items_list(struct request *req)
{
    int64_t limit, cursor;
    if (api_query_int(req, "limit", 100, 1, 1000, &limit) < 0 ||
        api_query_int(req, "cursor", -1, -1, UINT32_MAX, &cursor) < 0)
        return;
    int status = -1;
    const char *s = req_query(req, "status");
    if (s && (status = store_item_status_parse(s)) < 0) {
        reply_errorf(req, SLUICE_E_INVALID_PARAMETER, "status",
                     "status must be one of Pending, Processing, Succeeded, Failed, Skipped, "
                     "Canceled");
        return;
    }
    const char *ref = req_query(req, "ref");
    const char *step = req_query(req, "step"); /* the step that failed or skipped the item */
    const char *code = req_query(req, "code"); /* its error code */
    struct store_item *items = NULL;
    size_t n = 0;
    struct store_item_filter filter = {status, ref, step, code};
    int rc = store_item_list(api_of(req)->st, req_tenant(req), req_param(req, "id"), &filter,
                             cursor, (size_t)limit + 1, 0, &items, &n);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    if (rc == 0) {
        reply_no_job(req);
        return;
    }
    struct buf filters = BUF_INIT;
    if (s)
        buf_printf(&filters, "&status=%s", store_item_status_name(status));
    const char *names[3] = {"ref", "step", "code"}, *vals[3] = {ref, step, code};
    for (int i = 0; i < 3; i++)
        if (vals[i]) {
            buf_printf(&filters, "&%s=", names[i]);
            url_encode(&filters, vals[i]);
        }
    api_reply_page(req, items, n, sizeof *items, limit, page_item, cursor_item, filters.data);
    buf_release(&filters);
    store_items_free(items, n);
}

void api_items_get(struct request *req)
{
    int64_t idx;
    if (api_parse_index(req_param(req, "index"), &idx) < 0) {
        reply_error(req, SLUICE_E_INVALID_PARAMETER, "index",
                    "item index must be a non-negative integer (0-based input position)");
        return;
    }
    struct store_item it;
    memset(&it, 0, sizeof it);
    int rc = store_item_get(api_of(req)->st, req_tenant(req), req_param(req, "id"), idx, &it);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    if (rc == 0) {
        reply_errorf(req, SLUICE_E_NOT_FOUND, "index", "no item %lld in job '%.60s'",
                     (long long)idx, req_param(req, "id"));
        return;
    }
    struct buf b = BUF_INIT;
    render_item(&b, &it, 1);
    reply_buf(req, 200, "application/json", &b);
    buf_release(&b);
    store_item_release(&it);
}

/* The results stream reads the store a page at a time as the client drains it. */
struct results {
    struct store *st;
    char tenant[STORE_NAME_MAX];
    char job[STORE_ID_MAX];
    int64_t after;
    int eof;
    struct buf out;
    size_t off;
};

static int results_fill(struct results *r)
{
    struct store_item *items = NULL;
    size_t n = 0;
    struct store_item_filter filter = {-1, NULL, NULL, NULL};
    int rc =
        store_item_list(r->st, r->tenant, r->job, &filter, r->after, RESULTS_PAGE, 0, &items, &n);
    if (rc < 0)
        return rc;
    buf_reset(&r->out);
    r->off = 0;
    for (size_t i = 0; i < n; i++)
        render_result_line(&r->out, &items[i]);
    if (n > 0)
        r->after = items[n - 1].index;
    if (rc == 0 || n < RESULTS_PAGE)
        r->eof = 1;
    store_items_free(items, n);
    return rc;
}

static long results_read(void *ctx, char *out, size_t max)
{
    struct results *r = ctx;
    while (r->off == r->out.len) {
        if (r->eof)
            return 0;
        /* 0: the job was deleted between two pages. A clean end would pass a cut
         * stream off as all the results; the error aborts it (no final chunk). */
        if (results_fill(r) <= 0)
            return -1;
    }
    size_t n = r->out.len - r->off;
    if (n > max)
        n = max;
    memcpy(out, r->out.data + r->off, n);
    r->off += n;
    return (long)n;
}

static void results_free(void *ctx)
{
    struct results *r = ctx;
    buf_release(&r->out);
    free(r);
}

void api_items_results(struct request *req)
{
    struct results *r = xcalloc(1, sizeof *r);
    r->st = api_of(req)->st;
    snprintf(r->tenant, sizeof r->tenant, "%s", req_tenant(req));
    snprintf(r->job, sizeof r->job, "%s", req_param(req, "id"));
    r->after = -1;
    buf_init(&r->out);
    /* The first page is read now so an unknown job answers 404, not an empty stream. */
    int rc = results_fill(r);
    if (rc <= 0) {
        results_free(r);
        if (rc < 0)
            reply_error(req, rc, NULL, NULL);
        else
            reply_no_job(req);
        return;
    }
    reply_stream(req, 200, "application/x-ndjson", results_read, r, results_free);
}
