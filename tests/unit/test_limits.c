/* test_limits.c - processing limits: definitions, the uses codec, admission (items,
 * requests within the horizon, concurrency, server + tenant), undo/finish, pacing
 * slots, the shared back-off, and what workflows declare. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/limits.h"
#include "spec/workflow.h"
#include "testhelp.h"
#include "util/clock.h"
#include "util/errors.h"

static int parse(const char *text, struct limits_def *d, char *target)
{
    char err[256];
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        return -99;
    int rc = limits_def_parse(j, d, err, sizeof err, target, 64);
    json_decref(j);
    return rc;
}

static struct limits *with_server(const char *json)
{
    struct limits *l = limits_new();
    char err[256], target[64];
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    if (!j || limits_set_server(l, j, err, sizeof err, target, sizeof target) != 0) {
        fprintf(stderr, "bad server limits in the test: %s\n", json);
        abort();
    }
    json_decref(j);
    return l;
}

/* uses text of one use */
static void use1(char *out, size_t outlen, enum limits_kind kind, const char *name,
                 const char *host)
{
    struct limits_use u = {.kind = kind, .count = 1};
    snprintf(u.name, sizeof u.name, "%s", name);
    snprintf(u.workflow, sizeof u.workflow, "wf");
    snprintf(u.step, sizeof u.step, "%s", kind == LIMITS_REQUESTS ? "push" : "");
    snprintf(u.host, sizeof u.host, "%s", host);
    struct buf b = BUF_INIT;
    limits_uses_encode(&u, 1, &b);
    snprintf(out, outlen, "%s", buf_cstr(&b));
    buf_release(&b);
}

TEST(definitions)
{
    struct limits_def d;
    char target[64];
    CHECK_EQ_INT(parse("{\"rate\": 5}", &d, target), 0);
    CHECK(d.rate == 5 && d.burst == 5 && d.concurrency == 0 && !strcmp(d.key, ""));
    CHECK_EQ_INT(parse("{\"rate\": 120, \"per\": \"minute\", \"key\": \"host\"}", &d, target), 0);
    CHECK(d.rate == 2 && d.burst == 2 && !strcmp(d.key, "{host}"));
    CHECK_EQ_INT(parse("{\"rate\": 1, \"per\": \"hour\"}", &d, target), 0);
    CHECK(d.burst == 1);
    CHECK_EQ_INT(parse("{\"concurrency\": 4, \"key\": \"{tenant}:{host}\"}", &d, target), 0);
    CHECK(d.rate == 0 && d.concurrency == 4 && !strcmp(d.key, "{tenant}:{host}"));
    json_t *j = limits_def_json(&d);
    CHECK(json_object_get(j, "rate") == NULL);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(j, "concurrency")), 4);
    json_decref(j);
    const char *bad[][2] = {{"{}", "rate"},
                            {"{\"rate\": 0}", "rate"},
                            {"{\"rate\": 2e6}", "rate"},
                            {"{\"rate\": 1, \"per\": \"week\"}", "per"},
                            {"{\"per\": \"second\"}", "per"},
                            {"{\"burst\": 2, \"concurrency\": 1}", "burst"},
                            {"{\"rate\": 1, \"burst\": 0}", "burst"},
                            {"{\"concurrency\": 0}", "concurrency"},
                            {"{\"rate\": 1, \"key\": \"{host\"}", "key"},
                            {"{\"rate\": 1, \"key\": \"a}b\"}", "key"},
                            {"{\"rate\": 1, \"key\": \"{job}\"}", "key"},
                            {"{\"rate\": 1, \"x\": 1}", "x"},
                            {"[1]", ""}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(parse(bad[i][0], &d, target), -SLUICE_E_INVALID_FIELD);
        CHECK_EQ_STR(target, bad[i][1]);
    }
    CHECK(limits_name_valid("a.b-c_1"));
    CHECK(!limits_name_valid(""));
    CHECK(!limits_name_valid("a b"));
}

TEST(uses_codec)
{
    struct limits_use u[3] = {{.kind = LIMITS_ITEMS, .count = 1},
                              {.kind = LIMITS_REQUESTS, .count = 2}};
    snprintf(u[0].name, sizeof u[0].name, "items");
    snprintf(u[0].workflow, sizeof u[0].workflow, "orders");
    snprintf(u[1].name, sizeof u[1].name, "mkt");
    snprintf(u[1].workflow, sizeof u[1].workflow, "orders");
    snprintf(u[1].step, sizeof u[1].step, "push");
    snprintf(u[1].host, sizeof u[1].host, "api.example.com");
    struct buf b = BUF_INIT;
    limits_uses_encode(u, 2, &b);
    /* the text jobs in the store keep: its letters do not change with the enum */
    CHECK_EQ_STR(buf_cstr(&b), "i\titems\torders\t\t\t1\nr\tmkt\torders\tpush\tapi.example.com\t2");
    struct limits_use back[4];
    CHECK_EQ_INT(limits_uses_decode(buf_cstr(&b), back, 4), 2);
    CHECK(back[0].kind == LIMITS_ITEMS && !strcmp(back[0].name, "items") && back[0].step[0] == 0);
    CHECK(back[1].kind == LIMITS_REQUESTS && back[1].count == 2 &&
          !strcmp(back[1].host, "api.example.com"));
    CHECK_EQ_INT(limits_uses_decode("", back, 4), 0);
    CHECK_EQ_INT(limits_uses_decode("x\ta\tb\tc\td\t1", back, 4), -1);
    CHECK_EQ_INT(limits_uses_decode("i\ta\tb", back, 4), -1);
    CHECK_EQ_INT(limits_uses_decode("i\ta\tb\tc\td\t0", back, 4), -1);
    buf_release(&b);
}

TEST(item_tokens_at_claim)
{
    /* 1 per hour, burst 3: three items now, then nothing for the rest of the test */
    struct limits *l = with_server("{\"slow\": {\"rate\": 1, \"per\": \"hour\", \"burst\": 3}}");
    char uses[256];
    struct limits_grant g, g2;
    struct limits_throttle th;
    use1(uses, sizeof uses, LIMITS_ITEMS, "slow", "");
    CHECK_EQ_INT((int)limits_admit(l, "acme", "job1", uses, 10, &g), 3);
    CHECK_EQ_INT(limits_job_throttle(l, "job1", &th), 1); /* cut short: noted */
    CHECK_EQ_INT((int)limits_admit(l, "acme", "job2", uses, 10, &g2), 0);
    CHECK_EQ_INT(limits_job_throttle(l, "job2", &th), 1);
    CHECK_EQ_STR(th.name, "slow");
    CHECK_EQ_STR(th.scope, "server");
    CHECK_EQ_STR(th.reason, "rate");
    CHECK(th.items_per_s > 0 && th.items_per_s < 0.001);
    limits_undo(l, &g2);
    /* an undone grant gives its tokens back; a finished one keeps them spent */
    limits_undo(l, &g);
    CHECK_EQ_INT((int)limits_admit(l, "acme", "job1", uses, 10, &g), 3);
    limits_finish(l, &g);
    CHECK_EQ_INT((int)limits_admit(l, "acme", "job1", uses, 10, &g), 0);
    limits_undo(l, &g);
    /* no uses, or a name no one defines: everything admitted */
    CHECK_EQ_INT((int)limits_admit(l, "acme", "job3", "", 7, &g), 7);
    limits_finish(l, &g);
    use1(uses, sizeof uses, LIMITS_ITEMS, "undefined", "");
    CHECK_EQ_INT((int)limits_admit(l, "acme", "job3", uses, 7, &g), 7);
    limits_finish(l, &g);
    limits_free(l);
}

TEST(requests_within_the_horizon_and_concurrency)
{
    struct limits *l = with_server("{\"mkt\": {\"key\": \"{host}\", \"rate\": 10, \"burst\": 1}}");
    char uses[256];
    struct limits_grant g1, g2, g3;
    use1(uses, sizeof uses, LIMITS_REQUESTS, "mkt", "api.example.com");
    /* slots within 1 s at 10/s, burst 1: 11; all admitted to the first claim */
    size_t n1 = limits_admit(l, "acme", "j1", uses, 50, &g1);
    CHECK(n1 >= 10 && n1 <= 12);
    CHECK_EQ_INT((int)limits_admit(l, "globex", "j2", uses, 50, &g2), 0); /* same host */
    limits_undo(l, &g2);
    limits_finish(l, &g1); /* nothing was sent: the slots are there again */
    CHECK((size_t)limits_admit(l, "globex", "j2", uses, 50, &g2) >= 10);
    limits_finish(l, &g2);
    /* another host is another bucket */
    use1(uses, sizeof uses, LIMITS_REQUESTS, "mkt", "other.example.com");
    CHECK((size_t)limits_admit(l, "acme", "j3", uses, 50, &g3) >= 10);
    limits_finish(l, &g3);

    /* a tenant's concurrency cap on top of the same name */
    struct limits_def d;
    char target[64];
    CHECK_EQ_INT(parse("{\"concurrency\": 2}", &d, target), 0);
    limits_set_tenant(l, "acme", "mkt", &d);
    use1(uses, sizeof uses, LIMITS_REQUESTS, "mkt", "third.example.com");
    CHECK_EQ_INT((int)limits_admit(l, "acme", "j4", uses, 50, &g1), 2);
    CHECK_EQ_INT((int)limits_admit(l, "acme", "j5", uses, 50, &g2), 0);
    struct limits_throttle th;
    CHECK_EQ_INT(limits_job_throttle(l, "j5", &th), 1);
    CHECK_EQ_STR(th.reason, "concurrency");
    CHECK_EQ_STR(th.scope, "tenant");
    limits_undo(l, &g2);
    CHECK((size_t)limits_admit(l, "globex", "j6", uses, 50, &g3) > 2); /* not globex's cap */
    limits_finish(l, &g3);
    limits_finish(l, &g1);
    CHECK_EQ_INT((int)limits_admit(l, "acme", "j5", uses, 50, &g2), 2);
    limits_finish(l, &g2);
    limits_set_tenant(l, "acme", "mkt", NULL);
    CHECK((size_t)limits_admit(l, "acme", "j5", uses, 50, &g2) > 2);
    limits_finish(l, &g2);
    limits_free(l);
}

TEST(pacing_slots_and_backoff)
{
    struct limits *l = with_server("{\"mkt\": {\"key\": \"{host}\", \"rate\": 10, \"burst\": 3}}");
    const char *names[] = {"mkt"};
    struct limits_pacer *p = limits_pacer_new(l, "acme", "wf", "push", names, 1);
    int64_t t = clock_mono_ms() + 100000, hold[20] = {0}, at[20];
    /* burst 3 at once, then one per 100 ms */
    for (int i = 0; i < 20; i++)
        at[i] = limits_pace(p, "h1", t, &hold[i]);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT((int)(at[i] - t), 0);
    for (int i = 3; i < 20; i++)
        CHECK_EQ_INT((int)(at[i] - t), (i - 2) * 100);
    /* at most rate + burst - 1 in any [s, s + 1000) */
    for (int i = 0; i < 20; i++) {
        int in = 0;
        for (int k = 0; k < 20; k++)
            in += at[k] >= at[i] && at[k] < at[i] + 1000;
        CHECK(in <= 12);
    }
    /* when its time comes, a held slot goes at once */
    CHECK_EQ_INT((int)(limits_pace(p, "h1", at[10], &hold[10]) - at[10]), 0);
    /* another host: its own bucket */
    int64_t h = 0;
    CHECK_EQ_INT((int)(limits_pace(p, "h2", t, &h) - t), 0);
    /* a 429 with Retry-After: held slots are void, every request waits past it */
    limits_backoff(p, "h1", t + 5000);
    int64_t again = limits_pace(p, "h1", at[11], &hold[11]);
    CHECK(again >= t + 5000);
    int64_t fresh = 0;
    CHECK(limits_pace(p, "h1", t + 10, &fresh) >= t + 5000);
    h = 0;
    CHECK_EQ_INT((int)(limits_pace(p, "h2", t, &h) - t), 0); /* h2 was not told to wait */
    limits_pacer_free(p);
    /* without names a pacer still paces what upstreams say (learned pacing) */
    p = limits_pacer_new(l, "acme", "wf", "push", names, 0);
    CHECK(p != NULL);
    limits_pacer_free(p);
    CHECK(limits_pacer_new(NULL, "acme", "wf", "push", names, 0) == NULL);
    limits_free(l);
}

TEST(backoff_holds_only_the_host_that_asked)
{
    /* one bucket for every host: a 429 from h1 must not hold h2 */
    struct limits *l = with_server("{\"shop\": {\"rate\": 50, \"burst\": 50}}");
    limits_set_max_backoff(l, 3000);
    const char *names[] = {"shop"};
    struct limits_pacer *p = limits_pacer_new(l, "acme", "wf", "push", names, 1);
    int64_t now = clock_mono_ms(), h1 = 0, h2 = 0, h1b = 0;
    CHECK_EQ_INT((int)(limits_pace(p, "h1", now, &h1) - now), 0);
    /* an hour asked for, three seconds given */
    limits_backoff(p, "h1", now + 3600 * 1000);
    int64_t at = limits_pace(p, "h1", now, &h1b);
    CHECK(at >= now + 2900 && at <= clock_mono_ms() + 3000);
    CHECK_EQ_INT((int)h1b, 0); /* no slot taken while it waits */
    CHECK_EQ_INT((int)(limits_pace(p, "h2", now, &h2) - now), 0);
    /* claims: a step whose URL fixes h1 waits, one on h2 does not */
    char uses[256];
    struct limits_grant g;
    struct limits_throttle th;
    use1(uses, sizeof uses, LIMITS_REQUESTS, "shop", "h1");
    CHECK_EQ_INT((int)limits_admit(l, "acme", "job1", uses, 5, &g), 0);
    CHECK_EQ_INT(limits_job_throttle(l, "job1", &th), 1);
    CHECK_EQ_STR(th.reason, "upstream");
    CHECK_EQ_STR(th.host, "h1");
    limits_undo(l, &g);
    use1(uses, sizeof uses, LIMITS_REQUESTS, "shop", "h2");
    CHECK_EQ_INT((int)limits_admit(l, "acme", "job2", uses, 5, &g), 5);
    limits_finish(l, &g);
    /* a job told to wait holds its claims, also where its URL picks the host per item */
    struct limits_pacer *pj = limits_pacer_new(l, "acme", "wf", "push", names, 1);
    limits_pacer_set_job(pj, "job3");
    limits_backoff(pj, "h3", now + 2000);
    use1(uses, sizeof uses, LIMITS_REQUESTS, "shop", "");
    CHECK_EQ_INT((int)limits_admit(l, "acme", "job3", uses, 5, &g), 0);
    CHECK_EQ_INT(limits_job_throttle(l, "job3", &th), 1);
    CHECK_EQ_STR(th.reason, "upstream");
    CHECK_EQ_STR(th.host, "h3");
    CHECK_EQ_INT((int)limits_admit(l, "acme", "job4", uses, 5, &g), 5); /* others go on */
    limits_finish(l, &g);
    limits_pacer_free(pj);
    /* when it is over, h1 goes again */
    h1b = 0;
    CHECK_EQ_INT((int)(limits_pace(p, "h1", at, &h1b) - at), 0);
    limits_pacer_free(p);
    limits_free(l);
}

/* Workflow "orders" compiled from def, or NULL. */
static struct wfdef *compile_orders(const char *def)
{
    json_error_t je;
    json_t *j = json_loads(def, 0, &je);
    struct wfdef *w = NULL;
    char err[256], target[64];
    if (!j || wfdef_compile("orders", 1, j, &w, err, sizeof err, target, sizeof target) < 0)
        w = NULL;
    json_decref(j);
    return w;
}

/* A batched http step sends one request per maxItems items: its request limits (and
 * what its host is learned to allow) admit that many items per token. */
TEST(batched_requests_admit_items_per_request)
{
    const char *def = "{\"steps\": [{\"name\": \"push\", \"type\": \"http\", \"method\": \"POST\","
                      " \"url\": \"https://api.x.com/bulk\", \"limits\": [\"mkt\"],"
                      " \"batch\": {\"maxItems\": 100}}]}";
    struct wfdef *w = compile_orders(def);
    CHECK(w != NULL);
    struct buf b = BUF_INIT;
    limits_uses_of(w, &b);
    wfdef_free(w);
    CHECK_EQ_STR(buf_cstr(&b), "r\tmkt\torders\tpush\tapi.x.com\t1/100\n"
                               "r\t\torders\tpush\tapi.x.com:443\t1/100");
    struct limits_use u[4];
    CHECK_EQ_INT(limits_uses_decode(buf_cstr(&b), u, 4), 2);
    CHECK(u[0].count == 1 && u[0].per == 100 && u[1].per == 100);
    CHECK_EQ_INT(limits_use_tokens(&u[0], 250), 3);
    CHECK_EQ_INT(limits_use_items(&u[0], 3), 300);
    CHECK_EQ_INT(limits_uses_decode("r\ta\tb\tc\td\t1/0", u, 4), -1);
    /* 10 requests/s, burst 1: the slots of the next second, 11, carry 1,100 items */
    struct limits *l = with_server("{\"mkt\": {\"key\": \"{host}\", \"rate\": 10, \"burst\": 1}}");
    struct limits_grant g;
    size_t n = limits_admit(l, "acme", "j1", buf_cstr(&b), 5000, &g);
    CHECK(n >= 1000 && n <= 1200);
    limits_finish(l, &g);
    buf_release(&b);
    limits_free(l);
}

TEST(workflow_uses_and_hosts)
{
    const char *def =
        "{\"limits\": [\"items\"], \"steps\": ["
        "{\"type\": \"noop\", \"limits\": [\"n1\"]},"
        "{\"name\": \"a\", \"type\": \"http\", \"url\": \"https://u:p@api.x.com:8443/p/{{ref}}\","
        " \"limits\": [\"mkt\"]},"
        "{\"name\": \"b\", \"type\": \"http\", \"url\": \"http://[::1]:80/x\", \"limits\": "
        "[\"mkt\"]},"
        "{\"name\": \"c\", \"type\": \"http\", \"url\": \"https://{{data.host}}/x\", \"limits\": "
        "[\"mkt\"]}]}";
    struct wfdef *w = compile_orders(def);
    CHECK(w != NULL);
    CHECK_EQ_STR(w->steps[1].host, "api.x.com");
    CHECK_EQ_STR(w->steps[2].host, "::1");
    CHECK_EQ_STR(w->steps[3].host, "");
    CHECK_EQ_STR(w->steps[1].origin, "api.x.com:8443");
    CHECK_EQ_STR(w->steps[2].origin, "::1:80");
    CHECK_EQ_STR(w->steps[3].origin, "");
    struct buf b = BUF_INIT;
    limits_uses_of(w, &b);
    struct limits_use u[8];
    CHECK_EQ_INT(limits_uses_decode(buf_cstr(&b), u, 8), 7); /* + one per fixed host */
    /* named uses go by host ({host} keys), the learned ones by origin */
    CHECK(u[5].kind == LIMITS_REQUESTS && !u[5].name[0] && !strcmp(u[5].host, "api.x.com:8443"));
    CHECK(!u[6].name[0] && !strcmp(u[6].host, "::1:80") && u[6].count == 1);
    CHECK(u[0].kind == LIMITS_ITEMS && !strcmp(u[0].name, "items") &&
          !strcmp(u[0].workflow, "orders"));
    CHECK(u[1].kind == LIMITS_ITEMS && !strcmp(u[1].name, "n1") && !strcmp(u[1].step, "noop"));
    CHECK(u[2].kind == LIMITS_REQUESTS && !strcmp(u[2].host, "api.x.com") &&
          !strcmp(u[2].step, "a"));
    buf_release(&b);
    wfdef_free(w);
    /* more than 16 names in all */
    struct buf big = BUF_INIT;
    buf_puts(&big, "{\"limits\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\"], \"steps\": [");
    for (int i = 0; i < 2; i++)
        buf_printf(&big,
                   "%s{\"name\": \"s%d\", \"type\": \"noop\", \"limits\": [\"a\",\"b\",\"c\","
                   "\"d\",\"e\"]}",
                   i ? "," : "", i);
    buf_puts(&big, "]}");
    json_error_t je;
    json_t *j = json_loads(buf_cstr(&big), 0, &je);
    char err[256], target[64];
    CHECK_EQ_INT(wfdef_compile("x", 1, j, &w, err, sizeof err, target, sizeof target),
                 -SLUICE_E_INVALID_FIELD);
    CHECK_EQ_STR(target, "limits");
    json_decref(j);
    buf_release(&big);
}

/* Requests name their origin (host:port): configured buckets keyed by {host} and their
 * back-offs go by the host, what is learned by the whole origin. */
TEST(origins_share_host_buckets_and_learn_apart)
{
    struct limits *l = with_server("{\"mkt\": {\"key\": \"{host}\", \"rate\": 10, \"burst\": 2}}");
    const char *names[] = {"mkt"};
    struct limits_pacer *p = limits_pacer_new(l, "acme", "wf", "push", names, 1);
    int64_t t = clock_mono_ms() + 100000, h[4] = {0};
    CHECK_EQ_INT((int)(limits_pace(p, "h:1", t, &h[0]) - t), 0);
    CHECK_EQ_INT((int)(limits_pace(p, "h:2", t, &h[1]) - t), 0);
    CHECK_EQ_INT((int)(limits_pace(p, "h:3", t, &h[2]) - t), 100); /* one bucket: host h */
    CHECK_EQ_INT((int)(limits_pace(p, "::1:3", t, &h[3]) - t), 0); /* another host */
    limits_pacer_free(p);
    /* (new origins: those above took learned slots 100 s ahead) g:1 says its one request
     * a minute is spent; g:2, on the same host, says nothing and is not held */
    struct limits_pacer *q = limits_pacer_new(l, "acme", "wf", "push", names, 0);
    int64_t now = clock_mono_ms(), a = 0, b = 0;
    limits_learn_observe(l, "g:1", 200, 0,
                         "X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0\nX-RateLimit-Reset: 60\n",
                         now, now);
    CHECK(limits_pace(q, "g:1", now, &a) > now + 50000);
    CHECK(limits_pace(q, "g:2", now, &b) <= now);
    struct limits_learned ls;
    CHECK_EQ_INT(limits_learned_get(l, "g:1", &ls), 1);
    CHECK(ls.source == LIMITS_SRC_X && ls.blocked_ms > 50000);
    CHECK_EQ_INT(limits_learned_get(l, "g:2", &ls), 1);
    CHECK(ls.source == LIMITS_SRC_NONE && ls.blocked_ms == 0);
    CHECK_EQ_INT(limits_learned_get(l, "g", &ls), 0);
    limits_pacer_free(q);
    limits_free(l);
}

int main(void)
{
    RUN(definitions);
    RUN(uses_codec);
    RUN(item_tokens_at_claim);
    RUN(requests_within_the_horizon_and_concurrency);
    RUN(pacing_slots_and_backoff);
    RUN(backoff_holds_only_the_host_that_asked);
    RUN(batched_requests_admit_items_per_request);
    RUN(workflow_uses_and_hosts);
    RUN(origins_share_host_buckets_and_learn_apart);
    return test_report();
}
