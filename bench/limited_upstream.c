/* limited_upstream.c - a loopback upstream for the W7 benchmark (learned pacing): it
 * enforces a rate limit and answers 429 past it, in one of three modes:
 *   window LIMIT           LIMIT requests per 1 s window aligned to epoch seconds,
 *                          published as X-RateLimit-Limit/-Remaining/-Reset (epoch s);
 *   shopify SIZE LEAK      a leaky bucket of SIZE calls draining LEAK per second, told
 *                          as X-Shopify-Shop-Api-Call-Limit: used/size;
 *   hidden RATE BURST      a token bucket of RATE per second (BURST deep) that says
 *                          nothing but a bare 429;
 *   overload N MS          at most N requests at once, each answered after MS ms; one
 *                          more while N are in hand gets a bare 503 at once (N * 1000 /
 *                          MS requests per second at most).
 * GET /stats answers {"ok":N,"throttled":M,"first":T0,"last":T1,"max_in_hand":K} (wall
 * seconds of the first and last request let through; K: most in hand at once, overload). One thread per connection, keep-alive; each
 * response (headers and body) goes out in one send() with TCP_NODELAY, so no TCP stall
 * makes sluice look late.
 * usage: limited_upstream PORT MODE A [B]   (127.0.0.1; runs until SIGTERM/SIGINT)
 * Built by bench/run.py with: cc -O2 -pthread bench/limited_upstream.c -lm */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { WINDOW, SHOPIFY, HIDDEN, OVERLOAD };
static enum mode mode;
static double pa, pb; /* the mode's parameters */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static double level, last_t = -1, win_start = -1; /* limiter state */
static long used, n_ok, n_429, in_hand, max_in_hand;
static double first_ok, last_ok;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Decides one request: 200 or 429, with the mode's headers written to hdr. */
static int decide(char *hdr, size_t n)
{
    double t = now_s();
    int ok = 0;
    hdr[0] = 0;
    pthread_mutex_lock(&mu);
    if (mode == WINDOW) {
        double start = floor(t);
        if (start != win_start) {
            win_start = start;
            used = 0;
        }
        ok = used < (long)pa;
        if (ok)
            used++;
        snprintf(hdr, n,
                 "X-RateLimit-Limit: %ld\r\nX-RateLimit-Remaining: %ld\r\n"
                 "X-RateLimit-Reset: %ld\r\n",
                 (long)pa, (long)pa - used, (long)start + 1);
    } else if (mode == SHOPIFY) {
        if (last_t >= 0)
            level = fmax(0, level - (t - last_t) * pb);
        last_t = t;
        ok = level + 1 <= pa;
        if (ok)
            level += 1;
        snprintf(hdr, n, "X-Shopify-Shop-Api-Call-Limit: %ld/%ld\r\n", (long)ceil(level), (long)pa);
    } else if (mode == OVERLOAD) {
        ok = in_hand < (long)pa;
        if (ok && ++in_hand > max_in_hand)
            max_in_hand = in_hand;
    } else {
        if (last_t < 0)
            level = pb;
        else
            level = fmin(pb, level + (t - last_t) * pa);
        last_t = t;
        ok = level >= 1;
        if (ok)
            level -= 1;
    }
    if (ok) {
        if (n_ok++ == 0)
            first_ok = t;
        last_ok = t;
    } else {
        n_429++;
    }
    pthread_mutex_unlock(&mu);
    return ok ? 200 : mode == OVERLOAD ? 503 : 429;
}

/* OVERLOAD: the request in hand takes its time, then makes room. */
static void serve_slowly(void)
{
    struct timespec d = {(time_t)(pb / 1000), (long)(fmod(pb, 1000) * 1e6)};
    nanosleep(&d, NULL);
    pthread_mutex_lock(&mu);
    in_hand--;
    pthread_mutex_unlock(&mu);
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[65536];
    size_t have = 0;
    for (;;) {
        char *end = have ? memmem(buf, have, "\r\n\r\n", 4) : NULL;
        if (!end) {
            if (have == sizeof buf)
                break;
            ssize_t r = recv(fd, buf + have, sizeof buf - have, 0);
            if (r <= 0)
                break;
            have += (size_t)r;
            continue;
        }
        size_t head = (size_t)(end - buf) + 4;
        size_t clen = 0;
        for (char *p = buf; p < end; p++)
            if ((p == buf || p[-1] == '\n') && !strncasecmp(p, "Content-Length:", 15))
                clen = (size_t)strtoul(p + 15, NULL, 10);
        if (head + clen > sizeof buf)
            break;
        while (have < head + clen) {
            ssize_t r = recv(fd, buf + have, sizeof buf - have, 0);
            if (r <= 0)
                goto out;
            have += (size_t)r;
        }
        char hdr[256], body[256], out[1024];
        int status;
        if (!strncmp(buf, "GET /stats", 10)) {
            status = 200;
            hdr[0] = 0;
            pthread_mutex_lock(&mu);
            snprintf(body, sizeof body,
                     "{\"ok\":%ld,\"throttled\":%ld,\"first\":%.3f,\"last\":%.3f,"
                     "\"max_in_hand\":%ld}",
                     n_ok, n_429, first_ok, last_ok, max_in_hand);
            pthread_mutex_unlock(&mu);
        } else {
            status = decide(hdr, sizeof hdr);
            if (mode == OVERLOAD && status == 200)
                serve_slowly();
            snprintf(body, sizeof body, "%s", status == 200 ? "{\"ok\":true}" : "{}");
        }
        int len =
            snprintf(out, sizeof out,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n%s",
                     status,
                     status == 200   ? "OK"
                     : status == 503 ? "Service Unavailable"
                                     : "Too Many Requests",
                     strlen(body), hdr, body);
        if (send(fd, out, (size_t)len, MSG_NOSIGNAL) != len) /* one send per response */
            break;
        memmove(buf, buf + head + clen, have - head - clen);
        have -= head + clen;
    }
out:
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    mode = !strcmp(argv[2], "window")     ? WINDOW
           : !strcmp(argv[2], "shopify")  ? SHOPIFY
           : !strcmp(argv[2], "overload") ? OVERLOAD
                                          : HIDDEN;
    pa = atof(argv[3]);
    pb = argc > 4 ? atof(argv[4]) : 1;
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[1]));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 1024))
        return 1;
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 * 1024);
        if (pthread_create(&t, &at, conn_main, (void *)(intptr_t)fd))
            close(fd);
        pthread_attr_destroy(&at);
    }
}
