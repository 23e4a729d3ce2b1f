/*
 * histogram: fixed-bucket latency histograms in the Prometheus model.
 */
#include "histogram.h"

#include <math.h>
#include <string.h>

#include "plane.h"

/*
 * Roughly 1-2.5-5 per decade: a proxy's latencies span five decades, and
 * this keeps the relative error of a quantile estimate under ~2.5x while
 * rendering only 18 lines per series.
 */
static const double latency_le[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,
};
static const char *const latency_text[] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
    "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
    "1",      "2.5",     "5",      "10",    "30",
};

/* DNS answers from a nearby cache take ~100 us; timeouts end near 10 s. */
static const double dns_le[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10,
};
static const char *const dns_text[] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(NELEM(latency_le) == NELEM(latency_text), "latency table");
_Static_assert(NELEM(dns_le) == NELEM(dns_text), "dns table");
_Static_assert(NELEM(latency_le) <= HISTOGRAM_MAX_BUCKETS, "too many");
_Static_assert(NELEM(dns_le) <= HISTOGRAM_MAX_BUCKETS, "too many");

const struct histogram_bounds histogram_latency = {
    latency_le,
    latency_text,
    NELEM(latency_le),
};
const struct histogram_bounds histogram_dns = {
    dns_le,
    dns_text,
    NELEM(dns_le),
};

void
histogram_init(struct histogram *h, const struct histogram_bounds *b)
{
    memset(h, 0, sizeof(*h));
    h->bounds = b;
}

void
histogram_reset(struct histogram *h)
{
    histogram_init(h, h->bounds);
}

/* sum += v for a double, atomically: no fetch_add exists for doubles. */
static void
histogram_sum_add(struct histogram *h, double v)
{
    double old, sum;

    __atomic_load(&h->sum, &old, __ATOMIC_RELAXED);
    do
        sum = old + v;
    while (!__atomic_compare_exchange(&h->sum, &old, &sum, true,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

static double
histogram_sum(const struct histogram *h)
{
    double v;

    __atomic_load(&h->sum, &v, __ATOMIC_RELAXED);
    return v;
}

void
histogram_copy(struct histogram *dst, const struct histogram *src)
{
    dst->bounds = src->bounds;
    for (size_t i = 0; i <= src->bounds->n; i++)
        dst->counts[i] = PLANE_GET(src->counts[i]);
    dst->count = PLANE_GET(src->count);
    dst->sum = histogram_sum(src);
}

void
histogram_observe(struct histogram *h, double seconds)
{
    const double *le = h->bounds->le;
    size_t lo = 0, hi = h->bounds->n;

    if (isnan(seconds))
        return;
    if (seconds < 0)
        seconds = 0;
    /* First bound >= seconds; hi == n means only +Inf holds it. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (le[mid] < seconds)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Every worker observes into the same histograms. */
    PLANE_ADD(h->counts[lo], 1);
    PLANE_ADD(h->count, 1);
    histogram_sum_add(h, seconds);
}

int
histogram_merge(struct histogram *dst, const struct histogram *src)
{
    size_t i;

    if (dst->bounds != src->bounds)
        return -1;
    for (i = 0; i <= dst->bounds->n; i++)
        dst->counts[i] += PLANE_GET(src->counts[i]);
    dst->count += PLANE_GET(src->count);
    dst->sum += histogram_sum(src);
    return 0;
}

double
histogram_quantile(const struct histogram *h, double q)
{
    const struct histogram_bounds *b = h->bounds;
    double rank, lower, upper;
    uint64_t below = 0;
    size_t i;

    if (h->count == 0 || isnan(q))
        return NAN;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    rank = q * (double)h->count;
    /* The bucket where the cumulative count first reaches the rank; empty
     * buckets are skipped so that q = 0 lands on the first observed one. */
    for (i = 0; i < b->n; i++) {
        if (h->counts[i] > 0 && (double)(below + h->counts[i]) >= rank)
            break;
        below += h->counts[i];
    }
    if (i == b->n)
        return b->le[b->n - 1];
    lower = i == 0 ? 0 : b->le[i - 1];
    upper = b->le[i];
    return lower +
           (upper - lower) * ((rank - (double)below) / (double)h->counts[i]);
}

void
histogram_render_prom(const struct histogram *h, struct strbuf *sb,
                      const char *name, const struct strbuf_label *labels,
                      size_t nlabels)
{
    const struct histogram_bounds *b = h->bounds;
    struct strbuf_label le = {"le", NULL};
    uint64_t cum = 0;
    size_t i;

    for (i = 0; i < b->n; i++) {
        cum += h->counts[i];
        le.value = b->le_text[i];
        strbuf_prom_series(sb, name, "_bucket", labels, nlabels, &le);
        strbuf_append_u64(sb, cum);
        strbuf_putc(sb, '\n');
    }
    le.value = "+Inf";
    strbuf_prom_series(sb, name, "_bucket", labels, nlabels, &le);
    strbuf_append_u64(sb, h->count);
    strbuf_putc(sb, '\n');
    strbuf_prom_series(sb, name, "_sum", labels, nlabels, NULL);
    strbuf_append_double(sb, h->sum);
    strbuf_putc(sb, '\n');
    strbuf_prom_series(sb, name, "_count", labels, nlabels, NULL);
    strbuf_append_u64(sb, h->count);
    strbuf_putc(sb, '\n');
}
