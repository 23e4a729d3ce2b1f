/*
 * resolve_cli: resolve names through resolver.c and print the results.
 *
 *   resolve_cli [-s NS[,NS...]] [-H HOSTS|off] [-t SECONDS] [-a ATTEMPTS]
 *               [-4|-6] [-n REPEAT] [-c CONCURRENCY] NAME...
 *
 * NS is IP, IP:PORT or [IPv6]:PORT. Without -n each NAME is resolved once
 * and printed as "NAME family status ttl=N ms=D sent=0|1 ADDR...". With
 * -n REPEAT every NAME is resolved REPEAT times, at most CONCURRENCY
 * requests in flight, and only a summary is printed (for measurements).
 * Exit status: 0 if every resolution was ok, 1 otherwise, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "resolver.h"

/* Run state shared with the callbacks. */
struct cli {
    struct resolver *r; /* the resolver under test */
    char **names;       /* names to resolve */
    int nnames;         /* entries in names */
    int family;         /* AF_INET or AF_INET6 */
    long total;         /* resolutions to start */
    long started;       /* resolutions started */
    long done;          /* resolutions completed */
    long failed;        /* completions not ok */
    long sent;          /* completions that went upstream */
    bool quiet;         /* summary only */
    double min_ms;      /* fastest completion */
    double max_ms;      /* slowest completion */
    double sum_ms;      /* for the mean */
};

static void start_one(struct cli *c);

static void
on_result(void *arg, const struct resolver_result *res)
{
    struct cli *c = arg;
    double ms = res->duration * 1000.0;

    c->done++;
    if (res->status != RESOLVER_OK)
        c->failed++;
    if (res->sent)
        c->sent++;
    if (ms < c->min_ms)
        c->min_ms = ms;
    if (ms > c->max_ms)
        c->max_ms = ms;
    c->sum_ms += ms;
    if (!c->quiet) {
        char ip[INET6_ADDRSTRLEN];
        printf("%s %s %s(%d) ttl=%u ms=%.3f sent=%d", res->name,
               res->family == AF_INET ? "ipv4" : "ipv6",
               resolver_status_name(res->status), res->ares_status, res->ttl,
               ms, res->sent ? 1 : 0);
        for (size_t i = 0; i < res->naddrs; i++) {
            inet_ntop(res->addrs[i].family, &res->addrs[i].u, ip, sizeof(ip));
            printf(" %s", ip);
        }
        printf("\n");
    }
    if (c->started < c->total)
        start_one(c);
}

static void
start_one(struct cli *c)
{
    const char *name = c->names[c->started % c->nnames];

    c->started++;
    if (!resolver_resolve(c->r, name, c->family, on_result, c)) {
        fprintf(stderr, "resolve_cli: cannot resolve %s\n", name);
        c->done++;
        c->failed++;
    }
}

/* Parses "IP", "IP:PORT" or "[IPv6]:PORT" into ss; returns 0 or -1. */
static int
parse_ns(const char *text, struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *port = NULL;
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    size_t len;

    memset(ss, 0, sizeof(*ss));
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || (size_t)(end - text - 1) >= sizeof(host))
            return -1;
        len = (size_t)(end - text - 1);
        memcpy(host, text + 1, len);
        host[len] = '\0';
        if (end[1] == ':')
            port = end + 2;
        else if (end[1])
            return -1;
    } else {
        const char *colon = strchr(text, ':');
        if (colon && !strchr(colon + 1, ':')) {
            len = (size_t)(colon - text);
            port = colon + 1;
        } else {
            len = strlen(text);
        }
        if (len >= sizeof(host))
            return -1;
        memcpy(host, text, len);
        host[len] = '\0';
    }
    int p = port ? atoi(port) : 53;
    if (p <= 0 || p > 65535)
        return -1;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)p);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)p);
        return 0;
    }
    return -1;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: resolve_cli [-s NS[,NS...]] [-H HOSTS|off] [-t SECONDS]"
            " [-a ATTEMPTS] [-4|-6] [-n REPEAT] [-c CONCURRENCY] NAME...\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    struct sockaddr_storage ns[8];
    struct resolver_options o = {
        .nameservers = ns,
        .hosts_file = "/etc/hosts",
        .timeout = 1.0,
        .attempts = 3,
    };
    struct cli c = {.family = AF_INET, .min_ms = 1e30};
    long repeat = 0, conc = 1;
    struct ev_loop *loop = EV_DEFAULT;
    struct timespec t0, t1;
    int opt;

    while ((opt = getopt(argc, argv, "s:H:t:a:46n:c:")) != -1) {
        switch (opt) {
        case 's':
            for (char *tok = strtok(optarg, ","); tok;
                 tok = strtok(NULL, ",")) {
                if (o.nnameservers == 8 ||
                    parse_ns(tok, &ns[o.nnameservers]) < 0)
                    usage();
                o.nnameservers++;
            }
            break;
        case 'H':
            o.hosts_file = strcmp(optarg, "off") == 0 ? NULL : optarg;
            break;
        case 't':
            o.timeout = atof(optarg);
            break;
        case 'a':
            o.attempts = (unsigned)atoi(optarg);
            break;
        case '4':
            c.family = AF_INET;
            break;
        case '6':
            c.family = AF_INET6;
            break;
        case 'n':
            repeat = atol(optarg);
            break;
        case 'c':
            conc = atol(optarg);
            break;
        default:
            usage();
        }
    }
    if (optind >= argc || o.timeout <= 0 || o.attempts < 1 || conc < 1 ||
        repeat < 0)
        usage();
    c.names = argv + optind;
    c.nnames = argc - optind;
    c.quiet = repeat > 0;
    c.total = repeat > 0 ? repeat * c.nnames : c.nnames;

    c.r = resolver_init(loop, &o);
    if (!c.r)
        return 2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < conc && c.started < c.total; i++)
        start_one(&c);
    /* Bounded: every request ends within timeout x attempts x backoff. */
    while (c.done < c.total)
        ev_run(loop, EVRUN_ONCE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (c.quiet) {
        double secs = (double)(t1.tv_sec - t0.tv_sec) +
                      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        printf("resolutions=%ld failed=%ld sent=%ld seconds=%.3f "
               "rate=%.0f/s latency_ms min=%.3f mean=%.3f max=%.3f\n",
               c.done, c.failed, c.sent, secs, (double)c.done / secs, c.min_ms,
               c.sum_ms / (double)(c.done ? c.done : 1), c.max_ms);
    }
    resolver_destroy(c.r);
    return c.failed ? 1 : 0;
}
