/* zdata.c - items' data in the embedded backend, compressed against a dictionary of
 * their job.
 *
 * DESIGN
 * An item's data is most of what a job writes (about 450 of 700 stored bytes for a
 * product), and on SQLite every stored byte is written twice (WAL, then checkpoint).
 * One item alone compresses poorly (zstd: 443 -> 284 bytes), but the items of one job
 * share their shape and most of their words, so each is compressed against its job's
 * first items: with LZ4, 443 -> about 142 bytes for 1.0 us to compress and 0.2 us to
 * expand (measured here; zstd gets 126 bytes but costs 2 to 3.5 us and 0.7 us, which
 * cut a no-op job's items/s by a third).
 *
 * A job's dictionary is the data of the first ZD_DICT_ITEMS items (of ZD_MIN_LEN bytes
 * or more) of its first upload of at least ZD_MIN_ITEMS items, up to ZD_DICT_MAX bytes
 * (none below ZD_DICT_MIN), kept in job_dicts(jid, dict) and written in the same
 * transaction as the items it compresses. Items uploaded before it exists, shorter
 * than ZD_MIN_LEN, or that would not shrink stay text, so a column value is either
 * TEXT (as written by earlier versions too) or a BLOB: a version byte (1), the text's
 * length (4 bytes, little-endian) and one LZ4 block, to be expanded with the
 * dictionary of the job whose key range holds the row.
 * A retry job copies its parent's rows, so it copies the parent's dictionary too; a
 * job's dictionary goes with the job.
 *
 * Documents outlive jobs: a collection gets a dictionary of its own (doc_dicts), a copy
 * of the dictionary of the first job that has one and writes to it, never changed or
 * removed after; documents written before it stay text. PostgreSQL compresses nothing.
 *
 * Each connection keeps its LZ4 working states, the dictionaries of the last few jobs
 * it read (ZD_CACHE; jobs' ids are never reused, AUTOINCREMENT, so they cannot be
 * stale) and the dictionaries of the last few collections (ZC_CACHE), checked against
 * doc_dicts once per transaction: one that made a collection's dictionary may have
 * rolled back. */
#include <lz4.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sqlite_int.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/xmalloc.h"

#define ZD_MIN_ITEMS 64       /* an upload this large starts its job's dictionary */
#define ZD_DICT_ITEMS 32      /* the dictionary: the data of this many first items ... */
#define ZD_DICT_MAX 16384     /* ... at most this many bytes of it, */
#define ZD_DICT_MIN 1024      /* and at least this many, or no dictionary */
#define ZD_MIN_LEN 64         /* shorter data is stored as it is */
#define ZD_CACHE 4            /* jobs' dictionaries a connection keeps for reading */
#define ZD_MAX_OUT (1u << 30) /* no item expands past this (the items are far smaller) */
#define ZC_CACHE 4            /* collections' dictionaries a connection keeps */
#define ZD_PAR_MIN 256        /* an upload this large is compressed by two threads */
#define ZD_HEAD 5             /* a value's version byte and length */
#define ZD_VERSION 1

/* A dictionary, loaded for compressing against: each value starts from a copy of base
 * (LZ4 keeps pointers into dict, so dict lives as long as base). */
struct sq_zdict {
    struct buf dict;
    LZ4_stream_t *base;
};

/* A collection's dictionary as this connection last saw it. */
struct zcoll {
    char *tenant, *coll;   /* NULL: a free slot */
    uint64_t txn;          /* the transaction that last checked it against doc_dicts */
    uint64_t tried;        /* the transaction that last tried to make one, in vain */
    struct buf dict;       /* its bytes; empty: the collection had none at txn */
    uint64_t hash;         /* of dict */
    struct sq_zdict *load; /* dict loaded for writes (made when a write needs it) */
};

struct sq_zdata {
    LZ4_stream_t *work, *work2; /* work2: sq_zdata_pack's helper thread */
    struct buf out;             /* the value being bound */
    struct {
        int64_t jid;
        struct buf dict;
    } cache[ZD_CACHE];
    unsigned next; /* the cache slot to replace */
    struct zcoll coll[ZC_CACHE];
    unsigned cnext;
};

static LZ4_stream_t *new_stream(void)
{
    LZ4_stream_t *s = xmalloc(sizeof *s);
    LZ4_initStream(s, sizeof *s);
    return s;
}

static struct sq_zdict *zdict_new(struct buf *bytes /* taken */)
{
    struct sq_zdict *d = xcalloc(1, sizeof *d);
    d->dict = *bytes;
    *bytes = (struct buf)BUF_INIT;
    d->base = new_stream();
    LZ4_loadDict(d->base, d->dict.data, (int)d->dict.len);
    return d;
}

void sq_zdict_free(struct sq_zdict *d)
{
    if (!d)
        return;
    free(d->base);
    buf_release(&d->dict);
    free(d);
}

static void zcoll_clear(struct zcoll *e)
{
    free(e->tenant);
    free(e->coll);
    buf_release(&e->dict);
    sq_zdict_free(e->load);
    memset(e, 0, sizeof *e);
}

static struct sq_zdata *zd_of(struct sq_conn *c)
{
    if (!c->zd)
        c->zd = xcalloc(1, sizeof *c->zd);
    return c->zd;
}

static LZ4_stream_t *stream_of(LZ4_stream_t **s)
{
    if (!*s)
        *s = new_stream();
    return *s;
}

void sq_zdata_free(struct sq_conn *c)
{
    struct sq_zdata *z = c->zd;
    if (!z)
        return;
    free(z->work);
    free(z->work2);
    buf_release(&z->out);
    for (size_t i = 0; i < ZD_CACHE; i++)
        buf_release(&z->cache[i].dict);
    for (size_t i = 0; i < ZC_CACHE; i++)
        zcoll_clear(&z->coll[i]);
    free(z);
    c->zd = NULL;
}

/* Appends to out the value of src (n bytes) compressed against d, with work as the
 * working state. The value's length, or 0 (out as it was) when it would not be
 * smaller. */
static size_t compress(LZ4_stream_t *work, const struct sq_zdict *d, const char *src, size_t n,
                       struct buf *out)
{
    if (n < ZD_MIN_LEN || n > ZD_MAX_OUT)
        return 0;
    buf_grow(out, ZD_HEAD + (size_t)LZ4_compressBound((int)n));
    unsigned char *p = (unsigned char *)out->data + out->len;
    memcpy(work, d->base, sizeof *work);
    int r = LZ4_compress_fast_continue(work, src, (char *)p + ZD_HEAD, (int)n,
                                       (int)(out->cap - out->len - ZD_HEAD), 1);
    if (r <= 0 || (size_t)r + ZD_HEAD >= n)
        return 0;
    p[0] = ZD_VERSION;
    for (int k = 0; k < 4; k++)
        p[1 + k] = (unsigned char)(n >> (8 * k));
    out->len += (size_t)r + ZD_HEAD;
    return (size_t)r + ZD_HEAD;
}

/* Expands the value src (n bytes), compressed against dict, into [out] *out (heap,
 * NUL-terminated). 0 or -SLUICE_E_STORE_IO. */
static int expand_bytes(const unsigned char *src, size_t n, const struct buf *dict, char **out,
                        size_t *len)
{
    *out = NULL;
    if (!dict || !dict->len || n <= ZD_HEAD || src[0] != ZD_VERSION)
        return -SLUICE_E_STORE_IO; /* a value sluice did not write, or its dictionary is gone */
    size_t size = 0;
    for (int k = 0; k < 4; k++)
        size |= (size_t)src[1 + k] << (8 * k);
    if (size > ZD_MAX_OUT)
        return -SLUICE_E_STORE_IO;
    char *p = xmalloc(size + 1);
    int r = LZ4_decompress_safe_usingDict((const char *)src + ZD_HEAD, p, (int)(n - ZD_HEAD),
                                          (int)size, dict->data, (int)dict->len);
    if (r < 0 || (size_t)r != size) {
        free(p);
        return -SLUICE_E_STORE_IO;
    }
    p[r] = '\0';
    *out = p;
    if (len)
        *len = size;
    return 0;
}

/* Expands column i of s, compressed against dict, like expand_bytes. */
static int expand(sqlite3_stmt *s, int i, const struct buf *dict, char **out, size_t *len)
{
    return expand_bytes(sqlite3_column_blob(s, i), (size_t)sqlite3_column_bytes(s, i), dict, out,
                        len);
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
    *out = zdict_new(&d);
    return 0;
}

void sq_zdata_bind(struct sq_conn *c, sqlite3_stmt *s, int i, const struct sq_zdict *d,
                   const char *data, size_t len)
{
    if (!data) {
        sqlite3_bind_null(s, i);
        return;
    }
    struct sq_zdata *z = zd_of(c);
    buf_reset(&z->out);
    size_t r = d ? compress(stream_of(&z->work), d, data, len, &z->out) : 0;
    if (r)
        sqlite3_bind_blob(s, i, z->out.data, (int)r, SQLITE_STATIC);
    else
        sq_bind_strn(s, i, data, len);
}

/* One thread's share of sq_zdata_pack: items [from, to) into its own buffer. */
struct pack_part {
    LZ4_stream_t *work;
    const struct sq_zdict *d;
    const struct store_new_item *items;
    size_t from, to;
    struct buf out;
    size_t *off, *len; /* the whole upload's (each part fills its own range) */
};

static void *pack_run(void *arg)
{
    struct pack_part *p = arg;
    for (size_t i = p->from; i < p->to; i++) {
        const struct store_new_item *it = &p->items[i];
        size_t at = p->out.len;
        size_t r = it->data ? compress(p->work, p->d, it->data, it->data_len, &p->out) : 0;
        p->off[i] = r ? at : SIZE_MAX;
        p->len[i] = r;
    }
    return NULL;
}

int sq_zdata_pack(struct sq_conn *c, const struct sq_zdict *d, const struct store_new_item *items,
                  size_t n, struct sq_zpack *p)
{
    memset(p, 0, sizeof *p);
    if (!d || n == 0)
        return 0;
    struct sq_zdata *z = zd_of(c);
    p->off = xcalloc(n, sizeof *p->off);
    p->len = xcalloc(n, sizeof *p->len);
    /* Compressing is a third of what an upload costs, and the workers wait for the
     * upload's commit: a large one is split over two threads. */
    size_t half = n >= ZD_PAR_MIN ? n / 2 : n;
    struct pack_part a = {stream_of(&z->work), d, items, 0, half, BUF_INIT, p->off, p->len};
    struct pack_part b = {stream_of(&z->work2), d, items, half, n, BUF_INIT, p->off, p->len};
    pthread_t t;
    int helper = half < n && pthread_create(&t, NULL, pack_run, &b) == 0;
    pack_run(&a);
    if (helper)
        pthread_join(t, NULL);
    else
        pack_run(&b);
    p->out = a.out;
    for (size_t i = half; i < n; i++) /* b's values follow a's */
        if (p->off[i] != SIZE_MAX)
            p->off[i] += a.out.len;
    buf_append(&p->out, b.out.data, b.out.len);
    buf_release(&b.out);
    return 0;
}

void sq_zpack_bind(const struct sq_zpack *p, sqlite3_stmt *s, int col, size_t i,
                   const struct store_new_item *it)
{
    if (!it->data)
        sqlite3_bind_null(s, col);
    else if (p->off && p->off[i] != SIZE_MAX)
        sqlite3_bind_blob(s, col, p->out.data + p->off[i], (int)p->len[i], SQLITE_STATIC);
    else
        sq_bind_strn(s, col, it->data, it->data_len);
}

void sq_zpack_release(struct sq_zpack *p)
{
    buf_release(&p->out);
    free(p->off);
    free(p->len);
    memset(p, 0, sizeof *p);
}

/* The dictionary of job jid for reading: cached, or read from job_dicts. NULL: none. */
static const struct buf *job_dict(struct sq_conn *c, int64_t jid)
{
    struct sq_zdata *z = zd_of(c);
    for (size_t i = 0; i < ZD_CACHE; i++)
        if (z->cache[i].dict.len && z->cache[i].jid == jid)
            return &z->cache[i].dict;
    sqlite3_stmt *s;
    if (sq_q(c, &sql_dict_get, &s) < 0)
        return NULL;
    sqlite3_bind_int64(s, 1, jid);
    const struct buf *d = NULL;
    if (sq_step(s) == 1 && sqlite3_column_bytes(s, 0) > 0) {
        unsigned k = z->next++ % ZD_CACHE;
        buf_reset(&z->cache[k].dict);
        buf_append(&z->cache[k].dict, sqlite3_column_blob(s, 0),
                   (size_t)sqlite3_column_bytes(s, 0));
        z->cache[k].jid = jid;
        d = &z->cache[k].dict;
    }
    sqlite3_reset(s);
    return d;
}

int sq_zdata_col(struct sq_conn *c, sqlite3_stmt *s, int i, int64_t jid, char **out, size_t *len)
{
    if (sqlite3_column_type(s, i) != SQLITE_BLOB) {
        *out = sq_col_dup(s, i, len);
        return 0;
    }
    return expand(s, i, job_dict(c, jid), out, len);
}

/* ---- items' data expanded after a claim's transaction ------------------------------ */

struct sq_zdefer {
    int64_t out_jid; /* the job of the claim handed out (sq_zdefer_claimed) */
    int64_t jid;     /* the job of the values kept compressed (0: none yet) */
    struct buf dict; /* its dictionary, copied */
    int64_t *idx;    /* the indexes of the items whose data is still compressed */
    size_t n, cap;
};

struct sq_zdefer *sq_zdefer_new(void)
{
    return xcalloc(1, sizeof(struct sq_zdefer));
}

void sq_zdefer_reset(struct sq_zdefer *d)
{
    d->out_jid = 0;
    d->jid = 0;
    d->n = 0;
    buf_reset(&d->dict);
}

void sq_zdefer_free(struct sq_zdefer *d)
{
    if (!d)
        return;
    buf_release(&d->dict);
    free(d->idx);
    free(d);
}

int sq_zdata_col_claim(struct sq_conn *c, sqlite3_stmt *s, int i, int64_t jid, int64_t index,
                       char **out, size_t *len)
{
    struct sq_zdefer *d = c->zdefer;
    if (!d || sqlite3_column_type(s, i) != SQLITE_BLOB || (d->jid && d->jid != jid))
        return sq_zdata_col(c, s, i, jid, out, len);
    if (!d->jid) {
        const struct buf *dict = job_dict(c, jid);
        if (!dict)
            return sq_zdata_col(c, s, i, jid, out, len); /* reports the missing dictionary */
        buf_append(&d->dict, dict->data, dict->len);
        d->jid = jid;
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->idx = xrealloc(d->idx, d->cap * sizeof *d->idx);
    }
    d->idx[d->n++] = index;
    size_t n = (size_t)sqlite3_column_bytes(s, i);
    *out = xmalloc(n + 1);
    memcpy(*out, sqlite3_column_blob(s, i), n);
    (*out)[n] = '\0';
    *len = n;
    return 0;
}

void sq_zdefer_claimed(struct sq_conn *c, int64_t jid)
{
    if (c->zdefer)
        c->zdefer->out_jid = jid;
}

int sq_zdefer_expand(struct sq_zdefer *d, struct store_claim_item *items, size_t n)
{
    /* Another job's items may have been read (and noted) while settling old claims:
     * only the handed-out job's noted items are still compressed. */
    if (d->n == 0 || d->out_jid != d->jid)
        return 0;
    qsort(d->idx, d->n, sizeof *d->idx, rules_cmp_i64);
    for (size_t i = 0; i < n; i++) {
        struct store_claim_item *it = &items[i];
        if (!it->data || !bsearch(&it->index, d->idx, d->n, sizeof *d->idx, rules_cmp_i64))
            continue;
        char *plain;
        size_t len;
        int rc =
            expand_bytes((const unsigned char *)it->data, it->data_len, &d->dict, &plain, &len);
        if (rc < 0)
            return rc;
        free(it->data);
        it->data = plain;
        it->data_len = len;
    }
    return 0;
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

/* ---- documents' data compressed before a write transaction ----------------------- */

#define ZP_COLLS 8 /* collections a prepack compresses for; the others' data is not */

struct zpre_ent {
    const char *data;
    size_t len;
    int coll;         /* index in colls */
    size_t off, zlen; /* the value in out; zlen 0: it stays text */
};

struct sq_zpre {
    struct zpre_ent *e; /* by data address */
    size_t n;
    struct buf out;
    struct {
        char *coll;
        struct buf dict; /* as the read transaction saw it; empty: none */
        uint64_t hash;
    } colls[ZP_COLLS];
    int ncolls;
};

static int zpre_read(struct sq_conn *c, void *ctx)
{
    struct sq_zpre *p = ((void **)ctx)[0];
    const char *tenant = ((void **)ctx)[1];
    for (int k = 0; k < p->ncolls; k++) {
        int rc = coll_dict_read(c, tenant, p->colls[k].coll, &p->colls[k].dict);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int cmp_zpre(const void *a, const void *b)
{
    const struct zpre_ent *x = a, *y = b;
    if (x->data != y->data)
        return (uintptr_t)x->data < (uintptr_t)y->data ? -1 : 1;
    return x->coll - y->coll;
}

void sq_zdoc_prepack(struct sq *s, const char *tenant, const struct sq_zpre_in *in, size_t n,
                     struct sq_zpre **out)
{
    struct sq_zpre *p = xcalloc(1, sizeof *p);
    p->e = xmalloc((n ? n : 1) * sizeof *p->e);
    for (size_t i = 0; i < n; i++) {
        if (!in[i].data || in[i].len < ZD_MIN_LEN)
            continue;
        int k = 0;
        while (k < p->ncolls && strcmp(p->colls[k].coll, in[i].coll) != 0)
            k++;
        if (k == p->ncolls) {
            if (k == ZP_COLLS)
                continue;
            p->colls[p->ncolls++].coll = xstrdup(in[i].coll);
        }
        p->e[p->n++] = (struct zpre_ent){in[i].data, in[i].len, k, 0, 0};
    }
    void *ctx[2] = {p, (void *)tenant};
    if (p->n == 0 || sq_run_tx(s, TX_READ, zpre_read, NULL, ctx) < 0) {
        sq_zpre_free(p);
        *out = NULL;
        return;
    }
    LZ4_stream_t *work = new_stream();
    int any = 0;
    for (int k = 0; k < p->ncolls; k++) {
        if (!p->colls[k].dict.len)
            continue;
        any = 1;
        p->colls[k].hash = ids_hash64(p->colls[k].dict.data, p->colls[k].dict.len);
        struct buf copy = BUF_INIT;
        buf_append(&copy, p->colls[k].dict.data, p->colls[k].dict.len);
        struct sq_zdict *d = zdict_new(&copy);
        for (size_t i = 0; i < p->n; i++) {
            struct zpre_ent *e = &p->e[i];
            if (e->coll != k)
                continue;
            e->off = p->out.len;
            e->zlen = compress(work, d, e->data, e->len, &p->out);
        }
        sq_zdict_free(d);
    }
    free(work);
    if (!any) {
        sq_zpre_free(p);
        *out = NULL;
        return;
    }
    qsort(p->e, p->n, sizeof *p->e, cmp_zpre);
    *out = p;
}

void sq_zpre_free(struct sq_zpre *p)
{
    if (!p)
        return;
    for (int k = 0; k < p->ncolls; k++) {
        free(p->colls[k].coll);
        buf_release(&p->colls[k].dict);
    }
    buf_release(&p->out);
    free(p->e);
    free(p);
}

/* The value prepacked for data (len bytes) in collection coll whose dictionary is now
 * e's, or NULL. */
static const struct zpre_ent *zpre_find(const struct sq_zpre *p, const char *coll, const char *data,
                                        size_t len, const struct zcoll *e)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) { /* the first entry of data */
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)p->e[mid].data < (uintptr_t)data)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < p->n && p->e[lo].data == data; lo++) {
        const struct zpre_ent *x = &p->e[lo];
        const struct buf *dict = &p->colls[x->coll].dict;
        if (x->len == len && strcmp(p->colls[x->coll].coll, coll) == 0 &&
            dict->len == e->dict.len && p->colls[x->coll].hash == e->hash)
            return x; /* the same dictionary, as coll_of judges its cache */
    }
    return NULL;
}

int sq_zdoc_bind(struct sq_conn *c, sqlite3_stmt *s, int i, const char *tenant, const char *coll,
                 const char *job_id, const char *data, size_t len)
{
    struct zcoll *e = NULL;
    int rc = data && len >= ZD_MIN_LEN ? coll_of(c, tenant, coll, job_id, &e) : 0;
    if (rc < 0)
        return rc;
    const struct zpre_ent *x =
        e && e->dict.len && c->zpre ? zpre_find(c->zpre, coll, data, len, e) : NULL;
    if (x) {
        if (x->zlen)
            sqlite3_bind_blob(s, i, c->zpre->out.data + x->off, (int)x->zlen, SQLITE_STATIC);
        else
            sq_bind_strn(s, i, data, len);
        return 0;
    }
    if (e && e->dict.len && !e->load) {
        struct buf copy = BUF_INIT;
        buf_append(&copy, e->dict.data, e->dict.len);
        e->load = zdict_new(&copy);
    }
    sq_zdata_bind(c, s, i, e ? e->load : NULL, data, len);
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
    return expand(s, i, e ? &e->dict : NULL, out, len);
}
