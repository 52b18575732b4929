/* hook.c - compiling inbound webhook definitions; see spec/hook.h.
 *
 * Pure logic, no I/O: the api layer stores definitions; this file checks one once, when
 * it is written (every error names its place, "secrets[1]"), and redacts its secrets for
 * GET. Verifying events and splitting payloads is the runtime's (engine/hook.c). */
#include "spec/hook.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
#include "util/errmsg.h"
#include "util/errors.h"
#include "util/xmalloc.h"

#define WORKFLOW_NAME_MAX 160
#define PATH_MAX_BYTES 256
#define TOLERANCE_MAX 86400

/* ---- small helpers ---------------------------------------------------------------- */

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
    errmsg_vset(ce->err, ce->errlen, fmt, ap);
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
    if (len == 0 || len > HOOK_HEADER_NAME_MAX)
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

/* ---- schemes ---------------------------------------------------------------------- */

/* Optional definition keys that only some schemes take. */
enum {
    KEY_SIGNATURE_HEADER = 1 << 0,
    KEY_EVENT_ID_HEADER = 1 << 1,
    KEY_TOLERANCE = 1 << 2,
    KEY_HMAC = 1 << 3,
};

/* One signing scheme: everything that differs between providers. hmac's row leaves the
 * header, the MAC's form and what is signed to the definition's "hmac" object. */
struct scheme_row {
    const char *name;
    enum hook_sig_format format;
    const char *header; /* the signature header; NULL: from the definition */
    const char *prefix; /* before each MAC in the header */
    enum hook_encoding encoding;
    const char *parts; /* what is signed, in order: 'i' id, 't' timestamp, 'b' body */
    const char *separator;
    const char *id_header; /* the signed delivery id header, or "" */
    const char *ts_header; /* the timestamp header, or "" (stripe: inside the signature) */
    size_t secret_min;     /* the provider's bound, else HOOK_SECRET_MIN */
    int secret_whsec;      /* "whsec_" + base64: the key is the decoded bytes */
    unsigned keys;         /* KEY_* this scheme takes */
};

static const struct scheme_row schemes[] = {
    [HOOK_SCHEME_STRIPE] = {"stripe", HOOK_SIG_STRIPE, HOOK_DEFAULT_SIGNATURE_HEADER, "",
                            HOOK_ENC_HEX, "tb", ".", "", "", HOOK_SECRET_MIN, 0,
                            KEY_SIGNATURE_HEADER | KEY_EVENT_ID_HEADER | KEY_TOLERANCE},
    /* GitHub accepts a secret of any length. */
    [HOOK_SCHEME_GITHUB] = {"github", HOOK_SIG_PLAIN, "X-Hub-Signature-256",
                            "sha256=", HOOK_ENC_HEX, "b", "", "", "", 1, 0, 0},
    /* Shopify generates its secrets (32+ characters): no reason to go below ours. */
    [HOOK_SCHEME_SHOPIFY] = {"shopify", HOOK_SIG_PLAIN, "X-Shopify-Hmac-Sha256", "",
                             HOOK_ENC_BASE64, "b", "", "", "", HOOK_SECRET_MIN, 0, 0},
    /* WooCommerce lets the shop owner type any secret. */
    [HOOK_SCHEME_WOOCOMMERCE] = {"woocommerce", HOOK_SIG_PLAIN, "X-WC-Webhook-Signature", "",
                                 HOOK_ENC_BASE64, "b", "", "", "", 1, 0, 0},
    [HOOK_SCHEME_STANDARD_WEBHOOKS] = {"standard-webhooks", HOOK_SIG_LIST, "webhook-signature",
                                       "v1,", HOOK_ENC_BASE64, "itb", ".", "webhook-id",
                                       "webhook-timestamp", HOOK_SECRET_MIN, 1, KEY_TOLERANCE},
    [HOOK_SCHEME_HMAC] = {"hmac", HOOK_SIG_PLAIN, NULL, "", HOOK_ENC_HEX, "b", ".", "", "",
                          HOOK_SECRET_MIN, 0, KEY_TOLERANCE | KEY_HMAC},
};
#define NSCHEMES (sizeof schemes / sizeof schemes[0])

static const struct {
    const char *name;
    const char *digest;
    size_t mac_len;
} algorithms[] = {{"sha1", "SHA1", 20}, {"sha256", "SHA256", 32}, {"sha512", "SHA512", 64}};

static const char *const part_names[] = {
    [HOOK_PART_ID] = "id", [HOOK_PART_TIMESTAMP] = "timestamp", [HOOK_PART_BODY] = "body"};

/* Applies row's fixed choices to h (the definition may refine hmac's). */
static void scheme_apply(struct hook *h, enum hook_scheme sc)
{
    const struct scheme_row *r = &schemes[sc];
    h->scheme = sc;
    h->sig_format = r->format;
    snprintf(h->sig_header, sizeof h->sig_header, "%s", r->header ? r->header : "");
    h->digest = "SHA256";
    h->mac_len = 32;
    h->encoding = r->encoding;
    snprintf(h->prefix, sizeof h->prefix, "%s", r->prefix);
    h->nparts = 0;
    for (const char *p = r->parts; *p; p++)
        h->parts[h->nparts++] = *p == 'i'   ? HOOK_PART_ID
                                : *p == 't' ? HOOK_PART_TIMESTAMP
                                            : HOOK_PART_BODY;
    h->timed = strchr(r->parts, 't') != NULL;
    snprintf(h->separator, sizeof h->separator, "%s", r->separator);
    snprintf(h->id_header, sizeof h->id_header, "%s", r->id_header);
    snprintf(h->ts_header, sizeof h->ts_header, "%s", r->ts_header);
}

/* ---- definition ------------------------------------------------------------------- */

static const char *const known_keys[] = {
    "workflow", "scheme",        "secrets",     "signatureHeader", "toleranceSeconds",
    "hmac",     "eventIdHeader", "eventIdFrom", "items",           "refFrom"};

static const struct {
    const char *key;
    unsigned bit;
} scheme_keys[] = {{"signatureHeader", KEY_SIGNATURE_HEADER},
                   {"eventIdHeader", KEY_EVENT_ID_HEADER},
                   {"toleranceSeconds", KEY_TOLERANCE},
                   {"hmac", KEY_HMAC}};

/* A Standard Webhooks secret: "whsec_" (optional) + canonical base64; the key is the
 * decoded bytes. Stores them in h->secrets[i]. */
static int compile_whsec(struct hook *h, size_t i, const char *str, size_t len, const char *tgt,
                         const struct cerr *ce)
{
    static const char prefix[] = "whsec_";
    if (len >= sizeof prefix - 1 && memcmp(str, prefix, sizeof prefix - 1) == 0) {
        str += sizeof prefix - 1;
        len -= sizeof prefix - 1;
    }
    unsigned char *key = xmalloc(BASE64_DECODED_MAX(len) + 1);
    size_t klen = 0;
    if (base64_decode(str, len, key, BASE64_DECODED_MAX(len), &klen) < 0 ||
        klen < HOOK_SECRET_MIN) {
        OPENSSL_cleanse(key, BASE64_DECODED_MAX(len));
        free(key);
        return bad(ce, tgt, "%s must be \"whsec_\" and the base64 of at least %d bytes", tgt,
                   HOOK_SECRET_MIN);
    }
    h->secrets[i] = (char *)key;
    h->secret_len[i] = klen;
    return 0;
}

static int compile_secrets(struct hook *h, json_t *v, const struct cerr *ce)
{
    const struct scheme_row *r = &schemes[h->scheme];
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
        if (len < r->secret_min || len > HOOK_SECRET_MAX)
            return bad(ce, tgt, "%s must be %zu..%d bytes long (scheme %s)", tgt, r->secret_min,
                       HOOK_SECRET_MAX, r->name);
        if (memchr(str, '\0', len))
            return bad(ce, tgt, "%s must not contain NUL", tgt);
        if (r->secret_whsec) {
            int rc = compile_whsec(h, i, str, len, tgt, ce);
            if (rc < 0)
                return rc;
        } else {
            h->secrets[i] = xstrndup(str, len);
            h->secret_len[i] = len;
        }
        h->nsecrets = i + 1;
    }
    return 0;
}

static int compile_header(char dst[HOOK_HEADER_NAME_MAX + 1], json_t *v, const char *key,
                          const struct cerr *ce)
{
    if (!json_is_string(v) || !header_name_valid(json_string_value(v), json_string_length(v)))
        return bad(ce, key, "%s must be an HTTP header name (1..%d token characters)", key,
                   HOOK_HEADER_NAME_MAX);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* A string of 0..max printable ASCII characters (0x20..0x7e) into dst (max + 1 bytes). */
static int compile_ascii(char *dst, size_t max, json_t *v, const char *key, const struct cerr *ce)
{
    int ok = json_is_string(v) && json_string_length(v) <= max;
    for (size_t i = 0; ok && i < json_string_length(v); i++)
        ok = json_string_value(v)[i] >= 0x20 && json_string_value(v)[i] <= 0x7e;
    if (!ok)
        return bad(ce, key, "%s must be at most %zu printable ASCII characters", key, max);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* The value of key in o when it is one of n names (returns its index), else a failure
 * naming the choices; absent: def. The names are the name fields of a table's rows:
 * names points at the first, and each next one is stride bytes further. */
static int compile_choice(json_t *o, const char *key, const char *tgt, const char *const *names,
                          size_t stride, size_t n, int def, const struct cerr *ce)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return def;
    for (size_t i = 0; json_is_string(v) && i < n; i++)
        if (strcmp(json_string_value(v),
                   *(const char *const *)((const char *)names + i * stride)) == 0)
            return (int)i;
    char choices[160];
    size_t off = 0;
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(choices + off, sizeof choices - off, "%s\"%s\"", i ? ", " : "",
                                *(const char *const *)((const char *)names + i * stride));
    return bad(ce, tgt, "%s must be one of %s", tgt, choices);
}

/* "signed": the parts in order, each once, "body" among them. */
static int compile_signed(struct hook *h, json_t *v, const struct cerr *ce)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    int seen[3] = {0, 0, 0};
    if (n < 1 || n > 3)
        return bad(ce, "hmac.signed",
                   "hmac.signed must be an array of \"id\", \"timestamp\" and \"body\", each at "
                   "most once, \"body\" required");
    h->nparts = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        char tgt[32];
        snprintf(tgt, sizeof tgt, "hmac.signed[%zu]", i);
        int p = -1;
        for (int k = 0; k < 3 && json_is_string(e); k++)
            if (strcmp(json_string_value(e), part_names[k]) == 0)
                p = k;
        if (p < 0)
            return bad(ce, tgt, "%s must be \"id\", \"timestamp\" or \"body\"", tgt);
        if (seen[p]++)
            return bad(ce, tgt, "%s repeats \"%s\"", tgt, part_names[p]);
        h->parts[h->nparts++] = (enum hook_part)p;
    }
    if (!seen[HOOK_PART_BODY])
        return bad(ce, "hmac.signed", "hmac.signed must include \"body\"");
    h->timed = seen[HOOK_PART_TIMESTAMP];
    return 0;
}

/* The header of a signed part: required when the part is signed, refused otherwise. */
static int compile_part_header(char dst[HOOK_HEADER_NAME_MAX + 1], json_t *o, const char *key,
                               int is_signed, const char *part, const struct cerr *ce)
{
    char tgt[40];
    snprintf(tgt, sizeof tgt, "hmac.%s", key);
    json_t *v = json_object_get(o, key);
    if (!is_signed && v)
        return bad(ce, tgt, "%s is only allowed when hmac.signed includes \"%s\"", tgt, part);
    if (is_signed && !v)
        return bad(ce, tgt, "%s is required when hmac.signed includes \"%s\"", tgt, part);
    return v ? compile_header(dst, v, tgt, ce) : 0;
}

static int compile_hmac(struct hook *h, json_t *v, const struct cerr *ce)
{
    static const char *const hmac_keys[] = {"header", "algorithm", "encoding", "prefix",
                                            "signed", "separator", "idHeader", "timestampHeader"};
    static const char *const encodings[] = {[HOOK_ENC_HEX] = "hex", [HOOK_ENC_BASE64] = "base64"};
    const char *key;
    json_t *val;
    int rc;
    if (!json_is_object(v))
        return bad(ce, "hmac", "hmac must be an object with at least \"header\"");
    json_object_foreach(v, key, val)
    {
        size_t i = 0;
        while (i < sizeof hmac_keys / sizeof hmac_keys[0] && strcmp(key, hmac_keys[i]) != 0)
            i++;
        if (i == sizeof hmac_keys / sizeof hmac_keys[0]) {
            char tgt[96];
            snprintf(tgt, sizeof tgt, "hmac.%.80s", key);
            return bad(ce, tgt, "unknown key \"%.80s\" in hmac", key);
        }
    }
    if (!(val = json_object_get(v, "header")))
        return bad(ce, "hmac.header", "hmac.header is required");
    if ((rc = compile_header(h->sig_header, val, "hmac.header", ce)) < 0)
        return rc;
    if ((rc = compile_choice(v, "algorithm", "hmac.algorithm", &algorithms[0].name,
                             sizeof algorithms[0], sizeof algorithms / sizeof algorithms[0], 1,
                             ce)) < 0)
        return rc;
    h->digest = algorithms[rc].digest;
    h->mac_len = algorithms[rc].mac_len;
    if ((rc = compile_choice(v, "encoding", "hmac.encoding", encodings, sizeof encodings[0], 2,
                             HOOK_ENC_HEX, ce)) < 0)
        return rc;
    h->encoding = (enum hook_encoding)rc;
    if ((val = json_object_get(v, "prefix")) &&
        (rc = compile_ascii(h->prefix, HOOK_PREFIX_MAX, val, "hmac.prefix", ce)) < 0)
        return rc;
    if ((val = json_object_get(v, "separator")) &&
        (rc = compile_ascii(h->separator, HOOK_SEPARATOR_MAX, val, "hmac.separator", ce)) < 0)
        return rc;
    if ((val = json_object_get(v, "signed")) && (rc = compile_signed(h, val, ce)) < 0)
        return rc;
    int has_id = 0;
    for (size_t i = 0; i < h->nparts; i++)
        has_id |= h->parts[i] == HOOK_PART_ID;
    if ((rc = compile_part_header(h->id_header, v, "idHeader", has_id, "id", ce)) < 0)
        return rc;
    return compile_part_header(h->ts_header, v, "timestampHeader", h->timed, "timestamp", ce);
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

/* The scheme named in def (default stripe) into [out] *sc, and every scheme-specific
 * key present checked against it. */
static int compile_scheme(json_t *def, enum hook_scheme *sc, const struct cerr *ce)
{
    int rc = compile_choice(def, "scheme", "scheme", &schemes[0].name, sizeof schemes[0], NSCHEMES,
                            HOOK_SCHEME_STRIPE, ce);
    if (rc < 0)
        return rc;
    *sc = (enum hook_scheme)rc;
    for (size_t i = 0; i < sizeof scheme_keys / sizeof scheme_keys[0]; i++)
        if (json_object_get(def, scheme_keys[i].key) && !(schemes[rc].keys & scheme_keys[i].bit))
            return bad(ce, scheme_keys[i].key, "%s does not apply to scheme %s", scheme_keys[i].key,
                       schemes[rc].name);
    if (*sc == HOOK_SCHEME_HMAC && !json_object_get(def, "hmac"))
        return bad(ce, "hmac", "scheme hmac needs an \"hmac\" object");
    return 0;
}

int hook_compile(json_t *def, struct hook **out, char *err, size_t errlen, char *target,
                 size_t targetlen)
{
    const struct cerr ce = {err, errlen, target, targetlen};
    struct hook *h = NULL;
    enum hook_scheme sc;
    char unused_header[HOOK_HEADER_NAME_MAX + 1];
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
    if ((rc = compile_scheme(def, &sc, &ce)) < 0)
        return rc;

    h = xcalloc(1, sizeof *h);
    h->tolerance = HOOK_TOLERANCE_DEFAULT;
    scheme_apply(h, sc);

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

    if ((v = json_object_get(def, "hmac")) && (rc = compile_hmac(h, v, &ce)) < 0)
        goto out;

    if ((v = json_object_get(def, "toleranceSeconds"))) {
        if (!h->timed) {
            rc = bad(&ce, "toleranceSeconds",
                     "toleranceSeconds needs a signed timestamp (hmac.signed \"timestamp\")");
            goto out;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > TOLERANCE_MAX) {
            rc = bad(&ce, "toleranceSeconds", "toleranceSeconds must be an integer 1..%d",
                     TOLERANCE_MAX);
            goto out;
        }
        h->tolerance = json_integer_value(v);
    }

    /* Checked so a stored definition stays valid, but never read: the header is not
     * signed, so it cannot be a replay key (see hook.h). */
    if ((v = json_object_get(def, "eventIdHeader")) &&
        (rc = compile_header(unused_header, v, "eventIdHeader", &ce)) < 0)
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
const char *hook_scheme_name(const struct hook *h)
{
    return schemes[h->scheme].name;
}
const char *hook_signature_header(const struct hook *h)
{
    return h->sig_header;
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
