/* wfload.c - loading and caching workflow definitions; see wfload.h. */
#include "engine/wfload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"
#include "util/log.h"
#include "util/xmalloc.h"

int wfload(struct store *st, const char *tenant, const char *name, int64_t version,
           struct wfdef **out)
{
    if (wfdef_builtin(name, out) == 0)
        return 0;
    struct store_def sw;
    int rc = store_def_get(st, STORE_DEF_WORKFLOW, tenant, name, version, &sw);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_UNKNOWN_WORKFLOW;
    json_error_t je;
    json_t *def = json_loads(sw.text, 0, &je);
    char err[256], target[128];
    rc = def ? wfdef_compile(name, sw.version, def, out, err, sizeof err, target, sizeof target)
             : -SLUICE_E_INTERNAL;
    json_decref(def);
    store_def_release(&sw);
    if (rc == -SLUICE_E_INVALID_FIELD) {
        /* It compiled when it was written, so a rule added since (such as where secrets
         * may appear, engine/secrets.h) refuses it: say so rather than run it. */
        log_write(LOG_WARN, "a stored workflow breaks a rule added since it was written", "tenant",
                  tenant, "workflow", name, "target", target, "error", err, NULL);
        return -SLUICE_E_WORKFLOW_OUTDATED;
    }
    return rc < 0 ? -SLUICE_E_INTERNAL : 0;
}

#define CACHE_SLOTS 16

struct wfcache {
    struct slot {
        char tenant[STORE_NAME_MAX];
        char name[STORE_NAME_MAX];
        int64_t version;
        struct wfdef *def;
        unsigned long used;
    } slots[CACHE_SLOTS];
    unsigned long clock;
};

struct wfcache *wfcache_new(void)
{
    return xcalloc(1, sizeof(struct wfcache));
}

void wfcache_free(struct wfcache *c)
{
    if (!c)
        return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        wfdef_free(c->slots[i].def);
    free(c);
}

const struct wfdef *wfcache_peek(struct wfcache *c, const char *tenant, const char *name,
                                 int64_t version)
{
    const struct wfdef *d = NULL;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        struct slot *s = &c->slots[i];
        if (s->def && s->version == version && !strcmp(s->name, name) &&
            (s->def->builtin || !strcmp(s->tenant, tenant)))
            return s->def;
    }
    /* a built-in is compiled from its name alone: wfcache_get then never reads the store */
    struct wfdef *probe;
    if (wfdef_name_valid(name) || wfdef_builtin(name, &probe) < 0)
        return NULL;
    wfdef_free(probe);
    return wfcache_get(c, NULL, tenant, name, version, &d) == 0 ? d : NULL;
}

int wfcache_get(struct wfcache *c, struct store *st, const char *tenant, const char *name,
                int64_t version, const struct wfdef **out)
{
    struct slot *victim = &c->slots[0];
    for (int i = 0; i < CACHE_SLOTS; i++) {
        struct slot *s = &c->slots[i];
        if (s->def && s->version == version && !strcmp(s->name, name) &&
            (s->def->builtin || !strcmp(s->tenant, tenant))) {
            s->used = ++c->clock;
            *out = s->def;
            return 0;
        }
        if (!s->def || s->used < victim->used)
            victim = s;
    }
    struct wfdef *d = NULL;
    int rc = wfload(st, tenant, name, version, &d);
    if (rc < 0)
        return rc;
    wfdef_free(victim->def);
    snprintf(victim->tenant, sizeof victim->tenant, "%s", tenant);
    snprintf(victim->name, sizeof victim->name, "%s", name);
    victim->version = version;
    victim->def = d;
    victim->used = ++c->clock;
    *out = d;
    return 0;
}
