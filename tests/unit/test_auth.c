/* The authenticator (auth/auth.h) on a loop of its own: answers never
 * inside the call, the cache of successes, the constant failure delay, the
 * throttle per address, cancelling, reloading. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/users.h"
#include "log.h"
#include "loop.h"
#include "tap.h"

struct answer {
	int n;
	enum auth_result r;
	int64_t at_ms;
	int seq; /* the order answers came in */
	char reason[96]; /* "" when none */
};

/* The reason of the last answer ask() waited for. */
static char last_reason[96];

static void done(void *arg, enum auth_result r, const char *reason)
{
	static int answers;
	struct answer *a = arg;
	a->seq = ++answers;
	a->n++;
	a->r = r;
	a->at_ms = now_ms();
	snprintf(a->reason, sizeof(a->reason), "%s", reason ? reason : "");
}

static void write_users_cost(const char *path, const char *name, const char *pw, unsigned cost)
{
	char *hash = users_hash(pw, strlen(pw), cost);
	FILE *f = fopen(path, "w");
	fprintf(f, "%s:%s\n", name, hash);
	fclose(f);
	free(hash);
}

static void write_users(const char *path, const char *name, const char *pw)
{
	write_users_cost(path, name, pw, 10);
}

/* Asks and waits; the answer and how long it took. */
static enum auth_result ask(struct event_base *base, struct auth *a, const char *peer,
			    const char *user, const char *pw, bool anon, int64_t *took)
{
	struct answer ans = { 0 };
	int64_t t = now_ms();
	struct auth_request *r = auth_request(a, "test", peer, user, pw, pw ? strlen(pw) : 0, anon,
					      done, &ans);
	ok(r && ans.n == 0, "asked %s: no answer inside the call", user ? user : "(anonymous)");
	run_until(base, &ans.n, 1, 5000);
	if (took)
		*took = ans.at_ms - t;
	memcpy(last_reason, ans.reason, sizeof(last_reason));
	return ans.n == 1 ? ans.r : (enum auth_result)-1;
}

int main(void)
{
	char dir[] = "/tmp/wharf-auth-unit-XXXXXX", path[64], err[256];
	log_set_level(LOG_ERROR);
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/users", dir);
	write_users(path, "alice", "secret");
	struct event_base *base = new_base();
	struct auth_options o = { .users_file = path, .failure_delay_ms = 150, .max_failures = 3,
				  .window_ms = 1500 };
	struct auth *a = auth_new(base, &o, err, sizeof(err));
	ok(a && auth_enabled(a), "made (%s)", a ? "" : err);
	int64_t took;

	ok(ask(base, a, "10.0.0.1:1", "alice", "secret", false, NULL) == AUTH_OK && !*last_reason,
	   "right password, no reason");
	ok(ask(base, a, "10.0.0.1:2", "alice", "secret", false, &took) == AUTH_OK && took < 20,
	   "again, from the cache (%lld ms)", (long long)took);
	ok(ask(base, a, "10.0.0.2:1", "alice", "wrong", false, &took) == AUTH_BAD_CREDENTIALS &&
		   took >= 145,
	   "wrong password, after the delay (%lld ms)", (long long)took);
	ok(!strcmp(last_reason, "wrong password"), "its reason: %s", last_reason);
	ok(ask(base, a, "10.0.0.2:1", "bob", "x", false, &took) == AUTH_BAD_CREDENTIALS && took >= 145,
	   "unknown user, after the delay");
	ok(!strcmp(last_reason, "unknown user"), "its reason: %s", last_reason);
	ok(ask(base, a, "10.0.0.3:1", NULL, NULL, false, &took) == AUTH_NO_ANONYMOUS && took >= 145,
	   "anonymous refused where not allowed, after the delay");
	ok(ask(base, a, "10.0.0.4:1", NULL, NULL, true, &took) == AUTH_OK && took < 20,
	   "anonymous allowed");

	/* 10.0.0.2 has 2 failures; a third reaches the limit. */
	ask(base, a, "10.0.0.2:9", "alice", "wrong", false, NULL);
	enum auth_result res = ask(base, a, "10.0.0.2:1", "alice", "secret", false, &took);
	ok(res == AUTH_THROTTLED && took >= 145,
	   "past the limit a right password is refused too, after the delay (%d, %lld ms)", (int)res,
	   (long long)took);
	ok(ask(base, a, "10.0.0.1:3", "alice", "secret", false, NULL) == AUTH_OK,
	   "another address is not throttled");
	usleep(1500 * 1000);
	ok(ask(base, a, "10.0.0.2:1", "alice", "secret", false, NULL) == AUTH_OK,
	   "once the window is over, the address comes in again");

	/* Cancelled at each stage: done never runs, nothing leaks. */
	struct answer c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
	auth_cancel(auth_request(a, "test", "10.0.0.5:1", "alice", "fresh1", 6, false, done, &c1));
	auth_cancel(auth_request(a, "test", "10.0.0.5:1", NULL, NULL, 0, true, done, &c2));
	struct auth_request *r3 = auth_request(a, "test", "10.0.0.5:1", "alice", "fresh3", 6, false,
					       done, &c3);
	usleep(30 * 1000); /* with the worker, or done */
	auth_cancel(r3);
	int64_t end = now_ms() + 300;
	while (now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	ok(c1.n + c2.n + c3.n == 0, "cancelled requests are never answered");

	/* Fairness: ten uncached checks from one address, then one from
	 * another, at a cost that takes a while; at most four of the first
	 * address's wait for the worker at once, so the other's is checked
	 * fifth, not last. */
	char fpath[96];
	snprintf(fpath, sizeof(fpath), "%s/fair", dir);
	write_users_cost(fpath, "dave", "pw", 13);
	struct auth_options fo = { .users_file = fpath, .failure_delay_ms = 150 };
	struct auth *fa = auth_new(base, &fo, err, sizeof(err));
	struct answer many[10] = { { 0 } }, other = { 0 };
	int64_t t0 = now_ms(), last = 0;
	for (int i = 0; i < 10; i++)
		auth_request(fa, "test", "10.0.1.1:1", "dave", "pw", 2, false, done, &many[i]);
	auth_request(fa, "test", "10.0.2.2:1", "dave", "pw", 2, false, done, &other);
	for (int i = 0; i < 10; i++) {
		run_until(base, &many[i].n, 1, 10000);
		if (many[i].at_ms > last)
			last = many[i].at_ms;
	}
	run_until(base, &other.n, 1, 10000);
	ok(other.r == AUTH_OK && other.at_ms - t0 < (last - t0) * 3 / 4,
	   "the other address is not behind the whole flood (%lld of %lld ms)",
	   (long long)(other.at_ms - t0), (long long)(last - t0));
	auth_free(fa);
	unlink(fpath);
	/* A held check cancelled is never answered. */
	struct answer h[6] = { { 0 } };
	struct auth_request *hr[6];
	for (int i = 0; i < 6; i++)
		hr[i] = auth_request(a, "test", "10.0.3.3:1", "alice", "nope", 4, false, done, &h[i]);
	auth_cancel(hr[5]);
	run_until(base, &h[4].n, 1, 5000);
	end = now_ms() + 200;
	while (now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	ok(h[0].n == 1 && h[4].n == 1 && h[5].n == 0, "a held check cancelled is never answered");

	/* Reload: a new user comes in; a broken file keeps the old ones. */
	write_users(path, "carol", "pw");
	ok(auth_reload(a) == 0, "reloaded");
	ok(ask(base, a, "10.0.0.6:1", "carol", "pw", false, NULL) == AUTH_OK, "the new user");
	ok(ask(base, a, "10.0.0.6:1", "alice", "secret", false, NULL) == AUTH_BAD_CREDENTIALS,
	   "the cache does not outlive the generation");
	FILE *f = fopen(path, "a");
	fprintf(f, "broken\n");
	fclose(f);
	ok(auth_reload(a) < 0, "a broken file is not loaded");
	ok(ask(base, a, "10.0.0.7:1", "carol", "pw", false, NULL) == AUTH_OK, "the old users stay");
	auth_free(a);

	struct auth_options off = { .failure_delay_ms = 150 };
	a = auth_new(base, &off, err, sizeof(err));
	ok(a && !auth_enabled(a), "without a users file: off");
	ok(ask(base, a, "10.0.0.8:1", "anyone", "anything", false, NULL) == AUTH_OK,
	   "anyone comes in");
	auth_free(a);
	unlink(path);
	rmdir(dir);
	free_base(base);
	return tap_done();
}
