/* A log line that may come once per period at most, with the count of
 * those left out meanwhile: for what a client can repeat at will
 * (refused connections, limits). Loop thread. */
#ifndef WHARF_UTIL_LOGLIMIT_H
#define WHARF_UTIL_LOGLIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Zeroed: the first line passes. */
struct log_limit {
	int64_t next_ms;
	unsigned long held; /* left out since the last line */
};

/* True when the line may go out now (and then not again for period_ms);
 * *held then says how many were left out since the last one. */
bool log_limit_pass(struct log_limit *ll, unsigned period_ms, unsigned long *held);

#endif
