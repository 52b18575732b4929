/* workflow.h - what a job does to each item, resolved from the workflow name.
 *
 * Built-in workflows: "noop" marks each item succeeded; "<C>.upsert", "<C>.patch" and
 * "<C>.delete" apply the item to the document with the item's ref in collection C
 * (C: 1..64 chars of [A-Za-z0-9_-]). */
#ifndef SLUICE_WORKFLOW_H
#define SLUICE_WORKFLOW_H

#include "store/store.h"

enum workflow_kind { WORKFLOW_NOOP, WORKFLOW_DOC };

struct workflow {
    enum workflow_kind kind;
    enum store_op op;    /* for WORKFLOW_DOC */
    char collection[65]; /* for WORKFLOW_DOC */
};

/* Resolves name; 0 or -SLUICE_E_UNKNOWN_WORKFLOW. out may be NULL to only check. */
int workflow_resolve(const char *name, struct workflow *out);
/* Nonzero when name is a valid collection name. */
int workflow_collection_valid(const char *name);

#endif
