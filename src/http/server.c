/* server.c - libmicrohttpd daemon, route matching and the request lifecycle.
 *
 * The access handler is called several times per request (see server.h DESIGN):
 *   1st call   headers only: build struct request, match the route, check the
 *              Content-Length headers, authenticate. Errors are remembered as a
 *              pending reply (queueing now would cost keep-alive) except a
 *              too-large declared body, which is refused at once.
 *   body calls buffer the body or pass it to the route's on_body; after an error,
 *              discard the rest (bounded, then the connection is dropped).
 *   last call  run the handler, queue its reply.
 * NOTIFY_COMPLETED runs on_end, writes the log line and the metrics, frees.
 *
 * Framing (RFC 9112 6.1, 3.2): a request whose length is ambiguous (Content-Length
 * twice, or with Transfer-Encoding, or unparsable) or whose Host is missing (HTTP/1.1)
 * or repeated is answered 400 at once with Connection: close, and nothing after it
 * on that connection is read: what follows could be a smuggled request. A request
 * target longer than max_url_bytes or with more than max_query_params parameters
 * gets 414 (checked in the URI callback, before MHD parses the parameters into its
 * per-connection pool), a header block over max_header_bytes 431. The pool is sized
 * from those limits, so a header block much larger than allowed is refused by MHD
 * itself (its own 431/414) without being read in full.
 *
 * Connections: MHD accepts PROBE_RESERVE more than cfg.max_connections; a request on
 * one of those (judged when it opens) that needs a tenant (ROUTE_AUTH) gets 503 and
 * the connection closes,
 * so health probes still get in when clients hold every ordinary slot. */
#include "http/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/encoding.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/url.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

#define MAX_HEADERS 16
#define DISCARD_LIMIT (64u << 20) /* bytes we read past an error before dropping the client */

/* Under connection pressure, how long a connection may owe request headers. */
#define PRESSURE_WAIT_MS 2000
/* Connections accepted beyond --max-connections for requests that need no tenant
 * (health probes, docs): a full server still answers its probes. */
#define PROBE_RESERVE 8

/* *con_cls from uri_check() for a request target over the limits (answered 414). */
static char uri_refused_mark;
#define URI_REFUSED ((void *)&uri_refused_mark)

/* One open connection, for the request deadline (see watchdog_main). */
struct conn_watch {
    struct conn_watch *prev, *next;
    MHD_socket fd;
    int64_t waiting_since; /* mono ms: since when it owes the headers of a request */
    int in_request;        /* headers arrived; the request runs (the body has its own rule) */
    int reserve;           /* opened beyond --max-connections: keyless requests only */
};

struct http_server {
    struct MHD_Daemon *d;
    const struct route *routes;
    size_t nroutes;
    http_auth_fn auth;
    void *app;
    struct http_config cfg;
    uint16_t port;
    pthread_mutex_t wmu;        /* guards watched and every conn_watch */
    struct conn_watch *watched; /* open connections */
    unsigned nwatched;          /* how many */
    pthread_t watchdog;
    int watchdog_started;
    int stopping;  /* under wmu */
    unsigned live; /* requests begun and not freed yet, under wmu */
    pthread_cond_t wcv;
};

struct alloc {
    struct alloc *next;
    char data[];
};

struct request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    const struct route *route;
    const char *method;  /* MHD-owned, valid for the request */
    const char *version; /* MHD-owned, e.g. "HTTP/1.1" */
    int uri_refused;     /* the URI callback refused the target (414) */
    char *path;
    struct route_params params;
    char id[48];
    char tenant[161];
    char base_url[300];
    char client_ip[INET6_ADDRSTRLEN]; /* "" if unknown */
    struct buf body;
    uint64_t body_bytes;
    uint64_t discarded;
    int body_error;
    struct MHD_Response *resp;
    unsigned status;
    char *hnames[MAX_HEADERS], *hvalues[MAX_HEADERS];
    int nheaders;
    void *ctx;
    void (*on_resume)(struct request *req); /* continuation of a parked handler */
    int suspend_now;                        /* the handler just parked the request */
    const char *note;                       /* req_set_note(); lives in allocs */
    void (*at_end)(struct request *req);    /* req_at_end() */
    int64_t start_ns;
    struct alloc *allocs;
};

/* ---- small helpers -------------------------------------------------------------- */

char *req_strdup(struct request *req, const char *s)
{
    size_t n = strlen(s);
    struct alloc *a = xmalloc(sizeof *a + n + 1);
    memcpy(a->data, s, n + 1);
    a->next = req->allocs;
    req->allocs = a;
    return a->data;
}

const char *req_method(const struct request *req)
{
    return req->method;
}
const char *req_path(const struct request *req)
{
    return req->path;
}

const void *req_route_arg(const struct request *req)
{
    return req->route ? req->route->arg : NULL;
}
const char *req_tenant(const struct request *req)
{
    return req->tenant;
}
const char *req_id(const struct request *req)
{
    return req->id;
}
const char *req_base_url(const struct request *req)
{
    return req->base_url;
}
const char *req_client_ip(const struct request *req)
{
    return req->client_ip;
}
void *req_app(const struct request *req)
{
    return req->srv->app;
}
void *req_ctx(const struct request *req)
{
    return req->ctx;
}
void req_set_ctx(struct request *req, void *ctx)
{
    req->ctx = ctx;
}
int req_replied(const struct request *req)
{
    return req->resp != NULL;
}

void req_park(struct request *req, void (*on_resume)(struct request *req))
{
    req->on_resume = on_resume;
    req->suspend_now = 1;
    MHD_suspend_connection(req->conn);
}

void req_at_end(struct request *req, void (*fn)(struct request *req))
{
    req->at_end = fn;
}

void req_set_note(struct request *req, const char *note)
{
    req->note = req_strdup(req, note);
}

const char *req_note(const struct request *req)
{
    return req->note;
}

void req_suspend_stream(struct request *req)
{
    MHD_suspend_connection(req->conn);
}

void req_resume(struct request *req)
{
    MHD_resume_connection(req->conn);
}

void req_set_tenant(struct request *req, const char *tenant)
{
    snprintf(req->tenant, sizeof req->tenant, "%s", tenant);
}

const char *req_param(const struct request *req, const char *name)
{
    for (int i = 0; i < req->params.n; i++)
        if (strcmp(req->params.name[i], name) == 0)
            return req->params.value[i];
    return NULL;
}

const char *req_query(const struct request *req, const char *name)
{
    const char *raw = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!raw)
        return NULL;
    char *v = req_strdup((struct request *)req, raw);
    if (url_decode(v, 1) < 0)
        return NULL;
    return v;
}

const char *req_header(const struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *req_body(const struct request *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return buf_cstr(&req->body);
}

/* ---- replies -------------------------------------------------------------------- */

void reply_header(struct request *req, const char *name, const char *value)
{
    if (req->nheaders == MAX_HEADERS)
        return;
    req->hnames[req->nheaders] = xstrdup(name);
    req->hvalues[req->nheaders] = xstrdup(value);
    req->nheaders++;
}

static void set_reply(struct request *req, unsigned status, struct MHD_Response *resp,
                      const char *content_type)
{
    if (req->resp) { /* a second reply is our bug: keep the first */
        log_write(LOG_ERROR, "handler replied twice", "path", req->path, NULL);
        MHD_destroy_response(resp);
        return;
    }
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    for (int i = 0; i < req->nheaders; i++)
        MHD_add_response_header(resp, req->hnames[i], req->hvalues[i]);
    req->resp = resp;
    req->status = status;
}

/* A strong ETag names the bytes of one representation, and the gzip encoding is
 * another (RFC 9110 8.8.3), so a compressed reply carries the weak form of the tag, as
 * nginx does. If-None-Match compares weakly, so either form revalidates. */
static void weaken_etag(struct request *req)
{
    for (int i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->hnames[i], "ETag") == 0 && req->hvalues[i][0] == '"') {
            size_t n = strlen(req->hvalues[i]);
            char *w = xmalloc(n + 3);
            memcpy(w, "W/", 2);
            memcpy(w + 2, req->hvalues[i], n + 1);
            free(req->hvalues[i]);
            req->hvalues[i] = w;
        }
    }
}

/* Whether a reply of len bytes (SIZE_MAX: a stream) is gzip-encoded (encoding.h): the
 * media type is text-like, the request accepts gzip and the body is long enough. Says
 * so to caches (Vary) whenever the answer depends on the request, and weakens the
 * ETag when it is. */
static int reply_gzips(struct request *req, const char *content_type, size_t len)
{
    if (!encoding_compressible(content_type) || len < ENCODING_MIN_BYTES)
        return 0;
    reply_header(req, "Vary", "Accept-Encoding");
    if (!encoding_accepts_gzip(req_header(req, "Accept-Encoding")))
        return 0;
    weaken_etag(req);
    return 1;
}

static void reply_bytes(struct request *req, int status, const char *content_type, const void *body,
                        size_t len)
{
    struct buf z = BUF_INIT;
    if (reply_gzips(req, content_type, len) && encoding_gzip(body, len, &z) == 0) {
        reply_header(req, "Content-Encoding", "gzip");
        body = z.data;
        len = z.len;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, len ? (void *)body : (void *)"",
                                                             MHD_RESPMEM_MUST_COPY);
    buf_release(&z);
    set_reply(req, (unsigned)status, r, content_type);
}

void reply_json(struct request *req, int status, const char *body, size_t len)
{
    reply_bytes(req, status, "application/json", body, len);
}

void reply_buf(struct request *req, int status, const char *content_type, struct buf *b)
{
    reply_bytes(req, status, content_type, b->data, b->len);
    buf_reset(b);
}

void reply_empty(struct request *req, int status)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    set_reply(req, (unsigned)status, r, NULL);
}

void reply_not_modified(struct request *req, const char *content_type, size_t len)
{
    reply_gzips(req, content_type, len);
    reply_empty(req, 304);
}

void reply_error(struct request *req, int err, const char *target, const char *message)
{
    reply_error_code(req, err, sluice_err_code(err), target, message);
}

void reply_error_code(struct request *req, int err, const char *code, const char *target,
                      const char *message)
{
    struct buf b = BUF_INIT;
    const char *msg = message ? message : sluice_err_message(err);
    buf_puts(&b, "{\"error\":{\"code\":");
    buf_json_str(&b, code, strlen(code));
    buf_puts(&b, ",\"message\":");
    buf_json_str(&b, msg, strlen(msg));
    buf_puts(&b, ",\"target\":");
    if (target)
        buf_json_str(&b, target, strlen(target));
    else
        buf_puts(&b, "null");
    buf_puts(&b, "}}");
    int status = sluice_err_status(err);
    int has_retry_after = 0;
    for (int i = 0; i < req->nheaders; i++)
        has_retry_after |= strcasecmp(req->hnames[i], "Retry-After") == 0;
    if (status == 503 && !has_retry_after) /* a handler may have said how long */
        reply_header(req, "Retry-After", "1");
    reply_buf(req, status, "application/json", &b);
    buf_release(&b);
}

void reply_errorf(struct request *req, int err, const char *target, const char *fmt, ...)
{
    struct buf b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    reply_error(req, err, target, buf_cstr(&b));
    buf_release(&b);
}

struct stream_ctx {
    reply_reader_fn reader;
    void *ctx;
    reply_free_fn free_fn;
    /* gzip-encoded streams only (z != NULL): compressed bytes not yet handed to MHD
     * are zout[zoff..); dirty: bytes of input since the last flush; done: finished. */
    struct encoding_stream *z;
    struct buf zout;
    size_t zoff, dirty;
    int done;
};

static ssize_t stream_read_plain(struct stream_ctx *s, char *out, size_t max)
{
    long n = s->reader(s->ctx, out, max);
    if (n == REPLY_READER_SUSPENDED)
        return 0; /* suspended: MHD asks again after req_resume() */
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return (ssize_t)n;
}

/* Highly repetitive output (results of one workflow) can feed deflate megabytes
 * before it emits a block: the client would see nothing, and a stream cut part way
 * would look whole. A flush after this much input keeps the stream moving for a few
 * bytes of ratio. */
#define STREAM_GZIP_FLUSH_BYTES (64 * 1024)

/* The reader's bytes through the compressor. out doubles as the scratch space the
 * reader fills: the compressor has taken every byte before out is written. */
static ssize_t stream_read_gzip(struct stream_ctx *s, char *out, size_t max)
{
    for (;;) {
        if (s->zoff < s->zout.len) {
            size_t n = s->zout.len - s->zoff;
            if (n > max)
                n = max;
            memcpy(out, s->zout.data + s->zoff, n);
            s->zoff += n;
            if (s->zoff == s->zout.len) {
                buf_reset(&s->zout);
                s->zoff = 0;
            }
            return (ssize_t)n;
        }
        if (s->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        long n = s->reader(s->ctx, out, max);
        int rc = 0;
        if (n == REPLY_READER_SUSPENDED) {
            /* nothing more for a while: what the client has been sent must decode */
            if (!s->dirty)
                return 0;
            rc = encoding_stream_put(s->z, NULL, 0, ENCODING_SYNC, &s->zout);
            s->dirty = 0;
        } else if (n < 0) {
            return MHD_CONTENT_READER_END_WITH_ERROR;
        } else if (n == 0) {
            rc = encoding_stream_put(s->z, NULL, 0, ENCODING_FINISH, &s->zout);
            s->done = 1;
        } else {
            s->dirty += (size_t)n;
            int flush = s->dirty >= STREAM_GZIP_FLUSH_BYTES ? ENCODING_SYNC : 0;
            rc = encoding_stream_put(s->z, out, (size_t)n, flush, &s->zout);
            if (flush)
                s->dirty = 0;
        }
        if (rc < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct stream_ctx *s = cls;
    return s->z ? stream_read_gzip(s, out, max) : stream_read_plain(s, out, max);
}

static void stream_free(void *cls)
{
    struct stream_ctx *s = cls;
    if (s->free_fn)
        s->free_fn(s->ctx);
    encoding_stream_free(s->z);
    buf_release(&s->zout);
    free(s);
}

void reply_stream(struct request *req, int status, const char *content_type, reply_reader_fn reader,
                  void *ctx, reply_free_fn free_fn)
{
    struct stream_ctx *s = xcalloc(1, sizeof *s);
    s->reader = reader;
    s->ctx = ctx;
    s->free_fn = free_fn;
    /* A stream's length is not known up front: any stream a client accepts gzip for is
     * compressed (text/event-stream never is: encoding_compressible). */
    if (reply_gzips(req, content_type, SIZE_MAX) && (s->z = encoding_stream_new()) != NULL)
        reply_header(req, "Content-Encoding", "gzip");
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, s, stream_free);
    set_reply(req, (unsigned)status, r, content_type);
}

/* ---- routing -------------------------------------------------------------------- */

static void route_request(struct request *req)
{
    int path_matched = 0;
    for (size_t i = 0; i < req->srv->nroutes; i++) {
        const struct route *r = &req->srv->routes[i];
        if (!route_match(r->pattern, req->path, NULL))
            continue;
        path_matched = 1;
        if (strcmp(r->method, req->method) != 0)
            continue;
        if (route_match(r->pattern, req->path, &req->params) < 0) {
            reply_error(req, SLUICE_E_INVALID_PARAMETER, NULL,
                        "a path segment is not valid percent-encoded UTF-8 (or encodes NUL)");
            return;
        }
        req->route = r;
        return;
    }
    if (path_matched)
        reply_errorf(req, SLUICE_E_METHOD_NOT_ALLOWED, NULL, "%s is not allowed on %s", req->method,
                     req->path);
    else
        reply_errorf(req, SLUICE_E_NOT_FOUND, NULL, "no route for %s", req->path);
}

/* ---- the request lifecycle ------------------------------------------------------- */

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    (void)value;
    int *counts = cls;
    if (strcasecmp(key, "Content-Length") == 0)
        counts[0]++;
    else if (strcasecmp(key, "Transfer-Encoding") == 0)
        counts[1]++;
    else if (strcasecmp(key, "Host") == 0)
        counts[2]++;
    else if (strcasecmp(key, "Content-Encoding") == 0)
        counts[4]++;
    counts[3] += (int)(strlen(key) + (value ? strlen(value) : 0) + 4); /* "k: v\r\n" */
    return MHD_YES;
}

/* Query arguments arrive raw (identity unescape): each name and value must decode
 * to UTF-8 text, or the request is refused before any handler sees it. */
static enum MHD_Result check_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    (void)kind;
    struct request *req = cls;
    const char *parts[2] = {key, value ? value : ""};
    for (int i = 0; i < 2; i++) {
        char *v = xstrdup(parts[i]);
        long n = url_decode(v, 1);
        int ok = n >= 0 && utf8_valid_text(v, (size_t)n);
        free(v);
        if (!ok) {
            char *name = xstrdup(key);
            long kn = url_decode(name, 1);
            const char *target = kn >= 0 && utf8_valid_text(name, (size_t)kn) ? name : NULL;
            reply_error(req, SLUICE_E_INVALID_PARAMETER, target,
                        "a query parameter is not valid percent-encoded UTF-8 (or encodes NUL)");
            free(name);
            return MHD_NO;
        }
    }
    return MHD_YES;
}

/* The peer's address as text: IPv4 dotted quad (also for IPv4-mapped IPv6), IPv6
 * in its RFC 5952 form; "" if MHD cannot tell. */
static void client_ip(struct MHD_Connection *conn, char out[INET6_ADDRSTRLEN])
{
    out[0] = '\0';
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        if (!inet_ntop(AF_INET, &in4->sin_addr, out, INET6_ADDRSTRLEN))
            out[0] = '\0';
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const void *a = &in6->sin6_addr;
        int af = AF_INET6;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            a = in6->sin6_addr.s6_addr + 12;
            af = AF_INET;
        }
        if (!inet_ntop(af, a, out, INET6_ADDRSTRLEN))
            out[0] = '\0';
    }
}

static struct request *request_new(struct http_server *srv, struct MHD_Connection *conn,
                                   const char *url, const char *method, const char *version)
{
    struct request *req = xcalloc(1, sizeof *req);
    pthread_mutex_lock(&srv->wmu);
    srv->live++;
    pthread_mutex_unlock(&srv->wmu);
    req->srv = srv;
    req->conn = conn;
    req->method = method;
    req->version = version ? version : "";
    req->start_ns = clock_mono_ns();
    buf_init(&req->body);
    /* The path comes raw (our unescape callback is the identity); strip the query. */
    size_t plen = strcspn(url, "?");
    req->path = xstrndup(url, plen);
    client_ip(conn, req->client_ip);
    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && ids_name_valid(rid, sizeof req->id - 1, ".:[]"))
        snprintf(req->id, sizeof req->id, "%s", rid);
    else
        ids_random("req_", 20, req->id);
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (host && ids_name_valid(host, 255, ".:[]"))
        snprintf(req->base_url, sizeof req->base_url, "http://%s", host);
    else
        snprintf(req->base_url, sizeof req->base_url, "http://%s:%u", srv->cfg.host,
                 (unsigned)srv->port);
    return req;
}

static void request_free(struct request *req)
{
    if (req->resp)
        MHD_destroy_response(req->resp);
    route_params_release(&req->params);
    for (int i = 0; i < req->nheaders; i++) {
        free(req->hnames[i]);
        free(req->hvalues[i]);
    }
    while (req->allocs) {
        struct alloc *a = req->allocs;
        req->allocs = a->next;
        free(a);
    }
    buf_release(&req->body);
    free(req->path);
    pthread_mutex_lock(&req->srv->wmu);
    req->srv->live--;
    pthread_mutex_unlock(&req->srv->wmu);
    free(req);
}

static uint64_t body_limit(const struct request *req)
{
    if (req->route && (req->route->flags & ROUTE_STREAM_BODY))
        return req->srv->cfg.max_stream_body;
    return req->srv->cfg.max_body;
}

/* Nonzero when req's connection is one of the probe reserve: it opened while
 * --max-connections were open (MHD takes max_connections + PROBE_RESERVE). */
static int on_reserve_connection(struct request *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const struct conn_watch *w = ci ? ci->socket_context : NULL;
    if (!w)
        return 0;
    pthread_mutex_lock(&req->srv->wmu);
    int reserve = w->reserve;
    pthread_mutex_unlock(&req->srv->wmu);
    return reserve;
}

/* A reply that must end the connection (the request's framing cannot be trusted, or
 * its head was refused): sent at once, with Connection: close, so MHD reads nothing
 * more from the client. Returns 1, request_start's "queue now". */
static int framing_error(struct request *req)
{
    if (req->resp)
        MHD_add_response_header(req->resp, MHD_HTTP_HEADER_CONNECTION, "close");
    return 1;
}

/* First call: everything that only needs the headers. The framing checks come
 * before routing: a request with an unknown path or a bad query must not leave its
 * connection open for bytes whose framing we cannot trust. */
static int request_start(struct request *req)
{
    if (req->uri_refused) {
        reply_errorf(req, SLUICE_E_URI_TOO_LONG, NULL,
                     "the request target exceeds %zu bytes or %u query parameters",
                     req->srv->cfg.max_url_bytes, req->srv->cfg.max_query_params);
        return framing_error(req);
    }
    int counts[5] = {0, 0, 0, 0, 0};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, count_header, counts);
    if ((size_t)counts[3] > req->srv->cfg.max_header_bytes) {
        reply_errorf(req, SLUICE_E_HEADERS_TOO_LARGE, NULL,
                     "the request header block exceeds the limit of %zu bytes",
                     req->srv->cfg.max_header_bytes);
        return framing_error(req);
    }
    /* Two Transfer-Encoding fields frame differently for MHD (the first) and for a
     * proxy that joins them ("chunked, gzip"); RFC 9112 6.1: a 1.0 request with one is
     * to be answered and closed. */
    int v10 = strcmp(req->version, MHD_HTTP_VERSION_1_0) == 0;
    if (counts[0] > 1 || counts[1] > 1 || (counts[0] && counts[1]) || (counts[1] && v10)) {
        reply_error(req, SLUICE_E_INVALID_REQUEST, NULL,
                    "conflicting Content-Length / Transfer-Encoding headers");
        return framing_error(req);
    }
    /* Two Content-Encoding fields are one list of codings (RFC 9110 5.3), which no
     * handler takes, and req_header() would show the first only: refused here. */
    if (counts[4] > 1) {
        reply_error(req, SLUICE_E_UNSUPPORTED_MEDIA_TYPE, "Content-Encoding",
                    "more than one Content-Encoding header; send one coding (gzip, deflate or "
                    "identity)");
        return framing_error(req);
    }
    /* RFC 9112 3.2: HTTP/1.1 requires exactly one Host; 1.0 predates it. */
    if (counts[2] > 1 || (counts[2] == 0 && !v10)) {
        reply_error(req, SLUICE_E_INVALID_REQUEST, "Host",
                    counts[2] ? "more than one Host header"
                              : "an HTTP/1.1 request needs a Host header");
        return framing_error(req);
    }
    /* RFC 9112 6.1: a request whose last transfer coding is not chunked has no
     * knowable length; only plain "chunked" is accepted (MHD would read to the end). */
    const char *te = req_header(req, "Transfer-Encoding");
    if (te && strcasecmp(te, "chunked") != 0) {
        reply_errorf(req, SLUICE_E_INVALID_REQUEST, NULL,
                     "Transfer-Encoding \"%.40s\" is not supported; send chunked or a "
                     "Content-Length",
                     te);
        return framing_error(req); /* closes instead of guessing where the body ends */
    }
    const char *cl = req_header(req, "Content-Length");
    unsigned long long declared = 0;
    if (cl) {
        char *end;
        declared = strtoull(cl, &end, 10);
        if (*end || end == cl) {
            reply_error(req, SLUICE_E_INVALID_REQUEST, NULL, "invalid Content-Length");
            return framing_error(req);
        }
    }
    route_request(req);
    if (!req->resp)
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_query_arg, req);
    if (req->resp)
        return 0;
    if ((req->route->flags & ROUTE_AUTH) && on_reserve_connection(req)) {
        reply_errorf(req, SLUICE_E_SERVER_BUSY, NULL,
                     "the server holds its %u connections; the few beyond are kept for "
                     "health probes; retry later",
                     req->srv->cfg.max_connections);
        return framing_error(req); /* closes: gives the reserved slot back */
    }
    if (cl && declared > body_limit(req)) {
        reply_errorf(req, SLUICE_E_PAYLOAD_TOO_LARGE, NULL,
                     "request body of %llu bytes exceeds the limit of %llu bytes", declared,
                     (unsigned long long)body_limit(req));
        return 1; /* refuse now: the connection closes instead of reading the body */
    }
    if ((req->route->flags & ROUTE_AUTH) && req->srv->auth)
        req->srv->auth(req);
    return 0;
}

static void request_body(struct request *req, const char *data, size_t n)
{
    req->body_bytes += n;
    if (req->resp) {
        req->discarded += n;
        return;
    }
    if (req->body_bytes > body_limit(req)) {
        reply_errorf(req, SLUICE_E_PAYLOAD_TOO_LARGE, NULL,
                     "request body exceeds the limit of %llu bytes",
                     (unsigned long long)body_limit(req));
        return;
    }
    if (req->route->flags & ROUTE_STREAM_BODY) {
        if (req->route->on_body(req, data, n) < 0 && !req->resp)
            reply_error(req, SLUICE_E_INTERNAL, NULL, NULL);
    } else {
        buf_append(&req->body, data, n);
    }
}

static enum MHD_Result queue(struct request *req)
{
    if (!req->resp) {
        log_write(LOG_ERROR, "handler returned without a reply", "path", req->path, NULL);
        reply_error(req, SLUICE_E_INTERNAL, NULL, NULL);
    }
    return MHD_queue_response(req->conn, req->status, req->resp);
}

/* ---- the request deadline ----------------------------------------------------------
 * libmicrohttpd's timeout is an idle timeout: a client that sends one byte every few
 * seconds never idles. So a watchdog thread cuts (shutdown(2); MHD then closes) every
 * connection that has owed the headers of a request for longer than
 * cfg.request_timeout_s - since it opened or since its last request ended - and a
 * body that arrives slower than cfg.min_body_rate bytes/s on average once the request
 * is older than request_timeout_s is cut where it is (request_body). MHD tells us of
 * a connection's end before it closes the socket, under wmu, so an fd we shut down is
 * always still the connection's own. Under pressure (3/4 of --max-connections open)
 * the header deadline shrinks to PRESSURE_WAIT_MS. */

static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn_watch *w = xcalloc(1, sizeof *w);
        w->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
        w->waiting_since = clock_mono_ms();
        pthread_mutex_lock(&srv->wmu);
        w->next = srv->watched;
        if (w->next)
            w->next->prev = w;
        srv->watched = w;
        srv->nwatched++;
        /* Judged once, when it opens: a connection inside the cap keeps its rights
         * however many open after it. */
        w->reserve = srv->nwatched > srv->cfg.max_connections;
        pthread_mutex_unlock(&srv->wmu);
        *socket_context = w;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        struct conn_watch *w = *socket_context;
        pthread_mutex_lock(&srv->wmu);
        if (w->prev)
            w->prev->next = w->next;
        else
            srv->watched = w->next;
        if (w->next)
            w->next->prev = w->prev;
        srv->nwatched--;
        pthread_mutex_unlock(&srv->wmu);
        free(w);
        *socket_context = NULL;
    }
}

/* The connection's watch entry marks a request starting (1) or ending (0). */
static void watch_mark(struct request *req, int in_request)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_watch *w = ci ? ci->socket_context : NULL;
    if (!w)
        return;
    pthread_mutex_lock(&req->srv->wmu);
    w->in_request = in_request;
    w->waiting_since = clock_mono_ms();
    pthread_mutex_unlock(&req->srv->wmu);
}

static void *watchdog_main(void *arg)
{
    struct http_server *srv = arg;
    int64_t limit = (int64_t)srv->cfg.request_timeout_s * 1000;
    pthread_mutex_lock(&srv->wmu);
    while (!srv->stopping) {
        int64_t now = clock_mono_ms();
        /* Under pressure (three quarters of the connection cap open) a connection that
         * owes request headers gets PRESSURE_WAIT_MS, not the full deadline: idle and
         * half-open connections must not keep out clients with a request to make. */
        unsigned open = srv->nwatched;
        int64_t lim = limit;
        if (srv->cfg.max_connections && open * 4 >= srv->cfg.max_connections * 3 &&
            lim > PRESSURE_WAIT_MS)
            lim = PRESSURE_WAIT_MS;
        for (struct conn_watch *w = srv->watched; w; w = w->next)
            if (!w->in_request && w->fd != MHD_INVALID_SOCKET && now - w->waiting_since > lim) {
                shutdown(w->fd, SHUT_RDWR); /* MHD sees the end and closes it */
                w->waiting_since = now;     /* once is enough */
                metrics_request(408, 0);
                log_write(LOG_WARN,
                          "cut a connection that did not send its request headers in "
                          "time",
                          NULL);
            }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&srv->wcv, &srv->wmu, &ts);
    }
    pthread_mutex_unlock(&srv->wmu);
    return NULL;
}

/* A body too slow for the deadline: nonzero when the connection should be cut. */
static int body_too_slow(const struct request *req)
{
    const struct http_config *c = &req->srv->cfg;
    if (!c->request_timeout_s || !c->min_body_rate)
        return 0;
    int64_t ms = (clock_mono_ns() - req->start_ns) / 1000000;
    if (ms <= (int64_t)c->request_timeout_s * 1000)
        return 0;
    return (double)req->body_bytes * 1000.0 / (double)ms < (double)c->min_body_rate;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    struct http_server *srv = cls;
    struct request *req = *con_cls;
    if (!req || req == URI_REFUSED) {
        int refused = req == URI_REFUSED;
        req = request_new(srv, conn, url, method, version);
        req->uri_refused = refused;
        *con_cls = req;
        watch_mark(req, 1);
        if (request_start(req))
            return queue(req);
        return MHD_YES;
    }
    if (*upload_data_size) {
        request_body(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (body_too_slow(req)) {
            log_write(LOG_WARN, "cut an upload slower than the minimum body rate", "requestId",
                      req->id, NULL);
            return MHD_NO; /* closes the connection; a streamed submit stores nothing */
        }
        return req->discarded > DISCARD_LIMIT ? MHD_NO : MHD_YES;
    }
    if (!req->resp) {
        void (*resume)(struct request *) = req->on_resume;
        req->on_resume = NULL;
        if (resume)
            resume(req);
        else
            req->route->handler(req);
    }
    if (req->suspend_now) { /* the handler parked the request; it replies when resumed */
        req->suspend_now = 0;
        return MHD_YES;
    }
    return queue(req);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    struct request *req = *con_cls;
    *con_cls = NULL;
    if (!req || req == URI_REFUSED)
        return;
    watch_mark(req, 0); /* the connection now owes the next request's headers */
    if (req->at_end)
        req->at_end(req);
    int ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    if (req->route && req->route->on_end)
        req->route->on_end(req, ok);
    int64_t dur = clock_mono_ns() - req->start_ns;
    unsigned status = req->resp ? req->status : 499; /* client gone before a reply */
    metrics_request((int)status, dur);
    char st[16], ms[32], in[32];
    snprintf(st, sizeof st, "=%u", status);
    snprintf(ms, sizeof ms, "=%.3f", (double)dur / 1e6);
    snprintf(in, sizeof in, "=%llu", (unsigned long long)req->body_bytes);
    log_write(status >= 500 ? LOG_WARN : LOG_INFO, "request", "requestId", req->id, "method",
              req->method, "path", req->path, "status", st, "durationMs", ms, "bytesIn", in,
              "tenant", req->tenant[0] ? req->tenant : NULL, "completed", ok ? "=true" : "=false",
              NULL);
    request_free(req);
}

/* Called with the raw request target before MHD parses its query parameters into
 * the connection's pool (each costs a record there: thousands would exhaust it and
 * MHD would drop the request without an answer). A target over the limits is
 * marked for 414, and its query is cut off here so that MHD parses none of it. */
static void *uri_check(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    struct http_server *srv = cls;
    size_t n = strlen(uri);
    const char *q = strchr(uri, '?');
    unsigned params = 0;
    if (q)
        for (const char *p = q; p && params <= srv->cfg.max_query_params; p = strchr(p + 1, '&'))
            params++;
    if (n <= srv->cfg.max_url_bytes && params <= srv->cfg.max_query_params)
        return NULL;
    /* MHD hands us its own writable line buffer, found the '?' before this call and
     * parses what follows it: an empty string there means no parameters. */
    if (q)
        ((char *)q)[1] = '\0';
    return URI_REFUSED;
}

static size_t identity_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    struct buf b = BUF_INIT;
    buf_vprintf(&b, fmt, ap);
    while (b.len && (b.data[b.len - 1] == '\n'))
        b.data[--b.len] = '\0';
    log_write(LOG_WARN, "libmicrohttpd", "detail", buf_cstr(&b), NULL);
    buf_release(&b);
}

/* MHD's per-connection pool: the request line and header block are parsed in place
 * in it, with a record per header and parameter, and it holds the read and write
 * buffers. Twice the allowed head plus room for the records and buffers: a head over
 * the limits still gets our JSON 431/414, one far over them MHD's own, and a 200 KB
 * header block is never read in full. */
static size_t connection_memory(const struct http_config *cfg)
{
    size_t head = cfg->max_header_bytes + cfg->max_url_bytes;
    size_t m = 2 * head + (size_t)cfg->max_query_params * 64 + 32 * 1024;
    return m < 64 * 1024 ? 64 * 1024 : m;
}

int http_server_start(const struct http_config *cfg, const struct route *routes, size_t n,
                      http_auth_fn auth, void *app, struct http_server **out)
{
    struct http_server *srv = xcalloc(1, sizeof *srv);
    srv->routes = routes;
    srv->nroutes = n;
    srv->auth = auth;
    srv->app = app;
    srv->cfg = *cfg;
    pthread_mutex_init(&srv->wmu, NULL);
    pthread_cond_init(&srv->wcv, NULL);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(cfg->port);
    if (inet_pton(AF_INET, cfg->host, &sa.sin_addr) != 1) {
        log_write(LOG_ERROR, "invalid listen address", "host", cfg->host, NULL);
        free(srv);
        return -SLUICE_E_INVALID_PARAMETER;
    }
    /* poll, not epoll: libmicrohttpd 0.9.75 (Debian 12) can abort the process in
     * MHD_quiesce_daemon on an epoll daemon with its own threads ("Failed to remove listen
     * FD from epoll set": the quiesce and a worker's epoll loop race to take the listen
     * socket out of the set, and the loser's ENOENT is a panic); a test run saw it at a
     * SIGTERM.
     * The same library's epoll mode also left requests on kept-alive connections
     * unanswered for 10 s under load (docs/benchmarks.md, 2026-12-07 21:26). Each
     * pool thread polls its own connections: at most --max-connections / threads. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    srv->d = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, access_handler, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(cfg->threads ? cfg->threads : 4), MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, notify_connection, srv, MHD_OPTION_UNESCAPE_CALLBACK,
        identity_unescape, srv, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections + PROBE_RESERVE,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_per_ip, MHD_OPTION_URI_LOG_CALLBACK,
        uri_check, srv, MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory(cfg), MHD_OPTION_END);
    if (!srv->d) {
        log_write(LOG_ERROR, "cannot start HTTP server (address in use?)", "host", cfg->host, NULL);
        free(srv);
        return -SLUICE_E_INTERNAL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->port;
    if (cfg->request_timeout_s)
        srv->watchdog_started = pthread_create(&srv->watchdog, NULL, watchdog_main, srv) == 0;
    *out = srv;
    return 0;
}

uint16_t http_server_port(const struct http_server *srv)
{
    return srv->port;
}

void http_server_quiesce(struct http_server *srv)
{
    MHD_socket s = MHD_quiesce_daemon(srv->d);
    if (s != MHD_INVALID_SOCKET)
        close(s);
}

/* Requests resumed just before the stop (parked runs and long polls answered by the
 * shutdown) still have their reply to send: give them a moment, bounded. */
#define STOP_DRAIN_MS 3000

void http_server_stop(struct http_server *srv)
{
    for (int64_t until = clock_mono_ms() + STOP_DRAIN_MS; clock_mono_ms() < until;) {
        pthread_mutex_lock(&srv->wmu);
        unsigned live = srv->live;
        pthread_mutex_unlock(&srv->wmu);
        if (live == 0)
            break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&srv->wmu);
    srv->stopping = 1;
    pthread_cond_signal(&srv->wcv);
    pthread_mutex_unlock(&srv->wmu);
    if (srv->watchdog_started)
        pthread_join(srv->watchdog, NULL);
    MHD_stop_daemon(srv->d);
    pthread_mutex_destroy(&srv->wmu);
    pthread_cond_destroy(&srv->wcv);
    free(srv);
}
