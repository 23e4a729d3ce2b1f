/*
 * listener: a bound, listening socket of a frontend and its accept watcher.
 * Accepting pauses (the watcher stops) at max_connections or when the
 * process runs out of file descriptors, and resumes when connections close:
 * never a busy loop.
 */
#ifndef FERRY_LISTENER_H
#define FERRY_LISTENER_H

#include <ev.h>

#include "config.h"

struct frontend;

struct listener {
    ev_io io;                           /* readable = connections waiting */
    int fd;                             /* listening socket */
    struct config_addr addr;            /* where it listens */
    struct frontend *fe;                /* who handles its connections */
};

/* Binds and listens; on failure returns NULL with a message in err. */
struct listener *listener_create(struct ev_loop *loop,
                                 const struct config_addr *addr,
                                 struct frontend *fe, char *err,
                                 size_t errlen);
void listener_start(struct ev_loop *loop, struct listener *l);
void listener_stop(struct ev_loop *loop, struct listener *l);
void listener_destroy(struct ev_loop *loop, struct listener *l);

#endif
