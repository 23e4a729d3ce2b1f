/*
 * proxy_tcp: L4 proxy (see proxy_tcp.h and the state diagram in conn.h).
 *
 * Each side owns the buffer of bytes read from it. Reading a side stops
 * while its buffer waits for the peer to take it (back-pressure), so a
 * connection never holds more than one buffer per direction. A read of 0
 * (FIN) is forwarded as shutdown(SHUT_WR) once the buffer is drained, so
 * half-closed streams work both ways; the conn ends when both directions
 * have ended.
 */
#include "proxy_tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "frontend.h"
#include "log.h"
#include "net.h"
#include "plane.h"

static void proxy_tcp_connect_next(struct conn *c);
static void conn_arm_timer(struct conn *c, double after);

static struct ev_loop *
conn_loop(const struct conn *c)
{
    return c->set->env.loop;
}

/* Gives up on the member being connected to and tries the next one. */
static void
connect_abandon(struct conn *c, enum balance_outcome why)
{
    upstream_failed(&c->up, why, ev_now(conn_loop(c)));
    ev_io_stop(conn_loop(c), &c->server.wio);
    net_close(c->server.fd, false);
    c->server.fd = -1;
    proxy_tcp_connect_next(c);
}

static struct conn *
conn_of_side(struct conn_side *s)
{
    return s->rio.data;
}

static struct conn_side *
peer_of(struct conn *c, struct conn_side *s)
{
    return s == &c->client ? &c->server : &c->client;
}

static void
touch(struct conn *c, struct conn_side *s)
{
    s->last = ev_now(conn_loop(c));
}

/* Everything read from `from` has been delivered: forward its FIN. */
static void
forward_eof(struct conn *c, struct conn_side *from)
{
    struct conn_side *to = peer_of(c, from);

    if (!from->eof || to->shut || (from->buf && buf_len(from->buf) > 0) ||
        from->piped > 0)
        return;
    to->shut = true;
    /* The other direction ended already: close sends this FIN anyway, so
     * a shutdown() here would be one more system call per connection. */
    if (c->client.eof && c->server.eof && c->client.shut && c->server.shut) {
        conn_close(c, "done");
        return;
    }
    shutdown(to->fd, SHUT_WR);
}

/*
 * Writes what `from` buffered to its peer. Returns 0 when all was written,
 * 1 when the peer is full (write watcher armed), -1 when the conn closed.
 */
/*
 * A write to `to` failed (errno set): 0 to retry at once (EINTR), 1 when
 * `to` is full (back-pressure: stop reading `from` until it drains), -1
 * when the conn was aborted.
 */
static int
write_failed(struct conn *c, struct conn_side *from, struct conn_side *to)
{
    if (errno == EINTR)
        return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        ev_io_stop(conn_loop(c), &from->rio);
        ev_io_start(conn_loop(c), &to->wio);
        return 1;
    }
    conn_abort(c,
               to == &c->client ? "client write error" : "server write error");
    return -1;
}

static int
flush(struct conn *c, struct conn_side *from)
{
    struct conn_side *to = peer_of(c, from);
    struct buf *b = from->buf;
    int rc;

    while (from->piped > 0) {
        ssize_t n = splice(from->pipe[0], NULL, to->fd, NULL, from->piped,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0) {
            if ((rc = write_failed(c, from, to)) != 0)
                return rc;
            continue;
        }
        from->piped -= (size_t)n;
        touch(c, to);
    }
    while (b != NULL && buf_len(b) > 0) {
        ssize_t n = send(to->fd, b->data + b->start, buf_len(b), MSG_NOSIGNAL);
        if (n < 0) {
            if ((rc = write_failed(c, from, to)) != 0)
                return rc;
            continue;
        }
        b->start += (size_t)n;
        touch(c, to);
    }
    /* Drained: give the buffer back so idle conns hold no memory. */
    buf_put(from->buf);
    from->buf = NULL;
    ev_io_stop(conn_loop(c), &to->wio);
    if (!from->eof)
        ev_io_start(conn_loop(c), &from->rio);
    forward_eof(c, from);
    return 0;
}

/*
 * Reads and forwards while the socket keeps filling the buffer and the
 * peer keeps taking it: a bulk stream then costs one poll per
 * TCP_READ_BURST buffers, not one per buffer. Bounded for fairness.
 */
#define TCP_READ_BURST 16
/*
 * A direction that has carried this much is a bulk stream: from then on its
 * bytes move socket -> pipe -> socket with splice(2), never copied through
 * user space. Short exchanges never pay for the pipe's two descriptors.
 */
#define TCP_SPLICE_AFTER (64 * 1024)
#define TCP_SPLICE_CHUNK (64 * 1024)

/*
 * Accounts a read (recv or splice) of n bytes from s. False when the
 * caller must stop: nothing more to read now, the FIN was forwarded, or the
 * conn was aborted.
 */
static bool
side_read_result(struct conn *c, struct conn_side *s, ssize_t n)
{
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_abort(c, s == &c->client ? "client reset" : "server reset");
        return false;
    }
    touch(c, s);
    if (n == 0) {
        s->eof = true;
        ev_io_stop(conn_loop(c), &s->rio);
        forward_eof(c, s);
        return false;
    }
    s->bytes_in += (uint64_t)n;
    return true;
}

/* Moves bytes from s into its pipe and on to the peer (splice path). */
static void
side_splice_in(struct conn *c, struct conn_side *s)
{
    for (int burst = 0; burst < TCP_READ_BURST; burst++) {
        /* The pipe is empty whenever we read, so EAGAIN means the socket
         * has nothing more for now. */
        ssize_t n = splice(s->fd, NULL, s->pipe[1], NULL, TCP_SPLICE_CHUNK,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (!side_read_result(c, s, n))
            return;
        s->piped += (size_t)n;
        if (flush(c, s) != 0 || c->state == CONN_CLOSED ||
            (size_t)n < TCP_SPLICE_CHUNK)
            return;
    }
}

/* Whether s should switch to the splice path now (and can: a pipe). */
static bool
side_want_splice(struct conn_side *s)
{
    if (s->pipe[0] >= 0)
        return true;
    if (s->bytes_in < TCP_SPLICE_AFTER || s->buf != NULL)
        return false;
    /* Out of descriptors is no error: the buffer path carries on. */
    if (pipe2(s->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        s->pipe[0] = s->pipe[1] = -1;
        return false;
    }
    return true;
}

static void
side_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn_side *s = container_of(w, struct conn_side, rio);
    struct conn *c = conn_of_side(s);

    (void)revents;
    if (side_want_splice(s)) {
        side_splice_in(c, s);
        return;
    }
    for (int burst = 0; burst < TCP_READ_BURST; burst++) {
        size_t room;
        ssize_t n;

        if (s->buf == NULL && (s->buf = buf_get()) == NULL) {
            conn_close(c, "out of memory");
            return;
        }
        room = buf_room(s->buf);
        n = recv(s->fd, s->buf->data + s->buf->end, room, 0);
        if (!side_read_result(c, s, n))
            return;
        s->buf->end += (size_t)n;
        /* Stop when the peer is full, the conn ended, or the socket had
         * less than a buffer's worth (it is drained: wait for the poll). */
        if (flush(c, s) != 0 || c->state == CONN_CLOSED || (size_t)n < room)
            return;
        if (side_want_splice(s)) {
            side_splice_in(c, s);
            return;
        }
    }
}

static void
side_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn_side *to = container_of(w, struct conn_side, wio);
    struct conn *c = conn_of_side(to);

    (void)loop;
    (void)revents;
    flush(c, peer_of(c, to));
}

/* Arms the single timer for whichever deadline comes first. */
static void
conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = container_of(w, struct conn, timer);
    double now = ev_now(loop), next;

    (void)revents;
    if (c->state == CONN_RESOLVING) {
        /* A poll tick, or the end of the wait: upstream tells which. */
        proxy_tcp_connect_next(c);
        return;
    }
    if (c->state == CONN_CONNECTING) {
        double at = c->connect_started + c->be->cfg.timeout_connect;
        if (now >= at) {
            log_debug("backend %s: connect to %s timed out", c->be->name,
                      c->up.member->addr_text);
            connect_abandon(c, BALANCE_TIMEOUT);
            return;
        }
        next = at;
    } else {
        double ca = c->client.last + c->fe->cfg.timeout_client;
        double sa = c->server.last + c->be->cfg.timeout_server;
        if (now >= ca) {
            conn_close(c, "client timeout");
            return;
        }
        if (now >= sa) {
            conn_close(c, "server timeout");
            return;
        }
        next = ca < sa ? ca : sa;
    }
    ev_timer_set(w, next - now, 0);
    ev_timer_start(loop, w);
}

static void
conn_arm_timer(struct conn *c, double after)
{
    ev_timer_stop(conn_loop(c), &c->timer);
    ev_timer_set(&c->timer, after, 0);
    ev_timer_start(conn_loop(c), &c->timer);
}

size_t
proxy_protocol_header(int version, const struct sockaddr *src,
                      const struct sockaddr *dst, char *out, size_t outlen)
{
    static const char sig[12] = "\r\n\r\n\0\r\nQUIT\n";
    char sip[INET6_ADDRSTRLEN], dip[INET6_ADDRSTRLEN];
    int n;

    if (version == 1) {
        if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
            const struct sockaddr_in *s = (const void *)src;
            const struct sockaddr_in *d = (const void *)dst;
            inet_ntop(AF_INET, &s->sin_addr, sip, sizeof(sip));
            inet_ntop(AF_INET, &d->sin_addr, dip, sizeof(dip));
            n = snprintf(out, outlen, "PROXY TCP4 %s %s %u %u\r\n", sip, dip,
                         ntohs(s->sin_port), ntohs(d->sin_port));
        } else if (src->sa_family == AF_INET6 && dst->sa_family == AF_INET6) {
            const struct sockaddr_in6 *s = (const void *)src;
            const struct sockaddr_in6 *d = (const void *)dst;
            inet_ntop(AF_INET6, &s->sin6_addr, sip, sizeof(sip));
            inet_ntop(AF_INET6, &d->sin6_addr, dip, sizeof(dip));
            n = snprintf(out, outlen, "PROXY TCP6 %s %s %u %u\r\n", sip, dip,
                         ntohs(s->sin6_port), ntohs(d->sin6_port));
        } else {
            n = snprintf(out, outlen, "PROXY UNKNOWN\r\n");
        }
        return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
    }

    /* v2: signature, version/command, family/protocol, length, addresses. */
    if (outlen < 16 + 36)
        return 0;
    memcpy(out, sig, 12);
    out[12] = 0x21; /* version 2, PROXY */
    if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)src;
        const struct sockaddr_in *d = (const void *)dst;
        out[13] = 0x11; /* AF_INET, STREAM */
        out[14] = 0;
        out[15] = 12;
        memcpy(out + 16, &s->sin_addr, 4);
        memcpy(out + 20, &d->sin_addr, 4);
        memcpy(out + 24, &s->sin_port, 2);
        memcpy(out + 26, &d->sin_port, 2);
        return 28;
    }
    if (src->sa_family == AF_INET6 && dst->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)src;
        const struct sockaddr_in6 *d = (const void *)dst;
        out[13] = 0x21; /* AF_INET6, STREAM */
        out[14] = 0;
        out[15] = 36;
        memcpy(out + 16, &s->sin6_addr, 16);
        memcpy(out + 32, &d->sin6_addr, 16);
        memcpy(out + 48, &s->sin6_port, 2);
        memcpy(out + 50, &d->sin6_port, 2);
        return 52;
    }
    out[13] = 0x00; /* UNSPEC */
    out[14] = 0;
    out[15] = 0;
    return 16;
}

static void
conn_tunnel(struct conn *c)
{
    struct ev_loop *loop = conn_loop(c);
    double now = ev_now(loop);
    conn_set_state(c, CONN_TUNNEL);
    ev_io_stop(loop, &c->server.wio);
    ev_io_set(&c->server.rio, c->server.fd, EV_READ);
    ev_io_set(&c->server.wio, c->server.fd, EV_WRITE);
    net_nodelay(c->server.fd);
    PLANE_ADD(c->up.member->stats.requests, 1);
    c->client.last = c->server.last = now;

    if (c->fe->cfg.proxy_protocol != PROXY_PROTOCOL_OFF) {
        struct sockaddr_storage local;
        socklen_t len = sizeof(local);
        struct buf *b = buf_get();
        if (b == NULL ||
            getsockname(c->client.fd, (struct sockaddr *)&local, &len) != 0) {
            buf_put(b);
            conn_close(c, "proxy protocol error");
            return;
        }
        b->end = proxy_protocol_header(
            c->fe->cfg.proxy_protocol == PROXY_PROTOCOL_V1 ? 1 : 2,
            (struct sockaddr *)&c->peer, (struct sockaddr *)&local, b->data,
            BUF_SIZE);
        c->client.buf = b;
        if (flush(c, &c->client) < 0)
            return;
    } else {
        ev_io_start(loop, &c->client.rio);
    }
    ev_io_start(loop, &c->server.rio);
    conn_arm_timer(c, c->fe->cfg.timeout_client < c->be->cfg.timeout_server
                          ? c->fe->cfg.timeout_client
                          : c->be->cfg.timeout_server);
}

static void
connect_failed(struct conn *c, int err)
{
    log_debug("backend %s: connect to %s failed: %s", c->be->name,
              c->up.member->addr_text, strerror(err));
    connect_abandon(c, BALANCE_CONNECT_ERROR);
}

static void
connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn_side *s = container_of(w, struct conn_side, wio);
    struct conn *c = conn_of_side(s);
    int err = upstream_connect_error(s->fd);

    (void)revents;
    if (err != 0) {
        connect_failed(c, err);
        return;
    }
    ev_io_stop(loop, w);
    ev_set_cb(w, side_write_cb);
    conn_tunnel(c);
}

/* The resolution the conn waited on completed: pools were updated before
 * waiters woke, so just pick again. */
static void
proxy_tcp_woken(void *arg)
{
    struct conn *c = arg;

    if (c->state == CONN_RESOLVING)
        proxy_tcp_connect_next(c);
}

/* Picks the next member not yet tried and starts a non-blocking connect. */
static void
proxy_tcp_connect_next(struct conn *c)
{
    struct ev_loop *loop = conn_loop(c);
    double now = ev_now(loop);
    struct balance_ctx key = {0};
    struct member *m;
    int fd;

    /* client_ip is the only key a TCP frontend can hash on. */
    if (c->be->cfg.balance == BALANCE_HASH)
        balance_key_client_ip(&key, &c->peer);
    switch (upstream_pick(&c->up, &key, now)) {
    case UPSTREAM_PICKED:
        break;
    case UPSTREAM_WAIT:
        conn_set_state(c, CONN_RESOLVING);
        conn_arm_timer(c, c->up.retry_at - now);
        return;
    case UPSTREAM_NONE:
        conn_close(c,
                   c->up.attempts == 0 ? "no member up" : "retries exhausted");
        return;
    case UPSTREAM_EXHAUSTED:
        conn_close(c, "retries exhausted");
        return;
    }
    m = c->up.member;
    conn_set_state(c, CONN_CONNECTING);
    c->connect_started = now;
    switch (upstream_connect(m, &fd)) {
    case UPSTREAM_NO_SOCKET: {
        int err = errno;
        upstream_release(&c->up, BALANCE_ABORTED, now);
        log_limited(&c->set->socket_log, now, LOG_LEVEL_WARN,
                    "backend %s: socket: %s", c->be->name, strerror(err));
        conn_close(c, "out of sockets");
        return;
    }
    case UPSTREAM_REFUSED:
        connect_failed(c, errno);
        return;
    case UPSTREAM_CONNECTED:
    case UPSTREAM_CONNECTING:
        break;
    }
    c->server.fd = fd;
    ev_io_init(&c->server.rio, side_read_cb, fd, EV_READ);
    ev_io_init(&c->server.wio, connect_cb, fd, EV_WRITE);
    c->server.rio.data = c;
    c->server.wio.data = c;
    /* Connected at once or not, writable tells: one path for both. */
    ev_io_start(loop, &c->server.wio);
    conn_arm_timer(c, c->be->cfg.timeout_connect);
}

static void
proxy_tcp_accept(void *proxy, struct frontend *fe, int fd,
                 const struct sockaddr *peer, socklen_t peerlen)
{
    struct conn_set *set = proxy;
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        net_close(fd, false);
        set->env.conn_closed(set->env.arg);
        return;
    }
    c->set = set;
    c->state = CONN_NEW;
    c->fe = fe;
    frontend_ref(fe);
    c->be = fe->backend;
    backend_ref(c->be);
    c->started = ev_now(set->env.loop);
    memcpy(&c->peer, peer, peerlen);
    c->peerlen = peerlen;
    net_addr_format(peer, c->peer_text, sizeof(c->peer_text));
    upstream_req_init(&c->up, c->be, set->env.up, proxy_tcp_woken, c);
    c->client.fd = fd;
    c->server.fd = -1;
    c->client.pipe[0] = c->client.pipe[1] = -1;
    c->server.pipe[0] = c->server.pipe[1] = -1;
    ev_io_init(&c->client.rio, side_read_cb, fd, EV_READ);
    ev_io_init(&c->client.wio, side_write_cb, fd, EV_WRITE);
    c->client.rio.data = c;
    c->client.wio.data = c;
    ev_init(&c->timer, conn_timer_cb);
    net_nodelay(fd);

    list_add(&set->open, &c->link);
    PLANE_ADD(fe->stats.connections_total, 1);
    PLANE_ADD(fe->stats.active, 1);
    proxy_tcp_connect_next(c);
}

static void *
proxy_tcp_create(const struct proxy_env *env)
{
    struct conn_set *set = calloc(1, sizeof(*set));

    if (set == NULL)
        return NULL;
    set->env = *env;
    list_init(&set->open);
    list_init(&set->closed);
    return set;
}

/* Graceful stop: a TCP session has no point to stop at; each one runs to
 * its end or to the close_all at shutdown_timeout. */
static void
proxy_tcp_stop(void *proxy)
{
    (void)proxy;
}

static void
proxy_tcp_reap(void *proxy)
{
    conn_reap(proxy);
}

static void
proxy_tcp_close_all(void *proxy)
{
    struct conn_set *set = proxy;
    struct list *l;

    while ((l = list_first(&set->open)) != NULL)
        conn_close(container_of(l, struct conn, link), "shutdown");
    conn_reap(set);
}

static void
proxy_tcp_destroy(void *proxy)
{
    proxy_tcp_close_all(proxy);
    free(proxy);
}

const struct proxy_ops proxy_tcp_ops = {
    .name = "tcp",
    .create = proxy_tcp_create,
    .accept = proxy_tcp_accept,
    .stop = proxy_tcp_stop,
    .close_all = proxy_tcp_close_all,
    .reap = proxy_tcp_reap,
    .destroy = proxy_tcp_destroy,
};
