/*
 * backend: a live [backend] section (see backend.h).
 */
#include "backend.h"

#include <assert.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "dns.h"
#include "health.h"
#include "log.h"
#include "net.h"
#include "plane.h"

void
backend_ref(struct backend *be)
{
    PLANE_ADD(be->refs, 1);
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

void
backend_drop(struct backend *be)
{
    backend_quiesce(be);
    be->owner = NULL;
    backend_unref(be);
}

void
backend_unref(struct backend *be)
{
    unsigned was = __atomic_fetch_sub(&be->refs, 1, __ATOMIC_ACQ_REL);

    assert(was > 0);
    if (was > 1)
        return;
    /* The last reference may be a worker's connection: what follows
     * touches the DNS cache and health, which are the control plane's. */
    plane_lock();
    backend_quiesce(be);
    free(be->names);
    balance_destroy(be->pool.balance);
    pool_deinit(&be->pool);
    free(be->cfg.servers);
    free(be);
    plane_unlock();
}

static void
backend_health_change(void *arg, struct member *m, bool up, const char *reason)
{
    struct backend *be = arg;

    (void)m;
    (void)up;
    (void)reason;
    /* health.c logged the transition; the picker must see it now. */
    balance_rebuild(be->pool.balance);
}

/* pool's on_remove: a member leaving the pool stops being checked. */
static void
backend_member_removed(void *arg, struct member *m)
{
    (void)arg;
    if (m->health != NULL)
        health_member_detach(m);
}

/* A growable array of addresses (control plane only). */
struct addr_set {
    struct sockaddr_storage *a; /* addresses */
    size_t n;                   /* in use */
    size_t cap;                 /* allocated */
};

static bool
addr_set_has(const struct addr_set *set, const struct sockaddr_storage *ss)
{
    for (size_t i = 0; i < set->n; i++)
        if (net_addr_equal((const struct sockaddr *)&set->a[i],
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
            if (be->names[i].server != line || e->state != DNS_CACHE_RESOLVED)
                continue;
            for (size_t j = 0; j < e->naddrs; j++) {
                struct sockaddr_storage ss = e->addrs[j];
                net_addr_set_port(&ss, s->port);
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
            log_info("backend %s: server %s now has %zu address%s", be->name,
                     s->spec, want.n, want.n == 1 ? "" : "es");
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
            health_member_attach(be->health, m, be->cfg.servers[m->server].host,
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
                 bn->be->name, e->name, e->last_error ? e->last_error : "none");
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
            log_debug("backend %s: no member; %s is %s (%s)", be->name, e->name,
                      dns_cache_result_name(r), dns_cache_state_name(e->state));
        if (w != NULL && (r == DNS_CACHE_MISS || r == DNS_CACHE_COALESCED))
            return true;
    }
    return false;
}

static void
backend_first_round(void *arg)
{
    struct backend *be = arg;

    if (be->owner != NULL && be->hooks.first_round != NULL)
        be->hooks.first_round(be->owner);
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
            net_addr_equal((const struct sockaddr *)&o->addr,
                           (const struct sockaddr *)&m->addr))
            return o;
    }
    return NULL;
}

/*
 * Builds a backend; with old (same name, from the configuration being
 * replaced) members that stay take over old's health state and counters.
 */
struct backend *
backend_create(struct ev_loop *loop, struct dns *dns, const struct config *cfg,
               const struct config_backend *cb, struct backend *old,
               const struct backend_hooks *bh, char *err, size_t errlen)
{
    struct backend *be = calloc(1, sizeof(*be));
    struct health_params hp;
    struct health_hooks hooks = {
        .change = backend_health_change,
        .first_round = backend_first_round,
        .probe_connect = bh->probe_connect,
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
    be->hooks = *bh;
    be->owner = bh->arg;
    be->loop = loop;
    be->dns = dns;
    pool_init(&be->pool, be->name, cb->slow_start);
    be->pool.nloops = bh->nloops ? bh->nloops : 1;
    be->pool.on_remove = backend_member_removed;
    be->pool.hook_arg = be;
    health_params_from_config(&hp, cb);
    be->health = health_create(loop, &hp, &hooks);
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
        snprintf(err, errlen, "backend %s: cannot set up balance %s", cb->name,
                 config_balance_name(cb->balance));
        backend_unref(be);
        return NULL;
    }
    if (backend_add_names(be, cfg) != 0) {
        snprintf(err, errlen, "backend %s: cannot set up DNS names", be->name);
        backend_unref(be);
        return NULL;
    }
    for (size_t i = 0; i < be->pool.n; i++) {
        struct member *m = be->pool.members[i];
        struct member *o = backend_find_old(old, m);
        int rc;
        if (o != NULL && o->health != NULL) {
            rc = health_member_move(be->health, o, m);
            member_take_counters(m, o);
            if (be->hooks.carry_over != NULL)
                be->hooks.carry_over(be->hooks.arg, o, m);
        } else {
            rc = health_member_attach(be->health, m,
                                      cb->servers[m->server].host,
                                      ev_now(loop));
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
