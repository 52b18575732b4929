/* limits.c - the registry of limits: the server's (from its config) and the tenants'
 * (set by the API, reloaded from the store), looked up by name for admission and
 * pacing; making and freeing it all (struct limits). The buckets are in bucket.c, the
 * shared mode's refiller in refill.c. See engine/limits.h for the design. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/limits/limits_int.h"
#include "store/store.h"
#include "util/xmalloc.h"

struct limits *limits_new(void)
{
    struct limits *l = xcalloc(1, sizeof *l);
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

void limits_free(struct limits *l)
{
    if (!l)
        return;
    refill_stop(l);
    pthread_cond_destroy(&l->refill_cv);
    buckets_drop(l, 0, 1);
    for (size_t i = 0; i < LIMITS_LEARN_HOSTS; i++)
        free(l->learned[i]);
    free(l->server);
    tdefs_free(l->tenants);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

int limits_set_server(struct limits *l, const json_t *defs, char *err, size_t errlen, char *target,
                      size_t targetlen)
{
    const char *name;
    json_t *v;
    if (!json_is_object(defs))
        return limits_def_fail(err, errlen, target, targetlen, "",
                               "limits must be a JSON object name -> limit");
    struct sdef *s = xcalloc(json_object_size(defs) + 1, sizeof *s);
    size_t n = 0;
    json_object_foreach((json_t *)defs, name, v)
    {
        char sub[LIMITS_NAME_MAX + 64];
        if (!limits_name_valid(name)) {
            free(s);
            return limits_def_fail(err, errlen, target, targetlen, name,
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

/* The server's limit called name, or NULL. Under mu. */
static const struct sdef *sdef_find(struct limits *l, const char *name)
{
    for (size_t i = 0; i < l->nserver; i++)
        if (strcmp(l->server[i].name, name) == 0)
            return &l->server[i];
    return NULL;
}

/* Where the tenant's limit called name is linked (*result NULL: it has none). Under mu. */
static struct tdef **tdef_find(struct limits *l, const char *tenant, const char *name)
{
    struct tdef **p = &l->tenants;
    while (*p && (strcmp((*p)->tenant, tenant) || strcmp((*p)->name, name)))
        p = &(*p)->next;
    return p;
}

void limits_set_tenant(struct limits *l, const char *tenant, const char *name,
                       const struct limits_def *def)
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
            snprintf((*p)->tenant, sizeof(*p)->tenant, "%s", tenant);
            snprintf((*p)->name, sizeof(*p)->name, "%s", name);
        }
        (*p)->d = *def;
    }
    pthread_mutex_unlock(&l->mu);
}

int limits_reload(struct limits *l, struct store *st)
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
            snprintf((*tail)->tenant, sizeof(*tail)->tenant, "%s", ls[i].tenant);
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

int limits_server_def(struct limits *l, const char *name, struct limits_def *d)
{
    pthread_mutex_lock(&l->mu);
    const struct sdef *s = sdef_find(l, name);
    if (s)
        *d = s->d;
    pthread_mutex_unlock(&l->mu);
    return s != NULL;
}

void limits_server_names(struct limits *l, char (**names)[LIMITS_NAME_MAX], size_t *n)
{
    pthread_mutex_lock(&l->mu);
    *n = l->nserver;
    *names = xcalloc(l->nserver + 1, LIMITS_NAME_MAX);
    for (size_t i = 0; i < l->nserver; i++)
        memcpy((*names)[i], l->server[i].name, LIMITS_NAME_MAX);
    pthread_mutex_unlock(&l->mu);
}

size_t defs_of(struct limits *l, const char *tenant, const char *name,
               const struct limits_def *out[2], int scope[2])
{
    size_t n = 0;
    const struct sdef *s = sdef_find(l, name);
    if (s) {
        scope[n] = 0;
        out[n++] = &s->d;
    }
    struct tdef *t = *tdef_find(l, tenant, name);
    if (t) {
        scope[n] = 1;
        out[n++] = &t->d;
    }
    return n;
}

void limits_set_max_backoff(struct limits *l, int64_t ms)
{
    pthread_mutex_lock(&l->mu);
    l->max_backoff_ms = ms > 0 ? ms : LIMITS_MAX_BACKOFF_MS;
    pthread_mutex_unlock(&l->mu);
}
