/* Inside the admin server: what src/admin/admin.c (the HTTP side),
 * api.c (the JSON resources) and metrics.c (/metrics) share. */
#ifndef WHARF_ADMIN_INTERNAL_H
#define WHARF_ADMIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

struct broker;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct json_t;
struct queue;

/* Largest request body the admin API reads; evhttp answers 413 past it. */
#define ADMIN_MAX_BODY (1024 * 1024)

struct admin {
	struct broker *b;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
};

/* Whether the node serves: store replayed, client listeners bound, active
 * and not stopping. Otherwise *why says what is missing. */
bool admin_ready(const struct broker *b, const char **why);

/* Replies with j as JSON (taking the caller's reference, NULL: out of
 * memory, 500), or with {"error": text}. */
void admin_reply_json(struct evhttp_request *req, int code, struct json_t *j);
void admin_reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* True for GET and HEAD; otherwise replies 405 (Allow: GET, HEAD) and
 * returns false. */
bool admin_only_get(struct evhttp_request *req);

/* Every named queue in *out (the caller frees the array), sorted by name,
 * *n of them. -1 on out of memory. */
int admin_sorted_queues(struct broker *b, struct queue ***out, size_t *n);

/* GET /metrics. */
void admin_metrics(struct admin *a, struct evhttp_request *req);
/* /api/v1/...: seg holds the percent-decoded path segments after "v1". */
void admin_api(struct admin *a, struct evhttp_request *req, char **seg, size_t nseg);

#endif
