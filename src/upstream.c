/*
 * upstream: pick or wait, connect, reuse (see upstream.h).
 */
#include "upstream.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "health.h"
#include "net.h"
#include "plane.h"

/* Idle keep-alive connections kept per member, and for how long. */
#define IDLE_MAX_PER_MEMBER 512
#define IDLE_TIMEOUT 5.0
/* Recycled connection structs kept per loop. */
#define SPARE_MAX 1024

/* ---------------------------------------------------------------------- */
/* Pick or wait                                                            */

/*
 * A resolution the request waits on completed (on the control thread,
 * plane lock held): pools were updated before waiters woke, so the owner
 * just picks again, on its own loop.
 */
static void
upstream_dns_woken(struct dns_cache_waiter *w, enum dns_cache_wake why,
                   const struct dns_cache_entry *e)
{
    struct upstream_req *u = w->arg;

    (void)why;
    (void)e;
    if (!u->waiting || u->woken == NULL || list_linked(&u->wlink))
        return;
    list_add_tail(&u->ul->woken, &u->wlink);
    ev_async_send(u->ul->loop, &u->ul->wake);
}

/* On the worker's loop: runs the owners of the woken requests. */
static void
upstream_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct upstream_loop *ul = container_of(a, struct upstream_loop, wake);
    struct list *l;

    (void)loop;
    (void)revents;
    plane_lock();
    while ((l = list_first(&ul->woken)) != NULL) {
        struct upstream_req *u = container_of(l, struct upstream_req, wlink);
        list_del(l);
        /* Unlocked: the owner picks again, which takes the lock itself.
         * Only this thread parks or cancels u, so it stays as it is. */
        plane_unlock();
        if (u->waiting)
            u->woken(u->arg);
        plane_lock();
    }
    plane_unlock();
}

void
upstream_req_init(struct upstream_req *u, struct backend *be,
                  struct upstream_loop *ul, void (*woken)(void *arg), void *arg)
{
    memset(u, 0, sizeof(*u));
    u->be = be;
    u->ul = ul;
    u->woken = woken;
    u->arg = arg;
    list_init(&u->wlink);
    dns_cache_waiter_init(&u->dnswait, upstream_dns_woken, u);
}

/* Stops waiting, plane lock held. */
static void
upstream_unpark(struct upstream_req *u)
{
    dns_cache_cancel(&u->dnswait);
    list_del(&u->wlink);
    u->waiting = false;
}

void
upstream_req_cancel(struct upstream_req *u)
{
    /* Only a waiting request is parked anywhere: the common case takes no
     * lock. */
    if (!u->waiting)
        return;
    plane_lock();
    upstream_unpark(u);
    plane_unlock();
}

void
upstream_req_reset(struct upstream_req *u)
{
    assert(u->member == NULL);
    upstream_req_cancel(u);
    u->tried.n = 0;
    u->attempts = 0;
}

/*
 * The pool has no member to give (plane lock held): wait (bounded by
 * timeout_connect from the first pick that found nothing) when a name has
 * a resolution in flight or new members still wait for their first check.
 */
static bool
upstream_wait(struct upstream_req *u, double now)
{
    if (!u->waiting)
        u->wait_started = now;
    if (!backend_wait_pool(u->be, &u->dnswait, u->wait_started, now,
                           &u->retry_at)) {
        upstream_unpark(u);
        return false;
    }
    u->waiting = true;
    return true;
}

enum upstream_pick
upstream_pick(struct upstream_req *u, const struct balance_ctx *key, double now)
{
    struct balance_ctx ctx = {0};
    enum upstream_pick r = UPSTREAM_PICKED;
    struct member *m;

    assert(u->member == NULL);
    if (u->attempts > u->be->cfg.retries) {
        upstream_req_cancel(u);
        return UPSTREAM_EXHAUSTED;
    }
    if (key != NULL)
        ctx = *key;
    ctx.tried = &u->tried;
    ctx.now = now;
    /* Pools, balancers and the DNS cache are the control plane's. */
    plane_lock();
    m = balance_pick(u->be->pool.balance, &ctx);
    if (m == NULL) {
        /* Only the first pick waits: a retry has seen members already. */
        if (u->attempts == 0 && upstream_wait(u, now)) {
            r = UPSTREAM_WAIT;
        } else {
            upstream_unpark(u);
            r = UPSTREAM_NONE;
        }
    } else {
        if (u->waiting)
            upstream_unpark(u);
        /* Counts the lookup and lets an expired answer start its refresh. */
        backend_dns_lookup(u->be, NULL);
        u->member = m;
        u->attempts++;
    }
    plane_unlock();
    return r;
}

void
upstream_release(struct upstream_req *u, enum balance_outcome outcome,
                 double now)
{
    struct member *m = u->member;
    bool was_up;

    if (m == NULL)
        return;
    u->member = NULL;
    plane_lock();
    /* The passive window may take the member out, which rebuilds the
     * balancer: keep m alive across both steps. */
    member_ref(m);
    balance_release(u->be->pool.balance, m, outcome);
    was_up = m->up;
    health_passive_outcome(m, outcome, now);
    /* Taken out: its cool-down timer is on the control loop. */
    if (m->up != was_up)
        plane_kick();
    member_unref(m);
    plane_unlock();
}

void
upstream_failed(struct upstream_req *u, enum balance_outcome outcome,
                double now)
{
    struct member *m = u->member;

    if (m == NULL)
        return;
    PLANE_ADD(m->stats.connect_errors, 1);
    balance_tried_add(&u->tried, m);
    upstream_release(u, outcome, now);
}

/* ---------------------------------------------------------------------- */
/* Connect                                                                 */

enum upstream_connect
upstream_connect(const struct member *m, int *fd)
{
    int s, err;

    *fd = -1;
    s = socket(m->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
               0);
    if (s < 0)
        return UPSTREAM_NO_SOCKET;
    if (connect(s, (const struct sockaddr *)&m->addr, m->addrlen) == 0) {
        *fd = s;
        return UPSTREAM_CONNECTED;
    }
    if (errno == EINPROGRESS) {
        *fd = s;
        return UPSTREAM_CONNECTING;
    }
    err = errno;
    net_close(s, false);
    errno = err;
    return UPSTREAM_REFUSED;
}

int
upstream_connect_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    return err;
}

int
upstream_probe_connect(const struct member *m, int *fd)
{
    switch (upstream_connect(m, fd)) {
    case UPSTREAM_CONNECTED:
        return 1;
    case UPSTREAM_CONNECTING:
        return 0;
    default:
        return -1;
    }
}

/* ---------------------------------------------------------------------- */
/* Idle keep-alive connections                                             */

void
upstream_loop_init(struct upstream_loop *ul, struct ev_loop *loop,
                   unsigned index)
{
    memset(ul, 0, sizeof(*ul));
    ul->loop = loop;
    ul->index = index;
    list_init(&ul->all);
    list_init(&ul->spare);
    list_init(&ul->woken);
    ev_async_init(&ul->wake, upstream_wake_cb);
    ev_async_start(loop, &ul->wake);
    /* Waiting for wake-ups must not keep a stopping loop alive. */
    ev_unref(loop);
}

struct upstream_conn *
upstream_conn_new(struct upstream_loop *ul, struct member *m, int fd,
                  void (*cb)(struct ev_loop *, ev_io *, int), void *owner)
{
    struct upstream_conn *uc;
    struct list *l = list_first(&ul->spare);

    if (l != NULL) {
        list_del(l);
        ul->nspare--;
        uc = container_of(l, struct upstream_conn, glink);
    } else if ((uc = malloc(sizeof(*uc))) == NULL) {
        return NULL;
    }
    memset(uc, 0, sizeof(*uc));
    uc->fd = fd;
    uc->m = m;
    uc->ul = ul;
    uc->owner = owner;
    list_init(&uc->mlink);
    list_init(&uc->glink);
    member_ref(m);
    ev_io_init(&uc->io, cb, fd, EV_WRITE);
    uc->io.data = uc;
    ev_init(&uc->idle_timer, NULL);
    uc->idle_timer.data = uc;
    return uc;
}

static void
upstream_idle_unlink(struct upstream_conn *uc)
{
    assert(uc->idle && uc->m->idle[uc->ul->index].n > 0);
    list_del(&uc->mlink);
    list_del(&uc->glink);
    uc->idle = false;
    uc->m->idle[uc->ul->index].n--;
}

void
upstream_conn_close(struct upstream_conn *uc, bool reset)
{
    struct upstream_loop *ul = uc->ul;

    if (uc->idle)
        upstream_idle_unlink(uc);
    ev_io_stop(ul->loop, &uc->io);
    ev_timer_stop(ul->loop, &uc->idle_timer);
    net_close(uc->fd, reset);
    uc->fd = -1;
    member_unref(uc->m);
    uc->m = NULL;
    if (ul->nspare < SPARE_MAX) {
        list_add(&ul->spare, &uc->glink);
        ul->nspare++;
    } else {
        free(uc);
    }
}

static void
upstream_idle_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    upstream_conn_close(w->data, false);
}

/* Readable while idle: the member closed it, or sent bytes nobody asked
 * for. Either way it cannot carry another request. */
static void
upstream_idle_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    upstream_conn_close(w->data, true);
}

void
upstream_idle_put(struct upstream_conn *uc)
{
    struct upstream_loop *ul = uc->ul;
    struct member *m = uc->m;
    struct member_idle *mi = &m->idle[ul->index];

    uc->owner = NULL;
    if (PLANE_GET(m->gone) || mi->n >= IDLE_MAX_PER_MEMBER || ul->closing) {
        upstream_conn_close(uc, false);
        return;
    }
    uc->idle = true;
    uc->reused = true;
    list_add(&mi->conns, &uc->mlink);
    list_add(&ul->all, &uc->glink);
    mi->n++;
    uc->readable = false;
    ev_set_cb(&uc->io, upstream_idle_io_cb);
    net_io_watch(ul->loop, &uc->io, EV_READ);
    ev_set_cb(&uc->idle_timer, upstream_idle_timer_cb);
    ev_timer_set(&uc->idle_timer, IDLE_TIMEOUT, 0);
    ev_timer_start(ul->loop, &uc->idle_timer);
}

struct upstream_conn *
upstream_idle_take(struct upstream_loop *ul, struct member *m,
                   void (*cb)(struct ev_loop *, ev_io *, int), void *owner)
{
    struct list *l;

    while ((l = list_first(&m->idle[ul->index].conns)) != NULL) {
        struct upstream_conn *uc = container_of(l, struct upstream_conn, mlink);
        if (PLANE_GET(m->gone)) {
            upstream_conn_close(uc, false);
            continue;
        }
        upstream_idle_unlink(uc);
        ev_timer_stop(ul->loop, &uc->idle_timer);
        /* The watcher stays as it is: the owner sets its events next. */
        ev_set_cb(&uc->io, cb);
        uc->owner = owner;
        return uc;
    }
    return NULL;
}

void
upstream_idle_move(struct upstream_loop *ul, struct member *from,
                   struct member *to)
{
    struct member_idle *src = &from->idle[ul->index];
    struct member_idle *dst = &to->idle[ul->index];
    struct list *l;

    /* Reload: the same address under a new member object keeps its warm
     * keep-alive connections. */
    list_for_each (l, &src->conns) {
        struct upstream_conn *uc = container_of(l, struct upstream_conn, mlink);
        uc->m = to;
        member_ref(to);
        member_unref(from);
    }
    list_splice(&dst->conns, &src->conns);
    dst->n += src->n;
    src->n = 0;
}

void
upstream_idle_close_all(struct upstream_loop *ul)
{
    struct list *l;

    while ((l = list_first(&ul->all)) != NULL)
        upstream_conn_close(container_of(l, struct upstream_conn, glink),
                            false);
}

void
upstream_loop_deinit(struct upstream_loop *ul)
{
    struct list *l;

    ev_ref(ul->loop);
    ev_async_stop(ul->loop, &ul->wake);
    upstream_idle_close_all(ul);
    while ((l = list_first(&ul->spare)) != NULL) {
        list_del(l);
        free(container_of(l, struct upstream_conn, glink));
    }
    ul->nspare = 0;
}
