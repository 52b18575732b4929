/* auth.c - API key authentication: "Authorization: Bearer slk_..." -> tenant, and
 * admission control: a request rate per tenant and a failed-authentication rate per
 * client address (api/ratelimit.h).
 * Only the SHA-256 of a key is stored, so the lookup is by hash.
 *
 * Rate limit headers follow draft-ietf-httpapi-ratelimit-headers (-11): every
 * response of an authenticated route carries the tenant's policy and state,
 *   RateLimit-Policy: "tenant";q=<burst>;w=<seconds to refill the burst>
 *   RateLimit: "tenant";r=<requests left>;t=<seconds until the bucket is full>
 * (on a 429, t is the wait for the next token, equal to Retry-After, as the draft
 * asks that Retry-After not point before the end of the effective window). A
 * presented key that is wrong is charged to the client's address ("auth-failures"
 * policy, reported the same way on 401 and 429). A valid key is always served:
 * a blocked address slows down guessing callers, not the tenants behind it. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "api/ratelimit.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"

/* Adds the two RateLimit headers for policy name from st. */
static void limit_headers(struct request *req, const char *name, const struct ratelimit_state *st)
{
    char v[160];
    snprintf(v, sizeof v, "\"%s\";q=%llu;w=%lld", name, (unsigned long long)st->limit,
             (long long)st->window_s);
    reply_header(req, "RateLimit-Policy", v);
    snprintf(v, sizeof v, "\"%s\";r=%llu;t=%lld", name, (unsigned long long)st->remaining,
             (long long)(st->allowed ? st->reset_s : st->retry_after_s));
    reply_header(req, "RateLimit", v);
}

/* 429 with Retry-After (an integer >= 1) and the error body. */
static void reply_limited(struct request *req, const struct ratelimit_state *st, const char *msg)
{
    char ra[24];
    snprintf(ra, sizeof ra, "%lld", (long long)(st->retry_after_s < 1 ? 1 : st->retry_after_s));
    reply_header(req, "Retry-After", ra);
    reply_errorf(req, SLUICE_E_RATE_LIMITED, NULL, "%s; retry in %s s", msg, ra);
}

/* A presented key was wrong: counts it against the client's address; 401, or 429
 * once the address is over its budget. */
static void reply_bad_key(struct request *req, struct api *api)
{
    if (api->authfail_rl) {
        char key[RATELIMIT_KEY_MAX];
        ratelimit_address_key(req_client_ip(req), key, sizeof key);
        struct ratelimit_state st;
        ratelimit_take(api->authfail_rl, key, clock_mono_ms(), &st);
        limit_headers(req, "auth-failures", &st);
        if (!st.allowed) {
            reply_limited(req, &st, "too many failed authentications from this address");
            return;
        }
    }
    reply_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
    reply_error(req, SLUICE_E_UNAUTHORIZED, NULL, "invalid or revoked API key");
}

int api_authenticate(struct request *req)
{
    struct api *api = req_app(req);
    const char *h = req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !h[7]) {
        /* no key at all is a client bug, not a guess: not counted */
        reply_header(req, "WWW-Authenticate", "Bearer");
        reply_error(req, SLUICE_E_UNAUTHORIZED, NULL,
                    "missing API key: send Authorization: Bearer <key>");
        return -1;
    }
    const char *key = h + 7;
    size_t n = strlen(key);
    char hash[65], tenant[STORE_NAME_MAX];
    ids_sha256_hex(key, n, hash);
    int rc = n > 200 ? 0 : store_key_lookup(api->st, hash, tenant);
    if (rc < 0) {
        reply_error(req, rc, NULL, NULL);
        return -1;
    }
    if (rc == 0) {
        reply_bad_key(req, api);
        return -1;
    }
    req_set_tenant(req, tenant);
    if (api->tenant_rl) {
        struct ratelimit_state st;
        ratelimit_take(api->tenant_rl, tenant, clock_mono_ms(), &st);
        limit_headers(req, "tenant", &st);
        if (!st.allowed) {
            reply_limited(req, &st, "request rate limit of this tenant exceeded");
            return -1;
        }
    }
    return 0;
}
