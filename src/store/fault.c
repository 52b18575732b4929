/* fault.c - injected storage faults (the test hook of fault.h).
 *
 * The rules of a store live in a small table behind one process-wide mutex: faults
 * are for tests, so their cost only matters when none is set, and then the wrappers
 * in store.c read one atomic flag (store->faulty) and never get here. */
#include "store/fault.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* The operations a rule may name: the store_*() wrappers, without "store_". */
static const char *const ops[] = {
    "ping",
    "key_create",
    "key_lookup",
    "key_list",
    "key_revoke",
    "tenant_set_weight",
    "job_begin",
    "job_add_items",
    "job_commit",
    "job_retry",
    "job_abort",
    "gc_receiving",
    "expire_claims",
    "retention_sweep",
    "job_get",
    "job_list",
    "job_cancel",
    "job_delete",
    "item_get",
    "item_list",
    "claim",
    "complete",
    "release",
    "doc_get",
    "doc_write",
    "doc_list",
    "stats",
    "tenant_load",
    "workflow_put",
    "workflow_get",
    "workflow_list",
    "workflow_delete",
    "hook_put",
    "hook_get",
    "hook_list",
    "hook_delete",
    "limit_put",
    "limit_get",
    "limit_list",
    "limit_delete",
    "delivery_claim",
    "delivery_record",
    "delivery_list",
    "setting_ensure",
    "callback_prefs_get",
    "callback_format_set",
    "callback_key_rotate",
    "bucket_take",
    "bucket_block",
    "sem_adjust",
    "secret_put",
    "secret_get",
    "secret_list",
    "secret_delete",
    "job_retry_begin",
    "job_retry_stage",
};
#define NOPS ((int)(sizeof ops / sizeof ops[0]))

/* The operations whose wrappers check AFTER rules (FAULT_AFTER in store.c). */
static int after_ok(const char *op)
{
    return op && (!strcmp(op, "job_commit") || !strcmp(op, "complete"));
}
#define ANY_OP (-1)

struct fault_rule {
    int op;        /* index into ops[], or ANY_OP */
    int64_t nth;   /* first failing call, 1-based */
    int64_t count; /* calls that fail from nth on; 0 = all */
    int64_t seen;  /* calls matched so far */
    int err;       /* negative sluice error */
    int after;     /* the call takes effect, then fails (a lost answer) */
};

struct store_faults {
    struct fault_rule rules[STORE_FAULT_MAX];
    int n;
    int64_t fired[NOPS];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int op_index(const char *name)
{
    if (strcmp(name, "*") == 0)
        return ANY_OP;
    for (int i = 0; i < NOPS; i++)
        if (strcmp(name, ops[i]) == 0)
            return i;
    return -2;
}

static int fault_add(struct store *st, const char *op, int64_t nth, int err, int64_t count,
                     int after)
{
    int rc = -SLUICE_E_INVALID_PARAMETER;
    int idx = op ? op_index(op) : -2;
    if (idx < ANY_OP || nth < 1 || count < 0 || err >= 0 || (after && !after_ok(op)))
        return rc;
    pthread_mutex_lock(&mu);
    if (!st->faults)
        st->faults = xcalloc(1, sizeof *st->faults);
    if (st->faults->n < STORE_FAULT_MAX) {
        st->faults->rules[st->faults->n++] = (struct fault_rule){idx, nth, count, 0, err, after};
        atomic_store(&st->faulty, 1);
        rc = 0;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

int store_fault_set(struct store *st, const char *op, int64_t nth, int err, int64_t count)
{
    return fault_add(st, op, nth, err, count, 0);
}

int store_fault_set_after(struct store *st, const char *op, int64_t nth, int err, int64_t count)
{
    return fault_add(st, op, nth, err, count, 1);
}

/* "busy", "io", "full" or a public error code ("LeaseLost") -> negative error, or 0. */
static int parse_err(const char *s)
{
    if (!strcmp(s, "busy"))
        return -SLUICE_E_STORE_BUSY;
    if (!strcmp(s, "io"))
        return -SLUICE_E_STORE_IO;
    if (!strcmp(s, "full"))
        return -SLUICE_E_STORE_FULL;
    for (int e = 1; e < SLUICE_E__COUNT; e++)
        if (!strcmp(s, sluice_err_code(e)))
            return -e;
    return 0;
}

/* A decimal integer filling all of s; -1 when it is not one. */
static int64_t parse_num(const char *s)
{
    int64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

int store_fault_parse(struct store *st, const char *spec, char *msg, size_t cap)
{
    struct fault_rule rules[STORE_FAULT_MAX];
    int n = 0, rc = -SLUICE_E_INVALID_PARAMETER;
    char *copy = xstrdup(spec), *save = NULL;
    for (char *r = strtok_r(copy, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
        char *f[6] = {0};
        int nf = 0;
        for (char *p = r, *colon; nf < 6; p = colon + 1) {
            f[nf++] = p;
            if (!(colon = strchr(p, ':')))
                break;
            *colon = '\0';
        }
        if (nf < 3 || nf > 5 || (nf == 5 && strcmp(f[4], "after"))) {
            snprintf(msg, cap, "'%.80s': a rule is OP:NTH:ERROR[:COUNT[:after]]", f[0]);
            goto out;
        }
        int op = op_index(f[0]), err = parse_err(f[2]), after = nf == 5;
        int64_t nth = parse_num(f[1]), count = nf >= 4 ? parse_num(f[3]) : 1;
        if (after && !after_ok(f[0])) {
            snprintf(msg, cap, "'%.80s': only job_commit and complete take :after", f[0]);
            goto out;
        }
        if (op < ANY_OP) {
            snprintf(msg, cap, "unknown store operation '%.80s'", f[0]);
            goto out;
        }
        if (nth < 1 || count < 0) {
            snprintf(msg, cap, "'%.80s': NTH is an integer >= 1 and COUNT >= 0", f[0]);
            goto out;
        }
        if (!err) {
            snprintf(msg, cap, "unknown error '%.80s' (busy, io, full or an error code)", f[2]);
            goto out;
        }
        if (n == STORE_FAULT_MAX) {
            snprintf(msg, cap, "at most %d rules", STORE_FAULT_MAX);
            goto out;
        }
        rules[n++] = (struct fault_rule){op, nth, count, 0, err, after};
    }
    if (n == 0) {
        snprintf(msg, cap, "no rule in '%.80s'", spec);
        goto out;
    }
    for (int i = 0; i < n; i++)
        if ((rc = fault_add(st, rules[i].op == ANY_OP ? "*" : ops[rules[i].op], rules[i].nth,
                            rules[i].err, rules[i].count, rules[i].after)) < 0) {
            snprintf(msg, cap, "at most %d rules", STORE_FAULT_MAX);
            goto out;
        }
    rc = 0;
out:
    free(copy);
    return rc;
}

void store_fault_clear(struct store *st)
{
    pthread_mutex_lock(&mu);
    atomic_store(&st->faulty, 0);
    if (st->faults)
        st->faults->n = 0;
    pthread_mutex_unlock(&mu);
}

int64_t store_fault_fired(struct store *st, const char *op)
{
    int64_t n = 0;
    int idx = op ? op_index(op) : ANY_OP;
    pthread_mutex_lock(&mu);
    for (int i = 0; st->faults && i < NOPS; i++)
        if (idx == ANY_OP || idx == i)
            n += st->faults->fired[i];
    pthread_mutex_unlock(&mu);
    return n;
}

/* The error the rules of one kind (after or not) give this call of op, or 0. */
static int hit(struct store *st, const char *op, int after)
{
    int rc = 0, idx = op_index(op);
    pthread_mutex_lock(&mu);
    for (int i = 0; st->faults && i < st->faults->n; i++) {
        struct fault_rule *r = &st->faults->rules[i];
        if ((r->op != ANY_OP && r->op != idx) || r->after != after)
            continue;
        r->seen++;
        if (!rc && r->seen >= r->nth && (r->count == 0 || r->seen < r->nth + r->count))
            rc = r->err;
    }
    if (rc && idx >= 0)
        st->faults->fired[idx]++;
    pthread_mutex_unlock(&mu);
    if (rc)
        log_write(LOG_WARN, "injected storage fault", "op", op, "error", sluice_err_code(rc),
                  "when", after ? "after the call took effect" : "before the call", NULL);
    return rc;
}

int store_fault_hit(struct store *st, const char *op)
{
    return hit(st, op, 0);
}

int store_fault_hit_after(struct store *st, const char *op, int rc)
{
    int err = rc >= 0 && atomic_load(&st->faulty) ? hit(st, op, 1) : 0;
    return err ? err : rc;
}

void store_fault_free(struct store *st)
{
    free(st->faults);
    st->faults = NULL;
}
