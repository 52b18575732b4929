/* path.c - dotted paths over jansson values; see path.h.
 *
 * The addressing scheme every step shares: templates read "{{ data.title }}" through
 * path_getn(), the map step writes with path_set() and path_remove(), and step
 * definitions are checked up front with path_check(). Segments are walked in place as
 * (pointer, length) slices of the path, so nothing here allocates except the objects
 * path_set() creates. */
#include "lang/path.h"

#include <stdio.h>
#include <string.h>

#include "util/errmsg.h"
#include "util/utf8.h"

int path_checkn(const char *path, size_t n, char *err, size_t errlen)
{
    if (!path || n == 0) {
        errmsg_set(err, errlen, "path is empty");
        return -1;
    }
    if (n > PATH_MAX_BYTES) {
        errmsg_set(err, errlen, "path is longer than %d bytes", PATH_MAX_BYTES);
        return -1;
    }
    size_t segments = 1, seglen = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '.') {
            if (seglen == 0) {
                errmsg_set(err, errlen, "path has an empty segment at offset %zu", i);
                return -1;
            }
            if (++segments > PATH_MAX_SEGMENTS) {
                errmsg_set(err, errlen, "path has more than %d segments", PATH_MAX_SEGMENTS);
                return -1;
            }
            seglen = 0;
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            errmsg_set(err, errlen, "path has a control character at offset %zu", i);
            return -1;
        }
        if (c == '{' || c == '}') {
            errmsg_set(err, errlen, "path has '%c' at offset %zu", c, i);
            return -1;
        }
        seglen++;
    }
    if (seglen == 0) {
        errmsg_set(err, errlen, "path has an empty segment at offset %zu", n);
        return -1;
    }
    if (!utf8_valid_text(path, n)) {
        errmsg_set(err, errlen, "path is not valid UTF-8");
        return -1;
    }
    return 0;
}

int path_check(const char *path, char *err, size_t errlen)
{
    return path_checkn(path, path ? strlen(path) : 0, err, errlen);
}

/* Parses a canonical array index ("0", "17"; no sign, no leading zero, <= 9 digits).
 * Returns 1 and sets *idx, or 0 when seg is not one. */
static int parse_index(const char *seg, size_t len, size_t *idx)
{
    if (len == 0 || len > 9 || (len > 1 && seg[0] == '0'))
        return 0;
    size_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (seg[i] < '0' || seg[i] > '9')
            return 0;
        v = v * 10 + (size_t)(seg[i] - '0');
    }
    *idx = v;
    return 1;
}

/* Length of the segment starting at s (up to the next '.' or end). */
static size_t seg_len(const char *s, const char *end)
{
    const char *dot = memchr(s, '.', (size_t)(end - s));
    return (size_t)((dot ? dot : end) - s);
}

/* One step down from v by segment seg; NULL when absent. */
static json_t *child(json_t *v, const char *seg, size_t len)
{
    size_t idx;
    if (json_is_object(v))
        return json_object_getn(v, seg, len);
    if (json_is_array(v) && parse_index(seg, len, &idx))
        return json_array_get(v, idx);
    return NULL;
}

/* Walks down from root along path's segments while they exist as objects or arrays,
 * stopping before the last segment. Returns the deepest node reached; [out] *seg, *len:
 * the first segment not walked (the last one when every parent exists). */
static json_t *descend(json_t *root, const char *path, const char *end, const char **seg,
                       size_t *len)
{
    json_t *cur = root;
    const char *s = path;
    size_t n = seg_len(s, end);
    while (s + n < end) {
        json_t *next = child(cur, s, n);
        if (!next || (!json_is_object(next) && !json_is_array(next)))
            break;
        cur = next;
        s += n + 1;
        n = seg_len(s, end);
    }
    *seg = s;
    *len = n;
    return cur;
}

json_t *path_getn(json_t *root, const char *path, size_t n)
{
    if (path_checkn(path, n, NULL, 0) < 0)
        return NULL;
    const char *end = path + n;
    json_t *v = root;
    for (const char *s = path; v; s++) {
        size_t len = seg_len(s, end);
        v = child(v, s, len);
        s += len;
        if (s == end)
            return v;
    }
    return NULL;
}

json_t *path_get(json_t *root, const char *path)
{
    return path ? path_getn(root, path, strlen(path)) : NULL;
}

const char *path_kind_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

/* Stores value (stolen) in container c under segment seg: an object member, or an
 * array element by index (index == size appends). */
static int put(json_t *c, const char *seg, size_t len, json_t *value, const char *path,
               size_t prefix, char *err, size_t errlen)
{
    size_t idx;
    if (json_is_object(c)) {
        if (json_object_setn_new(c, seg, len, value) < 0) {
            errmsg_set(err, errlen, "cannot set %s: jansson refused the member", path);
            return -1;
        }
        return 0;
    }
    if (!parse_index(seg, len, &idx)) {
        json_decref(value);
        if (prefix)
            errmsg_set(err, errlen, "cannot set %s: %.*s is an array and '%.*s' is not an index",
                       path, (int)prefix, path, (int)len, seg);
        else
            errmsg_set(err, errlen,
                       "cannot set %s: the root is an array and '%.*s' is not an index", path,
                       (int)len, seg);
        return -1;
    }
    size_t size = json_array_size(c);
    int rc = idx < size    ? json_array_set_new(c, idx, value)
             : idx == size ? json_array_append_new(c, value)
                           : (json_decref(value), -2);
    if (rc == -2) {
        errmsg_set(err, errlen, "cannot set %s: index %zu is out of range (size %zu)", path, idx,
                   size);
        return -1;
    }
    if (rc < 0) {
        errmsg_set(err, errlen, "cannot set %s: jansson refused the element", path);
        return -1;
    }
    return 0;
}

/* Design: walk the existing nodes as far as they go; if intermediates are missing,
 * build the rest of the chain detached and attach it with one final put(), so that a
 * failure never leaves half-created objects behind in root. */
int path_set(json_t *root, const char *path, json_t *value, char *err, size_t errlen)
{
    if (!value) {
        errmsg_set(err, errlen, "cannot set %s: no value", path ? path : "(null)");
        return -1;
    }
    if (path_check(path, err, errlen) < 0) {
        json_decref(value);
        return -1;
    }
    if (!json_is_object(root) && !json_is_array(root)) {
        json_decref(value);
        errmsg_set(err, errlen, "cannot set %s: the root is not an object or array", path);
        return -1;
    }
    const char *end = path + strlen(path), *s;
    size_t len;
    json_t *cur = descend(root, path, end, &s, &len);
    json_t *next = s + len < end ? child(cur, s, len) : NULL;
    if (next) { /* an intermediate that is neither an object nor an array */
        errmsg_set(err, errlen, "cannot set %s: %.*s is %s", path, (int)(s + len - path), path,
                   path_kind_name(next));
        json_decref(value);
        return -1;
    }
    if (s + len == end) /* cur is the parent of the last segment */
        return put(cur, s, len, value, path, s > path ? (size_t)(s - 1 - path) : 0, err, errlen);

    /* Segments s.. are missing below cur: build them bottom-up, detached. */
    const char *segs[PATH_MAX_SEGMENTS];
    size_t lens[PATH_MAX_SEGMENTS], n = 0;
    for (const char *t = s;; t += lens[n - 1] + 1) {
        segs[n] = t;
        lens[n] = seg_len(t, end);
        n++;
        if (t + lens[n - 1] == end)
            break;
    }
    json_t *chain = value;
    for (size_t i = n; i-- > 1;) {
        json_t *obj = json_object();
        if (!obj || json_object_setn_new(obj, segs[i], lens[i], chain) < 0) {
            json_decref(obj);
            errmsg_set(err, errlen, "cannot set %s: out of memory", path);
            return -1;
        }
        chain = obj;
    }
    return put(cur, segs[0], lens[0], chain, path, s > path ? (size_t)(s - 1 - path) : 0, err,
               errlen);
}

int path_remove(json_t *root, const char *path)
{
    if (path_check(path, NULL, 0) < 0)
        return -1;
    const char *end = path + strlen(path), *s;
    size_t len;
    json_t *cur = descend(root, path, end, &s, &len);
    if (s + len < end) /* a parent is missing or not a container: nothing to remove */
        return 0;
    size_t idx;
    if (json_is_object(cur))
        return json_object_deln(cur, s, len) == 0 ? 1 : 0;
    if (json_is_array(cur) && parse_index(s, len, &idx))
        return json_array_remove(cur, idx) == 0 ? 1 : 0;
    return 0;
}
