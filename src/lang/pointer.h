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

/* One element's text (pointer_array_texts), NUL-terminated; owned by the caller. */
struct pointer_text {
    char *text;
    size_t len;
};

/* Containers open at once in a text pointer_array_texts reads: jansson's, as jload. */
#define POINTER_SCAN_MAX_DEPTH 2048

/* The elements of the array at ptr in the JSON text[0..len), each as its own compact
 * text (whitespace outside strings dropped, the rest as the text has it), found without
 * making values: what the text says deeper than the elements costs only its scan.
 * Returns the element count with *out set (the caller frees each text and *out), or -1
 * when the text is not JSON (jload with JLOAD_ALLOW_NUL refuses the same texts, but
 * for nesting deeper than 2048), or ptr is invalid or leads to no array (where the
 * text repeats a member, its last occurrence counts, as in a value). */
long pointer_array_texts(const char *text, size_t len, const char *ptr, struct pointer_text **out);

#endif
