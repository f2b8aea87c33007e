/* Group-commit figures for the journal on the disk that holds $TMPDIR (or
 * /tmp): first the disk's own rate of 1 KiB write + fdatasync (the limit for
 * one fsync per record), then the journal with sync = always, 1 KiB
 * records, one appender keeping WINDOW records unconfirmed (1000, and 100 and
 * 10000 for comparison). Prints TAP with the figures as comments.
 * JOURNAL_BENCH_SECS sets the seconds per run (default 3). */
#include "config.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store/journal.h"
#include "tap.h"

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static double disk_fsync_rate(const char *dir, double secs)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/fsync-probe", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 0;
	char buf[1024];
	memset(buf, 'x', sizeof(buf));
	uint64_t n = 0;
	double t0 = now_s(), t;
	do {
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf) || fdatasync(fd) < 0)
			break;
		n++;
	} while ((t = now_s() - t0) < secs);
	close(fd);
	unlink(path);
	return (double)n / (now_s() - t0);
}

struct run {
	struct journal *j;
	struct event_base *base;
	uint64_t window, appended, done, failed;
	double until;
	bool stopping;
	char payload[1024];
};

static void fill(struct run *r);

static void on_done(void *arg, int err)
{
	struct run *r = arg;
	r->done++;
	if (err)
		r->failed++;
	fill(r);
}

static void fill(struct run *r)
{
	if (r->stopping || ((r->done & 255) == 0 && now_s() >= r->until)) {
		r->stopping = true;
		if (r->done == r->appended)
			event_base_loopbreak(r->base);
		return;
	}
	while (r->appended - r->done < r->window) {
		if (journal_append(r->j, 1, r->payload, sizeof(r->payload), on_done, r, NULL) < 0)
			break;
		r->appended++;
	}
}

static int bench(const char *dir, uint64_t window, double secs, double *rps, double *fps, double *per)
{
	struct event_base *base = event_base_new();
	struct journal_options o = { .dir = dir, .sync = JOURNAL_SYNC_ALWAYS };
	struct run r = { .base = base, .window = window };
	memset(r.payload, 'm', sizeof(r.payload));
	char err[256];
	if (journal_open(base, &o, NULL, NULL, &r.j, err, sizeof(err)) < 0) {
		printf("# %s\n", err);
		event_base_free(base);
		return -1;
	}
	struct journal_stats s0, s1;
	journal_stats(r.j, &s0);
	double t0 = now_s();
	r.until = t0 + secs;
	fill(&r);
	event_base_dispatch(base);
	double t = now_s() - t0;
	journal_stats(r.j, &s1);
	*rps = (double)(s1.records - s0.records) / t;
	*fps = (double)(s1.fsyncs - s0.fsyncs) / t;
	*per = (double)(s1.records - s0.records) / (double)(s1.batches - s0.batches);
	journal_close(r.j);
	event_base_free(base);
	return r.failed ? -1 : 0;
}

int main(void)
{
	log_set_level(LOG_WARN);
	const char *env = getenv("JOURNAL_BENCH_SECS");
	double secs = env ? atof(env) : 3.0;
	const char *t = getenv("TMPDIR");
	char tmpl[512];
	snprintf(tmpl, sizeof(tmpl), "%s/wharf-jbench.XXXXXX", t && *t ? t : "/tmp");
	char *dir = mkdtemp(tmpl);
	if (!dir) {
		printf("1..0 # SKIP no temporary directory\n");
		return 0;
	}
	double disk = disk_fsync_rate(dir, secs);
	printf("# disk: %.0f fsyncs/s (1 KiB write + fdatasync, one at a time) in %s\n", disk, dir);
	static const uint64_t windows[] = { 1000, 100, 10000 };
	int bad = 0;
	for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
		char sub[600];
		snprintf(sub, sizeof(sub), "%s/w%llu", dir, (unsigned long long)windows[i]);
		double rps = 0, fps = 0, per = 0;
		if (bench(sub, windows[i], secs, &rps, &fps, &per) < 0)
			bad++;
		printf("# sync=always, 1 KiB records, %llu unconfirmed: %.0f records/s, %.0f fsyncs/s, %.0f records per batch "
		       "(%.1f MB/s)\n",
		       (unsigned long long)windows[i], rps, fps, per, rps * 1041 / 1e6);
	}
	ok(bad == 0, "benchmarks ran without write errors");
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
