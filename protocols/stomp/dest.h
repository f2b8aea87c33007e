/* STOMP destinations onto Wharf's queues and topics, in ActiveMQ's and
 * RabbitMQ's dialects (docs/stomp.md, "Dialects"). Pure: no router, no
 * session; any thread. */
#ifndef WHARF_STOMP_DEST_H
#define WHARF_STOMP_DEST_H

#include <stdbool.h>

#include "router/address.h"

/* [stomp] dialect, in the order of its config names. */
enum stomp_dialect {
	STOMP_DIALECT_BOTH,
	STOMP_DIALECT_ACTIVEMQ,
	STOMP_DIALECT_RABBITMQ,
};

struct stomp_dest {
	enum dest_kind kind;
	char *name;             /* the router's name; owned, free with stomp_dest_clear */
	const char *out_prefix; /* a topic's MESSAGE destination: this, then the topic */
	bool rabbit;            /* named only RabbitMQ's way */
	bool reply;             /* a /reply-queue/: a temp queue of another connection */
};

/* Maps `dest` (a SEND's when pattern is false, a SUBSCRIBE's when true)
 * onto d. -1 with *why set (for the ERROR frame) when the dialect has no
 * such destination, or out of memory. */
int stomp_dest_parse(const char *dest, enum stomp_dialect dialect, bool pattern,
		     struct stomp_dest *d, const char **why);
void stomp_dest_clear(struct stomp_dest *d);

#endif
