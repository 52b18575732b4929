/* errmsg.h - writing a message into a caller's (err, errlen) buffer, the convention
 * of the pure modules (steps, hooks) for saying why something is invalid. */
#ifndef SLUICE_ERRMSG_H
#define SLUICE_ERRMSG_H

#include <stdarg.h>
#include <stddef.h>

/* printf into err (errlen bytes, always NUL-terminated); nothing when err is NULL or
 * errlen is 0. */
void errmsg_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* errmsg_set() with a va_list, for functions that also set a target. */
void errmsg_vset(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
