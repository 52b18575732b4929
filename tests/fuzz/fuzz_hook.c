/* fuzz-link: src/spec/hook.c src/engine/hook.c src/ingest src/util */
/* fuzz_hook.c - libFuzzer target for inbound webhooks (src/spec/hook.c,
 * src/engine/hook.c).
 *
 * Byte 0 picks what the rest of the input is:
 *   0  a signature header value, parsed and verified against a fixed hook;
 *   1  a hook definition (JSON), compiled and redacted; a compiled hook then signs,
 *      verifies and splits a fixed event;
 *   2  an event body, split into items by three fixed hooks (body, path, body array);
 *   3  a signature header value for the github, shopify, standard-webhooks and a
 *      configured hmac hook (with their other headers fixed), verified.
 * Invariants (abort() on violation):
 *  - every error comes with a message, every success with sane outputs;
 *  - a parsed header's timestamp is >= 0 and it carries 1..HOOK_SIG_V1_MAX MACs, and a
 *    header rebuilt from it with a real MAC verifies within +-toleranceSeconds of its
 *    time and not one second outside; the fuzzed header itself with a real MAC over the
 *    body appended verifies (unless it would exceed the v1 or length limits), and not
 *    for another body;
 *  - hook_compile() returns 0 exactly when it returns a hook, and names a target string;
 *  - hook_redact() output never contains a secret longer than 8 bytes;
 *  - items have refs of 1..256 bytes without NUL and data that jansson parses;
 *  - the event id is 1..127 printable ASCII bytes on success, "" on failure;
 *  - no fuzzed signature header of another scheme verifies, and each failure names a
 *    header and says why. */
#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/hook.h"
#include "util/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIXED_SECRET "whsec_fuzzfuzzfuzzfuzzfuzz"

static void fail(const char *what)
{
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
}

static struct hook *fixed_hook(const char *def_text)
{
    json_error_t je;
    json_t *def = json_loads(def_text, 0, &je);
    struct hook *h = NULL;
    char err[256], target[96];
    if (!def || hook_compile(def, &h, err, sizeof err, target, sizeof target) != 0)
        fail("fixed hook does not compile");
    json_decref(def);
    return h;
}

static void check_items(const struct hook *h, const char *body, size_t len, const char *hdr)
{
    struct hook_item *items = NULL;
    size_t n = 0;
    char event_id[HOOK_EVENT_ID_SIZE], err[256], target[160];
    int rc =
        hook_items(h, body, len, &items, &n, event_id, hdr, err, sizeof err, target, sizeof target);
    size_t elen = strnlen(event_id, sizeof event_id);
    if (elen == sizeof event_id)
        fail("event id not terminated");
    for (size_t i = 0; i < elen; i++)
        if ((unsigned char)event_id[i] < 0x20 || (unsigned char)event_id[i] > 0x7e)
            fail("event id not printable ASCII");
    if (rc < 0) {
        if (items || n || err[0] == '\0' || elen)
            fail("failed hook_items left output or no message");
        return;
    }
    if (elen == 0)
        fail("successful hook_items without an event id");
    if (rc != 0 || !items || n == 0)
        fail("successful hook_items without items");
    for (size_t i = 0; i < n; i++) {
        if (items[i].ref_len < 1 || items[i].ref_len > 256 ||
            strlen(items[i].ref) != items[i].ref_len)
            fail("bad ref");
        json_error_t je;
        json_t *v =
            json_loadb(items[i].data, items[i].data_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!v)
            fail("item data does not parse");
        json_decref(v);
    }
    hook_items_free(items, n);
}

static void fuzz_header(const char *hv)
{
    static struct hook *h;
    if (!h)
        h = fixed_hook("{\"workflow\": \"w\", \"secrets\": [\"" FIXED_SECRET
                       "\"], \"refFrom\": \"id\"}");
    struct hook_sig sig;
    char err[256];
    int rc = hook_sig_parse(hv, &sig, err, sizeof err);
    if (rc < 0) {
        if (rc != -SLUICE_E_UNAUTHORIZED || err[0] == '\0')
            fail("parse error without message");
        if (hook_verify(h, hv, "{}", 2, 0, err, sizeof err) != -SLUICE_E_UNAUTHORIZED)
            fail("unparsable header verified");
        return;
    }
    if (sig.t < 0 || sig.nv1 < 1 || sig.nv1 > HOOK_SIG_V1_MAX)
        fail("parsed signature out of range");
    /* The fuzzer cannot forge a MAC: verification at the header's own time must fail
     * (unless it found SHA-256 collisions), and a rebuilt header must pass. */
    rc = hook_verify(h, hv, "{}", 2, sig.t, err, sizeof err);
    if (rc != -SLUICE_E_UNAUTHORIZED || strcmp(err, "no signature matches") != 0)
        fail("forged header verified or wrong message");
    char hex[65], rebuilt[128];
    if (hook_sign(FIXED_SECRET, sig.t, "{}", 2, hex) != 0)
        fail("sign failed");
    snprintf(rebuilt, sizeof rebuilt, " v1=%s , t=%" PRId64, hex, sig.t);
    if (hook_verify(h, rebuilt, "{}", 2, sig.t + 300, err, sizeof err) != 0)
        fail("rebuilt header does not verify");

    /* The tolerance window is exactly +-toleranceSeconds around the header's time. */
    int64_t tol = hook_tolerance_seconds(h);
    if (hook_verify(h, rebuilt, "{}", 2, sig.t - tol, err, sizeof err) != 0)
        fail("a header at the far edge of the window does not verify");
    for (int side = -1; side <= 1; side += 2) {
        if (hook_verify(h, rebuilt, "{}", 2, sig.t + side * (tol + 1), err, sizeof err) !=
                -SLUICE_E_UNAUTHORIZED ||
            strcmp(err, "signature timestamp outside the tolerance window") != 0)
            fail("a header just outside the window verified or gave another message");
    }

    /* The fuzzed header with a real MAC added verifies, whatever else it carries, unless
     * it already has the most v1 values allowed; the MAC covers the body, here the
     * header's own bytes. */
    size_t hlen = strlen(hv);
    if (hook_sign(FIXED_SECRET, sig.t, hv, hlen, hex) != 0)
        fail("sign failed");
    char *more = malloc(hlen + 80);
    int n = snprintf(more, hlen + 80, "%s,v1=%s", hv, hex);
    rc = hook_verify(h, more, hv, hlen, sig.t, err, sizeof err);
    if (sig.nv1 < HOOK_SIG_V1_MAX && (size_t)n <= HOOK_SIG_HEADER_MAX
            ? rc != 0
            : rc != -SLUICE_E_UNAUTHORIZED)
        fail("a parsed header with a real MAC added does not verify (or verifies past the limits)");
    if (hook_verify(h, more, "{}", 2, sig.t, err, sizeof err) != -SLUICE_E_UNAUTHORIZED)
        fail("a MAC over one body verified another");
    free(more);
}

/* A masked secret is a short string that does not contain the secret. */
static void check_mask(const json_t *orig, const json_t *masked)
{
    if (!json_is_string(masked) || json_string_length(masked) > 6 + 4 + 16)
        fail("mask is not a short string");
    if (!json_is_string(orig) || json_string_length(orig) <= 8)
        return;
    const char *o = json_string_value(orig), *m = json_string_value(masked);
    size_t olen = json_string_length(orig), mlen = json_string_length(masked);
    if (olen <= mlen && memmem(m, mlen, o, olen))
        fail("mask contains the secret");
}

static void fuzz_definition(const char *p, size_t n)
{
    json_error_t je;
    json_t *def = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!def)
        return;
    struct hook *h = (struct hook *)1;
    char err[256], target[96];
    memset(target, 'x', sizeof target);
    int rc = hook_compile(def, &h, err, sizeof err, target, sizeof target);
    if (!memchr(target, '\0', sizeof target))
        fail("target not terminated");
    if ((rc == 0) != (h != NULL))
        fail("rc and hook disagree");
    if (rc < 0 && (rc != -SLUICE_E_INVALID_FIELD || err[0] == '\0'))
        fail("compile error without message");

    json_t *red = hook_redact(def);
    if (json_is_object(def) && !red)
        fail("redact of an object failed");
    if (red) {
        json_t *orig = json_object_get(def, "secrets");
        json_t *masked = json_object_get(red, "secrets");
        if (json_is_array(orig)) {
            if (json_array_size(orig) != json_array_size(masked))
                fail("redact changed the number of secrets");
            for (size_t i = 0; i < json_array_size(orig); i++)
                check_mask(json_array_get(orig, i), json_array_get(masked, i));
        } else if (orig) {
            check_mask(orig, masked);
        }
        json_decref(red);
    }

    if (rc == 0) {
        if (!hook_workflow(h)[0] || !hook_signature_header(h)[0] || !hook_scheme_name(h)[0])
            fail("empty accessor");
        const char *body = "{\"id\": \"a\", \"orders\": [{\"id\": 1}], \"meta\": {\"id\": \"e\"}}";
        check_items(h, body, strlen(body), NULL);
        const char *secret = json_string_value(json_array_get(json_object_get(def, "secrets"), 0));
        char hex[65], hv[128];
        if (!secret || hook_sign(secret, 1000, body, strlen(body), hex) != 0)
            fail("sign with the first secret failed");
        snprintf(hv, sizeof hv, "t=1000,v1=%s", hex);
        /* Only the stripe scheme takes this form (and uses the secret as it is). */
        rc = hook_verify(h, hv, body, strlen(body), 1000, err, sizeof err);
        if (strcmp(hook_scheme_name(h), "stripe") == 0 ? rc != 0 : rc != -SLUICE_E_UNAUTHORIZED)
            fail("own signature does not verify, or a stripe header passed another scheme");
        hook_free(h);
    }
    json_decref(def);
}

static void fuzz_items(const char *p, size_t n)
{
    static struct hook *hb, *hp, *ha;
    if (!hb) {
        hb = fixed_hook("{\"workflow\": \"w\", \"secrets\": [\"" FIXED_SECRET
                        "\"], \"refFrom\": \"id\","
                        " \"eventIdFrom\": \"id\"}");
        hp = fixed_hook(
            "{\"workflow\": \"w\", \"secrets\": [\"" FIXED_SECRET "\"], \"refFrom\": \"a.b\","
            " \"items\": {\"from\": \"path\", \"path\": \"x.0.y\"}, \"eventIdFrom\": \"e\"}");
        ha = fixed_hook("{\"workflow\": \"w\", \"secrets\": [\"" FIXED_SECRET
                        "\"], \"refFrom\": \"0\","
                        " \"items\": {\"from\": \"path\"}}");
    }
    check_items(hb, p, n, NULL);
    check_items(hp, p, n, NULL);
    check_items(ha, p, n, "evt-1");
}

struct fixed_headers {
    const char *sig_name, *sig;
};

static const char *fixed_get(void *ctx, const char *name)
{
    const struct fixed_headers *f = ctx;
    if (strcasecmp(name, f->sig_name) == 0)
        return f->sig;
    if (strcasecmp(name, "webhook-id") == 0 || strcasecmp(name, "X-Id") == 0)
        return "msg_1";
    if (strcasecmp(name, "webhook-timestamp") == 0 || strcasecmp(name, "X-Ts") == 0)
        return "1000";
    return NULL;
}

static void fuzz_other_schemes(const char *hv)
{
    static struct hook *hooks[4];
    if (!hooks[0]) {
        hooks[0] = fixed_hook("{\"workflow\": \"w\", \"scheme\": \"github\", \"secrets\": [\"g\"],"
                              " \"refFrom\": \"id\"}");
        hooks[1] = fixed_hook(
            "{\"workflow\": \"w\", \"scheme\": \"shopify\", \"secrets\": [\"" FIXED_SECRET
            "\"], \"refFrom\": \"id\"}");
        hooks[2] =
            fixed_hook("{\"workflow\": \"w\", \"scheme\": \"standard-webhooks\", \"secrets\":"
                       " [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"], \"refFrom\": \"id\"}");
        hooks[3] = fixed_hook(
            "{\"workflow\": \"w\", \"scheme\": \"hmac\", \"secrets\": [\"" FIXED_SECRET
            "\"], \"refFrom\": \"id\", \"hmac\": {\"header\": \"X-Sig\", \"algorithm\":"
            " \"sha512\", \"encoding\": \"base64\", \"prefix\": \"v=\", \"signed\": [\"id\","
            " \"timestamp\", \"body\"], \"idHeader\": \"X-Id\", \"timestampHeader\": \"X-Ts\"}}");
    }
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++) {
        struct fixed_headers f = {hook_signature_header(hooks[i]), hv};
        char id[HOOK_EVENT_ID_SIZE], err[256], target[96];
        int rc = hook_verify_event(hooks[i], fixed_get, &f, "{}", 2, 1000, id, err, sizeof err,
                                   target, sizeof target);
        if (rc != -SLUICE_E_UNAUTHORIZED)
            fail("a fuzzed signature verified");
        if (strcmp(target, f.sig_name) != 0 || id[0])
            fail("a failed verification names another header or gives an id");
        if (strncmp(err, "malformed signature header ", 27) != 0 &&
            strcmp(err, "no signature matches") != 0)
            fail("a failed verification says something else");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *rest = malloc(size);
    memcpy(rest, data + 1, size - 1);
    rest[size - 1] = '\0';
    switch (data[0] % 4) {
    case 0:
        fuzz_header(rest);
        break;
    case 1:
        fuzz_definition(rest, size - 1);
        break;
    case 2:
        fuzz_items(rest, size - 1);
        break;
    default:
        fuzz_other_schemes(rest);
        break;
    }
    free(rest);
    return 0;
}
