/* events.c - item events: the compact stored form and its public expansion. */
#include "util/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/jload.h"
#include "util/jsonw.h"

static void put_key_str(struct buf *b, const char *key, const char *v)
{
    buf_puts(b, key);
    buf_json_str(b, v, strlen(v));
}

static int is_info(const char *level)
{
    return !strcmp(level, "info");
}

/* The one message a step type passes items with: a passed step event that says it
 * stores neither its code nor its message. Changing a text here changes how events
 * stored before read: add a type, never edit one. */
static const struct {
    const char *type, *code, *message;
} fixed_pass[] = {
    {"noop", "Succeeded", "noop: nothing to apply"},
    {"map", "Mapped", "data reshaped"},
    {"validate", "Valid", "data matches the schema"},
};

static int fixed_pass_of(const char *type)
{
    for (size_t i = 0; i < sizeof fixed_pass / sizeof fixed_pass[0]; i++)
        if (!strcmp(fixed_pass[i].type, type))
            return (int)i;
    return -1;
}

/* The code a compact event without "c" has (other than a fixed pass message's). */
static const char *default_code(int claim, const char *stage, const char *level)
{
    return claim                                               ? "Claimed"
           : !strcmp(stage, "apply") && !strcmp(level, "info") ? "VersionWritten"
                                                               : "";
}

/* The outcome a level implies for a step event, or NULL (warn: the step's onError). */
static const char *implied_outcome(const char *level)
{
    return is_info(level) ? "passed" : !strcmp(level, "error") ? "failed" : NULL;
}

/* Appends the members of obj (an object) after what b holds, each after a ','. */
static void put_members(struct buf *b, json_t *obj, int skip_short)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (skip_short && k[0] && !k[1])
            continue; /* one of the compact fields */
        buf_putc(b, ',');
        buf_json_str(b, k, strlen(k));
        buf_putc(b, ':');
        jsonw_put(b, v);
    }
}

void events_put(struct buf *b, const struct item_event *e, json_t *extra)
{
    /* Written piece by piece, not with printf: every item gets several of these. */
    if (b->len > 1 || (b->len == 1 && b->data[0] != '['))
        buf_putc(b, ',');
    if (e->base > 0) {
        buf_puts(b, "{\"u\":");
        buf_put_i64(b, e->at - e->base);
    } else {
        buf_puts(b, "{\"T\":");
        buf_put_i64(b, e->at);
    }
    const char *dflt_stage = e->worker > 0 ? "claim" : e->type ? "step" : NULL;
    if (!dflt_stage || strcmp(dflt_stage, e->stage))
        put_key_str(b, ",\"s\":", e->stage);
    if (e->step && !(e->type && !strcmp(e->step, e->type)))
        put_key_str(b, ",\"p\":", e->step);
    int fixed = -1; /* code and message are the type's fixed pass message */
    if (e->type) {
        put_key_str(b, ",\"y\":", e->type);
        const char *implied = implied_outcome(e->level);
        if (e->outcome && (!implied || strcmp(implied, e->outcome)))
            put_key_str(b, ",\"o\":", e->outcome);
        int f = fixed_pass_of(e->type);
        if (f >= 0 && is_info(e->level) && e->outcome && !strcmp(e->outcome, "passed") &&
            !strcmp(fixed_pass[f].code, e->code) && e->message &&
            !strcmp(fixed_pass[f].message, e->message))
            fixed = f;
    }
    if (e->type ? !e->same_attempt : e->attempt > 0) {
        buf_puts(b, ",\"n\":");
        buf_put_i64(b, e->attempt > 0 ? e->attempt : 0);
    }
    if (e->worker > 0) {
        buf_puts(b, ",\"w\":");
        buf_put_i64(b, e->worker);
    }
    if (!is_info(e->level))
        put_key_str(b, ",\"l\":", e->level);
    if (fixed < 0 && strcmp(e->code, default_code(e->worker > 0, e->stage, e->level)))
        put_key_str(b, ",\"c\":", e->code);
    if (fixed < 0 && e->worker <= 0)
        put_key_str(b, ",\"m\":", e->message);
    if (e->type ? e->duration_ms != 0 : e->duration_ms >= 0) { /* a step's -1 is kept */
        buf_puts(b, ",\"d\":");
        buf_put_i64(b, e->duration_ms < 0 ? -1 : e->duration_ms);
    }
    if (extra && json_object_size(extra))
        put_members(b, extra, 0);
    if (e->extra_text)
        buf_puts(b, e->extra_text);
    buf_putc(b, '}');
}

int64_t events_base(const char *arr, size_t len)
{
    /* A quote can occur in a string only escaped, so "T": and "t": are keys. */
    static const char first[] = "[{\"T\":";
    if (!arr || len < sizeof first || memcmp(arr, first, sizeof first - 1) != 0)
        return 0;
    const char *end = arr + len;
    for (const char *p = arr + 2; p + 4 <= end; p++) {
        p = memchr(p, '"', (size_t)(end - p));
        if (!p || p + 4 > end)
            break;
        if ((p[1] == 'T' || p[1] == 't') && p[2] == '"' && p[3] == ':' && p != arr + 2)
            return 0;
    }
    char *stop;
    long long at = strtoll(arr + sizeof first - 1, &stop, 10);
    return stop > arr + sizeof first - 1 && at > 0 ? (int64_t)at : 0;
}

static const char *str_of(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

/* What the events before this one in its array say (see events.h). */
struct expand_state {
    int64_t abs_at; /* the latest absolute time */
    json_int_t n;   /* the latest attempt ("n"), 0: none */
};

static void expand_one(struct buf *out, json_t *ev, struct expand_state *st)
{
    char ts[25];
    json_t *tv = json_is_object(ev) ? json_object_get(ev, "T") : NULL;
    json_t *uv = json_is_object(ev) ? json_object_get(ev, "u") : NULL;
    json_t *old = json_is_object(ev) ? json_object_get(ev, "t") : NULL;
    if (!json_is_object(ev) || json_object_get(ev, "at") || !(tv || uv || old)) {
        jsonw_put(out, ev); /* public already */
        return;
    }
    int v2 = !old; /* this form leaves more out (events.h) */
    int64_t at = tv   ? json_integer_value(tv)
                 : uv ? st->abs_at + json_integer_value(uv)
                      : json_integer_value(old);
    if (tv || old)
        st->abs_at = at;
    const char *level = str_of(ev, "l", "info");
    const char *type = str_of(ev, "y", NULL);
    json_t *w = json_object_get(ev, "w"), *n = json_object_get(ev, "n");
    json_t *dur = json_object_get(ev, "d");
    json_int_t attempt = n ? json_integer_value(n) : 0;
    if (v2 && !n && type)
        attempt = st->n;
    if (n)
        st->n = json_integer_value(n);
    int fixed = v2 && type && !json_object_get(ev, "c") ? fixed_pass_of(type) : -1;
    const char *stage = str_of(ev, "s", !v2 ? "" : w ? "claim" : type ? "step" : "");
    buf_puts(out, "{\"at\":\"");
    buf_puts(out, clock_fmt_ms(at, ts));
    put_key_str(out, "\",\"stage\":", stage);
    const char *step = str_of(ev, "p", type);
    if (step)
        put_key_str(out, ",\"step\":", step);
    int64_t d = dur ? json_integer_value(dur) : 0;
    if (type) {
        const char *outcome = str_of(ev, "o", implied_outcome(level));
        put_key_str(out, ",\"type\":", type);
        put_key_str(out, ",\"outcome\":", outcome ? outcome : "continued");
        buf_puts(out, ",\"endedAt\":\"");
        buf_puts(out, clock_fmt_ms(at + (d > 0 ? d : 0), ts));
        buf_putc(out, '"');
    }
    if (attempt > 0 && !w) {
        buf_puts(out, ",\"attempt\":");
        buf_put_i64(out, attempt);
    }
    put_key_str(out, ",\"level\":", level);
    put_key_str(out, ",\"code\":",
                fixed >= 0 ? fixed_pass[fixed].code
                           : str_of(ev, "c", v2 ? default_code(w != NULL, stage, level) : ""));
    if (w) {
        char msg[96];
        snprintf(msg, sizeof msg, "claimed by worker %lld (attempt %lld)",
                 (long long)json_integer_value(w), (long long)attempt);
        put_key_str(out, ",\"message\":", msg);
    } else {
        put_key_str(out,
                    ",\"message\":", fixed >= 0 ? fixed_pass[fixed].message : str_of(ev, "m", ""));
    }
    if (dur ? !(v2 && d < 0) : v2 && type) {
        buf_puts(out, ",\"durationMs\":");
        buf_put_i64(out, d);
    }
    put_members(out, ev, 1);
    buf_putc(out, '}');
}

void events_expand(struct buf *out, const char *stored)
{
    json_t *arr = stored ? jload(stored, strlen(stored), 0) : NULL;
    if (!json_is_array(arr)) {
        buf_puts(out, stored ? stored : "[]");
        json_decref(arr);
        return;
    }
    size_t i;
    json_t *ev;
    struct expand_state st = {0, 0};
    buf_putc(out, '[');
    json_array_foreach(arr, i, ev)
    {
        if (i)
            buf_putc(out, ',');
        expand_one(out, ev, &st);
    }
    buf_putc(out, ']');
    json_decref(arr);
}
