/* bucket.c - the buckets of this process: one per (scope, limit name, resolved key),
 * in a hash table that drops idle buckets when it grows; the GCRA arithmetic of a
 * rate (how many slots until a time), and the back-offs upstreams ask of a bucket
 * that several hosts share. All under the registry's mutex. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/limits/limits_int.h"
#include "util/xmalloc.h"

#define SWEEP_AT 4096      /* buckets before idle ones are dropped */
#define MAX_HOST_BLOCKS 64 /* per bucket; past it the earliest to end is replaced */

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

void buckets_drop(struct limits *l, int64_t now, int all)
{
    for (size_t i = 0; i < NHASH; i++)
        for (struct bucket **p = &l->hash[i]; *p;) {
            struct bucket *b = *p;
            if (all || bucket_idle(b, now)) {
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

struct bucket *bucket_get(struct limits *l, const char *id, int64_t now)
{
    uint64_t h = hash_str(id) % NHASH;
    for (struct bucket *b = l->hash[h]; b; b = b->next)
        if (strcmp(b->id, id) == 0)
            return b;
    if (l->nbuckets >= SWEEP_AT)
        buckets_drop(l, now, 0);
    struct bucket *b = xcalloc(1, sizeof *b);
    b->id = xstrdup(id);
    b->next = l->hash[h];
    l->hash[h] = b;
    l->nbuckets++;
    return b;
}

struct bucket *bucket_of(struct limits *l, int scope, const struct limits_def *d,
                         const char *tenant, const char *name, const char *workflow,
                         const char *step, const char *host, int64_t now, char *key, size_t keylen)
{
    char id[STORE_NAME_MAX + LIMITS_NAME_MAX + 256 + 8]; /* fits every part whole */
    limits_key_resolve(d->key, tenant, workflow, step, host, key, keylen);
    if (scope == 0)
        snprintf(id, sizeof id, "s/%s|%s", name, key);
    else
        snprintf(id, sizeof id, "t/%s/%s|%s", tenant, name, key);
    return bucket_get(l, id, now);
}

int64_t bucket_host_blocked(struct bucket *b, const char *host, int64_t now)
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

void bucket_host_block(struct bucket *b, const char *host, int64_t until)
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

int64_t bucket_slots_until(const struct bucket *b, double t_ms, double tau_ms, int64_t now,
                           int64_t until)
{
    double base = (double)(now > b->blocked_until ? now : b->blocked_until);
    if ((double)until < base)
        return 0;
    double tat = b->tat > base ? b->tat : base;
    double k = floor(((double)until + tau_ms - tat) / t_ms) + 1;
    return k > 0 ? (int64_t)k : 0;
}
