/* memwatch.c - see memwatch.h. */
#include "util/memwatch.h"

#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "util/clock.h"

static _Atomic uint64_t cached_rss;
static _Atomic int64_t cached_at = -MEMWATCH_REFRESH_MS - 1;

static uint64_t read_rss(void)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (uint64_t)resident * (uint64_t)page : 0;
}

uint64_t memwatch_rss(void)
{
    int64_t now = clock_mono_ms();
    int64_t at = atomic_load(&cached_at);
    /* One thread refreshes; the others keep the figure of at most a moment ago. */
    if (now - at > MEMWATCH_REFRESH_MS && atomic_compare_exchange_strong(&cached_at, &at, now))
        atomic_store(&cached_rss, read_rss());
    return atomic_load(&cached_rss);
}

uint64_t memwatch_physical(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}
