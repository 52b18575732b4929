/* memwatch.h - the process's resident memory, cheaply, for admission control.
 *
 * Reads /proc/self/statm at most every MEMWATCH_REFRESH_MS (the figure is cached and
 * shared by all threads), so a check per request costs a clock read. */
#ifndef SLUICE_MEMWATCH_H
#define SLUICE_MEMWATCH_H

#include <stdint.h>

#define MEMWATCH_REFRESH_MS 100

/* Resident set size in bytes (cached); 0 when it cannot be read. */
uint64_t memwatch_rss(void);
/* Physical memory in bytes; 0 when unknown. */
uint64_t memwatch_physical(void);

#endif
