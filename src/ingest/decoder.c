/* decoder.c - Content-Encoding of a streamed request body; see decoder.h.
 *
 * With http/encoding.c (which compresses responses), the only code that includes
 * <zlib.h>. zlib inflates into one fixed output buffer,
 * which is handed to out_fn each time it fills (or the input runs out) and reused:
 * the decoded body never exists in memory as a whole, which is what keeps a
 * compression bomb harmless. The decoded count is checked before each hand-over, so
 * the limit holds at the first buffer that passes it. */
#include "ingest/decoder.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "util/errors.h"
#include "util/xmalloc.h"

struct decoder {
    enum decoder_coding coding;
    uint64_t max_out, count;
    decoder_out_fn out_fn;
    void *ctx;
    z_stream zs;
    int zinit;   /* zs was initialised (inflateEnd owed) */
    int started; /* a compressed stream has begun and not yet ended */
    int ended;   /* the last stream ended; more input starts a new gzip member */
    int err;
    int own_err; /* err was raised here, msg says why */
    char msg[160];
    unsigned char out[DECODER_OUT_SIZE];
};

int decoder_coding_parse(const char *value, enum decoder_coding *out)
{
    static const struct {
        const char *name;
        enum decoder_coding coding;
    } names[] = {{"identity", DECODER_IDENTITY},
                 {"gzip", DECODER_GZIP},
                 {"x-gzip", DECODER_GZIP},
                 {"deflate", DECODER_DEFLATE}};
    const char *p = value ? value : "";
    p += strspn(p, " \t");
    size_t n = strcspn(p, " \t");
    if (p[n + strspn(p + n, " \t")]) /* more than one token: several codings, or junk */
        return -SLUICE_E_UNSUPPORTED_MEDIA_TYPE;
    if (n == 0) {
        *out = DECODER_IDENTITY;
        return 0;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == n && strncasecmp(p, names[i].name, n) == 0) {
            *out = names[i].coding;
            return 0;
        }
    return -SLUICE_E_UNSUPPORTED_MEDIA_TYPE;
}

/* Records an error raised here, with its message for the error body. */
static int fail(struct decoder *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct decoder *d, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    d->err = err;
    d->own_err = 1;
    return err;
}

/* zlib allocates through xmalloc like everything else: out of memory aborts. */
static voidpf zalloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return xcalloc(items, size);
}

static void zfree(voidpf opaque, voidpf p)
{
    (void)opaque;
    free(p);
}

struct decoder *decoder_new(enum decoder_coding coding, uint64_t max_out, decoder_out_fn out_fn,
                            void *ctx)
{
    struct decoder *d = xcalloc(1, sizeof *d);
    d->coding = coding;
    d->max_out = max_out;
    d->out_fn = out_fn;
    d->ctx = ctx;
    if (coding != DECODER_IDENTITY) {
        d->zs.zalloc = zalloc;
        d->zs.zfree = zfree;
        /* 16 + MAX_WBITS: the gzip wrapper; MAX_WBITS alone: the zlib one ("deflate") */
        int rc = inflateInit2(&d->zs, coding == DECODER_GZIP ? 16 + MAX_WBITS : MAX_WBITS);
        if (rc == Z_OK) /* else a zlib version mismatch (zalloc aborts on no memory) */
            d->zinit = 1;
        else
            fail(d, -SLUICE_E_INTERNAL, "the decompressor could not start");
    }
    return d;
}

void decoder_free(struct decoder *d)
{
    if (!d)
        return;
    if (d->zinit)
        inflateEnd(&d->zs);
    free(d);
}

static const char *coding_name(const struct decoder *d)
{
    return d->coding == DECODER_GZIP ? "gzip" : "deflate";
}

/* Counts n decoded bytes against the limit and hands them on. */
static int emit(struct decoder *d, const char *p, size_t n)
{
    if (d->max_out && n > d->max_out - d->count)
        return fail(d, -SLUICE_E_PAYLOAD_TOO_LARGE,
                    "request body exceeds the limit of %llu bytes once decompressed",
                    (unsigned long long)d->max_out);
    d->count += n;
    int rc = d->out_fn(d->ctx, p, n);
    if (rc < 0)
        d->err = rc;
    return rc < 0 ? rc : 0;
}

/* Inflates everything in zs's input, emitting each time the output buffer fills. */
static int inflate_input(struct decoder *d)
{
    int full = 0; /* the last call filled the buffer: zlib may hold more output */
    while (d->zs.avail_in > 0 || (full && d->started)) {
        if (d->ended) { /* input after a stream's end: another gzip member (RFC 1952 2.2) */
            if (d->coding != DECODER_GZIP)
                return fail(d, -SLUICE_E_INVALID_REQUEST,
                            "the body has bytes after the end of its deflate stream");
            inflateReset(&d->zs);
            d->ended = 0;
        }
        d->started = 1;
        d->zs.next_out = d->out;
        d->zs.avail_out = sizeof d->out;
        int zr = inflate(&d->zs, Z_NO_FLUSH);
        size_t got = sizeof d->out - d->zs.avail_out;
        full = d->zs.avail_out == 0;
        /* What came before a corruption is handed on first: the error a body gets
         * then does not depend on how its chunks fell (a limit passed before the
         * corruption wins either way). */
        if (got && emit(d, (const char *)d->out, got) < 0)
            return d->err;
        if (zr == Z_NEED_DICT || zr == Z_DATA_ERROR || zr == Z_STREAM_ERROR)
            return fail(d, -SLUICE_E_INVALID_REQUEST, "the %s body is corrupt: %s", coding_name(d),
                        d->zs.msg ? d->zs.msg : "invalid data");
        if (zr == Z_MEM_ERROR) /* unreachable: zalloc aborts instead */
            return fail(d, -SLUICE_E_INTERNAL, "the decompressor ran out of memory");
        if (zr == Z_STREAM_END) {
            d->ended = 1;
            d->started = 0;
        } else if (zr == Z_BUF_ERROR && !got) {
            break; /* no progress possible: everything given is used */
        }
    }
    return 0;
}

int decoder_feed(struct decoder *d, const char *p, size_t n)
{
    if (d->err)
        return d->err;
    if (d->coding == DECODER_IDENTITY)
        return n ? emit(d, p, n) : 0;
    while (n > 0) {
        size_t part = n < UINT_MAX ? n : UINT_MAX; /* avail_in is a uInt */
        d->zs.next_in = (Bytef *)(uintptr_t)p;     /* zlib never writes its input */
        d->zs.avail_in = (uInt)part;
        int rc = inflate_input(d);
        if (rc < 0)
            return rc;
        p += part;
        n -= part;
    }
    return 0;
}

int decoder_finish(struct decoder *d)
{
    if (d->err)
        return d->err;
    if (d->coding != DECODER_IDENTITY && d->started)
        return fail(d, -SLUICE_E_INVALID_REQUEST,
                    "the %s body ends before its compressed stream does (truncated)",
                    coding_name(d));
    return 0;
}

uint64_t decoder_count(const struct decoder *d)
{
    return d->count;
}

const char *decoder_message(const struct decoder *d)
{
    return d->own_err ? d->msg : NULL;
}
