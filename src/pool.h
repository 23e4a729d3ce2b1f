/*
 * pool: the members of one backend, and their lifetime.
 *
 * A member is one address (IP:port) that can receive traffic. Server lines
 * with an IP literal give one member; a DNS name gives one member per address
 * it resolves to (pool_apply_answer diffs the new address set against the
 * old one, so members that stay keep all their state). A member that leaves
 * the pool is marked gone: it gets no new traffic and is freed when the last
 * connection holding it lets go (member_unref).
 *
 *   pool_add_member ──► member (refs=1 held by pool) ──► pool drops it: gone
 *         conn: member_ref ... member_unref ──► refs==0 && gone ──► freed
 */
#ifndef FERRY_POOL_H
#define FERRY_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "histogram.h"
#include "list.h"

struct balance;
struct health_member;

/*
 * Per-member counters: every worker adds to them with relaxed atomics
 * (PLANE_ADD), the stats endpoint reads them with PLANE_GET.
 */
struct member_stats {
    uint64_t requests;       /* http requests / tcp sessions */
    uint64_t responses[6];   /* by status class: [1]=1xx..[5]=5xx */
    uint64_t connect_errors; /* failed connects */
    uint64_t bytes_in;       /* bytes read from the member */
    uint64_t bytes_out;      /* bytes written to the member */
};

/* Idle keep-alive connections to a member on one worker loop. */
struct member_idle {
    struct list conns; /* struct upstream_conn, newest first */
    unsigned n;        /* entries in conns */
};

/*
 * A member. Control-plane fields (up, weight, balancer scratch, active)
 * change under the plane lock; refs and gone are atomic, because workers
 * take and drop references without it (docs/architecture.md, "Threads").
 */
struct member {
    struct pool *pool;                     /* owning pool; NULL once detached */
    size_t index;                          /* position in pool->members */
    size_t server;                         /* index of its server line */
    char server_spec[CONFIG_HOST_MAX + 8]; /* server line as written (label) */
    struct sockaddr_storage addr;          /* where to connect */
    socklen_t addrlen;                     /* length of addr in use */
    char addr_text[CONFIG_ADDR_TEXT_MAX];  /* "IP:PORT" (label `address`) */
    unsigned weight;                       /* configured weight, 0 = drain */
    bool backup;                  /* only when no normal member is up */
    bool up;                      /* health allows traffic */
    bool gone;                    /* removed from the pool: draining */
    double up_since;              /* when it last came up (slow start) */
    unsigned active;              /* connections open to it now */
    unsigned refs;                /* pool's reference + connections' */
    double bal_current;           /* balancer scratch (smooth WRR) */
    uint64_t bal_tag;             /* balancer scratch */
    struct health_member *health; /* health state, NULL if none */
    struct member_stats stats;    /* counters */
    struct histogram resp_hist;   /* response times (http) */
    /* upstream: keep-alive connections to it not in use, one list per
     * worker loop; only that loop's thread touches its entry */
    struct member_idle idle[]; /* [pool->nloops] */
};

struct pool {
    char backend[CONFIG_NAME_MAX + 1]; /* backend name (label) */
    struct member **members;           /* live members, index = position */
    size_t n;                          /* members in use */
    size_t cap;                        /* slots allocated */
    double slow_start;                 /* seconds of weight ramp, 0 = off */
    struct balance *balance;           /* picker over members */
    uint64_t version;                  /* bumped on every membership change */
    unsigned nloops;                   /* worker loops (idle lists each) */
    /* Called before a member leaves (removed or pool_deinit), so the
     * layers above (health) let go of what they hang on it. */
    void (*on_remove)(void *arg, struct member *m);
    void *hook_arg; /* on_remove's argument */
};

/* A pool for one worker loop; set p->nloops before adding members. */
int pool_init(struct pool *p, const char *backend, double slow_start);
/* Detaches every member (they are freed when unused) and frees the arrays. */
void pool_deinit(struct pool *p);

/* Adds a member for addr; returns it, or NULL on ENOMEM. Starts down. */
struct member *pool_add_member(struct pool *p, size_t server,
                               const char *server_spec,
                               const struct sockaddr *addr, socklen_t len,
                               unsigned weight, bool backup);
/* Removes m from the pool: marks it gone and drops the pool's reference. */
void pool_remove_member(struct pool *p, struct member *m);
struct member *pool_find(const struct pool *p, size_t server,
                         const struct sockaddr *addr, socklen_t len);

/*
 * Replaces the members of server line `server` with one member per address
 * in addrs (a set: order and duplicates do not matter). Members whose address
 * stays keep all their state. Returns the number of members added plus
 * removed (0 = nothing changed), or -1 on ENOMEM (pool unchanged).
 */
int pool_apply_answer(struct pool *p, size_t server, const char *server_spec,
                      const struct sockaddr_storage *addrs, size_t naddrs,
                      uint16_t port, unsigned weight, bool backup);

/*
 * Reload: new member m (not yet seen by any worker) starts from o's
 * counters, which workers may still be adding to.
 */
void member_take_counters(struct member *m, const struct member *o);
void member_ref(struct member *m);
void member_unref(struct member *m);

#endif
