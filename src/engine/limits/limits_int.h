/* limits_int.h - what the files of engine/limits/ share and nobody else sees: the
 * registry's state (struct limits), its buckets, and the helpers one file of the
 * folder calls in another. Callers outside the folder use engine/limits.h only.
 * Every function here is called with the registry's mutex held unless it says so. */
#ifndef SLUICE_LIMITS_INT_H
#define SLUICE_LIMITS_INT_H

#include <pthread.h>
#include <stdint.h>

#include "engine/limits.h"
#include "store/store.h"

#define NHASH 1024    /* bucket hash chains */
#define NTHROTTLE 512 /* jobs remembered as throttled (a cache: collisions evict) */
#define LEASE_MS 250  /* a lease covers at most this much of the bucket's rate */
#define STALE_MS                                                                                   \
    20 /* a leased slot unused this long after its time is dropped: used                           \
          late it could bunch with other nodes' slots */

/* ---- the registry's state ------------------------------------------------------------ */

struct bucket {
    struct bucket *next;   /* hash chain */
    char *id;              /* "s/NAME|KEY" or "t/TENANT/NAME|KEY" */
    double tat;            /* GCRA theoretical arrival time, monotonic ms */
    int64_t blocked_until; /* monotonic ms: no slot before (upstream Retry-After); only
                            * buckets whose key names {host}: one upstream each */
    /* Back-offs of the upstreams that said so, for buckets several hosts share
     * (monotonic ms; expired ones are dropped when looked at). Per node. */
    struct host_block *blocks;
    size_t nblocks;
    int64_t admitted; /* requests admitted by claims not finished yet */
    int64_t inflight; /* items holding the concurrency cap */
    int pins;         /* grants pointing here: not dropped while > 0 */
    uint64_t epoch;   /* +1 per back-off: slots taken before it are void */
    /* Shared mode (limits_share): the slots this node leased from the store's bucket,
     * monotonic ms, ascending; what it still wants leased; the parameters to lease
     * with; a back-off still to be told to the store (wall ms, 0: none). */
    int64_t *stock;
    size_t nstock, capstock;
    int64_t demand;
    double t_ms, tau;
    uint64_t store_epoch;
    int64_t block_wall;
    /* Shared mode, concurrency: units of the cap this node holds in the store, more it
     * wants, the cap, since when some have been idle (monotonic ms, 0: none idle). */
    int64_t units, unit_demand, cap;
    int64_t idle_since;
};

struct host_block {
    char host[256];
    int64_t until;
};

struct tdef { /* a tenant's limit */
    struct tdef *next;
    char tenant[STORE_NAME_MAX];
    char name[LIMITS_NAME_MAX];
    struct limits_def d;
};

struct sdef { /* a server limit */
    char name[LIMITS_NAME_MAX];
    struct limits_def d;
};

struct throttle_slot {
    char job_id[72];
    struct limits_throttle t;
    int64_t at_mono;
};

struct job_block { /* a job one of whose requests was asked to wait */
    char job_id[72];
    char host[256];
    int64_t until; /* monotonic ms */
};

/* What this node learned of one upstream host (learn.c). */
#define LEARN_FAMILIES 8 /* indexed by enum limits_source */
struct learn_host {
    char host[LIMITS_ORIGIN_MAX]; /* its origin, host:port */
    uint64_t hash;
    int64_t seen;   /* monotonic ms of the last response (or first send) */
    uint64_t epoch; /* +1 when its pacing changed enough that held slots are void */
    double tat;     /* GCRA theoretical arrival time of its learned slots */
    int64_t blocked_until;
    enum limits_source block_src;
    int inflight;      /* attempts sent and not answered */
    int64_t last_send; /* for send_iv */
    double send_iv;    /* EWMA of ms between sends: what is sent, for the decrease */
    /* What each header family allows (ms per request; 0: none) and when it last said. */
    double pub_iv[LEARN_FAMILIES];
    int64_t pub_at[LEARN_FAMILIES];
    double win_ms[LEARN_FAMILIES]; /* quota families: the longest reset seen (the window) */
    /* Shopify: the bucket's size, its leak rate (per s; learned), the anchor the leak is
     * measured from (time, used, answers since, lowest used since). */
    double shop_size, shop_leak, shop_used;
    int64_t shop_t0;
    double shop_u0, shop_min;
    int shop_n;
    /* AIMD when it says nothing: 0 slow start, 1 additive increase, 2 unpaced. */
    int phase;
    double rate; /* requests/s */
    int64_t grown_at, decreased_at;
    int64_t throttled; /* 429/503 answers */
    /* Overload (a bare 503, a timeout): a window of requests in flight, cut to MD_BETA
     * of what was in flight and grown by AI_FRAC of itself a second, paced as window /
     * latency (Little's law); 0: none. lat_ms: EWMA of the time to an answer that was
     * not a refusal, or to a timeout. */
    double cwnd, lat_ms;
    int64_t cwnd_cut_at;
};

struct limits {
    pthread_mutex_t mu;
    /* Learned pacing per upstream host (learn.c); NULL slots are free. */
    struct learn_host *learned[LIMITS_LEARN_HOSTS];
    struct bucket *hash[NHASH];
    size_t nbuckets;
    struct sdef *server;
    size_t nserver;
    struct tdef *tenants; /* list: tenants define few limits */
    struct throttle_slot throttled[NTHROTTLE];
    /* Jobs told to wait by an upstream: their claims wait too, also when the step's URL
     * decides the host per item (claims cannot see which host). A cache: collisions
     * evict, and then the requests still wait at send time. */
    struct job_block jblocked[NTHROTTLE];
    int64_t wake_at;        /* monotonic ms: a rate that held work back frees a slot; 0: none */
    int64_t max_backoff_ms; /* cap of an upstream's back-off (limits_set_max_backoff) */
    uint64_t tgen;          /* +1 per limits_set_tenant: a reload read before it is stale */
    /* Shared mode: rate buckets live in the store; a thread leases their slots. */
    struct store *shared;
    pthread_t refiller;
    pthread_cond_t refill_cv;
    int refill_stop, refill_started;
};

static inline uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* ---- limits.c: the registry ------------------------------------------------------------ */

/* The definitions a use names (server's, then tenant's), at most 2: [out] out, and
 * scope (0 server, 1 tenant) of each. */
size_t defs_of(struct limits *l, const char *tenant, const char *name,
               const struct limits_def *out[2], int scope[2]);

/* ---- bucket.c: the buckets in this process ----------------------------------------- */

/* The bucket named id, made (fresh: full, unblocked) when there is none. */
struct bucket *bucket_get(struct limits *l, const char *id, int64_t now);
/* The bucket of limit name (d: its definition in scope 0 server, 1 tenant) for one
 * use: bucket_get of "s/NAME|KEY" or "t/TENANT/NAME|KEY", with KEY, d's template
 * resolved for tenant, workflow, step and host, also written to key. */
struct bucket *bucket_of(struct limits *l, int scope, const struct limits_def *d,
                         const char *tenant, const char *name, const char *workflow,
                         const char *step, const char *host, int64_t now, char *key, size_t keylen);
/* Frees every bucket (all), or those whose state equals a fresh one's. */
void buckets_drop(struct limits *l, int64_t now, int all);
/* GCRA slots of b (emission interval t_ms, tolerance tau_ms) at or before `until`,
 * counting from now. */
int64_t bucket_slots_until(const struct bucket *b, double t_ms, double tau_ms, int64_t now,
                           int64_t until);
/* Until when host's back-off holds in b (monotonic ms; 0: none). */
int64_t bucket_host_blocked(struct bucket *b, const char *host, int64_t now);
/* Records that host asked b's users to wait until `until`. */
void bucket_host_block(struct bucket *b, const char *host, int64_t until);

/* ---- learn.c: what upstreams said of their limits ----------------------------------- */

/* The learned state of host, NULL when there is none (forgotten ones are dropped). */
struct learn_host *learn_find(struct limits *l, const char *host, int64_t now);
/* The same, made (slow start) when there is none, evicting the least recently seen. */
struct learn_host *learn_get(struct limits *l, const char *host, int64_t now);
/* The learned pacing of h now: [out] ms per request (0: unpaced), tolerance (ms, the
 * burst) and the source. configured: the caller's requests also pace through
 * configured rates (slow start does not apply then). */
double learn_interval(struct learn_host *h, int64_t now, int configured, double *tau,
                      enum limits_source *src);
/* The earliest monotonic ms h's learned pacing lets a request go (>= now); grows the
 * slow start's rate while it binds. */
int64_t learn_slot(struct learn_host *h, int64_t now, int configured);
/* Takes h's slot at `at` (from learn_slot, or later). */
void learn_take(struct learn_host *h, int64_t at, int configured);
/* A request to h is released now (counts in flight; the send rate). */
void learn_sent(struct learn_host *h, int64_t now);
/* An upstream's Retry-After: h waits until `until`. */
void learn_block(struct learn_host *h, int64_t until, enum limits_source src);

/* ---- refill.c: shared mode, slots leased from the store ---------------------------------- */

/* Leased slots of b at or before until (too old ones dropped first). */
int64_t stock_until(struct bucket *b, int64_t now, int64_t until);
/* Takes the first n (<= b->nstock) leased slots of b; returns the last one's time. */
int64_t stock_take(struct bucket *b, size_t n);
/* Puts a slot at monotonic ms `at` into b's stock (in order). */
void stock_add(struct bucket *b, int64_t at);
/* Asks the refiller for n more slots of b (rate parameters t_ms, tau). */
void stock_want(struct limits *l, struct bucket *b, int64_t n, double t_ms, double tau);
/* Stops the refiller thread, if started, and waits for it. Without the lock. */
void refill_stop(struct limits *l);

#endif
