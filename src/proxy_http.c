/*
 * proxy_http: HTTP/1.1 reverse proxy (see proxy_http.h).
 *
 * One client connection (struct http_conn) goes through these phases:
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
 * Member connections (struct upstream_conn) outlive requests: after a
 * complete keep-alive response they go back to upstream's idle list of
 * their member and serve the next request for any client.
 *
 * The structs, and the decisions that need no I/O (body framing, which
 * deadline comes next, what each socket waits for), are in http_conn.{c,h}
 * so unit tests can drive them.
 */
#include "proxy_http.h"

#include <arpa/inet.h>
#include <assert.h>
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

#include "buf.h"
#include "frontend.h"
#include "http_conn.h"
#include "http_parser.h"
#include "log.h"
#include "net.h"
#include "plane.h"
#include "tls.h"
#include "upstream.h"

/* How long a closing connection reads (and drops) what the client sends. */
#define LINGER_TIME 2.0
/* Steps per hc_run before yielding to other connections. */
#define RUN_STEPS 64

/* One HTTP proxy instance: its connections on one loop. */
struct proxy_http {
    struct proxy_env env;        /* loop, accounting hook */
    struct list conns;           /* open client connections */
    struct list closed;          /* closed, freed by reap */
    struct log_limit socket_log; /* no socket for a member conn */
    bool stopping;               /* graceful stop: no keep-alive */
};

static void hc_run(struct http_conn *c);

/*
 * Every phase change goes through here. The diagram above is enforced where
 * it matters for memory safety: nothing leaves CLOSED (the struct waits to
 * be freed), and a lingering connection can only close.
 */
static void
hc_set_phase(struct http_conn *c, enum http_conn_phase p)
{
    assert(c->phase != HC_CLOSED);
    assert(c->phase != HC_LINGER || p == HC_CLOSED);
    assert(p != HC_HANDSHAKE);
    c->phase = p;
}
static void hc_dispatch(struct http_conn *c);
static void hc_connect(struct http_conn *c);
static void hc_error(struct http_conn *c, unsigned status, const char *why,
                     enum balance_outcome outcome);
static void mconn_cb(struct ev_loop *loop, ev_io *w, int revents);

/* ---------------------------------------------------------------------- */
/* Buffers                                                                 */

static void
hbuf_put(struct http_buf *h)
{
    if (h->pooled != NULL)
        buf_put(h->pooled);
    else
        free(h->data);
    memset(h, 0, sizeof(*h));
}

/* Makes room for need more bytes after end. 0, or -1 out of memory. */
static int
hbuf_reserve(struct http_buf *h, size_t need)
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
    len = h->data != NULL ? http_conn_buf_len(h) : 0;
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
hbuf_append(struct http_buf *h, const void *p, size_t n)
{
    memcpy(h->data + h->end, p, n);
    h->end += n;
}

static void
hbuf_puts(struct http_buf *h, const char *s)
{
    hbuf_append(h, s, strlen(s));
}

/* ---------------------------------------------------------------------- */
/* Watchers and timers                                                     */

static void
hc_watch(struct http_conn *c)
{
    struct ev_loop *loop = c->ph->env.loop;
    int cev, sev;

    http_conn_events(c, &cev, &sev);
    net_io_watch(loop, &c->cw, cev);
    if (c->mc != NULL)
        net_io_watch(loop, &c->mc->io, sev);
}

static void
hc_arm(struct http_conn *c)
{
    struct ev_loop *loop = c->ph->env.loop;
    enum http_conn_deadline kind;
    double d = http_conn_deadline(c, &kind);

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

/* ---------------------------------------------------------------------- */
/* Closing                                                                 */

/* One access log line for the request that just ended. */
static void
hc_log(struct http_conn *c)
{
    struct ev_loop *loop = c->ph->env.loop;
    char up[32];

    if (!c->in_request)
        return;
    c->in_request = false;
    if (!log_access_enabled())
        return;
    if (c->rq.t_resp > 0 && c->rq.t_sent > 0)
        snprintf(up, sizeof(up), "%.0f",
                 (c->rq.t_resp - c->rq.t_sent) * 1000.0);
    else
        snprintf(up, sizeof(up), "-");
    log_access("http frontend=%s client=%s method=%s target=%s status=%u "
               "bytes=%llu member=%s duration_ms=%.0f upstream_ms=%s",
               c->fe->name, c->peer_text,
               c->log.method[0] ? c->log.method : "-",
               c->log.target[0] ? c->log.target : "-", c->rq.status,
               (unsigned long long)c->rq.bytes_out,
               c->log.member[0] ? c->log.member : "-",
               (ev_now(loop) - c->t_req) * 1000.0, up);
}

/* Gives back the member picked for this request, with its outcome. */
static void
hc_release(struct http_conn *c, enum balance_outcome outcome)
{
    if (c->up.member == NULL)
        return;
    upstream_release(&c->up, outcome, ev_now(c->ph->env.loop));
}

static void
hc_drop_mconn(struct http_conn *c, bool reset)
{
    if (c->mc == NULL)
        return;
    upstream_conn_close(c->mc, reset);
    c->mc = NULL;
}

static void
hc_close(struct http_conn *c, const char *why, bool reset)
{
    struct proxy_http *ph = c->ph;
    struct ev_loop *loop = ph->env.loop;

    if (c->phase == HC_CLOSED)
        return;
    c->end = why;
    if (c->in_request) {
        const char *mem = c->up.member ? c->up.member->addr_text : "-";
        log_debug("frontend %s: %s: request %s %s ended: %s (member %s)",
                  c->fe->name, c->peer_text, c->log.method, c->log.target, why,
                  mem);
    }
    hc_log(c);
    upstream_req_cancel(&c->up);
    hc_drop_mconn(c, reset);
    /* A tunnel that ended on both sides was served well. */
    hc_release(c,
               c->phase == HC_TUNNEL && !reset ? BALANCE_OK : BALANCE_ABORTED);
    ev_io_stop(loop, &c->cw);
    ev_timer_stop(loop, &c->timer);
    tls_io_close(&c->cio, reset);
    hbuf_put(&c->cin);
    hbuf_put(&c->sout);
    hbuf_put(&c->sin);
    hbuf_put(&c->cout);
    assert(PLANE_GET(c->fe->stats.active) > 0);
    PLANE_SUB(c->fe->stats.active, 1);
    hc_set_phase(c, HC_CLOSED);

    list_del(&c->link);
    list_add(&ph->closed, &c->link);
    ph->env.conn_closed(ph->env.arg);
}

/* Stops sending (FIN) and drops what the client still sends for a while,
 * so the last response is not destroyed by an RST on unread input. */
static void
hc_linger(struct http_conn *c)
{
    double t = c->fe->cfg.timeout_client;

    tls_io_shutdown(&c->cio);
    c->c_shut = true;
    hc_set_phase(c, HC_LINGER);
    c->linger_until = ev_now(c->ph->env.loop) +
                      (t < LINGER_TIME ? t : LINGER_TIME);
    if (c->c_eof)
        hc_close(c, "done", false);
}

/* ---------------------------------------------------------------------- */
/* Requests                                                                */

/* Ready for the next request on this connection (keep-alive). */
static void
hc_next_request(struct http_conn *c)
{
    double now = ev_now(c->ph->env.loop);

    c->nreq++;
    hc_set_phase(c, HC_HEAD);
    http_msg_reset(&c->req);
    c->rq = (struct http_req){0};
    c->log.member[0] = c->log.method[0] = c->log.target[0] = '\0';
    upstream_req_reset(&c->up);
    hbuf_put(&c->sout);
    hbuf_put(&c->sin);
    hbuf_put(&c->cout);
    c->idle_since = c->t_req = now;
    if (http_conn_buf_len(&c->cin) > 0) {
        /* Pipelined: the next head starts at offset 0 for the parser. */
        size_t n = http_conn_buf_len(&c->cin);
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
hc_request_end(struct http_conn *c)
{
    bool req_done = http_conn_flow_complete(&c->rq.rqf) &&
                    http_conn_buf_len(&c->sout) == 0;

    hc_log(c);
    if (c->mc != NULL) {
        if (c->rq.keep_member && req_done && !c->s_eof &&
            http_conn_buf_len(&c->sin) == 0) {
            struct upstream_conn *mc = c->mc;
            c->mc = NULL;
            upstream_idle_put(mc);
        } else {
            hc_drop_mconn(c, false);
        }
    }
    hc_release(c, c->rq.status >= 500 ? BALANCE_SERVER_ERROR : BALANCE_OK);
    if (c->rq.keep_client && req_done && !c->rq.stop_input && !c->c_eof &&
        !c->ph->stopping)
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
hc_server_failed(struct http_conn *c, const char *why,
                 enum balance_outcome outcome)
{
    bool nothing_sent = c->rq.req_sent == 0;
    bool safe = c->mc != NULL && c->mc->reused && c->rq.rqf.bytes == 0 &&
                c->rq.rqf.body == HTTP_BODY_NONE &&
                method_idempotent(c->req.method);

    if (!c->rq.retried && !c->rq.head_sent && c->rq.resp_bytes == 0 &&
        c->mc != NULL && (nothing_sent || safe)) {
        log_debug("backend %s: %s on a reused connection to %s; retrying",
                  c->be->name, why, c->up.member->addr_text);
        hc_drop_mconn(c, true);
        c->rq.retried = true;
        c->sout.start = 0;
        c->rq.req_sent = 0;
        c->s_eof = c->s_shut = false;
        hbuf_put(&c->sin);
        http_response_init(&c->resp, BUF_SIZE, c->req.method);
        hc_connect(c);
        return;
    }
    log_debug("backend %s: %s: %s", c->be->name,
              c->up.member ? c->up.member->addr_text : "-", why);
    if (c->rq.head_sent) {
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
hc_error(struct http_conn *c, unsigned status, const char *why,
         enum balance_outcome outcome)
{
    char head[256];
    char body[64];
    int hn, bn;
    bool keep, parsed = c->in_request; /* request_ready ran */

    if (c->rq.head_sent) {
        hc_close(c, why, true);
        return;
    }
    log_debug("frontend %s: %s: %u (%s)", c->fe->name, c->peer_text, status,
              why);
    hc_drop_mconn(c, true);
    hc_release(c, outcome);
    c->in_request = true;
    if (c->rq.rqf.done) {
        /* A body read whole but not sent is dropped; the next request
         * starts after it. */
        c->cin.start += c->rq.rqf.ok;
        c->rq.rqf.ok = 0;
    }
    keep = status >= 500 && parsed && c->req.keep_alive &&
           http_conn_flow_complete(&c->rq.rqf) && !c->c_eof;
    if (!keep)
        c->rq.stop_input = true;
    c->rq.keep_client = keep;
    c->rq.keep_member = false;
    c->rq.status = (uint16_t)status;
    bn = snprintf(body, sizeof(body), "%u %s\n", status,
                  http_status_text(status));
    hn = snprintf(head, sizeof(head),
                  "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\n"
                  "Content-Length: %d\r\nCache-Control: no-store\r\n%s\r\n",
                  status, http_status_text(status), bn,
                  !keep               ? "Connection: close\r\n"
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
    http_conn_flow_init(&c->rq.rsf, HTTP_BODY_NONE, 0);
    c->rq.resp_final = true;
    c->rq.head_sent = true;
    hc_set_phase(c, HC_FORWARD);
}

/* Copies the parts of the request the log and the balancer need later. */
static void
request_remember(struct http_conn *c)
{
    const char *buf = c->cin.data;
    const struct http_msg *r = &c->req;
    const struct config_backend *bc = &c->be->cfg;
    size_t n;

    n = r->method_s.len < sizeof(c->log.method) - 1 ? r->method_s.len
                                                    : sizeof(c->log.method) - 1;
    memcpy(c->log.method, buf + r->method_s.off, n);
    c->log.method[n] = '\0';
    n = r->target.len < sizeof(c->log.target) - 1 ? r->target.len
                                                  : sizeof(c->log.target) - 1;
    memcpy(c->log.target, buf + r->target.off, n);
    c->log.target[n] = '\0';

    c->rq.has_key = false;
    if (bc->balance != BALANCE_HASH)
        return;
    if (bc->hash_key == HASH_KEY_URI) {
        c->rq.key = XXH3_64bits(buf + r->path.off, r->path.len);
        c->rq.has_key = true;
    } else if (bc->hash_key == HASH_KEY_HEADER) {
        int i = http_msg_find(r, buf, bc->hash_header, strlen(bc->hash_header),
                              0);
        if (i >= 0) {
            const struct http_span *v = &r->headers[i].value;
            c->rq.key = XXH3_64bits(buf + v->off, v->len);
            c->rq.has_key = true;
        }
    }
}

/* Copies header line i (name: value CRLF) of m from buf into h. */
static void
copy_header(struct http_buf *h, const char *buf, const struct http_header *hd)
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
request_rewrite(struct http_conn *c)
{
    const char *buf = c->cin.data;
    const struct http_msg *r = &c->req;
    struct http_buf *o = &c->sout;
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
request_ready(struct http_conn *c)
{
    c->in_request = true;
    request_remember(c);
    if (request_rewrite(c) != 0) {
        hc_close(c, "out of memory", true);
        return;
    }
    http_conn_flow_init(&c->rq.rqf, (enum http_body)c->req.body,
                        c->req.content_length);
    c->cin.start = c->req.head_len;
    http_response_init(&c->resp, BUF_SIZE, c->req.method);
    hc_dispatch(c);
}

/* ---------------------------------------------------------------------- */
/* Picking and connecting                                                  */

/* The member connection is ready: send the request. */
static void
hc_attach(struct http_conn *c, struct upstream_conn *mc)
{
    c->mc = mc;
    hc_set_phase(c, HC_FORWARD);
    c->s_eof = c->s_shut = false;
    c->s_last = ev_now(c->ph->env.loop);
    if (!mc->reused)
        net_nodelay(mc->fd);
    mc->writable = true;
    if (!c->rq.retried)
        PLANE_ADD(c->up.member->stats.requests, 1);
}

static void
hc_connect_failed(struct http_conn *c, int err, enum balance_outcome why)
{
    log_debug("backend %s: connect to %s failed: %s", c->be->name,
              c->up.member->addr_text,
              why == BALANCE_TIMEOUT ? "timeout" : strerror(err));
    hc_drop_mconn(c, false);
    upstream_failed(&c->up, why, ev_now(c->ph->env.loop));
    hc_dispatch(c);
}

/* Opens a new connection to c->up.member. */
static void
hc_connect(struct http_conn *c)
{
    struct member *m = c->up.member;
    double now = ev_now(c->ph->env.loop);
    int fd;

    switch (upstream_connect(m, &fd)) {
    case UPSTREAM_NO_SOCKET:
        log_limited(&c->ph->socket_log, now, LOG_LEVEL_WARN,
                    "backend %s: socket: %s", c->be->name, strerror(errno));
        hc_error(c, 503, "out of sockets", BALANCE_ABORTED);
        return;
    case UPSTREAM_REFUSED:
        hc_set_phase(c, HC_CONNECT);
        c->connect_started = now;
        hc_connect_failed(c, errno, BALANCE_CONNECT_ERROR);
        return;
    case UPSTREAM_CONNECTED:
    case UPSTREAM_CONNECTING:
        break;
    }
    c->mc = upstream_conn_new(c->ph->env.up, m, fd, mconn_cb, c);
    if (c->mc == NULL) {
        net_close(fd, false);
        hc_error(c, 503, "out of memory", BALANCE_ABORTED);
        return;
    }
    /* Connected at once or not, writable tells: one path for both. */
    hc_set_phase(c, HC_CONNECT);
    c->connect_started = now;
}

/* The resolution the request waited on completed: pick again. */
static void
hc_woken(void *arg)
{
    struct http_conn *c = arg;

    if (c->phase != HC_RESOLVING)
        return;
    hc_dispatch(c);
    if (c->phase != HC_CLOSED)
        hc_run(c);
}

/* Picks a member for the request and gets a connection to it. */
static void
hc_dispatch(struct http_conn *c)
{
    struct balance_ctx key = {0};
    struct upstream_conn *mc;
    struct member *m;

    if (c->be->cfg.balance == BALANCE_HASH) {
        if (c->be->cfg.hash_key == HASH_KEY_CLIENT_IP) {
            balance_key_client_ip(&key, &c->peer);
        } else if (c->rq.has_key) {
            key.key = &c->rq.key;
            key.keylen = sizeof(c->rq.key);
        }
    }
    switch (upstream_pick(&c->up, &key, ev_now(c->ph->env.loop))) {
    case UPSTREAM_PICKED:
        break;
    case UPSTREAM_WAIT:
        /* hc_arm sets the timer from c->up.retry_at. */
        hc_set_phase(c, HC_RESOLVING);
        return;
    case UPSTREAM_NONE:
        if (c->up.attempts == 0)
            hc_error(c, 503, "no member up", BALANCE_ABORTED);
        else
            hc_error(c, 502, "no member reachable", BALANCE_ABORTED);
        return;
    case UPSTREAM_EXHAUSTED:
        hc_error(c, 502, "retries exhausted", BALANCE_CONNECT_ERROR);
        return;
    }
    m = c->up.member;
    memcpy(c->log.member, m->addr_text, sizeof(c->log.member));
    log_debug("frontend %s: %s: %s %s to %s", c->fe->name, c->peer_text,
              c->log.method, c->log.target, m->addr_text);
    mc = upstream_idle_take(c->ph->env.up, m, mconn_cb, c);
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
response_rewrite(struct http_conn *c, const char *buf, bool tunnel)
{
    const struct http_msg *r = &c->resp;
    struct http_buf *o = &c->cout;
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
    } else if (r->status >= 200 && !c->rq.keep_client) {
        hbuf_puts(o, "Connection: close\r\n");
    } else if (r->status >= 200 && c->req.minor == 0) {
        hbuf_puts(o, "Connection: keep-alive\r\n");
    }
    hbuf_puts(o, "\r\n");
    return 0;
}

/* A complete response head is at sin.start. */
static void
response_ready(struct http_conn *c)
{
    const char *buf = c->sin.data + c->sin.start;
    struct http_msg *r = &c->resp;
    struct member *m = c->up.member;
    unsigned st = r->status;
    bool tunnel = r->body == HTTP_BODY_TUNNEL;

    if (st < 200 && st != 101) {
        /* Interim (100 Continue...): relay to HTTP/1.1 clients only. */
        if (c->req.minor == 1 && response_rewrite(c, buf, false) != 0) {
            hc_close(c, "out of memory", true);
            return;
        }
        c->rq.head_sent = c->rq.head_sent || c->req.minor == 1;
        c->sin.start += r->head_len;
        http_msg_reset(r);
        return;
    }
    if (tunnel && st == 101 && !(c->req.flags & HTTP_F_UPGRADE)) {
        hc_server_failed(c, "101 without an upgrade request",
                         BALANCE_SERVER_ERROR);
        return;
    }
    c->rq.t_resp = ev_now(c->ph->env.loop);
    if (c->rq.t_sent > 0)
        proxy_http_observe(m, c->rq.t_resp - c->rq.t_sent);
    PLANE_ADD(m->stats.responses[st / 100 < 6 ? st / 100 : 5], 1);
    c->rq.status = (uint16_t)st;
    c->rq.resp_final = true;
    /* The request head can no longer be retried: give its buffer back. */
    if (http_conn_buf_len(&c->sout) == 0)
        hbuf_put(&c->sout);
    c->rq.keep_member = r->keep_alive;
    c->rq.keep_client = c->req.keep_alive && !c->ph->stopping && !tunnel &&
                        r->body != HTTP_BODY_CLOSE &&
                        http_conn_flow_complete(&c->rq.rqf);
    if (response_rewrite(c, buf, tunnel) != 0) {
        hc_close(c, "out of memory", true);
        return;
    }
    c->rq.head_sent = true;
    c->sin.start += r->head_len;
    http_conn_flow_init(&c->rq.rsf, (enum http_body)r->body, r->content_length);
    if (tunnel) {
        /* From now on both directions are opaque bytes. */
        hc_set_phase(c, HC_TUNNEL);
        http_conn_flow_init(&c->rq.rqf, HTTP_BODY_TUNNEL, 0);
        c->rq.keep_member = c->rq.keep_client = false;
    }
}

static void
parse_response(struct http_conn *c)
{
    while (!c->rq.resp_final && c->phase == HC_FORWARD &&
           http_conn_buf_len(&c->sin) > 0) {
        switch (http_parse(&c->resp, c->sin.data + c->sin.start,
                           http_conn_buf_len(&c->sin))) {
        case HTTP_PARSE_AGAIN:
            return;
        case HTTP_PARSE_ERROR:
            log_info("backend %s: %s sent a bad response: %s", c->be->name,
                     c->up.member->addr_text, c->resp.error_reason);
            c->rq.retried = true; /* a bad response is not a closed conn */
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
step_handshake(struct http_conn *c)
{
    int r = tls_io_handshake(&c->cio);

    if (r == 1) {
        hc_set_phase(c, HC_HEAD);
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
client_read_blocked(struct http_conn *c, ssize_t n)
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
step_head(struct http_conn *c)
{
    struct http_buf *in = &c->cin;
    size_t max = c->fe->cfg.max_header_size;
    ssize_t n;

    if (in->data != NULL && in->end > c->rq.parsed) {
        c->rq.parsed = in->end;
        switch (http_parse(&c->req, in->data, in->end)) {
        case HTTP_PARSE_DONE:
            request_ready(c);
            return true;
        case HTTP_PARSE_ERROR:
            c->t_req = c->req_started ? c->t_req : ev_now(c->ph->env.loop);
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
            c->t_req = ev_now(c->ph->env.loop);
        }
        in->end += (size_t)n;
        c->c_last = ev_now(c->ph->env.loop);
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
client_read(struct http_conn *c)
{
    struct http_buf *in = &c->cin;
    ssize_t n;

    if (!c->c_readable || !http_conn_client_wants_input(c))
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
        c->c_last = ev_now(c->ph->env.loop);
        c->c_rd_wants_write = false;
        if (http_conn_flow_scan(&c->rq.rqf, in) != 0) {
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
server_write(struct http_conn *c)
{
    struct upstream_conn *mc = c->mc;
    struct http_buf *in = &c->cin;
    size_t a, b, k;
    struct iovec iov[2];
    ssize_t n;

    if (mc == NULL || !mc->writable || c->s_shut)
        return false;
    if (http_conn_flow_scan(&c->rq.rqf, in) != 0) {
        hc_error(c, 400, "bad chunked request body", BALANCE_ABORTED);
        return true;
    }
    a = http_conn_buf_len(&c->sout);
    b = c->rq.rqf.ok;
    if (a + b == 0) {
        if (c->phase == HC_TUNNEL && c->c_eof && http_conn_buf_len(in) == 0) {
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
    c->s_last = ev_now(c->ph->env.loop);
    c->rq.req_sent += (uint64_t)n;
    PLANE_ADD(c->up.member->stats.bytes_out, (uint64_t)n);
    k = (size_t)n < a ? (size_t)n : a;
    c->sout.start += k;
    if (k == a && a > 0 && c->rq.t_sent == 0)
        c->rq.t_sent = c->s_last;
    k = (size_t)n - k;
    in->start += k;
    c->rq.rqf.ok -= k;
    c->rq.rqf.bytes += k;
    return true;
}

static bool
server_read(struct http_conn *c)
{
    struct upstream_conn *mc = c->mc;
    struct http_buf *in = &c->sin;
    ssize_t n;

    if (mc == NULL || !mc->readable || !http_conn_server_wants_input(c))
        return false;
    if (in->data == NULL && hbuf_reserve(in, BUF_SIZE) != 0) {
        hc_close(c, "out of memory", true);
        return true;
    }
    if (http_conn_buf_len(in) == 0) {
        in->start = in->end = 0;
    } else if (in->end == in->cap) {
        if (in->start == 0) {
            /* A response head larger than a buffer. */
            c->rq.retried = true;
            hc_server_failed(c, "response head too large",
                             BALANCE_SERVER_ERROR);
            return true;
        }
        memmove(in->data, in->data + in->start, http_conn_buf_len(in));
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
        c->s_last = ev_now(c->ph->env.loop);
        c->rq.resp_bytes += (uint64_t)n;
        PLANE_ADD(c->up.member->stats.bytes_in, (uint64_t)n);
        if (!c->rq.resp_final)
            parse_response(c);
        else if (http_conn_flow_scan(&c->rq.rsf, in) != 0)
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
    if (!c->rq.resp_final) {
        hc_server_failed(c,
                         n == 0 ? "server closed before responding"
                                : "server reset before responding",
                         BALANCE_SERVER_ERROR);
        return true;
    }
    if (c->rq.rsf.body == HTTP_BODY_CLOSE && n == 0) {
        c->rq.rsf.done = true;
        c->rq.keep_member = false;
        return true;
    }
    hc_close(c, "server closed mid-response", true);
    return true;
}

static bool
client_write(struct http_conn *c)
{
    struct http_buf *in = &c->sin;
    size_t a, b, k;
    ssize_t n;

    if (!c->c_writable || c->c_shut)
        return false;
    if (c->rq.resp_final && http_conn_flow_scan(&c->rq.rsf, in) != 0) {
        hc_close(c, "bad chunked response body", true);
        return true;
    }
    a = http_conn_buf_len(&c->cout);
    b = c->rq.resp_final ? c->rq.rsf.ok : 0;
    if (a + b == 0) {
        if (c->phase == HC_TUNNEL && c->s_eof && http_conn_buf_len(in) == 0) {
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
    c->c_last = ev_now(c->ph->env.loop);
    c->rq.bytes_out += (uint64_t)n;
    k = (size_t)n < a ? (size_t)n : a;
    c->cout.start += k;
    if (k == a && a > 0)
        c->cout.start = c->cout.end = 0;
    k = (size_t)n - k;
    in->start += k;
    c->rq.rsf.ok -= k;
    c->rq.rsf.bytes += k;
    return true;
}

static bool
step_forward(struct http_conn *c)
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
    if (c->rq.resp_final && http_conn_flow_complete(&c->rq.rsf) &&
        http_conn_buf_len(&c->cout) == 0) {
        if (!http_conn_flow_complete(&c->rq.rqf) ||
            http_conn_buf_len(&c->sout) > 0) {
            /* Answered before the request ended: neither side reusable. */
            c->rq.keep_client = c->rq.keep_member = false;
            c->rq.stop_input = true;
        }
        hc_request_end(c);
        return true;
    }
    return p;
}

static bool
step_linger(struct http_conn *c)
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
hc_run(struct http_conn *c)
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
        ev_feed_event(c->ph->env.loop, &c->cw, 0);
}

/* ---------------------------------------------------------------------- */
/* Callbacks                                                               */

static void
client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct http_conn *c = w->data;

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
    struct upstream_conn *mc = w->data;
    struct http_conn *c = mc->owner;

    (void)loop;
    if (c->phase == HC_CONNECT) {
        int err = upstream_connect_error(mc->fd);
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
    struct http_conn *c = w->data;
    enum http_conn_deadline kind;
    double d = http_conn_deadline(c, &kind);

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
        if (c->rq.head_sent) {
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

static void
proxy_http_accept(void *proxy, struct frontend *fe, int fd,
                  const struct sockaddr *peer, socklen_t peerlen)
{
    struct proxy_http *ph = proxy;
    struct http_conn *c;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    if (tls_io_init(&c->cio, fe->tls, fd) != 0) {
        free(c);
        goto fail;
    }
    c->ph = ph;
    c->fe = fe;
    frontend_ref(fe);
    c->be = fe->backend;
    backend_ref(c->be);
    upstream_req_init(&c->up, c->be, ph->env.up, hc_woken, c);
    c->phase = fe->tls != NULL ? HC_HANDSHAKE : HC_HEAD;
    c->t_accept = c->t_req = c->c_last = c->idle_since = ev_now(ph->env.loop);
    memcpy(&c->peer, peer, peerlen);
    net_addr_format(peer, c->peer_text, sizeof(c->peer_text));
    net_addr_ip(peer, c->peer_ip, sizeof(c->peer_ip));
    http_request_init(&c->req, fe->cfg.max_header_size);
    ev_io_init(&c->cw, client_cb, fd, EV_READ);
    c->cw.data = c;
    ev_init(&c->timer, hc_timer_cb);
    c->timer.data = c;
    c->c_writable = true;
    net_nodelay(fd);

    list_add(&ph->conns, &c->link);
    PLANE_ADD(fe->stats.connections_total, 1);
    PLANE_ADD(fe->stats.active, 1);
    hc_run(c);
    return;
fail:
    net_close(fd, false);
    ph->env.conn_closed(ph->env.arg);
}

static void *
proxy_http_create(const struct proxy_env *env)
{
    struct proxy_http *ph = calloc(1, sizeof(*ph));

    if (ph == NULL)
        return NULL;
    ph->env = *env;
    list_init(&ph->conns);
    list_init(&ph->closed);
    return ph;
}

static void
proxy_http_stop(void *proxy)
{
    struct proxy_http *ph = proxy;
    struct list *l, *tmp;

    ph->stopping = true;
    ph->env.up->closing = true;
    list_for_each_safe (l, tmp, &ph->conns) {
        struct http_conn *c = container_of(l, struct http_conn, link);
        if ((c->phase == HC_HEAD && !c->req_started) ||
            c->phase == HC_HANDSHAKE)
            hc_close(c, "shutdown", false);
    }
    upstream_idle_close_all(ph->env.up);
}

static void
proxy_http_reap(void *proxy)
{
    struct proxy_http *ph = proxy;
    struct list *l;

    while ((l = list_first(&ph->closed)) != NULL) {
        struct http_conn *c = container_of(l, struct http_conn, link);
        list_del(l);
        backend_unref(c->be);
        frontend_unref(c->fe);
        free(c);
    }
}

static void
proxy_http_close_all(void *proxy)
{
    struct proxy_http *ph = proxy;
    struct list *l;

    while ((l = list_first(&ph->conns)) != NULL)
        hc_close(container_of(l, struct http_conn, link), "shutdown", false);
    upstream_idle_close_all(ph->env.up);
    proxy_http_reap(ph);
}

static void
proxy_http_destroy(void *proxy)
{
    struct proxy_http *ph = proxy;

    proxy_http_close_all(ph);
    free(ph);
}

const struct proxy_ops proxy_http_ops = {
    .name = "http",
    .create = proxy_http_create,
    .accept = proxy_http_accept,
    .stop = proxy_http_stop,
    .close_all = proxy_http_close_all,
    .reap = proxy_http_reap,
    .destroy = proxy_http_destroy,
};
