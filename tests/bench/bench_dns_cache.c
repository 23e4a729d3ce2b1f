/*
 * bench_dns_cache: nanoseconds per cache-hit dns_cache_lookup by name.
 *
 *   tests/bench/bench_dns_cache [names] [lookups]   (default 1000, 20000000)
 *
 * Every name is resolved once (two IPv4 addresses, TTL 1 h), then the
 * names are looked up round-robin in a shuffled order so consecutive
 * lookups touch different entries, like requests for different backends.
 * Prints the best of 5 rounds and the median (a noisy VM only ever adds
 * time). Exits 1 if any lookup is not a HIT.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns_cache.h"

static struct dns_cache_entry *last_query;

static void
bench_start(void *ctx, const char *name, int family, struct dns_cache_entry *e)
{
    last_query = e;
}

static double
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    const struct dns_cache_ops ops = {.start_query = bench_start};
    struct dns_cache_config cfg;
    struct dns_cache *c;
    size_t nnames = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    unsigned long nlookups = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000000;
    char **names;
    size_t *order;
    double rounds[5];
    unsigned long hits = 0;

    if (nnames == 0 || nlookups == 0)
        return 2;
    dns_cache_config_default(&cfg);
    c = dns_cache_create(&cfg, &ops, NULL);
    names = calloc(nnames, sizeof(*names));
    order = calloc(nnames, sizeof(*order));
    if (c == NULL || names == NULL || order == NULL)
        return 2;
    srand(42);
    for (size_t i = 0; i < nnames; i++) {
        struct sockaddr_storage ss[2];
        char buf[64];

        snprintf(buf, sizeof(buf), "backend-%zu.svc.cluster.internal", i);
        names[i] = strdup(buf);
        memset(ss, 0, sizeof(ss));
        for (int k = 0; k < 2; k++) {
            struct sockaddr_in *s = (struct sockaddr_in *)&ss[k];
            s->sin_family = AF_INET;
            s->sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)(2 * i + k));
        }
        if (dns_cache_lookup(c, names[i], 4, 0, NULL, NULL) != DNS_CACHE_MISS)
            return 2;
        dns_cache_complete(c, last_query, DNS_CACHE_Q_OK, ss, 2, 3600, 0);
        order[i] = i;
    }
    for (size_t i = nnames - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }

    for (int r = 0; r < 5; r++) {
        double t0 = mono(), t1;
        size_t k = 0;

        for (unsigned long i = 0; i < nlookups; i++) {
            hits += dns_cache_lookup(c, names[order[k]], 4, 1.0, NULL,
                                     NULL) == DNS_CACHE_HIT;
            if (++k == nnames)
                k = 0;
        }
        t1 = mono();
        rounds[r] = (t1 - t0) * 1e9 / (double)nlookups;
    }
    qsort(rounds, 5, sizeof(rounds[0]), cmp_double);
    printf("dns_cache hit lookup: %zu names, %lu lookups x 5: "
           "best %.1f ns, median %.1f ns\n",
           nnames, nlookups, rounds[0], rounds[2]);
    if (hits != 5 * nlookups) {
        fprintf(stderr, "only %lu of %lu lookups were hits\n", hits,
                5 * nlookups);
        return 1;
    }
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    free(order);
    dns_cache_destroy(c);
    return 0;
}
