/* route.h - one row of the route table (src/api/routes.c holds the table).
 *
 * pattern is a path with {name} parameters; a parameter matches one path segment up
 * to '/' or up to the literal that follows it in the pattern ("/v1/jobs/{id}:cancel").
 * Routes are tried top to bottom; the first match wins. A path that matches some
 * pattern with another method answers 405. */
#ifndef SLUICE_ROUTE_H
#define SLUICE_ROUTE_H

#include <stddef.h>

#include "http/request.h"

enum route_flags {
    ROUTE_AUTH = 1,        /* needs a valid API key (the server's auth hook) */
    ROUTE_STREAM_BODY = 2, /* body delivered chunk by chunk to on_body, not buffered */
};

struct route {
    const char *method;
    const char *pattern;
    /* Called once the whole body was received (or consumed by on_body); must reply,
     * unless on_body already did. */
    void (*handler)(struct request *req);
    int flags;
    /* ROUTE_STREAM_BODY only: each chunk as it arrives. Return 0 to go on; on an
     * error, call reply_*() and return -1: the rest of the body is discarded. */
    int (*on_body)(struct request *req, const char *data, size_t len);
    /* Optional: called when the request ends for any reason (complete, error,
     * client gone), to release req_ctx(). */
    void (*on_end)(struct request *req, int completed);
    /* Optional: what the handler serves, when one handler serves several routes
     * (req_route_arg); rows without it leave it NULL. */
    const void *arg;
};

/* Authentication hook: checks the request's credentials; returns 0 and calls
 * req_set_tenant(), or replies with an error itself and returns -1. */
typedef int (*http_auth_fn)(struct request *req);

/* ---- matching a path against a pattern (route.c; pure, no libmicrohttpd) ------- */

#define ROUTE_MAX_PARAMS 8

/* The {name} parameters of a matched path: heap copies, in pattern order. */
struct route_params {
    int n;
    char *name[ROUTE_MAX_PARAMS];
    char *value[ROUTE_MAX_PARAMS]; /* percent-decoded, non-empty UTF-8 text without NUL */
};

/* Matches path (raw: not percent-decoded, no query) against pattern (a well-formed
 * route pattern from the table: every '{' closed by a '}'). A parameter matches one or
 * more bytes up to '/', the end, or the literal byte after it in the pattern.
 * params: NULL to check the shape only; else [out] the decoded parameters (params->n
 *   = 0 unless the result is 1; release with route_params_release()). Parameters past
 *   ROUTE_MAX_PARAMS are matched but not stored.
 * Returns 1 when path matches, 0 when it does not, -1 when it has the shape of pattern
 * but a parameter is not valid percent-encoded UTF-8 text (or encodes NUL); with
 * params NULL a shape match returns 1. Reentrant; allocates only into params. */
int route_match(const char *pattern, const char *path, struct route_params *params);
/* Frees the copies in p and sets p->n to 0. */
void route_params_release(struct route_params *p);

#endif
