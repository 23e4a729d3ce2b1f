/*
 * bench_strbuf: time to render a /metrics body for many members.
 *
 * Fake data shaped like the real page: N members (default 1000) in 10
 * backends, each with 10 plain samples carrying backend/server/address
 * labels (requests, 5 response classes, active, up, 2 health results),
 * optionally plus a response-time histogram (20 more lines). One strbuf is
 * reused across rounds, as the stats endpoint does. Prints the median and
 * minimum of the rounds.
 *
 * usage: bench_strbuf [members] [rounds]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "histogram.h"
#include "strbuf.h"

struct fake_member {
    char backend[16];                   /* backend label */
    char server[32];                    /* server label */
    char address[32];                   /* address label */
    uint64_t counters[10];              /* the plain samples */
    struct histogram latency;           /* response times */
};

static const char *const names[10] = {
    "ferry_server_requests_total",
    "ferry_server_responses_total",
    "ferry_server_responses_total",
    "ferry_server_responses_total",
    "ferry_server_responses_total",
    "ferry_server_responses_total",
    "ferry_server_active_connections",
    "ferry_server_up",
    "ferry_server_health_checks_total",
    "ferry_server_health_checks_total",
};
static const char *const extra_key[10] = {
    NULL, "code", "code", "code", "code", "code", NULL, NULL, "result",
    "result",
};
static const char *const extra_val[10] = {
    NULL, "1xx", "2xx", "3xx", "4xx", "5xx", NULL, NULL, "pass", "fail",
};

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
render(struct strbuf *sb, const struct fake_member *m, size_t n, int hist)
{
    size_t i, k;

    for (k = 0; k < 10; k++) {
        /* One family header per metric name, as the real page does. */
        if (k == 0 || names[k] != names[k - 1])
            strbuf_prom_header(sb, names[k], "fake help text", "counter");
        for (i = 0; i < n; i++) {
            struct strbuf_label l[4] = {
                {"backend", m[i].backend},
                {"server", m[i].server},
                {"address", m[i].address},
                {extra_key[k], extra_val[k]},
            };

            strbuf_prom_sample_u64(sb, names[k], l, extra_key[k] ? 4 : 3,
                                   m[i].counters[k]);
        }
    }
    if (!hist)
        return;
    strbuf_prom_header(sb, "ferry_server_response_seconds", "fake",
                       "histogram");
    for (i = 0; i < n; i++) {
        struct strbuf_label l[3] = {
            {"backend", m[i].backend},
            {"server", m[i].server},
            {"address", m[i].address},
        };

        histogram_render_prom(&m[i].latency, sb,
                              "ferry_server_response_seconds", l, 3);
    }
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void
run(struct strbuf *sb, const struct fake_member *m, size_t n, int rounds,
    int hist)
{
    double *t = calloc((size_t)rounds, sizeof(*t));
    size_t lines = 0, i;
    int r;

    for (r = 0; r < rounds; r++) {
        double t0 = now();

        strbuf_reset(sb);
        render(sb, m, n, hist);
        t[r] = now() - t0;
    }
    for (i = 0; i < sb->len; i++)
        lines += sb->data[i] == '\n';
    qsort(t, (size_t)rounds, sizeof(*t), cmp_double);
    printf("%zu members, %s: %zu lines, %zu bytes: median %.2f ms, "
           "min %.2f ms (%d rounds)%s\n",
           n, hist ? "10 samples + histogram" : "10 samples", lines,
           sb->len, t[rounds / 2] * 1e3, t[0] * 1e3, rounds,
           strbuf_failed(sb) ? " OOM" : "");
    free(t);
}

int
main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    int rounds = argc > 2 ? atoi(argv[2]) : 51;
    struct fake_member *m = calloc(n, sizeof(*m));
    struct strbuf sb;
    uint64_t x = 88172645463325252ull;
    size_t i, k;

    if (m == NULL || rounds < 1)
        return 1;
    for (i = 0; i < n; i++) {
        snprintf(m[i].backend, sizeof(m[i].backend), "backend%zu", i % 10);
        snprintf(m[i].server, sizeof(m[i].server), "svc%zu.internal:8080",
                 i % 10);
        snprintf(m[i].address, sizeof(m[i].address), "10.%zu.%zu.%zu:8080",
                 i / 65536 % 256, i / 256 % 256, i % 256);
        histogram_init(&m[i].latency, &histogram_latency);
        for (k = 0; k < 10; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            m[i].counters[k] = x % 100000000;
        }
        for (k = 0; k < 100; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            histogram_observe(&m[i].latency, (double)(x % 1000000) / 1e5);
        }
    }
    strbuf_init(&sb);
    run(&sb, m, n, rounds, 0);
    run(&sb, m, n, rounds, 1);
    strbuf_free(&sb);
    free(m);
    return 0;
}
