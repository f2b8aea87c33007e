#include "config.h"
#include "router/policy.h"

#include <stdlib.h>
#include <string.h>

#include "router/address.h"

struct policy_rule {
	struct policy_rule *next;
	struct queue_policy p;
	char pattern[];
};

int policy_add(struct policy_rule **rules, const char *pattern, const struct queue_policy *p)
{
	size_t len = strlen(pattern);
	struct policy_rule *rule = calloc(1, sizeof(*rule) + len + 1);
	if (!rule)
		return -1;
	rule->p = *p;
	rule->p.dead_letter_queue = NULL;
	if (p->dead_letter_queue && !(rule->p.dead_letter_queue = strdup(p->dead_letter_queue))) {
		free(rule);
		return -1;
	}
	memcpy(rule->pattern, pattern, len + 1);
	while (*rules)
		rules = &(*rules)->next;
	*rules = rule;
	return 0;
}

void policy_free(struct policy_rule *rules)
{
	while (rules) {
		struct policy_rule *next = rules->next;
		free(rules->p.dead_letter_queue);
		free(rules);
		rules = next;
	}
}

/* The first rule that matches `queue` and sets `field`, or NULL. */
static const struct queue_policy *find(const struct policy_rule *rules, const char *queue,
				       unsigned field)
{
	for (; rules; rules = rules->next)
		if ((rules->p.set & field) && address_match(rules->pattern, queue))
			return &rules->p;
	return NULL;
}

void policy_limits(const struct policy_rule *rules, const char *queue, struct queue_limits *out)
{
	memset(out, 0, sizeof(*out));
	out->retention_ms = POLICY_DEFAULT_RETENTION_MS;
	out->priorities = true;
	const struct queue_policy *p;
	if ((p = find(rules, queue, POLICY_TTL)))
		out->ttl_ms = p->limits.ttl_ms;
	if ((p = find(rules, queue, POLICY_RETENTION)))
		out->retention_ms = p->limits.retention_ms;
	if ((p = find(rules, queue, POLICY_MAX_LENGTH)))
		out->max_length = p->limits.max_length;
	if ((p = find(rules, queue, POLICY_MAX_BYTES)))
		out->max_bytes = p->limits.max_bytes;
	if ((p = find(rules, queue, POLICY_OVERFLOW)))
		out->overflow = p->limits.overflow;
	if ((p = find(rules, queue, POLICY_MAX_REDELIVERIES)))
		out->max_redeliveries = p->limits.max_redeliveries;
	if ((p = find(rules, queue, POLICY_DEAD_LETTER_EXPIRED)))
		out->dead_letter_expired = p->limits.dead_letter_expired;
	if ((p = find(rules, queue, POLICY_PRIORITIES)))
		out->priorities = p->limits.priorities;
}

char *policy_dead_letter_queue(const struct policy_rule *rules, const char *queue)
{
	const struct queue_policy *p = find(rules, queue, POLICY_DEAD_LETTER_QUEUE);
	if (p)
		return strcmp(p->dead_letter_queue, queue) ? strdup(p->dead_letter_queue) : NULL;
	size_t plen = strlen(POLICY_DLQ_PREFIX);
	if (!strncmp(queue, POLICY_DLQ_PREFIX, plen))
		return NULL;
	char *name = malloc(plen + strlen(queue) + 1);
	if (name) {
		memcpy(name, POLICY_DLQ_PREFIX, plen);
		strcpy(name + plen, queue);
	}
	return name;
}
