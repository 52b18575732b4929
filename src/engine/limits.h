/* limits.h - named processing limits: how fast and how much at once work may run.
 *
 * DESIGN
 * A limit is a named definition (JSON, checked by limits_def_parse in spec/limit.h):
 *
 *   {"key": "{tenant}:{host}",   bucket key template; placeholders {tenant}, {workflow},
 *                                {step}, {host}; the bare words "tenant", "workflow",
 *                                "step", "host" stand for one placeholder; default ""
 *                                (one bucket shared by everything that names it)
 *    "rate": 5, "per": "second", tokens per second | minute | hour (rate > 0)
 *    "burst": 5,                 tokens that may go at once (default: one second's
 *                                worth, at least 1)
 *    "concurrency": 10}          items holding the limit at once
 *
 * (rate and/or concurrency). Limits come from the server's config (every tenant) and
 * from tenants (PUT /v1/limits/{name}, stored by the store). A workflow names the
 * limits its items consume ("limits": [...] at the top: one token per item) and a
 * step names those its work consumes ("limits" on the step: one token per request
 * of an http step, one per item for other steps). A name resolves to the server's
 * limit of that name AND the tenant's: both hold, so a tenant can only tighten what
 * the operator set. One bucket per (scope, name, resolved key).
 *
 * ENFORCEMENT, where work is handed out, not by sleeping workers:
 *   - at claim time (the store's claim gate, limits_admit): a job's range is cut to
 *     what its limits allow now; a job with nothing allowed is passed over and
 *     another job is claimed. Item limits take their tokens here. Request limits
 *     (http steps) admit what their bucket can send within LIMITS_HORIZON_MS, minus
 *     what earlier claims were admitted and have not finished; concurrency admits up
 *     to the cap minus items held. A grant ends with limits_finish();
 *   - at send time (limits_pace, on the outbound I/O thread): each request of an http
 *     step takes the next slot of its buckets (GCRA: the emission interval is 1/rate,
 *     the burst is the tolerance); when that slot is later, the request waits on a
 *     timer of the I/O thread. So an upstream never sees more than burst + rate * t
 *     requests in any t seconds, whatever the number of jobs, claims and workers;
 *   - a 429/503 with Retry-After backs off the upstream that sent it (limits_backoff):
 *     for a bucket keyed by {host}, the whole bucket (its one upstream); for a bucket
 *     other hosts share, that host only, on this node: its requests and claims wait,
 *     the other hosts' go on. The wait is capped (limits_set_max_backoff).
 *
 *   - LEARNED PACING (learn.c), with or without configured limits: every response an
 *     http step gets is fed to limits_observe, which keeps per upstream origin
 *     (host:port: two services on one host learn apart) what the upstream said of
 *     its own limit - the IETF RateLimit / RateLimit-Policy fields, the older
 *     RateLimit-Limit/-Remaining/-Reset trio, X-RateLimit-*, Shopify's
 *     X-Shopify-Shop-Api-Call-Limit - and, where it says nothing, an AIMD send rate
 *     driven by bare 429/503s and timeouts (slow start from LIMITS_LEARN_RATE0
 *     doubling while it binds, then +10%/s, x0.7 on a 429). Pacing takes a learned
 *     slot of the origin as well as the configured buckets' (the most restrictive
 *     signal wins; learned pacing only ever slows sends further), and a Remaining of
 *     0 holds the origin until its reset. Admission cuts a claim of a job
 *     whose http step names a fixed origin to what the learned rate sends within
 *     LIMITS_HORIZON_MS. The state is per process (nodes sharing a store learn each on
 *     their own), forgotten after LIMITS_LEARN_FORGET_MS without a response, and
 *     bounded (LIMITS_LEARN_HOSTS; the least recently seen host is evicted).
 *
 * The state is in this process, or for rates in the store when it is shared by several
 * nodes (limits_share). Concurrency caps are per process. Thread-safe: one mutex.
 *
 * The code is in engine/limits/, one file per concern (limits.c: the registry;
 * uses.c, bucket.c, refill.c, admit.c, pace.c, learn.c, signals.c); this is its one
 * public header. */
#ifndef SLUICE_LIMITS_H
#define SLUICE_LIMITS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/limit.h"
#include "util/buf.h"

#define LIMITS_HORIZON_MS 1000        /* request slots a claim may be admitted for */
#define LIMITS_MAX_BACKOFF_MS 300000  /* default cap of an upstream's Retry-After back-off */
#define LIMITS_LEARN_HOSTS 256        /* upstream hosts whose limits are learned at once */
#define LIMITS_LEARN_FORGET_MS 300000 /* learned state of a host silent this long is dropped */
#define LIMITS_LEARN_RATE0 1000.0     /* requests/s a host that said nothing starts at */
#define LIMITS_ORIGIN_MAX 264         /* an origin, host:port (outbound.h), and its NUL */

struct limits;

/* An empty registry (no limits). */
struct limits *limits_new(void);
void limits_free(struct limits *l);

/* Shared mode, for stores several nodes use (store_shared): rate buckets are kept in
 * the store (store_bucket_take) and a thread of the limiter leases their slots a
 * fraction of a second ahead, so a configured rate is the rate of the whole cluster;
 * admission and pacing then hand out this node's leased slots. Call once, before use.
 * 0 or -SLUICE_E_INTERNAL. */
struct store;
int limits_share(struct limits *l, struct store *st);
/* Server-config limits: a JSON object name -> definition. Replaces the earlier set.
 * -SLUICE_E_INVALID_FIELD with err/target ("NAME.rate") on a bad entry (nothing
 * changes). */
int limits_set_server(struct limits *l, const json_t *defs, char *err, size_t errlen, char *target,
                      size_t targetlen);
/* Sets (def != NULL) or removes (def NULL) a tenant's limit. */
void limits_set_tenant(struct limits *l, const char *tenant, const char *name,
                       const struct limits_def *def);
/* Replaces every tenant limit with the store's (at start, and to follow other nodes).
 * 0 or a store error (nothing changes then). */
struct store;
int limits_reload(struct limits *l, struct store *st);
/* 1 and [out] d when the server config defines name, else 0. */
int limits_server_def(struct limits *l, const char *name, struct limits_def *d);
/* Server-config limit names in order, for listings: [out] heap array of n names
 * (each LIMITS_NAME_MAX), caller frees. */
void limits_server_names(struct limits *l, char (**names)[LIMITS_NAME_MAX], size_t *n);

/* ---- what a job uses ------------------------------------------------------------ */

/* What a limit counts. A use is LIMITS_ITEMS or LIMITS_REQUESTS; a grant holds
 * LIMITS_CONCURRENCY too. (The store text of uses keeps the letters 'i' and 'r':
 * limits_uses_encode.) */
enum limits_kind {
    LIMITS_ITEMS,       /* one token per item, taken at claim (kept when it finishes) */
    LIMITS_REQUESTS,    /* one token per request sent: admitted at claim, paced at send */
    LIMITS_CONCURRENCY, /* items holding a concurrency cap */
};

/* One use: what a job's item consumes of a limit name. */
struct limits_use {
    enum limits_kind kind; /* LIMITS_ITEMS or LIMITS_REQUESTS */
    char name[LIMITS_NAME_MAX];
    char workflow[161];
    char step[65];                /* "" for a workflow-level use */
    char host[LIMITS_ORIGIN_MAX]; /* http steps whose URL fixes it: the host, or for an
                                     unnamed (learned) use the origin, host:port; else "" */
    int count;                    /* how many such uses per item (e.g. two http steps) ... */
    int per;                      /* ... per this many items: a batched http step's maxItems (one
                                     request carries that many), else 1 */
};
/* Tokens n items of use u take (count per `per` items, rounded up), the items s
 * tokens let through, and the items/s a rate of tokens/s lets through. */
int64_t limits_use_tokens(const struct limits_use *u, int64_t n);
int64_t limits_use_items(const struct limits_use *u, int64_t s);
double limits_use_rate(const struct limits_use *u, double tokens_per_s);
/* Encodes uses as the text the store keeps on a job (store_job_meta.uses): appends
 * to b; nothing for n == 0. */
void limits_uses_encode(const struct limits_use *u, size_t n, struct buf *b);
/* What a workflow's items consume, encoded as above (nothing when it names no limit). */
struct wfdef;
void limits_uses_of(const struct wfdef *w, struct buf *b);
/* Decodes it: the number of uses read into u (at most max), or -1 if malformed. */
int limits_uses_decode(const char *text, struct limits_use *u, size_t max);

/* ---- the scheduler's side ------------------------------------------------------ */

/* What limits_admit gave one claim; limits_finish gives it back. */
struct limits_grant {
    char job_id[72];
    size_t n; /* items granted */
    size_t nb;
    struct {
        void *bucket;
        enum limits_kind kind; /* item tokens (kept), admitted requests, concurrency */
        int64_t amount;
        double t_ms; /* LIMITS_ITEMS: the emission interval the tokens took */
    } b[2 * LIMITS_MAX_USES * 2];
};

/* How many of want items of job (tenant, job_id) with uses (store text) may be
 * claimed now: 0..want; fills g (n = the result) for limits_finish / limits_undo.
 * 0 records the job as throttled by the limit that held it. Never blocks on I/O. */
size_t limits_admit(struct limits *l, const char *tenant, const char *job_id, const char *uses,
                    size_t want, struct limits_grant *g);
/* The claim of g was not made (or lost): gives everything back, item tokens too. */
void limits_undo(struct limits *l, struct limits_grant *g);
/* The claim of g has finished: admitted requests and concurrency go back (item tokens
 * stay spent). Returns 1 when that may let a throttled job go (wake idle workers). */
int limits_finish(struct limits *l, struct limits_grant *g);
/* Milliseconds until a rate that held work back has a slot again (0: now), or -1
 * when no rate holds anything back: how long idle workers may sleep. */
int64_t limits_wake_in(struct limits *l, int64_t now_mono);

/* ---- send-time pacing (the outbound engine's pace hook) --------------------------- */

/* A step's request limits for one run, resolved per host as requests go out. */
struct limits_pacer;
/* names: the step's limit names (n of them). NULL when n == 0. */
struct limits_pacer *limits_pacer_new(struct limits *l, const char *tenant, const char *workflow,
                                      const char *step, const char *const *names, size_t n);
void limits_pacer_free(struct limits_pacer *p);
/* The job whose requests p paces (NULL or "": none, a synchronous run): a back-off
 * then also holds that job's claims, whatever host its steps' URLs pick per item. */
void limits_pacer_set_job(struct limits_pacer *p, const char *job_id);
/* host, in limits_pace, limits_backoff and limits_observe: the request's origin,
 * "host:port" (outbound.h). Configured buckets, their {host} keys and back-offs go by
 * its host part; learned pacing by the whole origin.
 * Takes the next slot of every bucket for a request to host; returns the monotonic
 * ms at which it may go (<= now_mono: at once). *hold is the caller's memory of the
 * slot (0 before the first call): call again when the slot's time has come; it then
 * returns now_mono, unless a back-off voided the slot, when it takes a new one. */
int64_t limits_pace(void *pacer, const char *host, int64_t now_mono, int64_t *hold);
/* The upstream host asked to wait until until_mono (429/503 + Retry-After), capped at
 * the limiter's maximum back-off: no request of the pacer's buckets goes to host before
 * then (a bucket keyed by {host} waits as a whole: it is that host's), and claims of
 * steps whose URL fixes that host are held back; other hosts sharing a bucket go on. */
void limits_backoff(void *pacer, const char *host, int64_t until_mono);
/* The longest back-off an upstream's Retry-After may impose on a limit (ms; <= 0: the
 * default, LIMITS_MAX_BACKOFF_MS). Thread-safe. */
void limits_set_max_backoff(struct limits *l, int64_t ms);

/* ---- learned pacing (learn.c, signals.c) ------------------------------------------ */

/* Where a learned limit came from (limits_source_name gives the stable name). */
enum limits_source {
    LIMITS_SRC_NONE,        /* nothing learned (a new host in slow start) */
    LIMITS_SRC_AIMD,        /* "aimd": bare 429/503s and timeouts, no header */
    LIMITS_SRC_RETRY_AFTER, /* "retry-after" */
    LIMITS_SRC_IETF,        /* "ratelimit": RateLimit + RateLimit-Policy (structured) */
    LIMITS_SRC_TRIO,        /* "ratelimit-limit": RateLimit-Limit/-Remaining/-Reset */
    LIMITS_SRC_X,           /* "x-ratelimit": X-RateLimit-Limit/-Remaining/-Reset */
    LIMITS_SRC_SHOPIFY,     /* "shopify": X-Shopify-Shop-Api-Call-Limit */
};
const char *limits_source_name(enum limits_source s);

/* What one response's headers say of the upstream's limit; -1 where a field is absent.
 * The three "quota, remaining, reset" families keep their own fields, so the most
 * restrictive can be taken. */
struct limits_signal {
    unsigned families; /* bit (1 << LIMITS_SRC_*) for each family present and valid */
    /* IETF: the most restrictive policy (smallest quota / window) and the smallest
     * remaining with its reset (seconds). */
    double ietf_q, ietf_w, ietf_r, ietf_t;
    /* RateLimit-Limit trio and X-RateLimit-*: quota, window (s, when the Limit names
     * one: "100;w=60"), remaining, seconds until reset (X-: epoch seconds above 1e9 are
     * turned into a delta against now). */
    double trio_limit, trio_w, trio_remaining, trio_reset;
    double x_limit, x_remaining, x_reset;
    /* Shopify: "used/size". */
    double shop_used, shop_size;
};
/* Parses the rate-limit header lines of one response: headers is "Name: value" lines
 * separated by '\n' (any case; other lines ignored; NULL = none). Malformed values are
 * ignored (their family is not set). now_wall_ms judges epoch resets. [out] s. Returns
 * the number of families found. Pure: for the unit tests too. */
int limits_signal_parse(const char *headers, int64_t now_wall_ms, struct limits_signal *s);

/* The outbound engine's observe hook (outbound_request.pace_observe): an attempt to
 * host that was sent at sent_mono ended: status (0: no response; timed_out: it timed
 * out) and its rate-limit header lines (as limits_signal_parse takes). Updates what is
 * learned of host; runs on the I/O thread, quick. pacer may be NULL (nothing). */
void limits_observe(void *pacer, const char *host, int status, int timed_out, const char *headers,
                    int64_t sent_mono);
/* Same, without a pacer (unit tests, callers with the registry at hand). */
void limits_learn_observe(struct limits *l, const char *host, int status, int timed_out,
                          const char *headers, int64_t sent_mono, int64_t now_mono);

/* What this node learned of one origin (host:port). */
struct limits_learned {
    char host[LIMITS_ORIGIN_MAX];
    enum limits_source source; /* the signal that paces it now (most restrictive) */
    double rate;               /* requests per second it paces at; 0: unpaced */
    double burst;              /* requests that may go at once (Shopify: bucket room) */
    int64_t blocked_ms;        /* ms until it may be sent to again (0: now) */
    int slow_start;            /* 1 while an unknown host's rate is still doubling */
    int64_t throttled;         /* 429/503 answers seen from it */
    double concurrency;        /* requests in flight it is held to after 503s or timeouts
                                  (paced as that over its latency); 0: none */
};
/* 1 and [out] out when host has learned state, else 0. Thread-safe. */
int limits_learned_get(struct limits *l, const char *host, struct limits_learned *out);
/* Appends the learned hosts as Prometheus gauges (sluice_upstream_learned_rate,
 * sluice_upstream_learned_concurrency, sluice_upstream_learned_blocked_seconds,
 * sluice_upstream_throttled_total). */
void limits_metrics(struct limits *l, struct buf *b);

/* ---- what the monitor shows ------------------------------------------------------ */

struct limits_throttle {
    char name[LIMITS_NAME_MAX];   /* the limit */
    char scope[8];                /* "server" | "tenant" */
    char key[LIMITS_ORIGIN_MAX];  /* resolved bucket key (reason "learned": the origin) */
    char reason[16];              /* "rate" | "concurrency" | "upstream" (Retry-After) |
                                     "learned" (what the host said of its limit; name "") */
    char source[16];              /* reason "learned": limits_source_name, else "" */
    char host[LIMITS_ORIGIN_MAX]; /* reason "upstream": the host that asked to wait;
                                     "learned": the origin; else "" */
    double items_per_s;           /* what the limit allows this job at most (0 = unknown) */
    int64_t at;                   /* wall ms when it last held the job back */
};
/* 1 and [out] t when a limit held job_id back within the last 2 s, else 0. */
int limits_job_throttle(struct limits *l, const char *job_id, struct limits_throttle *t);

#endif
