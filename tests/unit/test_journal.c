/* The journal: CRC32C, record framing, append/replay round trips, done
 * callbacks, group commit, torn tails, corruption (quarantine and refuse),
 * missing segments, rollover and release, full disks (a small tmpfs where
 * we may mount one, and injected faults when built with
 * WHARF_JOURNAL_FAULTS), and kill -9 at random points of a stream. */
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

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *new_dir(void)
{
	const char *t = getenv("TMPDIR");
	char tmpl[512];
	snprintf(tmpl, sizeof(tmpl), "%s/wharf-journal.XXXXXX", t && *t ? t : "/tmp");
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static void seg_path(char *out, size_t n, const char *dir, uint64_t first)
{
	snprintf(out, n, "%s/journal/%020llu.wj", dir, (unsigned long long)first);
}

static bool exists(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0;
}

static long long file_size(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* Segment first numbers in dir/journal, sorted; returns the count. */
static int list_segs(const char *dir, uint64_t *out, int max)
{
	char cmd[600];
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

static int count_files(const char *dir, const char *suffix)
{
	char cmd[600];
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

static char *slurp(const char *path)
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

static void log_to_file(const char *dir)
{
	snprintf(logpath, sizeof(logpath), "%s.log", dir);
	unlink(logpath);
	log_open(logpath);
}

static char *log_text(void)
{
	log_open(NULL);
	char *s = slurp(logpath);
	unlink(logpath);
	return s;
}

/* Payloads are a pure function of the sequence number, so replay can check
 * every byte of every record. */
static size_t payload_len(uint64_t seq, int mode)
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

static void payload(uint64_t seq, int mode, uint8_t *out, size_t len)
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

static uint8_t type_of(uint64_t seq)
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

static int on_replay(void *arg, uint64_t seq, uint8_t type, const uint8_t *data, size_t len)
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

static void on_done(void *arg, int err)
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

static struct journal_options opts(const char *dir)
{
	struct journal_options o = { .dir = dir, .sync = JOURNAL_SYNC_ALWAYS,
				     .on_corruption = JOURNAL_QUARANTINE };
	return o;
}

static char errbuf[512];

static struct journal *open_j(struct event_base *b, const struct journal_options *o, struct replayed *r)
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

static struct done_arg *darg(struct done_log *l, uint64_t idx, uint64_t seq)
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
static int append1(struct journal *j, struct done_log *l, int mode, uint64_t *seq_out)
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

static int appendk(struct journal *j, struct done_log *l, int mode, uint64_t k)
{
	int bad = 0;
	for (uint64_t i = 0; i < k; i++)
		if (append1(j, l, mode, NULL) < 0)
			bad++;
	return bad;
}

/* ---- crc32c and records ------------------------------------------------------- */

static void test_crc32c(void)
{
	uint8_t b[64];
	ok(crc32c(0, "123456789", 9) == 0xE3069283u, "crc32c(\"123456789\") = 0xE3069283");
	ok(crc32c_sw(0, "123456789", 9) == 0xE3069283u, "table crc32c(\"123456789\")");
	ok(crc32c(0, "", 0) == 0, "crc32c of nothing is 0");
	memset(b, 0, 32);
	ok(crc32c(0, b, 32) == 0x8A9136AAu, "RFC 3720: 32 zero bytes");
	memset(b, 0xff, 32);
	ok(crc32c(0, b, 32) == 0x62A8AB43u, "RFC 3720: 32 0xff bytes");
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	ok(crc32c(0, b, 32) == 0x46DD794Eu, "RFC 3720: 0..31");
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	ok(crc32c(0, b, 32) == 0x113FDB5Cu, "RFC 3720: 31..0");
	const char *fox = "The quick brown fox jumps over the lazy dog";
	ok(crc32c(0, fox, strlen(fox)) == 0x22620404u, "the quick brown fox (python3-crc32c)");
	uint8_t *d = malloc(1000 + 16);
	for (int i = 0; i < 1000; i++)
		d[i] = (uint8_t)(i * 7 + 3);
	ok(crc32c(0, d, 1000) == 0xDD2EDFF7u, "1000 bytes (python3-crc32c)");
	int mism = 0;
	for (int start = 0; start < 9; start++)
		for (int len = 0; len <= 200; len += 1 + len / 7) {
			if (crc32c(0, d + start, (size_t)len) != crc32c_sw(0, d + start, (size_t)len))
				mism++;
			for (int cut = 0; cut <= len; cut += 13)
				if (crc32c(crc32c(0, d + start, (size_t)cut), d + start + cut, (size_t)(len - cut)) !=
				    crc32c(0, d + start, (size_t)len))
					mism++;
		}
	ok(mism == 0, "hardware (%s) and table agree at every alignment; chaining works",
	   crc32c_hw_available() ? "sse4.2" : "none here");
	free(d);
}

static void test_record(void)
{
	uint8_t rec[64];
	struct jrec r;
	jrec_head(rec, 42, 7, 5);
	memcpy(rec + JREC_HEADER, "hello", 5);
	jrec_seal(rec);
	ok(jrec_parse(rec, JREC_HEADER + 5, &r) == JREC_OK && r.seq == 42 && r.type == 7 && r.len == 5 &&
		   memcmp(r.data, "hello", 5) == 0 && r.size == JREC_HEADER + 5,
	   "a record parses back");
	ok(jget32(rec) == 9 + 5, "len counts seq, type and payload");
	ok(jget32(rec + 4) == crc32c(0, rec + 8, 14), "crc covers seq, type, payload");
	ok(jrec_parse(rec, JREC_HEADER + 4, &r) == JREC_SHORT, "one byte short is SHORT");
	ok(jrec_parse(rec, 5, &r) == JREC_SHORT, "a partial prefix is SHORT");
	rec[JREC_HEADER + 2] ^= 0x10;
	ok(jrec_parse(rec, JREC_HEADER + 5, &r) == JREC_BAD_CRC, "a flipped bit is BAD_CRC");
	jput32(rec, 3);
	ok(jrec_parse(rec, sizeof(rec), &r) == JREC_BAD_LENGTH, "length under 9 is BAD_LENGTH");
	jput32(rec, 9 + JREC_MAX_PAYLOAD + 1);
	ok(jrec_parse(rec, sizeof(rec), &r) == JREC_BAD_LENGTH, "length over the maximum is BAD_LENGTH");
	jrec_skip(rec, 10, 20);
	ok(jrec_parse(rec, JREC_SKIP_SIZE, &r) == JREC_OK && r.type == JREC_TYPE_SKIP && r.len == 8 &&
		   jget64(r.data) == 20,
	   "skip record");
	uint8_t h[16];
	uint64_t first = 0;
	jseg_header(h, 77);
	ok(memcmp(h, "WHARFJ1\0", 8) == 0 && jseg_header_parse(h, &first) && first == 77, "segment header");
}

/* ---- round trip ----------------------------------------------------------------- */

static void test_round_trip(void)
{
	char *dir = new_dir();
	struct event_base *b = new_base();
	struct journal_options o = opts(dir);
	struct replayed r = { .mode = 1 };
	struct journal *j = open_j(b, &o, &r);
	ok(j && r.n == 0, "open a new journal in %s", dir);
	struct done_log l = { 0 };
	int bad = 0;
	for (uint64_t i = 0; i < 10000; i++) {
		uint64_t seq;
		if (append1(j, &l, 1, &seq) < 0 || seq != i + 1)
			bad++;
	}
	ok(bad == 0, "10000 appends get numbers 1..10000");
	ok(l.calls == 0, "no done callback before the loop runs");
	run_until(b, &l.calls, 10000, 60000);
	ok(l.calls == 10000 && l.ok == 10000, "10000 done callbacks, all err 0 (%llu, %llu)",
	   (unsigned long long)l.calls, (unsigned long long)l.ok);
	ok(l.order_errors == 0, "done callbacks in append order");
	ok(l.nested == 0, "no done callback inside journal_append");
	struct journal_stats st;
	journal_stats(j, &st);
	ok(st.records == 10000 && st.last_seq == 10000 && st.pending == 0 && st.write_errors == 0,
	   "stats: 10000 records written, last_seq 10000, nothing pending");
	errno = 0;
	ok(journal_append(j, 0, "x", 1, NULL, NULL, NULL) < 0 && errno == EINVAL, "type 0 is refused");
	errno = 0;
	ok(journal_append(j, 1, NULL, (size_t)JOURNAL_MAX_RECORD + 1, NULL, NULL, NULL) < 0 && errno == EMSGSIZE,
	   "a record over 256 MiB is refused");
	journal_close(j);
	ok(l.calls == 10000, "close calls no callback twice");

	memset(&r, 0, sizeof(r));
	r.mode = 1;
	j = open_j(b, &o, &r);
	ok(j && r.n == 10000 && r.first == 1 && r.last == 10000 && r.bad == 0,
	   "reopen replays the 10000 records, in order, bytes intact (n=%llu bad=%llu)",
	   (unsigned long long)r.n, (unsigned long long)r.bad);
	journal_stats(j, &st);
	ok(st.replayed == 10000 && st.torn_tails == 0 && st.quarantined == 0, "stats after replay");
	struct done_log l2 = { 0 };
	uint64_t seq = 0;
	append1(j, &l2, 1, &seq);
	ok(seq == 10001, "the sequence goes on after reopen (%llu)", (unsigned long long)seq);
	for (int i = 1; i < 10; i++)
		append1(j, &l2, 1, NULL);
	/* Closing with records pending: close writes them and calls back. */
	journal_close(j);
	ok(l2.calls == 10 && l2.ok == 10 && l2.order_errors == 0, "close writes what is pending and calls back");
	memset(&r, 0, sizeof(r));
	r.mode = 1;
	j = open_j(b, &o, &r);
	ok(j && r.n == 10010 && r.last == 10010 && r.bad == 0, "10010 after a second reopen");

	struct journal *j2 = NULL;
	ok(journal_open(b, &o, NULL, NULL, &j2, errbuf, sizeof(errbuf)) < 0 && strstr(errbuf, "in use"),
	   "a second open of the same directory fails: %s", errbuf);
	journal_close(j);
	free_base(b);
	rm_rf(dir);
	free(dir);
}

/* ---- group commit ------------------------------------------------------------- */

struct pump {
	struct journal *j;
	struct done_log l;
	uint64_t target, appended;
	int mode;
	uint64_t window;
};

static void pump_done(void *arg, int err);

static void pump_fill(struct pump *p)
{
	while (p->appended < p->target && p->appended - p->l.calls < p->window) {
		struct journal_stats st;
		journal_stats(p->j, &st);
		uint64_t seq = st.last_seq + 1;
		size_t len = payload_len(seq, p->mode);
		payload(seq, p->mode, scratch, len);
		if (journal_append(p->j, type_of(seq), scratch, len, pump_done, p, NULL) < 0)
			break;
		p->appended++;
	}
}

static void pump_done(void *arg, int err)
{
	struct pump *p = arg;
	p->l.calls++;
	if (err)
		p->l.failed++;
	else
		p->l.ok++;
	pump_fill(p);
}

static void test_group_commit(enum journal_sync mode, unsigned delay_us, const char *what)
{
	char *dir = new_dir();
	struct event_base *b = new_base();
	struct journal_options o = opts(dir);
	o.sync = mode;
	o.batch_delay_us = delay_us;
	struct journal *j = open_j(b, &o, NULL);
	struct pump p = { .j = j, .target = 10000, .mode = 2, .window = 1000 };
	int64_t t0 = now_ms();
	pump_fill(&p);
	run_until(b, &p.l.calls, p.target, 60000);
	int64_t ms = now_ms() - t0;
	struct journal_stats st;
	journal_stats(j, &st);
	ok(p.l.ok == 10000, "%s: 10000 records of 1 KiB confirmed", what);
	printf("# %s: %llu records in %lld ms, %llu batches, %llu fsyncs\n", what, (unsigned long long)st.records,
	       (long long)ms, (unsigned long long)st.batches, (unsigned long long)st.fsyncs);
	if (mode == JOURNAL_SYNC_ALWAYS)
		ok(st.fsyncs * 10 < st.records && st.fsyncs >= st.batches,
		   "%s: group commit: %llu fsyncs for %llu records, one or more per batch", what,
		   (unsigned long long)st.fsyncs, (unsigned long long)st.records);
	else if (mode == JOURNAL_SYNC_BATCH)
		ok(st.batches <= (uint64_t)(ms * 1000 / delay_us) + 2,
		   "%s: at most one batch per %u us (%llu batches in %lld ms)", what, delay_us,
		   (unsigned long long)st.batches, (long long)ms);
	else
		ok(st.fsyncs <= 2 * st.segments, "%s: no fsync but for segment creation (%llu)", what,
		   (unsigned long long)st.fsyncs);
	journal_close(j);
	free_base(b);
	rm_rf(dir);
	free(dir);
}

/* ---- torn tail ------------------------------------------------------------------ */

static int copy_file(const char *from, const char *to, long long len)
{
	FILE *a = fopen(from, "rb"), *z = fopen(to, "wb");
	if (!a || !z) {
		if (a)
			fclose(a);
		if (z)
			fclose(z);
		return -1;
	}
	char buf[65536];
	long long done = 0;
	while (done < len) {
		size_t want = (size_t)(len - done < (long long)sizeof(buf) ? len - done : (long long)sizeof(buf));
		size_t n = fread(buf, 1, want, a);
		if (!n)
			break;
		fwrite(buf, 1, n, z);
		done += (long long)n;
	}
	fclose(a);
	fclose(z);
	return 0;
}

static void test_torn_tail(void)
{
	char *dir = new_dir();
	struct event_base *b = new_base();
	struct journal_options o = opts(dir);
	struct journal *j = open_j(b, &o, NULL);
	struct done_log l = { 0 };
	/* 50 records in one segment; the last is 8 + 50 % 700 = 58 bytes. */
	appendk(j, &l, 0, 50);
	run_until(b, &l.calls, 50, 10000);
	journal_close(j);
	char seg[600], pristine[700];
	seg_path(seg, sizeof(seg), dir, 1);
	snprintf(pristine, sizeof(pristine), "%s.pristine", dir);
	long long full = file_size(seg);
	copy_file(seg, pristine, full);
	long long last_start = full - (long long)(JREC_HEADER + payload_len(50, 0));

	int wrong = 0, unreported = 0, wrong_size = 0, kept = 0;
	for (long long cut = last_start + 1; cut < full; cut++) {
		copy_file(pristine, seg, cut);
		log_to_file(dir);
		struct replayed r = { .mode = 0 };
		j = open_j(b, &o, &r);
		struct journal_stats st = { 0 };
		if (j)
			journal_stats(j, &st);
		journal_close(j);
		char *log = log_text();
		char want[200];
		snprintf(want, sizeof(want), "segment 00000000000000000001.wj: torn tail cut at offset %lld", last_start);
		if (!j || r.n != 49 || r.bad || st.torn_tails != 1 || st.quarantined || st.last_seq != 49)
			wrong++;
		if (!strstr(log, want))
			unreported++;
		if (file_size(seg) != last_start)
			wrong_size++;
		char torn[700];
		snprintf(torn, sizeof(torn), "%s/quarantine/00000000000000000001-%lld.torn", dir, last_start);
		if (file_size(torn) != cut - last_start)
			kept++;
		free(log);
	}
	ok(wrong == 0, "cut at each of the %lld offsets inside the last record: 49 records replay, one torn tail",
	   full - last_start - 1);
	ok(unreported == 0, "each cut is logged with segment and offset");
	ok(wrong_size == 0, "the segment is truncated to the last good record");
	ok(kept == 0, "the cut bytes are kept in quarantine/...-OFFSET.torn");

	/* A cut exactly at a record boundary is no damage at all. */
	copy_file(pristine, seg, last_start);
	struct replayed r = { .mode = 0 };
	j = open_j(b, &o, &r);
	struct journal_stats st;
	journal_stats(j, &st);
	ok(r.n == 49 && st.torn_tails == 0, "a cut at a record boundary is a clean end");
	struct done_log l2 = { 0 };
	uint64_t seq = 0;
	append1(j, &l2, 0, &seq);
	run_until(b, &l2.calls, 1, 5000);
	ok(seq == 50 && l2.ok == 1, "the next record takes number 50 again (it was never confirmed)");
	journal_close(j);
	char seg50[600];
	seg_path(seg50, sizeof(seg50), dir, 50);
	ok(exists(seg50), "in a new segment: 50");
	unlink(seg50);

	/* Garbage (zeros, then random bytes) after the last good record. */
	const char *kinds[] = { "zeros", "random bytes", "a partial header" };
	for (int k = 0; k < 3; k++) {
		copy_file(pristine, seg, full);
		FILE *f = fopen(seg, "ab");
		for (int i = 0; i < (k == 2 ? 5 : 3000); i++)
			fputc(k == 0 ? 0 : (k == 2 ? 0x40 : (int)(random() & 0xff)), f);
		fclose(f);
		memset(&r, 0, sizeof(r));
		j = open_j(b, &o, &r);
		journal_stats(j, &st);
		ok(j && r.n == 50 && r.bad == 0 && st.torn_tails == 1 && st.quarantined == 0 && file_size(seg) == full,
		   "%s after the last record: cut, all 50 records replay", kinds[k]);
		journal_close(j);
	}

	/* A segment shorter than its header, as a crash while creating it
	 * leaves: removed. */
	char seg2[600];
	seg_path(seg2, sizeof(seg2), dir, 51);
	FILE *f = fopen(seg2, "wb");
	fwrite("WHARF", 1, 5, f);
	fclose(f);
	memset(&r, 0, sizeof(r));
	j = open_j(b, &o, &r);
	journal_stats(j, &st);
	ok(j && r.n == 50 && !exists(seg2) && st.torn_tails == 1, "a half-created last segment is removed");
	journal_close(j);

	free_base(b);
	unlink(pristine);
	rm_rf(dir);
	free(dir);
}

/* ---- corruption ------------------------------------------------------------------ */

/* Makes a journal of `n` records of mode 3 in 2 KiB segments. */
static void make_segments(struct event_base *b, const char *dir, uint64_t n)
{
	struct journal_options o = opts(dir);
	o.segment_size = 2048;
	struct journal *j = open_j(b, &o, NULL);
	struct done_log l = { 0 };
	appendk(j, &l, 3, n);
	run_until(b, &l.calls, n, 20000);
	journal_close(j);
}

/* Offset of the k-th record (0-based) in the segment starting at `first`. */
static long long rec_offset(uint64_t first, int k)
{
	long long off = JSEG_HEADER;
	for (int i = 0; i < k; i++)
		off += (long long)(JREC_HEADER + payload_len(first + (uint64_t)i, 3));
	return off;
}

static void flip(const char *path, long long off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;
	if (pread(fd, &c, 1, off) == 1) {
		c ^= 0x20;
		if (pwrite(fd, &c, 1, off) != 1)
			perror("pwrite");
	}
	close(fd);
}

static bool has_seq(const struct replayed *r, uint64_t s)
{
	for (uint64_t i = 0; i < r->n; i++)
		if (r->seqs[i] == s)
			return true;
	return false;
}

static void test_corruption(void)
{
	char *dir = new_dir();
	struct event_base *b = new_base();
	make_segments(b, dir, 200);
	uint64_t segs[64];
	int nseg = list_segs(dir, segs, 64);
	ok(nseg >= 6, "200 small records make %d segments of 2 KiB", nseg);
	/* Flip a payload byte of the 3rd record of the 3rd segment. */
	uint64_t s3 = segs[2];
	char p3[600];
	seg_path(p3, sizeof(p3), dir, s3);
	long long off = rec_offset(s3, 2);
	flip(p3, off + JREC_HEADER + 5);

	struct journal_options o = opts(dir);
	o.segment_size = 2048;
	o.on_corruption = JOURNAL_REFUSE;
	struct replayed r = { .mode = 3 };
	struct journal *j = open_j(b, &o, &r);
	char want[200];
	snprintf(want, sizeof(want), "segment %020llu.wj offset %lld", (unsigned long long)s3, off);
	ok(!j && strstr(errbuf, want) && strstr(errbuf, "bad CRC"), "refuse: open fails naming segment and offset: %s",
	   errbuf);

	o.on_corruption = JOURNAL_QUARANTINE;
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	r.seqs = malloc(8);
	r.cap = 0;
	log_to_file(dir);
	j = open_j(b, &o, &r);
	char *log = log_text();
	struct journal_stats st = { 0 };
	if (j)
		journal_stats(j, &st);
	int missing = 0, extra = 0;
	for (uint64_t s = 1; s <= 200; s++) {
		bool lost = s == s3 + 2;
		if (!lost && !has_seq(&r, s))
			missing++;
		if (lost && has_seq(&r, s))
			extra++;
	}
	ok(j && r.bad == 0 && missing == 0 && extra == 0,
	   "quarantine: only the bad record is lost, the rest of its segment and later segments replay "
	   "(%llu replayed)",
	   (unsigned long long)r.n);
	ok(st.quarantined == 1 && st.torn_tails == 0, "one quarantined region counted");
	char q[700];
	snprintf(q, sizeof(q), "%s/quarantine/%020llu-%lld.bad", dir, (unsigned long long)s3, off);
	ok(file_size(q) == rec_offset(s3, 3) - off, "the bad record's bytes are in %s", q + strlen(dir) + 1);
	ok(strstr(log, want) && strstr(log, "quarantined"), "the log names segment and offset");
	free(log);
	/* New records go on after the highest number, in a new segment. */
	struct done_log l = { 0 };
	uint64_t seq = 0;
	append1(j, &l, 3, &seq);
	run_until(b, &l.calls, 1, 5000);
	ok(seq == 201 && l.ok == 1, "the sequence goes on at 201");
	journal_close(j);

	/* Found again at the next open (the segment is kept as it is until the
	 * store releases it); the copy is not made twice. */
	free(r.seqs);
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	j = open_j(b, &o, &r);
	journal_stats(j, &st);
	snprintf(q, sizeof(q), "%s/quarantine", dir);
	ok(j && st.quarantined == 1 && r.n == 200 && count_files(q, ".bad") == 1,
	   "reopen: the same damage is found again, one .bad file");
	/* Once the store releases the damaged segment, it is gone. */
	journal_release(j, s3);
	for (int i = 0; i < 200 && exists(p3); i++)
		usleep(10000);
	journal_close(j);
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	j = open_j(b, &o, &r);
	journal_stats(j, &st);
	ok(j && st.quarantined == 0, "after the damaged segment is released, opening finds no damage");
	journal_close(j);
	rm_rf(dir);
	free(dir);

	/* A flipped byte in the last segment with good records after it is
	 * damage, not a torn tail: quarantined, and numbers are not reused. */
	dir = new_dir();
	make_segments(b, dir, 200);
	make_segments(b, dir, 10); /* the last segment: 201..210 */
	nseg = list_segs(dir, segs, 64);
	uint64_t sl = segs[nseg - 1];
	char pl[600];
	seg_path(pl, sizeof(pl), dir, sl);
	off = rec_offset(sl, 1);
	flip(pl, off + 12); /* inside the seq field */
	o.dir = dir;
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	j = open_j(b, &o, &r);
	journal_stats(j, &st);
	ok(j && sl == 201 && st.quarantined == 1 && st.torn_tails == 0 && r.n == 209 && r.last == 210,
	   "damage mid last segment: quarantined, not cut (%llu replayed)", (unsigned long long)r.n);
	ok(file_size(pl) > off, "the damaged last segment is not truncated");
	memset(&l, 0, sizeof(l));
	append1(j, &l, 3, &seq);
	run_until(b, &l.calls, 1, 5000);
	ok(seq == 211, "new records start after the highest number found past the damage (%llu)",
	   (unsigned long long)seq);
	journal_close(j);
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	j = open_j(b, &o, &r);
	journal_stats(j, &st);
	ok(j && st.quarantined == 1 && r.last == 211 && r.n == 210 && r.bad == 0, "reopen: the record after it replays");
	journal_close(j);
	rm_rf(dir);
	free(dir);

	/* A bad length in the middle segment. */
	dir = new_dir();
	make_segments(b, dir, 200);
	nseg = list_segs(dir, segs, 64);
	seg_path(p3, sizeof(p3), dir, segs[1]);
	off = rec_offset(segs[1], 1);
	int fd = open(p3, O_RDWR);
	uint8_t big[4];
	jput32(big, 0x7fffffff);
	if (pwrite(fd, big, 4, off) != 4)
		perror("pwrite");
	close(fd);
	o.dir = dir;
	o.on_corruption = JOURNAL_REFUSE;
	j = open_j(b, &o, NULL);
	snprintf(want, sizeof(want), "segment %020llu.wj offset %lld: impossible record length", (unsigned long long)segs[1],
		 off);
	ok(!j && strstr(errbuf, want), "an impossible length is named: %s", errbuf);
	o.on_corruption = JOURNAL_QUARANTINE;
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	j = open_j(b, &o, &r);
	journal_stats(j, &st);
	ok(j && st.quarantined == 1 && r.n == 199 && r.bad == 0,
	   "quarantine: everything else replays (%llu replayed)", (unsigned long long)r.n);
	journal_close(j);

	/* A replay callback that says stop. */
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	r.stop_at = 5;
	j = open_j(b, &o, &r);
	ok(!j && strstr(errbuf, "stopped by the caller at record 5"), "a replay callback can stop the open: %s", errbuf);

	free_base(b);
	rm_rf(dir);
	free(dir);
}

/* ---- hand-made segments ------------------------------------------------------------ */

/* Writes segment `first` holding records from..to of mode 3, with record
 * `bad` (0: none) given a wrong CRC and a skip record for skip_from..skip_to
 * in place of those numbers (0: none). */
static void write_seg(const char *dir, uint64_t first, uint64_t from, uint64_t to, uint64_t bad, uint64_t skip_from,
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

static void test_handmade(void)
{
	struct event_base *b = new_base();
	char *dir = new_dir();
	write_seg(dir, 1, 1, 11, 0, 4, 8);
	write_seg(dir, 12, 12, 13, 0, 0, 0);
	struct journal_options o = opts(dir);
	struct replayed r = { .mode = 3, .seqs = malloc(8) };
	struct journal *j = open_j(b, &o, &r);
	struct journal_stats st = { 0 };
	if (j)
		journal_stats(j, &st);
	ok(j && r.n == 8 && r.seqs[2] == 3 && r.seqs[3] == 9 && r.last == 13 && r.bad == 0 && st.quarantined == 0,
	   "a skip record stands for the numbers whose write failed: 1-3, 9-13 replay, no damage");
	journal_close(j);
	free(r.seqs);
	rm_rf(dir);
	free(dir);

	/* Damage, then a segment that starts below what was replayed: replay
	 * never goes backwards. */
	dir = new_dir();
	write_seg(dir, 1, 1, 5, 5, 0, 0);
	write_seg(dir, 3, 3, 6, 0, 0, 0);
	write_seg(dir, 7, 7, 8, 0, 0, 0);
	o = opts(dir);
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	j = open_j(b, &o, &r);
	if (j)
		journal_stats(j, &st);
	/* 1-4 from the first; its bad 5 is skipped; the second's 3-4 are
	 * damage, its 5-6 continue the journal; then 7-8. */
	ok(j && r.n == 8 && r.bad == 0 && st.quarantined == 2,
	   "a segment starting below the records already read is damage (%llu replayed, %llu quarantined)",
	   (unsigned long long)r.n, (unsigned long long)st.quarantined);
	journal_close(j);
	o.on_corruption = JOURNAL_REFUSE;
	j = open_j(b, &o, &r);
	ok(!j && strstr(errbuf, "00000000000000000001.wj offset"), "refuse names the first damage: %s", errbuf);
	rm_rf(dir);
	free(dir);

	/* A bad skip record. */
	dir = new_dir();
	write_seg(dir, 1, 1, 3, 0, 0, 0);
	write_seg(dir, 4, 4, 6, 0, 0, 0);
	char p[600];
	seg_path(p, sizeof(p), dir, 1);
	FILE *f = fopen(p, "ab");
	uint8_t rec[JREC_SKIP_SIZE];
	jrec_skip(rec, 4, 2); /* ends before it starts */
	fwrite(rec, 1, sizeof(rec), f);
	fclose(f);
	o = opts(dir);
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	j = open_j(b, &o, &r);
	if (j)
		journal_stats(j, &st);
	ok(j && r.n == 6 && st.quarantined == 1, "a skip record that ends before it starts is damage");
	journal_close(j);
	rm_rf(dir);
	free(dir);

	/* sync = never: a torn tail in a segment followed by one that holds
	 * only its header (rolled over, never synced, then a power cut). */
	dir = new_dir();
	write_seg(dir, 1, 1, 9, 0, 0, 0);
	seg_path(p, sizeof(p), dir, 1);
	long long full = file_size(p);
	if (truncate(p, full - 7) < 0)
		perror("truncate");
	write_seg(dir, 10, 10, 9, 0, 0, 0);
	o = opts(dir);
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	j = open_j(b, &o, &r);
	if (j)
		journal_stats(j, &st);
	char p10[600];
	seg_path(p10, sizeof(p10), dir, 10);
	ok(j && r.n == 8 && st.torn_tails == 1 && st.quarantined == 0 && !exists(p10) && st.last_seq == 8,
	   "a torn tail before a header-only last segment: cut, the empty one removed, no gap");
	struct done_log l = { 0 };
	appendk(j, &l, 3, 2);
	run_until(b, &l.calls, 2, 5000);
	journal_close(j);
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	j = open_j(b, &o, &r);
	if (j)
		journal_stats(j, &st);
	ok(j && r.n == 10 && r.last == 10 && st.quarantined == 0 && st.torn_tails == 0, "and the next open is clean");
	journal_close(j);
	rm_rf(dir);
	free(dir);

	/* Files that are not segments are left alone. */
	dir = new_dir();
	write_seg(dir, 1, 1, 3, 0, 0, 0);
	snprintf(p, sizeof(p), "%s/journal/notes.txt", dir);
	f = fopen(p, "w");
	fclose(f);
	o = opts(dir);
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	j = open_j(b, &o, &r);
	ok(j && r.n == 3 && exists(p), "an unknown file in journal/ is ignored");
	journal_close(j);
	rm_rf(dir);
	free(dir);
	free_base(b);
}

/* ---- a missing segment ------------------------------------------------------------- */

static void test_missing_segment(void)
{
	char *dir = new_dir();
	struct event_base *b = new_base();
	make_segments(b, dir, 200);
	uint64_t segs[64];
	int nseg = list_segs(dir, segs, 64);
	char p[600];
	seg_path(p, sizeof(p), dir, segs[3]);
	unlink(p);
	struct journal_options o = opts(dir);
	o.on_corruption = JOURNAL_REFUSE;
	struct journal *j = open_j(b, &o, NULL);
	char want[200];
	snprintf(want, sizeof(want), "records %llu..%llu are missing", (unsigned long long)segs[3],
		 (unsigned long long)segs[4] - 1);
	ok(!j && strstr(errbuf, want), "refuse: a deleted segment in the middle fails the open: %s", errbuf);
	o.on_corruption = JOURNAL_QUARANTINE;
	struct replayed r = { .mode = 3 };
	log_to_file(dir);
	j = open_j(b, &o, &r);
	char *log = log_text();
	struct journal_stats st = { 0 };
	if (j)
		journal_stats(j, &st);
	ok(j && st.quarantined == 1 && r.n == 200 - (segs[4] - segs[3]) && r.bad == 0,
	   "quarantine: the gap is counted and the rest replays (%llu)", (unsigned long long)r.n);
	ok(strstr(log, want) != NULL, "the log names the missing records");
	char note[700];
	snprintf(note, sizeof(note), "%s/quarantine/%020llu-missing.txt", dir, (unsigned long long)segs[3]);
	ok(exists(note), "a note in quarantine/ tells of the gap");
	free(log);
	journal_close(j);
	(void)nseg;
	free_base(b);
	rm_rf(dir);
	free(dir);
}

/* ---- rollover and release ------------------------------------------------------------ */

static void wait_released(struct journal *j, uint64_t n)
{
	struct journal_stats st;
	for (int i = 0; i < 500; i++) {
		journal_stats(j, &st);
		if (st.released >= n)
			return;
		usleep(5000);
	}
}

static void test_rollover_release(void)
{
	char *dir = new_dir();
	struct event_base *b = new_base();
	struct journal_options o = opts(dir);
	o.segment_size = 2048;
	struct journal *j = open_j(b, &o, NULL);
	struct done_log l = { 0 };
	appendk(j, &l, 3, 200);
	run_until(b, &l.calls, 200, 10000);
	uint64_t segs[64];
	int nseg = list_segs(dir, segs, 64);
	struct journal_stats st;
	journal_stats(j, &st);
	ok(nseg >= 6 && st.segments == (uint64_t)nseg, "200 records roll over into %d segments", nseg);
	int over = 0;
	for (int i = 0; i < nseg; i++) {
		char p[600];
		seg_path(p, sizeof(p), dir, segs[i]);
		long long sz = file_size(p);
		/* the soft limit: a segment ends before the record that would
		 * take it past 2048 */
		if (sz > 2048)
			over++;
	}
	ok(over == 0, "no segment is over the size limit");
	int wrong = 0;
	for (uint64_t s = 1; s <= 200; s++) {
		uint64_t want = 0;
		for (int i = 0; i < nseg; i++)
			if (segs[i] <= s)
				want = segs[i];
		if (journal_segment_of(j, s) != want)
			wrong++;
	}
	ok(wrong == 0, "journal_segment_of names the file that holds each record");

	/* Release a segment in the middle: it becomes a stand-in. */
	journal_release(j, segs[2]);
	wait_released(j, 1);
	char p2[600], stub[700];
	seg_path(p2, sizeof(p2), dir, segs[2]);
	snprintf(stub, sizeof(stub), "%s/journal/%020llu-%020llu.released", dir, (unsigned long long)segs[2],
		 (unsigned long long)segs[3]);
	ok(!exists(p2) && exists(stub) && file_size(stub) == 0, "a released middle segment leaves an empty stand-in");
	ok(journal_segment_of(j, segs[2]) == 0, "journal_segment_of of a released record is 0");
	journal_close(j);
	struct replayed r = { .mode = 3 };
	j = open_j(b, &o, &r);
	journal_stats(j, &st);
	ok(j && st.quarantined == 0 && r.n == 200 - (segs[3] - segs[2]) && r.bad == 0,
	   "reopen: the stand-in explains the hole, no gap reported");

	/* Release everything, the active one too: all but it go. */
	for (int i = 0; i < nseg; i++)
		journal_release(j, segs[i]);
	wait_released(j, (uint64_t)nseg - 2);
	uint64_t now[64];
	int n2 = list_segs(dir, now, 64);
	snprintf(stub, sizeof(stub), "%s/journal", dir);
	ok(n2 == 1 && now[0] == segs[nseg - 1] && count_files(stub, ".released") == 0,
	   "releasing all: only the last one stays (%d left), stand-ins gone", n2);
	/* Once a new segment takes over, the released one goes too. */
	memset(&l, 0, sizeof(l));
	appendk(j, &l, 3, 100);
	run_until(b, &l.calls, 100, 10000);
	wait_released(j, (uint64_t)nseg - 1);
	char plast[600];
	seg_path(plast, sizeof(plast), dir, segs[nseg - 1]);
	ok(!exists(plast), "the old active segment is deleted after rollover");
	journal_stats(j, &st);
	n2 = list_segs(dir, now, 64);
	ok(st.segments == (uint64_t)n2 && n2 >= 2, "stats count the files left (%d)", n2);
	journal_close(j);
	memset(&r, 0, sizeof(r));
	r.mode = 3;
	j = open_j(b, &o, &r);
	journal_stats(j, &st);
	ok(j && st.quarantined == 0 && r.last == 300 && r.first == now[0] && r.bad == 0,
	   "reopen after releases: what is left replays, from %llu", (unsigned long long)r.first);
	journal_close(j);

	/* One record bigger than a segment gets a segment of its own. */
	o.segment_size = 4096;
	j = open_j(b, &o, NULL);
	memset(&l, 0, sizeof(l));
	uint64_t seq;
	appendk(j, &l, 3, 3);
	journal_stats(j, &st);
	seq = st.last_seq + 1;
	static uint8_t bigp[20000];
	payload(seq, 3, bigp, sizeof(bigp));
	journal_append(j, 9, bigp, sizeof(bigp), NULL, NULL, NULL);
	appendk(j, &l, 3, 3);
	run_until(b, &l.calls, 6, 10000);
	uint64_t big_seg = journal_segment_of(j, seq);
	uint64_t after_seg = journal_segment_of(j, seq + 1);
	char pb[600];
	seg_path(pb, sizeof(pb), dir, big_seg);
	ok(big_seg == seq && after_seg == seq + 1 && file_size(pb) == (long long)(JSEG_HEADER + JREC_HEADER + sizeof(bigp)),
	   "a 20000-byte record in 4 KiB segments has a segment to itself");
	journal_close(j);

	free_base(b);
	rm_rf(dir);
	free(dir);
}

/* The only segment, drained and deleted, leaves its numbers behind: after
 * a restart with no segment the next record still gets the next number
 * (replication ships records by number), and once a new segment carries
 * them, the stand-in that kept them goes. */
static void test_numbers_outlive_the_last_segment(void)
{
	char *dir = new_dir();
	struct event_base *b = new_base();
	struct journal_options o = opts(dir);
	char jd[600];
	snprintf(jd, sizeof(jd), "%s/journal", dir);
	struct journal *j = open_j(b, &o, NULL);
	struct done_log l = { 0 };
	appendk(j, &l, 3, 5);
	run_until(b, &l.calls, 5, 10000);
	journal_close(j);
	/* Reopened, the segment is from before the restart: drained, it goes
	 * (at the writer's next pass: here, the last one, at close). */
	j = open_j(b, &o, NULL);
	journal_release_before(j, 6);
	journal_close(j);
	uint64_t segs[4];
	ok(list_segs(dir, segs, 4) == 0, "the only segment, drained, is deleted");
	struct journal_stats st;
	for (int round = 1; round <= 2; round++) {
		j = open_j(b, &o, NULL);
		journal_stats(j, &st);
		ok(j && st.last_seq == 5, "reopen %d with no segment: the numbers go on after 5 (last %llu)",
		   round, (unsigned long long)st.last_seq);
		if (round == 1)
			journal_close(j);
	}
	memset(&l, 0, sizeof(l));
	uint64_t seq = 0;
	append1(j, &l, 3, &seq);
	run_until(b, &l.calls, 1, 10000);
	ok(seq == 6 && l.ok == 1, "the next record is 6 (%llu)", (unsigned long long)seq);
	journal_stats(j, &st);
	ok(st.segments == 1 && count_files(jd, ".released") == 0,
	   "its segment carries the numbers now: the stand-in is gone");
	journal_close(j);
	struct replayed r = { .mode = 3 };
	j = open_j(b, &o, &r);
	journal_stats(j, &st);
	ok(j && r.n == 1 && r.first == 6 && r.bad == 0 && st.last_seq == 6 && st.quarantined == 0,
	   "reopened: record 6 replays, nothing reported missing");
	journal_close(j);
	rm_rf(dir);
	free(dir);

	/* A crash after the next segment was made, before a record was in
	 * it: the empty segment is removed, the numbers stay. */
	dir = new_dir();
	snprintf(jd, sizeof(jd), "%s/journal", dir);
	write_seg(dir, 6, 6, 5, 0, 0, 0);
	char stub[700];
	snprintf(stub, sizeof(stub), "%s/%020llu-%020llu.released", jd, 1ull, 6ull);
	fclose(fopen(stub, "w"));
	o = opts(dir);
	for (int round = 1; round <= 2; round++) {
		j = open_j(b, &o, NULL);
		journal_stats(j, &st);
		ok(j && st.last_seq == 5 && st.quarantined == 0 && list_segs(dir, segs, 4) == 0,
		   "a stand-in and an empty segment, reopen %d: the numbers go on after 5 (last %llu)",
		   round, (unsigned long long)st.last_seq);
		journal_close(j);
	}
	free_base(b);
	rm_rf(dir);
	free(dir);
}

/* ---- sync modes and progress --------------------------------------------------------- */

static int slow_replay(void *arg, uint64_t seq, uint8_t type, const uint8_t *data, size_t len)
{
	(*(int *)arg)++;
	usleep(300000);
	return 0;
}

static int count_str(const char *s, const char *w)
{
	int n = 0;
	for (; (s = strstr(s, w)); s++)
		n++;
	return n;
}

static void test_progress(void)
{
	char *dir = new_dir();
	struct event_base *b = new_base();
	struct journal_options o = opts(dir);
	struct journal *j = open_j(b, &o, NULL);
	struct done_log l = { 0 };
	memset(scratch, 'x', 1u << 20);
	for (int i = 0; i < 8; i++)
		journal_append(j, 5, scratch, 1u << 20, on_done, darg(&l, (uint64_t)i, 0), NULL);
	run_until(b, &l.calls, 8, 20000);
	journal_close(j);

	log_to_file(dir);
	int rc = journal_open(b, &o, NULL, NULL, &j, errbuf, sizeof(errbuf));
	journal_close(j);
	char *log = log_text();
	ok(rc == 0 && count_str(log, "replaying") == 0 && strstr(log, "replayed 8 records"),
	   "a fast replay of 8 MiB: a summary line, no progress lines");
	free(log);

	log_to_file(dir);
	int calls = 0;
	int64_t t0 = now_ms();
	rc = journal_open(b, &o, slow_replay, &calls, &j, errbuf, sizeof(errbuf));
	int64_t ms = now_ms() - t0;
	journal_close(j);
	log = log_text();
	int lines = count_str(log, "replaying");
	ok(rc == 0 && calls == 8, "a slow replay of 8 MiB (%lld ms)", (long long)ms);
	ok(lines >= 1 && lines <= ms / 1000 + 1 && strstr(log, "%") && strstr(log, "MB/s") && strstr(log, " records"),
	   "progress (percent, records, MB/s) at most once a second: %d lines", lines);
	free(log);
	free_base(b);
	rm_rf(dir);
	free(dir);
}

/* ---- full disk ------------------------------------------------------------------------ */

static void check_reopen_exact(struct event_base *b, const struct journal_options *o, const uint64_t *okseq,
			       uint64_t nok, int mode, const char *what)
{
	struct replayed r = { .mode = mode, .seqs = malloc(8) };
	struct journal *j = open_j(b, o, &r);
	struct journal_stats st = { 0 };
	if (j)
		journal_stats(j, &st);
	bool same = j && r.n == nok && r.bad == 0;
	for (uint64_t i = 0; same && i < nok; i++)
		if (r.seqs[i] != okseq[i])
			same = false;
	ok(same && st.quarantined == 0 && st.torn_tails == 0,
	   "%s: reopen replays exactly the %llu confirmed records, no damage (got %llu, q=%llu t=%llu) %s", what,
	   (unsigned long long)nok, (unsigned long long)r.n, (unsigned long long)st.quarantined,
	   (unsigned long long)st.torn_tails, j ? "" : errbuf);
	journal_close(j);
	free(r.seqs);
}

static void test_enospc_tmpfs(void)
{
	char *dir = new_dir();
	char mnt[600];
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	mkdir(mnt, 0755);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") < 0) {
		printf("# no tmpfs (%s): the full-disk case runs on injected faults only\n", strerror(errno));
		rm_rf(dir);
		free(dir);
		return;
	}
	struct event_base *b = new_base();
	char filler[700];
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	FILE *f = fopen(filler, "wb");
	static uint8_t blk[4096];
	for (int i = 0; i < 150; i++)
		fwrite(blk, 1, sizeof(blk), f);
	fclose(f);
	struct journal_options o = opts(mnt);
	o.segment_size = 64 * 1024;
	struct journal *j = open_j(b, &o, NULL);
	struct done_log l = { 0 };
	l.okseq = calloc(4000, sizeof(uint64_t));
	/* Append in rounds of 20 until some fail with ENOSPC, then a few more
	 * rounds that fail too. */
	int failing_rounds = 0;
	for (int round = 0; round < 400 && failing_rounds < 3; round++) {
		uint64_t before = l.failed;
		appendk(j, &l, 0, 20);
		run_until(b, &l.calls, l.appended, 10000);
		if (l.failed > before)
			failing_rounds++;
	}
	ok(l.failed > 0 && l.last_err == ENOSPC, "a full tmpfs fails records with ENOSPC (%llu ok, %llu failed)",
	   (unsigned long long)l.ok, (unsigned long long)l.failed);
	struct journal_stats st;
	journal_stats(j, &st);
	ok(st.write_errors >= 3 && st.failed_records == l.failed, "stats count the failed batches and records");
	unlink(filler);
	uint64_t ok_before = l.ok, fail_before = l.failed;
	appendk(j, &l, 0, 100);
	run_until(b, &l.calls, l.appended, 10000);
	ok(l.ok == ok_before + 100 && l.failed == fail_before, "with space back, appends work again");
	ok(l.order_errors == 0, "callbacks stayed in order through the failures");
	journal_close(j);
	check_reopen_exact(b, &o, l.okseq, l.ok, 0, "tmpfs");
	free(l.okseq);
	free_base(b);
	umount2(mnt, MNT_DETACH);
	rm_rf(dir);
	free(dir);
}

#ifdef WHARF_JOURNAL_FAULTS
static void test_faults(void)
{
	struct {
		const char *what;
		enum journal_fault f1;
		int n1;
		enum journal_fault f2;
		int n2;
		int err;
		int failing_batches;
	} cases[] = {
		{ "fdatasync EIO", JOURNAL_FAULT_SYNC, 1, JOURNAL_FAULT_COUNT, 0, EIO, 1 },
		{ "write ENOSPC half-way", JOURNAL_FAULT_WRITE, 1, JOURNAL_FAULT_COUNT, 0, ENOSPC, 1 },
		{ "write EIO, truncate EIO", JOURNAL_FAULT_WRITE, 1, JOURNAL_FAULT_TRUNCATE, 1, EIO, 1 },
		{ "write EIO, truncate EIO twice", JOURNAL_FAULT_WRITE, 1, JOURNAL_FAULT_TRUNCATE, 2, EIO, 2 },
		{ "write ENOSPC three times", JOURNAL_FAULT_WRITE, 3, JOURNAL_FAULT_COUNT, 0, ENOSPC, 3 },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char *dir = new_dir();
		struct event_base *b = new_base();
		struct journal_options o = opts(dir);
		struct journal *j = open_j(b, &o, NULL);
		struct done_log l = { 0 };
		l.okseq = calloc(1000, sizeof(uint64_t));
		appendk(j, &l, 0, 10);
		run_until(b, &l.calls, 10, 5000);
		journal_fault(cases[c].f1, cases[c].err, (unsigned)cases[c].n1);
		if (cases[c].f2 != JOURNAL_FAULT_COUNT)
			journal_fault(cases[c].f2, EIO, (unsigned)cases[c].n2);
		int failed_batches = 0;
		for (int round = 0; round < 6; round++) {
			uint64_t before = l.failed;
			appendk(j, &l, 0, 10);
			run_until(b, &l.calls, l.appended, 5000);
			if (l.failed > before)
				failed_batches++;
		}
		ok(l.calls == 70 && failed_batches == cases[c].failing_batches && l.failed == 10u * (unsigned)failed_batches &&
			   l.ok == 70 - l.failed && l.order_errors == 0,
		   "%s: %d batch(es) fail, the journal goes on (%llu ok, %llu failed, err %d)", cases[c].what,
		   cases[c].failing_batches, (unsigned long long)l.ok, (unsigned long long)l.failed, l.last_err);
		journal_close(j);
		check_reopen_exact(b, &o, l.okseq, l.ok, 0, cases[c].what);
		free(l.okseq);
		free_base(b);
		rm_rf(dir);
		free(dir);
	}

	/* A batch that crosses into a new segment whose creation fails: the
	 * part that fit is durable, the rest fails. */
	char *dir = new_dir();
	struct event_base *b = new_base();
	struct journal_options o = opts(dir);
	o.segment_size = 2048;
	struct journal *j = open_j(b, &o, NULL);
	struct done_log l = { 0 };
	l.okseq = calloc(1000, sizeof(uint64_t));
	appendk(j, &l, 3, 5);
	run_until(b, &l.calls, 5, 5000);
	journal_fault(JOURNAL_FAULT_CREATE, ENOSPC, 1);
	appendk(j, &l, 3, 40); /* 40 x ~100 bytes: crosses 2048 */
	run_until(b, &l.calls, 45, 5000);
	ok(l.ok > 5 && l.ok < 45 && l.failed == 45 - l.ok && l.last_err == ENOSPC,
	   "rollover failure: %llu of the batch durable, the rest ENOSPC", (unsigned long long)(l.ok - 5));
	uint64_t ok_before = l.ok;
	appendk(j, &l, 3, 40);
	run_until(b, &l.calls, 85, 5000);
	ok(l.calls == 85 && l.ok == ok_before + 40, "after it, rollover works");
	uint64_t segs[64];
	char jd[700];
	snprintf(jd, sizeof(jd), "%s/journal", dir);
	journal_close(j);
	ok(list_segs(dir, segs, 64) >= 2 && count_files(jd, ".wj") >= 2, "the new segment exists");
	check_reopen_exact(b, &o, l.okseq, l.ok, 3, "rollover failure");
	free(l.okseq);
	free_base(b);
	rm_rf(dir);
	free(dir);

	/* The very first segment cannot be created. */
	dir = new_dir();
	b = new_base();
	o = opts(dir);
	j = open_j(b, &o, NULL);
	memset(&l, 0, sizeof(l));
	l.okseq = calloc(1000, sizeof(uint64_t));
	journal_fault(JOURNAL_FAULT_CREATE, EIO, 1);
	appendk(j, &l, 0, 10);
	run_until(b, &l.calls, 10, 5000);
	ok(l.failed == 10 && l.last_err == EIO, "first segment creation fails: the batch gets EIO");
	snprintf(jd, sizeof(jd), "%s/journal", dir);
	ok(count_files(jd, ".wj") == 0, "no half-made segment is left");
	appendk(j, &l, 0, 10);
	run_until(b, &l.calls, 20, 5000);
	ok(l.ok == 10, "the next batch creates it");
	journal_close(j);
	check_reopen_exact(b, &o, l.okseq, l.ok, 0, "creation failure");
	free(l.okseq);
	free_base(b);
	rm_rf(dir);
	free(dir);
}
#endif

/* ---- kill -9 ------------------------------------------------------------------------------ */

struct child {
	struct journal *j;
	int out;
	uint64_t inflight;
};

static void child_done(void *arg, int err);

static void child_fill(struct child *c)
{
	while (c->inflight < 300) {
		struct journal_stats st;
		journal_stats(c->j, &st);
		uint64_t seq = st.last_seq + 1;
		size_t len = payload_len(seq, 0);
		payload(seq, 0, scratch, len);
		uint64_t *tag = malloc(sizeof(*tag));
		*tag = seq;
		if (journal_append(c->j, type_of(seq), scratch, len, child_done, tag, NULL) < 0)
			_exit(3);
		c->inflight++;
	}
}

static struct child *the_child;

static void child_done(void *arg, int err)
{
	uint64_t seq = *(uint64_t *)arg;
	free(arg);
	the_child->inflight--;
	if (err)
		_exit(4);
	if (write(the_child->out, &seq, sizeof(seq)) != sizeof(seq))
		_exit(5);
	child_fill(the_child);
}

static void run_child(const char *dir, int out)
{
	struct event_base *b = event_base_new();
	struct journal_options o = opts(dir);
	o.segment_size = 256 * 1024;
	struct replayed r = { .mode = 0 };
	struct journal *j = NULL;
	if (journal_open(b, &o, on_replay, &r, &j, errbuf, sizeof(errbuf)) < 0 || r.bad)
		_exit(2);
	struct child c = { .j = j, .out = out };
	the_child = &c;
	child_fill(&c);
	event_base_dispatch(b);
	_exit(6);
}

static void test_kill9(void)
{
	char *dir = new_dir();
	size_t cap = 1 << 22, nconf = 0;
	uint64_t *conf = malloc(cap * sizeof(uint64_t));
	int rounds = 8, failures = 0, child_errors = 0;
	srandom((unsigned)time(NULL));
	for (int round = 0; round < rounds; round++) {
		int pfd[2];
		if (pipe(pfd) < 0)
			break;
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			log_set_level(LOG_ERROR);
			run_child(dir, pfd[1]);
		}
		close(pfd[1]);
		/* Killed at a random point once it confirms records (opening
		 * a large journal under a sanitizer takes a while). */
		int64_t kill_at = now_ms() + 30000;
		bool started = false;
		uint8_t buf[8192];
		size_t have = 0;
		bool killed = false;
		for (;;) {
			if (!killed && now_ms() >= kill_at) {
				kill(pid, SIGKILL);
				killed = true;
			}
			fd_set rs;
			FD_ZERO(&rs);
			FD_SET(pfd[0], &rs);
			struct timeval tv = { 0, 5000 };
			if (select(pfd[0] + 1, &rs, NULL, NULL, &tv) <= 0)
				continue;
			ssize_t n = read(pfd[0], buf + have, sizeof(buf) - have);
			if (n <= 0)
				break;
			have += (size_t)n;
			if (!started) {
				started = true;
				kill_at = now_ms() + random() % 250;
			}
			size_t k = have / 8 * 8;
			for (size_t i = 0; i < k; i += 8) {
				uint64_t s;
				memcpy(&s, buf + i, 8);
				if (nconf < cap)
					conf[nconf++] = s;
			}
			memmove(buf, buf + k, have - k);
			have -= k;
		}
		close(pfd[0]);
		int status;
		waitpid(pid, &status, 0);
		if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
			child_errors++;

		/* Every confirmed record is there, in order, intact. */
		struct event_base *b = new_base();
		struct journal_options o = opts(dir);
		o.segment_size = 256 * 1024;
		struct replayed r = { .mode = 0, .seqs = malloc(8) };
		struct journal *j = open_j(b, &o, &r);
		size_t ci = 0;
		for (uint64_t i = 0; i < r.n && ci < nconf; i++)
			if (r.seqs[i] == conf[ci])
				ci++;
		struct journal_stats st = { 0 };
		if (j)
			journal_stats(j, &st);
		if (!j || r.bad || ci != nconf || st.quarantined)
			failures++;
		printf("# round %d: %zu confirmed so far, %llu replayed, torn tail %s\n", round, nconf,
		       (unsigned long long)r.n, st.torn_tails ? "cut" : "none");
		journal_close(j);
		free(r.seqs);
		free_base(b);
	}
	ok(child_errors == 0, "kill -9: %d children appended until killed", rounds);
	ok(failures == 0 && nconf > 1000,
	   "kill -9 at random points: every confirmed record replays, in order, intact, none made up (%zu confirmed)",
	   nconf);
	free(conf);
	rm_rf(dir);
	free(dir);
}


static int taps;
static void on_tap(void *arg)
{
	(void)arg;
	taps++;
}

/* The replication hooks: the segment snapshot and its durable sizes, the
 * tap, and the replica gate holding done callbacks until advanced. */
static void test_replica_gate(void)
{
	char *dir = new_dir();
	struct event_base *b = new_base();
	struct journal_options o = opts(dir);
	o.segment_size = 64 * 1024;
	struct journal *j = open_j(b, &o, NULL);
	ok(j != NULL, "gate: open a journal");
	journal_set_tap(j, on_tap, NULL);
	struct done_log l = { 0 };
	appendk(j, &l, 3, 10);
	run_until(b, &l.calls, 10, 10000);
	ok(l.calls == 10 && taps > 0, "gate off: callbacks run, the tap is called (%d)", taps);
	ok(journal_durable_last(j) == 10, "durable last is 10");
	journal_gate_advance(j, 10);
	journal_gate(j, true);
	appendk(j, &l, 3, 20);
	uint64_t want = 30;
	int64_t end = now_ms() + 10000;
	while (journal_gate_held(j) < 20 && now_ms() < end)
		event_base_loop(b, EVLOOP_ONCE);
	ok(l.calls == 10 && journal_gate_held(j) == 20, "gate on at 10: 20 callbacks held (%zu)",
	   journal_gate_held(j));
	ok(journal_durable_last(j) == 30, "they are durable all the same");
	journal_gate_advance(j, 25);
	ok(l.calls == 25 && l.order_errors == 0, "advanced to 25: 15 run, in order");
	journal_gate_advance(j, 20);
	ok(l.calls == 25, "the gate's number never goes back");
	struct journal_seginfo *v;
	size_t n;
	uint64_t dl;
	ok(journal_segments(j, &v, &n, &dl) == 0 && n == 1 && v[0].first == 1 && v[0].open &&
	   v[0].size > 16 && !v[0].stub && dl == 30,
	   "snapshot: one open segment, its durable size, durable last 30");
	char p[600];
	seg_path(p, sizeof(p), dir, 1);
	ok(n == 1 && (long long)v[0].size == file_size(p), "the durable size is the file's");
	free(v);
	journal_gate(j, false);
	ok(l.calls == want && l.order_errors == 0, "gate off: the rest run, in order");
	journal_gate(j, true);
	appendk(j, &l, 3, 5);
	end = now_ms() + 10000;
	while (journal_gate_held(j) < 5 && now_ms() < end)
		event_base_loop(b, EVLOOP_ONCE);
	journal_close(j);
	ok(l.calls == want + 5, "close runs held callbacks: nothing hangs");
	free_base(b);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	scratch = malloc(2u << 20);
	if (!getenv("JOURNAL_TEST_VERBOSE"))
		log_set_level(LOG_ERROR);
	test_crc32c();
	test_record();
	test_round_trip();
	test_replica_gate();
	test_group_commit(JOURNAL_SYNC_ALWAYS, 0, "sync=always");
	test_group_commit(JOURNAL_SYNC_BATCH, 20000, "sync=batch 20 ms");
	test_group_commit(JOURNAL_SYNC_NEVER, 0, "sync=never");
	log_set_level(LOG_INFO);
	test_torn_tail();
	test_corruption();
	test_missing_segment();
	test_handmade();
	test_progress();
	if (!getenv("JOURNAL_TEST_VERBOSE"))
		log_set_level(LOG_ERROR);
	test_rollover_release();
	test_numbers_outlive_the_last_segment();
	test_enospc_tmpfs();
#ifdef WHARF_JOURNAL_FAULTS
	test_faults();
#else
	printf("# built without WHARF_JOURNAL_FAULTS: injected-fault cases skipped\n");
#endif
	test_kill9();
	free(scratch);
	for (int i = 0; i < ndblocks; i++)
		free(dblocks[i]);
	return tap_done();
}
