/* pace.c - send-time pacing, the outbound engine's pace hook: a pacer holds an http
 * step's limit names for one run and, per request, resolves them for its host and
 * takes the next GCRA slot of every bucket and of the host's learned pacing (learn.c)
 * (limits_pace); a 429/503 with Retry-After backs off the upstream that sent it
 * (limits_backoff), in its buckets, its learned state and for its job's claims; every
 * answer is learned from (limits_observe). Runs on the outbound I/O thread: it never
 * blocks, it says when. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/limits/limits_int.h"
#include "util/clock.h"
#include "util/xmalloc.h"

struct limits_pacer {
    struct limits *l;
    char job_id[72]; /* "" for synchronous runs */
    char tenant[STORE_NAME_MAX];
    char workflow[161];
    char step[65];
    size_t n;
    char (*names)[LIMITS_NAME_MAX];
};

struct limits_pacer *limits_pacer_new(struct limits *l, const char *tenant, const char *workflow,
                                      const char *step, const char *const *names, size_t n)
{
    if (!l) /* without limits a pacer still paces what upstreams say (learn.c) */
        return NULL;
    struct limits_pacer *p = xcalloc(1, sizeof *p);
    p->l = l;
    snprintf(p->tenant, sizeof p->tenant, "%s", tenant ? tenant : "");
    snprintf(p->workflow, sizeof p->workflow, "%s", workflow ? workflow : "");
    snprintf(p->step, sizeof p->step, "%s", step ? step : "");
    p->names = xcalloc(n ? n : 1, LIMITS_NAME_MAX);
    for (size_t i = 0; i < n; i++)
        snprintf(p->names[i], LIMITS_NAME_MAX, "%s", names[i]);
    p->n = n;
    return p;
}

void limits_pacer_set_job(struct limits_pacer *p, const char *job_id)
{
    if (p)
        snprintf(p->job_id, sizeof p->job_id, "%s", job_id ? job_id : "");
}

void limits_pacer_free(struct limits_pacer *p)
{
    if (!p)
        return;
    free(p->names);
    free(p);
}

/* Calls fn for every rate bucket the pacer's names resolve to for host. Under mu. */
static void pacer_each(struct limits_pacer *p, const char *host, int64_t now,
                       void (*fn)(struct bucket *, const struct limits_def *, void *), void *arg)
{
    char key[256];
    for (size_t i = 0; i < p->n; i++) {
        const struct limits_def *d[2];
        int scope[2];
        size_t nd = defs_of(p->l, p->tenant, p->names[i], d, scope);
        for (size_t k = 0; k < nd; k++)
            if (d[k]->rate > 0)
                fn(bucket_of(p->l, scope[k], d[k], p->tenant, p->names[i], p->workflow, p->step,
                             host, now, key, sizeof key),
                   d[k], arg);
    }
}

struct block_arg {
    const char *host;
    int64_t now, until;
};

struct pace_arg {
    struct limits *l;
    int64_t now, slot;
    int nrate;       /* configured rate buckets seen (pass 0) */
    int pass;        /* 0: find the latest slot over all buckets; 1: take it in each */
    uint64_t epochs; /* sum of the buckets' epochs (pass 0) */
    int missing;     /* shared mode: a bucket has no leased slot yet */
};

static void pace_one(struct bucket *b, const struct limits_def *d, void *varg)
{
    struct pace_arg *a = varg;
    double t_ms = 1000.0 / d->rate, tau = (double)(d->burst - 1) * t_ms;
    double base = (double)(a->now > b->blocked_until ? a->now : b->blocked_until);
    if (a->l->shared) {
        /* the request's slot is the next one this node leased from the store */
        if (a->pass == 0) {
            a->nrate++;
            a->epochs += b->epoch;
            if (stock_until(b, a->now, INT64_MAX) == 0) {
                stock_want(a->l, b, 1, t_ms, tau);
                a->missing = 1;
            } else {
                int64_t at = b->stock[0] > (int64_t)base ? b->stock[0] : (int64_t)base;
                if (at > a->slot)
                    a->slot = at;
            }
        } else {
            stock_take(b, 1);
            if (b->nstock < 2) /* keep one lease ahead */
                stock_want(a->l, b, (int64_t)(LEASE_MS / t_ms) + 1, t_ms, tau);
        }
        return;
    }
    if (a->pass == 0) {
        a->nrate++;
        a->epochs += b->epoch;
        double tat = b->tat > base ? b->tat : base;
        double slot = tat - tau > base ? tat - tau : base;
        if ((int64_t)ceil(slot) > a->slot)
            a->slot = (int64_t)ceil(slot);
    } else {
        /* Every bucket's request goes at a->slot (the latest): its slot is taken
         * from there, so the spacing holds in each bucket. */
        double at = (double)a->slot;
        double tat = b->tat > at ? b->tat : at;
        b->tat = tat + t_ms;
    }
}

static void blocked_one(struct bucket *b, const struct limits_def *d, void *varg)
{
    (void)d;
    struct block_arg *a = varg;
    int64_t until = bucket_host_blocked(b, a->host, a->now);
    if (until > a->until)
        a->until = until;
}

/* Learned slots are taken at most this far ahead: a request whose learned slot is
 * later asks again then, so a pace learned meanwhile (faster or slower) applies to it. */
#define LEARN_AHEAD_MS 250

/* The host of an origin ("host:port", outbound.h): what precedes its last ':', in buf. */
static const char *host_of(const char *origin, char *buf, size_t cap)
{
    const char *colon = origin ? strrchr(origin, ':') : NULL;
    if (!colon)
        return origin ? origin : "";
    snprintf(buf, cap, "%.*s", (int)(colon - origin), origin);
    return buf;
}

/* host is the request's origin: configured buckets and their back-offs go by its host
 * ({host} keys name hosts), what is learned by the origin itself. */
int64_t limits_pace(void *pacer, const char *host, int64_t now_mono, int64_t *hold)
{
    struct limits_pacer *p = pacer;
    if (!p)
        return now_mono;
    char hb[256];
    struct pace_arg a = {p->l, now_mono, now_mono, 0, 0, 0, 0};
    struct block_arg ba = {host_of(host, hb, sizeof hb), now_mono, 0};
    pthread_mutex_lock(&p->l->mu);
    pacer_each(p, ba.host, now_mono, blocked_one, &ba);
    struct learn_host *h = host && host[0] ? learn_get(p->l, host, now_mono) : NULL;
    if (h && h->blocked_until > ba.until)
        ba.until = h->blocked_until; /* its quota is spent until the reset */
    if (ba.until > now_mono) {
        /* This upstream asked to wait: the request takes its slot when that is over
         * (a slot taken before is given up), so the others of the bucket go on. */
        pthread_mutex_unlock(&p->l->mu);
        *hold = 0;
        return ba.until;
    }
    pacer_each(p, ba.host, now_mono, pace_one, &a);
    uint64_t epochs = a.epochs + (h ? h->epoch : 0);
    if (*hold && (int64_t)(epochs + 1) == *hold) {
        /* The slot taken earlier has come and no back-off voided it. */
        if (h)
            learn_sent(h, now_mono);
        pthread_mutex_unlock(&p->l->mu);
        return now_mono;
    }
    if (a.missing) { /* shared: no slot leased yet; ask again shortly */
        pthread_mutex_unlock(&p->l->mu);
        *hold = 0;
        return now_mono + STALE_MS;
    }
    if (h) {
        int64_t ls = learn_slot(h, now_mono, a.nrate > 0);
        if (ls > now_mono + LEARN_AHEAD_MS) { /* too far: nothing taken, ask again */
            pthread_mutex_unlock(&p->l->mu);
            *hold = 0;
            return ls - LEARN_AHEAD_MS / 2;
        }
        if (ls > a.slot)
            a.slot = ls;
        learn_take(h, a.slot, a.nrate > 0);
        if (a.slot <= now_mono)
            learn_sent(h, now_mono);
    }
    a.pass = 1;
    pacer_each(p, ba.host, now_mono, pace_one, &a);
    pthread_mutex_unlock(&p->l->mu);
    *hold = (int64_t)(epochs + 1);
    return a.slot;
}

void limits_observe(void *pacer, const char *host, int status, int timed_out, const char *headers,
                    int64_t sent_mono)
{
    struct limits_pacer *p = pacer;
    if (p)
        limits_learn_observe(p->l, host, status, timed_out, headers, sent_mono, clock_mono_ms());
}

static void block_one(struct bucket *b, const struct limits_def *d, void *varg)
{
    struct block_arg *a = varg;
    int64_t until = a->until;
    if (!strstr(d->key, "{host}")) {
        /* Hosts share this bucket: only the one that said so waits. */
        bucket_host_block(b, a->host, until);
        return;
    }
    if (until > b->blocked_until) {
        /* shared: every node is to wait; the slots leased here are void */
        b->block_wall = clock_now_ms() + (until - clock_mono_ms());
        b->nstock = 0;
        b->blocked_until = until;
        /* Slots handed out before are void (their holders take new ones), so the
         * requests after the wait are spaced from its end, not bunched there. */
        b->tat = (double)until;
        b->epoch++;
    }
}

void limits_backoff(void *pacer, const char *host, int64_t until_mono)
{
    struct limits_pacer *p = pacer;
    if (!p || p->n == 0) /* no limit named: the request's own retry waits, as before */
        return;
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&p->l->mu);
    /* An upstream may ask for an hour; what it gets is capped, so a typo or a hostile
     * upstream cannot freeze a limit for long. */
    if (until_mono > now + p->l->max_backoff_ms)
        until_mono = now + p->l->max_backoff_ms;
    char hb[256];
    struct block_arg a = {host_of(host, hb, sizeof hb), now, until_mono};
    pacer_each(p, a.host, now, block_one, &a);
    if (host && host[0])
        learn_block(learn_get(p->l, host, now), until_mono, LIMITS_SRC_RETRY_AFTER);
    if (p->job_id[0]) {
        struct job_block *jb = &p->l->jblocked[hash_str(p->job_id) % NTHROTTLE];
        if (strcmp(jb->job_id, p->job_id) != 0 || jb->until < until_mono) {
            snprintf(jb->job_id, sizeof jb->job_id, "%s", p->job_id);
            snprintf(jb->host, sizeof jb->host, "%s", a.host);
            jb->until = until_mono;
        }
    }
    pthread_mutex_unlock(&p->l->mu);
}
