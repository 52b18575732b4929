/* health.c - liveness, readiness and Prometheus metrics (no authentication). */
#include "api/common.h"
#include "engine/limits.h"
#include "util/errors.h"
#include "util/metrics.h"

void api_health(struct request *req)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    reply_json(req, 200, ok, sizeof ok - 1);
}

void api_ready(struct request *req)
{
    struct api *api = api_of(req);
    if (atomic_load(&api->shutting_down)) {
        reply_error(req, SLUICE_E_SHUTTING_DOWN, NULL, NULL);
        return;
    }
    int rc = store_ping(api->st);
    if (rc < 0) {
        reply_error(req, SLUICE_E_STORE_IO, NULL, "store does not answer");
        return;
    }
    static const char ok[] = "{\"status\":\"ready\"}";
    reply_json(req, 200, ok, sizeof ok - 1);
}

void api_metrics(struct request *req)
{
    struct api *api = api_of(req);
    struct buf b = BUF_INIT;
    metrics_render(&b);
    struct store_stats s;
    if (store_stats(api->st, &s) >= 0) {
        buf_puts(&b, "# HELP sluice_jobs Jobs in the store by status.\n# TYPE sluice_jobs gauge\n");
        for (int st = JOB_NOT_STARTED; st <= JOB_CANCELED; st++)
            buf_printf(&b, "sluice_jobs{status=\"%s\"} %lld\n", store_job_status_name(st),
                       (long long)s.jobs_by_status[st]);
        buf_printf(&b,
                   "# HELP sluice_queue_depth Items waiting to be claimed.\n"
                   "# TYPE sluice_queue_depth gauge\nsluice_queue_depth %lld\n"
                   "# HELP sluice_items_in_flight Items claimed and not finished.\n"
                   "# TYPE sluice_items_in_flight gauge\nsluice_items_in_flight %lld\n"
                   "# HELP sluice_claims_active Active claims (leases).\n"
                   "# TYPE sluice_claims_active gauge\nsluice_claims_active %lld\n",
                   (long long)s.items_pending, (long long)s.items_processing,
                   (long long)s.claims_active);
    }
    /* What this node learned of its upstreams' limits (per node, as it is learned). */
    limits_metrics(api->limits, &b);
    /* Several nodes share a PostgreSQL store: each serves its own /metrics. */
    buf_printf(&b,
               "# HELP sluice_node_info This node: its id in the store (claims record it) "
               "and the store backend.\n# TYPE sluice_node_info gauge\n"
               "sluice_node_info{node=\"%s\",backend=\"%s\"} 1\n",
               store_node_id(api->st), store_backend(api->st));
    reply_buf(req, 200, "text/plain; version=0.0.4", &b);
    buf_release(&b);
}
