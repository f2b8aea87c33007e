#include "config.h"
#include "util/hist.h"

#include <time.h>

const double hist_bounds[HIST_NBOUNDS] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
					   0.005,  0.01,    0.025,  0.05,  0.1,
					   0.25,   0.5,     1,      10 };

void hist_observe(struct hist *h, double seconds)
{
	int i = 0;
	while (i < HIST_NBOUNDS && seconds > hist_bounds[i])
		i++;
	h->n[i]++;
	h->count++;
	h->sum += seconds;
}

int64_t hist_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
