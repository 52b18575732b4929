/* hook.h - inbound webhook entry points: the definition a tenant writes, compiled once.
 *
 * A tenant defines an entry point with PUT /v1/hooks/{name}:
 *
 *   {"workflow": "products.upsert",          required, non-empty (<= 160 bytes); the
 *                                            caller checks that it exists
 *    "secrets": ["whsec_...", ...],          required, 1..5 strings of 16..1024 bytes
 *                                            (several while a secret is rotated)
 *    "signatureHeader": "Sluice-Signature",  optional, an HTTP header name (token, <= 64)
 *    "toleranceSeconds": 300,                optional, 1..86400
 *    "eventIdHeader": "Webhook-Id",          optional, header carrying the event id
 *    "eventIdFrom": "id",                    optional, dotted path in the payload giving
 *                                            the event id when the header is absent
 *    "items": {"from": "body"}               optional (the default): an array body's
 *                                            elements are the items, any other body is
 *                                            one item
 *           | {"from": "path", "path": "orders"}   the array at a dotted path; "" or no
 *                                            "path": the body itself must be an array
 *    "refFrom": "id"}                        required, dotted path inside each item
 *
 * Dotted paths ("order.lines.0.sku") walk object keys; a segment of decimal digits
 * applied to an array indexes it. Segments are non-empty (so a key containing a '.'
 * cannot be addressed); a path is at most 256 bytes.
 *
 * The runtime half, verifying an event's signature and turning its payload into items,
 * is engine/hook.h.
 *
 * A compiled hook is immutable and may be shared between threads; every function here
 * is thread-safe for distinct output arguments. */
#ifndef SLUICE_SPEC_HOOK_H
#define SLUICE_SPEC_HOOK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define HOOK_SECRETS_MAX 5
#define HOOK_SECRET_MIN 16
#define HOOK_SECRET_MAX 1024
#define HOOK_TOLERANCE_DEFAULT 300
#define HOOK_DEFAULT_SIGNATURE_HEADER "Sluice-Signature"
#define HOOK_DEFAULT_EVENT_ID_HEADER "Webhook-Id"
#define HOOK_HEADER_NAME_MAX 64

/* A compiled definition. Built by hook_compile() only and never changed after; the
 * api layer reads it through the accessors below, engine/hook.c reads the fields. */
struct hook {
    char *workflow;
    size_t nsecrets;
    char *secrets[HOOK_SECRETS_MAX];
    size_t secret_len[HOOK_SECRETS_MAX];
    char sig_header[HOOK_HEADER_NAME_MAX + 1];
    char event_id_header[HOOK_HEADER_NAME_MAX + 1];
    int64_t tolerance;
    char *event_id_from; /* NULL: none */
    int items_from_path; /* 0: the body is one item */
    char *items_path;    /* "" = the body itself is the array */
    char *ref_from;
};

/* Compiles the definition def (borrowed; not kept). On success returns 0 and [out] *out
 * (free with hook_free). On an invalid definition returns -SLUICE_E_INVALID_FIELD, writes
 * a message to err and the offending location to target ("secrets[1]", "items.path",
 * an unknown key's name; "" for the whole definition). err / target may be NULL when
 * their length is 0. */
int hook_compile(json_t *def, struct hook **out, char *err, size_t errlen, char *target,
                 size_t targetlen);
/* Frees h; NULL is a no-op. */
void hook_free(struct hook *h);

/* Accessors; the strings live as long as h. */
const char *hook_workflow(const struct hook *h);
const char *hook_signature_header(const struct hook *h);
const char *hook_event_id_header(const struct hook *h);
int64_t hook_tolerance_seconds(const struct hook *h);

/* A copy of the (stored, normally valid) definition def for GET responses, with each
 * secret replaced by a mask that keeps the "whsec_" prefix if present and the last 4
 * characters ("whsec_****abcd", "****abcd"); secrets of 8 characters or fewer, and
 * non-string entries, become "****". The secret itself never appears. Returns a new
 * reference (caller json_decref()s), or NULL when def is not an object or jansson
 * fails to allocate. */
json_t *hook_redact(json_t *def);

#endif
