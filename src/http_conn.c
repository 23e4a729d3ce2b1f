/*
 * http_conn: HTTP connection state and its pure decisions (see
 * http_conn.h).
 */
#include "http_conn.h"

#include <math.h>
#include <string.h>

#include "backend.h"
#include "frontend.h"

void
http_conn_flow_init(struct http_flow *f, enum http_body body, uint64_t length)
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
int
http_conn_flow_scan(struct http_flow *f, const struct http_buf *h)
{
    size_t avail, used;

    if (f->done || h->data == NULL)
        return 0;
    avail = http_conn_buf_len(h) - f->ok;
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

/* The client read step would read now (same test as client_read). */
bool
http_conn_client_wants_input(const struct http_conn *c)
{
    switch (c->phase) {
    case HC_HEAD:
    case HC_LINGER:
        return !c->c_eof;
    case HC_FORWARD:
        return !c->c_eof && !c->rq.stop_input && !c->rq.rqf.done &&
               http_conn_buf_len(&c->cin) == 0;
    case HC_TUNNEL:
        return !c->c_eof && http_conn_buf_len(&c->cin) == 0;
    default:
        return false;
    }
}

/* The server read step would read now (same test as server_read). */
bool
http_conn_server_wants_input(const struct http_conn *c)
{
    if (c->mc == NULL || c->s_eof)
        return false;
    if (c->phase == HC_TUNNEL)
        return http_conn_buf_len(&c->sin) == 0;
    if (c->phase != HC_FORWARD)
        return false;
    if (!c->rq.resp_final)
        return true;
    return !c->rq.rsf.done && http_conn_buf_len(&c->sin) == 0;
}

bool
http_conn_server_wants_output(const struct http_conn *c)
{
    if (c->mc == NULL || c->s_shut)
        return false;
    if (http_conn_server_out_pending(c) > 0)
        return true;
    return c->phase == HC_TUNNEL && c->c_eof && http_conn_buf_len(&c->cin) == 0;
}

bool
http_conn_client_wants_output(const struct http_conn *c)
{
    if (c->c_shut)
        return false;
    if (http_conn_client_out_pending(c) > 0)
        return true;
    return c->phase == HC_TUNNEL && c->s_eof && http_conn_buf_len(&c->sin) == 0;
}

/* The earliest deadline that applies now, and what it is for. */
double
http_conn_deadline(const struct http_conn *c, enum http_conn_deadline *kind)
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
        /* upstream keeps the next pick within timeout_connect. */
        *kind = DL_RESOLVE;
        return c->up.retry_at;
    case HC_CONNECT:
        *kind = DL_CONNECT;
        return c->connect_started + bc->timeout_connect;
    case HC_FORWARD:
    case HC_TUNNEL: {
        bool on_server = http_conn_server_wants_output(c) ||
                         http_conn_server_wants_input(c);
        bool on_client = http_conn_client_wants_output(c) ||
                         http_conn_client_wants_input(c);
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

void
http_conn_events(const struct http_conn *c, int *client_ev, int *server_ev)
{
    bool rd, wr;

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
        rd = http_conn_client_wants_input(c) || c->c_wr_wants_read ||
             (c->phase == HC_FORWARD && !c->c_eof && !c->rq.stop_input &&
              !c->c_rd_hot);
        wr = http_conn_client_wants_output(c) || c->c_rd_wants_write;
    }
    *client_ev = (rd ? EV_READ : 0) | (wr && !c->c_writable ? EV_WRITE : 0);
    *server_ev = 0;
    if (c->mc == NULL)
        return;
    if (c->phase == HC_CONNECT)
        *server_ev = EV_WRITE;
    else
        *server_ev = (http_conn_server_wants_input(c) ? EV_READ : 0) |
                     (http_conn_server_wants_output(c) && !c->mc->writable
                          ? EV_WRITE
                          : 0);
}
