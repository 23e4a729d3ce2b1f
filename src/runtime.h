/*
 * runtime: the live objects built from a config (frontends with their
 * listeners, backends with their pools) and the proxy instances that serve
 * them; start-up phases, accept limits (max_connections, out of fds),
 * graceful stop and reload. The control plane owns every mutation; the
 * proxies only read members (through upstream) and take references.
 */
#ifndef FERRY_RUNTIME_H
#define FERRY_RUNTIME_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "frontend.h"
#include "listener.h"
#include "log.h"
#include "proxy.h"
#include "upstream.h"
#include "worker.h"

struct dns;

/* Proxy modes, indexed by enum config_mode. */
#define RUNTIME_MODES 2

struct runtime;

/*
 * One worker's share of the runtime: its loop (and thread), the proxy
 * instances and listeners on it, and its side of the accept limits. Only
 * its own thread touches it, except the atomic fields.
 */
struct runtime_worker {
    struct worker w;                    /* thread and loop */
    struct runtime *rt;                 /* owner */
    struct upstream_loop up;            /* upstream's state on w.loop */
    void *proxies[RUNTIME_MODES];       /* instances on w.loop, by mode */
    struct list listeners;              /* struct listener on w.loop */
    struct listener_hooks accept_hooks; /* its listeners' limits */
    ev_check reaper;                    /* frees closed connections */
    ev_timer accept_retry;              /* resumes accepting after EMFILE */
    ev_async resume;                    /* a slot freed up elsewhere */
    bool accept_paused;                 /* listeners stopped */
    bool maxconn_wait;                  /* paused at max_connections (atomic) */
    struct log_limit accept_log;        /* accept failures (EMFILE...) */
    struct log_limit maxconn_log;       /* max_connections reached */
    unsigned conns; /* client connections open (atomic; worker gauge) */
};

/* A member of a kept backend whose idle connections a new one takes. */
struct runtime_carry {
    struct member *from; /* old member (ref held) */
    struct member *to;   /* new member, same address (ref held) */
};

struct runtime {
    struct ev_loop *loop;           /* the control loop */
    struct config *cfg;             /* configuration in force */
    struct frontend **frontends;    /* in config order */
    size_t nfrontends;              /* entries in frontends */
    struct backend **backends;      /* in config order */
    size_t nbackends;               /* entries in backends */
    struct runtime_worker *workers; /* [nworkers] */
    struct worker **wlist;          /* their workers */
    unsigned nworkers;              /* global.workers */
    unsigned active_conns;          /* client connections open (atomic) */
    unsigned max_conns;             /* max_connections in force (atomic) */
    unsigned npaused;               /* workers waiting for a slot (atomic) */
    bool stopping;                  /* graceful stop in progress (atomic) */
    const struct proxy_ops *proxy_ops[RUNTIME_MODES]; /* by config mode */
    struct runtime_carry *carry;          /* reload: idle connections */
    size_t ncarry, carry_cap;             /* entries, room in carry */
    unsigned listen_mark;                 /* reload generation */
    struct dns *dns;                      /* shared DNS plane */
    size_t dns_pending;                   /* names unresolved at start-up */
    void (*ready_cb)(struct runtime *rt); /* runtime_prepare's callback */
    ev_timer ready_timer;                 /* bounds the start-up phases */
    int ready_phase;                      /* RUNTIME_PHASE_* */
    uint64_t reloads_ok;                  /* ferry_config_reloads_total */
    uint64_t reloads_fail;                /* ferry_config_reloads_total */
};

/*
 * Builds frontends, backends and pools from cfg, and nworkers workers
 * (threads when more than one, not started yet) with their listeners
 * bound (not yet accepting). On failure returns NULL with a message in
 * err.
 */
struct runtime *runtime_create(struct ev_loop *loop, struct config *cfg,
                               struct dns *dns, unsigned nworkers, char *err,
                               size_t errlen);
/*
 * Start-up before accepting (docs/operations.md): resolves every backend
 * name (bounded by resolver.startup_timeout; a name still unresolved keeps
 * retrying in the background), then waits for the first round of health
 * checks (bounded by the longest health_timeout), then calls ready_cb.
 */
void runtime_prepare(struct runtime *rt, void (*ready_cb)(struct runtime *));
/*
 * Starts accepting on every listener and the worker threads. -1 with a
 * message in err when a thread cannot be started.
 */
int runtime_start(struct runtime *rt, char *err, size_t errlen);
/* Client connections open on every worker. */
unsigned runtime_active_conns(const struct runtime *rt);
/* fe's listener for its listen line j (worker 0's), NULL when closed. */
const struct listener *runtime_listener(const struct runtime *rt,
                                        const struct frontend *fe, size_t j);
/* Stops accepting and closes the listening sockets (graceful stop). */
void runtime_stop_listening(struct runtime *rt);
/* Closes every open connection at once (end of a graceful stop). */
void runtime_close_all(struct runtime *rt);
/* Stops and joins the worker threads, then frees everything. */
void runtime_destroy(struct runtime *rt);
/*
 * Takes cfg over atomically (docs/operations.md, reload): listeners on
 * unchanged addresses keep their sockets, open connections finish on the
 * frontend and backend they started with, members whose backend and address are
 * unchanged keep health state and counters, and names keep their DNS
 * state. On failure (a new address cannot be bound, ENOMEM) nothing
 * changed, -1 is returned with a message in err, and cfg is not used.
 * On success the runtime owns cfg and the old config is freed.
 */
int runtime_reload(struct runtime *rt, struct config *cfg, char *err,
                   size_t errlen);

#endif
