/* api.h - the REST API: route table, authentication and the shared state handlers
 * reach through req_app(). Handlers parse, call the engine or the store, and reply;
 * they include neither libmicrohttpd nor SQL. */
#ifndef SLUICE_API_H
#define SLUICE_API_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "http/route.h"
#include "ingest/ingest.h"
#include "store/store.h"

struct api_config {
    struct ingest_limits limits; /* items per job, bytes per item, depth */
    size_t submit_batch;         /* items per store transaction while receiving */
    uint64_t max_body_bytes;     /* submit body bytes once decoded (--max-body-bytes); 0 = none */
    size_t max_open_jobs;     /* per tenant: unfinished jobs before submits get 429; 0 = no cap */
    size_t max_pending_items; /* per tenant: unclaimed items before submits get 429; 0 = no cap */
    size_t max_memory_mb;     /* resident memory above which submits get 503; 0 = auto */
    unsigned max_uploads;     /* submits receiving at once, all tenants; 0 = no cap */
    unsigned max_parked;      /* event streams + long polls at once, all tenants; 0 = no cap */
    unsigned tenant_share;    /* percent of max_uploads / max_parked one tenant may hold */
};

struct outbound;
struct ratelimit;
struct waiters;
struct runs;
struct stager;
struct callbacks;
struct limits;
struct secrets;
struct slots;

struct api {
    struct store *st;
    struct engine *eng;
    struct outbound *ob;           /* http steps of synchronous runs; may be NULL */
    const struct secrets *secrets; /* the operator's secrets (engine/secrets.h); may be NULL */
    struct waiters *waiters;       /* parked long polls and event streams */
    struct runs *runs;             /* synchronous runs' threads (engine/runs.h); NULL: inline */
    struct stager *stager;         /* copies retries' items (engine/stager.h); may be NULL */
    struct callbacks *callbacks;   /* completion callbacks: the tenants' signing keys */
    struct ratelimit *tenant_rl;   /* requests per tenant; NULL = unlimited */
    struct ratelimit *authfail_rl; /* failed authentications per client address; NULL = off */
    struct limits *limits;         /* processing limits (engine/limits.h); never NULL in serve */
    unsigned char cursor_key[16];  /* seals the jobs list's cursors (util/cursor.h) */
    struct api_config cfg;
    atomic_int shutting_down;
    atomic_uint uploads; /* submits receiving now (max_uploads) */
    struct slots *slots; /* per-tenant shares of uploads and parked requests */
};

extern const struct route api_routes[];
extern const size_t api_nroutes;

/* The server's auth hook: "Authorization: Bearer <key>" -> tenant, or 401. */
int api_authenticate(struct request *req);

/* Handlers, one file per resource. */
void api_jobs_submit(struct request *req);
int api_jobs_submit_body(struct request *req, const char *data, size_t len);
void api_jobs_submit_end(struct request *req, int completed);
void api_jobs_get(struct request *req);
void api_jobs_events(struct request *req);
/* After a submit: honours "Prefer: wait=N" (1..60 s) by parking the request until the
 * job ends (200 with the monitor and Preference-Applied) or N s pass (202). Returns
 * 1 when it parked the request, 0 when the caller replies as usual. */
int api_prefer_wait(struct request *req, const struct store_job *job);
void api_jobs_list(struct request *req);
void api_jobs_cancel(struct request *req);
void api_jobs_delete(struct request *req);
void api_jobs_retry(struct request *req);
/* GET /v1/jobs/{id}/callbacks: the job's callback deliveries and their attempts. */
void api_jobs_callbacks(struct request *req);
/* api/callbacks.c: GET /v1/callbacks/secret (the tenant's secrets for verifying its
 * callbacks), POST /v1/callbacks/secret:rotate, GET and PUT /v1/callbacks/settings
 * (the tenant's default signature format). */
void api_callbacks_secret(struct request *req);
void api_callbacks_rotate(struct request *req);
void api_callbacks_settings_get(struct request *req);
void api_callbacks_settings_put(struct request *req);
void api_items_list(struct request *req);
void api_items_get(struct request *req);
void api_items_results(struct request *req);
void api_docs_get(struct request *req);
void api_docs_put(struct request *req);
void api_docs_patch(struct request *req);
void api_docs_delete(struct request *req);
void api_docs_list(struct request *req);
/* The named definitions a tenant owns (api/defs.c), one set of handlers for the four
 * collections /v1/workflows, /v1/hooks, /v1/limits and /v1/secrets: each finds its
 * kind from the path. */
/* The four kinds, each a route's arg (struct route.arg) for the handlers below. */
struct def_kind;
extern const struct def_kind api_def_workflows, api_def_hooks, api_def_limits, api_def_secrets;
void api_defs_put(struct request *req);
void api_defs_get(struct request *req);
void api_defs_list(struct request *req);
void api_defs_delete(struct request *req);
/* POST /v1/workflows/{name}:run (api/runs.c): one item through a workflow, answered
 * when it is done; api_runs_end frees the run when the request ends. */
void api_runs_start(struct request *req);
void api_runs_end(struct request *req, int completed);
void api_hooks_event(struct request *req);
void api_health(struct request *req);
void api_ready(struct request *req);
void api_metrics(struct request *req);
/* The dashboard's static files (api/ui.c): GET /ui -> 301 /ui/, GET /ui/ (index.html)
 * and GET /ui/{asset}, with ETag/304, no-cache and a strict CSP; no authentication. */
void api_ui_redirect(struct request *req);
void api_ui_index(struct request *req);
void api_ui_asset(struct request *req);
/* GET /openapi.json: the API description embedded at build time (api/openapi.c). */
void api_openapi(struct request *req);

#endif
