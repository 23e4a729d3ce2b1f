/*
 * resolver: asynchronous name -> addresses for one family, on a libev loop.
 *
 * One c-ares 1.18 channel per resolver (one resolver per loop). c-ares
 * sockets are driven by ev_io watchers from its sock-state callback and its
 * retry clock by one ev_timer re-armed from ares_timeout() after every call
 * into c-ares. Nothing here blocks: IP literals and hosts-file names are
 * answered from memory, everything else is one DNS query per request.
 *
 *   resolver_resolve ─► literal? ─► hosts hit? ─► ares_getaddrinfo
 *          │               │            │               │ (c-ares callback:
 *          │               └────────────┴───────────────┤  copy, queue)
 *          ▼                                            ▼
 *   handle (cancel) ◄─────────── deliver timer (0 s) ─► cb(arg, result)
 *
 * Completions are always delivered from a zero-delay ev_timer, never from
 * inside a c-ares callback and never before resolver_resolve returns, so a
 * callback may start new requests, cancel others, reconfigure or destroy
 * the resolver.
 *
 * Channel lifetime: after a connection refusal, or after
 * RESOLVER_REBUILD_TIMEOUTS consecutive timeouts, the channel is replaced
 * by a fresh one (deferred to the deliver timer); resolver_reconfigure does
 * the same with new options. A replaced channel takes no new queries and is
 * destroyed once its in-flight queries have completed, each exactly once.
 */
#ifndef FERRY_RESOLVER_H
#define FERRY_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ev.h>

/* Consecutive timeouts on one channel that make it be rebuilt. */
#define RESOLVER_REBUILD_TIMEOUTS 3
/* Longest name accepted, without the trailing dot. */
#define RESOLVER_NAME_MAX 253

enum resolver_status {
    RESOLVER_OK,       /* at least one address */
    RESOLVER_NXDOMAIN, /* name does not exist (ENOTFOUND, ENONAME) */
    RESOLVER_SERVFAIL, /* server failure after every attempt */
    RESOLVER_TIMEOUT,  /* no answer within timeout x attempts */
    RESOLVER_EMPTY,    /* name exists, no address of this family (NODATA) */
    RESOLVER_ERROR,    /* anything else: refused, bad reply, ENOMEM, ... */
};

/* One address, without a port. */
struct resolver_addr {
    int family; /* AF_INET or AF_INET6 */
    union {
        struct in_addr v4;  /* when family == AF_INET */
        struct in6_addr v6; /* when family == AF_INET6 */
    } u;                    /* the address, network byte order */
};

/* What a completion callback receives; valid only during the callback. */
struct resolver_result {
    const char *name;                  /* as requested */
    int family;                        /* AF_INET or AF_INET6, as asked */
    enum resolver_status status;       /* outcome */
    const struct resolver_addr *addrs; /* in answer order, NULL if none */
    size_t naddrs;                     /* 0 unless status is OK */
    uint32_t ttl;    /* seconds: min over CNAME chain and records; 0 for
                        literals and hosts-file hits ("use min_ttl") */
    double duration; /* seconds from request to answer (monotonic) */
    bool sent;       /* a query went upstream (count it in
                        ferry_dns_queries_total); false for literals,
                        hosts-file hits and requests that failed locally */
    int ares_status; /* raw c-ares status, for logs */
};

typedef void (*resolver_cb)(void *arg, const struct resolver_result *res);

/* Options, copied by resolver_init / resolver_reconfigure. */
struct resolver_options {
    const struct sockaddr_storage *nameservers; /* IPv4/IPv6 with port (0 =
                                                   53); none = resolv.conf */
    size_t nnameservers;                        /* entries in nameservers */
    const char *hosts_file;                     /* path, or NULL for off */
    double timeout;                             /* seconds per attempt (> 0) */
    unsigned attempts;                          /* tries per request (>= 1) */
};

/* Counters since resolver_init (monotonic, never reset). */
struct resolver_stats {
    uint64_t queries;     /* requests sent upstream */
    uint64_t literals;    /* answered as IP literals */
    uint64_t hosts_hits;  /* answered from the hosts file */
    uint64_t rebuilds;    /* channels replaced */
    uint64_t hosts_loads; /* hosts-file (re)reads */
};

struct resolver;
struct resolver_req;

/*
 * Calls ares_library_init once per process; call it before any thread
 * starts. resolver_init calls it too, so single-threaded callers may skip it.
 * Returns 0 or -1.
 */
int resolver_library_init(void);

/* Creates a resolver on loop. Returns NULL on error (logged). */
struct resolver *resolver_init(struct ev_loop *loop,
                               const struct resolver_options *opts);

/*
 * Drops every pending request without calling back and frees r. Safe from
 * inside a completion callback (the rest of that delivery pass is dropped).
 */
void resolver_destroy(struct resolver *r);

/*
 * Replaces the options: builds a new channel at once (the old one finishes
 * what it has in flight) and re-reads the hosts file. On error returns -1
 * and keeps the old options.
 */
int resolver_reconfigure(struct resolver *r,
                         const struct resolver_options *opts);

/*
 * Starts resolving name for family (AF_INET or AF_INET6). cb(arg, res) is
 * called exactly once, later, from the loop, unless the request is
 * cancelled first. Returns a handle valid until cb is called or the request
 * is cancelled, or NULL (invalid name or family, out of memory): then cb is
 * never called.
 */
struct resolver_req *resolver_resolve(struct resolver *r, const char *name,
                                      int family, resolver_cb cb, void *arg);

/* cb of req will not be called; req is invalid afterwards. */
void resolver_cancel(struct resolver_req *req);

/* "ok", "nxdomain", "servfail", "timeout", "empty", "error". */
const char *resolver_status_name(enum resolver_status status);

/* Writes addr with port (host order) into ss; returns its length. */
socklen_t resolver_addr_to_sockaddr(const struct resolver_addr *addr,
                                    uint16_t port, struct sockaddr_storage *ss);

void resolver_get_stats(const struct resolver *r, struct resolver_stats *st);

#endif
