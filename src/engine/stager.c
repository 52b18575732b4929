/* stager.c - the retry staging thread; see stager.h. */
#include "engine/stager.h"

#include <pthread.h>
#include <stdlib.h>

#include "util/errors.h"
#include "util/log.h"
#include "util/waker.h"
#include "util/xmalloc.h"

/* With nothing kicked, look again this often: retries left by another node of a
 * shared store, or a batch that failed on a store error. */
#define IDLE_MS 2000

struct stager {
    struct store *st;
    struct waker wk; /* kicked by stager_kick */
    pthread_t thread;
};

/* Staging retries take turns, a batch each (the store's cursor): a retry of a million
 * items does not hold up one of ten, and one whose batches keep failing does not hold
 * up the others. A pass over them all that only failed waits before the next. */
static void *run(void *arg)
{
    struct stager *sg = arg;
    char id[STORE_ID_MAX];
    int64_t cursor = 0;           /* the retry advanced last; 0: start from the oldest */
    int progress = 0, errors = 0; /* in this pass */
    while (!waker_stopping(&sg->wk)) {
        int64_t picked = cursor;
        int rc = store_job_retry_stage(sg->st, STAGER_BATCH, &picked, id);
        if (rc == STORE_STAGE_FINISHED)
            log_write(LOG_INFO, "retry staged", "job", id, NULL);
        if (rc > 0) {
            cursor = picked;
            progress = 1;
            continue; /* more to copy, here or in another retry */
        }
        if (rc < 0)
            log_write(LOG_WARN, "retry staging failed; trying again", "job", id[0] ? id : NULL,
                      "error", sluice_err_code(rc), NULL);
        if (rc < 0 && picked != cursor) { /* that retry failed: the next one's turn */
            cursor = picked;
            errors = 1;
            continue;
        }
        if (rc == STORE_STAGE_IDLE && cursor > 0) { /* the end of a pass: again from the oldest */
            int idle = errors && !progress;
            cursor = 0;
            progress = errors = 0;
            if (!idle)
                continue;
        }
        waker_wait(&sg->wk, IDLE_MS); /* nothing staging, the store failed, or only failures */
    }
    return NULL;
}

struct stager *stager_start(struct store *st)
{
    struct stager *sg = xcalloc(1, sizeof *sg);
    sg->st = st;
    waker_init(&sg->wk);
    if (pthread_create(&sg->thread, NULL, run, sg) != 0) {
        log_write(LOG_ERROR, "cannot start the retry staging thread", NULL);
        waker_release(&sg->wk);
        free(sg);
        return NULL;
    }
    return sg;
}

void stager_kick(struct stager *sg)
{
    if (sg)
        waker_kick(&sg->wk);
}

void stager_stop(struct stager *sg)
{
    if (!sg)
        return;
    waker_stop(&sg->wk);
    pthread_join(sg->thread, NULL);
    waker_release(&sg->wk);
    free(sg);
}
