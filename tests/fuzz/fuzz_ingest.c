/* fuzz-link: src/ingest src/util */
/* fuzz_ingest.c - libFuzzer target for the streaming submit-body parser (src/ingest).
 *
 * Input layout: byte 0 picks the chunking (seed and maximum chunk size), byte 1 the
 * limits; the rest is the body. The body is parsed as JSON and as NDJSON, once whole and
 * once in chunks, and these invariants are checked (abort() on violation):
 *  - whole and chunked parses give identical items, return codes and error records;
 *  - rc < 0 exactly when the error record has a code, and then its message is non-empty;
 *  - every delivered item has a NUL-terminated ref of 1..256 bytes without NUL, raw data
 *    within max_item_bytes that jansson parses (JSON_DECODE_ANY | JSON_ALLOW_NUL);
 *  - anything ingest_validate_json() accepts, jansson accepts. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    struct buf log;
    size_t max_item_bytes;
};

static void fail(const char *what)
{
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
}

static int on_item(void *ctx, const struct ingest_item *it)
{
    struct run *r = ctx;
    if (it->ref_len < 1 || it->ref_len > INGEST_REF_MAX || it->ref[it->ref_len] != '\0' ||
        strlen(it->ref) != it->ref_len)
        fail("ref length");
    if (it->data) {
        if (it->data_len == 0 || it->data_len > r->max_item_bytes)
            fail("data length");
        json_error_t je;
        json_t *j = json_loadb(it->data, it->data_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!j)
            fail("item data rejected by jansson");
        json_decref(j);
    }
    buf_printf(&r->log, "I%llu %zu:", (unsigned long long)it->index, it->ref_len);
    buf_append(&r->log, it->ref, it->ref_len);
    buf_printf(&r->log, " %zu:", it->data ? it->data_len : 0);
    if (it->data)
        buf_append(&r->log, it->data, it->data_len);
    buf_putc(&r->log, '\n');
    return 0;
}

static int on_field(void *ctx, const char *name, const char *value, size_t len)
{
    struct run *r = ctx;
    if (value[len] != '\0')
        fail("field value not terminated");
    buf_printf(&r->log, "F %s %zu:", name, len);
    buf_append(&r->log, value, len);
    buf_putc(&r->log, '\n');
    return 0;
}

/* Object-valued envelope fields ("callback"): raw text that must parse with jansson
 * as an object. */
static int on_raw_field(void *ctx, const char *name, const char *json, size_t len)
{
    struct run *r = ctx;
    json_error_t je;
    json_t *j = json_loadb(json, len, JSON_ALLOW_NUL, &je);
    if (!j || !json_is_object(j))
        fail("raw envelope field is not a JSON object");
    json_decref(j);
    buf_printf(&r->log, "R %s %zu:", name, len);
    buf_append(&r->log, json, len);
    buf_putc(&r->log, '\n');
    return 0;
}

/* Parses p; chunk_max 0 means whole. Leaves the outcome in r->log. */
static void parse(struct run *r, enum ingest_format fmt, const struct ingest_limits *lim,
                  const char *p, size_t n, unsigned seed, unsigned chunk_max)
{
    buf_reset(&r->log);
    r->max_item_bytes = lim->max_item_bytes;
    struct ingest *in = ingest_new(fmt, lim, on_item, on_field, r);
    ingest_set_raw_field_fn(in, on_raw_field); /* the API's setting: callback, priority */
    int rc = 0;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t off = 0; off < n && rc == 0;) {
        size_t k = n - off;
        if (chunk_max) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            k = 1 + x % chunk_max;
            if (k > n - off)
                k = n - off;
        }
        rc = ingest_feed(in, p + off, k);
        off += k;
    }
    if (rc == 0)
        rc = ingest_finish(in);
    const struct ingest_error *e = ingest_last_error(in);
    if ((rc < 0) != (e->code != 0) || (rc < 0 && e->code != rc) || (rc < 0 && !e->message[0]))
        fail("error record inconsistent with return code");
    if (rc < 0 && (ingest_feed(in, "{", 1) != rc || ingest_finish(in) != rc))
        fail("error not sticky");
    buf_printf(&r->log, "rc %d count %llu\n%s\n%s\n%llu %llu %llu\n", rc,
               (unsigned long long)ingest_count(in), e->message, e->target,
               (unsigned long long)e->line, (unsigned long long)e->column,
               (unsigned long long)e->offset);
    ingest_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run a, b;
    if (size < 2)
        return 0;
    unsigned seed = data[0], sel = data[1];
    const char *body = (const char *)data + 2;
    size_t n = size - 2;

    struct ingest_limits lim;
    ingest_limits_default(&lim);
    if (sel & 1)
        lim.max_item_bytes = 16 + (sel >> 1) * 4;
    if (sel & 2)
        lim.max_depth = sel >> 5;
    if (sel & 4)
        lim.max_items = sel >> 4;

    unsigned chunk_max = 1 + (seed % 64);
    for (int f = 0; f < 2; f++) {
        enum ingest_format fmt = f ? INGEST_NDJSON : INGEST_JSON;
        parse(&a, fmt, &lim, body, n, 0, 0);
        parse(&b, fmt, &lim, body, n, seed, chunk_max);
        if (a.log.len != b.log.len || memcmp(a.log.data, b.log.data, a.log.len) != 0) {
            fprintf(stderr, "whole:\n%s\nchunked (max %u):\n%s\n", buf_cstr(&a.log), chunk_max,
                    buf_cstr(&b.log));
            fail("whole and chunked parses differ");
        }
    }

    struct ingest_error e;
    if (ingest_validate_json(body, n, lim.max_depth, &e) == 0) {
        json_error_t je;
        json_t *j = json_loadb(body, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!j) {
            fprintf(stderr, "jansson: %s\n", je.text);
            fail("ingest_validate_json accepted what jansson rejects");
        }
        json_decref(j);
    } else if (e.code == 0 || !e.message[0]) {
        fail("validate error record empty");
    }
    return 0;
}
