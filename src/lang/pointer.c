/* pointer.c - RFC 6901 JSON pointers; see pointer.h. */
#include "lang/pointer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jscan.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

int pointer_check(const char *ptr, char *err, size_t errlen)
{
    size_t n = strlen(ptr);
    const char *why = NULL;
    if (n > POINTER_MAX_BYTES)
        why = "is longer than 256 bytes";
    else if (n && ptr[0] != '/')
        why = "must be empty or start with '/'";
    else if (!utf8_valid_text(ptr, n))
        why = "is not valid UTF-8";
    for (size_t i = 0; !why && i < n; i++)
        if (ptr[i] == '~' && ptr[i + 1] != '0' && ptr[i + 1] != '1')
            why = "has a '~' not followed by 0 or 1";
    if (why && err && errlen)
        snprintf(err, errlen, "the JSON pointer %s", why);
    return why ? -1 : 0;
}

/* The token p[0..n) unescaped into out (at least n + 1 bytes). */
static void unescape(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '~' && i + 1 < n) {
            out[o++] = p[i + 1] == '1' ? '/' : '~';
            i++;
        } else {
            out[o++] = p[i];
        }
    }
    out[o] = '\0';
}

static int index_of(const char *tok, size_t *out)
{
    size_t n = strlen(tok);
    if (n == 0 || n > 9 || (n > 1 && tok[0] == '0'))
        return -1;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return -1;
        v = v * 10 + (size_t)(tok[i] - '0');
    }
    *out = v;
    return 0;
}

json_t *pointer_get(json_t *root, const char *ptr)
{
    if (!root || pointer_check(ptr, NULL, 0) < 0)
        return NULL;
    char tok[POINTER_MAX_BYTES + 1];
    const char *p = ptr;
    json_t *v = root;
    while (v && *p == '/') {
        p++;
        size_t n = strcspn(p, "/");
        unescape(p, n, tok);
        p += n;
        size_t i;
        if (json_is_object(v))
            v = json_object_get(v, tok);
        else if (json_is_array(v) && index_of(tok, &i) == 0)
            v = json_array_get(v, i);
        else
            v = NULL;
    }
    return v;
}

/* ---- the array at a pointer, found in the text ------------------------------------------ */

#define MAX_TOKENS (POINTER_MAX_BYTES / 2 + 1)

struct frame {
    int is_obj;
    int on_path;   /* the container's own path is the pointer's first tokens */
    int key_match; /* object on the path: the pending member's name is the next token */
    int is_target; /* the array the pointer leads to (its latest occurrence) */
    size_t next;   /* array: the index of the next element */
};

struct finder {
    const char *text;
    char tok[MAX_TOKENS][POINTER_MAX_BYTES + 1];
    size_t tok_len[MAX_TOKENS];
    long tok_index[MAX_TOKENS]; /* canonical index, or -1 */
    size_t ntok;
    struct frame *frames;
    size_t nframes, cap;
    int kind; /* what the pointer led to, last occurrence: 0 nothing, 1 array, 2 other */
    struct pointer_text *out;
    size_t nout, capout;
    size_t elem_start; /* start of the element container being read */
};

/* Copies the checked JSON text s[0..n) into out without the whitespace outside strings;
 * returns the length written. */
static size_t compact(const char *s, size_t n, char *out)
{
    size_t o = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            out[o++] = c;
            if (c == '\\')
                out[o++] = s[++i];
            else if (c == '"')
                in_str = 0;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            out[o++] = c;
            in_str = c == '"';
        }
    }
    return o;
}

static void add_element(struct finder *f, size_t start, size_t end)
{
    if (f->nout == f->capout) {
        f->capout = f->capout ? 2 * f->capout : 16;
        f->out = xrealloc(f->out, f->capout * sizeof *f->out);
    }
    char *t = xmalloc(end - start + 1);
    size_t n = compact(f->text + start, end - start, t);
    t[n] = '\0';
    f->out[f->nout++] = (struct pointer_text){t, n};
}

static void drop_elements(struct finder *f)
{
    for (size_t i = 0; i < f->nout; i++)
        free(f->out[i].text);
    f->nout = 0;
}

static int on_token(void *ctx, struct jscan *sc, enum jscan_event ev)
{
    struct finder *f = ctx;
    size_t level = f->nframes; /* of the value that starts here */
    struct frame *parent = level ? &f->frames[level - 1] : NULL;
    switch (ev) {
    case JSCAN_KEY:
        if (parent->on_path && level - 1 < f->ntok)
            parent->key_match = !sc->str_overflow && sc->str_len == f->tok_len[level - 1] &&
                                !memcmp(sc->str, f->tok[level - 1], sc->str_len);
        return 0;
    case JSCAN_OBJ_END:
    case JSCAN_ARR_END: {
        /* a container ends: an element, when the array it is in is the target */
        if (--f->nframes && f->frames[f->nframes - 1].is_target)
            add_element(f, f->elem_start, (size_t)sc->tok_end);
        return 0;
    }
    default:
        break;
    }
    /* a value starts: is it on the pointer's path? */
    int on = 1;
    if (parent) {
        size_t t = level - 1;
        on = parent->on_path && t < f->ntok &&
             (parent->is_obj ? parent->key_match
                             : f->tok_index[t] >= 0 && (size_t)f->tok_index[t] == parent->next);
        if (!parent->is_obj)
            parent->next++;
    }
    int target = on && level == f->ntok;
    int container = ev == JSCAN_OBJ_BEGIN || ev == JSCAN_ARR_BEGIN;
    if (target) {
        drop_elements(f); /* a later occurrence of a member wins, as in a value */
        f->kind = ev == JSCAN_ARR_BEGIN ? 1 : 2;
    }
    if (parent && parent->is_target) {
        if (container)
            f->elem_start = (size_t)sc->tok_start;
        else
            add_element(f, (size_t)sc->tok_start, (size_t)sc->tok_end);
    }
    if (container) {
        if (f->nframes == f->cap) {
            f->cap = f->cap ? 2 * f->cap : 16;
            f->frames = xrealloc(f->frames, f->cap * sizeof *f->frames);
        }
        f->frames[f->nframes++] = (struct frame){.is_obj = ev == JSCAN_OBJ_BEGIN,
                                                 .on_path = on && level < f->ntok,
                                                 .is_target = target && ev == JSCAN_ARR_BEGIN};
    }
    return 0;
}

long pointer_array_texts(const char *text, size_t len, const char *ptr, struct pointer_text **out)
{
    *out = NULL;
    if (pointer_check(ptr, NULL, 0) < 0)
        return -1;
    struct finder *f = xcalloc(1, sizeof *f);
    f->text = text;
    for (const char *p = ptr; *p == '/';) {
        p++;
        size_t n = strcspn(p, "/"), i;
        unescape(p, n, f->tok[f->ntok]);
        f->tok_len[f->ntok] = strlen(f->tok[f->ntok]);
        f->tok_index[f->ntok] = index_of(f->tok[f->ntok], &i) == 0 ? (long)i : -1;
        f->ntok++;
        p += n;
    }
    struct jscan sc;
    /* tokens down to the elements of the array: what is deeper costs no events */
    jscan_init(&sc, 0, POINTER_SCAN_MAX_DEPTH, -1, on_token, f, (int)f->ntok + 1);
    size_t used;
    int rc = jscan_feed(&sc, text, len, &used);
    if (rc == 0)
        rc = jscan_finish(&sc);
    jscan_release(&sc);
    long n = -1;
    if (rc == 0 && f->kind == 1) {
        n = (long)f->nout;
        *out = f->out;
    } else {
        drop_elements(f);
        free(f->out);
    }
    free(f->frames);
    free(f);
    return n;
}
