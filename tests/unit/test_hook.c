/* test_hook.c - unit tests for src/engine/hook.c: definitions, redaction, signatures and
 * payload-to-items, including the failure paths. */
#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/hook.h"
#include "testhelp.h"
#include "util/errors.h"

#define SECRET_A "whsec_aaaaaaaaaaaaaaaaaaaaabcd"
#define SECRET_B "whsec_bbbbbbbbbbbbbbbbbbbbwxyz"
#define NOW ((int64_t)1767225600)

static char g_err[256], g_target[96];

/* Compiles JSON text; returns rc and leaves message/target in g_err/g_target. */
static int compile_text(const char *text, struct hook **out)
{
    json_error_t je;
    json_t *def = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!def) {
        fprintf(stderr, "bad test JSON: %s: %s\n", text, je.text);
        abort();
    }
    g_err[0] = g_target[0] = '\0';
    int rc = hook_compile(def, out, g_err, sizeof g_err, g_target, sizeof g_target);
    json_decref(def);
    return rc;
}

static struct hook *compile_ok(const char *text)
{
    struct hook *h = NULL;
    int rc = compile_text(text, &h);
    if (rc != 0) {
        fprintf(stderr, "compile failed: %s (%s) for %s\n", g_err, g_target, text);
        abort();
    }
    return h;
}

/* Expects -SLUICE_E_INVALID_FIELD with the given target; returns nonzero if so. */
static int compile_fails_at(const char *text, const char *target)
{
    struct hook *h = NULL;
    int rc = compile_text(text, &h);
    if (rc != -SLUICE_E_INVALID_FIELD || h != NULL || strcmp(g_target, target) != 0 ||
        g_err[0] == '\0') {
        fprintf(stderr, "expected failure at \"%s\", got rc=%d target=\"%s\" err=\"%s\" for %s\n",
                target, rc, g_target, g_err, text);
        hook_free(h);
        return 0;
    }
    return 1;
}

#define BASE_SECRETS "\"secrets\": [\"" SECRET_A "\"]"
#define MIN_DEF "{\"workflow\": \"products.upsert\", " BASE_SECRETS ", \"refFrom\": \"id\"}"

/* ---- compile ------------------------------------------------------------------------ */

TEST(compile_minimal_defaults)
{
    struct hook *h = compile_ok(MIN_DEF);
    CHECK_EQ_STR(hook_workflow(h), "products.upsert");
    CHECK_EQ_STR(hook_signature_header(h), "Sluice-Signature");
    CHECK_EQ_STR(hook_scheme_name(h), "stripe");
    CHECK_EQ_INT(hook_tolerance_seconds(h), 300);
    hook_free(h);
}

TEST(compile_full)
{
    struct hook *h = compile_ok(
        "{\"workflow\": \"orders.upsert\", \"secrets\": [\"" SECRET_A "\", \"" SECRET_B "\"],"
        " \"signatureHeader\": \"X-Shop-Signature\", \"toleranceSeconds\": 86400,"
        " \"eventIdHeader\": \"X-Event-Id\", \"eventIdFrom\": \"meta.id\","
        " \"items\": {\"from\": \"path\", \"path\": \"data.orders\"}, \"refFrom\": \"order.no\"}");
    CHECK_EQ_STR(hook_workflow(h), "orders.upsert");
    CHECK_EQ_STR(hook_signature_header(h), "X-Shop-Signature");
    CHECK_EQ_INT(hook_tolerance_seconds(h), 86400);
    hook_free(h);
}

TEST(compile_variants)
{
    const char *ok[] = {
        "{\"workflow\": \"w\", " BASE_SECRETS
        ", \"refFrom\": \"id\", \"items\": {\"from\": \"body\"}}",
        "{\"workflow\": \"w\", " BASE_SECRETS
        ", \"refFrom\": \"id\", \"items\": {\"from\": \"path\"}}",
        "{\"workflow\": \"w\", " BASE_SECRETS
        ", \"refFrom\": \"id\", \"items\": {\"from\": \"path\", \"path\": \"\"}}",
        "{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"a.0.b\", \"toleranceSeconds\": 1}",
        "{\"workflow\": \"w\", \"secrets\": "
        "[\"0123456789abcdef\",\"0123456789abcdef\",\"0123456789abcdef\","
        "\"0123456789abcdef\",\"0123456789abcdef\"], \"refFrom\": \"id\", \"eventIdFrom\": \"x\"}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct hook *h = NULL;
        int rc = compile_text(ok[i], &h);
        if (rc != 0)
            TH_FAIL("variant %zu: %s (%s)", i, g_err, g_target);
        CHECK(h != NULL);
        hook_free(h);
    }
    /* Only the first secret is long enough: the second is named. */
    CHECK(compile_fails_at("{\"workflow\": \"w\", \"secrets\": [\"0123456789abcdef\", \"b\"],"
                           " \"refFrom\": \"id\"}",
                           "secrets[1]"));
}

TEST(compile_invalid_targets)
{
    struct {
        const char *def, *target;
    } cases[] = {
        {"[]", ""},
        {"\"x\"", ""},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\", \"extra\": 1}", "extra"},
        {"{" BASE_SECRETS ", \"refFrom\": \"id\"}", "workflow"},
        {"{\"workflow\": \"\", " BASE_SECRETS ", \"refFrom\": \"id\"}", "workflow"},
        {"{\"workflow\": 7, " BASE_SECRETS ", \"refFrom\": \"id\"}", "workflow"},
        {"{\"workflow\": \"w\", \"refFrom\": \"id\"}", "secrets"},
        {"{\"workflow\": \"w\", \"secrets\": \"" SECRET_A "\", \"refFrom\": \"id\"}", "secrets"},
        {"{\"workflow\": \"w\", \"secrets\": [], \"refFrom\": \"id\"}", "secrets"},
        {"{\"workflow\": \"w\", \"secrets\": [\"" SECRET_A "\",\"" SECRET_A "\",\"" SECRET_A
         "\",\"" SECRET_A "\",\"" SECRET_A "\",\"" SECRET_A "\"], \"refFrom\": \"id\"}",
         "secrets"},
        {"{\"workflow\": \"w\", \"secrets\": [\"" SECRET_A "\", 5], \"refFrom\": \"id\"}",
         "secrets[1]"},
        {"{\"workflow\": \"w\", \"secrets\": [\"0123456789abcde\"], \"refFrom\": \"id\"}",
         "secrets[0]"},
        {"{\"workflow\": \"w\", \"secrets\": [\"0123456789abcde\\u0000\"], \"refFrom\": \"id\"}",
         "secrets[0]"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\", \"signatureHeader\": \"\"}",
         "signatureHeader"},
        {"{\"workflow\": \"w\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"signatureHeader\": \"Bad Header\"}",
         "signatureHeader"},
        {"{\"workflow\": \"w\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"signatureHeader\": \"X:Y\"}",
         "signatureHeader"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\", \"signatureHeader\": 1}",
         "signatureHeader"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\", \"toleranceSeconds\": 0}",
         "toleranceSeconds"},
        {"{\"workflow\": \"w\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"toleranceSeconds\": 86401}",
         "toleranceSeconds"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\", \"toleranceSeconds\": 30.5}",
         "toleranceSeconds"},
        {"{\"workflow\": \"w\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"toleranceSeconds\": \"300\"}",
         "toleranceSeconds"},
        {"{\"workflow\": \"w\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"eventIdHeader\": \"a\\nb\"}",
         "eventIdHeader"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\", \"eventIdHeader\": null}",
         "eventIdHeader"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\", \"eventIdFrom\": \"\"}",
         "eventIdFrom"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\", \"eventIdFrom\": \"a..b\"}",
         "eventIdFrom"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\", \"eventIdFrom\": 3}",
         "eventIdFrom"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\", \"items\": \"body\"}",
         "items"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\", \"items\": {}}",
         "items.from"},
        {"{\"workflow\": \"w\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"items\": {\"from\": \"query\"}}",
         "items.from"},
        {"{\"workflow\": \"w\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"items\": {\"from\": \"body\", \"path\": \"x\"}}",
         "items.path"},
        {"{\"workflow\": \"w\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"items\": {\"from\": \"path\", \"path\": \".x\"}}",
         "items.path"},
        {"{\"workflow\": \"w\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"items\": {\"from\": \"path\", \"path\": 1}}",
         "items.path"},
        {"{\"workflow\": \"w\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"items\": {\"from\": \"path\", \"limit\": 1}}",
         "items.limit"},
        {"{\"workflow\": \"w\", " BASE_SECRETS "}", "refFrom"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"\"}", "refFrom"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"a.\"}", "refFrom"},
        {"{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": [\"id\"]}", "refFrom"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!compile_fails_at(cases[i].def, cases[i].target))
            TH_FAIL("case %zu", i);
}

TEST(compile_long_values)
{
    char def[2048], big[400];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    /* refFrom of 257 bytes */
    snprintf(def, sizeof def, "{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"%.257s\"}",
             big);
    CHECK(compile_fails_at(def, "refFrom"));
    snprintf(def, sizeof def, "{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"%.256s\"}",
             big);
    struct hook *h = compile_ok(def);
    hook_free(h);
    snprintf(def, sizeof def, "{\"workflow\": \"%.161s\", " BASE_SECRETS ", \"refFrom\": \"id\"}",
             big);
    CHECK(compile_fails_at(def, "workflow"));
    snprintf(def, sizeof def,
             "{\"workflow\": \"w\", " BASE_SECRETS
             ", \"refFrom\": \"id\", \"signatureHeader\": \"%.65s\"}",
             big);
    CHECK(compile_fails_at(def, "signatureHeader"));
    char longsecret[1100];
    memset(longsecret, 's', 1025);
    longsecret[1025] = '\0';
    char *d = malloc(1300);
    snprintf(d, 1300, "{\"workflow\": \"w\", \"secrets\": [\"%s\"], \"refFrom\": \"id\"}",
             longsecret);
    int ok = compile_fails_at(d, "secrets[0]");
    free(d);
    CHECK(ok);
}

/* ---- redact ------------------------------------------------------------------------- */

TEST(redact_masks_secrets)
{
    json_t *def = json_pack("{s:s, s:[s, s, s, i], s:s}", "workflow", "w", "secrets", SECRET_A,
                            "0123456789abcdef", "short", 7, "refFrom", "id");
    json_t *r = hook_redact(def);
    CHECK(r != NULL);
    json_t *s = json_object_get(r, "secrets");
    CHECK_EQ_INT(json_array_size(s), 4);
    CHECK_EQ_STR(json_string_value(json_array_get(s, 0)), "whsec_****abcd");
    CHECK_EQ_STR(json_string_value(json_array_get(s, 1)), "****cdef");
    CHECK_EQ_STR(json_string_value(json_array_get(s, 2)), "****");
    CHECK_EQ_STR(json_string_value(json_array_get(s, 3)), "****");
    CHECK_EQ_STR(json_string_value(json_object_get(r, "workflow")), "w");
    /* The original is untouched and the secret appears nowhere in the copy. */
    CHECK_EQ_STR(json_string_value(json_array_get(json_object_get(def, "secrets"), 0)), SECRET_A);
    char *text = json_dumps(r, JSON_COMPACT);
    CHECK(text != NULL);
    int leaked = strstr(text, "aaaaaaaa") != NULL || strstr(text, "0123456789") != NULL;
    free(text);
    json_decref(r);
    json_decref(def);
    CHECK(!leaked);
}

TEST(redact_odd_inputs)
{
    json_t *arr = json_array();
    CHECK(hook_redact(arr) == NULL);
    CHECK(hook_redact(NULL) == NULL);
    json_decref(arr);

    json_t *def = json_pack("{s:s}", "secrets", SECRET_B);
    json_t *r = hook_redact(def);
    CHECK(r != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(r, "secrets")), "whsec_****wxyz");
    json_decref(r);
    json_decref(def);

    /* Multi-byte last characters stay whole. */
    def = json_pack("{s:[s]}", "secrets", "0123456789abcd\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    r = hook_redact(def);
    CHECK(r != NULL);
    CHECK_EQ_STR(json_string_value(json_array_get(json_object_get(r, "secrets"), 0)),
                 "****\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    json_decref(r);
    json_decref(def);

    def = json_pack("{s:s}", "workflow", "w");
    r = hook_redact(def);
    CHECK(r != NULL && json_equal(r, def));
    json_decref(r);
    json_decref(def);
}

/* ---- sign / verify ------------------------------------------------------------------ */

static struct hook *two_secret_hook(void)
{
    return compile_ok("{\"workflow\": \"w\", \"secrets\": [\"" SECRET_A "\", \"" SECRET_B "\"],"
                      " \"refFrom\": \"id\", \"toleranceSeconds\": 300}");
}

static void make_header(char *out, size_t outlen, const char *secret, int64_t t, const char *body)
{
    char hex[65];
    if (hook_sign(secret, t, body, strlen(body), hex) != 0)
        abort();
    snprintf(out, outlen, "t=%" PRId64 ",v1=%s", t, hex);
}

TEST(sign_known_vector)
{
    /* Against an independent value: HMAC-SHA256 with key "0123456789abcdef" over "1.{}",
     * from `printf '1.{}' | openssl dgst -sha256 -hmac 0123456789abcdef`. */
    char hex[65];
    CHECK_EQ_INT(hook_sign("0123456789abcdef", 1, "{}", 2, hex), 0);
    CHECK_EQ_INT(strlen(hex), 64);
    CHECK_EQ_STR(hex, "2af693cb56b22c16912222aeefdc75a01de562bf70ee2015f41ecea48382997f");
}

TEST(verify_valid)
{
    struct hook *h = two_secret_hook();
    const char *body = "{\"id\":\"p1\"}";
    char hv[256], err[128];
    make_header(hv, sizeof hv, SECRET_A, NOW, body);
    CHECK_EQ_INT(hook_verify(h, hv, body, strlen(body), NOW, err, sizeof err), 0);
    /* Empty body signs "<t>." only. */
    make_header(hv, sizeof hv, SECRET_A, NOW, "");
    CHECK_EQ_INT(hook_verify(h, hv, "", 0, NOW, err, sizeof err), 0);
    hook_free(h);
}

TEST(verify_wrong_secret_and_rotation)
{
    struct hook *h = two_secret_hook();
    const char *body = "{\"id\":\"p1\"}";
    char hv[256], err[128];
    make_header(hv, sizeof hv, "whsec_cccccccccccccccccccccccc", NOW, body);
    CHECK_EQ_INT(hook_verify(h, hv, body, strlen(body), NOW, err, sizeof err),
                 -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(err, "no signature matches");
    /* Signed with the second (rotated-in) secret. */
    make_header(hv, sizeof hv, SECRET_B, NOW, body);
    CHECK_EQ_INT(hook_verify(h, hv, body, strlen(body), NOW, err, sizeof err), 0);
    /* A hook with only the old secret rejects it. */
    struct hook *old = compile_ok(MIN_DEF);
    CHECK_EQ_INT(hook_verify(old, hv, body, strlen(body), NOW, err, sizeof err),
                 -SLUICE_E_UNAUTHORIZED);
    hook_free(old);
    hook_free(h);
}

TEST(verify_tolerance_edges)
{
    struct hook *h = two_secret_hook();
    const char *body = "[]";
    char hv[256], err[128];
    int64_t ts[] = {NOW - 300, NOW + 300, NOW - 301, NOW + 301};
    int want[] = {0, 0, -SLUICE_E_UNAUTHORIZED, -SLUICE_E_UNAUTHORIZED};
    for (int i = 0; i < 4; i++) {
        make_header(hv, sizeof hv, SECRET_A, ts[i], body);
        err[0] = '\0';
        int rc = hook_verify(h, hv, body, 2, NOW, err, sizeof err);
        if (rc != want[i])
            TH_FAIL("ts[%d]: rc %d, want %d (%s)", i, rc, want[i], err);
        if (want[i])
            CHECK_EQ_STR(err, "signature timestamp outside the tolerance window");
    }
    /* Far future/past and t=0 with extreme clocks do not overflow. */
    make_header(hv, sizeof hv, SECRET_A, 0, body);
    CHECK_EQ_INT(hook_verify(h, hv, body, 2, INT64_MIN, err, sizeof err), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_INT(hook_verify(h, hv, body, 2, INT64_MAX, err, sizeof err), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_INT(hook_verify(h, hv, body, 2, 300, err, sizeof err), 0);
    make_header(hv, sizeof hv, SECRET_A, 999999999999999999, body);
    CHECK_EQ_INT(hook_verify(h, hv, body, 2, NOW, err, sizeof err), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(err, "signature timestamp outside the tolerance window");
    hook_free(h);
}

TEST(verify_header_forms)
{
    struct hook *h = two_secret_hook();
    const char *body = "{\"a\":1}";
    char hex_a[65], hex_b[65], hv[512], err[128];
    CHECK_EQ_INT(hook_sign(SECRET_A, NOW, body, strlen(body), hex_a), 0);
    CHECK_EQ_INT(hook_sign(SECRET_B, NOW, body, strlen(body), hex_b), 0);
    const char *zeros = "0000000000000000000000000000000000000000000000000000000000000000";

    /* Order-free, whitespace, unknown schemes, several v1 values, uppercase hex. */
    snprintf(hv, sizeof hv, "v1=%s,t=%" PRId64, hex_a, NOW);
    CHECK_EQ_INT(hook_verify(h, hv, body, strlen(body), NOW, err, sizeof err), 0);
    snprintf(hv, sizeof hv, "  t = %" PRId64 " ,\tv0=abc , v1 = %s  ,", NOW, hex_a);
    CHECK_EQ_INT(hook_verify(h, hv, body, strlen(body), NOW, err, sizeof err), 0);
    snprintf(hv, sizeof hv, "t=%" PRId64 ",v1=%s,v1=%s", NOW, zeros, hex_b);
    CHECK_EQ_INT(hook_verify(h, hv, body, strlen(body), NOW, err, sizeof err), 0);
    snprintf(hv, sizeof hv, "t=%" PRId64 ",v1=%s,v1=%s", NOW, zeros, zeros);
    CHECK_EQ_INT(hook_verify(h, hv, body, strlen(body), NOW, err, sizeof err),
                 -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(err, "no signature matches");
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)((hex_a[i] >= 'a' && hex_a[i] <= 'f') ? hex_a[i] - 32 : hex_a[i]);
    snprintf(hv, sizeof hv, "t=%" PRId64 ",v1=%s", NOW, upper);
    CHECK_EQ_INT(hook_verify(h, hv, body, strlen(body), NOW, err, sizeof err), 0);

    /* Malformed headers. */
    const char *bad[] = {
        "",
        "   ",
        "t=1767225600",
        "v1=00",
        "garbage",
        "t=abc,v1=%s",
        "t=,v1=%s",
        "t=01767225600,v1=%s",
        "t=-1767225600,v1=%s",
        "t=1767225600,t=1767225600,v1=%s",
        "t=1767225600,v1=%s0",
        "t=1767225600,v1=zz%s",
        "t=1767225600,v1",
        "t=1767225600;v1=%s",
        "t=1234567890123456789,v1=%s",
        "t=1767225600,v1=%s,v1=%s,v1=%s,v1=%s,v1=%s,v1=%s,v1=%s,v1=%s,v1=%s",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char fmt_hv[1024];
        /* Fill every %s with the valid MAC (unused ones are ignored by snprintf). */
        snprintf(fmt_hv, sizeof fmt_hv, bad[i], hex_a, hex_a, hex_a, hex_a, hex_a, hex_a, hex_a,
                 hex_a, hex_a);
        err[0] = '\0';
        int rc = hook_verify(h, fmt_hv, body, strlen(body), NOW, err, sizeof err);
        if (rc != -SLUICE_E_UNAUTHORIZED || strncmp(err, "malformed signature header", 26) != 0)
            TH_FAIL("bad[%zu] \"%s\": rc %d err \"%s\"", i, fmt_hv, rc, err);
    }
    CHECK_EQ_INT(hook_verify(h, NULL, body, strlen(body), NOW, err, sizeof err),
                 -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(err, "missing signature header Sluice-Signature");
    char *huge = malloc(HOOK_SIG_HEADER_MAX + 100);
    memset(huge, ' ', HOOK_SIG_HEADER_MAX + 99);
    huge[HOOK_SIG_HEADER_MAX + 99] = '\0';
    int rc = hook_verify(h, huge, body, strlen(body), NOW, err, sizeof err);
    free(huge);
    CHECK_EQ_INT(rc, -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(err, "malformed signature header Sluice-Signature: too long");
    /* err may be omitted. */
    CHECK_EQ_INT(hook_verify(h, "x", body, strlen(body), NOW, NULL, 0), -SLUICE_E_UNAUTHORIZED);
    hook_free(h);
}

TEST(verify_tampered_body)
{
    struct hook *h = two_secret_hook();
    char hv[256], err[128];
    make_header(hv, sizeof hv, SECRET_A, NOW, "{\"amount\":10}");
    CHECK_EQ_INT(hook_verify(h, hv, "{\"amount\":99}", 13, NOW, err, sizeof err),
                 -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(err, "no signature matches");
    /* Truncated body, and a timestamp changed in the header. */
    CHECK_EQ_INT(hook_verify(h, hv, "{\"amount\":10}", 12, NOW, err, sizeof err),
                 -SLUICE_E_UNAUTHORIZED);
    char hex[65];
    CHECK_EQ_INT(hook_sign(SECRET_A, NOW, "{\"amount\":10}", 13, hex), 0);
    snprintf(hv, sizeof hv, "t=%" PRId64 ",v1=%s", NOW + 1, hex);
    CHECK_EQ_INT(hook_verify(h, hv, "{\"amount\":10}", 13, NOW, err, sizeof err),
                 -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(err, "no signature matches");
    /* A MAC differing in its first or its last bit only. */
    for (int pos = 0; pos < 64; pos += 63) {
        char flipped[65];
        memcpy(flipped, hex, sizeof flipped);
        flipped[pos] = flipped[pos] == '0' ? '1' : '0';
        snprintf(hv, sizeof hv, "t=%" PRId64 ",v1=%s", NOW, flipped);
        CHECK_EQ_INT(hook_verify(h, hv, "{\"amount\":10}", 13, NOW, err, sizeof err),
                     -SLUICE_E_UNAUTHORIZED);
    }
    snprintf(hv, sizeof hv, "t=%" PRId64 ",v1=%s", NOW, hex);
    CHECK_EQ_INT(hook_verify(h, hv, "{\"amount\":10}", 13, NOW, err, sizeof err), 0);
    hook_free(h);
}

TEST(sig_parse_fields)
{
    struct hook_sig sig;
    char err[128];
    const char *hv = "v1=00000000000000000000000000000000000000000000000000000000000000ff, t=42,"
                     "v1=ff00000000000000000000000000000000000000000000000000000000000000";
    CHECK_EQ_INT(hook_sig_parse(hv, &sig, err, sizeof err), 0);
    CHECK_EQ_INT(sig.t, 42);
    CHECK_EQ_INT(sig.nv1, 2);
    CHECK_EQ_INT(sig.v1[0][31], 0xff);
    CHECK_EQ_INT(sig.v1[1][0], 0xff);
    CHECK_EQ_INT(
        hook_sig_parse("t=0,v1=0000000000000000000000000000000000000000000000000000000000000000",
                       &sig, err, sizeof err),
        0);
    CHECK_EQ_INT(sig.t, 0);
}

/* ---- schemes ------------------------------------------------------------------------ */

/* A request's headers for hook_verify_event: NULL-terminated name/value pairs. */
static const char *pairs_get(void *ctx, const char *name)
{
    const char *const *kv = ctx;
    for (; kv[0]; kv += 2)
        if (strcasecmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

/* hook_verify_event over the pairs; err, target and the signed id in the globals. */
static char g_id[HOOK_EVENT_ID_SIZE];
static int verify_pairs(const struct hook *h, const char *const *kv, const char *body, int64_t now)
{
    g_err[0] = g_target[0] = '\0';
    return hook_verify_event(h, pairs_get, (void *)kv, body, strlen(body), now, g_id, g_err,
                             sizeof g_err, g_target, sizeof g_target);
}

TEST(compile_scheme_defaults)
{
    struct {
        const char *scheme, *secret, *header;
        int timed;
    } cases[] = {
        {"stripe", SECRET_A, "Sluice-Signature", 1},
        {"github", "x", "X-Hub-Signature-256", 0},
        {"shopify", "0123456789abcdef", "X-Shopify-Hmac-Sha256", 0},
        {"woocommerce", "y", "X-WC-Webhook-Signature", 0},
        {"standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "webhook-signature", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char def[512];
        snprintf(def, sizeof def,
                 "{\"workflow\": \"w\", \"scheme\": \"%s\", \"secrets\": [\"%s\"],"
                 " \"refFrom\": \"id\"}",
                 cases[i].scheme, cases[i].secret);
        struct hook *h = compile_ok(def);
        CHECK_EQ_STR(hook_scheme_name(h), cases[i].scheme);
        CHECK_EQ_STR(hook_signature_header(h), cases[i].header);
        CHECK_EQ_INT(h->timed, cases[i].timed);
        hook_free(h);
    }
    /* Standard Webhooks: the key is the decoded secret, with or without "whsec_". */
    struct hook *h = compile_ok("{\"workflow\": \"w\", \"scheme\": \"standard-webhooks\","
                                " \"secrets\": [\"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"],"
                                " \"refFrom\": \"id\"}");
    CHECK_EQ_INT(h->secret_len[0], 24);
    CHECK_EQ_INT((unsigned char)h->secrets[0][0], 0x31);
    hook_free(h);
    /* hmac with everything set. */
    h = compile_ok(
        "{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS ","
        " \"refFrom\": \"id\", \"toleranceSeconds\": 60, \"hmac\": {\"header\": \"X-Sig\","
        " \"algorithm\": \"sha512\", \"encoding\": \"base64\", \"prefix\": \"s=\","
        " \"signed\": [\"id\", \"timestamp\", \"body\"], \"separator\": \"|\","
        " \"idHeader\": \"X-Id\", \"timestampHeader\": \"X-Ts\"}}");
    CHECK_EQ_STR(hook_signature_header(h), "X-Sig");
    CHECK_EQ_INT(h->mac_len, 64);
    CHECK_EQ_INT(h->nparts, 3);
    CHECK_EQ_INT(h->timed, 1);
    CHECK_EQ_INT(hook_tolerance_seconds(h), 60);
    hook_free(h);
}

TEST(compile_scheme_invalid_targets)
{
    struct {
        const char *def, *target;
    } cases[] = {
        {"{\"workflow\": \"w\", \"scheme\": \"paypal\", " BASE_SECRETS ", \"refFrom\": \"id\"}",
         "scheme"},
        {"{\"workflow\": \"w\", \"scheme\": 1, " BASE_SECRETS ", \"refFrom\": \"id\"}", "scheme"},
        {"{\"workflow\": \"w\", \"scheme\": \"github\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"signatureHeader\": \"X-A\"}",
         "signatureHeader"},
        {"{\"workflow\": \"w\", \"scheme\": \"shopify\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"toleranceSeconds\": 5}",
         "toleranceSeconds"},
        {"{\"workflow\": \"w\", \"scheme\": \"standard-webhooks\", \"secrets\": "
         "[\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"], \"refFrom\": \"id\","
         " \"eventIdHeader\": \"X-A\"}",
         "eventIdHeader"},
        {"{\"workflow\": \"w\", \"scheme\": \"stripe\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\"}}",
         "hmac"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS ", \"refFrom\": \"id\"}",
         "hmac"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {}}",
         "hmac.header"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\", \"colour\": 1}}",
         "hmac.colour"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\", \"algorithm\": \"md5\"}}",
         "hmac.algorithm"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\", \"encoding\": \"base32\"}}",
         "hmac.encoding"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\", \"signed\": [\"id\"],"
         " \"idHeader\": \"I\"}}",
         "hmac.signed"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\", \"signed\": [\"body\", \"body\"]}}",
         "hmac.signed[1]"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\", \"signed\": [\"id\", \"body\"]}}",
         "hmac.idHeader"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\", \"timestampHeader\": \"T\"}}",
         "hmac.timestampHeader"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\"}, \"toleranceSeconds\": 5}",
         "toleranceSeconds"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\", \"separator\": \"123456789\"}}",
         "hmac.separator"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", " BASE_SECRETS
         ", \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\", \"prefix\": \"a\\nb\"}}",
         "hmac.prefix"},
        {"{\"workflow\": \"w\", \"scheme\": \"hmac\", \"secrets\": [\"short\"],"
         " \"refFrom\": \"id\", \"hmac\": {\"header\": \"X\"}}",
         "secrets[0]"},
        {"{\"workflow\": \"w\", \"scheme\": \"github\", \"secrets\": [\"\"], \"refFrom\": \"id\"}",
         "secrets[0]"},
        /* Standard Webhooks: not base64, not canonical, too short once decoded. */
        {"{\"workflow\": \"w\", \"scheme\": \"standard-webhooks\", \"secrets\": "
         "[\"whsec_not base64 at all!!\"], \"refFrom\": \"id\"}",
         "secrets[0]"},
        {"{\"workflow\": \"w\", \"scheme\": \"standard-webhooks\", \"secrets\": "
         "[\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS\"], \"refFrom\": \"id\"}",
         "secrets[0]"},
        {"{\"workflow\": \"w\", \"scheme\": \"standard-webhooks\", \"secrets\": "
         "[\"whsec_MDEyMzQ1Njc4OWFiY2Rl\"], \"refFrom\": \"id\"}",
         "secrets[0]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!compile_fails_at(cases[i].def, cases[i].target))
            TH_FAIL("case %zu", i);
}

TEST(verify_github_shopify_woocommerce)
{
    /* MACs from `printf '{"a":1}' | openssl dgst -sha256 -hmac <secret> [-binary | base64]`. */
    const char *body = "{\"a\":1}";
    struct hook *gh = compile_ok("{\"workflow\": \"w\", \"scheme\": \"github\", \"secrets\":"
                                 " [\"x\"], \"refFrom\": \"a\"}");
    const char *ok[] = {"X-Hub-Signature-256",
                        "sha256=accbae995e395f6667565fc643f8db85feb14c1f33a931c4a6feb6ea6f85a62c",
                        NULL};
    CHECK_EQ_INT(verify_pairs(gh, ok, body, NOW), 0);
    CHECK_EQ_STR(g_id, ""); /* GitHub signs no delivery id */
    /* No timestamp: a delivery is valid whatever the clock says. */
    CHECK_EQ_INT(verify_pairs(gh, ok, body, 0), 0);
    CHECK_EQ_INT(verify_pairs(gh, ok, "{\"a\":2}", NOW), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(g_err, "no signature matches");
    CHECK_EQ_STR(g_target, "X-Hub-Signature-256");
    const char *none[] = {"X-Other", "1", NULL};
    CHECK_EQ_INT(verify_pairs(gh, none, body, NOW), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(g_err, "missing signature header X-Hub-Signature-256");
    const char *bad[] = {"accbae995e395f6667565fc643f8db85feb14c1f33a931c4a6feb6ea6f85a62c",
                         "sha1=accbae995e395f6667565fc643f8db85feb14c1f33a931c4a6feb6ea6f85a62c",
                         "sha256=accbae99", "sha256=", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *kv[] = {"X-Hub-Signature-256", bad[i], NULL};
        if (verify_pairs(gh, kv, body, NOW) != -SLUICE_E_UNAUTHORIZED ||
            strncmp(g_err, "malformed signature header X-Hub-Signature-256: expected sha256=", 64))
            TH_FAIL("bad[%zu]: %s", i, g_err);
    }
    hook_free(gh);

    /* Shopify and WooCommerce: base64, each in its own header. */
    const char *b64 = "HHb7uTDTqosWM3KPriEsaMpopnUrsxm5i+b+F+hs9bg=";
    const char *scheme[] = {"shopify", "woocommerce"};
    const char *header[] = {"X-Shopify-Hmac-Sha256", "X-WC-Webhook-Signature"};
    for (int i = 0; i < 2; i++) {
        char def[200];
        snprintf(def, sizeof def,
                 "{\"workflow\": \"w\", \"scheme\": \"%s\", \"secrets\": [\"0123456789abcdef\"],"
                 " \"refFrom\": \"a\"}",
                 scheme[i]);
        struct hook *h = compile_ok(def);
        const char *good[] = {header[i], b64, NULL};
        CHECK_EQ_INT(verify_pairs(h, good, body, NOW), 0);
        /* Unpadded base64 is not the canonical form. */
        const char *unpadded[] = {header[i], "HHb7uTDTqosWM3KPriEsaMpopnUrsxm5i+b+F+hs9bg", NULL};
        CHECK_EQ_INT(verify_pairs(h, unpadded, body, NOW), -SLUICE_E_UNAUTHORIZED);
        CHECK(strncmp(g_err, "malformed signature header ", 27) == 0);
        CHECK(strstr(g_err, header[i]) != NULL);
        /* The other provider's header is not this one's. */
        const char *other[] = {header[1 - i], b64, NULL};
        CHECK_EQ_INT(verify_pairs(h, other, body, NOW), -SLUICE_E_UNAUTHORIZED);
        CHECK_EQ_STR(g_target, header[i]);
        hook_free(h);
    }
}

TEST(verify_standard_webhooks)
{
    /* The Standard Webhooks specification's example (also checked with openssl). */
    struct hook *h = compile_ok("{\"workflow\": \"w\", \"scheme\": \"standard-webhooks\","
                                " \"secrets\": [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"],"
                                " \"refFrom\": \"test\"}");
    const char *body = "{\"test\": 2432232314}";
    const int64_t t = 1614265330;
    const char *ok[] = {"webhook-id",
                        "msg_p5jXN8AQM9LWM0D4loKWxJek",
                        "webhook-timestamp",
                        "1614265330",
                        "webhook-signature",
                        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                        NULL};
    CHECK_EQ_INT(verify_pairs(h, ok, body, t), 0);
    CHECK_EQ_STR(g_id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
    /* Several entries, other versions ignored; any v1 may match. */
    const char *many[] = {"webhook-id",
                          "msg_p5jXN8AQM9LWM0D4loKWxJek",
                          "webhook-timestamp",
                          "1614265330",
                          "webhook-signature",
                          "v1a,xyz v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= "
                          "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                          NULL};
    CHECK_EQ_INT(verify_pairs(h, many, body, t), 0);
    /* The id is signed: another id fails. */
    const char *other_id[] = {
        "webhook-id", "msg_other",         "webhook-timestamp",
        "1614265330", "webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        NULL};
    CHECK_EQ_INT(verify_pairs(h, other_id, body, t), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(g_err, "no signature matches");
    CHECK_EQ_STR(g_id, "");
    /* Stale, and the timestamp is signed too. */
    CHECK_EQ_INT(verify_pairs(h, ok, body, t + 301), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(g_err, "signature timestamp outside the tolerance window");
    CHECK_EQ_STR(g_target, "webhook-timestamp");
    const char *other_t[] = {"webhook-id",
                             "msg_p5jXN8AQM9LWM0D4loKWxJek",
                             "webhook-timestamp",
                             "1614265331",
                             "webhook-signature",
                             "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                             NULL};
    CHECK_EQ_INT(verify_pairs(h, other_t, body, t), -SLUICE_E_UNAUTHORIZED);
    /* Missing and malformed headers are named. */
    const char *no_id[] = {"webhook-timestamp", "1614265330", "webhook-signature",
                           "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", NULL};
    CHECK_EQ_INT(verify_pairs(h, no_id, body, t), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(g_err, "missing delivery id header webhook-id");
    CHECK_EQ_STR(g_target, "webhook-id");
    const char *no_ts[] = {"webhook-id", "m", "webhook-signature", "v1,AAAA", NULL};
    CHECK_EQ_INT(verify_pairs(h, no_ts, body, t), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(g_target, "webhook-signature"); /* v1,AAAA is not 32 bytes */
    const char *bad_ts[] = {"webhook-id",
                            "m",
                            "webhook-timestamp",
                            "16e8",
                            "webhook-signature",
                            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                            NULL};
    CHECK_EQ_INT(verify_pairs(h, bad_ts, body, t), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(g_err, "malformed timestamp header webhook-timestamp: not unix seconds");
    const char *no_v1[] = {
        "webhook-id", "m", "webhook-timestamp", "1614265330", "webhook-signature", "v2,abc", NULL};
    CHECK_EQ_INT(verify_pairs(h, no_v1, body, t), -SLUICE_E_UNAUTHORIZED);
    CHECK(strncmp(g_err, "malformed signature header webhook-signature", 44) == 0);
    hook_free(h);
}

TEST(verify_hmac_configured)
{
    /* sha512, base64, "s=" prefix, id|timestamp|body: from
     * `printf 'E1|1767225600|{"a":1}' | openssl dgst -sha512 -hmac 0123456789abcdef -binary
     * | base64`. */
    struct hook *h = compile_ok(
        "{\"workflow\": \"w\", \"scheme\": \"hmac\", \"secrets\": [\"0123456789abcdef\"],"
        " \"refFrom\": \"a\", \"hmac\": {\"header\": \"X-Sig\", \"algorithm\": \"sha512\","
        " \"encoding\": \"base64\", \"prefix\": \"s=\", \"signed\": [\"id\", \"timestamp\","
        " \"body\"], \"separator\": \"|\", \"idHeader\": \"X-Id\", \"timestampHeader\": "
        "\"X-Ts\"}}");
    const char *body = "{\"a\":1}";
    const char *ok[] = {"X-Sig",
                        "s=TixojVsz6adzm1TjXFMXoVrRrR53pjs3TL9Bvn2Ix3axjUsRczURsAT/qxsphYjrf+G/"
                        "1P5rFKXgqjR7FBMntA==",
                        "X-Id",
                        "E1",
                        "X-Ts",
                        "1767225600",
                        NULL};
    CHECK_EQ_INT(verify_pairs(h, ok, body, NOW), 0);
    CHECK_EQ_STR(g_id, "E1");
    CHECK_EQ_INT(verify_pairs(h, ok, body, NOW + 301), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(g_target, "X-Ts");
    const char *other_id[] = {"X-Sig",
                              "s=TixojVsz6adzm1TjXFMXoVrRrR53pjs3TL9Bvn2Ix3axjUsRczURsAT/"
                              "qxsphYjrf+G/1P5rFKXgqjR7FBMntA==",
                              "X-Id",
                              "E2",
                              "X-Ts",
                              "1767225600",
                              NULL};
    CHECK_EQ_INT(verify_pairs(h, other_id, body, NOW), -SLUICE_E_UNAUTHORIZED);
    hook_free(h);

    /* sha1, hex (either case), body only, no prefix: from
     * `printf '{"a":1}' | openssl dgst -sha1 -hmac 0123456789abcdef`. */
    h = compile_ok(
        "{\"workflow\": \"w\", \"scheme\": \"hmac\", \"secrets\": [\"0123456789abcdef\"],"
        " \"refFrom\": \"a\", \"hmac\": {\"header\": \"X-Sig\", \"algorithm\": \"sha1\"}}");
    const char *sha1[] = {"X-Sig", "1f377045343467ecf983c70129426674b8f88e69", NULL};
    CHECK_EQ_INT(verify_pairs(h, sha1, body, NOW), 0);
    const char *upper[] = {"X-Sig", " 1F377045343467ECF983C70129426674B8F88E69 ", NULL};
    CHECK_EQ_INT(verify_pairs(h, upper, body, NOW), 0);
    const char *sha256[] = {
        "X-Sig", "accbae995e395f6667565fc643f8db85feb14c1f33a931c4a6feb6ea6f85a62c", NULL};
    CHECK_EQ_INT(verify_pairs(h, sha256, body, NOW), -SLUICE_E_UNAUTHORIZED);
    CHECK_EQ_STR(g_err, "malformed signature header X-Sig: expected <hex of 20 bytes>");
    hook_free(h);
}

/* ---- items -------------------------------------------------------------------------- */

struct items_run {
    int rc;
    struct hook_item *items;
    size_t n;
    char event_id[HOOK_EVENT_ID_SIZE];
    char err[256];
    char target[128];
};

static void run_items(const struct hook *h, const char *body, const char *hdr, struct items_run *r)
{
    memset(r, 0, sizeof *r);
    strcpy(r->event_id, "sentinel");
    r->rc = hook_items(h, body, strlen(body), &r->items, &r->n, r->event_id, hdr, r->err,
                       sizeof r->err, r->target, sizeof r->target);
}

TEST(items_body_is_one_item)
{
    struct hook *h = compile_ok(MIN_DEF);
    struct items_run r;
    run_items(h, " {\"id\": \"p1\", \"name\": \"Lamp\", \"tags\": [1, 2.5, null]} ", NULL, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_STR(r.items[0].ref, "p1");
    CHECK_EQ_INT(r.items[0].ref_len, 2);
    CHECK_EQ_STR(r.items[0].data, "{\"id\":\"p1\",\"name\":\"Lamp\",\"tags\":[1,2.5,null]}");
    CHECK_EQ_INT(r.items[0].data_len, strlen(r.items[0].data));
    /* Nothing names the event: the body's hash does. */
    CHECK(strncmp(r.event_id, "sha256:", 7) == 0 && strlen(r.event_id) == 7 + 64);
    hook_items_free(r.items, r.n);
    hook_free(h);
}

TEST(items_body_array_is_the_items)
{
    /* "from": "body" (the default): an array body is the items array itself. */
    struct hook *h = compile_ok(MIN_DEF);
    struct items_run r;
    run_items(h, "[{\"id\": \"a\"}, {\"id\": 7, \"n\": 2}]", NULL, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_STR(r.items[0].ref, "a");
    CHECK_EQ_STR(r.items[1].ref, "7");
    CHECK_EQ_STR(r.items[1].data, "{\"id\":7,\"n\":2}");
    CHECK_EQ_STR(r.target, "");
    hook_items_free(r.items, r.n);
    /* an element without a ref is named in the message and in the target */
    run_items(h, "[{\"id\": \"a\"}, {\"x\": 1}]", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_ITEM);
    CHECK_EQ_STR(r.target, "items[1].ref");
    CHECK(strncmp(r.err, "items[1].ref:", 13) == 0);
    CHECK(r.items == NULL && r.n == 0);
    /* an empty array is no job */
    run_items(h, "[]", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_EMPTY_JOB);
    hook_free(h);
}

TEST(items_path_array)
{
    struct hook *h = compile_ok("{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"sku\","
                                " \"items\": {\"from\": \"path\", \"path\": \"orders\"}}");
    struct items_run r;
    run_items(h, "{\"orders\": [{\"sku\": \"a\"}, {\"sku\": \"b\", \"n\": 2}], \"other\": 1}", NULL,
              &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_STR(r.items[0].ref, "a");
    CHECK_EQ_STR(r.items[0].data, "{\"sku\":\"a\"}");
    CHECK_EQ_STR(r.items[1].ref, "b");
    CHECK_EQ_STR(r.items[1].data, "{\"sku\":\"b\",\"n\":2}");
    hook_items_free(r.items, r.n);

    /* Path missing or not an array. */
    run_items(h, "{\"order\": []}", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_FIELD);
    CHECK(r.items == NULL && r.n == 0);
    CHECK(strstr(r.err, "orders") != NULL);
    run_items(h, "{\"orders\": {\"sku\": \"a\"}}", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_FIELD);
    run_items(h, "[1]", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_FIELD);
    /* Empty array. */
    run_items(h, "{\"orders\": []}", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_EMPTY_JOB);
    CHECK(r.items == NULL && r.n == 0);
    hook_free(h);
}

TEST(items_nested_path_and_body_array)
{
    struct hook *h =
        compile_ok("{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"product.code\","
                   " \"items\": {\"from\": \"path\", \"path\": \"data.batches.1.lines\"}}");
    struct items_run r;
    run_items(h,
              "{\"data\": {\"batches\": [{\"lines\": []}, {\"lines\": [{\"product\": {\"code\": "
              "\"X-1\"}}]}]}}",
              NULL, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_STR(r.items[0].ref, "X-1");
    CHECK_EQ_STR(r.items[0].data, "{\"product\":{\"code\":\"X-1\"}}");
    hook_items_free(r.items, r.n);
    hook_free(h);

    h = compile_ok("{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\","
                   " \"items\": {\"from\": \"path\"}}");
    run_items(h, "[{\"id\": 1}, {\"id\": 2}, {\"id\": 3}]", NULL, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.n, 3);
    CHECK_EQ_STR(r.items[2].ref, "3");
    hook_items_free(r.items, r.n);
    run_items(h, "[]", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_EMPTY_JOB);
    run_items(h, "{\"id\": 1}", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_FIELD);
    CHECK_EQ_STR(r.err, "the body is not an array");
    hook_free(h);
}

TEST(items_ref_forms)
{
    struct hook *h = compile_ok("{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\","
                                " \"items\": {\"from\": \"path\", \"path\": \"xs\"}}");
    struct items_run r;
    run_items(h, "{\"xs\": [{\"id\": 42}, {\"id\": -7}, {\"id\": 9223372036854775807}]}", NULL, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.n, 3);
    CHECK_EQ_STR(r.items[0].ref, "42");
    CHECK_EQ_STR(r.items[1].ref, "-7");
    CHECK_EQ_STR(r.items[2].ref, "9223372036854775807");
    hook_items_free(r.items, r.n);

    struct {
        const char *body, *idx;
    } bad[] = {
        {"{\"xs\": [{\"id\": \"a\"}, {\"name\": \"no id\"}]}", "items[1].ref"},
        {"{\"xs\": [{\"id\": 1.5}]}", "items[0].ref"},
        {"{\"xs\": [{\"id\": true}]}", "items[0].ref"},
        {"{\"xs\": [{\"id\": null}]}", "items[0].ref"},
        {"{\"xs\": [{\"id\": {\"a\": 1}}]}", "items[0].ref"},
        {"{\"xs\": [{\"id\": \"\"}]}", "items[0].ref"},
        {"{\"xs\": [{\"id\": \"a\\u0000b\"}]}", "items[0].ref"},
        {"{\"xs\": [{\"id\": \"a\"}, {\"id\": \"b\"}, 7]}", "items[2].ref"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_items(h, bad[i].body, NULL, &r);
        if (r.rc != -SLUICE_E_INVALID_ITEM || r.items || r.n ||
            strncmp(r.err, bad[i].idx, strlen(bad[i].idx)) != 0)
            TH_FAIL("bad[%zu]: rc %d err \"%s\"", i, r.rc, r.err);
    }

    /* 256 bytes is fine, 257 is not. */
    char body[700], ref[300];
    memset(ref, 'r', 257);
    ref[257] = '\0';
    snprintf(body, sizeof body, "{\"xs\": [{\"id\": \"%s\"}]}", ref);
    run_items(h, body, NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_ITEM);
    ref[256] = '\0';
    snprintf(body, sizeof body, "{\"xs\": [{\"id\": \"%s\"}]}", ref);
    run_items(h, body, NULL, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.items[0].ref_len, 256);
    hook_items_free(r.items, r.n);
    hook_free(h);
}

TEST(items_missing_ref_body)
{
    struct hook *h = compile_ok(MIN_DEF);
    struct items_run r;
    run_items(h, "{\"name\": \"x\"}", "evt_1", &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_ITEM);
    CHECK_EQ_STR(r.err, "items[0].ref: no value at \"id\"");
    CHECK_EQ_STR(r.event_id, "");
    run_items(h, "\"just a string\"", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_ITEM);
    hook_free(h);
}

TEST(items_invalid_json)
{
    struct hook *h = compile_ok(MIN_DEF);
    struct items_run r;
    const char *bad[] = {"",
                         "{",
                         "{\"id\": 1,}",
                         "{\"id\": 01}",
                         "{\"id\": \"\xff\"}",
                         "{\"id\": 1} x",
                         "{\"id\": 99999999999999999999}",
                         "nul"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_items(h, bad[i], NULL, &r);
        if (r.rc != -SLUICE_E_INVALID_JSON || r.err[0] == '\0' || r.items || r.n)
            TH_FAIL("bad[%zu]: rc %d err \"%s\"", i, r.rc, r.err);
    }
    /* Too deep for the bulk path is too deep here too. */
    char deep[300];
    size_t k = 0;
    deep[k++] = '{';
    memcpy(deep + k, "\"id\":1,\"x\":", 11);
    k += 11;
    for (int i = 0; i < 70; i++)
        deep[k++] = '[';
    for (int i = 0; i < 70; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    deep[k] = '\0';
    run_items(h, deep, NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_JSON);
    hook_free(h);
}

TEST(items_event_id)
{
    struct hook *h = compile_ok("{\"workflow\": \"w\", " BASE_SECRETS ", \"refFrom\": \"id\","
                                " \"eventIdFrom\": \"meta.event\"}");
    struct items_run r;
    /* The payload wins over a signed delivery id, which is used when the payload has none. */
    run_items(h, "{\"id\": 1, \"meta\": {\"event\": \"evt_payload\"}}", "evt_header", &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_STR(r.event_id, "evt_payload");
    hook_items_free(r.items, r.n);
    run_items(h, "{\"id\": 1, \"meta\": {}}", "evt_header", &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_STR(r.event_id, "evt_header");
    hook_items_free(r.items, r.n);
    /* From the payload. */
    run_items(h, "{\"id\": 1, \"meta\": {\"event\": \"evt_payload\"}}", NULL, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_STR(r.event_id, "evt_payload");
    hook_items_free(r.items, r.n);
    run_items(h, "{\"id\": 1, \"meta\": {\"event\": 123456}}", NULL, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_STR(r.event_id, "123456");
    hook_items_free(r.items, r.n);
    /* Absent: the body's hash. */
    run_items(h, "{\"id\": 1}", NULL, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK(strncmp(r.event_id, "sha256:", 7) == 0);
    hook_items_free(r.items, r.n);
    /* Present but unusable. */
    run_items(h, "{\"id\": 1, \"meta\": {\"event\": [1]}}", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_FIELD);
    CHECK(strstr(r.err, "meta.event") != NULL);
    run_items(h, "{\"id\": 1, \"meta\": {\"event\": \"\"}}", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_FIELD);
    run_items(h, "{\"id\": 1, \"meta\": {\"event\": \"tab\\there\"}}", NULL, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_FIELD);

    /* Header limits: 127 bytes ok, 128 too long, empty and control characters invalid. */
    char id[200];
    memset(id, 'e', 127);
    id[127] = '\0';
    run_items(h, "{\"id\": 1}", id, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_STR(r.event_id, id);
    hook_items_free(r.items, r.n);
    id[127] = 'e';
    id[128] = '\0';
    run_items(h, "{\"id\": 1}", id, &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_REQUEST);
    CHECK_EQ_STR(r.event_id, "");
    run_items(h, "{\"id\": 1}", "", &r); /* "": none */
    CHECK_EQ_INT(r.rc, 0);
    CHECK(strncmp(r.event_id, "sha256:", 7) == 0);
    hook_items_free(r.items, r.n);
    run_items(h, "{\"id\": 1}", "a\x01", &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_REQUEST);
    run_items(h, "{\"id\": 1}", "caf\xc3\xa9", &r);
    CHECK_EQ_INT(r.rc, -SLUICE_E_INVALID_REQUEST);
    hook_free(h);

    /* No eventIdFrom and no signed id: "sha256:" and the body's hash, from
     * `printf '{"id": 1, "event": "e"}' | sha256sum`. */
    h = compile_ok(MIN_DEF);
    run_items(h, "{\"id\": 1, \"event\": \"e\"}", NULL, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_STR(r.event_id,
                 "sha256:2ae0087e4abc2de4dfeefc516267199208f7a22fc7cdc4be2280aefea20a9b93");
    hook_items_free(r.items, r.n);
    hook_free(h);
}

TEST(items_free_null)
{
    hook_items_free(NULL, 0);
    hook_free(NULL);
}

/* End to end: verify, then split, as the HTTP handler will. */
TEST(end_to_end)
{
    struct hook *h =
        compile_ok("{\"workflow\": \"orders.upsert\", \"secrets\": [\"" SECRET_A "\"],"
                   " \"items\": {\"from\": \"path\", \"path\": \"orders\"}, \"refFrom\": \"no\","
                   " \"eventIdFrom\": \"id\"}");
    const char *body = "{\"id\": \"evt_9\", \"orders\": [{\"no\": 1}, {\"no\": 2}]}";
    char hv[256], err[128];
    make_header(hv, sizeof hv, SECRET_A, NOW - 10, body);
    CHECK_EQ_INT(hook_verify(h, hv, body, strlen(body), NOW, err, sizeof err), 0);
    struct items_run r;
    run_items(h, body, NULL, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_STR(r.event_id, "evt_9");
    CHECK_EQ_STR(r.items[1].ref, "2");
    hook_items_free(r.items, r.n);
    hook_free(h);
}

int main(void)
{
    RUN(compile_minimal_defaults);
    RUN(compile_full);
    RUN(compile_variants);
    RUN(compile_invalid_targets);
    RUN(compile_long_values);
    RUN(redact_masks_secrets);
    RUN(redact_odd_inputs);
    RUN(sign_known_vector);
    RUN(verify_valid);
    RUN(verify_wrong_secret_and_rotation);
    RUN(verify_tolerance_edges);
    RUN(verify_header_forms);
    RUN(verify_tampered_body);
    RUN(sig_parse_fields);
    RUN(compile_scheme_defaults);
    RUN(compile_scheme_invalid_targets);
    RUN(verify_github_shopify_woocommerce);
    RUN(verify_standard_webhooks);
    RUN(verify_hmac_configured);
    RUN(items_free_null);
    RUN(items_body_is_one_item);
    RUN(items_body_array_is_the_items);
    RUN(items_path_array);
    RUN(items_nested_path_and_body_array);
    RUN(items_ref_forms);
    RUN(items_missing_ref_body);
    RUN(items_invalid_json);
    RUN(items_event_id);
    RUN(end_to_end);
    return test_report();
}
