/* hook.c - inbound webhook entry points; see hook.h.
 *
 * Pure logic, no I/O: the api layer stores definitions, reads headers, looks up the
 * workflow and records event ids; this file compiles a definition once, checks the
 * HMAC signature of each event and splits its payload into items. The body is first
 * checked by ingest_validate_json() so that exactly the JSON the bulk submit path
 * accepts is accepted here, then parsed with jansson for path lookups. */
#include "engine/hook.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "util/errors.h"
#include "util/url.h"
#include "util/xmalloc.h"

#define WORKFLOW_NAME_MAX 160
#define HEADER_NAME_MAX 64
#define PATH_MAX_BYTES 256
#define TOLERANCE_MAX 86400
#define JSON_DEPTH_MAX 64

struct hook {
    char *workflow;
    size_t nsecrets;
    char *secrets[HOOK_SECRETS_MAX];
    size_t secret_len[HOOK_SECRETS_MAX];
    char sig_header[HEADER_NAME_MAX + 1];
    char event_id_header[HEADER_NAME_MAX + 1];
    int64_t tolerance;
    char *event_id_from; /* NULL: none */
    int items_from_path; /* 0: the body is one item */
    char *items_path;    /* "" = the body itself is the array */
    char *ref_from;
};

/* ---- small helpers ---------------------------------------------------------------- */

static void put(char *dst, size_t len, const char *fmt, va_list ap)
{
    if (dst && len)
        vsnprintf(dst, len, fmt, ap);
}

static void setmsg(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void setmsg(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    put(err, errlen, fmt, ap);
    va_end(ap);
}

/* Error reporting of hook_compile: message and target at once. */
struct cerr {
    char *err;
    size_t errlen;
    char *target;
    size_t targetlen;
};

static int bad(const struct cerr *ce, const char *target, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(const struct cerr *ce, const char *target, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    put(ce->err, ce->errlen, fmt, ap);
    va_end(ap);
    if (ce->target && ce->targetlen)
        snprintf(ce->target, ce->targetlen, "%s", target);
    return -SLUICE_E_INVALID_FIELD;
}

/* RFC 9110 token characters, the alphabet of header names. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int header_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > HEADER_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

/* A dotted path: at most PATH_MAX_BYTES, no NUL, non-empty segments; "" only when
 * allow_empty. */
static int path_valid(const char *s, size_t len, int allow_empty)
{
    if (len == 0)
        return allow_empty;
    if (len > PATH_MAX_BYTES || memchr(s, '\0', len))
        return 0;
    if (s[0] == '.' || s[len - 1] == '.' || strstr(s, ".."))
        return 0;
    return 1;
}

/* Looks up a valid dotted path under root; "" is root itself. Returns a borrowed
 * reference or NULL when absent. A segment of 1..9 decimal digits indexes an array. */
static json_t *path_get(json_t *root, const char *path)
{
    json_t *cur = root;
    const char *p = path;
    while (*p && cur) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, p, n);
        } else if (json_is_array(cur)) {
            size_t idx = 0;
            if (n == 0 || n > 9)
                return NULL;
            for (size_t i = 0; i < n; i++) {
                if (p[i] < '0' || p[i] > '9')
                    return NULL;
                idx = idx * 10 + (size_t)(p[i] - '0');
            }
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
        p += n;
        if (*p == '.')
            p++;
    }
    return cur;
}

/* Nonzero for 1..HOOK_EVENT_ID_SIZE-1 bytes of printable ASCII (0x20..0x7e). */
static int event_id_valid(const char *s, size_t len)
{
    if (len == 0 || len >= HOOK_EVENT_ID_SIZE)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* ---- definition ------------------------------------------------------------------- */

static const char *const known_keys[] = {
    "workflow",      "secrets",     "signatureHeader", "toleranceSeconds",
    "eventIdHeader", "eventIdFrom", "items",           "refFrom"};

static int compile_secrets(struct hook *h, json_t *v, const struct cerr *ce)
{
    if (!json_is_array(v))
        return bad(ce, "secrets", "secrets must be an array of 1..%d strings", HOOK_SECRETS_MAX);
    size_t n = json_array_size(v);
    if (n < 1 || n > HOOK_SECRETS_MAX)
        return bad(ce, "secrets", "secrets must hold 1..%d secrets, not %zu", HOOK_SECRETS_MAX, n);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(v, i);
        char tgt[32];
        snprintf(tgt, sizeof tgt, "secrets[%zu]", i);
        if (!json_is_string(s))
            return bad(ce, tgt, "%s must be a string", tgt);
        size_t len = json_string_length(s);
        const char *str = json_string_value(s);
        if (len < HOOK_SECRET_MIN || len > HOOK_SECRET_MAX)
            return bad(ce, tgt, "%s must be %d..%d bytes long", tgt, HOOK_SECRET_MIN,
                       HOOK_SECRET_MAX);
        if (memchr(str, '\0', len))
            return bad(ce, tgt, "%s must not contain NUL", tgt);
        h->secrets[i] = xstrndup(str, len);
        h->secret_len[i] = len;
        h->nsecrets = i + 1;
    }
    return 0;
}

static int compile_header(char dst[HEADER_NAME_MAX + 1], json_t *v, const char *key,
                          const struct cerr *ce)
{
    if (!json_is_string(v) || !header_name_valid(json_string_value(v), json_string_length(v)))
        return bad(ce, key, "%s must be an HTTP header name (1..%d token characters)", key,
                   HEADER_NAME_MAX);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int compile_path(char **dst, json_t *v, const char *key, int allow_empty,
                        const struct cerr *ce)
{
    if (!json_is_string(v) || !path_valid(json_string_value(v), json_string_length(v), allow_empty))
        return bad(ce, key, "%s must be a dotted path (%snon-empty segments, at most %d bytes)",
                   key, allow_empty ? "\"\" or " : "", PATH_MAX_BYTES);
    *dst = xstrdup(json_string_value(v));
    return 0;
}

static int compile_items(struct hook *h, json_t *v, const struct cerr *ce)
{
    if (!json_is_object(v))
        return bad(ce, "items", "items must be an object {\"from\": \"body\" | \"path\"}");
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val)
    {
        if (strcmp(key, "from") != 0 && strcmp(key, "path") != 0) {
            char tgt[96];
            snprintf(tgt, sizeof tgt, "items.%.80s", key);
            return bad(ce, tgt, "unknown key \"%.80s\" in items", key);
        }
    }
    json_t *from = json_object_get(v, "from");
    json_t *path = json_object_get(v, "path");
    if (!json_is_string(from))
        return bad(ce, "items.from", "items.from must be \"body\" or \"path\"");
    if (strcmp(json_string_value(from), "body") == 0) {
        if (path)
            return bad(ce, "items.path", "items.path is only allowed with \"from\": \"path\"");
        return 0;
    }
    if (strcmp(json_string_value(from), "path") != 0)
        return bad(ce, "items.from", "items.from must be \"body\" or \"path\"");
    h->items_from_path = 1;
    if (!path) {
        h->items_path = xstrdup("");
        return 0;
    }
    return compile_path(&h->items_path, path, "items.path", 1, ce);
}

int hook_compile(json_t *def, struct hook **out, char *err, size_t errlen, char *target,
                 size_t targetlen)
{
    const struct cerr ce = {err, errlen, target, targetlen};
    struct hook *h = NULL;
    const char *key;
    json_t *v;
    int rc;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (target && targetlen)
        target[0] = '\0';
    if (!json_is_object(def))
        return bad(&ce, "", "a hook definition must be a JSON object");

    json_object_foreach(def, key, v)
    {
        size_t i;
        for (i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
            if (strcmp(key, known_keys[i]) == 0)
                break;
        if (i == sizeof known_keys / sizeof known_keys[0])
            return bad(&ce, key, "unknown key \"%.80s\"", key);
    }

    h = xcalloc(1, sizeof *h);
    h->tolerance = HOOK_TOLERANCE_DEFAULT;
    memcpy(h->sig_header, HOOK_DEFAULT_SIGNATURE_HEADER, sizeof HOOK_DEFAULT_SIGNATURE_HEADER);
    memcpy(h->event_id_header, HOOK_DEFAULT_EVENT_ID_HEADER, sizeof HOOK_DEFAULT_EVENT_ID_HEADER);

    v = json_object_get(def, "workflow");
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > WORKFLOW_NAME_MAX ||
        memchr(json_string_value(v), '\0', json_string_length(v))) {
        rc = bad(&ce, "workflow", "workflow must be a workflow name (1..%d bytes)",
                 WORKFLOW_NAME_MAX);
        goto out;
    }
    h->workflow = xstrdup(json_string_value(v));

    v = json_object_get(def, "secrets");
    if (!v) {
        rc = bad(&ce, "secrets", "secrets is required");
        goto out;
    }
    if ((rc = compile_secrets(h, v, &ce)) < 0)
        goto out;

    if ((v = json_object_get(def, "signatureHeader")) &&
        (rc = compile_header(h->sig_header, v, "signatureHeader", &ce)) < 0)
        goto out;

    if ((v = json_object_get(def, "toleranceSeconds"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > TOLERANCE_MAX) {
            rc = bad(&ce, "toleranceSeconds", "toleranceSeconds must be an integer 1..%d",
                     TOLERANCE_MAX);
            goto out;
        }
        h->tolerance = json_integer_value(v);
    }

    if ((v = json_object_get(def, "eventIdHeader")) &&
        (rc = compile_header(h->event_id_header, v, "eventIdHeader", &ce)) < 0)
        goto out;

    if ((v = json_object_get(def, "eventIdFrom")) &&
        (rc = compile_path(&h->event_id_from, v, "eventIdFrom", 0, &ce)) < 0)
        goto out;

    if ((v = json_object_get(def, "items")) && (rc = compile_items(h, v, &ce)) < 0)
        goto out;

    v = json_object_get(def, "refFrom");
    if (!v) {
        rc = bad(&ce, "refFrom", "refFrom is required");
        goto out;
    }
    if ((rc = compile_path(&h->ref_from, v, "refFrom", 0, &ce)) < 0)
        goto out;

    *out = h;
    h = NULL;
    rc = 0;
out:
    hook_free(h);
    return rc;
}

void hook_free(struct hook *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->nsecrets; i++) {
        OPENSSL_cleanse(h->secrets[i], h->secret_len[i]);
        free(h->secrets[i]);
    }
    free(h->workflow);
    free(h->event_id_from);
    free(h->items_path);
    free(h->ref_from);
    free(h);
}

const char *hook_workflow(const struct hook *h)
{
    return h->workflow;
}
const char *hook_signature_header(const struct hook *h)
{
    return h->sig_header;
}
const char *hook_event_id_header(const struct hook *h)
{
    return h->event_id_header;
}
int64_t hook_tolerance_seconds(const struct hook *h)
{
    return h->tolerance;
}

/* ---- redaction -------------------------------------------------------------------- */

/* The mask of one secret value (see hook.h). New reference or NULL. */
static json_t *mask_secret(const json_t *s)
{
    static const char prefix[] = "whsec_";
    if (!json_is_string(s))
        return json_string("****");
    const char *str = json_string_value(s);
    size_t len = json_string_length(s);
    if (len <= 8)
        return json_string("****");
    /* The last 4 characters, backing up over UTF-8 continuation bytes so the mask
     * stays valid UTF-8. */
    size_t start = len;
    for (int chars = 0; chars < 4 && start > 0;) {
        start--;
        if (((unsigned char)str[start] & 0xc0) != 0x80)
            chars++;
    }
    if (memchr(str + start, '\0', len - start))
        return json_string("****");
    char out[sizeof prefix + 4 + 16 + 1];
    size_t off = 0;
    if (len >= sizeof prefix - 1 + 8 && memcmp(str, prefix, sizeof prefix - 1) == 0) {
        memcpy(out, prefix, sizeof prefix - 1);
        off = sizeof prefix - 1;
    }
    if (len - start > 16) /* cannot happen for valid UTF-8; keep out bounded anyway */
        return json_string("****");
    memcpy(out + off, "****", 4);
    off += 4;
    memcpy(out + off, str + start, len - start);
    off += len - start;
    return json_stringn(out, off);
}

json_t *hook_redact(json_t *def)
{
    if (!json_is_object(def))
        return NULL;
    json_t *copy = json_deep_copy(def);
    if (!copy)
        return NULL;
    json_t *secrets = json_object_get(copy, "secrets");
    if (json_is_array(secrets)) {
        size_t i;
        json_t *s;
        json_array_foreach(secrets, i, s)
        {
            json_t *m = mask_secret(s);
            if (!m || json_array_set_new(secrets, i, m) < 0) {
                json_decref(copy);
                return NULL;
            }
        }
    } else if (secrets) {
        /* Not a valid definition, but whatever the value is, it must not leak. */
        json_t *m = mask_secret(secrets);
        if (!m || json_object_set_new(copy, "secrets", m) < 0) {
            json_decref(copy);
            return NULL;
        }
    }
    return copy;
}

/* ---- signatures ------------------------------------------------------------------- */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int malformed(char *err, size_t errlen, const char *why)
{
    setmsg(err, errlen, "malformed signature header: %s", why);
    return -SLUICE_E_UNAUTHORIZED;
}

int hook_sig_parse(const char *hv, struct hook_sig *sig, char *err, size_t errlen)
{
    int have_t = 0;
    memset(sig, 0, sizeof *sig);
    if (!hv) {
        setmsg(err, errlen, "missing signature header");
        return -SLUICE_E_UNAUTHORIZED;
    }
    size_t total = strnlen(hv, HOOK_SIG_HEADER_MAX + 1);
    if (total > HOOK_SIG_HEADER_MAX)
        return malformed(err, errlen, "too long");

    const char *p = hv, *end = hv + total;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *a = p, *b = e;
        while (a < b && is_ows(*a))
            a++;
        while (b > a && is_ows(b[-1]))
            b--;
        if (a < b) {
            const char *eq = memchr(a, '=', (size_t)(b - a));
            if (!eq)
                return malformed(err, errlen, "element without '='");
            const char *ke = eq, *vs = eq + 1;
            while (ke > a && is_ows(ke[-1]))
                ke--;
            while (vs < b && is_ows(*vs))
                vs++;
            size_t klen = (size_t)(ke - a), vlen = (size_t)(b - vs);
            if (klen == 1 && *a == 't') {
                if (have_t)
                    return malformed(err, errlen, "more than one timestamp");
                if (vlen == 0 || vlen > 18 || (vlen > 1 && vs[0] == '0'))
                    return malformed(err, errlen, "bad timestamp");
                int64_t t = 0;
                for (size_t i = 0; i < vlen; i++) {
                    if (vs[i] < '0' || vs[i] > '9')
                        return malformed(err, errlen, "bad timestamp");
                    t = t * 10 + (vs[i] - '0');
                }
                sig->t = t;
                have_t = 1;
            } else if (klen == 2 && a[0] == 'v' && a[1] == '1') {
                if (sig->nv1 == HOOK_SIG_V1_MAX)
                    return malformed(err, errlen, "too many v1 signatures");
                if (vlen != 64)
                    return malformed(err, errlen, "v1 must be 64 hex digits");
                for (size_t i = 0; i < 32; i++) {
                    int hi = url_hexval((unsigned char)vs[2 * i]),
                        lo = url_hexval((unsigned char)vs[2 * i + 1]);
                    if (hi < 0 || lo < 0)
                        return malformed(err, errlen, "v1 must be 64 hex digits");
                    sig->v1[sig->nv1][i] = (unsigned char)(hi << 4 | lo);
                }
                sig->nv1++;
            }
            /* Any other scheme is ignored, so senders can add newer ones. */
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (!have_t)
        return malformed(err, errlen, "no timestamp (t=)");
    if (sig->nv1 == 0)
        return malformed(err, errlen, "no v1 signature");
    return 0;
}

/* HMAC-SHA256(key, prefix || body) into out. 0 or -SLUICE_E_INTERNAL. */
static int hmac_sha256(const char *key, size_t keylen, const char *prefix, size_t plen,
                       const char *body, size_t len, unsigned char out[32])
{
    int rc = -SLUICE_E_INTERNAL;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outl = 0;
    if (!ctx)
        goto out;
    if (!EVP_MAC_init(ctx, (const unsigned char *)key, keylen, params))
        goto out;
    if (!EVP_MAC_update(ctx, (const unsigned char *)prefix, plen))
        goto out;
    if (len && !EVP_MAC_update(ctx, (const unsigned char *)body, len))
        goto out;
    if (!EVP_MAC_final(ctx, out, &outl, 32) || outl != 32)
        goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

int hook_sign(const char *secret, int64_t t, const char *body, size_t len, char out_hex[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[32];
    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "%" PRId64 ".", t);
    out_hex[0] = '\0';
    if (hmac_sha256(secret, strlen(secret), prefix, (size_t)plen, body, len, mac) < 0)
        return -SLUICE_E_INTERNAL;
    for (size_t i = 0; i < 32; i++) {
        out_hex[2 * i] = hex[mac[i] >> 4];
        out_hex[2 * i + 1] = hex[mac[i] & 15];
    }
    out_hex[64] = '\0';
    return 0;
}

int hook_verify(const struct hook *h, const char *header_value, const char *body, size_t len,
                int64_t now_s, char *err, size_t errlen)
{
    struct hook_sig sig;
    int rc = hook_sig_parse(header_value, &sig, err, errlen);
    if (rc < 0)
        return rc;

    /* Unsigned arithmetic: the true distance always fits in 64 bits, whatever now_s. */
    uint64_t dist =
        sig.t >= now_s ? (uint64_t)sig.t - (uint64_t)now_s : (uint64_t)now_s - (uint64_t)sig.t;
    if (dist > (uint64_t)h->tolerance) {
        setmsg(err, errlen, "signature timestamp outside the tolerance window");
        return -SLUICE_E_UNAUTHORIZED;
    }

    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "%" PRId64 ".", sig.t);
    int match = 0;
    for (size_t i = 0; i < h->nsecrets && !match; i++) {
        unsigned char mac[32];
        if (hmac_sha256(h->secrets[i], h->secret_len[i], prefix, (size_t)plen, body, len, mac) <
            0) {
            setmsg(err, errlen, "cannot compute the signature");
            return -SLUICE_E_INTERNAL;
        }
        for (size_t j = 0; j < sig.nv1; j++)
            if (CRYPTO_memcmp(mac, sig.v1[j], 32) == 0)
                match = 1;
        OPENSSL_cleanse(mac, sizeof mac);
    }
    if (!match) {
        setmsg(err, errlen, "no signature matches");
        return -SLUICE_E_UNAUTHORIZED;
    }
    if (err && errlen)
        err[0] = '\0';
    return 0;
}

/* ---- payload to items ------------------------------------------------------------- */

/* Compact JSON text of v into a new heap string (xmalloc). NULL if jansson fails. */
static char *dump_compact(const json_t *v, size_t *len)
{
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    size_t n = json_dumpb(v, NULL, 0, flags);
    if (n == 0)
        return NULL;
    char *s = xmalloc(n + 1);
    if (json_dumpb(v, s, n, flags) != n) {
        free(s);
        return NULL;
    }
    s[n] = '\0';
    *len = n;
    return s;
}

/* Event id from the payload at h->event_id_from into out; "" when absent. */
static int payload_event_id(const struct hook *h, json_t *root, char *out, char *err, size_t errlen)
{
    json_t *v = h->event_id_from ? path_get(root, h->event_id_from) : NULL;
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        snprintf(out, HOOK_EVENT_ID_SIZE, "%" PRId64, (int64_t)json_integer_value(v));
        return 0;
    }
    if (json_is_string(v) && event_id_valid(json_string_value(v), json_string_length(v))) {
        memcpy(out, json_string_value(v), json_string_length(v) + 1);
        return 0;
    }
    setmsg(err, errlen,
           "event id at \"%s\" must be a string of 1..%d printable ASCII characters or an "
           "integer",
           h->event_id_from, HOOK_EVENT_ID_SIZE - 1);
    return -SLUICE_E_INVALID_FIELD;
}

/* Fills it from item number idx; INVALID_ITEM or INTERNAL on failure. */
static int make_item(const struct hook *h, json_t *item, size_t idx, struct hook_item *it,
                     char *err, size_t errlen)
{
    json_t *r = path_get(item, h->ref_from);
    char num[32];
    const char *ref;
    size_t rlen;
    if (!r) {
        setmsg(err, errlen, "items[%zu].ref: no value at \"%s\"", idx, h->ref_from);
        return -SLUICE_E_INVALID_ITEM;
    }
    if (json_is_integer(r)) {
        rlen = (size_t)snprintf(num, sizeof num, "%" PRId64, (int64_t)json_integer_value(r));
        ref = num;
    } else if (json_is_string(r)) {
        ref = json_string_value(r);
        rlen = json_string_length(r);
        if (rlen == 0 || rlen > INGEST_REF_MAX || memchr(ref, '\0', rlen)) {
            setmsg(err, errlen,
                   "items[%zu].ref: the value at \"%s\" must be 1..%d bytes without NUL", idx,
                   h->ref_from, INGEST_REF_MAX);
            return -SLUICE_E_INVALID_ITEM;
        }
    } else {
        setmsg(err, errlen, "items[%zu].ref: the value at \"%s\" must be a string or an integer",
               idx, h->ref_from);
        return -SLUICE_E_INVALID_ITEM;
    }
    it->data = dump_compact(item, &it->data_len);
    if (!it->data) {
        setmsg(err, errlen, "items[%zu]: cannot encode the item", idx);
        return -SLUICE_E_INTERNAL;
    }
    it->ref = xstrndup(ref, rlen);
    it->ref_len = rlen;
    return 0;
}

int hook_items(const struct hook *h, const char *body, size_t len, struct hook_item **items,
               size_t *n, char *event_id_out, const char *event_id_header, char *err, size_t errlen)
{
    struct hook_item *arr = NULL;
    size_t count = 0, done = 0;
    json_t *root = NULL;
    int rc;

    *items = NULL;
    *n = 0;
    event_id_out[0] = '\0';
    if (err && errlen)
        err[0] = '\0';

    if (event_id_header) {
        size_t elen = strnlen(event_id_header, HOOK_EVENT_ID_SIZE);
        if (!event_id_valid(event_id_header, elen)) {
            setmsg(err, errlen, "%s must be 1..%d printable ASCII characters", h->event_id_header,
                   HOOK_EVENT_ID_SIZE - 1);
            return -SLUICE_E_INVALID_REQUEST;
        }
    }

    struct ingest_error ie;
    if (ingest_validate_json(body, len, JSON_DEPTH_MAX, &ie) < 0) {
        setmsg(err, errlen, "%s", ie.message);
        return -SLUICE_E_INVALID_JSON;
    }
    json_error_t jerr;
    root = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        /* ingest promises jansson accepts what it accepts; keep an answer anyway. */
        setmsg(err, errlen, "%s", jerr.text);
        return -SLUICE_E_INVALID_JSON;
    }

    if (event_id_header)
        memcpy(event_id_out, event_id_header, strlen(event_id_header) + 1);
    else if ((rc = payload_event_id(h, root, event_id_out, err, errlen)) < 0)
        goto out;

    json_t *src = root;
    if (h->items_from_path) {
        src = path_get(root, h->items_path);
        if (!src) {
            rc = -SLUICE_E_INVALID_FIELD;
            setmsg(err, errlen, "no value at the items path \"%s\"", h->items_path);
            goto out;
        }
        if (!json_is_array(src)) {
            rc = -SLUICE_E_INVALID_FIELD;
            if (h->items_path[0])
                setmsg(err, errlen, "the value at the items path \"%s\" is not an array",
                       h->items_path);
            else
                setmsg(err, errlen, "the body is not an array");
            goto out;
        }
        count = json_array_size(src);
    } else {
        count = 1;
    }
    if (count == 0) {
        rc = -SLUICE_E_EMPTY_JOB;
        setmsg(err, errlen, "the event has no items");
        goto out;
    }

    arr = xcalloc(count, sizeof *arr);
    for (done = 0; done < count; done++) {
        json_t *item = h->items_from_path ? json_array_get(src, done) : src;
        if ((rc = make_item(h, item, done, &arr[done], err, errlen)) < 0)
            goto out;
    }
    *items = arr;
    *n = count;
    arr = NULL;
    rc = 0;
out:
    if (arr)
        hook_items_free(arr, done);
    if (rc < 0)
        event_id_out[0] = '\0';
    json_decref(root);
    return rc;
}

void hook_items_free(struct hook_item *items, size_t n)
{
    if (!items)
        return;
    for (size_t i = 0; i < n; i++) {
        free(items[i].ref);
        free(items[i].data);
    }
    free(items);
}
