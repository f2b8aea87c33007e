/* The router: named queues and topics, subscriptions, topic -> queue
 * bindings. It knows no protocol: adapters call the functions below and the
 * router reaches them through struct consumer_ops (router/queue.h). One
 * struct router holds all its state, so a test can run several in one
 * process. Event-loop thread only. */
#ifndef WHARF_ROUTER_ROUTER_H
#define WHARF_ROUTER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "router/address.h"
#include "router/message.h"
#include "router/policy.h"
#include "router/queue.h"
#include "util/hist.h"

/* The one list of errors the router reports; each adapter turns them into
 * its protocol's own in one function. */
enum router_err {
	ROUTER_OK = 0,
	ROUTER_ENOMEM,      /* out of memory: the operation did nothing */
	ROUTER_EINVAL,      /* a malformed destination name */
	ROUTER_ENOTFOUND,   /* no such destination and auto-create is off */
	ROUTER_EFORBIDDEN,  /* a name reserved for the broker ($SYS...) */
	ROUTER_ESTORE,      /* the store could not keep a durable message */
	ROUTER_EFULL,       /* a queue full with overflow reject-publish refused it */
	ROUTER_PENDING,     /* not an error: the confirmation comes later */
	ROUTER_EDENIED,     /* the ACLs do not allow it (auth/acl.h) */
};

const char *router_strerror(enum router_err err);

struct router_options {
	size_t topic_max_pending; /* bound of each non-durable topic subscription */
	size_t queue_memory_limit; /* memory (whole messages) a named queue keeps
				      before it pages (with a store) */
	size_t broker_memory_limit; /* memory all queues' waiting messages may use
				       before every queue pages and publishers
				       of non-durable messages are slowed; 0: none */
};

struct router;
struct subscription;
struct acl;
struct acl_who;
struct users;

/* NULL on out of memory. Free with router_free() after every subscription
 * has been removed. */
struct router *router_new(const struct router_options *opts);
void router_free(struct router *r);

/* The access rules every client's publish and subscription is checked
 * against (auth/acl.h), with the users whose groups they name; NULL acl:
 * everything allowed. Both are borrowed: the broker sets them again
 * whenever it reloads them, which voids every connection's cached
 * decisions. A denial is ROUTER_EDENIED, logged (rate-limited per
 * connection) by the router. */
void router_set_acl(struct router *r, const struct acl *acl, const struct users *users);

/* Whether a destination matching `pattern` may be created on first use
 * (the default is yes). The most specific rule is the first added that
 * matches: add exact names before wildcards. */
enum router_err router_set_auto_create(struct router *r, enum dest_kind kind, const char *pattern,
				       bool allowed);
/* Adds a queue policy rule (router/policy.h says how rules combine); queues
 * that exist already take it too. `p` is copied. */
enum router_err router_set_queue_policy(struct router *r, const char *pattern,
					const struct queue_policy *p);
/* Drops or dead-letters the expired messages at the heads of every named
 * queue: the broker calls it periodically. */
void router_expire(struct router *r);
/* Every message published to a topic matching `pattern` is also enqueued,
 * once, in `queue` (created now if it does not exist). */
enum router_err router_bind(struct router *r, const char *pattern, const char *queue);

/* Removes a binding made by router_bind (the queue stays). */
enum router_err router_unbind(struct router *r, const char *pattern, const char *queue);
/* Deletes a queue and drops its messages; refused (ROUTER_EINVAL) while it
 * has consumers or bindings. */
enum router_err router_delete_queue(struct router *r, const char *queue);

/* Whether the queue `queue` exists now. */
bool router_has_queue(const struct router *r, const char *queue);

/* Whether a publish to that destination could succeed now: it exists or
 * may be created, the name is valid and not the broker's, and `who` (NULL:
 * not checked) may publish there (and create the queue). */
enum router_err router_may_publish(struct router *r, enum dest_kind kind, const char *name,
				   struct acl_who *who);

/* A publisher waiting to hear that its durable message is safe in the
 * store. The adapter owns it (embedded in its own per-publish state) and
 * sets `done`; the router and store own `pending` while it is set. */
struct router_confirm {
	/* Called once, from the event loop, never inside router_publish:
	 * ROUTER_OK when every copy of the message is in the store, else
	 * ROUTER_ESTORE. */
	void (*done)(struct router_confirm *c, enum router_err err);
	void *pending;
};

/* One publish as its publisher asks for it, and what it learns besides the
 * result: the router keeps nothing of it once router_publish returns. */
struct publish_ctx {
	bool broker_own;                /* the broker's own: reserved names allowed */
	/* When not NULL and the message (or the topic's retained message)
	 * goes into the store, router_publish returns ROUTER_PENDING and calls
	 * confirm->done once it is there; any other result is final and done
	 * is not called. confirm->pending is NULL, or the store's from records
	 * confirm already waits for (store_put_confirmed): it is then
	 * confirmed once they are on disk too. */
	struct router_confirm *confirm;
	/* The publisher's authenticated user (conn_principal: a user name,
	 * or "anonymous"): set on the message as MESSAGE_USER_PROP,
	 * replacing what the client sent, so consumers can trust it; for
	 * "anonymous" the property is removed. NULL: the broker's own
	 * publish (a will, $SYS), left as it is. */
	const char *principal;
	/* Who publishes, for the ACLs (router_set_acl): the client's
	 * connection's (conn_acl_who). NULL: not checked (the broker's own
	 * publishes, the admin API until it has users). */
	struct acl_who *who;
	/* Out: this publish left some destination full (or the store too
	 * busy), so its publisher is to be slowed (router_wait_room). */
	bool blocked;
};

/* Publishes *m to a queue or topic; takes the caller's reference and sets
 * *m to NULL, whatever the outcome. Sets the message's id, timestamp and
 * destination. A topic message with `retain` set becomes the topic's
 * retained message (an empty body clears it). `ctx` may be NULL: a
 * client's publish that no one waits for. */
enum router_err router_publish(struct router *r, enum dest_kind kind, const char *name,
			       struct message **m, struct publish_ctx *ctx);
/* The broker's own UTF-8 text as the retained message of `topic` (a
 * $SYS... name), with a content type unless NULL: what a late subscriber
 * to one of the broker's status topics reads first. */
enum router_err router_publish_status(struct router *r, const char *topic, const char *text,
				      const char *content_type);
/* ROUTER_PENDING, and c->done is called once every acknowledgement and
 * message recorded so far is on disk (a client's ack with a receipt);
 * ROUTER_OK at once when nothing is stored; ROUTER_ESTORE when the store
 * cannot. */
enum router_err router_sync(struct router *r, struct router_confirm *c);
/* The publisher goes away: c->done will not be called. A no-op when c is
 * not pending. */
void router_confirm_cancel(struct router *r, struct router_confirm *c);

/* How the router keeps durable messages and run-time bindings; the store
 * installs it (store/store.h). Without one, nothing is kept. */
struct router_persist {
	/* A durable message is going into the named queue: write it. Returns
	 * its record number (nonzero), or 0 when it cannot be written (the
	 * publish fails with ROUTER_ESTORE). `c`, when not NULL, is to be
	 * confirmed once the record is on disk (c->pending is the store's). */
	uint64_t (*put)(void *arg, const char *queue, const struct message *m,
			struct router_confirm *c);
	/* The stored message `rec` is consumed or dropped. */
	void (*settled)(void *arg, uint64_t rec);
	void (*cancel)(void *arg, struct router_confirm *c);
	/* A binding made (bind true) or removed at run time. 0, or -1 when it
	 * cannot be written (the call fails with ROUTER_ESTORE). */
	int (*bound)(void *arg, const char *pattern, const char *queue, bool bind);
	/* Topic's retained message is now m, or none (m NULL). `c`, when not
	 * NULL, is to be confirmed once m's record is on disk too. 0, or -1
	 * when it cannot be written: with c the publish fails with
	 * ROUTER_ESTORE, without it the failure is logged. */
	int (*retained)(void *arg, const char *topic, const struct message *m,
			struct router_confirm *c);
	/* Confirms c once everything written so far (acks included) is on
	 * disk. 0, or -1 when it cannot (c is not pending then). */
	int (*sync)(void *arg, struct router_confirm *c);
	/* The stored message `rec` goes back to its queue after `count`
	 * deliveries (a NACK, a consumer gone): keep the count, so that
	 * redelivery and max_redeliveries go on after a restart. */
	void (*counted)(void *arg, uint64_t rec, uint32_t count);
	/* How many deliveries the stored message `rec` had before the
	 * restart, asked once before its first delivery since; 0 if none. */
	uint32_t (*count_of)(void *arg, uint64_t rec);
	/* Whether the stored message `rec` is still to be delivered: at
	 * start-up, an ack read after the message was restored makes it dead;
	 * router_drop_dead() then drops what is in memory, paged ones go as
	 * they come back. */
	bool (*alive)(void *arg, uint64_t rec);
	/* A pager for a named queue's tail past queue_memory_limit, with
	 * page_ops to use it (router/queue.h); NULL when there is none. */
	void *(*pager_new)(void *arg, const char *queue);
	const struct queue_page_ops *page_ops;
	/* True while the store has too much waiting for the disk: publishers
	 * are slowed as for a full queue until it calls router_room(). */
	bool (*busy)(void *arg);
	void *arg;
};

/* Installs (or, with NULL, removes) the persistence hooks. Queues that exist
 * already are covered too. */
void router_set_persist(struct router *r, const struct router_persist *p);
/* At start-up, from the store: puts a stored message back at the tail of
 * its queue (created if needed) as record `rec`. Takes the caller's
 * reference and sets *m to NULL. */
enum router_err router_restore(struct router *r, const char *queue, struct message **m,
			       uint64_t rec);
/* At start-up, from the store: makes *m the retained message of `topic`.
 * Takes the caller's reference and sets *m to NULL. */
enum router_err router_restore_retained(struct router *r, const char *topic, struct message **m);
/* At start-up, once replay is done: drops restored messages that are dead
 * (see alive above) from every queue, without settling them again. */
void router_drop_dead(struct router *r);
/* Something that slowed publishers has room again (see busy above). */
void router_room(struct router *r);

struct subscribe_options {
	struct consumer_options consumer;
	/* Topics: members of one share group on one pattern compete for its
	 * messages, each message to one member (MQTT $share/GROUP/filter).
	 * NULL for a subscription of one's own. */
	const char *share_group;
	/* Topics: first hand the subscription the retained messages that
	 * match its pattern. */
	bool retained;
	/* Topics: bound of the subscription's own queue; 0 means the router's
	 * topic_max_pending. */
	size_t max_pending;
	/* Topics: a durable subscription. Its messages wait in this named
	 * queue, bound to the pattern (both created if needed, and kept
	 * across restarts by the store), also while no one consumes it;
	 * router_unsubscribe leaves them, router_drop_durable ends them. */
	const char *durable_queue;
	/* Queues: the subscriber made this queue for itself (an AMQP dynamic
	 * reply queue, wharf.temp.*), which no one else may consume. */
	bool owner;
	/* Who subscribes, for the ACLs (router_set_acl): the client's
	 * connection's (conn_acl_who). NULL: not checked (the broker's own,
	 * sessions restored at start-up). */
	struct acl_who *who;
};

/* Subscribes to a queue (competing consumers) or a topic pattern (a private
 * queue, or a share group's queue). A queue named `$...` or `wharf.durable.*`
 * is the broker's, and one named `wharf.temp.*` its maker's (`owner`):
 * refused (ROUTER_EFORBIDDEN). Returns NULL and sets *err on failure.
 * Unsubscribe with router_unsubscribe(). */
struct subscription *router_subscribe(struct router *r, enum dest_kind kind, const char *name,
				      const struct subscribe_options *opts,
				      const struct consumer_ops *ops, void *ctx,
				      enum router_err *err);
/* Removes the subscription; unacknowledged queue messages are redelivered
 * to other consumers. Frees s. */
void router_unsubscribe(struct router *r, struct subscription *s);
struct consumer *subscription_consumer(const struct subscription *s);
/* Ends a durable subscription (subscribe_options.durable_queue) that has no
 * subscriber: removes the binding and the queue with what it holds. */
enum router_err router_drop_durable(struct router *r, const char *pattern, const char *queue);
/* Whether the ACLs (router_set_acl) still let `who` have the
 * subscription s (one made with subscribe_options.who; others are not
 * checked): after a reload an adapter ends those they no longer allow. A
 * denial is logged (acl_denied). */
bool router_recheck(struct router *r, struct subscription *s, struct acl_who *who);
/* Hands a topic subscription the retained messages matching its pattern
 * again (MQTT: a repeated SUBSCRIBE). Nothing for share groups and queues. */
void router_send_retained(struct router *r, struct subscription *s);

/* A publisher waiting for room: after a publish that filled a queue
 * (publish_ctx.blocked), an adapter slows its client (holds back its
 * confirmations or stops reading it) and waits here; `room` is called once
 * some full queue has drained. The waiter is the adapter's to own. */
struct router_waiter {
	struct router_waiter *next, **prevp;
	void (*room)(struct router_waiter *w);
};

void router_wait_room(struct router *r, struct router_waiter *w);
void router_cancel_wait(struct router_waiter *w);

struct router_stats {
	uint64_t published;
	uint64_t queues;
	uint64_t subscriptions;
	uint64_t retained;
	uint64_t dropped[DROP_NCAUSES]; /* let go undelivered, by cause, since start */
	/* Durable publishes: from the publish to its confirmation's release
	 * to the adapter (router/confirm.h). */
	struct hist confirm_latency;
};
const struct router_stats *router_stats(const struct router *r);
/* Calls fn once for each destination that let messages go undelivered
 * since the last call, with its counts by cause (a queue's name, or
 * "subscription PATTERN" or "share group GROUP PATTERN"), then forgets them. */
void router_take_drops(struct router *r,
		       void (*fn)(const char *label, const uint64_t n[DROP_NCAUSES], void *arg),
		       void *arg);
/* A durable publish's confirmation went to its publisher `seconds` after
 * the publish (router/confirm.c). */
void router_confirmed(struct router *r, double seconds);
/* The named queue, or NULL (tests, admin). */
struct queue *router_find_queue(const struct router *r, const char *name);

/* ---- for the admin API: read-only snapshots and commands ---------------- */

/* Calls fn for each named queue, in no order. fn must not change the
 * router. */
void router_each_queue(const struct router *r, void (*fn)(struct queue *q, void *arg), void *arg);
/* Calls fn for each topic known to exist (published to or subscribed to by
 * name), in no order, with how many bindings its name matches
 * (subscriptions, share groups, bound queues) and whether it has a
 * retained message. fn must not change the router. */
void router_each_topic(const struct router *r,
		       void (*fn)(const char *name, size_t subscribers, bool retained, void *arg),
		       void *arg);
size_t router_topic_count(const struct router *r);
/* A planned switch-over: while on, named queues (which keep what outlives
 * a node) deliver nothing, so that what is out to consumers can be
 * acknowledged before the hand-over; private subscriptions go on. Off,
 * they deliver again. */
void router_hold_deliveries(struct router *r, bool on);
/* Deliveries of named queues out to consumers and not yet acknowledged. */
size_t router_unacked(const struct router *r);
/* Calls fn for each topic binding, in no order: its pattern and the queue
 * it feeds, whose name (queue_name) is a named queue's (router_bind, a
 * durable subscription's wharf.durable.* queue), or NULL for a
 * subscription's private queue or a share group's, which queue_label
 * names. fn must not change the router. */
void router_each_binding(const struct router *r,
			 void (*fn)(const char *pattern, struct queue *q, void *arg), void *arg);
/* Creates the named queue whatever auto-create says; *created is false
 * when it existed already. ROUTER_EINVAL for a malformed name,
 * ROUTER_EFORBIDDEN for the broker's ($..., wharf.durable.*) and
 * wharf.temp.* names. */
enum router_err router_create_queue(struct router *r, const char *name, bool *created);
/* Drops every waiting message of the named queue (counted as purged;
 * stored ones are settled); messages out to consumers stay theirs.
 * *purged says how many. ROUTER_ENOTFOUND if there is no such queue. */
enum router_err router_purge_queue(struct router *r, const char *name, size_t *purged);

/* Moves up to `limit` (0: no limit) waiting messages of queue `src`, in
 * delivery order, to queue `dst` (created if auto-create allows), or with
 * dst NULL each to the queue its x-original-destination names (a
 * dead-letter queue's messages back where they died, without the two
 * dead-letter properties; those without one, or whose queue is gone,
 * stay: *skipped). Each goes as a new message (new id, timestamp now)
 * through the store first when durable, then the original is settled:
 * router_sync then confirms once every moved message is on disk. Only
 * messages in memory move, not paged ones. Stops at the first a queue
 * refuses (ROUTER_EFULL) or the store cannot keep (ROUTER_ESTORE), with
 * *moved saying how many went. ROUTER_ENOTFOUND: no queue src; EINVAL:
 * dst is src or malformed. */
enum router_err router_move(struct router *r, const char *src, const char *dst, size_t limit,
			    size_t *moved, size_t *skipped);

#endif
