/* What fuzz_stomp_session.c and fuzz_mqtt_session.c share: two clients of
 * one protocol on one router, the connection functions (src/net/conn.h)
 * stubbed, a fake clock, timers fired on demand and an in-memory stand-in
 * for the store's key/value records. Included by exactly one .c per
 * target; everything here is static or is the stub of a broker function.
 *
 * The input:
 *   byte 0   bits 0-5: the size of the pieces handed to the adapter (0: all
 *            of a client's bytes at once); bit 6: fire every pending timer
 *            (the clocks jump 30 s) after each of the first rounds of pieces,
 *            not only at the end; bit 7: end with the broker's shutdown (else both
 *            clients vanish without a word, as a dropped socket does)
 *   bytes 1-2 (little endian) bits 0-14: the length of client A's bytes,
 *            which follow; the rest is client B's; bit 15: the target's
 *            option (fuzz_option)
 * Pieces of A and B alternate, each followed by a pass of the event loop,
 * so that one client's deliveries, acks and take-overs meet the other's.
 * When a client's connection closes and bytes remain, the client connects
 * again and goes on with them (persistent sessions, durable subscriptions,
 * wills). At the end the connections close, the timers fire, the adapter's
 * broker-wide state and the router are freed: AddressSanitizer reports what
 * leaked. */
#ifndef WHARF_FUZZ_SESSION_HARNESS_H
#define WHARF_FUZZ_SESSION_HARNESS_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "broker.h"
#include "conf.h"
#include "ha/redirect.h"
#include "log.h"
#include "net/conn.h"
#include "router/router.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			__builtin_trap();                                      \
	} while (0)

/* Output past this is "full": deliveries pause until drained. Small, so
 * that the slow-consumer path runs often. */
#define FUZZ_OUTPUT_CAP 1024
/* Connections one client may open, one after the other. */
#define FUZZ_MAX_RECONNECTS 6
/* Rounds of pieces after which the timers fire (input bit 6), at most: a
 * persistent timer ($SYS) costs each time. */
#define FUZZ_MAX_TIMER_ROUNDS 16
/* Timers fired in one pass: a persistent timer comes back each pass. */
#define FUZZ_MAX_TIMERS 64

/* ---- the clocks: they move only when the harness says ------------------- */

static int64_t fuzz_mono_ms = 1000000;
static int64_t fuzz_wall_ms = 1700000000000;

int64_t clock_mono_ms(void) { return fuzz_mono_ms; }
int64_t clock_wall_ms(void) { return fuzz_wall_ms; }

/* ---- the connection ------------------------------------------------------ */

struct conn {
	struct broker *b;
	unsigned long id;
	bool closing, paused, resumed, was_full, handshake_done;
	char principal[256];
	/* conn_authenticate's question, answered at the end of the pass */
	conn_auth_fn auth_done;
	enum auth_result auth_result;
	struct evbuffer *out;
};

struct broker *conn_broker(const struct conn *c) { return c->b; }
struct event_base *conn_base(const struct conn *c) { return c->b->base; }
const char *conn_peer(const struct conn *c) { return "fuzz"; }
const char *conn_protocol(const struct conn *c) { return "fuzz"; }
unsigned long conn_id(const struct conn *c) { return c->id; }
bool conn_closing(const struct conn *c) { return c->closing; }
void conn_count_msg_in(struct conn *c) {}
void conn_count_msg_out(struct conn *c) {}
void conn_close(struct conn *c, bool flush) { c->closing = true; }
void conn_handshake_done(struct conn *c) { c->handshake_done = true; }

/* This node serves: no redirect (a standby's answers are unit-tested in
 * tests/unit/test_redirect.c). */
bool broker_redirect_for(const struct conn *c, struct redirect_target *to) { return false; }
void redirect_target_text(const struct redirect_target *to, char *buf, size_t len) {}

/* What begins the adapter's answer to a good handshake (the target sets
 * it): the adapter must have told the connection its handshake is done
 * before, or conn.c's handshake_timeout would close the client. */
static const char *fuzz_handshake_answer;
struct evbuffer *conn_output(struct conn *c) { return c->out; }

const char *conn_principal(const struct conn *c)
{
	return c->principal[0] ? c->principal : "anonymous";
}

/* No connection limits in the target. */
const char *conn_refusal(const struct conn *c) { (void)c; return ""; }
const char *conn_address_over(struct conn *c) { (void)c; return NULL; }
const char *conn_subscription_refused(struct conn *c, const char *key, unsigned max)
{
	(void)c; (void)key; (void)max;
	return "limit reached";
}

bool conn_output_full(const struct conn *c)
{
	return evbuffer_get_length(c->out) > FUZZ_OUTPUT_CAP;
}

void conn_input_acks_only(struct conn *c, bool only) { (void)c; (void)only; }
void conn_acks_wanted(struct conn *c) { (void)c; }

void conn_pause_input(struct conn *c, bool paused)
{
	if (c->paused && !paused)
		c->resumed = true;
	c->paused = paused;
}

int conn_write(struct conn *c, const void *data, size_t len)
{
	return evbuffer_add(c->out, data, len);
}

/* Users whose name starts with 'x' are refused; others (and anonymous)
 * come in, the answer at the end of the loop's pass (reap). */
int conn_authenticate(struct conn *c, const char *user, const char *password, size_t len,
		      conn_auth_fn done)
{
	CHECK(!c->auth_done && !c->closing);
	c->auth_done = done;
	c->auth_result = user && user[0] == 'x' ? AUTH_BAD_CREDENTIALS : AUTH_OK;
	if (c->auth_result == AUTH_OK)
		snprintf(c->principal, sizeof(c->principal), "%s", user ? user : "anonymous");
	return 0;
}

/* The ACLs: the harness's router has none, so who asks is never looked at. */
struct acl_who *conn_acl_who(struct conn *c)
{
	static struct acl_who who;
	who.user = conn_principal(c);
	return &who;
}

int conn_set_client_id(struct conn *c, const char *client_id)
{
	(void)c;
	(void)client_id;
	return 0;
}

int conn_set_principal(struct conn *c, const char *principal)
{
	size_t n = strlen(principal);
	CHECK(n < sizeof(c->principal));
	memcpy(c->principal, principal, n + 1);
	return 0;
}

/* ---- the store's key/value records, in memory ---------------------------- */

struct fuzz_val {
	size_t len;
	unsigned char data[];
};

static struct map *fuzz_records;

int store_put(struct store *s, const char *key, const void *val, size_t len)
{
	struct fuzz_val *v = malloc(sizeof(*v) + len + 1);
	CHECK(v);
	v->len = len;
	memcpy(v->data, val, len);
	v->data[len] = 0;
	free(map_del(fuzz_records, key));
	CHECK(map_put(fuzz_records, key, v) == 0);
	return 0;
}

int store_del(struct store *s, const char *key)
{
	free(map_del(fuzz_records, key));
	return 0;
}

const void *store_get(const struct store *s, const char *key, size_t *len)
{
	struct fuzz_val *v = map_get(fuzz_records, key);
	if (!v)
		return NULL;
	*len = v->len;
	return v->data;
}

struct each_key {
	const char *prefix;
	char **keys;
	size_t n;
};

static void collect_key(const char *key, void *value, void *arg)
{
	struct each_key *e = arg;
	if (!strncmp(key, e->prefix, strlen(e->prefix)))
		CHECK((e->keys[e->n++] = strdup(key)));
}

/* fn may delete or put the key it is given: the keys are collected first. */
void store_each(const struct store *s, const char *prefix,
		void (*fn)(void *arg, const char *key, const void *val, size_t len), void *arg)
{
	struct each_key e = { prefix, calloc(map_count(fuzz_records) + 1, sizeof(char *)), 0 };
	CHECK(e.keys);
	map_each(fuzz_records, collect_key, &e);
	for (size_t i = 0; i < e.n; i++) {
		struct fuzz_val *v = map_get(fuzz_records, e.keys[i]);
		if (v)
			fn(arg, e.keys[i], v->data, v->len);
		free(e.keys[i]);
	}
	free(e.keys);
}

static void free_record(const char *key, void *value, void *arg) { free(value); }

/* ---- the router's persistence, in memory -------------------------------- */

/* Confirmations wait for the next pass of the loop, as for a journal batch
 * (never inside the call); past FUZZ_STORE_BUSY waiting, the store is busy
 * and publishers are slowed until they are done. */
#define FUZZ_STORE_WAITING 64
#define FUZZ_STORE_BUSY 4

static struct router *fuzz_router;
static struct router_confirm *fuzz_waiting[FUZZ_STORE_WAITING];
static int fuzz_nwaiting;
static uint64_t fuzz_next_rec;
static bool fuzz_was_busy;
static char fuzz_ticket; /* what c->pending points to */

/* c waits for a record: false when too many wait (the write fails). */
static bool fuzz_wait(struct router_confirm *c)
{
	if (!c || c->pending)
		return true;
	if (fuzz_nwaiting == FUZZ_STORE_WAITING)
		return false;
	c->pending = &fuzz_ticket;
	fuzz_waiting[fuzz_nwaiting++] = c;
	return true;
}

static uint64_t fuzz_put(void *arg, const char *queue, const struct message *m,
			 struct router_confirm *c)
{
	return fuzz_wait(c) ? ++fuzz_next_rec : 0;
}

static int fuzz_retained(void *arg, const char *topic, const struct message *m,
			 struct router_confirm *c)
{
	return fuzz_wait(c) ? 0 : -1;
}

static int fuzz_sync(void *arg, struct router_confirm *c)
{
	c->pending = NULL;
	return fuzz_wait(c) ? 0 : -1;
}

static void fuzz_cancel(void *arg, struct router_confirm *c)
{
	for (int i = 0; i < fuzz_nwaiting; i++)
		if (fuzz_waiting[i] == c) {
			fuzz_waiting[i] = fuzz_waiting[--fuzz_nwaiting];
			break;
		}
	c->pending = NULL;
}

static bool fuzz_busy(void *arg)
{
	if (fuzz_nwaiting > FUZZ_STORE_BUSY)
		fuzz_was_busy = true;
	return fuzz_nwaiting > FUZZ_STORE_BUSY;
}

static void fuzz_settled(void *arg, uint64_t rec) {}
static void fuzz_counted(void *arg, uint64_t rec, uint32_t count) {}
static uint32_t fuzz_count_of(void *arg, uint64_t rec) { return 0; }
static bool fuzz_alive(void *arg, uint64_t rec) { return true; }
static int fuzz_bound(void *arg, const char *pattern, const char *queue, bool bind) { return 0; }

static const struct router_persist fuzz_persist = {
	.put = fuzz_put, .settled = fuzz_settled, .cancel = fuzz_cancel, .bound = fuzz_bound,
	.retained = fuzz_retained, .sync = fuzz_sync, .counted = fuzz_counted,
	.count_of = fuzz_count_of, .alive = fuzz_alive, .busy = fuzz_busy,
};

/* Everything waiting is on disk: confirmed in the order written. */
static void fuzz_store_flush(void)
{
	while (fuzz_nwaiting) {
		struct router_confirm *c = fuzz_waiting[0];
		memmove(fuzz_waiting, fuzz_waiting + 1, --fuzz_nwaiting * sizeof(*fuzz_waiting));
		c->pending = NULL;
		c->done(c, ROUTER_OK);
	}
	if (fuzz_was_busy && fuzz_router) {
		fuzz_was_busy = false;
		router_room(fuzz_router);
	}
}

int store_put_confirmed(struct store *s, const char *key, const void *val, size_t len,
			struct router_confirm *c)
{
	if (!fuzz_wait(c))
		return -1;
	return store_put(s, key, val, len);
}

int store_del_confirmed(struct store *s, const char *key, struct router_confirm *c)
{
	if (!fuzz_wait(c))
		return -1;
	return store_del(s, key);
}

/* After the adapter's broker-wide state is gone. */
static void fuzz_records_clear(void)
{
	CHECK(fuzz_nwaiting == 0);
	fuzz_router = NULL;
	map_each(fuzz_records, free_record, NULL);
	map_free(fuzz_records);
	fuzz_records = NULL;
}

/* ---- timers ------------------------------------------------------------- */

struct timer_list {
	struct event *v[FUZZ_MAX_TIMERS];
	int n;
};

static int collect_timer(const struct event_base *base, const struct event *ev, void *arg)
{
	struct timer_list *l = arg;
	if (!event_pending(ev, EV_TIMEOUT, NULL))
		return 0;
	l->v[l->n++] = (struct event *)ev;
	return l->n == FUZZ_MAX_TIMERS;
}

/* The clocks jump and every pending timer fires once. */
static void fire_timers(struct event_base *base)
{
	struct timer_list l = { .n = 0 };
	fuzz_mono_ms += 30000;
	fuzz_wall_ms += 30000;
	event_base_foreach_event(base, collect_timer, &l);
	for (int i = 0; i < l.n; i++)
		event_active(l.v[i], EV_TIMEOUT, 1);
	event_base_loop(base, EVLOOP_NONBLOCK);
}

/* ---- clients ------------------------------------------------------------ */

struct client {
	const uint8_t *data;
	size_t len, off;
	struct conn *c;
	void *s;
	struct evbuffer *in;
	int conns;
};

static const struct proto_ops *fuzz_proto;
/* FUZZ_SESSION_TRACE set: what the broker sends goes to stderr. */
static bool fuzz_trace;
static unsigned long fuzz_next_id;

static void client_close(struct client *k)
{
	if (!k->c)
		return;
	fuzz_proto->closed(k->s);
	evbuffer_free(k->c->out);
	free(k->c);
	evbuffer_free(k->in);
	k->c = NULL;
	k->s = NULL;
	k->in = NULL;
}

/* What the loop does after a pass: output written out (and `drained` told),
 * connections asked to close freed. */
static void reap(struct client *k)
{
	struct conn *c = k->c;
	if (!c)
		return;
	if (c->auth_done && !c->closing) {
		conn_auth_fn done = c->auth_done;
		c->auth_done = NULL;
		done(k->s, c->auth_result);
	}
	size_t alen = fuzz_handshake_answer ? strlen(fuzz_handshake_answer) : 0;
	if (alen && evbuffer_get_length(c->out) >= alen &&
	    !memcmp(evbuffer_pullup(c->out, (ev_ssize_t)alen), fuzz_handshake_answer, alen))
		CHECK(c->handshake_done);
	if (c->closing) {
		client_close(k);
		return;
	}
	if (conn_output_full(c))
		c->was_full = true;
	if (fuzz_trace) {
		size_t n = evbuffer_get_length(c->out);
		fprintf(stderr, "[conn %lu out %zu] ", c->id, n);
		fwrite(evbuffer_pullup(c->out, -1), 1, n, stderr);
		fputc('\n', stderr);
	}
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	if (c->was_full) {
		c->was_full = false;
		fuzz_proto->drained(k->s);
	}
}

static void pass(struct event_base *base, struct client *k, int n)
{
	event_base_loop(base, EVLOOP_NONBLOCK);
	fuzz_store_flush();
	event_base_loop(base, EVLOOP_NONBLOCK);
	for (int i = 0; i < n; i++)
		reap(&k[i]);
}

/* Hands the client its next piece, connecting first if it has none. */
static void client_step(struct broker *b, struct client *k, size_t piece)
{
	if (!k->c) {
		if (k->off >= k->len || k->conns == FUZZ_MAX_RECONNECTS)
			return;
		k->c = calloc(1, sizeof(*k->c));
		CHECK(k->c);
		k->c->b = b;
		k->c->id = ++fuzz_next_id;
		k->c->out = evbuffer_new();
		k->in = evbuffer_new();
		CHECK(k->c->out && k->in);
		k->conns++;
		k->s = fuzz_proto->open(k->c);
		CHECK(k->s);
	}
	struct conn *c = k->c;
	if (c->closing || c->paused)
		return;
	size_t n = k->len - k->off < piece ? k->len - k->off : piece;
	if (!n && !c->resumed)
		return;
	c->resumed = false;
	CHECK(evbuffer_add(k->in, k->data + k->off, n) == 0);
	k->off += n;
	fuzz_proto->input(k->s, k->in);
}

static bool client_more(const struct client *k)
{
	if (k->c)
		return !k->c->closing && !k->c->paused && (k->off < k->len || k->c->resumed);
	return k->off < k->len && k->conns < FUZZ_MAX_RECONNECTS;
}

/* The event base and config every input shares, made on the first call
 * (*first set then, for the target's settings). */
static struct event_base *fuzz_base;
static struct wharf_config *fuzz_cfg;

static void fuzz_once(bool *first)
{
	*first = !fuzz_base;
	if (fuzz_base)
		return;
	log_set_level(LOG_ERROR);
	fuzz_base = event_base_new();
	fuzz_cfg = config_new();
	CHECK(fuzz_base && fuzz_cfg);
}

/* Stands for the store: the records are fuzz_records, the router's
 * persistence fuzz_persist. Never dereferenced. */
static struct store *const fuzz_store = (struct store *)&fuzz_ticket;

/* A broker around a new router (bound of a topic subscriber: 8) that keeps
 * durable messages in the harness's store. */
static struct broker fuzz_broker(void)
{
	struct router_options ro = { .topic_max_pending = 8 };
	struct broker b = { .base = fuzz_base, .cfg = fuzz_cfg, .router = router_new(&ro),
			    .store = fuzz_store };
	CHECK(b.router);
	router_set_persist(b.router, &fuzz_persist);
	fuzz_router = b.router;
	fuzz_records = map_new();
	CHECK(fuzz_records);
	return b;
}

/* Bit 15 of the input's bytes 1-2: a setting the target varies (size >= 3). */
static bool fuzz_option(const uint8_t *data) { return data[2] & 0x80; }

/* Runs the input through two clients on broker b (router, cfg, base set);
 * the caller then frees the adapter's broker-wide state, if any, and calls
 * fuzz_records_clear(). */
static void fuzz_run(struct broker *b, const struct proto_ops *proto, const uint8_t *data,
		     size_t size)
{
	fuzz_proto = proto;
	fuzz_trace = getenv("FUZZ_SESSION_TRACE");
	if (fuzz_trace)
		log_set_level(LOG_DEBUG);
	size_t piece = data[0] & 63 ? data[0] & 63 : size;
	bool timers = data[0] & 64, shutdown = data[0] & 128;
	size_t alen = (size_t)data[1] | (size_t)(data[2] & 0x7f) << 8;
	data += 3;
	size -= 3;
	if (alen > size)
		alen = size;
	struct client k[2] = {
		{ .data = data, .len = alen },
		{ .data = data + alen, .len = size - alen },
	};
	/* A bound on passes: a paused client resumed by its own timers would
	 * otherwise go on for ever. */
	int fired = 0;
	for (int rounds = 0; rounds < 100000 && (client_more(&k[0]) || client_more(&k[1]));
	     rounds++) {
		for (int i = 0; i < 2; i++) {
			client_step(b, &k[i], piece);
			pass(b->base, k, 2);
		}
		if (timers && fired++ < FUZZ_MAX_TIMER_ROUNDS)
			fire_timers(b->base);
		pass(b->base, k, 2);
	}
	for (int i = 0; i < 2; i++)
		if (k[i].c && shutdown && !k[i].c->closing)
			fuzz_proto->shutdown(k[i].s, CONN_END_SHUTDOWN);
	pass(b->base, k, 2);
	for (int i = 0; i < 2; i++)
		client_close(&k[i]);
	/* Wills waiting out their delay, session expiry, redelivery. */
	for (int i = 0; i < 3; i++)
		fire_timers(b->base);
	fuzz_store_flush();
}

#endif
