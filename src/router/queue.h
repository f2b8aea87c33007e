/* A queue: messages in FIFO order handed to competing consumers, each within
 * its credit and unacknowledged window, round-robin. A topic subscription is
 * a private queue with one consumer, so acks, windows and redelivery work the
 * same for both. Event-loop thread only. */
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

struct queue_stats {
	uint64_t enqueued;
	uint64_t delivered;
	uint64_t acked;
	uint64_t dropped;  /* removed by overflow or expiry */
	uint64_t rejected;
};

/* What a queue does with a message past its bound (max_ready). */
enum queue_overflow {
	/* Keep it and report the queue full, so its publisher is slowed; a
	 * message sent at most once (qos 0) is dropped instead, and counted. */
	QUEUE_BLOCK,
	/* Drop the oldest waiting message, and count it. */
	QUEUE_DROP_HEAD,
};

/* `name` is copied (NULL for a private subscription queue). `max_ready`
 * bounds the messages waiting (0 = no bound); past it, the overflow policy
 * (QUEUE_BLOCK unless set). Free with queue_free(), which drops consumers'
 * pointers too: consumers must be removed first. */
struct queue *queue_new(const char *name, size_t max_ready);
void queue_set_overflow(struct queue *q, enum queue_overflow overflow);
/* True while the queue is past its bound (QUEUE_BLOCK): publishers should
 * wait; `room` is called once it drains to half (or is freed). */
bool queue_full(const struct queue *q);
void queue_set_room_cb(struct queue *q, void (*room)(void *arg), void *arg);
void queue_free(struct queue *q);
const char *queue_name(const struct queue *q);
size_t queue_depth(const struct queue *q);      /* waiting */
size_t queue_unacked(const struct queue *q);    /* out to consumers */
size_t queue_consumer_count(const struct queue *q);
const struct queue_stats *queue_stats(const struct queue *q);
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
/* Drops every waiting message, settling stored ones (a queue deleted). */
void queue_purge(struct queue *q);
/* The same for a topic's retained message handed to a new subscription:
 * marked as such (delivery_retained) and not subject to max_ready. */
int queue_enqueue_retained(struct queue *q, struct message *m);

/* A new consumer; NULL on out of memory. Dispatches at once. */
struct consumer *queue_consumer_add(struct queue *q, const struct consumer_options *opts,
				    const struct consumer_ops *ops, void *ctx);
/* Removes and frees c; its unacknowledged messages go back to the queue,
 * marked redelivered, in their original order. */
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
