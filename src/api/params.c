/* params.c - parsers for query, path and header values; see params.h. */
#include "api/params.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"

int api_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (!*s || *end || errno || n < min || n > max)
        return -SLUICE_E_INVALID_PARAMETER;
    *out = n;
    return 0;
}

int api_parse_index(const char *s, int64_t *out)
{
    char *end;
    long long idx = strtoll(s, &end, 10);
    if (*end || idx < 0 || s[0] == '-' || s[0] == '+')
        return -SLUICE_E_INVALID_PARAMETER;
    *out = idx;
    return 0;
}

int api_parse_if_match(const char *h, int64_t *version)
{
    if (h[0] == 'W' && h[1] == '/')
        h += 2;
    if (*h == '"')
        h++;
    char *end;
    long long v = strtoll(h, &end, 10);
    if (end == h || v < 0 || (*end && !(*end == '"' && end[1] == '\0')))
        return -SLUICE_E_INVALID_PARAMETER;
    *version = v;
    return 0;
}

int64_t api_parse_prefer_wait(const char *prefer, int64_t max)
{
    const char *w = prefer ? strstr(prefer, "wait=") : NULL;
    if (!w)
        return 0;
    char *end;
    long long n = strtoll(w + 5, &end, 10);
    return end != w + 5 && n > 0 ? (n > max ? max : n) : 0;
}
