/* template.c - "{{ path }}" templates; see template.h.
 *
 * Steps build strings (URLs, headers, titles) and whole JSON bodies from an item's
 * context through this file. Templates are short and checked once when a workflow is
 * defined (template_check / template_check_value), so rendering simply re-scans the
 * text: one scanner, scan_next(), serves checking, rendering and evaluation, which is
 * what keeps the three from disagreeing about the syntax. Strings are handled as
 * (pointer, length) so JSON strings with embedded NUL bytes render faithfully. */
#include "lang/template.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/path.h"
#include "util/errmsg.h"
#include "util/errors.h"
#include "util/jsonw.h"
#include "util/url.h"
#include "util/xmalloc.h"

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
                errmsg_set(err, errlen, "unclosed '{{' at offset %zu", open);
                return TOK_ERROR;
            }
            if (s[j] == '{' && s[j + 1] == '{') {
                errmsg_set(err, errlen, "'{{' inside the placeholder opened at offset %zu", open);
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
            errmsg_set(err, errlen, "bad placeholder at offset %zu: %s", open, why);
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
            errmsg_set(err, errlen, "'}}' without '{{' at offset %zu", j);
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
        errmsg_set(err, errlen, "no template");
        return -1;
    }
    return check_n(tpl, strlen(tpl), err, errlen);
}

/* ---- JSON text (util/jsonw.h) --------------------------------------------------- */

size_t template_json_len(json_t *v, size_t cap)
{
    return jsonw_len(v, cap);
}

void template_put_json(struct buf *b, json_t *v)
{
    jsonw_put(b, v);
}

/* Takes n bytes from *budget (NULL: unbounded); -1, *budget untouched, when it has
 * fewer. Callers charge before they append, so a value past the budget is never
 * built. */
static int charge(size_t *budget, size_t n)
{
    if (!budget)
        return 0;
    if (n > *budget)
        return -1;
    *budget -= n;
    return 0;
}

/* ---- rendering --------------------------------------------------------------- */

/* How rendered text is charged: as it is, percent-encoded (URLs, which is also how it
 * is written), or as it will be written inside a JSON string (eval: "\u0001" is six
 * bytes of the body though one of the text). */
enum enc { ENC_RAW, ENC_URL, ENC_JSON };

/* What n bytes of rendered text cost under enc. */
static size_t enc_len(enum enc enc, const char *s, size_t n)
{
    return enc == ENC_URL    ? url_encoded_len(s, n)
           : enc == ENC_JSON ? jsonw_str_len(s, n, SIZE_MAX - 1)
                             : n;
}

/* Appends the rendering of v, charged to budget first; -1 (nothing appended) when it
 * does not fit. */
static int put_value(struct buf *out, json_t *v, enum enc enc, size_t *budget)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (charge(budget, enc_len(enc, s, n)) < 0)
            return -1;
        if (enc == ENC_URL)
            url_encoden(out, s, n);
        else
            buf_append(out, s, n);
        return 0;
    }
    size_t left = budget ? *budget : SIZE_MAX - 1;
    size_t jl = template_json_len(v, left);
    if (jl > left)
        return -1;
    if (enc == ENC_RAW) {
        charge(budget, jl);
        template_put_json(out, v);
        return 0;
    }
    struct buf tmp = BUF_INIT; /* at most the budget: its length was checked */
    template_put_json(&tmp, v);
    int rc = charge(budget, enc_len(enc, tmp.data, tmp.len));
    if (rc == 0 && enc == ENC_URL)
        url_encoden(out, tmp.data, tmp.len);
    else if (rc == 0)
        buf_append(out, tmp.data, tmp.len);
    buf_release(&tmp);
    return rc;
}

static void too_large(char *err, size_t errlen, const char *p, size_t len, size_t left)
{
    if (p)
        errmsg_set(err, errlen, "the value of %.*s would pass the size limit (%zu bytes left)",
                   (int)len, p, left);
    else
        errmsg_set(err, errlen, "the rendered text would pass the size limit (%zu bytes left)",
                   left);
}

/* 0, -SLUICE_E_TEMPLATE_ERROR or -SLUICE_E_ITEM_TOO_LARGE (see template_render_within). */
static int render_n(const char *s, size_t n, json_t *ctx, enum enc enc, size_t *budget,
                    struct buf *out, char *err, size_t errlen)
{
    size_t mark = out->len, start = budget ? *budget : 0;
    struct scan sc = {s, n, 0};
    const char *p;
    size_t len;
    int rc;
    for (;;) {
        enum tok t = scan_next(&sc, &p, &len, err, errlen);
        if (t == TOK_END)
            return 0;
        if (t == TOK_TEXT) {
            if (charge(budget, enc_len(enc == ENC_JSON ? ENC_JSON : ENC_RAW, p, len)) < 0) {
                too_large(err, errlen, NULL, 0, *budget);
                rc = -SLUICE_E_ITEM_TOO_LARGE;
                goto fail;
            }
            buf_append(out, p, len);
            continue;
        }
        json_t *v = t == TOK_PATH ? path_getn(ctx, p, len) : NULL;
        rc = -SLUICE_E_TEMPLATE_ERROR;
        if (!v) {
            if (t == TOK_PATH)
                errmsg_set(err, errlen, "%.*s is missing", (int)len, p);
            goto fail;
        }
        if (put_value(out, v, enc, budget) < 0) {
            too_large(err, errlen, p, len, *budget);
            rc = -SLUICE_E_ITEM_TOO_LARGE;
            goto fail;
        }
    }
fail:
    out->len = mark;
    if (out->data)
        out->data[mark] = '\0';
    if (budget)
        *budget = start;
    return rc;
}

int template_render(const char *tpl, json_t *ctx, int url_encode, struct buf *out, char *err,
                    size_t errlen)
{
    return template_render_within(tpl, ctx, url_encode, NULL, out, err, errlen) < 0 ? -1 : 0;
}

int template_render_within(const char *tpl, json_t *ctx, int url_encode, size_t *budget,
                           struct buf *out, char *err, size_t errlen)
{
    if (!tpl) {
        errmsg_set(err, errlen, "no template");
        return -SLUICE_E_TEMPLATE_ERROR;
    }
    return render_n(tpl, strlen(tpl), ctx, url_encode ? ENC_URL : ENC_RAW, budget, out, err,
                    errlen);
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
    errmsg_set(err, errlen, "%s: %s", loc->data, msg);
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
        errmsg_set(err, errlen, "no template");
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

/* Sets *out to a new reference; 0, -SLUICE_E_TEMPLATE_ERROR or -SLUICE_E_ITEM_TOO_LARGE.
 * The budget is charged before each piece is built: member keys, punctuation and
 * rendered strings as template_put_json() writes them (escapes included), so what is
 * charged bounds the value's compact text. */
static int eval(json_t *tpl, json_t *ctx, size_t *budget, struct buf *loc, json_t **out, char *err,
                size_t errlen)
{
    const char *key, *p;
    size_t key_len, i, len, mark = loc->len;
    json_t *m, *v = NULL;
    int rc;
    *out = NULL;
    switch (json_typeof(tpl)) {
    case JSON_STRING: {
        const char *s = json_string_value(tpl);
        size_t n = json_string_length(tpl);
        if (single_placeholder(s, n, &p, &len)) {
            v = path_getn(ctx, p, len);
            if (!v) {
                errmsg_set(err, errlen, "%.*s is missing", (int)len, p);
                return -SLUICE_E_TEMPLATE_ERROR;
            }
            if (budget) {
                size_t jl = template_json_len(v, *budget);
                if (charge(budget, jl) < 0) {
                    too_large(err, errlen, p, len, *budget);
                    return -SLUICE_E_ITEM_TOO_LARGE;
                }
            }
            *out = json_deep_copy(v);
            if (!*out)
                errmsg_set(err, errlen, "out of memory");
            return *out ? 0 : -SLUICE_E_TEMPLATE_ERROR;
        }
        if (charge(budget, 2) < 0) {
            too_large(err, errlen, NULL, 0, *budget);
            return -SLUICE_E_ITEM_TOO_LARGE;
        }
        struct buf b = BUF_INIT;
        rc = render_n(s, n, ctx, ENC_JSON, budget, &b, err, errlen);
        if (rc == 0) {
            /* Valid UTF-8 pieces concatenate to valid UTF-8, so this only fails on
             * allocation. */
            *out = json_stringn(b.data ? b.data : "", b.len);
            if (!*out) {
                errmsg_set(err, errlen, "rendered text is not a valid JSON string");
                rc = -SLUICE_E_TEMPLATE_ERROR;
            }
        }
        buf_release(&b);
        return rc;
    }
    case JSON_OBJECT:
        if (charge(budget, 2) < 0)
            goto over;
        *out = json_object();
        json_object_keylen_foreach(tpl, key, key_len, m)
        {
            loc_key(loc, key, key_len);
            /* quotes, colon and comma around the key as the writer escapes it */
            if (charge(budget, jsonw_str_len(key, key_len, SIZE_MAX - 1) + 4) < 0)
                goto over;
            if ((rc = eval(m, ctx, budget, loc, &v, err, errlen)) < 0)
                goto fail;
            if (json_object_setn_new_nocheck(*out, key, key_len, v) < 0) {
                rc = -SLUICE_E_TEMPLATE_ERROR;
                goto fail;
            }
            loc_truncate(loc, mark);
        }
        return 0;
    case JSON_ARRAY:
        if (charge(budget, 2) < 0)
            goto over;
        *out = json_array();
        json_array_foreach(tpl, i, m)
        {
            loc_index(loc, i);
            if (charge(budget, 1) < 0)
                goto over;
            if ((rc = eval(m, ctx, budget, loc, &v, err, errlen)) < 0)
                goto fail;
            if (json_array_append_new(*out, v) < 0) {
                rc = -SLUICE_E_TEMPLATE_ERROR;
                goto fail;
            }
            loc_truncate(loc, mark);
        }
        return 0;
    default:
        if (budget && charge(budget, template_json_len(tpl, *budget)) < 0)
            goto over;
        /* A fresh copy rather than json_incref(): tpl may be shared between threads. */
        *out = json_copy(tpl);
        if (!*out) {
            errmsg_set(err, errlen, "out of memory");
            return -SLUICE_E_TEMPLATE_ERROR;
        }
        return 0;
    }
over:
    too_large(err, errlen, NULL, 0, *budget);
    rc = -SLUICE_E_ITEM_TOO_LARGE;
fail:
    json_decref(*out);
    *out = NULL;
    return rc;
}

json_t *template_eval(json_t *tpl, json_t *ctx, char *err, size_t errlen)
{
    json_t *out = NULL;
    template_eval_within(tpl, ctx, NULL, &out, err, errlen);
    return out;
}

int template_eval_within(json_t *tpl, json_t *ctx, size_t *budget, json_t **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (!tpl) {
        errmsg_set(err, errlen, "no template");
        return -SLUICE_E_TEMPLATE_ERROR;
    }
    struct buf loc = BUF_INIT;
    int rc = eval(tpl, ctx, budget, &loc, out, err, errlen);
    if (rc < 0)
        err_prefix(err, errlen, &loc);
    buf_release(&loc);
    return rc;
}
