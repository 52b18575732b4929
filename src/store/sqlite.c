/* sqlite.c - the embedded storage backend: store.h on one SQLite file in WAL mode.
 *
 * store.c picks this backend for "sqlite:PATH" URLs and calls it through
 * store_sqlite_ops. Every operation runs as one transaction through run_tx(), the
 * single place where soft errors (SQLITE_BUSY/LOCKED) are retried.
 *
 * DESIGN
 * Connections: a small pool (mutex + free list, opened lazily, at most POOL_MAX). A
 * call checks one connection out for its whole transaction and returns it; each
 * connection prepares each statement once (SQLITE_PREPARE_PERSISTENT) on first use
 * and keeps scratch buffers for building JSON, so hot paths allocate little.
 * Writers use BEGIN IMMEDIATE (WAL: one writer at a time, readers never block).
 *
 * Schema (migrations[] below, recorded in schema_version):
 *   jobs     one row per job. `jid` is an internal integer id (AUTOINCREMENT, so it
 *            is also the creation order `seq`); counts live here and change in the
 *            same transaction as the items they count. `next_idx` is the claim
 *            cursor (items below it were handed out), `cancel_at` the cancel point
 *            (-1 = not canceled), `last_claim` the id of the newest claim taken from
 *            the job, `priority` -100..100 from the submit (see FAIRNESS).
 *   items    key k = jid * 2^32 + index: one integer B-tree, rows appended in key
 *            order at submit, no secondary index except a partial one on failed
 *            items (listing failures of a big job). Processing and Canceled of a
 *            pending item are derived from next_idx/cancel_at, never stored, so
 *            claiming and canceling write no item rows; finishing writes each row
 *            once. Events are a JSON array text, appended by string concatenation.
 *   claims   one row per leased range [lo, hi) of one job, with a random token that
 *            fences late writers and `remaining` = items of the range not done yet.
 *            Released claims (graceful shutdown) get lease_until 0 and released = 1,
 *            so the next store_claim takes them over without counting an attempt.
 *   docs     (tenant, collection, ref) -> data, version, deleted (tombstone),
 *            WITHOUT ROWID: one B-tree lookup per upsert.
 *   api_keys key id, tenant and SHA-256 hex of the key.
 *   job_steps (jid, step) -> passed/failed/skipped, added to by store_complete in
 *            its transaction; rowid order is first-seen order (a new row's rowid is
 *            above every existing row's).
 *   idem_keys (tenant, key) -> jid, body_hash, created_at; inserted by
 *            store_job_commit / store_job_retry, deleted with the job (job_remove),
 *            so a key names at most one live job. A key older than the caller's
 *            idem_not_before is replaced (INSERT OR REPLACE) by the next job using
 *            it; store_retention_sweep deletes old keys in batches.
 *   workflows (tenant, name, version) -> definition, deleted. A put inserts
 *            max(version) + 1, so versions are never reused; a delete only marks
 *            the name's live rows deleted (running jobs keep reading their version).
 *   hooks    name -> tenant, definition: names are global (the events URL carries
 *            no key), so the name alone is the primary key.
 *   tenants  tenant -> weight (1..100, store_tenant_set_weight), turns (claims taken
 *            in the current round), last_claim (the claim that ended its last round).
 *            A tenant without a row has weight 1 and has never been claimed from.
 * Items also keep failed_step, warnings and parent_index (store_job_retry).
 *
 * FAIRNESS (store_claim, after expired claims): first the tenant, then its job.
 *   tenant   among tenants with a runnable job, the one whose last round ended
 *            longest ago (tenants.last_claim, absent = 0; ties by name). Each new
 *            range counts a turn; the turn that reaches the weight ends the round
 *            (turns = 0, last_claim = the claim id), so a tenant of weight w takes w
 *            claims in a row per round.
 *   job      within the tenant, the highest priority, then the job claimed from least
 *            recently (jobs.last_claim), then the oldest.
 *   The runnable tenants are found by skipping through the partial index jobs_ready
 *   (tenant, priority DESC, last_claim, jid) one tenant at a time - O(T log n) for T
 *   tenants with runnable jobs - and the same index orders the tenant's jobs. The
 *   tenants row changes in the claim's transaction. A job whose next item waits for
 *   an in-flight same-ref item yields no range; the next job (or tenant) is tried,
 *   at most CLAIM_TRIES in all.
 *
 * Retention: store_retention_sweep removes expired terminal jobs a bounded number of
 * rows per transaction, so the write lock is never held long. The first transaction
 * that touches a job hides it: status 0 (like Receiving, which every read skips) with
 * updated_at -1, which tells it from a live upload (partial index jobs_removing);
 * the next calls delete its items from the lowest key up, and the call that deletes
 * the last items deletes the row. A crash in between leaves a hidden job that the
 * next sweep (or store_gc_receiving at start) finishes.
 *
 * Doc ops: store_complete applies an outcome's ops in order inside the batch's one
 * transaction. When an op cannot apply (DocumentNotFound, InvalidData), the item
 * fails there and later ops are skipped, but the ops before it stay applied: the
 * transaction covers the whole batch, not one item, and this matches how steps that
 * ran before a failing step keep their effects (an HTTP call cannot be undone
 * either). A retry of the item then re-applies them; upserts and patches are
 * idempotent for the same input.
 *
 * Retries: store_job_retry copies the failed rows of the parent with one INSERT ...
 * SELECT (the items_failed index finds them), numbering them with row_number() and
 * linking same-ref items with lag() over the new numbering, so the copy costs no
 * round trip per row and keeps the same-ref order of the parent.
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
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
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
#include "util/xmalloc.h"

#define POOL_MAX 32
#define TX_RETRIES 8
#define E_SOFT (-10000) /* private: busy/locked, retry the whole transaction */
#define KEY(jid, idx) ((int64_t)(jid)*4294967296LL + (int64_t)(idx))
#define WIN_MS 5000
#define CLAIM_TRIES 64  /* runnable jobs tried by one store_claim (see FAIRNESS) */
#define CKPT_PAGES 4000 /* WAL pages (16 MiB at 4 KiB) that wake the checkpointer */

/* ---- schema ---------------------------------------------------------------------- */

static const char *const migrations[] = {
    /* 001_init */
    "CREATE TABLE api_keys("
    "  key_id TEXT PRIMARY KEY,"
    "  tenant TEXT NOT NULL,"
    "  hash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX api_keys_hash ON api_keys(hash);"
    "CREATE TABLE jobs("
    "  jid INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  tenant TEXT NOT NULL,"
    "  workflow TEXT NOT NULL DEFAULT '',"
    "  client_reference TEXT,"
    "  status INTEGER NOT NULL,"
    "  outcome INTEGER NOT NULL DEFAULT 0,"
    "  error_code TEXT NOT NULL DEFAULT '',"
    "  total INTEGER NOT NULL DEFAULT 0,"
    "  pending INTEGER NOT NULL DEFAULT 0,"
    "  processing INTEGER NOT NULL DEFAULT 0,"
    "  succeeded INTEGER NOT NULL DEFAULT 0,"
    "  failed INTEGER NOT NULL DEFAULT 0,"
    "  skipped INTEGER NOT NULL DEFAULT 0,"
    "  canceled INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  last_progress_at INTEGER NOT NULL DEFAULT 0,"
    "  completed_at INTEGER NOT NULL DEFAULT 0,"
    "  win_at INTEGER NOT NULL DEFAULT 0,"
    "  win_done INTEGER NOT NULL DEFAULT 0,"
    "  next_idx INTEGER NOT NULL DEFAULT 0,"
    "  cancel_at INTEGER NOT NULL DEFAULT -1,"
    "  last_claim INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX jobs_tenant ON jobs(tenant, jid);"
    "CREATE INDEX jobs_runnable ON jobs(last_claim, jid)"
    "  WHERE status IN (1, 2) AND next_idx < total;"
    "CREATE TABLE items("
    "  k INTEGER PRIMARY KEY,"
    "  status INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  prev_idx INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL DEFAULT 0,"
    "  error_code TEXT,"
    "  ref TEXT NOT NULL,"
    "  data TEXT,"
    "  result TEXT,"
    "  error_message TEXT,"
    "  events TEXT);"
    "CREATE INDEX items_failed ON items(k) WHERE status = 3;"
    "CREATE TABLE claims("
    "  claim_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  token TEXT NOT NULL,"
    "  jid INTEGER NOT NULL,"
    "  lo INTEGER NOT NULL,"
    "  hi INTEGER NOT NULL,"
    "  remaining INTEGER NOT NULL,"
    "  lease_until INTEGER NOT NULL,"
    "  claimed_at INTEGER NOT NULL,"
    "  released INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX claims_lease ON claims(lease_until);"
    "CREATE INDEX claims_job ON claims(jid);"
    "CREATE TABLE docs("
    "  tenant TEXT NOT NULL,"
    "  collection TEXT NOT NULL,"
    "  ref TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  item_index INTEGER NOT NULL,"
    "  job_id TEXT NOT NULL,"
    "  data TEXT,"
    "  PRIMARY KEY(tenant, collection, ref)) WITHOUT ROWID;",
    /* 002_pipelines: stored workflows, webhooks, retries, per-step counts */
    "ALTER TABLE jobs ADD COLUMN workflow_version INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN parent_job TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE items ADD COLUMN failed_step TEXT;"
    "ALTER TABLE items ADD COLUMN warnings TEXT;"
    "ALTER TABLE items ADD COLUMN parent_index INTEGER NOT NULL DEFAULT -1;"
    "CREATE TABLE job_steps("
    "  jid INTEGER NOT NULL,"
    "  step TEXT NOT NULL,"
    "  passed INTEGER NOT NULL DEFAULT 0,"
    "  failed INTEGER NOT NULL DEFAULT 0,"
    "  skipped INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE(jid, step));"
    "CREATE TABLE idem_keys("
    "  tenant TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  jid INTEGER NOT NULL,"
    "  PRIMARY KEY(tenant, key)) WITHOUT ROWID;"
    "CREATE INDEX idem_keys_job ON idem_keys(jid);"
    "CREATE TABLE workflows("
    "  tenant TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  definition TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(tenant, name, version)) WITHOUT ROWID;"
    "CREATE TABLE hooks("
    "  name TEXT PRIMARY KEY,"
    "  tenant TEXT NOT NULL,"
    "  definition TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX hooks_tenant ON hooks(tenant, name);",
    /* 003_retention: what an idempotency key covers and when it was taken; retention.
     * Keys of older versions count from the upgrade. */
    "ALTER TABLE idem_keys ADD COLUMN body_hash TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE idem_keys ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;"
    "UPDATE idem_keys SET created_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000;"
    "CREATE INDEX idem_keys_created ON idem_keys(created_at);"
    "CREATE INDEX jobs_completed ON jobs(completed_at) WHERE status IN (4, 5, 6);"
    "CREATE INDEX jobs_removing ON jobs(jid) WHERE status = 0 AND updated_at < 0;",
    /* 004_callbacks: a job's completion callback and the outbox of deliveries */
    "ALTER TABLE jobs ADD COLUMN callback_url TEXT;"
    "ALTER TABLE jobs ADD COLUMN callback_events INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE outbox("
    "  did INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  jid INTEGER NOT NULL UNIQUE,"
    "  tenant TEXT NOT NULL,"
    "  job_id TEXT NOT NULL,"
    "  event TEXT NOT NULL,"
    "  url TEXT NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at INTEGER NOT NULL,"
    "  lease_until INTEGER NOT NULL DEFAULT 0,"
    "  token TEXT NOT NULL DEFAULT '',"
    "  log TEXT NOT NULL DEFAULT '[]',"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX outbox_due ON outbox(next_at) WHERE state = 0;"
    "CREATE TABLE settings("
    "  name TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL) WITHOUT ROWID;",
    /* 005_fairness: job priority, per-tenant rounds (see FAIRNESS) */
    "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;"
    "DROP INDEX jobs_runnable;"
    "CREATE INDEX jobs_ready ON jobs(tenant, priority DESC, last_claim, jid)"
    "  WHERE status IN (1, 2) AND next_idx < total;"
    "CREATE TABLE tenants("
    "  tenant TEXT PRIMARY KEY,"
    "  weight INTEGER NOT NULL DEFAULT 1,"
    "  turns INTEGER NOT NULL DEFAULT 0,"
    "  last_claim INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;",
    /* 006_limits: what a job's items consume, named limits, the active-job cap */
    "ALTER TABLE jobs ADD COLUMN uses TEXT;"
    "CREATE INDEX jobs_active ON jobs(tenant) WHERE status IN (2, 3);"
    "CREATE TABLE limits("
    "  tenant TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  definition TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY(tenant, name)) WITHOUT ROWID;",
    /* 007_buckets: rate buckets shared by the nodes of a store (store_bucket_take) */
    "CREATE TABLE buckets("
    "  id TEXT PRIMARY KEY,"
    "  tat REAL NOT NULL,"
    "  epoch INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    /* concurrency units held (store_sem_adjust); one process owns a SQLite store, so
     * the holder is always this one and holds left by a dead process are cleared at
     * start-up (store_expire_claims) */
    "CREATE TABLE sems("
    "  id TEXT PRIMARY KEY,"
    "  held INTEGER NOT NULL) WITHOUT ROWID;",
    /* 008_secrets: tenants' own secrets for {{secrets.NAME}} (never returned by the API) */
    "CREATE TABLE secrets("
    "  tenant TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY(tenant, name)) WITHOUT ROWID;",
    /* 009_retry_staging: a retry is created staging (status 0 with a parent_job) and
     * its items are copied in batches (store_job_retry_stage); retry_refs holds the
     * last index of each ref staged so far, to link same-ref items across batches */
    "CREATE INDEX jobs_staging ON jobs(jid) WHERE status = 0 AND parent_job <> '';"
    "CREATE TABLE retry_refs("
    "  jid INTEGER NOT NULL,"
    "  ref TEXT NOT NULL,"
    "  last_idx INTEGER NOT NULL,"
    "  PRIMARY KEY(jid, ref)) WITHOUT ROWID;",
};

/* The migration texts, for the SQLite-specific upgrade test (tests/store). */
const char *const *const store_sqlite_migrations = migrations;
const size_t store_sqlite_nmigrations = sizeof migrations / sizeof migrations[0];

/* ---- statements ------------------------------------------------------------------ */

#define JOB_COLS                                                                                   \
    "jid, id, tenant, workflow, client_reference, status, outcome, error_code, total, pending, "   \
    "processing, succeeded, failed, skipped, canceled, created_at, started_at, "                   \
    "last_progress_at, completed_at, win_at, win_done, next_idx, cancel_at, last_claim, "          \
    "workflow_version, parent_job, priority, uses"

/* ?7: a JSON array text of events to append, or NULL. */
#define EVENTS_APPEND                                                                              \
    "CASE WHEN ?7 IS NULL THEN events WHEN events IS NULL OR events = '[]' THEN ?7 "               \
    "ELSE substr(events, 1, length(events) - 1) || ',' || substr(?7, 2) END"

/* Effective status of an item row: ?6 cancel_at, ?7 key base of the job, ?8 cursor. */
#define EFFECTIVE                                                                                  \
    "CASE WHEN status <> 0 THEN status WHEN ?6 >= 0 AND k >= ?7 + ?6 THEN 5 "                      \
    "WHEN k < ?7 + ?8 THEN 1 ELSE 0 END"

#define ITEM_LIST_COLS                                                                             \
    "k, status, attempts, ref, data, result, error_code, error_message, updated_at, failed_step, " \
    "warnings, parent_index"

/* Filters of store_item_list besides status: ?3 ref, ?9 failed_step, ?10 error_code. */
#define ITEM_FILTERS                                                                               \
    "(?3 IS NULL OR ref = ?3) AND (?9 IS NULL OR failed_step = ?9) "                               \
    "AND (?10 IS NULL OR error_code = ?10)"

#define WF_COLS "name, version, definition, created_at, deleted"
#define HOOK_COLS "name, tenant, definition, created_at, updated_at"
#define LIMIT_COLS "name, tenant, definition, created_at, updated_at"
#define SECRET_COLS "name, tenant, value, created_at, updated_at"

enum qid {
    Q_BEGIN,
    Q_BEGIN_IMM,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_PING,
    Q_CLAIMS_EXPIRE,
    Q_SYNC_OFF,
    Q_SYNC_FULL,
    Q_SYNC_NORMAL,
    Q_KEY_INSERT,
    Q_KEY_LOOKUP,
    Q_KEY_LIST,
    Q_KEY_EXISTS,
    Q_KEY_REVOKE,
    Q_JOB_INSERT,
    Q_JOB_RECEIVING,
    Q_JOB_TOUCH,
    Q_ITEM_INSERT,
    Q_JOB_COMMIT,
    Q_IDEM_GET,
    Q_IDEM_INSERT,
    Q_IDEM_DELETE_JOB,
    Q_STEPS_GET,
    Q_STEPS_ADD,
    Q_STEPS_DELETE_JOB,
    Q_RETRY_JOB_INSERT,
    Q_RETRY_ITEMS,
    Q_STAGE_PICK,
    Q_STAGE_PARENT,
    Q_STAGE_LAST,
    Q_STAGE_ITEMS,
    Q_STAGE_REFS,
    Q_STAGE_REFS_DELETE,
    Q_STAGE_DONE,
    Q_JOB_BY_ID_STAGING,
    Q_ITEMS_DELETE,
    Q_CLAIMS_DELETE_JOB,
    Q_JOB_DELETE,
    Q_GC_SELECT,
    Q_JOB_BY_ID,
    Q_JOB_BY_JID,
    Q_JOB_LIST,
    Q_JOB_SAVE,
    Q_ITEM_GET,
    Q_ITEM_LIST,
    Q_ITEM_LIST_FAILED,
    Q_ITEM_STATUS,
    Q_ITEMS_RANGE,
    Q_ITEM_SET,
    Q_CLAIM_EXPIRED,
    Q_CLAIM_GET,
    Q_CLAIM_INSERT,
    Q_CLAIM_UPDATE,
    Q_CLAIM_REMAINING,
    Q_CLAIM_DELETE,
    Q_RUN_TENANTS,
    Q_RUN_JOBS,
    Q_RUN_JOBS_STARTED,
    Q_TENANT_ACTIVE,
    Q_TENANT_TURN,
    Q_TENANT_WEIGHT,
    Q_DOC_GET,
    Q_DOC_PUT,
    Q_DOC_LIST,
    Q_STATS_JOBS,
    Q_STATS_CLAIMS,
    Q_TENANT_LOAD,
    Q_WF_NEXT,
    Q_WF_INSERT,
    Q_WF_GET,
    Q_WF_LIST,
    Q_WF_DELETE,
    Q_HOOK_OWNER,
    Q_HOOK_PUT,
    Q_HOOK_GET,
    Q_HOOK_LIST,
    Q_HOOK_DELETE,
    Q_LIMIT_PUT,
    Q_LIMIT_GET,
    Q_LIMIT_LIST,
    Q_LIMIT_LIST_ALL,
    Q_LIMIT_DELETE,
    Q_SECRET_PUT,
    Q_SECRET_GET,
    Q_SECRET_LIST,
    Q_SECRET_DELETE,
    Q_BUCKET_GET,
    Q_SEM_GET,
    Q_SEM_PUT,
    Q_SEMS_CLEAR,
    Q_BUCKET_PUT,
    Q_SWEEP_KEYS,
    Q_SWEEP_HIDDEN,
    Q_SWEEP_EXPIRED,
    Q_SWEEP_HIDE,
    Q_SWEEP_ITEMS,
    Q_OUTBOX_ADD,
    Q_OUTBOX_DELETE_JOB,
    Q_OUTBOX_EXPIRE,
    Q_OUTBOX_DUE,
    Q_OUTBOX_LEASE,
    Q_OUTBOX_RECORD,
    Q_OUTBOX_LIST,
    Q_SETTING_ADD,
    Q_SETTING_GET,
    Q__COUNT
};

static const char *const sql_text[Q__COUNT] = {
    [Q_BEGIN] = "BEGIN",
    [Q_BEGIN_IMM] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_PING] = "SELECT 1",
    [Q_CLAIMS_EXPIRE] = "UPDATE claims SET lease_until = 0 WHERE lease_until > 0",
    [Q_SYNC_OFF] = "PRAGMA synchronous=OFF",
    [Q_SYNC_FULL] = "PRAGMA synchronous=FULL",
    [Q_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
    [Q_KEY_INSERT] =
        "INSERT INTO api_keys(key_id, tenant, hash, created_at) VALUES(?1, ?2, ?3, ?4)",
    [Q_KEY_LOOKUP] = "SELECT tenant FROM api_keys WHERE hash = ?1 AND revoked_at = 0 LIMIT 1",
    [Q_KEY_LIST] = "SELECT key_id, tenant, created_at, revoked_at FROM api_keys ORDER BY rowid",
    [Q_KEY_EXISTS] = "SELECT 1 FROM api_keys WHERE key_id = ?1",
    [Q_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at = 0",
    [Q_JOB_INSERT] = "INSERT INTO jobs(id, tenant, status, created_at, updated_at) "
                     "VALUES(?1, ?2, 0, ?3, ?3)",
    /* updated_at < 0: a job being removed by retention, not an upload */
    [Q_JOB_RECEIVING] = "SELECT jid FROM jobs WHERE id = ?1 AND status = 0 AND updated_at >= 0",
    [Q_JOB_TOUCH] = "UPDATE jobs SET updated_at = ?2 WHERE jid = ?1",
    [Q_ITEM_INSERT] = "INSERT INTO items(k, prev_idx, ref, data) VALUES(?1, ?2, ?3, ?4)",
    [Q_JOB_COMMIT] = "UPDATE jobs SET status = 1, workflow = ?2, client_reference = ?3, "
                     "total = ?4, pending = ?4, updated_at = ?5, workflow_version = ?6, "
                     "id = coalesce(?7, id), callback_url = ?8, callback_events = ?9, "
                     "priority = ?10, uses = ?11 WHERE jid = ?1",
    [Q_IDEM_GET] =
        "SELECT jid, body_hash, created_at FROM idem_keys WHERE tenant = ?1 AND key = ?2",
    /* REPLACE: an aged-out key (see idem_find) passes to the new job */
    [Q_IDEM_INSERT] = "INSERT OR REPLACE INTO idem_keys(tenant, key, jid, body_hash, created_at) "
                      "SELECT tenant, ?2, jid, coalesce(?3, ''), ?4 FROM jobs WHERE jid = ?1",
    [Q_IDEM_DELETE_JOB] = "DELETE FROM idem_keys WHERE jid = ?1",
    /* rowid order is first-seen order: a new row's rowid is above every existing one */
    [Q_STEPS_GET] = "SELECT step, passed, failed, skipped FROM job_steps WHERE jid = ?1 "
                    "ORDER BY rowid",
    [Q_STEPS_ADD] = "INSERT INTO job_steps(jid, step, passed, failed, skipped) "
                    "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(jid, step) DO UPDATE SET "
                    "passed = passed + excluded.passed, failed = failed + excluded.failed, "
                    "skipped = skipped + excluded.skipped",
    [Q_STEPS_DELETE_JOB] = "DELETE FROM job_steps WHERE jid = ?1",
    [Q_RETRY_JOB_INSERT] =
        "INSERT INTO jobs(id, tenant, workflow, workflow_version, parent_job, client_reference, "
        "status, total, pending, created_at, updated_at, priority, uses) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?11, ?7, ?7, ?8, ?8, ?9, ?10)",
    /* The failed items of the parent (key range [?2, ?3), via items_failed) become items
     * 0, 1, ... of the new job (key base ?1) in parent order; prev_idx links each to the
     * previous item of the same ref in the new job. */
    [Q_RETRY_ITEMS] =
        "INSERT INTO items(k, prev_idx, ref, data, parent_index) "
        "SELECT ?1 + idx, coalesce(lag(idx) OVER (PARTITION BY ref ORDER BY idx), -1), ref, "
        "data, pidx FROM (SELECT row_number() OVER (ORDER BY k) - 1 AS idx, ref, data, "
        "k - ?2 AS pidx FROM items WHERE status = 3 AND k >= ?2 AND k < ?3) ORDER BY idx",
    /* Retry staging (store_job_retry_stage): the oldest staging retry, its parent,
     * the last item staged so far (its index and parent index). */
    [Q_STAGE_PICK] = "SELECT jid, tenant, parent_job, total FROM jobs INDEXED BY jobs_staging "
                     "WHERE status = 0 AND parent_job <> '' AND updated_at >= 0 AND jid > ?1 "
                     "ORDER BY jid LIMIT 1",
    [Q_STAGE_PARENT] = "SELECT jid FROM jobs WHERE id = ?1 AND tenant = ?2 AND status > 0",
    [Q_STAGE_LAST] = "SELECT k - ?1, parent_index FROM items WHERE k >= ?1 AND k < ?2 "
                     "ORDER BY k DESC LIMIT 1",
    /* The next ?7 failed items of the parent (key range [?2 + ?6, ?3)) become items ?4,
     * ?4 + 1, ... of the retry (key base ?1); prev_idx links each to the previous item
     * of its ref in this batch, or else in earlier batches (retry_refs of job ?5). The
     * LIMIT sits inside, so a batch reads only its own rows. */
    [Q_STAGE_ITEMS] =
        "INSERT INTO items(k, prev_idx, ref, data, parent_index) "
        "SELECT ?1 + idx, coalesce(lag(idx) OVER (PARTITION BY ref ORDER BY idx), "
        "(SELECT last_idx FROM retry_refs r WHERE r.jid = ?5 AND r.ref = f.ref), -1), ref, "
        "data, pidx FROM (SELECT ?4 + row_number() OVER (ORDER BY k) - 1 AS idx, ref, data, "
        "k - ?2 AS pidx FROM (SELECT k, ref, data FROM items WHERE status = 3 AND k >= ?2 + ?6 "
        "AND k < ?3 ORDER BY k LIMIT ?7)) f ORDER BY idx",
    [Q_STAGE_REFS] =
        "INSERT INTO retry_refs(jid, ref, last_idx) "
        "SELECT ?1, ref, max(k) - ?2 FROM items WHERE k >= ?2 + ?3 AND k < ?2 + ?4 "
        "GROUP BY ref ON CONFLICT(jid, ref) DO UPDATE SET last_idx = excluded.last_idx",
    [Q_STAGE_REFS_DELETE] = "DELETE FROM retry_refs WHERE jid = ?1 AND ref IN "
                            "(SELECT ref FROM retry_refs WHERE jid = ?1 LIMIT ?2)",
    /* Staged: NotStarted with as many items as staged (the parent may have gone). */
    [Q_STAGE_DONE] = "UPDATE jobs SET status = 1, total = ?2, pending = ?2, updated_at = ?3 "
                     "WHERE jid = ?1",
    /* store_job_get also sees a staging retry (status 0 with a parent_job). */
    [Q_JOB_BY_ID_STAGING] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1 AND tenant = ?2 "
                            "AND (status > 0 OR parent_job <> '') AND updated_at >= 0",
    [Q_ITEMS_DELETE] = "DELETE FROM items WHERE k >= ?1 AND k < ?2",
    [Q_CLAIMS_DELETE_JOB] = "DELETE FROM claims WHERE jid = ?1",
    [Q_JOB_DELETE] = "DELETE FROM jobs WHERE jid = ?1",
    [Q_GC_SELECT] = "SELECT jid FROM jobs WHERE status = 0 AND updated_at < ?1 "
                    "AND (parent_job = '' OR updated_at < 0)",
    [Q_JOB_BY_ID] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1 AND tenant = ?2 AND status > 0",
    [Q_JOB_BY_JID] = "SELECT " JOB_COLS " FROM jobs WHERE jid = ?1",
    [Q_JOB_LIST] = "SELECT " JOB_COLS " FROM jobs WHERE tenant = ?1 AND status > 0 "
                   "AND (?2 < 0 OR status = ?2) AND jid < ?3 ORDER BY jid DESC LIMIT ?4",
    [Q_JOB_SAVE] = "UPDATE jobs SET status = ?2, outcome = ?3, error_code = ?4, pending = ?5, "
                   "processing = ?6, succeeded = ?7, failed = ?8, skipped = ?9, canceled = ?10, "
                   "started_at = ?11, last_progress_at = ?12, completed_at = ?13, win_at = ?14, "
                   "win_done = ?15, next_idx = ?16, cancel_at = ?17, last_claim = ?18, "
                   "updated_at = ?19 WHERE jid = ?1",
    [Q_ITEM_GET] = "SELECT " ITEM_LIST_COLS ", events FROM items WHERE k = ?1",
    [Q_ITEM_LIST] = "SELECT " ITEM_LIST_COLS " FROM items "
                    "WHERE k > ?1 AND k < ?2 AND " ITEM_FILTERS " "
                    "AND (?4 < 0 OR " EFFECTIVE " = ?4) ORDER BY k LIMIT ?5",
    /* Failed is never derived, so the partial index items_failed serves this one. */
    [Q_ITEM_LIST_FAILED] = "SELECT " ITEM_LIST_COLS " FROM items "
                           "WHERE status = 3 AND k > ?1 AND k < ?2 AND " ITEM_FILTERS " "
                           "ORDER BY k LIMIT ?5",
    [Q_ITEM_STATUS] = "SELECT status FROM items WHERE k = ?1",
    [Q_ITEMS_RANGE] = "SELECT k, status, attempts, prev_idx, ref, data FROM items "
                      "WHERE k >= ?1 AND k < ?2 ORDER BY k",
    [Q_ITEM_SET] = "UPDATE items SET status = ?2, attempts = attempts + ?3, result = ?4, "
                   "error_code = ?5, error_message = ?6, events = " EVENTS_APPEND ", "
                   "updated_at = ?8, failed_step = ?9, warnings = ?10 WHERE k = ?1 AND status = 0",
    [Q_CLAIM_EXPIRED] = "SELECT claim_id, jid, lo, hi, released FROM claims "
                        "WHERE lease_until <= ?1 ORDER BY lease_until LIMIT 1",
    [Q_CLAIM_GET] = "SELECT jid, lo, hi, remaining FROM claims WHERE claim_id = ?1 AND token = ?2",
    [Q_CLAIM_INSERT] = "INSERT INTO claims(token, jid, lo, hi, remaining, lease_until, claimed_at) "
                       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_CLAIM_UPDATE] = "UPDATE claims SET token = ?2, remaining = ?3, lease_until = ?4, "
                       "claimed_at = ?5, released = ?6 WHERE claim_id = ?1",
    [Q_CLAIM_REMAINING] = "UPDATE claims SET remaining = ?2 WHERE claim_id = ?1",
    [Q_CLAIM_DELETE] = "DELETE FROM claims WHERE claim_id = ?1",
/* Runnable: status IN (1, 2) AND next_idx < total, the condition of jobs_ready. */
#define RUNNABLE "jobs INDEXED BY jobs_ready WHERE status IN (1, 2) AND next_idx < total"
    /* The tenants with a runnable job (a skip scan: one index seek per tenant), the one
     * whose round ended longest ago first. */
    [Q_RUN_TENANTS] =
        "WITH RECURSIVE rt(tenant) AS ("
        "SELECT (SELECT tenant FROM " RUNNABLE " ORDER BY tenant LIMIT 1) "
        "UNION ALL SELECT (SELECT tenant FROM " RUNNABLE " AND tenant > rt.tenant "
        "ORDER BY tenant LIMIT 1) FROM rt WHERE rt.tenant IS NOT NULL) "
        "SELECT rt.tenant FROM rt LEFT JOIN tenants t ON t.tenant = rt.tenant "
        "WHERE rt.tenant IS NOT NULL ORDER BY coalesce(t.last_claim, 0), rt.tenant LIMIT ?1",
    [Q_RUN_JOBS] = "SELECT jid FROM " RUNNABLE " AND tenant = ?1 "
                   "ORDER BY priority DESC, last_claim, jid LIMIT ?2",
    /* The same, for a tenant at its active-job cap: only jobs already started. */
    [Q_RUN_JOBS_STARTED] = "SELECT jid FROM " RUNNABLE " AND tenant = ?1 AND status = 2 "
                           "ORDER BY priority DESC, last_claim, jid LIMIT ?2",
    [Q_TENANT_ACTIVE] = "SELECT count(*) FROM jobs INDEXED BY jobs_active "
                        "WHERE tenant = ?1 AND status IN (2, 3)",
    /* A new range of tenant ?1 under claim ?2: one turn; the last of the round moves
     * the tenant to the back. SET expressions see the row before the update. */
    [Q_TENANT_TURN] = "INSERT INTO tenants(tenant, last_claim) VALUES(?1, ?2) "
                      "ON CONFLICT(tenant) DO UPDATE SET "
                      "turns = CASE WHEN turns + 1 >= weight THEN 0 ELSE turns + 1 END, "
                      "last_claim = CASE WHEN turns + 1 >= weight THEN ?2 ELSE last_claim END",
    [Q_TENANT_WEIGHT] = "INSERT INTO tenants(tenant, weight) VALUES(?1, ?2) "
                        "ON CONFLICT(tenant) DO UPDATE SET weight = excluded.weight",
    [Q_DOC_GET] = "SELECT data, version, deleted, updated_at, job_id, item_index FROM docs "
                  "WHERE tenant = ?1 AND collection = ?2 AND ref = ?3",
    [Q_DOC_PUT] = "INSERT INTO docs(tenant, collection, ref, data, version, deleted, updated_at, "
                  "job_id, item_index) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                  "ON CONFLICT(tenant, collection, ref) DO UPDATE SET data = excluded.data, "
                  "version = excluded.version, deleted = excluded.deleted, "
                  "updated_at = excluded.updated_at, job_id = excluded.job_id, "
                  "item_index = excluded.item_index",
    [Q_DOC_LIST] = "SELECT ref, data, version, updated_at, job_id, item_index FROM docs "
                   "WHERE tenant = ?1 AND collection = ?2 AND ref > ?3 AND deleted = 0 "
                   "ORDER BY ref LIMIT ?4",
    [Q_STATS_JOBS] = "SELECT status, count(*), sum(pending), sum(processing) FROM jobs "
                     "GROUP BY status",
    [Q_STATS_CLAIMS] = "SELECT count(*) FROM claims WHERE lease_until > ?1",
    [Q_TENANT_LOAD] = "SELECT count(*), coalesce(sum(pending), 0) FROM jobs "
                      "WHERE tenant = ?1 AND status IN (1, 2, 3)",
    [Q_WF_NEXT] = "SELECT coalesce(max(version), 0) + 1 FROM workflows "
                  "WHERE tenant = ?1 AND name = ?2",
    [Q_WF_INSERT] = "INSERT INTO workflows(tenant, name, version, definition, created_at) "
                    "VALUES(?1, ?2, ?3, ?4, ?5)",
    /* ?3 > 0: that version, deleted or not; else the newest live version */
    [Q_WF_GET] = "SELECT " WF_COLS " FROM workflows WHERE tenant = ?1 AND name = ?2 "
                 "AND (CASE WHEN ?3 > 0 THEN version = ?3 ELSE deleted = 0 END) "
                 "ORDER BY version DESC LIMIT 1",
    /* A name's live rows are the versions put since its last delete; the newest row
     * of a name is live exactly when the name is. */
    [Q_WF_LIST] = "SELECT " WF_COLS " FROM workflows w WHERE tenant = ?1 AND name > ?2 "
                  "AND deleted = 0 AND version = (SELECT max(version) FROM workflows v "
                  "WHERE v.tenant = w.tenant AND v.name = w.name) ORDER BY name LIMIT ?3",
    [Q_WF_DELETE] = "UPDATE workflows SET deleted = 1 "
                    "WHERE tenant = ?1 AND name = ?2 AND deleted = 0",
    [Q_HOOK_OWNER] = "SELECT tenant FROM hooks WHERE name = ?1",
    [Q_HOOK_PUT] = "INSERT INTO hooks(name, tenant, definition, created_at, updated_at) "
                   "VALUES(?1, ?2, ?3, ?4, ?4) ON CONFLICT(name) DO UPDATE SET "
                   "definition = excluded.definition, updated_at = excluded.updated_at",
    [Q_HOOK_GET] = "SELECT " HOOK_COLS " FROM hooks WHERE name = ?1 "
                   "AND (?2 IS NULL OR tenant = ?2)",
    [Q_HOOK_LIST] = "SELECT " HOOK_COLS " FROM hooks WHERE tenant = ?1 AND name > ?2 "
                    "ORDER BY name LIMIT ?3",
    [Q_HOOK_DELETE] = "DELETE FROM hooks WHERE name = ?1 AND tenant = ?2",
    [Q_LIMIT_PUT] = "INSERT INTO limits(tenant, name, definition, created_at, updated_at) "
                    "VALUES(?1, ?2, ?3, ?4, ?4) ON CONFLICT(tenant, name) DO UPDATE SET "
                    "definition = excluded.definition, updated_at = excluded.updated_at",
    [Q_LIMIT_GET] = "SELECT " LIMIT_COLS " FROM limits WHERE tenant = ?1 AND name = ?2",
    [Q_LIMIT_LIST] = "SELECT " LIMIT_COLS " FROM limits WHERE tenant = ?1 AND name > ?2 "
                     "ORDER BY name LIMIT ?3",
    [Q_LIMIT_LIST_ALL] = "SELECT " LIMIT_COLS " FROM limits ORDER BY tenant, name LIMIT ?3",
    [Q_LIMIT_DELETE] = "DELETE FROM limits WHERE tenant = ?1 AND name = ?2",
    [Q_SECRET_PUT] = "INSERT INTO secrets(tenant, name, value, created_at, updated_at) "
                     "VALUES(?1, ?2, ?3, ?4, ?4) ON CONFLICT(tenant, name) DO UPDATE SET "
                     "value = excluded.value, updated_at = excluded.updated_at",
    [Q_SECRET_GET] = "SELECT " SECRET_COLS " FROM secrets WHERE tenant = ?1 AND name = ?2",
    [Q_SECRET_LIST] = "SELECT " SECRET_COLS " FROM secrets WHERE tenant = ?1 AND name > ?2 "
                      "ORDER BY name LIMIT ?3",
    [Q_SECRET_DELETE] = "DELETE FROM secrets WHERE tenant = ?1 AND name = ?2",
    [Q_BUCKET_GET] = "SELECT tat, epoch FROM buckets WHERE id = ?1",
    [Q_SEM_GET] = "SELECT held FROM sems WHERE id = ?1",
    [Q_SEM_PUT] = "INSERT INTO sems(id, held) VALUES(?1, ?2) "
                  "ON CONFLICT(id) DO UPDATE SET held = excluded.held",
    [Q_SEMS_CLEAR] = "DELETE FROM sems",
    [Q_BUCKET_PUT] = "INSERT INTO buckets(id, tat, epoch) VALUES(?1, ?2, ?3) "
                     "ON CONFLICT(id) DO UPDATE SET tat = excluded.tat, epoch = excluded.epoch",
    [Q_SWEEP_KEYS] = "DELETE FROM idem_keys WHERE (tenant, key) IN "
                     "(SELECT tenant, key FROM idem_keys WHERE created_at < ?1 LIMIT ?2)",
    [Q_SWEEP_HIDDEN] = "SELECT jid FROM jobs WHERE status = 0 AND updated_at < 0 LIMIT 1",
    [Q_SWEEP_EXPIRED] = "SELECT jid FROM jobs WHERE status IN (4, 5, 6) AND completed_at < ?1 "
                        "ORDER BY completed_at LIMIT 1",
    [Q_SWEEP_HIDE] = "UPDATE jobs SET status = 0, updated_at = -1 WHERE jid = ?1",
    [Q_SWEEP_ITEMS] = "DELETE FROM items WHERE k IN "
                      "(SELECT k FROM items WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT ?3)",
    /* One delivery per job (UNIQUE jid): OR IGNORE makes a repeated save of a terminal
     * job harmless. ?2 the event, ?3 its STORE_CB_* bit, ?4 now. */
    [Q_OUTBOX_ADD] = "INSERT OR IGNORE INTO outbox(id, jid, tenant, job_id, event, url, next_at, "
                     "created_at, updated_at) SELECT 'dlv_' || lower(hex(randomblob(12))), jid, "
                     "tenant, id, ?2, callback_url, ?4, ?4, ?4 FROM jobs WHERE jid = ?1 "
                     "AND callback_url IS NOT NULL AND (callback_events & ?3) <> 0",
    [Q_OUTBOX_DELETE_JOB] = "DELETE FROM outbox WHERE jid = ?1",
    [Q_OUTBOX_EXPIRE] = "UPDATE outbox SET lease_until = 0, token = '' "
                        "WHERE state = 0 AND lease_until > 0",
    [Q_OUTBOX_DUE] = "SELECT did, id, job_id, tenant, event, url, attempts, created_at, next_at, "
                     "updated_at FROM outbox WHERE state = 0 AND next_at <= ?1 "
                     "AND lease_until <= ?1 ORDER BY next_at LIMIT ?2",
    [Q_OUTBOX_LEASE] = "UPDATE outbox SET lease_until = ?2, token = ?3 WHERE did = ?1",
    /* ?5: the attempt as a JSON object text, or NULL */
    [Q_OUTBOX_RECORD] =
        "UPDATE outbox SET state = ?3, next_at = ?4, lease_until = 0, token = '', "
        "attempts = attempts + (?5 IS NOT NULL), updated_at = ?6, log = CASE WHEN ?5 IS NULL "
        "THEN log WHEN log = '[]' THEN '[' || ?5 || ']' "
        "ELSE substr(log, 1, length(log) - 1) || ',' || ?5 || ']' END "
        "WHERE id = ?1 AND token = ?2 AND token <> '' AND state = 0",
    [Q_OUTBOX_LIST] = "SELECT id, job_id, tenant, event, url, state, attempts, created_at, "
                      "next_at, updated_at, log FROM outbox WHERE jid = ?1 ORDER BY did",
    [Q_SETTING_ADD] = "INSERT OR IGNORE INTO settings(name, value, created_at) VALUES(?1, ?2, ?3)",
    [Q_SETTING_GET] = "SELECT value FROM settings WHERE name = ?1",
};

/* ---- connections ----------------------------------------------------------------- */

struct conn {
    sqlite3 *db;
    sqlite3_stmt *st[Q__COUNT];
    struct buf ev, res, tmp; /* scratch: events, result JSON, patched documents */
    size_t max_doc_bytes;    /* store_options.max_doc_bytes (0 there: the default) */
    int64_t retention_ms;    /* store_options.retention_ms, for store_job.expires_at */
    struct conn *next;       /* free list */
};

struct sq {
    char *path;
    struct store_options opt;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct conn *free_list;
    int nopen;
    /* checkpointer: a thread with its own connection, woken by the WAL hook */
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
    int wbusy;                      /* a writer holds the lock */
    uint64_t wnext, wserving;       /* requests' queue */
    uint64_t bgnext, bgserving;     /* background queue */
};

enum tx_mode {
    TX_READ = 0,
    TX_WRITE = 1,        /* a write a client request waits on */
    TX_WRITE_NOSYNC = 2, /* a background write whose loss in a crash is harmless; see DESIGN */
    TX_WRITE_BG = 3,     /* a background write (workers, tasks): behind TX_WRITE */
};

/* Maps an SQLite result code to a sluice error (E_SOFT for retryable ones). */
static int sqerr(int rc)
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

/* [out] *s: statement id of conn c, prepared on first use, reset and unbound. */
static int q(struct conn *c, enum qid id, sqlite3_stmt **s)
{
    if (!c->st[id]) {
        int rc = sqlite3_prepare_v3(c->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id],
                                    NULL);
        if (rc != SQLITE_OK)
            return sqerr(rc);
    } else {
        sqlite3_reset(c->st[id]);
        sqlite3_clear_bindings(c->st[id]);
    }
    *s = c->st[id];
    return 0;
}

/* 1 row, 0 done, negative error. */
static int step(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return sqerr(rc);
}

/* Runs a statement without parameters to completion. */
static int exec_q(struct conn *c, enum qid id)
{
    sqlite3_stmt *s;
    int rc = q(c, id, &s);
    if (rc < 0)
        return rc;
    while ((rc = step(s)) == 1)
        ;
    sqlite3_reset(s);
    return rc;
}

static void bind_str(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static void bind_strn(sqlite3_stmt *s, int i, const char *v, size_t n)
{
    if (v)
        sqlite3_bind_text64(s, i, v, n, SQLITE_STATIC, SQLITE_UTF8);
}

static char *col_dup(sqlite3_stmt *s, int i, size_t *len)
{
    const unsigned char *p = sqlite3_column_text(s, i);
    size_t n = (size_t)sqlite3_column_bytes(s, i);
    if (len)
        *len = p ? n : 0;
    return p ? xstrndup((const char *)p, n) : NULL;
}

static void col_copy(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
    const unsigned char *p = sqlite3_column_text(s, i);
    size_t n = p ? (size_t)sqlite3_column_bytes(s, i) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, p, n);
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

static void conn_free(struct conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < Q__COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    buf_release(&c->ev);
    buf_release(&c->res);
    buf_release(&c->tmp);
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

static int conn_open(struct sq *s, struct conn **out)
{
    int rc;
    struct conn *c = xcalloc(1, sizeof *c);

    rc = sqlite3_open_v2(s->path, &c->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = -SLUICE_E_STORE_IO;
        goto out;
    }
    sqlite3_busy_timeout(c->db, s->opt.busy_timeout_ms);
    c->retention_ms = s->opt.retention_ms;
    c->max_doc_bytes = s->opt.max_doc_bytes ? s->opt.max_doc_bytes : STORE_DEFAULT_MAX_DOC_BYTES;
    rc = sqlite3_exec(c->db,
                      "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=OFF; "
                      "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-32768;",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = sqerr(rc);
        goto out;
    }
    rc = exec_q(c, s->opt.synchronous_full ? Q_SYNC_FULL : Q_SYNC_NORMAL);
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

static int conn_get(struct sq *s, struct conn **out)
{
    struct conn *c = NULL;
    int rc = 0;

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
    s->nopen++;
    pthread_mutex_unlock(&s->mu);
    rc = conn_open(s, &c);
    if (rc < 0) {
        pthread_mutex_lock(&s->mu);
        s->nopen--;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    *out = c;
    return 0;
}

static void conn_put(struct sq *s, struct conn *c)
{
    pthread_mutex_lock(&s->mu);
    c->next = s->free_list;
    s->free_list = c;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Resets every statement still stepping, so no read lock outlives the transaction. */
static void reset_all(struct conn *c)
{
    sqlite3_stmt *s = NULL;
    while ((s = sqlite3_next_stmt(c->db, s)) != NULL)
        if (sqlite3_stmt_busy(s))
            sqlite3_reset(s);
}

typedef int (*tx_fn)(struct conn *c, void *ctx);
typedef void (*tx_undo_fn)(void *ctx);

/* Runs body(c, ctx) in one transaction (BEGIN IMMEDIATE when write), retrying the
 * whole transaction on soft errors with a short backoff: the one retry loop of this
 * backend. body must have no effect outside the transaction; when it succeeded but
 * the commit failed, undo(ctx) drops what it put in its outputs. Returns body's
 * result, or a negative error. */
static int run_tx_on(struct conn *c, int write, tx_fn body, tx_undo_fn undo, void *ctx)
{
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        rc = exec_q(c, write ? Q_BEGIN_IMM : Q_BEGIN);
        if (rc == 0) {
            rc = body(c, ctx);
            reset_all(c);
            if (rc >= 0) {
                int crc = exec_q(c, Q_COMMIT);
                if (crc == 0)
                    break;
                if (undo)
                    undo(ctx);
                rc = crc;
            }
            if (!sqlite3_get_autocommit(c->db))
                exec_q(c, Q_ROLLBACK);
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

/* Drops a connection instead of returning it to the pool. */
static void conn_discard(struct sq *s, struct conn *c)
{
    conn_free(c);
    pthread_mutex_lock(&s->mu);
    s->nopen--;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* run_tx_on() on a pooled connection. TX_WRITE_NOSYNC commits without fsync: the
 * next synchronous commit or checkpoint makes it durable along with itself. */
static int run_tx(struct sq *s, enum tx_mode mode, tx_fn body, tx_undo_fn undo, void *ctx)
{
    struct conn *c;
    int rc = conn_get(s, &c);
    if (rc < 0)
        return rc;
    if (mode == TX_WRITE_NOSYNC && (rc = exec_q(c, Q_SYNC_OFF)) < 0)
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
        int rc2 = exec_q(c, s->opt.synchronous_full ? Q_SYNC_FULL : Q_SYNC_NORMAL);
        if (rc2 < 0) { /* a connection left without fsync must serve no one else */
            conn_discard(s, c);
            return rc < 0 ? rc : (rc2 == E_SOFT ? -SLUICE_E_STORE_BUSY : rc2);
        }
    }
out:
    conn_put(s, c);
    return rc == E_SOFT ? -SLUICE_E_STORE_BUSY : rc;
}

/* The checkpointer thread: PASSIVE checkpoints (never blocking readers or the
 * writer) whenever the WAL hook asks, with the store's synchronous setting, so the
 * WAL is fsynced before its frames are copied (this covers TX_WRITE_NOSYNC frames). */
static void *ckpt_main(void *arg)
{
    struct sq *s = arg;
    struct conn *c = NULL;
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

static int migrate_body(struct conn *c, void *ctx)
{
    (void)ctx;
    int rc;
    int64_t have = 0;
    const int64_t want = (int64_t)(sizeof migrations / sizeof migrations[0]);
    sqlite3_stmt *s = NULL;

    rc = sqlite3_exec(c->db,
                      "CREATE TABLE IF NOT EXISTS schema_version("
                      "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = sqerr(rc);
        goto out;
    }
    rc = sqlite3_prepare_v2(c->db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &s,
                            NULL);
    if (rc != SQLITE_OK || (rc = step(s)) != 1) {
        rc = rc < 0 ? rc : -SLUICE_E_INTERNAL;
        goto out;
    }
    have = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    s = NULL;
    if (have > want) { /* written by a newer sluice */
        rc = -SLUICE_E_INTERNAL;
        goto out;
    }
    for (int64_t v = have + 1; v <= want; v++) {
        rc = sqlite3_exec(c->db, migrations[v - 1], NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            rc = sqerr(rc);
            goto out;
        }
        rc = sqlite3_prepare_v2(
            c->db, "INSERT INTO schema_version(version, applied_at) VALUES(?1, ?2)", -1, &s, NULL);
        if (rc != SQLITE_OK) {
            rc = sqerr(rc);
            goto out;
        }
        sqlite3_bind_int64(s, 1, v);
        sqlite3_bind_int64(s, 2, clock_now_ms());
        rc = step(s);
        sqlite3_finalize(s);
        s = NULL;
        if (rc < 0)
            goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(s);
    return rc;
}

static void sq_close(void *impl)
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
    while (s->free_list) { /* the last close checkpoints and removes the WAL */
        struct conn *c = s->free_list;
        s->free_list = c->next;
        conn_free(c);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
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

static int sq_open(const char *location, const struct store_options *opt, void **impl)
{
    int rc;
    struct conn *c = NULL;
    if ((rc = create_private(location)) < 0)
        return rc;
    struct sq *s = xcalloc(1, sizeof *s);

    s->path = xstrdup(location);
    s->opt = *opt;
    if (s->opt.busy_timeout_ms <= 0)
        s->opt.busy_timeout_ms = 5000;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_init(&s->wmu, NULL);
    pthread_cond_init(&s->wcv, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    rc = conn_get(s, &c);
    if (rc < 0)
        goto out;
    rc = run_tx_on(c, 1, migrate_body, NULL, NULL);
    conn_put(s, c);
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

static int ping_body(struct conn *c, void *ctx)
{
    (void)ctx;
    return exec_q(c, Q_PING);
}

static int sq_ping(void *impl)
{
    return run_tx(impl, TX_READ, ping_body, NULL, NULL);
}

static int claims_expire_body(struct conn *c, void *ctx)
{
    (void)ctx;
    int rc = exec_q(c, Q_CLAIMS_EXPIRE);
    if (rc < 0)
        return rc;
    int n = sqlite3_changes(c->db);
    rc = exec_q(c, Q_OUTBOX_EXPIRE); /* leased deliveries: due again at once */
    if (rc >= 0)
        rc = exec_q(c, Q_SEMS_CLEAR); /* concurrency units the dead process held */
    return rc < 0 ? rc : n;
}

static int sq_expire_claims(void *impl)
{
    return run_tx(impl, TX_WRITE_BG, claims_expire_body, NULL, NULL);
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
    sqlite3_stmt *s;
    int rc = q(c, Q_KEY_INSERT, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->key_id);
    bind_str(s, 2, x->tenant);
    bind_str(s, 3, x->hash);
    sqlite3_bind_int64(s, 4, clock_now_ms());
    rc = step(s);
    return rc < 0 ? rc : 0;
}

static int sq_key_create(void *impl, const char *key_id, const char *tenant, const char *hash_hex)
{
    struct key_ctx x = {.key_id = key_id, .tenant = tenant, .hash = hash_hex};
    return run_tx(impl, TX_WRITE, key_create_body, NULL, &x);
}

static int key_lookup_body(struct conn *c, void *vctx)
{
    struct key_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_KEY_LOOKUP, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->hash);
    rc = step(s);
    if (rc == 1)
        col_copy(s, 0, x->tenant_out, STORE_NAME_MAX);
    return rc;
}

static int sq_key_lookup(void *impl, const char *hash_hex, char tenant[STORE_NAME_MAX])
{
    struct key_ctx x = {.hash = hash_hex, .tenant_out = tenant};
    return run_tx(impl, TX_READ, key_lookup_body, NULL, &x);
}

static int key_list_body(struct conn *c, void *vctx)
{
    struct key_ctx *x = vctx;
    sqlite3_stmt *s;
    size_t cap = 0;
    int rc = q(c, Q_KEY_LIST, &s);
    if (rc < 0)
        return rc;
    x->list = NULL;
    x->n = 0;
    while ((rc = step(s)) == 1) {
        if (x->n == cap) {
            cap = cap ? cap * 2 : 16;
            x->list = xrealloc(x->list, cap * sizeof *x->list);
        }
        struct store_key *k = &x->list[x->n++];
        col_copy(s, 0, k->key_id, sizeof k->key_id);
        col_copy(s, 1, k->tenant, sizeof k->tenant);
        k->created_at = sqlite3_column_int64(s, 2);
        k->revoked_at = sqlite3_column_int64(s, 3);
    }
    if (rc < 0) {
        free(x->list);
        x->list = NULL;
        x->n = 0;
    }
    return rc;
}

static void key_list_undo(void *vctx)
{
    struct key_ctx *x = vctx;
    free(x->list);
    x->list = NULL;
    x->n = 0;
}

static int sq_key_list(void *impl, struct store_key **out, size_t *n)
{
    struct key_ctx x = {0};
    int rc = run_tx(impl, TX_READ, key_list_body, key_list_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    return rc < 0 ? rc : 0;
}

static int key_revoke_body(struct conn *c, void *vctx)
{
    struct key_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_KEY_EXISTS, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->key_id);
    rc = step(s);
    if (rc <= 0)
        return rc;
    if ((rc = q(c, Q_KEY_REVOKE, &s)) < 0)
        return rc;
    bind_str(s, 1, x->key_id);
    sqlite3_bind_int64(s, 2, clock_now_ms());
    rc = step(s);
    return rc < 0 ? rc : 1;
}

static int sq_key_revoke(void *impl, const char *key_id)
{
    struct key_ctx x = {.key_id = key_id};
    return run_tx(impl, TX_WRITE, key_revoke_body, NULL, &x);
}

/* ---- tenants --------------------------------------------------------------------- */

struct weight_ctx {
    const char *tenant;
    int weight;
};

static int tenant_weight_body(struct conn *c, void *vctx)
{
    struct weight_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_TENANT_WEIGHT, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    sqlite3_bind_int(s, 2, x->weight);
    rc = step(s);
    return rc < 0 ? rc : 0;
}

static int sq_tenant_set_weight(void *impl, const char *tenant, int weight)
{
    struct weight_ctx x = {.tenant = tenant, .weight = weight};
    return run_tx(impl, TX_WRITE, tenant_weight_body, NULL, &x);
}

/* ---- job rows -------------------------------------------------------------------- */

static int job_terminal(int status);

/* A job row: the public struct plus the claim cursor and cancel point. */
struct jobrow {
    int64_t jid, cursor, cancel_at, last_claim;
    struct store_job j;
};

static void read_job(const struct conn *c, sqlite3_stmt *s, struct jobrow *r)
{
    struct store_job *j = &r->j;
    memset(r, 0, sizeof *r);
    r->jid = sqlite3_column_int64(s, 0);
    col_copy(s, 1, j->id, sizeof j->id);
    col_copy(s, 2, j->tenant, sizeof j->tenant);
    col_copy(s, 3, j->workflow, sizeof j->workflow);
    j->client_reference = col_dup(s, 4, NULL);
    j->status = sqlite3_column_int(s, 5);
    j->outcome = sqlite3_column_int(s, 6);
    col_copy(s, 7, j->error_code, sizeof j->error_code);
    j->counts.total = sqlite3_column_int64(s, 8);
    j->counts.pending = sqlite3_column_int64(s, 9);
    j->counts.processing = sqlite3_column_int64(s, 10);
    j->counts.succeeded = sqlite3_column_int64(s, 11);
    j->counts.failed = sqlite3_column_int64(s, 12);
    j->counts.skipped = sqlite3_column_int64(s, 13);
    j->counts.canceled = sqlite3_column_int64(s, 14);
    j->created_at = sqlite3_column_int64(s, 15);
    j->started_at = sqlite3_column_int64(s, 16);
    j->last_progress_at = sqlite3_column_int64(s, 17);
    j->completed_at = sqlite3_column_int64(s, 18);
    j->win_at = sqlite3_column_int64(s, 19);
    j->win_done = sqlite3_column_int64(s, 20);
    r->cursor = sqlite3_column_int64(s, 21);
    r->cancel_at = sqlite3_column_int64(s, 22);
    r->last_claim = sqlite3_column_int64(s, 23);
    j->workflow_version = sqlite3_column_int64(s, 24);
    col_copy(s, 25, j->parent_job, sizeof j->parent_job);
    j->priority = sqlite3_column_int(s, 26);
    j->uses = col_dup(s, 27, NULL);
    j->seq = r->jid;
    if (job_terminal(j->status) && j->completed_at > 0 && c->retention_ms > 0)
        j->expires_at = j->completed_at + c->retention_ms;
}

/* Loads a visible job of tenant by public id: 1 found, 0 not. */
static int job_load(struct conn *c, const char *tenant, const char *job_id, struct jobrow *r)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_JOB_BY_ID, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, job_id);
    bind_str(s, 2, tenant);
    rc = step(s);
    if (rc == 1)
        read_job(c, s, r);
    sqlite3_reset(s);
    return rc;
}

/* job_load for readers: also a staging retry (status 0 with a parent_job), which
 * store.c shows NotStarted. Writers use job_load and do not see it. */
static int job_load_visible(struct conn *c, const char *tenant, const char *job_id,
                            struct jobrow *r)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_JOB_BY_ID_STAGING, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, job_id);
    bind_str(s, 2, tenant);
    rc = step(s);
    if (rc == 1)
        read_job(c, s, r);
    sqlite3_reset(s);
    return rc;
}

static int job_load_jid(struct conn *c, int64_t jid, struct jobrow *r)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_JOB_BY_JID, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, jid);
    rc = step(s);
    if (rc == 1)
        read_job(c, s, r);
    sqlite3_reset(s);
    return rc == 0 ? -SLUICE_E_INTERNAL : rc; /* callers hold a reference to the row */
}

/* Loads the step counts of job jid into j->steps (heap, first-seen order). */
static int job_load_steps(struct conn *c, int64_t jid, struct store_job *j)
{
    sqlite3_stmt *s;
    size_t cap = 0;
    int rc = q(c, Q_STEPS_GET, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, jid);
    while ((rc = step(s)) == 1) {
        if (j->nsteps == cap) {
            cap = cap ? cap * 2 : 8;
            j->steps = xrealloc(j->steps, cap * sizeof *j->steps);
        }
        struct store_step_count *sc = &j->steps[j->nsteps++];
        sc->step = col_dup(s, 0, NULL);
        if (!sc->step)
            sc->step = xstrdup("");
        sc->passed = sqlite3_column_int64(s, 1);
        sc->failed = sqlite3_column_int64(s, 2);
        sc->skipped = sqlite3_column_int64(s, 3);
    }
    sqlite3_reset(s);
    return rc;
}

/* Writes the job row back; when the job is terminal, also queues its completion
 * callback (once: later saves of a terminal job add nothing). */
static int job_save(struct conn *c, const struct jobrow *r, int64_t now)
{
    const struct store_job *j = &r->j;
    sqlite3_stmt *s;
    int rc = q(c, Q_JOB_SAVE, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, r->jid);
    sqlite3_bind_int(s, 2, j->status);
    sqlite3_bind_int(s, 3, j->outcome);
    bind_str(s, 4, j->error_code);
    sqlite3_bind_int64(s, 5, j->counts.pending);
    sqlite3_bind_int64(s, 6, j->counts.processing);
    sqlite3_bind_int64(s, 7, j->counts.succeeded);
    sqlite3_bind_int64(s, 8, j->counts.failed);
    sqlite3_bind_int64(s, 9, j->counts.skipped);
    sqlite3_bind_int64(s, 10, j->counts.canceled);
    sqlite3_bind_int64(s, 11, j->started_at);
    sqlite3_bind_int64(s, 12, j->last_progress_at);
    sqlite3_bind_int64(s, 13, j->completed_at);
    sqlite3_bind_int64(s, 14, j->win_at);
    sqlite3_bind_int64(s, 15, j->win_done);
    sqlite3_bind_int64(s, 16, r->cursor);
    sqlite3_bind_int64(s, 17, r->cancel_at);
    sqlite3_bind_int64(s, 18, r->last_claim);
    sqlite3_bind_int64(s, 19, now);
    if ((rc = step(s)) < 0 || !job_terminal(j->status))
        return rc < 0 ? rc : 0;
    /* Every transition to a terminal state goes through here: the callback owed for it
     * is queued in the same transaction (see COMPLETION CALLBACKS in store.h). */
    const char *event = j->status == JOB_SUCCEEDED ? "job.completed"
                        : j->status == JOB_FAILED  ? "job.failed"
                                                   : "job.canceled";
    int bit = j->status == JOB_SUCCEEDED ? STORE_CB_COMPLETED
              : j->status == JOB_FAILED  ? STORE_CB_FAILED
                                         : STORE_CB_CANCELED;
    if ((rc = q(c, Q_OUTBOX_ADD, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, r->jid);
    bind_str(s, 2, event);
    sqlite3_bind_int(s, 3, bit);
    sqlite3_bind_int64(s, 4, now);
    rc = step(s);
    return rc < 0 ? rc : 0;
}

/* The job's last transition: Running with nothing left -> Succeeded/Failed;
 * Canceling with nothing in flight -> Canceled. */
static void job_maybe_finish(struct jobrow *r, int64_t now)
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
    } else if (j->status == JOB_CANCELING && j->counts.processing == 0) {
        j->status = JOB_CANCELED;
        j->completed_at = now;
    }
}

static int job_terminal(int status)
{
    return status == JOB_SUCCEEDED || status == JOB_FAILED || status == JOB_CANCELED;
}

/* ---- submitting ------------------------------------------------------------------ */

struct submit_ctx {
    const char *tenant, *job_id, *new_job_id;
    const struct store_job_meta *meta;
    const struct store_new_item *items;
    size_t n;
    int64_t total, older_than;
    struct store_job *out;
    int removed;
    int staging; /* job_retry_begin: the retry is created staging, without items */
};

static int job_begin_body(struct conn *c, void *vctx)
{
    struct submit_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_JOB_INSERT, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->job_id);
    bind_str(s, 2, x->tenant);
    sqlite3_bind_int64(s, 3, clock_now_ms());
    rc = step(s);
    return rc < 0 ? rc : 0;
}

static int sq_job_begin(void *impl, const char *tenant, const char *job_id)
{
    struct submit_ctx x = {.tenant = tenant, .job_id = job_id};
    return run_tx(impl, TX_WRITE, job_begin_body, NULL, &x);
}

/* jid of a Receiving job, or 0 (not found / no longer receiving). */
static int receiving_jid(struct conn *c, const char *job_id, int64_t *jid)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_JOB_RECEIVING, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, job_id);
    rc = step(s);
    if (rc == 1)
        *jid = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc;
}

static int add_items_body(struct conn *c, void *vctx)
{
    struct submit_ctx *x = vctx;
    sqlite3_stmt *s;
    int64_t jid = 0;
    int rc = receiving_jid(c, x->job_id, &jid);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_NOT_FOUND;
    if ((rc = q(c, Q_ITEM_INSERT, &s)) < 0)
        return rc;
    for (size_t i = 0; i < x->n; i++) {
        const struct store_new_item *it = &x->items[i];
        if (it->index < 0 || it->index >= 4294967296LL)
            return -SLUICE_E_INVALID_PARAMETER;
        sqlite3_bind_int64(s, 1, KEY(jid, it->index));
        sqlite3_bind_int64(s, 2, it->prev_idx);
        bind_strn(s, 3, it->ref, it->ref_len);
        if (it->data)
            bind_strn(s, 4, it->data, it->data_len);
        else
            sqlite3_bind_null(s, 4);
        rc = step(s);
        sqlite3_reset(s);
        if (rc < 0)
            return rc;
    }
    if ((rc = q(c, Q_JOB_TOUCH, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, jid);
    sqlite3_bind_int64(s, 2, clock_now_ms());
    rc = step(s);
    return rc < 0 ? rc : 0;
}

static int sq_job_add_items(void *impl, const char *job_id, const struct store_new_item *items,
                            size_t n)
{
    /* No fsync: a Receiving job is worthless after a crash (see DESIGN). */
    struct submit_ctx x = {.job_id = job_id, .items = items, .n = n};
    return run_tx(impl, TX_WRITE_NOSYNC, add_items_body, NULL, &x);
}

/* Deletes a job's items, claims, step counts, idempotency key and row. */
static int job_remove(struct conn *c, int64_t jid)
{
    static const enum qid by_jid[] = {Q_CLAIMS_DELETE_JOB, Q_STEPS_DELETE_JOB, Q_IDEM_DELETE_JOB,
                                      Q_OUTBOX_DELETE_JOB, Q_JOB_DELETE};
    sqlite3_stmt *s;
    int rc = q(c, Q_ITEMS_DELETE, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, KEY(jid, 0));
    sqlite3_bind_int64(s, 2, KEY(jid + 1, 0));
    if ((rc = step(s)) < 0)
        return rc;
    for (size_t i = 0; i < sizeof by_jid / sizeof by_jid[0]; i++) {
        if ((rc = q(c, by_jid[i], &s)) < 0)
            return rc;
        sqlite3_bind_int64(s, 1, jid);
        if ((rc = step(s)) < 0)
            return rc;
    }
    return 0;
}

/* The job an idempotency key of tenant names: 1 ([out] *jid) when the request
 * replays, 0 when no key counts (none, or created before m->idem_not_before: the
 * caller's insert replaces it), -SLUICE_E_IDEMPOTENCY_KEY_REUSED when the key covers
 * another request (both hashes known and different). */
static int idem_find(struct conn *c, const char *tenant, const struct store_job_meta *m,
                     int64_t *jid)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_IDEM_GET, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, tenant);
    bind_str(s, 2, m->idem_key);
    rc = step(s);
    if (rc == 1) {
        const char *h = (const char *)sqlite3_column_text(s, 1);
        if (sqlite3_column_int64(s, 2) < m->idem_not_before)
            rc = 0;
        else if (m->body_hash && m->body_hash[0] && h && h[0] && strcmp(h, m->body_hash) != 0)
            rc = -SLUICE_E_IDEMPOTENCY_KEY_REUSED;
        else
            *jid = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    return rc;
}

/* Records m's idempotency key for job jid. */
static int idem_insert(struct conn *c, int64_t jid, const struct store_job_meta *m, int64_t now)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_IDEM_INSERT, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, jid);
    bind_str(s, 2, m->idem_key);
    bind_str(s, 3, m->body_hash);
    sqlite3_bind_int64(s, 4, now);
    rc = step(s);
    return rc < 0 ? rc : 0;
}

static int job_commit_body(struct conn *c, void *vctx)
{
    struct submit_ctx *x = vctx;
    const struct store_job_meta *m = x->meta;
    sqlite3_stmt *s;
    int64_t jid = 0, existing = 0;
    int64_t now = clock_now_ms();
    struct jobrow r;
    int result = 1;
    int rc = receiving_jid(c, x->job_id, &jid);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_NOT_FOUND;
    if (m->idem_key) {
        if ((rc = job_load_jid(c, jid, &r)) < 0)
            return rc;
        rc = idem_find(c, r.j.tenant, m, &existing);
        store_job_release(&r.j);
        if (rc < 0)
            return rc;
    }
    if (existing) {
        /* Already done once: the staged copy goes, the caller gets the first job. */
        if ((rc = job_remove(c, jid)) < 0)
            return rc;
        jid = existing;
        result = 2;
    } else {
        if ((rc = q(c, Q_JOB_COMMIT, &s)) < 0)
            return rc;
        sqlite3_bind_int64(s, 1, jid);
        bind_str(s, 2, m->workflow ? m->workflow : "");
        bind_str(s, 3, m->client_reference);
        sqlite3_bind_int64(s, 4, x->total);
        sqlite3_bind_int64(s, 5, now);
        sqlite3_bind_int64(s, 6, m->workflow_version);
        bind_str(s, 7, m->job_id); /* unbound = NULL: keep the staged id */
        bind_str(s, 8, m->callback_url);
        sqlite3_bind_int(s, 9, m->callback_url ? (m->callback_events ? m->callback_events
                                                                     : STORE_CB_ALL)
                                               : 0);
        sqlite3_bind_int(s, 10, m->priority);
        bind_str(s, 11, m->uses && *m->uses ? m->uses : NULL);
        if ((rc = step(s)) < 0)
            return rc; /* -SLUICE_E_CONFLICT: m->job_id names another job */
        if (m->idem_key && (rc = idem_insert(c, jid, m, now)) < 0)
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
    if (x->out)
        store_job_release(x->out);
}

static int sq_job_commit(void *impl, const char *job_id, const struct store_job_meta *meta,
                         int64_t total, struct store_job *out)
{
    struct store_job_meta none = {0};
    struct submit_ctx x = {
        .job_id = job_id, .meta = meta ? meta : &none, .total = total, .out = out};
    return run_tx(impl, TX_WRITE, job_commit_body, job_out_undo, &x);
}

static int job_retry_body(struct conn *c, void *vctx)
{
    struct submit_ctx *x = vctx;
    struct jobrow r;
    sqlite3_stmt *s;
    int64_t now = clock_now_ms(), existing = 0;
    int rc;
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
    rc = job_load(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    if (!job_terminal(r.j.status)) {
        rc = -SLUICE_E_CONFLICT;
        goto out;
    }
    int64_t n = r.j.counts.failed; /* counts move with the rows: this is the row count */
    if (n == 0) {
        rc = -SLUICE_E_EMPTY_JOB;
        goto out;
    }
    if ((rc = q(c, Q_RETRY_JOB_INSERT, &s)) < 0)
        goto out;
    bind_str(s, 1, x->new_job_id);
    bind_str(s, 2, r.j.tenant);
    bind_str(s, 3, r.j.workflow);
    sqlite3_bind_int64(s, 4, r.j.workflow_version);
    bind_str(s, 5, r.j.id);
    bind_str(s, 6, r.j.client_reference);
    sqlite3_bind_int64(s, 7, n);
    sqlite3_bind_int64(s, 8, now);
    sqlite3_bind_int(s, 9, r.j.priority); /* a retry runs at its parent's priority */
    bind_str(s, 10, r.j.uses);            /* ... and consumes the same limits */
    sqlite3_bind_int(s, 11, x->staging ? JOB_RECEIVING : JOB_NOT_STARTED);
    if ((rc = step(s)) < 0)
        goto out;
    int64_t jid = sqlite3_last_insert_rowid(c->db);
    if (x->staging) /* store_job_retry_stage copies the items */
        goto keyed;
    if ((rc = q(c, Q_RETRY_ITEMS, &s)) < 0)
        goto out;
    sqlite3_bind_int64(s, 1, KEY(jid, 0));
    sqlite3_bind_int64(s, 2, KEY(r.jid, 0));
    sqlite3_bind_int64(s, 3, KEY(r.jid + 1, 0));
    if ((rc = step(s)) < 0)
        goto out;
    if (sqlite3_changes64(c->db) != n) { /* the job's failed count disagrees with its rows */
        rc = -SLUICE_E_INTERNAL;
        goto out;
    }
keyed:
    if (x->meta && x->meta->idem_key && (rc = idem_insert(c, jid, x->meta, now)) < 0)
        goto out;
    store_job_release(&r.j);
    if (x->out) {
        if ((rc = job_load_jid(c, jid, &r)) < 0)
            goto out;
        *x->out = r.j;
        memset(&r.j, 0, sizeof r.j); /* now owned by out */
    }
    rc = 1;
out:
    store_job_release(&r.j);
    return rc;
}

static int sq_job_retry(void *impl, const char *tenant, const char *job_id, const char *new_job_id,
                        const struct store_job_meta *meta, struct store_job *out)
{
    struct submit_ctx x = {
        .tenant = tenant, .job_id = job_id, .new_job_id = new_job_id, .meta = meta, .out = out};
    return run_tx(impl, TX_WRITE, job_retry_body, job_out_undo, &x);
}

static int sq_job_retry_begin(void *impl, const char *tenant, const char *job_id,
                              const char *new_job_id, const struct store_job_meta *meta,
                              struct store_job *out)
{
    struct submit_ctx x = {.tenant = tenant,
                           .job_id = job_id,
                           .new_job_id = new_job_id,
                           .meta = meta,
                           .out = out,
                           .staging = 1};
    return run_tx(impl, TX_WRITE, job_retry_body, job_out_undo, &x);
}

struct stage_ctx {
    size_t max_rows;
    char *job_id;  /* [out] STORE_ID_MAX */
    int64_t after; /* pick the first staging retry with jid > after */
    int64_t *seq;  /* [out] the jid picked; may be NULL */
};

/* One batch of the oldest staging retry: copy up to max_rows failed items of the
 * parent, then (all copied) forget its retry_refs in batches, then make it NotStarted.
 * Where it stands is read from the rows themselves (the last item staged), so a crash
 * between batches loses and doubles nothing. */
static int stage_body(struct conn *c, void *vctx)
{
    struct stage_ctx *x = vctx;
    sqlite3_stmt *s;
    char tenant[STORE_NAME_MAX], parent[STORE_ID_MAX];
    int64_t jid, total, pjid = 0, staged = 0, pnext = 0;
    int rc = q(c, Q_STAGE_PICK, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, x->after);
    if ((rc = step(s)) != 1) {
        sqlite3_reset(s);
        return rc; /* 0: nothing staging */
    }
    jid = sqlite3_column_int64(s, 0);
    if (x->seq)
        *x->seq = jid;
    col_copy(s, 1, tenant, sizeof tenant);
    col_copy(s, 2, parent, sizeof parent);
    total = sqlite3_column_int64(s, 3);
    sqlite3_reset(s);
    if ((rc = q(c, Q_JOB_BY_JID, &s)) < 0) /* the retry's public id, for the caller */
        return rc;
    sqlite3_bind_int64(s, 1, jid);
    if ((rc = step(s)) == 1)
        col_copy(s, 1, x->job_id, STORE_ID_MAX);
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if ((rc = q(c, Q_STAGE_LAST, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, KEY(jid, 0));
    sqlite3_bind_int64(s, 2, KEY(jid + 1, 0));
    if ((rc = step(s)) == 1) {
        staged = sqlite3_column_int64(s, 0) + 1;
        pnext = sqlite3_column_int64(s, 1) + 1;
    }
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if (staged < total) {
        if ((rc = q(c, Q_STAGE_PARENT, &s)) < 0)
            return rc;
        bind_str(s, 1, parent);
        bind_str(s, 2, tenant);
        if ((rc = step(s)) == 1)
            pjid = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (rc < 0)
            return rc;
    }
    if (staged < total && pjid) {
        if ((rc = q(c, Q_STAGE_ITEMS, &s)) < 0)
            return rc;
        sqlite3_bind_int64(s, 1, KEY(jid, 0));
        sqlite3_bind_int64(s, 2, KEY(pjid, 0));
        sqlite3_bind_int64(s, 3, KEY(pjid + 1, 0));
        sqlite3_bind_int64(s, 4, staged);
        sqlite3_bind_int64(s, 5, jid);
        sqlite3_bind_int64(s, 6, pnext);
        sqlite3_bind_int64(s, 7,
                           (int64_t)(total - staged < (int64_t)x->max_rows ? total - staged
                                                                           : (int64_t)x->max_rows));
        if ((rc = step(s)) < 0)
            return rc;
        int64_t n = sqlite3_changes64(c->db);
        if (n > 0) {
            if ((rc = q(c, Q_STAGE_REFS, &s)) < 0)
                return rc;
            sqlite3_bind_int64(s, 1, jid);
            sqlite3_bind_int64(s, 2, KEY(jid, 0));
            sqlite3_bind_int64(s, 3, staged);
            sqlite3_bind_int64(s, 4, staged + n);
            if ((rc = step(s)) < 0)
                return rc;
            return 1;
        }
        /* no failed item left in the parent: fewer than counted (cannot happen while
         * the parent is terminal); end with what is staged */
    }
    /* Everything staged (or the parent is gone): drop the ref links, then publish. */
    if ((rc = q(c, Q_STAGE_REFS_DELETE, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, jid);
    sqlite3_bind_int64(s, 2, (int64_t)x->max_rows);
    if ((rc = step(s)) < 0)
        return rc;
    if (sqlite3_changes64(c->db) > 0)
        return 1;
    if (staged == 0) { /* the parent went before anything was staged: nothing to retry */
        if ((rc = job_remove(c, jid)) < 0)
            return rc;
        return 2;
    }
    if ((rc = q(c, Q_STAGE_DONE, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, jid);
    sqlite3_bind_int64(s, 2, staged);
    sqlite3_bind_int64(s, 3, clock_now_ms());
    if ((rc = step(s)) < 0)
        return rc;
    return 2;
}

static int sq_job_retry_stage(void *impl, size_t max_rows, int64_t *cursor, char *job_id)
{
    struct stage_ctx x = {max_rows ? max_rows : 1, job_id, cursor ? *cursor : 0, cursor};
    job_id[0] = '\0';
    return run_tx(impl, TX_WRITE_BG, stage_body, NULL, &x);
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

static int sq_job_abort(void *impl, const char *job_id)
{
    struct submit_ctx x = {.job_id = job_id};
    int rc = run_tx(impl, TX_WRITE, job_abort_body, NULL, &x);
    return rc < 0 ? rc : 0;
}

static int gc_body(struct conn *c, void *vctx)
{
    struct submit_ctx *x = vctx;
    sqlite3_stmt *s;
    int64_t *jids = NULL;
    size_t n = 0, cap = 0;
    int rc = q(c, Q_GC_SELECT, &s);
    if (rc < 0)
        goto out;
    sqlite3_bind_int64(s, 1, x->older_than);
    while ((rc = step(s)) == 1) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            jids = xrealloc(jids, cap * sizeof *jids);
        }
        jids[n++] = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((rc = job_remove(c, jids[i])) < 0)
            goto out;
    rc = (int)n;
out:
    free(jids);
    return rc;
}

static int sq_gc_receiving(void *impl, int64_t older_than)
{
    struct submit_ctx x = {.older_than = older_than};
    return run_tx(impl, TX_WRITE_BG, gc_body, NULL, &x);
}

/* ---- retention ------------------------------------------------------------------- */

struct sweep_ctx {
    int64_t jobs_before, keys_before;
    int64_t budget;
};

/* jid of the job to remove next: one hidden by an earlier call first, else the
 * terminal job that completed first before x->jobs_before, which gets hidden (its
 * claims, step counts and keys go at once: they are few). 0: nothing to remove. */
static int sweep_next_job(struct conn *c, const struct sweep_ctx *x, int64_t *jid, int64_t *removed)
{
    static const enum qid by_jid[] = {Q_SWEEP_HIDE, Q_CLAIMS_DELETE_JOB, Q_STEPS_DELETE_JOB,
                                      Q_IDEM_DELETE_JOB, Q_OUTBOX_DELETE_JOB};
    sqlite3_stmt *s;
    int rc = q(c, Q_SWEEP_HIDDEN, &s);
    if (rc < 0)
        return rc;
    if ((rc = step(s)) == 1)
        *jid = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc != 0)
        return rc;
    if ((rc = q(c, Q_SWEEP_EXPIRED, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, x->jobs_before);
    if ((rc = step(s)) == 1)
        *jid = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc <= 0)
        return rc;
    for (size_t i = 0; i < sizeof by_jid / sizeof by_jid[0]; i++) {
        if ((rc = q(c, by_jid[i], &s)) < 0)
            return rc;
        sqlite3_bind_int64(s, 1, *jid);
        if ((rc = step(s)) < 0)
            return rc;
        if (i > 0)
            *removed += sqlite3_changes(c->db);
    }
    return 1;
}

static int sweep_body(struct conn *c, void *vctx)
{
    struct sweep_ctx *x = vctx;
    sqlite3_stmt *s;
    int64_t removed = 0, jid = 0;
    int rc = q(c, Q_SWEEP_KEYS, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, x->keys_before);
    sqlite3_bind_int64(s, 2, x->budget);
    if ((rc = step(s)) < 0)
        return rc;
    removed += sqlite3_changes(c->db);
    while (removed < x->budget) {
        if ((rc = sweep_next_job(c, x, &jid, &removed)) < 0)
            return rc;
        if (rc == 0)
            break;
        int64_t want = x->budget - removed;
        if ((rc = q(c, Q_SWEEP_ITEMS, &s)) < 0)
            return rc;
        sqlite3_bind_int64(s, 1, KEY(jid, 0));
        sqlite3_bind_int64(s, 2, KEY(jid + 1, 0));
        sqlite3_bind_int64(s, 3, want);
        if ((rc = step(s)) < 0)
            return rc;
        int64_t gone = sqlite3_changes(c->db);
        removed += gone;
        if (gone == want)
            break; /* maybe more items: the next call goes on with this job */
        if ((rc = q(c, Q_JOB_DELETE, &s)) < 0)
            return rc;
        sqlite3_bind_int64(s, 1, jid);
        if ((rc = step(s)) < 0)
            return rc;
        removed++;
    }
    return removed > INT32_MAX ? INT32_MAX : (int)removed;
}

static int sq_retention_sweep(void *impl, int64_t jobs_completed_before,
                              int64_t keys_created_before, size_t max_rows)
{
    struct sweep_ctx x = {jobs_completed_before, keys_created_before,
                          max_rows == 0 ? 1
                                        : (max_rows > INT32_MAX ? INT32_MAX : (int64_t)max_rows)};
    return run_tx(impl, TX_WRITE_BG, sweep_body, NULL, &x);
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

static int job_get_body(struct conn *c, void *vctx)
{
    struct jobs_ctx *x = vctx;
    struct jobrow r;
    int rc = job_load_visible(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    if ((rc = job_load_steps(c, r.jid, &r.j)) < 0) {
        store_job_release(&r.j);
        return rc;
    }
    *x->out = r.j;
    return 1;
}

static void jobs_out_undo(void *vctx)
{
    struct jobs_ctx *x = vctx;
    if (x->out)
        store_job_release(x->out);
    store_jobs_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}

static int sq_job_get(void *impl, const char *tenant, const char *job_id, struct store_job *out)
{
    struct jobs_ctx x = {.tenant = tenant, .job_id = job_id, .out = out};
    return run_tx(impl, TX_READ, job_get_body, jobs_out_undo, &x);
}

static int job_list_body(struct conn *c, void *vctx)
{
    struct jobs_ctx *x = vctx;
    sqlite3_stmt *s;
    struct jobrow r;
    int rc = q(c, Q_JOB_LIST, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    sqlite3_bind_int(s, 2, x->status);
    sqlite3_bind_int64(s, 3, x->before_seq > 0 ? x->before_seq : INT64_MAX);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)x->limit);
    x->list = xcalloc(x->limit ? x->limit : 1, sizeof *x->list);
    x->n = 0;
    while (x->n < x->limit && (rc = step(s)) == 1) {
        read_job(c, s, &r);
        x->list[x->n++] = r.j;
    }
    if (rc < 0) {
        store_jobs_free(x->list, x->n);
        x->list = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

static int sq_job_list(void *impl, const char *tenant, int status, int64_t before_seq, size_t limit,
                       struct store_job **out, size_t *n)
{
    struct jobs_ctx x = {
        .tenant = tenant, .status = status, .before_seq = before_seq, .limit = limit};
    int rc = run_tx(impl, TX_READ, job_list_body, jobs_out_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int job_cancel_body(struct conn *c, void *vctx)
{
    struct jobs_ctx *x = vctx;
    struct jobrow r;
    int64_t now = clock_now_ms();
    int rc = job_load(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    if (r.j.status == JOB_NOT_STARTED || r.j.status == JOB_RUNNING) {
        /* O(1): everything at or above the cursor is Canceled from now on. */
        r.cancel_at = r.cursor;
        r.j.counts.canceled += r.j.counts.pending;
        r.j.counts.pending = 0;
        r.j.status = JOB_CANCELING;
        job_maybe_finish(&r, now);
        if ((rc = job_save(c, &r, now)) < 0) {
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

static int sq_job_cancel(void *impl, const char *tenant, const char *job_id, struct store_job *out)
{
    struct jobs_ctx x = {.tenant = tenant, .job_id = job_id, .out = out};
    return run_tx(impl, TX_WRITE, job_cancel_body, jobs_out_undo, &x);
}

static int job_delete_body(struct conn *c, void *vctx)
{
    struct jobs_ctx *x = vctx;
    struct jobrow r;
    int rc = job_load(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    store_job_release(&r.j);
    if (!job_terminal(r.j.status))
        return -SLUICE_E_CONFLICT;
    rc = job_remove(c, r.jid);
    return rc < 0 ? rc : 1;
}

static int sq_job_delete(void *impl, const char *tenant, const char *job_id)
{
    struct jobs_ctx x = {.tenant = tenant, .job_id = job_id};
    return run_tx(impl, TX_WRITE, job_delete_body, NULL, &x);
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

/* Fills it from a row of ITEM_LIST_COLS. */
static void read_item(sqlite3_stmt *s, const struct jobrow *r, int with_data, struct store_item *it)
{
    memset(it, 0, sizeof *it);
    it->index = sqlite3_column_int64(s, 0) - KEY(r->jid, 0);
    it->status = effective_status(sqlite3_column_int(s, 1), it->index, r);
    it->attempts = sqlite3_column_int(s, 2);
    it->ref = col_dup(s, 3, NULL);
    if (with_data)
        it->data = col_dup(s, 4, &it->data_len);
    it->result = col_dup(s, 5, NULL);
    col_copy(s, 6, it->error_code, sizeof it->error_code);
    it->error_message = col_dup(s, 7, NULL);
    it->created_at = r->j.created_at;
    it->updated_at = sqlite3_column_int64(s, 8);
    if (!it->updated_at)
        it->updated_at = it->created_at;
    col_copy(s, 9, it->failed_step, sizeof it->failed_step);
    it->warnings = col_dup(s, 10, NULL);
    it->parent_index = sqlite3_column_int64(s, 11);
}

static int item_get_body(struct conn *c, void *vctx)
{
    struct items_ctx *x = vctx;
    struct jobrow r;
    sqlite3_stmt *s;
    int rc = job_load_visible(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    store_job_release(&r.j);
    if (x->index < 0 || x->index >= r.j.counts.total)
        return 0;
    if ((rc = q(c, Q_ITEM_GET, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, KEY(r.jid, x->index));
    rc = step(s);
    if (rc == 1) {
        read_item(s, &r, 1, x->out);
        x->out->events = col_dup(s, 12, NULL);
        if (!x->out->events)
            x->out->events = xstrdup("[]");
    }
    return rc;
}

static void items_out_undo(void *vctx)
{
    struct items_ctx *x = vctx;
    if (x->out)
        store_item_release(x->out);
    store_items_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}

static int sq_item_get(void *impl, const char *tenant, const char *job_id, int64_t index,
                       struct store_item *out)
{
    struct items_ctx x = {.tenant = tenant, .job_id = job_id, .index = index, .out = out};
    return run_tx(impl, TX_READ, item_get_body, items_out_undo, &x);
}

static int item_list_body(struct conn *c, void *vctx)
{
    struct items_ctx *x = vctx;
    struct jobrow r;
    sqlite3_stmt *s;
    int rc = job_load_visible(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    store_job_release(&r.j);
    rc = q(c, x->f.status == ITEM_FAILED ? Q_ITEM_LIST_FAILED : Q_ITEM_LIST, &s);
    if (rc < 0)
        return rc;
    /* Clamp the cursor into this job's key range: an index past the end must not
     * overflow KEY() into the next job's items. */
    int64_t after = x->after_index < -1 ? -1 : x->after_index;
    if (after > r.j.counts.total)
        after = r.j.counts.total;
    sqlite3_bind_int64(s, 1, KEY(r.jid, 0) + after);
    sqlite3_bind_int64(s, 2, KEY(r.jid + 1, 0));
    bind_str(s, 3, x->f.ref);
    sqlite3_bind_int(s, 4, x->f.status);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)x->limit);
    bind_str(s, 9, x->f.step);
    bind_str(s, 10, x->f.code);
    if (x->f.status != ITEM_FAILED) {
        sqlite3_bind_int64(s, 6, r.cancel_at);
        sqlite3_bind_int64(s, 7, KEY(r.jid, 0));
        sqlite3_bind_int64(s, 8, r.cursor);
    }
    x->list = xcalloc(x->limit ? x->limit : 1, sizeof *x->list);
    x->n = 0;
    while (x->n < x->limit && (rc = step(s)) == 1)
        read_item(s, &r, x->with_data, &x->list[x->n++]);
    if (rc < 0) {
        store_items_free(x->list, x->n);
        x->list = NULL;
        x->n = 0;
        return rc;
    }
    return 1;
}

static int sq_item_list(void *impl, const char *tenant, const char *job_id,
                        const struct store_item_filter *f, int64_t after_index, size_t limit,
                        int with_data, struct store_item **out, size_t *n)
{
    struct items_ctx x = {.tenant = tenant,
                          .job_id = job_id,
                          .f = {.status = -1},
                          .after_index = after_index,
                          .limit = limit,
                          .with_data = with_data};
    if (f)
        x.f = *f;
    if (x.f.status < 0)
        x.f.status = -1;
    int rc = run_tx(impl, TX_READ, item_list_body, items_out_undo, &x);
    *out = rc <= 0 ? NULL : x.list;
    *n = rc <= 0 ? 0 : x.n;
    return rc;
}

/* ---- events ---------------------------------------------------------------------- */

/* Appends one event object to b, which holds "[" and zero or more events; step may be
 * NULL (no "step" member). */
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

/* Appends the elements of a JSON array text (the engine's events) to b. */
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
    const char *data; /* the document after: borrowed from the input or c->tmp; NULL deleted */
    size_t data_len;
};

/* Applies one document change: the single code path for store_doc_write and the doc
 * ops of store_complete. 0 applied ([out] w), -SLUICE_E_DOCUMENT_NOT_FOUND,
 * -SLUICE_E_INVALID_DATA, -SLUICE_E_PRECONDITION_FAILED or a store error. */
static int doc_apply(struct conn *c, const char *tenant, const char *coll, const char *ref,
                     size_t ref_len, enum store_op op, const char *data, size_t data_len,
                     int64_t if_match, const char *job_id, int64_t item_index, int64_t now,
                     struct doc_result *w)
{
    sqlite3_stmt *s;
    int64_t version = 0;
    int live = 0;
    int rc = q(c, Q_DOC_GET, &s);
    if (rc < 0)
        goto out;
    bind_str(s, 1, tenant);
    bind_str(s, 2, coll);
    bind_strn(s, 3, ref, ref_len);
    if ((rc = step(s)) < 0)
        goto out;
    if (rc == 1) {
        version = sqlite3_column_int64(s, 1);
        live = sqlite3_column_int(s, 2) == 0;
    }
    rc = -SLUICE_E_PRECONDITION_FAILED;
    if (if_match >= 0 && if_match != (live ? version : 0))
        goto out;
    memset(w, 0, sizeof *w);
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
        const char *cd = (const char *)sqlite3_column_text(s, 0);
        if (!data || !cd)
            goto out;
        if ((rc = store_doc_merge(cd, (size_t)sqlite3_column_bytes(s, 0), data, data_len,
                                  &c->tmp)) < 0)
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
    sqlite3_reset(s);
    w->version = version + 1;
    w->created = !live && op == STORE_OP_UPSERT;
    w->updated_at = now;
    if ((rc = q(c, Q_DOC_PUT, &s)) < 0)
        goto out;
    bind_str(s, 1, tenant);
    bind_str(s, 2, coll);
    bind_strn(s, 3, ref, ref_len);
    bind_strn(s, 4, w->data, w->data_len);
    sqlite3_bind_int64(s, 5, w->version);
    sqlite3_bind_int(s, 6, op == STORE_OP_DELETE);
    sqlite3_bind_int64(s, 7, now);
    bind_str(s, 8, job_id ? job_id : "");
    sqlite3_bind_int64(s, 9, item_index);
    rc = step(s);
    if (rc < 0)
        goto out;
    rc = 0;
out:
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

static void read_doc(sqlite3_stmt *s, int first, struct store_doc *d)
{
    /* columns from `first`: data, version, updated_at, job_id, item_index */
    d->data = col_dup(s, first, &d->data_len);
    d->version = sqlite3_column_int64(s, first + 1);
    d->updated_at = sqlite3_column_int64(s, first + 2);
    col_copy(s, first + 3, d->job_id, sizeof d->job_id);
    d->item_index = sqlite3_column_int64(s, first + 4);
}

static int doc_get_body(struct conn *c, void *vctx)
{
    struct doc_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_DOC_GET, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->coll);
    bind_str(s, 3, x->ref);
    rc = step(s);
    if (rc <= 0 || sqlite3_column_int(s, 2) != 0) /* deleted: a tombstone reads as missing */
        return rc < 0 ? rc : 0;
    memset(x->out, 0, sizeof *x->out);
    x->out->ref = xstrdup(x->ref);
    x->out->data = col_dup(s, 0, &x->out->data_len);
    x->out->version = sqlite3_column_int64(s, 1);
    x->out->updated_at = sqlite3_column_int64(s, 3);
    col_copy(s, 4, x->out->job_id, sizeof x->out->job_id);
    x->out->item_index = sqlite3_column_int64(s, 5);
    return 1;
}

static void doc_out_undo(void *vctx)
{
    struct doc_ctx *x = vctx;
    if (x->out)
        store_doc_release(x->out);
    store_docs_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}

static int sq_doc_get(void *impl, const char *tenant, const char *collection, const char *ref,
                      struct store_doc *out)
{
    struct doc_ctx x = {.tenant = tenant, .coll = collection, .ref = ref, .out = out};
    return run_tx(impl, TX_READ, doc_get_body, doc_out_undo, &x);
}

static int doc_write_body(struct conn *c, void *vctx)
{
    struct doc_ctx *x = vctx;
    struct doc_result w;
    int rc = doc_apply(c, x->tenant, x->coll, x->ref, strlen(x->ref), x->op, x->data, x->data_len,
                       x->if_match, "", -1, clock_now_ms(), &w);
    if (rc < 0)
        return rc;
    if (x->created)
        *x->created = w.created;
    if (x->out) {
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

static int sq_doc_write(void *impl, const char *tenant, const char *collection, const char *ref,
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
    return run_tx(impl, TX_WRITE, doc_write_body, doc_out_undo, &x);
}

static int doc_list_body(struct conn *c, void *vctx)
{
    struct doc_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_DOC_LIST, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->coll);
    bind_str(s, 3, x->after_ref ? x->after_ref : "");
    sqlite3_bind_int64(s, 4, (sqlite3_int64)x->limit);
    x->list = xcalloc(x->limit ? x->limit : 1, sizeof *x->list);
    x->n = 0;
    while (x->n < x->limit && (rc = step(s)) == 1) {
        struct store_doc *d = &x->list[x->n++];
        d->ref = col_dup(s, 0, NULL);
        read_doc(s, 1, d);
    }
    if (rc < 0) {
        store_docs_free(x->list, x->n);
        x->list = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

static int sq_doc_list(void *impl, const char *tenant, const char *collection,
                       const char *after_ref, size_t limit, struct store_doc **out, size_t *n)
{
    struct doc_ctx x = {
        .tenant = tenant, .coll = collection, .after_ref = after_ref, .limit = limit};
    int rc = run_tx(impl, TX_READ, doc_list_body, doc_out_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

/* ---- claims ---------------------------------------------------------------------- */

struct claim_ctx {
    size_t max_items;
    int64_t lease_ms;
    int max_attempts;
    const struct store_claim_gate *gate;
    int max_active_jobs;
    struct store_claim *out;     /* for store_claim */
    const struct store_claim *c; /* for store_complete / store_release */
    struct store_outcome *outs;
    size_t n;
    const struct store_step_count *steps;
    size_t nsteps;
};

/* Pending items of [lo, hi) of job r, copied: the items a claim still owes. */
static int pending_in_range(struct conn *c, const struct jobrow *r, int64_t lo, int64_t hi,
                            struct store_claim_item **items, size_t *n)
{
    sqlite3_stmt *s;
    size_t cap = 0;
    int rc = q(c, Q_ITEMS_RANGE, &s);
    *items = NULL;
    *n = 0;
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, KEY(r->jid, lo));
    sqlite3_bind_int64(s, 2, KEY(r->jid, hi));
    while ((rc = step(s)) == 1) {
        if (sqlite3_column_int(s, 1) != ITEM_PENDING)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *items = xrealloc(*items, cap * sizeof **items);
        }
        struct store_claim_item *it = &(*items)[(*n)++];
        it->index = sqlite3_column_int64(s, 0) - KEY(r->jid, 0);
        it->attempts = sqlite3_column_int(s, 2);
        it->ref = col_dup(s, 4, NULL);
        it->data = col_dup(s, 5, &it->data_len);
    }
    sqlite3_reset(s);
    return rc;
}

/* Frees the strings of items[0..n), not the array. */
static void claim_items_clear(struct store_claim_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].ref);
        free(items[i].data);
    }
}

static void claim_items_free(struct store_claim_item *items, size_t n)
{
    claim_items_clear(items, n);
    free(items);
}

/* Writes one item's end (or, status PENDING, only attempts/events). 1 written, 0 the
 * item was not pending. */
static int item_set(struct conn *c, int64_t k, int status, int add_attempts, const char *result,
                    const char *code, const char *message, const char *failed_step,
                    const char *warnings, const struct buf *events, int64_t now)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_ITEM_SET, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, k);
    sqlite3_bind_int(s, 2, status);
    sqlite3_bind_int(s, 3, add_attempts);
    bind_str(s, 4, result);
    bind_str(s, 5, code && *code ? code : NULL);
    bind_str(s, 6, message);
    if (events && events->len > 2)
        bind_strn(s, 7, events->data, events->len);
    sqlite3_bind_int64(s, 8, now);
    bind_str(s, 9, failed_step && *failed_step ? failed_step : NULL);
    bind_str(s, 10, warnings);
    rc = step(s);
    if (rc < 0)
        return rc;
    return sqlite3_changes(c->db) > 0;
}

static int claim_write(struct conn *c, int64_t claim_id, const char *token, int64_t remaining,
                       int64_t lease_until, int64_t claimed_at, int released)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_CLAIM_UPDATE, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, claim_id);
    bind_str(s, 2, token);
    sqlite3_bind_int64(s, 3, remaining);
    sqlite3_bind_int64(s, 4, lease_until);
    sqlite3_bind_int64(s, 5, claimed_at);
    sqlite3_bind_int(s, 6, released);
    rc = step(s);
    return rc < 0 ? rc : 0;
}

static int claim_delete(struct conn *c, int64_t claim_id)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_CLAIM_DELETE, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, claim_id);
    rc = step(s);
    return rc < 0 ? rc : 0;
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

/* Settles a claim whose holder is gone (lease expired, or released): on a canceling
 * or canceled job its pending items become Canceled; otherwise, unless released,
 * each counts the lost attempt (LeaseExpired event) and fails with
 * MaxAttemptsExceeded at max_attempts. When items remain and out != NULL they are
 * re-leased to out under a new token (returns 1); else the claim is dropped
 * (returns 0). */
static int settle_claim(struct conn *c, int64_t claim_id, int64_t jid, int64_t lo, int64_t hi,
                        int released, int max_attempts, int64_t lease_ms, int64_t now,
                        struct store_claim *out)
{
    struct jobrow r;
    struct store_claim_item *items = NULL;
    size_t n = 0, kept = 0;
    char token[STORE_ID_MAX], msg[128], ts[25];
    int rc = job_load_jid(c, jid, &r);
    clock_fmt_ms(now, ts);
    if (rc < 0)
        return rc;
    int canceling = r.j.status == JOB_CANCELING || r.j.status == JOB_CANCELED;
    if ((rc = pending_in_range(c, &r, lo, hi, &items, &n)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct store_claim_item *it = &items[i];
        int64_t k = KEY(jid, it->index);
        if (canceling) {
            rc = item_set(c, k, ITEM_CANCELED, 0, NULL, NULL, NULL, NULL, NULL, NULL, now);
            if (rc < 0)
                goto out;
            r.j.counts.processing--;
            r.j.counts.canceled++;
            continue;
        }
        if (!released) {
            it->attempts++;
            buf_reset(&c->ev);
            buf_putc(&c->ev, '[');
            snprintf(msg, sizeof msg, "lease expired on attempt %d; item given to another worker",
                     it->attempts);
            event_add(&c->ev, ts, "claim", NULL, "warn", "LeaseExpired", msg);
            if (max_attempts > 0 && it->attempts >= max_attempts) {
                snprintf(msg, sizeof msg, "abandoned after %d attempts", it->attempts);
                event_add(&c->ev, ts, "claim", NULL, "error",
                          sluice_err_code(SLUICE_E_MAX_ATTEMPTS), msg);
                buf_putc(&c->ev, ']');
                rc = item_set(c, k, ITEM_FAILED, 1, NULL, sluice_err_code(SLUICE_E_MAX_ATTEMPTS),
                              msg, NULL, NULL, &c->ev, now);
                if (rc < 0)
                    goto out;
                r.j.counts.processing--;
                r.j.counts.failed++;
                continue;
            }
            buf_putc(&c->ev, ']');
            rc = item_set(c, k, ITEM_PENDING, 1, NULL, NULL, NULL, NULL, NULL, &c->ev, now);
            if (rc < 0)
                goto out;
        }
        if (kept != i) {
            struct store_claim_item t = items[kept];
            items[kept] = *it;
            *it = t;
        }
        kept++;
    }
    if (kept > 0 && out && !canceling) {
        if ((rc = ids_random("lt_", 24, token)) < 0)
            goto out;
        if ((rc = claim_write(c, claim_id, token, (int64_t)kept, now + lease_ms, now, 0)) < 0)
            goto out;
        if ((rc = job_save(c, &r, now)) < 0)
            goto out;
        claim_items_clear(items + kept, n - kept);
        fill_claim(out, &r, claim_id, token, lo, hi, now, now + lease_ms, items, kept);
        items = NULL;
        n = 0;
        rc = 1;
        goto out;
    }
    if (kept > 0) { /* only reachable without out: cannot happen; keep the claim as is */
        rc = 0;
        goto out;
    }
    if ((rc = claim_delete(c, claim_id)) < 0)
        goto out;
    r.j.last_progress_at = now;
    job_maybe_finish(&r, now);
    rc = job_save(c, &r, now);
out:
    claim_items_free(items, n);
    store_job_release(&r.j);
    return rc;
}

/* A new range from the cursor of job jid: 1 claimed into out, 0 nothing runnable. */
static int claim_new_range(struct conn *c, int64_t jid, const struct claim_ctx *x, int64_t now)
{
    struct jobrow r;
    sqlite3_stmt *s, *ps;
    struct store_claim_item *items = NULL;
    size_t n = 0, cap = 0;
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
    if ((rc = q(c, Q_ITEMS_RANGE, &s)) < 0)
        goto out;
    sqlite3_bind_int64(s, 1, KEY(jid, lo));
    sqlite3_bind_int64(s, 2, KEY(jid, hi));
    while ((rc = step(s)) == 1) {
        int64_t idx = sqlite3_column_int64(s, 0) - KEY(jid, 0);
        int64_t prev = sqlite3_column_int64(s, 3);
        if (prev >= 0 && prev < lo) {
            /* Same-ref ordering: wait until the previous item of this ref is done. */
            if ((rc = q(c, Q_ITEM_STATUS, &ps)) < 0)
                goto out;
            sqlite3_bind_int64(ps, 1, KEY(jid, prev));
            rc = step(ps);
            int st = rc == 1 ? sqlite3_column_int(ps, 0) : ITEM_PENDING;
            sqlite3_reset(ps);
            if (rc < 0)
                goto out;
            rc = 0;
            if (st == ITEM_PENDING)
                break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            items = xrealloc(items, cap * sizeof *items);
        }
        struct store_claim_item *it = &items[n++];
        it->index = idx;
        it->attempts = sqlite3_column_int(s, 2);
        it->ref = col_dup(s, 4, NULL);
        it->data = col_dup(s, 5, &it->data_len);
    }
    sqlite3_reset(s);
    if (rc < 0 || n == 0)
        goto out;
    if (x->gate) {
        /* The scheduler's limits: a shorter range, or none from this job now. */
        size_t granted = x->gate->admit(x->gate->ctx, r.j.tenant, r.j.id,
                                        r.j.uses ? r.j.uses : "", n);
        if (granted < n) {
            claim_items_clear(items + granted, n - granted);
            n = granted;
        }
        if (n == 0)
            goto out;
    }
    hi = lo + (int64_t)n;
    if ((rc = ids_random("lt_", 24, token)) < 0)
        goto out;
    if ((rc = q(c, Q_CLAIM_INSERT, &s)) < 0)
        goto out;
    bind_str(s, 1, token);
    sqlite3_bind_int64(s, 2, jid);
    sqlite3_bind_int64(s, 3, lo);
    sqlite3_bind_int64(s, 4, hi);
    sqlite3_bind_int64(s, 5, (int64_t)n);
    sqlite3_bind_int64(s, 6, now + x->lease_ms);
    sqlite3_bind_int64(s, 7, now);
    if ((rc = step(s)) < 0)
        goto out;
    int64_t claim_id = sqlite3_last_insert_rowid(c->db);
    if (r.j.status == JOB_NOT_STARTED) {
        r.j.status = JOB_RUNNING;
        r.j.started_at = now;
    }
    if (!r.j.win_at) {
        r.j.win_at = now;
        r.j.win_done = 0;
    }
    r.cursor = hi;
    r.j.counts.pending -= (int64_t)n;
    r.j.counts.processing += (int64_t)n;
    r.last_claim = claim_id;
    if ((rc = job_save(c, &r, now)) < 0)
        goto out;
    fill_claim(x->out, &r, claim_id, token, lo, hi, now, now + x->lease_ms, items, n);
    items = NULL;
    n = 0;
    rc = 1;
out:
    claim_items_free(items, n);
    store_job_release(&r.j);
    return rc;
}

static int claim_body(struct conn *c, void *vctx)
{
    struct claim_ctx *x = vctx;
    sqlite3_stmt *s;
    int64_t now = clock_now_ms();
    int64_t jids[16];
    int njobs = 0;
    int rc;

    /* 1. Expired (or released) claims first. */
    for (int guard = 0; guard < 256; guard++) {
        if ((rc = q(c, Q_CLAIM_EXPIRED, &s)) < 0)
            return rc;
        sqlite3_bind_int64(s, 1, now);
        if ((rc = step(s)) <= 0)
            break;
        int64_t claim_id = sqlite3_column_int64(s, 0), jid = sqlite3_column_int64(s, 1);
        int64_t lo = sqlite3_column_int64(s, 2), hi = sqlite3_column_int64(s, 3);
        int released = sqlite3_column_int(s, 4);
        sqlite3_reset(s);
        rc = settle_claim(c, claim_id, jid, lo, hi, released, x->max_attempts, x->lease_ms, now,
                          x->out);
        if (rc != 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    /* 2. A new range: the tenant, then its job (see FAIRNESS). */
    char tenants[16][STORE_NAME_MAX];
    int ntenants = 0, tries = 0;
    if ((rc = q(c, Q_RUN_TENANTS, &s)) < 0)
        return rc;
    sqlite3_bind_int(s, 1, 16);
    while (ntenants < 16 && (rc = step(s)) == 1)
        col_copy(s, 0, tenants[ntenants++], STORE_NAME_MAX);
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    for (int t = 0; t < ntenants && tries < CLAIM_TRIES; t++) {
        int at_cap = 0;
        if (x->max_active_jobs > 0) {
            if ((rc = q(c, Q_TENANT_ACTIVE, &s)) < 0)
                return rc;
            bind_str(s, 1, tenants[t]);
            rc = step(s);
            at_cap = rc == 1 && sqlite3_column_int64(s, 0) >= x->max_active_jobs;
            sqlite3_reset(s);
            if (rc < 0)
                return rc;
        }
        if ((rc = q(c, at_cap ? Q_RUN_JOBS_STARTED : Q_RUN_JOBS, &s)) < 0)
            return rc;
        bind_str(s, 1, tenants[t]);
        sqlite3_bind_int(s, 2, 16);
        njobs = 0;
        while (njobs < 16 && (rc = step(s)) == 1)
            jids[njobs++] = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (rc < 0)
            return rc;
        for (int i = 0; i < njobs && tries < CLAIM_TRIES; i++, tries++) {
            rc = claim_new_range(c, jids[i], x, now);
            if (rc == 0)
                continue;
            if (rc < 0)
                return rc;
            if ((rc = q(c, Q_TENANT_TURN, &s)) < 0)
                return rc;
            bind_str(s, 1, tenants[t]);
            sqlite3_bind_int64(s, 2, x->out->claim_id);
            rc = step(s);
            return rc < 0 ? rc : 1;
        }
    }
    return 0;
}

static void claim_undo(void *vctx)
{
    struct claim_ctx *x = vctx;
    store_claim_release(x->out);
}

static int sq_claim(void *impl, const struct store_claim_opts *o, struct store_claim *out)
{
    struct claim_ctx x = {.max_items = o->max_items ? o->max_items : 1,
                          .lease_ms = o->lease_ms,
                          .max_attempts = o->max_attempts,
                          .max_active_jobs = o->max_active_jobs,
                          .gate = o->gate,
                          .out = out};
    memset(out, 0, sizeof *out);
    /* No fsync: a claim lost in a crash only hands its items out again, and any
     * completion under it commits with fsync, which makes the claim durable first. */
    return run_tx(impl, TX_WRITE_NOSYNC, claim_body, claim_undo, &x);
}

/* The claim's row if c's token still holds it: 1, or 0 when taken over / gone. */
static int claim_check(struct conn *c, const struct store_claim *cl, int64_t *jid, int64_t *lo,
                       int64_t *hi, int64_t *remaining)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_CLAIM_GET, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, cl->claim_id);
    bind_str(s, 2, cl->token);
    rc = step(s);
    if (rc == 1) {
        *jid = sqlite3_column_int64(s, 0);
        *lo = sqlite3_column_int64(s, 1);
        *hi = sqlite3_column_int64(s, 2);
        *remaining = sqlite3_column_int64(s, 3);
    }
    sqlite3_reset(s);
    return rc;
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

/* Applies the doc ops of outcome o (claimed item ci of job r) in order, appending an
 * "apply" event per op to c->ev and writing each op's [out] fields. 0 all applied
 * (c->res holds the last op's result JSON), 1 an op could not apply (its error is set,
 * msg holds the message; later ops are not applied), or a store error. */
static int apply_ops(struct conn *c, const struct jobrow *r, const struct store_claim_item *ci,
                     struct store_outcome *o, int64_t now, const char *ts, char *msg, size_t cap)
{
    struct doc_result w;
    for (size_t j = 0; j < o->nops; j++) {
        struct store_doc_op *op = &o->ops[j];
        const char *coll = op->collection ? op->collection : "";
        const char *ref = op->ref ? op->ref : ci->ref;
        size_t ref_len = strlen(ref);
        int rc =
            doc_apply(c, r->j.tenant, coll, ref, ref_len, op->op, op->data ? op->data : ci->data,
                      op->data ? op->data_len : ci->data_len, -1, r->j.id, o->index, now, &w);
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

/* Adds the call's per-step tallies to job jid's step counts. */
static int steps_add(struct conn *c, int64_t jid, const struct store_step_count *steps, size_t n)
{
    sqlite3_stmt *s;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!steps[i].step)
            continue;
        if ((rc = q(c, Q_STEPS_ADD, &s)) < 0)
            return rc;
        sqlite3_bind_int64(s, 1, jid);
        bind_str(s, 2, steps[i].step);
        sqlite3_bind_int64(s, 3, steps[i].passed);
        sqlite3_bind_int64(s, 4, steps[i].failed);
        sqlite3_bind_int64(s, 5, steps[i].skipped);
        if ((rc = step(s)) < 0)
            return rc;
    }
    return 0;
}

static int complete_body(struct conn *c, void *vctx)
{
    struct claim_ctx *x = vctx;
    const struct store_claim *cl = x->c;
    struct jobrow r;
    int64_t jid = 0, lo = 0, hi = 0, remaining = 0, now = clock_now_ms();
    int64_t done = 0;
    char msg[STORE_NAME_MAX + 2 * 256 + 64], ts[25];
    int rc = claim_check(c, cl, &jid, &lo, &hi, &remaining);
    clock_fmt_ms(now, ts); /* one timestamp for all events of this call */
    /* The ops' [out] fields start empty; apply_ops() fills those of the ops it runs. */
    for (size_t i = 0; i < x->n; i++) {
        for (size_t j = 0; j < x->outs[i].nops; j++) {
            x->outs[i].ops[j].version = 0;
            x->outs[i].ops[j].created = 0;
            x->outs[i].ops[j].error = 0;
        }
    }
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_LEASE_LOST;
    if ((rc = job_load_jid(c, jid, &r)) < 0)
        return rc;
    for (size_t i = 0; i < x->n; i++) {
        struct store_outcome *o = &x->outs[i];
        const struct store_claim_item *ci = claim_find(cl, o->index);
        int status = o->status;
        const char *result = o->result, *code = o->error_code, *message = o->error_message;
        const char *failed_step = o->failed_step;
        if (!ci || o->index < lo || o->index >= hi)
            continue; /* not an item this claim owes */
        if (status != ITEM_SUCCEEDED && status != ITEM_FAILED && status != ITEM_SKIPPED) {
            rc = -SLUICE_E_INVALID_PARAMETER;
            goto out;
        }
        int64_t k = KEY(jid, o->index);
        buf_reset(&c->ev);
        buf_putc(&c->ev, '[');
        events_add_array(&c->ev, o->events);
        if (o->nops > 0) { /* whatever the status: the caller passes only the ops of
                              steps the item got through (see store.h) */
            sqlite3_stmt *s;
            if ((rc = q(c, Q_ITEM_STATUS, &s)) < 0)
                goto out;
            sqlite3_bind_int64(s, 1, k);
            rc = step(s);
            int st = rc == 1 ? sqlite3_column_int(s, 0) : -1;
            sqlite3_reset(s);
            if (rc < 0)
                goto out;
            if (st != ITEM_PENDING)
                continue; /* already finished by an earlier call */
            rc = apply_ops(c, &r, ci, o, now, ts, msg, sizeof msg);
            if (rc < 0)
                goto out;
            if (rc == 1) { /* ops applied before the failing one stay (see DESIGN) */
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
        rc =
            item_set(c, k, status, 1, result, code, message, failed_step, o->warnings, &c->ev, now);
        if (rc < 0)
            goto out;
        if (rc == 0)
            continue;
        done++;
        if (status == ITEM_SUCCEEDED)
            r.j.counts.succeeded++;
        else if (status == ITEM_FAILED)
            r.j.counts.failed++;
        else
            r.j.counts.skipped++;
    }
    rc = 0;
    if (done == 0)
        goto out; /* a repeated call: its step tallies were counted the first time */
    r.j.counts.processing -= done;
    r.j.last_progress_at = now;
    int64_t finished = r.j.counts.succeeded + r.j.counts.failed + r.j.counts.skipped;
    if (now - r.j.win_at >= WIN_MS) {
        r.j.win_at = now;
        r.j.win_done = finished;
    }
    job_maybe_finish(&r, now);
    if ((rc = job_save(c, &r, now)) < 0)
        goto out;
    if ((rc = steps_add(c, jid, x->steps, x->nsteps)) < 0)
        goto out;
    remaining -= done;
    sqlite3_stmt *s;
    if (remaining <= 0) {
        rc = claim_delete(c, cl->claim_id);
    } else if ((rc = q(c, Q_CLAIM_REMAINING, &s)) == 0) {
        sqlite3_bind_int64(s, 1, cl->claim_id);
        sqlite3_bind_int64(s, 2, remaining);
        rc = step(s);
    }
    if (rc > 0)
        rc = 0;
out:
    store_job_release(&r.j);
    return rc;
}

static int sq_complete(void *impl, const struct store_claim *c, struct store_outcome *outs,
                       size_t n, const struct store_step_count *steps, size_t nsteps)
{
    struct claim_ctx x = {.c = c, .outs = outs, .n = n, .steps = steps, .nsteps = nsteps};
    int rc = run_tx(impl, TX_WRITE_BG, complete_body, NULL, &x);
    /* An op that could not apply failed its item: tell the caller (see store.h). */
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
    int64_t jid = 0, lo = 0, hi = 0, remaining = 0, now = clock_now_ms();
    int rc = claim_check(c, cl, &jid, &lo, &hi, &remaining);
    if (rc <= 0)
        return rc < 0 ? rc : -SLUICE_E_LEASE_LOST;
    if ((rc = job_load_jid(c, jid, &r)) < 0)
        return rc;
    store_job_release(&r.j);
    if (r.j.status == JOB_CANCELING || r.j.status == JOB_CANCELED) /* nothing to give back */
        return settle_claim(c, cl->claim_id, jid, lo, hi, 1, 0, 0, now, NULL);
    /* Expired at once and marked released: the next store_claim re-leases it without
     * counting an attempt; the empty token fences the old holder. */
    return claim_write(c, cl->claim_id, "", remaining, 0, now, 1);
}

static int sq_release(void *impl, const struct store_claim *c)
{
    struct claim_ctx x = {.c = c};
    return run_tx(impl, TX_WRITE_BG, release_body, NULL, &x);
}

/* ---- stats ----------------------------------------------------------------------- */

static int stats_body(struct conn *c, void *vctx)
{
    struct store_stats *st = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_STATS_JOBS, &s);
    if (rc < 0)
        return rc;
    memset(st, 0, sizeof *st);
    while ((rc = step(s)) == 1) {
        int status = sqlite3_column_int(s, 0);
        if (status >= 0 && status < 7)
            st->jobs_by_status[status] = sqlite3_column_int64(s, 1);
        st->items_pending += sqlite3_column_int64(s, 2);
        st->items_processing += sqlite3_column_int64(s, 3);
    }
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if ((rc = q(c, Q_STATS_CLAIMS, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, clock_now_ms());
    if ((rc = step(s)) == 1)
        st->claims_active = sqlite3_column_int64(s, 0);
    return rc < 0 ? rc : 0;
}

static int sq_stats(void *impl, struct store_stats *out)
{
    return run_tx(impl, TX_READ, stats_body, NULL, out);
}

struct load_ctx {
    const char *tenant;
    int64_t open_jobs, pending;
};

static int tenant_load_body(struct conn *c, void *vctx)
{
    struct load_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_TENANT_LOAD, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    rc = step(s);
    if (rc == 1) {
        x->open_jobs = sqlite3_column_int64(s, 0);
        x->pending = sqlite3_column_int64(s, 1);
        rc = 0;
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_tenant_load(void *impl, const char *tenant, int64_t *open_jobs, int64_t *pending)
{
    struct load_ctx x = {tenant, 0, 0};
    int rc = run_tx(impl, TX_READ, tenant_load_body, NULL, &x);
    if (rc >= 0) {
        *open_jobs = x.open_jobs;
        *pending = x.pending;
    }
    return rc;
}

/* ---- workflow definitions -------------------------------------------------------- */

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

static void read_workflow(sqlite3_stmt *s, struct store_workflow *w)
{
    memset(w, 0, sizeof *w);
    col_copy(s, 0, w->name, sizeof w->name);
    w->version = sqlite3_column_int64(s, 1);
    w->definition = col_dup(s, 2, NULL);
    w->created_at = sqlite3_column_int64(s, 3);
    w->deleted = sqlite3_column_int(s, 4);
}

static void defs_undo(void *vctx)
{
    struct defs_ctx *x = vctx;
    if (x->wf)
        store_workflow_release(x->wf);
    if (x->hook)
        store_hook_release(x->hook);
    store_workflows_free(x->wfs, x->n);
    store_hooks_free(x->hooks, x->n);
    x->wfs = NULL;
    x->hooks = NULL;
    if (x->lim)
        store_limit_release(x->lim);
    store_limits_free(x->lims, x->n);
    x->lims = NULL;
    if (x->sec)
        store_secret_release(x->sec);
    store_secrets_free(x->secs, x->n);
    x->secs = NULL;
    x->n = 0;
}

static int workflow_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int64_t now = clock_now_ms(), version = 0;
    int rc = q(c, Q_WF_NEXT, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->name);
    if ((rc = step(s)) < 0)
        return rc;
    version = sqlite3_column_int64(s, 0); /* an aggregate always has a row */
    sqlite3_reset(s);
    if ((rc = q(c, Q_WF_INSERT, &s)) < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->name);
    sqlite3_bind_int64(s, 3, version);
    bind_str(s, 4, x->definition);
    sqlite3_bind_int64(s, 5, now);
    if ((rc = step(s)) < 0)
        return rc;
    if (x->wf) {
        memset(x->wf, 0, sizeof *x->wf);
        copy_str(x->wf->name, sizeof x->wf->name, x->name);
        x->wf->version = version;
        x->wf->definition = xstrdup(x->definition);
        x->wf->created_at = now;
    }
    return 0;
}

static int sq_workflow_put(void *impl, const char *tenant, const char *name, const char *definition,
                           struct store_workflow *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .wf = out};
    if (!definition)
        return -SLUICE_E_INVALID_PARAMETER;
    return run_tx(impl, TX_WRITE, workflow_put_body, defs_undo, &x);
}

static int workflow_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_WF_GET, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->name);
    sqlite3_bind_int64(s, 3, x->version);
    rc = step(s);
    if (rc == 1)
        read_workflow(s, x->wf);
    return rc;
}

static int sq_workflow_get(void *impl, const char *tenant, const char *name, int64_t version,
                           struct store_workflow *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .version = version, .wf = out};
    return run_tx(impl, TX_READ, workflow_get_body, defs_undo, &x);
}

static int workflow_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_WF_LIST, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->after_name ? x->after_name : "");
    sqlite3_bind_int64(s, 3, (sqlite3_int64)x->limit);
    x->wfs = xcalloc(x->limit ? x->limit : 1, sizeof *x->wfs);
    x->n = 0;
    while (x->n < x->limit && (rc = step(s)) == 1)
        read_workflow(s, &x->wfs[x->n++]);
    if (rc < 0) {
        store_workflows_free(x->wfs, x->n);
        x->wfs = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

static int sq_workflow_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                            struct store_workflow **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = run_tx(impl, TX_READ, workflow_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.wfs;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int workflow_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_WF_DELETE, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->name);
    rc = step(s);
    return rc < 0 ? rc : sqlite3_changes(c->db) > 0;
}

static int sq_workflow_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return run_tx(impl, TX_WRITE, workflow_delete_body, NULL, &x);
}

/* ---- webhook entry points --------------------------------------------------------- */

static void read_hook(sqlite3_stmt *s, struct store_hook *h)
{
    memset(h, 0, sizeof *h);
    col_copy(s, 0, h->name, sizeof h->name);
    col_copy(s, 1, h->tenant, sizeof h->tenant);
    h->definition = col_dup(s, 2, NULL);
    h->created_at = sqlite3_column_int64(s, 3);
    h->updated_at = sqlite3_column_int64(s, 4);
}

/* 1 found ([out] h), 0 not found: the hook name of tenant (NULL: of any tenant). */
static int hook_load(struct conn *c, const char *tenant, const char *name, struct store_hook *h)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_HOOK_GET, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, name);
    bind_str(s, 2, tenant);
    rc = step(s);
    if (rc == 1)
        read_hook(s, h);
    sqlite3_reset(s);
    return rc;
}

static int hook_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int replaced = 0;
    int rc = q(c, Q_HOOK_OWNER, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->name);
    rc = step(s);
    if (rc == 1) {
        const char *owner = (const char *)sqlite3_column_text(s, 0);
        if (!owner || strcmp(owner, x->tenant) != 0)
            rc = -SLUICE_E_CONFLICT; /* names are global: the events URL has no key */
        replaced = 1;
    }
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if ((rc = q(c, Q_HOOK_PUT, &s)) < 0)
        return rc;
    bind_str(s, 1, x->name);
    bind_str(s, 2, x->tenant);
    bind_str(s, 3, x->definition);
    sqlite3_bind_int64(s, 4, clock_now_ms());
    if ((rc = step(s)) < 0)
        return rc;
    if (x->hook && (rc = hook_load(c, x->tenant, x->name, x->hook)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return replaced ? 2 : 1;
}

static int sq_hook_put(void *impl, const char *tenant, const char *name, const char *definition,
                       struct store_hook *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .hook = out};
    if (!tenant || !definition)
        return -SLUICE_E_INVALID_PARAMETER;
    return run_tx(impl, TX_WRITE, hook_put_body, defs_undo, &x);
}

static int hook_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return hook_load(c, x->tenant, x->name, x->hook);
}

static int sq_hook_get(void *impl, const char *tenant, const char *name, struct store_hook *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .hook = out};
    return run_tx(impl, TX_READ, hook_get_body, defs_undo, &x);
}

static int hook_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_HOOK_LIST, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->after_name ? x->after_name : "");
    sqlite3_bind_int64(s, 3, (sqlite3_int64)x->limit);
    x->hooks = xcalloc(x->limit ? x->limit : 1, sizeof *x->hooks);
    x->n = 0;
    while (x->n < x->limit && (rc = step(s)) == 1)
        read_hook(s, &x->hooks[x->n++]);
    if (rc < 0) {
        store_hooks_free(x->hooks, x->n);
        x->hooks = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

static int sq_hook_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                        struct store_hook **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = run_tx(impl, TX_READ, hook_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.hooks;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int hook_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_HOOK_DELETE, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->name);
    bind_str(s, 2, x->tenant);
    rc = step(s);
    return rc < 0 ? rc : sqlite3_changes(c->db) > 0;
}

static int sq_hook_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return run_tx(impl, TX_WRITE, hook_delete_body, NULL, &x);
}

/* ---- processing limits ------------------------------------------------------------ */

static void read_limit(sqlite3_stmt *s, struct store_limit *l)
{
    memset(l, 0, sizeof *l);
    col_copy(s, 0, l->name, sizeof l->name);
    col_copy(s, 1, l->tenant, sizeof l->tenant);
    l->definition = col_dup(s, 2, NULL);
    l->created_at = sqlite3_column_int64(s, 3);
    l->updated_at = sqlite3_column_int64(s, 4);
}

/* 1 found ([out] l unless NULL), 0 not found. */
static int limit_load(struct conn *c, const char *tenant, const char *name, struct store_limit *l)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_LIMIT_GET, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, tenant);
    bind_str(s, 2, name);
    rc = step(s);
    if (rc == 1 && l)
        read_limit(s, l);
    sqlite3_reset(s);
    return rc;
}

static int limit_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int existed = limit_load(c, x->tenant, x->name, NULL);
    if (existed < 0)
        return existed;
    int rc = q(c, Q_LIMIT_PUT, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->name);
    bind_str(s, 3, x->definition);
    sqlite3_bind_int64(s, 4, clock_now_ms());
    if ((rc = step(s)) < 0)
        return rc;
    if (x->lim && (rc = limit_load(c, x->tenant, x->name, x->lim)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return existed ? 2 : 1;
}

static int sq_limit_put(void *impl, const char *tenant, const char *name, const char *definition,
                        struct store_limit *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = definition, .lim = out};
    if (!tenant || !name || !definition)
        return -SLUICE_E_INVALID_PARAMETER;
    return run_tx(impl, TX_WRITE, limit_put_body, defs_undo, &x);
}

static int limit_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return limit_load(c, x->tenant, x->name, x->lim);
}

static int sq_limit_get(void *impl, const char *tenant, const char *name, struct store_limit *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .lim = out};
    return run_tx(impl, TX_READ, limit_get_body, defs_undo, &x);
}

static int limit_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, x->tenant ? Q_LIMIT_LIST : Q_LIMIT_LIST_ALL, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->after_name ? x->after_name : "");
    sqlite3_bind_int64(s, 3, (sqlite3_int64)x->limit);
    x->lims = xcalloc(x->limit ? x->limit : 1, sizeof *x->lims);
    x->n = 0;
    while (x->n < x->limit && (rc = step(s)) == 1)
        read_limit(s, &x->lims[x->n++]);
    sqlite3_reset(s);
    if (rc < 0) {
        store_limits_free(x->lims, x->n);
        x->lims = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

static int sq_limit_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                         struct store_limit **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    int rc = run_tx(impl, TX_READ, limit_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.lims;
    *n = rc < 0 ? 0 : x.n;
    x.lims = NULL;
    return rc;
}

static int limit_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_LIMIT_DELETE, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->name);
    rc = step(s);
    sqlite3_reset(s);
    return rc < 0 ? rc : sqlite3_changes(c->db) > 0;
}

static int sq_limit_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return run_tx(impl, TX_WRITE, limit_delete_body, NULL, &x);
}

/* ---- tenant secrets (the limits' twin: same shape, the value instead of a definition) */

static void read_secret(sqlite3_stmt *s, struct store_secret *l)
{
    memset(l, 0, sizeof *l);
    col_copy(s, 0, l->name, sizeof l->name);
    col_copy(s, 1, l->tenant, sizeof l->tenant);
    l->value = col_dup(s, 2, NULL);
    l->created_at = sqlite3_column_int64(s, 3);
    l->updated_at = sqlite3_column_int64(s, 4);
}

/* 1 found ([out] l unless NULL), 0 not found. */
static int secret_load(struct conn *c, const char *tenant, const char *name, struct store_secret *l)
{
    sqlite3_stmt *s;
    int rc = q(c, Q_SECRET_GET, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, tenant);
    bind_str(s, 2, name);
    rc = step(s);
    if (rc == 1 && l)
        read_secret(s, l);
    sqlite3_reset(s);
    return rc;
}

static int secret_put_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int existed = secret_load(c, x->tenant, x->name, NULL);
    if (existed < 0)
        return existed;
    int rc = q(c, Q_SECRET_PUT, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->name);
    bind_str(s, 3, x->definition);
    sqlite3_bind_int64(s, 4, clock_now_ms());
    if ((rc = step(s)) < 0)
        return rc;
    if (x->sec && (rc = secret_load(c, x->tenant, x->name, x->sec)) != 1)
        return rc < 0 ? rc : -SLUICE_E_INTERNAL;
    return existed ? 2 : 1;
}

static int sq_secret_put(void *impl, const char *tenant, const char *name, const char *value,
                         struct store_secret *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .definition = value, .sec = out};
    if (!tenant || !name || !value)
        return -SLUICE_E_INVALID_PARAMETER;
    return run_tx(impl, TX_WRITE, secret_put_body, defs_undo, &x);
}

static int secret_get_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    return secret_load(c, x->tenant, x->name, x->sec);
}

static int sq_secret_get(void *impl, const char *tenant, const char *name, struct store_secret *out)
{
    struct defs_ctx x = {.tenant = tenant, .name = name, .sec = out};
    return run_tx(impl, TX_READ, secret_get_body, defs_undo, &x);
}

static int secret_list_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_SECRET_LIST, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->after_name ? x->after_name : "");
    sqlite3_bind_int64(s, 3, (sqlite3_int64)x->limit);
    x->secs = xcalloc(x->limit ? x->limit : 1, sizeof *x->secs);
    x->n = 0;
    while (x->n < x->limit && (rc = step(s)) == 1)
        read_secret(s, &x->secs[x->n++]);
    sqlite3_reset(s);
    if (rc < 0) {
        store_secrets_free(x->secs, x->n);
        x->secs = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

static int sq_secret_list(void *impl, const char *tenant, const char *after_name, size_t limit,
                          struct store_secret **out, size_t *n)
{
    struct defs_ctx x = {.tenant = tenant, .after_name = after_name, .limit = limit};
    *out = NULL;
    *n = 0;
    if (!tenant)
        return -SLUICE_E_INVALID_PARAMETER;
    int rc = run_tx(impl, TX_READ, secret_list_body, defs_undo, &x);
    *out = rc < 0 ? NULL : x.secs;
    *n = rc < 0 ? 0 : x.n;
    x.secs = NULL;
    return rc;
}

static int secret_delete_body(struct conn *c, void *vctx)
{
    struct defs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_SECRET_DELETE, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->tenant);
    bind_str(s, 2, x->name);
    rc = step(s);
    sqlite3_reset(s);
    return rc < 0 ? rc : sqlite3_changes(c->db) > 0;
}

static int sq_secret_delete(void *impl, const char *tenant, const char *name)
{
    struct defs_ctx x = {.tenant = tenant, .name = name};
    return run_tx(impl, TX_WRITE, secret_delete_body, NULL, &x);
}

/* ---- shared rate buckets -------------------------------------------------------------- */

struct bucket_ctx {
    const char *id;
    double interval, tolerance;
    int64_t n, until;
    int block;
    struct store_bucket_lease *out;
};

static int bucket_body(struct conn *c, void *vctx)
{
    struct bucket_ctx *x = vctx;
    sqlite3_stmt *s;
    double tat = 0;
    uint64_t epoch = 0;
    int64_t now = clock_now_ms();
    int rc = q(c, Q_BUCKET_GET, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->id);
    rc = step(s);
    if (rc == 1) {
        tat = sqlite3_column_double(s, 0);
        epoch = (uint64_t)sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if (x->block) {
        if ((double)x->until <= tat)
            return 0;
        tat = (double)x->until;
        epoch++;
    } else {
        double tat0 = tat > (double)now ? tat : (double)now;
        x->out->now = now;
        x->out->tat0 = tat0;
        x->out->epoch = epoch;
        if (x->n == 0)
            return 0;
        tat = tat0 + (double)x->n * x->interval;
    }
    if ((rc = q(c, Q_BUCKET_PUT, &s)) < 0)
        return rc;
    bind_str(s, 1, x->id);
    sqlite3_bind_double(s, 2, tat);
    sqlite3_bind_int64(s, 3, (int64_t)epoch);
    rc = step(s);
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

static int sq_bucket_take(void *impl, const char *id, double interval_ms, double tolerance_ms,
                          int64_t n, struct store_bucket_lease *out)
{
    struct bucket_ctx x = {id, interval_ms, tolerance_ms, n, 0, 0, out};
    /* a lost lease only leaves its slots unused: no fsync needed */
    return run_tx(impl, TX_WRITE_NOSYNC, bucket_body, NULL, &x);
}

static int sq_bucket_block(void *impl, const char *id, int64_t until_ms)
{
    struct bucket_ctx x = {id, 0, 0, 0, until_ms, 1, NULL};
    return run_tx(impl, TX_WRITE_NOSYNC, bucket_body, NULL, &x);
}

struct sem_ctx {
    const char *id;
    int64_t cap, delta, held;
};

static int sem_body(struct conn *c, void *vctx)
{
    struct sem_ctx *x = vctx;
    sqlite3_stmt *s;
    int64_t held = 0;
    int rc = q(c, Q_SEM_GET, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->id);
    rc = step(s);
    if (rc == 1)
        held = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if (x->delta > 0) /* the only holder: the cap is what is left of it */
        held += x->delta < x->cap - held ? x->delta : (x->cap - held > 0 ? x->cap - held : 0);
    else
        held = held + x->delta > 0 ? held + x->delta : 0;
    x->held = held;
    if ((rc = q(c, Q_SEM_PUT, &s)) < 0)
        return rc;
    bind_str(s, 1, x->id);
    sqlite3_bind_int64(s, 2, held);
    rc = step(s);
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

static int sq_sem_adjust(void *impl, const char *id, int64_t cap, int64_t delta, int64_t *held)
{
    struct sem_ctx x = {id, cap, delta, 0};
    int rc = run_tx(impl, TX_WRITE_NOSYNC, sem_body, NULL, &x);
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
    sqlite3_stmt *s, *u;
    int64_t now = clock_now_ms();
    int rc = q(c, Q_OUTBOX_DUE, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)x->max);
    x->list = xcalloc(x->max ? x->max : 1, sizeof *x->list);
    x->n = 0;
    int64_t *dids = xcalloc(x->max ? x->max : 1, sizeof *dids);
    while (x->n < x->max && (rc = step(s)) == 1) {
        struct store_delivery *d = &x->list[x->n];
        dids[x->n++] = sqlite3_column_int64(s, 0);
        col_copy(s, 1, d->id, sizeof d->id);
        col_copy(s, 2, d->job_id, sizeof d->job_id);
        col_copy(s, 3, d->tenant, sizeof d->tenant);
        col_copy(s, 4, d->event, sizeof d->event);
        d->url = col_dup(s, 5, NULL);
        d->attempts = sqlite3_column_int(s, 6);
        d->created_at = sqlite3_column_int64(s, 7);
        d->next_at = sqlite3_column_int64(s, 8);
        d->updated_at = sqlite3_column_int64(s, 9);
        d->state = DELIVERY_PENDING;
    }
    sqlite3_reset(s);
    for (size_t i = 0; rc >= 0 && i < x->n; i++) {
        struct store_delivery *d = &x->list[i];
        if ((rc = ids_random("lease_", 24, d->token)) < 0)
            break;
        if ((rc = q(c, Q_OUTBOX_LEASE, &u)) < 0)
            break;
        sqlite3_bind_int64(u, 1, dids[i]);
        sqlite3_bind_int64(u, 2, now + (x->lease_ms > 0 ? x->lease_ms : 1));
        bind_str(u, 3, d->token);
        rc = step(u);
    }
    free(dids);
    if (rc < 0) {
        outbox_undo(x);
        return rc;
    }
    return (int)x->n;
}

static int sq_delivery_claim(void *impl, int64_t lease_ms, size_t max,
                             struct store_delivery **out, size_t *n)
{
    struct outbox_ctx x = {.lease_ms = lease_ms, .max = max};
    /* Like a claim, a lease need not survive a crash: the delivery is simply due. */
    int rc = run_tx(impl, TX_WRITE_NOSYNC, delivery_claim_body, outbox_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    if (rc <= 0) {
        store_deliveries_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int delivery_record_body(struct conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
    const struct store_delivery_attempt *a = x->a;
    sqlite3_stmt *s;
    int64_t now = clock_now_ms();
    int rc = q(c, Q_OUTBOX_RECORD, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->d->id);
    bind_str(s, 2, x->d->token);
    sqlite3_bind_int(s, 3, x->state);
    sqlite3_bind_int64(s, 4, x->next_at);
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
        bind_strn(s, 5, c->tmp.data, c->tmp.len);
    }
    sqlite3_bind_int64(s, 6, now);
    if ((rc = step(s)) < 0)
        return rc;
    return sqlite3_changes(c->db) == 1 ? 1 : -SLUICE_E_LEASE_LOST;
}

static int sq_delivery_record(void *impl, const struct store_delivery *d,
                              const struct store_delivery_attempt *a, int state, int64_t next_at)
{
    if (state < DELIVERY_PENDING || state > DELIVERY_ABANDONED)
        return -SLUICE_E_INVALID_PARAMETER;
    struct outbox_ctx x = {.d = d, .a = a, .state = state, .next_at = next_at};
    return run_tx(impl, TX_WRITE_BG, delivery_record_body, NULL, &x);
}

static int delivery_list_body(struct conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
    struct jobrow r;
    sqlite3_stmt *s;
    size_t cap = 0;
    int rc = job_load(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    store_job_release(&r.j);
    if ((rc = q(c, Q_OUTBOX_LIST, &s)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, r.jid);
    while ((rc = step(s)) == 1) {
        if (x->n == cap) {
            cap = cap ? cap * 2 : 2;
            x->list = xrealloc(x->list, cap * sizeof *x->list);
        }
        struct store_delivery *d = &x->list[x->n++];
        memset(d, 0, sizeof *d);
        col_copy(s, 0, d->id, sizeof d->id);
        col_copy(s, 1, d->job_id, sizeof d->job_id);
        col_copy(s, 2, d->tenant, sizeof d->tenant);
        col_copy(s, 3, d->event, sizeof d->event);
        d->url = col_dup(s, 4, NULL);
        d->state = sqlite3_column_int(s, 5);
        d->attempts = sqlite3_column_int(s, 6);
        d->created_at = sqlite3_column_int64(s, 7);
        d->next_at = sqlite3_column_int64(s, 8);
        d->updated_at = sqlite3_column_int64(s, 9);
        d->log = col_dup(s, 10, NULL);
    }
    sqlite3_reset(s);
    if (rc < 0) {
        outbox_undo(x);
        return rc;
    }
    return 1;
}

static int sq_delivery_list(void *impl, const char *tenant, const char *job_id,
                            struct store_delivery **out, size_t *n)
{
    struct outbox_ctx x = {.tenant = tenant, .job_id = job_id};
    int rc = run_tx(impl, TX_READ, delivery_list_body, outbox_undo, &x);
    *out = rc < 0 ? NULL : x.list;
    *n = rc < 0 ? 0 : x.n;
    return rc;
}

static int setting_ensure_body(struct conn *c, void *vctx)
{
    struct outbox_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = q(c, Q_SETTING_ADD, &s);
    if (rc < 0)
        return rc;
    bind_str(s, 1, x->name);
    bind_str(s, 2, x->value);
    sqlite3_bind_int64(s, 3, clock_now_ms());
    if ((rc = step(s)) < 0)
        return rc;
    if ((rc = q(c, Q_SETTING_GET, &s)) < 0)
        return rc;
    bind_str(s, 1, x->name);
    if ((rc = step(s)) == 1)
        x->out = col_dup(s, 0, NULL);
    sqlite3_reset(s);
    return rc < 0 ? rc : (x->out ? 1 : -SLUICE_E_INTERNAL);
}

static int sq_setting_ensure(void *impl, const char *name, const char *value, char **out)
{
    struct outbox_ctx x = {.name = name, .value = value};
    int rc = run_tx(impl, TX_WRITE, setting_ensure_body, outbox_undo, &x);
    *out = rc < 0 ? NULL : x.out;
    if (rc < 0)
        free(x.out);
    return rc;
}

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
    .job_begin = sq_job_begin,
    .job_add_items = sq_job_add_items,
    .job_commit = sq_job_commit,
    .job_retry = sq_job_retry,
    .job_retry_begin = sq_job_retry_begin,
    .job_retry_stage = sq_job_retry_stage,
    .job_abort = sq_job_abort,
    .gc_receiving = sq_gc_receiving,
    .expire_claims = sq_expire_claims,
    .retention_sweep = sq_retention_sweep,
    .job_get = sq_job_get,
    .job_list = sq_job_list,
    .job_cancel = sq_job_cancel,
    .job_delete = sq_job_delete,
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
    .workflow_put = sq_workflow_put,
    .workflow_get = sq_workflow_get,
    .workflow_list = sq_workflow_list,
    .workflow_delete = sq_workflow_delete,
    .hook_put = sq_hook_put,
    .hook_get = sq_hook_get,
    .hook_list = sq_hook_list,
    .hook_delete = sq_hook_delete,
    .limit_put = sq_limit_put,
    .limit_get = sq_limit_get,
    .limit_list = sq_limit_list,
    .limit_delete = sq_limit_delete,
    .secret_put = sq_secret_put,
    .secret_get = sq_secret_get,
    .secret_list = sq_secret_list,
    .secret_delete = sq_secret_delete,
    .bucket_take = sq_bucket_take,
    .bucket_block = sq_bucket_block,
    .sem_adjust = sq_sem_adjust,
    .delivery_claim = sq_delivery_claim,
    .delivery_record = sq_delivery_record,
    .delivery_list = sq_delivery_list,
    .setting_ensure = sq_setting_ensure,
};
