/* template.c - "{{ path }}" templates; see template.h.
 *
 * Steps build strings (URLs, headers, titles) and whole JSON bodies from an item's
 * context through this file. Templates are short and checked once when a workflow is
 * defined (template_check / template_check_value), so rendering simply re-scans the
 * text: one scanner, scan_next(), serves checking, rendering and evaluation, which is
 * what keeps the three from disagreeing about the syntax. Strings are handled as
 * (pointer, length) so JSON strings with embedded NUL bytes render faithfully. */
#include "steps/template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steps/path.h"
#include "util/xmalloc.h"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- scanning ---------------------------------------------------------------- */

enum tok { TOK_END, TOK_TEXT, TOK_PATH, TOK_ERROR };

struct scan {
    const char *s;
    size_t n;
    size_t pos;
};

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Returns the next token: TOK_TEXT with the literal slice, TOK_PATH with the trimmed
 * path slice (already checked), TOK_END, or TOK_ERROR with a message in err. */
static enum tok scan_next(struct scan *sc, const char **p, size_t *len, char *err, size_t errlen)
{
    const char *s = sc->s;
    size_t n = sc->n, i = sc->pos;
    if (i >= n)
        return TOK_END;
    if (i + 1 < n && s[i] == '{' && s[i + 1] == '{') {
        size_t open = i, j = i + 2;
        for (;; j++) {
            if (j + 1 >= n) {
                seterr(err, errlen, "unclosed '{{' at offset %zu", open);
                return TOK_ERROR;
            }
            if (s[j] == '{' && s[j + 1] == '{') {
                seterr(err, errlen, "'{{' inside the placeholder opened at offset %zu", open);
                return TOK_ERROR;
            }
            if (s[j] == '}' && s[j + 1] == '}')
                break;
        }
        size_t a = open + 2, b = j;
        while (a < b && is_ws(s[a]))
            a++;
        while (b > a && is_ws(s[b - 1]))
            b--;
        char why[128];
        if (path_checkn(s + a, b - a, why, sizeof why) < 0) {
            seterr(err, errlen, "bad placeholder at offset %zu: %s", open, why);
            return TOK_ERROR;
        }
        *p = s + a;
        *len = b - a;
        sc->pos = j + 2;
        return TOK_PATH;
    }
    size_t j = i;
    for (; j < n; j++) {
        if (j + 1 < n && s[j] == '{' && s[j + 1] == '{')
            break;
        if (j + 1 < n && s[j] == '}' && s[j + 1] == '}') {
            seterr(err, errlen, "'}}' without '{{' at offset %zu", j);
            return TOK_ERROR;
        }
    }
    *p = s + i;
    *len = j - i;
    sc->pos = j;
    return TOK_TEXT;
}

static int check_n(const char *s, size_t n, char *err, size_t errlen)
{
    struct scan sc = {s, n, 0};
    const char *p;
    size_t len;
    enum tok t;
    while ((t = scan_next(&sc, &p, &len, err, errlen)) != TOK_END)
        if (t == TOK_ERROR)
            return -1;
    return 0;
}

int template_check(const char *tpl, char *err, size_t errlen)
{
    if (!tpl) {
        seterr(err, errlen, "no template");
        return -1;
    }
    return check_n(tpl, strlen(tpl), err, errlen);
}

/* ---- JSON text --------------------------------------------------------------- */

static void put_real(struct buf *b, double d)
{
    char tmp[64];
    /* Shortest of 15..17 significant digits that reads back exactly: 19.99 stays
     * "19.99" instead of jansson's "19.989999999999998". */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    for (char *c = tmp; *c; c++)
        if (*c == ',') /* a locale's decimal comma */
            *c = '.';
    buf_puts(b, tmp);
    if (!strpbrk(tmp, ".eE"))
        buf_puts(b, ".0");
}

void template_put_json(struct buf *b, json_t *v)
{
    const char *key;
    size_t key_len, i;
    json_t *m;
    int first = 1;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        buf_putc(b, '{');
        json_object_keylen_foreach(v, key, key_len, m)
        {
            if (!first)
                buf_putc(b, ',');
            first = 0;
            buf_json_str(b, key, key_len);
            buf_putc(b, ':');
            template_put_json(b, m);
        }
        buf_putc(b, '}');
        break;
    case JSON_ARRAY:
        buf_putc(b, '[');
        json_array_foreach(v, i, m)
        {
            if (i)
                buf_putc(b, ',');
            template_put_json(b, m);
        }
        buf_putc(b, ']');
        break;
    case JSON_STRING:
        buf_json_str(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        put_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        buf_puts(b, "true");
        break;
    case JSON_FALSE:
        buf_puts(b, "false");
        break;
    case JSON_NULL:
        buf_puts(b, "null");
        break;
    }
}

/* ---- rendering --------------------------------------------------------------- */

static void pct_encode(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            buf_putc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_append(b, e, 3);
        }
    }
}

static void put_value(struct buf *out, json_t *v, int url_encode)
{
    if (json_is_string(v)) {
        if (url_encode)
            pct_encode(out, json_string_value(v), json_string_length(v));
        else
            buf_append(out, json_string_value(v), json_string_length(v));
        return;
    }
    if (!url_encode) {
        template_put_json(out, v);
        return;
    }
    struct buf tmp = BUF_INIT;
    template_put_json(&tmp, v);
    pct_encode(out, tmp.data, tmp.len);
    buf_release(&tmp);
}

static int render_n(const char *s, size_t n, json_t *ctx, int url_encode, struct buf *out,
                    char *err, size_t errlen)
{
    size_t mark = out->len;
    struct scan sc = {s, n, 0};
    const char *p;
    size_t len;
    for (;;) {
        enum tok t = scan_next(&sc, &p, &len, err, errlen);
        if (t == TOK_END)
            return 0;
        if (t == TOK_TEXT) {
            buf_append(out, p, len);
            continue;
        }
        json_t *v = t == TOK_PATH ? path_getn(ctx, p, len) : NULL;
        if (!v) {
            if (t == TOK_PATH)
                seterr(err, errlen, "%.*s is missing", (int)len, p);
            out->len = mark;
            if (out->data)
                out->data[mark] = '\0';
            return -1;
        }
        put_value(out, v, url_encode);
    }
}

int template_render(const char *tpl, json_t *ctx, int url_encode, struct buf *out, char *err,
                    size_t errlen)
{
    if (!tpl) {
        seterr(err, errlen, "no template");
        return -1;
    }
    return render_n(tpl, strlen(tpl), ctx, url_encode, out, err, errlen);
}

/* ---- JSON values ------------------------------------------------------------- */

/* Appends a location step to loc: ".key" (or "key" at the start) or "[i]". */
static void loc_key(struct buf *loc, const char *key, size_t key_len)
{
    if (loc->len)
        buf_putc(loc, '.');
    buf_append(loc, key, key_len);
}

static void loc_index(struct buf *loc, size_t i)
{
    buf_printf(loc, "[%zu]", i);
}

static void loc_truncate(struct buf *loc, size_t len)
{
    loc->len = len;
    if (loc->data)
        loc->data[len] = '\0';
}

/* Prefixes the message already in err with "loc: " when loc is not empty. */
static void err_prefix(char *err, size_t errlen, const struct buf *loc)
{
    if (!err || errlen == 0 || loc->len == 0)
        return;
    char *msg = xstrdup(err);
    seterr(err, errlen, "%s: %s", loc->data, msg);
    free(msg);
}

static int check_value(json_t *tpl, struct buf *loc, char *err, size_t errlen)
{
    const char *key;
    size_t key_len, i, mark = loc->len;
    json_t *m;
    switch (json_typeof(tpl)) {
    case JSON_STRING:
        return check_n(json_string_value(tpl), json_string_length(tpl), err, errlen);
    case JSON_OBJECT:
        json_object_keylen_foreach(tpl, key, key_len, m)
        {
            loc_key(loc, key, key_len);
            if (check_value(m, loc, err, errlen) < 0)
                return -1;
            loc_truncate(loc, mark);
        }
        return 0;
    case JSON_ARRAY:
        json_array_foreach(tpl, i, m)
        {
            loc_index(loc, i);
            if (check_value(m, loc, err, errlen) < 0)
                return -1;
            loc_truncate(loc, mark);
        }
        return 0;
    default:
        return 0;
    }
}

int template_check_value(json_t *tpl, char *err, size_t errlen, char *where, size_t wherelen)
{
    struct buf loc = BUF_INIT;
    if (where && wherelen)
        where[0] = '\0';
    int rc = tpl ? check_value(tpl, &loc, err, errlen) : -1;
    if (!tpl)
        seterr(err, errlen, "no template");
    if (rc < 0 && where && wherelen)
        snprintf(where, wherelen, "%s", buf_cstr(&loc));
    buf_release(&loc);
    return rc;
}

/* When s is exactly one placeholder, sets the path slice and returns 1. */
static int single_placeholder(const char *s, size_t n, const char **p, size_t *len)
{
    struct scan sc = {s, n, 0};
    if (n < 4 || s[0] != '{' || s[1] != '{')
        return 0;
    if (scan_next(&sc, p, len, NULL, 0) != TOK_PATH)
        return 0;
    return sc.pos == n;
}

static json_t *eval(json_t *tpl, json_t *ctx, struct buf *loc, char *err, size_t errlen)
{
    const char *key, *p;
    size_t key_len, i, len, mark = loc->len;
    json_t *m, *out = NULL;
    switch (json_typeof(tpl)) {
    case JSON_STRING: {
        const char *s = json_string_value(tpl);
        size_t n = json_string_length(tpl);
        if (single_placeholder(s, n, &p, &len)) {
            json_t *v = path_getn(ctx, p, len);
            if (!v) {
                seterr(err, errlen, "%.*s is missing", (int)len, p);
                return NULL;
            }
            out = json_deep_copy(v);
            if (!out)
                seterr(err, errlen, "out of memory");
            return out;
        }
        struct buf b = BUF_INIT;
        if (render_n(s, n, ctx, 0, &b, err, errlen) == 0) {
            /* Valid UTF-8 pieces concatenate to valid UTF-8, so this only fails on
             * allocation. */
            out = json_stringn(b.data ? b.data : "", b.len);
            if (!out)
                seterr(err, errlen, "rendered text is not a valid JSON string");
        }
        buf_release(&b);
        return out;
    }
    case JSON_OBJECT:
        out = json_object();
        if (!out)
            break;
        json_object_keylen_foreach(tpl, key, key_len, m)
        {
            loc_key(loc, key, key_len);
            json_t *v = eval(m, ctx, loc, err, errlen);
            if (!v || json_object_setn_new_nocheck(out, key, key_len, v) < 0) {
                json_decref(out);
                return NULL;
            }
            loc_truncate(loc, mark);
        }
        return out;
    case JSON_ARRAY:
        out = json_array();
        if (!out)
            break;
        json_array_foreach(tpl, i, m)
        {
            loc_index(loc, i);
            json_t *v = eval(m, ctx, loc, err, errlen);
            if (!v || json_array_append_new(out, v) < 0) {
                json_decref(out);
                return NULL;
            }
            loc_truncate(loc, mark);
        }
        return out;
    default:
        /* A fresh copy rather than json_incref(): tpl may be shared between threads. */
        out = json_copy(tpl);
        break;
    }
    if (!out)
        seterr(err, errlen, "out of memory");
    return out;
}

json_t *template_eval(json_t *tpl, json_t *ctx, char *err, size_t errlen)
{
    if (!tpl) {
        seterr(err, errlen, "no template");
        return NULL;
    }
    struct buf loc = BUF_INIT;
    json_t *out = eval(tpl, ctx, &loc, err, errlen);
    if (!out)
        err_prefix(err, errlen, &loc);
    buf_release(&loc);
    return out;
}
