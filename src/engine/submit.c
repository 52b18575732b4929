/* submit.c - staging streamed items into the store in batches; see submit.h. */
#include "engine/submit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/limits.h"
#include "engine/wfload.h"
#include "spec/workflow.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* Open-addressing map: ref hash -> last index with that hash. Key 0 marks empty, so
 * a real hash of 0 is stored as 1 (one more harmless collision). */
struct refmap {
    uint64_t *keys;
    int64_t *vals;
    size_t cap, n;
};

struct staged {
    int64_t index;
    size_t ref_off, ref_len;
    size_t data_off, data_len; /* data_off == SIZE_MAX: no data */
    int64_t prev_idx;
};

struct submit {
    struct store *st;
    char tenant[STORE_NAME_MAX];
    char job_id[STORE_ID_MAX];
    char *workflow;
    int64_t wf_version; /* stored definitions: the version this job runs; 0 for built-ins */
    char *uses;         /* the limits its items consume (limits_uses_of), or NULL */
    int ref_order;      /* enum store_ref_order of that version */
    char *client_ref;
    char *idem_key;
    char *op_key;       /* "op:<id>" when the id was chosen by the client */
    char *public_id;    /* the client's job id, or NULL */
    char *callback_url; /* completion callback, or NULL */
    int callback_events;
    int callback_format;
    int priority;       /* STORE_PRIORITY_MIN..MAX */
    char body_hash[65]; /* "" = not set */
    size_t batch_items;
    struct staged *batch;
    size_t nbatch;
    struct buf bytes; /* refs and data of the staged batch */
    struct store_new_item *items;
    struct refmap refs;
    int64_t count;
    int begun, committed;
};

static int64_t refmap_swap(struct refmap *m, uint64_t h, int64_t idx);

static void refmap_grow(struct refmap *m)
{
    struct refmap old = *m;
    m->cap = old.cap ? old.cap * 2 : 1024;
    m->keys = xcalloc(m->cap, sizeof *m->keys);
    m->vals = xmalloc(m->cap * sizeof *m->vals);
    m->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i])
            refmap_swap(m, old.keys[i], old.vals[i]);
    free(old.keys);
    free(old.vals);
}

/* Stores idx under h; returns the previous index under h, or -1. */
static int64_t refmap_swap(struct refmap *m, uint64_t h, int64_t idx)
{
    if ((m->n + 1) * 10 >= m->cap * 7)
        refmap_grow(m);
    if (h == 0)
        h = 1;
    size_t i = (size_t)(h & (m->cap - 1));
    while (m->keys[i] && m->keys[i] != h)
        i = (i + 1) & (m->cap - 1);
    int64_t prev = -1;
    if (m->keys[i]) {
        prev = m->vals[i];
    } else {
        m->keys[i] = h;
        m->n++;
    }
    m->vals[i] = idx;
    return prev;
}

struct submit *submit_new(struct store *st, const char *tenant, size_t batch_items)
{
    struct submit *s = xcalloc(1, sizeof *s);
    s->st = st;
    snprintf(s->tenant, sizeof s->tenant, "%s", tenant);
    s->batch_items = batch_items ? batch_items : 5000;
    s->batch = xmalloc(s->batch_items * sizeof *s->batch);
    s->items = xmalloc(s->batch_items * sizeof *s->items);
    buf_init(&s->bytes);
    return s;
}

int submit_set_workflow(struct submit *s, const char *workflow)
{
    struct wfdef *w = NULL;
    int64_t version = 0;
    int ref_order = STORE_REF_ORDER_JOB;
    if (wfdef_builtin(workflow, &w) == 0) {
        wfdef_free(w);
    } else {
        /* The latest version now is the one the job keeps, whatever is written later;
         * what it consumes is fixed with it. */
        int rc = wfload(s->st, s->tenant, workflow, 0, &w);
        if (rc < 0)
            return rc;
        struct buf uses = BUF_INIT;
        limits_uses_of(w, &uses);
        version = w->version;
        ref_order = w->ref_order; /* the order comes with the version too */
        wfdef_free(w);
        free(s->uses);
        s->uses = uses.len ? buf_detach(&uses, NULL) : NULL;
        buf_release(&uses);
    }
    free(s->workflow);
    s->workflow = xstrdup(workflow);
    s->wf_version = version;
    s->ref_order = ref_order;
    return 0;
}

void submit_set_idem_key(struct submit *s, const char *key)
{
    free(s->idem_key);
    s->idem_key = xstrdup(key);
}

void submit_set_body_hash(struct submit *s, const char hash_hex[65])
{
    snprintf(s->body_hash, sizeof s->body_hash, "%s", hash_hex);
}

int submit_set_job_id(struct submit *s, const char *id)
{
    if (!ids_job_id_valid(id))
        return -SLUICE_E_INVALID_PARAMETER;
    free(s->public_id);
    free(s->op_key);
    s->public_id = xstrdup(id);
    s->op_key = xasprintf("op:%s", id);
    return 0;
}

void submit_set_callback(struct submit *s, const char *url, int events, int format)
{
    free(s->callback_url);
    s->callback_url = url ? xstrdup(url) : NULL;
    s->callback_events = events;
    s->callback_format = format;
}

void submit_set_priority(struct submit *s, int priority)
{
    s->priority = priority;
}

const char *submit_idem_key(const struct submit *s)
{
    return s->idem_key ? s->idem_key : s->op_key;
}

int submit_set_client_reference(struct submit *s, const char *ref)
{
    size_t n = strlen(ref);
    if (n == 0 || n > 256)
        return -SLUICE_E_INVALID_FIELD;
    free(s->client_ref);
    s->client_ref = xstrdup(ref);
    return 0;
}

/* A store that cannot write (a full disk, an I/O error) refuses the submit with 503:
 * the operator reads why in the log too, not only the client. Returns rc. */
static int refused(const struct submit *s, int rc)
{
    if (rc == -SLUICE_E_STORE_FULL || rc == -SLUICE_E_STORE_IO)
        log_write(LOG_WARN, "submit refused: the store cannot write", "job", s->job_id, "error",
                  sluice_err_code(rc), NULL);
    return rc;
}

static int flush(struct submit *s)
{
    int rc;
    if (s->nbatch == 0)
        return 0;
    if (!s->begun) {
        if ((rc = ids_job_new(s->job_id)) < 0)
            return rc;
        if ((rc = store_job_begin(s->st, s->tenant, s->job_id)) < 0)
            return refused(s, rc);
        s->begun = 1;
    }
    for (size_t i = 0; i < s->nbatch; i++) {
        const struct staged *g = &s->batch[i];
        struct store_new_item *it = &s->items[i];
        it->index = g->index;
        it->ref = s->bytes.data + g->ref_off;
        it->ref_len = g->ref_len;
        it->data = g->data_off == SIZE_MAX ? NULL : s->bytes.data + g->data_off;
        it->data_len = g->data_len;
        it->prev_idx = g->prev_idx;
    }
    rc = store_job_add_items(s->st, s->job_id, s->items, s->nbatch);
    s->nbatch = 0;
    buf_reset(&s->bytes);
    return rc < 0 ? refused(s, rc) : 0;
}

int submit_add(struct submit *s, int64_t index, const char *ref, size_t ref_len, const char *data,
               size_t data_len)
{
    struct staged *g = &s->batch[s->nbatch++];
    g->index = index;
    g->ref_off = s->bytes.len;
    g->ref_len = ref_len;
    buf_append(&s->bytes, ref, ref_len);
    buf_putc(&s->bytes, '\0');
    if (data) {
        g->data_off = s->bytes.len;
        g->data_len = data_len;
        buf_append(&s->bytes, data, data_len);
        buf_putc(&s->bytes, '\0');
    } else {
        g->data_off = SIZE_MAX;
        g->data_len = 0;
    }
    g->prev_idx = refmap_swap(&s->refs, ids_hash64(ref, ref_len), index);
    s->count++;
    /* Flush on count, or when the staged bytes grow large (big items). */
    if (s->nbatch == s->batch_items || s->bytes.len >= SUBMIT_BATCH_BYTES)
        return flush(s);
    return 0;
}

int submit_commit(struct submit *s, struct store_job *job)
{
    int rc;
    if (!s->workflow)
        return -SLUICE_E_INVALID_FIELD;
    if (s->count == 0)
        return -SLUICE_E_EMPTY_JOB;
    if ((rc = flush(s)) < 0)
        return rc;
    /* The staged rows carry a random id: a client's id is only taken at commit, so a
     * replay of it never collides with the job it names while staging. */
    struct store_job_meta meta = {
        .workflow = s->workflow,
        .workflow_version = s->wf_version,
        .client_reference = s->client_ref,
        .idem_key = submit_idem_key(s),
        .body_hash = s->body_hash[0] ? s->body_hash : NULL,
        .idem_not_before = clock_now_ms() - SUBMIT_IDEM_TTL_MS,
        .job_id = s->public_id,
        .callback_url = s->callback_url,
        .callback_events = s->callback_events,
        .callback_format = s->callback_format,
        .priority = s->priority,
        .uses = s->uses,
        .ref_order = s->ref_order,
    };
    rc = store_job_commit(s->st, s->job_id, &meta, s->count, job);
    if (rc < 0)
        return refused(s, rc);
    s->committed = 1; /* a replay (STORE_JOB_REPLAYED) already removed the staged rows */
    return rc;
}

int64_t submit_count(const struct submit *s)
{
    return s->count;
}

/* Staged jobs whose abort failed, by store: retried by submit_retry_aborts. */
struct owed_abort {
    struct store *st;
    char job_id[STORE_ID_MAX];
};
static pthread_mutex_t owed_mu = PTHREAD_MUTEX_INITIALIZER;
static struct owed_abort *owed;
static size_t nowed;

static void owe_abort(struct store *st, const char *job_id)
{
    pthread_mutex_lock(&owed_mu);
    if (!owed)
        owed = xcalloc(SUBMIT_ABORTS_MAX, sizeof *owed);
    if (nowed < SUBMIT_ABORTS_MAX) {
        owed[nowed].st = st;
        snprintf(owed[nowed].job_id, sizeof owed[nowed].job_id, "%s", job_id);
        nowed++;
    }
    pthread_mutex_unlock(&owed_mu);
}

size_t submit_retry_aborts(struct store *st)
{
    size_t left = 0;
    pthread_mutex_lock(&owed_mu); /* aborts are rare and short: held across the calls */
    for (size_t i = 0; i < nowed;) {
        if (owed[i].st == st && store_job_abort(st, owed[i].job_id) >= 0) {
            owed[i] = owed[--nowed];
            continue;
        }
        left += owed[i].st == st;
        i++;
    }
    pthread_mutex_unlock(&owed_mu);
    return left;
}

void submit_free(struct submit *s)
{
    if (!s)
        return;
    if (s->begun && !s->committed && store_job_abort(s->st, s->job_id) < 0) {
        log_write(LOG_WARN, "cannot delete the staged rows of a failed submit; retrying later",
                  "job", s->job_id, NULL);
        owe_abort(s->st, s->job_id);
    }
    free(s->workflow);
    free(s->uses);
    free(s->client_ref);
    free(s->idem_key);
    free(s->op_key);
    free(s->public_id);
    free(s->callback_url);
    free(s->batch);
    free(s->items);
    free(s->refs.keys);
    free(s->refs.vals);
    buf_release(&s->bytes);
    free(s);
}
