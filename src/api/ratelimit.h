/* ratelimit.h - token buckets per key (tenant, client address), in memory.
 *
 * Each key has a bucket of `burst` tokens that refills at `rate_per_min / 60` tokens
 * per second; a request takes one token or is refused. Pure logic: the caller passes
 * the time (monotonic milliseconds), so tests control the clock.
 *
 * Keys live in a fixed-size, set-associative table (no allocation after _new): a
 * key hashes to one set of a few slots, and each set belongs to one of several
 * mutexes (striped locking). A bucket that has refilled to full carries no
 * information, so its slot is free for any key: idle tenants and addresses expire
 * on their own after burst / rate seconds. When every slot of a set is busy, the
 * fullest bucket is evicted, which errs on the side of the client.
 *
 * This is per process: the single-node build enforces the limit exactly; a cluster
 * wide limit needs shared state and comes with the PostgreSQL backend. Thread-safe. */
#ifndef SLUICE_API_RATELIMIT_H
#define SLUICE_API_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_KEY_MAX 160 /* bytes of a key kept, NUL included (longer keys are cut) */

struct ratelimit;

struct ratelimit_config {
    uint64_t rate_per_min; /* refill in tokens per minute (> 0) */
    uint64_t burst;        /* bucket size (> 0) */
    size_t slots;          /* table size; rounded up to whole sets (>= 1 set) */
    uint64_t seed;         /* hash seed, so keys cannot be chosen to collide */
};

/* The state of one key's bucket after ratelimit_take(). */
struct ratelimit_state {
    int allowed;           /* 1: a token was taken; 0: refused, nothing taken */
    uint64_t limit;        /* the burst */
    uint64_t remaining;    /* whole tokens left */
    int64_t reset_s;       /* seconds until the bucket is full again (0 if full) */
    int64_t retry_after_s; /* seconds until one token is there: 0 if there is, else >= 1 */
    int64_t window_s;      /* seconds a refill from empty takes (>= 1): the policy's window */
};

/* NULL if rate_per_min or burst is 0 (no limit). */
struct ratelimit *ratelimit_new(const struct ratelimit_config *cfg);
void ratelimit_free(struct ratelimit *rl);

/* Takes one token from key's bucket at now_ms (monotonic) and describes the bucket
 * in *st. Returns 1 if allowed, 0 if refused. */
int ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms,
                   struct ratelimit_state *st);

/* Keys with a bucket that is not full at now_ms (for tests and metrics). */
size_t ratelimit_active(struct ratelimit *rl, int64_t now_ms);

/* The key a client address is counted under: an IPv4 address as is, an IPv6 address
 * as its /64 ("2001:db8:1:2::/64"), since one host usually holds a whole /64 and
 * per-address counting would not slow it down. Writes at most n bytes to out. */
void ratelimit_address_key(const char *ip, char *out, size_t n);

/* Seconds a refill of the whole burst takes, at least 1: the "w" of RateLimit-Policy. */
int64_t ratelimit_window_s(const struct ratelimit *rl);
uint64_t ratelimit_burst(const struct ratelimit *rl);

#endif
