/* janitor.c - the retention thread; see janitor.h.
 *
 * Sleeps on a condition variable with a timeout, so janitor_stop() and
 * janitor_notify() take effect at once. Between two sweep calls it checks the stop
 * flag, so stopping never waits for more than one transaction. */
#include "engine/janitor.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/submit.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/xmalloc.h"

struct janitor {
    struct store *st;
    struct janitor_config cfg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int stop, wanted;
};

void janitor_config_default(struct janitor_config *cfg)
{
    cfg->retention_ms = 30LL * 24 * 3600 * 1000;
    cfg->interval_ms = 5000;
    cfg->max_rows = 2000;
}

static int stopping(struct janitor *j)
{
    pthread_mutex_lock(&j->mu);
    int s = j->stop;
    pthread_mutex_unlock(&j->mu);
    return s;
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
        if (rc == 0 || stopping(j))
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
    pthread_mutex_lock(&j->mu);
    while (!j->stop) {
        j->wanted = 0;
        pthread_mutex_unlock(&j->mu);
        sweep(j);
        pthread_mutex_lock(&j->mu);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(j->cfg.interval_ms / 1000);
        until.tv_nsec += (long)(j->cfg.interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!j->stop && !j->wanted) {
            if (pthread_cond_timedwait(&j->cv, &j->mu, &until) == ETIMEDOUT)
                break;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

int janitor_start(struct store *st, const struct janitor_config *cfg, struct janitor **out)
{
    struct janitor *j = xcalloc(1, sizeof *j);
    pthread_condattr_t ca;
    j->st = st;
    j->cfg = *cfg;
    if (j->cfg.interval_ms <= 0)
        j->cfg.interval_ms = 5000;
    if (j->cfg.retention_ms / 2 < j->cfg.interval_ms) /* a short retention is kept closely */
        j->cfg.interval_ms = j->cfg.retention_ms / 2 > 200 ? j->cfg.retention_ms / 2 : 200;
    if (j->cfg.max_rows == 0)
        j->cfg.max_rows = 2000;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&j->thread, NULL, janitor_main, j) != 0) {
        pthread_cond_destroy(&j->cv);
        pthread_mutex_destroy(&j->mu);
        free(j);
        *out = NULL;
        return -SLUICE_E_INTERNAL;
    }
    *out = j;
    return 0;
}

void janitor_notify(struct janitor *j)
{
    pthread_mutex_lock(&j->mu);
    j->wanted = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

void janitor_stop(struct janitor *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->stop = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}
