/* decoder.h - undoes a request body's Content-Encoding as the body streams in.
 *
 * A submit may arrive compressed (Content-Encoding: gzip). The decoder takes the body
 * in chunks as they come, inflates them with zlib, and hands the decoded bytes on
 * through a callback, one bounded output buffer at a time: memory stays at one
 * DECODER_OUT_SIZE buffer plus zlib's window whatever the compression ratio, so a
 * small body that inflates to gigabytes (a "zip bomb") costs no more than any other.
 * Every limit that counts body bytes is meant for the decoded bytes: the decoder
 * stops with PayloadTooLarge as soon as they pass max_out, and whatever parses the
 * output (ingest) applies its own limits to what it is given.
 *
 * Codings (RFC 9110 8.4.1): "identity" (bytes pass through), "gzip" (also its alias
 * "x-gzip"; concatenated gzip members are one body, as gunzip reads them) and
 * "deflate" (the zlib format RFC 9110 names). One coding only: a list of several, or
 * any other name, is refused.
 *
 * Errors (negative sluice error codes; decoder_message() says more):
 *   -SLUICE_E_UNSUPPORTED_MEDIA_TYPE  decoder_coding_parse: a coding not listed above
 *   -SLUICE_E_INVALID_REQUEST   the compressed data is corrupt, is followed by bytes
 *                               that are not another gzip member, or ends early
 *   -SLUICE_E_PAYLOAD_TOO_LARGE more than max_out decoded bytes
 *   any negative value returned by out_fn is passed through unchanged, with no
 *   message of the decoder's own (decoder_message() returns NULL).
 * After an error every further feed returns the same error.
 *
 * Not thread-safe: one decoder per request. */
#ifndef SLUICE_DECODER_H
#define SLUICE_DECODER_H

#include <stddef.h>
#include <stdint.h>

enum decoder_coding { DECODER_IDENTITY, DECODER_GZIP, DECODER_DEFLATE };

#define DECODER_OUT_SIZE (64u * 1024) /* the output buffer: decoded bytes per out_fn call */

/* Receives decoded bytes (n > 0, valid during the call). Return 0 to go on,
 * negative to stop the decoding with that error. */
typedef int (*decoder_out_fn)(void *ctx, const char *p, size_t n);

/* Reads a Content-Encoding header value (NULL or blank: identity) into *out.
 * Coding names are case-insensitive; surrounding spaces and tabs are ignored.
 * Returns 0, or -SLUICE_E_UNSUPPORTED_MEDIA_TYPE for anything else, several codings
 * included. */
int decoder_coding_parse(const char *value, enum decoder_coding *out);

/* New decoder for coding; decoded bytes beyond max_out (0 = no limit) are an error.
 * Caller frees with decoder_free(). */
struct decoder *decoder_new(enum decoder_coding coding, uint64_t max_out, decoder_out_fn out_fn,
                            void *ctx);
void decoder_free(struct decoder *d);

/* Consumes n bytes of the encoded body, calling out_fn zero or more times.
 * Returns 0 or a negative error (see above). */
int decoder_feed(struct decoder *d, const char *p, size_t n);
/* Signals the end of the body: reports a compressed stream that ended early.
 * Returns 0 or a negative error. */
int decoder_finish(struct decoder *d);

/* Decoded bytes handed to out_fn so far. */
uint64_t decoder_count(const struct decoder *d);
/* What went wrong, for the error body, when the decoder itself raised the error;
 * NULL before an error and when the error came from out_fn. Valid until
 * decoder_free(). */
const char *decoder_message(const struct decoder *d);

#endif
