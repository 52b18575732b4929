/* fuzz-link: src/spec src/lang src/ingest src/util */
/* fuzz_wfdef.c - libFuzzer target for workflow definitions (src/spec/workflow.c), the
 * body of PUT /v1/workflows/{name}.
 *
 * Input: a definition, taken as the API takes it (ingest_validate_json() with depth 64,
 * then jansson with JSON_REJECT_DUPLICATES; anything else is rejected early). An input
 * that starts with '!' is instead a workflow name (the rest, up to a NUL). Invariants
 * (abort() on violation):
 *  - wfdef_compile() returns 0 with a definition or -SLUICE_E_INVALID_FIELD without one,
 *    with a message and, for an object, a target that names a top-level member or an
 *    existing step ("steps[i]..."), and the API's error body made of them is JSON; it
 *    never modifies the JSON it compiles;
 *  - a compiled definition mirrors its JSON: 1..32 steps, unique valid names (or the
 *    type's), the step types and onError values written, retry limits in range, has_http
 *    exactly when some step is http, http urls with their http(s) scheme and a method;
 *  - what the API stores (json_dumps(def, JSON_COMPACT)) loads back the way wfload()
 *    loads it and compiles again to the same steps: a stored workflow always runs;
 *  - run against a fixed item, compiled steps behave: schema_validate() counts what it
 *    reports, a failed map_apply() leaves the context as it was, a rendered url keeps its
 *    scheme, and templates fail only on a missing path (their syntax was checked);
 *  - wfdef_name_valid() and wfdef_builtin() never both accept a name, and a built-in
 *    name resolves to its one step (noop, or C.upsert/patch/delete on collection C). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "lang/map.h"
#include "lang/path.h"
#include "lang/schema.h"
#include "lang/template.h"
#include "spec/workflow.h"
#include "util/buf.h"
#include "util/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ctx_text[] =
    "{\"data\": {\"sku\": \"X-1\", \"title\": \"Lamp\", \"price\": {\"amount\": 1999},"
    " \"tags\": [\"a\", \"b\"], \"n\": null, \"ok\": true, \"qty\": 3, \"f\": 2.5,"
    " \"attributes\": {\"color\": \"red\"}, \"items\": [{\"sku\": \"A\"}, {\"id\": 2}]},"
    " \"ref\": \"r-1\", \"index\": 7, \"job\": {\"id\": \"job_1\"},"
    " \"steps\": {\"push\": {\"status\": 201, \"body\": {\"id\": \"u1\"}}}}";

static void fail(const char *what)
{
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
}

/* An error message about a missing path (or one cut to its buffer of errlen bytes). */
static int missing_path(const char *err, size_t errlen)
{
    size_t n = strlen(err), m = strlen(" is missing");
    return (n >= m && strcmp(err + n - m, " is missing") == 0) || n == errlen - 1;
}

static int name_chars_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* ---- names ------------------------------------------------------------------------ */

static void fuzz_name(const char *name)
{
    struct wfdef *w = NULL;
    int valid = wfdef_name_valid(name);
    int rc = wfdef_builtin(name, &w);
    if (rc != 0 && rc != -SLUICE_E_UNKNOWN_WORKFLOW)
        fail("wfdef_builtin return code");
    if ((rc == 0) != (w != NULL))
        fail("wfdef_builtin rc and definition disagree");
    if (rc < 0)
        return;
    if (valid)
        fail("a built-in name is also a valid stored name");
    if (!w->builtin || w->nsteps != 1 || strcmp(w->name, name) != 0)
        fail("built-in shape");
    const struct step_def *s = &w->steps[0];
    if (strcmp(name, "noop") == 0) {
        if (s->type != STEP_NOOP)
            fail("noop is not a noop step");
    } else {
        const char *dot = strrchr(name, '.');
        if (!dot || strcmp(dot + 1, wfdef_step_type_name(s->type)) != 0 ||
            wfdef_step_store_op(s->type) == STORE_OP_NONE)
            fail("built-in step type is not the name's suffix");
        if (strlen(s->collection) != (size_t)(dot - name) ||
            strncmp(s->collection, name, (size_t)(dot - name)) != 0 ||
            !wfdef_collection_valid(s->collection))
            fail("built-in collection is not the name's prefix");
    }
    wfdef_free(w);
}

/* ---- compiled definitions ------------------------------------------------------------- */

static const char *on_error_name(enum step_on_error e)
{
    return e == ON_ERROR_SKIP ? "skip" : e == ON_ERROR_CONTINUE ? "continue" : "fail";
}

/* Checks that w is what def says. */
static void check_compiled(json_t *def, const struct wfdef *w)
{
    json_t *steps = json_object_get(def, "steps");
    size_t n = json_array_size(steps);
    if (n < 1 || n > 32 || w->nsteps != n || w->builtin)
        fail("number of steps");
    int http = 0;
    for (size_t i = 0; i < n; i++) {
        const struct step_def *s = &w->steps[i];
        json_t *j = json_array_get(steps, i);
        const char *type = json_string_value(json_object_get(j, "type"));
        if (!type || strcmp(type, wfdef_step_type_name(s->type)) != 0)
            fail("step type differs from its JSON");
        const char *name = json_string_value(json_object_get(j, "name"));
        if (strcmp(s->name, name ? name : type) != 0 || !name_chars_ok(s->name, 64))
            fail("step name differs from its JSON or is not a valid name");
        for (size_t k = 0; k < i; k++)
            if (strcmp(w->steps[k].name, s->name) == 0)
                fail("two steps share a name");
        const char *oe = json_string_value(json_object_get(j, "onError"));
        if (strcmp(on_error_name(s->on_error), oe ? oe : "fail") != 0)
            fail("onError differs from its JSON");
        if (s->max_attempts < 1 || s->max_attempts > 20 || s->backoff_ms < 0 ||
            s->max_backoff_ms < 0)
            fail("retry out of range");
        switch (s->type) {
        case STEP_VALIDATE:
            if (!s->schema)
                fail("validate step without a schema");
            break;
        case STEP_MAP:
            if (!s->map)
                fail("map step without a map");
            break;
        case STEP_UPSERT:
        case STEP_PATCH:
        case STEP_DELETE:
            if (!wfdef_collection_valid(s->collection) ||
                (s->ref_from && path_check(s->ref_from, NULL, 0) < 0))
                fail("document step with a bad collection or refFrom");
            break;
        case STEP_HTTP:
            http = 1;
            if (!s->url || !s->method ||
                (strncmp(s->url, "http://", 7) != 0 && strncmp(s->url, "https://", 8) != 0) ||
                template_check(s->url, NULL, 0) < 0 || s->timeout_ms < 100 ||
                s->timeout_ms > 300000)
                fail("http step with a bad url, method or timeout");
            break;
        case STEP_FAIL:
            if (!s->fail_code || !s->fail_message || !name_chars_ok(s->fail_code, 48))
                fail("fail step without a valid code or message");
            break;
        case STEP_NOOP:
            break;
        }
    }
    if (w->has_http != http)
        fail("has_http differs from the steps");
}

/* A template that passed template_check() may fail to render only for a missing path. */
static void render_ok(const char *tpl, json_t *ctx, int url, struct buf *b)
{
    char err[256];
    buf_reset(b);
    if (template_render(tpl, ctx, url, b, err, sizeof err) < 0 && !missing_path(err, sizeof err))
        fail("checked template failed to render for another reason than a missing path");
}

/* Runs the compiled steps on a copy of a fixed item, as the pipeline would. */
static void run_steps(const struct wfdef *w)
{
    json_t *ctx = json_loads(ctx_text, 0, NULL);
    if (!ctx)
        fail("fixture");
    struct buf b = BUF_INIT;
    char err[256];
    for (size_t i = 0; i < w->nsteps; i++) {
        const struct step_def *s = &w->steps[i];
        if (s->type == STEP_VALIDATE) {
            json_t *v = json_array();
            int nv = schema_validate(s->schema, json_object_get(ctx, "data"), v);
            if (nv < 0 || (size_t)nv != json_array_size(v))
                fail("schema_validate count");
            json_decref(v);
        } else if (s->type == STEP_MAP) {
            json_t *before = json_deep_copy(ctx);
            if (map_apply(s->map, ctx, err, sizeof err) < 0 && !json_equal(before, ctx))
                fail("failed map_apply changed the context");
            json_decref(before);
        } else if (s->type == STEP_HTTP) {
            render_ok(s->url, ctx, 1, &b);
            if (b.len && strncmp(b.data, s->url, strncmp(s->url, "https", 5) ? 7 : 8) != 0)
                fail("rendered url lost its scheme");
            const char *k;
            json_t *t;
            json_object_foreach(s->headers, k, t) render_ok(json_string_value(t), ctx, 0, &b);
            if (s->body) {
                json_t *v = template_eval(s->body, ctx, err, sizeof err);
                if (!v && !missing_path(err, sizeof err))
                    fail("checked body failed to evaluate for another reason");
                json_decref(v);
            }
        } else if (s->ref_from) {
            (void)path_get(ctx, s->ref_from);
        }
    }
    buf_release(&b);
    json_decref(ctx);
}

/* The API's error body for this error, built as reply_error() builds it, is JSON. */
static void check_error_body(const char *err, const char *target)
{
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"error\":{\"code\":\"InvalidField\",\"message\":");
    buf_json_str(&b, err, strlen(err));
    buf_puts(&b, ",\"target\":");
    if (target[0])
        buf_json_str(&b, target, strlen(target));
    else
        buf_puts(&b, "null");
    buf_puts(&b, "}}");
    json_error_t je;
    json_t *v = json_loadb(b.data, b.len, 0, &je);
    if (!v)
        fail("the error body is not JSON (a message or target cut inside a UTF-8 sequence?)");
    json_decref(v);
    buf_release(&b);
}

/* The target names an existing step, "steps" or a member of the definition. */
static void check_target(json_t *def, const char *target, size_t targetlen)
{
    if (!json_is_object(def) || json_object_get(def, target))
        return;
    const char *k;
    json_t *v;
    size_t n = strlen(target);
    if (n == targetlen - 1) /* cut to the buffer: a member name that starts so */
        json_object_foreach(def, k, v) if (strncmp(k, target, n) == 0) return;
    if (strncmp(target, "steps[", 6) == 0) {
        char *end;
        unsigned long i = strtoul(target + 6, &end, 10);
        if (*end != ']' || i >= json_array_size(json_object_get(def, "steps")))
            fail("target names a step that does not exist");
        return;
    }
    if (strcmp(target, "steps") != 0)
        fail("target names neither steps nor a member of the definition");
}

static void fuzz_definition(const char *p, size_t n)
{
    struct ingest_error ie;
    if (ingest_validate_json(p, n, 64, &ie) < 0)
        return;
    json_error_t je;
    json_t *def = json_loadb(p, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!def)
        return;
    json_t *orig = json_deep_copy(def);
    struct wfdef *w = NULL;
    char err[300], target[160];
    memset(target, 'x', sizeof target);
    int rc = wfdef_compile("fuzz", 3, def, &w, err, sizeof err, target, sizeof target);
    if (!memchr(target, '\0', sizeof target))
        fail("target not terminated");
    if (!json_equal(def, orig))
        fail("wfdef_compile modified its input");
    if ((rc == 0) != (w != NULL))
        fail("rc and definition disagree");
    if (rc < 0) {
        if (rc != -SLUICE_E_INVALID_FIELD || !err[0])
            fail("compile error without the code or a message");
        check_target(def, target, sizeof target);
        check_error_body(err, target);
        goto out;
    }
    if (w->version != 3 || strcmp(w->name, "fuzz") != 0)
        fail("name or version");
    check_compiled(def, w);

    /* Stored as the API stores it, loaded as wfload() loads it. */
    char *text = json_dumps(def, JSON_COMPACT);
    json_t *again = text ? json_loads(text, 0, &je) : NULL;
    struct wfdef *w2 = NULL;
    if (!again || wfdef_compile("fuzz", 3, again, &w2, err, sizeof err, target, sizeof target) < 0)
        fail("a stored definition does not load and compile again");
    if (w2->nsteps != w->nsteps)
        fail("recompiled definition differs");
    for (size_t i = 0; i < w->nsteps; i++)
        if (w2->steps[i].type != w->steps[i].type || strcmp(w2->steps[i].name, w->steps[i].name))
            fail("recompiled definition differs");
    wfdef_free(w2);
    json_decref(again);
    free(text);

    run_steps(w);
    wfdef_free(w);
out:
    json_decref(orig);
    json_decref(def);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == '!') {
        char *name = malloc(size);
        memcpy(name, data + 1, size - 1);
        name[size - 1] = '\0';
        fuzz_name(name);
        free(name);
        return 0;
    }
    fuzz_definition((const char *)data, size);
    return 0;
}
