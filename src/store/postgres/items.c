/* items.c - the PostgreSQL backend's item reads: store_item_get and store_item_list,
 * with the Processing and Canceled statuses derived from the job's cursor and cancel
 * point (rules_item_status, and the same CASE in SQL for a status filter).
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <string.h>

#include "store/postgres/pg_int.h"
#include "util/errors.h"
#include "util/xmalloc.h"

#define ITEM_LIST_COLS                                                                             \
    "idx, status, attempts, ref, data, result, error_code, error_message, updated_at, "            \
    "failed_step, warnings, parent_index"

/* ---- items ----------------------------------------------------------------------- */

struct items_ctx {
    const char *tenant, *job_id;
    struct store_item_filter f;
    int with_data;
    int64_t index, after_index;
    size_t limit;
    struct store_item *out;
    struct store_item *list;
    size_t n;
};

/* Fills it from row `row` of ITEM_LIST_COLS. */
static void read_item(const PGresult *res, int row, const struct rules_jobrow *r, int with_data,
                      struct store_item *it)
{
    const struct pg_row at = {res, row};
    rules_item_read(&pg_cols, &at, r, pg_col_i64(res, row, 0), with_data, it);
}

static void items_out_undo(void *vctx)
{
    struct items_ctx *x = vctx;
    if (x->out) {
        store_item_release(x->out);
        memset(x->out, 0, sizeof *x->out);
    }
    store_items_free(x->list, x->n);
    x->list = NULL;
    x->n = 0;
}

static int item_get_body(struct conn *c, void *vctx)
{
    struct items_ctx *x = vctx;
    struct rules_jobrow r;
    PGresult *res;
    int rc = pg_job_load_visible(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    store_job_release(&r.j);
    if (x->index < 0 || x->index >= r.j.counts.total)
        return 0;
    struct pg_params p = {0};
    pg_param_i64(&p, r.jid);
    pg_param_i64(&p, x->index);
    rc = pg_exec(c, "SELECT " ITEM_LIST_COLS ", events FROM items WHERE jid = $1 AND idx = $2", &p,
                 &res);
    if (rc < 0)
        return rc;
    if (rc > 0) {
        read_item(res, 0, &r, 1, x->out);
        x->out->events = pg_col_strdup(res, 0, 12, NULL);
        if (!x->out->events)
            x->out->events = xstrdup("[]");
    }
    PQclear(res);
    return rc > 0;
}

int pg_item_get(void *impl, const char *tenant, const char *job_id, int64_t index,
                struct store_item *out)
{
    struct items_ctx x = {.tenant = tenant, .job_id = job_id, .index = index, .out = out};
    memset(out, 0, sizeof *out);
    return pg_run_tx(impl, item_get_body, items_out_undo, &x);
}

static int item_list_body(struct conn *c, void *vctx)
{
    struct items_ctx *x = vctx;
    struct rules_jobrow r;
    PGresult *res;
    int rc = pg_job_load_visible(c, x->tenant, x->job_id, &r);
    if (rc <= 0)
        return rc;
    store_job_release(&r.j);
    int64_t after = x->after_index < -1 ? -1 : x->after_index;
    struct pg_params p = {0};
    pg_param_i64(&p, r.jid);
    pg_param_i64(&p, after);
    pg_param_str(&p, x->f.ref);
    pg_param_str(&p, x->f.step);
    pg_param_str(&p, x->f.code);
    pg_param_i64(&p, (int64_t)x->limit);
    pg_param_i64(&p, x->with_data);
    if (x->f.status == ITEM_FAILED) {
        /* Failed is never derived: the partial index items_failed serves this one. */
        rc =
            pg_exec(c,
                    "SELECT idx, status, attempts, ref, CASE WHEN $7 = 1 THEN data END, result, "
                    "error_code, error_message, updated_at, failed_step, warnings, parent_index "
                    "FROM items WHERE jid = $1 AND status = 3 AND idx > $2 "
                    "AND ($3::text IS NULL OR ref = $3) AND ($4::text IS NULL OR failed_step = $4) "
                    "AND ($5::text IS NULL OR error_code = $5) ORDER BY idx LIMIT $6",
                    &p, &res);
    } else {
        pg_param_i64(&p, x->f.status);
        pg_param_i64(&p, r.cancel_at);
        pg_param_i64(&p, r.cursor);
        rc =
            pg_exec(c,
                    "SELECT idx, status, attempts, ref, CASE WHEN $7 = 1 THEN data END, result, "
                    "error_code, error_message, updated_at, failed_step, warnings, parent_index "
                    "FROM items WHERE jid = $1 AND idx > $2 "
                    "AND ($3::text IS NULL OR ref = $3) AND ($4::text IS NULL OR failed_step = $4) "
                    "AND ($5::text IS NULL OR error_code = $5) AND ($8::int < 0 OR "
                    "(CASE WHEN status <> 0 THEN status WHEN $9::bigint >= 0 AND idx >= $9 THEN 5 "
                    "WHEN idx < $10 THEN 1 ELSE 0 END) = $8) ORDER BY idx LIMIT $6",
                    &p, &res);
    }
    if (rc < 0)
        return rc;
    x->list = xcalloc(x->limit ? x->limit : 1, sizeof *x->list);
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_item(res, i, &r, x->with_data, &x->list[x->n++]);
    PQclear(res);
    return 1;
}

int pg_item_list(void *impl, const char *tenant, const char *job_id,
                 const struct store_item_filter *f, int64_t after_index, size_t limit,
                 int with_data, struct store_item **out, size_t *n)
{
    struct items_ctx x = {.tenant = tenant,
                          .job_id = job_id,
                          .f = {.status = -1},
                          .after_index = after_index,
                          .limit = limit,
                          .with_data = with_data ? 1 : 0};
    if (f)
        x.f = *f;
    if (x.f.status < 0)
        x.f.status = -1;
    int rc = pg_run_tx(impl, item_list_body, items_out_undo, &x);
    *out = rc <= 0 ? NULL : x.list;
    *n = rc <= 0 ? 0 : x.n;
    if (rc == 0)
        store_items_free(x.list, x.n);
    return rc;
}
