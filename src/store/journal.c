/* The journal's loop-side API (store/journal.h): open (with replay,
 * journal_replay.c) and close, appending records to the batch of this
 * loop turn and handing it to the writer thread (journal_writer.c),
 * running each record's completion callback once the writer reports it
 * through the pipe, releases, stats. Everything here runs on the event
 * loop's thread; the state it shares with the writer is under j->mu
 * (journal_internal.h). */
#include "config.h"
#include "store/journal.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store/journal_internal.h"
#include "store/record.h"
#include "util/wakeup.h"

/* A batch's data beyond this is given back when the batch is recycled. */
#define KEEP_CAP (8u << 20)
#define MAX_SPARE 4

/* ---- small helpers shared with journal_writer.c and journal_replay.c -- */

void jseg_name(char *out, size_t n, uint64_t first)
{
	snprintf(out, n, "%020llu.wj", (unsigned long long)first);
}

void jstub_name(char *out, size_t n, uint64_t first, uint64_t next)
{
	snprintf(out, n, "%020llu-%020llu.released", (unsigned long long)first,
		 (unsigned long long)next);
}

int jsegs_reserve(struct journal *j, size_t extra)
{
	if (j->nsegs + extra <= j->segcap)
		return 0;
	size_t cap = j->segcap ? j->segcap * 2 : 16;
	while (cap < j->nsegs + extra)
		cap *= 2;
	struct jseg *s = realloc(j->segs, cap * sizeof(*s));
	if (!s)
		return -1;
	j->segs = s;
	j->segcap = cap;
	return 0;
}

int jfsync(int fd)
{
	int r;
	do
		r = fsync(fd);
	while (r < 0 && errno == EINTR);
	return r;
}

/* ---- loop thread -------------------------------------------------------- */

static void batch_destroy(struct jbatch *b)
{
	free(b->data);
	free(b->ents);
	free(b);
}

static struct jbatch *batch_get(struct journal *j)
{
	struct jbatch *b = j->spare;
	if (b) {
		j->spare = b->next;
		j->nspare--;
		b->next = NULL;
		return b;
	}
	return calloc(1, sizeof(*b));
}

static void batch_put(struct journal *j, struct jbatch *b)
{
	if (j->nspare >= MAX_SPARE) {
		batch_destroy(b);
		return;
	}
	if (b->cap > KEEP_CAP) {
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
	if (b->ncap > KEEP_CAP / sizeof(struct jent)) {
		free(b->ents);
		b->ents = NULL;
		b->ncap = 0;
	}
	b->len = b->n = 0;
	b->payload_bytes = 0;
	b->next = j->spare;
	j->spare = b;
	j->nspare++;
}

/* Hands the records of this loop turn to the writer. */
static void hand_over(struct journal *j)
{
	struct jbatch *b = j->cur;
	if (!b || !b->n)
		return;
	j->cur = NULL;
	pthread_mutex_lock(&j->mu);
	*j->queued_tail = b;
	j->queued_tail = &b->next;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->mu);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct journal *j = arg;
	j->flush_scheduled = false;
	hand_over(j);
}

/* ---- the replica gate ---------------------------------------------------- */

/* 0, or -1 (ENOMEM: the caller runs the callback at once). */
static int held_push(struct journal *j, journal_done_fn done, void *arg, uint64_t seq, int err)
{
	if (j->nheld == j->heldcap) {
		if (j->held_head) { /* slide the live part down first */
			memmove(j->held, j->held + j->held_head,
				(j->nheld - j->held_head) * sizeof(*j->held));
			j->nheld -= j->held_head;
			j->held_head = 0;
		}
		if (j->nheld == j->heldcap) {
			size_t cap = j->heldcap ? j->heldcap * 2 : 1024;
			struct jheld *h = realloc(j->held, cap * sizeof(*h));
			if (!h)
				return -1;
			j->held = h;
			j->heldcap = cap;
		}
	}
	j->held[j->nheld++] = (struct jheld){ .done = done, .arg = arg, .seq = seq, .err = err };
	return 0;
}

/* Runs the held callbacks the gate lets through, oldest first. A callback
 * may move the gate: the loop re-reads it, and does not recurse. */
static void held_run(struct journal *j)
{
	if (j->gate_running)
		return;
	j->gate_running = true;
	while (j->held_head < j->nheld &&
	       (!j->gate_on || j->held[j->held_head].seq <= j->gate_seq)) {
		struct jheld h = j->held[j->held_head++];
		h.done(h.arg, h.err);
	}
	if (j->held_head == j->nheld)
		j->held_head = j->nheld = 0;
	j->gate_running = false;
}

void journal_gate(struct journal *j, bool on)
{
	j->gate_on = on;
	if (!on)
		held_run(j);
}

void journal_gate_advance(struct journal *j, uint64_t seq)
{
	if (seq <= j->gate_seq)
		return;
	j->gate_seq = seq;
	held_run(j);
}

size_t journal_gate_held(const struct journal *j)
{
	return j->nheld - j->held_head;
}

void journal_set_tap(struct journal *j, journal_tap_fn fn, void *arg)
{
	j->tap = fn;
	j->tap_arg = arg;
}

uint64_t journal_durable_last(struct journal *j)
{
	pthread_mutex_lock(&j->mu);
	uint64_t r = j->durable_last;
	pthread_mutex_unlock(&j->mu);
	return r;
}

int journal_segments(struct journal *j, struct journal_seginfo **out, size_t *n,
		     uint64_t *durable_last)
{
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&j->mu);
	*durable_last = j->durable_last;
	struct journal_seginfo *v = j->nsegs ? calloc(j->nsegs, sizeof(*v)) : NULL;
	if (j->nsegs && !v) {
		pthread_mutex_unlock(&j->mu);
		return -1;
	}
	for (size_t i = 0; i < j->nsegs; i++) {
		const struct jseg *s = &j->segs[i];
		bool stub = s->flags & JSEG_STUB;
		bool open = !stub && s->first == j->durable_seg;
		v[i] = (struct journal_seginfo){ .first = s->first, .next = stub ? s->next : 0,
						 .stub = stub, .open = open,
						 .size = open ? j->durable_off : 0 };
	}
	*n = j->nsegs;
	pthread_mutex_unlock(&j->mu);
	*out = v;
	return 0;
}

/* Runs the done callbacks the writer finished, and logs its messages. */
static void complete(struct journal *j)
{
	struct jmsg msgs[JMSG_MAX];
	pthread_mutex_lock(&j->mu);
	struct jbatch *list = j->done;
	j->done = NULL;
	j->done_tail = &j->done;
	unsigned nmsgs = j->nmsgs, lost = j->msgs_lost;
	memcpy(msgs, j->msgs, nmsgs * sizeof(msgs[0]));
	j->nmsgs = 0;
	j->msgs_lost = 0;
	j->notified = false;
	pthread_mutex_unlock(&j->mu);

	for (unsigned i = 0; i < nmsgs; i++) {
		if (msgs[i].err)
			log_msg(msgs[i].level, "%s: %s", msgs[i].text, strerror(msgs[i].err));
		else
			log_msg(msgs[i].level, "%s", msgs[i].text);
	}
	if (lost)
		log_warn("journal: %u more messages from the writer were dropped", lost);

	while (list) {
		struct jbatch *b = list;
		list = b->next;
		if (b->nok < b->n) {
			uint64_t nfail = b->n - b->nok;
			if (!j->failing)
				log_error("journal: write failed in segment %020llu.wj at offset %llu: %s; "
					  "%llu records not written, the next batch tries again",
					  (unsigned long long)b->err_seg, (unsigned long long)b->err_off,
					  strerror(b->err), (unsigned long long)nfail);
			j->failing = true;
			j->failed_run += nfail;
			j->failed_records += nfail;
		} else if (j->failing && b->n) {
			log_info("journal: writes work again (%llu records failed meanwhile)",
				 (unsigned long long)j->failed_run);
			j->failing = false;
			j->failed_run = 0;
		}
		for (size_t i = 0; i < b->n; i++) {
			const struct jent *e = &b->ents[i];
			size_t plen = jbatch_rec_size(b, i) - JREC_HEADER;
			j->pending--;
			j->pending_bytes -= plen;
			if (!e->done)
				continue;
			int err = i < b->nok ? 0 : b->err;
			if (!(j->gate_on && b->first_seq + i > j->gate_seq &&
			      held_push(j, e->done, e->arg, b->first_seq + i, err) == 0))
				e->done(e->arg, err);
		}
		batch_put(j, b);
	}
	if (j->tap && !j->closing_loop)
		j->tap(j->tap_arg);
}

static void notify_cb(void *arg)
{
	complete(arg);
}

int journal_append(struct journal *j, uint8_t type, const void *data, size_t len, journal_done_fn done,
		   void *arg, uint64_t *seq_out)
{
	if (j->closing_loop) {
		errno = ESHUTDOWN;
		return -1;
	}
	if (type == JREC_TYPE_SKIP) {
		errno = EINVAL;
		return -1;
	}
	if (len > JOURNAL_MAX_RECORD) {
		errno = EMSGSIZE;
		return -1;
	}
	if (!j->cur && !(j->cur = batch_get(j))) {
		errno = ENOMEM;
		return -1;
	}
	struct jbatch *b = j->cur;
	size_t need = JREC_HEADER + len;
	if (b->cap - b->len < need) {
		size_t cap = b->cap ? b->cap : 64 * 1024;
		while (cap - b->len < need)
			cap *= 2;
		uint8_t *p = realloc(b->data, cap);
		if (!p) {
			errno = ENOMEM;
			return -1;
		}
		b->data = p;
		b->cap = cap;
	}
	if (b->n == b->ncap) {
		size_t ncap = b->ncap ? b->ncap * 2 : 256;
		struct jent *e = realloc(b->ents, ncap * sizeof(*e));
		if (!e) {
			errno = ENOMEM;
			return -1;
		}
		b->ents = e;
		b->ncap = ncap;
	}
	uint64_t seq = j->next_seq++;
	if (!b->n)
		b->first_seq = seq;
	jrec_head(b->data + b->len, seq, type, len);
	if (len)
		memcpy(b->data + b->len + JREC_HEADER, data, len);
	b->ents[b->n++] = (struct jent){ .done = done, .arg = arg, .off = b->len };
	b->len += need;
	b->payload_bytes += len;
	j->pending++;
	j->pending_bytes += len;
	if (seq_out)
		*seq_out = seq;
	if (!j->flush_scheduled) {
		j->flush_scheduled = true;
		event_active(j->flush_ev, EV_TIMEOUT, 0);
	}
	return 0;
}

uint64_t journal_segment_of(const struct journal *jc, uint64_t seq)
{
	struct journal *j = (struct journal *)jc; /* for the mutex */
	uint64_t r = 0;
	pthread_mutex_lock(&j->mu);
	size_t lo = 0, hi = j->nsegs;
	while (lo < hi) { /* first entry with first > seq */
		size_t mid = lo + (hi - lo) / 2;
		if (j->segs[mid].first <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0 && !(j->segs[lo - 1].flags & JSEG_STUB))
		r = j->segs[lo - 1].first;
	pthread_mutex_unlock(&j->mu);
	return r;
}

void journal_release(struct journal *j, uint64_t segment)
{
	pthread_mutex_lock(&j->mu);
	size_t lo = 0, hi = j->nsegs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (j->segs[mid].first < segment)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < j->nsegs && j->segs[lo].first == segment &&
	    !(j->segs[lo].flags & (JSEG_STUB | JSEG_RELEASE))) {
		j->segs[lo].flags |= JSEG_RELEASE;
		j->nrelease++;
		if (jrelease_candidate(j) >= 0)
			pthread_cond_signal(&j->cond);
	}
	pthread_mutex_unlock(&j->mu);
}

void journal_release_before(struct journal *j, uint64_t seq)
{
	pthread_mutex_lock(&j->mu);
	bool any = false;
	if (seq > j->dead_below) {
		j->dead_below = seq;
		any = j->nsegs == 1;
	}
	for (size_t i = 0; i + 1 < j->nsegs && j->segs[i + 1].first <= seq; i++) {
		if (j->segs[i].flags & (JSEG_STUB | JSEG_RELEASE))
			continue;
		j->segs[i].flags |= JSEG_RELEASE;
		j->nrelease++;
		any = true;
	}
	if (any)
		pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->mu);
}

bool journal_full(const struct journal *j)
{
	return atomic_load(&((struct journal *)j)->full);
}

uint64_t journal_pending_bytes(const struct journal *j)
{
	return j->pending_bytes;
}

uint64_t journal_next_seq(const struct journal *j)
{
	return j->next_seq;
}

void journal_stats(const struct journal *jc, struct journal_stats *out)
{
	struct journal *j = (struct journal *)jc;
	pthread_mutex_lock(&j->mu);
	*out = j->st;
	pthread_mutex_unlock(&j->mu);
	out->last_seq = j->next_seq - 1;
	out->pending = j->pending;
	out->pending_bytes = j->pending_bytes;
	out->failed_records = j->failed_records;
}

/* ---- open and close ------------------------------------------------------ */

static int mkdir_p(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return -1;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			free(p);
			return -1;
		}
		*s = '/';
	}
	int r = mkdir(p, 0755);
	free(p);
	return r < 0 && errno != EEXIST ? -1 : 0;
}

static void jfree(struct journal *j)
{
	wakeup_free(j->wake);
	if (j->flush_ev)
		event_free(j->flush_ev);
	if (j->fd >= 0)
		close(j->fd);
	if (j->reserve_fd >= 0)
		close(j->reserve_fd);
	if (j->dirfd >= 0)
		close(j->dirfd);
	if (j->lockfd >= 0)
		close(j->lockfd); /* drops the flock */
	struct jbatch *lists[] = { j->cur, j->spare, j->queued, j->done };
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		while (lists[i]) {
			struct jbatch *b = lists[i];
			lists[i] = b->next;
			batch_destroy(b);
		}
	}
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cond);
	free(j->segs);
	free(j->held);
	free(j->root);
	free(j);
}

#define FAIL(...)                                         \
	do {                                              \
		if (errlen)                               \
			snprintf(err, errlen, __VA_ARGS__); \
		goto fail;                                \
	} while (0)

int journal_open(struct event_base *base, const struct journal_options *o, journal_replay_fn replay,
		 void *arg, struct journal **out, char *err, size_t errlen)
{
	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (!o->dir || !*o->dir) {
		if (errlen)
			snprintf(err, errlen, "journal: no directory given");
		return -1;
	}
	struct journal *j = calloc(1, sizeof(*j));
	if (!j) {
		if (errlen)
			snprintf(err, errlen, "journal: out of memory");
		return -1;
	}
	j->dirfd = j->lockfd = j->fd = j->reserve_fd = -1;
	pthread_mutex_init(&j->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cond, &ca);
	pthread_condattr_destroy(&ca);
	j->queued_tail = &j->queued;
	j->done_tail = &j->done;
	j->base = base;
	j->segment_size = o->segment_size ? o->segment_size : JOURNAL_DEFAULT_SEGMENT_SIZE;
	j->sync = o->sync;
	j->batch_delay_us = o->batch_delay_us;
	j->next_seq = 1;

	if (!(j->root = strdup(o->dir)))
		FAIL("journal: out of memory");
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/journal", o->dir) >= (int)sizeof(path))
		FAIL("journal: directory name too long: %s", o->dir);
	if (mkdir_p(path) < 0)
		FAIL("journal: cannot create %s: %s", path, strerror(errno));
	j->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dirfd < 0)
		FAIL("journal: cannot open %s: %s", path, strerror(errno));
	j->lockfd = openat(j->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (j->lockfd < 0)
		FAIL("journal: cannot create %s/lock: %s", path, strerror(errno));
	if (flock(j->lockfd, LOCK_EX | LOCK_NB) < 0)
		FAIL("journal: %s is in use by another process (%s/lock): %s", o->dir, path,
		     strerror(errno));

	if (journal_replay(j, o, replay, arg, err, errlen) < 0)
		goto fail;
	j->written_next = j->next_seq;
	j->durable_last = j->next_seq - 1;
	j->reserve_fd = openat(j->dirfd, "reserve", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (j->reserve_fd < 0) {
		log_warn("journal: cannot create %s/reserve: %s; acknowledgements may be refused "
			 "when the disk is full",
			 path, strerror(errno));
	} else if (!jreserve_take(j)) {
		log_error("journal: %s has no room for the %u KiB reserve: durable publishes are "
			  "refused until it has",
			  path, JRESERVE_SIZE >> 10);
		atomic_store(&j->full, true);
	}

	if (!(j->wake = wakeup_new(base, notify_cb, j)))
		FAIL("journal: cannot wake the loop from the writer: %s", strerror(errno));
	j->flush_ev = event_new(base, -1, 0, flush_cb, j);
	if (!j->flush_ev)
		FAIL("journal: cannot set up events");

	/* Signals go to the other threads, never the writer. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&j->thread, NULL, jwriter_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		FAIL("journal: cannot start the writer thread: %s", strerror(r));
	j->thread_started = true;
	*out = j;
	return 0;

fail:
	jfree(j);
	return -1;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	j->closing_loop = true;
	hand_over(j);
	if (j->thread_started) {
		pthread_mutex_lock(&j->mu);
		j->closing = true;
		pthread_cond_signal(&j->cond);
		pthread_mutex_unlock(&j->mu);
		pthread_join(j->thread, NULL);
	}
	complete(j);
	journal_gate(j, false); /* a held confirmation is not left hanging */
	jfree(j);
}
