/* args.c - option parsing for the sluice subcommands (see cli_int.h).
 *
 * getopt_long is not used: it permutes argv, treats "-" specially depending on the
 * libc, and reports errors itself on stderr; one table and a loop are enough and keep
 * the messages ours (and testable). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_int.h"
#include "util/errors.h"

struct spec {
    const char *name; /* without the leading "--" */
    unsigned flag;
    int takes_value;
};

static const struct spec specs[] = {
    {"url", CLI_OPT_URL, 1},
    {"key", CLI_OPT_KEY, 1},
    {"workflow", CLI_OPT_WORKFLOW, 1},
    {"client-reference", CLI_OPT_CLIENT_REF, 1},
    {"wait", CLI_OPT_WAIT, 0},
    {"json", CLI_OPT_JSON, 0},
    {"status", CLI_OPT_STATUS, 1},
    {"ref", CLI_OPT_REF, 1},
    {"limit", CLI_OPT_LIMIT, 1},
    {"all", CLI_OPT_ALL, 0},
    {"tenant", CLI_OPT_TENANT, 1},
    {"store", CLI_OPT_STORE, 1},
    {"ref-column", CLI_OPT_REF_COLUMN, 1},
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -SLUICE_E_INVALID_PARAMETER;
}

static int set_value(struct cli_args *a, unsigned flag, const char *v, char *err, size_t errlen)
{
    switch (flag) {
    case CLI_OPT_URL:
        a->url = v;
        break;
    case CLI_OPT_KEY:
        a->key = v;
        break;
    case CLI_OPT_WORKFLOW:
        a->workflow = v;
        break;
    case CLI_OPT_CLIENT_REF:
        a->client_reference = v;
        break;
    case CLI_OPT_STATUS:
        a->status = v;
        break;
    case CLI_OPT_REF:
        a->ref = v;
        break;
    case CLI_OPT_TENANT:
        a->tenant = v;
        break;
    case CLI_OPT_STORE:
        a->store = v;
        break;
    case CLI_OPT_REF_COLUMN:
        a->ref_column = v;
        break;
    case CLI_OPT_LIMIT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || end == v || *end || n < 1 || n > 1000000)
            return fail(err, errlen, "--limit wants a number from 1 to 1000000, not '%s'", v);
        a->limit = n;
        break;
    }
    default:
        break;
    }
    return 0;
}

int cli_args_parse(int argc, char **argv, unsigned allowed, int max_pos, struct cli_args *a,
                   char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->limit = -1;
    if (max_pos > CLI_MAX_POS)
        max_pos = CLI_MAX_POS;
    int options_done = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
            if (a->npos >= max_pos)
                return fail(err, errlen, "unexpected argument '%s'", arg);
            a->pos[a->npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            a->help = 1;
            continue;
        }
        if (arg[1] != '-')
            return fail(err, errlen, "unknown option '%s'", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct spec *s = NULL;
        for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++)
            if (strlen(specs[k].name) == nlen && memcmp(specs[k].name, name, nlen) == 0)
                s = &specs[k];
        if (!s || !(allowed & s->flag))
            return fail(err, errlen, "unknown option '--%.*s'", (int)nlen, name);
        if (!s->takes_value) {
            if (eq)
                return fail(err, errlen, "option '--%s' takes no value", s->name);
            if (s->flag == CLI_OPT_WAIT)
                a->wait = 1;
            else if (s->flag == CLI_OPT_JSON)
                a->json = 1;
            else if (s->flag == CLI_OPT_ALL)
                a->all = 1;
            continue;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc)
                return fail(err, errlen, "option '--%s' needs a value", s->name);
            v = argv[++i];
        }
        int rc = set_value(a, s->flag, v, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int cli_is_help(const char *s)
{
    return !strcmp(s, "help") || !strcmp(s, "--help") || !strcmp(s, "-h");
}

int cli_usage_error(const char *cmd, const char *msg, const char *usage)
{
    fprintf(stderr, "sluice %s: %s\n\n%s", cmd, msg, usage);
    return CLI_EXIT_USAGE;
}
