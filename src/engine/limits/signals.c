/* signals.c - what an upstream says of its own rate limit, read from one response's
 * header lines: the IETF RateLimit / RateLimit-Policy fields (draft-ietf-httpapi-
 * ratelimit-headers, structured-field lists: `"default";q=100;w=60` and
 * `"default";r=50;t=30`, also the draft-07 dictionary `limit=100, remaining=50,
 * reset=5`), the older RateLimit-Limit/-Remaining/-Reset trio, X-RateLimit-* (Reset
 * an epoch second when above 1e9, as GitHub sends it, else a delta) and Shopify's
 * X-Shopify-Shop-Api-Call-Limit "used/size". Pure parsing: learn.c decides what the
 * numbers mean for pacing. Anything malformed is skipped, never trusted. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/limits.h"

#define EPOCH_S 1e9   /* a reset above this is an epoch second, not a delta */
#define EPOCH_MS 1e12 /* ... and above this an epoch millisecond */

const char *limits_source_name(enum limits_source s)
{
    switch (s) {
    case LIMITS_SRC_AIMD:
        return "aimd";
    case LIMITS_SRC_RETRY_AFTER:
        return "retry-after";
    case LIMITS_SRC_IETF:
        return "ratelimit";
    case LIMITS_SRC_TRIO:
        return "ratelimit-limit";
    case LIMITS_SRC_X:
        return "x-ratelimit";
    case LIMITS_SRC_SHOPIFY:
        return "shopify";
    case LIMITS_SRC_NONE:
        break;
    }
    return "none";
}

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* A non-negative decimal number at *p (digits, optional fraction), at most 15 digits:
 * the value, *p moved past it; -1 when there is none. */
static double number(const char **p, const char *end)
{
    const char *s = *p;
    double v = 0;
    int digits = 0;
    while (s < end && isdigit((unsigned char)*s) && digits < 16) {
        v = v * 10 + (*s++ - '0');
        digits++;
    }
    if (digits == 0 || digits > 15)
        return -1;
    if (s < end && *s == '.') {
        double f = 0.1;
        s++;
        if (s >= end || !isdigit((unsigned char)*s))
            return -1;
        while (s < end && isdigit((unsigned char)*s)) {
            v += (*s++ - '0') * f;
            f /= 10;
        }
    }
    *p = s;
    return v;
}

/* The whole value is one number (surrounding blanks allowed); -1 otherwise. */
static double whole_number(const char *p, const char *end)
{
    p = skip_ows(p, end);
    double v = number(&p, end);
    p = skip_ows(p, end);
    return p == end ? v : -1;
}

/* One structured-field list member's parameters we care about: q, w, r, t (and the
 * draft-07 dictionary keys limit, remaining, reset). */
struct member {
    double q, w, r, t;
    double bare; /* a bare integer item (older drafts: "100;w=60") */
};

/* Parses one list member at p..end (a string, token or integer item, then ;k=v
 * parameters). 0, or -1 when malformed. */
static int member_parse(const char *p, const char *end, struct member *m)
{
    m->q = m->w = m->r = m->t = m->bare = -1;
    p = skip_ows(p, end);
    if (p < end && *p == '"') { /* sf-string: the policy's name, not needed */
        const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
        if (!q)
            return -1;
        p = q + 1;
    } else if (p < end && isdigit((unsigned char)*p)) {
        m->bare = number(&p, end);
        if (m->bare < 0)
            return -1;
    } else if (p < end && (isalpha((unsigned char)*p) || *p == '*')) {
        /* a token: in the draft-07 dictionary it is the key ("remaining=50") */
        const char *k = p;
        while (p < end && (isalnum((unsigned char)*p) || strchr("_-.*:/", *p)))
            p++;
        size_t kn = (size_t)(p - k);
        if (p < end && *p == '=') {
            p++;
            double v = number(&p, end);
            if (v < 0)
                return -1;
            if (kn == 5 && !strncasecmp(k, "limit", 5))
                m->q = v;
            else if (kn == 9 && !strncasecmp(k, "remaining", 9))
                m->r = v;
            else if (kn == 5 && !strncasecmp(k, "reset", 5))
                m->t = v;
        }
    } else {
        return -1;
    }
    while ((p = skip_ows(p, end)) < end && *p == ';') {
        p = skip_ows(p + 1, end);
        const char *k = p;
        while (p < end && (islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' ||
                           *p == '-' || *p == '.' || *p == '*'))
            p++;
        size_t kn = (size_t)(p - k);
        double v = -2; /* a parameter without a numeric value */
        if (p < end && *p == '=') {
            p++;
            if (p < end && *p == '"') { /* a string parameter (pk, qu): skipped */
                const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
                if (!q)
                    return -1;
                p = q + 1;
            } else if (p < end && (*p == ':' || *p == '?' || isalpha((unsigned char)*p))) {
                while (p < end && *p != ';' && *p != ',' && *p != ' ')
                    p++; /* byte sequence, boolean or token: not ours */
            } else if ((v = number(&p, end)) < 0) {
                return -1;
            }
        }
        if (kn == 1 && v >= 0) {
            if (*k == 'q')
                m->q = v;
            else if (*k == 'w')
                m->w = v;
            else if (*k == 'r')
                m->r = v;
            else if (*k == 't')
                m->t = v;
        }
    }
    return skip_ows(p, end) == end ? 0 : -1;
}

/* Calls fn for each comma-separated member of a list value. */
static void list_each(const char *p, const char *end, struct limits_signal *s,
                      void (*fn)(const struct member *, struct limits_signal *))
{
    while (p < end) {
        /* a comma inside a quoted string does not end the member */
        const char *e = p;
        int quoted = 0;
        while (e < end && (quoted || *e != ',')) {
            if (*e == '"')
                quoted = !quoted;
            else if (*e == '\\' && quoted && e + 1 < end)
                e++;
            e++;
        }
        struct member m;
        if (member_parse(p, e, &m) == 0)
            fn(&m, s);
        p = e < end ? e + 1 : end;
    }
}

static void policy_member(const struct member *m, struct limits_signal *s)
{
    double q = m->q >= 0 ? m->q : m->bare;
    if (q < 0 || m->w <= 0)
        return;
    /* the most restrictive policy: the smallest quota per second */
    if (s->ietf_q < 0 || q / m->w < s->ietf_q / s->ietf_w) {
        s->ietf_q = q;
        s->ietf_w = m->w;
    }
    s->families |= 1u << LIMITS_SRC_IETF;
}

static void ratelimit_member(const struct member *m, struct limits_signal *s)
{
    if (m->r < 0 && m->t < 0 && m->q < 0)
        return;
    if (m->r >= 0 && (s->ietf_r < 0 || m->r < s->ietf_r)) {
        s->ietf_r = m->r;
        s->ietf_t = m->t;
    } else if (m->r < 0 && m->t >= 0 && s->ietf_t < 0) {
        s->ietf_t = m->t;
    }
    if (m->q >= 0 && s->ietf_q < 0) /* draft-07 "limit=100": no window known */
        s->ietf_q = m->q;
    s->families |= 1u << LIMITS_SRC_IETF;
}

/* RateLimit-Limit of the trio: "100" or "100, 100;w=60" (a quota policy). */
static void trio_limit(const char *p, const char *end, struct limits_signal *s)
{
    const char *e = memchr(p, ',', (size_t)(end - p));
    struct member m;
    if (member_parse(p, e ? e : end, &m) < 0 || m.bare < 0)
        return;
    s->trio_limit = m.bare;
    if (m.w > 0)
        s->trio_w = m.w;
    if (e) { /* a quota policy after the first member names the window */
        struct member pm;
        const char *n = e + 1;
        const char *e2 = memchr(n, ',', (size_t)(end - n));
        if (member_parse(n, e2 ? e2 : end, &pm) == 0 && pm.w > 0 && s->trio_w < 0)
            s->trio_w = pm.w;
    }
}

/* A Reset value: seconds from now; an epoch second (or millisecond) is turned into
 * one against now. -1 when malformed. */
static double reset_delta(double v, int64_t now_wall_ms)
{
    if (v < 0)
        return -1;
    if (v > EPOCH_MS)
        v /= 1000.0;
    if (v > EPOCH_S) {
        v -= (double)now_wall_ms / 1000.0;
        return v > 0 ? v : 0;
    }
    return v;
}

static int name_is(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n == k && strncasecmp(line, name, k) == 0;
}

int limits_signal_parse(const char *headers, int64_t now_wall_ms, struct limits_signal *s)
{
    memset(s, 0, sizeof *s);
    s->ietf_q = s->ietf_w = s->ietf_r = s->ietf_t = -1;
    s->trio_limit = s->trio_w = s->trio_remaining = s->trio_reset = -1;
    s->x_limit = s->x_remaining = s->x_reset = -1;
    s->shop_used = s->shop_size = -1;
    for (const char *p = headers; p && *p;) {
        const char *eol = strchr(p, '\n');
        const char *end = eol ? eol : p + strlen(p);
        while (end > p && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            end--;
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon) {
            size_t nn = (size_t)(colon - p);
            const char *v = colon + 1;
            if (name_is(p, nn, "RateLimit-Policy")) {
                list_each(v, end, s, policy_member);
            } else if (name_is(p, nn, "RateLimit")) {
                list_each(v, end, s, ratelimit_member);
            } else if (name_is(p, nn, "RateLimit-Limit")) {
                trio_limit(v, end, s);
            } else if (name_is(p, nn, "RateLimit-Remaining")) {
                s->trio_remaining = whole_number(v, end);
            } else if (name_is(p, nn, "RateLimit-Reset")) {
                s->trio_reset = whole_number(v, end); /* delta seconds in the trio */
            } else if (name_is(p, nn, "X-RateLimit-Limit")) {
                s->x_limit = whole_number(v, end);
            } else if (name_is(p, nn, "X-RateLimit-Remaining")) {
                s->x_remaining = whole_number(v, end);
            } else if (name_is(p, nn, "X-RateLimit-Reset")) {
                s->x_reset = reset_delta(whole_number(v, end), now_wall_ms);
            } else if (name_is(p, nn, "X-Shopify-Shop-Api-Call-Limit")) {
                const char *slash = memchr(v, '/', (size_t)(end - v));
                double used = slash ? whole_number(v, slash) : -1;
                double size = slash ? whole_number(slash + 1, end) : -1;
                if (used >= 0 && size >= 1 && used <= size * 2) {
                    s->shop_used = used;
                    s->shop_size = size;
                    s->families |= 1u << LIMITS_SRC_SHOPIFY;
                }
            }
        }
        p = eol ? eol + 1 : end + strlen(end);
    }
    /* a family counts when it says how much (a quota) or how much is left */
    if (s->trio_limit > 0 || s->trio_remaining >= 0)
        s->families |= 1u << LIMITS_SRC_TRIO;
    if (s->x_limit > 0 || s->x_remaining >= 0)
        s->families |= 1u << LIMITS_SRC_X;
    int n = 0;
    for (unsigned f = s->families; f; f &= f - 1)
        n++;
    return n;
}
