/* The active side's shipping of segment files (ha/sender.h). The sender
 * keeps a model of the standby's directory (`known`: what it has sent or
 * what the standby had at WELCOME) and each pass brings the standby in line
 * with a snapshot of the journal's segments: DROP for files the journal
 * deleted, STUB for those it released, then the bytes of the segment being
 * shipped, oldest segment first. Only durable bytes are read: whole files
 * for closed segments, the durable prefix of the open one. */
#include "config.h"
#include "ha/sender.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store/journal.h"
#include "store/journal_internal.h"
#include "store/record.h"

struct known {
	uint64_t first;
	bool stub;
};

struct sender {
	struct event_base *base;
	struct journal *j;
	int dirfd;
	struct evbuffer *out;
	struct event *ev;       /* the next pass, on a later loop turn */
	struct known *known;    /* what the standby has, oldest first */
	size_t nknown, kcap;
	uint64_t next_from;     /* the lowest first number not handled yet */
	uint64_t ship_first;    /* the segment being shipped, 0: none */
	uint64_t ship_off;      /* its bytes shipped */
	int fd;                 /* it, open for reading */
	uint8_t *buf;
	size_t bufcap;
	int err;
};

static void pass_cb(evutil_socket_t fd, short what, void *arg);

struct sender *sender_new(struct event_base *base, struct journal *j, const char *journal_dir,
			  struct evbuffer *out)
{
	struct sender *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base = base;
	s->j = j;
	s->out = out;
	s->fd = -1;
	s->dirfd = open(journal_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	s->ev = event_new(base, -1, 0, pass_cb, s);
	if (s->dirfd < 0 || !s->ev) {
		sender_free(s);
		return NULL;
	}
	return s;
}

void sender_free(struct sender *s)
{
	if (!s)
		return;
	if (s->ev)
		event_free(s->ev);
	if (s->fd >= 0)
		close(s->fd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->known);
	free(s->buf);
	free(s);
}

int sender_error(const struct sender *s)
{
	return s->err ? -1 : 0;
}

static int known_add(struct sender *s, uint64_t first, bool stub)
{
	if (s->nknown == s->kcap) {
		size_t cap = s->kcap ? s->kcap * 2 : 16;
		struct known *k = realloc(s->known, cap * sizeof(*k));
		if (!k)
			return -1;
		s->known = k;
		s->kcap = cap;
	}
	s->known[s->nknown++] = (struct known){ first, stub };
	return 0;
}

static void put_u64s(struct sender *s, uint8_t type, const uint64_t *v, size_t n)
{
	uint8_t f[REPL_HEAD + 16];
	size_t len = repl_u64s_encode(f, sizeof(f), type, v, n);
	evbuffer_add(s->out, f, len);
}

int sender_start(struct sender *s, uint64_t standby_last, struct repl_welcome *w)
{
	struct journal_seginfo *v;
	size_t n;
	uint64_t durable;
	if (journal_segments(s->j, &v, &n, &durable) < 0)
		return -1;
	w->last_seq = durable;
	if (standby_last > durable) {
		/* It holds records this node never had: start it over. */
		w->mode = REPL_MODE_FULL;
		w->from = 0;
	} else {
		/* From the first segment holding standby_last + 1, or after it. */
		w->mode = REPL_MODE_CATCHUP;
		w->from = durable + 1;
		for (size_t i = 0; i < n; i++) {
			uint64_t end = i + 1 < n ? v[i + 1].first : UINT64_MAX;
			if (!v[i].stub && standby_last + 1 < end) {
				w->from = v[i].first;
				break;
			}
		}
		/* Nothing of its copy is kept: a full copy, said as such. */
		if (!n || w->from <= v[0].first) {
			w->mode = REPL_MODE_FULL;
			w->from = 0;
		}
		/* Below `from` it has what the journal has; its stand-ins it
		 * may not have as stand-ins: the first pass sends them. */
		for (size_t i = 0; w->from && i < n && v[i].first < w->from; i++)
			if (known_add(s, v[i].first, false) < 0) {
				free(v);
				return -1;
			}
	}
	w->oldest = n ? v[0].first : w->from;
	s->next_from = w->from;
	free(v);
	return 0;
}

static const struct journal_seginfo *find(const struct journal_seginfo *v, size_t n, uint64_t first)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].first == first)
			return &v[i];
	return NULL;
}

static void ship_abort(struct sender *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->next_from = s->ship_first + 1;
	s->ship_first = 0;
}

/* DROP and STUB for what the journal deleted or released. */
static void reconcile(struct sender *s, const struct journal_seginfo *v, size_t n)
{
	size_t keep = 0;
	for (size_t i = 0; i < s->nknown; i++) {
		struct known k = s->known[i];
		const struct journal_seginfo *e = find(v, n, k.first);
		if (!e) {
			put_u64s(s, REPL_DROP, &k.first, 1);
			if (s->ship_first == k.first)
				ship_abort(s);
			continue;
		}
		if (e->stub && !k.stub) {
			uint64_t f[2] = { e->first, e->next };
			put_u64s(s, REPL_STUB, f, 2);
			k.stub = true;
			if (s->ship_first == k.first)
				ship_abort(s);
		}
		s->known[keep++] = k;
	}
	s->nknown = keep;
}

static int fill(struct sender *s, size_t want)
{
	if (s->bufcap < want) {
		uint8_t *b = realloc(s->buf, want);
		if (!b)
			return -1;
		s->buf = b;
		s->bufcap = want;
	}
	size_t got = 0;
	while (got < want) {
		ssize_t r = pread(s->fd, s->buf + got, want - got, (off_t)(s->ship_off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return (int)(got == want);
}

/* Ships the next chunk of whole records of the segment being shipped, at
 * most REPL_CHUNK bytes unless one record is bigger. */
static void ship_chunk(struct sender *s, uint64_t limit)
{
	size_t want = limit - s->ship_off < REPL_CHUNK ? (size_t)(limit - s->ship_off) : REPL_CHUNK;
	size_t start = s->ship_off == 0 ? JSEG_HEADER : 0;
	for (;;) {
		int r = fill(s, want);
		if (r < 0) {
			s->err = ENOMEM;
			log_error("replication: out of memory reading segment %020llu",
				  (unsigned long long)s->ship_first);
			return;
		}
		if (r == 0)
			return; /* cut short: being released; the next pass sees it */
		size_t pos = start;
		uint64_t last = s->ship_first - 1;
		struct jrec rec;
		enum jrec_status st = JREC_OK;
		while (pos < want && (st = jrec_parse(s->buf + pos, want - pos, &rec)) == JREC_OK) {
			last = rec.type == JREC_TYPE_SKIP && rec.len == 8 ? jget64(rec.data) : rec.seq;
			pos += rec.size;
		}
		if (st == JREC_BAD_LENGTH || st == JREC_BAD_CRC) {
			s->err = EIO;
			log_error("replication: segment %020llu is damaged at offset %llu: it cannot "
				  "be shipped", (unsigned long long)s->ship_first,
				  (unsigned long long)(s->ship_off + pos));
			return;
		}
		if (pos == start && want - start >= JREC_PREFIX && start < want) {
			/* one record bigger than a chunk: read it whole */
			size_t rsize = JREC_PREFIX + (size_t)jget32(s->buf + start);
			if (rsize > REPL_FRAME_MAX - REPL_DATA_HEAD - JSEG_HEADER ||
			    s->ship_off + start + rsize > limit) {
				s->err = EMSGSIZE;
				log_error("replication: record of %zu bytes in segment %020llu is too big "
					  "for the link", rsize, (unsigned long long)s->ship_first);
				return;
			}
			if (start + rsize > want) {
				want = start + rsize;
				continue;
			}
		}
		if (pos == 0)
			return;
		uint8_t head[REPL_DATA_HEAD];
		repl_data_head(head, s->ship_first, s->ship_off, last, pos);
		evbuffer_add(s->out, head, sizeof(head));
		evbuffer_add(s->out, s->buf, pos);
		s->ship_off += pos;
		return;
	}
}

/* The bytes of entry e that may be shipped. */
static uint64_t limit_of(struct sender *s, const struct journal_seginfo *e)
{
	if (e->open)
		return e->size;
	struct stat sb;
	return fstat(s->fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static void pass(struct sender *s)
{
	if (s->err)
		return;
	struct journal_seginfo *v;
	size_t n;
	uint64_t durable;
	if (journal_segments(s->j, &v, &n, &durable) < 0)
		return;
	reconcile(s, v, n);
	bool budget = true, more = false;
	while (!s->err && evbuffer_get_length(s->out) < REPL_HIGH_WATER) {
		const struct journal_seginfo *e = NULL;
		if (s->ship_first) {
			e = find(v, n, s->ship_first);
		} else {
			for (size_t i = 0; i < n && !e; i++)
				if (v[i].first >= s->next_from)
					e = &v[i];
		}
		if (!e)
			break;
		if (!s->ship_first) {
			if (e->stub) {
				uint64_t f[2] = { e->first, e->next };
				put_u64s(s, REPL_STUB, f, 2);
				known_add(s, e->first, true);
				s->next_from = e->first + 1;
				continue;
			}
			char name[64];
			jseg_name(name, sizeof(name), e->first);
			s->fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
			if (s->fd < 0)
				break; /* deleted under us: the next pass sees it */
			put_u64s(s, REPL_SEG_BEGIN, &e->first, 1);
			if (known_add(s, e->first, false) < 0) {
				s->err = ENOMEM;
				break;
			}
			s->ship_first = e->first;
			s->ship_off = 0;
		}
		uint64_t limit = limit_of(s, e);
		if (s->ship_off < limit) {
			if (!budget) {
				more = true;
				break;
			}
			budget = false;
			uint64_t before = s->ship_off;
			ship_chunk(s, limit);
			if (s->ship_off == before)
				break;
			continue;
		}
		if (e->open)
			break; /* wait until more is durable */
		close(s->fd);
		s->fd = -1;
		s->next_from = s->ship_first + 1;
		s->ship_first = 0;
	}
	free(v);
	if (more)
		event_active(s->ev, EV_TIMEOUT, 0);
}

static void pass_cb(evutil_socket_t fd, short what, void *arg)
{
	pass(arg);
}

void sender_kick(struct sender *s)
{
	pass(s);
}

uint64_t sender_unsent(struct sender *s)
{
	struct journal_seginfo *v;
	size_t n;
	uint64_t durable, total = 0;
	if (journal_segments(s->j, &v, &n, &durable) < 0)
		return 0;
	uint64_t from = s->ship_first ? s->ship_first : s->next_from;
	for (size_t i = 0; i < n; i++) {
		if (v[i].stub || v[i].first < from)
			continue;
		uint64_t size = v[i].size;
		struct stat sb;
		char name[64];
		jseg_name(name, sizeof(name), v[i].first);
		if (!v[i].open && fstatat(s->dirfd, name, &sb, 0) == 0)
			size = (uint64_t)sb.st_size;
		if (v[i].first == s->ship_first)
			size = size > s->ship_off ? size - s->ship_off : 0;
		total += size;
	}
	free(v);
	return total;
}
