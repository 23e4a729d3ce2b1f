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

#include "proxy.h"

struct member;

/* mode = http: one instance per event loop (see proxy.h). */
extern const struct proxy_ops proxy_http_ops;

/*
 * Records one response time of m (request head sent -> response head
 * received), in seconds. The one place response times are fed from.
 */
void proxy_http_observe(struct member *m, double seconds);

#endif
