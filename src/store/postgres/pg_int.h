/* pg_int.h - private to src/store/postgres/: what the files of the PostgreSQL backend
 * share. The backend is store.h on PostgreSQL (libpq), so that several `sluice serve`
 * nodes can share one database and all its work; store.c reaches it only through
 * store_postgres_ops (store_int.h), filled at the end of conn.c.
 *
 * One file per resource, with the same names as src/store/sqlite/: conn.c (the pool,
 * transactions and the one retry loop, error mapping, parameter and result helpers,
 * open/close/ping, the ops table), schema.c, keys.c, jobs.c, items.c, docs.c,
 * claims.c, defs.c, outbox.c, limits.c, and nodes.c (PostgreSQL only: node rows and
 * the LISTEN watcher). The order in which transactions take locks is set out once,
 * in claims.c (Locks); the schema's notes are in schema.c.
 *
 * A function taking a struct conn runs inside a transaction body (a pg_tx_fn given to
 * pg_run_tx) on the connection it is handed: a connection belongs to one transaction,
 * and so to one thread, at a time. */
#ifndef SLUICE_STORE_PG_INT_H
#define SLUICE_STORE_PG_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "store/pool.h"
#include "store/rules.h"
#include "store/store_int.h"
#include "util/buf.h"

#define E_SOFT (-10000) /* private: retry the whole transaction */
#define MAXP 24         /* parameters of one statement */

/* ---- connections (conn.c) -------------------------------------------------------- */

struct conn {
    PGconn *pg;
    int broken;              /* the session is gone: discard instead of pooling */
    int64_t now;             /* database clock (ms) of the current transaction */
    struct buf ev, res, tmp; /* scratch: events, result JSON, patched documents */
    size_t max_doc_bytes;    /* store_options.max_doc_bytes (0 there: the default) */
    struct buf arr[10];      /* scratch: array parameters */
    int64_t retention_ms;
    int64_t unpark_jid, unpark_idx; /* the parked items this connection's claims look at
                                       next start after this one (claims.c) */
};

struct pg {
    char *url;
    struct store_options opt;
    char node[STORE_ID_MAX]; /* this handle's node id (claims record it) */
    int registered;          /* its row is in nodes */
    struct pool pool;        /* connections (conn.c), reconnecting with a backoff */
    pthread_mutex_t mu;      /* guards the watcher's fields */
    /* the watcher: LISTEN on its own connection, calls watch_fn on notifications */
    pthread_t watch_thread;
    int watch_running, watch_stop;
    void (*watch_fn)(void *ctx);
    void *watch_ctx;
};

/* Statement parameters: text (NUL-terminated) or binary text (with a length). */
struct pg_params {
    int n;
    const char *v[MAXP];
    int len[MAXP];
    int fmt[MAXP];
    char num[MAXP][24];
};

typedef int (*pg_tx_fn)(struct conn *c, void *ctx);
typedef void (*pg_tx_undo_fn)(void *ctx);

/* Appends parameter s (NUL-terminated text; NULL is SQL NULL), borrowed until the
 * statement has run. */
void pg_param_str(struct pg_params *p, const char *s);
/* Appends n bytes of text at s, not NUL-terminated (binary format; the SQL must cast the
 * parameter, $N::text). */
void pg_param_strn(struct pg_params *p, const char *s, size_t n);
/* Appends v as a number (its text is kept in p). */
void pg_param_i64(struct pg_params *p, int64_t v);
/* Runs sql with parameters p (may be NULL): the number of rows returned or affected, or
 * an error (E_SOFT for a retryable one); [out] *out (may be NULL) the result when it has
 * rows (else NULL), which the caller clears with PQclear. */
int pg_exec(struct conn *c, const char *sql, const struct pg_params *p, PGresult **out);
/* Column col of row row as a number; 0 when NULL. */
int64_t pg_col_i64(const PGresult *r, int row, int col);
/* 1 when column col of row row is NULL. */
int pg_col_isnull(const PGresult *r, int row, int col);
/* Column col of row row as a new string (caller frees), NULL when NULL; [out] *len (may
 * be NULL) its length. */
char *pg_col_strdup(const PGresult *r, int row, int col, size_t *len);
/* Column col of row row into dst of cap bytes, cut to fit, "" when NULL. */
void pg_col_copy(const PGresult *r, int row, int col, char *dst, size_t cap);
/* One row of a result, as the column readers of rules.h see it. */
struct pg_row {
    const PGresult *res;
    int row;
};
/* The column readers of rules.h over a struct pg_row (the `row`). */
extern const struct rules_cols pg_cols;
/* Array parameters: pg_arr_begin resets b for an array of type's elements, pg_arr_strn
 * and pg_arr_str (PG_ELEM_TEXT; a NULL string is SQL NULL) or pg_arr_i64 (PG_ELEM_INT8)
 * append one, and pg_param_arr appends the array to p, borrowing b until the statement
 * has run. It is sent in binary format: the SQL casts it to its type ($N::text[],
 * $N::bigint[]), which must be the type given to pg_arr_begin. */
enum pg_elem { PG_ELEM_INT8 = 20, PG_ELEM_TEXT = 25 }; /* the element types' OIDs */
void pg_arr_begin(struct buf *b, enum pg_elem type);
void pg_arr_strn(struct buf *b, const char *s, size_t n);
void pg_arr_str(struct buf *b, const char *s);
void pg_arr_i64(struct buf *b, int64_t v);
void pg_param_arr(struct pg_params *p, struct buf *b);
/* A new session to url (caller PQfinishes it), or NULL (logged) when the server cannot
 * be reached. Outside any transaction. */
PGconn *pg_connect(const char *url);
/* Runs body(c, ctx) in one transaction of a pooled connection of s, retrying the whole
 * transaction on soft errors: the one retry loop of this backend. When body or the
 * COMMIT fails, undo(ctx) (may be NULL) drops what body put in its outputs. Returns
 * body's result or a negative error. Thread-safe; called outside any transaction. */
int pg_run_tx(struct pg *s, pg_tx_fn body, pg_tx_undo_fn undo, void *ctx);

/* ---- schema (schema.c) ----------------------------------------------------------- */

/* A pg_run_tx body (ctx unused): applies the migrations the database lacks, under the
 * migration lock. 0, or -SLUICE_E_INTERNAL for a schema newer than this sluice. */
int pg_migrate_body(struct conn *c, void *ctx);

/* ---- nodes (nodes.c) ------------------------------------------------------------- */

struct node_ctx {
    const char *node;
    int64_t timeout_ms;
    int released;
};

/* pg_run_tx bodies on a struct node_ctx: register (or refresh) the node's row, and leave
 * the nodes table when the node holds no claim. 0 or an error. */
int pg_node_register_body(struct conn *c, void *vctx);
int pg_node_leave_body(struct conn *c, void *vctx);
/* Stops s's watcher thread and waits for it, if it runs. Outside any transaction. */
void pg_watch_stop(struct pg *s);

/* ---- job rows (jobs.c) ----------------------------------------------------------- */

/* Job rows are struct rules_jobrow (rules.h), read from JOB_COLS. */

/* Runs a statement returning JOB_COLS: 1 and [out] r (released by the caller with
 * store_job_release(&r->j)) when it returned a row, 0 when not, or an error. */
int pg_job_query(struct conn *c, const char *sql, const struct pg_params *p,
                 struct rules_jobrow *r);
/* The next three are also steps of rules.c (pg_jobs), so conn is a struct conn passed
 * as void *. */
/* A visible job of tenant by public id: 1 found ([out] r), 0 not. lock: FOR UPDATE. */
int pg_job_load(void *conn, const char *tenant, const char *job_id, int lock,
                struct rules_jobrow *r);
/* pg_job_load for readers: also a staging retry, which store.c shows NotStarted. */
int pg_job_load_visible(void *conn, const char *tenant, const char *job_id, struct rules_jobrow *r);
/* The job row jid ([out] r): 1, or -SLUICE_E_INTERNAL when it is gone. */
int pg_job_load_jid(void *conn, int64_t jid, struct rules_jobrow *r);
/* After a relative update of the counts (row r as returned, lock held): finishes the
 * job when its last item is done (saving it and queueing its callback). 0 or an error. */
int pg_job_finish_if_done(struct conn *c, struct rules_jobrow *r);
/* Wakes the nodes' watchers at COMMIT (NOTIFY sluice_work). 0 or an error. */
int pg_notify_work(struct conn *c);

/* ---- jobs (jobs.c) --------------------------------------------------------------- */

/* This backend's steps of the job transactions (rules.h), store_postgres_ops.jobs. */
extern const struct rules_jobs_prims pg_jobs;

/* ---- documents (docs.c) ---------------------------------------------------------- */

/* Applies one document change, for store_doc_write and the doc ops of store_complete
 * (the rules_doc_apply_fn of this backend, conn a struct conn; now is the transaction's
 * time, c->now): 0 applied ([out] w; w->data may point into c->tmp until the next change),
 * -SLUICE_E_DOCUMENT_NOT_FOUND, -SLUICE_E_INVALID_DATA, -SLUICE_E_ITEM_TOO_LARGE,
 * -SLUICE_E_PRECONDITION_FAILED or a store error. */
int pg_doc_apply(void *conn, const char *tenant, const char *coll, const char *ref, size_t ref_len,
                 enum store_op op, const char *data, size_t data_len, int64_t if_match,
                 const char *job_id, int64_t item_index, int64_t now, struct rules_doc_result *w);

/* ---- the operations (store_postgres_ops) ----------------------------------------- */

/* Each is the store_ops member of its name without "pg_", with the contract of the
 * store_* wrapper in store.h; impl is the struct pg that pg_open made. */

/* conn.c */
int pg_open(const char *location, const struct store_options *opt, void **impl);
void pg_close(void *impl);
int pg_ping(void *impl);

/* nodes.c */
int pg_heartbeat(void *impl);
const char *pg_node_id(void *impl);
int pg_watch(void *impl, void (*fn)(void *ctx), void *ctx);

/* keys.c */
int pg_key_create(void *impl, const char *key_id, const char *tenant, const char *hash_hex);
int pg_key_lookup(void *impl, const char *hash_hex, char tenant[STORE_NAME_MAX]);
int pg_key_list(void *impl, struct store_key **out, size_t *n);
int pg_key_revoke(void *impl, const char *key_id);
int pg_tenant_set_weight(void *impl, const char *tenant, int weight);
int pg_tenant_load(void *impl, const char *tenant, int64_t *open_jobs, int64_t *pending);
int pg_setting_ensure(void *impl, const char *name, const char *value, char **out);
int pg_callback_prefs_get(void *impl, const char *tenant, struct store_callback_prefs *out);
int pg_callback_format_set(void *impl, const char *tenant, int format);
int pg_callback_key_rotate(void *impl, const char *tenant, int64_t prev_until,
                           struct store_callback_prefs *out);

/* items.c */
int pg_item_get(void *impl, const char *tenant, const char *job_id, int64_t index,
                struct store_item *out);
int pg_item_list(void *impl, const char *tenant, const char *job_id,
                 const struct store_item_filter *f, int64_t after_index, size_t limit,
                 int with_data, struct store_item **out, size_t *n);

/* docs.c */
int pg_doc_get(void *impl, const char *tenant, const char *collection, const char *ref,
               struct store_doc *out);
int pg_doc_write(void *impl, const char *tenant, const char *collection, const char *ref,
                 enum store_op op, const char *data, size_t data_len, int64_t if_match,
                 struct store_doc *out, int *created);
int pg_doc_list(void *impl, const char *tenant, const char *collection, const char *after_ref,
                size_t limit, struct store_doc **out, size_t *n);

/* claims.c */
int pg_claim(void *impl, const struct store_claim_opts *o, struct store_claim *out);
int pg_complete(void *impl, const struct store_claim *c, struct store_outcome *outs, size_t n,
                const struct store_step_count *steps, size_t nsteps);
int pg_release(void *impl, const struct store_claim *c);
int pg_expire_claims(void *impl);
int pg_stats(void *impl, struct store_stats *out);

/* defs.c */
int pg_def_put(void *impl, enum store_def_kind kind, const char *tenant, const char *name,
               const char *text, struct store_def *out);
int pg_def_get(void *impl, enum store_def_kind kind, const char *tenant, const char *name,
               int64_t version, struct store_def *out);
int pg_def_list(void *impl, enum store_def_kind kind, const char *tenant, const char *after_name,
                size_t limit, struct store_def **out, size_t *n);
int pg_def_delete(void *impl, enum store_def_kind kind, const char *tenant, const char *name);

/* outbox.c */
int pg_delivery_claim(void *impl, int64_t lease_ms, size_t max, struct store_delivery **out,
                      size_t *n);
int pg_delivery_record(void *impl, const struct store_delivery *d,
                       const struct store_delivery_attempt *a, int state, int64_t next_at);
int pg_delivery_list(void *impl, const char *tenant, const char *job_id,
                     struct store_delivery **out, size_t *n);

/* limits.c */
int pg_bucket_take(void *impl, const char *id, double interval_ms, double tolerance_ms, int64_t n,
                   struct store_bucket_lease *out);
int pg_bucket_block(void *impl, const char *id, int64_t until_ms);
int pg_sem_adjust(void *impl, const char *id, int64_t cap, int64_t delta, int64_t *held);

#endif
