/* fuzz-link: src/http/route.c src/api/params.c src/spec/callback.c src/util */
/* fuzz_request.c - libFuzzer target for what the server parses of a request target and
 * its small headers, without libmicrohttpd: the route matcher (src/http/route.c), percent
 * decoding and encoding (src/util/url.c), the value parsers of src/api/params.c and the
 * completion callback parsers of src/spec/callback.c.
 *
 * Input: a request target "PATH?QUERY" (cut at the first NUL). PATH is matched against
 * every pattern of the route table; QUERY is split on '&' and '=' as libmicrohttpd does,
 * each name and value decoded as the server does, and every decoded value (and the whole
 * input) goes through each value parser. Invariants (abort() on violation):
 *  - route_match() without params says 1 exactly when it says 1 or -1 with params; a
 *    match yields one parameter per "{name}", each named as in the pattern, non-empty
 *    UTF-8 text without NUL; no match or -1 leaves no parameters;
 *  - a path rebuilt from a pattern with its (url_encode()d) parameters matches that
 *    pattern with the same values, and no earlier route of the same method takes it;
 *  - url_decode() never grows the text, fails exactly on a bad escape or %00, and
 *    url_decode(url_encode(s)) == s, with only unreserved characters and escapes encoded;
 *  - api_parse_int(), api_parse_index() and api_parse_if_match() accept exactly what a
 *    strict reference accepts (an optional sign and decimal digits, nothing around them,
 *    no overflow; the documented ETag forms), with the same value; on an error the output
 *    is untouched;
 *  - callback_url_check() accepts only printable http(s) URLs with a host;
 *    callback_events_parse() agrees with a reference reader of the comma-separated names;
 *    callback_spec_parse() (the input as the JSON envelope's "callback") returns an
 *    accepted url and known events exactly on success, and names its target otherwise;
 *  - api_parse_prefer_wait() is within [0, max], finds a wait only in a "wait="
 *    preference, ignores other preferences before it, takes the first of two, and reads
 *    "WaIt = \"N\"" as N. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/params.h"
#include "http/route.h"
#include "spec/callback.h"
#include "util/buf.h"
#include "util/errors.h"
#include "util/url.h"
#include "util/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The method and pattern of every route in src/api/routes.c, in table order (that file
 * cannot be linked here: it names every handler). Keep the two in step:
 * tests/api/test_24_openapi.py checks that they are. */
static const char *const routes[][2] = {
    {"GET", "/healthz"},
    {"GET", "/readyz"},
    {"GET", "/metrics"},
    {"GET", "/openapi.json"},
    {"GET", "/ui"},
    {"GET", "/ui/"},
    {"GET", "/ui/{asset}"},
    {"POST", "/v1/jobs"},
    {"GET", "/v1/jobs"},
    {"POST", "/v1/jobs/{id}:cancel"},
    {"GET", "/v1/jobs/{id}"},
    {"DELETE", "/v1/jobs/{id}"},
    {"GET", "/v1/jobs/{id}/items"},
    {"GET", "/v1/jobs/{id}/items/{index}"},
    {"GET", "/v1/jobs/{id}/results"},
    {"GET", "/v1/jobs/{id}/events"},
    {"GET", "/v1/jobs/{id}/callbacks"},
    {"GET", "/v1/callbacks/secret"},
    {"POST", "/v1/callbacks/secret:rotate"},
    {"GET", "/v1/callbacks/settings"},
    {"PUT", "/v1/callbacks/settings"},
    {"POST", "/v1/jobs/{id}:retry"},
    {"GET", "/v1/workflows"},
    {"POST", "/v1/workflows/{name}:run"},
    {"PUT", "/v1/workflows/{name}"},
    {"GET", "/v1/workflows/{name}"},
    {"DELETE", "/v1/workflows/{name}"},
    {"GET", "/v1/limits"},
    {"PUT", "/v1/limits/{name}"},
    {"GET", "/v1/limits/{name}"},
    {"DELETE", "/v1/limits/{name}"},
    {"GET", "/v1/secrets"},
    {"PUT", "/v1/secrets/{name}"},
    {"GET", "/v1/secrets/{name}"},
    {"DELETE", "/v1/secrets/{name}"},
    {"GET", "/v1/hooks"},
    {"POST", "/v1/hooks/{name}/events"},
    {"PUT", "/v1/hooks/{name}"},
    {"GET", "/v1/hooks/{name}"},
    {"DELETE", "/v1/hooks/{name}"},
    {"GET", "/v1/collections/{collection}"},
    {"GET", "/v1/collections/{collection}/{ref}"},
    {"PUT", "/v1/collections/{collection}/{ref}"},
    {"PATCH", "/v1/collections/{collection}/{ref}"},
    {"DELETE", "/v1/collections/{collection}/{ref}"},
    /* not in the table: two parameters in one segment */
    {"X", "/x/{a}:{b}/y"},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static void fail(const char *what)
{
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
}

/* ---- routes ----------------------------------------------------------------------- */

static int count_params(const char *pattern)
{
    int n = 0;
    for (const char *p = pattern; (p = strchr(p, '{')); p++)
        n++;
    return n;
}

/* The name of parameter i of pattern into out. */
static void param_name(const char *pattern, int i, char *out, size_t outlen)
{
    const char *p = pattern;
    for (int k = 0; k <= i; k++)
        p = strchr(p, '{') + 1;
    const char *close = strchr(p, '}');
    snprintf(out, outlen, "%.*s", (int)(close - p), p);
}

/* pattern with each parameter replaced by its url_encode()d value. */
static void rebuild(struct buf *b, const char *pattern, const struct route_params *rp)
{
    int i = 0;
    buf_reset(b);
    for (const char *p = pattern; *p;) {
        if (*p == '{') {
            url_encode(b, rp->value[i++]);
            p = strchr(p, '}') + 1;
        } else {
            buf_putc(b, *p++);
        }
    }
}

static void check_routes(const char *path)
{
    struct buf b = BUF_INIT;
    for (size_t r = 0; r < NROUTES; r++) {
        const char *pattern = routes[r][1];
        struct route_params rp;
        memset(&rp, 0xa5, sizeof rp);
        int shape = route_match(pattern, path, NULL);
        int rc = route_match(pattern, path, &rp);
        if (shape != 0 && shape != 1)
            fail("shape match is not 0 or 1");
        if ((rc != 0) != (shape == 1))
            fail("shape and decoding matches disagree");
        if (rc != 1) {
            if (rp.n != 0)
                fail("parameters left after a failed match");
            continue;
        }
        int want = count_params(pattern);
        if (rp.n != (want < ROUTE_MAX_PARAMS ? want : ROUTE_MAX_PARAMS))
            fail("wrong number of parameters");
        for (int i = 0; i < rp.n; i++) {
            char name[64];
            param_name(pattern, i, name, sizeof name);
            if (strcmp(rp.name[i], name) != 0)
                fail("parameter named differently from the pattern");
            size_t n = strlen(rp.value[i]);
            if (n == 0 || !utf8_valid_text(rp.value[i], n))
                fail("parameter value empty or not UTF-8 text");
        }
        /* The canonical path of these parameters comes back to this route. */
        rebuild(&b, pattern, &rp);
        struct route_params again;
        if (route_match(pattern, buf_cstr(&b), &again) != 1 || again.n != rp.n)
            fail("rebuilt path does not match its pattern");
        for (int i = 0; i < rp.n; i++)
            if (strcmp(again.value[i], rp.value[i]) != 0)
                fail("rebuilt path gives other parameter values");
        route_params_release(&again);
        for (size_t e = 0; e < r; e++)
            if (strcmp(routes[e][0], routes[r][0]) == 0 &&
                route_match(routes[e][1], buf_cstr(&b), NULL) == 1)
                fail("an earlier route of the same method takes a canonical path");
        route_params_release(&rp);
        if (rp.n != 0)
            fail("release left parameters");
    }
    buf_release(&b);
}

/* ---- percent-encoding ------------------------------------------------------------------ */

static int hexdigit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* Decodes a copy of s as the server does; returns it (caller frees) or NULL. */
static char *decode(const char *s, int plus_is_space)
{
    size_t n = strlen(s);
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '%') {
            if (!hexdigit(s[i + 1]) || !hexdigit(s[i + 2]) || (s[i + 1] == '0' && s[i + 2] == '0'))
                bad = 1;
            else
                i += 2;
        }
    char *v = strdup(s);
    long len = url_decode(v, plus_is_space);
    if ((len < 0) != bad)
        fail("url_decode fails on other inputs than bad escapes and %00");
    if (len < 0) {
        free(v);
        return NULL;
    }
    if ((size_t)len > n || strlen(v) != (size_t)len)
        fail("url_decode length");
    if (!plus_is_space && !strchr(s, '%') && strcmp(v, s) != 0)
        fail("url_decode changed text without escapes");
    return v;
}

static void check_encoding(const char *s)
{
    struct buf b = BUF_INIT;
    url_encode(&b, s);
    for (size_t i = 0; i < b.len; i++) {
        if (b.data[i] == '%') {
            if (i + 2 >= b.len || !hexdigit(b.data[i + 1]) || !hexdigit(b.data[i + 2]))
                fail("url_encode wrote a bad escape");
            i += 2;
        } else if (!unreserved((unsigned char)b.data[i])) {
            fail("url_encode left a reserved character");
        }
    }
    for (int plus = 0; plus <= 1; plus++) {
        char *d = decode(buf_cstr(&b), plus);
        if (!d || strcmp(d, s) != 0)
            fail("url_decode(url_encode(s)) != s");
        free(d);
    }
    buf_release(&b);
}

/* ---- value parsers -------------------------------------------------------------------- */

/* Reference: [+-]?[0-9]+ without overflow. 1 and *v, or 0. */
static int ref_int(const char *s, int allow_sign, int64_t *v)
{
    int neg = 0;
    if (allow_sign && (*s == '+' || *s == '-'))
        neg = *s++ == '-';
    if (!*s)
        return 0;
    uint64_t m = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        unsigned d = (unsigned)(*s - '0');
        if (m > (lim - d) / 10)
            return 0;
        m = m * 10 + d;
    }
    *v = neg ? (int64_t)(0 - m) : (int64_t)m;
    return 1;
}

static void check_int(const char *s, int64_t min, int64_t max)
{
    int64_t v = 77, want;
    int rc = api_parse_int(s, min, max, &v);
    int ok = ref_int(s, 1, &want) && want >= min && want <= max;
    if ((rc == 0) != ok)
        fail("api_parse_int accepts other text than a decimal integer in range");
    if (rc == 0 ? v != want : v != 77)
        fail("api_parse_int value");
}

static void check_index(const char *s)
{
    int64_t v = 77, want;
    int rc = api_parse_index(s, &v);
    int ok = ref_int(s, 0, &want);
    if ((rc == 0) != ok)
        fail("api_parse_index accepts other text than unsigned decimal digits");
    if (rc == 0 ? v != want : v != 77)
        fail("api_parse_index value");
}

static void check_if_match(const char *s)
{
    int64_t v = 77, want = -1;
    int rc = api_parse_if_match(s, &v);
    /* Reference: "N", W/"N" or N, N unsigned decimal digits that fit. */
    const char *p = s + (s[0] == 'W' && s[1] == '/' ? 2 : 0);
    size_t n = strlen(p);
    int ok;
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
        char *inner = strndup(p + 1, n - 2);
        ok = ref_int(inner, 0, &want);
        free(inner);
    } else {
        ok = p == s && ref_int(p, 0, &want);
    }
    if ((rc == 0) != ok)
        fail("api_parse_if_match accepts other text than an ETag of this API");
    if (rc == 0 ? v != want : v != 77)
        fail("api_parse_if_match value");
}

static int ows(char c)
{
    return c == ' ' || c == '\t';
}

/* 1 when some ','-separated element of h, OWS trimmed, is named "wait" (any case). */
static int has_wait_preference(const char *h)
{
    for (const char *p = h;; p++) {
        while (ows(*p))
            p++;
        if (strncasecmp(p, "wait", 4) == 0 && strchr("=; \t,", p[4]))
            return 1;
        p = strchr(p, ',');
        if (!p)
            return 0;
    }
}

/* Prefer (RFC 7240): a preference list. Properties rather than a second parser. */
static void check_prefer(const char *s)
{
    int64_t r = api_parse_prefer_wait(s, 60);
    if (r < 0 || r > 60)
        fail("prefer wait out of range");
    if (r > 0 && !has_wait_preference(s))
        fail("prefer wait found in something that is not a wait preference");
    struct buf b = BUF_INIT;
    buf_printf(&b, "respond-async, handling=lenient;x=\"y\" ,%s", s);
    if (api_parse_prefer_wait(b.data, 60) != r)
        fail("other preferences before it change the wait");
    buf_reset(&b);
    buf_printf(&b, "%s, wait=7", s);
    if (api_parse_prefer_wait(b.data, 60) != (has_wait_preference(s) ? r : 7))
        fail("a later wait preference is not the first one or not found");
    buf_reset(&b);
    size_t n = strspn(s, "0123456789");
    if (n > 0 && n < 12 && s[n] == '\0') { /* wait=DIGITS in any case, any quoting */
        int64_t want = strtoll(s, NULL, 10);
        want = want > 60 ? 60 : want;
        buf_printf(&b, "WaIt \t= \"%s\" ;p", s);
        if (api_parse_prefer_wait(b.data, 60) != want || api_parse_prefer_wait(s, 60) != 0)
            fail("wait=N not read");
    }
    buf_release(&b);
}

/* ---- completion callbacks ------------------------------------------------------------ */

static const char *const cb_names[] = {"job.completed", "job.failed", "job.canceled"};
static const int cb_bits[] = {STORE_CB_COMPLETED, STORE_CB_FAILED, STORE_CB_CANCELED};

/* The bit of the n-byte event name s, 0 if none. */
static int cb_bit(const char *s, size_t n)
{
    for (int i = 0; i < 3; i++)
        if (strlen(cb_names[i]) == n && memcmp(cb_names[i], s, n) == 0)
            return cb_bits[i];
    return 0;
}

/* What callback_url_check() promises of an accepted URL. */
static void check_cb_url_ok(const char *url)
{
    size_t n = strlen(url);
    if (n == 0 || n > CALLBACK_URL_MAX)
        fail("callback url length");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            fail("callback url not printable ASCII");
    size_t k = strncasecmp(url, "https://", 8) == 0  ? 8
               : strncasecmp(url, "http://", 7) == 0 ? 7
                                                     : 0;
    if (!k || !url[k] || strchr("/?#:@", url[k]))
        fail("callback url without an http(s) scheme and a host");
}

/* ?callbackUrl=, ?callbackEvents= and ?callbackFormat= values, and s as the envelope's
 * "callback" JSON. */
static void check_callbacks(const char *s)
{
    char msg[200];
    msg[0] = '\0';
    if (callback_url_check(s, msg, sizeof msg) == 0)
        check_cb_url_ok(s);
    else if (!msg[0])
        fail("callback_url_check failed without a message");

    int events = -1, format = -1, want = 0, ok = 1;
    for (const char *p = s;; p++) { /* reference: known names between commas */
        size_t n = strcspn(p, ",");
        int b = cb_bit(p, n);
        ok = ok && b;
        want |= b;
        p += n;
        if (!*p)
            break;
    }
    msg[0] = '\0';
    int rc = callback_events_parse(s, &events, msg, sizeof msg);
    if ((rc == 0) != ok || (rc == 0 ? events != want : events != -1 || !msg[0]))
        fail("callback_events_parse disagrees with the reference");
    int f = -1;
    rc = callback_format_parse(s, strlen(s), &f, msg, sizeof msg);
    if (rc == 0 ? strcmp(callback_format_name(f), s) != 0 : f != -1)
        fail("callback_format_parse accepted another name");

    char *url = (char *)1, target[96];
    msg[0] = '\0';
    rc = callback_spec_parse(s, strlen(s), &url, &events, &format, target, sizeof target, msg,
                             sizeof msg);
    if ((rc == 0) != (url != NULL))
        fail("callback_spec_parse rc and url disagree");
    if (rc < 0) {
        if (rc != -SLUICE_E_INVALID_FIELD || !msg[0] || strncmp(target, "callback", 8) != 0)
            fail("callback_spec_parse error without code, message or target");
        return;
    }
    json_t *o = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!json_is_object(o) || strcmp(json_string_value(json_object_get(o, "url")), url) != 0 ||
        events == 0 || (events & ~STORE_CB_ALL) != 0 || !callback_format_name(format) ||
        (format != STORE_CB_FORMAT_DEFAULT) != (json_object_get(o, "format") != NULL))
        fail("callback_spec_parse accepted something that is not a callback object");
    check_cb_url_ok(url);
    json_decref(o);
    free(url);
}

static void check_values(const char *s)
{
    check_int(s, 1, 1000);        /* limit */
    check_int(s, -1, UINT32_MAX); /* items cursor */
    check_int(s, 0, INT64_MAX);   /* jobs cursor, version */
    check_int(s, INT64_MIN, INT64_MAX);
    check_int(s, -100, 100); /* priority */
    check_index(s);
    check_if_match(s);
    check_prefer(s);
    check_callbacks(s);
}

/* ---- the request target ---------------------------------------------------------------- */

static void check_query(char *q)
{
    for (char *arg = q; arg;) {
        char *amp = strchr(arg, '&');
        if (amp)
            *amp = '\0';
        char *eq = strchr(arg, '=');
        if (eq)
            *eq = '\0';
        const char *parts[2] = {arg, eq ? eq + 1 : ""};
        for (int i = 0; i < 2; i++) {
            char *d = decode(parts[i], 1);
            if (d && utf8_valid_text(d, strlen(d))) { /* what check_query_arg() lets through */
                check_values(d);
                check_encoding(d);
            }
            free(d);
        }
        arg = amp ? amp + 1 : NULL;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    check_values(s);
    check_encoding(s);
    char *q = strchr(s, '?');
    if (q)
        *q++ = '\0';
    check_routes(s);
    if (q)
        check_query(q);
    free(s);
    return 0;
}
