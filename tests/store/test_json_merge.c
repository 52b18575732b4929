/* test_json_merge.c - RFC 7396 merge patch (util/json_merge.h), which the store uses
 * for PATCH: the examples of RFC 7396 appendix A, plus "inputs left untouched". */
#include <jansson.h>
#include <stdlib.h>

#include "testhelp.h"
#include "util/json_merge.h"

/* Merges patch into target (JSON texts; target "" = absent) and returns the compact
 * result text; caller frees. */
static char *merge(const char *target, const char *patch)
{
    json_t *t = *target ? json_loads(target, JSON_DECODE_ANY, NULL) : NULL;
    json_t *p = json_loads(patch, JSON_DECODE_ANY, NULL);
    json_t *r = json_merge_patch(t, p);
    char *s = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    json_decref(t);
    json_decref(p);
    json_decref(r);
    return s;
}

TEST(rfc7396_examples)
{
    static const char *const cases[][3] = {
        {"{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
        {"{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}"},
        {"{\"a\":\"b\"}", "{\"a\":null}", "{}"},
        {"{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}"},
        {"{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
        {"{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}"},
        {"{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}"},
        {"{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}"},
        {"[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]"},
        {"{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]"},
        {"{\"a\":\"foo\"}", "null", "null"},
        {"{\"a\":\"foo\"}", "\"bar\"", "\"bar\""},
        {"{\"e\":null}", "{\"a\":1}", "{\"a\":1,\"e\":null}"},
        {"[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}"},
        {"{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}"},
        {"", "{\"a\":{\"b\":null,\"c\":1}}", "{\"a\":{\"c\":1}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = merge(cases[i][0], cases[i][1]);
        if (!got || strcmp(got, cases[i][2]) != 0) {
            fprintf(stderr, "case %zu: got %s\n", i, got ? got : "(null)");
            free(got);
            TH_FAIL("merge %s with %s != %s", cases[i][0], cases[i][1], cases[i][2]);
        }
        free(got);
    }
}

TEST(inputs_untouched)
{
    json_t *t = json_loads("{\"a\":{\"b\":1,\"c\":2},\"d\":3}", 0, NULL);
    json_t *p = json_loads("{\"a\":{\"b\":null},\"d\":null}", 0, NULL);
    json_t *r = json_merge_patch(t, p);
    char *ts = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
    char *ps = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
    char *rs = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_EQ_STR(ts, "{\"a\":{\"b\":1,\"c\":2},\"d\":3}");
    CHECK_EQ_STR(ps, "{\"a\":{\"b\":null},\"d\":null}");
    CHECK_EQ_STR(rs, "{\"a\":{\"c\":2}}");
    free(ts);
    free(ps);
    free(rs);
    json_decref(t);
    json_decref(p);
    json_decref(r);
}

int main(void)
{
    RUN(rfc7396_examples);
    RUN(inputs_untouched);
    return test_report();
}
