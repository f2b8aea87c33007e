#include "config.h"
#include "store/pager.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/msgcodec.h"
#include "store/pageio.h"
#include "store/pager_jobs.h"
#include "store/record.h"
#include "util/buf.h"

#define WRITE_CHUNK (256u << 10)

/* Offsets are in the file; [0, wdone) is on disk, [wdone, wpos) in the
 * writes in flight, then the write buffer. The read-ahead window holds
 * [rbuf_off, rbuf_off + rlen) and always rbuf_off <= rpos <= its end. */
struct pager {
	struct pageio *io;
	char *path;
	int fd;                /* -1 until the first write */
	unsigned gen;          /* a rewind's jobs in flight no longer count */
	uint64_t wpos, wdone, rpos;
	struct pjob *wjobs, **wjobs_tail;  /* writes in flight, in file order */
	size_t inflight;       /* their bytes, of every generation */
	struct buf wbuf;       /* entries not handed over yet */
	struct buf spare;      /* a written chunk's buffer, for the next one:
				* big buffers freed and taken anew at this
				* rate fragment the heap */
	uint8_t *rbuf;
	size_t rlen, rcap;
	uint64_t rbuf_off;
	bool reading;          /* a read of this generation is in flight */
	size_t rneed;          /* the next entry wants this much past the window */
	int err;               /* a write or read failed: the next get says so */
	size_t count;
	bool waiting;          /* a get said EAGAIN: call ready */
	bool in_put;           /* no ready call from inside pager_put */
	void (*ready)(void *arg);
	void *ready_arg;
};

struct pager *pager_new(struct pageio *io, const char *dir, const char *name)
{
	struct pager *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	size_t n = strlen(dir) + strlen(name) + 8;
	if (!(p->path = malloc(n))) {
		free(p);
		return NULL;
	}
	snprintf(p->path, n, "%s/%s.page", dir, name);
	p->fd = -1;
	p->io = io;
	p->wjobs_tail = &p->wjobs;
	pageio_hold(io);
	return p;
}

void pager_free(struct pager *p)
{
	if (!p)
		return;
	pageio_cancel(p->io, p);
	if (p->fd >= 0) {
		close(p->fd);
		unlink(p->path);
	}
	pageio_release(p->io);
	buf_free(&p->wbuf);
	buf_free(&p->spare);
	free(p->rbuf);
	free(p->path);
	free(p);
}

void pager_set_ready_cb(struct pager *p, void (*ready)(void *arg), void *arg)
{
	p->ready = ready;
	p->ready_arg = arg;
}

size_t pager_count(const struct pager *p)
{
	return p->count;
}

uint64_t pager_bytes(const struct pager *p)
{
	return p->wpos + p->wbuf.len - p->rpos;
}

static uint64_t rend(const struct pager *p)
{
	return p->rbuf_off + p->rlen;
}

static struct pjob *job_new(struct pager *p, enum pjob_op op)
{
	struct pjob *j = pjob_new(op, p->fd);
	if (j) {
		j->io.owner = p;
		j->p = p;
		j->gen = p->gen;
	}
	return j;
}

/* Everything written was read: start the file over, behind the writes
 * still in flight (the I/O thread keeps their order). */
static void rewind_file(struct pager *p)
{
	p->gen++;
	p->wjobs = NULL;
	p->wjobs_tail = &p->wjobs;
	p->reading = false;
	p->rneed = 0;
	if (p->wpos) {
		struct pjob *t = job_new(p, PJ_TRUNCATE);
		if (t)
			pageio_submit(p->io, &t->io);
		/* Without it the old bytes stay past wpos, never read. */
	}
	p->wpos = p->wdone = p->rpos = 0;
	p->rbuf_off = 0;
	p->rlen = 0;
}

/* The window takes bytes [off, off + n) of the file, from its end on. */
static int window_add(struct pager *p, uint64_t off, const uint8_t *data, size_t n)
{
	uint64_t end = rend(p);
	if (off > end || off + n <= end)
		return 0;
	data += end - off;
	n -= (size_t)(end - off);
	size_t keep = (size_t)(end - p->rpos);
	if (keep && p->rpos > p->rbuf_off)
		memmove(p->rbuf, p->rbuf + (p->rpos - p->rbuf_off), keep);
	p->rbuf_off = p->rpos;
	p->rlen = keep;
	if (keep + n > p->rcap) {
		uint8_t *b = realloc(p->rbuf, keep + n);
		if (!b)
			return -1;
		p->rbuf = b;
		p->rcap = keep + n;
	}
	memcpy(p->rbuf + keep, data, n);
	p->rlen += n;
	return 0;
}

static void read_done(struct pio_job *ij);
static void write_done(struct pio_job *ij);

/* Keeps a read in flight while the window is below half a chunk (or the
 * next entry needs more) and the file has more. */
static void read_ahead(struct pager *p)
{
	uint64_t end = rend(p);
	if (p->reading || end >= p->wdone || (end - p->rpos >= PJ_READ_CHUNK / 2 && !p->rneed))
		return;
	size_t want = p->rneed > PJ_READ_CHUNK ? p->rneed : PJ_READ_CHUNK;
	if (want > p->wdone - end)
		want = (size_t)(p->wdone - end);
	struct pjob *j = job_new(p, PJ_READ);
	if (!j || !(j->data = malloc(want))) {
		pjob_free(j);
		p->err = ENOMEM;
		return;
	}
	j->off = end;
	j->len = want;
	j->io.done = read_done;
	p->reading = true;
	pageio_submit(p->io, &j->io);
}

/* Last, as ready may call back into p. */
static void wake(struct pager *p)
{
	if (p->waiting && !p->in_put) {
		p->waiting = false;
		if (p->ready)
			p->ready(p->ready_arg);
	}
}

static void read_done(struct pio_job *ij)
{
	struct pjob *j = (struct pjob *)ij;
	struct pager *p = j->p;
	if (j->gen != p->gen) {
		pjob_free(j);
		return;
	}
	p->reading = false;
	p->rneed = 0;
	if (j->err || j->got < j->len || j->off != rend(p))
		p->err = j->err ? j->err : EIO;
	else if (window_add(p, j->off, j->data, j->got) < 0)
		p->err = ENOMEM;
	pjob_free(j);
	read_ahead(p);
	wake(p);
}

/* Hands the write buffer to the I/O thread. */
static int hand_over(struct pager *p)
{
	if (p->fd < 0 && (p->fd = open(p->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0)
		return -1;
	struct pjob *j = job_new(p, PJ_WRITE);
	if (!j) {
		errno = ENOMEM;
		return -1;
	}
	j->data = (uint8_t *)p->wbuf.data;
	j->len = p->wbuf.len;
	j->cap = p->wbuf.cap;
	j->off = p->wpos;
	j->io.done = write_done;
	p->wbuf = p->spare;
	p->spare = (struct buf)BUF_INIT;
	p->wpos += j->len;
	p->inflight += j->len;
	*p->wjobs_tail = j;
	p->wjobs_tail = &j->wnext;
	pageio_submit(p->io, &j->io);
	return 0;
}

static void write_done(struct pio_job *ij)
{
	struct pjob *j = (struct pjob *)ij;
	struct pager *p = j->p;
	p->inflight -= j->len;
	if (j->gen == p->gen) {
		/* Writes finish in the order they went. */
		if (!(p->wjobs = j->wnext))
			p->wjobs_tail = &p->wjobs;
		if (j->err) {
			p->err = j->err;
		} else {
			p->wdone = j->off + j->len;
			/* The bytes are at hand: no need to read them back. */
			if (!p->reading && rend(p) - p->rpos < PJ_READ_CHUNK &&
			    window_add(p, j->off, j->data, j->len) < 0)
				p->err = ENOMEM;
		}
	}
	if (!p->spare.data && j->cap <= 2 * WRITE_CHUNK) {
		p->spare = (struct buf){ (char *)j->data, 0, j->cap };
		j->data = NULL;
	}
	pjob_free(j);
	read_ahead(p);
	wake(p);
}

int pager_put(struct pager *p, const struct message *m, uint64_t rec)
{
	size_t len = 8 + msgcodec_size(m);
	if (len > PJ_MAX_ENTRY) {
		errno = EMSGSIZE;
		return -1;
	}
	/* A read waiting meanwhile is woken by its own report. */
	p->in_put = true;
	while (p->inflight >= PAGER_MAX_BACKLOG && p->wjobs) {
		struct pjob *j = p->wjobs;
		if (pageio_wait(p->io, &j->io) < 0)
			break;
		write_done(&j->io);
	}
	p->in_put = false;
	size_t at = p->wbuf.len;
	/* A whole chunk at once: growing by doubling copies it over and over. */
	if (buf_reserve(&p->wbuf, p->wbuf.cap ? 4 + len : WRITE_CHUNK + 4 + len) < 0) {
		errno = ENOMEM;
		return -1;
	}
	uint8_t *e = (uint8_t *)p->wbuf.data + at;
	jput32(e, (uint32_t)len);
	jput64(e + 4, rec);
	msgcodec_write(e + PJ_ENTRY_HEAD, m);
	p->wbuf.len += 4 + len;
	p->count++;
	if (p->wbuf.len >= WRITE_CHUNK && hand_over(p) < 0) {
		p->wbuf.len = at;
		p->count--;
		return -1;
	}
	return 0;
}

/* Bytes [rpos, rpos + need) from memory: the window, a write in flight or
 * the write buffer (an entry never straddles two of them). NULL with errno
 * EAGAIN when they are to be read first, another errno on damage. */
static const uint8_t *fetch(struct pager *p, size_t need)
{
	if (p->rpos + need > p->wpos + p->wbuf.len)
		goto damage;
	if (p->rpos >= p->wpos)
		return (const uint8_t *)p->wbuf.data + (p->rpos - p->wpos);
	if (p->rpos >= p->wdone) {
		for (struct pjob *j = p->wjobs; j; j = j->wnext)
			if (p->rpos < j->off + j->len)
				return p->rpos + need <= j->off + j->len ? j->data + (p->rpos - j->off) : NULL;
		goto damage;
	}
	if (p->rpos + need > p->wdone)
		goto damage;
	if (p->rpos + need <= rend(p))
		return p->rbuf + (p->rpos - p->rbuf_off);
	p->rneed = (size_t)(p->rpos + need - rend(p));
	read_ahead(p);
	errno = p->err ? p->err : EAGAIN;
	return NULL;
damage:
	errno = EIO; /* an entry past what was written */
	return NULL;
}

static struct message *fail(struct pager *p, int err)
{
	p->count = 0;
	p->err = 0;
	buf_reset(&p->wbuf);
	rewind_file(p);
	errno = err;
	return NULL;
}

struct message *pager_get(struct pager *p, uint64_t *rec)
{
	errno = 0;
	if (!p->count)
		return NULL;
	if (p->err)
		return fail(p, p->err);
	const uint8_t *h = fetch(p, 4);
	uint32_t len = h ? jget32(h) : 0;
	if (h && (len < 8 || len > PJ_MAX_ENTRY))
		errno = EIO;
	const uint8_t *e = h && !errno ? fetch(p, 4 + (size_t)len) : NULL;
	const char *why;
	struct message *m = e ? msgcodec_read(e + PJ_ENTRY_HEAD, len - 8, &why) : NULL;
	if (!m) {
		if (errno == EAGAIN) {
			p->waiting = true;
			return NULL;
		}
		return fail(p, errno ? errno : EIO);
	}
	*rec = jget64(e + 4);
	p->rpos += 4 + (size_t)len;
	p->rneed = 0;
	if (p->rpos > rend(p)) {
		p->rbuf_off = p->rpos;
		p->rlen = 0;
	}
	if (--p->count == 0) {
		buf_reset(&p->wbuf);
		rewind_file(p);
	} else {
		read_ahead(p);
	}
	return m;
}

void pager_purge(struct pager *p, void (*each)(void *arg, uint64_t rec), void *arg)
{
	if (!p->count)
		return;
	/* What is on disk only goes to a scan, which settles the rest later. */
	uint64_t from = p->rpos;
	if (from < p->wdone) {
		from += pjob_each_rec(p->rbuf + (p->rpos - p->rbuf_off), (size_t)(rend(p) - p->rpos), each, arg);
		if (from < p->wdone && each) {
			struct pjob *s = pjob_scan_new(p->fd, from, p->wdone - from, each, arg);
			if (s)
				pageio_submit(p->io, &s->io);
		}
	}
	for (struct pjob *j = p->wjobs; j; j = j->wnext)
		if (j->off + j->len > p->rpos)
			pjob_each_rec(j->data + (p->rpos > j->off ? p->rpos - j->off : 0),
				      j->len - (size_t)(p->rpos > j->off ? p->rpos - j->off : 0), each, arg);
	if (p->rpos < p->wpos + p->wbuf.len) {
		size_t skip = p->rpos > p->wpos ? (size_t)(p->rpos - p->wpos) : 0;
		pjob_each_rec((const uint8_t *)p->wbuf.data + skip, p->wbuf.len - skip, each, arg);
	}
	p->count = 0;
	p->err = 0;
	buf_reset(&p->wbuf);
	rewind_file(p);
}
