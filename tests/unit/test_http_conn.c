/*
 * Unit tests for the pure decisions of http_conn: body framing over the
 * bytes read so far (http_conn_flow_*), the deadline of each phase
 * (http_conn_deadline) and what each socket waits for (http_conn_events,
 * http_conn_*_wants_*). No socket, no loop: connections are hand-built.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "frontend.h"
#include "http_conn.h"

/* ---------------------------------------------------------------------- */
/* Body framing                                                            */

/* A buffer over text[0, end). */
static struct http_buf
hbuf(char *text, size_t end)
{
    struct http_buf h = {0};

    h.data = text;
    h.cap = end;
    h.end = end;
    return h;
}

/* What the proxy does after sending k body bytes from the buffer. */
static void
forward(struct http_flow *f, struct http_buf *h, size_t k)
{
    assert_true(k <= f->ok);
    h->start += k;
    f->ok -= k;
    f->bytes += k;
}

static void
test_flow_none(void **state)
{
    struct http_flow f;
    char text[] = "GET / HTTP/1.1\r\n";
    struct http_buf h = hbuf(text, strlen(text));

    (void)state;
    http_conn_flow_init(&f, HTTP_BODY_NONE, 0);
    assert_true(f.done);
    assert_true(http_conn_flow_complete(&f));
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    /* What follows is the next message, never body. */
    assert_int_equal(f.ok, 0);
    assert_true(http_conn_flow_complete(&f));
}

static void
test_flow_length_zero(void **state)
{
    struct http_flow f;
    char text[] = "GET /next HTTP/1.1\r\n";
    struct http_buf h = hbuf(text, strlen(text));

    (void)state;
    http_conn_flow_init(&f, HTTP_BODY_LENGTH, 0);
    assert_true(f.done);
    assert_int_equal(f.left, 0);
    assert_true(http_conn_flow_complete(&f));
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    assert_int_equal(f.ok, 0);
    assert_int_equal(f.bytes, 0);
    assert_true(http_conn_flow_complete(&f));
}

static void
test_flow_length_split(void **state)
{
    /* 10 body bytes, then the next request. */
    char text[] = "0123456789GET /2 HTTP/1.1\r\n";
    struct http_flow f;
    struct http_buf h;

    (void)state;
    http_conn_flow_init(&f, HTTP_BODY_LENGTH, 10);
    assert_false(f.done);
    assert_int_equal(f.left, 10);
    assert_false(http_conn_flow_complete(&f));

    /* Nothing read yet. */
    h = hbuf(text, 0);
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    assert_int_equal(f.ok, 0);
    assert_int_equal(f.left, 10);

    /* 3 bytes in, not forwarded. */
    h.end = 3;
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    assert_int_equal(f.ok, 3);
    assert_int_equal(f.left, 7);
    assert_false(f.done);
    /* Scanning again without new bytes changes nothing. */
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    assert_int_equal(f.ok, 3);
    assert_int_equal(f.left, 7);

    /* 4 more arrive before the first 3 were sent: ok covers both. */
    h.end = 7;
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    assert_int_equal(f.ok, 7);
    assert_int_equal(f.left, 3);

    /* A partial send. */
    forward(&f, &h, 5);
    assert_int_equal(f.ok, 2);
    assert_int_equal(h.start, 5);
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    assert_int_equal(f.ok, 2);
    assert_int_equal(f.left, 3);

    /* The rest of the body and the next request in one read. */
    h.end = strlen(text);
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    assert_int_equal(f.ok, 5); /* 2 + the 3 missing */
    assert_int_equal(f.left, 0);
    assert_true(f.done);
    assert_false(http_conn_flow_complete(&f)); /* not all sent */
    forward(&f, &h, 5);
    assert_true(http_conn_flow_complete(&f));
    assert_int_equal(f.bytes, 10);
    assert_int_equal(h.start, 10);
    assert_memory_equal(h.data + h.start, "GET /2", 6);
    /* Done: later bytes are never body. */
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    assert_int_equal(f.ok, 0);
}

/* Every split of a 10-byte body into two reads. */
static void
test_flow_length_every_split(void **state)
{
    char text[] = "abcdefghijNEXT";
    (void)state;
    for (size_t cut = 0; cut <= 14; cut++) {
        struct http_flow f;
        struct http_buf h = hbuf(text, cut);

        http_conn_flow_init(&f, HTTP_BODY_LENGTH, 10);
        assert_int_equal(http_conn_flow_scan(&f, &h), 0);
        assert_int_equal(f.ok, cut < 10 ? cut : 10);
        assert_int_equal(f.done, cut >= 10);
        forward(&f, &h, f.ok);
        h.end = 14;
        assert_int_equal(http_conn_flow_scan(&f, &h), 0);
        assert_true(f.done);
        forward(&f, &h, f.ok);
        assert_true(http_conn_flow_complete(&f));
        assert_int_equal(f.bytes, 10);
        assert_int_equal(h.start, 10);
    }
}

/* A chunked body with an extension and a trailer, then the next message. */
static const char chunked_body[] = "4\r\nWiki\r\n"
                                   "5;ext=1\r\npedia\r\n"
                                   "E\r\n in\r\n\r\nchunks.\r\n"
                                   "0\r\n"
                                   "X-Trailer: yes\r\n"
                                   "\r\n";
static const char next_msg[] = "GET /next HTTP/1.1\r\n";

static void
test_flow_chunked_whole(void **state)
{
    char text[256];
    size_t blen = strlen(chunked_body);
    struct http_flow f;
    struct http_buf h;

    (void)state;
    snprintf(text, sizeof(text), "%s%s", chunked_body, next_msg);
    h = hbuf(text, strlen(text));
    http_conn_flow_init(&f, HTTP_BODY_CHUNKED, 0);
    assert_false(f.done);
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    assert_true(f.done);
    assert_int_equal(f.ok, blen); /* the next message is not body */
    assert_int_equal(f.ck.data, 4 + 5 + 14);
    assert_false(http_conn_flow_complete(&f));
    forward(&f, &h, f.ok);
    assert_true(http_conn_flow_complete(&f));
    assert_int_equal(f.bytes, blen);
    assert_string_equal(h.data + h.start, next_msg);
}

/* Two reads, split at every byte boundary, with and without a send between. */
static void
test_flow_chunked_every_split(void **state)
{
    char text[256];
    size_t blen = strlen(chunked_body);
    size_t total;

    (void)state;
    snprintf(text, sizeof(text), "%s%s", chunked_body, next_msg);
    total = strlen(text);
    for (int send_between = 0; send_between < 2; send_between++) {
        for (size_t cut = 0; cut <= total; cut++) {
            struct http_flow f;
            struct http_buf h = hbuf(text, cut);

            http_conn_flow_init(&f, HTTP_BODY_CHUNKED, 0);
            assert_int_equal(http_conn_flow_scan(&f, &h), 0);
            if (f.done != (cut >= blen))
                fail_msg("cut %zu: done %d", cut, f.done);
            if (f.ok != (cut < blen ? cut : blen))
                fail_msg("cut %zu: ok %zu", cut, f.ok);
            if (send_between)
                forward(&f, &h, f.ok);
            h.end = total;
            assert_int_equal(http_conn_flow_scan(&f, &h), 0);
            assert_true(f.done);
            assert_int_equal(h.start + f.ok, blen);
            forward(&f, &h, f.ok);
            assert_true(http_conn_flow_complete(&f));
            assert_int_equal(f.bytes, blen);
            assert_int_equal(h.start, blen);
        }
    }
}

/* One byte per read, forwarding everything each time. */
static void
test_flow_chunked_bytewise(void **state)
{
    char text[256];
    size_t blen = strlen(chunked_body);
    struct http_flow f;
    struct http_buf h;

    (void)state;
    snprintf(text, sizeof(text), "%s%s", chunked_body, next_msg);
    h = hbuf(text, 0);
    http_conn_flow_init(&f, HTTP_BODY_CHUNKED, 0);
    for (size_t i = 1; i <= strlen(text); i++) {
        h.end = i;
        assert_int_equal(http_conn_flow_scan(&f, &h), 0);
        if (f.done != (i >= blen))
            fail_msg("byte %zu: done %d", i, f.done);
        if (i <= blen)
            assert_int_equal(f.ok, 1);
        else
            assert_int_equal(f.ok, 0);
        forward(&f, &h, f.ok);
    }
    assert_true(http_conn_flow_complete(&f));
    assert_int_equal(f.bytes, blen);
    assert_int_equal(f.ck.data, 4 + 5 + 14);
}

static void
test_flow_chunked_broken(void **state)
{
    static const struct {
        const char *text;
        size_t bad; /* bytes before the error shows */
    } cases[] = {
        {"zz\r\n", 0},                   /* not hex */
        {"4\r\nWikiXX\r\n", 7},          /* data not followed by CRLF */
        {"4\nWiki\r\n", 1},              /* bare LF after the size */
        {"-4\r\nWiki\r\n", 0},           /* sign */
        {"0\r\nbad trailer\r\n\r\n", 3}, /* trailer without a colon */
    };

    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char text[64];
        size_t len = strlen(cases[k].text);

        memcpy(text, cases[k].text, len + 1);
        /* All at once. */
        struct http_flow f;
        struct http_buf h = hbuf(text, len);
        http_conn_flow_init(&f, HTTP_BODY_CHUNKED, 0);
        if (http_conn_flow_scan(&f, &h) != -1)
            fail_msg("case %zu: not rejected", k);
        assert_false(f.done);
        /* Byte by byte: fine up to the bad part, -1 by the end. */
        http_conn_flow_init(&f, HTTP_BODY_CHUNKED, 0);
        h = hbuf(text, 0);
        int rc = 0;
        size_t i;
        for (i = 1; i <= len && rc == 0; i++) {
            h.end = i;
            rc = http_conn_flow_scan(&f, &h);
            if (i <= cases[k].bad && rc != 0)
                fail_msg("case %zu: rejected early at %zu", k, i);
        }
        if (rc != -1)
            fail_msg("case %zu: not rejected bytewise", k);
        assert_false(http_conn_flow_complete(&f));
    }
}

static void
test_flow_close_delimited(void **state)
{
    char text[] = "some response bytes until FIN";
    struct http_flow f;
    struct http_buf h = hbuf(text, 0);

    (void)state;
    http_conn_flow_init(&f, HTTP_BODY_CLOSE, 0);
    assert_false(f.done);
    for (size_t i = 4; i <= strlen(text); i += 4) {
        h.end = i;
        assert_int_equal(http_conn_flow_scan(&f, &h), 0);
        assert_int_equal(h.start + f.ok, i);
        assert_false(f.done);
        assert_false(http_conn_flow_complete(&f));
        forward(&f, &h, f.ok / 2); /* send half of it */
    }
    h.end = strlen(text);
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    forward(&f, &h, f.ok);
    assert_int_equal(f.bytes, strlen(text));
    /* Only the member's FIN ends it: never complete on its own. */
    assert_false(http_conn_flow_complete(&f));

    /* Tunnel bytes behave the same. */
    http_conn_flow_init(&f, HTTP_BODY_TUNNEL, 0);
    h = hbuf(text, 7);
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    assert_int_equal(f.ok, 7);
    assert_false(f.done);

    /* No buffer yet: nothing to scan. */
    http_conn_flow_init(&f, HTTP_BODY_CLOSE, 0);
    h = hbuf(NULL, 0);
    assert_int_equal(http_conn_flow_scan(&f, &h), 0);
    assert_int_equal(f.ok, 0);
}

/* ---------------------------------------------------------------------- */
/* Hand-built connections                                                  */

struct cfx {
    struct frontend fe;
    struct backend *be;
    struct http_conn *c;
    struct upstream_conn mc;
    char sbuf[64];
    char cbuf[64];
};

static int
cfx_setup(void **state)
{
    struct cfx *x = calloc(1, sizeof(*x));

    assert_non_null(x);
    x->be = calloc(1, sizeof(*x->be));
    x->c = calloc(1, sizeof(*x->c));
    assert_non_null(x->be);
    assert_non_null(x->c);
    x->fe.cfg.timeout_request = 10;
    x->fe.cfg.timeout_client = 30;
    x->be->cfg.timeout_connect = 3;
    x->be->cfg.timeout_server = 60;
    x->c->fe = &x->fe;
    x->c->be = x->be;
    x->c->c_readable = false;
    x->c->c_writable = true;
    http_conn_flow_init(&x->c->rq.rqf, HTTP_BODY_NONE, 0);
    http_conn_flow_init(&x->c->rq.rsf, HTTP_BODY_NONE, 0);
    *state = x;
    return 0;
}

static int
cfx_teardown(void **state)
{
    struct cfx *x = *state;

    free(x->c);
    free(x->be);
    free(x);
    return 0;
}

/* n bytes waiting in h. */
static void
fill(struct http_buf *h, char *store, size_t n)
{
    memset(store, 'x', n);
    h->data = store;
    h->cap = 64;
    h->start = 0;
    h->end = n;
}

static double
deadline(const struct http_conn *c, enum http_conn_deadline *kind)
{
    *kind = (enum http_conn_deadline) - 1;
    return http_conn_deadline(c, kind);
}

static void
test_deadline_handshake(void **state)
{
    struct cfx *x = *state;
    struct http_conn *c = x->c;
    enum http_conn_deadline k;

    c->phase = HC_HANDSHAKE;
    c->t_accept = 100;
    c->t_req = 500;
    assert_true(deadline(c, &k) == 110);
    assert_int_equal(k, DL_HANDSHAKE);
}

static void
test_deadline_head(void **state)
{
    struct cfx *x = *state;
    struct http_conn *c = x->c;
    enum http_conn_deadline k;

    c->phase = HC_HEAD;
    c->t_accept = 100;
    c->t_req = 101;
    c->idle_since = 0;
    /* Before any request: the request timeout, from t_req. */
    assert_true(deadline(c, &k) == 111);
    assert_int_equal(k, DL_REQUEST);
    c->req_started = true;
    assert_true(deadline(c, &k) == 111);
    assert_int_equal(k, DL_REQUEST);

    /* A request was served and no byte of the next one came: idle. */
    c->nreq = 1;
    c->req_started = false;
    c->idle_since = 200;
    assert_true(deadline(c, &k) == 230);
    assert_int_equal(k, DL_IDLE);
    c->nreq = 7;
    assert_true(deadline(c, &k) == 230);
    assert_int_equal(k, DL_IDLE);

    /* The next head started arriving: the request timeout again. */
    c->req_started = true;
    c->t_req = 205;
    assert_true(deadline(c, &k) == 215);
    assert_int_equal(k, DL_REQUEST);
}

static void
test_deadline_resolve_connect_linger(void **state)
{
    struct cfx *x = *state;
    struct http_conn *c = x->c;
    enum http_conn_deadline k;

    c->phase = HC_RESOLVING;
    c->up.retry_at = 123.5;
    c->c_last = 1;
    assert_true(deadline(c, &k) == 123.5);
    assert_int_equal(k, DL_RESOLVE);

    c->phase = HC_CONNECT;
    c->connect_started = 50;
    assert_true(deadline(c, &k) == 53);
    assert_int_equal(k, DL_CONNECT);

    c->phase = HC_LINGER;
    c->linger_until = 77.25;
    assert_true(deadline(c, &k) == 77.25);
    assert_int_equal(k, DL_LINGER);

    c->phase = HC_CLOSED;
    assert_true(isinf(deadline(c, &k)));
    assert_int_equal(k, DL_NONE);
}

static void
test_deadline_forward(void **state)
{
    struct cfx *x = *state;
    struct http_conn *c = x->c;
    enum http_conn_deadline k;

    c->phase = HC_FORWARD;
    c->mc = &x->mc;
    c->s_last = 90;  /* server: 150 */
    c->c_last = 100; /* client: 130 */

    /* Request body still coming, response not final: both sides count. */
    http_conn_flow_init(&c->rq.rqf, HTTP_BODY_LENGTH, 100);
    assert_true(http_conn_client_wants_input(c));
    assert_true(http_conn_server_wants_input(c));
    assert_true(deadline(c, &k) == 130);
    assert_int_equal(k, DL_CLIENT);
    c->c_last = 200; /* client: 230 */
    assert_true(deadline(c, &k) == 150);
    assert_int_equal(k, DL_SERVER);

    /* Request fully sent, waiting for the response: the client may be
     * silent, only the member's deadline applies. */
    http_conn_flow_init(&c->rq.rqf, HTTP_BODY_NONE, 0);
    c->c_last = 0; /* would be 30 */
    assert_false(http_conn_client_wants_input(c));
    assert_false(http_conn_client_wants_output(c));
    assert_true(deadline(c, &k) == 150);
    assert_int_equal(k, DL_SERVER);

    /* Response bytes for the client: its deadline is earlier. */
    fill(&c->cout, x->cbuf, 8);
    assert_true(http_conn_client_wants_output(c));
    assert_true(deadline(c, &k) == 30);
    assert_int_equal(k, DL_CLIENT);

    /* No member connection: the server deadline does not apply. */
    c->mc = NULL;
    c->c_last = 500;
    assert_true(deadline(c, &k) == 530);
    assert_int_equal(k, DL_CLIENT);

    /* Nothing to wait for on either side. */
    c->cout = (struct http_buf){0};
    assert_true(isinf(deadline(c, &k)));
    assert_int_equal(k, DL_NONE);

    /* Ties go to the server. */
    c->mc = &x->mc;
    fill(&c->cout, x->cbuf, 8);
    c->s_last = 10; /* 70 */
    c->c_last = 40; /* 70 */
    assert_true(deadline(c, &k) == 70);
    assert_int_equal(k, DL_SERVER);
}

static void
test_deadline_tunnel(void **state)
{
    struct cfx *x = *state;
    struct http_conn *c = x->c;
    enum http_conn_deadline k;

    /* Idle both ways, still both deadlines. */
    c->phase = HC_TUNNEL;
    c->mc = &x->mc;
    c->s_last = 100; /* 160 */
    c->c_last = 120; /* 150 */
    assert_true(deadline(c, &k) == 150);
    assert_int_equal(k, DL_CLIENT);
    c->c_last = 140; /* 170 */
    assert_true(deadline(c, &k) == 160);
    assert_int_equal(k, DL_SERVER);
    c->mc = NULL;
    assert_true(deadline(c, &k) == 170);
    assert_int_equal(k, DL_CLIENT);
}

/* ---------------------------------------------------------------------- */
/* Events                                                                  */

static void
events(const struct http_conn *c, int *cev, int *sev)
{
    *cev = -1;
    *sev = -1;
    http_conn_events(c, cev, sev);
}

static void
test_events_handshake(void **state)
{
    struct cfx *x = *state;
    struct http_conn *c = x->c;
    int cev, sev;

    c->phase = HC_HANDSHAKE;
    c->c_readable = false;
    c->c_writable = false;
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ | EV_WRITE);
    assert_int_equal(sev, 0);
    c->c_readable = true;
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_WRITE);
    c->c_readable = false;
    c->c_writable = true;
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ);
    c->c_readable = true;
    events(c, &cev, &sev);
    assert_int_equal(cev, 0);
    /* Nothing of the handshake reads the wants of the other phases. */
    assert_false(http_conn_client_wants_input(c));
    assert_false(http_conn_server_wants_input(c));
    assert_false(http_conn_server_wants_output(c));
}

static void
test_events_head(void **state)
{
    struct cfx *x = *state;
    struct http_conn *c = x->c;
    int cev, sev;

    c->phase = HC_HEAD;
    assert_true(http_conn_client_wants_input(c));
    assert_false(http_conn_client_wants_output(c));
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ);
    assert_int_equal(sev, 0);

    /* An error response to write, client not writable. */
    fill(&c->cout, x->cbuf, 20);
    c->c_writable = false;
    assert_int_equal(http_conn_client_out_pending(c), 20);
    assert_true(http_conn_client_wants_output(c));
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ | EV_WRITE);
    /* Writable: the write step goes without waiting. */
    c->c_writable = true;
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ);

    /* Client FIN: no more reading. */
    c->c_eof = true;
    assert_false(http_conn_client_wants_input(c));
    c->cout = (struct http_buf){0};
    events(c, &cev, &sev);
    assert_int_equal(cev, 0);
    /* TLS write waiting for readable. */
    c->c_wr_wants_read = true;
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ);
    c->c_wr_wants_read = false;
    c->c_rd_wants_write = true;
    c->c_writable = false;
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_WRITE);

    /* Resolving: the client waits, nothing is read. */
    c->c_rd_wants_write = false;
    c->c_eof = false;
    c->phase = HC_RESOLVING;
    assert_false(http_conn_client_wants_input(c));
    events(c, &cev, &sev);
    assert_int_equal(cev, 0);
    assert_int_equal(sev, 0);
}

static void
test_events_connect(void **state)
{
    struct cfx *x = *state;
    struct http_conn *c = x->c;
    int cev, sev;

    c->phase = HC_CONNECT;
    fill(&c->sout, x->sbuf, 30); /* request head ready */
    events(c, &cev, &sev);
    assert_int_equal(sev, 0); /* no member connection yet */
    c->mc = &x->mc;
    x->mc.writable = false;
    events(c, &cev, &sev);
    assert_int_equal(sev, EV_WRITE);
    assert_int_equal(cev, 0);
    /* Connecting: writability is what it waits for, whatever is known. */
    x->mc.writable = true;
    events(c, &cev, &sev);
    assert_int_equal(sev, EV_WRITE);
}

static void
test_events_forward(void **state)
{
    struct cfx *x = *state;
    struct http_conn *c = x->c;
    int cev, sev;

    c->phase = HC_FORWARD;
    c->mc = &x->mc;
    x->mc.writable = false;
    fill(&c->sout, x->sbuf, 30);
    http_conn_flow_init(&c->rq.rqf, HTTP_BODY_LENGTH, 5);

    /* Head for the member, body still coming: read both, write member. */
    assert_int_equal(http_conn_server_out_pending(c), 30);
    assert_true(http_conn_server_wants_output(c));
    assert_true(http_conn_server_wants_input(c));
    assert_true(http_conn_client_wants_input(c));
    events(c, &cev, &sev);
    assert_int_equal(sev, EV_READ | EV_WRITE);
    assert_int_equal(cev, EV_READ);
    x->mc.writable = true;
    events(c, &cev, &sev);
    assert_int_equal(sev, EV_READ);

    /* Body bytes scanned but not sent count as pending output. */
    c->sout = (struct http_buf){0};
    x->mc.writable = false;
    c->rq.rqf.ok = 3;
    assert_int_equal(http_conn_server_out_pending(c), 3);
    events(c, &cev, &sev);
    assert_int_equal(sev, EV_READ | EV_WRITE);
    c->rq.rqf.ok = 0;
    events(c, &cev, &sev);
    assert_int_equal(sev, EV_READ);

    /* Request done: the client read stays on (to notice the client)
     * until an event is not consumed. */
    c->rq.rqf.done = true;
    assert_false(http_conn_client_wants_input(c));
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ);
    c->c_rd_hot = true;
    events(c, &cev, &sev);
    assert_int_equal(cev, 0);
    c->c_rd_hot = false;
    c->rq.stop_input = true;
    events(c, &cev, &sev);
    assert_int_equal(cev, 0);
    c->rq.stop_input = false;

    /* Final response with a body being relayed. */
    c->rq.resp_final = true;
    http_conn_flow_init(&c->rq.rsf, HTTP_BODY_LENGTH, 100);
    assert_true(http_conn_server_wants_input(c));
    fill(&c->sin, x->sbuf, 10); /* unsent bytes: read no more */
    assert_false(http_conn_server_wants_input(c));
    events(c, &cev, &sev);
    assert_int_equal(sev, 0);
    c->rq.rsf.ok = 10;
    c->c_writable = false;
    assert_int_equal(http_conn_client_out_pending(c), 10);
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ | EV_WRITE);
    c->c_writable = true;
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ);

    /* Member FIN: nothing more from it. */
    c->sin = (struct http_buf){0};
    c->rq.rsf.ok = 0;
    c->s_eof = true;
    assert_false(http_conn_server_wants_input(c));
    events(c, &cev, &sev);
    assert_int_equal(sev, 0);

    /* No member connection: server events are 0 whatever is pending. */
    c->s_eof = false;
    fill(&c->sout, x->sbuf, 30);
    c->mc = NULL;
    assert_false(http_conn_server_wants_input(c));
    assert_false(http_conn_server_wants_output(c));
    events(c, &cev, &sev);
    assert_int_equal(sev, 0);

    /* We shut the member side: no more output to it. */
    c->mc = &x->mc;
    c->s_shut = true;
    assert_false(http_conn_server_wants_output(c));
}

static void
test_events_tunnel(void **state)
{
    struct cfx *x = *state;
    struct http_conn *c = x->c;
    int cev, sev;

    c->phase = HC_TUNNEL;
    c->mc = &x->mc;
    x->mc.writable = true;
    c->c_writable = true;
    http_conn_flow_init(&c->rq.rqf, HTTP_BODY_TUNNEL, 0);
    http_conn_flow_init(&c->rq.rsf, HTTP_BODY_TUNNEL, 0);

    /* Both open and idle: read both. */
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ);
    assert_int_equal(sev, EV_READ);

    /* Client half-closed, all its bytes sent: the FIN goes to the member. */
    c->c_eof = true;
    assert_false(http_conn_client_wants_input(c));
    assert_true(http_conn_server_wants_output(c));
    x->mc.writable = false;
    events(c, &cev, &sev);
    assert_int_equal(cev, 0);
    assert_int_equal(sev, EV_READ | EV_WRITE);
    /* Not before its last bytes went out. */
    fill(&c->cin, x->cbuf, 4);
    assert_int_equal(http_conn_server_out_pending(c), 0);
    assert_false(http_conn_server_wants_output(c));
    c->cin = (struct http_buf){0};
    c->s_shut = true;
    assert_false(http_conn_server_wants_output(c));
    events(c, &cev, &sev);
    assert_int_equal(sev, EV_READ);

    /* The other half: the member closed, the FIN goes to the client. */
    c->c_eof = false;
    c->s_shut = false;
    c->s_eof = true;
    c->c_writable = false;
    assert_false(http_conn_server_wants_input(c));
    assert_true(http_conn_client_wants_output(c));
    assert_true(http_conn_client_wants_input(c));
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ | EV_WRITE);
    assert_int_equal(sev, 0);
    c->c_shut = true;
    assert_false(http_conn_client_wants_output(c));
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ);

    /* Unsent member bytes: no more reading from the member. */
    c->s_eof = false;
    fill(&c->sin, x->sbuf, 4);
    assert_false(http_conn_server_wants_input(c));
}

static void
test_events_linger(void **state)
{
    struct cfx *x = *state;
    struct http_conn *c = x->c;
    int cev, sev;

    c->phase = HC_LINGER;
    c->c_shut = true;
    events(c, &cev, &sev);
    assert_int_equal(cev, EV_READ);
    assert_int_equal(sev, 0);
    c->c_eof = true;
    events(c, &cev, &sev);
    assert_int_equal(cev, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, cfx_setup, cfx_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flow_none),
        cmocka_unit_test(test_flow_length_zero),
        cmocka_unit_test(test_flow_length_split),
        cmocka_unit_test(test_flow_length_every_split),
        cmocka_unit_test(test_flow_chunked_whole),
        cmocka_unit_test(test_flow_chunked_every_split),
        cmocka_unit_test(test_flow_chunked_bytewise),
        cmocka_unit_test(test_flow_chunked_broken),
        cmocka_unit_test(test_flow_close_delimited),
        T(test_deadline_handshake),
        T(test_deadline_head),
        T(test_deadline_resolve_connect_linger),
        T(test_deadline_forward),
        T(test_deadline_tunnel),
        T(test_events_handshake),
        T(test_events_head),
        T(test_events_connect),
        T(test_events_forward),
        T(test_events_tunnel),
        T(test_events_linger),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
