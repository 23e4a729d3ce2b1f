/*
 * conn: connection lifecycle and deferred free (see conn.h).
 */
#include "conn.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "runtime.h"

static void
conn_side_close(struct ev_loop *loop, struct conn_side *s, bool reset)
{
    ev_io_stop(loop, &s->rio);
    ev_io_stop(loop, &s->wio);
    if (s->fd >= 0) {
        if (reset) {
            /* Abort: an RST tells the peer the stream did not end well. */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(s->fd);
        s->fd = -1;
    }
    buf_put(s->buf);
    s->buf = NULL;
    if (s->pipe[0] >= 0) {
        close(s->pipe[0]);
        close(s->pipe[1]);
        s->pipe[0] = s->pipe[1] = -1;
    }
}

void
conn_set_state(struct conn *c, enum conn_state s)
{
    c->state = s;
}

static void
conn_end(struct conn *c, const char *why, bool reset)
{
    struct runtime *rt = c->rt;
    struct ev_loop *loop = rt->loop;

    if (c->state == CONN_CLOSED)
        return;
    c->end = why;
    ev_timer_stop(loop, &c->timer);
    dns_cache_cancel(&c->dnswait);
    conn_side_close(loop, &c->client, reset);
    conn_side_close(loop, &c->server, reset);
    /* A connect that failed was released with its outcome already. */
    if (c->member != NULL)
        backend_release(c->be, c->member, BALANCE_OK, ev_now(loop));
    if (log_access_enabled()) {
        double now = ev_now(loop);
        log_access("tcp frontend=%s client=%s member=%s bytes_in=%llu "
                   "bytes_out=%llu duration_ms=%.0f end=%s",
                   c->fe->name, c->peer_text,
                   c->member ? c->member->addr_text : "-",
                   (unsigned long long)c->client.bytes_in,
                   (unsigned long long)c->server.bytes_in,
                   (now - c->started) * 1000.0, why);
    }
    c->member = NULL;
    c->fe->stats.active--;
    conn_set_state(c, CONN_CLOSED);

    /* Move from the open list to the closed list; freed in conn_reap. */
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        rt->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = rt->closed;
    rt->closed = c;
    runtime_conn_closed(rt);
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
conn_reap(struct runtime *rt)
{
    while (rt->closed != NULL) {
        struct conn *c = rt->closed;
        rt->closed = c->next;
        backend_unref(c->be);
        frontend_unref(c->fe);
        free(c);
    }
}
