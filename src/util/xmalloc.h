/* xmalloc.h - allocation that never returns NULL.
 *
 * Out-of-memory is not a condition sluice can answer usefully from deep inside a
 * parser or a store call, so every allocation goes through this family, which
 * aborts with a message (Redis zmalloc). Memory is released with plain free(). */
#ifndef SLUICE_XMALLOC_H
#define SLUICE_XMALLOC_H

#include <stddef.h>

/* Each returns a valid pointer or aborts the process; caller frees with free(). */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new heap string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
