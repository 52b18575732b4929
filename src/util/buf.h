/* buf.h - a growable byte buffer, always NUL-terminated.
 *
 * The workhorse for building replies, SQL-free JSON output and staging item bytes.
 * A struct buf is owned by whoever declares it: buf_init() before use,
 * buf_release() when done. Not thread-safe; one owner at a time. */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
};

/* (not formatted: clang-format would spread the braces over four lines) */
/* clang-format off */
#define BUF_INIT {NULL, 0, 0}
/* clang-format on */

void buf_init(struct buf *b);
/* Frees the storage; the buffer may be reused after buf_init(). */
void buf_release(struct buf *b);
/* Keeps the storage, sets len to 0. */
void buf_reset(struct buf *b);
/* Ensures room for n more bytes plus the NUL. */
void buf_grow(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends v in decimal, without printf (for per-item paths). */
void buf_put_i64(struct buf *b, long long v);
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Appends s (n bytes, may contain NUL) as a JSON string literal, quotes included.
 * Valid UTF-8 is copied as it is; a byte that does not start a valid UTF-8 character
 * (such as half a character left by "%.60s") is written as \ufffd, so the output is
 * always valid JSON. */
void buf_json_str(struct buf *b, const char *s, size_t n);
/* Returns the heap string and resets b to empty; caller frees with free(). */
char *buf_detach(struct buf *b, size_t *len);
/* Returns a printable view (never NULL). */
const char *buf_cstr(const struct buf *b);

#endif
