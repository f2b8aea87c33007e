/* Paging: the page file on its own (order, buffering, read-back of what is
 * still in the write buffer, rewinding, damage), then a queue paging its
 * tail through it (FIFO across memory and file, limits, purge, dead
 * messages dropped as they come back). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "router/queue.h"
#include "store/msgcodec.h"
#include "store/pager.h"
#include "tap.h"

static char dir[] = "/tmp/wharf-pager.XXXXXX";

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
		snprintf((char *)b, body, "%08llu", (unsigned long long)id);
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

static void test_pager_alone(void)
{
	struct pager *p = pager_new(dir, "a");
	ok(p && pager_count(p) == 0 && file_size("a") == -1, "a new pager has no file until the first put");
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
	ok(all && pager_count(p) == 2999 && file_size("a") > 2 * 1024 * 1024,
	   "2,999 waiting, most of them in the file");
	bool order = true;
	for (uint64_t i = 2; i <= 3000; i++) {
		m = pager_get(p, &rec);
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
		m = pager_get(p, &rec);
		order &= m && body_id(m) == i && rec == i * 10 && m->body_len == 500;
		message_unref(m);
	}
	ok(all && order, "every entry back once, in order, intact, also those written while reading");
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
	struct pager *p = pager_new(dir, "b");
	/* 1,000 entries of about 1 KiB: the first ones are in the file (written
	 * in 256 KiB chunks), the first 256 KiB of it read ahead at once. */
	for (uint64_t i = 1; i <= 1000; i++) {
		struct message *m = msg(i, 1000);
		pager_put(p, m, i);
		message_unref(m);
	}
	uint64_t rec;
	struct message *m = pager_get(p, &rec);
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
	while ((m = pager_get(p, &rec))) {
		got++;
		message_unref(m);
	}
	ok(errno != 0 && got == 299 && pager_count(p) == 0 && pager_bytes(p) == 0,
	   "entries up to the damage read back, then an error ends the file (%zu read)", got);
	m = msg(1, 10);
	ok(pager_put(p, m, 1) == 0 && pager_count(p) == 1, "the pager takes new entries after it");
	message_unref(m);
	pager_free(p);
}

/* ---- a queue paging through it ------------------------------------------- */

static int qput(void *p, const struct message *m, uint64_t rec) { return pager_put(p, m, rec); }
static struct message *qget(void *p, uint64_t *rec) { return pager_get(p, rec); }
static void qfree(void *p) { pager_free(p); }
static const struct queue_page_ops ops = { qput, qget, qfree };

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
	queue_set_paging(q, 64 * 1024, &ops, pager_new(dir, "q"));
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
	queue_set_paging(q, 16 * 1024, &ops, pager_new(dir, "r"));
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
	queue_set_paging(q, 64 * 1024, &ops, pager_new(dir, "t"));
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
		queue_set_paging(q[k], 1 << 20, &ops, pager_new(dir, k ? "sb" : "sa"));
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

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_pager_alone();
	test_pager_damage();
	test_queue_paging();
	test_limits_count_paged();
	test_limit_counts_whole_messages();
	test_shared_limit();
	rmdir(dir);
	return tap_done();
}
