/* params.h - parsers for the small values clients put in query parameters, path
 * parameters and headers: integers (limit, cursor, wait, version, an item index,
 * Last-Event-ID), If-Match and If-None-Match ETags and the Prefer: wait=N preference.
 *
 * Pure functions of their text: no struct request, no libmicrohttpd, no store, so
 * unit tests and tests/fuzz/fuzz_request.c call them directly. The handlers answer 400
 * (or ignore the value, where the API says so) when one fails. All are reentrant. */
#ifndef SLUICE_API_PARAMS_H
#define SLUICE_API_PARAMS_H

#include <stdint.h>

/* Parses s (NUL-terminated, already percent-decoded) as a decimal integer, an optional
 * sign and digits with nothing around them, within [min, max] into [out] *out
 * (untouched on error).
 * Returns 0, or -SLUICE_E_INVALID_PARAMETER when s is not an integer or is out of
 * range. */
int api_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* Parses an item index (the {index} path parameter): decimal digits without a sign
 * that fit in int64_t, into [out] *out (untouched on error).
 * Returns 0, or -SLUICE_E_INVALID_PARAMETER. */
int api_parse_index(const char *s, int64_t *out);

/* Parses an If-Match value as this API writes ETags: "N", W/"N" or a bare N, where N
 * is decimal digits that fit in int64_t, into [out] *version (untouched on error).
 * Returns 0, or -SLUICE_E_INVALID_PARAMETER. */
int api_parse_if_match(const char *s, int64_t *version);

/* Nonzero when an If-None-Match value inm (a list of entity tags, or "*") names etag
 * (quoted, as sent in ETag). The comparison is weak, as RFC 9110 13.1.2 asks: a W/
 * prefix is ignored. */
int api_etag_listed(const char *inm, const char *etag);

/* The seconds of the "wait=N" preference (RFC 7240: a comma-separated list of
 * preferences with ";" parameters; the name in any case, N delta-seconds, maybe quoted)
 * in a Prefer header value (NULL when the header is absent), capped at max (0..10^9);
 * 0 when there is none or its value is not delta-seconds. */
int64_t api_parse_prefer_wait(const char *prefer, int64_t max);

#endif
