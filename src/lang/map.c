/* map.c - the `map` step; see map.h.
 *
 * Compiling checks every op once (paths, templates, members) so that a workflow with a
 * typo is refused when it is defined, with the op's location. Applying works on a deep
 * copy of the item's data installed as ctx.data for the duration (set values are
 * templates over the whole context and must see the ops before them); the original is
 * put back if any op fails, so a failed item keeps the data it came with. */
#include "lang/map.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lang/path.h"
#include "lang/template.h"
#include "util/errmsg.h"
#include "util/errors.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

enum map_kind { MAP_SET, MAP_COPY, MAP_RENAME, MAP_REMOVE, MAP_CONVERT };

static const char *const kind_names[] = {"set", "copy", "rename", "remove", "convert"};
#define MAP_KINDS (sizeof kind_names / sizeof kind_names[0])

enum map_type { TO_NUMBER, TO_INTEGER, TO_BOOLEAN };

static const char *const type_names[] = {"number", "integer", "boolean"};
#define MAP_TYPES (sizeof type_names / sizeof type_names[0])

struct map_op {
    enum map_kind kind;
    char *path;
    char *from;       /* copy and rename */
    json_t *value;    /* set: owned deep copy of the template value, never mutated */
    enum map_type to; /* convert */
};

struct map {
    struct map_op *ops;
    size_t nops;
};

/* Reads the path member `name` of op i into *out (a heap copy). */
static int compile_path(json_t *op, size_t i, const char *name, char **out, char *err,
                        size_t errlen, char *where, size_t wherelen)
{
    json_t *v = json_object_get(op, name);
    errmsg_set(where, wherelen, "ops[%zu].%s", i, name);
    if (!v) {
        errmsg_set(err, errlen, "%s is required", name);
        return -1;
    }
    if (!json_is_string(v)) {
        errmsg_set(err, errlen, "%s must be a string", name);
        return -1;
    }
    if (path_checkn(json_string_value(v), json_string_length(v), err, errlen) < 0)
        return -1;
    *out = xstrdup(json_string_value(v));
    return 0;
}

static int known_member(const char *key, size_t key_len, enum map_kind kind)
{
    int wants_from = kind == MAP_COPY || kind == MAP_RENAME;
    if (strlen(key) != key_len) /* an embedded NUL must not pass for "op" */
        return 0;
    return strcmp(key, "op") == 0 || strcmp(key, "path") == 0 ||
           (wants_from && strcmp(key, "from") == 0) ||
           (kind == MAP_SET && strcmp(key, "value") == 0) ||
           (kind == MAP_CONVERT && strcmp(key, "to") == 0);
}

/* Reads "to" of a convert op into op->to. */
static int compile_to(json_t *js, size_t i, struct map_op *op, char *err, size_t errlen,
                      char *where, size_t wherelen)
{
    json_t *to = json_object_get(js, "to");
    size_t t = 0;
    errmsg_set(where, wherelen, "ops[%zu].to", i);
    if (!to) {
        errmsg_set(err, errlen, "to is required (number, integer or boolean)");
        return -1;
    }
    while (json_is_string(to) && t < MAP_TYPES && strcmp(json_string_value(to), type_names[t]))
        t++;
    if (!json_is_string(to) || t == MAP_TYPES) {
        errmsg_set(err, errlen, "to must be \"number\", \"integer\" or \"boolean\"");
        return -1;
    }
    op->to = (enum map_type)t;
    return 0;
}

static int compile_op(json_t *js, size_t i, struct map_op *op, char *err, size_t errlen,
                      char *where, size_t wherelen)
{
    errmsg_set(where, wherelen, "ops[%zu]", i);
    if (!json_is_object(js)) {
        errmsg_set(err, errlen, "an op must be an object");
        return -1;
    }
    json_t *name = json_object_get(js, "op");
    errmsg_set(where, wherelen, "ops[%zu].op", i);
    if (!name) {
        errmsg_set(err, errlen, "op is required");
        return -1;
    }
    size_t k = 0;
    if (json_is_string(name))
        while (k < MAP_KINDS && strcmp(json_string_value(name), kind_names[k]) != 0)
            k++;
    if (!json_is_string(name) || k == MAP_KINDS) {
        errmsg_set(err, errlen,
                   "unknown op %s%.32s%s (expected set, copy, rename, remove or convert)",
                   json_is_string(name) ? "\"" : "",
                   json_is_string(name) ? json_string_value(name) : "(not a string)",
                   json_is_string(name) ? "\"" : "");
        return -1;
    }
    op->kind = (enum map_kind)k;
    int wants_from = op->kind == MAP_COPY || op->kind == MAP_RENAME;

    /* Unknown members first: a misspelt "form" should be named as such, not reported
     * as a missing "from". */
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach(js, key, key_len, v)
    {
        if (known_member(key, key_len, op->kind))
            continue;
        errmsg_set(where, wherelen, "ops[%zu].%.64s", i, key);
        errmsg_set(err, errlen, "unknown member \"%.64s\" for op %s", key, kind_names[k]);
        return -1;
    }
    if (wants_from && compile_path(js, i, "from", &op->from, err, errlen, where, wherelen) < 0)
        return -1;
    if (compile_path(js, i, "path", &op->path, err, errlen, where, wherelen) < 0)
        return -1;
    if (op->kind == MAP_CONVERT && compile_to(js, i, op, err, errlen, where, wherelen) < 0)
        return -1;
    if (op->kind == MAP_SET) {
        json_t *value = json_object_get(js, "value");
        if (!value) {
            errmsg_set(where, wherelen, "ops[%zu].value", i);
            errmsg_set(err, errlen, "value is required");
            return -1;
        }
        char inner[256];
        if (template_check_value(value, err, errlen, inner, sizeof inner) < 0) {
            errmsg_set(where, wherelen, "ops[%zu].value%s%s", i,
                       inner[0] && inner[0] != '[' ? "." : "", inner);
            return -1;
        }
        op->value = json_deep_copy(value);
        if (!op->value) {
            errmsg_set(where, wherelen, "ops[%zu].value", i);
            errmsg_set(err, errlen, "out of memory");
            return -1;
        }
    }
    if (where && wherelen)
        where[0] = '\0';
    return 0;
}

int map_compile(json_t *spec, struct map **out, char *err, size_t errlen, char *where,
                size_t wherelen)
{
    int rc = -1;
    struct map *m = NULL;
    *out = NULL;
    errmsg_set(where, wherelen, "%s", "");
    if (!json_is_object(spec)) {
        errmsg_set(err, errlen, "a map step must be an object");
        goto out;
    }
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach(spec, key, key_len, v)
    {
        if (strlen(key) != key_len || strcmp(key, "ops") != 0) {
            errmsg_set(where, wherelen, "%.64s", key);
            errmsg_set(err, errlen, "unknown member \"%.64s\" (a map step has only \"ops\")", key);
            goto out;
        }
    }
    json_t *ops = json_object_get(spec, "ops");
    errmsg_set(where, wherelen, "ops");
    if (!ops) {
        errmsg_set(err, errlen, "ops is required");
        goto out;
    }
    if (!json_is_array(ops)) {
        errmsg_set(err, errlen, "ops must be an array");
        goto out;
    }
    if (json_array_size(ops) > MAP_MAX_OPS) {
        errmsg_set(err, errlen, "a map step has at most %d ops, this one has %zu", MAP_MAX_OPS,
                   json_array_size(ops));
        goto out;
    }
    m = xcalloc(1, sizeof *m);
    m->ops = xcalloc(json_array_size(ops) ? json_array_size(ops) : 1, sizeof *m->ops);
    size_t i;
    json_array_foreach(ops, i, v)
    {
        m->nops++; /* counted first, so map_free() releases a half-compiled op */
        if (compile_op(v, i, &m->ops[i], err, errlen, where, wherelen) < 0)
            goto out;
    }
    errmsg_set(where, wherelen, "%s", "");
    *out = m;
    m = NULL;
    rc = 0;
out:
    map_free(m);
    return rc;
}

void map_free(struct map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nops; i++) {
        free(m->ops[i].path);
        free(m->ops[i].from);
        json_decref(m->ops[i].value);
    }
    free(m->ops);
    free(m);
}

/* ---- convert ---- */

/* Whether s[0..n) is a JSON number (RFC 8259 section 6), the one spelling "number"
 * and "integer" take: no '+', no leading zeros, no "12,5", no NaN. [out] is_int: it
 * has neither a fraction nor an exponent. */
static int number_text(const char *s, size_t n, int *is_int)
{
#define DIGIT(i) ((i) < n && s[i] >= '0' && s[i] <= '9')
    size_t i = s[0] == '-', d;
    if (!DIGIT(i))
        return 0;
    if (s[i++] != '0')
        while (DIGIT(i))
            i++;
    *is_int = 1;
    if (i < n && s[i] == '.') {
        for (d = ++i; DIGIT(i); i++)
            ;
        if (i == d)
            return 0;
        *is_int = 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        i += i < n && (s[i] == '+' || s[i] == '-');
        for (d = i; DIGIT(i); i++)
            ;
        if (i == d)
            return 0;
        *is_int = 0;
    }
    return i == n;
#undef DIGIT
}

/* Sets err to `<path>: "<the value, cut>" <why>` and returns NULL. */
static json_t *convert_fail(const char *path, const char *s, size_t n, const char *why, char *err,
                            size_t errlen)
{
    size_t show = utf8_prefix_len(s, n, 40);
    errmsg_set(err, errlen, "%s: \"%.*s%s\" %s", path, (int)show, s, show < n ? "..." : "", why);
    return NULL;
}

/* A string (s, n bytes, NUL-terminated as jansson keeps it) as type `to`: spaces and
 * tabs around it are ignored, and an empty string becomes null (an empty CSV cell is
 * an absent value; a schema that needs one says so). Returns a new reference, or
 * NULL with err set. */
static json_t *convert_string(const char *s, size_t n, enum map_type to, const char *path,
                              char *err, size_t errlen)
{
    const char *t = s;
    size_t m = n;
    while (m && (*t == ' ' || *t == '\t'))
        t++, m--;
    while (m && (t[m - 1] == ' ' || t[m - 1] == '\t'))
        m--;
    if (m == 0)
        return json_null();
    if (to == TO_BOOLEAN) {
        if ((m == 4 && strncasecmp(t, "true", 4) == 0) || (m == 1 && *t == '1'))
            return json_true();
        if ((m == 5 && strncasecmp(t, "false", 5) == 0) || (m == 1 && *t == '0'))
            return json_false();
        return convert_fail(path, s, n, "is not a boolean (true, false, 1 or 0)", err, errlen);
    }
    int is_int = 0;
    if (!number_text(t, m, &is_int))
        return convert_fail(path, s, n, "is not a number (write it as in JSON: 12.5, -3, 1e6)", err,
                            errlen);
    if (to == TO_INTEGER && !is_int)
        return convert_fail(path, s, n, "is not an integer", err, errlen);
    /* The text is checked: strtoll/strtod stop at the space, tab or NUL after it. */
    if (is_int) {
        errno = 0;
        long long v = strtoll(t, NULL, 10);
        if (errno != ERANGE)
            return json_integer(v);
        if (to == TO_INTEGER)
            return convert_fail(path, s, n, "is outside the 64-bit integer range", err, errlen);
    }
    double d = strtod(t, NULL);
    if (isinf(d))
        return convert_fail(path, s, n, "is too large for a number", err, errlen);
    return json_real(d);
}

/* v (borrowed) as type `to`: strings convert (convert_string), null stays null, a
 * value of the type already stays as it is (an integral real counts as an integer).
 * Returns a new reference, or NULL with err set. */
static json_t *convert(json_t *v, enum map_type to, const char *path, char *err, size_t errlen)
{
    if (json_is_string(v))
        return convert_string(json_string_value(v), json_string_length(v), to, path, err, errlen);
    if (json_is_null(v) || (to == TO_NUMBER && json_is_number(v)) ||
        (to == TO_INTEGER && json_is_integer(v)) || (to == TO_BOOLEAN && json_is_boolean(v)))
        return json_incref(v);
    if (to == TO_INTEGER && json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && d >= -0x1p63 && d < 0x1p63)
            return json_integer((json_int_t)d);
        errmsg_set(err, errlen, "%s: %.17g is not an integer", path, d);
        return NULL;
    }
    errmsg_set(err, errlen, "%s is %s, which does not convert to %s %s", path, path_kind_name(v),
               to == TO_INTEGER ? "an" : "a", type_names[to]);
    return NULL;
}

/* Applies one op to data (ctx.data). *doc is the compact length of data so far;
 * growth is charged against max before it is built: a set value is evaluated within
 * what is left, a copy measured before it is made, and the document re-measured after
 * each op (bounded: the walk stops past max). Returns 0, -1 (an error) or
 * -SLUICE_E_ITEM_TOO_LARGE; *part names the op's member the error is about. */
static int apply_op(const struct map_op *op, json_t *ctx, json_t *data, size_t max, size_t *doc,
                    const char **part, char *err, size_t errlen)
{
    json_t *v;
    /* A value replaced gives its room back (the cost is an upper bound either way). */
    size_t left = max - *doc, old = template_json_len(path_get(data, op->path), max);
    left = old > max - left ? max : left + old;
    int rc = 0;
    *part = "path";
    switch (op->kind) {
    case MAP_SET:
        *part = "value";
        rc = template_eval_within(op->value, ctx, &left, &v, err, errlen);
        if (rc < 0)
            return rc == -SLUICE_E_ITEM_TOO_LARGE ? rc : -1;
        *part = "path";
        if (path_set(data, op->path, v, err, errlen) < 0)
            return -1;
        break;
    case MAP_COPY:
    case MAP_RENAME:
        v = path_get(data, op->from);
        if (!v) {
            *part = "from";
            errmsg_set(err, errlen, "%s is missing", op->from);
            return -1;
        }
        if (op->kind == MAP_COPY) {
            if (template_json_len(v, left) > left) {
                *part = "from";
                errmsg_set(err, errlen, "a copy of %s would pass the size limit (%zu bytes left)",
                           op->from, left);
                return -SLUICE_E_ITEM_TOO_LARGE;
            }
            v = json_deep_copy(v);
            if (!v) {
                errmsg_set(err, errlen, "out of memory");
                return -1;
            }
            if (path_set(data, op->path, v, err, errlen) < 0)
                return -1;
            break;
        }
        if (strcmp(op->from, op->path) == 0)
            return 0;
        json_incref(v);
        path_remove(data, op->from);
        if (path_set(data, op->path, v, err, errlen) < 0)
            return -1; /* data is a scratch copy; map_apply() discards it */
        break;
    case MAP_REMOVE:
        path_remove(data, op->path);
        break;
    case MAP_CONVERT:
        v = path_get(data, op->path);
        if (!v) {
            errmsg_set(err, errlen, "%s is missing", op->path);
            return -1;
        }
        v = convert(v, op->to, op->path, err, errlen);
        if (!v || path_set(data, op->path, v, err, errlen) < 0)
            return -1;
        break;
    }
    /* The value fitted; the members created on the way to it may not have. */
    *doc = template_json_len(data, max);
    if (*doc > max) {
        errmsg_set(err, errlen, "the data would be larger than %zu bytes", max);
        return -SLUICE_E_ITEM_TOO_LARGE;
    }
    return 0;
}

int map_apply(const struct map *m, json_t *ctx, char *err, size_t errlen)
{
    return map_apply_within(m, ctx, SIZE_MAX - 1, NULL, 0, err, errlen) < 0 ? -1 : 0;
}

int map_apply_within(const struct map *m, json_t *ctx, size_t max_bytes, char *where,
                     size_t wherelen, char *err, size_t errlen)
{
    if (where && wherelen)
        where[0] = '\0';
    if (!m) {
        errmsg_set(err, errlen, "no map");
        return -SLUICE_E_MAP_FAILED;
    }
    json_t *orig = json_object_get(ctx, "data");
    if (!orig) {
        errmsg_set(err, errlen, "data is missing");
        return -SLUICE_E_MAP_FAILED;
    }
    if (!json_is_object(orig)) {
        errmsg_set(err, errlen, "data is not an object");
        return -SLUICE_E_MAP_FAILED;
    }
    if (max_bytes == SIZE_MAX)
        max_bytes--;
    size_t doc = template_json_len(orig, max_bytes);
    if (doc > max_bytes) {
        errmsg_set(err, errlen, "data is larger than %zu bytes", max_bytes);
        return -SLUICE_E_ITEM_TOO_LARGE;
    }
    json_t *data = json_deep_copy(orig);
    if (!data) {
        errmsg_set(err, errlen, "out of memory");
        return -SLUICE_E_MAP_FAILED;
    }
    json_incref(orig);
    json_object_set_new(ctx, "data", data); /* ctx now owns the scratch copy */
    int rc = 0;
    for (size_t i = 0; i < m->nops && rc == 0; i++) {
        char why[512] = "";
        const char *part = "";
        rc = apply_op(&m->ops[i], ctx, data, max_bytes, &doc, &part, why, sizeof why);
        if (rc < 0) {
            errmsg_set(err, errlen, "ops[%zu] (%s): %s", i, kind_names[m->ops[i].kind], why);
            if (where && wherelen)
                snprintf(where, wherelen, "ops[%zu].%s", i, part);
            if (rc != -SLUICE_E_ITEM_TOO_LARGE)
                rc = -SLUICE_E_MAP_FAILED;
        }
    }
    if (rc < 0)
        json_object_set(ctx, "data", orig);
    json_decref(orig);
    return rc;
}
