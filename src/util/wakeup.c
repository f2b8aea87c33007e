#include "config.h"
#include "util/wakeup.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

struct wakeup {
	int fd[2];
	struct event *ev;
	void (*cb)(void *arg);
	void *arg;
};

static void readable(evutil_socket_t fd, short what, void *arg)
{
	struct wakeup *w = arg;
	char buf[64];
	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	w->cb(w->arg);
}

struct wakeup *wakeup_new(struct event_base *base, void (*cb)(void *arg), void *arg)
{
	struct wakeup *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->cb = cb;
	w->arg = arg;
	if (pipe(w->fd) < 0) {
		free(w);
		return NULL;
	}
	for (int i = 0; i < 2; i++) {
		fcntl(w->fd[i], F_SETFL, fcntl(w->fd[i], F_GETFL) | O_NONBLOCK);
		fcntl(w->fd[i], F_SETFD, FD_CLOEXEC);
	}
	w->ev = event_new(base, w->fd[0], EV_READ | EV_PERSIST, readable, w);
	if (!w->ev || event_add(w->ev, NULL) < 0) {
		wakeup_free(w);
		errno = ENOMEM;
		return NULL;
	}
	return w;
}

void wakeup_post(struct wakeup *w)
{
	char c = 1;
	ssize_t r;
	do
		r = write(w->fd[1], &c, 1);
	while (r < 0 && errno == EINTR);
}

void wakeup_free(struct wakeup *w)
{
	if (!w)
		return;
	if (w->ev)
		event_free(w->ev);
	close(w->fd[0]);
	close(w->fd[1]);
	free(w);
}
