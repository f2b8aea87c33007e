/* The thread that does the page files' I/O (store/pager.c), so that the
 * event loop never waits for a page file. One per store, shared by all its
 * pagers: jobs run one at a time in the order handed over, which is what
 * lets a pager queue a truncation behind its writes without waiting.
 *
 * A job is the pageio's from pageio_submit until its `done` runs on the
 * loop, then its submitter's again; pageio_cancel takes back (and drops)
 * the jobs of one owner at any point. */
#ifndef WHARF_STORE_PAGEIO_H
#define WHARF_STORE_PAGEIO_H

struct event_base;
struct pageio;

/* Embedded first in the submitter's own job struct. */
struct pio_job {
	struct pio_job *next;
	const void *owner;                /* NULL: no one cancels it */
	void (*run)(struct pio_job *j);   /* I/O thread */
	void (*done)(struct pio_job *j);  /* loop thread, after run; frees j */
	void (*drop)(struct pio_job *j);  /* frees j that will not report */
};

/* Starts the thread. Loop thread; NULL with errno set on failure. */
struct pageio *pageio_new(struct event_base *base);
/* Stops and joins the thread; jobs not run yet never run (ownerless ones
 * are dropped, the others wait for their owner's pageio_cancel). The
 * memory stays until the last pageio_release. NULL is a no-op. */
void pageio_free(struct pageio *io);
/* A pager holds io while it may still have jobs there. */
void pageio_hold(struct pageio *io);
void pageio_release(struct pageio *io);

/* Loop thread. Takes j. */
void pageio_submit(struct pageio *io, struct pio_job *j);
/* Loop thread. Waits until j (submitted) has run and takes it back
 * unreported: the caller runs its done itself. -1 (j left where it is)
 * when the thread is stopped and j will never run. */
int pageio_wait(struct pageio *io, struct pio_job *j);
/* Loop thread. Drops every job of owner that has not reported yet; waits
 * for the one running, if any (at most one read or write). */
void pageio_cancel(struct pageio *io, const void *owner);

#endif
