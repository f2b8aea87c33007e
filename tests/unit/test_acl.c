/* The ACL rules and their matcher (auth/acl.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "auth/users.h"
#include "tap.h"

#define HASH "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$nfkj3u1fRTHCea+fVr03sWV770kp5wLOLoEakziKhqE"

static void bad(const char *text, const char *want)
{
	char err[256] = "";
	struct acl *a = acl_parse("acl.txt", text, err, sizeof(err));
	ok(!a && strstr(err, want), "refused: %s (%s)", want, err);
	acl_free(a);
}

int main(void)
{
	/* Pattern covering a subscription filter. */
	ok(acl_pattern_covers(">", "a.b"), "> covers a.b");
	ok(acl_pattern_covers(">", "a.*"), "> covers a.*");
	ok(acl_pattern_covers(">", ">"), "> covers >");
	ok(!acl_pattern_covers(">", "$SYS.>"), "> does not cover $SYS.>");
	ok(!acl_pattern_covers(">", "$SYS.broker"), "> does not cover $SYS.broker");
	ok(acl_pattern_covers("$SYS.>", "$SYS.>"), "$SYS.> covers $SYS.>");
	ok(acl_pattern_covers("a.>", "a.>"), "a.> covers a.>");
	ok(acl_pattern_covers("a.>", "a.*.c"), "a.> covers a.*.c");
	ok(!acl_pattern_covers("a.*", "a.>"), "a.* does not cover a.> (more levels)");
	ok(acl_pattern_covers("a.*", "a.*"), "a.* covers a.*");
	ok(!acl_pattern_covers("a.b", "a.*"), "a.b does not cover a.*");
	ok(!acl_pattern_covers("a.*.c", "a.>"), "a.*.c does not cover a.>");
	ok(acl_pattern_covers("*.t", "x.t"), "*.t covers x.t");
	ok(!acl_pattern_covers("*.t", "$x.t"), "*.t does not cover $x.t");
	ok(!acl_pattern_covers("a.b", "a.b.c"), "a.b does not cover a.b.c");
	ok(acl_pattern_covers("a.b.>", "a.b"), "a.b.> covers a.b (zero levels)");
	ok(!acl_pattern_covers("a.b.>", ">"), "a.b.> does not cover >");

	ok(acl_pattern_overlaps("a.>", "a"), "a.> meets a");
	ok(acl_pattern_overlaps("a.*", "*.b"), "a.* meets *.b");
	ok(!acl_pattern_overlaps("a.*", "a"), "a.* does not meet a");
	ok(!acl_pattern_overlaps(">", "$SYS.x"), "> does not meet $SYS.x");
	ok(acl_pattern_overlaps(">", "*.x"), "> meets *.x");
	ok(acl_pattern_overlaps("$SYS.>", "$SYS.*"), "$SYS.> meets $SYS.*");
	ok(!acl_pattern_overlaps("*.x", "$SYS.x"), "*.x does not meet $SYS.x");
	ok(!acl_pattern_overlaps("a.b.c", "a.*.d"), "a.b.c does not meet a.*.d");
	ok(acl_pattern_overlaps("secret.>", ">"), "secret.> meets >");

	bad("allow alice\n", "expected 'allow|deny WHO ACTIONS PATTERN'");
	bad("# c\npermit alice publish x\n", "acl.txt:2:");
	bad("allow alice fly x\n", "unknown action");
	bad("allow alice publish a.>.b\n", "not a destination pattern");
	bad("allow al:ice publish x\n", "not a valid user name");
	bad("allow alice publish x y\n", "expected");

	char err[256] = "";
	const char *rules =
		"# a comment\n"
		"deny  mallory all >\n"
		"allow @ops publish,subscribe,create queue:ops.>   # ops' queues\n"
		"allow *    subscribe      topic:users.%u.>\n"
		"allow *    publish        topic:users.%u.>\n"
		"allow *    publish        topic:clients.%c\n"
		"allow admin subscribe     topic:$SYS.>\n"
		"allow *    subscribe,publish topic:>\n"
		"allow *    subscribe      queue:shared\n";
	struct acl *a = acl_parse("acl.txt", rules, err, sizeof(err));
	ok(a && acl_count(a) == 8, "rules parsed (%s)", err);
	char utext[1024];
	snprintf(utext, sizeof(utext), "alice:%s:ops\nbob:%s\nmallory:%s\nadmin:%s\n", HASH, HASH,
		 HASH, HASH);
	struct users *u = users_parse("users", utext, err, sizeof(err));
	ok(u != NULL, "users parsed (%s)", err);

	ok(!acl_check(a, u, "mallory", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "news", false),
	   "first match wins: mallory denied before the allow-all");
	ok(acl_check(a, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "news", false),
	   "bob may read topic news");
	ok(acl_check(a, u, "alice", NULL, ACL_PUBLISH, DEST_QUEUE, "ops.jobs", false),
	   "@ops: alice may publish to queue ops.jobs");
	ok(acl_check(a, u, "alice", NULL, ACL_CREATE, DEST_QUEUE, "ops.jobs", false),
	   "and create it");
	ok(!acl_check(a, u, "bob", NULL, ACL_PUBLISH, DEST_QUEUE, "ops.jobs", false),
	   "bob, not in ops, may not");
	ok(!acl_check(a, u, "alice", NULL, ACL_CREATE, DEST_TOPIC, "ops.jobs", false),
	   "queue: rules do not apply to topics (topic:> allows subscribe and publish only)");
	ok(!acl_check(a, u, "alice", NULL, ACL_SUBSCRIBE, DEST_QUEUE, "other", false),
	   "default deny: no rule for queue other");
	ok(acl_check(a, u, "bob", NULL, ACL_SUBSCRIBE, DEST_QUEUE, "shared", false),
	   "queue shared readable by all");
	ok(!acl_check(a, NULL, "alice", NULL, ACL_PUBLISH, DEST_QUEUE, "ops.jobs", false),
	   "without users, no groups");

	/* %u and %c */
	ok(acl_check(a, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "users.bob.x", false), "%%u: own tree");
	ok(acl_check(a, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "users.bob.>", true),
	   "%%u: own tree by wildcard");
	ok(acl_check(a, u, "bob", NULL, ACL_PUBLISH, DEST_TOPIC, "clients.dev1", false) &&
		   acl_check(a, u, "bob", "dev1", ACL_PUBLISH, DEST_TOPIC, "clients.dev1", false),
	   "%%c: (topic:> allows publishing anyway)");

	const char *strict = "allow * subscribe topic:users.%u.>\n"
			     "allow * publish topic:clients.%c.>\n"
			     "allow * subscribe topic:a.>\n"
			     "allow * subscribe topic:b.*\n";
	struct acl *s = acl_parse("strict", strict, err, sizeof(err));
	ok(s != NULL, "strict rules parsed (%s)", err);
	ok(!acl_check(s, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "users.alice.x", false),
	   "%%u: not another's tree");
	ok(!acl_check(s, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "users.*.x", true),
	   "%%u: a wildcard over every user's tree is not covered");
	ok(!acl_check(s, u, "a.b", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "users.a.b.x", false),
	   "%%u with a '.' in the name: the rule does not apply");
	ok(!acl_check(s, u, "*", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "users.x.y", false),
	   "%%u that would be a wildcard: the rule does not apply");
	ok(acl_check(s, u, "bob", "dev1", ACL_PUBLISH, DEST_TOPIC, "clients.dev1.t", false),
	   "%%c: own client tree");
	ok(!acl_check(s, u, "bob", "dev1", ACL_PUBLISH, DEST_TOPIC, "clients.dev2.t", false),
	   "%%c: not another client's");
	ok(!acl_check(s, u, "bob", NULL, ACL_PUBLISH, DEST_TOPIC, "clients..t", false),
	   "%%c without a client id: the rule does not apply");
	ok(acl_check(s, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "a.*", true), "a.> covers a.*");
	ok(!acl_check(s, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "b.>", true),
	   "b.* does not cover b.>: the whole filter must be allowed");
	ok(!acl_check(s, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, ">", true),
	   "partly readable > is denied");

	const char *deny_first = "deny bob subscribe topic:secret.>\nallow * subscribe topic:>\n";
	struct acl *d = acl_parse("d", deny_first, err, sizeof(err));
	ok(d && !acl_check(d, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, ">", true),
	   "an earlier deny over part of a filter refuses the filter");
	ok(!acl_check(d, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "*.x", true),
	   "*.x too (a wildcard first level is not passed over by the first-level test)");
	ok(acl_check(d, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "news.>", true),
	   "a filter apart from it is granted");
	ok(acl_check(d, u, "alice", NULL, ACL_SUBSCRIBE, DEST_TOPIC, ">", true),
	   "another user is granted >");
	acl_free(d);

	/* $SYS */
	const char *sys = "allow * subscribe >\nallow root subscribe $SYS.>\n";
	struct acl *y = acl_parse("sys", sys, err, sizeof(err));
	ok(y && !acl_check(y, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "$SYS.>", true) &&
		   !acl_check(y, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "$SYS.broker.uptime", false),
	   "$SYS not granted by >");
	ok(acl_check(y, u, "root", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "$SYS.>", true) &&
		   acl_check(y, u, "root", NULL, ACL_SUBSCRIBE, DEST_TOPIC, "$SYS.broker.uptime", false),
	   "$SYS granted explicitly");
	ok(acl_check(y, u, "bob", NULL, ACL_SUBSCRIBE, DEST_TOPIC, ">", true),
	   "> is allowed (it does not match $SYS either)");

	/* No rules: everything; rules: default deny. */
	ok(acl_check(NULL, u, "bob", NULL, ACL_PUBLISH, DEST_QUEUE, "x", false), "no acl: allowed");
	struct acl *empty = acl_parse("empty", "# nothing\n", err, sizeof(err));
	ok(empty && acl_count(empty) == 0 &&
		   acl_check(empty, u, "bob", NULL, ACL_PUBLISH, DEST_QUEUE, "x", false),
	   "an acl file without rules allows everything, as no file does");
	struct acl *one = acl_parse("one", "allow bob publish queue:x\n", err, sizeof(err));
	ok(one && !acl_check(one, u, "bob", NULL, ACL_PUBLISH, DEST_QUEUE, "y", false) &&
		   !acl_check(one, u, "alice", NULL, ACL_PUBLISH, DEST_QUEUE, "x", false),
	   "one rule: default deny for everything else");
	acl_free(one);

	/* The cache: a decision is kept per generation. */
	struct acl_who who = { .user = "bob" };
	ok(acl_decide(y, u, 1, &who, ACL_SUBSCRIBE, DEST_TOPIC, "news", false), "decide: allowed");
	ok(acl_decide(y, u, 1, &who, ACL_SUBSCRIBE, DEST_TOPIC, "news", false), "decide: cached");
	struct acl *none = acl_parse("none", "deny * all >\n", err, sizeof(err));
	ok(!acl_decide(none, u, 2, &who, ACL_SUBSCRIBE, DEST_TOPIC, "news", false),
	   "a new generation voids it");
	acl_free(none);
	for (int i = 0; i < 20; i++) {
		char n[16];
		snprintf(n, sizeof(n), "t%d", i);
		acl_decide(y, u, 3, &who, ACL_SUBSCRIBE, DEST_TOPIC, n, false);
	}
	ok(!acl_decide(y, u, 3, &who, ACL_PUBLISH, DEST_TOPIC, "t19", false), "action is part of the key");
	acl_who_clear(&who);

	char buf[64];
	ok(acl_expand("%u-", "alice", NULL, buf, sizeof(buf)) == 0 && !strcmp(buf, "alice-"),
	   "expand %%u- (%s)", buf);
	ok(acl_expand("%u-%u-%u-%u", "0123456789abcdef", NULL, buf, sizeof(buf)) < 0,
	   "expand refuses what does not fit");

	acl_free(a);
	acl_free(s);
	acl_free(y);
	acl_free(empty);
	users_free(u);
	return tap_done();
}
