/* utf8.h - strict UTF-8 validation (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF) for text that reaches us outside JSON bodies: path
 * parameters, query values, headers. */
#ifndef SLUICE_UTF8_H
#define SLUICE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* 1 when s[0..n) is valid UTF-8 without NUL bytes, else 0. */
int utf8_valid_text(const char *s, size_t n);
/* The length (1..4) of the one valid UTF-8 character s starts with (NUL counts as a
 * character here), looking at no more than n bytes; 0 when n is 0 or s does not start
 * with a complete, valid character. */
size_t utf8_char_len(const char *s, size_t n);
/* The length of the longest prefix of s[0..n) of at most max bytes that does not end
 * inside a UTF-8 character: where to cut text for a message ("%.*s") so that what is
 * shown stays valid UTF-8 (and jansson accepts it). */
size_t utf8_prefix_len(const char *s, size_t n, size_t max);
/* Writes code point cp (at most U+10FFFF, not a surrogate) as UTF-8 into out; returns
 * its length, 1 to 4. */
size_t utf8_encode(uint32_t cp, char out[4]);

#endif
