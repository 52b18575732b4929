/* common.h - small helpers shared by the handlers: query and body parsing with 400
 * answers, list envelopes. */
#ifndef SLUICE_API_COMMON_H
#define SLUICE_API_COMMON_H

#include <stdint.h>

#include "api/api.h"
#include "api/params.h"
#include "util/buf.h"

static inline struct api *api_of(struct request *req)
{
    return req_app(req);
}

/* Reads integer query parameter name into *out (def when absent), within [min, max].
 * On a bad value replies 400 (target = name) and returns -1. */
int api_query_int(struct request *req, const char *name, int64_t def, int64_t min, int64_t max,
                  int64_t *out);
/* The request body as one JSON value (any value), refused with 400 InvalidJson when it
 * is not JSON, has duplicate keys or nests deeper than a submitted item may. Returns
 * a new reference (caller decrefs), or NULL after replying. */
json_t *api_json_body(struct request *req);
/* Renders one element of a page. */
typedef void (*api_render_fn)(struct buf *b, const void *elem, struct request *req);
/* Appends the cursor of nextLink for the last element shown ("cursor=17", "after=x"). */
typedef void (*api_cursor_fn)(struct buf *q, const void *elem);

/* Replies 200 with {"value": [...], "nextLink": ...}. elems[0..n) (each `size` bytes)
 * were fetched with limit + 1, so n > limit means another page exists: nextLink is
 * then this path with the cursor, "&limit=N" and extra_query (the filters, each
 * "&name=value", may be NULL). */
void api_reply_page(struct request *req, const void *elems, size_t n, size_t size, int64_t limit,
                    api_render_fn render, api_cursor_fn cursor, const char *extra_query);
/* The same, with the next page's query made by the caller: next_query ("cursor=...",
 * without limit and filters) when another page exists, else NULL. */
void api_reply_page_next(struct request *req, const void *elems, size_t n, size_t size,
                         int64_t limit, api_render_fn render, const char *next_query,
                         const char *extra_query);

/* The job monitor as handlers show it: with what the processing limits say of it. */
void api_render_job(struct request *req, struct buf *b, const struct store_job *j);
/* Answers a store result that holds no job named by the {id} path parameter: the
 * store's error (rc < 0) or 404 (rc == 0). Returns 1 when it replied, 0 when rc > 0
 * (there is a job: nothing is sent). */
int api_reply_no_job(struct request *req, int rc);
/* Answers a store call that read one job: api_reply_no_job, or (rc > 0) the job
 * monitor with status, and Retry-After: 1 while the job is not finished. job is
 * borrowed. */
void api_reply_job(struct request *req, int rc, const struct store_job *job, int status);

#endif
