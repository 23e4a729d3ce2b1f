/*
 * Unit tests for dns_cache: a fake clock (plain doubles), a fake resolver
 * that records queries (and can answer synchronously from inside
 * start_query), and a scripted random source.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_cache.h"

#define EPS 1e-9

/* The fake resolver and its observations. */
struct fake {
    struct dns_cache *c;                    /* cache under test */
    int queries;                            /* start_query calls */
    struct dns_cache_entry *last;           /* entry of the last query */
    char last_name[DNS_CACHE_NAME_MAX + 1]; /* name of the last query */
    int last_family;                        /* family of the last query */
    int wake_calls;                         /* wake_pending calls */
    int done_calls;                         /* query_done calls */
    double done_secs;                       /* last query_done duration */
    double rnd;                             /* what random() returns */
    double now;                             /* fake clock (sync answers) */
    bool sync;                              /* answer inside start_query */
    enum dns_cache_status sync_status;      /* what to answer */
    struct sockaddr_storage sync_addrs[4];  /* addresses to answer */
    size_t sync_n;                          /* count of sync_addrs */
    long sync_ttl;                          /* TTL to answer */
    struct dns_cache_entry *out[64];        /* queries not yet completed */
    size_t nout;                            /* entries in out */
};

/* Every completion in the tests goes through here, so fake_free can
 * complete what is left like a destroyed resolver would. */
static void
fake_complete(struct fake *f, struct dns_cache_entry *e,
              enum dns_cache_status st, const struct sockaddr_storage *addrs,
              size_t n, long ttl, double now)
{
    for (size_t i = 0; i < f->nout; i++) {
        if (f->out[i] == e) {
            f->out[i] = f->out[--f->nout];
            break;
        }
    }
    dns_cache_complete(f->c, e, st, addrs, n, ttl, now);
}

static void
fake_start(void *ctx, const char *name, int family, struct dns_cache_entry *e)
{
    struct fake *f = ctx;

    f->queries++;
    f->last = e;
    snprintf(f->last_name, sizeof(f->last_name), "%s", name);
    f->last_family = family;
    if (f->sync) {
        dns_cache_complete(f->c, e, f->sync_status, f->sync_addrs, f->sync_n,
                           f->sync_ttl, f->now);
        return;
    }
    for (size_t i = 0; i < f->nout; i++)
        assert_ptr_not_equal(f->out[i], e); /* one query per entry */
    assert_true(f->nout < 64);
    f->out[f->nout++] = e;
}

static void
fake_wake(void *ctx)
{
    ((struct fake *)ctx)->wake_calls++;
}

static void
fake_done(void *ctx, const struct dns_cache_entry *e, enum dns_cache_status st,
          double secs)
{
    struct fake *f = ctx;

    f->done_calls++;
    f->done_secs = secs;
}

static double
fake_random(void *ctx)
{
    return ((struct fake *)ctx)->rnd;
}

static const struct dns_cache_ops fake_ops = {
    .start_query = fake_start,
    .wake_pending = fake_wake,
    .query_done = fake_done,
    .random = fake_random,
};

/* Defaults for tests: no jitter, no prefetch unless a test asks. */
static struct dns_cache_config
test_config(void)
{
    struct dns_cache_config cfg = {
        .min_ttl = 1,
        .max_ttl = 3600,
        .negative_ttl = 5,
        .stale_ttl = 60,
        .jitter = 0,
        .prefetch = 0,
    };
    return cfg;
}

/* Callers without a config get the documented [resolver] defaults. */
static void
test_config_default(void **state)
{
    struct dns_cache_config cfg;

    (void)state;
    dns_cache_config_default(&cfg);
    assert_true(fabs(cfg.min_ttl - 1) < EPS);
    assert_true(fabs(cfg.max_ttl - 3600) < EPS);
    assert_true(fabs(cfg.negative_ttl - 5) < EPS);
    assert_true(fabs(cfg.stale_ttl - 3600) < EPS);
    assert_true(fabs(cfg.jitter - 0.2) < EPS);
    assert_true(fabs(cfg.prefetch - 0.1) < EPS);
}

static struct fake *
fake_new(const struct dns_cache_config *cfg)
{
    struct fake *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->rnd = 0.5;
    f->c = dns_cache_create(cfg, &fake_ops, f);
    assert_non_null(f->c);
    return f;
}

/* Destroys the cache first, then "the resolver": its destruction
 * completes every outstanding query with an error (the orphan path). */
static void
fake_free(struct fake *f)
{
    dns_cache_destroy(f->c);
    f->c = NULL;
    while (f->nout > 0)
        fake_complete(f, f->out[0], DNS_CACHE_Q_ERROR, NULL, 0, 0, 0);
    free(f);
}

static struct sockaddr_storage
a4(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    s->sin_family = AF_INET;
    s->sin_port = htons(1234); /* must be ignored */
    assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage
a6(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    s->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
    return ss;
}

static bool
has4(const struct dns_cache_entry *e, const char *ip)
{
    struct sockaddr_storage want = a4(ip);

    for (size_t i = 0; i < e->naddrs; i++) {
        const struct sockaddr_in *s = (const void *)&e->addrs[i];
        if (s->sin_family == AF_INET &&
            s->sin_addr.s_addr ==
                ((struct sockaddr_in *)&want)->sin_addr.s_addr)
            return true;
    }
    return false;
}

/* Completes the last query with IPv4 addresses. */
static void
answer4(struct fake *f, long ttl, double now, int n, ...)
{
    struct sockaddr_storage addrs[16];
    va_list ap;

    assert_true(n <= 16);
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        addrs[i] = a4(va_arg(ap, const char *));
    va_end(ap);
    fake_complete(f, f->last, DNS_CACHE_Q_OK, addrs, (size_t)n, ttl, now);
}

static void
fail_query(struct fake *f, enum dns_cache_status st, double now)
{
    fake_complete(f, f->last, st, NULL, 0, 0, now);
}

/* Waiter that records its wakeups. */
struct rec_waiter {
    struct dns_cache_waiter w;       /* first: the callback casts back */
    int woken;                       /* callback count */
    enum dns_cache_wake why;         /* last reason */
    struct rec_waiter *cancel_other; /* cancel this one when woken */
    bool free_self;                  /* free() inside the callback */
};

static int freed_waiters;

static void
rec_wake(struct dns_cache_waiter *w, enum dns_cache_wake why,
         const struct dns_cache_entry *e)
{
    struct rec_waiter *r = (struct rec_waiter *)w;

    assert_false(dns_cache_waiter_parked(w));
    r->woken++;
    r->why = why;
    if (r->cancel_other != NULL)
        dns_cache_cancel(&r->cancel_other->w);
    if (r->free_self) {
        freed_waiters++;
        free(r);
    }
}

static void
rec_init(struct rec_waiter *r)
{
    memset(r, 0, sizeof(*r));
    dns_cache_waiter_init(&r->w, rec_wake, r);
}

/* Listener that records its events. */
struct rec_listener {
    struct dns_cache_listener l; /* first: the callback casts back */
    int n;                       /* events seen */
    enum dns_cache_event ev[32]; /* in order */
    size_t naddrs;               /* set size at the last event */
    bool unlisten_self;          /* unsubscribe inside the callback */
    bool remove_entry;           /* remove the entry in the callback */
    struct dns_cache *c;         /* for remove_entry */
};

static void
rec_event(struct dns_cache_listener *l, enum dns_cache_event ev,
          const struct dns_cache_entry *e)
{
    struct rec_listener *r = (struct rec_listener *)l;

    assert_true(r->n < 32);
    r->ev[r->n++] = ev;
    r->naddrs = e->naddrs;
    if (r->unlisten_self)
        dns_cache_unlisten(l);
    if (r->remove_entry)
        dns_cache_remove(r->c, (struct dns_cache_entry *)e);
}

static void
rec_listen(struct fake *f, struct dns_cache_entry *e, struct rec_listener *r)
{
    memset(r, 0, sizeof(*r));
    r->c = f->c;
    dns_cache_listen(f->c, e, &r->l, rec_event, r);
}

/* ---- state transitions -------------------------------------------------- */

static void
test_miss_resolve_hit(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct rec_waiter w;
    struct dns_cache_entry *e = NULL;

    rec_init(&w);
    assert_int_equal(dns_cache_lookup(f->c, "api.internal", 4, 10, &w.w, &e),
                     DNS_CACHE_MISS);
    assert_non_null(e);
    assert_int_equal(e->state, DNS_CACHE_IN_PROGRESS);
    assert_true(e->inflight);
    assert_int_equal(f->queries, 1);
    assert_string_equal(f->last_name, "api.internal");
    assert_int_equal(f->last_family, 4);
    assert_true(dns_cache_waiter_parked(&w.w));

    answer4(f, 30, 10.5, 2, "10.0.0.2", "10.0.0.1");
    assert_int_equal(e->state, DNS_CACHE_RESOLVED);
    assert_false(e->inflight);
    /* Deferred: nobody is woken inside complete. */
    assert_int_equal(w.woken, 0);
    assert_true(dns_cache_has_pending(f->c));
    assert_int_equal(f->wake_calls, 1);
    assert_false(dns_cache_run_pending(f->c, 10.5));
    assert_int_equal(w.woken, 1);
    assert_int_equal(w.why, DNS_CACHE_WAKE_READY);
    assert_false(dns_cache_waiter_parked(&w.w));

    assert_int_equal(e->naddrs, 2);
    assert_true(has4(e, "10.0.0.1") && has4(e, "10.0.0.2"));
    assert_true(fabs(e->expires - 40.5) < EPS);
    assert_true(fabs(e->answered_at - 10.5) < EPS);
    assert_int_equal(dns_cache_lookup(f->c, "api.internal", 4, 20, NULL, NULL),
                     DNS_CACHE_HIT);
    assert_int_equal(f->queries, 1);
    assert_int_equal(dns_cache_lookups(f->c, DNS_CACHE_MISS), 1);
    assert_int_equal(dns_cache_lookups(f->c, DNS_CACHE_HIT), 1);
    assert_int_equal(e->lookups[DNS_CACHE_HIT], 1);
    assert_int_equal(e->queries[DNS_CACHE_Q_OK], 1);
    assert_int_equal(dns_cache_count(f->c), 1);
    /* Families are separate entries. */
    assert_int_equal(dns_cache_lookup(f->c, "api.internal", 6, 20, NULL, NULL),
                     DNS_CACHE_MISS);
    assert_int_equal(f->queries, 2);
    assert_int_equal(f->last_family, 6);
    assert_int_equal(dns_cache_count(f->c), 2);
    fake_free(f);
}

static void
test_coalesced(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct rec_waiter w1, w2;

    rec_init(&w1);
    rec_init(&w2);
    assert_int_equal(dns_cache_lookup(f->c, "a", 4, 0, &w1.w, NULL),
                     DNS_CACHE_MISS);
    assert_int_equal(dns_cache_lookup(f->c, "a", 4, 0, &w2.w, NULL),
                     DNS_CACHE_COALESCED);
    assert_int_equal(f->queries, 1);
    answer4(f, 30, 1, 1, "10.0.0.1");
    dns_cache_run_pending(f->c, 1);
    assert_int_equal(w1.woken, 1);
    assert_int_equal(w2.woken, 1);
    assert_int_equal(dns_cache_lookups(f->c, DNS_CACHE_COALESCED), 1);
    fake_free(f);
}

static void
test_ten_thousand_lookups_one_query(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f;
    struct rec_waiter *ws;
    const int n = 10000;
    int woken = 0;

    cfg.stale_ttl = 0;
    f = fake_new(&cfg);
    ws = calloc(n, sizeof(*ws));
    assert_non_null(ws);
    dns_cache_lookup(f->c, "x", 4, 0, NULL, NULL);
    answer4(f, 10, 0, 1, "10.0.0.1");
    assert_int_equal(f->queries, 1);

    /* Expired, no stale window: all park on one query. */
    for (int i = 0; i < n; i++) {
        enum dns_cache_result r;
        rec_init(&ws[i]);
        r = dns_cache_lookup(f->c, "x", 4, 20, &ws[i].w, NULL);
        assert_int_equal(r, i == 0 ? DNS_CACHE_MISS : DNS_CACHE_COALESCED);
    }
    assert_int_equal(f->queries, 2);
    answer4(f, 10, 20.1, 1, "10.0.0.1");
    dns_cache_run_pending(f->c, 20.1);
    for (int i = 0; i < n; i++) {
        woken += ws[i].woken;
        assert_int_equal(ws[i].why, DNS_CACHE_WAKE_READY);
    }
    assert_int_equal(woken, n);
    assert_int_equal(dns_cache_lookups(f->c, DNS_CACHE_COALESCED), n - 1);
    free(ws);
    fake_free(f);
}

static void
test_ten_thousand_stale_lookups_one_refresh(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);

    dns_cache_lookup(f->c, "x", 4, 0, NULL, NULL);
    answer4(f, 10, 0, 1, "10.0.0.1");
    for (int i = 0; i < 10000; i++)
        assert_int_equal(dns_cache_lookup(f->c, "x", 4, 15, NULL, NULL),
                         DNS_CACHE_STALE);
    assert_int_equal(f->queries, 2);
    assert_int_equal(dns_cache_lookups(f->c, DNS_CACHE_STALE), 10000);
    fake_free(f);
}

static void
test_cancel(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct rec_waiter a, b, c, d, e;
    struct rec_waiter *h = malloc(sizeof(*h));

    assert_non_null(h);
    rec_init(&a);
    rec_init(&b);
    rec_init(&c);
    rec_init(&d);
    rec_init(&e);
    rec_init(h);
    h->free_self = true;
    freed_waiters = 0;
    dns_cache_lookup(f->c, "n", 4, 0, &a.w, NULL);
    dns_cache_lookup(f->c, "n", 4, 0, &b.w, NULL);
    dns_cache_lookup(f->c, "n", 4, 0, &h->w, NULL);
    dns_cache_lookup(f->c, "n", 4, 0, &c.w, NULL);
    dns_cache_lookup(f->c, "n", 4, 0, &d.w, NULL);
    dns_cache_lookup(f->c, "n", 4, 0, &e.w, NULL);
    /* Mid-flight cancel, twice (second is a no-op). */
    dns_cache_cancel(&b.w);
    dns_cache_cancel(&b.w);
    assert_false(dns_cache_waiter_parked(&b.w));
    /* a cancels d from inside its wakeup: d must never be called. */
    a.cancel_other = &d;
    answer4(f, 30, 1, 1, "10.0.0.1");
    /* Cancel after the completion but before the wakeup. */
    dns_cache_cancel(&c.w);
    dns_cache_run_pending(f->c, 1);
    assert_int_equal(a.woken, 1);
    assert_int_equal(b.woken, 0);
    assert_int_equal(c.woken, 0);
    assert_int_equal(d.woken, 0);
    assert_int_equal(e.woken, 1);
    assert_int_equal(freed_waiters, 1);
    /* Cancel after wakeup: harmless. */
    dns_cache_cancel(&a.w);
    dns_cache_cancel(&e.w);
    dns_cache_run_pending(f->c, 1);
    assert_int_equal(a.woken, 1);
    fake_free(f);
}

static void
test_waiter_reused_parks_once(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct rec_waiter w;

    rec_init(&w);
    dns_cache_lookup(f->c, "one", 4, 0, &w.w, NULL);
    struct dns_cache_entry *one = f->last;
    /* Parking again elsewhere moves the waiter (old park cancelled). */
    dns_cache_lookup(f->c, "two", 4, 0, &w.w, NULL);
    fake_complete(f, one, DNS_CACHE_Q_NXDOMAIN, NULL, 0, 0, 0);
    dns_cache_run_pending(f->c, 0);
    assert_int_equal(w.woken, 0);
    answer4(f, 30, 0, 1, "10.0.0.9");
    dns_cache_run_pending(f->c, 0);
    assert_int_equal(w.woken, 1);
    assert_int_equal(w.why, DNS_CACHE_WAKE_READY);
    fake_free(f);
}

/* ---- TTL rules ---------------------------------------------------------- */

static double
stored(struct fake *f, const char *name, long ttl)
{
    struct dns_cache_entry *e;

    dns_cache_lookup(f->c, name, 4, 100, NULL, &e);
    answer4(f, ttl, 100, 1, "10.0.0.1");
    assert_true(fabs(e->expires - (100 + e->ttl)) < EPS);
    return e->ttl;
}

static void
test_ttl_clamp(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f;

    cfg.min_ttl = 10;
    cfg.max_ttl = 100;
    f = fake_new(&cfg);
    assert_true(fabs(stored(f, "low", 5) - 10) < EPS);
    assert_true(fabs(stored(f, "high", 1000) - 100) < EPS);
    assert_true(fabs(stored(f, "mid", 50) - 50) < EPS);
    /* c-ares 1.18 ai_ttl is signed: a negative TTL counts as 0. */
    assert_true(fabs(stored(f, "neg", -7) - 10) < EPS);
    fake_free(f);

    /* A zero TTL with min_ttl 0 still never stores less than the floor. */
    cfg.min_ttl = 0;
    f = fake_new(&cfg);
    assert_true(fabs(stored(f, "zero", 0) - DNS_CACHE_FLOOR) < EPS);
    fake_free(f);
}

static void
test_ttl_jitter_bounds(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f;
    double t;

    cfg.jitter = 0.2;
    f = fake_new(&cfg);
    f->rnd = 0.0;
    assert_true(fabs(stored(f, "j0", 100) - 80) < EPS);
    f->rnd = 0.5;
    assert_true(fabs(stored(f, "j5", 100) - 100) < EPS);
    f->rnd = nextafter(1.0, 0.0);
    t = stored(f, "j1", 100);
    assert_true(t <= 120 && t > 119.999);
    /* A broken random source is clamped into [1-j, 1+j]. */
    f->rnd = 7.0;
    t = stored(f, "jbig", 100);
    assert_true(t <= 120 && t > 119.999);
    f->rnd = -3.0;
    assert_true(fabs(stored(f, "jneg", 100) - 80) < EPS);
    /* Clamp first, then jitter: max_ttl 3600 -> at most 4320. */
    f->rnd = 0.0;
    assert_true(fabs(stored(f, "jclamp", 99999) - 2880) < EPS);
    fake_free(f);
}

static void
test_ttl_min_over_chain(void **state)
{
    const int chain[] = {300, 60, 120}; /* CNAME 300, CNAME 60, A 120 */
    const int neg[] = {300, -1, 120};
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);

    assert_int_equal(dns_cache_ttl_min(chain, 3), 60);
    assert_int_equal(dns_cache_ttl_min(neg, 3), 0);
    assert_int_equal(dns_cache_ttl_min(chain, 0), 0);
    assert_true(fabs(stored(f, "chain", dns_cache_ttl_min(chain, 3)) - 60) <
                EPS);
    fake_free(f);
}

static void
test_stale_window_edges(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f;
    struct dns_cache_entry *e;
    struct rec_waiter w;

    cfg.stale_ttl = 5;
    f = fake_new(&cfg);
    rec_init(&w);
    dns_cache_lookup(f->c, "s", 4, 0, NULL, &e);
    answer4(f, 10, 100, 1, "10.0.0.1"); /* expires 110, stale until 115 */
    assert_true(fabs(e->stale_until - 115) < EPS);
    assert_int_equal(dns_cache_lookup(f->c, "s", 4, 109.999, NULL, NULL),
                     DNS_CACHE_HIT);
    assert_int_equal(f->queries, 1);
    /* Exactly at expiry: stale, and one refresh starts. */
    assert_int_equal(dns_cache_lookup(f->c, "s", 4, 110, NULL, NULL),
                     DNS_CACHE_STALE);
    assert_int_equal(f->queries, 2);
    assert_int_equal(dns_cache_lookup(f->c, "s", 4, 114.999, NULL, NULL),
                     DNS_CACHE_STALE);
    assert_int_equal(f->queries, 2);
    /* Exactly at expiry + stale_ttl: unusable; the refresh is in flight,
     * so RESOLVED -> IN_PROGRESS and the lookup parks. */
    assert_int_equal(dns_cache_lookup(f->c, "s", 4, 115, &w.w, NULL),
                     DNS_CACHE_COALESCED);
    assert_int_equal(e->state, DNS_CACHE_IN_PROGRESS);
    assert_int_equal(e->naddrs, 0);
    assert_int_equal(f->queries, 2);
    answer4(f, 10, 116, 1, "10.0.0.1");
    dns_cache_run_pending(f->c, 116);
    assert_int_equal(w.why, DNS_CACHE_WAKE_READY);

    /* Past the stale limit with no query in flight: RESOLVED -> IDLE,
     * then the lookup misses. */
    dns_cache_tick(f->c, 131);
    assert_int_equal(e->state, DNS_CACHE_IDLE);
    assert_int_equal(dns_cache_lookup(f->c, "s", 4, 131, NULL, NULL),
                     DNS_CACHE_MISS);
    assert_int_equal(f->queries, 3);
    fake_free(f);
}

static void
test_stale_zero(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f;

    cfg.stale_ttl = 0;
    f = fake_new(&cfg);
    dns_cache_lookup(f->c, "z", 4, 0, NULL, NULL);
    answer4(f, 10, 0, 1, "10.0.0.1");
    assert_int_equal(dns_cache_lookup(f->c, "z", 4, 9.999, NULL, NULL),
                     DNS_CACHE_HIT);
    assert_int_equal(dns_cache_lookup(f->c, "z", 4, 10, NULL, NULL),
                     DNS_CACHE_MISS);
    assert_int_equal(dns_cache_lookups(f->c, DNS_CACHE_STALE), 0);
    assert_int_equal(f->queries, 2);
    fake_free(f);
}

/* ---- failures ----------------------------------------------------------- */

static void
test_negative_caching(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct dns_cache_entry *e;
    struct rec_waiter w;

    rec_init(&w);
    dns_cache_lookup(f->c, "nx", 4, 0, &w.w, &e);
    fail_query(f, DNS_CACHE_Q_NXDOMAIN, 1);
    assert_int_equal(e->state, DNS_CACHE_FAILED);
    assert_true(fabs(e->neg_until - 6) < EPS);
    assert_string_equal(e->last_error, "nxdomain");
    dns_cache_run_pending(f->c, 1);
    assert_int_equal(w.why, DNS_CACHE_WAKE_NEGATIVE);
    assert_int_equal(dns_cache_lookup(f->c, "nx", 4, 5.999, NULL, NULL),
                     DNS_CACHE_NEGATIVE);
    assert_int_equal(f->queries, 1);
    /* Window over: FAILED -> IDLE -> new query. */
    assert_int_equal(dns_cache_lookup(f->c, "nx", 4, 6, NULL, NULL),
                     DNS_CACHE_MISS);
    assert_int_equal(f->queries, 2);
    answer4(f, 30, 6.1, 1, "10.0.0.1");
    assert_int_equal(e->state, DNS_CACHE_RESOLVED);
    assert_int_equal(e->fails, 0);
    assert_int_equal(e->queries[DNS_CACHE_Q_NXDOMAIN], 1);
    assert_int_equal(e->failures, 1);
    fake_free(f);
}

static void
test_failure_kinds(void **state)
{
    static const struct {
        enum dns_cache_status st;
        const char *text;
    } kinds[] = {
        {DNS_CACHE_Q_NXDOMAIN, "nxdomain"}, {DNS_CACHE_Q_SERVFAIL, "servfail"},
        {DNS_CACHE_Q_TIMEOUT, "timeout"},   {DNS_CACHE_Q_ERROR, "error"},
        {DNS_CACHE_Q_OK, "empty answer"},
    };
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        char name[16];
        struct dns_cache_entry *e;
        snprintf(name, sizeof(name), "k%zu", i);
        dns_cache_lookup(f->c, name, 4, 0, NULL, &e);
        fail_query(f, kinds[i].st, 0);
        assert_int_equal(e->state, DNS_CACHE_FAILED);
        assert_string_equal(e->last_error, kinds[i].text);
        assert_int_equal(e->queries[kinds[i].st], 1);
        assert_int_equal(dns_cache_lookup(f->c, name, 4, 1, NULL, NULL),
                         DNS_CACHE_NEGATIVE);
    }
    /* Addresses of the other family only: empty answer. */
    {
        struct sockaddr_storage v6 = a6("::1");
        struct dns_cache_entry *e;
        dns_cache_lookup(f->c, "v6only", 4, 0, NULL, &e);
        fake_complete(f, e, DNS_CACHE_Q_OK, &v6, 1, 30, 0);
        assert_int_equal(e->state, DNS_CACHE_FAILED);
        assert_string_equal(e->last_error, "empty answer");
        dns_cache_lookup(f->c, "v6only", 6, 0, NULL, &e);
        fake_complete(f, e, DNS_CACHE_Q_OK, &v6, 1, 30, 0);
        assert_int_equal(e->state, DNS_CACHE_RESOLVED);
    }
    assert_int_equal(dns_cache_lookups(f->c, DNS_CACHE_NEGATIVE), 5);
    fake_free(f);
}

static void
test_failure_keeps_usable_answer(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct dns_cache_entry *e;
    struct rec_listener l;

    dns_cache_lookup(f->c, "k", 4, 0, NULL, &e);
    answer4(f, 10, 0, 2, "10.0.0.1", "10.0.0.2");
    rec_listen(f, e, &l);
    dns_cache_run_pending(f->c, 0);
    assert_int_equal(l.n, 1);

    /* Stale: refresh starts and fails; the answer stays. */
    assert_int_equal(dns_cache_lookup(f->c, "k", 4, 12, NULL, NULL),
                     DNS_CACHE_STALE);
    assert_int_equal(f->queries, 2);
    fail_query(f, DNS_CACHE_Q_SERVFAIL, 12);
    assert_int_equal(e->state, DNS_CACHE_RESOLVED);
    assert_int_equal(e->naddrs, 2);
    assert_int_equal(e->failures, 1);
    assert_true(fabs(e->retry_at - 17) < EPS);
    dns_cache_run_pending(f->c, 12);
    assert_int_equal(l.n, 1); /* the pool hears nothing */
    /* Still served; no new query before retry_at. */
    assert_int_equal(dns_cache_lookup(f->c, "k", 4, 16.9, NULL, NULL),
                     DNS_CACHE_STALE);
    assert_int_equal(f->queries, 2);
    assert_int_equal(dns_cache_lookup(f->c, "k", 4, 17, NULL, NULL),
                     DNS_CACHE_STALE);
    assert_int_equal(f->queries, 3);
    /* Second failure: the retry waits twice as long. */
    fail_query(f, DNS_CACHE_Q_TIMEOUT, 17);
    assert_true(fabs(e->retry_at - 27) < EPS);
    assert_int_equal(e->state, DNS_CACHE_RESOLVED);
    fake_free(f);
}

static void
test_backoff_growth_and_cap(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f;
    struct dns_cache_entry *e;
    const double want5[] = {5, 10, 20, 40, 40, 40};
    const double want10[] = {10, 20, 40, 60, 60};
    double t = 0;

    f = fake_new(&cfg);
    dns_cache_lookup(f->c, "b", 4, t, NULL, &e);
    for (size_t i = 0; i < 6; i++) {
        fail_query(f, DNS_CACHE_Q_SERVFAIL, t);
        assert_int_equal(e->fails, i + 1);
        assert_true(fabs(e->neg_until - t - want5[i]) < EPS);
        /* Never a tight loop: just before the window ends, no query. */
        assert_int_equal(dns_cache_lookup(f->c, "b", 4, e->neg_until - 0.001,
                                          NULL, NULL),
                         DNS_CACHE_NEGATIVE);
        t = e->neg_until;
        assert_int_equal(dns_cache_lookup(f->c, "b", 4, t, NULL, NULL),
                         DNS_CACHE_MISS);
    }
    assert_int_equal(f->queries, 7);
    fake_free(f);

    cfg.negative_ttl = 10; /* 8x would be 80: 60 s cap */
    f = fake_new(&cfg);
    t = 0;
    dns_cache_lookup(f->c, "b", 4, t, NULL, &e);
    for (size_t i = 0; i < 5; i++) {
        fail_query(f, DNS_CACHE_Q_TIMEOUT, t);
        assert_true(fabs(e->neg_until - t - want10[i]) < EPS);
        t = e->neg_until;
        dns_cache_lookup(f->c, "b", 4, t, NULL, NULL);
    }
    fake_free(f);

    /* Jitter applies to the window; negative_ttl 0 is floored. */
    cfg.negative_ttl = 5;
    cfg.jitter = 0.2;
    f = fake_new(&cfg);
    f->rnd = 0.0;
    dns_cache_lookup(f->c, "j", 4, 0, NULL, &e);
    fail_query(f, DNS_CACHE_Q_TIMEOUT, 0);
    assert_true(fabs(e->neg_until - 4) < EPS);
    fake_free(f);
    cfg.negative_ttl = 0;
    cfg.jitter = 0;
    f = fake_new(&cfg);
    dns_cache_lookup(f->c, "z", 4, 0, NULL, &e);
    fail_query(f, DNS_CACHE_Q_TIMEOUT, 0);
    assert_true(fabs(e->neg_until - DNS_CACHE_FLOOR) < EPS);
    fake_free(f);
}

static void
test_pinned_retry_with_backoff(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct dns_cache_entry *e = dns_cache_get(f->c, "p", 4);
    struct rec_listener l;

    assert_non_null(e);
    assert_int_equal(e->state, DNS_CACHE_IDLE);
    rec_listen(f, e, &l);
    /* Pinned and idle: resolve at once. IDLE -> IN_PROGRESS by tick. */
    assert_true(dns_cache_next_deadline(f->c, 0) <= 0);
    dns_cache_tick(f->c, 0);
    assert_int_equal(f->queries, 1);
    assert_int_equal(e->state, DNS_CACHE_IN_PROGRESS);
    assert_true(isinf(dns_cache_next_deadline(f->c, 0)));
    fail_query(f, DNS_CACHE_Q_SERVFAIL, 0);
    assert_true(fabs(dns_cache_next_deadline(f->c, 0) - 5) < EPS);
    dns_cache_tick(f->c, 4.9);
    assert_int_equal(f->queries, 1);
    dns_cache_tick(f->c, 5);
    assert_int_equal(f->queries, 2);
    fail_query(f, DNS_CACHE_Q_SERVFAIL, 5);
    assert_true(fabs(dns_cache_next_deadline(f->c, 5) - 15) < EPS);
    dns_cache_tick(f->c, 15);
    assert_int_equal(f->queries, 3);
    answer4(f, 100, 15, 1, "10.0.0.1");
    dns_cache_run_pending(f->c, 15);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.ev[0], DNS_CACHE_EV_CHANGED);
    /* Unpinned after unlisten: a failed name is not retried by tick. */
    dns_cache_unlisten(&l.l);
    assert_int_equal(e->pins, 0);
    fake_free(f);
}

/* ---- prefetch and deadlines --------------------------------------------- */

static void
test_prefetch(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f;
    struct dns_cache_entry *e, *q;

    cfg.prefetch = 0.1;
    f = fake_new(&cfg);
    dns_cache_lookup(f->c, "pf", 4, 0, NULL, &e);
    answer4(f, 100, 0, 1, "10.0.0.1");
    assert_true(fabs(e->prefetch_at - 90) < EPS);
    /* Not used since the answer: only the stale limit is scheduled. */
    assert_true(fabs(dns_cache_next_deadline(f->c, 0) - 160) < EPS);
    dns_cache_tick(f->c, 95);
    assert_int_equal(f->queries, 1);
    assert_int_equal(dns_cache_lookup(f->c, "pf", 4, 50, NULL, NULL),
                     DNS_CACHE_HIT);
    assert_int_equal(f->queries, 1);
    /* Used now: the timer wants a refresh at 90. */
    assert_true(fabs(dns_cache_next_deadline(f->c, 50) - 90) < EPS);
    assert_int_equal(dns_cache_lookup(f->c, "pf", 4, 89.9, NULL, NULL),
                     DNS_CACHE_HIT);
    assert_int_equal(f->queries, 1);
    /* Lookup crossing the prefetch point: still HIT, one refresh. */
    assert_int_equal(dns_cache_lookup(f->c, "pf", 4, 91, NULL, NULL),
                     DNS_CACHE_HIT);
    assert_int_equal(dns_cache_lookup(f->c, "pf", 4, 92, NULL, NULL),
                     DNS_CACHE_HIT);
    assert_int_equal(f->queries, 2);
    answer4(f, 100, 92, 1, "10.0.0.1");
    assert_true(fabs(e->expires - 192) < EPS);
    assert_false(e->used);

    /* Tick-driven prefetch of a pinned name that nobody looks up. */
    q = dns_cache_get(f->c, "pinned", 4);
    dns_cache_pin(f->c, q);
    dns_cache_tick(f->c, 0);
    assert_int_equal(f->queries, 3);
    answer4(f, 100, 0, 1, "10.0.0.2");
    assert_true(fabs(dns_cache_next_deadline(f->c, 0) - 90) < EPS);
    dns_cache_tick(f->c, 90);
    assert_int_equal(f->queries, 4);
    assert_ptr_equal(f->last, q);
    dns_cache_unpin(f->c, q);
    fake_free(f);
}

static void
test_prefetch_off_refreshes_pinned_at_expiry(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct dns_cache_entry *e = dns_cache_get(f->c, "p0", 4);

    dns_cache_pin(f->c, e);
    dns_cache_tick(f->c, 0);
    answer4(f, 30, 0, 1, "10.0.0.1");
    assert_true(fabs(dns_cache_next_deadline(f->c, 0) - 30) < EPS);
    dns_cache_tick(f->c, 29.9);
    assert_int_equal(f->queries, 1);
    dns_cache_tick(f->c, 30);
    assert_int_equal(f->queries, 2);
    /* In flight: only the stale limit remains scheduled. */
    assert_true(fabs(dns_cache_next_deadline(f->c, 30) - 90) < EPS);
    fake_free(f);
}

/* ---- notifications ------------------------------------------------------ */

static void
test_set_change_notification(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct dns_cache_entry *e = dns_cache_get(f->c, "set", 4);
    struct rec_listener l, late;
    uint64_t gen;

    rec_listen(f, e, &l);
    dns_cache_tick(f->c, 0);
    answer4(f, 10, 0, 2, "10.0.0.1", "10.0.0.2");
    dns_cache_run_pending(f->c, 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.ev[0], DNS_CACHE_EV_CHANGED);
    assert_int_equal(l.naddrs, 2);
    gen = e->set_gen;

    /* Same set, other order and a duplicate: TTL refresh only. */
    dns_cache_tick(f->c, 10);
    answer4(f, 10, 10, 3, "10.0.0.2", "10.0.0.1", "10.0.0.2");
    dns_cache_run_pending(f->c, 10);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.ev[1], DNS_CACHE_EV_REFRESHED);
    assert_int_equal(e->set_gen, gen);
    assert_int_equal(e->naddrs, 2);

    /* A real change. */
    dns_cache_tick(f->c, 20);
    answer4(f, 10, 20, 2, "10.0.0.1", "10.0.0.3");
    dns_cache_run_pending(f->c, 20);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.ev[2], DNS_CACHE_EV_CHANGED);
    assert_true(has4(e, "10.0.0.3") && !has4(e, "10.0.0.2"));

    /* A late subscriber gets the current set at the next run. */
    rec_listen(f, e, &late);
    dns_cache_run_pending(f->c, 20);
    assert_int_equal(late.n, 1);
    assert_int_equal(late.ev[0], DNS_CACHE_EV_CHANGED);
    assert_int_equal(l.n, 3);

    /* Refresh fails until the stale limit passes: EXPIRED, once. */
    dns_cache_tick(f->c, 30);
    fail_query(f, DNS_CACHE_Q_TIMEOUT, 30);
    dns_cache_run_pending(f->c, 30);
    assert_int_equal(l.n, 3);
    dns_cache_tick(f->c, 35); /* retry_at = 35 */
    assert_int_equal(f->queries, 5);
    dns_cache_tick(f->c, 90); /* stale limit 30 + 60 */
    assert_int_equal(e->state, DNS_CACHE_IN_PROGRESS);
    dns_cache_run_pending(f->c, 90);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.ev[3], DNS_CACHE_EV_EXPIRED);
    assert_int_equal(late.ev[1], DNS_CACHE_EV_EXPIRED);
    dns_cache_run_pending(f->c, 90);
    assert_int_equal(l.n, 4);

    /* The same set coming back must be applied again. */
    answer4(f, 10, 91, 2, "10.0.0.3", "10.0.0.1");
    dns_cache_run_pending(f->c, 91);
    assert_int_equal(l.n, 5);
    assert_int_equal(l.ev[4], DNS_CACHE_EV_CHANGED);
    fake_free(f);
}

static void
test_listener_callbacks_mutate(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct dns_cache_entry *e = dns_cache_get(f->c, "m", 4);
    struct rec_listener a, b;
    struct rec_waiter w;

    rec_listen(f, e, &a);
    rec_listen(f, e, &b);
    a.unlisten_self = true;
    rec_init(&w);
    dns_cache_lookup(f->c, "m", 4, 0, &w.w, NULL);
    answer4(f, 10, 0, 1, "10.0.0.1");
    dns_cache_run_pending(f->c, 0);
    assert_int_equal(a.n, 1);
    assert_int_equal(b.n, 1);
    assert_null(a.l.entry);
    assert_int_equal(e->pins, 1);
    assert_int_equal(w.why, DNS_CACHE_WAKE_READY);

    /* b removes the entry from inside its callback (reload). */
    b.remove_entry = true;
    rec_init(&w);
    dns_cache_tick(f->c, 10);
    answer4(f, 10, 10, 1, "10.0.0.2");
    assert_int_equal(dns_cache_lookup(f->c, "m", 4, 10, NULL, NULL),
                     DNS_CACHE_HIT);
    dns_cache_run_pending(f->c, 10);
    assert_int_equal(b.n, 2);
    assert_null(b.l.entry);
    assert_null(dns_cache_find(f->c, "m", 4));
    dns_cache_run_pending(f->c, 10);
    fake_free(f);
}

/* ---- synchronous completion --------------------------------------------- */

static void
test_sync_completion(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct rec_waiter w, w2;
    struct dns_cache_entry *e;

    f->sync = true;
    f->sync_status = DNS_CACHE_Q_OK;
    f->sync_addrs[0] = a4("127.0.0.1");
    f->sync_n = 1;
    f->sync_ttl = 0; /* hosts-file hit */
    f->now = 0;
    rec_init(&w);
    assert_int_equal(dns_cache_lookup(f->c, "localhost", 4, 0, &w.w, &e),
                     DNS_CACHE_MISS);
    /* Answer already stored, waiter parked, not called from inside. */
    assert_int_equal(e->state, DNS_CACHE_RESOLVED);
    assert_int_equal(w.woken, 0);
    assert_true(dns_cache_waiter_parked(&w.w));
    assert_false(e->inflight);
    assert_true(fabs(e->ttl - 1) < EPS); /* min_ttl */
    dns_cache_run_pending(f->c, 0);
    assert_int_equal(w.woken, 1);
    assert_int_equal(w.why, DNS_CACHE_WAKE_READY);
    assert_int_equal(dns_cache_lookup(f->c, "localhost", 4, 0.5, NULL, NULL),
                     DNS_CACHE_HIT);
    assert_int_equal(f->queries, 1);

    /* Synchronous failure (no servers, ENOMEM). */
    f->sync_status = DNS_CACHE_Q_ERROR;
    rec_init(&w2);
    assert_int_equal(dns_cache_lookup(f->c, "nosrv", 4, 0, &w2.w, &e),
                     DNS_CACHE_MISS);
    assert_int_equal(e->state, DNS_CACHE_FAILED);
    dns_cache_run_pending(f->c, 0);
    assert_int_equal(w2.why, DNS_CACHE_WAKE_NEGATIVE);
    assert_int_equal(f->queries, 2);

    /* Synchronous answers from tick never loop within one tick. */
    f->sync_status = DNS_CACHE_Q_OK;
    e = dns_cache_get(f->c, "pinned", 4);
    dns_cache_pin(f->c, e);
    dns_cache_tick(f->c, 0);
    assert_int_equal(f->queries, 3);
    assert_true(dns_cache_next_deadline(f->c, 0) >= DNS_CACHE_FLOOR / 2);
    fake_free(f);
}

/* ---- wakeups re-read the entry ---------------------------------------- */

static void
test_wake_rereads_new_query_in_flight(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct dns_cache_entry *e = dns_cache_get(f->c, "rr", 4);
    struct rec_waiter w;

    rec_init(&w);
    dns_cache_pin(f->c, e);
    assert_int_equal(dns_cache_lookup(f->c, "rr", 4, 0, &w.w, NULL),
                     DNS_CACHE_MISS);
    fail_query(f, DNS_CACHE_Q_SERVFAIL, 0);
    /* Before the wakeup runs, the pinned retry is already out. */
    dns_cache_tick(f->c, 5);
    assert_int_equal(f->queries, 2);
    assert_int_equal(e->state, DNS_CACHE_IN_PROGRESS);
    dns_cache_run_pending(f->c, 5);
    assert_int_equal(w.woken, 0); /* still waiting, on the new query */
    assert_true(dns_cache_waiter_parked(&w.w));
    answer4(f, 30, 5.5, 1, "10.0.0.1");
    dns_cache_run_pending(f->c, 5.5);
    assert_int_equal(w.woken, 1);
    assert_int_equal(w.why, DNS_CACHE_WAKE_READY);
    dns_cache_unpin(f->c, e);
    fake_free(f);
}

static void
test_wake_after_negative_window_asks_again(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct rec_waiter w;

    rec_init(&w);
    dns_cache_lookup(f->c, "late", 4, 0, &w.w, NULL);
    fail_query(f, DNS_CACHE_Q_TIMEOUT, 0);
    /* The loop got to the wakeup only after the negative window: the
     * failure is history, so the parked request waits on a new query. */
    dns_cache_run_pending(f->c, 6);
    assert_int_equal(w.woken, 0);
    assert_int_equal(f->queries, 2);
    answer4(f, 30, 6.1, 1, "10.0.0.1");
    dns_cache_run_pending(f->c, 6.1);
    assert_int_equal(w.why, DNS_CACHE_WAKE_READY);
    fake_free(f);
}

static void
test_aged_out_answer_not_resurrected(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct rec_waiter w;
    struct dns_cache_entry *e;

    cfg.stale_ttl = 0;
    dns_cache_set_config(f->c, &cfg);
    rec_init(&w);
    dns_cache_lookup(f->c, "sw", 4, 0, NULL, &e);
    answer4(f, 10, 0, 1, "10.0.0.1");
    /* Unusable at 10 (stale_ttl 0): the request parks on a new query. */
    assert_int_equal(dns_cache_lookup(f->c, "sw", 4, 10, &w.w, NULL),
                     DNS_CACHE_MISS);
    /* A reload widening stale_ttl does not bring back an answer that has
     * aged out (the pools were told EXPIRED): the failure is NEGATIVE. */
    cfg.stale_ttl = 60;
    dns_cache_set_config(f->c, &cfg);
    fail_query(f, DNS_CACHE_Q_SERVFAIL, 10);
    dns_cache_run_pending(f->c, 10);
    assert_int_equal(w.woken, 1);
    assert_int_equal(w.why, DNS_CACHE_WAKE_NEGATIVE);
    assert_int_equal(e->state, DNS_CACHE_FAILED);
    fake_free(f);
}

/* ---- removal ------------------------------------------------------------ */

static void
test_remove_with_waiters_and_query(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct rec_waiter w1, w2;
    struct dns_cache_entry *e, *old;

    rec_init(&w1);
    rec_init(&w2);
    dns_cache_lookup(f->c, "gone", 4, 0, &w1.w, &e);
    dns_cache_lookup(f->c, "gone", 4, 0, &w2.w, NULL);
    old = f->last;
    dns_cache_remove(f->c, e);
    assert_int_equal(dns_cache_count(f->c), 0);
    assert_null(dns_cache_find(f->c, "gone", 4));
    assert_int_equal(w1.woken, 0);
    dns_cache_run_pending(f->c, 0);
    assert_int_equal(w1.woken, 1);
    assert_int_equal(w1.why, DNS_CACHE_WAKE_GONE);
    assert_int_equal(w2.why, DNS_CACHE_WAKE_GONE);
    /* Re-added by a reload: a fresh entry and its own query. */
    assert_int_equal(dns_cache_lookup(f->c, "gone", 4, 1, NULL, NULL),
                     DNS_CACHE_MISS);
    assert_int_equal(f->queries, 2);
    /* The old query's late completion is ignored (ASan checks it). */
    answer4(f, 30, 2, 1, "10.0.0.1"); /* completes the new one */
    fake_complete(f, old, DNS_CACHE_Q_OK, NULL, 0, 30, 2);
    e = dns_cache_find(f->c, "gone", 4);
    assert_int_equal(e->state, DNS_CACHE_RESOLVED);
    assert_int_equal(e->queries[DNS_CACHE_Q_OK], 1);
    fake_free(f);
}

static void
test_remove_query_in_flight_no_waiters(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct dns_cache_entry *e;

    dns_cache_lookup(f->c, "q", 4, 0, NULL, &e);
    dns_cache_remove(f->c, e);
    assert_false(dns_cache_has_pending(f->c));
    answer4(f, 30, 1, 1, "10.0.0.1"); /* ignored, frees the entry */
    assert_int_equal(dns_cache_count(f->c), 0);
    fake_free(f);
}

static void
test_destroy_with_work_outstanding(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct rec_waiter w;
    struct rec_listener l;
    struct dns_cache_entry *e, *inflight;

    rec_init(&w);
    dns_cache_lookup(f->c, "d", 4, 0, &w.w, &e);
    inflight = f->last;
    rec_listen(f, e, &l);
    dns_cache_destroy(f->c);
    f->c = NULL;
    assert_false(dns_cache_waiter_parked(&w.w));
    assert_null(l.l.entry);
    dns_cache_cancel(&w.w);
    dns_cache_unlisten(&l.l);
    /* The resolver, destroyed after the cache, completes with an error:
     * ignored, and the orphan entry is freed (LeakSanitizer checks). */
    fake_complete(f, inflight, DNS_CACHE_Q_ERROR, NULL, 0, 0, 1);
    assert_int_equal(w.woken, 0);
    assert_int_equal(f->nout, 0);
    free(f);
}

/* ---- misc --------------------------------------------------------------- */

static void
test_bad_input(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    char longname[DNS_CACHE_NAME_MAX + 2];
    struct dns_cache_entry *e = (void *)1;
    struct rec_waiter w;

    rec_init(&w);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(dns_cache_lookup(f->c, "x", 5, 0, &w.w, &e),
                     DNS_CACHE_BAD);
    assert_null(e);
    assert_int_equal(dns_cache_lookup(f->c, "", 4, 0, &w.w, NULL),
                     DNS_CACHE_BAD);
    assert_int_equal(dns_cache_lookup(f->c, longname, 4, 0, &w.w, NULL),
                     DNS_CACHE_BAD);
    assert_false(dns_cache_waiter_parked(&w.w));
    assert_int_equal(f->queries, 0);
    for (int r = 0; r < DNS_CACHE_NRESULTS; r++)
        assert_int_equal(dns_cache_lookups(f->c, r), 0);
    assert_string_equal(dns_cache_result_name(DNS_CACHE_COALESCED),
                        "coalesced");
    assert_string_equal(dns_cache_status_name(DNS_CACHE_Q_SERVFAIL),
                        "servfail");
    assert_string_equal(dns_cache_state_name(DNS_CACHE_IN_PROGRESS),
                        "in_progress");
    fake_free(f);
}

static void
test_query_duration(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct dns_cache_entry *e;

    dns_cache_lookup(f->c, "t", 4, 10, NULL, &e);
    answer4(f, 1, 10.25, 1, "10.0.0.1");
    assert_int_equal(f->done_calls, 1);
    assert_true(fabs(f->done_secs - 0.25) < EPS);
    dns_cache_lookup(f->c, "t", 4, 11.5, NULL, NULL); /* stale refresh */
    fail_query(f, DNS_CACHE_Q_TIMEOUT, 12.5);
    assert_int_equal(e->query_count, 2);
    assert_true(fabs(e->query_seconds_sum - 1.25) < EPS);
    /* A second completion for the same query is ignored. */
    fail_query(f, DNS_CACHE_Q_TIMEOUT, 13);
    assert_int_equal(e->query_count, 2);
    assert_int_equal(f->done_calls, 2);
    fake_free(f);
}

static void
test_config_reload(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    struct dns_cache_entry *e;

    dns_cache_lookup(f->c, "r", 4, 0, NULL, &e);
    answer4(f, 10, 0, 1, "10.0.0.1");
    assert_int_equal(dns_cache_lookup(f->c, "r", 4, 30, NULL, NULL),
                     DNS_CACHE_STALE);
    fail_query(f, DNS_CACHE_Q_TIMEOUT, 30);
    cfg.stale_ttl = 5;
    dns_cache_set_config(f->c, &cfg);
    assert_true(fabs(e->stale_until - 15) < EPS);
    assert_int_equal(dns_cache_lookup(f->c, "r", 4, 30, NULL, NULL),
                     DNS_CACHE_MISS);
    fake_free(f);
}

static void
test_table_many_names(void **state)
{
    struct dns_cache_config cfg = test_config();
    struct fake *f = fake_new(&cfg);
    char name[64];
    const int n = 5000;

    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "host-%d.example", i);
        assert_non_null(dns_cache_get(f->c, name, 4 + 2 * (i & 1)));
    }
    assert_int_equal(dns_cache_count(f->c), n);
    for (int i = 0; i < n; i += 2) {
        snprintf(name, sizeof(name), "host-%d.example", i);
        dns_cache_remove(f->c, dns_cache_find(f->c, name, 4));
    }
    assert_int_equal(dns_cache_count(f->c), n / 2);
    for (int i = 0; i < n; i++) {
        struct dns_cache_entry *e;
        snprintf(name, sizeof(name), "host-%d.example", i);
        e = dns_cache_find(f->c, name, 4 + 2 * (i & 1));
        if (i & 1) {
            assert_non_null(e);
            assert_string_equal(e->name, name);
            assert_int_equal(e->family, 6);
        } else {
            assert_null(e);
        }
        /* Wrong family never matches. */
        assert_null(dns_cache_find(f->c, name, 4 + 2 * !(i & 1)));
    }
    fake_free(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_default),
        cmocka_unit_test(test_miss_resolve_hit),
        cmocka_unit_test(test_coalesced),
        cmocka_unit_test(test_ten_thousand_lookups_one_query),
        cmocka_unit_test(test_ten_thousand_stale_lookups_one_refresh),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_waiter_reused_parks_once),
        cmocka_unit_test(test_ttl_clamp),
        cmocka_unit_test(test_ttl_jitter_bounds),
        cmocka_unit_test(test_ttl_min_over_chain),
        cmocka_unit_test(test_stale_window_edges),
        cmocka_unit_test(test_stale_zero),
        cmocka_unit_test(test_negative_caching),
        cmocka_unit_test(test_failure_kinds),
        cmocka_unit_test(test_failure_keeps_usable_answer),
        cmocka_unit_test(test_backoff_growth_and_cap),
        cmocka_unit_test(test_pinned_retry_with_backoff),
        cmocka_unit_test(test_prefetch),
        cmocka_unit_test(test_prefetch_off_refreshes_pinned_at_expiry),
        cmocka_unit_test(test_set_change_notification),
        cmocka_unit_test(test_listener_callbacks_mutate),
        cmocka_unit_test(test_sync_completion),
        cmocka_unit_test(test_wake_rereads_new_query_in_flight),
        cmocka_unit_test(test_wake_after_negative_window_asks_again),
        cmocka_unit_test(test_aged_out_answer_not_resurrected),
        cmocka_unit_test(test_remove_with_waiters_and_query),
        cmocka_unit_test(test_remove_query_in_flight_no_waiters),
        cmocka_unit_test(test_destroy_with_work_outstanding),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_query_duration),
        cmocka_unit_test(test_config_reload),
        cmocka_unit_test(test_table_many_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
