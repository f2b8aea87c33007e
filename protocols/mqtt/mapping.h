/* MQTT names and messages <-> the router's (DESIGN.md §3-4,
 * docs/mapping.md): '/' <-> '.', '+' <-> '*', '#' <-> '>', and a '.' inside
 * an MQTT level <-> '/', so every name round-trips. */
#ifndef WHARF_MQTT_MAPPING_H
#define WHARF_MQTT_MAPPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/mqtt/codec.h"
#include "router/message.h"

/* A malloc'd dotted name or pattern for an MQTT topic name or filter of
 * `len` bytes; NULL on out of memory. */
char *mqtt_to_router_name(const char *topic, size_t len);
/* False if some level is exactly "*" or ">": plain characters in MQTT, but
 * wildcards once mapped, so such a name or filter cannot be honoured. */
bool mqtt_name_mappable(const char *topic, size_t len);
/* The MQTT form of a dotted name, appended to out (NUL-terminated). */
int mqtt_from_router_name(struct buf *out, const char *name);

/* A new message for a decoded PUBLISH (payload copied once), with qos,
 * durable (qos >= 1), retain and the MQTT 5 properties mapped. NULL on out
 * of memory. */
struct message *mqtt_message_from_publish(const struct mqtt_packet *p, uint64_t origin,
					  int64_t now_ms);

/* Fills pkt (a PUBLISH, zeroed by the caller) with the properties of m for
 * an MQTT 5 client. Strings point into m and into *scratch, which the
 * caller frees with buf_free() after encoding. Returns -1 on out of memory. */
int mqtt_publish_props(struct mqtt_packet *pkt, const struct message *m, int64_t now_ms,
		       struct buf *scratch);

#endif
