/*
 * plane: what the control thread and the worker threads share, and the one
 * lock that orders them (docs/architecture.md, "Threads").
 *
 * The control thread owns every mutable structure of the control plane
 * (DNS cache, pools, balancers, health state). It holds the plane lock
 * whenever its loop runs callbacks and lets go of it only while the loop
 * waits in poll (libev's loop release/acquire hooks), so nothing it does
 * needs a lock of its own. A worker takes the lock only for the few short
 * steps of a request that read or change that state (upstream's pick and
 * release, a DNS wait); everything else a worker does touches its own
 * loop and connections, or counters updated with relaxed atomics.
 *
 * When a worker, under the lock, starts or changes a watcher of the
 * control loop (a health timer, a DNS wake-up), it calls plane_kick so the
 * control loop, which may be asleep in poll, looks again.
 *
 * With one worker there are no threads: the lock, the kick and the
 * atomics' ordering all cost nothing more than a predictable branch.
 */
#ifndef FERRY_PLANE_H
#define FERRY_PLANE_H

#include <pthread.h>
#include <stdbool.h>

struct ev_loop;

/* Counters written by every worker and read by the stats endpoint. */
#define PLANE_ADD(var, n) __atomic_fetch_add(&(var), (n), __ATOMIC_RELAXED)
#define PLANE_SUB(var, n) __atomic_fetch_sub(&(var), (n), __ATOMIC_RELAXED)
#define PLANE_GET(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)
#define PLANE_SET(var, v) __atomic_store_n(&(var), (v), __ATOMIC_RELAXED)

/*
 * Before any worker thread exists: threads = whether there will be worker
 * threads besides the caller, which becomes the control thread and holds
 * the lock. With threads, the control loop releases the lock while it
 * waits in poll.
 */
int plane_init(struct ev_loop *control, bool threads);
/* After the last worker thread was joined: the lock is let go. */
void plane_deinit(void);
bool plane_threaded(void);
/* Whether the caller is the control thread (always true without threads). */
bool plane_on_control(void);

/* Reentrant on one thread; no-ops without threads. */
void plane_lock(void);
void plane_unlock(void);
/*
 * Control thread, holding the lock once: waits on c, the lock released
 * meanwhile (a worker signals c under the lock).
 */
void plane_wait(pthread_cond_t *c);
/* Wakes the control loop so it sees watchers a worker changed. */
void plane_kick(void);

#endif
