/* test_ratelimit.c - token buckets with an injected clock: burst, refill, Retry-After,
 * headers' numbers, expiry of idle keys, many keys, eviction, threads. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ratelimit.h"
#include "testhelp.h"

static struct ratelimit *mk(uint64_t per_s, uint64_t burst, size_t slots)
{
    struct ratelimit_config c = {per_s * 60, burst, slots, 42};
    return ratelimit_new(&c);
}

TEST(zero_means_no_limiter)
{
    struct ratelimit_config c = {0, 10, 64, 1};
    CHECK(ratelimit_new(&c) == NULL);
    struct ratelimit_config d = {60, 0, 64, 1};
    CHECK(ratelimit_new(&d) == NULL);
    ratelimit_free(NULL);
}

TEST(burst_then_refused)
{
    struct ratelimit *rl = mk(5, 10, 256);
    struct ratelimit_state st;
    int64_t t = 1000000;
    for (int i = 0; i < 10; i++) {
        CHECK_EQ_INT(ratelimit_take(rl, "acme", t, &st), 1);
        CHECK_EQ_INT(st.allowed, 1);
        CHECK_EQ_INT(st.remaining, 9 - i);
        CHECK_EQ_INT(st.limit, 10);
        CHECK_EQ_INT(st.retry_after_s, i == 9 ? 1 : 0);
    }
    CHECK_EQ_INT(ratelimit_take(rl, "acme", t, &st), 0);
    CHECK_EQ_INT(st.allowed, 0);
    CHECK_EQ_INT(st.remaining, 0);
    CHECK_EQ_INT(st.retry_after_s, 1); /* one token takes 200 ms: rounded up to 1 s */
    CHECK_EQ_INT(st.reset_s, 2);       /* 10 tokens at 5/s */
    CHECK_EQ_INT(st.window_s, 2);
    /* a refusal takes nothing: still refused at the same instant, then a token at +200 ms */
    CHECK_EQ_INT(ratelimit_take(rl, "acme", t + 199, &st), 0);
    CHECK_EQ_INT(ratelimit_take(rl, "acme", t + 200, &st), 1);
    CHECK_EQ_INT(st.remaining, 0);
    CHECK_EQ_INT(ratelimit_take(rl, "acme", t + 200, &st), 0);
    ratelimit_free(rl);
}

TEST(refill_is_exact_and_capped)
{
    struct ratelimit *rl = mk(5, 10, 256);
    struct ratelimit_state st;
    int64_t t = 5000;
    for (int i = 0; i < 10; i++)
        ratelimit_take(rl, "k", t, &st);
    /* 1 s later: 5 tokens back; take one leaves 4 */
    CHECK_EQ_INT(ratelimit_take(rl, "k", t + 1000, &st), 1);
    CHECK_EQ_INT(st.remaining, 4);
    CHECK_EQ_INT(st.reset_s, 2); /* 6 missing at 5/s = 1.2 s -> 2 */
    /* much later: full again, never more than the burst */
    CHECK_EQ_INT(ratelimit_take(rl, "k", t + 3600 * 1000, &st), 1);
    CHECK_EQ_INT(st.remaining, 9);
    CHECK_EQ_INT(st.reset_s, 1);
    /* a clock that goes backwards refills nothing and breaks nothing */
    CHECK_EQ_INT(ratelimit_take(rl, "k", t, &st), 1);
    CHECK_EQ_INT(st.remaining, 8);
    ratelimit_free(rl);
}

TEST(slow_rates_and_long_retry)
{
    /* 20 per minute (the failed-auth default): one token every 3 s */
    struct ratelimit_config c = {20, 20, 64, 7};
    struct ratelimit *rl = ratelimit_new(&c);
    struct ratelimit_state st;
    int64_t t = 0;
    for (int i = 0; i < 20; i++)
        CHECK_EQ_INT(ratelimit_take(rl, "192.0.2.1", t, &st), 1);
    CHECK_EQ_INT(ratelimit_take(rl, "192.0.2.1", t, &st), 0);
    CHECK_EQ_INT(st.retry_after_s, 3);
    CHECK_EQ_INT(st.window_s, 60);
    CHECK_EQ_INT(st.reset_s, 60);
    CHECK_EQ_INT(ratelimit_take(rl, "192.0.2.1", t + 2999, &st), 0);
    CHECK_EQ_INT(st.retry_after_s, 1);
    CHECK_EQ_INT(ratelimit_take(rl, "192.0.2.1", t + 3000, &st), 1);
    ratelimit_free(rl);
}

TEST(keys_are_independent)
{
    struct ratelimit *rl = mk(1, 2, 256);
    struct ratelimit_state st;
    CHECK_EQ_INT(ratelimit_take(rl, "a", 0, &st), 1);
    CHECK_EQ_INT(ratelimit_take(rl, "a", 0, &st), 1);
    CHECK_EQ_INT(ratelimit_take(rl, "a", 0, &st), 0);
    CHECK_EQ_INT(ratelimit_take(rl, "b", 0, &st), 1);
    CHECK_EQ_INT(st.remaining, 1);
    /* a key that is a prefix of another is another key */
    CHECK_EQ_INT(ratelimit_take(rl, "ab", 0, &st), 1);
    CHECK_EQ_INT(st.remaining, 1);
    ratelimit_free(rl);
}

TEST(idle_keys_expire)
{
    struct ratelimit *rl = mk(10, 20, 1024);
    struct ratelimit_state st;
    char k[32];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "tenant-%d", i);
        ratelimit_take(rl, k, 0, &st);
    }
    CHECK_EQ_INT(ratelimit_active(rl, 0), 100);
    CHECK_EQ_INT(ratelimit_active(rl, 99), 100);
    /* one token refills in 100 ms: every bucket is full again, its slot free */
    CHECK_EQ_INT(ratelimit_active(rl, 100), 0);
    ratelimit_free(rl);
}

TEST(many_keys_in_a_small_table)
{
    /* 64 slots, 10,000 keys that each burn their whole burst: a key that had to be
     * evicted comes back with a full bucket (errs for the client), but the keys still
     * in the table keep their state, and nothing crashes or leaks. */
    struct ratelimit *rl = mk(1, 3, 64);
    struct ratelimit_state st;
    char k[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        for (int j = 0; j < 3; j++)
            CHECK_EQ_INT(ratelimit_take(rl, k, 0, &st), 1);
        CHECK_EQ_INT(ratelimit_take(rl, k, 0, &st), 0);
    }
    CHECK(ratelimit_active(rl, 0) <= 64);
    CHECK(ratelimit_active(rl, 0) > 0);
    /* a big table holds them all at once */
    struct ratelimit *big = mk(1, 3, 40000);
    int kept = 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        ratelimit_take(big, k, 0, &st);
    }
    for (int i = 0; i < 10000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        ratelimit_take(big, k, 0, &st);
        kept += st.remaining == 1;
    }
    CHECK(kept > 9900); /* 8-way sets at a quarter load: evictions are rare */
    ratelimit_free(big);
    ratelimit_free(rl);
}

TEST(eviction_prefers_the_fullest_bucket)
{
    /* one set of 8 ways: 8 keys, one drained, seven barely used; a 9th key must
     * push out a barely used one, never the drained one */
    struct ratelimit *rl = mk(1, 100, 8);
    struct ratelimit_state st;
    char k[32];
    for (int i = 0; i < 100; i++)
        ratelimit_take(rl, "drained", 0, &st);
    CHECK_EQ_INT(ratelimit_take(rl, "drained", 0, &st), 0);
    for (int i = 0; i < 7; i++) {
        snprintf(k, sizeof k, "light%d", i);
        ratelimit_take(rl, k, 0, &st);
    }
    CHECK_EQ_INT(ratelimit_take(rl, "newcomer", 0, &st), 1);
    CHECK_EQ_INT(ratelimit_take(rl, "drained", 0, &st), 0);
    ratelimit_free(rl);
}

TEST(long_keys_are_cut_not_overrun)
{
    struct ratelimit *rl = mk(1, 1, 64);
    struct ratelimit_state st;
    char k[400];
    memset(k, 'x', sizeof k - 1);
    k[sizeof k - 1] = '\0';
    CHECK_EQ_INT(ratelimit_take(rl, k, 0, &st), 1);
    CHECK_EQ_INT(ratelimit_take(rl, k, 0, &st), 0);
    ratelimit_free(rl);
}

TEST(address_keys)
{
    char k[RATELIMIT_KEY_MAX];
    ratelimit_address_key("192.0.2.7", k, sizeof k);
    CHECK_EQ_STR(k, "192.0.2.7");
    ratelimit_address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", k, sizeof k);
    CHECK_EQ_STR(k, "2001:db8:1:2::/64");
    ratelimit_address_key("2001:db8:1:2::ffff", k, sizeof k);
    CHECK_EQ_STR(k, "2001:db8:1:2::/64");
    ratelimit_address_key("::1", k, sizeof k);
    CHECK_EQ_STR(k, "::/64");
    ratelimit_address_key("", k, sizeof k);
    CHECK_EQ_STR(k, "");
}

struct worker {
    struct ratelimit *rl;
    int allowed;
};

static void *hammer(void *p)
{
    struct worker *w = p;
    struct ratelimit_state st;
    for (int i = 0; i < 1000; i++)
        w->allowed += ratelimit_take(w->rl, "shared", 0, &st);
    return NULL;
}

TEST(threads_share_one_bucket_exactly)
{
    struct ratelimit *rl = mk(1, 1500, 1024);
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i].rl = rl;
        w[i].allowed = 0;
        pthread_create(&th[i], NULL, hammer, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += w[i].allowed;
    }
    CHECK_EQ_INT(total, 1500);
    ratelimit_free(rl);
}

int main(void)
{
    RUN(zero_means_no_limiter);
    RUN(burst_then_refused);
    RUN(refill_is_exact_and_capped);
    RUN(slow_rates_and_long_retry);
    RUN(keys_are_independent);
    RUN(idle_keys_expire);
    RUN(many_keys_in_a_small_table);
    RUN(eviction_prefers_the_fullest_bucket);
    RUN(long_keys_are_cut_not_overrun);
    RUN(address_keys);
    RUN(threads_share_one_bucket_exactly);
    return test_report();
}
