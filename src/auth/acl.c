#include "config.h"
#include "auth/acl.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/users.h"
#include "conf.h"
#include "log.h"
#include "util/audit.h"
#include "util/errmsg.h"
#include "util/clock.h"

enum who_type { WHO_ANY, WHO_USER, WHO_GROUP };

#define KIND_QUEUE (1u << DEST_QUEUE)
#define KIND_TOPIC (1u << DEST_TOPIC)

struct rule {
	bool allow;
	enum who_type who_type;
	char *who;        /* user or group name */
	unsigned actions; /* enum acl_action bits */
	unsigned kinds;   /* KIND_* bits */
	char *pattern;    /* without its queue:/topic: prefix */
	bool subst;       /* holds %u or %c */
	bool has_u, has_c;
	/* The pattern's first level is plain text (no wildcard, no %): a
	 * name whose first level differs is passed over at once. */
	bool lit1;
	size_t lit1_len;
};

struct acl {
	struct rule *rules;
	size_t n;
};

static const struct {
	const char *name;
	unsigned bits;
} actions[] = {
	{ "publish", ACL_PUBLISH },
	{ "subscribe", ACL_SUBSCRIBE },
	{ "consume", ACL_SUBSCRIBE },
	{ "browse", ACL_BROWSE },
	{ "create", ACL_CREATE },
	{ "admin", ACL_ADMIN },
	{ "all", ACL_PUBLISH | ACL_SUBSCRIBE | ACL_BROWSE | ACL_CREATE | ACL_ADMIN },
};

const char *acl_action_name(enum acl_action action)
{
	switch (action) {
	case ACL_PUBLISH: return "publish";
	case ACL_SUBSCRIBE: return "subscribe";
	case ACL_BROWSE: return "browse";
	case ACL_CREATE: return "create";
	case ACL_ADMIN: return "admin";
	}
	return "?";
}

void acl_free(struct acl *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->rules[i].who);
		free(a->rules[i].pattern);
	}
	free(a->rules);
	free(a);
}

size_t acl_count(const struct acl *a)
{
	return a ? a->n : 0;
}

static bool is_level(const char *s, size_t len, char c)
{
	return len == 1 && s[0] == c;
}

static char *next_word(char **s)
{
	char *p = *s;
	while (*p && isspace((unsigned char)*p))
		p++;
	if (!*p)
		return NULL;
	char *w = p;
	while (*p && !isspace((unsigned char)*p))
		p++;
	if (*p)
		*p++ = '\0';
	*s = p;
	return w;
}

static int parse_line(struct rule *r, char *s, const char *name, int line, char *err,
		      size_t errlen)
{
	char *verb = next_word(&s), *who = next_word(&s), *acts = next_word(&s),
	     *pat = next_word(&s);
	if (!verb || !who || !acts || !pat || next_word(&s))
		return errmsg_at(err, errlen, name, line,
			    "expected 'allow|deny WHO ACTIONS PATTERN' (WHO: user, @group or *)");
	if (!strcmp(verb, "allow"))
		r->allow = true;
	else if (!strcmp(verb, "deny"))
		r->allow = false;
	else
		return errmsg_at(err, errlen, name, line, "'%s': a rule starts with allow or deny", verb);
	if (!strcmp(who, "*")) {
		r->who_type = WHO_ANY;
	} else if (who[0] == '@') {
		if (!users_name_valid(who + 1))
			return errmsg_at(err, errlen, name, line, "'%s': not a valid group name", who);
		r->who_type = WHO_GROUP;
		r->who = strdup(who + 1);
	} else {
		if (!users_name_valid(who))
			return errmsg_at(err, errlen, name, line, "'%s': not a valid user name", who);
		r->who_type = WHO_USER;
		r->who = strdup(who);
	}
	if (r->who_type != WHO_ANY && !r->who)
		return errmsg_at(err, errlen, name, line, "out of memory");
	for (char *tok = strtok(acts, ","); tok; tok = strtok(NULL, ",")) {
		size_t i;
		for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
			if (!strcmp(tok, actions[i].name))
				break;
		if (i == sizeof(actions) / sizeof(actions[0]))
			return errmsg_at(err, errlen, name, line,
				    "'%s': unknown action (publish, subscribe, browse, create, admin, all)",
				    tok);
		r->actions |= actions[i].bits;
	}
	if (!r->actions)
		return errmsg_at(err, errlen, name, line, "no action");
	r->kinds = KIND_QUEUE | KIND_TOPIC;
	if (!strncmp(pat, "queue:", 6)) {
		r->kinds = KIND_QUEUE;
		pat += 6;
	} else if (!strncmp(pat, "topic:", 6)) {
		r->kinds = KIND_TOPIC;
		pat += 6;
	}
	if (address_validate(pat, true) != 0)
		return errmsg_at(err, errlen, name, line,
			    "'%s': not a destination pattern (levels separated by '.', wildcards "
			    "'*' and '>')",
			    pat);
	r->has_u = strstr(pat, "%u") != NULL;
	r->has_c = strstr(pat, "%c") != NULL;
	r->subst = r->has_u || r->has_c;
	r->lit1_len = strcspn(pat, ".");
	r->lit1 = !is_level(pat, r->lit1_len, '*') && !is_level(pat, r->lit1_len, '>') &&
		  !memchr(pat, '%', r->lit1_len);
	if (!(r->pattern = strdup(pat)))
		return errmsg_at(err, errlen, name, line, "out of memory");
	return 0;
}

struct acl *acl_parse(const char *name, const char *text, char *err, size_t errlen)
{
	struct acl *a = calloc(1, sizeof(*a));
	char *copy = strdup(text);
	size_t cap = 0;
	if (!a || !copy) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto fail;
	}
	int line = 0;
	for (char *cur = copy; cur;) {
		char *nl = strchr(cur, '\n');
		if (nl)
			*nl = '\0';
		line++;
		char *hash = strchr(cur, '#');
		if (hash)
			*hash = '\0';
		char *s = cur;
		cur = nl ? nl + 1 : NULL;
		while (*s && isspace((unsigned char)*s))
			s++;
		if (!*s)
			continue;
		if (a->n == cap) {
			cap = cap ? cap * 2 : 16;
			struct rule *rules = realloc(a->rules, cap * sizeof(*rules));
			if (!rules) {
				errmsg_at(err, errlen, name, line, "out of memory");
				goto fail;
			}
			a->rules = rules;
		}
		struct rule *r = &a->rules[a->n];
		memset(r, 0, sizeof(*r));
		int rc = parse_line(r, s, name, line, err, errlen);
		a->n++; /* freed with the rest, whole or not */
		if (rc < 0)
			goto fail;
	}
	free(copy);
	return a;
fail:
	free(copy);
	acl_free(a);
	return NULL;
}

struct acl *acl_load(const char *path, char *err, size_t errlen)
{
	char *text = config_read_text(path, err, errlen);
	if (!text)
		return NULL;
	struct acl *a = acl_parse(path, text, err, errlen);
	free(text);
	return a;
}

/* ---- matching ------------------------------------------------------------ */

bool acl_pattern_covers(const char *rule, const char *filter)
{
	const char *p = rule, *f = filter;
	bool first = true;
	for (;;) {
		const char *pd = strchr(p, '.');
		size_t plen = pd ? (size_t)(pd - p) : strlen(p);
		/* `>` takes whatever remains, except the broker's `$` names
		 * from the first level. */
		if (is_level(p, plen, '>'))
			return !(first && f && f[0] == '$');
		if (!f)
			return false;
		const char *fd = strchr(f, '.');
		size_t flen = fd ? (size_t)(fd - f) : strlen(f);
		if (is_level(f, flen, '>'))
			return false; /* only a `>` of the rule's covers one of the filter */
		if (is_level(p, plen, '*')) {
			if (first && f[0] == '$')
				return false;
		} else if (is_level(f, flen, '*') || plen != flen || memcmp(p, f, plen) != 0) {
			return false;
		}
		first = false;
		if (!pd)
			return fd == NULL;
		p = pd + 1;
		f = fd ? fd + 1 : NULL;
	}
}

static bool is_wild(const char *s, size_t len)
{
	return is_level(s, len, '*') || is_level(s, len, '>');
}

bool acl_pattern_overlaps(const char *x, const char *y)
{
	const char *p = x, *q = y;
	bool first = true;
	for (;;) {
		const char *pd = p ? strchr(p, '.') : NULL, *qd = q ? strchr(q, '.') : NULL;
		size_t pl = p ? (pd ? (size_t)(pd - p) : strlen(p)) : 0;
		size_t ql = q ? (qd ? (size_t)(qd - q) : strlen(q)) : 0;
		/* A `>` meets whatever the other has left, but a first-level
		 * wildcard never meets the broker's `$` names. */
		if (p && is_level(p, pl, '>'))
			return !(first && q && q[0] == '$' && !is_wild(q, ql));
		if (q && is_level(q, ql, '>'))
			return !(first && p && p[0] == '$' && !is_wild(p, pl));
		if (!p || !q)
			return !p && !q;
		if (is_level(p, pl, '*') || is_level(q, ql, '*')) {
			const char *lit = is_level(p, pl, '*') ? q : p;
			size_t ll = lit == q ? ql : pl;
			if (first && lit[0] == '$' && !is_wild(lit, ll))
				return false;
		} else if (pl != ql || memcmp(p, q, pl) != 0) {
			return false;
		}
		first = false;
		p = pd ? pd + 1 : NULL;
		q = qd ? qd + 1 : NULL;
	}
}

/* A value substituted for %u or %c must stay one plain level: no '.', no
 * level that is a wildcard, nothing empty or with control characters. */
static bool subst_ok(const char *v)
{
	if (!v || !*v || !strcmp(v, "*") || !strcmp(v, ">"))
		return false;
	for (const char *c = v; *c; c++)
		if (*c == '.' || (unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	return true;
}

int acl_expand(const char *pat, const char *user, const char *client_id, char *buf, size_t len)
{
	size_t o = 0;
	for (const char *s = pat; *s; s++) {
		const char *v = NULL;
		if (s[0] == '%' && s[1] == 'u')
			v = user;
		else if (s[0] == '%' && s[1] == 'c')
			v = client_id;
		if (v) {
			size_t vl = strlen(v);
			if (o + vl >= len)
				return -1;
			memcpy(buf + o, v, vl);
			o += vl;
			s++;
		} else {
			if (o + 1 >= len)
				return -1;
			buf[o++] = *s;
		}
	}
	if (o >= len)
		return -1;
	buf[o] = '\0';
	return 0;
}

/* 1: the rule's pattern takes in name (with `pattern`, every name the
 * filter matches); 2 (filters only): it takes in some of them; 0: none. */
static int rule_matches_name(const struct rule *r, const char *user, const char *client_id,
			     const char *name, size_t name1_len, bool name1_wild, bool pattern)
{
	if (r->lit1 && !(pattern && name1_wild) &&
	    (name1_len != r->lit1_len || memcmp(name, r->pattern, name1_len) != 0))
		return 0;
	const char *pat = r->pattern;
	char small[512], *big = NULL;
	if (r->subst) {
		if ((r->has_u && !subst_ok(user)) || (r->has_c && !subst_ok(client_id)))
			return 0;
		size_t need = strlen(pat) + 1 + (user ? strlen(user) : 0) * 4 +
			      (client_id ? strlen(client_id) : 0) * 4;
		char *buf = need <= sizeof(small) ? small : (big = malloc(need));
		if (!buf || acl_expand(pat, user, client_id, buf, need) < 0) {
			free(big);
			return 0;
		}
		pat = buf;
	}
	int m = pattern ? (acl_pattern_covers(pat, name) ? 1 : acl_pattern_overlaps(pat, name) ? 2 : 0)
			: address_match(pat, name);
	free(big);
	return m;
}

bool acl_check(const struct acl *a, const struct users *users, const char *user,
	       const char *client_id, enum acl_action action, enum dest_kind kind, const char *name,
	       bool pattern)
{
	if (!a || a->n == 0)
		return true; /* no rules: everything allowed, as without an acl_file */
	if (!user)
		user = "anonymous";
	size_t name1_len = strcspn(name, ".");
	bool name1_wild = is_level(name, name1_len, '*') || is_level(name, name1_len, '>');
	for (size_t i = 0; i < a->n; i++) {
		const struct rule *r = &a->rules[i];
		if (!(r->actions & action) || !(r->kinds & (1u << kind)))
			continue;
		if (r->who_type == WHO_USER && strcmp(r->who, user) != 0)
			continue;
		if (r->who_type == WHO_GROUP && !(users && users_in_group(users, user, r->who)))
			continue;
		/* A filter: the first rule that covers all of it decides, but
		 * a deny before it over some of it refuses the whole filter
		 * (what it would read is not all readable). */
		int m = rule_matches_name(r, user, client_id, name, name1_len, name1_wild, pattern);
		if (m == 1)
			return r->allow;
		if (m == 2 && !r->allow)
			return false;
	}
	return false;
}

/* The slot of (action, kind, name, pattern) in a connection's cache:
 * direct-mapped by an FNV-1a hash, the newest decision replacing. */
static unsigned cache_slot(enum acl_action action, enum dest_kind kind, const char *name,
			   bool pattern)
{
	uint32_t h = 2166136261u ^ (uint32_t)action ^ ((uint32_t)kind << 8) ^ ((uint32_t)pattern << 9);
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		h = (h ^ *c) * 16777619u;
	return h % ACL_CACHE_SLOTS;
}

bool acl_decide(const struct acl *a, const struct users *users, unsigned long gen,
		struct acl_who *who, enum acl_action action, enum dest_kind kind, const char *name,
		bool pattern)
{
	if (!a)
		return true;
	struct acl_cached *e = &who->cache[cache_slot(action, kind, name, pattern)];
	if (e->name && e->gen == gen && e->action == action && e->kind == kind &&
	    e->pattern == pattern && !strcmp(e->name, name))
		return e->allowed;
	bool allowed = acl_check(a, users, who->user, who->client_id, action, kind, name, pattern);
	char *copy = strdup(name);
	if (copy) { /* without memory, just not cached */
		free(e->name);
		e->name = copy;
		e->gen = gen;
		e->action = (uint8_t)action;
		e->kind = (uint8_t)kind;
		e->pattern = pattern;
		e->allowed = allowed;
	}
	return allowed;
}

void acl_who_clear(struct acl_who *who)
{
	for (unsigned i = 0; i < ACL_CACHE_SLOTS; i++) {
		free(who->cache[i].name);
		who->cache[i].name = NULL;
	}
}

/* A name as logged: cut at 200 bytes, anything outside printable ASCII
 * shown as '?'. */
static void printable(char *buf, size_t len, const char *s)
{
	size_t i = 0;
	for (; s && s[i] && i + 1 < len && i < 200; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? '?' : s[i];
	buf[i] = '\0';
}

void acl_who_actor(const struct acl_who *who, struct audit_actor *out)
{
	*out = (struct audit_actor){ .principal = who->user ? who->user : "anonymous",
				     .mechanism = who->mechanism, .protocol = who->proto,
				     .listener = who->listener, .remote = who->peer,
				     .client_id = who->client_id, .conn = who->conn };
}

/* An audit line about who: a denial of action on kind:name (kind NULL:
 * not a destination), or with `detail`. */
static void audit_denial(const struct acl_who *who, const char *event, const char *action,
			 const char *kind, const char *name, const char *reason, json_t *detail)
{
	struct audit_actor actor;
	acl_who_actor(who, &actor);
	audit_event(&(struct audit_record){ .event = event, .actor = &actor, .destination = name,
					    .kind = kind, .action = action, .reason = reason,
					    .detail = detail });
}

void acl_denials_told(struct acl_who *who)
{
	if (!who->suppressed)
		return;
	log_info("acl: %s %s: user %s: %u more denials not logged in the last %d s",
		 who->proto ? who->proto : "-", who->peer ? who->peer : "-",
		 who->user ? who->user : "anonymous", who->suppressed, ACL_LOG_WINDOW_MS / 1000);
	if (audit_on())
		audit_denial(who, "acl_denials_suppressed", NULL, NULL, NULL, NULL,
			     json_pack("{s:I,s:i}", "count", (json_int_t)who->suppressed,
				       "window_s", ACL_LOG_WINDOW_MS / 1000));
	who->suppressed = 0;
}

void acl_denied(struct acl_who *who, enum acl_action action, enum dest_kind kind,
		const char *name)
{
	int64_t now = clock_mono_ms();
	if (now - who->log_window_ms >= ACL_LOG_WINDOW_MS) {
		acl_denials_told(who);
		who->log_window_ms = now;
		who->logged = 0;
	}
	if (who->logged >= ACL_LOG_BURST) {
		who->suppressed++;
		return;
	}
	who->logged++;
	char user[256], dest[256], cid[256];
	printable(user, sizeof(user), who->user ? who->user : "anonymous");
	printable(dest, sizeof(dest), name);
	printable(cid, sizeof(cid), who->client_id);
	log_info("acl: %s %s: user %s%s%s denied %s on %s %s", who->proto ? who->proto : "-",
		 who->peer ? who->peer : "-", user, who->client_id ? " client " : "",
		 who->client_id ? cid : "", acl_action_name(action), dest_kind_name(kind), dest);
	audit_denial(who, "acl_denied", acl_action_name(action), dest_kind_name(kind), name,
		     "no rule allows it", NULL);
}

int acl_client_id_check(const char *want, struct acl_who *who, const char *id, char *prefix,
			size_t len)
{
	if (acl_expand(want, who->user, NULL, prefix, len) < 0)
		return -1;
	if (!id || !strncmp(id, prefix, strlen(prefix)))
		return 0;
	char shown[80];
	snprintf(shown, sizeof(shown), "%s", id);
	for (char *c = shown; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	log_info("acl: %s %s: user %s denied client id '%s': it must start with '%s'", who->proto,
		 who->peer, who->user, shown, prefix);
	char why[340];
	snprintf(why, sizeof(why), "a client id must start with '%s'", prefix);
	if (audit_on())
		audit_denial(who, "acl_denied", "client_id", NULL, NULL, why,
			     json_pack("{s:s}", "requested_client_id", shown));
	return 1;
}
