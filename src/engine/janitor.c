/* janitor.c - the retention thread; see janitor.h.
 *
 * Sleeps on a waker (util/waker.h) between rounds, so janitor_stop() and
 * janitor_notify() take effect at once. Between two sweep calls it checks the stop
 * flag, so stopping never waits for more than one transaction. */
#include "engine/janitor.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/submit.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/waker.h"
#include "util/xmalloc.h"

struct janitor {
    struct store *st;
    struct janitor_config cfg;
    pthread_t thread;
    struct waker wk; /* kicked by janitor_notify */
};

void janitor_config_default(struct janitor_config *cfg)
{
    cfg->retention_ms = 30LL * 24 * 3600 * 1000;
    cfg->interval_ms = 5000;
    cfg->max_rows = 2000;
}

/* One round: deletes staged rows of failed submits the store refused to delete
 * then, and sweeps until nothing is left or stop is asked. */
static void sweep(struct janitor *j)
{
    int64_t total = 0;
    submit_retry_aborts(j->st);
    for (;;) {
        int64_t now = clock_now_ms();
        int rc = store_retention_sweep(j->st, now - j->cfg.retention_ms, now - SUBMIT_IDEM_TTL_MS,
                                       j->cfg.max_rows);
        if (rc < 0) {
            log_write(LOG_WARN, "retention sweep failed; retrying later", "error",
                      sluice_err_code(rc), NULL);
            break;
        }
        total += rc;
        if (rc == 0 || waker_stopping(&j->wk))
            break;
    }
    if (total > 0) {
        char n[24];
        snprintf(n, sizeof n, "=%lld", (long long)total);
        log_write(LOG_DEBUG, "retention removed expired rows", "rows", n, NULL);
    }
}

static void *janitor_main(void *arg)
{
    struct janitor *j = arg;
    while (!waker_stopping(&j->wk)) {
        sweep(j);
        waker_wait(&j->wk, j->cfg.interval_ms);
    }
    return NULL;
}

int janitor_start(struct store *st, const struct janitor_config *cfg, struct janitor **out)
{
    struct janitor *j = xcalloc(1, sizeof *j);
    j->st = st;
    j->cfg = *cfg;
    if (j->cfg.interval_ms <= 0)
        j->cfg.interval_ms = 5000;
    if (j->cfg.retention_ms / 2 < j->cfg.interval_ms) /* a short retention is kept closely */
        j->cfg.interval_ms = j->cfg.retention_ms / 2 > 200 ? j->cfg.retention_ms / 2 : 200;
    if (j->cfg.max_rows == 0)
        j->cfg.max_rows = 2000;
    waker_init(&j->wk);
    if (pthread_create(&j->thread, NULL, janitor_main, j) != 0) {
        waker_release(&j->wk);
        free(j);
        *out = NULL;
        return -SLUICE_E_INTERNAL;
    }
    *out = j;
    return 0;
}

void janitor_notify(struct janitor *j)
{
    waker_kick(&j->wk);
}

void janitor_stop(struct janitor *j)
{
    if (!j)
        return;
    waker_stop(&j->wk);
    pthread_join(j->thread, NULL);
    waker_release(&j->wk);
    free(j);
}
