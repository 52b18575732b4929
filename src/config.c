/* config.c - parsing serve's flags and SLUICE_* variables into struct config.
 * One table lists every setting, so flags, environment names and the usage text
 * cannot drift apart. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/limits.h"

enum kind { K_LISTEN, K_STR, K_UINT, K_SIZE, K_SYNC, K_BOOL };

struct setting {
    const char *flag, *env, *help;
    enum kind kind;
    size_t off;
    unsigned long long min, max;
};

#define OFF(f) offsetof(struct config, f)

static const struct setting settings[] = {
    {"--listen", "SLUICE_LISTEN", "HOST:PORT to listen on (127.0.0.1:8080)", K_LISTEN, 0, 0, 0},
    {"--store", "SLUICE_STORE",
     "store URL: sqlite:PATH (sqlite:./data/sluice.db) or "
     "postgres://USER@HOST:PORT/DB (nodes sharing one database)",
     K_STR, OFF(store_url), 0, 0},
    {"--node-timeout-ms", "SLUICE_NODE_TIMEOUT_MS",
     "postgres: a node silent this long loses its leases (15000)", K_SIZE,
     OFF(store.node_timeout_ms), 1000, 3600000},
    {"--workers", "SLUICE_WORKERS", "worker threads (2)", K_UINT, OFF(engine.workers), 1, 256},
    {"--batch", "SLUICE_BATCH", "items per claim (500, or 2000 for a workflow without http steps)",
     K_SIZE, OFF(engine.batch), 1, 100000},
    {"--lease-ms", "SLUICE_LEASE_MS", "claim lease in ms (30000)", K_SIZE, OFF(engine.lease_ms),
     100, 86400000},
    {"--max-attempts", "SLUICE_MAX_ATTEMPTS", "attempts per item (5)", K_UINT,
     OFF(engine.max_attempts), 1, 1000},
    {"--http-threads", "SLUICE_HTTP_THREADS", "HTTP threads (4)", K_UINT, OFF(http.threads), 1,
     256},
    {"--max-items", "SLUICE_MAX_ITEMS", "items per job (1000000)", K_SIZE,
     OFF(api.limits.max_items), 1, 100000000},
    {"--max-item-bytes", "SLUICE_MAX_ITEM_BYTES", "bytes per item (1048576)", K_SIZE,
     OFF(api.limits.max_item_bytes), 64, 1ull << 30},
    {"--max-depth", "SLUICE_MAX_DEPTH", "JSON nesting depth (64)", K_UINT,
     OFF(api.limits.max_depth), 2, 1000},
    {"--max-open-jobs", "SLUICE_MAX_OPEN_JOBS",
     "unfinished jobs per tenant (active + queued) before submits get 429 (1000; 0: no cap)",
     K_SIZE, OFF(api.max_open_jobs), 0, 100000000},
    {"--max-active-jobs", "SLUICE_MAX_ACTIVE_JOBS",
     "jobs per tenant processed at once; more wait NotStarted, phase Queued (16; 0: no cap)",
     K_UINT, OFF(engine.max_active_jobs), 0, 1000000},
    {"--limits", "SLUICE_LIMITS",
     "server processing limits: JSON {\"NAME\": {key, rate, per, burst, concurrency}} or "
     "@FILE (\"\": none)",
     K_STR, OFF(limits), 0, 0},
    {"--max-upstream-backoff", "SLUICE_MAX_UPSTREAM_BACKOFF",
     "longest wait in s an upstream's Retry-After may put on a limit's requests to it (300)",
     K_SIZE, OFF(max_upstream_backoff_s), 1, 86400},
    {"--max-memory-mb", "SLUICE_MAX_MEMORY_MB",
     "resident memory above which submits get 503 (0: 3/4 of physical memory)", K_SIZE,
     OFF(api.max_memory_mb), 0, 1ull << 30},
    {"--max-uploads", "SLUICE_MAX_UPLOADS",
     "submits receiving at once, all tenants; more get 503 ServerBusy (64; 0: no cap)", K_UINT,
     OFF(api.max_uploads), 0, 1000000},
    {"--max-pending-items", "SLUICE_MAX_PENDING_ITEMS",
     "unclaimed items per tenant before submits get 429 (20000000; 0: no cap)", K_SIZE,
     OFF(api.max_pending_items), 0, 1ull << 40},
    {"--max-body-bytes", "SLUICE_MAX_BODY_BYTES", "submit body bytes (1073741824)", K_SIZE,
     OFF(http.max_stream_body), 1024, 1ull << 40},
    {"--max-connections", "SLUICE_MAX_CONNECTIONS", "connection cap (1000)", K_UINT,
     OFF(http.max_connections), 1, 100000},
    {"--idle-timeout", "SLUICE_IDLE_TIMEOUT", "idle connection timeout s (30)", K_UINT,
     OFF(http.idle_timeout_s), 1, 3600},
    {"--request-timeout", "SLUICE_REQUEST_TIMEOUT",
     "s a connection may take to send request headers; after it a body must average "
     "--min-body-rate (30; 0: no deadline)",
     K_UINT, OFF(http.request_timeout_s), 0, 86400},
    {"--min-body-rate", "SLUICE_MIN_BODY_RATE",
     "bytes/s a request body must average after --request-timeout (4096; 0: none)", K_UINT,
     OFF(http.min_body_rate), 0, 1u << 30},
    {"--max-connections-per-ip", "SLUICE_MAX_CONNECTIONS_PER_IP",
     "connections one client address may hold (64; 0: no cap)", K_UINT, OFF(http.max_per_ip), 0,
     100000},
    {"--max-header-bytes", "SLUICE_MAX_HEADER_BYTES",
     "request header block bytes; more get 431 (16384)", K_SIZE, OFF(http.max_header_bytes), 1024,
     1u << 20},
    {"--max-url-bytes", "SLUICE_MAX_URL_BYTES", "request target bytes; more get 414 (8192)", K_SIZE,
     OFF(http.max_url_bytes), 256, 1u << 20},
    {"--max-query-params", "SLUICE_MAX_QUERY_PARAMS", "query parameters; more get 414 (256)",
     K_UINT, OFF(http.max_query_params), 1, 100000},
    {"--max-parked", "SLUICE_MAX_PARKED",
     "event streams and long polls open at once, all tenants; more get 503 (256; 0: no cap)",
     K_UINT, OFF(api.max_parked), 0, 1000000},
    {"--tenant-share", "SLUICE_TENANT_SHARE",
     "percent of --max-uploads and of --max-parked one tenant may hold; beyond it 429 "
     "(50; 100: no per-tenant cap)",
     K_UINT, OFF(api.tenant_share), 1, 100},
    {"--sync", "SLUICE_SYNC", "SQLite sync: full|normal (full)", K_SYNC, 0, 0, 0},
    {"--debug", "SLUICE_DEBUG", "debug logs (0)", K_BOOL, OFF(log_debug), 0, 1},
    {"--outbound-allow", "SLUICE_OUTBOUND_ALLOW",
     "http steps: only these hosts/CIDRs, comma-separated (\"\": public addresses)", K_STR,
     OFF(outbound_allow), 0, 0},
    {"--outbound-max-body", "SLUICE_OUTBOUND_MAX_BODY", "http steps: response bytes kept (1048576)",
     K_SIZE, OFF(outbound_max_body), 1024, 1ull << 30},
    {"--retention-seconds", "SLUICE_RETENTION_SECONDS",
     "keep finished jobs this long, then remove them (2592000 = 30 days)", K_SIZE,
     OFF(retention_seconds), 1, 100ull * 365 * 86400},
    {"--public-url", "SLUICE_PUBLIC_URL",
     "base URL of links in callback bodies (\"\": http://<listen HOST:PORT>)", K_STR,
     OFF(public_url), 0, 0},
    {"--callback-secret", "SLUICE_CALLBACK_SECRET",
     "server secret callback keys derive from (\"\": generated once, kept in the store)", K_STR,
     OFF(callback_secret), 0, 0},
    {"--callback-backoff-ms", "SLUICE_CALLBACK_BACKOFF_MS",
     "first callback retry wait in ms (5000)", K_SIZE, OFF(callback_backoff_ms), 1, 3600000},
    {"--callback-max-age", "SLUICE_CALLBACK_MAX_AGE",
     "retry a callback this many seconds, then abandon it (86400)", K_SIZE, OFF(callback_max_age_s),
     1, 30ull * 86400},
    {"--tenant-rate", "SLUICE_TENANT_RATE", "requests per second per tenant (200; 0: no limit)",
     K_UINT, OFF(tenant_rate), 0, 1000000},
    {"--tenant-burst", "SLUICE_TENANT_BURST", "requests a tenant may burst (400; 0: no limit)",
     K_UINT, OFF(tenant_burst), 0, 10000000},
    {"--auth-fail-rate", "SLUICE_AUTH_FAIL_RATE",
     "failed authentications per minute per client address, then 429 (20; 0: off)", K_UINT,
     OFF(auth_fail_rate), 0, 1000000},
    {"--run-threads", "SLUICE_RUN_THREADS",
     "threads executing synchronous runs (POST /v1/workflows/{name}:run) (32)", K_UINT,
     OFF(runs.threads), 1, 1024},
    {"--max-runs-per-tenant", "SLUICE_MAX_RUNS_PER_TENANT",
     "synchronous runs of one tenant queued or running; more get 429 TooManyRuns (4)", K_UINT,
     OFF(runs.per_tenant), 1, 100000},
    {"--run-queue", "SLUICE_RUN_QUEUE",
     "synchronous runs waiting for a run thread, all tenants; more get 429 TooManyRuns (64)",
     K_UINT, OFF(runs.queue), 0, 1000000},
    {"--run-timeout-ms", "SLUICE_RUN_TIMEOUT_MS",
     "total deadline of a synchronous run, queueing included; then 504 RunTimeout (30000)", K_UINT,
     OFF(runs.timeout_ms), 100, 3600000},
};

static void defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
    cfg->port = 8080;
    cfg->store_url = "sqlite:./data/sluice.db";
    store_options_default(&cfg->store);
    engine_config_default(&cfg->engine);
    cfg->http.threads = 4;
    cfg->http.max_body = 2u << 20;
    cfg->http.max_stream_body = 1ull << 30;
    cfg->http.idle_timeout_s = 30;
    cfg->http.max_connections = 1000;
    cfg->http.max_per_ip = 64;
    cfg->http.max_header_bytes = 16384;
    cfg->http.max_url_bytes = 8192;
    cfg->http.max_query_params = 256;
    cfg->api.max_parked = 256;
    cfg->api.tenant_share = 50;
    cfg->http.request_timeout_s = 30;
    cfg->http.min_body_rate = 4096;
    ingest_limits_default(&cfg->api.limits);
    cfg->api.submit_batch = 5000;
    cfg->api.max_open_jobs = 1000;
    cfg->api.max_pending_items = 20000000;
    cfg->outbound_allow = "";
    cfg->limits = "";
    cfg->max_upstream_backoff_s = LIMITS_MAX_BACKOFF_MS / 1000;
    cfg->api.max_uploads = 64;
    cfg->engine.max_active_jobs = 16;
    cfg->outbound_max_body = 1u << 20;
    cfg->retention_seconds = 2592000;
    janitor_config_default(&cfg->janitor);
    cfg->public_url = "";
    cfg->callback_secret = "";
    cfg->callback_backoff_ms = 5000;
    cfg->callback_max_age_s = 86400;
    cfg->tenant_rate = 200;
    cfg->tenant_burst = 400;
    cfg->auth_fail_rate = 20;
    runs_config_default(&cfg->runs);
}

static int set(struct config *cfg, const struct setting *s, const char *v, char *err, size_t errlen)
{
    char *p = (char *)cfg + s->off;
    switch (s->kind) {
    case K_LISTEN: {
        const char *colon = strrchr(v, ':');
        char *end;
        unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
        if (!colon || colon == v || (size_t)(colon - v) >= sizeof cfg->host || *end ||
            port > 65535) {
            snprintf(err, errlen, "%s: expected HOST:PORT, got '%s'", s->flag, v);
            return -1;
        }
        snprintf(cfg->host, sizeof cfg->host, "%.*s", (int)(colon - v), v);
        cfg->port = (unsigned)port;
        return 0;
    }
    case K_STR:
        *(const char **)p = v;
        return 0;
    case K_SYNC:
        if (strcmp(v, "full") && strcmp(v, "normal")) {
            snprintf(err, errlen, "%s: expected full or normal, got '%s'", s->flag, v);
            return -1;
        }
        cfg->store.synchronous_full = strcmp(v, "full") == 0;
        return 0;
    default: {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (!*v || *end || errno || n < s->min || n > s->max || v[0] == '-') {
            snprintf(err, errlen, "%s: expected an integer from %llu to %llu, got '%s'", s->flag,
                     s->min, s->max, v);
            return -1;
        }
        if (s->kind == K_SIZE &&
            (s->off == OFF(engine.lease_ms) || s->off == OFF(store.node_timeout_ms)))
            *(int64_t *)p = (int64_t)n;
        else if (s->kind == K_SIZE && s->off == OFF(api.limits.max_items))
            *(uint64_t *)p = n;
        else if (s->kind == K_SIZE && s->off == OFF(http.max_stream_body))
            *(uint64_t *)p = n;
        else if (s->kind == K_SIZE)
            *(size_t *)p = (size_t)n;
        else
            *(int *)p = (int)n; /* K_UINT and K_BOOL fields are int-sized */
        return 0;
    }
    }
}

static void usage(char *err, size_t errlen)
{
    size_t off = (size_t)snprintf(err, errlen, "usage: sluice serve [options]\n");
    for (size_t i = 0; i < sizeof settings / sizeof settings[0] && off < errlen; i++)
        off += (size_t)snprintf(err + off, errlen - off, "  %-21s %-27s %s\n", settings[i].flag,
                                settings[i].env, settings[i].help);
}

int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    const size_t n = sizeof settings / sizeof settings[0];
    defaults(cfg);
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(settings[i].env);
        if (v && *v && set(cfg, &settings[i], v, err, errlen) < 0)
            return -1;
    }
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            usage(err, errlen);
            return 1;
        }
        const char *arg = argv[a], *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct setting *s = NULL;
        for (size_t i = 0; i < n; i++)
            if (strlen(settings[i].flag) == flen && !strncmp(settings[i].flag, arg, flen))
                s = &settings[i];
        if (!s) {
            snprintf(err, errlen, "unknown option '%s' (see sluice serve --help)", arg);
            return -1;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v && s->kind == K_BOOL)
            v = "1";
        if (!v) {
            if (a + 1 >= argc) {
                snprintf(err, errlen, "%s needs a value", s->flag);
                return -1;
            }
            v = argv[++a];
        }
        if (set(cfg, s, v, err, errlen) < 0)
            return -1;
    }
    cfg->janitor.retention_ms = (int64_t)cfg->retention_seconds * 1000;
    cfg->store.retention_ms = cfg->janitor.retention_ms;
    /* One size limit for an item and for a document, whichever path writes it. */
    cfg->store.max_doc_bytes = cfg->api.limits.max_item_bytes;
    cfg->http.host = cfg->host;
    cfg->http.port = (uint16_t)cfg->port;
    return 0;
}
