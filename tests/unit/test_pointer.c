/* test_pointer.c - RFC 6901 JSON pointers (lang/pointer.h), with the RFC's own example
 * document and pointers (section 5), the batch status lists (spec/batch.h), and the
 * elements of the array at a pointer read from the text (pointer_array_texts). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/pointer.h"
#include "spec/batch.h"
#include "testhelp.h"
#include "util/buf.h"
#include "util/jload.h"

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

/* ---- pointer_array_texts: the same elements as pointer_get on the parsed value -------- */

static unsigned long long rng = 88172645463325252ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static const char *const names[] = {"a", "items", "0", "m~n", "a/b", "\\u00e9", "x y"};
static const char *const tokens[] = {"a", "items", "0", "m~0n", "a~1b", "\xc3\xa9", "x y", "1"};

static void ws(struct buf *b)
{
    static const char *const w[] = {"", "", "", " ", "\n  ", "\t"};
    buf_puts(b, w[rnd(6)]);
}

static void gen(struct buf *b, int depth)
{
    ws(b);
    unsigned r = rnd(depth > 4 ? 4 : 8);
    if (r == 0)
        buf_printf(b, "%d", (int)rnd(2000) - 1000);
    else if (r == 1)
        buf_puts(b, rnd(2) ? "\"s \\\"q\\\" [x] {y}\"" : "\"\\u0000, \\n\"");
    else if (r == 2)
        buf_puts(b, rnd(3) ? "true" : rnd(2) ? "null" : "1.5e3");
    else if (r == 3)
        buf_puts(b, "[]");
    else if (r < 6) {
        buf_putc(b, '[');
        for (unsigned i = 0, n = rnd(4); i < n; i++) {
            if (i)
                buf_putc(b, ',');
            gen(b, depth + 1);
        }
        ws(b);
        buf_putc(b, ']');
    } else {
        buf_putc(b, '{');
        for (unsigned i = 0, n = rnd(4); i < n; i++) {
            if (i)
                buf_putc(b, ',');
            ws(b);
            buf_printf(b, "\"%s\"", names[rnd(sizeof names / sizeof names[0])]);
            ws(b);
            buf_putc(b, ':');
            gen(b, depth + 1);
        }
        ws(b);
        buf_putc(b, '}');
    }
    ws(b);
}

TEST(array_texts_match_the_value)
{
    struct buf b = BUF_INIT, ptr = BUF_INIT;
    int arrays = 0, bad = 0;
    for (int i = 0; i < 20000 && bad < 5; i++) {
        buf_reset(&b);
        gen(&b, 0);
        buf_reset(&ptr);
        buf_putc(&ptr, '\0');
        ptr.len = 0;
        for (unsigned t = 0, n = rnd(4); t < n; t++)
            buf_printf(&ptr, "/%s", tokens[rnd(sizeof tokens / sizeof tokens[0])]);
        if (i % 50 == 0 && b.len) /* and some texts that are not JSON */
            b.data[rnd((unsigned)b.len)] = "]}{,:\"x"[rnd(7)];
        json_t *v = jload(b.data, b.len, JLOAD_ALLOW_NUL);
        json_t *want = pointer_get(v, ptr.data);
        struct pointer_text *el;
        long n = pointer_array_texts(b.data, b.len, ptr.data, &el);
        int ok = json_is_array(want) ? n == (long)json_array_size(want) : n == -1;
        for (long j = 0; ok && j < n; j++) {
            json_t *e = jload(el[j].text, el[j].len, JLOAD_ALLOW_NUL);
            ok = e && json_equal(e, json_array_get(want, (size_t)j)) &&
                 strlen(el[j].text) <= el[j].len && !strpbrk(el[j].text, "\n\t");
            json_decref(e);
        }
        if (!ok) {
            fprintf(stderr, "differs at %s in %s (got %ld)\n", ptr.data, b.data, n);
            bad++;
        }
        arrays += n > 0;
        for (long j = 0; j < n; j++)
            free(el[j].text);
        free(el);
        json_decref(v);
    }
    buf_release(&b);
    buf_release(&ptr);
    CHECK_EQ_INT(bad, 0);
    CHECK(arrays > 200); /* the pointers found non-empty arrays often enough to mean it */
}

/* A repeated member: its last occurrence counts, as pointer_get sees the value. */
TEST(array_texts_take_the_last_occurrence)
{
    static const char text[] = "{\"r\": [1, 2], \"r\": [ {\"a\" : [3, 4]} , \"x\" ], \"s\": [5]}";
    struct pointer_text *el;
    CHECK_EQ_INT(pointer_array_texts(text, strlen(text), "/r", &el), 2);
    CHECK_EQ_STR(el[0].text, "{\"a\":[3,4]}");
    CHECK_EQ_STR(el[1].text, "\"x\"");
    for (int i = 0; i < 2; i++)
        free(el[i].text);
    free(el);
    CHECK_EQ_INT(pointer_array_texts(text, strlen(text), "/r/0/a", &el), 2);
    CHECK_EQ_STR(el[1].text, "4");
    free(el[0].text);
    free(el[1].text);
    free(el);
    CHECK_EQ_INT(pointer_array_texts(text, strlen(text), "/s/0", &el), -1);   /* not an array */
    CHECK_EQ_INT(pointer_array_texts(text, strlen(text) - 1, "/s", &el), -1); /* cut */
}

int main(void)
{
    RUN(rfc6901_examples);
    RUN(check_messages);
    RUN(status_lists);
    RUN(array_texts_match_the_value);
    RUN(array_texts_take_the_last_occurrence);
    return test_report();
}
