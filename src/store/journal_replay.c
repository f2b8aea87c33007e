/* Open-time scan of the journal: lists the segments, replays their records
 * in order, cuts a torn tail, and copies damage aside or refuses. Runs on
 * the opening thread before the writer starts. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store/crc32c.h"
#include "store/journal_internal.h"
#include "store/record.h"

/* Stores smaller than this replay without progress lines. */
#define PROGRESS_MIN (4u << 20)
/* A record found past damage must be this close above the last good one to
 * count as "the journal goes on" (skip records can jump a little). */
#define SEQ_WINDOW (1ull << 40)

struct dent {
	uint64_t first, next;
	bool stub;
};

struct rctx {
	struct journal *j;
	const struct journal_options *o;
	journal_replay_fn fn;
	void *arg;
	char *err;
	size_t errlen;
	int qfd;                 /* root/quarantine, opened when first needed */
	uint8_t *buf;            /* read buffer, shared by all segments */
	size_t cap;
	uint64_t total, done_bytes, records, tick;
	struct timespec start, last_report;
	uint64_t max_seq;        /* highest number seen anywhere */
	uint64_t floor;          /* one past the last record replayed (or
	                          * skipped): a segment must not start below */
	/* Set after a damaged segment: names the records lost at the next
	 * boundary. */
	uint64_t lost_after;
	char lost_in[32];
};

/* A segment being read: buf holds the file's bytes [boff, boff + end). */
struct rdr {
	struct rctx *c;
	int fd;
	uint64_t size;
	uint64_t boff;
	size_t end;
};

__attribute__((format(printf, 2, 3))) static int rfail(struct rctx *c, const char *fmt, ...)
{
	if (c->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static double secs_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void progress(struct rctx *c, uint64_t add)
{
	c->done_bytes += add;
	if (c->total < PROGRESS_MIN)
		return;
	if ((++c->tick & 255) && add < (1u << 20))
		return;
	if (secs_since(&c->last_report) < 1.0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &c->last_report);
	double t = secs_since(&c->start);
	log_info("journal: replaying %s: %.0f%%, %llu records, %.1f MB/s", c->j->root,
		 100.0 * (double)c->done_bytes / (double)c->total, (unsigned long long)c->records,
		 t > 0 ? (double)c->done_bytes / 1e6 / t : 0.0);
}

/* Bytes [off, off + want) of the segment, which the caller knows are inside
 * the file. NULL with *e set on a read error or no memory. */
static const uint8_t *rd_get(struct rdr *r, uint64_t off, size_t want, int *e)
{
	struct rctx *c = r->c;
	if (off >= r->boff && off + want <= r->boff + r->end)
		return c->buf + (off - r->boff);
	if (off >= r->boff && off < r->boff + r->end) {
		size_t keep = (size_t)(r->boff + r->end - off);
		memmove(c->buf, c->buf + (off - r->boff), keep);
		r->end = keep;
	} else {
		r->end = 0;
	}
	r->boff = off;
	if (want > c->cap) {
		size_t cap = c->cap ? c->cap : (1u << 20);
		while (cap < want)
			cap *= 2;
		uint8_t *p = realloc(c->buf, cap);
		if (!p) {
			*e = ENOMEM;
			return NULL;
		}
		c->buf = p;
		c->cap = cap;
	}
	while (r->end < want) {
		size_t room = c->cap - r->end;
		uint64_t left = r->size - (r->boff + r->end);
		if (room > left)
			room = (size_t)left;
		if (!room) {
			*e = EIO; /* the file shrank under us */
			return NULL;
		}
		ssize_t n = pread(r->fd, c->buf + r->end, room, (off_t)(r->boff + r->end));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*e = n < 0 ? errno : EIO;
			return NULL;
		}
		r->end += (size_t)n;
	}
	return c->buf;
}

static int qdir(struct rctx *c)
{
	if (c->qfd >= 0)
		return 0;
	char path[4200];
	snprintf(path, sizeof(path), "%s/quarantine", c->j->root);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return errno;
	c->qfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return c->qfd < 0 ? errno : 0;
}

/* Copies bytes [off, off + len) of fd to quarantine/fname, durably. Keeps
 * an earlier copy of the same size. 0 or an errno value. */
static int copy_aside(struct rctx *c, int fd, uint64_t off, uint64_t len, const char *fname)
{
	int e = qdir(c);
	if (e)
		return e;
	struct stat sb;
	if (fstatat(c->qfd, fname, &sb, 0) == 0 && (uint64_t)sb.st_size == len)
		return 0;
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s.tmp", fname);
	int out = openat(c->qfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return errno;
	char buf[65536];
	uint64_t done = 0;
	while (!e && done < len) {
		size_t want = len - done < sizeof(buf) ? (size_t)(len - done) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? errno : EIO;
			break;
		}
		for (ssize_t w = 0; w < n;) {
			ssize_t k = write(out, buf + w, (size_t)(n - w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				e = errno;
				break;
			}
			w += k;
		}
		done += (uint64_t)n;
	}
	if (!e && jfsync(out) < 0)
		e = errno;
	close(out);
	if (!e && renameat(c->qfd, tmp, c->qfd, fname) < 0)
		e = errno;
	if (e)
		unlinkat(c->qfd, tmp, 0);
	else
		jfsync(c->qfd);
	return e;
}

static void write_note(struct rctx *c, const char *fname, const char *text)
{
	if (qdir(c))
		return;
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s.tmp", fname);
	int fd = openat(c->qfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	size_t len = strlen(text);
	bool good = write(fd, text, len) == (ssize_t)len && jfsync(fd) == 0;
	close(fd);
	if (good && renameat(c->qfd, tmp, c->qfd, fname) == 0)
		jfsync(c->qfd);
	else
		unlinkat(c->qfd, tmp, 0);
}

/* Sequence numbers from..to are in no segment. */
static int gap(struct rctx *c, uint64_t from, uint64_t to, const char *before, const char *after)
{
	char msg[300];
	snprintf(msg, sizeof(msg), "journal: records %llu..%llu are missing: no segment holds them between %s and %s",
		 (unsigned long long)from, (unsigned long long)to, before, after);
	if (c->o->on_corruption == JOURNAL_REFUSE)
		return rfail(c, "%s (on_corruption = refuse)", msg);
	char fname[64], text[400];
	snprintf(fname, sizeof(fname), "%020llu-missing.txt", (unsigned long long)from);
	snprintf(text, sizeof(text), "%s\n", msg + strlen("journal: "));
	write_note(c, fname, text);
	log_error("%s; going on without them (noted in quarantine/%s)", msg, fname);
	c->j->st.quarantined++;
	return 0;
}

static void note_lost(struct rctx *c, uint64_t next_first)
{
	if (c->lost_after && next_first > c->lost_after + 1)
		log_warn("journal: records %llu..%llu were in the damaged part of %s",
			 (unsigned long long)c->lost_after + 1, (unsigned long long)next_first - 1,
			 c->lost_in);
	c->lost_after = 0;
}

/* After damage at `off`: is there a good record past it that continues the
 * journal (seq above min_seq)? Sets *max to the highest number found and,
 * when `next` is not NULL, next->off and next->seq to the first such record
 * (off 0 when there is none or in doubt). When in doubt (no memory, read
 * error) says yes: damage is then quarantined rather than cut. */
struct resume_at {
	uint64_t off, seq;
};

static bool later_records(struct rdr *r, uint64_t off, uint64_t min_seq, uint64_t *max,
			  struct resume_at *next)
{
	*max = 0;
	if (next)
		next->off = 0;
	if (off + 1 >= r->size)
		return false;
	size_t n = (size_t)(r->size - off - 1);
	int e = 0;
	const uint8_t *p = rd_get(r, off + 1, n, &e);
	if (!p)
		return true;
	bool found = false;
	for (size_t i = 0; i + JREC_HEADER <= n; i++) {
		uint32_t len = jget32(p + i);
		if (!jrec_len_ok(len) || len > n - i - JREC_PREFIX)
			continue;
		uint64_t seq = jget64(p + i + 8);
		if (seq <= min_seq || seq - min_seq > SEQ_WINDOW)
			continue;
		if (crc32c(0, p + i + JREC_PREFIX, len) != jget32(p + i + 4))
			continue;
		if (!found && next) {
			next->off = off + 1 + i;
			next->seq = seq;
		}
		found = true;
		uint64_t top = seq;
		if (p[i + 16] == JREC_TYPE_SKIP && len == JREC_SKIP_SIZE - JREC_PREFIX &&
		    jget64(p + i + JREC_HEADER) > seq)
			top = jget64(p + i + JREC_HEADER);
		if (top > *max)
			*max = top;
	}
	return found;
}

static void seen(struct rctx *c, uint64_t seq)
{
	if (seq > c->max_seq)
		c->max_seq = seq;
}

/* Replays one segment. *expect: the number its first record must have (0:
 * unknown, after damage); set to the one after its last. *keep: false when
 * the file was removed (an empty or half-created last segment). last: 2 for
 * the last segment, 1 for one whose tail may be torn too (the one before a
 * last segment holding nothing but a header: in sync = never nothing was
 * synced before the roll-over), 0 otherwise. */
static int replay_segment(struct rctx *c, const struct dent *s, const char *prev, int last,
			  uint64_t *expect, bool *keep)
{
	struct journal *j = c->j;
	char name[32], why[160], fname[96];
	jseg_name(name, sizeof(name), s->first);
	*keep = true;
	int fd = openat(j->dirfd, name, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return rfail(c, "journal: cannot open segment %s: %s", name, strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		close(fd);
		return rfail(c, "journal: cannot stat segment %s: %s", name, strerror(e));
	}
	struct rdr r = { .c = c, .fd = fd, .size = (uint64_t)sb.st_size };
	uint64_t off = 0, exp = s->first, hf = 0;
	const uint8_t *p;
	bool read_error = false, torn_ok = true;
	int e = 0;

	if (r.size <= JSEG_HEADER && last == 2) {
		/* Created, never finished: nothing in it was ever confirmed. */
		if (r.size) {
			snprintf(fname, sizeof(fname), "%020llu-0.torn", (unsigned long long)s->first);
			copy_aside(c, fd, 0, r.size, fname);
		}
		close(fd);
		unlinkat(j->dirfd, name, 0);
		jfsync(j->dirfd);
		if (r.size < JSEG_HEADER) {
			log_warn("journal: segment %s is shorter than its header (%llu bytes): a torn creation, "
				 "removed",
				 name, (unsigned long long)r.size);
			j->st.torn_tails++;
		}
		*keep = false;
		return 0;
	}
	seen(c, s->first - 1);
	if (r.size < JSEG_HEADER) {
		snprintf(why, sizeof(why), "shorter than a segment header (%llu bytes)",
			 (unsigned long long)r.size);
		torn_ok = false;
		goto bad;
	}
	if (!(p = rd_get(&r, 0, JSEG_HEADER, &e))) {
		snprintf(why, sizeof(why), "read error: %s", strerror(e));
		read_error = true;
		goto unreadable;
	}
	if (!jseg_header_parse(p, &hf) || hf != s->first) {
		if (hf)
			snprintf(why, sizeof(why), "the header names record %llu", (unsigned long long)hf);
		else
			snprintf(why, sizeof(why), "bad segment header");
		torn_ok = r.size == JSEG_HEADER;
		goto bad;
	}
	if (*expect && s->first > *expect) {
		if (gap(c, *expect, s->first - 1, prev, name) < 0) {
			close(fd);
			return -1;
		}
	} else if (s->first < c->floor) {
		/* Replay never goes backwards, even after damage. */
		snprintf(why, sizeof(why), "it starts at record %llu but records up to %llu were read already",
			 (unsigned long long)s->first, (unsigned long long)c->floor - 1);
		torn_ok = false;
		goto bad;
	}
	note_lost(c, s->first);

	off = JSEG_HEADER;
resume:
	while (off < r.size) {
		struct jrec rec;
		if (r.size - off < JREC_PREFIX) {
			snprintf(why, sizeof(why), "incomplete record");
			goto bad;
		}
		if (!(p = rd_get(&r, off, JREC_PREFIX, &e))) {
			snprintf(why, sizeof(why), "read error: %s", strerror(e));
			read_error = true;
			goto unreadable;
		}
		uint32_t len = jget32(p);
		if (!jrec_len_ok(len)) {
			snprintf(why, sizeof(why), "impossible record length %u", len);
			goto bad;
		}
		if (r.size - off - JREC_PREFIX < len) {
			snprintf(why, sizeof(why), "incomplete record (%u bytes, %llu left)", len,
				 (unsigned long long)(r.size - off - JREC_PREFIX));
			goto bad;
		}
		if (!(p = rd_get(&r, off, JREC_PREFIX + len, &e))) {
			snprintf(why, sizeof(why), "read error: %s", strerror(e));
			read_error = true;
			goto unreadable;
		}
		if (jrec_parse(p, JREC_PREFIX + len, &rec) != JREC_OK) {
			snprintf(why, sizeof(why), "bad CRC");
			goto bad;
		}
		if (rec.seq != exp) {
			snprintf(why, sizeof(why), "record %llu where %llu was due", (unsigned long long)rec.seq,
				 (unsigned long long)exp);
			goto bad;
		}
		if (rec.type == JREC_TYPE_SKIP) {
			uint64_t to = rec.len == 8 ? jget64(rec.data) : 0;
			if (to < rec.seq || to - rec.seq > SEQ_WINDOW) {
				snprintf(why, sizeof(why), "bad skip record");
				goto bad;
			}
			exp = to + 1;
		} else {
			if (c->fn && c->fn(c->arg, rec.seq, rec.type, rec.data, rec.len)) {
				close(fd);
				return rfail(c, "journal: replay stopped by the caller at record %llu (segment %s offset %llu)",
					     (unsigned long long)rec.seq, name, (unsigned long long)off);
			}
			exp = rec.seq + 1;
			c->records++;
		}
		off += rec.size;
		progress(c, rec.size);
	}
	c->floor = exp;
	*expect = exp;
	if (last == 2 && exp == s->first) {
		/* Nothing in it: the next write makes a new one. */
		close(fd);
		unlinkat(j->dirfd, name, 0);
		jfsync(j->dirfd);
		*keep = false;
		return 0;
	}
	seen(c, exp - 1);
	close(fd);
	return 0;

unreadable:
	if (e == ENOMEM) {
		close(fd);
		return rfail(c, "journal: out of memory reading segment %s at offset %llu", name,
			     (unsigned long long)off);
	}
bad:
	seen(c, exp - 1);
	if (exp > c->floor)
		c->floor = exp;
	if (last && !read_error) {
		uint64_t max;
		bool more = later_records(&r, off, exp - 1, &max, NULL);
		if (more)
			seen(c, max);
		if (!more && torn_ok) {
			uint64_t cut = r.size - off;
			snprintf(fname, sizeof(fname), "%020llu-%llu.torn", (unsigned long long)s->first,
				 (unsigned long long)off);
			int ce = copy_aside(c, fd, off, cut, fname);
			if (ftruncate(fd, (off_t)off) < 0 || jfsync(fd) < 0) {
				e = errno;
				close(fd);
				return rfail(c, "journal: cannot cut the torn tail of segment %s at offset %llu: %s",
					     name, (unsigned long long)off, strerror(e));
			}
			if (ce)
				log_warn("journal: segment %s: torn tail cut at offset %llu (%llu bytes, %s; "
					 "not kept: %s)",
					 name, (unsigned long long)off, (unsigned long long)cut, why, strerror(ce));
			else
				log_warn("journal: segment %s: torn tail cut at offset %llu (%llu bytes, %s; "
					 "kept in quarantine/%s)",
					 name, (unsigned long long)off, (unsigned long long)cut, why, fname);
			j->st.torn_tails++;
			*expect = exp;
			if (exp > c->floor)
				c->floor = exp;
			close(fd);
			if (exp == s->first) { /* no record left in it */
				unlinkat(j->dirfd, name, 0);
				jfsync(j->dirfd);
				*keep = false;
			}
			return 0;
		}
	}
	if (c->o->on_corruption == JOURNAL_REFUSE) {
		close(fd);
		return rfail(c, "journal: segment %s offset %llu: %s (on_corruption = refuse)", name,
			     (unsigned long long)off, why);
	}
	snprintf(fname, sizeof(fname), "%020llu-%llu.bad", (unsigned long long)s->first,
		 (unsigned long long)off);
	/* Only the damaged stretch is lost: replay goes on at the next good
	 * record that continues the journal. */
	uint64_t top;
	struct resume_at next;
	uint64_t after = (exp > c->floor ? exp : c->floor) - 1; /* never backwards */
	if (!read_error && later_records(&r, off, after, &top, &next) && next.off) {
		int ce = copy_aside(c, fd, off, next.off - off, fname);
		log_error("journal: segment %s offset %llu: %s; records %llu..%llu lost, the %llu bytes "
			  "%s quarantine/%s; replay goes on at offset %llu",
			  name, (unsigned long long)off, why, (unsigned long long)after + 1,
			  (unsigned long long)next.seq - 1, (unsigned long long)(next.off - off),
			  ce ? "could not be copied to" : "copied to", fname,
			  (unsigned long long)next.off);
		j->st.quarantined++;
		off = next.off;
		exp = next.seq;
		goto resume;
	}
	int ce = copy_aside(c, fd, off, r.size - off, fname);
	if (ce)
		log_error("journal: segment %s offset %llu: %s; the %llu bytes from there on are "
			  "skipped (could not copy them to quarantine/%s: %s; they stay in the segment)",
			  name, (unsigned long long)off, why, (unsigned long long)(r.size - off), fname,
			  strerror(ce));
	else
		log_error("journal: segment %s offset %llu: %s; the %llu bytes from there on are "
			  "quarantined to quarantine/%s",
			  name, (unsigned long long)off, why, (unsigned long long)(r.size - off), fname);
	j->st.quarantined++;
	c->lost_after = exp - 1;
	snprintf(c->lost_in, sizeof(c->lost_in), "%s", name);
	*expect = 0;
	close(fd);
	return 0;
}

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char tmp[21];
	memcpy(tmp, s, 20);
	tmp[20] = '\0';
	errno = 0;
	unsigned long long v = strtoull(tmp, NULL, 10);
	if (errno || v == 0)
		return false;
	*out = v;
	return true;
}

static int dent_cmp(const void *a, const void *b)
{
	const struct dent *x = a, *y = b;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return (int)x->stub - (int)y->stub; /* the segment before its stand-in */
}

static int list_segments(struct rctx *c, struct dent **out, size_t *nout)
{
	struct journal *j = c->j;
	int fd = dup(j->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return rfail(c, "journal: cannot list %s/journal: %s", j->root, strerror(errno));
	}
	rewinddir(d);
	struct dent *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *nm = de->d_name;
		size_t len = strlen(nm);
		struct dent x = { 0 };
		if (len == 23 && digits(nm, 20) && strcmp(nm + 20, ".wj") == 0 && parse_u64(nm, &x.first)) {
			x.stub = false;
		} else if (len == 50 && digits(nm, 20) && nm[20] == '-' && digits(nm + 21, 20) &&
			   strcmp(nm + 41, ".released") == 0 && parse_u64(nm, &x.first) &&
			   parse_u64(nm + 21, &x.next) && x.next > x.first) {
			x.stub = true;
		} else {
			if (strcmp(nm, ".") && strcmp(nm, "..") && strcmp(nm, "lock") && strcmp(nm, "reserve"))
				log_warn("journal: ignoring %s/journal/%s", j->root, nm);
			continue;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct dent *nv = realloc(v, ncap * sizeof(*nv));
			if (!nv) {
				free(v);
				closedir(d);
				return rfail(c, "journal: out of memory");
			}
			v = nv;
			cap = ncap;
		}
		v[n++] = x;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), dent_cmp);
	*out = v;
	*nout = n;
	return 0;
}

/* Nothing is left on disk to say which numbers were used (a leading
 * stand-in was dropped, and the only segment after it was empty and
 * removed): leave a stand-in for the last one, so that numbers go on after
 * it on every restart, never from 1 again. */
static void keep_numbers(struct rctx *c)
{
	struct journal *j = c->j;
	char name[96];
	jstub_name(name, sizeof(name), c->max_seq, c->max_seq + 1);
	int fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_warn("journal: cannot create %s/journal/%s: %s; record numbers may start again "
			 "from 1 after the next restart",
			 j->root, name, strerror(errno));
		return;
	}
	close(fd);
	jfsync(j->dirfd);
	j->segs[j->nsegs++] = (struct jseg){ .first = c->max_seq, .next = c->max_seq + 1,
					     .flags = JSEG_STUB };
}

int journal_replay(struct journal *j, const struct journal_options *o, journal_replay_fn fn, void *arg,
		   char *err, size_t errlen)
{
	struct rctx c = { .j = j, .o = o, .fn = fn, .arg = arg, .err = err, .errlen = errlen, .qfd = -1 };
	clock_gettime(CLOCK_MONOTONIC, &c.start);
	c.last_report = c.start;
	struct dent *v = NULL;
	size_t n = 0;
	int rc = -1;
	char name[96], prev[96] = "(none)";
	if (list_segments(&c, &v, &n) < 0)
		return -1;

	/* Drop stand-ins that a segment of the same number overrides, and
	 * those with nothing older left: they explain no hole. Keep the last
	 * entry though, a stand-in when no segment is left: its numbers say
	 * where the next record's number goes on. */
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup_stub = v[i].stub && m && v[m - 1].first == v[i].first;
		bool leading = v[i].stub && m == 0 && i + 1 < n;
		if (dup_stub || leading) {
			seen(&c, v[i].next - 1); /* numbers used all the same */
			jstub_name(name, sizeof(name), v[i].first, v[i].next);
			unlinkat(j->dirfd, name, 0);
			continue;
		}
		v[m++] = v[i];
	}
	n = m;

	size_t last = n, before_last = n;
	uint64_t last_size = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].stub)
			continue;
		before_last = last;
		last = i;
		struct stat sb;
		jseg_name(name, sizeof(name), v[i].first);
		last_size = fstatat(j->dirfd, name, &sb, 0) == 0 ? (uint64_t)sb.st_size : 0;
		c.total += last_size;
	}
	if (last_size > JSEG_HEADER)
		before_last = n;

	if (jsegs_reserve(j, n + 1) < 0) {
		rfail(&c, "journal: out of memory");
		goto out;
	}
	uint64_t expect = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].stub) {
			jstub_name(name, sizeof(name), v[i].first, v[i].next);
			note_lost(&c, v[i].first);
			if (expect && v[i].first > expect && gap(&c, expect, v[i].first - 1, prev, name) < 0)
				goto out;
			expect = v[i].next;
			if (c.floor < v[i].next)
				c.floor = v[i].next;
			seen(&c, v[i].next - 1);
			j->segs[j->nsegs++] = (struct jseg){ .first = v[i].first, .next = v[i].next, .flags = JSEG_STUB };
			snprintf(prev, sizeof(prev), "%s", name);
			continue;
		}
		bool keep;
		int tail = i == last ? 2 : i == before_last ? 1 : 0;
		if (replay_segment(&c, &v[i], prev, tail, &expect, &keep) < 0)
			goto out;
		if (keep) {
			j->segs[j->nsegs++] = (struct jseg){ .first = v[i].first };
			j->st.segments++;
			seen(&c, v[i].first); /* never reuse a name that is still there */
		}
		jseg_name(prev, sizeof(prev), v[i].first);
	}
	if (!j->nsegs && c.max_seq)
		keep_numbers(&c);
	j->next_seq = c.max_seq + 1;
	j->st.replayed = c.records;
	j->st.replayed_bytes = c.done_bytes;
	double t = secs_since(&c.start);
	log_info("journal: %s: replayed %llu records (%.1f MB, %llu segments) in %.2f s, next record %llu%s",
		 j->root, (unsigned long long)c.records, (double)c.done_bytes / 1e6,
		 (unsigned long long)j->st.segments, t, (unsigned long long)j->next_seq,
		 j->st.quarantined ? "; damage was quarantined, see above" : "");
	rc = 0;
out:
	if (c.qfd >= 0)
		close(c.qfd);
	free(c.buf);
	free(v);
	return rc;
}
