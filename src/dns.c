/*
 * dns: resolver + cache on the loop (see dns.h).
 */
#include "dns.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "list.h"
#include "log.h"
#include "plane.h"
#include <xxhash.h>
#include "resolver.h"

/* One query on its way: the resolver's callback argument. */
struct dns_query {
    struct dns *d;             /* owner */
    struct dns_cache_entry *e; /* entry the answer is for */
    const char *name;          /* e's name, while deferred */
    int family;                /* 4 or 6, while deferred */
    struct list link;          /* d->queries in flight, or d->deferred */
};

struct dns {
    struct ev_loop *loop;             /* the loop everything runs on */
    struct list queries;              /* struct dns_query in flight */
    struct list deferred;             /* asked for by workers: not sent yet */
    bool wake_deferred;               /* a worker asked for pending runs */
    struct resolver *res;             /* c-ares channel(s) */
    struct dns_cache *cache;          /* entries, waiters, listeners */
    ev_idle pending;                  /* runs dns_cache_run_pending */
    ev_timer tick;                    /* fires at the next deadline */
    ev_prepare rearm;                 /* re-aims tick before each poll */
    double tick_at;                   /* deadline tick is armed for */
    struct sockaddr_storage *scratch; /* answer conversion buffer */
    size_t scratch_cap;               /* slots in scratch */
    uint64_t rng;                     /* xorshift state for jitter */
    struct dns_name_stats **names;    /* upstream query stats, by name */
    size_t nnames;                    /* entries in names */
    struct dns_name_stats **slots;    /* open-addressing index of names */
    size_t nslots;                    /* power of two, > 2 * nnames */
};

double
dns_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

size_t
dns_families(const struct config *cfg, int out[2])
{
    switch (cfg->family) {
    case FAMILY_IPV6:
        out[0] = 6;
        return 1;
    case FAMILY_ANY:
        out[0] = 4;
        out[1] = 6;
        return 2;
    default:
        out[0] = 4;
        return 1;
    }
}

struct dns_cache *
dns_cache_of(struct dns *d)
{
    return d->cache;
}

static enum dns_cache_status
dns_map_status(enum resolver_status s)
{
    switch (s) {
    case RESOLVER_OK:
    case RESOLVER_EMPTY:
        /* An empty answer is a successful query that the cache treats as
         * a failure (no address to use). */
        return DNS_CACHE_Q_OK;
    case RESOLVER_NXDOMAIN:
        return DNS_CACHE_Q_NXDOMAIN;
    case RESOLVER_SERVFAIL:
        return DNS_CACHE_Q_SERVFAIL;
    case RESOLVER_TIMEOUT:
        return DNS_CACHE_Q_TIMEOUT;
    default:
        return DNS_CACHE_Q_ERROR;
    }
}

static size_t
dns_name_slot(const struct dns *d, const char *name)
{
    return (size_t)XXH3_64bits(name, strlen(name)) & (d->nslots - 1);
}

/* Doubles the index (and the list); -1 on ENOMEM. */
static int
dns_names_grow(struct dns *d)
{
    size_t nslots = d->nslots ? d->nslots * 2 : 64;
    struct dns_name_stats **slots = calloc(nslots, sizeof(*slots));
    struct dns_name_stats **names = realloc(d->names,
                                            nslots / 2 * sizeof(*names));

    if (slots == NULL || names == NULL) {
        free(slots);
        if (names != NULL)
            d->names = names;
        return -1;
    }
    d->names = names;
    free(d->slots);
    d->slots = slots;
    d->nslots = nslots;
    for (size_t i = 0; i < d->nnames; i++) {
        size_t j = dns_name_slot(d, d->names[i]->name);
        while (d->slots[j] != NULL)
            j = (j + 1) & (nslots - 1);
        d->slots[j] = d->names[i];
    }
    return 0;
}

struct dns_name_stats *
dns_name_stats_get(struct dns *d, const char *name)
{
    struct dns_name_stats *ns;
    size_t j;

    if (2 * (d->nnames + 1) > d->nslots && dns_names_grow(d) != 0)
        return NULL;
    for (j = dns_name_slot(d, name); d->slots[j] != NULL;
         j = (j + 1) & (d->nslots - 1))
        if (strcmp(d->slots[j]->name, name) == 0)
            return d->slots[j];
    ns = calloc(1, sizeof(*ns));
    if (ns == NULL)
        return NULL;
    snprintf(ns->name, sizeof(ns->name), "%s", name);
    histogram_init(&ns->hist, &histogram_dns);
    d->slots[j] = ns;
    d->names[d->nnames++] = ns;
    return ns;
}

struct dns_name_stats *const *
dns_name_stats_all(const struct dns *d, size_t *n)
{
    *n = d->nnames;
    return d->names;
}

static void
dns_count_query(struct dns *d, const struct resolver_result *r,
                enum dns_cache_status st)
{
    struct dns_name_stats *ns;

    /* docs/dns.md: ferry_dns_queries_total counts queries sent upstream only
     * (not IP literals or hosts-file answers). */
    if (!r->sent || (ns = dns_name_stats_get(d, r->name)) == NULL)
        return;
    ns->upstream[st]++;
    histogram_observe(&ns->hist, r->duration);
}

static void
dns_resolved(void *arg, const struct resolver_result *r)
{
    struct dns_query *q = arg;
    struct dns *d = q->d;
    struct dns_cache_entry *e = q->e;
    enum dns_cache_status st = dns_map_status(r->status);
    size_t n = 0;

    list_del(&q->link);
    free(q);
    dns_count_query(d, r, st);

    if (r->naddrs > d->scratch_cap) {
        struct sockaddr_storage *s = realloc(d->scratch,
                                             r->naddrs * sizeof(*s));
        if (s != NULL) {
            d->scratch = s;
            d->scratch_cap = r->naddrs;
        }
    }
    for (size_t i = 0; i < r->naddrs && i < d->scratch_cap; i++) {
        memset(&d->scratch[n], 0, sizeof(d->scratch[n]));
        resolver_addr_to_sockaddr(&r->addrs[i], 0, &d->scratch[n]);
        n++;
    }
    if (r->status != RESOLVER_OK)
        log_debug("dns: %s (%s): %s", r->name,
                  r->family == AF_INET6 ? "AAAA" : "A",
                  resolver_status_name(r->status));
    dns_cache_complete(d->cache, e, st, d->scratch, n, (long)r->ttl, dns_now());
}

static void
dns_send(struct dns *d, struct dns_query *q)
{
    if (resolver_resolve(d->res, q->name, q->family == 6 ? AF_INET6 : AF_INET,
                         dns_resolved, q) != NULL) {
        list_add(&d->queries, &q->link);
        return;
    }
    /* Invalid name: the cache still needs its one completion. */
    dns_cache_complete(d->cache, q->e, DNS_CACHE_Q_ERROR, NULL, 0, 0,
                       dns_now());
    free(q);
}

/*
 * The cache wants a query. A worker's lookup (plane lock held) may be the
 * one that asks: c-ares and its watchers are the control thread's, so the
 * query waits for the control loop's next pass (dns_rearm_cb), which the
 * kick brings at once. The entry is already in flight for the cache, so
 * every other lookup joins it.
 */
static void
dns_start_query(void *ctx, const char *name, int family,
                struct dns_cache_entry *e)
{
    struct dns *d = ctx;
    struct dns_query *q = malloc(sizeof(*q));

    if (q == NULL) {
        dns_cache_complete(d->cache, e, DNS_CACHE_Q_ERROR, NULL, 0, 0,
                           dns_now());
        return;
    }
    q->d = d;
    q->e = e;
    q->name = name;
    q->family = family;
    list_init(&q->link);
    if (plane_on_control()) {
        dns_send(d, q);
        return;
    }
    list_add_tail(&d->deferred, &q->link);
    plane_kick();
}

static void
dns_wake_pending(void *ctx)
{
    struct dns *d = ctx;

    if (plane_on_control()) {
        ev_idle_start(d->loop, &d->pending);
        return;
    }
    d->wake_deferred = true;
    plane_kick();
}

static double
dns_random(void *ctx)
{
    struct dns *d = ctx;

    /* xorshift64*: jitter needs spread, not cryptographic strength. */
    d->rng ^= d->rng >> 12;
    d->rng ^= d->rng << 25;
    d->rng ^= d->rng >> 27;
    return (double)((d->rng * 2685821657736338717ULL) >> 11) /
           9007199254740992.0;
}

static void
dns_pending_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    struct dns *d = w->data;

    (void)revents;
    if (!dns_cache_run_pending(d->cache, dns_now()))
        ev_idle_stop(loop, w);
}

static void
dns_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dns *d = w->data;

    (void)loop;
    (void)revents;
    d->tick_at = INFINITY;
    dns_cache_tick(d->cache, dns_now());
}

/* Before every poll: aim the tick timer at the cache's next deadline. */
static void
dns_rearm_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct dns *d = w->data;
    struct list *l;
    double now, at;

    (void)revents;
    /* What workers asked for since the last pass. */
    while ((l = list_first(&d->deferred)) != NULL) {
        list_del(l);
        dns_send(d, list_entry(l, struct dns_query, link));
    }
    if (d->wake_deferred) {
        d->wake_deferred = false;
        ev_idle_start(loop, &d->pending);
    }
    now = dns_now();
    at = dns_cache_next_deadline(d->cache, now);
    if (at == d->tick_at)
        return;
    ev_timer_stop(loop, &d->tick);
    d->tick_at = at;
    if (isinf(at))
        return;
    ev_timer_set(&d->tick, at > now ? at - now : 0, 0);
    ev_timer_start(loop, &d->tick);
}

static void
dns_cache_config_from(struct dns_cache_config *dc, const struct config *cfg)
{
    dc->min_ttl = cfg->min_ttl;
    dc->max_ttl = cfg->max_ttl;
    dc->negative_ttl = cfg->negative_ttl;
    dc->stale_ttl = cfg->stale_ttl;
    dc->jitter = cfg->jitter;
    dc->prefetch = cfg->prefetch;
}

static void
dns_options_from(struct resolver_options *o, struct sockaddr_storage *ns,
                 const struct config *cfg)
{
    for (size_t i = 0; i < cfg->nnameservers; i++)
        ns[i] = cfg->nameservers[i].addr.ss;
    o->nameservers = ns;
    o->nnameservers = cfg->nnameservers;
    o->hosts_file = cfg->hosts_file;
    o->timeout = cfg->resolver_timeout;
    o->attempts = cfg->resolver_attempts;
}

struct dns *
dns_create(struct ev_loop *loop, const struct config *cfg, char *err,
           size_t errlen)
{
    struct dns_cache_ops ops = {
        .start_query = dns_start_query,
        .wake_pending = dns_wake_pending,
        .random = dns_random,
    };
    struct dns_cache_config dc;
    struct resolver_options ro;
    struct sockaddr_storage *ns = NULL;
    struct dns *d;

    d = calloc(1, sizeof(*d));
    if (d == NULL)
        goto oom;
    d->loop = loop;
    list_init(&d->queries);
    list_init(&d->deferred);
    d->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)(uintptr_t)d ^
             0x9e3779b97f4a7c15ULL;
    d->tick_at = INFINITY;
    ev_idle_init(&d->pending, dns_pending_cb);
    ev_timer_init(&d->tick, dns_tick_cb, 0, 0);
    ev_prepare_init(&d->rearm, dns_rearm_cb);
    d->pending.data = d->tick.data = d->rearm.data = d;

    ns = calloc(cfg->nnameservers + 1, sizeof(*ns));
    if (ns == NULL)
        goto oom;
    dns_options_from(&ro, ns, cfg);
    d->res = resolver_init(loop, &ro);
    free(ns);
    if (d->res == NULL) {
        snprintf(err, errlen, "cannot set up the DNS resolver (see above)");
        free(d);
        return NULL;
    }
    dns_cache_config_from(&dc, cfg);
    d->cache = dns_cache_create(&dc, &ops, d);
    if (d->cache == NULL) {
        resolver_destroy(d->res);
        goto oom;
    }
    ev_prepare_start(loop, &d->rearm);
    return d;
oom:
    snprintf(err, errlen, "out of memory");
    free(d);
    return NULL;
}

int
dns_reconfigure(struct dns *d, const struct config *cfg, char *err,
                size_t errlen)
{
    struct sockaddr_storage *ns = calloc(cfg->nnameservers + 1, sizeof(*ns));
    struct dns_cache_config dc;
    struct resolver_options ro;
    int rc;

    if (ns == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    dns_options_from(&ro, ns, cfg);
    rc = resolver_reconfigure(d->res, &ro);
    free(ns);
    if (rc != 0) {
        snprintf(err, errlen, "cannot apply the [resolver] settings");
        return -1;
    }
    dns_cache_config_from(&dc, cfg);
    dns_cache_set_config(d->cache, &dc);
    return 0;
}

void
dns_destroy(struct dns *d)
{
    if (d == NULL)
        return;
    ev_idle_stop(d->loop, &d->pending);
    ev_timer_stop(d->loop, &d->tick);
    ev_prepare_stop(d->loop, &d->rearm);
    /* The resolver first: its pending requests point at cache entries. */
    resolver_destroy(d->res);
    dns_cache_destroy(d->cache);
    list_splice(&d->queries, &d->deferred);
    /* Queries still in flight will never complete: each holds the in-flight
     * reference of an entry the cache has just marked removed, which
     * completing drops without touching the (freed) cache. */
    while (!list_empty(&d->queries)) {
        struct dns_query *q = list_entry(d->queries.next, struct dns_query,
                                         link);
        list_del(&q->link);
        dns_cache_complete(NULL, q->e, DNS_CACHE_Q_ERROR, NULL, 0, 0, 0);
        free(q);
    }
    free(d->scratch);
    for (size_t i = 0; i < d->nnames; i++)
        free(d->names[i]);
    free(d->names);
    free(d->slots);
    free(d);
}
