/* store_int.h - private to src/store/: the store handle and the backends' ops tables.
 *
 * Callers see only `struct store *` (store.h); store.c forwards each store_*() call to
 * st->ops with st->impl, and picks the ops table from the URL scheme at open. */
#ifndef SLUICE_STORE_INT_H
#define SLUICE_STORE_INT_H

#include "store/store.h"

struct store {
    const struct store_ops *ops;
    void *impl; /* the backend's own handle, from ops->open */
};

/* The embedded backend (sqlite.c), for URLs "sqlite:PATH". */
extern const struct store_ops store_sqlite_ops;

/* The shared backend (postgres.c), for URLs "postgres://..." and "postgresql://...". */
extern const struct store_ops store_postgres_ops;

/* Its schema migrations in order (001 first): only for tests that build a database
 * of an older schema and check that store_open upgrades it. */
extern const char *const *const store_sqlite_migrations;
extern const size_t store_sqlite_nmigrations;

#endif
