/* route.c - matching a request path against a route pattern; see route.h.
 *
 * Kept apart from server.c, which owns libmicrohttpd, so that the matcher and the
 * decoding of path parameters are pure functions tests and fuzz targets call directly
 * (tests/fuzz/fuzz_request.c). */
#include "http/route.h"

#include <stdlib.h>
#include <string.h>

#include "util/url.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

void route_params_release(struct route_params *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->name[i]);
        free(p->value[i]);
    }
    p->n = 0;
}

int route_match(const char *pattern, const char *path, struct route_params *params)
{
    const char *p = pattern, *s = path;
    int bad = 0;
    if (params)
        params->n = 0;
    while (*p) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            char stop = close[1]; /* literal after the parameter, or '\0' / '/' */
            const char *start = s;
            while (*s && *s != '/' && *s != stop)
                s++;
            if (s == start)
                goto nomatch;
            if (params && !bad && params->n < ROUTE_MAX_PARAMS) {
                char *v = xstrndup(start, (size_t)(s - start));
                long vlen = url_decode(v, 0);
                if (vlen <= 0 || !utf8_valid_text(v, (size_t)vlen)) {
                    free(v);
                    bad = 1; /* keep matching: a path of another shape is a 404 */
                } else {
                    params->name[params->n] = xstrndup(p + 1, (size_t)(close - p - 1));
                    params->value[params->n] = v;
                    params->n++;
                }
            }
            p = close + 1;
        } else {
            if (*p != *s)
                goto nomatch;
            p++;
            s++;
        }
    }
    if (*s != '\0')
        goto nomatch;
    if (bad) {
        route_params_release(params);
        return -1;
    }
    return 1;
nomatch:
    if (params)
        route_params_release(params);
    return 0;
}
