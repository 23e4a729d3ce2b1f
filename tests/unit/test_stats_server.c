/*
 * Unit tests for stats_server: request heads as the server reads them
 * (http_parser, then stats_server_request), and the server on a real libev
 * loop on 127.0.0.1 port 0 driven by non-blocking clients on the same
 * loop. Every wait is bounded by a guard timer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_parser.h"
#include "stats_server.h"

/* The start of a well-formed GET /metrics (HTTP/1.1 needs Host). */
#define GET_METRICS "GET /metrics HTTP/1.1\r\nHost: x\r\n"
/* Longest any test waits for something that should happen. */
#define GUARD 5.0
#define BIG_BODY (16u << 20)

/* ---- request heads: http_parser, then what the server takes ---- */

/*
 * Parses a head as the server does: http_parser with the server's limit,
 * then stats_server_request. -1 if either refuses it or it is incomplete.
 */
static int
parse(const char *head, struct stats_request *req)
{
    static struct http_msg m;

    http_request_init(&m, STATS_SERVER_HEAD_MAX);
    if (http_parse(&m, head, strlen(head)) != HTTP_PARSE_DONE)
        return -1;
    return stats_server_request(&m, head, req);
}

static void
test_parse_good(void **state)
{
    struct stats_request req;

    assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &req),
                     0);
    assert_int_equal(req.method, STATS_METHOD_GET);
    assert_int_equal(req.path_len, 8);
    assert_memory_equal(req.path, "/metrics", 8);
    assert_null(req.auth);

    /* HTTP/1.0 needs no Host. */
    assert_int_equal(parse("HEAD /stats?x=1 HTTP/1.0\r\n"
                           "authorization:   Bearer abc \t\r\n\r\n",
                           &req),
                     0);
    assert_int_equal(req.method, STATS_METHOD_HEAD);
    assert_int_equal(req.path_len, 6);
    assert_memory_equal(req.path, "/stats", 6);
    assert_int_equal(req.auth_len, 10);
    assert_memory_equal(req.auth, "Bearer abc", 10);

    assert_int_equal(parse("DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", &req), 0);
    assert_int_equal(req.method, STATS_METHOD_OTHER);
    /* Method names are case-sensitive. */
    assert_int_equal(parse("get / HTTP/1.1\r\nHost: x\r\n\r\n", &req), 0);
    assert_int_equal(req.method, STATS_METHOD_OTHER);
    /* Empty header value is fine; the query is cut off the path. */
    assert_int_equal(parse("GET /?f HTTP/1.1\r\nHost: x\r\nX-E:\r\n\r\n", &req),
                     0);
    assert_int_equal(req.path_len, 1);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\n"
                           "Authorization:\r\n\r\n",
                           &req),
                     0);
    assert_non_null(req.auth);
    assert_int_equal(req.auth_len, 0);

    /* Absolute-form counts by its path (RFC 9112 3.2.2), "/" if none. */
    assert_int_equal(parse("GET http://x:1/metrics?a HTTP/1.1\r\nHost: y\r\n"
                           "\r\n",
                           &req),
                     0);
    assert_int_equal(req.method, STATS_METHOD_GET);
    assert_int_equal(req.path_len, 8);
    assert_memory_equal(req.path, "/metrics", 8);
    assert_int_equal(parse("GET http://x?a HTTP/1.1\r\nHost: x\r\n\r\n", &req),
                     0);
    assert_int_equal(req.path_len, 1);
    assert_memory_equal(req.path, "/", 1);
    /* The other forms come with methods that get 405. */
    assert_int_equal(parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", &req), 0);
    assert_int_equal(req.method, STATS_METHOD_OTHER);
    assert_int_equal(req.path_len, 0);
    assert_int_equal(parse("CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n", &req), 0);
    assert_int_equal(req.method, STATS_METHOD_OTHER);
    assert_int_equal(req.path_len, 0);
    /* Empty lines before the request line are skipped (RFC 9112 2.2). */
    assert_int_equal(parse("\r\nGET /stats HTTP/1.0\r\n\r\n", &req), 0);
    assert_int_equal(req.path_len, 6);
}

static void
test_parse_bad(void **state)
{
    static const char *const bad[] = {
        "GET /metrics\r\n\r\n",                         /* no version */
        "GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n",    /* double space */
        "GET metrics HTTP/1.1\r\nHost: x\r\n\r\n",      /* not origin-form */
        "GET http://x/ HTTP/1.1\r\n\r\n",               /* no Host */
        "GET / HTTP/2.0\r\nHost: x\r\n\r\n",            /* version */
        "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",           /* trailing space */
        "GET / HTTP/1.10\r\nHost: x\r\n\r\n",           /* version */
        " GET / HTTP/1.1\r\nHost: x\r\n\r\n",           /* leading space */
        "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",            /* bad method char */
        "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", /* header */
        "GET / HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n", /* space */
        "GET / HTTP/1.1\r\nHost: x\r\n: x\r\n\r\n",         /* empty name */
        "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n",  /* obs-fold */
        "GET / HTTP/1.1\r\nHost: x\r\nA: b\x01\r\n\r\n",    /* control char */
        "GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n",     /* bare CR */
        ("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\n"
         "Authorization: b\r\n\r\n"),    /* two auths */
        "GET / HTTP/1.1\r\nHost: x\r\n", /* incomplete */
        /* refused like the proxy refuses them (http_parser) */
        "GET /metrics HTTP/1.1\r\n\r\n",                /* 1.1 without Host */
        "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", /* two Hosts */
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",          /* bad Host */
        "HEAD /stats HTTP/1.0\nA: b\n\n",               /* bare LF */
        "GET /#f HTTP/1.1\r\nHost: x\r\n\r\n",          /* fragment */
        "GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",    /* non-ASCII target */
        "GET / HTTP/1.2\r\nHost: x\r\n\r\n",            /* version */
        "GET * HTTP/1.1\r\nHost: x\r\n\r\n", /* '*' without OPTIONS */
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
         "Transfer-Encoding: chunked\r\n\r\n"), /* CL and TE */
    };
    struct stats_request req;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &req) != -1)
            fail_msg("accepted: %s", bad[i]);
    }
}

/* Where the server takes the head to end: http_parser's head_len. */
static void
test_head_len(void **state)
{
    static struct http_msg m;

    http_request_init(&m, STATS_SERVER_HEAD_MAX);
    assert_int_equal(http_parse(&m, "GET / HTTP/1.1\r\n", 16),
                     HTTP_PARSE_AGAIN);
    http_request_init(&m, STATS_SERVER_HEAD_MAX);
    assert_int_equal(http_parse(&m, "GET / HTTP/1.0\r\n\r\nxx", 20),
                     HTTP_PARSE_DONE);
    assert_int_equal(m.head_len, 18);
    http_request_init(&m, STATS_SERVER_HEAD_MAX);
    assert_int_equal(http_parse(&m, "GET / HTTP/1.0\r\n\r", 17),
                     HTTP_PARSE_AGAIN);
    /* Bare LF line ends are refused (400), as by the proxy. */
    http_request_init(&m, STATS_SERVER_HEAD_MAX);
    assert_int_equal(http_parse(&m, "GET / HTTP/1.0\n\nxx", 18),
                     HTTP_PARSE_ERROR);
    assert_int_equal(m.error, 400);
}

/* ---- server fixture ---- */

struct fixture {
    struct ev_loop *loop;         /* the one loop */
    struct stats_server *srv;     /* server under test */
    struct sockaddr_storage addr; /* where it listens */
    socklen_t addrlen;            /* length of addr */
    int renders;                  /* render callbacks so far */
};

struct client {
    struct fixture *f; /* owner */
    int fd;            /* socket, -1 once closed */
    ev_io io;          /* readiness */
    char req[16384];   /* bytes to send */
    size_t req_len;    /* bytes in req */
    size_t req_off;    /* bytes sent */
    bool no_read;      /* never read (a dead reader) */
    char *resp;        /* bytes received */
    size_t resp_len;   /* bytes in resp */
    size_t resp_cap;   /* allocated */
    bool done;         /* EOF or error seen */
    int err;           /* errno of a failure, 0 if none */
};

static int
render_metrics(struct strbuf *body, const char **ctype, void *user)
{
    struct fixture *f = user;

    f->renders++;
    strbuf_puts(body, "m 1\n");
    *ctype = STATS_CONTENT_TYPE_PROM;
    return 0;
}

static int
render_big(struct strbuf *body, const char **ctype, void *user)
{
    size_t i;

    if (strbuf_reserve(body, BIG_BODY) != 0)
        return -1;
    for (i = 0; i < BIG_BODY; i++)
        body->data[i] = (char)('a' + i % 23);
    body->len = BIG_BODY;
    body->data[body->len] = '\0';
    return 0;
}

static int
render_fail(struct strbuf *body, const char **ctype, void *user)
{
    strbuf_puts(body, "partial");
    return -1;
}

static void
add_routes(struct fixture *f)
{
    assert_int_equal(stats_server_route(f->srv, "/metrics", render_metrics, f),
                     0);
    assert_int_equal(stats_server_route(f->srv, "/big", render_big, f), 0);
    assert_int_equal(stats_server_route(f->srv, "/fail", render_fail, f), 0);
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&f->addr;
    char err[256];

    assert_non_null(f);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a4->sin_port = 0;
    f->addrlen = sizeof(*a4);
    f->srv = stats_server_create(f->loop, (struct sockaddr *)a4, f->addrlen,
                                 NULL, err, sizeof(err));
    if (f->srv == NULL)
        fail_msg("%s", err);
    assert_int_equal(getsockname(stats_server_fd(f->srv),
                                 (struct sockaddr *)&f->addr, &f->addrlen),
                     0);
    assert_true(ntohs(a4->sin_port) != 0);
    add_routes(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    stats_server_destroy(f->srv);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static void
client_close(struct client *c)
{
    ev_io_stop(c->f->loop, &c->io);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->done = true;
}

static void
client_watch(struct client *c)
{
    int ev = 0;

    if (c->req_off < c->req_len)
        ev |= EV_WRITE;
    if (!c->no_read)
        ev |= EV_READ;
    ev_io_stop(c->f->loop, &c->io);
    if (ev != 0) {
        ev_io_set(&c->io, c->fd, ev);
        ev_io_start(c->f->loop, &c->io);
    }
}

static void
client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct client *c = w->data;

    if ((revents & EV_WRITE) && c->req_off < c->req_len) {
        ssize_t n = send(c->fd, c->req + c->req_off, c->req_len - c->req_off,
                         MSG_NOSIGNAL);

        if (n > 0) {
            c->req_off += (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            /* The server answered early and closed: stop sending. */
            c->req_off = c->req_len;
        }
    }
    if (revents & EV_READ) {
        for (;;) {
            ssize_t n;

            if (c->resp_cap - c->resp_len < 65536) {
                c->resp_cap = c->resp_cap * 2 + 65536;
                c->resp = realloc(c->resp, c->resp_cap);
                assert_non_null(c->resp);
            }
            n = recv(c->fd, c->resp + c->resp_len,
                     c->resp_cap - c->resp_len - 1, 0);
            if (n > 0) {
                c->resp_len += (size_t)n;
                c->resp[c->resp_len] = '\0';
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (n < 0)
                c->err = errno;
            client_close(c);
            return;
        }
    }
    client_watch(c);
}

static void
client_start(struct fixture *f, struct client *c, const char *req, size_t len)
{
    int r;

    memset(c, 0, sizeof(*c));
    c->f = f;
    assert_true(len <= sizeof(c->req));
    memcpy(c->req, req, len);
    c->req_len = len;
    c->fd = socket(f->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(c->fd >= 0);
    r = connect(c->fd, (struct sockaddr *)&f->addr, f->addrlen);
    assert_true(r == 0 || errno == EINPROGRESS);
    ev_io_init(&c->io, client_cb, c->fd, EV_WRITE);
    c->io.data = c;
    client_watch(c);
}

static void
client_send_more(struct client *c, const char *more)
{
    size_t n = strlen(more);

    assert_true(c->req_len + n <= sizeof(c->req));
    memcpy(c->req + c->req_len, more, n);
    c->req_len += n;
    client_watch(c);
}

static void
client_free(struct client *c)
{
    if (c->fd >= 0)
        client_close(c);
    free(c->resp);
    c->resp = NULL;
}

struct waiter {
    bool (*pred)(void *); /* condition to wait for */
    void *arg;            /* its argument */
    bool met;             /* it became true */
};

static void
check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    struct waiter *wt = w->data;

    if (wt->pred(wt->arg)) {
        wt->met = true;
        ev_break(loop, EVBREAK_ONE);
    }
}

static void
guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ONE);
}

/* Runs the loop until pred holds or `limit` seconds pass; true if it held. */
static bool
run_until(struct fixture *f, bool (*pred)(void *), void *arg, double limit)
{
    struct waiter wt = {pred, arg, false};
    ev_check check;
    ev_timer guard;

    if (pred(arg))
        return true;
    ev_check_init(&check, check_cb);
    check.data = &wt;
    ev_check_start(f->loop, &check);
    ev_timer_init(&guard, guard_cb, limit, 0.);
    ev_timer_start(f->loop, &guard);
    ev_now_update(f->loop);
    ev_run(f->loop, 0);
    ev_check_stop(f->loop, &check);
    ev_timer_stop(f->loop, &guard);
    return wt.met;
}

static bool
client_done(void *arg)
{
    return ((struct client *)arg)->done;
}

static bool
no_conns(void *arg)
{
    return stats_server_conns(arg) == 0;
}

/* Sends req on a new connection and waits for the server to close it. */
static void
roundtrip(struct fixture *f, struct client *c, const char *req)
{
    client_start(f, c, req, strlen(req));
    assert_true(run_until(f, client_done, c, GUARD));
}

static int
status_of(const struct client *c)
{
    int status = 0;

    if (c->resp_len < 12 || sscanf(c->resp, "HTTP/1.1 %3d ", &status) != 1)
        return -1;
    return status;
}

/* Value of header `name` in the response, copied to out; NULL if absent. */
static const char *
header_of(const struct client *c, const char *name, char *out, size_t outlen)
{
    const char *p = c->resp, *end = strstr(c->resp, "\r\n\r\n");
    size_t n = strlen(name);

    assert_non_null(end);
    while ((p = strstr(p, "\r\n")) != NULL && p < end) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1, *e = strstr(v, "\r\n");

            while (*v == ' ')
                v++;
            snprintf(out, outlen, "%.*s", (int)(e - v), v);
            return out;
        }
    }
    return NULL;
}

static const char *
body_of(const struct client *c)
{
    const char *end = strstr(c->resp, "\r\n\r\n");

    assert_non_null(end);
    return end + 4;
}

/* ---- server tests ---- */

static void
test_get_200(void **state)
{
    struct fixture *f = *state;
    struct client c;
    char v[128];
    double t0 = ev_time();

    roundtrip(f, &c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    /* The half-close ends the exchange at once, not the linger deadline. */
    assert_true(ev_time() - t0 < 1.0);
    assert_int_equal(c.err, 0);
    assert_int_equal(status_of(&c), 200);
    assert_string_equal(header_of(&c, "Content-Type", v, sizeof(v)),
                        STATS_CONTENT_TYPE_PROM);
    assert_string_equal(header_of(&c, "Content-Length", v, sizeof(v)), "4");
    assert_string_equal(header_of(&c, "Cache-Control", v, sizeof(v)),
                        "no-store");
    assert_string_equal(header_of(&c, "Connection", v, sizeof(v)), "close");
    assert_string_equal(body_of(&c), "m 1\n");
    client_free(&c);

    /* The query string does not change the route. */
    roundtrip(f, &c, "GET /metrics?name[]=1 HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(&c), 200);
    assert_string_equal(body_of(&c), "m 1\n");
    client_free(&c);
    assert_int_equal(f->renders, 2);
    /* Lingering close ends once the client closed. */
    assert_true(run_until(f, no_conns, f->srv, GUARD));
}

static void
test_head(void **state)
{
    struct fixture *f = *state;
    struct client c;
    char v[64];

    roundtrip(f, &c, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(&c), 200);
    assert_string_equal(header_of(&c, "Content-Length", v, sizeof(v)), "4");
    assert_string_equal(body_of(&c), "");
    client_free(&c);
}

static void
test_404_405_400_500(void **state)
{
    struct fixture *f = *state;
    struct client c;
    char v[64];

    roundtrip(f, &c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(&c), 404);
    client_free(&c);
    /* A route's prefix is not the route. */
    roundtrip(f, &c, "GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(&c), 404);
    client_free(&c);

    roundtrip(f, &c,
              "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(status_of(&c), 405);
    assert_string_equal(header_of(&c, "Allow", v, sizeof(v)), "GET, HEAD");
    client_free(&c);

    roundtrip(f, &c, "GET metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(&c), 400);
    client_free(&c);

    roundtrip(f, &c, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(&c), 500);
    assert_null(strstr(body_of(&c), "partial"));
    client_free(&c);
    assert_int_equal(f->renders, 0);
}

/* What http_parser refuses gets its status, as from the proxy. */
static void
test_refused_like_proxy(void **state)
{
    static const char *const bad[] = {
        "GET /metrics HTTP/1.1\r\n\r\n",              /* no Host */
        "GET /metrics HTTP/1.0\n\n",                  /* bare LF */
        "GET /metrics#x HTTP/1.1\r\nHost: x\r\n\r\n", /* fragment */
        GET_METRICS "Authorization: a\r\nAuthorization: b\r\n\r\n",
        GET_METRICS "Content-Length: 1, 1\r\n\r\n",
    };
    struct fixture *f = *state;
    struct client c;
    char v[64], *req;
    size_t i, n;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        roundtrip(f, &c, bad[i]);
        if (status_of(&c) != 400)
            fail_msg("not 400 for: %s", bad[i]);
        assert_string_equal(header_of(&c, "Connection", v, sizeof(v)), "close");
        assert_string_equal(body_of(&c), "400 Bad Request\n");
        client_free(&c);
    }

    /* More fields than http_parser holds: 431 although the head is small. */
    req = malloc(4096);
    assert_non_null(req);
    n = (size_t)sprintf(req, GET_METRICS);
    for (i = 0; i < HTTP_MAX_HEADERS; i++)
        n += (size_t)sprintf(req + n, "X-%zu: v\r\n", i);
    memcpy(req + n, "\r\n", 3);
    assert_true(n + 2 < STATS_SERVER_HEAD_MAX);
    roundtrip(f, &c, req);
    assert_int_equal(status_of(&c), 431);
    assert_string_equal(body_of(&c), "431 Request Header Fields Too Large\n");
    client_free(&c);
    free(req);
    assert_int_equal(f->renders, 0);

    /* Well-formed heads the old server refused are served now. */
    roundtrip(f, &c, "GET http://x/metrics?a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(&c), 200);
    assert_string_equal(body_of(&c), "m 1\n");
    client_free(&c);
    roundtrip(f, &c, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(&c), 405);
    client_free(&c);
    /* The head may arrive in pieces; HTTP/1.0 needs no Host. */
    client_start(f, &c, "\r\nGET /met", 10);
    assert_false(run_until(f, client_done, &c, 0.1));
    client_send_more(&c, "rics HTTP/1.0\r\n");
    assert_false(run_until(f, client_done, &c, 0.1));
    client_send_more(&c, "\r\n");
    assert_true(run_until(f, client_done, &c, GUARD));
    assert_int_equal(status_of(&c), 200);
    client_free(&c);
    assert_int_equal(f->renders, 2);
}

static void
test_token(void **state)
{
    static const char *const denied[] = {
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        GET_METRICS "Authorization: Bearer s3cre\r\n\r\n",
        GET_METRICS "Authorization: Bearer s3cret!\r\n\r\n",
        GET_METRICS "Authorization: Bearer S3CRET\r\n\r\n",
        GET_METRICS "Authorization: Basic s3cret\r\n\r\n",
        GET_METRICS "Authorization: Bearer\r\n\r\n",
        GET_METRICS "Authorization: s3cret\r\n\r\n",
        /* Unauthenticated clients learn nothing about paths or methods. */
        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    struct fixture *f = *state;
    struct client c;
    char v[64];
    size_t i;

    assert_int_equal(stats_server_set_token(f->srv, "s3cret"), 0);
    for (i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        roundtrip(f, &c, denied[i]);
        if (status_of(&c) != 401)
            fail_msg("not 401 for: %s", denied[i]);
        assert_non_null(header_of(&c, "WWW-Authenticate", v, sizeof(v)));
        assert_int_equal(strncmp(v, "Bearer", 6), 0);
        client_free(&c);
    }
    assert_int_equal(f->renders, 0);
    /* A malformed head is 400 before any token check, as without one. */
    roundtrip(f, &c, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_int_equal(status_of(&c), 400);
    client_free(&c);
    roundtrip(f, &c, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(&c), 401);
    client_free(&c);
    roundtrip(f, &c,
              "GET /metrics HTTP/1.0\r\n"
              "Authorization: Bearer s3cret\r\n\r\n");
    assert_int_equal(status_of(&c), 200);
    client_free(&c);

    roundtrip(f, &c, GET_METRICS "Authorization: Bearer s3cret\r\n\r\n");
    assert_int_equal(status_of(&c), 200);
    assert_string_equal(body_of(&c), "m 1\n");
    client_free(&c);
    /* The scheme is case-insensitive (RFC 9110). */
    roundtrip(f, &c, GET_METRICS "authorization: bearer  s3cret\r\n\r\n");
    assert_int_equal(status_of(&c), 200);
    client_free(&c);

    /* Reload: new token replaces the old one, then none. */
    assert_int_equal(stats_server_set_token(f->srv, "other"), 0);
    roundtrip(f, &c, GET_METRICS "Authorization: Bearer s3cret\r\n\r\n");
    assert_int_equal(status_of(&c), 401);
    client_free(&c);
    assert_int_equal(stats_server_set_token(f->srv, NULL), 0);
    roundtrip(f, &c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(&c), 200);
    client_free(&c);
}

/* A request of exactly `len` bytes, padded with one header. */
static size_t
padded_request(char *out, size_t len)
{
    const char *start = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    size_t s = strlen(start), pad = len - s - 4;

    memcpy(out, start, s);
    memset(out + s, 'p', pad);
    memcpy(out + s + pad, "\r\n\r\n", 4);
    return len;
}

static void
test_head_limit(void **state)
{
    struct fixture *f = *state;
    static char req[STATS_SERVER_HEAD_MAX + 2];
    struct client c;

    /* Exactly the limit: served. */
    client_start(f, &c, req, padded_request(req, STATS_SERVER_HEAD_MAX));
    assert_true(run_until(f, client_done, &c, GUARD));
    assert_int_equal(status_of(&c), 200);
    client_free(&c);

    /* One byte more: 431, and the answer survives the unread byte. */
    client_start(f, &c, req, padded_request(req, STATS_SERVER_HEAD_MAX + 1));
    assert_true(run_until(f, client_done, &c, GUARD));
    assert_int_equal(status_of(&c), 431);
    client_free(&c);
    assert_true(run_until(f, no_conns, f->srv, GUARD));
}

static void
test_big_body_backpressure(void **state)
{
    struct fixture *f = *state;
    const char *body;
    struct client c;
    char v[64];
    size_t i;

    roundtrip(f, &c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(&c), 200);
    snprintf(v, sizeof(v), "%u", BIG_BODY);
    {
        char got[64];

        assert_string_equal(header_of(&c, "Content-Length", got, sizeof(got)),
                            v);
    }
    body = body_of(&c);
    assert_int_equal(c.resp_len - (size_t)(body - c.resp), BIG_BODY);
    for (i = 0; i < BIG_BODY; i += 4099)
        assert_int_equal(body[i], 'a' + i % 23);
    client_free(&c);
}

static void
test_read_timeout(void **state)
{
    struct fixture *f = *state;
    struct client c;
    double t0;

    stats_server_set_timeout(f->srv, 0.2);
    t0 = ev_time();
    client_start(f, &c, "GET /metrics HTTP/1.1\r\nHost: x\r\n", 32);
    assert_true(run_until(f, client_done, &c, GUARD));
    /* Closed without an answer, after the deadline, not before. */
    assert_int_equal(c.resp_len, 0);
    assert_true(ev_time() - t0 >= 0.15);
    client_free(&c);
    assert_int_equal(stats_server_conns(f->srv), 0);
}

static void
test_write_timeout_dead_reader(void **state)
{
    struct fixture *f = *state;
    struct client c;

    stats_server_set_timeout(f->srv, 0.2);
    client_start(f, &c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", 30);
    c.no_read = true;
    client_watch(&c);
    /* The server cannot finish (16 MiB > socket buffers) and gives up. */
    assert_true(run_until(f, no_conns, f->srv, GUARD));
    client_free(&c);
}

static bool
conns_is_one(void *arg)
{
    return stats_server_conns(arg) == 1;
}

static bool
both_done(void *arg)
{
    struct client *c = arg;

    return c[0].done && c[1].done;
}

static void
test_conn_limit(void **state)
{
    struct fixture *f = *state;
    struct client c[2];

    stats_server_set_max_conns(f->srv, 1);
    client_start(f, &c[0], "GET /metrics HTTP/1.1\r\nHost: x\r\n", 32);
    assert_true(run_until(f, conns_is_one, f->srv, GUARD));
    client_start(f, &c[1], "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 34);
    /* The second waits in the backlog while the first holds the slot. */
    assert_false(run_until(f, client_done, &c[1], 0.3));
    assert_int_equal(stats_server_conns(f->srv), 1);
    assert_int_equal(c[1].resp_len, 0);
    client_send_more(&c[0], "\r\n");
    assert_true(run_until(f, both_done, c, GUARD));
    assert_int_equal(status_of(&c[0]), 200);
    assert_int_equal(status_of(&c[1]), 200);
    client_free(&c[0]);
    client_free(&c[1]);
}

static void
test_detach_and_create_from_fd(void **state)
{
    struct fixture *f = *state;
    struct client c;
    char err[256];
    int fd, sock;

    fd = stats_server_detach_fd(f->srv);
    stats_server_destroy(f->srv);
    f->srv = stats_server_create_from_fd(f->loop, fd, "t", err, sizeof(err));
    if (f->srv == NULL)
        fail_msg("%s", err);
    assert_int_equal(stats_server_fd(f->srv), fd);
    add_routes(f);
    roundtrip(f, &c, GET_METRICS "Authorization: Bearer t\r\n\r\n");
    assert_int_equal(status_of(&c), 200);
    client_free(&c);

    /* A socket that is not listening is refused (and closed). */
    sock = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sock >= 0);
    assert_null(
        stats_server_create_from_fd(f->loop, sock, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "not listening"));
}

static void
test_bind_in_use(void **state)
{
    struct fixture *f = *state;
    char err[256];

    assert_null(stats_server_create(f->loop, (struct sockaddr *)&f->addr,
                                    f->addrlen, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "bind"));
    assert_non_null(strstr(err, "127.0.0.1:"));
}

static int
setup6(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&f->addr;
    char err[256];

    assert_non_null(f);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    a6->sin6_family = AF_INET6;
    a6->sin6_addr = in6addr_loopback;
    f->addrlen = sizeof(*a6);
    /* No IPv6 on this host leaves srv NULL and the test skips. */
    f->srv = stats_server_create(f->loop, (struct sockaddr *)a6, f->addrlen,
                                 NULL, err, sizeof(err));
    if (f->srv != NULL) {
        assert_int_equal(getsockname(stats_server_fd(f->srv),
                                     (struct sockaddr *)&f->addr, &f->addrlen),
                         0);
        add_routes(f);
    }
    *state = f;
    return 0;
}

static void
test_ipv6(void **state)
{
    struct fixture *f = *state;
    struct client c;

    if (f->srv == NULL)
        skip();
    roundtrip(f, &c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(status_of(&c), 200);
    assert_string_equal(body_of(&c), "m 1\n");
    client_free(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_head_len),
        cmocka_unit_test_setup_teardown(test_get_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_405_400_500, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_like_proxy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_body_backpressure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_timeout_dead_reader, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_and_create_from_fd, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bind_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6, setup6, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
