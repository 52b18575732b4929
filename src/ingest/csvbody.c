/* csvbody.c - text/csv submit bodies into items, on libcsv; see csvbody.h.
 *
 * libcsv does the CSV itself (quoting, doubled quotes, line ends) and calls back per
 * field and per record; this file adds what a submit needs: the header, the ref
 * column, one JSON object per record, the limits, and line numbers for errors.
 *
 * Positions: libcsv reports none, so each chunk is fed in pieces that end after every
 * CR and LF (feed_piece): a callback then knows the line it is on, a strict-mode
 * failure's byte (which csv_parse() returns) lies on that line, and a record, which
 * libcsv ends only at a CR or LF, begins at the start of a piece. While a record is
 * open its raw bytes are counted, so one with a huge field is refused before libcsv's
 * field buffer grows past the item limit, at the same byte whatever the chunking. */
#include "ingest/csvbody.h"

#include <csv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/errors.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

struct column {
    char *name; /* NUL-terminated; valid UTF-8 without NUL, so strcmp() compares all */
    size_t len;
};

struct csvbody {
    struct csv_parser p;
    struct ingest_limits lim;
    char *ref_column;
    ingest_item_fn item_fn;
    void *ctx;

    /* Position: offset of the next byte fed, the current line and where it starts;
     * after_cr: the last byte was a CR (a LF right after it ends the same line). */
    uint64_t off, line, line_start;
    int after_cr;
    unsigned bom_n; /* bytes of a byte order mark matched at the start, held back */
    int bom_done;   /* past the point where a byte order mark may be */

    int row_open;       /* a record has begun and not ended */
    uint64_t row_line;  /* the line it began on */
    uint64_t row_bytes; /* its raw bytes fed so far */
    uint64_t rows_ended;

    int have_header;
    struct column *cols;
    size_t ncols, capcols;
    size_t ref_idx;

    size_t nfields;  /* fields of the open record so far */
    struct buf data; /* its data, a JSON object being built */
    struct buf keys; /* every column's `"name":` text, back to back */
    size_t *key_off; /* where column i's key starts in keys (ncols + 1 entries) */
    char ref[INGEST_REF_MAX + 1];
    size_t ref_len;
    uint64_t next_index;

    struct ingest_error err;
};

/* ---- errors ---- */

static int set_error(struct csvbody *cb, int code, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records an error about the open record (col: 1-based field number, 0 for the record
 * as a whole). The target names the line and, for a data field, the column's name;
 * the message is fmt followed by the same place. Returns code. */
static int set_error(struct csvbody *cb, int code, size_t col, const char *fmt, ...)
{
    struct ingest_error *e = &cb->err;
    char text[150], where[sizeof e->target];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    unsigned long long line = (unsigned long long)cb->row_line;
    if (col && cb->have_header && col <= cb->ncols) {
        const struct column *c = &cb->cols[col - 1];
        int n = (int)utf8_prefix_len(c->name, c->len, 48);
        snprintf(where, sizeof where, "line %llu, column \"%.*s%s\"", line, n, c->name,
                 (size_t)n < c->len ? "..." : "");
    } else if (col) {
        snprintf(where, sizeof where, "line %llu, column %zu", line, col);
    } else {
        snprintf(where, sizeof where, "line %llu", line);
    }
    e->code = code;
    e->line = cb->row_line;
    e->column = col;
    e->offset = 0;
    snprintf(e->target, sizeof e->target, "%s", where);
    snprintf(e->message, sizeof e->message, "%s (%s)", text, where);
    return code;
}

/* A field's bytes as text: valid UTF-8, no NUL. what: "value" or "column name". */
static int check_text(struct csvbody *cb, const char *s, size_t len, size_t col, const char *what)
{
    if (memchr(s, '\0', len))
        return set_error(cb, -SLUICE_E_INVALID_CSV, col, "the %s contains a NUL byte", what);
    if (!utf8_valid_text(s, len))
        return set_error(cb, -SLUICE_E_INVALID_CSV, col, "the %s is not valid UTF-8", what);
    return 0;
}

/* ---- the header ---- */

static void header_field(struct csvbody *cb, const char *s, size_t len)
{
    size_t col = cb->nfields; /* 1-based: already counted */
    if (check_text(cb, s, len, col, "column name") < 0)
        return;
    if (len == 0) {
        set_error(cb, -SLUICE_E_INVALID_CSV, col, "a column name is empty");
        return;
    }
    if (col > CSVBODY_MAX_COLUMNS) {
        set_error(cb, -SLUICE_E_INVALID_CSV, col, "the header has more than %d columns",
                  CSVBODY_MAX_COLUMNS);
        return;
    }
    if (cb->ncols == cb->capcols) {
        cb->capcols = cb->capcols ? cb->capcols * 2 : 16;
        cb->cols = xrealloc(cb->cols, cb->capcols * sizeof *cb->cols);
    }
    struct column *c = &cb->cols[cb->ncols++];
    c->name = xmalloc(len + 1);
    memcpy(c->name, s, len);
    c->name[len] = '\0';
    c->len = len;
}

static int cmp_column(const void *a, const void *b)
{
    const struct column *x = *(const struct column *const *)a,
                        *y = *(const struct column *const *)b;
    int d = strcmp(x->name, y->name);
    return d ? d : (x < y ? -1 : x > y);
}

/* The header record ended: names unique (sorted, so a wide header costs n log n),
 * the ref column found, every key written once. */
static void header_done(struct csvbody *cb)
{
    struct column **sorted = xmalloc(cb->ncols * sizeof *sorted);
    for (size_t i = 0; i < cb->ncols; i++)
        sorted[i] = &cb->cols[i];
    qsort(sorted, cb->ncols, sizeof *sorted, cmp_column);
    const struct column *dup = NULL;
    for (size_t i = 1; i < cb->ncols && !dup; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
            dup = sorted[i]; /* the later of the two: stable by address */
    free(sorted);
    if (dup) {
        set_error(cb, -SLUICE_E_INVALID_CSV, (size_t)(dup - cb->cols) + 1,
                  "the column name \"%.60s\" is repeated; column names must be unique", dup->name);
        return;
    }
    cb->ref_idx = cb->ncols;
    for (size_t i = 0; i < cb->ncols; i++)
        if (strcmp(cb->cols[i].name, cb->ref_column) == 0)
            cb->ref_idx = i;
    if (cb->ref_idx == cb->ncols) {
        set_error(cb, -SLUICE_E_INVALID_FIELD, 0,
                  "refColumn \"%.80s\" is not a column of the header row", cb->ref_column);
        snprintf(cb->err.target, sizeof cb->err.target, "refColumn");
        return;
    }
    cb->key_off = xmalloc((cb->ncols + 1) * sizeof *cb->key_off);
    for (size_t i = 0; i < cb->ncols; i++) {
        cb->key_off[i] = cb->keys.len;
        buf_json_str(&cb->keys, cb->cols[i].name, cb->cols[i].len);
        buf_putc(&cb->keys, ':');
    }
    cb->key_off[cb->ncols] = cb->keys.len;
    cb->have_header = 1;
}

/* ---- records ---- */

static void data_field(struct csvbody *cb, const char *s, size_t len)
{
    size_t i = cb->nfields - 1;
    if (i >= cb->ncols) {
        set_error(cb, -SLUICE_E_INVALID_CSV, 0,
                  "the record has more fields than the header's %zu columns", cb->ncols);
        return;
    }
    if (check_text(cb, s, len, i + 1, "value") < 0)
        return;
    if (i == cb->ref_idx) {
        if (len == 0) {
            set_error(cb, -SLUICE_E_INVALID_ITEM, i + 1, "the ref is empty");
            return;
        }
        if (len > INGEST_REF_MAX) {
            set_error(cb, -SLUICE_E_INVALID_ITEM, i + 1, "the ref is longer than %d bytes",
                      INGEST_REF_MAX);
            return;
        }
        memcpy(cb->ref, s, len);
        cb->ref[len] = '\0';
        cb->ref_len = len;
    }
    buf_putc(&cb->data, i ? ',' : '{');
    buf_append(&cb->data, cb->keys.data + cb->key_off[i], cb->key_off[i + 1] - cb->key_off[i]);
    buf_json_str(&cb->data, s, len);
    if (cb->data.len + 1 > cb->lim.max_item_bytes) /* + the closing brace */
        set_error(cb, -SLUICE_E_ITEM_TOO_LARGE, 0, "the record's data is larger than %zu bytes",
                  cb->lim.max_item_bytes);
}

static void record_done(struct csvbody *cb)
{
    if (cb->nfields < cb->ncols) {
        set_error(cb, -SLUICE_E_INVALID_CSV, 0, "the record has %zu fields, the header %zu",
                  cb->nfields, cb->ncols);
        return;
    }
    if (cb->next_index >= cb->lim.max_items) {
        set_error(cb, -SLUICE_E_TOO_MANY_ITEMS, 0, "more than %llu items",
                  (unsigned long long)cb->lim.max_items);
        return;
    }
    buf_putc(&cb->data, '}');
    struct ingest_item it = {.index = cb->next_index,
                             .ref = cb->ref,
                             .ref_len = cb->ref_len,
                             .data = cb->data.data,
                             .data_len = cb->data.len};
    int rc = cb->item_fn ? cb->item_fn(cb->ctx, &it) : 0;
    if (rc < 0) {
        set_error(cb, rc, 0, "item callback stopped the parse");
        return;
    }
    cb->next_index++;
}

/* ---- libcsv callbacks (they cannot stop the parse: an error is recorded, and the
 * rest of the piece fed is ignored) ---- */

static void on_field(void *s, size_t len, void *arg)
{
    struct csvbody *cb = arg;
    if (cb->err.code)
        return;
    cb->nfields++;
    if (cb->have_header)
        data_field(cb, s, len);
    else
        header_field(cb, s, len);
}

static void on_record(int c, void *arg)
{
    struct csvbody *cb = arg;
    (void)c;
    if (!cb->err.code) {
        if (cb->have_header)
            record_done(cb);
        else
            header_done(cb);
    }
    cb->row_open = 0;
    cb->rows_ended++;
    cb->nfields = 0;
    buf_reset(&cb->data);
}

/* RFC 4180: spaces belong to the field; libcsv would trim them from unquoted ones. */
static int no_space(unsigned char c)
{
    (void)c;
    return 0;
}

/* ---- public API ---- */

struct csvbody *csvbody_new(const struct ingest_limits *lim, const char *ref_column,
                            ingest_item_fn item_fn, void *ctx)
{
    struct csvbody *cb = xcalloc(1, sizeof *cb);
    if (lim)
        cb->lim = *lim;
    else
        ingest_limits_default(&cb->lim);
    cb->ref_column = xstrdup(ref_column);
    cb->item_fn = item_fn;
    cb->ctx = ctx;
    cb->line = 1;
    buf_init(&cb->data);
    buf_init(&cb->keys);
    /* csv_init() only fails for a NULL parser; its buffer grows through xrealloc,
     * which aborts rather than fail like any allocation of ours. */
    csv_init(&cb->p, CSV_STRICT | CSV_STRICT_FINI);
    csv_set_space_func(&cb->p, no_space);
    csv_set_realloc_func(&cb->p, xrealloc);
    csv_set_free_func(&cb->p, free);
    return cb;
}

void csvbody_free(struct csvbody *cb)
{
    if (!cb)
        return;
    csv_free(&cb->p);
    for (size_t i = 0; i < cb->ncols; i++)
        free(cb->cols[i].name);
    free(cb->cols);
    free(cb->key_off);
    free(cb->ref_column);
    buf_release(&cb->data);
    buf_release(&cb->keys);
    free(cb);
}

/* Feeds one piece of a line to libcsv: bytes without CR or LF, then at most one CR
 * or LF, last. libcsv ends a record only at a CR or LF (or in csv_fini), so a record
 * ends at the end of a piece and the next one begins at the start of one: where
 * records begin is exact, and so is the count of their bytes. */
static int feed_piece(struct csvbody *cb, const char *p, size_t n)
{
    if (!cb->row_open && *p != '\r' && *p != '\n') {
        cb->row_open = 1;
        cb->row_line = cb->line;
        cb->row_bytes = 0;
    }
    /* An open record may take max_item_bytes bytes: feed no further than the byte
     * past them, so the limit is found at that byte however the body was chunked. */
    size_t take = n;
    if (cb->row_open && cb->row_bytes + n > cb->lim.max_item_bytes)
        take = (size_t)(cb->lim.max_item_bytes - cb->row_bytes) + 1;
    int open = cb->row_open;
    uint64_t ended = cb->rows_ended;
    size_t used = csv_parse(&cb->p, p, take, on_field, on_record, cb);
    if (cb->err.code)
        return cb->err.code;
    if (used < take) { /* strict mode: the byte at p[used] breaks the quoting rules */
        uint64_t at = cb->off + used;
        cb->row_line = cb->line;
        set_error(cb, -SLUICE_E_INVALID_CSV, 0,
                  "malformed CSV at column %llu (byte %llu): a quote inside an unquoted field, "
                  "or something other than ',' or a line end after a closing quote",
                  (unsigned long long)(at - cb->line_start + 1), (unsigned long long)at);
        cb->err.column = at - cb->line_start + 1;
        cb->err.offset = at;
        return cb->err.code;
    }
    if (open && cb->rows_ended == ended && (cb->row_bytes += take) > cb->lim.max_item_bytes)
        return set_error(cb, -SLUICE_E_ITEM_TOO_LARGE, 0, "the record is larger than %zu bytes",
                         cb->lim.max_item_bytes);
    cb->off += n;
    /* A line ends at LF, CRLF or a lone CR (old Mac files): count it once. */
    char last = p[n - 1];
    if (last == '\r' || last == '\n') {
        if (!(last == '\n' && n == 1 && cb->after_cr))
            cb->line++;
        cb->line_start = cb->off;
    }
    cb->after_cr = last == '\r';
    return 0;
}

static int feed_text(struct csvbody *cb, const char *p, size_t n)
{
    while (n > 0) {
        size_t len = 0;
        while (len < n && p[len] != '\r' && p[len] != '\n')
            len++;
        len += len < n; /* the CR or LF */
        int rc = feed_piece(cb, p, len);
        if (rc < 0)
            return rc;
        p += len;
        n -= len;
    }
    return 0;
}

static const char bom[3] = {'\xEF', '\xBB', '\xBF'};

int csvbody_feed(struct csvbody *cb, const char *p, size_t n)
{
    if (cb->err.code)
        return cb->err.code;
    /* A byte order mark may straddle chunks: hold its bytes until it is complete or
     * turns out not to be one (then they are text like any other). */
    while (!cb->bom_done && n > 0) {
        if (*p != bom[cb->bom_n]) {
            cb->bom_done = 1;
            int rc = feed_text(cb, bom, cb->bom_n);
            if (rc < 0)
                return rc;
            break;
        }
        p++;
        n--;
        if (++cb->bom_n == sizeof bom) {
            cb->bom_done = 1;
            cb->off = cb->line_start = sizeof bom; /* columns count from after it */
        }
    }
    return feed_text(cb, p, n);
}

int csvbody_finish(struct csvbody *cb)
{
    if (cb->err.code)
        return cb->err.code;
    if (!cb->bom_done) {
        cb->bom_done = 1;
        int rc = feed_text(cb, bom, cb->bom_n);
        if (rc < 0)
            return rc;
    }
    if (csv_fini(&cb->p, on_field, on_record, cb) != 0 && !cb->err.code)
        return set_error(cb, -SLUICE_E_INVALID_CSV, 0,
                         "a quoted field is still open at the end of the body");
    return cb->err.code;
}

uint64_t csvbody_count(const struct csvbody *cb)
{
    return cb->next_index;
}

const struct ingest_error *csvbody_last_error(const struct csvbody *cb)
{
    return &cb->err;
}
