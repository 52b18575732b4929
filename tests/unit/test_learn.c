/* test_learn.c - learned pacing: the rate-limit header parsers of each family (malformed
 * values ignored, epoch vs delta resets) and the per-host state machine (what a family
 * paces at, Remaining 0 holding the host until the reset, the most restrictive signal
 * winning, AIMD: slow start, decrease once per round, additive increase, forgetting). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/limits.h"
#include "testhelp.h"
#include "util/buf.h"
#include "util/clock.h"

#define NOW_WALL 1700000000000LL /* ms */
#define F(src) (1u << (src))

static int near(double a, double b, double eps)
{
    return fabs(a - b) <= eps;
}

TEST(ietf_structured_fields)
{
    struct limits_signal s;
    CHECK_EQ_INT(limits_signal_parse("RateLimit-Policy: \"default\";q=100;w=60\n"
                                     "RateLimit: \"default\";r=50;t=30\n",
                                     NOW_WALL, &s),
                 1);
    CHECK(s.families == F(LIMITS_SRC_IETF));
    CHECK(s.ietf_q == 100 && s.ietf_w == 60 && s.ietf_r == 50 && s.ietf_t == 30);
    /* several policies: the most restrictive (smallest q/w); lower-case names */
    limits_signal_parse(
        "ratelimit-policy: \"burst\";q=100;w=10, \"day\";q=1000;w=86400;qu=\"requests\"\n",
        NOW_WALL, &s);
    CHECK(s.ietf_q == 1000 && s.ietf_w == 86400);
    /* older drafts: a bare quota item; the draft-07 dictionary */
    limits_signal_parse("RateLimit-Policy: 10;w=1\nRateLimit: limit=10, remaining=0, reset=3\n",
                        NOW_WALL, &s);
    CHECK(s.ietf_q == 10 && s.ietf_w == 1 && s.ietf_r == 0 && s.ietf_t == 3);
    /* malformed: ignored, the family not set */
    CHECK_EQ_INT(limits_signal_parse("RateLimit-Policy: \"x\";q=abc;w=60\n", NOW_WALL, &s), 0);
    CHECK_EQ_INT(limits_signal_parse("RateLimit-Policy: \"x\";q=100\n", NOW_WALL, &s), 0);
    CHECK_EQ_INT(limits_signal_parse("RateLimit: \"unterminated;r=1\n", NOW_WALL, &s), 0);
    CHECK_EQ_INT(limits_signal_parse("RateLimit: \"d\";r=-1;t=2\n", NOW_WALL, &s), 0);
    CHECK_EQ_INT(limits_signal_parse(NULL, NOW_WALL, &s), 0);
    CHECK_EQ_INT(limits_signal_parse("", NOW_WALL, &s), 0);
}

TEST(quota_trio_and_x_ratelimit)
{
    struct limits_signal s;
    CHECK_EQ_INT(limits_signal_parse("RateLimit-Limit: 100, 100;w=60\r\nRateLimit-Remaining: 7\r\n"
                                     "RateLimit-Reset: 12\r\n",
                                     NOW_WALL, &s),
                 1);
    CHECK(s.families == F(LIMITS_SRC_TRIO));
    CHECK(s.trio_limit == 100 && s.trio_w == 60 && s.trio_remaining == 7 && s.trio_reset == 12);
    /* X-: an epoch second reset (GitHub) becomes a delta; a small one is a delta */
    limits_signal_parse("X-RateLimit-Limit: 5000\nX-RateLimit-Remaining: 4999\n"
                        "X-RateLimit-Reset: 1700000042\n",
                        NOW_WALL, &s);
    CHECK(s.families == F(LIMITS_SRC_X));
    CHECK(s.x_limit == 5000 && s.x_remaining == 4999 && near(s.x_reset, 42, 1e-6));
    limits_signal_parse("X-RateLimit-Reset: 42\nX-RateLimit-Remaining: 1\n", NOW_WALL, &s);
    CHECK(near(s.x_reset, 42, 1e-6));
    /* an epoch in milliseconds, and one in the past (0, not negative) */
    limits_signal_parse("X-RateLimit-Reset: 1700000005000\nX-RateLimit-Remaining: 1\n", NOW_WALL,
                        &s);
    CHECK(near(s.x_reset, 5, 1e-6));
    limits_signal_parse("X-RateLimit-Reset: 1600000000\nX-RateLimit-Remaining: 1\n", NOW_WALL, &s);
    CHECK(s.x_reset == 0);
    /* malformed values are ignored; a family with neither quota nor remaining is absent */
    CHECK_EQ_INT(limits_signal_parse("X-RateLimit-Limit: lots\nX-RateLimit-Remaining: -3\n"
                                     "X-RateLimit-Reset: soon\n",
                                     NOW_WALL, &s),
                 0);
    CHECK(s.x_limit == -1 && s.x_remaining == -1 && s.x_reset == -1);
    CHECK_EQ_INT(limits_signal_parse("X-RateLimit-Remaining: 3 apples\n", NOW_WALL, &s), 0);
    /* both families at once */
    CHECK_EQ_INT(
        limits_signal_parse("X-RateLimit-Remaining: 3\nRateLimit-Remaining: 4\n", NOW_WALL, &s), 2);
}

TEST(shopify_call_limit)
{
    struct limits_signal s;
    CHECK_EQ_INT(limits_signal_parse("X-Shopify-Shop-Api-Call-Limit: 32/40\n", NOW_WALL, &s), 1);
    CHECK(s.families == F(LIMITS_SRC_SHOPIFY) && s.shop_used == 32 && s.shop_size == 40);
    CHECK_EQ_INT(limits_signal_parse("X-Shopify-Shop-Api-Call-Limit: 32\n", NOW_WALL, &s), 0);
    CHECK_EQ_INT(limits_signal_parse("X-Shopify-Shop-Api-Call-Limit: 32/0\n", NOW_WALL, &s), 0);
    CHECK_EQ_INT(limits_signal_parse("X-Shopify-Shop-Api-Call-Limit: a/40\n", NOW_WALL, &s), 0);
    CHECK_EQ_INT(limits_signal_parse("X-Shopify-Shop-Api-Call-Limit: 900/40\n", NOW_WALL, &s), 0);
    /* a name that only starts like ours is not ours */
    CHECK_EQ_INT(limits_signal_parse("X-Shopify-Shop-Api-Call-Limits: 1/40\n", NOW_WALL, &s), 0);
}

/* learned state of "h" after feeding it headers at monotonic `now` */
static struct limits_learned feed(struct limits *l, const char *headers, int status, int64_t sent,
                                  int64_t now)
{
    struct limits_learned x;
    limits_learn_observe(l, "h", status, 0, headers, sent, now);
    memset(&x, 0, sizeof x);
    limits_learned_get(l, "h", &x);
    return x;
}

TEST(published_limits_pace_and_hold)
{
    struct limits *l = limits_new();
    int64_t t = clock_mono_ms(); /* freshness is judged on the real clock */
    struct limits_learned x;
    /* the X- trio: limit per (estimated) window, and what remains spread to the reset */
    x = feed(l, "X-RateLimit-Limit: 20\nX-RateLimit-Remaining: 10\nX-RateLimit-Reset: 1\n", 200, t,
             t);
    CHECK(x.source == LIMITS_SRC_X);
    CHECK(x.rate > 9 && x.rate <= 20.01);
    /* Remaining 0: the host is held until the reset */
    limits_learn_observe(l, "h", 200, 0, "X-RateLimit-Remaining: 0\nX-RateLimit-Reset: 3\n", t, t);
    struct limits_pacer *p = limits_pacer_new(l, "acme", "wf", "s", NULL, 0);
    CHECK(p != NULL);
    int64_t hold = 0, now = clock_mono_ms();
    /* (limits_pace runs on the real clock: feed relative to it) */
    limits_learn_observe(l, "h2", 200, 0, "RateLimit: \"d\";r=0;t=2\n", now, now);
    int64_t at = limits_pace(p, "h2", now, &hold);
    CHECK(at >= now + 2000 && at <= now + 2100);
    CHECK(limits_learned_get(l, "h2", &x) == 1 && x.source == LIMITS_SRC_IETF && x.blocked_ms > 0);
    /* IETF policy: q per w, a little slower; two requests are spaced by it */
    limits_learn_observe(l, "h3", 200, 0, "RateLimit-Policy: \"d\";q=10;w=1\n", now, now);
    hold = 0;
    int64_t a1 = limits_pace(p, "h3", now, &hold);
    hold = 0;
    int64_t a2 = limits_pace(p, "h3", now, &hold);
    CHECK(a1 == now);
    CHECK(a2 - a1 >= 100 && a2 - a1 <= 110);
    /* the most restrictive family wins: Shopify at 2/s under an IETF 10/s */
    limits_learn_observe(l, "h3", 200, 0,
                         "RateLimit-Policy: \"d\";q=10;w=1\nX-Shopify-Shop-Api-Call-Limit: 1/40\n",
                         now, now);
    CHECK(limits_learned_get(l, "h3", &x) == 1);
    /* paced at 0.95 of the leak, bursting into the room left less a tenth */
    CHECK(x.source == LIMITS_SRC_SHOPIFY && near(x.rate, 1.9, 1e-6) && near(x.burst, 36, 1e-6));
    limits_pacer_free(p);
    limits_free(l);
}

/* A published quota's sends that went a little late are made up for by the next ones,
 * never sent before their slots; a send much later starts the schedule afresh. */
TEST(published_quota_catches_up_small_lateness)
{
    struct limits *l = limits_new();
    int64_t now = clock_mono_ms();
    limits_learn_observe(
        l, "q", 200, 0,
        "X-RateLimit-Limit: 1000\nX-RateLimit-Remaining: 1000\nX-RateLimit-Reset: 1\n", now, now);
    struct limits_pacer *p = limits_pacer_new(l, "acme", "wf", "s", NULL, 0);
    CHECK(p != NULL);
    int64_t hold = 0;
    CHECK(limits_pace(p, "q", now, &hold) == now); /* 1 ms slots: the next is now + 1 */
    hold = 0;
    CHECK(limits_pace(p, "q", now + 2, &hold) == now + 2); /* 1 ms late */
    hold = 0;
    CHECK(limits_pace(p, "q", now + 2, &hold) == now + 2); /* the slot it missed */
    hold = 0;
    CHECK(limits_pace(p, "q", now + 2, &hold) == now + 3); /* caught up: spaced again */
    hold = 0;
    CHECK(limits_pace(p, "q", now + 20, &hold) == now + 20); /* 16 ms late: not made up */
    hold = 0;
    CHECK(limits_pace(p, "q", now + 20, &hold) == now + 21);
    limits_pacer_free(p);
    limits_free(l);
}

/* Overload (a bare 503, a timeout) sets a window of requests in flight, paced as the
 * window over the latency; a 429 does not (a quota is a rate, not work in flight), and
 * overload does not cut the rate. */
TEST(overload_sets_a_concurrency_window)
{
    struct limits *l = limits_new();
    struct limits_pacer *p = limits_pacer_new(l, "acme", "wf", "s", NULL, 0);
    int64_t now = clock_mono_ms(), hold;
    struct limits_learned x;
    for (int i = 0; i < 10; i++) { /* ten sent, 1 ms apart (slow start's first pace) */
        hold = 0;
        CHECK(limits_pace(p, "w", now + i, &hold) == now + i);
    }
    limits_learn_observe(l, "w", 200, 0, "", now, now + 40); /* latency 40 ms */
    limits_learn_observe(l, "w", 429, 0, "", now + 1, now + 41);
    CHECK(limits_learned_get(l, "w", &x) == 1 && x.concurrency == 0); /* a 429: no window */
    /* a bare 503, seven still in flight: 0.7 of eight (itself included) */
    limits_learn_observe(l, "w", 503, 0, "", now + 2, now + 52);
    CHECK(limits_learned_get(l, "w", &x) == 1 && near(x.concurrency, 5.6, 1e-9));
    /* paced at window / latency (of the answers that were not refusals): 40 ms over 5.6,
     * 140/s, below the rate the 429 left */
    CHECK(x.source == LIMITS_SRC_AIMD && near(x.rate, 140, 1e-6));
    /* an answer to a request sent before the cut does not cut again */
    limits_learn_observe(l, "w", 503, 0, "", now + 3, now + 53);
    CHECK(limits_learned_get(l, "w", &x) == 1 && near(x.concurrency, 5.6, 1e-9));
    /* successes grow it by a tenth of itself a second: 5 answers at 40 ms latency, 0.02 */
    for (int i = 0; i < 5; i++)
        limits_learn_observe(l, "w", 200, 0, "", now + 4 + i, now + 44 + i);
    CHECK(limits_learned_get(l, "w", &x) == 1 && near(x.concurrency, 5.62, 1e-9));
    /* a timeout of one sent after the cut, nothing else in flight: 0.7 of one, and the
     * window is never below 1 */
    limits_learn_observe(l, "w", 0, 1, "", now + 60, now + 90);
    CHECK(limits_learned_get(l, "w", &x) == 1 && near(x.concurrency, 1, 1e-9));
    /* one in flight at a time: paced at one per latency, the timeout's 30 ms counted in
     * it (an upstream that only times out is paced too): 0.8 x 40 + 0.2 x 30 = 38 ms */
    CHECK(x.source == LIMITS_SRC_AIMD && near(x.rate, 1000.0 / 38, 1e-6));
    struct buf m = BUF_INIT;
    limits_metrics(l, &m);
    CHECK(strstr(m.data, "sluice_upstream_learned_concurrency{host=\"w\"} 1.0") != NULL);
    buf_release(&m);
    limits_pacer_free(p);
    limits_free(l);
}

TEST(shopify_leak_is_learned)
{
    struct limits *l = limits_new();
    int64_t t = clock_mono_ms();
    struct limits_learned x;
    char h[64];
    /* an answer every 100 ms, used falling by one each time although each answer added
     * one: the bucket leaks 2 per 100 ms, 20/s (paced at 0.95 of it) */
    for (int i = 0; i <= 10; i++) {
        snprintf(h, sizeof h, "X-Shopify-Shop-Api-Call-Limit: %d/40\n", 20 - i);
        x = feed(l, h, 200, t + i * 100, t + i * 100);
    }
    CHECK(x.source == LIMITS_SRC_SHOPIFY);
    CHECK(near(x.rate, 19, 0.5));
    /* 429s add nothing to the bucket: counted as calls they would inflate the leak */
    for (int i = 11; i <= 20; i++)
        x = feed(l, "X-Shopify-Shop-Api-Call-Limit: 10/40\n", 429, t + i * 100, t + i * 100);
    CHECK(x.rate < 25);
    /* a burst of 30 gone 200 ms later (the bucket ran empty): at least 150/s */
    limits_learn_observe(l, "s2", 200, 0, "X-Shopify-Shop-Api-Call-Limit: 30/40\n", t, t);
    limits_learn_observe(l, "s2", 200, 0, "X-Shopify-Shop-Api-Call-Limit: 1/40\n", t + 200,
                         t + 200);
    CHECK(limits_learned_get(l, "s2", &x) == 1 && near(x.rate, 150 * 0.95, 1));
    limits_free(l);
}

TEST(aimd_state_machine)
{
    struct limits *l = limits_new();
    struct limits_pacer *p = limits_pacer_new(l, "acme", "wf", "s", NULL, 0);
    int64_t now = clock_mono_ms();
    struct limits_learned x;
    /* a new host: slow start at LIMITS_LEARN_RATE0, unnamed in the monitor */
    int64_t hold = 0;
    CHECK(limits_pace(p, "up", now, &hold) == now);
    CHECK(limits_learned_get(l, "up", &x) == 1 && x.slow_start && x.source == LIMITS_SRC_NONE);
    CHECK(near(x.rate, LIMITS_LEARN_RATE0, 1e-6));
    /* it binds: the rate doubles every 100 ms of being held back (300 ms: about 8x) */
    for (int i = 1; i <= 300; i++)
        for (int k = 0; k < 3; k++) { /* several a millisecond: the rate holds them back */
            hold = 0;
            limits_pace(p, "up", now + i, &hold);
        }
    CHECK(limits_learned_get(l, "up", &x) == 1 && x.rate >= 4 * LIMITS_LEARN_RATE0 &&
          x.rate <= 10 * LIMITS_LEARN_RATE0);
    double before = x.rate;
    /* a bare 429: multiplicative decrease (to 0.7 of what was sent at most) */
    limits_learn_observe(l, "up", 429, 0, "", now + 250, now + 310);
    CHECK(limits_learned_get(l, "up", &x) == 1 && x.source == LIMITS_SRC_AIMD && !x.slow_start);
    CHECK(x.rate <= 0.7 * before + 1e-6 && x.throttled == 1);
    double cut = x.rate;
    /* answers to requests sent before the cut do not cut again */
    limits_learn_observe(l, "up", 429, 0, "", now + 305, now + 311);
    CHECK(limits_learned_get(l, "up", &x) == 1 && near(x.rate, cut, 1e-9) && x.throttled == 2);
    /* one sent after it does */
    limits_learn_observe(l, "up", 429, 0, "", now + 320, now + 330);
    CHECK(limits_learned_get(l, "up", &x) == 1 && x.rate < cut && x.throttled == 3);
    cut = x.rate;
    /* a timeout is overload, not a quota: it sets a window and leaves the rate (here
     * the window does not bind: 1 ms of latency over what was in flight) */
    limits_learn_observe(l, "up", 0, 1, "", now + 335, now + 336);
    CHECK(limits_learned_get(l, "up", &x) == 1 && near(x.rate, cut, 1e-9) && x.concurrency >= 1);
    /* a 503 with rate-limit headers is the headers' business, not AIMD's */
    limits_learn_observe(l, "up", 503, 0, "X-RateLimit-Remaining: 5\nX-RateLimit-Reset: 1\n",
                         now + 340, now + 350);
    CHECK(limits_learned_get(l, "up", &x) == 1 && x.throttled == 4);
    /* additive increase: successes while the rate binds raise it, slowly */
    struct limits *l2 = limits_new();
    struct limits_pacer *p2 = limits_pacer_new(l2, "acme", "wf", "s", NULL, 0);
    int64_t t = now;
    for (int i = 0; i < 200; i++) { /* sends at 1 ms spacing: it binds */
        hold = 0;
        limits_pace(p2, "v", t + i, &hold);
    }
    limits_learn_observe(l2, "v", 429, 0, "", t + 200, t + 200);
    CHECK(limits_learned_get(l2, "v", &x) == 1);
    double r0 = x.rate;
    for (int i = 0; i < 50; i++)
        limits_learn_observe(l2, "v", 200, 0, "", t + 300 + i, t + 300 + i);
    CHECK(limits_learned_get(l2, "v", &x) == 1 && x.rate > r0 && x.rate < r0 * 1.2);
    /* forgotten after LIMITS_LEARN_FORGET_MS without an answer */
    limits_learn_observe(l2, "w", 200, 0, "X-RateLimit-Remaining: 5\nX-RateLimit-Reset: 1\n",
                         t - LIMITS_LEARN_FORGET_MS - 10, t - LIMITS_LEARN_FORGET_MS - 10);
    CHECK_EQ_INT(limits_learned_get(l2, "w", &x), 0);
    limits_pacer_free(p2);
    limits_free(l2);
    limits_pacer_free(p);
    limits_free(l);
}

TEST(hosts_are_bounded)
{
    struct limits *l = limits_new();
    int64_t t = clock_mono_ms();
    char host[32];
    for (int i = 0; i < LIMITS_LEARN_HOSTS + 10; i++) {
        snprintf(host, sizeof host, "h%d", i);
        limits_learn_observe(l, host, 200, 0, "", t + i, t + i);
    }
    struct limits_learned x;
    CHECK_EQ_INT(limits_learned_get(l, "h0", &x), 0); /* the least recently seen went */
    snprintf(host, sizeof host, "h%d", LIMITS_LEARN_HOSTS + 9);
    CHECK_EQ_INT(limits_learned_get(l, host, &x), 1);
    struct buf b = BUF_INIT;
    limits_metrics(l, &b);
    CHECK(strstr(buf_cstr(&b), "# TYPE sluice_upstream_learned_rate gauge") != NULL);
    buf_release(&b);
    limits_free(l);
}

int main(void)
{
    RUN(ietf_structured_fields);
    RUN(quota_trio_and_x_ratelimit);
    RUN(shopify_call_limit);
    RUN(published_limits_pace_and_hold);
    RUN(published_quota_catches_up_small_lateness);
    RUN(shopify_leak_is_learned);
    RUN(aimd_state_machine);
    RUN(overload_sets_a_concurrency_window);
    RUN(hosts_are_bounded);
    return test_report();
}
