/* hook.h - inbound webhook entry points: the definition a tenant writes, compiled once.
 *
 * A tenant defines an entry point with PUT /v1/hooks/{name}:
 *
 *   {"workflow": "products.upsert",          required, non-empty (<= 160 bytes); the
 *                                            caller checks that it exists
 *    "scheme": "stripe",                     optional, how deliveries are signed (below)
 *    "secrets": ["whsec_...", ...],          required, 1..5 strings of at most 1024 bytes
 *                                            and at least the scheme's minimum (several
 *                                            while a secret is rotated)
 *    "signatureHeader": "Sluice-Signature",  stripe only: an HTTP header name (token, <= 64)
 *    "toleranceSeconds": 300,                timed schemes only, 1..86400
 *    "eventIdHeader": "Webhook-Id",          stripe only, accepted for old definitions; an
 *                                            unsigned header is no replay key (below)
 *    "eventIdFrom": "id",                    optional, dotted path in the payload giving
 *                                            the event id
 *    "hmac": {...},                          scheme hmac only, and required there (below)
 *    "items": {"from": "body"}               optional (the default): an array body's
 *                                            elements are the items, any other body is
 *                                            one item
 *           | {"from": "path", "path": "orders"}   the array at a dotted path; "" or no
 *                                            "path": the body itself must be an array
 *    "refFrom": "id"}                        required, dotted path inside each item
 *
 * Schemes (one row each in the table of spec/hook.c; MAC = HMAC under a secret):
 *   stripe (default)   <signatureHeader>: t=<unix>,v1=<hex MAC-SHA256 of "t.body">; timed.
 *                      Secrets: >= 16 bytes. (Stripe itself: signatureHeader
 *                      "Stripe-Signature", eventIdFrom "id".)
 *   github             X-Hub-Signature-256: sha256=<hex MAC-SHA256 of the body>. Secrets:
 *                      >= 1 byte (GitHub takes any).
 *   shopify            X-Shopify-Hmac-Sha256: <base64 MAC-SHA256 of the body>. Secrets:
 *                      >= 16 bytes (Shopify generates them, 32+ characters).
 *   woocommerce        X-WC-Webhook-Signature: <base64 MAC-SHA256 of the body>. Secrets:
 *                      >= 1 byte (a shop owner may type any).
 *   standard-webhooks  webhook-signature: v1,<base64 MAC-SHA256 of "id.timestamp.body">
 *                      [ v1,<...> ...], id and timestamp from webhook-id and
 *                      webhook-timestamp; timed. Secrets: "whsec_" (optional) + canonical
 *                      base64 of 16+ bytes; the key is the decoded bytes.
 *   hmac               configured by "hmac" (secrets >= 16 bytes):
 *     {"header": "X-Signature",              required, the signature header
 *      "algorithm": "sha256",                sha1 | sha256 (default) | sha512
 *      "encoding": "hex",                    hex (default, either case) | base64
 *      "prefix": "sha256=",                  text before the MAC (default ""), <= 32
 *                                            printable ASCII characters
 *      "signed": ["id", "timestamp", "body"],   what is signed, in order, each at most
 *                                            once, "body" required (default ["body"])
 *      "separator": ".",                     between the signed parts (default "."),
 *                                            <= 8 printable ASCII characters
 *      "idHeader": "X-Event-Id",             exactly when "id" is signed
 *      "timestampHeader": "X-Timestamp"}     exactly when "timestamp" is signed (unix
 *                                            seconds; the hook is then timed)
 * A key that does not fit the scheme (signatureHeader with github, hmac.idHeader
 * without "id" signed, ...) is refused with its name as target.
 *
 * Replay key (the job's idempotency key, engine/hook.h): the value at eventIdFrom when
 * present, else the delivery id the scheme signs (standard-webhooks' webhook-id, hmac's
 * idHeader when "id" is signed), else the SHA-256 of the raw body. An unsigned delivery
 * id header (X-GitHub-Delivery, X-Shopify-Webhook-Id, X-WC-Webhook-Delivery-ID, Stripe
 * scheme's Webhook-Id) is never the key: anyone holding a captured delivery could
 * change it and make the same delivery a new job.
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
#define HOOK_SECRET_MIN 16 /* where the provider sets no other bound */
#define HOOK_SECRET_MAX 1024
#define HOOK_TOLERANCE_DEFAULT 300
#define HOOK_DEFAULT_SIGNATURE_HEADER "Sluice-Signature"
#define HOOK_HEADER_NAME_MAX 64
#define HOOK_PREFIX_MAX 32
#define HOOK_SEPARATOR_MAX 8
#define HOOK_MAC_MAX 64 /* bytes of the longest MAC (SHA-512) */

/* The schemes, in the order of the table in spec/hook.c. */
enum hook_scheme {
    HOOK_SCHEME_STRIPE,
    HOOK_SCHEME_GITHUB,
    HOOK_SCHEME_SHOPIFY,
    HOOK_SCHEME_WOOCOMMERCE,
    HOOK_SCHEME_STANDARD_WEBHOOKS,
    HOOK_SCHEME_HMAC,
};

/* How the signature header is written. */
enum hook_sig_format {
    HOOK_SIG_STRIPE, /* t=<unix>,v1=<hex>[,v1=<hex>...] (the timestamp travels here) */
    HOOK_SIG_PLAIN,  /* <prefix><MAC in the encoding> */
    HOOK_SIG_LIST,   /* space-separated <prefix><MAC> entries; others ignored */
};

enum hook_encoding { HOOK_ENC_HEX, HOOK_ENC_BASE64 };

/* What one signed part is. */
enum hook_part { HOOK_PART_ID, HOOK_PART_TIMESTAMP, HOOK_PART_BODY };

/* A compiled definition. Built by hook_compile() only and never changed after; the
 * api layer reads it through the accessors below, engine/hook.c reads the fields. */
struct hook {
    char *workflow;
    enum hook_scheme scheme;
    size_t nsecrets;
    char *secrets[HOOK_SECRETS_MAX]; /* the MAC keys (decoded for standard-webhooks) */
    size_t secret_len[HOOK_SECRETS_MAX];
    enum hook_sig_format sig_format;
    char sig_header[HOOK_HEADER_NAME_MAX + 1];
    const char *digest; /* OpenSSL digest name: "SHA1", "SHA256", "SHA512" */
    size_t mac_len;     /* bytes of its MAC */
    enum hook_encoding encoding;
    char prefix[HOOK_PREFIX_MAX + 1];
    size_t nparts;
    enum hook_part parts[3]; /* what is signed, in order */
    char separator[HOOK_SEPARATOR_MAX + 1];
    char id_header[HOOK_HEADER_NAME_MAX + 1]; /* the signed delivery id header, or "" */
    char ts_header[HOOK_HEADER_NAME_MAX + 1]; /* the timestamp header, or "" */
    int timed;                                /* a timestamp is signed: tolerance applies */
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

/* Accessors; the strings live as long as h. hook_scheme_name() is the scheme's name in
 * definitions ("standard-webhooks"). */
const char *hook_workflow(const struct hook *h);
const char *hook_scheme_name(const struct hook *h);
const char *hook_signature_header(const struct hook *h);
int64_t hook_tolerance_seconds(const struct hook *h);

/* A copy of the (stored, normally valid) definition def for GET responses, with each
 * secret replaced by a mask that keeps the "whsec_" prefix if present and the last 4
 * characters ("whsec_****abcd", "****abcd"); secrets of 8 characters or fewer, and
 * non-string entries, become "****". The secret itself never appears. Returns a new
 * reference (caller json_decref()s), or NULL when def is not an object or jansson
 * fails to allocate. */
json_t *hook_redact(json_t *def);

#endif
