/* idem.c - in-flight (tenant, key) pairs of streamed submits; see idem.h.
 *
 * A mutex and a small chained hash set: entries live only while an upload runs, so
 * the set holds at most one entry per concurrent request. */
#include "api/idem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/ids.h"
#include "util/xmalloc.h"

#define NBUCKETS 256

struct entry {
    struct entry *next;
    size_t tlen;
    char pair[]; /* tenant NUL key NUL */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry *buckets[NBUCKETS];

static size_t bucket_of(const char *tenant, const char *key)
{
    return (size_t)((ids_hash64(tenant, strlen(tenant)) * 31u) ^ ids_hash64(key, strlen(key))) %
           NBUCKETS;
}

/* The link pointing at the entry of (tenant, key), or at the bucket's NULL end. */
static struct entry **find(size_t b, const char *tenant, const char *key)
{
    struct entry **e = &buckets[b];
    size_t tlen = strlen(tenant);
    for (; *e; e = &(*e)->next)
        if ((*e)->tlen == tlen && !memcmp((*e)->pair, tenant, tlen) &&
            !strcmp((*e)->pair + tlen + 1, key))
            break;
    return e;
}

int api_idem_acquire(const char *tenant, const char *key)
{
    size_t b = bucket_of(tenant, key), tlen = strlen(tenant), klen = strlen(key);
    int rc = 0;
    pthread_mutex_lock(&mu);
    struct entry **e = find(b, tenant, key);
    if (!*e) {
        struct entry *n = xmalloc(sizeof *n + tlen + klen + 2);
        n->next = NULL;
        n->tlen = tlen;
        memcpy(n->pair, tenant, tlen + 1);
        memcpy(n->pair + tlen + 1, key, klen + 1);
        *e = n;
        rc = 1;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

void api_idem_release(const char *tenant, const char *key)
{
    size_t b = bucket_of(tenant, key);
    pthread_mutex_lock(&mu);
    struct entry **e = find(b, tenant, key);
    struct entry *gone = *e;
    if (gone)
        *e = gone->next;
    pthread_mutex_unlock(&mu);
    free(gone);
}
