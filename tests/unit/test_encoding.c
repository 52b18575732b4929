/* test_encoding.c - response content codings (http/encoding.h): which Accept-Encoding
 * values make gzip acceptable, which media types are compressed, and that what the
 * encoder writes is gzip that zlib's own inflate reads back, whole or streamed with
 * sync flushes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "http/encoding.h"
#include "testhelp.h"
#include "util/buf.h"

/* Inflates one gzip member with zlib's inflate (not the code under test) into out.
 * Returns 0 when the member ended exactly at the end of in. */
static int gunzip(const char *in, size_t n, struct buf *out, int need_end)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return -1;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    int rc;
    do {
        buf_grow(out, 64 * 1024);
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)(out->cap - out->len - 1);
        uInt before = zs.avail_out;
        rc = inflate(&zs, Z_SYNC_FLUSH);
        out->len += before - zs.avail_out;
        out->data[out->len] = '\0';
    } while (rc == Z_OK && (zs.avail_in > 0 || zs.avail_out == 0));
    inflateEnd(&zs);
    if (need_end)
        return rc == Z_STREAM_END && zs.avail_in == 0 ? 0 : -1;
    return rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END ? 0 : -1;
}

/* Checks fn(v) == want for each of the n values. */
#define EXPECT_ALL(fn, list, want)                                                                 \
    for (size_t i = 0; i < sizeof list / sizeof *list; i++)                                        \
        if (!!fn(list[i]) != (want))                                                               \
            TH_FAIL(#fn "(\"%s\") should be %d", list[i] ? list[i] : "(null)", (want));

TEST(accept_encoding)
{
    static const char *yes[] = {"gzip",
                                "GZIP",
                                "x-gzip",
                                "*",
                                "gzip;q=1",
                                "gzip ; q=0.001",
                                "br, gzip",
                                "deflate, gzip;q=0.5, br",
                                "*;q=0.1",
                                "identity;q=0, *",
                                "gzip;q=0, x-gzip",
                                "gzip;level=1",
                                "  ,gzip,  "};
    static const char *no[] = {
        "",      "identity",    "br",    "deflate",   "gzip;q=0", "gzip;q=0.000", "gzip; Q=0.",
        "*;q=0", "gzip;q=0, *", "gzipx", "x-gzipper", "gz",       ",,,",          "*, gzip;q=0"};
    CHECK_EQ_INT(encoding_accepts_gzip(NULL), 0);
    EXPECT_ALL(encoding_accepts_gzip, yes, 1)
    EXPECT_ALL(encoding_accepts_gzip, no, 0)
}

TEST(compressible_types)
{
    static const char *yes[] = {
        "application/json",          "Application/JSON; charset=utf-8", "application/x-ndjson",
        "application/problem+json",  "text/html; charset=utf-8",        "text/css",
        "text/plain; version=0.0.4", "application/javascript",          "image/svg+xml"};
    static const char *no[] = {NULL,
                               "",
                               "text/event-stream",
                               "text/event-stream; charset=utf-8",
                               "image/png",
                               "application/octet-stream",
                               "application/gzip",
                               "text/",
                               "+json"};
    EXPECT_ALL(encoding_compressible, yes, 1)
    EXPECT_ALL(encoding_compressible, no, 0)
}

/* n bytes of JSON-like text that compresses, with some variety */
static char *sample(size_t n)
{
    char *p = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = "{\"ref\":\"SKU-0001\",\"status\":\"Succeeded\"}\n"[i % 40] + (char)(i % 997 == 0);
    p[n] = '\0';
    return p;
}

TEST(whole_body_round_trip)
{
    size_t sizes[] = {0, 1, 1023, 70000, 3 << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        char *plain = sample(sizes[k]);
        struct buf z = BUF_INIT, back = BUF_INIT;
        CHECK_EQ_INT(encoding_gzip(plain, sizes[k], &z), 0);
        CHECK(z.len >= 18 && (unsigned char)z.data[0] == 0x1f && (unsigned char)z.data[1] == 0x8b);
        CHECK_EQ_INT(gunzip(z.data, z.len, &back, 1), 0);
        CHECK_EQ_INT(back.len, sizes[k]);
        CHECK(sizes[k] == 0 || memcmp(back.data, plain, sizes[k]) == 0);
        if (sizes[k] >= 70000)
            CHECK(z.len * 5 < sizes[k]);
        buf_release(&z);
        buf_release(&back);
        free(plain);
    }
}

/* z decodes to plain[0..n) (whole: and the member ended there). */
static void check_decodes(const struct buf *z, const char *plain, size_t n, int whole)
{
    struct buf back = BUF_INIT;
    CHECK_EQ_INT(gunzip(z->data, z->len, &back, whole), 0);
    CHECK_EQ_INT(back.len, n);
    CHECK(memcmp(back.data, plain, n) == 0);
    buf_release(&back);
}

TEST(stream_with_sync_flushes)
{
    size_t n = 200000;
    char *plain = sample(n);
    struct encoding_stream *s = encoding_stream_new();
    CHECK(s != NULL);
    struct buf z = BUF_INIT;
    size_t fed = 0, step = 1;
    while (fed < n) {
        size_t take = step < n - fed ? step : n - fed;
        CHECK_EQ_INT(encoding_stream_put(s, plain + fed, take, 0, &z), 0);
        fed += take;
        step = step * 3 + 1;
        /* after a sync flush, everything fed so far decodes from what was written */
        CHECK_EQ_INT(encoding_stream_put(s, NULL, 0, ENCODING_SYNC, &z), 0);
        check_decodes(&z, plain, fed, 0);
    }
    CHECK_EQ_INT(encoding_stream_put(s, NULL, 0, ENCODING_FINISH, &z), 0);
    check_decodes(&z, plain, n, 1);
    buf_release(&z);
    encoding_stream_free(s);
    encoding_stream_free(NULL);
    free(plain);
}

int main(void)
{
    RUN(accept_encoding);
    RUN(compressible_types);
    RUN(whole_body_round_trip);
    RUN(stream_with_sync_flushes);
    return test_report();
}
