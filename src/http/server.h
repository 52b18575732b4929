/* server.h - the HTTP server (libmicrohttpd), routing and request lifecycle.
 *
 * DESIGN
 * One MHD daemon with an internal thread pool (poll; server.c says why not epoll). For
 * each request the server matches the route table, checks Content-Length sanity,
 * authenticates through the hook, buffers the body (or streams it to the route's
 * on_body), calls the handler and queues the reply the handler built. Replies are
 * queued only after the first access-handler call (MHD drops keep-alive otherwise:
 * machine-notes.md). Every request gets an id (X-Request-Id) and one JSON log line
 * when it ends. */
#ifndef SLUICE_HTTP_SERVER_H
#define SLUICE_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "http/route.h"

struct http_config {
    const char *host;           /* listen address, e.g. "127.0.0.1" */
    uint16_t port;              /* 0 = pick a free port (see http_server_port) */
    unsigned threads;           /* MHD thread pool size */
    size_t max_body;            /* buffered routes: largest body accepted (413 beyond) */
    uint64_t max_stream_body;   /* streamed routes: largest body accepted (413 beyond) */
    unsigned idle_timeout_s;    /* connection idle timeout */
    unsigned max_connections;   /* total connection cap */
    unsigned max_per_ip;        /* per-IP connection cap (0 = none) */
    unsigned request_timeout_s; /* a connection owing request headers longer is cut, and a
                                   request older has to have sent min_body_rate bytes/s on
                                   average; 0 = no deadline */
    unsigned min_body_rate;     /* bytes/s; 0 = no minimum */
    size_t max_header_bytes;    /* request header block (field lines); 431 beyond */
    size_t max_url_bytes;       /* request target (path and query); 414 beyond */
    unsigned max_query_params;  /* query parameters; 414 beyond */
};

struct http_server;

/* Starts serving routes[0..n) with app as req_app(). auth may be NULL when no route
 * has ROUTE_AUTH. [out] *srv; stop with http_server_stop(). Returns 0 or
 * -SLUICE_E_INTERNAL (e.g. address in use; the reason is logged). */
int http_server_start(const struct http_config *cfg, const struct route *routes, size_t n,
                      http_auth_fn auth, void *app, struct http_server **srv);
/* The port actually bound. */
uint16_t http_server_port(const struct http_server *srv);
/* Stops accepting new connections; requests in progress go on. */
void http_server_quiesce(struct http_server *srv);
/* Closes all connections and frees the server. */
void http_server_stop(struct http_server *srv);

#endif
