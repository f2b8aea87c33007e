/* The protocol registry (net/protocol.h, protocols/registry.c): lookups by
 * listener scheme and WebSocket subprotocol, the texts made from it, and
 * the bounds struct broker and the WebSocket handshake rely on. */
#include "config.h"

#include <stdbool.h>
#include <string.h>

#include "net/listener.h"
#include "net/conn.h"
#include "net/protocol.h"
#include "tap.h"

int main(void)
{
	size_t np = 0, nsub = 0;
	for (; protocols[np]; np++)
		for (const char *const *s = protocols[np]->ws_subprotocols; s && *s; s++)
			nsub++;
	ok(np <= PROTOCOLS_MAX, "%zu protocols, a broker state slot each (PROTOCOLS_MAX %d)", np,
	   PROTOCOLS_MAX);
	ok(nsub <= PROTOCOL_SUBPROTOCOLS_MAX, "%zu WebSocket subprotocols fit (at most %d)", nsub,
	   PROTOCOL_SUBPROTOCOLS_MAX);
	for (size_t i = 0; i < np; i++)
		ok(protocols[i]->ops && !strcmp(protocols[i]->ops->name, protocols[i]->name) &&
		   !protocols[i]->init == !protocols[i]->fini,
		   "%s: ops of that name, init and fini together", protocols[i]->name);

	bool tls = true;
	const struct protocol *p = protocol_by_scheme("mqtt", &tls);
	ok(p && !strcmp(p->name, "mqtt") && !tls, "mqtt: MQTT, plain");
	p = protocol_by_scheme("stomps", &tls);
	ok(p && !strcmp(p->name, "stomp") && tls, "stomps: STOMP over TLS");
	ok(!protocol_by_scheme("ws", &tls) && !protocol_by_scheme("http", &tls),
	   "ws and http name no protocol");
	p = protocol_by_subprotocol("v11.stomp");
	ok(p && !strcmp(p->name, "stomp"), "v11.stomp: STOMP");
	p = protocol_by_subprotocol("mqtt");
	ok(p && p->ws_text_refused, "mqtt: text frames refused");
	p = protocol_by_subprotocol("amqp");
	ok(p && !p->ws_text_refused, "amqp: text frames allowed");
	ok(!protocol_by_subprotocol("mqttv3.1"), "mqttv3.1 is not offered");

	char text[256];
	protocol_schemes_text(text, sizeof(text));
	is_str(text, "stomp, stomps, mqtt, mqtts, amqp, amqps", "listener schemes listed");
	protocol_subprotocols_text(text, sizeof(text));
	is_str(text, "v12.stomp, v11.stomp, v10.stomp, stomp, mqtt or amqp", "subprotocols listed");
	protocol_subprotocols_text(text, 12);
	ok(strlen(text) == 11, "a short buffer cuts the list: '%s'", text);
	const char *why = NULL;
	ok(listener_url_check("foo://127.0.0.1:1", &why) < 0 && why &&
	   !strcmp(why, "unsupported scheme (supported: stomp, stomps, mqtt, mqtts, amqp, amqps, ws, wss)"),
	   "unsupported scheme: %s", why ? why : "(none)");
	ok(listener_url_check("wss://127.0.0.1:1", &why) == 0, "wss is a listener scheme");
	return tap_done();
}
