/* path.h - dotted paths into jansson values, the addressing scheme of workflow steps.
 *
 * Syntax: segments separated by '.', e.g. "data.attributes.color",
 * "steps.push.response.status", "items.0.sku".
 *  - 1..PATH_MAX_SEGMENTS segments, each non-empty; PATH_MAX_BYTES bytes in all;
 *  - valid UTF-8; no control characters (< 0x20, 0x7f) and no '{' or '}' (so a path
 *    can always sit inside a "{{ }}" template placeholder); spaces are allowed and are
 *    part of the key ("data.Product Name");
 *  - there is no escape for '.': a key that contains a dot cannot be addressed.
 * Resolution: at an array, a segment that is a canonical decimal index ("0", "17",
 * not "07", at most 9 digits) selects that element; at an object, every segment
 * (digits included) is a member name. Anything else is absent.
 *
 * All functions are reentrant and keep no state. They read or modify only the tree
 * passed in; concurrent use on the same tree needs the caller's own exclusion. */
#ifndef SLUICE_STEPS_PATH_H
#define SLUICE_STEPS_PATH_H

#include <jansson.h>
#include <stddef.h>

#define PATH_MAX_SEGMENTS 32
#define PATH_MAX_BYTES 256

/* Checks the syntax of path (see above).
 * err, errlen: [out] on error, a NUL-terminated human message such as
 *   "empty segment at offset 5" (err may be NULL or errlen 0 to skip it).
 * Returns 0 when valid, -1 when not. */
int path_check(const char *path, char *err, size_t errlen);

/* Same as path_check() on the n bytes at path (need not be NUL-terminated; a NUL byte
 * inside the n bytes is an error). */
int path_checkn(const char *path, size_t n, char *err, size_t errlen);

/* Looks path up under root (borrowed, may be NULL).
 * Returns a borrowed reference valid while root holds it, or NULL when the path is
 * absent or syntactically invalid. */
json_t *path_get(json_t *root, const char *path);

/* The kind of v for messages: "an object", "an array", "a string", "a number",
 * "a boolean" or "null". A static string. */
const char *path_kind_name(const json_t *v);

/* path_get() on the n bytes at path (need not be NUL-terminated). */
json_t *path_getn(json_t *root, const char *path, size_t n);

/* Stores value at path under root, creating missing intermediate members as empty
 * objects. At an array, an index below the size replaces that element and an index
 * equal to the size appends; a larger index is an error.
 * root: an object or array (borrowed; modified).
 * value: stolen, also on error (jansson's _new convention); must not be root or
 *   contain it.
 * err, errlen: [out] on error, a message such as "cannot set a.b.c: a.b is a string".
 * Returns 0 on success, -1 on a syntax error, a non-container root or intermediate,
 * a bad or out-of-range index, or a NULL value. On error root is left unchanged. */
int path_set(json_t *root, const char *path, json_t *value, char *err, size_t errlen);

/* Removes the value at path under root (borrowed; modified). At an array the element
 * is removed and later elements shift down.
 * Returns 1 when a value was removed, 0 when the path was absent (including an
 * intermediate that is not a container), -1 when path is syntactically invalid. */
int path_remove(json_t *root, const char *path);

#endif
