/* libFuzzer target for the MQTT session (protocols/mqtt), not only its
 * codec: two clients on one router send what the input says, in pieces,
 * with keep-alive, will-delay and session-expiry timers fired, so that
 * QoS 1 and 2 flows, retained messages, shared subscriptions, wills,
 * persistent sessions and session take-over of one meet the other's. The
 * harness (session_harness.h) stubs the connection functions and the store
 * (records in memory, confirmations a pass later). At the end the adapter's
 * broker-wide state is freed, made again from what the store kept (as at a
 * restart) and freed again; no subscription may be left, and
 * AddressSanitizer reports what leaked. */
#include "config.h"

#include "net/protocol.h"
#include "protocols/mqtt/session.h"
#include "tests/fuzz/session_harness.h"

/* The broker's protocol registry is not linked here: the MQTT adapter's
 * state is the one this target makes. */
static void *mqtt_state;

void *protocol_state(const struct broker *b, const struct proto_ops *ops)
{
	return mqtt_state;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool first;
	fuzz_once(&first);
	struct wharf_config *cfg = fuzz_cfg;
	if (first) {
		cfg->mqtt.receive_maximum = 4;
		cfg->mqtt.max_inflight = 4;
		cfg->mqtt.topic_alias_maximum = 4;
		cfg->mqtt.max_queued = 8;
		cfg->mqtt.max_subscriptions = 8;
	}
	if (size < 3)
		return 0;
	/* $SYS publishing, which costs four fifths of the speed, in inputs
	 * that ask for it. */
	cfg->mqtt.sys_interval_ms = fuzz_option(data) ? 10000 : 0;
	struct broker b = fuzz_broker();
	CHECK(mqtt_broker_init(&b, &mqtt_state) == 0);
	fuzz_run(&b, &mqtt_proto, data, size);
	mqtt_broker_free(mqtt_state);
	mqtt_state = NULL;
	event_base_loop(b.base, EVLOOP_NONBLOCK);
	/* A restart: persistent sessions come back from the records. */
	CHECK(mqtt_broker_init(&b, &mqtt_state) == 0);
	event_base_loop(b.base, EVLOOP_NONBLOCK);
	mqtt_broker_free(mqtt_state);
	mqtt_state = NULL;
	event_base_loop(b.base, EVLOOP_NONBLOCK);
	fuzz_store_flush();
	CHECK(router_stats(b.router)->subscriptions == 0);
	router_free(b.router);
	fuzz_records_clear();
	return 0;
}
