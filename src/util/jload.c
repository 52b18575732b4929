/* jload.c - JSON text to a jansson value on the jscan scanner; see jload.h.
 *
 * jscan checks the text and reports every token; this file only makes the values. Each
 * container goes into its parent as soon as it opens, so the root owns everything made
 * so far and one json_decref() cleans up after an error. The open containers are kept
 * as borrowed references on a stack. Strings come decoded from jscan up to its
 * JSCAN_STR_MAX bytes; a longer one is decoded here from its raw text, which jscan has
 * checked by then, so the decoding cannot meet a bad escape. */
#include "util/jload.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/jscan.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

/* jansson's JSON_PARSER_MAX_DEPTH counts every value on the way down, a scalar too: 2048
 * empty arrays nest, but a scalar goes inside 2047 at most. */
#define JLOAD_MAX_DEPTH 2048
#define E_SYNTAX (-1)
#define E_REFUSED (-2) /* what jansson refuses beyond the grammar: NUL in a key or string */

struct loader {
    const char *text;
    int allow_nul;
    json_t *root;
    json_t **open; /* open containers, innermost last (borrowed) */
    size_t nopen, cap;
    json_t *inline_open[32];
    char *key; /* the pending object key, decoded */
    size_t key_len, key_cap;
};

static unsigned hex4(const char *s)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* Decodes the contents of a checked JSON string (between its quotes) into out, which
 * holds at least n bytes: no escape makes text longer. Returns the decoded length. */
static size_t unescape(const char *s, size_t n, char *out)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c != '\\') {
            out[j++] = c;
            continue;
        }
        c = s[++i];
        switch (c) {
        case 'b':
            out[j++] = '\b';
            break;
        case 'f':
            out[j++] = '\f';
            break;
        case 'n':
            out[j++] = '\n';
            break;
        case 'r':
            out[j++] = '\r';
            break;
        case 't':
            out[j++] = '\t';
            break;
        case 'u': {
            uint32_t cp = hex4(s + i + 1);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00) { /* jscan let only a high+low pair through */
                cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(s + i + 3) - 0xDC00);
                i += 6;
            }
            j += utf8_encode(cp, out + j);
            break;
        }
        default:
            out[j++] = c; /* " \ / */
        }
    }
    return j;
}

/* The decoded text of the string or key just reported: jscan's, or decoded here when it
 * passed JSCAN_STR_MAX (*heap is then set, for the caller to free). */
static const char *decoded(struct loader *l, struct jscan *sc, size_t *len, char **heap)
{
    *heap = NULL;
    if (!sc->str_overflow) {
        *len = sc->str_len;
        return sc->str;
    }
    size_t n = (size_t)(sc->tok_end - sc->tok_start) - 2;
    *heap = xmalloc(n + 1);
    *len = unescape(l->text + sc->tok_start + 1, n, *heap);
    return *heap;
}

/* Puts v (stolen) where the text has it: the root, the open array's next element, or
 * the pending key of the open object. */
static int put(struct loader *l, json_t *v)
{
    if (!v)
        return E_REFUSED;
    if (l->nopen == JLOAD_MAX_DEPTH && !json_is_object(v) && !json_is_array(v)) {
        json_decref(v);
        return E_REFUSED;
    }
    if (!l->nopen) {
        l->root = v;
        return 0;
    }
    json_t *c = l->open[l->nopen - 1];
    int rc = json_is_array(c) ? json_array_append_new(c, v)
                              : json_object_setn_new_nocheck(c, l->key, l->key_len, v);
    return rc ? E_REFUSED : 0;
}

static json_t *number(const char *s, size_t n)
{
    char small[64];
    char *t = n < sizeof small ? small : xmalloc(n + 1);
    memcpy(t, s, n);
    t[n] = '\0';
    json_t *v = strpbrk(t, ".eE") ? json_real(strtod(t, NULL))
                                  : json_integer((json_int_t)strtoll(t, NULL, 10));
    if (t != small)
        free(t);
    return v;
}

static int on_token(void *ctx, struct jscan *sc, enum jscan_event ev)
{
    struct loader *l = ctx;
    const char *s;
    size_t n;
    char *heap;
    int rc;
    switch (ev) {
    case JSCAN_OBJ_BEGIN:
    case JSCAN_ARR_BEGIN: {
        json_t *v = ev == JSCAN_OBJ_BEGIN ? json_object() : json_array();
        if ((rc = put(l, v)) < 0)
            return rc;
        if (l->nopen == l->cap) {
            l->cap *= 2;
            if (l->open == l->inline_open) {
                l->open = xmalloc(l->cap * sizeof *l->open);
                memcpy(l->open, l->inline_open, sizeof l->inline_open);
            } else {
                l->open = xrealloc(l->open, l->cap * sizeof *l->open);
            }
        }
        l->open[l->nopen++] = v;
        return 0;
    }
    case JSCAN_OBJ_END:
    case JSCAN_ARR_END:
        l->nopen--;
        return 0;
    case JSCAN_KEY:
        s = decoded(l, sc, &n, &heap);
        if (memchr(s, '\0', n)) {
            free(heap);
            return E_REFUSED;
        }
        if (n + 1 > l->key_cap) {
            l->key_cap = n + 1 > 2 * l->key_cap ? n + 1 : 2 * l->key_cap;
            l->key = xrealloc(l->key, l->key_cap);
        }
        memcpy(l->key, s, n);
        l->key[n] = '\0';
        l->key_len = n;
        free(heap);
        return 0;
    case JSCAN_STRING:
        s = decoded(l, sc, &n, &heap);
        rc = !l->allow_nul && memchr(s, '\0', n) ? E_REFUSED : put(l, json_stringn_nocheck(s, n));
        free(heap);
        return rc;
    case JSCAN_NUMBER:
        return put(l, number(l->text + sc->tok_start, (size_t)(sc->tok_end - sc->tok_start)));
    case JSCAN_LITERAL: {
        char c = l->text[sc->tok_start];
        return put(l, c == 't' ? json_true() : c == 'f' ? json_false() : json_null());
    }
    }
    return 0;
}

json_t *jload(const char *text, size_t len, int flags)
{
    struct loader l = {.text = text, .allow_nul = flags & JLOAD_ALLOW_NUL};
    l.open = l.inline_open;
    l.cap = sizeof l.inline_open / sizeof l.inline_open[0];
    struct jscan sc;
    jscan_init(&sc, 0, JLOAD_MAX_DEPTH, E_SYNTAX, on_token, &l, JLOAD_MAX_DEPTH);
    sc.decode_values = 1;
    size_t used;
    int rc = jscan_feed(&sc, text, len, &used);
    if (rc == 0)
        rc = jscan_finish(&sc);
    jscan_release(&sc);
    if (l.open != l.inline_open)
        free(l.open);
    free(l.key);
    if (rc < 0 || !l.root) {
        json_decref(l.root);
        return NULL;
    }
    return l.root;
}
