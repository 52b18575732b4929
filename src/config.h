/* config.h - server configuration from flags and SLUICE_* environment variables.
 * Precedence: flag > environment > default. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include "api/api.h"
#include "engine/engine.h"
#include "engine/janitor.h"
#include "engine/runs.h"
#include "http/server.h"
#include "store/store.h"

struct config {
    char host[64];
    unsigned port;
    const char *store_url;
    struct store_options store;
    struct engine_config engine;
    struct http_config http;
    struct api_config api;
    int log_debug;
    const char *outbound_allow;    /* comma-separated hosts/CIDRs for http steps, or "" */
    const char *limits;            /* server limits: JSON object, "@FILE", or "" */
    size_t max_upstream_backoff_s; /* cap of a Retry-After back-off on a limit */
    size_t outbound_max_body;      /* response bytes kept per http call */
    size_t retention_seconds;      /* terminal jobs are kept this long; sets janitor and
                                      store.retention_ms */
    struct janitor_config janitor;
    /* Completion callbacks (engine/callbacks.h). */
    const char *public_url;      /* base of links in callback bodies; "" = http://HOST:PORT */
    const char *callback_secret; /* server secret; "" = generated once, kept in the store */
    size_t callback_backoff_ms;  /* first retry wait */
    size_t callback_max_age_s;   /* retry this long after the job ended, then abandon */
    unsigned tenant_rate;        /* requests per second per tenant; 0 = unlimited */
    unsigned tenant_burst;       /* requests a tenant may send at once; 0 = unlimited */
    unsigned auth_fail_rate;     /* failed authentications per minute per client address; 0 = off */
    struct runs_config runs;     /* synchronous runs: threads, caps, deadline (engine/runs.h) */
};

/* Fills cfg from defaults, the environment and argv (serve's flags, argv[0] = "serve").
 * On a bad value writes a message to err (size errlen) and returns -1; returns 1 when
 * --help was asked (usage in err); 0 otherwise. */
int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen);

#endif
