/* fuzz-link: src/lang src/util */
/* fuzz_schema.c - libFuzzer target for the validate step's JSON Schema subset
 * (src/lang/schema.c): a fuzz-derived schema compiled and applied to a fuzz-derived
 * instance.
 *
 * Input: SCHEMA '\0' INSTANCE, both JSON texts (jansson, JSON_DECODE_ANY | JSON_ALLOW_NUL,
 * so strings and member names may hold NUL bytes); without a NUL the input is the schema
 * and is also its own instance. Invalid JSON is rejected early. Invariants (abort() on
 * violation):
 *  - schema_compile() returns 0 with a schema or -1 without one and with a message,
 *    leaves its input unchanged, and gives the same answer with NULL message buffers;
 *  - schema_validate() returns the number of violations it appends (and the same count
 *    with no array), twice the same list, and leaves the instance unchanged;
 *  - every violation is {"pointer", "keyword", "message"}, three strings, a known keyword,
 *    and a pointer that resolves in the instance (for "required": to an absent member of
 *    an object that exists);
 *  - the instance is valid against {}, {"enum": [instance]} and {"type": its type};
 *  - for a number schema B and a number instance X, {"minimum": B} and {"maximum": B}
 *    report a violation exactly when X < B or X > B, compared exactly (integers beyond
 *    2^53 included); for a string instance, minLength/maxLength compare its code points. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
}

/* ---- RFC 6901 pointers ---------------------------------------------------------------- */

/* Unescapes the reference token p[0..n) (~1 -> '/', ~0 -> '~') into out; its length, or
 * -1 on a bad escape. */
static long unescape(const char *p, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '~') {
            out[k++] = p[i];
        } else if (i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
            out[k++] = p[++i] == '0' ? '~' : '/';
        } else {
            return -1;
        }
    }
    return (long)k;
}

/* Resolves pointer ptr[0..n) in root. Sets *parent to the container of the last token
 * (NULL if the walk broke off before it). Returns the value, or NULL. */
static json_t *resolve(json_t *root, const char *ptr, size_t n, json_t **parent)
{
    json_t *v = root;
    *parent = NULL;
    if (n == 0)
        return root;
    if (ptr[0] != '/')
        fail("pointer does not start with '/'");
    char *tok = malloc(n);
    size_t i = 1;
    for (;;) {
        const char *slash = memchr(ptr + i, '/', n - i);
        size_t len = (size_t)((slash ? slash : ptr + n) - (ptr + i));
        long tl = unescape(ptr + i, len, tok);
        if (tl < 0)
            fail("pointer has a bad ~ escape");
        *parent = v;
        if (json_is_object(v)) {
            v = json_object_getn(v, tok, (size_t)tl);
        } else if (json_is_array(v)) {
            char *end;
            tok[tl] = '\0';
            unsigned long idx = strtoul(tok, &end, 10);
            if (tl == 0 || *end || (tl > 1 && tok[0] == '0'))
                fail("pointer into an array with a token that is not an index");
            v = json_array_get(v, idx);
        } else {
            fail("pointer goes through a scalar");
        }
        if (!slash)
            break;
        if (!v) {
            *parent = NULL;
            break;
        }
        i += len + 1;
    }
    free(tok);
    return v;
}

static const char *const keywords[] = {"type",    "enum",      "minimum",
                                       "maximum", "minLength", "maxLength",
                                       "pattern", "required",  "additionalProperties"};

static void check_violations(json_t *inst, json_t *viol)
{
    size_t i;
    json_t *o;
    json_array_foreach(viol, i, o)
    {
        json_t *p = json_object_get(o, "pointer"), *k = json_object_get(o, "keyword"),
               *m = json_object_get(o, "message");
        if (!json_is_object(o) || json_object_size(o) != 3 || !json_is_string(p) ||
            !json_is_string(k) || !json_is_string(m) || json_string_length(m) == 0)
            fail("a violation is not {pointer, keyword, message} strings");
        const char *kw = json_string_value(k);
        size_t nk = 0;
        while (nk < sizeof keywords / sizeof keywords[0] && strcmp(kw, keywords[nk]))
            nk++;
        if (nk == sizeof keywords / sizeof keywords[0])
            fail("unknown keyword in a violation");
        json_t *parent;
        json_t *at = resolve(inst, json_string_value(p), json_string_length(p), &parent);
        if (strcmp(kw, "required") == 0) {
            if (at || !json_is_object(parent))
                fail("a required violation does not point to an absent member of an object");
        } else if (!at) {
            fail("a violation points to nothing in the instance");
        }
    }
}

/* ---- exact references ------------------------------------------------------------------- */

/* Compares integer i with double r exactly: <0, 0, >0. */
static int cmp_int_real(json_int_t i, double r)
{
    if (r >= 0x1p63)
        return -1;
    if (r < -0x1p63)
        return 1;
    double fl = floor(r);
    long long f = (long long)fl;
    if (i != f)
        return i < f ? -1 : 1;
    return r > fl ? -1 : 0;
}

static int cmp_num(json_t *a, json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b))
        return (json_integer_value(a) > json_integer_value(b)) -
               (json_integer_value(a) < json_integer_value(b));
    if (json_is_integer(a))
        return cmp_int_real(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b))
        return -cmp_int_real(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return (x > y) - (x < y);
}

static size_t codepoints(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

/* Number of violations of the schema built from fmt against inst; aborts if the
 * schema does not compile. */
static int count_with(json_t *inst, json_t *schema)
{
    struct schema *s = NULL;
    if (!schema || schema_compile(schema, &s, NULL, 0, NULL, 0) < 0)
        fail("a schema the fuzzer built does not compile");
    json_t *viol = json_array();
    int n = schema_validate(s, inst, viol);
    check_violations(inst, viol);
    json_decref(viol);
    schema_free(s);
    json_decref(schema);
    return n;
}

static const char *type_of(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

static void check_references(json_t *schema, json_t *inst)
{
    if (count_with(inst, json_object()) != 0)
        fail("{} rejects an instance");
    if (count_with(inst, json_pack("{s:[O]}", "enum", inst)) != 0)
        fail("an instance is not in the enum of itself");
    if (count_with(inst, json_pack("{s:s}", "type", type_of(inst))) != 0)
        fail("an instance is not of its own type");
    if (json_is_number(schema) && json_is_number(inst)) {
        int c = cmp_num(inst, schema);
        if ((count_with(inst, json_pack("{s:O}", "minimum", schema)) != 0) != (c < 0))
            fail("minimum disagrees with an exact comparison");
        if ((count_with(inst, json_pack("{s:O}", "maximum", schema)) != 0) != (c > 0))
            fail("maximum disagrees with an exact comparison");
    }
    if (json_is_string(inst)) {
        json_int_t n = (json_int_t)codepoints(json_string_value(inst), json_string_length(inst));
        if (count_with(inst, json_pack("{s:I,s:I}", "minLength", n, "maxLength", n)) != 0 ||
            count_with(inst, json_pack("{s:I}", "minLength", n + 1)) != 1 ||
            (n > 0 && count_with(inst, json_pack("{s:I}", "maxLength", n - 1)) != 1))
            fail("minLength/maxLength disagree with the code point count");
    }
}

/* ---- the fuzzed schema ------------------------------------------------------------------ */

static void fuzz(json_t *schema, json_t *inst)
{
    json_t *schema0 = json_deep_copy(schema), *inst0 = json_deep_copy(inst);
    struct schema *s = (struct schema *)1, *s2 = (struct schema *)1;
    char err[256], where[256];
    err[0] = where[0] = '\0';
    int rc = schema_compile(schema, &s, err, sizeof err, where, sizeof where);
    int rc2 = schema_compile(schema, &s2, NULL, 0, NULL, 0);
    if (!json_equal(schema, schema0))
        fail("schema_compile changed its input");
    if ((rc == 0) != (s != NULL) || (rc2 == 0) != (s2 != NULL) || rc != rc2 ||
        (rc != 0 && rc != -1))
        fail("schema_compile rc and result disagree");
    schema_free(s2);
    if (rc < 0) {
        if (!err[0])
            fail("schema_compile failed without a message");
    } else {
        json_t *v1 = json_array(), *v2 = json_array();
        int n1 = schema_validate(s, inst, v1);
        int n2 = schema_validate(s, inst, v2);
        int n0 = schema_validate(s, inst, NULL);
        if (n1 < 0 || (size_t)n1 != json_array_size(v1) || n0 != n1 || n2 != n1 ||
            !json_equal(v1, v2))
            fail("schema_validate count or list not stable");
        if (!json_equal(inst, inst0))
            fail("schema_validate changed the instance");
        check_violations(inst, v1);
        json_decref(v1);
        json_decref(v2);
        schema_free(s);
    }
    check_references(schema, inst);
    json_decref(schema0);
    json_decref(inst0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    const char *p = (const char *)data;
    const char *sep = memchr(p, '\0', size);
    size_t slen = sep ? (size_t)(sep - p) : size;
    json_t *schema = json_loadb(p, slen, flags, NULL);
    if (!schema)
        return 0;
    json_t *inst = sep ? json_loadb(sep + 1, size - slen - 1, flags, NULL) : json_incref(schema);
    if (inst)
        fuzz(schema, inst);
    json_decref(inst);
    json_decref(schema);
    return 0;
}
