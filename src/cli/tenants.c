/* tenants.c - "sluice tenants": tenant scheduling settings, run directly against the
 * store like "sluice keys" (no server needed; a running server sees the change at its
 * next claim).
 *
 *   sluice tenants weight TENANT W   W = 1..100 claims per round (default 1; see
 *                                    FAIRNESS in store/sqlite/claims.c)
 * Exit statuses as in cli.h: 0 ok, 2 usage, 3 store error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "store/store.h"
#include "util/errors.h"

static const char tenants_usage[] =
    "usage: sluice tenants weight TENANT W [--store URL]\n"
    "W (1..100): how many claims the tenant's jobs get per round of all tenants with\n"
    "work (default 1). The store is --store, else SLUICE_STORE, else " CLI_DEFAULT_STORE ".\n";

static int tenants_usage_error(const char *msg)
{
    return cli_usage_error("tenants", msg, tenants_usage);
}

/* 1 and [out] *w when s is a decimal integer in [STORE_WEIGHT_MIN, STORE_WEIGHT_MAX]. */
static int parse_weight(const char *s, int *w)
{
    int v = 0;
    if (!*s || strlen(s) > 3)
        return 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    if (v < STORE_WEIGHT_MIN || v > STORE_WEIGHT_MAX)
        return 0;
    *w = v;
    return 1;
}

int cli_tenants_main(int argc, char **argv)
{
    struct cli_args a;
    char err[256];
    int weight = 0;
    /* argv[0] is "tenants", argv[1] the subcommand. */
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (!sub)
        return tenants_usage_error("a subcommand is needed");
    if (cli_is_help(sub)) {
        fputs(tenants_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(sub, "weight") != 0)
        return tenants_usage_error("unknown subcommand");
    if (cli_args_parse(argc - 2, argv + 2, CLI_OPT_STORE, 2, &a, err, sizeof err) < 0)
        return tenants_usage_error(err);
    if (a.help) {
        fputs(tenants_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (a.npos != 2)
        return tenants_usage_error("TENANT and W are needed");
    if (!cli_tenant_valid(a.pos[0]))
        return tenants_usage_error("a tenant is 1 to 64 characters of A-Z a-z 0-9 . _ -");
    if (!parse_weight(a.pos[1], &weight))
        return tenants_usage_error("W is an integer from 1 to 100");

    int code;
    struct store *st = cli_open_store(a.store, &code);
    if (!st)
        return code;
    int rc;
    rc = store_tenant_set_weight(st, a.pos[0], weight);
    store_close(st);
    if (rc < 0) {
        fprintf(stderr, "error: setting the weight: %s (%s)\n", sluice_err_message(rc),
                sluice_err_code(rc));
        return CLI_EXIT_ERROR;
    }
    printf("tenant %s: weight %d\n", a.pos[0], weight);
    return CLI_EXIT_OK;
}
