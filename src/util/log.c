/* log.c - JSON-lines logger; see log.h. */
#include "util/log.h"

#include <stdarg.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/clock.h"

static enum log_level min_level = LOG_INFO;

void log_set_level(enum log_level min)
{
    min_level = min;
}

void log_write(enum log_level lvl, const char *msg, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (lvl < min_level)
        return;
    char ts[25];
    struct buf b = BUF_INIT;
    buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", clock_fmt_ms(clock_now_ms(), ts),
               names[lvl]);
    buf_json_str(&b, msg, __builtin_strlen(msg));
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        buf_putc(&b, ',');
        buf_json_str(&b, k, __builtin_strlen(k));
        buf_putc(&b, ':');
        if (!v)
            buf_puts(&b, "null");
        else if (v[0] == '=')
            buf_puts(&b, v + 1);
        else
            buf_json_str(&b, v, __builtin_strlen(v));
    }
    va_end(ap);
    buf_puts(&b, "}\n");
    ssize_t w = write(STDERR_FILENO, b.data, b.len);
    (void)w;
    buf_release(&b);
}
