/* stager.c - the retry staging thread; see stager.h. */
#include "engine/stager.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "util/errors.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* With nothing kicked, look again this often: retries left by another node of a
 * shared store, or a batch that failed on a store error. */
#define IDLE_MS 2000

struct stager {
    struct store *st;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int kicked, stop;
    pthread_t thread;
};

static void wait_kick(struct stager *sg, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (ms % 1000) * 1000000L;
    ts.tv_sec += ms / 1000 + ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&sg->mu);
    while (!sg->kicked && !sg->stop)
        if (pthread_cond_timedwait(&sg->cv, &sg->mu, &ts) != 0)
            break;
    sg->kicked = 0;
    pthread_mutex_unlock(&sg->mu);
}

static int stopping(struct stager *sg)
{
    pthread_mutex_lock(&sg->mu);
    int s = sg->stop;
    pthread_mutex_unlock(&sg->mu);
    return s;
}

static void *run(void *arg)
{
    struct stager *sg = arg;
    char id[STORE_ID_MAX];
    while (!stopping(sg)) {
        int rc = store_job_retry_stage(sg->st, STAGER_BATCH, id);
        if (rc == 2)
            log_write(LOG_INFO, "retry staged", "job", id, NULL);
        if (rc > 0)
            continue; /* more to copy, here or in another retry */
        if (rc < 0)
            log_write(LOG_WARN, "retry staging failed; trying again", "job", id[0] ? id : NULL,
                      "error", sluice_err_code(rc), NULL);
        wait_kick(sg, IDLE_MS);
    }
    return NULL;
}

struct stager *stager_start(struct store *st)
{
    struct stager *sg = xcalloc(1, sizeof *sg);
    sg->st = st;
    pthread_mutex_init(&sg->mu, NULL);
    pthread_cond_init(&sg->cv, NULL);
    if (pthread_create(&sg->thread, NULL, run, sg) != 0) {
        log_write(LOG_ERROR, "cannot start the retry staging thread", NULL);
        pthread_mutex_destroy(&sg->mu);
        pthread_cond_destroy(&sg->cv);
        free(sg);
        return NULL;
    }
    return sg;
}

void stager_kick(struct stager *sg)
{
    if (!sg)
        return;
    pthread_mutex_lock(&sg->mu);
    sg->kicked = 1;
    pthread_cond_signal(&sg->cv);
    pthread_mutex_unlock(&sg->mu);
}

void stager_stop(struct stager *sg)
{
    if (!sg)
        return;
    pthread_mutex_lock(&sg->mu);
    sg->stop = 1;
    pthread_cond_signal(&sg->cv);
    pthread_mutex_unlock(&sg->mu);
    pthread_join(sg->thread, NULL);
    pthread_mutex_destroy(&sg->mu);
    pthread_cond_destroy(&sg->cv);
    free(sg);
}
