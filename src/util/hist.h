/* A latency histogram with fixed buckets, as Prometheus histograms show
 * them (admin/metrics.c): the journal's fsyncs and durable publishes'
 * confirmations. Not thread-safe: its owner guards it. */
#ifndef WHARF_UTIL_HIST_H
#define WHARF_UTIL_HIST_H

#include <stdint.h>

/* Upper bounds in seconds, 100 us to 10 s; a last bucket is +Inf. */
#define HIST_NBOUNDS 14
extern const double hist_bounds[HIST_NBOUNDS];

struct hist {
	uint64_t n[HIST_NBOUNDS + 1]; /* per bucket, not cumulative */
	uint64_t count;
	double sum;                   /* seconds */
};

void hist_observe(struct hist *h, double seconds);
/* Microseconds on the monotonic clock, for the durations observed. */
int64_t hist_now_us(void);

#endif
