/*
 * histogram: fixed-bucket latency histograms in the Prometheus model.
 *
 * Bucket bounds are shared, constant tables (histogram_latency for proxied
 * responses, histogram_dns for DNS queries); a histogram holds one counter
 * per bucket inline, so observing allocates nothing and costs a binary
 * search over at most HISTOGRAM_MAX_BUCKETS bounds. Counters are plain
 * integers: one histogram belongs to one thread, and stats sums per-worker
 * copies with histogram_merge.
 *
 * A value v falls in the first bucket whose upper bound `le` satisfies
 * v <= le (as in Prometheus); above the last bound it counts only in +Inf.
 */
#ifndef FERRY_HISTOGRAM_H
#define FERRY_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* Most finite bounds any bucket set may have. */
#define HISTOGRAM_MAX_BUCKETS 24

struct histogram_bounds {
    const double *le;           /* finite upper bounds, increasing */
    const char *const *le_text; /* the bounds as le label text */
    size_t n;                   /* number of bounds */
};

/* 100 us .. 30 s: proxied response times. */
extern const struct histogram_bounds histogram_latency;
/* 100 us .. 10 s: upstream DNS query times. */
extern const struct histogram_bounds histogram_dns;

struct histogram {
    const struct histogram_bounds *bounds;      /* bucket set (shared, const) */
    uint64_t counts[HISTOGRAM_MAX_BUCKETS + 1]; /* per bucket, not
                                                   cumulative; [n] = +Inf */
    uint64_t count;                             /* observations */
    double sum;                                 /* sum of observed seconds */
};

/* bounds->n must be <= HISTOGRAM_MAX_BUCKETS. */
void histogram_init(struct histogram *h, const struct histogram_bounds *b);
/* Zeroes the counters, keeps the bounds. */
void histogram_reset(struct histogram *h);
/*
 * Records one duration. NaN is ignored (it would poison the sum); a
 * negative value (clock step) is recorded as 0.
 */
void histogram_observe(struct histogram *h, double seconds);
/*
 * dst = src, read atomically: workers may observe into src meanwhile.
 * Render and take quantiles of such a copy.
 */
void histogram_copy(struct histogram *dst, const struct histogram *src);
/* dst += src. Returns 0, or -1 (dst unchanged) if the bucket sets differ. */
int histogram_merge(struct histogram *dst, const struct histogram *src);

/*
 * Estimated q-quantile (0 <= q <= 1) in seconds, as Prometheus'
 * histogram_quantile() computes it: find the bucket holding the rank
 * q * count and interpolate linearly between its lower bound (the previous
 * bound, 0 for the first bucket) and its upper bound, assuming the values
 * are spread evenly inside it. The error is therefore up to one bucket
 * width. A rank in the +Inf bucket returns the largest finite bound (the
 * estimate cannot exceed what the buckets can tell). No observations: NaN.
 */
double histogram_quantile(const struct histogram *h, double q);

/*
 * Appends the samples of one series (not the HELP/TYPE header, written once
 * per family with strbuf_prom_header(..., "histogram")):
 *   NAME_bucket{labels,le="B"} cumulative   for each bound, then le="+Inf"
 *   NAME_sum{labels} sum
 *   NAME_count{labels} count
 */
void histogram_render_prom(const struct histogram *h, struct strbuf *sb,
                           const char *name, const struct strbuf_label *labels,
                           size_t nlabels);

#endif
