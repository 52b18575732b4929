/* jscan.c - strict push scanner for JSON and NDJSON text; see jscan.h.
 *
 * One state machine over bytes. The state survives between jscan_feed() calls, so
 * nothing is ever buffered except what a token needs to be checked: the decoded text of
 * reported strings (bounded), and the significant digits of a number (bounded; only used
 * to decide the rare real number whose magnitude is right at DBL_MAX).
 *
 * Speed comes from three things: string contents are skipped eight bytes at a time
 * (SWAR) while they are plain ASCII; digits and whitespace are consumed in tight inner
 * loops; and events for tokens deeper than report_level are not emitted at all.
 *
 * Strictness follows RFC 8259 to the letter and jansson's number limits:
 *  - no leading zeros, no "1.", no ".5", no "+1", no NaN/Infinity, no comments,
 *    no trailing commas, no control characters in strings, only the eight escapes
 *    and \uXXXX, surrogate escapes only as a high+low pair;
 *  - UTF-8 per RFC 3629: no overlong forms, no encoded surrogates, nothing above
 *    U+10FFFF, no stray continuation bytes, no truncated sequences; no BOM;
 *  - integers (no fraction, no exponent) must fit int64, reals must stay finite
 *    under strtod (underflow to 0 is fine), and object keys may not contain \u0000,
 *    as jansson's json_loadb() demands (it is used on item data later). */
#include "util/jscan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"
#include "util/xmalloc.h"

enum {
    S_VALUE,      /* a value must come */
    S_ARR_FIRST,  /* after '[': a value or ']' */
    S_OBJ_FIRST,  /* after '{': a key or '}' */
    S_KEY,        /* after ',' in an object: a key */
    S_COLON,      /* after a key */
    S_AFTER,      /* after a value inside a container: ',' or the closing bracket */
    S_DONE,       /* JSON: the top-level value is complete; only whitespace may follow */
    S_LINE_START, /* NDJSON: at depth 0 before a value; blank lines allowed */
    S_LINE_END,   /* NDJSON: after a value; spaces, tabs, then the line end */
    S_CR,         /* NDJSON: after '\r', which must be followed by '\n' */
    S_STR,        /* inside a string */
    S_UTF8,       /* inside a string, within a multi-byte UTF-8 sequence */
    S_ESC,        /* after a backslash */
    S_U,          /* reading the hex digits of \uXXXX */
    S_SURR_BS,    /* after a high surrogate escape: '\\' must follow */
    S_SURR_U,     /* ... then 'u' */
    S_NUM_MINUS,  /* after '-' */
    S_NUM_ZERO,   /* integer part is "0" */
    S_NUM_INT,    /* in the integer part */
    S_NUM_DOT,    /* after '.' */
    S_NUM_FRAC,   /* in the fraction */
    S_NUM_E,      /* after 'e' */
    S_NUM_ESIGN,  /* after the exponent sign */
    S_NUM_EXP,    /* in the exponent */
    S_LIT,        /* inside true/false/null */
    S_ERROR
};

/* 1 for bytes a string may hold without further checks: ASCII from 0x20 up, except '"'
 * and '\\'. Bytes from 0x80 are 0: they are checked as UTF-8. */
/* clang-format off */
static const unsigned char plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};
/* clang-format on */

void jscan_init(struct jscan *sc, int ndjson, unsigned max_depth, int syntax_code,
                jscan_event_fn ev, void *ctx, int report_level)
{
    memset(sc, 0, offsetof(struct jscan, num_sig));
    sc->ev = ev;
    sc->ctx = ctx;
    sc->report_level = ev ? report_level : -1;
    sc->max_depth = max_depth;
    sc->syntax_code = syntax_code;
    sc->ndjson = ndjson;
    sc->line = 1;
    sc->err_byte = -1;
    sc->stack = sc->stack_inline;
    sc->stack_bits = sizeof sc->stack_inline * 8;
    sc->state = ndjson ? S_LINE_START : S_VALUE;
}

void jscan_release(struct jscan *sc)
{
    if (sc->stack != sc->stack_inline)
        free(sc->stack);
    sc->stack = sc->stack_inline;
    sc->stack_bits = sizeof sc->stack_inline * 8;
}

uint64_t jscan_column(const struct jscan *sc, uint64_t off)
{
    return off >= sc->line_start ? off - sc->line_start + 1 : 1;
}

void jscan_error_text(const struct jscan *sc, char *buf, size_t n)
{
    char what[16] = "";
    int b = sc->err_byte;
    if (b >= 0x21 && b < 0x7f && b != '\'')
        snprintf(what, sizeof what, " '%c'", b);
    else if (b >= 0)
        snprintf(what, sizeof what, " 0x%02X", (unsigned)b);
    snprintf(buf, n, "%s%s at line %llu, column %llu (byte %llu)",
             sc->err_msg ? sc->err_msg : "error", what, (unsigned long long)sc->line,
             (unsigned long long)jscan_column(sc, sc->err_off), (unsigned long long)sc->err_off);
}

/* ---- small helpers ---- */

static int fail(struct jscan *sc, const char *msg, uint64_t off, int byte)
{
    sc->err = sc->syntax_code;
    sc->err_msg = msg;
    sc->err_off = off;
    sc->err_byte = byte;
    sc->state = S_ERROR;
    return sc->err;
}

/* A callback stopped the scan: remember its code, positioned at the token. */
static int fail_cb(struct jscan *sc, int rc)
{
    sc->err = rc;
    sc->err_msg = NULL;
    sc->err_off = sc->tok_start;
    sc->err_byte = -2;
    sc->state = S_ERROR;
    return rc;
}

/* Whether tokens at the current depth are reported to the consumer. */
static inline int reported(const struct jscan *sc)
{
    return sc->report_level >= 0 && sc->depth <= (unsigned)sc->report_level;
}

static inline int emit(struct jscan *sc, enum jscan_event ev)
{
    return reported(sc) ? sc->ev(sc->ctx, sc, ev) : 0;
}

static void stack_grow(struct jscan *sc)
{
    size_t bytes = sc->stack_bits / 8;
    if (sc->stack == sc->stack_inline) {
        sc->stack = xmalloc(bytes * 2);
        memcpy(sc->stack, sc->stack_inline, bytes);
    } else {
        sc->stack = xrealloc(sc->stack, bytes * 2);
    }
    sc->stack_bits *= 2;
}

static inline void push(struct jscan *sc, int is_obj)
{
    unsigned i = sc->depth;
    if (i >= sc->stack_bits)
        stack_grow(sc);
    if (is_obj)
        sc->stack[i >> 3] |= (uint8_t)(1u << (i & 7));
    else
        sc->stack[i >> 3] &= (uint8_t) ~(1u << (i & 7));
    sc->depth = i + 1;
}

static inline int top_is_obj(const struct jscan *sc)
{
    unsigned i = sc->depth - 1;
    return (sc->stack[i >> 3] >> (i & 7)) & 1;
}

static inline void str_add(struct jscan *sc, const void *p, size_t n)
{
    if (sc->str_len + n > JSCAN_STR_MAX) {
        n = JSCAN_STR_MAX - sc->str_len;
        sc->str_overflow = 1;
    }
    memcpy(sc->str + sc->str_len, p, n);
    sc->str_len += n;
}

/* Appends code point cp as UTF-8 to the decoded string. */
static void str_add_cp(struct jscan *sc, uint32_t cp)
{
    char u[4];
    str_add(sc, u, utf8_encode(cp, u));
}

/* Sets the expectations for the continuation bytes after UTF-8 lead byte c (RFC 3629
 * table 4). Returns 0, or -1 if c cannot start a sequence. */
static inline int utf8_lead(struct jscan *sc, unsigned c)
{
    sc->u8_lo = 0x80;
    sc->u8_hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        sc->u8_need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        sc->u8_need = 2;
        if (c == 0xE0)
            sc->u8_lo = 0xA0; /* overlong */
        else if (c == 0xED)
            sc->u8_hi = 0x9F; /* U+D800..U+DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        sc->u8_need = 3;
        if (c == 0xF0)
            sc->u8_lo = 0x90; /* overlong */
        else if (c == 0xF4)
            sc->u8_hi = 0x8F; /* above U+10FFFF */
    } else {
        return -1;
    }
    return 0;
}

static inline int hexval(unsigned c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    return -1;
}

static void num_start(struct jscan *sc)
{
    sc->num_neg = sc->num_real = sc->num_exp_neg = 0;
    sc->num_ival = sc->num_int_digits = sc->num_frac_lz = sc->num_exp = 0;
    sc->num_nsig = 0;
    sc->num_sticky = 0;
}

static inline void num_sig_digit(struct jscan *sc, unsigned c)
{
    if (sc->num_nsig < JSCAN_NUM_DIGITS)
        sc->num_sig[sc->num_nsig++] = (char)c;
    else if (c != '0')
        sc->num_sticky = 1;
}

static inline void num_int_digit(struct jscan *sc, unsigned c)
{
    if (++sc->num_int_digits <= 19)
        sc->num_ival = sc->num_ival * 10 + (c - '0');
    num_sig_digit(sc, c);
}

static inline void num_frac_digit(struct jscan *sc, unsigned c)
{
    if (sc->num_nsig == 0 && c == '0')
        sc->num_frac_lz++; /* leading zeros of 0.000ddd only shift the exponent */
    else
        num_sig_digit(sc, c);
}

static inline void num_exp_digit(struct jscan *sc, unsigned c)
{
    /* Saturate: beyond 10^12 the answer (0 or overflow) no longer changes. */
    if (sc->num_exp < 1000000000000ULL)
        sc->num_exp = sc->num_exp * 10 + (c - '0');
}

/* A digit of a number's fraction (frac) or of its exponent. */
static inline void num_tail_digit(struct jscan *sc, int frac, unsigned c)
{
    if (frac)
        num_frac_digit(sc, c);
    else
        num_exp_digit(sc, c);
}

/* Takes the run of digits of a fraction (frac) or an exponent at p, up to end.
 * Returns where the run ends: end, or the first byte that is not a digit. */
static inline const unsigned char *num_tail_digits(struct jscan *sc, int frac,
                                                   const unsigned char *p, const unsigned char *end)
{
    for (; p < end && *p >= '0' && *p <= '9'; p++)
        num_tail_digit(sc, frac, *p);
    return p;
}

/* Checks a complete number against jansson's limits. Returns NULL or an error text. */
static const char *num_check(struct jscan *sc)
{
    if (!sc->num_real) {
        /* strtoll semantics: the text has no leading zeros, so length decides first. */
        if (sc->num_int_digits > 19)
            return "integer out of int64 range";
        if (sc->num_int_digits == 19 &&
            sc->num_ival > (sc->num_neg ? 9223372036854775808ULL : 9223372036854775807ULL))
            return "integer out of int64 range";
        return NULL;
    }
    if (sc->num_nsig == 0)
        return NULL; /* all digits are zero */
    /* value = 0.DDD x 10^e10 with D the significant digits */
    int64_t e10 = sc->num_int_digits ? (int64_t)sc->num_int_digits : -(int64_t)sc->num_frac_lz;
    e10 += sc->num_exp_neg ? -(int64_t)sc->num_exp : (int64_t)sc->num_exp;
    if (e10 <= 308)
        return NULL; /* < 1e308 < DBL_MAX */
    if (e10 >= 310)
        return "real number overflow"; /* >= 1e309 */
    /* Between 1e308 and 1e309: let strtod round exactly. The digits are written as an
     * integer mantissa (no '.', so the locale does not matter); a trailing '1' stands for
     * any nonzero digits dropped, which is enough to land on the right side of the
     * rounding boundary 2^1024 - 2^970 (309 significant digits). */
    char text[JSCAN_NUM_DIGITS + 16];
    size_t k = sc->num_nsig;
    memcpy(text, sc->num_sig, k);
    if (sc->num_sticky)
        text[k++] = '1';
    snprintf(text + k, sizeof text - k, "e%d", 309 - (int)k);
    double v = strtod(text, NULL);
    return isinf(v) ? "real number overflow" : NULL;
}

/* ---- the scanner ---- */

#define OFF(q) (sc->offset + (uint64_t)((q)-start))
#define VALUE_DONE() (sc->state = sc->depth ? S_AFTER : (sc->ndjson ? S_LINE_END : S_DONE))
#define FAIL(msg)                                                                                  \
    do {                                                                                           \
        rc = fail(sc, (msg), OFF(p), *p);                                                          \
        goto out;                                                                                  \
    } while (0)
/* Skips whitespace inside a value; leaves c = the next byte, or leaves the loop at the end
 * of the chunk. In NDJSON a line break cannot occur inside a value. */
#define SKIP_WS()                                                                                  \
    for (;;) {                                                                                     \
        if (p == end)                                                                              \
            goto out;                                                                              \
        c = *p;                                                                                    \
        if (c == ' ' || c == '\t') {                                                               \
            p++;                                                                                   \
        } else if (c == '\n' || c == '\r') {                                                       \
            if (sc->ndjson)                                                                        \
                FAIL("line break inside a value:");                                                \
            if (c == '\n') {                                                                       \
                sc->line++;                                                                        \
                sc->line_start = OFF(p) + 1;                                                       \
            }                                                                                      \
            p++;                                                                                   \
        } else {                                                                                   \
            break;                                                                                 \
        }                                                                                          \
    }

int jscan_feed(struct jscan *sc, const char *buf, size_t n, size_t *used)
{
    const unsigned char *const start = (const unsigned char *)buf;
    const unsigned char *p = start;
    const unsigned char *const end = n ? start + n : start;
    int rc = 0;
    unsigned c = 0;
    const char *bad;

    *used = 0;
    if (sc->err)
        return sc->err;
    if (n == 0)
        return 0; /* also keeps p + 0 away from a NULL p */
    while (p < end) {
        switch (sc->state) {
        case S_ARR_FIRST:
            SKIP_WS();
            if (c == ']')
                goto close;
            goto value;
        case S_VALUE:
            SKIP_WS();
        value:
            sc->tok_start = OFF(p);
            switch (c) {
            case '{':
            case '[':
                if (sc->depth >= sc->max_depth)
                    FAIL("nesting too deep:");
                rc = emit(sc, c == '{' ? JSCAN_OBJ_BEGIN : JSCAN_ARR_BEGIN);
                push(sc, c == '{');
                sc->state = c == '{' ? S_OBJ_FIRST : S_ARR_FIRST;
                p++;
                if (rc)
                    goto event_rc;
                break;
            case '"':
                sc->in_key = 0;
                sc->decoding = reported(sc) && sc->decode_values;
                sc->str_len = 0;
                sc->str_overflow = 0;
                sc->state = S_STR;
                p++;
                break;
            case '-':
                num_start(sc);
                sc->num_neg = 1;
                sc->state = S_NUM_MINUS;
                p++;
                break;
            case '0':
                num_start(sc);
                sc->state = S_NUM_ZERO;
                p++;
                break;
            case '1':
            case '2':
            case '3':
            case '4':
            case '5':
            case '6':
            case '7':
            case '8':
            case '9':
                num_start(sc);
                num_int_digit(sc, c);
                sc->state = S_NUM_INT;
                p++;
                break;
            case 't':
            case 'f':
            case 'n':
                sc->lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
                sc->lit_i = 1;
                sc->state = S_LIT;
                p++;
                break;
            default:
                FAIL(c == ']' ? "unexpected ']' (trailing comma?):" : "expected a value, found");
            }
            break;
        case S_OBJ_FIRST:
            SKIP_WS();
            if (c == '}')
                goto close;
            /* fall through */
        case S_KEY:
            SKIP_WS();
            if (c != '"')
                FAIL(c == '}' ? "unexpected '}' (trailing comma?):" : "expected a key, found");
            sc->tok_start = OFF(p);
            sc->in_key = 1;
            sc->decoding = reported(sc);
            sc->str_len = 0;
            sc->str_overflow = 0;
            sc->state = S_STR;
            p++;
            break;
        case S_COLON:
            SKIP_WS();
            if (c != ':')
                FAIL("expected ':', found");
            sc->state = S_VALUE;
            p++;
            break;
        case S_AFTER:
            SKIP_WS();
            if (c == ',') {
                sc->state = top_is_obj(sc) ? S_KEY : S_VALUE;
                p++;
                break;
            }
            if (c == '}' || c == ']') {
            close:
                if ((c == '}') != top_is_obj(sc))
                    FAIL("mismatched closing bracket");
                sc->depth--;
                sc->tok_start = OFF(p);
                sc->tok_end = sc->tok_start + 1;
                VALUE_DONE();
                p++;
                rc = emit(sc, c == '}' ? JSCAN_OBJ_END : JSCAN_ARR_END);
                if (rc)
                    goto event_rc;
                break;
            }
            FAIL(top_is_obj(sc) ? "expected ',' or '}', found" : "expected ',' or ']', found");
        case S_DONE:
            SKIP_WS();
            FAIL("unexpected data after the JSON value:");
        case S_LINE_START: /* NDJSON: blank lines before a value; */
        case S_LINE_END:   /* or the rest of a value's line */
            c = *p;
            if (c == ' ' || c == '\t') {
                p++;
            } else if (c == '\n') {
                sc->line++;
                sc->line_start = OFF(p) + 1;
                sc->state = S_LINE_START;
                p++;
            } else if (c == '\r') {
                sc->state = S_CR;
                p++;
            } else if (sc->state == S_LINE_START) {
                sc->state = S_VALUE;
            } else {
                FAIL("expected the end of the line after the value, found");
            }
            break;
        case S_CR:
            if (*p != '\n')
                FAIL("'\\r' not followed by '\\n'; found");
            sc->state = S_LINE_END; /* the '\n' ends the line */
            break;

        case S_STR: {
            const unsigned char *s = p;
            for (;;) {
                /* Eight bytes at a time while none is '"', '\\', < 0x20 or >= 0x80. */
                while (end - p >= 8) {
                    uint64_t x, y, z;
                    memcpy(&x, p, 8);
                    y = x ^ 0x2222222222222222ULL;
                    z = x ^ 0x5C5C5C5C5C5C5C5CULL;
                    uint64_t hit = ((x - 0x2020202020202020ULL) & ~x) |
                                   ((y - 0x0101010101010101ULL) & ~y) |
                                   ((z - 0x0101010101010101ULL) & ~z) | x;
                    if (hit & 0x8080808080808080ULL)
                        break;
                    p += 8;
                }
                while (p < end && plain[*p])
                    p++;
                if (p == end || *p < 0x80)
                    break;
                /* A multi-byte UTF-8 sequence: checked here, kept in the run. */
                if (utf8_lead(sc, *p) < 0)
                    FAIL("invalid UTF-8 byte");
                p++;
                while (sc->u8_need && p < end) {
                    if (*p < sc->u8_lo || *p > sc->u8_hi)
                        FAIL("invalid UTF-8 continuation byte");
                    sc->u8_lo = 0x80;
                    sc->u8_hi = 0xBF;
                    sc->u8_need--;
                    p++;
                }
                if (sc->u8_need) {
                    sc->state = S_UTF8;
                    break;
                }
            }
            if (sc->decoding)
                str_add(sc, s, (size_t)(p - s));
            if (p == end)
                break;
            c = *p;
            if (c == '"') {
                sc->tok_end = OFF(p) + 1;
                sc->str[sc->str_len] = '\0';
                p++;
                if (sc->in_key) {
                    sc->state = S_COLON;
                    rc = emit(sc, JSCAN_KEY);
                } else {
                    VALUE_DONE();
                    rc = emit(sc, JSCAN_STRING);
                }
                if (rc)
                    goto event_rc;
            } else if (c == '\\') {
                sc->state = S_ESC;
                p++;
            } else {
                FAIL("control character in string:");
            }
            break;
        }
        case S_UTF8:
            c = *p;
            if (c < sc->u8_lo || c > sc->u8_hi)
                FAIL("invalid UTF-8 continuation byte");
            sc->u8_lo = 0x80;
            sc->u8_hi = 0xBF;
            if (sc->decoding)
                str_add(sc, p, 1);
            if (--sc->u8_need == 0)
                sc->state = S_STR;
            p++;
            break;
        case S_ESC: {
            char d;
            switch (*p) {
            /* clang-format off */
            case '"': d = '"'; break;
            case '\\': d = '\\'; break;
            case '/': d = '/'; break;
            case 'b': d = '\b'; break;
            case 'f': d = '\f'; break;
            case 'n': d = '\n'; break;
            case 'r': d = '\r'; break;
            case 't': d = '\t'; break;
            /* clang-format on */
            case 'u':
                sc->esc_n = 0;
                sc->esc_cp = 0;
                sc->esc_hi = 0;
                sc->state = S_U;
                p++;
                continue;
            default:
                FAIL("invalid escape: backslash followed by");
            }
            if (sc->decoding)
                str_add(sc, &d, 1);
            sc->state = S_STR;
            p++;
            break;
        }
        case S_U: {
            int v = hexval(*p);
            if (v < 0)
                FAIL("invalid \\u escape: expected a hex digit, found");
            sc->esc_cp = sc->esc_cp * 16 + (uint32_t)v;
            p++;
            if (++sc->esc_n < 4)
                break;
            uint32_t cp = sc->esc_cp;
            if (sc->esc_hi) {
                if (cp < 0xDC00 || cp > 0xDFFF) {
                    p--;
                    FAIL("high surrogate escape not followed by a low surrogate; ends with");
                }
                cp = 0x10000 + ((sc->esc_hi - 0xD800) << 10) + (cp - 0xDC00);
            } else if (cp >= 0xD800 && cp <= 0xDBFF) {
                sc->esc_hi = cp;
                sc->state = S_SURR_BS;
                break;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                p--;
                FAIL("lone low surrogate escape; ends with");
            } else if (cp == 0 && sc->in_key) {
                /* Valid JSON, but jansson refuses NUL in keys even with JSON_ALLOW_NUL. */
                p--;
                FAIL("\\u0000 in an object key is not supported; ends with");
            }
            if (sc->decoding)
                str_add_cp(sc, cp);
            sc->state = S_STR;
            break;
        }
        case S_SURR_BS:
            if (*p != '\\')
                FAIL("high surrogate escape not followed by a low surrogate; found");
            sc->state = S_SURR_U;
            p++;
            break;
        case S_SURR_U:
            if (*p != 'u')
                FAIL("high surrogate escape not followed by a low surrogate; found");
            sc->esc_n = 0;
            sc->esc_cp = 0;
            sc->state = S_U;
            p++;
            break;

        case S_NUM_MINUS:
            c = *p;
            if (c == '0') {
                sc->state = S_NUM_ZERO;
            } else if (c >= '1' && c <= '9') {
                num_int_digit(sc, c);
                sc->state = S_NUM_INT;
            } else {
                FAIL("expected a digit after '-', found");
            }
            p++;
            break;
        case S_NUM_ZERO:
            c = *p;
            if (c >= '0' && c <= '9')
                FAIL("leading zero in number: found");
            goto int_end;
        case S_NUM_INT:
            while (p < end && (c = *p) >= '0' && c <= '9') {
                num_int_digit(sc, c);
                p++;
            }
            if (p == end)
                break;
        int_end:
            if (c == '.') {
                sc->num_real = 1;
                sc->state = S_NUM_DOT;
                p++;
                break;
            }
            if (c == 'e' || c == 'E') {
                sc->num_real = 1;
                sc->state = S_NUM_E;
                p++;
                break;
            }
            goto num_end;
        case S_NUM_FRAC:
            if ((p = num_tail_digits(sc, 1, p, end)) == end)
                break;
            c = *p;
            if (c == 'e' || c == 'E') {
                sc->state = S_NUM_E;
                p++;
                break;
            }
            goto num_end;
        case S_NUM_E:
            c = *p;
            if (c == '+' || c == '-') {
                sc->num_exp_neg = c == '-';
                sc->state = S_NUM_ESIGN;
                p++;
                break;
            }
            /* fall through */
        case S_NUM_ESIGN:
        case S_NUM_DOT: { /* the first digit of the exponent, or of the fraction */
            int frac = sc->state == S_NUM_DOT;
            c = *p;
            if (c < '0' || c > '9')
                FAIL(frac ? "expected a digit after '.', found"
                          : "expected a digit in the exponent, found");
            num_tail_digit(sc, frac, c);
            sc->state = frac ? S_NUM_FRAC : S_NUM_EXP;
            p++;
            break;
        }
        case S_NUM_EXP:
            if ((p = num_tail_digits(sc, 0, p, end)) == end)
                break;
            c = *p;
        num_end:
            /* The number ended at *p, which is not consumed here. */
            if ((bad = num_check(sc)) != NULL) {
                rc = fail(sc, bad, sc->tok_start, -2);
                goto out;
            }
            sc->tok_end = OFF(p);
            VALUE_DONE();
            rc = emit(sc, JSCAN_NUMBER);
            if (rc)
                goto event_rc;
            break;
        case S_LIT:
            while (sc->lit[sc->lit_i] && p < end) {
                if (*p != (unsigned char)sc->lit[sc->lit_i])
                    FAIL("invalid literal: found");
                sc->lit_i++;
                p++;
            }
            if (sc->lit[sc->lit_i] == '\0') {
                sc->tok_end = OFF(p);
                VALUE_DONE();
                rc = emit(sc, JSCAN_LITERAL);
                if (rc)
                    goto event_rc;
            }
            break;
        default: /* S_ERROR cannot be reached: sc->err is checked first */
            rc = fail(sc, "internal scanner error", OFF(p), -2);
            goto out;
        }
    }
    goto out;

event_rc:
    /* An event asked to pause (the token is complete) or to stop. */
    if (rc > 0)
        rc = 0;
    else
        fail_cb(sc, rc);
out:
    *used = (size_t)(p - start);
    sc->offset += *used;
    return rc;
}

int jscan_finish(struct jscan *sc)
{
    if (sc->err)
        return sc->err;
    switch (sc->state) {
    case S_NUM_ZERO:
    case S_NUM_INT:
    case S_NUM_FRAC:
    case S_NUM_EXP: {
        if (sc->depth)
            break;
        const char *bad = num_check(sc);
        if (bad)
            return fail(sc, bad, sc->tok_start, -2);
        sc->tok_end = sc->offset;
        sc->state = sc->ndjson ? S_LINE_END : S_DONE;
        int rc = emit(sc, JSCAN_NUMBER);
        if (rc < 0)
            return fail_cb(sc, rc);
        break;
    }
    default:
        break;
    }
    if (sc->state == S_DONE || sc->state == S_LINE_START || sc->state == S_LINE_END)
        return 0;
    return fail(sc, sc->state == S_CR ? "'\\r' not followed by '\\n'" : "unexpected end of input",
                sc->offset, -1);
}
