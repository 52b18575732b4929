/* body.c - the streamed request body of "sluice submit" (see cli_int.h).
 *
 * The input file is never loaded whole: only its first bytes are read to tell NDJSON
 * from a JSON array (a CSV file, named so by --ref-column, is sent as it is), then the body is
 * produced on demand for curl's read callback as three parts in order: head (the JSON envelope up
 * to "items":), the peeked bytes and the rest of the file, and tail ("}"). For NDJSON head and tail
 * are empty. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_int.h"
#include "outbound/http_client.h"
#include "util/errors.h"

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t bom_len(const char *p, size_t n)
{
    return n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

int cli_detect_format(const char *p, size_t n, int at_eof)
{
    size_t i = 0;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    else if (!at_eof && n < 3 && n > 0 && memcmp(p, "\xEF\xBB\xBF", n) == 0)
        return CLI_FMT_MORE; /* maybe the start of a BOM */
    for (; i < n; i++)
        if (!is_ws((unsigned char)p[i]))
            return p[i] == '[' ? CLI_FMT_ARRAY : CLI_FMT_NDJSON;
    return at_eof ? CLI_FMT_NDJSON : CLI_FMT_MORE;
}

/* cli_body_open and cli_body_open_csv: as_csv skips the format detection. */
static int body_open(struct cli_body *b, FILE *f, const char *workflow, const char *client_ref,
                     long long *content_length, int as_csv)
{
    memset(b, 0, sizeof *b);
    b->f = f;
    b->tail = "";
    b->file_left = -1;
    buf_init(&b->head);
    buf_init(&b->peek);
    *content_length = -1;

    /* Where the file starts for us: stdin redirected from a file may not be at 0. */
    long long start = -1, size = -1;
    struct stat st;
    int fd = fileno(f);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        start = ftello(f);
        size = (long long)st.st_size;
    }

    int fmt = CLI_FMT_MORE;
    int eof = 0;
    while (fmt == CLI_FMT_MORE) {
        char chunk[4096];
        size_t got = fread(chunk, 1, sizeof chunk, f);
        if (got < sizeof chunk) {
            if (ferror(f)) {
                b->failed = 1;
                b->err = errno;
                return -SLUICE_E_INTERNAL;
            }
            eof = 1;
        }
        buf_append(&b->peek, chunk, got);
        fmt = as_csv ? CLI_FMT_CSV
                     : cli_detect_format(b->peek.data ? b->peek.data : "", b->peek.len, eof);
    }
    b->format = fmt;
    /* a CSV's BOM goes as it is: the server skips it */
    b->peek_off = as_csv ? 0 : bom_len(b->peek.data ? b->peek.data : "", b->peek.len);

    if (fmt == CLI_FMT_ARRAY) {
        buf_puts(&b->head, "{\"workflow\":");
        buf_json_str(&b->head, workflow, strlen(workflow));
        if (client_ref) {
            buf_puts(&b->head, ",\"clientReference\":");
            buf_json_str(&b->head, client_ref, strlen(client_ref));
        }
        buf_puts(&b->head, ",\"items\":");
        b->tail = "}";
    }

    if (eof) {
        b->file_left = 0;
    } else if (start >= 0 && size >= start + (long long)b->peek.len) {
        /* Capped at the size seen now, so a file that grows meanwhile cannot make the
         * body longer than the Content-Length already promised. */
        b->file_left = size - start - (long long)b->peek.len;
    }
    if (b->file_left >= 0)
        *content_length = (long long)b->head.len + (long long)(b->peek.len - b->peek_off) +
                          b->file_left + (long long)strlen(b->tail);
    return 0;
}

int cli_body_open(struct cli_body *b, FILE *f, const char *workflow, const char *client_ref,
                  long long *content_length)
{
    return body_open(b, f, workflow, client_ref, content_length, 0);
}

int cli_body_open_csv(struct cli_body *b, FILE *f, long long *content_length)
{
    return body_open(b, f, NULL, NULL, content_length, 1);
}

/* Copies from a memory part; returns bytes copied. */
static size_t from_mem(const char *src, size_t len, size_t *off, char *dst, size_t cap)
{
    size_t n = len - *off;
    if (n > cap)
        n = cap;
    if (n)
        memcpy(dst, src + *off, n);
    *off += n;
    return n;
}

size_t cli_body_read(void *ctx, char *dst, size_t cap)
{
    struct cli_body *b = ctx;
    size_t w = 0;
    if (b->failed)
        return HTTP_READ_ABORT;
    w += from_mem(b->head.data, b->head.len, &b->head_off, dst + w, cap - w);
    w += from_mem(b->peek.data, b->peek.len, &b->peek_off, dst + w, cap - w);
    if (w < cap && b->file_left != 0) {
        size_t want = cap - w;
        if (b->file_left > 0 && (long long)want > b->file_left)
            want = (size_t)b->file_left;
        size_t got = fread(dst + w, 1, want, b->f);
        if (got < want && ferror(b->f)) {
            b->failed = 1;
            b->err = errno;
            return HTTP_READ_ABORT;
        }
        if (b->file_left > 0)
            b->file_left -= (long long)got;
        if (got < want) /* EOF: a file that shrank ends early; curl reports the short body */
            b->file_left = 0;
        w += got;
    }
    if (b->file_left == 0)
        w += from_mem(b->tail, strlen(b->tail), &b->tail_off, dst + w, cap - w);
    return w;
}

void cli_body_release(struct cli_body *b)
{
    buf_release(&b->head);
    buf_release(&b->peek);
}
