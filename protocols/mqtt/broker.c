/* The MQTT adapter's broker-wide state: its start and end, and the $SYS
 * topics. */
#include "config.h"
#include "protocols/mqtt/session.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "broker.h"
#include "protocols/mqtt/internal.h"
#include "util/clock.h"

static void sys_publish(struct mqtt_broker *mb, const char *name, const char *text)
{
	router_publish_status(mb->b->router, name, text, NULL);
}

static void sys_count(struct mqtt_broker *mb, const char *name, uint64_t v)
{
	char text[32];
	snprintf(text, sizeof(text), "%" PRIu64, v);
	sys_publish(mb, name, text);
}

/* What Mosquitto publishes under $SYS/broker/, under the same names. */
static void sys_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqtt_broker *mb = arg;
	char text[64];
	snprintf(text, sizeof(text), "%" PRIu64 " seconds",
		 (uint64_t)(clock_mono_ms() - mb->b->started_ms) / 1000);
	sys_publish(mb, "$SYS.broker.version", "wharf " PACKAGE_VERSION);
	sys_publish(mb, "$SYS.broker.uptime", text);
	sys_count(mb, "$SYS.broker.clients.connected", mb->connected);
	sys_count(mb, "$SYS.broker.messages.received", mb->msgs_in);
	sys_count(mb, "$SYS.broker.messages.sent", mb->msgs_out);
	sys_count(mb, "$SYS.broker.bytes.received", mb->bytes_in);
	sys_count(mb, "$SYS.broker.bytes.sent", mb->bytes_out);
	const struct router_stats *rs = router_stats(mb->b->router);
	sys_count(mb, "$SYS.broker.retained messages.count", rs->retained);
	uint64_t dropped = 0;
	for (int why = 0; why < DROP_NCAUSES; why++) {
		char name[64];
		snprintf(name, sizeof(name), "$SYS.broker.messages.dropped.%s", queue_drop_name(why));
		sys_count(mb, name, rs->dropped[why]);
		dropped += rs->dropped[why];
	}
	sys_count(mb, "$SYS.broker.publish.messages.dropped", dropped);
}

int mqtt_sys_start(struct mqtt_broker *mb)
{
	unsigned ms = mb->b->cfg->mqtt.sys_interval_ms;
	if (mb->sys_ev || !ms)
		return 0;
	mb->sys_ev = event_new(mb->b->base, -1, EV_PERSIST, sys_cb, mb);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	if (!mb->sys_ev || event_add(mb->sys_ev, &tv) < 0) {
		if (mb->sys_ev)
			event_free(mb->sys_ev);
		mb->sys_ev = NULL;
		return -1;
	}
	sys_cb(-1, 0, mb);
	return 0;
}

int mqtt_broker_init(struct broker *b, void **state)
{
	struct mqtt_broker *mb = calloc(1, sizeof(*mb));
	if (!mb || !(mb->clients = map_new())) {
		free(mb);
		return -1;
	}
	mb->b = b;
	*state = mb;
	mqtt_sessions_restore(mb);
	return 0;
}

struct client_list {
	struct mqtt_client **v;
	size_t n;
};

static void collect_client(const char *key, void *value, void *arg)
{
	struct client_list *l = arg;
	l->v[l->n++] = value;
}

void mqtt_broker_free(void *state)
{
	struct mqtt_broker *mb = state;
	if (!mb)
		return;
	/* Collected first: freeing a client removes it from the map. */
	struct client_list l = { calloc(map_count(mb->clients) + 1, sizeof(*l.v)), 0 };
	if (l.v) {
		map_each(mb->clients, collect_client, &l);
		for (size_t i = 0; i < l.n; i++)
			mqtt_client_free(l.v[i], false);
		free(l.v);
	}
	if (mb->sys_ev)
		event_free(mb->sys_ev);
	map_free(mb->clients);
	free(mb);
}
