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
static char store_url[128]; /* for tests that open a second handle with other options */

/* ---- helpers --------------------------------------------------------------------- */

/* A store_item_filter on effective status (-1 any) and ref (NULL any). */
#define FILT(status, ref) (&(struct store_item_filter){(status), (ref), NULL, NULL})

/* store_claim with the engine's usual options and no gate. */
static int claim(struct store *s, size_t max_items, int64_t lease_ms, int max_attempts,
                 struct store_claim *c)
{
    struct store_claim_opts o = {max_items, lease_ms, max_attempts, 0, NULL};
    return store_claim(s, &o, c);
}

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

/* Item index with ref and data (NUL-terminated, borrowed), first of its ref. */
static struct store_new_item new_item(int64_t index, const char *ref, const char *data)
{
    return (struct store_new_item){.index = index,
                                   .ref = ref,
                                   .ref_len = strlen(ref),
                                   .data = data,
                                   .data_len = strlen(data),
                                   .prev_idx = -1};
}

/* Submits a committed job of n items with refs ref_fmt % i (unique refs), data
 * {"i":N}, at the given priority. Returns 0 or an error. */
static int submit_prio(const char *tenant, char job_id[STORE_ID_MAX], int n, const char *ref_fmt,
                       int priority)
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
        items[i] = new_item(i, refs[i], data[i]);
    }
    rc = store_job_add_items(st, job_id, items, (size_t)n);
    if (rc < 0)
        goto out;
    rc = store_job_commit(
        st, job_id, &(struct store_job_meta){.workflow = "wf", .priority = priority}, n, NULL);
    rc = rc < 0 ? rc : 0;
out:
    free(items);
    free(refs);
    free(data);
    return rc;
}

static int submit(const char *tenant, char job_id[STORE_ID_MAX], int n, const char *ref_fmt)
{
    return submit_prio(tenant, job_id, n, ref_fmt, 0);
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
    int rc = store_complete(st, c, o, c->n, NULL, 0);
    free(o);
    return rc;
}

/* Claims and finishes (Skipped) whatever earlier tests left runnable. */
static void drain(void)
{
    struct store_claim c;
    while (claim(st, 100000, 60000, 0, &c) == 1) {
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
        CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(-1, NULL), -1, 10, 0, &items, &n), 0);
        CHECK_EQ_INT(store_job_list(st, tenant, -1, 0, 10, &jobs, &n), 0);
        CHECK_EQ_INT(n, 0);
        store_jobs_free(jobs, n);
        CHECK_EQ_INT(store_job_cancel(st, tenant, id, &j), 0);
    }
    CHECK_EQ_INT(store_job_commit(
                     st, id,
                     &(struct store_job_meta){.workflow = "import", .client_reference = "ref-42"},
                     12, &j),
                 1);
    CHECK_EQ_INT(j.workflow_version, 0);
    CHECK_EQ_STR(j.parent_job, "");
    CHECK(j.steps == NULL);
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
    CHECK_EQ_INT(store_job_commit(st, id, &(struct store_job_meta){.workflow = "import"}, 12, NULL),
                 -SLUICE_E_NOT_FOUND);
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
    CHECK_EQ_INT(store_job_commit(st, id, &(struct store_job_meta){.workflow = "wf"}, 1, NULL),
                 -SLUICE_E_NOT_FOUND);
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
    CHECK_EQ_INT(store_item_list(st, other, id, FILT(-1, NULL), -1, 10, 1, &items, &n), 0);
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
    CHECK_EQ_INT(claim(st, 4, 60000, 3, &c), 1);
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
    CHECK_EQ_INT(
        store_item_list(st, tenant, id, FILT(ITEM_PROCESSING, NULL), -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 4);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(ITEM_PENDING, NULL), -1, 100, 0, &items, &n),
                 1);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_INT(items[0].index, 4);
    store_items_free(items, n);

    /* the next range continues at the cursor, bounded by the job's end */
    CHECK_EQ_INT(claim(st, 100, 60000, 3, &c2), 1);
    CHECK_EQ_INT(c2.from, 4);
    CHECK_EQ_INT(c2.to, 10);
    CHECK_EQ_INT(c2.n, 6);
    CHECK(c2.claim_id != c.claim_id);
    CHECK(strcmp(c2.token, c.token) != 0);
    struct store_claim none;
    CHECK_EQ_INT(claim(st, 100, 60000, 3, &none), 0); /* nothing runnable */
    CHECK_EQ_INT(complete_all(&c2, ITEM_SUCCEEDED), 0);
    store_claim_release(&c2);
    CHECK_EQ_INT(claim(st, 4, 60000, 3, &none), 0);
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
        CHECK_EQ_INT(claim(st, 10, 60000, 3, &c[i]), 1);
        CHECK_EQ_STR(c[i].job_id, i % 2 == 0 ? a : b); /* the two jobs alternate */
        CHECK_EQ_INT(c[i].from, (i / 2) * 10);
    }
    /* a small job submitted while the big ones are runnable goes next */
    CHECK_EQ_INT(submit(tenant, small, 10, "s%d"), 0);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c[4]), 1);
    CHECK_EQ_STR(c[4].job_id, small);
    CHECK_EQ_INT(c[4].n, 10);
    CHECK_EQ_INT(complete_all(&c[4], ITEM_SUCCEEDED), 0);
    struct store_job j;
    CHECK_EQ_INT(job_status(tenant, small, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.outcome, OUTCOME_ALL_SUCCEEDED);
    store_job_release(&j);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c[5]), 1);
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

/* Claims of size 10 until nothing is runnable or max is reached, completing each at
 * once; [out] the job id of each claim. Returns the number of claims. */
static int claim_sequence(char (*jobs)[STORE_ID_MAX], char (*tenants)[STORE_NAME_MAX], int max)
{
    struct store_claim c;
    int n = 0;
    while (n < max && claim(st, 10, 60000, 3, &c) == 1) {
        snprintf(jobs[n], STORE_ID_MAX, "%s", c.job_id);
        if (tenants)
            snprintf(tenants[n], STORE_NAME_MAX, "%s", c.tenant);
        n++;
        complete_all(&c, ITEM_SUCCEEDED);
        store_claim_release(&c);
    }
    return n;
}

/* A tenant with 20 jobs gets no more turns than a tenant with one: claims alternate
 * between tenants, and within the busy tenant they go round its jobs. */
TEST(claim_fair_tenants)
{
    char ta[STORE_NAME_MAX], tb[STORE_NAME_MAX], a[20][STORE_ID_MAX], b[STORE_ID_MAX];
    char jobs[12][STORE_ID_MAX], tenants[12][STORE_NAME_MAX];
    drain();
    new_tenant(ta, "many");
    new_tenant(tb, "one");
    for (int i = 0; i < 20; i++)
        CHECK_EQ_INT(submit(ta, a[i], 5, "a%d"), 0);
    CHECK_EQ_INT(submit(tb, b, 100, "b%d"), 0);
    CHECK_EQ_INT(claim_sequence(jobs, tenants, 12), 12);
    int first_b = strcmp(tenants[0], tb) == 0, na = 0;
    for (int i = 0; i < 12; i++) {
        int is_b = (i % 2 == 0) == first_b;
        CHECK_EQ_STR(tenants[i], is_b ? tb : ta);
        if (is_b)
            CHECK_EQ_STR(jobs[i], b);
        else
            CHECK_EQ_STR(jobs[i], a[na++]); /* the busy tenant's jobs in turn */
    }
    for (int i = 0; i < 20; i++)
        CHECK(store_job_cancel(st, ta, a[i], NULL) >= 0);
    CHECK_EQ_INT(store_job_cancel(st, tb, b, NULL), 1);
}

/* Weight 3: three claims in a row per round, against one of a weight-1 tenant. */
TEST(claim_tenant_weight)
{
    char tv[STORE_NAME_MAX], tw[STORE_NAME_MAX], v[STORE_ID_MAX], w[STORE_ID_MAX];
    char jobs[12][STORE_ID_MAX];
    drain();
    new_tenant(tv, "v1"); /* "t-v1-..." sorts before "t-w3-...": v goes first */
    new_tenant(tw, "w3");
    CHECK_EQ_INT(store_tenant_set_weight(st, tw, 0), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_tenant_set_weight(st, tw, 101), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_tenant_set_weight(st, tw, 2), 0);
    CHECK_EQ_INT(store_tenant_set_weight(st, tw, 3), 0); /* a second set replaces it */
    CHECK_EQ_INT(submit(tv, v, 200, "v%d"), 0);
    CHECK_EQ_INT(submit(tw, w, 200, "w%d"), 0);
    CHECK_EQ_INT(claim_sequence(jobs, NULL, 12), 12);
    for (int i = 0; i < 12; i++)
        CHECK_EQ_STR(jobs[i], i % 4 == 0 ? v : w); /* v w w w  v w w w  v w w w */
    /* back to weight 1: alternate */
    CHECK_EQ_INT(store_tenant_set_weight(st, tw, 1), 0);
    CHECK_EQ_INT(claim_sequence(jobs, NULL, 4), 4);
    CHECK(strcmp(jobs[0], jobs[1]) != 0 && strcmp(jobs[1], jobs[2]) != 0 &&
          strcmp(jobs[2], jobs[3]) != 0);
    CHECK_EQ_INT(store_job_cancel(st, tv, v, NULL), 1);
    CHECK_EQ_INT(store_job_cancel(st, tw, w, NULL), 1);
}

/* Within a tenant: highest priority first, equal priorities in turn, then the rest. */
TEST(claim_priority)
{
    char t[STORE_NAME_MAX], lo[STORE_ID_MAX], neg[STORE_ID_MAX], hi[STORE_ID_MAX],
        hi2[STORE_ID_MAX];
    char jobs[16][STORE_ID_MAX];
    struct store_job j;
    drain();
    new_tenant(t, "prio");
    CHECK_EQ_INT(submit_prio(t, neg, 10, "n%d", -5), 0);
    CHECK_EQ_INT(submit_prio(t, lo, 20, "l%d", 0), 0);
    CHECK_EQ_INT(submit_prio(t, hi, 20, "h%d", 10), 0);
    CHECK_EQ_INT(submit_prio(t, hi2, 20, "g%d", 10), 0);
    CHECK_EQ_INT(store_job_get(st, t, hi, &j), 1);
    CHECK_EQ_INT(j.priority, 10);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_get(st, t, neg, &j), 1);
    CHECK_EQ_INT(j.priority, -5);
    store_job_release(&j);
    CHECK_EQ_INT(claim_sequence(jobs, NULL, 16), 7);
    const char *want[7] = {hi, hi2, hi, hi2, lo, lo, neg};
    for (int i = 0; i < 7; i++)
        CHECK_EQ_STR(jobs[i], want[i]);
    CHECK_EQ_INT(job_status(t, hi, &j), JOB_SUCCEEDED);
    store_job_release(&j);
    CHECK_EQ_INT(job_status(t, neg, &j), JOB_SUCCEEDED);
    store_job_release(&j);
}

/* Submits a job of workflow wf with ref_order whose items have the given refs (one
 * char each), prev_idx linking equal refs. */
static int submit_refs_order(const char *tenant, char id[STORE_ID_MAX], const char *refs,
                             const char *wf, int ref_order)
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
    rc = store_job_commit(st, id, &(struct store_job_meta){.workflow = wf, .ref_order = ref_order},
                          n, NULL);
    return rc < 0 ? rc : 0;
}

/* Submits a job whose items have the given refs, in-job order only. */
static int submit_refs(const char *tenant, char id[STORE_ID_MAX], const char *refs)
{
    return submit_refs_order(tenant, id, refs, "wf", STORE_REF_ORDER_JOB);
}

/* A job of workflow "xo" that orders refs across the tenant's jobs. */
static int submit_xo(const char *tenant, char id[STORE_ID_MAX], const char *refs)
{
    return submit_refs_order(tenant, id, refs, "xo", STORE_REF_ORDER_TENANT);
}

/* Claims (up to 10 items) and checks that the claim is of job id, items [from, to). */
static void claim_of(struct store_claim *c, const char *id, int64_t from, int64_t to)
{
    CHECK_EQ_INT(claim(st, 10, 60000, 3, c), 1);
    CHECK_EQ_STR(c->job_id, id);
    CHECK_EQ_INT(c->from, from);
    CHECK_EQ_INT(c->to, to);
}

/* Completes every item of claim c with status, and releases c. */
static void finish(struct store_claim *c, int status)
{
    CHECK_EQ_INT(complete_all(c, status), 0);
    store_claim_release(c);
}

/* Claims nothing: everything left waits. */
static void claim_none(void)
{
    struct store_claim c;
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 0);
}

/* Job A fails its "a", job B with "a" follows, then A is retried (staged in batches
 * when staging): the retry's "a" waits for B's. */
static void retry_waits(const char *t, int staging)
{
    char a[STORE_ID_MAX], b[STORE_ID_MAX], x[STORE_ID_MAX], staged[STORE_ID_MAX];
    struct store_claim c1, c2;
    struct store_job j;
    CHECK_EQ_INT(submit_xo(t, a, "a"), 0);
    claim_of(&c1, a, 0, 1);
    finish(&c1, ITEM_FAILED);
    CHECK_EQ_INT(submit_xo(t, b, "a"), 0);
    new_job_id(x);
    if (staging) {
        CHECK_EQ_INT(store_job_retry_begin(st, t, a, x, NULL, NULL), 1);
        while (store_job_retry_stage(st, 100, NULL, staged) == STORE_STAGE_ADVANCED)
            ;
    } else {
        CHECK_EQ_INT(store_job_retry(st, t, a, x, NULL, &j), 1);
        CHECK_EQ_INT(j.ref_order, STORE_REF_ORDER_TENANT);
        store_job_release(&j);
    }
    claim_of(&c1, b, 0, 1);
    claim_none();
    finish(&c1, ITEM_SUCCEEDED);
    claim_of(&c2, x, 0, 1);
    finish(&c2, ITEM_SUCCEEDED);
}

TEST(claim_ref_order_across_jobs)
{
    char t[STORE_NAME_MAX], a[STORE_ID_MAX], b[STORE_ID_MAX], x[STORE_ID_MAX];
    struct store_claim c1, c2, c3;
    struct store_job j;
    drain();
    new_tenant(t, "xorder");

    /* B's "a" waits while A's "a" is in flight; B's other ref goes at once */
    CHECK_EQ_INT(submit_xo(t, a, "a"), 0);
    CHECK_EQ_INT(submit_xo(t, b, "ca"), 0);
    CHECK_EQ_INT(store_job_get(st, t, b, &j), 1);
    CHECK_EQ_INT(j.ref_order, STORE_REF_ORDER_TENANT);
    store_job_release(&j);
    claim_of(&c1, a, 0, 1);
    claim_of(&c2, b, 0, 1); /* stops before "a" */
    claim_none();
    finish(&c1, ITEM_FAILED); /* a failed item is terminal too */
    claim_of(&c3, b, 1, 2);
    finish(&c2, ITEM_SUCCEEDED);
    finish(&c3, ITEM_SUCCEEDED);

    /* ... and while it is still pending, not claimed yet: B is passed over, A goes on */
    CHECK_EQ_INT(submit_xo(t, a, "xa"), 0);
    CHECK_EQ_INT(claim(st, 1, 60000, 3, &c1), 1);
    CHECK_EQ_STR(c1.job_id, a);
    CHECK_EQ_INT(submit_xo(t, b, "a"), 0);
    claim_of(&c2, a, 1, 2);
    claim_none();
    finish(&c2, ITEM_SUCCEEDED);
    claim_of(&c3, b, 0, 1);
    finish(&c1, ITEM_SUCCEEDED);
    finish(&c3, ITEM_SUCCEEDED);

    /* a canceled job releases the next one; its job deleted, nothing changes */
    CHECK_EQ_INT(submit_xo(t, a, "a"), 0);
    CHECK_EQ_INT(submit_xo(t, b, "a"), 0);
    CHECK_EQ_INT(store_job_cancel(st, t, a, NULL), 1);
    CHECK_EQ_INT(store_job_delete(st, t, a), 1);
    claim_of(&c1, b, 0, 1);
    finish(&c1, ITEM_SUCCEEDED);

    /* a canceled job in the middle of a chain does not let the last one overtake the
     * first: C waits through B for A */
    CHECK_EQ_INT(submit_xo(t, a, "a"), 0);
    CHECK_EQ_INT(submit_xo(t, b, "a"), 0);
    CHECK_EQ_INT(submit_xo(t, x, "a"), 0);
    CHECK_EQ_INT(store_job_cancel(st, t, b, NULL), 1);
    claim_of(&c1, a, 0, 1);
    claim_none();
    finish(&c1, ITEM_SUCCEEDED);
    claim_of(&c2, x, 0, 1);
    finish(&c2, ITEM_SUCCEEDED);

    /* a retry is a later job: it waits for the job submitted between; one staged in
     * batches is ordered when it is published */
    retry_waits(t, 0);
    retry_waits(t, 1);
}

TEST(claim_ref_order_parks)
{
    char t[STORE_NAME_MAX], a[STORE_ID_MAX], b[STORE_ID_MAX], x[STORE_ID_MAX];
    struct store_claim c1, c2, c3, c4;
    struct store_job j;
    struct store_item it;
    drain();
    new_tenant(t, "xpark");

    /* B's "a" must wait for A's: it is parked, and B's other refs go on, except the
     * later "a", which waits for B's first */
    CHECK_EQ_INT(submit_xo(t, a, "a"), 0);
    claim_of(&c1, a, 0, 1);
    CHECK_EQ_INT(submit_xo(t, b, "abca"), 0);
    claim_of(&c2, b, 1, 3);
    claim_none();
    CHECK_EQ_INT(store_item_get(st, t, b, 0, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_PROCESSING); /* parked: in the pipeline */
    store_item_release(&it);
    CHECK_EQ_INT(store_job_get(st, t, b, &j), 1);
    CHECK_EQ_INT(j.counts.processing, 3);
    CHECK_EQ_INT(j.counts.pending, 1);
    store_job_release(&j);
    finish(&c2, ITEM_SUCCEEDED);
    claim_none();
    finish(&c1, ITEM_SUCCEEDED);
    claim_of(&c3, b, 0, 1); /* unparked */
    claim_none();
    finish(&c3, ITEM_SUCCEEDED);
    claim_of(&c4, b, 3, 4);
    finish(&c4, ITEM_SUCCEEDED);
    CHECK_EQ_INT(job_status(t, b, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 4);
    store_job_release(&j);

    /* a job canceled while an item is parked: that item ends Canceled, and the job
     * after it still waits, through it, for the one before */
    CHECK_EQ_INT(submit_xo(t, a, "a"), 0);
    claim_of(&c1, a, 0, 1);
    CHECK_EQ_INT(submit_xo(t, b, "a"), 0);
    CHECK_EQ_INT(submit_xo(t, x, "a"), 0);
    claim_none(); /* parks both */
    CHECK_EQ_INT(store_job_cancel(st, t, b, &j), 1);
    CHECK_EQ_INT(j.status, JOB_CANCELING);
    store_job_release(&j);
    claim_none(); /* settles B's */
    CHECK_EQ_INT(job_status(t, b, &j), JOB_CANCELED);
    CHECK_EQ_INT(j.counts.canceled, 1);
    CHECK_EQ_INT(j.counts.processing, 0);
    store_job_release(&j);
    finish(&c1, ITEM_SUCCEEDED);
    claim_of(&c2, x, 0, 1);
    finish(&c2, ITEM_SUCCEEDED);
}

/* More parked items than one claim looks at: the 17th, whose wait ended first, is
 * found by the claim after the one that looked at the first 16. */
TEST(claim_ref_order_unparks_every_item)
{
    char t[STORE_NAME_MAX], a[STORE_ID_MAX], b[STORE_ID_MAX];
    const char *refs = "abcdefghijklmnopq";
    struct store_claim c1, c2, c3;
    drain();
    new_tenant(t, "xunpark");
    CHECK_EQ_INT(submit_xo(t, a, refs), 0);
    CHECK_EQ_INT(claim(st, 16, 60000, 3, &c1), 1);
    claim_of(&c2, a, 16, 17);
    CHECK_EQ_INT(submit_xo(t, b, refs), 0);
    claim_none(); /* parks B's first 10 */
    claim_none(); /* and its last 7 */
    finish(&c2, ITEM_SUCCEEDED);
    claim_none();             /* looks at B's first 16, all still waiting */
    claim_of(&c3, b, 16, 17); /* then at the 17th */
    finish(&c3, ITEM_SUCCEEDED);
    finish(&c1, ITEM_SUCCEEDED);
    for (int i = 0; i < 16; i++) {
        CHECK_EQ_INT(claim(st, 10, 60000, 3, &c1), 1);
        CHECK_EQ_STR(c1.job_id, b);
        finish(&c1, ITEM_SUCCEEDED);
    }
    claim_none();
}

TEST(claim_ref_order_opt_in_only)
{
    char t[STORE_NAME_MAX], u[STORE_NAME_MAX], a[STORE_ID_MAX], b[STORE_ID_MAX];
    char c[STORE_ID_MAX], d[STORE_ID_MAX], e[STORE_ID_MAX];
    struct store_claim c1, c2, c3, c4, c5;
    drain();
    new_tenant(t, "xorder-off");
    new_tenant(u, "xorder-other");
    CHECK_EQ_INT(submit_xo(t, a, "a"), 0);
    /* none of these waits for A: no option, another workflow, another tenant */
    CHECK_EQ_INT(submit_refs(t, b, "a"), 0);
    CHECK_EQ_INT(submit_refs_order(t, c, "a", "yo", STORE_REF_ORDER_TENANT), 0);
    CHECK_EQ_INT(submit_xo(u, d, "a"), 0);
    /* without the option, jobs overtake each other */
    CHECK_EQ_INT(submit_refs(t, e, "a"), 0);
    struct store_claim *cs[] = {&c1, &c2, &c3, &c4, &c5};
    int seen = 0;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(claim(st, 10, 60000, 3, cs[i]), 1);
        seen |= strcmp(cs[i]->job_id, a) == 0   ? 1
                : strcmp(cs[i]->job_id, b) == 0 ? 2
                : strcmp(cs[i]->job_id, c) == 0 ? 4
                : strcmp(cs[i]->job_id, d) == 0 ? 8
                : strcmp(cs[i]->job_id, e) == 0 ? 16
                                                : 0;
    }
    CHECK_EQ_INT(seen, 31); /* all five in flight at once */
    for (int i = 0; i < 5; i++)
        finish(cs[i], ITEM_SUCCEEDED);
}

TEST(claim_same_ref_order)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c1, c2, c3;
    drain();
    new_tenant(tenant, "sameref");
    CHECK_EQ_INT(submit_refs(tenant, id, "abaca"), 0);
    CHECK_EQ_INT(claim(st, 2, 60000, 3, &c1), 1);
    CHECK_EQ_INT(c1.from, 0);
    CHECK_EQ_INT(c1.to, 2);
    /* item 2 ("a") waits for item 0, in flight in c1 */
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c2), 0);
    struct store_outcome o = {.index = 0, .status = ITEM_SUCCEEDED};
    CHECK_EQ_INT(store_complete(st, &c1, &o, 1, NULL, 0), 0);
    /* now 2..4 in one range: item 4 follows item 2 inside the same range */
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c2), 1);
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
    CHECK_EQ_INT(claim(st, 2, 60000, 3, &c1), 1);
    CHECK_EQ_INT(c1.to, 2);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c2), 1);
    CHECK_EQ_INT(c2.from, 2);
    CHECK_EQ_INT(c2.to, 3);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c3), 0);
    CHECK_EQ_INT(complete_all(&c1, ITEM_FAILED), 0); /* a failed item is terminal too */
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c3), 1);
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
    CHECK_EQ_INT(claim(st, 10, 0, 3, &c1), 1); /* lease 0: expired at once */
    CHECK_EQ_INT(c1.n, 3);
    CHECK_EQ_INT(claim(st, 10, 0, 3, &c2), 1);
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
    CHECK_EQ_INT(store_complete(st, &c2, &o, 1, NULL, 0), 0);
    CHECK_EQ_INT(claim(st, 10, 0, 3, &c3), 1);
    CHECK_EQ_INT(c3.n, 2);
    CHECK_EQ_INT(c3.items[0].index, 1);
    CHECK_EQ_INT(c3.items[0].attempts, 2);
    struct store_claim none;
    CHECK_EQ_INT(claim(st, 10, 0, 3, &none), 0); /* attempt 3: given up */
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
    CHECK_EQ_INT(claim(st, 10, 0, 1, &c1), 1);
    CHECK_EQ_INT(claim(st, 10, 0, 1, &c2), 0);
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
    CHECK_EQ_INT(claim(st, 10, 600000, 5, &c1), 1); /* a long lease */
    CHECK_EQ_INT(claim(st, 10, 600000, 5, &none), 0);
    CHECK_EQ_INT(store_expire_claims(st), 1);
    CHECK_EQ_INT(claim(st, 10, 600000, 5, &c2), 1);
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

TEST(tenant_load_counts_open_work)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX], a[STORE_ID_MAX], b[STORE_ID_MAX];
    struct store_claim c;
    struct store_job j;
    int64_t open_jobs = -1, pending = -1;
    drain();
    new_tenant(tenant, "load");
    new_tenant(other, "load-other");
    CHECK_EQ_INT(store_tenant_load(st, tenant, &open_jobs, &pending), 0);
    CHECK_EQ_INT(open_jobs, 0);
    CHECK_EQ_INT(pending, 0);
    CHECK_EQ_INT(submit(tenant, a, 3, "la%d"), 0);
    CHECK_EQ_INT(submit(tenant, b, 2, "lb%d"), 0);
    CHECK_EQ_INT(store_tenant_load(st, tenant, &open_jobs, &pending), 0);
    CHECK_EQ_INT(open_jobs, 2);
    CHECK_EQ_INT(pending, 5);
    CHECK_EQ_INT(store_tenant_load(st, other, &open_jobs, &pending), 0);
    CHECK_EQ_INT(open_jobs, 0);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1); /* one job's items leave pending */
    CHECK_EQ_INT(store_tenant_load(st, tenant, &open_jobs, &pending), 0);
    CHECK_EQ_INT(open_jobs, 2);
    CHECK_EQ_INT(pending, 5 - (int64_t)c.n);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(store_job_cancel(st, tenant, a, &j), 1);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_cancel(st, tenant, b, &j), 1);
    store_job_release(&j);
    CHECK_EQ_INT(store_tenant_load(st, tenant, &open_jobs, &pending), 0);
    CHECK_EQ_INT(open_jobs, 0);
    CHECK_EQ_INT(pending, 0);
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
    CHECK_EQ_INT(claim(st, 5, 60000, 3, &c1), 1);
    struct store_outcome o = {.index = 1, .status = ITEM_SKIPPED, .error_code = "Filtered"};
    CHECK_EQ_INT(store_complete(st, &c1, &o, 1, NULL, 0), 0);
    CHECK_EQ_INT(store_release(st, &c1), 0);
    CHECK_EQ_INT(claim(st, 5, 60000, 1, &c2), 1); /* max_attempts 1: none counted */
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

/* One call whose outcomes come out of index order, one index twice: every item ends,
 * and the index reported twice ends as its first outcome says. */
TEST(completion_out_of_order_first_wins)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c;
    struct store_job j;
    struct store_item it;
    drain();
    new_tenant(tenant, "order");
    CHECK_EQ_INT(submit(tenant, id, 5, "o%d"), 0);
    CHECK_EQ_INT(claim(st, 5, 60000, 3, &c), 1);
    struct store_outcome o[6] = {
        {.index = 3, .status = ITEM_SUCCEEDED, .result = "{\"first\":3}"},
        {.index = 1, .status = ITEM_FAILED, .error_code = "InvalidData", .error_message = "bad"},
        {.index = 3, .status = ITEM_FAILED, .error_code = "InvalidData", .error_message = "late"},
        {.index = 0, .status = ITEM_SUCCEEDED},
        {.index = 4, .status = ITEM_SKIPPED, .error_code = "Filtered"},
        {.index = 2, .status = ITEM_SUCCEEDED},
    };
    CHECK_EQ_INT(store_complete(st, &c, o, 6, NULL, 0), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 3);
    CHECK_EQ_INT(j.counts.failed, 1);
    CHECK_EQ_INT(j.counts.skipped, 1);
    CHECK_EQ_INT(j.counts.processing, 0);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 3, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_SUCCEEDED);
    CHECK_EQ_STR(it.result, "{\"first\":3}");
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_SUCCEEDED);
    CHECK_EQ_INT(it.attempts, 1);
    store_item_release(&it);
    store_claim_release(&c);
}

TEST(completion_counts_and_outcomes)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c;
    struct store_job j;
    struct store_item it;
    drain();
    new_tenant(tenant, "complete");
    CHECK_EQ_INT(submit(tenant, id, 6, "r%d"), 0);
    CHECK_EQ_INT(claim(st, 6, 60000, 3, &c), 1);
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
    CHECK_EQ_INT(store_complete(st, &c, o, 2, NULL, 0), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_RUNNING);
    CHECK_EQ_INT(j.counts.succeeded, 2);
    CHECK_EQ_INT(j.counts.processing, 4);
    CHECK_EQ_INT(j.counts.pending, 0);
    CHECK(j.last_progress_at > 0);
    CHECK(j.win_at > 0);
    store_job_release(&j);
    CHECK_EQ_INT(store_complete(st, &c, o, 2, NULL, 0), 0); /* repeated: counted once */
    CHECK_EQ_INT(store_complete(st, &c, o + 2, 2, NULL, 0), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_RUNNING);
    CHECK_EQ_INT(j.counts.succeeded, 2);
    CHECK_EQ_INT(j.counts.failed, 1);
    CHECK_EQ_INT(j.counts.skipped, 1);
    CHECK_EQ_INT(j.counts.processing, 2);
    CHECK_EQ_INT(j.counts.total, 6);
    store_job_release(&j);
    CHECK_EQ_INT(store_complete(st, &c, o + 4, 2, NULL, 0), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.outcome, OUTCOME_PARTIALLY_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 4);
    CHECK_EQ_INT(j.counts.processing, 0);
    CHECK(j.completed_at > 0);
    CHECK_EQ_INT(j.win_done <= 6, 1);
    store_job_release(&j);
    /* the claim is gone once all its items are done */
    CHECK_EQ_INT(store_complete(st, &c, o, 1, NULL, 0), -SLUICE_E_LEASE_LOST);

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
    CHECK_EQ_INT(claim(st, 6, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.outcome, OUTCOME_ALL_SUCCEEDED);
    CHECK_EQ_STR(j.error_code, "");
    store_job_release(&j);
    store_claim_release(&c);
    CHECK_EQ_INT(submit(tenant, id, 3, "r%d"), 0);
    CHECK_EQ_INT(claim(st, 6, 60000, 3, &c), 1);
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
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    const char *body = "{ \"name\" : \"x\", \"tags\": [1,2] }";
    /* submit_refs stores data "{}": use engine data for a body with spaces */
    struct store_doc_op ops[4] = {
        {.op = STORE_OP_UPSERT,
         .collection = "products",
         .data = body,
         .data_len = strlen(body),
         .step = "upsert"},
        {.op = STORE_OP_UPSERT, .collection = "products", .step = "upsert"},
        {.op = STORE_OP_PATCH,
         .collection = "products",
         .data = "{\"a\":1}",
         .data_len = 7,
         .step = "patch"},
        {.op = STORE_OP_DELETE, .collection = "products", .step = "delete"},
    };
    struct store_outcome o[4];
    for (int i = 0; i < 4; i++)
        o[i] =
            (struct store_outcome){.index = i, .status = ITEM_SUCCEEDED, .ops = &ops[i], .nops = 1};
    CHECK_EQ_INT(store_complete(st, &c, o, 4, NULL, 0), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(o[0].status, ITEM_SUCCEEDED);
    CHECK_EQ_INT(o[2].status, ITEM_FAILED); /* written back for the caller */
    CHECK_EQ_STR(o[2].error_code, "DocumentNotFound");
    CHECK_EQ_STR(o[2].failed_step, "patch");
    CHECK_EQ_INT(ops[2].error, -SLUICE_E_DOCUMENT_NOT_FOUND);
    CHECK_EQ_INT(ops[2].version, 0);
    CHECK_EQ_INT(ops[0].version, 1);
    CHECK_EQ_INT(ops[0].created, 1);
    CHECK_EQ_INT(ops[0].error, 0);
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
    CHECK(strstr(it.events, "\"stage\":\"apply\",\"step\":\"upsert\"") != NULL);
    CHECK_EQ_STR(it.failed_step, "");
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 2, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_FAILED);
    CHECK_EQ_STR(it.error_code, "DocumentNotFound");
    CHECK(it.result == NULL);
    CHECK(strstr(it.events, "\"level\":\"error\"") != NULL);
    CHECK_EQ_STR(it.failed_step, "patch");
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
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    struct store_doc_op ops2[2] = {
        {.op = STORE_OP_PATCH,
         .collection = "products",
         .data = "{\"name\":null,\"price\":{\"eur\":5}}",
         .data_len = 31},
        {.op = STORE_OP_UPSERT, .collection = "products"},
    };
    struct store_outcome o2[2] = {
        {.index = 0, .status = ITEM_SUCCEEDED, .ops = &ops2[0], .nops = 1},
        {.index = 1, .status = ITEM_SUCCEEDED, .ops = &ops2[1], .nops = 1},
    };
    CHECK_EQ_INT(store_complete(st, &c, o2, 2, NULL, 0), 0);
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
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    struct store_doc_op op3 = {.op = STORE_OP_DELETE, .collection = "products"};
    struct store_outcome o3 = {.index = 0, .status = ITEM_SUCCEEDED, .ops = &op3, .nops = 1};
    CHECK_EQ_INT(store_complete(st, &c, &o3, 1, NULL, 0), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_SUCCEEDED);
    CHECK(strstr(it.result, "\"version\":3") != NULL);
    store_item_release(&it);
    CHECK_EQ_INT(store_doc_get(st, tenant, "products", "1", &d), 0);

    /* invalid patch data fails the item with InvalidData */
    CHECK_EQ_INT(submit_refs(tenant, id, "2"), 0);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    struct store_doc_op op4 = {
        .op = STORE_OP_PATCH, .collection = "products", .data = "{nope", .data_len = 5};
    struct store_outcome o4 = {.index = 0, .status = ITEM_SUCCEEDED, .ops = &op4, .nops = 1};
    CHECK_EQ_INT(store_complete(st, &c, &o4, 1, NULL, 0), 0);
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
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(ITEM_CANCELED, NULL), -1, 10, 0, &items, &n),
                 1);
    CHECK_EQ_INT(n, 5);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(ITEM_PENDING, NULL), -1, 10, 0, &items, &n),
                 1);
    CHECK_EQ_INT(n, 0);
    store_items_free(items, n);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 0);
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
    CHECK_EQ_INT(claim(st, 4, 60000, 3, &c), 1);
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
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(ITEM_CANCELED, NULL), -1, 100, 0, &items, &n),
                 1);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_INT(items[0].index, 4);
    store_items_free(items, n);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c2), 0);
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
    CHECK_EQ_INT(store_complete(st, &c, o, 3, NULL, 0), 0);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_CANCELING);
    store_job_release(&j);
    CHECK_EQ_INT(store_complete(st, &c, o + 3, 1, NULL, 0), 0);
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
    CHECK_EQ_INT(claim(st, 2, 60000, 3, &c2), 1);
    CHECK_EQ_INT(claim(st, 2, 0, 3, &c), 1); /* lease 0: expired at once */
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
    CHECK_EQ_INT(claim(st, 2, 60000, 3, &none), 0); /* the expired one is settled */
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
    CHECK_EQ_INT(claim(st, 2, 60000, 3, &c), 1);
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
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(-1, NULL), -1, 4, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(items[0].index, 0);
    CHECK_EQ_INT(items[3].index, 3);
    CHECK(items[0].data == NULL);
    CHECK(items[0].events == NULL);
    CHECK_EQ_STR(items[1].ref, "b");
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(-1, NULL), 3, 4, 1, &items, &n), 1);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(items[0].index, 4);
    CHECK_EQ_STR(items[0].data, "{}");
    CHECK_EQ_INT(items[0].data_len, 2);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(-1, NULL), 8, 4, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 1);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(-1, "a"), -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(items[3].index, 9);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(-1, "a"), 0, 2, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(items[0].index, 3);
    CHECK_EQ_INT(items[1].index, 6);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(-1, "zz"), -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 0);
    store_items_free(items, n);

    /* claim 0..2, fail item 1 */
    CHECK_EQ_INT(claim(st, 3, 60000, 3, &c), 1);
    CHECK_EQ_INT(c.to, 3);
    struct store_outcome o = {.index = 1, .status = ITEM_FAILED, .error_code = "InvalidData"};
    CHECK_EQ_INT(store_complete(st, &c, &o, 1, NULL, 0), 0);
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(ITEM_FAILED, NULL), -1, 100, 0, &items, &n),
                 1);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(items[0].index, 1);
    CHECK_EQ_INT(items[0].status, ITEM_FAILED);
    CHECK_EQ_STR(items[0].error_code, "InvalidData");
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(ITEM_FAILED, "a"), -1, 100, 0, &items, &n),
                 1);
    CHECK_EQ_INT(n, 0);
    store_items_free(items, n);
    CHECK_EQ_INT(
        store_item_list(st, tenant, id, FILT(ITEM_PROCESSING, NULL), -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(items[1].index, 2);
    CHECK_EQ_INT(items[1].status, ITEM_PROCESSING);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, id, FILT(ITEM_PENDING, "a"), -1, 100, 0, &items, &n),
                 1);
    CHECK_EQ_INT(n, 3);
    store_items_free(items, n);
    CHECK_EQ_INT(
        store_item_list(st, tenant, id, FILT(ITEM_SUCCEEDED, NULL), -1, 100, 0, &items, &n), 1);
    CHECK_EQ_INT(n, 0);
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_list(st, tenant, "job_nosuch", FILT(-1, NULL), -1, 100, 0, &items, &n),
                 0);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, NULL), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
}

/* ---- documents ------------------------------------------------------------------- */

/* if_match 0 is create-only (If-None-Match: *): of writers racing to create one ref,
 * exactly one succeeds and the others get PreconditionFailed, on a missing ref and on
 * a deleted one (a tombstone) alike. */
struct create_race {
    const char *tenant, *ref;
    pthread_barrier_t *go;
    int rc;
};

static void *create_only(void *arg)
{
    struct create_race *x = arg;
    pthread_barrier_wait(x->go);
    x->rc = store_doc_write(st, x->tenant, "c", x->ref, STORE_OP_UPSERT, "{}", 2, 0, NULL, NULL);
    return NULL;
}

TEST(docs_create_only_race)
{
    enum { N = 8 };
    char tenant[STORE_NAME_MAX];
    struct store_doc d;
    new_tenant(tenant, "race");
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "gone", STORE_OP_UPSERT, "[]", 2, -1, NULL, NULL),
                 0);
    CHECK_EQ_INT(store_doc_write(st, tenant, "c", "gone", STORE_OP_DELETE, NULL, 0, -1, NULL, NULL),
                 0);
    const char *refs[] = {"new", "gone"};
    for (int r = 0; r < 2; r++) {
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, N);
        struct create_race x[N];
        pthread_t th[N];
        for (int i = 0; i < N; i++) {
            x[i] = (struct create_race){tenant, refs[r], &go, 1};
            pthread_create(&th[i], NULL, create_only, &x[i]);
        }
        int won = 0, lost = 0;
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            won += x[i].rc == 0;
            lost += x[i].rc == -SLUICE_E_PRECONDITION_FAILED;
        }
        pthread_barrier_destroy(&go);
        CHECK_EQ_INT(won, 1);
        CHECK_EQ_INT(lost, N - 1);
        CHECK_EQ_INT(store_doc_get(st, tenant, "c", refs[r], &d), 1);
        CHECK_EQ_INT(d.version, r == 0 ? 1 : 3);
        store_doc_release(&d);
    }
}

/* max_doc_bytes bounds what a write leaves behind: an upsert's body and, above all, a
 * patch's merged result (each patch small, the document growing), both through
 * store_doc_write and through a job's doc ops; a refused write changes nothing. */
TEST(docs_size_limit)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_options opt;
    struct store *s2 = NULL;
    struct store_doc d;
    struct store_claim c;
    struct store_item it;
    store_options_default(&opt);
    CHECK_EQ_INT(opt.max_doc_bytes, 1 << 20);
    opt.max_doc_bytes = 40;
    CHECK_EQ_INT(store_open(store_url, &opt, &s2), 0);
    new_tenant(tenant, "docsize");
    const char *fits = "{\"a\":\"0123456789012345678901234567\"}"; /* 36 bytes */
    CHECK_EQ_INT(
        store_doc_write(s2, tenant, "c", "k", STORE_OP_UPSERT, fits, strlen(fits), -1, NULL, NULL),
        0);
    const char *big = "{\"a\":\"01234567890123456789012345678901234\"}"; /* 43 bytes */
    CHECK_EQ_INT(
        store_doc_write(s2, tenant, "c", "k", STORE_OP_UPSERT, big, strlen(big), -1, NULL, NULL),
        -SLUICE_E_ITEM_TOO_LARGE);
    /* each patch is small; the merged document is not */
    CHECK_EQ_INT(store_doc_write(s2, tenant, "c", "k", STORE_OP_PATCH, "{\"b\":\"xyz\"}", 11, -1,
                                 NULL, NULL),
                 -SLUICE_E_ITEM_TOO_LARGE);
    CHECK_EQ_INT(store_doc_get(s2, tenant, "c", "k", &d), 1);
    CHECK_EQ_STR(d.data, fits);
    CHECK_EQ_INT(d.version, 1);
    store_doc_release(&d);
    /* a patch that shrinks it is fine */
    CHECK_EQ_INT(store_doc_write(s2, tenant, "c", "k", STORE_OP_PATCH, "{\"a\":null,\"b\":1}", 16,
                                 -1, NULL, NULL),
                 0);
    CHECK_EQ_INT(store_doc_get(s2, tenant, "c", "k", &d), 1);
    CHECK_EQ_STR(d.data, "{\"b\":1}");
    store_doc_release(&d);
    /* a merged document is written as the pipeline writes JSON (util/jsonw.h), so its
     * reals keep their short form: 25 bytes here, 73 in jansson's 17 digits */
    CHECK_EQ_INT(
        store_doc_write(s2, tenant, "c", "r", STORE_OP_UPSERT, "{\"b\":1}", 7, -1, NULL, NULL), 0);
    const char *reals = "{\"r\":[0.1,0.2,0.3]}";
    CHECK_EQ_INT(
        store_doc_write(s2, tenant, "c", "r", STORE_OP_PATCH, reals, strlen(reals), -1, NULL, NULL),
        0);
    CHECK_EQ_INT(store_doc_get(s2, tenant, "c", "r", &d), 1);
    CHECK_EQ_STR(d.data, "{\"b\":1,\"r\":[0.1,0.2,0.3]}");
    store_doc_release(&d);

    /* through a job: the op fails the item with ItemTooLarge, the document stays */
    CHECK_EQ_INT(submit_refs(tenant, id, "k"), 0);
    CHECK_EQ_INT(claim(s2, 10, 60000, 3, &c), 1);
    const char *grow = "{\"c\":\"0123456789012345678901234567890123456789\"}";
    struct store_doc_op op = {.op = STORE_OP_PATCH,
                              .collection = "c",
                              .data = grow,
                              .data_len = strlen(grow),
                              .step = "grow"};
    struct store_outcome o = {.index = 0, .status = ITEM_SUCCEEDED, .ops = &op, .nops = 1};
    CHECK_EQ_INT(store_complete(s2, &c, &o, 1, NULL, 0), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(op.error, -SLUICE_E_ITEM_TOO_LARGE);
    CHECK_EQ_INT(o.status, ITEM_FAILED);
    CHECK_EQ_STR(o.error_code, "ItemTooLarge");
    CHECK_EQ_INT(store_item_get(s2, tenant, id, 0, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_FAILED);
    CHECK_EQ_STR(it.error_code, "ItemTooLarge");
    CHECK_EQ_STR(it.failed_step, "grow");
    CHECK(strstr(it.events, "larger than 40 bytes") != NULL);
    store_item_release(&it);
    CHECK_EQ_INT(store_doc_get(s2, tenant, "c", "k", &d), 1);
    CHECK_EQ_STR(d.data, "{\"b\":1}");
    store_doc_release(&d);
    store_close(s2);
}

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

/* ---- pipelines: multi-op outcomes, step counts ---------------------------------- */

/* Position of needle in hay, or -1. */
static long find_at(const char *hay, const char *needle)
{
    const char *p = hay ? strstr(hay, needle) : NULL;
    return p ? (long)(p - hay) : -1;
}

TEST(completion_multi_ops)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c;
    struct store_item it;
    struct store_doc d;
    struct store_job j;
    drain();
    new_tenant(tenant, "multiop");
    CHECK_EQ_INT(submit_refs(tenant, id, "abcd"), 0); /* item data "{}" */
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    CHECK_EQ_INT(c.n, 4);
    /* item 0: three ops in order; the op ref/data overrides and the item's own data */
    struct store_doc_op ops0[3] = {
        {.op = STORE_OP_UPSERT, .collection = "main", .step = "save"},
        {.op = STORE_OP_PATCH,
         .collection = "main",
         .data = "{\"x\":1}",
         .data_len = 7,
         .step = "enrich"},
        {.op = STORE_OP_UPSERT,
         .collection = "audit",
         .ref = "log-0",
         .data = "{\"ok\":true}",
         .data_len = 11,
         .step = "audit"},
    };
    /* item 1: the second op fails; the first stays applied, the third never runs */
    struct store_doc_op ops1[3] = {
        {.op = STORE_OP_UPSERT,
         .collection = "main",
         .data = "{\"y\":1}",
         .data_len = 7,
         .step = "save"},
        {.op = STORE_OP_PATCH,
         .collection = "main",
         .ref = "missing",
         .data = "{}",
         .data_len = 2,
         .step = "touch"},
        {.op = STORE_OP_UPSERT, .collection = "main", .ref = "never", .step = "after"},
    };
    /* item 2: skipped by a later step; the op before the skip applies */
    struct store_doc_op ops2[1] = {{.op = STORE_OP_UPSERT, .collection = "main", .step = "save"}};
    /* item 3: failed by the caller at a later step: the ops it got through still apply */
    struct store_doc_op ops3[1] = {{.op = STORE_OP_UPSERT, .collection = "main", .step = "save"}};
    ops3[0].version = 99; /* [out] fields are reset */
    struct store_outcome o[4] = {
        {.index = 0,
         .status = ITEM_SUCCEEDED,
         .ops = ops0,
         .nops = 3,
         .warnings = "[{\"step\":\"enrich\",\"code\":\"Slow\"}]"},
        {.index = 1, .status = ITEM_SUCCEEDED, .ops = ops1, .nops = 3},
        {.index = 2,
         .status = ITEM_SKIPPED,
         .ops = ops2,
         .nops = 1,
         .error_code = "Filtered",
         .failed_step = "filter"},
        {.index = 3,
         .status = ITEM_FAILED,
         .ops = ops3,
         .nops = 1,
         .error_code = "InvalidData",
         .error_message = "bad",
         .failed_step = "validate"},
    };
    CHECK_EQ_INT(store_complete(st, &c, o, 4, NULL, 0), 0);
    store_claim_release(&c);

    /* [out] fields of the ops and of the outcome that failed */
    CHECK_EQ_INT(ops0[0].version, 1);
    CHECK_EQ_INT(ops0[0].created, 1);
    CHECK_EQ_INT(ops0[1].version, 2);
    CHECK_EQ_INT(ops0[1].created, 0);
    CHECK_EQ_INT(ops0[2].version, 1);
    CHECK_EQ_INT(ops0[2].error, 0);
    CHECK_EQ_INT(o[0].status, ITEM_SUCCEEDED);
    CHECK_EQ_INT(ops1[0].version, 1);
    CHECK_EQ_INT(ops1[1].version, 0);
    CHECK_EQ_INT(ops1[1].error, -SLUICE_E_DOCUMENT_NOT_FOUND);
    CHECK_EQ_INT(ops1[2].version, 0);
    CHECK_EQ_INT(ops1[2].error, 0);
    CHECK_EQ_INT(o[1].status, ITEM_FAILED);
    CHECK_EQ_STR(o[1].error_code, "DocumentNotFound");
    CHECK_EQ_STR(o[1].failed_step, "touch");
    CHECK_EQ_INT(ops2[0].version, 1);
    CHECK_EQ_INT(o[2].status, ITEM_SKIPPED);
    CHECK_EQ_INT(ops3[0].version, 1);
    CHECK_EQ_INT(o[3].status, ITEM_FAILED);
    CHECK_EQ_STR(o[3].error_code, "InvalidData");

    /* documents */
    CHECK_EQ_INT(store_doc_get(st, tenant, "main", "a", &d), 1);
    CHECK_EQ_STR(d.data, "{\"x\":1}"); /* "{}" upserted, then patched */
    CHECK_EQ_INT(d.version, 2);
    store_doc_release(&d);
    CHECK_EQ_INT(store_doc_get(st, tenant, "audit", "log-0", &d), 1);
    CHECK_EQ_STR(d.data, "{\"ok\":true}");
    CHECK_EQ_STR(d.job_id, id);
    CHECK_EQ_INT(d.item_index, 0);
    store_doc_release(&d);
    CHECK_EQ_INT(store_doc_get(st, tenant, "main", "b", &d), 1); /* applied before the failure */
    CHECK_EQ_STR(d.data, "{\"y\":1}");
    store_doc_release(&d);
    CHECK_EQ_INT(store_doc_get(st, tenant, "main", "never", &d), 0);
    CHECK_EQ_INT(store_doc_get(st, tenant, "main", "c", &d), 1);
    store_doc_release(&d);
    CHECK_EQ_INT(store_doc_get(st, tenant, "main", "d", &d), 1);
    store_doc_release(&d);

    /* items: result of the last op, events in op order with their step, warnings */
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_SUCCEEDED);
    CHECK_EQ_STR(it.result,
                 "{\"collection\":\"audit\",\"ref\":\"log-0\",\"version\":1,\"created\":true}");
    long e1 = find_at(it.events, "\"stage\":\"apply\",\"step\":\"save\"");
    long e2 = find_at(it.events, "\"stage\":\"apply\",\"step\":\"enrich\"");
    long e3 = find_at(it.events, "\"stage\":\"apply\",\"step\":\"audit\"");
    CHECK(e1 >= 0 && e2 > e1 && e3 > e2);
    CHECK(strstr(it.events, "audit/log-0 version 1") != NULL);
    CHECK_EQ_STR(it.warnings, "[{\"step\":\"enrich\",\"code\":\"Slow\"}]");
    CHECK_EQ_STR(it.failed_step, "");
    CHECK_EQ_INT(it.parent_index, -1);
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 1, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_FAILED);
    CHECK_EQ_STR(it.error_code, "DocumentNotFound");
    CHECK_EQ_STR(it.failed_step, "touch");
    CHECK(it.result == NULL);
    CHECK(strstr(it.error_message, "main/missing") != NULL);
    CHECK(find_at(it.events, "\"step\":\"save\",\"level\":\"info\",\"code\":\"VersionWritten\"") >=
          0);
    CHECK(find_at(it.events,
                  "\"step\":\"touch\",\"level\":\"error\",\"code\":\"DocumentNotFound\"") >= 0);
    CHECK(find_at(it.events, "\"step\":\"after\"") < 0);
    CHECK(it.warnings == NULL);
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 2, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_SKIPPED);
    CHECK_EQ_STR(it.error_code, "Filtered");
    CHECK_EQ_STR(it.failed_step, "filter");
    CHECK_EQ_STR(it.result,
                 "{\"collection\":\"main\",\"ref\":\"c\",\"version\":1,\"created\":true}");
    store_item_release(&it);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 3, &it), 1);
    CHECK_EQ_INT(it.status, ITEM_FAILED);
    CHECK_EQ_STR(it.error_code, "InvalidData");
    CHECK_EQ_STR(it.failed_step, "validate");
    CHECK(find_at(it.events, "VersionWritten") >= 0); /* its save step got through */
    store_item_release(&it);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 1);
    CHECK_EQ_INT(j.counts.failed, 2);
    CHECK_EQ_INT(j.counts.skipped, 1);
    store_job_release(&j);

    /* a result given by the caller wins over the ops' result */
    CHECK_EQ_INT(submit_refs(tenant, id, "e"), 0);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    struct store_doc_op op = {.op = STORE_OP_UPSERT, .collection = "main", .step = "save"};
    struct store_outcome o5 = {
        .index = 0, .status = ITEM_SUCCEEDED, .ops = &op, .nops = 1, .result = "{\"mine\":1}"};
    CHECK_EQ_INT(store_complete(st, &c, &o5, 1, NULL, 0), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK_EQ_STR(it.result, "{\"mine\":1}");
    store_item_release(&it);
    CHECK_EQ_INT(op.version, 1);
}

TEST(step_counts)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c1, c2;
    struct store_job j, *jobs;
    size_t n;
    drain();
    new_tenant(tenant, "steps");
    CHECK_EQ_INT(submit(tenant, id, 4, "r%d"), 0);
    CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 1);
    CHECK_EQ_INT(j.nsteps, 0);
    store_job_release(&j);
    CHECK_EQ_INT(claim(st, 2, 60000, 3, &c1), 1);
    CHECK_EQ_INT(claim(st, 2, 60000, 3, &c2), 1);
    struct store_outcome o[4] = {
        {.index = 0, .status = ITEM_SUCCEEDED},
        {.index = 1, .status = ITEM_FAILED, .error_code = "InvalidData", .failed_step = "upsert"},
        {.index = 2, .status = ITEM_SKIPPED, .error_code = "Filtered", .failed_step = "filter"},
        {.index = 3, .status = ITEM_SUCCEEDED},
    };
    struct store_step_count s1[2] = {{"map", 1, 0, 0}, {"upsert", 1, 0, 0}};
    CHECK_EQ_INT(store_complete(st, &c1, o, 1, s1, 2), 0);
    /* a repeated call records nothing, so its tallies do not count again */
    CHECK_EQ_INT(store_complete(st, &c1, o, 1, s1, 2), 0);
    struct store_step_count s2[2] = {{"map", 1, 0, 0}, {"upsert", 0, 1, 0}};
    CHECK_EQ_INT(store_complete(st, &c1, o + 1, 1, s2, 2), 0);
    CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 1);
    CHECK_EQ_INT(j.nsteps, 2);
    CHECK_EQ_STR(j.steps[0].step, "map");
    CHECK_EQ_INT(j.steps[0].passed, 2);
    CHECK_EQ_STR(j.steps[1].step, "upsert");
    CHECK_EQ_INT(j.steps[1].passed, 1);
    CHECK_EQ_INT(j.steps[1].failed, 1);
    store_job_release(&j);
    CHECK(j.steps == NULL && j.nsteps == 0);
    /* a new step name goes last, whatever order the call gives */
    struct store_step_count s3[3] = {{"filter", 0, 0, 1}, {"map", 2, 0, 0}, {"upsert", 1, 0, 0}};
    CHECK_EQ_INT(store_complete(st, &c2, o + 2, 2, s3, 3), 0);
    CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 1);
    CHECK_EQ_INT(j.status, JOB_SUCCEEDED);
    CHECK_EQ_INT(j.nsteps, 3);
    CHECK_EQ_STR(j.steps[0].step, "map");
    CHECK_EQ_INT(j.steps[0].passed, 4);
    CHECK_EQ_STR(j.steps[1].step, "upsert");
    CHECK_EQ_INT(j.steps[1].passed, 2);
    CHECK_EQ_INT(j.steps[1].failed, 1);
    CHECK_EQ_STR(j.steps[2].step, "filter");
    CHECK_EQ_INT(j.steps[2].skipped, 1);
    CHECK_EQ_INT(j.steps[2].passed + j.steps[2].failed, 0);
    store_job_release(&j);
    /* lists do not load step counts */
    CHECK_EQ_INT(store_job_list(st, tenant, -1, 0, 10, &jobs, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK(jobs[0].steps == NULL);
    CHECK_EQ_INT(jobs[0].nsteps, 0);
    store_jobs_free(jobs, n);
    store_claim_release(&c1);
    store_claim_release(&c2);
    /* the counts go with the job */
    CHECK_EQ_INT(store_job_delete(st, tenant, id), 1);
}

/* ---- commit with metadata, retry ------------------------------------------------- */

/* Stages a job of n items (refs "m%d") and commits it with meta; returns the commit's
 * result. */
static int submit_meta(const char *tenant, char id[STORE_ID_MAX], int n,
                       const struct store_job_meta *meta, struct store_job *out)
{
    struct store_new_item ni[8];
    char refs[8][16];
    int rc;
    new_job_id(id);
    if ((rc = store_job_begin(st, tenant, id)) < 0)
        return rc;
    for (int i = 0; i < n && i < 8; i++) {
        snprintf(refs[i], sizeof refs[i], "m%d", i);
        ni[i] = new_item(i, refs[i], "{}");
    }
    if ((rc = store_job_add_items(st, id, ni, (size_t)n)) < 0)
        return rc;
    return store_job_commit(st, id, meta, n, out);
}

/* ---- the scheduler's gate, the active-job cap, limits ------------------------------ */

struct gate_log {
    char blocked[STORE_ID_MAX]; /* admit 0 for this job */
    size_t grant;               /* admit at most this many otherwise */
    int calls;
    char last_uses[64];
    char last_workflow[STORE_NAME_MAX]; /* the gate sees the whole job: the engine sizes by it */
};

static size_t gate_admit(void *ctx, const struct store_job *job, size_t want)
{
    struct gate_log *g = ctx;
    g->calls++;
    snprintf(g->last_uses, sizeof g->last_uses, "%s", job->uses ? job->uses : "");
    snprintf(g->last_workflow, sizeof g->last_workflow, "%s", job->workflow);
    if (strcmp(job->id, g->blocked) == 0)
        return 0;
    return want < g->grant ? want : g->grant;
}

TEST(claim_gate_shortens_and_passes_over)
{
    char tenant[STORE_NAME_MAX], a[STORE_ID_MAX], b[STORE_ID_MAX];
    struct store_claim c;
    struct store_job j;
    drain();
    new_tenant(tenant, "gate");
    CHECK_EQ_INT(submit_meta(tenant, a, 5,
                             &(struct store_job_meta){.workflow = "wf", .uses = "limit-a"}, NULL),
                 1);
    CHECK_EQ_INT(submit(tenant, b, 5, "g%d"), 0);
    struct gate_log g = {.grant = 2};
    snprintf(g.blocked, sizeof g.blocked, "%s", a);
    struct store_claim_gate gate = {gate_admit, &g};
    struct store_claim_opts o = {10, 60000, 3, 0, &gate};
    /* a is passed over (admit 0) every time; b goes in ranges of 2 */
    CHECK_EQ_INT(store_claim(st, &o, &c), 1);
    CHECK_EQ_STR(c.job_id, b);
    CHECK_EQ_INT((int)c.n, 2);
    CHECK_EQ_INT((int)(c.to - c.from), 2);
    CHECK(g.calls >= 2);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(store_claim(st, &o, &c), 1);
    CHECK_EQ_STR(c.job_id, b);
    CHECK_EQ_INT((int)c.from, 2);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(job_status(tenant, a, &j), JOB_NOT_STARTED); /* a passed-over job is untouched */
    CHECK_EQ_INT((int)j.counts.pending, 5);
    CHECK_EQ_STR(j.uses, "limit-a");
    store_job_release(&j);
    /* unblocked: a is claimed, and the gate sees its uses */
    g.blocked[0] = 0;
    g.grant = 100;
    int got_a = 0;
    while (store_claim(st, &o, &c) == 1) {
        if (strcmp(c.job_id, a) == 0) {
            got_a += (int)c.n;
            CHECK_EQ_STR(g.last_uses, "limit-a");
            CHECK_EQ_STR(g.last_workflow, "wf");
        }
        CHECK_EQ_INT(complete_all(&c, ITEM_FAILED), 0);
        store_claim_release(&c);
    }
    CHECK_EQ_INT(got_a, 5);
    /* a retry keeps the parent's uses */
    char r[STORE_ID_MAX];
    new_job_id(r);
    CHECK_EQ_INT(store_job_retry(st, tenant, a, r, NULL, &j), 1);
    CHECK_EQ_STR(j.uses, "limit-a");
    store_job_release(&j);
    drain();
}

TEST(claim_active_job_cap)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX], a[STORE_ID_MAX], b[STORE_ID_MAX],
        o2[STORE_ID_MAX];
    struct store_job j;
    drain();
    new_tenant(tenant, "cap");
    new_tenant(other, "cap-other");
    CHECK_EQ_INT(submit(tenant, a, 4, "a%d"), 0);
    CHECK_EQ_INT(submit(tenant, b, 4, "b%d"), 0);
    CHECK_EQ_INT(submit(other, o2, 4, "o%d"), 0);
    struct store_claim_opts o = {2, 60000, 3, 1, NULL};
    int64_t open_jobs = 0, pending = 0;
    /* one active job per tenant: a starts, b waits, the other tenant is not held back */
    struct store_claim cs[8];
    int nc = 0, of_a = 0, of_o = 0;
    while (nc < 8 && store_claim(st, &o, &cs[nc]) == 1) {
        CHECK(strcmp(cs[nc].job_id, b) != 0);
        of_a += strcmp(cs[nc].job_id, a) == 0 ? (int)cs[nc].n : 0;
        of_o += strcmp(cs[nc].job_id, o2) == 0 ? (int)cs[nc].n : 0;
        nc++;
    }
    CHECK_EQ_INT(of_a, 4);
    CHECK_EQ_INT(of_o, 4);
    CHECK_EQ_INT(job_status(tenant, b, &j), JOB_NOT_STARTED);
    store_job_release(&j);
    CHECK_EQ_INT(store_tenant_load(st, tenant, &open_jobs, &pending), 0);
    CHECK_EQ_INT((int)open_jobs, 2);
    CHECK_EQ_INT((int)pending, 4);
    for (int i = 0; i < nc; i++) {
        CHECK_EQ_INT(complete_all(&cs[i], ITEM_SUCCEEDED), 0);
        store_claim_release(&cs[i]);
    }
    struct store_claim c4;
    /* a finished: b may start */
    CHECK_EQ_INT(job_status(tenant, a, &j), JOB_SUCCEEDED);
    store_job_release(&j);
    CHECK_EQ_INT(store_claim(st, &o, &c4), 1);
    CHECK_EQ_STR(c4.job_id, b);
    CHECK_EQ_INT(complete_all(&c4, ITEM_SUCCEEDED), 0);
    store_claim_release(&c4);
    drain();
}

TEST(limits_crud)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX];
    struct store_def l, *ls;
    size_t n;
    new_tenant(tenant, "lim");
    new_tenant(other, "lim-other");
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_LIMIT, tenant, "mkt", 0, &l), 0);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_LIMIT, tenant, "mkt", "{\"rate\":5}", &l), 1);
    CHECK_EQ_STR(l.name, "mkt");
    CHECK_EQ_STR(l.tenant, tenant);
    CHECK_EQ_STR(l.text, "{\"rate\":5}");
    CHECK(l.created_at > 0 && l.updated_at == l.created_at);
    store_def_release(&l);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_LIMIT, tenant, "mkt", "{\"rate\":7}", NULL), 2);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_LIMIT, tenant, "aaa", "{\"rate\":1}", NULL), 1);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_LIMIT, other, "mkt", "{\"rate\":9}", NULL), 1);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_LIMIT, tenant, "mkt", 0, &l), 1);
    CHECK_EQ_STR(l.text, "{\"rate\":7}");
    store_def_release(&l);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_LIMIT, tenant, NULL, 10, &ls, &n), 0);
    CHECK_EQ_INT((int)n, 2);
    CHECK_EQ_STR(ls[0].name, "aaa");
    CHECK_EQ_STR(ls[1].name, "mkt");
    store_defs_free(ls, n);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_LIMIT, tenant, "aaa", 10, &ls, &n), 0);
    CHECK_EQ_INT((int)n, 1);
    store_defs_free(ls, n);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_LIMIT, NULL, NULL, 100000, &ls, &n), 0);
    int mine = 0;
    for (size_t i = 0; i < n; i++)
        mine += !strcmp(ls[i].tenant, tenant) || !strcmp(ls[i].tenant, other);
    CHECK_EQ_INT(mine, 3);
    store_defs_free(ls, n);
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_LIMIT, tenant, "mkt"), 1);
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_LIMIT, tenant, "mkt"), 0);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_LIMIT, other, "mkt", 0, &l),
                 1); /* other tenant's stays */
    store_def_release(&l);
}

/* Tenant secrets: the limits' shape, with a value; tenant-scoped; values with characters
 * that SQL or JSON treat specially come back byte for byte. */
TEST(secrets_crud)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX];
    struct store_def sc, *ss;
    size_t n;
    const char *odd = "a b/c+d\"e\\f\xc3\xa9&=?#%'; --";
    new_tenant(tenant, "sec");
    new_tenant(other, "sec-other");
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_SECRET, tenant, "tok", 0, &sc), 0);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_SECRET, tenant, "tok", odd, &sc), 1);
    CHECK_EQ_STR(sc.name, "tok");
    CHECK_EQ_STR(sc.tenant, tenant);
    CHECK_EQ_STR(sc.text, odd);
    CHECK(sc.created_at > 0 && sc.updated_at == sc.created_at);
    int64_t created = sc.created_at;
    store_def_release(&sc);
    CHECK(sc.text == NULL);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_SECRET, tenant, "tok", "v2", NULL), 2);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_SECRET, tenant, "aaa", "v1", NULL), 1);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_SECRET, other, "tok", 0, &sc),
                 0); /* not visible to another */
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_SECRET, other, "tok", "theirs", NULL), 1);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_SECRET, tenant, "tok", 0, &sc), 1);
    CHECK_EQ_STR(sc.text, "v2");
    CHECK(sc.created_at == created && sc.updated_at >= created);
    store_def_release(&sc);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_SECRET, tenant, NULL, 10, &ss, &n), 0);
    CHECK_EQ_INT((int)n, 2);
    CHECK_EQ_STR(ss[0].name, "aaa");
    CHECK_EQ_STR(ss[1].name, "tok");
    store_defs_free(ss, n);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_SECRET, tenant, "aaa", 10, &ss, &n), 0);
    CHECK_EQ_INT((int)n, 1);
    CHECK_EQ_STR(ss[0].name, "tok");
    store_defs_free(ss, n);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_SECRET, tenant, NULL, 1, &ss, &n), 0);
    CHECK_EQ_INT((int)n, 1);
    store_defs_free(ss, n);
    CHECK(store_def_list(st, STORE_DEF_SECRET, NULL, NULL, 10, &ss, &n) < 0);
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_SECRET, tenant, "tok"), 1);
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_SECRET, tenant, "tok"), 0);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_SECRET, other, "tok", 0, &sc),
                 1); /* other tenant's stays */
    CHECK_EQ_STR(sc.text, "theirs");
    store_def_release(&sc);
}

TEST(job_commit_idem_key)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX];
    char id1[STORE_ID_MAX], id2[STORE_ID_MAX], id3[STORE_ID_MAX], id4[STORE_ID_MAX];
    struct store_job j, j2;
    struct store_item it;
    new_tenant(tenant, "idem");
    new_tenant(other, "idem-other");
    struct store_job_meta meta = {.workflow = "wf.v",
                                  .workflow_version = 3,
                                  .client_reference = "cref",
                                  .idem_key = "hook:orders:evt-1"};
    CHECK_EQ_INT(submit_meta(tenant, id1, 2, &meta, &j), 1);
    CHECK_EQ_STR(j.id, id1);
    CHECK_EQ_STR(j.workflow, "wf.v");
    CHECK_EQ_INT(j.workflow_version, 3);
    CHECK_EQ_STR(j.client_reference, "cref");
    CHECK_EQ_INT(j.counts.total, 2);
    store_job_release(&j);
    /* the same key again: nothing committed, the first job comes back */
    struct store_job_meta again = {.workflow = "wf.other", .idem_key = "hook:orders:evt-1"};
    CHECK_EQ_INT(submit_meta(tenant, id2, 3, &again, &j2), 2);
    CHECK_EQ_STR(j2.id, id1);
    CHECK_EQ_STR(j2.workflow, "wf.v");
    CHECK_EQ_INT(j2.counts.total, 2);
    store_job_release(&j2);
    CHECK_EQ_INT(store_job_get(st, tenant, id2, &j), 0);
    CHECK_EQ_INT(store_item_get(st, tenant, id2, 0, &it), 0);
    CHECK_EQ_INT(store_job_add_items(st, id2, NULL, 0), -SLUICE_E_NOT_FOUND); /* staged job gone */
    CHECK_EQ_INT(store_job_begin(st, tenant, id2), 0); /* its id is free again */
    CHECK_EQ_INT(store_job_abort(st, id2), 0);
    /* out may be NULL */
    CHECK_EQ_INT(submit_meta(tenant, id2, 1, &again, NULL), 2);
    /* keys are per tenant; a job without a key never collides */
    CHECK_EQ_INT(submit_meta(other, id3, 1, &again, NULL), 1);
    struct store_job_meta nokey = {.workflow = "wf"};
    CHECK_EQ_INT(submit_meta(tenant, id4, 1, &nokey, NULL), 1);
    CHECK_EQ_INT(store_job_commit(st, "job_nosuch", NULL, 1, NULL), -SLUICE_E_NOT_FOUND);
    /* deleting the job frees its key */
    CHECK_EQ_INT(store_job_cancel(st, tenant, id1, NULL), 1);
    CHECK_EQ_INT(store_job_delete(st, tenant, id1), 1);
    CHECK_EQ_INT(submit_meta(tenant, id2, 1, &again, &j), 1);
    CHECK_EQ_STR(j.id, id2);
    CHECK_EQ_STR(j.workflow, "wf.other");
    store_job_release(&j);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id2, NULL), 1);
    CHECK_EQ_INT(store_job_cancel(st, other, id3, NULL), 1);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id4, NULL), 1);
}

TEST(job_retry)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX], id[STORE_ID_MAX], rid[STORE_ID_MAX];
    char rid2[STORE_ID_MAX];
    struct store_claim c, c2, none;
    struct store_job j;
    struct store_item it, *items;
    size_t n;
    drain();
    new_tenant(tenant, "retry");
    new_tenant(other, "retry-other");
    CHECK_EQ_INT(submit_refs(tenant, id, "abacd"), 0);
    new_job_id(rid);
    CHECK_EQ_INT(store_job_retry(st, tenant, id, rid, NULL, &j),
                 -SLUICE_E_CONFLICT); /* NotStarted */
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    CHECK_EQ_INT(store_job_retry(st, tenant, id, rid, NULL, &j), -SLUICE_E_CONFLICT); /* Running */
    struct store_outcome o[5] = {
        {.index = 0, .status = ITEM_FAILED, .error_code = "InvalidData", .failed_step = "map"},
        {.index = 1, .status = ITEM_SUCCEEDED},
        {.index = 2, .status = ITEM_FAILED, .error_code = "UpstreamError", .failed_step = "http"},
        {.index = 3, .status = ITEM_FAILED, .error_code = "InvalidData", .failed_step = "map"},
        {.index = 4, .status = ITEM_SKIPPED, .error_code = "Filtered"},
    };
    CHECK_EQ_INT(store_complete(st, &c, o, 5, NULL, 0), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(store_job_retry(st, other, id, rid, NULL, &j), 0); /* tenant isolation */
    CHECK_EQ_INT(store_job_retry(st, tenant, "job_nosuch", rid, NULL, &j), 0);
    CHECK_EQ_INT(store_job_retry(st, tenant, id, rid, NULL, &j), 1);
    CHECK_EQ_STR(j.id, rid);
    CHECK_EQ_STR(j.tenant, tenant);
    CHECK_EQ_STR(j.workflow, "wf");
    CHECK_EQ_STR(j.parent_job, id);
    CHECK_EQ_INT(j.status, JOB_NOT_STARTED);
    CHECK_EQ_INT(j.counts.total, 3);
    CHECK_EQ_INT(j.counts.pending, 3);
    CHECK_EQ_INT(j.counts.failed + j.counts.succeeded + j.counts.processing, 0);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_retry(st, tenant, id, rid, NULL, NULL),
                 -SLUICE_E_CONFLICT); /* id taken */
    CHECK_EQ_INT(store_job_get(st, other, rid, &j), 0);
    CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 1); /* the parent is unchanged */
    CHECK_EQ_INT(j.counts.failed, 3);
    CHECK_EQ_STR(j.parent_job, "");
    store_job_release(&j);

    /* the new items: the parent's failed ones in order, fresh */
    CHECK_EQ_INT(store_item_list(st, tenant, rid, NULL, -1, 10, 1, &items, &n), 1);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(items[0].index, 0);
    CHECK_EQ_STR(items[0].ref, "a");
    CHECK_EQ_INT(items[0].parent_index, 0);
    CHECK_EQ_STR(items[1].ref, "a");
    CHECK_EQ_INT(items[1].parent_index, 2);
    CHECK_EQ_STR(items[2].ref, "c");
    CHECK_EQ_INT(items[2].parent_index, 3);
    CHECK_EQ_STR(items[2].data, "{}");
    CHECK_EQ_INT(items[2].status, ITEM_PENDING);
    CHECK_EQ_INT(items[2].attempts, 0);
    CHECK_EQ_STR(items[2].error_code, "");
    CHECK_EQ_STR(items[2].failed_step, "");
    store_items_free(items, n);
    CHECK_EQ_INT(store_item_get(st, tenant, rid, 1, &it), 1);
    CHECK_EQ_STR(it.events, "[]");
    CHECK(it.result == NULL);
    store_item_release(&it);

    /* same-ref order holds in the new job: item 1 ("a") waits for item 0 */
    CHECK_EQ_INT(claim(st, 1, 60000, 3, &c), 1);
    CHECK_EQ_STR(c.job_id, rid);
    CHECK_EQ_INT(c.from, 0);
    CHECK_EQ_INT(c.to, 1);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &none), 0);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c2), 1);
    CHECK_EQ_INT(c2.from, 1);
    CHECK_EQ_INT(c2.to, 3);
    CHECK_EQ_STR(c2.items[0].ref, "a");
    CHECK_EQ_INT(complete_all(&c2, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    store_claim_release(&c2);
    CHECK_EQ_INT(job_status(tenant, rid, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.outcome, OUTCOME_ALL_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 3);
    store_job_release(&j);

    /* nothing failed: nothing to retry */
    new_job_id(rid2);
    CHECK_EQ_INT(store_job_retry(st, tenant, rid, rid2, NULL, &j), -SLUICE_E_EMPTY_JOB);
    CHECK_EQ_INT(store_job_get(st, tenant, rid2, &j), 0);
    /* a canceled job with failed items can be retried; its canceled items are not */
    CHECK_EQ_INT(submit_refs(tenant, id, "xyz"), 0);
    CHECK_EQ_INT(claim(st, 1, 60000, 3, &c), 1);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, NULL), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_FAILED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_CANCELED);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_retry(st, tenant, id, rid2, NULL, &j), 1);
    CHECK_EQ_INT(j.counts.total, 1);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_cancel(st, tenant, rid2, NULL), 1);
}

/* store_job_retry_stage's cursor: staging retries take turns, in seq order. */
TEST(job_retry_stage_takes_turns)
{
    char tenant[STORE_NAME_MAX], p1[STORE_ID_MAX], p2[STORE_ID_MAX], r1[STORE_ID_MAX],
        r2[STORE_ID_MAX], staged_id[STORE_ID_MAX];
    struct store_claim c;
    struct store_job j;
    drain();
    new_tenant(tenant, "turns");
    CHECK_EQ_INT(submit_refs(tenant, p1, "abc"), 0);
    CHECK_EQ_INT(submit_refs(tenant, p2, "de"), 0);
    for (int k = 0; k < 2; k++) {
        CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
        CHECK_EQ_INT(complete_all(&c, ITEM_FAILED), 0);
        store_claim_release(&c);
    }
    new_job_id(r1);
    new_job_id(r2);
    CHECK_EQ_INT(store_job_retry_begin(st, tenant, p1, r1, NULL, &j), 1);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_retry_begin(st, tenant, p2, r2, NULL, &j), 1);
    store_job_release(&j);
    int64_t cur = 0;
    CHECK_EQ_INT(store_job_retry_stage(st, 1, &cur, staged_id), 1);
    CHECK_EQ_STR(staged_id, r1); /* the oldest first */
    int64_t first = cur;
    CHECK(first > 0);
    CHECK_EQ_INT(store_job_retry_stage(st, 1, &cur, staged_id), 1);
    CHECK_EQ_STR(staged_id, r2); /* then the next one, not r1 again */
    CHECK(cur > first);
    CHECK_EQ_INT(store_job_retry_stage(st, 1, &cur, staged_id), 0); /* none after r2 */
    cur = 0;
    CHECK_EQ_INT(store_job_retry_stage(st, 1, &cur, staged_id), 1);
    CHECK_EQ_STR(staged_id, r1);
    int rc;
    do /* finish both */
        rc = store_job_retry_stage(st, 10, NULL, staged_id);
    while (rc > 0);
    CHECK_EQ_INT(rc, 0);
    for (int k = 0; k < 2; k++) {
        CHECK_EQ_INT(store_job_get(st, tenant, k ? r2 : r1, &j), 1);
        CHECK_EQ_INT(j.staging, 0);
        CHECK_EQ_INT(j.counts.total, k ? 2 : 3);
        store_job_release(&j);
        CHECK_EQ_INT(store_job_cancel(st, tenant, k ? r2 : r1, NULL), 1);
    }
}

/* store_job_retry_begin + store_job_retry_stage: the retry is visible at once but
 * staging (not claimable, not listed, not cancelable), its items arrive in batches
 * with same-ref links across batches, and it becomes NotStarted once copied. */
TEST(job_retry_staged)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX], rid[STORE_ID_MAX], rid2[STORE_ID_MAX];
    char staged_id[STORE_ID_MAX];
    struct store_claim c, none;
    struct store_job j, *jobs;
    struct store_item *items;
    size_t n;
    drain();
    new_tenant(tenant, "staged");
    CHECK_EQ_INT(submit_refs(tenant, id, "abaca"), 0);
    new_job_id(rid);
    CHECK_EQ_INT(store_job_retry_begin(st, tenant, id, rid, NULL, &j),
                 -SLUICE_E_CONFLICT); /* NotStarted */
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_FAILED), 0); /* items a b a c a all failed */
    store_claim_release(&c);
    /* only 1, 2 and 4 ("b" is item 1: make it succeed by retrying the others only) */
    CHECK_EQ_INT(store_job_retry_stage(st, 10, NULL, staged_id), 0); /* nothing staging */
    CHECK_EQ_STR(staged_id, "");
    struct store_job_meta m = {0};
    m.idem_key = "req:staged";
    CHECK_EQ_INT(store_job_retry_begin(st, tenant, id, rid, &m, &j), 1);
    CHECK_EQ_STR(j.id, rid);
    CHECK_EQ_STR(j.parent_job, id);
    CHECK_EQ_INT(j.status, JOB_NOT_STARTED);
    CHECK_EQ_INT(j.staging, 1);
    CHECK_EQ_INT(j.counts.total, 5);
    CHECK_EQ_INT(j.counts.pending, 5);
    store_job_release(&j);
    /* a replay during staging names the staging job */
    new_job_id(rid2);
    CHECK_EQ_INT(store_job_retry_begin(st, tenant, id, rid2, &m, &j), 2);
    CHECK_EQ_STR(j.id, rid);
    CHECK_EQ_INT(j.staging, 1);
    store_job_release(&j);
    /* staging: seen by get and item reads, not by claims, lists or writers */
    CHECK_EQ_INT(store_job_get(st, tenant, rid, &j), 1);
    CHECK_EQ_INT(j.status, JOB_NOT_STARTED);
    CHECK_EQ_INT(j.staging, 1);
    store_job_release(&j);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &none), 0);
    CHECK(store_job_list(st, tenant, -1, 0, 10, &jobs, &n) >= 0);
    CHECK_EQ_INT(n, 1); /* the parent only */
    for (size_t i = 0; i < n; i++)
        CHECK(strcmp(jobs[i].id, rid) != 0);
    store_jobs_free(jobs, n);
    CHECK_EQ_INT(store_job_cancel(st, tenant, rid, NULL), 0);
    CHECK_EQ_INT(store_job_delete(st, tenant, rid), 0);

    /* one item per batch: five batches, then the finishing call */
    for (int b = 0; b < 5; b++) {
        CHECK_EQ_INT(store_job_retry_stage(st, 1, NULL, staged_id), 1);
        CHECK_EQ_STR(staged_id, rid);
        CHECK_EQ_INT(store_item_list(st, tenant, rid, NULL, -1, 10, 1, &items, &n), 1);
        CHECK_EQ_INT(n, (size_t)b + 1); /* the rows staged so far */
        CHECK_EQ_INT(items[b].parent_index, b);
        CHECK_EQ_INT(items[b].status, ITEM_PENDING);
        store_items_free(items, n);
        CHECK_EQ_INT(claim(st, 10, 60000, 3, &none), 0);
        CHECK_EQ_INT(store_job_get(st, tenant, rid, &j), 1);
        CHECK_EQ_INT(j.staging, 1);
        CHECK_EQ_INT(j.counts.total, 5);
        store_job_release(&j);
    }
    int rc;
    while ((rc = store_job_retry_stage(st, 1, NULL, staged_id)) == 1) /* forgets the ref links */
        CHECK_EQ_STR(staged_id, rid);
    CHECK_EQ_INT(rc, 2);
    CHECK_EQ_STR(staged_id, rid);
    CHECK_EQ_INT(store_job_retry_stage(st, 1, NULL, staged_id), 0);
    CHECK_EQ_INT(store_job_get(st, tenant, rid, &j), 1);
    CHECK_EQ_INT(j.status, JOB_NOT_STARTED);
    CHECK_EQ_INT(j.staging, 0);
    CHECK_EQ_INT(j.counts.total, 5);
    CHECK_EQ_INT(j.counts.pending, 5);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_list(st, tenant, rid, NULL, -1, 10, 1, &items, &n), 1);
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_STR(items[0].ref, "a");
    CHECK_EQ_STR(items[1].ref, "b");
    CHECK_EQ_STR(items[2].ref, "a");
    CHECK_EQ_STR(items[4].ref, "a");
    CHECK_EQ_INT(items[4].parent_index, 4);
    store_items_free(items, n);

    /* same-ref links across batches: item 2 ("a") waits for item 0, staged apart */
    CHECK_EQ_INT(claim(st, 1, 60000, 3, &c), 1);
    CHECK_EQ_STR(c.job_id, rid);
    CHECK_EQ_INT(c.from, 0);
    CHECK_EQ_INT(c.to, 1);
    struct store_claim c2, c3;
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c2), 1); /* "b": stops before item 2 */
    CHECK_EQ_INT(c2.from, 1);
    CHECK_EQ_INT(c2.to, 2);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &none), 0);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    CHECK_EQ_INT(complete_all(&c2, ITEM_SUCCEEDED), 0);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c3), 1);
    CHECK_EQ_INT(c3.from, 2);
    CHECK_EQ_INT(c3.to, 5);
    CHECK_EQ_INT(complete_all(&c3, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    store_claim_release(&c2);
    store_claim_release(&c3);
    CHECK_EQ_INT(job_status(tenant, rid, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 5); /* each item exactly once */
    store_job_release(&j);

    /* the parent deleted mid-staging: the retry keeps what was staged */
    new_job_id(rid2);
    CHECK_EQ_INT(store_job_retry_begin(st, tenant, id, rid2, NULL, &j), 1);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_retry_stage(st, 2, NULL, staged_id), 1);
    CHECK_EQ_INT(store_job_delete(st, tenant, id), 1);
    do {
        rc = store_job_retry_stage(st, 2, NULL, staged_id);
    } while (rc == 1);
    CHECK_EQ_INT(rc, 2);
    CHECK_EQ_INT(store_job_get(st, tenant, rid2, &j), 1);
    CHECK_EQ_INT(j.staging, 0);
    CHECK_EQ_INT(j.counts.total, 2);
    CHECK_EQ_INT(j.counts.pending, 2);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_cancel(st, tenant, rid2, NULL), 1);
}

TEST(item_list_filters_step_code)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c;
    struct store_item *items;
    size_t n;
    drain();
    new_tenant(tenant, "ifilter");
    CHECK_EQ_INT(submit_refs(tenant, id, "abcabcd"), 0);
    CHECK_EQ_INT(claim(st, 6, 60000, 3, &c), 1);
    struct store_outcome o[6] = {
        {.index = 0, .status = ITEM_FAILED, .error_code = "InvalidData", .failed_step = "validate"},
        {.index = 1, .status = ITEM_FAILED, .error_code = "UpstreamError", .failed_step = "http"},
        {.index = 2, .status = ITEM_SKIPPED, .error_code = "Filtered", .failed_step = "filter"},
        {.index = 3, .status = ITEM_FAILED, .error_code = "InvalidData", .failed_step = "http"},
        {.index = 4, .status = ITEM_SUCCEEDED},
        {.index = 5, .status = ITEM_FAILED, .error_code = "InvalidData", .failed_step = "validate"},
    };
    CHECK_EQ_INT(store_complete(st, &c, o, 6, NULL, 0), 0);
    store_claim_release(&c);
    struct {
        int status;
        const char *ref, *step, *code;
        int64_t after;
        size_t limit;
        const char *want; /* indexes */
    } cases[] = {
        {-1, NULL, "validate", NULL, -1, 10, "05"},
        {ITEM_FAILED, NULL, "http", NULL, -1, 10, "13"},
        {-1, NULL, NULL, "InvalidData", -1, 10, "035"},
        {-1, NULL, "http", "InvalidData", -1, 10, "3"},
        {ITEM_FAILED, "a", NULL, "InvalidData", -1, 10, "03"},
        {ITEM_FAILED, "c", "validate", "InvalidData", -1, 10, "5"},
        {-1, NULL, "filter", NULL, -1, 10, "2"},
        {ITEM_SKIPPED, NULL, "filter", "Filtered", -1, 10, "2"},
        {ITEM_SUCCEEDED, NULL, "validate", NULL, -1, 10, ""},
        {-1, NULL, NULL, "NoSuchCode", -1, 10, ""},
        {ITEM_PENDING, NULL, "validate", NULL, -1, 10, ""},
        {-1, NULL, "validate", NULL, 0, 1, "5"}, /* paging with a filter */
        {ITEM_FAILED, NULL, NULL, "InvalidData", 0, 1, "3"},
        {-1, "d", NULL, NULL, -1, 10, "6"}, /* plain ref filter still works */
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        struct store_item_filter f = {cases[t].status, cases[t].ref, cases[t].step, cases[t].code};
        char got[16] = "";
        CHECK_EQ_INT(
            store_item_list(st, tenant, id, &f, cases[t].after, cases[t].limit, 0, &items, &n), 1);
        for (size_t i = 0; i < n && i < sizeof got - 1; i++)
            got[i] = (char)('0' + items[i].index);
        if (strcmp(got, cases[t].want) != 0) {
            store_items_free(items, n);
            TH_FAIL("case %zu: got \"%s\", want \"%s\"", t, got, cases[t].want);
        }
        if (n > 0 && cases[t].step)
            CHECK_EQ_STR(items[0].failed_step, cases[t].step);
        store_items_free(items, n);
    }
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, NULL), 1);
}

/* ---- workflow definitions and webhooks -------------------------------------------- */

TEST(workflows_versions_delete_list)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX];
    struct store_def w, *ws;
    size_t n;
    new_tenant(tenant, "wf");
    new_tenant(other, "wf-other");
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, tenant, "orders", 0, &w), 0);
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_WORKFLOW, tenant, "orders"), 0);
    for (int v = 1; v <= 3; v++) {
        char def[32];
        snprintf(def, sizeof def, "{\"v\":%d}", v);
        CHECK_EQ_INT(store_def_put(st, STORE_DEF_WORKFLOW, tenant, "orders", def, &w),
                     v == 1 ? STORE_PUT_CREATED : STORE_PUT_REPLACED);
        CHECK_EQ_INT(w.kind, STORE_DEF_WORKFLOW);
        CHECK_EQ_STR(w.name, "orders");
        CHECK_EQ_STR(w.tenant, tenant);
        CHECK_EQ_INT(w.version, v);
        CHECK_EQ_STR(w.text, def);
        CHECK(w.created_at > 0);
        CHECK_EQ_INT(w.updated_at, w.created_at);
        CHECK_EQ_INT(w.deleted, 0);
        store_def_release(&w);
    }
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, tenant, "orders", 0, &w), 1);
    CHECK_EQ_INT(w.version, 3);
    CHECK_EQ_STR(w.text, "{\"v\":3}");
    store_def_release(&w);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, tenant, "orders", 2, &w), 1);
    CHECK_EQ_INT(w.version, 2);
    CHECK_EQ_STR(w.text, "{\"v\":2}");
    store_def_release(&w);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, tenant, "orders", 4, &w), 0);
    /* tenants are separate namespaces */
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, other, "orders", 0, &w), 0);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, other, "orders", 1, &w), 0);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_WORKFLOW, other, "orders", "{\"o\":1}", NULL),
                 STORE_PUT_CREATED);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, other, "orders", 0, &w), 1);
    CHECK_EQ_INT(w.version, 1);
    store_def_release(&w);

    /* list: latest versions by name, keyset paging */
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_WORKFLOW, tenant, "zeta", "{}", NULL),
                 STORE_PUT_CREATED);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_WORKFLOW, tenant, "alpha", "{}", NULL),
                 STORE_PUT_CREATED);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_WORKFLOW, tenant, "mid", "{}", NULL),
                 STORE_PUT_CREATED);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_WORKFLOW, tenant, "alpha", "{\"a\":2}", NULL),
                 STORE_PUT_REPLACED);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_WORKFLOW, tenant, NULL, 10, &ws, &n), 0);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_STR(ws[0].name, "alpha");
    CHECK_EQ_INT(ws[0].version, 2);
    CHECK_EQ_STR(ws[0].text, "{\"a\":2}");
    CHECK_EQ_STR(ws[1].name, "mid");
    CHECK_EQ_STR(ws[2].name, "orders");
    CHECK_EQ_INT(ws[2].version, 3);
    CHECK_EQ_STR(ws[3].name, "zeta");
    store_defs_free(ws, n);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_WORKFLOW, tenant, NULL, 2, &ws, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(ws[1].name, "mid");
    store_defs_free(ws, n);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_WORKFLOW, tenant, "mid", 2, &ws, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(ws[0].name, "orders");
    CHECK_EQ_STR(ws[1].name, "zeta");
    store_defs_free(ws, n);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_WORKFLOW, tenant, "zeta", 2, &ws, &n), 0);
    CHECK_EQ_INT(n, 0);
    store_defs_free(ws, n);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_WORKFLOW, other, NULL, 10, &ws, &n), 0);
    CHECK_EQ_INT(n, 1);
    store_defs_free(ws, n);

    /* delete: gone from get(0) and list, versions stay readable */
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_WORKFLOW, tenant, "orders"), 1);
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_WORKFLOW, tenant, "orders"), 0);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, tenant, "orders", 0, &w), 0);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, tenant, "orders", 2, &w), 1);
    CHECK_EQ_STR(w.text, "{\"v\":2}");
    CHECK_EQ_INT(w.deleted, 1);
    store_def_release(&w);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_WORKFLOW, tenant, NULL, 10, &ws, &n), 0);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_STR(ws[1].name, "mid");
    CHECK_EQ_STR(ws[2].name, "zeta");
    store_defs_free(ws, n);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, other, "orders", 0, &w),
                 1); /* other tenant's stays */
    store_def_release(&w);
    /* put after delete: the next version, never a reused one; created, as the name was
     * not live */
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_WORKFLOW, tenant, "orders", "{\"v\":4}", &w),
                 STORE_PUT_CREATED);
    CHECK_EQ_INT(w.version, 4);
    store_def_release(&w);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, tenant, "orders", 0, &w), 1);
    CHECK_EQ_INT(w.version, 4);
    CHECK_EQ_INT(w.deleted, 0);
    store_def_release(&w);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, tenant, "orders", 2, &w), 1);
    CHECK_EQ_INT(w.deleted, 1); /* deleted stays a property of the versions it removed */
    store_def_release(&w);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_WORKFLOW, tenant, "mid", 10, &ws, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(ws[0].name, "orders");
    CHECK_EQ_INT(ws[0].version, 4);
    store_defs_free(ws, n);
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_WORKFLOW, other, "zeta"), 0);
}

/* The rules store.c checks above every backend: a tenant unless the kind and verb allow
 * NULL, a version only for workflows, a known kind. */
TEST(defs_argument_rules)
{
    struct store_def d, *ds;
    size_t n;
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_WORKFLOW, NULL, "x", 0, &d),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_LIMIT, NULL, "x", "{}", NULL),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_HOOK, NULL, "x"), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_SECRET, NULL, NULL, 10, &ds, &n),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK(ds == NULL && n == 0);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_LIMIT, "t", "x", 1, &d), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF__COUNT, "t", "x", 0, &d), -SLUICE_E_INVALID_PARAMETER);
    CHECK(d.text == NULL);
    store_def_release(&d);
    /* allowed: any tenant's hook, every tenant's limits */
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_HOOK, NULL, "no-such-hook", 0, &d), 0);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_LIMIT, NULL, NULL, 100000, &ds, &n), 0);
    store_defs_free(ds, n);
}

TEST(hooks_global_names)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX], h1[32], h2[32];
    struct store_def h, *hs;
    size_t n;
    new_tenant(tenant, "hooks");
    new_tenant(other, "hooks-other");
    ids_random("h1-", 8, h1);
    ids_random("h2-", 8, h2);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_HOOK, NULL, h1, 0, &h), 0);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_HOOK, tenant, h1, "{\"secret\":\"s1\"}", &h), 1);
    CHECK_EQ_STR(h.name, h1);
    CHECK_EQ_STR(h.tenant, tenant);
    CHECK_EQ_STR(h.text, "{\"secret\":\"s1\"}");
    CHECK(h.created_at > 0);
    CHECK_EQ_INT(h.updated_at, h.created_at);
    int64_t created = h.created_at;
    store_def_release(&h);
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_HOOK, tenant, h1, "{\"secret\":\"s2\"}", &h), 2);
    CHECK_EQ_STR(h.text, "{\"secret\":\"s2\"}");
    CHECK_EQ_INT(h.created_at, created);
    CHECK(h.updated_at > created);
    store_def_release(&h);
    /* the name belongs to one tenant */
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_HOOK, other, h1, "{}", &h), -SLUICE_E_CONFLICT);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_HOOK, other, h1, 0, &h), 0);
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_HOOK, other, h1), 0);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_HOOK, tenant, h1, 0, &h), 1);
    CHECK_EQ_STR(h.text, "{\"secret\":\"s2\"}");
    store_def_release(&h);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_HOOK, NULL, h1, 0, &h),
                 1); /* the events endpoint: any tenant */
    CHECK_EQ_STR(h.tenant, tenant);
    store_def_release(&h);
    /* list per tenant, by name */
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_HOOK, tenant, h2, "{}", NULL), 1);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_HOOK, other, "zz-other-hook", "{}", NULL), 1);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_HOOK, tenant, NULL, 10, &hs, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(hs[0].name, h1);
    CHECK_EQ_STR(hs[1].name, h2);
    CHECK_EQ_STR(hs[1].tenant, tenant);
    store_defs_free(hs, n);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_HOOK, tenant, h1, 10, &hs, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(hs[0].name, h2);
    store_defs_free(hs, n);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_HOOK, tenant, NULL, 1, &hs, &n), 0);
    CHECK_EQ_INT(n, 1);
    store_defs_free(hs, n);
    CHECK_EQ_INT(store_def_list(st, STORE_DEF_HOOK, other, NULL, 10, &hs, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(hs[0].name, "zz-other-hook");
    store_defs_free(hs, n);
    /* delete frees the name for anyone */
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_HOOK, tenant, h1), 1);
    CHECK_EQ_INT(store_def_delete(st, STORE_DEF_HOOK, tenant, h1), 0);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_HOOK, NULL, h1, 0, &h), 0);
    CHECK_EQ_INT(store_def_put(st, STORE_DEF_HOOK, other, h1, "{}", NULL), 1);
    CHECK_EQ_INT(store_def_get(st, STORE_DEF_HOOK, NULL, h1, 0, &h), 1);
    CHECK_EQ_STR(h.tenant, other);
    store_def_release(&h);
}

/* ---- stats ----------------------------------------------------------------------- */

/* ---- idempotency keys with hashes, client job ids, retention --------------------- */

TEST(idem_hash_replay_reuse_expiry)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX], id[STORE_ID_MAX], id2[STORE_ID_MAX];
    char opid[STORE_ID_MAX], rnd[16];
    struct store_job j;
    int64_t now = clock_now_ms();
    new_tenant(tenant, "idemh");
    new_tenant(other, "idemh-other");
    struct store_job_meta m1 = {
        .workflow = "wf", .idem_key = "req:k", .body_hash = "h1", .idem_not_before = now - 1000};
    struct store_job_meta m2 = m1;
    m2.body_hash = "h2";
    CHECK_EQ_INT(submit_meta(tenant, id, 2, &m1, &j), 1);
    char first[STORE_ID_MAX];
    snprintf(first, sizeof first, "%s", j.id);
    store_job_release(&j);
    /* same key, same hash: the first job; another hash: refused, nothing stored */
    CHECK_EQ_INT(submit_meta(tenant, id2, 1, &m1, &j), 2);
    CHECK_EQ_STR(j.id, first);
    store_job_release(&j);
    memset(&j, 0, sizeof j);
    CHECK_EQ_INT(submit_meta(tenant, id2, 1, &m2, &j), -SLUICE_E_IDEMPOTENCY_KEY_REUSED);
    CHECK_EQ_INT(store_job_abort(st, id2), 0);
    CHECK_EQ_INT(store_job_get(st, tenant, id2, &j), 0);
    /* a key without a hash (webhook event ids) replays whatever the hash */
    struct store_job_meta m0 = m2;
    m0.body_hash = NULL;
    CHECK_EQ_INT(submit_meta(tenant, id2, 1, &m0, NULL), 2);
    /* another tenant has its own keys */
    CHECK_EQ_INT(submit_meta(other, id2, 1, &m2, NULL), 1);
    /* a key taken before idem_not_before no longer counts: the new job takes it over */
    struct store_job_meta aged = m2;
    aged.idem_not_before = clock_now_ms() + 1;
    CHECK_EQ_INT(submit_meta(tenant, id2, 1, &aged, &j), 1);
    CHECK_EQ_STR(j.id, id2);
    store_job_release(&j);
    CHECK_EQ_INT(submit_meta(tenant, id, 1, &m2, &j), 2);
    CHECK_EQ_STR(j.id, id2);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_get(st, tenant, first, &j), 1); /* the first job stays */
    store_job_release(&j);

    /* a client-chosen id: the job is committed under it; the id is global */
    ids_random("", 8, rnd);
    snprintf(opid, sizeof opid, "Op.%s-%s", rnd,
             "0123456789012345678901234567890123456789012345678901"); /* 64 chars */
    CHECK_EQ_INT(strlen(opid), 64);
    struct store_job_meta mo = {.workflow = "wf",
                                .idem_key = "op:x",
                                .body_hash = "h",
                                .idem_not_before = now - 1000,
                                .job_id = opid};
    CHECK_EQ_INT(submit_meta(tenant, id, 1, &mo, &j), 1);
    CHECK_EQ_STR(j.id, opid);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_get(st, tenant, id, &j), 0); /* the staged id is gone */
    CHECK_EQ_INT(store_job_get(st, tenant, opid, &j), 1);
    store_job_release(&j);
    CHECK_EQ_INT(submit_meta(tenant, id, 1, &mo, &j), 2);
    CHECK_EQ_STR(j.id, opid);
    store_job_release(&j);
    CHECK_EQ_INT(submit_meta(other, id, 1, &mo, NULL), -SLUICE_E_CONFLICT);
    CHECK_EQ_INT(store_job_abort(st, id), 0);
    CHECK_EQ_INT(store_job_get(st, other, opid, &j), 0);

    /* sweeping keys: only keys taken before the cutoff go; their jobs stay */
    CHECK(store_retention_sweep(st, 0, clock_now_ms() + 1, 100000) > 0);
    while (store_retention_sweep(st, 0, clock_now_ms() + 1, 100000) > 0)
        ;
    CHECK_EQ_INT(submit_meta(tenant, id, 1, &m1, &j), 1); /* the key is free again */
    CHECK_EQ_STR(j.id, id);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_get(st, tenant, id2, &j), 1);
    store_job_release(&j);
    CHECK_EQ_INT(store_retention_sweep(st, 0, now - 3600000, 100), 0); /* nothing that old */
    CHECK_EQ_INT(submit_meta(tenant, id2, 1, &m1, NULL), 2);
    drain();
}

TEST(retry_idem_key)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX], id2[STORE_ID_MAX], rid[STORE_ID_MAX];
    char rid2[STORE_ID_MAX], first[STORE_ID_MAX];
    struct store_claim c;
    struct store_job j;
    drain();
    new_tenant(tenant, "retry-idem");
    CHECK_EQ_INT(submit(tenant, id, 2, "r%d"), 0);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_FAILED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(submit(tenant, id2, 1, "s%d"), 0);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_FAILED), 0);
    store_claim_release(&c);
    struct store_job_meta m = {
        .idem_key = "req:r1", .body_hash = "retry-of-id", .idem_not_before = clock_now_ms() - 1000};
    new_job_id(rid);
    CHECK_EQ_INT(store_job_retry(st, tenant, id, rid, &m, &j), 1);
    CHECK_EQ_STR(j.id, rid);
    snprintf(first, sizeof first, "%s", j.id);
    store_job_release(&j);
    new_job_id(rid2);
    CHECK_EQ_INT(store_job_retry(st, tenant, id, rid2, &m, &j), 2);
    CHECK_EQ_STR(j.id, first);
    store_job_release(&j);
    CHECK_EQ_INT(store_job_get(st, tenant, rid2, &j), 0);
    CHECK_EQ_INT(store_job_retry(st, tenant, id, rid2, &m, NULL), 2);
    /* the key covers the retry of id: on another job it is refused */
    struct store_job_meta m2 = m;
    m2.body_hash = "retry-of-id2";
    CHECK_EQ_INT(store_job_retry(st, tenant, id2, rid2, &m2, NULL),
                 -SLUICE_E_IDEMPOTENCY_KEY_REUSED);
    CHECK_EQ_INT(store_job_get(st, tenant, rid2, &j), 0);
    drain();
}

/* Finishes every runnable item of the store (Succeeded). */
static void finish_all(void)
{
    struct store_claim c;
    while (claim(st, 100000, 60000, 0, &c) == 1) {
        complete_all(&c, ITEM_SUCCEEDED);
        store_claim_release(&c);
    }
}

TEST(retention_sweep_batches)
{
    char tenant[STORE_NAME_MAX], a[STORE_ID_MAX], b[STORE_ID_MAX], run[STORE_ID_MAX];
    char idle[STORE_ID_MAX];
    struct store_job j;
    struct store_item it;
    struct store_claim c;
    int rc;
    drain();
    /* earlier tests' finished jobs go first, so what follows counts only ours */
    while ((rc = store_retention_sweep(st, clock_now_ms() + 1, 0, 100000)) > 0)
        ;
    CHECK_EQ_INT(rc, 0);
    new_tenant(tenant, "retention");
    CHECK_EQ_INT(submit(tenant, b, 25, "b%d"), 0);
    finish_all();
    struct timespec ms2 = {0, 2000000};
    nanosleep(&ms2, NULL);
    struct store_job_meta m = {
        .workflow = "wf", .idem_key = "req:ret", .body_hash = "h", .idem_not_before = 0};
    CHECK_EQ_INT(submit_meta(tenant, a, 3, &m, NULL), 1);
    finish_all();
    CHECK_EQ_INT(job_status(tenant, b, &j), JOB_SUCCEEDED);
    CHECK(j.expires_at == 0); /* this handle keeps jobs forever */
    store_job_release(&j);
    /* a handle with a retention shows when a finished job expires */
    struct store_options opt;
    struct store *st2 = NULL;
    store_options_default(&opt);
    opt.retention_ms = 1000;
    CHECK_EQ_INT(store_open(store_url, &opt, &st2), 0);
    CHECK_EQ_INT(store_job_get(st2, tenant, b, &j), 1);
    CHECK(j.completed_at > 0);
    CHECK_EQ_INT(j.expires_at, j.completed_at + 1000);
    store_job_release(&j);
    /* a running and a waiting job: never removed */
    CHECK_EQ_INT(submit(tenant, run, 4, "r%d"), 0);
    CHECK_EQ_INT(claim(st, 1, 60000, 3, &c), 1);
    CHECK_EQ_STR(c.job_id, run);
    CHECK_EQ_INT(submit(tenant, idle, 2, "i%d"), 0);
    CHECK_EQ_INT(store_job_get(st2, tenant, run, &j), 1);
    CHECK_EQ_INT(j.expires_at, 0);
    store_job_release(&j);
    store_close(st2);
    nanosleep(&ms2, NULL);
    int64_t cutoff = clock_now_ms();

    /* 10 rows per call: b (25 items, completed first) takes three calls; it is hidden
     * from the first one on, never half there */
    CHECK_EQ_INT(store_retention_sweep(st, cutoff, 0, 10), 10);
    CHECK_EQ_INT(store_job_get(st, tenant, b, &j), 0);
    CHECK_EQ_INT(store_item_get(st, tenant, b, 24, &it), 0);
    CHECK_EQ_INT(job_status(tenant, a, &j), JOB_SUCCEEDED);
    store_job_release(&j);
    CHECK_EQ_INT(store_retention_sweep(st, cutoff, 0, 10), 10);
    int64_t total = 20, calls = 2;
    while ((rc = store_retention_sweep(st, cutoff, 0, 10)) > 0) {
        CHECK(rc <= 11);
        total += rc;
        calls++;
    }
    CHECK_EQ_INT(rc, 0);
    /* rows: 25 + 3 items, 2 job rows, 1 key */
    CHECK_EQ_INT(total, 31);
    CHECK(calls >= 4);
    CHECK_EQ_INT(store_job_get(st, tenant, a, &j), 0);
    CHECK_EQ_INT(store_item_get(st, tenant, a, 0, &it), 0);
    /* its key went with it */
    CHECK_EQ_INT(submit_meta(tenant, a, 1, &m, NULL), 1);
    /* the running and the waiting job are untouched, items included */
    CHECK_EQ_INT(job_status(tenant, run, &j), JOB_RUNNING);
    store_job_release(&j);
    CHECK_EQ_INT(job_status(tenant, idle, &j), JOB_NOT_STARTED);
    store_job_release(&j);
    CHECK_EQ_INT(store_item_get(st, tenant, run, 3, &it), 1);
    store_item_release(&it);
    /* jobs completed after the cutoff stay */
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    finish_all();
    CHECK_EQ_INT(store_retention_sweep(st, cutoff, 0, 10), 0);
    CHECK_EQ_INT(job_status(tenant, run, &j), JOB_SUCCEEDED);
    store_job_release(&j);
    /* a sweep with room for everything removes several jobs in one call */
    /* run (4 items), idle (2), the new a (1 item, 1 key), 3 job rows */
    CHECK_EQ_INT(store_retention_sweep(st, clock_now_ms() + 1, 0, 100000), 4 + 2 + 1 + 1 + 3);
    CHECK_EQ_INT(store_job_get(st, tenant, run, &j), 0);
    CHECK_EQ_INT(store_job_get(st, tenant, idle, &j), 0);
}

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
    CHECK_EQ_INT(claim(st, 3, 60000, 3, &c), 1);
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
        int rc = claim(st, 500, 60000, 3, &c);
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
        if (store_complete(st, &c, o, half, NULL, 0) < 0 ||
            store_complete(st, &c, o + half, c.n - half, NULL, 0) < 0)
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
        items[i] = new_item(i, refs[i], data[i]);
    }
    int64_t t0 = clock_mono_ns();
    new_job_id(id);
    rc = store_job_begin(st, tenant, id);
    for (int b = 0; rc == 0 && b < BIG; b += 1000)
        rc = store_job_add_items(st, id, items + b, 1000);
    if (rc == 0)
        rc = store_job_commit(st, id, &(struct store_job_meta){.workflow = "bench"}, BIG, NULL);
    rc = rc < 0 ? rc : 0;
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
    CHECK_EQ_INT(store_item_list(st, tenant, big_job, FILT(ITEM_SUCCEEDED, NULL), BIG - 11, 100, 0,
                                 &items, &n),
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
    struct store_doc_op op = {.op = STORE_OP_UPSERT, .collection = "products", .step = "upsert"};
    struct store_job j;
    double ms;
    drain();
    new_tenant(tenant, "upsert");
    CHECK_EQ_INT(submit_big(tenant, id, 1, &ms), 0);
    int64_t t0 = clock_mono_ns();
    while (claim(st, 1000, 60000, 3, &c) == 1) {
        for (size_t i = 0; i < c.n; i++)
            o[i] = (struct store_outcome){
                .index = c.items[i].index, .status = ITEM_SUCCEEDED, .ops = &op, .nops = 1};
        CHECK_EQ_INT(store_complete(st, &c, o, c.n, NULL, 0), 0);
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

/* ---- completion callbacks: the outbox --------------------------------------------- */

/* A committed job of n items with a callback (url NULL: none) signed in format. */
static int submit_cb_format(const char *tenant, char job_id[STORE_ID_MAX], int n, const char *url,
                            int events, int format)
{
    int rc;
    struct store_new_item it = {.ref = "r", .ref_len = 1, .data = "{}", .data_len = 2};
    new_job_id(job_id);
    if ((rc = store_job_begin(st, tenant, job_id)) < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        it.index = i;
        it.prev_idx = i - 1;
        if ((rc = store_job_add_items(st, job_id, &it, 1)) < 0)
            return rc;
    }
    struct store_job_meta m = {.workflow = "wf",
                               .callback_url = url,
                               .callback_events = events,
                               .callback_format = format};
    rc = store_job_commit(st, job_id, &m, n, NULL);
    return rc < 0 ? rc : 0;
}

static int submit_cb(const char *tenant, char job_id[STORE_ID_MAX], int n, const char *url,
                     int events)
{
    return submit_cb_format(tenant, job_id, n, url, events, STORE_CB_FORMAT_DEFAULT);
}

/* Number of deliveries of a job, [out] the first one's event and state. */
static int outbox_of(const char *tenant, const char *id, char event[STORE_EVENT_MAX], int *state)
{
    struct store_delivery *ds = NULL;
    size_t n = 0;
    int rc = store_delivery_list(st, tenant, id, &ds, &n);
    if (rc <= 0)
        return rc < 0 ? rc : -1;
    if (n > 0 && event)
        snprintf(event, STORE_EVENT_MAX, "%s", ds[0].event);
    if (n > 0 && state)
        *state = ds[0].state;
    store_deliveries_free(ds, n);
    return (int)n;
}

/* Marks every due delivery delivered (deliveries are store-wide, like claims). */
static void drain_outbox(void)
{
    struct store_delivery *ds;
    size_t n;
    while (store_delivery_claim(st, 60000, 100, &ds, &n) > 0) {
        for (size_t i = 0; i < n; i++)
            store_delivery_record(st, &ds[i], NULL, DELIVERY_DELIVERED, 0);
        store_deliveries_free(ds, n);
    }
}

TEST(outbox_with_terminal_transition)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX], ev[STORE_EVENT_MAX];
    char a[STORE_ID_MAX], b[STORE_ID_MAX], c_[STORE_ID_MAX], d[STORE_ID_MAX], e[STORE_ID_MAX];
    char f[STORE_ID_MAX];
    struct store_claim c;
    int state = -1;
    drain();
    drain_outbox();
    new_tenant(tenant, "cb");
    new_tenant(other, "cbo");
    const char *url = "https://cb.example/hook";

    /* completion: events 0 = all */
    CHECK_EQ_INT(submit_cb(tenant, a, 2, url, 0), 0);
    CHECK_EQ_INT(outbox_of(tenant, a, NULL, NULL), 0); /* not terminal: nothing owed */
    CHECK_EQ_INT(claim(st, 1, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(outbox_of(tenant, a, NULL, NULL), 0); /* one item left */
    CHECK_EQ_INT(claim(st, 1, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(outbox_of(tenant, a, ev, &state), 1);
    CHECK_EQ_STR(ev, "job.completed");
    CHECK_EQ_INT(state, DELIVERY_PENDING);
    CHECK_EQ_INT(outbox_of(other, a, NULL, NULL), -1); /* tenant-scoped: no such job */

    /* failure, subscribed to job.failed only */
    CHECK_EQ_INT(submit_cb(tenant, b, 1, url, STORE_CB_FAILED), 0);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_FAILED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(outbox_of(tenant, b, ev, NULL), 1);
    CHECK_EQ_STR(ev, "job.failed");

    /* an unsubscribed event owes nothing */
    CHECK_EQ_INT(submit_cb(tenant, c_, 1, url, STORE_CB_COMPLETED | STORE_CB_CANCELED), 0);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_FAILED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(outbox_of(tenant, c_, NULL, NULL), 0);

    /* cancel of a job that has not started: Canceled at once */
    CHECK_EQ_INT(submit_cb(tenant, d, 3, url, STORE_CB_CANCELED), 0);
    CHECK_EQ_INT(store_job_cancel(st, tenant, d, NULL), 1);
    CHECK_EQ_INT(outbox_of(tenant, d, ev, NULL), 1);
    CHECK_EQ_STR(ev, "job.canceled");
    CHECK_EQ_INT(store_job_cancel(st, tenant, d, NULL), 1); /* again: still one */
    CHECK_EQ_INT(outbox_of(tenant, d, NULL, NULL), 1);

    /* a claim takeover that ends the job (max attempts reached) */
    CHECK_EQ_INT(submit_cb(tenant, e, 1, url, 0), 0);
    CHECK_EQ_INT(claim(st, 10, 0, 1, &c), 1); /* lease 0: expired at once */
    store_claim_release(&c);
    struct store_claim none;
    CHECK_EQ_INT(claim(st, 10, 0, 1, &none), 0); /* attempt 1 of 1: given up */
    CHECK_EQ_INT(outbox_of(tenant, e, ev, NULL), 1);
    CHECK_EQ_STR(ev, "job.failed");

    /* no callback, no delivery */
    CHECK_EQ_INT(submit_cb(tenant, f, 1, NULL, 0), 0);
    CHECK_EQ_INT(store_job_cancel(st, tenant, f, NULL), 1);
    CHECK_EQ_INT(outbox_of(tenant, f, NULL, NULL), 0);

    drain_outbox();
}

TEST(outbox_claim_record)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX], id2[STORE_ID_MAX];
    struct store_delivery *ds = NULL, *ds2 = NULL, *list = NULL;
    size_t n = 0, n2 = 0, nl = 0;
    drain();
    drain_outbox();
    new_tenant(tenant, "cbc");
    CHECK_EQ_INT(submit_cb(tenant, id, 1, "https://cb.example/1", 0), 0);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, NULL), 1);

    CHECK_EQ_INT(store_delivery_claim(st, 60000, 10, &ds, &n), 1);
    CHECK_EQ_INT(n, 1);
    if (n != 1)
        return;
    CHECK_EQ_STR(ds[0].job_id, id);
    CHECK_EQ_STR(ds[0].tenant, tenant);
    CHECK_EQ_STR(ds[0].event, "job.canceled");
    CHECK_EQ_STR(ds[0].url, "https://cb.example/1");
    CHECK(strncmp(ds[0].id, "dlv_", 4) == 0);
    CHECK(ds[0].token[0] != '\0');
    CHECK_EQ_INT(ds[0].attempts, 0);
    CHECK_EQ_INT(store_delivery_claim(st, 60000, 10, &ds2, &n2), 0); /* leased */

    /* a failed attempt reschedules it later */
    struct store_delivery_attempt at = {clock_now_ms(), 12, 503, "UpstreamError", "HTTP 503"};
    CHECK_EQ_INT(store_delivery_record(st, &ds[0], &at, DELIVERY_PENDING, clock_now_ms() + 600000),
                 1);
    CHECK_EQ_INT(store_delivery_record(st, &ds[0], &at, DELIVERY_PENDING, 0),
                 -SLUICE_E_LEASE_LOST); /* the lease ended with the record */
    CHECK_EQ_INT(store_delivery_claim(st, 60000, 10, &ds2, &n2), 0); /* not due yet */

    CHECK_EQ_INT(store_delivery_list(st, tenant, id, &list, &nl), 1);
    CHECK_EQ_INT(nl, 1);
    CHECK_EQ_INT(list[0].attempts, 1);
    CHECK_EQ_INT(list[0].state, DELIVERY_PENDING);
    CHECK(list[0].next_at > clock_now_ms());
    CHECK(strstr(list[0].log, "\"attempt\":1") && strstr(list[0].log, "\"status\":503") &&
          strstr(list[0].log, "\"code\":\"UpstreamError\""));
    store_deliveries_free(list, nl);
    store_deliveries_free(ds, n);
    ds = NULL;
    /* a short lease expires and is taken over under a new token; store_expire_claims
     * (start-up after a crash) ends every lease at once */
    CHECK_EQ_INT(submit_cb(tenant, id2, 1, "https://cb.example/2", 0), 0);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id2, NULL), 1);
    CHECK_EQ_INT(store_delivery_claim(st, 1, 10, &ds, &n), 1); /* lease 1 ms */
    struct timespec ts = {0, 5 * 1000000L};
    nanosleep(&ts, NULL);
    CHECK_EQ_INT(store_delivery_claim(st, 60000, 10, &ds2, &n2), 1);
    CHECK(n2 == 1 && strcmp(ds2[0].id, ds[0].id) == 0 && strcmp(ds2[0].token, ds[0].token) != 0);
    CHECK_EQ_INT(store_delivery_record(st, &ds[0], NULL, DELIVERY_DELIVERED, 0),
                 -SLUICE_E_LEASE_LOST);
    CHECK(store_expire_claims(st) >= 0);
    store_deliveries_free(ds, n);
    CHECK_EQ_INT(store_delivery_claim(st, 60000, 10, &ds, &n), 1); /* due at once */
    CHECK(n == 1 && strcmp(ds[0].id, ds2[0].id) == 0);
    CHECK_EQ_INT(store_delivery_record(st, &ds2[0], NULL, DELIVERY_DELIVERED, 0),
                 -SLUICE_E_LEASE_LOST);
    struct store_delivery_attempt ok = {clock_now_ms(), 3, 204, NULL, NULL};
    CHECK_EQ_INT(store_delivery_record(st, &ds[0], &ok, DELIVERY_DELIVERED, 0), 1);
    store_deliveries_free(ds2, n2);
    CHECK_EQ_INT(store_delivery_list(st, tenant, id2, &list, &nl), 1);
    CHECK(nl == 1 && list[0].state == DELIVERY_DELIVERED && list[0].attempts == 1);
    CHECK(nl == 1 && strstr(list[0].log, "\"status\":204") && !strstr(list[0].log, "error"));
    store_deliveries_free(list, nl);
    store_deliveries_free(ds, n);

    /* the first delivery is still waiting for its retry time */
    CHECK_EQ_INT(store_delivery_claim(st, 60000, 10, &ds, &n), 0);

    /* deleting the job removes its deliveries */
    CHECK_EQ_INT(store_job_delete(st, tenant, id2), 1);
    CHECK_EQ_INT(store_delivery_list(st, tenant, id2, &list, &nl), 0);

    char *v = NULL;
    CHECK_EQ_INT(store_setting_ensure(st, "contract.secret", "first", &v), 1);
    CHECK_EQ_STR(v, "first");
    free(v);
    CHECK_EQ_INT(store_setting_ensure(st, "contract.secret", "second", &v), 1);
    CHECK_EQ_STR(v, "first");
    free(v);
}

TEST(outbox_abandon)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_delivery *ds = NULL, *list = NULL;
    size_t n = 0, nl = 0;
    drain();
    drain_outbox();
    new_tenant(tenant, "cba");
    CHECK_EQ_INT(submit_cb(tenant, id, 1, "http://10.0.0.1/x", 0), 0);
    CHECK_EQ_INT(store_job_cancel(st, tenant, id, NULL), 1);
    CHECK_EQ_INT(store_delivery_claim(st, 60000, 10, &ds, &n), 1);
    struct store_delivery_attempt no = {clock_now_ms(), 0, 0, "TargetNotAllowed",
                                        "target address 10.0.0.1 is not allowed (private)"};
    CHECK_EQ_INT(store_delivery_record(st, &ds[0], &no, DELIVERY_ABANDONED, 0), 1);
    CHECK_EQ_INT(store_delivery_record(st, &ds[0], &no, 7, 0), -SLUICE_E_INVALID_PARAMETER);
    store_deliveries_free(ds, n);
    CHECK(store_expire_claims(st) >= 0);
    CHECK_EQ_INT(store_delivery_claim(st, 60000, 10, &ds, &n), 0);
    CHECK_EQ_INT(store_delivery_list(st, tenant, id, &list, &nl), 1);
    CHECK(nl == 1 && list[0].state == DELIVERY_ABANDONED && list[0].attempts == 1);
    CHECK(nl == 1 && strstr(list[0].log, "TargetNotAllowed") != NULL);
    CHECK_EQ_STR(store_delivery_state_name(DELIVERY_ABANDONED), "Abandoned");
    store_deliveries_free(list, nl);
}

/* A callback's format goes with its delivery; a tenant's settings are its own, and a
 * rotation moves the key generations in one step. */
TEST(callback_formats_and_prefs)
{
    char tenant[STORE_NAME_MAX], other[STORE_NAME_MAX], a[STORE_ID_MAX], b[STORE_ID_MAX];
    struct store_claim c;
    struct store_delivery *ds = NULL;
    size_t n = 0;
    struct store_callback_prefs p;
    drain();
    drain_outbox();
    new_tenant(tenant, "cf");
    new_tenant(other, "cfo");
    CHECK_EQ_INT(
        submit_cb_format(tenant, a, 1, "https://cb.example/a", 0, STORE_CB_FORMAT_STANDARD), 0);
    CHECK_EQ_INT(submit_cb(tenant, b, 1, "https://cb.example/b", 0), 0);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(claim(st, 10, 60000, 3, &c), 1);
    CHECK_EQ_INT(complete_all(&c, ITEM_SUCCEEDED), 0);
    store_claim_release(&c);
    CHECK_EQ_INT(store_delivery_list(st, tenant, a, &ds, &n), 1);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ds[0].format, STORE_CB_FORMAT_STANDARD);
    store_deliveries_free(ds, n);
    CHECK_EQ_INT(store_delivery_claim(st, 60000, 10, &ds, &n), 2); /* the claim reads it too */
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_INT(ds[i].format, strcmp(ds[i].job_id, a) == 0 ? STORE_CB_FORMAT_STANDARD
                                                                : STORE_CB_FORMAT_DEFAULT);
    store_deliveries_free(ds, n);
    drain_outbox();

    CHECK_EQ_INT(store_callback_prefs_get(st, tenant, &p), 0); /* none yet: the defaults */
    CHECK_EQ_INT(p.format, 0);
    CHECK_EQ_INT(p.key_gen, 0);
    CHECK_EQ_INT(p.prev_until, 0);
    CHECK_EQ_INT(store_callback_format_set(st, tenant, STORE_CB_FORMAT_MAX + 1),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_callback_format_set(st, tenant, -1), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(store_callback_format_set(st, tenant, STORE_CB_FORMAT_STANDARD), 0);
    CHECK_EQ_INT(store_callback_prefs_get(st, tenant, &p), 1);
    CHECK_EQ_INT(p.format, STORE_CB_FORMAT_STANDARD);
    CHECK_EQ_INT(p.key_gen, 0);
    CHECK(p.updated_at > 0);

    CHECK_EQ_INT(store_callback_key_rotate(st, tenant, 5000, &p), 0);
    CHECK_EQ_INT(p.format, STORE_CB_FORMAT_STANDARD); /* a rotation keeps the format */
    CHECK_EQ_INT(p.key_gen, 1);
    CHECK_EQ_INT(p.prev_gen, 0);
    CHECK_EQ_INT(p.prev_until, 5000);
    CHECK_EQ_INT(store_callback_key_rotate(st, tenant, 7000, NULL), 0);
    CHECK_EQ_INT(store_callback_format_set(st, tenant, STORE_CB_FORMAT_DEFAULT), 0);
    CHECK_EQ_INT(store_callback_prefs_get(st, tenant, &p), 1);
    CHECK_EQ_INT(p.format, STORE_CB_FORMAT_DEFAULT); /* ... and a format set keeps the keys */
    CHECK_EQ_INT(p.key_gen, 2);
    CHECK_EQ_INT(p.prev_gen, 1);
    CHECK_EQ_INT(p.prev_until, 7000);

    CHECK_EQ_INT(store_callback_prefs_get(st, other, &p), 0);        /* per tenant */
    CHECK_EQ_INT(store_callback_key_rotate(st, other, 9000, &p), 0); /* first: creates */
    CHECK_EQ_INT(p.key_gen, 1);
    CHECK_EQ_INT(p.prev_gen, 0);
    CHECK_EQ_INT(p.format, 0);
    CHECK_EQ_INT(store_callback_prefs_get(st, tenant, &p), 1);
    CHECK_EQ_INT(p.key_gen, 2);
    CHECK_EQ_INT(store_callback_prefs_get(st, "", &p), -SLUICE_E_INVALID_PARAMETER);
}

/* ---- shared rate buckets and concurrency units ------------------------------------- */

TEST(buckets_and_sems)
{
    char id[40], sid[40];
    struct store_bucket_lease l1, l2, l3;
    int64_t held = -1;
    ids_random("bucket-", 12, id);
    ids_random("sem-", 12, sid);
    CHECK_EQ_INT(store_bucket_take(st, id, 100, 0, 0, &l1), 0); /* n = 0 only reads */
    CHECK(l1.now > 0 && l1.tat0 >= (double)l1.now);
    CHECK_EQ_INT(l1.epoch, 0);
    CHECK_EQ_INT(store_bucket_take(st, id, 100, 0, 5, &l1), 0);
    CHECK_EQ_INT(store_bucket_take(st, id, 100, 0, 1, &l2), 0);
    CHECK(l2.tat0 >= l1.tat0 + 500 - 0.001); /* the five slots are spoken for */
    CHECK_EQ_INT(store_bucket_block(st, id, l2.now + 60000), 0);
    CHECK_EQ_INT(store_bucket_take(st, id, 100, 0, 1, &l3), 0);
    CHECK_EQ_INT(l3.epoch, 1);
    CHECK(l3.tat0 >= (double)(l2.now + 60000));
    CHECK_EQ_INT(store_bucket_block(st, id, l2.now + 1000), 0); /* earlier: no change */
    CHECK_EQ_INT(store_bucket_take(st, id, 100, 0, 0, &l3), 0);
    CHECK_EQ_INT(l3.epoch, 1);

    CHECK_EQ_INT(store_sem_adjust(st, sid, 3, 2, &held), 0);
    CHECK_EQ_INT(held, 2);
    CHECK_EQ_INT(store_sem_adjust(st, sid, 3, 5, &held), 0);
    CHECK_EQ_INT(held, 3); /* up to the cap */
    CHECK_EQ_INT(store_sem_adjust(st, sid, 3, -2, &held), 0);
    CHECK_EQ_INT(held, 1);
    if (store_shared(st)) { /* another node shares the cap */
        struct store *other = NULL;
        int64_t oh = -1;
        CHECK_EQ_INT(store_open(store_url, NULL, &other), 0);
        CHECK_EQ_INT(store_sem_adjust(other, sid, 3, 5, &oh), 0);
        CHECK_EQ_INT(oh, 2);
        CHECK_EQ_INT(store_sem_adjust(st, sid, 3, 1, &held), 0);
        CHECK_EQ_INT(held, 1); /* no room left */
        CHECK_EQ_INT(store_sem_adjust(other, sid, 3, -5, &oh), 0);
        CHECK_EQ_INT(oh, 0);
        store_close(other);
    }
    CHECK_EQ_INT(store_sem_adjust(st, sid, 3, -5, &held), 0);
    CHECK_EQ_INT(held, 0);
    CHECK_EQ_INT(store_sem_adjust(st, sid, 3, 2, &held), 0);
    CHECK(store_expire_claims(st) >= 0); /* units of a dead run go at start-up */
    CHECK_EQ_INT(store_sem_adjust(st, sid, 3, 0, &held), 0);
    CHECK_EQ_INT(held, 0);
}

/* ---- nodes: several handles on one store (store.h NODES) ------------------------ */

/* A node that stops heartbeating loses its leases at the next heartbeat of another
 * node, however long they were: its late completion is refused, the takeover counts
 * the attempt. */
TEST(silent_node_loses_leases)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store_claim c1, c2;
    struct store_options opt;
    struct store *other = NULL;
    struct store_item it;
    drain();
    CHECK(store_node_id(st) != NULL && store_node_id(st)[0] != '\0');
    if (!store_shared(st)) { /* SQLite: one process; heartbeats are no-ops */
        CHECK_EQ_STR(store_node_id(st), "local");
        CHECK_EQ_INT(store_heartbeat(st), 0);
        return;
    }
    CHECK_EQ_INT(store_heartbeat(st), 0);
    store_options_default(&opt);
    CHECK_EQ_INT(opt.node_timeout_ms, 15000);
    opt.node_timeout_ms = 300;
    CHECK_EQ_INT(store_open(store_url, &opt, &other), 0);
    CHECK(strcmp(store_node_id(other), store_node_id(st)) != 0);
    new_tenant(tenant, "silent");
    CHECK_EQ_INT(submit(tenant, id, 5, "s%d"), 0);
    CHECK_EQ_INT(claim(st, 10, 600000, 5, &c1), 1); /* a ten-minute lease */
    CHECK_EQ_INT(store_heartbeat(other), 0);        /* st beat just now: alive */
    CHECK_EQ_INT(claim(other, 10, 600000, 5, &c2), 0);
    struct timespec ts = {0, 450000000};
    nanosleep(&ts, NULL);
    CHECK_EQ_INT(store_heartbeat(other), 1); /* st silent for > 300 ms */
    CHECK_EQ_INT(store_heartbeat(other), 0);
    CHECK_EQ_INT(complete_all(&c1, ITEM_SUCCEEDED), -SLUICE_E_LEASE_LOST);
    CHECK_EQ_INT(claim(other, 10, 600000, 5, &c2), 1);
    CHECK_EQ_INT(c2.claim_id, c1.claim_id);
    CHECK_EQ_INT(c2.n, 5);
    CHECK_EQ_INT(c2.items[0].attempts, 1); /* the silent node's attempt counts */
    CHECK_EQ_INT(store_item_get(st, tenant, id, 0, &it), 1);
    CHECK(strstr(it.events, "LeaseExpired") != NULL);
    store_item_release(&it);
    CHECK_EQ_INT(store_complete(other, &c2,
                                &(struct store_outcome){.index = 0, .status = ITEM_SUCCEEDED}, 1,
                                NULL, 0),
                 0);
    CHECK_EQ_INT(store_release(st, &c1), -SLUICE_E_LEASE_LOST);
    /* the live node's lease is untouched by its own heartbeats */
    CHECK_EQ_INT(store_heartbeat(st), 0);
    store_close(other);
    struct timespec ts2 = {0, 20000000};
    nanosleep(&ts2, NULL);
    CHECK_EQ_INT(store_heartbeat(st), 0); /* st judges with 15 s: other is not silent */
    struct store_outcome o[4];
    for (int i = 0; i < 4; i++)
        o[i] = (struct store_outcome){.index = i + 1, .status = ITEM_SUCCEEDED};
    CHECK_EQ_INT(store_complete(st, &c2, o, 4, NULL, 0), 0);
    struct store_job j;
    CHECK_EQ_INT(job_status(tenant, id, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, 5);
    store_job_release(&j);
    store_claim_release(&c1);
    store_claim_release(&c2);
}

static atomic_int watch_calls;

static void on_watch(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&watch_calls, 1);
}

/* Another node's commit wakes this one (shared stores). */
TEST(watch_wakes_on_commit)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store *other = NULL;
    CHECK_EQ_INT(store_open(store_url, NULL, &other), 0);
    CHECK_EQ_INT(store_watch(other, on_watch, NULL), 0);
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL); /* listening (and the call after connecting) */
    int before = atomic_load(&watch_calls);
    new_tenant(tenant, "watch");
    CHECK_EQ_INT(submit(tenant, id, 3, "w%d"), 0);
    for (int i = 0; i < 100 && atomic_load(&watch_calls) == before && store_shared(st); i++) {
        struct timespec t = {0, 20000000};
        nanosleep(&t, NULL);
    }
    if (store_shared(st))
        CHECK(atomic_load(&watch_calls) > before);
    else
        CHECK_EQ_INT(atomic_load(&watch_calls), 0);
    CHECK_EQ_INT(store_watch(other, NULL, NULL), 0);
    int after = atomic_load(&watch_calls);
    CHECK_EQ_INT(submit(tenant, id, 1, "x%d"), 0);
    nanosleep(&ts, NULL);
    CHECK_EQ_INT(atomic_load(&watch_calls), after); /* stopped: no more calls */
    store_close(other);
    drain();
}

/* A claim that finds a fresh job's runnable row held by another node's first claim
 * waits for that claim and takes the next range, rather than leaving the job to the
 * other node until its next poll. The other claim is held open inside its gate. */
struct held_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, go;
};

static size_t held_admit(void *ctx, const struct store_job *job, size_t want)
{
    struct held_gate *g = ctx;
    (void)job;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->go)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return want;
}

struct claimer {
    struct store *s;
    const struct store_claim_gate *gate;
    struct store_claim c;
    int rc;
    int max_active_jobs;
};

static void *claimer_main(void *arg)
{
    struct claimer *k = arg;
    struct store_claim_opts o = {5, 60000, 3, k->max_active_jobs, k->gate};
    k->rc = store_claim(k->s, &o, &k->c);
    return NULL;
}

/* Runs claim a until it is inside its gate (its transaction open, its job's runnable
 * row held), then claim b for 300 ms, then lets a go; both have ended on return. */
static void claim_while_held(struct claimer *a, struct claimer *b)
{
    struct held_gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    struct store_claim_gate gate = {held_admit, &g};
    pthread_t ta, tb;
    a->gate = &gate;
    pthread_create(&ta, NULL, claimer_main, a);
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    pthread_create(&tb, NULL, claimer_main, b);
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL); /* b reaches what a holds */
    pthread_mutex_lock(&g.mu);
    g.go = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    a->gate = NULL;
}

TEST(claim_waits_for_a_first_claim_in_progress)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX];
    struct store *other = NULL;
    if (!store_shared(st))
        return; /* SQLite: one writer at a time; a second claim waits on the lock anyway */
    drain();
    CHECK_EQ_INT(store_open(store_url, NULL, &other), 0);
    new_tenant(tenant, "firstclaim");
    CHECK_EQ_INT(submit(tenant, id, 10, "f%d"), 0);
    /* a holds the job's runnable row, and the job is not started yet, while b claims
     * (the old check returned 0 at once) */
    struct claimer a = {st, NULL, {0}, -1, 0}, b = {other, NULL, {0}, -1, 0};
    claim_while_held(&a, &b);
    CHECK_EQ_INT(a.rc, 1);
    CHECK_EQ_INT(b.rc, 1);
    if (a.rc == 1 && b.rc == 1) {
        CHECK_EQ_STR(a.c.job_id, id);
        CHECK_EQ_STR(b.c.job_id, id);
        CHECK_EQ_INT((int)a.c.from, 0);
        CHECK_EQ_INT((int)b.c.from, 5);
        CHECK_EQ_INT(complete_all(&a.c, ITEM_SUCCEEDED), 0);
        CHECK_EQ_INT(complete_all(&b.c, ITEM_SUCCEEDED), 0);
    }
    store_claim_release(&a.c);
    store_claim_release(&b.c);
    store_close(other);
    drain();
}

/* Two nodes claiming at once for a tenant at most one of whose jobs may run: while one
 * claim starts a job (held open in its gate), the other must not start another one,
 * though it counts no running job yet; it waits and then goes on with the started one,
 * or takes nothing. */
TEST(claim_active_job_cap_two_claimers)
{
    char tenant[STORE_NAME_MAX], x[STORE_ID_MAX], y[STORE_ID_MAX];
    struct store *other = NULL;
    struct store_job j;
    if (!store_shared(st))
        return; /* SQLite: claims are one at a time anyway */
    drain();
    CHECK_EQ_INT(store_open(store_url, NULL, &other), 0);
    new_tenant(tenant, "capclaim");
    CHECK_EQ_INT(submit(tenant, x, 10, "x%d"), 0);
    CHECK_EQ_INT(submit(tenant, y, 10, "y%d"), 0);
    struct claimer a = {st, NULL, {0}, -1, 1}, b = {other, NULL, {0}, -1, 1};
    claim_while_held(&a, &b);
    CHECK_EQ_INT(a.rc, 1);
    CHECK(b.rc == 0 || b.rc == 1);
    if (a.rc == 1 && b.rc == 1)
        CHECK_EQ_STR(b.c.job_id, a.c.job_id);
    const char *idle = a.rc == 1 && strcmp(a.c.job_id, x) == 0 ? y : x;
    CHECK_EQ_INT(job_status(tenant, idle, &j), JOB_NOT_STARTED);
    store_job_release(&j);
    if (a.rc == 1)
        CHECK_EQ_INT(complete_all(&a.c, ITEM_SUCCEEDED), 0);
    if (b.rc == 1)
        CHECK_EQ_INT(complete_all(&b.c, ITEM_SUCCEEDED), 0);
    store_claim_release(&a.c);
    store_claim_release(&b.c);
    store_close(other);
    drain();
}

/* Jobs of two nodes upserting the same new documents at once (the batched path: a
 * plain INSERT when none exists yet, run again with ON CONFLICT when another writer
 * created one meanwhile): every write lands, each document's versions are 1..writes
 * with one "created", and nothing fails. */
#define RACE_WRITERS 4
#define RACE_REFS 50
#define RACE_ROUNDS 5
static atomic_int race_writes[RACE_ROUNDS][RACE_REFS];
static atomic_int race_created[RACE_ROUNDS][RACE_REFS];
static atomic_int race_versions[RACE_ROUNDS][RACE_REFS]; /* bit v: version v was reported */

struct race_writer {
    struct store *s;
    pthread_barrier_t *go;
    int round, errors;
};

static void *race_writer_main(void *arg)
{
    struct race_writer *w = arg;
    struct store_claim c;
    struct store_outcome o[RACE_REFS];
    struct store_doc_op ops[RACE_REFS];
    pthread_barrier_wait(w->go);
    while (claim(w->s, 100, 60000, 3, &c) == 1) {
        for (size_t i = 0; i < c.n; i++) {
            ops[i] = (struct store_doc_op){.op = STORE_OP_UPSERT, .collection = "race"};
            o[i] = (struct store_outcome){
                .index = c.items[i].index, .status = ITEM_SUCCEEDED, .ops = &ops[i], .nops = 1};
        }
        if (store_complete(w->s, &c, o, c.n, NULL, 0) < 0) {
            w->errors++;
        } else {
            for (size_t i = 0; i < c.n; i++) {
                int r = (int)c.items[i].index;
                atomic_fetch_add(&race_writes[w->round][r], 1);
                atomic_fetch_add(&race_created[w->round][r], ops[i].created);
                if (ops[i].version > 0 && ops[i].version < 31)
                    atomic_fetch_or(&race_versions[w->round][r], 1 << ops[i].version);
            }
        }
        store_claim_release(&c);
    }
    return NULL;
}

TEST(batched_upserts_race_on_new_documents)
{
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX], ref[32];
    struct store *other = NULL;
    struct store_doc d;
    drain();
    CHECK_EQ_INT(store_open(store_url, NULL, &other), 0);
    new_tenant(tenant, "uprace");
    for (int round = 0; round < RACE_ROUNDS; round++) {
        char fmt[24];
        snprintf(fmt, sizeof fmt, "r%d-%%d", round);
        for (int k = 0; k < RACE_WRITERS; k++)
            CHECK_EQ_INT(submit(tenant, id, RACE_REFS, fmt), 0);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, RACE_WRITERS);
        struct race_writer w[RACE_WRITERS];
        pthread_t th[RACE_WRITERS];
        for (int k = 0; k < RACE_WRITERS; k++) {
            w[k] = (struct race_writer){k % 2 ? other : st, &go, round, 0};
            pthread_create(&th[k], NULL, race_writer_main, &w[k]);
        }
        for (int k = 0; k < RACE_WRITERS; k++) {
            pthread_join(th[k], NULL);
            CHECK_EQ_INT(w[k].errors, 0);
        }
        pthread_barrier_destroy(&go);
        for (int r = 0; r < RACE_REFS; r++) {
            CHECK_EQ_INT(atomic_load(&race_writes[round][r]), RACE_WRITERS);
            CHECK_EQ_INT(atomic_load(&race_created[round][r]), 1);
            CHECK_EQ_INT(atomic_load(&race_versions[round][r]), ((1 << RACE_WRITERS) - 1) << 1);
            snprintf(ref, sizeof ref, fmt, r);
            CHECK_EQ_INT(store_doc_get(st, tenant, "race", ref, &d), 1);
            CHECK_EQ_INT(d.version, RACE_WRITERS);
            store_doc_release(&d);
        }
    }
    store_close(other);
}

/* Two handles (two nodes) claiming and completing at once never hold the same item. */
#define NODES_N 10000
static char nodes_job[STORE_ID_MAX];
static atomic_int nodes_seen[NODES_N];

struct node_worker {
    struct store *s;
    int errors;
};

static void *node_worker_main(void *arg)
{
    struct node_worker *w = arg;
    struct store_claim c;
    struct store_outcome *o = calloc(100, sizeof *o);
    int idle = 0;
    while (idle < 30) {
        int rc = claim(w->s, 100, 60000, 3, &c);
        if (rc < 0) {
            w->errors++;
            break;
        }
        if (rc == 0) {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
            idle++;
            continue;
        }
        idle = 0;
        for (size_t i = 0; i < c.n; i++) {
            if (strcmp(c.job_id, nodes_job) == 0)
                atomic_fetch_add(&nodes_seen[c.items[i].index], 1);
            o[i] = (struct store_outcome){.index = c.items[i].index, .status = ITEM_SUCCEEDED};
        }
        if (store_complete(w->s, &c, o, c.n, NULL, 0) < 0)
            w->errors++;
        store_claim_release(&c);
    }
    free(o);
    return NULL;
}

TEST(two_nodes_claims_never_overlap)
{
    char tenant[STORE_NAME_MAX];
    struct store *other = NULL;
    struct store_job j;
    pthread_t th[4];
    struct node_worker w[4];
    drain();
    CHECK_EQ_INT(store_open(store_url, NULL, &other), 0);
    new_tenant(tenant, "nodes");
    CHECK_EQ_INT(submit(tenant, nodes_job, NODES_N, "n%d"), 0);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct node_worker){i % 2 ? other : st, 0};
        pthread_create(&th[i], NULL, node_worker_main, &w[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(w[i].errors, 0);
    for (int i = 0; i < NODES_N; i++)
        if (atomic_load(&nodes_seen[i]) != 1)
            TH_FAIL("item %d claimed %d times", i, atomic_load(&nodes_seen[i]));
    CHECK_EQ_INT(job_status(tenant, nodes_job, &j), JOB_SUCCEEDED);
    CHECK_EQ_INT(j.counts.succeeded, NODES_N);
    CHECK_EQ_INT(j.counts.pending + j.counts.processing, 0);
    store_job_release(&j);
    store_close(other);
}

/* ---- item data round trips ------------------------------------------------------ */

/* Item i's data: product-like JSON of 40 to 400 bytes (items of one job share their
 * shape, as SQLite's compression expects, zdata.c), or short, or none. */
static char *item_data(int i)
{
    char *d = malloc(600);
    if (i % 50 == 7) {
        snprintf(d, 600, "{\"i\":%d}", i); /* too short to compress */
        return d;
    }
    int n = snprintf(d, 600,
                     "{\"sku\":\"SKU-%07d\",\"title\":\"Product %d \\u00e9t\u00e9\","
                     "\"price\":{\"amount\":%d,\"currency\":\"EUR\"},\"tags\":[",
                     i, i, i * 37 % 100000);
    for (int k = 0; k < i % 23; k++)
        n += snprintf(d + n, 600 - (size_t)n, "%s\"tag-%d\"", k ? "," : "", (i * 7 + k) % 31);
    snprintf(d + n, 600 - (size_t)n, "]}");
    return d;
}

/* Claims the n items of jobs a and b (NULL: a alone) and checks that each one's data
 * is item_data(its index) (a retry of all the items keeps their indexes). */
static void claim_check_data(const char *a, const char *b, int n, int status)
{
    struct store_claim c;
    int got = 0;
    while (got < n && claim(st, 64, 60000, 0, &c) == 1) {
        CHECK(!strcmp(c.job_id, a) || (b && !strcmp(c.job_id, b)));
        for (size_t k = 0; k < c.n; k++) {
            char *want = item_data((int)c.items[k].index);
            CHECK_EQ_STR(c.items[k].data, want);
            CHECK(c.items[k].data_len == strlen(want));
            free(want);
        }
        got += (int)c.n;
        complete_all(&c, status);
        store_claim_release(&c);
    }
    CHECK_EQ_INT(got, n);
}

/* Submits job id of tenant with items item_data(0..n) (refs r0, r1, ...), uploaded in
 * two parts (the first too small to start SQLite's dictionary). */
static void submit_data(const char *tenant, char id[STORE_ID_MAX], int n)
{
    struct store_new_item *items = calloc((size_t)n, sizeof *items);
    char **data = calloc((size_t)n, sizeof *data);
    char(*refs)[16] = calloc((size_t)n, 16);
    new_job_id(id);
    CHECK_EQ_INT(store_job_begin(st, tenant, id), 0);
    for (int i = 0; i < n; i++) {
        data[i] = item_data(i);
        snprintf(refs[i], 16, "r%d", i);
        items[i] = new_item(i, refs[i], data[i]);
    }
    CHECK_EQ_INT(store_job_add_items(st, id, items, 10), 0);
    CHECK_EQ_INT(store_job_add_items(st, id, items + 10, (size_t)n - 10), 0);
    CHECK_EQ_INT(store_job_commit(st, id, &(struct store_job_meta){.workflow = "wf"}, n, NULL), 1);
    for (int i = 0; i < n; i++)
        free(data[i]);
    free(data);
    free(items);
    free(refs);
}

/* What a job's items hold is what was submitted, through every reader and the copies
 * of a retry, on every backend (the embedded one compresses it: zdata.c). */
TEST(item_data_round_trips)
{
    enum { N = 300 };
    char tenant[STORE_NAME_MAX], id[STORE_ID_MAX], rid[STORE_ID_MAX], sid[STORE_ID_MAX];
    char staged[STORE_ID_MAX];
    char *data[N];
    drain();
    new_tenant(tenant, "data");
    submit_data(tenant, id, N);
    for (int i = 0; i < N; i++)
        data[i] = item_data(i);
    /* readers before any claim: one item, and a page of them with data */
    struct store_item it;
    CHECK_EQ_INT(store_item_get(st, tenant, id, 123, &it), 1);
    CHECK_EQ_STR(it.data, data[123]);
    store_item_release(&it);
    struct store_item *list;
    size_t n;
    CHECK_EQ_INT(store_item_list(st, tenant, id, NULL, -1, N, 1, &list, &n), 1);
    CHECK_EQ_INT((int)n, N);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_STR(list[i].data, data[i]);
    store_items_free(list, n);
    claim_check_data(id, NULL, N, ITEM_FAILED);
    /* a retry copies the items, and a staged one too: both read the same */
    new_job_id(rid);
    CHECK_EQ_INT(store_job_retry(st, tenant, id, rid, NULL, NULL), 1);
    new_job_id(sid);
    CHECK_EQ_INT(store_job_retry_begin(st, tenant, id, sid, NULL, NULL), 1);
    while (store_job_retry_stage(st, 100, NULL, staged) == STORE_STAGE_ADVANCED)
        ;
    /* ... also once the parent is gone */
    CHECK_EQ_INT(store_job_delete(st, tenant, id), 1);
    CHECK_EQ_INT(store_item_get(st, tenant, rid, 250, &it), 1);
    CHECK_EQ_STR(it.data, data[250]);
    store_item_release(&it);
    claim_check_data(rid, sid, 2 * N, ITEM_SUCCEEDED);
    CHECK_EQ_INT(store_job_delete(st, tenant, rid), 1);
    CHECK_EQ_INT(store_job_delete(st, tenant, sid), 1);
    for (int i = 0; i < N; i++)
        free(data[i]);
}

/* Claims all of job id and completes each item with op (data NULL: the item's own). */
static void complete_with_op(const char *id, int n, enum store_op op, const char *data)
{
    struct store_claim c;
    int got = 0;
    while (got < n && claim(st, 100, 60000, 0, &c) == 1) {
        CHECK_EQ_STR(c.job_id, id);
        struct store_outcome *o = calloc(c.n, sizeof *o);
        struct store_doc_op *ops = calloc(c.n, sizeof *ops);
        for (size_t k = 0; k < c.n; k++) {
            ops[k] = (struct store_doc_op){.op = op,
                                           .collection = "products",
                                           .data = data,
                                           .data_len = data ? strlen(data) : 0,
                                           .step = "save"};
            o[k] = (struct store_outcome){
                .index = c.items[k].index, .status = ITEM_SUCCEEDED, .ops = &ops[k], .nops = 1};
        }
        CHECK_EQ_INT(store_complete(st, &c, o, c.n, NULL, 0), 0);
        for (size_t k = 0; k < c.n; k++)
            CHECK_EQ_INT(o[k].status, ITEM_SUCCEEDED);
        got += (int)c.n;
        free(o);
        free(ops);
        store_claim_release(&c);
    }
    CHECK_EQ_INT(got, n);
}

/* What documents hold is what was written: from a job's items, merged by a patch,
 * written alone, listed, and after the jobs are gone (SQLite compresses documents
 * against a dictionary of their collection: zdata.c). */
TEST(doc_data_round_trips)
{
    enum { N = 200 };
    char tenant[STORE_NAME_MAX], a[STORE_ID_MAX], b[STORE_ID_MAX], ref[16];
    struct store_doc d;
    drain();
    new_tenant(tenant, "docdata");
    submit_data(tenant, a, N);
    complete_with_op(a, N, STORE_OP_UPSERT, NULL);
    /* each as the item held it: the first claim's documents were compressed inside its
     * transaction (which gave the collection its dictionary), the second's before it
     * (sq_zdoc_prepack) */
    for (int i = 0; i < N; i++) {
        snprintf(ref, sizeof ref, "r%d", i);
        CHECK_EQ_INT(store_doc_get(st, tenant, "products", ref, &d), 1);
        char *want = item_data(i);
        CHECK_EQ_STR(d.data, want);
        free(want);
        store_doc_release(&d);
    }
    submit_data(tenant, b, N);
    complete_with_op(b, N, STORE_OP_PATCH, "{\"stock\":7,\"tags\":null}");
    /* written alone: an upsert and a patch of one document */
    char *one = item_data(1000);
    int created = 0;
    CHECK_EQ_INT(store_doc_write(st, tenant, "products", "solo", STORE_OP_UPSERT, one, strlen(one),
                                 -1, &d, &created),
                 0);
    CHECK_EQ_INT(created, 1);
    store_doc_release(&d);
    CHECK_EQ_INT(store_job_delete(st, tenant, a), 1);
    CHECK_EQ_INT(store_job_delete(st, tenant, b), 1);
    CHECK_EQ_INT(store_doc_get(st, tenant, "products", "solo", &d), 1);
    CHECK_EQ_STR(d.data, one);
    store_doc_release(&d);
    free(one);
    for (int i = 0; i < N; i += 37) {
        snprintf(ref, sizeof ref, "r%d", i);
        CHECK_EQ_INT(store_doc_get(st, tenant, "products", ref, &d), 1);
        char *want = item_data(i);
        /* the patch set "stock" and removed "tags"; the rest is the item's */
        CHECK(strstr(d.data, "\"stock\":7") != NULL);
        CHECK(strstr(d.data, "\"tags\"") == NULL);
        CHECK(i % 50 == 7 || strstr(d.data, "\"currency\":\"EUR\"") != NULL);
        CHECK_EQ_INT((int)d.version, 2);
        free(want);
        store_doc_release(&d);
    }
    /* listed: every document once, in ref order */
    struct store_doc *list;
    size_t n, total = 0;
    const char *after = NULL;
    char last[32] = "";
    do {
        CHECK_EQ_INT(store_doc_list(st, tenant, "products", after, 64, &list, &n), 0);
        for (size_t k = 0; k < n; k++)
            CHECK(strstr(list[k].data, "\"sku\"") != NULL || strstr(list[k].data, "\"i\"") != NULL);
        total += n;
        if (n)
            snprintf(last, sizeof last, "%s", list[n - 1].ref);
        store_docs_free(list, n);
        after = last;
    } while (n == 64);
    CHECK_EQ_INT((int)total, N + 1);
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
    snprintf(store_url, sizeof store_url, "%s", url);
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
    RUN(claim_fair_tenants);
    RUN(claim_tenant_weight);
    RUN(claim_priority);
    RUN(claim_same_ref_order);
    RUN(claim_ref_order_across_jobs);
    RUN(claim_ref_order_parks);
    RUN(claim_ref_order_unparks_every_item);
    RUN(claim_ref_order_opt_in_only);
    RUN(lease_expiry_takeover);
    RUN(expire_claims_retakes_at_once);
    RUN(tenant_load_counts_open_work);
    RUN(release_gives_back);
    RUN(completion_counts_and_outcomes);
    RUN(completion_out_of_order_first_wins);
    RUN(completion_doc_ops);
    RUN(cancel_not_started);
    RUN(cancel_running);
    RUN(delete_job);
    RUN(item_list_filters_paging);
    RUN(docs_write_if_match_tombstones_list);
    RUN(docs_size_limit);
    RUN(docs_create_only_race);
    RUN(completion_multi_ops);
    RUN(step_counts);
    RUN(job_commit_idem_key);
    RUN(job_retry);
    RUN(job_retry_staged);
    RUN(job_retry_stage_takes_turns);
    RUN(claim_gate_shortens_and_passes_over);
    RUN(claim_active_job_cap);
    RUN(limits_crud);
    RUN(secrets_crud);
    RUN(item_list_filters_step_code);
    RUN(workflows_versions_delete_list);
    RUN(hooks_global_names);
    RUN(defs_argument_rules);
    RUN(idem_hash_replay_reuse_expiry);
    RUN(retry_idem_key);
    RUN(item_data_round_trips);
    RUN(doc_data_round_trips);
    RUN(retention_sweep_batches);
    RUN(outbox_with_terminal_transition);
    RUN(outbox_claim_record);
    RUN(outbox_abandon);
    RUN(callback_formats_and_prefs);
    RUN(stats);
    RUN(buckets_and_sems);
    RUN(silent_node_loses_leases);
    RUN(watch_wakes_on_commit);
    RUN(claim_waits_for_a_first_claim_in_progress);
    RUN(claim_active_job_cap_two_claimers);
    RUN(batched_upserts_race_on_new_documents);
    RUN(two_nodes_claims_never_overlap);
    RUN(concurrent_claim_complete);
    RUN(throughput_upsert);
    store_close(st);
    if (tmpdir[0])
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_report();
}
