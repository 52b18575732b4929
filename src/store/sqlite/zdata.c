/* zdata.c - items' data in the embedded backend, compressed against a dictionary of
 * their job.
 *
 * DESIGN
 * An item's data is most of what a job writes (about 450 of 700 stored bytes for a
 * product), and on SQLite every stored byte is written twice (WAL, then checkpoint).
 * One item alone compresses poorly (zstd: 443 -> 284 bytes), but the items of one job
 * share their shape and most of their words, so each is compressed against its job's
 * first items: 443 -> about 126 bytes, for about 3 us to compress and under 1 us to
 * expand (measured here, zstd level 3, raw-content dictionary).
 *
 * A job's dictionary is the data of the first ZD_DICT_ITEMS items (of ZD_MIN_LEN bytes
 * or more) of its first upload of at least ZD_MIN_ITEMS items, up to ZD_DICT_MAX bytes
 * (none below ZD_DICT_MIN), kept in job_dicts(jid, dict) and written in the same
 * transaction as the items it compresses. Items uploaded before it exists, shorter
 * than ZD_MIN_LEN, or that would not shrink stay text, so a column value is either
 * TEXT (as written by earlier versions too) or a BLOB holding one zstd frame to be
 * expanded with the dictionary of the job whose key range holds the row.
 * A retry job copies its parent's rows, so it copies the parent's dictionary too; a
 * job's dictionary goes with the job.
 *
 * Documents outlive jobs: a collection gets a dictionary of its own (doc_dicts), a copy
 * of the dictionary of the first job that has one and writes to it, never changed or
 * removed after; documents written before it stay text. PostgreSQL compresses nothing.
 *
 * Each connection keeps its zstd contexts, the expanding dictionaries of the last few
 * jobs it read (ZD_CACHE; jobs' ids are never reused, AUTOINCREMENT, so they cannot be
 * stale) and the dictionaries of the last few collections (ZC_CACHE), checked against
 * doc_dicts once per transaction: one that made a collection's dictionary may have
 * rolled back. */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "store/sqlite/sqlite_int.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/xmalloc.h"

#define ZD_MIN_ITEMS 64       /* an upload this large starts its job's dictionary */
#define ZD_DICT_ITEMS 32      /* the dictionary: the data of this many first items ... */
#define ZD_DICT_MAX 16384     /* ... at most this many bytes of it, */
#define ZD_DICT_MIN 1024      /* and at least this many, or no dictionary */
#define ZD_MIN_LEN 64         /* shorter data is stored as it is */
#define ZD_LEVEL 3            /* measured: no slower than -1 for items this small */
#define ZD_CACHE 4            /* expanding dictionaries a connection keeps */
#define ZD_MAX_OUT (1u << 30) /* no item expands past this (the items are far smaller) */
#define ZC_CACHE 4            /* collections' dictionaries a connection keeps */

/* A collection's dictionary as this connection last saw it. */
struct zcoll {
    char *tenant, *coll; /* NULL: a free slot */
    uint64_t txn;        /* the transaction that last checked it against doc_dicts */
    uint64_t tried;      /* the transaction that last tried to make one, in vain */
    struct buf dict;     /* its bytes; empty: the collection had none at txn */
    uint64_t hash;       /* of dict */
    ZSTD_CDict *cd;      /* made when a write needs it */
    ZSTD_DDict *dd;      /* made when a read needs it */
};

struct sq_zdata {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    struct buf out; /* the compressed frame being bound */
    struct {
        int64_t jid;
        ZSTD_DDict *dd;
    } cache[ZD_CACHE];
    unsigned next; /* the cache slot to replace */
    struct zcoll coll[ZC_CACHE];
    unsigned cnext;
};

static void zcoll_clear(struct zcoll *e)
{
    free(e->tenant);
    free(e->coll);
    buf_release(&e->dict);
    ZSTD_freeCDict(e->cd);
    ZSTD_freeDDict(e->dd);
    memset(e, 0, sizeof *e);
}

static struct sq_zdata *zd_of(struct sq_conn *c)
{
    if (!c->zd)
        c->zd = xcalloc(1, sizeof *c->zd);
    return c->zd;
}

void sq_zdata_free(struct sq_conn *c)
{
    struct sq_zdata *z = c->zd;
    if (!z)
        return;
    ZSTD_freeCCtx(z->cctx);
    ZSTD_freeDCtx(z->dctx);
    buf_release(&z->out);
    for (size_t i = 0; i < ZD_CACHE; i++)
        ZSTD_freeDDict(z->cache[i].dd);
    for (size_t i = 0; i < ZC_CACHE; i++)
        zcoll_clear(&z->coll[i]);
    free(z);
    c->zd = NULL;
}

SQ_SQL(sql_dict_get, "SELECT dict FROM job_dicts WHERE jid = ?1");
SQ_SQL(sql_dict_put, "INSERT INTO job_dicts(jid, dict) VALUES(?1, ?2)");

int sq_zdata_dict(struct sq_conn *c, int64_t jid, const struct store_new_item *items, size_t n,
                  struct sq_zdict **out)
{
    sqlite3_stmt *s;
    *out = NULL;
    int rc = sq_q(c, &sql_dict_get, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, jid);
    rc = sq_step(s);
    struct buf d = BUF_INIT;
    if (rc == 1) {
        buf_append(&d, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
    } else if (rc == 0 && n >= ZD_MIN_ITEMS) {
        for (size_t i = 0, k = 0; i < n && k < ZD_DICT_ITEMS; i++) {
            if (!items[i].data || items[i].data_len < ZD_MIN_LEN ||
                d.len + items[i].data_len > ZD_DICT_MAX)
                continue;
            buf_append(&d, items[i].data, items[i].data_len);
            k++;
        }
        if (d.len < ZD_DICT_MIN) /* items too small to gain from one */
            buf_reset(&d);
    }
    sqlite3_reset(s);
    if (rc < 0 || d.len == 0) {
        buf_release(&d);
        return rc < 0 ? rc : 0;
    }
    if (rc == 0) { /* new: kept with the items it compresses */
        if ((rc = sq_q(c, &sql_dict_put, &s)) < 0) {
            buf_release(&d);
            return rc;
        }
        sqlite3_bind_int64(s, 1, jid);
        sqlite3_bind_blob(s, 2, d.data, (int)d.len, SQLITE_STATIC);
        rc = sq_step(s);
        sqlite3_reset(s);
        if (rc < 0) {
            buf_release(&d);
            return rc;
        }
    }
    *out = (struct sq_zdict *)ZSTD_createCDict(d.data, d.len, ZD_LEVEL);
    buf_release(&d);
    return *out ? 0 : -SLUICE_E_INTERNAL;
}

void sq_zdict_free(struct sq_zdict *d)
{
    ZSTD_freeCDict((ZSTD_CDict *)d);
}

void sq_zdata_bind(struct sq_conn *c, sqlite3_stmt *s, int i, const struct sq_zdict *d,
                   const char *data, size_t len)
{
    if (!data) {
        sqlite3_bind_null(s, i);
        return;
    }
    struct sq_zdata *z = zd_of(c);
    if (d && len >= ZD_MIN_LEN && (z->cctx || (z->cctx = ZSTD_createCCtx()))) {
        buf_reset(&z->out);
        buf_grow(&z->out, ZSTD_compressBound(len));
        size_t r = ZSTD_compress_usingCDict(z->cctx, z->out.data, z->out.cap, data, len,
                                            (const ZSTD_CDict *)d);
        if (!ZSTD_isError(r) && r < len) {
            sqlite3_bind_blob(s, i, z->out.data, (int)r, SQLITE_STATIC);
            return;
        }
    }
    sq_bind_strn(s, i, data, len);
}

/* The expanding dictionary of job jid: cached, or read from job_dicts. NULL: none. */
static ZSTD_DDict *ddict_of(struct sq_conn *c, int64_t jid)
{
    struct sq_zdata *z = zd_of(c);
    for (size_t i = 0; i < ZD_CACHE; i++)
        if (z->cache[i].dd && z->cache[i].jid == jid)
            return z->cache[i].dd;
    sqlite3_stmt *s;
    if (sq_q(c, &sql_dict_get, &s) < 0)
        return NULL;
    sqlite3_bind_int64(s, 1, jid);
    ZSTD_DDict *dd = NULL;
    if (sq_step(s) == 1)
        dd = ZSTD_createDDict(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
    sqlite3_reset(s);
    if (!dd)
        return NULL;
    unsigned k = z->next++ % ZD_CACHE;
    ZSTD_freeDDict(z->cache[k].dd);
    z->cache[k].jid = jid;
    z->cache[k].dd = dd;
    return dd;
}

/* Expands the frame of column i of s with dd into [out] *out (heap, NUL-terminated). */
static int expand(struct sq_zdata *z, sqlite3_stmt *s, int i, const ZSTD_DDict *dd, char **out,
                  size_t *len)
{
    const void *src = sqlite3_column_blob(s, i);
    size_t n = (size_t)sqlite3_column_bytes(s, i);
    unsigned long long size = ZSTD_getFrameContentSize(src, n);
    *out = NULL;
    if (!dd || size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR ||
        size > ZD_MAX_OUT || (!z->dctx && !(z->dctx = ZSTD_createDCtx())))
        return -SLUICE_E_STORE_IO; /* a frame sluice did not write, or its dictionary is gone */
    char *p = xmalloc((size_t)size + 1);
    size_t r = ZSTD_decompress_usingDDict(z->dctx, p, (size_t)size, src, n, dd);
    if (ZSTD_isError(r) || r != size) {
        free(p);
        return -SLUICE_E_STORE_IO;
    }
    p[r] = '\0';
    *out = p;
    if (len)
        *len = r;
    return 0;
}

int sq_zdata_col(struct sq_conn *c, sqlite3_stmt *s, int i, int64_t jid, char **out, size_t *len)
{
    if (sqlite3_column_type(s, i) != SQLITE_BLOB) {
        *out = sq_col_dup(s, i, len);
        return 0;
    }
    return expand(zd_of(c), s, i, ddict_of(c, jid), out, len);
}

/* ---- documents -------------------------------------------------------------------- */

SQ_SQL(sql_coll_dict_get, "SELECT dict FROM doc_dicts WHERE tenant = ?1 AND collection = ?2");
SQ_SQL(sql_coll_dict_put, "INSERT OR IGNORE INTO doc_dicts(tenant, collection, dict) "
                          "SELECT ?1, ?2, d.dict FROM jobs j JOIN job_dicts d ON d.jid = j.jid "
                          "WHERE j.id = ?3");

/* Reads the dictionary of (tenant, coll) into b (empty: none). 0 or an error. */
static int coll_dict_read(struct sq_conn *c, const char *tenant, const char *coll, struct buf *b)
{
    sqlite3_stmt *s;
    int rc = sq_q(c, &sql_coll_dict_get, &s);
    if (rc < 0)
        return rc;
    sq_bind_str(s, 1, tenant);
    sq_bind_str(s, 2, coll);
    buf_reset(b);
    if ((rc = sq_step(s)) == 1)
        buf_append(b, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

/* The dictionary of collection coll of tenant as of this transaction, in [out] *e (its
 * dict empty: none). A writer (job_id: the job it writes for, "" or NULL: none) makes
 * one from its job's when the collection has none. 0 or an error. */
static int coll_of(struct sq_conn *c, const char *tenant, const char *coll, const char *job_id,
                   struct zcoll **out)
{
    struct sq_zdata *z = zd_of(c);
    struct zcoll *e = NULL;
    for (size_t i = 0; i < ZC_CACHE && !e; i++)
        if (z->coll[i].tenant && !strcmp(z->coll[i].tenant, tenant) &&
            !strcmp(z->coll[i].coll, coll))
            e = &z->coll[i];
    *out = e;
    if (e && e->txn == c->txn && (e->dict.len || !job_id || !*job_id || e->tried == c->txn))
        return 0;
    struct buf d = BUF_INIT;
    int rc = coll_dict_read(c, tenant, coll, &d);
    if (rc == 0 && d.len == 0 && job_id && *job_id) {
        sqlite3_stmt *s;
        if ((rc = sq_q(c, &sql_coll_dict_put, &s)) == 0) {
            sq_bind_str(s, 1, tenant);
            sq_bind_str(s, 2, coll);
            sq_bind_str(s, 3, job_id);
            rc = sq_step(s);
            sqlite3_reset(s);
            if (rc >= 0 && sqlite3_changes(c->db) > 0)
                rc = coll_dict_read(c, tenant, coll, &d);
            rc = rc < 0 ? rc : 0;
        }
    }
    if (rc < 0) {
        buf_release(&d);
        return rc;
    }
    uint64_t h = d.len ? ids_hash64(d.data, d.len) : 0;
    if (!e || e->hash != h || e->dict.len != d.len) { /* new here, or not what was cached */
        if (!e)
            e = &z->coll[z->cnext++ % ZC_CACHE];
        zcoll_clear(e);
        e->tenant = xstrdup(tenant);
        e->coll = xstrdup(coll);
        e->dict = d;
        e->hash = h;
    } else {
        buf_release(&d);
    }
    e->txn = c->txn;
    if (!e->dict.len && job_id && *job_id)
        e->tried = c->txn;
    *out = e;
    return 0;
}

int sq_zdoc_bind(struct sq_conn *c, sqlite3_stmt *s, int i, const char *tenant, const char *coll,
                 const char *job_id, const char *data, size_t len)
{
    struct zcoll *e = NULL;
    int rc = data && len >= ZD_MIN_LEN ? coll_of(c, tenant, coll, job_id, &e) : 0;
    if (rc < 0)
        return rc;
    if (e && e->dict.len && !e->cd)
        e->cd = ZSTD_createCDict(e->dict.data, e->dict.len, ZD_LEVEL);
    sq_zdata_bind(c, s, i, e ? (const struct sq_zdict *)e->cd : NULL, data, len);
    return 0;
}

int sq_zdoc_col(struct sq_conn *c, sqlite3_stmt *s, int i, const char *tenant, const char *coll,
                char **out, size_t *len)
{
    if (sqlite3_column_type(s, i) != SQLITE_BLOB) {
        *out = sq_col_dup(s, i, len);
        return 0;
    }
    struct zcoll *e;
    int rc = coll_of(c, tenant, coll, NULL, &e);
    if (rc < 0)
        return rc;
    if (e && e->dict.len && !e->dd)
        e->dd = ZSTD_createDDict(e->dict.data, e->dict.len);
    return expand(zd_of(c), s, i, e ? e->dd : NULL, out, len);
}
