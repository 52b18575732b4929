/* outbound.c - the outbound request engine behind outbound.h.
 *
 * DESIGN
 * One I/O thread owns a CURLM multi handle and every request's state (struct call)
 * while it is in the engine. Workers enter through outbound_run(): they validate and
 * prepare their calls, push them on the submission list under ob->mu, wake the I/O
 * thread with curl_multi_wakeup() and wait on their batch's condition variable. The
 * I/O thread loops:
 *
 *     take submissions -> ready queue          (under mu, O(1) splice)
 *     due retry timers -> ready queue          (binary min-heap on monotonic time)
 *     ready -> curl easy handles in the multi  (at most max_in_flight at once)
 *     curl_multi_perform + info_read           (finished attempts: done or retry)
 *     curl_multi_poll until the next curl timeout, retry timer or wakeup
 *
 * A finished attempt either schedules the next one on the timer heap or completes
 * the call: the response is filled, the call's resources freed, and the batch's
 * counter decremented under mu (the last one signals the worker). After that the
 * I/O thread never touches the call again, so the worker may free it.
 *
 * SSRF: the policy check runs in CURLOPT_OPENSOCKETFUNCTION, which libcurl calls with
 * the resolved address before creating the socket (checked with curl 7.88.1: it sees
 * 127.0.0.1 for "2130706433", "0x7f.1", "127.1", "0" gives 0.0.0.0, "localhost" gives
 * both 127.0.0.1 and ::1, "[::ffff:127.0.0.1]" the mapped address). Refusing there
 * means no packet reaches the target. CURLOPT_PREREQFUNCTION (7.80+) was rejected:
 * it runs after the TCP connect (a canary listener accepted the connection) and
 * reports "0" as 127.0.0.1. A refusal surfaces from libcurl as a plain
 * CURLE_COULDNT_CONNECT, so the callback records it in the call to tell the two
 * apart. Connections are only reused for the same host name within this multi
 * handle, whose policy never changes, so a reused connection was checked when it
 * was opened. The URL is parsed once into a CURLU that both the policy (host name
 * for host allowlist entries) and the transfer (CURLOPT_CURLU) use, so the two
 * cannot disagree about the host. */
#include "outbound/outbound.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "outbound/netpolicy.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define DEFAULT_MAX_BODY ((size_t)1 << 20)
#define DEFAULT_MAX_IN_FLIGHT 256u
#define DEFAULT_MAX_RETRY_AFTER_MS 60000L
#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_BACKOFF_MS 30000L
#define MAX_HEADER_VALUE 4096 /* longest Content-Type/Location/Retry-After kept */
#define POLL_CAP_MS 1000      /* the loop wakes at least this often */

/* A worker's batch: the worker waits on done until remaining is 0 (under ob->mu). */
struct batch {
    pthread_cond_t done;
    size_t remaining;
};

/* One request while it is in the engine. Owned by the I/O thread from submission to
 * completion; by the worker before and after. */
struct call {
    struct outbound *ob;
    struct batch *batch;
    const struct outbound_request *req;
    struct outbound_response *resp;
    struct call *next;              /* submission / ready queue link */
    struct call *waiters;           /* calls whose `after` is this one, not yet started */
    struct call *wait_next;         /* link in the waiters list of the earlier call */
    int queued;                     /* prepared and counted in batch->remaining */
    struct call *fl_prev, *fl_next; /* in-flight list */
    int64_t submit_mono;
    int64_t attempt_mono;
    int64_t due_mono; /* when waiting for a retry (or for its pace slot) */
    int max_attempts;
    int64_t pace_hold; /* the next attempt's pace slot (see outbound_request.pace) */

    CURLU *url;   /* parsed once; the transfer uses it too */
    char *host;   /* URL host, brackets removed */
    char *origin; /* host ":" port (the scheme's default when the URL has none): what
                     pacing is told */
    const char *method;
    struct curl_slist *headers;
    CURL *easy; /* the attempt in flight, or NULL */

    struct buf body;
    int capped; /* body hit max_body; the transfer was cut */
    char *ctype, *location, *retry_after;
    struct buf rl; /* rate-limit header lines of this attempt's response (pace_observe) */
    int refused;   /* the policy refused an address this attempt */
    char refusal[256];
    char errbuf[CURL_ERROR_SIZE];
};

struct outbound {
    CURLM *multi;
    struct netpolicy *policy;
    size_t max_body;
    unsigned max_in_flight;
    long max_retry_after_ms;
    char *user_agent;
    pthread_t thread;
    int thread_started;

    pthread_mutex_t mu;
    pthread_cond_t idle;              /* active_runs fell to 0 */
    struct call *sub_head, *sub_tail; /* guarded by mu */
    int stopping;                     /* guarded by mu */
    unsigned active_runs;             /* outbound_run() calls waiting; guarded by mu */
    int stopped;                      /* outbound_stop() finished; stop's caller only */

    /* I/O thread only. */
    struct call *ready_head, *ready_tail;
    struct call *in_flight_list;
    unsigned in_flight;
    struct call **timers; /* min-heap by due_mono */
    size_t ntimers, timers_cap;
    uint64_t rng;
};

static const char *const failure_names[] = {
    [OUTBOUND_OK] = "ok",
    [OUTBOUND_RETRY_AFTER_TOO_LONG] = "retry_after_too_long",
    [OUTBOUND_TIMEOUT] = "timeout",
    [OUTBOUND_RESOLVE_FAILED] = "resolve_failed",
    [OUTBOUND_CONNECT_FAILED] = "connect_failed",
    [OUTBOUND_CONNECTION_FAILED] = "connection_failed",
    [OUTBOUND_TLS_FAILED] = "tls_failed",
    [OUTBOUND_NOT_ALLOWED] = "destination_not_allowed",
    [OUTBOUND_INVALID_REQUEST] = "invalid_request",
    [OUTBOUND_SHUTTING_DOWN] = "shutting_down",
    [OUTBOUND_INTERNAL] = "internal",
};

const char *outbound_failure_name(enum outbound_failure f)
{
    if ((unsigned)f < sizeof failure_names / sizeof failure_names[0] && failure_names[f])
        return failure_names[f];
    return "internal";
}

/* ---- pure helpers ---------------------------------------------------------- */

long outbound_backoff_ms(int failures, long base_ms, long max_ms, uint64_t rnd)
{
    if (base_ms <= 0 || max_ms <= 0)
        return 0;
    long cap = base_ms;
    for (int i = 1; i < failures && cap < max_ms; i++)
        cap = cap > max_ms / 2 ? max_ms : cap * 2;
    if (cap > max_ms)
        cap = max_ms;
    return (long)(rnd % ((uint64_t)cap + 1));
}

int outbound_parse_retry_after(const char *value, int64_t now_wall_ms, long *out_ms)
{
    if (!value)
        return -SLUICE_E_INVALID_PARAMETER;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    if (n == 0)
        return -SLUICE_E_INVALID_PARAMETER;
    size_t digits = 0;
    while (digits < n && value[digits] >= '0' && value[digits] <= '9')
        digits++;
    if (digits == n) {
        /* Delta seconds. Clamp absurd values instead of overflowing. */
        long long s = 0;
        for (size_t i = 0; i < n; i++) {
            s = s * 10 + (value[i] - '0');
            if (s > 100000000LL) {
                s = 100000000LL;
                break;
            }
        }
        *out_ms = (long)(s * 1000);
        return 0;
    }
    char tmp[128];
    if (n >= sizeof tmp)
        return -SLUICE_E_INVALID_PARAMETER;
    memcpy(tmp, value, n);
    tmp[n] = '\0';
    time_t t = curl_getdate(tmp, NULL);
    if (t == (time_t)-1)
        return -SLUICE_E_INVALID_PARAMETER;
    int64_t delta = (int64_t)t * 1000 - now_wall_ms;
    if (delta < 0)
        delta = 0;
    if (delta > 100000000000LL)
        delta = 100000000000LL;
    *out_ms = (long)delta;
    return 0;
}

/* ---- small utilities ------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: plenty for jitter, not for secrets. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void set_msg(struct outbound_response *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_msg(struct outbound_response *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

static void response_init(struct outbound_response *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after_ms = -1;
}

void outbound_response_release(struct outbound_response *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->content_type);
    free(r->location);
    response_init(r);
}

static int has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* Is name (n bytes) the header name of line "Name: value"? */
static int header_is(const char *line, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(line, name, n) == 0 && (line[n] == ':' || line[n] == ';');
}

static int valid_method(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > 16)
        return 0;
    for (; *m; m++)
        if (!((*m >= 'A' && *m <= 'Z') || *m == '-' || *m == '_'))
            return 0;
    return 1;
}

/* ---- call lifecycle -------------------------------------------------------- */

static void call_clear_attempt(struct call *c)
{
    buf_reset(&c->body);
    c->capped = 0;
    free(c->ctype);
    free(c->location);
    free(c->retry_after);
    c->ctype = c->location = c->retry_after = NULL;
    buf_reset(&c->rl);
    c->refused = 0;
    c->refusal[0] = '\0';
    c->errbuf[0] = '\0';
}

static void call_release(struct call *c)
{
    call_clear_attempt(c);
    buf_release(&c->body);
    buf_release(&c->rl);
    curl_slist_free_all(c->headers);
    c->headers = NULL;
    if (c->url)
        curl_url_cleanup(c->url);
    c->url = NULL;
    free(c->host);
    c->host = NULL;
    free(c->origin);
    c->origin = NULL;
}

/* Fills the final fields of the response and frees the call's resources. */
static void call_complete(struct call *c, int error, enum outbound_failure failure)
{
    struct outbound_response *r = c->resp;
    r->error = error;
    r->failure = failure;
    r->finished_at = clock_now_ms();
    r->total_ms = (long)(clock_mono_ms() - c->submit_mono);
    call_release(c);
}

static void ready_push(struct outbound *ob, struct call *c);

/* Completes a call that the I/O thread owns and tells its worker. The calls ordered
 * after it become ready first (their clocks start now), while the batch still counts
 * them, so the worker cannot return before they end. */
static void call_finish(struct call *c, int error, enum outbound_failure failure)
{
    struct outbound *ob = c->ob;
    struct batch *b = c->batch;
    call_complete(c, error, failure);
    for (struct call *w = c->waiters, *nx; w; w = nx) {
        nx = w->wait_next;
        w->wait_next = NULL;
        w->submit_mono = clock_mono_ms();
        w->resp->started_at = clock_now_ms();
        ready_push(ob, w);
    }
    c->waiters = NULL;
    pthread_mutex_lock(&ob->mu);
    if (--b->remaining == 0)
        pthread_cond_signal(&b->done);
    pthread_mutex_unlock(&ob->mu);
    /* c may be freed by its worker from here on. */
}

/* Validates req and builds what every attempt shares. Runs on the worker's thread.
 * Returns 0, or -SLUICE_E_INVALID_PARAMETER with resp->message set. */
static int call_prepare(struct call *c)
{
    const struct outbound_request *q = c->req;
    struct outbound_response *r = c->resp;
    char *s = NULL;

    if (!q->url || !*q->url) {
        set_msg(r, "invalid request: no URL");
        return -SLUICE_E_INVALID_PARAMETER;
    }
    c->method = q->method ? q->method : (q->body ? "POST" : "GET");
    if (!valid_method(c->method)) {
        set_msg(r, "invalid request: method \"%.32s\" is not allowed", c->method);
        return -SLUICE_E_INVALID_PARAMETER;
    }
    c->url = curl_url();
    if (!c->url) {
        set_msg(r, "out of memory parsing the URL");
        return -SLUICE_E_INVALID_PARAMETER;
    }
    CURLUcode uc = curl_url_set(c->url, CURLUPART_URL, q->url, 0);
    if (uc != CURLUE_OK) {
        set_msg(r, "invalid URL: %s", curl_url_strerror(uc));
        return -SLUICE_E_INVALID_PARAMETER;
    }
    if (curl_url_get(c->url, CURLUPART_SCHEME, &s, 0) != CURLUE_OK || !s ||
        (strcasecmp(s, "http") != 0 && strcasecmp(s, "https") != 0)) {
        set_msg(r, "invalid URL: scheme \"%.32s\" is not allowed (http and https only)",
                s ? s : "");
        curl_free(s);
        return -SLUICE_E_INVALID_PARAMETER;
    }
    curl_free(s);
    s = NULL;
    if (curl_url_get(c->url, CURLUPART_HOST, &s, 0) != CURLUE_OK || !s || !*s) {
        curl_free(s);
        set_msg(r, "invalid URL: no host");
        return -SLUICE_E_INVALID_PARAMETER;
    }
    size_t hl = strlen(s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']')
        c->host = xstrndup(s + 1, hl - 2);
    else
        c->host = xstrdup(s);
    curl_free(s);
    s = NULL;
    /* pacing learns per origin: two services on one host keep their own limits */
    curl_url_get(c->url, CURLUPART_PORT, &s, CURLU_DEFAULT_PORT);
    c->origin = xasprintf("%s:%s", c->host, s ? s : "0");
    curl_free(s);

    int has_ctype = 0;
    for (const char *const *h = q->headers; h && *h; h++) {
        const char *colon = strchr(*h, ':');
        if (has_crlf(*h) || !colon || colon == *h) {
            set_msg(r, "invalid request: bad header \"%.64s\"", *h);
            return -SLUICE_E_INVALID_PARAMETER;
        }
        if (q->idempotency_key && header_is(*h, "Idempotency-Key"))
            continue;
        if (header_is(*h, "Content-Type"))
            has_ctype = 1;
        c->headers = curl_slist_append(c->headers, *h);
    }
    if (q->idempotency_key) {
        if (has_crlf(q->idempotency_key)) {
            set_msg(r, "invalid request: Idempotency-Key contains a line break");
            return -SLUICE_E_INVALID_PARAMETER;
        }
        char *line = xasprintf("Idempotency-Key: %s", q->idempotency_key);
        c->headers = curl_slist_append(c->headers, line);
        free(line);
    }
    if (q->body && !has_ctype)
        c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
    /* Never wait for "100 Continue": a round trip, or a 1 s stall on servers that
     * ignore it. */
    c->headers = curl_slist_append(c->headers, "Expect:");
    if (!c->headers) {
        set_msg(r, "out of memory building headers");
        return -SLUICE_E_INVALID_PARAMETER;
    }
    c->max_attempts = q->max_attempts > 0 ? q->max_attempts : 1;
    return 0;
}

/* ---- libcurl callbacks (I/O thread) ---------------------------------------- */

static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct call *c = clientp;
    struct netaddr na;
    char msg[sizeof c->refusal];
    int ok;

    if (purpose != CURLSOCKTYPE_IPCXN || netaddr_from_sockaddr(&a->addr, a->addrlen, &na) < 0) {
        snprintf(msg, sizeof msg, "target address family %d is not allowed", a->family);
        ok = 0;
    } else {
        ok = netpolicy_check(c->ob->policy, c->host, &na, msg, sizeof msg) == 0;
    }
    if (!ok) {
        if (!c->refused) { /* report the first refusal of the attempt */
            c->refused = 1;
            memcpy(c->refusal, msg, sizeof msg);
        }
        return CURL_SOCKET_BAD;
    }
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static char *header_value(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    while (n && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return xstrndup(p, n < MAX_HEADER_VALUE ? n : MAX_HEADER_VALUE);
}

static void take_header(const char *line, size_t n, const char *name, char **slot)
{
    size_t nl = strlen(name);
    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return;
    free(*slot);
    *slot = header_value(line + nl + 1, n - nl - 1);
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    struct call *c = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new response starts (after a 1xx): forget the previous one's headers. */
        free(c->ctype);
        free(c->location);
        free(c->retry_after);
        c->ctype = c->location = c->retry_after = NULL;
        buf_reset(&c->body);
        buf_reset(&c->rl);
        return n;
    }
    take_header(p, n, "Content-Type", &c->ctype);
    take_header(p, n, "Location", &c->location);
    take_header(p, n, "Retry-After", &c->retry_after);
    if (c->req->pace_observe && c->rl.len + n <= MAX_HEADER_VALUE &&
        (strncasecmp(p, "ratelimit", 9) == 0 || strncasecmp(p, "x-ratelimit-", 12) == 0 ||
         strncasecmp(p, "x-shopify-shop-api-call-limit:", 30) == 0 ||
         strncasecmp(p, "retry-after:", 12) == 0)) {
        /* what the upstream says of its limit, for the limiter to learn (limits.h) */
        size_t k = n;
        while (k && (p[k - 1] == '\r' || p[k - 1] == '\n'))
            k--;
        buf_append(&c->rl, p, k);
        buf_putc(&c->rl, '\n');
    }
    return n;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    struct call *c = ud;
    size_t n = size * nmemb, max = c->ob->max_body;
    size_t room = c->body.len < max ? max - c->body.len : 0;
    if (n <= room) {
        buf_append(&c->body, p, n);
        return n;
    }
    /* Keep what fits and stop the download: a huge or endless body must cost
     * neither memory nor time. Returning a short count aborts the transfer. */
    buf_append(&c->body, p, room);
    c->capped = 1;
    return room; /* < n */
}

/* ---- the I/O thread ------------------------------------------------------- */

static void timer_push(struct outbound *ob, struct call *c)
{
    if (ob->ntimers == ob->timers_cap) {
        ob->timers_cap = ob->timers_cap ? ob->timers_cap * 2 : 64;
        ob->timers = xrealloc(ob->timers, ob->timers_cap * sizeof *ob->timers);
    }
    size_t i = ob->ntimers++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (ob->timers[parent]->due_mono <= c->due_mono)
            break;
        ob->timers[i] = ob->timers[parent];
        i = parent;
    }
    ob->timers[i] = c;
}

static struct call *timer_pop(struct outbound *ob)
{
    struct call *top = ob->timers[0];
    struct call *last = ob->timers[--ob->ntimers];
    size_t i = 0, n = ob->ntimers;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct call *mc = last;
        if (l < n && ob->timers[l]->due_mono < mc->due_mono) {
            m = l;
            mc = ob->timers[l];
        }
        if (r < n && ob->timers[r]->due_mono < mc->due_mono)
            m = r;
        if (m == i)
            break;
        ob->timers[i] = ob->timers[m];
        i = m;
    }
    if (n)
        ob->timers[i] = last;
    return top;
}

static void ready_push(struct outbound *ob, struct call *c)
{
    c->next = NULL;
    if (ob->ready_tail)
        ob->ready_tail->next = c;
    else
        ob->ready_head = c;
    ob->ready_tail = c;
}

static struct call *ready_pop(struct outbound *ob)
{
    struct call *c = ob->ready_head;
    if (c) {
        ob->ready_head = c->next;
        if (!ob->ready_head)
            ob->ready_tail = NULL;
        c->next = NULL;
    }
    return c;
}

static void in_flight_add(struct outbound *ob, struct call *c)
{
    c->fl_prev = NULL;
    c->fl_next = ob->in_flight_list;
    if (c->fl_next)
        c->fl_next->fl_prev = c;
    ob->in_flight_list = c;
    ob->in_flight++;
}

static void in_flight_remove(struct outbound *ob, struct call *c)
{
    if (c->fl_prev)
        c->fl_prev->fl_next = c->fl_next;
    else
        ob->in_flight_list = c->fl_next;
    if (c->fl_next)
        c->fl_next->fl_prev = c->fl_prev;
    c->fl_prev = c->fl_next = NULL;
    ob->in_flight--;
}

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (curl_easy_setopt(h, opt, val) != CURLE_OK) {                                           \
            failed = #opt;                                                                         \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Creates the easy handle for the next attempt of c and adds it to the multi. */
static void attempt_start(struct outbound *ob, struct call *c)
{
    const struct outbound_request *q = c->req;
    const char *failed = NULL;
    long timeout = q->timeout_ms > 0 ? q->timeout_ms : DEFAULT_TIMEOUT_MS;
    if (q->deadline_mono > 0) { /* never past the caller's total deadline */
        int64_t left = q->deadline_mono - clock_mono_ms();
        if (left < timeout)
            timeout = left > 1 ? (long)left : 1;
    }
    long connect_timeout = q->connect_timeout_ms > 0 ? q->connect_timeout_ms : timeout;
    if (connect_timeout > timeout)
        connect_timeout = timeout;
    int has_body = q->body != NULL;

    call_clear_attempt(c);
    CURL *h = curl_easy_init();
    if (!h) {
        failed = "curl_easy_init";
        goto out;
    }
    SET(CURLOPT_PRIVATE, (void *)c);
    SET(CURLOPT_CURLU, c->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROXY, ""); /* "" disables proxies, environment variables included */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, timeout);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_timeout);
    SET(CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
    SET(CURLOPT_OPENSOCKETDATA, (void *)c);
    SET(CURLOPT_HEADERFUNCTION, header_cb);
    SET(CURLOPT_HEADERDATA, (void *)c);
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, (void *)c);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_HTTPHEADER, c->headers);
    SET(CURLOPT_USERAGENT, ob->user_agent);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);

    if (strcmp(c->method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (strcmp(c->method, "GET") == 0 && !has_body) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (has_body || !strcmp(c->method, "POST") || !strcmp(c->method, "PUT") ||
               !strcmp(c->method, "PATCH")) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(has_body ? q->body_len : 0));
        SET(CURLOPT_POSTFIELDS, has_body ? q->body : "");
        if (strcmp(c->method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, c->method);
    } else {
        SET(CURLOPT_CUSTOMREQUEST, c->method);
    }

    CURLMcode mc = curl_multi_add_handle(ob->multi, h);
    if (mc != CURLM_OK) {
        failed = curl_multi_strerror(mc);
        goto out;
    }
    c->easy = h;
    h = NULL;
    c->resp->attempts++;
    c->attempt_mono = clock_mono_ms();
    in_flight_add(ob, c);
out:
    if (failed) {
        log_write(LOG_ERROR, "outbound: cannot start a request", "step", failed, NULL);
        if (h)
            curl_easy_cleanup(h);
        set_msg(c->resp, "internal error starting the request (%s)", failed);
        call_finish(c, -SLUICE_E_INTERNAL, OUTBOUND_INTERNAL);
    }
}
#undef SET

/* Maps a transport error to a failure kind; *retry says whether another attempt
 * could help. */
static enum outbound_failure classify_curl(CURLcode rc, int *retry)
{
    *retry = 1;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return OUTBOUND_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
        return OUTBOUND_RESOLVE_FAILED;
    case CURLE_COULDNT_CONNECT:
        return OUTBOUND_CONNECT_FAILED;
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return OUTBOUND_CONNECTION_FAILED;
    case CURLE_SSL_CONNECT_ERROR:
        return OUTBOUND_TLS_FAILED;
    default:
        break;
    }
    *retry = 0;
    switch (rc) {
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL: /* schemes are checked before; here: an HTTP/0.9
                                        or non-HTTP answer */
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_TOO_MANY_REDIRECTS:
        return OUTBOUND_CONNECTION_FAILED;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_USE_SSL_FAILED:
        return OUTBOUND_TLS_FAILED;
    case CURLE_URL_MALFORMAT:
        return OUTBOUND_INVALID_REQUEST;
    default:
        return OUTBOUND_INTERNAL;
    }
}

/* Nonzero when a retry after delay_ms would start past the request's deadline. */
static int past_deadline(const struct call *c, long delay_ms)
{
    return c->req->deadline_mono > 0 && clock_mono_ms() + delay_ms >= c->req->deadline_mono;
}

static void schedule_retry(struct outbound *ob, struct call *c, long delay_ms)
{
    c->due_mono = clock_mono_ms() + delay_ms;
    timer_push(ob, c);
}

/* Decides what a finished attempt means: complete the call, or wait and retry. */
static void attempt_done(struct outbound *ob, struct call *c, CURLcode rc)
{
    struct outbound_response *r = c->resp;
    long code = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(ob->multi, c->easy);
    curl_easy_cleanup(c->easy);
    c->easy = NULL;
    in_flight_remove(ob, c);
    r->latency_ms = (long)(clock_mono_ms() - c->attempt_mono);
    int more = r->attempts < c->max_attempts;

    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && c->capped && code > 0)) {
        if (c->req->pace_observe) /* no answer: a timeout tells the limiter to slow down */
            c->req->pace_observe(c->req->pace_ctx, c->origin, 0, rc == CURLE_OPERATION_TIMEDOUT, "",
                                 c->attempt_mono);
        if (c->refused && rc == CURLE_COULDNT_CONNECT) {
            set_msg(r, "%s", c->refusal);
            call_finish(c, -SLUICE_E_INVALID_PARAMETER, OUTBOUND_NOT_ALLOWED);
            return;
        }
        int retry;
        enum outbound_failure f = classify_curl(rc, &retry);
        if (retry && more) {
            long delay = outbound_backoff_ms(r->attempts, c->req->backoff_ms,
                                             c->req->max_backoff_ms > 0 ? c->req->max_backoff_ms
                                                                        : DEFAULT_MAX_BACKOFF_MS,
                                             rng_next(&ob->rng));
            if (!past_deadline(c, delay)) {
                schedule_retry(ob, c, delay);
                return;
            }
            set_msg(r, "deadline of the call reached after %d attempt%s: %s", r->attempts,
                    r->attempts == 1 ? "" : "s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
            r->deadline_reached = 1;
            call_finish(c, -SLUICE_E_INTERNAL, OUTBOUND_TIMEOUT);
            return;
        }
        set_msg(r, "%s after %d attempt%s: %s", outbound_failure_name(f), r->attempts,
                r->attempts == 1 ? "" : "s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
        call_finish(
            c, f == OUTBOUND_INVALID_REQUEST ? -SLUICE_E_INVALID_PARAMETER : -SLUICE_E_INTERNAL, f);
        return;
    }

    /* A response arrived: it replaces whatever an earlier attempt left. */
    free(r->body);
    free(r->content_type);
    free(r->location);
    r->status = (int)code;
    r->body_truncated = c->capped;
    r->body = buf_detach(&c->body, &r->body_len);
    if (!r->body)
        r->body = xstrdup("");
    r->content_type = c->ctype;
    r->location = c->location;
    c->ctype = c->location = NULL;
    r->retry_after_ms = -1;
    long ra;
    if (c->retry_after && outbound_parse_retry_after(c->retry_after, clock_now_ms(), &ra) == 0)
        r->retry_after_ms = ra;

    if (c->req->pace_observe)
        c->req->pace_observe(c->req->pace_ctx, c->origin, (int)code, 0, buf_cstr(&c->rl),
                             c->attempt_mono);
    if ((code == 429 || code == 503) && r->retry_after_ms >= 0 && c->req->pace_backoff)
        /* the upstream asked to wait: everything sharing the limit waits, not only this */
        c->req->pace_backoff(c->req->pace_ctx, c->origin, clock_mono_ms() + r->retry_after_ms);
    int retryable = code == 408 || code == 429 || (code >= 500 && code <= 599);
    if (!retryable) {
        call_finish(c, 0, OUTBOUND_OK);
        return;
    }
    if (!more) {
        set_msg(r, "HTTP %ld after %d attempt%s", code, r->attempts, r->attempts == 1 ? "" : "s");
        call_finish(c, 0, OUTBOUND_OK);
        return;
    }
    long delay;
    long max_backoff = c->req->max_backoff_ms > 0 ? c->req->max_backoff_ms : DEFAULT_MAX_BACKOFF_MS;
    if ((code == 429 || code == 503) && r->retry_after_ms >= 0) {
        if (r->retry_after_ms > ob->max_retry_after_ms) {
            set_msg(r, "HTTP %ld with Retry-After of %ld ms, above the %ld ms limit; not retried",
                    code, r->retry_after_ms, ob->max_retry_after_ms);
            call_finish(c, 0, OUTBOUND_RETRY_AFTER_TOO_LONG);
            return;
        }
        delay = r->retry_after_ms;
    } else {
        delay =
            outbound_backoff_ms(r->attempts, c->req->backoff_ms, max_backoff, rng_next(&ob->rng));
    }
    if (past_deadline(c, delay)) {
        set_msg(r, "HTTP %ld after %d attempt%s; deadline of the call reached", code, r->attempts,
                r->attempts == 1 ? "" : "s");
        call_finish(c, 0, OUTBOUND_OK);
        return;
    }
    schedule_retry(ob, c, delay);
}

static void fail_shutdown(struct call *c)
{
    set_msg(c->resp, "outbound engine stopped");
    call_finish(c, -SLUICE_E_SHUTTING_DOWN, OUTBOUND_SHUTTING_DOWN);
}

/* Splices the submission list into the ready queue; returns ob->stopping. */
static int take_submissions(struct outbound *ob)
{
    pthread_mutex_lock(&ob->mu);
    struct call *head = ob->sub_head, *tail = ob->sub_tail;
    ob->sub_head = ob->sub_tail = NULL;
    int stopping = ob->stopping;
    pthread_mutex_unlock(&ob->mu);
    if (head) {
        if (ob->ready_tail)
            ob->ready_tail->next = head;
        else
            ob->ready_head = head;
        ob->ready_tail = tail;
    }
    return stopping;
}

static void *io_main(void *arg)
{
    struct outbound *ob = arg;
    for (;;) {
        if (take_submissions(ob))
            break;
        int64_t now = clock_mono_ms();
        while (ob->ntimers && ob->timers[0]->due_mono <= now)
            ready_push(ob, timer_pop(ob));
        while (ob->in_flight < ob->max_in_flight && ob->ready_head) {
            struct call *c = ready_pop(ob);
            if (c->req->pace) {
                /* The request's slot of its limits; wait for it when later. */
                int64_t at = c->req->pace(c->req->pace_ctx, c->origin, now, &c->pace_hold);
                if (at > now && past_deadline(c, (long)(at - now))) {
                    /* its slot comes after the caller's deadline: never sent */
                    set_msg(c->resp,
                            "deadline of the call reached before its processing "
                            "limit's slot (%d attempt%s)",
                            c->resp->attempts, c->resp->attempts == 1 ? "" : "s");
                    c->resp->deadline_reached = 1;
                    call_finish(c, -SLUICE_E_INTERNAL, OUTBOUND_TIMEOUT);
                    continue;
                }
                if (at > now) {
                    schedule_retry(ob, c, (long)(at - now));
                    continue;
                }
            }
            if (past_deadline(c, 0)) { /* e.g. a retry timer that fired late */
                set_msg(c->resp, "deadline of the call reached after %d attempt%s",
                        c->resp->attempts, c->resp->attempts == 1 ? "" : "s");
                c->resp->deadline_reached = 1;
                call_finish(c, -SLUICE_E_INTERNAL, OUTBOUND_TIMEOUT);
                continue;
            }
            c->pace_hold = 0;
            attempt_start(ob, c);
        }

        int running = 0;
        CURLMcode mc = curl_multi_perform(ob->multi, &running);
        if (mc != CURLM_OK)
            log_write(LOG_ERROR, "outbound: curl_multi_perform failed", "error",
                      curl_multi_strerror(mc), NULL);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(ob->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            char *priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            attempt_done(ob, (struct call *)(void *)priv, msg->data.result);
        }

        long wait = POLL_CAP_MS, ct = -1;
        if (ob->ready_head && ob->in_flight < ob->max_in_flight)
            wait = 0;
        curl_multi_timeout(ob->multi, &ct);
        if (ct >= 0 && ct < wait)
            wait = ct;
        if (ob->ntimers) {
            int64_t d = ob->timers[0]->due_mono - clock_mono_ms();
            if (d < wait)
                wait = d < 0 ? 0 : (long)d;
        }
        if (wait > 0) {
            mc = curl_multi_poll(ob->multi, NULL, 0, (int)wait, NULL);
            if (mc != CURLM_OK) {
                log_write(LOG_ERROR, "outbound: curl_multi_poll failed", "error",
                          curl_multi_strerror(mc), NULL);
                usleep(10000); /* do not spin if polling keeps failing */
            }
        }
    }

    /* Stopping: fail everything this thread owns. */
    while (ob->in_flight_list) {
        struct call *c = ob->in_flight_list;
        curl_multi_remove_handle(ob->multi, c->easy);
        curl_easy_cleanup(c->easy);
        c->easy = NULL;
        in_flight_remove(ob, c);
        fail_shutdown(c);
    }
    while (ob->ntimers)
        fail_shutdown(timer_pop(ob));
    take_submissions(ob); /* anything that slipped in before stopping was set */
    struct call *c;
    while ((c = ready_pop(ob)))
        fail_shutdown(c);
    return NULL;
}

/* ---- public API ------------------------------------------------------------ */

int outbound_start(const struct outbound_config *cfg, struct outbound **out)
{
    static const struct outbound_config defaults = {0};
    int rc = -SLUICE_E_INTERNAL;
    char err[256];
    if (!cfg)
        cfg = &defaults;

    struct outbound *ob = xcalloc(1, sizeof *ob);
    pthread_mutex_init(&ob->mu, NULL);
    pthread_cond_init(&ob->idle, NULL);
    ob->max_body = cfg->max_body ? cfg->max_body : DEFAULT_MAX_BODY;
    ob->max_in_flight = cfg->max_in_flight ? cfg->max_in_flight : DEFAULT_MAX_IN_FLIGHT;
    ob->max_retry_after_ms =
        cfg->max_retry_after_ms > 0 ? cfg->max_retry_after_ms : DEFAULT_MAX_RETRY_AFTER_MS;
    ob->user_agent = xstrdup(cfg->user_agent ? cfg->user_agent : "sluice");
    if (getrandom(&ob->rng, sizeof ob->rng, 0) != (ssize_t)sizeof ob->rng)
        ob->rng = (uint64_t)clock_mono_ns() ^ (uint64_t)(uintptr_t)ob;
    ob->rng |= 1; /* xorshift must not start at 0 */

    rc = netpolicy_new(cfg->allow, &ob->policy, err, sizeof err);
    if (rc < 0) {
        log_write(LOG_ERROR, "outbound: bad allowlist", "error", err, NULL);
        goto out;
    }
    rc = -SLUICE_E_INTERNAL;
    /* Reference counted and thread-safe since curl 7.84; undone in outbound_free. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_write(LOG_ERROR, "outbound: curl_global_init failed", NULL);
        goto out;
    }
    ob->multi = curl_multi_init();
    if (!ob->multi) {
        curl_global_cleanup();
        log_write(LOG_ERROR, "outbound: curl_multi_init failed", NULL);
        goto out;
    }
    /* Idle connections kept: as many as can be in flight. Without a size, curl keeps 4
     * per request in flight at the moment one is handed back, so as a claim's last
     * requests end it closes almost all, and the next claim connects anew (400
     * connects/s and 8,000 sockets in TIME_WAIT at 24,000 requests/s to one upstream). */
    curl_multi_setopt(ob->multi, CURLMOPT_MAXCONNECTS, (long)ob->max_in_flight);
    int e = pthread_create(&ob->thread, NULL, io_main, ob);
    if (e != 0) {
        log_write(LOG_ERROR, "outbound: cannot start the I/O thread", "error", strerror(e), NULL);
        goto out;
    }
    ob->thread_started = 1;
    *out = ob;
    ob = NULL;
    rc = 0;
out:
    if (ob) {
        ob->stopped = 1; /* no thread to stop */
        outbound_free(ob);
    }
    return rc;
}

int outbound_run(struct outbound *ob, const struct outbound_request *reqs,
                 struct outbound_response *resps, size_t n)
{
    if (!ob || (n && (!reqs || !resps)))
        return -SLUICE_E_INVALID_PARAMETER;
    if (n == 0)
        return 0;

    struct call *calls = xcalloc(n, sizeof *calls);
    struct batch batch = {.remaining = 0};
    struct call *head = NULL, *tail = NULL;
    int64_t now_wall = clock_now_ms(), now_mono = clock_mono_ms();
    pthread_cond_init(&batch.done, NULL);

    for (size_t i = 0; i < n; i++) {
        struct call *c = &calls[i];
        c->ob = ob;
        c->batch = &batch;
        c->req = &reqs[i];
        c->resp = &resps[i];
        c->submit_mono = now_mono;
        buf_init(&c->body);
        response_init(c->resp);
        c->resp->started_at = now_wall;
        const struct outbound_request *a = reqs[i].after;
        if (a && (a < reqs || a >= &reqs[i])) {
            set_msg(c->resp, "`after` must name an earlier request of the same batch");
            call_complete(c, -SLUICE_E_INVALID_PARAMETER, OUTBOUND_INVALID_REQUEST);
            continue;
        }
        if (call_prepare(c) < 0) {
            call_complete(c, -SLUICE_E_INVALID_PARAMETER, OUTBOUND_INVALID_REQUEST);
            continue;
        }
        c->queued = 1;
        batch.remaining++;
        struct call *before = a ? &calls[a - reqs] : NULL;
        if (before && before->queued) {
            /* waits in the earlier call's list (kept in index order) */
            struct call **pp = &before->waiters;
            while (*pp)
                pp = &(*pp)->wait_next;
            *pp = c;
            continue;
        }
        if (tail)
            tail->next = c;
        else
            head = c;
        tail = c;
    }

    if (head) {
        pthread_mutex_lock(&ob->mu);
        if (ob->stopping) {
            pthread_mutex_unlock(&ob->mu);
            for (size_t i = 0; i < n; i++) { /* the waiting ones too */
                if (!calls[i].queued)
                    continue;
                set_msg(calls[i].resp, "outbound engine stopped");
                call_complete(&calls[i], -SLUICE_E_SHUTTING_DOWN, OUTBOUND_SHUTTING_DOWN);
            }
        } else {
            if (ob->sub_tail)
                ob->sub_tail->next = head;
            else
                ob->sub_head = head;
            ob->sub_tail = tail;
            ob->active_runs++;
            pthread_mutex_unlock(&ob->mu);
            /* ob->multi lives until outbound_free(), which cannot run while this
             * call is counted in active_runs. */
            curl_multi_wakeup(ob->multi);
            pthread_mutex_lock(&ob->mu);
            while (batch.remaining > 0)
                pthread_cond_wait(&batch.done, &ob->mu);
            if (--ob->active_runs == 0)
                pthread_cond_broadcast(&ob->idle);
            pthread_mutex_unlock(&ob->mu);
        }
    }
    pthread_cond_destroy(&batch.done);
    free(calls);
    return 0;
}

void outbound_stop(struct outbound *ob)
{
    if (!ob || ob->stopped)
        return;
    pthread_mutex_lock(&ob->mu);
    ob->stopping = 1;
    pthread_mutex_unlock(&ob->mu);
    if (ob->thread_started) {
        curl_multi_wakeup(ob->multi);
        pthread_join(ob->thread, NULL);
        ob->thread_started = 0;
    }
    pthread_mutex_lock(&ob->mu);
    while (ob->active_runs > 0)
        pthread_cond_wait(&ob->idle, &ob->mu);
    pthread_mutex_unlock(&ob->mu);
    ob->stopped = 1;
}

void outbound_free(struct outbound *ob)
{
    if (!ob)
        return;
    outbound_stop(ob);
    if (ob->multi) {
        curl_multi_cleanup(ob->multi);
        curl_global_cleanup();
    }
    netpolicy_free(ob->policy);
    free(ob->timers);
    free(ob->user_agent);
    pthread_cond_destroy(&ob->idle);
    pthread_mutex_destroy(&ob->mu);
    free(ob);
}
