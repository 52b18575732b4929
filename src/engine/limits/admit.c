/* admit.c - admission, the scheduler's side: how much of a job a claim may take now
 * (limits_admit, called from the store's claim gate), giving it back (limits_finish,
 * limits_undo), when idle workers should look again (limits_wake_in), and what the
 * monitor shows of a job that was held back (limits_job_throttle). Never blocks on
 * I/O: in shared mode it uses the slots the refiller leased and asks for more. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine/limits/limits_int.h"
#include "util/clock.h"

#define THROTTLE_SHOWN_MS 2000
#define WAKE_SLOTS 100 /* slots a rate should have before idle workers look again */

/* Work held back by a rate or a back-off can go at `at` (monotonic ms): idle workers
 * are to look again by then. */
static void wake_note(struct limits *l, int64_t at)
{
    if (!l->wake_at || at < l->wake_at)
        l->wake_at = at;
}

/* Records in g that it holds amount of kind in b (t_ms: LIMITS_ITEMS' emission
 * interval), pinning b until the grant is given back. */
static void grant_push(struct limits_grant *g, struct bucket *b, enum limits_kind kind,
                       int64_t amount, double t_ms)
{
    g->b[g->nb].bucket = b;
    g->b[g->nb].kind = kind;
    g->b[g->nb].amount = amount;
    g->b[g->nb++].t_ms = t_ms;
    b->pins++;
}

static void throttle_note(struct limits *l, const char *job_id, const char *name, int scope,
                          const char *key, const char *reason, const char *host, double items_per_s,
                          int64_t now)
{
    struct throttle_slot *s = &l->throttled[hash_str(job_id) % NTHROTTLE];
    s->t.source[0] = 0;
    snprintf(s->job_id, sizeof s->job_id, "%s", job_id);
    snprintf(s->t.name, sizeof s->t.name, "%s", name);
    snprintf(s->t.scope, sizeof s->t.scope, "%s", scope ? "tenant" : "server");
    snprintf(s->t.key, sizeof s->t.key, "%s", key);
    snprintf(s->t.reason, sizeof s->t.reason, "%s", reason);
    snprintf(s->t.host, sizeof s->t.host, "%s", host);
    s->t.items_per_s = items_per_s;
    s->t.at = clock_now_ms();
    s->at_mono = now;
}

/* 1 when an upstream asked job_id's requests to wait and the job sends requests: no
 * claim of it before the wait is over (noted for the monitor, and when to wake). */
static int job_held(struct limits *l, const char *tenant, const char *job_id,
                    const struct limits_use *u, int nu, int64_t now)
{
    struct job_block *jb = &l->jblocked[hash_str(job_id) % NTHROTTLE];
    if (strcmp(jb->job_id, job_id) != 0 || jb->until <= now)
        return 0;
    for (int i = 0; i < nu; i++)
        if (u[i].kind == LIMITS_REQUESTS) { /* its upstream asked to wait: no claim before */
            const struct limits_def *d[2];
            int scope[2] = {0, 0};
            char key[256] = "";
            if (defs_of(l, tenant, u[i].name, d, scope) > 0)
                limits_key_resolve(d[0]->key, tenant, u[i].workflow, u[i].step, jb->host, key,
                                   sizeof key);
            throttle_note(l, job_id, u[i].name, scope[0], key, "upstream", jb->host, 0, now);
            wake_note(l, jb->until);
            return 1;
        }
    return 0;
}

/* How many of want items use u may take now by the rate of d in b. In shared mode
 * asks the refiller for the slots missing; when held back, notes when to wake. */
static size_t rate_allow(struct limits *l, struct bucket *b, const struct limits_def *d,
                         const struct limits_use *u, size_t want, int64_t now)
{
    double t_ms = 1000.0 / d->rate, tau = (double)(d->burst - 1) * t_ms;
    int64_t horizon = now + (u->kind == LIMITS_ITEMS ? 0 : LIMITS_HORIZON_MS);
    int64_t admitted = u->kind == LIMITS_REQUESTS ? b->admitted : 0;
    int64_t slots;
    if (l->shared) {
        /* what this node holds of the shared schedule; ask for the rest */
        slots = stock_until(b, now, horizon) - admitted;
        if (slots < limits_use_tokens(u, (int64_t)want))
            stock_want(l, b, limits_use_tokens(u, (int64_t)want) - (slots > 0 ? slots : 0), t_ms,
                       tau);
    } else {
        slots = bucket_slots_until(b, t_ms, tau, now, horizon) - admitted;
    }
    int64_t items = slots > 0 ? limits_use_items(u, slots) : 0;
    if ((size_t)items >= want)
        return want;
    /* when this bucket has slots again (for requests: ones within the
     * horizon) - enough of them to be worth a claim, up to its burst -
     * so idle workers look again then, not at every single slot */
    int64_t worth = d->burst < WAKE_SLOTS ? d->burst : WAKE_SLOTS;
    double next = (b->tat > (double)b->blocked_until ? b->tat - tau : (double)b->blocked_until) +
                  (double)(worth - 1) * t_ms;
    int64_t at = (int64_t)next - (u->kind == LIMITS_REQUESTS ? LIMITS_HORIZON_MS : 0) + 1;
    wake_note(l, at <= now ? now + 1 : at);
    return (size_t)items;
}

/* How many of want items the concurrency cap of d lets into b now. In shared mode the
 * cap is this node's units of the cluster's; asks the refiller for more. */
static size_t concurrency_allow(struct limits *l, struct bucket *b, const struct limits_def *d,
                                size_t want)
{
    int64_t held = d->concurrency;
    if (l->shared) { /* this node's units of the cluster's cap */
        held = b->units;
        b->cap = d->concurrency;
        if (held - b->inflight < (int64_t)want) {
            b->unit_demand = (int64_t)want - (held - b->inflight);
            pthread_cond_signal(&l->refill_cv);
        }
    }
    int64_t room = held - b->inflight;
    if (room < 0)
        room = 0;
    return (size_t)room < want ? (size_t)room : want;
}

/* The admitted-request count of a learned host lives in a bucket of its own ("l/HOST",
 * no definition), so grants pin it and give it back like any other. */
static const struct limits_def learned_def = {.rate = 1};

/* How many of want items use u (unnamed: its step's fixed host) may take now by what
 * the host said of its limit: what its learned pace sends within LIMITS_HORIZON_MS,
 * less what earlier claims were admitted for it. Slow start does not hold claims (it
 * is a guess, not a limit). [out] rate (items/s) and src for the monitor. */
static size_t learned_allow(struct limits *l, struct learn_host *h, struct bucket *b,
                            const struct limits_use *u, size_t want, int64_t now, double *rate,
                            enum limits_source *src)
{
    double tau;
    double iv = learn_interval(h, now, 1, &tau, src);
    *rate = iv > 0 ? limits_use_rate(u, 1000.0 / iv) : 0;
    if (h->blocked_until > now) {
        *src = h->block_src;
        wake_note(l, h->blocked_until);
        return 0;
    }
    if (iv <= 0)
        return want;
    double first = h->tat - tau > (double)now ? h->tat - tau : (double)now;
    double horizon = (double)(now + LIMITS_HORIZON_MS);
    int64_t slots = first > horizon ? 0 : (int64_t)((horizon - first) / iv) + 1;
    slots -= b->admitted;
    int64_t items = slots > 0 ? limits_use_items(u, slots) : 0;
    if ((size_t)items >= want)
        return want;
    if (b->admitted == 0) /* else a finishing claim wakes the workers */
        wake_note(l, (int64_t)(first - LIMITS_HORIZON_MS + iv) > now
                         ? (int64_t)(first - LIMITS_HORIZON_MS + iv)
                         : now + 1);
    return (size_t)items;
}

/* A bucket a claim takes from, found in pass 1 of limits_admit, taken from in pass 2. */
struct plan {
    struct bucket *b;
    const struct limits_def *d;
    const struct limits_use *u; /* what one item takes of it */
    enum limits_kind kind;
};

/* Pass 2: takes grant items' worth from every planned bucket, recording it in g. */
static void plan_take(struct limits *l, const struct plan *plan, size_t np, size_t grant,
                      int64_t now, struct limits_grant *g)
{
    for (size_t i = 0; i < np && grant > 0; i++) {
        struct bucket *b = plan[i].b;
        const struct limits_def *d = plan[i].d;
        int64_t amount = limits_use_tokens(plan[i].u, (int64_t)grant); /* items: per 1 */
        if (d->rate > 0 && plan[i].kind == LIMITS_ITEMS) {
            double t_ms = 1000.0 / d->rate;
            double base = (double)(now > b->blocked_until ? now : b->blocked_until);
            if (l->shared && (size_t)amount <= b->nstock)
                stock_take(b, (size_t)amount); /* leased slots, due now (pass 1) */
            else
                b->tat = (b->tat > base ? b->tat : base) + (double)amount * t_ms;
            grant_push(g, b, LIMITS_ITEMS, amount, t_ms);
        } else if (d->rate > 0) {
            b->admitted += amount;
            grant_push(g, b, LIMITS_REQUESTS, amount, 0);
        }
        if (d->concurrency > 0) {
            b->inflight += (int64_t)grant;
            grant_push(g, b, LIMITS_CONCURRENCY, (int64_t)grant, 0);
        }
    }
}

size_t limits_admit(struct limits *l, const char *tenant, const char *job_id, const char *uses,
                    size_t want, struct limits_grant *g)
{
    struct limits_use u[LIMITS_MAX_USES];
    memset(g, 0, sizeof *g);
    snprintf(g->job_id, sizeof g->job_id, "%s", job_id);
    int nu = limits_uses_decode(uses, u, LIMITS_MAX_USES);
    if (nu <= 0) {
        g->n = want;
        return want;
    }
    int64_t now = clock_mono_ms();
    size_t grant = want;
    char key[256];
    /* Held back: the tightest use, for the monitor. */
    const char *why_name = NULL, *why_reason = NULL, *why_host = "";
    int why_scope = 0;
    char why_key[256] = "";
    double why_rate = 0;
    enum limits_source why_src = LIMITS_SRC_NONE;

    pthread_mutex_lock(&l->mu);
    if (job_held(l, tenant, job_id, u, nu, now)) {
        pthread_mutex_unlock(&l->mu);
        g->n = 0;
        return 0;
    }
    /* Pass 1: how many every bucket allows. */
    struct plan plan[2 * LIMITS_MAX_USES];
    size_t np = 0;
    for (int i = 0; i < nu; i++) {
        const struct limits_def *d[2];
        int scope[2];
        struct learn_host *h;
        if (!u[i].name[0] && u[i].kind == LIMITS_REQUESTS && u[i].host[0] &&
            (h = learn_find(l, u[i].host, now))) {
            char id[300];
            snprintf(id, sizeof id, "l/%s", u[i].host);
            struct bucket *b = bucket_get(l, id, now);
            double rate;
            enum limits_source src;
            size_t n = learned_allow(l, h, b, &u[i], want, now, &rate, &src);
            if (n < grant) {
                grant = n;
                why_name = "";
                why_reason = "learned";
                why_scope = 0;
                snprintf(why_key, sizeof why_key, "%s", u[i].host);
                why_host = u[i].host;
                why_rate = rate;
                why_src = src;
            }
            if (np < sizeof plan / sizeof plan[0] && src != LIMITS_SRC_NONE)
                plan[np++] = (struct plan){b, &learned_def, &u[i], LIMITS_REQUESTS};
            continue;
        }
        size_t nd = defs_of(l, tenant, u[i].name, d, scope);
        for (size_t k = 0; k < nd; k++) {
            struct bucket *b = bucket_of(l, scope[k], d[k], tenant, u[i].name, u[i].workflow,
                                         u[i].step, u[i].host, now, key, sizeof key);
            size_t allow = want, n;
            const char *reason = NULL;
            /* (a request limit keyed by a host the template decides per item is
             * paced at send time only: the bucket is not known here) */
            if (d[k]->rate > 0 &&
                !(u[i].kind == LIMITS_REQUESTS && !u[i].host[0] && strstr(d[k]->key, "{host}")) &&
                (n = rate_allow(l, b, d[k], &u[i], want, now)) < allow) {
                allow = n;
                reason = b->blocked_until > now ? "upstream" : "rate";
            }
            if (d[k]->rate > 0 && u[i].kind == LIMITS_REQUESTS && u[i].host[0]) {
                /* the step's upstream asked to wait (a bucket other hosts share) */
                int64_t until = bucket_host_blocked(b, u[i].host, now);
                if (until > now && allow > 0) {
                    allow = 0;
                    reason = "upstream";
                    wake_note(l, until);
                }
            }
            if (d[k]->concurrency > 0 && (n = concurrency_allow(l, b, d[k], want)) < allow) {
                allow = n;
                reason = "concurrency";
            }
            if (allow < grant || (reason && !why_name)) {
                grant = allow < grant ? allow : grant;
                why_name = u[i].name;
                why_reason = reason;
                why_scope = scope[k];
                snprintf(why_key, sizeof why_key, "%s", key);
                why_host = reason && !strcmp(reason, "upstream") ? u[i].host : "";
                why_rate = d[k]->rate > 0 ? limits_use_rate(&u[i], d[k]->rate) : 0;
            }
            if (np < sizeof plan / sizeof plan[0])
                plan[np++] = (struct plan){b, d[k], &u[i], u[i].kind};
        }
    }
    plan_take(l, plan, np, grant, now, g);
    /* nothing granted: noted whatever held it; cut short: noted when a reason is known */
    if (why_name && (grant == 0 || (grant < want && why_reason))) {
        throttle_note(l, job_id, why_name, why_scope, why_key, why_reason ? why_reason : "rate",
                      why_host, why_rate, now);
        if (why_reason && !strcmp(why_reason, "learned")) {
            struct throttle_slot *s = &l->throttled[hash_str(job_id) % NTHROTTLE];
            snprintf(s->t.source, sizeof s->t.source, "%s", limits_source_name(why_src));
        }
    }
    pthread_mutex_unlock(&l->mu);
    g->n = grant;
    return grant;
}

static int grant_return(struct limits *l, struct limits_grant *g, int tokens_too)
{
    int freed = 0;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < g->nb; i++) {
        struct bucket *b = g->b[i].bucket;
        switch (g->b[i].kind) {
        case LIMITS_ITEMS:
            if (tokens_too && l->shared) /* the leased slots go back to the stock */
                for (int64_t k = 0; k < g->b[i].amount; k++)
                    stock_add(b, clock_mono_ms());
            else if (tokens_too) /* the slots move earlier again */
                b->tat -= (double)g->b[i].amount * g->b[i].t_ms;
            break;
        case LIMITS_REQUESTS:
            b->admitted -= g->b[i].amount;
            freed = 1;
            break;
        case LIMITS_CONCURRENCY:
            b->inflight -= g->b[i].amount;
            freed = 1;
            break;
        }
        b->pins--;
    }
    g->nb = 0;
    g->n = 0;
    pthread_mutex_unlock(&l->mu);
    return freed;
}

void limits_undo(struct limits *l, struct limits_grant *g)
{
    grant_return(l, g, 1);
}

int limits_finish(struct limits *l, struct limits_grant *g)
{
    return grant_return(l, g, 0);
}

int64_t limits_wake_in(struct limits *l, int64_t now_mono)
{
    int64_t in = -1;
    pthread_mutex_lock(&l->mu);
    if (l->wake_at) {
        in = l->wake_at > now_mono ? l->wake_at - now_mono : 0;
        if (in == 0)
            l->wake_at = 0;
    }
    pthread_mutex_unlock(&l->mu);
    return in;
}

/* ---- the monitor --------------------------------------------------------------------- */

int limits_job_throttle(struct limits *l, const char *job_id, struct limits_throttle *t)
{
    int found = 0;
    if (!l)
        return 0;
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&l->mu);
    struct throttle_slot *s = &l->throttled[hash_str(job_id) % NTHROTTLE];
    if (strcmp(s->job_id, job_id) == 0 && now - s->at_mono <= THROTTLE_SHOWN_MS) {
        *t = s->t;
        found = 1;
    }
    pthread_mutex_unlock(&l->mu);
    return found;
}
