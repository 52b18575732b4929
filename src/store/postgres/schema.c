/* schema.c - the PostgreSQL backend's schema: its migrations in order and the body
 * that applies them at open (pg_migrate_body).
 *
 * Schema (migrations[] below, recorded in schema_version; applied under
 * pg_advisory_xact_lock so nodes starting together do not race):
 *   jobs      as in sqlite/schema.c: counts in the row, `next_idx` the claim cursor,
 *             `cancel_at` the cancel point, status 0 for Receiving (updated_at >= 0)
 *             and for jobs being removed by retention (updated_at = -1).
 *   runnable  one row per job with unclaimed items (NotStarted or Running, cursor <
 *             total): the small table claims lock with FOR UPDATE SKIP LOCKED, so
 *             claimers on several nodes take different jobs at once and never wait on
 *             the hot job rows that completions update. It holds the fairness keys
 *             (tenant, priority, last_claim). Inserted at commit/retry, deleted when
 *             the cursor reaches the end or the job is canceled.
 *   items     (jid, idx) primary key; Processing/Canceled derived from the job's
 *             cursor and cancel point as in sqlite/schema.c; a partial index on failed items.
 *   claims    one leased range [lo, hi) of one job, with a random token fencing late
 *             writers and the node that holds it.
 *   nodes     node id -> last heartbeat (database clock). store_heartbeat refreshes
 *             the caller's row and ends the leases of nodes silent for longer than
 *             store_options.node_timeout_ms (token cleared, attempt counted at the
 *             takeover), whatever their lease length.
 *   buckets, sems: processing limits shared by the nodes (store_bucket_take,
 *             store_sem_adjust); concurrency units are held per node and go with
 *             the node when it falls silent.
 *   ref_tails, ref_waits: the order of same-ref items across jobs (REF ORDER in
 *             store.h), as in sqlite/schema.c; ref_link serializes the commits of one
 *             tenant's workflow with a transaction-scoped advisory lock.
 *   docs, job_steps, idem_keys, workflows, hooks, limits, tenants, outbox, settings,
 *   api_keys: as in sqlite/schema.c. Text keys that are ordered or paged on use COLLATE "C",
 *   so orders match SQLite's byte order whatever the database's locale.
 */
#include <libpq-fe.h>
#include <stdint.h>

#include "store/postgres/pg_int.h"
#include "util/errors.h"

#define MIGRATION_LOCK 0x736c756963650001LL /* pg_advisory_xact_lock key ("sluice" 1) */

/* ---- schema ---------------------------------------------------------------------- */

/* Migration 001_init: everything sqlite/schema.c has after its 006, plus runnable and nodes.
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

/* Migration 005_callback_formats: how a callback is signed, kept with the job and
 * copied to its delivery; each tenant's default format and signing key generations. */
static const char *const m005[] = {
    "ALTER TABLE jobs ADD COLUMN callback_format int NOT NULL DEFAULT 0",
    "ALTER TABLE outbox ADD COLUMN format int NOT NULL DEFAULT 0",
    "CREATE TABLE callback_prefs("
    "  tenant text COLLATE \"C\" PRIMARY KEY,"
    "  format int NOT NULL DEFAULT 0,"
    "  key_gen bigint NOT NULL DEFAULT 0,"
    "  prev_gen bigint NOT NULL DEFAULT 0,"
    "  prev_until bigint NOT NULL DEFAULT 0,"
    "  updated_at bigint NOT NULL)",
    NULL,
};

/* Migration 006_ref_order: same-ref order across the jobs of a tenant's workflow,
 * opted into by the workflow (REF ORDER in store.h; ref_tails and ref_waits as in
 * sqlite/schema.c, keyed by (jid, idx) here); nothing is written for other jobs. */
static const char *const m006[] = {
    "ALTER TABLE jobs ADD COLUMN ref_order int NOT NULL DEFAULT 0",
    "CREATE TABLE ref_tails("
    "  tenant text COLLATE \"C\" NOT NULL,"
    "  workflow text COLLATE \"C\" NOT NULL,"
    "  ref text COLLATE \"C\" NOT NULL,"
    "  jid bigint NOT NULL,"
    "  idx bigint NOT NULL,"
    "  PRIMARY KEY(tenant, workflow, ref))",
    "CREATE INDEX ref_tails_job ON ref_tails(jid)",
    "CREATE TABLE ref_waits("
    "  jid bigint NOT NULL,"
    "  idx bigint NOT NULL,"
    "  prev_jid bigint NOT NULL,"
    "  prev_idx bigint NOT NULL,"
    "  parked int NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(jid, idx))",
    "CREATE INDEX ref_waits_parked ON ref_waits(jid, idx) WHERE parked = 1",
    NULL,
};

/* Migration 007_item_outcomes: an item's end is a narrow row of its own (as in
 * sqlite/schema.c): finishing an item inserts one small tuple instead of a new
 * version of the whole row with its data, and takes no lock on the item row (the
 * claim row fences writers). item_rows joins them back (status 0, attempts 0 where
 * no outcome). */
static const char *const m007[] = {
    "CREATE TABLE item_outcomes("
    "  jid bigint NOT NULL,"
    "  idx bigint NOT NULL,"
    "  status smallint NOT NULL DEFAULT 0,"
    "  attempts int NOT NULL DEFAULT 0,"
    "  updated_at bigint NOT NULL DEFAULT 0,"
    "  error_code text,"
    "  result text,"
    "  error_message text,"
    "  events text,"
    "  failed_step text,"
    "  warnings text,"
    "  PRIMARY KEY(jid, idx))",
    "INSERT INTO item_outcomes SELECT jid, idx, status, attempts, updated_at, error_code, "
    "result, error_message, events, failed_step, warnings FROM items "
    "WHERE status <> 0 OR attempts <> 0 OR events IS NOT NULL",
    "DROP INDEX items_failed",
    "ALTER TABLE items DROP COLUMN status, DROP COLUMN attempts, DROP COLUMN updated_at, "
    "DROP COLUMN error_code, DROP COLUMN result, DROP COLUMN error_message, "
    "DROP COLUMN events, DROP COLUMN failed_step, DROP COLUMN warnings",
    "CREATE INDEX item_outcomes_failed ON item_outcomes(jid, idx) WHERE status = 3",
    "CREATE VIEW item_rows AS SELECT i.jid, i.idx, coalesce(o.status, 0::smallint) AS status, "
    "coalesce(o.attempts, 0) AS attempts, i.prev_idx, coalesce(o.updated_at, 0) AS updated_at, "
    "i.parent_index, o.error_code, i.ref, i.data, o.result, o.error_message, o.events, "
    "o.failed_step, o.warnings FROM items i LEFT JOIN item_outcomes o "
    "ON o.jid = i.jid AND o.idx = i.idx",
    NULL,
};

static const char *const *const migrations[] = {m001, m002, m003, m004, m005, m006, m007};

/* For the upgrade test (tests/store/test_pg_migrate.c). */
const char *const *const *const store_pg_migrations = migrations;
const size_t store_pg_nmigrations = sizeof migrations / sizeof migrations[0];

/* ---- applying them -------------------------------------------------------------- */

int pg_migrate_body(struct conn *c, void *ctx)
{
    (void)ctx;
    struct pg_params p = {0};
    PGresult *r = NULL;
    pg_param_i64(&p, MIGRATION_LOCK);
    int rc = pg_exec(c, "SELECT pg_advisory_xact_lock($1::bigint)", &p, NULL);
    if (rc < 0)
        return rc;
    rc = pg_exec(c,
                 "CREATE TABLE IF NOT EXISTS schema_version("
                 "version int PRIMARY KEY, applied_at bigint NOT NULL)",
                 NULL, NULL);
    if (rc < 0)
        return rc;
    if ((rc = pg_exec(c, "SELECT coalesce(max(version), 0) FROM schema_version", NULL, &r)) < 0)
        return rc;
    int64_t have = pg_col_i64(r, 0, 0);
    PQclear(r);
    const int64_t want = (int64_t)(sizeof migrations / sizeof migrations[0]);
    if (have > want) /* written by a newer sluice */
        return -SLUICE_E_INTERNAL;
    for (int64_t v = have + 1; v <= want; v++) {
        for (const char *const *stmt = migrations[v - 1]; *stmt; stmt++)
            if ((rc = pg_exec(c, *stmt, NULL, NULL)) < 0)
                return rc;
        struct pg_params q = {0};
        pg_param_i64(&q, v);
        pg_param_i64(&q, c->now);
        if ((rc = pg_exec(c, "INSERT INTO schema_version(version, applied_at) VALUES($1, $2)", &q,
                          NULL)) < 0)
            return rc;
    }
    return 0;
}
