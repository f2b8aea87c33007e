/* Connection limits by address and by user (net/limits.h). */
#include "config.h"

#include <stdio.h>
#include <time.h>

#include "conf.h"
#include "net/limits.h"
#include "tap.h"

int main(void)
{
	struct wharf_config *cfg = config_new();
	struct limits *l = limits_new();
	ok(cfg && l, "made");

	/* New connections: a bucket of 3 per address, each address its own. */
	cfg->max_new_connections_per_address = 3;
	cfg->max_connections_per_address = 0;
	int in = 0;
	for (int i = 0; i < 4; i++)
		in += limits_accept(l, cfg, "10.0.0.1");
	ok(in == 3, "3 of 4 new connections from one address let in (%d)", in);
	ok(limits_accept(l, cfg, "10.0.0.2"), "another address has its own bucket");
	/* Closing does not give the bucket back; time does (one per 333 ms). */
	limits_closed(l, "10.0.0.1");
	ok(!limits_accept(l, cfg, "10.0.0.1"), "a close is no new token");
	bool refilled = false;
	for (int i = 0; i < 200 && !refilled; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		refilled = limits_accept(l, cfg, "10.0.0.1");
	}
	ok(refilled, "the bucket refills");

	/* Open connections per address: counted from accept to close. */
	cfg->max_new_connections_per_address = 0;
	cfg->max_connections_per_address = 2;
	limits_accept(l, cfg, "10.0.0.3");
	limits_accept(l, cfg, "10.0.0.3");
	ok(!limits_address_over(l, cfg, "10.0.0.3", "10.0.0.3:1"), "2 of 2: not over");
	limits_accept(l, cfg, "10.0.0.3");
	is_str(limits_address_over(l, cfg, "10.0.0.3", "10.0.0.3:1"),
	       "max_connections_per_address (2) reached", "the third is over");
	limits_closed(l, "10.0.0.3");
	ok(!limits_address_over(l, cfg, "10.0.0.3", "10.0.0.3:1"), "one closed: not over");
	cfg->max_connections_per_address = 0;
	limits_accept(l, cfg, "10.0.0.3");
	ok(!limits_address_over(l, cfg, "10.0.0.3", "10.0.0.3:1"), "0: no limit");

	/* Per user: counted from login to logout; anonymous not at all. */
	cfg->max_connections_per_user = 2;
	ok(!limits_login(l, cfg, "alice", "p") && !limits_login(l, cfg, "alice", "p"),
	   "alice's first two logins");
	is_str(limits_login(l, cfg, "alice", "p"), "max_connections_per_user (2) reached",
	       "her third refused");
	ok(!limits_login(l, cfg, "bob", "p"), "bob is counted apart");
	limits_logout(l, "alice");
	ok(!limits_login(l, cfg, "alice", "p"), "after a logout alice may log in again");
	for (int i = 0; i < 5; i++)
		ok(!limits_login(l, cfg, NULL, "p"), "anonymous login %d not counted", i);
	limits_logout(l, NULL);
	limits_logout(l, "nobody");

	is_str(limits_subscription_refused(l, "max_subscriptions_per_connection", 7, "p"),
	       "max_subscriptions_per_connection (7) reached", "a subscription refusal's text");

	/* Many addresses: idle ones are swept (ASan checks nothing leaks). */
	for (int i = 0; i < 5000; i++) {
		char host[32];
		snprintf(host, sizeof(host), "10.1.%d.%d", i / 256, i % 256);
		if (limits_accept(l, cfg, host))
			limits_closed(l, host);
	}
	ok(limits_accept(l, cfg, "10.0.0.9"), "still working after 5,000 addresses");

	limits_free(l);
	config_free(cfg);
	return tap_done();
}
