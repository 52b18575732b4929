/* test_events.c - item events: the compact stored form and its public expansion. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "testhelp.h"
#include "util/buf.h"
#include "util/events.h"

/* 2026-12-07T12:00:00.000Z */
#define T0 1796644800000LL

static char *expand(const char *stored)
{
    struct buf b = BUF_INIT;
    events_expand(&b, stored);
    return buf_detach(&b, NULL);
}

TEST(step_event_round_trips_to_the_public_form)
{
    struct buf b = BUF_INIT;
    buf_putc(&b, '[');
    const struct item_event claim = {.at = T0,
                                     .stage = "claim",
                                     .level = "info",
                                     .code = "Claimed",
                                     .message = "claimed by worker 1 (attempt 1)",
                                     .duration_ms = -1};
    events_put(&b, &claim, NULL);
    json_t *extra = json_pack("{s:{s:i}}", "http", "status", 200);
    const struct item_event step = {.at = T0 + 5,
                                    .stage = "step",
                                    .step = "push",
                                    .type = "http",
                                    .outcome = "passed",
                                    .attempt = 2,
                                    .level = "info",
                                    .code = "Succeeded",
                                    .message = "PUT \"x\" 200",
                                    .duration_ms = 12};
    events_put(&b, &step, extra);
    json_decref(extra);
    buf_putc(&b, ']');
    /* compact: no ISO times, no endedAt, no implied outcome or info level */
    CHECK(strstr(b.data, "\"at\"") == NULL);
    CHECK(strstr(b.data, "endedAt") == NULL);
    CHECK(strstr(b.data, "passed") == NULL);
    CHECK(strstr(b.data, "info") == NULL);
    char *pub = expand(b.data);
    CHECK_EQ_STR(pub,
                 "[{\"at\":\"2026-12-07T12:00:00.000Z\",\"stage\":\"claim\",\"level\":\"info\","
                 "\"code\":\"Claimed\",\"message\":\"claimed by worker 1 (attempt 1)\"},"
                 "{\"at\":\"2026-12-07T12:00:00.005Z\",\"stage\":\"step\",\"step\":\"push\","
                 "\"type\":\"http\",\"outcome\":\"passed\","
                 "\"endedAt\":\"2026-12-07T12:00:00.017Z\",\"attempt\":2,\"level\":\"info\","
                 "\"code\":\"Succeeded\",\"message\":\"PUT \\\"x\\\" 200\",\"durationMs\":12,"
                 "\"http\":{\"status\":200}}]");
    free(pub);
    buf_release(&b);
}

/* Members written once for many events (extra_text) follow the extra object's, and read
 * back like them. */
TEST(extra_members_written_already_read_back_after_the_others)
{
    struct buf b = BUF_INIT;
    buf_putc(&b, '[');
    json_t *extra = json_pack("{s:i}", "status", 201);
    const struct item_event step = {.at = T0,
                                    .stage = "step",
                                    .type = "http",
                                    .outcome = "passed",
                                    .level = "info",
                                    .code = "Delivered",
                                    .message = "m",
                                    .duration_ms = 3,
                                    .extra_text = ",\"batch\":{\"items\":2,\"position\":1}"};
    events_put(&b, &step, extra);
    json_decref(extra);
    buf_putc(&b, ']');
    char *pub = expand(b.data);
    json_t *arr = json_loads(pub, 0, NULL);
    json_t *e = json_array_get(arr, 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(e, "status")), 201);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(e, "batch"), "position")), 1);
    CHECK(strstr(pub, "\"status\":201,\"batch\":{") != NULL);
    json_decref(arr);
    free(pub);
    buf_release(&b);
}

TEST(an_outcome_the_level_does_not_imply_is_kept)
{
    struct buf b = BUF_INIT;
    const struct item_event e = {.at = T0,
                                 .stage = "step",
                                 .step = "v",
                                 .type = "validate",
                                 .outcome = "skipped",
                                 .level = "warn",
                                 .code = "InvalidItem",
                                 .message = "m",
                                 .duration_ms = -1};
    buf_putc(&b, '[');
    events_put(&b, &e, NULL);
    buf_putc(&b, ']');
    char *pub = expand(b.data);
    CHECK(strstr(pub, "\"outcome\":\"skipped\",\"endedAt\":\"2026-12-07T12:00:00.000Z\"") != NULL);
    CHECK(strstr(pub, "\"level\":\"warn\"") != NULL);
    CHECK(strstr(pub, "durationMs") == NULL);
    free(pub);
    buf_release(&b);
    /* failed is implied by error */
    const struct item_event f = {.at = T0,
                                 .stage = "step",
                                 .step = "v",
                                 .type = "validate",
                                 .outcome = "failed",
                                 .level = "error",
                                 .code = "X",
                                 .message = "m",
                                 .duration_ms = 3};
    events_put(&b, &f, NULL);
    CHECK(strstr(b.data, "failed") == NULL);
    pub = expand(b.data); /* not an array: copied as it is */
    CHECK_EQ_STR(pub, b.data);
    free(pub);
    buf_release(&b);
}

TEST(claims_and_steps_named_after_their_type_store_less)
{
    struct buf b = BUF_INIT;
    buf_putc(&b, '[');
    const struct item_event claim = {.at = T0,
                                     .stage = "claim",
                                     .worker = 3,
                                     .attempt = 2,
                                     .level = "info",
                                     .code = "Claimed",
                                     .duration_ms = -1};
    events_put(&b, &claim, NULL);
    const struct item_event step = {.at = T0 + 1,
                                    .stage = "step",
                                    .step = "noop",
                                    .type = "noop",
                                    .outcome = "passed",
                                    .attempt = 2,
                                    .level = "info",
                                    .code = "Succeeded",
                                    .message = "noop: nothing to apply",
                                    .duration_ms = 0};
    events_put(&b, &step, NULL);
    buf_putc(&b, ']');
    CHECK(strstr(b.data, "claimed") == NULL); /* the claim's text is not stored */
    CHECK(strstr(b.data, "\"p\"") == NULL);   /* nor a step name equal to its type */
    char *pub = expand(b.data);
    CHECK_EQ_STR(
        pub, "[{\"at\":\"2026-12-07T12:00:00.000Z\",\"stage\":\"claim\",\"level\":\"info\","
             "\"code\":\"Claimed\",\"message\":\"claimed by worker 3 (attempt 2)\"},"
             "{\"at\":\"2026-12-07T12:00:00.001Z\",\"stage\":\"step\",\"step\":\"noop\","
             "\"type\":\"noop\",\"outcome\":\"passed\","
             "\"endedAt\":\"2026-12-07T12:00:00.001Z\",\"attempt\":2,\"level\":\"info\","
             "\"code\":\"Succeeded\",\"message\":\"noop: nothing to apply\",\"durationMs\":0}]");
    free(pub);
    buf_release(&b);
}

TEST(public_and_mixed_arrays_pass_through)
{
    const char *old = "[{\"at\":\"2020-01-01T00:00:00.000Z\",\"stage\":\"map\",\"level\":\"info\","
                      "\"code\":\"Mapped\",\"message\":\"ok\"}]";
    char *pub = expand(old);
    CHECK_EQ_STR(pub, old);
    free(pub);
    pub = expand("[{\"at\":\"2020-01-01T00:00:00.000Z\",\"stage\":\"claim\",\"level\":\"warn\","
                 "\"code\":\"LeaseExpired\",\"message\":\"m\"},"
                 "{\"t\":1796644800000,\"s\":\"apply\",\"p\":\"save\",\"c\":\"VersionWritten\","
                 "\"m\":\"products/1 version 1\"}]");
    CHECK(strstr(pub, "\"code\":\"LeaseExpired\"") != NULL);
    CHECK(strstr(pub, "{\"at\":\"2026-12-07T12:00:00.000Z\",\"stage\":\"apply\",\"step\":\"save\","
                      "\"level\":\"info\",\"code\":\"VersionWritten\"") != NULL);
    free(pub);
    pub = expand("[]");
    CHECK_EQ_STR(pub, "[]");
    free(pub);
}

/* What the engine writes for a no-op item: a claim, then a step against it. */
static void put_noop_claim(struct buf *b, int64_t at, int worker, int attempt, int64_t step_at)
{
    const struct item_event claim = {.at = at,
                                     .stage = "claim",
                                     .worker = worker,
                                     .attempt = attempt,
                                     .level = "info",
                                     .code = "Claimed",
                                     .duration_ms = -1};
    events_put(b, &claim, NULL);
    const struct item_event step = {.at = step_at,
                                    .stage = "step",
                                    .step = "noop",
                                    .type = "noop",
                                    .outcome = "passed",
                                    .attempt = attempt,
                                    .level = "info",
                                    .code = "Succeeded",
                                    .message = "noop: nothing to apply",
                                    .duration_ms = 0,
                                    .base = at,
                                    .same_attempt = 1};
    events_put(b, &step, NULL);
}

#define NOOP_PUBLIC                                                                                \
    "[{\"at\":\"2026-12-07T12:00:00.000Z\",\"stage\":\"claim\",\"level\":\"info\","                \
    "\"code\":\"Claimed\",\"message\":\"claimed by worker 1 (attempt 1)\"},"                       \
    "{\"at\":\"2026-12-07T12:00:00.005Z\",\"stage\":\"step\",\"step\":\"noop\","                   \
    "\"type\":\"noop\",\"outcome\":\"passed\",\"endedAt\":\"2026-12-07T12:00:00.005Z\","           \
    "\"attempt\":1,\"level\":\"info\",\"code\":\"Succeeded\","                                     \
    "\"message\":\"noop: nothing to apply\",\"durationMs\":0}]"

TEST(a_noop_item_stores_a_third_and_reads_the_same)
{
    struct buf b = BUF_INIT;
    buf_putc(&b, '[');
    put_noop_claim(&b, T0, 1, 1, T0 + 5);
    buf_putc(&b, ']');
    CHECK_EQ_STR(b.data, "[{\"T\":1796644800000,\"n\":1,\"w\":1},{\"u\":5,\"y\":\"noop\"}]");
    char *pub = expand(b.data);
    CHECK_EQ_STR(pub, NOOP_PUBLIC);
    free(pub);
    /* the form written before (absolute "t", every member) reads the same */
    pub = expand("[{\"t\":1796644800000,\"s\":\"claim\",\"n\":1,\"w\":1,\"c\":\"Claimed\"},"
                 "{\"t\":1796644800005,\"s\":\"step\",\"y\":\"noop\",\"n\":1,\"c\":\"Succeeded\","
                 "\"m\":\"noop: nothing to apply\",\"d\":0}]");
    CHECK_EQ_STR(pub, NOOP_PUBLIC);
    free(pub);
    buf_release(&b);
}

TEST(later_events_read_against_their_own_claim)
{
    /* attempt 1 in the old form, attempt 2 appended in the new one, then a store event
     * written against the second claim and a step whose attempt is not the claim's */
    struct buf b = BUF_INIT;
    buf_puts(&b, "[{\"t\":1796644700000,\"s\":\"claim\",\"n\":1,\"w\":1,\"c\":\"Claimed\"}");
    CHECK(events_base(b.data, b.len) == 0); /* not the new form: write absolute */
    buf_reset(&b);
    buf_putc(&b, '[');
    put_noop_claim(&b, T0, 2, 2, T0 + 7);
    CHECK(events_base(b.data, b.len) == T0);
    const struct item_event apply = {.at = T0 + 9,
                                     .stage = "apply",
                                     .step = "save",
                                     .level = "info",
                                     .code = "VersionWritten",
                                     .message = "products/1 version 3",
                                     .duration_ms = -1,
                                     .base = events_base(b.data, b.len)};
    events_put(&b, &apply, NULL);
    const struct item_event other = {.at = T0 + 10,
                                     .stage = "step",
                                     .step = "m",
                                     .type = "map",
                                     .outcome = "passed",
                                     .attempt = 5,
                                     .level = "info",
                                     .code = "Mapped",
                                     .message = "data reshaped",
                                     .duration_ms = 2,
                                     .base = T0};
    events_put(&b, &other, NULL);
    buf_putc(&b, ']');
    CHECK(strstr(b.data, "{\"u\":9,\"s\":\"apply\",\"p\":\"save\",\"m\":") != NULL);
    CHECK(strstr(b.data, "{\"u\":10,\"p\":\"m\",\"y\":\"map\",\"n\":5,\"d\":2}") != NULL);
    struct buf all = BUF_INIT;
    buf_puts(&all, "[{\"t\":1796644700000,\"s\":\"claim\",\"n\":1,\"w\":1,\"c\":\"Claimed\"},");
    buf_puts(&all, b.data + 1);
    char *pub = expand(all.data);
    CHECK(strstr(pub, "\"message\":\"claimed by worker 1 (attempt 1)\"") != NULL);
    CHECK(strstr(pub,
                 "{\"at\":\"2026-12-07T12:00:00.000Z\",\"stage\":\"claim\",\"level\":\"info\","
                 "\"code\":\"Claimed\",\"message\":\"claimed by worker 2 (attempt 2)\"}") != NULL);
    CHECK(strstr(pub, "\"endedAt\":\"2026-12-07T12:00:00.007Z\",\"attempt\":2,") != NULL);
    CHECK(strstr(pub, "{\"at\":\"2026-12-07T12:00:00.009Z\",\"stage\":\"apply\",\"step\":\"save\","
                      "\"level\":\"info\",\"code\":\"VersionWritten\","
                      "\"message\":\"products/1 version 3\"}") != NULL);
    CHECK(strstr(pub,
                 "\"endedAt\":\"2026-12-07T12:00:00.012Z\",\"attempt\":5,\"level\":\"info\","
                 "\"code\":\"Mapped\",\"message\":\"data reshaped\",\"durationMs\":2}") != NULL);
    free(pub);
    /* a second absolute time: appended events are written absolute again */
    CHECK(events_base(all.data, all.len) == 0);
    buf_release(&all);
    buf_release(&b);
}

TEST(a_fixed_message_is_left_out_only_when_it_is_the_one)
{
    struct buf b = BUF_INIT;
    buf_putc(&b, '[');
    const struct item_event e = {.at = T0,
                                 .stage = "step",
                                 .step = "noop",
                                 .type = "noop",
                                 .outcome = "passed",
                                 .attempt = 1,
                                 .level = "info",
                                 .code = "Succeeded",
                                 .message = "something else",
                                 .duration_ms = -1};
    events_put(&b, &e, NULL);
    buf_putc(&b, ']');
    CHECK(strstr(b.data, "\"m\":\"something else\"") != NULL);
    CHECK(strstr(b.data, "\"c\":\"Succeeded\"") != NULL);
    char *pub = expand(b.data);
    CHECK(strstr(pub, "\"message\":\"something else\"") != NULL);
    CHECK(strstr(pub, "\"attempt\":1") != NULL);
    CHECK(strstr(pub, "durationMs") == NULL); /* -1: none, kept */
    free(pub);
    buf_release(&b);
}

int main(void)
{
    RUN(step_event_round_trips_to_the_public_form);
    RUN(extra_members_written_already_read_back_after_the_others);
    RUN(an_outcome_the_level_does_not_imply_is_kept);
    RUN(claims_and_steps_named_after_their_type_store_less);
    RUN(public_and_mixed_arrays_pass_through);
    RUN(a_noop_item_stores_a_third_and_reads_the_same);
    RUN(later_events_read_against_their_own_claim);
    RUN(a_fixed_message_is_left_out_only_when_it_is_the_one);
    return test_report();
}
