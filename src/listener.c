/*
 * listener: bind/listen/accept (see listener.h).
 */
#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "proxy_http.h"
#include "proxy_tcp.h"
#include "runtime.h"

#define LISTEN_BACKLOG 4096
/* Accepts per wake-up: enough to drain bursts, bounded for fairness. */
#define ACCEPT_BATCH 64

static void
listener_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct listener *l = (struct listener *)w;
    struct frontend *fe = l->fe;
    struct runtime *rt = fe->rt;

    (void)revents;
    for (int i = 0; i < ACCEPT_BATCH && !rt->accept_paused; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                log_limited(&rt->accept_log, ev_now(loop), LOG_LEVEL_WARN,
                            "frontend %s: cannot accept on %s: %s; pausing "
                            "accepts",
                            fe->name, l->addr.text, strerror(errno));
                runtime_accept_exhausted(rt);
                return;
            }
            log_limited(&rt->accept_log, ev_now(loop), LOG_LEVEL_WARN,
                        "frontend %s: accept on %s: %s", fe->name,
                        l->addr.text, strerror(errno));
            return;
        }
        runtime_conn_opened(rt);
        if (fe->cfg.mode == MODE_HTTP)
            proxy_http_accept(fe, fd, (struct sockaddr *)&peer, len);
        else
            proxy_tcp_accept(fe, fd, (struct sockaddr *)&peer, len);
    }
}

struct listener *
listener_create(struct ev_loop *loop, const struct config_addr *addr,
                struct frontend *fe, char *err, size_t errlen)
{
    struct listener *l;
    int one = 1;

    (void)loop;
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->addr = *addr;
    l->fe = fe;
    l->fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
                                           SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: socket: %s", addr->text,
                 strerror(errno));
        goto err;
    }
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr->ss.ss_family == AF_INET6)
        /* [::]:PORT means IPv6 only; *:PORT is the IPv4 wildcard. */
        setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(l->fd, (const struct sockaddr *)&addr->ss, addr->len) != 0) {
        snprintf(err, errlen, "cannot listen on %s: bind: %s", addr->text,
                 strerror(errno));
        goto err;
    }
    if (listen(l->fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "cannot listen on %s: listen: %s", addr->text,
                 strerror(errno));
        goto err;
    }
    ev_io_init(&l->io, listener_accept_cb, l->fd, EV_READ);
    return l;
err:
    if (l->fd >= 0)
        close(l->fd);
    free(l);
    return NULL;
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
    close(l->fd);
    free(l);
}
