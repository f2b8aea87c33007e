/* The journal's writer thread: takes the batches the loop hands over,
 * writes them to the active segment (pwritev), makes them durable as the
 * sync mode asks (fdatasync, group commit), starts new segments, unlinks
 * the ones the store released, keeps the reserve for a full disk, and puts
 * each batch's outcome on the done list for the loop (journal.c). It never
 * logs and never calls back into the store: what it has to say goes to
 * the loop through post(). The loop-side API is journal.c; the state both
 * share, and which thread owns which part, is journal_internal.h. */
#include "config.h"
#include "store/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "store/journal_internal.h"
#include "store/record.h"
#include "util/wakeup.h"

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

/* While full, how often the writer looks for space again when idle. */
#define FULL_RETRY_MS 500

#define IOV_BATCH 64

/* ---- writer -> loop messages ------------------------------------------ */

/* Caller holds mu. Wakes the loop if it is not already woken. */
static void notify_locked(struct journal *j)
{
	if (j->notified)
		return;
	j->notified = true;
	wakeup_post(j->wake);
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
	int64_t t0 = hist_now_us();
	do
		r = fdatasync(fd);
	while (r < 0 && errno == EINTR);
	int64_t us = hist_now_us() - t0;
	/* The writer thread's: journal_stats reads it under the lock. */
	pthread_mutex_lock(&j->mu);
	hist_observe(&j->st.fsync, (double)us / 1e6);
	pthread_mutex_unlock(&j->mu);
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
	j->durable_seg = first; /* its header is synced */
	j->durable_off = JSEG_HEADER;
	pthread_mutex_unlock(&j->mu);
	return 0;
}

/* ---- writer: batches --------------------------------------------------- */

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

/* A chunk: the records written to the active segment in one go, from
 * chunk offset off; wrote of them are in the file, inflight more are
 * gathered in iov. */
struct chunk {
	struct iovec iov[IOV_BATCH];
	int niov;
	uint64_t off, wrote, inflight, records;
	bool skip_in; /* the skip record for j->skip_from is in this chunk */
};

static void chunk_start(struct chunk *k, uint64_t off)
{
	k->niov = 0;
	k->off = off;
	k->wrote = k->inflight = k->records = 0;
	k->skip_in = false;
}

/* Writes what is gathered, and syncs it as the mode asks if final_write. */
static int chunk_write(struct journal *j, struct chunk *k, bool final_write, struct wres *res)
{
	if (k->niov) {
		int e = w_write(j->fd, k->iov, k->niov, k->off + k->wrote);
		if (e)
			return e;
		k->wrote += k->inflight;
		k->inflight = 0;
		k->niov = 0;
		j->dirty = true;
	}
	if (!final_write)
		return 0;
	if (j->sync != JOURNAL_SYNC_NEVER && k->wrote) {
		int e = w_sync(j, j->fd);
		res->fsyncs++;
		if (e)
			return e;
		j->dirty = false;
	}
	return 0;
}

/* Makes room for one more piece in k->iov, writing what is gathered. */
static int chunk_room(struct journal *j, struct chunk *k, struct wres *res)
{
	return k->niov == IOV_BATCH ? chunk_write(j, k, false, res) : 0;
}

/* Writes and syncs the chunk, and moves the segment's end past it. */
static int chunk_close(struct journal *j, struct chunk *k, struct wres *res)
{
	int e = chunk_write(j, k, true, res);
	if (e)
		return e;
	j->off = k->off + k->wrote;
	res->records += k->records;
	res->bytes += k->wrote;
	if (k->skip_in)
		j->skip_from = j->skip_to = 0;
	return 0;
}

/* Writes a chain of batches, rolling segments as they fill. */
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

	struct chunk k;
	chunk_start(&k, j->off);
	struct jbatch *cb = chain; /* the chunk starts at record ci of cb */
	size_t ci = 0;
	int e = 0;

	for (struct jbatch *b = chain; b; b = b->next) {
		for (size_t i = 0; i < b->n; i++) {
			uint8_t *rec = b->data + b->ents[i].off;
			size_t sz = jbatch_rec_size(b, i);
			uint64_t seq = b->first_seq + i;
			uint64_t here = k.off + k.wrote + k.inflight;
			size_t extra = j->skip_from && !k.skip_in ? JREC_SKIP_SIZE : 0;
			if (j->fd < 0 || (here > JSEG_HEADER && here + sz + extra > j->segment_size)) {
				if (j->fd >= 0 && here > k.off) {
					e = chunk_close(j, &k, res);
					if (e)
						goto failed;
				}
				cb = b;
				ci = i;
				uint64_t first = j->skip_from ? j->skip_from : seq;
				e = roll(j, first, res);
				if (e) {
					chain_fail(j, chain, b, i, e, first, 0, res);
					return;
				}
				chunk_start(&k, j->off);
			}
			if (j->skip_from && !k.skip_in) {
				e = chunk_room(j, &k, res);
				if (e)
					goto failed;
				jrec_skip(j->skipbuf, j->skip_from, j->skip_to);
				k.iov[k.niov++] = (struct iovec){ j->skipbuf, JREC_SKIP_SIZE };
				k.inflight += JREC_SKIP_SIZE;
				k.skip_in = true;
			}
			struct iovec *last = k.niov ? &k.iov[k.niov - 1] : NULL;
			if (last && (uint8_t *)last->iov_base + last->iov_len == rec) {
				last->iov_len += sz;
			} else {
				e = chunk_room(j, &k, res);
				if (e)
					goto failed;
				k.iov[k.niov++] = (struct iovec){ rec, sz };
			}
			k.inflight += sz;
			k.records++;
		}
	}
	if (j->fd >= 0) {
		e = chunk_close(j, &k, res);
		if (e)
			goto failed;
	}
	return;

failed:
	/* Nothing of this chunk counts: cut the file back to where it began,
	 * so no torn record is ever followed by good ones. */
	j->off = k.off;
	int re = repair(j, res);
	if (re)
		post(j, LOG_ERROR, re,
		     "journal: cannot cut segment %020llu back to offset %llu after a failed write "
		     "(the next batch tries again)",
		     (unsigned long long)j->active_first, (unsigned long long)k.off);
	chain_fail(j, chain, cb, ci, e, j->active_first, k.off, res);
}

/* ---- writer: releases -------------------------------------------------- */

long jrelease_candidate(struct journal *j)
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

/* Caller holds mu (released around each unlink). Stand-ins that are the
 * oldest entries, with a segment after them, say nothing any more. */
static void drop_leading_stubs(struct journal *j)
{
	char stub[96];
	while (j->nsegs > 1 && (j->segs[0].flags & JSEG_STUB)) {
		jstub_name(stub, sizeof(stub), j->segs[0].first, j->segs[0].next);
		remove_first(j);
		pthread_mutex_unlock(&j->mu);
		unlinkat(j->dirfd, stub, 0);
		pthread_mutex_lock(&j->mu);
	}
}

static void do_releases(struct journal *j, struct wres *res)
{
	char name[96], stub[96];
	pthread_mutex_lock(&j->mu);
	/* The stand-in drop_dead_last left goes once a segment after it holds
	 * a record: that one carries the numbers on. */
	if (j->nsegs > 1 && j->written_next > j->segs[1].first)
		drop_leading_stubs(j);
	long i;
	while ((i = jrelease_candidate(j)) >= 0) {
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
			drop_leading_stubs(j);
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
 * segment for every time it empties. It leaves an empty stand-in
 * FIRST-NEXT.released, so that record numbers go on from NEXT after a
 * restart with no segment (replay keeps it; it goes once the next segment
 * holds a record). */
static void drop_dead_last(struct journal *j, struct wres *res)
{
	char name[64], stub[96];
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
	/* A stand-in's name needs NEXT > FIRST: a segment holding no record
	 * says one number more, which is never reused either. */
	uint64_t next = j->written_next > first ? j->written_next : first + 1;
	jseg_name(name, sizeof(name), first);
	jstub_name(stub, sizeof(stub), first, next);
	if (renameat(j->dirfd, name, j->dirfd, stub) < 0 && errno != ENOENT) {
		post(j, LOG_ERROR, errno, "journal: cannot delete released segment %s", name);
		return;
	}
	/* Emptied; made if the segment was gone already. */
	int fd = openat(j->dirfd, stub, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	jfsync(j->dirfd);
	res->fsyncs++;
	pthread_mutex_lock(&j->mu);
	j->segs[0] = (struct jseg){ .first = first, .next = next, .flags = JSEG_STUB };
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

bool jreserve_take(struct journal *j)
{
	struct statvfs sv;
	if (j->reserve_fd < 0 || fstatvfs(j->dirfd, &sv) < 0 ||
	    (uint64_t)sv.f_bavail * sv.f_frsize < 2 * (uint64_t)JRESERVE_SIZE)
		return false;
	if (posix_fallocate(j->reserve_fd, 0, JRESERVE_SIZE) == 0)
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
	     JRESERVE_SIZE >> 10);
}

static void reserve_retry(struct journal *j)
{
	if (!atomic_load(&j->full) || !jreserve_take(j))
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

void *jwriter_main(void *arg)
{
	struct journal *j = arg;
	pthread_mutex_lock(&j->mu);
	uint64_t released_seen = j->st.released;
	for (;;) {
		bool take = false;
		for (;;) {
			if (j->closing) {
				take = true;
				break;
			}
			bool release = jrelease_candidate(j) >= 0;
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
		if (chain && j->fd >= 0 && j->active_first == j->durable_seg) {
			/* write_chain synced what it wrote (or sync = never) */
			j->durable_off = j->off;
			j->durable_last = j->written_next - 1;
		}
		if (!chain && j->st.released != released_seen)
			notify_locked(j); /* replication: segments went */
		released_seen = j->st.released;
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
