#include "config.h"
#include "protocols/stomp/dest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* Parses dest and checks what it maps to; want_name NULL: refused. */
static void check(const char *dest, enum stomp_dialect dialect, bool pattern,
		  enum dest_kind want_kind, const char *want_name, const char *want_prefix)
{
	struct stomp_dest d;
	const char *why = NULL;
	int rc = stomp_dest_parse(dest, dialect, pattern, &d, &why);
	if (!want_name) {
		ok(rc < 0 && why && d.name == NULL, "%s (dialect %d, pattern %d): refused", dest,
		   dialect, pattern);
		return;
	}
	ok(rc == 0 && d.kind == want_kind, "%s (dialect %d, pattern %d): kind", dest, dialect,
	   pattern);
	is_str(d.name, want_name, "%s: name", dest);
	is_str(d.out_prefix ? d.out_prefix : "", want_prefix ? want_prefix : "", "%s: prefix", dest);
	stomp_dest_clear(&d);
}

int main(void)
{
	const enum stomp_dialect B = STOMP_DIALECT_BOTH, A = STOMP_DIALECT_ACTIVEMQ,
				 R = STOMP_DIALECT_RABBITMQ;
	check("/queue/orders", B, false, DEST_QUEUE, "orders", NULL);
	check("/topic/s.t1", A, false, DEST_TOPIC, "s.t1", "/topic/");
	check("/topic/s.>", A, true, DEST_TOPIC, "s.>", "/topic/");
	check("/topic/s.*", A, false, 0, NULL, NULL);
	check("/queue/", B, false, 0, NULL, NULL);
	check("/nowhere/x", B, false, 0, NULL, NULL);
	/* '#' is RabbitMQ's where it is spoken, a plain word where not. */
	check("/topic/s.#", B, true, DEST_TOPIC, "s.>", "/topic/");
	check("/topic/#", R, true, DEST_TOPIC, ">", "/topic/");
	check("/topic/s.#", A, true, DEST_TOPIC, "s.#", "/topic/");
	check("/topic/s.#", B, false, DEST_TOPIC, "s.#", "/topic/");
	check("/topic/a.#.b", B, true, 0, NULL, NULL);
	check("/topic/a.#x", B, true, DEST_TOPIC, "a.#x", "/topic/");
	check("/amq/queue/q1", B, false, DEST_QUEUE, "q1", NULL);
	check("/amq/queue/q1", A, false, 0, NULL, NULL);
	check("/reply-queue/wharf.temp.1.1", B, false, DEST_QUEUE, "wharf.temp.1.1", NULL);
	check("/reply-queue/wharf.temp.1.1", B, true, 0, NULL, NULL);
	check("/exchange/amq.topic/a.*.#", R, true, DEST_TOPIC, "a.*.>", "/exchange/amq.topic/");
	check("/exchange/amq.topic/a.b", A, false, 0, NULL, NULL);
	check("/exchange/amq.direct/k.1", B, true, DEST_TOPIC, "k.1", "/exchange/amq.direct/");
	check("/exchange/amq.direct/k.*", B, true, 0, NULL, NULL);
	check("/exchange/amq.fanout", B, true, DEST_TOPIC, "amq.fanout", "/exchange/");
	check("/exchange/amq.fanout/any.key", B, false, DEST_TOPIC, "amq.fanout", "/exchange/");
	check("/exchange/amq.fanoutx", B, false, 0, NULL, NULL);
	check("/exchange/mine/k", B, false, 0, NULL, NULL);
	check("/exchange/amq.topic/", B, false, 0, NULL, NULL);
	return tap_done();
}
