/* test_pg_migrate.c - the PostgreSQL backend upgrades databases of an older schema.
 *
 * Like test_sqlite_migrate.c: with libpq directly it builds a database as sluice left
 * it before item outcomes had rows of their own (migrations 001 to 006, the real
 * texts from store_pg_migrations, plus a finished job whose items carry their status,
 * result, error and events in the items row), opens it through store_open and checks
 * that the items read back unchanged, that failed ones are listed and retried from
 * the new outcome rows, and that a new job runs. Needs SLUICE_TEST_STORE_URL naming an
 * empty PostgreSQL database (`make pg-contract` makes one); without it the test says so
 * and counts nothing. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "testhelp.h"
#include "util/errors.h"

static const char *url;

/* A finished job of tenant "t": item 0 succeeded with a result and an event, 1 and 2
 * failed (1 at step "check" after two attempts; 2 shares ref "a" with 0). */
static const char *const fixture[] = {
    "INSERT INTO jobs(jid, id, tenant, workflow, status, outcome, total, succeeded, failed, "
    "created_at, started_at, completed_at, next_idx, updated_at) "
    "VALUES(1, 'job_old', 't', 'c.upsert', 4, 2, 3, 1, 2, 1000, 1001, 1002, 3, 1002)",
    "INSERT INTO items(jid, idx, status, attempts, prev_idx, updated_at, ref, data, result, "
    "events) VALUES(1, 0, 2, 1, -1, 1002, 'a', '{\"n\":0}', '{\"ok\":1}', "
    "'[{\"at\":\"2020-01-01T00:00:00.000Z\",\"stage\":\"step\",\"level\":\"info\","
    "\"code\":\"Succeeded\",\"message\":\"done\"}]')",
    "INSERT INTO items(jid, idx, status, attempts, prev_idx, updated_at, error_code, ref, data, "
    "error_message, failed_step, events) VALUES(1, 1, 3, 2, -1, 1002, 'InvalidData', 'b', "
    "'{\"n\":1}', 'bad', 'check', '[]')",
    "INSERT INTO items(jid, idx, status, attempts, prev_idx, updated_at, error_code, ref, data, "
    "error_message, events) VALUES(1, 2, 3, 1, 0, 1002, 'InvalidData', 'a', '{\"n\":2}', "
    "'bad', '[]')",
    "SELECT setval('jobs_jid_seq', 1)",
};

static int exec(PGconn *db, const char *sql)
{
    PGresult *r = PQexec(db, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(db));
    PQclear(r);
    return ok ? 0 : -1;
}

/* Migrations 1..upto by hand, recorded as sluice records them, then the fixture. */
static int make_db(size_t upto)
{
    PGconn *db = PQconnectdb(url);
    int rc = PQstatus(db) == CONNECTION_OK ? 0 : -1;
    if (rc == 0)
        rc = exec(db, "CREATE TABLE schema_version(version int PRIMARY KEY, "
                      "applied_at bigint NOT NULL)");
    for (size_t v = 1; rc == 0 && v <= upto; v++) {
        char sql[96];
        for (const char *const *stmt = store_pg_migrations[v - 1]; rc == 0 && *stmt; stmt++)
            rc = exec(db, *stmt);
        snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES(%zu, 1)", v);
        if (rc == 0)
            rc = exec(db, sql);
    }
    for (size_t i = 0; rc == 0 && i < sizeof fixture / sizeof fixture[0]; i++)
        rc = exec(db, fixture[i]);
    PQfinish(db);
    return rc;
}

TEST(upgrade_from_006_keeps_item_outcomes)
{
    CHECK(store_pg_nmigrations >= 7);
    CHECK_EQ_INT(make_db(6), 0);
    struct store *st = NULL;
    CHECK_EQ_INT(store_open(url, NULL, &st), 0);
    struct store_item it;
    CHECK_EQ_INT(store_item_get(st, "t", "job_old", 0, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_SUCCEEDED);
    CHECK_EQ_INT(it.attempts, 1);
    CHECK_EQ_STR(it.result, "{\"ok\":1}");
    CHECK_EQ_STR(it.data, "{\"n\":0}");
    CHECK(strstr(it.events, "\"code\":\"Succeeded\",\"message\":\"done\"") != NULL);
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, "t", "job_old", 1, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_FAILED);
    CHECK_EQ_INT(it.attempts, 2);
    CHECK_EQ_STR(it.error_code, "InvalidData");
    CHECK_EQ_STR(it.error_message, "bad");
    CHECK_EQ_STR(it.failed_step, "check");
    store_item_release(&it);
    /* failed items are listed from the outcome rows, with their filters */
    struct store_item *items = NULL;
    size_t n = 0;
    struct store_item_filter f = {ITEM_FAILED, NULL, NULL, "InvalidData"};
    CHECK_EQ_INT(store_item_list(st, "t", "job_old", &f, -1, 10, 1, &items, &n), 1);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(items[0].index, 1);
    CHECK_EQ_STR(items[1].data, "{\"n\":2}");
    store_items_free(items, n);
    struct store_item_filter by_step = {ITEM_FAILED, NULL, "check", NULL};
    CHECK_EQ_INT(store_item_list(st, "t", "job_old", &by_step, -1, 10, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 1);
    store_items_free(items, n);
    /* a retry copies the two failed items */
    struct store_job j;
    CHECK_EQ_INT(store_job_retry(st, "t", "job_old", "job_retry", NULL, &j), 1);
    CHECK_EQ_INT(j.counts.total, 2);
    store_job_release(&j);
    /* and a new job runs to its end on the new tables */
    struct store_new_item ni = {
        .index = 0, .ref = "x", .ref_len = 1, .data = "{}", .data_len = 2, .prev_idx = -1};
    struct store_job_meta meta = {.workflow = "noop"};
    CHECK_EQ_INT(store_job_begin(st, "t", "job_new"), 0);
    CHECK_EQ_INT(store_job_add_items(st, "job_new", &ni, 1), 0);
    CHECK_EQ_INT(store_job_commit(st, "job_new", &meta, 1, NULL), 1);
    store_close(st);
}

int main(void)
{
    url = getenv("SLUICE_TEST_STORE_URL");
    if (!url || strncmp(url, "postgres", 8) != 0) {
        printf("test_pg_migrate: no PostgreSQL database (SLUICE_TEST_STORE_URL), nothing "
               "run; make pg-contract runs it\n");
        return test_report();
    }
    RUN(upgrade_from_006_keeps_item_outcomes);
    return test_report();
}
