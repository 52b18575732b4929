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

static int compile_header(char dst[HOOK_HEADER_NAME_MAX + 1], json_t *v, const char *key,
                          const struct cerr *ce)
{
    if (!json_is_string(v) || !header_name_valid(json_string_value(v), json_string_length(v)))
        return bad(ce, key, "%s must be an HTTP header name (1..%d token characters)", key,
                   HOOK_HEADER_NAME_MAX);
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
