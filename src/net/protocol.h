/* The protocols the broker serves, as listeners, the WebSocket layer and
 * the broker see them: one entry each in one table
 * (protocols/registry.c), so that none of them names an adapter. Adding a
 * protocol is adding an entry there. */
#ifndef WHARF_NET_PROTOCOL_H
#define WHARF_NET_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>

struct broker;
struct proto_ops;
struct session_ops;

/* Bounds on the table, checked where it is defined: struct broker keeps a
 * state slot per protocol, the WebSocket handshake lists every
 * subprotocol on its stack. */
#define PROTOCOLS_MAX 8
#define PROTOCOL_SUBPROTOCOLS_MAX 16

struct protocol {
	const char *name;                    /* "mqtt" */
	const char *scheme, *tls_scheme;     /* listener URL schemes: "mqtt", "mqtts" */
	const char *const *ws_subprotocols;  /* NULL-terminated, preferred first */
	const char *ws_text_refused;         /* close reason for a WebSocket text
					      * frame, or NULL: text frames carry data */
	const struct proto_ops *ops;
	/* Broker-wide state, set up once at start-up after the store is open
	 * (NULL: the protocol keeps none). init puts what it allocates in
	 * *state at once (the broker owns the slot from then on, also when
	 * init fails); -1 on out of memory. fini frees it, called once every
	 * connection is gone. */
	int (*init)(struct broker *b, void **state);
	void (*fini)(void *state);
	/* Its client sessions for the admin API (net/sessions.h), on its
	 * state; NULL: none outlive their connections. */
	const struct session_ops *sessions;
};

/* The table, NULL-terminated, in the order listings name them. */
extern const struct protocol *const protocols[];

/* The protocol a listener URL scheme names, and whether it is the TLS one;
 * NULL if none. */
const struct protocol *protocol_by_scheme(const char *scheme, bool *tls);
/* The protocol that speaks a WebSocket subprotocol; NULL if none. */
const struct protocol *protocol_by_subprotocol(const char *sub);
/* Every protocol's WebSocket subprotocols in table order, NULL-terminated. */
void protocol_subprotocols(const char *out[PROTOCOL_SUBPROTOCOLS_MAX + 1]);
/* Every listener scheme, ", "-separated into buf (cut at len). */
void protocol_schemes_text(char *buf, size_t len);
/* Every WebSocket subprotocol, "a, b or c" into buf (cut at len). */
void protocol_subprotocols_text(char *buf, size_t len);

/* Runs every protocol's init, in table order; -1 on out of memory
 * (broker_free runs the fini of those set up). */
int protocols_init(struct broker *b);
/* Runs every fini, in reverse order, for the state each init set up. */
void protocols_fini(struct broker *b);
/* The broker-wide state of the protocol whose adapter is `ops`. */
void *protocol_state(const struct broker *b, const struct proto_ops *ops);

#endif
