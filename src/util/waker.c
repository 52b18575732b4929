/* waker.c - a background thread's sleep between rounds; see waker.h. */
#include "util/waker.h"

#include <time.h>

#include "util/clock.h"

void waker_init(struct waker *w)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->kicked = w->stop = 0;
}

void waker_release(struct waker *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

void waker_wait(struct waker *w, int64_t ms)
{
    struct timespec until;
    clock_deadline(CLOCK_MONOTONIC, ms, &until);
    pthread_mutex_lock(&w->mu);
    while (!w->kicked && !w->stop)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0)
            break;
    w->kicked = 0;
    pthread_mutex_unlock(&w->mu);
}

void waker_kick(struct waker *w)
{
    pthread_mutex_lock(&w->mu);
    w->kicked = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void waker_stop(struct waker *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int waker_stopping(struct waker *w)
{
    pthread_mutex_lock(&w->mu);
    int s = w->stop;
    pthread_mutex_unlock(&w->mu);
    return s;
}
