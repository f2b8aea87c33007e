/* libFuzzer target for the AMQP path from bytes into qpid-proton's engine
 * and our adapter (protocols/amqp): the input is what a client sends on one
 * connection, handed to the adapter in pieces whose size the first byte
 * picks (0: all at once), as the event loop would hand it what the socket
 * gave. The adapter runs on a router of its own; the connection functions
 * it calls are stubbed here, since net/conn.c needs a socket. After the
 * input the broker shuts the connection down and frees it: every
 * subscription and temporary queue the client made must be gone, and
 * AddressSanitizer reports what leaked. */
#include "config.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "broker.h"
#include "ha/redirect.h"
#include "log.h"
#include "net/conn.h"
#include "protocols/amqp/session.h"
#include "router/router.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* proton 0.37 leaks what it copies from some frames it reads (a second
 * sasl-init: the mechanism name). proton is built without frame pointers,
 * so a leak's stack ends in it and cannot be told from one of ours there:
 * what proton allocates is not leak-checked here (the integration tests
 * check the broker's own use of proton under AddressSanitizer); what our
 * code allocates is. */
const char *__lsan_default_suppressions(void)
{
	return "leak:libqpid-proton.so\n";
}

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			__builtin_trap();                                      \
	} while (0)

/* The connection as the adapter sees it: what it writes is dropped. */
struct conn {
	struct broker *b;
	bool closing;
	char principal[256];
	conn_auth_fn auth_done; /* conn_authenticate's, answered after the input */
	void *session;
};

struct broker *conn_broker(const struct conn *c) { return c->b; }
struct event_base *conn_base(const struct conn *c) { return c->b->base; }
const char *conn_peer(const struct conn *c) { return "fuzz"; }
unsigned long conn_id(const struct conn *c) { return 1; }
bool conn_output_full(const struct conn *c) { return false; }
bool conn_closing(const struct conn *c) { return c->closing; }
void conn_count_msg_in(struct conn *c) {}
void conn_count_msg_out(struct conn *c) {}
void conn_close(struct conn *c, bool flush) { c->closing = true; }
void conn_handshake_done(struct conn *c) { (void)c; }
void conn_audit(struct conn *c, const char *event, const char *principal, const char *reason) {}

/* This node serves: no redirect (tests/unit/test_redirect.c has those). */
bool broker_redirect_for(const struct conn *c, struct redirect_target *to) { return false; }
void redirect_target_text(const struct redirect_target *to, char *buf, size_t len) {}

int conn_write(struct conn *c, const void *data, size_t len)
{
	return 0;
}

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

void conn_pause_input(struct conn *c, bool paused) { (void)c; (void)paused; }

/* Every client has a certificate identity, so that EXTERNAL is fuzzed too. */
bool conn_cert_identified(const struct conn *c) { return true; }

/* Everyone comes in, a name starting with 'x' excepted. */
int conn_authenticate(struct conn *c, const char *user, const char *password, size_t len,
		      conn_auth_fn done)
{
	CHECK(!c->auth_done);
	c->auth_done = done;
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

/* No store: durable subscriptions' patterns are kept nowhere, so each
 * attach is a fresh one (src/durable_sub.c). */
int store_put(struct store *s, const char *key, const void *val, size_t len) { return 0; }
int store_del(struct store *s, const char *key) { return 0; }
const void *store_get(const struct store *s, const char *key, size_t *len) { return NULL; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct event_base *base;
	static struct wharf_config *cfg; /* the defaults, as wharfd without -c */
	if (!base) {
		log_set_level(LOG_ERROR);
		base = event_base_new();
		cfg = config_new();
		CHECK(base && cfg);
	}
	if (size < 1)
		return 0;
	size_t piece = data[0] ? data[0] : size;
	data++;
	size--;
	struct router_options ro = { .topic_max_pending = 64 };
	struct broker b = { .base = base, .cfg = cfg, .router = router_new(&ro) };
	CHECK(b.router);
	struct conn c = { .b = &b };
	void *s = amqp_proto.open(&c);
	CHECK(s);
	struct evbuffer *in = evbuffer_new();
	CHECK(in);
	for (size_t off = 0; off < size && !c.closing; off += piece) {
		size_t n = size - off < piece ? size - off : piece;
		CHECK(evbuffer_add(in, data + off, n) == 0);
		amqp_proto.input(s, in);
		if (c.auth_done) {
			conn_auth_fn done = c.auth_done;
			c.auth_done = NULL;
			done(s, c.principal[0] == 'x' ? AUTH_BAD_CREDENTIALS : AUTH_OK);
			amqp_proto.input(s, in); /* what waited unread */
		}
		/* Output the adapter made outside the engine's events. */
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	if (!c.closing)
		amqp_proto.shutdown(s, CONN_END_SHUTDOWN);
	event_base_loop(base, EVLOOP_NONBLOCK);
	amqp_proto.closed(s);
	evbuffer_free(in);
	CHECK(router_stats(b.router)->subscriptions == 0);
	for (int i = 1; i <= 16; i++) {
		char temp[64];
		snprintf(temp, sizeof(temp), "wharf.temp.1.%d", i);
		CHECK(!router_find_queue(b.router, temp));
	}
	router_free(b.router);
	return 0;
}
