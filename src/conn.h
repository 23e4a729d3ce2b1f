/*
 * conn: one client connection and, once picked, its member connection.
 *
 *   accept ──► (RESOLVING: no member yet, waiting on DNS / first check)
 *     │              │ woken, or polled until timeout_connect
 *     ▼              ▼
 *            CONNECTING ──connect ok──► TUNNEL ──both ways done──► CLOSED
 *                 │  ▲                       │
 *                 │  └─ connect failed,      └─ error, reset, timeout ──►
 *                 │     retries left: pick another member               CLOSED
 *                 └─ no member / retries exhausted / timeout ──► CLOSED
 *
 * A closed conn has its sockets closed and watchers stopped at once, but
 * its memory is freed later by the runtime's ev_check pass, so a callback
 * that closed it may still look at it before returning.
 */
#ifndef FERRY_CONN_H
#define FERRY_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "balance.h"
#include "buf.h"
#include "dns_cache.h"

struct frontend;
struct backend;
struct runtime;

enum conn_state {
    CONN_NEW,                           /* accepted, nothing picked yet */
    CONN_RESOLVING,                     /* pool empty: waiting on DNS */
    CONN_CONNECTING,                    /* connecting to a member */
    CONN_TUNNEL,                        /* bytes flow both ways */
    CONN_CLOSED,                        /* done; waiting to be freed */
};

/* One socket of the pair and the bytes read from it not yet forwarded. */
struct conn_side {
    int fd;                             /* socket, -1 when closed */
    ev_io rio;                          /* readable watcher */
    ev_io wio;                          /* writable watcher */
    struct buf *buf;                    /* read from here, to the peer */
    int pipe[2];                        /* splice path: -1 until bulk */
    size_t piped;                       /* bytes in pipe, not yet sent */
    bool eof;                           /* peer sent FIN (read returned 0) */
    bool shut;                          /* we sent FIN (SHUT_WR) here */
    double last;                        /* last progress on this side */
    uint64_t bytes_in;                  /* bytes read from this side */
};

struct conn {
    enum conn_state state;              /* see the diagram above */
    struct runtime *rt;                 /* owner */
    struct frontend *fe;                /* accepted on */
    struct backend *be;                 /* referenced while open */
    struct conn_side client;            /* accepted socket */
    struct conn_side server;            /* socket to the member */
    struct member *member;              /* picked member (ref held) */
    struct balance_tried tried;         /* members that failed to connect */
    unsigned attempts;                  /* connects started */
    struct dns_cache_waiter dnswait;    /* parked on a resolution */
    ev_timer timer;                     /* connect and idle timeouts */
    double started;                     /* accept time */
    double connect_started;             /* current connect attempt began */
    struct sockaddr_storage peer;       /* client address */
    socklen_t peerlen;                  /* length of peer */
    char peer_text[CONFIG_ADDR_TEXT_MAX]; /* client "IP:PORT" */
    const char *end;                    /* how it ended (access log) */
    struct conn *prev, *next;           /* runtime's list of open conns */
};

/* Closes both sockets (FIN), releases the member, and queues the memory. */
void conn_close(struct conn *c, const char *why);
/* The same, but resets both sockets (RST): one side aborted or failed. */
void conn_abort(struct conn *c, const char *why);
void conn_set_state(struct conn *c, enum conn_state s);
/* Frees every conn queued by conn_close (runtime's ev_check pass). */
void conn_reap(struct runtime *rt);

#endif
