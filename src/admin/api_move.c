/* POST /api/v1/queues/NAME/move (docs/admin-api.md): a queue's waiting
 * messages to another queue, or a dead-letter queue's back to where they
 * died, answered once the durable ones are on disk in their new queue. */
#include "config.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "admin/internal.h"
#include "broker.h"
#include "log.h"

/* A move whose messages the store is writing; a->moves holds it until
 * then (admin_moves_free drops what is left). */
struct admin_move {
	struct router_confirm c; /* first: the router hands it back */
	struct admin_move *next, **prevp;
	struct admin *a;
	struct evhttp_request *req;
	json_t *answer;
};

static void unlink_move(struct admin_move *mv)
{
	*mv->prevp = mv->next;
	if (mv->next)
		mv->next->prevp = mv->prevp;
	json_decref(mv->answer);
	free(mv);
}

static void on_disk(struct router_confirm *c, enum router_err err)
{
	struct admin_move *mv = (struct admin_move *)c;
	/* evhttp keeps a request whose client went away until it is
	 * answered, and frees it then. */
	if (err == ROUTER_OK)
		admin_reply_json(mv->req, 200, json_incref(mv->answer));
	else
		admin_reply_error(mv->req, 503, "moved messages could not be written: %s",
				  router_strerror(err));
	unlink_move(mv);
}

void admin_moves_free(struct admin *a)
{
	while (a->moves) {
		router_confirm_cancel(a->b->router, &a->moves->c);
		unlink_move(a->moves);
	}
}

/* {"to": "QUEUE", "count": N}, both optional (an empty body too). 0 and
 * a reply when malformed. */
static int move_args(struct evhttp_request *req, char **to, size_t *count)
{
	*to = NULL;
	*count = 0;
	if (!evbuffer_get_length(evhttp_request_get_input_buffer(req)))
		return 1;
	json_t *j = admin_read_json(req);
	if (!j)
		return 0;
	json_t *t = json_object_get(j, "to"), *n = json_object_get(j, "count");
	const char *key;
	json_t *v;
	int ok = 1;
	json_object_foreach(j, key, v) {
		if (strcmp(key, "to") && strcmp(key, "count"))
			ok = 0;
	}
	if (!ok || (t && !json_is_string(t)) ||
	    (n && (!json_is_integer(n) || json_integer_value(n) < 1))) {
		admin_reply_error(req, 400, "the body is {\"to\": QUEUE, \"count\": N}, both "
					    "optional (count at least 1)");
		json_decref(j);
		return 0;
	}
	if (n)
		*count = (size_t)json_integer_value(n);
	if (t && !(*to = strdup(json_string_value(t)))) {
		json_decref(j);
		admin_reply_json(req, 500, NULL);
		return 0;
	}
	json_decref(j);
	return 1;
}

void admin_move(struct admin *a, struct evhttp_request *req, const struct audit_actor *who,
		const char *name)
{
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
		admin_reply_error(req, 405, "method not allowed (allowed: POST)");
		return;
	}
	char *to;
	size_t count, moved, skipped;
	if (!move_args(req, &to, &count))
		return;
	struct router *r = a->b->router;
	enum router_err err = router_move(r, name, to, count, &moved, &skipped);
	/* A move that stopped part way (a full queue, the store) still
	 * answers what went, once it is on disk. */
	if (err != ROUTER_OK && !moved) {
		if (err == ROUTER_ENOTFOUND && !router_has_queue(r, name))
			admin_reply_error(req, 404, "no queue %s", name);
		else if (err == ROUTER_EINVAL)
			admin_reply_error(req, 400, "cannot move %s to %s", name, to);
		else
			admin_reply_error(req, admin_router_status(err), "%s", router_strerror(err));
		free(to);
		return;
	}
	log_info("admin: moved %zu messages from %s to %s", moved, name, to ? to : "their origin");
	admin_audit(who, "messages_moved", name,
		    json_pack("{s:s?,s:I}", "to", to, "moved", (json_int_t)moved));
	struct admin_move *mv = calloc(1, sizeof(*mv));
	json_t *answer = json_pack("{s:s,s:s?,s:I,s:I,s:s?}", "name", name, "to", to, "moved",
				   (json_int_t)moved, "skipped", (json_int_t)skipped, "stopped",
				   err == ROUTER_OK ? NULL : router_strerror(err));
	free(to);
	if (!mv || !answer) {
		free(mv);
		json_decref(answer);
		admin_reply_json(req, 500, NULL);
		return;
	}
	mv->c.done = on_disk;
	mv->a = a;
	mv->req = req;
	mv->answer = answer;
	mv->next = a->moves;
	mv->prevp = &a->moves;
	if (a->moves)
		a->moves->prevp = &mv->next;
	a->moves = mv;
	enum router_err synced = router_sync(r, &mv->c);
	if (synced != ROUTER_PENDING)
		on_disk(&mv->c, synced);
}
