/*
 * listener: bind/listen/accept (see listener.h).
 */
#include "listener.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net.h"

#define LISTEN_BACKLOG 4096
/* Accepts per wake-up: enough to drain bursts, bounded for fairness. */
#define ACCEPT_BATCH 64

/* Accepts up to max connections; false once the queue is empty or
 * accepting paused. */
static bool
listener_accept_some(struct ev_loop *loop, struct listener *l, int max)
{
    const struct listener_hooks *h = l->hooks;

    for (int i = 0; i < max; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd;

        if (!h->reserve(h->arg))
            return false;
        fd = accept4(l->fd, (struct sockaddr *)&peer, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            h->unreserve(h->arg);
            errno = err;
            switch (net_accept_error(err)) {
            case NET_ACCEPT_DRAINED:
                return false;
            case NET_ACCEPT_EXHAUSTED:
                log_limited(h->log, ev_now(loop), LOG_LEVEL_WARN,
                            "%s: cannot accept on %s: %s; pausing accepts",
                            l->label, l->addr.text, strerror(err));
                h->exhausted(h->arg);
                return false;
            case NET_ACCEPT_FAILED:
                log_limited(h->log, ev_now(loop), LOG_LEVEL_WARN,
                            "%s: accept on %s: %s", l->label, l->addr.text,
                            strerror(err));
                return false;
            }
        }
        l->handler(l->handler_arg, l, fd, (struct sockaddr *)&peer, len);
    }
    return true;
}

static void
listener_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    listener_accept_some(loop, (struct listener *)w, ACCEPT_BATCH);
}

struct listener *
listener_create(const struct config_addr *addr,
                const struct listener_hooks *hooks, bool reuseport, char *err,
                size_t errlen)
{
    struct listener *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->addr = *addr;
    l->hooks = hooks;
    list_init(&l->link);
    snprintf(l->label, sizeof(l->label), "listener");
    l->fd = net_listen((const struct sockaddr *)&addr->ss, addr->len,
                       addr->text, LISTEN_BACKLOG, reuseport, err, errlen);
    if (l->fd < 0) {
        free(l);
        return NULL;
    }
    ev_io_init(&l->io, listener_accept_cb, l->fd, EV_READ);
    return l;
}

void
listener_set_handler(struct listener *l, listener_handler *handler, void *arg,
                     const char *label)
{
    l->handler = handler;
    l->handler_arg = arg;
    snprintf(l->label, sizeof(l->label), "%s", label);
}

void
listener_start(struct ev_loop *loop, struct listener *l)
{
    ev_io_start(loop, &l->io);
}

void
listener_stop(struct ev_loop *loop, struct listener *l)
{
    ev_io_stop(loop, &l->io);
}

void
listener_destroy(struct ev_loop *loop, struct listener *l)
{
    if (l == NULL)
        return;
    ev_io_stop(loop, &l->io);
    net_close(l->fd, false);
    free(l);
}

/* Bounds the drain: a queue refilled as fast as it is drained must not
 * hold the worker forever. */
#define DRAIN_MAX (16 * ACCEPT_BATCH)

void
listener_drain_destroy(struct ev_loop *loop, struct listener *l)
{
    if (l == NULL)
        return;
    ev_io_stop(loop, &l->io);
    for (int n = 0; n < DRAIN_MAX; n += ACCEPT_BATCH)
        if (!listener_accept_some(loop, l, ACCEPT_BATCH))
            break;
    listener_destroy(loop, l);
}
