/* keys.c - "sluice keys": API key administration, run directly against the store
 * (no server needed, so the first key can be made before the server ever starts).
 *
 * Only the SHA-256 hex of a key is stored; the key itself is printed once, alone on
 * stdout, so that KEY=$(sluice keys create --tenant acme) works. Exit statuses as in
 * cli.h: 0 ok, 1 revoke of an unknown key id, 2 usage, 3 store error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"

static const char keys_usage[] =
    "usage: sluice keys create --tenant T [--store URL]\n"
    "       sluice keys list [--store URL]\n"
    "       sluice keys revoke KEY_ID [--store URL]\n"
    "The store is --store, else SLUICE_STORE, else " CLI_DEFAULT_STORE ".\n";

static int keys_usage_error(const char *msg)
{
    return cli_usage_error("keys", msg, keys_usage);
}

static int store_failed(const char *what, int rc)
{
    fprintf(stderr, "error: %s: %s (%s)\n", what, sluice_err_message(rc), sluice_err_code(rc));
    return CLI_EXIT_ERROR;
}

static int keys_create(struct store *st, const char *tenant)
{
    char key[CLI_KEY_LEN + 1], key_id[CLI_KEY_ID_LEN + 1], hash[65];
    int rc = -SLUICE_E_CONFLICT;
    /* A key id clash (36^8 ids) is unlikely but possible: draw again. */
    for (int attempt = 0; attempt < 5 && rc == -SLUICE_E_CONFLICT; attempt++) {
        rc = cli_key_generate(key, key_id);
        if (rc < 0)
            return store_failed("generating a key", rc);
        ids_sha256_hex(key, strlen(key), hash);
        rc = store_key_create(st, key_id, tenant, hash);
    }
    if (rc < 0)
        return store_failed("storing the key", rc);
    printf("%s\n", key);
    fflush(stdout);
    fprintf(stderr, "created key %s for tenant %s; it is shown only this once: keep it now\n",
            key_id, tenant);
    return CLI_EXIT_OK;
}

static int keys_list(struct store *st)
{
    struct store_key *keys = NULL;
    size_t n = 0;
    int rc = store_key_list(st, &keys, &n);
    if (rc < 0)
        return store_failed("listing keys", rc);
    printf("%-16s  %-24s  %-24s  %s\n", "KEY_ID", "TENANT", "CREATED", "REVOKED");
    for (size_t i = 0; i < n; i++) {
        char created[25], revoked[25];
        clock_fmt_ms(keys[i].created_at, created);
        if (keys[i].revoked_at)
            clock_fmt_ms(keys[i].revoked_at, revoked);
        else
            strcpy(revoked, "-");
        printf("%-16s  %-24s  %-24s  %s\n", keys[i].key_id, keys[i].tenant, created, revoked);
    }
    free(keys);
    return CLI_EXIT_OK;
}

static int keys_revoke(struct store *st, const char *key_id)
{
    int rc = store_key_revoke(st, key_id);
    if (rc < 0)
        return store_failed("revoking the key", rc);
    if (rc == 0) {
        fprintf(stderr, "error: no key %s\n", key_id);
        return CLI_EXIT_JOB;
    }
    printf("revoked %s\n", key_id);
    return CLI_EXIT_OK;
}

int cli_keys_main(int argc, char **argv)
{
    struct cli_args a;
    char err[256];
    /* argv[0] is "keys", argv[1] the subcommand. */
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (!sub)
        return keys_usage_error("a subcommand is needed");
    if (cli_is_help(sub)) {
        fputs(keys_usage, stdout);
        return CLI_EXIT_OK;
    }
    int is_create = !strcmp(sub, "create"), is_list = !strcmp(sub, "list"),
        is_revoke = !strcmp(sub, "revoke");
    if (!is_create && !is_list && !is_revoke)
        return keys_usage_error("unknown subcommand");
    unsigned opts = CLI_OPT_STORE | (is_create ? CLI_OPT_TENANT : 0);
    if (cli_args_parse(argc - 2, argv + 2, opts, is_revoke ? 1 : 0, &a, err, sizeof err) < 0)
        return keys_usage_error(err);
    if (a.help) {
        fputs(keys_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (is_create && !a.tenant)
        return keys_usage_error("--tenant is required");
    if (is_create && !cli_tenant_valid(a.tenant))
        return keys_usage_error("a tenant is 1 to 64 characters of A-Z a-z 0-9 . _ -");
    if (is_revoke && a.npos != 1)
        return keys_usage_error("KEY_ID is missing");

    int code;
    struct store *st = cli_open_store(a.store, &code);
    if (!st)
        return code;
    int ret = is_create ? keys_create(st, a.tenant)
              : is_list ? keys_list(st)
                        : keys_revoke(st, a.pos[0]);
    store_close(st);
    return ret;
}

struct store *cli_open_store(const char *flag_url, int *exit_code)
{
    const char *url = flag_url ? flag_url : getenv("SLUICE_STORE");
    if (!url || !*url)
        url = CLI_DEFAULT_STORE;
    struct store_options opt;
    struct store *st = NULL;
    store_options_default(&opt);
    int rc = store_open(url, &opt, &st);
    if (rc < 0) {
        char *shown = store_url_redacted(url); /* never print a password */
        fprintf(stderr, "error: cannot open store %s: %s\n", shown,
                rc == -SLUICE_E_INVALID_PARAMETER ? "not a store URL (sqlite:PATH)"
                                                  : sluice_err_message(rc));
        free(shown);
        *exit_code = rc == -SLUICE_E_INVALID_PARAMETER ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
        return NULL;
    }
    return st;
}
