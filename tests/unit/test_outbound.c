/* test_outbound.c - the outbound engine against a real fake upstream on loopback.
 *
 * The upstream is libmicrohttpd in this process (thread per connection) on 127.0.0.1
 * port 0, scripted by path; it counts requests per (path, Idempotency-Key) and logs
 * method, key, Content-Type and body size of each. Timing assertions are lower
 * bounds only. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "outbound/outbound.h"
#include "testhelp.h"
#include "util/clock.h"
#include "util/errors.h"

/* ---- the fake upstream ---------------------------------------------------- */

#define LOG_MAX 4096
#define BIG_LEN (2u << 20)

struct hit {
    char path[64];
    char method[16];
    char key[64];
    char ctype[64];
    size_t body_len;
};

struct upstream {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    int seen;      /* connections that reached the handler, /drop included */
    int connected; /* TCP connections accepted */
    struct hit log[LOG_MAX];
    int nlog;
    char *big;
};

struct req_state {
    size_t body_len;
};

static struct upstream up;

static void copy_str(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

/* Logs the request; returns how often (path, key) has been seen, this one included. */
static int record(const char *path, const char *method, const char *key, const char *ctype,
                  size_t body_len)
{
    pthread_mutex_lock(&up.mu);
    int n = 0;
    if (up.nlog < LOG_MAX) {
        struct hit *h = &up.log[up.nlog++];
        copy_str(h->path, sizeof h->path, path);
        copy_str(h->method, sizeof h->method, method);
        copy_str(h->key, sizeof h->key, key);
        copy_str(h->ctype, sizeof h->ctype, ctype);
        h->body_len = body_len;
    }
    for (int i = 0; i < up.nlog; i++)
        if (!strcmp(up.log[i].path, path) && !strcmp(up.log[i].key, key ? key : ""))
            n++;
    pthread_mutex_unlock(&up.mu);
    return n;
}

static int hits(const char *path, const char *key)
{
    pthread_mutex_lock(&up.mu);
    int n = 0;
    for (int i = 0; i < up.nlog; i++)
        if (!strcmp(up.log[i].path, path) && (!key || !strcmp(up.log[i].key, key)))
            n++;
    pthread_mutex_unlock(&up.mu);
    return n;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)c;
    (void)socket_ctx;
    if (toe != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    pthread_mutex_lock(&up.mu);
    up.connected++;
    pthread_mutex_unlock(&up.mu);
}

static int connected(void)
{
    pthread_mutex_lock(&up.mu);
    int n = up.connected;
    pthread_mutex_unlock(&up.mu);
    return n;
}

static int seen(void)
{
    pthread_mutex_lock(&up.mu);
    int n = up.seen;
    pthread_mutex_unlock(&up.mu);
    return n;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body,
                             size_t len, const char *hname, const char *hvalue)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (hname)
        MHD_add_response_header(r, hname, hvalue);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload;
    struct req_state *st = *con_cls;
    if (!st) {
        pthread_mutex_lock(&up.mu);
        up.seen++;
        pthread_mutex_unlock(&up.mu);
        if (!strcmp(url, "/drop")) {
            record(url, method,
                   MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key"), NULL, 0);
            return MHD_NO; /* close the connection without an answer */
        }
        *con_cls = st = calloc(1, sizeof *st);
        return st ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        st->body_len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    int n = record(url, method, key, ctype, st->body_len);
    static const char ok[] = "{\"ok\":true}";

    if (!strcmp(url, "/ok"))
        return reply(conn, 200, ok, strlen(ok), NULL, NULL);
    if (!strcmp(url, "/fail-then-ok"))
        return n <= 2 ? reply(conn, 500, "{\"error\":\"boom\"}", 16, NULL, NULL)
                      : reply(conn, 200, ok, strlen(ok), NULL, NULL);
    if (!strcmp(url, "/always-500"))
        return reply(conn, 500, "{}", 2, NULL, NULL);
    if (!strcmp(url, "/429"))
        return n == 1 ? reply(conn, 429, "{}", 2, "Retry-After", "1")
                      : reply(conn, 200, ok, strlen(ok), NULL, NULL);
    if (!strcmp(url, "/429-long"))
        return reply(conn, 429, "{}", 2, "Retry-After", "120");
    if (!strcmp(url, "/503-date")) {
        if (n > 1)
            return reply(conn, 200, ok, strlen(ok), NULL, NULL);
        char date[64];
        time_t t = time(NULL) + 2;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        return reply(conn, 503, "{}", 2, "Retry-After", date);
    }
    if (!strcmp(url, "/gate")) {
        /* holds its answer until a request with key "gate-open" has arrived (10 s at
         * most), then logs "/gate-done" before answering: a request that arrives after
         * that entry started after this one ended */
        for (int i = 0; i < 1000 && !hits("/ok", "gate-open"); i++)
            usleep(10 * 1000);
        record("/gate-done", method, key, NULL, 0);
        return reply(conn, 200, ok, strlen(ok), NULL, NULL);
    }
    if (!strcmp(url, "/slow")) {
        usleep(1000 * 1000);
        return reply(conn, 200, ok, strlen(ok), NULL, NULL);
    }
    if (!strcmp(url, "/big"))
        return reply(conn, 200, up.big, BIG_LEN, NULL, NULL);
    if (!strcmp(url, "/redirect"))
        return reply(conn, 302, "", 0, "Location", "/ok");
    return reply(conn, 404, "{}", 2, NULL, NULL);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static int upstream_start(void)
{
    pthread_mutex_init(&up.mu, NULL);
    up.big = malloc(BIG_LEN);
    if (!up.big)
        return -1;
    memset(up.big, 'x', BIG_LEN);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    up.d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL,
        NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_END);
    if (!up.d)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(up.d, MHD_DAEMON_INFO_BIND_PORT);
    up.port = info ? info->port : 0;
    return up.port > 0 ? 0 : -1;
}

static void upstream_stop(void)
{
    if (up.d)
        MHD_stop_daemon(up.d);
    free(up.big);
    pthread_mutex_destroy(&up.mu);
}

/* A loopback port with nothing listening (bound, then closed). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    close(fd);
    return ntohs(sa.sin_port);
}

/* ---- helpers -------------------------------------------------------------- */

static const char *const loopback_allow[] = {"127.0.0.1/32", NULL};
static struct outbound *ob; /* allowlist 127.0.0.1/32, max_body 64 KiB */

static char *url_of(const char *path)
{
    static char bufs[8][128];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "http://127.0.0.1:%d%s", up.port, path);
    return b;
}

static struct outbound_request get_req(const char *url, const char *key)
{
    struct outbound_request q = {
        .method = "GET",
        .url = url,
        .timeout_ms = 5000,
        .max_attempts = 3,
        .backoff_ms = 10,
        .max_backoff_ms = 50,
        .idempotency_key = key,
    };
    return q;
}

/* ---- pure helpers ---------------------------------------------------------- */

TEST(backoff_bounds)
{
    CHECK_EQ_INT(outbound_backoff_ms(1, 100, 1000, 0), 0);
    CHECK_EQ_INT(outbound_backoff_ms(1, 100, 1000, 100), 100);
    CHECK_EQ_INT(outbound_backoff_ms(1, 100, 1000, 101), 0);   /* rnd % 101 */
    CHECK_EQ_INT(outbound_backoff_ms(3, 100, 1000, 400), 400); /* cap 400 */
    CHECK_EQ_INT(outbound_backoff_ms(3, 100, 1000, 401), 0);
    CHECK_EQ_INT(outbound_backoff_ms(10, 100, 1000, 1000), 1000); /* capped at max */
    CHECK_EQ_INT(outbound_backoff_ms(60, 100, 1000, 1001), 0);    /* no overflow */
    CHECK_EQ_INT(outbound_backoff_ms(2, 0, 1000, 12345), 0);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        long d = outbound_backoff_ms(1 + i % 20, 50, 3000, x);
        long cap = 50L << (i % 20 < 7 ? i % 20 : 7);
        if (cap > 3000)
            cap = 3000;
        if (d < 0 || d > cap)
            TH_FAIL("backoff %ld outside [0, %ld] for failures %d", d, cap, 1 + i % 20);
    }
}

TEST(retry_after_parse)
{
    long ms = -1;
    CHECK_EQ_INT(outbound_parse_retry_after("1", 0, &ms), 0);
    CHECK_EQ_INT(ms, 1000);
    CHECK_EQ_INT(outbound_parse_retry_after(" 120 ", 0, &ms), 0);
    CHECK_EQ_INT(ms, 120000);
    CHECK_EQ_INT(outbound_parse_retry_after("0", 0, &ms), 0);
    CHECK_EQ_INT(ms, 0);
    /* Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 */
    CHECK_EQ_INT(
        outbound_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480000LL - 5000, &ms),
        0);
    CHECK_EQ_INT(ms, 5000);
    CHECK_EQ_INT(
        outbound_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480000LL + 5000, &ms),
        0);
    CHECK_EQ_INT(ms, 0); /* in the past: retry now */
    CHECK_EQ_INT(outbound_parse_retry_after("soon", 0, &ms), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(outbound_parse_retry_after("", 0, &ms), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(outbound_parse_retry_after("-1", 0, &ms), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(outbound_parse_retry_after("1.5", 0, &ms), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(outbound_parse_retry_after(NULL, 0, &ms), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_STR(outbound_failure_name(OUTBOUND_NOT_ALLOWED), "destination_not_allowed");
    CHECK_EQ_STR(outbound_failure_name(OUTBOUND_OK), "ok");
    CHECK_EQ_STR(outbound_failure_name((enum outbound_failure)999), "internal");
}

TEST(bad_config)
{
    const char *const bad[] = {"127.0.0.1/33", NULL};
    struct outbound_config cfg = {.allow = bad};
    struct outbound *o = (struct outbound *)0x1;
    CHECK_EQ_INT(outbound_start(&cfg, &o), -SLUICE_E_INVALID_PARAMETER);
    CHECK(o == (struct outbound *)0x1);
    CHECK_EQ_INT(outbound_run(NULL, NULL, NULL, 0), -SLUICE_E_INVALID_PARAMETER);
    outbound_free(NULL);
}

/* ---- against the upstream -------------------------------------------------- */

TEST(ok_get)
{
    struct outbound_request q = get_req(url_of("/ok"), "key-ok-1");
    struct outbound_response r;
    int64_t before = clock_now_ms();
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.failure, OUTBOUND_OK);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.attempts, 1);
    CHECK_EQ_STR(r.body, "{\"ok\":true}");
    CHECK_EQ_INT(r.body_len, 11);
    CHECK_EQ_INT(r.body_truncated, 0);
    CHECK_EQ_STR(r.content_type, "application/json");
    CHECK(r.location == NULL);
    CHECK_EQ_INT(r.retry_after_ms, -1);
    CHECK_EQ_STR(r.message, "");
    CHECK(r.latency_ms >= 0 && r.total_ms >= r.latency_ms);
    CHECK(r.started_at >= before && r.finished_at >= r.started_at);
    CHECK_EQ_INT(hits("/ok", "key-ok-1"), 1);
    outbound_response_release(&r);
    CHECK(r.body == NULL && r.content_type == NULL);
}

TEST(post_body_and_headers)
{
    const char *const headers[] = {"X-Trace: abc", "Idempotency-Key: ignored", NULL};
    struct outbound_request q = get_req(url_of("/ok"), "key-post-1");
    q.method = "POST";
    q.headers = headers;
    q.body = "{\"a\":1}";
    q.body_len = 7;
    struct outbound_response r;
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(hits("/ok", "key-post-1"), 1);
    CHECK_EQ_INT(hits("/ok", "ignored"), 0);
    pthread_mutex_lock(&up.mu);
    struct hit h = up.log[up.nlog - 1];
    pthread_mutex_unlock(&up.mu);
    CHECK_EQ_STR(h.method, "POST");
    CHECK_EQ_STR(h.ctype, "application/json"); /* default for a body */
    CHECK_EQ_INT(h.body_len, 7);
    outbound_response_release(&r);

    /* PUT without a body still sends one (empty); DELETE without a body none. */
    q.method = "PUT";
    q.body = NULL;
    q.body_len = 0;
    q.idempotency_key = "key-put-1";
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(hits("/ok", "key-put-1"), 1);
    outbound_response_release(&r);
    q.method = NULL; /* no body: GET */
    q.idempotency_key = "key-get-default";
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.status, 200);
    pthread_mutex_lock(&up.mu);
    h = up.log[up.nlog - 1];
    pthread_mutex_unlock(&up.mu);
    CHECK_EQ_STR(h.method, "GET");
    outbound_response_release(&r);
}

TEST(retries_until_ok_same_key)
{
    struct outbound_request q = get_req(url_of("/fail-then-ok"), "key-fto-1");
    q.max_attempts = 5;
    struct outbound_response r;
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.attempts, 3);
    CHECK_EQ_STR(r.body, "{\"ok\":true}");
    /* every attempt reached the upstream with the same key */
    CHECK_EQ_INT(hits("/fail-then-ok", "key-fto-1"), 3);
    CHECK_EQ_INT(hits("/fail-then-ok", NULL), 3);
    outbound_response_release(&r);
}

TEST(retries_exhausted_returns_last_status)
{
    struct outbound_request q = get_req(url_of("/always-500"), "key-500-1");
    q.max_attempts = 2;
    struct outbound_response r;
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.failure, OUTBOUND_OK);
    CHECK_EQ_INT(r.status, 500);
    CHECK_EQ_INT(r.attempts, 2);
    CHECK_EQ_STR(r.message, "HTTP 500 after 2 attempts");
    CHECK_EQ_INT(hits("/always-500", "key-500-1"), 2);
    outbound_response_release(&r);
}

TEST(retry_after_seconds_honoured)
{
    struct outbound_request q = get_req(url_of("/429"), "key-429-1");
    struct outbound_response r;
    int64_t t0 = clock_mono_ms();
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    int64_t elapsed = clock_mono_ms() - t0;
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.attempts, 2);
    if (elapsed < 900 || r.total_ms < 900)
        TH_FAIL("Retry-After: 1 not honoured: %lld ms elapsed, total_ms %ld", (long long)elapsed,
                r.total_ms);
    CHECK_EQ_INT(hits("/429", "key-429-1"), 2);
    outbound_response_release(&r);
}

TEST(retry_after_date_honoured)
{
    struct outbound_request q = get_req(url_of("/503-date"), "key-503-1");
    struct outbound_response r;
    int64_t t0 = clock_mono_ms();
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    int64_t elapsed = clock_mono_ms() - t0;
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.attempts, 2);
    /* now + 2 s, truncated to whole seconds by the date format: at least ~1 s */
    if (elapsed < 900)
        TH_FAIL("Retry-After date not honoured: %lld ms", (long long)elapsed);
    outbound_response_release(&r);
}

TEST(retry_after_too_long_fails)
{
    struct outbound_request q = get_req(url_of("/429-long"), "key-429l-1");
    struct outbound_response r;
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.status, 429);
    CHECK_EQ_INT(r.attempts, 1);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.failure, OUTBOUND_RETRY_AFTER_TOO_LONG);
    CHECK_EQ_INT(r.retry_after_ms, 120000);
    CHECK(strstr(r.message, "Retry-After") != NULL);
    CHECK(r.total_ms < 60000);
    outbound_response_release(&r);
}

TEST(timeout_retried_then_failed)
{
    struct outbound_request q = get_req(url_of("/slow"), "key-slow-1");
    q.timeout_ms = 200;
    q.max_attempts = 2;
    struct outbound_response r;
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.error, -SLUICE_E_INTERNAL);
    CHECK_EQ_INT(r.failure, OUTBOUND_TIMEOUT);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(r.attempts, 2);
    CHECK(r.body == NULL);
    CHECK(r.latency_ms >= 190);
    CHECK(r.total_ms >= 390);
    CHECK(strncmp(r.message, "timeout after 2 attempts", 24) == 0);
    outbound_response_release(&r);
}

/* deadline_mono cuts the attempt's timeout to what is left and starts no retry past
 * it: one attempt of at most ~200 ms instead of three of 5 s against a 1 s answer. */
TEST(deadline_cuts_timeout_and_retries)
{
    struct outbound_request q = get_req(url_of("/slow"), "key-slow-deadline");
    q.timeout_ms = 5000;
    q.max_attempts = 3;
    q.deadline_mono = clock_mono_ms() + 200;
    struct outbound_response r;
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.error, -SLUICE_E_INTERNAL);
    CHECK_EQ_INT(r.failure, OUTBOUND_TIMEOUT);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(r.attempts, 1);
    CHECK(r.latency_ms < 900); /* cut before the upstream's 1 s answer */
    CHECK(strstr(r.message, "deadline") != NULL);
    outbound_response_release(&r);
}

TEST(dropped_connection_retried)
{
    struct outbound_request q = get_req(url_of("/drop"), "key-drop-1");
    struct outbound_response r;
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.error, -SLUICE_E_INTERNAL);
    CHECK_EQ_INT(r.failure, OUTBOUND_CONNECTION_FAILED);
    CHECK_EQ_INT(r.attempts, 3);
    CHECK_EQ_INT(hits("/drop", "key-drop-1"), 3);
    outbound_response_release(&r);
}

TEST(connect_error_retried)
{
    int port = closed_port();
    CHECK(port > 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
    struct outbound_request q = get_req(url, "key-closed-1");
    struct outbound_response r;
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.error, -SLUICE_E_INTERNAL);
    CHECK_EQ_INT(r.failure, OUTBOUND_CONNECT_FAILED);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(r.attempts, 3);
    CHECK(strncmp(r.message, "connect_failed after 3 attempts", 31) == 0);
    outbound_response_release(&r);
}

TEST(big_body_truncated)
{
    struct outbound_request q = get_req(url_of("/big"), "key-big-1");
    struct outbound_response r;
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.attempts, 1);
    CHECK_EQ_INT(r.body_len, 64 * 1024);
    CHECK_EQ_INT(r.body_truncated, 1);
    CHECK_EQ_INT(strlen(r.body), 64 * 1024);
    CHECK(r.body[0] == 'x' && r.body[64 * 1024 - 1] == 'x');
    outbound_response_release(&r);
}

TEST(redirect_not_followed)
{
    int ok_before = hits("/ok", NULL);
    struct outbound_request q = get_req(url_of("/redirect"), "key-redir-1");
    struct outbound_response r;
    CHECK_EQ_INT(outbound_run(ob, &q, &r, 1), 0);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 302);
    CHECK_EQ_INT(r.attempts, 1);
    CHECK_EQ_STR(r.location, "/ok");
    CHECK_EQ_INT(hits("/ok", NULL), ok_before);
    outbound_response_release(&r);
}

TEST(invalid_requests_not_sent)
{
    const char *const crlf[] = {"X-Evil: a\r\nX-Injected: b", NULL};
    struct outbound_request q[7];
    for (int i = 0; i < 7; i++)
        q[i] = get_req(url_of("/ok"), "key-invalid");
    q[0].url = "file:///etc/passwd";
    q[1].url = "gopher://127.0.0.1:70/";
    q[2].url = "not a url";
    q[3].url = "http://";
    q[4].method = "GE T";
    q[5].headers = crlf;
    q[6].idempotency_key = "k\r\nX-Injected: 1";
    struct outbound_response r[7];
    int before = seen();
    CHECK_EQ_INT(outbound_run(ob, q, r, 7), 0);
    for (int i = 0; i < 7; i++) {
        if (r[i].error != -SLUICE_E_INVALID_PARAMETER || r[i].failure != OUTBOUND_INVALID_REQUEST ||
            r[i].attempts != 0 || !r[i].message[0])
            TH_FAIL("request %d: error %d failure %s attempts %d message \"%s\"", i, r[i].error,
                    outbound_failure_name(r[i].failure), r[i].attempts, r[i].message);
        outbound_response_release(&r[i]);
    }
    CHECK_EQ_INT(seen(), before);
}

/* The index in the log of the first entry for (path, key), or -1. */
static int log_index(const char *path, const char *key)
{
    pthread_mutex_lock(&up.mu);
    int at = -1;
    for (int i = 0; i < up.nlog && at < 0; i++)
        if (!strcmp(up.log[i].path, path) && !strcmp(up.log[i].key, key))
            at = i;
    pthread_mutex_unlock(&up.mu);
    return at;
}

TEST(after_orders_chains_and_nothing_else)
{
    /* A1 is held by the upstream until B arrives; A2 and A3 follow A1 one after
     * another; B and C are free. Items that share a ref, and the rest of a batch. */
    struct outbound_request q[5];
    q[0] = get_req(url_of("/gate"), "chain-a1");
    q[1] = get_req(url_of("/ok"), "chain-c");
    q[2] = get_req(url_of("/ok"), "chain-a2");
    q[3] = get_req(url_of("/ok"), "gate-open");
    q[4] = get_req(url_of("/ok"), "chain-a3");
    q[2].after = &q[0];
    q[4].after = &q[2];
    struct outbound_response r[5];
    CHECK_EQ_INT(outbound_run(ob, q, r, 5), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(r[i].status, 200);
    int done = log_index("/gate-done", "chain-a1");
    int a2 = log_index("/ok", "chain-a2"), a3 = log_index("/ok", "chain-a3");
    int b = log_index("/ok", "gate-open");
    CHECK(done >= 0 && a2 >= 0 && a3 >= 0 && b >= 0);
    CHECK(b < done);  /* the free request did not wait for the held one */
    CHECK(done < a2); /* A2 started after A1 ended */
    CHECK(a2 < a3);
    /* each one's clock starts when it may start: A2's does not count A1's hold */
    CHECK(r[2].started_at >= r[0].finished_at);
    CHECK(r[4].started_at >= r[2].finished_at);
    for (int i = 0; i < 5; i++)
        outbound_response_release(&r[i]);
}

TEST(after_an_invalid_request_starts_at_once_and_must_point_back)
{
    struct outbound_request q[3];
    q[0] = get_req("not a url", "chain-bad");
    q[1] = get_req(url_of("/ok"), "chain-after-bad");
    q[1].after = &q[0];
    q[2] = get_req(url_of("/ok"), "chain-forward");
    q[2].after = &q[2]; /* itself: not an earlier request */
    struct outbound_response r[3];
    CHECK_EQ_INT(outbound_run(ob, q, r, 3), 0);
    CHECK_EQ_INT(r[0].failure, OUTBOUND_INVALID_REQUEST);
    CHECK_EQ_INT(r[1].status, 200);
    CHECK_EQ_INT(r[2].failure, OUTBOUND_INVALID_REQUEST);
    CHECK_EQ_INT(hits("/ok", "chain-forward"), 0);
    for (int i = 0; i < 3; i++)
        outbound_response_release(&r[i]);
}

/* Two rounds of 300 requests (more than max_in_flight), as two claims' calls: the
 * second goes over the connections the first left, not new ones. (This does not bring
 * out what CURLMOPT_MAXCONNECTS mended, measured in docs/benchmarks.md: curl closing
 * idle connections as a claim's last requests end, under two workers' mixed calls.) */
TEST(connections_outlive_a_round_of_requests)
{
    enum { N = 300 };
    static struct outbound_request q[N];
    static struct outbound_response r[N];
    static char keys[N][48];
    int opened[2];
    for (int round = 0; round < 2; round++) {
        int before = connected();
        for (int i = 0; i < N; i++) {
            snprintf(keys[i], sizeof keys[i], "key-round%d-%d", round, i);
            q[i] = get_req(url_of("/ok"), keys[i]);
        }
        CHECK_EQ_INT(outbound_run(ob, q, r, N), 0);
        for (int i = 0; i < N; i++) {
            CHECK_EQ_INT(r[i].status, 200);
            outbound_response_release(&r[i]);
        }
        opened[round] = connected() - before;
    }
    CHECK(opened[0] <= N);
    CHECK(opened[1] <= N / 10);
}

TEST(two_hundred_concurrent)
{
    enum { N = 200 };
    static struct outbound_request q[N];
    static struct outbound_response r[N];
    static char keys[N][32];
    int before = hits("/ok", NULL);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "key-many-%d", i);
        q[i] = get_req(url_of("/ok"), keys[i]);
    }
    CHECK_EQ_INT(outbound_run(ob, q, r, N), 0);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        ok += r[i].status == 200 && r[i].error == 0 && r[i].attempts == 1;
        outbound_response_release(&r[i]);
    }
    CHECK_EQ_INT(ok, N);
    CHECK_EQ_INT(hits("/ok", NULL) - before, N);
    CHECK_EQ_INT(hits("/ok", "key-many-199"), 1);
}

struct worker_arg {
    int id;
    int ok;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    enum { N = 25 };
    struct outbound_request q[N];
    struct outbound_response r[N];
    char keys[N][32], urls[N][96];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "key-t%d-%d", a->id, i);
        snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d%s", up.port,
                 i % 5 == 0 ? "/fail-then-ok" : "/ok");
        q[i] = get_req(urls[i], keys[i]);
    }
    if (outbound_run(ob, q, r, N) != 0)
        return NULL;
    for (int i = 0; i < N; i++) {
        a->ok += r[i].status == 200 && r[i].attempts == (i % 5 == 0 ? 3 : 1);
        outbound_response_release(&r[i]);
    }
    return NULL;
}

TEST(four_threads_at_once)
{
    pthread_t t[4];
    struct worker_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct worker_arg){.id = i};
        CHECK_EQ_INT(pthread_create(&t[i], NULL, worker, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(a[i].ok, 25);
}

TEST(loopback_refused_without_allowlist)
{
    struct outbound_config cfg = {.max_body = 1024};
    struct outbound *o = NULL;
    CHECK_EQ_INT(outbound_start(&cfg, &o), 0);
    static const char *const hosts[] = {"127.0.0.1", "localhost",    "2130706433",         "0x7f.1",
                                        "127.1",     "017700000001", "[::ffff:127.0.0.1]", "[::1]",
                                        "0"};
    enum { N = sizeof hosts / sizeof hosts[0] };
    char urls[N][96];
    struct outbound_request q[N];
    struct outbound_response r[N];
    for (int i = 0; i < (int)N; i++) {
        snprintf(urls[i], sizeof urls[i], "http://%s:%d/ok", hosts[i], up.port);
        q[i] = get_req(urls[i], "key-ssrf");
    }
    int before = seen();
    CHECK_EQ_INT(outbound_run(o, q, r, N), 0);
    for (int i = 0; i < (int)N; i++) {
        if (r[i].error != -SLUICE_E_INVALID_PARAMETER || r[i].failure != OUTBOUND_NOT_ALLOWED ||
            r[i].attempts != 1 || r[i].status != 0 ||
            strncmp(r[i].message, "target address ", 15) != 0 ||
            !strstr(r[i].message, " is not allowed ("))
            TH_FAIL("%s: error %d failure %s attempts %d status %d message \"%s\"", urls[i],
                    r[i].error, outbound_failure_name(r[i].failure), r[i].attempts, r[i].status,
                    r[i].message);
    }
    CHECK_EQ_STR(r[0].message, "target address 127.0.0.1 is not allowed (loopback)");
    CHECK_EQ_STR(r[2].message, "target address 127.0.0.1 is not allowed (loopback)");
    CHECK_EQ_STR(r[6].message, "target address ::ffff:127.0.0.1 is not allowed (loopback)");
    CHECK_EQ_STR(r[7].message, "target address ::1 is not allowed (loopback)");
    CHECK_EQ_STR(r[8].message, "target address 0.0.0.0 is not allowed (unspecified)");
    for (int i = 0; i < (int)N; i++)
        outbound_response_release(&r[i]);
    CHECK_EQ_INT(seen(), before); /* not one connection reached the upstream */
    outbound_free(o);
}

TEST(allowlist_scopes_targets)
{
    /* A non-empty allowlist that does not cover loopback still refuses it... */
    const char *const other[] = {"10.0.0.0/8", NULL};
    struct outbound_config cfg = {.allow = other};
    struct outbound *o = NULL;
    CHECK_EQ_INT(outbound_start(&cfg, &o), 0);
    struct outbound_request q = get_req(url_of("/ok"), "key-scope-1");
    struct outbound_response r;
    int before = seen();
    CHECK_EQ_INT(outbound_run(o, &q, &r, 1), 0);
    CHECK_EQ_INT(r.failure, OUTBOUND_NOT_ALLOWED);
    CHECK_EQ_STR(r.message,
                 "target address 127.0.0.1 is not allowed (loopback, not in the allowlist)");
    CHECK_EQ_INT(seen(), before);
    outbound_response_release(&r);
    outbound_free(o);

    /* ...and a host entry admits whatever that name resolves to. */
    const char *const byhost[] = {"localhost", NULL};
    cfg.allow = byhost;
    CHECK_EQ_INT(outbound_start(&cfg, &o), 0);
    char url[96];
    snprintf(url, sizeof url, "http://localhost:%d/ok", up.port);
    q = get_req(url, "key-scope-2");
    CHECK_EQ_INT(outbound_run(o, &q, &r, 1), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(hits("/ok", "key-scope-2"), 1);
    outbound_response_release(&r);
    outbound_free(o);
}

struct stop_arg {
    struct outbound *o;
    struct outbound_request q[2];
    struct outbound_response r[2];
    int rc;
};

static void *stop_runner(void *p)
{
    struct stop_arg *a = p;
    a->rc = outbound_run(a->o, a->q, a->r, 2);
    return NULL;
}

TEST(stop_fails_outstanding)
{
    struct outbound_config cfg = {.allow = loopback_allow};
    struct stop_arg a = {.rc = 99};
    CHECK_EQ_INT(outbound_start(&cfg, &a.o), 0);
    int port = closed_port();
    char closed[64];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d/", port);
    a.q[0] = get_req(url_of("/slow"), "key-stop-1"); /* in flight at stop */
    a.q[1] = get_req(closed, "key-stop-2");          /* waiting for a retry at stop */
    a.q[1].max_attempts = 10;
    a.q[1].backoff_ms = 10000;
    a.q[1].max_backoff_ms = 10000;
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, stop_runner, &a), 0);
    usleep(300 * 1000);
    outbound_stop(a.o);
    pthread_join(t, NULL); /* stop has waited for the run to return */
    CHECK_EQ_INT(a.rc, 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(a.r[i].error, -SLUICE_E_SHUTTING_DOWN);
        CHECK_EQ_INT(a.r[i].failure, OUTBOUND_SHUTTING_DOWN);
        outbound_response_release(&a.r[i]);
    }
    /* runs after stop end at once */
    struct outbound_request q = get_req(url_of("/ok"), "key-stop-3");
    struct outbound_response r;
    CHECK_EQ_INT(outbound_run(a.o, &q, &r, 1), 0);
    CHECK_EQ_INT(r.error, -SLUICE_E_SHUTTING_DOWN);
    CHECK_EQ_INT(r.attempts, 0);
    CHECK_EQ_INT(hits("/ok", "key-stop-3"), 0);
    outbound_response_release(&r);
    outbound_stop(a.o); /* idempotent */
    outbound_free(a.o);
}

int main(void)
{
    RUN(backoff_bounds);
    RUN(retry_after_parse);
    RUN(bad_config);
    if (upstream_start() < 0) {
        fprintf(stderr, "cannot start the fake upstream\n");
        return 1;
    }
    struct outbound_config cfg = {
        .allow = loopback_allow,
        .max_body = 64 * 1024,
        .max_in_flight = 64,
    };
    if (outbound_start(&cfg, &ob) < 0) {
        fprintf(stderr, "cannot start the outbound engine\n");
        return 1;
    }
    RUN(ok_get);
    RUN(post_body_and_headers);
    RUN(retries_until_ok_same_key);
    RUN(retries_exhausted_returns_last_status);
    RUN(retry_after_seconds_honoured);
    RUN(retry_after_date_honoured);
    RUN(retry_after_too_long_fails);
    RUN(timeout_retried_then_failed);
    RUN(deadline_cuts_timeout_and_retries);
    RUN(dropped_connection_retried);
    RUN(connect_error_retried);
    RUN(big_body_truncated);
    RUN(redirect_not_followed);
    RUN(invalid_requests_not_sent);
    RUN(after_orders_chains_and_nothing_else);
    RUN(after_an_invalid_request_starts_at_once_and_must_point_back);
    RUN(two_hundred_concurrent);
    RUN(connections_outlive_a_round_of_requests);
    RUN(four_threads_at_once);
    RUN(loopback_refused_without_allowlist);
    RUN(allowlist_scopes_targets);
    RUN(stop_fails_outstanding);
    outbound_free(ob);
    upstream_stop();
    return test_report();
}
