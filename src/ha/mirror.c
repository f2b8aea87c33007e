/* The standby's mirror of the journal directory (ha/mirror.h). Data only
 * ever goes to the end of the newest segment, as on the active, so one
 * file is open for writing at a time. */
#include "config.h"
#include "ha/mirror.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/journal_internal.h"
#include "store/record.h"

struct mirror {
	int dirfd, lockfd;
	int fd;              /* the segment being written, -1 if none */
	uint64_t cur_first;  /* its first number */
	uint64_t cur_size;   /* its bytes */
	uint64_t expect;     /* the number its next record must carry */
	bool cur_dirty;      /* written since the last sync */
	bool dir_dirty;      /* files came or went since the last sync */
	bool changed;        /* anything since the last sync */
	uint64_t last_seq;
};

__attribute__((format(printf, 3, 4))) static int mfail(char *err, size_t errlen, const char *fmt, ...)
{
	if (errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* A journal file name: a segment (1) or a stand-in (2), or 0. */
static int parse_name(const char *name, uint64_t *first, uint64_t *next)
{
	char tail[16];
	unsigned long long a, b;
	int n = 0;
	if (strlen(name) == 23 && sscanf(name, "%20llu.wj%n", &a, &n) == 1 && n == 23) {
		*first = a;
		*next = 0;
		return 1;
	}
	if (strlen(name) == 50 && sscanf(name, "%20llu-%20llu.%9s", &a, &b, tail) == 3 &&
	    !strcmp(tail, "released")) {
		*first = a;
		*next = b;
		return 2;
	}
	return 0;
}

/* Calls fn for each segment file and stand-in; stops at a nonzero return. */
static int each_file(const struct mirror *m, int (*fn)(void *arg, const char *name, int kind,
						       uint64_t first, uint64_t next),
		     void *arg)
{
	int fd = dup(m->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(d);
	struct dirent *e;
	int rc = 0;
	while (!rc && (e = readdir(d))) {
		uint64_t first, next;
		int kind = parse_name(e->d_name, &first, &next);
		if (kind)
			rc = fn(arg, e->d_name, kind, first, next);
	}
	closedir(d);
	return rc;
}

struct scan {
	uint64_t newest_seg, oldest, last_stub;
};

static int scan_one(void *arg, const char *name, int kind, uint64_t first, uint64_t next)
{
	struct scan *s = arg;
	if (!s->oldest || first < s->oldest)
		s->oldest = first;
	if (kind == 1 && first > s->newest_seg)
		s->newest_seg = first;
	if (kind == 2 && next - 1 > s->last_stub)
		s->last_stub = next - 1;
	return 0;
}

/* Reads the newest segment, cuts what is not whole records off its end
 * (a kill in the middle of a write), and sets last_seq. */
static int scan_newest(struct mirror *m, uint64_t first, char *err, size_t errlen)
{
	char name[64];
	jseg_name(name, sizeof(name), first);
	int fd = openat(m->dirfd, name, O_RDWR | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0) {
		if (fd >= 0)
			close(fd);
		return mfail(err, errlen, "replication: cannot open %s: %s", name, strerror(errno));
	}
	size_t size = (size_t)sb.st_size;
	uint8_t *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		close(fd);
		return mfail(err, errlen, "replication: out of memory reading %s", name);
	}
	size_t got = 0;
	while (got < size) {
		ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	uint64_t hfirst = 0;
	size_t good = 0;
	if (got >= JSEG_HEADER && jseg_header_parse(buf, &hfirst) && hfirst == first) {
		good = JSEG_HEADER;
		uint64_t expect = first;
		struct jrec r;
		while (jrec_parse(buf + good, got - good, &r) == JREC_OK && r.seq == expect) {
			expect = r.type == JREC_TYPE_SKIP && r.len == 8 ? jget64(r.data) + 1 : r.seq + 1;
			good += r.size;
		}
		m->last_seq = expect - 1;
	}
	free(buf);
	int rc = 0;
	if (good == 0) { /* not even a header: as if it never came */
		close(fd);
		unlinkat(m->dirfd, name, 0);
		m->dir_dirty = true;
		return 0;
	}
	if (good < size && (ftruncate(fd, (off_t)good) < 0 || fdatasync(fd) < 0))
		rc = mfail(err, errlen, "replication: cannot cut %s at %zu: %s", name, good,
			   strerror(errno));
	close(fd);
	return rc;
}

struct mirror *mirror_open(const char *data_dir, char *err, size_t errlen)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/journal", data_dir) >= (int)sizeof(path)) {
		mfail(err, errlen, "replication: directory name too long");
		return NULL;
	}
	mkdir(data_dir, 0750);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		mfail(err, errlen, "replication: cannot create %s: %s", path, strerror(errno));
		return NULL;
	}
	struct mirror *m = calloc(1, sizeof(*m));
	if (!m) {
		mfail(err, errlen, "replication: out of memory");
		return NULL;
	}
	m->fd = m->lockfd = -1;
	m->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->dirfd < 0) {
		mfail(err, errlen, "replication: cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	/* The journal's own lock: no journal_open on this directory while the
	 * mirror writes into it. */
	m->lockfd = openat(m->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (m->lockfd < 0 || flock(m->lockfd, LOCK_EX | LOCK_NB) < 0) {
		mfail(err, errlen, "replication: %s is in use (%s/lock): %s", data_dir, path,
		      strerror(errno));
		goto fail;
	}
	struct scan s = { 0 };
	if (each_file(m, scan_one, &s) < 0) {
		mfail(err, errlen, "replication: cannot list %s: %s", path, strerror(errno));
		goto fail;
	}
	if (s.newest_seg && scan_newest(m, s.newest_seg, err, errlen) < 0)
		goto fail;
	if (s.last_stub > m->last_seq)
		m->last_seq = s.last_stub;
	return m;
fail:
	mirror_free(m);
	return NULL;
}

static int close_cur(struct mirror *m, char *err, size_t errlen)
{
	if (m->fd < 0)
		return 0;
	int rc = 0;
	if (m->cur_dirty && fdatasync(m->fd) < 0)
		rc = mfail(err, errlen, "replication: fdatasync of segment %020llu: %s",
			   (unsigned long long)m->cur_first, strerror(errno));
	close(m->fd);
	m->fd = -1;
	m->cur_dirty = false;
	return rc;
}

void mirror_free(struct mirror *m)
{
	if (!m)
		return;
	close_cur(m, NULL, 0);
	if (m->dir_dirty && m->dirfd >= 0)
		fsync(m->dirfd);
	if (m->lockfd >= 0)
		close(m->lockfd); /* drops the flock */
	if (m->dirfd >= 0)
		close(m->dirfd);
	free(m);
}

uint64_t mirror_last_seq(const struct mirror *m)
{
	return m->last_seq;
}

static int oldest_one(void *arg, const char *name, int kind, uint64_t first, uint64_t next)
{
	uint64_t *o = arg;
	if (!*o || first < *o)
		*o = first;
	return 0;
}

uint64_t mirror_oldest(const struct mirror *m)
{
	uint64_t o = 0;
	each_file(m, oldest_one, &o);
	return o;
}

struct prune {
	struct mirror *m;
	bool all;
	uint64_t from, oldest;
	long n;
	int err;
};

static int prune_one(void *arg, const char *name, int kind, uint64_t first, uint64_t next)
{
	struct prune *p = arg;
	if (!p->all && first < p->from && first >= p->oldest)
		return 0;
	if (unlinkat(p->m->dirfd, name, 0) < 0 && errno != ENOENT) {
		p->err = errno;
		return 1;
	}
	p->n++;
	return 0;
}

long mirror_start(struct mirror *m, uint8_t mode, uint64_t from, uint64_t oldest, char *err,
		  size_t errlen)
{
	if (close_cur(m, err, errlen) < 0)
		return -1;
	struct prune p = { .m = m, .all = mode == REPL_MODE_FULL, .from = from, .oldest = oldest };
	if (each_file(m, prune_one, &p) != 0 || p.err)
		return mfail(err, errlen, "replication: cannot delete old segments: %s",
			     strerror(p.err ? p.err : errno));
	m->cur_first = 0; /* segments begin again from `from` */
	if (p.all)
		m->last_seq = 0;
	else if (from && m->last_seq >= from)
		m->last_seq = from - 1;
	if (p.n) {
		m->dir_dirty = true;
		m->changed = true;
	}
	return p.n;
}

int mirror_seg_begin(struct mirror *m, uint64_t first, char *err, size_t errlen)
{
	if (!first || first <= m->cur_first)
		return mfail(err, errlen, "replication: segment %llu does not follow %llu",
			     (unsigned long long)first, (unsigned long long)m->cur_first);
	if (close_cur(m, err, errlen) < 0)
		return -1;
	char name[64];
	jseg_name(name, sizeof(name), first);
	m->fd = openat(m->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (m->fd < 0)
		return mfail(err, errlen, "replication: cannot create %s: %s", name, strerror(errno));
	m->cur_first = first;
	m->cur_size = 0;
	m->expect = first;
	m->dir_dirty = m->changed = true;
	return 0;
}

int mirror_data(struct mirror *m, const struct repl_data *d, char *err, size_t errlen)
{
	if (m->fd < 0 || d->segment != m->cur_first)
		return mfail(err, errlen, "replication: data for segment %llu, not the one begun",
			     (unsigned long long)d->segment);
	if (d->offset != m->cur_size)
		return mfail(err, errlen, "replication: data at offset %llu of segment %llu, which "
			     "has %llu bytes", (unsigned long long)d->offset,
			     (unsigned long long)d->segment, (unsigned long long)m->cur_size);
	const uint8_t *p = d->bytes;
	size_t n = d->len;
	uint64_t hfirst, expect = m->expect;
	if (d->offset == 0) {
		if (n < JSEG_HEADER || !jseg_header_parse(p, &hfirst) || hfirst != d->segment)
			return mfail(err, errlen, "replication: bad header for segment %llu",
				     (unsigned long long)d->segment);
		p += JSEG_HEADER;
		n -= JSEG_HEADER;
	}
	while (n) {
		struct jrec r;
		enum jrec_status st = jrec_parse(p, n, &r);
		if (st != JREC_OK || r.seq != expect)
			return mfail(err, errlen, "replication: segment %llu offset %llu: not whole "
				     "records numbered from %llu", (unsigned long long)d->segment,
				     (unsigned long long)(d->offset + d->len - n),
				     (unsigned long long)expect);
		if (r.type == JREC_TYPE_SKIP) {
			if (r.len != 8 || jget64(r.data) < r.seq)
				return mfail(err, errlen, "replication: bad skip record %llu",
					     (unsigned long long)r.seq);
			expect = jget64(r.data) + 1;
		} else {
			expect = r.seq + 1;
		}
		p += r.size;
		n -= r.size;
	}
	if (d->last_seq != expect - 1)
		return mfail(err, errlen, "replication: data says it ends at %llu, its records at %llu",
			     (unsigned long long)d->last_seq, (unsigned long long)(expect - 1));
	size_t done = 0;
	while (done < d->len) {
		ssize_t w = pwrite(m->fd, d->bytes + done, d->len - done, (off_t)(d->offset + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return mfail(err, errlen, "replication: write to segment %llu: %s",
				     (unsigned long long)d->segment, w < 0 ? strerror(errno) : "no room");
		done += (size_t)w;
	}
	m->cur_size += d->len;
	m->expect = expect;
	if (expect - 1 > m->last_seq)
		m->last_seq = expect - 1;
	m->cur_dirty = m->changed = true;
	return 0;
}

struct find {
	uint64_t first;
	char name[64];
};

static int find_one(void *arg, const char *name, int kind, uint64_t first, uint64_t next)
{
	struct find *f = arg;
	if (first != f->first)
		return 0;
	snprintf(f->name, sizeof(f->name), "%s", name);
	return 1;
}

int mirror_drop(struct mirror *m, uint64_t first, char *err, size_t errlen)
{
	if (m->fd >= 0 && m->cur_first == first && close_cur(m, err, errlen) < 0)
		return -1;
	struct find f = { .first = first };
	while (each_file(m, find_one, &f) == 1) {
		if (unlinkat(m->dirfd, f.name, 0) < 0 && errno != ENOENT)
			return mfail(err, errlen, "replication: cannot delete %s: %s", f.name,
				     strerror(errno));
		m->dir_dirty = m->changed = true;
	}
	return 0;
}

int mirror_stub(struct mirror *m, uint64_t first, uint64_t next, char *err, size_t errlen)
{
	if (next <= first)
		return mfail(err, errlen, "replication: bad stand-in %llu-%llu",
			     (unsigned long long)first, (unsigned long long)next);
	if (mirror_drop(m, first, err, errlen) < 0)
		return -1;
	char name[96];
	jstub_name(name, sizeof(name), first, next);
	int fd = openat(m->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return mfail(err, errlen, "replication: cannot create %s: %s", name, strerror(errno));
	close(fd);
	if (next - 1 > m->last_seq)
		m->last_seq = next - 1;
	if (first > m->cur_first)
		m->cur_first = first;
	m->dir_dirty = m->changed = true;
	return 0;
}

bool mirror_dirty(const struct mirror *m)
{
	return m->changed;
}

int mirror_sync(struct mirror *m, char *err, size_t errlen)
{
	if (m->fd >= 0 && m->cur_dirty) {
		if (fdatasync(m->fd) < 0)
			return mfail(err, errlen, "replication: fdatasync of segment %020llu: %s",
				     (unsigned long long)m->cur_first, strerror(errno));
		m->cur_dirty = false;
	}
	if (m->dir_dirty) {
		if (fsync(m->dirfd) < 0)
			return mfail(err, errlen, "replication: fsync of the journal directory: %s",
				     strerror(errno));
		m->dir_dirty = false;
	}
	m->changed = false;
	return 0;
}
