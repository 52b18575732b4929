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
};

/* Authentication hook: checks the request's credentials; returns 0 and calls
 * req_set_tenant(), or replies with an error itself and returns -1. */
typedef int (*http_auth_fn)(struct request *req);

#endif
