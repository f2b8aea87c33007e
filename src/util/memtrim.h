/* Gives the memory the allocator holds free back to the operating system.
 * glibc keeps what a drained queue or a replayed journal freed for reuse,
 * so RSS stays at its peak: when much of the heap is free, malloc_trim
 * returns it. Event-loop thread only. */
#ifndef WHARF_UTIL_MEMTRIM_H
#define WHARF_UTIL_MEMTRIM_H

#include <stdbool.h>

/* Trims when at least 16 MiB of the heap is free, looking at most once
 * every 10 s unless `now` (after replay), and logs what went back ("returned N MiB to
 * the OS"). A no-op where the allocator cannot tell (not glibc, or under
 * a sanitizer's own allocator). */
void memtrim(bool now);

#endif
