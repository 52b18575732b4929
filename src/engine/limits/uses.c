/* uses.c - what a job's items consume: the uses a workflow declares (its own limits
 * per item, its steps' per item or per request) and the text they are kept in on the
 * job (store_job_meta.uses), one line a use:
 *
 *   KIND \t NAME \t WORKFLOW \t STEP \t HOST \t COUNT     KIND: 'i' items, 'r' requests
 *
 * COUNT is "C", or "C/P" for C uses per P items (a batched http step: one request per
 * maxItems items).
 * An empty NAME is a step's fixed upstream origin (host:port), for learned pacing
 * (learn.c).
 * Jobs in the store keep this text, so the letters and the layout do not change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/limits.h"
#include "spec/batch.h"
#include "spec/workflow.h"

int64_t limits_use_tokens(const struct limits_use *u, int64_t n)
{
    int64_t per = u->per > 1 ? u->per : 1;
    return (n * u->count + per - 1) / per;
}

int64_t limits_use_items(const struct limits_use *u, int64_t s)
{
    return s * (u->per > 1 ? u->per : 1) / u->count;
}

double limits_use_rate(const struct limits_use *u, double tokens_per_s)
{
    return tokens_per_s * (u->per > 1 ? u->per : 1) / u->count;
}

/* Items one request of step s carries. */
static int step_per(const struct step_def *s)
{
    return s->type == STEP_HTTP && s->batch && s->batch->max_items > 1 ? (int)s->batch->max_items
                                                                       : 1;
}

void limits_uses_encode(const struct limits_use *u, size_t n, struct buf *b)
{
    for (size_t i = 0; i < n; i++) {
        buf_printf(b, "%s%c\t%s\t%s\t%s\t%s\t%d", i ? "\n" : "",
                   u[i].kind == LIMITS_REQUESTS ? 'r' : 'i', u[i].name, u[i].workflow, u[i].step,
                   u[i].host, u[i].count);
        if (u[i].per > 1)
            buf_printf(b, "/%d", u[i].per);
    }
}

/* One use of limit name by workflow w's items, one per item; no step, no host. */
static void use_set(struct limits_use *u, enum limits_kind kind, const char *name,
                    const struct wfdef *w)
{
    memset(u, 0, sizeof *u);
    u->kind = kind;
    u->count = 1;
    u->per = 1;
    snprintf(u->name, sizeof u->name, "%s", name);
    snprintf(u->workflow, sizeof u->workflow, "%s", w->name);
}

void limits_uses_of(const struct wfdef *w, struct buf *b)
{
    struct limits_use u[LIMITS_MAX_USES];
    size_t n = 0;
    for (size_t i = 0; i < w->nlimits && n < LIMITS_MAX_USES; i++, n++)
        use_set(&u[n], LIMITS_ITEMS, w->limits[i], w);
    for (size_t k = 0; k < w->nsteps; k++) {
        const struct step_def *s = &w->steps[k];
        for (size_t i = 0; i < s->nlimits && n < LIMITS_MAX_USES; i++, n++) {
            use_set(&u[n], s->type == STEP_HTTP ? LIMITS_REQUESTS : LIMITS_ITEMS, s->limits[i], w);
            if (s->type == STEP_HTTP)
                u[n].per = step_per(s);
            snprintf(u[n].step, sizeof u[n].step, "%s", s->name);
            snprintf(u[n].host, sizeof u[n].host, "%s", s->host);
        }
    }
    /* One unnamed request use per fixed upstream host, whatever limits are named: what
     * that host said of its own limit (learned pacing) holds its claims too. */
    for (size_t k = 0; k < w->nsteps; k++) {
        const struct step_def *s = &w->steps[k];
        if (s->type != STEP_HTTP || !s->origin[0])
            continue;
        size_t j = 0;
        while (j < n && !(u[j].name[0] == 0 && !strcmp(u[j].host, s->origin)))
            j++;
        if (j < n) {
            /* another step to the same host: more requests per item (counted at the
             * smaller batch of the two: never fewer than it sends) */
            u[j].count++;
            if (step_per(s) < u[j].per)
                u[j].per = step_per(s);
        } else if (n < LIMITS_MAX_USES) {
            use_set(&u[n], LIMITS_REQUESTS, "", w);
            u[n].per = step_per(s);
            snprintf(u[n].step, sizeof u[n].step, "%s", s->name);
            snprintf(u[n].host, sizeof u[n].host, "%s", s->origin); /* learned: per origin */
            n++;
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

int limits_uses_decode(const char *text, struct limits_use *u, size_t max)
{
    size_t n = 0;
    const char *p = text ? text : "";
    while (*p && n < max) {
        struct limits_use *x = &u[n];
        char count[16];
        memset(x, 0, sizeof *x);
        char kind = *p++;
        if ((kind != 'i' && kind != 'r') || *p++ != '\t')
            return -1;
        x->kind = kind == 'r' ? LIMITS_REQUESTS : LIMITS_ITEMS;
        if (field(&p, x->name, sizeof x->name) || *p++ != '\t' ||
            field(&p, x->workflow, sizeof x->workflow) || *p++ != '\t' ||
            field(&p, x->step, sizeof x->step) || *p++ != '\t' ||
            field(&p, x->host, sizeof x->host) || *p++ != '\t' || field(&p, count, sizeof count))
            return -1;
        char *slash = strchr(count, '/');
        x->count = atoi(count);
        x->per = slash ? atoi(slash + 1) : 1;
        if (x->count < 1 || x->per < 1)
            return -1;
        n++;
        if (*p == '\n')
            p++;
        else if (*p)
            return -1;
    }
    return (int)n;
}
