#include "config.h"
#include "util/memtrim.h"

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "log.h"
#include "util/clock.h"

#define MIN_FREE (16u << 20)
#define INTERVAL_MS 10000

/* Resident bytes, from /proc/self/statm; 0 if unknown. */
static uint64_t resident(void)
{
	unsigned long size, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

void memtrim(bool now)
{
#ifdef __GLIBC__
	/* mallinfo2 walks the free lists: not on every call either. */
	static int64_t last;
	int64_t t = clock_mono_ms();
	if (!now && last && t - last < INTERVAL_MS)
		return;
	last = t;
	struct mallinfo2 mi = mallinfo2();
	if (mi.fordblks < MIN_FREE)
		return;
	uint64_t before = resident();
	malloc_trim(0);
	uint64_t after = resident();
	if (before > after && before - after >= (1u << 20))
		log_info("memory: returned %llu MiB to the OS (%zu MiB were free in the heap)",
			 (unsigned long long)((before - after) >> 20), mi.fordblks >> 20);
#else
	(void)now;
#endif
}
