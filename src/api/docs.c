/* docs.c - /v1/collections: synchronous single-document reads and writes.
 * Writes go through the same store function as bulk items (store_doc_write), so a
 * document changed by a job and by a single request follows one set of rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/common.h"
#include "api/render.h"
#include "spec/workflow.h"
#include "util/errors.h"
#include "util/url.h"

/* Checks {collection} and {ref}; replies 400 and returns -1 when invalid. */
static int check_names(struct request *req, int with_ref)
{
    const char *c = req_param(req, "collection");
    if (!c || !wfdef_collection_valid(c)) {
        reply_error(req, SLUICE_E_INVALID_PARAMETER, "collection",
                    "collection names are 1 to 64 characters of A-Z a-z 0-9 _ -");
        return -1;
    }
    if (with_ref) {
        const char *r = req_param(req, "ref");
        size_t n = r ? strlen(r) : 0;
        if (n == 0 || n > 256) {
            reply_error(req, SLUICE_E_INVALID_PARAMETER, "ref", "ref must be 1 to 256 bytes");
            return -1;
        }
    }
    return 0;
}

static void reply_doc(struct request *req, int status, struct store_doc *d)
{
    char etag[40];
    snprintf(etag, sizeof etag, "\"%lld\"", (long long)d->version);
    reply_header(req, "ETag", etag);
    struct buf b = BUF_INIT;
    render_doc(&b, d);
    reply_buf(req, status, "application/json", &b);
    buf_release(&b);
}

void api_docs_get(struct request *req)
{
    if (check_names(req, 1) < 0)
        return;
    struct store_doc d;
    memset(&d, 0, sizeof d);
    int rc = store_doc_get(api_of(req)->st, req_tenant(req), req_param(req, "collection"),
                           req_param(req, "ref"), &d);
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else if (rc == 0)
        reply_errorf(req, SLUICE_E_DOCUMENT_NOT_FOUND, "ref", "no document '%.80s' in '%s'",
                     req_param(req, "ref"), req_param(req, "collection"));
    else
        reply_doc(req, 200, &d);
    store_doc_release(&d);
}

/* What if_match answers besides a version. */
enum { IF_MATCH_ABSENT = -1, IF_MATCH_REPLIED = -2 };

/* If-Match: "N", W/"N" or N; absent = IF_MATCH_ABSENT. Replies 400 and returns
 * IF_MATCH_REPLIED when unparsable. */
static int64_t if_match(struct request *req)
{
    const char *h = req_header(req, "If-Match");
    if (!h)
        return IF_MATCH_ABSENT;
    int64_t v;
    if (api_parse_if_match(h, &v) < 0) {
        reply_error(req, SLUICE_E_INVALID_PARAMETER, "If-Match",
                    "If-Match must be an ETag returned by this API, e.g. \"3\"");
        return IF_MATCH_REPLIED;
    }
    return v;
}

/* If-None-Match on a write: only "*" means something here, "only if there is no
 * current document" (RFC 9110 13.1.2: create only). 1 present, 0 absent; replies 400
 * and returns -1 for anything else, since ignoring it would overwrite what the client
 * asked us to keep. */
static int if_none_match(struct request *req)
{
    const char *h = req_header(req, "If-None-Match");
    if (!h)
        return 0;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n == 1 && h[0] == '*')
        return 1;
    reply_error(req, SLUICE_E_INVALID_PARAMETER, "If-None-Match",
                "If-None-Match on a write must be *, to create the document only if it does "
                "not exist");
    return -1;
}

static void write_doc(struct request *req, enum store_op op)
{
    if (check_names(req, 1) < 0)
        return;
    int64_t match = if_match(req);
    if (match == IF_MATCH_REPLIED)
        return;
    int none_match = if_none_match(req);
    if (none_match < 0)
        return;
    if (none_match && match > 0) {
        /* "is version N" and "does not exist" never hold together (RFC 9110 13.2.2
         * evaluates If-Match first, and either fails). */
        reply_error(req, SLUICE_E_PRECONDITION_FAILED, "If-None-Match",
                    "If-Match and If-None-Match: * cannot both hold");
        return;
    }
    if (none_match)
        match = 0; /* the store's create-only: version 0 is "no live document" */
    size_t len = 0;
    const char *body = NULL;
    if (op != STORE_OP_DELETE) {
        body = req_body(req, &len);
        struct ingest_error e;
        struct api *api = api_of(req);
        if (len > api->cfg.limits.max_item_bytes) {
            reply_errorf(req, SLUICE_E_ITEM_TOO_LARGE, NULL, "documents are limited to %zu bytes",
                         api->cfg.limits.max_item_bytes);
            return;
        }
        if (ingest_validate_json(body, len, api->cfg.limits.max_depth, &e) < 0) {
            reply_error(req, SLUICE_E_INVALID_JSON, NULL, e.message[0] ? e.message : NULL);
            return;
        }
    }
    struct store_doc d;
    memset(&d, 0, sizeof d);
    int created = 0;
    int rc = store_doc_write(api_of(req)->st, req_tenant(req), req_param(req, "collection"),
                             req_param(req, "ref"), op, body, len, match, &d, &created);
    if (rc == -SLUICE_E_DOCUMENT_NOT_FOUND)
        reply_errorf(req, rc, "ref", "no document '%.80s' in '%s'", req_param(req, "ref"),
                     req_param(req, "collection"));
    else if (rc == -SLUICE_E_PRECONDITION_FAILED && none_match)
        reply_errorf(req, rc, "If-None-Match", "document '%.80s' already exists in '%s'",
                     req_param(req, "ref"), req_param(req, "collection"));
    else if (rc == -SLUICE_E_PRECONDITION_FAILED)
        reply_error(req, rc, "If-Match", NULL);
    else if (rc == -SLUICE_E_ITEM_TOO_LARGE)
        reply_errorf(req, rc, NULL, "documents are limited to %zu bytes; the %s would pass it",
                     api_of(req)->cfg.limits.max_item_bytes,
                     op == STORE_OP_PATCH ? "merged document" : "document");
    else if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else if (op == STORE_OP_DELETE)
        reply_empty(req, 204);
    else
        reply_doc(req, created ? 201 : 200, &d);
    store_doc_release(&d);
}

void api_docs_put(struct request *req)
{
    write_doc(req, STORE_OP_UPSERT);
}

void api_docs_patch(struct request *req)
{
    write_doc(req, STORE_OP_PATCH);
}

void api_docs_delete(struct request *req)
{
    write_doc(req, STORE_OP_DELETE);
}

static void page_doc(struct buf *b, const void *e, struct request *req)
{
    (void)req;
    render_doc(b, e);
}

static void cursor_doc(struct buf *q, const void *e)
{
    buf_puts(q, "after=");
    url_encode(q, ((const struct store_doc *)e)->ref);
}

void api_docs_list(struct request *req)
{
    if (check_names(req, 0) < 0)
        return;
    int64_t limit;
    if (api_query_int(req, "limit", 100, 1, 1000, &limit) < 0)
        return;
    const char *after = req_query(req, "after");
    struct store_doc *docs = NULL;
    size_t n = 0;
    int rc = store_doc_list(api_of(req)->st, req_tenant(req), req_param(req, "collection"), after,
                            (size_t)limit + 1, &docs, &n);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    api_reply_page(req, docs, n, sizeof *docs, limit, page_doc, cursor_doc, NULL);
    store_docs_free(docs, n);
}
