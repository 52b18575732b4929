/* jsonw.c - the JSON text sluice writes for what it sends and keeps; see jsonw.h.
 *
 * The writer and its measure sit side by side and walk values the same way, so a
 * length checked against a limit is the length later written. */
#include "util/jsonw.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

/* Formats d into tmp; returns the length. */
static size_t fmt_real(double d, char tmp[64])
{
    /* Shortest of 15..17 significant digits that reads back exactly: 19.99 stays
     * "19.99" instead of jansson's "19.989999999999998". */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, 60, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    for (char *c = tmp; *c; c++)
        if (*c == ',') /* a locale's decimal comma */
            *c = '.';
    if (!strpbrk(tmp, ".eE"))
        strcat(tmp, ".0");
    return strlen(tmp);
}

static void put_real(struct buf *b, double d)
{
    char tmp[64];
    fmt_real(d, tmp);
    buf_puts(b, tmp);
}

/* The length of v in decimal, as buf_put_i64 writes it. */
static size_t int_len(long long v)
{
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    size_t n = v < 0 ? 2 : 1;
    while (u >= 10) {
        u /= 10;
        n++;
    }
    return n;
}

/* Adds n to *acc unless that passes cap (*acc <= cap on entry); -1 when it would. */
static int add_len(size_t *acc, size_t n, size_t cap)
{
    if (n > cap - *acc)
        return -1;
    *acc += n;
    return 0;
}

size_t jsonw_str_len(const char *s, size_t n, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k <= cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t u = utf8_char_len(s + i, n - i);
            if (u > 0) {
                k += u;
                i += u - 1;
            } else {
                k += 6; /* \ufffd */
            }
        } else if (c >= 0x20 && c != '"' && c != '\\') {
            k++;
        } else {
            k += c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' ? 2 : 6;
        }
    }
    return k > cap ? cap + 1 : k;
}

static int str_len(const char *s, size_t n, size_t *acc, size_t cap)
{
    if (n > cap || add_len(acc, 2, cap) < 0)
        return -1;
    return add_len(acc, jsonw_str_len(s, n, cap - *acc), cap);
}

static int json_len(json_t *v, size_t *acc, size_t cap)
{
    const char *key;
    size_t key_len, i;
    json_t *m;
    char tmp[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (add_len(acc, 2, cap) < 0)
            return -1;
        i = 0;
        json_object_keylen_foreach(v, key, key_len, m)
        {
            /* the comma before every member but the first, and the colon */
            if (add_len(acc, i++ ? 2 : 1, cap) < 0 || str_len(key, key_len, acc, cap) < 0 ||
                json_len(m, acc, cap) < 0)
                return -1;
        }
        return 0;
    case JSON_ARRAY:
        if (add_len(acc, 2, cap) < 0)
            return -1;
        json_array_foreach(v, i, m)
        {
            if (add_len(acc, i ? 1 : 0, cap) < 0 || json_len(m, acc, cap) < 0)
                return -1;
        }
        return 0;
    case JSON_STRING:
        return str_len(json_string_value(v), json_string_length(v), acc, cap);
    case JSON_INTEGER:
        return add_len(acc, int_len((long long)json_integer_value(v)), cap);
    case JSON_REAL:
        return add_len(acc, fmt_real(json_real_value(v), tmp), cap);
    case JSON_TRUE:
    case JSON_NULL:
        return add_len(acc, 4, cap);
    case JSON_FALSE:
        return add_len(acc, 5, cap);
    }
    return 0;
}

size_t jsonw_len(json_t *v, size_t cap)
{
    size_t acc = 0;
    if (cap == SIZE_MAX)
        cap--;
    return v && json_len(v, &acc, cap) < 0 ? cap + 1 : acc;
}

void jsonw_put(struct buf *b, json_t *v)
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
            jsonw_put(b, m);
        }
        buf_putc(b, '}');
        break;
    case JSON_ARRAY:
        buf_putc(b, '[');
        json_array_foreach(v, i, m)
        {
            if (i)
                buf_putc(b, ',');
            jsonw_put(b, m);
        }
        buf_putc(b, ']');
        break;
    case JSON_STRING:
        buf_json_str(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        buf_put_i64(b, (long long)json_integer_value(v));
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

char *jsonw_dump(json_t *v, size_t *len)
{
    struct buf b = BUF_INIT;
    if (v)
        jsonw_put(&b, v);
    return buf_detach(&b, len);
}
