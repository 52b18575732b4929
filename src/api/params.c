/* params.c - parsers for query, path and header values; see params.h. */
#include "api/params.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/errors.h"

/* Parses all n bytes at s as [+-]?[0-9]+ (a sign only when sign_ok) into *out.
 * Returns 0, or -1 on anything else or on overflow. Not strtoll(): it also takes
 * leading white space ("limit=%205"), and saturates instead of failing. */
static int parse_decimal(const char *s, size_t n, int sign_ok, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (sign_ok && n > 0 && (s[0] == '+' || s[0] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return -1;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v; /* 0 - 2^63 wraps to INT64_MIN */
    return 0;
}

int api_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    int64_t v;
    if (parse_decimal(s, strlen(s), 1, &v) < 0 || v < min || v > max)
        return -SLUICE_E_INVALID_PARAMETER;
    *out = v;
    return 0;
}

int api_parse_index(const char *s, int64_t *out)
{
    return parse_decimal(s, strlen(s), 0, out) < 0 ? -SLUICE_E_INVALID_PARAMETER : 0;
}

int api_parse_if_match(const char *h, int64_t *version)
{
    size_t n = strlen(h);
    int weak = n >= 2 && h[0] == 'W' && h[1] == '/', rc;
    if (weak)
        h += 2, n -= 2;
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"')
        rc = parse_decimal(h + 1, n - 2, 0, version);
    else /* a bare N, never weak */
        rc = weak ? -1 : parse_decimal(h, n, 0, version);
    return rc < 0 ? -SLUICE_E_INVALID_PARAMETER : 0;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 7240: Prefer = 1#preference, preference = token [BWS "=" BWS word]
 * *(OWS ";" [OWS parameter]); wait = "wait" BWS "=" BWS delta-seconds. Preference
 * names compare case-insensitively; the first "wait" counts, and a value that is not
 * delta-seconds (digits, here also quoted) makes it none. */
int64_t api_parse_prefer_wait(const char *prefer, int64_t max)
{
    for (const char *p = prefer; p && *p; p += *p == ',') {
        const char *end = p + strcspn(p, ",");
        while (p < end && is_ows(*p))
            p++;
        const char *name = p;
        while (p < end && *p != '=' && *p != ';' && !is_ows(*p))
            p++;
        if (p - name != 4 || strncasecmp(name, "wait", 4) != 0) {
            p = end;
            continue;
        }
        while (p < end && is_ows(*p))
            p++;
        if (p == end || *p++ != '=')
            return 0;
        while (p < end && is_ows(*p))
            p++;
        const char *v = p, *ve = v + strcspn(v, ";,");
        while (ve > v && is_ows(ve[-1]))
            ve--;
        if (ve - v >= 2 && *v == '"' && ve[-1] == '"')
            v++, ve--;
        if (v == ve)
            return 0;
        int64_t n = 0;
        for (; v < ve; v++) {
            if (*v < '0' || *v > '9')
                return 0;
            if (n <= max) /* saturates: any larger value means max */
                n = n * 10 + (*v - '0');
        }
        return n > max ? max : n;
    }
    return 0;
}

int api_etag_listed(const char *inm, const char *etag)
{
    size_t n = strlen(etag);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if ((size_t)(last - p) == n && memcmp(p, etag, n) == 0)
            return 1;
        p = end;
    }
    return 0;
}
