/*
 * upstream: the one path from ferry to a member. Both proxies and the
 * health probes come through here for the three things every request does
 * on the way to a member:
 *
 *   pick or wait   upstream_pick: a member from the balancer, or WAIT on
 *                  the pool's DNS resolution / new members' first checks
 *                  (bounded by timeout_connect), or NONE / EXHAUSTED.
 *   connect        upstream_connect: one non-blocking connect(2), the
 *                  only one in ferry; upstream_connect_error reads its end.
 *   reuse          the idle keep-alive connections of each member
 *                  (upstream_idle_put / upstream_idle_take).
 *
 * and the way back: upstream_release / upstream_failed give the member's
 * slot back to the balancer with the outcome, which also feeds the
 * member's passive health window, and keep the request's tried set so a
 * retry never picks a member that already failed it.
 *
 *   upstream_req_init ─► upstream_pick ─┬─ PICKED ─► connect / idle_take
 *        ▲                  ▲           │             │ failed: upstream_failed
 *        │ next request     └── woken ──┤ WAIT        │   └─► upstream_pick
 *        │ (keep-alive):                │             ▼
 *        └─ upstream_req_reset          └─ NONE,   served: upstream_release
 *                                          EXHAUSTED ─► 503 / 502 / close
 */
#ifndef FERRY_UPSTREAM_H
#define FERRY_UPSTREAM_H

#include <ev.h>
#include <stdbool.h>

#include "backend.h"
#include "balance.h"
#include "dns_cache.h"
#include "list.h"

enum upstream_pick {
    UPSTREAM_PICKED,    /* u->member holds a slot */
    UPSTREAM_WAIT,      /* pick again at u->retry_at, or
                                           when the waiter is woken */
    UPSTREAM_NONE,      /* no member, nothing to wait for */
    UPSTREAM_EXHAUSTED, /* `retries` used up */
};

struct upstream_loop;

/* One request's way to a member: what was tried, what it waits on. */
struct upstream_req {
    struct backend *be;              /* where members come from */
    struct upstream_loop *ul;        /* the loop (worker) it runs on */
    struct member *member;           /* picked: balance slot + ref held */
    struct balance_tried tried;      /* members that failed this request */
    unsigned attempts;               /* members picked so far */
    bool waiting;                    /* last pick returned WAIT */
    double wait_started;             /* first pick that found nothing */
    double retry_at;                 /* WAIT: when to pick again */
    struct dns_cache_waiter dnswait; /* WAIT: parked on a resolution */
    struct list wlink;               /* ul->woken once woken */
    void (*woken)(void *arg);        /* the resolution completed */
    void *arg;                       /* woken's argument */
};

/*
 * woken runs on ul's loop (never inside a pick) when a resolution the
 * request waits on completes: the caller picks again. The control thread
 * completes resolutions; it hands the request to its worker's loop.
 */
void upstream_req_init(struct upstream_req *u, struct backend *be,
                       struct upstream_loop *ul, void (*woken)(void *arg),
                       void *arg);
/* Forgets tried members and attempts, stops waiting (next request). */
void upstream_req_reset(struct upstream_req *u);
/* Stops waiting; a picked member must be released before. */
void upstream_req_cancel(struct upstream_req *u);

/*
 * Picks a member for u. key carries the hash key (key/keylen), if any;
 * tried and now are filled in here. The first pick of a request that finds
 * the pool empty waits when the backend has something worth waiting for.
 */
enum upstream_pick upstream_pick(struct upstream_req *u,
                                 const struct balance_ctx *key, double now);
/* Gives u->member back with the outcome of what was done with it. */
void upstream_release(struct upstream_req *u, enum balance_outcome outcome,
                      double now);
/*
 * Connecting to u->member failed (refused, timed out, reset before an
 * answer): counts it, adds the member to the tried set and releases it.
 */
void upstream_failed(struct upstream_req *u, enum balance_outcome outcome,
                     double now);

enum upstream_connect {
    UPSTREAM_CONNECTED,  /* connected at once (loopback) */
    UPSTREAM_CONNECTING, /* in progress: wait for writable */
    UPSTREAM_NO_SOCKET,  /* socket() failed (errno set) */
    UPSTREAM_REFUSED,    /* connect() failed (errno set) */
};
/*
 * Starts a non-blocking connect to m; *fd gets the socket (-1 unless
 * CONNECTED or CONNECTING: a failed socket is closed here).
 */
enum upstream_connect upstream_connect(const struct member *m, int *fd);
/* After writable: 0 when the connect succeeded, else its errno. */
int upstream_connect_error(int fd);
/* backend_hooks.probe_connect: upstream_connect for a health probe. */
int upstream_probe_connect(const struct member *m, int *fd);

/* ---------------------------------------------------------------------- */
/* Per worker loop                                                         */

/*
 * upstream's state on one worker loop: its idle member connections (the
 * members' idle[index] lists), recycled structs, and the requests whose
 * DNS wait ended, handed over by the control thread.
 */
struct upstream_loop {
    struct ev_loop *loop; /* where its watchers run */
    unsigned index;       /* the worker: members' idle[index] */
    struct list all;      /* every idle connection */
    struct list spare;    /* recycled structs */
    unsigned nspare;      /* entries in spare */
    bool closing;         /* graceful stop: keep none */
    ev_async wake;        /* woken has entries */
    struct list woken;    /* struct upstream_req, under the plane lock */
};

/* ---------------------------------------------------------------------- */
/* Idle keep-alive connections to members                                  */

/*
 * A connection to a member. While in use its owner drives `io` (its own
 * callback and events); while idle upstream watches it and closes it when
 * the member does or the idle timeout passes.
 */
struct upstream_conn {
    int fd;                   /* socket, -1 once closed */
    ev_io io;                 /* read/write watcher */
    ev_timer idle_timer;      /* idle expiry */
    struct member *m;         /* ref held while open */
    void *owner;              /* user while in use, NULL idle */
    struct upstream_loop *ul; /* per-loop state */
    struct list mlink;        /* member's idle list */
    struct list glink;        /* ui->all while idle; ui->spare */
    bool readable;            /* may read without waiting */
    bool writable;            /* may write without waiting */
    bool reused;              /* served a request before */
    bool idle;                /* on the idle lists */
};

/* ul for worker `index`, on loop. */
void upstream_loop_init(struct upstream_loop *ul, struct ev_loop *loop,
                        unsigned index);
/* Closes every idle connection and frees the recycled structs. */
void upstream_loop_deinit(struct upstream_loop *ul);
/* Closes every idle connection now (graceful stop). */
void upstream_idle_close_all(struct upstream_loop *ul);

/* Wraps a socket to m (connecting or connected) for owner; io gets cb. */
struct upstream_conn *
upstream_conn_new(struct upstream_loop *ul, struct member *m, int fd,
                  void (*cb)(struct ev_loop *, ev_io *, int), void *owner);
/* Closes uc (RST when reset) and recycles its memory. */
void upstream_conn_close(struct upstream_conn *uc, bool reset);
/*
 * The owner is done with uc after a complete exchange: keep it for the
 * next request to its member (most recently used first, bounded), or close
 * it when the member left the pool or ferry is stopping.
 */
void upstream_idle_put(struct upstream_conn *uc);
/*
 * The most recently used idle connection to m, now owned by owner with cb
 * on its watcher; NULL when there is none.
 */
struct upstream_conn *
upstream_idle_take(struct upstream_loop *ul, struct member *m,
                   void (*cb)(struct ev_loop *, ev_io *, int), void *owner);
/*
 * Reload, on ul's thread: the member `to` (same address) takes from's idle
 * connections of this loop.
 */
void upstream_idle_move(struct upstream_loop *ul, struct member *from,
                        struct member *to);

#endif
