/* Durable topic subscriptions of STOMP clients, and the client ids that
 * name them (docs/stomp.md). A durable subscription is named by the
 * client id of its connection and a subscription name; its messages wait
 * in the router queue "$stomp.HEX(client-id).HEX(name)", bound to its
 * topic pattern, kept as src/durable_sub.h says under the store key
 * "stomp/durable/QUEUE", so that any later connection with that client id,
 * also after a restart, can resume, change or end the subscription.
 * Event-loop thread only. */
#ifndef WHARF_STOMP_DURABLE_H
#define WHARF_STOMP_DURABLE_H

#include <stdbool.h>

#include "router/router.h"

struct broker;

/* Bytes a client id and a subscription name may have together: the
 * queue name (twice as long) and the store's keys for it stay small. */
#define STOMP_DURABLE_MAX_NAME 2000

/* The queue of the durable subscription `name` of `client_id`, for the
 * caller to free; NULL on out of memory or past STOMP_DURABLE_MAX_NAME. */
char *stomp_durable_queue(const char *client_id, const char *name);

/* Makes the durable subscription in `queue` one to `pattern` before the
 * caller subscribes with subscribe_options.durable_queue: one kept for
 * another pattern ends first, with its messages, as a JMS durable
 * subscriber that changes topic does. *fresh tells whether the
 * subscription is new (the caller ends it if subscribing fails).
 * ROUTER_ESTORE when the store cannot keep it. */
enum router_err stomp_durable_keep(struct broker *b, const char *queue, const char *pattern,
				   bool *fresh);

/* Ends the durable subscription in `queue`, which no one may be consuming:
 * its binding, its queue with what waits there, and the store's record.
 * ROUTER_ENOTFOUND when there is no such subscription. */
enum router_err stomp_durable_end(struct broker *b, const char *queue);

/* A connection's claim on a client id, embedded in its session: a client
 * id is held by one connection of a broker at a time. */
struct stomp_client_id {
	struct stomp_client_id *next, **prevp;
	const struct broker *b;
	char *id;  /* owned; NULL while nothing is claimed */
};

/* Claims `id` for this connection. 0, 1 when another connection of b holds
 * it, -1 on out of memory. */
int stomp_client_id_claim(struct stomp_client_id *c, const struct broker *b, const char *id);
/* Gives the id back; a no-op when none was claimed. */
void stomp_client_id_release(struct stomp_client_id *c);

#endif
