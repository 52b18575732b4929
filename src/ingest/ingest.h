/* ingest.h - streaming parser for submit bodies: validates and splits into items.
 *
 * The body of POST /v1/jobs arrives in chunks of any size. ingest_feed() consumes
 * each chunk as it comes, validates it strictly (RFC 8259, UTF-8 checked, depth
 * limited) and calls item_fn once per item, in input order, with the decoded `ref`
 * and the raw bytes of `data` exactly as sent. Memory stays bounded by the largest
 * item (max_item_bytes), whatever the body size; nothing is allocated per value.
 *
 * Formats:
 *   INGEST_JSON    {"workflow": "...", "clientReference": "...", "items": [{"ref":..,"data":..},
 * ...]} Envelope keys may come in any order; field_fn reports "workflow" and "clientReference"
 * values when they are seen. With a raw field callback set (ingest_set_raw_field_fn), "callback":
 * {...} is accepted too and its raw text handed over. Unknown envelope keys are rejected
 * (InvalidField, target = the key). INGEST_NDJSON  one {"ref":..,"data":..} object per line; blank
 * lines are skipped;
 *                  "\n" or "\r\n" line ends; the last line may lack a newline.
 *   INGEST_CSV     a header row, then one item per record (ingest/csvbody.h has the
 *                  rules and its errors); created with ingest_new_csv().
 *
 * Every value accepted here also parses with jansson
 * (json_loadb(..., JSON_DECODE_ANY | JSON_ALLOW_NUL, ...)): integers must fit in
 * int64, reals must not overflow to infinity and object keys may not contain \u0000,
 * as jansson demands.
 *
 * Errors (negative sluice error codes, details in ingest_last_error()):
 *   -SLUICE_E_INVALID_JSON / INVALID_NDJSON  malformed input; message names line, column, byte
 * offset -SLUICE_E_INVALID_ITEM    item not an object, missing/non-string/empty/too long (> 256
 * bytes) ref, ref containing NUL, duplicate or unknown item key; target "items[N].ref" etc.
 *   -SLUICE_E_INVALID_FIELD   envelope problem: not an object, missing "items", wrong type of a
 * field, unknown or duplicate key; target = the field name -SLUICE_E_ITEM_TOO_LARGE  an item's raw
 * bytes exceed max_item_bytes; target "items[N]" -SLUICE_E_TOO_MANY_ITEMS  more than max_items
 * items; target "items" any negative value returned by item_fn or field_fn is passed through
 * unchanged. After an error every further feed returns the same error.
 *
 * Not thread-safe: one parser per request. */
#ifndef SLUICE_INGEST_H
#define SLUICE_INGEST_H

#include <stddef.h>
#include <stdint.h>

enum ingest_format { INGEST_JSON, INGEST_NDJSON, INGEST_CSV };

struct ingest_limits {
    uint64_t max_items;    /* default 1,000,000 */
    size_t max_item_bytes; /* raw bytes of one item object; default 1 MiB */
    unsigned max_depth;    /* nesting depth counted from the item object; default 64 */
};

#define INGEST_REF_MAX 256

struct ingest_item {
    uint64_t index;  /* 0-based position in the input */
    const char *ref; /* decoded UTF-8, NUL-terminated, 1..256 bytes; valid during the callback */
    size_t ref_len;
    const char *data; /* raw JSON text of "data" as sent, NULL when the item has no data */
    size_t data_len;
};

/* Called once per complete item. Return 0 to go on, negative to abort the parse. */
typedef int (*ingest_item_fn)(void *ctx, const struct ingest_item *item);
/* Called for envelope string fields ("workflow", "clientReference") with the decoded
 * NUL-terminated value. Return 0 to go on, negative to abort. May be NULL. */
typedef int (*ingest_field_fn)(void *ctx, const char *name, const char *value, size_t len);
/* Called for object-valued envelope fields ("callback") with the raw JSON text of the
 * object exactly as sent (validated like item data; at most 16 KiB, else
 * InvalidField), not NUL-terminated, valid during the call. Return 0 or negative. */
typedef int (*ingest_raw_field_fn)(void *ctx, const char *name, const char *json, size_t len);

struct ingest_error {
    int code;          /* negative sluice error code, 0 when no error */
    char message[256]; /* human-readable, e.g. "unexpected ']' at line 3, column 17 (byte 58)" */
    char target[96];   /* e.g. "items[17].ref", "workflow", "" */
    uint64_t line;     /* 1-based line of the error, 0 if not positional */
    uint64_t column;   /* 1-based column (bytes) */
    uint64_t offset;   /* 0-based byte offset in the body */
};

/* Fills lim with the defaults above. */
void ingest_limits_default(struct ingest_limits *lim);

/* New parser; lim may be NULL for the defaults. Caller frees with ingest_free(). */
struct ingest *ingest_new(enum ingest_format fmt, const struct ingest_limits *lim,
                          ingest_item_fn item_fn, ingest_field_fn field_fn, void *ctx);
/* New parser for a CSV body (INGEST_CSV): the column named ref_column gives each
 * item's ref. The functions below work on it as on the others; its errors are those of
 * csvbody.h. Caller frees with ingest_free(). */
struct ingest *ingest_new_csv(const struct ingest_limits *lim, const char *ref_column,
                              ingest_item_fn item_fn, void *ctx);
void ingest_free(struct ingest *in);
/* Accepts the envelope key "callback" (JSON format), whose value must be an object,
 * and hands it to fn. Without this call "callback" is an unknown key like any other.
 * Call before the first ingest_feed(). */
void ingest_set_raw_field_fn(struct ingest *in, ingest_raw_field_fn fn);

/* Consumes n bytes. Returns 0 or a negative error (see above). */
int ingest_feed(struct ingest *in, const char *p, size_t n);
/* Signals the end of the body; reports truncated input as an error. Returns 0 or negative. */
int ingest_finish(struct ingest *in);

/* Items delivered so far. */
uint64_t ingest_count(const struct ingest *in);
/* Details of the last error (code 0 if none). Valid until ingest_free(). */
const struct ingest_error *ingest_last_error(const struct ingest *in);

/* Validates one complete JSON text (any value, surrounding whitespace allowed) with the
 * same rules as the streaming parser. Returns 0 or -SLUICE_E_INVALID_JSON; err may be NULL. */
int ingest_validate_json(const char *p, size_t n, unsigned max_depth, struct ingest_error *err);

#endif
