/* metrics.c - process counters and a fixed-bucket latency histogram; see metrics.h. */
#include "util/metrics.h"

#include <stdatomic.h>

static const double bucket_s[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof bucket_s / sizeof bucket_s[0])

static atomic_llong req_by_class[6]; /* 1xx..5xx by status / 100 */
static atomic_llong req_bucket[NBUCKETS];
static atomic_llong req_count, req_sum_ns;
static atomic_llong items_ok, items_failed, items_skipped, jobs_accepted, items_accepted;

void metrics_request(int status, int64_t duration_ns)
{
    int cls = status / 100;
    if (cls < 1 || cls > 5)
        cls = 5;
    atomic_fetch_add(&req_by_class[cls], 1);
    atomic_fetch_add(&req_count, 1);
    atomic_fetch_add(&req_sum_ns, duration_ns);
    double s = (double)duration_ns / 1e9;
    for (unsigned i = 0; i < NBUCKETS; i++)
        if (s <= bucket_s[i])
            atomic_fetch_add(&req_bucket[i], 1);
}

void metrics_items(int64_t succeeded, int64_t failed, int64_t skipped)
{
    atomic_fetch_add(&items_ok, succeeded);
    atomic_fetch_add(&items_failed, failed);
    atomic_fetch_add(&items_skipped, skipped);
}

void metrics_job_accepted(int64_t items)
{
    atomic_fetch_add(&jobs_accepted, 1);
    atomic_fetch_add(&items_accepted, items);
}

void metrics_render(struct buf *b)
{
    buf_puts(b, "# HELP sluice_http_requests_total HTTP requests answered, by status class.\n"
                "# TYPE sluice_http_requests_total counter\n");
    for (int c = 1; c <= 5; c++)
        buf_printf(b, "sluice_http_requests_total{code=\"%dxx\"} %lld\n", c,
                   (long long)atomic_load(&req_by_class[c]));
    buf_puts(b, "# HELP sluice_http_request_duration_seconds HTTP request latency.\n"
                "# TYPE sluice_http_request_duration_seconds histogram\n");
    for (unsigned i = 0; i < NBUCKETS; i++)
        buf_printf(b, "sluice_http_request_duration_seconds_bucket{le=\"%g\"} %lld\n", bucket_s[i],
                   (long long)atomic_load(&req_bucket[i]));
    long long n = atomic_load(&req_count);
    buf_printf(b, "sluice_http_request_duration_seconds_bucket{le=\"+Inf\"} %lld\n", n);
    buf_printf(b, "sluice_http_request_duration_seconds_sum %.6f\n",
               (double)atomic_load(&req_sum_ns) / 1e9);
    buf_printf(b, "sluice_http_request_duration_seconds_count %lld\n", n);
    buf_printf(b,
               "# HELP sluice_items_processed_total Items finished by this node's workers.\n"
               "# TYPE sluice_items_processed_total counter\n"
               "sluice_items_processed_total{outcome=\"succeeded\"} %lld\n"
               "sluice_items_processed_total{outcome=\"failed\"} %lld\n"
               "sluice_items_processed_total{outcome=\"skipped\"} %lld\n"
               "# HELP sluice_items_failed_total Items that failed on this node.\n"
               "# TYPE sluice_items_failed_total counter\n"
               "sluice_items_failed_total %lld\n"
               "# HELP sluice_jobs_accepted_total Jobs accepted by this node.\n"
               "# TYPE sluice_jobs_accepted_total counter\n"
               "sluice_jobs_accepted_total %lld\n"
               "# HELP sluice_items_accepted_total Items accepted by this node.\n"
               "# TYPE sluice_items_accepted_total counter\n"
               "sluice_items_accepted_total %lld\n",
               (long long)atomic_load(&items_ok), (long long)atomic_load(&items_failed),
               (long long)atomic_load(&items_skipped), (long long)atomic_load(&items_failed),
               (long long)atomic_load(&jobs_accepted), (long long)atomic_load(&items_accepted));
}
