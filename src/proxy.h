/*
 * proxy: what a proxy mode (tcp, http) offers the runtime, as an ops table,
 * and what the runtime offers it (struct proxy_env). A proxy instance owns
 * its client connections on one event loop: it accepts them, drives them,
 * closes them and frees them after the callback that closed them returned.
 *
 *   create ─► accept ... accept ─► stop (graceful: idle ones close, others
 *   after their current exchange) ─► close_all ─► destroy
 *   reap runs once per loop iteration (ev_check) and frees closed ones.
 */
#ifndef FERRY_PROXY_H
#define FERRY_PROXY_H

#include <sys/socket.h>

struct ev_loop;
struct frontend;
struct upstream_loop;

/*
 * What a proxy instance gets from whoever runs it. There is one instance
 * per mode on each worker loop; conn_closed may be called on any of them.
 */
struct proxy_env {
    struct ev_loop *loop;     /* the loop its connections run on */
    struct upstream_loop *up; /* upstream's state on that loop */
    /* A client connection closed (max_connections accounting). */
    void (*conn_closed)(void *arg);
    void *arg; /* conn_closed's argument */
};

struct proxy_ops {
    const char *name; /* "tcp", "http" */
    /* A new instance; NULL on ENOMEM. */
    void *(*create)(const struct proxy_env *env);
    /* Takes over an accepted, non-blocking client socket of fe. */
    void (*accept)(void *proxy, struct frontend *fe, int fd,
                   const struct sockaddr *peer, socklen_t peerlen);
    /* Graceful stop: no new exchanges; idle connections close now. */
    void (*stop)(void *proxy);
    /* Closes every connection now (end of a graceful stop). */
    void (*close_all)(void *proxy);
    /* Frees connections closed since the last pass. */
    void (*reap)(void *proxy);
    /* Closes everything and frees the instance. */
    void (*destroy)(void *proxy);
};

#endif
