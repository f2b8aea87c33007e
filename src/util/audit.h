/* The audit log ([audit] file, docs/security.md, Audit log): who logged
 * in, who failed to, what the ACLs refused, which users and rules were
 * reloaded, which queues clients and administrators made and removed, and
 * what administrators did. One JSON object a line, in its own file, e.g.
 *   {"time":"2026-12-04T15:42:20.123Z","event":"connect","principal":"alice",
 *    "mechanism":"password","protocol":"stomp","listener":"s",
 *    "remote":"127.0.0.1:5321","conn":7}
 * where conn is the conn=N of the main log. Written as the main log is: one
 * line-buffered write per line, whole in the file when audit_event
 * returns. Nothing here limits how many lines come: callers whose cause a
 * client repeats at will (ACL denials) bound their own calls.
 * Off, every call a no-op, until audit_open. Event-loop thread only. */
#ifndef WHARF_UTIL_AUDIT_H
#define WHARF_UTIL_AUDIT_H

#include <stdbool.h>

struct json_t;

/* Who did it. Any field NULL (0 for conn) is left out of the line. The
 * strings are the caller's; anything a client sent is cut at 256 bytes
 * and made valid UTF-8. */
struct audit_actor {
	const char *principal; /* the user, or "anonymous" */
	const char *mechanism; /* "password", "anonymous", "certificate", "basic" (admin API) */
	const char *protocol;  /* "stomp", "mqtt", "amqp", "admin" */
	const char *listener;  /* the [listener NAME], or "admin" */
	const char *remote;    /* "HOST:PORT" */
	const char *client_id; /* MQTT client id, STOMP client-id, AMQP container-id */
	unsigned long conn;    /* the connection's id (conn=N in the log) */
};

/* One line: event and what it is about; NULL fields are left out. */
struct audit_record {
	const char *event;               /* "connect", "connect_failed", "acl_denied", ... */
	const struct audit_actor *actor; /* NULL: the broker itself (a SIGHUP reload) */
	const char *destination;         /* a queue or topic name */
	const char *kind;                /* "queue" or "topic" */
	const char *action;              /* an ACL action: "publish", "subscribe", ... */
	const char *reason;              /* why it failed, was refused */
	struct json_t *detail;           /* an object whose fields are added last;
					  * taken (decref'd) by audit_event, NULL: none */
};

/* Opens `path` for appending, created with mode 0600 when missing; -1
 * with errno set, the audit log then stays as it was. */
int audit_open(const char *path);
/* Opens the same path again (after a rotation's rename, on SIGHUP); -1
 * with errno set, lines then keep going to the old file. 0 when off. */
int audit_reopen(void);
void audit_close(void);
/* Whether audit_open succeeded: callers skip building a detail when not. */
bool audit_on(void);
/* Writes the line (a no-op when off; a line that cannot be made for want
 * of memory is lost, and the main log says so). */
void audit_event(const struct audit_record *r);

#endif
