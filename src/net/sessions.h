/* Client sessions that a protocol keeps across connections (MQTT's), as
 * the admin API sees them: a read-only snapshot per session, and removal,
 * reached through the protocol table (net/protocol.h) so that the admin
 * code names no adapter. Everything here runs on the loop thread. */
#ifndef WHARF_NET_SESSIONS_H
#define WHARF_NET_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;

/* One subscription of a session. */
struct session_sub_view {
	const char *filter;       /* as the client wrote it */
	uint8_t qos;
	bool no_local, retain_as_published;
	uint32_t id;              /* subscription identifier, 0: none */
	bool queued_known;        /* false: a share group member away from its
				     group, whose messages wait in the group's
				     queue for the other members */
	size_t queued;            /* messages waiting for this subscription */
};

/* A session as it is at the moment of the callback; every pointer is
 * valid only during the callback. */
struct session_view {
	const char *protocol;     /* "mqtt" */
	const char *client_id;
	const char *user;         /* who connected it last; NULL: not known (a
				     session restored at start-up whose client
				     has not come back) */
	unsigned long conn_id;    /* its connection, 0: not connected */
	bool persistent;          /* outlives its connection */
	bool durable;             /* outlives a broker restart */
	uint32_t expiry_interval; /* seconds after the connection ends,
				     UINT32_MAX: never */
	int64_t expires_ms;       /* wall clock ms it ends at if no client comes
				     back; 0: connected or never */
	bool will;                /* a will message is waiting */
	size_t inflight;          /* QoS 1/2 deliveries not yet acknowledged */
	const struct session_sub_view *subs;
	size_t nsubs;
};

typedef void (*session_view_fn)(const struct session_view *v, void *arg);

/* What a protocol with sessions offers (struct protocol's `sessions`). */
struct session_ops {
	/* Calls fn for each session of the protocol's state. -1 on out of
	 * memory (fn may have been called for some). */
	int (*each)(void *state, session_view_fn fn, void *arg);
	/* Calls fn for the session `id`: 1 when there is one, 0 when not, -1
	 * on out of memory. */
	int (*find)(void *state, const char *id, session_view_fn fn, void *arg);
	/* Ends the session `id` (as its expiry would: a will still held is
	 * published, its queued messages go): SESSION_REMOVED; or
	 * SESSION_CONNECTED when a client is connected to it (untouched), or
	 * SESSION_NONE. */
	int (*remove)(void *state, const char *id);
};

enum { SESSION_NONE, SESSION_REMOVED, SESSION_CONNECTED };

/* Across every protocol with sessions, in table order: as each, find and
 * remove above (find and remove: the first protocol that knows `id`). */
int sessions_each(struct broker *b, session_view_fn fn, void *arg);
int sessions_find(struct broker *b, const char *id, session_view_fn fn, void *arg);
int sessions_remove(struct broker *b, const char *id);

#endif
