/* slots.c - per-tenant shares of shared request slots; see slots.h.
 *
 * One mutex and a small array of the tenants that hold slots now: it has at most as
 * many entries as slots are taken (a few hundred), and an entry goes when its tenant
 * holds nothing, so a linear search costs less than the request it guards. */
#include "api/slots.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"
#include "util/xmalloc.h"

struct holder {
    char *tenant;
    unsigned held[SLOT__COUNT];
};

struct slots {
    pthread_mutex_t mu;
    unsigned size[SLOT__COUNT];
    unsigned cap[SLOT__COUNT]; /* per tenant; 0 = none */
    unsigned used[SLOT__COUNT];
    struct holder *h;
    size_t n, alloc;
};

struct slots *slots_new(const unsigned size[SLOT__COUNT], unsigned share_percent)
{
    struct slots *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    if (share_percent < 1 || share_percent > 100)
        share_percent = 100;
    for (int p = 0; p < SLOT__COUNT; p++) {
        s->size[p] = size[p];
        unsigned long long c = (unsigned long long)size[p] * share_percent / 100;
        s->cap[p] = size[p] == 0 || share_percent == 100 ? 0 : c < 1 ? 1 : (unsigned)c;
    }
    return s;
}

void slots_free(struct slots *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->h[i].tenant);
    free(s->h);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

unsigned slots_tenant_cap(const struct slots *s, enum slot_pool p)
{
    return s->cap[p];
}

static struct holder *find(struct slots *s, const char *tenant)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->h[i].tenant, tenant) == 0)
            return &s->h[i];
    return NULL;
}

int slots_take(struct slots *s, enum slot_pool p, const char *tenant)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    struct holder *h = find(s, tenant);
    if (s->size[p] && s->used[p] >= s->size[p]) {
        rc = -SLUICE_E_SERVER_BUSY;
        goto out;
    }
    if (s->cap[p] && h && h->held[p] >= s->cap[p]) {
        rc = -SLUICE_E_TENANT_SHARE;
        goto out;
    }
    if (!h) {
        if (s->n == s->alloc) {
            s->alloc = s->alloc ? 2 * s->alloc : 16;
            s->h = xrealloc(s->h, s->alloc * sizeof *s->h);
        }
        h = &s->h[s->n++];
        memset(h, 0, sizeof *h);
        h->tenant = xstrdup(tenant);
    }
    h->held[p]++;
    s->used[p]++;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void slots_give(struct slots *s, enum slot_pool p, const char *tenant)
{
    pthread_mutex_lock(&s->mu);
    struct holder *h = find(s, tenant);
    if (h && h->held[p]) {
        h->held[p]--;
        s->used[p]--;
        int empty = 1;
        for (int i = 0; i < SLOT__COUNT; i++)
            empty &= h->held[i] == 0;
        if (empty) { /* swap in the last entry */
            free(h->tenant);
            *h = s->h[--s->n];
        }
    }
    pthread_mutex_unlock(&s->mu);
}
