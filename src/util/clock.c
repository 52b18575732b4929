/* clock.c - wall and monotonic clocks; see clock.h. */
#define _POSIX_C_SOURCE 200809L
#include "util/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ms(void)
{
    return clock_mono_ns() / 1000000;
}

int64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void clock_deadline(clockid_t clk, int64_t ms, struct timespec *ts)
{
    clock_gettime(clk, ts);
    long ns = ts->tv_nsec + (long)(ms % 1000) * 1000000L;
    ts->tv_sec += (time_t)(ms / 1000) + ns / 1000000000L;
    ts->tv_nsec = ns % 1000000000L;
}

char *clock_fmt_ms(int64_t ms, char out[25])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    /* Fields are range-checked by gmtime_r; the wide scratch buffer only keeps the
     * compiler's truncation analysis quiet. */
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    memcpy(out, tmp, 24);
    out[24] = '\0';
    return out;
}
