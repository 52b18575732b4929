/* test_sqlite_zdata.c - the embedded backend stores items' data compressed against a
 * dictionary of their job (store/sqlite/zdata.c).
 *
 * Not part of the backend-neutral contract suite (its item_data_round_trips checks that
 * the data reads back through every reader on every backend): this one looks into the
 * SQLite file to check that the data is in fact stored compressed, that a job's
 * dictionary goes with it, and that a value that cannot be expanded is an error, not a
 * crash or wrong data. */
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "testhelp.h"
#include "util/errors.h"

static char tmpdir[64];
static char path[128];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* One value of SQL run directly on the file (a second connection; WAL mode). */
static long long sql_i64(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    long long v = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static int sql_run(const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* A committed job of n items of tenant "t" with product-like data. */
static void submit(struct store *st, const char *id, int n, size_t *bytes)
{
    struct store_new_item *items = calloc((size_t)n, sizeof *items);
    char(*data)[256] = calloc((size_t)n, 256);
    char(*refs)[16] = calloc((size_t)n, 16);
    *bytes = 0;
    CHECK_EQ_INT(store_job_begin(st, "t", id), 0);
    for (int i = 0; i < n; i++) {
        snprintf(refs[i], 16, "SKU-%d", i);
        snprintf(data[i], 256,
                 "{\"sku\":\"SKU-%d\",\"title\":\"Product %d modern outdoor\",\"price\":"
                 "{\"amount\":%d,\"currency\":\"EUR\"},\"stock\":%d,\"attributes\":{\"color\":"
                 "\"blue\",\"size\":\"S\",\"material\":\"linen\"}}",
                 i, i, 1000 + i * 7, i % 300);
        items[i] = (struct store_new_item){.index = i,
                                           .ref = refs[i],
                                           .ref_len = strlen(refs[i]),
                                           .data = data[i],
                                           .data_len = strlen(data[i]),
                                           .prev_idx = -1};
        *bytes += items[i].data_len;
    }
    CHECK_EQ_INT(store_job_add_items(st, id, items, (size_t)n), 0);
    CHECK_EQ_INT(store_job_commit(st, id, &(struct store_job_meta){.workflow = "wf"}, n, NULL), 1);
    free(items);
    free(data);
    free(refs);
}

/* Claims everything runnable and completes it with an upsert of the item's data. */
static void upsert_all(struct store *st)
{
    struct store_claim c;
    struct store_claim_opts o = {100, 60000, 3, 0, NULL};
    while (store_claim(st, &o, &c) == 1) {
        struct store_outcome *out = calloc(c.n, sizeof *out);
        struct store_doc_op *ops = calloc(c.n, sizeof *ops);
        for (size_t k = 0; k < c.n; k++) {
            ops[k] = (struct store_doc_op){.op = STORE_OP_UPSERT, .collection = "products"};
            out[k] = (struct store_outcome){
                .index = c.items[k].index, .status = ITEM_SUCCEEDED, .ops = &ops[k], .nops = 1};
        }
        CHECK_EQ_INT(store_complete(st, &c, out, c.n, NULL, 0), 0);
        free(out);
        free(ops);
        store_claim_release(&c);
    }
}

TEST(data_is_stored_compressed_and_goes_with_its_job)
{
    struct store *st = NULL;
    struct store_item it;
    struct store_doc d;
    char url[160];
    size_t raw;
    snprintf(url, sizeof url, "sqlite:%s", path);
    CHECK_EQ_INT(store_open(url, NULL, &st), 0);
    submit(st, "job_big", 200, &raw);
    long long raw_avg = (long long)raw / 200;
    /* every item a BLOB, all of them under half their text; one dictionary */
    CHECK_EQ_INT(sql_i64("SELECT count(*) FROM items WHERE typeof(data) = 'blob'"), 200);
    long long stored = sql_i64("SELECT sum(length(data)) FROM items");
    CHECK(stored > 0 && stored * 2 < (long long)raw);
    CHECK_EQ_INT(sql_i64("SELECT count(*) FROM job_dicts"), 1);
    CHECK_EQ_INT(store_item_get(st, "t", "job_big", 199, &it), 1);
    CHECK(strstr(it.data, "\"sku\":\"SKU-199\"") != NULL);
    store_item_release(&it);
    /* a small job keeps its text and makes no dictionary */
    submit(st, "job_small", 10, &raw);
    CHECK_EQ_INT(sql_i64("SELECT count(*) FROM items WHERE typeof(data) = 'text'"), 10);
    CHECK_EQ_INT(sql_i64("SELECT count(*) FROM job_dicts"), 1);
    /* documents: the collection's dictionary is a copy of the job's */
    upsert_all(st);
    CHECK(sql_i64("SELECT count(*) FROM docs WHERE typeof(data) = 'blob'") >= 200);
    CHECK_EQ_INT(sql_i64("SELECT count(*) FROM doc_dicts"), 1);
    CHECK(sql_i64("SELECT avg(length(data)) FROM docs WHERE typeof(data) = 'blob'") * 2 < raw_avg);
    CHECK_EQ_INT(store_doc_get(st, "t", "products", "SKU-150", &d), 1);
    CHECK(strstr(d.data, "\"title\":\"Product 150 modern outdoor\"") != NULL);
    store_doc_release(&d);
    /* a value that cannot be expanded (version 1, 255 bytes, a broken block) is an
     * error, for the one value only */
    CHECK_EQ_INT(sql_run("UPDATE items SET data = x'01ff00000000ff00ff' WHERE k = "
                         "(SELECT min(k) FROM items WHERE typeof(data) = 'blob');"
                         "UPDATE docs SET data = x'01ff00000000ff00ff' WHERE ref = 'SKU-3'"),
                 SQLITE_OK);
    CHECK_EQ_INT(store_item_get(st, "t", "job_big", 0, &it), -SLUICE_E_STORE_IO);
    CHECK_EQ_INT(store_item_get(st, "t", "job_big", 1, &it), 1);
    store_item_release(&it);
    CHECK_EQ_INT(store_doc_get(st, "t", "products", "SKU-3", &d), -SLUICE_E_STORE_IO);
    CHECK_EQ_INT(store_doc_get(st, "t", "products", "SKU-4", &d), 1);
    store_doc_release(&d);
    /* ... and a claim that meets one fails whole: it is given back (data is expanded
     * after the claim's transaction), so no item counts an attempt and a cancel ends
     * the job once the next claim has settled what was given back */
    submit(st, "job_bad", 100, &raw);
    CHECK_EQ_INT(sql_run("UPDATE items SET data = x'01ff00000000ff00ff' WHERE k = "
                         "(SELECT max(k) FROM items)"),
                 SQLITE_OK);
    struct store_claim c;
    struct store_claim_opts o = {100, 60000, 3, 0, NULL};
    CHECK_EQ_INT(store_claim(st, &o, &c), -SLUICE_E_STORE_IO);
    CHECK_EQ_INT(store_item_get(st, "t", "job_bad", 0, &it), 1);
    CHECK_EQ_INT(it.attempts, 0);
    store_item_release(&it);
    CHECK_EQ_INT(store_job_cancel(st, "t", "job_bad", NULL), 1);
    CHECK_EQ_INT(store_claim(st, &o, &c), 0);
    struct store_job j;
    CHECK_EQ_INT(store_job_get(st, "t", "job_bad", &j), 1);
    CHECK_EQ_INT(j.status, JOB_CANCELED);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_delete(st, "t", "job_bad"), 1);
    /* a job's dictionary goes with it; the collection's stays with its documents */
    CHECK_EQ_INT(store_job_delete(st, "t", "job_big"), 1);
    CHECK_EQ_INT(sql_i64("SELECT count(*) FROM job_dicts"), 0);
    CHECK_EQ_INT(store_doc_get(st, "t", "products", "SKU-199", &d), 1);
    CHECK(strstr(d.data, "\"sku\":\"SKU-199\"") != NULL);
    store_doc_release(&d);
    store_close(st);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sluice-zdata-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/store.sqlite", tmpdir);
    RUN(data_is_stored_compressed_and_goes_with_its_job);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_report();
}
