/* batch.h - the "batch" object of an http step: many items in one request.
 *
 *   "batch": {
 *     "maxItems": 100,                  required, 2..1000: items per request
 *     "maxBytes": 1048576,              optional, 1024..16777216 (1 MiB): body bytes per
 *                                       request; an item whose element alone passes it
 *                                       fails with ItemTooLarge
 *     "body": {"products": "{{items}}"},  optional: the request body, a template value
 *                                       in which exactly one string is "{{items}}" (the
 *                                       array of the batch's elements; each element is
 *                                       what the step's "body" renders for one item, by
 *                                       default its data); other strings may use
 *                                       {{job}} (the job id) and {{count}}. Absent: the
 *                                       array itself
 *     "results": "/results",            optional JSON pointer (RFC 6901) to the array of
 *                                       per-item results in the response ("" or absent:
 *                                       the response body itself)
 *     "match": "position" | "key",      optional (position): result i belongs to the
 *                                       batch's item i; or by key:
 *     "resultKey": "/sku",              match key: pointer to the key in each result
 *     "itemKey": "{{ref}}",             match key: the item's key, a template over the
 *                                       item (default "{{ref}}"); keys compare as text
 *     "status": "/status",              optional pointer to a result's own status;
 *                                       absent: a result that is there is a success
 *     "success": [200, 201, "ok"],      the status values meaning success (strings or
 *                                       integers, 1..32 of them; default: the integers
 *                                       200..299)
 *     "retry": [429, "throttled"]}      optional status values meaning "send this item
 *                                       again": it goes into a later request (with the
 *                                       other items to retry) while the step's
 *                                       retry.maxAttempts allows
 *
 * Items whose URL and headers render the same share a request; the step's method must
 * send a body (POST, PUT or PATCH). What a request's answer means for each item is
 * steps/http_batch.c's business.
 *
 * A compiled batch is immutable and may be shared between threads. */
#ifndef SLUICE_SPEC_BATCH_H
#define SLUICE_SPEC_BATCH_H

#include <jansson.h>
#include <stddef.h>

#define BATCH_MAX_ITEMS 1000
#define BATCH_DEFAULT_MAX_BYTES (1L << 20)

struct http_batch {
    long max_items, max_bytes;
    json_t *body;     /* template value with one "{{items}}", or NULL: the array itself */
    char *results;    /* pointer to the results array; "" = the body */
    int by_key;       /* match: 0 position, 1 key */
    char *result_key; /* by_key: pointer into each result */
    char *item_key;   /* by_key: template over the item */
    char *status;     /* pointer to a result's status, or NULL */
    json_t *success;  /* array of strings/integers, or NULL: integers 200..299 */
    json_t *retry;    /* array of strings/integers, or NULL */
};

/* Compiles def (borrowed). 0 and [out] *out (free with batch_free), or
 * -SLUICE_E_INVALID_FIELD with a message in err and the offending field below "batch"
 * in field ("maxItems", "body", "success[2]", ...; "" for the object itself). */
int batch_compile(json_t *def, struct http_batch **out, char *err, size_t errlen, char *field,
                  size_t fieldlen);
void batch_free(struct http_batch *b);

/* 1 when v (a result's status; NULL = absent) is one of list's values (strings compare
 * as strings, integers as integers); list NULL: v is an integer from 200 to 299. */
int batch_status_in(const json_t *list, const json_t *v);

#endif
