/* Wall-clock and monotonic time in milliseconds. */
#ifndef WHARF_UTIL_CLOCK_H
#define WHARF_UTIL_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch: message timestamps and expiry. */
int64_t clock_wall_ms(void);
/* Milliseconds on a clock that never jumps: timeouts and durations. */
int64_t clock_mono_ms(void);

#endif
