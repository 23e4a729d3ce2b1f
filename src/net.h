/*
 * net: socket and address helpers shared by every module that touches a
 * socket (listeners of both endpoints, member connections, probes), so
 * each rule (IPv6-only wildcards, RST on abort, which accept errors mean
 * "out of descriptors") is written once.
 */
#ifndef FERRY_NET_H
#define FERRY_NET_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Formats addr as "IP:PORT" or "[IPv6]:PORT". */
void net_addr_format(const struct sockaddr *sa, char *buf, size_t len);
/* Formats only the IP ("127.0.0.1", "::1"): X-Forwarded-For. */
void net_addr_ip(const struct sockaddr *sa, char *buf, size_t len);
/* Sets the port of an IPv4 or IPv6 address (host order in). */
void net_addr_set_port(struct sockaddr_storage *ss, uint16_t port);
/* Equal family, address and port. */
bool net_addr_equal(const struct sockaddr *a, const struct sockaddr *b);
/* The length of the sockaddr of ss's family. */
socklen_t net_addr_len(const struct sockaddr_storage *ss);

/*
 * A non-blocking listening socket on addr (SO_REUSEADDR; an IPv6 address
 * listens on IPv6 only, so [::]:P and *:P can both be bound). With
 * reuseport (one socket per worker) SO_REUSEPORT, so the kernel spreads
 * connections over the sockets bound to addr. Returns the fd, or -1 with
 * "cannot listen on TEXT: CALL: REASON" in err.
 */
int net_listen(const struct sockaddr *addr, socklen_t len, const char *text,
               int backlog, bool reuseport, char *err, size_t errlen);

/*
 * Binds addr without SO_REUSEPORT and lets go at once: fails (message as
 * net_listen's) when another socket holds the address, even one with
 * SO_REUSEPORT, which the SO_REUSEPORT sockets that follow would
 * otherwise join silently (a second ferry on the same port).
 */
int net_listen_probe(const struct sockaddr *addr, socklen_t len,
                     const char *text, char *err, size_t errlen);

/* What a failed accept4() means for the accept loop. */
enum net_accept_error {
    NET_ACCEPT_DRAINED,   /* nothing more to take now */
    NET_ACCEPT_EXHAUSTED, /* out of fds or memory: pause */
    NET_ACCEPT_FAILED,    /* anything else: log, go on */
};
enum net_accept_error net_accept_error(int err);

/* Disables Nagle: requests and responses are written whole. */
void net_nodelay(int fd);
/*
 * Closes fd; with reset, as an abort (RST), so the peer does not take a
 * stream that failed for one that ended well.
 */
void net_close(int fd, bool reset);

/*
 * Sets the events (EV_READ | EV_WRITE, 0 stops it) an fd watcher waits
 * for, calling into libev only when they change: the proxies call this on
 * every I/O step, and an unchanged set costs no epoll_ctl. Inline for that
 * reason.
 */
static inline void
net_io_watch(struct ev_loop *loop, ev_io *w, int events)
{
    if (ev_is_active(w) && (w->events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(loop, w);
    if (events != 0) {
        ev_io_set(w, w->fd, events);
        ev_io_start(loop, w);
    }
}

#endif
