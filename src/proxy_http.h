/*
 * proxy_http: the L7 data plane of `mode = http` frontends (HTTP/1.1
 * reverse proxy, optionally behind TLS termination).
 *
 * A client connection carries many requests one after another; each is
 * balanced on its own, forwarded over an idle keep-alive connection to the
 * member when one is available (the member's `idle` list) or a new one,
 * and its response streamed back. See proxy_http.c for the state diagram
 * and docs/http.md for what is changed in requests and responses.
 */
#ifndef FERRY_PROXY_HTTP_H
#define FERRY_PROXY_HTTP_H

#include <sys/socket.h>

struct frontend;
struct member;
struct runtime;

/* Takes over an accepted client socket of an http frontend. */
void proxy_http_accept(struct frontend *fe, int fd,
                       const struct sockaddr *peer, socklen_t peerlen);

/*
 * Records one response time of m (request head sent -> response head
 * received), in seconds. The one place response times are fed from.
 */
void proxy_http_observe(struct member *m, double seconds);

/* Graceful stop: closes idle client connections; the others close after
 * their current response. */
void proxy_http_stop(struct runtime *rt);
/* Closes every client connection and idle member connection now. */
void proxy_http_close_all(struct runtime *rt);
/* Frees connections closed since the last pass (runtime's ev_check). */
void proxy_http_reap(struct runtime *rt);
/* Closes everything and frees the per-runtime state. */
void proxy_http_destroy(struct runtime *rt);

/* Reload: hands from's idle keep-alive connections to to (same address). */
void proxy_http_move_idle(struct member *from, struct member *to);

#endif
