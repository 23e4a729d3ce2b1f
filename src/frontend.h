/*
 * frontend: a [frontend] section made live: its listeners, its TLS
 * context, the backend its traffic goes to and the proxy mode that serves
 * its connections.
 *
 * Lifetime: referenced by its owner (the runtime) and by every connection
 * accepted on it, so a reload never pulls settings from under a
 * connection in flight. The last reference frees the TLS context and lets
 * go of the backend.
 */
#ifndef FERRY_FRONTEND_H
#define FERRY_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "proxy.h"

struct listener;
struct tls_ctx;

/* Counters every worker adds to (PLANE_ADD). */
struct frontend_stats {
    uint64_t connections_total; /* accepted connections */
    unsigned active;            /* open client connections */
};

struct frontend {
    char name[CONFIG_NAME_MAX + 1];    /* section name (label) */
    struct config_frontend cfg;        /* settings (listen not owned) */
    struct backend *backend;           /* where traffic goes (ref held) */
    struct listener **listeners;       /* per listen line, one per worker */
    size_t nlisteners;                 /* entries in listeners */
    struct frontend_stats stats;       /* counters */
    const struct proxy_ops *proxy_ops; /* the mode serving it */
    unsigned refs;                     /* owner + connections (atomic) */
    struct tls_ctx *tls;               /* TLS termination, NULL if none */
};

/*
 * A frontend without listeners (room for one per listen line and worker
 * loop), holding a reference on be. TLS files are read here, so a reload
 * picks up renewed certificates. NULL with a message in err on failure.
 */
struct frontend *frontend_create(const struct config_frontend *cf,
                                 struct backend *be, unsigned nloops, char *err,
                                 size_t errlen);
void frontend_ref(struct frontend *fe);
void frontend_unref(struct frontend *fe);

#endif
