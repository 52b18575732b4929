/* errors.h - the one table of sluice error codes.
 *
 * Every fallible function returns int: >= 0 success, negative = -SLUICE_E_<NAME>.
 * Each row gives the HTTP status and the public code used in the error body
 * {"error": {"code", "message", "target"}}, so code, status and wire name cannot
 * drift apart (libuv's UV_ERRNO_MAP). Item-level failures use the same codes. */
#ifndef SLUICE_ERRORS_H
#define SLUICE_ERRORS_H

#define SLUICE_ERRORS(X)                                                                           \
    X(INTERNAL, 500, "InternalError", "internal error")                                            \
    X(INVALID_JSON, 400, "InvalidJson", "request body is not valid JSON")                          \
    X(INVALID_NDJSON, 400, "InvalidNdjson", "request body is not valid NDJSON")                    \
    X(INVALID_REQUEST, 400, "InvalidRequest", "the request is malformed")                          \
    X(INVALID_PARAMETER, 400, "InvalidParameter", "a query or path parameter is invalid")          \
    X(UNAUTHORIZED, 401, "Unauthorized", "missing or invalid API key")                             \
    X(RATE_LIMITED, 429, "RateLimited", "too many requests; retry after the Retry-After delay")    \
    X(TOO_MANY_JOBS, 429, "TooManyJobs", "the tenant has too many unfinished jobs")                \
    X(TOO_MANY_PENDING, 429, "TooManyPendingItems", "the tenant has too many items waiting")       \
    X(TOO_MANY_RUNS, 429, "TooManyRuns", "too many synchronous runs in progress; retry later")     \
    X(NOT_FOUND, 404, "NotFound", "no such resource")                                              \
    X(METHOD_NOT_ALLOWED, 405, "MethodNotAllowed", "method not allowed on this resource")          \
    X(CONFLICT, 409, "Conflict", "the resource is in a state that does not allow this")            \
    X(PRECONDITION_FAILED, 412, "PreconditionFailed", "If-Match does not match the current ETag")  \
    X(PAYLOAD_TOO_LARGE, 413, "PayloadTooLarge", "request body too large")                         \
    X(TOO_MANY_ITEMS, 413, "TooManyItems", "too many items in one job")                            \
    X(ITEM_TOO_LARGE, 413, "ItemTooLarge", "item too large")                                       \
    X(UNSUPPORTED_MEDIA_TYPE, 415, "UnsupportedMediaType", "unsupported content type")             \
    X(INVALID_ITEM, 422, "InvalidItem", "an item is invalid")                                      \
    X(INVALID_FIELD, 422, "InvalidField", "a field is missing or has the wrong type")              \
    X(UNKNOWN_WORKFLOW, 422, "UnknownWorkflow", "no such workflow")                                \
    X(EMPTY_JOB, 422, "EmptyJob", "a job needs at least one item")                                 \
    X(DOCUMENT_NOT_FOUND, 404, "DocumentNotFound", "no such document")                             \
    X(INVALID_DATA, 422, "InvalidData", "item data cannot be applied")                             \
    X(MAX_ATTEMPTS, 500, "MaxAttemptsExceeded", "item abandoned after too many attempts")          \
    X(LEASE_LOST, 409, "LeaseLost", "the claim on these items expired")                            \
    X(STORE_BUSY, 503, "StoreBusy", "storage busy; retry later")                                   \
    X(STORE_IO, 503, "StoreUnavailable", "storage unavailable; retry later")                       \
    X(STORE_FULL, 503, "StoreFull", "storage is full; retry later")                                \
    X(SHUTTING_DOWN, 503, "ShuttingDown", "server is shutting down")                               \
    X(MEMORY_PRESSURE, 503, "MemoryPressure", "the server is short of memory; retry later")        \
    X(SERVER_BUSY, 503, "ServerBusy", "too many uploads or streams in progress; retry later")      \
    X(VALIDATION_FAILED, 422, "ValidationFailed", "the item's data does not match the schema")     \
    X(MAP_FAILED, 422, "MapFailed", "the map step could not reshape the item")                     \
    X(TEMPLATE_ERROR, 422, "TemplateError", "a template could not be rendered for the item")       \
    X(STEP_FAILED, 422, "StepFailed", "a workflow step failed the item")                           \
    X(UPSTREAM_ERROR, 502, "UpstreamError", "the upstream answered with an error status")          \
    X(UPSTREAM_UNAVAILABLE, 504, "UpstreamUnavailable", "the upstream could not be reached")       \
    X(RUN_TIMEOUT, 504, "RunTimeout", "the synchronous run did not finish within its deadline")    \
    X(TARGET_NOT_ALLOWED, 422, "TargetNotAllowed", "the outbound target is not allowed")           \
    X(SECRET_NOT_FOUND, 422, "SecretNotFound",                                                     \
      "a secret the workflow names is not defined for this tenant")                                \
    X(WORKFLOW_OUTDATED, 422, "WorkflowOutdated",                                                  \
      "the stored workflow breaks a rule added since it was written; write it again")              \
    X(IDEMPOTENCY_KEY_REUSED, 422, "IdempotencyKeyReused",                                         \
      "the Idempotency-Key was used with a different request")                                     \
    X(URI_TOO_LONG, 414, "UriTooLong", "the request target is too long")                           \
    X(HEADERS_TOO_LARGE, 431, "HeadersTooLarge", "the request header block is too large")          \
    X(TENANT_SHARE, 429, "TenantShareExceeded",                                                    \
      "the tenant holds its share of this server's slots; retry after the Retry-After delay")      \
    X(INVALID_CSV, 400, "InvalidCsv", "request body is not valid CSV")

enum sluice_error {
    SLUICE_OK = 0,
#define X(name, status, code, msg) SLUICE_E_##name,
    SLUICE_ERRORS(X)
#undef X
        SLUICE_E__COUNT
};

/* Lookups by error number (positive or negative); unknown numbers map to INTERNAL. */
int sluice_err_status(int err);
const char *sluice_err_code(int err);
const char *sluice_err_message(int err);

#endif
