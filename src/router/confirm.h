/* A publisher's confirmations, released in the order it published. A
 * durable publish waits for the store, and whatever the same client sent
 * after it waits behind it: MQTT requires PUBACKs in order, and STOMP and
 * AMQP clients expect receipts and outcomes so. Used by the protocol
 * adapters, one queue per connection. Event-loop thread only. */
#ifndef WHARF_ROUTER_CONFIRM_H
#define WHARF_ROUTER_CONFIRM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "router/router.h"

struct confirm_queue;

struct confirm {
	struct router_confirm rc;  /* the router's */
	struct confirm_queue *q;
	struct confirm *next;
	bool ready;
	enum router_err err;       /* the outcome, once ready */
	bool blocked;              /* the publish left a destination full */
	int64_t stored_us;         /* a durable publish's start (hist_now_us), else 0 */
	/* The adapter's, for its release callback: */
	uint64_t tag;
	char *text;                /* freed with the entry */
	void *ptr;
};

struct confirm_queue {
	struct router *r;
	struct confirm *head, **tail;
	size_t n;                  /* entries waiting */
	struct confirm *spare;     /* recycled entries */
	/* Called for each entry in order once it and all before it are ready;
	 * the entry is recycled after the call unless it re-arms it
	 * (confirmq_rearm). It may not clear the queue. */
	void (*release)(void *ctx, struct confirm *e);
	void *ctx;
};

void confirmq_init(struct confirm_queue *q, struct router *r,
		   void (*release)(void *ctx, struct confirm *e), void *ctx);
/* A new entry at the tail, not ready; NULL on out of memory. */
struct confirm *confirmq_push(struct confirm_queue *q);
/* Publishes through the router for entry e (from confirmq_push), with
 * ctx's other fields (ctx may be NULL). A result other than ROUTER_PENDING
 * makes e ready at once (released in order, maybe from inside this call);
 * ROUTER_PENDING makes it ready when the store has the message. Returns
 * the router's result; e->blocked (and ctx->blocked) tell whether the
 * publish left a destination full. */
enum router_err confirmq_publish(struct confirm_queue *q, struct confirm *e, enum dest_kind kind,
				 const char *name, struct message **m, struct publish_ctx *ctx);
/* Entry e becomes ready once what the store holds so far is on disk
 * (router_sync): for receipts of acknowledgements. */
void confirmq_sync(struct confirm_queue *q, struct confirm *e);
/* Entry e becomes ready once the store records e->rc was joined to
 * (store_put_confirmed, store_del_confirmed) are on disk, with ROUTER_OK,
 * or ROUTER_ESTORE if one could not be written; at once, with ROUTER_OK,
 * when it was joined to none. */
void confirmq_await(struct confirm_queue *q, struct confirm *e);
/* From the release callback of e, after joining e->rc to more store
 * records (store_put_confirmed, store_del_confirmed): true when e then
 * stays first, holding back the entries behind it, and is released again
 * once those records are on disk (e->err their outcome); false when there
 * was nothing to wait for, and e goes now. */
bool confirmq_rearm(struct confirm_queue *q, struct confirm *e);
/* Marks e ready with outcome err and releases what can go. */
void confirmq_ready(struct confirm_queue *q, struct confirm *e, enum router_err err);
static inline bool confirmq_empty(const struct confirm_queue *q) { return q->n == 0; }
/* Drops every entry without releasing it (the connection goes away) and
 * frees what the queue holds. */
void confirmq_clear(struct confirm_queue *q);

#endif
