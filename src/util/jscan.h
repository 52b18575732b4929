/* jscan.h - a strict push scanner for JSON text: ingest scans submit bodies with it and
 * util/jload.c builds values on it.
 *
 * jscan_feed() consumes bytes in chunks of any size and keeps all its state between
 * calls, so a UTF-8 sequence, an escape, a number or a literal may straddle chunk
 * boundaries. It checks RFC 8259 exactly (plus jansson's limits on numbers: integers
 * fit int64, reals do not overflow to infinity) and limits the nesting depth with a
 * bit stack instead of recursion. It allocates nothing per value: the only heap memory
 * is the depth stack once it outgrows the inline 128 levels.
 *
 * The consumer learns about structure through an event callback, but only for tokens at
 * a depth up to report_level (depth = number of enclosing containers), so the contents of
 * deep values cost no calls at all. Strings reported at those depths can be decoded into
 * sc->str (escapes resolved, UTF-8 as is), up to JSCAN_STR_MAX bytes.
 *
 * NDJSON mode: the text is a sequence of values, one per line; lines end in "\n" or
 * "\r\n", blank lines (spaces and tabs only) are skipped, and a value may not contain a
 * line break.
 *
 * Not thread-safe; one scanner per stream. */
#ifndef SLUICE_JSCAN_H
#define SLUICE_JSCAN_H

#include <stddef.h>
#include <stdint.h>

/* Decoded strings longer than this set str_overflow instead of growing. */
#define JSCAN_STR_MAX 4096
/* Significant digits kept per number: enough to decide overflow near DBL_MAX exactly. */
#define JSCAN_NUM_DIGITS 330

enum jscan_event {
    JSCAN_OBJ_BEGIN, /* '{' seen; depth = depth before it; tok_start = offset of '{' */
    JSCAN_OBJ_END,   /* '}' seen; depth = depth after it; [tok_start, tok_end) is the '}' */
    JSCAN_ARR_BEGIN, /* as OBJ_BEGIN for '[' */
    JSCAN_ARR_END,   /* as OBJ_END for ']' */
    JSCAN_KEY,       /* an object key ended; decoded in str/str_len; [tok_start, tok_end) */
    JSCAN_STRING,    /* a string value ended; decoded in str/str_len when decoding */
    JSCAN_NUMBER,    /* a number ended (and passed the range checks) */
    JSCAN_LITERAL    /* true, false or null ended */
};

struct jscan;

/* Event callback. Returns 0 to go on, JSCAN_PAUSE to make jscan_feed() return right after
 * this token (the consumer wants to look at the bytes consumed so far), or a negative code
 * to stop the scan with that error. For a number the delimiter after it is not consumed. */
typedef int (*jscan_event_fn)(void *ctx, struct jscan *sc, enum jscan_event ev);
#define JSCAN_PAUSE 1

struct jscan {
    /* Configuration: set by jscan_init(); report_level and decode_values may change
     * between events. */
    jscan_event_fn ev;
    void *ctx;
    int report_level;   /* report tokens at depth <= this; -1 reports nothing */
    int decode_values;  /* decode string values (keys always) at reported depths */
    unsigned max_depth; /* containers open at once */
    int syntax_code;    /* negative code returned for malformed input */
    int ndjson;

    /* Position: offset is the absolute offset of the next byte to be fed. Lines are
     * 1-based; line_start is the offset of the first byte of the current line. */
    uint64_t offset;
    uint64_t line;
    uint64_t line_start;

    /* The token of the last event. */
    unsigned depth;
    uint64_t tok_start, tok_end;
    char str[JSCAN_STR_MAX + 4]; /* decoded string, NUL-terminated (may contain NUL) */
    size_t str_len;
    int str_overflow; /* the string was longer than JSCAN_STR_MAX; str holds a prefix */

    /* Error: set when a scan fails; sticky. */
    int err;             /* 0 or the negative code */
    const char *err_msg; /* static text for syntax errors, NULL for callback errors */
    uint64_t err_off;    /* offset of the offending byte (input length at the end) */
    int err_byte;        /* the offending byte, -1 at end of input */

    /* Internal state; see jscan.c. */
    int state;
    int in_key, decoding;
    uint8_t *stack; /* bit i set: container i is an object */
    size_t stack_bits;
    uint8_t stack_inline[16];
    unsigned u8_need;
    unsigned char u8_lo, u8_hi;
    unsigned esc_n;
    uint32_t esc_cp, esc_hi;
    const char *lit;
    unsigned lit_i;
    int num_neg, num_real, num_exp_neg, num_sig_in_int;
    uint64_t num_ival, num_int_digits, num_frac_lz, num_exp;
    size_t num_nsig;
    int num_sticky;
    char num_sig[JSCAN_NUM_DIGITS + 1];
};

/* Prepares sc for a new text. ev may be NULL (then report_level is ignored).
 * max_depth bounds open containers (0 allows scalars only); syntax_code is the
 * negative error returned for malformed input. Release with jscan_release(). */
void jscan_init(struct jscan *sc, int ndjson, unsigned max_depth, int syntax_code,
                jscan_event_fn ev, void *ctx, int report_level);
/* Frees the depth stack if it went to the heap. */
void jscan_release(struct jscan *sc);

/* Scans up to n bytes of p. Returns 0 with *used = bytes consumed (n unless an event
 * asked to pause), or a negative error code (sc->err; further calls return it again).
 * *used is always set. */
int jscan_feed(struct jscan *sc, const char *p, size_t n, size_t *used);

/* Ends the text: completes a trailing number and reports truncated input.
 * Returns 0 or the negative error code. */
int jscan_finish(struct jscan *sc);

/* 1-based column of an offset on the current line. */
uint64_t jscan_column(const struct jscan *sc, uint64_t off);

/* Writes a syntax error description such as
 * "unexpected ']' at line 3, column 17 (byte 58)" into buf (always NUL-terminated). */
void jscan_error_text(const struct jscan *sc, char *buf, size_t n);

#endif
