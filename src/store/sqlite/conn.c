/* conn.c - the embedded storage backend (store.h on one SQLite file in WAL mode): its
 * handle, connections and transactions.
 *
 * store.c picks this backend for "sqlite:PATH" URLs and calls it through
 * store_sqlite_ops (at the end of this file). Every operation runs as one transaction
 * through sq_run_tx(), the single place where soft errors (SQLITE_BUSY/LOCKED) are
 * retried. The operations live in one file per resource (listed in sqlite_int.h); this
 * file holds what they share: the pool, the transaction loop, error mapping, the
 * statement cache and the bind/column helpers, open/close/ping.
 *
 * DESIGN
 * Connections: a small pool (store/pool.c: opened lazily, at most POOL_MAX). A
 * call checks one connection out for its whole transaction and returns it; each
 * connection prepares each statement once (SQLITE_PREPARE_PERSISTENT) on first use
 * and keeps scratch buffers for building JSON, so hot paths allocate little.
 * Writers use BEGIN IMMEDIATE (WAL: one writer at a time, readers never block).
 * Statements: each is a struct sq_sql defined (SQ_SQL) right above the function that
 * runs it. Its first use in the process gives it a slot, its index in every
 * connection's cache, so finding a prepared statement costs one array index.
 *
 * Durability: synchronous=FULL by default; every call that reports an outcome
 * (store_complete, store_job_commit, cancel, doc writes, ...) commits with fsync.
 * Two kinds of write commit without fsync (TX_WRITE_NOSYNC): store_job_add_items (a
 * Receiving job is worthless after a crash; gc_receiving removes it) and store_claim
 * (a lost claim only hands its items out again). Both are made durable by the next
 * synchronous commit, since fsync of the WAL covers every earlier frame: the FULL
 * commit of store_job_commit makes all the job's items durable at once.
 * Checkpoints: auto-checkpointing is replaced by a WAL hook that wakes one
 * checkpointer thread (PASSIVE, own connection, the store's synchronous setting, so
 * it fsyncs the WAL before copying frames), keeping checkpoint I/O out of callers.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/pool.h"
#include "store/sqlite/sqlite_int.h"
#include "util/errors.h"
#include "util/xmalloc.h"

#define POOL_MAX 32
#define TX_RETRIES 8
#define CKPT_PAGES 4000 /* WAL pages (16 MiB at 4 KiB) that wake the checkpointer */

/* ---- connections ----------------------------------------------------------------- */

struct sq {
    char *path;
    struct store_options opt;
    struct pool pool;
    /* checkpointer: a thread with its own connection, woken by the WAL hook (mu
     * guards ckpt_wanted and ckpt_stop) */
    pthread_mutex_t mu;
    pthread_t ckpt_thread;
    pthread_cond_t ckpt_cv;
    int ckpt_wanted, ckpt_stop, ckpt_running;
    /* Writers of this process queue in FIFO order (ticket locks) before BEGIN
     * IMMEDIATE. SQLite's busy handler polls with growing sleeps, so a thread that
     * writes back to back (a worker) would keep winning the lock against an
     * occasional writer (a cancel request); with tickets each waits its turn. Two
     * queues: a request a client waits on (a single-entity write, a submit's commit,
     * a cancel) goes before the background writes of workers and tasks (claims,
     * completions, staging, retention, deliveries), which take turns among
     * themselves; so a PUT under a running bulk job waits for at most the one
     * transaction in progress, not for a queue of them. */
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    int wbusy;                  /* a writer holds the lock */
    uint64_t wnext, wserving;   /* requests' queue */
    uint64_t bgnext, bgserving; /* background queue */
};

/* Maps an SQLite result code to a sluice error (E_SOFT for retryable ones). */
int sq_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return E_SOFT;
    case SQLITE_FULL: /* the disk (or the file system's quota) is full */
        return -SLUICE_E_STORE_FULL;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
    case SQLITE_NOLFS:
        return -SLUICE_E_STORE_IO;
    case SQLITE_CONSTRAINT:
        return -SLUICE_E_CONFLICT;
    default:
        return -SLUICE_E_INTERNAL;
    }
}

/* Slots are handed out under a mutex, not by a bare atomic increment: two threads
 * using a statement for the first time at once must not both take a slot (one would
 * be lost for good, and SQ_MAX_STMTS bounds them). */
static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;
static int slots_used;

/* The slot of sql, assigned on its first use in this process: >= 0, or
 * -SLUICE_E_INTERNAL when SQ_MAX_STMTS are taken. */
static int slot_assign(struct sq_sql *sql)
{
    pthread_mutex_lock(&slot_mu);
    int slot = atomic_load_explicit(&sql->slot, memory_order_relaxed);
    if (slot < 0) {
        if (slots_used < SQ_MAX_STMTS) {
            slot = slots_used++;
            atomic_store_explicit(&sql->slot, slot, memory_order_release);
        } else {
            slot = -SLUICE_E_INTERNAL;
        }
    }
    pthread_mutex_unlock(&slot_mu);
    return slot;
}

/* [out] *s: statement sql of conn c, prepared on first use, reset and unbound. */
int sq_q(struct sq_conn *c, struct sq_sql *sql, sqlite3_stmt **s)
{
    int id = atomic_load_explicit(&sql->slot, memory_order_acquire);
    if (id < 0 && (id = slot_assign(sql)) < 0)
        return id;
    if (!c->st[id]) {
        int rc =
            sqlite3_prepare_v3(c->db, sql->text, -1, SQLITE_PREPARE_PERSISTENT, &c->st[id], NULL);
        if (rc != SQLITE_OK)
            return sq_err(rc);
    } else {
        sqlite3_reset(c->st[id]);
        sqlite3_clear_bindings(c->st[id]);
    }
    *s = c->st[id];
    return 0;
}

/* 1 row, 0 done, negative error. */
int sq_step(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return sq_err(rc);
}

/* Runs a statement without parameters to completion. */
int sq_exec(struct sq_conn *c, struct sq_sql *sql)
{
    sqlite3_stmt *s;
    int rc = sq_q(c, sql, &s);
    if (rc < 0)
        return rc;
    while ((rc = sq_step(s)) == 1)
        ;
    sqlite3_reset(s);
    return rc;
}

int sq_exec_text(struct sq_conn *c, const char *sql)
{
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_err(rc);
}

void sq_bind_str(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

void sq_bind_strn(sqlite3_stmt *s, int i, const char *v, size_t n)
{
    if (v)
        sqlite3_bind_text64(s, i, v, n, SQLITE_STATIC, SQLITE_UTF8);
}

char *sq_col_dup(sqlite3_stmt *s, int i, size_t *len)
{
    const unsigned char *p = sqlite3_column_text(s, i);
    size_t n = (size_t)sqlite3_column_bytes(s, i);
    if (len)
        *len = p ? n : 0;
    return p ? xstrndup((const char *)p, n) : NULL;
}

void sq_col_copy(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
    const unsigned char *p = sqlite3_column_text(s, i);
    size_t n = p ? (size_t)sqlite3_column_bytes(s, i) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, p, n);
    dst[n] = '\0';
}

/* sq_cols: rules.c reads rows through these; row is the stepped sqlite3_stmt. */
static int64_t cols_i64(const void *row, int col)
{
    return sqlite3_column_int64((sqlite3_stmt *)row, col);
}

static void cols_copy(const void *row, int col, char *dst, size_t cap)
{
    sq_col_copy((sqlite3_stmt *)row, col, dst, cap);
}

static char *cols_dup(const void *row, int col, size_t *len)
{
    return sq_col_dup((sqlite3_stmt *)row, col, len);
}

const struct rules_cols sq_cols = {.i64 = cols_i64, .copy = cols_copy, .dup = cols_dup};

static void conn_free(void *vc)
{
    struct sq_conn *c = vc;
    if (!c)
        return;
    for (int i = 0; i < SQ_MAX_STMTS; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    buf_release(&c->ev);
    buf_release(&c->res);
    buf_release(&c->tmp);
    sq_zdata_free(c);
    free(c);
}

/* Runs after each commit on a pool connection: wakes the checkpointer when the WAL
 * has grown, so no caller pays for a checkpoint inside its own call. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct sq *s = arg;
    (void)db;
    (void)name;
    if (pages >= CKPT_PAGES) {
        pthread_mutex_lock(&s->mu);
        s->ckpt_wanted = 1;
        pthread_cond_signal(&s->ckpt_cv);
        pthread_mutex_unlock(&s->mu);
    }
    return SQLITE_OK;
}

SQ_SQL(sql_sync_off, "PRAGMA synchronous=OFF");
SQ_SQL(sql_sync_full, "PRAGMA synchronous=FULL");
SQ_SQL(sql_sync_normal, "PRAGMA synchronous=NORMAL");

static int conn_open(struct sq *s, struct sq_conn **out)
{
    int rc;
    struct sq_conn *c = xcalloc(1, sizeof *c);

    rc = sqlite3_open_v2(s->path, &c->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = -SLUICE_E_STORE_IO;
        goto out;
    }
    sqlite3_busy_timeout(c->db, s->opt.busy_timeout_ms);
    c->retention_ms = s->opt.retention_ms;
    c->max_doc_bytes = s->opt.max_doc_bytes ? s->opt.max_doc_bytes : STORE_DEFAULT_MAX_DOC_BYTES;
    rc = sq_exec_text(c, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=OFF; "
                         "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-32768;");
    if (rc < 0)
        goto out;
    rc = sq_exec(c, s->opt.synchronous_full ? &sql_sync_full : &sql_sync_normal);
    if (rc < 0)
        goto out;
    sqlite3_wal_hook(c->db, wal_hook, s); /* replaces auto-checkpointing */
    *out = c;
    c = NULL;
    rc = 0;
out:
    conn_free(c);
    return rc;
}

/* pool_open_fn: a new connection of the store (void *) s. */
static int pool_open(void *s, void **out)
{
    struct sq_conn *c;
    int rc = conn_open(s, &c);
    if (rc == 0)
        *out = c;
    return rc;
}

static int conn_get(struct sq *s, struct sq_conn **out)
{
    void *c = NULL;
    int rc = pool_get(&s->pool, &c);
    *out = c;
    return rc;
}

/* Resets every statement still stepping, so no read lock outlives the transaction. */
static void reset_all(struct sq_conn *c)
{
    sqlite3_stmt *s = NULL;
    while ((s = sqlite3_next_stmt(c->db, s)) != NULL)
        if (sqlite3_stmt_busy(s))
            sqlite3_reset(s);
}

SQ_SQL(sql_begin, "BEGIN");
SQ_SQL(sql_begin_imm, "BEGIN IMMEDIATE");
SQ_SQL(sql_commit, "COMMIT");
SQ_SQL(sql_rollback, "ROLLBACK");

/* Runs body(c, ctx) in one transaction (BEGIN IMMEDIATE when write), retrying the
 * whole transaction on soft errors with a short backoff: the one retry loop of this
 * backend. body must have no effect outside the transaction; when it succeeded but
 * the commit failed, undo(ctx) drops what it put in its outputs. Returns body's
 * result, or a negative error. */
static int run_tx_on(struct sq_conn *c, int write, tx_fn body, tx_undo_fn undo, void *ctx)
{
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        rc = sq_exec(c, write ? &sql_begin_imm : &sql_begin);
        if (rc == 0) {
            c->txn++;
            rc = body(c, ctx);
            reset_all(c);
            if (rc >= 0) {
                int crc = sq_exec(c, &sql_commit);
                if (crc == 0)
                    break;
                if (undo)
                    undo(ctx);
                rc = crc;
            }
            if (!sqlite3_get_autocommit(c->db))
                sq_exec(c, &sql_rollback);
        }
        if (rc != E_SOFT || attempt >= TX_RETRIES)
            break;
        struct timespec ts = {0, (long)(1000000L << (attempt < 5 ? attempt : 5))};
        nanosleep(&ts, NULL);
    }
    if (rc == E_SOFT)
        rc = -SLUICE_E_STORE_BUSY;
    return rc;
}

/* run_tx_on() on a pooled connection. TX_WRITE_NOSYNC commits without fsync: the
 * next synchronous commit or checkpoint makes it durable along with itself. */
int sq_run_tx(struct sq *s, enum tx_mode mode, tx_fn body, tx_undo_fn undo, void *ctx)
{
    struct sq_conn *c;
    int rc = conn_get(s, &c);
    if (rc < 0)
        return rc;
    if (mode == TX_WRITE_NOSYNC && (rc = sq_exec(c, &sql_sync_off)) < 0)
        goto out;
    if (mode == TX_READ) {
        rc = run_tx_on(c, 0, body, undo, ctx);
    } else {
        int bg = mode != TX_WRITE;
        pthread_mutex_lock(&s->wmu);
        uint64_t ticket = bg ? s->bgnext++ : s->wnext++;
        if (bg)
            while (s->wbusy || ticket != s->bgserving || s->wnext != s->wserving)
                pthread_cond_wait(&s->wcv, &s->wmu);
        else
            while (s->wbusy || ticket != s->wserving)
                pthread_cond_wait(&s->wcv, &s->wmu);
        s->wbusy = 1;
        pthread_mutex_unlock(&s->wmu);
        rc = run_tx_on(c, 1, body, undo, ctx);
        pthread_mutex_lock(&s->wmu);
        s->wbusy = 0;
        if (bg)
            s->bgserving++;
        else
            s->wserving++;
        pthread_cond_broadcast(&s->wcv);
        pthread_mutex_unlock(&s->wmu);
    }
    if (mode == TX_WRITE_NOSYNC) {
        int rc2 = sq_exec(c, s->opt.synchronous_full ? &sql_sync_full : &sql_sync_normal);
        if (rc2 < 0) { /* a connection left without fsync must serve no one else */
            pool_discard(&s->pool, c);
            return rc < 0 ? rc : (rc2 == E_SOFT ? -SLUICE_E_STORE_BUSY : rc2);
        }
    }
out:
    pool_put(&s->pool, c);
    return rc == E_SOFT ? -SLUICE_E_STORE_BUSY : rc;
}

/* The checkpointer thread: PASSIVE checkpoints (never blocking readers or the
 * writer) whenever the WAL hook asks, with the store's synchronous setting, so the
 * WAL is fsynced before its frames are copied (this covers TX_WRITE_NOSYNC frames). */
static void *ckpt_main(void *arg)
{
    struct sq *s = arg;
    struct sq_conn *c = NULL;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->ckpt_wanted && !s->ckpt_stop)
            pthread_cond_wait(&s->ckpt_cv, &s->mu);
        if (s->ckpt_stop)
            break;
        s->ckpt_wanted = 0;
        pthread_mutex_unlock(&s->mu);
        if (c || conn_open(s, &c) == 0) {
            sqlite3_wal_hook(c->db, NULL, NULL);
            sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    conn_free(c);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------- */

void sq_close(void *impl)
{
    struct sq *s = impl;
    if (!s)
        return;
    if (s->ckpt_running) {
        pthread_mutex_lock(&s->mu);
        s->ckpt_stop = 1;
        pthread_cond_signal(&s->ckpt_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->ckpt_thread, NULL);
    }
    pool_release(&s->pool); /* the last close checkpoints and removes the WAL */
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->wmu);
    pthread_cond_destroy(&s->wcv);
    pthread_cond_destroy(&s->ckpt_cv);
    free(s->path);
    free(s);
}

/* The database holds key hashes, webhook and callback secrets and every item's data:
 * a new one is made readable by its owner only, before SQLite opens it (SQLite gives
 * the -wal and -shm files the database file's mode). An existing file keeps the mode
 * its operator chose. */
static int create_private(const char *path)
{
    if (strcmp(path, ":memory:") == 0)
        return 0;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        return close(fd) == 0 ? 0 : -SLUICE_E_STORE_IO;
    return errno == EEXIST ? 0 : -SLUICE_E_STORE_IO;
}

int sq_open(const char *location, const struct store_options *opt, void **impl)
{
    int rc;
    struct sq_conn *c = NULL;
    if ((rc = create_private(location)) < 0)
        return rc;
    struct sq *s = xcalloc(1, sizeof *s);

    s->path = xstrdup(location);
    s->opt = *opt;
    if (s->opt.busy_timeout_ms <= 0)
        s->opt.busy_timeout_ms = 5000;
    pool_init(&s->pool, POOL_MAX, 0, 0, s, pool_open, conn_free);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->wmu, NULL);
    pthread_cond_init(&s->wcv, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    rc = conn_get(s, &c);
    if (rc < 0)
        goto out;
    rc = run_tx_on(c, 1, sq_migrate_body, NULL, NULL);
    pool_put(&s->pool, c);
    if (rc < 0)
        goto out;
    rc = -SLUICE_E_INTERNAL;
    if (pthread_create(&s->ckpt_thread, NULL, ckpt_main, s) != 0)
        goto out;
    s->ckpt_running = 1;
    *impl = s;
    s = NULL;
    rc = 0;
out:
    sq_close(s);
    return rc == E_SOFT ? -SLUICE_E_STORE_BUSY : rc;
}

SQ_SQL(sql_ping, "SELECT 1");

static int ping_body(struct sq_conn *c, void *ctx)
{
    (void)ctx;
    return sq_exec(c, &sql_ping);
}

int sq_ping(void *impl)
{
    return sq_run_tx(impl, TX_READ, ping_body, NULL, NULL);
}

/* ---- the ops table ---------------------------------------------------------------- */

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .shared = 0, /* heartbeat, node_id, watch: none (store.c: no-ops) */
    .open = sq_open,
    .close = sq_close,
    .ping = sq_ping,
    .key_create = sq_key_create,
    .key_lookup = sq_key_lookup,
    .key_list = sq_key_list,
    .key_revoke = sq_key_revoke,
    .tenant_set_weight = sq_tenant_set_weight,
    .jobs = &sq_jobs,
    .expire_claims = sq_expire_claims,
    .item_get = sq_item_get,
    .item_list = sq_item_list,
    .claim = sq_claim,
    .complete = sq_complete,
    .release = sq_release,
    .doc_get = sq_doc_get,
    .doc_write = sq_doc_write,
    .doc_list = sq_doc_list,
    .stats = sq_stats,
    .tenant_load = sq_tenant_load,
    .def_put = sq_def_put,
    .def_get = sq_def_get,
    .def_list = sq_def_list,
    .def_delete = sq_def_delete,
    .bucket_take = sq_bucket_take,
    .bucket_block = sq_bucket_block,
    .sem_adjust = sq_sem_adjust,
    .delivery_claim = sq_delivery_claim,
    .delivery_record = sq_delivery_record,
    .delivery_list = sq_delivery_list,
    .setting_ensure = sq_setting_ensure,
    .callback_prefs_get = sq_callback_prefs_get,
    .callback_format_set = sq_callback_format_set,
    .callback_key_rotate = sq_callback_key_rotate,
};
