/* Event-loop helpers for the unit tests that drive the journal and the
 * store: a base with a ticking timer (so that EVLOOP_ONCE never blocks for
 * long) and a loop that runs until a counter reaches its target or time
 * runs out. Header-only, like tap.h. */
#ifndef WHARF_TESTS_LOOP_H
#define WHARF_TESTS_LOOP_H

#include <event2/event.h>
#include <stdint.h>
#include <time.h>

static inline int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static struct event *loop_tick;

static inline void loop_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static inline struct event_base *new_base(void)
{
	struct event_base *b = event_base_new();
	loop_tick = event_new(b, -1, EV_PERSIST, loop_tick_cb, NULL);
	struct timeval tv = { 0, 20000 };
	event_add(loop_tick, &tv);
	return b;
}

static inline void free_base(struct event_base *b)
{
	event_free(loop_tick);
	event_base_free(b);
}

/* Runs b until *counter reaches target (any integer type) or timeout_ms. */
#define run_until(b, counter, target, timeout_ms)                              \
	do {                                                                   \
		int64_t run_end_ = now_ms() + (timeout_ms);                    \
		while (*(counter) < (target) && now_ms() < run_end_)           \
			event_base_loop((b), EVLOOP_ONCE);                     \
	} while (0)

#endif
