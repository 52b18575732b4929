/* wfload.h - finding the definition a job or a request runs: a built-in by name, or
 * a stored version compiled again (stored definitions were validated on write). */
#ifndef SLUICE_WFLOAD_H
#define SLUICE_WFLOAD_H

#include <stdint.h>

#include "spec/workflow.h"
#include "store/store.h"

/* version 0 = the latest live version (or a built-in). 0 and [out] *out (free with
 * wfdef_free), -SLUICE_E_UNKNOWN_WORKFLOW, -SLUICE_E_WORKFLOW_OUTDATED (stored before a
 * rule it breaks; logged), or a store error. */
int wfload(struct store *st, const char *tenant, const char *name, int64_t version,
           struct wfdef **out);

/* A small per-thread cache of compiled definitions keyed by (tenant, name, version).
 * Versions are immutable, so entries never go stale; built-ins are cached too. Not
 * thread-safe: one cache per worker. */
struct wfcache;
struct wfcache *wfcache_new(void);
void wfcache_free(struct wfcache *c);
/* The definition if c holds it (or it is a built-in, compiled without the store), else
 * NULL: never reads the store. Borrowed, valid until wfcache_free. */
const struct wfdef *wfcache_peek(struct wfcache *c, const char *tenant, const char *name,
                                 int64_t version);
/* Borrowed definition, valid until wfcache_free. Same errors as wfload. */
int wfcache_get(struct wfcache *c, struct store *st, const char *tenant, const char *name,
                int64_t version, const struct wfdef **out);

#endif
