/* secrets.c - the operator's secrets and per-tenant resolution; see secrets.h. Where a
 * template may name a secret is in spec/secrets.c (no store: the definition parsers
 * and their fuzz target link it alone). */
#include "engine/secrets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"
#include "util/xmalloc.h"

struct op_secret {
    char name[SECRETS_NAME_MAX + 1];
    char *value;   /* heap */
    char *tenants; /* heap, as configured ("" = none) */
};

struct secrets {
    struct op_secret *v;
    size_t n;
};

struct secrets *secrets_new(void)
{
    return xcalloc(1, sizeof(struct secrets));
}

void secrets_free(struct secrets *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        memset(s->v[i].value, 0, strlen(s->v[i].value));
        free(s->v[i].value);
        free(s->v[i].tenants);
    }
    free(s->v);
    free(s);
}

int secrets_add(struct secrets *s, const char *name, const char *value, const char *tenants)
{
    if (!secrets_name_valid(name) || !value || !*value || strlen(value) > SECRETS_VALUE_MAX)
        return -SLUICE_E_INVALID_PARAMETER;
    s->v = xrealloc(s->v, (s->n + 1) * sizeof *s->v);
    struct op_secret *o = &s->v[s->n++];
    snprintf(o->name, sizeof o->name, "%s", name);
    o->value = xstrdup(value);
    o->tenants = xstrdup(tenants ? tenants : "");
    return 0;
}

size_t secrets_count(const struct secrets *s)
{
    return s ? s->n : 0;
}

void secrets_info(const struct secrets *s, size_t i, const char **name, const char **tenants)
{
    *name = s->v[i].name;
    *tenants = s->v[i].tenants;
}

/* Nonzero when the list "a, b,pre*" admits tenant. */
static int tenant_listed(const char *list, const char *tenant)
{
    const char *p = list;
    size_t tl = strlen(tenant);
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        size_t n = (size_t)(e - p);
        if (n > 0 && p[n - 1] == '*') {
            if (tl >= n - 1 && memcmp(tenant, p, n - 1) == 0)
                return 1;
        } else if (n > 0 && n == tl && memcmp(tenant, p, n) == 0) {
            return 1;
        }
        p = e;
    }
    return 0;
}

int secrets_resolve(const struct secrets *s, struct store *st, const char *tenant, const char *name,
                    char **value)
{
    *value = NULL;
    if (!secrets_name_valid(name) || !tenant)
        return 0;
    if (st) {
        struct store_def sc;
        int rc = store_def_get(st, STORE_DEF_SECRET, tenant, name, 0, &sc);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            *value = xstrdup(sc.text);
            store_def_release(&sc);
            return 1;
        }
    }
    for (size_t i = 0; s && i < s->n; i++)
        if (!strcmp(s->v[i].name, name) && tenant_listed(s->v[i].tenants, tenant)) {
            *value = xstrdup(s->v[i].value);
            return 1;
        }
    return 0;
}
