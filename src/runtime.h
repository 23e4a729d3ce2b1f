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
#include "pool.h"

struct listener;
struct conn;
struct proxy_http;
struct tls_ctx;

struct backend {
    char name[CONFIG_NAME_MAX + 1];     /* section name (label) */
    struct config_backend cfg;          /* settings; servers owned here */
    struct pool pool;                   /* members */
    unsigned refs;                      /* runtime + connections */
    struct runtime *rt;                 /* owner (NULL once dropped) */
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
    bool stopping;                      /* graceful stop in progress */
    struct proxy_http *http;            /* http conns and idle member conns */
};

/*
 * Builds frontends, backends and pools from cfg and binds the listeners
 * (not yet accepting). On failure returns NULL with a message in err.
 */
struct runtime *runtime_create(struct ev_loop *loop, struct config *cfg,
                               char *err, size_t errlen);
/* Starts accepting on every listener. */
void runtime_start(struct runtime *rt);
/* Stops accepting and closes the listening sockets (graceful stop). */
void runtime_stop_listening(struct runtime *rt);
/* Closes every open connection at once (end of a graceful stop). */
void runtime_close_all(struct runtime *rt);
void runtime_destroy(struct runtime *rt);

/* Connection accounting used by the accept path (max_connections). */
void runtime_conn_opened(struct runtime *rt);
void runtime_conn_closed(struct runtime *rt);
/* Accept failed with EMFILE/ENFILE: pause, retry after a short delay. */
void runtime_accept_exhausted(struct runtime *rt);

void backend_ref(struct backend *be);
void backend_unref(struct backend *be);

#endif
