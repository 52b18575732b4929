/* callbacks.c - completion callbacks: the delivery thread over the store's outbox; see
 * callbacks.h (the callback spec of a submit is parsed in spec/callback.c).
 *
 * The thread loops: lease up to `batch` due deliveries, render and sign each, send
 * them together with one outbound_run() (one attempt each: retries are durable rows,
 * not timers in memory), record every outcome, then sleep until the next poll. It
 * polls (every min(1 s, backoff_ms), at least 20 ms) instead of being woken by the
 * store, which keeps the store free of callbacks into the engine. No transaction is
 * held across the outbound call: claim and record are two separate ones. */
#include "engine/callbacks.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/hook.h"
#include "outbound/outbound.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/waker.h"
#include "util/xmalloc.h"

/* ---- the delivery thread ---------------------------------------------------------- */

struct callbacks {
    struct store *st;
    struct callbacks_config cfg;
    char *secret; /* server secret (heap) */
    struct outbound *ob;
    callbacks_render_fn render;
    char *public_url;
    pthread_t thread;
    struct waker wk; /* the delivery thread's sleep between rounds */
    int running;
};

void callbacks_config_default(struct callbacks_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->backoff_ms = 5000;
    cfg->max_backoff_ms = 3600L * 1000;
    cfg->max_age_ms = 24LL * 3600 * 1000;
    cfg->timeout_ms = 10000;
    cfg->lease_ms = 60000;
    cfg->batch = 32;
}

long callbacks_backoff_ms(int failures, long base_ms, long max_ms, uint64_t rnd)
{
    if (base_ms <= 0)
        return 0;
    if (max_ms < base_ms)
        max_ms = base_ms;
    long w = base_ms;
    for (int i = 1; i < failures && w < max_ms; i++)
        w = w > max_ms / 2 ? max_ms : w * 2;
    if (w > max_ms)
        w = max_ms;
    long half = w / 2;
    return half + (long)(rnd % (uint64_t)(w - half + 1));
}

static void hex_encode(const unsigned char *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int callbacks_new(struct store *st, const struct callbacks_config *cfg, struct callbacks **out)
{
    struct callbacks *cb = xcalloc(1, sizeof *cb);
    int rc = 0;
    cb->st = st;
    callbacks_config_default(&cb->cfg);
    if (cfg) {
        cb->cfg.secret = cfg->secret;
        if (cfg->backoff_ms > 0)
            cb->cfg.backoff_ms = cfg->backoff_ms;
        if (cfg->max_backoff_ms > 0)
            cb->cfg.max_backoff_ms = cfg->max_backoff_ms;
        if (cfg->max_age_ms > 0)
            cb->cfg.max_age_ms = cfg->max_age_ms;
        if (cfg->timeout_ms > 0)
            cb->cfg.timeout_ms = cfg->timeout_ms;
        if (cfg->lease_ms > 0)
            cb->cfg.lease_ms = cfg->lease_ms;
        if (cfg->batch > 0)
            cb->cfg.batch = cfg->batch;
    }
    if (cb->cfg.secret && cb->cfg.secret[0]) {
        cb->secret = xstrdup(cb->cfg.secret);
    } else {
        unsigned char rnd[32];
        char hex[65];
        if (RAND_bytes(rnd, sizeof rnd) != 1) {
            rc = -SLUICE_E_INTERNAL;
            goto out;
        }
        hex_encode(rnd, sizeof rnd, hex);
        /* The first start's value wins; later starts read it back. */
        if ((rc = store_setting_ensure(st, "callback_secret", hex, &cb->secret)) < 0)
            goto out;
    }
    cb->cfg.secret = NULL; /* not owned: the copy above is used */
    waker_init(&cb->wk);
    *out = cb;
    return 0;
out:
    free(cb->secret);
    free(cb);
    return rc;
}

void callbacks_tenant_key(const struct callbacks *cb, const char *tenant, int64_t gen,
                          struct callbacks_key *out)
{
    unsigned int maclen = 0;
    struct buf msg = BUF_INIT;
    char head[48];
    /* Generation 0 keeps the message keys had before rotations existed. */
    if (gen == 0)
        snprintf(head, sizeof head, "callback:");
    else
        snprintf(head, sizeof head, "callback-gen:%lld:", (long long)gen);
    buf_puts(&msg, head);
    buf_puts(&msg, tenant);
    if (!HMAC(EVP_sha256(), cb->secret, (int)strlen(cb->secret), (const unsigned char *)msg.data,
              msg.len, out->raw, &maclen) ||
        maclen != STDWH_KEY_SIZE)
        abort(); /* like an allocation failure: libcrypto cannot compute SHA-256 */
    buf_release(&msg);
    memcpy(out->secret, "cbsec_", 6);
    hex_encode(out->raw, STDWH_KEY_SIZE, out->secret + 6);
    stdwh_secret(out->raw, out->whsec);
}

void callbacks_signer_init(const struct callbacks *cb, const char *tenant,
                           const struct store_callback_prefs *p, int64_t now_ms,
                           struct callbacks_signer *out)
{
    memset(out, 0, sizeof *out);
    out->format = p->format != STORE_CB_FORMAT_DEFAULT ? p->format : STORE_CB_FORMAT_STRIPE;
    callbacks_tenant_key(cb, tenant, p->key_gen, &out->cur);
    if (p->prev_until > now_ms && p->prev_gen != p->key_gen) {
        out->has_prev = 1;
        out->prev_until = p->prev_until;
        callbacks_tenant_key(cb, tenant, p->prev_gen, &out->prev);
    }
}

int callbacks_signer_load(const struct callbacks *cb, const char *tenant, int64_t now_ms,
                          struct callbacks_signer *out)
{
    struct store_callback_prefs p;
    int rc = store_callback_prefs_get(cb->st, tenant, &p);
    memset(out, 0, sizeof *out);
    if (rc < 0)
        return rc;
    callbacks_signer_init(cb, tenant, &p, now_ms, out);
    return 0;
}

void callbacks_signer_release(struct callbacks_signer *s)
{
    OPENSSL_cleanse(s, sizeof *s);
}

/* One delivery in flight: its body and headers. */
struct flight {
    struct buf body;
    char sig[256], ev[64], dlv[96], wid[96], wts[48];
    const char *headers[8];
};

/* Signs f's body for delivery d at t (unix seconds) in d's format (its own, else the
 * tenant's default) and fills f's headers. 0, or an error (nothing to send). */
static int sign_flight(const struct store_delivery *d, const struct callbacks_signer *sg, int64_t t,
                       struct flight *f)
{
    int format = d->format != STORE_CB_FORMAT_DEFAULT ? d->format : sg->format;
    const struct callbacks_key *keys[2] = {&sg->cur, sg->has_prev ? &sg->prev : NULL};
    size_t h = 0;
    int rc = 0;
    f->headers[h++] = "Content-Type: application/json";
    if (format == STORE_CB_FORMAT_STANDARD) {
        /* webhook-signature: v1,<new> v1,<old> */
        int n = snprintf(f->sig, sizeof f->sig, "webhook-signature:");
        for (size_t k = 0; k < 2 && keys[k] && rc == 0; k++) {
            char one[STDWH_SIG_SIZE];
            rc = stdwh_sign(keys[k]->raw, STDWH_KEY_SIZE, d->id, t, f->body.data, f->body.len, one);
            n += snprintf(f->sig + n, sizeof f->sig - (size_t)n, " %s", one);
        }
        snprintf(f->wid, sizeof f->wid, "webhook-id: %s", d->id);
        snprintf(f->wts, sizeof f->wts, "webhook-timestamp: %lld", (long long)t);
        f->headers[h++] = f->wid;
        f->headers[h++] = f->wts;
    } else {
        /* Sluice-Signature: t=<t>,v1=<new>,v1=<old> (Stripe's shape for two keys) */
        int n = snprintf(f->sig, sizeof f->sig, "Sluice-Signature: t=%lld", (long long)t);
        for (size_t k = 0; k < 2 && keys[k] && rc == 0; k++) {
            char mac[65];
            rc = hook_sign(keys[k]->secret, t, f->body.data, f->body.len, mac);
            n += snprintf(f->sig + n, sizeof f->sig - (size_t)n, ",v1=%s", mac);
        }
    }
    snprintf(f->ev, sizeof f->ev, "Sluice-Event: %s", d->event);
    snprintf(f->dlv, sizeof f->dlv, "Sluice-Delivery: %s", d->id);
    f->headers[h++] = f->sig;
    f->headers[h++] = f->ev;
    f->headers[h++] = f->dlv;
    f->headers[h] = NULL;
    return rc;
}

static uint64_t rnd64(void)
{
    uint64_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = (uint64_t)clock_mono_ns();
    return r;
}

/* Records what became of one attempt. Returns 0, or 1 when the outbound engine is
 * shutting down (the delivery stays owed and no attempt is counted). */
static int settle(struct callbacks *cb, const struct store_delivery *d,
                  const struct outbound_response *resp)
{
    int64_t now = clock_now_ms();
    struct store_delivery_attempt a = {.at = resp->started_at ? resp->started_at : now,
                                       .latency_ms = resp->latency_ms,
                                       .status = resp->status};
    int state = DELIVERY_PENDING;
    int64_t next_at = 0;
    char msg[320];
    msg[0] = '\0';
    if (resp->failure == OUTBOUND_SHUTTING_DOWN) {
        /* Not an attempt: the delivery stays owed, due at once after the restart. */
        store_delivery_record(cb->st, d, NULL, DELIVERY_PENDING, now);
        return 1;
    }
    if (resp->error == 0 && resp->status >= 200 && resp->status < 300) {
        state = DELIVERY_DELIVERED;
    } else if (resp->failure == OUTBOUND_NOT_ALLOWED || resp->failure == OUTBOUND_INVALID_REQUEST) {
        a.error_code = sluice_err_code(SLUICE_E_TARGET_NOT_ALLOWED);
        snprintf(msg, sizeof msg, "%s", resp->message[0] ? resp->message : "target not allowed");
        state = DELIVERY_ABANDONED;
    } else {
        if (resp->status > 0) {
            a.error_code = sluice_err_code(SLUICE_E_UPSTREAM_ERROR);
            snprintf(msg, sizeof msg, "HTTP %d", resp->status);
        } else {
            a.error_code = sluice_err_code(SLUICE_E_UPSTREAM_UNAVAILABLE);
            snprintf(msg, sizeof msg, "%s",
                     resp->message[0] ? resp->message : outbound_failure_name(resp->failure));
        }
        long wait = callbacks_backoff_ms(d->attempts + 1, cb->cfg.backoff_ms,
                                         cb->cfg.max_backoff_ms, rnd64());
        if (resp->retry_after_ms > wait)
            wait = resp->retry_after_ms < cb->cfg.max_backoff_ms ? resp->retry_after_ms
                                                                 : cb->cfg.max_backoff_ms;
        next_at = now + wait;
        if (next_at - d->created_at > cb->cfg.max_age_ms) {
            state = DELIVERY_ABANDONED;
            next_at = 0;
        }
    }
    a.error_message = msg[0] ? msg : NULL;
    int rc = store_delivery_record(cb->st, d, &a, state, next_at);
    char st_[16], lat[24];
    snprintf(st_, sizeof st_, "=%d", resp->status);
    snprintf(lat, sizeof lat, "=%ld", resp->latency_ms);
    log_write(state == DELIVERY_DELIVERED ? LOG_INFO : LOG_WARN, "callback attempt", "delivery",
              d->id, "job", d->job_id, "event", d->event, "status", st_, "latencyMs", lat,
              "outcome", store_delivery_state_name(state), "error",
              a.error_code ? a.error_code : "", "message", msg, "recorded",
              rc < 0 ? sluice_err_code(rc) : "ok", NULL);
    return 0;
}

/* Leases, sends and records one batch. Returns the number of deliveries handled; 0
 * also when the outbound engine is shutting down, so the thread sleeps instead of
 * spinning until callbacks_stop(). */
static int round_once(struct callbacks *cb)
{
    struct store_delivery *ds = NULL;
    size_t n = 0;
    int rc = store_delivery_claim(cb->st, cb->cfg.lease_ms, cb->cfg.batch, &ds, &n);
    if (rc < 0) {
        log_write(LOG_WARN, "callback outbox unavailable; retrying later", "error",
                  sluice_err_code(rc), NULL);
        return 0;
    }
    if (n == 0)
        return 0;
    struct flight *fl = xcalloc(n, sizeof *fl);
    struct outbound_request *reqs = xcalloc(n, sizeof *reqs);
    struct outbound_response *resps = xcalloc(n, sizeof *resps);
    size_t *map = xcalloc(n, sizeof *map);
    size_t nreq = 0;
    int down = 0;
    int64_t now = clock_now_ms();
    for (size_t i = 0; i < n; i++) {
        struct store_delivery *d = &ds[i];
        struct flight *f = &fl[i];
        struct store_job job;
        memset(&job, 0, sizeof job);
        buf_init(&f->body);
        rc = store_job_get(cb->st, d->tenant, d->job_id, &job);
        if (rc <= 0) {
            /* rc 0: the job was deleted, and its delivery with it (recording fails
             * harmlessly). An error: try again after a backoff, no attempt counted. */
            if (rc < 0)
                store_delivery_record(cb->st, d, NULL, DELIVERY_PENDING, now + cb->cfg.backoff_ms);
            continue;
        }
        buf_puts(&f->body, "{\"event\":");
        buf_json_str(&f->body, d->event, strlen(d->event));
        buf_puts(&f->body, ",\"deliveryId\":");
        buf_json_str(&f->body, d->id, strlen(d->id));
        buf_puts(&f->body, ",\"job\":");
        cb->render(&f->body, &job, cb->public_url, now);
        buf_putc(&f->body, '}');
        store_job_release(&job);

        struct callbacks_signer sg;
        rc = callbacks_signer_load(cb, d->tenant, now, &sg);
        if (rc == 0)
            rc = sign_flight(d, &sg, now / 1000, f);
        callbacks_signer_release(&sg);
        if (rc < 0) { /* the store could not say how: try again later, no attempt counted */
            store_delivery_record(cb->st, d, NULL, DELIVERY_PENDING, now + cb->cfg.backoff_ms);
            continue;
        }
        struct outbound_request *r = &reqs[nreq];
        r->method = "POST";
        r->url = d->url;
        r->headers = f->headers;
        r->body = f->body.data;
        r->body_len = f->body.len;
        r->timeout_ms = cb->cfg.timeout_ms;
        r->max_attempts = 1; /* retries are the outbox's: durable, not timers */
        r->idempotency_key = d->id;
        map[nreq++] = i;
    }
    if (nreq > 0) {
        rc = outbound_run(cb->ob, reqs, resps, nreq);
        for (size_t k = 0; k < nreq; k++) {
            if (rc == 0)
                down |= settle(cb, &ds[map[k]], &resps[k]);
            else /* cannot happen with a valid engine; the lease then runs out */
                store_delivery_record(cb->st, &ds[map[k]], NULL, DELIVERY_PENDING, now);
            if (rc == 0)
                outbound_response_release(&resps[k]);
        }
    }
    for (size_t i = 0; i < n; i++)
        buf_release(&fl[i].body);
    free(fl);
    free(reqs);
    free(resps);
    free(map);
    store_deliveries_free(ds, n);
    return down ? 0 : (int)n;
}

static void *callbacks_main(void *arg)
{
    struct callbacks *cb = arg;
    long poll = cb->cfg.backoff_ms < 1000 ? cb->cfg.backoff_ms : 1000;
    if (poll < 20)
        poll = 20;
    while (!waker_stopping(&cb->wk)) {
        if (round_once(cb) > 0)
            continue; /* more may be due */
        waker_wait(&cb->wk, poll);
    }
    return NULL;
}

int callbacks_start(struct callbacks *cb, struct outbound *ob, callbacks_render_fn render,
                    const char *public_url)
{
    cb->ob = ob;
    cb->render = render;
    free(cb->public_url);
    cb->public_url = xstrdup(public_url);
    if (pthread_create(&cb->thread, NULL, callbacks_main, cb) != 0)
        return -SLUICE_E_INTERNAL;
    cb->running = 1;
    return 0;
}

void callbacks_stop(struct callbacks *cb)
{
    if (!cb || !cb->running)
        return;
    waker_stop(&cb->wk);
    pthread_join(cb->thread, NULL);
    cb->running = 0;
}

void callbacks_free(struct callbacks *cb)
{
    if (!cb)
        return;
    callbacks_stop(cb);
    waker_release(&cb->wk);
    if (cb->secret)
        OPENSSL_cleanse(cb->secret, strlen(cb->secret));
    free(cb->secret);
    free(cb->public_url);
    free(cb);
}
