/* fast_upstream.c - a minimal upstream for the W4 pipeline benchmark: answers every
 * request 200 {"ok":true} after reading the body - or, under /echo, the body itself (a
 * batched call's results, one per element) - with libmicrohttpd's thread pool, so the
 * benchmark measures sluice rather than a Python test server.
 * usage: fast_upstream PORT   (127.0.0.1; runs until SIGTERM/SIGINT)
 * Built by bench/run.py with: cc -O2 bench/fast_upstream.c -lmicrohttpd */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One request's body, kept only for /echo. */
struct req {
    char *buf;
    size_t len, cap;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **state)
{
    (void)cls;
    (void)method;
    (void)version;
    int echo = strncmp(url, "/echo", 5) == 0;
    if (!*state) {
        *state = calloc(1, sizeof(struct req));
        return *state ? MHD_YES : MHD_NO;
    }
    struct req *q = *state;
    if (*size) {
        if (echo) {
            if (q->len + *size > q->cap) {
                size_t cap = (q->len + *size) * 2;
                char *b = realloc(q->buf, cap);
                if (!b)
                    return MHD_NO;
                q->buf = b;
                q->cap = cap;
            }
            memcpy(q->buf + q->len, data, *size);
            q->len += *size;
        }
        *size = 0;
        return MHD_YES;
    }
    static const char body[] = "{\"ok\":true}";
    struct MHD_Response *r =
        echo ? MHD_create_response_from_buffer(q->len, q->buf ? q->buf : (void *)"",
                                               MHD_RESPMEM_MUST_COPY)
             : MHD_create_response_from_buffer(sizeof body - 1, (void *)body,
                                               MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

static void completed(void *cls, struct MHD_Connection *c, void **state,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct req *q = *state;
    if (q)
        free(q->buf);
    free(q);
    *state = NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[1]));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    /* poll, not epoll: with epoll (MHD 0.9.75), 3 runs of 24 of 100,000 one-request-per-
     * item calls had about 100 requests on kept-alive connections get no answer for 10 s;
     * with poll, none of 20 (docs/benchmarks.md, 2026-12-07 21:26). */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, answer, NULL,
        MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_CONNECTION_LIMIT,
        4000u, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!d)
        return 1;
    printf("ready\n");
    fflush(stdout);
    int sig;
    sigwait(&s, &sig);
    MHD_stop_daemon(d);
    return 0;
}
