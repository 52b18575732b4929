/* encoding.h - content codings of responses: what a client accepts, and gzip.
 *
 * A client that sends "Accept-Encoding: gzip" gets large text responses (an item
 * page, a results stream, the OpenAPI document) gzip-compressed, with
 * "Content-Encoding: gzip"; JSON shrinks five to ten times, which is what a client
 * paging through a million results pays for in transfer time. The server decides per
 * response (server.c): the request must accept gzip (encoding_accepts_gzip), the
 * media type must be text-like (encoding_compressible), and a whole body must be at
 * least ENCODING_MIN_BYTES, below which the gzip header and the CPU cost more than they
 * save. Event streams are never compressed: a compressor holds bytes back, and an
 * event must reach the client when it happens.
 *
 * Pure functions of their input plus zlib; a struct encoding_stream belongs to one
 * response. Compression uses zlib level 1: on JSON it keeps most of the ratio of the
 * default level at a fraction of the CPU, and the CPU is the server's. */
#ifndef SLUICE_HTTP_ENCODING_H
#define SLUICE_HTTP_ENCODING_H

#include <stddef.h>

#include "util/buf.h"

#define ENCODING_MIN_BYTES 1024

/* 1 when the Accept-Encoding field value (RFC 9110 12.5.3; NULL = absent) makes gzip
 * acceptable: "gzip" or "x-gzip" listed with a q-value above 0, or "*" above 0 with
 * gzip not listed at all. Malformed members are skipped, never an error: a client
 * that cannot say it accepts gzip gets identity, which every client accepts. */
int encoding_accepts_gzip(const char *accept_encoding);

/* 1 when a body of media type content_type (parameters ignored, case-insensitive) is
 * worth compressing: application/json, application/x-ndjson and other +json / ndjson
 * / jsonlines types, application/javascript, image/svg+xml, and every text type except
 * text/event-stream. */
int encoding_compressible(const char *content_type);

/* Appends the gzip encoding (RFC 1952, one member) of in[0..n) to out. 0, or -1 when
 * zlib fails (out may then hold part of a member; the caller sends the body as it was). */
int encoding_gzip(const void *in, size_t n, struct buf *out);

/* A gzip member produced piece by piece, for a response streamed as it is read. */
struct encoding_stream;

/* NULL when zlib cannot allocate its state. */
struct encoding_stream *encoding_stream_new(void);
/* Compresses in[0..n) and appends what zlib releases to out. flush: 0 lets zlib
 * keep bytes back for a better ratio; ENCODING_SYNC pushes everything so far out in
 * a form the client can decode now (the producer has nothing more for a while);
 * ENCODING_FINISH ends the member (no put after it). 0, or -1 on a zlib error. */
enum { ENCODING_SYNC = 1, ENCODING_FINISH = 2 };
int encoding_stream_put(struct encoding_stream *z, const void *in, size_t n, int flush,
                        struct buf *out);
/* Frees z; NULL is a no-op. */
void encoding_stream_free(struct encoding_stream *z);

#endif
