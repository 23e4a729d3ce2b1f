/*
 * conn: connection lifecycle and deferred free (see conn.h).
 */
#include "conn.h"

#include <assert.h>
#include <stdlib.h>
#include <unistd.h>

#include "frontend.h"
#include "net.h"
#include "plane.h"

static void
conn_side_close(struct ev_loop *loop, struct conn_side *s, bool reset)
{
    ev_io_stop(loop, &s->rio);
    ev_io_stop(loop, &s->wio);
    /* Abort: an RST tells the peer the stream did not end well. */
    net_close(s->fd, reset);
    s->fd = -1;
    buf_put(s->buf);
    s->buf = NULL;
    if (s->pipe[0] >= 0) {
        close(s->pipe[0]);
        close(s->pipe[1]);
        s->pipe[0] = s->pipe[1] = -1;
    }
}

/* The moves the diagram in conn.h allows. */
static bool
conn_state_move_ok(enum conn_state from, enum conn_state to)
{
    switch (to) {
    case CONN_RESOLVING:
        return from == CONN_NEW || from == CONN_RESOLVING;
    case CONN_CONNECTING:
        return from == CONN_NEW || from == CONN_RESOLVING ||
               from == CONN_CONNECTING;
    case CONN_TUNNEL:
        return from == CONN_CONNECTING;
    case CONN_CLOSED:
        return from != CONN_CLOSED;
    default:
        return false;
    }
}

void
conn_set_state(struct conn *c, enum conn_state s)
{
    assert(conn_state_move_ok(c->state, s));
    c->state = s;
}

static void
conn_end(struct conn *c, const char *why, bool reset)
{
    struct conn_set *set = c->set;
    struct ev_loop *loop = set->env.loop;

    if (c->state == CONN_CLOSED)
        return;
    c->end = why;
    ev_timer_stop(loop, &c->timer);
    upstream_req_cancel(&c->up);
    conn_side_close(loop, &c->client, reset);
    conn_side_close(loop, &c->server, reset);
    if (log_access_enabled()) {
        double now = ev_now(loop);
        log_access("tcp frontend=%s client=%s member=%s bytes_in=%llu "
                   "bytes_out=%llu duration_ms=%.0f end=%s",
                   c->fe->name, c->peer_text,
                   c->up.member ? c->up.member->addr_text : "-",
                   (unsigned long long)c->client.bytes_in,
                   (unsigned long long)c->server.bytes_in,
                   (now - c->started) * 1000.0, why);
    }
    /* A connect that failed was released with its outcome already. */
    upstream_release(&c->up, BALANCE_OK, ev_now(loop));
    assert(PLANE_GET(c->fe->stats.active) > 0);
    PLANE_SUB(c->fe->stats.active, 1);
    conn_set_state(c, CONN_CLOSED);

    /* Move from the open list to the closed list; freed in conn_reap. */
    list_del(&c->link);
    list_add(&set->closed, &c->link);
    set->env.conn_closed(set->env.arg);
}

void
conn_close(struct conn *c, const char *why)
{
    conn_end(c, why, false);
}

void
conn_abort(struct conn *c, const char *why)
{
    conn_end(c, why, true);
}

void
conn_reap(struct conn_set *set)
{
    struct list *l;

    while ((l = list_first(&set->closed)) != NULL) {
        struct conn *c = container_of(l, struct conn, link);
        list_del(l);
        backend_unref(c->be);
        frontend_unref(c->fe);
        free(c);
    }
}
