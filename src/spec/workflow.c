/* workflow.c - compiling workflow definitions (see workflow.h). Validation happens here,
 * on write, so a stored definition always compiles again when a job runs it; every
 * error names its location ("steps[2].retry.maxAttempts"). */
#include "spec/workflow.h"

#include "spec/batch.h"

#include "spec/limit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lang/map.h"
#include "lang/path.h"
#include "lang/schema.h"
#include "lang/template.h"
#include "spec/secrets.h"
#include "util/errmsg.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/xmalloc.h"

#define TYPE_NAME(e, name, op, each, batch) [STEP_##e] = name,
static const char *const type_names[] = {STEP_TYPES(TYPE_NAME)};
#undef TYPE_NAME

#define TYPE_OP(e, name, op, each, batch) [STEP_##e] = op,
static const enum store_op type_ops[] = {STEP_TYPES(TYPE_OP)};
#undef TYPE_OP

const char *wfdef_step_type_name(enum step_type t)
{
    return type_names[t];
}

enum store_op wfdef_step_store_op(enum step_type t)
{
    return type_ops[t];
}

int wfdef_collection_valid(const char *name)
{
    return ids_name_valid(name, 64, NULL);
}

static int builtin_parts(const char *name, char coll[65], enum step_type *type)
{
    if (strcmp(name, "noop") == 0) {
        *type = STEP_NOOP;
        coll[0] = '\0';
        return 1;
    }
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    const char *op = dot + 1;
    if (strcmp(op, "upsert") == 0)
        *type = STEP_UPSERT;
    else if (strcmp(op, "patch") == 0)
        *type = STEP_PATCH;
    else if (strcmp(op, "delete") == 0)
        *type = STEP_DELETE;
    else
        return 0;
    size_t n = (size_t)(dot - name);
    if (n == 0 || n > 64)
        return -1;
    memcpy(coll, name, n);
    coll[n] = '\0';
    return wfdef_collection_valid(coll) ? 1 : -1;
}

int wfdef_name_valid(const char *name)
{
    char coll[65];
    enum step_type t;
    return ids_name_valid(name, 128, ".") && builtin_parts(name, coll, &t) == 0;
}

static struct wfdef *wfdef_new(const char *name, size_t nsteps)
{
    struct wfdef *w = xcalloc(1, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    w->nsteps = nsteps;
    w->steps = xcalloc(nsteps ? nsteps : 1, sizeof *w->steps);
    for (size_t i = 0; i < nsteps; i++) {
        w->steps[i].max_attempts = 1;
        w->steps[i].backoff_ms = 200;
        w->steps[i].max_backoff_ms = 10000;
        w->steps[i].timeout_ms = 10000;
    }
    return w;
}

int wfdef_builtin(const char *name, struct wfdef **out)
{
    char coll[65];
    enum step_type t;
    if (builtin_parts(name, coll, &t) != 1)
        return -SLUICE_E_UNKNOWN_WORKFLOW;
    struct wfdef *w = wfdef_new(name, 1);
    w->builtin = 1;
    struct step_def *s = &w->steps[0];
    s->type = t;
    snprintf(s->name, sizeof s->name, "%s", type_names[t]);
    snprintf(s->collection, sizeof s->collection, "%s", coll);
    *out = w;
    return 0;
}

void wfdef_free(struct wfdef *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nsteps; i++) {
        struct step_def *s = &w->steps[i];
        if (s->schema)
            schema_free(s->schema);
        if (s->map)
            map_free(s->map);
        free(s->ref_from);
        free(s->method);
        free(s->url);
        json_decref(s->headers);
        json_decref(s->body);
        batch_free(s->batch);
        free(s->fail_code);
        free(s->fail_message);
        free(s->limits);
    }
    free(w->limits);
    free(w->steps);
    free(w);
}

/* ---- compiling ------------------------------------------------------------------- */

struct cc {
    char *err;
    size_t errlen;
    char *target;
    size_t targetlen;
    size_t step; /* index of the step being compiled */
};

static int fail(struct cc *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct cc *c, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errmsg_vset(c->err, c->errlen, fmt, ap);
    va_end(ap);
    if (field && field[0])
        snprintf(c->target, c->targetlen, "steps[%zu].%s", c->step, field);
    else
        snprintf(c->target, c->targetlen, "steps[%zu]", c->step);
    return -SLUICE_E_INVALID_FIELD;
}

/* Checks that obj has only the allowed keys (NULL-terminated list). */
static int only_keys(struct cc *c, json_t *obj, const char *prefix, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        int ok = !prefix[0] && strcmp(k, "limits") == 0; /* every step may name limits */
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0)
                ok = 1;
        if (!ok) {
            char field[160];
            snprintf(field, sizeof field, "%s%s", prefix, k);
            return fail(c, field, "unknown field '%s'", k);
        }
    }
    return 0;
}

static int get_str(struct cc *c, json_t *obj, const char *key, int required, const char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) {
        if (required)
            return fail(c, key, "'%s' is required", key);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0)
        return fail(c, key, "'%s' must be a non-empty string", key);
    *out = json_string_value(v);
    return 0;
}

static int get_long(struct cc *c, json_t *obj, const char *key, const char *field, long min,
                    long max, long *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return fail(c, field, "'%s' must be an integer from %ld to %ld", key, min, max);
    *out = (long)json_integer_value(v);
    return 0;
}

static int check_template(struct cc *c, const char *field, const char *tpl)
{
    char e[200];
    if (template_check(tpl, e, sizeof e) < 0)
        return fail(c, field, "invalid template: %s", e);
    return 0;
}

/* Every string inside a template value must be a valid template; the error names
 * the string's own place ("body.a[1]"). */
static int check_template_value(struct cc *c, const char *field, json_t *v)
{
    char e[200], where[160], at[200];
    where[0] = '\0';
    if (template_check_value(v, e, sizeof e, where, sizeof where) == 0)
        return 0;
    snprintf(at, sizeof at, "%s%s%s", field, where[0] && where[0] != '[' ? "." : "", where);
    return fail(c, at, "invalid template: %s", e);
}

static int compile_http(struct cc *c, json_t *j, struct step_def *s)
{
    static const char *const keys[] = {"name",      "type",       "onError", "retry",
                                       "method",    "url",        "headers", "body",
                                       "timeoutMs", "secretBody", "batch",   NULL};
    const char *method = "POST", *url;
    int rc;
    if ((rc = only_keys(c, j, "", keys)) < 0 || (rc = get_str(c, j, "url", 1, &url)) < 0)
        return rc;
    json_t *m = json_object_get(j, "method");
    if (m) {
        static const char *const ok[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
        int found = 0;
        for (const char *const *o = ok; *o; o++)
            if (json_is_string(m) && strcmp(json_string_value(m), *o) == 0)
                found = 1;
        if (!found)
            return fail(c, "method", "method must be GET, POST, PUT, PATCH or DELETE");
        method = json_string_value(m);
    }
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return fail(c, "url", "url must start with http:// or https://");
    if ((rc = check_template(c, "url", url)) < 0)
        return rc;
    json_t *h = json_object_get(j, "headers");
    if (h) {
        if (!json_is_object(h))
            return fail(c, "headers", "headers must be an object of name: template");
        const char *k;
        json_t *v;
        json_object_foreach(h, k, v)
        {
            char field[160];
            snprintf(field, sizeof field, "headers.%s", k);
            if (!ids_name_valid(k, 64, NULL) || !json_is_string(v) ||
                strpbrk(json_string_value(v), "\r\n"))
                return fail(c, field, "header names are tokens and values strings without CR/LF");
            if (!strcasecmp(k, "Idempotency-Key") || !strcasecmp(k, "Content-Length") ||
                !strcasecmp(k, "Host") || !strcasecmp(k, "Transfer-Encoding"))
                return fail(c, field, "the header %s is set by sluice", k);
            if ((rc = check_template(c, field, json_string_value(v))) < 0)
                return rc;
        }
        s->headers = json_incref(h);
    }
    json_t *sb = json_object_get(j, "secretBody");
    if (sb && !json_is_boolean(sb))
        return fail(c, "secretBody", "secretBody must be true or false");
    s->secret_body = json_is_true(sb);
    json_t *b = json_object_get(j, "body");
    if (b) {
        if ((rc = check_template_value(c, "body", b)) < 0)
            return rc;
        s->body = json_incref(b);
    }
    if ((rc = get_long(c, j, "timeoutMs", "timeoutMs", 100, 300000, &s->timeout_ms)) < 0)
        return rc;
    json_t *bd = json_object_get(j, "batch");
    if (bd) {
        char field[80], at[100];
        if (!strcmp(method, "GET") || !strcmp(method, "DELETE"))
            return fail(c, "batch",
                        "a batched request sends its items in the body: use POST, "
                        "PUT or PATCH");
        if ((rc = batch_compile(bd, &s->batch, c->err, c->errlen, field, sizeof field)) < 0) {
            snprintf(at, sizeof at, "batch%s%s", field[0] ? "." : "", field);
            snprintf(c->target, c->targetlen, "steps[%zu].%s", c->step, at);
            return rc;
        }
    }
    s->method = xstrdup(method);
    s->url = xstrdup(url);
    return 0;
}

/* "limits": an array of up to 8 limit names, no repeats. [out] *names (heap), *n. */
static int parse_limits(json_t *v, char (**names)[65], size_t *n, char *err, size_t errlen)
{
    size_t k;
    json_t *e;
    *names = NULL;
    *n = 0;
    if (!v)
        return 0;
    if (!json_is_array(v) || json_array_size(v) > 8) {
        snprintf(err, errlen, "limits must be an array of at most 8 limit names");
        return -1;
    }
    *names = xcalloc(json_array_size(v) + 1, sizeof **names);
    json_array_foreach(v, k, e)
    {
        const char *nm = json_is_string(e) ? json_string_value(e) : "";
        int dup = 0;
        for (size_t i = 0; i < *n; i++)
            dup |= strcmp((*names)[i], nm) == 0;
        if (!limits_name_valid(nm) || dup) {
            snprintf(err, errlen,
                     "limit names are 1 to 64 characters of A-Z a-z 0-9 _ - ., "
                     "each once");
            free(*names);
            *names = NULL;
            *n = 0;
            return -1;
        }
        snprintf((*names)[(*n)++], 65, "%s", nm);
    }
    return 0;
}

/* The host of an http(s) URL template when the template does not decide it per item. */
static void url_host(const char *url, char *out, size_t outlen)
{
    const char *p = strstr(url, "://");
    out[0] = '\0';
    if (!p)
        return;
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n); /* userinfo */
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (n == 0 || n >= outlen || memmem(p, n, "{{", 2))
        return;
    memcpy(out, p, n);
    out[n] = '\0';
    if (out[0] == '[') { /* an IPv6 literal, named without brackets like libcurl does */
        char *end = strchr(out, ']');
        if (!end) {
            out[0] = '\0';
            return;
        }
        *end = '\0';
        memmove(out, out + 1, strlen(out));
    } else { /* drop a port */
        char *colon = strrchr(out, ':');
        if (colon)
            *colon = '\0';
    }
}

/* The origin ("host:port", the scheme's default port when none is given; outbound.h)
 * of an http(s) URL template when the template fixes it, else "". */
static void url_origin(const char *url, const char *host, char *out, size_t outlen)
{
    const char *p = strstr(url, "://");
    out[0] = '\0';
    if (!host[0] || !p)
        return;
    const char *dflt = (p - url == 4 && !strncasecmp(url, "http", 4))    ? "80"
                       : (p - url == 5 && !strncasecmp(url, "https", 5)) ? "443"
                                                                         : NULL;
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *end = p + n, *port = NULL;
    const char *close = p[0] == '[' ? memchr(p, ']', n) : NULL;
    const char *colon = memrchr(close ? close : p, ':', (size_t)(end - (close ? close : p)));
    if (colon)
        port = colon + 1;
    if (port && port < end)
        snprintf(out, outlen, "%s:%.*s", host, (int)(end - port), port);
    else if (dflt)
        snprintf(out, outlen, "%s:%s", host, dflt);
}

static int compile_step(struct cc *c, json_t *j, struct step_def *s, struct wfdef *w)
{
    int rc;
    char e[200], where[160], field[200];
    if (!json_is_object(j))
        return fail(c, NULL, "a step must be an object");
    const char *type, *name, *onerr;
    if ((rc = get_str(c, j, "type", 1, &type)) < 0)
        return rc;
    int t = -1;
    for (int i = 0; i < (int)(sizeof type_names / sizeof type_names[0]); i++)
        if (strcmp(type, type_names[i]) == 0)
            t = i;
    if (t < 0)
        return fail(c, "type",
                    "unknown step type '%.40s' (validate, map, upsert, patch, delete, "
                    "http, noop, fail)",
                    type);
    s->type = (enum step_type)t;
    if ((rc = get_str(c, j, "name", 0, &name)) < 0)
        return rc;
    if (name && !ids_name_valid(name, 64, NULL))
        return fail(c, "name", "step names are 1 to 64 characters of A-Z a-z 0-9 _ -");
    snprintf(s->name, sizeof s->name, "%s", name ? name : type);
    for (size_t i = 0; i < c->step; i++)
        if (strcmp(w->steps[i].name, s->name) == 0)
            return fail(c, "name", "step name '%s' is used twice; name the steps", s->name);
    if ((rc = get_str(c, j, "onError", 0, &onerr)) < 0)
        return rc;
    if (onerr) {
        if (!strcmp(onerr, "fail"))
            s->on_error = ON_ERROR_FAIL;
        else if (!strcmp(onerr, "skip"))
            s->on_error = ON_ERROR_SKIP;
        else if (!strcmp(onerr, "continue"))
            s->on_error = ON_ERROR_CONTINUE;
        else
            return fail(c, "onError", "onError must be fail, skip or continue");
    }
    json_t *retry = json_object_get(j, "retry");
    if (retry) {
        static const char *const rk[] = {"maxAttempts", "backoffMs", "maxBackoffMs", NULL};
        long ma = 3;
        if (!json_is_object(retry))
            return fail(c, "retry", "retry must be an object");
        if ((rc = only_keys(c, retry, "retry.", rk)) < 0 ||
            (rc = get_long(c, retry, "maxAttempts", "retry.maxAttempts", 1, 20, &ma)) < 0 ||
            (rc = get_long(c, retry, "backoffMs", "retry.backoffMs", 0, 600000, &s->backoff_ms)) <
                0 ||
            (rc = get_long(c, retry, "maxBackoffMs", "retry.maxBackoffMs", 0, 3600000,
                           &s->max_backoff_ms)) < 0)
            return rc;
        s->max_attempts = (int)ma;
    }
    if (parse_limits(json_object_get(j, "limits"), &s->limits, &s->nlimits, e, sizeof e) < 0)
        return fail(c, "limits", "%s", e);
    static const char *const base[] = {"name", "type", "onError", "retry", NULL};
    switch (s->type) {
    case STEP_NOOP:
        return only_keys(c, j, "", base);
    case STEP_FAIL: {
        static const char *const keys[] = {"name", "type",    "onError", "retry",
                                           "code", "message", NULL};
        const char *code, *msg;
        if ((rc = only_keys(c, j, "", keys)) < 0 || (rc = get_str(c, j, "code", 0, &code)) < 0 ||
            (rc = get_str(c, j, "message", 0, &msg)) < 0)
            return rc;
        if (code && !ids_name_valid(code, 48, NULL))
            return fail(c, "code", "code must be 1 to 48 characters of A-Z a-z 0-9 _ -");
        s->fail_code = xstrdup(code ? code : "StepFailed");
        s->fail_message = xstrdup(msg ? msg : "the workflow's fail step failed the item");
        return 0;
    }
    case STEP_VALIDATE: {
        static const char *const keys[] = {"name", "type", "onError", "retry", "schema", NULL};
        json_t *sch = json_object_get(j, "schema");
        if ((rc = only_keys(c, j, "", keys)) < 0)
            return rc;
        if (!sch)
            return fail(c, "schema", "'schema' is required");
        where[0] = '\0';
        if (schema_compile(sch, &s->schema, e, sizeof e, where, sizeof where) < 0) {
            snprintf(field, sizeof field, "schema%s%s", where[0] ? "." : "", where);
            return fail(c, field, "invalid schema: %s", e);
        }
        return 0;
    }
    case STEP_MAP: {
        static const char *const keys[] = {"name", "type", "onError", "retry", "ops", NULL};
        if ((rc = only_keys(c, j, "", keys)) < 0)
            return rc;
        json_t *spec = json_pack("{s:O*}", "ops", json_object_get(j, "ops"));
        where[0] = '\0';
        rc = map_compile(spec, &s->map, e, sizeof e, where, sizeof where);
        json_decref(spec);
        if (rc < 0)
            return fail(c, where[0] ? where : "ops", "invalid map: %s", e);
        return 0;
    }
    case STEP_UPSERT:
    case STEP_PATCH:
    case STEP_DELETE: {
        static const char *const keys[] = {"name",       "type",    "onError", "retry",
                                           "collection", "refFrom", NULL};
        const char *coll, *ref_from;
        if ((rc = only_keys(c, j, "", keys)) < 0 ||
            (rc = get_str(c, j, "collection", 1, &coll)) < 0 ||
            (rc = get_str(c, j, "refFrom", 0, &ref_from)) < 0)
            return rc;
        if (!wfdef_collection_valid(coll))
            return fail(c, "collection",
                        "collection names are 1 to 64 characters of A-Z a-z 0-9 _ -");
        snprintf(s->collection, sizeof s->collection, "%s", coll);
        if (ref_from) {
            if (path_check(ref_from, e, sizeof e) < 0)
                return fail(c, "refFrom", "invalid path: %s", e);
            s->ref_from = xstrdup(ref_from);
        }
        return 0;
    }
    case STEP_HTTP:
        w->has_http = 1;
        if ((rc = compile_http(c, j, s)) < 0)
            return rc;
        url_host(s->url, s->host, sizeof s->host);
        url_origin(s->url, s->host, s->origin, sizeof s->origin);
        return 0;
    }
    return 0;
}

int wfdef_compile(const char *name, int64_t version, json_t *def, struct wfdef **out, char *err,
                  size_t errlen, char *target, size_t targetlen)
{
    struct cc c = {err, errlen, target, targetlen, 0};
    err[0] = target[0] = '\0';
    if (!json_is_object(def)) {
        snprintf(err, errlen, "a workflow definition is a JSON object with \"steps\"");
        return -SLUICE_E_INVALID_FIELD;
    }
    const char *k;
    json_t *v;
    json_object_foreach(def, k, v)
    {
        if (strcmp(k, "steps") && strcmp(k, "description") && strcmp(k, "limits") &&
            strcmp(k, "refOrder")) {
            snprintf(err, errlen, "unknown field '%s'", k);
            snprintf(target, targetlen, "%s", k);
            return -SLUICE_E_INVALID_FIELD;
        }
    }
    json_t *d = json_object_get(def, "description");
    if (d && (!json_is_string(d) || json_string_length(d) > 1000)) {
        snprintf(err, errlen, "description must be a string of at most 1000 bytes");
        snprintf(target, targetlen, "description");
        return -SLUICE_E_INVALID_FIELD;
    }
    json_t *ro = json_object_get(def, "refOrder");
    int ref_order = STORE_REF_ORDER_JOB;
    if (ro && json_is_string(ro) && strcmp(json_string_value(ro), "tenant") == 0)
        ref_order = STORE_REF_ORDER_TENANT;
    else if (ro && !(json_is_string(ro) && strcmp(json_string_value(ro), "job") == 0)) {
        snprintf(err, errlen, "refOrder must be \"job\" or \"tenant\"");
        snprintf(target, targetlen, "refOrder");
        return -SLUICE_E_INVALID_FIELD;
    }
    json_t *steps = json_object_get(def, "steps");
    if (!json_is_array(steps) || json_array_size(steps) == 0 ||
        json_array_size(steps) > WFDEF_MAX_STEPS) {
        snprintf(err, errlen, "steps must be an array of 1 to %d steps", WFDEF_MAX_STEPS);
        snprintf(target, targetlen, "steps");
        return -SLUICE_E_INVALID_FIELD;
    }
    /* Secrets only where they are meant to be (spec/secrets.h): checked on the whole
     * definition first, so a stored definition from before the rule fails to load
     * rather than render a secret where it could leak. */
    if (secrets_check_definition(def, err, errlen, target, targetlen) < 0)
        return -SLUICE_E_INVALID_FIELD;
    struct wfdef *w = wfdef_new(name, json_array_size(steps));
    w->version = version;
    w->ref_order = ref_order;
    if (parse_limits(json_object_get(def, "limits"), &w->limits, &w->nlimits, err, errlen) < 0) {
        snprintf(target, targetlen, "limits");
        wfdef_free(w);
        return -SLUICE_E_INVALID_FIELD;
    }
    for (c.step = 0; c.step < w->nsteps; c.step++) {
        int rc = compile_step(&c, json_array_get(steps, c.step), &w->steps[c.step], w);
        if (rc < 0) {
            w->nsteps = c.step + 1; /* free what was compiled so far */
            wfdef_free(w);
            return rc;
        }
    }
    size_t uses = w->nlimits;
    for (size_t i = 0; i < w->nsteps; i++)
        uses += w->steps[i].nlimits;
    if (uses > LIMITS_MAX_USES) {
        snprintf(err, errlen, "a workflow may name at most %d limits in all (steps included)",
                 LIMITS_MAX_USES);
        snprintf(target, targetlen, "limits");
        wfdef_free(w);
        return -SLUICE_E_INVALID_FIELD;
    }
    *out = w;
    return 0;
}
