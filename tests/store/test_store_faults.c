/* test_store_faults.c - the fault-injection hook of the store wrappers (store/fault.h):
 * spec parsing, which calls fail (nth, count, "*"), that a failed call reaches no
 * backend, and that clearing the rules restores service. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/fault.h"
#include "store/store.h"
#include "testhelp.h"
#include "util/errors.h"
#include "util/ids.h"

static struct store *open_store(void)
{
    char dir[] = "/tmp/sluice-faults-XXXXXX";
    if (!mkdtemp(dir))
        return NULL;
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/t.db", dir);
    struct store_options opt;
    store_options_default(&opt);
    opt.synchronous_full = 0;
    struct store *st = NULL;
    return store_open(url, &opt, &st) < 0 ? NULL : st;
}

static int get_job(struct store *st, const char *id)
{
    struct store_job j;
    memset(&j, 0, sizeof j);
    int rc = store_job_get(st, "t1", id, &j);
    store_job_release(&j);
    return rc;
}

/* Stages and commits a job of 3 items; returns store_job_commit's result (or the first
 * error). [out] id. */
static int submit3(struct store *st, char id[STORE_ID_MAX])
{
    struct store_new_item it[3];
    const char *refs[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        it[i] = (struct store_new_item){i, refs[i], 1, "{}", 2, -1};
    ids_job_new(id);
    int rc = store_job_begin(st, "t1", id);
    if (rc >= 0)
        rc = store_job_add_items(st, id, it, 3);
    if (rc >= 0) {
        struct store_job_meta meta = {.workflow = "noop"};
        rc = store_job_commit(st, id, &meta, 3, NULL);
    }
    if (rc < 0)
        store_job_abort(st, id);
    return rc;
}

TEST(parse_accepts_rules_and_rejects_bad_ones)
{
    struct store *st = open_store();
    CHECK(st != NULL);
    char msg[200];
    const char *bad[] = {"",
                         "claim",
                         "claim:1",
                         "clam:1:io",
                         "claim:0:io",
                         "claim:x:io",
                         "claim:1:oops",
                         "claim:1:io:-1",
                         "claim:1:io:2:3",
                         "claim:1:io,complete:1:bogus",
                         "claim:1:io:1:after",
                         "complete:1:io:1:later",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        msg[0] = '\0';
        CHECK_EQ_INT(store_fault_parse(st, bad[i], msg, sizeof msg), -SLUICE_E_INVALID_PARAMETER);
        CHECK(msg[0] != '\0');
    }
    /* nothing of a rejected spec was armed: calls go through */
    CHECK_EQ_INT(store_ping(st), 0);
    CHECK_EQ_INT(get_job(st, "job_nope"), 0);
    CHECK_EQ_INT(store_fault_parse(st, "job_get:1:busy,ping:1:StoreUnavailable:0", msg, sizeof msg),
                 0);
    CHECK_EQ_INT(get_job(st, "job_nope"), -SLUICE_E_STORE_BUSY);
    CHECK_EQ_INT(get_job(st, "job_nope"), 0); /* count defaults to 1 */
    CHECK_EQ_INT(store_ping(st), -SLUICE_E_STORE_IO);
    CHECK_EQ_INT(store_ping(st), -SLUICE_E_STORE_IO); /* count 0: for ever */
    store_fault_clear(st);
    CHECK_EQ_INT(store_ping(st), 0);
    CHECK_EQ_INT(store_fault_set(st, "nope", 1, -SLUICE_E_STORE_IO, 1),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_fault_set(st, "ping", 0, -SLUICE_E_STORE_IO, 1),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_fault_set(st, "ping", 1, SLUICE_E_STORE_IO, 1), -SLUICE_E_INVALID_PARAMETER);
    store_close(st);
}

TEST(nth_and_count_pick_the_failing_calls)
{
    struct store *st = open_store();
    CHECK(st != NULL);
    CHECK_EQ_INT(store_fault_set(st, "job_get", 2, -SLUICE_E_STORE_IO, 2), 0);
    CHECK_EQ_INT(store_fault_set(st, "ping", 1, -SLUICE_E_STORE_FULL, 1), 0);
    CHECK_EQ_INT(get_job(st, "job_x"), 0);
    CHECK_EQ_INT(get_job(st, "job_x"), -SLUICE_E_STORE_IO);
    CHECK_EQ_INT(store_ping(st), -SLUICE_E_STORE_FULL); /* rules count their own op */
    CHECK_EQ_INT(get_job(st, "job_x"), -SLUICE_E_STORE_IO);
    CHECK_EQ_INT(get_job(st, "job_x"), 0);
    CHECK_EQ_INT(store_ping(st), 0);
    CHECK_EQ_INT(store_fault_fired(st, "job_get"), 2);
    CHECK_EQ_INT(store_fault_fired(st, "ping"), 1);
    CHECK_EQ_INT(store_fault_fired(st, NULL), 3);
    store_fault_clear(st);
    /* "*" counts every call, whatever the op */
    CHECK_EQ_INT(store_fault_set(st, "*", 3, -SLUICE_E_STORE_BUSY, 1), 0);
    CHECK_EQ_INT(store_ping(st), 0);
    CHECK_EQ_INT(get_job(st, "job_x"), 0);
    CHECK_EQ_INT(store_ping(st), -SLUICE_E_STORE_BUSY);
    CHECK_EQ_INT(get_job(st, "job_x"), 0);
    store_fault_clear(st);
    store_close(st);
}

TEST(failed_calls_store_nothing_and_service_resumes)
{
    struct store *st = open_store();
    CHECK(st != NULL);
    char id[STORE_ID_MAX];
    char msg[200];
    CHECK_EQ_INT(store_fault_parse(st, "job_commit:1:full", msg, sizeof msg), 0);
    CHECK_EQ_INT(submit3(st, id), -SLUICE_E_STORE_FULL);
    CHECK_EQ_INT(get_job(st, id), 0); /* not committed, staged rows aborted */
    CHECK_EQ_INT(store_gc_receiving(st, INT64_MAX), 0);
    CHECK_EQ_INT(store_fault_parse(st, "job_add_items:1:io", msg, sizeof msg), 0);
    CHECK_EQ_INT(submit3(st, id), -SLUICE_E_STORE_IO);
    CHECK_EQ_INT(get_job(st, id), 0);
    CHECK_EQ_INT(submit3(st, id), 1); /* the faults are spent */
    CHECK_EQ_INT(get_job(st, id), 1);

    /* a completion that failed wrote nothing: the claim still owes every item */
    struct store_claim_opts o = {10, 60000, 5, 0, NULL};
    struct store_claim c;
    memset(&c, 0, sizeof c);
    CHECK_EQ_INT(store_claim(st, &o, &c), 1);
    CHECK_EQ_INT(c.n, 3);
    struct store_outcome outs[3];
    memset(outs, 0, sizeof outs);
    for (int i = 0; i < 3; i++) {
        outs[i].index = i;
        outs[i].status = ITEM_SUCCEEDED;
    }
    CHECK_EQ_INT(store_fault_set(st, "complete", 1, -SLUICE_E_STORE_BUSY, 1), 0);
    CHECK_EQ_INT(store_complete(st, &c, outs, 3, NULL, 0), -SLUICE_E_STORE_BUSY);
    struct store_job j;
    memset(&j, 0, sizeof j);
    CHECK_EQ_INT(store_job_get(st, "t1", id, &j), 1);
    CHECK_EQ_INT(j.counts.processing, 3);
    CHECK_EQ_INT(j.counts.succeeded, 0);
    store_job_release(&j);
    CHECK_EQ_INT(store_complete(st, &c, outs, 3, NULL, 0), 0); /* a retry is harmless */
    memset(&j, 0, sizeof j);
    CHECK_EQ_INT(store_job_get(st, "t1", id, &j), 1);
    CHECK_EQ_INT(j.counts.succeeded, 3);
    CHECK_EQ_INT(j.status, JOB_SUCCEEDED);
    store_job_release(&j);
    store_claim_release(&c);
    store_fault_clear(st);
    store_close(st);
}

/* AFTER rules: the call takes effect and its answer is an error (a lost answer); a
 * repeated completion then changes nothing, step counts included. */
TEST(after_rules_model_a_lost_answer)
{
    struct store *st = open_store();
    CHECK(st != NULL);
    char id[STORE_ID_MAX], msg[200];
    CHECK_EQ_INT(store_fault_set_after(st, "claim", 1, -SLUICE_E_STORE_IO, 1),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_fault_parse(st, "job_commit:1:io:1:after", msg, sizeof msg), 0);
    CHECK_EQ_INT(submit3(st, id), -SLUICE_E_STORE_IO);
    CHECK_EQ_INT(get_job(st, id), 1); /* committed all the same */
    store_fault_clear(st);

    struct store_claim_opts o = {10, 60000, 5, 0, NULL};
    struct store_claim c;
    memset(&c, 0, sizeof c);
    CHECK_EQ_INT(store_claim(st, &o, &c), 1);
    struct store_outcome outs[3];
    memset(outs, 0, sizeof outs);
    for (int i = 0; i < 3; i++) {
        outs[i].index = i;
        outs[i].status = i == 2 ? ITEM_FAILED : ITEM_SUCCEEDED;
        outs[i].error_code = i == 2 ? "StepFailed" : NULL;
    }
    struct store_step_count steps[1] = {{"s", 2, 1, 0}};
    CHECK_EQ_INT(store_fault_parse(st, "complete:1:busy:1:after", msg, sizeof msg), 0);
    CHECK_EQ_INT(store_complete(st, &c, outs, 3, steps, 1), -SLUICE_E_STORE_BUSY);
    /* the caller's retry: the claim was done and dropped, so it is gone (LeaseLost),
     * and nothing is written again */
    CHECK_EQ_INT(store_complete(st, &c, outs, 3, steps, 1), -SLUICE_E_LEASE_LOST);
    struct store_job j;
    memset(&j, 0, sizeof j);
    CHECK_EQ_INT(store_job_get(st, "t1", id, &j), 1);
    CHECK_EQ_INT(j.status, JOB_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 2);
    CHECK_EQ_INT(j.counts.failed, 1);
    CHECK_EQ_INT(j.nsteps, 1);
    CHECK_EQ_INT(j.steps[0].passed, 2); /* counted once */
    CHECK_EQ_INT(j.steps[0].failed, 1);
    store_job_release(&j);
    CHECK_EQ_INT(store_fault_fired(st, "complete"), 1);
    store_claim_release(&c);
    store_close(st);
}

int main(void)
{
    RUN(parse_accepts_rules_and_rejects_bad_ones);
    RUN(nth_and_count_pick_the_failing_calls);
    RUN(failed_calls_store_nothing_and_service_resumes);
    RUN(after_rules_model_a_lost_answer);
    return test_report();
}
