/*
 * dns_cache: the DNS cache state machine (pure logic, no I/O, no clock).
 *
 * One entry per (name, family), family 4 (A) or 6 (AAAA). Queries leave
 * through ops->start_query; answers come back through dns_cache_complete.
 * Time (double seconds, monotonic) and randomness are arguments, so the
 * unit tests drive everything with a fake clock and a fake resolver.
 *
 *              lookup: MISS              answer with >= 1 address
 *     IDLE ----------------> IN_PROGRESS -----------------------> RESOLVED
 *     ^  ^  (tick if pinned)   |     ^   lookups park: COALESCED   | |  |
 *     |  |              failure|     |                             | |  |
 *     |  |                     v     +-- stale limit passed, ------+ |  |
 *     |  +--- window over -- FAILED      refresh in flight           |  |
 *     |       lookups: NEGATIVE                                      |  |
 *     |                          refresh answered or failed: <-------+  |
 *     |                          stays RESOLVED                         |
 *     +--------------- stale limit passed, no query in flight ----------+
 *
 *   RESOLVED: a usable answer (now < stale limit). now < expiry: HIT, else
 *     STALE. A background refresh may be in flight (`inflight`); its failure
 *     keeps the answer (docs/dns.md: a failure never discards a usable
 *     answer) and only pushes the next attempt back (`retry_at`, backoff).
 *   FAILED: no usable answer and the last query failed: NEGATIVE until
 *     `neg_until` (backoff), then IDLE: the next lookup, or the timer for
 *     a pinned name, sends a new query.
 *   Time-driven moves (expiry, stale limit, negative window) are applied
 *   lazily by whoever looks at the entry (lookup, tick, complete,
 *   run_pending), so nothing depends on the timer firing on time.
 *
 * Deferred work: dns_cache_complete (called from a c-ares callback) only
 * records the result and queues the entry; waiters and listeners are called
 * from dns_cache_run_pending, which the loop glue calls from an ev_prepare
 * or ev_idle, never from inside c-ares. A woken waiter is told what the
 * entry holds at wake time (re-read), not what the completion said.
 *
 * Ownership: waiters and listeners are memory of the caller (embedded in a
 * connection or a pool), linked intrusively: parking and cancelling cost
 * O(1) and allocate nothing. The cache touches a waiter only while it is
 * parked: from the moment its callback starts it is unparked, so the
 * callback may free it, and dns_cache_cancel on an unparked waiter is a
 * no-op (cancel after wakeup, or twice, is harmless). Same for listeners.
 *
 * Entries are refcounted: the table, an in-flight query and the pending
 * queue each hold one reference. A removed entry (reload) leaves the table
 * at once; its parked waiters are woken with DNS_CACHE_WAKE_GONE and its
 * in-flight query's completion is ignored, and it is freed after both.
 * Contract with the resolver: every start_query gets exactly one
 * dns_cache_complete, possibly synchronously inside start_query (c-ares
 * does that for literals and hosts-file hits), and also when the channel
 * is destroyed (ARES_EDESTRUCTION -> DNS_CACHE_Q_ERROR).
 */
#ifndef FERRY_DNS_CACHE_H
#define FERRY_DNS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "list.h"

/* Nothing (answer or failure) is stored for less than this, whatever the
 * TTL or the config says: a zero TTL (hosts file, literal) or a zero
 * negative_ttl must never turn into a query loop. */
#define DNS_CACHE_FLOOR 0.5
/* Backoff of a name that keeps failing: the k-th consecutive failure is
 * cached for negative_ttl * 2^(k-1), capped at BACKOFF_MULT * negative_ttl
 * but never above BACKOFF_CAP seconds (unless negative_ttl itself is
 * larger), then jittered like a TTL. */
#define DNS_CACHE_BACKOFF_MULT 8.0
#define DNS_CACHE_BACKOFF_CAP 60.0
/* Longest name accepted (253 + trailing dot + slack). */
#define DNS_CACHE_NAME_MAX 255

enum dns_cache_state {
    DNS_CACHE_IDLE,        /* nothing known, no query */
    DNS_CACHE_IN_PROGRESS, /* query in flight, no usable answer */
    DNS_CACHE_RESOLVED,    /* usable answer (fresh or stale) */
    DNS_CACHE_FAILED,      /* failure cached, no usable answer */
};

/* Lookup outcomes; the first five are ferry_dns_lookups_total{result}. */
enum dns_cache_result {
    DNS_CACHE_BAD = -1,  /* bad name/family or ENOMEM: not
                                           counted, nothing parked */
    DNS_CACHE_HIT = 0,   /* fresh answer */
    DNS_CACHE_STALE,     /* expired, within stale_ttl */
    DNS_CACHE_MISS,      /* no answer: query started, parked */
    DNS_CACHE_COALESCED, /* query already in flight, parked */
    DNS_CACHE_NEGATIVE,  /* failure cached, no answer */
    DNS_CACHE_NRESULTS
};

/* Query outcomes; ferry_dns_queries_total{name,result}. */
enum dns_cache_status {
    DNS_CACHE_Q_OK = 0,   /* answer (empty counts as a failure
                                           in the cache, "ok" in metrics) */
    DNS_CACHE_Q_NXDOMAIN, /* name does not exist */
    DNS_CACHE_Q_SERVFAIL, /* server failure / refused */
    DNS_CACHE_Q_TIMEOUT,  /* every attempt timed out */
    DNS_CACHE_Q_ERROR,    /* anything else (incl. destroy) */
    DNS_CACHE_Q_NSTATUS
};

/* Why a parked waiter is woken (from the entry as it is at wake time). */
enum dns_cache_wake {
    DNS_CACHE_WAKE_READY,    /* usable answer in the entry */
    DNS_CACHE_WAKE_NEGATIVE, /* failure cached, no answer */
    DNS_CACHE_WAKE_GONE,     /* entry removed (reload/destroy) */
};

/* What a listener (the pool of a name) is told. */
enum dns_cache_event {
    DNS_CACHE_EV_CHANGED,   /* usable set differs from the last
                                           one this listener saw (or it had
                                           none): apply the addresses */
    DNS_CACHE_EV_REFRESHED, /* same set, new TTL: nothing to do */
    DNS_CACHE_EV_EXPIRED,   /* answer older than TTL+stale_ttl
                                           (or none): remove the members */
};

struct dns_cache;
struct dns_cache_entry;
struct dns_cache_waiter;
struct dns_cache_listener;

typedef void (*dns_cache_wake_fn)(struct dns_cache_waiter *w,
                                  enum dns_cache_wake why,
                                  const struct dns_cache_entry *e);
typedef void (*dns_cache_event_fn)(struct dns_cache_listener *l,
                                   enum dns_cache_event ev,
                                   const struct dns_cache_entry *e);

/* Caller-owned; init with dns_cache_waiter_init. Fields are private. */
struct dns_cache_waiter {
    struct list link;              /* in entry's waiters while parked */
    struct dns_cache_entry *entry; /* parked on; NULL = not parked */
    dns_cache_wake_fn cb;          /* called once per park */
    void *arg;                     /* for the owner */
};

/* Caller-owned; a subscription of a pool to one entry. Private fields. */
struct dns_cache_listener {
    struct list link;              /* in the entry's listeners */
    struct dns_cache_entry *entry; /* subscribed to; NULL = detached */
    dns_cache_event_fn cb;         /* event callback */
    void *arg;                     /* for the owner */
    uint64_t seen_set;             /* set generation last delivered */
    uint64_t seen_answer;          /* answer generation last delivered */
    bool seen_usable;              /* last delivery had a usable set */
};

/* Seconds, fractions; replaced as a whole on reload. */
struct dns_cache_config {
    double min_ttl;      /* TTL floor */
    double max_ttl;      /* TTL ceiling */
    double negative_ttl; /* failure caching, backoff base */
    double stale_ttl;    /* serve past expiry; 0 = never */
    double jitter;       /* TTL scaled by [1-j, 1+j] */
    double prefetch;     /* refresh at this TTL share left */
};

struct dns_cache_ops {
    /* Required. Send one query; exactly one dns_cache_complete(e) must
     * follow, possibly before this returns. Must not call into the cache
     * other than dns_cache_complete. */
    void (*start_query)(void *ctx, const char *name, int family,
                        struct dns_cache_entry *e);
    /* Optional. Work was queued (pending list went non-empty): make the
     * loop call dns_cache_run_pending soon (ev_idle_start). May be called
     * from inside a c-ares callback. */
    void (*wake_pending)(void *ctx);
    /* Optional. A query finished after `seconds` (for the
     * ferry_dns_query_seconds histogram). Called synchronously from
     * dns_cache_complete: must not call into the cache. */
    void (*query_done)(void *ctx, const struct dns_cache_entry *e,
                       enum dns_cache_status st, double seconds);
    /* Optional. Uniform double in [0, 1) for jitter; NULL = no jitter. */
    double (*random)(void *ctx);
};

/*
 * One cache entry. Fields are readable by stats and pool code (read only;
 * valid until the entry is removed). Addresses are stored as a set:
 * struct sockaddr_storage with only the family, the address and (IPv6) the
 * scope id set, port 0, sorted and deduplicated.
 */
struct dns_cache_entry {
    /* Hot: what a cache-hit lookup reads and writes, first cache lines. */
    uint64_t hash;                        /* of (name, family) */
    int family;                           /* 4 or 6 */
    enum dns_cache_state state;           /* see diagram */
    bool inflight;                        /* a query is out (one at most) */
    bool removed;                         /* out of the table, dying */
    bool pending;                         /* queued for run_pending */
    bool used;                            /* looked up since last answer */
    unsigned pins;                        /* listeners + dns_cache_pin */
    double expires;                       /* answered_at + ttl */
    double stale_until;                   /* expires + stale_ttl */
    double prefetch_at;                   /* background refresh from here */
    double retry_at;                      /* no new query before this */
    uint64_t lookups[DNS_CACHE_NRESULTS]; /* by result; [HIT] = hits */
    struct sockaddr_storage *addrs;       /* current set (valid if RESOLVED) */
    size_t naddrs;                        /* addresses in the set */

    struct dns_cache *cache;              /* owner; NULL once removed */
    unsigned refs;                        /* table + query + pending queue */
    struct dns_cache_entry *pending_next; /* pending queue link */
    size_t cap;                           /* slots allocated in addrs */
    uint64_t set_gen;                     /* bumped when the set changes */
    uint64_t answer_gen;                  /* bumped on every good answer */

    double ttl;                        /* stored TTL (clamped, jittered) */
    double answered_at;                /* last good answer (answer_gen > 0) */
    double neg_until;                  /* FAILED: negative window end */
    unsigned fails;                    /* consecutive failed queries */
    enum dns_cache_status last_status; /* of the last completed query */
    const char *last_error;            /* static text, NULL = none yet */

    double query_started;                  /* when the in-flight query left */
    double query_seconds_sum;              /* completed queries' durations */
    uint64_t query_count;                  /* completed queries */
    uint64_t queries[DNS_CACHE_Q_NSTATUS]; /* by status */
    uint64_t failures;                     /* failed queries (incl. empty) */

    struct list waiters;   /* parked waiters, FIFO */
    struct list listeners; /* listeners, FIFO */
    char name[];           /* NUL-terminated, as given */
};

/* The documented defaults, those of the [resolver] keys (CONFIG_DEFAULT_* in
 * config.h), for callers that have no struct config (benchmarks). */
void dns_cache_config_default(struct dns_cache_config *cfg);

/* Returns NULL on ENOMEM. ops is copied; ctx is passed to every op. */
struct dns_cache *dns_cache_create(const struct dns_cache_config *cfg,
                                   const struct dns_cache_ops *ops, void *ctx);
/*
 * Frees every entry without calling any waiter or listener (they are
 * unparked/detached, so a later cancel is a harmless no-op). Entries with
 * a query in flight live on until its completion, which is then ignored;
 * still, destroy the resolver first.
 */
void dns_cache_destroy(struct dns_cache *c);
/* Reload: TTL rules apply to the next answers; stale limits of stored
 * answers are recomputed at once. */
void dns_cache_set_config(struct dns_cache *c,
                          const struct dns_cache_config *cfg);

/* Find or create the entry (IDLE). NULL on a bad name/family or ENOMEM. */
struct dns_cache_entry *dns_cache_get(struct dns_cache *c, const char *name,
                                      int family);
/* Find only. */
struct dns_cache_entry *dns_cache_find(struct dns_cache *c, const char *name,
                                       int family);
/*
 * Remove (reload dropped the name): parked waiters are woken GONE at the
 * next run_pending, listeners are detached silently, a query in flight is
 * forgotten. e must not be used afterwards.
 */
void dns_cache_remove(struct dns_cache *c, struct dns_cache_entry *e);

/*
 * The data-plane call. Finds or creates the entry for (name, family) and
 * returns what can be done now; *out (if not NULL) gets the entry (NULL on
 * DNS_CACHE_BAD). HIT/STALE: e->addrs usable now. MISS/COALESCED: w (if not
 * NULL) is parked and its callback runs later from dns_cache_run_pending,
 * never from inside this call, even when the answer came synchronously.
 * NEGATIVE: nothing to wait for. A w parked elsewhere is cancelled first.
 */
enum dns_cache_result dns_cache_lookup(struct dns_cache *c, const char *name,
                                       int family, double now,
                                       struct dns_cache_waiter *w,
                                       struct dns_cache_entry **out);
/* Same, for a caller that holds the entry (e.g. through a listener). */
enum dns_cache_result dns_cache_lookup_entry(struct dns_cache *c,
                                             struct dns_cache_entry *e,
                                             double now,
                                             struct dns_cache_waiter *w);

void dns_cache_waiter_init(struct dns_cache_waiter *w, dns_cache_wake_fn cb,
                           void *arg);
/* O(1); safe at any time; no-op if not parked (already woken, cancelled). */
void dns_cache_cancel(struct dns_cache_waiter *w);
bool dns_cache_waiter_parked(const struct dns_cache_waiter *w);

/*
 * Subscribe l to e (this pins e: it is refreshed in the background, and a
 * failing e is retried with backoff, without lookups). The first delivery
 * (CHANGED if e has a usable answer) comes at the next run_pending. Events
 * are level-triggered per listener: each one tells the difference between
 * what the entry holds at delivery time and what this listener last saw.
 */
void dns_cache_listen(struct dns_cache *c, struct dns_cache_entry *e,
                      struct dns_cache_listener *l, dns_cache_event_fn cb,
                      void *arg);
/* O(1); no-op if detached. Safe from inside any callback. */
void dns_cache_unlisten(struct dns_cache_listener *l);
/* Pin without a listener (counted; unpin as many times). */
void dns_cache_pin(struct dns_cache *c, struct dns_cache_entry *e);
void dns_cache_unpin(struct dns_cache *c, struct dns_cache_entry *e);

/*
 * A query finished. status OK with no address of e's family counts as an
 * "empty answer" failure. ttl: the minimum TTL over the CNAME chain and the
 * address records (see dns_cache_ttl_min); negative values are clamped to
 * 0, then to [min_ttl, max_ttl], then scaled by the jitter factor. A
 * completion for a removed entry, or without a query in flight, is ignored.
 * Never calls a waiter or listener.
 */
void dns_cache_complete(struct dns_cache *c, struct dns_cache_entry *e,
                        enum dns_cache_status status,
                        const struct sockaddr_storage *addrs, size_t naddrs,
                        long ttl, double now);
/* Minimum of n TTLs as c-ares gives them (signed: negatives count as 0);
 * 0 when n == 0. Pass the CNAME TTLs and the address TTLs together. */
long dns_cache_ttl_min(const int *ttls, size_t n);

/*
 * Wake waiters and deliver listener events queued so far (entries queued
 * while this runs wait for the next call). Returns true if more work is
 * queued: call again (keep the ev_idle running).
 */
bool dns_cache_run_pending(struct dns_cache *c, double now);
bool dns_cache_has_pending(const struct dns_cache *c);
/* Time-driven work: prefetch, stale expiry, negative expiry, retries of
 * pinned names. Cost O(entries). */
void dns_cache_tick(struct dns_cache *c, double now);
/* When to call dns_cache_tick next (absolute, <= now means at once);
 * INFINITY when nothing is scheduled. Cached: cheap between changes. */
double dns_cache_next_deadline(struct dns_cache *c, double now);

/* Stats. */
uint64_t dns_cache_lookups(const struct dns_cache *c, enum dns_cache_result r);
size_t dns_cache_count(const struct dns_cache *c);
void dns_cache_foreach(struct dns_cache *c,
                       void (*fn)(const struct dns_cache_entry *e, void *arg),
                       void *arg);
const char *dns_cache_result_name(enum dns_cache_result r);
const char *dns_cache_status_name(enum dns_cache_status s);
const char *dns_cache_state_name(enum dns_cache_state s);

#endif
