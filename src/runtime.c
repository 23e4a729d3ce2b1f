/*
 * runtime: live frontends/backends built from a config, and the workers
 * that serve them (see runtime.h).
 */
#include "runtime.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "health.h"
#include "net.h"
#include "plane.h"
#include "proxy_http.h"
#include "proxy_tcp.h"

/* How long accepting stays paused after EMFILE if no connection closes. */
#define ACCEPT_RETRY_DELAY 0.1

/* ---------------------------------------------------------------------- */
/* Accept limits (on each worker's thread)                                 */

static void
runtime_reaper_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    struct runtime_worker *rw = container_of(w, struct runtime_worker, reaper);
    (void)loop;
    (void)revents;
    for (int i = 0; i < RUNTIME_MODES; i++)
        rw->rt->proxy_ops[i]->reap(rw->proxies[i]);
}

static void
runtime_pause_accept(struct runtime_worker *rw)
{
    struct list *l;

    if (rw->accept_paused)
        return;
    rw->accept_paused = true;
    list_for_each (l, &rw->listeners)
        listener_stop(rw->w.loop, container_of(l, struct listener, link));
}

static void
runtime_resume_accept(struct runtime_worker *rw)
{
    struct list *l;

    if (!rw->accept_paused || PLANE_GET(rw->rt->stopping) ||
        ev_is_active(&rw->accept_retry) ||
        __atomic_load_n(&rw->maxconn_wait, __ATOMIC_SEQ_CST))
        return;
    rw->accept_paused = false;
    list_for_each (l, &rw->listeners)
        listener_start(rw->w.loop, container_of(l, struct listener, link));
}

/*
 * A worker waiting for a slot goes back to accepting once the count is
 * below the limit. The pause publishes maxconn_wait before it reads the
 * count, and a close lowers the count before it reads npaused (both
 * sequentially consistent), so a slot freed meanwhile is never missed.
 */
static void
runtime_try_resume(struct runtime_worker *rw)
{
    struct runtime *rt = rw->rt;

    if (!__atomic_load_n(&rw->maxconn_wait, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&rt->active_conns, __ATOMIC_SEQ_CST) >=
            PLANE_GET(rt->max_conns))
        return;
    __atomic_store_n(&rw->maxconn_wait, false, __ATOMIC_SEQ_CST);
    __atomic_fetch_sub(&rt->npaused, 1, __ATOMIC_SEQ_CST);
    runtime_resume_accept(rw);
}

static void
runtime_resume_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    runtime_try_resume(container_of(w, struct runtime_worker, resume));
}

static void
runtime_accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct runtime_worker *rw = container_of(w, struct runtime_worker,
                                             accept_retry);
    (void)loop;
    (void)revents;
    runtime_resume_accept(rw);
}

/* listener_hooks.reserve: max_connections counts every worker's. */
static bool
runtime_reserve(void *arg)
{
    struct runtime_worker *rw = arg;
    struct runtime *rt = rw->rt;
    unsigned n = __atomic_load_n(&rt->active_conns, __ATOMIC_SEQ_CST);
    unsigned max = PLANE_GET(rt->max_conns);

    do {
        if (n >= max) {
            /* Under sustained load this repeats at every accept. */
            log_limited(&rt->maxconn_log, ev_now(rw->w.loop), LOG_LEVEL_WARN,
                        "max_connections (%u) reached; accepting paused", max);
            runtime_pause_accept(rw);
            if (!__atomic_exchange_n(&rw->maxconn_wait, true, __ATOMIC_SEQ_CST))
                __atomic_fetch_add(&rt->npaused, 1, __ATOMIC_SEQ_CST);
            runtime_try_resume(rw);
            return false;
        }
    } while (!__atomic_compare_exchange_n(&rt->active_conns, &n, n + 1, true,
                                          __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    PLANE_ADD(rw->conns, 1);
    return true;
}

/*
 * A slot was given back (listener_hooks.unreserve: accept(2) had nothing
 * for it; proxy_env.conn_closed: a client connection ended): wake the
 * workers waiting for one.
 */
static void
runtime_slot_freed(void *arg)
{
    struct runtime_worker *rw = arg;
    struct runtime *rt = rw->rt;

    __atomic_fetch_sub(&rt->active_conns, 1, __ATOMIC_SEQ_CST);
    PLANE_SUB(rw->conns, 1);
    if (__atomic_load_n(&rt->npaused, __ATOMIC_SEQ_CST) == 0)
        return;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct runtime_worker *o = &rt->workers[i];
        if (o == rw)
            runtime_try_resume(o);
        else if (__atomic_load_n(&o->maxconn_wait, __ATOMIC_SEQ_CST))
            ev_async_send(o->w.loop, &o->resume);
    }
}

/* Accept failed with EMFILE/ENFILE: pause, retry after a short delay. */
static void
runtime_accept_exhausted(void *arg)
{
    struct runtime_worker *rw = arg;

    runtime_pause_accept(rw);
    /* Descriptors may be held anywhere in the process: try again soon. */
    ev_timer_stop(rw->w.loop, &rw->accept_retry);
    ev_timer_set(&rw->accept_retry, ACCEPT_RETRY_DELAY, 0);
    ev_timer_start(rw->w.loop, &rw->accept_retry);
}

unsigned
runtime_active_conns(const struct runtime *rt)
{
    return __atomic_load_n(&rt->active_conns, __ATOMIC_SEQ_CST);
}

/* ---------------------------------------------------------------------- */
/* Workers                                                                 */

/* listener_handler: an accepted client goes to its frontend's proxy on
 * the listener's worker. */
static void
runtime_accept(void *arg, const struct listener *l, int fd,
               const struct sockaddr *peer, socklen_t peerlen)
{
    struct frontend *fe = arg;
    struct runtime_worker *rw = l->hooks->arg;

    fe->proxy_ops->accept(rw->proxies[fe->cfg.mode], fe, fd, peer, peerlen);
}

/* Points l at fe: its connections are fe's from now on. */
static void
runtime_bind_listener(struct frontend *fe, struct listener *l)
{
    char label[CONFIG_NAME_MAX + 16];

    snprintf(label, sizeof(label), "frontend %s", fe->name);
    listener_set_handler(l, runtime_accept, fe, label);
}

static int
runtime_worker_init(struct runtime *rt, struct runtime_worker *rw, unsigned id)
{
    rw->rt = rt;
    list_init(&rw->listeners);
    if (worker_init(&rw->w, id, rt->nworkers > 1, rt->loop) != 0)
        return -1;
    upstream_loop_init(&rw->up, rw->w.loop, id);
    ev_check_init(&rw->reaper, runtime_reaper_cb);
    ev_check_start(rw->w.loop, &rw->reaper);
    ev_timer_init(&rw->accept_retry, runtime_accept_retry_cb, 0, 0);
    ev_async_init(&rw->resume, runtime_resume_cb);
    ev_async_start(rw->w.loop, &rw->resume);
    /* Neither watcher may keep a stopping loop alive. */
    ev_unref(rw->w.loop);
    rw->accept_hooks = (struct listener_hooks){
        .reserve = runtime_reserve,
        .unreserve = runtime_slot_freed,
        .exhausted = runtime_accept_exhausted,
        .log = &rt->accept_log,
        .arg = rw,
    };
    for (int i = 0; i < RUNTIME_MODES; i++) {
        struct proxy_env env = {
            .loop = rw->w.loop,
            .up = &rw->up,
            .conn_closed = runtime_slot_freed,
            .arg = rw,
        };
        rw->proxies[i] = rt->proxy_ops[i]->create(&env);
        if (rw->proxies[i] == NULL)
            return -1;
    }
    return 0;
}

/* Closes every listening socket of rw (on its thread, or after it). */
static void
runtime_close_listeners(struct runtime_worker *rw)
{
    struct list *l;

    while ((l = list_first(&rw->listeners)) != NULL) {
        list_del(l);
        listener_destroy(rw->w.loop, container_of(l, struct listener, link));
    }
}

/* After the worker's thread is gone (or never was): frees its share. */
static void
runtime_worker_deinit(struct runtime_worker *rw)
{
    if (rw->rt == NULL)
        return;
    for (int i = 0; i < RUNTIME_MODES; i++)
        if (rw->proxies[i] != NULL)
            rw->rt->proxy_ops[i]->close_all(rw->proxies[i]);
    runtime_close_listeners(rw);
    if (rw->w.loop == NULL)
        return;
    ev_check_stop(rw->w.loop, &rw->reaper);
    ev_timer_stop(rw->w.loop, &rw->accept_retry);
    ev_ref(rw->w.loop);
    ev_async_stop(rw->w.loop, &rw->resume);
}

/* Frees the proxies, once connections let go of frontends and backends. */
static void
runtime_worker_free(struct runtime_worker *rw)
{
    if (rw->rt == NULL || rw->w.loop == NULL)
        return;
    for (int i = 0; i < RUNTIME_MODES; i++)
        if (rw->proxies[i] != NULL)
            rw->rt->proxy_ops[i]->destroy(rw->proxies[i]);
    upstream_loop_deinit(&rw->up);
    worker_deinit(&rw->w);
}

/* ---------------------------------------------------------------------- */
/* Building                                                                */

static void runtime_phase_check(struct runtime *rt);

/* A frontend of rt: the proxy of its mode serves it on every worker. */
static struct frontend *
runtime_frontend_create(struct runtime *rt, const struct config_frontend *cf,
                        struct backend *be, char *err, size_t errlen)
{
    struct frontend *fe = frontend_create(cf, be, rt->nworkers, err, errlen);

    if (fe == NULL)
        return NULL;
    fe->proxy_ops = rt->proxy_ops[cf->mode];
    return fe;
}

static void
runtime_first_round(void *arg)
{
    runtime_phase_check(arg);
}

/*
 * backend_hooks.carry_over: idle connections live on the workers' loops,
 * so the move waits for the reload's commit, which each worker runs.
 */
static void
runtime_carry_over(void *arg, struct member *from, struct member *to)
{
    struct runtime *rt = arg;

    if (rt->ncarry == rt->carry_cap) {
        size_t cap = rt->carry_cap ? rt->carry_cap * 2 : 16;
        struct runtime_carry *c = realloc(rt->carry, cap * sizeof(*c));
        /* Out of memory: the connections close instead of moving. */
        if (c == NULL)
            return;
        rt->carry = c;
        rt->carry_cap = cap;
    }
    member_ref(from);
    member_ref(to);
    rt->carry[rt->ncarry++] = (struct runtime_carry){from, to};
}

static void
runtime_carry_release(struct runtime *rt)
{
    for (size_t i = 0; i < rt->ncarry; i++) {
        member_unref(rt->carry[i].from);
        member_unref(rt->carry[i].to);
    }
    rt->ncarry = 0;
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
        .carry_over = runtime_carry_over,
        .arg = rt,
        .nloops = rt->nworkers,
    };

    return backend_create(rt->loop, rt->dns, cfg, cb, old, &hooks, err, errlen);
}

/* The listener of worker rw on exactly this address, if any. */
static struct listener *
runtime_find_listener(struct runtime_worker *rw, const struct config_addr *a)
{
    struct list *pos;

    list_for_each (pos, &rw->listeners) {
        struct listener *l = container_of(pos, struct listener, link);
        if (l->addr.len == a->len && memcmp(&l->addr.ss, &a->ss, a->len) == 0)
            return l;
    }
    return NULL;
}

/* Listener slot of listen line j on worker k in fe->listeners. */
static size_t
runtime_slot(const struct runtime *rt, size_t j, unsigned k)
{
    return j * rt->nworkers + k;
}

/*
 * With workers, a new listen address gets one SO_REUSEPORT socket per
 * worker; first make sure nobody else (another ferry) holds it, which
 * SO_REUSEPORT would otherwise let us share without a word.
 */
static int
runtime_probe_address(const struct runtime *rt, const char *fe,
                      const struct config_addr *a, char *err, size_t errlen)
{
    char lerr[256];

    if (rt->nworkers == 1 ||
        net_listen_probe((const struct sockaddr *)&a->ss, a->len, a->text, lerr,
                         sizeof(lerr)) == 0)
        return 0;
    snprintf(err, errlen, "frontend %s: %s", fe, lerr);
    return -1;
}

struct runtime *
runtime_create(struct ev_loop *loop, struct config *cfg, struct dns *dns,
               unsigned nworkers, char *err, size_t errlen)
{
    struct runtime *rt = calloc(1, sizeof(*rt));

    if (rt == NULL)
        goto oom;
    rt->loop = loop;
    rt->cfg = cfg;
    rt->dns = dns;
    rt->max_conns = cfg->max_connections;
    rt->nworkers = nworkers ? nworkers : 1;
    ev_timer_init(&rt->ready_timer, NULL, 0, 0);
    rt->proxy_ops[MODE_TCP] = &proxy_tcp_ops;
    rt->proxy_ops[MODE_HTTP] = &proxy_http_ops;
    rt->workers = calloc(rt->nworkers, sizeof(*rt->workers));
    rt->wlist = calloc(rt->nworkers, sizeof(*rt->wlist));
    if (rt->workers == NULL || rt->wlist == NULL)
        goto oom;
    for (unsigned k = 0; k < rt->nworkers; k++) {
        rt->wlist[k] = &rt->workers[k].w;
        if (runtime_worker_init(rt, &rt->workers[k], k) != 0)
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
            if (runtime_probe_address(rt, fe->name, &cf->listen[j], err,
                                      errlen) != 0)
                goto err;
            for (unsigned k = 0; k < rt->nworkers; k++) {
                struct runtime_worker *rw = &rt->workers[k];
                char lerr[256];
                struct listener *l = listener_create(&cf->listen[j],
                                                     &rw->accept_hooks,
                                                     rt->nworkers > 1, lerr,
                                                     sizeof(lerr));
                if (l == NULL) {
                    snprintf(err, errlen, "frontend %s: %s", fe->name, lerr);
                    goto err;
                }
                list_add_tail(&rw->listeners, &l->link);
                runtime_bind_listener(fe, l);
                fe->listeners[runtime_slot(rt, j, k)] = l;
                fe->nlisteners++;
            }
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

int
runtime_start(struct runtime *rt, char *err, size_t errlen)
{
    /* The loops are not running yet: starting their watchers from here is
     * safe, and every worker accepts from its first iteration. */
    for (unsigned k = 0; k < rt->nworkers; k++) {
        struct runtime_worker *rw = &rt->workers[k];
        struct list *l;
        list_for_each (l, &rw->listeners)
            listener_start(rw->w.loop, container_of(l, struct listener, link));
    }
    for (size_t i = 0; i < rt->nfrontends; i++) {
        struct frontend *fe = rt->frontends[i];
        for (size_t j = 0; j < fe->cfg.nlisten; j++)
            log_info("frontend %s listening on %s (mode %s, backend %s)",
                     fe->name, runtime_listener(rt, fe, j)->addr.text,
                     config_mode_name(fe->cfg.mode), fe->backend->name);
    }
    for (unsigned k = 0; k < rt->nworkers; k++)
        if (worker_start(&rt->workers[k].w) != 0) {
            snprintf(err, errlen, "cannot start worker thread %u: %s", k,
                     strerror(errno));
            return -1;
        }
    return 0;
}

const struct listener *
runtime_listener(const struct runtime *rt, const struct frontend *fe, size_t j)
{
    if (fe->nlisteners == 0 || j >= fe->cfg.nlisten)
        return NULL;
    return fe->listeners[runtime_slot(rt, j, 0)];
}

/* The listeners' sockets are closed (by their workers): fe has none. */
static void
runtime_forget_listeners(struct runtime *rt, struct frontend *fe)
{
    for (size_t i = 0; i < fe->cfg.nlisten * rt->nworkers; i++)
        fe->listeners[i] = NULL;
    fe->nlisteners = 0;
}

/* On each worker: no more accepting; connections finish. */
static void
runtime_worker_stop(struct worker *w, void *arg)
{
    struct runtime_worker *rw = container_of(w, struct runtime_worker, w);

    (void)arg;
    ev_timer_stop(w->loop, &rw->accept_retry);
    runtime_close_listeners(rw);
    for (int i = 0; i < RUNTIME_MODES; i++)
        rw->rt->proxy_ops[i]->stop(rw->proxies[i]);
}

void
runtime_stop_listening(struct runtime *rt)
{
    PLANE_SET(rt->stopping, true);
    worker_run_all(rt->wlist, rt->nworkers, runtime_worker_stop, NULL);
    for (size_t i = 0; i < rt->nfrontends; i++)
        runtime_forget_listeners(rt, rt->frontends[i]);
}

static void
runtime_worker_close_all(struct worker *w, void *arg)
{
    struct runtime_worker *rw = container_of(w, struct runtime_worker, w);

    (void)arg;
    for (int i = 0; i < RUNTIME_MODES; i++)
        rw->rt->proxy_ops[i]->close_all(rw->proxies[i]);
}

void
runtime_close_all(struct runtime *rt)
{
    worker_run_all(rt->wlist, rt->nworkers, runtime_worker_close_all, NULL);
}

void
runtime_destroy(struct runtime *rt)
{
    if (rt == NULL)
        return;
    /* From here on only this thread runs: every loop is ours. */
    if (rt->wlist != NULL)
        worker_stop_all(rt->wlist, rt->nworkers);
    for (unsigned k = 0; rt->workers != NULL && k < rt->nworkers; k++)
        runtime_worker_deinit(&rt->workers[k]);
    ev_timer_stop(rt->loop, &rt->ready_timer);
    for (size_t i = 0; i < rt->nfrontends; i++) {
        runtime_forget_listeners(rt, rt->frontends[i]);
        frontend_unref(rt->frontends[i]);
    }
    for (size_t i = 0; i < rt->nbackends; i++)
        backend_drop(rt->backends[i]);
    runtime_carry_release(rt);
    /* Connections hold the frontends and backends: free them first. */
    for (unsigned k = 0; rt->workers != NULL && k < rt->nworkers; k++)
        runtime_worker_free(&rt->workers[k]);
    free(rt->carry);
    free(rt->workers);
    free(rt->wlist);
    free(rt->frontends);
    free(rt->backends);
    free(rt);
}

static struct backend *
runtime_find_backend(struct runtime *rt, const char *name)
{
    for (size_t i = 0; i < rt->nbackends; i++)
        if (strcmp(rt->backends[i]->name, name) == 0)
            return rt->backends[i];
    return NULL;
}

/* What every worker does at a reload's commit. */
struct runtime_commit {
    struct runtime *rt;          /* owner */
    struct frontend *const *fes; /* the new frontends, listeners filled */
    size_t nfes;                 /* entries in fes */
};

/*
 * On each worker, plane lock held: its listeners of the new frontends
 * take their connections from now on (kept sockets never stop accepting,
 * so no connection is refused), new ones start, the ones no longer
 * listened on hand over what waits in their queues before they close,
 * and idle member connections follow their members.
 */
static void
runtime_worker_commit(struct worker *w, void *arg)
{
    struct runtime_worker *rw = container_of(w, struct runtime_worker, w);
    const struct runtime_commit *c = arg;
    struct runtime *rt = c->rt;
    struct list *pos, *tmp;

    for (size_t i = 0; i < c->nfes; i++) {
        struct frontend *fe = c->fes[i];
        for (size_t j = 0; j < fe->cfg.nlisten; j++) {
            struct listener *l = fe->listeners[runtime_slot(rt, j, w->id)];
            l->mark = rt->listen_mark;
            runtime_bind_listener(fe, l);
            if (list_linked(&l->link))
                continue;
            list_add_tail(&rw->listeners, &l->link);
            if (!rw->accept_paused)
                listener_start(w->loop, l);
        }
    }
    list_for_each_safe (pos, tmp, &rw->listeners) {
        struct listener *l = container_of(pos, struct listener, link);
        if (l->mark == rt->listen_mark)
            continue;
        list_del(pos);
        listener_drain_destroy(w->loop, l);
    }
    for (size_t i = 0; i < rt->ncarry; i++)
        upstream_idle_move(&rw->up, rt->carry[i].from, rt->carry[i].to);
}

/* Whether l (a running listener) is one of the n in ls. */
static bool
runtime_listener_in(const struct listener *l, struct listener *const *ls,
                    size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ls[i] == l)
            return true;
    return false;
}

/*
 * Reload in two steps. Prepare builds every new object and binds every new
 * address (a socket per worker) without touching the running ones, so a
 * failure changes nothing; commit then has every worker move its kept
 * sockets over, and lets the old objects go.
 */
int
runtime_reload(struct runtime *rt, struct config *cfg, char *err, size_t errlen)
{
    unsigned nw = rt->nworkers;
    struct backend **bes = calloc(cfg->nbackends + 1, sizeof(*bes));
    struct frontend **fes = calloc(cfg->nfrontends + 1, sizeof(*fes));
    bool **fresh = calloc(cfg->nfrontends + 1, sizeof(*fresh));
    struct listener ***ls = calloc(cfg->nfrontends + 1, sizeof(*ls));
    struct listener **all = NULL;
    size_t nbes = 0, nfes = 0, nall = 0, added = 0, kept = 0, closed = 0;
    size_t members_before = 0, members_after = 0;
    struct runtime_commit commit;
    struct list *pos;

    rt->ncarry = 0;
    if (bes == NULL || fes == NULL || fresh == NULL || ls == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Bind new addresses first: it is the step that fails in practice, and
     * nothing running has been touched yet. */
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        const struct config_frontend *cf = &cfg->frontends[i];
        fresh[i] = calloc(cf->nlisten + 1, sizeof(**fresh));
        ls[i] = calloc(cf->nlisten * nw + 1, sizeof(**ls));
        if (fresh[i] == NULL || ls[i] == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (size_t j = 0; j < cf->nlisten; j++) {
            fresh[i][j] = runtime_find_listener(&rt->workers[0],
                                                &cf->listen[j]) == NULL;
            if (fresh[i][j] &&
                runtime_probe_address(rt, cf->name, &cf->listen[j], err,
                                      errlen) != 0)
                goto fail;
            for (unsigned k = 0; k < nw; k++) {
                struct runtime_worker *rw = &rt->workers[k];
                struct listener **l = &ls[i][runtime_slot(rt, j, k)];
                char lerr[256];
                if (!fresh[i][j]) {
                    *l = runtime_find_listener(rw, &cf->listen[j]);
                    continue;
                }
                *l = listener_create(&cf->listen[j], &rw->accept_hooks, nw > 1,
                                     lerr, sizeof(lerr));
                if (*l == NULL) {
                    snprintf(err, errlen, "frontend %s: %s", cf->name, lerr);
                    goto fail;
                }
            }
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
        nall += cf->nlisten * nw;
    }
    all = calloc(nall + 1, sizeof(*all));
    if (all == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    /* Commit: nothing below can fail. */
    nall = 0;
    for (size_t i = 0; i < rt->nbackends; i++)
        members_before += rt->backends[i]->pool.n;
    for (size_t i = 0; i < nfes; i++) {
        struct frontend *fe = fes[i];
        for (size_t j = 0; j < cfg->frontends[i].nlisten; j++) {
            for (unsigned k = 0; k < nw; k++) {
                struct listener *l = ls[i][runtime_slot(rt, j, k)];
                fe->listeners[runtime_slot(rt, j, k)] = l;
                all[nall++] = l;
            }
            fe->nlisteners += nw;
            if (fresh[i][j]) {
                added++;
                log_info("reload: frontend %s now also listens on %s", fe->name,
                         ls[i][runtime_slot(rt, j, 0)]->addr.text);
            } else {
                /* Same sockets, new owner: no connection is refused. */
                kept++;
            }
        }
    }
    list_for_each (pos, &rt->workers[0].listeners) {
        struct listener *l = container_of(pos, struct listener, link);
        if (runtime_listener_in(l, all, nall))
            continue;
        log_info("reload: %s is no longer listened on", l->addr.text);
        closed++;
    }
    rt->listen_mark++;
    commit = (struct runtime_commit){rt, fes, nfes};
    worker_run_all(rt->wlist, nw, runtime_worker_commit, &commit);
    runtime_carry_release(rt);
    for (size_t i = 0; i < rt->nfrontends; i++) {
        /* Its listeners are the new frontends' now, or closed. */
        runtime_forget_listeners(rt, rt->frontends[i]);
        frontend_unref(rt->frontends[i]);
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
    PLANE_SET(rt->max_conns, cfg->max_connections);
    for (size_t i = 0; i < nbes; i++)
        members_after += bes[i]->pool.n;
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        free(fresh[i]);
        free(ls[i]);
    }
    free(fresh);
    free(ls);
    free(all);
    log_info("reload: %zu frontends, %zu backends; listeners %zu kept, %zu "
             "added, %zu closed; members %zu -> %zu",
             nfes, nbes, kept, added, closed, members_before, members_after);
    return 0;

fail:
    for (size_t i = 0; i < nfes; i++)
        frontend_unref(fes[i]);
    for (size_t i = 0; i < nbes; i++)
        backend_drop(bes[i]);
    runtime_carry_release(rt);
    for (size_t i = 0; ls != NULL && i < cfg->nfrontends; i++) {
        for (size_t j = 0;
             ls[i] != NULL && fresh[i] != NULL && j < cfg->frontends[i].nlisten;
             j++)
            for (unsigned k = 0; fresh[i][j] && k < nw; k++)
                listener_destroy(rt->loop, ls[i][runtime_slot(rt, j, k)]);
        free(ls[i]);
        free(fresh[i]);
    }
    free(all);
    free(ls);
    free(fresh);
    free(fes);
    free(bes);
    return -1;
}
