/* The journal's damage: torn tails, corruption (quarantine and refuse),
 * hand-made segments and missing segments; each named in the log. */
#include "config.h"

#include "journal_harness.h"

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


int main(void)
{
	harness_init();
	log_set_level(LOG_INFO);
	test_torn_tail();
	test_corruption();
	test_missing_segment();
	test_handmade();
	return harness_done();
}
