/* events.c - item events: the compact stored form and its public expansion. */
#include "util/events.h"

#include <stdio.h>
#include <string.h>

#include "util/clock.h"
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
    buf_puts(b, "{\"t\":");
    buf_put_i64(b, e->at);
    put_key_str(b, ",\"s\":", e->stage);
    if (e->step && !(e->type && !strcmp(e->step, e->type)))
        put_key_str(b, ",\"p\":", e->step);
    if (e->type) {
        put_key_str(b, ",\"y\":", e->type);
        const char *implied = implied_outcome(e->level);
        if (e->outcome && (!implied || strcmp(implied, e->outcome)))
            put_key_str(b, ",\"o\":", e->outcome);
    }
    if (e->attempt > 0) {
        buf_puts(b, ",\"n\":");
        buf_put_i64(b, e->attempt);
    }
    if (e->worker > 0) {
        buf_puts(b, ",\"w\":");
        buf_put_i64(b, e->worker);
    }
    if (!is_info(e->level))
        put_key_str(b, ",\"l\":", e->level);
    put_key_str(b, ",\"c\":", e->code);
    if (e->worker <= 0)
        put_key_str(b, ",\"m\":", e->message);
    if (e->duration_ms >= 0) {
        buf_puts(b, ",\"d\":");
        buf_put_i64(b, e->duration_ms);
    }
    if (extra && json_object_size(extra))
        put_members(b, extra, 0);
    buf_putc(b, '}');
}

static const char *str_of(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

static void expand_one(struct buf *out, json_t *ev)
{
    char ts[25];
    if (!json_is_object(ev) || json_object_get(ev, "at") || !json_object_get(ev, "t")) {
        jsonw_put(out, ev); /* public already */
        return;
    }
    int64_t at = json_integer_value(json_object_get(ev, "t"));
    const char *level = str_of(ev, "l", "info");
    json_t *dur = json_object_get(ev, "d");
    buf_puts(out, "{\"at\":\"");
    buf_puts(out, clock_fmt_ms(at, ts));
    put_key_str(out, "\",\"stage\":", str_of(ev, "s", ""));
    const char *type = str_of(ev, "y", NULL);
    const char *step = str_of(ev, "p", type);
    if (step)
        put_key_str(out, ",\"step\":", step);
    if (type) {
        const char *outcome = str_of(ev, "o", implied_outcome(level));
        int64_t d = json_integer_value(dur);
        put_key_str(out, ",\"type\":", type);
        put_key_str(out, ",\"outcome\":", outcome ? outcome : "continued");
        buf_puts(out, ",\"endedAt\":\"");
        buf_puts(out, clock_fmt_ms(at + (d > 0 ? d : 0), ts));
        buf_putc(out, '"');
    }
    json_t *n = json_object_get(ev, "n"), *w = json_object_get(ev, "w");
    if (n && !w) {
        buf_puts(out, ",\"attempt\":");
        jsonw_put(out, n);
    }
    put_key_str(out, ",\"level\":", level);
    put_key_str(out, ",\"code\":", str_of(ev, "c", ""));
    if (w) {
        char msg[96];
        snprintf(msg, sizeof msg, "claimed by worker %lld (attempt %lld)",
                 (long long)json_integer_value(w), (long long)json_integer_value(n));
        put_key_str(out, ",\"message\":", msg);
    } else {
        put_key_str(out, ",\"message\":", str_of(ev, "m", ""));
    }
    if (dur) {
        buf_puts(out, ",\"durationMs\":");
        jsonw_put(out, dur);
    }
    put_members(out, ev, 1);
    buf_putc(out, '}');
}

void events_expand(struct buf *out, const char *stored)
{
    json_error_t je;
    json_t *arr = stored ? json_loads(stored, JSON_DECODE_ANY, &je) : NULL;
    if (!json_is_array(arr)) {
        buf_puts(out, stored ? stored : "[]");
        json_decref(arr);
        return;
    }
    size_t i;
    json_t *ev;
    buf_putc(out, '[');
    json_array_foreach(arr, i, ev)
    {
        if (i)
            buf_putc(out, ',');
        expand_one(out, ev);
    }
    buf_putc(out, ']');
    json_decref(arr);
}
