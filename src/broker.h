/* The broker: one event loop, its listeners, connections and router.
 * Everything runs on the thread that calls broker_run(). */
#ifndef WHARF_BROKER_H
#define WHARF_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "conf.h"
#include "net/conn.h"
#include "net/protocol.h"
#include "util/loglimit.h"

struct event_base;
struct event;
struct router;
struct store;
struct conn;
struct listener;
struct redirect;
struct ha_hook;
struct ha;
struct admin;
struct ackread;
struct alarms;
struct auth;
struct limits;

TAILQ_HEAD(conn_list, conn);

struct broker {
	struct event_base *base;
	struct wharf_config *cfg;
	struct router *router;
	struct store *store;      /* durable messages and run-time bindings */
	struct listener *listeners;
	/* Each protocol's broker-wide state, by its place in the registry
	 * (net/protocol.h): set by its init, freed by its fini. */
	void *proto_state[PROTOCOLS_MAX];
	struct conn_list conns;
	unsigned long nconns;
	unsigned long next_conn_id;
	/* What the closed connections of each protocol (by registry place)
	 * carried, and how many there were: the admin API adds the open
	 * ones' (net/conn.h). */
	struct conn_counts conns_gone[PROTOCOLS_MAX];
	unsigned long long conns_closed[PROTOCOLS_MAX];
	/* [admin]: the HTTP API, /metrics and health (admin/admin.h); NULL
	 * when off. */
	struct admin *admin;
	/* [alarm NAME] sections (admin/alarms.h), on the active node; NULL
	 * before. */
	struct alarms *alarms;
	struct event *sig_term, *sig_int, *sig_hup, *stop_timer;
	struct event *expiry_timer; /* sweeps expired messages out of idle queues, reports drops */
	int64_t next_drop_report_ms;
	bool stopping;
	/* Serving clients, its store open. A standby is not (its journal is
	 * the replication's) until broker_activate. */
	bool active;
	/* [ha]: where a standby sends clients (ha/redirect.h); NULL: not
	 * known. Children of on_promote (ha/hook.h). */
	struct redirect *redirect;
	struct ha_hook *hook;
	/* A standby with standby_listen = false: broker_activate opens the
	 * client listeners. */
	bool listen_deferred;
	/* [auth]: checks every client's credentials (auth/auth.h). */
	struct auth *auth;
	/* Connections by address and by user (net/limits.h). */
	struct limits *limits;
	/* A planned switch-over (ha/ha_control.c): client input is not read
	 * (net/conn.h conn_drain_input); output and confirmations go on. */
	bool draining;
	int lock_fd;
	char **argv;              /* how wharfd was started: broker_restart */
	struct ha *ha;            /* the pair's link (src/ha/ha.h); NULL: single node */
	int64_t started_ms;
	int64_t stop_deadline_ms;
	/* Spaces out the lines about browsers refused for their origin, over
	 * every listener: here, as connections outlive their listener. */
	struct log_limit origin_log;
	/* Connections whose acknowledgements are read when the loop is
	 * awake anyway (net/ackread.c); NULL until the first. */
	struct ackread *ackread;
};

/* Sets up the loop and router; takes ownership of cfg (freed by
 * broker_free, also on failure). -1 with a logged reason. */
int broker_init(struct broker *b, struct wharf_config *cfg);
/* Opens the store (replaying it) and sets up the protocols: the broker
 * serves from now on. broker_init does it, except on a standby, whose
 * promotion does. -1 with a logged reason. */
int broker_activate(struct broker *b);
/* Binds every listener and logs `listening PROTO HOST:PORT` for each; a
 * standby with ha.standby_listen = false leaves it to broker_activate.
 * Then the admin listener ([admin] listen), on a standby too. */
int broker_listen(struct broker *b);
/* The active node's client addresses as it advertises them: listener URLs
 * separated by spaces ("stomp://10.0.0.1:61613 mqtt://10.0.0.1:1883 ...");
 * NULL or "": not known. Until the node is active itself, its clients are
 * sent there (ha/redirect.h). -1 on out of memory. */
int broker_set_redirect(struct broker *b, const char *advertise);
/* This node's advertise text, for the peer: ha.advertise if set, else a
 * URL per bound listener (its real port; a wildcard address 0.0.0.0 or ::
 * becomes gethostname()'s name). -1 if it does not fit in len. */
int broker_advertise(struct broker *b, char *buf, size_t len);
/* Starts wharfd again in this process, at once, as it was started
 * (b->argv): every descriptor is closed and the program executed anew, so
 * nothing of this broker survives (a fenced active becomes a standby).
 * Exits with status 75 if that fails or argv is not known. */
void broker_restart(struct broker *b) __attribute__((noreturn));
/* Runs until stopped by SIGTERM/SIGINT or broker_stop(). */
int broker_run(struct broker *b);
/* Graceful stop: no new connections, clients told, output flushed (bounded
 * by shutdown_grace), then the loop ends. */
void broker_stop(struct broker *b);
void broker_free(struct broker *b);

#endif
