/*
 * dns_cache: the DNS cache state machine; see dns_cache.h for the diagram,
 * the deferred-wakeup rules and who owns what.
 *
 * The table is open addressing with linear probing and backward-shift
 * deletion (no tombstones), load <= 1/2, slots carrying the hash so a probe
 * touches an entry only on a likely match: a hit is a strlen, one XXH3 and
 * one strcmp.
 */
#include "dns_cache.h"

#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
/* Inlined: a hit hashes a short name, where a library call costs more
 * than the hash itself. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "config.h" /* CONFIG_DEFAULT_*: defaults live with the keys */

/* One table slot; e == NULL means empty. */
struct dns_cache_slot {
    uint64_t hash;             /* copy of e->hash */
    struct dns_cache_entry *e; /* entry, or NULL */
};

struct dns_cache {
    struct dns_cache_config cfg;          /* current rules */
    struct dns_cache_ops ops;             /* resolver glue */
    void *ctx;                            /* passed to every op */
    struct dns_cache_slot *slots;         /* table, power-of-two size */
    size_t mask;                          /* slots - 1 */
    size_t n;                             /* entries in the table */
    struct dns_cache_entry *pending_head; /* FIFO for run_pending */
    struct dns_cache_entry *pending_tail; /* its last element */
    bool deadline_dirty;                  /* `deadline` must be recomputed */
    double deadline;                      /* cached next_deadline */
    uint64_t lookups[DNS_CACHE_NRESULTS]; /* ferry_dns_lookups_total */
    struct sockaddr_storage *scratch;     /* normalising answers */
    size_t scratch_cap;                   /* slots in scratch */
};

#define TABLE_MIN 16

static const char *const result_names[DNS_CACHE_NRESULTS] = {
    "hit", "stale", "miss", "coalesced", "negative",
};
static const char *const status_names[DNS_CACHE_Q_NSTATUS] = {
    "ok", "nxdomain", "servfail", "timeout", "error",
};
static const char *const state_names[] = {
    "idle",
    "in_progress",
    "resolved",
    "failed",
};

/* ---- entries ------------------------------------------------------------ */

static void
entry_unref(struct dns_cache_entry *e)
{
    if (--e->refs > 0)
        return;
    free(e->addrs);
    free(e);
}

static uint64_t
name_hash(const char *name, size_t len, int family)
{
    return XXH3_64bits_withSeed(name, len, (XXH64_hash_t)family);
}

static struct dns_cache_entry *
table_find(const struct dns_cache *c, const char *name, int family,
           uint64_t hash)
{
    size_t i = hash & c->mask;

    for (;;) {
        struct dns_cache_entry *e = c->slots[i].e;
        if (e == NULL)
            return NULL;
        if (c->slots[i].hash == hash && e->family == family &&
            strcmp(e->name, name) == 0)
            return e;
        i = (i + 1) & c->mask;
    }
}

static void
table_place(struct dns_cache_slot *slots, size_t mask,
            struct dns_cache_entry *e)
{
    size_t i = e->hash & mask;

    while (slots[i].e != NULL)
        i = (i + 1) & mask;
    slots[i].hash = e->hash;
    slots[i].e = e;
}

static int
table_grow(struct dns_cache *c)
{
    size_t cap = (c->mask + 1) * 2;
    struct dns_cache_slot *slots = calloc(cap, sizeof(*slots));

    if (slots == NULL)
        return -1;
    for (size_t i = 0; i <= c->mask; i++)
        if (c->slots[i].e != NULL)
            table_place(slots, cap - 1, c->slots[i].e);
    free(c->slots);
    c->slots = slots;
    c->mask = cap - 1;
    return 0;
}

/* Backward-shift deletion keeps every probe chain unbroken. */
static void
table_delete(struct dns_cache *c, const struct dns_cache_entry *e)
{
    size_t i = e->hash & c->mask;
    size_t j;

    while (c->slots[i].e != e)
        i = (i + 1) & c->mask;
    j = i;
    for (;;) {
        size_t home;

        j = (j + 1) & c->mask;
        if (c->slots[j].e == NULL)
            break;
        home = c->slots[j].hash & c->mask;
        /* Element j may fill hole i unless its home lies in (i, j]. */
        if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
            continue;
        c->slots[i] = c->slots[j];
        i = j;
    }
    c->slots[i].e = NULL;
}

/* Queues e for run_pending if it has someone to tell. */
static void
queue_pending(struct dns_cache *c, struct dns_cache_entry *e)
{
    bool was_empty;

    if (e->pending)
        return;
    if (list_empty(&e->waiters) && list_empty(&e->listeners))
        return;
    e->pending = true;
    e->refs++;
    e->pending_next = NULL;
    was_empty = c->pending_head == NULL;
    if (was_empty)
        c->pending_head = e;
    else
        c->pending_tail->pending_next = e;
    c->pending_tail = e;
    if (was_empty && c->ops.wake_pending != NULL)
        c->ops.wake_pending(c->ctx);
}

/* Applies the moves that only depend on time. */
static void
entry_age(struct dns_cache *c, struct dns_cache_entry *e, double now)
{
    if (e->state == DNS_CACHE_RESOLVED && now >= e->stale_until) {
        e->state = e->inflight ? DNS_CACHE_IN_PROGRESS : DNS_CACHE_IDLE;
        e->naddrs = 0;
        c->deadline_dirty = true;
        queue_pending(c, e); /* listeners: EXPIRED */
    } else if (e->state == DNS_CACHE_FAILED && now >= e->neg_until) {
        e->state = e->inflight ? DNS_CACHE_IN_PROGRESS : DNS_CACHE_IDLE;
        c->deadline_dirty = true;
    }
}

/* Callers park their waiter first: the completion may come before this
 * returns. */
static void
start_query(struct dns_cache *c, struct dns_cache_entry *e, double now)
{
    e->inflight = true;
    e->query_started = now;
    e->refs++;
    if (e->state == DNS_CACHE_IDLE)
        e->state = DNS_CACHE_IN_PROGRESS;
    c->deadline_dirty = true;
    c->ops.start_query(c->ctx, e->name, e->family, e);
}

static double
jitter_factor(struct dns_cache *c)
{
    double j = c->cfg.jitter;
    double r = 0.5;

    if (!(j > 0))
        return 1.0;
    if (j > 1)
        j = 1;
    if (c->ops.random != NULL)
        r = c->ops.random(c->ctx);
    if (!(r >= 0))
        r = 0;
    if (r >= 1)
        r = nextafter(1.0, 0.0);
    return 1.0 - j + 2.0 * j * r;
}

static double
stored_ttl(struct dns_cache *c, long ttl)
{
    double t = ttl < 0 ? 0.0 : (double)ttl;

    if (t < c->cfg.min_ttl)
        t = c->cfg.min_ttl;
    if (t > c->cfg.max_ttl)
        t = c->cfg.max_ttl;
    t *= jitter_factor(c);
    return t < DNS_CACHE_FLOOR ? DNS_CACHE_FLOOR : t;
}

/* How long the k-th consecutive failure is cached (k >= 1). */
static double
backoff_window(struct dns_cache *c, unsigned k)
{
    double base = c->cfg.negative_ttl;
    double cap, w;

    if (!(base > DNS_CACHE_FLOOR))
        base = DNS_CACHE_FLOOR;
    cap = base * DNS_CACHE_BACKOFF_MULT;
    if (cap > DNS_CACHE_BACKOFF_CAP)
        cap = DNS_CACHE_BACKOFF_CAP;
    if (cap < base)
        cap = base;
    w = base;
    for (unsigned i = 1; i < k && w < cap; i++)
        w *= 2;
    if (w > cap)
        w = cap;
    w *= jitter_factor(c);
    return w < DNS_CACHE_FLOOR ? DNS_CACHE_FLOOR : w;
}

/*
 * prefetch is capped at half the TTL so a refresh never immediately
 * follows its own answer (prefetch = 1 would be a query loop).
 */
static void
entry_set_times(struct dns_cache *c, struct dns_cache_entry *e)
{
    double p = c->cfg.prefetch > 0.5 ? 0.5 : c->cfg.prefetch;
    double stale = c->cfg.stale_ttl > 0 ? c->cfg.stale_ttl : 0;

    e->stale_until = e->expires + stale;
    e->prefetch_at = p > 0 ? e->expires - p * e->ttl : e->expires;
}

/* ---- life cycle --------------------------------------------------------- */

void
dns_cache_config_default(struct dns_cache_config *cfg)
{
    cfg->min_ttl = CONFIG_DEFAULT_MIN_TTL;
    cfg->max_ttl = CONFIG_DEFAULT_MAX_TTL;
    cfg->negative_ttl = CONFIG_DEFAULT_NEGATIVE_TTL;
    cfg->stale_ttl = CONFIG_DEFAULT_STALE_TTL;
    cfg->jitter = CONFIG_DEFAULT_JITTER;
    cfg->prefetch = CONFIG_DEFAULT_PREFETCH;
}

struct dns_cache *
dns_cache_create(const struct dns_cache_config *cfg,
                 const struct dns_cache_ops *ops, void *ctx)
{
    struct dns_cache *c;

    if (ops == NULL || ops->start_query == NULL)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto err;
    c->slots = calloc(TABLE_MIN, sizeof(*c->slots));
    if (c->slots == NULL)
        goto err_cache;
    c->mask = TABLE_MIN - 1;
    c->cfg = *cfg;
    c->ops = *ops;
    c->ctx = ctx;
    c->deadline = INFINITY;
    return c;

err_cache:
    free(c);
err:
    return NULL;
}

/* Unsubscribes every listener silently; the entry is pinned no more. */
static void
entry_detach_listeners(struct dns_cache_entry *e)
{
    while (!list_empty(&e->listeners)) {
        struct dns_cache_listener *l =
            list_entry(e->listeners.next, struct dns_cache_listener, link);
        list_del(&l->link);
        l->entry = NULL;
    }
    e->pins = 0;
}

static void
entry_detach_all(struct dns_cache_entry *e)
{
    while (!list_empty(&e->waiters)) {
        struct dns_cache_waiter *w = list_entry(e->waiters.next,
                                                struct dns_cache_waiter, link);
        list_del(&w->link);
        w->entry = NULL;
    }
    entry_detach_listeners(e);
}

void
dns_cache_destroy(struct dns_cache *c)
{
    struct dns_cache_entry *e, *next;

    if (c == NULL)
        return;
    /* Table first: an entry that is also pending keeps its pending
     * reference until the second pass. */
    for (size_t i = 0; i <= c->mask; i++) {
        e = c->slots[i].e;
        if (e == NULL)
            continue;
        entry_detach_all(e);
        e->removed = true;
        e->cache = NULL;
        entry_unref(e);
    }
    for (e = c->pending_head; e != NULL; e = next) {
        next = e->pending_next;
        entry_detach_all(e);
        e->pending = false;
        e->cache = NULL;
        entry_unref(e);
    }
    free(c->slots);
    free(c->scratch);
    free(c);
}

void
dns_cache_set_config(struct dns_cache *c, const struct dns_cache_config *cfg)
{
    c->cfg = *cfg;
    for (size_t i = 0; i <= c->mask; i++) {
        struct dns_cache_entry *e = c->slots[i].e;
        if (e != NULL && e->answer_gen > 0)
            entry_set_times(c, e);
    }
    c->deadline_dirty = true;
}

struct dns_cache_entry *
dns_cache_find(struct dns_cache *c, const char *name, int family)
{
    size_t len = strlen(name);

    return table_find(c, name, family, name_hash(name, len, family));
}

static struct dns_cache_entry *
entry_get(struct dns_cache *c, const char *name, size_t len, int family,
          uint64_t hash)
{
    struct dns_cache_entry *e;

    if ((family != 4 && family != 6) || len == 0 || len > DNS_CACHE_NAME_MAX)
        return NULL;
    e = table_find(c, name, family, hash);
    if (e != NULL)
        return e;
    if ((c->n + 1) * 2 > c->mask + 1 && table_grow(c) < 0)
        return NULL;
    e = calloc(1, sizeof(*e) + len + 1);
    if (e == NULL)
        return NULL;
    memcpy(e->name, name, len + 1);
    e->cache = c;
    e->hash = hash;
    e->family = family;
    e->state = DNS_CACHE_IDLE;
    e->refs = 1;
    list_init(&e->waiters);
    list_init(&e->listeners);
    table_place(c->slots, c->mask, e);
    c->n++;
    return e;
}

struct dns_cache_entry *
dns_cache_get(struct dns_cache *c, const char *name, int family)
{
    size_t len = strlen(name);

    return entry_get(c, name, len, family, name_hash(name, len, family));
}

void
dns_cache_remove(struct dns_cache *c, struct dns_cache_entry *e)
{
    if (e->removed)
        return;
    table_delete(c, e);
    c->n--;
    e->removed = true;
    entry_detach_listeners(e);
    queue_pending(c, e); /* waiters: GONE */
    e->cache = NULL;
    c->deadline_dirty = true;
    entry_unref(e); /* the table's reference */
}

/* ---- lookups and waiters ------------------------------------------------ */

void
dns_cache_waiter_init(struct dns_cache_waiter *w, dns_cache_wake_fn cb,
                      void *arg)
{
    list_init(&w->link);
    w->entry = NULL;
    w->cb = cb;
    w->arg = arg;
}

void
dns_cache_cancel(struct dns_cache_waiter *w)
{
    if (w->entry == NULL)
        return;
    list_del(&w->link);
    w->entry = NULL;
}

bool
dns_cache_waiter_parked(const struct dns_cache_waiter *w)
{
    return w->entry != NULL;
}

static void
park(struct dns_cache_entry *e, struct dns_cache_waiter *w)
{
    if (w == NULL)
        return;
    w->entry = e;
    list_add_tail(&e->waiters, &w->link);
}

enum dns_cache_result
dns_cache_lookup_entry(struct dns_cache *c, struct dns_cache_entry *e,
                       double now, struct dns_cache_waiter *w)
{
    enum dns_cache_result r;

    if (e->removed)
        return DNS_CACHE_BAD;
    if (w != NULL && w->entry != NULL)
        dns_cache_cancel(w);
    entry_age(c, e, now);
    switch (e->state) {
    case DNS_CACHE_RESOLVED:
        if (!e->used) {
            e->used = true;
            c->deadline_dirty = true;
        }
        if (now < e->expires) {
            r = DNS_CACHE_HIT;
            if (c->cfg.prefetch > 0 && now >= e->prefetch_at && !e->inflight &&
                now >= e->retry_at)
                start_query(c, e, now);
        } else {
            r = DNS_CACHE_STALE;
            if (!e->inflight && now >= e->retry_at)
                start_query(c, e, now);
        }
        break;
    case DNS_CACHE_IDLE:
        r = DNS_CACHE_MISS;
        park(e, w);
        start_query(c, e, now);
        break;
    case DNS_CACHE_IN_PROGRESS:
        r = DNS_CACHE_COALESCED;
        park(e, w);
        break;
    case DNS_CACHE_FAILED:
    default:
        r = DNS_CACHE_NEGATIVE;
        break;
    }
    c->lookups[r]++;
    e->lookups[r]++;
    return r;
}

enum dns_cache_result
dns_cache_lookup(struct dns_cache *c, const char *name, int family, double now,
                 struct dns_cache_waiter *w, struct dns_cache_entry **out)
{
    size_t len = strlen(name);
    struct dns_cache_entry *e = entry_get(c, name, len, family,
                                          name_hash(name, len, family));

    if (out != NULL)
        *out = e;
    if (e == NULL)
        return DNS_CACHE_BAD;
    return dns_cache_lookup_entry(c, e, now, w);
}

/* ---- listeners ---------------------------------------------------------- */

void
dns_cache_listen(struct dns_cache *c, struct dns_cache_entry *e,
                 struct dns_cache_listener *l, dns_cache_event_fn cb, void *arg)
{
    if (l->entry != NULL)
        dns_cache_unlisten(l);
    l->entry = e;
    l->cb = cb;
    l->arg = arg;
    l->seen_set = 0;
    l->seen_answer = 0;
    l->seen_usable = false;
    list_add_tail(&e->listeners, &l->link);
    e->pins++;
    c->deadline_dirty = true;
    queue_pending(c, e);
}

void
dns_cache_unlisten(struct dns_cache_listener *l)
{
    struct dns_cache_entry *e = l->entry;

    if (e == NULL)
        return;
    list_del(&l->link);
    l->entry = NULL;
    if (e->pins > 0)
        e->pins--;
    if (e->cache != NULL)
        e->cache->deadline_dirty = true;
}

void
dns_cache_pin(struct dns_cache *c, struct dns_cache_entry *e)
{
    e->pins++;
    c->deadline_dirty = true;
}

void
dns_cache_unpin(struct dns_cache *c, struct dns_cache_entry *e)
{
    if (e->pins > 0)
        e->pins--;
    c->deadline_dirty = true;
}

/* ---- completions -------------------------------------------------------- */

static int
addr_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct sockaddr_storage));
}

/*
 * Copies the addresses of e's family into c->scratch in canonical form
 * (zeroed storage, family + address + scope only), sorted and unique, so
 * two answers are the same set iff their canonical arrays are equal.
 * Returns the count, or -1 on ENOMEM.
 */
static long
canonical_set(struct dns_cache *c, int family,
              const struct sockaddr_storage *addrs, size_t n)
{
    size_t k = 0;

    if (n > c->scratch_cap) {
        struct sockaddr_storage *s = realloc(c->scratch, n * sizeof(*s));
        if (s == NULL)
            return -1;
        c->scratch = s;
        c->scratch_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage *d = &c->scratch[k];
        memset(d, 0, sizeof(*d));
        if (family == 4 && addrs[i].ss_family == AF_INET) {
            const struct sockaddr_in *s = (const void *)&addrs[i];
            struct sockaddr_in *t = (void *)d;
            t->sin_family = AF_INET;
            t->sin_addr = s->sin_addr;
            k++;
        } else if (family == 6 && addrs[i].ss_family == AF_INET6) {
            const struct sockaddr_in6 *s = (const void *)&addrs[i];
            struct sockaddr_in6 *t = (void *)d;
            t->sin6_family = AF_INET6;
            t->sin6_addr = s->sin6_addr;
            t->sin6_scope_id = s->sin6_scope_id;
            k++;
        }
    }
    if (k > 1) {
        size_t u = 1;
        qsort(c->scratch, k, sizeof(*c->scratch), addr_cmp);
        for (size_t i = 1; i < k; i++)
            if (addr_cmp(&c->scratch[i], &c->scratch[u - 1]) != 0)
                c->scratch[u++] = c->scratch[i];
        k = u;
    }
    return (long)k;
}

static int
entry_store_answer(struct dns_cache *c, struct dns_cache_entry *e, size_t k,
                   long ttl, double now)
{
    bool same = e->naddrs == k &&
                memcmp(e->addrs, c->scratch, k * sizeof(*e->addrs)) == 0;

    if (!same) {
        if (k > e->cap) {
            struct sockaddr_storage *a = realloc(e->addrs, k * sizeof(*a));
            if (a == NULL)
                return -1;
            e->addrs = a;
            e->cap = k;
        }
        memcpy(e->addrs, c->scratch, k * sizeof(*e->addrs));
        e->naddrs = k;
        e->set_gen++;
    }
    e->answer_gen++;
    e->ttl = stored_ttl(c, ttl);
    e->answered_at = now;
    e->expires = now + e->ttl;
    entry_set_times(c, e);
    e->fails = 0;
    e->retry_at = 0;
    e->neg_until = 0;
    e->used = false;
    e->state = DNS_CACHE_RESOLVED;
    return 0;
}

static void
entry_store_failure(struct dns_cache *c, struct dns_cache_entry *e,
                    const char *why, double now)
{
    double w;

    e->fails++;
    e->failures++;
    e->last_error = why;
    w = backoff_window(c, e->fails);
    if (e->state == DNS_CACHE_RESOLVED) {
        /* A usable answer stays; only the next attempt waits. */
        e->retry_at = now + w;
    } else {
        e->state = DNS_CACHE_FAILED;
        e->naddrs = 0;
        e->neg_until = now + w;
        e->retry_at = e->neg_until;
    }
}

void
dns_cache_complete(struct dns_cache *c, struct dns_cache_entry *e,
                   enum dns_cache_status status,
                   const struct sockaddr_storage *addrs, size_t naddrs,
                   long ttl, double now)
{
    double secs;
    long k = 0;

    if (!e->inflight)
        return;
    e->inflight = false;
    if (e->removed) {
        /* The cache may be gone already: touch nothing but e. */
        entry_unref(e);
        return;
    }
    if ((unsigned)status >= DNS_CACHE_Q_NSTATUS)
        status = DNS_CACHE_Q_ERROR;
    secs = now - e->query_started;
    if (secs < 0)
        secs = 0;
    e->query_seconds_sum += secs;
    e->query_count++;
    e->queries[status]++;
    e->last_status = status;
    if (c->ops.query_done != NULL)
        c->ops.query_done(c->ctx, e, status, secs);

    entry_age(c, e, now);
    if (status != DNS_CACHE_Q_OK) {
        entry_store_failure(c, e, status_names[status], now);
    } else {
        if (addrs != NULL)
            k = canonical_set(c, e->family, addrs, naddrs);
        if (k == 0)
            entry_store_failure(c, e, "empty answer", now);
        else if (k < 0 || entry_store_answer(c, e, (size_t)k, ttl, now) < 0)
            entry_store_failure(c, e, "out of memory", now);
    }
    c->deadline_dirty = true;
    queue_pending(c, e);
    entry_unref(e); /* the query's reference */
}

long
dns_cache_ttl_min(const int *ttls, size_t n)
{
    long m;

    if (n == 0)
        return 0;
    m = ttls[0];
    for (size_t i = 1; i < n; i++)
        if (ttls[i] < m)
            m = ttls[i];
    return m < 0 ? 0 : m;
}

/* ---- deferred work ------------------------------------------------------ */

static void
deliver_events(struct dns_cache_entry *e)
{
    struct list todo;

    list_init(&todo);
    list_splice(&todo, &e->listeners);
    while (!list_empty(&todo)) {
        struct dns_cache_listener *l =
            list_entry(todo.next, struct dns_cache_listener, link);
        bool usable;
        enum dns_cache_event ev;

        if (e->removed) {
            /* A callback removed e: detach the rest like remove does. */
            while (!list_empty(&todo)) {
                l = list_entry(todo.next, struct dns_cache_listener, link);
                list_del(&l->link);
                l->entry = NULL;
            }
            break;
        }
        list_del(&l->link);
        list_add_tail(&e->listeners, &l->link);
        usable = e->state == DNS_CACHE_RESOLVED;
        if (usable && (!l->seen_usable || l->seen_set != e->set_gen))
            ev = DNS_CACHE_EV_CHANGED;
        else if (usable && l->seen_answer != e->answer_gen)
            ev = DNS_CACHE_EV_REFRESHED;
        else if (!usable && l->seen_usable)
            ev = DNS_CACHE_EV_EXPIRED;
        else
            continue;
        l->seen_usable = usable;
        l->seen_set = e->set_gen;
        l->seen_answer = e->answer_gen;
        l->cb(l, ev, e);
    }
}

static void
wake_waiters(struct dns_cache *c, struct dns_cache_entry *e, double now)
{
    struct list todo;

    list_init(&todo);
    list_splice(&todo, &e->waiters);
    while (!list_empty(&todo)) {
        struct dns_cache_waiter *w;
        enum dns_cache_wake why;

        if (!e->removed) {
            /* Time moved past the answer before we got here: ask again
             * for the parked ones rather than failing them. */
            if (e->state == DNS_CACHE_IDLE)
                start_query(c, e, now);
            if (e->state == DNS_CACHE_IN_PROGRESS) {
                /* In front: they parked before any callback's waiters. */
                list_splice(&e->waiters, &todo);
                break;
            }
        }
        w = list_entry(todo.next, struct dns_cache_waiter, link);
        list_del(&w->link);
        w->entry = NULL;
        if (e->removed)
            why = DNS_CACHE_WAKE_GONE;
        else if (e->state == DNS_CACHE_RESOLVED)
            why = DNS_CACHE_WAKE_READY;
        else
            why = DNS_CACHE_WAKE_NEGATIVE;
        w->cb(w, why, e);
    }
}

bool
dns_cache_run_pending(struct dns_cache *c, double now)
{
    struct dns_cache_entry *batch = c->pending_head;

    c->pending_head = NULL;
    c->pending_tail = NULL;
    while (batch != NULL) {
        struct dns_cache_entry *e = batch;

        batch = e->pending_next;
        e->pending_next = NULL;
        if (!e->removed)
            entry_age(c, e, now); /* still pending: no requeue */
        e->pending = false;
        /* Pools first, so woken requests find the new members. */
        if (!e->removed)
            deliver_events(e);
        wake_waiters(c, e, now);
        entry_unref(e); /* the queue's reference */
    }
    return c->pending_head != NULL;
}

bool
dns_cache_has_pending(const struct dns_cache *c)
{
    return c->pending_head != NULL;
}

static bool
entry_wanted(const struct dns_cache_entry *e)
{
    return e->used || e->pins > 0;
}

static double
entry_refresh_at(const struct dns_cache_entry *e)
{
    return e->prefetch_at > e->retry_at ? e->prefetch_at : e->retry_at;
}

void
dns_cache_tick(struct dns_cache *c, double now)
{
    for (size_t i = 0; i <= c->mask; i++) {
        struct dns_cache_entry *e = c->slots[i].e;

        if (e == NULL)
            continue;
        entry_age(c, e, now);
        if (e->inflight)
            continue;
        if (e->state == DNS_CACHE_RESOLVED && entry_wanted(e) &&
            now >= entry_refresh_at(e))
            start_query(c, e, now);
        else if (e->state == DNS_CACHE_IDLE && e->pins > 0)
            start_query(c, e, now);
    }
    c->deadline_dirty = true;
}

double
dns_cache_next_deadline(struct dns_cache *c, double now)
{
    double d = INFINITY;

    if (!c->deadline_dirty)
        return c->deadline;
    for (size_t i = 0; i <= c->mask; i++) {
        const struct dns_cache_entry *e = c->slots[i].e;
        double t = INFINITY;

        if (e == NULL)
            continue;
        switch (e->state) {
        case DNS_CACHE_RESOLVED:
            t = e->stale_until;
            if (!e->inflight && entry_wanted(e) && entry_refresh_at(e) < t)
                t = entry_refresh_at(e);
            break;
        case DNS_CACHE_FAILED:
            if (e->pins > 0)
                t = e->neg_until;
            break;
        case DNS_CACHE_IDLE:
            if (e->pins > 0 && !e->inflight)
                t = now;
            break;
        case DNS_CACHE_IN_PROGRESS:
            break;
        }
        if (t < d)
            d = t;
    }
    c->deadline = d;
    c->deadline_dirty = false;
    return d;
}

/* ---- stats -------------------------------------------------------------- */

uint64_t
dns_cache_lookups(const struct dns_cache *c, enum dns_cache_result r)
{
    if ((unsigned)r >= DNS_CACHE_NRESULTS)
        return 0;
    return c->lookups[r];
}

size_t
dns_cache_count(const struct dns_cache *c)
{
    return c->n;
}

void
dns_cache_foreach(struct dns_cache *c,
                  void (*fn)(const struct dns_cache_entry *e, void *arg),
                  void *arg)
{
    for (size_t i = 0; i <= c->mask; i++)
        if (c->slots[i].e != NULL)
            fn(c->slots[i].e, arg);
}

const char *
dns_cache_result_name(enum dns_cache_result r)
{
    if ((unsigned)r >= DNS_CACHE_NRESULTS)
        return "bad";
    return result_names[r];
}

const char *
dns_cache_status_name(enum dns_cache_status s)
{
    if ((unsigned)s >= DNS_CACHE_Q_NSTATUS)
        return "error";
    return status_names[s];
}

const char *
dns_cache_state_name(enum dns_cache_state s)
{
    if ((unsigned)s > DNS_CACHE_FAILED)
        return "unknown";
    return state_names[s];
}
