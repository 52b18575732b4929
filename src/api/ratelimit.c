/* ratelimit.c - token buckets per key in a fixed, set-associative table.
 *
 * Tokens are kept in fixed point, 1 token = 60000 units, so a refill of
 * rate_per_min tokens per minute adds exactly rate_per_min units per millisecond
 * and the math stays in integers (no drift, no rounding surprises in tests). */
#include "api/ratelimit.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

#define UNIT 60000ull /* fixed-point units per token */
#define SET_WAYS 8    /* slots per set: a key lives in exactly one set */
#define NLOCKS 16     /* striped mutexes; set i uses lock i % NLOCKS */

struct slot {
    char key[RATELIMIT_KEY_MAX]; /* "" = never used */
    uint64_t units;              /* tokens * UNIT at last_ms */
    int64_t last_ms;
};

struct ratelimit {
    uint64_t rate; /* units per ms == tokens per minute */
    uint64_t full; /* burst * UNIT */
    uint64_t burst;
    uint64_t seed;
    size_t nsets;
    pthread_mutex_t locks[NLOCKS];
    struct slot *slots; /* nsets * SET_WAYS */
};

struct ratelimit *ratelimit_new(const struct ratelimit_config *cfg)
{
    if (!cfg->rate_per_min || !cfg->burst)
        return NULL;
    struct ratelimit *rl = xcalloc(1, sizeof *rl);
    rl->rate = cfg->rate_per_min;
    rl->burst = cfg->burst;
    rl->full = cfg->burst * UNIT;
    rl->seed = cfg->seed;
    rl->nsets = (cfg->slots + SET_WAYS - 1) / SET_WAYS;
    if (rl->nsets == 0)
        rl->nsets = 1;
    rl->slots = xcalloc(rl->nsets * SET_WAYS, sizeof *rl->slots);
    for (int i = 0; i < NLOCKS; i++)
        pthread_mutex_init(&rl->locks[i], NULL);
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    for (int i = 0; i < NLOCKS; i++)
        pthread_mutex_destroy(&rl->locks[i]);
    free(rl->slots);
    free(rl);
}

/* Seeded FNV-1a with a final avalanche (splitmix64), so the set a key lands in
 * cannot be predicted without the seed. */
static uint64_t hash_key(uint64_t seed, const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

/* The slot's tokens (in units) at now_ms, refilled and capped at full. */
static uint64_t units_at(const struct ratelimit *rl, const struct slot *s, int64_t now_ms)
{
    if (!s->key[0])
        return rl->full;
    int64_t elapsed = now_ms - s->last_ms;
    if (elapsed <= 0)
        return s->units;
    uint64_t room = rl->full - s->units;
    /* elapsed * rate may overflow only when it is far past a full refill */
    if ((uint64_t)elapsed >= room / rl->rate + 1)
        return rl->full;
    uint64_t u = s->units + (uint64_t)elapsed * rl->rate;
    return u > rl->full ? rl->full : u;
}

static int64_t ceil_div(uint64_t a, uint64_t b)
{
    return (int64_t)((a + b - 1) / b);
}

int64_t ratelimit_window_s(const struct ratelimit *rl)
{
    int64_t ms = ceil_div(rl->full, rl->rate);
    int64_t s = ceil_div((uint64_t)ms, 1000);
    return s < 1 ? 1 : s;
}

uint64_t ratelimit_burst(const struct ratelimit *rl)
{
    return rl->burst;
}

int ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms,
                   struct ratelimit_state *st)
{
    size_t klen = strlen(key);
    if (klen >= RATELIMIT_KEY_MAX)
        klen = RATELIMIT_KEY_MAX - 1;
    size_t set = (size_t)(hash_key(rl->seed, key, klen) % rl->nsets);
    struct slot *ways = rl->slots + set * SET_WAYS;
    pthread_mutex_t *lock = &rl->locks[set % NLOCKS];

    pthread_mutex_lock(lock);
    struct slot *s = NULL, *spare = NULL;
    uint64_t spare_units = 0;
    for (int i = 0; i < SET_WAYS; i++) {
        struct slot *w = &ways[i];
        if (w->key[0] && strncmp(w->key, key, klen) == 0 && w->key[klen] == '\0') {
            s = w;
            break;
        }
        /* the fullest bucket is the one whose loss costs least: a full one nothing */
        uint64_t u = units_at(rl, w, now_ms);
        if (!spare || u > spare_units) {
            spare = w;
            spare_units = u;
        }
    }
    uint64_t units;
    if (s) {
        units = units_at(rl, s, now_ms);
    } else {
        s = spare;
        memcpy(s->key, key, klen);
        s->key[klen] = '\0';
        units = rl->full;
    }
    int allowed = units >= UNIT;
    if (allowed)
        units -= UNIT;
    s->units = units;
    s->last_ms = now_ms;
    pthread_mutex_unlock(lock);

    if (st) {
        st->allowed = allowed;
        st->limit = rl->burst;
        st->remaining = units / UNIT;
        st->reset_s = ceil_div((uint64_t)ceil_div(rl->full - units, rl->rate), 1000);
        if (units >= UNIT) {
            st->retry_after_s = 0;
        } else {
            int64_t ra = ceil_div((uint64_t)ceil_div(UNIT - units, rl->rate), 1000);
            st->retry_after_s = ra < 1 ? 1 : ra;
        }
        st->window_s = ratelimit_window_s(rl);
    }
    return allowed;
}

size_t ratelimit_active(struct ratelimit *rl, int64_t now_ms)
{
    size_t n = 0;
    for (size_t set = 0; set < rl->nsets; set++) {
        pthread_mutex_t *lock = &rl->locks[set % NLOCKS];
        pthread_mutex_lock(lock);
        for (int i = 0; i < SET_WAYS; i++) {
            const struct slot *w = &rl->slots[set * SET_WAYS + i];
            if (w->key[0] && units_at(rl, w, now_ms) < rl->full)
                n++;
        }
        pthread_mutex_unlock(lock);
    }
    return n;
}

void ratelimit_address_key(const char *ip, char *out, size_t n)
{
    struct in6_addr a6;
    if (strchr(ip, ':') && inet_pton(AF_INET6, ip, &a6) == 1) {
        memset(a6.s6_addr + 8, 0, 8);
        char txt[INET6_ADDRSTRLEN];
        if (inet_ntop(AF_INET6, &a6, txt, sizeof txt)) {
            snprintf(out, n, "%s/64", txt);
            return;
        }
    }
    snprintf(out, n, "%s", ip);
}
