/* limits.c - named processing limits: definitions, buckets, admission and pacing.
 * See limits.h for the design. */
#include "engine/limits.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/wfdef.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/xmalloc.h"

#define NHASH 1024          /* bucket hash chains */
#define SWEEP_AT 4096       /* buckets before idle ones are dropped */
#define NTHROTTLE 512       /* jobs remembered as throttled (a cache: collisions evict) */
#define THROTTLE_SHOWN_MS 2000
#define WAKE_SLOTS 100      /* slots a rate should have before idle workers look again */

/* ---- definitions ----------------------------------------------------------------- */

static int fail(char *err, size_t errlen, char *target, size_t targetlen, const char *member,
                const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    snprintf(target, targetlen, "%s", member);
    return -SLUICE_E_INVALID_FIELD;
}

/* The key template: only the four placeholders; a bare word stands for one. */
static int key_parse(const char *in, char *out, size_t outlen)
{
    static const char *const words[] = {"tenant", "workflow", "step", "host"};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(in, words[i]) == 0) {
            snprintf(out, outlen, "{%s}", words[i]);
            return 0;
        }
    if (strlen(in) >= outlen)
        return -1;
    for (const char *p = in; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == '\t')
            return -1;
        if (*p == '}')
            return -1;
        if (*p != '{')
            continue;
        const char *end = strchr(p, '}');
        if (!end)
            return -1;
        size_t n = (size_t)(end - p - 1);
        int known = 0;
        for (size_t i = 0; i < 4; i++)
            known |= strlen(words[i]) == n && strncmp(p + 1, words[i], n) == 0;
        if (!known)
            return -1;
        p = end;
    }
    snprintf(out, outlen, "%s", in);
    return 0;
}

int limits_def_parse(const json_t *j, struct limit_def *d, char *err, size_t errlen, char *target,
                     size_t targetlen)
{
    const char *k;
    json_t *v;
    memset(d, 0, sizeof *d);
    d->per_s = 1;
    if (!json_is_object(j))
        return fail(err, errlen, target, targetlen, "", "a limit is a JSON object");
    json_object_foreach((json_t *)j, k, v) {
        if (strcmp(k, "key") && strcmp(k, "rate") && strcmp(k, "per") && strcmp(k, "burst") &&
            strcmp(k, "concurrency") && strcmp(k, "name") && strcmp(k, "scope") &&
            strcmp(k, "createdAt") && strcmp(k, "updatedAt"))
            return fail(err, errlen, target, targetlen, k,
                        "unknown member; a limit has key, rate, per, burst and concurrency");
    }
    v = json_object_get(j, "key");
    if (v) {
        if (!json_is_string(v) || key_parse(json_string_value(v), d->key, sizeof d->key) < 0)
            return fail(err, errlen, target, targetlen, "key",
                        "key must be a string of at most 255 characters using only the "
                        "placeholders {tenant}, {workflow}, {step} and {host}");
    }
    v = json_object_get(j, "per");
    if (v) {
        const char *p = json_is_string(v) ? json_string_value(v) : "";
        if (!strcmp(p, "second"))
            d->per_s = 1;
        else if (!strcmp(p, "minute"))
            d->per_s = 60;
        else if (!strcmp(p, "hour"))
            d->per_s = 3600;
        else
            return fail(err, errlen, target, targetlen, "per",
                        "per must be \"second\", \"minute\" or \"hour\"");
    }
    v = json_object_get(j, "rate");
    if (v) {
        if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) > 1e6)
            return fail(err, errlen, target, targetlen, "rate",
                        "rate must be a number above 0 and at most 1000000");
        d->rate_in_per = json_number_value(v);
        d->rate = d->rate_in_per / d->per_s;
    } else if (json_object_get(j, "per")) {
        return fail(err, errlen, target, targetlen, "per", "per needs a rate");
    }
    v = json_object_get(j, "burst");
    if (v) {
        if (!d->rate)
            return fail(err, errlen, target, targetlen, "burst", "burst needs a rate");
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
            return fail(err, errlen, target, targetlen, "burst",
                        "burst must be an integer from 1 to 1000000");
        d->burst = json_integer_value(v);
    } else if (d->rate) {
        d->burst = d->rate >= 1 ? (int64_t)floor(d->rate) : 1; /* one second's worth */
    }
    v = json_object_get(j, "concurrency");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
            return fail(err, errlen, target, targetlen, "concurrency",
                        "concurrency must be an integer from 1 to 1000000");
        d->concurrency = json_integer_value(v);
    }
    if (!d->rate && !d->concurrency)
        return fail(err, errlen, target, targetlen, "rate",
                    "a limit needs a rate, a concurrency, or both");
    return 0;
}

json_t *limits_def_json(const struct limit_def *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "key", json_string(d->key));
    if (d->rate > 0) {
        json_object_set_new(o, "rate", json_real(d->rate_in_per));
        json_object_set_new(o, "per", json_string(d->per_s >= 3600 ? "hour"
                                                  : d->per_s >= 60 ? "minute"
                                                                   : "second"));
        json_object_set_new(o, "burst", json_integer(d->burst));
    }
    if (d->concurrency > 0)
        json_object_set_new(o, "concurrency", json_integer(d->concurrency));
    return o;
}

/* ---- the limiter's state ------------------------------------------------------------ */

struct bucket {
    struct bucket *next; /* hash chain */
    char *id;            /* "s/NAME|KEY" or "t/TENANT/NAME|KEY" */
    double tat;          /* GCRA theoretical arrival time, monotonic ms */
    int64_t blocked_until; /* monotonic ms: no slot before (upstream Retry-After); only
                            * buckets whose key names {host}: one upstream each */
    /* Back-offs of the upstreams that said so, for buckets several hosts share
     * (monotonic ms; expired ones are dropped when looked at). Per node. */
    struct host_block *blocks;
    size_t nblocks;
    int64_t admitted;    /* requests admitted by claims not finished yet */
    int64_t inflight;    /* items holding the concurrency cap */
    int pins;            /* grants pointing here: not dropped while > 0 */
    uint64_t epoch;      /* +1 per back-off: slots taken before it are void */
    /* Shared mode (limiter_share): the slots this node leased from the store's bucket,
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
#define MAX_HOST_BLOCKS 64 /* per bucket; past it the earliest to end is replaced */

struct tdef { /* a tenant's limit */
    struct tdef *next;
    char tenant[STORE_NAME_MAX];
    char name[LIMITS_NAME_MAX];
    struct limit_def d;
};

struct sdef { /* a server limit */
    char name[LIMITS_NAME_MAX];
    struct limit_def d;
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

struct limiter {
    pthread_mutex_t mu;
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
    int64_t wake_at; /* monotonic ms: a rate that held work back frees a slot; 0: none */
    int64_t max_backoff_ms; /* cap of an upstream's back-off (limiter_set_max_backoff) */
    uint64_t tgen;   /* +1 per limiter_set_tenant: a reload read before it is stale */
    /* Shared mode: rate buckets live in the store; a thread leases their slots. */
    struct store *shared;
    pthread_t refiller;
    pthread_cond_t refill_cv;
    int refill_stop, refill_started;
};

struct limiter *limiter_new(void)
{
    struct limiter *l = xcalloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->refill_cv, NULL);
    l->max_backoff_ms = LIMITS_MAX_BACKOFF_MS;
    return l;
}

static void tdefs_free(struct tdef *t)
{
    while (t) {
        struct tdef *n = t->next;
        free(t);
        t = n;
    }
}

void limiter_free(struct limiter *l)
{
    if (!l)
        return;
    if (l->refill_started) {
        pthread_mutex_lock(&l->mu);
        l->refill_stop = 1;
        pthread_cond_signal(&l->refill_cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->refiller, NULL);
    }
    pthread_cond_destroy(&l->refill_cv);
    for (size_t i = 0; i < NHASH; i++)
        for (struct bucket *b = l->hash[i], *n; b; b = n) {
            n = b->next;
            free(b->id);
            free(b->stock);
            free(b->blocks);
            free(b);
        }
    free(l->server);
    tdefs_free(l->tenants);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

int limiter_set_server(struct limiter *l, const json_t *defs, char *err, size_t errlen,
                       char *target, size_t targetlen)
{
    const char *name;
    json_t *v;
    if (!json_is_object(defs))
        return fail(err, errlen, target, targetlen, "", "limits must be a JSON object name -> limit");
    struct sdef *s = xcalloc(json_object_size(defs) + 1, sizeof *s);
    size_t n = 0;
    json_object_foreach((json_t *)defs, name, v) {
        char sub[LIMITS_NAME_MAX + 64];
        if (!limits_name_valid(name)) {
            free(s);
            return fail(err, errlen, target, targetlen, name,
                        "a limit name is 1 to 64 characters of A-Z a-z 0-9 _ - .");
        }
        int rc = limits_def_parse(v, &s[n].d, err, errlen, sub, sizeof sub);
        if (rc < 0) {
            snprintf(target, targetlen, "%s%s%s", name, sub[0] ? "." : "", sub);
            free(s);
            return rc;
        }
        snprintf(s[n++].name, LIMITS_NAME_MAX, "%s", name);
    }
    pthread_mutex_lock(&l->mu);
    free(l->server);
    l->server = s;
    l->nserver = n;
    pthread_mutex_unlock(&l->mu);
    return 0;
}

static struct tdef **tdef_find(struct limiter *l, const char *tenant, const char *name)
{
    struct tdef **p = &l->tenants;
    while (*p && (strcmp((*p)->tenant, tenant) || strcmp((*p)->name, name)))
        p = &(*p)->next;
    return p;
}

void limiter_set_tenant(struct limiter *l, const char *tenant, const char *name,
                        const struct limit_def *def)
{
    pthread_mutex_lock(&l->mu);
    l->tgen++;
    struct tdef **p = tdef_find(l, tenant, name);
    if (!def) {
        if (*p) {
            struct tdef *t = *p;
            *p = t->next;
            free(t);
        }
    } else {
        if (!*p) {
            *p = xcalloc(1, sizeof **p);
            snprintf((*p)->tenant, sizeof (*p)->tenant, "%s", tenant);
            snprintf((*p)->name, sizeof (*p)->name, "%s", name);
        }
        (*p)->d = *def;
    }
    pthread_mutex_unlock(&l->mu);
}

int limiter_reload(struct limiter *l, struct store *st)
{
    struct store_def *ls = NULL;
    size_t n = 0;
    pthread_mutex_lock(&l->mu);
    uint64_t gen = l->tgen;
    pthread_mutex_unlock(&l->mu);
    int rc = store_def_list(st, STORE_DEF_LIMIT, NULL, NULL, 1000000, &ls, &n);
    if (rc < 0)
        return rc;
    struct tdef *head = NULL, **tail = &head;
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        char err[200], target[80];
        json_t *j = json_loads(ls[i].text, 0, &je);
        struct tdef t = {0};
        if (j && limits_name_valid(ls[i].name) &&
            limits_def_parse(j, &t.d, err, sizeof err, target, sizeof target) == 0) {
            *tail = xmalloc(sizeof **tail);
            **tail = t;
            snprintf((*tail)->tenant, sizeof (*tail)->tenant, "%s", ls[i].tenant);
            memcpy((*tail)->name, ls[i].name, strlen(ls[i].name) + 1); /* valid: short */
            (*tail)->next = NULL;
            tail = &(*tail)->next;
        }
        json_decref(j);
    }
    store_defs_free(ls, n);
    pthread_mutex_lock(&l->mu);
    struct tdef *old = head;
    if (l->tgen == gen) { /* else a change made here while we read wins; next time */
        old = l->tenants;
        l->tenants = head;
    }
    pthread_mutex_unlock(&l->mu);
    tdefs_free(old);
    return 0;
}

int limiter_server_def(struct limiter *l, const char *name, struct limit_def *d)
{
    int found = 0;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->nserver && !found; i++)
        if (strcmp(l->server[i].name, name) == 0) {
            *d = l->server[i].d;
            found = 1;
        }
    pthread_mutex_unlock(&l->mu);
    return found;
}

void limiter_server_names(struct limiter *l, char (**names)[LIMITS_NAME_MAX], size_t *n)
{
    pthread_mutex_lock(&l->mu);
    *n = l->nserver;
    *names = xcalloc(l->nserver + 1, LIMITS_NAME_MAX);
    for (size_t i = 0; i < l->nserver; i++)
        memcpy((*names)[i], l->server[i].name, LIMITS_NAME_MAX);
    pthread_mutex_unlock(&l->mu);
}

/* ---- uses ------------------------------------------------------------------------ */

void limits_uses_encode(const struct limit_use *u, size_t n, struct buf *b)
{
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "%s%c\t%s\t%s\t%s\t%s\t%d", i ? "\n" : "", u[i].kind, u[i].name,
                   u[i].workflow, u[i].step, u[i].host, u[i].count);
}

void limits_uses_of(const struct wfdef *w, struct buf *b)
{
    struct limit_use u[LIMITS_MAX_USES];
    size_t n = 0;
    for (size_t i = 0; i < w->nlimits && n < LIMITS_MAX_USES; i++, n++) {
        memset(&u[n], 0, sizeof u[n]);
        u[n].kind = 'i';
        u[n].count = 1;
        snprintf(u[n].name, sizeof u[n].name, "%s", w->limits[i]);
        snprintf(u[n].workflow, sizeof u[n].workflow, "%s", w->name);
    }
    for (size_t k = 0; k < w->nsteps; k++) {
        const struct step_def *s = &w->steps[k];
        for (size_t i = 0; i < s->nlimits && n < LIMITS_MAX_USES; i++, n++) {
            memset(&u[n], 0, sizeof u[n]);
            u[n].kind = s->type == STEP_HTTP ? 'r' : 'i';
            u[n].count = 1;
            snprintf(u[n].name, sizeof u[n].name, "%s", s->limits[i]);
            snprintf(u[n].workflow, sizeof u[n].workflow, "%s", w->name);
            snprintf(u[n].step, sizeof u[n].step, "%s", s->name);
            snprintf(u[n].host, sizeof u[n].host, "%s", s->host);
        }
    }
    limits_uses_encode(u, n, b);
}

/* Copies the field at *p up to the next tab/newline/end into out; 0 or -1. */
static int field(const char **p, char *out, size_t outlen)
{
    size_t n = strcspn(*p, "\t\n");
    if (n >= outlen)
        return -1;
    memcpy(out, *p, n);
    out[n] = 0;
    *p += n;
    return 0;
}

int limits_uses_decode(const char *text, struct limit_use *u, size_t max)
{
    size_t n = 0;
    const char *p = text ? text : "";
    while (*p && n < max) {
        struct limit_use *x = &u[n];
        char count[16];
        memset(x, 0, sizeof *x);
        x->kind = *p++;
        if ((x->kind != 'i' && x->kind != 'r') || *p++ != '\t')
            return -1;
        if (field(&p, x->name, sizeof x->name) || *p++ != '\t' ||
            field(&p, x->workflow, sizeof x->workflow) || *p++ != '\t' ||
            field(&p, x->step, sizeof x->step) || *p++ != '\t' ||
            field(&p, x->host, sizeof x->host) || *p++ != '\t' ||
            field(&p, count, sizeof count))
            return -1;
        x->count = atoi(count);
        if (x->count < 1)
            return -1;
        n++;
        if (*p == '\n')
            p++;
        else if (*p)
            return -1;
    }
    return (int)n;
}

/* ---- buckets -------------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* A bucket whose state equals a fresh one's (full, unblocked, nothing held) carries
 * no information: dropping it changes nothing. */
static int bucket_idle(const struct bucket *b, int64_t now)
{
    for (size_t i = 0; i < b->nblocks; i++)
        if (b->blocks[i].until > now)
            return 0;
    return b->pins == 0 && b->admitted == 0 && b->inflight == 0 && b->tat <= (double)now &&
           b->blocked_until <= now && b->nstock == 0 && b->demand == 0 && b->block_wall == 0 &&
           b->units == 0 && b->unit_demand == 0;
}

static void sweep(struct limiter *l, int64_t now)
{
    for (size_t i = 0; i < NHASH; i++)
        for (struct bucket **p = &l->hash[i]; *p;) {
            struct bucket *b = *p;
            if (bucket_idle(b, now)) {
                *p = b->next;
                free(b->id);
                free(b->stock);
                free(b->blocks);
                free(b);
                l->nbuckets--;
            } else {
                p = &b->next;
            }
        }
}

/* Under mu. */
static struct bucket *bucket_get(struct limiter *l, const char *id, int64_t now)
{
    uint64_t h = hash_str(id) % NHASH;
    for (struct bucket *b = l->hash[h]; b; b = b->next)
        if (strcmp(b->id, id) == 0)
            return b;
    if (l->nbuckets >= SWEEP_AT)
        sweep(l, now);
    struct bucket *b = xcalloc(1, sizeof *b);
    b->id = xstrdup(id);
    b->next = l->hash[h];
    l->hash[h] = b;
    l->nbuckets++;
    return b;
}

/* Expands the key template of d for one use into out. */
static void key_resolve(const char *tmpl, const char *tenant, const char *workflow,
                        const char *step, const char *host, char *out, size_t outlen)
{
    struct buf b = BUF_INIT;
    for (const char *p = tmpl; *p;) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            size_t n = end ? (size_t)(end - p - 1) : 0;
            const char *v = NULL;
            if (n == 6 && !strncmp(p + 1, "tenant", 6))
                v = tenant;
            else if (n == 8 && !strncmp(p + 1, "workflow", 8))
                v = workflow;
            else if (n == 4 && !strncmp(p + 1, "step", 4))
                v = step;
            else if (n == 4 && !strncmp(p + 1, "host", 4))
                v = host;
            if (end && v) {
                buf_puts(&b, v);
                p = end + 1;
                continue;
            }
        }
        buf_putc(&b, *p++);
    }
    snprintf(out, outlen, "%s", buf_cstr(&b));
    buf_release(&b);
}

/* The definitions a use names (server's, then tenant's), at most 2. Under mu. */
static size_t defs_of(struct limiter *l, const char *tenant, const char *name,
                      const struct limit_def *out[2], int scope[2])
{
    size_t n = 0;
    for (size_t i = 0; i < l->nserver; i++)
        if (strcmp(l->server[i].name, name) == 0) {
            scope[n] = 0;
            out[n++] = &l->server[i].d;
            break;
        }
    struct tdef *t = *tdef_find(l, tenant, name);
    if (t) {
        scope[n] = 1;
        out[n++] = &t->d;
    }
    return n;
}

static void bucket_id(struct buf *b, int scope, const char *tenant, const char *name,
                      const char *key)
{
    buf_reset(b);
    if (scope == 0)
        buf_printf(b, "s/%s|%s", name, key);
    else
        buf_printf(b, "t/%s/%s|%s", tenant, name, key);
}

/* ---- shared mode: slots leased from the store ---------------------------------------- */

#define LEASE_MS 250   /* a lease covers at most this much of the bucket's rate */
#define STALE_MS 20    /* a leased slot unused this long after its time is dropped: used
                          late it could bunch with other nodes' slots */

/* Drops leased slots too old to use. Under mu. */
static void stock_trim(struct bucket *b, int64_t now)
{
    size_t k = 0;
    int64_t late = b->t_ms > STALE_MS ? (int64_t)b->t_ms : STALE_MS;
    while (k < b->nstock && b->stock[k] < now - late)
        k++;
    if (k) {
        memmove(b->stock, b->stock + k, (b->nstock - k) * sizeof *b->stock);
        b->nstock -= k;
    }
}

/* Leased slots at or before until. Under mu. */
static int64_t stock_until(struct bucket *b, int64_t now, int64_t until)
{
    stock_trim(b, now);
    int64_t n = 0;
    while ((size_t)n < b->nstock && b->stock[n] <= until && b->stock[n] >= b->blocked_until)
        n++;
    return n;
}

/* Until when host's back-off holds in b (monotonic ms; 0: none). Under mu. */
static int64_t host_blocked(struct bucket *b, const char *host, int64_t now)
{
    int64_t until = 0;
    for (size_t i = 0; i < b->nblocks;) {
        if (b->blocks[i].until <= now) { /* over: drop it */
            b->blocks[i] = b->blocks[--b->nblocks];
            continue;
        }
        if (host && strcmp(b->blocks[i].host, host) == 0)
            until = b->blocks[i].until;
        i++;
    }
    return until;
}

/* Records that host asked b's users to wait until `until`. Under mu. */
static void host_block(struct bucket *b, const char *host, int64_t until)
{
    size_t at = b->nblocks;
    for (size_t i = 0; i < b->nblocks; i++)
        if (strcmp(b->blocks[i].host, host) == 0)
            at = i;
    if (at == b->nblocks) {
        if (b->nblocks == MAX_HOST_BLOCKS) {
            at = 0; /* full: the one that ends first goes */
            for (size_t i = 1; i < b->nblocks; i++)
                if (b->blocks[i].until < b->blocks[at].until)
                    at = i;
        } else {
            if (!b->blocks)
                b->blocks = xcalloc(MAX_HOST_BLOCKS, sizeof *b->blocks);
            b->nblocks++;
        }
        snprintf(b->blocks[at].host, sizeof b->blocks[at].host, "%s", host);
        b->blocks[at].until = 0;
    }
    if (until > b->blocks[at].until)
        b->blocks[at].until = until;
}

/* Asks the refiller for n more slots of b (rate parameters t_ms, tau). Under mu. */
static void want_slots(struct limiter *l, struct bucket *b, int64_t n, double t_ms, double tau)
{
    b->t_ms = t_ms;
    b->tau = tau;
    if (n > b->demand)
        b->demand = n;
    pthread_cond_signal(&l->refill_cv);
}

/* Takes the first n leased slots of b; returns the last one's time. Under mu. */
static int64_t stock_take(struct bucket *b, size_t n)
{
    int64_t last = b->stock[n - 1];
    memmove(b->stock, b->stock + n, (b->nstock - n) * sizeof *b->stock);
    b->nstock -= n;
    return last;
}

static void stock_add(struct bucket *b, int64_t at)
{
    if (b->nstock == b->capstock) {
        b->capstock = b->capstock ? b->capstock * 2 : 16;
        b->stock = xrealloc(b->stock, b->capstock * sizeof *b->stock);
    }
    size_t i = b->nstock++;
    while (i > 0 && b->stock[i - 1] > at) { /* keep them in order */
        b->stock[i] = b->stock[i - 1];
        i--;
    }
    b->stock[i] = at;
}

#define UNITS_IDLE_MS 500 /* concurrency units unused this long go back to the store */

struct refill_job {
    char *id;
    double t_ms, tau;
    int64_t n, block_wall;
    int64_t cap, units; /* units: > 0 to take, < 0 to give back */
};

/* The refiller: leases what the buckets want from the store, tells it of back-offs,
 * outside the mutex (store calls never run under it). */
static void *refill_main(void *arg)
{
    struct limiter *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->refill_stop) {
        struct refill_job *jobs = NULL;
        size_t nj = 0, cap = 0;
        for (size_t i = 0; i < NHASH; i++)
            for (struct bucket *b = l->hash[i]; b; b = b->next) {
                int64_t mono = clock_mono_ms(), units = 0;
                if (b->unit_demand > 0) {
                    units = b->unit_demand;
                    b->unit_demand = 0;
                } else if (b->units > b->inflight) {
                    /* units held but unused for a while go back for other nodes */
                    if (!b->idle_since)
                        b->idle_since = mono;
                    else if (mono - b->idle_since > UNITS_IDLE_MS) {
                        units = b->inflight - b->units;
                        b->units = b->inflight; /* not to be granted meanwhile */
                        b->idle_since = 0;
                    }
                } else {
                    b->idle_since = 0;
                }
                if (b->demand <= 0 && !b->block_wall && !units)
                    continue;
                if (nj == cap) {
                    cap = cap ? cap * 2 : 8;
                    jobs = xrealloc(jobs, cap * sizeof *jobs);
                }
                int64_t most = b->t_ms > 0 ? (int64_t)(LEASE_MS / b->t_ms) + 1 +
                                                 (int64_t)(b->tau / b->t_ms)
                                           : 0;
                jobs[nj++] = (struct refill_job){xstrdup(b->id), b->t_ms, b->tau,
                                                 b->demand < most ? b->demand : most,
                                                 b->block_wall, b->cap, units};
                b->demand = 0;
                b->block_wall = 0;
            }
        pthread_mutex_unlock(&l->mu);
        for (size_t i = 0; i < nj; i++) {
            struct refill_job *j = &jobs[i];
            struct store_bucket_lease lease = {0};
            int rc = 0;
            if (j->block_wall)
                rc = store_bucket_block(l->shared, j->id, j->block_wall);
            if (rc >= 0 && j->n > 0)
                rc = store_bucket_take(l->shared, j->id, j->t_ms, j->tau, j->n, &lease);
            int64_t held = -1;
            if (j->units) {
                char sem[600];
                snprintf(sem, sizeof sem, "%s#c", j->id);
                if (store_sem_adjust(l->shared, sem, j->cap, j->units, &held) < 0)
                    held = -1;
            }
            int64_t mono = clock_mono_ms();
            pthread_mutex_lock(&l->mu);
            struct bucket *b = bucket_get(l, j->id, mono);
            if (j->units > 0 && held >= 0)
                b->units = held;
            else if (j->units < 0 && held < 0)
                b->units -= j->units; /* not given back: still ours */
            else if (j->units < 0)
                b->units = held > b->inflight ? held : b->inflight;
            if (rc < 0) {
                b->demand = j->n > b->demand ? j->n : b->demand; /* again, later */
            } else if (j->n > 0) {
                if (lease.epoch != b->store_epoch) { /* someone was told to wait */
                    b->nstock = 0;
                    b->store_epoch = lease.epoch;
                }
                for (int64_t k = 0; k < j->n; k++) {
                    double at = lease.tat0 + (double)k * j->t_ms - j->tau;
                    if (at < (double)lease.now)
                        at = (double)lease.now;
                    stock_add(b, mono + (int64_t)ceil(at - (double)lease.now));
                }
                /* the local view of the shared schedule, for admission estimates */
                double tat = (double)mono + (lease.tat0 - (double)lease.now) +
                             (double)j->n * j->t_ms;
                if (tat > b->tat)
                    b->tat = tat;
            }
            pthread_mutex_unlock(&l->mu);
            free(j->id);
        }
        free(jobs);
        pthread_mutex_lock(&l->mu);
        if (!l->refill_stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&l->refill_cv, &l->mu, &ts);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int limiter_share(struct limiter *l, struct store *st)
{
    l->shared = st;
    if (pthread_create(&l->refiller, NULL, refill_main, l) != 0) {
        l->shared = NULL;
        return -SLUICE_E_INTERNAL;
    }
    l->refill_started = 1;
    return 0;
}

/* GCRA slots of b (emission interval t_ms, tolerance tau_ms) at or before `until`,
 * counting from now. */
static int64_t slots_until(const struct bucket *b, double t_ms, double tau_ms, int64_t now,
                           int64_t until)
{
    double base = (double)(now > b->blocked_until ? now : b->blocked_until);
    if ((double)until < base)
        return 0;
    double tat = b->tat > base ? b->tat : base;
    double k = floor(((double)until + tau_ms - tat) / t_ms) + 1;
    return k > 0 ? (int64_t)k : 0;
}

/* ---- admission ------------------------------------------------------------------- */

static void throttle_note(struct limiter *l, const char *job_id, const char *name, int scope,
                          const char *key, const char *reason, const char *host, double items_per_s,
                          int64_t now)
{
    struct throttle_slot *s = &l->throttled[hash_str(job_id) % NTHROTTLE];
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

size_t limits_admit(struct limiter *l, const char *tenant, const char *job_id, const char *uses,
                    size_t want, struct limits_grant *g)
{
    struct limit_use u[LIMITS_MAX_USES];
    memset(g, 0, sizeof *g);
    snprintf(g->job_id, sizeof g->job_id, "%s", job_id);
    int nu = limits_uses_decode(uses, u, LIMITS_MAX_USES);
    if (nu <= 0) {
        g->n = want;
        return want;
    }
    int64_t now = clock_mono_ms();
    size_t grant = want;
    struct buf id = BUF_INIT;
    char key[256];
    /* Held back: the tightest use, for the monitor. */
    const char *why_name = NULL, *why_reason = NULL, *why_host = "";
    int why_scope = 0;
    char why_key[256] = "";
    double why_rate = 0;

    pthread_mutex_lock(&l->mu);
    struct job_block *jb = &l->jblocked[hash_str(job_id) % NTHROTTLE];
    if (strcmp(jb->job_id, job_id) == 0 && jb->until > now) {
        for (int i = 0; i < nu; i++)
            if (u[i].kind == 'r') { /* its upstream asked to wait: no claim before */
                const struct limit_def *d[2];
                int scope[2] = {0, 0};
                key[0] = '\0';
                if (defs_of(l, tenant, u[i].name, d, scope) > 0)
                    key_resolve(d[0]->key, tenant, u[i].workflow, u[i].step, jb->host, key,
                                sizeof key);
                throttle_note(l, job_id, u[i].name, scope[0], key, "upstream", jb->host, 0, now);
                if (!l->wake_at || jb->until < l->wake_at)
                    l->wake_at = jb->until;
                pthread_mutex_unlock(&l->mu);
                g->n = 0;
                return 0;
            }
    }
    /* Pass 1: how many every bucket allows. */
    struct plan {
        struct bucket *b;
        const struct limit_def *d;
        int count;
        char kind;
    } plan[2 * LIMITS_MAX_USES];
    size_t np = 0;
    for (int i = 0; i < nu; i++) {
        const struct limit_def *d[2];
        int scope[2];
        size_t nd = defs_of(l, tenant, u[i].name, d, scope);
        for (size_t k = 0; k < nd; k++) {
            key_resolve(d[k]->key, tenant, u[i].workflow, u[i].step, u[i].host, key, sizeof key);
            bucket_id(&id, scope[k], tenant, u[i].name, key);
            struct bucket *b = bucket_get(l, buf_cstr(&id), now);
            size_t allow = want;
            const char *reason = NULL;
            if (d[k]->rate > 0 && !(u[i].kind == 'r' && !u[i].host[0] && strstr(d[k]->key, "{host}"))) {
                /* (a request limit keyed by a host the template decides per item is
                 * paced at send time only: the bucket is not known here) */
                double t_ms = 1000.0 / d[k]->rate, tau = (double)(d[k]->burst - 1) * t_ms;
                int64_t horizon = now + (u[i].kind == 'i' ? 0 : LIMITS_HORIZON_MS);
                int64_t slots;
                if (l->shared) {
                    /* what this node holds of the shared schedule; ask for the rest */
                    slots = stock_until(b, now, horizon) - (u[i].kind == 'r' ? b->admitted : 0);
                    if (slots < (int64_t)want * u[i].count)
                        want_slots(l, b, (int64_t)want * u[i].count - (slots > 0 ? slots : 0),
                                   t_ms, tau);
                } else {
                    slots = slots_until(b, t_ms, tau, now, horizon) -
                            (u[i].kind == 'r' ? b->admitted : 0);
                }
                int64_t items = slots > 0 ? slots / u[i].count : 0;
                if ((size_t)items < allow) {
                    allow = (size_t)items;
                    reason = b->blocked_until > now ? "upstream" : "rate";
                    /* when this bucket has slots again (for requests: ones within the
                     * horizon) - enough of them to be worth a claim, up to its burst -
                     * so idle workers look again then, not at every single slot */
                    int64_t worth = d[k]->burst < WAKE_SLOTS ? d[k]->burst : WAKE_SLOTS;
                    double next = (b->tat > (double)b->blocked_until ? b->tat - tau
                                                                     : (double)b->blocked_until) +
                                  (double)(worth - 1) * t_ms;
                    int64_t at = (int64_t)next - (u[i].kind == 'r' ? LIMITS_HORIZON_MS : 0) + 1;
                    if (at <= now)
                        at = now + 1;
                    if (!l->wake_at || at < l->wake_at)
                        l->wake_at = at;
                }
            }
            if (d[k]->rate > 0 && u[i].kind == 'r' && u[i].host[0]) {
                /* the step's upstream asked to wait (a bucket other hosts share) */
                int64_t until = host_blocked(b, u[i].host, now);
                if (until > now && allow > 0) {
                    allow = 0;
                    reason = "upstream";
                    if (!l->wake_at || until < l->wake_at)
                        l->wake_at = until;
                }
            }
            if (d[k]->concurrency > 0) {
                int64_t held = d[k]->concurrency;
                if (l->shared) { /* this node's units of the cluster's cap */
                    held = b->units;
                    b->cap = d[k]->concurrency;
                    if (held - b->inflight < (int64_t)want) {
                        b->unit_demand = (int64_t)want - (held - b->inflight);
                        pthread_cond_signal(&l->refill_cv);
                    }
                }
                int64_t room = held - b->inflight;
                if (room < 0)
                    room = 0;
                if ((size_t)room < allow) {
                    allow = (size_t)room;
                    reason = "concurrency";
                }
            }
            if (allow < grant || (reason && !why_name)) {
                grant = allow < grant ? allow : grant;
                why_name = u[i].name;
                why_reason = reason;
                why_scope = scope[k];
                snprintf(why_key, sizeof why_key, "%s", key);
                why_host = reason && !strcmp(reason, "upstream") ? u[i].host : "";
                why_rate = d[k]->rate > 0 ? d[k]->rate / u[i].count : 0;
            }
            if (np < sizeof plan / sizeof plan[0])
                plan[np++] = (struct plan){b, d[k], u[i].count, u[i].kind};
        }
    }
    /* Pass 2: take what was granted. */
    for (size_t i = 0; i < np && grant > 0; i++) {
        struct bucket *b = plan[i].b;
        const struct limit_def *d = plan[i].d;
        int64_t amount = (int64_t)grant * plan[i].count;
        if (d->rate > 0 && plan[i].kind == 'i') {
            double t_ms = 1000.0 / d->rate;
            double base = (double)(now > b->blocked_until ? now : b->blocked_until);
            if (l->shared && (size_t)amount <= b->nstock)
                stock_take(b, (size_t)amount); /* leased slots, due now (pass 1) */
            else
                b->tat = (b->tat > base ? b->tat : base) + (double)amount * t_ms;
            g->b[g->nb].bucket = b;
            g->b[g->nb].kind = 'i';
            g->b[g->nb].t_ms = t_ms;
            g->b[g->nb++].amount = amount;
            b->pins++;
        } else if (d->rate > 0) {
            b->admitted += amount;
            g->b[g->nb].bucket = b;
            g->b[g->nb].kind = 'r';
            g->b[g->nb++].amount = amount;
            b->pins++;
        }
        if (d->concurrency > 0) {
            b->inflight += (int64_t)grant;
            g->b[g->nb].bucket = b;
            g->b[g->nb].kind = 'c';
            g->b[g->nb++].amount = (int64_t)grant;
            b->pins++;
        }
    }
    if (grant == 0 && why_name)
        throttle_note(l, job_id, why_name, why_scope, why_key, why_reason ? why_reason : "rate",
                      why_host, why_rate, now);
    else if (grant < want && why_name && why_reason)
        throttle_note(l, job_id, why_name, why_scope, why_key, why_reason, why_host, why_rate, now);
    pthread_mutex_unlock(&l->mu);
    buf_release(&id);
    g->n = grant;
    return grant;
}

static int grant_return(struct limiter *l, struct limits_grant *g, int tokens_too)
{
    int freed = 0;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < g->nb; i++) {
        struct bucket *b = g->b[i].bucket;
        switch (g->b[i].kind) {
        case 'i':
            if (tokens_too && l->shared) /* the leased slots go back to the stock */
                for (int64_t k = 0; k < g->b[i].amount; k++)
                    stock_add(b, clock_mono_ms());
            else if (tokens_too) /* the slots move earlier again */
                b->tat -= (double)g->b[i].amount * g->b[i].t_ms;
            break;
        case 'r':
            b->admitted -= g->b[i].amount;
            freed = 1;
            break;
        case 'c':
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

void limits_undo(struct limiter *l, struct limits_grant *g)
{
    grant_return(l, g, 1);
}

int limits_finish(struct limiter *l, struct limits_grant *g)
{
    return grant_return(l, g, 0);
}

int64_t limits_wake_in(struct limiter *l, int64_t now_mono)
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

/* ---- pacing ------------------------------------------------------------------------ */

struct limits_pacer {
    struct limiter *l;
    char job_id[72]; /* "" for synchronous runs */
    char tenant[STORE_NAME_MAX];
    char workflow[161];
    char step[65];
    size_t n;
    char (*names)[LIMITS_NAME_MAX];
};

struct limits_pacer *limits_pacer_new(struct limiter *l, const char *tenant, const char *workflow,
                                      const char *step, const char *const *names, size_t n)
{
    if (!l || n == 0)
        return NULL;
    struct limits_pacer *p = xcalloc(1, sizeof *p);
    p->l = l;
    snprintf(p->tenant, sizeof p->tenant, "%s", tenant ? tenant : "");
    snprintf(p->workflow, sizeof p->workflow, "%s", workflow ? workflow : "");
    snprintf(p->step, sizeof p->step, "%s", step ? step : "");
    p->names = xcalloc(n, LIMITS_NAME_MAX);
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
                       void (*fn)(struct bucket *, const struct limit_def *, void *), void *arg)
{
    struct buf id = BUF_INIT;
    char key[256];
    for (size_t i = 0; i < p->n; i++) {
        const struct limit_def *d[2];
        int scope[2];
        size_t nd = defs_of(p->l, p->tenant, p->names[i], d, scope);
        for (size_t k = 0; k < nd; k++) {
            if (d[k]->rate <= 0)
                continue;
            key_resolve(d[k]->key, p->tenant, p->workflow, p->step, host, key, sizeof key);
            bucket_id(&id, scope[k], p->tenant, p->names[i], key);
            fn(bucket_get(p->l, buf_cstr(&id), now), d[k], arg);
        }
    }
    buf_release(&id);
}

struct block_arg {
    const char *host;
    int64_t now, until;
};

struct pace_arg {
    struct limiter *l;
    int64_t now, slot;
    int pass;       /* 0: find the latest slot over all buckets; 1: take it in each */
    uint64_t epochs; /* sum of the buckets' epochs (pass 0) */
    int missing;    /* shared mode: a bucket has no leased slot yet */
};

static void pace_one(struct bucket *b, const struct limit_def *d, void *varg)
{
    struct pace_arg *a = varg;
    double t_ms = 1000.0 / d->rate, tau = (double)(d->burst - 1) * t_ms;
    double base = (double)(a->now > b->blocked_until ? a->now : b->blocked_until);
    if (a->l->shared) {
        /* the request's slot is the next one this node leased from the store */
        if (a->pass == 0) {
            a->epochs += b->epoch;
            if (stock_until(b, a->now, INT64_MAX) == 0) {
                want_slots(a->l, b, 1, t_ms, tau);
                a->missing = 1;
            } else {
                int64_t at = b->stock[0] > (int64_t)base ? b->stock[0] : (int64_t)base;
                if (at > a->slot)
                    a->slot = at;
            }
        } else {
            stock_take(b, 1);
            if (b->nstock < 2) /* keep one lease ahead */
                want_slots(a->l, b, (int64_t)(LEASE_MS / t_ms) + 1, t_ms, tau);
        }
        return;
    }
    if (a->pass == 0) {
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

static void blocked_one(struct bucket *b, const struct limit_def *d, void *varg)
{
    (void)d;
    struct block_arg *a = varg;
    int64_t until = host_blocked(b, a->host, a->now);
    if (until > a->until)
        a->until = until;
}

int64_t limits_pace(void *pacer, const char *host, int64_t now_mono, int64_t *hold)
{
    struct limits_pacer *p = pacer;
    if (!p)
        return now_mono;
    struct pace_arg a = {p->l, now_mono, now_mono, 0, 0, 0};
    struct block_arg ba = {host ? host : "", now_mono, 0};
    pthread_mutex_lock(&p->l->mu);
    pacer_each(p, ba.host, now_mono, blocked_one, &ba);
    if (ba.until > now_mono) {
        /* This upstream asked to wait: the request takes its slot when that is over
         * (a slot taken before is given up), so the others of the bucket go on. */
        pthread_mutex_unlock(&p->l->mu);
        *hold = 0;
        return ba.until;
    }
    pacer_each(p, host ? host : "", now_mono, pace_one, &a);
    if (*hold && (int64_t)(a.epochs + 1) == *hold) {
        /* The slot taken earlier has come and no back-off voided it. */
        pthread_mutex_unlock(&p->l->mu);
        return now_mono;
    }
    if (a.missing) { /* shared: no slot leased yet; ask again shortly */
        pthread_mutex_unlock(&p->l->mu);
        *hold = 0;
        return now_mono + STALE_MS;
    }
    a.pass = 1;
    pacer_each(p, host ? host : "", now_mono, pace_one, &a);
    pthread_mutex_unlock(&p->l->mu);
    *hold = (int64_t)(a.epochs + 1);
    return a.slot;
}

static void block_one(struct bucket *b, const struct limit_def *d, void *varg)
{
    struct block_arg *a = varg;
    int64_t until = a->until;
    if (!strstr(d->key, "{host}")) {
        /* Hosts share this bucket: only the one that said so waits. */
        host_block(b, a->host, until);
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

void limiter_set_max_backoff(struct limiter *l, int64_t ms)
{
    pthread_mutex_lock(&l->mu);
    l->max_backoff_ms = ms > 0 ? ms : LIMITS_MAX_BACKOFF_MS;
    pthread_mutex_unlock(&l->mu);
}

void limits_backoff(void *pacer, const char *host, int64_t until_mono)
{
    struct limits_pacer *p = pacer;
    if (!p)
        return;
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&p->l->mu);
    /* An upstream may ask for an hour; what it gets is capped, so a typo or a hostile
     * upstream cannot freeze a limit for long. */
    if (until_mono > now + p->l->max_backoff_ms)
        until_mono = now + p->l->max_backoff_ms;
    struct block_arg a = {host ? host : "", now, until_mono};
    pacer_each(p, a.host, now, block_one, &a);
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

/* ---- the monitor --------------------------------------------------------------------- */

int limits_job_throttle(struct limiter *l, const char *job_id, struct limits_throttle *t)
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
