/*
 * net: socket and address helpers (see net.h).
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void
net_addr_ip(const struct sockaddr *sa, char *buf, size_t len)
{
    if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
                  (socklen_t)len);
    else if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
                  (socklen_t)len);
    else
        snprintf(buf, len, "unknown");
}

void
net_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET6) {
        net_addr_ip(sa, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip,
                 ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        net_addr_ip(sa, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip,
                 ntohs(((const struct sockaddr_in *)sa)->sin_port));
    } else {
        snprintf(buf, len, "unknown");
    }
}

bool
net_addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
    }
    return false;
}

socklen_t
net_addr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                     : sizeof(struct sockaddr_in);
}

void
net_addr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

int
net_listen(const struct sockaddr *addr, socklen_t len, const char *text,
           int backlog, bool reuseport, char *err, size_t errlen)
{
    const char *call = "socket";
    int one = 1, fd, e;

    fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto err;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    call = "setsockopt SO_REUSEPORT";
    if (reuseport &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto err;
    if (addr->sa_family == AF_INET6)
        /* [::]:PORT means IPv6 only; *:PORT is the IPv4 wildcard. */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    call = "bind";
    if (bind(fd, addr, len) != 0)
        goto err;
    call = "listen";
    if (listen(fd, backlog) != 0)
        goto err;
    return fd;
err:
    e = errno;
    snprintf(err, errlen, "cannot listen on %s: %s: %s", text, call,
             strerror(e));
    if (fd >= 0)
        close(fd);
    return -1;
}

int
net_listen_probe(const struct sockaddr *addr, socklen_t len, const char *text,
                 char *err, size_t errlen)
{
    int fd = net_listen(addr, len, text, 1, false, err, errlen);

    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

enum net_accept_error
net_accept_error(int err)
{
    switch (err) {
    case EAGAIN:
#if EAGAIN != EWOULDBLOCK
    case EWOULDBLOCK:
#endif
    case EINTR:
    case ECONNABORTED:
        return NET_ACCEPT_DRAINED;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        return NET_ACCEPT_EXHAUSTED;
    default:
        return NET_ACCEPT_FAILED;
    }
}

void
net_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void
net_close(int fd, bool reset)
{
    if (fd < 0)
        return;
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(fd);
}
