/* test_engine.c - submit staging and the worker pool against a real SQLite store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/submit.h"
#include "store/fault.h"
#include "store/store.h"
#include "testhelp.h"
#include "util/errors.h"

static char last_dir[64]; /* of the last open_store() */

static struct store *open_store(void)
{
    char dir[] = "/tmp/sluice-engine-XXXXXX";
    if (!mkdtemp(dir))
        return NULL;
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/t.db", dir);
    snprintf(last_dir, sizeof last_dir, "%s", dir);
    struct store_options opt;
    store_options_default(&opt);
    opt.synchronous_full = 0; /* durability is the store suite's business */
    struct store *st = NULL;
    return store_open(url, &opt, &st) < 0 ? NULL : st;
}

static int add_n(struct submit *s, int64_t from, int n, int nrefs)
{
    char ref[32], data[64];
    for (int i = 0; i < n; i++) {
        int64_t idx = from + i;
        snprintf(ref, sizeof ref, "R%lld", (long long)(nrefs ? idx % nrefs : idx));
        int dn = snprintf(data, sizeof data, "{\"seq\":%lld}", (long long)idx);
        int rc = submit_add(s, idx, ref, strlen(ref), data, (size_t)dn);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Polls until the job is terminal or 60 s passed; returns the final status. */
static int wait_job(struct store *st, const char *tenant, const char *job_id, struct store_job *j)
{
    char id[STORE_ID_MAX];
    snprintf(id, sizeof id, "%s", job_id); /* job_id may point into *j */
    for (int i = 0; i < 6000; i++) {
        store_job_release(j);
        memset(j, 0, sizeof *j);
        if (store_job_get(st, tenant, id, j) != 1)
            return -1;
        if (j->status >= JOB_SUCCEEDED)
            return j->status;
        usleep(10000);
    }
    return -2;
}

TEST(submit_validates_and_stages_in_batches)
{
    struct store *st = open_store();
    CHECK(st != NULL);
    struct submit *s = submit_new(st, "t1", 7);
    CHECK_EQ_INT(submit_set_workflow(s, "nope"), -SLUICE_E_UNKNOWN_WORKFLOW);
    CHECK_EQ_INT(submit_set_client_reference(s, ""), -SLUICE_E_INVALID_FIELD);
    struct store_job j;
    memset(&j, 0, sizeof j);
    CHECK_EQ_INT(submit_commit(s, &j), -SLUICE_E_INVALID_FIELD); /* no workflow yet */
    CHECK_EQ_INT(submit_set_workflow(s, "noop"), 0);
    CHECK_EQ_INT(submit_commit(s, &j), -SLUICE_E_EMPTY_JOB);
    CHECK_EQ_INT(add_n(s, 0, 50, 0), 0);
    CHECK_EQ_INT(submit_count(s), 50);
    CHECK_EQ_INT(submit_commit(s, &j), 1);
    CHECK_EQ_INT(j.counts.total, 50);
    CHECK_EQ_INT(j.counts.pending, 50);
    CHECK_EQ_INT(j.status, JOB_NOT_STARTED);
    struct store_item *items = NULL;
    size_t n = 0;
    struct store_item_filter all = {-1, NULL, NULL, NULL};
    CHECK_EQ_INT(store_item_list(st, "t1", j.id, &all, -1, 100, 1, &items, &n), 1);
    CHECK_EQ_INT(n, 50);
    CHECK_EQ_STR(items[49].ref, "R49");
    CHECK_EQ_STR(items[49].data, "{\"seq\":49}");
    store_items_free(items, n);
    store_job_release(&j);
    submit_free(s);
    store_close(st);
}

TEST(uncommitted_submit_stores_nothing)
{
    struct store *st = open_store();
    CHECK(st != NULL);
    struct submit *s = submit_new(st, "t1", 10);
    CHECK_EQ_INT(submit_set_workflow(s, "noop"), 0);
    CHECK_EQ_INT(add_n(s, 0, 95, 0), 0); /* 9 batches reach the store */
    submit_free(s);                      /* the request failed: abort */
    struct store_job *jobs = NULL;
    size_t n = 99;
    CHECK_EQ_INT(store_job_list(st, "t1", -1, 0, 10, &jobs, &n), 0);
    CHECK_EQ_INT(n, 0);
    store_jobs_free(jobs, n);
    CHECK_EQ_INT(store_gc_receiving(st, INT64_MAX), 0); /* nothing left behind */
    store_close(st);
}

TEST(a_failed_abort_is_retried_later)
{
    struct store *st = open_store();
    CHECK(st != NULL);
    /* the commit fails, and so does the delete of the staged rows (a full disk) */
    CHECK_EQ_INT(store_fault_set(st, "job_commit", 1, -SLUICE_E_STORE_FULL, 1), 0);
    CHECK_EQ_INT(store_fault_set(st, "job_abort", 1, -SLUICE_E_STORE_FULL, 2), 0);
    struct submit *s = submit_new(st, "t1", 10);
    CHECK_EQ_INT(submit_set_workflow(s, "noop"), 0);
    CHECK_EQ_INT(add_n(s, 0, 25, 0), 0);
    struct store_job j;
    memset(&j, 0, sizeof j);
    CHECK_EQ_INT(submit_commit(s, &j), -SLUICE_E_STORE_FULL);
    submit_free(s);
    CHECK_EQ_INT(submit_retry_aborts(st), 1);           /* the store still refuses */
    CHECK_EQ_INT(submit_retry_aborts(st), 0);           /* now it takes it */
    CHECK_EQ_INT(store_gc_receiving(st, INT64_MAX), 0); /* nothing was left behind */
    CHECK_EQ_INT(submit_retry_aborts(st), 0);
    store_close(st);
}

TEST(engine_processes_noop_and_upsert_jobs)
{
    struct store *st = open_store();
    CHECK(st != NULL);
    struct engine_config cfg;
    engine_config_default(&cfg);
    cfg.workers = 3;
    cfg.batch = 64;
    struct engine *eng = NULL;
    CHECK_EQ_INT(engine_start(st, &cfg, &eng), 0);

    struct submit *a = submit_new(st, "t1", 1000);
    CHECK_EQ_INT(submit_set_workflow(a, "noop"), 0);
    CHECK_EQ_INT(add_n(a, 0, 3000, 0), 0);
    struct store_job ja;
    memset(&ja, 0, sizeof ja);
    CHECK_EQ_INT(submit_commit(a, &ja), 1);
    /* Same-ref items (5 refs over 500 items) must be applied in input order. */
    struct submit *b = submit_new(st, "t1", 1000);
    CHECK_EQ_INT(submit_set_workflow(b, "products.upsert"), 0);
    CHECK_EQ_INT(add_n(b, 0, 500, 5), 0);
    struct store_job jb;
    memset(&jb, 0, sizeof jb);
    CHECK_EQ_INT(submit_commit(b, &jb), 1);
    engine_notify(eng);

    CHECK_EQ_INT(wait_job(st, "t1", ja.id, &ja), JOB_SUCCEEDED);
    CHECK_EQ_INT(ja.counts.succeeded, 3000);
    CHECK_EQ_INT(ja.outcome, OUTCOME_ALL_SUCCEEDED);
    CHECK_EQ_INT(wait_job(st, "t1", jb.id, &jb), JOB_SUCCEEDED);
    CHECK_EQ_INT(jb.counts.succeeded, 500);
    for (int r = 0; r < 5; r++) {
        char ref[16], want[32];
        snprintf(ref, sizeof ref, "R%d", r);
        snprintf(want, sizeof want, "{\"seq\":%d}", 495 + r); /* the last item with this ref */
        struct store_doc d;
        memset(&d, 0, sizeof d);
        CHECK_EQ_INT(store_doc_get(st, "t1", "products", ref, &d), 1);
        CHECK_EQ_INT(d.version, 100);
        CHECK_EQ_STR(d.data, want);
        store_doc_release(&d);
    }
    engine_stop(eng);
    store_job_release(&ja);
    store_job_release(&jb);
    submit_free(a);
    submit_free(b);
    store_close(st);
}

TEST(items_without_data_fail_and_job_fails_when_all_do)
{
    struct store *st = open_store();
    CHECK(st != NULL);
    struct engine_config cfg;
    engine_config_default(&cfg);
    struct engine *eng = NULL;
    CHECK_EQ_INT(engine_start(st, &cfg, &eng), 0);
    struct submit *s = submit_new(st, "t1", 100);
    CHECK_EQ_INT(submit_set_workflow(s, "products.patch"), 0);
    for (int i = 0; i < 10; i++) {
        char ref[16];
        snprintf(ref, sizeof ref, "M%d", i);
        /* odd items have no data; even ones patch a missing document */
        CHECK_EQ_INT(submit_add(s, i, ref, strlen(ref), i % 2 ? NULL : "{}", i % 2 ? 0 : 2), 0);
    }
    struct store_job j;
    memset(&j, 0, sizeof j);
    CHECK_EQ_INT(submit_commit(s, &j), 1);
    engine_notify(eng);
    CHECK_EQ_INT(wait_job(st, "t1", j.id, &j), JOB_FAILED);
    CHECK_EQ_INT(j.counts.failed, 10);
    CHECK_EQ_STR(j.error_code, "AllItemsFailed");
    struct store_item it;
    memset(&it, 0, sizeof it);
    CHECK_EQ_INT(store_item_get(st, "t1", j.id, 1, &it), 1);
    CHECK_EQ_STR(it.error_code, "InvalidData");
    store_item_release(&it);
    memset(&it, 0, sizeof it);
    CHECK_EQ_INT(store_item_get(st, "t1", j.id, 0, &it), 1);
    CHECK_EQ_STR(it.error_code, "DocumentNotFound");
    store_item_release(&it);
    engine_stop(eng);
    store_job_release(&j);
    submit_free(s);
    store_close(st);
}

/* Like wait_job, but a store error (an injected fault) is only a reason to ask again. */
static int wait_job_through_faults(struct store *st, const char *tenant, const char *job_id,
                                   struct store_job *j)
{
    char id[STORE_ID_MAX];
    snprintf(id, sizeof id, "%s", job_id);
    for (int i = 0; i < 6000; i++) {
        store_job_release(j);
        memset(j, 0, sizeof *j);
        int rc = store_job_get(st, tenant, id, j);
        if (rc == 0)
            return -1;
        if (rc == 1 && j->status >= JOB_SUCCEEDED)
            return j->status;
        usleep(5000);
    }
    return -2;
}

static void remove_store_dir(void)
{
    char path[128];
    const char *files[] = {"t.db", "t.db-wal", "t.db-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", last_dir, files[i]);
        unlink(path);
    }
    rmdir(last_dir);
}

/* SQLite's Nth-failure loop over submit, claim and completion: for N = 1, 2, ... the
 * Nth store call of the run fails (an I/O error), until a run has no Nth call. Each
 * time, a submit either stores the whole job or nothing, and an accepted job ends
 * with every item applied exactly once: a failing store call is retried or handed
 * back, never turned into a failed item. */
TEST(engine_survives_a_failing_store_call_anywhere)
{
    const char *def = "{\"steps\":[{\"name\":\"save\",\"type\":\"upsert\","
                      "\"collection\":\"products\"}]}";
    int fired_any = 0;
    for (int nth = 1; nth <= 400; nth++) {
        struct store *st = open_store();
        CHECK(st != NULL);
        CHECK(store_def_put(st, STORE_DEF_WORKFLOW, "t1", "wf", def, NULL) >= 0);
        CHECK_EQ_INT(store_fault_set(st, "*", nth, -SLUICE_E_STORE_IO, 1), 0);
        struct submit *s = submit_new(st, "t1", 7);
        int rc = submit_set_workflow(s, "wf");
        if (rc == 0)
            rc = add_n(s, 0, 20, 0);
        struct store_job j;
        memset(&j, 0, sizeof j);
        if (rc == 0)
            rc = submit_commit(s, &j);
        char id[STORE_ID_MAX];
        snprintf(id, sizeof id, "%s", rc == 1 ? j.id : "");
        submit_free(s);
        struct engine_config cfg;
        engine_config_default(&cfg);
        cfg.batch = 8;
        cfg.lease_ms = 300;
        cfg.poll_ms = 10;
        struct engine *eng = NULL;
        CHECK_EQ_INT(engine_start(st, &cfg, &eng), 0);
        if (rc == 1) {
            int status = wait_job_through_faults(st, "t1", id, &j);
            if (status != JOB_SUCCEEDED || j.counts.succeeded != 20)
                TH_FAIL("fault at call %d: job status %d, %lld succeeded, %lld failed", nth, status,
                        (long long)j.counts.succeeded, (long long)j.counts.failed);
        } else {
            CHECK(rc < 0);
        }
        engine_stop(eng);
        store_job_release(&j);
        int64_t fired = store_fault_fired(st, NULL);
        store_fault_clear(st);
        struct store_job *jobs = NULL;
        size_t n = 0;
        CHECK_EQ_INT(store_job_list(st, "t1", -1, 0, 10, &jobs, &n), 0);
        CHECK_EQ_INT(n, rc == 1 ? 1 : 0); /* all or nothing */
        store_jobs_free(jobs, n);
        for (int r = 0; rc == 1 && r < 20; r++) {
            char ref[16];
            snprintf(ref, sizeof ref, "R%d", r);
            struct store_doc d;
            memset(&d, 0, sizeof d);
            CHECK_EQ_INT(store_doc_get(st, "t1", "products", ref, &d), 1);
            if (d.version != 1)
                TH_FAIL("fault at call %d: %s has version %lld", nth, ref, (long long)d.version);
            store_doc_release(&d);
        }
        store_close(st);
        remove_store_dir();
        if (!fired) /* the run made fewer than nth calls: every call has failed once */
            break;
        fired_any++;
    }
    fprintf(stderr, "nth-failure loop: %d runs, each with one failing store call\n", fired_any);
    CHECK(fired_any > 10);
}

int main(void)
{
    RUN(submit_validates_and_stages_in_batches);
    RUN(uncommitted_submit_stores_nothing);
    RUN(a_failed_abort_is_retried_later);
    RUN(engine_processes_noop_and_upsert_jobs);
    RUN(items_without_data_fail_and_job_fails_when_all_do);
    RUN(engine_survives_a_failing_store_call_anywhere);
    return test_report();
}
