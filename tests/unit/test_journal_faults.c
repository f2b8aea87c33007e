/* The journal on failing disks: a full tmpfs where we may mount one,
 * injected faults when built with WHARF_JOURNAL_FAULTS, and kill -9 at
 * random points of a stream. */
#include "config.h"

#include "journal_harness.h"

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



int main(void)
{
	harness_init();
	test_enospc_tmpfs();
#ifdef WHARF_JOURNAL_FAULTS
	test_faults();
#else
	printf("# built without WHARF_JOURNAL_FAULTS: injected-fault cases skipped\n");
#endif
	test_kill9();
	return harness_done();
}
