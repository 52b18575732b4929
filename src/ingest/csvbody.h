/* csvbody.h - a streamed CSV submit body (text/csv) split into items.
 *
 * The body is RFC 4180 CSV, parsed by libcsv in strict mode as it arrives in chunks
 * of any size: fields separated by ',', optionally quoted with '"' (a quote inside a
 * quoted field is doubled; quoted fields may hold ',', CR and LF), records ending in
 * CRLF or LF (a lone CR ends one too), the last record with or without its line end,
 * blank lines skipped. Spaces are part of a field, as RFC 4180 says (libcsv's default
 * trimming is turned off); a quote in an unquoted field, or anything but ',' or a line
 * end after a closing quote, is malformed. A UTF-8 byte order mark at the very start
 * is skipped (Excel writes one).
 *
 * The first record is the header: the column names, each non-empty, valid UTF-8 and
 * unique (compared byte for byte). Every later record becomes one item, in order:
 *   ref  = the value of the column named ref_column (1..INGEST_REF_MAX bytes)
 *   data = a JSON object mapping every column name (ref_column included) to the
 *          record's value as a JSON string, in header order: CSV has no types
 *          (the map step's "convert" op turns strings into numbers and booleans).
 * A record must have exactly as many fields as the header. Values must be valid
 * UTF-8 without NUL bytes. A header has at most CSVBODY_MAX_COLUMNS columns.
 *
 * Memory stays bounded by one record (max_item_bytes of raw CSV or of its data,
 * plus one fed chunk) and the header, whatever the body size.
 *
 * Positions: "line" counts LF bytes from 1 (the byte order mark excluded), as an
 * editor shows the file; a record's line is the line its first byte is on (a record
 * with quoted line breaks spans several). Errors name them in the target, either
 * "line 17" or "line 17, column \"price\"" (the column's header name; the header
 * row's own errors give its number, "line 1, column 3"), and in the message.
 *
 * Errors (negative sluice error codes; details in csvbody_last_error()):
 *   -SLUICE_E_INVALID_CSV     malformed CSV (line, column and byte offset in the
 *                             message), invalid UTF-8 or NUL in a field, an empty or
 *                             repeated column name, too many columns, a record with more or fewer
 *                             fields than the header, a quoted field left open at the
 *                             end of the body
 *   -SLUICE_E_INVALID_FIELD   ref_column names no column of the header (target
 *                             "refColumn")
 *   -SLUICE_E_INVALID_ITEM    a record's ref value is empty or longer than
 *                             INGEST_REF_MAX bytes (target: its line and column)
 *   -SLUICE_E_ITEM_TOO_LARGE  a record (its raw bytes or its data) is larger than
 *                             max_item_bytes
 *   -SLUICE_E_TOO_MANY_ITEMS  more than max_items records
 *   any negative value returned by item_fn is passed through unchanged.
 * After an error every further feed returns the same error. An empty body, or a
 * header alone, gives no items and no error: the caller decides (EmptyJob).
 *
 * Not thread-safe: one parser per request. */
#ifndef SLUICE_CSVBODY_H
#define SLUICE_CSVBODY_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/ingest.h"

struct csvbody;

/* Columns of a header: Excel's limit. It bounds the memory the header costs (a name
 * and its JSON key each) to a small multiple of its bytes. */
#define CSVBODY_MAX_COLUMNS 16384

/* New parser. lim NULL: the defaults (ingest_limits_default; max_depth is unused).
 * ref_column: the header name whose values are the refs (copied).
 * item_fn gets each record as an item (data is the JSON text described above,
 * valid during the call). Caller frees with csvbody_free(). */
struct csvbody *csvbody_new(const struct ingest_limits *lim, const char *ref_column,
                            ingest_item_fn item_fn, void *ctx);
void csvbody_free(struct csvbody *cb);

/* Consumes n bytes. Returns 0 or a negative error (see above). */
int csvbody_feed(struct csvbody *cb, const char *p, size_t n);
/* Signals the end of the body: delivers a last record without a line end, reports a
 * quoted field left open. Returns 0 or a negative error. */
int csvbody_finish(struct csvbody *cb);

/* Items delivered so far. */
uint64_t csvbody_count(const struct csvbody *cb);
/* Details of the last error (code 0 if none): target and message as above; line is
 * the line, column the field's 1-based number (0 when not about one field), offset
 * the byte offset in the body of a syntax error (else 0). Valid until csvbody_free(). */
const struct ingest_error *csvbody_last_error(const struct csvbody *cb);

#endif
