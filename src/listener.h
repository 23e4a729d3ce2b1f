/*
 * listener: a bound, listening socket and its accept watcher. It knows
 * nothing of proxies: whoever creates it gives it a handler for accepted
 * sockets (as nginx's ls->handler) and the accept-limit hooks. Accepting
 * pauses (the watcher stops) at max_connections or when the process runs
 * out of file descriptors, and resumes when connections close: never a
 * busy loop.
 */
#ifndef FERRY_LISTENER_H
#define FERRY_LISTENER_H

#include <ev.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "config.h"
#include "list.h"
#include "log.h"

struct listener;

/* Takes over an accepted, non-blocking socket that came in on l. */
typedef void listener_handler(void *arg, const struct listener *l, int fd,
                              const struct sockaddr *peer, socklen_t peerlen);

/*
 * Accept limits, shared by every listener of one owner (one worker). A
 * connection slot is taken before each accept(2), so a limit shared by
 * many threads is never overshot.
 */
struct listener_hooks {
    /* Takes a slot for one more connection; false (accepting paused) at
     * the limit. */
    bool (*reserve)(void *arg);
    /* accept(2) gave nothing for the slot reserve took. */
    void (*unreserve)(void *arg);
    /* Out of descriptors or memory: pause, and try again later. */
    void (*exhausted)(void *arg);
    struct log_limit *log; /* accept failures, rate limited */
    void *arg;             /* every hook's argument */
};

struct listener {
    ev_io io;                           /* readable = connections waiting */
    int fd;                             /* listening socket */
    struct config_addr addr;            /* where it listens */
    listener_handler *handler;          /* who takes its connections */
    void *handler_arg;                  /* handler's argument */
    char label[CONFIG_NAME_MAX + 16];   /* "frontend NAME" for logs */
    const struct listener_hooks *hooks; /* accept limits */
    struct list link;                   /* its owner's list */
    unsigned mark;                      /* owner's use (reload generation) */
};

/*
 * Binds and listens (with reuseport, as one of several sockets on addr);
 * on failure returns NULL with a message in err.
 */
struct listener *listener_create(const struct config_addr *addr,
                                 const struct listener_hooks *hooks,
                                 bool reuseport, char *err, size_t errlen);
/*
 * Who takes the connections from now on (set before starting; a reload
 * hands a kept socket to its new frontend this way). label names the
 * owner in log lines.
 */
void listener_set_handler(struct listener *l, listener_handler *handler,
                          void *arg, const char *label);
void listener_start(struct ev_loop *loop, struct listener *l);
void listener_stop(struct ev_loop *loop, struct listener *l);
void listener_destroy(struct ev_loop *loop, struct listener *l);
/*
 * Stops l, hands every connection already waiting in its accept queue to
 * the handler (closing it would reset them), then closes it.
 */
void listener_drain_destroy(struct ev_loop *loop, struct listener *l);

#endif
