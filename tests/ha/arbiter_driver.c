/* Runs one arbiter (src/ha/arbiter.h) on an event loop, for
 * tests/integration/test_arbiter.py.
 *
 *   arbiter_driver etcd://HOST:PORT PAIR NODE_ID LEASE_TTL_MS
 *
 * Prints each event as a line on stdout, times on clock_mono_ms() (which
 * is CLOCK_MONOTONIC, as Python's time.monotonic()):
 *   ready | elected EPOCH | follower NAME | lost MS | renewed SENT_MS |
 *   resigned (the resign's revoke was answered or failed)
 *   synced ok|failed (a sync command's write)
 * and reads commands from stdin: campaign, resign, sync NODE (- for none),
 * quit (or end of input).
 * The arbiter's log goes to stderr. */
#include "config.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ha/arbiter.h"
#include "log.h"
#include "util/clock.h"

struct driver {
	struct event_base *base;
	struct arbiter *arbiter;
	struct event *stdin_ev, *resign_ev;
	char line[256];
	size_t len;
};

static void elected(void *arg, uint64_t epoch)
{
	printf("elected %" PRIu64 "\n", epoch);
	fflush(stdout);
}

static void follower(void *arg, const char *node_id)
{
	printf("follower %s\n", node_id);
	fflush(stdout);
}

static void lost(void *arg)
{
	printf("lost %" PRId64 "\n", clock_mono_ms());
	fflush(stdout);
}

static void renewed(void *arg, int64_t sent_ms)
{
	printf("renewed %" PRId64 "\n", sent_ms);
	fflush(stdout);
}

/* After a resign: polls until the revoke is done. */
static void resign_cb(evutil_socket_t fd, short what, void *arg)
{
	struct driver *d = arg;
	if (arbiter_idle(d->arbiter)) {
		printf("resigned\n");
		fflush(stdout);
		return;
	}
	struct timeval tv = { 0, 10000 };
	evtimer_add(d->resign_ev, &tv);
}

static void synced(void *arg, bool ok)
{
	printf("synced %s\n", ok ? "ok" : "failed");
	fflush(stdout);
}

static void command(struct driver *d, const char *cmd)
{
	if (!strncmp(cmd, "sync ", 5)) {
		arbiter_set_sync(d->arbiter, strcmp(cmd + 5, "-") ? cmd + 5 : NULL, synced, d);
	} else if (!strcmp(cmd, "campaign")) {
		arbiter_campaign(d->arbiter);
	} else if (!strcmp(cmd, "resign")) {
		arbiter_resign(d->arbiter);
		struct timeval tv = { 0, 0 };
		evtimer_add(d->resign_ev, &tv);
	} else if (!strcmp(cmd, "quit")) {
		event_base_loopexit(d->base, NULL);
	} else if (*cmd) {
		fprintf(stderr, "arbiter_driver: unknown command '%s'\n", cmd);
	}
}

static void stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	struct driver *d = arg;
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n <= 0) {
		event_base_loopexit(d->base, NULL);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			d->line[d->len] = '\0';
			d->len = 0;
			command(d, d->line);
		} else if (d->len < sizeof(d->line) - 1) {
			d->line[d->len++] = buf[i];
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s etcd://HOST:PORT PAIR NODE_ID LEASE_TTL_MS\n", argv[0]);
		return 2;
	}
	log_set_level(LOG_DEBUG);
	struct driver d = { 0 };
	static const struct arbiter_cbs cbs = { elected, follower, lost, renewed };
	d.base = event_base_new();
	if (!d.base)
		return 1;
	d.arbiter = arbiter_new(d.base, argv[1], argv[2], argv[3], (unsigned)atoi(argv[4]), &cbs, &d);
	d.stdin_ev = event_new(d.base, 0, EV_READ | EV_PERSIST, stdin_cb, &d);
	d.resign_ev = evtimer_new(d.base, resign_cb, &d);
	if (!d.arbiter || !d.stdin_ev || !d.resign_ev)
		return 1;
	event_add(d.stdin_ev, NULL);
	printf("ready\n");
	fflush(stdout);
	event_base_dispatch(d.base);
	arbiter_free(d.arbiter);
	event_free(d.stdin_ev);
	event_free(d.resign_ev);
	event_base_free(d.base);
	return 0;
}
