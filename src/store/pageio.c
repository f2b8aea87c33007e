#include "config.h"
#include "store/pageio.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util/wakeup.h"

struct pageio {
	struct wakeup *wake;       /* NULL once stopped */
	unsigned refs;             /* loop thread only */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work, idle;
	/* Under mu. */
	struct pio_job *queued, **queued_tail;
	struct pio_job *done, **done_tail;
	struct pio_job *running;
	bool stopping;
	bool notified;
};

static void *io_main(void *arg)
{
	struct pageio *io = arg;
	pthread_mutex_lock(&io->mu);
	for (;;) {
		while (!io->queued && !io->stopping)
			pthread_cond_wait(&io->work, &io->mu);
		if (io->stopping)
			break;
		struct pio_job *j = io->queued;
		if (!(io->queued = j->next))
			io->queued_tail = &io->queued;
		io->running = j;
		pthread_mutex_unlock(&io->mu);
		j->run(j);
		pthread_mutex_lock(&io->mu);
		io->running = NULL;
		j->next = NULL;
		*io->done_tail = j;
		io->done_tail = &j->next;
		pthread_cond_broadcast(&io->idle);
		if (!io->notified) {
			io->notified = true;
			wakeup_post(io->wake);
		}
	}
	pthread_mutex_unlock(&io->mu);
	return NULL;
}

/* One job at a time, the lock not held: a done callback may submit or
 * cancel. */
static void report(void *arg)
{
	struct pageio *io = arg;
	for (;;) {
		pthread_mutex_lock(&io->mu);
		io->notified = false;
		struct pio_job *j = io->done;
		if (j && !(io->done = j->next))
			io->done_tail = &io->done;
		pthread_mutex_unlock(&io->mu);
		if (!j)
			return;
		j->done(j);
	}
}

struct pageio *pageio_new(struct event_base *base)
{
	struct pageio *io = calloc(1, sizeof(*io));
	if (!io)
		return NULL;
	io->refs = 1;
	io->queued_tail = &io->queued;
	io->done_tail = &io->done;
	pthread_mutex_init(&io->mu, NULL);
	pthread_cond_init(&io->work, NULL);
	pthread_cond_init(&io->idle, NULL);
	if (!(io->wake = wakeup_new(base, report, io)))
		goto fail;
	/* Signals go to the other threads, never this one. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&io->thread, NULL, io_main, io);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		errno = r;
		goto fail;
	}
	return io;
fail:
	wakeup_free(io->wake);
	io->wake = NULL;
	pageio_release(io);
	return NULL;
}

/* Drops the jobs of owner in *list; mu held. */
static void drop_from(struct pio_job **list, struct pio_job ***tail, const void *owner)
{
	struct pio_job **at = list;
	while (*at) {
		struct pio_job *j = *at;
		if (j->owner != owner) {
			at = &j->next;
			continue;
		}
		*at = j->next;
		j->drop(j);
	}
	*tail = at;
}

void pageio_cancel(struct pageio *io, const void *owner)
{
	pthread_mutex_lock(&io->mu);
	while (io->running && io->running->owner == owner)
		pthread_cond_wait(&io->idle, &io->mu);
	drop_from(&io->queued, &io->queued_tail, owner);
	drop_from(&io->done, &io->done_tail, owner);
	pthread_mutex_unlock(&io->mu);
}

int pageio_wait(struct pageio *io, struct pio_job *j)
{
	int rc = -1;
	pthread_mutex_lock(&io->mu);
	for (;;) {
		struct pio_job **at = &io->done;
		while (*at && *at != j)
			at = &(*at)->next;
		if (*at) {
			if (!(*at = j->next))
				io->done_tail = at;
			rc = 0;
			break;
		}
		if (io->stopping)
			break;
		pthread_cond_wait(&io->idle, &io->mu);
	}
	pthread_mutex_unlock(&io->mu);
	return rc;
}

void pageio_submit(struct pageio *io, struct pio_job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&io->mu);
	*io->queued_tail = j;
	io->queued_tail = &j->next;
	pthread_cond_signal(&io->work);
	pthread_mutex_unlock(&io->mu);
}

void pageio_hold(struct pageio *io)
{
	io->refs++;
}

void pageio_release(struct pageio *io)
{
	if (--io->refs)
		return;
	pageio_cancel(io, NULL);
	pthread_mutex_destroy(&io->mu);
	pthread_cond_destroy(&io->work);
	pthread_cond_destroy(&io->idle);
	free(io);
}

void pageio_free(struct pageio *io)
{
	if (!io)
		return;
	pthread_mutex_lock(&io->mu);
	io->stopping = true;
	pthread_cond_signal(&io->work);
	pthread_mutex_unlock(&io->mu);
	pthread_join(io->thread, NULL);
	wakeup_free(io->wake);
	io->wake = NULL;
	pageio_cancel(io, NULL);
	pageio_release(io);
}
