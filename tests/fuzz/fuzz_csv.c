/* fuzz-link: src/ingest src/util */
/* fuzz_csv.c - libFuzzer target for CSV submit bodies (src/ingest/csvbody.c on libcsv).
 *
 * Input layout: byte 0 picks the chunking (seed and maximum chunk size) and whether
 * small limits apply; then the ref column's name up to the first '\n' (at most 32
 * bytes; without one the name is "id"); the rest is the body. It is parsed once whole
 * and once in chunks, and these invariants are checked (abort() on violation):
 *  - both parses give identical items, return codes and error records;
 *  - rc < 0 exactly when the error record has a code, and then its message and target
 *    are non-empty;
 *  - every item has a NUL-terminated ref of 1..256 bytes without NUL, and data within
 *    max_item_bytes that jansson reads as an object of strings, one per column, whose
 *    member named after the ref column is the ref;
 *  - the items written back as CSV by libcsv's own writer (csv_write, every field
 *    quoted, CRLF) under the same header parse to the very same items. */
#include <csv.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/csvbody.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    struct buf log;
    const char *ref_column;
    size_t max_item_bytes;
    json_t *items; /* the items' data, in order */
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
    if (!it->data || it->data_len == 0 || it->data_len > r->max_item_bytes)
        fail("data length");
    json_error_t je;
    json_t *d = json_loadb(it->data, it->data_len, 0, &je);
    if (!json_is_object(d))
        fail("item data is not a JSON object jansson reads");
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v) if (!json_is_string(v)) fail("a value is not a string");
    json_t *ref = json_object_get(d, r->ref_column);
    if (!ref || strcmp(json_string_value(ref), it->ref) != 0)
        fail("the ref is not the ref column's value");
    json_array_append_new(r->items, d);
    buf_printf(&r->log, "I%llu %s %.*s\n", (unsigned long long)it->index, it->ref,
               (int)it->data_len, it->data);
    return 0;
}

/* Parses p (chunk_max 0: whole) into r; returns rc and copies the error record. */
static int parse(struct run *r, const struct ingest_limits *lim, const char *p, size_t n,
                 unsigned seed, unsigned chunk_max, struct ingest_error *err)
{
    buf_reset(&r->log);
    json_array_clear(r->items);
    r->max_item_bytes = lim->max_item_bytes;
    struct csvbody *cb = csvbody_new(lim, r->ref_column, on_item, r);
    int rc = 0;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t off = 0; off < n && rc == 0;) {
        size_t k = n - off;
        if (chunk_max) {
            x = x * 1103515245u + 12345u;
            k = 1 + (x >> 16) % chunk_max;
            if (k > n - off)
                k = n - off;
        }
        rc = csvbody_feed(cb, p + off, k);
        off += k;
    }
    if (rc == 0)
        rc = csvbody_finish(cb);
    *err = *csvbody_last_error(cb);
    if ((rc < 0) != (err->code != 0) || (rc < 0 && err->code != rc) ||
        (rc < 0 && (!err->message[0] || !err->target[0])))
        fail("error record inconsistent with return code");
    if (csvbody_count(cb) != json_array_size(r->items))
        fail("count differs from the items delivered");
    csvbody_free(cb);
    return rc;
}

/* Appends one field as libcsv's csv_write() quotes it. */
static void put_field(struct buf *b, const char *s, size_t n)
{
    size_t need = csv_write(NULL, 0, s, n);
    buf_grow(b, need);
    csv_write(b->data + b->len, need, s, n);
    b->len += need;
    b->data[b->len] = '\0';
}

/* The items of r written back as CSV under their (first item's) header. */
static void write_back(const struct run *r, struct buf *out)
{
    json_t *first = json_array_get(r->items, 0), *d;
    const char *k;
    json_t *v;
    size_t i, col = 0;
    json_object_foreach(first, k, v)
    {
        if (col++)
            buf_putc(out, ',');
        put_field(out, k, strlen(k));
    }
    buf_puts(out, "\r\n");
    json_array_foreach(r->items, i, d)
    {
        col = 0;
        json_object_foreach(d, k, v)
        {
            if (col++)
                buf_putc(out, ',');
            put_field(out, json_string_value(v), json_string_length(v));
        }
        buf_puts(out, "\r\n");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    char ref_column[33] = "id";
    const char *nl = memchr(p, '\n', n < 33 ? n : 33);
    if (nl && nl > p) {
        memcpy(ref_column, p, (size_t)(nl - p));
        ref_column[nl - p] = '\0';
        n -= (size_t)(nl - p) + 1;
        p = nl + 1;
    }
    struct ingest_limits lim;
    ingest_limits_default(&lim);
    if (mode & 0x80) {
        lim.max_items = 5;
        lim.max_item_bytes = 64;
    }
    struct run whole = {BUF_INIT, ref_column, 0, json_array()};
    struct run chunked = {BUF_INIT, ref_column, 0, json_array()};
    struct ingest_error e1, e2;
    int rc1 = parse(&whole, &lim, p, n, 0, 0, &e1);
    int rc2 = parse(&chunked, &lim, p, n, mode & 7, 1 + ((mode >> 3) & 15), &e2);
    if (rc1 != rc2 || strcmp(buf_cstr(&whole.log), buf_cstr(&chunked.log)) ||
        memcmp(&e1, &e2, sizeof e1))
        fail("whole and chunked parses differ");
    if (rc1 == 0 && json_array_size(whole.items) > 0) {
        struct buf csv = BUF_INIT;
        write_back(&whole, &csv);
        struct ingest_limits big;
        ingest_limits_default(&big); /* quoting makes records longer */
        json_t *before = json_deep_copy(whole.items);
        if (parse(&chunked, &big, csv.data, csv.len, 1, 7, &e2) != 0)
            fail("what libcsv's writer wrote back does not parse");
        if (!json_equal(before, chunked.items))
            fail("written back and parsed again, the items differ");
        json_decref(before);
        buf_release(&csv);
    }
    json_decref(whole.items);
    json_decref(chunked.items);
    buf_release(&whole.log);
    buf_release(&chunked.log);
    return 0;
}
