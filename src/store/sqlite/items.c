/* items.c - reading items in the embedded backend: the SQL of store_item_get and
 * store_item_list, whose transaction bodies are rules_item_get_body and
 * rules_item_list_body (rules.c). An item's Processing and Canceled are derived from
 * its job's cursor and cancel point (rules_item_status, and EFFECTIVE below in SQL),
 * not stored. */
#include <string.h>

#include "store/sqlite/sqlite_int.h"

/* ---- items ----------------------------------------------------------------------- */

/* Effective status of an item row: ?6 cancel_at, ?7 key base of the job, ?8 cursor. */
#define EFFECTIVE                                                                                  \
    "CASE WHEN status <> 0 THEN status WHEN ?6 >= 0 AND k >= ?7 + ?6 THEN 5 "                      \
    "WHEN k < ?7 + ?8 THEN 1 ELSE 0 END"

#define ITEM_LIST_COLS                                                                             \
    "k, status, attempts, ref, data, result, error_code, error_message, updated_at, failed_step, " \
    "warnings, parent_index"

/* Filters of store_item_list besides status: ?3 ref, ?9 failed_step, ?10 error_code. */
#define ITEM_FILTERS                                                                               \
    "(?3 IS NULL OR ref = ?3) AND (?9 IS NULL OR failed_step = ?9) "                               \
    "AND (?10 IS NULL OR error_code = ?10)"

/* Fills it from a row of ITEM_LIST_COLS (the data expanded: zdata.c). 0 or an error. */
static int read_item(struct sq_conn *c, sqlite3_stmt *s, const struct rules_jobrow *r,
                     int with_data, struct store_item *it)
{
    rules_item_read(&sq_cols, s, r, sqlite3_column_int64(s, 0) - KEY(r->jid, 0), 0, it);
    return with_data ? sq_zdata_col(c, s, 4, r->jid, &it->data, &it->data_len) : 0;
}

SQ_SQL(sql_item_get, "SELECT " ITEM_LIST_COLS ", events FROM item_rows WHERE k = ?1");

static int item_read(void *vc, const struct rules_jobrow *r, int64_t index, struct store_item *out)
{
    sqlite3_stmt *s;
    int rc = sq_q(vc, &sql_item_get, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, KEY(r->jid, index));
    rc = sq_step(s);
    if (rc == 1) {
        int e = read_item(vc, s, r, 1, out);
        if (e < 0) {
            store_item_release(out);
            rc = e;
        } else {
            out->events = sq_col_dup(s, 12, NULL);
        }
    }
    return rc;
}

SQ_SQL(sql_item_list, "SELECT " ITEM_LIST_COLS " FROM item_rows "
                      "WHERE k > ?1 AND k < ?2 AND " ITEM_FILTERS " "
                      "AND (?4 < 0 OR " EFFECTIVE " = ?4) ORDER BY k LIMIT ?5");
/* Failed is never derived, so the partial index item_outcomes_failed serves this one
 * (the outcome drives, each row's item is looked up by key). */
SQ_SQL(sql_item_list_failed,
       "SELECT o.k, o.status, o.attempts, i.ref, i.data, o.result, o.error_code, "
       "o.error_message, o.updated_at, o.failed_step, o.warnings, i.parent_index "
       "FROM item_outcomes o CROSS JOIN items i "
       "WHERE o.status = 3 AND o.k > ?1 AND o.k < ?2 AND i.k = o.k "
       "AND (?3 IS NULL OR i.ref = ?3) AND (?9 IS NULL OR o.failed_step = ?9) "
       "AND (?10 IS NULL OR o.error_code = ?10) ORDER BY o.k LIMIT ?5");

static int items_read(void *vc, const struct rules_jobrow *r, int64_t after,
                      struct rules_items_ctx *x)
{
    sqlite3_stmt *s;
    int rc = sq_q(vc, x->f.status == ITEM_FAILED ? &sql_item_list_failed : &sql_item_list, &s);
    if (rc < 0)
        return rc;
    /* after is clamped into this job's key range: past the end it would overflow KEY()
     * into the next job's items. */
    sqlite3_bind_int64(s, 1, KEY(r->jid, 0) + after);
    sqlite3_bind_int64(s, 2, KEY(r->jid + 1, 0));
    sq_bind_str(s, 3, x->f.ref);
    sqlite3_bind_int(s, 4, x->f.status);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)x->limit);
    sq_bind_str(s, 9, x->f.step);
    sq_bind_str(s, 10, x->f.code);
    if (x->f.status != ITEM_FAILED) {
        sqlite3_bind_int64(s, 6, r->cancel_at);
        sqlite3_bind_int64(s, 7, KEY(r->jid, 0));
        sqlite3_bind_int64(s, 8, r->cursor);
    }
    while (x->n < x->limit && (rc = sq_step(s)) == 1)
        if ((rc = read_item(vc, s, r, x->with_data, &x->list[x->n++])) < 0)
            break;
    return rc < 0 ? rc : 0;
}

static const struct rules_items_prims prims = {sq_job_load_visible, item_read, items_read};

static int item_get_body(struct sq_conn *c, void *x)
{
    return rules_item_get_body(&prims, c, x);
}

int sq_item_get(void *impl, const char *tenant, const char *job_id, int64_t index,
                struct store_item *out)
{
    struct rules_items_ctx x = {.tenant = tenant, .job_id = job_id, .index = index, .out = out};
    return sq_run_tx(impl, TX_READ, item_get_body, rules_items_undo, &x);
}

static int item_list_body(struct sq_conn *c, void *x)
{
    return rules_item_list_body(&prims, c, x);
}

int sq_item_list(void *impl, const char *tenant, const char *job_id,
                 const struct store_item_filter *f, int64_t after_index, size_t limit,
                 int with_data, struct store_item **out, size_t *n)
{
    struct rules_items_ctx x;
    rules_items_list_args(&x, tenant, job_id, f, after_index, limit, with_data);
    int rc = sq_run_tx(impl, TX_READ, item_list_body, rules_items_undo, &x);
    return rules_items_list_done(&x, rc, out, n);
}
