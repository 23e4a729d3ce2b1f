/*
 * Unit tests for histogram: placement at edges, rendering, quantiles, merge.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "histogram.h"

static void
assert_close(double a, double b)
{
    if (!(fabs(a - b) <= 1e-12 + 1e-9 * fabs(b)))
        fail_msg("%.17g != %.17g", a, b);
}

static void
test_tables(void **state)
{
    const struct histogram_bounds *sets[] = {&histogram_latency,
                                             &histogram_dns};
    struct strbuf sb;
    size_t s, i;

    assert_int_equal(histogram_latency.n, 17);
    assert_close(histogram_latency.le[0], 0.0001);
    assert_close(histogram_latency.le[16], 30);
    assert_int_equal(histogram_dns.n, 16);
    assert_close(histogram_dns.le[15], 10);
    /* Increasing bounds, and the label text is what the number prints as. */
    strbuf_init(&sb);
    for (s = 0; s < 2; s++) {
        for (i = 0; i < sets[s]->n; i++) {
            if (i > 0)
                assert_true(sets[s]->le[i] > sets[s]->le[i - 1]);
            strbuf_reset(&sb);
            strbuf_append_double(&sb, sets[s]->le[i]);
            assert_string_equal(sb.data, sets[s]->le_text[i]);
        }
    }
    strbuf_free(&sb);
}

static void
test_placement_edges(void **state)
{
    struct histogram h;

    histogram_init(&h, &histogram_latency);
    histogram_observe(&h, 0.0001);     /* exactly on a bound: that bucket */
    histogram_observe(&h, 0.00010001); /* just above: the next one */
    histogram_observe(&h, 0);          /* zero: first bucket */
    histogram_observe(&h, -1);         /* clock step: recorded as 0 */
    histogram_observe(&h, 1);          /* exact bound in the middle */
    histogram_observe(&h, 30);         /* the last finite bound */
    histogram_observe(&h, 30.000001);  /* only +Inf */
    histogram_observe(&h, INFINITY);   /* +Inf */
    histogram_observe(&h, NAN);        /* ignored */
    assert_int_equal(h.counts[0], 3);
    assert_int_equal(h.counts[1], 1);
    assert_int_equal(h.counts[12], 1); /* le=1 */
    assert_int_equal(h.counts[16], 1); /* le=30 */
    assert_int_equal(h.counts[17], 2); /* +Inf */
    assert_int_equal(h.count, 8);
    histogram_reset(&h);
    assert_int_equal(h.count, 0);
    assert_int_equal(h.counts[0], 0);
    assert_ptr_equal(h.bounds, &histogram_latency);
}

/* Every bound and the midpoints between bounds land where a linear scan
 * says they should. */
static void
test_placement_matches_scan(void **state)
{
    const struct histogram_bounds *b = &histogram_dns;
    struct histogram h;
    size_t i, k;

    for (i = 0; i <= b->n; i++) {
        double lo = i == 0 ? 0 : b->le[i - 1];
        double hi = i == b->n ? lo * 2 : b->le[i];
        double probes[3] = {hi, (lo + hi) / 2, lo};

        for (k = 0; k < 3; k++) {
            size_t want = 0;

            while (want < b->n && b->le[want] < probes[k])
                want++;
            histogram_init(&h, b);
            histogram_observe(&h, probes[k]);
            assert_int_equal(h.counts[want], 1);
        }
    }
}

static void
test_render(void **state)
{
    const struct strbuf_label labels[] = {{"name", "db.internal"}};
    struct histogram h;
    struct strbuf sb;
    const char *p;

    histogram_init(&h, &histogram_dns);
    histogram_observe(&h, 0.00005);
    histogram_observe(&h, 0.003);
    histogram_observe(&h, 0.003);
    histogram_observe(&h, 20);
    strbuf_init(&sb);
    histogram_render_prom(&h, &sb, "ferry_dns_query_seconds", labels, 1);
    assert_false(strbuf_failed(&sb));
    assert_string_equal(
        sb.data,
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"0.0001\"} 1\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\","
        "le=\"0.00025\"} 1\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"0.0005\"} 1\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"0.001\"} 1\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"0.0025\"} 1\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"0.005\"} 3\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"0.01\"} 3\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"0.025\"} 3\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"0.05\"} 3\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"0.1\"} 3\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"0.25\"} 3\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"0.5\"} 3\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"1\"} 3\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"2.5\"} 3\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"5\"} 3\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"10\"} 3\n"
        "ferry_dns_query_seconds_bucket{name=\"db.internal\",le=\"+Inf\"} 4\n"
        "ferry_dns_query_seconds_sum{name=\"db.internal\"} 20.00605\n"
        "ferry_dns_query_seconds_count{name=\"db.internal\"} 4\n");

    /* Without labels, le is the only one. */
    histogram_init(&h, &histogram_latency);
    strbuf_reset(&sb);
    histogram_render_prom(&h, &sb, "t", NULL, 0);
    p = strstr(sb.data, "t_bucket{le=\"30\"} 0\nt_bucket{le=\"+Inf\"} 0\n"
                        "t_sum 0\nt_count 0\n");
    assert_non_null(p);
    assert_int_equal(strncmp(sb.data, "t_bucket{le=\"0.0001\"} 0\n", 24), 0);
    strbuf_free(&sb);
}

static void
test_quantile_known(void **state)
{
    struct histogram h;
    int i;

    histogram_init(&h, &histogram_latency);
    assert_true(isnan(histogram_quantile(&h, 0.5)));

    /* 100 values spread evenly over (0.01, 0.025]: the bucket le=0.025.
     * The estimate assumes that spread, so it is exact here. */
    for (i = 0; i < 100; i++)
        histogram_observe(&h, 0.01 + 0.015 * (i + 0.5) / 100.0);
    assert_int_equal(h.counts[7], 100);
    assert_close(histogram_quantile(&h, 0.5), 0.0175);
    assert_close(histogram_quantile(&h, 0.99), 0.01 + 0.015 * 0.99);
    assert_close(histogram_quantile(&h, 1), 0.025);
    assert_close(histogram_quantile(&h, 0), 0.01);
    assert_true(isnan(histogram_quantile(&h, NAN)));

    /* 90 fast (first bucket) + 10 slow (le=1): p50 inside the first bucket
     * (lower bound 0), p99 inside (0.5, 1]. */
    histogram_init(&h, &histogram_latency);
    for (i = 0; i < 90; i++)
        histogram_observe(&h, 0.00005);
    for (i = 0; i < 10; i++)
        histogram_observe(&h, 0.7);
    assert_close(histogram_quantile(&h, 0.5), 0.0001 * 50 / 90);
    assert_close(histogram_quantile(&h, 0.9), 0.0001);
    assert_close(histogram_quantile(&h, 0.99), 0.5 + 0.5 * 9 / 10);

    /* A rank in +Inf reports the largest finite bound. */
    histogram_init(&h, &histogram_latency);
    histogram_observe(&h, 100);
    histogram_observe(&h, 0.2);
    assert_close(histogram_quantile(&h, 0.99), 30);
    assert_close(histogram_quantile(&h, 0.5), 0.1 + 0.15);
}

static void
test_merge(void **state)
{
    struct histogram a, b, c, d;
    size_t i;

    histogram_init(&a, &histogram_latency);
    histogram_init(&b, &histogram_latency);
    histogram_init(&c, &histogram_latency);
    histogram_observe(&a, 0.001);
    histogram_observe(&a, 50);
    histogram_observe(&b, 0.001);
    histogram_observe(&b, 0.3);
    histogram_observe(&c, 0.001);
    histogram_observe(&c, 50);
    histogram_observe(&c, 0.001);
    histogram_observe(&c, 0.3);
    assert_int_equal(histogram_merge(&a, &b), 0);
    assert_int_equal(a.count, 4);
    assert_close(a.sum, c.sum);
    for (i = 0; i <= histogram_latency.n; i++)
        assert_int_equal(a.counts[i], c.counts[i]);
    /* b is untouched. */
    assert_int_equal(b.count, 2);

    /* Different bucket sets do not mix. */
    histogram_init(&d, &histogram_dns);
    histogram_observe(&d, 1);
    assert_int_equal(histogram_merge(&a, &d), -1);
    assert_int_equal(a.count, 4);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_placement_edges),
        cmocka_unit_test(test_placement_matches_scan),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_quantile_known),
        cmocka_unit_test(test_merge),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
