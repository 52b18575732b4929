/* request.h - what a handler sees of an HTTP request, and how it answers.
 *
 * This is the boundary between the HTTP server (src/http, the only code that knows
 * libmicrohttpd) and the handlers (src/api). A handler receives a struct request,
 * reads method, path parameters, query, headers and body through it, and ends by
 * calling exactly one reply_*() function. The server answers 500 and logs a bug if
 * a handler returns without replying.
 *
 * Lifetimes: every pointer obtained from a request (params, query values, headers,
 * body, req_strdup results) stays valid until the request ends, and is freed by the
 * server. Handlers free nothing they got from here. One request is handled by one
 * thread at a time. */
#ifndef SLUICE_REQUEST_H
#define SLUICE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct request;

/* Streams a response body: write up to max bytes into out, return the count, 0 at
 * the end, -1 on an error (the connection is closed), or REPLY_READER_SUSPENDED after
 * req_suspend_stream() when there is nothing to send yet. Called from the server
 * thread. */
#define REPLY_READER_SUSPENDED (-2)
typedef long (*reply_reader_fn)(void *ctx, char *out, size_t max);
typedef void (*reply_free_fn)(void *ctx);

const char *req_method(const struct request *req);
const char *req_path(const struct request *req);
/* The matched route's arg (struct route), NULL when it has none. */
const void *req_route_arg(const struct request *req);
/* A path parameter from the route pattern ("{id}"), percent-decoded; NULL if absent. */
const char *req_param(const struct request *req, const char *name);
/* A query parameter, percent-decoded; NULL if absent. */
const char *req_query(const struct request *req, const char *name);
/* A request header (case-insensitive name); NULL if absent. */
const char *req_header(const struct request *req, const char *name);
/* The whole body of a buffered route (NUL-terminated; len may be NULL). "" if none. */
const char *req_body(const struct request *req, size_t *len);
/* Tenant authenticated for this request ("" for routes without auth). */
const char *req_tenant(const struct request *req);
/* The request id (X-Request-Id): the client's if it sent a sane one, else generated. */
const char *req_id(const struct request *req);
/* Absolute base URL of this server as the client addressed it ("http://host:port"). */
const char *req_base_url(const struct request *req);
/* The client's IP address as text ("192.0.2.7", "2001:db8::1"; an IPv4-mapped IPv6
 * peer is shown as IPv4); "" if unknown. The TCP peer: no proxy header is trusted. */
const char *req_client_ip(const struct request *req);
/* Application context given to the server at start (the api layer's state). */
void *req_app(const struct request *req);
/* Handler-owned per-request state for streamed bodies; free it in the route's on_end. */
void *req_ctx(const struct request *req);
void req_set_ctx(struct request *req, void *ctx);
/* A copy of s living as long as the request. */
char *req_strdup(struct request *req, const char *s);
/* Sets the tenant; used by the authentication hook. */
void req_set_tenant(struct request *req, const char *tenant);
/* Nonzero once a reply was queued. */
int req_replied(const struct request *req);

/* ---- waiting without a thread (long polling, event streams) --------------------
 * A parked request holds no server thread: its connection leaves the event loop
 * until req_resume(). While parked, a client that goes away is noticed only on
 * resume, so whoever parks a request must resume it by a deadline. */

/* Parks the request instead of replying: call from a handler, which then returns
 * without a reply. When req_resume() is called, the server calls on_resume(req) on
 * a server thread, which replies (or parks again). */
void req_park(struct request *req, void (*on_resume)(struct request *req));
/* From a reply_stream reader that has nothing to send now: suspends the connection;
 * the reader then returns 0 and is called again after req_resume(). */
void req_suspend_stream(struct request *req);
/* One request-scoped note for a parked handler's continuation (e.g. the job id it
 * waits for); copied, freed with the request. */
void req_set_note(struct request *req, const char *note);
const char *req_note(const struct request *req);
/* Resumes a parked request or a suspended stream. Thread-safe; call exactly once
 * per park/suspend. */
void req_resume(struct request *req);
/* Runs fn(req) once when the request ends, however it ends (reply sent, client
 * gone, connection cut), on a server thread, before the request is freed: where a
 * handler gives back a slot it took. One per request; a second call replaces it. */
void req_at_end(struct request *req, void (*fn)(struct request *req));

/* Adds a response header to the reply that will be sent (call before reply_*()). */
void reply_header(struct request *req, const char *name, const char *value);
/* Sends body (JSON text, len bytes) with status; Content-Type application/json. */
void reply_json(struct request *req, int status, const char *body, size_t len);
/* Sends the contents of b (which is reset, storage kept by the caller).
 *
 * reply_json, reply_buf and reply_stream gzip the body when the request's
 * Accept-Encoding accepts gzip, the media type is text (JSON, NDJSON, every text type but
 * text/event-stream) and a whole body has at least ENCODING_MIN_BYTES (http/encoding.h);
 * they then add Content-Encoding: gzip and turn a strong ETag set with reply_header into
 * its weak form, and add Vary: Accept-Encoding whenever the coding depended on it. */
void reply_buf(struct request *req, int status, const char *content_type, struct buf *b);
/* Sends the one error body {"error":{"code","message","target"}} for sluice error err
 * (positive or negative), with its status. message NULL = the table's message;
 * target NULL = "target": null. Sets Retry-After on 503 (a 429's caller sets its own).
 * No other error gets Retry-After: generic clients retry any error that carries it. */
void reply_error(struct request *req, int err, const char *target, const char *message);
/* reply_error with code (not NULL) in the body instead of err's own: an error whose
 * code is not the server's but a workflow step's (a synchronous run's), answered with
 * err's status. */
void reply_error_code(struct request *req, int err, const char *code, const char *target,
                      const char *message);
/* printf-style message variant of reply_error. */
void reply_errorf(struct request *req, int err, const char *target, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sends an empty body with status (204, 200 ...). */
void reply_empty(struct request *req, int status);
/* 304 Not Modified for a representation of len bytes of content_type: with the ETag
 * form and Vary the 200 would have carried (see reply_buf). */
void reply_not_modified(struct request *req, const char *content_type, size_t len);
/* Streams a body produced by reader; free_fn(ctx) is called when done (also on abort). */
void reply_stream(struct request *req, int status, const char *content_type, reply_reader_fn reader,
                  void *ctx, reply_free_fn free_fn);

#endif
