/* callbacks.h - completion callbacks: the delivery thread that POSTs owed callbacks
 * from the store's outbox, at least once. (Parsing a job's callback: spec/callback.h.)
 *
 * A submit may name a callback ({"url": "https://...", "events": ["job.completed",
 * "job.failed", "job.canceled"]}, events optional = all). It is stored with the job;
 * the store queues a delivery in the transaction that makes the job terminal (see
 * COMPLETION CALLBACKS in store/store.h). This thread leases due deliveries
 * (store_delivery_claim), renders the job monitor as GET /v1/jobs/{id} would, and
 * POSTs
 *
 *     {"event": "job.completed", "deliveryId": "dlv_...", "job": <monitor>}
 *
 * through the outbound engine (same SSRF guard as http steps), signed in one of two
 * formats (the callback's "format", else its tenant's default, else "stripe"):
 *   stripe (Stripe-compatible; what Stripe's constructEvent verifies)
 *     Sluice-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret text, "<t>.<body>")>
 *   standard-webhooks (https://www.standardwebhooks.com; engine/stdwebhooks.h)
 *     webhook-id: dlv_...   webhook-timestamp: <unix>
 *     webhook-signature: v1,<base64 HMAC-SHA256(key bytes, "<id>.<t>.<body>")>
 * and in both
 *     Sluice-Event: job.completed
 *     Sluice-Delivery: dlv_...      and   Idempotency-Key: dlv_... (same on retries)
 * The timestamp is the attempt's; the delivery id is the same on every attempt.
 *
 * A 2xx delivers. Anything else is retried with exponential backoff and jitter (the
 * wait doubles from backoff_ms up to max_backoff_ms, half of it random; a longer
 * Retry-After is honoured) until max_age_ms after the job ended, then the delivery
 * is Abandoned. A target the SSRF guard refuses, or an unusable URL, is abandoned
 * at once (TargetNotAllowed): retrying cannot change the answer. Each attempt is
 * recorded in the delivery's log (time, status or error, latency).
 *
 * Secrets: each tenant signs with its own 32-byte key, derived from one server secret
 * and the tenant's key generation (store_callback_prefs.key_gen, 0 until a rotation):
 *     key = HMAC-SHA256(server secret, "callback:" + tenant)              generation 0
 *     key = HMAC-SHA256(server secret, "callback-gen:<gen>:" + tenant)    later ones
 * (the two prefixes and the number's ':' keep every (tenant, gen) message distinct).
 * The stripe format's secret is "cbsec_" + hex(key), used as text; the Standard
 * Webhooks secret is "whsec_" + base64(key). The server secret is --callback-secret
 * (SLUICE_CALLBACK_SECRET) or, when unset, generated at first start and kept in the
 * store (so keys survive restarts). A tenant reads its secrets with GET
 * /v1/callbacks/secret and rotates them with POST /v1/callbacks/secret:rotate: until
 * the rotation's overlap ends, every delivery carries two signatures (new key first,
 * then the one it replaced), so a receiver verifies with either secret. No tenant can
 * sign for another, and no key is stored or logged.
 *
 * Crash safety: deliveries are rows; a lease left by a dead process expires (and
 * store_expire_claims ends them at start-up), so a restart delivers what is owed. */
#ifndef SLUICE_CALLBACKS_H
#define SLUICE_CALLBACKS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/stdwebhooks.h"
#include "store/store.h"
#include "util/buf.h"

#define CALLBACKS_SECRET_SIZE 72 /* "cbsec_" + 64 hex + NUL, rounded */

/* One generation of a tenant's signing key, in the shapes of both formats. */
struct callbacks_key {
    unsigned char raw[STDWH_KEY_SIZE];  /* the key (Standard Webhooks signs with it) */
    char secret[CALLBACKS_SECRET_SIZE]; /* "cbsec_<hex>": the stripe format's secret text */
    char whsec[STDWH_SECRET_SIZE];      /* "whsec_<base64>": the Standard Webhooks secret */
};

/* What signs a tenant's callbacks at one moment. */
struct callbacks_signer {
    int format; /* the tenant's default, STORE_CB_FORMAT_STRIPE when never set */
    struct callbacks_key cur;
    int has_prev;       /* within a rotation's overlap: prev signs too */
    int64_t prev_until; /* when the overlap ends (ms), when has_prev */
    struct callbacks_key prev;
};

/* ---- the delivery thread ---------------------------------------------------------- */

struct outbound;

/* Renders the job monitor (api/render.h's render_job, passed in by main.c so the
 * engine does not include the api layer). */
typedef void (*callbacks_render_fn)(struct buf *b, const struct store_job *j, const char *base_url,
                                    int64_t now);

struct callbacks_config {
    const char *secret;  /* server secret; NULL or "": generated once, kept in the store */
    long backoff_ms;     /* first retry wait; default 5000 */
    long max_backoff_ms; /* cap of one wait; default 3600000 */
    int64_t max_age_ms;  /* retry until this long after the job ended; default 24 h */
    long timeout_ms;     /* per attempt; default 10000 */
    int64_t lease_ms;    /* lease of a delivery in flight; default 60000 */
    size_t batch;        /* deliveries in flight at once; default 32 */
};

struct callbacks;

/* Fills cfg with the defaults. */
void callbacks_config_default(struct callbacks_config *cfg);
/* Loads (or creates) the server secret; starts nothing. st is borrowed. [out] *out.
 * 0, or a store error. Free with callbacks_free(). */
int callbacks_new(struct store *st, const struct callbacks_config *cfg, struct callbacks **out);
/* Derives generation gen of tenant's signing key into out. Thread-safe. */
void callbacks_tenant_key(const struct callbacks *cb, const char *tenant, int64_t gen,
                          struct callbacks_key *out);
/* The signer of tenant at now_ms: its settings read from the store, the keys derived.
 * [out] *out (wipe with callbacks_signer_release). 0 or a store error. Thread-safe. */
int callbacks_signer_load(const struct callbacks *cb, const char *tenant, int64_t now_ms,
                          struct callbacks_signer *out);
/* The same from settings p already read (a rotation's answer). */
void callbacks_signer_init(const struct callbacks *cb, const char *tenant,
                           const struct store_callback_prefs *p, int64_t now_ms,
                           struct callbacks_signer *out);
/* Wipes the keys in s. */
void callbacks_signer_release(struct callbacks_signer *s);
/* Starts the delivery thread: ob (borrowed; stop it after callbacks_stop) sends,
 * render and public_url (copied; links in the monitor) make the body. 0 or
 * -SLUICE_E_INTERNAL. */
int callbacks_start(struct callbacks *cb, struct outbound *ob, callbacks_render_fn render,
                    const char *public_url);
/* Stops and joins the thread (deliveries in flight finish or end as ShuttingDown and
 * stay owed). Idempotent; a never-started cb is fine. */
void callbacks_stop(struct callbacks *cb);
/* Stops if needed and frees; NULL is fine. */
void callbacks_free(struct callbacks *cb);

/* The wait before retry number `failures` (>= 1): half of min(max_ms, base_ms *
 * 2^(failures-1)) plus a random part up to the other half (rnd). Public for tests. */
long callbacks_backoff_ms(int failures, long base_ms, long max_ms, uint64_t rnd);

#endif
