/* fuzz-link: src/ingest/decoder.c src/util */
/* fuzz_decoder.c - libFuzzer target for the Content-Encoding decoder (ingest/decoder.h).
 *
 * Input layout: byte 0 picks the coding (bits 0-1), the chunk size (bits 2-7) and
 * whether a small output limit applies; the rest is the encoded body. It is decoded
 * whole and in chunks, and these invariants are checked (abort() on violation):
 *  - whole and chunked decodes give the same bytes and the same return code;
 *  - out_fn never gets more than DECODER_OUT_SIZE bytes, nor more than the limit;
 *  - rc < 0 exactly when the decoder has a message (out_fn never fails here);
 *  - the body compressed by zlib itself decodes back to the body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ingest/decoder.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
}

static int collect(void *ctx, const char *p, size_t n)
{
    if (n == 0 || n > DECODER_OUT_SIZE)
        fail("out_fn chunk size");
    buf_append(ctx, p, n);
    return 0;
}

static int decode(enum decoder_coding c, uint64_t limit, const uint8_t *p, size_t n, size_t step,
                  struct buf *out)
{
    struct decoder *d = decoder_new(c, limit, collect, out);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i += step)
        rc = decoder_feed(d, (const char *)p + i, n - i < step ? n - i : step);
    if (rc == 0)
        rc = decoder_finish(d);
    if ((rc < 0) != (decoder_message(d) != NULL))
        fail("rc < 0 exactly when there is a message");
    if (limit && (out->len > limit || decoder_count(d) > limit))
        fail("limit passed");
    if (decoder_count(d) != out->len)
        fail("count");
    decoder_free(d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum decoder_coding c = (enum decoder_coding)(data[0] & 3);
    if (c > DECODER_DEFLATE)
        c = DECODER_GZIP;
    size_t step = (size_t)(data[0] >> 2) + 1;
    uint64_t limit = (data[0] & 0x80) ? 4096 : 0;
    data++;
    size--;
    struct buf whole = BUF_INIT, parts = BUF_INIT;
    int a = decode(c, limit, data, size, size ? size : 1, &whole);
    int b = decode(c, limit, data, size, step, &parts);
    if (a != b || (a == 0 && whole.len != parts.len) ||
        (a == 0 && whole.len && memcmp(whole.data, parts.data, whole.len)))
        fail("whole and chunked decodes differ");
    if (c != DECODER_IDENTITY) { /* round trip through zlib's own deflate */
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        deflateInit2(&zs, 6, Z_DEFLATED, c == DECODER_GZIP ? 16 + MAX_WBITS : MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY);
        uLong cap = deflateBound(&zs, (uLong)size);
        uint8_t *z = malloc(cap);
        zs.next_in = (Bytef *)(uintptr_t)data;
        zs.avail_in = (uInt)size;
        zs.next_out = z;
        zs.avail_out = (uInt)cap;
        deflate(&zs, Z_FINISH);
        size_t zn = cap - zs.avail_out;
        deflateEnd(&zs);
        struct buf rt = BUF_INIT;
        if (decode(c, 0, z, zn, step, &rt) != 0 || rt.len != size ||
            (size && memcmp(rt.data, data, size)))
            fail("round trip");
        buf_release(&rt);
        free(z);
    }
    buf_release(&whole);
    buf_release(&parts);
    return 0;
}
