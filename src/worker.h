/*
 * worker: a thread with its own event loop, and the control thread's way
 * of making every worker do something (a reload's listener changes, a
 * graceful stop) and knowing when all of them have.
 *
 * With one worker there is no thread: the worker's loop is the control
 * loop and worker_run_all calls the function at once. Otherwise:
 *
 *   control thread                        worker k's thread
 *   worker_run_all(fn) ─ inbox, ev_async ─► async cb: fn(k) under the
 *      waits (plane lock released)            plane lock, then signals
 *   ◄──────────────── all have run fn ───────┘
 */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>

#include "list.h"

struct worker_batch;

struct worker {
    unsigned id;                /* 0 .. N-1 (label `worker`) */
    struct ev_loop *loop;       /* its event loop */
    bool own_thread;            /* loop runs on a thread of its own */
    bool running;               /* the thread was started */
    pthread_t thread;           /* when running */
    ev_async async;             /* a command waits in inbox */
    struct list inbox;          /* cmd while queued, under the plane lock */
    struct list cmd;            /* worker_run_all's entry for this worker */
    struct worker_batch *batch; /* what cmd asks for */
};

/*
 * A worker with id; with own_thread a loop of its own (started by
 * worker_start), else it runs on `shared` (the control loop, no thread).
 * -1 when the loop cannot be created.
 */
int worker_init(struct worker *w, unsigned id, bool own_thread,
                struct ev_loop *shared);
/* Starts the thread (no-op without one). -1 with errno on failure. */
int worker_start(struct worker *w);
/*
 * Control thread: runs fn(w, arg) on each of the n workers' threads and
 * returns once every one has. fn runs with the plane lock held.
 */
void worker_run_all(struct worker *const *ws, unsigned n,
                    void (*fn)(struct worker *w, void *arg), void *arg);
/* Stops the loops and joins the threads; then worker_deinit each. */
void worker_stop_all(struct worker *const *ws, unsigned n);
void worker_deinit(struct worker *w);

/* How many CPUs this process may run on (sched_getaffinity), at least 1. */
unsigned worker_cpus(void);

#endif
