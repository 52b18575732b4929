/* pointer.h - RFC 6901 JSON pointers into jansson values.
 *
 * "" is the whole document; "/results/0/id" walks object members and array indexes;
 * "~1" stands for '/' and "~0" for '~' inside a reference token. At an array a token
 * must be a canonical decimal index ("0", "17"; not "07", not "-"); at an object any
 * token is a member name. Used where a definition addresses a document it does not
 * own, such as an upstream's answer to a batched http call.
 *
 * Reentrant; keeps no state. */
#ifndef SLUICE_LANG_POINTER_H
#define SLUICE_LANG_POINTER_H

#include <jansson.h>
#include <stddef.h>

#define POINTER_MAX_BYTES 256

/* Checks ptr: "" or '/'-led tokens, every '~' followed by '0' or '1', valid UTF-8, at
 * most POINTER_MAX_BYTES. 0, or -1 with a message in err. */
int pointer_check(const char *ptr, char *err, size_t errlen);

/* The value at ptr under root (borrowed from root), or NULL when absent or ptr is not
 * a valid pointer. */
json_t *pointer_get(json_t *root, const char *ptr);

#endif
