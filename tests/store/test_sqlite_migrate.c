/* test_sqlite_migrate.c - the SQLite backend upgrades databases of an older schema.
 *
 * Not part of the backend-neutral contract suite: it builds, with SQLite directly, a
 * database as sluice left it when only migration 001 existed (the real 001 text from
 * store_sqlite_migrations, plus rows of a finished job), then opens it through
 * store_open and checks that every later migration applied, that the old rows read
 * back with the defaults of the new columns, and that the new features work on them.
 * The same for a database of the 002 era (idempotency keys without hash or time,
 * retention), and of the 009 era (before same-ref order across jobs). */
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "testhelp.h"
#include "util/clock.h"
#include "util/errors.h"

static char tmpdir[64];
static char path[128];

#define KEY0 4294967296LL /* items key of job jid 1, index 0 */

/* A job of tenant "t" finished before the upgrade: item 0 succeeded, items 1 and 2
 * failed (same ref "a" as item 0 for 2), plus a document. */
static const char *const fixture =
    "INSERT INTO jobs(jid, id, tenant, workflow, status, outcome, total, succeeded, failed, "
    "  created_at, started_at, completed_at, next_idx, updated_at) "
    "  VALUES(1, 'job_old', 't', 'c.upsert', 4, 2, 3, 1, 2, 1000, 1001, 1002, 3, 1002);"
    "INSERT INTO items(k, status, attempts, prev_idx, updated_at, error_code, ref, data, result, "
    "  events) VALUES(4294967296, 2, 1, -1, 1002, NULL, 'a', '{\"n\":0}', '{\"ok\":1}', '[]');"
    "INSERT INTO items(k, status, attempts, prev_idx, updated_at, error_code, ref, data, "
    "  error_message, events) "
    "  VALUES(4294967297, 3, 1, -1, 1002, 'InvalidData', 'b', '{\"n\":1}', 'bad', '[]');"
    "INSERT INTO items(k, status, attempts, prev_idx, updated_at, error_code, ref, data, "
    "  error_message, events) "
    "  VALUES(4294967298, 3, 1, 0, 1002, 'InvalidData', 'a', '{\"n\":2}', 'bad', '[]');"
    "INSERT INTO docs(tenant, collection, ref, version, deleted, updated_at, item_index, job_id, "
    "  data) VALUES('t', 'c', 'a', 1, 0, 1002, 0, 'job_old', '{\"n\":0}');";

/* Creates the database at `path` with migrations 1..upto applied by hand. */
static int make_db(size_t upto, int64_t version_row)
{
    sqlite3 *db = NULL;
    char sql[160];
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db,
                          "CREATE TABLE schema_version(version INTEGER PRIMARY KEY, "
                          "applied_at INTEGER NOT NULL)",
                          NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < upto; i++)
        rc = sqlite3_exec(db, store_sqlite_migrations[i], NULL, NULL, NULL);
    snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES(%lld, 1)", (long long)version_row);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK && upto >= 1)
        rc = sqlite3_exec(db, fixture, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        fprintf(stderr, "make_db: %s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* max(version) of schema_version, read directly. */
static long long schema_version(void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    long long v = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &s, NULL) ==
            SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void remove_db(void)
{
    char p[160];
    remove(path);
    snprintf(p, sizeof p, "%s-wal", path);
    remove(p);
    snprintf(p, sizeof p, "%s-shm", path);
    remove(p);
}

TEST(upgrade_from_001)
{
    struct store *st = NULL;
    struct store_job j;
    struct store_item it, *items;
    struct store_doc d;
    struct store_def w;
    size_t n;
    char url[160];
    snprintf(url, sizeof url, "sqlite:%s", path);
    remove_db();
    CHECK(store_sqlite_nmigrations >= 2);
    CHECK_EQ_INT(make_db(1, 1), 0);
    CHECK_EQ_INT(schema_version(), 1);
    CHECK_EQ_INT(store_open(url, NULL, &st), 0);
    CHECK_EQ_INT(schema_version(), (long long)store_sqlite_nmigrations);

    /* old rows read back with the new columns' defaults */
    CHECK_EQ_INT(store_job_get(st, "t", "job_old", &j), 1);
    CHECK_EQ_INT(j.status, JOB_SUCCEEDED);
    CHECK_EQ_STR(j.workflow, "c.upsert");
    CHECK_EQ_INT(j.workflow_version, 0);
    CHECK_EQ_STR(j.parent_job, "");
    CHECK_EQ_INT(j.nsteps, 0);
    CHECK_EQ_INT(j.counts.failed, 2);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, "t", "job_old", 1, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_FAILED);
    CHECK_EQ_STR(it.error_code, "InvalidData");
    CHECK_EQ_STR(it.failed_step, "");
    CHECK(it.warnings == NULL);
    CHECK_EQ_INT(it.parent_index, -1);
    store_item_release(&it);
    CHECK_EQ_INT(store_doc_get(st, "t", "c", "a", &d), 1);
    CHECK_EQ_INT(d.version, 1);
    store_doc_release(&d);

    /* new features on old data */
    struct store_item_filter f = {ITEM_FAILED, NULL, NULL, "InvalidData"};
    CHECK_EQ_INT(store_item_list(st, "t", "job_old", &f, -1, 10, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 2);
    store_items_free(items, n);
    CHECK_EQ_INT(store_job_retry(st, "t", "job_old", "job_new", NULL, &j), 1);
    CHECK_EQ_INT(j.counts.total, 2);
    CHECK_EQ_STR(j.parent_job, "job_old");
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, "t", "job_new", 1, &it), 1);
    CHECK_EQ_STR(it.ref, "a");
    CHECK_EQ_INT(it.parent_index, 2);
    store_item_release(&it);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_WORKFLOW, "t", "wf", "{}", &w), STORE_PUT_CREATED);
    CHECK_EQ_INT(w.version, 1);
    store_def_release(&w);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_HOOK, "t", "hook", "{}", NULL), STORE_PUT_CREATED);
    /* the idempotency table and the job id sequence continue after the old rows */
    CHECK_EQ_INT(store_job_begin(st, "t", "job_third"), 0);
    struct store_new_item ni = {
        .index = 0, .ref = "x", .ref_len = 1, .data = "{}", .data_len = 2, .prev_idx = -1};
    CHECK_EQ_INT(store_job_add_items(st, "job_third", &ni, 1), 0);
    struct store_job_meta meta = {.workflow = "noop", .idem_key = "k1"};
    CHECK_EQ_INT(store_job_commit(st, "job_third", &meta, 1, &j), 1);
    CHECK(j.seq > 1);
    store_job_release(&j);
    store_close(st);
    st = NULL;

    /* reopening applies nothing twice */
    CHECK_EQ_INT(store_open(url, NULL, &st), 0);
    CHECK_EQ_INT(schema_version(), (long long)store_sqlite_nmigrations);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, "t", "wf", 0, &w), 1);
    store_def_release(&w);
    store_close(st);
}

/* Runs sql on the database at `path` directly. */
static int exec_db(const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        fprintf(stderr, "exec_db: %s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

TEST(upgrade_from_002)
{
    struct store *st = NULL;
    struct store_job j;
    struct store_item it;
    struct store_options opt;
    char url[160];
    int rc;
    int64_t before = clock_now_ms();
    snprintf(url, sizeof url, "sqlite:%s", path);
    remove_db();
    CHECK(store_sqlite_nmigrations >= 3);
    CHECK_EQ_INT(make_db(2, 2), 0);
    /* a webhook event id taken under 002: no hash, no time */
    CHECK_EQ_INT(exec_db("INSERT INTO idem_keys(tenant, key, jid) VALUES('t', 'hook:h:e1', 1)"), 0);
    store_options_default(&opt);
    opt.retention_ms = 60000;
    CHECK_EQ_INT(store_open(url, &opt, &st), 0);
    CHECK_EQ_INT(schema_version(), (long long)store_sqlite_nmigrations);

    /* the old job shows when it expires (it completed long ago) */
    CHECK_EQ_INT(store_job_get(st, "t", "job_old", &j), 1);
    CHECK_EQ_INT(j.expires_at, 1002 + 60000);
    store_job_release(&j);
    /* the old key counts from the upgrade, and replays whatever the hash */
    struct store_new_item ni = {
        .index = 0, .ref = "x", .ref_len = 1, .data = "{}", .data_len = 2, .prev_idx = -1};
    struct store_job_meta meta = {.workflow = "noop",
                                  .idem_key = "hook:h:e1",
                                  .body_hash = "ab",
                                  .idem_not_before = before - 1000};
    CHECK_EQ_INT(store_job_begin(st, "t", "job_2"), 0);
    CHECK_EQ_INT(store_job_add_items(st, "job_2", &ni, 1), 0);
    CHECK_EQ_INT(store_job_commit(st, "job_2", &meta, 1, &j), 2);
    CHECK_EQ_STR(j.id, "job_old");
    store_job_release(&j);
    CHECK_EQ_INT(store_retention_sweep(st, 0, before - 1000, 100), 0); /* not older than that */

    /* retention removes the old job with its items and its key */
    int64_t total = 0;
    while ((rc = store_retention_sweep(st, clock_now_ms() - 60000, 0, 2)) > 0)
        total += rc;
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(total, 3 + 1 + 1); /* items, key, row */
    CHECK_EQ_INT(store_job_get(st, "t", "job_old", &j), 0);
    CHECK_EQ_INT(store_item_get(st, "t", "job_old", 0, &it), 0);
    CHECK_EQ_INT(store_job_begin(st, "t", "job_3"), 0);
    CHECK_EQ_INT(store_job_add_items(st, "job_3", &ni, 1), 0);
    CHECK_EQ_INT(store_job_commit(st, "job_3", &meta, 1, &j), 1);
    CHECK_EQ_STR(j.id, "job_3");
    CHECK_EQ_INT(j.expires_at, 0); /* not finished */
    store_job_release(&j);
    store_close(st);
}

/* Makes a database of the era of migration `upto` with, besides the fixture, job
 * "job_run" (workflow "noop", NotStarted, one item of ref "x"), and opens it: every
 * later migration must apply. 0 and [out] *st, or -1. */
static int open_with_running_job(size_t upto, struct store **st)
{
    char url[160];
    snprintf(url, sizeof url, "sqlite:%s", path);
    remove_db();
    if (store_sqlite_nmigrations <= upto || make_db(upto, (int64_t)upto) < 0 ||
        exec_db("INSERT INTO jobs(jid, id, tenant, workflow, status, total, pending, "
                "created_at, updated_at) VALUES(2, 'job_run', 't', 'noop', 1, 1, 1, "
                "1000, 1000);"
                "INSERT INTO items(k, prev_idx, ref) VALUES(8589934592, -1, 'x');") < 0 ||
        store_open(url, NULL, st) < 0)
        return -1;
    return schema_version() == (long long)store_sqlite_nmigrations ? 0 : -1;
}

/* A database of the 003 era: a running job gets no callback and owes none when it
 * ends; a job committed after the upgrade has one, queued in its terminal
 * transaction. */
TEST(upgrade_from_003)
{
    struct store *st = NULL;
    struct store_job j;
    struct store_delivery *ds = NULL;
    size_t n = 0;
    char *v = NULL;
    CHECK_EQ_INT(open_with_running_job(3, &st), 0);
    CHECK_EQ_INT(store_delivery_list(st, "t", "job_old", &ds, &n), 1);
    CHECK_EQ_INT(n, 0);
    store_deliveries_free(ds, n);
    CHECK_EQ_INT(store_job_cancel(st, "t", "job_run", &j), 1);
    CHECK_EQ_INT(j.status, JOB_CANCELED);
    store_job_release(&j);
    CHECK_EQ_INT(store_delivery_list(st, "t", "job_run", &ds, &n), 1);
    CHECK_EQ_INT(n, 0);
    store_deliveries_free(ds, n);

    struct store_new_item ni = {
        .index = 0, .ref = "x", .ref_len = 1, .data = "{}", .data_len = 2, .prev_idx = -1};
    struct store_job_meta meta = {.workflow = "noop", .callback_url = "https://cb.example/x"};
    CHECK_EQ_INT(store_job_begin(st, "t", "job_cb"), 0);
    CHECK_EQ_INT(store_job_add_items(st, "job_cb", &ni, 1), 0);
    CHECK_EQ_INT(store_job_commit(st, "job_cb", &meta, 1, NULL), 1);
    CHECK_EQ_INT(store_job_cancel(st, "t", "job_cb", NULL), 1);
    CHECK_EQ_INT(store_delivery_list(st, "t", "job_cb", &ds, &n), 1);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK_EQ_STR(ds[0].event, "job.canceled");
        CHECK_EQ_STR(ds[0].url, "https://cb.example/x");
    }
    store_deliveries_free(ds, n);
    CHECK_EQ_INT(store_setting_ensure(st, "s", "one", &v), 1);
    CHECK_EQ_STR(v, "one");
    free(v);
    store_close(st);
}

/* 011_ref_order: jobs from before read as ordered within the job only, and a new job
 * that orders refs across jobs does not wait for them (they left no ref_tails). */
TEST(upgrade_from_010)
{
    struct store *st = NULL;
    struct store_job j;
    struct store_claim c1, c2;
    CHECK_EQ_INT(open_with_running_job(10, &st), 0);
    CHECK_EQ_INT(store_job_get(st, "t", "job_run", &j), 1);
    CHECK_EQ_INT(j.ref_order, STORE_REF_ORDER_JOB);
    store_job_release(&j);
    struct store_claim_opts o = {10, 60000, 3, 0, NULL};
    CHECK_EQ_INT(store_claim(st, &o, &c1), 1);
    CHECK_EQ_STR(c1.job_id, "job_run");

    struct store_new_item ni = {
        .index = 0, .ref = "x", .ref_len = 1, .data = "{}", .data_len = 2, .prev_idx = -1};
    struct store_job_meta meta = {.workflow = "noop", .ref_order = STORE_REF_ORDER_TENANT};
    CHECK_EQ_INT(store_job_begin(st, "t", "job_xo"), 0);
    CHECK_EQ_INT(store_job_add_items(st, "job_xo", &ni, 1), 0);
    CHECK_EQ_INT(store_job_commit(st, "job_xo", &meta, 1, NULL), 1);
    CHECK_EQ_INT(store_claim(st, &o, &c2), 1);
    CHECK_EQ_STR(c2.job_id, "job_xo");
    store_claim_release(&c1);
    store_claim_release(&c2);
    store_close(st);
}

TEST(newer_schema_refused)
{
    struct store *st = NULL;
    char url[160];
    snprintf(url, sizeof url, "sqlite:%s", path);
    remove_db();
    /* a database written by a newer sluice: refuse rather than guess */
    CHECK_EQ_INT(make_db(0, (int64_t)store_sqlite_nmigrations + 1), 0);
    CHECK(store_open(url, NULL, &st) < 0);
    CHECK(st == NULL);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sluice-migrate-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/store.sqlite", tmpdir);
    RUN(upgrade_from_001);
    RUN(upgrade_from_002);
    RUN(upgrade_from_003);
    RUN(upgrade_from_010);
    RUN(newer_schema_refused);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_report();
}
