/* schema.c - the embedded backend's schema: the migrations in order, recorded in
 * schema_version, and the transaction body that applies the missing ones at open.
 *
 * Schema (migrations[] below, recorded in schema_version):
 *   jobs     one row per job. `jid` is an internal integer id (AUTOINCREMENT, so it
 *            is also the creation order `seq`); counts live here and change in the
 *            same transaction as the items they count. `next_idx` is the claim
 *            cursor (items below it were handed out), `cancel_at` the cancel point
 *            (-1 = not canceled), `last_claim` the id of the newest claim taken from
 *            the job, `priority` -100..100 from the submit (see FAIRNESS in
 *            claims.c).
 *   items    key k = jid * 2^32 + index: one integer B-tree, rows (ref, data,
 *            prev_idx, parent_index) appended in key order at submit and never
 *            updated.
 *   item_outcomes  same key: an item's status, attempts, result, error and events,
 *            written when it ends (or counts an attempt), with a partial index on
 *            failed items (listing failures of a big job). No row: Pending, no
 *            attempt yet. Processing and Canceled of a pending item are derived
 *            from next_idx/cancel_at, never stored, so claiming and canceling write
 *            nothing; finishing inserts one narrow row and leaves the data's pages
 *            alone. Events are a JSON array text, appended by string
 *            concatenation. The view item_rows is the two joined (status 0 and
 *            attempts 0 where no outcome).
 *   claims   one row per leased range [lo, hi) of one job, with a random token that
 *            fences late writers and `remaining` = items of the range not done yet.
 *            Released claims (graceful shutdown) get lease_until 0 and released = 1,
 *            so the next store_claim takes them over without counting an attempt.
 *   docs     (tenant, collection, ref) -> data, version, deleted (tombstone):
 *            a rowid table and the unique index docs_key (two B-tree lookups per
 *            upsert, but the data's pages fill up when documents arrive in key
 *            order; 013).
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
 *   ref_tails (tenant, workflow, ref) -> k, the item key of the latest item of that
 *            ref committed by a job whose workflow orders refs across jobs (REF ORDER
 *            in store.h); index ref_tails_k removes a job's rows with it.
 *   ref_waits item key -> the key of the earlier job's item it waits for; only for
 *            such items whose predecessor was unfinished at commit. `parked`: the
 *            claim cursor passed the item while it had to wait (PARKING in
 *            claims.c); partial index ref_waits_parked finds those.
 *   job_dicts jid -> the dictionary its items' data is compressed against (zdata.c:
 *            a BLOB data value is LZ4-compressed, a TEXT one is the JSON); copied to a
 *            retry with its rows, removed with the job.
 *   doc_dicts (tenant, collection) -> the dictionary its documents are compressed
 *            against, a copy of the first writing job's; never changed or removed.
 * Items also keep failed_step, warnings and parent_index (store_job_retry).
 */
#include "store/sqlite/sqlite_int.h"
#include "util/clock.h"
#include "util/errors.h"

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
    /* 005_fairness: job priority, per-tenant rounds (see FAIRNESS in claims.c) */
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
    /* 010_callback_formats: how a callback is signed, kept with the job and copied to
     * its delivery; each tenant's default format and signing key generations */
    "ALTER TABLE jobs ADD COLUMN callback_format INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE outbox ADD COLUMN format INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE callback_prefs("
    "  tenant TEXT PRIMARY KEY,"
    "  format INTEGER NOT NULL DEFAULT 0,"
    "  key_gen INTEGER NOT NULL DEFAULT 0,"
    "  prev_gen INTEGER NOT NULL DEFAULT 0,"
    "  prev_until INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL) WITHOUT ROWID;",
    /* 011_ref_order: same-ref order across the jobs of a tenant's workflow, opted into
     * by the workflow (REF ORDER in store.h); nothing is written for other jobs */
    "ALTER TABLE jobs ADD COLUMN ref_order INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE ref_tails("
    "  tenant TEXT NOT NULL,"
    "  workflow TEXT NOT NULL,"
    "  ref TEXT NOT NULL,"
    "  k INTEGER NOT NULL,"
    "  PRIMARY KEY(tenant, workflow, ref)) WITHOUT ROWID;"
    "CREATE INDEX ref_tails_k ON ref_tails(k);"
    "CREATE TABLE ref_waits("
    "  k INTEGER PRIMARY KEY,"
    "  prev_k INTEGER NOT NULL,"
    "  parked INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX ref_waits_parked ON ref_waits(k) WHERE parked = 1;",
    /* 012_item_outcomes: an item's data is written once, at submit; its end goes to a
     * narrow row of its own, so finishing an item no longer rewrites the pages that
     * hold its data (half the bytes a no-op item cost). item_rows joins them back. */
    "CREATE TABLE item_outcomes("
    "  k INTEGER PRIMARY KEY,"
    "  status INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL DEFAULT 0,"
    "  error_code TEXT,"
    "  result TEXT,"
    "  error_message TEXT,"
    "  events TEXT,"
    "  failed_step TEXT,"
    "  warnings TEXT);"
    "INSERT INTO item_outcomes SELECT k, status, attempts, updated_at, error_code, result, "
    "  error_message, events, failed_step, warnings FROM items "
    "  WHERE status <> 0 OR attempts <> 0 OR events IS NOT NULL;"
    "CREATE TABLE items_new("
    "  k INTEGER PRIMARY KEY,"
    "  prev_idx INTEGER NOT NULL,"
    "  ref TEXT NOT NULL,"
    "  data TEXT,"
    "  parent_index INTEGER NOT NULL DEFAULT -1);"
    "INSERT INTO items_new SELECT k, prev_idx, ref, data, parent_index FROM items;"
    "DROP TABLE items;"
    "ALTER TABLE items_new RENAME TO items;"
    "CREATE INDEX item_outcomes_failed ON item_outcomes(k) WHERE status = 3;"
    "CREATE VIEW item_rows AS SELECT i.k AS k, coalesce(o.status, 0) AS status, "
    "  coalesce(o.attempts, 0) AS attempts, i.prev_idx AS prev_idx, "
    "  coalesce(o.updated_at, 0) AS updated_at, o.error_code AS error_code, i.ref AS ref, "
    "  i.data AS data, o.result AS result, o.error_message AS error_message, "
    "  o.events AS events, o.failed_step AS failed_step, o.warnings AS warnings, "
    "  i.parent_index AS parent_index FROM items i LEFT JOIN item_outcomes o ON o.k = i.k;",
    /* 013_docs_rowid: documents in a rowid table with a unique index on their key. A
     * WITHOUT ROWID B-tree splits pages in half even when keys arrive in order (only
     * rowid tables append into full pages), so a bulk upsert wrote each document's
     * bytes about twice over; now the index pages hold only keys. */
    "CREATE TABLE docs_new("
    "  tenant TEXT NOT NULL,"
    "  collection TEXT NOT NULL,"
    "  ref TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  item_index INTEGER NOT NULL,"
    "  job_id TEXT NOT NULL,"
    "  data TEXT);"
    "INSERT INTO docs_new SELECT tenant, collection, ref, version, deleted, updated_at, "
    "  item_index, job_id, data FROM docs ORDER BY tenant, collection, ref;"
    "DROP TABLE docs;"
    "ALTER TABLE docs_new RENAME TO docs;"
    "CREATE UNIQUE INDEX docs_key ON docs(tenant, collection, ref);",
    /* 014_dicts: items' data compressed against a dictionary of their job's first
     * items, documents against one of their collection (zdata.c): about half the bytes
     * written per item. */
    "CREATE TABLE job_dicts(jid INTEGER PRIMARY KEY, dict BLOB NOT NULL);"
    "CREATE TABLE doc_dicts(tenant TEXT NOT NULL, collection TEXT NOT NULL, "
    "  dict BLOB NOT NULL, PRIMARY KEY(tenant, collection)) WITHOUT ROWID;",
};

/* The migration texts, for the SQLite-specific upgrade test (tests/store). */
const char *const *const store_sqlite_migrations = migrations;
const size_t store_sqlite_nmigrations = sizeof migrations / sizeof migrations[0];

int sq_migrate_body(struct sq_conn *c, void *ctx)
{
    (void)ctx;
    int rc;
    int64_t have = 0;
    const int64_t want = (int64_t)(sizeof migrations / sizeof migrations[0]);
    sqlite3_stmt *s = NULL;

    rc = sq_exec_text(c, "CREATE TABLE IF NOT EXISTS schema_version("
                         "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
    if (rc < 0)
        goto out;
    rc = sqlite3_prepare_v2(c->db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &s,
                            NULL);
    if (rc != SQLITE_OK || (rc = sq_step(s)) != 1) {
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
        if ((rc = sq_exec_text(c, migrations[v - 1])) < 0)
            goto out;
        rc = sqlite3_prepare_v2(
            c->db, "INSERT INTO schema_version(version, applied_at) VALUES(?1, ?2)", -1, &s, NULL);
        if (rc != SQLITE_OK) {
            rc = sq_err(rc);
            goto out;
        }
        sqlite3_bind_int64(s, 1, v);
        sqlite3_bind_int64(s, 2, clock_now_ms());
        rc = sq_step(s);
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
