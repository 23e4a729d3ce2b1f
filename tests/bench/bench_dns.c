/*
 * bench_dns: lookups per second through ferry's DNS plane (dns.c: cache +
 * c-ares resolver on a real libev loop) and through glibc getaddrinfo,
 * against the same nameserver. tests/bench/bench_dns.py drives it (dnsmasq,
 * pinning, rounds, medians); run alone it measures one round.
 *
 *   bench_dns ferry -s NS -f HOSTS [-c CONC] [-p PASSES] [-w WARM]
 *   bench_dns glibc -f HOSTS [-p PASSES]
 *
 * HOSTS is a hosts-format file ("IPv4 NAME" per line) of the names the
 * nameserver serves; every answer is checked against it.
 *
 * ferry: the [resolver] defaults of config.c (config_load of a generated
 * file that only sets `nameservers = NS`), one dns object on EV_DEFAULT.
 *   cold: each pass builds a fresh dns object (empty cache; not timed) and
 *     looks every name up once with dns_cache_lookup on dns_cache_of(d),
 *     at most CONC parked at once: every lookup is a MISS that goes to the
 *     nameserver and wakes its waiter from the loop.
 *   warm: WARM lookups of the same names (now cached) from an ev_idle
 *     callback, CONC per loop iteration, like CONC connections each doing
 *     one lookup per iteration; every one must be a HIT.
 * glibc: PASSES x names getaddrinfo(AF_INET, SOCK_STREAM) calls in a row
 *   on one thread, as a proxy that resolves synchronously does.
 *
 * Output, one line per phase, key=value:
 *   PHASE lookups=N seconds=S rate=R cpu_us=U bad=B
 * cpu_us is this process's user+system CPU per lookup. Exit status 0 if
 * every lookup was answered with the expected address (and, warm, was a
 * hit), 1 otherwise, 2 on bad usage or set-up failure.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "config.h"
#include "dns.h"
#include "dns_cache.h"

/* Longest time one cold pass may take: the resolver's own bound is
 * timeout x (1 + 2 + 4) per lookup with the defaults (1 s, 3 attempts). */
#define BENCH_PASS_LIMIT 30.0
#define BENCH_MAX_NAMES 1000000

/* One name of the hosts file and the address it must resolve to. */
struct bench_name {
    char *name;                         /* as looked up */
    struct in_addr addr;                /* expected A record */
};

/* One in-flight lookup: a connection's waiter in the data plane. */
struct bench_slot {
    struct dns_cache_waiter w;          /* parked on the entry */
    struct bench_run *run;              /* owner */
    size_t name;                        /* index into run->names */
    bool busy;                          /* parked, waiting for its wake */
};

/* State of one phase, shared with the callbacks. */
struct bench_run {
    struct ev_loop *loop;               /* EV_DEFAULT */
    struct dns *d;                      /* the DNS plane under test */
    struct bench_name *names;           /* from the hosts file */
    size_t nnames;                      /* entries in names */
    struct bench_slot *slots;           /* CONC of them */
    size_t nslots;                      /* concurrency */
    unsigned long total;                /* lookups to do in this phase */
    unsigned long issued;               /* lookups started */
    unsigned long done;                 /* lookups finished */
    unsigned long bad;                  /* wrong result or address */
    unsigned long results[DNS_CACHE_NRESULTS]; /* by lookup result */
    size_t next;                        /* next name to look up */
    ev_idle kick;                       /* issues lookups for free slots */
    ev_timer limit;                     /* bounds the phase */
    bool timed_out;                     /* limit fired */
};

static double
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* User + system CPU seconds of this process. */
static double
cpu(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void
report(const char *phase, unsigned long n, double secs, double cpus,
       unsigned long bad)
{
    printf("%s lookups=%lu seconds=%.6f rate=%.0f cpu_us=%.3f bad=%lu\n",
           phase, n, secs, secs > 0 ? (double)n / secs : 0.0,
           n ? cpus * 1e6 / (double)n : 0.0, bad);
    fflush(stdout);
}

/* Reads "IPv4 NAME..." lines (first name of each); skips the rest. */
static struct bench_name *
load_names(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "r");
    struct bench_name *v = NULL;
    size_t cap = 0;
    char line[512];

    *n = 0;
    if (fp == NULL) {
        perror(path);
        return NULL;
    }
    while (fgets(line, sizeof(line), fp) != NULL && *n < BENCH_MAX_NAMES) {
        char ip[64], name[DNS_CACHE_NAME_MAX + 1];
        struct in_addr a;

        if (sscanf(line, "%63s %255s", ip, name) != 2 || ip[0] == '#' ||
            inet_pton(AF_INET, ip, &a) != 1)
            continue;
        if (*n == cap) {
            struct bench_name *g;
            cap = cap ? 2 * cap : 1024;
            g = realloc(v, cap * sizeof(*v));
            if (g == NULL)
                break;
            v = g;
        }
        v[*n].name = strdup(name);
        v[*n].addr = a;
        if (v[*n].name == NULL)
            break;
        (*n)++;
    }
    fclose(fp);
    return v;
}

/* Whether entry e holds exactly the address expected for name i. */
static bool
entry_ok(const struct bench_run *run, size_t i,
         const struct dns_cache_entry *e)
{
    const struct sockaddr_in *sin;

    if (e == NULL || e->state != DNS_CACHE_RESOLVED || e->naddrs != 1)
        return false;
    sin = (const struct sockaddr_in *)&e->addrs[0];
    return sin->sin_family == AF_INET &&
           sin->sin_addr.s_addr == run->names[i].addr.s_addr;
}

static void
phase_check_end(struct bench_run *run)
{
    if (run->done == run->total)
        ev_break(run->loop, EVBREAK_ONE);
}

/* A parked lookup is woken from dns_cache_run_pending (dns.c's ev_idle). */
static void
on_wake(struct dns_cache_waiter *w, enum dns_cache_wake why,
        const struct dns_cache_entry *e)
{
    struct bench_slot *s = w->arg;
    struct bench_run *run = s->run;

    s->busy = false;
    run->done++;
    if (why != DNS_CACHE_WAKE_READY || !entry_ok(run, s->name, e))
        run->bad++;
    if (run->issued < run->total)
        ev_idle_start(run->loop, &run->kick);
    phase_check_end(run);
}

/* One loop iteration: every free slot does one lookup. */
static void
on_kick(struct ev_loop *loop, ev_idle *w, int revents)
{
    struct bench_run *run = w->data;
    struct dns_cache *cache = dns_cache_of(run->d);
    /* One clock read per batch, as the data plane does per callback. */
    double now = dns_now();

    (void)revents;
    for (size_t k = 0; k < run->nslots && run->issued < run->total; k++) {
        struct bench_slot *s = &run->slots[k];
        struct dns_cache_entry *e;
        enum dns_cache_result r;

        if (s->busy)
            continue;
        s->name = run->next;
        if (++run->next == run->nnames)
            run->next = 0;
        run->issued++;
        r = dns_cache_lookup(cache, run->names[s->name].name, 4, now, &s->w,
                             &e);
        if (r >= 0)
            run->results[r]++;
        if (r == DNS_CACHE_MISS || r == DNS_CACHE_COALESCED) {
            s->busy = true;
            continue;
        }
        run->done++;
        if ((r != DNS_CACHE_HIT && r != DNS_CACHE_STALE) ||
            !entry_ok(run, s->name, e))
            run->bad++;
    }
    if (run->issued == run->total)
        ev_idle_stop(loop, w);
    else {
        bool any_free = false;
        for (size_t k = 0; k < run->nslots && !any_free; k++)
            any_free = !run->slots[k].busy;
        if (!any_free)
            ev_idle_stop(loop, w);
    }
    phase_check_end(run);
}

static void
on_limit(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct bench_run *run = w->data;

    (void)revents;
    run->timed_out = true;
    ev_break(loop, EVBREAK_ONE);
}

/* Runs total lookups from the current name on; returns 0 if all ended. */
static int
phase_run(struct bench_run *run, unsigned long total, double limit)
{
    memset(run->results, 0, sizeof(run->results));
    run->total = total;
    run->issued = run->done = 0;
    run->timed_out = false;
    for (size_t k = 0; k < run->nslots; k++) {
        run->slots[k].busy = false;
        run->slots[k].run = run;
        dns_cache_waiter_init(&run->slots[k].w, on_wake, &run->slots[k]);
    }
    ev_timer_set(&run->limit, limit, 0);
    ev_timer_start(run->loop, &run->limit);
    ev_idle_start(run->loop, &run->kick);
    /* Bounded: every lookup ends within the resolver's retry bound, and
     * the limit timer breaks out regardless. */
    while (run->done < run->total && !run->timed_out)
        ev_run(run->loop, 0);
    ev_timer_stop(run->loop, &run->limit);
    ev_idle_stop(run->loop, &run->kick);
    for (size_t k = 0; k < run->nslots; k++)
        dns_cache_cancel(&run->slots[k].w);
    if (run->timed_out) {
        fprintf(stderr, "bench_dns: phase timed out after %.0f s "
                "(%lu of %lu lookups done)\n", limit, run->done, run->total);
        return -1;
    }
    return 0;
}

/* A config with config.c's defaults; only the nameserver is set. */
static struct config *
bench_config(const char *ns)
{
    char path[] = "/tmp/bench_dns.XXXXXX";
    struct config_errors errs;
    struct config *cfg;
    int fd = mkstemp(path);
    FILE *fp;

    if (fd < 0 || (fp = fdopen(fd, "w")) == NULL) {
        perror("bench_dns: config file");
        return NULL;
    }
    /* The frontend and backend only satisfy validation: nothing is bound. */
    fprintf(fp, "[resolver]\nnameservers = %s\n\n"
                "[frontend bench]\nlisten = 127.0.0.1:1\nmode = tcp\n"
                "backend = bench\n\n"
                "[backend bench]\nserver = 127.0.0.1:1\n", ns);
    fclose(fp);
    cfg = config_load(path, &errs);
    unlink(path);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "bench_dns: %s\n", errs.msgs[i]);
    config_errors_free(&errs);
    return cfg;
}

static int
bench_ferry(struct bench_name *names, size_t nnames, const char *ns,
            size_t conc, unsigned passes, unsigned long warm)
{
    struct bench_run run = {.names = names, .nnames = nnames};
    struct config *cfg = bench_config(ns);
    double cold_s = 0, cold_cpu = 0, t0, c0;
    unsigned long cold_bad = 0, queries = 0;
    char err[256];
    int rc = 2;

    if (cfg == NULL)
        return 2;
    run.loop = EV_DEFAULT;
    run.nslots = conc;
    run.slots = calloc(conc, sizeof(*run.slots));
    if (run.slots == NULL)
        goto out;
    ev_idle_init(&run.kick, on_kick);
    ev_timer_init(&run.limit, on_limit, 0, 0);
    run.kick.data = run.limit.data = &run;

    for (unsigned p = 0; p < passes; p++) {
        struct dns_name_stats *const *st;
        size_t nst;

        /* A fresh dns object per pass: an empty cache, every lookup a miss. */
        run.d = dns_create(run.loop, cfg, err, sizeof(err));
        if (run.d == NULL) {
            fprintf(stderr, "bench_dns: %s\n", err);
            goto out;
        }
        run.next = 0;
        t0 = mono();
        c0 = cpu();
        if (phase_run(&run, nnames, BENCH_PASS_LIMIT) < 0) {
            dns_destroy(run.d);
            goto out;
        }
        cold_s += mono() - t0;
        cold_cpu += cpu() - c0;
        cold_bad += run.bad + (run.results[DNS_CACHE_MISS] != nnames);
        run.bad = 0;
        /* Every cold lookup must have been one query upstream. */
        st = dns_name_stats_all(run.d, &nst);
        for (size_t i = 0; i < nst; i++)
            for (int s = 0; s < DNS_CACHE_Q_NSTATUS; s++)
                queries += st[i]->upstream[s];

        if (p + 1 < passes) {
            dns_destroy(run.d);
            run.d = NULL;
        }
    }
    if (queries != (unsigned long)passes * nnames) {
        fprintf(stderr, "bench_dns: %lu queries upstream for %lu cold "
                "lookups\n", queries, (unsigned long)passes * nnames);
        cold_bad++;
    }
    report("cold", (unsigned long)passes * nnames, cold_s, cold_cpu,
           cold_bad);

    /* Warm: the last pass's cache holds every name. */
    run.next = 0;
    t0 = mono();
    c0 = cpu();
    if (phase_run(&run, warm, BENCH_PASS_LIMIT) < 0) {
        dns_destroy(run.d);
        goto out;
    }
    {
        double secs = mono() - t0, cpus = cpu() - c0;
        run.bad += warm - run.results[DNS_CACHE_HIT];
        report("warm", warm, secs, cpus, run.bad);
    }
    dns_destroy(run.d);
    rc = cold_bad || run.bad ? 1 : 0;
out:
    free(run.slots);
    config_free(cfg);
    return rc;
}

static int
bench_glibc(struct bench_name *names, size_t nnames, unsigned passes)
{
    const struct addrinfo hints = {.ai_family = AF_INET,
                                   .ai_socktype = SOCK_STREAM};
    unsigned long n = (unsigned long)passes * nnames, bad = 0;
    double t0 = mono(), c0 = cpu(), secs;

    for (unsigned long i = 0; i < n; i++) {
        const struct bench_name *bn = &names[i % nnames];
        struct addrinfo *ai = NULL;
        int err = getaddrinfo(bn->name, NULL, &hints, &ai);

        if (err != 0 || ai == NULL || ai->ai_next != NULL ||
            ai->ai_family != AF_INET ||
            ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr !=
                bn->addr.s_addr) {
            if (bad++ == 0)
                fprintf(stderr, "bench_dns: getaddrinfo %s: %s\n", bn->name,
                        err ? gai_strerror(err) : "unexpected answer");
        }
        if (ai != NULL)
            freeaddrinfo(ai);
    }
    secs = mono() - t0;
    report("glibc", n, secs, cpu() - c0, bad);
    return bad ? 1 : 0;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: bench_dns ferry -s NS -f HOSTS [-c CONC] [-p PASSES]"
            " [-w WARM]\n"
            "       bench_dns glibc -f HOSTS [-p PASSES]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    const char *ns = NULL, *hosts = NULL, *mode;
    unsigned long conc = 100, passes = 5, warm = 2000000;
    struct bench_name *names;
    size_t nnames;
    int opt, rc;

    if (argc < 2)
        usage();
    mode = argv[1];
    optind = 2;
    while ((opt = getopt(argc, argv, "s:f:c:p:w:")) != -1) {
        switch (opt) {
        case 's':
            ns = optarg;
            break;
        case 'f':
            hosts = optarg;
            break;
        case 'c':
            conc = strtoul(optarg, NULL, 10);
            break;
        case 'p':
            passes = strtoul(optarg, NULL, 10);
            break;
        case 'w':
            warm = strtoul(optarg, NULL, 10);
            break;
        default:
            usage();
        }
    }
    if (hosts == NULL || conc < 1 || conc > 100000 || passes < 1 ||
        passes > 10000 || warm < 1)
        usage();
    names = load_names(hosts, &nnames);
    if (names == NULL || nnames == 0) {
        fprintf(stderr, "bench_dns: no names in %s\n", hosts);
        return 2;
    }
    if (strcmp(mode, "ferry") == 0 && ns != NULL)
        rc = bench_ferry(names, nnames, ns, conc, (unsigned)passes, warm);
    else if (strcmp(mode, "glibc") == 0)
        rc = bench_glibc(names, nnames, (unsigned)passes);
    else
        usage();
    for (size_t i = 0; i < nnames; i++)
        free(names[i].name);
    free(names);
    return rc;
}
