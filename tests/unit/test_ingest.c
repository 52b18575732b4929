/* test_ingest.c - unit tests for the streaming submit-body parser (src/ingest).
 *
 * Every body is parsed several ways: whole, byte by byte, and in random chunk sizes
 * (fixed seeds). The results - items delivered (index, ref, raw data), fields reported,
 * return code and the whole error record - must be identical, so chunk boundaries inside
 * UTF-8 sequences, escapes, numbers, literals and keys are exercised by every case. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "testhelp.h"
#include "util/buf.h"
#include "util/errors.h"

/* ---- harness: run one body every way and compare ---- */

struct outcome {
    int rc;
    struct ingest_error err;
    uint64_t count;
    struct buf log; /* "F name=value\n" and "I<index> <ref> <data or ->\n" lines */
};

static struct outcome O, O2;       /* O: the whole-body run; O2: scratch */
static struct ingest_limits g_lim; /* limits for the next run() */
static long g_abort_item = -1;     /* item_fn returns -42 at this index */
static int g_abort_field;          /* field_fn returns -43 */
static int g_raw;                  /* set a raw field callback ("callback") */
static int g_abort_raw;            /* it returns -44 */
static char g_mismatch[512];       /* first inconsistency seen by run() */

static int on_item(void *ctx, const struct ingest_item *it)
{
    struct outcome *o = ctx;
    if ((long)it->index == g_abort_item)
        return -42;
    buf_printf(&o->log, "I%llu ", (unsigned long long)it->index);
    buf_append(&o->log, it->ref, it->ref_len);
    if (strlen(it->ref) != it->ref_len || it->ref_len == 0 || it->ref_len > INGEST_REF_MAX)
        buf_puts(&o->log, "<BAD REF LENGTH>");
    buf_putc(&o->log, ' ');
    if (it->data)
        buf_append(&o->log, it->data, it->data_len);
    else
        buf_putc(&o->log, '-');
    buf_putc(&o->log, '\n');
    return 0;
}

static int on_field(void *ctx, const char *name, const char *value, size_t len)
{
    struct outcome *o = ctx;
    if (g_abort_field)
        return -43;
    buf_printf(&o->log, "F %s=", name);
    buf_append(&o->log, value, len);
    buf_putc(&o->log, '\n');
    return 0;
}

static int on_raw(void *ctx, const char *name, const char *json, size_t len)
{
    struct outcome *o = ctx;
    if (g_abort_raw)
        return -44;
    buf_printf(&o->log, "R %s=", name);
    buf_append(&o->log, json, len);
    buf_putc(&o->log, '\n');
    return 0;
}

static uint32_t rng = 1;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* mode 0: whole; 1: byte by byte; 2: random chunks up to 16 bytes; 3: up to 300. */
static void run_once(struct outcome *o, enum ingest_format fmt, const char *p, size_t n, int mode)
{
    buf_reset(&o->log);
    buf_putc(&o->log, 0); /* make data non-NULL even when nothing is logged */
    buf_reset(&o->log);
    struct ingest *in = ingest_new(fmt, &g_lim, on_item, on_field, o);
    if (g_raw)
        ingest_set_raw_field_fn(in, on_raw);
    int rc = 0;
    size_t off = 0;
    while (off < n && rc == 0) {
        size_t k = n - off;
        if (mode == 1)
            k = 1;
        else if (mode >= 2)
            k = 1 + rnd() % (mode == 2 ? 16 : 300);
        if (k > n - off)
            k = n - off;
        rc = ingest_feed(in, p + off, k);
        off += k;
    }
    if (rc == 0)
        rc = ingest_finish(in);
    o->rc = rc;
    o->err = *ingest_last_error(in);
    o->count = ingest_count(in);
    /* errors are sticky */
    if (rc < 0 && (ingest_feed(in, "x", 1) != rc || ingest_finish(in) != rc))
        snprintf(g_mismatch, sizeof g_mismatch, "error not sticky");
    ingest_free(in);
}

static int same(const struct outcome *a, const struct outcome *b)
{
    return a->rc == b->rc && a->count == b->count && a->err.code == b->err.code &&
           strcmp(a->err.message, b->err.message) == 0 &&
           strcmp(a->err.target, b->err.target) == 0 && a->err.line == b->err.line &&
           a->err.column == b->err.column && a->err.offset == b->err.offset &&
           a->log.len == b->log.len && memcmp(a->log.data, b->log.data, a->log.len) == 0;
}

/* Parses p every way; the whole-body result is left in O. Returns 1 if all agree. */
static int run_n(enum ingest_format fmt, const char *p, size_t n)
{
    run_once(&O, fmt, p, n, 0);
    for (int mode = 1; mode <= 3; mode++) {
        for (int rep = 0; rep < (mode == 1 ? 1 : 4); rep++) {
            run_once(&O2, fmt, p, n, mode);
            if (!same(&O, &O2)) {
                snprintf(g_mismatch, sizeof g_mismatch,
                         "chunking mode %d differs: rc %d/%d, msg '%.100s' / '%.100s', log "
                         "'%.100s' / '%.100s'",
                         mode, O.rc, O2.rc, O.err.message, O2.err.message, buf_cstr(&O.log),
                         buf_cstr(&O2.log));
                fprintf(stderr, "%s\n", g_mismatch);
                return 0;
            }
        }
    }
    return 1;
}

#define RUN_STR(fmt, s) run_n((fmt), (s), strlen(s))
#define JSON INGEST_JSON
#define NDJSON INGEST_NDJSON

static void reset_limits(void)
{
    ingest_limits_default(&g_lim);
    g_abort_item = -1;
    g_abort_field = 0;
    g_raw = 0;
    g_abort_raw = 0;
}

/* Checks an error outcome of the last run. */
#define CHECK_ERR(code_, target_, line_, col_)                                                     \
    do {                                                                                           \
        CHECK_EQ_INT(O.rc, -(code_));                                                              \
        CHECK_EQ_INT(O.err.code, -(code_));                                                        \
        CHECK_EQ_STR(O.err.target, target_);                                                       \
        CHECK_EQ_INT(O.err.line, line_);                                                           \
        CHECK_EQ_INT(O.err.column, col_);                                                          \
    } while (0)

/* Validates one JSON value both with ingest_validate_json() and streamed as the data of
 * an item (all chunkings), and checks that both agree and data comes back unchanged.
 * Returns the validate result (0 or negative), or 1 on an inconsistency. */
static int value_rc(const char *v, size_t n)
{
    struct ingest_error e;
    int rc = ingest_validate_json(v, n, 64, &e);
    if ((rc == 0) != (e.code == 0))
        return 1;
    struct buf body = BUF_INIT;
    buf_puts(&body, "{\"items\":[{\"ref\":\"r\",\"data\":");
    buf_append(&body, v, n);
    buf_puts(&body, "}]}");
    int ok = run_n(JSON, body.data, body.len);
    int agree = ok && (rc == 0 ? O.rc == 0 : O.rc == -SLUICE_E_INVALID_JSON);
    if (agree && rc == 0) {
        /* I0 r <data>\n, data without the whitespace around it */
        size_t a = 0, z = n;
        while (a < z && memchr(" \t\r\n", v[a], 4))
            a++;
        while (z > a && memchr(" \t\r\n", v[z - 1], 4))
            z--;
        agree = O.log.len == 5 + (z - a) + 1 && memcmp(O.log.data + 5, v + a, z - a) == 0;
    }
    buf_release(&body);
    if (!agree) {
        fprintf(stderr, "value '%.*s': validate %d, streamed %d (%s)\n", (int)n, v, rc, O.rc,
                O.err.message);
        return 1;
    }
    return rc;
}
#define VALID(lit) CHECK_EQ_INT(value_rc(lit, sizeof(lit) - 1), 0)
#define INVALID(lit) CHECK_EQ_INT(value_rc(lit, sizeof(lit) - 1), -SLUICE_E_INVALID_JSON)

/* ---- envelope and NDJSON basics ---- */

TEST(json_basic)
{
    reset_limits();
    CHECK(RUN_STR(JSON, "{\"workflow\":\"w1\",\"clientReference\":\"c\",\"items\":["
                        "{\"ref\":\"a\",\"data\":{\"x\":1}},{\"data\":[1,2],\"ref\":\"b\"}]}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_INT(O.count, 2);
    CHECK_EQ_STR(buf_cstr(&O.log), "F workflow=w1\nF clientReference=c\n"
                                   "I0 a {\"x\":1}\nI1 b [1,2]\n");
    CHECK_EQ_INT(O.err.code, 0);
}

TEST(json_order_and_whitespace)
{
    reset_limits();
    /* workflow after items, whitespace everywhere, raw data bytes kept with their spaces */
    const char *body =
        " \r\n\t{ \"items\" :\n [ { \"data\" : { \"a\" : [ 1 , 2 ] ,\n\"b\":\"x y\" } ,"
        " \"ref\" : \"r1\" } ,\n{\"ref\":\"r2\"} ] ,\n \"workflow\" : \"late\" } \n ";
    CHECK(RUN_STR(JSON, body));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_STR(buf_cstr(&O.log),
                 "I0 r1 { \"a\" : [ 1 , 2 ] ,\n\"b\":\"x y\" }\nI1 r2 -\nF workflow=late\n");
}

TEST(json_empty_items_and_escaped_keys)
{
    reset_limits();
    CHECK(RUN_STR(JSON, "{\"items\":[]}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_INT(O.count, 0);
    /* keys and values with escapes are decoded; data stays raw */
    CHECK(RUN_STR(JSON, "{\"\\u0069tems\":[{\"\\u0072ef\":\"a\\/b\\u00e9\\ud83d\\ude00\","
                        "\"d\\u0061ta\":\"\\u00e9\"}],\"work\\u0066low\":\"\\\"q\\\"\"}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_STR(buf_cstr(&O.log),
                 "I0 a/b\xc3\xa9\xf0\x9f\x98\x80 \"\\u00e9\"\nF workflow=\"q\"\n");
}

TEST(json_data_kinds)
{
    reset_limits();
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\",\"data\":12.5e3},{\"ref\":\"b\",\"data\":-0 },"
                        "{\"ref\":\"c\",\"data\":true},{\"ref\":\"d\",\"data\":null},"
                        "{\"ref\":\"e\",\"data\":\"s\\n\"},{\"data\":0,\"ref\":\"f\"},"
                        "{\"ref\":\"g\",\"data\":[[{}],{\"k\":[]}]}]}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_STR(buf_cstr(&O.log), "I0 a 12.5e3\nI1 b -0\nI2 c true\nI3 d null\nI4 e \"s\\n\"\n"
                                   "I5 f 0\nI6 g [[{}],{\"k\":[]}]\n");
}

TEST(ndjson_basic)
{
    reset_limits();
    CHECK(RUN_STR(NDJSON,
                  "{\"ref\":\"a\",\"data\":1}\r\n\n  \t\r\n {\"data\":{\"x\" : 2},\"ref\":\"b\"} "
                  "\t\n\n{\"ref\":\"c\"}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_INT(O.count, 3);
    CHECK_EQ_STR(buf_cstr(&O.log), "I0 a 1\nI1 b {\"x\" : 2}\nI2 c -\n");
    CHECK(RUN_STR(NDJSON, ""));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_INT(O.count, 0);
    CHECK(RUN_STR(NDJSON, "\n\r\n\n"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\"}\n"));
    CHECK_EQ_INT(O.count, 1);
}

TEST(ndjson_errors)
{
    reset_limits();
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\"} {\"ref\":\"b\"}\n"));
    CHECK_ERR(SLUICE_E_INVALID_NDJSON, "", 1, 13);
    CHECK_EQ_INT(O.count, 1);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\"}\r{\"ref\":\"b\"}\n"));
    CHECK_ERR(SLUICE_E_INVALID_NDJSON, "", 1, 13);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\"}\r"));
    CHECK_ERR(SLUICE_E_INVALID_NDJSON, "", 1, 13);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\",\n\"data\":1}\n"));
    CHECK_ERR(SLUICE_E_INVALID_NDJSON, "", 1, 12);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\"}\n[1]\n"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[1]", 2, 1);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\"}\n\"x\"\n"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[1]", 2, 1);
    CHECK(RUN_STR(NDJSON, "\n\n  7"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0]", 3, 3);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\"\n"));
    CHECK_ERR(SLUICE_E_INVALID_NDJSON, "", 1, 11);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\",\"data\":{"));
    CHECK_ERR(SLUICE_E_INVALID_NDJSON, "", 1, 20);
    CHECK(strstr(O.err.message, "unexpected end of input at line 1, column 20 (byte 19)") != NULL);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\",\"ref\":\"b\"}\n"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0].ref", 1, 12);
}

/* ---- envelope errors ---- */

TEST(envelope_errors)
{
    reset_limits();
    CHECK(RUN_STR(JSON, "[]"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "", 1, 1);
    CHECK(RUN_STR(JSON, " \"items\""));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "", 1, 2);
    CHECK(RUN_STR(JSON, "42"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "", 1, 1);
    CHECK(RUN_STR(JSON, "{\"workflow\":\"w\"}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "items", 1, 16);
    CHECK(RUN_STR(JSON, "{\"items\":{}}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "items", 1, 10);
    CHECK(RUN_STR(JSON, "{\"items\":[],\n\"workflow\":7}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "workflow", 2, 12);
    CHECK(RUN_STR(JSON, "{\"clientReference\":null,\"items\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "clientReference", 1, 20);
    CHECK(RUN_STR(JSON, "{\"items\":[],\"extra\":1}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "extra", 1, 13);
    CHECK(RUN_STR(JSON, "{\"items\":[],\"items\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "items", 1, 13);
    CHECK(RUN_STR(JSON, "{\"workflow\":\"a\",\"wor\\u006bflow\":\"b\",\"items\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "workflow", 1, 17);
    CHECK_EQ_STR(buf_cstr(&O.log), "F workflow=a\n");
    /* a key that only decodes to a prefix of a known one is unknown */
    CHECK(RUN_STR(JSON, "{\"item\\u0073x\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "itemsx", 1, 2);
    /* \u0000 in a key: valid JSON, but jansson cannot take it, so neither do we */
    CHECK(RUN_STR(JSON, "{\"items\\u0000\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 13);
    /* an over-long workflow value */
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"workflow\":\"");
    for (int i = 0; i < 5000; i++)
        buf_putc(&b, 'w');
    buf_puts(&b, "\",\"items\":[]}");
    int ok = run_n(JSON, b.data, b.len);
    buf_release(&b);
    CHECK(ok);
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "workflow", 1, 13);
}

/* ---- the "callback" envelope field (raw JSON) ---- */

TEST(envelope_callback)
{
    reset_limits();
    /* without a raw field callback it is an unknown key, as before */
    CHECK(RUN_STR(JSON, "{\"callback\":{\"url\":\"u\"},\"items\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "callback", 1, 2);
    g_raw = 1;
    /* handed over exactly as sent, wherever it stands, nested values included */
    CHECK(RUN_STR(JSON, "{\"workflow\":\"w\",\"callback\": { \"url\" : \"https://x/y\", "
                        "\"events\":[\"job.failed\"],\"n\":{\"a\":[{},{\"b\":1}]}} ,"
                        "\"items\":[{\"ref\":\"a\"}]}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_STR(
        buf_cstr(&O.log),
        "F workflow=w\nR callback={ \"url\" : \"https://x/y\", \"events\":[\"job.failed\"],"
        "\"n\":{\"a\":[{},{\"b\":1}]}}\nI0 a -\n");
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\",\"data\":{\"callback\":1}}],"
                        "\"callback\":{}}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_STR(buf_cstr(&O.log), "I0 a {\"callback\":1}\nR callback={}\n");
    /* not an object */
    CHECK(RUN_STR(JSON, "{\"callback\":\"https://x\",\"items\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "callback", 1, 13);
    CHECK(RUN_STR(JSON, "{\"callback\":[{}],\"items\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "callback", 1, 13);
    CHECK(RUN_STR(JSON, "{\"callback\":null,\"items\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "callback", 1, 13);
    /* duplicate */
    CHECK(RUN_STR(JSON, "{\"callback\":{},\"callback\":{},\"items\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "callback", 1, 16);
    /* malformed inside: a syntax error, as anywhere */
    CHECK(RUN_STR(JSON, "{\"callback\":{\"a\":tru},\"items\":[]}"));
    CHECK_EQ_INT(O.rc, -SLUICE_E_INVALID_JSON);
    /* the callback may stop the parse */
    g_abort_raw = 1;
    CHECK(RUN_STR(JSON, "{\"callback\":{},\"items\":[{\"ref\":\"a\"}]}"));
    CHECK_EQ_INT(O.rc, -44);
    CHECK_EQ_STR(O.err.target, "callback");
    CHECK_EQ_INT(O.count, 0);
    g_abort_raw = 0;
    /* too large */
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"callback\":{\"url\":\"");
    for (int i = 0; i < 20000; i++)
        buf_putc(&b, 'u');
    buf_puts(&b, "\"},\"items\":[]}");
    int ok = run_n(JSON, b.data, b.len);
    buf_release(&b);
    CHECK(ok);
    CHECK_EQ_INT(O.rc, -SLUICE_E_INVALID_FIELD);
    CHECK_EQ_STR(O.err.target, "callback");
    /* NDJSON has no envelope: an item key "callback" stays unknown */
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\",\"callback\":{}}\n"));
    CHECK_EQ_INT(O.rc, -SLUICE_E_INVALID_ITEM);
    reset_limits();
}

/* ---- item errors ---- */

TEST(envelope_priority)
{
    reset_limits();
    /* without the extended envelope (no raw field callback) it is an unknown key */
    CHECK(RUN_STR(JSON, "{\"priority\":1,\"items\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_FIELD, "priority", 1, 2);
    g_raw = 1;
    CHECK(RUN_STR(JSON, "{\"priority\":-100,\"workflow\":\"w\",\"items\":[{\"ref\":\"a\"}]}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_STR(buf_cstr(&O.log), "F priority=-100\nF workflow=w\nI0 a -\n");
    CHECK(RUN_STR(JSON, "{\"items\":[],\"priority\":100}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_STR(buf_cstr(&O.log), "F priority=100\n");
    static const char *const bad[] = {"101",  "-101", "1.5", "1e1", "\"3\"",
                                      "null", "true", "[1]", "{}",  "1000000000000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"priority\":%s,\"items\":[]}", bad[i]);
        CHECK(RUN_STR(JSON, body));
        CHECK_EQ_INT(O.rc, -SLUICE_E_INVALID_FIELD);
        CHECK_EQ_STR(O.err.target, "priority");
    }
    g_raw = 0;
}
TEST(item_errors)
{
    reset_limits();
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\"},7]}"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[1]", 1, 23);
    CHECK_EQ_INT(O.count, 1);
    CHECK(RUN_STR(JSON, "{\"items\":[[]]}"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0]", 1, 11);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"data\":1}]}"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0].ref", 1, 20);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":1}]}"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0].ref", 1, 18);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":{}}]}"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0].ref", 1, 18);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"\"}]}"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0].ref", 1, 18);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\\u0000b\"}]}"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0].ref", 1, 18);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\",\"ref\":\"b\"}]}"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0].ref", 1, 22);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\",\"data\":1,\"data\":2}]}"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0].data", 1, 31);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\"},{\"ref\":\"b\",\"foo\":1}]}"));
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[1].foo", 1, 34);
    /* duplicate keys inside data are fine (jansson keeps the last) */
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\",\"data\":{\"k\":1,\"k\":2}}]}"));
    CHECK_EQ_INT(O.rc, 0);

    /* ref length: 256 bytes ok (also when written with escapes), 257 not */
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"items\":[{\"ref\":\"");
    for (int i = 0; i < 254; i++)
        buf_putc(&b, 'r');
    buf_puts(&b, "\\u00e9\"}]}"); /* 254 + 2 bytes */
    int ok = run_n(JSON, b.data, b.len);
    CHECK(ok);
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_INT(O.log.len, 3 + 256 + 3);
    buf_reset(&b);
    buf_puts(&b, "{\"items\":[{\"ref\":\"");
    for (int i = 0; i < 257; i++)
        buf_putc(&b, 'r');
    buf_puts(&b, "\"}]}");
    ok = run_n(JSON, b.data, b.len);
    buf_release(&b);
    CHECK(ok);
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0].ref", 1, 18);
}

/* ---- syntax errors with positions ---- */

TEST(syntax_errors_positions)
{
    reset_limits();
    CHECK(RUN_STR(JSON, "{\n  \"items\": [1,]\n}"));
    /* the item 1 is rejected first: it is not an object */
    CHECK_ERR(SLUICE_E_INVALID_ITEM, "items[0]", 2, 13);
    CHECK(RUN_STR(JSON, "{\n  \"items\": [{\"ref\":\"a\"},]\n}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 2, 25);
    CHECK_EQ_INT(O.err.offset, 26);
    CHECK_EQ_STR(O.err.message,
                 "unexpected ']' (trailing comma?): ']' at line 2, column 25 (byte 26)");
    CHECK(RUN_STR(JSON, "{\"items\":[],}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 13);
    CHECK(RUN_STR(JSON, "{\"items\" []}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 10);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\" \"data\":1}]}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 22);
    CHECK(RUN_STR(JSON, "{\"items\":[]} {}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 14);
    CHECK(RUN_STR(JSON, "{\"items\":[]"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 12);
    CHECK(RUN_STR(JSON, ""));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 1);
    CHECK(RUN_STR(JSON, "  \n "));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 2, 2);
    CHECK(RUN_STR(JSON, "\xef\xbb\xbf{\"items\":[]}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 1);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\",\"data\":{\"x\":1]}}]}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 35);
    CHECK(RUN_STR(JSON, "{'items':[]}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 2);
    CHECK(RUN_STR(JSON, "{\"items\":[] /* c */}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 13);
    /* line counting across many lines */
    CHECK(RUN_STR(JSON, "{\n\n\n\"items\":\n[\n{\"ref\":\"a\"}\n,\n  x]}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 8, 3);
    /* a number ended by the end of the item, out of range: reported at its start */
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\",\"data\":[1,\n 99999999999999999999]}]}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 2, 2);
}

/* ---- limits ---- */

TEST(limit_max_items)
{
    reset_limits();
    g_lim.max_items = 2;
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\"},{\"ref\":\"b\"}]}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\"},{\"ref\":\"b\"},{\"ref\":\"c\"}]}"));
    CHECK_ERR(SLUICE_E_TOO_MANY_ITEMS, "items", 1, 35);
    CHECK_EQ_INT(O.count, 2);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\"}\n{\"ref\":\"b\"}\n{\"ref\":\"c\"}\n"));
    CHECK_ERR(SLUICE_E_TOO_MANY_ITEMS, "items", 3, 1);
    g_lim.max_items = 0;
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\"}"));
    CHECK_ERR(SLUICE_E_TOO_MANY_ITEMS, "items", 1, 1);
}

TEST(limit_max_item_bytes)
{
    reset_limits();
    /* {"ref":"a","data":"xxxx"} is 25 bytes */
    g_lim.max_item_bytes = 25;
    CHECK(RUN_STR(
        JSON, "{\"items\":[{\"ref\":\"a\",\"data\":\"xxxx\"},{\"ref\":\"b\",\"data\":\"xxxx\"}]}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_INT(O.count, 2);
    g_lim.max_item_bytes = 24;
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\",\"data\":\"xxxx\"}]}"));
    CHECK_ERR(SLUICE_E_ITEM_TOO_LARGE, "items[0]", 1, 35);
    CHECK_EQ_INT(O.err.offset, 34);
    /* raised at the first byte past the budget, before a later syntax error */
    g_lim.max_item_bytes = 11;
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\"}\n{\"ref\":\"bbbbbbbbb\" ]\n"));
    CHECK_ERR(SLUICE_E_ITEM_TOO_LARGE, "items[1]", 2, 12);
    CHECK_EQ_INT(O.count, 1);
    /* ... but a syntax error inside the budget wins */
    CHECK(RUN_STR(NDJSON, "{\"ref\":]"));
    CHECK_ERR(SLUICE_E_INVALID_NDJSON, "", 1, 8);
    /* a huge body of small items stays within a small budget */
    g_lim.max_item_bytes = 40;
    struct buf b = BUF_INIT;
    for (int i = 0; i < 2000; i++)
        buf_printf(&b, "{\"ref\":\"r%d\",\"data\":[%d,\"\xc3\xa9\"]}\n", i, i);
    int ok = run_n(NDJSON, b.data, b.len);
    buf_release(&b);
    CHECK(ok);
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_INT(O.count, 2000);
}

TEST(limit_depth)
{
    reset_limits();
    g_lim.max_depth = 3; /* item 1, data 2, one more level 3 */
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\",\"data\":{\"a\":[]}}]}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\",\"data\":{\"a\":[[]]}}]}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 35);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\",\"data\":{\"a\":[]}}"));
    CHECK_EQ_INT(O.rc, 0);
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\",\"data\":{\"a\":[[]]}}"));
    CHECK_ERR(SLUICE_E_INVALID_NDJSON, "", 1, 25);
    g_lim.max_depth = 0;
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\"}]}"));
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 11);

    /* 10,000 levels: rejected without recursion, by both entry points */
    reset_limits();
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"items\":[{\"ref\":\"a\",\"data\":");
    for (int i = 0; i < 10000; i++)
        buf_putc(&b, '[');
    for (int i = 0; i < 10000; i++)
        buf_putc(&b, ']');
    buf_puts(&b, "}]}");
    run_once(&O, JSON, b.data, b.len, 0);
    CHECK_ERR(SLUICE_E_INVALID_JSON, "", 1, 28 + 63 + 1);
    struct ingest_error e;
    CHECK_EQ_INT(ingest_validate_json(b.data + 28, 20000, 64, &e), -SLUICE_E_INVALID_JSON);
    CHECK_EQ_INT(e.offset, 64);
    /* a generous limit takes the deep value (the depth stack grows on the heap) */
    CHECK_EQ_INT(ingest_validate_json(b.data + 28, 20000, 10000, NULL), 0);
    CHECK_EQ_INT(ingest_validate_json(b.data + 28, 20000, 9999, NULL), -SLUICE_E_INVALID_JSON);
    buf_release(&b);
}

/* ---- callbacks ---- */

TEST(callbacks_abort)
{
    reset_limits();
    g_abort_item = 1;
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\"},{\"ref\":\"b\"},{\"ref\":\"c\"}]}"));
    CHECK_EQ_INT(O.rc, -42);
    CHECK_EQ_INT(O.err.code, -42);
    CHECK_EQ_STR(O.err.target, "items[1]");
    CHECK_EQ_INT(O.count, 1);
    CHECK_EQ_STR(buf_cstr(&O.log), "I0 a -\n");
    CHECK(RUN_STR(NDJSON, "{\"ref\":\"a\"}\n{\"ref\":\"b\"}\n"));
    CHECK_EQ_INT(O.rc, -42);
    reset_limits();
    g_abort_field = 1;
    CHECK(RUN_STR(JSON, "{\"items\":[{\"ref\":\"a\"}],\"workflow\":\"w\"}"));
    CHECK_EQ_INT(O.rc, -43);
    CHECK_EQ_STR(O.err.target, "workflow");
    CHECK_EQ_INT(O.count, 1);
    /* no callbacks at all is fine */
    struct ingest *in = ingest_new(JSON, NULL, NULL, NULL, NULL);
    CHECK_EQ_INT(ingest_feed(in, "{\"workflow\":\"w\",\"items\":[{\"ref\":\"a\"}]}", 38), 0);
    CHECK_EQ_INT(ingest_finish(in), 0);
    CHECK_EQ_INT(ingest_count(in), 1);
    CHECK_EQ_INT(ingest_last_error(in)->code, 0);
    ingest_free(in);
}

TEST(defaults)
{
    struct ingest_limits l;
    ingest_limits_default(&l);
    CHECK_EQ_INT(l.max_items, 1000000);
    CHECK_EQ_INT(l.max_item_bytes, 1048576);
    CHECK_EQ_INT(l.max_depth, 64);
}

/* ---- values: strings, UTF-8, escapes ---- */

TEST(string_bytes)
{
    reset_limits();
    /* every single byte inside a string: only printable ASCII but '"' and '\\' stand alone */
    for (int c = 0; c < 256; c++) {
        char v[3] = {'"', (char)c, '"'};
        int want = (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') ? 0 : -SLUICE_E_INVALID_JSON;
        int got = value_rc(v, 3);
        if (got != want)
            TH_FAIL("byte 0x%02x: %d != %d", c, got, want);
    }
    VALID("\"\x7f\"");
    INVALID("\"\t\"");
    INVALID("\"a\nb\"");
    INVALID("\"abc");
    /* long strings cross the 8-byte fast path at every alignment */
    VALID("\"0123456789abcdef0123456789\xc3\xa9xyz\"");
    INVALID("\"0123456789abcdef0123456\x01\"");
    INVALID("\"0123456789abcdef01234567\x80\"");
}

TEST(utf8)
{
    reset_limits();
    VALID("\"\xc2\x80\"");         /* U+0080 */
    VALID("\"\xdf\xbf\"");         /* U+07FF */
    VALID("\"\xe0\xa0\x80\"");     /* U+0800 */
    VALID("\"\xe2\x82\xac\"");     /* euro */
    VALID("\"\xed\x9f\xbf\"");     /* U+D7FF */
    VALID("\"\xee\x80\x80\"");     /* U+E000 */
    VALID("\"\xef\xbf\xbf\"");     /* U+FFFF */
    VALID("\"\xf0\x90\x80\x80\""); /* U+10000 */
    VALID("\"\xf0\x9f\x98\x80\""); /* emoji */
    VALID("\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
    VALID("{\"\xc3\xa9\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}");
    INVALID("\"\xc0\x80\"");         /* overlong NUL */
    INVALID("\"\xc1\xbf\"");         /* overlong */
    INVALID("\"\xe0\x80\x80\"");     /* overlong */
    INVALID("\"\xe0\x9f\xbf\"");     /* overlong */
    INVALID("\"\xed\xa0\x80\"");     /* U+D800 encoded */
    INVALID("\"\xed\xbf\xbf\"");     /* U+DFFF encoded */
    INVALID("\"\xf0\x80\x80\x80\""); /* overlong */
    INVALID("\"\xf0\x8f\xbf\xbf\""); /* overlong */
    INVALID("\"\xf4\x90\x80\x80\""); /* U+110000 */
    INVALID("\"\xf5\x80\x80\x80\"");
    INVALID("\"\xf8\x88\x80\x80\x80\"");
    INVALID("\"\xff\"");
    INVALID("\"\x80\""); /* stray continuation */
    INVALID("\"\xbf\"");
    INVALID("\"\xc3\""); /* truncated before the quote */
    INVALID("\"\xe2\x82\"");
    INVALID("\"\xf0\x9f\x98\"");
    INVALID("\"\xc3"); /* truncated at the end of input */
    INVALID("\"\xf0\x9f\x98");
    INVALID("\"\xe2\x82"
            "a\"");      /* lead followed by ASCII */
    INVALID("\xc3\xa9"); /* outside a string */
}

TEST(escapes)
{
    reset_limits();
    VALID("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"");
    VALID("\"\\u0000\""); /* allowed in data (JSON_ALLOW_NUL) */
    VALID("\"\\u00e9\\u20AC\\uFFFF\"");
    VALID("\"\\ud83d\\ude00\""); /* surrogate pair */
    VALID("\"\\uDBFF\\uDFFF\"");
    INVALID("{\"\\u0000\":1}"); /* jansson refuses NUL in keys */
    VALID("{\"a\":\"\\u0000\"}");
    INVALID("\"\\x\"");
    INVALID("\"\\U0041\"");
    INVALID("\"\\u12G4\"");
    INVALID("\"\\u123\"");
    INVALID("\"\\ud800\""); /* lone high */
    INVALID("\"\\udc00\""); /* lone low */
    INVALID("\"\\udfff\"");
    INVALID("\"a\\uDFFFb\"");
    INVALID("\"\\ud800\\u0041\""); /* high + non-low */
    INVALID("\"\\ud800\\ud800\"");
    INVALID("\"\\ud800x\"");
    INVALID("\"\\ud800\\n\"");
    INVALID("\"\\");
    INVALID("\"\\u00");
}

/* ---- values: numbers and literals ---- */

TEST(numbers)
{
    reset_limits();
    VALID("0");
    VALID("-0");
    VALID("-0.0");
    VALID("1.5e10");
    VALID("1E+2");
    VALID("-1e-2");
    VALID("123456789");
    VALID("9223372036854775807");
    VALID("-9223372036854775808");
    VALID("1e-400");
    VALID("-1e-400");
    VALID("0.0000000000000000000000000000001e-999999999999999999999999");
    VALID("1e308");
    VALID("1.7976931348623157e308"); /* DBL_MAX */
    VALID("1.7976931348623158e308"); /* rounds down to DBL_MAX */
    VALID("179769313486231570000000000000000000000000000000000000000000000000000000000000000"
          "000000000000000000000000000000000000000000000000000000000000000000000000000000000"
          "000000000000000000000000000000000000000000000000000000000000000000000000000000000"
          "00000000000000000000000000000000000000000000000000000000000000000.0");
    VALID("0e999999999999999999999");
    VALID("0.001e310"); /* 1e307: leading fraction zeros count */
    VALID("-0.000000000000000000001e328");
    INVALID("0.001e312");
    INVALID("100e307");
    VALID("100e305");
    VALID("[1,-2,3.5,4e1]");
    INVALID("9223372036854775808");
    INVALID("-9223372036854775809");
    INVALID("12345678901234567890");
    INVALID("1e400");
    INVALID("-1e400");
    INVALID("1e309");
    INVALID("1.7976931348623159e308"); /* rounds up to infinity */
    INVALID("1e99999999999999999999999");
    INVALID("01");
    INVALID("-01");
    INVALID("00");
    INVALID("1.");
    INVALID("1.e5");
    INVALID(".5");
    INVALID("+1");
    INVALID("-");
    INVALID("- 1");
    INVALID("1e");
    INVALID("1e+");
    INVALID("0x10");
    INVALID("1.5.");
    INVALID("NaN");
    INVALID("Infinity");
    INVALID("-Infinity");
    INVALID("[1,]");
    /* strtod decides the band between 1e308 and 1e309 exactly, even with many digits */
    char big[400];
    memset(big, '9', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *cases[] = {"1797693134862315807937289714053034150799341327710",
                           "17976931348623158079372897140530341507993413277",
                           "1797693134862315807937289714053034150799341327", big};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int frac = 0; frac < 2; frac++) {
            char num[600];
            /* scale to 309 integer digits: the case digits, then zeros or "e" */
            snprintf(num, sizeof num, "%s%se%d", cases[i], frac ? ".5" : ".0",
                     309 - (int)strlen(cases[i]));
            int want = isinf(strtod(num, NULL)) ? -SLUICE_E_INVALID_JSON : 0;
            int got = value_rc(num, strlen(num));
            if (got != want)
                TH_FAIL("%s: %d != %d", num, got, want);
        }
    }
}

TEST(literals_and_structure)
{
    reset_limits();
    VALID("true");
    VALID("false");
    VALID("null");
    VALID("[true,false,null]");
    VALID("{\"a\":{\"b\":[{}]},\"c\":\"\"}");
    VALID(" \t\r\n[ 1 ,\n2 ] \n");
    INVALID("tru");
    INVALID("nul");
    INVALID("True");
    INVALID("truex");
    INVALID("[1 2]");
    INVALID("{\"a\" 1}");
    INVALID("{\"a\":1,}");
    INVALID("{,}");
    INVALID("{1:2}");
    INVALID("[");
    INVALID("]");
    INVALID("[}");
    INVALID("{]");
    INVALID("{\"a\":1]");
    INVALID("// c\n1");
    INVALID("1 2");
    INVALID("'a'");
    struct ingest_error e;
    CHECK_EQ_INT(ingest_validate_json("", 0, 64, &e), -SLUICE_E_INVALID_JSON);
    CHECK_EQ_INT(ingest_validate_json("[1", 2, 64, &e), -SLUICE_E_INVALID_JSON);
    CHECK_EQ_STR(e.message, "unexpected end of input at line 1, column 3 (byte 2)");
    CHECK_EQ_INT(ingest_validate_json("  5  ", 5, 64, &e), 0);
    CHECK_EQ_INT(e.code, 0);
    CHECK_EQ_INT(ingest_validate_json("5", 1, 0, NULL), 0);
    CHECK_EQ_INT(ingest_validate_json("[]", 2, 0, NULL), -SLUICE_E_INVALID_JSON);
}

/* ---- a larger body: every chunking gives the same items ---- */

TEST(chunking_big_body)
{
    reset_limits();
    struct buf b = BUF_INIT, want = BUF_INIT;
    buf_puts(&b, "{\"workflow\":\"w\\u00e9\",\"items\":[");
    buf_puts(&want, "F workflow=w\xc3\xa9\n");
    for (int i = 0; i < 300; i++) {
        char data[200];
        snprintf(data, sizeof data,
                 "{\"n\":%d,\"f\":-%d.%de-%d,\"s\":"
                 "\"\\u00e9\xe2\x82\xac\xf0\x9f\x98\x80\\ud83d\\ude00 %d\","
                 " \"a\":[true,false,null,{}],\"z\":0}",
                 i, i, i % 7, i % 30, i);
        buf_printf(&b, "%s{ \"ref\" : \"item-%d\\t\", \"data\" : %s }", i ? ",\n" : "", i, data);
        buf_printf(&want, "I%d item-%d\t %s\n", i, i, data);
    }
    buf_puts(&b, "]}");
    int ok = run_n(JSON, b.data, b.len);
    CHECK(ok);
    CHECK_EQ_INT(O.rc, 0);
    CHECK_EQ_INT(O.count, 300);
    CHECK_EQ_STR(buf_cstr(&O.log), buf_cstr(&want));
    /* many random chunkings more */
    for (int rep = 0; rep < 50; rep++) {
        run_once(&O2, JSON, b.data, b.len, 2 + rep % 2);
        CHECK(same(&O, &O2));
    }
    buf_release(&b);
    buf_release(&want);
}

int main(void)
{
    buf_init(&O.log);
    buf_init(&O2.log);
    RUN(defaults);
    RUN(json_basic);
    RUN(json_order_and_whitespace);
    RUN(json_empty_items_and_escaped_keys);
    RUN(json_data_kinds);
    RUN(ndjson_basic);
    RUN(ndjson_errors);
    RUN(envelope_errors);
    RUN(envelope_callback);
    RUN(envelope_priority);
    RUN(item_errors);
    RUN(syntax_errors_positions);
    RUN(limit_max_items);
    RUN(limit_max_item_bytes);
    RUN(limit_depth);
    RUN(callbacks_abort);
    RUN(string_bytes);
    RUN(utf8);
    RUN(escapes);
    RUN(numbers);
    RUN(literals_and_structure);
    RUN(chunking_big_body);
    if (g_mismatch[0])
        fprintf(stderr, "note: %s\n", g_mismatch);
    buf_release(&O.log);
    buf_release(&O2.log);
    return test_report();
}
