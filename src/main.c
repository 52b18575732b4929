/* main.c - the sluice binary: dispatches subcommands; `serve` wires
 * config -> store -> engine -> http, waits for SIGTERM/SIGINT and shuts down in
 * reverse: stop accepting, let workers finish or release their batches, close
 * connections, close the store. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/ratelimit.h"
#include "api/render.h"
#include "api/slots.h"
#include "api/waiters.h"
#include "cli/cli.h"
#include "config.h"
#include "engine/callbacks.h"
#include "engine/janitor.h"
#include "engine/limits.h"
#include "engine/pipeline.h"
#include "engine/secrets.h"
#include "engine/stager.h"
#include "outbound/outbound.h"
#include "store/fault.h"
#include "util/clock.h"
#include "util/cursor.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/secmask.h"
#include "util/xmalloc.h"

/* The operator's secrets for {{secrets.NAME}}: SLUICE_SECRET_<NAME>=value, usable only
 * by the tenants SLUICE_SECRET_<NAME>_TENANTS lists (engine/secrets.h); a variable
 * whose name ends in _TENANTS is always such a list, never a secret. Values never come
 * from definitions and are never logged: the start-up log names secrets and tenants. */
static struct secrets *load_secrets(void)
{
    extern char **environ;
    struct secrets *s = secrets_new();
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "SLUICE_SECRET_", 14) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t nl = eq ? (size_t)(eq - (*e + 14)) : 0;
        if (!eq || nl == 0 || nl > SECRETS_NAME_MAX)
            continue;
        char name[SECRETS_NAME_MAX + 1], var[SECRETS_NAME_MAX + 32];
        snprintf(name, sizeof name, "%.*s", (int)nl, *e + 14);
        if (nl > 8 && !strcmp(name + nl - 8, "_TENANTS"))
            continue;
        snprintf(var, sizeof var, "SLUICE_SECRET_%s_TENANTS", name);
        const char *tenants = getenv(var);
        if (secrets_add(s, name, eq + 1, tenants) < 0) {
            log_write(LOG_WARN,
                      "ignoring an operator secret: names are 1 to 64 characters of "
                      "A-Z a-z 0-9 _ - and values 1 to 4096 bytes",
                      "secret", name, NULL);
            continue;
        }
        if (strlen(eq + 1) < SECMASK_MIN_LEN)
            log_write(LOG_WARN,
                      "operator secret shorter than 4 bytes: its renderings cannot "
                      "be masked",
                      "secret", name, NULL);
        if (!tenants || !*tenants)
            log_write(LOG_WARN,
                      "operator secret usable by no tenant (name them in "
                      "SLUICE_SECRET_<NAME>_TENANTS)",
                      "secret", name, NULL);
        else
            log_write(LOG_INFO, "operator secret", "secret", name, "tenants", tenants, NULL);
    }
    return s;
}

/* The key that seals the jobs list's cursors: made at the first start, kept in the
 * store, so that other nodes and later starts read the cursors this one gave. */
static int load_cursor_key(struct store *st, unsigned char key[CURSOR_KEY_BYTES])
{
    char hex[2 * CURSOR_KEY_BYTES + 1], *stored = NULL;
    int rc = cursor_key_new_hex(hex) < 0 ? -SLUICE_E_INTERNAL
                                         : store_setting_ensure(st, "cursor_key", hex, &stored);
    if (rc >= 0 && cursor_key_parse(stored, key) < 0)
        rc = -SLUICE_E_INTERNAL;
    free(stored);
    return rc < 0 ? rc : 0;
}

/* The server's processing limits from --limits: inline JSON or @FILE. 0 or -1 (logged). */
static int load_limits(struct limits *lim, const char *spec)
{
    json_error_t je;
    char err[256], target[128];
    if (!spec || !*spec)
        return 0;
    json_t *j = spec[0] == '@' ? json_load_file(spec + 1, 0, &je) : json_loads(spec, 0, &je);
    if (!j) {
        log_write(LOG_ERROR, "--limits is not valid JSON", "error", je.text, NULL);
        return -1;
    }
    int rc = limits_set_server(lim, j, err, sizeof err, target, sizeof target);
    json_decref(j);
    if (rc < 0) {
        log_write(LOG_ERROR, "--limits: bad limit", "target", target, "error", err, NULL);
        return -1;
    }
    return 0;
}

/* Test hook (store/fault.h): arms the storage fault rules of SLUICE_FAULTS, either
 * the rules themselves or "@FILE": the rules are then read from FILE, now and again on
 * each SIGUSR1, replacing the previous ones (an empty file clears them). 0, or -1
 * (logged) for a bad spec, which leaves no rule set. */
static int load_faults(struct store *st, const char *spec)
{
    char rules[4096], err[256];
    size_t n = 0;
    if (spec[0] == '@') {
        FILE *f = fopen(spec + 1, "r");
        if (!f) {
            log_write(LOG_ERROR, "SLUICE_FAULTS: cannot read the file", "file", spec + 1, NULL);
            return -1;
        }
        n = fread(rules, 1, sizeof rules - 1, f);
        fclose(f);
    } else {
        n = strlen(spec) < sizeof rules - 1 ? strlen(spec) : sizeof rules - 1;
        memcpy(rules, spec, n);
    }
    while (n > 0 && (rules[n - 1] == '\n' || rules[n - 1] == ' ' || rules[n - 1] == '\r'))
        n--;
    rules[n] = '\0';
    store_fault_clear(st);
    if (n == 0) {
        log_write(LOG_WARN, "storage faults cleared (test hook SLUICE_FAULTS)", NULL);
        return 0;
    }
    if (store_fault_parse(st, rules, err, sizeof err) < 0) {
        log_write(LOG_ERROR, "bad SLUICE_FAULTS", "error", err, NULL);
        return -1;
    }
    log_write(LOG_WARN, "injecting storage faults (test hook SLUICE_FAULTS)", "faults", rules,
              NULL);
    return 0;
}

/* Splits "a, b,c" into a NULL-terminated array of heap strings (freed by free_list). */
static char **split_list(const char *s)
{
    size_t n = 0, cap = 4;
    char **v = xcalloc(cap + 1, sizeof *v);
    char *copy = xstrdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        if (n == cap) {
            cap *= 2;
            v = xrealloc(v, (cap + 1) * sizeof *v);
        }
        v[n++] = xstrdup(t);
    }
    v[n] = NULL;
    free(copy);
    return v;
}

static void free_list(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

/* Exit statuses of the binary (the client commands have their own: cli/cli_int.h). */
enum { MAIN_EXIT_OK = 0, MAIN_EXIT_FAILED = 1, MAIN_EXIT_USAGE = 2 };

static int serve_main(int argc, char **argv)
{
    struct config cfg;
    char err[8192]; /* the --help text: one line per setting */
    int rc = config_load(&cfg, argc, argv, err, sizeof err);
    if (rc != 0) {
        fprintf(rc > 0 ? stdout : stderr, "%s%s", err, rc > 0 ? "" : "\n");
        return rc > 0 ? MAIN_EXIT_OK : MAIN_EXIT_USAGE;
    }
    if (cfg.log_debug)
        log_set_level(LOG_DEBUG);

    const char *faults = getenv("SLUICE_FAULTS"); /* test hook, see load_faults */
    /* Signals are taken by sigwait() in this thread only: block them before any
     * thread starts so the workers and MHD threads inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    if (faults && faults[0] == '@')
        sigaddset(&sigs, SIGUSR1); /* re-reads the fault rules (test hook) */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Everything below is released at out:, in the reverse order of the shutdown;
     * each piece is NULL until started, and every release takes NULL. */
    int status = MAIN_EXIT_FAILED;
    struct store *st = NULL;
    struct engine *eng = NULL;
    struct janitor *jan = NULL;
    struct http_server *srv = NULL;
    struct outbound *ob = NULL;
    struct secrets *secrets = NULL;
    struct limits *lim = NULL;
    struct callbacks *cbs = NULL;
    char **allow = NULL;
    struct api api;
    memset(&api, 0, sizeof api);
    if ((rc = store_open(cfg.store_url, &cfg.store, &st)) < 0) {
        char *shown = store_url_redacted(cfg.store_url); /* never log a password */
        log_write(LOG_ERROR, "cannot open store", "store", shown, "error", sluice_err_code(rc),
                  NULL);
        free(shown);
        goto out;
    }
    if ((rc = load_cursor_key(st, api.cursor_key)) < 0) {
        log_write(LOG_ERROR, "cannot load the cursor key from the store", "error",
                  sluice_err_code(rc), NULL);
        goto out;
    }
    /* Test hook: storage faults injected at the store wrappers (store/fault.h). */
    if (faults && *faults && load_faults(st, faults) < 0)
        goto out;
    /* Jobs still Receiving were cut off by a crash mid-upload: never acknowledged. On a
     * shared store other nodes may be receiving right now: only uploads idle for 15
     * minutes count as cut off there. */
    int gone =
        store_gc_receiving(st, store_shared(st) ? clock_now_ms() - 15 * 60000 : clock_now_ms() + 1);
    if (gone > 0) {
        char n[24];
        snprintf(n, sizeof n, "=%d", gone);
        log_write(LOG_INFO, "removed unacknowledged partial submits", "jobs", n, NULL);
    }
    /* The SQLite store belongs to this process alone: leases left in it were held by a
     * process that is gone, so their items are retaken now instead of after the lease.
     * A shared store's leases may be other live nodes': a dead node's are ended by the
     * heartbeats of the others (store_heartbeat). */
    int expired = store_shared(st) ? 0 : store_expire_claims(st);
    if (expired > 0) {
        char n[24];
        snprintf(n, sizeof n, "=%d", expired);
        log_write(LOG_INFO, "retaking items of leases left by a previous run", "claims", n, NULL);
    }
    allow = split_list(cfg.outbound_allow);
    struct outbound_config ocfg = {(const char *const *)allow, cfg.outbound_max_body, 0, 0, NULL};
    if ((rc = outbound_start(&ocfg, &ob)) < 0) {
        log_write(LOG_ERROR, "cannot start outbound I/O (bad --outbound-allow entry?)", "allow",
                  cfg.outbound_allow, NULL);
        goto out;
    }
    secrets = load_secrets();
    lim = limits_new();
    limits_set_max_backoff(lim, (int64_t)cfg.max_upstream_backoff_s * 1000);
    /* Rates hold across the nodes of a shared store; SLUICE_LIMITS_SHARED=1 forces the
     * same path on SQLite (for tests). */
    const char *force_shared = getenv("SLUICE_LIMITS_SHARED");
    int shared = store_shared(st) || (force_shared && !strcmp(force_shared, "1"));
    if (load_limits(lim, cfg.limits) < 0 || limits_reload(lim, st) < 0 ||
        (shared && limits_share(lim, st) < 0))
        goto out;
    cfg.engine.outbound = ob;
    cfg.engine.secrets = secrets;
    cfg.engine.limits = lim;
    /* One size limit for items as uploaded and for what workflow steps make of them. */
    cfg.engine.max_item_bytes = cfg.api.limits.max_item_bytes;
    if ((rc = engine_start(st, &cfg.engine, &eng)) < 0) {
        log_write(LOG_ERROR, "cannot start workers", NULL);
        goto out;
    }
    /* Retention: finished jobs past --retention-seconds and old idempotency keys. */
    if (janitor_start(st, &cfg.janitor, &jan) < 0)
        log_write(LOG_WARN, "cannot start the retention task; finished jobs are kept", NULL);
    /* Completion callbacks: the secret now (handlers derive tenant keys from it), the
     * delivery thread once the listening port is known (links in the bodies). */
    struct callbacks_config cbcfg;
    callbacks_config_default(&cbcfg);
    cbcfg.secret = cfg.callback_secret;
    cbcfg.backoff_ms = (long)cfg.callback_backoff_ms;
    cbcfg.max_age_ms = (int64_t)cfg.callback_max_age_s * 1000;
    if (callbacks_new(st, &cbcfg, &cbs) < 0)
        log_write(LOG_WARN, "cannot load the callback secret; callbacks are not delivered", NULL);
    api.callbacks = cbs;
    api.ob = ob;
    api.secrets = secrets;
    api.waiters = waiters_start(st);
    api.stager = stager_start(st); /* retries left staging by a previous run go on */
    struct pipeline_env renv = {st, ob, secrets, 0, 0, lim, 0, cfg.api.limits.max_item_bytes};
    if (runs_start(&cfg.runs, &renv, &api.runs) < 0)
        log_write(LOG_WARN, "cannot start the run threads; synchronous runs use HTTP threads",
                  NULL);
    api.st = st;
    api.eng = eng;
    api.cfg = cfg.api;
    /* The server counts a submit's bytes as received; the handler counts them decoded. */
    api.cfg.max_body_bytes = cfg.http.max_stream_body;
    api.limits = lim;
    atomic_init(&api.shutting_down, 0);
    atomic_init(&api.uploads, 0);
    {
        unsigned pools[SLOT__COUNT] = {
            [SLOT_UPLOAD] = cfg.api.max_uploads, [SLOT_PARKED] = cfg.api.max_parked};
        api.slots = slots_new(pools, cfg.api.tenant_share);
    }
    /* Admission control, in memory: this process enforces the limits on its own. */
    char seed[17];
    ids_random("", 16, seed);
    struct ratelimit_config trl = {(uint64_t)cfg.tenant_rate * 60, cfg.tenant_burst, 4096,
                                   ids_hash64(seed, 16)};
    struct ratelimit_config arl = {cfg.auth_fail_rate, cfg.auth_fail_rate, 4096, ~trl.seed};
    api.tenant_rl = ratelimit_new(&trl);
    api.authfail_rl = ratelimit_new(&arl);
    if ((rc = http_server_start(&cfg.http, api_routes, api_nroutes, api_authenticate, &api, &srv)) <
        0)
        goto out;
    char port[16], workers[16];
    snprintf(port, sizeof port, "=%u", (unsigned)http_server_port(srv));
    snprintf(workers, sizeof workers, "=%u", cfg.engine.workers);
    log_write(LOG_INFO, "listening", "host", cfg.host, "port", port, "store", store_backend(st),
              "node", store_node_id(st), "workers", workers, NULL);
    if (cbs) {
        char base[160];
        if (cfg.public_url[0])
            snprintf(base, sizeof base, "%s", cfg.public_url);
        else
            snprintf(base, sizeof base, "http://%s:%u", cfg.host, (unsigned)http_server_port(srv));
        if (callbacks_start(cbs, ob, render_job, base) < 0)
            log_write(LOG_WARN, "cannot start the callback delivery thread", NULL);
    }

    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGUSR1)
        load_faults(st, faults);
    log_write(LOG_INFO, "shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    atomic_store(&api.shutting_down, 1);
    http_server_quiesce(srv);
    status = MAIN_EXIT_OK;
out:
    waiters_shutdown(api.waiters); /* parked long polls and streams answer now */
    runs_shutdown(api.runs);       /* queued synchronous runs answer 503 now */
    /* Cut outbound calls short first: a worker waiting out retries would hold up the
     * shutdown; its batch is given back and re-run, with the same Idempotency-Keys. */
    outbound_stop(ob);
    runs_drain(api.runs); /* running runs end now their calls are cut; all resumed */
    /* No handler runs after this: what handlers reach (runs, stager, engine) is freed
     * only below it. */
    if (srv)
        http_server_stop(srv);
    runs_free(api.runs);
    stager_stop(api.stager); /* after its batch; the rest goes on at the next start */
    janitor_stop(jan);
    engine_stop(eng);
    callbacks_stop(cbs); /* deliveries cut short stay owed, due at the next start */
    waiters_free(api.waiters);
    ratelimit_free(api.tenant_rl);
    ratelimit_free(api.authfail_rl);
    slots_free(api.slots);
    outbound_free(ob); /* after its users: workers and synchronous runs */
    limits_free(lim);  /* after the workers, the pacing of outbound calls and handlers */
    secrets_free(secrets);
    free_list(allow);
    callbacks_free(cbs);
    store_close(st);
    if (status == MAIN_EXIT_OK)
        log_write(LOG_INFO, "stopped", NULL);
    return status;
}

static void usage(FILE *f)
{
    fputs("usage: sluice COMMAND [args]\n"
          "server:\n"
          "  serve [--listen HOST:PORT] [--store URL] [--workers N] ...   (serve --help)\n"
          "  keys create --tenant T | keys list | keys revoke KEY_ID  [--store URL]\n"
          "  tenants weight TENANT W  [--store URL]\n"
          "client (SLUICE_URL, SLUICE_KEY):\n"
          "  submit FILE --workflow W [--client-reference R] [--wait]\n"
          "  status JOB | watch JOB | items JOB [--status S] | results JOB | cancel JOB | jobs\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MAIN_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve"))
        return serve_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "keys"))
        return cli_keys_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "tenants"))
        return cli_tenants_main(argc - 1, argv + 1);
    if (cli_is_client_command(cmd))
        return cli_client_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return MAIN_EXIT_OK;
    }
    fprintf(stderr, "sluice: unknown command '%s'\n", cmd);
    usage(stderr);
    return MAIN_EXIT_USAGE;
}
