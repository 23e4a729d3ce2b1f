/*
 * runtime: the live objects built from a config: frontends with their
 * listeners, backends with their pools and balancers. The control plane
 * owns every mutation; the data plane (proxy_*) only reads members and
 * takes references.
 *
 * Lifetime: a backend is referenced by the runtime and by every connection
 * that started on it, so connections in flight finish on the backend they
 * began with even after the runtime drops it.
 */
#ifndef FERRY_RUNTIME_H
#define FERRY_RUNTIME_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "balance.h"
#include "dns_cache.h"
#include "log.h"
#include "pool.h"

struct listener;
struct conn;
struct health_checker;
struct dns;

/* A DNS name of a server line, for one address family. */
struct backend_name {
    struct backend *be;                 /* owner */
    size_t server;                      /* server line index */
    struct dns_cache_entry *entry;      /* the cache entry (pinned) */
    struct dns_cache_listener lis;      /* answers -> pool */
    struct dns_cache_waiter startw;     /* start-up resolution */
};
struct proxy_http;
struct tls_ctx;

struct backend {
    char name[CONFIG_NAME_MAX + 1];     /* section name (label) */
    struct config_backend cfg;          /* settings; servers owned here */
    struct pool pool;                   /* members */
    struct health_checker *health;      /* active and passive checks */
    struct dns *dns;                    /* where names are resolved */
    struct backend_name *names;         /* server lines with DNS names */
    size_t nnames;                      /* entries in names */
    unsigned refs;                      /* runtime + connections */
    struct runtime *rt;                 /* owner (NULL once dropped) */
    struct ev_loop *loop;               /* loop its timers run on */
    bool live;                          /* built: new members get checks */
};

struct frontend_stats {
    uint64_t connections_total;         /* accepted connections */
    unsigned active;                    /* open client connections */
};

struct frontend {
    char name[CONFIG_NAME_MAX + 1];     /* section name (label) */
    struct config_frontend cfg;         /* settings (listen not owned) */
    struct backend *backend;            /* where traffic goes */
    struct listener **listeners;        /* one per listen line */
    size_t nlisteners;                  /* entries in listeners */
    struct frontend_stats stats;        /* counters */
    struct runtime *rt;                 /* owner */
    unsigned refs;                      /* runtime + connections */
    struct tls_ctx *tls;                /* TLS termination, NULL if none */
};

struct runtime {
    struct ev_loop *loop;               /* the one event loop */
    struct config *cfg;                 /* configuration in force */
    struct frontend **frontends;        /* in config order */
    size_t nfrontends;                  /* entries in frontends */
    struct backend **backends;          /* in config order */
    size_t nbackends;                   /* entries in backends */
    unsigned active_conns;              /* client connections open */
    struct conn *conns;                 /* every open connection */
    struct conn *closed;                /* closed, freed by the check pass */
    ev_check reaper;                    /* frees closed connections */
    ev_timer accept_retry;              /* resumes accepting after EMFILE */
    bool accept_paused;                 /* listeners stopped */
    struct log_limit accept_log;        /* accept failures (EMFILE...) */
    struct log_limit maxconn_log;       /* max_connections reached */
    struct log_limit socket_log;        /* no socket for a member conn */
    bool stopping;                      /* graceful stop in progress */
    struct dns *dns;                    /* shared DNS plane */
    size_t dns_pending;                 /* names unresolved at start-up */
    void (*ready_cb)(struct runtime *rt); /* runtime_prepare's callback */
    ev_timer ready_timer;               /* bounds the start-up phases */
    int ready_phase;                    /* RUNTIME_PHASE_* */
    uint64_t reloads_ok;                /* ferry_config_reloads_total */
    uint64_t reloads_fail;              /* ferry_config_reloads_total */
    struct proxy_http *http;            /* http conns and idle member conns */
};

/*
 * Builds frontends, backends and pools from cfg and binds the listeners
 * (not yet accepting). On failure returns NULL with a message in err.
 */
struct runtime *runtime_create(struct ev_loop *loop, struct config *cfg,
                               struct dns *dns, char *err, size_t errlen);
/*
 * Start-up before accepting (SPEC): resolves every backend name (bounded by
 * resolver.startup_timeout; a name still unresolved keeps retrying in the
 * background), then waits for the first round of health checks (bounded by
 * the longest health_timeout), then calls ready_cb.
 */
void runtime_prepare(struct runtime *rt, void (*ready_cb)(struct runtime *));
/* Starts accepting on every listener. */
void runtime_start(struct runtime *rt);
/* Stops accepting and closes the listening sockets (graceful stop). */
void runtime_stop_listening(struct runtime *rt);
/* Closes every open connection at once (end of a graceful stop). */
void runtime_close_all(struct runtime *rt);
void runtime_destroy(struct runtime *rt);
/*
 * Takes cfg over atomically (SPEC: Reload): listeners on unchanged
 * addresses keep their sockets, open connections finish on the frontend
 * and backend they started with, members whose backend and address are
 * unchanged keep health state and counters, and names keep their DNS
 * state. On failure (a new address cannot be bound, ENOMEM) nothing
 * changed, -1 is returned with a message in err, and cfg is not used.
 * On success the runtime owns cfg and the old config is freed.
 */
int runtime_reload(struct runtime *rt, struct config *cfg, char *err,
                   size_t errlen);

/* Connection accounting used by the accept path (max_connections). */
void runtime_conn_opened(struct runtime *rt);
void runtime_conn_closed(struct runtime *rt);
/* Accept failed with EMFILE/ENFILE: pause, retry after a short delay. */
void runtime_accept_exhausted(struct runtime *rt);

void backend_ref(struct backend *be);
void backend_unref(struct backend *be);
void frontend_ref(struct frontend *fe);
void frontend_unref(struct frontend *fe);
/*
 * Gives back a member picked with balance_pick, with the outcome of what
 * was done with it; feeds the passive health window.
 */
void backend_release(struct backend *be, struct member *m,
                     enum balance_outcome outcome, double now);
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
