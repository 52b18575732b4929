/* conn.c - the PostgreSQL backend's connections and transactions: the pool, the one
 * retry loop (pg_run_tx), the error mapping, the statement parameter and result helpers,
 * open/close/ping, and the ops table that store.c calls (store_postgres_ops, at the end).
 *
 * store.c picks this backend for "postgres://..." and "postgresql://..." URLs (the
 * URL is handed to libpq as is) and calls it through store_postgres_ops. Every
 * operation is one short transaction run by pg_run_tx(), the single place where soft
 * errors are retried: serialization failures (40001), deadlocks (40P01), a lost
 * connection before COMMIT, and "cannot connect now" while the server restarts.
 *
 * DESIGN
 * Sessions: a small pool of connections (store/pool.c: opened lazily, at most
 * POOL_MAX). A call checks one connection out for its transaction and returns it. No
 * state outlives a transaction: statements go through PQexecParams (nothing prepared
 * by name), the migration lock is pg_advisory_xact_lock, no temp tables; so the store
 * works behind a transaction-mode pooler. The only session state is LISTEN, on the
 * watcher's own connection (store_watch); behind such a pooler wake-ups fall back to
 * polling. A broken connection is dropped; reconnecting backs off (100 ms doubling to
 * 2 s) while the server is away, and callers get -SLUICE_E_STORE_BUSY meanwhile.
 *
 * Time: each transaction reads the database clock once (now(), the transaction's
 * start, in ms) in the same round trip as BEGIN, and every time it stores - leases,
 * created/updated/completed times, heartbeats - is that value. Nodes never compare
 * their own clocks with each other.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/pool.h"
#include "store/postgres/pg_int.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define POOL_MAX 16
#define TX_RETRIES 12

/* ---- parameters and results ------------------------------------------------------ */

void pg_param_str(struct pg_params *p, const char *s)
{
    p->v[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

/* n bytes of text, not NUL-terminated: sent in binary format, which for text is the
 * bytes themselves. The SQL must give the parameter a text type ($N::text). */
void pg_param_strn(struct pg_params *p, const char *s, size_t n)
{
    p->v[p->n] = s;
    p->len[p->n] = (int)n;
    p->fmt[p->n] = s ? 1 : 0;
    p->n++;
}

void pg_param_i64(struct pg_params *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", (long long)v);
    pg_param_str(p, p->num[p->n]);
}

static int is_sqlstate(const PGresult *r, const char *state)
{
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s && strncmp(s, state, strlen(state)) == 0;
}

/* Maps a failed result to a sluice error (E_SOFT for retryable ones). */
static int pgerr(struct conn *c, const PGresult *r)
{
    if (PQstatus(c->pg) != CONNECTION_OK) {
        c->broken = 1;
        return E_SOFT;
    }
    if (is_sqlstate(r, "40001") || is_sqlstate(r, "40P01") || is_sqlstate(r, "55P03") ||
        is_sqlstate(r, "53300") || is_sqlstate(r, "57P03"))
        return E_SOFT;
    if (is_sqlstate(r, "08") || is_sqlstate(r, "57P")) { /* connection gone / admin shutdown */
        c->broken = 1;
        return E_SOFT;
    }
    if (is_sqlstate(r, "23"))
        return -SLUICE_E_CONFLICT;
    if (is_sqlstate(r, "22021") || is_sqlstate(r, "22P05"))
        return -SLUICE_E_INVALID_DATA;
    if (is_sqlstate(r, "53100")) /* disk_full */
        return -SLUICE_E_STORE_FULL;
    if (is_sqlstate(r, "53") || is_sqlstate(r, "58"))
        return -SLUICE_E_STORE_IO;
    log_write(LOG_ERROR, "postgres statement failed", "error",
              r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg), NULL);
    return -SLUICE_E_INTERNAL;
}

/* Runs sql with parameters p (may be NULL). Returns the number of rows returned or
 * affected, or an error; [out] *out (may be NULL) the result when it has rows (else
 * NULL), which the caller clears with PQclear. */
int pg_exec(struct conn *c, const char *sql, const struct pg_params *p, PGresult **out)
{
    PGresult *r = PQexecParams(c->pg, sql, p ? p->n : 0, NULL, p ? p->v : NULL, p ? p->len : NULL,
                               p ? p->fmt : NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    int rc;
    if (out)
        *out = NULL;
    if (st == PGRES_TUPLES_OK) {
        rc = PQntuples(r);
    } else if (st == PGRES_COMMAND_OK) {
        const char *t = PQcmdTuples(r);
        rc = t && *t ? atoi(t) : 0;
    } else {
        rc = pgerr(c, r);
        PQclear(r);
        return rc;
    }
    if (out && rc > 0 && st == PGRES_TUPLES_OK)
        *out = r; /* no rows: no result to clear (callers may return at once) */
    else
        PQclear(r);
    return rc;
}

int64_t pg_col_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int pg_col_isnull(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col);
}

char *pg_col_strdup(const PGresult *r, int row, int col, size_t *len)
{
    if (PQgetisnull(r, row, col)) {
        if (len)
            *len = 0;
        return NULL;
    }
    size_t n = (size_t)PQgetlength(r, row, col);
    if (len)
        *len = n;
    return xstrndup(PQgetvalue(r, row, col), n);
}

void pg_col_copy(const PGresult *r, int row, int col, char *dst, size_t cap)
{
    size_t n = PQgetisnull(r, row, col) ? 0 : (size_t)PQgetlength(r, row, col);
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, PQgetvalue(r, row, col), n);
    dst[n] = '\0';
}

/* pg_cols: rules.c reads rows through these; row is a struct pg_row. */
static int64_t cols_i64(const void *row, int col)
{
    const struct pg_row *r = row;
    return pg_col_i64(r->res, r->row, col);
}

static void cols_copy(const void *row, int col, char *dst, size_t cap)
{
    const struct pg_row *r = row;
    pg_col_copy(r->res, r->row, col, dst, cap);
}

static char *cols_dup(const void *row, int col, size_t *len)
{
    const struct pg_row *r = row;
    return pg_col_strdup(r->res, r->row, col, len);
}

const struct rules_cols pg_cols = {.i64 = cols_i64, .copy = cols_copy, .dup = cols_dup};

/* ---- array parameters, in PostgreSQL's binary array format ---------------------- */

/* The header array_recv() reads: dimensions (1, or 0 for an empty array), a has-nulls
 * flag, the element type, then the one dimension's length and lower bound. The length
 * is counted as elements are appended; the elements follow, each as its byte count
 * (-1: NULL) and bytes. Binary because the text form ("{\"a\",...}") makes the server
 * unescape every element: array_in was a seventh of a backend's CPU on JSON items. */
#define ARR_HDR 20

static void put_be32(char *at, uint32_t v)
{
    at[0] = (char)(v >> 24);
    at[1] = (char)(v >> 16);
    at[2] = (char)(v >> 8);
    at[3] = (char)v;
}

static uint32_t get_be32(const char *at)
{
    const unsigned char *u = (const unsigned char *)at;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

void pg_arr_begin(struct buf *b, enum pg_elem type)
{
    char h[ARR_HDR];
    buf_reset(b);
    put_be32(h, 1);
    put_be32(h + 4, 0);
    put_be32(h + 8, (uint32_t)type);
    put_be32(h + 12, 0);
    put_be32(h + 16, 1);
    buf_append(b, h, sizeof h);
}

/* Counts one more element and appends its length word. */
static void arr_elem(struct buf *b, int32_t len)
{
    char w[4];
    put_be32(b->data + 12, get_be32(b->data + 12) + 1);
    if (len < 0)
        put_be32(b->data + 4, 1);
    put_be32(w, (uint32_t)len);
    buf_append(b, w, sizeof w);
}

void pg_arr_strn(struct buf *b, const char *s, size_t n)
{
    arr_elem(b, s ? (int32_t)n : -1);
    if (s)
        buf_append(b, s, n);
}

void pg_arr_str(struct buf *b, const char *s)
{
    pg_arr_strn(b, s, s ? strlen(s) : 0);
}

void pg_arr_i64(struct buf *b, int64_t v)
{
    char w[8];
    arr_elem(b, 8);
    put_be32(w, (uint32_t)((uint64_t)v >> 32));
    put_be32(w + 4, (uint32_t)v);
    buf_append(b, w, sizeof w);
}

void pg_param_arr(struct pg_params *p, struct buf *b)
{
    if (get_be32(b->data + 12) == 0) { /* empty: no dimension at all */
        put_be32(b->data, 0);
        b->len = 12;
    }
    p->v[p->n] = b->data;
    p->len[p->n] = (int)b->len;
    p->fmt[p->n] = 1;
    p->n++;
}

/* ---- connections ----------------------------------------------------------------- */

static void conn_free(void *vc)
{
    struct conn *c = vc;
    if (!c)
        return;
    if (c->pg)
        PQfinish(c->pg);
    buf_release(&c->ev);
    buf_release(&c->res);
    buf_release(&c->tmp);
    for (size_t i = 0; i < sizeof c->arr / sizeof c->arr[0]; i++)
        buf_release(&c->arr[i]);
    free(c);
}

static void quiet_notice(void *arg, const PGresult *r)
{
    (void)arg;
    (void)r;
}

/* A new session, or NULL (logged) when the server cannot be reached. */
PGconn *pg_connect(const char *url)
{
    /* Defaults the URL may override (later keywords win), then what we rely on. TCP
     * keepalives and a user timeout end a session whose server vanished behind a
     * partition in about 10 s, instead of the kernel's minutes. */
    const char *const keys[] = {"application_name",
                                "connect_timeout",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "dbname",
                                "client_encoding",
                                NULL};
    const char *const vals[] = {"sluice", "5", "5", "2", "3", "10000", url, "UTF8", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1); /* 1: dbname holds the URL */
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        char *msg = store_mask_password(url, pg ? PQerrorMessage(pg) : "out of memory");
        log_write(LOG_WARN, "cannot connect to postgres", "error", msg, NULL);
        free(msg);
        if (pg)
            PQfinish(pg);
        return NULL;
    }
    PQsetNoticeReceiver(pg, quiet_notice, NULL);
    return pg;
}

/* pool_open_fn: a new session of the store (void *) s; E_SOFT while the server is
 * unreachable (the pool then backs off: no connect attempt before its down_until). */
static int pool_open(void *vs, void **out)
{
    struct pg *s = vs;
    PGconn *pg = pg_connect(s->url);
    if (!pg)
        return E_SOFT;
    struct conn *c = xcalloc(1, sizeof *c);
    c->pg = pg;
    c->retention_ms = s->opt.retention_ms;
    c->max_doc_bytes = s->opt.max_doc_bytes ? s->opt.max_doc_bytes : STORE_DEFAULT_MAX_DOC_BYTES;
    *out = c;
    return 0;
}

/* Takes a pooled connection or opens one. */
static int conn_get(struct pg *s, struct conn **out)
{
    void *c = NULL;
    int rc = pool_get(&s->pool, &c);
    *out = c;
    return rc;
}

/* Returns c to the pool, or drops it when its session is broken. */
static void conn_put(struct pg *s, struct conn *c)
{
    if (c->broken)
        pool_discard(&s->pool, c);
    else
        pool_put(&s->pool, c);
}

/* BEGIN and the database clock in one round trip. A transaction of ours is never idle
 * between statements but for a paused or partitioned node (SIGSTOP, a VM freeze): the
 * server ends it after IDLE_TX_TIMEOUT, so its row locks do not stall the other nodes
 * (SET LOCAL: transaction-scoped, as a pooler requires). */
#define IDLE_TX_TIMEOUT "'5s'"
static int tx_begin(struct conn *c)
{
    PGresult *r =
        PQexec(c->pg, "BEGIN; SET LOCAL idle_in_transaction_session_timeout = " IDLE_TX_TIMEOUT
                      "; SELECT floor(extract(epoch FROM now()) * 1000)"
                      "::bigint");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        int rc = pgerr(c, r);
        PQclear(r);
        return rc;
    }
    c->now = pg_col_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static void tx_rollback(struct conn *c)
{
    if (c->broken || PQstatus(c->pg) != CONNECTION_OK) {
        c->broken = 1;
        return;
    }
    if (PQtransactionStatus(c->pg) == PQTRANS_IDLE)
        return;
    PGresult *r = PQexec(c->pg, "ROLLBACK");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        c->broken = 1;
    PQclear(r);
}

/* Runs body(c, ctx) in one transaction, retrying the whole transaction on soft
 * errors with a growing backoff: the one retry loop of this backend. body has no
 * effect outside the transaction; when it or the COMMIT fails, undo(ctx) drops what
 * it put in its outputs (outputs start zeroed, so undo is safe at any point). A
 * connection lost during COMMIT leaves the outcome unknown: -SLUICE_E_STORE_IO, not
 * retried. Returns body's result, or a negative error. */
int pg_run_tx(struct pg *s, pg_tx_fn body, pg_tx_undo_fn undo, void *ctx)
{
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        struct conn *c = NULL;
        rc = conn_get(s, &c);
        if (rc == 0) {
            rc = tx_begin(c);
            if (rc == 0) {
                rc = body(c, ctx);
                if (rc >= 0) {
                    PGresult *r = PQexec(c->pg, "COMMIT");
                    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
                        PQclear(r);
                        conn_put(s, c);
                        return rc;
                    }
                    int crc = pgerr(c, r);
                    PQclear(r);
                    rc = c->broken ? -SLUICE_E_STORE_IO : crc;
                }
            }
            if (undo)
                undo(ctx);
            tx_rollback(c);
            conn_put(s, c);
        }
        if (rc != E_SOFT || attempt >= TX_RETRIES)
            break;
        long ms = 2L << (attempt < 8 ? attempt : 8); /* 2 ms .. 512 ms: ~2.5 s in all */
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return rc == E_SOFT ? -SLUICE_E_STORE_BUSY : rc;
}

/* ---- lifecycle ------------------------------------------------------------------- */

void pg_close(void *impl)
{
    struct pg *s = impl;
    if (!s)
        return;
    pg_watch_stop(s);
    if (s->node[0] && s->registered) {
        struct node_ctx x = {.node = s->node};
        pg_run_tx(s, pg_node_leave_body, NULL, &x); /* best effort: else swept after a day */
    }
    pool_release(&s->pool);
    pthread_mutex_destroy(&s->mu);
    free(s->url);
    free(s);
}

int pg_open(const char *location, const struct store_options *opt, void **impl)
{
    int rc;
    struct pg *s = xcalloc(1, sizeof *s);
    s->url = xstrdup(location);
    s->opt = *opt;
    if (s->opt.node_timeout_ms <= 0)
        s->opt.node_timeout_ms = 15000;
    pool_init(&s->pool, POOL_MAX, 100, 2000, s, pool_open, conn_free);
    pthread_mutex_init(&s->mu, NULL);
    ids_random("node_", 16, s->node);
    /* A server restarting (or not up yet) gets a few seconds before open fails. */
    rc = -SLUICE_E_STORE_IO;
    for (int i = 0; i < 4; i++) {
        PGconn *probe = pg_connect(s->url);
        if (probe) {
            PQfinish(probe);
            rc = 0;
            break;
        }
        if (i < 3)
            sleep(1);
    }
    if (rc < 0 || (rc = pg_run_tx(s, pg_migrate_body, NULL, NULL)) < 0)
        goto out;
    struct node_ctx nx = {.node = s->node};
    if ((rc = pg_run_tx(s, pg_node_register_body, NULL, &nx)) < 0)
        goto out;
    s->registered = 1;
    *impl = s;
    s = NULL;
    rc = 0;
out:
    pg_close(s);
    return rc == -SLUICE_E_STORE_BUSY ? -SLUICE_E_STORE_IO : rc;
}

static int ping_body(struct conn *c, void *ctx)
{
    (void)ctx;
    int rc = pg_exec(c, "SELECT 1", NULL, NULL);
    return rc < 0 ? rc : 0;
}

int pg_ping(void *impl)
{
    return pg_run_tx(impl, ping_body, NULL, NULL);
}

const struct store_ops store_postgres_ops = {
    .name = "postgres",
    .shared = 1,
    .open = pg_open,
    .close = pg_close,
    .ping = pg_ping,
    .heartbeat = pg_heartbeat,
    .node_id = pg_node_id,
    .watch = pg_watch,
    .key_create = pg_key_create,
    .key_lookup = pg_key_lookup,
    .key_list = pg_key_list,
    .key_revoke = pg_key_revoke,
    .tenant_set_weight = pg_tenant_set_weight,
    .jobs = &pg_jobs,
    .expire_claims = pg_expire_claims,
    .item_get = pg_item_get,
    .item_list = pg_item_list,
    .claim = pg_claim,
    .complete = pg_complete,
    .release = pg_release,
    .doc_get = pg_doc_get,
    .doc_write = pg_doc_write,
    .doc_list = pg_doc_list,
    .stats = pg_stats,
    .tenant_load = pg_tenant_load,
    .def_put = pg_def_put,
    .def_get = pg_def_get,
    .def_list = pg_def_list,
    .def_delete = pg_def_delete,
    .bucket_take = pg_bucket_take,
    .bucket_block = pg_bucket_block,
    .sem_adjust = pg_sem_adjust,
    .delivery_claim = pg_delivery_claim,
    .delivery_record = pg_delivery_record,
    .delivery_list = pg_delivery_list,
    .setting_ensure = pg_setting_ensure,
    .callback_prefs_get = pg_callback_prefs_get,
    .callback_format_set = pg_callback_format_set,
    .callback_key_rotate = pg_callback_key_rotate,
};
