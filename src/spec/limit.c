/* limit.c - a limit's definition: checking the JSON it is given in (server config,
 * PUT /v1/limits/{name}), rendering it back, and its bucket key template (the four
 * placeholders, and how a use fills them in). Pure functions: no registry, no lock. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "spec/limit.h"
#include "util/buf.h"
#include "util/errors.h"
#include "util/ids.h"

int limits_name_valid(const char *name)
{
    return name && ids_name_valid(name, LIMITS_NAME_MAX - 1, ".");
}

int limits_def_fail(char *err, size_t errlen, char *target, size_t targetlen, const char *member,
                    const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    snprintf(target, targetlen, "%s", member);
    return -SLUICE_E_INVALID_FIELD;
}

/* The placeholders of a key template, in the order limits_key_resolve fills them. */
static const char *const words[] = {"tenant", "workflow", "step", "host"};

/* Which placeholder the n characters at p name: its index in words, or -1. */
static int placeholder(const char *p, size_t n)
{
    for (int i = 0; i < 4; i++)
        if (strlen(words[i]) == n && strncmp(p, words[i], n) == 0)
            return i;
    return -1;
}

/* The key template: only the four placeholders; a bare word stands for one. */
static int key_parse(const char *in, char *out, size_t outlen)
{
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
        if (placeholder(p + 1, (size_t)(end - p - 1)) < 0)
            return -1;
        p = end;
    }
    snprintf(out, outlen, "%s", in);
    return 0;
}

int limits_def_parse(const json_t *j, struct limits_def *d, char *err, size_t errlen, char *target,
                     size_t targetlen)
{
    const char *k;
    json_t *v;
    memset(d, 0, sizeof *d);
    d->per_s = 1;
    if (!json_is_object(j))
        return limits_def_fail(err, errlen, target, targetlen, "", "a limit is a JSON object");
    json_object_foreach((json_t *)j, k, v)
    {
        if (strcmp(k, "key") && strcmp(k, "rate") && strcmp(k, "per") && strcmp(k, "burst") &&
            strcmp(k, "concurrency") && strcmp(k, "name") && strcmp(k, "scope") &&
            strcmp(k, "createdAt") && strcmp(k, "updatedAt"))
            return limits_def_fail(
                err, errlen, target, targetlen, k,
                "unknown member; a limit has key, rate, per, burst and concurrency");
    }
    v = json_object_get(j, "key");
    if (v) {
        if (!json_is_string(v) || key_parse(json_string_value(v), d->key, sizeof d->key) < 0)
            return limits_def_fail(err, errlen, target, targetlen, "key",
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
            return limits_def_fail(err, errlen, target, targetlen, "per",
                                   "per must be \"second\", \"minute\" or \"hour\"");
    }
    v = json_object_get(j, "rate");
    if (v) {
        if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) > 1e6)
            return limits_def_fail(err, errlen, target, targetlen, "rate",
                                   "rate must be a number above 0 and at most 1000000");
        d->rate_in_per = json_number_value(v);
        d->rate = d->rate_in_per / d->per_s;
    } else if (json_object_get(j, "per")) {
        return limits_def_fail(err, errlen, target, targetlen, "per", "per needs a rate");
    }
    v = json_object_get(j, "burst");
    if (v) {
        if (!d->rate)
            return limits_def_fail(err, errlen, target, targetlen, "burst", "burst needs a rate");
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
            return limits_def_fail(err, errlen, target, targetlen, "burst",
                                   "burst must be an integer from 1 to 1000000");
        d->burst = json_integer_value(v);
    } else if (d->rate) {
        d->burst = d->rate >= 1 ? (int64_t)floor(d->rate) : 1; /* one second's worth */
    }
    v = json_object_get(j, "concurrency");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
            return limits_def_fail(err, errlen, target, targetlen, "concurrency",
                                   "concurrency must be an integer from 1 to 1000000");
        d->concurrency = json_integer_value(v);
    }
    if (!d->rate && !d->concurrency)
        return limits_def_fail(err, errlen, target, targetlen, "rate",
                               "a limit needs a rate, a concurrency, or both");
    return 0;
}

json_t *limits_def_json(const struct limits_def *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "key", json_string(d->key));
    if (d->rate > 0) {
        json_object_set_new(o, "rate", json_real(d->rate_in_per));
        json_object_set_new(o, "per",
                            json_string(d->per_s >= 3600 ? "hour"
                                        : d->per_s >= 60 ? "minute"
                                                         : "second"));
        json_object_set_new(o, "burst", json_integer(d->burst));
    }
    if (d->concurrency > 0)
        json_object_set_new(o, "concurrency", json_integer(d->concurrency));
    return o;
}

void limits_key_resolve(const char *tmpl, const char *tenant, const char *workflow,
                        const char *step, const char *host, char *out, size_t outlen)
{
    const char *const values[] = {tenant, workflow, step, host}; /* as words */
    struct buf b = BUF_INIT;
    for (const char *p = tmpl; *p;) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            int w = end ? placeholder(p + 1, (size_t)(end - p - 1)) : -1;
            if (w >= 0) {
                buf_puts(&b, values[w]);
                p = end + 1;
                continue;
            }
        }
        buf_putc(&b, *p++);
    }
    snprintf(out, outlen, "%s", buf_cstr(&b));
    buf_release(&b);
}
