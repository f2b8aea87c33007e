#include "config.h"
#include "net/limits.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf.h"
#include "log.h"
#include "util/clock.h"
#include "util/loglimit.h"
#include "util/map.h"

/* A refusal's log line comes at most this often, with the count left out. */
#define LOG_EVERY_MS 10000
/* Idle addresses are swept out once this many are known, and then each
 * time their number has doubled. */
#define SWEEP_MIN 1024

/* One client address: its open connections and its bucket of new ones,
 * in thousandths of a connection, refilled at the configured rate. */
struct addr {
	unsigned long conns;
	uint64_t milli_tokens;
	int64_t refill_ms;
};

struct limits {
	struct map *addrs; /* host -> struct addr */
	struct map *users; /* user -> open connections, as uintptr_t */
	size_t sweep_at;
	struct log_limit rate_log, addr_log, user_log, subs_log;
	char why[96];
};

struct limits *limits_new(void)
{
	struct limits *l = calloc(1, sizeof(*l));
	if (!l || !(l->addrs = map_new()) || !(l->users = map_new())) {
		limits_free(l);
		return NULL;
	}
	l->sweep_at = SWEEP_MIN;
	return l;
}

static void free_value(const char *k, void *v, void *arg)
{
	free(v);
}

void limits_free(struct limits *l)
{
	if (!l)
		return;
	if (l->addrs) {
		map_each(l->addrs, free_value, NULL);
		map_free(l->addrs);
	}
	map_free(l->users);
	free(l);
}

/* The bucket as it is now: full after a second without connections. */
static void refill(struct addr *a, unsigned rate, int64_t now)
{
	uint64_t cap = (uint64_t)rate * 1000;
	uint64_t add = (uint64_t)(now - a->refill_ms) * rate;
	a->milli_tokens = a->milli_tokens + add > cap ? cap : a->milli_tokens + add;
	a->refill_ms = now;
}

struct sweep_ctx {
	struct map *keep;
	int64_t now;
	bool failed;
};

/* Keeps an address with connections open, or whose bucket is not yet
 * full again (forgetting it would hand it a full one). */
static void sweep_keep(const char *host, void *v, void *arg)
{
	struct sweep_ctx *sc = arg;
	const struct addr *a = v;
	if (!sc->failed && (a->conns || sc->now - a->refill_ms < 1000) &&
	    map_put(sc->keep, host, v) < 0)
		sc->failed = true;
}

static void sweep_free(const char *host, void *v, void *arg)
{
	if (!map_get(arg, host))
		free(v);
}

static void sweep(struct limits *l)
{
	struct sweep_ctx sc = { map_new(), clock_mono_ms(), false };
	if (!sc.keep)
		return;
	map_each(l->addrs, sweep_keep, &sc);
	if (sc.failed) {
		map_free(sc.keep);
		return;
	}
	map_each(l->addrs, sweep_free, sc.keep);
	map_free(l->addrs);
	l->addrs = sc.keep;
	l->sweep_at = map_count(l->addrs) * 2 > SWEEP_MIN ? map_count(l->addrs) * 2 : SWEEP_MIN;
}

bool limits_accept(struct limits *l, const struct wharf_config *cfg, const char *host)
{
	int64_t now = clock_mono_ms();
	unsigned rate = cfg->max_new_connections_per_address;
	struct addr *a = map_get(l->addrs, host);
	if (!a) {
		if (map_count(l->addrs) >= l->sweep_at)
			sweep(l);
		if (!(a = calloc(1, sizeof(*a))) || map_put(l->addrs, host, a) < 0) {
			free(a);
			return false;
		}
		a->milli_tokens = (uint64_t)rate * 1000;
		a->refill_ms = now;
	}
	if (rate) {
		refill(a, rate, now);
		if (a->milli_tokens < 1000) {
			unsigned long held;
			if (log_limit_pass(&l->rate_log, LOG_EVERY_MS, &held))
				log_warn("connection from %s refused: max_new_connections_per_address (%u per second) reached (%lu more refused since the last such line)",
					 host, rate, held);
			return false;
		}
		a->milli_tokens -= 1000;
	}
	a->conns++;
	return true;
}

void limits_closed(struct limits *l, const char *host)
{
	struct addr *a = map_get(l->addrs, host);
	if (a && a->conns)
		a->conns--;
}

/* The client's error and the log line of a refusal of `what` (a login, a
 * subscription) by `key` = `max`. */
static const char *refuse(struct limits *l, struct log_limit *ll, const char *key, size_t max,
			  const char *peer, const char *user, const char *what)
{
	unsigned long held;
	snprintf(l->why, sizeof(l->why), "%s (%zu) reached", key, max);
	if (log_limit_pass(ll, LOG_EVERY_MS, &held))
		log_warn("conn %s%s%s: %s refused: %s (%lu more refused since the last such line)",
			 peer, user ? " user " : "", user ? user : "", what, l->why, held);
	return l->why;
}

const char *limits_address_over(struct limits *l, const struct wharf_config *cfg,
				const char *host, const char *peer)
{
	const struct addr *a = map_get(l->addrs, host);
	size_t max = cfg->max_connections_per_address;
	if (!max || !a || a->conns <= max)
		return NULL;
	return refuse(l, &l->addr_log, "max_connections_per_address", max, peer, NULL, "login");
}

const char *limits_login(struct limits *l, const struct wharf_config *cfg, const char *user,
			 const char *peer)
{
	if (!user)
		return NULL;
	uintptr_t n = (uintptr_t)map_get(l->users, user);
	size_t max = cfg->max_connections_per_user;
	if (max && n >= max)
		return refuse(l, &l->user_log, "max_connections_per_user", max, peer, user, "login");
	if (map_put(l->users, user, (void *)(n + 1)) < 0)
		return "out of memory";
	return NULL;
}

void limits_logout(struct limits *l, const char *user)
{
	uintptr_t n = user ? (uintptr_t)map_get(l->users, user) : 0;
	if (n > 1)
		map_put(l->users, user, (void *)(n - 1));
	else if (n == 1)
		map_del(l->users, user);
}

const char *limits_subscription_refused(struct limits *l, const char *key, unsigned max,
					const char *peer)
{
	return refuse(l, &l->subs_log, key, max, peer, NULL, "subscription");
}
