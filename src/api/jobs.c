/* jobs.c - /v1/jobs: submit (streamed), monitor, list, cancel, delete.
 *
 * Submit: the body is parsed chunk by chunk by the ingest parser as it arrives
 * (on_body); items go to a submit (engine/submit.h), which stages them in the store
 * in batches. The 202 is sent only after submit_commit() returned: the job and all
 * its items are durable. Any error replies at once and on_end frees the submit,
 * which deletes whatever was staged.
 *
 * Idempotency: an Idempotency-Key (or an Operation-Id, which also names the job)
 * is held in the in-flight registry (api/idem.h) from the first chunk to on_end, so
 * a second request with it meanwhile gets 409. The body is hashed (SHA-256) as it
 * streams; the commit records the key with that hash, and a later request with the
 * same key replays the first job when its hash matches (202, Idempotent-Replayed)
 * or fails with IdempotencyKeyReused.
 *
 * Content-Encoding: a gzip (or deflate) body is decoded as it streams
 * (ingest/decoder.h) before the parser sees it; every limit on body bytes applies to
 * the decoded bytes, and the idempotency hash covers them too, so the same items
 * sent compressed or not are the same request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/common.h"
#include "api/idem.h"
#include "api/render.h"
#include "api/slots.h"
#include "engine/pipeline.h"
#include "engine/stager.h"
#include "engine/submit.h"
#include "engine/wfload.h"
#include "ingest/decoder.h"
#include "spec/callback.h"
#include "util/clock.h"
#include "util/cursor.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/memwatch.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

struct submit_ctx {
    struct request *req;
    struct decoder *dec; /* undoes Content-Encoding, then feeds in */
    struct ingest *in;
    struct submit *sub;
    enum ingest_format fmt;
    /* ?validateOnly=true: items only pass the workflow's validate steps; nothing is
     * stored or called. */
    int validate_only;
    struct wfdef *def;
    int64_t total, invalid;
    struct buf report; /* invalid items, JSON array elements */
    /* Idempotency: the registry key held until on_end (heap, or NULL), the header it
     * came from (error target), the running hash of the body. */
    char *held_key;
    const char *key_target;
    int has_op_id;
    struct ids_sha256 *hash;
    int counted; /* in api->uploads */
    int slotted; /* holds a tenant's upload slot (api/slots.h) */
    /* An error raised by our own callbacks, reported instead of the parser's. */
    int cb_err;
    char cb_target[64];
    char cb_msg[320];
};

#define VALIDATE_REPORT_MAX 1000 /* invalid items listed; the counts cover all */

static int validate_item(struct submit_ctx *c, const struct ingest_item *it)
{
    if (!c->def) {
        c->cb_err = -SLUICE_E_INVALID_FIELD;
        snprintf(c->cb_target, sizeof c->cb_target, "workflow");
        snprintf(c->cb_msg, sizeof c->cb_msg,
                 "with validateOnly, name the workflow before the items");
        return c->cb_err;
    }
    struct api *api = api_of(c->req);
    struct pipeline_item in = {(int64_t)it->index, it->ref, it->data, it->data_len, 1};
    struct pipeline_result res;
    struct store_step_count *counts = xcalloc(c->def->nsteps, sizeof *counts);
    struct pipeline_env env = {api->st, NULL, NULL, 0, 0, NULL, 0, api->cfg.limits.max_item_bytes};
    pipeline_run(&env, c->def, req_tenant(c->req), NULL, PIPELINE_VALIDATE, &in, 1, &res, counts);
    c->total++;
    if (res.status != ITEM_SUCCEEDED) {
        c->invalid++;
        if (c->invalid <= VALIDATE_REPORT_MAX) {
            if (c->invalid > 1)
                buf_putc(&c->report, ',');
            render_invalid_item(&c->report, it->index, it->ref, it->ref_len, &res);
        }
    }
    pipeline_result_release(&res);
    free(counts);
    return 0;
}

static int on_item(void *arg, const struct ingest_item *it)
{
    struct submit_ctx *c = arg;
    if (c->validate_only)
        return validate_item(c, it);
    int rc = submit_add(c->sub, (int64_t)it->index, it->ref, it->ref_len, it->data, it->data_len);
    if (rc < 0) {
        c->cb_err = rc;
        snprintf(c->cb_msg, sizeof c->cb_msg, "storing items failed: %s", sluice_err_message(rc));
    }
    return rc;
}

static int set_field(struct submit_ctx *c, const char *name, const char *value)
{
    int rc;
    if (strcmp(name, "workflow") == 0) {
        rc = submit_set_workflow(c->sub, value);
        if (rc == -SLUICE_E_UNKNOWN_WORKFLOW)
            snprintf(c->cb_msg, sizeof c->cb_msg,
                     "unknown workflow '%.100s': use noop, <collection>.upsert|patch|delete or "
                     "a workflow defined with PUT /v1/workflows/{name}",
                     value);
        else if (rc < 0)
            snprintf(c->cb_msg, sizeof c->cb_msg, "%s", sluice_err_message(rc));
    } else if (strcmp(name, "priority") == 0) {
        submit_set_priority(c->sub, atoi(value)); /* the parser checked -100..100 */
        rc = 0;
    } else {
        rc = submit_set_client_reference(c->sub, value);
        if (rc < 0)
            snprintf(c->cb_msg, sizeof c->cb_msg, "clientReference must be 1 to 256 bytes");
    }
    if (rc >= 0 && c->validate_only && !strcmp(name, "workflow")) {
        wfdef_free(c->def);
        c->def = NULL;
        rc = wfload(api_of(c->req)->st, req_tenant(c->req), value, 0, &c->def);
    }
    if (rc < 0) {
        c->cb_err = rc;
        snprintf(c->cb_target, sizeof c->cb_target, "%s", name);
    }
    return rc;
}

static int on_field(void *arg, const char *name, const char *value, size_t len)
{
    struct submit_ctx *c = arg;
    if (memchr(value, '\0', len)) { /* "\u0000" would silently cut the value short */
        c->cb_err = -SLUICE_E_INVALID_FIELD;
        snprintf(c->cb_target, sizeof c->cb_target, "%s", name);
        snprintf(c->cb_msg, sizeof c->cb_msg, "%s must not contain U+0000", name);
        return c->cb_err;
    }
    return set_field(c, name, value);
}

/* "callback": {"url", "events", "format"} of a JSON envelope, as raw JSON text. */
static int on_raw_field(void *arg, const char *name, const char *json, size_t len)
{
    struct submit_ctx *c = arg;
    char *url = NULL;
    int events = 0, format = 0;
    (void)name;
    int rc = callback_spec_parse(json, len, &url, &events, &format, c->cb_target,
                                 sizeof c->cb_target, c->cb_msg, sizeof c->cb_msg);
    if (rc < 0) {
        c->cb_err = rc;
        return rc;
    }
    submit_set_callback(c->sub, url, events, format);
    free(url);
    return 0;
}

/* ?priority=N (-100..100) of a submit, either format. Returns 0, or -1 after replying. */
static int submit_priority(struct submit_ctx *c)
{
    const char *p = req_query(c->req, "priority");
    int64_t v;
    if (!p)
        return 0;
    if (api_parse_int(p, STORE_PRIORITY_MIN, STORE_PRIORITY_MAX, &v) < 0) {
        reply_error(c->req, SLUICE_E_INVALID_FIELD, "priority",
                    "priority is an integer from -100 to 100");
        return -1;
    }
    submit_set_priority(c->sub, (int)v);
    if (c->hash) { /* part of what an idempotency key covers */
        char t[16];
        int n = snprintf(t, sizeof t, "priority=%d", (int)v);
        ids_sha256_update(c->hash, t, (size_t)n + 1);
    }
    return 0;
}

/* Whether a Content-Type's media type (its first ctlen bytes: parameters cut off) is
 * name, case-insensitively (RFC 9110 8.3.1). */
static int media_is(const char *ct, size_t ctlen, const char *name)
{
    return ct && ctlen == strlen(name) && strncasecmp(ct, name, ctlen) == 0;
}

/* The parameters of a text/csv Content-Type (params: what follows the media type).
 * charset must be utf-8 (or its subset us-ascii), if given; header (RFC 7111), if
 * given, must be "present": the first record names the columns. Others are ignored.
 * Returns 0, or -1 after replying 415. */
static int csv_media_params(struct request *req, const char *params)
{
    const char *p = params;
    while ((p = strchr(p, ';')) != NULL) {
        p += strspn(p, "; \t");
        size_t nlen = strcspn(p, "= \t;");
        const char *v = p + nlen;
        v += strspn(v, " \t");
        if (*v != '=')
            continue;
        v += 1 + strspn(v + 1, " \t");
        int quoted = *v == '"';
        v += quoted;
        size_t vlen = strcspn(v, quoted ? "\"" : "; \t");
        int charset = nlen == 7 && strncasecmp(p, "charset", 7) == 0;
        int header = nlen == 6 && strncasecmp(p, "header", 6) == 0;
        if (charset && !media_is(v, vlen, "utf-8") && !media_is(v, vlen, "us-ascii")) {
            reply_errorf(req, SLUICE_E_UNSUPPORTED_MEDIA_TYPE, "Content-Type",
                         "CSV submits are UTF-8 (charset=utf-8), not charset '%.*s'",
                         (int)(vlen > 40 ? 40 : vlen), v);
            return -1;
        }
        if (header && !media_is(v, vlen, "present")) {
            reply_error(req, SLUICE_E_UNSUPPORTED_MEDIA_TYPE, "Content-Type",
                        "a CSV submit starts with a header row naming the columns "
                        "(header=present)");
            return -1;
        }
        p = v + vlen;
    }
    return 0;
}

/* ?refColumn=NAME of a CSV submit: the column that holds the refs. Returns it, or
 * NULL after replying. */
static const char *csv_ref_column(struct submit_ctx *c)
{
    const char *rc = req_query(c->req, "refColumn");
    if (!rc || !*rc) {
        reply_error(c->req, SLUICE_E_INVALID_FIELD, "refColumn",
                    "CSV submits name the column holding each item's ref in the query: "
                    "?refColumn=...");
        return NULL;
    }
    return rc;
}

/* ?callbackUrl=...&callbackEvents=a,b&callbackFormat=f of an NDJSON (or CSV) submit.
 * Returns 0, or -1 after replying. */
static int ndjson_callback(struct submit_ctx *c)
{
    const char *url = req_query(c->req, "callbackUrl");
    const char *ev = req_query(c->req, "callbackEvents");
    const char *fmt = req_query(c->req, "callbackFormat");
    int events = STORE_CB_ALL, format = STORE_CB_FORMAT_DEFAULT;
    char msg[200];
    if (!url && (ev || fmt)) {
        reply_errorf(c->req, SLUICE_E_INVALID_FIELD, "callbackUrl", "%s needs a callbackUrl",
                     ev ? "callbackEvents" : "callbackFormat");
        return -1;
    }
    if (!url)
        return 0;
    if (callback_url_check(url, msg, sizeof msg) < 0) {
        reply_error(c->req, SLUICE_E_INVALID_FIELD, "callbackUrl", msg);
        return -1;
    }
    if (ev && callback_events_parse(ev, &events, msg, sizeof msg) < 0) {
        reply_error(c->req, SLUICE_E_INVALID_FIELD, "callbackEvents", msg);
        return -1;
    }
    if (fmt && callback_format_parse(fmt, strlen(fmt), &format, msg, sizeof msg) < 0) {
        reply_error(c->req, SLUICE_E_INVALID_FIELD, "callbackFormat", msg);
        return -1;
    }
    submit_set_callback(c->sub, url, events, format);
    if (c->hash) { /* part of what an idempotency key covers */
        ids_sha256_update(c->hash, url, strlen(url) + 1);
        ids_sha256_update(c->hash, ev ? ev : "", ev ? strlen(ev) + 1 : 1);
        if (fmt) /* only when given: keys held from before formats existed still match */
            ids_sha256_update(c->hash, fmt, strlen(fmt) + 1);
    }
    return 0;
}

static void reply_ingest_error(struct submit_ctx *c, int rc)
{
    const char *dmsg = c->dec ? decoder_message(c->dec) : NULL;
    if (dmsg) { /* the 413 of a decoded body names no header, as a plain body's does */
        reply_error(c->req, rc, rc == -SLUICE_E_PAYLOAD_TOO_LARGE ? NULL : "Content-Encoding",
                    dmsg);
        return;
    }
    if (c->cb_err) {
        reply_error(c->req, c->cb_err, c->cb_target[0] ? c->cb_target : NULL, c->cb_msg);
        return;
    }
    const struct ingest_error *e = ingest_last_error(c->in);
    int code = e->code ? e->code : rc;
    reply_error(c->req, code, e->target[0] ? e->target : NULL, e->message[0] ? e->message : NULL);
}

static void reply_accepted(struct request *req, struct store_job *job, int replay);

/* The idempotency headers of a request. */
struct idem_req {
    const char *op_id;  /* Operation-Id, validated, or NULL */
    const char *target; /* the header errors name */
    char key[320];      /* the store key: "req:<Idempotency-Key>", "op:<Operation-Id>" or "" */
};

#define IDEM_KEY_MAX 255

/* Reads Idempotency-Key (1..255 printable ASCII chars) and Operation-Id
 * (ids_job_id_valid). Returns 0, or -1 after replying 400. */
static int read_idem_headers(struct request *req, struct idem_req *r)
{
    const char *key = req_header(req, "Idempotency-Key");
    const char *op = req_header(req, "Operation-Id");
    memset(r, 0, sizeof *r);
    if (key) {
        size_t n = strlen(key);
        int ok = n > 0 && n <= IDEM_KEY_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = key[i] >= 0x20 && key[i] < 0x7f;
        if (!ok) {
            reply_error(req, SLUICE_E_INVALID_REQUEST, "Idempotency-Key",
                        "Idempotency-Key must be 1 to 255 printable ASCII characters");
            return -1;
        }
    }
    if (op && !ids_job_id_valid(op)) {
        reply_error(req, SLUICE_E_INVALID_REQUEST, "Operation-Id",
                    "Operation-Id must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-', "
                    "starting with a letter or digit");
        return -1;
    }
    r->op_id = op;
    r->target = key ? "Idempotency-Key" : "Operation-Id";
    if (key)
        snprintf(r->key, sizeof r->key, "req:%s", key);
    else if (op)
        snprintf(r->key, sizeof r->key, "op:%s", op);
    return 0;
}

/* Takes the request's idempotency headers into c->sub and holds the key in the
 * in-flight registry. Returns 0, or -1 after replying. */
static int submit_idem_setup(struct submit_ctx *c)
{
    struct idem_req ir;
    if (read_idem_headers(c->req, &ir) < 0)
        return -1;
    if (!ir.key[0])
        return 0;
    if (ir.op_id) {
        submit_set_job_id(c->sub, ir.op_id); /* valid: checked above */
        c->has_op_id = 1;
    }
    submit_set_idem_key(c->sub, ir.key);
    c->key_target = ir.target;
    if (!api_idem_acquire(req_tenant(c->req), ir.key)) {
        reply_errorf(c->req, SLUICE_E_CONFLICT, ir.target,
                     "a request with this %s is still being received; retry when it has ended",
                     ir.target);
        return -1;
    }
    c->held_key = xstrdup(ir.key);
    c->hash = ids_sha256_new();
    return 0;
}

/* Creates the parser on the first chunk (or at the end for an empty body). Returns
 * 0, or -1 after replying. */
/* Admission: a tenant over its caps of unfinished jobs or waiting items gets 429
 * before anything is read or stored. The new job's own items are not counted (they
 * are not known yet), so a tenant may end up one job over the item cap. Returns 0, or
 * -1 after replying. */
static int admit(struct request *req)
{
    struct api *api = api_of(req);
    /* Memory first: a process near its cap takes no new bodies (reads still work). */
    uint64_t cap = api->cfg.max_memory_mb ? (uint64_t)api->cfg.max_memory_mb << 20
                                          : memwatch_physical() / 4 * 3;
    uint64_t rss = memwatch_rss();
    if (cap && rss > cap) {
        reply_header(req, "Retry-After", "10");
        reply_errorf(req, SLUICE_E_MEMORY_PRESSURE, NULL,
                     "the server uses %llu MiB of its %llu MiB; retry later",
                     (unsigned long long)(rss >> 20), (unsigned long long)(cap >> 20));
        return -1;
    }
    if (!api->cfg.max_open_jobs && !api->cfg.max_pending_items)
        return 0;
    int64_t open_jobs = 0, pending = 0;
    int rc = store_tenant_load(api->st, req_tenant(req), &open_jobs, &pending);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return -1;
    }
    if (api->cfg.max_open_jobs && open_jobs >= (int64_t)api->cfg.max_open_jobs) {
        reply_header(req, "Retry-After", "5");
        reply_errorf(req, SLUICE_E_TOO_MANY_JOBS, NULL,
                     "%lld jobs of this tenant are unfinished (the cap is %zu); retry when some "
                     "have finished",
                     (long long)open_jobs, api->cfg.max_open_jobs);
        return -1;
    }
    if (api->cfg.max_pending_items && pending >= (int64_t)api->cfg.max_pending_items) {
        reply_header(req, "Retry-After", "5");
        reply_errorf(req, SLUICE_E_TOO_MANY_PENDING, NULL,
                     "%lld items of this tenant are waiting (the cap is %zu); retry later",
                     (long long)pending, api->cfg.max_pending_items);
        return -1;
    }
    return 0;
}

/* The decoded body: hashed for the idempotency key, then parsed. */
static int on_decoded(void *arg, const char *p, size_t n)
{
    struct submit_ctx *c = arg;
    if (c->hash)
        ids_sha256_update(c->hash, p, n);
    return ingest_feed(c->in, p, n);
}

static int submit_setup(struct request *req)
{
    struct api *api = api_of(req);
    if (atomic_load(&api->shutting_down)) {
        reply_error(req, SLUICE_E_SHUTTING_DOWN, NULL, NULL);
        return -1;
    }
    if (admit(req) < 0)
        return -1;
    const char *ct = req_header(req, "Content-Type");
    size_t ctlen = ct ? strcspn(ct, "; \t") : 0;
    enum ingest_format fmt;
    if (media_is(ct, ctlen, "application/json")) {
        fmt = INGEST_JSON;
    } else if (media_is(ct, ctlen, "application/x-ndjson") ||
               media_is(ct, ctlen, "application/jsonlines")) {
        fmt = INGEST_NDJSON;
    } else if (media_is(ct, ctlen, "text/csv")) {
        fmt = INGEST_CSV;
        if (csv_media_params(req, ct + ctlen) < 0)
            return -1;
    } else {
        reply_errorf(req, SLUICE_E_UNSUPPORTED_MEDIA_TYPE, "Content-Type",
                     "Content-Type must be application/json, application/x-ndjson, "
                     "application/jsonlines or text/csv, not '%.80s'",
                     ct ? ct : "(none)");
        return -1;
    }
    enum decoder_coding coding;
    const char *ce = req_header(req, "Content-Encoding");
    if (decoder_coding_parse(ce, &coding) < 0) {
        reply_errorf(req, SLUICE_E_UNSUPPORTED_MEDIA_TYPE, "Content-Encoding",
                     "Content-Encoding must be one of gzip, deflate or identity, not '%.80s'", ce);
        return -1;
    }
    struct submit_ctx *c = xcalloc(1, sizeof *c);
    c->req = req;
    c->fmt = fmt;
    c->sub = submit_new(api->st, req_tenant(req), api->cfg.submit_batch);
    buf_init(&c->report);
    req_set_ctx(req, c);
    /* Each upload holds up to a staging batch in memory: their number bounds that. */
    c->counted = 1;
    if (atomic_fetch_add(&api->uploads, 1) >= api->cfg.max_uploads && api->cfg.max_uploads) {
        reply_header(req, "Retry-After", "2");
        reply_errorf(req, SLUICE_E_SERVER_BUSY, NULL,
                     "%u uploads are in progress, the most this server takes at once; retry "
                     "later",
                     api->cfg.max_uploads);
        return -1;
    }
    /* The tenant's share of those uploads: one tenant at its share gets 429, the
     * others still find slots. */
    if (api->slots) {
        int rc = slots_take(api->slots, SLOT_UPLOAD, req_tenant(req));
        if (rc < 0) {
            reply_header(req, "Retry-After", "2");
            if (rc == -SLUICE_E_SERVER_BUSY) /* the pool, not the tenant's share */
                reply_errorf(req, rc, NULL,
                             "%u uploads are in progress, the most this server takes at once; "
                             "retry later",
                             api->cfg.max_uploads);
            else
                reply_errorf(req, rc, NULL,
                             "this tenant has %u uploads in progress, its share of this "
                             "server's %u; retry when one ends",
                             slots_tenant_cap(api->slots, SLOT_UPLOAD), api->cfg.max_uploads);
            return -1;
        }
        c->slotted = 1;
    }
    const char *vo = req_query(req, "validateOnly");
    if (vo && strcmp(vo, "true") && strcmp(vo, "false")) {
        reply_error(req, SLUICE_E_INVALID_PARAMETER, "validateOnly",
                    "validateOnly is true or false");
        return -1;
    }
    c->validate_only = vo && !strcmp(vo, "true");
    if (!c->validate_only && submit_idem_setup(c) < 0) /* validateOnly stores nothing */
        return -1;
    if (submit_priority(c) < 0)
        return -1;
    const char *ref_column = NULL;
    if (fmt != INGEST_JSON) { /* NDJSON and CSV: the envelope is in the query */
        const char *wf = req_query(req, "workflow");
        if (!wf) {
            reply_errorf(req, SLUICE_E_INVALID_FIELD, "workflow",
                         "%s submits name the workflow in the query: ?workflow=...",
                         fmt == INGEST_CSV ? "CSV" : "NDJSON");
            return -1;
        }
        if (fmt == INGEST_CSV && !(ref_column = csv_ref_column(c)))
            return -1;
        if (set_field(c, "workflow", wf) < 0) {
            reply_ingest_error(c, c->cb_err);
            return -1;
        }
        const char *cr = req_query(req, "clientReference");
        if (cr && set_field(c, "clientReference", cr) < 0) {
            reply_ingest_error(c, c->cb_err);
            return -1;
        }
        if (c->hash) { /* an NDJSON or CSV request's envelope is in its query */
            ids_sha256_update(c->hash, wf, strlen(wf) + 1);
            ids_sha256_update(c->hash, cr ? cr : "", cr ? strlen(cr) + 1 : 1);
            if (ref_column)
                ids_sha256_update(c->hash, ref_column, strlen(ref_column) + 1);
        }
        if (ndjson_callback(c) < 0)
            return -1;
    }
    if (fmt == INGEST_CSV)
        c->in = ingest_new_csv(&api->cfg.limits, ref_column, on_item, c);
    else
        c->in = ingest_new(fmt, &api->cfg.limits, on_item, on_field, c);
    if (fmt == INGEST_JSON)
        ingest_set_raw_field_fn(c->in, on_raw_field);
    c->dec = decoder_new(coding, api->cfg.max_body_bytes, on_decoded, c);
    return 0;
}

/* Gives back the submit's upload slot (the server's count and the tenant's share);
 * once only. */
static void upload_release(struct submit_ctx *c, struct request *req)
{
    if (c->slotted)
        slots_give(api_of(req)->slots, SLOT_UPLOAD, req_tenant(req));
    if (c->counted)
        atomic_fetch_sub(&api_of(req)->uploads, 1);
    c->slotted = c->counted = 0;
}

int api_jobs_submit_body(struct request *req, const char *data, size_t len)
{
    struct submit_ctx *c = req_ctx(req);
    if (!c) {
        if (submit_setup(req) < 0)
            return -1;
        c = req_ctx(req);
    }
    int rc = decoder_feed(c->dec, data, len);
    if (rc < 0) {
        reply_ingest_error(c, rc);
        return -1;
    }
    return 0;
}

void api_jobs_submit(struct request *req)
{
    struct submit_ctx *c = req_ctx(req);
    if (!c) {
        if (submit_setup(req) < 0)
            return;
        c = req_ctx(req);
    }
    int rc = decoder_finish(c->dec);
    if (rc >= 0)
        rc = ingest_finish(c->in);
    if (rc < 0) {
        reply_ingest_error(c, rc);
        return;
    }
    if (c->validate_only) {
        if (c->total == 0) {
            reply_error(req, SLUICE_E_EMPTY_JOB, "items", "the request holds no items");
            return;
        }
        struct buf b = BUF_INIT;
        render_validate_report(&b, c->def->name, c->total, c->invalid, buf_cstr(&c->report),
                               c->invalid > VALIDATE_REPORT_MAX);
        reply_buf(req, 200, "application/json", &b);
        buf_release(&b);
        return;
    }
    struct store_job job;
    memset(&job, 0, sizeof job);
    if (c->hash) {
        char hex[65];
        ids_sha256_finish(c->hash, hex);
        submit_set_body_hash(c->sub, hex);
    }
    rc = submit_commit(c->sub, &job);
    if (rc == -SLUICE_E_INVALID_FIELD) {
        reply_error(req, rc, "workflow", "the request names no workflow");
        return;
    }
    if (rc == -SLUICE_E_EMPTY_JOB) {
        reply_error(req, rc, "items", "the request holds no items");
        return;
    }
    if (rc == -SLUICE_E_IDEMPOTENCY_KEY_REUSED) {
        reply_errorf(req, rc, c->key_target,
                     "this %s was used within 24 hours with a different request body",
                     c->key_target);
        return;
    }
    if (rc == -SLUICE_E_CONFLICT && c->has_op_id) {
        reply_error(req, rc, "Operation-Id", "another job already has this Operation-Id");
        return;
    }
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    /* The body is in: the upload slot goes back before a Prefer: wait parks the request
     * (a parked submit holds a parked slot, not an upload's). */
    upload_release(c, req);
    /* A new job with Prefer: wait is parked: it answers when done or in N s. */
    if (rc != STORE_JOB_REPLAYED && api_prefer_wait(req, &job)) {
        metrics_job_accepted(job.counts.total);
        engine_notify(api_of(req)->eng);
    } else {
        reply_accepted(req, &job, rc == STORE_JOB_REPLAYED);
    }
    store_job_release(&job);
}

void api_jobs_submit_end(struct request *req, int completed)
{
    (void)completed;
    struct submit_ctx *c = req_ctx(req);
    if (!c)
        return;
    submit_free(c->sub); /* deletes the staged job unless committed */
    upload_release(c, req);
    if (c->held_key)
        api_idem_release(req_tenant(req), c->held_key);
    free(c->held_key);
    ids_sha256_free(c->hash);
    decoder_free(c->dec);
    if (c->in)
        ingest_free(c->in);
    wfdef_free(c->def);
    buf_release(&c->report);
    free(c);
    req_set_ctx(req, NULL);
}

/* After a write answered "no such job": a retry still staging exists for readers
 * only (store_job_retry_begin); answer 409 for it and return 1, else return 0. */
static int staging_conflict(struct request *req, const char *verb)
{
    struct store_job job;
    memset(&job, 0, sizeof job);
    int rc = store_job_get(api_of(req)->st, req_tenant(req), req_param(req, "id"), &job);
    int staging = rc == 1 && job.staging;
    store_job_release(&job);
    if (staging)
        reply_errorf(req, SLUICE_E_CONFLICT, "id",
                     "the retry's items are still being copied (phase Staging); %s it once "
                     "that is done",
                     verb);
    return staging;
}

void api_jobs_cancel(struct request *req)
{
    struct store_job job;
    memset(&job, 0, sizeof job);
    int rc = store_job_cancel(api_of(req)->st, req_tenant(req), req_param(req, "id"), &job);
    if (rc == 0 && staging_conflict(req, "cancel"))
        return;
    api_reply_job(req, rc, &job, 200);
    store_job_release(&job);
}

void api_jobs_delete(struct request *req)
{
    int rc = store_job_delete(api_of(req)->st, req_tenant(req), req_param(req, "id"));
    if (rc == -SLUICE_E_CONFLICT)
        reply_error(req, rc, "id", "only a finished job can be deleted; cancel it first");
    else if (rc == 0 && staging_conflict(req, "delete"))
        return;
    else if (!api_reply_no_job(req, rc))
        reply_empty(req, 204);
}

/* Replies 202 with a newly created job and wakes the workers; for a replay
 * (an idempotency key seen before) with the job the key names, flagged. */
static void reply_accepted(struct request *req, struct store_job *job, int replay)
{
    struct api *api = api_of(req);
    if (replay) {
        reply_header(req, "Idempotent-Replayed", "true");
    } else {
        metrics_job_accepted(job->counts.total);
        engine_notify(api->eng);
    }
    struct buf loc = BUF_INIT;
    buf_printf(&loc, "%s/v1/jobs/%s", req_base_url(req), job->id);
    reply_header(req, "Location", loc.data);
    reply_header(req, "Operation-Location", loc.data);
    api_reply_job(req, 1, job, 202);
    buf_release(&loc);
}

/* POST /v1/jobs/{id}:retry - a new job from the failed items of a finished job.
 * Idempotency-Key / Operation-Id work as on submit; what the key covers is the retry
 * of this job (the body is empty), so the same key on another job's retry fails. */
void api_jobs_retry(struct request *req)
{
    char id[IDS_JOB_LEN + 1], hash[65];
    struct idem_req ir;
    struct store_job job;
    struct store_job_meta meta;
    const char *parent = req_param(req, "id");
    memset(&job, 0, sizeof job);
    memset(&meta, 0, sizeof meta);
    if (read_idem_headers(req, &ir) < 0)
        return;
    if (!api_of(req)->stager) { /* its thread could not start (logged): nothing would stage */
        reply_header(req, "Retry-After", "10");
        reply_error(req, SLUICE_E_SERVER_BUSY, NULL, "retries cannot be staged now; retry later");
        return;
    }
    if (ir.key[0]) {
        char *what = xasprintf("%s:retry", parent);
        ids_sha256_hex(what, strlen(what), hash);
        free(what);
        meta.idem_key = ir.key;
        meta.body_hash = hash;
        meta.idem_not_before = clock_now_ms() - SUBMIT_IDEM_TTL_MS;
    }
    int rc = ir.op_id ? 0 : ids_job_new(id);
    if (rc >= 0)
        /* Only the job row here: the stager copies the items in batches (stager.h). */
        rc = store_job_retry_begin(api_of(req)->st, req_tenant(req), parent,
                                   ir.op_id ? ir.op_id : id, ir.key[0] ? &meta : NULL, &job);
    if (rc == STORE_JOB_CREATED)
        stager_kick(api_of(req)->stager);
    if (rc == 0 && staging_conflict(req, "retry"))
        ; /* answered 409 */
    else if (rc == 0)
        api_reply_no_job(req, rc);
    else if (rc == -SLUICE_E_CONFLICT && ir.op_id)
        reply_error(req, rc, "Operation-Id",
                    "only a finished job can be retried, under an Operation-Id no job has");
    else if (rc == -SLUICE_E_CONFLICT)
        reply_error(req, rc, "id", "only a finished job can be retried");
    else if (rc == -SLUICE_E_EMPTY_JOB)
        reply_error(req, rc, "id", "the job has no failed items to retry");
    else if (rc == -SLUICE_E_IDEMPOTENCY_KEY_REUSED)
        reply_errorf(req, rc, ir.target, "this %s was used within 24 hours for another request",
                     ir.target);
    else if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else
        reply_accepted(req, &job, rc == STORE_JOB_REPLAYED);
    store_job_release(&job);
}

static void page_job(struct buf *b, const void *e, struct request *req)
{
    api_render_job(req, b, e);
}

static void page_delivery(struct buf *b, const void *e, struct request *req)
{
    (void)req;
    render_delivery(b, e);
}

void api_jobs_list(struct request *req)
{
    /* The cursor is sealed (util/cursor.h): the jobs' sequence is server-wide, and its
     * gaps would tell a tenant how many jobs the others make. */
    struct api *api = api_of(req);
    int64_t limit, cursor = 0;
    if (api_query_int(req, "limit", 50, 1, 1000, &limit) < 0)
        return;
    const char *c = req_query(req, "cursor");
    if (c && cursor_open(api->cursor_key, req_tenant(req), c, &cursor) < 0) {
        reply_error(req, SLUICE_E_INVALID_PARAMETER, "cursor",
                    "cursor is not one of this list's: follow nextLink");
        return;
    }
    int status = -1;
    const char *s = req_query(req, "status");
    if (s && ((status = store_job_status_parse(s)) < 0 || status == JOB_RECEIVING)) {
        reply_errorf(req, SLUICE_E_INVALID_PARAMETER, "status",
                     "status must be one of NotStarted, Running, Canceling, Succeeded, Failed, "
                     "Canceled");
        return;
    }
    struct store_job *jobs = NULL;
    size_t n = 0;
    int rc = store_job_list(api->st, req_tenant(req), status, cursor, (size_t)limit + 1, &jobs, &n);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    char filter[48] = "";
    if (s)
        snprintf(filter, sizeof filter, "&status=%s", store_job_status_name(status));
    char next[16 + CURSOR_TEXT_MAX] = "";
    if (n > (size_t)limit) {
        char sealed[CURSOR_TEXT_MAX];
        cursor_seal(api->cursor_key, req_tenant(req), jobs[limit - 1].seq, sealed);
        snprintf(next, sizeof next, "cursor=%s", sealed);
    }
    api_reply_page_next(req, jobs, n, sizeof *jobs, limit, page_job, next[0] ? next : NULL, filter);
    store_jobs_free(jobs, n);
}

/* GET /v1/jobs/{id}/callbacks - the job's completion callback deliveries (at most one
 * today: the job's terminal event), each with its attempts. */
void api_jobs_callbacks(struct request *req)
{
    struct store_delivery *ds = NULL;
    size_t n = 0;
    int rc = store_delivery_list(api_of(req)->st, req_tenant(req), req_param(req, "id"), &ds, &n);
    if (!api_reply_no_job(req, rc)) /* one page: no limit, no nextLink */
        api_reply_page_next(req, ds, n, sizeof *ds, (int64_t)n, page_delivery, NULL, NULL);
    store_deliveries_free(ds, n);
}
