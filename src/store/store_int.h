/* store_int.h - private to src/store/: the store handle and the backends' ops tables.
 *
 * Callers see only `struct store *` (store.h); store.c forwards each store_*() call to
 * st->ops with st->impl (the job operations: rules.c's bodies on the backend's steps,
 * st->ops->jobs), and picks the ops table from the URL scheme at open. */
#ifndef SLUICE_STORE_INT_H
#define SLUICE_STORE_INT_H

#include <stdatomic.h>

#include "store/store.h"

struct rules_jobs_prims;

/* One call of a def op (store_ops.def_put ... def_delete below), as the backends'
 * transaction bodies take it: its arguments, and the outputs that a failed commit
 * drops again. The same in every backend. */
struct store_def_call {
    enum store_def_kind kind;
    const char *tenant, *name, *text; /* list: name is the name to start after ("") */
    int64_t version;
    size_t limit;
    struct store_def *one;  /* get, put: the caller's out (put: may be NULL) */
    struct store_def *many; /* list: heap array of n */
    size_t n;
};

/* A backend: its name and operations, filled with designated initializers. The
 * wrappers in store.c call these with the backend's own handle (impl). */
struct store_ops {
    const char *name; /* "sqlite", "postgres" */
    int shared;       /* 1: several processes (nodes) may use the store at once */
    int (*open)(const char *location, const struct store_options *opt, void **impl);
    void (*close)(void *impl);
    int (*ping)(void *impl);
    int (*heartbeat)(void *impl);
    const char *(*node_id)(void *impl);
    int (*watch)(void *impl, void (*fn)(void *ctx), void *ctx);

    int (*key_create)(void *impl, const char *key_id, const char *tenant, const char *hash_hex);
    int (*key_lookup)(void *impl, const char *hash_hex, char tenant[STORE_NAME_MAX]);
    int (*key_list)(void *impl, struct store_key **out, size_t *n);
    int (*key_revoke)(void *impl, const char *key_id);
    int (*tenant_set_weight)(void *impl, const char *tenant, int weight);

    /* The job operations (store_job_begin ... store_job_delete, store_gc_receiving,
     * store_retention_sweep): store.c runs rules.c's bodies on these steps. */
    const struct rules_jobs_prims *jobs;
    int (*expire_claims)(void *impl);

    int (*item_get)(void *impl, const char *tenant, const char *job_id, int64_t index,
                    struct store_item *out);
    int (*item_list)(void *impl, const char *tenant, const char *job_id,
                     const struct store_item_filter *f, int64_t after_index, size_t limit,
                     int with_data, struct store_item **out, size_t *n);

    int (*claim)(void *impl, const struct store_claim_opts *o, struct store_claim *out);
    int (*complete)(void *impl, const struct store_claim *c, struct store_outcome *outs, size_t n,
                    const struct store_step_count *steps, size_t nsteps);
    int (*release)(void *impl, const struct store_claim *c);

    int (*doc_get)(void *impl, const char *tenant, const char *collection, const char *ref,
                   struct store_doc *out);
    int (*doc_write)(void *impl, const char *tenant, const char *collection, const char *ref,
                     enum store_op op, const char *data, size_t data_len, int64_t if_match,
                     struct store_doc *out, int *created);
    int (*doc_list)(void *impl, const char *tenant, const char *collection, const char *after_ref,
                    size_t limit, struct store_doc **out, size_t *n);

    int (*stats)(void *impl, struct store_stats *out);
    int (*tenant_load)(void *impl, const char *tenant, int64_t *open_jobs, int64_t *pending);

    /* The tenant-owned definitions, one op per verb taking the kind. Their contract is
     * store_def_*()'s in store.h (TENANT-OWNED DEFINITIONS), less what store.c does
     * above every backend: the fault points, the argument checks (known kind, tenant
     * NULL only where allowed, version 0 outside workflows, a name and a text to put)
     * and clearing out. The backend fills every field of out (kind included; out may
     * be NULL for put) and tells a put's CREATED from REPLACED itself, in the put's own
     * transaction. */
    int (*def_put)(void *impl, enum store_def_kind kind, const char *tenant, const char *name,
                   const char *text, struct store_def *out);
    int (*def_get)(void *impl, enum store_def_kind kind, const char *tenant, const char *name,
                   int64_t version, struct store_def *out);
    int (*def_list)(void *impl, enum store_def_kind kind, const char *tenant,
                    const char *after_name, size_t limit, struct store_def **out, size_t *n);
    int (*def_delete)(void *impl, enum store_def_kind kind, const char *tenant, const char *name);

    int (*bucket_take)(void *impl, const char *id, double interval_ms, double tolerance_ms,
                       int64_t n, struct store_bucket_lease *out);
    int (*bucket_block)(void *impl, const char *id, int64_t until_ms);
    int (*sem_adjust)(void *impl, const char *id, int64_t cap, int64_t delta, int64_t *held);

    int (*delivery_claim)(void *impl, int64_t lease_ms, size_t max, struct store_delivery **out,
                          size_t *n);
    int (*delivery_record)(void *impl, const struct store_delivery *d,
                           const struct store_delivery_attempt *a, int state, int64_t next_at);
    int (*delivery_list)(void *impl, const char *tenant, const char *job_id,
                         struct store_delivery **out, size_t *n);
    int (*setting_ensure)(void *impl, const char *name, const char *value, char **out);
    int (*callback_prefs_get)(void *impl, const char *tenant, struct store_callback_prefs *out);
    int (*callback_format_set)(void *impl, const char *tenant, int format);
    int (*callback_key_rotate)(void *impl, const char *tenant, int64_t prev_until,
                               struct store_callback_prefs *out);
};

struct store_faults;

struct store {
    const struct store_ops *ops;
    void *impl;                  /* the backend's own handle, from ops->open */
    atomic_int faulty;           /* a fault rule is set (store/fault.h): wrappers check */
    struct store_faults *faults; /* the rules, NULL until the first; fault.c's */
};

/* fault.c, for the wrappers in store.c: the error an injected fault gives the call of
 * operation op (the wrapper's name without "store_"), or 0 to go on to the backend. */
int store_fault_hit(struct store *st, const char *op);
/* The same after the backend's call returned rc: rc, or the error an AFTER rule gives
 * a call that took effect (a lost answer). */
int store_fault_hit_after(struct store *st, const char *op, int rc);
/* Frees the rules of st (store_close). */
void store_fault_free(struct store *st);

struct buf;
/* A PATCH's result, the same in every backend: the JSON merge patch (RFC 7396) of the
 * patch text onto the current document's text, written into out (reset first) by the
 * pipeline's writer (util/jsonw.h), so that its length is what a patch step measured
 * and what the document limit is checked against. 0, -SLUICE_E_INVALID_DATA (either
 * text is not JSON) or -SLUICE_E_INTERNAL. */
int store_doc_merge(const char *cur, size_t cur_len, const char *patch, size_t patch_len,
                    struct buf *out);

/* The embedded backend (sqlite/), for URLs "sqlite:PATH". */
extern const struct store_ops store_sqlite_ops;

/* The shared backend (postgres/), for URLs "postgres://..." and "postgresql://...". */
extern const struct store_ops store_postgres_ops;

/* Its schema migrations in order (001 first): only for tests that build a database
 * of an older schema and check that store_open upgrades it. */
extern const char *const *const store_sqlite_migrations;
extern const size_t store_sqlite_nmigrations;
/* The same for the shared backend: each migration a NULL-terminated list of
 * statements. */
extern const char *const *const *const store_pg_migrations;
extern const size_t store_pg_nmigrations;

#endif
