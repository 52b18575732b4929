/* outbound.h - the outbound request engine: many HTTP calls in flight, few threads.
 *
 * One I/O thread drives a libcurl multi handle, so thousands of requests can be in
 * flight without a thread each. Worker threads hand it a batch with outbound_run()
 * and block until every request of the batch has its final outcome. Retries and the
 * waits between them happen on the I/O thread (timers), never in a sleeping worker.
 *
 * Per request:
 *   - every attempt sends "Idempotency-Key: <idempotency_key>", the same on each;
 *   - an attempt fails over to the next one on connect/DNS errors, timeouts, a
 *     dropped connection, 408, 429 and 5xx, up to max_attempts; the wait is
 *     exponential backoff with full jitter (random in [0, min(max_backoff_ms,
 *     backoff_ms * 2^(failures-1))]), or Retry-After (delta seconds or HTTP date)
 *     on 429/503 when the server sends one. A Retry-After longer than
 *     outbound_config.max_retry_after_ms ends the request instead of waiting
 *     (failure OUTBOUND_RETRY_AFTER_TOO_LONG, the 429/503 response returned);
 *   - timeout_ms bounds each attempt (connect included), not the whole request;
 *   - redirects are never followed: a 3xx is returned as is, with its Location;
 *   - only http:// and https:// URLs; no proxy, whatever the environment says;
 *   - the response body is kept up to outbound_config.max_body bytes; a longer body
 *     is cut there (body_truncated = 1) and the rest is not downloaded;
 *   - SSRF guard: every address libcurl is about to connect to - after resolution,
 *     before the first packet - goes through netpolicy_check() (netpolicy.h). A
 *     refused target fails at once, is not retried, error -SLUICE_E_INVALID_PARAMETER
 *     and message "target address 127.0.0.1 is not allowed (loopback)".
 *
 * Nothing is logged per request (the caller records events from the responses); only
 * failures of the engine itself go to util/log.h.
 *
 * Lifecycle: outbound_start() -> outbound_run() from any threads -> outbound_stop()
 * (fails what is outstanding, joins the thread; later runs fail at once) ->
 * outbound_free() once no thread can call outbound_run() any more. */
#ifndef SLUICE_OUTBOUND_H
#define SLUICE_OUTBOUND_H

#include <stddef.h>
#include <stdint.h>

struct outbound_config {
    /* NULL-terminated allowlist: host names ("api.example.com", "*.example.com") and
     * CIDRs ("10.0.0.0/8", "127.0.0.1/32", "::1/128"); see netpolicy.h. NULL or
     * empty: any address outside the blocked ranges. Non-empty: ONLY these. */
    const char *const *allow;
    size_t max_body;         /* response body bytes kept; 0 = 1 MiB */
    unsigned max_in_flight;  /* attempts on the wire at once; 0 = 256 */
    long max_retry_after_ms; /* longest Retry-After waited for; 0 = 60000 */
    const char *user_agent;  /* User-Agent header; NULL = "sluice" */
};

struct outbound_request {
    const char *method; /* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", ...;
                           NULL = POST when body != NULL, else GET */
    const char *url;    /* absolute http:// or https:// URL */
    /* Extra headers "Name: value", NULL-terminated; may be NULL. Without a
     * Content-Type and with a body, "Content-Type: application/json" is sent. A
     * header named Idempotency-Key here is dropped when idempotency_key is set. */
    const char *const *headers;
    const char *body; /* body_len bytes sent as is; NULL = no body (a POST, PUT or
                         PATCH then sends an empty one) */
    size_t body_len;
    long timeout_ms;             /* per attempt, connect included; <= 0 = 30000 */
    long connect_timeout_ms;     /* per attempt; <= 0 = timeout_ms */
    int max_attempts;            /* attempts in all, first included; <= 0 = 1 */
    long backoff_ms;             /* base of the exponential backoff; <= 0 = retry at once */
    long max_backoff_ms;         /* cap of one backoff wait; <= 0 = 30000 */
    const char *idempotency_key; /* sent as Idempotency-Key on every attempt; NULL = none */
    /* Pacing, optional (engine/limits.h). The callbacks' host is the request's origin,
     * "host:port": the URL's host (IPv6 without brackets), ':', its port or the scheme's
     * default - the host is what precedes the last ':'. Before each attempt the I/O
     * thread asks pace(pace_ctx, host, now, &hold) for the monotonic ms the attempt may start at
     * and, if later, waits on a timer and asks again (hold: 0 before an attempt's
     * first ask, then pace's own). The wait is not an attempt; it counts in total_ms.
     * A 429/503 with a Retry-After calls pace_backoff(pace_ctx, host, until) so that
     * everything sharing the pace waits too. Both run on the I/O thread: be quick. */
    int64_t (*pace)(void *ctx, const char *host, int64_t now_mono, int64_t *hold);
    void (*pace_backoff)(void *ctx, const char *host, int64_t until_mono);
    /* Optional: every attempt's end is told to pace_observe(pace_ctx, host, status,
     * timed_out, headers, sent_mono): status 0 when no response arrived (timed_out 1
     * when the attempt timed out), headers the response's rate-limit header lines
     * ("Name: value\n": RateLimit*, X-RateLimit-*, X-Shopify-Shop-Api-Call-Limit,
     * Retry-After; "" when none), sent_mono when the attempt started. I/O thread. */
    void (*pace_observe)(void *ctx, const char *host, int status, int timed_out,
                         const char *headers, int64_t sent_mono);
    void *pace_ctx;
    /* Monotonic ms (util/clock.h clock_mono_ms) by which the request must end; 0 =
     * none. An attempt's timeout is cut to what is left, and no retry starts past
     * it: the request ends with the last attempt's outcome (OUTBOUND_TIMEOUT when it
     * was a transport failure). Synchronous runs pass their total deadline here. */
    int64_t deadline_mono;
    /* Order, optional: another request of the same outbound_run() array, at a lower
     * index, that must reach its final outcome (after all its attempts) before this
     * one's first attempt starts; NULL = none. Requests naming one another form
     * chains: items that share a ref reach their upstream one after another, in input
     * order, while the rest of the batch runs concurrently. When the earlier request
     * was refused before it started (invalid), this one starts at once. */
    const struct outbound_request *after;
};

/* Why a request ended; OUTBOUND_OK means "the server's own answer is in status".
 * outbound_failure_name() gives the stable snake_case name for events and logs. */
enum outbound_failure {
    OUTBOUND_OK = 0,               /* a final response arrived (any status) */
    OUTBOUND_RETRY_AFTER_TOO_LONG, /* 429/503 asked for a wait above the limit; the
                                      response is returned, error stays 0 */
    OUTBOUND_TIMEOUT,              /* the last attempt timed out */
    OUTBOUND_RESOLVE_FAILED,       /* host name did not resolve */
    OUTBOUND_CONNECT_FAILED,       /* TCP connect refused or unreachable */
    OUTBOUND_CONNECTION_FAILED,    /* connection reset, closed without an answer, or
                                      garbage instead of HTTP */
    OUTBOUND_TLS_FAILED,           /* handshake or certificate verification failed */
    OUTBOUND_NOT_ALLOWED,          /* SSRF guard refused the resolved address */
    OUTBOUND_INVALID_REQUEST,      /* bad URL, scheme, method or header; never sent */
    OUTBOUND_SHUTTING_DOWN,        /* outbound_stop() ended it */
    OUTBOUND_INTERNAL              /* libcurl failed in an unexpected way */
};

struct outbound_response {
    /* HTTP status of the last response; 0 if none arrived. */
    int status;
    /* Attempts started; 0 when the request ended before its first attempt (invalid
     * request, engine stopped). */
    int attempts;
    long latency_ms; /* duration of the last attempt */
    long total_ms;   /* from submission to the end, queueing and waits included */
    /* Last response's body: NUL-terminated heap copy of body_len bytes; NULL when no
     * response arrived. body_truncated is 1 when it was longer than max_body and cut
     * there (the rest was not downloaded). */
    char *body;
    size_t body_len;
    int body_truncated;
    /* Headers of the last response, heap copies; NULL when absent. location is the
     * Location header as sent (redirects are not followed). */
    char *content_type;
    char *location;
    /* Retry-After of the last response in ms (delta seconds or HTTP date); -1 when
     * absent or unparseable. */
    long retry_after_ms;
    /* 0 when status holds the final response (which may still be a 4xx/5xx after
     * max_attempts, or the 429/503 of OUTBOUND_RETRY_AFTER_TOO_LONG); else negative:
     * -SLUICE_E_INVALID_PARAMETER (OUTBOUND_NOT_ALLOWED, OUTBOUND_INVALID_REQUEST),
     * -SLUICE_E_SHUTTING_DOWN, or -SLUICE_E_INTERNAL (transport failures). */
    int error;
    enum outbound_failure failure; /* why it ended, finer than error */
    /* 1 when it ended unanswered because of the caller's deadline_mono: the deadline
     * came, or the next attempt or the limit's slot would start past it. The outcome
     * then says nothing about the request, only that time ran out. */
    int deadline_reached;
    /* Human-readable reason when failure != OUTBOUND_OK or a retryable status was
     * still there after max_attempts ("HTTP 500 after 3 attempts"); else "". */
    char message[256];
    int64_t started_at;  /* wall ms: submission, or for a request with `after` the
                            moment the earlier one ended; total_ms counts from here */
    int64_t finished_at; /* wall ms: final outcome */
};

struct outbound;

/* Starts the I/O thread. cfg is copied (allowlist included); it need not outlive the
 * call. [out] *out. Returns 0; -SLUICE_E_INVALID_PARAMETER for a malformed
 * allowlist entry (logged with the entry); -SLUICE_E_INTERNAL when libcurl or the
 * thread cannot be set up. */
int outbound_start(const struct outbound_config *cfg, struct outbound **out);

/* Performs n requests concurrently and blocks until each has its final outcome in
 * the resps entry of the same index. reqs (and everything it points to) must stay
 * valid and unchanged until the call returns. resps need no initialisation: each is
 * overwritten (not freed) and must be released with outbound_response_release().
 * Thread-safe: any number of threads may run batches at once.
 * Returns 0 once all n responses are filled - whatever their outcome; requests
 * issued after outbound_stop() end with OUTBOUND_SHUTTING_DOWN. Returns
 * -SLUICE_E_INVALID_PARAMETER (responses untouched) when ob is NULL or reqs/resps
 * are NULL with n > 0. */
int outbound_run(struct outbound *ob, const struct outbound_request *reqs,
                 struct outbound_response *resps, size_t n);

/* Frees the response's heap fields and resets it to an empty response. */
void outbound_response_release(struct outbound_response *r);

/* Fails every outstanding request with OUTBOUND_SHUTTING_DOWN, joins the I/O thread
 * and waits until every outbound_run() in progress has returned. Later
 * outbound_run() calls fail at once. ob stays valid; idempotent, but call it from
 * one thread at a time (it is the owner's, like outbound_free()). */
void outbound_stop(struct outbound *ob);

/* Stops (if not yet) and frees the engine; NULL is a no-op. No thread may call
 * outbound_run() on ob any more. */
void outbound_free(struct outbound *ob);

/* Stable name of a failure ("ok", "timeout", "destination_not_allowed", ...). */
const char *outbound_failure_name(enum outbound_failure f);

/* --- Pure helpers, public for the unit tests ----------------------------------- */

/* Full-jitter backoff before attempt failures+1: rnd mapped into
 * [0, min(max_ms, base_ms * 2^(failures-1))]. failures >= 1; base_ms <= 0 gives 0. */
long outbound_backoff_ms(int failures, long base_ms, long max_ms, uint64_t rnd);

/* Parses a Retry-After value: delta seconds ("120") or an HTTP date ("Wed, 21 Oct
 * 2015 07:28:00 GMT", judged against now_wall_ms; a past date gives 0).
 * [out] *out_ms. Returns 0, or -SLUICE_E_INVALID_PARAMETER when unparseable. */
int outbound_parse_retry_after(const char *value, int64_t now_wall_ms, long *out_ms);

#endif
