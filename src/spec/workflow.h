/* workflow.h - workflow definitions: an ordered list of steps, compiled once.
 *
 * A definition is JSON, written with PUT /v1/workflows/{name} and stored per version:
 *
 *   {"description": "...",
 *    "steps": [
 *      {"name": "check", "type": "validate", "schema": {...JSON Schema subset...}},
 *      {"name": "shape", "type": "map", "ops": [{"op": "set", "path": "title",
 *                                               "value": "{{data.title}} ({{data.color}})"}]},
 *      {"name": "save",  "type": "upsert", "collection": "products", "refFrom": "data.sku"},
 *      {"name": "push",  "type": "http", "method": "POST",
 *       "url": "https://shop.example/items/{{ref}}",
 *       "headers": {"Authorization": "Bearer {{secrets.shop_token}}"},
 *       "body": "{{data}}", "timeoutMs": 10000,
 *       "retry": {"maxAttempts": 5, "backoffMs": 200, "maxBackoffMs": 10000},
 *       "onError": "fail"},
 *      {"name": "n", "type": "noop"},
 *      {"name": "f", "type": "fail", "code": "Rejected", "message": "..."}]}
 *
 * "refOrder" at the top: "job" (default: items that share a ref are applied in input
 * order within a job) or "tenant" (also across the tenant's jobs of this workflow, in
 * the order the jobs were accepted; see REF ORDER in store/store.h).
 *
 * Step types: validate, map, upsert, patch, delete, http, noop, fail. Per step:
 * "name" (unique, [A-Za-z0-9_-]{1,64}, defaults to the type), "onError" (fail |
 * skip | continue, default fail), "retry" (maxAttempts 1..20, backoffMs,
 * maxBackoffMs; used by steps whose failures can be transient: http) and "limits"
 * (names of processing limits the step consumes: one token per request of an http
 * step, per item otherwise; see engine/limits.h). "limits" at the top: one token per
 * item of the job. At most 8 names each.
 * Secrets are referenced as {{secrets.NAME}} and resolved for the job's tenant when a
 * request is sent (the tenant's own secret, else an operator secret the tenant may use;
 * see engine/secrets.h); definitions hold only the reference. A secret may be named
 * only in an http step's header values, and in its "body" when the step sets
 * "secretBody": true (that body is then sent with the secret but never recorded;
 * spec/secrets.h);
 * anywhere else (url, map, description, ...) and {{secrets}} as a whole are refused
 * with InvalidField and the location as target ("steps[2].url").
 *
 * Built-in workflows are definitions too: "noop" is one noop step, "C.upsert",
 * "C.patch", "C.delete" are one document step on collection C.
 *
 * A compiled definition is immutable and may be shared between threads. */
#ifndef SLUICE_WFDEF_H
#define SLUICE_WFDEF_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Steps per workflow, refused beyond at definition time (422, target "steps"): with
 * MAP_MAX_OPS (lang/map.h) it bounds the work one item can cause. */
#define WFDEF_MAX_STEPS 32

/* The step types, one row each: the enum constant, the name in a definition, the store
 * op of a document step, and the runner that executes it, per item or for the whole
 * batch (steps/step.h; steps/steps.c makes the dispatch table of this list, the
 * definition parser reads only the first three columns). */
#define STEP_TYPES(X)                                                                              \
    X(VALIDATE, "validate", STORE_OP_NONE, step_validate, NULL)                                    \
    X(MAP, "map", STORE_OP_NONE, step_map, NULL)                                                   \
    X(UPSERT, "upsert", STORE_OP_UPSERT, step_document, NULL)                                      \
    X(PATCH, "patch", STORE_OP_PATCH, step_document, NULL)                                         \
    X(DELETE, "delete", STORE_OP_DELETE, step_document, NULL)                                      \
    X(HTTP, "http", STORE_OP_NONE, NULL, step_http)                                                \
    X(NOOP, "noop", STORE_OP_NONE, step_noop, NULL)                                                \
    X(FAIL, "fail", STORE_OP_NONE, step_fail, NULL)

#define STEP_TYPE_ENUM(e, name, op, each, batch) STEP_##e,
enum step_type { STEP_TYPES(STEP_TYPE_ENUM) };
#undef STEP_TYPE_ENUM
enum step_on_error { ON_ERROR_FAIL, ON_ERROR_SKIP, ON_ERROR_CONTINUE };

struct schema;
struct map;
struct http_batch;

struct step_def {
    char name[65];
    enum step_type type;
    enum step_on_error on_error;
    int max_attempts; /* 1 = no retry */
    long backoff_ms, max_backoff_ms;
    struct schema *schema;          /* validate */
    struct map *map;                /* map */
    char collection[65];            /* upsert/patch/delete */
    char *ref_from;                 /* upsert/patch/delete: dotted path giving the ref, or NULL */
    char *method;                   /* http */
    char *url;                      /* http: template */
    json_t *headers;                /* http: object name -> template string, or NULL */
    json_t *body;                   /* http: template value, NULL = the item's data */
    int secret_body;                /* http: "secretBody": true, the body may name secrets */
    long timeout_ms;                /* http */
    struct http_batch *batch;       /* http: many items per request (spec/batch.h), or NULL */
    char *fail_code, *fail_message; /* fail */
    char (*limits)[65];             /* limit names this step's work consumes (see limits.h) */
    size_t nlimits;
    char host[256];   /* http: the URL's host when the template fixes it, else "" */
    char origin[264]; /* http: its host:port (outbound.h) when the template fixes them */
};

struct wfdef {
    char name[161];
    int64_t version; /* 0 for built-ins */
    int builtin;
    size_t nsteps;
    struct step_def *steps;
    int has_http;       /* some step calls out */
    char (*limits)[65]; /* limit names each item consumes (see limits.h) */
    size_t nlimits;
    int ref_order; /* "refOrder": STORE_REF_ORDER_JOB (default, 0 for built-ins) or
                      STORE_REF_ORDER_TENANT (see store.h, REF ORDER) */
};

/* Nonzero when name is a valid collection name ([A-Za-z0-9_-]{1,64}). */
int wfdef_collection_valid(const char *name);
/* Nonzero when name may name a stored workflow: [A-Za-z0-9_.-]{1,128} and not the
 * name of a built-in ("noop", "*.upsert", "*.patch", "*.delete"). */
int wfdef_name_valid(const char *name);
/* Built-in workflow by name. 0 and [out] *out, or -SLUICE_E_UNKNOWN_WORKFLOW. */
int wfdef_builtin(const char *name, struct wfdef **out);
/* Compiles a stored definition. On an error returns -SLUICE_E_INVALID_FIELD and writes
 * a message to err and the offending location to target ("steps[2].url"). */
int wfdef_compile(const char *name, int64_t version, json_t *def, struct wfdef **out, char *err,
                  size_t errlen, char *target, size_t targetlen);
void wfdef_free(struct wfdef *w);
/* The type's name ("validate", "http", ...), from STEP_TYPES. */
const char *wfdef_step_type_name(enum step_type t);
/* The store op of a document step type (STORE_OP_NONE for others), from STEP_TYPES. */
enum store_op wfdef_step_store_op(enum step_type t);

#endif
