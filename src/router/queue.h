/* A queue: messages in FIFO order handed to competing consumers, each within
 * its credit and unacknowledged window, round-robin. A topic subscription is
 * a private queue with one consumer, so acks, windows and redelivery work the
 * same for both. With priorities on (the default), a message of a higher
 * priority (0-9) goes before every lower one, FIFO within a priority. A
 * message with a group (message_group) goes to the consumer its group is
 * pinned to (router/group.h). A message that cannot go now (refused by the
 * consumers able to take it, or its group's consumer busy) waits, and the
 * messages behind it go on, looking at most QUEUE_LOOKAHEAD of them ahead.
 * Event-loop thread only. */
#ifndef WHARF_ROUTER_QUEUE_H
#define WHARF_ROUTER_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "router/message.h"

struct queue;
struct consumer;
/* One message out to one consumer, awaiting its outcome. */
struct delivery;

struct consumer_ops {
	/* Sends `m` to the client. For a consumer that acknowledges, `d` stays
	 * valid until the consumer acks or nacks it or unsubscribes; for an
	 * auto-ack consumer, only during the call. Must not call back into the
	 * router, nor change m (it may take a reference). Returns 0 when sent,
	 * 1 when the consumer settled it at once (sent at most once, or
	 * skipped as no-local), -1 when it cannot take the message now: the
	 * message goes back to the queue and the consumer is paused. */
	int (*deliver)(void *ctx, struct delivery *d, struct message *m);
};

struct consumer_options {
	bool auto_ack;     /* settled when sent (STOMP ack:auto, MQTT QoS 0) */
	unsigned window;   /* most unacknowledged at once; 0 = no limit */
	bool credit_mode;  /* AMQP-style: deliver only against granted credit */
};

enum nack_outcome {
	NACK_RELEASE,  /* back to the queue, delivery count kept */
	NACK_FAILED,   /* back to the queue, counted as a failed delivery */
	NACK_REJECT,   /* never deliver again (dead-letter path) */
};

#define QUEUE_LOOKAHEAD 1000

struct queue_stats {
	uint64_t enqueued;
	uint64_t delivered;
	uint64_t acked;
	uint64_t dropped;  /* let go undelivered and not dead-lettered (enum queue_drop) */
	uint64_t rejected;
	uint64_t expired;
	uint64_t dead_lettered;
};

/* Why a queue let a message go undelivered (and not to a dead-letter queue). */
enum queue_drop {
	DROP_FULL,       /* sent at most once to a full queue: the newest goes */
	DROP_HEAD,             /* the drop-head policy made room */
	DROP_EXPIRED,    /* its time to live passed */
	DROP_DEAD,       /* rejected or redelivered too often, with no dead-letter queue */
	DROP_UNREADABLE, /* its page could not be read back */
	DROP_PURGED,     /* the queue was purged */
	DROP_NCAUSES
};
/* The cause's name in logs and $SYS topics: "full", "drop-head", ... */
const char *queue_drop_name(enum queue_drop why);

/* What a queue does with a message past its bound (max_ready). */
enum queue_overflow {
	/* Keep it and report the queue full, so its publisher is slowed; a
	 * message sent at most once (qos 0) is dropped instead, and counted. */
	QUEUE_BLOCK,
	/* Drop the oldest waiting message (of the lowest priority), and count
	 * it. */
	QUEUE_DROP_HEAD,
	/* Refuse new messages: queue_accepts() says so, and the router tells
	 * the publisher. */
	QUEUE_REJECT,
};

/* Why a message leaves a queue for its dead-letter queue. */
enum queue_death {
	QUEUE_DEATH_EXPIRED,
	QUEUE_DEATH_REJECTED,          /* NACK_REJECT */
	QUEUE_DEATH_MAX_REDELIVERIES,
};

/* A queue's policies (router/policy.h resolves them for named queues);
 * 0 means no limit. Expiry times count from the message's timestamp_ms
 * (from the enqueue when it has none). */
struct queue_limits {
	int64_t ttl_ms;             /* for messages that carry no expiry */
	int64_t retention_ms;       /* the longest any message may wait */
	size_t max_length;          /* waiting messages (max_ready) */
	size_t max_bytes;           /* bodies of the waiting messages */
	enum queue_overflow overflow;
	/* A message given back (failed, or its consumer gone) after more
	 * deliveries than 1 + this is dead-lettered instead. */
	uint32_t max_redeliveries;
	bool dead_letter_expired;
	bool priorities;
};

/* `name` is copied (NULL for a private subscription queue). `max_ready`
 * bounds the messages waiting (0 = no bound); past it, the overflow policy
 * (QUEUE_BLOCK unless set). Free with queue_free(), which drops consumers'
 * pointers too: consumers must be removed first. */
struct queue *queue_new(const char *name, size_t max_ready);
void queue_set_overflow(struct queue *q, enum queue_overflow overflow);
/* Replaces the queue's limits (queue_new: priorities on, nothing else).
 * Messages already waiting keep their expiry and priority. */
void queue_set_limits(struct queue *q, const struct queue_limits *l);
/* False when the overflow is QUEUE_REJECT and m would pass a bound: the
 * caller refuses the publish. Enqueueing never refuses by itself, so
 * that a stored message being restored is never lost. */
bool queue_accepts(const struct queue *q, const struct message *m);
/* Called, before the message is settled, for each message that leaves the
 * queue for a dead-letter queue: rejected, past max_redeliveries, or
 * expired with dead_letter_expired. Returns 0 once the dead-letter queue
 * has it, -1 when there is none or it cannot take it (the message is
 * dropped and counted). Must not call back into q. */
void queue_set_dead_letter_cb(struct queue *q,
			      int (*dead)(void *arg, struct queue *q, struct message *m,
					  enum queue_death why),
			      void *arg);
/* Drops (or dead-letters) expired messages at the head of each priority:
 * a periodic sweep, so an idle queue lets them go too. Messages that expire
 * before one ahead of them are caught at dispatch. */
void queue_expire(struct queue *q, int64_t now_ms);
void queue_set_max_ready(struct queue *q, size_t max_ready);

/* Where a queue past its memory limit keeps its tail (store/pager.h). */
struct queue_page_ops {
	/* Appends m (not kept); -1 when it cannot (m then stays in memory). */
	int (*put)(void *pager, const struct message *m, uint64_t rec);
	/* The oldest, as a new reference; NULL when empty or unreadable, or
	 * with errno EAGAIN while it is being read: ready comes then. */
	struct message *(*get)(void *pager, uint64_t *rec);
	/* ready(arg) runs on the loop, outside any call into the pager, once
	 * get can go on after an EAGAIN. */
	void (*set_ready)(void *pager, void (*ready)(void *arg), void *arg);
	/* Drops all; each(arg, rec) hears of each nonzero record, maybe after
	 * the pager is freed. */
	void (*purge)(void *pager, void (*each)(void *arg, uint64_t rec), void *arg);
	void (*free)(void *pager);
};
/* Paging: once the waiting messages cost `limit` bytes of memory (each
 * whole, message_mem_size and its delivery, not just bodies), new
 * messages go to `pager` (the queue owns it from now on, and frees it with
 * ops->free) and come back in order as the head drains below half of it.
 * Messages then keep arrival order, whatever their priority, until they
 * are back in memory. */
void queue_set_paging(struct queue *q, size_t limit, const struct queue_page_ops *ops, void *pager);
size_t queue_paged(const struct queue *q);      /* waiting in the pager */
/* True while the queue is past its bound (QUEUE_BLOCK): publishers should
 * wait; `room` is called once it drains to half (or is freed). */
bool queue_full(const struct queue *q);
void queue_set_room_cb(struct queue *q, void (*room)(void *arg), void *arg);
/* Hears of every message q lets go undelivered: n of them, for `why`. */
void queue_set_drop_cb(struct queue *q,
		       void (*dropped)(void *arg, struct queue *q, enum queue_drop why, uint64_t n),
		       void *arg);
/* What logs call a queue without a name (a private subscription's): a copy
 * of `label` is kept. -1 on out of memory. */
int queue_set_label(struct queue *q, const char *label);
/* The queue's name, else its label, else NULL. */
const char *queue_label(const struct queue *q);
void queue_free(struct queue *q);
const char *queue_name(const struct queue *q);
size_t queue_depth(const struct queue *q);      /* waiting */
size_t queue_unacked(const struct queue *q);    /* out to consumers */
size_t queue_consumer_count(const struct queue *q);
const struct queue_stats *queue_stats(const struct queue *q);
/* Bodies of the waiting messages, in memory and paged (max_bytes counts
 * the same). */
size_t queue_bytes(const struct queue *q);
/* The timestamp_ms of the oldest waiting message in memory (paged ones
 * are newer); 0 when none waits. */
int64_t queue_oldest_ms(const struct queue *q);
/* stats.dropped by cause: DROP_NCAUSES counts, indexed by enum queue_drop. */
const uint64_t *queue_drops(const struct queue *q);
/* Hands fn the first `limit` waiting messages in memory, in the order
 * they would be delivered, with how many deliveries each had, without
 * taking them (the admin API's browse; paged messages are not shown). fn
 * must not call back into q. Returns how many fn saw. */
size_t queue_browse(const struct queue *q, size_t limit,
		    void (*fn)(const struct message *m, uint32_t count, void *arg), void *arg);
/* Hands fn the waiting messages in memory in delivery order (paged ones
 * are not seen), up to `limit` taken: fn returns 1 when it has put the
 * message elsewhere (q then settles it and lets it go), 0 to leave it, -1
 * to stop. fn must not call back into q. Returns how many were taken. */
size_t queue_take(struct queue *q, size_t limit, int (*fn)(const struct message *m, void *arg),
		  void *arg);
/* How many topic bindings lead to q (kept by the router). */
unsigned queue_bindings(const struct queue *q);
void queue_set_bindings(struct queue *q, unsigned n);

/* Takes a new reference to m. -1 on out of memory. Dispatches at once. */
int queue_enqueue(struct queue *q, struct message *m);
/* The same for a message the store keeps as record `rec` (nonzero): the
 * settle callback hears of rec once the message is consumed or dropped. */
int queue_enqueue_stored(struct queue *q, struct message *m, uint64_t rec);
/* Called with the record of each stored message the queue is done with:
 * acknowledged, rejected, expired or dropped (not when the queue is freed). */
void queue_set_settle_cb(struct queue *q, void (*settled)(void *arg, uint64_t rec), void *arg);
/* Whether the stored message `rec` is still to be delivered (the store may
 * learn after restoring it that it was consumed): a dead one is dropped,
 * not settled again, when it comes back from the pager. */
void queue_set_alive_cb(struct queue *q, bool (*alive)(void *arg, uint64_t rec), void *arg);
/* Keeping the delivery count of stored messages across restarts: counted
 * hears of a stored message given back to the queue after `count`
 * deliveries; count_of is asked, before the first delivery of a stored
 * message since it was restored, how many it had before. */
void queue_set_count_cbs(struct queue *q, uint32_t (*count_of)(void *arg, uint64_t rec),
			 void (*counted)(void *arg, uint64_t rec, uint32_t count), void *arg);
/* Memory that the waiting messages of many queues share (the router's):
 * past `limit` (0: none) every queue that can page does, also below its
 * own limit, and `over` stays set until the total is back under half,
 * when `room` is called. */
struct mem_account {
	size_t used, limit;
	bool over;
	void (*room)(void *arg);
	void *room_arg;
};
/* q's waiting messages count in a too (which must outlive q). */
void queue_set_mem_account(struct queue *q, struct mem_account *a);
/* While *hold is true q hands nothing to its consumers (a planned
 * switch-over lets the deliveries already out be acknowledged first); hold
 * must outlive q. queue_dispatch() q once it is false again. */
void queue_set_hold(struct queue *q, const bool *hold);
/* Drops the dead messages waiting in memory (see above). */
void queue_drop_dead(struct queue *q);
/* Drops every waiting message, settling stored ones (a queue deleted). */
void queue_purge(struct queue *q);
/* The same for a topic's retained message handed to a new subscription:
 * marked as such (delivery_retained) and not subject to max_ready. */
int queue_enqueue_retained(struct queue *q, struct message *m);

/* A new consumer; NULL on out of memory. Dispatches at once. */
struct consumer *queue_consumer_add(struct queue *q, const struct consumer_options *opts,
				    const struct consumer_ops *ops, void *ctx);
/* Removes and frees c; its unacknowledged messages go back to the queue,
 * marked redelivered, in their original order (or, past max_redeliveries,
 * to the dead-letter queue), and its groups are pinned anew. */
void queue_consumer_remove(struct consumer *c);
struct queue *consumer_queue(const struct consumer *c);
void consumer_set_paused(struct consumer *c, bool paused);
void consumer_add_credit(struct consumer *c, unsigned credit);
void consumer_set_credit(struct consumer *c, unsigned credit);
unsigned consumer_credit(const struct consumer *c);
size_t consumer_unacked(const struct consumer *c);

/* Settles d (and, if cumulative, every earlier delivery of the same
 * consumer) as consumed. */
void delivery_ack(struct delivery *d, bool cumulative);
/* NACK_REJECT dead-letters the message; NACK_FAILED does once it is past
 * max_redeliveries. */
void delivery_nack(struct delivery *d, enum nack_outcome outcome);
/* delivery_nack, and d never goes to this consumer again (AMQP modified
 * with undeliverable-here). Until another consumer takes it, it waits and
 * the messages behind it go on. */
void delivery_nack_elsewhere(struct delivery *d, enum nack_outcome outcome);
/* The consumer's outstanding delivery of message `msg_id`, or NULL. */
struct delivery *consumer_find_delivery(struct consumer *c, uint64_t msg_id);
const struct message *delivery_message(const struct delivery *d);
uint32_t delivery_count(const struct delivery *d); /* 1 on first delivery */
struct consumer *delivery_consumer(const struct delivery *d);
/* True if d is a retained message sent because the consumer subscribed. */
bool delivery_retained(const struct delivery *d);

/* Runs dispatch again, e.g. after a consumer unpauses. */
void queue_dispatch(struct queue *q);

#endif
