/* The journal: CRC32C, record framing, append/replay round trips, done
 * callbacks, the replica gate, group commit, replay progress, rollover
 * and release. Damage is in test_journal_damage.c, full disks and kill -9
 * in test_journal_faults.c. */
#include "config.h"

#include "journal_harness.h"

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
	harness_init();
	test_crc32c();
	test_record();
	test_round_trip();
	test_replica_gate();
	test_group_commit(JOURNAL_SYNC_ALWAYS, 0, "sync=always");
	test_group_commit(JOURNAL_SYNC_BATCH, 20000, "sync=batch 20 ms");
	test_group_commit(JOURNAL_SYNC_NEVER, 0, "sync=never");
	log_set_level(LOG_INFO);
	test_progress();
	if (!getenv("JOURNAL_TEST_VERBOSE"))
		log_set_level(LOG_ERROR);
	test_rollover_release();
	test_numbers_outlive_the_last_segment();
	return harness_done();
}
