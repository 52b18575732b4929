/* docs.c - the PostgreSQL backend's documents: pg_doc_apply (the one place a document
 * changes, for store_doc_write and the doc ops of store_complete) and doc get/write/list.
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <string.h>

#include "store/postgres/pg_int.h"
#include "util/buf.h"
#include "util/errors.h"
#include "util/xmalloc.h"

/* ---- documents ------------------------------------------------------------------- */

/* Applies one document change (the code path of store_doc_write and of the doc ops of
 * store_complete). An upsert without If-Match is one statement whose version is
 * relative (version + 1 under the row lock), so concurrent writers on several nodes
 * never apply the same version twice; the other changes read the row FOR UPDATE
 * first. 0 applied ([out] w), -SLUICE_E_DOCUMENT_NOT_FOUND, -SLUICE_E_INVALID_DATA,
 * -SLUICE_E_PRECONDITION_FAILED or a store error. */
int pg_doc_apply(void *conn, const char *tenant, const char *coll, const char *ref, size_t ref_len,
                 enum store_op op, const char *data, size_t data_len, int64_t if_match,
                 const char *job_id, int64_t item_index, int64_t now, struct rules_doc_result *w)
{
    struct conn *c = conn;
    PGresult *res = NULL;
    int64_t version = 0;
    int live = 0, rc;
    memset(w, 0, sizeof *w);
    if (op != STORE_OP_UPSERT || if_match >= 0) {
        struct pg_params p = {0};
        pg_param_str(&p, tenant);
        pg_param_str(&p, coll);
        pg_param_strn(&p, ref, ref_len);
        rc =
            pg_exec(c,
                    "SELECT data, version, deleted FROM docs WHERE tenant = $1 AND collection = $2 "
                    "AND ref = $3::text FOR UPDATE",
                    &p, &res);
        if (rc < 0)
            goto out;
        if (rc > 0) {
            version = pg_col_i64(res, 0, 1);
            live = pg_col_i64(res, 0, 2) == 0;
        }
        rc = -SLUICE_E_PRECONDITION_FAILED;
        if (if_match >= 0 && if_match != (live ? version : 0))
            goto out;
    }
    const char *cur =
        op == STORE_OP_PATCH && live && !pg_col_isnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : NULL;
    size_t cur_len = cur ? (size_t)PQgetlength(res, 0, 0) : 0;
    if ((rc = rules_doc_change(op, data, data_len, live, cur, cur_len, &c->tmp, c->max_doc_bytes,
                               w)) < 0)
        goto out;
    PQclear(res);
    res = NULL;
    struct pg_params q = {0};
    pg_param_str(&q, tenant);
    pg_param_str(&q, coll);
    pg_param_strn(&q, ref, ref_len);
    pg_param_strn(&q, w->data, w->data_len);
    pg_param_i64(&q, op == STORE_OP_DELETE);
    pg_param_i64(&q, now);
    pg_param_str(&q, job_id ? job_id : "");
    pg_param_i64(&q, item_index);
    rc = pg_exec(
        c,
        "INSERT INTO docs AS d (tenant, collection, ref, data, version, deleted, "
        "prev_deleted, updated_at, job_id, item_index) VALUES($1, $2, $3::text, $4::text, 1, "
        "$5, 1, $6, $7, $8) ON CONFLICT (tenant, collection, ref) DO UPDATE SET "
        "data = excluded.data, version = d.version + 1, deleted = excluded.deleted, "
        "prev_deleted = d.deleted, updated_at = excluded.updated_at, "
        "job_id = excluded.job_id, item_index = excluded.item_index "
        "RETURNING version, prev_deleted",
        &q, &res);
    if (rc < 0)
        goto out;
    w->version = pg_col_i64(res, 0, 0);
    w->created = op == STORE_OP_UPSERT && pg_col_i64(res, 0, 1) != 0;
    w->updated_at = now;
    rc = 0;
    if (if_match >= 0 && w->version != version + 1)
        rc = -SLUICE_E_PRECONDITION_FAILED; /* created meanwhile by another writer */
out:
    PQclear(res);
    return rc;
}

/* d's data, version, updated_at, job_id and item_index from row `row` at first. */
static void read_doc(const PGresult *r, int row, int first, struct store_doc *d)
{
    const struct pg_row at = {r, row};
    rules_doc_read(&pg_cols, &at, first, d);
}

static int doc_get_body(struct conn *c, void *vctx)
{
    struct rules_docs_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->coll);
    pg_param_str(&p, x->ref);
    int rc =
        pg_exec(c,
                "SELECT data, version, updated_at, job_id, item_index FROM docs WHERE tenant = $1 "
                "AND collection = $2 AND ref = $3 AND deleted = 0",
                &p, &r);
    if (rc <= 0)
        return rc;
    x->out->ref = xstrdup(x->ref);
    read_doc(r, 0, 0, x->out);
    PQclear(r);
    return 1;
}

int pg_doc_get(void *impl, const char *tenant, const char *collection, const char *ref,
               struct store_doc *out)
{
    struct rules_docs_ctx x = {.tenant = tenant, .coll = collection, .ref = ref, .out = out};
    memset(out, 0, sizeof *out);
    return pg_run_tx(impl, doc_get_body, rules_docs_undo, &x);
}

/* At the transaction's time (c->now), as every time this backend stores. */
static int doc_write_body(struct conn *c, void *x)
{
    return rules_doc_write_body(pg_doc_apply, c, c->now, x);
}

int pg_doc_write(void *impl, const char *tenant, const char *collection, const char *ref,
                 enum store_op op, const char *data, size_t data_len, int64_t if_match,
                 struct store_doc *out, int *created)
{
    struct rules_docs_ctx x;
    rules_doc_write_args(&x, tenant, collection, ref, op, data, data_len, if_match, out, created);
    return pg_run_tx(impl, doc_write_body, rules_docs_undo, &x);
}

static int doc_list_body(struct conn *c, void *vctx)
{
    struct rules_docs_ctx *x = vctx;
    struct pg_params p = {0};
    PGresult *r;
    pg_param_str(&p, x->tenant);
    pg_param_str(&p, x->coll);
    pg_param_str(&p, x->after_ref ? x->after_ref : "");
    pg_param_i64(&p, (int64_t)x->limit);
    int rc = pg_exec(c,
                     "SELECT ref, data, version, updated_at, job_id, item_index FROM docs "
                     "WHERE tenant = $1 AND collection = $2 AND ref > $3 AND deleted = 0 "
                     "ORDER BY ref LIMIT $4",
                     &p, &r);
    if (rc < 0)
        return rc;
    x->list = xcalloc(x->limit ? x->limit : 1, sizeof *x->list);
    for (int i = 0; i < rc && x->n < x->limit; i++) {
        struct store_doc *d = &x->list[x->n++];
        d->ref = pg_col_strdup(r, i, 0, NULL);
        read_doc(r, i, 1, d);
    }
    PQclear(r);
    return 0;
}

int pg_doc_list(void *impl, const char *tenant, const char *collection, const char *after_ref,
                size_t limit, struct store_doc **out, size_t *n)
{
    struct rules_docs_ctx x = {
        .tenant = tenant, .coll = collection, .after_ref = after_ref, .limit = limit};
    int rc = pg_run_tx(impl, doc_list_body, rules_docs_undo, &x);
    return rules_docs_list_done(&x, rc, out, n);
}
