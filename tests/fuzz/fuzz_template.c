/* fuzz-link: src/lang src/util */
/* fuzz_template.c - libFuzzer target for the step building blocks (src/lang): templates,
 * dotted paths, and JSON-valued step definitions.
 *
 * Input layout: everything up to the first '\n' is text T, the rest is R. T is used as a
 * template and as a path against a fixed context; R, when it parses as JSON, is used as
 * a template value, a map spec and (when it mentions no "pattern", to keep slow regular
 * expressions out of the run) a schema. Invariants checked (abort() on violation):
 *  - template_render() succeeds only when template_check() does; when the check fails
 *    render fails with the same message; a failed render leaves the buffer unchanged; a
 *    check-valid template fails to render only with "... is missing";
 *  - template_eval() of T as a JSON string succeeds exactly when rendering T does;
 *  - path_get/set/remove fail on paths path_check() rejects; after a successful
 *    path_set() the value is found at the path; a failed path_set() changes nothing;
 *  - template_check_value() failing implies template_eval() fails; every failure has a
 *    message;
 *  - map_apply() either succeeds or leaves the context exactly as it was;
 *  - schema_validate() returns the number of violations it appends. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/map.h"
#include "lang/path.h"
#include "lang/schema.h"
#include "lang/template.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ctx_text[] =
    "{\"data\": {\"title\": \"Lamp\", \"price\": 19.99, \"qty\": 3, \"ok\": true, \"none\": null,"
    " \"attributes\": {\"color\": \"red & blue\"}, \"tags\": [\"a\", \"b\"],"
    " \"items\": [{\"sku\": \"X1\"}, {\"sku\": \"X2\", \"n\": [1, [2, {\"z\": 0}]]}],"
    " \"0\": \"zero\", \"a b\": \"spaced\", \"caf\\u00e9\": 1.5e300},"
    " \"ref\": \"r-1\", \"index\": 7, \"job\": {\"id\": \"j1\"},"
    " \"steps\": {\"push\": {\"response\": {\"status\": 201, \"body\": [{}]}}}}";

static void fail(const char *what)
{
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void fuzz_text(json_t *ctx, const char *t)
{
    char err[512], err2[512];
    int ok = template_check(t, err, sizeof err) == 0;
    struct buf b = BUF_INIT;
    for (int url = 0; url <= 1; url++) {
        buf_reset(&b);
        buf_puts(&b, "pre");
        err2[0] = '\0';
        int rc = template_render(t, ctx, url, &b, err2, sizeof err2);
        if (rc == 0 && !ok)
            fail("render accepted what check rejected");
        if (rc < 0 && (b.len != 3 || strcmp(b.data, "pre") != 0))
            fail("failed render left output behind");
        if (!ok && rc < 0 && !ends_with(err2, " is missing") && strcmp(err, err2) != 0)
            fail("render and check disagree on the syntax error");
        if (rc < 0 && ok && !ends_with(err2, " is missing"))
            fail("check-valid template failed for another reason than a missing path");
        if (rc == 0 && url) /* values are percent-encoded, so a NUL byte shows as %00 */
            for (size_t i = 0; i < b.len; i++)
                if (b.data[i] == '\0')
                    fail("NUL in url-encoded output");
    }
    buf_reset(&b);
    int rendered = template_render(t, ctx, 0, &b, err2, sizeof err2) == 0;
    json_t *js = json_string(t); /* NULL when t is not UTF-8 */
    if (js) {
        json_t *v = template_eval(js, ctx, err2, sizeof err2);
        if ((v != NULL) != rendered)
            fail("template_eval and template_render disagree");
        json_decref(v);
        json_decref(js);
    }
    buf_release(&b);

    /* t as a path */
    int pok = path_check(t, err, sizeof err) == 0;
    if (!pok && err[0] == '\0')
        fail("path_check without a message");
    json_t *got = path_get(ctx, t);
    if (!pok && got)
        fail("path_get on an invalid path");
    json_t *copy = json_deep_copy(ctx);
    json_t *marker = json_object();
    json_incref(marker);
    int src = path_set(copy, t, marker, err, sizeof err);
    if (!pok && src == 0)
        fail("path_set on an invalid path");
    if (src == 0) {
        if (path_get(copy, t) != marker)
            fail("value not found where path_set put it");
        if (path_remove(copy, t) != 1)
            fail("path_remove did not find what path_set put");
    } else {
        if (!json_equal(copy, ctx))
            fail("failed path_set changed the tree");
        if (err[0] == '\0')
            fail("path_set failed without a message");
    }
    if (!pok && path_remove(copy, t) != -1)
        fail("path_remove on an invalid path");
    json_decref(marker);
    json_decref(copy);
}

static void fuzz_json(json_t *ctx, json_t *v, int with_schema)
{
    char err[512], where[512];
    err[0] = '\0';
    int checked = template_check_value(v, err, sizeof err, where, sizeof where) == 0;
    json_t *out = template_eval(v, ctx, err, sizeof err);
    if (!checked && out)
        fail("template_eval accepted what template_check_value rejected");
    if (!out && err[0] == '\0')
        fail("template_eval failed without a message");
    json_decref(out);

    struct map *m = NULL;
    if (map_compile(v, &m, err, sizeof err, where, sizeof where) == 0) {
        json_t *copy = json_deep_copy(ctx);
        if (map_apply(m, copy, err, sizeof err) < 0 && !json_equal(copy, ctx))
            fail("failed map_apply changed the context");
        json_decref(copy);
        map_free(m);
    } else if (m) {
        fail("map_compile failed but returned a map");
    }

    if (!with_schema)
        return;
    struct schema *s = NULL;
    if (schema_compile(v, &s, err, sizeof err, where, sizeof where) == 0) {
        json_t *viol = json_array();
        int n = schema_validate(s, ctx, viol);
        if (n < 0 || (size_t)n != json_array_size(viol))
            fail("schema_validate count");
        json_array_clear(viol);
        n = schema_validate(s, json_object_get(ctx, "data"), viol);
        if (n < 0 || (size_t)n != json_array_size(viol))
            fail("schema_validate count");
        json_decref(viol);
        schema_free(s);
    } else if (s) {
        fail("schema_compile failed but returned a schema");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *ctx = json_loads(ctx_text, 0, NULL);
    if (!ctx)
        fail("fixture");
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t tlen = nl ? (size_t)(nl - in) : size;
    char *t = malloc(tlen + 1);
    memcpy(t, in, tlen);
    t[tlen] = '\0'; /* text after an embedded NUL is ignored, as a C caller would */
    fuzz_text(ctx, t);
    free(t);
    if (nl) {
        size_t rlen = size - tlen - 1;
        json_t *v = json_loadb(nl + 1, rlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (v) {
            int with_schema = memmem(nl + 1, rlen, "pattern", 7) == NULL;
            fuzz_json(ctx, v, with_schema);
            json_decref(v);
        }
    }
    json_decref(ctx);
    return 0;
}
