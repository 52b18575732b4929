/* test_ingest_jansson.c - differential test of src/ingest against jansson.
 *
 * sluice accepts a submit body with ingest and later parses each item's data with
 * jansson (json_loadb with JSON_DECODE_ANY | JSON_ALLOW_NUL). If ingest accepted a text
 * jansson refuses, an item answered with 202 would fail later on its encoding. So:
 *  - everything ingest accepts, jansson must accept (hard requirement);
 *  - where jansson accepts and ingest rejects, the reason must be a documented one:
 *    only the depth limit (ingest's max_depth; jansson's own limit is 2048).
 * util/jload.c, the parser of upstream answers and item data, is held to more: on every
 * text it gives jansson's value exactly or refuses what jansson refuses.
 * The texts are generated JSON values (deterministic PRNG) and mutations of them: byte
 * flips, truncations, deletions and insertions of tricky bytes, escapes and numbers. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "testhelp.h"
#include "util/buf.h"
#include "util/errors.h"
#include "util/jload.h"

#define DEPTH 64 /* ingest's depth limit for these texts */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}
static unsigned pick(unsigned n)
{
    return rnd() % n;
}

/* ---- generator of JSON values (valid, except numbers deliberately out of range) ---- */

static void gen_ws(struct buf *b)
{
    static const char ws[] = " \t\r\n";
    for (unsigned i = pick(4) ? 0 : pick(3); i > 0; i--)
        buf_putc(b, ws[pick(4)]);
}

static void gen_string(struct buf *b)
{
    static const char *const pieces[] = {"a",
                                         "ref",
                                         "data",
                                         " ",
                                         "xyz09",
                                         "\\\"",
                                         "\\\\",
                                         "\\/",
                                         "\\b",
                                         "\\f",
                                         "\\n",
                                         "\\r",
                                         "\\t",
                                         "\\u00e9",
                                         "\\u0000",
                                         "\\uD83D\\uDE00",
                                         "\\u20ac",
                                         "\\uFFFF",
                                         "\\u0041",
                                         "\\udbff\\udfff",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xf4\x8f\xbf\xbf",
                                         "\xc2\x80",
                                         "\xdf\xbf",
                                         "\xe0\xa0\x80",
                                         "\xef\xbf\xbf",
                                         "\xed\x9f\xbf",
                                         "\x7f",
                                         "0123456789abcdef"};
    buf_putc(b, '"');
    for (unsigned i = pick(6); i > 0; i--)
        buf_puts(b, pieces[pick(sizeof pieces / sizeof pieces[0])]);
    buf_putc(b, '"');
}

/* Keys: no \u0000 (jansson does not support NUL in keys; ingest rejects it too). */
static void gen_key(struct buf *b)
{
    static const char *const keys[] = {"\"a\"",   "\"ref\"",        "\"\\u0072ef\"",
                                       "\"\"",    "\"k\xc3\xa9y\"", "\"\\ud83d\\ude00\"",
                                       "\"data\""};
    buf_puts(b, keys[pick(sizeof keys / sizeof keys[0])]);
}

static void gen_number(struct buf *b)
{
    static const char *const fixed[] = {"0",
                                        "-0",
                                        "0.0",
                                        "-0.0",
                                        "1",
                                        "-1",
                                        "9223372036854775807",
                                        "-9223372036854775808",
                                        "9223372036854775808",
                                        "-9223372036854775809",
                                        "123456789012345678901",
                                        "1e308",
                                        "1.7976931348623157e308",
                                        "1.7976931348623159e308",
                                        "1e309",
                                        "-1e400",
                                        "1e-400",
                                        "4.9e-324",
                                        "2.5E+10",
                                        "0.000001",
                                        "100000000000000000000.5"};
    switch (pick(3)) {
    case 0:
        buf_puts(b, fixed[pick(sizeof fixed / sizeof fixed[0])]);
        break;
    case 1:
        buf_printf(b, "%s%u", pick(2) ? "-" : "", rnd() % 100000);
        break;
    default:
        buf_printf(b, "%s%u.%u%s%s%d", pick(2) ? "-" : "", rnd() % 1000, rnd() % 1000,
                   pick(2) ? "e" : "E", pick(3) == 0 ? "+" : "", (int)pick(800) - 400);
    }
}

static void gen_value(struct buf *b, int depth)
{
    unsigned r = pick(depth > 5 ? 5 : 9);
    gen_ws(b);
    switch (r) {
    case 0:
    case 1:
    case 2:
        gen_string(b);
        break;
    case 3:
        gen_number(b);
        break;
    case 4: {
        static const char *const lits[] = {"true", "false", "null"};
        buf_puts(b, lits[pick(3)]);
        break;
    }
    case 5:
    case 6: {
        buf_putc(b, '[');
        unsigned n = pick(4);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                buf_putc(b, ',');
            gen_value(b, depth + 1);
        }
        gen_ws(b);
        buf_putc(b, ']');
        break;
    }
    default: {
        buf_putc(b, '{');
        unsigned n = pick(4);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                buf_putc(b, ',');
            gen_ws(b);
            gen_key(b);
            gen_ws(b);
            buf_putc(b, ':');
            gen_value(b, depth + 1);
        }
        gen_ws(b);
        buf_putc(b, '}');
    }
    }
    gen_ws(b);
}

/* ---- mutations ---- */

static void mutate(struct buf *b)
{
    static const char tricky_bytes[] = "\x00\x1f\x7f\x80\xbf\xc0\xc1\xc2\xe0\xed\xef\xf0\xf4\xf5"
                                       "\xff\"\\{}[],:0-.eEu+ \n";
    static const char *const inserts[] = {"\\u",
                                          "\\ud800",
                                          "\\udc00",
                                          "\\ud800\\udc00",
                                          "\\u0000",
                                          "\xc0\x80",
                                          "\xed\xa0\x80",
                                          "\xf4\x90\x80\x80",
                                          "\xf0\x9f\x98\x80",
                                          "\xe2\x82",
                                          ",",
                                          "]",
                                          "}",
                                          "[",
                                          "{",
                                          "1e400",
                                          "1e-400",
                                          "-",
                                          "0",
                                          "01",
                                          ".",
                                          "e5",
                                          "\\",
                                          "\"",
                                          "\x1f",
                                          "\x7f",
                                          "\xef\xbb\xbf",
                                          "nul",
                                          "true",
                                          "9223372036854775808",
                                          " ",
                                          "\n",
                                          "\"\\u0000\":",
                                          "NaN",
                                          "/*",
                                          "'"};
    for (unsigned m = 1 + pick(3); m > 0; m--) {
        size_t len = b->len, pos = len ? pick((unsigned)len) : 0;
        switch (pick(5)) {
        case 0: /* flip a byte */
            if (len)
                b->data[pos] =
                    pick(2) ? (char)pick(256) : tricky_bytes[pick(sizeof tricky_bytes - 1)];
            break;
        case 1: /* truncate */
            b->len = pos;
            if (b->data)
                b->data[pos] = '\0';
            break;
        case 2: { /* delete a range */
            size_t k = 1 + pick(4);
            if (pos + k > len)
                k = len - pos;
            memmove(b->data + pos, b->data + pos + k, len - pos - k);
            b->len -= k;
            break;
        }
        default: { /* insert */
            const char *s = inserts[pick(sizeof inserts / sizeof inserts[0])];
            size_t k = strlen(s);
            if (s[0] == '\0')
                k = 1;
            buf_grow(b, k);
            memmove(b->data + pos + k, b->data + pos, len - pos);
            memcpy(b->data + pos, s, k);
            b->len += k;
            b->data[b->len] = '\0';
        }
        }
    }
}

/* ---- the comparison ---- */

struct tally {
    int both_ok, both_bad, ingest_only, jansson_only_depth, jansson_only_other, jload_differs;
};

static void dump(const char *why, const char *p, size_t n, const char *detail)
{
    fprintf(stderr, "%s (%s): ", why, detail);
    for (size_t i = 0; i < n && i < 300; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f)
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
}

/* util/jload.c builds values on the same scanner and must give exactly jansson's value
 * (same members in the same order) or refuse exactly what jansson refuses, with and
 * without JSON_ALLOW_NUL. Counts the texts where it does not. */
static int jload_differs(const char *p, size_t n)
{
    int bad = 0;
    for (int nul = 0; nul < 2; nul++) {
        json_t *theirs = json_loadb(p, n, JSON_DECODE_ANY | (nul ? JSON_ALLOW_NUL : 0), NULL);
        json_t *ours = jload(p, n, nul ? JLOAD_ALLOW_NUL : 0);
        if (!ours && theirs && memchr(p, '\0', n)) { /* jansson steps over some: "[1\0]" */
            json_decref(theirs);
            continue;
        }
        char *a = theirs ? json_dumps(theirs, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        char *b = ours ? json_dumps(ours, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (!a != !b || (a && (strcmp(a, b) != 0 || !json_equal(theirs, ours)))) {
            dump(nul ? "jload differs from jansson (ALLOW_NUL)" : "jload differs from jansson", p,
                 n, a ? a : "jansson refuses");
            bad = 1;
        }
        free(a);
        free(b);
        json_decref(theirs);
        json_decref(ours);
    }
    return bad;
}

static void compare(struct tally *t, const char *p, size_t n)
{
    struct ingest_error e;
    json_error_t je;
    t->jload_differs += jload_differs(p, n);
    int ours = ingest_validate_json(p, n, DEPTH, &e);
    json_t *j = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (ours == 0 && j) {
        t->both_ok++;
    } else if (ours < 0 && !j) {
        t->both_bad++;
    } else if (ours == 0) {
        t->ingest_only++;
        dump("ingest accepts, jansson rejects", p, n, je.text);
    } else if (strstr(e.message, "nesting too deep")) {
        t->jansson_only_depth++;
    } else {
        t->jansson_only_other++;
        dump("jansson accepts, ingest rejects", p, n, e.message);
    }
    json_decref(j);
}

TEST(generated_values_agree)
{
    struct tally t = {0};
    struct buf b = BUF_INIT;
    for (int i = 0; i < 3000; i++) {
        buf_reset(&b);
        gen_value(&b, 0);
        compare(&t, b.data, b.len);
    }
    buf_release(&b);
    printf("generated: %d both accept, %d both reject, %d ingest only, %d jansson only "
           "(depth %d)\n",
           t.both_ok, t.both_bad, t.ingest_only, t.jansson_only_depth + t.jansson_only_other,
           t.jansson_only_depth);
    CHECK_EQ_INT(t.ingest_only, 0);
    CHECK_EQ_INT(t.jansson_only_other, 0);
    CHECK_EQ_INT(t.jload_differs, 0);
    CHECK(t.both_ok > 1000); /* the generator makes mostly valid text */
    CHECK(t.both_bad > 50);  /* and some numbers out of range */
}

TEST(mutated_values_agree)
{
    struct tally t = {0};
    struct buf b = BUF_INIT;
    for (int i = 0; i < 6000; i++) {
        buf_reset(&b);
        gen_value(&b, 0);
        mutate(&b);
        compare(&t, b.data ? b.data : "", b.len);
    }
    buf_release(&b);
    printf("mutated: %d both accept, %d both reject, %d ingest only, %d jansson only "
           "(depth %d)\n",
           t.both_ok, t.both_bad, t.ingest_only, t.jansson_only_depth + t.jansson_only_other,
           t.jansson_only_depth);
    CHECK_EQ_INT(t.ingest_only, 0);
    CHECK_EQ_INT(t.jansson_only_other, 0);
    CHECK_EQ_INT(t.jload_differs, 0);
    CHECK(t.both_ok > 300);
    CHECK(t.both_bad > 2000);
}

/* The one documented difference: ingest's depth limit is lower than jansson's. */
TEST(depth_is_the_documented_difference)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < DEPTH + 1; i++)
        buf_putc(&b, '[');
    for (int i = 0; i < DEPTH + 1; i++)
        buf_putc(&b, ']');
    struct tally t = {0};
    compare(&t, b.data, b.len);
    buf_release(&b);
    CHECK_EQ_INT(t.jansson_only_depth, 1);
}

/* What the generator makes rarely or never: strings and keys past jscan's decoded
 * buffer (jload decodes those itself), escapes at the buffer's edge, jansson's depth
 * limit to the container, repeated keys, long numbers. */
TEST(jload_edges_agree)
{
    static const char *const pieces[] = {"a",
                                         "\\\\",
                                         "\\\"",
                                         "\\n",
                                         "\\u00e9",
                                         "\\u20ac",
                                         "\\ud83d\\ude00",
                                         "\xc3\xa9",
                                         "\xf0\x9f\x98\x80",
                                         "\\/",
                                         "\\u0000"};
    struct buf b = BUF_INIT, s = BUF_INIT;
    int bad = 0;
    for (int i = 0; i < 400; i++) {
        buf_reset(&s);
        size_t target = 4000 + pick(300) + (i % 10 == 0 ? 20000 : 0);
        while (s.len < target)
            buf_puts(&s, pieces[pick(sizeof pieces / sizeof pieces[0])]);
        buf_reset(&b);
        if (i % 3 == 0)
            buf_printf(&b, "\"%s\"", s.data);
        else if (i % 3 == 1)
            buf_printf(&b, "{\"%s\":[1,\"%s\"],\"k\":2}", s.data, s.data);
        else
            buf_printf(&b, "[{\"x\":\"%s\",\"x\":{\"y\":\"%s\"}}]", s.data, s.data);
        bad += jload_differs(b.data, b.len);
    }
    /* jansson counts values on the way down: 2048 empty arrays, or 2047 around a scalar */
    for (int depth = 2045; depth <= 2050; depth++) {
        buf_reset(&b);
        for (int i = 0; i < depth; i++)
            buf_puts(&b, i % 2 ? "{\"k\":" : "[");
        buf_puts(&b, "0");
        for (int i = depth - 1; i >= 0; i--)
            buf_putc(&b, i % 2 ? '}' : ']');
        bad += jload_differs(b.data, b.len);
        buf_reset(&b);
        for (int i = 0; i < depth; i++)
            buf_putc(&b, '[');
        for (int i = 0; i < depth; i++)
            buf_putc(&b, ']');
        bad += jload_differs(b.data, b.len);
    }
    static const char *const texts[] = {
        "{\"a\":1,\"b\":2,\"a\":3}",
        "-0",
        "-0.0",
        "-9223372036854775808",
        "9223372036854775807",
        "1.000000000000000000000000000000000000000000000000000000000000000000000000001e5",
        "123456789012345678901234567890e-30",
        "  [ ]  ",
        "{}",
        "\"\"",
        "[1,]",
        "",
        " ",
        "[\"\\ud800\\udc00\"]",
        "{\"\\u00e9\":{\"\\u00e9\":null}}",
        "true false",
        "nul"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        bad += jload_differs(texts[i], strlen(texts[i]));
    buf_release(&b);
    buf_release(&s);
    CHECK_EQ_INT(bad, 0);
}

/* Known jansson limits that ingest mirrors, pinned so a jansson upgrade is noticed. */
TEST(jansson_limits_mirrored)
{
    static const char *const texts[] = {"{\"a\\u0000\":1}", "9223372036854775808", "1e400",
                                        "\"\\ud800\"", "\"\xed\xa0\x80\""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_error_t je;
        json_t *j = json_loadb(texts[i], strlen(texts[i]), JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        CHECK(j == NULL);
        CHECK_EQ_INT(ingest_validate_json(texts[i], strlen(texts[i]), DEPTH, NULL),
                     -SLUICE_E_INVALID_JSON);
    }
    json_t *j = json_loadb("\"\\u0000\"", 8, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(j != NULL);
    json_decref(j);
    CHECK_EQ_INT(ingest_validate_json("\"\\u0000\"", 8, DEPTH, NULL), 0);
}

/* Items streamed from an envelope: each accepted item's raw data parses with jansson. */
struct stream_ctx {
    int items, bad;
};

static int check_item(void *ctx, const struct ingest_item *it)
{
    struct stream_ctx *s = ctx;
    s->items++;
    if (it->data) {
        json_error_t je;
        json_t *j = json_loadb(it->data, it->data_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!j) {
            s->bad++;
            dump("streamed data rejected by jansson", it->data, it->data_len, je.text);
        }
        json_decref(j);
    }
    return 0;
}

TEST(streamed_data_parses_with_jansson)
{
    struct buf b = BUF_INIT;
    int accepted_bodies = 0, total_items = 0, bad = 0;
    for (int body = 0; body < 300; body++) {
        buf_reset(&b);
        buf_puts(&b, "{\"items\":[");
        for (int i = 0; i < 10; i++) {
            buf_printf(&b, "%s{\"ref\":\"r%d\",\"data\":", i ? "," : "", i);
            gen_value(&b, 1);
            buf_putc(&b, '}');
        }
        buf_puts(&b, "]}");
        if (body % 2)
            mutate(&b);
        struct stream_ctx s = {0, 0};
        struct ingest *in = ingest_new(INGEST_JSON, NULL, check_item, NULL, &s);
        int rc = 0;
        for (size_t off = 0; off < b.len && rc == 0;) {
            size_t k = 1 + pick(64);
            if (k > b.len - off)
                k = b.len - off;
            rc = ingest_feed(in, b.data + off, k);
            off += k;
        }
        if (rc == 0)
            rc = ingest_finish(in);
        ingest_free(in);
        if (rc == 0)
            accepted_bodies++;
        total_items += s.items;
        bad += s.bad;
    }
    buf_release(&b);
    printf("streamed: %d bodies accepted, %d items delivered\n", accepted_bodies, total_items);
    CHECK_EQ_INT(bad, 0);
    CHECK(total_items > 1000);
}

int main(void)
{
    RUN(jansson_limits_mirrored);
    RUN(depth_is_the_documented_difference);
    RUN(generated_values_agree);
    RUN(mutated_values_agree);
    RUN(jload_edges_agree);
    RUN(streamed_data_parses_with_jansson);
    return test_report();
}
