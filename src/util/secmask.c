/* secmask.c - masking the renderings of secret values; see secmask.h.
 * Needles are computed once per value when it is added, longest first, so a longer
 * rendering (the JSON-escaped form) is replaced before a shorter one inside it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "util/secmask.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/jsonw.h"
#include "util/xmalloc.h"

struct secmask {
    char **needles; /* heap strings, sorted by length, longest first */
    size_t n, cap;
};

struct secmask *secmask_new(void)
{
    return xcalloc(1, sizeof(struct secmask));
}

void secmask_free(struct secmask *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        memset(m->needles[i], 0, strlen(m->needles[i]));
        free(m->needles[i]);
    }
    free(m->needles);
    free(m);
}

int secmask_empty(const struct secmask *m)
{
    return !m || m->n == 0;
}

/* Adds one needle (stolen), keeping the order and no duplicates. */
static void add_needle(struct secmask *m, char *s)
{
    size_t len = strlen(s);
    if (len < SECMASK_MIN_LEN) {
        free(s);
        return;
    }
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->needles[i], s)) {
            free(s);
            return;
        }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->needles = xrealloc(m->needles, m->cap * sizeof *m->needles);
    }
    size_t at = m->n;
    while (at > 0 && strlen(m->needles[at - 1]) < len)
        at--;
    memmove(m->needles + at + 1, m->needles + at, (m->n - at) * sizeof *m->needles);
    m->needles[at] = s;
    m->n++;
}

static char *pct(const char *v, int upper, int plus)
{
    static const char up[] = "0123456789ABCDEF", lo[] = "0123456789abcdef";
    const char *hex = upper ? up : lo;
    struct buf b = BUF_INIT;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            buf_putc(&b, (char)c);
        } else if (c == ' ' && plus) {
            buf_putc(&b, '+');
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_append(&b, e, 3);
        }
    }
    return buf_detach(&b, NULL);
}

/* s without its first and last character (the quotes of a dumped JSON string). */
static char *unquote(char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *r = n >= 2 ? xstrndup(s + 1, n - 2) : xstrdup("");
    free(s);
    return r;
}

/* The same text with the hex digits of every \uXXXX in lower case. */
static char *lower_u(const char *s)
{
    char *r = xstrdup(s);
    for (char *p = r; (p = strstr(p, "\\u")) != NULL; p += 2)
        for (int i = 2; i < 6 && p[i]; i++)
            if (p[i] >= 'A' && p[i] <= 'F')
                p[i] = (char)(p[i] - 'A' + 'a');
    return r;
}

static char *b64(const unsigned char *p, size_t n, int url, int pad)
{
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *a = url ? safe : std;
    struct buf b = BUF_INIT;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        char e[4] = {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63]};
        buf_append(&b, e, 4);
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        buf_putc(&b, a[v >> 18]);
        buf_putc(&b, a[(v >> 12) & 63]);
        if (pad)
            buf_puts(&b, "==");
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        buf_putc(&b, a[v >> 18]);
        buf_putc(&b, a[(v >> 12) & 63]);
        buf_putc(&b, a[(v >> 6) & 63]);
        if (pad)
            buf_putc(&b, '=');
    }
    return buf_detach(&b, NULL);
}

void secmask_add(struct secmask *m, const char *value)
{
    size_t n = value ? strlen(value) : 0;
    if (n < SECMASK_MIN_LEN)
        return;
    add_needle(m, xstrdup(value));
    for (int upper = 0; upper < 2; upper++)
        for (int plus = 0; plus < 2; plus++)
            add_needle(m, pct(value, upper, plus));
    /* JSON: jansson's renderings (when the value is UTF-8), and buf_json_str's. */
    json_t *js = json_string(value);
    if (js) {
        static const size_t flags[] = {0, JSON_ESCAPE_SLASH, JSON_ENSURE_ASCII,
                                       JSON_ESCAPE_SLASH | JSON_ENSURE_ASCII};
        for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
            char *e = unquote(json_dumps(js, JSON_ENCODE_ANY | flags[i]));
            add_needle(m, lower_u(e));
            add_needle(m, e);
        }
        json_decref(js);
    }
    struct buf jb = BUF_INIT;
    buf_json_str(&jb, value, n);
    add_needle(m, unquote(buf_detach(&jb, NULL)));
    /* base64: the value alone, then its whole 3-byte groups at each alignment inside a
     * longer text (too short a run would mask unrelated text: at least 8 characters). */
    const unsigned char *u = (const unsigned char *)value;
    for (int url = 0; url < 2; url++) {
        add_needle(m, b64(u, n, url, 1));
        add_needle(m, b64(u, n, url, 0));
        for (size_t k = 0; k < 3 && k < n; k++) {
            size_t whole = (n - k) / 3 * 3;
            if (whole >= 6)
                add_needle(m, b64(u + k, whole, url, 0));
        }
    }
}

int secmask_hit(const struct secmask *m, const char *text, size_t n)
{
    if (!m || !text)
        return 0;
    for (size_t i = 0; i < m->n; i++)
        if (memmem(text, n, m->needles[i], strlen(m->needles[i])))
            return 1;
    return 0;
}

/* text (n bytes) with the needles replaced, appended to out. */
static void mask_into(const struct secmask *m, const char *text, size_t n, struct buf *out)
{
    struct buf cur = BUF_INIT, next = BUF_INIT;
    buf_append(&cur, text, n);
    for (size_t i = 0; i < m->n; i++) {
        const char *nd = m->needles[i];
        size_t nl = strlen(nd);
        if (!cur.len || !memmem(cur.data, cur.len, nd, nl))
            continue;
        buf_reset(&next);
        size_t at = 0;
        const char *hit;
        while ((hit = memmem(cur.data + at, cur.len - at, nd, nl)) != NULL) {
            size_t off = (size_t)(hit - cur.data);
            buf_append(&next, cur.data + at, off - at);
            buf_puts(&next, SECMASK_TEXT);
            at = off + nl;
        }
        buf_append(&next, cur.data + at, cur.len - at);
        struct buf t = cur;
        cur = next;
        next = t;
    }
    buf_append(out, cur.data ? cur.data : "", cur.len);
    buf_release(&cur);
    buf_release(&next);
}

char *secmask_text(const struct secmask *m, const char *text)
{
    if (!text)
        return NULL;
    struct buf b = BUF_INIT;
    if (secmask_empty(m) || !secmask_hit(m, text, strlen(text)))
        buf_puts(&b, text);
    else
        mask_into(m, text, strlen(text), &b);
    return buf_detach(&b, NULL);
}

static json_t *mask_str(const struct secmask *m, const char *s, size_t n)
{
    struct buf b = BUF_INIT;
    mask_into(m, s, n, &b);
    json_t *r = json_stringn_nocheck(b.data ? b.data : "", b.len);
    buf_release(&b);
    return r;
}

/* A copy of v with every string and key masked. */
static json_t *mask_value(const struct secmask *m, json_t *v)
{
    if (json_is_string(v))
        return mask_str(m, json_string_value(v), json_string_length(v));
    if (json_is_array(v)) {
        json_t *a = json_array(), *e;
        size_t i;
        json_array_foreach(v, i, e) json_array_append_new(a, mask_value(m, e));
        return a;
    }
    if (json_is_object(v)) {
        json_t *o = json_object(), *e;
        const char *k;
        json_object_foreach(v, k, e)
        {
            json_t *mk = mask_str(m, k, strlen(k));
            json_object_set_new_nocheck(o, json_string_value(mk), mask_value(m, e));
            json_decref(mk);
        }
        return o;
    }
    return json_incref(v);
}

char *secmask_json(const struct secmask *m, const char *text)
{
    if (!text)
        return NULL;
    if (secmask_empty(m) || !secmask_hit(m, text, strlen(text)))
        return xstrdup(text);
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v)
        return secmask_text(m, text);
    json_t *mv = mask_value(m, v);
    /* The pipeline's writer: masking must not lengthen the reals of a result or a
     * document checked against the item size limit (jansson writes 17 digits). */
    char *out = jsonw_dump(mv, NULL);
    json_decref(mv);
    json_decref(v);
    /* A needle split across escapes in the writer's output (rare) is caught here. */
    if (secmask_hit(m, out, strlen(out))) {
        char *t = secmask_text(m, out);
        free(out);
        out = t;
    }
    return out;
}

void secmask_inplace(const struct secmask *m, char *s, size_t cap)
{
    if (!s || cap == 0 || secmask_empty(m) || !secmask_hit(m, s, strlen(s)))
        return;
    char *t = secmask_text(m, s);
    size_t n = strlen(t);
    if (n > cap - 1)
        n = cap - 1;
    memcpy(s, t, n);
    s[n] = '\0';
    free(t);
}
