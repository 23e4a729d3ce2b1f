/*
 * plane: the control plane's lock (see plane.h).
 */
#include "plane.h"

#include <assert.h>
#include <ev.h>

static pthread_mutex_t plane_mutex = PTHREAD_MUTEX_INITIALIZER;
static bool plane_threads;
static struct ev_loop *plane_loop;
static ev_async plane_wake;
static pthread_t plane_control;
/* How many times this thread holds the lock (nested sections). */
static __thread unsigned plane_depth;
/* The control thread's depth while its loop waits in poll. */
static unsigned plane_saved_depth;

void
plane_lock(void)
{
    if (plane_threads && plane_depth++ == 0)
        pthread_mutex_lock(&plane_mutex);
}

void
plane_unlock(void)
{
    if (!plane_threads)
        return;
    assert(plane_depth > 0);
    if (--plane_depth == 0)
        pthread_mutex_unlock(&plane_mutex);
}

/* libev: the control loop is about to wait in poll. */
static void
plane_release_cb(struct ev_loop *loop)
{
    (void)loop;
    plane_saved_depth = plane_depth;
    plane_depth = 0;
    pthread_mutex_unlock(&plane_mutex);
}

/* libev: the control loop is back, about to run callbacks. */
static void
plane_acquire_cb(struct ev_loop *loop)
{
    (void)loop;
    pthread_mutex_lock(&plane_mutex);
    plane_depth = plane_saved_depth;
}

/* Nothing to do: waking the loop is the point. */
static void
plane_wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

int
plane_init(struct ev_loop *control, bool threads)
{
    plane_loop = control;
    plane_control = pthread_self();
    plane_threads = threads;
    if (!threads)
        return 0;
    plane_lock();
    ev_async_init(&plane_wake, plane_wake_cb);
    ev_async_start(control, &plane_wake);
    /* The async watcher must not keep ev_run alive on its own. */
    ev_unref(control);
    ev_set_loop_release_cb(control, plane_release_cb, plane_acquire_cb);
    return 0;
}

void
plane_deinit(void)
{
    if (!plane_threads)
        return;
    ev_set_loop_release_cb(plane_loop, NULL, NULL);
    ev_ref(plane_loop);
    ev_async_stop(plane_loop, &plane_wake);
    plane_unlock();
    plane_threads = false;
}

bool
plane_threaded(void)
{
    return plane_threads;
}

bool
plane_on_control(void)
{
    return !plane_threads || pthread_equal(pthread_self(), plane_control);
}

void
plane_wait(pthread_cond_t *c)
{
    assert(plane_threads && plane_depth == 1);
    pthread_cond_wait(c, &plane_mutex);
}

void
plane_kick(void)
{
    if (plane_threads)
        ev_async_send(plane_loop, &plane_wake);
}
