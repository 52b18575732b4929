/* clock.h - time helpers. Wall time for timestamps shown to users, monotonic time
 * for measuring durations. Thread-safe. */
#ifndef SLUICE_CLOCK_H
#define SLUICE_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch (wall clock). */
int64_t clock_now_ms(void);
/* Monotonic milliseconds, for durations only. */
int64_t clock_mono_ms(void);
/* Monotonic nanoseconds, for latency measurement. */
int64_t clock_mono_ns(void);
/* [out] *ts: the time ms (>= 0) milliseconds from now on clock clk (CLOCK_REALTIME or
 * CLOCK_MONOTONIC), as pthread_cond_timedwait() takes it for a condition variable
 * on that clock. */
void clock_deadline(clockid_t clk, int64_t ms, struct timespec *ts);
/* Writes RFC 3339 UTC with milliseconds ("2026-11-29T22:28:49.123Z") into out,
 * which must hold at least 25 bytes. Returns out. */
char *clock_fmt_ms(int64_t ms, char out[25]);

#endif
