/* items.c - the PostgreSQL backend's item reads: the SQL of store_item_get and
 * store_item_list, whose transaction bodies are rules_item_get_body and
 * rules_item_list_body (rules.c), with the Processing and Canceled statuses derived
 * from the job's cursor and cancel point (rules_item_status, and the same CASE in SQL
 * for a status filter).
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <string.h>

#include "store/postgres/pg_int.h"

#define ITEM_LIST_COLS                                                                             \
    "idx, status, attempts, ref, data, result, error_code, error_message, updated_at, "            \
    "failed_step, warnings, parent_index"

/* ---- items ----------------------------------------------------------------------- */

/* Fills it from row `row` of ITEM_LIST_COLS. */
static void read_item(const PGresult *res, int row, const struct rules_jobrow *r, int with_data,
                      struct store_item *it)
{
    const struct pg_row at = {res, row};
    rules_item_read(&pg_cols, &at, r, pg_col_i64(res, row, 0), with_data, it);
}

static int item_read(void *c, const struct rules_jobrow *r, int64_t index, struct store_item *out)
{
    PGresult *res;
    struct pg_params p = {0};
    pg_param_i64(&p, r->jid);
    pg_param_i64(&p, index);
    int rc =
        pg_exec(c, "SELECT " ITEM_LIST_COLS ", events FROM item_rows WHERE jid = $1 AND idx = $2",
                &p, &res);
    if (rc <= 0)
        return rc;
    read_item(res, 0, r, 1, out);
    out->events = pg_col_strdup(res, 0, 12, NULL);
    PQclear(res);
    return 1;
}

static int items_read(void *c, const struct rules_jobrow *r, int64_t after,
                      struct rules_items_ctx *x)
{
    PGresult *res;
    int rc;
    struct pg_params p = {0};
    pg_param_i64(&p, r->jid);
    pg_param_i64(&p, after);
    pg_param_str(&p, x->f.ref);
    pg_param_str(&p, x->f.step);
    pg_param_str(&p, x->f.code);
    pg_param_i64(&p, (int64_t)x->limit);
    pg_param_i64(&p, x->with_data);
    if (x->f.status == ITEM_FAILED) {
        /* Failed is never derived: the partial index item_outcomes_failed serves this
         * one, each outcome's item found by key. */
        rc = pg_exec(c,
                     "SELECT o.idx, o.status, o.attempts, i.ref, CASE WHEN $7 = 1 THEN i.data END, "
                     "o.result, o.error_code, o.error_message, o.updated_at, o.failed_step, "
                     "o.warnings, i.parent_index FROM item_outcomes o JOIN items i ON "
                     "i.jid = o.jid AND i.idx = o.idx WHERE o.jid = $1 AND o.status = 3 "
                     "AND o.idx > $2 AND ($3::text IS NULL OR i.ref = $3) "
                     "AND ($4::text IS NULL OR o.failed_step = $4) "
                     "AND ($5::text IS NULL OR o.error_code = $5) ORDER BY o.idx LIMIT $6",
                     &p, &res);
    } else {
        pg_param_i64(&p, x->f.status);
        pg_param_i64(&p, r->cancel_at);
        pg_param_i64(&p, r->cursor);
        rc =
            pg_exec(c,
                    "SELECT idx, status, attempts, ref, CASE WHEN $7 = 1 THEN data END, result, "
                    "error_code, error_message, updated_at, failed_step, warnings, parent_index "
                    "FROM item_rows WHERE jid = $1 AND idx > $2 "
                    "AND ($3::text IS NULL OR ref = $3) AND ($4::text IS NULL OR failed_step = $4) "
                    "AND ($5::text IS NULL OR error_code = $5) AND ($8::int < 0 OR "
                    "(CASE WHEN status <> 0 THEN status WHEN $9::bigint >= 0 AND idx >= $9 THEN 5 "
                    "WHEN idx < $10 THEN 1 ELSE 0 END) = $8) ORDER BY idx LIMIT $6",
                    &p, &res);
    }
    if (rc <= 0)
        return rc;
    for (int i = 0; i < rc && x->n < x->limit; i++)
        read_item(res, i, r, x->with_data, &x->list[x->n++]);
    PQclear(res);
    return 0;
}

static const struct rules_items_prims prims = {pg_job_load_visible, item_read, items_read};

static int item_get_body(struct conn *c, void *x)
{
    return rules_item_get_body(&prims, c, x);
}

int pg_item_get(void *impl, const char *tenant, const char *job_id, int64_t index,
                struct store_item *out)
{
    struct rules_items_ctx x = {.tenant = tenant, .job_id = job_id, .index = index, .out = out};
    return pg_run_tx(impl, item_get_body, rules_items_undo, &x);
}

static int item_list_body(struct conn *c, void *x)
{
    return rules_item_list_body(&prims, c, x);
}

int pg_item_list(void *impl, const char *tenant, const char *job_id,
                 const struct store_item_filter *f, int64_t after_index, size_t limit,
                 int with_data, struct store_item **out, size_t *n)
{
    struct rules_items_ctx x;
    rules_items_list_args(&x, tenant, job_id, f, after_index, limit, with_data);
    int rc = pg_run_tx(impl, item_list_body, rules_items_undo, &x);
    return rules_items_list_done(&x, rc, out, n);
}
