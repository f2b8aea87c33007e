#include "config.h"
#include "store/journal.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "store/journal_internal.h"
#include "store/record.h"

#ifdef WHARF_JOURNAL_FAULTS
#include <stdatomic.h>
static _Atomic unsigned fault_times[JOURNAL_FAULT_COUNT];
static _Atomic int fault_errs[JOURNAL_FAULT_COUNT];

void journal_fault(enum journal_fault what, int err, unsigned times)
{
	atomic_store(&fault_errs[what], err);
	atomic_store(&fault_times[what], times);
}

static int fault_take(enum journal_fault what)
{
	unsigned t = atomic_load(&fault_times[what]);
	while (t) {
		if (atomic_compare_exchange_weak(&fault_times[what], &t, t - 1))
			return atomic_load(&fault_errs[what]);
	}
	return 0;
}
#else
#define fault_take(what) 0
#endif

/* Disk space held back in journal/reserve and given up when the disk is
 * full, so that acknowledgements (which free space) can still be written
 * while durable publishes are refused. */
#define RESERVE_SIZE (256u << 10)
#define RESERVE_MIN (16u << 10)
/* While full, how often the writer looks for space again when idle. */
#define FULL_RETRY_MS 500

/* A batch's data beyond this is given back when the batch is recycled. */
#define KEEP_CAP (8u << 20)
#define MAX_SPARE 4
#define IOV_BATCH 64

/* ---- small helpers shared with journal_replay.c ----------------------- */

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

/* ---- writer -> loop messages ------------------------------------------ */

/* Caller holds mu. Wakes the loop if it is not already woken. */
static void notify_locked(struct journal *j)
{
	if (j->notified)
		return;
	j->notified = true;
	char c = 1;
	ssize_t r;
	do
		r = write(j->pipefd[1], &c, 1);
	while (r < 0 && errno == EINTR);
	/* EAGAIN: the pipe is full, the loop is going to look anyway. */
}

/* The writer may not log (log.c is loop-thread only): it leaves the line for
 * the loop, which logs it with strerror(err) appended when err != 0. */
__attribute__((format(printf, 4, 5))) static void post(struct journal *j, int level, int err,
							 const char *fmt, ...)
{
	pthread_mutex_lock(&j->mu);
	if (j->nmsgs < JMSG_MAX) {
		struct jmsg *m = &j->msgs[j->nmsgs++];
		m->level = level;
		m->err = err;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(m->text, sizeof(m->text), fmt, ap);
		va_end(ap);
	} else {
		j->msgs_lost++;
	}
	notify_locked(j);
	pthread_mutex_unlock(&j->mu);
}

/* ---- writer: I/O with the test faults ---------------------------------- */

static int w_sync(struct journal *j, int fd)
{
	int e = fault_take(JOURNAL_FAULT_SYNC);
	if (e)
		return e;
	int r;
	do
		r = fdatasync(fd);
	while (r < 0 && errno == EINTR);
	return r < 0 ? errno : 0;
}

static int w_truncate(int fd, uint64_t off)
{
	int e = fault_take(JOURNAL_FAULT_TRUNCATE);
	if (e)
		return e;
	int r;
	do
		r = ftruncate(fd, (off_t)off);
	while (r < 0 && errno == EINTR);
	return r < 0 ? errno : 0;
}

/* Writes all of iov[0..n) at `at`. Returns 0 or an errno value; bytes may
 * have been written either way. */
static int w_write(int fd, struct iovec *iov, int n, uint64_t at)
{
	int e = fault_take(JOURNAL_FAULT_WRITE);
	if (e) {
		if (n > 0 && iov[0].iov_len / 2) {
			ssize_t r = pwrite(fd, iov[0].iov_base, iov[0].iov_len / 2, (off_t)at);
			(void)r;
		}
		return e;
	}
	while (n > 0) {
		ssize_t r = pwritev(fd, iov, n < IOV_MAX ? n : IOV_MAX, (off_t)at);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (r == 0)
			return EIO;
		at += (uint64_t)r;
		size_t left = (size_t)r;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

/* ---- writer: segments -------------------------------------------------- */

struct wres {
	uint64_t records, bytes, fsyncs, errors, failed;
};

/* Brings the active segment back to j->off after a failed write or sync:
 * truncate, then make the truncation durable. */
static int repair(struct journal *j, struct wres *res)
{
	int e = w_truncate(j->fd, j->off);
	if (!e) {
		e = w_sync(j, j->fd);
		res->fsyncs++;
	}
	if (e) {
		j->need_repair = true;
		return e;
	}
	j->need_repair = false;
	j->dirty = false;
	return 0;
}

/* Starts segment `first` and makes it the active one. The old one was
 * synced by the caller as the mode asks. */
static int roll(struct journal *j, uint64_t first, struct wres *res)
{
	char name[64];
	uint8_t head[JSEG_HEADER];
	pthread_mutex_lock(&j->mu);
	int r = jsegs_reserve(j, 1);
	pthread_mutex_unlock(&j->mu);
	if (r < 0)
		return ENOMEM;
	jseg_name(name, sizeof(name), first);
	int fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EEXIST) {
		/* A leftover of a creation that failed half-way: only a header. */
		struct stat sb;
		if (fstatat(j->dirfd, name, &sb, 0) == 0 && sb.st_size <= (off_t)JSEG_HEADER &&
		    unlinkat(j->dirfd, name, 0) == 0)
			fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		else
			errno = EEXIST;
	}
	if (fd < 0)
		return errno;
	jseg_header(head, first);
	struct iovec iov = { head, sizeof(head) };
	int e = fault_take(JOURNAL_FAULT_CREATE);
	if (!e)
		e = w_write(fd, &iov, 1, 0);
	if (!e) {
		e = jfsync(fd) < 0 ? errno : 0;
		res->fsyncs++;
	}
	if (!e) {
		e = jfsync(j->dirfd) < 0 ? errno : 0;
		res->fsyncs++;
	}
	if (e) {
		close(fd);
		unlinkat(j->dirfd, name, 0);
		return e;
	}
	if (j->fd >= 0) {
		if (j->dirty && j->sync != JOURNAL_SYNC_NEVER && w_sync(j, j->fd) == 0)
			res->fsyncs++;
		close(j->fd);
	}
	j->fd = fd;
	j->active_first = first;
	j->off = JSEG_HEADER;
	j->need_repair = false;
	j->dirty = false;
	pthread_mutex_lock(&j->mu);
	j->segs[j->nsegs++] = (struct jseg){ .first = first };
	j->st.segments++;
	pthread_mutex_unlock(&j->mu);
	return 0;
}

/* ---- writer: batches --------------------------------------------------- */

static size_t rec_size(const struct jbatch *b, size_t i)
{
	size_t end = i + 1 < b->n ? b->ents[i + 1].off : b->len;
	return end - b->ents[i].off;
}

/* Everything from record i of batch fb on failed with err. */
static void chain_fail(struct journal *j, struct jbatch *chain, struct jbatch *fb, size_t fi, int err,
		       uint64_t seg, uint64_t off, struct wres *res)
{
	bool on = false;
	struct jbatch *last = chain;
	for (struct jbatch *b = chain; b; b = b->next) {
		last = b;
		if (b == fb) {
			on = true;
			b->nok = fi;
		} else if (on) {
			b->nok = 0;
		}
		if (on) {
			b->err = err;
			b->err_seg = seg;
			b->err_off = off;
			res->failed += b->n - b->nok;
		}
	}
	if (!on)
		return;
	res->errors++;
	uint64_t first_failed = fb->first_seq + fi;
	uint64_t last_seq = last->first_seq + last->n - 1;
	if (fi >= fb->n) /* failed at the very end: nothing after it */
		return;
	if (!j->skip_from)
		j->skip_from = first_failed;
	j->skip_to = last_seq;
}

/* Writes the records of this chunk (all in the active segment) and syncs
 * them as the mode asks. */
static int chunk_end(struct journal *j, struct iovec *iov, int niov, uint64_t *wrote, uint64_t chunk_off,
		     bool final_write, struct wres *res)
{
	if (niov) {
		uint64_t len = 0;
		for (int k = 0; k < niov; k++)
			len += iov[k].iov_len;
		int e = w_write(j->fd, iov, niov, chunk_off + *wrote);
		if (e)
			return e;
		*wrote += len;
		j->dirty = true;
	}
	if (!final_write)
		return 0;
	if (j->sync != JOURNAL_SYNC_NEVER && *wrote) {
		int e = w_sync(j, j->fd);
		res->fsyncs++;
		if (e)
			return e;
		j->dirty = false;
	}
	return 0;
}

static void write_chain(struct journal *j, struct jbatch *chain, struct wres *res)
{
	for (struct jbatch *b = chain; b; b = b->next) {
		b->nok = b->n;
		b->err = 0;
		for (size_t i = 0; i < b->n; i++)
			jrec_seal(b->data + b->ents[i].off);
	}
	if (j->fd >= 0 && j->need_repair) {
		int e = repair(j, res);
		if (e) {
			chain_fail(j, chain, chain, 0, e, j->active_first, j->off, res);
			return;
		}
	}

	struct iovec iov[IOV_BATCH];
	int niov = 0;
	uint64_t chunk_off = j->off, wrote = 0;
	struct jbatch *cb = chain; /* the chunk starts at record ci of cb */
	size_t ci = 0;
	bool skip_in = false;
	uint64_t chunk_records = 0, inflight = 0; /* inflight: in iov, not written */
	int e = 0;

	for (struct jbatch *b = chain; b; b = b->next) {
		for (size_t i = 0; i < b->n; i++) {
			uint8_t *rec = b->data + b->ents[i].off;
			size_t sz = rec_size(b, i);
			uint64_t seq = b->first_seq + i;
			uint64_t here = chunk_off + wrote + inflight;
			size_t extra = j->skip_from && !skip_in ? JREC_SKIP_SIZE : 0;
			if (j->fd < 0 || (here > JSEG_HEADER && here + sz + extra > j->segment_size)) {
				if (j->fd >= 0 && here > chunk_off) {
					e = chunk_end(j, iov, niov, &wrote, chunk_off, true, res);
					if (e)
						goto failed;
					j->off = chunk_off + wrote;
					res->records += chunk_records;
					res->bytes += wrote;
					if (skip_in)
						j->skip_from = j->skip_to = 0;
				}
				niov = 0;
				wrote = inflight = 0;
				chunk_records = 0;
				skip_in = false;
				cb = b;
				ci = i;
				uint64_t first = j->skip_from ? j->skip_from : seq;
				e = roll(j, first, res);
				if (e) {
					chain_fail(j, chain, b, i, e, first, 0, res);
					return;
				}
				chunk_off = j->off;
			}
			if (j->skip_from && !skip_in) {
				if (niov == IOV_BATCH) {
					e = chunk_end(j, iov, niov, &wrote, chunk_off, false, res);
					if (e)
						goto failed;
					niov = 0;
					inflight = 0;
				}
				jrec_skip(j->skipbuf, j->skip_from, j->skip_to);
				iov[niov++] = (struct iovec){ j->skipbuf, JREC_SKIP_SIZE };
				inflight += JREC_SKIP_SIZE;
				skip_in = true;
			}
			if (niov && (uint8_t *)iov[niov - 1].iov_base + iov[niov - 1].iov_len == rec) {
				iov[niov - 1].iov_len += sz;
			} else {
				if (niov == IOV_BATCH) {
					e = chunk_end(j, iov, niov, &wrote, chunk_off, false, res);
					if (e)
						goto failed;
					niov = 0;
					inflight = 0;
				}
				iov[niov++] = (struct iovec){ rec, sz };
			}
			inflight += sz;
			chunk_records++;
		}
	}
	if (j->fd >= 0) {
		e = chunk_end(j, iov, niov, &wrote, chunk_off, true, res);
		if (e)
			goto failed;
		j->off = chunk_off + wrote;
		res->records += chunk_records;
		res->bytes += wrote;
		if (skip_in)
			j->skip_from = j->skip_to = 0;
	}
	return;

failed:
	/* Nothing of this chunk counts: cut the file back to where it began,
	 * so no torn record is ever followed by good ones. */
	j->off = chunk_off;
	int re = repair(j, res);
	if (re)
		post(j, LOG_ERROR, re,
		     "journal: cannot cut segment %020llu back to offset %llu after a failed write "
		     "(the next batch tries again)",
		     (unsigned long long)j->active_first, (unsigned long long)chunk_off);
	chain_fail(j, chain, cb, ci, e, j->active_first, chunk_off, res);
}

/* ---- writer: releases -------------------------------------------------- */

/* Caller holds mu. The index of a released segment that may go now (never
 * the last entry: it is, or is about to be followed by, the active one), or
 * -1. */
static long release_candidate(struct journal *j)
{
	if (!j->nrelease)
		return -1;
	for (size_t i = 0; i + 1 < j->nsegs; i++)
		if (j->segs[i].flags & JSEG_RELEASE)
			return (long)i;
	return -1;
}

static void remove_first(struct journal *j)
{
	memmove(j->segs, j->segs + 1, (j->nsegs - 1) * sizeof(*j->segs));
	j->nsegs--;
}

static void do_releases(struct journal *j, struct wres *res)
{
	char name[96], stub[96];
	pthread_mutex_lock(&j->mu);
	long i;
	while ((i = release_candidate(j)) >= 0) {
		struct jseg s = j->segs[i];
		uint64_t next = j->segs[i + 1].first;
		pthread_mutex_unlock(&j->mu);

		jseg_name(name, sizeof(name), s.first);
		int e = 0;
		if (i == 0) {
			if (unlinkat(j->dirfd, name, 0) < 0 && errno != ENOENT)
				e = errno;
		} else {
			/* A hole in the middle must not look like a lost segment:
			 * leave an empty stand-in that says it was released. */
			jstub_name(stub, sizeof(stub), s.first, next);
			if (renameat(j->dirfd, name, j->dirfd, stub) < 0) {
				e = errno;
			} else {
				int fd = openat(j->dirfd, stub, O_WRONLY | O_TRUNC | O_CLOEXEC);
				if (fd >= 0)
					close(fd);
			}
		}
		if (!e) {
			jfsync(j->dirfd);
			res->fsyncs++;
		} else {
			post(j, LOG_ERROR, e, "journal: cannot delete released segment %s", name);
		}

		pthread_mutex_lock(&j->mu);
		j->segs[i].flags &= ~JSEG_RELEASE;
		j->nrelease--;
		if (e)
			continue;
		j->st.segments--;
		j->st.released++;
		if (i == 0) {
			remove_first(j);
			/* Stand-ins that are now the oldest say nothing any more. */
			while (j->nsegs > 1 && (j->segs[0].flags & JSEG_STUB)) {
				jstub_name(stub, sizeof(stub), j->segs[0].first, j->segs[0].next);
				remove_first(j);
				pthread_mutex_unlock(&j->mu);
				unlinkat(j->dirfd, stub, 0);
				pthread_mutex_lock(&j->mu);
			}
		} else {
			j->segs[i].flags |= JSEG_STUB;
			j->segs[i].next = next;
		}
	}
	pthread_mutex_unlock(&j->mu);
}

/* The store holds nothing live in the last segment either, and every
 * other one is gone: it goes too, so that a disk smaller than one segment
 * is freed once drained. The next record starts a new segment. Only when
 * it matters (a full disk, a segment from before the restart, or half a
 * segment's worth), so that a queue in steady state does not pay a new
 * segment for every time it empties. */
static void drop_dead_last(struct journal *j, struct wres *res)
{
	char name[64];
	pthread_mutex_lock(&j->mu);
	bool drop = j->nsegs == 1 && !(j->segs[0].flags & (JSEG_STUB | JSEG_RELEASE)) &&
		    j->written_next <= j->dead_below &&
		    (atomic_load(&j->full) || j->fd < 0 || j->off >= j->segment_size / 2);
	uint64_t first = drop ? j->segs[0].first : 0;
	pthread_mutex_unlock(&j->mu);
	if (!drop)
		return;
	if (j->fd >= 0) {
		close(j->fd);
		j->fd = -1;
	}
	jseg_name(name, sizeof(name), first);
	if (unlinkat(j->dirfd, name, 0) < 0 && errno != ENOENT) {
		post(j, LOG_ERROR, errno, "journal: cannot delete released segment %s", name);
		return;
	}
	jfsync(j->dirfd);
	res->fsyncs++;
	pthread_mutex_lock(&j->mu);
	j->nsegs = 0;
	j->st.segments--;
	j->st.released++;
	pthread_mutex_unlock(&j->mu);
}

/* ---- writer: a full disk ------------------------------------------------- */

static bool hit_enospc(const struct jbatch *chain)
{
	for (const struct jbatch *b = chain; b; b = b->next)
		if (b->nok < b->n && b->err == ENOSPC)
			return true;
	return false;
}

/* Claims the reserve if the disk has room for it and as much again. */
static bool reserve_take(struct journal *j)
{
	struct statvfs sv;
	if (j->reserve_fd < 0 || fstatvfs(j->dirfd, &sv) < 0 ||
	    (uint64_t)sv.f_bavail * sv.f_frsize < 2 * (uint64_t)RESERVE_SIZE)
		return false;
	if (posix_fallocate(j->reserve_fd, 0, RESERVE_SIZE) == 0)
		return true;
	w_truncate(j->reserve_fd, 0);
	return false;
}

/* A write found the disk full: the reserve goes to the writes that free
 * space; the store refuses durable publishes meanwhile (journal_full). */
static void reserve_give_up(struct journal *j)
{
	if (atomic_load(&j->full))
		return;
	if (j->reserve_fd >= 0)
		w_truncate(j->reserve_fd, 0);
	atomic_store(&j->full, true);
	post(j, LOG_ERROR, 0,
	     "journal: the disk is full: durable publishes are refused until space returns; the "
	     "%u KiB reserve is kept for acknowledgements",
	     RESERVE_SIZE >> 10);
}

static void reserve_retry(struct journal *j)
{
	if (!atomic_load(&j->full) || !reserve_take(j))
		return;
	atomic_store(&j->full, false);
	post(j, LOG_INFO, 0, "journal: disk space returned: durable publishes are accepted again");
}

/* ---- writer thread ------------------------------------------------------ */

static void ts_add_us(struct timespec *t, unsigned us)
{
	t->tv_sec += us / 1000000;
	t->tv_nsec += (long)(us % 1000000) * 1000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *writer_main(void *arg)
{
	struct journal *j = arg;
	pthread_mutex_lock(&j->mu);
	for (;;) {
		bool take = false;
		for (;;) {
			if (j->closing) {
				take = true;
				break;
			}
			bool release = release_candidate(j) >= 0;
			if (j->queued) {
				/* BATCH: at most one write and fsync per delay. */
				if (j->sync != JOURNAL_SYNC_BATCH || !j->batch_delay_us || !j->synced_once) {
					take = true;
					break;
				}
				struct timespec now, due = j->last_sync;
				ts_add_us(&due, j->batch_delay_us);
				clock_gettime(CLOCK_MONOTONIC, &now);
				if (!ts_before(&now, &due)) {
					take = true;
					break;
				}
				if (release)
					break;
				pthread_cond_timedwait(&j->cond, &j->mu, &due);
				continue;
			}
			if (release)
				break;
			if (atomic_load(&j->full)) {
				struct timespec due;
				clock_gettime(CLOCK_MONOTONIC, &due);
				ts_add_us(&due, FULL_RETRY_MS * 1000u);
				if (pthread_cond_timedwait(&j->cond, &j->mu, &due) == ETIMEDOUT)
					break;
				continue;
			}
			pthread_cond_wait(&j->cond, &j->mu);
		}
		struct jbatch *chain = take ? j->queued : NULL;
		if (chain) {
			j->queued = NULL;
			j->queued_tail = &j->queued;
		}
		bool closing = j->closing;
		pthread_mutex_unlock(&j->mu);

		struct wres res = { 0 };
		if (chain) {
			write_chain(j, chain, &res);
			if (j->sync == JOURNAL_SYNC_BATCH) {
				clock_gettime(CLOCK_MONOTONIC, &j->last_sync);
				j->synced_once = true;
			}
			for (struct jbatch *b = chain; b; b = b->next)
				if (b->nok)
					j->written_next = b->first_seq + b->nok;
			if (hit_enospc(chain))
				reserve_give_up(j);
		}
		do_releases(j, &res);
		drop_dead_last(j, &res);
		reserve_retry(j);

		pthread_mutex_lock(&j->mu);
		j->st.records += res.records;
		j->st.bytes += res.bytes;
		j->st.fsyncs += res.fsyncs;
		j->st.write_errors += res.errors;
		if (chain) {
			j->st.batches++;
			*j->done_tail = chain;
			struct jbatch *b = chain;
			while (b->next)
				b = b->next;
			j->done_tail = &b->next;
			notify_locked(j);
		}
		if (closing && !j->queued)
			break;
	}
	pthread_mutex_unlock(&j->mu);

	if (j->fd >= 0) {
		if (j->dirty && w_sync(j, j->fd) == 0) {
			pthread_mutex_lock(&j->mu);
			j->st.fsyncs++;
			pthread_mutex_unlock(&j->mu);
		}
		close(j->fd);
		j->fd = -1;
	}
	return NULL;
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
			size_t plen = rec_size(b, i) - JREC_HEADER;
			j->pending--;
			j->pending_bytes -= plen;
			if (e->done)
				e->done(e->arg, i < b->nok ? 0 : b->err);
		}
		batch_put(j, b);
	}
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct journal *j = arg;
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	complete(j);
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
		if (release_candidate(j) >= 0)
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
	if (j->notify_ev)
		event_free(j->notify_ev);
	if (j->flush_ev)
		event_free(j->flush_ev);
	for (int i = 0; i < 2; i++)
		if (j->pipefd[i] >= 0)
			close(j->pipefd[i]);
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
	j->pipefd[0] = j->pipefd[1] = -1;
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
	j->reserve_fd = openat(j->dirfd, "reserve", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (j->reserve_fd < 0) {
		log_warn("journal: cannot create %s/reserve: %s; acknowledgements may be refused "
			 "when the disk is full",
			 path, strerror(errno));
	} else if (!reserve_take(j)) {
		log_error("journal: %s has no room for the %u KiB reserve: durable publishes are "
			  "refused until it has",
			  path, RESERVE_SIZE >> 10);
		atomic_store(&j->full, true);
	}

	if (pipe(j->pipefd) < 0)
		FAIL("journal: pipe: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		int fl = fcntl(j->pipefd[i], F_GETFL);
		fcntl(j->pipefd[i], F_SETFL, fl | O_NONBLOCK);
		fcntl(j->pipefd[i], F_SETFD, FD_CLOEXEC);
	}
	j->notify_ev = event_new(base, j->pipefd[0], EV_READ | EV_PERSIST, notify_cb, j);
	j->flush_ev = event_new(base, -1, 0, flush_cb, j);
	if (!j->notify_ev || !j->flush_ev || event_add(j->notify_ev, NULL) < 0)
		FAIL("journal: cannot set up events");

	/* Signals go to the other threads, never the writer. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&j->thread, NULL, writer_main, j);
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
	jfree(j);
}
