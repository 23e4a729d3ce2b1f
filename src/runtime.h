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

struct dns;

/* Proxy modes, indexed by enum config_mode. */
#define RUNTIME_MODES 2

struct runtime {
    struct ev_loop *loop;        /* the one event loop */
    struct config *cfg;          /* configuration in force */
    struct frontend **frontends; /* in config order */
    size_t nfrontends;           /* entries in frontends */
    struct backend **backends;   /* in config order */
    size_t nbackends;            /* entries in backends */
    unsigned active_conns;       /* client connections open */
    const struct proxy_ops *proxy_ops[RUNTIME_MODES]; /* by config mode */
    void *proxies[RUNTIME_MODES];         /* their instances on loop */
    struct listener_hooks accept_hooks;   /* accept limits of every listener */
    ev_check reaper;                      /* frees closed connections */
    ev_timer accept_retry;                /* resumes accepting after EMFILE */
    bool accept_paused;                   /* listeners stopped */
    struct log_limit accept_log;          /* accept failures (EMFILE...) */
    struct log_limit maxconn_log;         /* max_connections reached */
    bool stopping;                        /* graceful stop in progress */
    struct dns *dns;                      /* shared DNS plane */
    size_t dns_pending;                   /* names unresolved at start-up */
    void (*ready_cb)(struct runtime *rt); /* runtime_prepare's callback */
    ev_timer ready_timer;                 /* bounds the start-up phases */
    int ready_phase;                      /* RUNTIME_PHASE_* */
    uint64_t reloads_ok;                  /* ferry_config_reloads_total */
    uint64_t reloads_fail;                /* ferry_config_reloads_total */
};

/*
 * Builds frontends, backends and pools from cfg and binds the listeners
 * (not yet accepting). On failure returns NULL with a message in err.
 */
struct runtime *runtime_create(struct ev_loop *loop, struct config *cfg,
                               struct dns *dns, char *err, size_t errlen);
/*
 * Start-up before accepting (docs/operations.md): resolves every backend
 * name (bounded by resolver.startup_timeout; a name still unresolved keeps
 * retrying in the background), then waits for the first round of health
 * checks (bounded by the longest health_timeout), then calls ready_cb.
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
