/* test_store_contract.c - the storage contract suite (store.h), for every backend.
 *
 * Opens the store named by $SLUICE_TEST_STORE_URL, or a fresh "sqlite:" file in a
 * mkdtemp() directory, and checks every function and every state transition the
 * header documents. Tests share one store: each uses its own tenant, and tests that
 * claim first drain whatever earlier tests left runnable, because claims are
 * store-wide. Ends with a 4-thread claim/complete run and throughput figures
 * (printed as "perf:" lines on stderr). */
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "testhelp.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"

static struct store *st;
static char tmpdir[64];

/* ---- helpers --------------------------------------------------------------------- */

static void new_tenant(char *out, const char *name)
{
    char r[16];
    ids_random("", 8, r);
    snprintf(out, STORE_NAME_MAX, "t-%s-%s", name, r);
}

static void new_job_id(char out[STORE_ID_MAX])
{
    ids_job_new(out);
}

/* Submits a committed job of n items with refs ref_fmt % i (unique refs), data
 * {"i":N}. Returns 0 or an error. */
static int submit(const char *tenant, char job_id[STORE_ID_MAX], int n, const char *ref_fmt)
{
    int rc;
    struct store_new_item *items = calloc((size_t)n, sizeof *items);
    char(*refs)[32] = calloc((size_t)n, 32);
    char(*data)[32] = calloc((size_t)n, 32);
    new_job_id(job_id);
    rc = store_job_begin(st, tenant, job_id);
    if (rc < 0)
        goto out;
    for (int i = 0; i < n; i++) {
        snprintf(refs[i], 32, ref_fmt, i);
        snprintf(data[i], 32, "{\"i\":%d}", i);
        items[i] = (struct store_new_item){.index = i,
                                           .ref = refs[i],
                                           .ref_len = strlen(refs[i]),
                                           .data = data[i],
                                           .data_len = strlen(data[i]),
                                           .prev_idx = -1};
    }
    rc = store_job_add_items(st, job_id, items, (size_t)n);
    if (rc < 0)
        goto out;
    rc = store_job_commit(st, job_id, "wf", NULL, n, NULL);
out:
    free(items);
    free(refs);
    free(data);
    return rc;
}

/* Completes every item of claim c with status. */
static int complete_all(struct store_claim *c, int status)
{
    struct store_outcome *o = calloc(c->n ? c->n : 1, sizeof *o);
    for (size_t i = 0; i < c->n; i++) {
        o[i].index = c->items[i].index;
        o[i].status = status;
        if (status != ITEM_SUCCEEDED)
            o[i].error_code = "InvalidData";
    }
    int rc = store_complete(st, c, o, c->n);
    free(o);
    return rc;
}

/* Claims and finishes (Skipped) whatever earlier tests left runnable. */
static void drain(void)
{
    struct store_claim c;
    while (store_claim(st, 100000, 60000, 0, &c) == 1) {
        complete_all(&c, ITEM_SKIPPED);
        store_claim_release(&c);
    }
}

static int job_status(const char *tenant, const char *id, struct store_job *j)
{
    int rc = store_job_get(st, tenant, id, j);
    return rc == 1 ? j->status : -1;
}

/* ---- lifecycle, names, keys ----------------------------------------------------- */

TEST(open_and_ping)
{
    CHECK(store_backend(st) != NULL);
    CHECK_EQ_INT(store_ping(st), 0);
    struct store *bad;
    CHECK_EQ_INT(store_open("nosuch:x", NULL, &bad), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_open("sqlite:", NULL, &bad), -SLUICE_E_INVALID_PARAMETER);
    struct store_options o;
    store_options_default(&o);
    CHECK_EQ_INT(o.synchronous_full, 1);
    CHECK_EQ_INT(o.busy_timeout_ms, 5000);
}

TEST(open_creates_directory)
{
    if (!tmpdir[0])
        return;
    char url[256];
    struct store *s2;
    snprintf(url, sizeof url, "sqlite:%s/a/b/c/other.db", tmpdir);
    CHECK_EQ_INT(store_open(url, NULL, &s2), 0);
    CHECK_EQ_STR(store_backend(s2), "sqlite");
    CHECK_EQ_INT(store_ping(s2), 0);
    store_close(s2);
    /* reopening an existing store runs no migration twice */
    CHECK_EQ_INT(store_open(url, NULL, &s2), 0);
    CHECK_EQ_INT(store_ping(s2), 0);
    store_close(s2);
}

TEST(status_names)
{
    CHECK_EQ_STR(store_job_status_name(JOB_NOT_STARTED), "NotStarted");
    CHECK_EQ_STR(store_job_status_name(JOB_RUNNING), "Running");
    CHECK_EQ_STR(store_job_status_name(JOB_CANCELING), "Canceling");
    CHECK_EQ_STR(store_job_status_name(JOB_SUCCEEDED), "Succeeded");
    CHECK_EQ_STR(store_job_status_name(JOB_FAILED), "Failed");
    CHECK_EQ_STR(store_job_status_name(JOB_CANCELED), "Canceled");
    CHECK(store_job_status_name(99) == NULL);
    CHECK_EQ_INT(store_job_status_parse("Running"), JOB_RUNNING);
    CHECK_EQ_INT(store_job_status_parse("Canceled"), JOB_CANCELED);
    CHECK_EQ_INT(store_job_status_parse("Receiving"), -1);
    CHECK_EQ_INT(store_job_status_parse("running"), -1);
    CHECK_EQ_STR(store_item_status_name(ITEM_PENDING), "Pending");
    CHECK_EQ_STR(store_item_status_name(ITEM_PROCESSING), "Processing");
    CHECK_EQ_STR(store_item_status_name(ITEM_SKIPPED), "Skipped");
    CHECK_EQ_STR(store_item_status_name(ITEM_CANCELED), "Canceled");
    CHECK_EQ_INT(store_item_status_parse("Failed"), ITEM_FAILED);
    CHECK_EQ_INT(store_item_status_parse("Succeeded"), ITEM_SUCCEEDED);
    CHECK_EQ_INT(store_item_status_parse("nope"), -1);
    CHECK_EQ_INT(store_item_status_parse(NULL), -1);
}

TEST(keys)
{
    char tenant[STORE_NAME_MAX], kid[STORE_ID_MAX], kid2[STORE_ID_MAX], h[65], h2[65];
    char got[STORE_NAME_MAX];
    new_tenant(tenant, "keys");
    ids_random("key_", 12, kid);
    ids_random("key_", 12, kid2);
    ids_sha256_hex(kid, strlen(kid), h);
    ids_sha256_hex(kid2, strlen(kid2), h2);
    CHECK_EQ_INT(store_key_create(st, kid, tenant, h), 0);
    CHECK_EQ_INT(store_key_create(st, kid, tenant, h2), -SLUICE_E_CONFLICT);
    CHECK_EQ_INT(store_key_create(st, kid2, "other-tenant", h2), 0);
    CHECK_EQ_INT(store_key_lookup(st, h, got), 1);
    CHECK_EQ_STR(got, tenant);
    CHECK_EQ_INT(store_key_lookup(st, "00", got), 0);

    struct store_key *keys;
    size_t n;
    CHECK_EQ_INT(store_key_list(st, &keys, &n), 0);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i].key_id, kid) == 0) {
            CHECK_EQ_STR(keys[i].tenant, tenant);
            CHECK(keys[i].created_at > 0);
            CHECK_EQ_INT(keys[i].revoked_at, 0);
            CHECK(i + 1 < n && strcmp(keys[i + 1].key_id, kid2) == 0); /* oldest first */
            seen = 1;
        }
    }
    free(keys);
    CHECK(seen);

    CHECK_EQ_INT(store_key_revoke(st, kid), 1);
    CHECK_EQ_INT(store_key_lookup(st, h, got), 0);
    CHECK_EQ_INT(store_key_revoke(st, kid), 1); /* already revoked */
    CHECK_EQ_INT(store_key_revoke(st, "key_unknown"), 0);
    CHECK_EQ_INT(store_key_lookup(st, h2, got), 1);
    CHECK_EQ_INT(store_key_list(st, &keys, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].key_id, kid) == 0)
            CHECK(keys[i].revoked_at > 0);
    free(keys);
}

/* ---- submit ---------------------------------------------------------------------- */

TEST(submit_batches_commit)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_job j;
    struct store_item it, *items;
    struct store_job *jobs;
    size_t n;
    new_tenant(tenant, "submit");
    new_job_id(id);
    CHECK_EQ_INT(store_job_begin(st, tenant, id), 0);
    CHECK_EQ_INT(store_job_begin(st, tenant, id), -SLUICE_E_CONFLICT);
    /* three batches */
    for (int b = 0; b < 3; b++) {
        struct store_new_item ni[4];
        char refs[4][16];
        for (int i = 0; i < 4; i++) {
            int idx = b * 4 + i;
            snprintf(refs[i], sizeof refs[i], "r%d", idx);
            ni[i] = (struct store_new_item){.index = idx,
                                            .ref = refs[i],
                                            .ref_len = strlen(refs[i]),
                                            .data = idx == 5 ? NULL : "{\"x\": [1, 2]}",
                                            .data_len = idx == 5 ? 0 : 13,
                                            .prev_idx = -1};
        }
        CHECK_EQ_INT(store_job_add_items(st, id, ni, 4), 0);
        /* Receiving: invisible to every read */
        CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 0);
        CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 0);
        CHECK_EQ_INT(store_item_list(st, tenant, id, -1, NULL, -1, 10, 0, &items, &n), 0);
        CHECK_EQ_INT(store_job_list(st, tenant, -1, 0, 10, &jobs, &n), 0);
        CHECK_EQ_INT(n, 0);
        store_jobs_free(jobs, n);
        CHECK_EQ_INT(store_job_cancel(st, tenant, id, &j), 0);
    }
    CHECK_EQ_INT(store_job_commit(st, id, "import", "ref-42", 12, &j), 0);
    CHECK_EQ_STR(j.id, id);
    CHECK_EQ_STR(j.tenant, tenant);
    CHECK_EQ_STR(j.workflow, "import");
    CHECK_EQ_STR(j.client_reference, "ref-42");
    CHECK_EQ_INT(j.status, JOB_NOT_STARTED);
    CHECK_EQ_INT(j.counts.total, 12);
    CHECK_EQ_INT(j.counts.pending, 12);
    CHECK_EQ_INT(j.counts.processing + j.counts.succeeded + j.counts.failed, 0);
    CHECK(j.created_at > 0 && j.seq > 0);
    CHECK_EQ_INT(j.started_at, 0);
    store_job_release(&j);
    /* a second commit finds no Receiving job */
    CHECK_EQ_INT(store_job_commit(st, id, "import", NULL, 12, NULL), -SLUICE_E_NOT_FOUND);
    CHECK_EQ_INT(store_job_add_items(st, id, NULL, 0), -SLUICE_E_NOT_FOUND);

    CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 1);
    CHECK_EQ_INT(j.status, JOB_NOT_STARTED);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 11, &it), 1);
    CHECK_EQ_INT(it.index, 11);
    CHECK_EQ_STR(it.ref, "r11");
    CHECK_EQ_INT(it.status, ITEM_PENDING);
    CHECK_EQ_INT(it.attempts, 0);
    CHECK_EQ_STR(it.data, "{\"x\": [1, 2]}"); /* raw bytes as given */
    CHECK_EQ_INT(it.data_len, 13);
    CHECK_EQ_STR(it.events, "[]");
    CHECK(it.result == NULL);
    CHECK_EQ_STR(it.error_code, "");
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 5, &it), 1);
    CHECK(it.data == NULL);
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 12, &it), 0);
    CHECK_EQ_INT(store_item_get(st, tenant, id, -1, &it), 0);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, NULL), 1);
}

TEST(submit_abort_and_gc)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX], id2[STORE_ID_MAX];
    struct store_new_item ni = {
        .index = 0, .ref = "a", .ref_len = 1, .data = "1", .data_len = 1, .prev_idx = -1};
    struct store_job j;
    new_tenant(tenant, "abort");
    new_job_id(id);
    CHECK_EQ_INT(store_job_begin(st, tenant, id), 0);
    CHECK_EQ_INT(store_job_add_items(st, id, &ni, 1), 0);
    CHECK_EQ_INT(store_job_abort(st, id), 0);
    CHECK_EQ_INT(store_job_commit(st, id, "wf", NULL, 1, NULL), -SLUICE_E_NOT_FOUND);
    CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 0);
    /* the id is free again: nothing of the aborted job is left */
    CHECK_EQ_INT(store_job_begin(st, tenant, id), 0);
    CHECK_EQ_INT(store_job_add_items(st, id, &ni, 1), 0);
    CHECK_EQ_INT(store_job_abort(st, id), 0);

    /* gc: only Receiving jobs last touched before the cut-off */
    new_job_id(id);
    CHECK_EQ_INT(store_job_begin(st, tenant, id), 0);
    CHECK_EQ_INT(store_job_add_items(st, id, &ni, 1), 0);
    CHECK_EQ_INT(store_gc_receiving(st, clock_now_ms() - 60000), 0);
    CHECK_EQ_INT(submit(tenant, id2, 2, "g%d"), 0);
    int64_t cut = clock_now_ms() + 1;
    struct timespec ts = {0, 3000000};
    nanosleep(&ts, NULL);
    CHECK_EQ_INT(store_gc_receiving(st, cut), 1);
    CHECK_EQ_INT(store_job_add_items(st, id, &ni, 1), -SLUICE_E_NOT_FOUND);
    CHECK_EQ_INT(store_job_get(st, tenant, id2, &j), 1); /* committed job untouched */
    store_job_release(&j);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id2, NULL), 1);
}

TEST(tenant_isolation)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_job j, *jobs;
    struct store_item it, *items;
    struct store_doc d;
    size_t n;
    new_tenant(tenant, "iso");
    new_tenant(other, "iso-other");
    CHECK_EQ_INT(submit(tenant, id, 3, "r%d"), 0);
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "d1", STORE_OP_UPSERT, "{}", 2, -1, NULL, NULL),
                 0);
    CHECK_EQ_INT(store_job_get(st, other, id, &j), 0);
    CHECK_EQ_INT(store_item_get(st, other, id, 0, &it), 0);
    CHECK_EQ_INT(store_item_list(st, other, id, -1, NULL, -1, 10, 1, &items, &n), 0);
    CHECK_EQ_INT(store_job_cancel(st, other, id, &j), 0);
    CHECK_EQ_INT(store_job_delete(st, other, id), 0);
    CHECK_EQ_INT(store_job_list(st, other, -1, 0, 10, &jobs, &n), 0);
    CHECK_EQ_INT(n, 0);
    store_jobs_free(jobs, n);
    CHECK_EQ_INT(store_doc_get(st, other, "c", "d1", &d), 0);
    struct store_doc *docs;
    CHECK_EQ_INT(store_doc_list(st, other, "c", NULL, 10, &docs, &n), 0);
    CHECK_EQ_INT(n, 0);
    store_docs_free(docs, n);
    CHECK_EQ_INT(store_doc_write(st, other, "c", "d1", STORE_OP_DELETE, NULL, 0, -1, NULL, NULL),
                 -SLUICE_E_DOCUMENT_NOT_FOUND);
    /* the owner still sees everything */
    CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 1);
    CHECK_EQ_INT(j.status, JOB_NOT_STARTED);
    store_job_release(&j);
    CHECK_EQ_INT(store_doc_get(st, tenant, "c", "d1", &d), 1);
    store_doc_release(&d);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, NULL), 1);
}

TEST(job_list_order_paging_filter)
{
    char tenant[STORE_NAME_MAX], ids[5][STORE_ID_MAX];
    struct store_job *jobs;
    size_t n;
    new_tenant(tenant, "list");
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(submit(tenant, ids[i], 1, "r%d"), 0);
    CHECK_EQ_INT(store_job_list(st, tenant, -1, 0, 10, &jobs, &n), 0);
    CHECK_EQ_INT(n, 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_STR(jobs[i].id, ids[4 - i]); /* newest first */
    for (int i = 1; i < 5; i++)
        CHECK(jobs[i].seq < jobs[i - 1].seq);
    int64_t third = jobs[2].seq;
    store_jobs_free(jobs, n);

    CHECK_EQ_INT(store_job_list(st, tenant, -1, 0, 2, &jobs, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(jobs[1].id, ids[3]);
    int64_t before = jobs[1].seq;
    store_jobs_free(jobs, n);
    CHECK_EQ_INT(store_job_list(st, tenant, -1, before, 2, &jobs, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(jobs[0].id, ids[2]);
    CHECK_EQ_STR(jobs[1].id, ids[1]);
    CHECK_EQ_INT(jobs[0].seq, third);
    store_jobs_free(jobs, n);
    CHECK_EQ_INT(store_job_list(st, tenant, -1, third, 10, &jobs, &n), 0);
    CHECK_EQ_INT(n, 2);
    store_jobs_free(jobs, n);

    CHECK_EQ_INT(store_job_cancel(st, tenant, ids[1], NULL), 1);
    CHECK_EQ_INT(store_job_cancel(st, tenant, ids[3], NULL), 1);
    CHECK_EQ_INT(store_job_list(st, tenant, JOB_CANCELED, 0, 10, &jobs, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(jobs[0].id, ids[3]);
    CHECK_EQ_STR(jobs[1].id, ids[1]);
    store_jobs_free(jobs, n);
    CHECK_EQ_INT(store_job_list(st, tenant, JOB_NOT_STARTED, 0, 10, &jobs, &n), 0);
    CHECK_EQ_INT(n, 3);
    store_jobs_free(jobs, n);
    CHECK_EQ_INT(store_job_list(st, tenant, JOB_RUNNING, 0, 10, &jobs, &n), 0);
    CHECK_EQ_INT(n, 0);
    store_jobs_free(jobs, n);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(store_job_cancel(st, tenant, ids[i], NULL), 1);
}

/* ---- claims ---------------------------------------------------------------------- */

TEST(claim_ranges_and_effective_status)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c, c2;
    struct store_job j;
    struct store_item it, *items;
    size_t n;
    drain();
    new_tenant(tenant, "claim");
    CHECK_EQ_INT(submit(tenant, id, 10, "r%d"), 0);
    CHECK_EQ_INT(store_claim(st, 4, 60000, 3, &c), 1);
    CHECK_EQ_STR(c.job_id, id);
    CHECK_EQ_STR(c.tenant, tenant);
    CHECK_EQ_STR(c.workflow, "wf");
    CHECK_EQ_INT(c.from, 0);
    CHECK_EQ_INT(c.to, 4);
    CHECK_EQ_INT(c.n, 4);
    CHECK(c.token[0] != '\0');
    CHECK(c.lease_until >= c.claimed_at + 60000);
    CHECK_EQ_INT(c.items[2].index, 2);
    CHECK_EQ_STR(c.items[2].ref, "r2");
    CHECK_EQ_STR(c.items[2].data, "{\"i\":2}");
    CHECK_EQ_INT(c.items[2].attempts, 0);

    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_RUNNING);
    CHECK(j.started_at > 0);
    CHECK_EQ_INT(j.counts.pending, 6);
    CHECK_EQ_INT(j.counts.processing, 4);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 3, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_PROCESSING);
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 4, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_PENDING);
    store_item_release(&it);
    CHECK_EQ_INT(store_item_list(st, tenant, id, ITEM_PROCESSING, NULL, -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 4);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, ITEM_PENDING, NULL, -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_INT(items[0].index, 4);
    store_items_free(items, n);

    /* the next range continues at the cursor, bounded by the job's end */
    CHECK_EQ_INT(store_claim(st, 100, 60000, 3, &c2), 1);
    CHECK_EQ_INT(c2.from, 4);
    CHECK_EQ_INT(c2.to, 10);
    CHECK_EQ_INT(c2.n, 6);
    CHECK(c2.claim_id != c.claim_id);
    CHECK(strcmp(c2.token, c.token) != 0);
    struct store_claim none;
    CHECK_EQ_INT(store_claim(st, 100, 60000, 3, &none), 0); /* nothing runnable */
    CHECK_EQ_INT(complete_all(&c2, ITEM_SUCCEEDED), 0);
    store_claim_release(&c2);
    CHECK_EQ_INT(store_claim(st, 4, 60000, 3, &none), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_RUNNING);
    CHECK_EQ_INT(j.counts.succeeded, 6);
    store_job_release(&j);
    /* the first claim is still valid; completing it finishes the job */
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    store_job_release(&j);
    store_claim_release(&c);
}

TEST(claim_fairness)
{
    char tenant[STORE_NAME_MAX], a[STORE_ID_MAX], b[STORE_ID_MAX], small[STORE_ID_MAX];
    struct store_claim c[6];
    drain();
    new_tenant(tenant, "fair");
    CHECK_EQ_INT(submit(tenant, a, 1000, "a%d"), 0);
    CHECK_EQ_INT(submit(tenant, b, 1000, "b%d"), 0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c[i]), 1);
        CHECK_EQ_STR(c[i].job_id, i % 2 == 0 ? a : b); /* the two jobs alternate */
        CHECK_EQ_INT(c[i].from, (i / 2) * 10);
    }
    /* a small job submitted while the big ones are runnable goes next */
    CHECK_EQ_INT(submit(tenant, small, 10, "s%d"), 0);
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c[4]), 1);
    CHECK_EQ_STR(c[4].job_id, small);
    CHECK_EQ_INT(c[4].n, 10);
    CHECK_EQ_INT(complete_all(&c[4], ITEM_SUCCEEDED), 0);
    struct store_job j;
    CHECK_EQ_INT(job_status(tenant, small, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.outcome, OUTCOME_ALL_SUCCEEDED);
    store_job_release(&j);
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c[5]), 1);
    CHECK_EQ_STR(c[5].job_id, a);
    for (int i = 0; i < 6; i++) {
        if (i != 4)
            CHECK_EQ_INT(complete_all(&c[i], ITEM_SUCCEEDED), 0);
        store_claim_release(&c[i]);
    }
    CHECK_EQ_INT(store_job_cancel(st, tenant, a, NULL), 1);
    CHECK_EQ_INT(store_job_cancel(st, tenant, b, NULL), 1);
    CHECK_EQ_INT(job_status(tenant, a, &j), JOB_CANCELED);
    store_job_release(&j);
}

/* Submits a job whose items have the given refs (one char each), prev_idx linking
 * equal refs. */
static int submit_refs(const char *tenant, char id[STORE_ID_MAX], const char *refs)
{
    struct store_new_item ni[32];
    int n = (int)strlen(refs), rc;
    new_job_id(id);
    if ((rc = store_job_begin(st, tenant, id)) < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        ni[i] = (struct store_new_item){
            .index = i, .ref = &refs[i], .ref_len = 1, .data = "{}", .data_len = 2, .prev_idx = -1};
        for (int p = i - 1; p >= 0; p--)
            if (refs[p] == refs[i]) {
                ni[i].prev_idx = p;
                break;
            }
    }
    if ((rc = store_job_add_items(st, id, ni, (size_t)n)) < 0)
        return rc;
    return store_job_commit(st, id, "wf", NULL, n, NULL);
}

TEST(claim_same_ref_order)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c1, c2, c3;
    drain();
    new_tenant(tenant, "sameref");
    CHECK_EQ_INT(submit_refs(tenant, id, "abaca"), 0);
    CHECK_EQ_INT(store_claim(st, 2, 60000, 3, &c1), 1);
    CHECK_EQ_INT(c1.from, 0);
    CHECK_EQ_INT(c1.to, 2);
    /* item 2 ("a") waits for item 0, in flight in c1 */
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c2), 0);
    struct store_outcome o = {.index = 0, .status = ITEM_SUCCEEDED};
    CHECK_EQ_INT(store_complete(st, &c1, &o, 1), 0);
    /* now 2..4 in one range: item 4 follows item 2 inside the same range */
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c2), 1);
    CHECK_EQ_INT(c2.from, 2);
    CHECK_EQ_INT(c2.to, 5);
    CHECK_EQ_INT(c2.n, 3);
    CHECK_EQ_INT(complete_all(&c1, ITEM_SUCCEEDED), 0); /* item 1; item 0 counted once */
    CHECK_EQ_INT(complete_all(&c2, ITEM_SUCCEEDED), 0);
    struct store_job j;
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 5);
    store_job_release(&j);
    store_claim_release(&c1);
    store_claim_release(&c2);

    /* a range stops before a blocked item */
    CHECK_EQ_INT(submit_refs(tenant, id, "abca"), 0);
    CHECK_EQ_INT(store_claim(st, 2, 60000, 3, &c1), 1);
    CHECK_EQ_INT(c1.to, 2);
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c2), 1);
    CHECK_EQ_INT(c2.from, 2);
    CHECK_EQ_INT(c2.to, 3);
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c3), 0);
    CHECK_EQ_INT(complete_all(&c1, ITEM_FAILED), 0); /* a failed item is terminal too */
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c3), 1);
    CHECK_EQ_INT(c3.from, 3);
    CHECK_EQ_INT(c3.to, 4);
    CHECK_EQ_INT(complete_all(&c2, ITEM_SUCCEEDED), 0);
    CHECK_EQ_INT(complete_all(&c3, ITEM_SUCCEEDED), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.outcome, OUTCOME_PARTIALLY_SUCCEEDED);
    store_job_release(&j);
    store_claim_release(&c1);
    store_claim_release(&c2);
    store_claim_release(&c3);
}

TEST(lease_expiry_takeover)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c1, c2, c3;
    struct store_job j;
    struct store_item it;
    drain();
    new_tenant(tenant, "lease");
    CHECK_EQ_INT(submit(tenant, id, 3, "r%d"), 0);
    CHECK_EQ_INT(store_claim(st, 10, 0, 3, &c1), 1); /* lease 0: expired at once */
    CHECK_EQ_INT(c1.n, 3);
    CHECK_EQ_INT(store_claim(st, 10, 0, 3, &c2), 1);
    CHECK_EQ_INT(c2.claim_id, c1.claim_id);
    CHECK(strcmp(c2.token, c1.token) != 0);
    CHECK_EQ_INT(c2.from, 0);
    CHECK_EQ_INT(c2.to, 3);
    CHECK_EQ_INT(c2.n, 3);
    CHECK_EQ_INT(c2.items[0].attempts, 1);
    CHECK_EQ_STR(c2.items[1].ref, "r1");
    CHECK_EQ_STR(c2.items[1].data, "{\"i\":1}");
    CHECK_EQ_INT(store_item_get(st, tenant, id, 1, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_PROCESSING);
    CHECK_EQ_INT(it.attempts, 1);
    CHECK(strstr(it.events, "\"code\":\"LeaseExpired\"") != NULL);
    CHECK(strstr(it.events, "\"level\":\"warn\"") != NULL);
    CHECK(it.events[0] == '[' && it.events[strlen(it.events) - 1] == ']');
    store_item_release(&it);

    /* the stale token writes nothing */
    CHECK_EQ_INT(complete_all(&c1, ITEM_SUCCEEDED), -SLUICE_E_LEASE_LOST);
    CHECK_EQ_INT(store_release(st, &c1), -SLUICE_E_LEASE_LOST);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_RUNNING);
    CHECK_EQ_INT(j.counts.processing, 3);
    CHECK_EQ_INT(j.counts.succeeded, 0);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_PROCESSING);
    store_item_release(&it);

    /* finish one item under the live token, then let the rest expire to the limit */
    struct store_outcome o = {.index = 0, .status = ITEM_SUCCEEDED, .result = "{\"ok\":1}"};
    CHECK_EQ_INT(store_complete(st, &c2, &o, 1), 0);
    CHECK_EQ_INT(store_claim(st, 10, 0, 3, &c3), 1);
    CHECK_EQ_INT(c3.n, 2);
    CHECK_EQ_INT(c3.items[0].index, 1);
    CHECK_EQ_INT(c3.items[0].attempts, 2);
    struct store_claim none;
    CHECK_EQ_INT(store_claim(st, 10, 0, 3, &none), 0); /* attempt 3: given up */
    CHECK_EQ_INT(store_item_get(st, tenant, id, 2, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_FAILED);
    CHECK_EQ_INT(it.attempts, 3);
    CHECK_EQ_STR(it.error_code, "MaxAttemptsExceeded");
    CHECK(strstr(it.events, "MaxAttemptsExceeded") != NULL);
    store_item_release(&it);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.outcome, OUTCOME_PARTIALLY_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 1);
    CHECK_EQ_INT(j.counts.failed, 2);
    CHECK_EQ_INT(j.counts.processing, 0);
    CHECK(j.completed_at > 0);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK_EQ_STR(it.result, "{\"ok\":1}");
    CHECK_EQ_INT(it.attempts, 2); /* one lost attempt, one that succeeded */
    store_item_release(&it);
    store_claim_release(&c1);
    store_claim_release(&c2);
    store_claim_release(&c3);

    /* all items abandoned: the job fails */
    CHECK_EQ_INT(submit(tenant, id, 2, "r%d"), 0);
    CHECK_EQ_INT(store_claim(st, 10, 0, 1, &c1), 1);
    CHECK_EQ_INT(store_claim(st, 10, 0, 1, &c2), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_FAILED);
    CHECK_EQ_STR(j.error_code, "AllItemsFailed");
    CHECK_EQ_INT(j.counts.failed, 2);
    store_job_release(&j);
    store_claim_release(&c1);
}

TEST(expire_claims_retakes_at_once)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c1, c2, none;
    struct store_item it;
    drain();
    new_tenant(tenant, "expire");
    CHECK_EQ_INT(submit(tenant, id, 4, "e%d"), 0);
    CHECK_EQ_INT(store_claim(st, 10, 600000, 5, &c1), 1); /* a long lease */
    CHECK_EQ_INT(store_claim(st, 10, 600000, 5, &none), 0);
    CHECK_EQ_INT(store_expire_claims(st), 1);
    CHECK_EQ_INT(store_claim(st, 10, 600000, 5, &c2), 1);
    CHECK_EQ_INT(c2.claim_id, c1.claim_id);
    CHECK_EQ_INT(c2.n, 4);
    CHECK_EQ_INT(c2.items[0].attempts, 1); /* the dead run's attempt counts */
    CHECK_EQ_INT(complete_all(&c1, ITEM_SUCCEEDED), -SLUICE_E_LEASE_LOST);
    CHECK_EQ_INT(complete_all(&c2, ITEM_SUCCEEDED), 0);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 3, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_SUCCEEDED);
    CHECK_EQ_INT(it.attempts, 2);
    store_item_release(&it);
    CHECK_EQ_INT(store_expire_claims(st), 0);
    store_claim_release(&c1);
    store_claim_release(&c2);
}

TEST(release_gives_back)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c1, c2;
    struct store_item it;
    struct store_job j;
    drain();
    new_tenant(tenant, "release");
    CHECK_EQ_INT(submit(tenant, id, 5, "r%d"), 0);
    CHECK_EQ_INT(store_claim(st, 5, 60000, 3, &c1), 1);
    struct store_outcome o = {.index = 1, .status = ITEM_SKIPPED, .error_code = "Filtered"};
    CHECK_EQ_INT(store_complete(st, &c1, &o, 1), 0);
    CHECK_EQ_INT(store_release(st, &c1), 0);
    CHECK_EQ_INT(store_claim(st, 5, 60000, 1, &c2), 1); /* max_attempts 1: none counted */
    CHECK_EQ_INT(c2.from, 0);
    CHECK_EQ_INT(c2.to, 5);
    CHECK_EQ_INT(c2.n, 4);
    CHECK_EQ_INT(c2.items[0].attempts, 0);
    CHECK_EQ_INT(c2.items[1].index, 2);
    CHECK(strcmp(c2.token, c1.token) != 0);
    CHECK_EQ_INT(complete_all(&c1, ITEM_SUCCEEDED), -SLUICE_E_LEASE_LOST);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK_EQ_INT(it.attempts, 0);
    CHECK_EQ_STR(it.events, "[]");
    store_item_release(&it);
    CHECK_EQ_INT(complete_all(&c2, ITEM_SUCCEEDED), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.outcome, OUTCOME_ALL_SUCCEEDED); /* skipped is not a failure */
    CHECK_EQ_INT(j.counts.skipped, 1);
    CHECK_EQ_INT(j.counts.succeeded, 4);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 1, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_SKIPPED);
    CHECK_EQ_STR(it.error_code, "Filtered");
    store_item_release(&it);
    store_claim_release(&c1);
    store_claim_release(&c2);
}

/* ---- completion ------------------------------------------------------------------ */

TEST(completion_counts_and_outcomes)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c;
    struct store_job j;
    struct store_item it;
    drain();
    new_tenant(tenant, "complete");
    CHECK_EQ_INT(submit(tenant, id, 6, "r%d"), 0);
    CHECK_EQ_INT(store_claim(st, 6, 60000, 3, &c), 1);
    struct store_outcome o[6] = {
        {.index = 0,
         .status = ITEM_SUCCEEDED,
         .result = "{\"n\":0}",
         .events = "[{\"at\":\"2020-01-01T00:00:00.000Z\",\"stage\":\"map\",\"level\":\"info\","
                   "\"code\":\"Mapped\",\"message\":\"ok\"}]"},
        {.index = 1, .status = ITEM_SUCCEEDED, .events = " [ ] "},
        {.index = 2, .status = ITEM_FAILED, .error_code = "InvalidData", .error_message = "bad"},
        {.index = 3, .status = ITEM_SKIPPED, .error_code = "Filtered"},
        {.index = 4, .status = ITEM_SUCCEEDED},
        {.index = 5, .status = ITEM_SUCCEEDED},
    };
    CHECK_EQ_INT(store_complete(st, &c, o, 2), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_RUNNING);
    CHECK_EQ_INT(j.counts.succeeded, 2);
    CHECK_EQ_INT(j.counts.processing, 4);
    CHECK_EQ_INT(j.counts.pending, 0);
    CHECK(j.last_progress_at > 0);
    CHECK(j.win_at > 0);
    store_job_release(&j);
    CHECK_EQ_INT(store_complete(st, &c, o, 2), 0); /* repeated: counted once */
    CHECK_EQ_INT(store_complete(st, &c, o + 2, 2), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_RUNNING);
    CHECK_EQ_INT(j.counts.succeeded, 2);
    CHECK_EQ_INT(j.counts.failed, 1);
    CHECK_EQ_INT(j.counts.skipped, 1);
    CHECK_EQ_INT(j.counts.processing, 2);
    CHECK_EQ_INT(j.counts.total, 6);
    store_job_release(&j);
    CHECK_EQ_INT(store_complete(st, &c, o + 4, 2), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.outcome, OUTCOME_PARTIALLY_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 4);
    CHECK_EQ_INT(j.counts.processing, 0);
    CHECK(j.completed_at > 0);
    CHECK_EQ_INT(j.win_done <= 6, 1);
    store_job_release(&j);
    /* the claim is gone once all its items are done */
    CHECK_EQ_INT(store_complete(st, &c, o, 1), -SLUICE_E_LEASE_LOST);

    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_SUCCEEDED);
    CHECK_EQ_INT(it.attempts, 1);
    CHECK_EQ_STR(it.result, "{\"n\":0}");
    CHECK(strstr(it.events, "\"code\":\"Mapped\"") != NULL);
    CHECK(it.updated_at >= it.created_at);
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 1, &it), 1);
    CHECK_EQ_STR(it.events, "[]");
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 2, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_FAILED);
    CHECK_EQ_STR(it.error_code, "InvalidData");
    CHECK_EQ_STR(it.error_message, "bad");
    store_item_release(&it);
    store_claim_release(&c);

    /* all succeeded / all failed */
    CHECK_EQ_INT(submit(tenant, id, 3, "r%d"), 0);
    CHECK_EQ_INT(store_claim(st, 6, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.outcome, OUTCOME_ALL_SUCCEEDED);
    CHECK_EQ_STR(j.error_code, "");
    store_job_release(&j);
    store_claim_release(&c);
    CHECK_EQ_INT(submit(tenant, id, 3, "r%d"), 0);
    CHECK_EQ_INT(store_claim(st, 6, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_FAILED), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_FAILED);
    CHECK_EQ_INT(j.outcome, OUTCOME_NONE);
    CHECK_EQ_STR(j.error_code, "AllItemsFailed");
    CHECK_EQ_INT(j.counts.failed, 3);
    store_job_release(&j);
    store_claim_release(&c);
}

TEST(completion_doc_ops)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c;
    struct store_item it;
    struct store_doc d;
    struct store_job j;
    drain();
    new_tenant(tenant, "docops");
    /* job 1: upsert SKU-1 (item data, raw bytes) and SKU-2 (engine data), patch and
     * delete of missing documents */
    CHECK_EQ_INT(submit_refs(tenant, id, "1234"), 0);
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c), 1);
    const char *body = "{ \"name\" : \"x\", \"tags\": [1,2] }";
    /* submit_refs stores data "{}": use engine data for a body with spaces */
    struct store_outcome o[4] = {
        {.index = 0,
         .status = ITEM_SUCCEEDED,
         .op = STORE_OP_UPSERT,
         .collection = "products",
         .data = body,
         .data_len = strlen(body)},
        {.index = 1, .status = ITEM_SUCCEEDED, .op = STORE_OP_UPSERT, .collection = "products"},
        {.index = 2,
         .status = ITEM_SUCCEEDED,
         .op = STORE_OP_PATCH,
         .collection = "products",
         .data = "{\"a\":1}",
         .data_len = 7},
        {.index = 3, .status = ITEM_SUCCEEDED, .op = STORE_OP_DELETE, .collection = "products"},
    };
    CHECK_EQ_INT(store_complete(st, &c, o, 4), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(o[0].status, ITEM_SUCCEEDED);
    CHECK_EQ_INT(o[2].status, ITEM_FAILED); /* written back for the caller */
    CHECK_EQ_STR(o[2].error_code, "DocumentNotFound");
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.outcome, OUTCOME_PARTIALLY_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 2);
    CHECK_EQ_INT(j.counts.failed, 2);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK_EQ_STR(it.result,
                 "{\"collection\":\"products\",\"ref\":\"1\",\"version\":1,\"created\":true}");
    CHECK(strstr(it.events, "\"code\":\"VersionWritten\"") != NULL);
    CHECK(strstr(it.events, "products/1 version 1") != NULL);
    CHECK(strstr(it.events, "\"stage\":\"apply\"") != NULL);
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 2, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_FAILED);
    CHECK_EQ_STR(it.error_code, "DocumentNotFound");
    CHECK(it.result == NULL);
    CHECK(strstr(it.events, "\"level\":\"error\"") != NULL);
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 3, &it), 1);
    CHECK_EQ_STR(it.error_code, "DocumentNotFound");
    store_item_release(&it);
    CHECK_EQ_INT(store_doc_get(st, tenant, "products", "1", &d), 1);
    CHECK_EQ_STR(d.data, body); /* stored as given, never re-serialized */
    CHECK_EQ_INT(d.version, 1);
    CHECK_EQ_STR(d.job_id, id);
    CHECK_EQ_INT(d.item_index, 0);
    store_doc_release(&d);
    CHECK_EQ_INT(store_doc_get(st, tenant, "products", "2", &d), 1);
    CHECK_EQ_STR(d.data, "{}");
    store_doc_release(&d);
    CHECK_EQ_INT(store_doc_get(st, tenant, "products", "3", &d), 0);

    /* job 2: upsert again bumps by exactly 1, patch merges, delete tombstones */
    CHECK_EQ_INT(submit_refs(tenant, id, "12"), 0);
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c), 1);
    struct store_outcome o2[2] = {
        {.index = 0,
         .status = ITEM_SUCCEEDED,
         .op = STORE_OP_PATCH,
         .collection = "products",
         .data = "{\"name\":null,\"price\":{\"eur\":5}}",
         .data_len = 31},
        {.index = 1, .status = ITEM_SUCCEEDED, .op = STORE_OP_UPSERT, .collection = "products"},
    };
    CHECK_EQ_INT(store_complete(st, &c, o2, 2), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(store_doc_get(st, tenant, "products", "1", &d), 1);
    CHECK_EQ_STR(d.data, "{\"tags\":[1,2],\"price\":{\"eur\":5}}");
    CHECK_EQ_INT(d.version, 2);
    store_doc_release(&d);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 1, &it), 1);
    CHECK_EQ_STR(it.result,
                 "{\"collection\":\"products\",\"ref\":\"2\",\"version\":2,\"created\":false}");
    store_item_release(&it);
    CHECK_EQ_INT(submit_refs(tenant, id, "1"), 0);
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c), 1);
    struct store_outcome o3 = {
        .index = 0, .status = ITEM_SUCCEEDED, .op = STORE_OP_DELETE, .collection = "products"};
    CHECK_EQ_INT(store_complete(st, &c, &o3, 1), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_SUCCEEDED);
    CHECK(strstr(it.result, "\"version\":3") != NULL);
    store_item_release(&it);
    CHECK_EQ_INT(store_doc_get(st, tenant, "products", "1", &d), 0);

    /* invalid patch data fails the item with InvalidData */
    CHECK_EQ_INT(submit_refs(tenant, id, "2"), 0);
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c), 1);
    struct store_outcome o4 = {.index = 0,
                               .status = ITEM_SUCCEEDED,
                               .op = STORE_OP_PATCH,
                               .collection = "products",
                               .data = "{nope",
                               .data_len = 5};
    CHECK_EQ_INT(store_complete(st, &c, &o4, 1), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_FAILED);
    CHECK_EQ_STR(it.error_code, "InvalidData");
    store_item_release(&it);
    CHECK_EQ_INT(store_doc_get(st, tenant, "products", "2", &d), 1);
    CHECK_EQ_INT(d.version, 2);
    store_doc_release(&d);
}

/* ---- cancel and delete ----------------------------------------------------------- */

TEST(cancel_not_started)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_job j;
    struct store_item *items;
    struct store_claim c;
    size_t n;
    drain();
    new_tenant(tenant, "cancel1");
    CHECK_EQ_INT(submit(tenant, id, 5, "r%d"), 0);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, &j), 1);
    CHECK_EQ_INT(j.status, JOB_CANCELED);
    CHECK_EQ_INT(j.counts.canceled, 5);
    CHECK_EQ_INT(j.counts.pending, 0);
    CHECK(j.completed_at > 0);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_list(st, tenant, id, ITEM_CANCELED, NULL, -1, 10, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 5);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, ITEM_PENDING, NULL, -1, 10, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 0);
    store_items_free(items, n);
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c), 0);
    int64_t done = 0;
    CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 1);
    done = j.completed_at;
    store_job_release(&j);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, &j), 1); /* terminal: unchanged */
    CHECK_EQ_INT(j.status, JOB_CANCELED);
    CHECK_EQ_INT(j.completed_at, done);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_cancel(st, tenant, "job_nosuch", &j), 0);
}

TEST(cancel_running)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_job j;
    struct store_item it, *items;
    struct store_claim c, c2;
    size_t n;
    drain();
    new_tenant(tenant, "cancel2");
    CHECK_EQ_INT(submit(tenant, id, 10, "r%d"), 0);
    CHECK_EQ_INT(store_claim(st, 4, 60000, 3, &c), 1);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, &j), 1);
    CHECK_EQ_INT(j.status, JOB_CANCELING);
    CHECK_EQ_INT(j.counts.canceled, 6);
    CHECK_EQ_INT(j.counts.processing, 4);
    CHECK_EQ_INT(j.counts.pending, 0);
    CHECK_EQ_INT(j.completed_at, 0);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 3, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_PROCESSING);
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 4, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_CANCELED);
    store_item_release(&it);
    CHECK_EQ_INT(store_item_list(st, tenant, id, ITEM_CANCELED, NULL, -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_INT(items[0].index, 4);
    store_items_free(items, n);
    CHECK_EQ_INT(store_claim(st, 10, 60000, 3, &c2), 0);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, &j), 1); /* again: still Canceling */
    CHECK_EQ_INT(j.status, JOB_CANCELING);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_delete(st, tenant, id), -SLUICE_E_CONFLICT);
    struct store_outcome o[4] = {
        {.index = 0, .status = ITEM_SUCCEEDED},
        {.index = 1, .status = ITEM_SUCCEEDED},
        {.index = 2, .status = ITEM_FAILED, .error_code = "InvalidData"},
        {.index = 3, .status = ITEM_SUCCEEDED},
    };
    CHECK_EQ_INT(store_complete(st, &c, o, 3), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_CANCELING);
    store_job_release(&j);
    CHECK_EQ_INT(store_complete(st, &c, o + 3, 1), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_CANCELED);
    CHECK_EQ_INT(j.counts.succeeded, 3);
    CHECK_EQ_INT(j.counts.failed, 1);
    CHECK_EQ_INT(j.counts.canceled, 6);
    CHECK_EQ_INT(j.counts.processing, 0);
    CHECK(j.completed_at > 0);
    store_job_release(&j);
    store_claim_release(&c);

    /* a canceled job whose claim expires or is released: the items become Canceled */
    CHECK_EQ_INT(submit(tenant, id, 4, "r%d"), 0);
    CHECK_EQ_INT(store_claim(st, 2, 60000, 3, &c2), 1);
    CHECK_EQ_INT(store_claim(st, 2, 0, 3, &c), 1); /* lease 0: expired at once */
    CHECK_EQ_INT(c.from, 2);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, &j), 1);
    CHECK_EQ_INT(j.status, JOB_CANCELING);
    store_job_release(&j);
    CHECK_EQ_INT(store_release(st, &c2), 0);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 1, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_CANCELED);
    store_item_release(&it);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_CANCELING);
    store_job_release(&j);
    struct store_claim none;
    CHECK_EQ_INT(store_claim(st, 2, 60000, 3, &none), 0); /* the expired one is settled */
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_CANCELED);
    CHECK_EQ_INT(j.counts.canceled, 4);
    CHECK_EQ_INT(j.counts.processing, 0);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 3, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_CANCELED);
    CHECK_EQ_INT(it.attempts, 0); /* canceled, not a lost attempt */
    store_item_release(&it);
    store_claim_release(&c);
    store_claim_release(&c2);

    /* cancel on a finished job leaves it */
    CHECK_EQ_INT(submit(tenant, id, 1, "r%d"), 0);
    CHECK_EQ_INT(store_claim(st, 2, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, &j), 1);
    CHECK_EQ_INT(j.status, JOB_SUCCEEDED);
    CHECK_EQ_INT(j.counts.canceled, 0);
    store_job_release(&j);
}

TEST(delete_job)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_job j;
    struct store_item it;
    new_tenant(tenant, "delete");
    CHECK_EQ_INT(submit(tenant, id, 3, "r%d"), 0);
    CHECK_EQ_INT(store_job_delete(st, tenant, id), -SLUICE_E_CONFLICT);
    CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 1);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, NULL), 1);
    CHECK_EQ_INT(store_job_delete(st, tenant, id), 1);
    CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 0);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 0);
    CHECK_EQ_INT(store_job_delete(st, tenant, id), 0);
}

/* ---- items ----------------------------------------------------------------------- */

TEST(item_list_filters_paging)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_item *items;
    struct store_claim c;
    size_t n;
    drain();
    new_tenant(tenant, "items");
    CHECK_EQ_INT(submit_refs(tenant, id, "abcabcabca"), 0);
    CHECK_EQ_INT(store_item_list(st, tenant, id, -1, NULL, -1, 4, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(items[0].index, 0);
    CHECK_EQ_INT(items[3].index, 3);
    CHECK(items[0].data == NULL);
    CHECK(items[0].events == NULL);
    CHECK_EQ_STR(items[1].ref, "b");
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, -1, NULL, 3, 4, 1, &items, &n), 1);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(items[0].index, 4);
    CHECK_EQ_STR(items[0].data, "{}");
    CHECK_EQ_INT(items[0].data_len, 2);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, -1, NULL, 8, 4, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 1);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, -1, "a", -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(items[3].index, 9);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, -1, "a", 0, 2, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(items[0].index, 3);
    CHECK_EQ_INT(items[1].index, 6);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, -1, "zz", -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 0);
    store_items_free(items, n);

    /* claim 0..2, fail item 1 */
    CHECK_EQ_INT(store_claim(st, 3, 60000, 3, &c), 1);
    CHECK_EQ_INT(c.to, 3);
    struct store_outcome o = {.index = 1, .status = ITEM_FAILED, .error_code = "InvalidData"};
    CHECK_EQ_INT(store_complete(st, &c, &o, 1), 0);
    CHECK_EQ_INT(store_item_list(st, tenant, id, ITEM_FAILED, NULL, -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(items[0].index, 1);
    CHECK_EQ_INT(items[0].status, ITEM_FAILED);
    CHECK_EQ_STR(items[0].error_code, "InvalidData");
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, ITEM_FAILED, "a", -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 0);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, ITEM_PROCESSING, NULL, -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(items[1].index, 2);
    CHECK_EQ_INT(items[1].status, ITEM_PROCESSING);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, ITEM_PENDING, "a", -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 3);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, ITEM_SUCCEEDED, NULL, -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 0);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, "job_nosuch", -1, NULL, -1, 100, 0, &items, &n), 0);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, NULL), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
}

/* ---- documents ------------------------------------------------------------------- */

TEST(docs_write_if_match_tombstones_list)
{
    char tenant[STORE_NAME_MAX];
    struct store_doc d, *docs;
    size_t n;
    int created = -1;
    new_tenant(tenant, "docs");
    CHECK_EQ_INT(
        store_doc_write(st, tenant, "c", "k1", STORE_OP_UPSERT, "{\"a\":1}", 7, -1, &d, &created),
        0);
    CHECK_EQ_INT(created, 1);
    CHECK_EQ_INT(d.version, 1);
    CHECK_EQ_STR(d.ref, "k1");
    CHECK_EQ_STR(d.data, "{\"a\":1}");
    CHECK_EQ_STR(d.job_id, "");
    CHECK_EQ_INT(d.item_index, -1);
    CHECK(d.updated_at > 0);
    store_doc_release(&d);
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "k1", STORE_OP_UPSERT, "{}", 2, 5, NULL, NULL),
                 -SLUICE_E_PRECONDITION_FAILED);
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "k1", STORE_OP_PATCH, "{\"b\":{\"c\":2}}", 13, 1,
                                 &d, &created),
                 0);
    CHECK_EQ_INT(created, 0);
    CHECK_EQ_INT(d.version, 2);
    CHECK_EQ_STR(d.data, "{\"a\":1,\"b\":{\"c\":2}}");
    store_doc_release(&d);
    CHECK_EQ_INT(store_doc_get(st, tenant, "c", "k1", &d), 1);
    CHECK_EQ_STR(d.data, "{\"a\":1,\"b\":{\"c\":2}}");
    CHECK_EQ_INT(d.version, 2);
    store_doc_release(&d);
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "k2", STORE_OP_PATCH, "{}", 2, -1, NULL, NULL),
                 -SLUICE_E_DOCUMENT_NOT_FOUND);
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "k2", STORE_OP_DELETE, NULL, 0, -1, NULL, NULL),
                 -SLUICE_E_DOCUMENT_NOT_FOUND);
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "k2", STORE_OP_UPSERT, "[1]", 3, 1, NULL, NULL),
                 -SLUICE_E_PRECONDITION_FAILED);
    CHECK_EQ_INT(
        store_doc_write(st, tenant, "c", "k2", STORE_OP_UPSERT, "[1]", 3, 0, NULL, &created),
        0); /* if_match 0: must not exist */
    CHECK_EQ_INT(created, 1);
    /* delete leaves a tombstone: not found, version continues */
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "k1", STORE_OP_DELETE, NULL, 0, 2, &d, NULL), 0);
    CHECK_EQ_INT(d.version, 3);
    CHECK(d.data == NULL);
    store_doc_release(&d);
    CHECK_EQ_INT(store_doc_get(st, tenant, "c", "k1", &d), 0);
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "k1", STORE_OP_DELETE, NULL, 0, -1, NULL, NULL),
                 -SLUICE_E_DOCUMENT_NOT_FOUND);
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "k1", STORE_OP_PATCH, "{}", 2, -1, NULL, NULL),
                 -SLUICE_E_DOCUMENT_NOT_FOUND);
    CHECK_EQ_INT(store_doc_list(st, tenant, "c", NULL, 10, &docs, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(docs[0].ref, "k2");
    store_docs_free(docs, n);
    CHECK_EQ_INT(
        store_doc_write(st, tenant, "c", "k1", STORE_OP_UPSERT, "true", 4, 0, &d, &created), 0);
    CHECK_EQ_INT(created, 1);
    CHECK_EQ_INT(d.version, 4);
    store_doc_release(&d);
    /* patch with a non-object replaces the document */
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "k2", STORE_OP_PATCH, "\"s\"", 3, -1, &d, NULL),
                 0);
    CHECK_EQ_STR(d.data, "\"s\"");
    store_doc_release(&d);
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "k2", STORE_OP_PATCH, "{x", 2, -1, NULL, NULL),
                 -SLUICE_E_INVALID_DATA);

    /* list: ordered by ref, paged with after_ref, per collection */
    const char *refs[] = {"m3", "m1", "m5", "m2", "m4"};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(
            store_doc_write(st, tenant, "list", refs[i], STORE_OP_UPSERT, "{}", 2, -1, NULL, NULL),
            0);
    CHECK_EQ_INT(
        store_doc_write(st, tenant, "list", "m2", STORE_OP_DELETE, NULL, 0, -1, NULL, NULL), 0);
    CHECK_EQ_INT(store_doc_list(st, tenant, "list", NULL, 2, &docs, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(docs[0].ref, "m1");
    CHECK_EQ_STR(docs[1].ref, "m3");
    CHECK_EQ_INT(docs[1].version, 1);
    CHECK_EQ_STR(docs[1].data, "{}");
    store_docs_free(docs, n);
    CHECK_EQ_INT(store_doc_list(st, tenant, "list", "m3", 10, &docs, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(docs[0].ref, "m4");
    CHECK_EQ_STR(docs[1].ref, "m5");
    store_docs_free(docs, n);
    CHECK_EQ_INT(store_doc_list(st, tenant, "nosuch", NULL, 10, &docs, &n), 0);
    CHECK_EQ_INT(n, 0);
    store_docs_free(docs, n);
}

/* ---- stats ----------------------------------------------------------------------- */

TEST(stats)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_stats a, b;
    struct store_claim c;
    drain();
    CHECK_EQ_INT(store_stats(st, &a), 0);
    CHECK_EQ_INT(a.items_processing, 0);
    new_tenant(tenant, "stats");
    CHECK_EQ_INT(submit(tenant, id, 7, "r%d"), 0);
    CHECK_EQ_INT(store_claim(st, 3, 60000, 3, &c), 1);
    CHECK_EQ_INT(store_stats(st, &b), 0);
    CHECK_EQ_INT(b.jobs_by_status[JOB_RUNNING], a.jobs_by_status[JOB_RUNNING] + 1);
    CHECK_EQ_INT(b.items_pending, a.items_pending + 4);
    CHECK_EQ_INT(b.items_processing, 3);
    CHECK_EQ_INT(b.claims_active, a.claims_active + 1);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, NULL), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(store_stats(st, &b), 0);
    CHECK_EQ_INT(b.jobs_by_status[JOB_CANCELED], a.jobs_by_status[JOB_CANCELED] + 1);
    CHECK_EQ_INT(b.items_pending, a.items_pending);
    CHECK_EQ_INT(b.items_processing, 0);
    CHECK_EQ_INT(b.claims_active, a.claims_active);
}

/* ---- concurrency and throughput ------------------------------------------------- */

#define BIG 20000

static char big_job[STORE_ID_MAX];
static atomic_int seen[BIG];
static atomic_int worker_errors;
static atomic_long completed_items;

static void *worker(void *arg)
{
    (void)arg;
    struct store_claim c;
    struct store_outcome *o = calloc(500, sizeof *o);
    int idle = 0;
    while (idle < 50) {
        int rc = store_claim(st, 500, 60000, 3, &c);
        if (rc < 0) {
            atomic_fetch_add(&worker_errors, 1);
            break;
        }
        if (rc == 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            idle++;
            continue;
        }
        idle = 0;
        for (size_t i = 0; i < c.n; i++) {
            if (strcmp(c.job_id, big_job) == 0)
                atomic_fetch_add(&seen[c.items[i].index], 1);
            o[i] = (struct store_outcome){.index = c.items[i].index, .status = ITEM_SUCCEEDED};
        }
        /* in two calls, as an engine reporting progress would */
        size_t half = c.n / 2;
        if (store_complete(st, &c, o, half) < 0 || store_complete(st, &c, o + half, c.n - half) < 0)
            atomic_fetch_add(&worker_errors, 1);
        atomic_fetch_add(&completed_items, (long)c.n);
        store_claim_release(&c);
    }
    free(o);
    return NULL;
}

/* Submits BIG items of ~450 bytes in batches of 1000; [out] milliseconds spent. */
static int submit_big(const char *tenant, char id[STORE_ID_MAX], int unique_refs, double *ms)
{
    static char data[BIG][460];
    static char refs[BIG][24];
    struct store_new_item *items = calloc(BIG, sizeof *items);
    int rc;
    for (int i = 0; i < BIG; i++) {
        snprintf(refs[i], sizeof refs[i], unique_refs ? "SKU-%06d" : "SKU-%06d", i);
        int n = snprintf(data[i], sizeof data[i],
                         "{\"sku\":\"SKU-%06d\",\"name\":\"Product %d\",\"price\":%d.99,"
                         "\"currency\":\"EUR\",\"stock\":%d,\"tags\":[\"a\",\"b\",\"c\"],"
                         "\"description\":\"",
                         i, i, i % 1000, i % 77);
        while (n < 440)
            data[i][n++] = 'x';
        memcpy(data[i] + n, "\"}", 3);
        items[i] = (struct store_new_item){.index = i,
                                           .ref = refs[i],
                                           .ref_len = strlen(refs[i]),
                                           .data = data[i],
                                           .data_len = strlen(data[i]),
                                           .prev_idx = -1};
    }
    int64_t t0 = clock_mono_ns();
    new_job_id(id);
    rc = store_job_begin(st, tenant, id);
    for (int b = 0; rc == 0 && b < BIG; b += 1000)
        rc = store_job_add_items(st, id, items + b, 1000);
    if (rc == 0)
        rc = store_job_commit(st, id, "bench", NULL, BIG, NULL);
    *ms = (double)(clock_mono_ns() - t0) / 1e6;
    free(items);
    return rc;
}

TEST(concurrent_claim_complete)
{
    char tenant[STORE_NAME_MAX];
    struct store_job j;
    double ms;
    pthread_t th[4];
    drain();
    new_tenant(tenant, "conc");
    CHECK_EQ_INT(submit_big(tenant, big_job, 1, &ms), 0);
    fprintf(stderr, "perf: insert %d items of ~450 B: %.1f ms (%.0f rows/s)\n", BIG, ms,
            BIG / (ms / 1000));
    int64_t t0 = clock_mono_ns();
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    double cms = (double)(clock_mono_ns() - t0) / 1e6;
    fprintf(stderr, "perf: 4 threads claim+complete %d no-op items: %.1f ms (%.0f items/s)\n", BIG,
            cms, BIG / (cms / 1000));
    CHECK_EQ_INT(atomic_load(&worker_errors), 0);
    for (int i = 0; i < BIG; i++)
        if (atomic_load(&seen[i]) != 1)
            TH_FAIL("item %d claimed %d times", i, atomic_load(&seen[i]));
    CHECK_EQ_INT(job_status(tenant, big_job, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, BIG);
    CHECK_EQ_INT(j.counts.total, BIG);
    CHECK_EQ_INT(j.counts.pending + j.counts.processing + j.counts.failed, 0);
    store_job_release(&j);
    struct store_item *items;
    size_t n;
    CHECK_EQ_INT(
        store_item_list(st, tenant, big_job, ITEM_SUCCEEDED, NULL, BIG - 11, 100, 0, &items, &n),
        1);
    CHECK_EQ_INT(n, 10);
    CHECK_EQ_INT(items[9].attempts, 1);
    store_items_free(items, n);
}

TEST(throughput_upsert)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c;
    struct store_outcome *o = calloc(1000, sizeof *o);
    struct store_job j;
    double ms;
    drain();
    new_tenant(tenant, "upsert");
    CHECK_EQ_INT(submit_big(tenant, id, 1, &ms), 0);
    int64_t t0 = clock_mono_ns();
    while (store_claim(st, 1000, 60000, 3, &c) == 1) {
        for (size_t i = 0; i < c.n; i++)
            o[i] = (struct store_outcome){.index = c.items[i].index,
                                          .status = ITEM_SUCCEEDED,
                                          .op = STORE_OP_UPSERT,
                                          .collection = "products"};
        CHECK_EQ_INT(store_complete(st, &c, o, c.n), 0);
        store_claim_release(&c);
    }
    double cms = (double)(clock_mono_ns() - t0) / 1e6;
    fprintf(stderr, "perf: 1 thread claim+complete %d upserts: %.1f ms (%.0f items/s)\n", BIG, cms,
            BIG / (cms / 1000));
    free(o);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, BIG);
    store_job_release(&j);
    struct store_doc d;
    CHECK_EQ_INT(store_doc_get(st, tenant, "products", "SKU-019999", &d), 1);
    CHECK_EQ_INT(d.version, 1);
    CHECK_EQ_INT(d.item_index, BIG - 1);
    store_doc_release(&d);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    const char *url = getenv("SLUICE_TEST_STORE_URL");
    char buf[128];
    if (!url || !*url) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/sluice-store-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(buf, sizeof buf, "sqlite:%s/db/store.sqlite", tmpdir);
        url = buf;
    }
    int rc = store_open(url, NULL, &st);
    if (rc < 0) {
        fprintf(stderr, "cannot open %s: %s\n", url, sluice_err_code(rc));
        return 1;
    }
    RUN(open_and_ping);
    RUN(open_creates_directory);
    RUN(status_names);
    RUN(keys);
    RUN(submit_batches_commit);
    RUN(submit_abort_and_gc);
    RUN(tenant_isolation);
    RUN(job_list_order_paging_filter);
    RUN(claim_ranges_and_effective_status);
    RUN(claim_fairness);
    RUN(claim_same_ref_order);
    RUN(lease_expiry_takeover);
    RUN(expire_claims_retakes_at_once);
    RUN(release_gives_back);
    RUN(completion_counts_and_outcomes);
    RUN(completion_doc_ops);
    RUN(cancel_not_started);
    RUN(cancel_running);
    RUN(delete_job);
    RUN(item_list_filters_paging);
    RUN(docs_write_if_match_tombstones_list);
    RUN(stats);
    RUN(concurrent_claim_complete);
    RUN(throughput_upsert);
    store_close(st);
    if (tmpdir[0])
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_report();
}
