/* jload.h - JSON text to a jansson value, five times faster than json_loadb.
 *
 * jansson's own parser reads a byte at a time through a stream and spent a fifth of the
 * server's CPU on a batched http step's answers (700 us for 44 KB of products). jload
 * builds the same values on util/jscan.c, the scanner that checks submit bodies, so
 * what it accepts and what it refuses is jansson's (tests/unit/test_ingest_jansson.c
 * compares the two on generated and mutated texts):
 *  - any value at the top (JSON_DECODE_ANY), surrounded by whitespace only;
 *  - integers without fraction or exponent that fit int64, reals that stay finite;
 *  - at most 2048 containers open at once (jansson's JSON_PARSER_MAX_DEPTH);
 *  - no \u0000 in object keys; in strings only with JLOAD_ALLOW_NUL;
 *  - a repeated key keeps its first position and its last value;
 * and one difference: a raw NUL byte is refused anywhere (RFC 8259 has no place for it;
 * jansson's reader takes it for the end of a buffer and steps over some, as in "[1\0]").
 * Thread-safe: all state is on the caller's stack. */
#ifndef SLUICE_JLOAD_H
#define SLUICE_JLOAD_H

#include <jansson.h>
#include <stddef.h>

#define JLOAD_ALLOW_NUL 1 /* as JSON_ALLOW_NUL: strings may hold \u0000 */

/* The value of text[0..len), a new reference, or NULL when the text is not JSON that
 * json_loadb(text, len, JSON_DECODE_ANY | (flags ? JSON_ALLOW_NUL : 0)) accepts. */
json_t *jload(const char *text, size_t len, int flags);

#endif
