/* schema.c - the `validate` step's JSON Schema subset; see schema.h for the keywords.
 *
 * A workflow's schema is compiled once, when the workflow is defined: every keyword
 * is type-checked there (so a typo is answered with its exact location, not silently
 * ignored at validation time) and patterns are regcomp()ed into the compiled tree.
 * schema_validate() then walks the compiled tree and the instance together, keeping a
 * JSON pointer to the current instance location in a buffer, and records every
 * violation instead of stopping at the first: a client fixing its data wants the full
 * list. The compiled tree owns copies of what it needs (enum values, bounds) and is
 * never written after schema_compile(), which is what makes it shareable. */
#include "lang/schema.h"

#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/template.h"
#include "util/buf.h"
#include "util/errmsg.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

enum {
    T_STRING = 1 << 0,
    T_NUMBER = 1 << 1,
    T_INTEGER = 1 << 2,
    T_BOOLEAN = 1 << 3,
    T_OBJECT = 1 << 4,
    T_ARRAY = 1 << 5,
    T_NULL = 1 << 6,
};

static const struct {
    const char *name;
    unsigned bit;
} type_names[] = {
    {"string", T_STRING}, {"number", T_NUMBER}, {"integer", T_INTEGER}, {"boolean", T_BOOLEAN},
    {"object", T_OBJECT}, {"array", T_ARRAY},   {"null", T_NULL},
};

#define NTYPES (sizeof type_names / sizeof type_names[0])

struct schema_prop {
    char *name; /* may contain NUL bytes; name_len is authoritative */
    size_t name_len;
    struct schema *schema;
};

struct schema {
    unsigned types;    /* T_* bits; 0 = any type */
    json_t *enum_vals; /* owned array or NULL */
    json_t *minimum;   /* owned number or NULL */
    json_t *maximum;   /* owned number or NULL */
    long long min_len; /* -1 = absent */
    long long max_len; /* -1 = absent */
    char *pattern;     /* source text, for messages; NULL = absent */
    regex_t re;        /* valid when pattern != NULL */
    char **required;   /* nrequired names */
    size_t *required_len;
    size_t nrequired;
    struct schema_prop *props;
    size_t nprops;
    struct schema *items; /* NULL = absent */
    int additional;       /* 0 when additionalProperties is false */
};

static void truncate_to(struct buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

/* ---- values ------------------------------------------------------------------- */

/* 1 when v is a number with no fractional part (1 and 1.0). */
static int is_integral(json_t *v)
{
    if (json_is_integer(v))
        return 1;
    if (!json_is_real(v))
        return 0;
    double d = json_real_value(v);
    if (d > -9.2e18 && d < 9.2e18)
        return (double)(long long)d == d;
    return 1; /* every double this large is a whole number */
}

/* <0, 0, >0 comparing integer i with double r exactly. Converting i to double would
 * round it above 2^53: 9007199254740993 would equal 9007199254740992.0. */
static int cmp_int_real(json_int_t i, double r)
{
    if (r >= 0x1p63) /* beyond every json_int_t (and +inf) */
        return -1;
    if (r < -0x1p63)
        return 1;
    double fl = floor(r); /* a whole number within long long's range, exactly */
    long long f = (long long)fl;
    if (i != f)
        return i < f ? -1 : 1;
    return r > fl ? -1 : 0;
}

/* <0, 0, >0 like strcmp, for two numbers, exact whatever their types. */
static int num_cmp(json_t *a, json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return (x > y) - (x < y);
    }
    if (json_is_integer(a))
        return cmp_int_real(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b))
        return -cmp_int_real(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return (x > y) - (x < y);
}

/* JSON Schema equality: like json_equal(), but numbers compare by value (1 == 1.0). */
static int value_eq(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return 0;
    const char *key;
    size_t key_len, i;
    json_t *m;
    switch (json_typeof(a)) {
    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_keylen_foreach(a, key, key_len, m)
        {
            json_t *o = json_object_getn(b, key, key_len);
            if (!o || !value_eq(m, o))
                return 0;
        }
        return 1;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        json_array_foreach(a, i, m)
        {
            if (!value_eq(m, json_array_get(b, i)))
                return 0;
        }
        return 1;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    default:
        return 1; /* true, false, null */
    }
}

static unsigned type_bit(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return T_OBJECT;
    case JSON_ARRAY:
        return T_ARRAY;
    case JSON_STRING:
        return T_STRING;
    case JSON_INTEGER:
    case JSON_REAL:
        return T_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE:
        return T_BOOLEAN;
    case JSON_NULL:
        break;
    }
    return T_NULL;
}

static int key_is(const char *key, size_t key_len, const char *kw)
{
    return strlen(kw) == key_len && memcmp(key, kw, key_len) == 0;
}

/* ---- compiling ---------------------------------------------------------------- */

struct compiling {
    struct buf where; /* dotted location of the node being compiled */
    char *err;
    size_t errlen;
};

static void where_push(struct buf *w, const char *s, size_t n)
{
    if (w->len)
        buf_putc(w, '.');
    buf_append(w, s, n);
}

static void where_index(struct buf *w, size_t i)
{
    buf_printf(w, "%s%zu", w->len ? "." : "", i);
}

static int compile_node(struct compiling *c, json_t *js, int depth, struct schema **out);

typedef int (*member_fn)(struct compiling *c, const char *key, size_t key_len, json_t *v, int depth,
                         struct schema *s);

/* Calls fn on each member of obj with the member's name pushed onto c->where, so an
 * error reports its location; stops at the first error (the location left as is). */
static int each_member(struct compiling *c, json_t *obj, int depth, struct schema *s, member_fn fn)
{
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach(obj, key, key_len, v)
    {
        size_t mark = c->where.len;
        where_push(&c->where, key, key_len);
        if (fn(c, key, key_len, v, depth, s) < 0)
            return -1;
        truncate_to(&c->where, mark);
    }
    return 0;
}

/* One member of "properties": its name and compiled schema appended to s->props. */
static int compile_property(struct compiling *c, const char *key, size_t key_len, json_t *m,
                            int depth, struct schema *s)
{
    struct schema_prop *p = &s->props[s->nprops];
    p->name = xmalloc(key_len + 1);
    memcpy(p->name, key, key_len + 1);
    p->name_len = key_len;
    s->nprops++; /* counted before compiling, so schema_free() releases the name */
    return compile_node(c, m, depth + 1, &p->schema);
}

static int compile_type(struct compiling *c, json_t *v, struct schema *s)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !(json_is_array(v) && n > 0)) {
        errmsg_set(c->err, c->errlen, "must be a type name or a non-empty array of them");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_is_array(v) ? json_array_get(v, i) : v;
        size_t mark = c->where.len;
        if (json_is_array(v))
            where_index(&c->where, i);
        if (!json_is_string(t)) {
            errmsg_set(c->err, c->errlen, "must be a type name");
            return -1;
        }
        unsigned bit = 0;
        for (size_t k = 0; k < NTYPES; k++)
            if (strcmp(json_string_value(t), type_names[k].name) == 0)
                bit = type_names[k].bit;
        if (!bit) {
            errmsg_set(c->err, c->errlen,
                       "unknown type \"%.64s\" (expected string, number, integer, boolean, "
                       "object, array or null)",
                       json_string_value(t));
            return -1;
        }
        if (s->types & bit) {
            errmsg_set(c->err, c->errlen, "duplicate type \"%s\"", json_string_value(t));
            return -1;
        }
        s->types |= bit;
        truncate_to(&c->where, mark);
    }
    return 0;
}

static int compile_required(struct compiling *c, json_t *v, struct schema *s)
{
    if (!json_is_array(v)) {
        errmsg_set(c->err, c->errlen, "must be an array of member names");
        return -1;
    }
    size_t n = json_array_size(v), i;
    json_t *m;
    json_array_foreach(v, i, m)
    {
        if (!json_is_string(m)) {
            where_index(&c->where, i);
            errmsg_set(c->err, c->errlen, "must be a string");
            return -1;
        }
    }
    s->required = xcalloc(n ? n : 1, sizeof *s->required);
    s->required_len = xcalloc(n ? n : 1, sizeof *s->required_len);
    json_array_foreach(v, i, m)
    {
        s->required_len[i] = json_string_length(m);
        s->required[i] = xmalloc(s->required_len[i] + 1);
        memcpy(s->required[i], json_string_value(m), s->required_len[i] + 1);
        s->nrequired++;
    }
    return 0;
}

static int compile_properties(struct compiling *c, json_t *v, int depth, struct schema *s)
{
    if (!json_is_object(v)) {
        errmsg_set(c->err, c->errlen, "must be an object of member schemas");
        return -1;
    }
    s->props = xcalloc(json_object_size(v) ? json_object_size(v) : 1, sizeof *s->props);
    return each_member(c, v, depth, s, compile_property);
}

static int compile_length(struct compiling *c, json_t *v, long long *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        errmsg_set(c->err, c->errlen, "must be a non-negative integer");
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* What glibc's regcomp() would build for an ERE, estimated from its text, to refuse
 * patterns that make it take gigabytes or minutes (found by tests/fuzz/fuzz_schema.c):
 *  - it copies a repeated element once per repetition: "x+" is x x*, "x{m,n}" n copies
 *    (m + 1 when unbounded); nested or stacked repetitions multiply, so 30 stacked '+'
 *    are 2^30 copies. A pattern without '+' or {m,n} costs at most its length;
 *  - an anchor (^, $, \b, \B, \<, \>, \`, \') costs far more than a character, and a
 *    repetition of something that can match the empty string, such as (a*)*, (b?)+ or
 *    (^)*, is exponential once the pattern has an anchor: "^(c*)*(c*)*...$" with 20
 *    groups takes seconds. Such a repetition is never needed (write (a*)* as a*), and
 *    neither is a group with two alternatives that can match "" ((a?|b?) is (a|b)?),
 *    which after a '^' costs a cube: 200 of them take 800 MB.
 * One level per open group: the sums so far, and the last element, which a following
 * repetition applies to. */
struct re_level {
    size_t size, anchors;           /* elements and anchors, repetitions expanded */
    size_t last_size, last_anchors; /* of the last element */
    int has_last, last_empty;       /* the last element can match "" */
    int seq_empty, before_last;     /* this alternative so far / before the last element */
    int alt_empty;                  /* earlier alternatives of the group that can match "" */
};

#define PATTERN_MAX_NEST 64
#define PATTERN_MAX_ANCHORS 16

static size_t sat_add(size_t a, size_t b)
{
    return a + b < 1000000 ? a + b : 1000000; /* far above every limit checked */
}

static size_t sat_mul(size_t a, size_t b)
{
    return a && b > 1000000 / a ? 1000000 : a * b;
}

static void re_element(struct re_level *l, size_t size, size_t anchors, int empty)
{
    l->size = sat_add(l->size, size);
    l->anchors = sat_add(l->anchors, anchors);
    l->last_size = size, l->last_anchors = anchors;
    l->has_last = 1, l->last_empty = empty;
    l->before_last = l->seq_empty;
    l->seq_empty = l->seq_empty && empty;
}

/* An alternative of l ends (at '|', ')' or the end, offset at): counts it if it can
 * match "", and refuses a second such one. */
static int re_alternative_end(struct re_level *l, size_t at, char *why, size_t whylen)
{
    if (l->seq_empty && l->alt_empty++ > 0) {
        snprintf(why, whylen,
                 "two alternatives before offset %zu can match the empty string; "
                 "use (a|b)? rather than (a?|b?)",
                 at);
        return -1;
    }
    return 0;
}

/* The repetition bound at p[0..n) after '{': [out] *factor copies and *min; returns the
 * bytes it spans including the '}', or 0 when it is not a bound. */
static size_t re_bound(const char *p, size_t n, size_t *factor, size_t *min)
{
    size_t lo = 0, hi, j = 0;
    int bounded = 1;
    if (n == 0 || !((p[0] >= '0' && p[0] <= '9') || p[0] == ',')) /* glibc takes {,n} */
        return 0;
    for (; j < n && p[j] >= '0' && p[j] <= '9'; j++)
        lo = sat_add(sat_mul(lo, 10), (size_t)(p[j] - '0'));
    hi = lo;
    if (j < n && p[j] == ',') {
        bounded = j + 1 < n && p[j + 1] >= '0' && p[j + 1] <= '9';
        for (hi = 0, j++; j < n && p[j] >= '0' && p[j] <= '9'; j++)
            hi = sat_add(sat_mul(hi, 10), (size_t)(p[j] - '0'));
    }
    *min = lo;
    *factor = bounded ? (hi > lo ? hi : lo) : lo + 1;
    *factor = *factor ? *factor : 1;
    return j < n ? j + 1 : j; /* regcomp() judges a malformed bound */
}

/* Length of the bracket expression at p[0..n) (p[0] == '['), up to its ']'. */
static size_t re_bracket(const char *p, size_t n)
{
    size_t j = 1;
    j += j < n && p[j] == '^';
    j += j < n && p[j] == ']';
    while (j < n && p[j] != ']') {
        if (p[j] == '[' && j + 1 < n && (p[j + 1] == ':' || p[j + 1] == '.' || p[j + 1] == '=')) {
            char close = p[j + 1];
            for (j += 2; j + 1 < n && !(p[j] == close && p[j + 1] == ']'); j++)
                ;
            j += 2;
        } else {
            j++;
        }
    }
    return j + 1;
}

/* 0 when regcomp() may compile p[0..n) at a bounded cost; else -1 and why. */
static int pattern_check(const char *p, size_t n, char *why, size_t whylen)
{
    struct re_level lv[PATTERN_MAX_NEST + 1];
    int d = 0;
    memset(&lv[0], 0, sizeof lv[0]);
    lv[0].seq_empty = 1;
    for (size_t i = 0; i < n;) {
        struct re_level *l = &lv[d];
        unsigned char ch = (unsigned char)p[i];
        size_t factor = 0, min = 0, k;
        if (ch == '*' || ch == '?') {
            factor = 1, i++;
        } else if (ch == '+') {
            factor = 2, min = 1, i++;
        } else if (ch == '{' && (k = re_bound(p + i + 1, n - i - 1, &factor, &min)) > 0) {
            i += 1 + k;
        } else if (ch == '(') {
            if (d == PATTERN_MAX_NEST) {
                snprintf(why, whylen, "groups nest more than %d deep", PATTERN_MAX_NEST);
                return -1;
            }
            memset(&lv[++d], 0, sizeof lv[0]);
            lv[d].seq_empty = 1;
            i++;
            continue;
        } else if (ch == ')' && d > 0) {
            if (re_alternative_end(l, i, why, whylen) < 0)
                return -1;
            int empty = l->alt_empty > 0;
            size_t size = sat_add(l->size, 1), anchors = l->anchors;
            re_element(&lv[--d], size, anchors, empty);
            i++;
        } else if (ch == '|') {
            if (re_alternative_end(l, i, why, whylen) < 0)
                return -1;
            l->seq_empty = 1, l->has_last = 0;
            i++;
            continue;
        } else if (ch == '^' || ch == '$') {
            re_element(l, 1, 1, 1);
            i++;
        } else if (ch == '\\') {
            int anchor = i + 1 < n && strchr("bB<>`'", p[i + 1]) && p[i + 1];
            re_element(l, 1, anchor, anchor);
            i += 2;
        } else if (ch == '[') {
            re_element(l, 1, 0, 0);
            i += re_bracket(p + i, n - i);
        } else { /* a character; all bytes of a UTF-8 one, so that a repetition copies them */
            size_t len = 1;
            while (ch >= 0xc0 && i + len < n && ((unsigned char)p[i + len] & 0xc0) == 0x80)
                len++;
            re_element(l, len, 0, 0);
            i += len;
        }
        if (factor && l->has_last) { /* a repetition of the last element */
            if (l->last_empty) {
                snprintf(why, whylen,
                         "a repetition (*, +, ?, {}) at offset %zu applies to "
                         "something that can match the empty string; use a* "
                         "rather than (a*)* or (a?)+",
                         i - 1);
                return -1;
            }
            size_t extra = sat_mul(l->last_size, factor - 1);
            size_t extra_anchors = sat_mul(l->last_anchors, factor - 1);
            l->size = sat_add(l->size, extra);
            l->anchors = sat_add(l->anchors, extra_anchors);
            l->last_size = sat_add(l->last_size, extra);
            l->last_anchors = sat_add(l->last_anchors, extra_anchors);
            l->last_empty = min == 0;
            l->seq_empty = l->before_last && l->last_empty;
        }
    }
    if (re_alternative_end(&lv[0], n, why, whylen) < 0)
        return -1;
    size_t size = 0, anchors = 0;
    for (int k = 0; k <= d; k++) { /* groups left open: regcomp() refuses the pattern */
        size = sat_add(size, lv[k].size);
        anchors = sat_add(anchors, lv[k].anchors);
    }
    if (size > SCHEMA_PATTERN_MAX) {
        snprintf(why, whylen, "more than %d elements once repetitions are expanded",
                 SCHEMA_PATTERN_MAX);
        return -1;
    }
    if (anchors > PATTERN_MAX_ANCHORS) {
        snprintf(why, whylen,
                 "more than %d anchors (^, $, \\b, \\<, ...) once repetitions are expanded",
                 PATTERN_MAX_ANCHORS);
        return -1;
    }
    return 0;
}

static int compile_pattern(struct compiling *c, json_t *v, struct schema *s)
{
    if (!json_is_string(v)) {
        errmsg_set(c->err, c->errlen, "must be a string (a POSIX extended regular expression)");
        return -1;
    }
    const char *p = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > SCHEMA_PATTERN_MAX) {
        errmsg_set(c->err, c->errlen, "pattern is longer than %d bytes", SCHEMA_PATTERN_MAX);
        return -1;
    }
    if (strlen(p) != n) {
        errmsg_set(c->err, c->errlen, "pattern contains a NUL character");
        return -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == '\\' && p[i + 1] >= '1' && p[i + 1] <= '9') {
            /* glibc accepts back-references in ERE; they make matching exponential. */
            errmsg_set(c->err, c->errlen, "back-references (\\%c) are not supported", p[i + 1]);
            return -1;
        }
        if (p[i] == '\\')
            i++;
    }
    char cost[200];
    if (pattern_check(p, n, cost, sizeof cost) < 0) {
        errmsg_set(c->err, c->errlen, "pattern is too complex: %s", cost);
        return -1;
    }
    int rc = regcomp(&s->re, p, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, &s->re, why, sizeof why);
        errmsg_set(c->err, c->errlen, "invalid POSIX extended regular expression: %s", why);
        return -1;
    }
    s->pattern = xstrdup(p);
    return 0;
}

static int compile_keyword(struct compiling *c, const char *key, size_t key_len, json_t *v,
                           int depth, struct schema *s)
{
    if (key_is(key, key_len, "type"))
        return compile_type(c, v, s);
    if (key_is(key, key_len, "required"))
        return compile_required(c, v, s);
    if (key_is(key, key_len, "properties"))
        return compile_properties(c, v, depth, s);
    if (key_is(key, key_len, "items"))
        return compile_node(c, v, depth + 1, &s->items);
    if (key_is(key, key_len, "minLength"))
        return compile_length(c, v, &s->min_len);
    if (key_is(key, key_len, "maxLength"))
        return compile_length(c, v, &s->max_len);
    if (key_is(key, key_len, "pattern"))
        return compile_pattern(c, v, s);
    if (key_is(key, key_len, "minimum") || key_is(key, key_len, "maximum")) {
        if (!json_is_number(v)) {
            errmsg_set(c->err, c->errlen, "must be a number");
            return -1;
        }
        if (key[1] == 'i')
            s->minimum = json_copy(v);
        else
            s->maximum = json_copy(v);
        return 0;
    }
    if (key_is(key, key_len, "enum")) {
        if (!json_is_array(v) || json_array_size(v) == 0) {
            errmsg_set(c->err, c->errlen, "must be a non-empty array");
            return -1;
        }
        s->enum_vals = json_deep_copy(v);
        return 0;
    }
    if (key_is(key, key_len, "additionalProperties")) {
        if (!json_is_boolean(v)) {
            errmsg_set(c->err, c->errlen, "must be true or false (schemas are not supported here)");
            return -1;
        }
        s->additional = json_is_true(v);
        return 0;
    }
    if (key_is(key, key_len, "title") || key_is(key, key_len, "description") ||
        key_is(key, key_len, "$comment")) {
        if (!json_is_string(v)) {
            errmsg_set(c->err, c->errlen, "must be a string");
            return -1;
        }
        return 0;
    }
    errmsg_set(c->err, c->errlen, "unknown keyword \"%.*s\"", (int)(key_len > 64 ? 64 : key_len),
               key);
    return -1;
}

static int compile_node(struct compiling *c, json_t *js, int depth, struct schema **out)
{
    *out = NULL;
    if (!json_is_object(js)) {
        errmsg_set(c->err, c->errlen, "a schema must be an object");
        return -1;
    }
    if (depth > SCHEMA_MAX_DEPTH) {
        errmsg_set(c->err, c->errlen, "schemas nest more than %d levels deep", SCHEMA_MAX_DEPTH);
        return -1;
    }
    struct schema *s = xcalloc(1, sizeof *s);
    s->min_len = s->max_len = -1;
    s->additional = 1;
    *out = s; /* partly built on error; the caller frees it */
    return each_member(c, js, depth, s, compile_keyword);
}

int schema_compile(json_t *schema, struct schema **out, char *err, size_t errlen, char *where,
                   size_t wherelen)
{
    struct compiling c = {BUF_INIT, err, errlen};
    struct schema *s = NULL;
    if (where && wherelen)
        where[0] = '\0';
    int rc = compile_node(&c, schema, 0, &s);
    if (rc < 0) {
        if (where && wherelen)
            snprintf(where, wherelen, "%s", buf_cstr(&c.where));
        schema_free(s);
        s = NULL;
    }
    buf_release(&c.where);
    *out = s;
    return rc;
}

void schema_free(struct schema *s)
{
    if (!s)
        return;
    json_decref(s->enum_vals);
    json_decref(s->minimum);
    json_decref(s->maximum);
    if (s->pattern) {
        regfree(&s->re);
        free(s->pattern);
    }
    for (size_t i = 0; i < s->nrequired; i++)
        free(s->required[i]);
    free(s->required);
    free(s->required_len);
    for (size_t i = 0; i < s->nprops; i++) {
        free(s->props[i].name);
        schema_free(s->props[i].schema);
    }
    free(s->props);
    schema_free(s->items);
    free(s);
}

/* ---- validating --------------------------------------------------------------- */

struct validating {
    struct buf ptr; /* RFC 6901 pointer to the current instance location */
    json_t *out;    /* violations array or NULL */
    int count;
};

static void ptr_push_key(struct buf *p, const char *key, size_t key_len)
{
    buf_putc(p, '/');
    for (size_t i = 0; i < key_len; i++) {
        if (key[i] == '~')
            buf_append(p, "~0", 2);
        else if (key[i] == '/')
            buf_append(p, "~1", 2);
        else
            buf_putc(p, key[i]);
    }
}

static void report(struct validating *v, const char *keyword, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct validating *v, const char *keyword, const char *fmt, ...)
{
    v->count++;
    if (!v->out)
        return;
    struct buf msg = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_object_set_new(o, "pointer", json_stringn(buf_cstr(&v->ptr), v->ptr.len));
    json_object_set_new(o, "keyword", json_string(keyword));
    json_object_set_new(o, "message", json_stringn(buf_cstr(&msg), msg.len));
    json_array_append_new(v->out, o);
    buf_release(&msg);
}

static const char *instance_type_name(json_t *v)
{
    return json_is_integer(v)   ? "integer"
           : json_is_real(v)    ? "number"
           : json_is_string(v)  ? "string"
           : json_is_boolean(v) ? "boolean"
           : json_is_object(v)  ? "object"
           : json_is_array(v)   ? "array"
                                : "null";
}

static int type_ok(unsigned types, json_t *inst)
{
    unsigned bit = type_bit(inst);
    if (types & bit)
        return 1;
    return (types & T_INTEGER) && is_integral(inst);
}

/* Appends "a", "a or b", "a, b or c" for the type bits. */
static void put_types(struct buf *b, unsigned types)
{
    size_t total = 0, k = 0;
    for (size_t i = 0; i < NTYPES; i++)
        total += (types & type_names[i].bit) != 0;
    for (size_t i = 0; i < NTYPES; i++) {
        if (!(types & type_names[i].bit))
            continue;
        if (k)
            buf_puts(b, k + 1 == total ? " or " : ", ");
        buf_puts(b, type_names[i].name);
        k++;
    }
}

static size_t codepoints(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += ((unsigned char)s[i] & 0xc0) != 0x80;
    return count;
}

static int is_declared(const struct schema *s, const char *key, size_t key_len)
{
    for (size_t i = 0; i < s->nprops; i++)
        if (s->props[i].name_len == key_len && memcmp(s->props[i].name, key, key_len) == 0)
            return 1;
    return 0;
}

static void validate_node(struct validating *v, const struct schema *s, json_t *inst)
{
    struct buf tmp = BUF_INIT;
    size_t mark = v->ptr.len;

    if (s->types && !type_ok(s->types, inst)) {
        put_types(&tmp, s->types);
        report(v, "type", "must be of type %s (got %s)", tmp.data, instance_type_name(inst));
        buf_reset(&tmp);
    }
    if (s->enum_vals) {
        size_t i;
        json_t *e;
        int found = 0;
        json_array_foreach(s->enum_vals, i, e) found = found || value_eq(e, inst);
        if (!found) {
            template_put_json(&tmp, s->enum_vals);
            if (tmp.len > 200)
                report(v, "enum", "must be one of %.*s...",
                       (int)utf8_prefix_len(tmp.data, tmp.len, 200), tmp.data);
            else
                report(v, "enum", "must be one of %s", tmp.data);
            buf_reset(&tmp);
        }
    }
    if (json_is_number(inst)) {
        if (s->minimum && num_cmp(inst, s->minimum) < 0) {
            template_put_json(&tmp, s->minimum);
            report(v, "minimum", "must be >= %s", tmp.data);
            buf_reset(&tmp);
        }
        if (s->maximum && num_cmp(inst, s->maximum) > 0) {
            template_put_json(&tmp, s->maximum);
            report(v, "maximum", "must be <= %s", tmp.data);
            buf_reset(&tmp);
        }
    }
    if (json_is_string(inst)) {
        const char *str = json_string_value(inst);
        size_t n = json_string_length(inst);
        if (s->min_len >= 0 || s->max_len >= 0) {
            long long len = (long long)codepoints(str, n);
            if (s->min_len >= 0 && len < s->min_len)
                report(v, "minLength", "must be at least %lld characters long", s->min_len);
            if (s->max_len >= 0 && len > s->max_len)
                report(v, "maxLength", "must be at most %lld characters long", s->max_len);
        }
        if (s->pattern) {
            regmatch_t m[1];
            m[0].rm_so = 0;
            m[0].rm_eo = (regoff_t)n;
            /* REG_STARTEND (a BSD/glibc extension) matches all n bytes, NULs included. */
            if (regexec(&s->re, str, 1, m, REG_STARTEND) != 0)
                report(v, "pattern", "must match the pattern %.*s",
                       (int)utf8_prefix_len(s->pattern, strlen(s->pattern), 200), s->pattern);
        }
    }
    if (json_is_object(inst)) {
        for (size_t i = 0; i < s->nrequired; i++) {
            if (json_object_getn(inst, s->required[i], s->required_len[i]))
                continue;
            ptr_push_key(&v->ptr, s->required[i], s->required_len[i]);
            report(v, "required", "is required");
            truncate_to(&v->ptr, mark);
        }
        for (size_t i = 0; i < s->nprops; i++) {
            const struct schema_prop *p = &s->props[i];
            json_t *m = json_object_getn(inst, p->name, p->name_len);
            if (!m)
                continue;
            ptr_push_key(&v->ptr, p->name, p->name_len);
            validate_node(v, p->schema, m);
            truncate_to(&v->ptr, mark);
        }
        if (!s->additional) {
            const char *key;
            size_t key_len;
            json_t *m;
            json_object_keylen_foreach(inst, key, key_len, m)
            {
                if (is_declared(s, key, key_len))
                    continue;
                ptr_push_key(&v->ptr, key, key_len);
                report(v, "additionalProperties", "is not allowed");
                truncate_to(&v->ptr, mark);
            }
        }
    }
    if (json_is_array(inst) && s->items) {
        size_t i;
        json_t *m;
        json_array_foreach(inst, i, m)
        {
            buf_printf(&v->ptr, "/%zu", i);
            validate_node(v, s->items, m);
            truncate_to(&v->ptr, mark);
        }
    }
    buf_release(&tmp);
}

int schema_validate(const struct schema *s, json_t *instance, json_t *violations)
{
    struct validating v = {BUF_INIT, json_is_array(violations) ? violations : NULL, 0};
    if (!s || !instance)
        return 0;
    validate_node(&v, s, instance);
    buf_release(&v.ptr);
    return v.count;
}
