/* Internal to the AMQP adapter: the connection and the engine's events
 * (session.c), links and deliveries to the client (links.c), transfers from
 * the client (publish.c). */
#ifndef WHARF_AMQP_INTERNAL_H
#define WHARF_AMQP_INTERNAL_H

#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/link.h>
#include <stdbool.h>
#include <stdint.h>

#include "protocols/amqp/guard.h"
#include "router/confirm.h"
#include "router/router.h"
#include "util/buf.h"

struct broker;
struct conn;
struct event;

/* Credit each incoming link holds; topped up when half is used. */
#define AMQP_LINK_CREDIT 500
/* The delivery state of a transfer or outcome under a transaction
 * (AMQP 1.0 §4.5.5); proton has no name for it. */
#define AMQP_TRANSACTIONAL_STATE 0x34

struct amqp_link;
struct amqp_txn;

/* One connection; freed with it (amqp_proto.closed). */
struct amqp_conn {
	struct conn *c;
	struct broker *b;
	pn_connection_driver_t driver;
	struct event *flush_ev;     /* output made outside the driver's events */
	struct event *tick_ev;      /* the engine's idle-timeout deadlines */
	struct amqp_link *links;
	struct buf scratch;
	unsigned long next_temp;
	bool done;
	bool header_checked;        /* the first bytes were looked at for TLS */
	bool remote_opened;         /* the client's open has come */
	bool error_closed;          /* we sent close with an error: hang up once written */
	bool authenticating;        /* SASL init with the authenticator: nothing more is read */
	bool authenticated;         /* SASL passed: the connection has its principal */
	bool limited;               /* SASL passed but a connection limit refuses the open */
	bool unacked_paused;        /* links paused at max_unacked_per_connection */
	struct router_waiter waiter;  /* some link's destination is full */
	struct amqp_guard guard;      /* what the client sends, before the engine */
	struct amqp_txn *txns;        /* declared, not yet discharged */
	size_t ntxns, txn_bytes;      /* how many, the bytes of their messages */
	/* Outcomes of transfers waiting for the store: a durable message is
	 * accepted only once it is on disk. */
	struct confirm_queue confirms;
	uint64_t next_txn;
};

/* One attached link the broker serves; the connection's to free
 * (amqp_link_free). The proton link's context points to it. */
struct amqp_link {
	struct amqp_link *next;
	struct amqp_conn *ac;
	pn_link_t *link;
	enum dest_kind kind;
	char *name;                 /* NULL on a relay or coordinator link */
	bool relay;                 /* no target address: each message by its to */
	bool coordinator;           /* declares and discharges transactions */
	struct subscription *rs;    /* links to the client only */
	uint64_t next_tag;
	bool temporary;             /* a dynamic source's queue: deleted with the link */
	bool starved;               /* credit withheld: its destination is full */
	char *durable_queue;        /* a durable topic subscription's queue, or NULL */
};

/* session.c */
/* Output was made outside the engine's events: write it soon. */
void amqp_schedule_flush(struct amqp_conn *ac);
/* Ends the connection for something the client did, with this condition. */
void amqp_close_with_error(struct amqp_conn *ac, const char *cond, const char *why);

/* links.c */
/* The client attached a link: serve it, or refuse it with a condition. */
void amqp_link_open(struct amqp_conn *ac, pn_link_t *link);
/* Frees the link's state. `closed`: the client closed the link for good
 * (a durable subscription ends); else it only detached or went away. */
void amqp_link_free(struct amqp_conn *ac, struct amqp_link *al, bool closed);
/* The ACLs were reloaded: each link to the client whose subscription
 * they no longer allow is detached with amqp:unauthorized-access (a
 * durable subscription's queue stays, as on any detach). */
void amqp_links_acl_changed(struct amqp_conn *ac);
/* The client's credit on a link to it changed. */
void amqp_link_credit_changed(struct amqp_link *al);
/* Deliveries were settled (or went back with a link): links paused at
 * max_unacked_per_connection go on. */
void amqp_unacked_freed(struct amqp_conn *ac);
/* The client's outcome for a delivery it got from us. */
void amqp_outcome(struct amqp_conn *ac, pn_delivery_t *pd);
/* Applies an outcome (AMQP descriptor: 0x24 accepted... 0x27 modified; 0
 * for none) to the delivery of ours pd carries, and settles pd. */
void amqp_settle_outcome(pn_delivery_t *pd, uint64_t type, bool failed, bool undeliverable);
/* A refusing attach (null terminus), then a detach saying why. */
void amqp_refuse_link(pn_link_t *link, const char *cond, const char *why);
/* The AMQP error condition for a router error. */
const char *amqp_router_condition(enum router_err err);

/* txn.c */
/* A declare or discharge on a coordinator link: answered and settled. */
void amqp_txn_control(struct amqp_conn *ac, struct amqp_link *coordinator, pn_delivery_t *pd,
		      const char *bytes, size_t len);
/* A transfer under a transaction: m (a reference taken) goes to dest on
 * commit. Sets pd's disposition; -1 when it was refused. */
int amqp_txn_publish(struct amqp_conn *ac, pn_delivery_t *pd, struct message *m,
		     enum dest_kind kind, const char *dest);
/* An outcome under a transaction for a delivery of ours: kept for the
 * discharge. False when it names no transaction of this connection. */
bool amqp_txn_outcome(struct amqp_conn *ac, pn_delivery_t *pd);
/* pd is settled otherwise: its transactional outcome no longer counts. */
void amqp_txn_forget_delivery(struct amqp_conn *ac, pn_delivery_t *pd);
/* The link goes: its deliveries leave every transaction, and a coordinator
 * rolls back the transactions declared on it. */
void amqp_txn_link_gone(struct amqp_conn *ac, struct amqp_link *al);

/* publish.c */
/* A transfer from the client, once whole: route it and settle it. */
void amqp_receive(struct amqp_conn *ac, pn_delivery_t *pd);
/* confirm_queue release: settles the transfer with its outcome. */
void amqp_release_outcome(void *ctx, struct confirm *e);
/* The link goes: outcomes still waiting for the store are not sent. */
void amqp_outcomes_link_gone(struct amqp_conn *ac, pn_link_t *link);
/* The full destinations some links waited for have room: credit again. */
void amqp_room(struct router_waiter *w);

#endif
