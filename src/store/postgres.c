/* postgres.c - the shared storage backend: store.h on PostgreSQL (libpq), so that
 * several `sluice serve` nodes can share one database and all its work.
 *
 * store.c picks this backend for "postgres://..." and "postgresql://..." URLs (the
 * URL is handed to libpq as is) and calls it through store_postgres_ops. Every
 * operation is one short transaction run by run_tx(), the single place where soft
 * errors are retried: serialization failures (40001), deadlocks (40P01), a lost
 * connection before COMMIT, and "cannot connect now" while the server restarts.
 *
 * DESIGN
 * Sessions: a small pool of connections (mutex + free list, opened lazily, at most
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
 *
 * Schema (migrations[] below, recorded in schema_version; applied under
 * pg_advisory_xact_lock so nodes starting together do not race):
 *   jobs      as in sqlite.c: counts in the row, `next_idx` the claim cursor,
 *             `cancel_at` the cancel point, status 0 for Receiving (updated_at >= 0)
 *             and for jobs being removed by retention (updated_at = -1).
 *   runnable  one row per job with unclaimed items (NotStarted or Running, cursor <
 *             total): the small table claims lock with FOR UPDATE SKIP LOCKED, so
 *             claimers on several nodes take different jobs at once and never wait on
 *             the hot job rows that completions update. It holds the fairness keys
 *             (tenant, priority, last_claim). Inserted at commit/retry, deleted when
 *             the cursor reaches the end or the job is canceled.
 *   items     (jid, idx) primary key; Processing/Canceled derived from the job's
 *             cursor and cancel point as in sqlite.c; a partial index on failed items.
 *   claims    one leased range [lo, hi) of one job, with a random token fencing late
 *             writers and the node that holds it.
 *   nodes     node id -> last heartbeat (database clock). store_heartbeat refreshes
 *             the caller's row and ends the leases of nodes silent for longer than
 *             store_options.node_timeout_ms (token cleared, attempt counted at the
 *             takeover), whatever their lease length.
 *   buckets, sems: processing limits shared by the nodes (store_bucket_take,
 *             store_sem_adjust); concurrency units are held per node and go with
 *             the node when it falls silent.
 *   docs, job_steps, idem_keys, workflows, hooks, limits, tenants, outbox, settings,
 *   api_keys: as in sqlite.c. Text keys that are ordered or paged on use COLLATE "C",
 *   so orders match SQLite's byte order whatever the database's locale.
 *
 * Locks (always taken in this order, so transactions do not deadlock; a deadlock that
 * still happens - two batches upserting the same documents in opposite orders - is
 * a soft error and retried): runnable row -> claim row -> item rows -> documents ->
 * job row -> tenant row. Claims lock a runnable row (SKIP LOCKED: a job being claimed
 * elsewhere is passed over for the next; only when every candidate is busy does a
 * claim wait for one), read the job row without a lock (only claims and cancels,
 * both holding the runnable row, move the cursor or the status away from runnable),
 * and change the counts with relative updates at the end. Completions lock the claim
 * row FOR UPDATE (a takeover in flight makes them wait, then the token no longer
 * matches: LEASE_LOST, nothing written), lock and update the item rows in one
 * statement (unnest of arrays), then update the job counts relatively, so the job row
 * is locked only from that update to COMMIT. The job finishes in the transaction that
 * sees pending = processing = 0 under that lock, so exactly one transaction finishes
 * it and queues its callback.
 *
 * Accept path: store_job_add_items inserts its whole batch with one INSERT ... SELECT
 * FROM unnest() of array parameters; store_job_commit makes the job visible, inserts
 * its runnable row and sends one NOTIFY (delivered at COMMIT, so a woken node sees
 * the job).
 *
 * Retention: as in sqlite.c (hide the job, then delete its items a bounded number of
 * rows per transaction, then the row), with SKIP LOCKED so nodes sweeping at the
 * same time take different jobs.
 */
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store_int.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define POOL_MAX 16
#define TX_RETRIES 12
#define E_SOFT (-10000) /* private: retry the whole transaction */
#define WIN_MS 5000
#define CLAIM_TRIES 64
#define MAXP 24                             /* parameters of one statement */
#define NODE_FORGET_MS (24 * 3600000LL)     /* node rows silent this long are deleted */
#define MIGRATION_LOCK 0x736c756963650001LL /* pg_advisory_xact_lock key ("sluice" 1) */

/* ---- schema ---------------------------------------------------------------------- */

/* Migration 001_init: everything sqlite.c has after its 006, plus runnable and nodes.
 * Each migration is a NULL-terminated list of statements, applied in one transaction. */
static const char *const m001[] = {
    "CREATE TABLE api_keys("
    "  seq bigserial,"
    "  key_id text COLLATE \"C\" PRIMARY KEY,"
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  hash text NOT NULL,"
    "  created_at bigint NOT NULL,"
    "  revoked_at bigint NOT NULL DEFAULT 0)",
    "CREATE INDEX api_keys_hash ON api_keys(hash)",
    "CREATE TABLE jobs("
    "  jid bigserial PRIMARY KEY,"
    "  id text NOT NULL UNIQUE,"
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  workflow text NOT NULL DEFAULT '',"
    "  client_reference text,"
    "  status int NOT NULL,"
    "  outcome int NOT NULL DEFAULT 0,"
    "  error_code text NOT NULL DEFAULT '',"
    "  total bigint NOT NULL DEFAULT 0,"
    "  pending bigint NOT NULL DEFAULT 0,"
    "  processing bigint NOT NULL DEFAULT 0,"
    "  succeeded bigint NOT NULL DEFAULT 0,"
    "  failed bigint NOT NULL DEFAULT 0,"
    "  skipped bigint NOT NULL DEFAULT 0,"
    "  canceled bigint NOT NULL DEFAULT 0,"
    "  created_at bigint NOT NULL,"
    "  started_at bigint NOT NULL DEFAULT 0,"
    "  last_progress_at bigint NOT NULL DEFAULT 0,"
    "  completed_at bigint NOT NULL DEFAULT 0,"
    "  win_at bigint NOT NULL DEFAULT 0,"
    "  win_done bigint NOT NULL DEFAULT 0,"
    "  next_idx bigint NOT NULL DEFAULT 0,"
    "  cancel_at bigint NOT NULL DEFAULT -1,"
    "  last_claim bigint NOT NULL DEFAULT 0,"
    "  updated_at bigint NOT NULL,"
    "  workflow_version bigint NOT NULL DEFAULT 0,"
    "  parent_job text NOT NULL DEFAULT '',"
    "  callback_url text,"
    "  callback_events int NOT NULL DEFAULT 0,"
    "  priority int NOT NULL DEFAULT 0,"
    "  uses text) WITH (fillfactor = 70)",
    "CREATE INDEX jobs_tenant ON jobs(tenant, jid)",
    "CREATE INDEX jobs_hidden ON jobs(jid) WHERE status = 0", /* updated_at not indexed: HOT */
    "CREATE INDEX jobs_completed ON jobs(completed_at) WHERE status IN (4, 5, 6)",
    "CREATE INDEX jobs_open ON jobs(tenant, status) WHERE status IN (1, 2, 3)",
    "CREATE TABLE runnable("
    "  jid bigint PRIMARY KEY,"
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  priority int NOT NULL,"
    "  last_claim bigint NOT NULL DEFAULT 0,"
    "  started int NOT NULL DEFAULT 0)",
    "CREATE INDEX runnable_order ON runnable(tenant, priority DESC, last_claim, jid)",
    "CREATE TABLE items("
    "  jid bigint NOT NULL,"
    "  idx bigint NOT NULL,"
    "  status smallint NOT NULL DEFAULT 0,"
    "  attempts int NOT NULL DEFAULT 0,"
    "  prev_idx bigint NOT NULL,"
    "  updated_at bigint NOT NULL DEFAULT 0,"
    "  parent_index bigint NOT NULL DEFAULT -1,"
    "  error_code text,"
    "  ref text COLLATE \"C\" NOT NULL,"
    "  data text,"
    "  result text,"
    "  error_message text,"
    "  events text,"
    "  failed_step text,"
    "  warnings text,"
    "  PRIMARY KEY(jid, idx))",
    "CREATE INDEX items_failed ON items(jid, idx) WHERE status = 3",
    "CREATE TABLE claims("
    "  claim_id bigserial PRIMARY KEY,"
    "  token text NOT NULL,"
    "  jid bigint NOT NULL,"
    "  lo bigint NOT NULL,"
    "  hi bigint NOT NULL,"
    "  remaining bigint NOT NULL,"
    "  lease_until bigint NOT NULL,"
    "  claimed_at bigint NOT NULL,"
    "  released int NOT NULL DEFAULT 0,"
    "  node text NOT NULL DEFAULT '')",
    "CREATE INDEX claims_lease ON claims(lease_until)",
    "CREATE INDEX claims_job ON claims(jid)",
    "CREATE INDEX claims_node ON claims(node)",
    "CREATE TABLE nodes("
    "  node text PRIMARY KEY,"
    "  started_at bigint NOT NULL,"
    "  last_seen bigint NOT NULL,"
    "  info text NOT NULL DEFAULT '')",
    "CREATE TABLE docs("
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  collection text COLLATE \"C\" NOT NULL,"
    "  ref text COLLATE \"C\" NOT NULL,"
    "  version bigint NOT NULL,"
    "  deleted int NOT NULL,"
    "  prev_deleted int NOT NULL DEFAULT 1,"
    "  updated_at bigint NOT NULL,"
    "  item_index bigint NOT NULL,"
    "  job_id text NOT NULL,"
    "  data text,"
    "  PRIMARY KEY(tenant, collection, ref))",
    "CREATE TABLE job_steps("
    "  seq bigserial,"
    "  jid bigint NOT NULL,"
    "  step text NOT NULL,"
    "  passed bigint NOT NULL DEFAULT 0,"
    "  failed bigint NOT NULL DEFAULT 0,"
    "  skipped bigint NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(jid, step))",
    "CREATE TABLE idem_keys("
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  key text COLLATE \"C\" NOT NULL,"
    "  jid bigint NOT NULL,"
    "  body_hash text NOT NULL DEFAULT '',"
    "  created_at bigint NOT NULL,"
    "  PRIMARY KEY(tenant, key))",
    "CREATE INDEX idem_keys_job ON idem_keys(jid)",
    "CREATE INDEX idem_keys_created ON idem_keys(created_at)",
    "CREATE TABLE workflows("
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  name text COLLATE \"C\" NOT NULL,"
    "  version bigint NOT NULL,"
    "  definition text NOT NULL,"
    "  created_at bigint NOT NULL,"
    "  deleted int NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(tenant, name, version))",
    "CREATE TABLE hooks("
    "  name text COLLATE \"C\" PRIMARY KEY,"
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  definition text NOT NULL,"
    "  created_at bigint NOT NULL,"
    "  updated_at bigint NOT NULL)",
    "CREATE INDEX hooks_tenant ON hooks(tenant, name)",
    "CREATE TABLE outbox("
    "  did bigserial PRIMARY KEY,"
    "  id text NOT NULL UNIQUE,"
    "  jid bigint NOT NULL UNIQUE,"
    "  tenant text NOT NULL,"
    "  job_id text NOT NULL,"
    "  event text NOT NULL,"
    "  url text NOT NULL,"
    "  state int NOT NULL DEFAULT 0,"
    "  attempts int NOT NULL DEFAULT 0,"
    "  next_at bigint NOT NULL,"
    "  lease_until bigint NOT NULL DEFAULT 0,"
    "  token text NOT NULL DEFAULT '',"
    "  log text NOT NULL DEFAULT '[]',"
    "  created_at bigint NOT NULL,"
    "  updated_at bigint NOT NULL)",
    "CREATE INDEX outbox_due ON outbox(next_at) WHERE state = 0",
    "CREATE TABLE settings("
    "  name text PRIMARY KEY,"
    "  value text NOT NULL,"
    "  created_at bigint NOT NULL)",
    "CREATE TABLE tenants("
    "  tenant text COLLATE \"C\" PRIMARY KEY,"
    "  weight int NOT NULL DEFAULT 1,"
    "  turns int NOT NULL DEFAULT 0,"
    "  last_claim bigint NOT NULL DEFAULT 0)",
    "CREATE TABLE limits("
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  name text COLLATE \"C\" NOT NULL,"
    "  definition text NOT NULL,"
    "  created_at bigint NOT NULL,"
    "  updated_at bigint NOT NULL,"
    "  PRIMARY KEY(tenant, name))",
    NULL,
};

/* Migration 002_buckets: processing limits shared by the nodes (store_bucket_take,
 * store_sem_adjust): rate buckets, and concurrency units held per node. */
static const char *const m002[] = {
    "CREATE TABLE buckets("
    "  id text PRIMARY KEY,"
    "  tat double precision NOT NULL,"
    "  epoch bigint NOT NULL DEFAULT 0)",
    "CREATE TABLE sems("
    "  id text NOT NULL,"
    "  node text NOT NULL,"
    "  held bigint NOT NULL,"
    "  PRIMARY KEY(id, node))",
    NULL,
};

/* Migration 003_secrets: tenants' own secrets for {{secrets.NAME}} (never returned by
 * the API). */
static const char *const m003[] = {
    "CREATE TABLE secrets("
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  name text COLLATE \"C\" NOT NULL,"
    "  value text NOT NULL,"
    "  created_at bigint NOT NULL,"
    "  updated_at bigint NOT NULL,"
    "  PRIMARY KEY(tenant, name))",
    NULL,
};

/* Migration 004_retry_staging: a retry is created staging (status 0 with a
 * parent_job) and its items are copied in batches (store_job_retry_stage);
 * retry_refs holds the last index of each ref staged so far, to link same-ref items
 * across batches. */
static const char *const m004[] = {
    "CREATE INDEX jobs_staging ON jobs(jid) WHERE status = 0 AND parent_job <> ''",
    "CREATE TABLE retry_refs("
    "  jid bigint NOT NULL,"
    "  ref text COLLATE \"C\" NOT NULL,"
    "  last_idx bigint NOT NULL,"
    "  PRIMARY KEY(jid, ref))",
    NULL,
};

static const char *const *const migrations[] = {m001, m002, m003, m004};

/* ---- SQL --------------------------------------------------------------------------- */

#define JOB_COLS                                                                                   \
    "jid, id, tenant, workflow, client_reference, status, outcome, error_code, total, pending, "   \
    "processing, succeeded, failed, skipped, canceled, created_at, started_at, "                   \
    "last_progress_at, completed_at, win_at, win_done, next_idx, cancel_at, last_claim, "          \
    "workflow_version, parent_job, priority, uses"

#define ITEM_LIST_COLS                                                                             \
    "idx, status, attempts, ref, data, result, error_code, error_message, updated_at, "            \
    "failed_step, warnings, parent_index"

#define WF_COLS "name, version, definition, created_at, deleted"
#define HOOK_COLS "name, tenant, definition, created_at, updated_at"
#define LIMIT_COLS "name, tenant, definition, created_at, updated_at"
#define SECRET_COLS "name, tenant, value, created_at, updated_at"

/* ---- connections ----------------------------------------------------------------- */

struct conn {
    PGconn *pg;
    int broken;              /* the session is gone: discard instead of pooling */
    int64_t now;             /* database clock (ms) of the current transaction */
    struct buf ev, res, tmp; /* scratch: events, result JSON, patched documents */
    size_t max_doc_bytes;    /* store_options.max_doc_bytes (0 there: the default) */
    struct buf arr[10];      /* scratch: array parameters */
    int64_t retention_ms;
    struct conn *next;
};

struct pg {
    char *url;
    struct store_options opt;
    char node[STORE_ID_MAX]; /* this handle's node id (claims record it) */
    int registered;          /* its row is in nodes */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct conn *free_list;
    int nopen;
    int64_t down_until; /* monotonic ms: no new connection before (backoff) */
    int backoff_ms;
    /* the watcher: LISTEN on its own connection, calls watch_fn on notifications */
    pthread_t watch_thread;
    int watch_running, watch_stop;
    void (*watch_fn)(void *ctx);
    void *watch_ctx;
};

/* Statement parameters: text (NUL-terminated) or binary text (with a length). */
struct prm {
    int n;
    const char *v[MAXP];
    int len[MAXP];
    int fmt[MAXP];
    char num[MAXP][24];
};

static void p_str(struct prm *p, const char *s)
{
    p->v[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

/* n bytes of text, not NUL-terminated: sent in binary format, which for text is the
 * bytes themselves. The SQL must give the parameter a text type ($N::text). */
static void p_strn(struct prm *p, const char *s, size_t n)
{
    p->v[p->n] = s;
    p->len[p->n] = (int)n;
    p->fmt[p->n] = s ? 1 : 0;
    p->n++;
}

static void p_i64(struct prm *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", (long long)v);
    p_str(p, p->num[p->n]);
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
static int ex(struct conn *c, const char *sql, const struct prm *p, PGresult **out)
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

static int64_t gi(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int gnull(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col);
}

static char *gdup(const PGresult *r, int row, int col, size_t *len)
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

static void gcopy(const PGresult *r, int row, int col, char *dst, size_t cap)
{
    size_t n = PQgetisnull(r, row, col) ? 0 : (size_t)PQgetlength(r, row, col);
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, PQgetvalue(r, row, col), n);
    dst[n] = '\0';
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- array parameters: PostgreSQL array literals ("{1,2}", "{\"a\",NULL}") ----- */

static void arr_begin(struct buf *b)
{
    buf_reset(b);
    buf_putc(b, '{');
}

static void arr_sep(struct buf *b)
{
    if (b->len > 1)
        buf_putc(b, ',');
}

static void arr_strn(struct buf *b, const char *s, size_t n)
{
    arr_sep(b);
    if (!s) {
        buf_puts(b, "NULL");
        return;
    }
    buf_putc(b, '"');
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            buf_append(b, s + start, i - start);
            buf_putc(b, '\\');
            start = i;
        }
    }
    buf_append(b, s + start, n - start);
    buf_putc(b, '"');
}

static void arr_str(struct buf *b, const char *s)
{
    arr_strn(b, s, s ? strlen(s) : 0);
}

static void arr_i64(struct buf *b, int64_t v)
{
    arr_sep(b);
    buf_printf(b, "%lld", (long long)v);
}

static const char *arr_end(struct buf *b)
{
    buf_putc(b, '}');
    return buf_cstr(b);
}

/* The array literal of ids[0..n) in b. */
static const char *jid_array(struct buf *b, const int64_t *ids, int n)
{
    arr_begin(b);
    for (int i = 0; i < n; i++)
        arr_i64(b, ids[i]);
    return arr_end(b);
}

static void conn_free(struct conn *c)
{
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
static PGconn *pg_connect(const char *url)
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

/* Takes a pooled connection or opens one. E_SOFT while the server is unreachable
 * (with backoff: no connect attempt before down_until). */
static int conn_get(struct pg *s, struct conn **out)
{
    struct conn *c = NULL;
    pthread_mutex_lock(&s->mu);
    while (!s->free_list && s->nopen >= POOL_MAX)
        pthread_cond_wait(&s->cv, &s->mu);
    if (s->free_list) {
        c = s->free_list;
        s->free_list = c->next;
        pthread_mutex_unlock(&s->mu);
        *out = c;
        return 0;
    }
    if (clock_mono_ms() < s->down_until) {
        pthread_mutex_unlock(&s->mu);
        return E_SOFT;
    }
    s->nopen++;
    pthread_mutex_unlock(&s->mu);
    PGconn *pg = pg_connect(s->url);
    pthread_mutex_lock(&s->mu);
    if (!pg) {
        s->nopen--;
        s->backoff_ms = s->backoff_ms ? (s->backoff_ms * 2 > 2000 ? 2000 : s->backoff_ms * 2) : 100;
        s->down_until = clock_mono_ms() + s->backoff_ms;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return E_SOFT;
    }
    s->backoff_ms = 0;
    s->down_until = 0;
    pthread_mutex_unlock(&s->mu);
    c = xcalloc(1, sizeof *c);
    c->pg = pg;
    c->retention_ms = s->opt.retention_ms;
    c->max_doc_bytes = s->opt.max_doc_bytes ? s->opt.max_doc_bytes : STORE_DEFAULT_MAX_DOC_BYTES;
    *out = c;
    return 0;
}

static void conn_put(struct pg *s, struct conn *c)
{
    pthread_mutex_lock(&s->mu);
    if (c->broken) {
        s->nopen--;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        conn_free(c);
        return;
    }
    c->next = s->free_list;
    s->free_list = c;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

typedef int (*tx_fn)(struct conn *c, void *ctx);
typedef void (*tx_undo_fn)(void *ctx);

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
    c->now = gi(r, 0, 0);
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
static int run_tx(struct pg *s, tx_fn body, tx_undo_fn undo, void *ctx)
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

static int migrate_body(struct conn *c, void *ctx)
{
    (void)ctx;
    struct prm p = {0};
    PGresult *r = NULL;
    p_i64(&p, MIGRATION_LOCK);
    int rc = ex(c, "SELECT pg_advisory_xact_lock($1::bigint)", &p, NULL);
    if (rc < 0)
        return rc;
    rc = ex(c,
            "CREATE TABLE IF NOT EXISTS schema_version("
            "version int PRIMARY KEY, applied_at bigint NOT NULL)",
            NULL, NULL);
    if (rc < 0)
        return rc;
    if ((rc = ex(c, "SELECT coalesce(max(version), 0) FROM schema_version", NULL, &r)) < 0)
        return rc;
    int64_t have = gi(r, 0, 0);
    PQclear(r);
    const int64_t want = (int64_t)(sizeof migrations / sizeof migrations[0]);
    if (have > want) /* written by a newer sluice */
        return -SLUICE_E_INTERNAL;
    for (int64_t v = have + 1; v <= want; v++) {
        for (const char *const *stmt = migrations[v - 1]; *stmt; stmt++)
            if ((rc = ex(c, *stmt, NULL, NULL)) < 0)
                return rc;
        struct prm q = {0};
        p_i64(&q, v);
        p_i64(&q, c->now);
        if ((rc = ex(c, "INSERT INTO schema_version(version, applied_at) VALUES($1, $2)", &q,
                     NULL)) < 0)
            return rc;
    }
    return 0;
}

struct node_ctx {
    const char *node;
    int64_t timeout_ms;
    int released;
};

static int node_register_body(struct conn *c, void *vctx)
{
    struct node_ctx *x = vctx;
    struct prm p = {0};
    char host[128] = "";
    gethostname(host, sizeof host - 1);
    buf_reset(&c->tmp);
    buf_printf(&c->tmp, "%s pid %ld", host, (long)getpid());
    p_str(&p, x->node);
    p_i64(&p, c->now);
    p_str(&p, buf_cstr(&c->tmp));
    int rc = ex(c,
                "INSERT INTO nodes(node, started_at, last_seen, info) VALUES($1, $2, $2, $3) "
                "ON CONFLICT(node) DO UPDATE SET last_seen = excluded.last_seen",
                &p, NULL);
    return rc < 0 ? rc : 0;
}

static void pg_watch_stop(struct pg *s);

/* A node closing its store leaves the nodes table when it holds no claim (a graceful
 * shutdown gave them back; a CLI command never had any). */
static int node_leave_body(struct conn *c, void *vctx)
{
    struct node_ctx *x = vctx;
    struct prm p = {0};
    p_str(&p, x->node);
    int rc = ex(c,
                "DELETE FROM nodes WHERE node = $1 AND NOT EXISTS "
                "(SELECT 1 FROM claims WHERE claims.node = $1)",
                &p, NULL);
    return rc < 0 ? rc : 0;
}

static void pg_close(void *impl)
{
    struct pg *s = impl;
    if (!s)
        return;
    pg_watch_stop(s);
    if (s->node[0] && s->registered) {
        struct node_ctx x = {.node = s->node};
        run_tx(s, node_leave_body, NULL, &x); /* best effort: else swept after a day */
    }
    while (s->free_list) {
        struct conn *c = s->free_list;
        s->free_list = c->next;
        conn_free(c);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->url);
    free(s);
}

static int pg_open(const char *location, const struct store_options *opt, void **impl)
{
    int rc;
    struct pg *s = xcalloc(1, sizeof *s);
    s->url = xstrdup(location);
    s->opt = *opt;
    if (s->opt.node_timeout_ms <= 0)
        s->opt.node_timeout_ms = 15000;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
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
    if (rc < 0 || (rc = run_tx(s, migrate_body, NULL, NULL)) < 0)
        goto out;
    struct node_ctx nx = {.node = s->node};
    if ((rc = run_tx(s, node_register_body, NULL, &nx)) < 0)
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
    int rc = ex(c, "SELECT 1", NULL, NULL);
    return rc < 0 ? rc : 0;
}

static int pg_ping(void *impl)
{
    return run_tx(impl, ping_body, NULL, NULL);
}

static int claims_expire_body(struct conn *c, void *ctx)
{
    (void)ctx;
    int n = ex(c, "UPDATE claims SET lease_until = 0 WHERE lease_until > 0", NULL, NULL);
    if (n < 0)
        return n;
    int rc =
        ex(c, "UPDATE outbox SET lease_until = 0, token = '' WHERE state = 0 AND lease_until > 0",
           NULL, NULL);
    if (rc >= 0)
        rc = ex(c, "DELETE FROM sems", NULL, NULL); /* every node's concurrency units */
    return rc < 0 ? rc : n;
}

static int pg_expire_claims(void *impl)
{
    return run_tx(impl, claims_expire_body, NULL, NULL);
}

/* ---- nodes ----------------------------------------------------------------------- */

static int heartbeat_body(struct conn *c, void *vctx)
{
    struct node_ctx *x = vctx;
    struct prm p = {0};
    int rc = node_register_body(c, vctx);
    if (rc < 0)
        return rc;
    /* Leases of silent nodes end now: the token goes (a late write from the node is
     * refused) and released stays 0, so the takeover counts the attempt. */
    p_i64(&p, c->now - x->timeout_ms);
    p_str(&p, x->node);
    rc = ex(c,
            "UPDATE claims SET lease_until = 0, token = '' WHERE lease_until > 0 AND node <> $2 "
            "AND node IN (SELECT node FROM nodes WHERE last_seen < $1)",
            &p, NULL);
    if (rc < 0)
        return rc;
    x->released = rc;
    struct prm u = {0};
    p_i64(&u, c->now - x->timeout_ms);
    p_str(&u, x->node);
    rc = ex(c,
            "DELETE FROM sems WHERE node <> $2 AND node IN "
            "(SELECT node FROM nodes WHERE last_seen < $1)",
            &u, NULL);
    if (rc < 0)
        return rc;
    struct prm q = {0};
    p_i64(&q, c->now - NODE_FORGET_MS);
    rc = ex(c,
            "DELETE FROM nodes WHERE last_seen < $1 AND NOT EXISTS "
            "(SELECT 1 FROM claims WHERE claims.node = nodes.node)",
            &q, NULL);
    return rc < 0 ? rc : x->released;
}

static int pg_heartbeat(void *impl)
{
    struct pg *s = impl;
    struct node_ctx x = {.node = s->node, .timeout_ms = s->opt.node_timeout_ms};
    return run_tx(s, heartbeat_body, NULL, &x);
}

static const char *pg_node_id(void *impl)
{
    return ((struct pg *)impl)->node;
}

/* The watcher thread: LISTEN sluice_work on a connection of its own and call watch_fn
 * for each notification (and after each reconnect, since notifications sent while
 * it was away are lost). */
static void *watch_main(void *arg)
{
    struct pg *s = arg;
    PGconn *pg = NULL;
    int backoff_ms = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int stop = s->watch_stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        if (!pg) {
            pg = pg_connect(s->url);
            PGresult *r = pg ? PQexec(pg, "LISTEN sluice_work") : NULL;
            if (!pg || PQresultStatus(r) != PGRES_COMMAND_OK) {
                PQclear(r);
                if (pg)
                    PQfinish(pg);
                pg = NULL;
                backoff_ms = backoff_ms ? (backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2) : 100;
                struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
                nanosleep(&ts, NULL);
                continue;
            }
            PQclear(r);
            backoff_ms = 0;
            s->watch_fn(s->watch_ctx);
        }
        struct pollfd pfd = {PQsocket(pg), POLLIN, 0};
        int prc = poll(&pfd, 1, 250);
        if (prc < 0 && errno != EINTR)
            continue;
        if (prc > 0) {
            if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK) {
                PQfinish(pg);
                pg = NULL;
                continue;
            }
            int woke = 0;
            PGnotify *n;
            while ((n = PQnotifies(pg)) != NULL) {
                woke = 1;
                PQfreemem(n);
            }
            if (woke)
                s->watch_fn(s->watch_ctx);
        }
    }
    if (pg)
        PQfinish(pg);
    return NULL;
}

static void pg_watch_stop(struct pg *s)
{
    if (!s->watch_running)
        return;
    pthread_mutex_lock(&s->mu);
    s->watch_stop = 1;
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->watch_thread, NULL);
    s->watch_running = 0;
    s->watch_stop = 0;
}

static int pg_watch(void *impl, void (*fn)(void *ctx), void *ctx)
{
    struct pg *s = impl;
    pg_watch_stop(s);
    if (!fn)
        return 0;
    s->watch_fn = fn;
    s->watch_ctx = ctx;
    if (pthread_create(&s->watch_thread, NULL, watch_main, s) != 0)
        return -SLUICE_E_INTERNAL;
    s->watch_running = 1;
    return 0;
}

/* ---- API keys -------------------------------------------------------------------- */

struct key_ctx {
    const char *key_id, *tenant, *hash;
    char *tenant_out;
    struct store_key *list;
    size_t n;
};

static int key_create_body(struct conn *c, void *vctx)
{
    struct key_ctx *x = vctx;
    struct prm p = {0};
    p_str(&p, x->key_id);
    p_str(&p, x->tenant);
    p_str(&p, x->hash);
    p_i64(&p, c->now);
    int rc = ex(c, "INSERT INTO api_keys(key_id, tenant, hash, created_at) VALUES($1, $2, $3, $4)",
                &p, NULL);
    return rc < 0 ? rc : 0;
}

static int pg_key_create(void *impl, const char *key_id, const char *tenant, const char *hash_hex)
{
    struct key_ctx x = {.key_id = key_id, .tenant = tenant, .hash = hash_hex};
    return run_tx(impl, key_create_body, NULL, &x);
}

static int key_lookup_body(struct conn *c, void *vctx)
{
    struct key_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_str(&p, x->hash);
    int rc =
        ex(c, "SELECT tenant FROM api_keys WHERE hash = $1 AND revoked_at = 0 LIMIT 1", &p, &r);
    if (rc < 0)
        return rc;
    if (rc == 1)
        gcopy(r, 0, 0, x->tenant_out, STORE_NAME_MAX);
    PQclear(r);
    return rc > 0;
}

static int pg_key_lookup(void *impl, const char *hash_hex, char tenant[STORE_NAME_MAX])
{
    struct key_ctx x = {.hash = hash_hex, .tenant_out = tenant};
    return run_tx(impl, key_lookup_body, NULL, &x);
}

static int key_list_body(struct conn *c, void *vctx)
{
    struct key_ctx *x = vctx;
    PGresult *r;
    int rc =
        ex(c, "SELECT key_id, tenant, created_at, revoked_at FROM api_keys ORDER BY seq", NULL, &r);
    if (rc < 0)
        return rc;
    x->list = xcalloc((size_t)rc + 1, sizeof *x->list);
    x->n = (size_t)rc;
    for (int i = 0; i < rc; i++) {
        struct store_key *k = &x->list[i];
        gcopy(r, i, 0, k->key_id, sizeof k->key_id);
        gcopy(r, i, 1, k->tenant, sizeof k->tenant);
        k->created_at = gi(r, i, 2);
        k->revoked_at = gi(r, i, 3);
    }
    PQclear(r);
    return 0;
}

static void key_list_undo(void *vctx)
{
    struct key_ctx *x = vctx;
    free(x->list);
    x->list = NULL;
    x->n = 0;
}

static int pg_key_list(void *impl, struct store_key **out, size_t *n)
{
    struct key_ctx x = {0};
    int rc = run_tx(impl, key_list_body, key_list_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    return rc < 0 ? rc : 0;
}

static int key_revoke_body(struct conn *c, void *vctx)
{
    struct key_ctx *x = vctx;
    struct prm p = {0};
    p_str(&p, x->key_id);
    int rc = ex(c, "SELECT 1 FROM api_keys WHERE key_id = $1 FOR UPDATE", &p, NULL);
    if (rc <= 0)
        return rc;
    p_i64(&p, c->now);
    rc =
        ex(c, "UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at = 0", &p, NULL);
    return rc < 0 ? rc : 1;
}

static int pg_key_revoke(void *impl, const char *key_id)
{
    struct key_ctx x = {.key_id = key_id};
    return run_tx(impl, key_revoke_body, NULL, &x);
}

/* ---- tenants --------------------------------------------------------------------- */

struct weight_ctx {
    const char *tenant;
    int weight;
};

static int tenant_weight_body(struct conn *c, void *vctx)
{
    struct weight_ctx *x = vctx;
    struct prm p = {0};
    p_str(&p, x->tenant);
    p_i64(&p, x->weight);
    int rc = ex(c,
                "INSERT INTO tenants(tenant, weight) VALUES($1, $2) "
                "ON CONFLICT(tenant) DO UPDATE SET weight = excluded.weight",
                &p, NULL);
    return rc < 0 ? rc : 0;
}

static int pg_tenant_set_weight(void *impl, const char *tenant, int weight)
{
    struct weight_ctx x = {.tenant = tenant, .weight = weight};
    return run_tx(impl, tenant_weight_body, NULL, &x);
}

/* ---- job rows -------------------------------------------------------------------- */

static int job_terminal(int status)
{
    return status == JOB_SUCCEEDED || status == JOB_FAILED || status == JOB_CANCELED;
}

struct jobrow {
    int64_t jid, cursor, cancel_at, last_claim;
    struct store_job j;
};

/* Fills r from row `row` of JOB_COLS starting at column 0. */
static void read_job(const struct conn *c, const PGresult *res, int row, struct jobrow *r)
{
    struct store_job *j = &r->j;
    memset(r, 0, sizeof *r);
    r->jid = gi(res, row, 0);
    gcopy(res, row, 1, j->id, sizeof j->id);
    gcopy(res, row, 2, j->tenant, sizeof j->tenant);
    gcopy(res, row, 3, j->workflow, sizeof j->workflow);
    j->client_reference = gdup(res, row, 4, NULL);
    j->status = (int)gi(res, row, 5);
    j->outcome = (int)gi(res, row, 6);
    gcopy(res, row, 7, j->error_code, sizeof j->error_code);
    j->counts.total = gi(res, row, 8);
    j->counts.pending = gi(res, row, 9);
    j->counts.processing = gi(res, row, 10);
    j->counts.succeeded = gi(res, row, 11);
    j->counts.failed = gi(res, row, 12);
    j->counts.skipped = gi(res, row, 13);
    j->counts.canceled = gi(res, row, 14);
    j->created_at = gi(res, row, 15);
    j->started_at = gi(res, row, 16);
    j->last_progress_at = gi(res, row, 17);
    j->completed_at = gi(res, row, 18);
    j->win_at = gi(res, row, 19);
    j->win_done = gi(res, row, 20);
    r->cursor = gi(res, row, 21);
    r->cancel_at = gi(res, row, 22);
    r->last_claim = gi(res, row, 23);
    j->workflow_version = gi(res, row, 24);
    gcopy(res, row, 25, j->parent_job, sizeof j->parent_job);
    j->priority = (int)gi(res, row, 26);
    j->uses = gdup(res, row, 27, NULL);
    j->seq = r->jid;
    if (job_terminal(j->status) && j->completed_at > 0 && c->retention_ms > 0)
        j->expires_at = j->completed_at + c->retention_ms;
}

/* Runs a statement returning JOB_COLS; 1 and [out] r when it returned a row. */
static int job_query(struct conn *c, const char *sql, const struct prm *p, struct jobrow *r)
{
    PGresult *res;
    int rc = ex(c, sql, p, &res);
    if (rc < 0)
        return rc;
    if (rc > 0)
        read_job(c, res, 0, r);
    PQclear(res);
    return rc > 0;
}

/* A visible job of tenant by public id: 1 found, 0 not. `lock`: FOR UPDATE. */
static int job_load(struct conn *c, const char *tenant, const char *job_id, int lock,
                    struct jobrow *r)
{
    struct prm p = {0};
    p_str(&p, job_id);
    p_str(&p, tenant);
    return job_query(c,
                     lock ? "SELECT " JOB_COLS " FROM jobs WHERE id = $1 AND tenant = $2 "
                            "AND status > 0 FOR UPDATE"
                          : "SELECT " JOB_COLS " FROM jobs WHERE id = $1 AND tenant = $2 "
                            "AND status > 0",
                     &p, r);
}

/* job_load for readers: also a staging retry (status 0 with a parent_job), which
 * store.c shows NotStarted. Writers use job_load and do not see it. */
static int job_load_visible(struct conn *c, const char *tenant, const char *job_id,
                            struct jobrow *r)
{
    struct prm p = {0};
    p_str(&p, job_id);
    p_str(&p, tenant);
    return job_query(c,
                     "SELECT " JOB_COLS " FROM jobs WHERE id = $1 AND tenant = $2 "
                     "AND (status > 0 OR parent_job <> '') AND updated_at >= 0",
                     &p, r);
}

static int job_load_jid(struct conn *c, int64_t jid, struct jobrow *r)
{
    struct prm p = {0};
    p_i64(&p, jid);
    int rc = job_query(c, "SELECT " JOB_COLS " FROM jobs WHERE jid = $1", &p, r);
    return rc == 0 ? -SLUICE_E_INTERNAL : rc; /* callers hold a reference to the row */
}

static int job_load_steps(struct conn *c, int64_t jid, struct store_job *j)
{
    struct prm p = {0};
    PGresult *r;
    p_i64(&p, jid);
    int rc =
        ex(c, "SELECT step, passed, failed, skipped FROM job_steps WHERE jid = $1 ORDER BY seq", &p,
           &r);
    if (rc <= 0)
        return rc;
    j->steps = xcalloc((size_t)rc, sizeof *j->steps);
    j->nsteps = (size_t)rc;
    for (int i = 0; i < rc; i++) {
        struct store_step_count *sc = &j->steps[i];
        sc->step = gdup(r, i, 0, NULL);
        if (!sc->step)
            sc->step = xstrdup("");
        sc->passed = gi(r, i, 1);
        sc->failed = gi(r, i, 2);
        sc->skipped = gi(r, i, 3);
    }
    PQclear(r);
    return 0;
}

/* Writes the whole job row back (the caller holds its lock); a terminal job also
 * queues its completion callback (once: the outbox has one row per job). */
static int job_save(struct conn *c, const struct jobrow *r)
{
    const struct store_job *j = &r->j;
    struct prm p = {0};
    p_i64(&p, r->jid);
    p_i64(&p, j->status);
    p_i64(&p, j->outcome);
    p_str(&p, j->error_code);
    p_i64(&p, j->counts.pending);
    p_i64(&p, j->counts.processing);
    p_i64(&p, j->counts.succeeded);
    p_i64(&p, j->counts.failed);
    p_i64(&p, j->counts.skipped);
    p_i64(&p, j->counts.canceled);
    p_i64(&p, j->started_at);
    p_i64(&p, j->last_progress_at);
    p_i64(&p, j->completed_at);
    p_i64(&p, j->win_at);
    p_i64(&p, j->win_done);
    p_i64(&p, r->cursor);
    p_i64(&p, r->cancel_at);
    p_i64(&p, r->last_claim);
    p_i64(&p, c->now);
    int rc = ex(c,
                "UPDATE jobs SET status = $2, outcome = $3, error_code = $4, pending = $5, "
                "processing = $6, succeeded = $7, failed = $8, skipped = $9, canceled = $10, "
                "started_at = $11, last_progress_at = $12, completed_at = $13, win_at = $14, "
                "win_done = $15, next_idx = $16, cancel_at = $17, last_claim = $18, "
                "updated_at = $19 WHERE jid = $1",
                &p, NULL);
    if (rc < 0 || !job_terminal(j->status))
        return rc < 0 ? rc : 0;
    const char *event = j->status == JOB_SUCCEEDED ? "job.completed"
                        : j->status == JOB_FAILED  ? "job.failed"
                                                   : "job.canceled";
    int bit = j->status == JOB_SUCCEEDED ? STORE_CB_COMPLETED
              : j->status == JOB_FAILED  ? STORE_CB_FAILED
                                         : STORE_CB_CANCELED;
    struct prm q = {0};
    p_i64(&q, r->jid);
    p_str(&q, event);
    p_i64(&q, bit);
    p_i64(&q, c->now);
    rc = ex(c,
            "INSERT INTO outbox(id, jid, tenant, job_id, event, url, next_at, created_at, "
            "updated_at) SELECT 'dlv_' || substr(md5(random()::text || clock_timestamp()::text "
            "|| jid::text), 1, 24), jid, tenant, id, $2, callback_url, $4, $4, $4 FROM jobs "
            "WHERE jid = $1 AND callback_url IS NOT NULL AND (callback_events & $3::int) <> 0 "
            "ON CONFLICT DO NOTHING",
            &q, NULL);
    return rc < 0 ? rc : 0;
}

/* The job's last transition (see sqlite.c). 1 when it changed r. */
static int job_maybe_finish(struct jobrow *r, int64_t now)
{
    struct store_job *j = &r->j;
    if ((j->status == JOB_RUNNING || j->status == JOB_NOT_STARTED) && j->counts.pending == 0 &&
        j->counts.processing == 0 && r->cursor >= j->counts.total) {
        if (j->counts.failed == 0) {
            j->status = JOB_SUCCEEDED;
            j->outcome = OUTCOME_ALL_SUCCEEDED;
        } else if (j->counts.succeeded + j->counts.skipped == 0) {
            j->status = JOB_FAILED;
            copy_str(j->error_code, sizeof j->error_code, "AllItemsFailed");
        } else {
            j->status = JOB_SUCCEEDED;
            j->outcome = OUTCOME_PARTIALLY_SUCCEEDED;
        }
        j->completed_at = now;
        return 1;
    }
    if (j->status == JOB_CANCELING && j->counts.processing == 0) {
        j->status = JOB_CANCELED;
        j->completed_at = now;
        return 1;
    }
    return 0;
}

/* After a relative update of the counts (row r as returned, lock held): finishes the
 * job when its last item is done. */
static int job_finish_if_done(struct conn *c, struct jobrow *r)
{
    if (!job_maybe_finish(r, c->now))
        return 0;
    return job_save(c, r);
}

/* ---- submitting ------------------------------------------------------------------ */

struct submit_ctx {
    const char *tenant, *job_id, *new_job_id;
    const struct store_job_meta *meta;
    const struct store_new_item *items;
    size_t n;
    int64_t total, older_than;
    struct store_job *out;
    int staging; /* job_retry_begin: the retry is created staging, without items */
};

static int job_begin_body(struct conn *c, void *vctx)
{
    struct submit_ctx *x = vctx;
    struct prm p = {0};
    p_str(&p, x->job_id);
    p_str(&p, x->tenant);
    p_i64(&p, c->now);
    int rc = ex(c,
                "INSERT INTO jobs(id, tenant, status, created_at, updated_at) "
                "VALUES($1, $2, 0, $3, $3)",
                &p, NULL);
    return rc < 0 ? rc : 0;
}

static int pg_job_begin(void *impl, const char *tenant, const char *job_id)
{
    struct submit_ctx x = {.tenant = tenant, .job_id = job_id};
    return run_tx(impl, job_begin_body, NULL, &x);
}

/* jid of a Receiving job (locked), or 0 (not found / no longer receiving). */
static int receiving_jid(struct conn *c, const char *job_id, int64_t *jid)
{
    struct prm p = {0};
    PGresult *r;
    p_str(&p, job_id);
    int rc = ex(c,
                "SELECT jid FROM jobs WHERE id = $1 AND status = 0 AND updated_at >= 0 "
                "FOR UPDATE",
                &p, &r);
    if (rc < 0)
        return rc;
    if (rc > 0)
        *jid = gi(r, 0, 0);
    PQclear(r);
    return rc > 0;
}

static int add_items_body(struct conn *c, void *vctx)
{
    struct submit_ctx *x = vctx;
    int64_t jid = 0;
    int rc = receiving_jid(c, x->job_id, &jid);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_NOT_FOUND;
    if (x->n > 0) {
        struct buf *bi = &c->arr[0], *bp = &c->arr[1], *br = &c->arr[2], *bd = &c->arr[3];
        arr_begin(bi);
        arr_begin(bp);
        arr_begin(br);
        arr_begin(bd);
        for (size_t i = 0; i < x->n; i++) {
            const struct store_new_item *it = &x->items[i];
            if (it->index < 0 || it->index >= 4294967296LL)
                return -SLUICE_E_INVALID_PARAMETER;
            arr_i64(bi, it->index);
            arr_i64(bp, it->prev_idx);
            arr_strn(br, it->ref, it->ref_len);
            arr_strn(bd, it->data, it->data_len);
        }
        struct prm p = {0};
        p_i64(&p, jid);
        p_str(&p, arr_end(bi));
        p_str(&p, arr_end(bp));
        p_str(&p, arr_end(br));
        p_str(&p, arr_end(bd));
        rc = ex(c,
                "INSERT INTO items(jid, idx, prev_idx, ref, data) SELECT $1, * FROM "
                "unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[])",
                &p, NULL);
        if (rc < 0)
            return rc;
    }
    struct prm q = {0};
    p_i64(&q, jid);
    p_i64(&q, c->now);
    rc = ex(c, "UPDATE jobs SET updated_at = $2 WHERE jid = $1", &q, NULL);
    return rc < 0 ? rc : 0;
}

static int pg_job_add_items(void *impl, const char *job_id, const struct store_new_item *items,
                            size_t n)
{
    struct submit_ctx x = {.job_id = job_id, .items = items, .n = n};
    return run_tx(impl, add_items_body, NULL, &x);
}

/* Deletes a job's items, claims, step counts, keys, delivery, runnable row and row. */
static int job_remove(struct conn *c, int64_t jid)
{
    static const char *const by_jid[] = {
        "DELETE FROM items WHERE jid = $1",     "DELETE FROM claims WHERE jid = $1",
        "DELETE FROM job_steps WHERE jid = $1", "DELETE FROM idem_keys WHERE jid = $1",
        "DELETE FROM outbox WHERE jid = $1",    "DELETE FROM runnable WHERE jid = $1",
        "DELETE FROM jobs WHERE jid = $1",
    };
    struct prm p = {0};
    p_i64(&p, jid);
    for (size_t i = 0; i < sizeof by_jid / sizeof by_jid[0]; i++) {
        int rc = ex(c, by_jid[i], &p, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* As in sqlite.c: 1 ([out] *jid) when the key of tenant replays, 0 when no key
 * counts, -SLUICE_E_IDEMPOTENCY_KEY_REUSED when it covers another request. */
static int idem_find(struct conn *c, const char *tenant, const struct store_job_meta *m,
                     int64_t *jid)
{
    struct prm p = {0};
    PGresult *r;
    p_str(&p, tenant);
    p_str(&p, m->idem_key);
    int rc =
        ex(c, "SELECT jid, body_hash, created_at FROM idem_keys WHERE tenant = $1 AND key = $2", &p,
           &r);
    if (rc <= 0)
        return rc;
    const char *h = PQgetvalue(r, 0, 1);
    if (gi(r, 0, 2) < m->idem_not_before)
        rc = 0;
    else if (m->body_hash && m->body_hash[0] && h && h[0] && strcmp(h, m->body_hash) != 0)
        rc = -SLUICE_E_IDEMPOTENCY_KEY_REUSED;
    else
        *jid = gi(r, 0, 0);
    PQclear(r);
    return rc;
}

/* Takes m's key for job jid: 1 taken (new, or an aged-out key replaced), 0 when a job
 * committed meanwhile on another connection holds it (the caller looks again). */
static int idem_take(struct conn *c, int64_t jid, const struct store_job_meta *m)
{
    struct prm p = {0};
    p_i64(&p, jid);
    p_str(&p, m->idem_key);
    p_str(&p, m->body_hash);
    p_i64(&p, c->now);
    p_i64(&p, m->idem_not_before);
    int rc = ex(c,
                "INSERT INTO idem_keys AS k (tenant, key, jid, body_hash, created_at) "
                "SELECT tenant, $2, jid, coalesce($3::text, ''), $4 FROM jobs WHERE jid = $1 "
                "ON CONFLICT (tenant, key) DO UPDATE SET jid = excluded.jid, "
                "body_hash = excluded.body_hash, created_at = excluded.created_at "
                "WHERE k.created_at < $5",
                &p, NULL);
    return rc < 0 ? rc : rc > 0;
}

static int notify_work(struct conn *c)
{
    int rc = ex(c, "SELECT pg_notify('sluice_work', '')", NULL, NULL);
    return rc < 0 ? rc : 0;
}

static int runnable_insert(struct conn *c, int64_t jid)
{
    struct prm p = {0};
    p_i64(&p, jid);
    int rc = ex(c,
                "INSERT INTO runnable(jid, tenant, priority) SELECT jid, tenant, priority "
                "FROM jobs WHERE jid = $1 AND total > 0 ON CONFLICT DO NOTHING",
                &p, NULL);
    return rc < 0 ? rc : 0;
}

static int job_commit_body(struct conn *c, void *vctx)
{
    struct submit_ctx *x = vctx;
    const struct store_job_meta *m = x->meta;
    int64_t jid = 0, existing = 0;
    struct jobrow r;
    int result = 1;
    int rc = receiving_jid(c, x->job_id, &jid);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_NOT_FOUND;
    if (m->idem_key) {
        if ((rc = job_load_jid(c, jid, &r)) < 0)
            return rc;
        char tenant[STORE_NAME_MAX];
        copy_str(tenant, sizeof tenant, r.j.tenant);
        store_job_release(&r.j);
        for (int tries = 0; tries < 3 && !existing; tries++) {
            if ((rc = idem_find(c, tenant, m, &existing)) < 0)
                return rc;
            if (existing || (rc = idem_take(c, jid, m)) == 1)
                break;
            if (rc < 0)
                return rc;
        }
        if (!existing && rc != 1)
            return E_SOFT;
    }
    if (existing) {
        /* Already done once: the staged copy goes, the caller gets the first job. */
        if ((rc = job_remove(c, jid)) < 0)
            return rc;
        jid = existing;
        result = 2;
    } else {
        struct prm p = {0};
        p_i64(&p, jid);
        p_str(&p, m->workflow ? m->workflow : "");
        p_str(&p, m->client_reference);
        p_i64(&p, x->total);
        p_i64(&p, c->now);
        p_i64(&p, m->workflow_version);
        p_str(&p, m->job_id);
        p_str(&p, m->callback_url);
        p_i64(&p, m->callback_url ? (m->callback_events ? m->callback_events : STORE_CB_ALL) : 0);
        p_i64(&p, m->priority);
        p_str(&p, m->uses && *m->uses ? m->uses : NULL);
        rc = ex(c,
                "UPDATE jobs SET status = 1, workflow = $2, client_reference = $3, total = $4, "
                "pending = $4, updated_at = $5, workflow_version = $6, "
                "id = coalesce($7::text, id), callback_url = $8, callback_events = $9, "
                "priority = $10, uses = $11 WHERE jid = $1",
                &p, NULL);
        if (rc < 0)
            return rc; /* -SLUICE_E_CONFLICT: m->job_id names another job */
        if ((rc = runnable_insert(c, jid)) < 0 || (rc = notify_work(c)) < 0)
            return rc;
    }
    if (x->out) {
        if ((rc = job_load_jid(c, jid, &r)) < 0)
            return rc;
        *x->out = r.j;
    }
    return result;
}

static void job_out_undo(void *vctx)
{
    struct submit_ctx *x = vctx;
    if (x->out) {
        store_job_release(x->out);
        memset(x->out, 0, sizeof *x->out);
    }
}

static int pg_job_commit(void *impl, const char *job_id, const struct store_job_meta *meta,
                         int64_t total, struct store_job *out)
{
    struct store_job_meta none = {0};
    struct submit_ctx x = {
        .job_id = job_id, .meta = meta ? meta : &none, .total = total, .out = out};
    if (out)
        memset(out, 0, sizeof *out);
    return run_tx(impl, job_commit_body, job_out_undo, &x);
}

static int job_retry_body(struct conn *c, void *vctx)
{
    struct submit_ctx *x = vctx;
    struct jobrow r;
    int64_t existing = 0, jid = 0;
    int rc;
    memset(&r, 0, sizeof r);
    if (x->meta && x->meta->idem_key) {
        if ((rc = idem_find(c, x->tenant, x->meta, &existing)) < 0)
            return rc;
        if (existing) {
            if (x->out) {
                if ((rc = job_load_jid(c, existing, &r)) < 0)
                    return rc;
                *x->out = r.j;
            }
            return 2;
        }
    }
    rc = job_load(c, x->tenant, x->job_id, 0, &r);
    if (rc <= 0)
        return rc;
    if (!job_terminal(r.j.status)) {
        rc = -SLUICE_E_CONFLICT;
        goto out;
    }
    int64_t n = r.j.counts.failed;
    if (n == 0) {
        rc = -SLUICE_E_EMPTY_JOB;
        goto out;
    }
    struct prm p = {0};
    PGresult *res;
    p_str(&p, x->new_job_id);
    p_str(&p, r.j.tenant);
    p_str(&p, r.j.workflow);
    p_i64(&p, r.j.workflow_version);
    p_str(&p, r.j.id);
    p_str(&p, r.j.client_reference);
    p_i64(&p, n);
    p_i64(&p, c->now);
    p_i64(&p, r.j.priority);
    p_str(&p, r.j.uses);
    p_i64(&p, x->staging ? JOB_RECEIVING : JOB_NOT_STARTED);
    rc = ex(c,
            "INSERT INTO jobs(id, tenant, workflow, workflow_version, parent_job, "
            "client_reference, status, total, pending, created_at, updated_at, priority, uses) "
            "VALUES($1, $2, $3, $4, $5, $6, $11, $7, $7, $8, $8, $9, $10) RETURNING jid",
            &p, &res);
    if (rc < 0)
        goto out;
    jid = gi(res, 0, 0);
    PQclear(res);
    if (x->staging) /* store_job_retry_stage copies the items */
        goto keyed;
    struct prm q = {0};
    p_i64(&q, jid);
    p_i64(&q, r.jid);
    rc = ex(c,
            "INSERT INTO items(jid, idx, prev_idx, ref, data, parent_index) "
            "SELECT $1, idx, coalesce(lag(idx) OVER (PARTITION BY ref ORDER BY idx), -1), ref, "
            "data, pidx FROM (SELECT row_number() OVER (ORDER BY idx) - 1 AS idx, ref, data, "
            "idx AS pidx FROM items WHERE jid = $2 AND status = 3) f ORDER BY idx",
            &q, NULL);
    if (rc < 0)
        goto out;
    if (rc != n) { /* the job's failed count disagrees with its rows */
        rc = -SLUICE_E_INTERNAL;
        goto out;
    }
keyed:
    if (x->meta && x->meta->idem_key) {
        if ((rc = idem_take(c, jid, x->meta)) < 0)
            goto out;
        if (rc == 0) { /* taken meanwhile: the next attempt replays it */
            rc = E_SOFT;
            goto out;
        }
    }
    if (x->staging)
        ; /* runnable once staged */
    else if ((rc = runnable_insert(c, jid)) < 0 || (rc = notify_work(c)) < 0)
        goto out;
    store_job_release(&r.j);
    if (x->out) {
        if ((rc = job_load_jid(c, jid, &r)) < 0)
            goto out;
        *x->out = r.j;
        memset(&r.j, 0, sizeof r.j);
    }
    rc = 1;
out:
    store_job_release(&r.j);
    return rc;
}

static int pg_job_retry(void *impl, const char *tenant, const char *job_id, const char *new_job_id,
                        const struct store_job_meta *meta, struct store_job *out)
{
    struct submit_ctx x = {
        .tenant = tenant, .job_id = job_id, .new_job_id = new_job_id, .meta = meta, .out = out};
    if (out)
        memset(out, 0, sizeof *out);
    return run_tx(impl, job_retry_body, job_out_undo, &x);
}

static int pg_job_retry_begin(void *impl, const char *tenant, const char *job_id,
                              const char *new_job_id, const struct store_job_meta *meta,
                              struct store_job *out)
{
    struct submit_ctx x = {.tenant = tenant,
                           .job_id = job_id,
                           .new_job_id = new_job_id,
                           .meta = meta,
                           .out = out,
                           .staging = 1};
    if (out)
        memset(out, 0, sizeof *out);
    return run_tx(impl, job_retry_body, job_out_undo, &x);
}

struct stage_ctx {
    size_t max_rows;
    char *job_id;  /* [out] STORE_ID_MAX */
    int64_t after; /* pick the first staging retry with jid > after */
    int64_t *seq;  /* [out] the jid picked; may be NULL */
};

/* As in sqlite.c: one batch of the oldest staging retry this node can lock. */
static int stage_body(struct conn *c, void *vctx)
{
    struct stage_ctx *x = vctx;
    PGresult *r;
    char tenant[STORE_NAME_MAX], parent[STORE_ID_MAX];
    int64_t jid, total, pjid = 0, staged = 0, pnext = 0;
    x->job_id[0] = '\0';
    struct prm a = {0};
    p_i64(&a, x->after);
    int rc = ex(c,
                "SELECT jid, tenant, parent_job, total, id FROM jobs WHERE status = 0 AND "
                "parent_job <> '' AND updated_at >= 0 AND jid > $1 ORDER BY jid LIMIT 1 "
                "FOR UPDATE SKIP LOCKED",
                &a, &r);
    if (rc <= 0) {
        if (rc == 0)
            PQclear(r);
        return rc;
    }
    jid = gi(r, 0, 0);
    if (x->seq)
        *x->seq = jid;
    gcopy(r, 0, 1, tenant, sizeof tenant);
    gcopy(r, 0, 2, parent, sizeof parent);
    total = gi(r, 0, 3);
    gcopy(r, 0, 4, x->job_id, STORE_ID_MAX);
    PQclear(r);
    struct prm p = {0};
    p_i64(&p, jid);
    if ((rc = ex(c, "SELECT idx, parent_index FROM items WHERE jid = $1 ORDER BY idx DESC LIMIT 1",
                 &p, &r)) < 0)
        return rc;
    if (rc > 0) {
        staged = gi(r, 0, 0) + 1;
        pnext = gi(r, 0, 1) + 1;
    }
    PQclear(r);
    if (staged < total) {
        struct prm q = {0};
        p_str(&q, parent);
        p_str(&q, tenant);
        if ((rc = ex(c, "SELECT jid FROM jobs WHERE id = $1 AND tenant = $2 AND status > 0", &q,
                     &r)) < 0)
            return rc;
        if (rc > 0)
            pjid = gi(r, 0, 0);
        PQclear(r);
    }
    if (staged < total && pjid) {
        struct prm q = {0};
        p_i64(&q, jid);
        p_i64(&q, pjid);
        p_i64(&q, staged);
        p_i64(&q, pnext);
        p_i64(&q, total - staged < (int64_t)x->max_rows ? total - staged : (int64_t)x->max_rows);
        /* the LIMIT sits inside, so a batch reads only its own rows (items_failed) */
        rc = ex(c,
                "INSERT INTO items(jid, idx, prev_idx, ref, data, parent_index) "
                "SELECT $1, idx, coalesce(lag(idx) OVER (PARTITION BY ref ORDER BY idx), "
                "(SELECT last_idx FROM retry_refs rr WHERE rr.jid = $1 AND rr.ref = f.ref), -1), "
                "ref, data, pidx FROM (SELECT $3 + row_number() OVER (ORDER BY idx) - 1 AS idx, "
                "ref, data, idx AS pidx FROM (SELECT idx, ref, data FROM items WHERE jid = $2 "
                "AND status = 3 AND idx >= $4 ORDER BY idx LIMIT $5) b) f ORDER BY idx",
                &q, NULL);
        if (rc < 0)
            return rc;
        int64_t n = rc;
        if (n > 0) {
            struct prm u = {0};
            p_i64(&u, jid);
            p_i64(&u, staged);
            p_i64(&u, staged + n);
            rc = ex(c,
                    "INSERT INTO retry_refs(jid, ref, last_idx) SELECT $1, ref, max(idx) FROM "
                    "items WHERE jid = $1 AND idx >= $2 AND idx < $3 GROUP BY ref "
                    "ON CONFLICT (jid, ref) DO UPDATE SET last_idx = EXCLUDED.last_idx",
                    &u, NULL);
            return rc < 0 ? rc : 1;
        }
    }
    /* Everything staged (or the parent is gone): drop the ref links, then publish. */
    struct prm d = {0};
    p_i64(&d, jid);
    p_i64(&d, (int64_t)x->max_rows);
    if ((rc = ex(c,
                 "DELETE FROM retry_refs WHERE jid = $1 AND ref IN "
                 "(SELECT ref FROM retry_refs WHERE jid = $1 LIMIT $2)",
                 &d, NULL)) < 0)
        return rc;
    if (rc > 0)
        return 1;
    if (staged == 0) { /* the parent went before anything was staged: nothing to retry */
        rc = job_remove(c, jid);
        return rc < 0 ? rc : 2;
    }
    struct prm f = {0};
    p_i64(&f, jid);
    p_i64(&f, staged);
    p_i64(&f, c->now);
    if ((rc = ex(c,
                 "UPDATE jobs SET status = 1, total = $2, pending = $2, updated_at = $3 "
                 "WHERE jid = $1",
                 &f, NULL)) < 0)
        return rc;
    if ((rc = runnable_insert(c, jid)) < 0 || (rc = notify_work(c)) < 0)
        return rc;
    return 2;
}

static int pg_job_retry_stage(void *impl, size_t max_rows, int64_t *cursor, char *job_id)
{
    struct stage_ctx x = {max_rows ? max_rows : 1, job_id, cursor ? *cursor : 0, cursor};
    job_id[0] = '\0';
    return run_tx(impl, stage_body, NULL, &x);
}

static int job_abort_body(struct conn *c, void *vctx)
{
    struct submit_ctx *x = vctx;
    int64_t jid = 0;
    int rc = receiving_jid(c, x->job_id, &jid);
    if (rc <= 0)
        return rc;
    rc = job_remove(c, jid);
    return rc < 0 ? rc : 1;
}

static int pg_job_abort(void *impl, const char *job_id)
{
    struct submit_ctx x = {.job_id = job_id};
    int rc = run_tx(impl, job_abort_body, NULL, &x);
    return rc < 0 ? rc : 0;
}

static int gc_body(struct conn *c, void *vctx)
{
    struct submit_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_i64(&p, x->older_than);
    int rc = ex(c,
                "SELECT jid FROM jobs WHERE status = 0 AND updated_at < $1 "
                "AND (parent_job = '' OR updated_at < 0) FOR UPDATE SKIP LOCKED",
                &p, &r);
    if (rc < 0)
        return rc;
    int n = rc;
    for (int i = 0; i < n; i++) {
        if ((rc = job_remove(c, gi(r, i, 0))) < 0) {
            PQclear(r);
            return rc;
        }
    }
    PQclear(r);
    return n;
}

static int pg_gc_receiving(void *impl, int64_t older_than)
{
    struct submit_ctx x = {.older_than = older_than};
    return run_tx(impl, gc_body, NULL, &x);
}

/* ---- retention ------------------------------------------------------------------- */

struct sweep_ctx {
    int64_t jobs_before, keys_before;
    int64_t budget;
};

/* jid of the job to remove next (see sqlite.c), or 0. */
static int sweep_next_job(struct conn *c, const struct sweep_ctx *x, int64_t *jid, int64_t *removed)
{
    static const char *const by_jid[] = {
        "UPDATE jobs SET status = 0, updated_at = -1 WHERE jid = $1",
        "DELETE FROM claims WHERE jid = $1",
        "DELETE FROM job_steps WHERE jid = $1",
        "DELETE FROM idem_keys WHERE jid = $1",
        "DELETE FROM outbox WHERE jid = $1",
    };
    PGresult *r;
    int rc = ex(c,
                "SELECT jid FROM jobs WHERE status = 0 AND updated_at < 0 LIMIT 1 "
                "FOR UPDATE SKIP LOCKED",
                NULL, &r);
    if (rc < 0)
        return rc;
    if (rc > 0) {
        *jid = gi(r, 0, 0);
        PQclear(r);
        return 1;
    }
    PQclear(r);
    struct prm p = {0};
    p_i64(&p, x->jobs_before);
    rc = ex(c,
            "SELECT jid FROM jobs WHERE status IN (4, 5, 6) AND completed_at < $1 "
            "ORDER BY completed_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            &p, &r);
    if (rc <= 0)
        return rc;
    *jid = gi(r, 0, 0);
    PQclear(r);
    struct prm q = {0};
    p_i64(&q, *jid);
    for (size_t i = 0; i < sizeof by_jid / sizeof by_jid[0]; i++) {
        if ((rc = ex(c, by_jid[i], &q, NULL)) < 0)
            return rc;
        if (i > 0)
            *removed += rc;
    }
    return 1;
}

static int sweep_body(struct conn *c, void *vctx)
{
    struct sweep_ctx *x = vctx;
    int64_t removed = 0, jid = 0;
    struct prm p = {0};
    p_i64(&p, x->keys_before);
    p_i64(&p, x->budget);
    int rc = ex(c,
                "DELETE FROM idem_keys WHERE (tenant, key) IN (SELECT tenant, key FROM idem_keys "
                "WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &p, NULL);
    if (rc < 0)
        return rc;
    removed += rc;
    while (removed < x->budget) {
        if ((rc = sweep_next_job(c, x, &jid, &removed)) < 0)
            return rc;
        if (rc == 0)
            break;
        int64_t want = x->budget - removed;
        struct prm q = {0};
        p_i64(&q, jid);
        p_i64(&q, want);
        rc = ex(c,
                "DELETE FROM items WHERE jid = $1 AND idx IN (SELECT idx FROM items "
                "WHERE jid = $1 ORDER BY idx LIMIT $2)",
                &q, NULL);
        if (rc < 0)
            return rc;
        removed += rc;
        if (rc == want)
            break; /* maybe more items: the next call goes on with this job */
        struct prm d = {0};
        p_i64(&d, jid);
        if ((rc = ex(c, "DELETE FROM jobs WHERE jid = $1", &d, NULL)) < 0)
            return rc;
        removed++;
    }
    return removed > INT32_MAX ? INT32_MAX : (int)removed;
}

static int pg_retention_sweep(void *impl, int64_t jobs_completed_before,
                              int64_t keys_created_before, size_t max_rows)
{
    struct sweep_ctx x = {jobs_completed_before, keys_created_before,
                          max_rows == 0 ? 1
                                        : (max_rows > INT32_MAX ? INT32_MAX : (int64_t)max_rows)};
    return run_tx(impl, sweep_body, NULL, &x);
}

/* ---- reading and controlling jobs ------------------------------------------------ */

struct jobs_ctx {
    const char *tenant, *job_id;
    int status;
    int64_t before_seq;
    size_t limit;
    struct store_job *out;
    struct store_job *list;
    size_t n;
};

static void jobs_out_undo(void *vctx)
{
    struct jobs_ctx *x = vctx;
    if (x->out) {
        store_job_release(x->out);
        memset(x->out, 0, sizeof *x->out);
    }
    store_jobs_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}

static int job_get_body(struct conn *c, void *vctx)
{
    struct jobs_ctx *x = vctx;
    struct jobrow r;
    int rc = job_load_visible(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    *x->out = r.j;
    if ((rc = job_load_steps(c, r.jid, x->out)) < 0)
        return rc;
    return 1;
}

static int pg_job_get(void *impl, const char *tenant, const char *job_id, struct store_job *out)
{
    struct jobs_ctx x = {.tenant = tenant, .job_id = job_id, .out = out};
    memset(out, 0, sizeof *out);
    return run_tx(impl, job_get_body, jobs_out_undo, &x);
}

static int job_list_body(struct conn *c, void *vctx)
{
    struct jobs_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    struct jobrow jr;
    p_str(&p, x->tenant);
    p_i64(&p, x->status);
    p_i64(&p, x->before_seq > 0 ? x->before_seq : INT64_MAX);
    p_i64(&p, (int64_t)x->limit);
    int rc = ex(c,
                "SELECT " JOB_COLS " FROM jobs WHERE tenant = $1 AND status > 0 "
                "AND ($2::int < 0 OR status = $2) AND jid < $3 ORDER BY jid DESC LIMIT $4",
                &p, &r);
    if (rc < 0)
        return rc;
    x->list = xcalloc(x->limit ? x->limit : 1, sizeof *x->list);
    for (int i = 0; i < rc && x->n < x->limit; i++) {
        read_job(c, r, i, &jr);
        x->list[x->n++] = jr.j;
    }
    PQclear(r);
    return 0;
}

static int pg_job_list(void *impl, const char *tenant, int status, int64_t before_seq, size_t limit,
                       struct store_job **out, size_t *n)
{
    struct jobs_ctx x = {
        .tenant = tenant, .status = status, .before_seq = before_seq, .limit = limit};
    int rc = run_tx(impl, job_list_body, jobs_out_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int job_cancel_body(struct conn *c, void *vctx)
{
    struct jobs_ctx *x = vctx;
    struct jobrow r;
    struct prm p = {0};
    PGresult *res;
    /* The runnable row first (lock order): no claim moves the cursor meanwhile. */
    p_str(&p, x->job_id);
    p_str(&p, x->tenant);
    int rc = ex(c,
                "SELECT r.jid FROM runnable r JOIN jobs j ON j.jid = r.jid WHERE j.id = $1 "
                "AND j.tenant = $2 FOR UPDATE OF r",
                &p, &res);
    if (rc < 0)
        return rc;
    PQclear(res);
    rc = job_load(c, x->tenant, x->job_id, 1, &r);
    if (rc <= 0)
        return rc;
    if (r.j.status == JOB_NOT_STARTED || r.j.status == JOB_RUNNING) {
        r.cancel_at = r.cursor;
        r.j.counts.canceled += r.j.counts.pending;
        r.j.counts.pending = 0;
        r.j.status = JOB_CANCELING;
        job_maybe_finish(&r, c->now);
        struct prm q = {0};
        p_i64(&q, r.jid);
        if ((rc = job_save(c, &r)) < 0 ||
            (rc = ex(c, "DELETE FROM runnable WHERE jid = $1", &q, NULL)) < 0) {
            store_job_release(&r.j);
            return rc;
        }
    }
    if (x->out)
        *x->out = r.j;
    else
        store_job_release(&r.j);
    return 1;
}

static int pg_job_cancel(void *impl, const char *tenant, const char *job_id, struct store_job *out)
{
    struct jobs_ctx x = {.tenant = tenant, .job_id = job_id, .out = out};
    if (out)
        memset(out, 0, sizeof *out);
    return run_tx(impl, job_cancel_body, jobs_out_undo, &x);
}

static int job_delete_body(struct conn *c, void *vctx)
{
    struct jobs_ctx *x = vctx;
    struct jobrow r;
    int rc = job_load(c, x->tenant, x->job_id, 1, &r);
    if (rc <= 0)
        return rc;
    store_job_release(&r.j);
    if (!job_terminal(r.j.status))
        return -SLUICE_E_CONFLICT;
    rc = job_remove(c, r.jid);
    return rc < 0 ? rc : 1;
}

static int pg_job_delete(void *impl, const char *tenant, const char *job_id)
{
    struct jobs_ctx x = {.tenant = tenant, .job_id = job_id};
    return run_tx(impl, job_delete_body, NULL, &x);
}

/* ---- items ----------------------------------------------------------------------- */

struct items_ctx {
    const char *tenant, *job_id;
    struct store_item_filter f;
    int with_data;
    int64_t index, after_index;
    size_t limit;
    struct store_item *out;
    struct store_item *list;
    size_t n;
};

static int effective_status(int stored, int64_t idx, const struct jobrow *r)
{
    if (stored != ITEM_PENDING)
        return stored;
    if (r->cancel_at >= 0 && idx >= r->cancel_at)
        return ITEM_CANCELED;
    if (idx < r->cursor)
        return ITEM_PROCESSING;
    return ITEM_PENDING;
}

static void read_item(const PGresult *res, int row, const struct jobrow *r, int with_data,
                      struct store_item *it)
{
    memset(it, 0, sizeof *it);
    it->index = gi(res, row, 0);
    it->status = effective_status((int)gi(res, row, 1), it->index, r);
    it->attempts = (int)gi(res, row, 2);
    it->ref = gdup(res, row, 3, NULL);
    if (with_data)
        it->data = gdup(res, row, 4, &it->data_len);
    it->result = gdup(res, row, 5, NULL);
    gcopy(res, row, 6, it->error_code, sizeof it->error_code);
    it->error_message = gdup(res, row, 7, NULL);
    it->created_at = r->j.created_at;
    it->updated_at = gi(res, row, 8);
    if (!it->updated_at)
        it->updated_at = it->created_at;
    gcopy(res, row, 9, it->failed_step, sizeof it->failed_step);
    it->warnings = gdup(res, row, 10, NULL);
    it->parent_index = gi(res, row, 11);
}

static void items_out_undo(void *vctx)
{
    struct items_ctx *x = vctx;
    if (x->out) {
        store_item_release(x->out);
        memset(x->out, 0, sizeof *x->out);
    }
    store_items_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}

static int item_get_body(struct conn *c, void *vctx)
{
    struct items_ctx *x = vctx;
    struct jobrow r;
    PGresult *res;
    int rc = job_load_visible(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    store_job_release(&r.j);
    if (x->index < 0 || x->index >= r.j.counts.total)
        return 0;
    struct prm p = {0};
    p_i64(&p, r.jid);
    p_i64(&p, x->index);
    rc =
        ex(c, "SELECT " ITEM_LIST_COLS ", events FROM items WHERE jid = $1 AND idx = $2", &p, &res);
    if (rc < 0)
        return rc;
    if (rc > 0) {
        read_item(res, 0, &r, 1, x->out);
        x->out->events = gdup(res, 0, 12, NULL);
        if (!x->out->events)
            x->out->events = xstrdup("[]");
    }
    PQclear(res);
    return rc > 0;
}

static int pg_item_get(void *impl, const char *tenant, const char *job_id, int64_t index,
                       struct store_item *out)
{
    struct items_ctx x = {.tenant = tenant, .job_id = job_id, .index = index, .out = out};
    memset(out, 0, sizeof *out);
    return run_tx(impl, item_get_body, items_out_undo, &x);
}

static int item_list_body(struct conn *c, void *vctx)
{
    struct items_ctx *x = vctx;
    struct jobrow r;
    PGresult *res;
    int rc = job_load_visible(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    store_job_release(&r.j);
    int64_t after = x->after_index < -1 ? -1 : x->after_index;
    struct prm p = {0};
    p_i64(&p, r.jid);
    p_i64(&p, after);
    p_str(&p, x->f.ref);
    p_str(&p, x->f.step);
    p_str(&p, x->f.code);
    p_i64(&p, (int64_t)x->limit);
    p_i64(&p, x->with_data);
    if (x->f.status == ITEM_FAILED) {
        /* Failed is never derived: the partial index items_failed serves this one. */
        rc = ex(c,
                "SELECT idx, status, attempts, ref, CASE WHEN $7 = 1 THEN data END, result, "
                "error_code, error_message, updated_at, failed_step, warnings, parent_index "
                "FROM items WHERE jid = $1 AND status = 3 AND idx > $2 "
                "AND ($3::text IS NULL OR ref = $3) AND ($4::text IS NULL OR failed_step = $4) "
                "AND ($5::text IS NULL OR error_code = $5) ORDER BY idx LIMIT $6",
                &p, &res);
    } else {
        p_i64(&p, x->f.status);
        p_i64(&p, r.cancel_at);
        p_i64(&p, r.cursor);
        rc = ex(c,
                "SELECT idx, status, attempts, ref, CASE WHEN $7 = 1 THEN data END, result, "
                "error_code, error_message, updated_at, failed_step, warnings, parent_index "
                "FROM items WHERE jid = $1 AND idx > $2 "
                "AND ($3::text IS NULL OR ref = $3) AND ($4::text IS NULL OR failed_step = $4) "
                "AND ($5::text IS NULL OR error_code = $5) AND ($8::int < 0 OR "
                "(CASE WHEN status <> 0 THEN status WHEN $9::bigint >= 0 AND idx >= $9 THEN 5 "
                "WHEN idx < $10 THEN 1 ELSE 0 END) = $8) ORDER BY idx LIMIT $6",
                &p, &res);
    }
    if (rc < 0)
        return rc;
    x->list = xcalloc(x->limit ? x->limit : 1, sizeof *x->list);
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_item(res, i, &r, x->with_data, &x->list[x->n++]);
    PQclear(res);
    return 1;
}

static int pg_item_list(void *impl, const char *tenant, const char *job_id,
                        const struct store_item_filter *f, int64_t after_index, size_t limit,
                        int with_data, struct store_item **out, size_t *n)
{
    struct items_ctx x = {.tenant = tenant,
                          .job_id = job_id,
                          .f = {.status = -1},
                          .after_index = after_index,
                          .limit = limit,
                          .with_data = with_data ? 1 : 0};
    if (f)
        x.f = *f;
    if (x.f.status < 0)
        x.f.status = -1;
    int rc = run_tx(impl, item_list_body, items_out_undo, &x);
    *out = rc <= 0 ? NULL : x.list;
    *n = rc <= 0 ? 0 : x.n;
    if (rc == 0)
        store_items_free(x.list, x.n);
    return rc;
}

/* ---- events ---------------------------------------------------------------------- */

static void event_add(struct buf *b, const char *at, const char *stage, const char *step,
                      const char *level, const char *code, const char *message)
{
    if (b->len > 1)
        buf_putc(b, ',');
    buf_puts(b, "{\"at\":\"");
    buf_puts(b, at);
    buf_puts(b, "\",\"stage\":");
    buf_json_str(b, stage, strlen(stage));
    if (step) {
        buf_puts(b, ",\"step\":");
        buf_json_str(b, step, strlen(step));
    }
    buf_puts(b, ",\"level\":");
    buf_json_str(b, level, strlen(level));
    buf_puts(b, ",\"code\":");
    buf_json_str(b, code, strlen(code));
    buf_puts(b, ",\"message\":");
    buf_json_str(b, message, strlen(message));
    buf_putc(b, '}');
}

static void events_add_array(struct buf *b, const char *arr)
{
    if (!arr)
        return;
    const char *p = arr, *e = arr + strlen(arr);
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t'))
        e--;
    if (e - p < 2 || *p != '[' || e[-1] != ']')
        return;
    p++, e--;
    const char *q0 = p;
    while (q0 < e && (*q0 == ' ' || *q0 == '\n' || *q0 == '\r' || *q0 == '\t'))
        q0++;
    if (q0 == e)
        return;
    if (b->len > 1)
        buf_putc(b, ',');
    buf_append(b, p, (size_t)(e - p));
}

/* ---- documents ------------------------------------------------------------------- */

struct doc_result {
    int64_t version, updated_at;
    int created;
    const char *data;
    size_t data_len;
};

/* Applies one document change (the code path of store_doc_write and of the doc ops of
 * store_complete). An upsert without If-Match is one statement whose version is
 * relative (version + 1 under the row lock), so concurrent writers on several nodes
 * never apply the same version twice; the other changes read the row FOR UPDATE
 * first. 0 applied ([out] w), -SLUICE_E_DOCUMENT_NOT_FOUND, -SLUICE_E_INVALID_DATA,
 * -SLUICE_E_PRECONDITION_FAILED or a store error. */
static int doc_apply(struct conn *c, const char *tenant, const char *coll, const char *ref,
                     size_t ref_len, enum store_op op, const char *data, size_t data_len,
                     int64_t if_match, const char *job_id, int64_t item_index, struct doc_result *w)
{
    PGresult *res = NULL;
    int64_t version = 0;
    int live = 0, rc;
    memset(w, 0, sizeof *w);
    if (op != STORE_OP_UPSERT || if_match >= 0) {
        struct prm p = {0};
        p_str(&p, tenant);
        p_str(&p, coll);
        p_strn(&p, ref, ref_len);
        rc = ex(c,
                "SELECT data, version, deleted FROM docs WHERE tenant = $1 AND collection = $2 "
                "AND ref = $3::text FOR UPDATE",
                &p, &res);
        if (rc < 0)
            goto out;
        if (rc > 0) {
            version = gi(res, 0, 1);
            live = gi(res, 0, 2) == 0;
        }
        rc = -SLUICE_E_PRECONDITION_FAILED;
        if (if_match >= 0 && if_match != (live ? version : 0))
            goto out;
    }
    switch (op) {
    case STORE_OP_UPSERT:
        rc = -SLUICE_E_INVALID_DATA;
        if (!data)
            goto out;
        w->data = data;
        w->data_len = data_len;
        break;
    case STORE_OP_PATCH: {
        rc = -SLUICE_E_DOCUMENT_NOT_FOUND;
        if (!live)
            goto out;
        rc = -SLUICE_E_INVALID_DATA;
        if (!data || gnull(res, 0, 0))
            goto out;
        if ((rc = store_doc_merge(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), data,
                                  data_len, &c->tmp)) < 0)
            goto out;
        w->data = buf_cstr(&c->tmp);
        w->data_len = c->tmp.len;
        break;
    }
    case STORE_OP_DELETE:
        rc = -SLUICE_E_DOCUMENT_NOT_FOUND;
        if (!live)
            goto out;
        break;
    default:
        rc = -SLUICE_E_INVALID_PARAMETER;
        goto out;
    }
    /* Checked on the result, not the request: two patches within the limit each must
     * not leave a document twice its size. */
    rc = -SLUICE_E_ITEM_TOO_LARGE;
    if (op != STORE_OP_DELETE && w->data_len > c->max_doc_bytes)
        goto out;
    PQclear(res);
    res = NULL;
    struct prm q = {0};
    p_str(&q, tenant);
    p_str(&q, coll);
    p_strn(&q, ref, ref_len);
    p_strn(&q, w->data, w->data_len);
    p_i64(&q, op == STORE_OP_DELETE);
    p_i64(&q, c->now);
    p_str(&q, job_id ? job_id : "");
    p_i64(&q, item_index);
    rc = ex(c,
            "INSERT INTO docs AS d (tenant, collection, ref, data, version, deleted, "
            "prev_deleted, updated_at, job_id, item_index) VALUES($1, $2, $3::text, $4::text, 1, "
            "$5, 1, $6, $7, $8) ON CONFLICT (tenant, collection, ref) DO UPDATE SET "
            "data = excluded.data, version = d.version + 1, deleted = excluded.deleted, "
            "prev_deleted = d.deleted, updated_at = excluded.updated_at, "
            "job_id = excluded.job_id, item_index = excluded.item_index "
            "RETURNING version, prev_deleted",
            &q, &res);
    if (rc < 0)
        goto out;
    w->version = gi(res, 0, 0);
    w->created = op == STORE_OP_UPSERT && gi(res, 0, 1) != 0;
    w->updated_at = c->now;
    rc = 0;
    if (if_match >= 0 && w->version != version + 1)
        rc = -SLUICE_E_PRECONDITION_FAILED; /* created meanwhile by another writer */
out:
    PQclear(res);
    return rc;
}

struct doc_ctx {
    const char *tenant, *coll, *ref, *after_ref;
    enum store_op op;
    const char *data;
    size_t data_len, limit;
    int64_t if_match;
    struct store_doc *out;
    int *created;
    struct store_doc *list;
    size_t n;
};

static void doc_out_undo(void *vctx)
{
    struct doc_ctx *x = vctx;
    if (x->out) {
        store_doc_release(x->out);
        memset(x->out, 0, sizeof *x->out);
    }
    store_docs_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}

static void read_doc(const PGresult *r, int row, int first, struct store_doc *d)
{
    d->data = gdup(r, row, first, &d->data_len);
    d->version = gi(r, row, first + 1);
    d->updated_at = gi(r, row, first + 2);
    gcopy(r, row, first + 3, d->job_id, sizeof d->job_id);
    d->item_index = gi(r, row, first + 4);
}

static int doc_get_body(struct conn *c, void *vctx)
{
    struct doc_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_str(&p, x->tenant);
    p_str(&p, x->coll);
    p_str(&p, x->ref);
    int rc = ex(c,
                "SELECT data, version, updated_at, job_id, item_index FROM docs WHERE tenant = $1 "
                "AND collection = $2 AND ref = $3 AND deleted = 0",
                &p, &r);
    if (rc <= 0)
        return rc;
    x->out->ref = xstrdup(x->ref);
    read_doc(r, 0, 0, x->out);
    PQclear(r);
    return 1;
}

static int pg_doc_get(void *impl, const char *tenant, const char *collection, const char *ref,
                      struct store_doc *out)
{
    struct doc_ctx x = {.tenant = tenant, .coll = collection, .ref = ref, .out = out};
    memset(out, 0, sizeof *out);
    return run_tx(impl, doc_get_body, doc_out_undo, &x);
}

static int doc_write_body(struct conn *c, void *vctx)
{
    struct doc_ctx *x = vctx;
    struct doc_result w;
    int rc = doc_apply(c, x->tenant, x->coll, x->ref, strlen(x->ref), x->op, x->data, x->data_len,
                       x->if_match, "", -1, &w);
    if (rc < 0)
        return rc;
    if (x->created)
        *x->created = w.created;
    if (x->out) {
        store_doc_release(x->out);
        memset(x->out, 0, sizeof *x->out);
        x->out->ref = xstrdup(x->ref);
        x->out->data = w.data ? xstrndup(w.data, w.data_len) : NULL;
        x->out->data_len = w.data ? w.data_len : 0;
        x->out->version = w.version;
        x->out->updated_at = w.updated_at;
        x->out->item_index = -1;
    }
    return 0;
}

static int pg_doc_write(void *impl, const char *tenant, const char *collection, const char *ref,
                        enum store_op op, const char *data, size_t data_len, int64_t if_match,
                        struct store_doc *out, int *created)
{
    struct doc_ctx x = {.tenant = tenant,
                        .coll = collection,
                        .ref = ref,
                        .op = op,
                        .data = data,
                        .data_len = data_len,
                        .if_match = if_match,
                        .out = out,
                        .created = created};
    if (out)
        memset(out, 0, sizeof *out);
    return run_tx(impl, doc_write_body, doc_out_undo, &x);
}

static int doc_list_body(struct conn *c, void *vctx)
{
    struct doc_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_str(&p, x->tenant);
    p_str(&p, x->coll);
    p_str(&p, x->after_ref ? x->after_ref : "");
    p_i64(&p, (int64_t)x->limit);
    int rc = ex(c,
                "SELECT ref, data, version, updated_at, job_id, item_index FROM docs "
                "WHERE tenant = $1 AND collection = $2 AND ref > $3 AND deleted = 0 "
                "ORDER BY ref LIMIT $4",
                &p, &r);
    if (rc < 0)
        return rc;
    x->list = xcalloc(x->limit ? x->limit : 1, sizeof *x->list);
    for (int i = 0; i < rc && x->n < x->limit; i++) {
        struct store_doc *d = &x->list[x->n++];
        d->ref = gdup(r, i, 0, NULL);
        read_doc(r, i, 1, d);
    }
    PQclear(r);
    return 0;
}

static int pg_doc_list(void *impl, const char *tenant, const char *collection,
                       const char *after_ref, size_t limit, struct store_doc **out, size_t *n)
{
    struct doc_ctx x = {
        .tenant = tenant, .coll = collection, .after_ref = after_ref, .limit = limit};
    int rc = run_tx(impl, doc_list_body, doc_out_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

/* ---- claims ---------------------------------------------------------------------- */

struct claim_ctx {
    struct pg *s;
    size_t max_items;
    int64_t lease_ms;
    int max_attempts;
    const struct store_claim_gate *gate;
    int max_active_jobs;
    struct store_claim *out;
    const struct store_claim *c;
    struct store_outcome *outs;
    size_t n;
    const struct store_step_count *steps;
    size_t nsteps;
};

static void claim_items_free(struct store_claim_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].ref);
        free(items[i].data);
    }
    free(items);
}

static int cmp_claim_item(const void *a, const void *b)
{
    const struct store_claim_item *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void fill_claim(struct store_claim *out, const struct jobrow *r, int64_t claim_id,
                       const char *token, int64_t lo, int64_t hi, int64_t now, int64_t lease_until,
                       struct store_claim_item *items, size_t n)
{
    memset(out, 0, sizeof *out);
    out->claim_id = claim_id;
    copy_str(out->token, sizeof out->token, token);
    copy_str(out->job_id, sizeof out->job_id, r->j.id);
    copy_str(out->tenant, sizeof out->tenant, r->j.tenant);
    copy_str(out->workflow, sizeof out->workflow, r->j.workflow);
    out->from = lo;
    out->to = hi;
    out->claimed_at = now;
    out->lease_until = lease_until;
    out->n = n;
    out->items = items;
}

/* Applies relative count changes to job jid and finishes it when done (the job row
 * is locked from here to COMMIT). progress: also sets last_progress_at. */
static int job_counts_add(struct conn *c, int64_t jid, int64_t processing, int64_t failed,
                          int64_t canceled, int progress, struct jobrow *out)
{
    struct prm p = {0};
    struct jobrow r;
    p_i64(&p, jid);
    p_i64(&p, processing);
    p_i64(&p, failed);
    p_i64(&p, canceled);
    p_i64(&p, c->now);
    p_i64(&p, progress);
    int rc = job_query(c,
                       "UPDATE jobs SET processing = processing + $2, failed = failed + $3, "
                       "canceled = canceled + $4, updated_at = $5, last_progress_at = "
                       "CASE WHEN $6 = 1 THEN $5 ELSE last_progress_at END WHERE jid = $1 "
                       "RETURNING " JOB_COLS,
                       &p, &r);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    rc = progress ? job_finish_if_done(c, &r) : 0;
    if (out && rc >= 0)
        *out = r;
    else
        store_job_release(&r.j);
    return rc;
}

/* Settles a claim whose holder is gone (see sqlite.c): canceled job -> its pending
 * items Canceled; else unless released each counts the lost attempt and fails at
 * max_attempts. Items left are re-leased to out (1); else the claim goes (0). */
static int settle_claim(struct conn *c, struct pg *s, int64_t claim_id, int64_t jid, int64_t lo,
                        int64_t hi, int released, int max_attempts, int64_t lease_ms,
                        struct store_claim *out)
{
    struct jobrow r;
    PGresult *res = NULL;
    struct store_claim_item *items = NULL;
    size_t n = 0;
    char ts[25], token[STORE_ID_MAX];
    int64_t failed = 0, canceled = 0;
    int rc = job_load_jid(c, jid, &r);
    if (rc < 0)
        return rc;
    clock_fmt_ms(c->now, ts);
    int canceling = r.j.status == JOB_CANCELING || r.j.status == JOB_CANCELED;
    struct prm p = {0};
    p_i64(&p, jid);
    p_i64(&p, lo);
    p_i64(&p, hi);
    p_i64(&p, c->now);
    if (canceling) {
        rc = ex(c,
                "UPDATE items SET status = 5, updated_at = $4 WHERE jid = $1 AND idx >= $2 "
                "AND idx < $3 AND status = 0",
                &p, NULL);
        if (rc < 0)
            goto out;
        canceled = rc;
        goto drop;
    }
    if (released) {
        rc = ex(c,
                "SELECT idx, status, attempts, ref, data FROM items WHERE jid = $1 AND idx >= $2 "
                "AND idx < $3 AND status = 0 AND $4::bigint > 0 ORDER BY idx",
                &p, &res);
    } else {
        p_str(&p, ts);
        p_i64(&p, max_attempts);
        p_str(&p, sluice_err_code(SLUICE_E_MAX_ATTEMPTS));
        rc = ex(c,
                "UPDATE items SET attempts = attempts + 1, updated_at = $4, "
                "status = CASE WHEN $6 > 0 AND attempts + 1 >= $6 THEN 3 ELSE 0 END, "
                "error_code = CASE WHEN $6 > 0 AND attempts + 1 >= $6 THEN $7 ELSE error_code "
                "END, error_message = CASE WHEN $6 > 0 AND attempts + 1 >= $6 THEN "
                "format('abandoned after %s attempts', attempts + 1) ELSE error_message END, "
                "events = (SELECT CASE WHEN events IS NULL OR events = '[]' THEN '[' || e || ']' "
                "ELSE left(events, -1) || ',' || e || ']' END FROM (SELECT format("
                "'{\"at\":\"%s\",\"stage\":\"claim\",\"level\":\"warn\",\"code\":\"LeaseExpired\","
                "\"message\":\"lease expired on attempt %s; item given to another worker\"}', "
                "$5::text, attempts + 1) || CASE WHEN $6 > 0 AND attempts + 1 >= $6 THEN format("
                "',{\"at\":\"%s\",\"stage\":\"claim\",\"level\":\"error\",\"code\":\"%s\","
                "\"message\":\"abandoned after %s attempts\"}', $5::text, $7::text, attempts + 1)"
                " ELSE '' END AS e) ev) "
                "WHERE jid = $1 AND idx >= $2 AND idx < $3 AND status = 0 "
                "RETURNING idx, status, attempts, ref, data",
                &p, &res);
    }
    if (rc < 0)
        goto out;
    items = xcalloc((size_t)rc + 1, sizeof *items);
    for (int i = 0; i < rc; i++) {
        if (gi(res, i, 1) != ITEM_PENDING) {
            failed++;
            continue;
        }
        struct store_claim_item *it = &items[n++];
        it->index = gi(res, i, 0);
        it->attempts = (int)gi(res, i, 2);
        it->ref = gdup(res, i, 3, NULL);
        it->data = gdup(res, i, 4, &it->data_len);
    }
    PQclear(res);
    res = NULL;
    if (n > 0 && out) {
        qsort(items, n, sizeof *items, cmp_claim_item);
        if ((rc = ids_random("lt_", 24, token)) < 0)
            goto out;
        struct prm q = {0};
        p_i64(&q, claim_id);
        p_str(&q, token);
        p_i64(&q, (int64_t)n);
        p_i64(&q, c->now + lease_ms);
        p_i64(&q, c->now);
        p_str(&q, s->node);
        rc = ex(c,
                "UPDATE claims SET token = $2, remaining = $3, lease_until = $4, claimed_at = $5, "
                "released = 0, node = $6 WHERE claim_id = $1",
                &q, NULL);
        if (rc < 0)
            goto out;
        if (failed > 0 && (rc = job_counts_add(c, jid, -failed, failed, 0, 0, NULL)) < 0)
            goto out;
        fill_claim(out, &r, claim_id, token, lo, hi, c->now, c->now + lease_ms, items, n);
        items = NULL;
        n = 0;
        rc = 1;
        goto out;
    }
    if (n > 0) { /* only reachable without out: keep the claim as is */
        rc = 0;
        goto out;
    }
drop:;
    struct prm d = {0};
    p_i64(&d, claim_id);
    if ((rc = ex(c, "DELETE FROM claims WHERE claim_id = $1", &d, NULL)) < 0)
        goto out;
    rc = job_counts_add(c, jid, -(failed + canceled), failed, canceled, 1, NULL);
    if (rc > 0)
        rc = 0;
out:
    PQclear(res);
    claim_items_free(items, n);
    store_job_release(&r.j);
    return rc;
}

/* A new range from the cursor of job jid, whose runnable row the caller holds:
 * 1 claimed into x->out, 0 nothing runnable in it now. */
static int claim_new_range(struct conn *c, int64_t jid, const struct claim_ctx *x)
{
    struct jobrow r;
    PGresult *res = NULL;
    struct store_claim_item *items = NULL;
    size_t n = 0;
    char token[STORE_ID_MAX];
    int rc = job_load_jid(c, jid, &r);
    if (rc < 0)
        return rc;
    rc = 0;
    if ((r.j.status != JOB_NOT_STARTED && r.j.status != JOB_RUNNING) ||
        r.cursor >= r.j.counts.total)
        goto out;
    int64_t lo = r.cursor, hi = r.cursor + (int64_t)x->max_items;
    if (hi > r.j.counts.total)
        hi = r.j.counts.total;
    struct prm p = {0};
    p_i64(&p, jid);
    p_i64(&p, lo);
    p_i64(&p, hi);
    /* Each item with the status of its previous same-ref item when that one lies
     * before the range (-1 otherwise): the range stops before one still pending. */
    rc = ex(c,
            "SELECT i.idx, i.attempts, i.ref, i.data, CASE WHEN i.prev_idx >= 0 AND i.prev_idx < "
            "$2 THEN coalesce((SELECT p.status FROM items p WHERE p.jid = i.jid AND p.idx = "
            "i.prev_idx), 0) ELSE -1 END FROM items i WHERE i.jid = $1 AND i.idx >= $2 "
            "AND i.idx < $3 ORDER BY i.idx",
            &p, &res);
    if (rc < 0)
        goto out;
    items = xcalloc((size_t)rc + 1, sizeof *items);
    for (int i = 0; i < rc; i++) {
        if (gi(res, i, 4) == ITEM_PENDING)
            break; /* same-ref order: wait until the previous item of this ref is done */
        struct store_claim_item *it = &items[n++];
        it->index = gi(res, i, 0);
        it->attempts = (int)gi(res, i, 1);
        it->ref = gdup(res, i, 2, NULL);
        it->data = gdup(res, i, 3, &it->data_len);
    }
    PQclear(res);
    res = NULL;
    rc = 0;
    if (n == 0)
        goto out;
    if (x->gate) {
        size_t granted =
            x->gate->admit(x->gate->ctx, r.j.tenant, r.j.id, r.j.uses ? r.j.uses : "", n);
        while (n > granted) {
            n--;
            free(items[n].ref);
            free(items[n].data);
        }
        if (n == 0)
            goto out;
    }
    hi = lo + (int64_t)n;
    if ((rc = ids_random("lt_", 24, token)) < 0)
        goto out;
    struct prm q = {0};
    p_str(&q, token);
    p_i64(&q, jid);
    p_i64(&q, lo);
    p_i64(&q, hi);
    p_i64(&q, c->now + x->lease_ms);
    p_i64(&q, c->now);
    p_str(&q, x->s->node);
    rc = ex(c,
            "INSERT INTO claims(token, jid, lo, hi, remaining, lease_until, claimed_at, node) "
            "VALUES($1, $2, $3, $4, $4::bigint - $3::bigint, $5, $6, $7) RETURNING claim_id",
            &q, &res);
    if (rc < 0)
        goto out;
    int64_t claim_id = gi(res, 0, 0);
    PQclear(res);
    res = NULL;
    struct prm u = {0};
    p_i64(&u, jid);
    p_i64(&u, hi);
    p_i64(&u, (int64_t)n);
    p_i64(&u, claim_id);
    p_i64(&u, c->now);
    rc = ex(c,
            "UPDATE jobs SET status = CASE WHEN status = 1 THEN 2 ELSE status END, "
            "started_at = CASE WHEN status = 1 THEN $5 ELSE started_at END, "
            "win_done = CASE WHEN win_at = 0 THEN 0 ELSE win_done END, "
            "win_at = CASE WHEN win_at = 0 THEN $5 ELSE win_at END, next_idx = $2, "
            "pending = pending - $3, processing = processing + $3, last_claim = $4, "
            "updated_at = $5 WHERE jid = $1",
            &u, NULL);
    if (rc < 0)
        goto out;
    struct prm v = {0};
    p_i64(&v, jid);
    p_i64(&v, claim_id);
    rc = ex(c,
            hi >= r.j.counts.total
                ? "DELETE FROM runnable WHERE jid = $1 AND $2::bigint > 0"
                : "UPDATE runnable SET last_claim = $2, started = 1 WHERE jid = $1",
            &v, NULL);
    if (rc < 0)
        goto out;
    if (r.j.status == JOB_NOT_STARTED)
        r.j.status = JOB_RUNNING;
    fill_claim(x->out, &r, claim_id, token, lo, hi, c->now, c->now + x->lease_ms, items, n);
    items = NULL;
    n = 0;
    rc = 1;
out:
    PQclear(res);
    claim_items_free(items, n);
    store_job_release(&r.j);
    return rc;
}

/* Tenant turn (see FAIRNESS in sqlite.c). */
static int tenant_turn(struct conn *c, const char *tenant, int64_t claim_id)
{
    struct prm p = {0};
    p_str(&p, tenant);
    p_i64(&p, claim_id);
    int rc = ex(c,
                "INSERT INTO tenants AS t (tenant, last_claim) VALUES($1, $2) "
                "ON CONFLICT(tenant) DO UPDATE SET "
                "turns = CASE WHEN t.turns + 1 >= t.weight THEN 0 ELSE t.turns + 1 END, "
                "last_claim = CASE WHEN t.turns + 1 >= t.weight THEN $2 ELSE t.last_claim END",
                &p, NULL);
    return rc < 0 ? rc : 0;
}

static int claim_body(struct conn *c, void *vctx)
{
    struct claim_ctx *x = vctx;
    PGresult *r = NULL;
    int rc;
    memset(x->out, 0, sizeof *x->out);

    /* 1. Expired (or released) claims first; SKIP LOCKED: one another node settles
     *    or completes right now is not ours to take. */
    int settled = 0;
    for (int guard = 0; guard < 256; guard++, settled++) {
        struct prm p = {0};
        p_i64(&p, c->now);
        rc = ex(c,
                "SELECT claim_id, jid, lo, hi, released FROM claims WHERE lease_until <= $1 "
                "ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED",
                &p, &r);
        if (rc <= 0)
            break;
        int64_t claim_id = gi(r, 0, 0), jid = gi(r, 0, 1), lo = gi(r, 0, 2), hi = gi(r, 0, 3);
        int released = (int)gi(r, 0, 4);
        PQclear(r);
        r = NULL;
        rc = settle_claim(c, x->s, claim_id, jid, lo, hi, released, x->max_attempts, x->lease_ms,
                          x->out);
        if (rc != 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    PQclear(r);
    r = NULL;

    /* 2. A new range: the tenant, then its job (see FAIRNESS in sqlite.c). */
    char tenants[16][STORE_NAME_MAX];
    int ntenants = 0, tries = 0;
    rc = ex(c,
            "SELECT rt.tenant FROM (SELECT DISTINCT tenant FROM runnable) rt LEFT JOIN tenants t "
            "ON t.tenant = rt.tenant ORDER BY coalesce(t.last_claim, 0), rt.tenant LIMIT 16",
            NULL, &r);
    if (rc < 0)
        return rc;
    for (int i = 0; i < rc && i < 16; i++)
        gcopy(r, i, 0, tenants[ntenants++], STORE_NAME_MAX);
    PQclear(r);
    r = NULL;
    int64_t tried[CLAIM_TRIES];
    int ntried = 0;
    for (int wait = 0; wait < 2; wait++) {
        for (int t = 0; t < ntenants && tries < CLAIM_TRIES; t++) {
            int at_cap = 0;
            if (x->max_active_jobs > 0) {
                struct prm p = {0};
                p_str(&p, tenants[t]);
                if ((rc = ex(c, "SELECT count(*) FROM jobs WHERE tenant = $1 AND status IN (2, 3)",
                             &p, &r)) < 0)
                    return rc;
                at_cap = gi(r, 0, 0) >= x->max_active_jobs;
                PQclear(r);
                r = NULL;
            }
            /* First pass: the best job nobody is claiming from (SKIP LOCKED). Second
             * pass, only when a candidate was busy: wait for the best one. */
            for (; tries < CLAIM_TRIES; tries++) {
                struct prm p = {0};
                p_str(&p, tenants[t]);
                p_i64(&p, at_cap);
                p_str(&p, jid_array(&c->arr[0], tried, ntried));
                rc = ex(c,
                        wait ? "SELECT jid FROM runnable WHERE tenant = $1 AND ($2 = 0 OR "
                               "started = 1) AND jid <> ALL($3::bigint[]) ORDER BY priority DESC, "
                               "last_claim, jid LIMIT 1 FOR UPDATE"
                             : "SELECT jid FROM runnable WHERE tenant = $1 AND ($2 = 0 OR "
                               "started = 1) AND jid <> ALL($3::bigint[]) ORDER BY priority DESC, "
                               "last_claim, jid LIMIT 1 FOR UPDATE SKIP LOCKED",
                        &p, &r);
                if (rc < 0)
                    return rc;
                int64_t jid = rc > 0 ? gi(r, 0, 0) : 0;
                PQclear(r);
                r = NULL;
                if (rc == 0)
                    break;
                tried[ntried++] = jid;
                rc = claim_new_range(c, jid, x);
                if (rc < 0)
                    return rc;
                if (rc == 0) {
                    if (wait)
                        break; /* waited once; the next poll tries again */
                    continue;
                }
                rc = tenant_turn(c, tenants[t], x->out->claim_id);
                return rc < 0 ? rc : 1;
            }
        }
        /* No waiting while this transaction holds job rows of settled claims: the
         * holder of the runnable row may be waiting for one of them. */
        if (wait || tries >= CLAIM_TRIES || settled)
            break;
        /* Was a started job passed over because another claim held it? */
        struct prm p = {0};
        p_str(&p, jid_array(&c->arr[0], tried, ntried));
        rc = ex(c, "SELECT 1 FROM runnable WHERE jid <> ALL($1::bigint[]) AND started = 1 LIMIT 1",
                &p, NULL);
        if (rc <= 0)
            return rc;
    }
    return 0;
}

static void claim_undo(void *vctx)
{
    struct claim_ctx *x = vctx;
    store_claim_release(x->out);
    memset(x->out, 0, sizeof *x->out);
}

static int pg_claim(void *impl, const struct store_claim_opts *o, struct store_claim *out)
{
    struct claim_ctx x = {.s = impl,
                          .max_items = o->max_items ? o->max_items : 1,
                          .lease_ms = o->lease_ms,
                          .max_attempts = o->max_attempts,
                          .max_active_jobs = o->max_active_jobs,
                          .gate = o->gate,
                          .out = out};
    memset(out, 0, sizeof *out);
    return run_tx(impl, claim_body, claim_undo, &x);
}

/* The claim's row, locked, if c's token still holds it: 1, or 0 when taken over. */
static int claim_check(struct conn *c, const struct store_claim *cl, int64_t *jid, int64_t *lo,
                       int64_t *hi, int64_t *remaining)
{
    struct prm p = {0};
    PGresult *r;
    p_i64(&p, cl->claim_id);
    p_str(&p, cl->token);
    int rc = ex(c,
                "SELECT jid, lo, hi, remaining FROM claims WHERE claim_id = $1 AND token = $2 "
                "AND token <> '' FOR UPDATE",
                &p, &r);
    if (rc <= 0)
        return rc;
    *jid = gi(r, 0, 0);
    *lo = gi(r, 0, 1);
    *hi = gi(r, 0, 2);
    *remaining = gi(r, 0, 3);
    PQclear(r);
    return 1;
}

static const struct store_claim_item *claim_find(const struct store_claim *cl, int64_t index)
{
    size_t lo = 0, hi = cl->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cl->items[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < cl->n && cl->items[lo].index == index ? &cl->items[lo] : NULL;
}

/* As in sqlite.c: applies the doc ops of outcome o in order. 0 all applied (c->res
 * holds the last op's result JSON), 1 an op could not apply, or a store error. */
static int apply_ops(struct conn *c, const struct jobrow *r, const struct store_claim_item *ci,
                     struct store_outcome *o, const char *ts, char *msg, size_t cap)
{
    struct doc_result w;
    for (size_t j = 0; j < o->nops; j++) {
        struct store_doc_op *op = &o->ops[j];
        const char *coll = op->collection ? op->collection : "";
        const char *ref = op->ref ? op->ref : ci->ref;
        size_t ref_len = strlen(ref);
        int rc =
            doc_apply(c, r->j.tenant, coll, ref, ref_len, op->op, op->data ? op->data : ci->data,
                      op->data ? op->data_len : ci->data_len, -1, r->j.id, o->index, &w);
        if (rc == -SLUICE_E_DOCUMENT_NOT_FOUND || rc == -SLUICE_E_INVALID_DATA ||
            rc == -SLUICE_E_ITEM_TOO_LARGE) {
            op->error = rc;
            if (rc == -SLUICE_E_DOCUMENT_NOT_FOUND)
                snprintf(msg, cap, "%s/%s does not exist", coll, ref);
            else if (rc == -SLUICE_E_ITEM_TOO_LARGE)
                snprintf(msg, cap, "%s/%s would be larger than %zu bytes after the %s", coll, ref,
                         c->max_doc_bytes, op->op == STORE_OP_PATCH ? "patch" : "upsert");
            else
                snprintf(msg, cap, "%s/%s: data cannot be applied as %s", coll, ref,
                         op->op == STORE_OP_PATCH ? "a merge patch" : "a document");
            event_add(&c->ev, ts, "apply", op->step, "error", sluice_err_code(rc), msg);
            return 1;
        }
        if (rc < 0)
            return rc;
        op->version = w.version;
        op->created = w.created;
        snprintf(msg, cap, "%s/%s %sversion %lld", coll, ref,
                 op->op == STORE_OP_DELETE ? "deleted, " : "", (long long)w.version);
        event_add(&c->ev, ts, "apply", op->step, "info", "VersionWritten", msg);
        if (j + 1 == o->nops) {
            buf_reset(&c->res);
            buf_puts(&c->res, "{\"collection\":");
            buf_json_str(&c->res, coll, strlen(coll));
            buf_puts(&c->res, ",\"ref\":");
            buf_json_str(&c->res, ref, ref_len);
            buf_printf(&c->res, ",\"version\":%lld,\"created\":%s}", (long long)w.version,
                       w.created ? "true" : "false");
        }
    }
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* One document op of a batch (batch_upserts). */
struct bop {
    struct store_doc_op *op;
    const char *coll, *ref, *data;
    size_t data_len;
    int64_t index;
};

static int cmp_bop(const void *a, const void *b)
{
    const struct bop *x = a, *y = b;
    int d = strcmp(x->coll, y->coll);
    return d ? d : strcmp(x->ref, y->ref);
}

/* The fast path of store_complete's doc ops: when every op of the items this call
 * finishes is an upsert with data, each of a different document, they are applied by
 * one INSERT ... ON CONFLICT over arrays, in (collection, ref) order so that batches
 * running at once on several nodes lock documents in the same order. Fills each op's
 * version and created. 1 applied, 0 not eligible (nothing done: the caller applies
 * the ops one by one), or a store error. */
static int batch_upserts(struct conn *c, const struct jobrow *r, const struct store_claim *cl,
                         struct store_outcome *outs, size_t n, int64_t lo, int64_t hi,
                         const int64_t *pending, size_t npending)
{
    struct bop *b = NULL;
    size_t nb = 0, cap = 0;
    PGresult *res = NULL;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct store_outcome *o = &outs[i];
        const struct store_claim_item *ci = claim_find(cl, o->index);
        if (!ci || o->index < lo || o->index >= hi ||
            !bsearch(&o->index, pending, npending, sizeof *pending, cmp_i64))
            continue;
        for (size_t j = 0; j < o->nops; j++) {
            struct store_doc_op *op = &o->ops[j];
            const char *data = op->data ? op->data : ci->data;
            if (op->op != STORE_OP_UPSERT || !data)
                goto out; /* not eligible */
            if (nb == cap) {
                cap = cap ? cap * 2 : 256;
                b = xrealloc(b, cap * sizeof *b);
            }
            b[nb++] = (struct bop){
                op,   op->collection ? op->collection : "",   op->ref ? op->ref : ci->ref,
                data, op->data ? op->data_len : ci->data_len, o->index};
        }
    }
    if (nb < 2)
        goto out;
    qsort(b, nb, sizeof *b, cmp_bop);
    for (size_t i = 1; i < nb; i++)
        if (cmp_bop(&b[i - 1], &b[i]) == 0)
            goto out; /* one document twice: the ops must apply in order, one by one */
    struct buf *ac = &c->arr[1], *ar = &c->arr[2], *ad = &c->arr[3], *ai = &c->arr[4];
    arr_begin(ac);
    arr_begin(ar);
    arr_begin(ad);
    arr_begin(ai);
    for (size_t i = 0; i < nb; i++) {
        arr_str(ac, b[i].coll);
        arr_str(ar, b[i].ref);
        arr_strn(ad, b[i].data, b[i].data_len);
        arr_i64(ai, b[i].index);
    }
    struct prm p = {0};
    p_str(&p, r->j.tenant);
    p_i64(&p, c->now);
    p_str(&p, r->j.id);
    p_str(&p, arr_end(ac));
    p_str(&p, arr_end(ar));
    p_str(&p, arr_end(ad));
    p_str(&p, arr_end(ai));
    rc = ex(c,
            "INSERT INTO docs AS d (tenant, collection, ref, data, version, deleted, prev_deleted, "
            "updated_at, job_id, item_index) SELECT $1, u.coll, u.ref, u.data, 1, 0, 1, $2, $3, "
            "u.idx FROM unnest($4::text[], $5::text[], $6::text[], $7::bigint[]) WITH ORDINALITY "
            "AS u(coll, ref, data, idx, ord) ORDER BY u.ord "
            "ON CONFLICT (tenant, collection, ref) DO UPDATE SET data = excluded.data, "
            "version = d.version + 1, deleted = 0, prev_deleted = d.deleted, "
            "updated_at = excluded.updated_at, job_id = excluded.job_id, "
            "item_index = excluded.item_index RETURNING collection, ref, version, prev_deleted",
            &p, &res);
    if (rc < 0)
        goto out;
    if ((size_t)rc != nb) {
        rc = -SLUICE_E_INTERNAL;
        goto out;
    }
    for (int i = 0; i < (int)nb; i++) {
        struct bop key = {.coll = PQgetvalue(res, i, 0), .ref = PQgetvalue(res, i, 1)};
        struct bop *hit = bsearch(&key, b, nb, sizeof *b, cmp_bop);
        if (!hit) {
            rc = -SLUICE_E_INTERNAL;
            goto out;
        }
        hit->op->version = gi(res, i, 2);
        hit->op->created = gi(res, i, 3) != 0;
    }
    rc = 1;
out:
    PQclear(res);
    free(b);
    return rc;
}

/* The events and result of an outcome whose ops batch_upserts applied. */
static void batched_ops_events(struct conn *c, const struct store_claim_item *ci,
                               const struct store_outcome *o, const char *ts, char *msg, size_t cap)
{
    for (size_t j = 0; j < o->nops; j++) {
        const struct store_doc_op *op = &o->ops[j];
        const char *coll = op->collection ? op->collection : "";
        const char *ref = op->ref ? op->ref : ci->ref;
        snprintf(msg, cap, "%s/%s version %lld", coll, ref, (long long)op->version);
        event_add(&c->ev, ts, "apply", op->step, "info", "VersionWritten", msg);
        if (j + 1 == o->nops) {
            buf_reset(&c->res);
            buf_puts(&c->res, "{\"collection\":");
            buf_json_str(&c->res, coll, strlen(coll));
            buf_puts(&c->res, ",\"ref\":");
            buf_json_str(&c->res, ref, strlen(ref));
            buf_printf(&c->res, ",\"version\":%lld,\"created\":%s}", (long long)op->version,
                       op->created ? "true" : "false");
        }
    }
}

static int steps_add(struct conn *c, int64_t jid, const struct store_step_count *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!steps[i].step)
            continue;
        struct prm p = {0};
        p_i64(&p, jid);
        p_str(&p, steps[i].step);
        p_i64(&p, steps[i].passed);
        p_i64(&p, steps[i].failed);
        p_i64(&p, steps[i].skipped);
        int rc = ex(c,
                    "INSERT INTO job_steps AS s (jid, step, passed, failed, skipped) "
                    "VALUES($1, $2, $3, $4, $5) ON CONFLICT(jid, step) DO UPDATE SET "
                    "passed = s.passed + excluded.passed, failed = s.failed + excluded.failed, "
                    "skipped = s.skipped + excluded.skipped",
                    &p, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int complete_body(struct conn *c, void *vctx)
{
    struct claim_ctx *x = vctx;
    const struct store_claim *cl = x->c;
    struct jobrow r;
    PGresult *res = NULL;
    int64_t jid = 0, lo = 0, hi = 0, remaining = 0;
    int64_t done = 0, nsucc = 0, nfail = 0, nskip = 0;
    int64_t *pending = NULL;
    size_t npending = 0;
    char msg[STORE_NAME_MAX + 2 * 256 + 64], ts[25];
    memset(&r, 0, sizeof r);
    for (size_t i = 0; i < x->n; i++) {
        for (size_t j = 0; j < x->outs[i].nops; j++) {
            x->outs[i].ops[j].version = 0;
            x->outs[i].ops[j].created = 0;
            x->outs[i].ops[j].error = 0;
        }
    }
    int rc = claim_check(c, cl, &jid, &lo, &hi, &remaining);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_LEASE_LOST;
    clock_fmt_ms(c->now, ts);
    if ((rc = job_load_jid(c, jid, &r)) < 0)
        return rc;
    /* Lock the rows of the items this call reports that are still pending. */
    struct buf *bidx = &c->arr[0];
    arr_begin(bidx);
    for (size_t i = 0; i < x->n; i++)
        if (x->outs[i].index >= lo && x->outs[i].index < hi && claim_find(cl, x->outs[i].index))
            arr_i64(bidx, x->outs[i].index);
    struct prm p = {0};
    p_i64(&p, jid);
    p_str(&p, arr_end(bidx));
    p_i64(&p, lo);
    p_i64(&p, hi);
    rc = ex(c,
            "SELECT idx FROM items WHERE jid = $1 AND idx = ANY($2::bigint[]) AND status = 0 "
            "AND idx >= $3 AND idx < $4 ORDER BY idx FOR UPDATE",
            &p, &res);
    if (rc < 0)
        goto out;
    npending = (size_t)rc;
    pending = xcalloc(npending + 1, sizeof *pending);
    for (size_t i = 0; i < npending; i++)
        pending[i] = gi(res, (int)i, 0);
    PQclear(res);
    res = NULL;
    /* Duplicate indexes in outs: the first wins (see below), so no batch. */
    int batched = 0;
    {
        int dup = 0;
        int64_t *seen = xcalloc(x->n + 1, sizeof *seen);
        for (size_t i = 0; i < x->n; i++)
            seen[i] = x->outs[i].index;
        qsort(seen, x->n, sizeof *seen, cmp_i64);
        for (size_t i = 1; i < x->n; i++)
            dup |= seen[i] == seen[i - 1];
        free(seen);
        if (!dup && (rc = batch_upserts(c, &r, cl, x->outs, x->n, lo, hi, pending, npending)) < 0)
            goto out;
        batched = !dup && rc == 1;
    }
    struct buf *ai = &c->arr[1], *as = &c->arr[2], *ar = &c->arr[3], *ac = &c->arr[4],
               *am = &c->arr[5], *ae = &c->arr[6], *af = &c->arr[7], *aw = &c->arr[8];
    arr_begin(ai);
    arr_begin(as);
    arr_begin(ar);
    arr_begin(ac);
    arr_begin(am);
    arr_begin(ae);
    arr_begin(af);
    arr_begin(aw);
    for (size_t i = 0; i < x->n; i++) {
        struct store_outcome *o = &x->outs[i];
        const struct store_claim_item *ci = claim_find(cl, o->index);
        int status = o->status;
        const char *result = o->result, *code = o->error_code, *message = o->error_message;
        const char *failed_step = o->failed_step;
        if (!ci || o->index < lo || o->index >= hi)
            continue;
        if (status != ITEM_SUCCEEDED && status != ITEM_FAILED && status != ITEM_SKIPPED) {
            rc = -SLUICE_E_INVALID_PARAMETER;
            goto out;
        }
        int64_t *slot = bsearch(&o->index, pending, npending, sizeof *pending, cmp_i64);
        if (!slot || *slot < 0)
            continue; /* finished by an earlier call, or twice in this one */
        *slot = -1;
        buf_reset(&c->ev);
        buf_putc(&c->ev, '[');
        events_add_array(&c->ev, o->events);
        if (o->nops > 0 && batched) {
            batched_ops_events(c, ci, o, ts, msg, sizeof msg);
            if (!result && status != ITEM_FAILED)
                result = buf_cstr(&c->res);
        } else if (o->nops > 0) {
            rc = apply_ops(c, &r, ci, o, ts, msg, sizeof msg);
            if (rc < 0)
                goto out;
            if (rc == 1) {
                status = ITEM_FAILED;
                result = NULL;
                for (size_t j = 0; j < o->nops; j++)
                    if (o->ops[j].error) {
                        code = sluice_err_code(o->ops[j].error);
                        failed_step = o->ops[j].step;
                        break;
                    }
                message = msg;
            } else if (!result && status != ITEM_FAILED) {
                result = buf_cstr(&c->res);
            }
        }
        buf_putc(&c->ev, ']');
        if (status == ITEM_SUCCEEDED)
            code = message = failed_step = NULL;
        arr_i64(ai, o->index);
        arr_i64(as, status);
        arr_str(ar, result);
        arr_str(ac, code && *code ? code : NULL);
        arr_str(am, message);
        arr_str(ae, c->ev.len > 2 ? buf_cstr(&c->ev) : NULL);
        arr_str(af, failed_step && *failed_step ? failed_step : NULL);
        arr_str(aw, o->warnings);
        done++;
        if (status == ITEM_SUCCEEDED)
            nsucc++;
        else if (status == ITEM_FAILED)
            nfail++;
        else
            nskip++;
    }
    rc = 0;
    if (done == 0)
        goto out; /* a repeated call: its step tallies were counted the first time */
    struct prm u = {0};
    p_i64(&u, jid);
    p_i64(&u, c->now);
    p_str(&u, arr_end(ai));
    p_str(&u, arr_end(as));
    p_str(&u, arr_end(ar));
    p_str(&u, arr_end(ac));
    p_str(&u, arr_end(am));
    p_str(&u, arr_end(ae));
    p_str(&u, arr_end(af));
    p_str(&u, arr_end(aw));
    p_i64(&u, lo);
    p_i64(&u, hi);
    /* The range bounds keep the plan an index range scan of at most one claim's rows
     * even when the table's statistics are stale (a job just inserted). */
    rc = ex(c,
            "UPDATE items i SET status = u.st, attempts = i.attempts + 1, result = u.res, "
            "error_code = u.code, error_message = u.msg, events = CASE WHEN u.ev IS NULL THEN "
            "i.events WHEN i.events IS NULL OR i.events = '[]' THEN u.ev ELSE left(i.events, -1) "
            "|| ',' || substr(u.ev, 2) END, updated_at = $2, failed_step = u.fs, warnings = u.w "
            "FROM unnest($3::bigint[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], "
            "$9::text[], $10::text[]) AS u(idx, st, res, code, msg, ev, fs, w) "
            "WHERE i.jid = $1 AND i.idx = u.idx AND i.status = 0 AND i.idx >= $11 "
            "AND i.idx < $12",
            &u, NULL);
    if (rc < 0)
        goto out;
    if (rc != done) {
        rc = -SLUICE_E_INTERNAL;
        goto out;
    }
    store_job_release(&r.j);
    struct prm j = {0};
    p_i64(&j, jid);
    p_i64(&j, nsucc);
    p_i64(&j, nfail);
    p_i64(&j, nskip);
    p_i64(&j, done);
    p_i64(&j, c->now);
    p_i64(&j, WIN_MS);
    rc = job_query(c,
                   "UPDATE jobs SET succeeded = succeeded + $2, failed = failed + $3, "
                   "skipped = skipped + $4, processing = processing - $5, "
                   "last_progress_at = $6, updated_at = $6, "
                   "win_done = CASE WHEN $6 - win_at >= $7 THEN succeeded + failed + skipped "
                   "+ $5 ELSE win_done END, "
                   "win_at = CASE WHEN $6 - win_at >= $7 THEN $6 ELSE win_at END "
                   "WHERE jid = $1 RETURNING " JOB_COLS,
                   &j, &r);
    if (rc <= 0) {
        rc = rc < 0 ? rc : -SLUICE_E_INTERNAL;
        goto out;
    }
    if ((rc = job_finish_if_done(c, &r)) < 0)
        goto out;
    if ((rc = steps_add(c, jid, x->steps, x->nsteps)) < 0)
        goto out;
    remaining -= done;
    struct prm k = {0};
    p_i64(&k, cl->claim_id);
    p_i64(&k, remaining);
    rc = ex(c,
            remaining <= 0 ? "DELETE FROM claims WHERE claim_id = $1 AND $2::bigint <= 0"
                           : "UPDATE claims SET remaining = $2 WHERE claim_id = $1",
            &k, NULL);
    if (rc > 0)
        rc = 0;
out:
    PQclear(res);
    free(pending);
    store_job_release(&r.j);
    return rc;
}

static void complete_undo(void *vctx)
{
    struct claim_ctx *x = vctx;
    for (size_t i = 0; i < x->n; i++)
        for (size_t j = 0; j < x->outs[i].nops; j++) {
            x->outs[i].ops[j].version = 0;
            x->outs[i].ops[j].created = 0;
            x->outs[i].ops[j].error = 0;
        }
}

static int pg_complete(void *impl, const struct store_claim *c, struct store_outcome *outs,
                       size_t n, const struct store_step_count *steps, size_t nsteps)
{
    struct claim_ctx x = {
        .s = impl, .c = c, .outs = outs, .n = n, .steps = steps, .nsteps = nsteps};
    int rc = run_tx(impl, complete_body, complete_undo, &x);
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        for (size_t j = 0; j < outs[i].nops; j++) {
            if (outs[i].ops[j].error) {
                outs[i].status = ITEM_FAILED;
                outs[i].error_code = sluice_err_code(outs[i].ops[j].error);
                outs[i].failed_step = outs[i].ops[j].step;
                break;
            }
        }
    }
    return rc;
}

static int release_body(struct conn *c, void *vctx)
{
    struct claim_ctx *x = vctx;
    const struct store_claim *cl = x->c;
    struct jobrow r;
    int64_t jid = 0, lo = 0, hi = 0, remaining = 0;
    int rc = claim_check(c, cl, &jid, &lo, &hi, &remaining);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_LEASE_LOST;
    if ((rc = job_load_jid(c, jid, &r)) < 0)
        return rc;
    store_job_release(&r.j);
    if (r.j.status == JOB_CANCELING || r.j.status == JOB_CANCELED)
        return settle_claim(c, x->s, cl->claim_id, jid, lo, hi, 1, 0, 0, NULL);
    struct prm p = {0};
    p_i64(&p, cl->claim_id);
    p_i64(&p, c->now);
    rc = ex(c,
            "UPDATE claims SET token = '', lease_until = 0, claimed_at = $2, released = 1 "
            "WHERE claim_id = $1",
            &p, NULL);
    if (rc < 0)
        return rc;
    return notify_work(c); /* the items are runnable again: wake a node */
}

static int pg_release(void *impl, const struct store_claim *c)
{
    struct claim_ctx x = {.s = impl, .c = c};
    return run_tx(impl, release_body, NULL, &x);
}

/* ---- stats ----------------------------------------------------------------------- */

static int stats_body(struct conn *c, void *vctx)
{
    struct store_stats *st = vctx;
    PGresult *r;
    memset(st, 0, sizeof *st);
    int rc = ex(c,
                "SELECT status, count(*), coalesce(sum(pending), 0), coalesce(sum(processing), 0) "
                "FROM jobs GROUP BY status",
                NULL, &r);
    if (rc < 0)
        return rc;
    for (int i = 0; i < rc; i++) {
        int status = (int)gi(r, i, 0);
        if (status >= 0 && status < 7)
            st->jobs_by_status[status] = gi(r, i, 1);
        st->items_pending += gi(r, i, 2);
        st->items_processing += gi(r, i, 3);
    }
    PQclear(r);
    struct prm p = {0};
    p_i64(&p, c->now);
    if ((rc = ex(c, "SELECT count(*) FROM claims WHERE lease_until > $1", &p, &r)) < 0)
        return rc;
    st->claims_active = gi(r, 0, 0);
    PQclear(r);
    return 0;
}

static int pg_stats(void *impl, struct store_stats *out)
{
    return run_tx(impl, stats_body, NULL, out);
}

struct load_ctx {
    const char *tenant;
    int64_t open_jobs, pending;
};

static int tenant_load_body(struct conn *c, void *vctx)
{
    struct load_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_str(&p, x->tenant);
    int rc = ex(c,
                "SELECT count(*), coalesce(sum(pending), 0) FROM jobs WHERE tenant = $1 "
                "AND status IN (1, 2, 3)",
                &p, &r);
    if (rc < 0)
        return rc;
    x->open_jobs = gi(r, 0, 0);
    x->pending = gi(r, 0, 1);
    PQclear(r);
    return 0;
}

static int pg_tenant_load(void *impl, const char *tenant, int64_t *open_jobs, int64_t *pending)
{
    struct load_ctx x = {tenant, 0, 0};
    int rc = run_tx(impl, tenant_load_body, NULL, &x);
    if (rc >= 0) {
        *open_jobs = x.open_jobs;
        *pending = x.pending;
    }
    return rc;
}

/* ---- workflow definitions, hooks, limits ------------------------------------------ */

struct defs_ctx {
    const char *tenant, *name, *definition, *after_name;
    int64_t version;
    size_t limit;
    struct store_workflow *wf, *wfs;
    struct store_hook *hook, *hooks;
    struct store_limit *lim, *lims;
    struct store_secret *sec, *secs;
    size_t n;
};

static void defs_undo(void *vctx)
{
    struct defs_ctx *x = vctx;
    if (x->wf) {
        store_workflow_release(x->wf);
        memset(x->wf, 0, sizeof *x->wf);
    }
    if (x->hook) {
        store_hook_release(x->hook);
        memset(x->hook, 0, sizeof *x->hook);
    }
    if (x->lim) {
        store_limit_release(x->lim);
        memset(x->lim, 0, sizeof *x->lim);
    }
    if (x->sec) {
        store_secret_release(x->sec);
        memset(x->sec, 0, sizeof *x->sec);
    }
    store_workflows_free(x->wfs, x->n);
    store_hooks_free(x->hooks, x->n);
    store_limits_free(x->lims, x->n);
    store_secrets_free(x->secs, x->n);
    x->secs = NULL;
    x->wfs = NULL;
    x->hooks = NULL;
    x->lims = NULL;
    x->n = 0;
}

static void read_workflow(const PGresult *r, int row, struct store_workflow *w)
{
    memset(w, 0, sizeof *w);
    gcopy(r, row, 0, w->name, sizeof w->name);
    w->version = gi(r, row, 1);
    w->definition = gdup(r, row, 2, NULL);
    w->created_at = gi(r, row, 3);
    w->deleted = (int)gi(r, row, 4);
}

static int workflow_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_str(&p, x->tenant);
    p_str(&p, x->name);
    p_str(&p, x->definition);
    p_i64(&p, c->now);
    /* versions continue from the highest ever used; the primary key makes a
     * concurrent put of the same name a conflict, retried as a soft error */
    int rc = ex(c,
                "INSERT INTO workflows(tenant, name, version, definition, created_at) "
                "SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4 FROM workflows "
                "WHERE tenant = $1 AND name = $2 RETURNING version",
                &p, &r);
    if (rc == -SLUICE_E_CONFLICT)
        return E_SOFT;
    if (rc < 0)
        return rc;
    int64_t version = gi(r, 0, 0);
    PQclear(r);
    if (x->wf) {
        memset(x->wf, 0, sizeof *x->wf);
        copy_str(x->wf->name, sizeof x->wf->name, x->name);
        x->wf->version = version;
        x->wf->definition = xstrdup(x->definition);
        x->wf->created_at = c->now;
    }
    return 0;
}

static int pg_workflow_put(void *impl, const char *tenant, const char *name, const char *definition,
                           struct store_workflow *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .wf = out};
    if (!definition)
        return -SLUICE_E_INVALID_PARAMETER;
    if (out)
        memset(out, 0, sizeof *out);
    return run_tx(impl, workflow_put_body, defs_undo, &x);
}

static int workflow_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_str(&p, x->tenant);
    p_str(&p, x->name);
    p_i64(&p, x->version);
    int rc = ex(c,
                "SELECT " WF_COLS " FROM workflows WHERE tenant = $1 AND name = $2 "
                "AND (CASE WHEN $3::bigint > 0 THEN version = $3 ELSE deleted = 0 END) "
                "ORDER BY version DESC LIMIT 1",
                &p, &r);
    if (rc <= 0)
        return rc;
    read_workflow(r, 0, x->wf);
    PQclear(r);
    return 1;
}

static int pg_workflow_get(void *impl, const char *tenant, const char *name, int64_t version,
                           struct store_workflow *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .version = version, .wf = out};
    memset(out, 0, sizeof *out);
    return run_tx(impl, workflow_get_body, defs_undo, &x);
}

static int workflow_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_str(&p, x->tenant);
    p_str(&p, x->after_name ? x->after_name : "");
    p_i64(&p, (int64_t)x->limit);
    int rc = ex(c,
                "SELECT " WF_COLS " FROM workflows w WHERE tenant = $1 AND name > $2 "
                "AND deleted = 0 AND version = (SELECT max(version) FROM workflows v "
                "WHERE v.tenant = w.tenant AND v.name = w.name) ORDER BY name LIMIT $3",
                &p, &r);
    if (rc < 0)
        return rc;
    x->wfs = xcalloc(x->limit ? x->limit : 1, sizeof *x->wfs);
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_workflow(r, i, &x->wfs[x->n++]);
    PQclear(r);
    return 0;
}

static int pg_workflow_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                            struct store_workflow **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = run_tx(impl, workflow_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.wfs;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int workflow_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    p_str(&p, x->tenant);
    p_str(&p, x->name);
    int rc =
        ex(c, "UPDATE workflows SET deleted = 1 WHERE tenant = $1 AND name = $2 AND deleted = 0",
           &p, NULL);
    return rc < 0 ? rc : rc > 0;
}

static int pg_workflow_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return run_tx(impl, workflow_delete_body, NULL, &x);
}

static void read_hook(const PGresult *r, int row, struct store_hook *h)
{
    memset(h, 0, sizeof *h);
    gcopy(r, row, 0, h->name, sizeof h->name);
    gcopy(r, row, 1, h->tenant, sizeof h->tenant);
    h->definition = gdup(r, row, 2, NULL);
    h->created_at = gi(r, row, 3);
    h->updated_at = gi(r, row, 4);
}

static int hook_load(struct conn *c, const char *tenant, const char *name, struct store_hook *h)
{
    struct prm p = {0};
    PGresult *r;
    p_str(&p, name);
    p_str(&p, tenant);
    int rc = ex(c,
                "SELECT " HOOK_COLS " FROM hooks WHERE name = $1 AND ($2::text IS NULL OR "
                "tenant = $2)",
                &p, &r);
    if (rc <= 0)
        return rc;
    read_hook(r, 0, h);
    PQclear(r);
    return 1;
}

static int hook_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    int replaced = 0;
    p_str(&p, x->name);
    int rc = ex(c, "SELECT tenant FROM hooks WHERE name = $1 FOR UPDATE", &p, &r);
    if (rc < 0)
        return rc;
    if (rc > 0) {
        if (strcmp(PQgetvalue(r, 0, 0), x->tenant) != 0)
            rc = -SLUICE_E_CONFLICT; /* names are global: the events URL has no key */
        replaced = 1;
    }
    PQclear(r);
    if (rc < 0)
        return rc;
    struct prm q = {0};
    p_str(&q, x->name);
    p_str(&q, x->tenant);
    p_str(&q, x->definition);
    p_i64(&q, c->now);
    rc = ex(c,
            "INSERT INTO hooks(name, tenant, definition, created_at, updated_at) "
            "VALUES($1, $2, $3, $4, $4) ON CONFLICT(name) DO UPDATE SET "
            "definition = excluded.definition, updated_at = excluded.updated_at",
            &q, NULL);
    if (rc < 0)
        return rc;
    if (x->hook && (rc = hook_load(c, x->tenant, x->name, x->hook)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return replaced ? 2 : 1;
}

static int pg_hook_put(void *impl, const char *tenant, const char *name, const char *definition,
                       struct store_hook *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .hook = out};
    if (!tenant || !definition)
        return -SLUICE_E_INVALID_PARAMETER;
    if (out)
        memset(out, 0, sizeof *out);
    return run_tx(impl, hook_put_body, defs_undo, &x);
}

static int hook_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return hook_load(c, x->tenant, x->name, x->hook);
}

static int pg_hook_get(void *impl, const char *tenant, const char *name, struct store_hook *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .hook = out};
    memset(out, 0, sizeof *out);
    return run_tx(impl, hook_get_body, defs_undo, &x);
}

static int hook_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_str(&p, x->tenant);
    p_str(&p, x->after_name ? x->after_name : "");
    p_i64(&p, (int64_t)x->limit);
    int rc = ex(c,
                "SELECT " HOOK_COLS " FROM hooks WHERE tenant = $1 AND name > $2 "
                "ORDER BY name LIMIT $3",
                &p, &r);
    if (rc < 0)
        return rc;
    x->hooks = xcalloc(x->limit ? x->limit : 1, sizeof *x->hooks);
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_hook(r, i, &x->hooks[x->n++]);
    PQclear(r);
    return 0;
}

static int pg_hook_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                        struct store_hook **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = run_tx(impl, hook_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.hooks;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int hook_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    p_str(&p, x->name);
    p_str(&p, x->tenant);
    int rc = ex(c, "DELETE FROM hooks WHERE name = $1 AND tenant = $2", &p, NULL);
    return rc < 0 ? rc : rc > 0;
}

static int pg_hook_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return run_tx(impl, hook_delete_body, NULL, &x);
}

static void read_limit(const PGresult *r, int row, struct store_limit *l)
{
    memset(l, 0, sizeof *l);
    gcopy(r, row, 0, l->name, sizeof l->name);
    gcopy(r, row, 1, l->tenant, sizeof l->tenant);
    l->definition = gdup(r, row, 2, NULL);
    l->created_at = gi(r, row, 3);
    l->updated_at = gi(r, row, 4);
}

static int limit_load(struct conn *c, const char *tenant, const char *name, struct store_limit *l)
{
    struct prm p = {0};
    PGresult *r;
    p_str(&p, tenant);
    p_str(&p, name);
    int rc = ex(c, "SELECT " LIMIT_COLS " FROM limits WHERE tenant = $1 AND name = $2", &p, &r);
    if (rc <= 0)
        return rc;
    if (l)
        read_limit(r, 0, l);
    PQclear(r);
    return 1;
}

static int limit_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    int existed = limit_load(c, x->tenant, x->name, NULL);
    if (existed < 0)
        return existed;
    p_str(&p, x->tenant);
    p_str(&p, x->name);
    p_str(&p, x->definition);
    p_i64(&p, c->now);
    int rc = ex(c,
                "INSERT INTO limits(tenant, name, definition, created_at, updated_at) "
                "VALUES($1, $2, $3, $4, $4) ON CONFLICT(tenant, name) DO UPDATE SET "
                "definition = excluded.definition, updated_at = excluded.updated_at",
                &p, NULL);
    if (rc < 0)
        return rc;
    if (x->lim && (rc = limit_load(c, x->tenant, x->name, x->lim)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return existed ? 2 : 1;
}

static int pg_limit_put(void *impl, const char *tenant, const char *name, const char *definition,
                        struct store_limit *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .lim = out};
    if (!tenant || !name || !definition)
        return -SLUICE_E_INVALID_PARAMETER;
    if (out)
        memset(out, 0, sizeof *out);
    return run_tx(impl, limit_put_body, defs_undo, &x);
}

static int limit_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return limit_load(c, x->tenant, x->name, x->lim);
}

static int pg_limit_get(void *impl, const char *tenant, const char *name, struct store_limit *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .lim = out};
    memset(out, 0, sizeof *out);
    return run_tx(impl, limit_get_body, defs_undo, &x);
}

static int limit_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    int rc;
    if (x->tenant) {
        p_str(&p, x->tenant);
        p_str(&p, x->after_name ? x->after_name : "");
        p_i64(&p, (int64_t)x->limit);
        rc = ex(c,
                "SELECT " LIMIT_COLS " FROM limits WHERE tenant = $1 AND name > $2 "
                "ORDER BY name LIMIT $3",
                &p, &r);
    } else {
        p_i64(&p, (int64_t)x->limit);
        rc = ex(c, "SELECT " LIMIT_COLS " FROM limits ORDER BY tenant, name LIMIT $1", &p, &r);
    }
    if (rc < 0)
        return rc;
    x->lims = xcalloc(x->limit ? x->limit : 1, sizeof *x->lims);
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_limit(r, i, &x->lims[x->n++]);
    PQclear(r);
    return 0;
}

static int pg_limit_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                         struct store_limit **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = run_tx(impl, limit_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.lims;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int limit_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    p_str(&p, x->tenant);
    p_str(&p, x->name);
    int rc = ex(c, "DELETE FROM limits WHERE tenant = $1 AND name = $2", &p, NULL);
    return rc < 0 ? rc : rc > 0;
}

static int pg_limit_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return run_tx(impl, limit_delete_body, NULL, &x);
}

/* ---- tenant secrets (the limits' twin: same shape, the value instead of a definition) */

static void read_secret(const PGresult *r, int row, struct store_secret *l)
{
    memset(l, 0, sizeof *l);
    gcopy(r, row, 0, l->name, sizeof l->name);
    gcopy(r, row, 1, l->tenant, sizeof l->tenant);
    l->value = gdup(r, row, 2, NULL);
    l->created_at = gi(r, row, 3);
    l->updated_at = gi(r, row, 4);
}

static int secret_load(struct conn *c, const char *tenant, const char *name, struct store_secret *l)
{
    struct prm p = {0};
    PGresult *r;
    p_str(&p, tenant);
    p_str(&p, name);
    int rc = ex(c, "SELECT " SECRET_COLS " FROM secrets WHERE tenant = $1 AND name = $2", &p, &r);
    if (rc <= 0)
        return rc;
    if (l)
        read_secret(r, 0, l);
    PQclear(r);
    return 1;
}

static int secret_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    int existed = secret_load(c, x->tenant, x->name, NULL);
    if (existed < 0)
        return existed;
    p_str(&p, x->tenant);
    p_str(&p, x->name);
    p_str(&p, x->definition);
    p_i64(&p, c->now);
    int rc = ex(c,
                "INSERT INTO secrets(tenant, name, value, created_at, updated_at) "
                "VALUES($1, $2, $3, $4, $4) ON CONFLICT(tenant, name) DO UPDATE SET "
                "value = excluded.value, updated_at = excluded.updated_at",
                &p, NULL);
    if (rc < 0)
        return rc;
    if (x->sec && (rc = secret_load(c, x->tenant, x->name, x->sec)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return existed ? 2 : 1;
}

static int pg_secret_put(void *impl, const char *tenant, const char *name, const char *value,
                         struct store_secret *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = value, .sec = out};
    if (!tenant || !name || !value)
        return -SLUICE_E_INVALID_PARAMETER;
    if (out)
        memset(out, 0, sizeof *out);
    return run_tx(impl, secret_put_body, defs_undo, &x);
}

static int secret_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return secret_load(c, x->tenant, x->name, x->sec);
}

static int pg_secret_get(void *impl, const char *tenant, const char *name, struct store_secret *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .sec = out};
    memset(out, 0, sizeof *out);
    return run_tx(impl, secret_get_body, defs_undo, &x);
}

static int secret_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    int rc;
    p_str(&p, x->tenant);
    p_str(&p, x->after_name ? x->after_name : "");
    p_i64(&p, (int64_t)x->limit);
    rc = ex(c,
            "SELECT " SECRET_COLS " FROM secrets WHERE tenant = $1 AND name > $2 "
            "ORDER BY name LIMIT $3",
            &p, &r);
    if (rc < 0)
        return rc;
    x->secs = xcalloc(x->limit ? x->limit : 1, sizeof *x->secs);
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_secret(r, i, &x->secs[x->n++]);
    PQclear(r);
    return 0;
}

static int pg_secret_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                          struct store_secret **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    *out = NULL;
    *n = 0;
    if (!tenant)
        return -SLUICE_E_INVALID_PARAMETER;
    int rc = run_tx(impl, secret_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.secs;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int secret_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    struct prm p = {0};
    p_str(&p, x->tenant);
    p_str(&p, x->name);
    int rc = ex(c, "DELETE FROM secrets WHERE tenant = $1 AND name = $2", &p, NULL);
    return rc < 0 ? rc : rc > 0;
}

static int pg_secret_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return run_tx(impl, secret_delete_body, NULL, &x);
}

/* ---- shared rate buckets and concurrency units ------------------------------------ */

struct bucket_ctx {
    const char *id;
    double interval, tolerance;
    int64_t n, until;
    struct store_bucket_lease *out;
};

/* One statement: the bucket is created or advanced under its row lock, on the
 * database clock, so every node draws its slots from the same schedule. */
static int bucket_take_body(struct conn *c, void *vctx)
{
    struct bucket_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    char interval[48];
    snprintf(interval, sizeof interval, "%.17g", x->interval);
    p_str(&p, x->id);
    p_i64(&p, c->now);
    p_i64(&p, x->n);
    p_str(&p, interval);
    int rc = ex(c,
                "INSERT INTO buckets AS b (id, tat, epoch) VALUES($1, $2::float8 + $3::float8 * "
                "$4::float8, 0) ON CONFLICT (id) DO UPDATE SET tat = greatest(b.tat, $2::float8) "
                "+ $3::float8 * $4::float8 RETURNING tat - $3::float8 * $4::float8, epoch",
                &p, &r);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    x->out->now = c->now;
    x->out->tat0 = strtod(PQgetvalue(r, 0, 0), NULL);
    if (x->out->tat0 < (double)c->now)
        x->out->tat0 = (double)c->now;
    x->out->epoch = (uint64_t)gi(r, 0, 1);
    PQclear(r);
    return 0;
}

static int pg_bucket_take(void *impl, const char *id, double interval_ms, double tolerance_ms,
                          int64_t n, struct store_bucket_lease *out)
{
    struct bucket_ctx x = {id, interval_ms, tolerance_ms, n, 0, out};
    return run_tx(impl, bucket_take_body, NULL, &x);
}

static int bucket_block_body(struct conn *c, void *vctx)
{
    struct bucket_ctx *x = vctx;
    struct prm p = {0};
    p_str(&p, x->id);
    p_i64(&p, x->until);
    int rc = ex(c,
                "INSERT INTO buckets AS b (id, tat, epoch) VALUES($1, $2::float8, 1) "
                "ON CONFLICT (id) DO UPDATE SET tat = excluded.tat, epoch = b.epoch + 1 "
                "WHERE b.tat < excluded.tat",
                &p, NULL);
    return rc < 0 ? rc : 0;
}

static int pg_bucket_block(void *impl, const char *id, int64_t until_ms)
{
    struct bucket_ctx x = {id, 0, 0, 0, until_ms, NULL};
    return run_tx(impl, bucket_block_body, NULL, &x);
}

struct sem_ctx {
    const char *id, *node;
    int64_t cap, delta, timeout_ms, held;
};

/* Units of one id are counted under a transaction-scoped advisory lock on the id, so
 * two nodes taking units at once cannot both see room for the last one. Units of
 * silent nodes do not count (and store_heartbeat deletes them). */
static int sem_body(struct conn *c, void *vctx)
{
    struct sem_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_str(&p, x->id);
    int rc = ex(c, "SELECT pg_advisory_xact_lock(hashtext('sluice.sem:' || $1::text))", &p, NULL);
    if (rc < 0)
        return rc;
    p_str(&p, x->node);
    p_i64(&p, c->now - x->timeout_ms);
    rc = ex(c,
            "SELECT coalesce(sum(held) FILTER (WHERE node = $2), 0), coalesce(sum(held) FILTER "
            "(WHERE node <> $2 AND node IN (SELECT node FROM nodes WHERE last_seen >= $3)), 0) "
            "FROM sems WHERE id = $1",
            &p, &r);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    int64_t held = gi(r, 0, 0), others = gi(r, 0, 1);
    PQclear(r);
    if (x->delta > 0) {
        int64_t room = x->cap - held - others;
        held += x->delta < room ? x->delta : (room > 0 ? room : 0);
    } else {
        held = held + x->delta > 0 ? held + x->delta : 0;
    }
    x->held = held;
    struct prm q = {0};
    p_str(&q, x->id);
    p_str(&q, x->node);
    p_i64(&q, held);
    rc = ex(c,
            "INSERT INTO sems(id, node, held) VALUES($1, $2, $3) "
            "ON CONFLICT(id, node) DO UPDATE SET held = excluded.held",
            &q, NULL);
    return rc < 0 ? rc : 0;
}

static int pg_sem_adjust(void *impl, const char *id, int64_t cap, int64_t delta, int64_t *held)
{
    struct pg *s = impl;
    struct sem_ctx x = {id, s->node, cap, delta, s->opt.node_timeout_ms, 0};
    int rc = run_tx(s, sem_body, NULL, &x);
    if (rc >= 0)
        *held = x.held;
    return rc;
}

/* ---- completion callbacks: the outbox ---------------------------------------------- */

struct outbox_ctx {
    int64_t lease_ms;
    size_t max;
    const char *tenant, *job_id;
    const struct store_delivery *d;
    const struct store_delivery_attempt *a;
    int state;
    int64_t next_at;
    struct store_delivery *list;
    size_t n;
    const char *name, *value;
    char *out;
};

static void outbox_undo(void *vctx)
{
    struct outbox_ctx *x = vctx;
    store_deliveries_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
    free(x->out);
    x->out = NULL;
}

static int delivery_claim_body(struct conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_i64(&p, c->now);
    p_i64(&p, (int64_t)x->max);
    int rc = ex(c,
                "SELECT did, id, job_id, tenant, event, url, attempts, created_at, next_at, "
                "updated_at FROM outbox WHERE state = 0 AND next_at <= $1 AND lease_until <= $1 "
                "ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                &p, &r);
    if (rc < 0)
        return rc;
    int nrows = rc;
    x->list = xcalloc(x->max ? x->max : 1, sizeof *x->list);
    for (int i = 0; i < nrows && x->n < x->max; i++) {
        struct store_delivery *d = &x->list[x->n++];
        gcopy(r, i, 1, d->id, sizeof d->id);
        gcopy(r, i, 2, d->job_id, sizeof d->job_id);
        gcopy(r, i, 3, d->tenant, sizeof d->tenant);
        gcopy(r, i, 4, d->event, sizeof d->event);
        d->url = gdup(r, i, 5, NULL);
        d->attempts = (int)gi(r, i, 6);
        d->created_at = gi(r, i, 7);
        d->next_at = gi(r, i, 8);
        d->updated_at = gi(r, i, 9);
        d->state = DELIVERY_PENDING;
        if ((rc = ids_random("lease_", 24, d->token)) < 0)
            break;
        struct prm q = {0};
        p_i64(&q, gi(r, i, 0));
        p_i64(&q, c->now + (x->lease_ms > 0 ? x->lease_ms : 1));
        p_str(&q, d->token);
        if ((rc = ex(c, "UPDATE outbox SET lease_until = $2, token = $3 WHERE did = $1", &q,
                     NULL)) < 0)
            break;
    }
    PQclear(r);
    return rc < 0 ? rc : (int)x->n;
}

static int pg_delivery_claim(void *impl, int64_t lease_ms, size_t max, struct store_delivery **out,
                             size_t *n)
{
    struct outbox_ctx x = {.lease_ms = lease_ms, .max = max};
    int rc = run_tx(impl, delivery_claim_body, outbox_undo, &x);
    *out = rc <= 0 ? NULL : x.list;
    *n = rc <= 0 ? 0 : x.n;
    if (rc == 0)
        store_deliveries_free(x.list, x.n);
    return rc;
}

static int delivery_record_body(struct conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
    const struct store_delivery_attempt *a = x->a;
    struct prm p = {0};
    p_str(&p, x->d->id);
    p_str(&p, x->d->token);
    p_i64(&p, x->state);
    p_i64(&p, x->next_at);
    if (a) {
        char ts[25];
        buf_reset(&c->tmp);
        buf_printf(&c->tmp, "{\"attempt\":%d,\"at\":\"%s\",\"latencyMs\":%lld,\"status\":%d",
                   x->d->attempts + 1, clock_fmt_ms(a->at, ts), (long long)a->latency_ms,
                   a->status);
        if (a->error_code) {
            const char *m = a->error_message ? a->error_message : "";
            buf_puts(&c->tmp, ",\"error\":{\"code\":");
            buf_json_str(&c->tmp, a->error_code, strlen(a->error_code));
            buf_puts(&c->tmp, ",\"message\":");
            buf_json_str(&c->tmp, m, strlen(m));
            buf_putc(&c->tmp, '}');
        }
        buf_putc(&c->tmp, '}');
        p_str(&p, buf_cstr(&c->tmp));
    } else {
        p_str(&p, NULL);
    }
    p_i64(&p, c->now);
    int rc = ex(c,
                "UPDATE outbox SET state = $3, next_at = $4, lease_until = 0, token = '', "
                "attempts = attempts + (CASE WHEN $5::text IS NULL THEN 0 ELSE 1 END), "
                "updated_at = $6, log = CASE WHEN $5::text IS NULL THEN log WHEN log = '[]' "
                "THEN '[' || $5 || ']' ELSE left(log, -1) || ',' || $5 || ']' END "
                "WHERE id = $1 AND token = $2 AND token <> '' AND state = 0",
                &p, NULL);
    if (rc < 0)
        return rc;
    return rc == 1 ? 1 : -SLUICE_E_LEASE_LOST;
}

static int pg_delivery_record(void *impl, const struct store_delivery *d,
                              const struct store_delivery_attempt *a, int state, int64_t next_at)
{
    if (state < DELIVERY_PENDING || state > DELIVERY_ABANDONED)
        return -SLUICE_E_INVALID_PARAMETER;
    struct outbox_ctx x = {.d = d, .a = a, .state = state, .next_at = next_at};
    return run_tx(impl, delivery_record_body, NULL, &x);
}

static int delivery_list_body(struct conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
    struct jobrow jr;
    PGresult *r;
    int rc = job_load(c, x->tenant, x->job_id, 0, &jr);
    if (rc <= 0)
        return rc;
    store_job_release(&jr.j);
    struct prm p = {0};
    p_i64(&p, jr.jid);
    rc = ex(c,
            "SELECT id, job_id, tenant, event, url, state, attempts, created_at, next_at, "
            "updated_at, log FROM outbox WHERE jid = $1 ORDER BY did",
            &p, &r);
    if (rc < 0)
        return rc;
    x->list = xcalloc((size_t)rc + 1, sizeof *x->list);
    for (int i = 0; i < rc; i++) {
        struct store_delivery *d = &x->list[x->n++];
        gcopy(r, i, 0, d->id, sizeof d->id);
        gcopy(r, i, 1, d->job_id, sizeof d->job_id);
        gcopy(r, i, 2, d->tenant, sizeof d->tenant);
        gcopy(r, i, 3, d->event, sizeof d->event);
        d->url = gdup(r, i, 4, NULL);
        d->state = (int)gi(r, i, 5);
        d->attempts = (int)gi(r, i, 6);
        d->created_at = gi(r, i, 7);
        d->next_at = gi(r, i, 8);
        d->updated_at = gi(r, i, 9);
        d->log = gdup(r, i, 10, NULL);
    }
    PQclear(r);
    return 1;
}

static int pg_delivery_list(void *impl, const char *tenant, const char *job_id,
                            struct store_delivery **out, size_t *n)
{
    struct outbox_ctx x = {.tenant = tenant, .job_id = job_id};
    int rc = run_tx(impl, delivery_list_body, outbox_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int setting_ensure_body(struct conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
    struct prm p = {0};
    PGresult *r;
    p_str(&p, x->name);
    p_str(&p, x->value);
    p_i64(&p, c->now);
    int rc = ex(c,
                "INSERT INTO settings(name, value, created_at) VALUES($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                &p, NULL);
    if (rc < 0)
        return rc;
    struct prm q = {0};
    p_str(&q, x->name);
    if ((rc = ex(c, "SELECT value FROM settings WHERE name = $1", &q, &r)) < 0)
        return rc;
    if (rc > 0)
        x->out = gdup(r, 0, 0, NULL);
    PQclear(r);
    return x->out ? 1 : -SLUICE_E_INTERNAL;
}

static int pg_setting_ensure(void *impl, const char *name, const char *value, char **out)
{
    struct outbox_ctx x = {.name = name, .value = value};
    int rc = run_tx(impl, setting_ensure_body, outbox_undo, &x);
    *out = rc < 0 ? NULL : x.out;
    return rc;
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
    .job_begin = pg_job_begin,
    .job_add_items = pg_job_add_items,
    .job_commit = pg_job_commit,
    .job_retry = pg_job_retry,
    .job_retry_begin = pg_job_retry_begin,
    .job_retry_stage = pg_job_retry_stage,
    .job_abort = pg_job_abort,
    .gc_receiving = pg_gc_receiving,
    .expire_claims = pg_expire_claims,
    .retention_sweep = pg_retention_sweep,
    .job_get = pg_job_get,
    .job_list = pg_job_list,
    .job_cancel = pg_job_cancel,
    .job_delete = pg_job_delete,
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
    .workflow_put = pg_workflow_put,
    .workflow_get = pg_workflow_get,
    .workflow_list = pg_workflow_list,
    .workflow_delete = pg_workflow_delete,
    .hook_put = pg_hook_put,
    .hook_get = pg_hook_get,
    .hook_list = pg_hook_list,
    .hook_delete = pg_hook_delete,
    .limit_put = pg_limit_put,
    .limit_get = pg_limit_get,
    .limit_list = pg_limit_list,
    .limit_delete = pg_limit_delete,
    .secret_put = pg_secret_put,
    .secret_get = pg_secret_get,
    .secret_list = pg_secret_list,
    .secret_delete = pg_secret_delete,
    .bucket_take = pg_bucket_take,
    .bucket_block = pg_bucket_block,
    .sem_adjust = pg_sem_adjust,
    .delivery_claim = pg_delivery_claim,
    .delivery_record = pg_delivery_record,
    .delivery_list = pg_delivery_list,
    .setting_ensure = pg_setting_ensure,
};
