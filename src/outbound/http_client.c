/* http_client.c - the libcurl wrapper behind http_client.h.
 *
 * One CURL easy handle per client, reset (not recreated) before every request so its
 * connection cache keeps the keep-alive connection to the server. Headers of interest
 * are captured by a header callback that starts over on every status line (a 100 or a
 * proxy's answer may precede the final response). The body callback asks curl for the
 * status already received to decide between the caller's stream and resp->body. */
#include "outbound/http_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/errors.h"
#include "util/xmalloc.h"

struct http_client {
    CURL *h;
    char errbuf[CURL_ERROR_SIZE];
};

/* State of one transfer, shared by the callbacks. */
struct xfer {
    CURL *h;
    const struct http_request *req;
    struct http_response *resp;
    int read_aborted;  /* the caller's read callback gave up */
    int write_aborted; /* the caller's write callback gave up */
};

int http_client_new(struct http_client **out)
{
    /* Reference counted and thread-safe since curl 7.84; cheap after the first. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -SLUICE_E_INTERNAL;
    CURL *h = curl_easy_init();
    if (!h) {
        curl_global_cleanup();
        return -SLUICE_E_INTERNAL;
    }
    struct http_client *c = xcalloc(1, sizeof *c);
    c->h = h;
    *out = c;
    return 0;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->h);
    free(c);
    curl_global_cleanup();
}

void http_response_init(struct http_response *r)
{
    r->status = 0;
    r->location = NULL;
    r->retry_after = NULL;
    r->content_type = NULL;
    buf_init(&r->body);
}

void http_response_release(struct http_response *r)
{
    free(r->location);
    free(r->retry_after);
    free(r->content_type);
    buf_release(&r->body);
    http_response_init(r);
}

/* Stores a copy of the header value if line is "name: value". */
static int take_header(const char *line, size_t n, const char *name, char **slot)
{
    size_t nl = strlen(name);
    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return 0;
    const char *v = line + nl + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    free(*slot);
    *slot = xstrndup(v, (size_t)(end - v));
    return 1;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nitems;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response starts: forget headers of an interim one. */
        free(x->resp->location);
        free(x->resp->retry_after);
        free(x->resp->content_type);
        x->resp->location = x->resp->retry_after = x->resp->content_type = NULL;
        return n;
    }
    if (!take_header(data, n, "Location", &x->resp->location) &&
        !take_header(data, n, "Retry-After", &x->resp->retry_after))
        take_header(data, n, "Content-Type", &x->resp->content_type);
    return n;
}

static size_t on_body(char *data, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nitems;
    long status = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (x->req->write && status >= 200 && status < 300) {
        if (x->req->write(x->req->write_ctx, data, n) < 0) {
            x->write_aborted = 1;
            return 0; /* anything but n makes curl fail with CURLE_WRITE_ERROR */
        }
        return n;
    }
    buf_append(&x->resp->body, data, n);
    return n;
}

static size_t on_read(char *dst, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    size_t got = x->req->read(x->req->read_ctx, dst, size * nitems);
    if (got == HTTP_READ_ABORT) {
        x->read_aborted = 1;
        return CURL_READFUNC_ABORT;
    }
    return got;
}

static void set_err(char **errmsg, const char *msg)
{
    if (errmsg)
        *errmsg = xstrdup(msg);
}

int http_client_do(struct http_client *c, const struct http_request *req,
                   struct http_response *resp, char **errmsg)
{
    int rc = -SLUICE_E_INTERNAL;
    struct curl_slist *hdrs = NULL;
    char *line = NULL;
    CURL *h = c->h;
    struct xfer x = {.h = h, .req = req, .resp = resp};

    if (errmsg)
        *errmsg = NULL;
    http_response_release(resp);
    if (!req->method || !req->url || (req->body && req->read)) {
        set_err(errmsg, "invalid request: method and url needed, at most one body source");
        return -SLUICE_E_INVALID_PARAMETER;
    }

    curl_easy_reset(h);
    c->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    /* No signals: this wrapper may serve worker threads, where SIGALRM-based DNS
     * timeouts are unsafe; Linux sockets use MSG_NOSIGNAL so SIGPIPE is not raised. */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000L);
    if (req->timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    /* results and item pages compress five to ten times; libcurl decodes */
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);

    hdrs = curl_slist_append(hdrs, "Expect:");
    if (req->bearer) {
        line = xasprintf("Authorization: Bearer %s", req->bearer);
        hdrs = curl_slist_append(hdrs, line);
        free(line);
    }
    if (req->content_type) {
        line = xasprintf("Content-Type: %s", req->content_type);
        hdrs = curl_slist_append(hdrs, line);
        free(line);
    }
    if (req->accept) {
        line = xasprintf("Accept: %s", req->accept);
        hdrs = curl_slist_append(hdrs, line);
        free(line);
    }

    int is_post = strcmp(req->method, "POST") == 0;
    if (req->read) {
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &x);
        if (is_post) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->read_len);
        } else {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->read_len);
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        }
        if (req->read_len < 0) /* curl chunks a POST of unknown size only when asked */
            hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
    } else if (req->body || is_post || strcmp(req->method, "PUT") == 0 ||
               strcmp(req->method, "PATCH") == 0) {
        /* A body-carrying method without a body still sends Content-Length: 0. */
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body ? req->body_len : 0));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        if (!is_post)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    if (cc != CURLE_OK) {
        if (x.read_aborted)
            set_err(errmsg, "reading the request body failed");
        else if (x.write_aborted)
            set_err(errmsg, "write aborted");
        else
            set_err(errmsg, c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
        rc = (cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL)
                 ? -SLUICE_E_INVALID_PARAMETER
                 : -SLUICE_E_INTERNAL;
        goto out;
    }
    rc = 0;
out:
    /* The handle keeps a pointer to the list until the next reset: drop it first. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    return rc;
}
