/*
 * stats_server: the small HTTP/1.1 server behind the [stats] listener.
 * See stats_server.h for the request flow and the resource bounds.
 */
#include "stats_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "http_parser.h"
#include "log.h"
#include "net.h"

#define STATS_DEFAULT_TIMEOUT 10.0
#define STATS_DEFAULT_MAX_CONNS 64
/* Draining after the answer only protects it from an RST; keep it short. */
#define STATS_LINGER_MAX 2.0
/* Retry pause after accept ran out of descriptors or memory. */
#define STATS_ACCEPT_RETRY 1.0
/* Accepts per wakeup, so a flood cannot starve the rest of the loop. */
#define STATS_ACCEPT_BATCH 16
/* Empty body buffers kept for the next scrapes. */
#define STATS_SPARE_BODIES 4
#define STATS_TOKEN_MD 32 /* SHA-256 */

enum conn_state {
    CONN_READ,   /* reading the request head */
    CONN_WRITE,  /* sending the answer */
    CONN_LINGER, /* answer sent, draining input */
};

struct stats_conn {
    struct stats_server *srv;         /* owner */
    struct stats_conn *prev;          /* in srv->conns */
    struct stats_conn *next;          /* in srv->conns */
    int fd;                           /* client socket */
    enum conn_state state;            /* phase */
    ev_io io;                         /* read or write readiness */
    ev_timer timer;                   /* deadline of the phase */
    struct http_msg msg;              /* request head, parsed as it comes */
    size_t head_len;                  /* bytes in head */
    size_t hdr_len;                   /* bytes in hdr */
    size_t body_send;                 /* body bytes to send (0 for HEAD) */
    size_t sent;                      /* bytes of hdr then body sent */
    struct strbuf body;               /* answer body */
    char hdr[512];                    /* answer status line and headers */
    char head[STATS_SERVER_HEAD_MAX]; /* request head; drain space later */
};

struct stats_route {
    char *path;                /* exact path, owned */
    stats_server_render_fn fn; /* renders the body */
    void *user;                /* passed to fn */
};

struct stats_server {
    struct ev_loop *loop;                   /* loop everything runs on */
    int fd;                                 /* listening socket */
    bool detached;                          /* fd handed over: do not close */
    ev_io accept_io;                        /* listening socket readable */
    ev_timer accept_retry;                  /* resume after EMFILE and kin */
    struct log_limit accept_log;            /* accept failures */
    bool has_token;                         /* authorization required */
    unsigned char token_md[STATS_TOKEN_MD]; /* SHA-256 of the token */
    double timeout;                         /* per-phase deadline, seconds */
    unsigned max_conns;                     /* connection limit */
    unsigned nconns;                        /* connections open */
    struct stats_conn *conns;               /* open connections */
    struct stats_route routes[STATS_SERVER_MAX_ROUTES]; /* registered */
    size_t nroutes;                                     /* routes in use */
    struct strbuf spare[STATS_SPARE_BODIES]; /* reusable body buffers */
    size_t nspare;                           /* spare buffers available */
};

/* ---- request (pure) ---- */

int
stats_server_request(const struct http_msg *m, const char *buf,
                     struct stats_request *req)
{
    int auth;

    memset(req, 0, sizeof(*req));
    if (m->method == HTTP_M_GET)
        req->method = STATS_METHOD_GET;
    else if (m->method == HTTP_M_HEAD)
        req->method = STATS_METHOD_HEAD;
    else
        req->method = STATS_METHOD_OTHER;
    /* Authority- and asterisk-form come only with CONNECT and OPTIONS,
     * which get 405 before any route is looked up. */
    req->path = "";
    if (m->form == HTTP_TARGET_ORIGIN || m->form == HTTP_TARGET_ABSOLUTE) {
        const char *p = http_span_ptr(buf, m->path);
        const char *q = memchr(p, '?', m->path.len);

        req->path = p;
        req->path_len = q != NULL ? (size_t)(q - p) : m->path.len;
        /* A server must accept absolute-form (RFC 9112 3.2.2); without a
         * path it means "/" (RFC 9110 4.2.3). */
        if (req->path_len == 0) {
            req->path = "/";
            req->path_len = 1;
        }
    }
    auth = http_msg_find(m, buf, "authorization", 13, 0);
    if (auth >= 0) {
        /* Two credentials: refuse rather than guess which one counts. */
        if (http_msg_find(m, buf, "authorization", 13, auth + 1) >= 0)
            return -1;
        req->auth = http_span_ptr(buf, m->headers[auth].value);
        req->auth_len = m->headers[auth].value.len;
    }
    return 0;
}

/* ---- token ---- */

static int
token_digest(const char *s, size_t n, unsigned char md[STATS_TOKEN_MD])
{
    unsigned int mdlen = 0;

    if (EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != STATS_TOKEN_MD)
        return -1;
    return 0;
}

/*
 * Compares digests, not the strings: the time taken depends only on the
 * length of what the client sent, never on the token's length or content.
 */
static bool
auth_ok(const struct stats_server *srv, const struct stats_request *req)
{
    unsigned char md[STATS_TOKEN_MD];
    const char *p;
    size_t n;

    if (!srv->has_token)
        return true;
    if (req->auth == NULL || req->auth_len < 7 ||
        strncasecmp(req->auth, "Bearer ", 7) != 0)
        return false;
    p = req->auth + 7;
    n = req->auth_len - 7;
    while (n > 0 && *p == ' ') {
        p++;
        n--;
    }
    if (n == 0 || token_digest(p, n, md) != 0)
        return false;
    return CRYPTO_memcmp(md, srv->token_md, STATS_TOKEN_MD) == 0;
}

int
stats_server_set_token(struct stats_server *srv, const char *token)
{
    unsigned char md[STATS_TOKEN_MD];

    if (token == NULL || token[0] == '\0') {
        srv->has_token = false;
        return 0;
    }
    if (token_digest(token, strlen(token), md) != 0)
        return -1;
    memcpy(srv->token_md, md, sizeof(md));
    srv->has_token = true;
    return 0;
}

/* ---- accepting ---- */

/* Accept runs unless detached, at the limit, or waiting out EMFILE. */
static void
accept_update(struct stats_server *srv)
{
    bool want = !srv->detached && srv->nconns < srv->max_conns &&
                !ev_is_active(&srv->accept_retry);

    if (want && !ev_is_active(&srv->accept_io))
        ev_io_start(srv->loop, &srv->accept_io);
    else if (!want && ev_is_active(&srv->accept_io))
        ev_io_stop(srv->loop, &srv->accept_io);
}

static void
conn_close(struct stats_conn *c)
{
    struct stats_server *srv = c->srv;

    ev_io_stop(srv->loop, &c->io);
    ev_timer_stop(srv->loop, &c->timer);
    close(c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (srv->nspare < STATS_SPARE_BODIES) {
        strbuf_reset(&c->body);
        srv->spare[srv->nspare++] = c->body;
    } else {
        strbuf_free(&c->body);
    }
    free(c);
    srv->nconns--;
    accept_update(srv);
}

static void
conn_phase(struct stats_conn *c, enum conn_state state, int events,
           double deadline)
{
    struct ev_loop *loop = c->srv->loop;

    c->state = state;
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(loop, &c->io);
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, deadline, 0.);
    ev_timer_start(loop, &c->timer);
}

static void
conn_linger(struct stats_conn *c)
{
    double t = c->srv->timeout;

    /* Closing with unread input would send an RST that can destroy the
     * answer in flight; half-close and drain until the client closes. */
    shutdown(c->fd, SHUT_WR);
    conn_phase(c, CONN_LINGER, EV_READ,
               t < STATS_LINGER_MAX ? t : STATS_LINGER_MAX);
}

static void
conn_write(struct stats_conn *c)
{
    size_t total = c->hdr_len + c->body_send;

    while (c->sent < total) {
        struct iovec iov[2];
        struct msghdr msg;
        int niov = 0;
        ssize_t n;

        if (c->sent < c->hdr_len) {
            iov[niov].iov_base = c->hdr + c->sent;
            iov[niov++].iov_len = c->hdr_len - c->sent;
            if (c->body_send > 0) {
                iov[niov].iov_base = c->body.data;
                iov[niov++].iov_len = c->body_send;
            }
        } else {
            iov[niov].iov_base = c->body.data + (c->sent - c->hdr_len);
            iov[niov++].iov_len = total - c->sent;
        }
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)niov;
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (c->state != CONN_WRITE)
                    conn_phase(c, CONN_WRITE, EV_WRITE, c->srv->timeout);
                return;
            }
            conn_close(c);
            return;
        }
        c->sent += (size_t)n;
    }
    conn_linger(c);
}

static void
conn_respond(struct stats_conn *c, unsigned status, const char *ctype,
             bool head)
{
    const char *extra = "";
    int n;

    if (status != 200) {
        strbuf_reset(&c->body);
        strbuf_printf(&c->body, "%u %s\n", status, http_status_text(status));
        ctype = STATS_CONTENT_TYPE_TEXT;
    }
    if (strbuf_failed(&c->body)) {
        /* Not even the error text fits: answer without a body. */
        strbuf_free(&c->body);
        status = 500;
        ctype = STATS_CONTENT_TYPE_TEXT;
    }
    if (status == 401)
        extra = "WWW-Authenticate: Bearer realm=\"ferry\"\r\n";
    else if (status == 405)
        extra = "Allow: GET, HEAD\r\n";
    n = snprintf(c->hdr, sizeof(c->hdr),
                 "HTTP/1.1 %u %s\r\n"
                 "Content-Type: %s\r\n"
                 "Content-Length: %zu\r\n"
                 "Cache-Control: no-store\r\n"
                 "Connection: close\r\n"
                 "%s\r\n",
                 status, http_status_text(status), ctype, c->body.len, extra);
    if (n < 0 || (size_t)n >= sizeof(c->hdr)) {
        /* Only a content type longer than any real one gets here. */
        log_error("stats: answer header too long");
        conn_close(c);
        return;
    }
    c->hdr_len = (size_t)n;
    c->body_send = head ? 0 : c->body.len;
    c->sent = 0;
    conn_write(c);
}

static const struct stats_route *
route_find(const struct stats_server *srv, const char *path, size_t n)
{
    size_t i;

    for (i = 0; i < srv->nroutes; i++) {
        const struct stats_route *r = &srv->routes[i];

        if (strlen(r->path) == n && memcmp(r->path, path, n) == 0)
            return r;
    }
    return NULL;
}

static void
conn_dispatch(struct stats_conn *c)
{
    struct stats_server *srv = c->srv;
    const struct stats_route *r;
    struct stats_request req;
    const char *ctype = NULL;
    bool head;

    if (stats_server_request(&c->msg, c->head, &req) != 0) {
        conn_respond(c, 400, NULL, false);
        return;
    }
    head = req.method == STATS_METHOD_HEAD;
    if (!auth_ok(srv, &req)) {
        conn_respond(c, 401, NULL, head);
        return;
    }
    if (req.method == STATS_METHOD_OTHER) {
        conn_respond(c, 405, NULL, false);
        return;
    }
    r = route_find(srv, req.path, req.path_len);
    if (r == NULL) {
        conn_respond(c, 404, NULL, head);
        return;
    }
    if (srv->nspare > 0 && c->body.data == NULL)
        c->body = srv->spare[--srv->nspare];
    strbuf_reset(&c->body);
    if (r->fn(&c->body, &ctype, r->user) != 0 || strbuf_failed(&c->body)) {
        conn_respond(c, 500, NULL, head);
        return;
    }
    conn_respond(c, 200, ctype ? ctype : STATS_CONTENT_TYPE_TEXT, head);
}

static void
conn_read(struct stats_conn *c)
{
    for (;;) {
        /* Never full here: http_parse answers 431 (ERROR) once head_len
         * reaches the buffer size, so there is always room. */
        ssize_t n = recv(c->fd, c->head + c->head_len,
                         sizeof(c->head) - c->head_len, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        /* The parser resumes where it stopped: no byte is scanned
         * twice however the head is split into reads. */
        c->head_len += (size_t)n;
        switch (http_parse(&c->msg, c->head, c->head_len)) {
        case HTTP_PARSE_DONE:
            conn_dispatch(c);
            return;
        case HTTP_PARSE_ERROR:
            log_debug("stats: request refused (%u): %s", (unsigned)c->msg.error,
                      c->msg.error_reason);
            conn_respond(c, c->msg.error, NULL, false);
            return;
        case HTTP_PARSE_AGAIN:
            break;
        }
    }
}

static void
conn_drain(struct stats_conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->head, sizeof(c->head), 0);

        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(c);
        return;
    }
}

static void
conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct stats_conn *c = w->data;

    switch (c->state) {
    case CONN_READ:
        conn_read(c);
        break;
    case CONN_WRITE:
        conn_write(c);
        break;
    case CONN_LINGER:
        conn_drain(c);
        break;
    }
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    conn_close(w->data);
}

static void
accept_one(struct stats_server *srv, int fd)
{
    struct stats_conn *c = malloc(sizeof(*c));

    if (c == NULL) {
        log_warn("stats: out of memory, dropping a connection");
        close(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    c->state = CONN_READ;
    http_request_init(&c->msg, sizeof(c->head));
    c->head_len = 0;
    c->hdr_len = 0;
    c->body_send = 0;
    c->sent = 0;
    strbuf_init(&c->body);
    ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
    c->io.data = c;
    ev_timer_init(&c->timer, conn_timer_cb, srv->timeout, 0.);
    c->timer.data = c;
    ev_io_start(srv->loop, &c->io);
    ev_timer_start(srv->loop, &c->timer);
    c->prev = NULL;
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct stats_server *srv = w->data;
    int i;

    for (i = 0; i < STATS_ACCEPT_BATCH && srv->nconns < srv->max_conns; i++) {
        int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            accept_one(srv, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        switch (net_accept_error(errno)) {
        case NET_ACCEPT_EXHAUSTED:
            log_limited(&srv->accept_log, ev_now(loop), LOG_LEVEL_WARN,
                        "stats: accept: %s; pausing", strerror(errno));
            ev_timer_set(&srv->accept_retry, STATS_ACCEPT_RETRY, 0.);
            ev_timer_start(loop, &srv->accept_retry);
            break;
        case NET_ACCEPT_FAILED:
            log_limited(&srv->accept_log, ev_now(loop), LOG_LEVEL_WARN,
                        "stats: accept: %s", strerror(errno));
            break;
        case NET_ACCEPT_DRAINED:
            break;
        }
        break;
    }
    accept_update(srv);
}

static void
accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    accept_update(w->data);
}

/* ---- lifetime ---- */

struct stats_server *
stats_server_create(struct ev_loop *loop, const struct sockaddr *addr,
                    socklen_t len, const char *token, char *err, size_t errlen)
{
    char text[INET6_ADDRSTRLEN + 16], lerr[256];
    int fd;

    net_addr_format(addr, text, sizeof(text));
    fd = net_listen(addr, len, text, 128, false, lerr, sizeof(lerr));
    if (fd < 0) {
        snprintf(err, errlen, "stats listener: %s", lerr);
        return NULL;
    }
    return stats_server_create_from_fd(loop, fd, token, err, errlen);
}

struct stats_server *
stats_server_create_from_fd(struct ev_loop *loop, int fd, const char *token,
                            char *err, size_t errlen)
{
    struct stats_server *srv = NULL;
    int listening = 0, flags;
    socklen_t optlen = sizeof(listening);

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0 ||
        !listening) {
        snprintf(err, errlen, "stats listener: fd %d is not listening", fd);
        goto err;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "stats listener: fcntl: %s", strerror(errno));
        goto err;
    }
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        snprintf(err, errlen, "stats listener: out of memory");
        goto err;
    }
    srv->loop = loop;
    srv->fd = fd;
    srv->timeout = STATS_DEFAULT_TIMEOUT;
    srv->max_conns = STATS_DEFAULT_MAX_CONNS;
    if (stats_server_set_token(srv, token) != 0) {
        snprintf(err, errlen, "stats listener: cannot hash the token");
        goto err;
    }
    ev_io_init(&srv->accept_io, accept_cb, fd, EV_READ);
    srv->accept_io.data = srv;
    ev_timer_init(&srv->accept_retry, accept_retry_cb, STATS_ACCEPT_RETRY, 0.);
    srv->accept_retry.data = srv;
    accept_update(srv);
    return srv;
err:
    free(srv);
    close(fd);
    return NULL;
}

void
stats_server_destroy(struct stats_server *srv)
{
    size_t i;

    if (srv == NULL)
        return;
    while (srv->conns != NULL)
        conn_close(srv->conns);
    ev_io_stop(srv->loop, &srv->accept_io);
    ev_timer_stop(srv->loop, &srv->accept_retry);
    if (!srv->detached)
        close(srv->fd);
    for (i = 0; i < srv->nroutes; i++)
        free(srv->routes[i].path);
    for (i = 0; i < srv->nspare; i++)
        strbuf_free(&srv->spare[i]);
    free(srv);
}

int
stats_server_fd(const struct stats_server *srv)
{
    return srv->fd;
}

int
stats_server_detach_fd(struct stats_server *srv)
{
    srv->detached = true;
    accept_update(srv);
    return srv->fd;
}

int
stats_server_route(struct stats_server *srv, const char *path,
                   stats_server_render_fn fn, void *user)
{
    struct stats_route *r;
    char *copy;
    size_t i;

    for (i = 0; i < srv->nroutes; i++) {
        r = &srv->routes[i];
        if (strcmp(r->path, path) == 0) {
            r->fn = fn;
            r->user = user;
            return 0;
        }
    }
    if (srv->nroutes == STATS_SERVER_MAX_ROUTES)
        return -1;
    copy = strdup(path);
    if (copy == NULL)
        return -1;
    r = &srv->routes[srv->nroutes++];
    r->path = copy;
    r->fn = fn;
    r->user = user;
    return 0;
}

void
stats_server_set_timeout(struct stats_server *srv, double seconds)
{
    srv->timeout = seconds > 0 ? seconds : STATS_DEFAULT_TIMEOUT;
}

void
stats_server_set_max_conns(struct stats_server *srv, unsigned max)
{
    srv->max_conns = max > 0 ? max : 1;
    accept_update(srv);
}

unsigned
stats_server_conns(const struct stats_server *srv)
{
    return srv->nconns;
}
