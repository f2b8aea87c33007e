/* Inside the admin server: what src/admin/admin.c (the HTTP side),
 * api.c (the JSON resources) and metrics.c (/metrics) share. */
#ifndef WHARF_ADMIN_INTERNAL_H
#define WHARF_ADMIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "router/router.h"
#include "util/loglimit.h"

struct broker;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct json_t;
struct queue;
struct audit_actor;

/* Largest request body the admin API reads; evhttp answers 413 past it. */
#define ADMIN_MAX_BODY (1024 * 1024)

struct admin_wait;
struct admin_move;

struct admin {
	struct broker *b;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	struct tls_ctx *tls;      /* https://, else NULL */
	struct admin_wait *waits; /* requests whose password is being checked (access.c) */
	struct admin_move *moves; /* moves waiting for the disk (api_move.c) */
	struct log_limit denials; /* audited 403s: one a second (access.c) */
	struct event *accept_resume; /* out of descriptors: accepting resumes (admin.c) */
	struct log_limit accept_log;
};

/* Serves req for `who`: its principal the user (NULL: authentication
 * off, nothing checked), mechanism "basic" or "anonymous", protocol and
 * listener "admin", remote the client's address; valid during the call. */
typedef void (*admin_serve_fn)(struct admin *a, struct evhttp_request *req,
			       const struct audit_actor *who);
/* access.c: with [auth] users_file, authenticates req by HTTP Basic
 * against the users file (through the authenticator: later, from the
 * loop) and then serves it, or answers 401 with WWW-Authenticate. A
 * request without credentials is served as `anonymous` from loopback
 * with [admin] allow_anonymous. Without users, and for /healthz and
 * /readyz, serves it at once with no user. */
void admin_access(struct admin *a, struct evhttp_request *req, bool loopback,
		  admin_serve_fn serve);
/* A refused login (a wrong password, a malformed Authorization header)
 * is audited as connect_failed; a request without credentials is not.
 * Cancels the checks still waiting (the admin server closes). */
void admin_access_free(struct admin *a);
/* Whether the ACLs let who's principal (NULL: not checked) do req on
 * what seg names (the path's segments): GET/HEAD of one queue or topic
 * needs `browse` on it, anything else done to one `admin` on it, and the
 * rest (lists, connections, the broker, /metrics) `admin` on `>`.
 * Otherwise answers 403, audits the denial (one line a second at most,
 * counting those left out) and returns false. */
bool admin_permitted(struct admin *a, struct evhttp_request *req, const struct audit_actor *who,
		     char **seg, size_t nseg);
/* The client's "HOST:PORT" into buf. */
void admin_peer(struct evhttp_request *req, char *buf, size_t len);
/* An audit line of an administrator's change: `event` done by who on
 * queue `queue` (NULL: none), with `detail` (taken; NULL: none). */
void admin_audit(const struct audit_actor *who, const char *event, const char *queue,
		 struct json_t *detail);

/* Whether the node serves: store replayed, client listeners bound, active
 * and not stopping. Otherwise *why says what is missing. */
bool admin_ready(const struct broker *b, const char **why);

/* Replies with j as JSON (taking the caller's reference, NULL: out of
 * memory, 500), or with {"error": text}. */
void admin_reply_json(struct evhttp_request *req, int code, struct json_t *j);
void admin_reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ms since the epoch as ISO 8601 UTC text (a new reference). */
struct json_t *admin_iso_time(long long ms);
/* A name as a JSON string (a new reference), bytes that are not UTF-8
 * shown as '?'. */
struct json_t *admin_text_json(const char *s);
/* Replies 405 with an Allow header. */
void admin_method_not_allowed(struct evhttp_request *req, const char *allow);

/* True for GET and HEAD; otherwise replies 405 (Allow: GET, HEAD) and
 * returns false. */
bool admin_only_get(struct evhttp_request *req);

/* Every named queue in *out (the caller frees the array), sorted by name,
 * *n of them. -1 on out of memory. */
int admin_sorted_queues(struct broker *b, struct queue ***out, size_t *n);

/* The value of one queue's series of the /metrics family `family`
 * (wharf_queue_..., as metrics.c lists them) at wall time `now`; -1 when
 * no such per-queue family. */
int admin_queue_sample(const char *family, const struct queue *q, int64_t now, double *v);
/* The process's resident memory in bytes; -1 when /proc cannot say. */
int admin_rss_bytes(uint64_t *v);

/* GET / and /console (redirected to /console/), /console/FILE
 * (console.c): the web console's files, embedded in the binary. path is
 * the request's raw path, seg its segments. */
void admin_console(struct evhttp_request *req, const char *path, char **seg, size_t nseg);
/* GET /metrics. */
void admin_metrics(struct admin *a, struct evhttp_request *req);
/* /api/v1/...: seg holds the percent-decoded path segments after "v1";
 * changes are audited as who's (admin_audit). */
void admin_api(struct admin *a, struct evhttp_request *req, const struct audit_actor *who,
	       char **seg, size_t nseg);

/* The request body as a JSON object (a new reference); replies 400 and
 * returns NULL when it is not one. */
struct json_t *admin_read_json(struct evhttp_request *req);
/* The HTTP status a router error becomes. */
int admin_router_status(enum router_err err);

/* POST /api/v1/queues/NAME/move (api_move.c): answers once the moved
 * durable messages are on disk. */
void admin_move(struct admin *a, struct evhttp_request *req, const struct audit_actor *who,
		const char *name);
/* Drops the moves still waiting for the disk (the admin server closes). */
void admin_moves_free(struct admin *a);
/* Replies 200 with list's objects sorted by cmp (qsort's, on json_t *
 * pointers); takes the caller's reference to list (NULL: out of memory,
 * 500). */
void admin_reply_sorted(struct evhttp_request *req, struct json_t *list,
			int (*cmp)(const void *x, const void *y));
/* GET /api/v1/bindings (api_bindings.c). */
void admin_bindings(struct admin *a, struct evhttp_request *req);
/* /api/v1/sessions and /api/v1/sessions/CLIENTID (api_sessions.c); seg
 * holds the segments after "sessions". */
void admin_sessions(struct admin *a, struct evhttp_request *req, const struct audit_actor *who,
		    char **seg, size_t nseg);

#endif
