/*
 * proxy_http: HTTP/1.1 reverse proxy (see proxy_http.h).
 *
 * One client connection (struct hconn) goes through these phases:
 *
 *   accept ─► HANDSHAKE (TLS only) ─► HEAD ◄──────────────────────────┐
 *                                      │ head parsed, pick a member    │
 *                                      ▼                               │
 *   pool empty while DNS or first checks are pending ─► RESOLVING ─┐  │
 *        (woken by DNS or polled, bounded by timeout_connect: 503)  │  │
 *        idle member conn? ──no──► CONNECT ──ok──┐         ◄────────┘  │
 *              │yes                 │ fail: next member (retries)      │
 *              ▼                    ▼            │                     │
 *           FORWARD ◄───────────────────────────-┘  response done,     │
 *   request head+body ─► member     │  keep-alive ─────────────────────┘
 *   response head+body ─► client    ├─ 101 / 2xx to CONNECT ─► TUNNEL
 *                                   └─ close ─► LINGER ─► CLOSED
 *
 * Errors made by ferry (400, 408, 431, 502, 503, 504) are written as a
 * response of the FORWARD phase with no member, so keep-alive and closing
 * work the same for them.
 *
 * I/O is driven by hc_run(): each step (read or write one side) is tried
 * while it makes progress; a side's `readable`/`writable` flag is cleared
 * when a call would block and set again by its watcher, so a socket is
 * only read after epoll said so or before it ever said "empty". The
 * watchers are then set to exactly what is wanted and blocked. Back-
 * pressure: a side is read only when the bytes read from it before have
 * all been forwarded, so a request in flight holds at most one buffer per
 * direction plus the two rewritten heads.
 *
 * Member connections (struct mconn) outlive requests: after a complete
 * keep-alive response they go to their member's idle list (LIFO, bounded,
 * closed after IDLE_TIMEOUT or when the member leaves the pool, or as soon
 * as the member closes them) and serve the next request for any client.
 */
#include "proxy_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "balance.h"
#include "buf.h"
#include "http_parser.h"
#include "log.h"
#include "runtime.h"
#include "tls.h"

/* Idle keep-alive connections kept per member, and for how long. */
#define IDLE_MAX_PER_MEMBER 512
#define IDLE_TIMEOUT 5.0
/* How long a closing connection reads (and drops) what the client sends. */
#define LINGER_TIME 2.0
/* Steps per hc_run before yielding to other connections. */
#define RUN_STEPS 64

enum hc_phase {
    HC_HANDSHAKE,                       /* TLS handshake in progress */
    HC_HEAD,                            /* waiting for / reading a head */
    HC_RESOLVING,                       /* pool empty: waiting on DNS or on
                                           new members' first checks */
    HC_CONNECT,                         /* connecting to the member picked */
    HC_FORWARD,                         /* request/response in flight */
    HC_TUNNEL,                          /* raw bytes both ways (101) */
    HC_LINGER,                          /* FIN sent, dropping input */
    HC_CLOSED,                          /* done, waiting to be freed */
};

/* What a timer deadline is for. */
enum hc_deadline {
    DL_NONE,
    DL_HANDSHAKE,                       /* TLS handshake too slow */
    DL_REQUEST,                         /* head not complete: 408 */
    DL_IDLE,                            /* keep-alive idle: close */
    DL_RESOLVE,                         /* pool still empty: 503, or retry */
    DL_CONNECT,                         /* member connect too slow */
    DL_SERVER,                          /* member silent: 504 / abort */
    DL_CLIENT,                          /* client stalled: abort */
    DL_LINGER,                          /* end of lingering close */
};

/* Bytes in a pooled 16 KiB buffer, or a larger allocation when needed. */
struct hbuf {
    char *data;                         /* storage, NULL when none held */
    struct buf *pooled;                 /* from buf.c, or NULL if malloc'd */
    size_t cap;                         /* bytes at data */
    size_t start;                       /* first byte not consumed */
    size_t end;                         /* one past the last byte */
};

/* Where a message body ends within the bytes read from its sender. */
struct hflow {
    uint8_t body;                       /* enum http_body */
    bool done;                          /* the end of the body was seen */
    size_t ok;                          /* bytes at buffer start: body */
    uint64_t left;                      /* LENGTH: body bytes not seen yet */
    uint64_t bytes;                     /* body bytes forwarded */
    struct http_chunked ck;             /* CHUNKED: framing state */
};

struct proxy_http;
struct hconn;

/* One connection to a member: in use by an hconn, or idle. */
struct mconn {
    int fd;                             /* socket, -1 once closed */
    ev_io io;                           /* read/write watcher */
    ev_timer idle_timer;                /* idle expiry */
    struct member *m;                   /* ref held while open */
    struct hconn *owner;                /* NULL while idle */
    struct proxy_http *ph;              /* per-runtime state */
    struct mconn *mprev, *mnext;        /* member's idle list */
    struct mconn *gprev, *gnext;        /* runtime's idle list; free list */
    bool readable;                      /* may read without waiting */
    bool writable;                      /* may write without waiting */
    bool reused;                        /* served a request before */
    bool idle;                          /* on the idle lists */
};

struct hconn {
    enum hc_phase phase;                /* see the diagram above */
    struct runtime *rt;                 /* owner */
    struct proxy_http *ph;              /* per-runtime state */
    struct frontend *fe;                /* accepted on */
    struct backend *be;                 /* referenced while open */
    struct tls_io cio;                  /* client transport */
    ev_io cw;                           /* client watcher */
    ev_timer timer;                     /* the earliest deadline */
    double armed_at;                    /* when the timer fires */

    bool c_readable;                    /* client read may not block */
    bool c_rd_hot;                      /* EV_READ fired, nothing read yet */
    bool c_writable;                    /* client write may not block */
    bool c_rd_wants_write;              /* TLS read waits for writable */
    bool c_wr_wants_read;               /* TLS write waits for readable */
    bool c_eof;                         /* client sent FIN */
    bool c_shut;                        /* we sent FIN to the client */
    bool s_eof;                         /* member sent FIN */
    bool s_shut;                        /* we sent FIN to the member */

    struct hbuf cin;                    /* from client: head, body, next */
    struct hbuf sout;                   /* rewritten request head */
    struct hbuf sin;                    /* from member: head, body */
    struct hbuf cout;                   /* rewritten response head */
    size_t parsed;                      /* cin bytes the parser has seen */
    struct http_msg req;                /* request being served */
    struct http_msg resp;               /* its response from the member */
    struct hflow rqf;                   /* request body framing */
    struct hflow rsf;                   /* response body framing */

    struct mconn *mc;                   /* member connection in use */
    struct member *member;              /* picked: balance slot held */
    struct balance_tried tried;         /* members that failed to connect */
    unsigned attempts;                  /* members picked for this request */
    bool retried;                       /* transparent retry used */
    bool req_started;                   /* bytes of a head arrived */
    bool in_request;                    /* a request awaits its log line */
    bool resp_final;                    /* final response head known */
    bool head_sent;                     /* response bytes left for client */
    bool stop_input;                    /* read no more request bytes */
    bool keep_client;                   /* another request may follow */
    bool keep_member;                   /* member conn reusable after */
    bool has_key;                       /* hash key computed */
    uint64_t key;                       /* hash key digest */
    uint16_t status;                    /* status sent for this request */
    uint64_t req_sent;                  /* request bytes sent to member */
    uint64_t resp_bytes;                /* bytes read from member */
    uint64_t bytes_out;                 /* bytes sent to the client */
    unsigned nreq;                      /* requests served so far */

    double t_accept;                    /* accept time */
    double t_req;                       /* first byte of this request */
    double t_sent;                      /* request head fully sent */
    double t_resp;                      /* final response head received */
    double c_last;                      /* last client progress */
    double s_last;                      /* last member progress */
    double idle_since;                  /* keep-alive wait began */
    double connect_started;             /* member connect (or wait) began */
    double resolve_poll;                /* HC_RESOLVING: next pick attempt */
    struct dns_cache_waiter dnswait;    /* parked on a resolution */
    double linger_until;                /* end of the lingering close */

    char member_text[CONFIG_ADDR_TEXT_MAX]; /* member used (access log) */
    char method[16];                    /* request method (access log) */
    char target[256];                   /* request target (access log) */
    struct sockaddr_storage peer;       /* client address */
    char peer_text[CONFIG_ADDR_TEXT_MAX]; /* "IP:PORT" */
    char peer_ip[INET6_ADDRSTRLEN];     /* "IP" for X-Forwarded-For */
    const char *end;                    /* why it closed (debug log) */
    struct hconn *prev, *next;          /* open list / closed list */
};

/* Per-runtime state: connection lists and recycled structs. */
struct proxy_http {
    struct hconn *conns;                /* open client connections */
    struct hconn *closed;               /* closed, freed by reap */
    struct mconn *idle;                 /* every idle member connection */
    struct mconn *free_mc;              /* recycled mconn structs */
    unsigned nfree_mc;                  /* entries in free_mc */
};

static void hc_run(struct hconn *c);
static void hc_dispatch(struct hconn *c);
static void hc_connect(struct hconn *c);
static void hc_error(struct hconn *c, unsigned status, const char *why,
                     enum balance_outcome outcome);
static void mconn_cb(struct ev_loop *loop, ev_io *w, int revents);

/* ---------------------------------------------------------------------- */
/* Buffers                                                                 */

static inline size_t
hbuf_len(const struct hbuf *h)
{
    return h->end - h->start;
}

static void
hbuf_put(struct hbuf *h)
{
    if (h->pooled != NULL)
        buf_put(h->pooled);
    else
        free(h->data);
    memset(h, 0, sizeof(*h));
}

/* Makes room for need more bytes after end. 0, or -1 out of memory. */
static int
hbuf_reserve(struct hbuf *h, size_t need)
{
    size_t len, cap;
    char *p;

    if (h->data != NULL && h->cap - h->end >= need)
        return 0;
    if (h->data == NULL && need <= BUF_SIZE) {
        struct buf *b = buf_get();
        if (b == NULL)
            return -1;
        h->pooled = b;
        h->data = b->data;
        h->cap = BUF_SIZE;
        h->start = h->end = 0;
        return 0;
    }
    len = h->data != NULL ? hbuf_len(h) : 0;
    if (h->data != NULL && h->cap - len >= need) {
        memmove(h->data, h->data + h->start, len);
        h->start = 0;
        h->end = len;
        return 0;
    }
    cap = len + need;
    p = malloc(cap);
    if (p == NULL)
        return -1;
    if (len > 0)
        memcpy(p, h->data + h->start, len);
    hbuf_put(h);
    h->data = p;
    h->cap = cap;
    h->start = 0;
    h->end = len;
    return 0;
}

static void
hbuf_append(struct hbuf *h, const void *p, size_t n)
{
    memcpy(h->data + h->end, p, n);
    h->end += n;
}

static void
hbuf_puts(struct hbuf *h, const char *s)
{
    hbuf_append(h, s, strlen(s));
}

/* ---------------------------------------------------------------------- */
/* Body framing                                                            */

static void
flow_init(struct hflow *f, enum http_body body, uint64_t length)
{
    memset(f, 0, sizeof(*f));
    f->body = (uint8_t)body;
    f->left = length;
    if (body == HTTP_BODY_NONE || (body == HTTP_BODY_LENGTH && length == 0))
        f->done = true;
    else if (body == HTTP_BODY_CHUNKED)
        http_chunked_init(&f->ck, 0);
}

/* Extends f->ok over the new bytes of h that belong to the body. */
static int
flow_scan(struct hflow *f, const struct hbuf *h)
{
    size_t avail, used;

    if (f->done || h->data == NULL)
        return 0;
    avail = hbuf_len(h) - f->ok;
    if (avail == 0)
        return 0;
    switch (f->body) {
    case HTTP_BODY_LENGTH:
        used = avail < f->left ? avail : (size_t)f->left;
        f->ok += used;
        f->left -= used;
        f->done = f->left == 0;
        return 0;
    case HTTP_BODY_CHUNKED:
        switch (http_chunked_feed(&f->ck, h->data + h->start + f->ok, avail,
                                  &used)) {
        case HTTP_CHUNKED_DONE:
            f->done = true;
            /* fall through */
        case HTTP_CHUNKED_AGAIN:
            f->ok += used;
            return 0;
        default:
            return -1;
        }
    case HTTP_BODY_CLOSE:
    case HTTP_BODY_TUNNEL:
        f->ok += avail;
        return 0;
    default:
        f->done = true;
        return 0;
    }
}

static inline bool
flow_complete(const struct hflow *f)
{
    return f->done && f->ok == 0;
}

/* ---------------------------------------------------------------------- */
/* Watchers and timers                                                     */

static void
watch(struct ev_loop *loop, ev_io *w, int events)
{
    if (ev_is_active(w) && (w->events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(loop, w);
    if (events != 0) {
        ev_io_set(w, w->fd, events);
        ev_io_start(loop, w);
    }
}

/* Bytes the request flow may send to the member now. */
static size_t
server_out_pending(const struct hconn *c)
{
    return hbuf_len(&c->sout) + c->rqf.ok;
}

static size_t
client_out_pending(const struct hconn *c)
{
    return hbuf_len(&c->cout) + c->rsf.ok;
}

/* The client read step would read now (same test as client_read). */
static bool
client_wants_input(const struct hconn *c)
{
    switch (c->phase) {
    case HC_HEAD:
    case HC_LINGER:
        return !c->c_eof;
    case HC_FORWARD:
        return !c->c_eof && !c->stop_input && !c->rqf.done &&
               hbuf_len(&c->cin) == 0;
    case HC_TUNNEL:
        return !c->c_eof && hbuf_len(&c->cin) == 0;
    default:
        return false;
    }
}

/* The server read step would read now (same test as server_read). */
static bool
server_wants_input(const struct hconn *c)
{
    if (c->mc == NULL || c->s_eof)
        return false;
    if (c->phase == HC_TUNNEL)
        return hbuf_len(&c->sin) == 0;
    if (c->phase != HC_FORWARD)
        return false;
    if (!c->resp_final)
        return true;
    return !c->rsf.done && hbuf_len(&c->sin) == 0;
}

static bool
server_wants_output(const struct hconn *c)
{
    if (c->mc == NULL || c->s_shut)
        return false;
    if (server_out_pending(c) > 0)
        return true;
    return c->phase == HC_TUNNEL && c->c_eof && hbuf_len(&c->cin) == 0;
}

static bool
client_wants_output(const struct hconn *c)
{
    if (c->c_shut)
        return false;
    if (client_out_pending(c) > 0)
        return true;
    return c->phase == HC_TUNNEL && c->s_eof && hbuf_len(&c->sin) == 0;
}

static void
hc_watch(struct hconn *c)
{
    struct ev_loop *loop = c->rt->loop;
    bool rd = false, wr = false;
    int ev;

    if (c->phase == HC_HANDSHAKE) {
        rd = !c->c_readable;
        wr = !c->c_writable;
    } else {
        /*
         * Reading: the watcher stays on even when a read would not block
         * (the loop reads until it would), and while a response is in
         * flight it stays on to notice the client, until an event comes
         * that we do not consume: then it stops, so unread pipelined bytes
         * cannot spin the loop. Not toggling it saves an epoll_ctl per
         * request.
         */
        rd = client_wants_input(c) || c->c_wr_wants_read ||
             (c->phase == HC_FORWARD && !c->c_eof && !c->stop_input &&
              !c->c_rd_hot);
        wr = client_wants_output(c) || c->c_rd_wants_write;
    }
    ev = (rd ? EV_READ : 0) | (wr && !c->c_writable ? EV_WRITE : 0);
    watch(loop, &c->cw, ev);

    if (c->mc != NULL) {
        struct mconn *mc = c->mc;
        if (c->phase == HC_CONNECT) {
            ev = EV_WRITE;
        } else {
            ev = (server_wants_input(c) ? EV_READ : 0) |
                 (server_wants_output(c) && !mc->writable ? EV_WRITE : 0);
        }
        watch(loop, &mc->io, ev);
    }
}

/* The earliest deadline that applies now, and what it is for. */
static double
hc_deadline(const struct hconn *c, enum hc_deadline *kind)
{
    const struct config_frontend *fc = &c->fe->cfg;
    const struct config_backend *bc = &c->be->cfg;
    double d = INFINITY;

    *kind = DL_NONE;
    switch (c->phase) {
    case HC_HANDSHAKE:
        *kind = DL_HANDSHAKE;
        return c->t_accept + fc->timeout_request;
    case HC_HEAD:
        if (c->req_started || c->nreq == 0) {
            *kind = DL_REQUEST;
            return c->t_req + fc->timeout_request;
        }
        *kind = DL_IDLE;
        return c->idle_since + fc->timeout_client;
    case HC_RESOLVING:
        *kind = DL_RESOLVE;
        d = c->connect_started + bc->timeout_connect;
        return c->resolve_poll < d ? c->resolve_poll : d;
    case HC_CONNECT:
        *kind = DL_CONNECT;
        return c->connect_started + bc->timeout_connect;
    case HC_FORWARD:
    case HC_TUNNEL: {
        bool on_server = server_wants_output(c) || server_wants_input(c);
        bool on_client = client_wants_output(c) || client_wants_input(c);
        if (c->phase == HC_TUNNEL)
            on_server = on_client = true;
        if (on_server && c->mc != NULL) {
            d = c->s_last + bc->timeout_server;
            *kind = DL_SERVER;
        }
        if (on_client && c->c_last + fc->timeout_client < d) {
            d = c->c_last + fc->timeout_client;
            *kind = DL_CLIENT;
        }
        return d;
    }
    case HC_LINGER:
        *kind = DL_LINGER;
        return c->linger_until;
    default:
        return d;
    }
}

static void
hc_arm(struct hconn *c)
{
    struct ev_loop *loop = c->rt->loop;
    enum hc_deadline kind;
    double d = hc_deadline(c, &kind);

    if (kind == DL_NONE) {
        ev_timer_stop(loop, &c->timer);
        return;
    }
    /* A later deadline is handled when the earlier timer fires. */
    if (ev_is_active(&c->timer) && c->armed_at <= d)
        return;
    ev_timer_stop(loop, &c->timer);
    c->armed_at = d;
    d -= ev_now(loop);
    ev_timer_set(&c->timer, d > 0 ? d : 0, 0);
    ev_timer_start(loop, &c->timer);
}

/* ---------------------------------------------------------------------- */
/* Member connections and the idle lists                                   */

static struct mconn *
mconn_new(struct proxy_http *ph, struct member *m, int fd)
{
    struct mconn *mc = ph->free_mc;

    if (mc != NULL) {
        ph->free_mc = mc->gnext;
        ph->nfree_mc--;
    } else if ((mc = malloc(sizeof(*mc))) == NULL) {
        return NULL;
    }
    memset(mc, 0, sizeof(*mc));
    mc->fd = fd;
    mc->m = m;
    mc->ph = ph;
    member_ref(m);
    ev_io_init(&mc->io, mconn_cb, fd, EV_WRITE);
    mc->io.data = mc;
    ev_init(&mc->idle_timer, NULL);
    mc->idle_timer.data = mc;
    return mc;
}

static void
idle_unlink(struct mconn *mc)
{
    struct member *m = mc->m;

    if (mc->mprev != NULL)
        mc->mprev->mnext = mc->mnext;
    else
        m->idle = mc->mnext;
    if (mc->mnext != NULL)
        mc->mnext->mprev = mc->mprev;
    if (mc->gprev != NULL)
        mc->gprev->gnext = mc->gnext;
    else
        mc->ph->idle = mc->gnext;
    if (mc->gnext != NULL)
        mc->gnext->gprev = mc->gprev;
    mc->mprev = mc->mnext = mc->gprev = mc->gnext = NULL;
    mc->idle = false;
    m->idle_n--;
}

/* Closes mc (RST when reset) and recycles its memory. */
static void
mconn_close(struct ev_loop *loop, struct mconn *mc, bool reset)
{
    struct proxy_http *ph = mc->ph;

    if (mc->idle)
        idle_unlink(mc);
    ev_io_stop(loop, &mc->io);
    ev_timer_stop(loop, &mc->idle_timer);
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(mc->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(mc->fd);
    mc->fd = -1;
    member_unref(mc->m);
    if (ph->nfree_mc < 1024) {
        mc->gnext = ph->free_mc;
        ph->free_mc = mc;
        ph->nfree_mc++;
    } else {
        free(mc);
    }
}

static void
idle_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    mconn_close(loop, w->data, false);
}

/* Keeps mc for the next request to its member, or closes it. */
static void
idle_put(struct runtime *rt, struct mconn *mc)
{
    struct ev_loop *loop = rt->loop;
    struct member *m = mc->m;
    struct proxy_http *ph = mc->ph;

    mc->owner = NULL;
    if (m->gone || m->idle_n >= IDLE_MAX_PER_MEMBER || rt->stopping) {
        mconn_close(loop, mc, false);
        return;
    }
    mc->idle = true;
    mc->reused = true;
    mc->mprev = NULL;
    mc->mnext = m->idle;
    if (m->idle != NULL)
        m->idle->mprev = mc;
    m->idle = mc;
    mc->gprev = NULL;
    mc->gnext = ph->idle;
    if (ph->idle != NULL)
        ph->idle->gprev = mc;
    ph->idle = mc;
    m->idle_n++;
    /* Readable while idle means the member closed it (or misbehaved). */
    mc->readable = false;
    watch(loop, &mc->io, EV_READ);
    ev_set_cb(&mc->idle_timer, idle_timer_cb);
    ev_timer_set(&mc->idle_timer, IDLE_TIMEOUT, 0);
    ev_timer_start(loop, &mc->idle_timer);
}

void
proxy_http_move_idle(struct member *from, struct member *to)
{
    /* Reload: the same address under a new member object keeps its warm
     * keep-alive connections. */
    for (struct mconn *mc = from->idle; mc != NULL; mc = mc->mnext) {
        mc->m = to;
        member_ref(to);
        member_unref(from);
    }
    to->idle = from->idle;
    to->idle_n = from->idle_n;
    from->idle = NULL;
    from->idle_n = 0;
}

/* Most recently used idle connection of m still worth trying, or NULL. */
static struct mconn *
idle_take(struct ev_loop *loop, struct member *m)
{
    while (m->idle != NULL) {
        struct mconn *mc = m->idle;
        if (m->gone) {
            mconn_close(loop, mc, false);
            continue;
        }
        idle_unlink(mc);
        ev_timer_stop(loop, &mc->idle_timer);
        return mc;
    }
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Closing                                                                 */

static const char *
status_reason(unsigned status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Internal Server Error";
    }
}

/* One access log line for the request that just ended. */
static void
hc_log(struct hconn *c)
{
    struct ev_loop *loop = c->rt->loop;
    char up[32];

    if (!c->in_request)
        return;
    c->in_request = false;
    if (!log_access_enabled())
        return;
    if (c->t_resp > 0 && c->t_sent > 0)
        snprintf(up, sizeof(up), "%.0f", (c->t_resp - c->t_sent) * 1000.0);
    else
        snprintf(up, sizeof(up), "-");
    log_access("http frontend=%s client=%s method=%s target=%s status=%u "
               "bytes=%llu member=%s duration_ms=%.0f upstream_ms=%s",
               c->fe->name, c->peer_text, c->method[0] ? c->method : "-",
               c->target[0] ? c->target : "-", c->status,
               (unsigned long long)c->bytes_out,
               c->member_text[0] ? c->member_text : "-",
               (ev_now(loop) - c->t_req) * 1000.0, up);
}

/* Gives back the member picked for this request, with its outcome. */
static void
hc_release(struct hconn *c, enum balance_outcome outcome)
{
    if (c->member == NULL)
        return;
    backend_release(c->be, c->member, outcome, ev_now(c->rt->loop));
    c->member = NULL;
}

static void
hc_drop_mconn(struct hconn *c, bool reset)
{
    if (c->mc == NULL)
        return;
    mconn_close(c->rt->loop, c->mc, reset);
    c->mc = NULL;
}

static void
hc_close(struct hconn *c, const char *why, bool reset)
{
    struct runtime *rt = c->rt;
    struct proxy_http *ph = c->ph;
    struct ev_loop *loop = rt->loop;

    if (c->phase == HC_CLOSED)
        return;
    c->end = why;
    if (c->in_request) {
        const char *mem = c->member ? c->member->addr_text : "-";
        log_debug("frontend %s: %s: request %s %s ended: %s (member %s)",
                  c->fe->name, c->peer_text, c->method, c->target, why, mem);
    }
    hc_log(c);
    dns_cache_cancel(&c->dnswait);
    hc_drop_mconn(c, reset);
    /* A tunnel that ended on both sides was served well. */
    hc_release(c, c->phase == HC_TUNNEL && !reset ? BALANCE_OK
                                                  : BALANCE_ABORTED);
    ev_io_stop(loop, &c->cw);
    ev_timer_stop(loop, &c->timer);
    tls_io_close(&c->cio, reset);
    hbuf_put(&c->cin);
    hbuf_put(&c->sout);
    hbuf_put(&c->sin);
    hbuf_put(&c->cout);
    c->fe->stats.active--;
    c->phase = HC_CLOSED;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        ph->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = ph->closed;
    ph->closed = c;
    runtime_conn_closed(rt);
}

/* Stops sending (FIN) and drops what the client still sends for a while,
 * so the last response is not destroyed by an RST on unread input. */
static void
hc_linger(struct hconn *c)
{
    double t = c->fe->cfg.timeout_client;

    tls_io_shutdown(&c->cio);
    c->c_shut = true;
    c->phase = HC_LINGER;
    c->linger_until = ev_now(c->rt->loop) + (t < LINGER_TIME ? t : LINGER_TIME);
    if (c->c_eof)
        hc_close(c, "done", false);
}

/* ---------------------------------------------------------------------- */
/* Requests                                                                */

/* Ready for the next request on this connection (keep-alive). */
static void
hc_next_request(struct hconn *c)
{
    double now = ev_now(c->rt->loop);

    c->nreq++;
    c->phase = HC_HEAD;
    http_msg_reset(&c->req);
    c->parsed = 0;
    c->attempts = 0;
    c->tried.n = 0;
    c->retried = c->resp_final = c->head_sent = c->stop_input = false;
    c->has_key = false;
    c->status = 0;
    c->req_sent = c->resp_bytes = c->bytes_out = 0;
    c->t_sent = c->t_resp = 0;
    c->method[0] = c->target[0] = c->member_text[0] = '\0';
    memset(&c->rqf, 0, sizeof(c->rqf));
    memset(&c->rsf, 0, sizeof(c->rsf));
    hbuf_put(&c->sout);
    hbuf_put(&c->sin);
    hbuf_put(&c->cout);
    c->idle_since = c->t_req = now;
    if (hbuf_len(&c->cin) > 0) {
        /* Pipelined: the next head starts at offset 0 for the parser. */
        size_t n = hbuf_len(&c->cin);
        memmove(c->cin.data, c->cin.data + c->cin.start, n);
        c->cin.start = 0;
        c->cin.end = n;
        c->req_started = true;
    } else {
        /* Idle keep-alive connections hold no buffer. */
        hbuf_put(&c->cin);
        c->req_started = false;
    }
}

/* The response (or ferry's error) was fully sent: what next. */
static void
hc_request_end(struct hconn *c)
{
    bool req_done = flow_complete(&c->rqf) && hbuf_len(&c->sout) == 0;

    hc_log(c);
    if (c->mc != NULL) {
        if (c->keep_member && req_done && !c->s_eof &&
            hbuf_len(&c->sin) == 0) {
            struct mconn *mc = c->mc;
            c->mc = NULL;
            idle_put(c->rt, mc);
        } else {
            hc_drop_mconn(c, false);
        }
    }
    hc_release(c, c->status >= 500 ? BALANCE_SERVER_ERROR : BALANCE_OK);
    if (c->keep_client && req_done && !c->stop_input && !c->c_eof &&
        !c->rt->stopping)
        hc_next_request(c);
    else
        hc_linger(c);
}

static bool
method_idempotent(uint8_t m)
{
    return m == HTTP_M_GET || m == HTTP_M_HEAD || m == HTTP_M_OPTIONS ||
           m == HTTP_M_TRACE || m == HTTP_M_PUT || m == HTTP_M_DELETE;
}

/*
 * The member connection failed before a response head. A reused
 * connection the member had closed is retried once on a fresh connection
 * when that cannot repeat a side effect.
 */
static void
hc_server_failed(struct hconn *c, const char *why,
                 enum balance_outcome outcome)
{
    bool nothing_sent = c->req_sent == 0;
    bool safe = c->mc != NULL && c->mc->reused && c->rqf.bytes == 0 &&
                c->rqf.body == HTTP_BODY_NONE &&
                method_idempotent(c->req.method);

    if (!c->retried && !c->head_sent && c->resp_bytes == 0 && c->mc != NULL &&
        (nothing_sent || safe)) {
        log_debug("backend %s: %s on a reused connection to %s; retrying",
                  c->be->name, why, c->member->addr_text);
        hc_drop_mconn(c, true);
        c->retried = true;
        c->sout.start = 0;
        c->req_sent = 0;
        c->s_eof = c->s_shut = false;
        hbuf_put(&c->sin);
        http_response_init(&c->resp, BUF_SIZE, c->req.method);
        hc_connect(c);
        return;
    }
    log_debug("backend %s: %s: %s", c->be->name,
              c->member ? c->member->addr_text : "-", why);
    if (c->head_sent) {
        hc_close(c, why, true);
        return;
    }
    hc_error(c, 502, why, outcome);
}

/*
 * Answers the client with ferry's own response. The member picked (if
 * any) is released with outcome; the connection stays open only when
 * the request was read completely and the client wants more.
 */
static void
hc_error(struct hconn *c, unsigned status, const char *why,
         enum balance_outcome outcome)
{
    char head[256];
    char body[64];
    int hn, bn;
    bool keep, parsed = c->in_request; /* request_ready ran */

    if (c->head_sent) {
        hc_close(c, why, true);
        return;
    }
    log_debug("frontend %s: %s: %u (%s)", c->fe->name, c->peer_text, status,
              why);
    hc_drop_mconn(c, true);
    hc_release(c, outcome);
    c->in_request = true;
    if (c->rqf.done) {
        /* A body read whole but not sent is dropped; the next request
         * starts after it. */
        c->cin.start += c->rqf.ok;
        c->rqf.ok = 0;
    }
    keep = status >= 500 && parsed && c->req.keep_alive &&
           flow_complete(&c->rqf) && !c->c_eof;
    if (!keep)
        c->stop_input = true;
    c->keep_client = keep;
    c->keep_member = false;
    c->status = (uint16_t)status;
    bn = snprintf(body, sizeof(body), "%u %s\n", status,
                  status_reason(status));
    hn = snprintf(head, sizeof(head),
                  "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\n"
                  "Content-Length: %d\r\nCache-Control: no-store\r\n%s\r\n",
                  status, status_reason(status), bn,
                  !keep ? "Connection: close\r\n"
                  : c->req.minor == 0 ? "Connection: keep-alive\r\n"
                                      : "");
    hbuf_put(&c->sout);
    hbuf_put(&c->sin);
    hbuf_put(&c->cout);
    if (hbuf_reserve(&c->cout, (size_t)(hn + bn)) != 0) {
        hc_close(c, "out of memory", true);
        return;
    }
    hbuf_append(&c->cout, head, (size_t)hn);
    if (!parsed || c->req.method != HTTP_M_HEAD)
        hbuf_append(&c->cout, body, (size_t)bn);
    flow_init(&c->rsf, HTTP_BODY_NONE, 0);
    c->resp_final = true;
    c->head_sent = true;
    c->phase = HC_FORWARD;
}

/* Copies the parts of the request the log and the balancer need later. */
static void
request_remember(struct hconn *c)
{
    const char *buf = c->cin.data;
    const struct http_msg *r = &c->req;
    const struct config_backend *bc = &c->be->cfg;
    size_t n;

    n = r->method_s.len < sizeof(c->method) - 1 ? r->method_s.len
                                                 : sizeof(c->method) - 1;
    memcpy(c->method, buf + r->method_s.off, n);
    c->method[n] = '\0';
    n = r->target.len < sizeof(c->target) - 1 ? r->target.len
                                               : sizeof(c->target) - 1;
    memcpy(c->target, buf + r->target.off, n);
    c->target[n] = '\0';

    c->has_key = false;
    if (bc->balance != BALANCE_HASH)
        return;
    if (bc->hash_key == HASH_KEY_URI) {
        c->key = XXH3_64bits(buf + r->path.off, r->path.len);
        c->has_key = true;
    } else if (bc->hash_key == HASH_KEY_HEADER) {
        int i = http_msg_find(r, buf, bc->hash_header,
                              strlen(bc->hash_header), 0);
        if (i >= 0) {
            const struct http_span *v = &r->headers[i].value;
            c->key = XXH3_64bits(buf + v->off, v->len);
            c->has_key = true;
        }
    }
}

/* Copies header line i (name: value CRLF) of m from buf into h. */
static void
copy_header(struct hbuf *h, const char *buf, const struct http_header *hd)
{
    size_t n = hd->value.off + hd->value.len - hd->name.off;

    if (hd->value.len == 0)
        n = hd->name.len + 1; /* "Name:" */
    hbuf_append(h, buf + hd->name.off, n);
    hbuf_append(h, "\r\n", 2);
}

/* The start line of m, CRLF included. */
static struct http_span
start_line(const struct http_msg *m, const char *buf)
{
    const char *p = memchr(buf + m->start, '\n', m->head_len - m->start);
    struct http_span s = {m->start, 0};

    s.len = (uint32_t)(p - (buf + m->start)) + 1;
    return s;
}

/* Writes the request head for the member into sout. */
static int
request_rewrite(struct hconn *c)
{
    const char *buf = c->cin.data;
    const struct http_msg *r = &c->req;
    struct hbuf *o = &c->sout;
    struct http_span sl = start_line(r, buf);
    bool xff = false;

    if (hbuf_reserve(o, r->head_len + 256 + strlen(c->peer_ip)) != 0)
        return -1;
    hbuf_append(o, buf + sl.off, sl.len);
    for (unsigned i = 0; i < r->n_headers; i++) {
        const struct http_header *hd = &r->headers[i];
        if ((hd->flags & HTTP_HF_HOP) || hd->id == HTTP_H_X_FORWARDED_PROTO ||
            hd->id == HTTP_H_X_FORWARDED_FOR)
            continue;
        copy_header(o, buf, hd);
    }
    if (r->minor == 0)
        hbuf_puts(o, "Connection: keep-alive\r\n");
    if ((r->flags & HTTP_F_CONN_UPGRADE) && r->upgrade >= 0) {
        const struct http_span *v = &r->headers[r->upgrade].value;
        hbuf_puts(o, "Connection: upgrade\r\nUpgrade: ");
        hbuf_append(o, buf + v->off, v->len);
        hbuf_puts(o, "\r\n");
    }
    /* X-Forwarded-For: every value the client sent, then its address. */
    hbuf_puts(o, "X-Forwarded-For: ");
    for (unsigned i = 0; i < r->n_headers; i++) {
        const struct http_header *hd = &r->headers[i];
        if (hd->id != HTTP_H_X_FORWARDED_FOR || hd->value.len == 0)
            continue;
        if (xff)
            hbuf_puts(o, ", ");
        hbuf_append(o, buf + hd->value.off, hd->value.len);
        xff = true;
    }
    if (xff)
        hbuf_puts(o, ", ");
    hbuf_puts(o, c->peer_ip);
    hbuf_puts(o, c->cio.ssl != NULL ? "\r\nX-Forwarded-Proto: https\r\n\r\n"
                                    : "\r\nX-Forwarded-Proto: http\r\n\r\n");
    return 0;
}

/* A complete request head is in cin[0, head_len). */
static void
request_ready(struct hconn *c)
{
    c->in_request = true;
    request_remember(c);
    if (request_rewrite(c) != 0) {
        hc_close(c, "out of memory", true);
        return;
    }
    flow_init(&c->rqf, (enum http_body)c->req.body, c->req.content_length);
    c->cin.start = c->req.head_len;
    http_response_init(&c->resp, BUF_SIZE, c->req.method);
    hc_dispatch(c);
}

/* ---------------------------------------------------------------------- */
/* Picking and connecting                                                  */

/* The member connection is ready: send the request. */
static void
hc_attach(struct hconn *c, struct mconn *mc)
{
    int one = 1;

    c->mc = mc;
    mc->owner = c;
    c->phase = HC_FORWARD;
    c->s_eof = c->s_shut = false;
    c->s_last = ev_now(c->rt->loop);
    if (!mc->reused)
        setsockopt(mc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    mc->writable = true;
    if (!c->retried)
        c->member->stats.requests++;
}

static void
hc_connect_failed(struct hconn *c, int err, enum balance_outcome why)
{
    struct member *m = c->member;

    log_debug("backend %s: connect to %s failed: %s", c->be->name,
              m->addr_text, why == BALANCE_TIMEOUT ? "timeout" : strerror(err));
    m->stats.connect_errors++;
    hc_drop_mconn(c, false);
    balance_tried_add(&c->tried, m);
    hc_release(c, why);
    hc_dispatch(c);
}

/* Opens a new connection to c->member. */
static void
hc_connect(struct hconn *c)
{
    struct member *m = c->member;
    struct mconn *mc;
    int fd;

    fd = socket(m->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        log_limited(&c->rt->socket_log, ev_now(c->rt->loop), LOG_LEVEL_WARN,
                    "backend %s: socket: %s", c->be->name, strerror(errno));
        hc_error(c, 503, "out of sockets", BALANCE_ABORTED);
        return;
    }
    mc = mconn_new(c->ph, m, fd);
    if (mc == NULL) {
        close(fd);
        hc_error(c, 503, "out of memory", BALANCE_ABORTED);
        return;
    }
    mc->owner = c;
    c->mc = mc;
    c->phase = HC_CONNECT;
    c->connect_started = ev_now(c->rt->loop);
    if (connect(fd, (struct sockaddr *)&m->addr, m->addrlen) != 0 &&
        errno != EINPROGRESS) {
        hc_connect_failed(c, errno, BALANCE_CONNECT_ERROR);
        return;
    }
}

static void hc_dispatch(struct hconn *c);
static void hc_run(struct hconn *c);

static void
hc_dns_woken(struct dns_cache_waiter *w, enum dns_cache_wake why,
             const struct dns_cache_entry *e)
{
    struct hconn *c = w->arg;

    (void)why;
    (void)e;
    /* Pools were updated before waiters woke: pick again. */
    if (c->phase != HC_RESOLVING)
        return;
    hc_dispatch(c);
    if (c->phase != HC_CLOSED)
        hc_run(c);
}

/*
 * The pool has no member to give: wait (bounded by timeout_connect) when a
 * name has a resolution in flight, or when new members still wait for
 * their first check (polled). Returns true when the request now waits.
 */
static bool
hc_wait_pool(struct hconn *c)
{
    double now = ev_now(c->rt->loop);

    if (c->phase != HC_RESOLVING)
        c->connect_started = now;
    if (!backend_wait_pool(c->be, &c->dnswait, c->connect_started, now,
                           &c->resolve_poll)) {
        dns_cache_cancel(&c->dnswait);
        return false;
    }
    c->phase = HC_RESOLVING;
    return true;
}

/* Picks a member for the request and gets a connection to it. */
static void
hc_dispatch(struct hconn *c)
{
    struct ev_loop *loop = c->rt->loop;
    struct balance_ctx ctx = {0};
    struct mconn *mc;
    struct member *m;

    if (c->attempts > c->be->cfg.retries) {
        hc_error(c, 502, "retries exhausted", BALANCE_CONNECT_ERROR);
        return;
    }
    ctx.tried = &c->tried;
    ctx.now = ev_now(loop);
    if (c->be->cfg.balance == BALANCE_HASH) {
        if (c->be->cfg.hash_key == HASH_KEY_CLIENT_IP) {
            balance_key_client_ip(&ctx, &c->peer);
        } else if (c->has_key) {
            ctx.key = &c->key;
            ctx.keylen = sizeof(c->key);
        }
    }
    m = balance_pick(c->be->pool.balance, &ctx);
    if (m == NULL && c->attempts == 0 && hc_wait_pool(c))
        return;
    if (m == NULL) {
        if (c->attempts == 0)
            hc_error(c, 503, "no member up", BALANCE_ABORTED);
        else
            hc_error(c, 502, "no member reachable", BALANCE_ABORTED);
        return;
    }
    dns_cache_cancel(&c->dnswait);
    backend_dns_lookup(c->be, NULL);
    c->member = m;
    c->attempts++;
    memcpy(c->member_text, m->addr_text, sizeof(c->member_text));
    log_debug("frontend %s: %s: %s %s to %s", c->fe->name, c->peer_text,
              c->method, c->target, m->addr_text);
    mc = idle_take(loop, m);
    if (mc != NULL) {
        hc_attach(c, mc);
        return;
    }
    hc_connect(c);
}

/* ---------------------------------------------------------------------- */
/* Responses                                                               */

/* Writes the response head for the client into cout (1xx included). */
static int
response_rewrite(struct hconn *c, const char *buf, bool tunnel)
{
    const struct http_msg *r = &c->resp;
    struct hbuf *o = &c->cout;
    struct http_span sl = start_line(r, buf);

    if (hbuf_reserve(o, r->head_len + 128) != 0)
        return -1;
    hbuf_append(o, buf + sl.off, sl.len);
    for (unsigned i = 0; i < r->n_headers; i++) {
        const struct http_header *hd = &r->headers[i];
        if (!(hd->flags & HTTP_HF_HOP))
            copy_header(o, buf, hd);
    }
    if (tunnel && r->upgrade >= 0) {
        const struct http_span *v = &r->headers[r->upgrade].value;
        hbuf_puts(o, "Connection: upgrade\r\nUpgrade: ");
        hbuf_append(o, buf + v->off, v->len);
        hbuf_puts(o, "\r\n");
    } else if (r->status >= 200 && !c->keep_client) {
        hbuf_puts(o, "Connection: close\r\n");
    } else if (r->status >= 200 && c->req.minor == 0) {
        hbuf_puts(o, "Connection: keep-alive\r\n");
    }
    hbuf_puts(o, "\r\n");
    return 0;
}

/* A complete response head is at sin.start. */
static void
response_ready(struct hconn *c)
{
    const char *buf = c->sin.data + c->sin.start;
    struct http_msg *r = &c->resp;
    struct member *m = c->member;
    unsigned st = r->status;
    bool tunnel = r->body == HTTP_BODY_TUNNEL;

    if (st < 200 && st != 101) {
        /* Interim (100 Continue...): relay to HTTP/1.1 clients only. */
        if (c->req.minor == 1 && response_rewrite(c, buf, false) != 0) {
            hc_close(c, "out of memory", true);
            return;
        }
        c->head_sent = c->head_sent || c->req.minor == 1;
        c->sin.start += r->head_len;
        http_msg_reset(r);
        return;
    }
    if (tunnel && st == 101 && !(c->req.flags & HTTP_F_UPGRADE)) {
        hc_server_failed(c, "101 without an upgrade request",
                         BALANCE_SERVER_ERROR);
        return;
    }
    c->t_resp = ev_now(c->rt->loop);
    if (c->t_sent > 0)
        proxy_http_observe(m, c->t_resp - c->t_sent);
    m->stats.responses[st / 100 < 6 ? st / 100 : 5]++;
    c->status = (uint16_t)st;
    c->resp_final = true;
    /* The request head can no longer be retried: give its buffer back. */
    if (hbuf_len(&c->sout) == 0)
        hbuf_put(&c->sout);
    c->keep_member = r->keep_alive;
    c->keep_client = c->req.keep_alive && !c->rt->stopping && !tunnel &&
                     r->body != HTTP_BODY_CLOSE && flow_complete(&c->rqf);
    if (response_rewrite(c, buf, tunnel) != 0) {
        hc_close(c, "out of memory", true);
        return;
    }
    c->head_sent = true;
    c->sin.start += r->head_len;
    flow_init(&c->rsf, (enum http_body)r->body, r->content_length);
    if (tunnel) {
        /* From now on both directions are opaque bytes. */
        c->phase = HC_TUNNEL;
        flow_init(&c->rqf, HTTP_BODY_TUNNEL, 0);
        c->keep_member = c->keep_client = false;
    }
}

static void
parse_response(struct hconn *c)
{
    while (!c->resp_final && c->phase == HC_FORWARD && hbuf_len(&c->sin) > 0) {
        switch (http_parse(&c->resp, c->sin.data + c->sin.start,
                           hbuf_len(&c->sin))) {
        case HTTP_PARSE_AGAIN:
            return;
        case HTTP_PARSE_ERROR:
            log_info("backend %s: %s sent a bad response: %s", c->be->name,
                     c->member->addr_text, c->resp.error_reason);
            c->retried = true; /* a bad response is not a closed conn */
            hc_server_failed(c, "bad response", BALANCE_SERVER_ERROR);
            return;
        case HTTP_PARSE_DONE:
            response_ready(c);
            break;
        }
    }
}

/* ---------------------------------------------------------------------- */
/* I/O steps: each returns true when it made progress                      */

static bool
step_handshake(struct hconn *c)
{
    int r = tls_io_handshake(&c->cio);

    if (r == 1) {
        c->phase = HC_HEAD;
        /*
         * The handshake is tried before the watcher ever said "readable",
         * and with read-ahead one read can bring the client's Finished and
         * its first request: OpenSSL then holds the request and the socket
         * is empty, so no event would ever come for it.
         */
        if (tls_io_pending(&c->cio))
            c->c_readable = true;
        c->c_rd_wants_write = c->c_wr_wants_read = false;
        return true;
    }
    if (r == TLS_IO_WANT_READ) {
        c->c_readable = false;
        return false;
    }
    if (r == TLS_IO_WANT_WRITE) {
        c->c_writable = false;
        return false;
    }
    hc_close(c, "TLS handshake failed", false);
    return true;
}

/* Maps a client read result that is not data; true if it closed. */
static bool
client_read_blocked(struct hconn *c, ssize_t n)
{
    if (n == TLS_IO_WANT_READ) {
        c->c_readable = false;
        return false;
    }
    if (n == TLS_IO_WANT_WRITE) {
        c->c_writable = false;
        c->c_rd_wants_write = true;
        return false;
    }
    hc_close(c, "client reset", true);
    return true;
}

static bool
step_head(struct hconn *c)
{
    struct hbuf *in = &c->cin;
    size_t max = c->fe->cfg.max_header_size;
    ssize_t n;

    if (in->data != NULL && in->end > c->parsed) {
        c->parsed = in->end;
        switch (http_parse(&c->req, in->data, in->end)) {
        case HTTP_PARSE_DONE:
            request_ready(c);
            return true;
        case HTTP_PARSE_ERROR:
            c->t_req = c->req_started ? c->t_req : ev_now(c->rt->loop);
            hc_error(c, c->req.error, c->req.error_reason, BALANCE_ABORTED);
            return true;
        case HTTP_PARSE_AGAIN:
            break;
        }
    }
    if (!c->c_readable || c->c_eof)
        return false;
    if (in->data == NULL || in->end == in->cap) {
        /* Room for the whole head: a bigger buffer only past 16 KiB. */
        size_t need = in->data == NULL ? BUF_SIZE : max - in->end;
        if (in->data != NULL && in->end >= max)
            return false;
        if (hbuf_reserve(in, need) != 0) {
            hc_close(c, "out of memory", true);
            return true;
        }
    }
    c->c_rd_hot = false;
    n = tls_io_read(&c->cio, in->data + in->end, in->cap - in->end);
    if (n > 0) {
        /* A short read drained the socket: the next one would only say
         * EAGAIN, so wait for the (level-triggered) watcher instead. */
        if ((size_t)n < in->cap - in->end && !tls_io_pending(&c->cio))
            c->c_readable = false;
        if (!c->req_started) {
            c->req_started = true;
            c->t_req = ev_now(c->rt->loop);
        }
        in->end += (size_t)n;
        c->c_last = ev_now(c->rt->loop);
        c->c_rd_wants_write = false;
        return true;
    }
    if (n == 0) {
        c->c_eof = true;
        hc_close(c, c->req_started ? "client closed mid-head" : "done", false);
        return true;
    }
    return client_read_blocked(c, n);
}

static bool
client_read(struct hconn *c)
{
    struct hbuf *in = &c->cin;
    ssize_t n;

    if (!c->c_readable || !client_wants_input(c))
        return false;
    if (in->data == NULL && hbuf_reserve(in, BUF_SIZE) != 0) {
        hc_close(c, "out of memory", true);
        return true;
    }
    in->start = in->end = 0;
    c->c_rd_hot = false;
    n = tls_io_read(&c->cio, in->data, in->cap);
    if (n > 0) {
        if ((size_t)n < in->cap && !tls_io_pending(&c->cio))
            c->c_readable = false; /* drained: wait for the watcher */
        in->end = (size_t)n;
        c->c_last = ev_now(c->rt->loop);
        c->c_rd_wants_write = false;
        if (flow_scan(&c->rqf, in) != 0) {
            hc_error(c, 400, "bad chunked request body", BALANCE_ABORTED);
            return true;
        }
        return true;
    }
    if (n == 0) {
        c->c_eof = true;
        if (c->phase != HC_TUNNEL)
            hc_close(c, "client closed mid-request", false);
        return true;
    }
    return client_read_blocked(c, n);
}

static bool
server_write(struct hconn *c)
{
    struct mconn *mc = c->mc;
    struct hbuf *in = &c->cin;
    size_t a, b, k;
    struct iovec iov[2];
    ssize_t n;

    if (mc == NULL || !mc->writable || c->s_shut)
        return false;
    if (flow_scan(&c->rqf, in) != 0) {
        hc_error(c, 400, "bad chunked request body", BALANCE_ABORTED);
        return true;
    }
    a = hbuf_len(&c->sout);
    b = c->rqf.ok;
    if (a + b == 0) {
        if (c->phase == HC_TUNNEL && c->c_eof && hbuf_len(in) == 0) {
            shutdown(mc->fd, SHUT_WR);
            c->s_shut = true;
            if (c->c_shut)
                hc_close(c, "done", false);
            return true;
        }
        return false;
    }
    iov[0].iov_base = c->sout.data + c->sout.start;
    iov[0].iov_len = a;
    iov[1].iov_base = in->data + in->start;
    iov[1].iov_len = b;
    n = a == 0 ? writev(mc->fd, iov + 1, 1) : writev(mc->fd, iov, b ? 2 : 1);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            mc->writable = false;
            return false;
        }
        if (c->phase == HC_TUNNEL)
            hc_close(c, "server write error", true);
        else
            hc_server_failed(c, "server write error", BALANCE_SERVER_ERROR);
        return true;
    }
    c->s_last = ev_now(c->rt->loop);
    c->req_sent += (uint64_t)n;
    c->member->stats.bytes_out += (uint64_t)n;
    k = (size_t)n < a ? (size_t)n : a;
    c->sout.start += k;
    if (k == a && a > 0 && c->t_sent == 0)
        c->t_sent = c->s_last;
    k = (size_t)n - k;
    in->start += k;
    c->rqf.ok -= k;
    c->rqf.bytes += k;
    return true;
}

static bool
server_read(struct hconn *c)
{
    struct mconn *mc = c->mc;
    struct hbuf *in = &c->sin;
    ssize_t n;

    if (mc == NULL || !mc->readable || !server_wants_input(c))
        return false;
    if (in->data == NULL && hbuf_reserve(in, BUF_SIZE) != 0) {
        hc_close(c, "out of memory", true);
        return true;
    }
    if (hbuf_len(in) == 0) {
        in->start = in->end = 0;
    } else if (in->end == in->cap) {
        if (in->start == 0) {
            /* A response head larger than a buffer. */
            c->retried = true;
            hc_server_failed(c, "response head too large",
                             BALANCE_SERVER_ERROR);
            return true;
        }
        memmove(in->data, in->data + in->start, hbuf_len(in));
        in->end -= in->start;
        in->start = 0;
    }
    for (;;) {
        n = recv(mc->fd, in->data + in->end, in->cap - in->end, 0);
        if (n >= 0 || errno != EINTR)
            break;
    }
    if (n > 0) {
        if ((size_t)n < in->cap - in->end)
            mc->readable = false; /* drained: wait for the watcher */
        in->end += (size_t)n;
        c->s_last = ev_now(c->rt->loop);
        c->resp_bytes += (uint64_t)n;
        c->member->stats.bytes_in += (uint64_t)n;
        if (!c->resp_final)
            parse_response(c);
        else if (flow_scan(&c->rsf, in) != 0)
            hc_close(c, "bad chunked response body", true);
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        mc->readable = false;
        return false;
    }
    c->s_eof = true;
    if (c->phase == HC_TUNNEL) {
        if (n < 0)
            hc_close(c, "server reset", true);
        return true;
    }
    if (!c->resp_final) {
        hc_server_failed(c, n == 0 ? "server closed before responding"
                                   : "server reset before responding",
                         BALANCE_SERVER_ERROR);
        return true;
    }
    if (c->rsf.body == HTTP_BODY_CLOSE && n == 0) {
        c->rsf.done = true;
        c->keep_member = false;
        return true;
    }
    hc_close(c, "server closed mid-response", true);
    return true;
}

static bool
client_write(struct hconn *c)
{
    struct hbuf *in = &c->sin;
    size_t a, b, k;
    ssize_t n;

    if (!c->c_writable || c->c_shut)
        return false;
    if (c->resp_final && flow_scan(&c->rsf, in) != 0) {
        hc_close(c, "bad chunked response body", true);
        return true;
    }
    a = hbuf_len(&c->cout);
    b = c->resp_final ? c->rsf.ok : 0;
    if (a + b == 0) {
        if (c->phase == HC_TUNNEL && c->s_eof && hbuf_len(in) == 0) {
            tls_io_shutdown(&c->cio);
            c->c_shut = true;
            if (c->s_shut)
                hc_close(c, "done", false);
            return true;
        }
        return false;
    }
    n = tls_io_write2(&c->cio, c->cout.data + c->cout.start, a,
                      b ? in->data + in->start : NULL, b);
    if (n < 0) {
        if (n == TLS_IO_WANT_WRITE) {
            c->c_writable = false;
            return false;
        }
        if (n == TLS_IO_WANT_READ) {
            c->c_readable = false;
            c->c_wr_wants_read = true;
            return false;
        }
        hc_close(c, "client write error", true);
        return true;
    }
    c->c_wr_wants_read = false;
    c->c_last = ev_now(c->rt->loop);
    c->bytes_out += (uint64_t)n;
    k = (size_t)n < a ? (size_t)n : a;
    c->cout.start += k;
    if (k == a && a > 0)
        c->cout.start = c->cout.end = 0;
    k = (size_t)n - k;
    in->start += k;
    c->rsf.ok -= k;
    c->rsf.bytes += k;
    return true;
}

static bool
step_forward(struct hconn *c)
{
    bool p = false;

    p |= client_read(c);
    if (c->phase != HC_FORWARD && c->phase != HC_TUNNEL)
        return true;
    p |= server_write(c);
    if (c->phase != HC_FORWARD && c->phase != HC_TUNNEL)
        return true;
    p |= server_read(c);
    if (c->phase != HC_FORWARD && c->phase != HC_TUNNEL)
        return true;
    p |= client_write(c);
    if (c->phase != HC_FORWARD)
        return p || c->phase != HC_TUNNEL;

    /* The response is complete once all of it reached the client. */
    if (c->resp_final && flow_complete(&c->rsf) && hbuf_len(&c->cout) == 0) {
        if (!flow_complete(&c->rqf) || hbuf_len(&c->sout) > 0) {
            /* Answered before the request ended: neither side reusable. */
            c->keep_client = c->keep_member = false;
            c->stop_input = true;
        }
        hc_request_end(c);
        return true;
    }
    return p;
}

static bool
step_linger(struct hconn *c)
{
    ssize_t n;

    if (!c->c_readable)
        return false;
    if (c->cin.data == NULL && hbuf_reserve(&c->cin, BUF_SIZE) != 0) {
        hc_close(c, "out of memory", false);
        return true;
    }
    c->c_rd_hot = false;
    n = tls_io_read(&c->cio, c->cin.data, c->cin.cap);
    if (n > 0)
        return true;
    if (n == 0 || n == TLS_IO_ERROR) {
        c->c_eof = true;
        hc_close(c, "done", false);
        return true;
    }
    return client_read_blocked(c, n);
}

static void
hc_run(struct hconn *c)
{
    bool p = false;

    for (int i = 0; i < RUN_STEPS; i++) {
        p = false;
        switch (c->phase) {
        case HC_HANDSHAKE:
            p = step_handshake(c);
            break;
        case HC_HEAD:
            p = step_head(c);
            break;
        case HC_FORWARD:
        case HC_TUNNEL:
            p = step_forward(c);
            break;
        case HC_LINGER:
            p = step_linger(c);
            break;
        case HC_RESOLVING:
        case HC_CONNECT:
            break;
        case HC_CLOSED:
            return;
        }
        if (c->phase == HC_CLOSED)
            return;
        if (!p)
            break;
    }
    hc_watch(c);
    hc_arm(c);
    /* Out of steps with work left: come back after the other ready
     * connections had their turn (a closing conn stops cw, which drops
     * this pending event). */
    if (p)
        ev_feed_event(c->rt->loop, &c->cw, 0);
}

/* ---------------------------------------------------------------------- */
/* Callbacks                                                               */

static void
client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hconn *c = w->data;

    (void)loop;
    if (revents & EV_READ)
        c->c_readable = c->c_rd_hot = true;
    if (revents & EV_WRITE)
        c->c_writable = true;
    hc_run(c);
}

static void
mconn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mconn *mc = w->data;
    struct hconn *c = mc->owner;

    if (c == NULL) {
        /* Idle: the member closed it, or sent bytes nobody asked for. */
        mconn_close(loop, mc, true);
        return;
    }
    if (c->phase == HC_CONNECT) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(mc->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            hc_connect_failed(c, err, BALANCE_CONNECT_ERROR);
            if (c->phase != HC_CLOSED)
                hc_run(c);
            return;
        }
        hc_attach(c, mc);
    }
    if (revents & EV_READ)
        mc->readable = true;
    if (revents & EV_WRITE)
        mc->writable = true;
    hc_run(c);
}

static void
hc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct hconn *c = w->data;
    enum hc_deadline kind;
    double d = hc_deadline(c, &kind);

    (void)revents;
    if (kind == DL_NONE)
        return;
    if (ev_now(loop) < d) {
        hc_arm(c);
        return;
    }
    switch (kind) {
    case DL_HANDSHAKE:
        hc_close(c, "TLS handshake timeout", false);
        return;
    case DL_REQUEST:
        hc_error(c, 408, "request head timeout", BALANCE_ABORTED);
        break;
    case DL_IDLE:
        hc_close(c, "done", false);
        return;
    case DL_RESOLVE:
        /* Poll tick (first checks pending) or the end of the wait. */
        hc_dispatch(c);
        break;
    case DL_CONNECT:
        hc_connect_failed(c, ETIMEDOUT, BALANCE_TIMEOUT);
        break;
    case DL_SERVER:
        if (c->head_sent) {
            hc_close(c, "server timeout", true);
            return;
        }
        hc_error(c, 504, "server timeout", BALANCE_TIMEOUT);
        break;
    case DL_CLIENT:
        hc_close(c, "client timeout", true);
        return;
    case DL_LINGER:
        hc_close(c, "done", false);
        return;
    default:
        return;
    }
    if (c->phase != HC_CLOSED)
        hc_run(c);
}

/* ---------------------------------------------------------------------- */
/* Public                                                                  */

void
proxy_http_observe(struct member *m, double seconds)
{
    histogram_observe(&m->resp_hist, seconds);
}

void
proxy_http_accept(struct frontend *fe, int fd, const struct sockaddr *peer,
                  socklen_t peerlen)
{
    struct runtime *rt = fe->rt;
    struct proxy_http *ph = rt->http;
    struct hconn *c;
    int one = 1;

    if (ph == NULL && (ph = rt->http = calloc(1, sizeof(*ph))) == NULL)
        goto fail;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    if (tls_io_init(&c->cio, fe->tls, fd) != 0) {
        free(c);
        goto fail;
    }
    c->rt = rt;
    c->ph = ph;
    dns_cache_waiter_init(&c->dnswait, hc_dns_woken, c);
    c->fe = fe;
    frontend_ref(fe);
    c->be = fe->backend;
    backend_ref(c->be);
    c->phase = fe->tls != NULL ? HC_HANDSHAKE : HC_HEAD;
    c->t_accept = c->t_req = c->c_last = c->idle_since = ev_now(rt->loop);
    memcpy(&c->peer, peer, peerlen);
    addr_format(peer, c->peer_text, sizeof(c->peer_text));
    if (peer->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr,
                  c->peer_ip, sizeof(c->peer_ip));
    else
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr,
                  c->peer_ip, sizeof(c->peer_ip));
    http_request_init(&c->req, fe->cfg.max_header_size);
    ev_io_init(&c->cw, client_cb, fd, EV_READ);
    c->cw.data = c;
    ev_init(&c->timer, hc_timer_cb);
    c->timer.data = c;
    c->c_writable = true;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    c->next = ph->conns;
    if (ph->conns != NULL)
        ph->conns->prev = c;
    ph->conns = c;
    fe->stats.connections_total++;
    fe->stats.active++;
    hc_run(c);
    return;
fail:
    close(fd);
    runtime_conn_closed(rt);
}

void
proxy_http_stop(struct runtime *rt)
{
    struct proxy_http *ph = rt->http;
    struct hconn *c, *next;

    if (ph == NULL)
        return;
    for (c = ph->conns; c != NULL; c = next) {
        next = c->next;
        if ((c->phase == HC_HEAD && !c->req_started) ||
            c->phase == HC_HANDSHAKE)
            hc_close(c, "shutdown", false);
    }
    while (ph->idle != NULL)
        mconn_close(rt->loop, ph->idle, false);
}

void
proxy_http_close_all(struct runtime *rt)
{
    struct proxy_http *ph = rt->http;

    if (ph == NULL)
        return;
    while (ph->conns != NULL)
        hc_close(ph->conns, "shutdown", false);
    while (ph->idle != NULL)
        mconn_close(rt->loop, ph->idle, false);
    proxy_http_reap(rt);
}

void
proxy_http_reap(struct runtime *rt)
{
    struct proxy_http *ph = rt->http;

    if (ph == NULL)
        return;
    while (ph->closed != NULL) {
        struct hconn *c = ph->closed;
        ph->closed = c->next;
        backend_unref(c->be);
        frontend_unref(c->fe);
        free(c);
    }
}

void
proxy_http_destroy(struct runtime *rt)
{
    struct proxy_http *ph = rt->http;

    if (ph == NULL)
        return;
    proxy_http_close_all(rt);
    while (ph->free_mc != NULL) {
        struct mconn *mc = ph->free_mc;
        ph->free_mc = mc->gnext;
        free(mc);
    }
    free(ph);
    rt->http = NULL;
}
