/* waker.h - how a background thread sleeps between rounds of work: until a timeout,
 * until another thread kicks it (there is new work) or until it is told to stop.
 * The stager, the janitor and the callback delivery thread each loop on one:
 *
 *     while (!waker_stopping(&w)) {
 *         do_a_round();
 *         waker_wait(&w, IDLE_MS);
 *     }
 *
 * A kick is remembered until the next wait takes it, so a kick that comes while the
 * thread is busy is not lost: the next wait returns at once. The condition variable
 * runs on CLOCK_MONOTONIC, so a change of the wall clock neither cuts a sleep short
 * nor stretches it. Every function but init and release is thread-safe. */
#ifndef SLUICE_WAKER_H
#define SLUICE_WAKER_H

#include <pthread.h>
#include <stdint.h>

struct waker {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int kicked, stop;
};

/* Initializes w (not kicked, not stopping); release with waker_release() once no
 * thread uses it. */
void waker_init(struct waker *w);
void waker_release(struct waker *w);
/* Sleeps until w is kicked or stopped, or for ms milliseconds, and takes the kick.
 * Returns at once when a kick is pending or w is stopping. */
void waker_wait(struct waker *w, int64_t ms);
/* Ends the current or next waker_wait() (new work). */
void waker_kick(struct waker *w);
/* Marks w stopping and ends the current waker_wait(); every later one returns at
 * once. */
void waker_stop(struct waker *w);
/* Nonzero once waker_stop() was called. */
int waker_stopping(struct waker *w);

#endif
