/* The one normalized message every protocol maps onto (DESIGN.md §4).
 * Reference-counted and immutable once published: the router and every
 * delivery share one copy, body included, whatever protocol reads it. */
#ifndef WHARF_ROUTER_MESSAGE_H
#define WHARF_ROUTER_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "router/address.h"

#define MESSAGE_DEFAULT_PRIORITY 4
/* The user property that names a message's group (router/group.h): JMS's
 * name, which STOMP clients send as a header; adapters map their own group
 * fields onto it. */
#define MESSAGE_GROUP_PROP "JMSXGroupID"
/* The user property that names the publisher's authenticated user (its
 * principal, docs/security.md): JMS's name, as ActiveMQ sets it. The
 * router sets it on every client's publish by a user
 * (publish_ctx.principal), replacing whatever the client put there, and
 * removes it from an anonymous client's: present, it can be trusted. */
#define MESSAGE_USER_PROP "JMSXUserID"

struct msg_prop {
	char *name;
	char *value;
	size_t value_len;
};

struct message {
	unsigned refs;
	uint64_t id;           /* set by the router on publish */
	int64_t timestamp_ms;  /* set by the router on publish */
	int64_t expiry_ms;     /* absolute, ms since the epoch; 0 = never */
	uint8_t priority;      /* 0-9 */
	bool durable;          /* kept across a restart; implies qos >= 1 */
	uint8_t qos;           /* what the publisher asked: 0 at most once,
				  1 at least once, 2 exactly once */
	bool retain;           /* published as the topic's retained message */
	uint8_t payload_format; /* 1: the body is UTF-8 text; 0: unspecified */
	uint64_t origin;       /* the publishing connection, for no-local */
	enum dest_kind dest_kind; /* where it was published; set by the router */
	char *dest;               /* dotted name; set by the router */
	char *content_type;
	char *correlation_id;  /* NUL-terminated, but may hold any bytes: */
	size_t correlation_id_len;
	char *reply_to;        /* "queue://NAME" or "topic://NAME", or as given */
	size_t nprops;
	struct msg_prop *props; /* user properties, in the order received */
	uint8_t *body;
	size_t body_len;
	/* The whole AMQP encoding of a message an AMQP client sent, so AMQP
	 * consumers get its sections (annotations, body types) unchanged. */
	uint8_t *amqp;
	size_t amqp_len;
};

/* A new empty message with one reference; NULL on out of memory. */
struct message *message_new(void);
struct message *message_ref(struct message *m);
/* Drops one reference; the last one frees the message. NULL is fine. */
void message_unref(struct message *m);

/* Setters for building a message before it is published; -1 on out of
 * memory. They copy their arguments, except message_take_body. */
int message_set(char **field, const char *value);
/* Sets a field that may hold any bytes; a NUL is added after them. */
int message_set_bytes(char **field, size_t *len, const void *value, size_t value_len);
int message_add_prop(struct message *m, const char *name, const char *value, size_t value_len);
/* Replaces the value of the first property called `name`, or adds one. */
int message_set_prop(struct message *m, const char *name, const char *value);
/* Removes every property called `name`. */
void message_del_prop(struct message *m, const char *name);
/* Takes ownership of *body (malloc'd) and sets *body to NULL. */
void message_take_body(struct message *m, uint8_t **body, size_t len);
/* A new message (one reference) with every field of m copied, for a
 * changed copy of a published one; NULL on out of memory. */
struct message *message_copy(const struct message *m);
/* What one allocation of n bytes costs with the allocator's own header and
 * rounding (glibc malloc: 16-byte steps, 32 at least), 0 for none. */
size_t mem_block(size_t n, bool allocated);
/* What m costs in memory: the struct, each field, property and body, as
 * allocated. For memory limits: queue_memory_limit counts this. */
size_t message_mem_size(const struct message *m);
/* The value of m's group property, or NULL: the first property named
 * MESSAGE_GROUP_PROP. */
const char *message_group(const struct message *m);

/* Reply-to addresses are kept protocol-neutral: "queue://x", "topic://x". */
#define ADDR_QUEUE_PREFIX "queue://"
#define ADDR_TOPIC_PREFIX "topic://"

#endif
