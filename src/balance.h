/*
 * balance: picking a member of a pool for one request or session.
 *
 * Polymorphic through a const ops table (one file per algorithm) with the
 * base struct embedded first in each algorithm's state. The picker is told
 * when the pool changes (rebuild), and of the outcome of every pick
 * (release), which is the one place passive health is fed from.
 *
 * Which members are eligible (shared by every algorithm):
 *   - up, not gone, weight > 0, and not in the request's tried set;
 *   - normal members first; backup members only when no normal member is
 *     up (a normal member that is up but already tried still counts as up,
 *     so a retry does not spill onto backups).
 * When none is eligible pick returns NULL.
 *
 * Rebuild contract: the control plane calls balance_rebuild after every
 * change of membership, weight, up/down or backup state, before the next
 * pick. Algorithms with prepared structures (weighted, leastconn, hash) pick
 * only among members that were up at the last rebuild; they also compare
 * pool->version with the version they were built for and fall back to a
 * slow linear pick over the live members when it differs, so a forgotten
 * rebuild after a membership change costs speed, never a dangling member.
 */
#ifndef FERRY_BALANCE_H
#define FERRY_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pool.h"

#define BALANCE_TRIED_MAX 16

/* Members already tried by this request (so retries go elsewhere). */
struct balance_tried {
    const struct member *m[BALANCE_TRIED_MAX]; /* tried members */
    unsigned n;                                /* entries in use */
};

/* What the pick is for. */
struct balance_ctx {
    const void *key;                   /* hash key bytes, NULL if absent */
    size_t keylen;                     /* length of key */
    const struct balance_tried *tried; /* may be NULL */
    double now;                        /* loop time, for slow start */
};

enum balance_outcome {
    BALANCE_OK,            /* served (any non-5xx for http) */
    BALANCE_CONNECT_ERROR, /* connect refused/failed */
    BALANCE_TIMEOUT,       /* connect or server timeout */
    BALANCE_SERVER_ERROR,  /* http 5xx from the member */
    BALANCE_ABORTED,       /* client went away: no verdict */
};

struct balance;

struct balance_ops {
    const char *name;
    size_t size; /* sizeof the algorithm's state */
    /* Called after the pool's membership, weights or states changed. */
    int (*rebuild)(struct balance *b);
    struct member *(*pick)(struct balance *b, const struct balance_ctx *ctx);
    void (*release)(struct balance *b, struct member *m,
                    enum balance_outcome outcome);
    void (*deinit)(struct balance *b);
    /* Optional: balance_pick took a slot on m (m->active already counted). */
    void (*taken)(struct balance *b, struct member *m);
};

/* Base embedded first in every algorithm's state. */
struct balance {
    const struct balance_ops *ops; /* the algorithm */
    struct pool *pool;             /* members to pick from */
};

struct balance *balance_create(enum config_balance kind, struct pool *pool);
void balance_destroy(struct balance *b);
int balance_rebuild(struct balance *b);
/* Picks a member, takes a connection slot on it (active++) and a ref. */
struct member *balance_pick(struct balance *b, const struct balance_ctx *ctx);
/* Gives back the slot and ref taken by balance_pick, with the outcome. */
void balance_release(struct balance *b, struct member *m,
                     enum balance_outcome outcome);

/* Sets ctx's hash key to the address bytes of a client (hash_key client_ip). */
void balance_key_client_ip(struct balance_ctx *ctx,
                           const struct sockaddr_storage *peer);
void balance_tried_add(struct balance_tried *t, const struct member *m);
bool balance_tried_has(const struct balance_tried *t, const struct member *m);

/* Helpers for algorithms. */
bool balance_eligible(const struct member *m, const struct balance_ctx *ctx);
/* True when at least one normal (non-backup) member is up and not gone. */
bool balance_normal_up(const struct pool *p);
/* Weight including the slow-start ramp (10% to 100% over slow_start). */
double balance_effective_weight(const struct member *m, double slow_start,
                                double now);

/*
 * Indexed binary min-heap over members, shared by weighted and leastconn
 * (internal to the balance module). Nodes order by (key, seq); a member has
 * a dense slot number fixed at rebuild, and pos[] follows each slot's node
 * so a member's node is found in O(1) when its key changes.
 */
struct balance_node {
    double key;    /* primary order, smallest first */
    uint64_t seq;  /* tie-break, smallest first */
    uint32_t slot; /* index into slots[] and pos[] */
};

struct balance_heap {
    struct balance_node *nodes; /* heap array, nodes[0] = minimum */
    struct member **slots;      /* slot -> member */
    uint32_t *pos;              /* slot -> position in nodes */
    size_t n;                   /* nodes in use */
    size_t cap;                 /* slots allocated in each array */
};

/* Empties h and makes room for cap nodes; -1 on ENOMEM (h unchanged). */
int balance_heap_reset(struct balance_heap *h, size_t cap);
void balance_heap_free(struct balance_heap *h);
/* Appends a node in arbitrary order; call balance_heap_order after. */
void balance_heap_append(struct balance_heap *h, struct member *m, double key,
                         uint64_t seq);
/* Restores heap order over everything appended (O(n)). */
void balance_heap_order(struct balance_heap *h);
/* Re-places the node at position i after its key or seq changed. */
void balance_heap_fix(struct balance_heap *h, size_t i);
/*
 * Position of the smallest node whose member is eligible for ctx, or -1.
 * Visits nodes in key order, so its cost grows with the number of
 * ineligible nodes met first (tried members, members down since the
 * rebuild); past a small bound it finishes with a linear scan.
 */
long balance_heap_find(const struct balance_heap *h,
                       const struct balance_ctx *ctx);

/* A process-unique number, so per-member scratch values can be tagged with
 * the balancer that wrote them. Control plane only. */
uint32_t balance_new_owner(void);

extern const struct balance_ops balance_roundrobin_ops;
extern const struct balance_ops balance_weighted_ops;
extern const struct balance_ops balance_leastconn_ops;
extern const struct balance_ops balance_hash_ops;

#endif
