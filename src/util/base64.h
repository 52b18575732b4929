/* base64.h - strict decoding of standard base64 (RFC 4648 section 4), the encoding
 * webhook providers use for signatures and Standard Webhooks secrets.
 *
 * Only the canonical form is accepted: the standard alphabet, the length a multiple of
 * 4, '=' padding only at the end and only as needed, no whitespace. Sender libraries
 * all write this form, and one form means one byte string per text (no malleability
 * for what is compared). Thread-safe, no allocation. */
#ifndef SLUICE_BASE64_H
#define SLUICE_BASE64_H

#include <stddef.h>

/* The number of bytes len characters of base64 decode to at most (len / 4 * 3). */
#define BASE64_DECODED_MAX(len) ((len) / 4 * 3)

/* Decodes the len characters at s into out (room for cap bytes) and sets [out] *outlen.
 * Returns 0, or -1 when s is not canonical base64 (see above), the padding bits of the
 * last character are not zero, or the result does not fit in cap bytes (out is then
 * undefined). */
int base64_decode(const char *s, size_t len, unsigned char *out, size_t cap, size_t *outlen);

#endif
