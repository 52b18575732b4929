/* callbacks.c - the tenant's side of completion callbacks: the secrets it verifies them
 * with, their rotation, and its default signature format (engine/callbacks.h signs and
 * delivers; a job's deliveries are listed by api/jobs.c).
 *
 *   GET  /v1/callbacks/secret          the secrets now (and the previous ones during a
 *                                      rotation's overlap)
 *   POST /v1/callbacks/secret:rotate   a new key; the old one keeps signing too until
 *                                      {"overlapSeconds": N} (default 1 day) have passed
 *   GET  /v1/callbacks/settings        {"format": "stripe" | "standard-webhooks"}
 *   PUT  /v1/callbacks/settings        sets it: the format of callbacks that name none
 *
 * Secrets are sent with Cache-Control: no-store and never logged. */
#include <jansson.h>
#include <string.h>

#include "api/common.h"
#include "api/render.h"
#include "engine/callbacks.h"
#include "spec/callback.h"
#include "util/clock.h"
#include "util/errors.h"

#define OVERLAP_DEFAULT_S 86400
#define OVERLAP_MAX_S (30 * 86400)

/* The callbacks module, or NULL after answering 500 (a server without one). */
static struct callbacks *callbacks_of(struct request *req)
{
    struct callbacks *cb = api_of(req)->callbacks;
    if (!cb)
        reply_error(req, SLUICE_E_INTERNAL, NULL, "callbacks are not available");
    return cb;
}

static void reply_signer(struct request *req, struct callbacks_signer *sg)
{
    struct buf b = BUF_INIT;
    render_callbacks_secret(&b, sg);
    callbacks_signer_release(sg);
    reply_header(req, "Cache-Control", "no-store");
    reply_buf(req, 200, "application/json", &b);
    buf_release(&b);
}

/* GET /v1/callbacks/secret */
void api_callbacks_secret(struct request *req)
{
    struct callbacks *cb = callbacks_of(req);
    struct callbacks_signer sg;
    if (!cb)
        return;
    int rc = callbacks_signer_load(cb, req_tenant(req), clock_now_ms(), &sg);
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else
        reply_signer(req, &sg);
}

/* The request's body as a JSON object whose only field may be key: its value ([out]
 * *val, NULL when absent; owned by the object), and the object to json_decref; NULL
 * after replying. */
static json_t *one_field_body(struct request *req, const char *key, json_t **val)
{
    json_t *o = api_json_body(req), *v;
    const char *k;
    if (!o)
        return NULL;
    if (!json_is_object(o)) {
        reply_error(req, SLUICE_E_INVALID_FIELD, NULL, "the body must be a JSON object");
        json_decref(o);
        return NULL;
    }
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, key) != 0) {
            reply_errorf(req, SLUICE_E_INVALID_FIELD, k, "unknown field");
            json_decref(o);
            return NULL;
        }
    }
    *val = json_object_get(o, key);
    return o;
}

/* The body of a rotation: empty, or {"overlapSeconds": N}. 0 and [out] *seconds, or -1
 * after replying. */
static int rotate_body(struct request *req, int64_t *seconds)
{
    size_t len;
    json_t *v;
    *seconds = OVERLAP_DEFAULT_S;
    if (req_body(req, &len) == NULL || len == 0)
        return 0;
    json_t *o = one_field_body(req, "overlapSeconds", &v);
    if (!o)
        return -1;
    int ok = !v || (json_is_integer(v) && json_integer_value(v) >= 0 &&
                    json_integer_value(v) <= OVERLAP_MAX_S);
    if (!ok)
        reply_errorf(req, SLUICE_E_INVALID_FIELD, "overlapSeconds", "an integer from 0 to %d",
                     OVERLAP_MAX_S);
    else if (v)
        *seconds = json_integer_value(v);
    json_decref(o);
    return ok ? 0 : -1;
}

/* POST /v1/callbacks/secret:rotate */
void api_callbacks_rotate(struct request *req)
{
    struct callbacks *cb = callbacks_of(req);
    struct store_callback_prefs p;
    struct callbacks_signer sg;
    int64_t overlap_s, now = clock_now_ms();
    if (!cb || rotate_body(req, &overlap_s) < 0)
        return;
    int rc =
        store_callback_key_rotate(api_of(req)->st, req_tenant(req), now + overlap_s * 1000, &p);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    callbacks_signer_init(cb, req_tenant(req), &p, now, &sg);
    reply_signer(req, &sg);
}

static void reply_settings(struct request *req, int format)
{
    struct buf b = BUF_INIT;
    render_callback_settings(&b, callback_format_name(format));
    reply_buf(req, 200, "application/json", &b);
    buf_release(&b);
}

/* GET /v1/callbacks/settings */
void api_callbacks_settings_get(struct request *req)
{
    struct store_callback_prefs p;
    int rc = store_callback_prefs_get(api_of(req)->st, req_tenant(req), &p);
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else
        reply_settings(req, p.format);
}

/* PUT /v1/callbacks/settings {"format": "..."} */
void api_callbacks_settings_put(struct request *req)
{
    json_t *v, *o = one_field_body(req, "format", &v);
    char msg[160];
    int format = STORE_CB_FORMAT_DEFAULT;
    if (!o)
        return;
    if (!v) {
        reply_error(req, SLUICE_E_INVALID_FIELD, "format", "missing field \"format\"");
        goto out;
    }
    if (!json_is_string(v) || callback_format_parse(json_string_value(v), json_string_length(v),
                                                    &format, msg, sizeof msg) < 0) {
        reply_error(req, SLUICE_E_INVALID_FIELD, "format",
                    json_is_string(v) ? msg : "\"format\" must be a string");
        goto out;
    }
    int rc = store_callback_format_set(api_of(req)->st, req_tenant(req), format);
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else
        reply_settings(req, format);
out:
    json_decref(o);
}
