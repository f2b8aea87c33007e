/* GET /api/v1/bindings (docs/admin-api.md): what feeds queues from
 * topics, from the router's topic tree: bindings to named queues
 * (configured, made at run time, durable subscriptions' and persistent
 * MQTT sessions' queues) and every
 * subscription's private or share group's queue. */
#include "config.h"

#include <jansson.h>
#include <string.h>

#include "admin/internal.h"
#include "broker.h"

static const char *binding_kind(const struct queue *q)
{
	const char *name = queue_name(q), *label = queue_label(q);
	/* The broker's own queues (docs/addressing.md): STOMP's ($stomp.)
	 * and AMQP's (wharf.durable.) durable subscriptions, MQTT
	 * persistent sessions' ($mqtt.). */
	if (name && (name[0] == '$' || !strncmp(name, "wharf.durable.", 14)))
		return "durable-subscription";
	if (name)
		return "queue";
	if (label && !strncmp(label, "share group", 11))
		return "share-group";
	return "subscription";
}

static void add_binding(const char *pattern, struct queue *q, void *arg)
{
	const char *label = queue_label(q);
	json_array_append_new(arg, json_pack("{s:s,s:s,s:s?,s:s?,s:I,s:I}", "pattern", pattern,
					     "kind", binding_kind(q), "queue", queue_name(q),
					     "label", queue_name(q) ? NULL : label, "consumers",
					     (json_int_t)queue_consumer_count(q), "depth",
					     (json_int_t)queue_depth(q)));
}

static const char *key_of(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

static int by_pattern(const void *x, const void *y)
{
	const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
	int c = strcmp(key_of(a, "pattern"), key_of(b, "pattern"));
	if (!c)
		c = strcmp(key_of(a, "queue"), key_of(b, "queue"));
	return c ? c : strcmp(key_of(a, "label"), key_of(b, "label"));
}

void admin_bindings(struct admin *a, struct evhttp_request *req)
{
	if (!admin_only_get(req))
		return;
	json_t *list = json_array();
	if (list)
		router_each_binding(a->b->router, add_binding, list);
	admin_reply_sorted(req, list, by_pattern);
}
