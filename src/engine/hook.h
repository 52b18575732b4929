/* hook.h - inbound webhook events: signature check, payload to items.
 *
 * A tenant defines an entry point with PUT /v1/hooks/{name} (the definition and its
 * compiler: spec/hook.h). External systems then POST to /v1/hooks/{name}/events
 * without an API key; the HTTP layer authenticates the request with hook_verify() over
 * the raw body and turns it into a job of the hook's workflow with hook_items().
 *
 * Signatures: each hook has a scheme (spec/hook.h: stripe, github, shopify, woocommerce,
 * standard-webhooks, hmac) that says which headers carry the signature, the timestamp and
 * the delivery id, how the MAC is written and what it covers. The stripe scheme:
 *   Sluice-Signature: t=1767225600,v1=<hex HMAC-SHA256>[,v1=<hex>...]
 * elements in any order, whitespace around them and around '=' ignored, empty elements
 * and unknown schemes ("v0=...") ignored. The MAC is HMAC-SHA256(secret, "<t>.<raw body>")
 * with t written in decimal without leading zeros, as sent. A request passes when the
 * timestamp (timed schemes) is within +-toleranceSeconds of now and any MAC it carries
 * matches the one computed under any of the hook's secrets (constant-time compare).
 *
 * Replay detection is the caller's: hook_items() reports the event id that becomes the
 * job's idempotency key: the value at eventIdFrom in the payload, else the delivery id
 * the signature covers (hook_verify_event's signed_id), else "sha256:" and the hex
 * SHA-256 of the raw body. Unsigned delivery id headers are never used: a captured
 * delivery re-sent with another id would otherwise become a new job.
 *
 * A compiled hook is immutable and may be shared between threads; every function here
 * is thread-safe for distinct output arguments. */
#ifndef SLUICE_HOOK_H
#define SLUICE_HOOK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/hook.h"

/* Size of the event id buffer of hook_items(), NUL included: ids are 1..127 bytes. */
#define HOOK_EVENT_ID_SIZE 128
/* Longest signature header hook_verify() parses; longer ones are malformed. */
#define HOOK_SIG_HEADER_MAX 4096
/* Most MACs (v1 values, list entries) one signature header may carry (more: malformed). */
#define HOOK_SIG_V1_MAX 8

/* One item of an event; strings are heap-owned by the array (hook_items_free). */
struct hook_item {
    char *ref; /* NUL-terminated UTF-8, 1..256 bytes, no NUL inside */
    size_t ref_len;
    char *data; /* compact JSON text of the item, NUL-terminated */
    size_t data_len;
};

/* A parsed signature header (see above). */
struct hook_sig {
    int64_t t;                             /* seconds since the epoch, >= 0 */
    size_t nv1;                            /* 1..HOOK_SIG_V1_MAX */
    unsigned char v1[HOOK_SIG_V1_MAX][32]; /* decoded MACs */
};

/* Parses a stripe-scheme signature header value into [out] sig. Returns 0, or
 * -SLUICE_E_UNAUTHORIZED with a message in err ("missing signature header",
 * "malformed signature header: ...") when it is missing (NULL), longer than
 * HOOK_SIG_HEADER_MAX,
 * lacks "t" or a v1 value, repeats "t", has an element without '=', a bad timestamp
 * (not decimal digits, leading zero, > 18 digits) or a v1 value that is not 64 hex
 * digits, or carries more than HOOK_SIG_V1_MAX v1 values. */
int hook_sig_parse(const char *header_value, struct hook_sig *sig, char *err, size_t errlen);

/* Writes into out_hex the lowercase hex HMAC-SHA256 of "<t>.<body>" under secret
 * (NUL-terminated) and NUL-terminates it. For tests and clients. Returns 0, or
 * -SLUICE_E_INTERNAL if OpenSSL fails (out_hex is then ""). */
int hook_sign(const char *secret, int64_t t, const char *body, size_t len, char out_hex[65]);

/* Prefix of the event id made from the body's hash (see above). */
#define HOOK_BODY_ID_PREFIX "sha256:"

/* Returns the value of the request header name (case-insensitive), or NULL when absent;
 * the string lives as long as the request. */
typedef const char *hook_header_fn(void *ctx, const char *name);

/* Verifies a delivery of hook h: its headers, read through get(ctx, name), and the raw
 * body, at time now_s (seconds since the epoch). Returns 0 when it passes, with the
 * delivery id the signature covers in [out] signed_id (HOOK_EVENT_ID_SIZE bytes; ""
 * when the scheme signs none). Otherwise -SLUICE_E_UNAUTHORIZED with a
 * message in err naming the header (never a secret):
 *   "missing signature header <name>", "malformed signature header <name>: ...",
 *   "missing timestamp header <name>", "malformed timestamp header <name>: ...",
 *   "missing delivery id header <name>",
 *   "signature timestamp outside the tolerance window", "no signature matches"
 * and that header's name in target; -SLUICE_E_INVALID_REQUEST when the signature passes
 * but the signed delivery id is HOOK_EVENT_ID_SIZE bytes or longer (it could not be a
 * key); -SLUICE_E_INTERNAL if OpenSSL fails. err / target
 * may be NULL when their length is 0. */
int hook_verify_event(const struct hook *h, hook_header_fn *get, void *ctx, const char *body,
                      size_t len, int64_t now_s, char signed_id[HOOK_EVENT_ID_SIZE], char *err,
                      size_t errlen, char *target, size_t targetlen);

/* hook_verify_event() for a request whose only header is the signature header, with the
 * value header_value (NULL: absent); for tests and for schemes signing no other header. */
int hook_verify(const struct hook *h, const char *header_value, const char *body, size_t len,
                int64_t now_s, char *err, size_t errlen);

/* Turns an event body into items. The body must pass ingest_validate_json() (depth 64),
 * like a bulk submit; it is then parsed with jansson and the items extracted as the hook
 * defines. [out] *items (a heap array of *n items; free with hook_items_free) and
 * [out] event_id_out (HOOK_EVENT_ID_SIZE bytes): the string or integer found at
 * eventIdFrom in the payload, else signed_id (from hook_verify_event; NULL or "": none),
 * else HOOK_BODY_ID_PREFIX and the hex SHA-256 of the body.
 * The items: with "from": "body", the elements of an array body, or the body itself
 * when it is not an array; with "from": "path", the elements of the array there.
 * Returns 0, or with a message in err (which names the item, e.g. "items[3].ref: ...")
 * and where the fault is in target (e.g. "items[3].ref", the items path, the delivery id
 * header; "" when the body as a whole is at fault; target may be NULL with targetlen
 * 0) and *items = NULL, *n = 0, event_id_out = "":
 *   -SLUICE_E_INVALID_REQUEST  signed_id given but not 1..127 printable ASCII bytes
 *   -SLUICE_E_INVALID_JSON     the body is not valid JSON
 *   -SLUICE_E_INVALID_FIELD    the items path is missing or not an array, or the value at
 *                              eventIdFrom is present but not a string / integer of 1..127
 *                              printable ASCII bytes (absent: the next source above)
 *   -SLUICE_E_EMPTY_JOB        no items
 *   -SLUICE_E_INVALID_ITEM     an item's ref is missing, not a string or integer, empty,
 *                              longer than 256 bytes or contains NUL */
int hook_items(const struct hook *h, const char *body, size_t len, struct hook_item **items,
               size_t *n, char *event_id_out, const char *signed_id, char *err, size_t errlen,
               char *target, size_t targetlen);
/* Frees an array from hook_items(); NULL is a no-op. */
void hook_items_free(struct hook_item *items, size_t n);

#endif
