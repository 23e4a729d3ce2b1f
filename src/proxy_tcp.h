/*
 * proxy_tcp: the L4 stream proxy. Picks a member, connects without
 * blocking (retrying other members on failure), then pumps bytes both
 * ways with back-pressure and half-close, and optional PROXY protocol.
 */
#ifndef FERRY_PROXY_TCP_H
#define FERRY_PROXY_TCP_H

#include <stddef.h>
#include <sys/socket.h>

#include "proxy.h"

/* mode = tcp: one instance per event loop (see proxy.h). */
extern const struct proxy_ops proxy_tcp_ops;

/* Builds a PROXY protocol header (v1 or v2) into out; returns its length. */
size_t proxy_protocol_header(int version, const struct sockaddr *src,
                             const struct sockaddr *dst, char *out,
                             size_t outlen);

#endif
