/* limits.c - /v1/limits: a tenant's named processing limits, beside the server's.
 * A tenant's limit of a name adds to the server's limit of that name (both hold; see
 * engine/limits.h), so PUT can tighten what the operator set, never loosen it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/common.h"
#include "engine/limits.h"
#include "util/clock.h"
#include "util/errors.h"

#define MAX_LISTED 1000 /* tenant limits in one listing: tenants define few */

static int check_name(struct request *req)
{
    if (limits_name_valid(req_param(req, "name")))
        return 0;
    reply_error(req, SLUICE_E_INVALID_PARAMETER, "name",
                "limit names are 1 to 64 characters of A-Z a-z 0-9 _ - .");
    return -1;
}

/* {"name","scope", definition members[, "createdAt","updatedAt"]} */
static void render_limit(struct buf *b, const char *name, const char *scope,
                         const struct limits_def *d, int64_t created_at, int64_t updated_at)
{
    json_t *o = limits_def_json(d);
    char ts[25];
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "scope", json_string(scope));
    if (created_at) {
        json_object_set_new(o, "createdAt", json_string(clock_fmt_ms(created_at, ts)));
        json_object_set_new(o, "updatedAt", json_string(clock_fmt_ms(updated_at, ts)));
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    buf_puts(b, text);
    free(text);
    json_decref(o);
}

/* A stored definition (written by PUT, so valid); 0 or -1. */
static int stored_def(const struct store_limit *l, struct limits_def *d)
{
    json_error_t je;
    char err[200], target[64];
    json_t *j = json_loads(l->definition, 0, &je);
    int rc = j ? limits_def_parse(j, d, err, sizeof err, target, sizeof target) : -1;
    json_decref(j);
    return rc < 0 ? -1 : 0;
}

static void reply_limit(struct request *req, int status, const struct store_limit *l)
{
    struct limits_def d;
    if (stored_def(l, &d) < 0) {
        reply_error(req, SLUICE_E_INTERNAL, NULL, "a stored limit does not parse");
        return;
    }
    struct buf b = BUF_INIT;
    render_limit(&b, l->name, "tenant", &d, l->created_at, l->updated_at);
    reply_buf(req, status, "application/json", &b);
    buf_release(&b);
}

void api_limits_put(struct request *req)
{
    if (check_name(req) < 0)
        return;
    size_t len;
    const char *body = req_body(req, &len);
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        reply_errorf(req, SLUICE_E_INVALID_JSON, NULL, "request body is not valid JSON: %s",
                     je.text);
        return;
    }
    struct limits_def d;
    char err[256], target[64];
    int rc = limits_def_parse(j, &d, err, sizeof err, target, sizeof target);
    json_decref(j);
    if (rc < 0) {
        reply_error(req, rc, target, err);
        return;
    }
    /* Stored canonical: what GET shows is what was understood. */
    json_t *canon = limits_def_json(&d);
    char *text = json_dumps(canon, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(canon);
    struct store_limit l;
    memset(&l, 0, sizeof l);
    struct api *api = api_of(req);
    rc = store_limit_put(api->st, req_tenant(req), req_param(req, "name"), text, &l);
    free(text);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    limits_set_tenant(api->limits, req_tenant(req), l.name, &d);
    reply_limit(req, rc == 1 ? 201 : 200, &l);
    store_limit_release(&l);
}

void api_limits_get(struct request *req)
{
    if (check_name(req) < 0)
        return;
    struct api *api = api_of(req);
    const char *name = req_param(req, "name");
    struct store_limit l;
    memset(&l, 0, sizeof l);
    int rc = store_limit_get(api->st, req_tenant(req), name, &l);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
    } else if (rc == 1) {
        reply_limit(req, 200, &l);
    } else {
        struct limits_def d;
        if (limits_server_def(api->limits, name, &d)) {
            struct buf b = BUF_INIT;
            render_limit(&b, name, "server", &d, 0, 0);
            reply_buf(req, 200, "application/json", &b);
            buf_release(&b);
        } else {
            reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no limit '%.64s'", name);
        }
    }
    store_limit_release(&l);
}

void api_limits_delete(struct request *req)
{
    if (check_name(req) < 0)
        return;
    struct api *api = api_of(req);
    const char *name = req_param(req, "name");
    int rc = store_limit_delete(api->st, req_tenant(req), name);
    struct limits_def d;
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
    } else if (rc == 0 && limits_server_def(api->limits, name, &d)) {
        reply_errorf(req, SLUICE_E_CONFLICT, "name",
                     "'%.64s' is a server limit, set in the server's configuration; only the "
                     "tenant's own limits can be deleted", name);
    } else if (rc == 0) {
        reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no limit '%.64s'", name);
    } else {
        limits_set_tenant(api->limits, req_tenant(req), name, NULL);
        reply_empty(req, 204);
    }
}

/* {"value": [server limits..., the tenant's limits...]}: few, so not paged. */
void api_limits_list(struct request *req)
{
    struct api *api = api_of(req);
    struct store_limit *ls = NULL;
    size_t n = 0, ns = 0;
    int rc = store_limit_list(api->st, req_tenant(req), NULL, MAX_LISTED, &ls, &n);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return;
    }
    char(*names)[LIMITS_NAME_MAX] = NULL;
    limits_server_names(api->limits, &names, &ns);
    struct buf b = BUF_INIT;
    int first = 1;
    buf_puts(&b, "{\"value\":[");
    for (size_t i = 0; i < ns; i++) {
        struct limits_def d;
        if (!limits_server_def(api->limits, names[i], &d))
            continue;
        buf_puts(&b, first ? "" : ",");
        render_limit(&b, names[i], "server", &d, 0, 0);
        first = 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct limits_def d;
        if (stored_def(&ls[i], &d) < 0)
            continue;
        buf_puts(&b, first ? "" : ",");
        render_limit(&b, ls[i].name, "tenant", &d, ls[i].created_at, ls[i].updated_at);
        first = 0;
    }
    buf_puts(&b, "]}");
    reply_buf(req, 200, "application/json", &b);
    buf_release(&b);
    free(names);
    store_limits_free(ls, n);
}
