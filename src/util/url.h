/* url.h - percent-encoding for paths, query strings and links we build. */
#ifndef SLUICE_URL_H
#define SLUICE_URL_H

#include <stddef.h>

#include "util/buf.h"

/* Decodes %XX escapes (and '+' as space when plus_is_space) in place; returns the new
 * length, or -1 on a malformed escape or a decoded NUL byte. */
long url_decode(char *s, int plus_is_space);
/* Appends s percent-encoded (everything but unreserved characters). */
void url_encode(struct buf *b, const char *s);
/* url_encode() of the n bytes at s (NUL bytes included, as %00). */
void url_encoden(struct buf *b, const char *s, size_t n);
/* The length url_encoden() would append for the n bytes at s. */
size_t url_encoded_len(const char *s, size_t n);
/* The value of one hex digit (0-9, a-f, A-F), or -1. */
int url_hexval(int c);

#endif
