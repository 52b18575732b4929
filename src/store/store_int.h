/* store_int.h - private to src/store/: the store handle and the backends' ops tables.
 *
 * Callers see only `struct store *` (store.h); store.c forwards each store_*() call to
 * st->ops with st->impl, and picks the ops table from the URL scheme at open. */
#ifndef SLUICE_STORE_INT_H
#define SLUICE_STORE_INT_H

#include <stdatomic.h>

#include "store/store.h"

/* ---- TEMPORARY (issue 12, step A): the per-kind definitions of the backends -------
 *
 * Callers see one struct store_def and four store_def_*() calls (store.h). Until the
 * backends learn the kind (step B, after they are split by resource), they keep their
 * 16 per-kind ops and these four structs, and store.c adapts between the two (its
 * "adapter" section). Step B deletes all of this. */

/* A stored workflow definition: one row per version. */
struct store_workflow {
    char name[STORE_NAME_MAX];
    int64_t version;    /* 1, 2, ...: never reused, even after a delete */
    char *definition;   /* heap JSON text as validated by the caller */
    int64_t created_at; /* of this version */
    int deleted;        /* this version was removed by a delete of the name (versions
                           stay for running jobs); versions put after that delete are
                           live again, the ones it removed stay deleted */
};

/* A webhook entry point. Hook names are unique across tenants, because the public
 * events URL (/v1/hooks/{name}/events) carries no API key. */
struct store_hook {
    char name[STORE_NAME_MAX];
    char tenant[STORE_NAME_MAX];
    char *definition; /* heap JSON text (secrets included: never echo it as is) */
    int64_t created_at, updated_at;
};

/* A named processing limit of a tenant (the engine's limits module gives it meaning). */
struct store_limit {
    char name[STORE_NAME_MAX];
    char tenant[STORE_NAME_MAX];
    char *definition; /* heap JSON text as validated by the caller */
    int64_t created_at, updated_at;
};

/* A tenant's own secret, the value of {{secrets.NAME}} in its http header templates
 * (PUT /v1/secrets/{name}). The API never returns the value. */
struct store_secret {
    char name[STORE_NAME_MAX];
    char tenant[STORE_NAME_MAX];
    char *value; /* heap; store_secret_release() wipes it */
    int64_t created_at, updated_at;
};

void store_workflow_release(struct store_workflow *w);
void store_workflows_free(struct store_workflow *w, size_t n);
void store_hook_release(struct store_hook *h);
void store_hooks_free(struct store_hook *h, size_t n);
void store_limit_release(struct store_limit *l);
void store_limits_free(struct store_limit *l, size_t n);
/* Wipes the value before freeing it. */
void store_secret_release(struct store_secret *s);
void store_secrets_free(struct store_secret *s, size_t n);

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

    int (*job_begin)(void *impl, const char *tenant, const char *job_id);
    int (*job_add_items)(void *impl, const char *job_id, const struct store_new_item *items,
                         size_t n);
    int (*job_commit)(void *impl, const char *job_id, const struct store_job_meta *meta,
                      int64_t total, struct store_job *out);
    int (*job_retry)(void *impl, const char *tenant, const char *job_id, const char *new_job_id,
                     const struct store_job_meta *meta, struct store_job *out);
    int (*job_abort)(void *impl, const char *job_id);
    int (*job_retry_begin)(void *impl, const char *tenant, const char *job_id,
                           const char *new_job_id, const struct store_job_meta *meta,
                           struct store_job *out);
    int (*job_retry_stage)(void *impl, size_t max_rows, int64_t *cursor, char *job_id);
    int (*gc_receiving)(void *impl, int64_t older_than);
    int (*expire_claims)(void *impl);
    int (*retention_sweep)(void *impl, int64_t jobs_completed_before, int64_t keys_created_before,
                           size_t max_rows);

    int (*job_get)(void *impl, const char *tenant, const char *job_id, struct store_job *out);
    int (*job_list)(void *impl, const char *tenant, int status, int64_t before_seq, size_t limit,
                    struct store_job **out, size_t *n);
    int (*job_cancel)(void *impl, const char *tenant, const char *job_id, struct store_job *out);
    int (*job_delete)(void *impl, const char *tenant, const char *job_id);

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

    int (*workflow_put)(void *impl, const char *tenant, const char *name, const char *definition,
                        struct store_workflow *out);
    int (*workflow_get)(void *impl, const char *tenant, const char *name, int64_t version,
                        struct store_workflow *out);
    int (*workflow_list)(void *impl, const char *tenant, const char *after_name, size_t limit,
                         struct store_workflow **out, size_t *n);
    int (*workflow_delete)(void *impl, const char *tenant, const char *name);

    int (*hook_put)(void *impl, const char *tenant, const char *name, const char *definition,
                    struct store_hook *out);
    int (*hook_get)(void *impl, const char *tenant, const char *name, struct store_hook *out);
    int (*hook_list)(void *impl, const char *tenant, const char *after_name, size_t limit,
                     struct store_hook **out, size_t *n);
    int (*hook_delete)(void *impl, const char *tenant, const char *name);

    int (*limit_put)(void *impl, const char *tenant, const char *name, const char *definition,
                     struct store_limit *out);
    int (*limit_get)(void *impl, const char *tenant, const char *name, struct store_limit *out);
    int (*limit_list)(void *impl, const char *tenant, const char *after_name, size_t limit,
                      struct store_limit **out, size_t *n);
    int (*limit_delete)(void *impl, const char *tenant, const char *name);
    int (*secret_put)(void *impl, const char *tenant, const char *name, const char *value,
                      struct store_secret *out);
    int (*secret_get)(void *impl, const char *tenant, const char *name, struct store_secret *out);
    int (*secret_list)(void *impl, const char *tenant, const char *after_name, size_t limit,
                       struct store_secret **out, size_t *n);
    int (*secret_delete)(void *impl, const char *tenant, const char *name);
    /* step B (issue 12) replaces the 16 ops above by these four, one per verb, taking
     * the kind. Their contract is store_def_*()'s in store.h (TENANT-OWNED
     * DEFINITIONS), less what store.c does above every backend: the fault points,
     * the argument checks (known kind, tenant NULL only where allowed, version 0
     * outside workflows) and clearing out. The backend fills every field of out
     * (kind included; out may be NULL for put) and tells a workflow put's CREATED
     * from REPLACED itself, in the put's own transaction (the adapter asks first):
     *
     * int (*def_put)(void *impl, enum store_def_kind kind, const char *tenant,
     *                const char *name, const char *text, struct store_def *out);
     * int (*def_get)(void *impl, enum store_def_kind kind, const char *tenant,
     *                const char *name, int64_t version, struct store_def *out);
     * int (*def_list)(void *impl, enum store_def_kind kind, const char *tenant,
     *                 const char *after_name, size_t limit, struct store_def **out,
     *                 size_t *n);
     * int (*def_delete)(void *impl, enum store_def_kind kind, const char *tenant,
     *                   const char *name);
     */
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

#endif
