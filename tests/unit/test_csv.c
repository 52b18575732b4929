/* test_csv.c - unit tests for CSV submit bodies (src/ingest/csvbody.c on libcsv).
 *
 * Every body is parsed whole, byte by byte and in random chunk sizes (fixed seeds);
 * the items delivered, the return code and the whole error record must be the same
 * every way, so chunk boundaries inside quoted fields, CRLF pairs, UTF-8 sequences
 * and the byte order mark are exercised by every case. The data of each item is also
 * parsed with jansson, which must read it as an object of strings. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/csvbody.h"
#include "ingest/ingest.h"
#include "testhelp.h"
#include "util/buf.h"
#include "util/errors.h"

struct outcome {
    int rc;
    struct ingest_error err;
    uint64_t count;
    struct buf log; /* "I<index> <ref> <data>\n" per item */
};

static struct outcome O, O2;
static struct ingest_limits g_lim;
static long g_abort_item = -1; /* item_fn returns -42 at this index */
static char g_mismatch[600];

static int on_item(void *ctx, const struct ingest_item *it)
{
    struct outcome *o = ctx;
    if ((long)it->index == g_abort_item)
        return -42;
    json_error_t je;
    json_t *d = json_loadb(it->data, it->data_len, 0, &je);
    const char *k;
    json_t *v;
    int strings = json_is_object(d);
    json_object_foreach(d, k, v) strings = strings && json_is_string(v);
    json_decref(d);
    buf_printf(&o->log, "I%llu %s %.*s%s\n", (unsigned long long)it->index, it->ref,
               (int)it->data_len, it->data, strings ? "" : " <NOT AN OBJECT OF STRINGS>");
    return 0;
}

/* Parses body (n bytes) in chunks from sizes (0 = whole, 1 = byte by byte, else a
 * random chunking seeded with it) into *o. */
static void parse(const char *body, size_t n, unsigned chunking, const char *ref_column,
                  struct outcome *o)
{
    struct csvbody *cb = csvbody_new(&g_lim, ref_column, on_item, o);
    buf_reset(&o->log);
    int rc = 0;
    size_t i = 0;
    srand(chunking);
    while (i < n && rc == 0) {
        size_t step = chunking == 0 ? n : chunking == 1 ? 1 : 1 + (size_t)rand() % 17;
        if (step > n - i)
            step = n - i;
        rc = csvbody_feed(cb, body + i, step);
        i += step;
    }
    if (rc == 0)
        rc = csvbody_finish(cb);
    o->rc = rc;
    o->err = *csvbody_last_error(cb);
    o->count = csvbody_count(cb);
    csvbody_free(cb);
}

/* Runs body every way into O; records the first disagreement in g_mismatch. */
static int run(const char *body, size_t n, const char *ref_column)
{
    g_mismatch[0] = '\0';
    parse(body, n, 0, ref_column, &O);
    static const unsigned ways[] = {1, 2, 3, 7, 11};
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        parse(body, n, ways[w], ref_column, &O2);
        if (O2.rc != O.rc || O2.count != O.count || strcmp(buf_cstr(&O2.log), buf_cstr(&O.log)) ||
            memcmp(&O2.err, &O.err, sizeof O.err)) {
            snprintf(g_mismatch, sizeof g_mismatch, "chunking %u: rc %d/%d, %s/%s", ways[w], O2.rc,
                     O.rc, O2.err.message, O.err.message);
            return -1000;
        }
    }
    return O.rc;
}

#define RUNS(body, col) run(body, sizeof(body) - 1, col)

#define CHECK_ERR(code_, target_, line_)                                                           \
    do {                                                                                           \
        CHECK_EQ_STR(g_mismatch, ""); /* every chunking agreed */                                  \
        CHECK_EQ_INT(O.rc, -(code_));                                                              \
        CHECK_EQ_INT(O.err.code, -(code_));                                                        \
        CHECK_EQ_STR(O.err.target, target_);                                                       \
        CHECK_EQ_INT(O.err.line, line_);                                                           \
    } while (0)

static void setup(void)
{
    ingest_limits_default(&g_lim);
    g_abort_item = -1;
}

TEST(basic_crlf_and_lf)
{
    setup();
    CHECK_EQ_INT(RUNS("sku,price\r\nA-1,12.50\r\nB-2,3\r\n", "sku"), 0);
    CHECK_EQ_STR(buf_cstr(&O.log), "I0 A-1 {\"sku\":\"A-1\",\"price\":\"12.50\"}\n"
                                   "I1 B-2 {\"sku\":\"B-2\",\"price\":\"3\"}\n");
    CHECK_EQ_INT(O.count, 2);
    /* LF, no newline at the end, blank lines skipped, the ref column anywhere */
    CHECK_EQ_INT(RUNS("price,sku\n\n1,a\n\r\n\n2,b", "sku"), 0);
    CHECK_EQ_STR(buf_cstr(&O.log), "I0 a {\"price\":\"1\",\"sku\":\"a\"}\n"
                                   "I1 b {\"price\":\"2\",\"sku\":\"b\"}\n");
    /* a lone CR ends a record too */
    CHECK_EQ_INT(RUNS("k,v\r1,x\r2,y\r", "k"), 0);
    CHECK_EQ_INT(O.count, 2);
}

TEST(quoting)
{
    setup();
    CHECK_EQ_INT(RUNS("id,text,n\n"
                      "1,\"a,b\",x\n"
                      "2,\"line1\nline2\r\nline3\",y\n"
                      "3,\"say \"\"hi\"\"\",\"\"\n"
                      "\"4\", spaced ,\t\n",
                      "id"),
                 0);
    CHECK_EQ_STR(buf_cstr(&O.log),
                 "I0 1 {\"id\":\"1\",\"text\":\"a,b\",\"n\":\"x\"}\n"
                 "I1 2 {\"id\":\"2\",\"text\":\"line1\\nline2\\r\\nline3\",\"n\":\"y\"}\n"
                 "I2 3 {\"id\":\"3\",\"text\":\"say \\\"hi\\\"\",\"n\":\"\"}\n"
                 "I3 4 {\"id\":\"4\",\"text\":\" spaced \",\"n\":\"\\t\"}\n");
    /* quoted header names; names and values are JSON-escaped */
    CHECK_EQ_INT(RUNS("\"the \"\"id\"\"\",\"caf\xc3\xa9\\\"\n\"k\",\"\x01\"\n", "the \"id\""), 0);
    CHECK_EQ_STR(buf_cstr(&O.log),
                 "I0 k {\"the \\\"id\\\"\":\"k\",\"caf\xc3\xa9\\\\\":\"\\u0001\"}\n");
}

TEST(bom_and_empty)
{
    setup();
    CHECK_EQ_INT(RUNS("\xef\xbb\xbfsku,x\n1,2\n", "sku"), 0);
    CHECK_EQ_STR(buf_cstr(&O.log), "I0 1 {\"sku\":\"1\",\"x\":\"2\"}\n");
    /* a BOM only at the very start: later it is text (a column name here) */
    CHECK_EQ_INT(RUNS("sku,\xef\xbb\xbfx\n1,2\n", "sku"), 0);
    CHECK_EQ_STR(buf_cstr(&O.log), "I0 1 {\"sku\":\"1\",\"\xef\xbb\xbfx\":\"2\"}\n");
    /* no items, no error: the caller answers EmptyJob */
    CHECK_EQ_INT(RUNS("", "sku"), 0);
    CHECK_EQ_INT(O.count, 0);
    CHECK_EQ_INT(RUNS("\xef\xbb\xbf", "sku"), 0);
    CHECK_EQ_INT(RUNS("sku,x\r\n", "sku"), 0);
    CHECK_EQ_INT(O.count, 0);
    CHECK_EQ_INT(RUNS("\n\r\n", "sku"), 0);
    CHECK_EQ_INT(O.count, 0);
    /* half a BOM is not UTF-8 */
    CHECK_EQ_INT(RUNS("\xef\xbb", "sku"), -SLUICE_E_INVALID_CSV);
    CHECK_ERR(SLUICE_E_INVALID_CSV, "line 1, column 1", 1);
}

/* One error case: the body (sizeof - 1 bytes: it may hold NUL), what it gives. */
struct err_case {
    const char *body;
    size_t len;
    int code;
    const char *target;
    uint64_t line;
    const char *message; /* NULL: not checked */
};
#define EC(body, code, target, line, message)                                                      \
    {                                                                                              \
        body, sizeof(body) - 1, code, target, line, message                                        \
    }

TEST(errors_name_line_and_column)
{
    static const struct err_case cases[] = {
        /* the header */
        EC("sku,,x\n1,2,3\n", SLUICE_E_INVALID_CSV, "line 1, column 2", 1,
           "a column name is empty (line 1, column 2)"),
        EC("\n\nsku,x,y,x\n1,2,3,4\n", SLUICE_E_INVALID_CSV, "line 3, column 4", 3,
           "the column name \"x\" is repeated; column names must be unique (line 3, column 4)"),
        EC("sku,x\n1,2\n", SLUICE_E_INVALID_FIELD, "refColumn", 1,
           "refColumn \"SKU\" is not a column of the header row (line 1)"),
        EC("sku,\xff\n", SLUICE_E_INVALID_CSV, "line 1, column 2", 1,
           "the column name is not valid UTF-8 (line 1, column 2)"),
        EC("sku,\xed\xa0\x80\n", SLUICE_E_INVALID_CSV, "line 1, column 2", 1, NULL), /* surrogate */
        /* line numbers count the lines of quoted line breaks: record 3 begins on line 5 */
        EC("sku,name\n1,\"two\nlines\"\n2,\"x\"\n3,a,b\n", SLUICE_E_INVALID_CSV, "line 5", 5,
           "the record has more fields than the header's 2 columns (line 5)"),
        EC("sku,name,price\r\n1,a,1\r\n2,b\r\n", SLUICE_E_INVALID_CSV, "line 3", 3,
           "the record has 2 fields, the header 3 (line 3)"),
        /* lone CRs end lines too (old Mac files), and a CR LF pair is one line end */
        EC("sku,name,price\r1,a,1\r2,b\r", SLUICE_E_INVALID_CSV, "line 3", 3,
           "the record has 2 fields, the header 3 (line 3)"),
        EC("sku,name\r\r\n1,a\r\n\r2,b\n3,\xff\r", SLUICE_E_INVALID_CSV, "line 6, column \"name\"",
           6, NULL),
        /* the last record without a line end is checked too */
        EC("sku,name\n1", SLUICE_E_INVALID_CSV, "line 2", 2, NULL),
        EC("sku,name\n1,a\n,b\n", SLUICE_E_INVALID_ITEM, "line 3, column \"sku\"", 3,
           "the ref is empty (line 3, column \"sku\")"),
        /* values: UTF-8 without NUL */
        EC("sku,name\n1,ok\n2,caf\xe9\n", SLUICE_E_INVALID_CSV, "line 3, column \"name\"", 3,
           "the value is not valid UTF-8 (line 3, column \"name\")"),
        EC("sku,name\n1,\"a\0b\"\n", SLUICE_E_INVALID_CSV, "line 2, column \"name\"", 2,
           "the value contains a NUL byte (line 2, column \"name\")"),
        /* a long column name is cut in the target, whole characters only */
        EC("sku,\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
           "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
           "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\n1,\xff\n",
           SLUICE_E_INVALID_CSV,
           "line 2, column \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
           "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
           "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9...\"",
           2, NULL),
    };
    setup();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct err_case *c = &cases[i];
        /* the refColumn case names a column the header lacks */
        run(c->body, c->len, c->code == SLUICE_E_INVALID_FIELD ? "SKU" : "sku");
        CHECK_ERR(c->code, c->target, c->line);
        if (c->message)
            CHECK_EQ_STR(O.err.message, c->message);
    }
}

TEST(column_cap)
{
    setup();
    struct buf b = BUF_INIT;
    for (int i = 1; i <= CSVBODY_MAX_COLUMNS; i++)
        buf_printf(&b, "%sc%d", i > 1 ? "," : "", i);
    buf_puts(&b, "\n");
    for (int i = 1; i <= CSVBODY_MAX_COLUMNS; i++)
        buf_printf(&b, "%s%d", i > 1 ? "," : "", i);
    CHECK_EQ_INT(run(b.data, b.len, "c16384"), 0);
    CHECK_EQ_INT(O.count, 1);
    buf_reset(&b);
    for (int i = 1; i <= CSVBODY_MAX_COLUMNS + 1; i++)
        buf_printf(&b, "%sc%d", i > 1 ? "," : "", i);
    run(b.data, b.len, "c1");
    CHECK_ERR(SLUICE_E_INVALID_CSV, "line 1, column 16385", 1);
    CHECK_EQ_STR(O.err.message, "the header has more than 16384 columns (line 1, column 16385)");
    buf_release(&b);
}

TEST(ref_length)
{
    setup();
    struct buf b = BUF_INIT;
    buf_puts(&b, "name,sku\nx,");
    for (int i = 0; i < 257; i++)
        buf_putc(&b, 'r');
    buf_putc(&b, '\n');
    run(b.data, b.len, "sku");
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "line 2, column \"sku\"", 2);
    CHECK_EQ_STR(O.err.message, "the ref is longer than 256 bytes (line 2, column \"sku\")");
    buf_reset(&b);
    buf_puts(&b, "name,sku\nx,");
    for (int i = 0; i < 256; i++)
        buf_putc(&b, 'r');
    CHECK_EQ_INT(run(b.data, b.len, "sku"), 0);
    CHECK_EQ_INT(O.count, 1);
    buf_release(&b);
}

TEST(malformed_quoting)
{
    setup();
    RUNS("sku,name\n1,ok\n2,a\"b\n", "sku");
    CHECK_ERR(SLUICE_E_INVALID_CSV, "line 3", 3);
    CHECK_EQ_INT(O.err.column, 4);
    CHECK_EQ_INT(O.err.offset, 17);
    CHECK(strstr(O.err.message, "malformed CSV at column 4 (byte 17)") == O.err.message);
    /* text after a closing quote, a space included (RFC 4180) */
    RUNS("sku,name\n\"1\"x,ok\n", "sku");
    CHECK_ERR(SLUICE_E_INVALID_CSV, "line 2", 2);
    CHECK_EQ_INT(O.err.column, 4);
    RUNS("sku,name\n\"1\" ,ok\n", "sku");
    CHECK_ERR(SLUICE_E_INVALID_CSV, "line 2", 2);
    /* after a BOM, columns count from the first character */
    RUNS("\xef\xbb\xbfsk\"u,name\n", "sku");
    CHECK_EQ_INT(O.err.column, 3);
    CHECK_EQ_INT(O.err.offset, 5);
    /* a quoted field still open at the end: the record's first line */
    RUNS("sku,name\n1,ok\n2,\"never\nclosed\n", "sku");
    CHECK_ERR(SLUICE_E_INVALID_CSV, "line 3", 3);
    CHECK_EQ_STR(O.err.message, "a quoted field is still open at the end of the body (line 3)");
    CHECK_EQ_INT(O.count, 1);
}

TEST(limits)
{
    setup();
    g_lim.max_items = 2;
    CHECK_EQ_INT(RUNS("k\n1\n2\n", "k"), 0);
    RUNS("k\n1\n2\n3\n", "k");
    CHECK_ERR(SLUICE_E_TOO_MANY_ITEMS, "line 4", 4);
    CHECK_EQ_INT(O.count, 2);
    setup();
    g_lim.max_item_bytes = 30; /* {"k":"1234567890","v":"12345"} is 30 */
    CHECK_EQ_INT(RUNS("k,v\n1234567890,12345\n", "k"), 0);
    RUNS("k,v\n1,2\n1234567890,123456\n", "k");
    CHECK_ERR(SLUICE_E_ITEM_TOO_LARGE, "line 3", 3);
    /* a huge field is refused before it is whole (raw bytes of the open record) */
    struct buf b = BUF_INIT;
    buf_puts(&b, "k,v\n1,\"");
    for (int i = 0; i < 100; i++)
        buf_puts(&b, "0123456789\n");
    run(b.data, b.len, "k");
    CHECK_ERR(SLUICE_E_ITEM_TOO_LARGE, "line 2", 2);
    CHECK_EQ_STR(O.err.message, "the record is larger than 30 bytes (line 2)");
    buf_release(&b);
    /* item_fn's error passes through and stops the parse */
    setup();
    g_abort_item = 1;
    RUNS("k\n1\n2\n3\n", "k");
    CHECK_ERR(42, "line 3", 3);
    CHECK_EQ_INT(O.count, 1);
    /* an error is sticky */
    struct csvbody *cb = csvbody_new(NULL, "k", on_item, &O);
    CHECK_EQ_INT(csvbody_feed(cb, "k\n\"a\"b\n", 7), -SLUICE_E_INVALID_CSV);
    CHECK_EQ_INT(csvbody_feed(cb, "1\n", 2), -SLUICE_E_INVALID_CSV);
    CHECK_EQ_INT(csvbody_finish(cb), -SLUICE_E_INVALID_CSV);
    csvbody_free(cb);
}

TEST(through_ingest)
{
    /* the ingest interface the submit handler uses */
    setup();
    buf_reset(&O.log);
    struct ingest *in = ingest_new_csv(NULL, "id", on_item, &O);
    CHECK_EQ_INT(ingest_feed(in, "id,v\n7,x\n", 9), 0);
    CHECK_EQ_INT(ingest_finish(in), 0);
    CHECK_EQ_INT(ingest_count(in), 1);
    CHECK_EQ_INT(ingest_last_error(in)->code, 0);
    CHECK_EQ_STR(buf_cstr(&O.log), "I0 7 {\"id\":\"7\",\"v\":\"x\"}\n");
    ingest_free(in);
    in = ingest_new_csv(NULL, "id", on_item, &O);
    CHECK_EQ_INT(ingest_feed(in, "id,v\n7\n", 7), -SLUICE_E_INVALID_CSV);
    CHECK_EQ_STR(ingest_last_error(in)->target, "line 2");
    ingest_free(in);
}

TEST(many_records)
{
    setup();
    struct buf b = BUF_INIT;
    buf_puts(&b, "sku,qty,note\r\n");
    for (int i = 0; i < 5000; i++)
        buf_printf(&b, "S%d,%d,\"n, \"\"%d\"\"\nx\"\r\n", i, i % 7, i);
    CHECK_EQ_INT(run(b.data, b.len, "sku"), 0);
    CHECK_EQ_INT(O.count, 5000);
    CHECK(
        strstr(buf_cstr(&O.log),
               "I4999 S4999 {\"sku\":\"S4999\",\"qty\":\"1\",\"note\":\"n, \\\"4999\\\"\\nx\"}\n"));
    buf_release(&b);
}

int main(void)
{
    buf_init(&O.log);
    buf_init(&O2.log);
    RUN(basic_crlf_and_lf);
    RUN(quoting);
    RUN(bom_and_empty);
    RUN(errors_name_line_and_column);
    RUN(ref_length);
    RUN(column_cap);
    RUN(malformed_quoting);
    RUN(limits);
    RUN(through_ingest);
    RUN(many_records);
    if (g_mismatch[0])
        fprintf(stderr, "note: %s\n", g_mismatch);
    buf_release(&O.log);
    buf_release(&O2.log);
    return test_report();
}
