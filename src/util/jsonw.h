/* jsonw.h - one compact JSON writer, and the exact length it will write.
 *
 * Item data, request bodies, results and document bodies are held to the item size
 * limit (--max-item-bytes) while they are built, so the length measured must be the
 * length written. jansson's json_dumps() writes reals with 17 significant digits
 * ("0.1" becomes "0.10000000000000001", five times as long): text that is measured
 * here is written here too, never with json_dumps().
 * The text: compact (no spaces), members in insertion order, strings as
 * buf_json_str() writes them (a byte that is not valid UTF-8, possible in a string
 * jansson holds unchecked, becomes \ufffd), integers in full, reals in the shortest of
 * 15 to 17 significant digits that reads back to the same double, always with a '.'
 * or an exponent ("19.99", "5.0", "1e+21").
 * All functions are reentrant and only read v. */
#ifndef SLUICE_UTIL_JSONW_H
#define SLUICE_UTIL_JSONW_H

#include <jansson.h>
#include <stddef.h>

#include "util/buf.h"

/* Appends v (borrowed, not NULL) to b as the text described above. Never fails. */
void jsonw_put(struct buf *b, json_t *v);

/* v (borrowed; NULL writes "") written by jsonw_put() into a new string.
 * len: [out] its length (may be NULL). Caller frees with free(). */
char *jsonw_dump(json_t *v, size_t *len);

/* The length jsonw_put() writes for v, or cap + 1 as soon as it is known to pass cap
 * (cap SIZE_MAX counts as SIZE_MAX - 1). Walks no more of v than that, allocates
 * nothing; v NULL is 0. */
size_t jsonw_len(json_t *v, size_t cap);

/* The bytes buf_json_str() writes for s (n bytes) between its quotes, escapes
 * included, or cap + 1 as soon as that passes cap. */
size_t jsonw_str_len(const char *s, size_t n, size_t cap);

#endif
