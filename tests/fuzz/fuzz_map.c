/* fuzz-link: src/lang src/util */
/* fuzz_map.c - libFuzzer target for the map step (src/lang/map.c) and the dotted paths it
 * writes with (src/lang/path.c), on fuzz-derived item data. (fuzz_template drives the
 * same code against one fixed context; this one varies the data too.)
 *
 * Input: SPEC '\0' DATA, two JSON texts (jansson, JSON_DECODE_ANY | JSON_ALLOW_NUL);
 * without a NUL the input is the spec and the data is {}. SPEC is a map step's spec,
 * {"ops": [...]}, or a bare array of ops. Invalid JSON is rejected early. The step
 * context is {"data": DATA, "ref": "r-1", "index": 4, "job": {"id": "j"}}. Invariants
 * (abort() on violation):
 *  - map_compile() returns 0 with a map or -1 without one, with a message, and leaves the
 *    spec unchanged;
 *  - map_apply() succeeds or fails leaving the context exactly as it was;
 *  - applying the whole map equals applying its ops one at a time (each compiled alone),
 *    stopping at the first that fails; the whole map fails exactly when one of them does;
 *  - after each single op that succeeds: set puts template_eval(value) at path; copy and
 *    rename put the value from "from" at path; remove leaves path absent under an
 *    object, or shortens the array by one; convert leaves a value of its type or null,
 *    and leaves null and values of the type as they were (an integral real becomes that
 *    integer); nothing but data changes in the context;
 *  - convert agrees with jansson: a string that jansson reads as a value of the type
 *    (a number, an integer, true or false) converts, to the value jansson reads. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/map.h"
#include "lang/path.h"
#include "lang/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
}

/* The container that holds the last segment of path in root (NULL if absent). */
static json_t *parent_of(json_t *root, const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot)
        return root;
    return path_getn(root, path, (size_t)(dot - path));
}

/* What jansson reads in the string v (a JSON text of the kind `to` names, nothing around
 * it), or NULL: the oracle for convert. New reference. */
static json_t *jansson_reads(json_t *v, const char *to)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strchr(" \t\r\n", s[0]) || strchr(" \t\r\n", s[n - 1]))
        return NULL; /* jansson skips all JSON whitespace, convert spaces and tabs only */
    json_error_t je;
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY, &je);
    int kind_ok = strcmp(to, "number") == 0    ? json_is_number(j)
                  : strcmp(to, "integer") == 0 ? json_is_integer(j)
                                               : json_is_boolean(j);
    if (!kind_ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* A successful convert: *now (at path) against old (the value before). */
static void check_convert(const char *to, json_t *old, json_t *now)
{
    int typed = strcmp(to, "number") == 0    ? json_is_number(now)
                : strcmp(to, "integer") == 0 ? json_is_integer(now)
                                             : json_is_boolean(now);
    if (!now || (!typed && !json_is_null(now)))
        fail("convert left a value of another type");
    if (json_is_string(old))
        return;
    if (json_is_real(old) && json_is_integer(now)) {
        if ((double)json_integer_value(now) != json_real_value(old))
            fail("convert changed an integral real's value");
    } else if (!json_equal(old, now)) {
        fail("convert changed a value that needed no conversion");
    }
}

/* Applies one op (its JSON) alone to ctx and checks its effect. Returns map_apply()'s
 * result; on a compile error (cannot happen: the whole spec compiled) aborts. */
static int apply_one(json_t *op, json_t *ctx)
{
    json_t *spec = json_pack("{s:[O]}", "ops", op);
    struct map *m = NULL;
    char err[256];
    if (map_compile(spec, &m, err, sizeof err, NULL, 0) < 0)
        fail("an op of a compiled spec does not compile alone");
    json_decref(spec);

    const char *kind = json_string_value(json_object_get(op, "op"));
    const char *path = json_string_value(json_object_get(op, "path"));
    const char *from = json_string_value(json_object_get(op, "from"));
    json_t *before = json_deep_copy(ctx);
    json_t *old = json_object_get(before, "data");
    json_t *want = NULL;
    if (strcmp(kind, "set") == 0)
        want = template_eval(json_object_get(op, "value"), before, err, sizeof err);
    else if (strcmp(kind, "copy") == 0 || strcmp(kind, "rename") == 0)
        want = json_incref(path_get(old, from));
    const char *to = json_string_value(json_object_get(op, "to"));
    json_t *oracle = to ? jansson_reads(path_get(old, path), to) : NULL;

    int rc = map_apply(m, ctx, err, sizeof err);
    json_t *now = json_object_get(ctx, "data");
    if (rc < 0) {
        if (!json_equal(ctx, before) || !err[0])
            fail("a failed op changed the context or gave no message");
        if (oracle && strcmp(kind, "convert") == 0 && json_is_object(old))
            fail("convert refused what jansson reads as a value of the type");
    } else {
        if (!json_is_object(now))
            fail("data is no longer an object");
        if (strcmp(kind, "remove") == 0) {
            json_t *p = parent_of(old, path), *v = path_get(old, path);
            if (json_is_object(p) && path_get(now, path))
                fail("remove left the member");
            if (json_is_array(p) && v &&
                json_array_size(parent_of(now, path)) + 1 != json_array_size(p))
                fail("remove did not shorten the array by one");
        } else if (strcmp(kind, "convert") == 0) {
            check_convert(to, path_get(old, path), path_get(now, path));
            if (oracle && !json_equal(oracle, path_get(now, path)))
                fail("convert and jansson read a string differently");
        } else if (!want || !json_equal(path_get(now, path), want)) {
            fail("the op's value is not at its path");
        }
        /* only data changes */
        json_t *a = json_deep_copy(ctx), *b = json_deep_copy(before);
        json_object_del(a, "data");
        json_object_del(b, "data");
        if (!json_equal(a, b))
            fail("an op changed the context outside data");
        json_decref(a);
        json_decref(b);
    }
    json_decref(want);
    json_decref(oracle);
    json_decref(before);
    map_free(m);
    return rc;
}

static void fuzz(json_t *spec, json_t *data)
{
    json_t *spec0 = json_deep_copy(spec);
    struct map *m = (struct map *)1;
    char err[256], where[256];
    err[0] = '\0';
    int rc = map_compile(spec, &m, err, sizeof err, where, sizeof where);
    if (!json_equal(spec, spec0))
        fail("map_compile changed the spec");
    json_decref(spec0);
    if ((rc == 0) != (m != NULL) || (rc != 0 && rc != -1))
        fail("map_compile rc and map disagree");
    if (rc < 0) {
        if (!err[0])
            fail("map_compile failed without a message");
        return;
    }
    json_t *ctx = json_pack("{s:O,s:s,s:i,s:{s:s}}", "data", data, "ref", "r-1", "index", 4, "job",
                            "id", "j");
    json_t *whole = json_deep_copy(ctx), *steps = json_deep_copy(ctx);

    rc = map_apply(m, whole, err, sizeof err);
    if (rc < 0 && (!json_equal(whole, ctx) || !err[0]))
        fail("a failed map_apply changed the context or gave no message");

    int rc1 = json_is_object(data) ? 0 : -1; /* no ops: still fails on non-object data */
    size_t i;
    json_t *op;
    json_array_foreach(json_object_get(spec, "ops"), i, op)
    {
        if ((rc1 = apply_one(op, steps)) < 0)
            break;
    }
    if ((rc < 0) != (rc1 < 0))
        fail("the whole map and its ops one by one disagree on failing");
    if (rc == 0 && !json_equal(whole, steps))
        fail("the whole map and its ops one by one give different data");
    json_decref(whole);
    json_decref(steps);
    json_decref(ctx);
    map_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    const char *in = (const char *)data;
    const char *sep = memchr(in, '\0', size);
    size_t slen = sep ? (size_t)(sep - in) : size;
    json_t *spec = json_loadb(in, slen, flags, NULL);
    if (!spec)
        return 0;
    if (json_is_array(spec)) /* a bare list of ops, to spare the fuzzer the envelope */
        spec = json_pack("{s:o}", "ops", spec);
    json_t *item = sep ? json_loadb(sep + 1, size - slen - 1, flags, NULL) : json_object();
    if (item)
        fuzz(spec, item);
    json_decref(item);
    json_decref(spec);
    return 0;
}
