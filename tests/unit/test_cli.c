/* test_cli.c - unit tests of the command-line client's pure parts (src/cli/cli_int.h):
 * argument parsing, number/duration/progress formatting, error lines, URL building,
 * input format detection, the streamed submit body, key and tenant rules. The
 * network side is covered by the end-to-end tests against the real server. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "outbound/http_client.h"
#include "testhelp.h"
#include "util/buf.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/url.h"

/* ---- arguments ---------------------------------------------------------------- */

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define SUBMIT_OPTS                                                                                \
    (CLI_OPT_URL | CLI_OPT_KEY | CLI_OPT_WORKFLOW | CLI_OPT_CLIENT_REF | CLI_OPT_WAIT |            \
     CLI_OPT_JSON)

TEST(args_basic)
{
    struct cli_args a;
    char err[128] = "";
    char **v = ARGV("f.ndjson", "--workflow", "noop", "--wait", "--client-reference=r 1", "--url",
                    "http://h:1/");
    CHECK_EQ_INT(cli_args_parse(7, v, SUBMIT_OPTS, 1, &a, err, sizeof err), 0);
    CHECK_EQ_INT(a.npos, 1);
    CHECK_EQ_STR(a.pos[0], "f.ndjson");
    CHECK_EQ_STR(a.workflow, "noop");
    CHECK_EQ_STR(a.client_reference, "r 1");
    CHECK_EQ_STR(a.url, "http://h:1/");
    CHECK_EQ_INT(a.wait, 1);
    CHECK_EQ_INT(a.json, 0);
    CHECK_EQ_INT(a.limit, -1);
    CHECK(a.key == NULL);
}

TEST(args_stdin_and_double_dash)
{
    struct cli_args a;
    char err[128] = "";
    CHECK_EQ_INT(cli_args_parse(1, ARGV("-"), SUBMIT_OPTS, 1, &a, err, sizeof err), 0);
    CHECK_EQ_STR(a.pos[0], "-");
    CHECK_EQ_INT(cli_args_parse(3, ARGV("--json", "--", "--weird-name"), SUBMIT_OPTS, 1, &a, err,
                                sizeof err),
                 0);
    CHECK_EQ_INT(a.json, 1);
    CHECK_EQ_STR(a.pos[0], "--weird-name");
    CHECK_EQ_INT(cli_args_parse(2, ARGV("job_1", "-h"), CLI_OPT_JSON, 1, &a, err, sizeof err), 0);
    CHECK_EQ_INT(a.help, 1);
}

TEST(args_errors)
{
    struct cli_args a;
    char err[128];
    CHECK_EQ_INT(cli_args_parse(1, ARGV("--bogus"), SUBMIT_OPTS, 1, &a, err, sizeof err),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_STR(err, "unknown option '--bogus'");
    /* Known option, not allowed for this command. */
    CHECK_EQ_INT(cli_args_parse(2, ARGV("--limit", "3"), SUBMIT_OPTS, 1, &a, err, sizeof err),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_STR(err, "unknown option '--limit'");
    CHECK_EQ_INT(cli_args_parse(1, ARGV("--workflow"), SUBMIT_OPTS, 1, &a, err, sizeof err),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_STR(err, "option '--workflow' needs a value");
    CHECK_EQ_INT(cli_args_parse(1, ARGV("--wait=1"), SUBMIT_OPTS, 1, &a, err, sizeof err),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(cli_args_parse(2, ARGV("a", "b"), SUBMIT_OPTS, 1, &a, err, sizeof err),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_STR(err, "unexpected argument 'b'");
    CHECK_EQ_INT(cli_args_parse(1, ARGV("-x"), SUBMIT_OPTS, 1, &a, err, sizeof err),
                 -SLUICE_E_INVALID_PARAMETER);
}

TEST(args_limit)
{
    struct cli_args a;
    char err[128];
    CHECK_EQ_INT(cli_args_parse(2, ARGV("--limit", "250"), CLI_OPT_LIMIT, 0, &a, err, sizeof err),
                 0);
    CHECK_EQ_INT(a.limit, 250);
    CHECK_EQ_INT(cli_args_parse(1, ARGV("--limit=0"), CLI_OPT_LIMIT, 0, &a, err, sizeof err),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(cli_args_parse(1, ARGV("--limit=12x"), CLI_OPT_LIMIT, 0, &a, err, sizeof err),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(cli_args_parse(1, ARGV("--limit=99999999999999999999"), CLI_OPT_LIMIT, 0, &a, err,
                                sizeof err),
                 -SLUICE_E_INVALID_PARAMETER);
}

TEST(is_client_command)
{
    CHECK(cli_is_client_command("submit"));
    CHECK(cli_is_client_command("jobs"));
    CHECK(cli_is_client_command("help"));
    CHECK(!cli_is_client_command("keys"));
    CHECK(!cli_is_client_command("serve"));
    CHECK(!cli_is_client_command(NULL));
}

/* ---- formatting ---------------------------------------------------------------- */

TEST(thousands)
{
    char o[32];
    CHECK_EQ_STR(cli_fmt_thousands(0, o), "0");
    CHECK_EQ_STR(cli_fmt_thousands(999, o), "999");
    CHECK_EQ_STR(cli_fmt_thousands(1000, o), "1,000");
    CHECK_EQ_STR(cli_fmt_thousands(12345, o), "12,345");
    CHECK_EQ_STR(cli_fmt_thousands(123456, o), "123,456");
    CHECK_EQ_STR(cli_fmt_thousands(1234567, o), "1,234,567");
    CHECK_EQ_STR(cli_fmt_thousands(-1234, o), "-1,234");
    CHECK_EQ_STR(cli_fmt_thousands(-9223372036854775807LL - 1, o), "-9,223,372,036,854,775,808");
}

TEST(duration)
{
    char o[32];
    CHECK_EQ_STR(cli_fmt_duration(-1, o), "-:--");
    CHECK_EQ_STR(cli_fmt_duration(0, o), "0:00");
    CHECK_EQ_STR(cli_fmt_duration(1, o), "0:01");
    CHECK_EQ_STR(cli_fmt_duration(61, o), "1:01");
    CHECK_EQ_STR(cli_fmt_duration(3599, o), "59:59");
    CHECK_EQ_STR(cli_fmt_duration(3600, o), "1:00:00");
    CHECK_EQ_STR(cli_fmt_duration(90061, o), "25:01:01");
}

TEST(progress_line)
{
    struct buf b = BUF_INIT;
    struct cli_progress p = {
        .total = 20000, .done = 12345, .failed = 3, .percent = 61.725, .rate = 8123.4, .eta_s = 1};
    cli_fmt_progress(&b, &p, 20);
    CHECK_EQ_STR(b.data,
                 "[############........]  12,345/20,000  61.7%  8,123 items/s  ETA 0:01  failed 3");
    buf_reset(&b);
    cli_fmt_progress(&b, &p, 0);
    CHECK_EQ_STR(b.data, "12,345/20,000  61.7%  8,123 items/s  ETA 0:01  failed 3");

    /* Nothing failed, rate and ETA unknown. */
    struct cli_progress q = {.total = 10, .done = 0, .percent = 0, .rate = -1, .eta_s = -1};
    buf_reset(&b);
    cli_fmt_progress(&b, &q, 4);
    CHECK_EQ_STR(b.data, "[....]  0/10  0.0%  ETA -:--");

    /* 99.9% does not fill the bar; 100% does; out-of-range percentages are clamped. */
    struct cli_progress r = {.total = 1000, .done = 999, .percent = 99.9, .rate = 0, .eta_s = 0};
    buf_reset(&b);
    cli_fmt_progress(&b, &r, 10);
    CHECK_EQ_STR(b.data, "[#########.]  999/1,000  99.9%  0 items/s  ETA 0:00");
    r.percent = 130;
    r.done = 1000;
    buf_reset(&b);
    cli_fmt_progress(&b, &r, 10);
    CHECK_EQ_STR(b.data, "[##########]  1,000/1,000  100.0%  0 items/s  ETA 0:00");
    buf_release(&b);
}

TEST(progress_from_monitor)
{
    const char *running =
        "{\"id\":\"job_x\",\"status\":\"Running\",\"counts\":{\"total\":20000,\"pending\":100,"
        "\"processing\":900,\"succeeded\":17000,\"failed\":1000,\"skipped\":500,\"canceled\":0},"
        "\"percentComplete\":92.5,\"throughput\":{\"itemsPerSecond\":500.0},"
        "\"estimatedCompletionAt\":\"2026-11-29T22:28:50.123Z\"}";
    json_t *m = json_loads(running, 0, NULL);
    CHECK(m != NULL);
    struct cli_progress p;
    cli_progress_from_monitor(m, 0, &p);
    CHECK_EQ_INT(p.total, 20000);
    CHECK_EQ_INT(p.done, 18500);
    CHECK_EQ_INT(p.failed, 1000);
    CHECK(p.percent > 92.49 && p.percent < 92.51);
    CHECK(p.rate > 499.9 && p.rate < 500.1);
    CHECK_EQ_INT(p.eta_s, 3); /* ceil(1500 / 500) */
    json_decref(m);

    /* No rate: the server's estimate, relative to now, rounded up. */
    m = json_loads("{\"status\":\"Running\",\"counts\":{\"total\":4,\"succeeded\":1},"
                   "\"throughput\":{\"itemsPerSecond\":null},"
                   "\"estimatedCompletionAt\":\"2026-11-29T22:28:50.123Z\"}",
                   0, NULL);
    long long at;
    CHECK_EQ_INT(cli_parse_time("2026-11-29T22:28:50.123Z", &at), 0);
    cli_progress_from_monitor(m, at - 61500, &p);
    CHECK_EQ_INT(p.eta_s, 62);
    CHECK(p.rate < 0);
    CHECK(p.percent > 24.99 && p.percent < 25.01); /* computed: no percentComplete */
    json_decref(m);

    /* Terminal: ETA 0 whatever else says. */
    m = json_loads("{\"status\":\"Succeeded\",\"counts\":{\"total\":4,\"succeeded\":4},"
                   "\"percentComplete\":100,\"estimatedCompletionAt\":null}",
                   0, NULL);
    cli_progress_from_monitor(m, 0, &p);
    CHECK_EQ_INT(p.eta_s, 0);
    CHECK_EQ_INT(p.done, 4);
    json_decref(m);

    /* Nothing known. */
    m = json_loads("{\"status\":\"NotStarted\"}", 0, NULL);
    cli_progress_from_monitor(m, 0, &p);
    CHECK_EQ_INT(p.eta_s, -1);
    CHECK_EQ_INT(p.total, 0);
    json_decref(m);
}

TEST(parse_time)
{
    long long ms;
    CHECK_EQ_INT(cli_parse_time("1970-01-01T00:00:01Z", &ms), 0);
    CHECK_EQ_INT(ms, 1000);
    CHECK_EQ_INT(cli_parse_time("1970-01-01T00:00:01.5Z", &ms), 0);
    CHECK_EQ_INT(ms, 1500);
    CHECK_EQ_INT(cli_parse_time("1970-01-01T00:01:00.123456+00:00", &ms), 0);
    CHECK_EQ_INT(ms, 60123);
    CHECK_EQ_INT(cli_parse_time("2026-11-29T22:28:50.123Z", &ms), 0);
    CHECK_EQ_INT(ms, 1795991330123LL);
    CHECK_EQ_INT(cli_parse_time("2026-11-29 22:28:50Z", &ms), -1);
    CHECK_EQ_INT(cli_parse_time("2026-11-29T22:28:50+01:00", &ms), -1);
    CHECK_EQ_INT(cli_parse_time("", &ms), -1);
    CHECK_EQ_INT(cli_parse_time(NULL, &ms), -1);
}

TEST(http_error_line)
{
    struct buf b = BUF_INIT;
    const char *body = "{\"error\":{\"code\":\"InvalidItem\",\"message\":\"ref is missing\","
                       "\"target\":\"items[3].ref\"}}";
    cli_fmt_http_error(&b, 422, body, strlen(body));
    CHECK_EQ_STR(b.data, "error: InvalidItem: ref is missing (target items[3].ref)");
    buf_reset(&b);
    body = "{\"error\":{\"code\":\"NotFound\",\"message\":\"no such resource\"}}";
    cli_fmt_http_error(&b, 404, body, strlen(body));
    CHECK_EQ_STR(b.data, "error: NotFound: no such resource");
    buf_reset(&b);
    body = "<html>\nBad gateway</html>";
    cli_fmt_http_error(&b, 502, body, strlen(body));
    CHECK_EQ_STR(b.data, "error: HTTP 502: <html> Bad gateway</html>");
    buf_reset(&b);
    cli_fmt_http_error(&b, 500, NULL, 0);
    CHECK_EQ_STR(b.data, "error: HTTP 500");
    buf_release(&b);
}

/* ---- URLs ------------------------------------------------------------------------- */

TEST(urls)
{
    struct buf b = BUF_INIT;
    url_encode(&b, "a b&c=d/é~._-");
    CHECK_EQ_STR(b.data, "a%20b%26c%3Dd%2F%C3%A9~._-");

    cli_url_start(&b, "http://h:8080//", "/v1/jobs");
    CHECK_EQ_STR(b.data, "http://h:8080/v1/jobs");
    cli_url_query(&b, "workflow", "products.upsert");
    cli_url_query(&b, "clientReference", NULL);
    cli_url_query(&b, "clientReference", "batch #7?");
    CHECK_EQ_STR(b.data,
                 "http://h:8080/v1/jobs?workflow=products.upsert&clientReference=batch%20%237%3F");

    cli_url_start(&b, "http://h", "/v1/jobs");
    cli_url_segment(&b, "job_abc");
    buf_puts(&b, ":cancel");
    CHECK_EQ_STR(b.data, "http://h/v1/jobs/job_abc:cancel");

    cli_url_start(&b, "http://h", "/v1/jobs");
    cli_url_segment(&b, "../x?y");
    buf_puts(&b, "/items");
    cli_url_query(&b, "status", "Failed");
    CHECK_EQ_STR(b.data, "http://h/v1/jobs/..%2Fx%3Fy/items?status=Failed");
    buf_release(&b);
}

/* ---- the submit body ---------------------------------------------------------------- */

TEST(detect_format)
{
    CHECK_EQ_INT(cli_detect_format("[{}]", 4, 0), CLI_FMT_ARRAY);
    CHECK_EQ_INT(cli_detect_format(" \n\t\r[", 5, 0), CLI_FMT_ARRAY);
    CHECK_EQ_INT(cli_detect_format("{\"ref\":1}\n", 10, 0), CLI_FMT_NDJSON);
    CHECK_EQ_INT(cli_detect_format("  {", 3, 0), CLI_FMT_NDJSON);
    CHECK_EQ_INT(cli_detect_format("   ", 3, 0), CLI_FMT_MORE);
    CHECK_EQ_INT(cli_detect_format("", 0, 0), CLI_FMT_MORE);
    CHECK_EQ_INT(cli_detect_format("   ", 3, 1), CLI_FMT_NDJSON);
    CHECK_EQ_INT(cli_detect_format("", 0, 1), CLI_FMT_NDJSON);
    CHECK_EQ_INT(cli_detect_format("\xEF\xBB\xBF[", 4, 0), CLI_FMT_ARRAY);
    CHECK_EQ_INT(cli_detect_format("\xEF\xBB", 2, 0), CLI_FMT_MORE);
    CHECK_EQ_INT(cli_detect_format("x", 1, 0), CLI_FMT_NDJSON);
}

/* Drains body b with reads of at most chunk bytes into out. Returns 0, or -1 when
 * the reader aborted or returned more than asked. */
static int drain(struct cli_body *b, size_t chunk, struct buf *out)
{
    char tmp[8192];
    for (int guard = 0; guard < 1000000; guard++) {
        size_t got = cli_body_read(b, tmp, chunk);
        if (got == HTTP_READ_ABORT || got > chunk)
            return -1;
        if (got == 0)
            return 0;
        buf_append(out, tmp, got);
    }
    return -1;
}

/* Opens a memory stream over s, builds the body with each chunk size, and checks the
 * bytes produced are expect. Returns 0 or the first failing chunk size. */
static size_t body_roundtrip(const char *s, const char *wf, const char *ref, int fmt,
                             const char *expect)
{
    static const size_t chunks[] = {1, 2, 3, 5, 7, 11, 13, 16, 64, 4096, 8192};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        FILE *f = fmemopen((void *)s, strlen(s), "r");
        struct cli_body b;
        struct buf out = BUF_INIT;
        long long clen = 0;
        int ok = f && cli_body_open(&b, f, wf, ref, &clen) == 0 && b.format == fmt &&
                 drain(&b, chunks[k], &out) == 0 && out.len == strlen(expect) &&
                 memcmp(out.data ? out.data : "", expect, out.len) == 0 &&
                 /* unknown, or exact when the input fitted in the detection read */
                 (clen == -1 || clen == (long long)out.len);
        if (!ok)
            fprintf(stderr, "chunk %zu: got \"%s\"\n", chunks[k], buf_cstr(&out));
        cli_body_release(&b);
        buf_release(&out);
        if (f)
            fclose(f);
        if (!ok)
            return chunks[k];
    }
    return 0;
}

TEST(body_envelope)
{
    const char *arr = "[{\"ref\":\"a\",\"data\":{\"x\":1}},\n {\"ref\":\"b\",\"data\":null}]\n";
    struct buf want = BUF_INIT;
    buf_printf(
        &want,
        "{\"workflow\":\"products.upsert\",\"clientReference\":\"r \\\"1\\\"\",\"items\":%s}", arr);
    CHECK_EQ_INT(body_roundtrip(arr, "products.upsert", "r \"1\"", CLI_FMT_ARRAY, want.data), 0);

    buf_reset(&want);
    buf_printf(&want, "{\"workflow\":\"noop\",\"items\":%s}", arr);
    CHECK_EQ_INT(body_roundtrip(arr, "noop", NULL, CLI_FMT_ARRAY, want.data), 0);

    /* Leading whitespace is kept (valid JSON), a BOM is dropped. */
    CHECK_EQ_INT(body_roundtrip("\xEF\xBB\xBF \n[]", "noop", NULL, CLI_FMT_ARRAY,
                                "{\"workflow\":\"noop\",\"items\": \n[]}"),
                 0);
    buf_release(&want);
}

TEST(body_envelope_large)
{
    /* Whitespace longer than one detection read, then a big array. */
    struct buf in = BUF_INIT, want = BUF_INIT;
    for (int i = 0; i < 5000; i++)
        buf_putc(&in, ' ');
    buf_putc(&in, '[');
    for (int i = 0; i < 3000; i++)
        buf_printf(&in, "%s{\"ref\":\"SKU-%d\",\"data\":{\"n\":%d}}", i ? "," : "", i, i);
    buf_putc(&in, ']');
    buf_printf(&want, "{\"workflow\":\"w\",\"items\":%s}", in.data);
    CHECK_EQ_INT(body_roundtrip(in.data, "w", NULL, CLI_FMT_ARRAY, want.data), 0);
    buf_release(&in);
    buf_release(&want);
}

TEST(body_ndjson_passthrough)
{
    const char *nd = "{\"ref\":\"a\",\"data\":1}\n{\"ref\":\"b\",\"data\":2}\n";
    CHECK_EQ_INT(body_roundtrip(nd, "noop", "x", CLI_FMT_NDJSON, nd), 0);
    CHECK_EQ_INT(body_roundtrip("", "noop", NULL, CLI_FMT_NDJSON, ""), 0);
    CHECK_EQ_INT(body_roundtrip("\n\n  \n", "noop", NULL, CLI_FMT_NDJSON, "\n\n  \n"), 0);
}

TEST(body_known_length)
{
    /* A regular file: the length is known in advance and must match what is sent. */
    FILE *f = tmpfile();
    CHECK(f != NULL);
    const char *arr = "\n[{\"ref\":\"a\",\"data\":{}}]";
    fputs(arr, f);
    rewind(f);
    struct cli_body b;
    struct buf out = BUF_INIT;
    long long clen = 0;
    CHECK_EQ_INT(cli_body_open(&b, f, "noop", "r", &clen), 0);
    CHECK_EQ_INT(drain(&b, 3, &out), 0);
    CHECK_EQ_STR(out.data, "{\"workflow\":\"noop\",\"clientReference\":\"r\",\"items\":\n[{\"ref\":"
                           "\"a\",\"data\":{}}]}");
    CHECK_EQ_INT(clen, (long long)out.len);
    cli_body_release(&b);
    buf_release(&out);

    /* Starting mid-file (stdin redirected after a partial read) counts from there. */
    rewind(f);
    CHECK_EQ_INT(fseek(f, 1, SEEK_SET), 0);
    CHECK_EQ_INT(cli_body_open(&b, f, "noop", NULL, &clen), 0);
    CHECK_EQ_INT(drain(&b, 4096, &out), 0);
    CHECK_EQ_INT(clen, (long long)out.len);
    CHECK_EQ_STR(out.data, "{\"workflow\":\"noop\",\"items\":[{\"ref\":\"a\",\"data\":{}}]}");
    cli_body_release(&b);
    buf_release(&out);
    fclose(f);
}

/* ---- keys ------------------------------------------------------------------------- */

TEST(tenant_names)
{
    CHECK(cli_tenant_valid("acme"));
    CHECK(cli_tenant_valid("A.b_c-9"));
    CHECK(cli_tenant_valid("x"));
    char t[66];
    memset(t, 'a', 64);
    t[64] = '\0';
    CHECK(cli_tenant_valid(t));
    t[64] = 'a';
    t[65] = '\0';
    CHECK(!cli_tenant_valid(t));
    CHECK(!cli_tenant_valid(""));
    CHECK(!cli_tenant_valid("a b"));
    CHECK(!cli_tenant_valid("a/b"));
    CHECK(!cli_tenant_valid("é"));
}

static int all_lower_alnum(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

TEST(key_shape)
{
    char k1[CLI_KEY_LEN + 1], id1[CLI_KEY_ID_LEN + 1], k2[CLI_KEY_LEN + 1], id2[CLI_KEY_ID_LEN + 1];
    CHECK_EQ_INT(cli_key_generate(k1, id1), 0);
    CHECK_EQ_INT(cli_key_generate(k2, id2), 0);
    CHECK_EQ_INT(strlen(k1), 53);
    CHECK_EQ_INT(strlen(id1), 12);
    CHECK(strncmp(k1, "slk_", 4) == 0);
    CHECK(strncmp(k1, id1, 12) == 0);
    CHECK(k1[12] == '_');
    CHECK(all_lower_alnum(k1 + 4, 8));
    CHECK(all_lower_alnum(k1 + 13, 40));
    CHECK(strcmp(k1, k2) != 0);
    char h[65];
    ids_sha256_hex(k1, strlen(k1), h);
    CHECK_EQ_INT(strlen(h), 64);
}

int main(void)
{
    RUN(args_basic);
    RUN(args_stdin_and_double_dash);
    RUN(args_errors);
    RUN(args_limit);
    RUN(is_client_command);
    RUN(thousands);
    RUN(duration);
    RUN(progress_line);
    RUN(progress_from_monitor);
    RUN(parse_time);
    RUN(http_error_line);
    RUN(urls);
    RUN(detect_format);
    RUN(body_envelope);
    RUN(body_envelope_large);
    RUN(body_ndjson_passthrough);
    RUN(body_known_length);
    RUN(tenant_names);
    RUN(key_shape);
    return test_report();
}
