/* format.c - what the client prints and the URLs it builds (see cli_int.h).
 *
 * Kept apart from client.c so that the exact text of progress lines, error lines and
 * request URLs is pinned by unit tests: scripts and the end-to-end tests read it. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli_int.h"
#include "util/url.h"

char *cli_fmt_thousands(long long v, char out[32])
{
    char digits[24];
    /* Via unsigned so that LLONG_MIN has a magnitude. */
    unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    int n = snprintf(digits, sizeof digits, "%llu", m);
    char *w = out;
    if (v < 0)
        *w++ = '-';
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            *w++ = ',';
        *w++ = digits[i];
    }
    *w = '\0';
    return out;
}

char *cli_fmt_duration(long long secs, char out[32])
{
    if (secs < 0)
        snprintf(out, 32, "-:--");
    else if (secs < 3600)
        snprintf(out, 32, "%lld:%02lld", secs / 60, secs % 60);
    else
        snprintf(out, 32, "%lld:%02lld:%02lld", secs / 3600, secs / 60 % 60, secs % 60);
    return out;
}

void cli_fmt_progress(struct buf *out, const struct cli_progress *p, int bar_width)
{
    char a[32], b[32];
    double pct = p->percent < 0 ? 0 : p->percent > 100 ? 100 : p->percent;
    if (bar_width > 0) {
        /* Floor, so the bar is full only when the job is. */
        int filled = (int)(pct * bar_width / 100.0);
        if (filled > bar_width)
            filled = bar_width;
        buf_putc(out, '[');
        for (int i = 0; i < bar_width; i++)
            buf_putc(out, i < filled ? '#' : '.');
        buf_puts(out, "]  ");
    }
    buf_printf(out, "%s/%s  %.1f%%", cli_fmt_thousands(p->done, a), cli_fmt_thousands(p->total, b),
               pct);
    if (p->rate >= 0)
        buf_printf(out, "  %s items/s", cli_fmt_thousands(llround(p->rate), a));
    buf_printf(out, "  ETA %s", cli_fmt_duration(p->eta_s, a));
    if (p->failed > 0)
        buf_printf(out, "  failed %s", cli_fmt_thousands(p->failed, a));
}

static long long jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? (long long)json_number_value(v) : 0;
}

void cli_progress_from_monitor(const void *monitor, long long now_ms, struct cli_progress *p)
{
    const json_t *m = monitor;
    const json_t *c = json_object_get(m, "counts");
    p->total = jint(c, "total");
    p->failed = jint(c, "failed");
    p->done = jint(c, "succeeded") + p->failed + jint(c, "skipped") + jint(c, "canceled");

    const json_t *pc = json_object_get(m, "percentComplete");
    if (json_is_number(pc))
        p->percent = json_number_value(pc);
    else
        p->percent = p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 0;

    const json_t *ips = json_object_get(json_object_get(m, "throughput"), "itemsPerSecond");
    p->rate = json_is_number(ips) ? json_number_value(ips) : -1;

    const char *st = json_string_value(json_object_get(m, "status"));
    long long eta_ms;
    p->eta_s = -1;
    if (st && (!strcmp(st, "Succeeded") || !strcmp(st, "Failed") || !strcmp(st, "Canceled"))) {
        p->eta_s = 0;
    } else if (p->rate > 0 && p->total >= p->done) {
        /* Our own estimate first: it is immune to clock skew against the server. */
        p->eta_s = (long long)ceil((double)(p->total - p->done) / p->rate);
    } else if (cli_parse_time(json_string_value(json_object_get(m, "estimatedCompletionAt")),
                              &eta_ms) == 0) {
        p->eta_s = eta_ms > now_ms ? (eta_ms - now_ms + 999) / 1000 : 0;
    }
}

void cli_fmt_http_error(struct buf *out, long status, const char *body, size_t len)
{
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const json_t *e = json_object_get(root, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    if (code) {
        const char *msg = json_string_value(json_object_get(e, "message"));
        const char *target = json_string_value(json_object_get(e, "target"));
        buf_printf(out, "error: %s: %s", code, msg ? msg : "(no message)");
        if (target)
            buf_printf(out, " (target %s)", target);
    } else {
        /* Not ours (a proxy, a crash page): show the start of it on one line. */
        buf_printf(out, "error: HTTP %ld", status);
        if (len) {
            buf_puts(out, ": ");
            for (size_t i = 0; i < len && i < 200; i++)
                buf_putc(out,
                         body[i] == '\n' || body[i] == '\r' || body[i] == '\t' ? ' ' : body[i]);
        }
    }
    json_decref(root);
}

int cli_parse_time(const char *s, long long *ms)
{
    int y, mo, d, h, mi, se, used = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &used) != 6 ||
        used != 19)
        return -1;
    const char *r = s + used;
    long long frac = 0;
    if (*r == '.') {
        int digits = 0;
        for (r++; *r >= '0' && *r <= '9'; r++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*r - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (strcmp(r, "Z") != 0 && strcmp(r, "+00:00") != 0)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *ms = (long long)t * 1000 + frac;
    return 0;
}

void cli_url_start(struct buf *b, const char *base, const char *path)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    buf_reset(b);
    buf_append(b, base, n);
    buf_puts(b, path);
}

void cli_url_segment(struct buf *b, const char *seg)
{
    buf_putc(b, '/');
    url_encode(b, seg);
}

void cli_url_query(struct buf *b, const char *name, const char *value)
{
    if (!value)
        return;
    buf_putc(b, b->data && strchr(b->data, '?') ? '&' : '?');
    url_encode(b, name);
    buf_putc(b, '=');
    url_encode(b, value);
}
