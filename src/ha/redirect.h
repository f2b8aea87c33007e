/* Where a node that is not active sends its clients (DESIGN.md §7): the
 * active node's client addresses, as the replication link hands them over
 * (broker_set_redirect), and the one that fits a connection. Each adapter
 * asks at its handshake and answers in its protocol's own way. */
#ifndef WHARF_HA_REDIRECT_H
#define WHARF_HA_REDIRECT_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct redirect;

struct redirect_target {
	char host[256];
	int port; /* 0: where the active node is, is not known */
};

/* Whether c is to be turned away at its handshake: this node is not
 * active (a standby). *to is then the active node's address for c's
 * protocol: over the same transport as c if the active advertises one
 * (TLS or not; WebSocket or not), else any of that protocol's (for a
 * WebSocket client: a ws/wss address first, then the protocol's own). */
bool broker_redirect_for(const struct conn *c, struct redirect_target *to);
/* "HOST:PORT" ("[HOST]:PORT" for an IPv6 address) into buf. */
void redirect_target_text(const struct redirect_target *to, char *buf, size_t len);

void redirect_free(struct redirect *r);

#endif
