/* defs.c - /v1/workflows, /v1/hooks, /v1/limits, /v1/secrets: the named definitions a
 * tenant owns (store_def_*), with one set of handlers (PUT, GET, list, DELETE) driven
 * by a descriptor per kind.
 *
 * The kinds differ only in what their descriptors below say: the name rule and when
 * it is checked, how a PUT body is validated and what text is stored, how a
 * definition is shown, and a few extras (a workflow's Location; a limit's server
 * side). The four descriptors sit side by side in this file so that a difference
 * between kinds is a line to read, not a diff of four files. Each route of the four
 * collections names its kind (route.arg in routes.c).
 *
 * Workflows: PUT validates the definition completely (wfdef_compile) before storing
 * it, so a stored version always compiles again when a job runs it. A job records the
 * version it was submitted with; a later PUT makes a new version and never changes a
 * running job. (Synchronous runs of a workflow are api/runs.c.)
 * Hooks: webhook entry points; their public events endpoint is api/hooks.c.
 * Limits: a tenant's limit of a name adds to the server's limit of that name (both
 * hold; see engine/limits.h), so PUT can tighten what the operator set, never loosen
 * it. The server's limits show beside the tenant's.
 * Secrets: a tenant's own secrets for {{secrets.NAME}} in its http header templates
 * (engine/secrets.h). Write-only: PUT takes the value, every answer shows the name and
 * times only. Tenant-scoped like every resource: another tenant's name is simply not
 * found. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/common.h"
#include "engine/limits.h"
#include "engine/secrets.h"
#include "spec/hook.h"
#include "spec/workflow.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/url.h"
#include "util/xmalloc.h"

/* When a kind checks the {name} parameter besides on PUT (a bad name is then 400
 * rather than 404: clients see the difference, so each kind keeps its own). */
enum { CHECK_ON_GET = 1, CHECK_ON_DELETE = 2 };

struct def_kind {
    enum store_def_kind kind;
    const char *path; /* the collection's path, for a PUT's Location */
    const char *noun; /* in messages: "no workflow '...'" */
    int quote_max;    /* bytes of a name quoted in a message */
    int (*name_valid)(const char *name);
    const char *name_rule; /* the 400 message for a name name_valid refuses */
    int check_name;        /* CHECK_ON_* */
    int versioned;         /* GET takes ?version= */
    int locate;            /* PUT answers with Location: the definition's URL */
    const char *conflict;  /* PUT's message when the store says -SLUICE_E_CONFLICT */
    /* Validates the PUT body and makes the text to store ([out] *text, heap, caller
     * frees; [out] *state, NULL or heap for stored(), caller frees with free()).
     * Replies and returns -1 when the body is refused. */
    int (*accept)(struct request *req, char **text, void **state);
    /* Appends d as the API shows it. -1, nothing appended, when its stored text does
     * not parse (only a kind with render_list may fail so: a paged list cannot skip). */
    int (*render)(struct buf *b, struct request *req, const struct store_def *d);
    /* The kind's extras, NULL when it has none: */
    /* after a PUT stored d; state is accept()'s. */
    void (*stored)(struct request *req, const struct store_def *d, void *state);
    /* after a DELETE removed name. */
    void (*deleted)(struct request *req, const char *name);
    /* GET (deleting 0) or DELETE (1) found no definition of name: replies and returns 1
     * when the kind has another answer than 404, else returns 0. */
    int (*missing)(struct request *req, const char *name, int deleting);
    /* The list is not paged: up to list_max definitions, and render_list makes the
     * whole reply body of them. NULL: pages of ?limit= after ?after=. */
    void (*render_list)(struct buf *b, struct request *req, const struct store_def *defs, size_t n);
    size_t list_max;
};

/* The request body as a JSON object or array, duplicate keys refused; replies 400
 * InvalidJson (prefix, then the parser's message) and returns NULL when it is not. */
static json_t *json_body(struct request *req, const char *prefix)
{
    size_t len;
    const char *body = req_body(req, &len);
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        reply_errorf(req, SLUICE_E_INVALID_JSON, NULL, "%s%s", prefix, je.text);
    return j;
}

/* ---- workflows ---------------------------------------------------------------- */

static int workflow_accept(struct request *req, char **text, void **state)
{
    (void)state;
    json_t *def = api_json_body(req);
    if (!def)
        return -1;
    char err[300], target[160];
    struct wfdef *w = NULL;
    int rc =
        wfdef_compile(req_param(req, "name"), 0, def, &w, err, sizeof err, target, sizeof target);
    if (rc < 0) {
        json_decref(def);
        reply_error(req, rc, target[0] ? target : NULL, err);
        return -1;
    }
    wfdef_free(w);
    *text = json_dumps(def, JSON_COMPACT);
    json_decref(def);
    return 0;
}

static int render_workflow(struct buf *b, struct request *req, const struct store_def *w)
{
    (void)req;
    char ts[25];
    buf_puts(b, "{\"name\":");
    buf_json_str(b, w->name, strlen(w->name));
    buf_printf(b, ",\"version\":%lld,\"createdAt\":\"%s\",\"definition\":%s}",
               (long long)w->version, clock_fmt_ms(w->created_at, ts), w->text ? w->text : "null");
    return 0;
}

const struct def_kind api_def_workflows = {
    .kind = STORE_DEF_WORKFLOW,
    .path = "/v1/workflows",
    .noun = "workflow",
    .quote_max = 128,
    .name_valid = wfdef_name_valid,
    .name_rule = "workflow names are 1 to 128 characters of A-Z a-z 0-9 _ - . and not a "
                 "built-in name (noop, <collection>.upsert|patch|delete)",
    .check_name = 0,
    .versioned = 1,
    .locate = 1,
    .accept = workflow_accept,
    .render = render_workflow,
};

/* ---- hooks -------------------------------------------------------------------- */

static int hook_name_valid(const char *n)
{
    size_t len = strlen(n);
    int ok = len > 0 && len <= 64;
    for (const char *s = n; ok && *s; s++)
        ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
             *s == '_' || *s == '-' || *s == '.';
    return ok;
}

static int hook_accept(struct request *req, char **text, void **state)
{
    (void)state;
    json_t *def = json_body(req, "");
    if (!def)
        return -1;
    char err[300], target[160];
    struct hook *h = NULL;
    int rc = hook_compile(def, &h, err, sizeof err, target, sizeof target);
    if (rc < 0) {
        json_decref(def);
        reply_error(req, rc, target[0] ? target : NULL, err);
        return -1;
    }
    /* The target workflow must exist now (it may still be deleted later: events then
     * answer 422). */
    struct wfdef *w = NULL;
    if (wfdef_builtin(hook_workflow(h), &w) == 0) {
        wfdef_free(w);
    } else {
        struct store_def sw;
        rc = store_def_get(api_of(req)->st, STORE_DEF_WORKFLOW, req_tenant(req), hook_workflow(h),
                           0, &sw);
        store_def_release(&sw);
        if (rc <= 0) {
            if (rc < 0)
                reply_error(req, rc, NULL, NULL);
            else
                reply_errorf(req, SLUICE_E_UNKNOWN_WORKFLOW, "workflow", "no workflow '%.128s'",
                             hook_workflow(h));
            hook_free(h);
            json_decref(def);
            return -1;
        }
    }
    hook_free(h);
    *text = json_dumps(def, JSON_COMPACT);
    json_decref(def);
    return 0;
}

/* With its events URL, and its definition's secrets redacted. */
static int render_hook(struct buf *b, struct request *req, const struct store_def *h)
{
    char ts[25];
    json_error_t je;
    json_t *def = json_loads(h->text, 0, &je);
    json_t *red = def ? hook_redact(def) : NULL;
    char *text = red ? json_dumps(red, JSON_COMPACT) : NULL;
    buf_puts(b, "{\"name\":");
    buf_json_str(b, h->name, strlen(h->name));
    buf_printf(b, ",\"eventsUrl\":\"%s/v1/hooks/", req_base_url(req));
    url_encode(b, h->name);
    buf_printf(b, "/events\",\"updatedAt\":\"%s\",\"definition\":%s}",
               clock_fmt_ms(h->updated_at, ts), text ? text : "null");
    free(text);
    json_decref(red);
    json_decref(def);
    return 0;
}

const struct def_kind api_def_hooks = {
    .kind = STORE_DEF_HOOK,
    .path = "/v1/hooks",
    .noun = "hook",
    .quote_max = 64,
    .name_valid = hook_name_valid,
    .name_rule = "hook names are 1 to 64 characters of A-Z a-z 0-9 _ - .",
    .check_name = 0,
    .conflict = "another tenant uses this hook name; choose another",
    .accept = hook_accept,
    .render = render_hook,
};

/* ---- limits ------------------------------------------------------------------- */

#define MAX_LISTED 1000 /* tenant limits in one listing: tenants define few */

static int limit_accept(struct request *req, char **text, void **state)
{
    json_t *j = json_body(req, "request body is not valid JSON: ");
    if (!j)
        return -1;
    struct limits_def d;
    char err[256], target[64];
    int rc = limits_def_parse(j, &d, err, sizeof err, target, sizeof target);
    json_decref(j);
    if (rc < 0) {
        reply_error(req, rc, target, err);
        return -1;
    }
    /* Stored canonical: what GET shows is what was understood. */
    json_t *canon = limits_def_json(&d);
    *text = json_dumps(canon, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(canon);
    *state = xmalloc(sizeof d);
    memcpy(*state, &d, sizeof d);
    return 0;
}

/* {"name","scope", definition members[, "createdAt","updatedAt"]} */
static void render_limit_def(struct buf *b, const char *name, const char *scope,
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
static int stored_def(const struct store_def *l, struct limits_def *d)
{
    json_error_t je;
    char err[200], target[64];
    json_t *j = json_loads(l->text, 0, &je);
    int rc = j ? limits_def_parse(j, d, err, sizeof err, target, sizeof target) : -1;
    json_decref(j);
    return rc < 0 ? -1 : 0;
}

/* A tenant's limit. */
static int render_limit(struct buf *b, struct request *req, const struct store_def *l)
{
    (void)req;
    struct limits_def d;
    if (stored_def(l, &d) < 0)
        return -1;
    render_limit_def(b, l->name, "tenant", &d, l->created_at, l->updated_at);
    return 0;
}

/* {"value": [server limits..., the tenant's limits...]}: few, so not paged. */
static void render_limit_list(struct buf *b, struct request *req, const struct store_def *ls,
                              size_t n)
{
    struct api *api = api_of(req);
    char(*names)[LIMITS_NAME_MAX] = NULL;
    size_t ns = 0;
    limits_server_names(api->limits, &names, &ns);
    int first = 1;
    buf_puts(b, "{\"value\":[");
    for (size_t i = 0; i < ns; i++) {
        struct limits_def d;
        if (!limits_server_def(api->limits, names[i], &d))
            continue;
        buf_puts(b, first ? "" : ",");
        render_limit_def(b, names[i], "server", &d, 0, 0);
        first = 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct limits_def d;
        if (stored_def(&ls[i], &d) < 0)
            continue;
        buf_puts(b, first ? "" : ",");
        render_limit_def(b, ls[i].name, "tenant", &d, ls[i].created_at, ls[i].updated_at);
        first = 0;
    }
    buf_puts(b, "]}");
    free(names);
}

static void limit_stored(struct request *req, const struct store_def *l, void *state)
{
    limits_set_tenant(api_of(req)->limits, req_tenant(req), l->name, state);
}

static void limit_deleted(struct request *req, const char *name)
{
    limits_set_tenant(api_of(req)->limits, req_tenant(req), name, NULL);
}

/* The tenant has no limit of that name: the server may have one, which GET shows and
 * DELETE cannot remove. */
static int limit_missing(struct request *req, const char *name, int deleting)
{
    struct limits_def d;
    if (!limits_server_def(api_of(req)->limits, name, &d))
        return 0;
    if (deleting) {
        reply_errorf(req, SLUICE_E_CONFLICT, "name",
                     "'%.64s' is a server limit, set in the server's configuration; only the "
                     "tenant's own limits can be deleted",
                     name);
        return 1;
    }
    struct buf b = BUF_INIT;
    render_limit_def(&b, name, "server", &d, 0, 0);
    reply_buf(req, 200, "application/json", &b);
    buf_release(&b);
    return 1;
}

const struct def_kind api_def_limits = {
    .kind = STORE_DEF_LIMIT,
    .path = "/v1/limits",
    .noun = "limit",
    .quote_max = 64,
    .name_valid = limits_name_valid,
    .name_rule = "limit names are 1 to 64 characters of A-Z a-z 0-9 _ - .",
    .check_name = CHECK_ON_GET | CHECK_ON_DELETE,
    .accept = limit_accept,
    .render = render_limit,
    .stored = limit_stored,
    .deleted = limit_deleted,
    .missing = limit_missing,
    .render_list = render_limit_list,
    .list_max = MAX_LISTED,
};

/* ---- secrets ------------------------------------------------------------------ */

#define SECRET_VALUE_MIN 8 /* shorter values would mask unrelated text (util/secmask.h) */

/* {"value": "..."} and nothing else; the value is what is stored. */
static int secret_accept(struct request *req, char **text, void **state)
{
    (void)state;
    json_t *j = json_body(req, "request body is not valid JSON: ");
    if (!j)
        return -1;
    json_t *v = json_object_get(j, "value");
    const char *k;
    json_t *x;
    if (json_is_object(j)) {
        json_object_foreach(j, k, x)
        {
            if (strcmp(k, "value") == 0)
                continue;
            reply_errorf(req, SLUICE_E_INVALID_FIELD, k, "unknown field '%.64s'", k);
            json_decref(j);
            return -1;
        }
    }
    size_t vl = json_string_length(v);
    if (!json_is_string(v) || vl < SECRET_VALUE_MIN || vl > SECRETS_VALUE_MAX ||
        strlen(json_string_value(v)) != vl || strpbrk(json_string_value(v), "\r\n")) {
        json_decref(j);
        reply_errorf(req, SLUICE_E_INVALID_FIELD, "value",
                     "value must be a string of %d to %d bytes without NUL, CR or LF",
                     SECRET_VALUE_MIN, SECRETS_VALUE_MAX);
        return -1;
    }
    *text = xstrdup(json_string_value(v));
    json_decref(j);
    return 0;
}

/* {"name","createdAt","updatedAt"}: never the value. */
static int render_secret(struct buf *b, struct request *req, const struct store_def *s)
{
    (void)req;
    char ts[25];
    buf_puts(b, "{\"name\":");
    buf_json_str(b, s->name, strlen(s->name));
    buf_printf(b, ",\"createdAt\":\"%s\"", clock_fmt_ms(s->created_at, ts));
    buf_printf(b, ",\"updatedAt\":\"%s\"}", clock_fmt_ms(s->updated_at, ts));
    return 0;
}

const struct def_kind api_def_secrets = {
    .kind = STORE_DEF_SECRET,
    .path = "/v1/secrets",
    .noun = "secret",
    .quote_max = 64,
    .name_valid = secrets_name_valid,
    .name_rule = "secret names are 1 to 64 characters of A-Z a-z 0-9 _ -",
    .check_name = CHECK_ON_GET | CHECK_ON_DELETE,
    .accept = secret_accept,
    .render = render_secret,
};

/* ---- the handlers --------------------------------------------------------------- */

/* The kind the matched route names (routes.c); replies 500 (a route without one is
 * our bug) and returns NULL when it names none. */
static const struct def_kind *kind_of(struct request *req)
{
    const struct def_kind *k = req_route_arg(req);
    if (!k)
        reply_error(req, SLUICE_E_INTERNAL, NULL, "no definition kind serves this route");
    return k;
}

/* 0 when the {name} parameter follows k's rule, else replies 400 and returns -1. */
static int check_name(struct request *req, const struct def_kind *k)
{
    if (k->name_valid(req_param(req, "name")))
        return 0;
    reply_error(req, SLUICE_E_INVALID_PARAMETER, "name", k->name_rule);
    return -1;
}

static void reply_not_found(struct request *req, const struct def_kind *k)
{
    reply_errorf(req, SLUICE_E_NOT_FOUND, "name", "no %s '%.*s'", k->noun, k->quote_max,
                 req_param(req, "name"));
}

/* Replies status with d as its kind shows it. */
static void reply_def(struct request *req, const struct def_kind *k, int status,
                      const struct store_def *d)
{
    struct buf b = BUF_INIT;
    if (k->render(&b, req, d) < 0)
        reply_errorf(req, SLUICE_E_INTERNAL, NULL, "a stored %s does not parse", k->noun);
    else
        reply_buf(req, status, "application/json", &b);
    buf_release(&b);
}

void api_defs_put(struct request *req)
{
    const struct def_kind *k = kind_of(req);
    if (!k || check_name(req, k) < 0)
        return;
    char *text = NULL;
    void *state = NULL;
    if (k->accept(req, &text, &state) < 0)
        return;
    struct store_def d;
    int rc =
        store_def_put(api_of(req)->st, k->kind, req_tenant(req), req_param(req, "name"), text, &d);
    if (text) /* it may be a secret */
        explicit_bzero(text, strlen(text));
    free(text);
    if (rc == -SLUICE_E_CONFLICT && k->conflict) {
        reply_error(req, rc, "name", k->conflict);
    } else if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
    } else {
        if (k->stored)
            k->stored(req, &d, state);
        if (k->locate) {
            struct buf loc = BUF_INIT;
            buf_printf(&loc, "%s%s/", req_base_url(req), k->path);
            url_encode(&loc, d.name);
            reply_header(req, "Location", loc.data);
            buf_release(&loc);
        }
        reply_def(req, k, rc == STORE_PUT_CREATED ? 201 : 200, &d);
    }
    free(state);
    store_def_release(&d);
}

void api_defs_get(struct request *req)
{
    const struct def_kind *k = kind_of(req);
    if (!k || ((k->check_name & CHECK_ON_GET) && check_name(req, k) < 0))
        return;
    int64_t version = 0;
    if (k->versioned && api_query_int(req, "version", 0, 0, INT64_MAX, &version) < 0)
        return;
    const char *name = req_param(req, "name");
    struct store_def d;
    int rc = store_def_get(api_of(req)->st, k->kind, req_tenant(req), name, version, &d);
    if (rc < 0)
        reply_error(req, rc, NULL, NULL);
    else if (rc == 1)
        reply_def(req, k, 200, &d);
    else if (!k->missing || !k->missing(req, name, 0))
        reply_not_found(req, k);
    store_def_release(&d);
}

void api_defs_delete(struct request *req)
{
    const struct def_kind *k = kind_of(req);
    if (!k || ((k->check_name & CHECK_ON_DELETE) && check_name(req, k) < 0))
        return;
    const char *name = req_param(req, "name");
    int rc = store_def_delete(api_of(req)->st, k->kind, req_tenant(req), name);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
    } else if (rc == 0) {
        if (!k->missing || !k->missing(req, name, 1))
            reply_not_found(req, k);
    } else {
        if (k->deleted)
            k->deleted(req, name);
        reply_empty(req, 204);
    }
}

static void page_def(struct buf *b, const void *e, struct request *req)
{
    ((const struct def_kind *)req_route_arg(req))->render(b, req, e);
}

static void cursor_def(struct buf *q, const void *e)
{
    buf_puts(q, "after=");
    url_encode(q, ((const struct store_def *)e)->name);
}

void api_defs_list(struct request *req)
{
    const struct def_kind *k = kind_of(req);
    if (!k)
        return;
    int64_t limit = 0;
    size_t fetch = k->list_max;
    const char *after = NULL;
    if (!k->render_list) {
        if (api_query_int(req, "limit", 100, 1, 1000, &limit) < 0)
            return;
        after = req_query(req, "after");
        fetch = (size_t)limit + 1; /* one more tells whether another page follows */
    }
    struct store_def *ds = NULL;
    size_t n = 0;
    int rc = store_def_list(api_of(req)->st, k->kind, req_tenant(req), after, fetch, &ds, &n);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
    } else if (k->render_list) {
        struct buf b = BUF_INIT;
        k->render_list(&b, req, ds, n);
        reply_buf(req, 200, "application/json", &b);
        buf_release(&b);
    } else {
        api_reply_page(req, ds, n, sizeof *ds, limit, page_def, cursor_def, NULL);
    }
    store_defs_free(ds, n);
}
