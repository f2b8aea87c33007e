#include "config.h"
#include "store/pager.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/msgcodec.h"
#include "store/record.h"
#include "util/buf.h"

#define ENTRY_HEAD 12u
#define WRITE_CHUNK (256u << 10)
#define READ_CHUNK (256u << 10)
#define MAX_ENTRY (JREC_MAX_PAYLOAD)

struct pager {
	char *path;
	int fd;                /* -1 until the first put */
	uint64_t wpos;         /* file bytes written (the write buffer goes after) */
	uint64_t rpos;         /* file offset of the next entry to read */
	struct buf wbuf;       /* entries not written yet */
	uint8_t *rbuf;         /* bytes read ahead, from file offset rbuf_off */
	size_t rlen, rcap;
	uint64_t rbuf_off;
	size_t count;
};

struct pager *pager_new(const char *dir, const char *name)
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
	return p;
}

void pager_free(struct pager *p)
{
	if (!p)
		return;
	if (p->fd >= 0) {
		close(p->fd);
		unlink(p->path);
	}
	buf_free(&p->wbuf);
	free(p->rbuf);
	free(p->path);
	free(p);
}

size_t pager_count(const struct pager *p)
{
	return p->count;
}

uint64_t pager_bytes(const struct pager *p)
{
	return p->wpos + p->wbuf.len - p->rpos;
}

static int write_out(struct pager *p)
{
	size_t off = 0;
	while (off < p->wbuf.len) {
		ssize_t n = pwrite(p->fd, p->wbuf.data + off, p->wbuf.len - off, (off_t)(p->wpos + off));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			/* Half an entry must not stay: the next write goes where
			 * this one started. */
			if (ftruncate(p->fd, (off_t)p->wpos) < 0)
				e = errno;
			errno = e;
			return -1;
		}
		off += (size_t)n;
	}
	p->wpos += p->wbuf.len;
	buf_reset(&p->wbuf);
	return 0;
}

int pager_put(struct pager *p, const struct message *m, uint64_t rec)
{
	if (p->fd < 0 && (p->fd = open(p->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0)
		return -1;
	size_t len = 8 + msgcodec_size(m);
	if (len > MAX_ENTRY) {
		errno = EMSGSIZE;
		return -1;
	}
	size_t at = p->wbuf.len;
	if (buf_reserve(&p->wbuf, 4 + len) < 0) {
		errno = ENOMEM;
		return -1;
	}
	uint8_t *e = (uint8_t *)p->wbuf.data + at;
	jput32(e, (uint32_t)len);
	jput64(e + 4, rec);
	msgcodec_write(e + ENTRY_HEAD, m);
	p->wbuf.len += 4 + len;
	p->count++;
	if (p->wbuf.len >= WRITE_CHUNK && write_out(p) < 0) {
		p->wbuf.len = at;
		p->count--;
		return -1;
	}
	return 0;
}

/* Everything written was read: start the file over. */
static void rewind_file(struct pager *p)
{
	if (p->fd >= 0 && ftruncate(p->fd, 0) == 0) {
		p->wpos = 0;
		p->rpos = 0;
	}
	p->rlen = 0;
	p->rbuf_off = p->rpos;
}

/* Makes bytes [rpos, rpos + need) available in rbuf; they may still be in
 * the write buffer, which then goes to the file first. */
static const uint8_t *fetch(struct pager *p, size_t need)
{
	if (p->rpos + need > p->wpos && p->wbuf.len && write_out(p) < 0)
		return NULL;
	if (p->rpos + need > p->wpos) {
		errno = EIO; /* an entry past what was written: damage */
		return NULL;
	}
	if (p->rpos >= p->rbuf_off && p->rpos + need <= p->rbuf_off + p->rlen)
		return p->rbuf + (p->rpos - p->rbuf_off);
	size_t want = need > READ_CHUNK ? need : READ_CHUNK;
	if (want > p->rcap) {
		uint8_t *b = realloc(p->rbuf, want);
		if (!b) {
			errno = ENOMEM;
			return NULL;
		}
		p->rbuf = b;
		p->rcap = want;
	}
	uint64_t left = p->wpos - p->rpos;
	size_t n = left < want ? (size_t)left : want;
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(p->fd, p->rbuf + got, n - got, (off_t)(p->rpos + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return NULL;
		}
		got += (size_t)r;
	}
	p->rbuf_off = p->rpos;
	p->rlen = got;
	return p->rbuf;
}

struct message *pager_get(struct pager *p, uint64_t *rec)
{
	errno = 0;
	if (!p->count)
		return NULL;
	const uint8_t *h = fetch(p, 4);
	uint32_t len = h ? jget32(h) : 0;
	const uint8_t *e = h && len >= 8 && len <= MAX_ENTRY ? fetch(p, 4 + (size_t)len) : NULL;
	const char *why;
	struct message *m = e ? msgcodec_read(e + ENTRY_HEAD, len - 8, &why) : NULL;
	if (!m) {
		if (!errno)
			errno = EIO;
		int err = errno;
		p->count = 0;
		buf_reset(&p->wbuf);
		rewind_file(p);
		errno = err;
		return NULL;
	}
	*rec = jget64(e + 4);
	p->rpos += 4 + (size_t)len;
	if (--p->count == 0) {
		buf_reset(&p->wbuf);
		rewind_file(p);
	}
	return m;
}
