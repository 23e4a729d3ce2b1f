/*
 * runtime: live frontends/backends built from a config (see runtime.h).
 */
#include "runtime.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "health.h"
#include "proxy_http.h"
#include "proxy_tcp.h"
#include "upstream.h"

/* How long accepting stays paused after EMFILE if no connection closes. */
#define ACCEPT_RETRY_DELAY 0.1

static void
runtime_reaper_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    struct runtime *rt = container_of(w, struct runtime, reaper);
    (void)loop;
    (void)revents;
    /* Only runs once runtime_create succeeded: every proxy exists. */
    for (int i = 0; i < RUNTIME_MODES; i++)
        rt->proxy_ops[i]->reap(rt->proxies[i]);
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
    struct runtime *rt = container_of(w, struct runtime, accept_retry);
    (void)loop;
    (void)revents;
    if (rt->active_conns < rt->cfg->max_connections)
        runtime_resume_accept(rt);
}

/* listener_hooks: the accept path's view of max_connections. */
static bool
runtime_accept_paused(void *arg)
{
    struct runtime *rt = arg;

    return rt->accept_paused;
}

static void
runtime_conn_opened(void *arg)
{
    struct runtime *rt = arg;

    rt->active_conns++;
    if (rt->active_conns >= rt->cfg->max_connections) {
        /* Under sustained load this repeats at every accept. */
        log_limited(&rt->maxconn_log, ev_now(rt->loop), LOG_LEVEL_WARN,
                    "max_connections (%u) reached; accepting paused",
                    rt->cfg->max_connections);
        runtime_pause_accept(rt);
    }
}

/* proxy_env.conn_closed: a client connection of any proxy ended. */
static void
runtime_conn_closed(void *arg)
{
    struct runtime *rt = arg;

    assert(rt->active_conns > 0);
    rt->active_conns--;
    if (rt->accept_paused && rt->active_conns < rt->cfg->max_connections &&
        !ev_is_active(&rt->accept_retry))
        runtime_resume_accept(rt);
}

/* Accept failed with EMFILE/ENFILE: pause, retry after a short delay. */
static void
runtime_accept_exhausted(void *arg)
{
    struct runtime *rt = arg;

    runtime_pause_accept(rt);
    /* A closing connection resumes sooner; this covers fds held elsewhere. */
    ev_timer_set(&rt->accept_retry, ACCEPT_RETRY_DELAY, 0);
    ev_timer_start(rt->loop, &rt->accept_retry);
}

static void runtime_phase_check(struct runtime *rt);

/* The runtime lets go of fe: its listeners close, its connections go on. */
static void
frontend_drop(struct runtime *rt, struct frontend *fe)
{
    for (size_t j = 0; j < fe->nlisteners; j++)
        if (fe->listeners[j] != NULL)
            listener_destroy(rt->loop, fe->listeners[j]);
    fe->nlisteners = 0;
    frontend_unref(fe);
}

/* listener_handler: an accepted client goes to its frontend's proxy. */
static void
runtime_accept(void *arg, int fd, const struct sockaddr *peer,
               socklen_t peerlen)
{
    struct frontend *fe = arg;

    fe->proxy_ops->accept(fe->proxy, fe, fd, peer, peerlen);
}

/* Points l at fe: its connections are fe's from now on. */
static void
runtime_bind_listener(struct frontend *fe, struct listener *l)
{
    char label[CONFIG_NAME_MAX + 16];

    snprintf(label, sizeof(label), "frontend %s", fe->name);
    listener_set_handler(l, runtime_accept, fe, label);
}

/* A frontend of rt: the proxy of its mode serves it. */
static struct frontend *
runtime_frontend_create(struct runtime *rt, const struct config_frontend *cf,
                        struct backend *be, char *err, size_t errlen)
{
    struct frontend *fe = frontend_create(cf, be, err, errlen);

    if (fe == NULL)
        return NULL;
    fe->proxy_ops = rt->proxy_ops[cf->mode];
    fe->proxy = rt->proxies[cf->mode];
    return fe;
}

static void
runtime_first_round(void *arg)
{
    runtime_phase_check(arg);
}

/* What backends need from above their layer. */
static struct backend *
runtime_backend_create(struct runtime *rt, const struct config *cfg,
                       const struct config_backend *cb, struct backend *old,
                       char *err, size_t errlen)
{
    struct backend_hooks hooks = {
        .first_round = runtime_first_round,
        .probe_connect = upstream_probe_connect,
        .carry_over = upstream_idle_move,
        .arg = rt,
    };

    return backend_create(rt->loop, rt->dns, cfg, cb, old, &hooks, err, errlen);
}

struct runtime *
runtime_create(struct ev_loop *loop, struct config *cfg, struct dns *dns,
               char *err, size_t errlen)
{
    struct runtime *rt = calloc(1, sizeof(*rt));

    if (rt == NULL)
        goto oom;
    rt->loop = loop;
    rt->cfg = cfg;
    rt->dns = dns;
    ev_timer_init(&rt->ready_timer, NULL, 0, 0);
    ev_check_init(&rt->reaper, runtime_reaper_cb);
    ev_check_start(loop, &rt->reaper);
    ev_timer_init(&rt->accept_retry, runtime_accept_retry_cb, 0, 0);
    rt->accept_hooks = (struct listener_hooks){
        .paused = runtime_accept_paused,
        .opened = runtime_conn_opened,
        .exhausted = runtime_accept_exhausted,
        .log = &rt->accept_log,
        .arg = rt,
    };
    rt->proxy_ops[MODE_TCP] = &proxy_tcp_ops;
    rt->proxy_ops[MODE_HTTP] = &proxy_http_ops;
    for (int i = 0; i < RUNTIME_MODES; i++) {
        struct proxy_env env = {
            .loop = loop,
            .conn_closed = runtime_conn_closed,
            .arg = rt,
        };
        rt->proxies[i] = rt->proxy_ops[i]->create(&env);
        if (rt->proxies[i] == NULL)
            goto oom;
    }

    rt->backends = calloc(cfg->nbackends + 1, sizeof(*rt->backends));
    rt->frontends = calloc(cfg->nfrontends + 1, sizeof(*rt->frontends));
    if (rt->backends == NULL || rt->frontends == NULL)
        goto oom;
    for (size_t i = 0; i < cfg->nbackends; i++) {
        struct backend *be = runtime_backend_create(rt, cfg, &cfg->backends[i],
                                                    NULL, err, errlen);
        if (be == NULL)
            goto err;
        rt->backends[rt->nbackends++] = be;
    }
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        const struct config_frontend *cf = &cfg->frontends[i];
        struct frontend *fe = runtime_frontend_create(rt, cf,
                                                      rt->backends[cf->backend],
                                                      err, errlen);
        if (fe == NULL)
            goto err;
        rt->frontends[rt->nfrontends++] = fe;
        for (size_t j = 0; j < cf->nlisten; j++) {
            char lerr[256];
            struct listener *l = listener_create(&cf->listen[j],
                                                 &rt->accept_hooks, lerr,
                                                 sizeof(lerr));
            if (l == NULL) {
                snprintf(err, errlen, "frontend %s: %s", fe->name, lerr);
                goto err;
            }
            runtime_bind_listener(fe, l);
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

enum {
    RUNTIME_PHASE_NONE,   /* not preparing */
    RUNTIME_PHASE_DNS,    /* first resolution of every name */
    RUNTIME_PHASE_HEALTH, /* first round of health checks */
    RUNTIME_PHASE_READY,  /* ready_cb called */
};

static void runtime_ready_timeout_cb(struct ev_loop *loop, ev_timer *w,
                                     int revents);
static void runtime_start_health_phase(struct runtime *rt);

static void
runtime_dns_phase_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct runtime *rt = w->data;

    (void)loop;
    (void)revents;
    if (rt->ready_phase != RUNTIME_PHASE_DNS)
        return;
    for (size_t i = 0; i < rt->nbackends; i++) {
        struct backend *be = rt->backends[i];
        for (size_t j = 0; j < be->nnames; j++) {
            struct backend_name *bn = &be->names[j];
            if (!dns_cache_waiter_parked(&bn->startw))
                continue;
            dns_cache_cancel(&bn->startw);
            log_warn("backend %s: %s not resolved within startup_timeout; "
                     "retrying in the background",
                     be->name, bn->entry->name);
        }
    }
    runtime_start_health_phase(rt);
}

static void
runtime_start_woken(struct dns_cache_waiter *w, enum dns_cache_wake why,
                    const struct dns_cache_entry *e)
{
    struct backend_name *bn = w->arg;
    struct runtime *rt = bn->be->owner;

    if (why == DNS_CACHE_WAKE_NEGATIVE)
        log_warn("backend %s: %s did not resolve (%s); retrying in the "
                 "background",
                 bn->be->name, e->name,
                 e->last_error ? e->last_error : "error");
    if (rt == NULL || rt->ready_phase != RUNTIME_PHASE_DNS ||
        --rt->dns_pending > 0)
        return;
    /* Pools were fed before waiters woke (same pass): go on at once. */
    ev_timer_stop(rt->loop, &rt->ready_timer);
    ev_timer_set(&rt->ready_timer, 0, 0);
    ev_timer_start(rt->loop, &rt->ready_timer);
}

static void
runtime_ready(struct runtime *rt)
{
    rt->ready_phase = RUNTIME_PHASE_READY;
    ev_timer_stop(rt->loop, &rt->ready_timer);
    rt->ready_cb(rt);
}

static void
runtime_phase_check(struct runtime *rt)
{
    size_t pending = 0;

    if (rt->ready_phase != RUNTIME_PHASE_HEALTH)
        return;
    for (size_t i = 0; i < rt->nbackends; i++)
        pending += health_first_round_pending(rt->backends[i]->health);
    if (pending == 0)
        runtime_ready(rt);
}

static void
runtime_ready_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct runtime *rt = w->data;

    (void)loop;
    (void)revents;
    if (rt->ready_phase == RUNTIME_PHASE_HEALTH) {
        log_warn("first round of health checks not finished in time; "
                 "members without a result start down");
        runtime_ready(rt);
    }
}

static void
runtime_start_health_phase(struct runtime *rt)
{
    double longest = 0;

    ev_timer_stop(rt->loop, &rt->ready_timer);
    rt->ready_phase = RUNTIME_PHASE_HEALTH;
    for (size_t i = 0; i < rt->nbackends; i++)
        if (rt->backends[i]->cfg.health_timeout > longest)
            longest = rt->backends[i]->cfg.health_timeout;
    /* Each check ends by its own timeout; the margin covers loop delay. */
    ev_timer_init(&rt->ready_timer, runtime_ready_timeout_cb, longest + 0.5, 0);
    rt->ready_timer.data = rt;
    ev_timer_start(rt->loop, &rt->ready_timer);
    runtime_phase_check(rt);
}

void
runtime_prepare(struct runtime *rt, void (*ready_cb)(struct runtime *))
{
    struct dns_cache *cache;
    double now;

    rt->ready_cb = ready_cb;
    rt->ready_phase = RUNTIME_PHASE_DNS;
    rt->dns_pending = 0;
    if (rt->dns == NULL) {
        runtime_start_health_phase(rt);
        return;
    }
    cache = dns_cache_of(rt->dns);
    now = dns_now();
    for (size_t i = 0; i < rt->nbackends; i++) {
        struct backend *be = rt->backends[i];
        for (size_t j = 0; j < be->nnames; j++) {
            struct backend_name *bn = &be->names[j];
            enum dns_cache_result r;
            dns_cache_waiter_init(&bn->startw, runtime_start_woken, bn);
            r = dns_cache_lookup_entry(cache, bn->entry, now, &bn->startw);
            if (r == DNS_CACHE_MISS || r == DNS_CACHE_COALESCED)
                rt->dns_pending++;
        }
    }
    ev_timer_init(&rt->ready_timer, runtime_dns_phase_cb,
                  rt->dns_pending ? rt->cfg->startup_timeout : 0, 0);
    rt->ready_timer.data = rt;
    ev_timer_start(rt->loop, &rt->ready_timer);
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
    for (int i = 0; i < RUNTIME_MODES; i++)
        rt->proxy_ops[i]->stop(rt->proxies[i]);
}

void
runtime_close_all(struct runtime *rt)
{
    for (int i = 0; i < RUNTIME_MODES; i++)
        if (rt->proxies[i] != NULL)
            rt->proxy_ops[i]->close_all(rt->proxies[i]);
}

void
runtime_destroy(struct runtime *rt)
{
    if (rt == NULL)
        return;
    runtime_close_all(rt);
    ev_check_stop(rt->loop, &rt->reaper);
    ev_timer_stop(rt->loop, &rt->accept_retry);
    ev_timer_stop(rt->loop, &rt->ready_timer);
    for (size_t i = 0; i < rt->nfrontends; i++)
        frontend_drop(rt, rt->frontends[i]);
    for (size_t i = 0; i < rt->nbackends; i++)
        backend_drop(rt->backends[i]);
    /* Connections hold the frontends and backends: free them first. */
    for (int i = 0; i < RUNTIME_MODES; i++)
        if (rt->proxies[i] != NULL)
            rt->proxy_ops[i]->destroy(rt->proxies[i]);
    free(rt->frontends);
    free(rt->backends);
    free(rt);
}

/* The listener of the running configuration on exactly this address. */
static struct listener *
runtime_find_listener(struct runtime *rt, const struct config_addr *a)
{
    for (size_t i = 0; i < rt->nfrontends; i++) {
        struct frontend *fe = rt->frontends[i];
        for (size_t j = 0; j < fe->nlisteners; j++) {
            struct listener *l = fe->listeners[j];
            if (l != NULL && l->addr.len == a->len &&
                memcmp(&l->addr.ss, &a->ss, a->len) == 0)
                return l;
        }
    }
    return NULL;
}

static void
runtime_forget_listener(struct runtime *rt, struct listener *l)
{
    for (size_t i = 0; i < rt->nfrontends; i++) {
        struct frontend *fe = rt->frontends[i];
        for (size_t j = 0; j < fe->nlisteners; j++)
            if (fe->listeners[j] == l)
                fe->listeners[j] = NULL;
    }
}

static struct backend *
runtime_find_backend(struct runtime *rt, const char *name)
{
    for (size_t i = 0; i < rt->nbackends; i++)
        if (strcmp(rt->backends[i]->name, name) == 0)
            return rt->backends[i];
    return NULL;
}

/*
 * Reload in two steps. Prepare builds every new object and binds every new
 * address without touching the running ones (so a failure changes
 * nothing); commit then moves kept listening sockets over, swaps the
 * arrays and lets the old objects go.
 */
int
runtime_reload(struct runtime *rt, struct config *cfg, char *err, size_t errlen)
{
    struct backend **bes = calloc(cfg->nbackends + 1, sizeof(*bes));
    struct frontend **fes = calloc(cfg->nfrontends + 1, sizeof(*fes));
    bool **fresh = calloc(cfg->nfrontends + 1, sizeof(*fresh));
    struct listener ***ls = calloc(cfg->nfrontends + 1, sizeof(*ls));
    size_t nbes = 0, nfes = 0, added = 0, kept = 0, closed = 0;
    size_t members_before = 0, members_after = 0;

    if (bes == NULL || fes == NULL || fresh == NULL || ls == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Bind new addresses first: it is the step that fails in practice, and
     * nothing running has been touched yet. */
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        const struct config_frontend *cf = &cfg->frontends[i];
        fresh[i] = calloc(cf->nlisten + 1, sizeof(**fresh));
        ls[i] = calloc(cf->nlisten + 1, sizeof(**ls));
        if (fresh[i] == NULL || ls[i] == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (size_t j = 0; j < cf->nlisten; j++) {
            char lerr[256];
            ls[i][j] = runtime_find_listener(rt, &cf->listen[j]);
            if (ls[i][j] != NULL)
                continue;
            ls[i][j] = listener_create(&cf->listen[j], &rt->accept_hooks, lerr,
                                       sizeof(lerr));
            if (ls[i][j] == NULL) {
                snprintf(err, errlen, "frontend %s: %s", cf->name, lerr);
                goto fail;
            }
            fresh[i][j] = true;
        }
    }
    for (size_t i = 0; i < cfg->nbackends; i++) {
        struct backend *old = runtime_find_backend(rt, cfg->backends[i].name);
        bes[i] = runtime_backend_create(rt, cfg, &cfg->backends[i], old, err,
                                        errlen);
        if (bes[i] == NULL)
            goto fail;
        nbes++;
    }
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        const struct config_frontend *cf = &cfg->frontends[i];
        struct frontend *fe = runtime_frontend_create(rt, cf, bes[cf->backend],
                                                      err, errlen);
        if (fe == NULL)
            goto fail;
        fes[nfes++] = fe;
    }

    /* Commit: nothing below can fail. */
    for (size_t i = 0; i < rt->nbackends; i++)
        members_before += rt->backends[i]->pool.n;
    for (size_t i = 0; i < nfes; i++) {
        struct frontend *fe = fes[i];
        for (size_t j = 0; j < cfg->frontends[i].nlisten; j++) {
            struct listener *l = ls[i][j];
            fe->listeners[fe->nlisteners++] = l;
            if (!fresh[i][j]) {
                /* Same socket, new owner: no connection is refused. */
                kept++;
                runtime_forget_listener(rt, l);
            }
            runtime_bind_listener(fe, l);
            if (fresh[i][j]) {
                added++;
                if (!rt->accept_paused && !rt->stopping)
                    listener_start(rt->loop, l);
                log_info("reload: frontend %s now also listens on %s", fe->name,
                         l->addr.text);
            }
        }
    }
    for (size_t i = 0; i < rt->nfrontends; i++) {
        struct frontend *fe = rt->frontends[i];
        for (size_t j = 0; j < fe->nlisteners; j++)
            if (fe->listeners[j] != NULL) {
                log_info("reload: %s is no longer listened on",
                         fe->listeners[j]->addr.text);
                closed++;
            }
        frontend_drop(rt, fe);
    }
    for (size_t i = 0; i < rt->nbackends; i++) {
        bool still = false;
        for (size_t k = 0; k < nbes; k++)
            still |= strcmp(bes[k]->name, rt->backends[i]->name) == 0;
        if (!still)
            log_info("reload: backend %s removed", rt->backends[i]->name);
        backend_drop(rt->backends[i]);
    }
    free(rt->frontends);
    free(rt->backends);
    rt->frontends = fes;
    rt->nfrontends = nfes;
    rt->backends = bes;
    rt->nbackends = nbes;
    config_free(rt->cfg);
    rt->cfg = cfg;
    for (size_t i = 0; i < nbes; i++)
        members_after += bes[i]->pool.n;
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        free(fresh[i]);
        free(ls[i]);
    }
    free(fresh);
    free(ls);
    log_info("reload: %zu frontends, %zu backends; listeners %zu kept, %zu "
             "added, %zu closed; members %zu -> %zu",
             nfes, nbes, kept, added, closed, members_before, members_after);
    return 0;

fail:
    for (size_t i = 0; i < nfes; i++) {
        frontend_unref(fes[i]);
    }
    for (size_t i = 0; i < nbes; i++)
        backend_drop(bes[i]);
    for (size_t i = 0; ls != NULL && i < cfg->nfrontends; i++) {
        for (size_t j = 0;
             ls[i] != NULL && fresh[i] != NULL && j < cfg->frontends[i].nlisten;
             j++)
            if (fresh[i][j])
                listener_destroy(rt->loop, ls[i][j]);
        free(ls[i]);
        free(fresh[i]);
    }
    free(ls);
    free(fresh);
    free(fes);
    free(bes);
    return -1;
}
