/* A worker thread's way to wake the event loop: a pipe whose read end the
 * loop watches. Posts coalesce: the callback runs once on the loop for any
 * number of posts since it last ran, so what the worker reports must sit in
 * state of its own (a list under its lock), not in the pipe. */
#ifndef WHARF_UTIL_WAKEUP_H
#define WHARF_UTIL_WAKEUP_H

struct event_base;
struct wakeup;

/* Loop thread. cb(arg) runs on the loop after a post. NULL with errno set
 * when the pipe or the event cannot be made. */
struct wakeup *wakeup_new(struct event_base *base, void (*cb)(void *arg), void *arg);
/* Any thread. Never blocks: a full pipe already wakes the loop. */
void wakeup_post(struct wakeup *w);
/* Loop thread, once no thread posts any more. NULL is a no-op. */
void wakeup_free(struct wakeup *w);

#endif
