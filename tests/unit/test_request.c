/* test_request.c - what the server parses of a request target and its small headers:
 * the route matcher (src/http/route.c) and the value parsers of src/api/params.c. */
#include <stdint.h>
#include <string.h>

#include "api/params.h"
#include "http/route.h"
#include "testhelp.h"
#include "util/errors.h"

TEST(routes_match_and_decode)
{
    struct route_params p;
    CHECK_EQ_INT(route_match("/v1/jobs/{id}:cancel", "/v1/jobs/j1:cancel", &p), 1);
    CHECK_EQ_INT(p.n, 1);
    CHECK_EQ_STR(p.name[0], "id");
    CHECK_EQ_STR(p.value[0], "j1");
    route_params_release(&p);
    CHECK_EQ_INT(p.n, 0);
    CHECK_EQ_INT(route_match("/v1/jobs/{id}", "/v1/jobs/a%3Ab%20%C3%A9", &p), 1);
    CHECK_EQ_STR(p.value[0], "a:b \xc3\xa9");
    route_params_release(&p);
    CHECK_EQ_INT(route_match("/v1/jobs/{id}/items/{index}", "/v1/jobs/j/items/7", &p), 1);
    CHECK_EQ_INT(p.n, 2);
    CHECK_EQ_STR(p.value[1], "7");
    route_params_release(&p);
    /* no match: an empty parameter, a longer path, another literal */
    CHECK_EQ_INT(route_match("/v1/jobs/{id}", "/v1/jobs/", &p), 0);
    CHECK_EQ_INT(route_match("/v1/jobs/{id}", "/v1/jobs/a/b", NULL), 0);
    CHECK_EQ_INT(route_match("/v1/jobs/{id}:cancel", "/v1/jobs/a:retry", NULL), 0);
    /* the shape matches but a parameter does not decode: %00, a bad escape, not UTF-8 */
    CHECK_EQ_INT(route_match("/v1/jobs/{id}/items/{index}", "/v1/jobs/j/items/%00", NULL), 1);
    CHECK_EQ_INT(route_match("/v1/jobs/{id}/items/{index}", "/v1/jobs/j/items/%00", &p), -1);
    CHECK_EQ_INT(p.n, 0);
    CHECK_EQ_INT(route_match("/v1/jobs/{id}", "/v1/jobs/%zz", &p), -1);
    CHECK_EQ_INT(route_match("/v1/jobs/{id}", "/v1/jobs/%C3", &p), -1);
    CHECK_EQ_INT(p.n, 0);
}

TEST(integers_are_strict)
{
    int64_t v = 5;
    CHECK_EQ_INT(api_parse_int("100", 1, 1000, &v), 0);
    CHECK_EQ_INT(v, 100);
    CHECK_EQ_INT(api_parse_int("+7", 1, 1000, &v), 0);
    CHECK_EQ_INT(v, 7);
    CHECK_EQ_INT(api_parse_int("-1", -1, 10, &v), 0);
    CHECK_EQ_INT(v, -1);
    CHECK_EQ_INT(api_parse_int("-9223372036854775808", INT64_MIN, 0, &v), 0);
    CHECK(v == INT64_MIN);
    CHECK_EQ_INT(api_parse_int("9223372036854775807", 0, INT64_MAX, &v), 0);
    CHECK(v == INT64_MAX);
    v = 5;
    /* found by fuzz_request: strtoll() took leading white space ("limit=%205") */
    const char *bad[] = {"",
                         " 5",
                         "\n5",
                         "\t-1",
                         "5 ",
                         "+",
                         "-",
                         "1e3",
                         "0x10",
                         "--1",
                         "9223372036854775808",
                         "-9223372036854775809",
                         "1001"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (api_parse_int(bad[i], 1, 1000, &v) != -SLUICE_E_INVALID_PARAMETER)
            TH_FAIL("api_parse_int accepted \"%s\"", bad[i]);
    }
    CHECK_EQ_INT(v, 5);
    CHECK_EQ_INT(api_parse_int("9223372036854775808", INT64_MIN, INT64_MAX, &v),
                 -SLUICE_E_INVALID_PARAMETER);
}

TEST(item_index_is_unsigned_digits)
{
    int64_t v = 5;
    CHECK_EQ_INT(api_parse_index("0", &v), 0);
    CHECK_EQ_INT(v, 0);
    CHECK_EQ_INT(api_parse_index("4294967296", &v), 0);
    CHECK_EQ_INT(v, 4294967296LL);
    v = 5;
    /* found by fuzz_request: "" was index 0, " 5" was 5 and an overflow INT64_MAX */
    const char *bad[] = {"", " 5", "+1", "-0", "5x", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (api_parse_index(bad[i], &v) != -SLUICE_E_INVALID_PARAMETER)
            TH_FAIL("api_parse_index accepted \"%s\"", bad[i]);
    }
    CHECK_EQ_INT(v, 5);
}

TEST(if_match_takes_this_apis_etags)
{
    int64_t v = 5;
    CHECK_EQ_INT(api_parse_if_match("\"3\"", &v), 0);
    CHECK_EQ_INT(v, 3);
    CHECK_EQ_INT(api_parse_if_match("W/\"12\"", &v), 0);
    CHECK_EQ_INT(v, 12);
    CHECK_EQ_INT(api_parse_if_match("0", &v), 0);
    CHECK_EQ_INT(v, 0);
    v = 5;
    /* found by fuzz_request: unbalanced quotes, white space, signs and overflows passed */
    const char *bad[] = {"",
                         "\"\"",
                         "\"3",
                         "3\"",
                         "W/3",
                         "W/",
                         "\" 3\"",
                         " 3",
                         "+3",
                         "\"-0\"",
                         "*",
                         "\"3\", \"4\"",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (api_parse_if_match(bad[i], &v) != -SLUICE_E_INVALID_PARAMETER)
            TH_FAIL("api_parse_if_match accepted \"%s\"", bad[i]);
    }
    CHECK_EQ_INT(v, 5);
}

TEST(if_none_match_lists_etags)
{
    CHECK_EQ_INT(api_etag_listed("\"ab\"", "\"ab\""), 1);
    CHECK_EQ_INT(api_etag_listed("W/\"ab\"", "\"ab\""), 1); /* the weak comparison */
    CHECK_EQ_INT(api_etag_listed("\"x\", \"ab\" ", "\"ab\""), 1);
    CHECK_EQ_INT(api_etag_listed(" * ", "\"ab\""), 1);
    CHECK_EQ_INT(api_etag_listed("\"abc\"", "\"ab\""), 0);
    CHECK_EQ_INT(api_etag_listed("\"a\"", "\"ab\""), 0);
    CHECK_EQ_INT(api_etag_listed("", "\"ab\""), 0);
    CHECK_EQ_INT(api_etag_listed(" , ", "\"ab\""), 0);
}

TEST(prefer_wait_is_a_preference)
{
    CHECK_EQ_INT(api_parse_prefer_wait(NULL, 60), 0);
    CHECK_EQ_INT(api_parse_prefer_wait("wait=10", 60), 10);
    CHECK_EQ_INT(api_parse_prefer_wait("respond-async, wait=10", 60), 10);
    CHECK_EQ_INT(api_parse_prefer_wait("respond-async,wait=99999999999999999999", 60), 60);
    CHECK_EQ_INT(api_parse_prefer_wait(" WAIT = \"5\" ; x=y, wait=9", 60), 5);
    CHECK_EQ_INT(api_parse_prefer_wait("return=minimal;wait=3", 60), 0); /* a parameter */
    /* found by fuzz_request: any "wait=" inside the header counted */
    CHECK_EQ_INT(api_parse_prefer_wait("nowait=5", 60), 0);
    CHECK_EQ_INT(api_parse_prefer_wait("handling=wait=5", 60), 0);
    CHECK_EQ_INT(api_parse_prefer_wait("x; wait=5", 60), 0);
    CHECK_EQ_INT(api_parse_prefer_wait("wait=5s", 60), 0);
    CHECK_EQ_INT(api_parse_prefer_wait("wait=-5", 60), 0);
    CHECK_EQ_INT(api_parse_prefer_wait("wait, wait=5", 60), 0); /* the first one counts */
}

int main(void)
{
    RUN(routes_match_and_decode);
    RUN(integers_are_strict);
    RUN(item_index_is_unsigned_digits);
    RUN(if_match_takes_this_apis_etags);
    RUN(if_none_match_lists_etags);
    RUN(prefer_wait_is_a_preference);
    return test_report();
}
