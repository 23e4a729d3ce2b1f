/*
 * runtime: live frontends/backends built from a config (see runtime.h).
 */
#include "runtime.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "conn.h"
#include "dns.h"
#include "health.h"
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
        /* Under sustained load this repeats at every accept. */
        log_limited(&rt->maxconn_log, ev_now(rt->loop), LOG_LEVEL_WARN,
                    "max_connections (%u) reached; accepting paused",
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
backend_release(struct backend *be, struct member *m,
                enum balance_outcome outcome, double now)
{
    /* The passive window may take the member out, which rebuilds the
     * balancer: keep m alive across both steps. */
    member_ref(m);
    balance_release(be->pool.balance, m, outcome);
    health_passive_outcome(m, outcome, now);
    member_unref(m);
}

/* Stops everything that would change the backend: DNS and health. */
static void
backend_quiesce(struct backend *be)
{
    for (size_t i = 0; i < be->nnames; i++) {
        dns_cache_unlisten(&be->names[i].lis);
        dns_cache_cancel(&be->names[i].startw);
    }
    health_destroy(be->health);
    be->health = NULL;
}

/* The runtime lets go: connections still on it finish, nothing else. */
static void
backend_drop(struct backend *be)
{
    backend_quiesce(be);
    be->rt = NULL;
    backend_unref(be);
}

void
backend_unref(struct backend *be)
{
    if (--be->refs > 0)
        return;
    backend_quiesce(be);
    free(be->names);
    balance_destroy(be->pool.balance);
    pool_deinit(&be->pool);
    free(be->cfg.servers);
    free(be);
}

static void
backend_health_change(void *arg, struct member *m, bool up,
                      const char *reason)
{
    struct backend *be = arg;

    (void)m;
    (void)up;
    (void)reason;
    /* health.c logged the transition; the picker must see it now. */
    balance_rebuild(be->pool.balance);
}

static void runtime_phase_check(struct runtime *rt);

/* A growable array of addresses (control plane only). */
struct addr_set {
    struct sockaddr_storage *a;         /* addresses */
    size_t n;                           /* in use */
    size_t cap;                         /* allocated */
};

static bool
addr_set_has(const struct addr_set *set, const struct sockaddr_storage *ss)
{
    for (size_t i = 0; i < set->n; i++)
        if (addr_equal((const struct sockaddr *)&set->a[i],
                       (const struct sockaddr *)ss))
            return true;
    return false;
}

static int
addr_set_add(struct addr_set *set, const struct sockaddr_storage *ss)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 16;
        struct sockaddr_storage *a = realloc(set->a, cap * sizeof(*a));
        if (a == NULL)
            return -1;
        set->a = a;
        set->cap = cap;
    }
    set->a[set->n++] = *ss;
    return 0;
}

/*
 * Members of each DNS server line follow the union of its names' usable
 * answers (one entry per family). An address (with port) that a literal
 * line or an earlier line already serves is merged into that member
 * rather than doubled, so it never gets twice the share; lines are
 * re-derived in file order, so when the earlier line drops it a later line
 * takes it over.
 */
static void
backend_sync(struct backend *be)
{
    struct addr_set claimed = {0}, want = {0};
    size_t before = be->pool.n;
    bool changed = false;

    for (size_t i = 0; i < be->pool.n; i++) {
        struct member *m = be->pool.members[i];
        if (be->cfg.servers[m->server].is_literal &&
            addr_set_add(&claimed, &m->addr) != 0)
            goto oom;
    }
    for (size_t line = 0; line < be->cfg.nservers; line++) {
        const struct config_server *s = &be->cfg.servers[line];
        size_t merged = 0;
        int changes;

        if (s->is_literal)
            continue;
        want.n = 0;
        for (size_t i = 0; i < be->nnames; i++) {
            struct dns_cache_entry *e = be->names[i].entry;
            if (be->names[i].server != line ||
                e->state != DNS_CACHE_RESOLVED)
                continue;
            for (size_t j = 0; j < e->naddrs; j++) {
                struct sockaddr_storage ss = e->addrs[j];
                addr_set_port(&ss, s->port);
                if (addr_set_has(&claimed, &ss)) {
                    merged++;
                    continue;
                }
                if (addr_set_add(&want, &ss) != 0)
                    goto oom;
            }
        }
        changes = pool_apply_answer(&be->pool, line, s->spec, want.a, want.n,
                                    s->port, s->weight, s->backup);
        if (changes < 0)
            goto oom;
        for (size_t j = 0; j < want.n; j++)
            if (addr_set_add(&claimed, &want.a[j]) != 0)
                goto oom;
        if (changes == 0)
            continue;
        changed = true;
        if (merged > 0)
            log_info("backend %s: server %s now has %zu address%s (%zu more "
                     "served by another server line)",
                     be->name, s->spec, want.n, want.n == 1 ? "" : "es",
                     merged);
        else
            log_info("backend %s: server %s now has %zu address%s",
                     be->name, s->spec, want.n, want.n == 1 ? "" : "es");
    }
    free(claimed.a);
    free(want.a);
    if (!changed)
        return;
    log_info("backend %s: pool %zu -> %zu members", be->name, before,
             be->pool.n);
    if (!be->live)
        return; /* backend_create attaches (or carries over) health */
    /* New members are checked at once and get traffic after a pass. */
    for (size_t i = 0; i < be->pool.n; i++) {
        struct member *m = be->pool.members[i];
        if (m->health == NULL &&
            health_member_attach(be->health, m,
                                 be->cfg.servers[m->server].host,
                                 ev_now(be->loop)) != 0)
            log_error("backend %s: out of memory attaching health checks",
                      be->name);
    }
    balance_rebuild(be->pool.balance);
    return;
oom:
    free(claimed.a);
    free(want.a);
    log_error("backend %s: out of memory applying DNS answers; the pool "
              "keeps its members",
              be->name);
}

static void
backend_name_event(struct dns_cache_listener *l, enum dns_cache_event ev,
                   const struct dns_cache_entry *e)
{
    struct backend_name *bn = l->arg;

    if (ev == DNS_CACHE_EV_REFRESHED)
        return;
    if (ev == DNS_CACHE_EV_EXPIRED)
        log_warn("backend %s: no usable answer for %s any more (last "
                 "error: %s); its members are removed",
                 bn->be->name, e->name,
                 e->last_error ? e->last_error : "none");
    backend_sync(bn->be);
}

static int
backend_add_names(struct backend *be, const struct config *cfg)
{
    struct dns_cache *cache = dns_cache_of(be->dns);
    int fams[2];
    size_t nf = dns_families(cfg, fams), n = 0;

    for (size_t i = 0; i < be->cfg.nservers; i++)
        if (!be->cfg.servers[i].is_literal)
            n += nf;
    if (n == 0)
        return 0;
    be->names = calloc(n, sizeof(*be->names));
    if (be->names == NULL)
        return -1;
    for (size_t i = 0; i < be->cfg.nservers; i++) {
        const struct config_server *s = &be->cfg.servers[i];
        if (s->is_literal)
            continue;
        for (size_t f = 0; f < nf; f++) {
            struct backend_name *bn = &be->names[be->nnames];
            bn->be = be;
            bn->server = i;
            bn->entry = dns_cache_get(cache, s->host, fams[f]);
            if (bn->entry == NULL)
                return -1;
            dns_cache_waiter_init(&bn->startw, NULL, bn);
            be->nnames++;
            dns_cache_listen(cache, bn->entry, &bn->lis, backend_name_event,
                             bn);
        }
    }
    /* Names already known (reload, or another backend) fill the pool now,
     * so the swap never shows an empty pool; the listeners' first
     * deliveries then find nothing to change. */
    backend_sync(be);
    return 0;
}

bool
backend_first_checks_pending(const struct backend *be)
{
    for (size_t i = 0; i < be->pool.n; i++) {
        const struct member *m = be->pool.members[i];
        if (m->health != NULL && !health_member_counters(m)->has_checked)
            return true;
    }
    return false;
}

/* How often a request waiting for new members' first checks picks again. */
#define BACKEND_POOL_POLL 0.02

bool
backend_wait_pool(struct backend *be, struct dns_cache_waiter *w,
                  double started, double now, double *retry_at)
{
    double deadline = started + be->cfg.timeout_connect;
    bool dns;

    if (now >= deadline)
        return false;
    dns = backend_dns_lookup(be, w);
    if (!dns && !backend_first_checks_pending(be))
        return false;
    *retry_at = dns || now + BACKEND_POOL_POLL > deadline
                    ? deadline
                    : now + BACKEND_POOL_POLL;
    return true;
}

bool
backend_dns_lookup(struct backend *be, struct dns_cache_waiter *w)
{
    struct dns_cache *cache;
    double now;

    if (be->nnames == 0)
        return false;
    cache = dns_cache_of(be->dns);
    now = dns_now();
    for (size_t i = 0; i < be->nnames; i++) {
        struct dns_cache_entry *e = be->names[i].entry;
        /* The entry's state is aged lazily: only a lookup tells. */
        enum dns_cache_result r = dns_cache_lookup_entry(cache, e, now, w);
        if (w != NULL)
            log_debug("backend %s: no member; %s is %s (%s)", be->name,
                      e->name, dns_cache_result_name(r),
                      dns_cache_state_name(e->state));
        if (w != NULL && (r == DNS_CACHE_MISS || r == DNS_CACHE_COALESCED))
            return true;
    }
    return false;
}

static void
backend_first_round(void *arg)
{
    struct backend *be = arg;

    if (be->rt != NULL)
        runtime_phase_check(be->rt);
}

/* A member of old with the same server line (as written) and address. */
static struct member *
backend_find_old(const struct backend *old, const struct member *m)
{
    if (old == NULL)
        return NULL;
    for (size_t i = 0; i < old->pool.n; i++) {
        struct member *o = old->pool.members[i];
        if (strcmp(o->server_spec, m->server_spec) == 0 &&
            addr_equal((const struct sockaddr *)&o->addr,
                       (const struct sockaddr *)&m->addr))
            return o;
    }
    return NULL;
}

/*
 * Builds a backend; with old (same name, from the configuration being
 * replaced) members that stay take over old's health state and counters.
 */
static struct backend *
backend_create(struct runtime *rt, const struct config *cfg,
               const struct config_backend *cb, struct backend *old,
               char *err, size_t errlen)
{
    struct backend *be = calloc(1, sizeof(*be));
    struct health_params hp;
    struct health_hooks hooks = {
        .change = backend_health_change,
        .first_round = backend_first_round,
        .arg = be,
    };

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
    be->rt = rt;
    be->loop = rt->loop;
    be->dns = rt->dns;
    pool_init(&be->pool, be->name, cb->slow_start);
    health_params_from_config(&hp, cb);
    be->health = health_create(rt->loop, &hp, &hooks);
    if (be->health == NULL)
        goto oom;
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
    }
    /* The balancer exists before the first check result can arrive. */
    be->pool.balance = balance_create(cb->balance, &be->pool);
    if (be->pool.balance == NULL) {
        snprintf(err, errlen, "backend %s: cannot set up balance %s",
                 cb->name, config_balance_name(cb->balance));
        backend_unref(be);
        return NULL;
    }
    if (backend_add_names(be, cfg) != 0) {
        snprintf(err, errlen, "backend %s: cannot set up DNS names",
                 be->name);
        backend_unref(be);
        return NULL;
    }
    for (size_t i = 0; i < be->pool.n; i++) {
        struct member *m = be->pool.members[i];
        struct member *o = backend_find_old(old, m);
        int rc;
        if (o != NULL && o->health != NULL) {
            rc = health_member_move(be->health, o, m);
            m->stats = o->stats;
            m->resp_hist = o->resp_hist;
            proxy_http_move_idle(o, m);
        } else {
            rc = health_member_attach(be->health, m,
                                      cb->servers[m->server].host,
                                      ev_now(rt->loop));
        }
        if (rc != 0) {
            snprintf(err, errlen, "out of memory");
            backend_unref(be);
            return NULL;
        }
    }
    be->live = true;
    balance_rebuild(be->pool.balance);
    return be;
oom:
    snprintf(err, errlen, "out of memory");
    if (be != NULL) {
        health_destroy(be->health);
        pool_deinit(&be->pool);
        free(be->cfg.servers);
        free(be);
    }
    return NULL;
}

void
frontend_ref(struct frontend *fe)
{
    fe->refs++;
}

void
frontend_unref(struct frontend *fe)
{
    if (--fe->refs > 0)
        return;
    backend_unref(fe->backend);
    tls_ctx_free(fe->tls);
    free(fe->listeners);
    free(fe);
}

/*
 * A frontend without listeners; it holds a reference on its backend. TLS
 * files are read here, so a reload picks up renewed certificates.
 */
static struct frontend *
frontend_create(struct runtime *rt, const struct config_frontend *cf,
                struct backend *be, char *err, size_t errlen)
{
    struct frontend *fe = calloc(1, sizeof(*fe));

    if (fe == NULL || (fe->listeners = calloc(cf->nlisten + 1,
                                              sizeof(*fe->listeners))) ==
                          NULL) {
        free(fe);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (cf->tls_cert != NULL) {
        char terr[384];
        fe->tls = tls_ctx_create(cf->tls_cert, cf->tls_key, terr,
                                 sizeof(terr));
        if (fe->tls == NULL) {
            snprintf(err, errlen, "frontend %s: %s", cf->name, terr);
            free(fe->listeners);
            free(fe);
            return NULL;
        }
    }
    snprintf(fe->name, sizeof(fe->name), "%s", cf->name);
    fe->cfg = *cf;
    /* The config is freed on reload while connections may still use this
     * frontend: keep nothing that points into it. */
    fe->cfg.listen = NULL;
    fe->cfg.tls_cert = fe->cfg.tls_key = NULL;
    fe->rt = rt;
    fe->refs = 1;
    fe->backend = be;
    backend_ref(be);
    return fe;
}

/* The runtime lets go of fe: its listeners close, its connections go on. */
static void
frontend_drop(struct runtime *rt, struct frontend *fe)
{
    for (size_t j = 0; j < fe->nlisteners; j++)
        if (fe->listeners[j] != NULL)
            listener_destroy(rt->loop, fe->listeners[j]);
    fe->nlisteners = 0;
    fe->rt = NULL;
    frontend_unref(fe);
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

    rt->backends = calloc(cfg->nbackends + 1, sizeof(*rt->backends));
    rt->frontends = calloc(cfg->nfrontends + 1, sizeof(*rt->frontends));
    if (rt->backends == NULL || rt->frontends == NULL)
        goto oom;
    for (size_t i = 0; i < cfg->nbackends; i++) {
        struct backend *be = backend_create(rt, cfg, &cfg->backends[i], NULL,
                                            err, errlen);
        if (be == NULL)
            goto err;
        rt->backends[rt->nbackends++] = be;
    }
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        const struct config_frontend *cf = &cfg->frontends[i];
        struct frontend *fe =
            frontend_create(rt, cf, rt->backends[cf->backend], err, errlen);
        if (fe == NULL)
            goto err;
        rt->frontends[rt->nfrontends++] = fe;
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

enum {
    RUNTIME_PHASE_NONE,                 /* not preparing */
    RUNTIME_PHASE_DNS,                  /* first resolution of every name */
    RUNTIME_PHASE_HEALTH,               /* first round of health checks */
    RUNTIME_PHASE_READY,                /* ready_cb called */
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
    struct runtime *rt = bn->be->rt;

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
    ev_timer_init(&rt->ready_timer, runtime_ready_timeout_cb, longest + 0.5,
                  0);
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
    ev_timer_stop(rt->loop, &rt->ready_timer);
    for (size_t i = 0; i < rt->nfrontends; i++)
        frontend_drop(rt, rt->frontends[i]);
    for (size_t i = 0; i < rt->nbackends; i++)
        backend_drop(rt->backends[i]);
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
runtime_reload(struct runtime *rt, struct config *cfg, char *err,
               size_t errlen)
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
            ls[i][j] = listener_create(rt->loop, &cf->listen[j], NULL, lerr,
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
        bes[i] = backend_create(rt, cfg, &cfg->backends[i], old, err, errlen);
        if (bes[i] == NULL)
            goto fail;
        nbes++;
    }
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        const struct config_frontend *cf = &cfg->frontends[i];
        struct frontend *fe =
            frontend_create(rt, cf, bes[cf->backend], err, errlen);
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
            l->fe = fe;
            if (fresh[i][j]) {
                added++;
                if (!rt->accept_paused && !rt->stopping)
                    listener_start(rt->loop, l);
                log_info("reload: frontend %s now also listens on %s",
                         fe->name, l->addr.text);
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
        fes[i]->rt = NULL;
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
