/* hook.c - inbound webhook events; see hook.h.
 *
 * Pure logic, no I/O: the api layer reads headers, looks up the workflow and records
 * event ids; this file checks the HMAC signature of each event against a compiled hook
 * (spec/hook.h) and splits its payload into items. The body is first checked by
 * ingest_validate_json() so that exactly the JSON the bulk submit path accepts is
 * accepted here, then parsed with jansson for path lookups. */
#include "engine/hook.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "util/errmsg.h"
#include "util/errors.h"
#include "util/url.h"
#include "util/xmalloc.h"

#define JSON_DEPTH_MAX 64

/* ---- small helpers ---------------------------------------------------------------- */

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

/* ---- signatures ------------------------------------------------------------------- */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int malformed(char *err, size_t errlen, const char *why)
{
    errmsg_set(err, errlen, "malformed signature header: %s", why);
    return -SLUICE_E_UNAUTHORIZED;
}

int hook_sig_parse(const char *hv, struct hook_sig *sig, char *err, size_t errlen)
{
    int have_t = 0;
    memset(sig, 0, sizeof *sig);
    if (!hv) {
        errmsg_set(err, errlen, "missing signature header");
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
        errmsg_set(err, errlen, "signature timestamp outside the tolerance window");
        return -SLUICE_E_UNAUTHORIZED;
    }

    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "%" PRId64 ".", sig.t);
    int match = 0;
    for (size_t i = 0; i < h->nsecrets && !match; i++) {
        unsigned char mac[32];
        if (hmac_sha256(h->secrets[i], h->secret_len[i], prefix, (size_t)plen, body, len, mac) <
            0) {
            errmsg_set(err, errlen, "cannot compute the signature");
            return -SLUICE_E_INTERNAL;
        }
        for (size_t j = 0; j < sig.nv1; j++)
            if (CRYPTO_memcmp(mac, sig.v1[j], 32) == 0)
                match = 1;
        OPENSSL_cleanse(mac, sizeof mac);
    }
    if (!match) {
        errmsg_set(err, errlen, "no signature matches");
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
    errmsg_set(err, errlen,
               "event id at \"%s\" must be a string of 1..%d printable ASCII characters or an "
               "integer",
               h->event_id_from, HOOK_EVENT_ID_SIZE - 1);
    return -SLUICE_E_INVALID_FIELD;
}

/* Fills it from item number idx; INVALID_ITEM or INTERNAL on failure. */
static int make_item(const struct hook *h, json_t *item, size_t idx, struct hook_item *it,
                     char *err, size_t errlen, char *target, size_t targetlen)
{
    json_t *r = path_get(item, h->ref_from);
    char num[32];
    const char *ref;
    size_t rlen;
    errmsg_set(target, targetlen, "items[%zu].ref", idx); /* kept only when this fails */
    if (!r) {
        errmsg_set(err, errlen, "items[%zu].ref: no value at \"%s\"", idx, h->ref_from);
        return -SLUICE_E_INVALID_ITEM;
    }
    if (json_is_integer(r)) {
        rlen = (size_t)snprintf(num, sizeof num, "%" PRId64, (int64_t)json_integer_value(r));
        ref = num;
    } else if (json_is_string(r)) {
        ref = json_string_value(r);
        rlen = json_string_length(r);
        if (rlen == 0 || rlen > INGEST_REF_MAX || memchr(ref, '\0', rlen)) {
            errmsg_set(err, errlen,
                       "items[%zu].ref: the value at \"%s\" must be 1..%d bytes without NUL", idx,
                       h->ref_from, INGEST_REF_MAX);
            return -SLUICE_E_INVALID_ITEM;
        }
    } else {
        errmsg_set(err, errlen,
                   "items[%zu].ref: the value at \"%s\" must be a string or an integer", idx,
                   h->ref_from);
        return -SLUICE_E_INVALID_ITEM;
    }
    it->data = dump_compact(item, &it->data_len);
    if (!it->data) {
        errmsg_set(err, errlen, "items[%zu]: cannot encode the item", idx);
        return -SLUICE_E_INTERNAL;
    }
    it->ref = xstrndup(ref, rlen);
    it->ref_len = rlen;
    return 0;
}

int hook_items(const struct hook *h, const char *body, size_t len, struct hook_item **items,
               size_t *n, char *event_id_out, const char *event_id_header, char *err, size_t errlen,
               char *target, size_t targetlen)
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
    if (target && targetlen)
        target[0] = '\0';

    if (event_id_header) {
        size_t elen = strnlen(event_id_header, HOOK_EVENT_ID_SIZE);
        if (!event_id_valid(event_id_header, elen)) {
            errmsg_set(err, errlen, "%s must be 1..%d printable ASCII characters",
                       h->event_id_header, HOOK_EVENT_ID_SIZE - 1);
            errmsg_set(target, targetlen, "%s", h->event_id_header);
            return -SLUICE_E_INVALID_REQUEST;
        }
    }

    struct ingest_error ie;
    if (ingest_validate_json(body, len, JSON_DEPTH_MAX, &ie) < 0) {
        errmsg_set(err, errlen, "%s", ie.message);
        return -SLUICE_E_INVALID_JSON;
    }
    json_error_t jerr;
    root = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        /* ingest promises jansson accepts what it accepts; keep an answer anyway. */
        errmsg_set(err, errlen, "%s", jerr.text);
        return -SLUICE_E_INVALID_JSON;
    }

    if (event_id_header)
        memcpy(event_id_out, event_id_header, strlen(event_id_header) + 1);
    else if ((rc = payload_event_id(h, root, event_id_out, err, errlen)) < 0)
        goto out;

    json_t *src = root;
    int many; /* src is an array of items, else src is the one item */
    if (h->items_from_path) {
        src = path_get(root, h->items_path);
        if (!src) {
            rc = -SLUICE_E_INVALID_FIELD;
            errmsg_set(err, errlen, "no value at the items path \"%s\"", h->items_path);
            errmsg_set(target, targetlen, "%s", h->items_path);
            goto out;
        }
        if (!json_is_array(src)) {
            rc = -SLUICE_E_INVALID_FIELD;
            if (h->items_path[0])
                errmsg_set(err, errlen, "the value at the items path \"%s\" is not an array",
                           h->items_path);
            else
                errmsg_set(err, errlen, "the body is not an array");
            errmsg_set(target, targetlen, "%s", h->items_path);
            goto out;
        }
        many = 1;
    } else {
        /* "from": "body": an array body is the items array itself (as providers send
         * batches); any other body is one item. */
        many = json_is_array(src);
    }
    count = many ? json_array_size(src) : 1;
    if (count == 0) {
        rc = -SLUICE_E_EMPTY_JOB;
        errmsg_set(err, errlen, "the event has no items");
        goto out;
    }

    arr = xcalloc(count, sizeof *arr);
    for (done = 0; done < count; done++) {
        json_t *item = many ? json_array_get(src, done) : src;
        if ((rc = make_item(h, item, done, &arr[done], err, errlen, target, targetlen)) < 0)
            goto out;
    }
    *items = arr;
    *n = count;
    arr = NULL;
    rc = 0;
    errmsg_set(target, targetlen, "%s", ""); /* make_item names its item in advance */
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
