/* What the journal's unit tests share: payloads that are a pure function
 * of their sequence number (so replay checks every byte), done-callback
 * logs, and file helpers. Header-only, like tap.h and loop.h; each test
 * program calls harness_init() first and harness_done() last. */
#ifndef WHARF_TESTS_JOURNAL_HARNESS_H
#define WHARF_TESTS_JOURNAL_HARNESS_H

#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store/crc32c.h"
#include "store/journal.h"
#include "store/record.h"
#include "loop.h"
#include "tap.h"

/* ---- helpers --------------------------------------------------------------- */

static inline int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static inline void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline char *new_dir(void)
{
	const char *t = getenv("TMPDIR");
	char tmpl[512];
	snprintf(tmpl, sizeof(tmpl), "%s/wharf-journal.XXXXXX", t && *t ? t : "/tmp");
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static inline void seg_path(char *out, size_t n, const char *dir, uint64_t first)
{
	snprintf(out, n, "%s/journal/%020llu.wj", dir, (unsigned long long)first);
}

static inline bool exists(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0;
}

static inline long long file_size(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* Segment first numbers in dir/journal, sorted; returns the count. */
static inline int list_segs(const char *dir, uint64_t *out, int max)
{
	char cmd[800];
	snprintf(cmd, sizeof(cmd), "ls %s/journal 2>/dev/null | grep '\\.wj$' | sort", dir);
	FILE *f = popen(cmd, "r");
	int n = 0;
	char line[128];
	while (f && fgets(line, sizeof(line), f))
		if (n < max)
			out[n++] = strtoull(line, NULL, 10);
	if (f)
		pclose(f);
	return n;
}

static inline int count_files(const char *dir, const char *suffix)
{
	char cmd[800];
	snprintf(cmd, sizeof(cmd), "ls %s 2>/dev/null | grep -c '%s$'", dir, suffix);
	FILE *f = popen(cmd, "r");
	int n = 0;
	if (f) {
		if (fscanf(f, "%d", &n) != 1)
			n = 0;
		pclose(f);
	}
	return n;
}

static inline char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	size_t got = fread(s, 1, (size_t)n, f);
	s[got] = '\0';
	fclose(f);
	return s;
}

/* Log lines go to a file for the checks that look at them. */
static char logpath[600];

static inline void log_to_file(const char *dir)
{
	snprintf(logpath, sizeof(logpath), "%s.log", dir);
	unlink(logpath);
	log_open(logpath);
}

static inline char *log_text(void)
{
	log_open(NULL);
	char *s = slurp(logpath);
	unlink(logpath);
	return s;
}

/* Payloads are a pure function of the sequence number, so replay can check
 * every byte of every record. */
static inline size_t payload_len(uint64_t seq, int mode)
{
	if (mode == 1) { /* round trip: 0, 1, small, and some of 1 MiB */
		if (seq % 2500 == 7)
			return 1u << 20;
		if (seq % 10 == 3)
			return 0;
		if (seq % 10 == 4)
			return 1;
		return (size_t)((seq * 2654435761u) % 3000);
	}
	if (mode == 2)
		return 1024;
	if (mode == 3) /* small, to make many segments */
		return 40 + (size_t)(seq % 90);
	return 8 + (size_t)(seq % 700);
}

static inline void payload(uint64_t seq, int mode, uint8_t *out, size_t len)
{
	uint64_t x = seq * 0x9E3779B97F4A7C15ull;
	for (size_t i = 0; i < len; i++) {
		x ^= x >> 29;
		x *= 0xBF58476D1CE4E5B9ull;
		out[i] = (uint8_t)(x >> 56) ^ (uint8_t)i;
	}
	if (len >= 8)
		memcpy(out, &seq, 8);
}

static inline uint8_t type_of(uint64_t seq)
{
	return (uint8_t)(1 + seq % 250);
}

static uint8_t *scratch;

struct replayed {
	int mode;
	uint64_t n, first, last;
	uint64_t bad;        /* payload or order mismatches */
	uint64_t *seqs;      /* if not NULL, each seq in order */
	size_t cap;
	int sleep_ms;
	uint64_t stop_at;
};

static inline int on_replay(void *arg, uint64_t seq, uint8_t type, const uint8_t *data, size_t len)
{
	struct replayed *r = arg;
	if (r->stop_at && seq == r->stop_at)
		return 1;
	size_t want = payload_len(seq, r->mode);
	payload(seq, r->mode, scratch, want);
	if (len != want || type != type_of(seq) || memcmp(data, scratch, len) != 0)
		r->bad++;
	if (r->n && seq <= r->last)
		r->bad++;
	if (!r->n)
		r->first = seq;
	r->last = seq;
	if (r->seqs) {
		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 1024;
			r->seqs = realloc(r->seqs, r->cap * sizeof(uint64_t));
		}
		r->seqs[r->n] = seq;
	}
	r->n++;
	if (r->sleep_ms)
		usleep((useconds_t)r->sleep_ms * 1000);
	return 0;
}

struct done_log {
	uint64_t calls, ok, failed, order_errors;
	uint64_t next;       /* the index the next callback must carry */
	uint64_t appended;   /* indexes handed out */
	int last_err;
	int in_append;       /* set around journal_append: callbacks must not come then */
	uint64_t nested;
	uint64_t *okseq;     /* seqs that succeeded, if not NULL */
};

struct done_arg {
	struct done_log *log;
	uint64_t idx, seq;
};

static inline void on_done(void *arg, int err)
{
	struct done_arg *a = arg;
	struct done_log *l = a->log;
	if (l->in_append)
		l->nested++;
	if (a->idx != l->next)
		l->order_errors++;
	l->next = a->idx + 1;
	l->calls++;
	if (err) {
		l->failed++;
		l->last_err = err;
	} else {
		if (l->okseq)
			l->okseq[l->ok] = a->seq;
		l->ok++;
	}
}

static inline struct journal_options opts(const char *dir)
{
	struct journal_options o = { .dir = dir, .sync = JOURNAL_SYNC_ALWAYS,
				     .on_corruption = JOURNAL_QUARANTINE };
	return o;
}

static char errbuf[512];

static inline struct journal *open_j(struct event_base *b, const struct journal_options *o, struct replayed *r)
{
	struct journal *j = NULL;
	if (journal_open(b, o, r ? on_replay : NULL, r, &j, errbuf, sizeof(errbuf)) < 0)
		return NULL;
	return j;
}

/* done_arg structs live in blocks that never move, freed at the end. */
#define DBLOCK 65536
static struct done_arg *dblocks[1024];
static int ndblocks;
static size_t dused = DBLOCK;

static inline struct done_arg *darg(struct done_log *l, uint64_t idx, uint64_t seq)
{
	if (dused == DBLOCK) {
		dblocks[ndblocks++] = calloc(DBLOCK, sizeof(struct done_arg));
		dused = 0;
	}
	struct done_arg *a = &dblocks[ndblocks - 1][dused++];
	*a = (struct done_arg){ l, idx, seq };
	return a;
}

/* Appends one record of `mode` with the next number; -1 on failure. */
static inline int append1(struct journal *j, struct done_log *l, int mode, uint64_t *seq_out)
{
	struct journal_stats st;
	journal_stats(j, &st);
	uint64_t seq = st.last_seq + 1;
	size_t len = payload_len(seq, mode);
	payload(seq, mode, scratch, len);
	struct done_arg *a = darg(l, l->appended, seq);
	uint64_t got = 0;
	l->in_append = 1;
	int r = journal_append(j, type_of(seq), scratch, len, on_done, a, &got);
	l->in_append = 0;
	if (seq_out)
		*seq_out = got;
	if (r < 0 || got != seq)
		return -1;
	l->appended++;
	return 0;
}

static inline int appendk(struct journal *j, struct done_log *l, int mode, uint64_t k)
{
	int bad = 0;
	for (uint64_t i = 0; i < k; i++)
		if (append1(j, l, mode, NULL) < 0)
			bad++;
	return bad;
}


/* Writes segment `first` holding records from..to of mode 3, with record
 * `bad` (0: none) given a wrong CRC and a skip record for skip_from..skip_to
 * in place of those numbers (0: none). */
static inline void write_seg(const char *dir, uint64_t first, uint64_t from, uint64_t to, uint64_t bad, uint64_t skip_from,
		      uint64_t skip_to)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/journal", dir);
	mkdir(p, 0755);
	seg_path(p, sizeof(p), dir, first);
	FILE *f = fopen(p, "wb");
	uint8_t h[JSEG_HEADER];
	jseg_header(h, first);
	fwrite(h, 1, sizeof(h), f);
	static uint8_t rec[4096];
	for (uint64_t s = from; s <= to; s++) {
		if (skip_from && s == skip_from) {
			jrec_skip(rec, skip_from, skip_to);
			fwrite(rec, 1, JREC_SKIP_SIZE, f);
			s = skip_to;
			continue;
		}
		size_t len = payload_len(s, 3);
		jrec_head(rec, s, type_of(s), len);
		payload(s, 3, rec + JREC_HEADER, len);
		jrec_seal(rec);
		if (s == bad)
			rec[5] ^= 1;
		fwrite(rec, 1, JREC_HEADER + len, f);
	}
	fclose(f);
}

static inline void harness_init(void)
{
	signal(SIGPIPE, SIG_IGN);
	scratch = malloc(2u << 20);
	if (!getenv("JOURNAL_TEST_VERBOSE"))
		log_set_level(LOG_ERROR);
}

static inline int harness_done(void)
{
	free(scratch);
	for (int i = 0; i < ndblocks; i++)
		free(dblocks[i]);
	return tap_done();
}

#endif
