#include "config.h"
#include "auth/users.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/errmsg.h"
#include "util/map.h"

#define SALT_LEN 16
#define KEY_LEN 32
#define MAX_FILE (16u << 20)

struct user {
	char *hash;
	char **groups;
	size_t ngroups;
};

struct users {
	struct map *by_name; /* name -> struct user */
	/* Checked when a name is unknown, so that it costs what a known one
	 * does (users_verify's promise). */
	char *decoy;
	unsigned cost;       /* log2 N of the last user's hash */
};

static void user_free(struct user *u)
{
	if (!u)
		return;
	free(u->hash);
	for (size_t i = 0; i < u->ngroups; i++)
		free(u->groups[i]);
	free(u->groups);
	free(u);
}

static void user_free_cb(const char *name, void *value, void *arg)
{
	(void)name;
	(void)arg;
	user_free(value);
}

void users_free(struct users *u)
{
	if (!u)
		return;
	if (u->by_name) {
		map_each(u->by_name, user_free_cb, NULL);
		map_free(u->by_name);
	}
	free(u->decoy);
	free(u);
}

size_t users_count(const struct users *u)
{
	return map_count(u->by_name);
}

bool users_exists(const struct users *u, const char *name)
{
	return map_get(u->by_name, name) != NULL;
}

bool users_in_group(const struct users *u, const char *name, const char *group)
{
	const struct user *e = map_get(u->by_name, name);
	for (size_t i = 0; e && i < e->ngroups; i++)
		if (!strcmp(e->groups[i], group))
			return true;
	return false;
}

static bool same_user(const struct user *x, const struct user *y)
{
	if (strcmp(x->hash, y->hash) || x->ngroups != y->ngroups)
		return false;
	for (size_t i = 0; i < x->ngroups; i++)
		if (strcmp(x->groups[i], y->groups[i]))
			return false;
	return true;
}

struct diff {
	const struct users *other;
	bool from_now; /* walking now's users (else before's) */
	void (*fn)(const char *name, enum users_change what, void *arg);
	void *arg;
};

static void diff_one(const char *name, void *value, void *arg)
{
	struct diff *d = arg;
	const struct user *there = map_get(d->other->by_name, name);
	if (!there)
		d->fn(name, d->from_now ? USERS_ADDED : USERS_REMOVED, d->arg);
	else if (d->from_now && !same_user(value, there))
		d->fn(name, USERS_CHANGED, d->arg);
}

void users_diff(const struct users *before, const struct users *now,
		void (*fn)(const char *name, enum users_change what, void *arg), void *arg)
{
	struct diff d = { before, true, fn, arg };
	map_each(now->by_name, diff_one, &d);
	d = (struct diff){ now, false, fn, arg };
	map_each(before->by_name, diff_one, &d);
}

bool users_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (!n || n > 128)
		return false;
	for (const char *p = name; *p; p++)
		if (*p <= ' ' || *p > '~' || *p == ':' || *p == '#' || *p == ',')
			return false;
	return true;
}

/* ---- PHC scrypt strings ------------------------------------------------- */

/* Base64 without padding (PHC's), into out (room for 4 * ceil(n / 3) + 1). */
static void b64_encode(char *out, const unsigned char *in, size_t n)
{
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	while (len > 0 && out[len - 1] == '=')
		out[--len] = '\0';
}

/* Decodes unpadded base64 of exactly `want` bytes; -1 if it is not that. */
static int b64_decode(unsigned char *out, size_t want, const char *in, size_t len)
{
	char padded[128];
	unsigned char raw[96];
	if (len + 3 >= sizeof(padded) || want > sizeof(raw) - 2)
		return -1;
	memcpy(padded, in, len);
	while (len % 4)
		padded[len++] = '=';
	padded[len] = '\0';
	int n = EVP_DecodeBlock(raw, (const unsigned char *)padded, (int)len);
	if (n < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding's zero bytes in. */
	for (const char *p = padded + len; p > padded && p[-1] == '='; p--)
		n--;
	if ((size_t)n != want)
		return -1;
	memcpy(out, raw, want);
	return 0;
}

struct phc {
	unsigned log2n, r, p;
	unsigned char salt[SALT_LEN];
	unsigned char key[KEY_LEN];
};

/* Parses "$scrypt$ln=14,r=8,p=1$SALT$KEY"; -1 if it is not one we make. */
static int phc_parse(const char *s, struct phc *out)
{
	int used = 0;
	if (sscanf(s, "$scrypt$ln=%u,r=%u,p=%u$%n", &out->log2n, &out->r, &out->p, &used) != 3 ||
	    !used)
		return -1;
	if (out->log2n < 10 || out->log2n > USERS_MAX_LOG2N || out->r < 1 || out->r > 32 ||
	    out->p < 1 || out->p > 16)
		return -1;
	const char *salt = s + used;
	const char *dollar = strchr(salt, '$');
	if (!dollar || b64_decode(out->salt, SALT_LEN, salt, (size_t)(dollar - salt)) < 0 ||
	    b64_decode(out->key, KEY_LEN, dollar + 1, strlen(dollar + 1)) < 0)
		return -1;
	return 0;
}

static int derive(const struct phc *h, const char *password, size_t len, unsigned char *key)
{
	uint64_t n = (uint64_t)1 << h->log2n;
	/* scrypt's own need, 128 * N * r * p bytes, and some over. */
	uint64_t maxmem = 128 * n * h->r * h->p + (1u << 20);
	return EVP_PBE_scrypt(password, len, h->salt, SALT_LEN, n, h->r, h->p, maxmem, key,
			      KEY_LEN) == 1
		       ? 0
		       : -1;
}

char *users_hash(const char *password, size_t len, unsigned log2n)
{
	struct phc h = { .log2n = log2n, .r = 8, .p = 1 };
	if (log2n < 10 || log2n > USERS_MAX_LOG2N || RAND_bytes(h.salt, SALT_LEN) != 1 ||
	    derive(&h, password, len, h.key) < 0)
		return NULL;
	char salt[32], key[48];
	b64_encode(salt, h.salt, SALT_LEN);
	b64_encode(key, h.key, KEY_LEN);
	size_t n = strlen(salt) + strlen(key) + 48;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "$scrypt$ln=%u,r=%u,p=%u$%s$%s", h.log2n, h.r, h.p, salt, key);
	OPENSSL_cleanse(&h, sizeof(h));
	return out;
}

bool users_hash_check(const char *hash, const char *password, size_t len)
{
	struct phc h;
	unsigned char key[KEY_LEN];
	if (phc_parse(hash, &h) < 0 || derive(&h, password, len, key) < 0)
		return false;
	bool ok = CRYPTO_memcmp(key, h.key, KEY_LEN) == 0;
	OPENSSL_cleanse(key, sizeof(key));
	return ok;
}

bool users_verify(const struct users *u, const char *name, const char *password, size_t len)
{
	const struct user *e = map_get(u->by_name, name);
	bool ok = users_hash_check(e ? e->hash : u->decoy, password, len);
	return e && ok;
}

/* ---- the file ------------------------------------------------------------ */

/* Splits "a,b,c" into e's groups; -1 on out of memory or a bad name. */
static int parse_groups(struct user *e, char *list)
{
	for (char *g = strtok(list, ","); g; g = strtok(NULL, ",")) {
		if (!users_name_valid(g))
			return -1;
		char **grown = realloc(e->groups, (e->ngroups + 1) * sizeof(*grown));
		if (!grown)
			return -1;
		e->groups = grown;
		if (!(e->groups[e->ngroups] = strdup(g)))
			return -1;
		e->ngroups++;
	}
	return 0;
}

static int parse_line(struct users *u, char *s, const char *name, int line, char *err,
		      size_t errlen)
{
	char *colon = strchr(s, ':');
	if (!colon)
		return errmsg_at(err, errlen, name, line, "expected NAME:HASH[:GROUPS]");
	*colon = '\0';
	char *hash = colon + 1;
	char *groups = strchr(hash, ':');
	if (groups)
		*groups++ = '\0';
	if (!users_name_valid(s))
		return errmsg_at(err, errlen, name, line, "'%s' is not a valid user name", s);
	if (map_get(u->by_name, s))
		return errmsg_at(err, errlen, name, line, "user '%s' is listed twice", s);
	struct phc h;
	if (phc_parse(hash, &h) < 0)
		return errmsg_at(err, errlen, name, line,
			    "the hash of '%s' is not $scrypt$ln=N,r=R,p=P$SALT$KEY (make one "
			    "with wharfctl user add)",
			    s);
	u->cost = h.log2n;
	struct user *e = calloc(1, sizeof(*e));
	if (!e || !(e->hash = strdup(hash))) {
		user_free(e);
		return errmsg_at(err, errlen, name, line, "out of memory");
	}
	if (groups && *groups && parse_groups(e, groups) < 0) {
		user_free(e);
		return errmsg_at(err, errlen, name, line, "bad group list for '%s' (names separated by ',')",
			    s);
	}
	if (map_put(u->by_name, s, e) < 0) {
		user_free(e);
		return errmsg_at(err, errlen, name, line, "out of memory");
	}
	return 0;
}

struct users *users_parse(const char *name, const char *text, char *err, size_t errlen)
{
	struct users *u = calloc(1, sizeof(*u));
	char *copy = strdup(text);
	if (u)
		u->cost = USERS_DEFAULT_LOG2N;
	if (!u || !copy || !(u->by_name = map_new())) {
		snprintf(err, errlen, "%s: out of memory", name);
		free(copy);
		users_free(u);
		return NULL;
	}
	int line = 0, rc = 0;
	for (char *cur = copy, *nl; cur && rc == 0; cur = nl ? nl + 1 : NULL) {
		nl = strchr(cur, '\n');
		if (nl)
			*nl = '\0';
		line++;
		char *hash = strchr(cur, '#');
		if (hash)
			*hash = '\0';
		char *s = cur;
		while (*s == ' ' || *s == '\t')
			s++;
		size_t n = strlen(s);
		while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
			s[--n] = '\0';
		if (*s)
			rc = parse_line(u, s, name, line, err, errlen);
	}
	free(copy);
	if (rc < 0) {
		users_free(u);
		return NULL;
	}
	/* At the cost the users have: an unknown name then takes as long. */
	if (!(u->decoy = users_hash("decoy", 5, u->cost))) {
		snprintf(err, errlen, "%s: out of memory", name);
		users_free(u);
		return NULL;
	}
	return u;
}

struct users *users_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *text = malloc(MAX_FILE + 1);
	size_t n = text ? fread(text, 1, MAX_FILE + 1, f) : 0;
	bool bad = ferror(f) || n > MAX_FILE;
	fclose(f);
	if (!text || bad) {
		snprintf(err, errlen, "%s: %s", path, !text ? "out of memory" : "unreadable or over 16 MiB");
		free(text);
		return NULL;
	}
	text[n] = '\0';
	struct users *u = users_parse(path, text, err, errlen);
	free(text);
	return u;
}
