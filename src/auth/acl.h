/* Access control rules ([auth] acl_file, docs/security.md): who may
 * publish to, subscribe to, browse or create which destination. One rule
 * per line,
 *     allow|deny  WHO  ACTIONS  PATTERN
 * WHO is a user name, @GROUP (a group of the users file) or `*` (anyone,
 * anonymous clients too); ACTIONS a comma list of publish, subscribe,
 * browse, create, admin (or `all`); PATTERN a destination name or pattern
 * in Wharf's addressing (router/address.h), optionally prefixed with
 * `queue:` or `topic:` (bare: both kinds), where `%u` is the user and `%c`
 * the client id. The first rule that matches decides; when none does the
 * answer is deny. No rules at all (no acl_file, or one without rules):
 * everything allowed.
 *
 * acl_check is pure (rules, user, groups, action, kind, name → verdict);
 * acl_decide adds the per-connection cache of decisions, and acl_denied
 * the per-connection rate-limited log and audit line. Event-loop thread
 * for the last two (they change the connection's struct acl_who). */
#ifndef WHARF_AUTH_ACL_H
#define WHARF_AUTH_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "router/address.h"

struct users;
struct acl;
struct audit_actor;

enum acl_action {
	ACL_PUBLISH = 1u << 0,
	ACL_SUBSCRIBE = 1u << 1, /* consume: subscriptions, MQTT SUBSCRIBE, AMQP receivers */
	ACL_BROWSE = 1u << 2,    /* reading a destination through the admin API */
	ACL_CREATE = 1u << 3,    /* creating a queue on first use */
	ACL_ADMIN = 1u << 4,     /* changing it there; on `>`, the whole broker */
};

/* Decisions a connection keeps (direct-mapped by a hash of what was
 * asked). */
#define ACL_CACHE_SLOTS 32

struct acl_cached {
	char *name;
	unsigned long gen;
	uint8_t action, kind;
	bool allowed, pattern;
};

/* Who asks: one per connection, kept by net/conn.c; the router reads it
 * (publish_ctx.who, subscribe_options.who). Strings belong to the
 * connection. */
struct acl_who {
	const char *user;      /* the principal: a user name or "anonymous" */
	const char *client_id; /* MQTT client id, STOMP client-id, AMQP container-id; NULL */
	const char *peer;      /* "HOST:PORT", for the log */
	const char *proto;     /* "stomp", "mqtt", "amqp"; for the log */
	/* For the audit log (util/audit.h): the connection's id, its
	 * listener's name and how it logged in; 0 and NULL: not known. */
	unsigned long conn;
	const char *listener;
	const char *mechanism;
	/* Decisions cached per (action, kind, name), valid for one
	 * generation of the router's rules and users (acl_decide). */
	struct acl_cached cache[ACL_CACHE_SLOTS];
	/* The denial log's limit, the audit log's too: at most
	 * ACL_LOG_BURST lines per ACL_LOG_WINDOW_MS, the rest counted and
	 * told in one line after (acl_denials_told). */
	int64_t log_window_ms;
	unsigned logged, suppressed;
};

#define ACL_LOG_BURST 5
#define ACL_LOG_WINDOW_MS 10000

/* Loads `path`. NULL with "FILE:LINE: message" in err on a mistake, or
 * "FILE: reason" when it cannot be read. Free with acl_free. */
struct acl *acl_load(const char *path, char *err, size_t errlen);
/* Parses text as a rules file named `name` (tests). */
struct acl *acl_parse(const char *name, const char *text, char *err, size_t errlen);
void acl_free(struct acl *a);
size_t acl_count(const struct acl *a);

/* The verdict of the rules for `user` (its groups from `users`, which may
 * be NULL: no groups) with client id `client_id` (NULL: rules with %c do
 * not apply) doing `action` on the destination `name` of `kind`. With
 * `pattern` (a subscription's wildcard filter) the first rule whose
 * pattern covers every name the filter matches decides, unless a deny
 * rule before it matches some of those names: then the filter is denied
 * (only a filter that is readable whole is granted). A NULL acl allows
 * everything. */
bool acl_check(const struct acl *a, const struct users *users, const char *user,
	       const char *client_id, enum acl_action action, enum dest_kind kind, const char *name,
	       bool pattern);
/* acl_check through who's cache; `gen` changes whenever the rules or the
 * users do (the cache is then void). */
bool acl_decide(const struct acl *a, const struct users *users, unsigned long gen,
		struct acl_who *who, enum acl_action action, enum dest_kind kind, const char *name,
		bool pattern);
/* Logs a denial at info and writes it to the audit log (acl_denied), at
 * most ACL_LOG_BURST per ACL_LOG_WINDOW_MS per connection: the others are
 * counted, and told in one line (acl_denials_suppressed in the audit log)
 * at the first denial after the window, or by acl_denials_told. */
void acl_denied(struct acl_who *who, enum acl_action action, enum dest_kind kind,
		const char *name);
/* Tells the denials counted and not logged yet, if any: the connection
 * goes, or becomes another principal. */
void acl_denials_told(struct acl_who *who);
/* who as the audit log names it (its strings stay who's). */
void acl_who_actor(const struct acl_who *who, struct audit_actor *out);
/* Frees who's cache (the connection goes). */
void acl_who_clear(struct acl_who *who);

/* Whether every name `filter` matches is matched by `rule` (both
 * patterns in Wharf's addressing). */
bool acl_pattern_covers(const char *rule, const char *filter);
/* Whether some name matches both patterns. */
bool acl_pattern_overlaps(const char *x, const char *y);
const char *acl_action_name(enum acl_action action);
/* `prefix` with %u replaced by user and %c by client_id into buf: the
 * MQTT client id prefix ([auth] mqtt_client_id_prefix). -1 if it does not
 * fit. */
int acl_expand(const char *prefix, const char *user, const char *client_id, char *buf,
	       size_t len);
/* Whether client id `id` is who's user's under the client id prefix
 * `want` (%u: the user; [auth] mqtt_client_id_prefix,
 * stomp_client_id_prefix): 0 when id starts with it, 1 when not (logged
 * at info and audited as a denial of the action client_id), -1 when the
 * prefix does not fit in `prefix`. The expanded prefix is left in
 * `prefix` (len bytes) either way; id NULL only expands it (for an id the
 * broker assigns). */
int acl_client_id_check(const char *want, struct acl_who *who, const char *id, char *prefix,
			size_t len);

#endif
