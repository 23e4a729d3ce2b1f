/*
 * runtime: live frontends/backends built from a config (see runtime.h).
 */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "proxy_http.h"
#include "tls.h"

/* How long accepting stays paused after EMFILE if no connection closes. */
#define ACCEPT_RETRY_DELAY 0.1

static void
runtime_reaper_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    struct runtime *rt = (struct runtime *)((char *)w -
                                            offsetof(struct runtime, reaper));
    (void)loop;
    (void)revents;
    conn_reap(rt);
    proxy_http_reap(rt);
}

static void
runtime_pause_accept(struct runtime *rt)
{
    if (rt->accept_paused)
        return;
    rt->accept_paused = true;
    for (size_t i = 0; i < rt->nfrontends; i++)
        for (size_t j = 0; j < rt->frontends[i]->nlisteners; j++)
            listener_stop(rt->loop, rt->frontends[i]->listeners[j]);
}

static void
runtime_resume_accept(struct runtime *rt)
{
    if (!rt->accept_paused || rt->stopping)
        return;
    rt->accept_paused = false;
    ev_timer_stop(rt->loop, &rt->accept_retry);
    for (size_t i = 0; i < rt->nfrontends; i++)
        for (size_t j = 0; j < rt->frontends[i]->nlisteners; j++)
            listener_start(rt->loop, rt->frontends[i]->listeners[j]);
}

static void
runtime_accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct runtime *rt = (struct runtime *)((char *)w -
                                            offsetof(struct runtime,
                                                     accept_retry));
    (void)loop;
    (void)revents;
    if (rt->active_conns < rt->cfg->max_connections)
        runtime_resume_accept(rt);
}

void
runtime_conn_opened(struct runtime *rt)
{
    rt->active_conns++;
    if (rt->active_conns >= rt->cfg->max_connections) {
        log_warn("max_connections (%u) reached; accepting paused",
                 rt->cfg->max_connections);
        runtime_pause_accept(rt);
    }
}

void
runtime_conn_closed(struct runtime *rt)
{
    rt->active_conns--;
    if (rt->accept_paused && rt->active_conns < rt->cfg->max_connections &&
        !ev_is_active(&rt->accept_retry))
        runtime_resume_accept(rt);
}

void
runtime_accept_exhausted(struct runtime *rt)
{
    runtime_pause_accept(rt);
    /* A closing connection resumes sooner; this covers fds held elsewhere. */
    ev_timer_set(&rt->accept_retry, ACCEPT_RETRY_DELAY, 0);
    ev_timer_start(rt->loop, &rt->accept_retry);
}

void
backend_ref(struct backend *be)
{
    be->refs++;
}

void
backend_unref(struct backend *be)
{
    if (--be->refs > 0)
        return;
    balance_destroy(be->pool.balance);
    pool_deinit(&be->pool);
    free(be->cfg.servers);
    free(be);
}

static struct backend *
backend_create(const struct config_backend *cb, char *err, size_t errlen)
{
    struct backend *be = calloc(1, sizeof(*be));

    if (be == NULL)
        goto oom;
    snprintf(be->name, sizeof(be->name), "%s", cb->name);
    be->cfg = *cb;
    be->cfg.servers = calloc(cb->nservers ? cb->nservers : 1,
                             sizeof(*cb->servers));
    if (be->cfg.servers == NULL)
        goto oom;
    memcpy(be->cfg.servers, cb->servers, cb->nservers * sizeof(*cb->servers));
    be->refs = 1;
    pool_init(&be->pool, be->name, cb->slow_start);
    for (size_t i = 0; i < cb->nservers; i++) {
        const struct config_server *s = &cb->servers[i];
        struct member *m;
        if (!s->is_literal)
            continue;
        m = pool_add_member(&be->pool, i, s->spec,
                            (const struct sockaddr *)&s->addr, s->addrlen,
                            s->weight, s->backup);
        if (m == NULL)
            goto oom;
        m->up = true;
    }
    be->pool.balance = balance_create(cb->balance, &be->pool);
    if (be->pool.balance == NULL) {
        snprintf(err, errlen, "backend %s: cannot set up balance %s",
                 cb->name, config_balance_name(cb->balance));
        backend_unref(be);
        return NULL;
    }
    return be;
oom:
    snprintf(err, errlen, "out of memory");
    if (be != NULL) {
        pool_deinit(&be->pool);
        free(be->cfg.servers);
        free(be);
    }
    return NULL;
}

struct runtime *
runtime_create(struct ev_loop *loop, struct config *cfg, char *err,
               size_t errlen)
{
    struct runtime *rt = calloc(1, sizeof(*rt));

    if (rt == NULL)
        goto oom;
    rt->loop = loop;
    rt->cfg = cfg;
    ev_check_init(&rt->reaper, runtime_reaper_cb);
    ev_check_start(loop, &rt->reaper);
    ev_timer_init(&rt->accept_retry, runtime_accept_retry_cb, 0, 0);

    rt->backends = calloc(cfg->nbackends + 1, sizeof(*rt->backends));
    rt->frontends = calloc(cfg->nfrontends + 1, sizeof(*rt->frontends));
    if (rt->backends == NULL || rt->frontends == NULL)
        goto oom;
    for (size_t i = 0; i < cfg->nbackends; i++) {
        struct backend *be = backend_create(&cfg->backends[i], err, errlen);
        if (be == NULL)
            goto err;
        be->rt = rt;
        rt->backends[rt->nbackends++] = be;
    }
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        const struct config_frontend *cf = &cfg->frontends[i];
        struct frontend *fe = calloc(1, sizeof(*fe));
        if (fe == NULL)
            goto oom;
        rt->frontends[rt->nfrontends++] = fe;
        snprintf(fe->name, sizeof(fe->name), "%s", cf->name);
        fe->cfg = *cf;
        fe->rt = rt;
        fe->backend = rt->backends[cf->backend];
        fe->listeners = calloc(cf->nlisten, sizeof(*fe->listeners));
        if (fe->listeners == NULL)
            goto oom;
        if (cf->tls_cert != NULL) {
            char terr[384];
            fe->tls = tls_ctx_create(cf->tls_cert, cf->tls_key, terr,
                                     sizeof(terr));
            if (fe->tls == NULL) {
                snprintf(err, errlen, "frontend %s: %s", fe->name, terr);
                goto err;
            }
        }
        for (size_t j = 0; j < cf->nlisten; j++) {
            char lerr[256];
            struct listener *l =
                listener_create(loop, &cf->listen[j], fe, lerr, sizeof(lerr));
            if (l == NULL) {
                snprintf(err, errlen, "frontend %s: %s", fe->name, lerr);
                goto err;
            }
            fe->listeners[fe->nlisteners++] = l;
        }
    }
    return rt;
oom:
    snprintf(err, errlen, "out of memory");
err:
    runtime_destroy(rt);
    return NULL;
}

void
runtime_start(struct runtime *rt)
{
    for (size_t i = 0; i < rt->nfrontends; i++) {
        struct frontend *fe = rt->frontends[i];
        for (size_t j = 0; j < fe->nlisteners; j++) {
            listener_start(rt->loop, fe->listeners[j]);
            log_info("frontend %s listening on %s (mode %s, backend %s)",
                     fe->name, fe->listeners[j]->addr.text,
                     config_mode_name(fe->cfg.mode), fe->backend->name);
        }
    }
}

void
runtime_stop_listening(struct runtime *rt)
{
    rt->stopping = true;
    ev_timer_stop(rt->loop, &rt->accept_retry);
    for (size_t i = 0; i < rt->nfrontends; i++) {
        struct frontend *fe = rt->frontends[i];
        for (size_t j = 0; j < fe->nlisteners; j++)
            listener_destroy(rt->loop, fe->listeners[j]);
        fe->nlisteners = 0;
    }
    proxy_http_stop(rt);
}

void
runtime_close_all(struct runtime *rt)
{
    while (rt->conns != NULL)
        conn_close(rt->conns, "shutdown");
    conn_reap(rt);
    proxy_http_close_all(rt);
}

void
runtime_destroy(struct runtime *rt)
{
    if (rt == NULL)
        return;
    runtime_close_all(rt);
    proxy_http_destroy(rt);
    ev_check_stop(rt->loop, &rt->reaper);
    ev_timer_stop(rt->loop, &rt->accept_retry);
    for (size_t i = 0; i < rt->nfrontends; i++) {
        struct frontend *fe = rt->frontends[i];
        for (size_t j = 0; j < fe->nlisteners; j++)
            listener_destroy(rt->loop, fe->listeners[j]);
        free(fe->listeners);
        tls_ctx_free(fe->tls);
        free(fe);
    }
    for (size_t i = 0; i < rt->nbackends; i++) {
        rt->backends[i]->rt = NULL;
        backend_unref(rt->backends[i]);
    }
    free(rt->frontends);
    free(rt->backends);
    free(rt);
}
