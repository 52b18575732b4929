/* sqlite_int.h - private to src/store/sqlite/: what the files of the embedded backend
 * share.
 *
 * The backend is one file per resource (the same file names as src/store/postgres/):
 *   conn.c    the handle, the connection pool, the one transaction loop (sq_run_tx),
 *             error mapping, the statement cache and the bind/column helpers,
 *             open/close/ping, and the ops table store_sqlite_ops
 *   schema.c  the migrations and the body that applies them
 *   keys.c    API keys, tenant weights, settings, tenant load
 *   jobs.c    submitting, retries, retention, reading and controlling jobs, job rows
 *   items.c   reading items
 *   docs.c    documents (sq_doc_apply: the one path that changes one)
 *   claims.c  claims, completions, releases, expiry, stats (FAIRNESS)
 *   defs.c    workflows, hooks, limits, secrets
 *   outbox.c  completion callback deliveries
 *   limits.c  shared rate buckets and concurrency semaphores
 * A function used by several files has the prefix sq_ and is declared here; the rest
 * stay static in their file. The operations (sq_open ... sq_delivery_list, the
 * store_ops of store.h) may be called from any thread; every function taking a
 * struct sq_conn runs inside a transaction body, on the connection sq_run_tx checked
 * out for it, which serves one thread at a time. */
#ifndef SLUICE_STORE_SQLITE_INT_H
#define SLUICE_STORE_SQLITE_INT_H

#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "store/rules.h"
#include "store/store_int.h"
#include "util/buf.h"

#define E_SOFT (-10000) /* private: busy/locked, retry the whole transaction */
#define KEY(jid, idx) ((int64_t)(jid)*4294967296LL + (int64_t)(idx))

/* ---- statements ------------------------------------------------------------------ */

/* Statement slots a process may assign (about a hundred statements today). Past it sq_q() fails
 * with -SLUICE_E_INTERNAL instead of writing past the cache; the contract suite runs
 * every statement, so it fails first. */
#define SQ_MAX_STMTS 256

/* One SQL statement, defined (SQ_SQL) right above the function that runs it. slot is
 * its index in every connection's statement cache: -1 until its first use anywhere
 * assigns it, once per process. */
struct sq_sql {
    const char *text;
    atomic_int slot;
};
#define SQ_SQL(name, text) static struct sq_sql name = {text, -1}

/* ---- connections ----------------------------------------------------------------- */

/* A pooled connection (conn.c), owned by one transaction at a time. */
struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *st[SQ_MAX_STMTS]; /* prepared statements by struct sq_sql slot */
    struct buf ev, res, tmp;        /* scratch: events, result JSON, patched documents */
    size_t max_doc_bytes;           /* store_options.max_doc_bytes (0 there: the default) */
    int64_t retention_ms;           /* store_options.retention_ms, for store_job.expires_at */
    int64_t unpark_after;           /* the parked items this connection's claims look at
                                       next start after this key (PARKING in claims.c) */
    struct sq_zdata *zd;            /* LZ4 states and dictionaries (zdata.c) */
    const struct sq_zpre *zpre;     /* documents' data compressed before this write
                                       transaction (sq_zdoc_prepack), or NULL */
    struct sq_zdefer *zdefer;       /* a claim's items' data to expand after its
                                       transaction (sq_zdata_col_claim), or NULL */
    uint64_t txn;                   /* transactions begun on it (zdata.c checks by it) */
};

/* The store handle (conn.c), the backend's `impl`. */
struct sq;

enum tx_mode {
    TX_READ = 0,
    TX_WRITE = 1,        /* a write a client request waits on */
    TX_WRITE_NOSYNC = 2, /* a background write whose loss in a crash is harmless; see
                            Durability in conn.c */
    TX_WRITE_BG = 3,     /* a background write (workers, tasks): behind TX_WRITE */
};

typedef int (*tx_fn)(struct sq_conn *c, void *ctx);
typedef void (*tx_undo_fn)(void *ctx);

/* Runs body(c, ctx) in one transaction on a pooled connection of s (any thread),
 * retrying the whole transaction on soft errors: the one retry loop of this backend.
 * body must have no effect outside the transaction; when it succeeded but the commit
 * failed, undo(ctx) (may be NULL) drops what it put in its outputs. Returns body's
 * result, or a negative error (-SLUICE_E_STORE_BUSY when the retries ran out). */
int sq_run_tx(struct sq *s, enum tx_mode mode, tx_fn body, tx_undo_fn undo, void *ctx);

/* Maps an SQLite result code to a sluice error (E_SOFT for retryable ones). */
int sq_err(int rc);
/* [out] *s: the statement sql of conn c, prepared on first use, reset and unbound.
 * 0, or a negative error. */
int sq_q(struct sq_conn *c, struct sq_sql *sql, sqlite3_stmt **s);
/* Steps s: 1 row, 0 done, negative error. */
int sq_step(sqlite3_stmt *s);
/* Runs a statement without parameters to completion: 0 or a negative error. */
int sq_exec(struct sq_conn *c, struct sq_sql *sql);
/* Runs SQL text of one or more statements without parameters, not cached (pragmas,
 * migrations): 0 or a negative error. */
int sq_exec_text(struct sq_conn *c, const char *sql);
/* Binds text v (NUL-terminated / n bytes) to parameter i, unless v is NULL (which
 * leaves it NULL); v must live until the statement is reset. */
void sq_bind_str(sqlite3_stmt *s, int i, const char *v);
void sq_bind_strn(sqlite3_stmt *s, int i, const char *v, size_t n);
/* Column i as a heap string (caller frees with free()), NULL for NULL; [out] *len its
 * length when len is not NULL. */
char *sq_col_dup(sqlite3_stmt *s, int i, size_t *len);
/* Column i copied into dst of cap bytes, truncated, always NUL-terminated. */
void sq_col_copy(sqlite3_stmt *s, int i, char *dst, size_t cap);
/* The column readers of rules.h over a stepped sqlite3_stmt (the `row`). */
extern const struct rules_cols sq_cols;

/* ---- zdata.c: items' data, compressed against their job's dictionary ------------- */

/* A job's compressing dictionary (opaque; sq_zdict_free). */
struct sq_zdict;
/* The dictionary that compresses the items of an upload of job jid: the job's, or -
 * when it has none and items holds enough - a new one made of their first data and
 * kept with them. [out] *d (NULL: store the data as text). 0 or a store error. */
int sq_zdata_dict(struct sq_conn *c, int64_t jid, const struct store_new_item *items, size_t n,
                  struct sq_zdict **d);
void sq_zdict_free(struct sq_zdict *d);
/* An upload's data compressed with a job's dictionary (sq_zdata_pack). */
struct sq_zpack {
    struct buf out;    /* the frames, back to back */
    size_t *off, *len; /* per item: its frame in out; off SIZE_MAX: stored as text */
};
/* Compresses the data of items[0..n) with d (NULL: none, all stay text) into [out] p
 * (two threads for a large upload), for sq_zpack_bind; release with sq_zpack_release.
 * 0 (always). */
int sq_zdata_pack(struct sq_conn *c, const struct sq_zdict *d, const struct store_new_item *items,
                  size_t n, struct sq_zpack *p);
/* Binds item i's data (it = items[i]) to parameter col of s: its frame, or its text. */
void sq_zpack_bind(const struct sq_zpack *p, sqlite3_stmt *s, int col, size_t i,
                   const struct store_new_item *it);
void sq_zpack_release(struct sq_zpack *p);
/* Binds data (len bytes; NULL: SQL NULL) to parameter i of s: compressed with d as a
 * BLOB when that makes it smaller, else as text. Valid until s is stepped (it uses c's
 * buffer). */
void sq_zdata_bind(struct sq_conn *c, sqlite3_stmt *s, int i, const struct sq_zdict *d,
                   const char *data, size_t len);
/* Column i of s, an item's data in job jid's key range, as a heap string (NULL for
 * NULL) in [out] *out, its length in *len (may be NULL): 0, or -SLUICE_E_STORE_IO when
 * a compressed value cannot be expanded. */
int sq_zdata_col(struct sq_conn *c, sqlite3_stmt *s, int i, int64_t jid, char **out, size_t *len);
/* A claim's items' data, expanded after its transaction: expanding was half of what
 * a claim of an http workflow's items held the one-writer lock for. While c->zdefer is
 * set, sq_zdata_col_claim keeps a compressed value of one job as it is (the item's
 * data then holds the stored bytes) and notes the item's index and the job's
 * dictionary; sq_zdefer_expand, after the commit, expands those items' data in place. */
struct sq_zdefer;
struct sq_zdefer *sq_zdefer_new(void);
/* Forgets what was noted: a transaction (re)starts. */
void sq_zdefer_reset(struct sq_zdefer *d);
void sq_zdefer_free(struct sq_zdefer *d);
/* sq_zdata_col for item `index` of a claim (see above). */
int sq_zdata_col_claim(struct sq_conn *c, sqlite3_stmt *s, int i, int64_t jid, int64_t index,
                       char **out, size_t *len);
/* The claim handed out is of job jid (called before rules_claim_fill; no-op without
 * c->zdefer): only that job's noted items are expanded. */
void sq_zdefer_claimed(struct sq_conn *c, int64_t jid);
/* Expands the noted items among items[0..n). 0 or -SLUICE_E_STORE_IO. */
int sq_zdefer_expand(struct sq_zdefer *d, struct store_claim_item *items, size_t n);
/* Binds a document's data like sq_zdata_bind, against the dictionary of collection coll
 * of tenant - made, when it has none, from the dictionary of job job_id (NULL or "":
 * none). 0 or a store error. */
int sq_zdoc_bind(struct sq_conn *c, sqlite3_stmt *s, int i, const char *tenant, const char *coll,
                 const char *job_id, const char *data, size_t len);
/* Documents' data compressed ahead of a write transaction: compressing a completion's
 * upserts took a sixth of what the two workers hold the one-writer lock for. Each
 * value is compressed against its collection's dictionary as a read transaction saw
 * it; sq_zdoc_bind, on a connection whose zpre is set, binds the value from here when
 * the data (by address and length) and the collection match and the dictionary is
 * still that one, and compresses it itself otherwise. */
struct sq_zpre;
struct sq_zpre_in {
    const char *coll, *data; /* data: the very pointer sq_zdoc_bind will be given */
    size_t len;
};
/* Compresses in[0..n) for documents of tenant into [out] *p (NULL when there was
 * nothing to compress: no collection with a dictionary, or the read failed; the write
 * transaction then compresses as before). Never fails. */
void sq_zdoc_prepack(struct sq *s, const char *tenant, const struct sq_zpre_in *in, size_t n,
                     struct sq_zpre **p);
void sq_zpre_free(struct sq_zpre *p);
/* Column i of s, a document's data in collection coll of tenant, like sq_zdata_col. */
int sq_zdoc_col(struct sq_conn *c, sqlite3_stmt *s, int i, const char *tenant, const char *coll,
                char **out, size_t *len);
/* Frees c's contexts (conn.c, when a connection closes). */
void sq_zdata_free(struct sq_conn *c);

/* ---- schema.c -------------------------------------------------------------------- */

/* The transaction body that brings the database to the newest schema (ctx unused):
 * 0, or -SLUICE_E_INTERNAL when it was written by a newer sluice, or a store error. */
int sq_migrate_body(struct sq_conn *c, void *ctx);

/* ---- jobs.c: job rows -------------------------------------------------------------- */

/* Job rows are struct rules_jobrow (rules.h), read from JOB_COLS. */

/* Runs sql with ?1, ?2, ... bound to args[0..n): the rows it changed, or a negative
 * error. */
int64_t sq_run_i64s(struct sq_conn *c, struct sq_sql *sql, const int64_t *args, int n);
/* Runs sql like sq_run_i64s and appends each row's first column to *out (heap, grown
 * as needed; *nout values so far): 0 or a negative error. */
int sq_list_i64s(struct sq_conn *c, struct sq_sql *sql, const int64_t *args, int n, int64_t **out,
                 size_t *nout);

/* Loads a visible job of tenant by public id into r (release r->j with
 * store_job_release): 1 found, 0 not, or a negative error. */
int sq_job_load(struct sq_conn *c, const char *tenant, const char *job_id, struct rules_jobrow *r);
/* The next three are also steps of rules.c (sq_jobs), so conn is a struct sq_conn
 * passed as void *. */
/* sq_job_load for readers: also finds a staging retry. */
int sq_job_load_visible(void *conn, const char *tenant, const char *job_id, struct rules_jobrow *r);
/* Loads job jid, which the caller knows exists: 1, or a negative error. */
int sq_job_load_jid(void *conn, int64_t jid, struct rules_jobrow *r);
/* Writes the job row back (and queues the callback of a terminal job): 0 or an error. */
int sq_job_save(void *conn, const struct rules_jobrow *r, int64_t now);

/* ---- jobs.c: the job operations ---------------------------------------------------- */

/* This backend's steps of the job transactions (rules.h), store_sqlite_ops.jobs. */
extern const struct rules_jobs_prims sq_jobs;

/* ---- docs.c ---------------------------------------------------------------------- */

/* Applies one document change (store_doc_write and the doc ops of store_complete): the
 * rules_doc_apply_fn of this backend, conn a struct sq_conn. 0 applied ([out] w),
 * -SLUICE_E_DOCUMENT_NOT_FOUND, -SLUICE_E_INVALID_DATA, -SLUICE_E_PRECONDITION_FAILED,
 * -SLUICE_E_ITEM_TOO_LARGE or a store error. */
int sq_doc_apply(void *conn, const char *tenant, const char *coll, const char *ref, size_t ref_len,
                 enum store_op op, const char *data, size_t data_len, int64_t if_match,
                 const char *job_id, int64_t item_index, int64_t now, struct rules_doc_result *w);

/* ---- the operations of store_sqlite_ops (contracts: store.h, store_ops) ---------- */

/* conn.c */
int sq_open(const char *location, const struct store_options *opt, void **impl);
void sq_close(void *impl);
int sq_ping(void *impl);

/* keys.c */
int sq_key_create(void *impl, const char *key_id, const char *tenant, const char *hash_hex);
int sq_key_lookup(void *impl, const char *hash_hex, char tenant[STORE_NAME_MAX]);
int sq_key_list(void *impl, struct store_key **out, size_t *n);
int sq_key_revoke(void *impl, const char *key_id);
int sq_tenant_set_weight(void *impl, const char *tenant, int weight);
int sq_tenant_load(void *impl, const char *tenant, int64_t *open_jobs, int64_t *pending);
int sq_setting_ensure(void *impl, const char *name, const char *value, char **out);
int sq_callback_prefs_get(void *impl, const char *tenant, struct store_callback_prefs *out);
int sq_callback_format_set(void *impl, const char *tenant, int format);
int sq_callback_key_rotate(void *impl, const char *tenant, int64_t prev_until,
                           struct store_callback_prefs *out);

/* items.c */
int sq_item_get(void *impl, const char *tenant, const char *job_id, int64_t index,
                struct store_item *out);
int sq_item_list(void *impl, const char *tenant, const char *job_id,
                 const struct store_item_filter *f, int64_t after_index, size_t limit,
                 int with_data, struct store_item **out, size_t *n);

/* docs.c */
int sq_doc_get(void *impl, const char *tenant, const char *collection, const char *ref,
               struct store_doc *out);
int sq_doc_write(void *impl, const char *tenant, const char *collection, const char *ref,
                 enum store_op op, const char *data, size_t data_len, int64_t if_match,
                 struct store_doc *out, int *created);
int sq_doc_list(void *impl, const char *tenant, const char *collection, const char *after_ref,
                size_t limit, struct store_doc **out, size_t *n);

/* claims.c */
int sq_expire_claims(void *impl);
int sq_claim(void *impl, const struct store_claim_opts *o, struct store_claim *out);
int sq_complete(void *impl, const struct store_claim *c, struct store_outcome *outs, size_t n,
                const struct store_step_count *steps, size_t nsteps);
int sq_release(void *impl, const struct store_claim *c);
int sq_stats(void *impl, struct store_stats *out);

/* defs.c */
int sq_def_put(void *impl, enum store_def_kind kind, const char *tenant, const char *name,
               const char *text, struct store_def *out);
int sq_def_get(void *impl, enum store_def_kind kind, const char *tenant, const char *name,
               int64_t version, struct store_def *out);
int sq_def_list(void *impl, enum store_def_kind kind, const char *tenant, const char *after_name,
                size_t limit, struct store_def **out, size_t *n);
int sq_def_delete(void *impl, enum store_def_kind kind, const char *tenant, const char *name);

/* limits.c */
int sq_bucket_take(void *impl, const char *id, double interval_ms, double tolerance_ms, int64_t n,
                   struct store_bucket_lease *out);
int sq_bucket_block(void *impl, const char *id, int64_t until_ms);
int sq_sem_adjust(void *impl, const char *id, int64_t cap, int64_t delta, int64_t *held);

/* outbox.c */
int sq_delivery_claim(void *impl, int64_t lease_ms, size_t max, struct store_delivery **out,
                      size_t *n);
int sq_delivery_record(void *impl, const struct store_delivery *d,
                       const struct store_delivery_attempt *a, int state, int64_t next_at);
int sq_delivery_list(void *impl, const char *tenant, const char *job_id,
                     struct store_delivery **out, size_t *n);

#endif
