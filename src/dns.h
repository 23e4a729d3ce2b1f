/*
 * dns: the DNS plane on the event loop. Glues the c-ares resolver
 * (resolver.c) to the cache state machine (dns_cache.c):
 *
 *   dns_cache ──start_query──► resolver_resolve ──(deferred cb)──►
 *        ▲                                         dns_cache_complete
 *        └── ev_idle: dns_cache_run_pending (waiters, pool listeners)
 *        └── ev_timer at dns_cache_next_deadline: dns_cache_tick
 *
 * The dns object outlives runtimes: a reload builds new pools that
 * subscribe to the same entries, so names still in use keep their answers.
 * Cache deadlines use CLOCK_MONOTONIC (ev_now follows the wall clock).
 */
#ifndef FERRY_DNS_H
#define FERRY_DNS_H

#include <ev.h>
#include <stdint.h>

#include "config.h"
#include "dns_cache.h"
#include "histogram.h"

struct dns;

/* Per-name upstream query counters (ferry_dns_queries_total). */
struct dns_name_stats {
    char name[DNS_CACHE_NAME_MAX + 1];      /* the name asked for */
    uint64_t upstream[DNS_CACHE_Q_NSTATUS]; /* queries sent, by result */
    struct histogram hist;                  /* their durations */
};

/* Returns NULL with a message in err. */
struct dns *dns_create(struct ev_loop *loop, const struct config *cfg,
                       char *err, size_t errlen);
void dns_destroy(struct dns *d);
/* Reload: new resolver options and cache rules. -1 keeps the old ones. */
int dns_reconfigure(struct dns *d, const struct config *cfg, char *err,
                    size_t errlen);
struct dns_cache *dns_cache_of(struct dns *d);
/* Monotonic seconds: the clock of every cache deadline. */
double dns_now(void);
struct dns_name_stats *dns_name_stats_get(struct dns *d, const char *name);
struct dns_name_stats *const *dns_name_stats_all(const struct dns *d,
                                                 size_t *n);
/* Address families to ask for a name under cfg: 4, 6 or both. */
size_t dns_families(const struct config *cfg, int out[2]);

#endif
