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
#include "router/queue.h"

/* The one list of errors the router reports; each adapter turns them into
 * its protocol's own in one function. */
enum router_err {
	ROUTER_OK = 0,
	ROUTER_ENOMEM,      /* out of memory: the operation did nothing */
	ROUTER_EINVAL,      /* a malformed destination name */
	ROUTER_ENOTFOUND,   /* no such destination and auto-create is off */
	ROUTER_EFORBIDDEN,  /* a name reserved for the broker ($SYS...) */
};

const char *router_strerror(enum router_err err);

struct router_options {
	size_t topic_max_pending; /* bound of each non-durable topic subscription */
};

struct router;
struct subscription;

/* NULL on out of memory. Free with router_free() after every subscription
 * has been removed. */
struct router *router_new(const struct router_options *opts);
void router_free(struct router *r);

/* Whether a destination matching `pattern` may be created on first use
 * (the default is yes). The most specific rule is the first added that
 * matches: add exact names before wildcards. */
enum router_err router_set_auto_create(struct router *r, enum dest_kind kind, const char *pattern,
				       bool allowed);
/* Every message published to a topic matching `pattern` is also enqueued,
 * once, in `queue` (created now if it does not exist). */
enum router_err router_bind(struct router *r, const char *pattern, const char *queue);

/* Removes a binding made by router_bind (the queue stays). */
enum router_err router_unbind(struct router *r, const char *pattern, const char *queue);
/* Deletes a queue and drops its messages; refused (ROUTER_EINVAL) while it
 * has consumers or bindings. */
enum router_err router_delete_queue(struct router *r, const char *queue);

/* Whether a publish to that destination could succeed now: it exists or
 * may be created, and the name is valid and not the broker's. */
enum router_err router_may_publish(struct router *r, enum dest_kind kind, const char *name);

/* Publishes *m to a queue or topic; takes the caller's reference and sets
 * *m to NULL, whatever the outcome. Sets the message's id, timestamp and
 * destination. A topic message with `retain` set becomes the topic's
 * retained message (an empty body clears it). `broker_own` allows the
 * reserved names. */
enum router_err router_publish(struct router *r, enum dest_kind kind, const char *name,
			       struct message **m, bool broker_own);

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
};

/* Subscribes to a queue (competing consumers) or a topic pattern (a private
 * queue, or a share group's queue). Returns NULL and sets *err on failure.
 * Unsubscribe with router_unsubscribe(). */
struct subscription *router_subscribe(struct router *r, enum dest_kind kind, const char *name,
				      const struct subscribe_options *opts,
				      const struct consumer_ops *ops, void *ctx,
				      enum router_err *err);
/* Removes the subscription; unacknowledged queue messages are redelivered
 * to other consumers. Frees s. */
void router_unsubscribe(struct router *r, struct subscription *s);
struct consumer *subscription_consumer(const struct subscription *s);
/* Hands a topic subscription the retained messages matching its pattern
 * again (MQTT: a repeated SUBSCRIBE). Nothing for share groups and queues. */
void router_send_retained(struct router *r, struct subscription *s);

/* A publisher waiting for room: after a publish that filled a queue
 * (router_last_blocked), an adapter slows its client (holds back its
 * confirmations or stops reading it) and waits here; `room` is called once
 * some full queue has drained. The waiter is the adapter's to own. */
struct router_waiter {
	struct router_waiter *next, **prevp;
	void (*room)(struct router_waiter *w);
};

/* True if the last router_publish left some destination queue full. */
bool router_last_blocked(const struct router *r);
void router_wait_room(struct router *r, struct router_waiter *w);
void router_cancel_wait(struct router_waiter *w);

struct router_stats {
	uint64_t published;
	uint64_t queues;
	uint64_t subscriptions;
	uint64_t retained;
};
const struct router_stats *router_stats(const struct router *r);
/* The named queue, or NULL (tests, admin). */
struct queue *router_find_queue(const struct router *r, const char *name);

#endif
