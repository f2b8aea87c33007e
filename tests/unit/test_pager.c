/* Paging: the page file on its own (order, buffering, read-back of what is
 * still in the write buffer, rewinding, damage, reads that are not there
 * yet, freeing with I/O in flight), then a queue paging its tail through
 * it (FIFO across memory and file, limits, purge, dead messages dropped as
 * they come back). The file's I/O runs on the pageio thread; the tests run
 * the event loop for its reports. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loop.h"
#include "router/queue.h"
#include "store/msgcodec.h"
#include "store/pageio.h"
#include "store/pager.h"
#include "tap.h"

static char dir[] = "/tmp/wharf-pager.XXXXXX";
static struct event_base *base;
static struct pageio *io;
static int readies;

static void on_ready(void *arg)
{
	(void)arg;
	readies++;
}

static struct pager *new_pager(const char *name)
{
	struct pager *p = pager_new(io, dir, name);
	pager_set_ready_cb(p, on_ready, NULL);
	return p;
}

/* pager_get, running the loop while the entry is being read; *waited
 * counts the EAGAINs. */
static struct message *get_wait(struct pager *p, uint64_t *rec, int *waited)
{
	for (;;) {
		int before = readies;
		struct message *m = pager_get(p, rec);
		if (m || errno != EAGAIN)
			return m;
		if (waited)
			(*waited)++;
		run_until(base, &readies, before + 1, 5000);
		if (readies == before)
			return NULL; /* errno EAGAIN: no report came */
	}
}

static void run_for(int ms)
{
	int64_t end = now_ms() + ms;
	while (now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
}

/* Runs the loop until the file is `size` bytes long and the writes have
 * reported. */
static off_t file_size(const char *name);
static void wait_size(const char *name, off_t size)
{
	int64_t end = now_ms() + 5000;
	while (file_size(name) < size && now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	run_for(300);
}

static struct message *msg(uint64_t id, size_t body)
{
	struct message *m = message_new();
	m->id = id;
	m->qos = 1;
	message_set(&m->dest, "q");
	if (body) {
		uint8_t *b = malloc(body);
		for (size_t i = 0; i < body; i++)
			b[i] = (uint8_t)(id + i);
		/* The id first, cut to fit (and NUL-ended) as snprintf would; not
		 * snprintf itself, which -O2 warns cuts a one-byte body. */
		char digits[24];
		size_t n = (size_t)snprintf(digits, sizeof(digits), "%08llu", (unsigned long long)id);
		if (n > body - 1)
			n = body - 1;
		memcpy(b, digits, n);
		b[n] = 0;
		message_take_body(m, &b, body);
	}
	return m;
}

static unsigned long long body_id(const struct message *m)
{
	char tmp[9] = { 0 };
	memcpy(tmp, m->body, m->body_len < 8 ? m->body_len : 8);
	return strtoull(tmp, NULL, 10);
}

static off_t file_size(const char *name)
{
	char path[256];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s.page", dir, name);
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* A pager holding entries 1-1,000 of 1 KiB (records 1-1,000), the first
 * 700 KB or more written and reported. */
static struct pager *filled_pager(const char *name)
{
	struct pager *p = new_pager(name);
	for (uint64_t i = 1; i <= 1000; i++) {
		struct message *m = msg(i, 1000);
		pager_put(p, m, i);
		message_unref(m);
	}
	wait_size(name, 700 * 1000);
	return p;
}

static void test_pager_alone(void)
{
	struct pager *p = new_pager("a");
	ok(p && pager_count(p) == 0 && file_size("a") == -1, "a new pager has no file until the first write");
	uint64_t rec = 99;
	errno = 0;
	ok(!pager_get(p, &rec) && errno == 0, "empty: NULL, errno 0");

	bool all = true;
	for (uint64_t i = 1; i <= 3; i++) {
		struct message *m = msg(i, 100);
		all &= pager_put(p, m, i * 10) == 0;
		message_unref(m);
	}
	ok(all && pager_count(p) == 3, "three small entries stay in the write buffer");
	struct message *m = pager_get(p, &rec);
	ok(m && body_id(m) == 1 && rec == 10 && m->body_len == 100 && m->qos == 1,
	   "read back from the write buffer: first, its record, its body");
	message_unref(m);

	/* Enough to go through the file several times over. */
	for (uint64_t i = 4; i <= 3000; i++) {
		m = msg(i, 1000);
		all &= pager_put(p, m, i * 10) == 0;
		message_unref(m);
	}
	wait_size("a", 2 * 1024 * 1024);
	ok(all && pager_count(p) == 2999 && file_size("a") > 2 * 1024 * 1024,
	   "2,999 waiting, most of them in the file");
	bool order = true;
	int waited = 0;
	for (uint64_t i = 2; i <= 3000; i++) {
		m = get_wait(p, &rec, &waited);
		order &= m && body_id(m) == i && rec == i * 10;
		if (i > 3)
			order &= m && m->body_len == 1000 && m->body[999] == (uint8_t)(i + 999);
		message_unref(m);
		if (i == 1500) {
			/* Writes while reading go behind. */
			for (uint64_t k = 3001; k <= 3100; k++) {
				struct message *w = msg(k, 500);
				all &= pager_put(p, w, k * 10) == 0;
				message_unref(w);
			}
		}
	}
	for (uint64_t i = 3001; i <= 3100; i++) {
		m = get_wait(p, &rec, &waited);
		order &= m && body_id(m) == i && rec == i * 10 && m->body_len == 500;
		message_unref(m);
	}
	ok(all && order, "every entry back once, in order, intact, also those written while reading");
	ok(waited > 0 && waited < 100, "the file was read ahead off the loop: %d gets waited for a read", waited);
	int64_t end = now_ms() + 5000;
	while (file_size("a") != 0 && now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE); /* the truncation lands */
	ok(pager_count(p) == 0 && pager_bytes(p) == 0 && file_size("a") == 0,
	   "once all is read the file is emptied");

	m = msg(7, 10);
	pager_put(p, m, 70);
	message_unref(m);
	m = pager_get(p, &rec);
	ok(m && body_id(m) == 7 && rec == 70, "it starts over from the beginning of the file");
	message_unref(m);
	pager_free(p);
	ok(file_size("a") == -1, "pager_free deletes the file");
}

static void test_pager_damage(void)
{
	/* 1,000 entries of about 1 KiB: the first ones are in the file (written
	 * in 256 KiB chunks), the first 256 KiB of it read ahead at once. */
	struct pager *p = filled_pager("b");
	uint64_t rec;
	struct message *m = get_wait(p, &rec, NULL);
	message_unref(m);
	char path[256];
	snprintf(path, sizeof(path), "%s/b.page", dir);
	int fd = open(path, O_RDWR);
	uint8_t junk[4] = { 0xff, 0xff, 0xff, 0x7f };
	/* The length of entry 300, well past the read-ahead. */
	m = msg(1, 1000);
	off_t entry = (off_t)(12 + msgcodec_size(m));
	message_unref(m);
	ok(fd >= 0 && pwrite(fd, junk, 4, 299 * entry) == 4, "the length of entry 300 overwritten");
	close(fd);
	size_t got = 1;
	while ((m = get_wait(p, &rec, NULL))) {
		got++;
		message_unref(m);
	}
	ok(errno != 0 && errno != EAGAIN && got == 299 && pager_count(p) == 0 && pager_bytes(p) == 0,
	   "entries up to the damage read back, then an error ends the file (%zu read)", got);
	m = msg(1, 10);
	ok(pager_put(p, m, 1) == 0 && pager_count(p) == 1, "the pager takes new entries after it");
	message_unref(m);
	pager_free(p);
}

/* ---- a queue paging through it ------------------------------------------- */

static int qput(void *p, const struct message *m, uint64_t rec) { return pager_put(p, m, rec); }
static struct message *qget(void *p, uint64_t *rec) { return pager_get(p, rec); }
static void qready(void *p, void (*ready)(void *arg), void *arg) { pager_set_ready_cb(p, ready, arg); }
static void qpurge(void *p, void (*each)(void *arg, uint64_t rec), void *arg) { pager_purge(p, each, arg); }
static void qfree(void *p) { pager_free(p); }
static const struct queue_page_ops ops = { qput, qget, qready, qpurge, qfree };

struct sink {
	uint64_t ids[8192];
	int n;
	struct delivery *last;
	bool auto_ack;
};

static int deliver(void *ctx, struct delivery *d, struct message *m)
{
	struct sink *s = ctx;
	if (s->n < 8192)
		s->ids[s->n] = body_id(m);
	s->n++;
	s->last = d;
	return 0;
}

static const struct consumer_ops sink_ops = { .deliver = deliver };

static uint64_t settled[8192];
static int nsettled;
static bool dead_below_100;

static void on_settled(void *arg, uint64_t rec)
{
	(void)arg;
	if (nsettled < 8192)
		settled[nsettled] = rec;
	nsettled++;
}

static bool alive(void *arg, uint64_t rec)
{
	(void)arg;
	return !(dead_below_100 && rec < 100);
}

static void test_queue_paging(void)
{
	struct queue *q = queue_new("paged", 0);
	nsettled = 0;
	queue_set_paging(q, 64 * 1024, &ops, pager_new(io, dir, "q"));
	queue_set_settle_cb(q, on_settled, NULL);
	for (uint64_t i = 1; i <= 2000; i++) {
		struct message *m = msg(i, 1000);
		queue_enqueue_stored(q, m, i);
		message_unref(m);
	}
	ok(queue_depth(q) == 2000 && queue_paged(q) > 1900, "2,000 x 1 KiB over a 64 KiB limit: %zu paged",
	   queue_paged(q));
	struct sink s = { .n = 0 };
	struct consumer_options o = { .auto_ack = true };
	struct consumer *c = queue_consumer_add(q, &o, &sink_ops, &s);
	run_until(base, &s.n, 2000, 10000);
	bool order = s.n == 2000;
	for (int i = 0; i < s.n && i < 2000; i++)
		order &= s.ids[i] == (uint64_t)i + 1;
	ok(order, "a consumer gets all 2,000 in order across memory and file (%d)", s.n);
	ok(nsettled == 2000 && settled[1999] == 2000, "each settled with its record");
	ok(queue_depth(q) == 0 && queue_paged(q) == 0, "nothing left");
	queue_consumer_remove(c);

	/* Purge settles what is paged too. */
	nsettled = 0;
	for (uint64_t i = 1; i <= 500; i++) {
		struct message *m = msg(i, 1000);
		queue_enqueue_stored(q, m, 10000 + i);
		message_unref(m);
	}
	queue_purge(q);
	run_until(base, &nsettled, 500, 5000);
	ok(nsettled == 500 && queue_depth(q) == 0 && queue_stats(q)->dropped == 500,
	   "purge drops and settles memory and file alike");

	/* Messages found dead after they were paged (an ack replayed later)
	 * are dropped when they come back, not settled again. */
	nsettled = 0;
	queue_set_alive_cb(q, alive, NULL);
	for (uint64_t i = 1; i <= 300; i++) {
		struct message *m = msg(i, 1000);
		queue_enqueue_stored(q, m, i);
		message_unref(m);
	}
	dead_below_100 = true;
	queue_drop_dead(q);
	struct sink s2 = { .n = 0 };
	c = queue_consumer_add(q, &o, &sink_ops, &s2);
	run_until(base, &s2.n, 201, 10000);
	order = s2.n == 201;
	for (int i = 0; i < s2.n && i < 201; i++)
		order &= s2.ids[i] == (uint64_t)i + 100;
	ok(order, "records 1-99 dead: 100-300 delivered, in order (%d)", s2.n);
	ok(nsettled == 201, "only the live ones settled (%d)", nsettled);
	queue_consumer_remove(c);
	queue_free(q);
	ok(file_size("q") == -1, "the queue frees its pager and its file");
}

static void test_limits_count_paged(void)
{
	struct queue *q = queue_new("bounded", 0);
	struct queue_limits l = { .max_length = 1000, .overflow = QUEUE_REJECT, .priorities = true };
	queue_set_limits(q, &l);
	queue_set_paging(q, 16 * 1024, &ops, pager_new(io, dir, "r"));
	for (uint64_t i = 1; i <= 1000; i++) {
		struct message *m = msg(i, 1000);
		queue_enqueue(q, m);
		message_unref(m);
	}
	struct message *m = msg(1001, 1000);
	ok(queue_paged(q) > 900 && !queue_accepts(q, m), "max_length counts paged messages");
	message_unref(m);
	queue_free(q);
}

/* Tiny messages cost far more than their bodies: the limit counts what a
 * waiting message costs in memory (message_mem_size and its delivery), so
 * 64 KiB holds a few hundred one-byte messages, not 65,536. */
static void test_limit_counts_whole_messages(void)
{
	struct queue *q = queue_new("tiny", 0);
	queue_set_paging(q, 64 * 1024, &ops, pager_new(io, dir, "t"));
	struct message *m = NULL;
	for (uint64_t i = 1; i <= 5000; i++) {
		message_unref(m);
		m = msg(i, 1);
		message_set(&m->content_type, "text/plain");
		message_add_prop(m, "k", "v", 1);
		queue_enqueue_stored(q, m, i);
	}
	size_t in_memory = queue_depth(q) - queue_paged(q);
	size_t cost = message_mem_size(m);
	ok(cost >= sizeof(*m) + 1 && in_memory * cost <= 64 * 1024 && in_memory * cost > 32 * 1024,
	   "5,000 one-byte messages of %zu bytes each over a 64 KiB limit: %zu in memory", cost,
	   in_memory);
	message_unref(m);
	queue_free(q);
}

/* Two queues each far below their own limit share one past which both
 * page: broker_memory_limit. */
static int rooms;
static void on_room(void *arg)
{
	(void)arg;
	rooms++;
}

static void test_shared_limit(void)
{
	struct mem_account a = { .limit = 64 * 1024, .room = on_room };
	struct queue *q[2];
	for (int k = 0; k < 2; k++) {
		q[k] = queue_new(k ? "shared.b" : "shared.a", 0);
		queue_set_paging(q[k], 1 << 20, &ops, pager_new(io, dir, k ? "sb" : "sa"));
		queue_set_mem_account(q[k], &a);
	}
	for (uint64_t i = 1; i <= 1000; i++) {
		struct message *m = msg(i, 1000);
		queue_enqueue(q[i % 2], m);
		message_unref(m);
	}
	ok(queue_paged(q[0]) > 400 && queue_paged(q[1]) > 400 && a.used <= a.limit && a.over,
	   "1,000 x 1 KiB, 1 MiB limits each, 64 KiB shared: %zu and %zu paged, %zu bytes in memory",
	   queue_paged(q[0]), queue_paged(q[1]), a.used);
	struct consumer_options o = { .auto_ack = true };
	bool order = true;
	for (int k = 0; k < 2; k++) {
		struct sink s = { .n = 0 };
		struct consumer *c = queue_consumer_add(q[k], &o, &sink_ops, &s);
		run_until(base, &s.n, 500, 10000);
		order &= s.n == 500;
		for (int i = 0; i < s.n && i < 500; i++)
			order &= s.ids[i] == (uint64_t)(2 * i + (k ? 1 : 2));
		queue_consumer_remove(c);
	}
	ok(order && !a.over && rooms == 1 && a.used == 0,
	   "both drained in order, under half again, room called once (%d)", rooms);
	for (int k = 0; k < 2; k++)
		queue_free(q[k]);
	ok(a.used == 0, "freed queues give their memory back to the account");
}

/* The entry at the head is in the file and its read has not come back:
 * the get waits, nothing is dropped, and the ready callback says when to
 * try again. */
static void test_read_in_flight(void)
{
	struct pager *p = filled_pager("c");
	uint64_t rec, got = 0;
	struct message *m;
	bool order = true;
	while ((m = pager_get(p, &rec))) {
		order &= body_id(m) == ++got;
		message_unref(m);
	}
	int before = readies;
	ok(errno == EAGAIN && got > 0 && got < 1000 && pager_count(p) == 1000 - got,
	   "a get whose entry is still being read: NULL, EAGAIN, after %llu, nothing dropped",
	   (unsigned long long)got);
	run_until(base, &readies, before + 1, 5000);
	ok(readies == before + 1, "the ready callback runs once the read is back");
	while ((m = get_wait(p, &rec, NULL))) {
		order &= body_id(m) == ++got && rec == got;
		message_unref(m);
	}
	ok(errno == 0 && got == 1000 && order, "then all 1,000 in order (%llu)", (unsigned long long)got);
	pager_free(p);
}

/* Freed with a read and writes at the I/O thread: its jobs are dropped
 * there, and no report comes back for it (ASan watches). */
static void test_free_in_flight(void)
{
	struct pager *p = filled_pager("d");
	struct message *m;
	uint64_t rec;
	while ((m = pager_get(p, &rec)))
		message_unref(m);
	bool queued = errno == EAGAIN;
	for (uint64_t i = 1; i <= 3000; i++) {
		m = msg(i, 1000);
		pager_put(p, m, i);
		message_unref(m);
	}
	int before = readies;
	pager_free(p);
	run_for(200);
	ok(queued && readies == before && file_size("d") == -1,
	   "pager_free with a read and writes in flight: file gone, no report after");

	/* The store closes (the thread stops) before its queues free their
	 * pagers: what is still in memory reads back, the rest waits. */
	struct pageio *io2 = pageio_new(base);
	p = pager_new(io2, dir, "e");
	bool all = true;
	for (uint64_t i = 1; i <= 3000; i++) {
		m = msg(i, 1000);
		all &= pager_put(p, m, i) == 0;
		message_unref(m);
	}
	pageio_free(io2);
	m = pager_get(p, &rec);
	ok(all && m && body_id(m) == 1, "after its pageio stopped, a pager still reads what is in memory");
	message_unref(m);
	pager_free(p);
	ok(file_size("e") == -1, "and frees its jobs and its file after it");
}

/* A purged queue settles what its file held after the queue is gone. */
static void test_purge_then_free(void)
{
	struct queue *q = queue_new("purged", 0);
	queue_set_paging(q, 16 * 1024, &ops, pager_new(io, dir, "f"));
	queue_set_settle_cb(q, on_settled, NULL);
	for (uint64_t i = 1; i <= 1000; i++) {
		struct message *m = msg(i, 1000);
		queue_enqueue_stored(q, m, 5000 + i);
		message_unref(m);
	}
	wait_size("f", 700 * 1000);
	nsettled = 0;
	queue_purge(q);
	int now = nsettled;
	queue_free(q);
	run_until(base, &nsettled, 1000, 5000);
	bool all = nsettled == 1000;
	for (int i = 0; i < nsettled && i < 1000; i++) {
		bool found = false;
		for (int k = 0; k < nsettled && !found; k++)
			found = settled[k] == (uint64_t)5001 + (uint64_t)i;
		all &= found;
	}
	ok(now < 1000 && all, "purge, then free: %d settled at once, all 1,000 once the scan is back", now);
	ok(file_size("f") == -1, "the file is gone");
}

/* Replay fills a queue with the loop stopped: no write reports back
 * meanwhile, so the write buffer grows past the backlog. */
static void test_fill_without_loop(void)
{
	struct queue *q = queue_new("replayed", 0);
	queue_set_paging(q, 256 * 1024, &ops, pager_new(io, dir, "g"));
	for (uint64_t i = 1; i <= 25000; i++) {
		struct message *m = msg(i, 1000);
		queue_enqueue_stored(q, m, i);
		message_unref(m);
	}
	size_t paged = queue_paged(q);
	static struct sink s;
	struct consumer_options o = { .auto_ack = true };
	struct consumer *c = queue_consumer_add(q, &o, &sink_ops, &s);
	run_until(base, &s.n, 25000, 20000);
	bool order = s.n == 25000;
	int first_bad = -1;
	for (int i = 0; i < s.n && i < 8192; i++)
		if (s.ids[i] != (uint64_t)i + 1 && first_bad < 0)
			first_bad = i;
	order &= first_bad < 0;
	ok(order, "25,000 enqueued with the loop stopped (%zu paged) come back in order (%d, first out of order at %d: %llu)",
	   paged, s.n, first_bad, first_bad >= 0 ? (unsigned long long)s.ids[first_bad] : 0ULL);
	queue_consumer_remove(c);
	queue_free(q);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	base = new_base();
	io = pageio_new(base);
	test_pager_alone();
	test_pager_damage();
	test_read_in_flight();
	test_free_in_flight();
	test_purge_then_free();
	test_fill_without_loop();
	test_queue_paging();
	test_limits_count_paged();
	test_limit_counts_whole_messages();
	test_shared_limit();
	pageio_free(io);
	free_base(base);
	rmdir(dir);
	return tap_done();
}
