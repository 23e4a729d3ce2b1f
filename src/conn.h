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
 * its memory is freed later by the proxy's reap pass (the runtime's
 * ev_check), so a callback that closed it may still look at it before
 * returning.
 */
#ifndef FERRY_CONN_H
#define FERRY_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "list.h"
#include "log.h"
#include "proxy.h"
#include "upstream.h"

struct frontend;
struct backend;

enum conn_state {
    CONN_NEW,        /* accepted, nothing picked yet */
    CONN_RESOLVING,  /* pool empty: waiting on DNS */
    CONN_CONNECTING, /* connecting to a member */
    CONN_TUNNEL,     /* bytes flow both ways */
    CONN_CLOSED,     /* done; waiting to be freed */
};

/* One socket of the pair and the bytes read from it not yet forwarded. */
struct conn_side {
    int fd;            /* socket, -1 when closed */
    ev_io rio;         /* readable watcher */
    ev_io wio;         /* writable watcher */
    struct buf *buf;   /* read from here, to the peer */
    int pipe[2];       /* splice path: -1 until bulk */
    size_t piped;      /* bytes in pipe, not yet sent */
    bool eof;          /* peer sent FIN (read returned 0) */
    bool shut;         /* we sent FIN (SHUT_WR) here */
    double last;       /* last progress on this side */
    uint64_t bytes_in; /* bytes read from this side */
};

/* One TCP proxy instance: its connections on one loop. */
struct conn_set {
    struct proxy_env env;        /* loop, accounting hook */
    struct list open;            /* every open conn */
    struct list closed;          /* closed, freed by conn_reap */
    struct log_limit socket_log; /* no socket for a member conn */
};

struct conn {
    enum conn_state state;                /* see the diagram above */
    struct conn_set *set;                 /* owner */
    struct frontend *fe;                  /* accepted on (ref held) */
    struct backend *be;                   /* started on (ref held) */
    struct conn_side client;              /* accepted socket */
    struct conn_side server;              /* socket to the member */
    struct upstream_req up;               /* member picked, tried, waits */
    ev_timer timer;                       /* connect and idle timeouts */
    double started;                       /* accept time */
    double connect_started;               /* current connect attempt began */
    struct sockaddr_storage peer;         /* client address */
    socklen_t peerlen;                    /* length of peer */
    char peer_text[CONFIG_ADDR_TEXT_MAX]; /* client "IP:PORT" */
    const char *end;                      /* how it ended (access log) */
    struct list link;                     /* set's open or closed list */
};

/* Closes both sockets (FIN), releases the member, and queues the memory. */
void conn_close(struct conn *c, const char *why);
/* The same, but resets both sockets (RST): one side aborted or failed. */
void conn_abort(struct conn *c, const char *why);
/* Moves c to state s; asserts the move is one the diagram allows. */
void conn_set_state(struct conn *c, enum conn_state s);
/* Frees every conn queued by conn_close. */
void conn_reap(struct conn_set *set);

#endif
