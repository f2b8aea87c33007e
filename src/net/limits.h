/* Connection limits by client address and by user (docs/operations.md,
 * "Connection limits"): max_connections_per_address,
 * max_new_connections_per_address (a token bucket refilled every second
 * with that many, holding at most that many), max_connections_per_user.
 * The limits are the config's, read at each call; the counts live here.
 * Loop thread only. */
#ifndef WHARF_NET_LIMITS_H
#define WHARF_NET_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

struct limits;
struct wharf_config;

/* NULL on out of memory. Free with limits_free once every counted
 * connection is gone. */
struct limits *limits_new(void);
void limits_free(struct limits *l);

/* A new connection from `host` (an address, no port):
 * false when the address has used up max_new_connections_per_address
 * (the caller closes it unread: nothing is spent on it) or on out of
 * memory, else counted as open from `host` until limits_closed. A
 * refusal logs a warn line at most every 10 s, with the count left out. */
bool limits_accept(struct limits *l, const struct wharf_config *cfg, const char *host);
/* The connection counted by limits_accept is gone. */
void limits_closed(struct limits *l, const char *host);

/* Whether a connection from `host` that is logging in is one too many
 * for max_connections_per_address (it counts itself); NULL when not,
 * else the limit's name and value for the client's error (static until
 * the next call). Logs the refusal (rate-limited). */
const char *limits_address_over(struct limits *l, const struct wharf_config *cfg,
				const char *host, const char *peer);
/* A login of `user` succeeded: counts it against max_connections_per_user
 * (until limits_logout), or returns the refusal's text as above. NULL
 * user (anonymous, or authentication off) is not counted. */
const char *limits_login(struct limits *l, const struct wharf_config *cfg, const char *user,
			 const char *peer);
void limits_logout(struct limits *l, const char *user);

/* A subscription from `peer` past `key` (max_subscriptions_per_connection,
 * or MQTT's max_subscriptions_per_client) = `max`: the refusal's text for
 * the client (static until the next call), logged as above. */
const char *limits_subscription_refused(struct limits *l, const char *key, unsigned max,
					const char *peer);

#endif
