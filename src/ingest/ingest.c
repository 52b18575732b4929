/* ingest.c - splits a streamed submit body into items; see ingest.h.
 *
 * The byte-level work (syntax, UTF-8, escapes, numbers, depth) is done by the push
 * scanner in jscan.c. This file drives it and adds the structure of a submit body:
 * the envelope object and its fields, the items array, and the {"ref", "data"} item
 * objects. The scanner only reports tokens down to the item's members, so the contents
 * of `data` are validated without a single callback.
 *
 * Raw bytes: while an item object is open, every byte the scanner consumes is copied
 * into one reusable buffer (ibuf), so `data` can be handed over as one contiguous span
 * exactly as sent, however the chunks fell. The scanner pauses at the start and at the
 * end of each item, which lets this file (a) cap each scan at the item's byte budget,
 * so ItemTooLarge is raised at the exact byte that exceeds max_item_bytes whatever the
 * chunking, and (b) deliver the item only once all its bytes are in ibuf.
 *
 * Depths (number of enclosing containers, as jscan counts them):
 *   JSON    envelope 0, envelope members 1, items elements 2, item members 3
 *   NDJSON                                   items (lines) 0, item members 1
 * `base` is the depth of an item object; the limit max_depth counts from it. */
#include "ingest/ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/csvbody.h"
#include "util/errors.h"
#include "util/jscan.h"
#include "util/xmalloc.h"

/* Envelope keys and item keys, as bits for the seen-sets. */
enum { K_NONE = 0, K_WORKFLOW = 1, K_CLIENTREF = 2, K_ITEMS = 4, K_CALLBACK = 8, K_PRIORITY = 16 };
enum { K_REF = 1, K_DATA = 2 };

#define NOPOS UINT64_MAX

struct ingest {
    enum ingest_format fmt;
    struct ingest_limits lim;
    ingest_item_fn item_fn;
    ingest_field_fn field_fn;
    ingest_raw_field_fn raw_fn; /* object-valued envelope fields; NULL: unknown keys */
    void *ctx;
    unsigned base; /* depth of an item object */

    unsigned env_seen; /* K_* bits of envelope keys seen */
    int env_key;       /* envelope key whose value comes next */

    int in_item;         /* an item object is open */
    int item_done;       /* its closing '}' was just consumed */
    uint64_t item_start; /* offset of its '{' */
    uint64_t item_index; /* its index */
    uint64_t next_index; /* index of the next item to begin */
    uint64_t delivered;  /* items item_fn accepted */
    unsigned item_seen;  /* K_REF/K_DATA bits */
    int item_key;        /* item key whose value comes next */
    char ref[INGEST_REF_MAX + 1];
    size_t ref_len;
    int has_data;
    uint64_t data_begin, data_end; /* offsets of data's first byte and one past its last */

    /* An object-valued envelope field ("callback") being captured into ibuf, like an
     * item (the two never overlap), and handed to raw_fn whole. */
    int in_raw, raw_done;
    uint64_t raw_start;

    char *ibuf; /* raw bytes of the open item (or raw field), from its '{' */
    size_t ilen, icap;

    struct ingest_error err;
    struct jscan sc;
    struct csvbody *csv; /* INGEST_CSV: all the work is done there */
};

void ingest_limits_default(struct ingest_limits *lim)
{
    lim->max_items = 1000000;
    lim->max_item_bytes = 1024 * 1024;
    lim->max_depth = 64;
}

/* ---- errors ---- */

/* Records an error. off is the offset it refers to (on the scanner's current line), or
 * NOPOS when it is not about a position in the input. Returns code. */
static int set_error(struct ingest *in, int code, uint64_t off, const char *target, const char *fmt,
                     ...) __attribute__((format(printf, 5, 6)));
static int set_error(struct ingest *in, int code, uint64_t off, const char *target, const char *fmt,
                     ...)
{
    struct ingest_error *e = &in->err;
    char text[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    e->code = code;
    snprintf(e->target, sizeof e->target, "%s", target);
    if (off == NOPOS) {
        e->line = e->column = e->offset = 0;
        snprintf(e->message, sizeof e->message, "%s", text);
    } else {
        e->line = in->sc.line;
        e->column = jscan_column(&in->sc, off);
        e->offset = off;
        snprintf(e->message, sizeof e->message, "%s at line %llu, column %llu (byte %llu)", text,
                 (unsigned long long)e->line, (unsigned long long)e->column,
                 (unsigned long long)e->offset);
    }
    return code;
}

/* Copies a scanner error (syntax, number range, depth) into err. */
static void error_from_scanner(const struct jscan *sc, struct ingest_error *e)
{
    e->code = sc->err;
    jscan_error_text(sc, e->message, sizeof e->message);
    e->target[0] = '\0';
    e->line = sc->line;
    e->column = jscan_column(sc, sc->err_off);
    e->offset = sc->err_off;
}

/* An item-level error; what is the member name ("" for the item itself). */
static int item_error(struct ingest *in, uint64_t index, const char *member, const char *why)
{
    char target[sizeof in->err.target];
    snprintf(target, sizeof target, "items[%llu]%s%.80s", (unsigned long long)index,
             *member ? "." : "", member);
    return set_error(in, -SLUICE_E_INVALID_ITEM, in->sc.tok_start, target, "%s", why);
}

static int field_error(struct ingest *in, const char *field, const char *why)
{
    return set_error(in, -SLUICE_E_INVALID_FIELD, in->sc.tok_start, field, "%s", why);
}

/* ---- events from the scanner ---- */

static int is_key(const struct jscan *sc, const char *name)
{
    size_t n = strlen(name);
    return sc->str_len == n && !sc->str_overflow && memcmp(sc->str, name, n) == 0;
}

/* The envelope value itself (depth 0). */
static int on_envelope(struct ingest *in, enum jscan_event ev)
{
    if (ev == JSCAN_OBJ_BEGIN)
        return 0;
    if (ev == JSCAN_OBJ_END)
        return (in->env_seen & K_ITEMS) ? 0 : field_error(in, "items", "missing field \"items\"");
    return field_error(in, "", "the body must be a JSON object");
}

/* Keys and values of the envelope's members (depth 1). */
static int on_envelope_member(struct ingest *in, enum jscan_event ev)
{
    struct jscan *sc = &in->sc;
    static const char *const names[] = {[K_WORKFLOW] = "workflow",
                                        [K_CLIENTREF] = "clientReference",
                                        [K_ITEMS] = "items",
                                        [K_CALLBACK] = "callback",
                                        [K_PRIORITY] = "priority"};
    if (ev == JSCAN_KEY) {
        int k = is_key(sc, "workflow")                 ? K_WORKFLOW
                : is_key(sc, "clientReference")        ? K_CLIENTREF
                : is_key(sc, "items")                  ? K_ITEMS
                : in->raw_fn && is_key(sc, "callback") ? K_CALLBACK
                : in->raw_fn && is_key(sc, "priority") ? K_PRIORITY
                                                       : K_NONE;
        if (k == K_NONE)
            return field_error(in, sc->str, "unknown field");
        if (in->env_seen & (unsigned)k)
            return field_error(in, names[k], "duplicate field");
        in->env_seen |= (unsigned)k;
        in->env_key = k;
        sc->decode_values = k != K_ITEMS && k != K_CALLBACK;
        return 0;
    }
    if (in->env_key == K_ITEMS) {
        if (ev == JSCAN_ARR_BEGIN || ev == JSCAN_ARR_END) {
            sc->decode_values = 0;
            return 0;
        }
        return field_error(in, "items", "\"items\" must be an array");
    }
    if (in->env_key == K_CALLBACK) {
        if (ev == JSCAN_OBJ_BEGIN) {
            in->in_raw = 1;
            in->raw_start = sc->tok_start;
            in->ilen = 0;
            return JSCAN_PAUSE; /* capture from the '{' on (see ingest_feed) */
        }
        if (ev == JSCAN_OBJ_END && in->in_raw) {
            in->raw_done = 1;
            return JSCAN_PAUSE; /* deliver once the '}' is in ibuf */
        }
        return field_error(in, "callback", "\"callback\" must be an object");
    }
    if (in->env_key == K_PRIORITY) {
        /* A small integer, handed to field_fn as decimal text. */
        long v = (long)sc->num_ival;
        if (ev != JSCAN_NUMBER || sc->num_real || sc->num_int_digits > 3 || v > 100)
            return field_error(in, "priority", "\"priority\" must be an integer from -100 to 100");
        char text[8];
        int len = snprintf(text, sizeof text, "%ld", sc->num_neg ? -v : v);
        if (in->field_fn) {
            int rc = in->field_fn(in->ctx, "priority", text, (size_t)len);
            if (rc < 0)
                return set_error(in, rc, NOPOS, "priority", "field callback stopped the parse");
        }
        return 0;
    }
    const char *name = names[in->env_key];
    if (ev != JSCAN_STRING)
        return field_error(in, name, "must be a string");
    if (sc->str_overflow)
        return field_error(in, name, "too long");
    if (in->field_fn) {
        int rc = in->field_fn(in->ctx, name, sc->str, sc->str_len);
        if (rc < 0)
            return set_error(in, rc, NOPOS, name, "field callback stopped the parse");
    }
    return 0;
}

/* An item value (depth base): only objects are items. */
static int on_item(struct ingest *in, enum jscan_event ev)
{
    struct jscan *sc = &in->sc;
    if (ev == JSCAN_OBJ_END) {
        if (!(in->item_seen & K_REF))
            return item_error(in, in->item_index, "ref", "missing \"ref\"");
        in->item_done = 1;
        return JSCAN_PAUSE; /* deliver once the '}' is in ibuf */
    }
    if (in->next_index >= in->lim.max_items)
        return set_error(in, -SLUICE_E_TOO_MANY_ITEMS, sc->tok_start, "items",
                         "more than %llu items", (unsigned long long)in->lim.max_items);
    if (ev != JSCAN_OBJ_BEGIN)
        return item_error(in, in->next_index, "", "an item must be a JSON object");
    in->in_item = 1;
    in->item_start = sc->tok_start;
    in->item_index = in->next_index++;
    in->item_seen = 0;
    in->item_key = 0;
    in->ref_len = 0;
    in->has_data = 0;
    in->ilen = 0;
    return JSCAN_PAUSE; /* let ingest_feed() cap the scan at the item's byte budget */
}

/* Keys and values of an item's members (depth base + 1). */
static int on_item_member(struct ingest *in, enum jscan_event ev)
{
    struct jscan *sc = &in->sc;
    if (ev == JSCAN_KEY) {
        int k = is_key(sc, "ref") ? K_REF : is_key(sc, "data") ? K_DATA : 0;
        if (!k)
            return item_error(in, in->item_index, sc->str, "unknown key");
        if (in->item_seen & (unsigned)k)
            return item_error(in, in->item_index, sc->str, "duplicate key");
        in->item_seen |= (unsigned)k;
        in->item_key = k;
        sc->decode_values = k == K_REF;
        return 0;
    }
    if (in->item_key == K_REF) {
        if (ev != JSCAN_STRING)
            return item_error(in, in->item_index, "ref", "\"ref\" must be a string");
        if (sc->str_len == 0)
            return item_error(in, in->item_index, "ref", "\"ref\" is empty");
        if (sc->str_overflow || sc->str_len > INGEST_REF_MAX)
            return item_error(in, in->item_index, "ref", "\"ref\" is longer than 256 bytes");
        if (memchr(sc->str, '\0', sc->str_len))
            return item_error(in, in->item_index, "ref", "\"ref\" contains U+0000");
        memcpy(in->ref, sc->str, sc->str_len + 1);
        in->ref_len = sc->str_len;
        return 0;
    }
    /* data: note where its text begins and ends */
    if (ev != JSCAN_OBJ_END && ev != JSCAN_ARR_END)
        in->data_begin = sc->tok_start;
    if (ev != JSCAN_OBJ_BEGIN && ev != JSCAN_ARR_BEGIN) {
        in->data_end = sc->tok_end;
        in->has_data = 1;
    }
    return 0;
}

static int on_event(void *ctx, struct jscan *sc, enum jscan_event ev)
{
    struct ingest *in = ctx;
    if (in->in_raw && sc->depth > 1)
        return 0; /* inside a raw field: the scanner validates, raw_fn judges */
    if (sc->depth < in->base)
        return sc->depth == 0 ? on_envelope(in, ev) : on_envelope_member(in, ev);
    if (sc->depth == in->base)
        return on_item(in, ev);
    return on_item_member(in, ev);
}

/* ---- public API ---- */

struct ingest *ingest_new(enum ingest_format fmt, const struct ingest_limits *lim,
                          ingest_item_fn item_fn, ingest_field_fn field_fn, void *ctx)
{
    struct ingest *in = xcalloc(1, sizeof *in);
    in->fmt = fmt;
    if (lim)
        in->lim = *lim;
    else
        ingest_limits_default(&in->lim);
    in->item_fn = item_fn;
    in->field_fn = field_fn;
    in->ctx = ctx;
    in->base = fmt == INGEST_JSON ? 2 : 0;
    unsigned depth = in->lim.max_depth;
    depth = depth > UINT32_MAX - in->base ? UINT32_MAX : depth + in->base;
    jscan_init(&in->sc, fmt == INGEST_NDJSON, depth,
               fmt == INGEST_JSON ? -SLUICE_E_INVALID_JSON : -SLUICE_E_INVALID_NDJSON, on_event, in,
               (int)in->base + 1);
    return in;
}

struct ingest *ingest_new_csv(const struct ingest_limits *lim, const char *ref_column,
                              ingest_item_fn item_fn, void *ctx)
{
    struct ingest *in = xcalloc(1, sizeof *in);
    in->fmt = INGEST_CSV;
    in->csv = csvbody_new(lim, ref_column, item_fn, ctx);
    return in;
}

void ingest_set_raw_field_fn(struct ingest *in, ingest_raw_field_fn fn)
{
    in->raw_fn = fn;
}

void ingest_free(struct ingest *in)
{
    if (!in)
        return;
    if (in->csv)
        csvbody_free(in->csv);
    else
        jscan_release(&in->sc);
    free(in->ibuf);
    free(in);
}

/* Appends n consumed bytes of the open item to ibuf; ingest_feed() never lets the item
 * grow past max_item_bytes. */
static void capture(struct ingest *in, const char *p, size_t n)
{
    if (in->ilen + n > in->icap) {
        size_t cap = in->icap ? in->icap : 4096;
        while (cap < in->ilen + n)
            cap *= 2;
        in->ibuf = xrealloc(in->ibuf, cap);
        in->icap = cap;
    }
    memcpy(in->ibuf + in->ilen, p, n);
    in->ilen += n;
}

#define RAW_FIELD_MAX 16384 /* bytes of an object-valued envelope field */

static int deliver_raw(struct ingest *in)
{
    static const char name[] = "callback";
    in->in_raw = 0;
    in->raw_done = 0;
    int rc = in->raw_fn(in->ctx, name, in->ibuf, in->ilen);
    in->ilen = 0;
    if (rc < 0)
        return set_error(in, rc, NOPOS, name, "field callback stopped the parse");
    return 0;
}

static int deliver(struct ingest *in)
{
    struct ingest_item it = {
        .index = in->item_index,
        .ref = in->ref,
        .ref_len = in->ref_len,
        .data = in->has_data ? in->ibuf + (in->data_begin - in->item_start) : NULL,
        .data_len = in->has_data ? (size_t)(in->data_end - in->data_begin) : 0,
    };
    in->in_item = 0;
    in->item_done = 0;
    int rc = in->item_fn ? in->item_fn(in->ctx, &it) : 0;
    if (rc < 0) {
        char target[40];
        snprintf(target, sizeof target, "items[%llu]", (unsigned long long)it.index);
        return set_error(in, rc, NOPOS, target, "item callback stopped the parse");
    }
    in->delivered++;
    return 0;
}

int ingest_feed(struct ingest *in, const char *p, size_t n)
{
    if (in->csv)
        return csvbody_feed(in->csv, p, n);
    if (in->err.code)
        return in->err.code;
    while (n > 0) {
        uint64_t pos = in->sc.offset;
        size_t lim = n, used;
        if (in->in_item) {
            uint64_t stop = in->item_start + in->lim.max_item_bytes;
            if (stop < in->item_start)
                stop = UINT64_MAX;
            if (pos >= stop) {
                char target[40];
                snprintf(target, sizeof target, "items[%llu]", (unsigned long long)in->item_index);
                return set_error(in, -SLUICE_E_ITEM_TOO_LARGE, pos, target,
                                 "item larger than %zu bytes", in->lim.max_item_bytes);
            }
            if (stop - pos < lim)
                lim = (size_t)(stop - pos);
        } else if (in->in_raw) {
            uint64_t stop = in->raw_start + RAW_FIELD_MAX;
            if (pos >= stop)
                return set_error(in, -SLUICE_E_INVALID_FIELD, pos, "callback",
                                 "\"callback\" is larger than %d bytes", RAW_FIELD_MAX);
            if (stop - pos < lim)
                lim = (size_t)(stop - pos);
        }
        int rc = jscan_feed(&in->sc, p, lim, &used);
        if (rc < 0) {
            if (!in->err.code)
                error_from_scanner(&in->sc, &in->err);
            return rc;
        }
        if (in->in_item) {
            size_t skip = in->item_start > pos ? (size_t)(in->item_start - pos) : 0;
            capture(in, p + skip, used - skip);
        } else if (in->in_raw) {
            size_t skip = in->raw_start > pos ? (size_t)(in->raw_start - pos) : 0;
            capture(in, p + skip, used - skip);
        }
        if (in->item_done && (rc = deliver(in)) < 0)
            return rc;
        if (in->raw_done && (rc = deliver_raw(in)) < 0)
            return rc;
        if (used == 0) /* cannot happen: every pause consumes its token; never spin */
            return set_error(in, -SLUICE_E_INTERNAL, NOPOS, "", "ingest: scanner made no progress");
        p += used;
        n -= used;
    }
    return 0;
}

int ingest_finish(struct ingest *in)
{
    if (in->csv)
        return csvbody_finish(in->csv);
    if (in->err.code)
        return in->err.code;
    int rc = jscan_finish(&in->sc);
    if (rc < 0 && !in->err.code)
        error_from_scanner(&in->sc, &in->err);
    return rc < 0 ? rc : 0;
}

uint64_t ingest_count(const struct ingest *in)
{
    return in->csv ? csvbody_count(in->csv) : in->delivered;
}

const struct ingest_error *ingest_last_error(const struct ingest *in)
{
    return in->csv ? csvbody_last_error(in->csv) : &in->err;
}

int ingest_validate_json(const char *p, size_t n, unsigned max_depth, struct ingest_error *err)
{
    /* The scanner is ~5 KB: fine on the stack of any thread sluice runs. */
    struct jscan sc;
    size_t used;
    jscan_init(&sc, 0, max_depth, -SLUICE_E_INVALID_JSON, NULL, NULL, -1);
    int rc = jscan_feed(&sc, p, n, &used);
    if (rc == 0)
        rc = jscan_finish(&sc);
    if (err) {
        memset(err, 0, sizeof *err);
        if (rc < 0)
            error_from_scanner(&sc, err);
    }
    jscan_release(&sc);
    return rc < 0 ? rc : 0;
}
