/* store_int.h - private to src/store/: the store handle and the backends' ops tables.
 *
 * Callers see only `struct store *` (store.h); store.c forwards each store_*() call to
 * st->ops with st->impl, and picks the ops table from the URL scheme at open. */
#ifndef SLUICE_STORE_INT_H
#define SLUICE_STORE_INT_H

#include <stdatomic.h>

#include "store/store.h"

struct store_faults;

struct store {
    const struct store_ops *ops;
    void *impl;                  /* the backend's own handle, from ops->open */
    atomic_int faulty;           /* a fault rule is set (store/fault.h): wrappers check */
    struct store_faults *faults; /* the rules, NULL until the first; fault.c's */
};

/* fault.c, for the wrappers in store.c: the error an injected fault gives the call of
 * operation op (the wrapper's name without "store_"), or 0 to go on to the backend. */
int store_fault_hit(struct store *st, const char *op);
/* The same after the backend's call returned rc: rc, or the error an AFTER rule gives
 * a call that took effect (a lost answer). */
int store_fault_hit_after(struct store *st, const char *op, int rc);
/* Frees the rules of st (store_close). */
void store_fault_free(struct store *st);

struct buf;
/* A PATCH's result, the same in every backend: the JSON merge patch (RFC 7396) of the
 * patch text onto the current document's text, written into out (reset first) by the
 * pipeline's writer (util/jsonw.h), so that its length is what a patch step measured
 * and what the document limit is checked against. 0, -SLUICE_E_INVALID_DATA (either
 * text is not JSON) or -SLUICE_E_INTERNAL. */
int store_doc_merge(const char *cur, size_t cur_len, const char *patch, size_t patch_len,
                    struct buf *out);

/* The embedded backend (sqlite/), for URLs "sqlite:PATH". */
extern const struct store_ops store_sqlite_ops;

/* The shared backend (postgres/), for URLs "postgres://..." and "postgresql://...". */
extern const struct store_ops store_postgres_ops;

/* Its schema migrations in order (001 first): only for tests that build a database
 * of an older schema and check that store_open upgrades it. */
extern const char *const *const store_sqlite_migrations;
extern const size_t store_sqlite_nmigrations;

#endif
