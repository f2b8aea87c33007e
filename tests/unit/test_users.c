/* The users file and its password hashes (auth/users.h). The fixed hash
 * below was made with Python's hashlib.scrypt, not with this code. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/users.h"
#include "tap.h"

#define PYTHON_HASH "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$nfkj3u1fRTHCea+fVr03sWV770kp5wLOLoEakziKhqE"

static void bad(const char *text, const char *want)
{
	char err[256] = "";
	struct users *u = users_parse("u.txt", text, err, sizeof(err));
	ok(!u && strstr(err, want), "refused: %s (%s)", want, err);
	users_free(u);
}

/* users_diff's calls as "+name -name ~name", in name order. */
struct changes {
	char seen[16][40];
	size_t n;
};

static void note(const char *name, enum users_change what, void *arg)
{
	struct changes *c = arg;
	if (c->n < 16)
		snprintf(c->seen[c->n++], sizeof(c->seen[0]), "%c%s", "+-~"[what], name);
}

static int by_name(const void *x, const void *y)
{
	return strcmp((const char *)x + 1, (const char *)y + 1);
}

static void diff(void)
{
	char err[256] = "";
	struct users *before = users_parse("b.txt",
					   "alice:" PYTHON_HASH ":ops\nbob:" PYTHON_HASH "\n"
					   "carol:" PYTHON_HASH "\ndave:" PYTHON_HASH ":ops\n",
					   err, sizeof(err));
	/* bob goes, erin comes, carol has a new hash, dave new groups,
	 * alice is as she was. */
	struct users *now = users_parse("n.txt",
					"alice:" PYTHON_HASH ":ops\ncarol:$scrypt$ln=10,r=8,p=1$"
					"AAECAwQFBgcICQoLDA0ODw$mfkj3u1fRTHCea+fVr03sWV770kp5wLOLoEakziKhqE\n"
					"dave:" PYTHON_HASH ":ops,admins\nerin:" PYTHON_HASH "\n",
					err, sizeof(err));
	struct changes c = { .n = 0 };
	if (before && now)
		users_diff(before, now, note, &c);
	qsort(c.seen, c.n, sizeof(c.seen[0]), by_name);
	char all[256] = "";
	for (size_t i = 0; i < c.n; i++)
		snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s", i ? " " : "", c.seen[i]);
	ok(!strcmp(all, "-bob ~carol ~dave +erin"), "users_diff: added, removed, changed (%s)", all);
	users_free(before);
	users_free(now);
}

int main(void)
{
	diff();
	ok(users_hash_check(PYTHON_HASH, "correct horse", 13), "a hash made by Python's scrypt checks");
	ok(!users_hash_check(PYTHON_HASH, "correct horsE", 13), "a wrong password does not");
	ok(!users_hash_check(PYTHON_HASH, "correct horse", 12), "nor a prefix of the right one");

	char *h = users_hash("s3cret", 6, 10);
	ok(h && !strncmp(h, "$scrypt$ln=10,r=8,p=1$", 22), "users_hash makes a PHC scrypt string (%s)",
	   h ? h : "NULL");
	ok(h && users_hash_check(h, "s3cret", 6) && !users_hash_check(h, "s3cre", 5),
	   "which checks its password and no other");
	char *h2 = users_hash("s3cret", 6, 10);
	ok(h && h2 && strcmp(h, h2), "two hashes of one password differ (random salt)");
	ok(!users_hash("x", 1, 9) && !users_hash("x", 1, USERS_MAX_LOG2N + 1), "cost out of range refused");

	char text[1024];
	snprintf(text, sizeof(text),
		 "# users\n\nalice:%s:admins,ops\n  bob:%s  # no groups\ncarol:" PYTHON_HASH "\n", h, h2);
	char err[256] = "";
	struct users *u = users_parse("u.txt", text, err, sizeof(err));
	ok(u != NULL, "a file with comments, blank lines and groups parses (%s)", err);
	ok(u && users_count(u) == 3 && users_exists(u, "bob") && !users_exists(u, "dave"),
	   "three users");
	ok(u && users_in_group(u, "alice", "ops") && users_in_group(u, "alice", "admins") &&
		   !users_in_group(u, "bob", "ops") && !users_in_group(u, "dave", "ops"),
	   "groups");
	ok(u && users_verify(u, "alice", "s3cret", 6) && users_verify(u, "carol", "correct horse", 13),
	   "right passwords verify");
	ok(u && !users_verify(u, "alice", "nope", 4) && !users_verify(u, "dave", "s3cret", 6),
	   "a wrong password or an unknown user does not");
	users_free(u);
	free(h);
	free(h2);

	bad("alice\n", "u.txt:1: expected NAME:HASH");
	bad("\nal ice:" PYTHON_HASH "\n", "u.txt:2: 'al ice' is not a valid user name");
	bad("a:" PYTHON_HASH "\na:" PYTHON_HASH "\n", "u.txt:2: user 'a' is listed twice");
	bad("a:plaintext\n", "u.txt:1: the hash of 'a' is not $scrypt$");
	bad("a:$scrypt$ln=30,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$nfkj3u1fRTHCea+fVr03sWV770kp5wLOLoEakziKhqE\n",
	    "the hash of 'a'");
	bad("a:$scrypt$ln=10,r=8,p=1$AAECAwQF$nfkj3u1fRTHCea+fVr03sWV770kp5wLOLoEakziKhqE\n",
	    "the hash of 'a'");
	bad("a:" PYTHON_HASH ":ops,bad group\n", "u.txt:1: bad group list");
	ok(users_name_valid("device-42.eu") && !users_name_valid("") && !users_name_valid("a:b") &&
		   !users_name_valid("a#b"),
	   "user names");
	ok(!users_load("/nonexistent/users", err, sizeof(err)) && strstr(err, "/nonexistent/users"),
	   "a missing file names the path");
	return tap_done();
}
