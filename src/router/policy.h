/* Queue policies by name pattern ([queue PATTERN] sections): each field of
 * a named queue's limits comes from the first rule, in the order added,
 * whose pattern matches the queue and that sets that field, as for
 * router_set_auto_create; a field no matching rule sets keeps its default
 * (retention POLICY_DEFAULT_RETENTION_MS, priorities on, no other limit).
 * Event-loop thread only. */
#ifndef WHARF_ROUTER_POLICY_H
#define WHARF_ROUTER_POLICY_H

#include <stdint.h>

#include "router/queue.h"

#define POLICY_DEFAULT_RETENTION_MS (4LL * 24 * 3600 * 1000)
#define POLICY_MAX_RETENTION_MS (14LL * 24 * 3600 * 1000)
/* The default dead-letter queue of queue NAME is DLQ_PREFIX NAME; a queue
 * whose own name starts so has none unless a rule names one, so that a
 * dead-letter queue's own expired or rejected messages do not cascade. */
#define POLICY_DLQ_PREFIX "DLQ."

/* Which fields of a struct queue_policy a rule sets. */
enum {
	POLICY_TTL = 1 << 0,
	POLICY_RETENTION = 1 << 1,
	POLICY_MAX_LENGTH = 1 << 2,
	POLICY_MAX_BYTES = 1 << 3,
	POLICY_OVERFLOW = 1 << 4,
	POLICY_MAX_REDELIVERIES = 1 << 5,
	POLICY_DEAD_LETTER_QUEUE = 1 << 6,
	POLICY_DEAD_LETTER_EXPIRED = 1 << 7,
	POLICY_PRIORITIES = 1 << 8,
};

struct queue_policy {
	unsigned set;              /* POLICY_* bits */
	struct queue_limits limits;
	char *dead_letter_queue;   /* owned by whoever fills the struct */
};

struct policy_rule;

/* Appends a rule for `pattern` (copied, with p). -1 on out of memory. */
int policy_add(struct policy_rule **rules, const char *pattern, const struct queue_policy *p);
void policy_free(struct policy_rule *rules);
/* The limits of the named queue. */
void policy_limits(const struct policy_rule *rules, const char *queue, struct queue_limits *out);
/* The named queue's dead-letter queue (malloc'd), or NULL when it has none
 * or on out of memory. */
char *policy_dead_letter_queue(const struct policy_rule *rules, const char *queue);

#endif
