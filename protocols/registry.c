/* Every protocol the broker serves: the one file that names the adapters.
 * A new protocol is one entry here (and its sources in Makefile.am);
 * listeners, the WebSocket layer and the broker find it through
 * net/protocol.h. The order is the one listings and error texts use. */
#include "config.h"
#include "net/protocol.h"

#include "protocols/amqp/session.h"
#include "protocols/mqtt/session.h"
#include "protocols/stomp/session.h"

/* The WebSocket subprotocols of DESIGN.md §1. */
static const char *const stomp_subprotocols[] = { "v12.stomp", "v11.stomp", "v10.stomp",
						  "stomp", NULL };
static const char *const mqtt_subprotocols[] = { "mqtt", NULL };
static const char *const amqp_subprotocols[] = { "amqp", NULL };

static const struct protocol stomp = {
	.name = "stomp",
	.scheme = "stomp",
	.tls_scheme = "stomps",
	.ws_subprotocols = stomp_subprotocols,
	.ops = &stomp_proto,
};

static const struct protocol mqtt = {
	.name = "mqtt",
	.scheme = "mqtt",
	.tls_scheme = "mqtts",
	.ws_subprotocols = mqtt_subprotocols,
	/* MQTT over WebSocket is binary only [MQTT-6.0.0-1]. */
	.ws_text_refused = "MQTT needs binary frames",
	.ops = &mqtt_proto,
	.init = mqtt_broker_init,
	.fini = mqtt_broker_free,
	.sessions = &mqtt_sessions,
};

static const struct protocol amqp = {
	.name = "amqp",
	.scheme = "amqp",
	.tls_scheme = "amqps",
	.ws_subprotocols = amqp_subprotocols,
	.ops = &amqp_proto,
};

const struct protocol *const protocols[] = { &stomp, &mqtt, &amqp, NULL };

_Static_assert(sizeof(protocols) / sizeof(protocols[0]) <= PROTOCOLS_MAX + 1,
	       "struct broker has a state slot for each protocol");
