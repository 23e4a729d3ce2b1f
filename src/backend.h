/*
 * backend: a [backend] section made live: its pool of members, the DNS
 * names that feed the pool, its health checker and its balancer.
 *
 * The control plane builds and changes backends (DNS answers, health
 * results, reload); the data plane only picks from the pool, through
 * upstream, and holds references.
 *
 * Lifetime: a backend is referenced by its owner (the runtime) and by
 * every connection that started on it, so connections in flight finish on
 * the backend they began with even after a reload dropped it.
 *
 *   backend_create (refs=1) ── backend_ref/unref per connection ──►
 *   backend_drop: DNS and health stop, owner lets go ── last unref ──► freed
 */
#ifndef FERRY_BACKEND_H
#define FERRY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "dns_cache.h"
#include "pool.h"

struct dns;
struct ev_loop;
struct health_checker;

/* A DNS name of a server line, for one address family. */
struct backend_name {
    struct backend *be;             /* owner */
    size_t server;                  /* server line index */
    struct dns_cache_entry *entry;  /* the cache entry (pinned) */
    struct dns_cache_listener lis;  /* answers -> pool */
    struct dns_cache_waiter startw; /* start-up resolution */
};

/*
 * What a backend needs from the layers above it. The owner passes these in
 * so that this module never includes their headers.
 */
struct backend_hooks {
    /* Every member has a first health result (start-up phase). */
    void (*first_round)(void *arg);
    /*
     * Opens a non-blocking connection to m for a health probe: 1 connected,
     * 0 in progress, -1 failed (errno set); the fd in *fd. The one connect
     * path is upstream's.
     */
    int (*probe_connect)(const struct member *m, int *fd);
    /*
     * Reload: m takes over what `from` (same address) had for traffic.
     * Called while the new backend is built, before any worker sees m.
     */
    void (*carry_over)(void *arg, struct member *from, struct member *m);
    void *arg;       /* first_round's and carry_over's argument */
    unsigned nloops; /* worker loops: members keep idle lists for each */
};

struct backend {
    char name[CONFIG_NAME_MAX + 1]; /* section name (label) */
    struct config_backend cfg;      /* settings; servers owned here */
    struct pool pool;               /* members */
    struct health_checker *health;  /* active and passive checks */
    struct dns *dns;                /* where names are resolved */
    struct backend_name *names;     /* server lines with DNS names */
    size_t nnames;                  /* entries in names */
    unsigned refs;                  /* owner + connections */
    struct backend_hooks hooks;     /* owner's callbacks */
    void *owner;                    /* hooks.arg; NULL once dropped */
    struct ev_loop *loop;           /* loop its timers run on */
    bool live;                      /* built: new members get checks */
};

/*
 * Builds a backend from cb. With old (same name, from the configuration
 * being replaced) members that stay take over old's health state, counters
 * and idle connections. Names already in the DNS cache fill the pool now.
 * On failure returns NULL with a message in err.
 */
struct backend *
backend_create(struct ev_loop *loop, struct dns *dns, const struct config *cfg,
               const struct config_backend *cb, struct backend *old,
               const struct backend_hooks *hooks, char *err, size_t errlen);
/* The owner lets go: DNS and health stop; connections still on it finish. */
void backend_drop(struct backend *be);
void backend_ref(struct backend *be);
void backend_unref(struct backend *be);

/*
 * Counts a lookup of each of the backend's names (ferry_dns_lookups_total;
 * an expired answer starts its refresh). With w non-NULL, after a pick
 * found no member: parks w on the first name that has no usable answer and
 * a resolution in flight, and returns true; false when there is nothing to
 * wait for.
 */
bool backend_dns_lookup(struct backend *be, struct dns_cache_waiter *w);
/* True while a member of the pool waits for its first health check. */
bool backend_first_checks_pending(const struct backend *be);
/*
 * A request found no member to pick. When a name has a resolution in
 * flight (w is parked on it) or new members wait for their first check,
 * and timeout_connect since `started` has not passed, returns true and sets
 * *retry_at to when to pick again (the deadline when woken by DNS, or a
 * short poll for health). Otherwise false: nothing worth waiting for.
 */
bool backend_wait_pool(struct backend *be, struct dns_cache_waiter *w,
                       double started, double now, double *retry_at);

#endif
