/* http_client.h - a small blocking HTTP client over libcurl.
 *
 * The only layer that includes <curl/curl.h> is src/outbound/; everything else talks
 * HTTP through this contract. A struct http_client wraps one CURL easy handle that is
 * reused for every request, so consecutive requests to the same server share one
 * keep-alive connection (curl_easy_reset keeps live connections and the DNS cache).
 *
 * A request body comes either from memory or from a read callback (streamed: with a
 * known length it is sent with Content-Length, otherwise chunked). A response body
 * goes into resp->body, or - for 2xx answers only - to a write callback as it
 * arrives, so an error body is always available in resp->body for reporting.
 *
 * Responses are asked for gzip-compressed (Accept-Encoding: gzip); libcurl decodes
 * them, so callers see the plain body. Redirects are not followed. "Expect: 100-continue" is never
 * sent (it would cost a round trip, or a one second stall against servers that ignore it).
 *
 * Thread-safety: one client per thread; distinct clients may be used concurrently. */
#ifndef SLUICE_HTTP_CLIENT_H
#define SLUICE_HTTP_CLIENT_H

#include <stddef.h>

#include "util/buf.h"

/* Returned by a read callback to abort the transfer (the request then fails). */
#define HTTP_READ_ABORT ((size_t)-1)

/* Fills dst with up to cap bytes of request body. Returns the number of bytes
 * written, 0 at the end of the body, or HTTP_READ_ABORT on error. */
typedef size_t http_read_fn(void *ctx, char *dst, size_t cap);

/* Receives n bytes of a 2xx response body. Returns 0 to go on, negative to abort
 * (the request then fails with -SLUICE_E_INTERNAL and errmsg "write aborted"). */
typedef int http_write_fn(void *ctx, const char *data, size_t n);

struct http_request {
    const char *method;       /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *url;          /* absolute http:// or https:// URL */
    const char *bearer;       /* API key for "Authorization: Bearer"; NULL = none */
    const char *content_type; /* request Content-Type; NULL = none */
    const char *accept;       /* Accept header; NULL = none */

    /* Body, at most one of the two sources. Neither: no body. */
    const char *body; /* in memory, body_len bytes (may be "" with len 0) */
    size_t body_len;
    http_read_fn *read; /* streamed: called until it returns 0 */
    void *read_ctx;
    long long read_len; /* streamed body length, or -1 = unknown (chunked) */

    /* Where a 2xx response body goes: NULL = into resp->body. */
    http_write_fn *write;
    void *write_ctx;

    long connect_timeout_ms; /* 0 = 10 s */
    long timeout_ms;         /* whole request; 0 = none (long uploads and streams) */
};

struct http_response {
    long status;    /* HTTP status of the final response, 0 if none arrived */
    char *location; /* heap copies of these headers, NULL when absent */
    char *retry_after;
    char *content_type;
    struct buf body; /* the body unless streamed to req->write (2xx only) */
};

struct http_client;

/* Creates a client. [out] *out; free with http_client_free(). Returns 0 or
 * -SLUICE_E_INTERNAL when libcurl cannot be initialised. */
int http_client_new(struct http_client **out);
/* Closes the connection and frees the client; NULL is a no-op. */
void http_client_free(struct http_client *c);

/* Prepares an empty response; release it with http_response_release(). */
void http_response_init(struct http_response *r);
/* Frees the response's heap fields and re-initialises it. */
void http_response_release(struct http_response *r);

/* Performs req and fills resp (which must be initialised; previous contents are
 * released first). Any HTTP status counts as success here: the caller inspects
 * resp->status. Returns 0 when a response arrived, else a negative code:
 *   -SLUICE_E_INVALID_PARAMETER  bad request fields or malformed/unsupported URL;
 *   -SLUICE_E_INTERNAL           transport failure (connect, timeout, reset, a
 *                                callback aborted).
 * [out] *errmsg (may be NULL): on failure a heap string with curl's message; caller
 * frees with free(). On success *errmsg is set to NULL. */
int http_client_do(struct http_client *c, const struct http_request *req,
                   struct http_response *resp, char **errmsg);

#endif
