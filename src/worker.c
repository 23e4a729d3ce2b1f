/*
 * worker: event-loop threads and the control thread's commands to them
 * (see worker.h).
 */
#include "worker.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>

#include "buf.h"
#include "plane.h"

/* One worker_run_all: what to run and how many have run it. */
struct worker_batch {
    void (*fn)(struct worker *w, void *arg);
    void *arg;
    unsigned done;       /* workers that have run fn */
    pthread_cond_t cond; /* signalled at each one */
};

static void
worker_async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = container_of(a, struct worker, async);
    struct list *l;

    (void)loop;
    (void)revents;
    plane_lock();
    /* One command at most: worker_run_all waits until it is done. */
    while ((l = list_first(&w->inbox)) != NULL) {
        struct worker_batch *b = w->batch;
        list_del(l);
        b->fn(w, b->arg);
        b->done++;
        pthread_cond_signal(&b->cond);
    }
    plane_unlock();
}

int
worker_init(struct worker *w, unsigned id, bool own_thread,
            struct ev_loop *shared)
{
    w->id = id;
    w->own_thread = own_thread;
    w->running = false;
    list_init(&w->inbox);
    list_init(&w->cmd);
    /* Signals belong to the control loop (SIGHUP, SIGTERM). */
    w->loop = own_thread ? ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK) : shared;
    if (w->loop == NULL)
        return -1;
    ev_async_init(&w->async, worker_async_cb);
    if (own_thread)
        ev_async_start(w->loop, &w->async);
    return 0;
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    ev_run(w->loop, 0);
    buf_drain_free_list();
    return NULL;
}

int
worker_start(struct worker *w)
{
    sigset_t all, old;
    int rc;

    if (!w->own_thread || w->running)
        return 0;
    /* The thread inherits a full mask: every signal goes to the control
     * thread, whose loop handles it. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    w->running = true;
    return 0;
}

void
worker_run_all(struct worker *const *ws, unsigned n,
               void (*fn)(struct worker *w, void *arg), void *arg)
{
    struct worker_batch b = {.fn = fn, .arg = arg};
    unsigned sent = 0;

    pthread_cond_init(&b.cond, NULL);
    for (unsigned i = 0; i < n; i++) {
        if (!ws[i]->running) {
            /* No thread (yet): the loop is not running, or is ours. */
            fn(ws[i], arg);
            continue;
        }
        ws[i]->batch = &b;
        list_add_tail(&ws[i]->inbox, &ws[i]->cmd);
        ev_async_send(ws[i]->loop, &ws[i]->async);
        sent++;
    }
    while (b.done < sent)
        plane_wait(&b.cond);
    pthread_cond_destroy(&b.cond);
}

static void
worker_break(struct worker *w, void *arg)
{
    (void)arg;
    ev_break(w->loop, EVBREAK_ALL);
}

void
worker_stop_all(struct worker *const *ws, unsigned n)
{
    bool any = false;

    for (unsigned i = 0; i < n; i++)
        any |= ws[i]->running;
    if (!any)
        return;
    worker_run_all(ws, n, worker_break, NULL);
    /* Joining needs the lock let go: a worker may still want it. */
    plane_unlock();
    for (unsigned i = 0; i < n; i++)
        if (ws[i]->running) {
            pthread_join(ws[i]->thread, NULL);
            ws[i]->running = false;
        }
    plane_lock();
}

void
worker_deinit(struct worker *w)
{
    if (!w->own_thread || w->loop == NULL)
        return;
    ev_async_stop(w->loop, &w->async);
    ev_loop_destroy(w->loop);
    w->loop = NULL;
}

unsigned
worker_cpus(void)
{
    cpu_set_t set;
    int n;

    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 1;
    n = CPU_COUNT(&set);
    return n > 0 ? (unsigned)n : 1;
}
