/* client.c - the HTTP client commands of the sluice binary: submit, status, watch,
 * items, results, cancel, jobs (cli.h has the exit statuses, docs/api-draft.md the
 * API they speak).
 *
 * Output rules, so that scripts can rely on them: stdout carries only results (a job
 * id, a JSON document, NDJSON lines, a table, the final summary line); progress
 * reporting and errors go to stderr. The progress bar is redrawn in place only on a
 * terminal; otherwise progress is a plain line at most every 2 s. Every server error
 * becomes one line "error: CODE: MESSAGE (target T)" on stderr and exit status 3. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "outbound/http_client.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/xmalloc.h"

/* Everything a command needs to talk to the server. */
struct client {
    const char *base; /* SLUICE_URL without trailing '/' (as given) */
    const char *key;  /* SLUICE_KEY or NULL */
    struct http_client *http;
};

static const char usage_text[] =
    "usage: sluice COMMAND [ARGS] [--url URL] [--key KEY]\n"
    "\n"
    "  submit FILE --workflow W [--client-reference R] [--ref-column C] [--wait] [--json]\n"
    "        FILE is NDJSON ({\"ref\",\"data\"} per line) or a JSON array; - is stdin.\n"
    "        With --ref-column, FILE is CSV with a header row; column C holds the refs.\n"
    "        Prints the job id (--json: the job monitor); --wait then watches it.\n"
    "  status JOB [--json]            summary of a job (--json: the job monitor)\n"
    "  watch JOB                      progress until the job ends\n"
    "  items JOB [--status S] [--ref R] [--limit N] [--all]\n"
    "                                 items as NDJSON (--all: every page)\n"
    "  results JOB                    per-item results as NDJSON\n"
    "  cancel JOB [--json]            cancels; prints the new status\n"
    "  jobs [--status S] [--limit N] [--all] [--json]\n"
    "                                 jobs, newest first\n"
    "  keys create --tenant T [--store URL] | keys list | keys revoke KEY_ID\n"
    "                                 API keys (directly on the store)\n"
    "  help                           this text\n"
    "\n"
    "Environment: SLUICE_URL (default " CLI_DEFAULT_URL "), SLUICE_KEY, SLUICE_STORE.\n"
    "Exit status: 0 ok (submit --wait, watch: job Succeeded with no failed item),\n"
    "1 job failed, partially failed or canceled, 2 usage error, 3 server or connection error.\n";

static int usage_error(const char *cmd, const char *msg)
{
    return cli_usage_error(cmd, msg, usage_text);
}

/* ---- requests ------------------------------------------------------------------ */

static int is_terminal_status(const char *s)
{
    return s && (!strcmp(s, "Succeeded") || !strcmp(s, "Failed") || !strcmp(s, "Canceled"));
}

/* Prints the error for a failed exchange: a transport failure (rc < 0) or a non-2xx
 * answer. Returns CLI_EXIT_ERROR. */
static int report_failure(const struct client *c, const char *url, int rc, const char *errmsg,
                          const struct http_response *resp)
{
    if (rc < 0) {
        fprintf(stderr, "error: %s: %s\n", url, errmsg ? errmsg : "request failed");
        return CLI_EXIT_ERROR;
    }
    struct buf line = BUF_INIT;
    cli_fmt_http_error(&line, resp->status, resp->body.data, resp->body.len);
    if (resp->status == 401 && !c->key)
        buf_puts(&line, " (set SLUICE_KEY or pass --key)");
    fprintf(stderr, "%s\n", buf_cstr(&line));
    buf_release(&line);
    return CLI_EXIT_ERROR;
}

/* Sends a body-less request and parses the 2xx JSON answer. [out] *out: a new
 * reference (caller json_decref()s); [out] resp (optional) keeps the headers.
 * Returns 0, or CLI_EXIT_ERROR after printing why. */
static int call_json(struct client *c, const char *method, const char *url, json_t **out,
                     struct http_response *keep)
{
    struct http_response resp;
    char *errmsg = NULL;
    int ret = CLI_EXIT_ERROR;
    http_response_init(&resp);
    struct http_request req = {.method = method,
                               .url = url,
                               .bearer = c->key,
                               .accept = "application/json",
                               .read_len = -1};
    int rc = http_client_do(c->http, &req, &resp, &errmsg);
    if (rc < 0 || resp.status < 200 || resp.status >= 300) {
        report_failure(c, url, rc, errmsg, &resp);
        goto out;
    }
    json_error_t jerr;
    *out = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, &jerr);
    if (!*out) {
        fprintf(stderr, "error: %s: answer is not JSON: %s\n", url, jerr.text);
        goto out;
    }
    ret = 0;
out:
    free(errmsg);
    if (keep) {
        http_response_release(keep);
        *keep = resp;
    } else {
        http_response_release(&resp);
    }
    return ret;
}

static void print_json_line(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long jnum(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? (long long)json_number_value(v) : 0;
}

/* URL of the next page from a list's nextLink, or 0 when there is none. */
static int next_link(const struct client *c, const json_t *list, struct buf *url)
{
    const char *n = jstr(list, "nextLink");
    if (!n || !*n)
        return 0;
    if (n[0] == '/')
        cli_url_start(url, c->base, n);
    else {
        buf_reset(url);
        buf_puts(url, n);
    }
    return 1;
}

/* ---- watch ----------------------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The poll delay: Retry-After in seconds, kept within [0.5 s, 2 s]; 1 s without one. */
static long poll_delay_ms(const char *retry_after)
{
    long ms = 1000;
    if (retry_after) {
        char *end;
        double s = strtod(retry_after, &end);
        if (end != retry_after)
            ms = (long)(s * 1000);
    }
    return ms < 500 ? 500 : ms > 2000 ? 2000 : ms;
}

/* Prints the final summary line on stdout and returns the exit status. */
static int summarize(const json_t *m)
{
    char a[32], b[32], d[32], e[32], f[32];
    const char *id = jstr(m, "id"), *st = jstr(m, "status"), *outcome = jstr(m, "outcome");
    const json_t *cnt = json_object_get(m, "counts");
    const json_t *err = json_object_get(m, "error");
    printf("%s %s", id ? id : "?", st ? st : "?");
    if (outcome)
        printf(" (%s)", outcome);
    printf(": %s items, %s succeeded, %s failed, %s skipped, %s canceled",
           cli_fmt_thousands(jnum(cnt, "total"), a), cli_fmt_thousands(jnum(cnt, "succeeded"), b),
           cli_fmt_thousands(jnum(cnt, "failed"), d), cli_fmt_thousands(jnum(cnt, "skipped"), e),
           cli_fmt_thousands(jnum(cnt, "canceled"), f));
    if (jstr(err, "code"))
        printf("; %s: %s", jstr(err, "code"), jstr(err, "message") ? jstr(err, "message") : "");
    printf("\n");
    fflush(stdout);
    return st && !strcmp(st, "Succeeded") && jnum(cnt, "failed") == 0 ? CLI_EXIT_OK : CLI_EXIT_JOB;
}

#define WATCH_RETRIES 5 /* consecutive failed polls tolerated (server restarting) */

/* What reading one job's monitor holds: its URL, the answer, the parsed monitor and a
 * line to print. One owner, one release. */
struct job_view {
    struct buf url, line;
    struct http_response resp;
    json_t *m;
};

static void job_view_init(struct job_view *v)
{
    buf_init(&v->url);
    buf_init(&v->line);
    http_response_init(&v->resp);
    v->m = NULL;
}

static void job_view_release(struct job_view *v)
{
    json_decref(v->m);
    http_response_release(&v->resp);
    buf_release(&v->url);
    buf_release(&v->line);
}

static int watch(struct client *c, const char *job_id)
{
    struct job_view v;
    int ret = CLI_EXIT_ERROR, failures = 0;
    /* The bar goes where a person looks; stderr first so stdout stays clean. */
    FILE *tty = isatty(STDERR_FILENO) ? stderr : isatty(STDOUT_FILENO) ? stdout : NULL;
    size_t drawn = 0;          /* length of the bar on screen, to blank leftovers */
    long long last_plain = -1; /* when the last plain progress line was printed */

    job_view_init(&v);
    struct buf *url = &v.url, *line = &v.line;
    struct http_response *resp = &v.resp;
    cli_url_start(url, c->base, "/v1/jobs");
    cli_url_segment(url, job_id);
    for (;;) {
        struct http_request req = {.method = "GET",
                                   .url = url->data,
                                   .bearer = c->key,
                                   .accept = "application/json",
                                   .read_len = -1};
        char *errmsg = NULL;
        int rc = http_client_do(c->http, &req, resp, &errmsg);
        int transient = rc < 0 || resp->status == 502 || resp->status == 503 || resp->status == 504;
        if (rc < 0 || resp->status != 200) {
            if (transient && ++failures < WATCH_RETRIES) {
                free(errmsg);
                sleep_ms(1000);
                continue;
            }
            if (tty && drawn)
                fputc('\n', tty);
            report_failure(c, url->data, rc, errmsg, resp);
            free(errmsg);
            goto out;
        }
        failures = 0;
        json_decref(v.m);
        v.m = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
        if (!json_is_object(v.m)) {
            fprintf(stderr, "error: %s: answer is not a job monitor\n", url->data);
            goto out;
        }
        const char *st = jstr(v.m, "status");
        int done = is_terminal_status(st);
        struct cli_progress p;
        cli_progress_from_monitor(v.m, clock_now_ms(), &p);
        buf_reset(line);
        if (tty) {
            cli_fmt_progress(line, &p, 20);
            size_t len = line->len;
            while (line->len < drawn)
                buf_putc(line, ' ');
            fprintf(tty, "\r%s", line->data);
            drawn = len;
            if (done)
                fputc('\n', tty);
            fflush(tty);
        } else {
            long long now = clock_mono_ms();
            if (done || last_plain < 0 || now - last_plain >= 2000) {
                buf_printf(line, "%s %s  ", job_id, st ? st : "?");
                cli_fmt_progress(line, &p, 0);
                fprintf(stderr, "%s\n", line->data);
                last_plain = now;
            }
        }
        if (done)
            break;
        sleep_ms(poll_delay_ms(resp->retry_after));
    }
    ret = summarize(v.m);
out:
    job_view_release(&v);
    return ret;
}

/* ---- commands --------------------------------------------------------------------- */

static int cmd_submit(struct client *c, const struct cli_args *a)
{
    const char *path = a->pos[0];
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    struct cli_body body;
    struct buf url = BUF_INIT;
    struct http_response resp;
    char *errmsg = NULL;
    json_t *m = NULL;
    long long clen = -1;
    int ret = CLI_EXIT_ERROR;

    http_response_init(&resp);
    memset(&body, 0, sizeof body);
    if (!f) {
        fprintf(stderr, "error: cannot open %s: %s\n", path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    if ((a->ref_column ? cli_body_open_csv(&body, f, &clen)
                       : cli_body_open(&body, f, a->workflow, a->client_reference, &clen)) < 0) {
        fprintf(stderr, "error: reading %s: %s\n", path, strerror(body.err));
        goto out;
    }
    cli_url_start(&url, c->base, "/v1/jobs");
    if (body.format != CLI_FMT_ARRAY) { /* NDJSON and CSV: the job's options in the query */
        cli_url_query(&url, "workflow", a->workflow);
        cli_url_query(&url, "clientReference", a->client_reference);
        cli_url_query(&url, "refColumn", a->ref_column);
    }
    struct http_request req = {.method = "POST",
                               .url = url.data,
                               .bearer = c->key,
                               .accept = "application/json",
                               .content_type = body.format == CLI_FMT_ARRAY ? "application/json"
                                               : body.format == CLI_FMT_CSV
                                                   ? "text/csv"
                                                   : "application/x-ndjson",
                               .read = cli_body_read,
                               .read_ctx = &body,
                               .read_len = clen};
    int rc = http_client_do(c->http, &req, &resp, &errmsg);
    if (body.failed) {
        fprintf(stderr, "error: reading %s: %s\n", path, strerror(body.err));
        goto out;
    }
    if (rc < 0 || resp.status < 200 || resp.status >= 300) {
        report_failure(c, url.data, rc, errmsg, &resp);
        goto out;
    }
    m = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
    const char *id = jstr(m, "id");
    if (!id) {
        fprintf(stderr, "error: %s: answer has no job id\n", url.data);
        goto out;
    }
    if (a->json)
        print_json_line(m);
    else
        printf("%s\n", id);
    fflush(stdout);
    ret = a->wait ? watch(c, id) : CLI_EXIT_OK;
out:
    json_decref(m);
    free(errmsg);
    http_response_release(&resp);
    buf_release(&url);
    cli_body_release(&body);
    if (f != stdin)
        fclose(f);
    return ret;
}

static void job_url(struct buf *url, const struct client *c, const char *job_id, const char *rest)
{
    cli_url_start(url, c->base, "/v1/jobs");
    cli_url_segment(url, job_id);
    buf_puts(url, rest);
}

static void print_time_field(const char *label, const json_t *m, const char *k)
{
    const char *v = jstr(m, k);
    if (v)
        printf("%-11s %s\n", label, v);
}

static int cmd_status(struct client *c, const struct cli_args *a)
{
    struct job_view v;
    char n1[32], n2[32], n3[32], n4[32], n5[32], n6[32];

    job_view_init(&v);
    const json_t *m;
    job_url(&v.url, c, a->pos[0], "");
    int ret = call_json(c, "GET", v.url.data, &v.m, &v.resp);
    m = v.m;
    if (ret)
        goto out;
    if (a->json) {
        /* The server's bytes exactly, one document per line. */
        fwrite(v.resp.body.data, 1, v.resp.body.len, stdout);
        if (v.resp.body.len && v.resp.body.data[v.resp.body.len - 1] != '\n')
            fputc('\n', stdout);
        goto out;
    }
    const json_t *cnt = json_object_get(m, "counts");
    const json_t *err = json_object_get(m, "error");
    struct cli_progress p;
    cli_progress_from_monitor(m, clock_now_ms(), &p);
    cli_fmt_progress(&v.line, &p, 0);
    printf("%-11s %s\n", "job:", jstr(m, "id") ? jstr(m, "id") : a->pos[0]);
    printf("%-11s %s\n", "status:", jstr(m, "status") ? jstr(m, "status") : "?");
    if (jstr(m, "outcome"))
        printf("%-11s %s\n", "outcome:", jstr(m, "outcome"));
    if (jstr(err, "code"))
        printf("%-11s %s: %s\n", "error:", jstr(err, "code"),
               jstr(err, "message") ? jstr(err, "message") : "");
    printf("%-11s %s\n", "workflow:", jstr(m, "workflow") ? jstr(m, "workflow") : "?");
    if (jstr(m, "clientReference"))
        printf("%-11s %s\n", "reference:", jstr(m, "clientReference"));
    printf("%-11s %s\n", "progress:", v.line.data);
    printf("%-11s succeeded %s  failed %s  skipped %s  canceled %s  pending %s  processing %s\n",
           "counts:", cli_fmt_thousands(jnum(cnt, "succeeded"), n1),
           cli_fmt_thousands(jnum(cnt, "failed"), n2), cli_fmt_thousands(jnum(cnt, "skipped"), n3),
           cli_fmt_thousands(jnum(cnt, "canceled"), n4),
           cli_fmt_thousands(jnum(cnt, "pending"), n5),
           cli_fmt_thousands(jnum(cnt, "processing"), n6));
    print_time_field("created:", m, "createdAt");
    print_time_field("started:", m, "startedAt");
    print_time_field("progressed:", m, "lastProgressAt");
    if (!is_terminal_status(jstr(m, "status")))
        print_time_field("eta:", m, "estimatedCompletionAt");
    print_time_field("completed:", m, "completedAt");
out:
    job_view_release(&v);
    return ret;
}

static int cmd_watch(struct client *c, const struct cli_args *a)
{
    return watch(c, a->pos[0]);
}

/* Shared by items and jobs: fetches url and the following pages (with all), calling
 * row() for each element of "value"; header (may be NULL) runs once the first page has
 * arrived, so that a failure prints nothing on stdout. */
static int list_pages(struct client *c, struct buf *url, int all, void (*header)(void),
                      void (*row)(const json_t *))
{
    int ret = 0;
    for (;;) {
        json_t *page = NULL;
        ret = call_json(c, "GET", url->data, &page, NULL);
        if (ret)
            return ret;
        if (header) {
            header();
            header = NULL;
        }
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(page, "value"), i, v)
        {
            row(v);
        }
        int more = next_link(c, page, url);
        json_decref(page);
        if (!more)
            break;
        if (!all) {
            fprintf(stderr, "(more on the next page: use --all)\n");
            break;
        }
    }
    fflush(stdout);
    return ret;
}

static int cmd_items(struct client *c, const struct cli_args *a)
{
    struct buf url = BUF_INIT;
    char lim[24];
    job_url(&url, c, a->pos[0], "/items");
    cli_url_query(&url, "status", a->status);
    cli_url_query(&url, "ref", a->ref);
    if (a->limit > 0) {
        snprintf(lim, sizeof lim, "%ld", a->limit);
        cli_url_query(&url, "limit", lim);
    }
    int ret = list_pages(c, &url, a->all, NULL, print_json_line);
    buf_release(&url);
    return ret;
}

static int write_stdout(void *ctx, const char *data, size_t n)
{
    (void)ctx;
    return fwrite(data, 1, n, stdout) == n ? 0 : -1;
}

static int cmd_results(struct client *c, const struct cli_args *a)
{
    struct buf url = BUF_INIT;
    struct http_response resp;
    char *errmsg = NULL;
    int ret = CLI_EXIT_OK;
    http_response_init(&resp);
    job_url(&url, c, a->pos[0], "/results");
    struct http_request req = {.method = "GET",
                               .url = url.data,
                               .bearer = c->key,
                               .accept = "application/x-ndjson",
                               .read_len = -1,
                               .write = write_stdout};
    int rc = http_client_do(c->http, &req, &resp, &errmsg);
    if (rc < 0 || resp.status < 200 || resp.status >= 300)
        ret = report_failure(c, url.data, rc, errmsg, &resp);
    if (fflush(stdout) != 0 && ret == CLI_EXIT_OK) {
        fprintf(stderr, "error: writing results: %s\n", strerror(errno));
        ret = CLI_EXIT_ERROR;
    }
    free(errmsg);
    http_response_release(&resp);
    buf_release(&url);
    return ret;
}

static int cmd_cancel(struct client *c, const struct cli_args *a)
{
    struct buf url = BUF_INIT;
    json_t *m = NULL;
    job_url(&url, c, a->pos[0], ":cancel");
    int ret = call_json(c, "POST", url.data, &m, NULL);
    if (!ret) {
        if (a->json)
            print_json_line(m);
        else
            printf("%s\n", jstr(m, "status") ? jstr(m, "status") : "?");
    }
    json_decref(m);
    buf_release(&url);
    return ret;
}

static void print_job_row(const json_t *j)
{
    char d[32], t[32], dt[72];
    const json_t *cnt = json_object_get(j, "counts");
    long long done =
        jnum(cnt, "succeeded") + jnum(cnt, "failed") + jnum(cnt, "skipped") + jnum(cnt, "canceled");
    snprintf(dt, sizeof dt, "%s/%s", cli_fmt_thousands(done, d),
             cli_fmt_thousands(jnum(cnt, "total"), t));
    printf("%-28s  %-10s  %-24s  %21s  %s\n", jstr(j, "id") ? jstr(j, "id") : "?",
           jstr(j, "status") ? jstr(j, "status") : "?",
           jstr(j, "workflow") ? jstr(j, "workflow") : "?", dt,
           jstr(j, "createdAt") ? jstr(j, "createdAt") : "-");
}

static void print_jobs_header(void)
{
    printf("%-28s  %-10s  %-24s  %21s  %s\n", "ID", "STATUS", "WORKFLOW", "DONE/TOTAL", "CREATED");
}

static int cmd_jobs(struct client *c, const struct cli_args *a)
{
    struct buf url = BUF_INIT;
    char lim[24];
    cli_url_start(&url, c->base, "/v1/jobs");
    cli_url_query(&url, "status", a->status);
    if (a->limit > 0) {
        snprintf(lim, sizeof lim, "%ld", a->limit);
        cli_url_query(&url, "limit", lim);
    }
    int ret = list_pages(c, &url, a->all, a->json ? NULL : print_jobs_header,
                         a->json ? print_json_line : print_job_row);
    buf_release(&url);
    return ret;
}

/* ---- dispatch ------------------------------------------------------------------- */

#define NET (CLI_OPT_URL | CLI_OPT_KEY)

static const struct command {
    const char *name;
    int (*run)(struct client *c, const struct cli_args *a);
    unsigned opts;
    int npos; /* exact number of positionals */
} commands[] = {
    {"submit", cmd_submit,
     NET | CLI_OPT_WORKFLOW | CLI_OPT_CLIENT_REF | CLI_OPT_REF_COLUMN | CLI_OPT_WAIT | CLI_OPT_JSON,
     1},
    {"status", cmd_status, NET | CLI_OPT_JSON, 1},
    {"watch", cmd_watch, NET, 1},
    {"items", cmd_items, NET | CLI_OPT_STATUS | CLI_OPT_REF | CLI_OPT_LIMIT | CLI_OPT_ALL, 1},
    {"results", cmd_results, NET, 1},
    {"cancel", cmd_cancel, NET | CLI_OPT_JSON, 1},
    {"jobs", cmd_jobs, NET | CLI_OPT_STATUS | CLI_OPT_LIMIT | CLI_OPT_ALL | CLI_OPT_JSON, 0},
};

int cli_is_client_command(const char *name)
{
    if (!name)
        return 0;
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h"))
        return 1;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, name))
            return 1;
    return 0;
}

int cli_client_main(int argc, char **argv)
{
    const char *name = argc > 0 ? argv[0] : "help";
    const struct command *cmd = NULL;
    struct cli_args a;
    char err[256];

    if (cli_is_help(name)) {
        fputs(usage_text, stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, name))
            cmd = &commands[i];
    if (!cmd)
        return usage_error(name, "unknown command");
    if (cli_args_parse(argc - 1, argv + 1, cmd->opts, cmd->npos, &a, err, sizeof err) < 0)
        return usage_error(name, err);
    if (a.help) {
        fputs(usage_text, stdout);
        return CLI_EXIT_OK;
    }
    if (a.npos != cmd->npos)
        return usage_error(name, cmd->npos == 1 && !strcmp(name, "submit") ? "FILE is missing"
                                                                           : "JOB is missing");
    if (cmd->run == cmd_submit && (!a.workflow || !*a.workflow))
        return usage_error(name, "--workflow is required");

    struct client c = {.base = a.url ? a.url : getenv("SLUICE_URL"),
                       .key = a.key ? a.key : getenv("SLUICE_KEY")};
    if (!c.base || !*c.base)
        c.base = CLI_DEFAULT_URL;
    if (c.key && !*c.key)
        c.key = NULL;
    if (http_client_new(&c.http) < 0) {
        fprintf(stderr, "error: cannot initialise the HTTP client\n");
        return CLI_EXIT_ERROR;
    }
    int ret = cmd->run(&c, &a);
    http_client_free(c.http);
    return ret;
}
