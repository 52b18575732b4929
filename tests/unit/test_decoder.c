/* test_decoder.c - Content-Encoding decoding (ingest/decoder.h): coding names, gzip and
 * deflate whatever the chunking, the decoded-bytes limit, and corrupt streams. The
 * compressed inputs are made with zlib's own deflate, not with the code under test. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ingest/decoder.h"
#include "testhelp.h"
#include "util/buf.h"
#include "util/errors.h"

struct sink {
    struct buf out;
    size_t calls, largest;
    int fail_at; /* out_fn returns an error on this call (1-based); 0 = never */
};

static int collect(void *ctx, const char *p, size_t n)
{
    struct sink *s = ctx;
    s->calls++;
    if (n > s->largest)
        s->largest = n;
    if (s->fail_at && s->calls == (size_t)s->fail_at)
        return -SLUICE_E_INVALID_JSON;
    buf_append(&s->out, p, n);
    return 0;
}

/* Compresses n bytes of p as gzip (gz) or zlib; caller frees. */
static unsigned char *compress_with(int gz, const char *p, size_t n, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit2(&zs, 9, Z_DEFLATED, gz ? 16 + MAX_WBITS : MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&zs, (uLong)n);
    unsigned char *out = malloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)p;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    deflate(&zs, Z_FINISH);
    *outlen = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

static char *sample(size_t n)
{
    char *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)("{\"ref\":\"a\"}\n"[i % 12] + (i % 977 == 0));
    return p;
}

/* Feeds body in chunks of step bytes; returns the first error or finish's result. */
static int run(struct decoder *d, const unsigned char *body, size_t n, size_t step)
{
    for (size_t i = 0; i < n; i += step) {
        int rc = decoder_feed(d, (const char *)body + i, n - i < step ? n - i : step);
        if (rc < 0)
            return rc;
    }
    return decoder_finish(d);
}

TEST(coding_names)
{
    enum decoder_coding c = DECODER_GZIP;
    CHECK_EQ_INT(decoder_coding_parse(NULL, &c), 0);
    CHECK_EQ_INT(c, DECODER_IDENTITY);
    CHECK_EQ_INT(decoder_coding_parse(" \t", &c), 0);
    CHECK_EQ_INT(c, DECODER_IDENTITY);
    CHECK_EQ_INT(decoder_coding_parse(" GZip ", &c), 0);
    CHECK_EQ_INT(c, DECODER_GZIP);
    CHECK_EQ_INT(decoder_coding_parse("x-gzip", &c), 0);
    CHECK_EQ_INT(c, DECODER_GZIP);
    CHECK_EQ_INT(decoder_coding_parse("deflate", &c), 0);
    CHECK_EQ_INT(c, DECODER_DEFLATE);
    CHECK_EQ_INT(decoder_coding_parse("Identity", &c), 0);
    CHECK_EQ_INT(c, DECODER_IDENTITY);
    const char *bad[] = {"br", "gzip, identity", "gzip,gzip", "gzip identity", "gzipx", "gzi"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(decoder_coding_parse(bad[i], &c), -SLUICE_E_UNSUPPORTED_MEDIA_TYPE);
}

TEST(gzip_and_deflate_any_chunking)
{
    size_t n = 300000, zn;
    char *plain = sample(n);
    size_t steps[] = {1, 7, 4096, 1 << 20};
    for (int gz = 0; gz < 2; gz++) {
        unsigned char *z = compress_with(gz, plain, n, &zn);
        for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
            struct sink s = {BUF_INIT, 0, 0, 0};
            struct decoder *d = decoder_new(gz ? DECODER_GZIP : DECODER_DEFLATE, 0, collect, &s);
            CHECK_EQ_INT(run(d, z, zn, steps[k]), 0);
            CHECK_EQ_INT(s.out.len, n);
            CHECK(memcmp(s.out.data, plain, n) == 0);
            CHECK(s.largest <= DECODER_OUT_SIZE);
            CHECK_EQ_INT(decoder_count(d), n);
            CHECK(decoder_message(d) == NULL);
            decoder_free(d);
            buf_release(&s.out);
        }
        free(z);
    }
    free(plain);
}

TEST(gzip_members_and_identity)
{
    size_t an, bn;
    unsigned char *a = compress_with(1, "one\n", 4, &an);
    unsigned char *b = compress_with(1, "two\n", 4, &bn);
    unsigned char both[256];
    memcpy(both, a, an);
    memcpy(both + an, b, bn);
    struct sink s = {BUF_INIT, 0, 0, 0};
    struct decoder *d = decoder_new(DECODER_GZIP, 0, collect, &s);
    CHECK_EQ_INT(run(d, both, an + bn, 3), 0);
    CHECK_EQ_STR(buf_cstr(&s.out), "one\ntwo\n");
    decoder_free(d);
    buf_reset(&s.out);
    d = decoder_new(DECODER_IDENTITY, 0, collect, &s);
    CHECK_EQ_INT(run(d, both, an + bn, 5), 0);
    CHECK_EQ_INT(s.out.len, an + bn);
    decoder_free(d);
    /* an empty body is an empty body, whatever the coding */
    d = decoder_new(DECODER_GZIP, 0, collect, &s);
    CHECK_EQ_INT(decoder_finish(d), 0);
    decoder_free(d);
    buf_release(&s.out);
    free(a);
    free(b);
}

TEST(limit_counts_decoded_bytes)
{
    size_t n = 16u << 20, zn;
    char *zeros = calloc(1, n);
    unsigned char *z = compress_with(1, zeros, n, &zn);
    CHECK(zn < 64 * 1024);
    struct sink s = {BUF_INIT, 0, 0, 0};
    struct decoder *d = decoder_new(DECODER_GZIP, 1u << 20, collect, &s);
    CHECK_EQ_INT(run(d, z, zn, 4096), -SLUICE_E_PAYLOAD_TOO_LARGE);
    CHECK(s.out.len <= 1u << 20);
    CHECK(decoder_count(d) <= 1u << 20);
    CHECK(strstr(decoder_message(d), "1048576") != NULL);
    CHECK_EQ_INT(decoder_feed(d, "x", 1), -SLUICE_E_PAYLOAD_TOO_LARGE); /* sticky */
    decoder_free(d);
    /* identity counts too */
    d = decoder_new(DECODER_IDENTITY, 10, collect, &s);
    CHECK_EQ_INT(decoder_feed(d, "0123456789", 10), 0);
    CHECK_EQ_INT(decoder_feed(d, "!", 1), -SLUICE_E_PAYLOAD_TOO_LARGE);
    decoder_free(d);
    buf_release(&s.out);
    free(z);
    free(zeros);
}

TEST(corrupt_truncated_and_callback_errors)
{
    size_t n = 200000, zn; /* over DECODER_OUT_SIZE: several out_fn calls */
    char *plain = sample(n);
    unsigned char *z = compress_with(1, plain, n, &zn);
    struct sink s = {BUF_INIT, 0, 0, 0};
    struct decoder *d = decoder_new(DECODER_GZIP, 0, collect, &s);
    CHECK_EQ_INT(run(d, z, zn / 2, 100), -SLUICE_E_INVALID_REQUEST); /* truncated */
    CHECK(strstr(decoder_message(d), "truncated") != NULL);
    decoder_free(d);
    z[zn - 6] ^= 0xff; /* the CRC */
    d = decoder_new(DECODER_GZIP, 0, collect, &s);
    CHECK_EQ_INT(run(d, z, zn, 100), -SLUICE_E_INVALID_REQUEST);
    CHECK(strstr(decoder_message(d), "corrupt") != NULL);
    decoder_free(d);
    d = decoder_new(DECODER_DEFLATE, 0, collect, &s);
    CHECK_EQ_INT(run(d, (const unsigned char *)"plain text", 10, 4), -SLUICE_E_INVALID_REQUEST);
    decoder_free(d);
    z[zn - 6] ^= 0xff;
    s.calls = 0;
    s.fail_at = 2; /* the consumer's error passes through, with no message of ours */
    d = decoder_new(DECODER_GZIP, 0, collect, &s);
    CHECK_EQ_INT(run(d, z, zn, 1 << 20), -SLUICE_E_INVALID_JSON);
    CHECK(decoder_message(d) == NULL);
    CHECK_EQ_INT(decoder_finish(d), -SLUICE_E_INVALID_JSON);
    decoder_free(d);
    buf_release(&s.out);
    free(z);
    free(plain);
}

int main(void)
{
    RUN(coding_names);
    RUN(gzip_and_deflate_any_chunking);
    RUN(gzip_members_and_identity);
    RUN(limit_counts_decoded_bytes);
    RUN(corrupt_truncated_and_callback_errors);
    return test_report();
}
