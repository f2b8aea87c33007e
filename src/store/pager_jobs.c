/* What the I/O thread does for a page file. Nothing here touches a pager:
 * a job carries all it needs, so that the pager may be freed under it. */
#include "config.h"
#include "store/pager_jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void run_write(struct pjob *j)
{
	size_t off = 0;
	while (off < j->len) {
		ssize_t n = pwrite(j->fd, j->data + off, j->len - off, (off_t)(j->off + off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			j->err = errno;
			return;
		}
		off += (size_t)n;
	}
}

static void run_read(struct pjob *j)
{
	while (j->got < j->len) {
		ssize_t n = pread(j->fd, j->data + j->got, j->len - j->got, (off_t)(j->off + j->got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			j->err = errno;
		if (n <= 0)
			return;
		j->got += (size_t)n;
	}
}

static void collect(void *arg, uint64_t rec)
{
	struct pjob *j = arg;
	if (j->err)
		return;
	if (j->nrecs == j->reccap) {
		size_t cap = j->reccap ? 2 * j->reccap : 1024;
		uint64_t *r = realloc(j->recs, cap * sizeof(*r));
		if (!r) {
			j->err = ENOMEM;
			return;
		}
		j->recs = r;
		j->reccap = cap;
	}
	j->recs[j->nrecs++] = rec;
}

/* Stops at the end, a read error or damage: what it found till then is
 * reported, and the rest comes back at the next start. */
static void run_scan(struct pjob *j)
{
	size_t cap = PJ_READ_CHUNK, have = 0;
	uint64_t pos = j->off, end = j->off + j->len;
	uint8_t *b = malloc(cap);
	while (b && pos < end && !j->err) {
		size_t want = cap - have;
		if (want > end - pos)
			want = (size_t)(end - pos);
		ssize_t n = pread(j->fd, b + have, want, (off_t)pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		pos += (size_t)n;
		size_t used = pjob_each_rec(b, have, collect, j);
		memmove(b, b + used, have - used);
		have -= used;
		if (have < 4)
			continue;
		uint32_t len = jget32(b);
		if (len < 8 || len > PJ_MAX_ENTRY)
			break;
		if (4 + (size_t)len > cap) {
			uint8_t *bigger = realloc(b, 4 + (size_t)len);
			if (!bigger)
				break;
			b = bigger;
			cap = 4 + (size_t)len;
		}
	}
	free(b);
}

static void run(struct pio_job *ij)
{
	struct pjob *j = (struct pjob *)ij;
	switch (j->op) {
	case PJ_WRITE:
		run_write(j);
		break;
	case PJ_READ:
		run_read(j);
		break;
	case PJ_TRUNCATE:
		if (ftruncate(j->fd, 0) < 0)
			j->err = errno;
		break;
	case PJ_SCAN:
		run_scan(j);
		break;
	}
}

static void drop(struct pio_job *ij)
{
	pjob_free((struct pjob *)ij);
}

/* A truncation has nothing to tell. */
static void quiet_done(struct pio_job *ij)
{
	pjob_free((struct pjob *)ij);
}

struct pjob *pjob_new(enum pjob_op op, int fd)
{
	struct pjob *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->op = op;
	j->fd = fd;
	j->io.run = run;
	j->io.drop = drop;
	j->io.done = quiet_done;
	return j;
}

void pjob_free(struct pjob *j)
{
	if (!j)
		return;
	if (j->op == PJ_SCAN && j->fd >= 0)
		close(j->fd);
	free(j->data);
	free(j->recs);
	free(j);
}

static void scan_done(struct pio_job *ij)
{
	struct pjob *j = (struct pjob *)ij;
	for (size_t i = 0; i < j->nrecs; i++)
		j->each(j->arg, j->recs[i]);
	pjob_free(j);
}

struct pjob *pjob_scan_new(int fd, uint64_t off, uint64_t len, void (*each)(void *arg, uint64_t rec),
			   void *arg)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	struct pjob *j = copy >= 0 ? pjob_new(PJ_SCAN, copy) : NULL;
	if (!j) {
		if (copy >= 0)
			close(copy);
		return NULL;
	}
	j->off = off;
	j->len = (size_t)len;
	j->each = each;
	j->arg = arg;
	j->io.done = scan_done;
	return j;
}

size_t pjob_each_rec(const uint8_t *b, size_t n, void (*each)(void *arg, uint64_t rec), void *arg)
{
	size_t at = 0;
	while (n - at >= PJ_ENTRY_HEAD) {
		uint32_t len = jget32(b + at);
		if (len < 8 || len > PJ_MAX_ENTRY || n - at - 4 < len)
			break;
		uint64_t rec = jget64(b + at + 4);
		if (rec && each)
			each(arg, rec);
		at += 4 + (size_t)len;
	}
	return at;
}
