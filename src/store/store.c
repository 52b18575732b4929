/* store.c - the backend-neutral half of the storage contract (store.h).
 *
 * Opens a backend picked from the URL scheme, forwards every store_*() call to its
 * ops table (the one place where tests inject faults: FAULT_POINT, store/fault.h) or,
 * for the job ops, runs rules.c's transaction bodies on the backend's steps
 * (store_ops.jobs), and holds what no backend should repeat: option defaults, the
 * argument rules of the tenant-owned definitions, the *_release()/_free() functions
 * for the structs the store fills, and the API names of the job and item states. */
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/rules.h"
#include "store/store_int.h"
#include "util/buf.h"
#include "util/errors.h"
#include "util/jload.h"
#include "util/json_merge.h"
#include "util/jsonw.h"
#include "util/xmalloc.h"

/* Test hook (store/fault.h): a fault rule set for this wrapper's operation fails the
 * call before the backend sees it. Without rules: one atomic load. */
#define FAULT_POINT(st) FAULT_POINT_AS((st), __func__ + sizeof "store_" - 1)
/* The same under the operation name op (the definitions' wrappers serve four kinds). */
#define FAULT_POINT_AS(st, op)                                                                     \
    do {                                                                                           \
        if (atomic_load_explicit(&(st)->faulty, memory_order_acquire)) {                           \
            int fault_rc_ = store_fault_hit((st), (op));                                           \
            if (fault_rc_ < 0)                                                                     \
                return fault_rc_;                                                                  \
        }                                                                                          \
    } while (0)
/* ... and after the call (only job_commit and complete): AFTER rules make a call that
 * took effect report an error, as when its answer is lost. */
#define FAULT_AFTER(st, call) store_fault_hit_after((st), __func__ + sizeof "store_" - 1, (call))

/* ---- lifecycle ---------------------------------------------------------------- */

void store_options_default(struct store_options *opt)
{
    opt->synchronous_full = 1;
    opt->busy_timeout_ms = 5000;
    opt->retention_ms = 0;
    opt->node_timeout_ms = 15000;
    opt->max_doc_bytes = STORE_DEFAULT_MAX_DOC_BYTES;
}

/* mkdir -p of the directory part of path ("a/b/c.db" -> "a/b"); directories made here
 * are the owner's only (0700): they hold the database. */
static int make_parent_dirs(const char *path)
{
    int rc = -SLUICE_E_STORE_IO;
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        rc = 0; /* current directory */
        goto out;
    }
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            goto out;
        *p = '/';
    }
    if (dir[0] && mkdir(dir, 0700) != 0 && errno != EEXIST)
        goto out;
    rc = 0;
out:
    free(dir);
    return rc;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Nonzero when the n bytes at k, percent-decoded, spell "password" (libpq decodes
 * parameter names too). */
static int is_password_key(const char *k, size_t n)
{
    static const char want[] = "password";
    size_t w = 0;
    for (size_t i = 0; i < n; i++, w++) {
        char c = k[i];
        if (c == '%' && i + 2 < n && hexval(k[i + 1]) >= 0 && hexval(k[i + 2]) >= 0) {
            c = (char)(hexval(k[i + 1]) * 16 + hexval(k[i + 2]));
            i += 2;
        }
        if (w >= sizeof want - 1 || c != want[w])
            return 0;
    }
    return w == sizeof want - 1;
}

/* The password of a postgres URL: [start, start + len) of url, or len 0. Userinfo
 * "user:PASSWORD@" (found as libpq finds it: the first '@' before any '/'), or the
 * query parameter "password=PASSWORD". */
static void url_password(const char *url, size_t *start, size_t *len)
{
    *start = *len = 0;
    const char *p = strstr(url, "://");
    if (!p || (strncmp(url, "postgres", 8) != 0))
        return;
    p += 3;
    const char *at = p + strcspn(p, "@/");
    const char *colon = *at == '@' ? memchr(p, ':', (size_t)(at - p)) : NULL;
    if (colon) {
        *start = (size_t)(colon + 1 - url);
        *len = (size_t)(at - colon - 1);
        return;
    }
    const char *rest = *at == '@' ? at + 1 : p;
    for (const char *q = strchr(rest, '?'); q; q = strchr(q + 1, '&')) {
        const char *k = q + 1;
        size_t kn = strcspn(k, "=&#");
        if (k[kn] == '=' && is_password_key(k, kn)) {
            *start = (size_t)(k + kn + 1 - url);
            *len = strcspn(k + kn + 1, "&#");
            return;
        }
    }
}

char *store_url_redacted(const char *url)
{
    size_t start, len;
    url_password(url ? url : "", &start, &len);
    if (!len)
        return xstrdup(url ? url : "");
    struct buf b = BUF_INIT;
    buf_append(&b, url, start);
    buf_puts(&b, "***");
    buf_puts(&b, url + start + len);
    return buf_detach(&b, NULL);
}

/* msg with every occurrence of the len bytes at pw replaced by "***". Caller frees. */
static char *mask_all(const char *msg, const char *pw, size_t len)
{
    struct buf b = BUF_INIT;
    for (const char *p = msg, *hit; *p; p = hit + len) {
        hit = len ? memmem(p, strlen(p), pw, len) : NULL;
        if (!hit) {
            buf_puts(&b, p);
            break;
        }
        buf_append(&b, p, (size_t)(hit - p));
        buf_puts(&b, "***");
    }
    return buf_detach(&b, NULL);
}

char *store_mask_password(const char *url, const char *msg)
{
    size_t start, len;
    url_password(url ? url : "", &start, &len);
    if (!len || !msg)
        return xstrdup(msg ? msg : "");
    /* as written in the URL, and percent-decoded as libpq may quote it */
    char *once = mask_all(msg, url + start, len);
    char *dec = xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        const char *p = url + start + i;
        if (*p == '%' && i + 2 < len && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            dec[n++] = (char)(hexval(p[1]) * 16 + hexval(p[2]));
            i += 2;
        } else {
            dec[n++] = *p;
        }
    }
    char *twice = mask_all(once, dec, n);
    free(once);
    free(dec);
    return twice;
}

int store_doc_merge(const char *cur, size_t cur_len, const char *patch, size_t patch_len,
                    struct buf *out)
{
    int rc = -SLUICE_E_INVALID_DATA;
    json_t *c = jload(cur, cur_len, JLOAD_ALLOW_NUL);
    json_t *p = jload(patch, patch_len, JLOAD_ALLOW_NUL);
    json_t *merged = NULL;
    if (!c || !p)
        goto out;
    rc = -SLUICE_E_INTERNAL;
    if (!(merged = json_merge_patch(c, p)))
        goto out;
    buf_reset(out);
    jsonw_put(out, merged);
    rc = 0;
out:
    json_decref(c);
    json_decref(p);
    json_decref(merged);
    return rc;
}

int store_open(const char *url, const struct store_options *opt, struct store **st)
{
    int rc = -SLUICE_E_INVALID_PARAMETER;
    struct store_options defaults;
    const struct store_ops *ops = NULL;
    const char *location = NULL;
    void *impl = NULL;

    *st = NULL;
    if (!opt) {
        store_options_default(&defaults);
        opt = &defaults;
    }
    if (url && strncmp(url, "sqlite:", 7) == 0 && url[7] != '\0') {
        ops = &store_sqlite_ops;
        location = url + 7;
        rc = make_parent_dirs(location);
        if (rc < 0)
            goto out;
    } else if (url &&
               (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)) {
        ops = &store_postgres_ops;
        location = url; /* libpq takes the whole URL */
    } else {
        goto out;
    }
    rc = ops->open(location, opt, &impl);
    if (rc < 0)
        goto out;
    *st = xcalloc(1, sizeof **st);
    (*st)->ops = ops;
    (*st)->impl = impl;
    atomic_init(&(*st)->faulty, 0);
    rc = 0;
out:
    return rc;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    st->ops->close(st->impl);
    store_fault_free(st);
    free(st);
}

int store_ping(struct store *st)
{
    FAULT_POINT(st);
    return st->ops->ping(st->impl);
}

const char *store_backend(const struct store *st)
{
    return st->ops->name;
}

int store_shared(const struct store *st)
{
    return st->ops->shared;
}

int store_heartbeat(struct store *st)
{
    return st->ops->heartbeat ? st->ops->heartbeat(st->impl) : 0;
}

const char *store_node_id(const struct store *st)
{
    return st->ops->node_id ? st->ops->node_id(st->impl) : "local";
}

int store_watch(struct store *st, void (*fn)(void *ctx), void *ctx)
{
    return st->ops->watch ? st->ops->watch(st->impl, fn, ctx) : 0;
}

/* ---- forwarding wrappers --------------------------------------------------------- */

int store_key_create(struct store *st, const char *key_id, const char *tenant, const char *hash_hex)
{
    FAULT_POINT(st);
    return st->ops->key_create(st->impl, key_id, tenant, hash_hex);
}

int store_key_lookup(struct store *st, const char *hash_hex, char tenant[STORE_NAME_MAX])
{
    FAULT_POINT(st);
    return st->ops->key_lookup(st->impl, hash_hex, tenant);
}

int store_key_list(struct store *st, struct store_key **out, size_t *n)
{
    FAULT_POINT(st);
    return st->ops->key_list(st->impl, out, n);
}

int store_key_revoke(struct store *st, const char *key_id)
{
    FAULT_POINT(st);
    return st->ops->key_revoke(st->impl, key_id);
}

int store_tenant_set_weight(struct store *st, const char *tenant, int weight)
{
    if (!tenant || !*tenant || weight < STORE_WEIGHT_MIN || weight > STORE_WEIGHT_MAX)
        return -SLUICE_E_INVALID_PARAMETER;
    FAULT_POINT(st);
    return st->ops->tenant_set_weight(st->impl, tenant, weight);
}

/* ---- jobs: rules.c's bodies on the backend's steps ------------------------------ */

/* Runs the job body that heads its context (tx->body, rules.h) on st's backend in one
 * transaction of kind; undo as in struct rules_jobs_prims. */
static int run_jobs(struct store *st, enum rules_tx_kind kind, struct rules_tx *tx,
                    void (*undo)(void *ctx))
{
    tx->p = st->ops->jobs;
    return tx->p->run(st->impl, kind, tx, undo);
}

int store_job_begin(struct store *st, const char *tenant, const char *job_id)
{
    FAULT_POINT(st);
    struct rules_submit x = {.tx.body = rules_job_begin_body, .tenant = tenant, .job_id = job_id};
    return run_jobs(st, RULES_TX_WRITE, &x.tx, NULL);
}

int store_job_add_items(struct store *st, const char *job_id, const struct store_new_item *items,
                        size_t n)
{
    FAULT_POINT(st);
    struct rules_submit x = {
        .tx.body = rules_job_add_items_body, .job_id = job_id, .items = items, .n = n};
    /* No fsync: a Receiving job is worthless after a crash (see Durability in
     * sqlite/conn.c). */
    return run_jobs(st, RULES_TX_WRITE_NOSYNC, &x.tx, NULL);
}

int store_job_commit(struct store *st, const char *job_id, const struct store_job_meta *meta,
                     int64_t total, struct store_job *out)
{
    if (meta && (meta->callback_format < STORE_CB_FORMAT_DEFAULT ||
                 meta->callback_format > STORE_CB_FORMAT_MAX))
        return -SLUICE_E_INVALID_PARAMETER;
    FAULT_POINT(st);
    struct store_job_meta none = {0};
    struct rules_submit x = {.tx.body = rules_job_commit_body,
                             .job_id = job_id,
                             .meta = meta ? meta : &none,
                             .total = total,
                             .out = out};
    if (out)
        memset(out, 0, sizeof *out);
    int rc = run_jobs(st, RULES_TX_WRITE, &x.tx, rules_submit_undo);
    int seen = FAULT_AFTER(st, rc);
    if (seen < 0 && rc >= 0) /* an answer lost after the commit: the caller gets no job */
        rules_submit_undo(&x);
    return seen;
}

/* A staging retry is stored Receiving (status 0) with a parent: readers see it
 * NotStarted with the staging flag. One rule for both backends, so it lives here. */
static void show_staging(struct store_job *j)
{
    if (j->status == JOB_RECEIVING) {
        j->status = JOB_NOT_STARTED;
        j->staging = 1;
    }
}

/* store_job_retry, and store_job_retry_begin when staging. */
static int job_retry(struct store *st, const char *tenant, const char *job_id,
                     const char *new_job_id, const struct store_job_meta *meta, int staging,
                     struct store_job *out)
{
    struct rules_submit x = {.tx.body = rules_job_retry_body,
                             .tenant = tenant,
                             .job_id = job_id,
                             .new_job_id = new_job_id,
                             .meta = meta,
                             .out = out,
                             .staging = staging};
    if (out)
        memset(out, 0, sizeof *out);
    int rc = run_jobs(st, RULES_TX_WRITE, &x.tx, rules_submit_undo);
    if (rc > 0 && out) /* a replay may name a staging retry */
        show_staging(out);
    return rc;
}

int store_job_retry(struct store *st, const char *tenant, const char *job_id,
                    const char *new_job_id, const struct store_job_meta *meta,
                    struct store_job *out)
{
    FAULT_POINT(st);
    return job_retry(st, tenant, job_id, new_job_id, meta, 0, out);
}

int store_job_retry_begin(struct store *st, const char *tenant, const char *job_id,
                          const char *new_job_id, const struct store_job_meta *meta,
                          struct store_job *out)
{
    FAULT_POINT(st);
    return job_retry(st, tenant, job_id, new_job_id, meta, 1, out);
}

int store_job_retry_stage(struct store *st, size_t max_rows, int64_t *cursor, char *job_id)
{
    job_id[0] = '\0';
    FAULT_POINT(st);
    struct rules_stage x = {.tx.body = rules_stage_body,
                            .max_rows = max_rows ? max_rows : 1,
                            .job_id = job_id,
                            .after = cursor ? *cursor : 0,
                            .seq = cursor};
    return run_jobs(st, RULES_TX_WRITE_BG, &x.tx, NULL);
}

int store_job_abort(struct store *st, const char *job_id)
{
    FAULT_POINT(st);
    struct rules_submit x = {.tx.body = rules_job_abort_body, .job_id = job_id};
    int rc = run_jobs(st, RULES_TX_WRITE, &x.tx, NULL);
    return rc < 0 ? rc : 0;
}

int store_gc_receiving(struct store *st, int64_t older_than)
{
    FAULT_POINT(st);
    struct rules_submit x = {.tx.body = rules_gc_body, .older_than = older_than};
    return run_jobs(st, RULES_TX_WRITE_BG, &x.tx, NULL);
}

int store_expire_claims(struct store *st)
{
    FAULT_POINT(st);
    return st->ops->expire_claims(st->impl);
}

int store_retention_sweep(struct store *st, int64_t jobs_completed_before,
                          int64_t keys_created_before, size_t max_rows)
{
    FAULT_POINT(st);
    struct rules_sweep x = {.tx.body = rules_sweep_body,
                            .jobs_before = jobs_completed_before,
                            .keys_before = keys_created_before,
                            .budget = rules_sweep_budget(max_rows)};
    return run_jobs(st, RULES_TX_WRITE_BG, &x.tx, NULL);
}

int store_job_get(struct store *st, const char *tenant, const char *job_id, struct store_job *out)
{
    FAULT_POINT(st);
    struct rules_jobs x = {
        .tx.body = rules_job_get_body, .tenant = tenant, .job_id = job_id, .out = out};
    memset(out, 0, sizeof *out);
    int rc = run_jobs(st, RULES_TX_READ, &x.tx, rules_jobs_undo);
    if (rc > 0)
        show_staging(out);
    return rc;
}

int store_job_list(struct store *st, const char *tenant, int status, int64_t before_seq,
                   size_t limit, struct store_job **out, size_t *n)
{
    FAULT_POINT(st);
    struct rules_jobs x = {.tx.body = rules_job_list_body,
                           .tenant = tenant,
                           .status = status,
                           .before_seq = before_seq,
                           .limit = limit};
    int rc = run_jobs(st, RULES_TX_READ, &x.tx, rules_jobs_undo);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

int store_job_cancel(struct store *st, const char *tenant, const char *job_id,
                     struct store_job *out)
{
    FAULT_POINT(st);
    struct rules_jobs x = {
        .tx.body = rules_job_cancel_body, .tenant = tenant, .job_id = job_id, .out = out};
    if (out)
        memset(out, 0, sizeof *out);
    return run_jobs(st, RULES_TX_WRITE, &x.tx, rules_jobs_undo);
}

int store_job_delete(struct store *st, const char *tenant, const char *job_id)
{
    FAULT_POINT(st);
    struct rules_jobs x = {.tx.body = rules_job_delete_body, .tenant = tenant, .job_id = job_id};
    return run_jobs(st, RULES_TX_WRITE, &x.tx, NULL);
}

int store_item_get(struct store *st, const char *tenant, const char *job_id, int64_t index,
                   struct store_item *out)
{
    FAULT_POINT(st);
    return st->ops->item_get(st->impl, tenant, job_id, index, out);
}

int store_item_list(struct store *st, const char *tenant, const char *job_id,
                    const struct store_item_filter *f, int64_t after_index, size_t limit,
                    int with_data, struct store_item **out, size_t *n)
{
    FAULT_POINT(st);
    return st->ops->item_list(st->impl, tenant, job_id, f, after_index, limit, with_data, out, n);
}

int store_claim(struct store *st, const struct store_claim_opts *o, struct store_claim *c)
{
    FAULT_POINT(st);
    return st->ops->claim(st->impl, o, c);
}

int store_complete(struct store *st, const struct store_claim *c, struct store_outcome *outs,
                   size_t n, const struct store_step_count *steps, size_t nsteps)
{
    FAULT_POINT(st);
    return FAULT_AFTER(st, st->ops->complete(st->impl, c, outs, n, steps, nsteps));
}

int store_release(struct store *st, const struct store_claim *c)
{
    FAULT_POINT(st);
    return st->ops->release(st->impl, c);
}

int store_doc_get(struct store *st, const char *tenant, const char *collection, const char *ref,
                  struct store_doc *out)
{
    FAULT_POINT(st);
    return st->ops->doc_get(st->impl, tenant, collection, ref, out);
}

int store_doc_write(struct store *st, const char *tenant, const char *collection, const char *ref,
                    enum store_op op, const char *data, size_t data_len, int64_t if_match,
                    struct store_doc *out, int *created)
{
    FAULT_POINT(st);
    return st->ops->doc_write(st->impl, tenant, collection, ref, op, data, data_len, if_match, out,
                              created);
}

int store_doc_list(struct store *st, const char *tenant, const char *collection,
                   const char *after_ref, size_t limit, struct store_doc **out, size_t *n)
{
    FAULT_POINT(st);
    return st->ops->doc_list(st->impl, tenant, collection, after_ref, limit, out, n);
}

int store_stats(struct store *st, struct store_stats *out)
{
    FAULT_POINT(st);
    return st->ops->stats(st->impl, out);
}

int store_tenant_load(struct store *st, const char *tenant, int64_t *open_jobs, int64_t *pending)
{
    FAULT_POINT(st);
    return st->ops->tenant_load(st->impl, tenant, open_jobs, pending);
}

/* ---- tenant-owned definitions (store.h: TENANT-OWNED DEFINITIONS) -------------- */

enum def_verb { DEF_PUT, DEF_GET, DEF_LIST, DEF_DELETE, DEF__VERBS };

/* The fault point of each kind and verb: the names the per-kind wrappers had, which
 * SLUICE_FAULTS rules and fault.c's ops[] use. */
static const char *const def_fault_names[STORE_DEF__COUNT][DEF__VERBS] = {
    [STORE_DEF_WORKFLOW] = {"workflow_put", "workflow_get", "workflow_list", "workflow_delete"},
    [STORE_DEF_HOOK] = {"hook_put", "hook_get", "hook_list", "hook_delete"},
    [STORE_DEF_LIMIT] = {"limit_put", "limit_get", "limit_list", "limit_delete"},
    [STORE_DEF_SECRET] = {"secret_put", "secret_get", "secret_list", "secret_delete"},
};

/* The rules of store.h that hold whatever the backend: a known kind, a tenant unless
 * the kind allows NULL for this verb, and a version only for workflows. */
static int def_args_ok(enum store_def_kind kind, enum def_verb verb, const char *tenant,
                       int64_t version)
{
    if ((unsigned)kind >= STORE_DEF__COUNT || (version != 0 && kind != STORE_DEF_WORKFLOW))
        return 0;
    return tenant || (kind == STORE_DEF_HOOK && verb == DEF_GET) ||
           (kind == STORE_DEF_LIMIT && verb == DEF_LIST);
}

/* out (may be NULL) empty, so that the caller may release it whatever the result. */
static void def_clear(struct store_def *out, enum store_def_kind kind)
{
    if (out) {
        memset(out, 0, sizeof *out);
        out->kind = kind;
    }
}

int store_def_put(struct store *st, enum store_def_kind kind, const char *tenant, const char *name,
                  const char *text, struct store_def *out)
{
    def_clear(out, kind);
    if (!def_args_ok(kind, DEF_PUT, tenant, 0) || !name || !text) /* both: NOT NULL columns */
        return -SLUICE_E_INVALID_PARAMETER;
    FAULT_POINT_AS(st, def_fault_names[kind][DEF_PUT]);
    return st->ops->def_put(st->impl, kind, tenant, name, text, out);
}

int store_def_get(struct store *st, enum store_def_kind kind, const char *tenant, const char *name,
                  int64_t version, struct store_def *out)
{
    def_clear(out, kind);
    if (!def_args_ok(kind, DEF_GET, tenant, version))
        return -SLUICE_E_INVALID_PARAMETER;
    FAULT_POINT_AS(st, def_fault_names[kind][DEF_GET]);
    return st->ops->def_get(st->impl, kind, tenant, name, version, out);
}

int store_def_list(struct store *st, enum store_def_kind kind, const char *tenant,
                   const char *after_name, size_t limit, struct store_def **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!def_args_ok(kind, DEF_LIST, tenant, 0))
        return -SLUICE_E_INVALID_PARAMETER;
    FAULT_POINT_AS(st, def_fault_names[kind][DEF_LIST]);
    return st->ops->def_list(st->impl, kind, tenant, after_name, limit, out, n);
}

int store_def_delete(struct store *st, enum store_def_kind kind, const char *tenant,
                     const char *name)
{
    if (!def_args_ok(kind, DEF_DELETE, tenant, 0))
        return -SLUICE_E_INVALID_PARAMETER;
    FAULT_POINT_AS(st, def_fault_names[kind][DEF_DELETE]);
    return st->ops->def_delete(st->impl, kind, tenant, name);
}

int store_bucket_take(struct store *st, const char *id, double interval_ms, double tolerance_ms,
                      int64_t n, struct store_bucket_lease *out)
{
    FAULT_POINT(st);
    return st->ops->bucket_take(st->impl, id, interval_ms, tolerance_ms, n, out);
}

int store_bucket_block(struct store *st, const char *id, int64_t until_ms)
{
    FAULT_POINT(st);
    return st->ops->bucket_block(st->impl, id, until_ms);
}

int store_sem_adjust(struct store *st, const char *id, int64_t cap, int64_t delta, int64_t *held)
{
    FAULT_POINT(st);
    return st->ops->sem_adjust(st->impl, id, cap, delta, held);
}

int store_delivery_claim(struct store *st, int64_t lease_ms, size_t max,
                         struct store_delivery **out, size_t *n)
{
    FAULT_POINT(st);
    return st->ops->delivery_claim(st->impl, lease_ms, max, out, n);
}

int store_delivery_record(struct store *st, const struct store_delivery *d,
                          const struct store_delivery_attempt *a, int state, int64_t next_at)
{
    FAULT_POINT(st);
    return st->ops->delivery_record(st->impl, d, a, state, next_at);
}

int store_delivery_list(struct store *st, const char *tenant, const char *job_id,
                        struct store_delivery **out, size_t *n)
{
    FAULT_POINT(st);
    return st->ops->delivery_list(st->impl, tenant, job_id, out, n);
}

int store_setting_ensure(struct store *st, const char *name, const char *value, char **out)
{
    FAULT_POINT(st);
    return st->ops->setting_ensure(st->impl, name, value, out);
}

int store_callback_prefs_get(struct store *st, const char *tenant, struct store_callback_prefs *out)
{
    memset(out, 0, sizeof *out);
    if (!tenant || !*tenant)
        return -SLUICE_E_INVALID_PARAMETER;
    FAULT_POINT(st);
    return st->ops->callback_prefs_get(st->impl, tenant, out);
}

int store_callback_format_set(struct store *st, const char *tenant, int format)
{
    if (!tenant || !*tenant || format < STORE_CB_FORMAT_DEFAULT || format > STORE_CB_FORMAT_MAX)
        return -SLUICE_E_INVALID_PARAMETER;
    FAULT_POINT(st);
    return st->ops->callback_format_set(st->impl, tenant, format);
}

int store_callback_key_rotate(struct store *st, const char *tenant, int64_t prev_until,
                              struct store_callback_prefs *out)
{
    struct store_callback_prefs ignored;
    if (!tenant || !*tenant)
        return -SLUICE_E_INVALID_PARAMETER;
    FAULT_POINT(st);
    return st->ops->callback_key_rotate(st->impl, tenant, prev_until, out ? out : &ignored);
}

/* ---- releasing ------------------------------------------------------------------- */

void store_job_release(struct store_job *j)
{
    if (!j)
        return;
    free(j->client_reference);
    j->client_reference = NULL;
    free(j->uses);
    j->uses = NULL;
    for (size_t i = 0; j->steps && i < j->nsteps; i++)
        free((char *)j->steps[i].step); /* heap when the store filled it (see store.h) */
    free(j->steps);
    j->steps = NULL;
    j->nsteps = 0;
}

void store_jobs_free(struct store_job *jobs, size_t n)
{
    for (size_t i = 0; jobs && i < n; i++)
        store_job_release(&jobs[i]);
    free(jobs);
}

void store_item_release(struct store_item *it)
{
    if (!it)
        return;
    free(it->ref);
    free(it->data);
    free(it->result);
    free(it->error_message);
    free(it->events);
    free(it->warnings);
    it->ref = it->data = it->result = it->error_message = it->events = it->warnings = NULL;
}

void store_items_free(struct store_item *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        store_item_release(&items[i]);
    free(items);
}

void store_doc_release(struct store_doc *d)
{
    if (!d)
        return;
    free(d->ref);
    free(d->data);
    d->ref = d->data = NULL;
}

void store_docs_free(struct store_doc *docs, size_t n)
{
    for (size_t i = 0; docs && i < n; i++)
        store_doc_release(&docs[i]);
    free(docs);
}

void store_claim_release(struct store_claim *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->items && i < c->n; i++) {
        free(c->items[i].ref);
        free(c->items[i].data);
    }
    free(c->items);
    c->items = NULL;
    c->n = 0;
}

void store_def_release(struct store_def *d)
{
    if (!d)
        return;
    /* Wiped whatever the kind: a secret's value, or a hook's signing secrets, should
     * not outlive their use in freed memory (explicit_bzero: a memset before free()
     * may be optimized away). */
    if (d->text)
        explicit_bzero(d->text, strlen(d->text));
    free(d->text);
    d->text = NULL;
}

void store_defs_free(struct store_def *defs, size_t n)
{
    for (size_t i = 0; defs && i < n; i++)
        store_def_release(&defs[i]);
    free(defs);
}

/* ---- names ----------------------------------------------------------------------- */

static const char *const job_names[] = {
    [JOB_RECEIVING] = "Receiving", /* internal: reads never return such a job */
    [JOB_NOT_STARTED] = "NotStarted", [JOB_RUNNING] = "Running", [JOB_CANCELING] = "Canceling",
    [JOB_SUCCEEDED] = "Succeeded",    [JOB_FAILED] = "Failed",   [JOB_CANCELED] = "Canceled",
};

static const char *const item_names[] = {
    [ITEM_PENDING] = "Pending", [ITEM_PROCESSING] = "Processing", [ITEM_SUCCEEDED] = "Succeeded",
    [ITEM_FAILED] = "Failed",   [ITEM_SKIPPED] = "Skipped",       [ITEM_CANCELED] = "Canceled",
};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

const char *store_job_status_name(int status)
{
    return status >= 0 && status < COUNT(job_names) ? job_names[status] : NULL;
}

const char *store_item_status_name(int status)
{
    return status >= 0 && status < COUNT(item_names) ? item_names[status] : NULL;
}

int store_job_status_parse(const char *s)
{
    /* Starts at 1: "Receiving" is not a state a client can ask for. */
    for (int i = JOB_NOT_STARTED; s && i < COUNT(job_names); i++)
        if (strcmp(s, job_names[i]) == 0)
            return i;
    return -1;
}

int store_item_status_parse(const char *s)
{
    for (int i = 0; s && i < COUNT(item_names); i++)
        if (strcmp(s, item_names[i]) == 0)
            return i;
    return -1;
}

void store_deliveries_free(struct store_delivery *d, size_t n)
{
    if (!d)
        return;
    for (size_t i = 0; i < n; i++) {
        free(d[i].url);
        free(d[i].log);
    }
    free(d);
}

const char *store_delivery_state_name(int state)
{
    switch (state) {
    case DELIVERY_PENDING:
        return "Pending";
    case DELIVERY_DELIVERED:
        return "Delivered";
    case DELIVERY_ABANDONED:
        return "Abandoned";
    default:
        return NULL;
    }
}
