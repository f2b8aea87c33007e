/* Durable topic subscriptions as every adapter keeps them: a router queue
 * bound to the subscription's topic pattern holds what arrives while no one
 * consumes it, and the store keeps the pattern under the key
 * "PREFIX QUEUE" (the value is the pattern's bytes), so that a later
 * attach, also after a restart, can resume, change or end the
 * subscription. The router and the store keep the queue and its binding
 * themselves. Event-loop thread only. */
#ifndef WHARF_DURABLE_SUB_H
#define WHARF_DURABLE_SUB_H

#include <stdbool.h>

#include "router/router.h"

struct broker;

/* Makes the durable subscription in `queue` one to `pattern` before the
 * caller binds or subscribes to it: one kept for another pattern ends
 * first, with its messages, as a JMS durable subscriber that changes topic
 * does. *fresh tells whether the subscription is new (the caller ends it
 * if subscribing fails). ROUTER_ESTORE when the store cannot keep it. */
enum router_err durable_sub_keep(struct broker *b, const char *prefix, const char *queue,
				 const char *pattern, bool *fresh);

/* Ends the durable subscription in `queue`, which no one may be consuming:
 * its binding, its queue with what waits there, and the store's record.
 * ROUTER_ENOTFOUND when there is no such subscription. */
enum router_err durable_sub_end(struct broker *b, const char *prefix, const char *queue);

#endif
