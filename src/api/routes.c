/* routes.c - every route of the API, top to bottom. */
#include "api/api.h"

const struct route api_routes[] = {
    {"GET", "/healthz", api_health, 0, NULL, NULL, NULL},
    {"GET", "/readyz", api_ready, 0, NULL, NULL, NULL},
    {"GET", "/metrics", api_metrics, 0, NULL, NULL, NULL},
    {"GET", "/openapi.json", api_openapi, 0, NULL, NULL, NULL},

    {"GET", "/ui", api_ui_redirect, 0, NULL, NULL, NULL},
    {"GET", "/ui/", api_ui_index, 0, NULL, NULL, NULL},
    {"GET", "/ui/{asset}", api_ui_asset, 0, NULL, NULL, NULL},

    {"POST", "/v1/jobs", api_jobs_submit, ROUTE_AUTH | ROUTE_STREAM_BODY, api_jobs_submit_body,
     api_jobs_submit_end, NULL},
    {"GET", "/v1/jobs", api_jobs_list, ROUTE_AUTH, NULL, NULL, NULL},
    {"POST", "/v1/jobs/{id}:cancel", api_jobs_cancel, ROUTE_AUTH, NULL, NULL, NULL},
    {"GET", "/v1/jobs/{id}", api_jobs_get, ROUTE_AUTH, NULL, NULL, NULL},
    {"DELETE", "/v1/jobs/{id}", api_jobs_delete, ROUTE_AUTH, NULL, NULL, NULL},
    {"GET", "/v1/jobs/{id}/items", api_items_list, ROUTE_AUTH, NULL, NULL, NULL},
    {"GET", "/v1/jobs/{id}/items/{index}", api_items_get, ROUTE_AUTH, NULL, NULL, NULL},
    {"GET", "/v1/jobs/{id}/results", api_items_results, ROUTE_AUTH, NULL, NULL, NULL},
    {"GET", "/v1/jobs/{id}/events", api_jobs_events, ROUTE_AUTH, NULL, NULL, NULL},
    {"GET", "/v1/jobs/{id}/callbacks", api_jobs_callbacks, ROUTE_AUTH, NULL, NULL, NULL},
    {"GET", "/v1/callbacks/secret", api_callbacks_secret, ROUTE_AUTH, NULL, NULL, NULL},
    {"POST", "/v1/callbacks/secret:rotate", api_callbacks_rotate, ROUTE_AUTH, NULL, NULL, NULL},
    {"GET", "/v1/callbacks/settings", api_callbacks_settings_get, ROUTE_AUTH, NULL, NULL, NULL},
    {"PUT", "/v1/callbacks/settings", api_callbacks_settings_put, ROUTE_AUTH, NULL, NULL, NULL},

    {"POST", "/v1/jobs/{id}:retry", api_jobs_retry, ROUTE_AUTH, NULL, NULL, NULL},

    {"GET", "/v1/workflows", api_defs_list, ROUTE_AUTH, NULL, NULL, &api_def_workflows},
    {"POST", "/v1/workflows/{name}:run", api_runs_start, ROUTE_AUTH, NULL, api_runs_end, NULL},
    {"PUT", "/v1/workflows/{name}", api_defs_put, ROUTE_AUTH, NULL, NULL, &api_def_workflows},
    {"GET", "/v1/workflows/{name}", api_defs_get, ROUTE_AUTH, NULL, NULL, &api_def_workflows},
    {"DELETE", "/v1/workflows/{name}", api_defs_delete, ROUTE_AUTH, NULL, NULL, &api_def_workflows},

    {"GET", "/v1/limits", api_defs_list, ROUTE_AUTH, NULL, NULL, &api_def_limits},
    {"PUT", "/v1/limits/{name}", api_defs_put, ROUTE_AUTH, NULL, NULL, &api_def_limits},
    {"GET", "/v1/limits/{name}", api_defs_get, ROUTE_AUTH, NULL, NULL, &api_def_limits},
    {"DELETE", "/v1/limits/{name}", api_defs_delete, ROUTE_AUTH, NULL, NULL, &api_def_limits},

    {"GET", "/v1/secrets", api_defs_list, ROUTE_AUTH, NULL, NULL, &api_def_secrets},
    {"PUT", "/v1/secrets/{name}", api_defs_put, ROUTE_AUTH, NULL, NULL, &api_def_secrets},
    {"GET", "/v1/secrets/{name}", api_defs_get, ROUTE_AUTH, NULL, NULL, &api_def_secrets},
    {"DELETE", "/v1/secrets/{name}", api_defs_delete, ROUTE_AUTH, NULL, NULL, &api_def_secrets},

    {"GET", "/v1/hooks", api_defs_list, ROUTE_AUTH, NULL, NULL, &api_def_hooks},
    {"POST", "/v1/hooks/{name}/events", api_hooks_event, 0, NULL, NULL, NULL},
    {"PUT", "/v1/hooks/{name}", api_defs_put, ROUTE_AUTH, NULL, NULL, &api_def_hooks},
    {"GET", "/v1/hooks/{name}", api_defs_get, ROUTE_AUTH, NULL, NULL, &api_def_hooks},
    {"DELETE", "/v1/hooks/{name}", api_defs_delete, ROUTE_AUTH, NULL, NULL, &api_def_hooks},

    {"GET", "/v1/collections/{collection}", api_docs_list, ROUTE_AUTH, NULL, NULL, NULL},
    {"GET", "/v1/collections/{collection}/{ref}", api_docs_get, ROUTE_AUTH, NULL, NULL, NULL},
    {"PUT", "/v1/collections/{collection}/{ref}", api_docs_put, ROUTE_AUTH, NULL, NULL, NULL},
    {"PATCH", "/v1/collections/{collection}/{ref}", api_docs_patch, ROUTE_AUTH, NULL, NULL, NULL},
    {"DELETE", "/v1/collections/{collection}/{ref}", api_docs_delete, ROUTE_AUTH, NULL, NULL, NULL},
};

const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
