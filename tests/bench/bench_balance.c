/*
 * bench_balance: nanoseconds per pick for every algorithm at several pool
 * sizes, printed as a table.
 *
 * One "pick" is balance_pick followed by balance_release of an earlier pick,
 * so the cost of keeping leastconn's heap current is counted. Members are
 * up; leastconn holds connections (a ring of held picks, two per member).
 * Hash keys cycle through 4096 distinct client addresses. Each cell is the
 * median of 7 runs (thread CPU time), with the fastest run in brackets.
 * Usage: bench_balance [picks-per-run]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "balance.h"
#include "pool.h"

#define NKEYS 4096
#define RUNS 7

struct row {
    const char *label;                  /* printed name */
    enum config_balance kind;           /* algorithm */
    bool mixed;                         /* weights 1..5 instead of all 1 */
    bool keyed;                         /* pass a hash key */
    size_t hold_per_member;             /* connections held (leastconn) */
};

static const struct row rows[] = {
    {"roundrobin", BALANCE_ROUNDROBIN, false, false, 0},
    {"weighted (equal)", BALANCE_WEIGHTED, false, false, 0},
    {"weighted (1..5)", BALANCE_WEIGHTED, true, false, 0},
    {"leastconn (equal)", BALANCE_LEASTCONN, false, false, 2},
    {"leastconn (1..5)", BALANCE_LEASTCONN, true, false, 2},
    {"hash (key)", BALANCE_HASH, false, true, 0},
    {"hash (1..5, key)", BALANCE_HASH, true, true, 0},
};

static const size_t sizes[] = {3, 32, 100, 10000};

static char keys[NKEYS][16];
static size_t keylens[NKEYS];

static double
now_ns(void)
{
    struct timespec ts;

    /* Thread CPU time: on a shared machine, time spent descheduled is not
     * the picker's cost. */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void
build(struct pool *p, size_t n, bool mixed)
{
    pool_init(p, "bench", 0);
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_in sa = {0};
        struct member *m;
        sa.sin_family = AF_INET;
        sa.sin_port = htons(8080);
        sa.sin_addr.s_addr =
            htonl(0x7f000000u | (uint32_t)(i / 250) << 8 | (i % 250 + 1));
        m = pool_add_member(p, 0, "bench:8080", (struct sockaddr *)&sa,
                            sizeof(sa), mixed ? 1 + i % 5 : 1, false);
        if (m == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        m->up = true;
    }
}

/* One run: ns per pick, and the rebuild time in rebuild_ms. */
static double
run(const struct row *r, size_t n, long picks, double *rebuild_ms)
{
    struct pool p;
    struct balance *b;
    struct member **held;
    size_t nheld = r->hold_per_member * n, h = 0;
    struct balance_ctx ctx = {0};
    volatile uintptr_t sink = 0;
    double t0, t1;

    build(&p, n, r->mixed);
    b = balance_create(r->kind, &p);
    if (b == NULL) {
        fprintf(stderr, "balance_create failed\n");
        exit(1);
    }
    t0 = now_ns();
    balance_rebuild(b);
    *rebuild_ms = (now_ns() - t0) / 1e6;

    held = calloc(nheld ? nheld : 1, sizeof(*held));
    for (size_t i = 0; i < nheld; i++)
        held[i] = balance_pick(b, &ctx);
    /* Warm up caches and the branch predictor. */
    for (long i = 0; i < picks / 10; i++) {
        struct member *m = balance_pick(b, &ctx);
        balance_release(b, m, BALANCE_OK);
    }

    t0 = now_ns();
    for (long i = 0; i < picks; i++) {
        struct member *m;
        if (r->keyed) {
            ctx.key = keys[i & (NKEYS - 1)];
            ctx.keylen = keylens[i & (NKEYS - 1)];
        }
        m = balance_pick(b, &ctx);
        sink += (uintptr_t)m;
        if (nheld > 0) {
            /* Close the oldest held connection, hold the new one. */
            balance_release(b, held[h], BALANCE_OK);
            held[h] = m;
            h = (h + 1) % nheld;
        } else {
            balance_release(b, m, BALANCE_OK);
        }
    }
    t1 = now_ns();

    for (size_t i = 0; i < nheld; i++)
        balance_release(b, held[i], BALANCE_OK);
    free(held);
    balance_destroy(b);
    pool_deinit(&p);
    (void)sink;
    return (t1 - t0) / (double)picks;
}

int
main(int argc, char **argv)
{
    long picks = argc > 1 ? atol(argv[1]) : 2000000;
    double rebuild_ms[sizeof(rows) / sizeof(rows[0])];

    for (int k = 0; k < NKEYS; k++)
        keylens[k] = (size_t)snprintf(keys[k], sizeof(keys[k]), "10.%d.%d.%d",
                                      k >> 8, k & 255, (k * 7) & 255);

    printf("ns per pick (pick + release): median [min] of %d runs of %ld "
           "picks\n\n", RUNS, picks);
    printf("%-20s", "algorithm");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
        printf(" %15zu", sizes[s]);
    printf("   rebuild@%zu\n", sizes[sizeof(sizes) / sizeof(sizes[0]) - 1]);

    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        printf("%-20s", rows[r].label);
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            double t[RUNS];
            for (int i = 0; i < RUNS; i++)
                t[i] = run(&rows[r], sizes[s], picks, &rebuild_ms[r]);
            qsort(t, RUNS, sizeof(t[0]), cmp_double);
            printf(" %7.1f [%5.1f]", t[RUNS / 2], t[0]);
            fflush(stdout);
        }
        printf("   %8.2f ms\n", rebuild_ms[r]);
    }
    return 0;
}
