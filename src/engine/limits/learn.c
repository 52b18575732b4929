/* learn.c - learned pacing: what this node learned of each upstream host's own limit
 * from its answers (limits_observe), turned into a per-host GCRA slot that pace.c takes
 * next to the configured buckets' and admit.c counts at claim time.
 *
 * Per host, each header family (signals.c) gives an interval between requests:
 *   - IETF RateLimit-Policy q/w: w/q, 2% slower (a request late on the wire must not
 *     land in the next fixed window on top of its quota);
 *   - quota, remaining, reset (the RateLimit-Limit trio, X-RateLimit-*): the window
 *     (the longest reset seen, or the policy's w) over the quota, and no faster than
 *     what remains spread over the time to the reset;
 *   - Shopify used/size: the leak (2/s until measured from how `used` falls), with the
 *     bucket's room less 2 as the burst, the level re-read from every answer;
 *   - Remaining 0 (any family) holds the host until the reset; Retry-After until then;
 *   - on the three published quotas, a send a few ms late keeps the schedule (the next
 *     sends catch up, none before its slot), so timer lateness is not lost rate.
 * The slowest (most restrictive) fresh one paces. Where the host says nothing, an AIMD
 * rate: a new host starts at LIMITS_LEARN_RATE0 and doubles every SS_DOUBLE_MS while
 * that rate holds requests back (slow start; past LEARN_RATE_MAX it is unpaced); a bare
 * 429 cuts the rate to MD_BETA of what was being sent (once per round: answers to
 * requests sent before the cut do not cut again), after which it grows by AI_FRAC of
 * itself per second while it binds (30 s without a cut returns to slow start). So
 * against a hidden rate the sends circle just under it, and 429s are a few per cycle.
 * Overload (a bare 503 or a timeout: a quota is a rate, overload is work in flight)
 * sets a concurrency window instead: MD_BETA of the requests that were in flight, once
 * per round, growing by AI_FRAC of itself per second of answers, lifted after
 * AIMD_RESET_MS without a cut. It paces as window / latency (Little's law; latency an
 * EWMA of the time to an answer that was not a refusal, or to a timeout), so an
 * upstream that slows down under load is sent to more slowly before it fails again.
 *
 * Everything is under the registry's mutex; per process (nodes sharing a store learn
 * each on their own). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/limits/limits_int.h"
#include "util/clock.h"
#include "util/xmalloc.h"

#define SS_DOUBLE_MS 100.0   /* slow start doubles the rate this often while it binds */
#define LEARN_RATE_MAX 20000 /* past this, slow start ends: the host is unpaced */
#define LEARN_RATE_MIN 0.2   /* a 429 never cuts the AIMD rate below (requests/s) */
#define AIMD_RESET_MS 30000  /* no cut this long: back to slow start (the guess is stale) */
#define MD_BETA 0.7          /* multiplicative decrease */
#define AI_FRAC 0.10         /* additive increase: this share of the rate per second */
#define PUB_FRESH_MS 60000   /* a header family not repeated this long is forgotten */
#define IETF_SLACK 1.02      /* policy pacing this much slower than the quota */
#define PUB_LATE_MS 4.0      /* a published quota's send this late keeps the schedule */
#define SHOP_LEAK0 2.0       /* Shopify REST: 2 calls/s until measured */
#define SHOP_SPARE 0.1       /* share of the Shopify bucket left unused (at least 2) */
#define SHOP_SAMPLE_MS 50    /* the leak is measured over at least this ... */
#define SHOP_SAMPLE_MAX 2000 /* ... and once 5 calls drained, or this long */
#define SHOP_PACE                                                                                  \
    0.95                  /* the leak is paced at this share: a slight overestimate                \
                             would creep the bucket full */
#define RESET_SLACK_MS 20 /* a hold until a reset ends this much after it */
#define SEND_IV_ALPHA 0.1 /* weight of a new inter-send gap in send_iv */
#define LAT_ALPHA 0.2     /* weight of a new answer's latency in lat_ms */

static void host_reset(struct learn_host *h, const char *host, uint64_t hash, int64_t now)
{
    memset(h, 0, sizeof *h);
    snprintf(h->host, sizeof h->host, "%s", host);
    h->hash = hash;
    h->seen = now;
    h->tat = (double)now;
    h->rate = LIMITS_LEARN_RATE0;
    h->grown_at = now;
    h->send_iv = 1000.0 / LIMITS_LEARN_RATE0;
    h->shop_leak = SHOP_LEAK0;
}

struct learn_host *learn_find(struct limits *l, const char *host, int64_t now)
{
    uint64_t hash = hash_str(host);
    for (size_t i = 0; i < LIMITS_LEARN_HOSTS; i++) {
        struct learn_host *h = l->learned[i];
        if (!h || h->hash != hash || strcmp(h->host, host) != 0)
            continue;
        if (now - h->seen > LIMITS_LEARN_FORGET_MS && h->inflight <= 0 && h->blocked_until <= now) {
            free(h); /* silent for long: what it said may no longer hold */
            l->learned[i] = NULL;
            return NULL;
        }
        return h;
    }
    return NULL;
}

struct learn_host *learn_get(struct limits *l, const char *host, int64_t now)
{
    struct learn_host *h = learn_find(l, host, now);
    if (h)
        return h;
    size_t slot = 0;
    int found = 0;
    for (size_t i = 0; i < LIMITS_LEARN_HOSTS; i++) {
        if (!l->learned[i]) {
            slot = i;
            found = 1;
            break;
        }
        if (l->learned[i]->seen < l->learned[slot]->seen)
            slot = i; /* the least recently seen goes when all are taken */
    }
    if (!found)
        free(l->learned[slot]); /* evicted: the least recently seen */
    l->learned[slot] = xmalloc(sizeof *h);
    h = l->learned[slot];
    host_reset(h, host, hash_str(host), now);
    return h;
}

double learn_interval(struct learn_host *h, int64_t now, int configured, double *tau,
                      enum limits_source *src)
{
    double iv = 0;
    *tau = 0;
    *src = LIMITS_SRC_NONE;
    for (int f = 0; f < LEARN_FAMILIES; f++)
        if (h->pub_iv[f] > iv && now - h->pub_at[f] <= PUB_FRESH_MS) {
            iv = h->pub_iv[f];
            *src = (enum limits_source)f;
        }
    if (*src == LIMITS_SRC_NONE && (h->phase == 1 || (h->phase == 0 && !configured))) {
        /* says nothing: the AIMD rate (slow start only where no configured rate paces) */
        iv = 1000.0 / h->rate;
        *src = h->phase == 1 ? LIMITS_SRC_AIMD : LIMITS_SRC_NONE;
    } else if (h->phase == 1 && 1000.0 / h->rate > iv) {
        iv = 1000.0 / h->rate;
        *src = LIMITS_SRC_AIMD;
    }
    if (h->cwnd > 0 && h->lat_ms > 0 && h->lat_ms / h->cwnd > iv) {
        iv = h->lat_ms / h->cwnd; /* the overload window binds */
        *src = LIMITS_SRC_AIMD;
    }
    if (*src == LIMITS_SRC_SHOPIFY) {
        double spare = h->shop_size * SHOP_SPARE > 2 ? h->shop_size * SHOP_SPARE : 2;
        double room = h->shop_size - spare;
        *tau = room > 1 ? (room - 1) * iv : 0;
    }
    return iv;
}

int64_t learn_slot(struct learn_host *h, int64_t now, int configured)
{
    if (h->blocked_until > now)
        return h->blocked_until;
    double tau;
    enum limits_source src;
    double iv = learn_interval(h, now, configured, &tau, &src);
    if (iv <= 0)
        return now;
    double slot = h->tat - tau > (double)now ? h->tat - tau : (double)now;
    if (h->phase == 0 && src == LIMITS_SRC_NONE && !configured) {
        /* slow start: the rate doubles every SS_DOUBLE_MS while it holds requests back
         * (a gap without sends does not count as growth) */
        double dt = (double)(now - h->grown_at);
        if (slot > (double)now && dt > 0) {
            h->rate *= pow(2.0, (dt > SS_DOUBLE_MS ? SS_DOUBLE_MS : dt) / SS_DOUBLE_MS);
            if (h->rate > LEARN_RATE_MAX)
                h->phase = 2;
        }
        h->grown_at = now;
    }
    return (int64_t)ceil(slot);
}

void learn_take(struct learn_host *h, int64_t at, int configured)
{
    double tau;
    enum limits_source src;
    double iv = learn_interval(h, at, configured, &tau, &src);
    if (iv <= 0)
        return;
    /* A send a little late on a published quota keeps the schedule: the sends after it
     * catch up, never sent before their slots. Timers wake whole milliseconds late, and
     * without this 1 ms slots gave 80% of the quota. Not for AIMD, whose catching up
     * came in bursts that drew 429s, each of which cut its rate. */
    double late =
        src == LIMITS_SRC_IETF || src == LIMITS_SRC_TRIO || src == LIMITS_SRC_X ? PUB_LATE_MS : 0;
    h->tat = (h->tat >= (double)at - late ? h->tat : (double)at) + iv;
}

void learn_sent(struct learn_host *h, int64_t now)
{
    h->inflight++;
    if (h->last_send) {
        double gap = (double)(now - h->last_send);
        h->send_iv = (1 - SEND_IV_ALPHA) * h->send_iv + SEND_IV_ALPHA * gap;
    }
    h->last_send = now;
}

void learn_block(struct learn_host *h, int64_t until, enum limits_source src)
{
    if (until > h->blocked_until) {
        h->blocked_until = until;
        h->block_src = src;
        if (h->tat < (double)until)
            h->tat = (double)until;
        h->epoch++;
    }
}

/* Sets family f's interval; held slots are voided when it changed by more than 10%
 * (re-spaced at the new pace, sooner or later). */
static void pub_set(struct learn_host *h, int f, double iv, int64_t now)
{
    double old = now - h->pub_at[f] <= PUB_FRESH_MS ? h->pub_iv[f] : 0;
    if (fabs(iv - old) > 0.1 * (old > iv ? old : iv))
        h->epoch++;
    h->pub_iv[f] = iv;
    h->pub_at[f] = now;
}

/* A quota family (the trio, X-RateLimit-*): limit per window, remaining, reset (s). */
static void quota_learn(struct learn_host *h, int f, double limit, double window_s,
                        double remaining, double reset_s, int64_t now)
{
    if (reset_s >= 0 && remaining == 0) {
        learn_block(h, now + (int64_t)(reset_s * 1000) + RESET_SLACK_MS, (enum limits_source)f);
        return;
    }
    if (window_s > 0)
        h->win_ms[f] = window_s * 1000;
    else if (reset_s > 0 && reset_s * 1000 > h->win_ms[f])
        h->win_ms[f] = reset_s * 1000; /* the longest reset seen: the window, nearly */
    double iv = 0;
    if (limit > 0 && h->win_ms[f] > 0)
        iv = h->win_ms[f] / limit;
    if (remaining > 0 && reset_s > 0) {
        /* what is left, spread to the reset; requests still out take their share */
        double left = remaining - (double)h->inflight;
        double spread = reset_s * 1000 / (left >= 1 ? left : 1);
        if (spread > iv)
            iv = spread;
    }
    if (iv > 0)
        pub_set(h, f, iv, now);
}

static void ietf_learn(struct learn_host *h, const struct limits_signal *s, int64_t now)
{
    int f = LIMITS_SRC_IETF;
    if (s->ietf_r == 0 && s->ietf_t >= 0) {
        learn_block(h, now + (int64_t)(s->ietf_t * 1000) + RESET_SLACK_MS, LIMITS_SRC_IETF);
        return;
    }
    if (s->ietf_q == 0 && s->ietf_w > 0) { /* a policy of nothing: wait out its window */
        learn_block(h, now + (int64_t)(s->ietf_w * 1000), LIMITS_SRC_IETF);
        return;
    }
    double iv = 0;
    if (s->ietf_q > 0 && s->ietf_w > 0)
        iv = s->ietf_w * 1000 / s->ietf_q * IETF_SLACK;
    else if (s->ietf_r > 0 && s->ietf_t > 0) /* no policy: what remains, to the reset */
        iv = s->ietf_t * 1000 / s->ietf_r;
    if (iv > 0)
        pub_set(h, f, iv, now);
}

static void shopify_learn(struct learn_host *h, double used, double size, int counted, int64_t now)
{
    h->shop_size = size;
    h->shop_used = used;
    /* The leak: from an anchor answer, used rose by one per answer let through since
     * and fell by leak * dt; only while the bucket never ran empty (that hides it). */
    if (h->shop_t0 == 0 || used < 2 || h->shop_min < 2) {
        /* Ran empty (or near): what drained since the anchor is a lower bound of the
         * leak, which lets a leak far above the guess show after one burst. */
        double drained = h->shop_u0 + h->shop_n + counted - used;
        if (h->shop_t0 && now - h->shop_t0 >= SHOP_SAMPLE_MS && drained >= 5) {
            double lb = drained * 1000.0 / (double)(now - h->shop_t0);
            if (lb > h->shop_leak && lb < 100000)
                h->shop_leak = lb;
        }
        h->shop_t0 = now;
        h->shop_u0 = used;
        h->shop_min = used;
        h->shop_n = 0;
    } else {
        h->shop_n += counted; /* a 429 did not add to the bucket */
        if (used < h->shop_min)
            h->shop_min = used;
        double drained = h->shop_u0 + h->shop_n - used;
        if (now - h->shop_t0 >= SHOP_SAMPLE_MS &&
            (drained >= 5 || now - h->shop_t0 >= SHOP_SAMPLE_MAX)) {
            double leak = (h->shop_u0 + h->shop_n - used) * 1000.0 / (double)(now - h->shop_t0);
            if (leak > 0.1 && leak < 100000)
                h->shop_leak = h->shop_leak == SHOP_LEAK0 ? leak : 0.7 * h->shop_leak + 0.3 * leak;
            h->shop_t0 = now;
            h->shop_u0 = used;
            h->shop_min = used;
            h->shop_n = 0;
        }
    }
    double iv = 1000.0 / (h->shop_leak * SHOP_PACE);
    pub_set(h, LIMITS_SRC_SHOPIFY, iv, now);
    /* the level the upstream counts, plus what is still on the way to it */
    double level = used + (double)h->inflight;
    double tat = (double)now + level * iv;
    if (fabs(tat - h->tat) > iv)
        h->epoch++; /* slots held on the old count are void: re-taken on the new one */
    h->tat = tat;
}

/* A bare 429: the AIMD rate is cut, once per round. */
static void aimd_decrease(struct learn_host *h, int64_t sent_mono, int64_t now, double floor)
{
    if (sent_mono < h->decreased_at)
        return; /* sent before the last cut: that cut already answered it */
    double sent_rate = 1000.0 / (h->send_iv > 0.05 ? h->send_iv : 0.05);
    double base = h->phase == 2 || sent_rate < h->rate ? sent_rate : h->rate;
    double rate = MD_BETA * base;
    if (rate < floor) /* (never raised by a cut) */
        rate = h->phase == 1 && floor > h->rate ? h->rate : floor;
    h->rate = rate;
    h->phase = 1;
    h->decreased_at = now;
    /* held slots are void: they re-space at the new rate, from one interval on */
    h->tat = (h->tat > (double)now ? h->tat : (double)now) + 1000.0 / h->rate;
    h->epoch++;
}

/* A bare 503 or a timeout: the window is cut to MD_BETA of what was in flight (this
 * answer included), once per round. */
static void window_decrease(struct learn_host *h, int64_t sent_mono, int64_t now)
{
    if (sent_mono < h->cwnd_cut_at)
        return;
    double base = (double)h->inflight + 1;
    if (h->cwnd > 0 && h->cwnd < base)
        base = h->cwnd;
    h->cwnd = MD_BETA * base > 1 ? MD_BETA * base : 1;
    h->cwnd_cut_at = now;
    h->epoch++;
}

static void aimd_increase(struct learn_host *h)
{
    if (h->phase != 1)
        return;
    double sent_rate = 1000.0 / (h->send_iv > 0.05 ? h->send_iv : 0.05);
    if (sent_rate < 0.5 * h->rate)
        return; /* the rate does not bind: sending more was not tried */
    double step = AI_FRAC * h->rate > 1 ? AI_FRAC * h->rate : 1;
    h->rate += step / h->rate; /* per answer, at about `rate` answers a second */
}

void limits_learn_observe(struct limits *l, const char *host, int status, int timed_out,
                          const char *headers, int64_t sent_mono, int64_t now)
{
    if (!l || !host || !host[0])
        return;
    struct limits_signal s;
    int n = limits_signal_parse(headers, clock_now_ms(), &s);
    pthread_mutex_lock(&l->mu);
    struct learn_host *h = learn_get(l, host, now);
    h->seen = now;
    if (h->inflight > 0)
        h->inflight--;
    /* latency: of answers that were not refusals, and of timeouts (an upstream that
     * only times out is paced by its window over the timeout) */
    if (sent_mono > 0 && now >= sent_mono &&
        ((status > 0 && status < 500 && status != 429) || (status == 0 && timed_out))) {
        double lat = (double)(now - sent_mono);
        h->lat_ms = h->lat_ms > 0 ? (1 - LAT_ALPHA) * h->lat_ms + LAT_ALPHA * lat : lat;
    }
    if (status == 429 || status == 503)
        h->throttled++;
    if (s.families & (1u << LIMITS_SRC_IETF))
        ietf_learn(h, &s, now);
    if (s.families & (1u << LIMITS_SRC_TRIO))
        quota_learn(h, LIMITS_SRC_TRIO, s.trio_limit, s.trio_w, s.trio_remaining, s.trio_reset,
                    now);
    if (s.families & (1u << LIMITS_SRC_X))
        quota_learn(h, LIMITS_SRC_X, s.x_limit, -1, s.x_remaining, s.x_reset, now);
    if (s.families & (1u << LIMITS_SRC_SHOPIFY))
        shopify_learn(h, s.shop_used, s.shop_size, status != 429, now);
    if (h->blocked_until > now + l->max_backoff_ms) /* a reset far off is capped too */
        h->blocked_until = now + l->max_backoff_ms;
    if (h->phase == 1 && now - h->decreased_at > AIMD_RESET_MS) {
        h->phase = 0; /* no cut for long: what was guessed may no longer hold */
        if (h->rate < LIMITS_LEARN_RATE0)
            h->rate = LIMITS_LEARN_RATE0;
        h->grown_at = now;
    }
    if (h->cwnd > 0 && now - h->cwnd_cut_at > AIMD_RESET_MS)
        h->cwnd = 0; /* no overload for long: the window is lifted */
    if (n == 0 && (status == 503 || (status == 0 && timed_out)))
        window_decrease(h, sent_mono, now);
    else if (h->cwnd > 0 && status > 0 && status < 500 && status != 429)
        h->cwnd += AI_FRAC * h->lat_ms / 1000.0; /* AI_FRAC of itself a second */
    if (n == 0 && status == 429)                 /* it says nothing of its limit: guess */
        aimd_decrease(h, sent_mono, now, LEARN_RATE_MIN);
    else if (n == 0 && status > 0 && status < 500)
        aimd_increase(h);
    pthread_mutex_unlock(&l->mu);
}

int limits_learned_get(struct limits *l, const char *host, struct limits_learned *out)
{
    int found = 0;
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&l->mu);
    struct learn_host *h = learn_find(l, host, now);
    if (h) {
        double tau;
        enum limits_source src;
        double iv = learn_interval(h, now, 0, &tau, &src);
        memset(out, 0, sizeof *out);
        snprintf(out->host, sizeof out->host, "%s", h->host);
        out->blocked_ms = h->blocked_until > now ? h->blocked_until - now : 0;
        out->source = out->blocked_ms ? h->block_src : src;
        out->rate = iv > 0 ? 1000.0 / iv : 0;
        out->burst = iv > 0 ? 1 + tau / iv : 0;
        out->slow_start = h->phase == 0;
        out->throttled = h->throttled;
        out->concurrency = h->cwnd;
        found = 1;
    }
    pthread_mutex_unlock(&l->mu);
    return found;
}

static void label(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_putc(b, '\\');
        if (*s != '\n')
            buf_putc(b, *s);
    }
}

void limits_metrics(struct limits *l, struct buf *b)
{
    if (!l)
        return;
    int64_t now = clock_mono_ms();
    buf_puts(
        b,
        "# HELP sluice_upstream_learned_rate Requests per second this node paces an "
        "upstream origin (host:port) at, as learned from its answers, by the signal it came from.\n"
        "# TYPE sluice_upstream_learned_rate gauge\n");
    struct buf blocked = BUF_INIT, thr = BUF_INIT, conc = BUF_INIT;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < LIMITS_LEARN_HOSTS; i++) {
        struct learn_host *h = l->learned[i];
        if (!h || now - h->seen > LIMITS_LEARN_FORGET_MS)
            continue;
        double tau;
        enum limits_source src;
        double iv = learn_interval(h, now, 0, &tau, &src);
        if (h->blocked_until > now && src == LIMITS_SRC_NONE)
            src = h->block_src;
        if (src != LIMITS_SRC_NONE) {
            buf_puts(b, "sluice_upstream_learned_rate{host=\"");
            label(b, h->host);
            buf_printf(b, "\",source=\"%s\"} %.3f\n", limits_source_name(src),
                       iv > 0 ? 1000.0 / iv : 0);
        }
        if (h->blocked_until > now) {
            buf_puts(&blocked, "sluice_upstream_learned_blocked_seconds{host=\"");
            label(&blocked, h->host);
            buf_printf(&blocked, "\",source=\"%s\"} %.3f\n", limits_source_name(h->block_src),
                       (double)(h->blocked_until - now) / 1000.0);
        }
        if (h->cwnd > 0) {
            buf_puts(&conc, "sluice_upstream_learned_concurrency{host=\"");
            label(&conc, h->host);
            buf_printf(&conc, "\"} %.1f\n", h->cwnd);
        }
        buf_puts(&thr, "sluice_upstream_throttled_total{host=\"");
        label(&thr, h->host);
        buf_printf(&thr, "\"} %lld\n", (long long)h->throttled);
    }
    pthread_mutex_unlock(&l->mu);
    buf_puts(b, "# HELP sluice_upstream_learned_concurrency Requests in flight this node holds "
                "an upstream origin to after it answered 503 or timed out (paced as that over "
                "its latency).\n# TYPE sluice_upstream_learned_concurrency gauge\n");
    buf_append(b, conc.data ? conc.data : "", conc.len);
    buf_puts(b, "# HELP sluice_upstream_learned_blocked_seconds Seconds until an upstream host "
                "that said its quota is spent (or asked to wait) may be sent to again.\n"
                "# TYPE sluice_upstream_learned_blocked_seconds gauge\n");
    buf_append(b, blocked.data ? blocked.data : "", blocked.len);
    buf_puts(b, "# HELP sluice_upstream_throttled_total 429/503 answers from each upstream host "
                "this node learns from.\n# TYPE sluice_upstream_throttled_total counter\n");
    buf_append(b, thr.data ? thr.data : "", thr.len);
    buf_release(&blocked);
    buf_release(&thr);
    buf_release(&conc);
}
