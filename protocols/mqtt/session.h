/* The MQTT 3.1 / 3.1.1 / 5.0 adapter: connections, persistent client
 * sessions, subscriptions, QoS 1 and 2 flows, wills, retained messages and
 * $SYS topics, on the shared router. docs/mqtt.md says what it supports. */
#ifndef WHARF_MQTT_SESSION_H
#define WHARF_MQTT_SESSION_H

#include "net/conn.h"

struct broker;
struct mqtt_broker;
struct session_ops;

extern const struct proto_ops mqtt_proto;
/* The client sessions for the admin API (view.c). */
extern const struct session_ops mqtt_sessions;

/* The adapter's broker-wide state (client sessions by id, $SYS timer), the
 * registry's init and fini hooks (net/protocol.h): created at start-up once
 * the store is open, into *state, which then owns it: persistent sessions
 * come back then, with their expiry timers and offline bounds, whether or
 * not an MQTT client ever connects. -1 on out of memory. */
int mqtt_broker_init(struct broker *b, void **state);
/* Ends every client session and frees the state; run after every
 * connection is gone. */
void mqtt_broker_free(void *state);

#endif
