/*
 * http_conn: the state of one HTTP/1.1 client connection of proxy_http,
 * split into the connection (sockets, buffers, timers: struct http_conn)
 * and the request in flight on it (struct http_req, reset in one
 * assignment when the next keep-alive request begins), plus the decisions
 * about that state that need no I/O, so unit tests drive them directly:
 *
 *   body framing       where a body ends within the bytes read so far
 *                      (http_conn_flow_*)
 *   read/write wants   what each socket waits for (http_conn_*_wants_*,
 *                      http_conn_events)
 *   deadlines          which timeout applies now (http_conn_deadline)
 *
 * See proxy_http.c for the phase diagram and the I/O.
 */
#ifndef FERRY_HTTP_CONN_H
#define FERRY_HTTP_CONN_H

#include <arpa/inet.h>
#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "config.h"
#include "http_parser.h"
#include "list.h"
#include "tls.h"
#include "upstream.h"

struct frontend;
struct backend;
struct proxy_http;

enum http_conn_phase {
    HC_HANDSHAKE, /* TLS handshake in progress */
    HC_HEAD,      /* waiting for / reading a head */
    HC_RESOLVING, /* pool empty: waiting on DNS or on
                                           new members' first checks */
    HC_CONNECT,   /* connecting to the member picked */
    HC_FORWARD,   /* request/response in flight */
    HC_TUNNEL,    /* raw bytes both ways (101) */
    HC_LINGER,    /* FIN sent, dropping input */
    HC_CLOSED,    /* done, waiting to be freed */
};

/* What a timer deadline is for. */
enum http_conn_deadline {
    DL_NONE,
    DL_HANDSHAKE, /* TLS handshake too slow */
    DL_REQUEST,   /* head not complete: 408 */
    DL_IDLE,      /* keep-alive idle: close */
    DL_RESOLVE,   /* pool still empty: 503, or retry */
    DL_CONNECT,   /* member connect too slow */
    DL_SERVER,    /* member silent: 504 / abort */
    DL_CLIENT,    /* client stalled: abort */
    DL_LINGER,    /* end of lingering close */
};

/* Bytes in a pooled 16 KiB buffer, or a larger allocation when needed. */
struct http_buf {
    char *data;         /* storage, NULL when none held */
    struct buf *pooled; /* from buf.c, or NULL if malloc'd */
    size_t cap;         /* bytes at data */
    size_t start;       /* first byte not consumed */
    size_t end;         /* one past the last byte */
};

/* Where a message body ends within the bytes read from its sender. */
struct http_flow {
    uint8_t body;           /* enum http_body */
    bool done;              /* the end of the body was seen */
    size_t ok;              /* bytes at buffer start: body */
    uint64_t left;          /* LENGTH: body bytes not seen yet */
    uint64_t bytes;         /* body bytes forwarded */
    struct http_chunked ck; /* CHUNKED: framing state */
};

/* The request in flight: all zero when the next one begins. */
struct http_req {
    size_t parsed;        /* cin bytes the parser has seen */
    struct http_flow rqf; /* request body framing */
    struct http_flow rsf; /* response body framing */
    bool retried;         /* transparent retry used */
    bool resp_final;      /* final response head known */
    bool head_sent;       /* response bytes left for client */
    bool stop_input;      /* read no more request bytes */
    bool keep_client;     /* another request may follow */
    bool keep_member;     /* member conn reusable after */
    bool has_key;         /* hash key computed */
    uint64_t key;         /* hash key digest */
    uint16_t status;      /* status sent for this request */
    uint64_t req_sent;    /* request bytes sent to member */
    uint64_t resp_bytes;  /* bytes read from member */
    uint64_t bytes_out;   /* bytes sent to the client */
    double t_sent;        /* request head fully sent */
    double t_resp;        /* final response head received */
};

/*
 * What the access log says of the request in flight. Kept out of struct
 * http_req: zeroing these 300 bytes on every request would cost more than
 * the rest of the reset; an empty string only needs its first byte.
 */
struct http_req_log {
    char member[CONFIG_ADDR_TEXT_MAX]; /* member used */
    char method[16];                   /* request method */
    char target[256];                  /* request target */
};

struct http_conn {
    enum http_conn_phase phase; /* see proxy_http.c's diagram */
    struct proxy_http *ph;      /* owning proxy instance */
    struct frontend *fe;        /* accepted on (ref held) */
    struct backend *be;         /* started on (ref held) */
    struct tls_io cio;          /* client transport */
    ev_io cw;                   /* client watcher */
    ev_timer timer;             /* the earliest deadline */
    double armed_at;            /* when the timer fires */

    bool c_readable;       /* client read may not block */
    bool c_rd_hot;         /* EV_READ fired, nothing read yet */
    bool c_writable;       /* client write may not block */
    bool c_rd_wants_write; /* TLS read waits for writable */
    bool c_wr_wants_read;  /* TLS write waits for readable */
    bool c_eof;            /* client sent FIN */
    bool c_shut;           /* we sent FIN to the client */
    bool s_eof;            /* member sent FIN */
    bool s_shut;           /* we sent FIN to the member */
    bool req_started;      /* bytes of a head arrived */
    bool in_request;       /* a request awaits its log line */

    struct http_buf cin;     /* from client: head, body, next */
    struct http_buf sout;    /* rewritten request head */
    struct http_buf sin;     /* from member: head, body */
    struct http_buf cout;    /* rewritten response head */
    struct http_msg req;     /* request being served */
    struct http_msg resp;    /* its response from the member */
    struct http_req rq;      /* the rest of this request */
    struct http_req_log log; /* this request's log texts */

    struct upstream_conn *mc; /* member connection in use */
    struct upstream_req up;   /* member picked, tried, waits */
    unsigned nreq;            /* requests served so far */

    double t_accept;        /* accept time */
    double t_req;           /* first byte of this request */
    double c_last;          /* last client progress */
    double s_last;          /* last member progress */
    double idle_since;      /* keep-alive wait began */
    double connect_started; /* member connect began */
    double linger_until;    /* end of the lingering close */

    struct sockaddr_storage peer;         /* client address */
    char peer_text[CONFIG_ADDR_TEXT_MAX]; /* "IP:PORT" */
    char peer_ip[INET6_ADDRSTRLEN];       /* "IP" for X-Forwarded-For */
    const char *end;                      /* why it closed (debug log) */
    struct list link;                     /* proxy's open or closed list */
};

static inline size_t
http_conn_buf_len(const struct http_buf *h)
{
    return h->end - h->start;
}

/* Body framing of a message with this framing and Content-Length. */
void http_conn_flow_init(struct http_flow *f, enum http_body body,
                         uint64_t length);
/*
 * Extends f->ok over the new bytes of h that belong to the body. 0, or -1
 * when chunked framing is broken.
 */
int http_conn_flow_scan(struct http_flow *f, const struct http_buf *h);
/* The whole body was seen and forwarded. */
static inline bool
http_conn_flow_complete(const struct http_flow *f)
{
    return f->done && f->ok == 0;
}

/*
 * Bytes the request (response) flow may send to the member (client).
 * Inline, as the wants below: they run several times per I/O step.
 */
static inline size_t
http_conn_server_out_pending(const struct http_conn *c)
{
    return http_conn_buf_len(&c->sout) + c->rq.rqf.ok;
}

static inline size_t
http_conn_client_out_pending(const struct http_conn *c)
{
    return http_conn_buf_len(&c->cout) + c->rq.rsf.ok;
}
/* Whether each read / write step of proxy_http would act now. */
bool http_conn_client_wants_input(const struct http_conn *c);
bool http_conn_server_wants_input(const struct http_conn *c);
bool http_conn_client_wants_output(const struct http_conn *c);
bool http_conn_server_wants_output(const struct http_conn *c);
/*
 * The events (EV_READ | EV_WRITE) the client and the member watchers
 * should wait for now; *server_ev is 0 without a member connection.
 */
void http_conn_events(const struct http_conn *c, int *client_ev,
                      int *server_ev);
/* The earliest deadline that applies now, and what it is for. */
double http_conn_deadline(const struct http_conn *c,
                          enum http_conn_deadline *kind);

#endif
