#include "config.h"
#include "util/loglimit.h"

#include "util/clock.h"

bool log_limit_pass(struct log_limit *ll, unsigned period_ms, unsigned long *held)
{
	int64_t now = clock_mono_ms();
	if (now < ll->next_ms) {
		ll->held++;
		return false;
	}
	ll->next_ms = now + period_ms;
	*held = ll->held;
	ll->held = 0;
	return true;
}
