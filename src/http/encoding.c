/* encoding.c - content codings of responses; see encoding.h.
 *
 * With ingest/decoder.c (which inflates request bodies), the only code that includes
 * <zlib.h>. Output goes straight into the caller's buffer: deflate is given the free
 * space at the buffer's end and the buffer grows while zlib has more to say. */
#include "http/encoding.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "util/xmalloc.h"

/* The gzip wrapper (RFC 1952) instead of zlib's: windowBits 15 + 16. */
#define GZIP_WINDOW_BITS (15 + 16)
#define GZIP_LEVEL 1
#define GZIP_MEM_LEVEL 8

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The q-value of one member's parameters p..end (";q=0.5"): 1 when absent or
 * unreadable as zero, 0 when it says 0 ("0", "0.", "0.000"). Only zero matters here:
 * every other weight makes the coding acceptable. */
static int member_weight_nonzero(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && (is_ows(*p) || *p == ';'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            p += 2;
            if (p == end || *p != '0')
                return 1;
            for (p++; p < end && (*p == '.' || *p == '0'); p++)
                ;
            return !(p == end || is_ows(*p) || *p == ';');
        }
        while (p < end && *p != ';')
            p++;
    }
    return 1;
}

int encoding_accepts_gzip(const char *ae)
{
    if (!ae)
        return 0;
    int gzip = -1, star = -1; /* -1: not listed; else the member's weight is above 0 */
    const char *p = ae;
    while (*p) {
        while (*p == ',' || is_ows(*p))
            p++;
        const char *name = p;
        while (*p && *p != ',' && *p != ';' && !is_ows(*p))
            p++;
        size_t n = (size_t)(p - name);
        const char *params = p;
        while (*p && *p != ',')
            p++;
        int ok = member_weight_nonzero(params, p);
        if ((n == 4 && strncasecmp(name, "gzip", 4) == 0) ||
            (n == 6 && strncasecmp(name, "x-gzip", 6) == 0))
            gzip = gzip == 1 ? 1 : ok;
        else if (n == 1 && *name == '*')
            star = ok;
    }
    return gzip >= 0 ? gzip : star == 1;
}

int encoding_compressible(const char *ct)
{
    if (!ct)
        return 0;
    size_t n = strcspn(ct, ";");
    while (n && is_ows(ct[n - 1]))
        n--;
#define IS(lit) (n == sizeof lit - 1 && strncasecmp(ct, lit, n) == 0)
    if (IS("text/event-stream"))
        return 0;
    if (n > 5 && strncasecmp(ct, "text/", 5) == 0)
        return 1;
    if (IS("application/json") || IS("application/x-ndjson") || IS("application/ndjson") ||
        IS("application/jsonlines") || IS("application/javascript") || IS("image/svg+xml"))
        return 1;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
#undef IS
}

struct encoding_stream {
    z_stream zs;
};

static int deflate_into(z_stream *zs, const void *in, size_t n, int mode, struct buf *out)
{
    zs->next_in = (Bytef *)in;
    zs->avail_in = 0;
    size_t left = n;
    for (;;) {
        /* avail_in is a uInt: feed a body larger than 4 GiB in slices */
        if (zs->avail_in == 0 && left) {
            uInt take = left > (1u << 30) ? (1u << 30) : (uInt)left;
            zs->avail_in = take;
            left -= take;
        }
        buf_grow(out, 16 * 1024);
        size_t room = out->cap - out->len - 1; /* the NUL stays outside zlib's reach */
        if (room > (1u << 30))
            room = 1u << 30;
        zs->next_out = (Bytef *)out->data + out->len;
        zs->avail_out = (uInt)room;
        int rc = deflate(zs, left ? Z_NO_FLUSH : mode);
        out->len += room - zs->avail_out;
        out->data[out->len] = '\0';
        if (rc == Z_STREAM_ERROR)
            return -1;
        if (mode == Z_FINISH && rc == Z_STREAM_END)
            return 0;
        /* Done when zlib took every input byte and, with room to spare, had nothing
         * more to write (for Z_SYNC_FLUSH / Z_NO_FLUSH). */
        if (mode != Z_FINISH && !left && zs->avail_in == 0 && zs->avail_out != 0)
            return 0;
    }
}

struct encoding_stream *encoding_stream_new(void)
{
    struct encoding_stream *z = xcalloc(1, sizeof *z);
    if (deflateInit2(&z->zs, GZIP_LEVEL, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

int encoding_stream_put(struct encoding_stream *z, const void *in, size_t n, int flush,
                        struct buf *out)
{
    int mode = flush == ENCODING_FINISH ? Z_FINISH
               : flush == ENCODING_SYNC ? Z_SYNC_FLUSH
                                        : Z_NO_FLUSH;
    return deflate_into(&z->zs, in, n, mode, out);
}

void encoding_stream_free(struct encoding_stream *z)
{
    if (!z)
        return;
    deflateEnd(&z->zs);
    free(z);
}

int encoding_gzip(const void *in, size_t n, struct buf *out)
{
    struct encoding_stream *z = encoding_stream_new();
    if (!z)
        return -1;
    int rc = encoding_stream_put(z, in, n, ENCODING_FINISH, out);
    encoding_stream_free(z);
    return rc;
}
