/* cli_int.h - internals of the command-line client shared between its files and
 * tests/unit/test_cli.c: argument parsing, output formatting, URL building, the
 * streamed submit body and key generation. Nothing here does network or store I/O,
 * so all of it is unit-testable. Not thread-safe unless stated (the CLI is one
 * thread). */
#ifndef SLUICE_CLI_INT_H
#define SLUICE_CLI_INT_H

#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"

/* ---- exit statuses (cli.h) ------------------------------------------------------ */
enum { CLI_EXIT_OK = 0, CLI_EXIT_JOB = 1, CLI_EXIT_USAGE = 2, CLI_EXIT_ERROR = 3 };

#define CLI_DEFAULT_URL "http://127.0.0.1:8080"
#define CLI_DEFAULT_STORE "sqlite:./data/sluice.db"

/* ---- arguments ------------------------------------------------------------------ */

/* Options a command accepts (bit set passed to cli_args_parse). */
enum cli_opt {
    CLI_OPT_URL = 1u << 0,         /* --url U */
    CLI_OPT_KEY = 1u << 1,         /* --key K */
    CLI_OPT_WORKFLOW = 1u << 2,    /* --workflow W */
    CLI_OPT_CLIENT_REF = 1u << 3,  /* --client-reference R */
    CLI_OPT_WAIT = 1u << 4,        /* --wait */
    CLI_OPT_JSON = 1u << 5,        /* --json */
    CLI_OPT_STATUS = 1u << 6,      /* --status S */
    CLI_OPT_REF = 1u << 7,         /* --ref R */
    CLI_OPT_LIMIT = 1u << 8,       /* --limit N (1..1000000) */
    CLI_OPT_ALL = 1u << 9,         /* --all */
    CLI_OPT_TENANT = 1u << 10,     /* --tenant T */
    CLI_OPT_STORE = 1u << 11,      /* --store URL */
    CLI_OPT_REF_COLUMN = 1u << 12, /* --ref-column C: the file is CSV, refs in column C */
};

#define CLI_MAX_POS 4

struct cli_args {
    const char *url, *key, *workflow, *client_reference, *status, *ref, *tenant, *store;
    const char *ref_column;
    long limit; /* -1 when not given */
    int wait, json, all;
    int help; /* -h or --help was given (always accepted) */
    int npos;
    const char *pos[CLI_MAX_POS]; /* positional arguments, borrowed from argv */
};

/* Parses argv[0..argc) (the arguments after the command name). Options may come
 * before, between or after positionals, as "--name value" or "--name=value"; "--"
 * ends options; "-" alone is a positional (stdin). At most max_pos positionals.
 * [out] a: strings borrowed from argv. Returns 0, or -SLUICE_E_INVALID_PARAMETER with
 * a one-line reason in err (errlen bytes) for an unknown or disallowed option, a
 * missing or bad value, or too many positionals. */
int cli_args_parse(int argc, char **argv, unsigned allowed, int max_pos, struct cli_args *a,
                   char *err, size_t errlen);
/* 1 when s asks for help: "help", "--help" or "-h". */
int cli_is_help(const char *s);
/* Prints "sluice CMD: MSG", a blank line and the usage text on stderr. Returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *msg, const char *usage);

/* ---- formatting ------------------------------------------------------------------ */

/* "12,345"; negative numbers keep their sign. Returns out (32 bytes). */
char *cli_fmt_thousands(long long v, char out[32]);
/* Remaining time as "m:ss" below an hour, "h:mm:ss" above; "-:--" when secs < 0
 * (unknown). Returns out (32 bytes). */
char *cli_fmt_duration(long long secs, char out[32]);

/* What a progress line shows, taken from a job monitor. */
struct cli_progress {
    long long total;
    long long done; /* items in a terminal state */
    long long failed;
    double percent;  /* 0..100 */
    double rate;     /* items per second, < 0 unknown */
    long long eta_s; /* seconds to completion, -1 unknown */
};

/* Appends "[#####.....]  12,345/20,000  61.7%  8,123 items/s  ETA 0:01  failed 3" to
 * out; the bar has bar_width cells (0: no bar and no leading brackets). "items/s" is
 * left out while the rate is unknown, "failed N" while nothing failed. */
void cli_fmt_progress(struct buf *out, const struct cli_progress *p, int bar_width);

/* Reads counts, percentComplete, throughput and estimatedCompletionAt of a job
 * monitor (a jansson json_t *, passed as void * to keep <jansson.h> out of callers
 * that do not need it) into p. now_ms (wall clock) turns estimatedCompletionAt into
 * an ETA when the rate is unknown. Terminal jobs have eta 0. */
void cli_progress_from_monitor(const void *monitor, long long now_ms, struct cli_progress *p);

/* Appends the one-line message for an HTTP error answer: "error: CODE: MESSAGE
 * (target T)" from a sluice error body, else "error: HTTP STATUS: <start of body>". */
void cli_fmt_http_error(struct buf *out, long status, const char *body, size_t len);

/* Parses RFC 3339 UTC ("2026-11-29T22:28:50.123Z", fraction optional, "Z" or
 * "+00:00") into ms since the epoch. Returns 0, or -1 when s is not such a time. */
int cli_parse_time(const char *s, long long *ms);

/* ---- URLs ------------------------------------------------------------------------ */

/* Resets b to base (trailing '/' removed) followed by the literal path. */
void cli_url_start(struct buf *b, const char *base, const char *path);
/* Appends "/" and the encoded path segment. */
void cli_url_segment(struct buf *b, const char *seg);
/* Appends "?name=value" or "&name=value" (value encoded); nothing when value is NULL. */
void cli_url_query(struct buf *b, const char *name, const char *value);

/* ---- the submit body ------------------------------------------------------------- */

enum cli_format { CLI_FMT_MORE = 0, CLI_FMT_NDJSON = 1, CLI_FMT_ARRAY = 2, CLI_FMT_CSV = 3 };

/* Decides the input format from its first n bytes: ARRAY when the first byte that is
 * not whitespace (nor a leading UTF-8 byte order mark) is '[', NDJSON for any other
 * byte, MORE when all n bytes are whitespace and more input may follow (at_eof 0).
 * At EOF an all-whitespace input is NDJSON (the server then answers EmptyJob). */
int cli_detect_format(const char *p, size_t n, int at_eof);

/* A request body streamed from a file: NDJSON bytes as they are, or a JSON array
 * wrapped as {"workflow":W,"clientReference":R,"items":<file bytes>}. */
struct cli_body {
    FILE *f;         /* borrowed */
    int format;      /* CLI_FMT_NDJSON, CLI_FMT_ARRAY or CLI_FMT_CSV */
    struct buf head; /* envelope head, sent first */
    size_t head_off;
    struct buf peek; /* bytes read while detecting the format */
    size_t peek_off;
    const char *tail; /* "}" or "" */
    size_t tail_off;
    long long file_left; /* file bytes still to send, -1 until EOF */
    int failed;          /* a read error happened (errno in err) */
    int err;
};

/* Reads the start of f to detect the format and prepares the body. A leading UTF-8
 * BOM is dropped. client_ref may be NULL (left out of the envelope). [out]
 * *content_length: the exact body length when f is a regular file (read to its
 * current end), else -1 (send chunked). Returns 0, or -SLUICE_E_INTERNAL on a read
 * error (errno kept in b->err). Release with cli_body_release() in every case. */
int cli_body_open(struct cli_body *b, FILE *f, const char *workflow, const char *client_ref,
                  long long *content_length);
/* cli_body_open for a CSV file (text/csv): its bytes as they are, no detection. */
int cli_body_open_csv(struct cli_body *b, FILE *f, long long *content_length);
/* An http_read_fn over b (ctx = struct cli_body *): returns up to cap bytes, 0 at the
 * end, HTTP_READ_ABORT on a read error. */
size_t cli_body_read(void *ctx, char *dst, size_t cap);
void cli_body_release(struct cli_body *b);

/* ---- keys ------------------------------------------------------------------------ */

#define CLI_KEY_ID_LEN 12 /* "slk_" + 8 */
#define CLI_KEY_LEN 53    /* key id + "_" + 40 */

/* 1 when t is 1..64 characters of [A-Za-z0-9._-], else 0. */
int cli_tenant_valid(const char *t);
/* Draws a new API key "slk_xxxxxxxx_<40 chars>" ([a-z0-9], ~206 random bits) and its
 * key id (the first 12 characters). Returns 0 or -SLUICE_E_INTERNAL (no randomness).
 * Thread-safe. */
int cli_key_generate(char key[CLI_KEY_LEN + 1], char key_id[CLI_KEY_ID_LEN + 1]);

/* Opens the store of an admin command: flag_url (--store), else SLUICE_STORE, else
 * CLI_DEFAULT_STORE. On failure prints why and returns NULL with [out] *exit_code
 * (CLI_EXIT_USAGE for a malformed URL, CLI_EXIT_ERROR otherwise). Caller closes
 * with store_close(). */
struct store;
struct store *cli_open_store(const char *flag_url, int *exit_code);

#endif
