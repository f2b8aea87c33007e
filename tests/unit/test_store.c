/* The durable store: the message encoding (msgcodec), the set of live
 * records (liveset), and the store behind a real router: what comes back
 * after a reopen, confirmations (router/confirm.c) in order and only once
 * on disk, run-time bindings, segment release under a steady stream,
 * records that make no sense, and, built with WHARF_JOURNAL_FAULTS, write
 * failures. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "router/confirm.h"
#include "router/router.h"
#include "store/journal.h"
#include "store/liveset.h"
#include "store/msgcodec.h"
#include "store/record.h"
#include "store/store.h"
#include "loop.h"
#include "tap.h"

/* ---- helpers --------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
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
	snprintf(tmpl, sizeof(tmpl), "%s/wharf-store.XXXXXX", t && *t ? t : "/tmp");
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

/* Files in dir/journal but the lock: segments and released stand-ins. */
static int journal_files(const char *dir, int *segments)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/journal", dir);
	DIR *d = opendir(path);
	int n = 0, segs = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "lock"))
			continue;
		n++;
		size_t len = strlen(e->d_name);
		segs += len > 3 && !strcmp(e->d_name + len - 3, ".wj");
	}
	if (d)
		closedir(d);
	if (segments)
		*segments = segs;
	return n;
}

/* Whether `needle` appears in some segment file: a record is there once
 * the journal has written it. */
static bool on_disk(const char *dir, const char *needle)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/journal", dir);
	DIR *d = opendir(path);
	bool found = false;
	struct dirent *e;
	while (d && !found && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 4 || strcmp(e->d_name + len - 3, ".wj"))
			continue;
		snprintf(path, sizeof(path), "%s/journal/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		static char buf[1 << 16];
		size_t n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		found = memmem(buf, n, needle, strlen(needle)) != NULL;
	}
	if (d)
		closedir(d);
	return found;
}

/* Runs the loop until every record appended so far has had its done. */
static void run_written(struct event_base *b, struct store *s)
{
	struct journal_stats st;
	int64_t end = now_ms() + 10000;
	for (;;) {
		journal_stats(store_journal(s), &st);
		if (!st.pending || now_ms() > end)
			return;
		event_base_loop(b, EVLOOP_ONCE);
	}
}

/* A store looping forever shows up as a timeout, not a hung `make check`. */
static const char *phase = "start";

static void on_alarm(int sig)
{
	(void)sig;
	char line[200];
	int n = snprintf(line, sizeof(line), "not ok %d - timed out in %s\n1..%d\n", tap_n + 1, phase,
			 tap_n + 1);
	if (write(1, line, (size_t)n) < 0)
		_exit(2);
	_exit(1);
}

/* Each part gets a few seconds: a runaway loop in the store also eats
 * memory fast. */
static void begin(const char *name)
{
	phase = name;
	alarm(8);
}

static char errbuf[512];

/* One broker's worth: a loop, a router and its store on `dir`. */
struct rig {
	struct event_base *base;
	struct router *r;
	struct store *s;
	const char *dir;
};

static struct store_options store_opts(const char *dir, enum journal_sync sync)
{
	struct store_options o = { .dir = dir, .sync = sync, .on_corruption = JOURNAL_QUARANTINE };
	return o;
}

/* Where a roll to a new segment takes microseconds, so that the writer
 * thread starts segments while the store is still busy on the loop thread. */
static char *new_fast_dir(void)
{
	struct stat sb;
	if (getenv("TMPDIR") || stat("/dev/shm", &sb) < 0 || !S_ISDIR(sb.st_mode))
		return new_dir();
	char tmpl[] = "/dev/shm/wharf-store.XXXXXX";
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : new_dir();
}

/* A part of the test begins: a fresh directory and options for it. */
static char *start(const char *name, struct store_options *o, enum journal_sync sync,
		   size_t segment_size, bool fast)
{
	begin(name);
	char *dir = fast ? new_fast_dir() : new_dir();
	*o = store_opts(dir, sync);
	o->segment_size = segment_size;
	return dir;
}

static void finish(char *dir)
{
	rm_rf(dir);
	free(dir);
}

static int rig_open(struct rig *g, struct event_base *base, const struct store_options *o)
{
	struct router_options ro = { .topic_max_pending = 1000 };
	g->base = base;
	g->dir = o->dir;
	g->r = router_new(&ro);
	g->s = NULL;
	if (store_open(base, o, g->r, &g->s, errbuf, sizeof(errbuf)) < 0) {
		router_free(g->r);
		g->r = NULL;
		return -1;
	}
	return 0;
}

static void rig_close(struct rig *g)
{
	store_close(g->s);
	router_free(g->r);
	g->s = NULL;
	g->r = NULL;
}

static struct store_stats stats_of(const struct rig *g)
{
	struct store_stats st;
	store_stats(g->s, &st);
	return st;
}

/* ---- messages -------------------------------------------------------------- */

#define FAR_FUTURE_MS 4102444800000LL /* 2100-01-01 */

static int body_of(int i, char *out, size_t n)
{
	return snprintf(out, n, "body-%05d", i);
}

/* Message i: every header set, some bytes no text protocol would allow. */
static struct message *make_msg(int i, bool durable)
{
	struct message *m = message_new();
	char text[32], corr[16] = "c\0r";
	int n = body_of(i, text, sizeof(text));
	uint8_t *body = malloc((size_t)n);
	memcpy(body, text, (size_t)n);
	message_take_body(m, &body, (size_t)n);
	memcpy(corr + 3, &i, sizeof(i));
	m->durable = durable;
	m->qos = durable ? 1 : 0;
	m->priority = 7;
	m->payload_format = 1;
	m->expiry_ms = FAR_FUTURE_MS;
	if (message_set(&m->content_type, "text/plain") < 0 ||
	    message_set_bytes(&m->correlation_id, &m->correlation_id_len, corr, 3 + sizeof(i)) < 0 ||
	    message_set(&m->reply_to, "queue://replies") < 0 ||
	    message_add_prop(m, "bin", "v\0\xff", 3) < 0 || message_add_prop(m, "idx", text, (size_t)n) < 0)
		abort();
	return m;
}

/* The i make_msg() was given, from the body. */
static int msg_index(const struct message *m)
{
	char text[32];
	size_t n = m->body_len < sizeof(text) - 1 ? m->body_len : sizeof(text) - 1;
	memcpy(text, m->body, n);
	text[n] = '\0';
	return n > 5 ? atoi(text + 5) : -1;
}

/* Whether m is message i as make_msg() built it, published to `dest`. */
static bool is_msg(const struct message *m, int i, const char *dest)
{
	struct message *w = make_msg(i, true);
	bool same = m->body_len == w->body_len && !memcmp(m->body, w->body, w->body_len) &&
		    m->durable && m->qos == 1 && m->priority == w->priority && m->payload_format == 1 &&
		    m->expiry_ms == FAR_FUTURE_MS && m->timestamp_ms > 0 &&
		    !strcmp(m->dest, dest) && !strcmp(m->content_type, "text/plain") &&
		    m->correlation_id_len == w->correlation_id_len &&
		    !memcmp(m->correlation_id, w->correlation_id, w->correlation_id_len) &&
		    !strcmp(m->reply_to, "queue://replies") && m->nprops == 2 && !m->amqp;
	for (size_t k = 0; same && k < 2; k++)
		same = !strcmp(m->props[k].name, w->props[k].name) &&
		       m->props[k].value_len == w->props[k].value_len &&
		       !memcmp(m->props[k].value, w->props[k].value, w->props[k].value_len);
	message_unref(w);
	return same;
}

static enum router_err publish(struct router *r, enum dest_kind kind, const char *name, int i,
			       bool durable)
{
	struct message *m = make_msg(i, durable);
	return router_publish(r, kind, name, &m, NULL);
}

/* ---- consumers ------------------------------------------------------------- */

#define SINK_MAX 8192

/* Records each delivery and keeps a reference to its message. */
struct sink {
	int n, acked;
	struct delivery *ds[SINK_MAX];
	struct message *ms[SINK_MAX];
	struct subscription *sub;
};

static int sink_deliver(void *ctx, struct delivery *d, struct message *m)
{
	struct sink *k = ctx;
	if (k->n == SINK_MAX)
		return -1;
	k->ds[k->n] = d;
	k->ms[k->n++] = message_ref(m);
	return 0;
}

static const struct consumer_ops sink_ops = { .deliver = sink_deliver };

static bool sink_on(struct sink *k, struct router *r, const char *queue)
{
	struct subscribe_options so = { 0 };
	enum router_err err;
	memset(k, 0, sizeof(*k));
	k->sub = router_subscribe(r, DEST_QUEUE, queue, &so, &sink_ops, k, &err);
	return k->sub != NULL;
}

/* Acks every delivery not acked yet: outside deliver, as adapters do. */
static void sink_ack_all(struct sink *k)
{
	for (; k->acked < k->n; k->acked++)
		delivery_ack(k->ds[k->acked], false);
}

static void sink_off(struct sink *k, struct router *r)
{
	if (k->sub)
		router_unsubscribe(r, k->sub);
	for (int i = 0; i < k->n; i++)
		message_unref(k->ms[i]);
	k->sub = NULL;
	k->n = k->acked = 0;
}

static struct sink sink1, sink2;

/* Whether the queue hands out exactly messages want[0..n) in order, intact,
 * published to `dest` (NULL: the queue itself). */
static bool queue_holds(struct router *r, const char *queue, const char *dest, const int *want, int n)
{
	struct sink *k = &sink2;
	if (!sink_on(k, r, queue))
		return n == 0 && !router_find_queue(r, queue);
	bool good = k->n == n;
	for (int i = 0; good && i < n; i++)
		good = is_msg(k->ms[i], want[i], dest ? dest : queue);
	if (!good) {
		printf("# %s: %d messages:", queue, k->n);
		for (int i = 0; i < k->n && i < 20; i++)
			printf(" %.*s", (int)k->ms[i]->body_len, (const char *)k->ms[i]->body);
		printf("\n");
	}
	sink_off(k, r);
	return good;
}

/* ---- msgcodec -------------------------------------------------------------- */

static struct message *full_msg(void)
{
	struct message *m = make_msg(7, true);
	static const uint8_t amqp[] = { 0x00, 0x53, 0x75, 0xa0, 0x03, 0, 'x', 0 };
	m->retain = true;
	m->qos = 2;
	m->priority = 9;
	m->timestamp_ms = -5;
	m->expiry_ms = INT64_MAX;
	m->dest_kind = DEST_TOPIC;
	m->origin = 99;
	if (message_set(&m->dest, "a.b.c") < 0 ||
	    message_set_bytes((char **)&m->amqp, &m->amqp_len, amqp, sizeof(amqp)) < 0 ||
	    message_add_prop(m, "empty", "", 0) < 0)
		abort();
	return m;
}

static uint8_t *encode(const struct message *m, size_t *n)
{
	*n = msgcodec_size(m);
	uint8_t *p = malloc(*n);
	ok(msgcodec_write(p, m) == p + *n, "msgcodec_write writes msgcodec_size bytes");
	return p;
}

static bool same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	return (!a && !b) || (a && b && alen == blen && !memcmp(a, b, alen));
}

static bool same_msg(const struct message *a, const struct message *b)
{
	bool same = a->durable == b->durable && a->retain == b->retain && a->qos == b->qos &&
		    a->priority == b->priority && a->payload_format == b->payload_format &&
		    a->dest_kind == b->dest_kind && a->timestamp_ms == b->timestamp_ms &&
		    a->expiry_ms == b->expiry_ms &&
		    same_bytes(a->dest, a->dest ? strlen(a->dest) : 0, b->dest, b->dest ? strlen(b->dest) : 0) &&
		    same_bytes(a->content_type, a->content_type ? strlen(a->content_type) : 0,
			       b->content_type, b->content_type ? strlen(b->content_type) : 0) &&
		    same_bytes(a->correlation_id, a->correlation_id_len, b->correlation_id,
			       b->correlation_id_len) &&
		    same_bytes(a->reply_to, a->reply_to ? strlen(a->reply_to) : 0, b->reply_to,
			       b->reply_to ? strlen(b->reply_to) : 0) &&
		    same_bytes((const char *)a->body, a->body_len, (const char *)b->body, b->body_len) &&
		    same_bytes((const char *)a->amqp, a->amqp_len, (const char *)b->amqp, b->amqp_len) &&
		    a->nprops == b->nprops;
	for (size_t i = 0; same && i < a->nprops; i++)
		same = !strcmp(a->props[i].name, b->props[i].name) &&
		       same_bytes(a->props[i].value, a->props[i].value_len, b->props[i].value,
				  b->props[i].value_len);
	return same;
}

/* Reads p[0..n) from a buffer of exactly n bytes, so ASan sees overreads.
 * An accepted input must encode back to the same bytes. */
static struct message *read_exact(const uint8_t *p, size_t n, const char **why, bool *canonical)
{
	uint8_t *copy = malloc(n ? n : 1);
	memcpy(copy, p, n);
	*why = NULL;
	struct message *m = msgcodec_read(copy, n, why);
	if (m && canonical) {
		size_t len = msgcodec_size(m);
		uint8_t *again = malloc(len);
		msgcodec_write(again, m);
		*canonical = len == n && !memcmp(again, copy, n);
		free(again);
	}
	free(copy);
	return m;
}

/* An AMQP message whose body is the last data section: the body is written
 * once, as the tail of the AMQP bytes, and comes back whole. */
static void test_msgcodec_body_in_amqp(void)
{
	struct message *m = message_new();
	uint8_t raw[300];
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i * 7);
	uint8_t *body = malloc(200);
	memcpy(body, raw + 100, 200);
	if (message_set(&m->dest, "q") < 0 ||
	    message_set_bytes((char **)&m->amqp, &m->amqp_len, raw, sizeof(raw)) < 0)
		abort();
	message_take_body(m, &body, 200);
	size_t n;
	uint8_t *p = encode(m, &n);
	ok(n < 300 + 200, "the body is not written twice (%zu bytes)", n);
	const char *why;
	bool canonical = false;
	struct message *back = read_exact(p, n, &why, &canonical);
	ok(back && same_msg(m, back) && canonical, "it comes back whole: %s", back ? "" : why);
	message_unref(back);
	/* The same body written out in full as well is refused: one encoding
	 * per message. */
	p[1] &= (uint8_t)~4u;
	uint8_t *twice = malloc(n + 200);
	size_t body_at = n - 4 - 300 - 4; /* its length field, after the body's */
	memcpy(twice, p, body_at + 4);
	memcpy(twice + body_at + 4, raw + 100, 200);
	memcpy(twice + body_at + 4 + 200, p + body_at + 4, n - body_at - 4);
	back = read_exact(twice, n + 200, &why, NULL);
	ok(!back && why && strstr(why, "twice"), "a body stored twice is refused: %s", why ? why : "(accepted)");
	message_unref(back);
	free(twice);
	free(p);
	message_unref(m);
}

static void test_msgcodec_round_trip(void)
{
	struct message *m = full_msg();
	size_t n;
	uint8_t *p = encode(m, &n);
	const char *why;
	bool canonical = false;
	struct message *back = read_exact(p, n, &why, &canonical);
	ok(back && same_msg(m, back), "every field survives the round trip (why: %s)", why ? why : "-");
	ok(back && back->refs == 1 && back->id == 0 && back->origin == 0,
	   "a read message has one reference, id 0 and no origin");
	ok(back && back->correlation_id[back->correlation_id_len] == '\0' &&
	   back->body[back->body_len] == '\0', "byte fields come back NUL-terminated");
	ok(canonical, "and encodes to the same bytes");
	message_unref(back);

	bool all_fail = true, all_why = true;
	for (size_t len = 0; len < n; len++) {
		struct message *t = read_exact(p, len, &why, NULL);
		all_fail &= t == NULL;
		all_why &= why != NULL;
		message_unref(t);
	}
	ok(all_fail, "every truncation of a %zu-byte encoding is refused", n);
	ok(all_why, "each with a reason");
	uint8_t *longer = calloc(1, n + 1);
	memcpy(longer, p, n);
	back = read_exact(longer, n + 1, &why, NULL);
	ok(!back && why && strstr(why, "after"), "a byte past the end is refused (%s)", why ? why : "-");
	free(longer);
	free(p);
	message_unref(m);

	/* Absent fields stay absent; present but empty ones stay present. */
	m = message_new();
	message_set(&m->dest, "q");
	p = encode(m, &n);
	back = read_exact(p, n, &why, &canonical);
	ok(back && !back->content_type && !back->correlation_id && !back->reply_to && !back->body &&
	   !back->amqp && !back->props && back->nprops == 0 && canonical,
	   "a message with only a destination: every other field absent");
	ok(back && back->priority == MESSAGE_DEFAULT_PRIORITY && !back->durable,
	   "defaults kept (priority %d)", back ? back->priority : -1);
	message_unref(back);
	free(p);
	uint8_t *empty = malloc(1);
	message_take_body(m, &empty, 0);
	message_set(&m->content_type, "");
	p = encode(m, &n);
	back = read_exact(p, n, &why, &canonical);
	ok(back && back->body && back->body_len == 0 && back->content_type &&
	   !*back->content_type && canonical, "an empty body and header are not absent ones");
	message_unref(back);
	free(p);
	message_unref(m);
}

/* Offsets into the encoding of the message with only dest "q". */
#define OFF_DEST 22

static void test_msgcodec_garbled(void)
{
	struct message *m = message_new();
	message_set(&m->dest, "q");
	size_t n;
	uint8_t *good = encode(m, &n);
	message_unref(m);
	uint8_t *p = malloc(n);
	const char *why;
	static const struct {
		size_t off;
		uint8_t val;
		const char *what;
	} cases[] = {
		{ 0, 2, "version 2" },
		{ 1, 8, "unknown flag" },
		{ 2, 3, "qos 3" },
		{ 3, 10, "priority 10" },
		{ 4, 2, "payload format 2" },
		{ 5, 2, "destination kind 2" },
		{ OFF_DEST + 4, 0, "NUL in the destination" },
		{ OFF_DEST, 0xff, "destination length past the end" },
		{ OFF_DEST + 5 + 12, 0xff, "property count past the end" },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		memcpy(p, good, n);
		p[cases[c].off] = cases[c].val;
		struct message *t = read_exact(p, n, &why, NULL);
		ok(!t && why, "%s refused (%s)", cases[c].what, why ? why : "-");
		message_unref(t);
	}
	memcpy(p, good, n);
	memset(p + OFF_DEST, 0xff, 4);
	struct message *t = read_exact(p, n - 1, &why, NULL);
	ok(!t && why && strstr(why, "destination"), "an absent destination refused (%s)",
	   why ? why : "-");
	message_unref(t);
	free(p);

	/* A property with an absent value, and one whose name holds a NUL. */
	m = message_new();
	message_set(&m->dest, "q");
	message_add_prop(m, "ab", "v", 1);
	uint8_t *withprop = encode(m, &n);
	message_unref(m);
	size_t name_at = OFF_DEST + 5 + 16 + 4;
	p = malloc(n);
	memcpy(p, withprop, n);
	p[name_at + 1] = '\0';
	t = read_exact(p, n, &why, NULL);
	ok(!t && why, "a NUL in a property name refused (%s)", why ? why : "-");
	message_unref(t);
	memcpy(p, withprop, n);
	memset(p + name_at + 2, 0xff, 4);
	memmove(p + name_at + 6, p + name_at + 7, n - name_at - 7);
	t = read_exact(p, n - 1, &why, NULL);
	ok(!t && why, "a property without a value refused (%s)", why ? why : "-");
	message_unref(t);
	free(p);
	free(withprop);

	/* Every single-byte change of a full encoding: refused, or accepted
	 * and canonical; never a crash or an overread. */
	m = full_msg();
	free(good);
	good = encode(m, &n);
	message_unref(m);
	p = malloc(n);
	bool all_canonical = true;
	int accepted = 0;
	static const uint8_t vals[] = { 0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff };
	for (size_t off = 0; off < n; off++)
		for (size_t v = 0; v < sizeof(vals); v++) {
			memcpy(p, good, n);
			if (p[off] == vals[v])
				continue;
			p[off] = vals[v];
			bool canonical = false;
			t = read_exact(p, n, &why, &canonical);
			if (t) {
				accepted++;
				all_canonical &= canonical;
			} else if (!why) {
				all_canonical = false;
			}
			message_unref(t);
		}
	ok(all_canonical && accepted > 0,
	   "every byte of a full encoding changed six ways: refused with a reason, or re-encoded the same "
	   "(%d accepted)", accepted);
	free(p);
	free(good);
}

/* ---- liveset --------------------------------------------------------------- */

static uint64_t rnd_state = 88172645463325252ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

#define LS_SPAN 20000

/* The model: a flag per seq below LS_SPAN. */
struct model {
	bool live[LS_SPAN];
	uint64_t count, next, low;
};

static uint64_t model_low(struct model *md)
{
	while (md->low < md->next && !md->live[md->low])
		md->low++;
	return md->low;
}

/* Window words the set holds beyond what its oldest and newest live
 * records need: trimming keeps this at zero. */
static bool tight(const struct liveset *s, const struct model *md)
{
	if (!md->count)
		return s->n == 0;
	uint64_t first_word = model_low((struct model *)md) / 64, last_word = (md->next - 1) / 64;
	return s->base == first_word * 64 && s->n <= last_word - first_word + 1;
}

static void test_liveset(void)
{
	struct liveset s = LIVESET_INIT;
	ok(liveset_low(&s, 42) == 42, "empty: low is the journal's next number");
	liveset_del(&s, 7);
	ok(s.live == 0 && s.n == 0, "deleting from an empty set does nothing");

	static struct model md;
	memset(&md, 0, sizeof(md));
	md.next = md.low = 1;
	bool agree = true, is_tight = true, wrapped = false, grew_wrapped = false;
	size_t max_cap = 0;
	/* Phases: a window of ~600 records sliding (the ring wraps), then one
	 * of ~4000 (it grows while wrapped), then everything dies. */
	for (int step = 0; md.next < LS_SPAN - 10 || md.count; step++) {
		uint64_t window = md.next < 6000 ? 600 : md.next < 14000 ? 4000 : 0;
		bool adding = md.next < LS_SPAN - 10 && (md.count < window || rnd() % 4 == 0);
		if (adding) {
			uint64_t seq = md.next + (rnd() % 8 == 0 ? rnd() % 5 : 0);
			size_t cap = s.cap;
			bool was_wrapped = s.n && s.head + s.n > s.cap;
			agree &= liveset_add(&s, seq) == 0;
			md.live[seq] = true;
			md.count++;
			md.next = seq + 1;
			grew_wrapped |= was_wrapped && s.cap > cap;
		} else {
			/* Mostly the oldest few, sometimes any live one, sometimes one
			 * that is dead or was never added. */
			uint64_t lo = model_low(&md);
			uint64_t seq = rnd() % 5 == 0 ? lo + rnd() % (md.next - lo)
						      : lo + rnd() % (md.count < 8 ? 1 : 8);
			if (rnd() % 10 == 0)
				seq = rnd() % md.next;
			if (md.live[seq]) {
				md.live[seq] = false;
				md.count--;
			}
			liveset_del(&s, seq);
		}
		wrapped |= s.n && s.head + s.n > s.cap;
		max_cap = s.cap > max_cap ? s.cap : max_cap;
		agree &= s.live == md.count && liveset_low(&s, md.next) == model_low(&md);
		is_tight &= tight(&s, &md);
		if (!agree || !is_tight) {
			printf("# step %d: live %llu/%llu low %llu/%llu base %llu n %zu\n", step,
			       (unsigned long long)s.live, (unsigned long long)md.count,
			       (unsigned long long)liveset_low(&s, md.next),
			       (unsigned long long)model_low(&md), (unsigned long long)s.base, s.n);
			break;
		}
	}
	ok(agree, "liveset agrees with a model over %llu records: live count and low",
	   (unsigned long long)md.next);
	ok(is_tight, "leading dead words are trimmed at once: base follows the oldest live record");
	ok(wrapped, "the ring wrapped around");
	ok(grew_wrapped, "and grew while wrapped");
	ok(max_cap <= 128, "memory follows the window, not the history (%zu words at most)", max_cap);
	ok(s.n == 0 && liveset_low(&s, md.next) == md.next, "all dead: empty, low is next");

	/* After emptying, a far higher number starts a fresh window. */
	ok(liveset_add(&s, 1000000007) == 0 && s.n == 1 && liveset_low(&s, 1000000008) == 1000000007,
	   "a fresh window far above the old one takes one word");
	liveset_del(&s, 1000000006);
	liveset_del(&s, 999);
	ok(s.live == 1, "numbers never added are ignored");
	liveset_del(&s, 1000000007);
	liveset_del(&s, 1000000007);
	ok(s.live == 0 && s.n == 0, "deleting twice is harmless");
	liveset_free(&s);
	ok(s.words == NULL && s.cap == 0, "freed");
}

/* ---- the store through a router -------------------------------------------- */

static void test_restart(struct event_base *base)
{
	struct store_options o;
	char *dir = start("restart", &o, JOURNAL_SYNC_ALWAYS, 0, false);
	struct rig g;
	ok(rig_open(&g, base, &o) == 0, "store_open on an empty directory (%s)", errbuf);
	ok(router_bind(g.r, "rt.*", "rq.bound") == ROUTER_OK, "bound a queue to a topic");
	/* 0-19 durable to rq.a, with non-durable ones between; 100-104 to a
	 * topic with a bound queue; 200-202 to rq.b. */
	bool published = true;
	for (int i = 0; i < 20; i++) {
		published &= publish(g.r, DEST_QUEUE, "rq.a", i, true) == ROUTER_OK;
		published &= publish(g.r, DEST_QUEUE, "rq.a", 1000 + i, false) == ROUTER_OK;
	}
	for (int i = 100; i < 105; i++)
		published &= publish(g.r, DEST_TOPIC, "rt.x", i, true) == ROUTER_OK;
	for (int i = 200; i < 203; i++)
		published &= publish(g.r, DEST_QUEUE, "rq.b", i, true) == ROUTER_OK;
	ok(published, "published");
	ok(stats_of(&g).messages == 28, "28 durable messages stored (%llu)",
	   (unsigned long long)stats_of(&g).messages);

	/* A consumer of rq.a takes all 40, acks 0-5 and the non-durable ones,
	 * gives 6 back and leaves 7-19 unacked: 6-19 come back. */
	ok(sink_on(&sink1, g.r, "rq.a") && sink1.n == 40, "consumer got 40 (%d)", sink1.n);
	for (int k = 0; k < sink1.n; k++) {
		int idx = msg_index(sink1.ms[k]);
		if (idx >= 1000 || idx < 6)
			delivery_ack(sink1.ds[k], false);
		else if (idx == 6)
			delivery_nack(sink1.ds[k], NACK_RELEASE);
	}
	ok(stats_of(&g).messages == 22, "6 settled, 22 left (%llu)",
	   (unsigned long long)stats_of(&g).messages);
	/* rq.b: 200 is acked by a consumer that stays until the store closes. */
	ok(sink_on(&sink2, g.r, "rq.b") && sink2.n == 3, "rq.b consumer got 3");
	for (int k = 0; k < sink2.n; k++)
		if (msg_index(sink2.ms[k]) == 200)
			delivery_ack(sink2.ds[k], false);
	event_base_loop(base, EVLOOP_NONBLOCK);
	sink_off(&sink1, g.r);
	store_close(g.s);
	g.s = NULL;
	sink_off(&sink2, g.r);
	router_free(g.r);

	ok(rig_open(&g, base, &o) == 0, "reopened (%s)", errbuf);
	struct store_stats st = stats_of(&g);
	ok(st.restored == 21 && st.messages == 21 && st.bindings == 1 && st.bad_records == 0,
	   "21 restored and the binding (restored %llu, bindings %llu)",
	   (unsigned long long)st.restored, (unsigned long long)st.bindings);
	int want_a[14], want_t[5] = { 100, 101, 102, 103, 104 }, want_b[2] = { 201, 202 };
	for (int i = 0; i < 14; i++)
		want_a[i] = 6 + i;
	ok(queue_holds(g.r, "rq.a", NULL, want_a, 14), "rq.a: exactly the unacked 6-19, in order, intact");
	ok(queue_holds(g.r, "rq.bound", "rt.x", want_t, 5), "rq.bound: the topic's durable messages, intact");
	ok(queue_holds(g.r, "rq.b", NULL, want_b, 2), "rq.b: 201 and 202, in order");
	rig_close(&g);

	/* The consumers above took nothing for good: a third open sees all
	 * of it again. */
	ok(rig_open(&g, base, &o) == 0 && stats_of(&g).restored == 21, "a third open: 21 again");
	rig_close(&g);
	finish(dir);
}

/* ---- confirmations --------------------------------------------------------- */

#define NPUB 64

struct pubs {
	const char *dir;
	int n;
	int tags[NPUB];
	enum router_err errs[NPUB];
	int not_on_disk;
};

static void released(void *ctx, struct confirm *e)
{
	struct pubs *p = ctx;
	if (e->text && e->err == ROUTER_OK && !on_disk(p->dir, e->text))
		p->not_on_disk++;
	if (p->n < NPUB) {
		p->tags[p->n] = (int)e->tag;
		p->errs[p->n] = e->err;
	}
	p->n++;
}

/* Publishes message i through q as entry `tag`. Entries that should end up
 * in the store remember their body so that the release callback can look
 * for it on disk. */
static enum router_err cpub(struct confirm_queue *q, int tag, enum dest_kind kind, const char *name,
			    int i, bool durable, bool stored)
{
	struct confirm *e = confirmq_push(q);
	char body[32];
	body_of(i, body, sizeof(body));
	e->tag = (uint64_t)tag;
	e->text = stored ? strdup(body) : NULL;
	struct message *m = make_msg(i, durable);
	return confirmq_publish(q, e, kind, name, &m, NULL);
}

static int raw_calls;

static void raw_done(struct router_confirm *c, enum router_err err)
{
	(void)c;
	(void)err;
	raw_calls++;
}

static void test_confirm(struct event_base *base)
{
	struct store_options o;
	char *dir = start("confirm", &o, JOURNAL_SYNC_ALWAYS, 0, false);
	struct rig g;
	ok(rig_open(&g, base, &o) == 0, "store open (%s)", errbuf);
	router_bind(g.r, "ct.*", "cq.two");
	router_bind(g.r, "ct.y", "cq.three");
	struct pubs p = { .dir = dir };
	struct confirm_queue q;
	confirmq_init(&q, g.r, released, &p);
	enum router_err r[7];
	r[0] = cpub(&q, 0, DEST_QUEUE, "cq.one", 300, true, true);
	r[1] = cpub(&q, 1, DEST_QUEUE, "cq.one", 301, false, false);
	r[2] = cpub(&q, 2, DEST_QUEUE, "bad.*", 302, true, false);
	r[3] = cpub(&q, 3, DEST_TOPIC, "ct.x", 303, true, true);
	r[4] = cpub(&q, 4, DEST_TOPIC, "ct.y", 304, true, true);  /* two queues, one confirmation */
	r[5] = cpub(&q, 5, DEST_TOPIC, "cz.none", 305, true, false); /* no named queue: nothing stored */
	r[6] = cpub(&q, 6, DEST_QUEUE, "cq.one", 306, true, true);
	ok(r[0] == ROUTER_PENDING && r[1] == ROUTER_OK && r[2] == ROUTER_EINVAL &&
	   r[3] == ROUTER_PENDING && r[4] == ROUTER_PENDING && r[5] == ROUTER_OK &&
	   r[6] == ROUTER_PENDING, "durable publishes to named queues pend, the rest are final");
	ok(p.n == 0, "nothing released before the loop runs: finals wait behind the first");
	run_until(base, &p.n, 7, 10000);
	bool in_order = p.n == 7;
	for (int i = 0; in_order && i < 7; i++)
		in_order = p.tags[i] == i;
	ok(in_order, "all 7 released, in publish order (%d)", p.n);
	ok(p.errs[0] == ROUTER_OK && p.errs[1] == ROUTER_OK && p.errs[2] == ROUTER_EINVAL &&
	   p.errs[3] == ROUTER_OK && p.errs[4] == ROUTER_OK && p.errs[5] == ROUTER_OK &&
	   p.errs[6] == ROUTER_OK, "with their outcomes");
	ok(p.not_on_disk == 0, "each durable one only once its record was in a segment file");
	ok(confirmq_empty(&q), "queue empty");

	/* A publisher gone before the disk answered hears nothing. */
	struct router_confirm rc = { .done = raw_done };
	struct message *m = make_msg(310, true);
	struct publish_ctx pc = { .confirm = &rc };
	ok(router_publish(g.r, DEST_QUEUE, "cq.one", &m, &pc) == ROUTER_PENDING &&
	   rc.pending, "raw confirmed publish pends");
	router_confirm_cancel(g.r, &rc);
	ok(!rc.pending, "cancel clears pending");
	int before = p.n;
	cpub(&q, 10, DEST_QUEUE, "cq.one", 311, true, true);
	cpub(&q, 11, DEST_QUEUE, "cq.one", 312, false, false);
	cpub(&q, 12, DEST_QUEUE, "cq.one", 313, true, true);
	confirmq_clear(&q);
	run_written(base, g.s);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ok(raw_calls == 0 && p.n == before, "cancelled confirmations never fire (%d, %d)", raw_calls,
	   p.n - before);

	/* Confirms still pending when the store closes are answered then. */
	confirmq_init(&q, g.r, released, &p);
	cpub(&q, 20, DEST_QUEUE, "cq.one", 320, true, true);
	cpub(&q, 21, DEST_QUEUE, "cq.one", 321, true, true);
	before = p.n;
	store_close(g.s);
	g.s = NULL;
	ok(p.n == before + 2 && p.tags[before] == 20 && p.errs[before] == ROUTER_OK &&
	   p.errs[before + 1] == ROUTER_OK, "store_close answers the waiting publishers, in order");
	confirmq_clear(&q);
	router_free(g.r);

	ok(rig_open(&g, base, &o) == 0, "reopened");
	int want_one[] = { 300, 306, 310, 311, 313, 320, 321 };
	int want_three[] = { 304 };
	ok(queue_holds(g.r, "cq.one", NULL, want_one, 7),
	   "cancelled publishes are still stored: only the answer is dropped");
	ok(queue_holds(g.r, "cq.three", "ct.y", want_three, 1), "a message for two queues in both");
	rig_close(&g);
	finish(dir);
}

/* ---- bindings -------------------------------------------------------------- */

static size_t depth(struct router *r, const char *queue)
{
	struct queue *q = router_find_queue(r, queue);
	return q ? queue_depth(q) : 0;
}

static void test_bindings(struct event_base *base)
{
	struct store_options o;
	char *dir = start("bindings", &o, JOURNAL_SYNC_ALWAYS, 0, false);
	struct rig g;
	ok(rig_open(&g, base, &o) == 0, "store open");
	ok(router_bind(g.r, "bt.a", "bq.one") == ROUTER_OK && router_bind(g.r, "bt.*", "bq.two") == ROUTER_OK &&
	   router_bind(g.r, "bt.b", "bq.two") == ROUTER_OK && router_bind(g.r, "bt.a", "bq.one") == ROUTER_OK,
	   "three bindings made, one twice");
	ok(stats_of(&g).bindings == 3, "three kept (%llu)", (unsigned long long)stats_of(&g).bindings);
	rig_close(&g);

	ok(rig_open(&g, base, &o) == 0 && stats_of(&g).bindings == 3, "reopened: three bindings");
	publish(g.r, DEST_TOPIC, "bt.a", 1, true);
	ok(depth(g.r, "bq.one") == 1 && depth(g.r, "bq.two") == 1, "bt.a reaches both queues");
	ok(router_unbind(g.r, "bt.*", "bq.two") == ROUTER_OK && stats_of(&g).bindings == 2,
	   "unbound one: two kept");
	ok(router_unbind(g.r, "bt.*", "bq.two") == ROUTER_ENOTFOUND, "unbinding again: not found");
	rig_close(&g);

	ok(rig_open(&g, base, &o) == 0 && stats_of(&g).bindings == 2, "reopened: two bindings");
	publish(g.r, DEST_TOPIC, "bt.c", 2, false);
	ok(depth(g.r, "bq.two") == 1, "bt.c no longer reaches bq.two");
	publish(g.r, DEST_TOPIC, "bt.b", 3, false);
	ok(depth(g.r, "bq.two") == 2 && depth(g.r, "bq.one") == 1, "bt.b still does");
	ok(router_unbind(g.r, "bt.a", "bq.one") == ROUTER_OK &&
	   router_unbind(g.r, "bt.b", "bq.two") == ROUTER_OK, "unbound the rest");
	router_bind(g.r, "bt.a", "bq.one");
	router_unbind(g.r, "bt.a", "bq.one");
	rig_close(&g);

	ok(rig_open(&g, base, &o) == 0 && stats_of(&g).bindings == 0, "reopened: none left");
	int want[] = { 1 };
	ok(queue_holds(g.r, "bq.one", "bt.a", want, 1) && queue_holds(g.r, "bq.two", "bt.a", want, 1),
	   "the durable message outlived the bindings that routed it");
	rig_close(&g);
	finish(dir);
}

/* Many bindings in old segments at open: each is written again at most
 * once, and the old segments go. */
static void test_many_bindings(struct event_base *base)
{
	struct store_options o;
	char *dir = start("many bindings", &o, JOURNAL_SYNC_NEVER, 4096, false);
	struct rig g;
	ok(rig_open(&g, base, &o) == 0, "store open, 4 KiB segments");
	enum { NB = 3000 };
	bool bound = true;
	char pat[32];
	for (int i = 0; i < NB; i++) {
		snprintf(pat, sizeof(pat), "mb.%d", i);
		bound &= router_bind(g.r, pat, "mbq") == ROUTER_OK;
	}
	ok(bound, "%d bindings made", NB);
	run_written(base, g.s);
	rig_close(&g);
	for (int round = 0; round < 3; round++) {
		int64_t t0 = now_ms();
		ok(rig_open(&g, base, &o) == 0 && stats_of(&g).bindings == NB,
		   "reopen %d: %d bindings (%lld ms)", round + 1, NB, (long long)(now_ms() - t0));
		struct journal_stats js;
		run_written(base, g.s);
		journal_stats(store_journal(g.s), &js);
		ok(js.records <= NB, "each written again at most once (%llu records)",
		   (unsigned long long)js.records);
		publish(g.r, DEST_TOPIC, "mb.2999", 1, true);
		ok(depth(g.r, "mbq") == (size_t)round + 1, "the last binding routes");
		rig_close(&g);
	}
	int segs = 0;
	journal_files(dir, &segs);
	ok(segs <= 2 * (NB * 40 / 4096) + 4, "old segments released (%d left)", segs);
	finish(dir);
}

/* Many bindings are the oldest records, in old segments, when an ack has
 * the store write them again, while the writer thread rolls through the
 * segments of a batch handed over in the same loop turn: the rewrite must
 * end, each binding written once. One that compared its copies with the
 * segment list as the writer changed it never ended: a race, seen on tmpfs
 * in some runs on a busy machine. */
static void test_bindings_while_rolling(struct event_base *base)
{
	struct store_options o;
	char *dir = start("bindings rewritten while the writer rolls", &o, JOURNAL_SYNC_ALWAYS, 4096, true);
	struct rig g;
	ok(rig_open(&g, base, &o) == 0, "store open, 4 KiB segments");
	enum { NB = 10000, ROUNDS = 5, NBATCH = 500 };
	char pat[32];
	for (int i = 0; i < NB; i++) {
		snprintf(pat, sizeof(pat), "br.%d", i);
		router_bind(g.r, pat, "brq");
	}
	run_written(base, g.s);
	ok(sink_on(&sink1, g.r, "br.stream"), "consumer on br.stream");
	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < NBATCH; i++)
			publish(g.r, DEST_QUEUE, "br.stream", round * NBATCH + i, true);
		sink_ack_all(&sink1);
		run_written(base, g.s);
	}
	struct journal_stats js;
	journal_stats(store_journal(g.s), &js);
	ok(js.records <= (uint64_t)NB + ROUNDS * (NB + NBATCH + 1),
	   "bindings written again at most once per ack flush: %llu records", (unsigned long long)js.records);
	sink_off(&sink1, g.r);
	rig_close(&g);
	ok(rig_open(&g, base, &o) == 0 && stats_of(&g).bindings == NB && stats_of(&g).restored == 0,
	   "reopened: every binding, no message");
	rig_close(&g);
	finish(dir);
}

/* ---- segments under a steady stream ---------------------------------------- */

/* Publishes n durable messages to `queue` in batches, the sink acking
 * each; returns the most journal files seen after the first few batches. */
static int stream(struct rig *g, struct sink *k, const char *queue, int first, int n)
{
	int most = 0;
	for (int i = 0; i < n; i += 40) {
		for (int b = i; b < i + 40 && b < n; b++)
			publish(g->r, DEST_QUEUE, queue, first + b, true);
		sink_ack_all(k);
		event_base_loop(g->base, EVLOOP_NONBLOCK);
		run_written(g->base, g->s);
		if (i >= 400) {
			int f = journal_files(g->dir, NULL);
			most = f > most ? f : most;
		}
	}
	return most;
}

static void test_stream(struct event_base *base)
{
	struct store_options o;
	char *dir = start("stream", &o, JOURNAL_SYNC_NEVER, 4096, false);
	struct rig g;
	ok(rig_open(&g, base, &o) == 0, "store open, 4 KiB segments");
	ok(router_bind(g.r, "st.early", "sq.bound") == ROUTER_OK, "a binding first, in the first segment");
	ok(sink_on(&sink1, g.r, "sq.stream"), "consumer on sq.stream");
	int most = stream(&g, &sink1, "sq.stream", 0, 4000);
	struct journal_stats js;
	journal_stats(store_journal(g.s), &js);
	ok(js.released > 100, "%llu segments released", (unsigned long long)js.released);
	ok(most <= 8, "4000 messages published and acked: at most %d journal files at once", most);
	ok(stats_of(&g).messages == 0, "nothing left stored");
	sink_off(&sink1, g.r);
	rig_close(&g);

	ok(rig_open(&g, base, &o) == 0, "reopened");
	struct store_stats st = stats_of(&g);
	ok(st.restored == 0 && st.bindings == 1 && st.bad_records == 0,
	   "nothing restored, the early binding kept (restored %llu, bindings %llu)",
	   (unsigned long long)st.restored, (unsigned long long)st.bindings);
	publish(g.r, DEST_TOPIC, "st.early", 1, true);
	ok(depth(g.r, "sq.bound") == 1, "and it still routes");
	rig_close(&g);
	finish(dir);
}

/* A message nobody consumes keeps its segment, and everything after it
 * stays on disk as segments or stand-ins: the documented limitation. */
static void test_stuck(struct event_base *base)
{
	struct store_options o;
	char *dir = start("stuck", &o, JOURNAL_SYNC_NEVER, 4096, false);
	struct rig g;
	ok(rig_open(&g, base, &o) == 0, "store open, 4 KiB segments");
	publish(g.r, DEST_QUEUE, "sk.stuck", 1, true);
	router_bind(g.r, "sk.t", "sk.bound");
	ok(sink_on(&sink1, g.r, "sk.stream"), "consumer on sk.stream");
	stream(&g, &sink1, "sk.stream", 10, 2000);
	publish(g.r, DEST_QUEUE, "sk.stuck", 2, true);
	run_written(base, g.s);
	int segs = 0, files = journal_files(dir, &segs);
	ok(files > 20, "the unconsumed message keeps %d files (%d segments) on disk", files, segs);
	sink_off(&sink1, g.r);
	rig_close(&g);

	ok(rig_open(&g, base, &o) == 0, "reopened (%s)", errbuf);
	struct store_stats st = stats_of(&g);
	ok(st.restored == 2 && st.bindings == 1 && st.bad_records == 0,
	   "the two unconsumed messages and the binding come back (restored %llu)",
	   (unsigned long long)st.restored);
	int want[] = { 1, 2 };
	ok(queue_holds(g.r, "sk.stuck", NULL, want, 2), "intact, in order");
	ok(!router_find_queue(g.r, "sk.stream") || depth(g.r, "sk.stream") == 0,
	   "none of the 2000 acked ones");
	/* Consumed now, its segments go. */
	ok(sink_on(&sink1, g.r, "sk.stuck") && sink1.n == 2, "consumed at last");
	sink_ack_all(&sink1);
	event_base_loop(base, EVLOOP_NONBLOCK);
	run_written(base, g.s);
	int64_t end = now_ms() + 5000;
	while (journal_files(dir, NULL) > 4 && now_ms() < end) {
		usleep(5000);
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	files = journal_files(dir, &segs);
	ok(files <= 4, "then the old segments are released (%d files)", files);
	sink_off(&sink1, g.r);
	rig_close(&g);
	finish(dir);
}

/* ---- sync = batch ------------------------------------------------------------ */

/* A durable publish every 2 ms for 400 ms: with a 50 ms batch delay the
 * store makes at most one fsync per 50 ms, not one per publish. */
static void test_batch_delay(struct event_base *base)
{
	struct store_options o;
	char *dir = start("sync batch", &o, JOURNAL_SYNC_BATCH, 0, false);
	o.batch_delay_us = 50000;
	struct rig g;
	ok(rig_open(&g, base, &o) == 0, "store open, sync batch, 50 ms delay");
	int n = 0;
	int64_t t0 = now_ms();
	while (now_ms() - t0 < 400) {
		publish(g.r, DEST_QUEUE, "bd.q", n++, true);
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(2000);
	}
	run_written(base, g.s);
	int64_t took = now_ms() - t0;
	struct journal_stats js;
	journal_stats(store_journal(g.s), &js);
	/* Segment creation takes its own fsyncs: a few more than batches. */
	ok(js.batches <= (uint64_t)(took / 50 + 2) && js.fsyncs <= js.batches + 4,
	   "%d publishes in %lld ms: %llu batches, %llu fsyncs", n, (long long)took,
	   (unsigned long long)js.batches, (unsigned long long)js.fsyncs);
	rig_close(&g);
	ok(rig_open(&g, base, &o) == 0 && stats_of(&g).restored == (uint64_t)n, "all %d kept", n);
	rig_close(&g);
	finish(dir);
}

/* ---- records that make no sense -------------------------------------------- */

static int appended;

static void append_done(void *arg, int err)
{
	(void)arg;
	if (!err)
		appended++;
}

static void test_bad_records(struct event_base *base)
{
	struct store_options o;
	char *dir = start("bad records", &o, JOURNAL_SYNC_ALWAYS, 0, false);
	struct rig g;
	ok(rig_open(&g, base, &o) == 0, "store open");
	publish(g.r, DEST_QUEUE, "bad.q", 1, true);
	publish(g.r, DEST_QUEUE, "bad.q", 2, true);
	struct journal *j = store_journal(g.s);
	uint8_t junk[64];
	memset(junk, 0xff, sizeof(junk));
	/* A message record naming a queue, then an undecodable message. */
	uint8_t half[40] = { 0 };
	half[12] = 5;
	memcpy(half + 14, "bad.q", 5);
	memset(half + 19, 0x01, sizeof(half) - 19);
	appended = 0;
	ok(journal_append(j, STORE_REC_MSG, junk, sizeof(junk), append_done, NULL, NULL) == 0 &&
	   journal_append(j, STORE_REC_MSG, half, sizeof(half), append_done, NULL, NULL) == 0 &&
	   journal_append(j, STORE_REC_ACK, junk, 13, append_done, NULL, NULL) == 0 &&
	   journal_append(j, 77, junk, 8, append_done, NULL, NULL) == 0,
	   "four well-framed records of nonsense appended");
	publish(g.r, DEST_QUEUE, "bad.q", 3, true);
	run_until(base, &appended, 4, 5000);
	run_written(base, g.s);
	rig_close(&g);

	o.on_corruption = JOURNAL_REFUSE;
	ok(rig_open(&g, base, &o) < 0 && strstr(errbuf, "unreadable"),
	   "on_corruption refuse: store_open fails (%s)", errbuf);
	o.on_corruption = JOURNAL_QUARANTINE;
	ok(rig_open(&g, base, &o) == 0, "on_corruption quarantine: opens (%s)", errbuf);
	struct store_stats st = stats_of(&g);
	ok(st.bad_records == 4, "4 bad records counted (%llu)", (unsigned long long)st.bad_records);
	int want[] = { 1, 2, 3 };
	ok(st.restored == 3 && queue_holds(g.r, "bad.q", NULL, want, 3), "the good messages around them come back");
	publish(g.r, DEST_QUEUE, "bad.q", 4, true);
	rig_close(&g);
	ok(rig_open(&g, base, &o) == 0 && stats_of(&g).restored == 4 && stats_of(&g).bad_records == 4,
	   "and the store goes on: 4 restored, the same 4 skipped");
	rig_close(&g);
	finish(dir);
}

/* ---- write failures -------------------------------------------------------- */

#ifdef WHARF_JOURNAL_FAULTS
static void test_write_failure(struct event_base *base)
{
	struct store_options o;
	char *dir = start("write failure", &o, JOURNAL_SYNC_ALWAYS, 0, false);
	struct rig g;
	ok(rig_open(&g, base, &o) == 0, "store open");
	struct pubs p = { .dir = dir };
	struct confirm_queue q;
	confirmq_init(&q, g.r, released, &p);
	cpub(&q, 0, DEST_QUEUE, "wf.q", 1, true, true);
	run_until(base, &p.n, 1, 5000);
	ok(p.n == 1 && p.errs[0] == ROUTER_OK, "before the fault: stored");
	journal_fault(JOURNAL_FAULT_WRITE, EIO, 1);
	cpub(&q, 1, DEST_QUEUE, "wf.q", 2, true, true);
	cpub(&q, 2, DEST_QUEUE, "wf.q", 3, false, false);
	run_until(base, &p.n, 3, 5000);
	ok(p.n == 3 && p.errs[1] == ROUTER_ESTORE && p.errs[2] == ROUTER_OK,
	   "a failed write: ROUTER_ESTORE, and the next in order still released (%s)",
	   router_strerror(p.errs[1]));
	ok(stats_of(&g).write_errors >= 1, "counted as a write error");
	cpub(&q, 3, DEST_QUEUE, "wf.q", 4, true, true);
	run_until(base, &p.n, 4, 5000);
	ok(p.n == 4 && p.errs[3] == ROUTER_OK, "after the fault: stored again");
	journal_fault(JOURNAL_FAULT_SYNC, EIO, 1);
	cpub(&q, 4, DEST_QUEUE, "wf.q", 5, true, true);
	run_until(base, &p.n, 5, 5000);
	ok(p.n == 5 && p.errs[4] == ROUTER_ESTORE, "a failed fdatasync: ROUTER_ESTORE too");
	cpub(&q, 5, DEST_QUEUE, "wf.q", 6, true, true);
	ok(router_bind(g.r, "wf.t", "wf.bound") == ROUTER_OK, "a binding after the faults");
	run_until(base, &p.n, 6, 5000);
	ok(p.n == 6 && p.errs[5] == ROUTER_OK, "and then stored again");
	confirmq_clear(&q);
	rig_close(&g);

	ok(rig_open(&g, base, &o) == 0, "reopened (%s)", errbuf);
	int want[] = { 1, 4, 6 };
	ok(queue_holds(g.r, "wf.q", NULL, want, 3), "exactly the messages confirmed stored come back");
	ok(stats_of(&g).bindings == 1, "the binding too");
	rig_close(&g);
	finish(dir);
}

/* A key's old record must stay on disk until the record that replaces it
 * (a new value, or the copy refresh_keys writes at the head) is: were the
 * old segment released first, a failed write (or a crash before the sync)
 * would lose the key. Here every write fails from the moment both are
 * under way while the old segments are all dead otherwise. */
static void test_key_outlives_failed_rewrite(struct event_base *base)
{
	struct store_options o;
	char *dir = start("a key's old record outlives a failed rewrite", &o, JOURNAL_SYNC_ALWAYS, 4096,
			  false);
	struct rig g;
	ok(rig_open(&g, base, &o) == 0, "store open, 4 KiB segments");
	ok(router_bind(g.r, "kr.t", "kr.bound") == ROUTER_OK && store_put(g.s, "test/k", "v1", 2) == 0,
	   "a binding and a key, in the first segment");
	ok(sink_on(&sink1, g.r, "kr.stream"), "consumer on kr.stream");
	for (int i = 0; i < 200; i++)
		publish(g.r, DEST_QUEUE, "kr.stream", i, true);
	run_written(base, g.s);
	int segs = 0;
	journal_files(dir, &segs);
	ok(sink1.n == 200 && segs > 4, "200 messages delivered, not acked yet: %d segments", segs);
	journal_fault(JOURNAL_FAULT_WRITE, ENOSPC, 1000);
	ok(store_put(g.s, "test/k", "v2", 2) == 0, "the key put again while the disk fails");
	sink_ack_all(&sink1);
	event_base_loop(base, EVLOOP_NONBLOCK);
	run_written(base, g.s);
	/* Whatever the writer was told to release goes with its next batch. */
	struct journal_stats js;
	journal_stats(store_journal(g.s), &js);
	ok(js.write_errors > 0, "the writes failed (%llu errors)", (unsigned long long)js.write_errors);
	journal_fault(JOURNAL_FAULT_WRITE, 0, 0);
	sink_off(&sink1, g.r);
	rig_close(&g);

	ok(rig_open(&g, base, &o) == 0, "reopened (%s)", errbuf);
	size_t len = 0;
	const char *v = store_get(g.s, "test/k", &len);
	ok(v && len == 2 && (!memcmp(v, "v1", 2) || !memcmp(v, "v2", 2)), "the key is still there");
	ok(stats_of(&g).bindings == 1, "and the binding (%llu)", (unsigned long long)stats_of(&g).bindings);
	rig_close(&g);
	finish(dir);
}
#endif

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0); /* whole lines out before an alarm */
	signal(SIGALRM, on_alarm);
	begin("msgcodec");
	if (!getenv("STORE_TEST_VERBOSE"))
		log_set_level(LOG_ERROR);
	test_msgcodec_round_trip();
	test_msgcodec_body_in_amqp();
	test_msgcodec_garbled();
	test_liveset();
	struct event_base *base = new_base();
	test_restart(base);
	test_confirm(base);
	test_bindings(base);
	test_many_bindings(base);
	test_bindings_while_rolling(base);
	test_stream(base);
	test_stuck(base);
	test_batch_delay(base);
	log_set_level(LOG_ERROR);
	test_bad_records(base);
#ifdef WHARF_JOURNAL_FAULTS
	test_write_failure(base);
	test_key_outlives_failed_rewrite(base);
#else
	printf("# built without WHARF_JOURNAL_FAULTS: write failure cases skipped\n");
#endif
	free_base(base);
	return tap_done();
}
