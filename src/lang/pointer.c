/* pointer.c - RFC 6901 JSON pointers; see pointer.h. */
#include "lang/pointer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

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
