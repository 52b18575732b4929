/* docs.c - documents in the embedded backend: sq_doc_apply, the one path that changes
 * a document (store_doc_write here, the doc ops of store_complete in claims.c), and
 * reading them. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sqlite_int.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* ---- documents ------------------------------------------------------------------- */

SQ_SQL(sql_doc_get, "SELECT data, version, deleted, updated_at, job_id, item_index FROM docs "
                    "WHERE tenant = ?1 AND collection = ?2 AND ref = ?3");
SQ_SQL(sql_doc_put, "INSERT INTO docs(tenant, collection, ref, data, version, deleted, updated_at, "
                    "job_id, item_index) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                    "ON CONFLICT(tenant, collection, ref) DO UPDATE SET data = excluded.data, "
                    "version = excluded.version, deleted = excluded.deleted, "
                    "updated_at = excluded.updated_at, job_id = excluded.job_id, "
                    "item_index = excluded.item_index");

/* Applies one document change: the single code path for store_doc_write and the doc
 * ops of store_complete. 0 applied ([out] w), -SLUICE_E_DOCUMENT_NOT_FOUND,
 * -SLUICE_E_INVALID_DATA, -SLUICE_E_PRECONDITION_FAILED or a store error. */
int sq_doc_apply(void *conn, const char *tenant, const char *coll, const char *ref, size_t ref_len,
                 enum store_op op, const char *data, size_t data_len, int64_t if_match,
                 const char *job_id, int64_t item_index, int64_t now, struct rules_doc_result *w)
{
    struct sq_conn *c = conn;
    sqlite3_stmt *s;
    int64_t version = 0;
    int live = 0;
    char *cur = NULL; /* the live document a patch merges into */
    size_t cur_len = 0;
    int rc = sq_q(c, &sql_doc_get, &s);
    if (rc < 0)
        goto out;
    sq_bind_str(s, 1, tenant);
    sq_bind_str(s, 2, coll);
    sq_bind_strn(s, 3, ref, ref_len);
    if ((rc = sq_step(s)) < 0)
        goto out;
    if (rc == 1) {
        version = sqlite3_column_int64(s, 1);
        live = sqlite3_column_int(s, 2) == 0;
    }
    rc = -SLUICE_E_PRECONDITION_FAILED;
    if (if_match >= 0 && if_match != (live ? version : 0))
        goto out;
    memset(w, 0, sizeof *w);
    if (op == STORE_OP_PATCH && live &&
        (rc = sq_zdoc_col(c, s, 0, tenant, coll, &cur, &cur_len)) < 0)
        goto out;
    if ((rc = rules_doc_change(op, data, data_len, live, cur, cur_len, &c->tmp, c->max_doc_bytes,
                               w)) < 0)
        goto out;
    sqlite3_reset(s);
    w->version = version + 1;
    w->created = !live && op == STORE_OP_UPSERT;
    w->updated_at = now;
    if ((rc = sq_q(c, &sql_doc_put, &s)) < 0)
        goto out;
    sq_bind_str(s, 1, tenant);
    sq_bind_str(s, 2, coll);
    sq_bind_strn(s, 3, ref, ref_len);
    if ((rc = sq_zdoc_bind(c, s, 4, tenant, coll, job_id, w->data, w->data_len)) < 0)
        goto out;
    sqlite3_bind_int64(s, 5, w->version);
    sqlite3_bind_int(s, 6, op == STORE_OP_DELETE);
    sqlite3_bind_int64(s, 7, now);
    sq_bind_str(s, 8, job_id ? job_id : "");
    sqlite3_bind_int64(s, 9, item_index);
    rc = sq_step(s);
    if (rc < 0)
        goto out;
    rc = 0;
out:
    free(cur);
    return rc;
}

static int doc_get_body(struct sq_conn *c, void *vctx)
{
    struct rules_docs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_doc_get, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->coll);
    sq_bind_str(s, 3, x->ref);
    rc = sq_step(s);
    if (rc <= 0 || sqlite3_column_int(s, 2) != 0) /* deleted: a tombstone reads as missing */
        return rc < 0 ? rc : 0;
    memset(x->out, 0, sizeof *x->out);
    if ((rc = sq_zdoc_col(c, s, 0, x->tenant, x->coll, &x->out->data, &x->out->data_len)) < 0)
        return rc;
    x->out->ref = xstrdup(x->ref);
    x->out->version = sqlite3_column_int64(s, 1);
    x->out->updated_at = sqlite3_column_int64(s, 3);
    sq_col_copy(s, 4, x->out->job_id, sizeof x->out->job_id);
    x->out->item_index = sqlite3_column_int64(s, 5);
    return 1;
}

int sq_doc_get(void *impl, const char *tenant, const char *collection, const char *ref,
               struct store_doc *out)
{
    struct rules_docs_ctx x = {.tenant = tenant, .coll = collection, .ref = ref, .out = out};
    return sq_run_tx(impl, TX_READ, doc_get_body, rules_docs_undo, &x);
}

static int doc_write_body(struct sq_conn *c, void *x)
{
    return rules_doc_write_body(sq_doc_apply, c, clock_now_ms(), x);
}

int sq_doc_write(void *impl, const char *tenant, const char *collection, const char *ref,
                 enum store_op op, const char *data, size_t data_len, int64_t if_match,
                 struct store_doc *out, int *created)
{
    struct rules_docs_ctx x;
    rules_doc_write_args(&x, tenant, collection, ref, op, data, data_len, if_match, out, created);
    return sq_run_tx(impl, TX_WRITE, doc_write_body, rules_docs_undo, &x);
}

SQ_SQL(sql_doc_list, "SELECT ref, data, version, updated_at, job_id, item_index FROM docs "
                     "WHERE tenant = ?1 AND collection = ?2 AND ref > ?3 AND deleted = 0 "
                     "ORDER BY ref LIMIT ?4");

static int doc_list_body(struct sq_conn *c, void *vctx)
{
    struct rules_docs_ctx *x = vctx;
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_doc_list, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, x->tenant);
    sq_bind_str(s, 2, x->coll);
    sq_bind_str(s, 3, x->after_ref ? x->after_ref : "");
    sqlite3_bind_int64(s, 4, (sqlite3_int64)x->limit);
    x->list = xcalloc(x->limit ? x->limit : 1, sizeof *x->list);
    x->n = 0;
    while (x->n < x->limit && (rc = sq_step(s)) == 1) {
        struct store_doc *d = &x->list[x->n++];
        d->ref = sq_col_dup(s, 0, NULL);
        /* the data first: reading a BLOB as text would change the type it reads as */
        char *data = NULL;
        size_t len = 0;
        if ((rc = sq_zdoc_col(c, s, 1, x->tenant, x->coll, &data, &len)) < 0)
            break;
        rules_doc_read(&sq_cols, s, 1, d); /* data, version, updated_at, job_id, item_index */
        free(d->data);
        d->data = data;
        d->data_len = len;
    }
    if (rc < 0) {
        store_docs_free(x->list, x->n);
        x->list = NULL;
        x->n = 0;
    }
    return rc < 0 ? rc : 0;
}

int sq_doc_list(void *impl, const char *tenant, const char *collection, const char *after_ref,
                size_t limit, struct store_doc **out, size_t *n)
{
    struct rules_docs_ctx x = {
        .tenant = tenant, .coll = collection, .after_ref = after_ref, .limit = limit};
    int rc = sq_run_tx(impl, TX_READ, doc_list_body, rules_docs_undo, &x);
    return rules_docs_list_done(&x, rc, out, n);
}
