/* test_pointer.c - RFC 6901 JSON pointers (lang/pointer.h), with the RFC's own example
 * document and pointers (section 5), and the batch status lists (spec/batch.h). */
#include <jansson.h>
#include <string.h>

#include "lang/pointer.h"
#include "spec/batch.h"
#include "testhelp.h"

static const char rfc_doc[] = "{\"foo\": [\"bar\", \"baz\"], \"\": 0, \"a/b\": 1, \"c%d\": 2, "
                              "\"e^f\": 3, \"g|h\": 4, \"i\\\\j\": 5, \"k\\\"l\": 6, \" \": 7, "
                              "\"m~n\": 8}";

TEST(rfc6901_examples)
{
    json_t *doc = json_loads(rfc_doc, 0, NULL);
    CHECK(doc != NULL);
    CHECK(pointer_get(doc, "") == doc);
    CHECK_EQ_STR(json_string_value(json_array_get(pointer_get(doc, "/foo"), 1)), "baz");
    CHECK_EQ_STR(json_string_value(pointer_get(doc, "/foo/0")), "bar");
    static const struct {
        const char *p;
        int v;
    } cases[] = {{"/", 0},     {"/a~1b", 1}, {"/c%d", 2}, {"/e^f", 3}, {"/g|h", 4},
                 {"/i\\j", 5}, {"/k\"l", 6}, {"/ ", 7},   {"/m~0n", 8}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (json_integer_value(pointer_get(doc, cases[i].p)) != cases[i].v)
            TH_FAIL("%s should give %d", cases[i].p, cases[i].v);
    static const char *absent[] = {"/foo/2",   "/foo/01", "/foo/-", "/nope",
                                   "/foo/0/x", "foo",     "/m~2n"};
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
        if (pointer_get(doc, absent[i]))
            TH_FAIL("%s should be absent", absent[i]);
    json_decref(doc);
}

TEST(check_messages)
{
    char err[100];
    CHECK_EQ_INT(pointer_check("", err, sizeof err), 0);
    CHECK_EQ_INT(pointer_check("/a/~0~1", err, sizeof err), 0);
    CHECK_EQ_INT(pointer_check("results", err, sizeof err), -1);
    CHECK(strstr(err, "start with '/'") != NULL);
    CHECK_EQ_INT(pointer_check("/a~", err, sizeof err), -1);
    CHECK_EQ_INT(pointer_check("/\xff", err, sizeof err), -1);
}

TEST(status_lists)
{
    json_t *ok = json_integer(204), *no = json_integer(300), *s = json_string("ok");
    CHECK(batch_status_in(NULL, ok));
    CHECK(!batch_status_in(NULL, no));
    CHECK(!batch_status_in(NULL, s));
    CHECK(!batch_status_in(NULL, NULL));
    json_t *list = json_pack("[s,i]", "ok", 300);
    CHECK(batch_status_in(list, s) && batch_status_in(list, no));
    CHECK(!batch_status_in(list, ok));
    json_t *str300 = json_string("300");
    CHECK(!batch_status_in(list, str300)); /* a string is not the integer */
    json_decref(str300);
    json_decref(list);
    json_decref(ok);
    json_decref(no);
    json_decref(s);
}

int main(void)
{
    RUN(rfc6901_examples);
    RUN(check_messages);
    RUN(status_lists);
    return test_report();
}
