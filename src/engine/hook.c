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
#include <strings.h>

#include "ingest/ingest.h"
#include "util/base64.h"
#include "util/errmsg.h"
#include "util/errors.h"
#include "util/ids.h"
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

/* Refuses a delivery for the header name (of kind "signature", "timestamp", ...): why it
 * is malformed, or NULL when it is missing, goes into err, and name into target. */
static int refuse(char *err, size_t errlen, char *target, size_t targetlen, const char *kind,
                  const char *name, const char *why)
{
    if (why)
        errmsg_set(err, errlen, "malformed %s header%s%s: %s", kind, name[0] ? " " : "", name, why);
    else
        errmsg_set(err, errlen, "missing %s header%s%s", kind, name[0] ? " " : "", name);
    errmsg_set(target, targetlen, "%s", name);
    return -SLUICE_E_UNAUTHORIZED;
}

/* Unix seconds written canonically: 1..18 decimal digits, no leading zero. */
static int parse_unix(const char *s, size_t n, int64_t *t)
{
    if (n == 0 || n > 18 || (n > 1 && s[0] == '0'))
        return -1;
    *t = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *t = *t * 10 + (s[i] - '0');
    }
    return 0;
}

/* The length of signature header value hv into [out] *total; refuses a missing one and
 * one longer than HOOK_SIG_HEADER_MAX. */
static int sig_header_len(const char *hv, const char *name, size_t *total, char *err, size_t errlen,
                          char *target, size_t targetlen)
{
    if (!hv)
        return refuse(err, errlen, target, targetlen, "signature", name, NULL);
    *total = strnlen(hv, HOOK_SIG_HEADER_MAX + 1);
    if (*total > HOOK_SIG_HEADER_MAX)
        return refuse(err, errlen, target, targetlen, "signature", name, "too long");
    return 0;
}

/* hook_sig_parse with the header's name for the messages ("" in hook_sig_parse). */
static int sig_parse_named(const char *hv, const char *name, struct hook_sig *sig, char *err,
                           size_t errlen, char *target, size_t targetlen)
{
#define MALFORMED(why) refuse(err, errlen, target, targetlen, "signature", name, why)
    int have_t = 0, rc;
    size_t total = 0;
    memset(sig, 0, sizeof *sig);
    if ((rc = sig_header_len(hv, name, &total, err, errlen, target, targetlen)) < 0)
        return rc;

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
                return MALFORMED("element without '='");
            const char *ke = eq, *vs = eq + 1;
            while (ke > a && is_ows(ke[-1]))
                ke--;
            while (vs < b && is_ows(*vs))
                vs++;
            size_t klen = (size_t)(ke - a), vlen = (size_t)(b - vs);
            if (klen == 1 && *a == 't') {
                if (have_t)
                    return MALFORMED("more than one timestamp");
                if (parse_unix(vs, vlen, &sig->t) < 0)
                    return MALFORMED("bad timestamp");
                have_t = 1;
            } else if (klen == 2 && a[0] == 'v' && a[1] == '1') {
                if (sig->nv1 == HOOK_SIG_V1_MAX)
                    return MALFORMED("too many v1 signatures");
                if (vlen != 64)
                    return MALFORMED("v1 must be 64 hex digits");
                for (size_t i = 0; i < 32; i++) {
                    int hi = url_hexval((unsigned char)vs[2 * i]),
                        lo = url_hexval((unsigned char)vs[2 * i + 1]);
                    if (hi < 0 || lo < 0)
                        return MALFORMED("v1 must be 64 hex digits");
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
        return MALFORMED("no timestamp (t=)");
    if (sig->nv1 == 0)
        return MALFORMED("no v1 signature");
    return 0;
#undef MALFORMED
}

int hook_sig_parse(const char *hv, struct hook_sig *sig, char *err, size_t errlen)
{
    return sig_parse_named(hv, "", sig, err, errlen, NULL, 0);
}

/* One piece of the signed content. */
struct seg {
    const void *p;
    size_t n;
};

/* HMAC(key, the segments in order) under digest into out (outlen: the digest's size).
 * 0 or -SLUICE_E_INTERNAL. */
static int mac_compute(const char *digest, const void *key, size_t keylen, const struct seg *segs,
                       size_t nsegs, unsigned char *out, size_t outlen)
{
    int rc = -SLUICE_E_INTERNAL;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char name[16];
    snprintf(name, sizeof name, "%s", digest);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, name, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t got = 0;
    if (!ctx)
        goto out;
    if (!EVP_MAC_init(ctx, (const unsigned char *)key, keylen, params))
        goto out;
    for (size_t i = 0; i < nsegs; i++)
        if (segs[i].n && !EVP_MAC_update(ctx, (const unsigned char *)segs[i].p, segs[i].n))
            goto out;
    if (!EVP_MAC_final(ctx, out, &got, outlen) || got != outlen)
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
    const struct seg segs[] = {{prefix, (size_t)plen}, {body, len}};
    out_hex[0] = '\0';
    if (mac_compute("SHA256", secret, strlen(secret), segs, 2, mac, sizeof mac) < 0)
        return -SLUICE_E_INTERNAL;
    for (size_t i = 0; i < 32; i++) {
        out_hex[2 * i] = hex[mac[i] >> 4];
        out_hex[2 * i + 1] = hex[mac[i] & 15];
    }
    out_hex[64] = '\0';
    return 0;
}

/* The MACs a delivery claims, decoded. */
struct claimed {
    size_t n;
    unsigned char mac[HOOK_SIG_V1_MAX][HOOK_MAC_MAX];
};

/* Decodes one MAC written in h's encoding (n characters at s) into c; -1 if it is not
 * exactly one MAC of h's size. */
static int claim(const struct hook *h, const char *s, size_t n, struct claimed *c)
{
    unsigned char *out = c->mac[c->n];
    if (h->encoding == HOOK_ENC_HEX) {
        if (n != 2 * h->mac_len)
            return -1;
        for (size_t i = 0; i < h->mac_len; i++) {
            int hi = url_hexval((unsigned char)s[2 * i]),
                lo = url_hexval((unsigned char)s[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return -1;
            out[i] = (unsigned char)(hi << 4 | lo);
        }
    } else {
        size_t got = 0;
        if (base64_decode(s, n, out, HOOK_MAC_MAX, &got) < 0 || got != h->mac_len)
            return -1;
    }
    c->n++;
    return 0;
}

/* The signature header of a plain or list scheme into c. */
static int parse_macs(const struct hook *h, const char *hv, struct claimed *c, char *err,
                      size_t errlen, char *target, size_t targetlen)
{
#define MALFORMED(why) refuse(err, errlen, target, targetlen, "signature", h->sig_header, why)
    const char *enc = h->encoding == HOOK_ENC_HEX ? "hex" : "base64";
    size_t plen = strlen(h->prefix);
    char why[96];
    snprintf(why, sizeof why, "expected %s<%s of %zu bytes>", h->prefix, enc, h->mac_len);
    size_t total = 0;
    int rc;
    c->n = 0;
    if ((rc = sig_header_len(hv, h->sig_header, &total, err, errlen, target, targetlen)) < 0)
        return rc;
    const char *p = hv, *end = hv + total;
    while (p < end) {
        while (p < end && is_ows(*p))
            p++;
        const char *e = p;
        /* A plain header is one value; a list is space-separated entries. */
        while (e < end && (h->sig_format == HOOK_SIG_PLAIN || !is_ows(*e)))
            e++;
        const char *b = e;
        while (b > p && is_ows(b[-1]))
            b--;
        if (p == b)
            break;
        if ((size_t)(b - p) >= plen && memcmp(p, h->prefix, plen) == 0) {
            if (c->n == HOOK_SIG_V1_MAX)
                return MALFORMED("too many signatures");
            if (claim(h, p + plen, (size_t)(b - p) - plen, c) < 0)
                return MALFORMED(why);
        } else if (h->sig_format == HOOK_SIG_PLAIN) {
            return MALFORMED(why);
        }
        /* A list entry of another version ("v1a,...") is ignored, as in Stripe's. */
        p = e;
    }
    if (c->n == 0)
        return MALFORMED(why);
    return 0;
#undef MALFORMED
}

int hook_verify_event(const struct hook *h, hook_header_fn *get, void *ctx, const char *body,
                      size_t len, int64_t now_s, char signed_id[HOOK_EVENT_ID_SIZE], char *err,
                      size_t errlen, char *target, size_t targetlen)
{
    struct claimed c;
    const char *id = NULL;
    char ts[24] = "";
    int64_t t = 0;
    int rc;

    signed_id[0] = '\0';
    errmsg_set(err, errlen, "%s", "");
    errmsg_set(target, targetlen, "%s", "");
    const char *hv = get(ctx, h->sig_header);
    if (h->sig_format == HOOK_SIG_STRIPE) {
        struct hook_sig sig;
        if ((rc = sig_parse_named(hv, h->sig_header, &sig, err, errlen, target, targetlen)) < 0)
            return rc;
        t = sig.t;
        c.n = sig.nv1;
        for (size_t i = 0; i < sig.nv1; i++)
            memcpy(c.mac[i], sig.v1[i], 32);
    } else if ((rc = parse_macs(h, hv, &c, err, errlen, target, targetlen)) < 0) {
        return rc;
    }
    const char *ts_name = h->ts_header[0] ? h->ts_header : h->sig_header;
    if (h->ts_header[0]) {
        const char *tv = get(ctx, h->ts_header);
        if (!tv)
            return refuse(err, errlen, target, targetlen, "timestamp", h->ts_header, NULL);
        if (parse_unix(tv, strnlen(tv, 19), &t) < 0)
            return refuse(err, errlen, target, targetlen, "timestamp", h->ts_header,
                          "not unix seconds");
    }
    if (h->timed) {
        /* Unsigned arithmetic: the true distance always fits in 64 bits, whatever now_s. */
        uint64_t dist = t >= now_s ? (uint64_t)t - (uint64_t)now_s : (uint64_t)now_s - (uint64_t)t;
        if (dist > (uint64_t)h->tolerance) {
            errmsg_set(err, errlen, "signature timestamp outside the tolerance window");
            errmsg_set(target, targetlen, "%s", ts_name);
            return -SLUICE_E_UNAUTHORIZED;
        }
        snprintf(ts, sizeof ts, "%" PRId64, t);
    }
    if (h->id_header[0] && !(id = get(ctx, h->id_header)))
        return refuse(err, errlen, target, targetlen, "delivery id", h->id_header, NULL);

    /* The signed content: the parts in the scheme's order, separated. */
    struct seg segs[5];
    size_t nsegs = 0;
    for (size_t i = 0; i < h->nparts; i++) {
        if (i)
            segs[nsegs++] = (struct seg){h->separator, strlen(h->separator)};
        if (h->parts[i] == HOOK_PART_ID)
            segs[nsegs++] = (struct seg){id, strlen(id)};
        else if (h->parts[i] == HOOK_PART_TIMESTAMP)
            segs[nsegs++] = (struct seg){ts, strlen(ts)};
        else
            segs[nsegs++] = (struct seg){body, len};
    }
    int match = 0;
    for (size_t i = 0; i < h->nsecrets && !match; i++) {
        unsigned char mac[HOOK_MAC_MAX];
        if (mac_compute(h->digest, h->secrets[i], h->secret_len[i], segs, nsegs, mac, h->mac_len) <
            0) {
            errmsg_set(err, errlen, "cannot compute the signature");
            return -SLUICE_E_INTERNAL;
        }
        for (size_t j = 0; j < c.n; j++)
            if (CRYPTO_memcmp(mac, c.mac[j], h->mac_len) == 0)
                match = 1;
        OPENSSL_cleanse(mac, sizeof mac);
    }
    if (!match) {
        errmsg_set(err, errlen, "no signature matches");
        errmsg_set(target, targetlen, "%s", h->sig_header);
        return -SLUICE_E_UNAUTHORIZED;
    }
    if (id && strnlen(id, HOOK_EVENT_ID_SIZE) == HOOK_EVENT_ID_SIZE) {
        errmsg_set(err, errlen, "%s must be 1..%d printable ASCII characters", h->id_header,
                   HOOK_EVENT_ID_SIZE - 1);
        errmsg_set(target, targetlen, "%s", h->id_header);
        return -SLUICE_E_INVALID_REQUEST;
    }
    if (id)
        memcpy(signed_id, id, strlen(id) + 1);
    errmsg_set(err, errlen, "%s", "");
    errmsg_set(target, targetlen, "%s", "");
    return 0;
}

/* The getter of hook_verify: only the signature header is there. */
struct one_header {
    const char *name;
    const char *value;
};

static const char *one_header_get(void *ctx, const char *name)
{
    const struct one_header *o = ctx;
    return strcasecmp(name, o->name) == 0 ? o->value : NULL;
}

int hook_verify(const struct hook *h, const char *header_value, const char *body, size_t len,
                int64_t now_s, char *err, size_t errlen)
{
    struct one_header o = {h->sig_header, header_value};
    char id[HOOK_EVENT_ID_SIZE];
    return hook_verify_event(h, one_header_get, &o, body, len, now_s, id, err, errlen, NULL, 0);
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
               size_t *n, char *event_id_out, const char *signed_id, char *err, size_t errlen,
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

    if (signed_id && !signed_id[0])
        signed_id = NULL;
    if (signed_id && !event_id_valid(signed_id, strnlen(signed_id, HOOK_EVENT_ID_SIZE))) {
        errmsg_set(err, errlen, "%s must be 1..%d printable ASCII characters", h->id_header,
                   HOOK_EVENT_ID_SIZE - 1);
        errmsg_set(target, targetlen, "%s", h->id_header);
        return -SLUICE_E_INVALID_REQUEST;
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

    if ((rc = payload_event_id(h, root, event_id_out, err, errlen)) < 0)
        goto out;
    if (!event_id_out[0] && signed_id) {
        memcpy(event_id_out, signed_id, strlen(signed_id) + 1);
    } else if (!event_id_out[0]) {
        /* Nothing signed names the delivery: the signed body itself does. */
        char hex[65];
        ids_sha256_hex(body, len, hex);
        snprintf(event_id_out, HOOK_EVENT_ID_SIZE, "%s%s", HOOK_BODY_ID_PREFIX, hex);
    }

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
