/* /api/v1/sessions (docs/admin-api.md): the client sessions protocols
 * keep across connections (MQTT's), from their snapshots
 * (net/sessions.h); DELETE ends one whose client is not connected. */
#include "config.h"
#include "admin/internal.h"

#include <event2/http.h>
#include <jansson.h>
#include <string.h>

#include "broker.h"
#include "net/sessions.h"

static json_t *subs_json(const struct session_view *v, size_t *queued)
{
	json_t *list = json_array();
	for (size_t i = 0; list && i < v->nsubs; i++) {
		const struct session_sub_view *s = &v->subs[i];
		json_t *o = json_pack("{s:o,s:i,s:b,s:b,s:o,s:o}", "filter",
				      admin_text_json(s->filter), "qos", s->qos, "no_local",
				      s->no_local, "retain_as_published", s->retain_as_published,
				      "subscription_id", s->id ? json_integer(s->id) : json_null(),
				      "queued",
				      s->queued_known ? json_integer((json_int_t)s->queued)
						      : json_null());
		if (!o || json_array_append_new(list, o) < 0) {
			json_decref(list);
			return NULL;
		}
		*queued += s->queued;
	}
	return list;
}

static json_t *session_json(const struct session_view *v)
{
	size_t queued = 0;
	json_t *subs = subs_json(v, &queued);
	return json_pack("{s:o,s:s,s:b,s:o,s:o,s:b,s:b,s:o,s:o,s:b,s:I,s:I,s:o}", "client_id",
			 admin_text_json(v->client_id), "protocol", v->protocol, "connected",
			 v->conn_id != 0, "connection",
			 v->conn_id ? json_integer((json_int_t)v->conn_id) : json_null(), "user",
			 v->user ? admin_text_json(v->user) : json_null(), "persistent",
			 v->persistent, "durable", v->durable, "expiry_interval",
			 v->expiry_interval == UINT32_MAX ? json_null()
							  : json_integer(v->expiry_interval),
			 "expires_at", v->expires_ms ? admin_iso_time(v->expires_ms) : json_null(),
			 "will", v->will, "queued", (json_int_t)queued, "inflight",
			 (json_int_t)v->inflight, "subscriptions", subs);
}

struct list_ctx {
	json_t *list;
	bool failed;
};

static void add_session(const struct session_view *v, void *arg)
{
	struct list_ctx *x = arg;
	json_t *o = session_json(v);
	if (!o || json_array_append_new(x->list, o) < 0)
		x->failed = true;
}

static void one_session(const struct session_view *v, void *arg)
{
	*(json_t **)arg = session_json(v);
}

/* Who connected the session last, for the audit line (a new reference:
 * a string or null). */
static void last_user(const struct session_view *v, void *arg)
{
	*(json_t **)arg = v->user ? admin_text_json(v->user) : json_null();
}

static const char *client_of(const json_t *o)
{
	const char *v = json_string_value(json_object_get(o, "client_id"));
	return v ? v : "";
}

static int by_client(const void *x, const void *y)
{
	return strcmp(client_of(*(json_t *const *)x), client_of(*(json_t *const *)y));
}

void admin_sessions(struct admin *a, struct evhttp_request *req, const struct audit_actor *who,
		    char **seg, size_t nseg)
{
	if (nseg == 0) {
		if (!admin_only_get(req))
			return;
		struct list_ctx x = { json_array(), false };
		/* Out of memory: 500 rather than a list that looks whole. */
		if (x.list && (sessions_each(a->b, add_session, &x) < 0 || x.failed)) {
			json_decref(x.list);
			x.list = NULL;
		}
		admin_reply_sorted(req, x.list, by_client);
		return;
	}
	if (nseg > 1) {
		admin_reply_error(req, 404, "no such resource");
		return;
	}
	const char *id = seg[0];
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD) {
		json_t *o = NULL;
		int rc = sessions_find(a->b, id, one_session, &o);
		if (rc == 0)
			admin_reply_error(req, 404, "no session %s", id);
		else
			admin_reply_json(req, 200, o);
		return;
	}
	if (m != EVHTTP_REQ_DELETE) {
		admin_method_not_allowed(req, "GET, HEAD, DELETE");
		return;
	}
	json_t *user = NULL;
	if (sessions_find(a->b, id, last_user, &user) < 0)
		user = NULL;
	switch (sessions_remove(a->b, id)) {
	case SESSION_REMOVED:
		admin_audit(who, "session_deleted", NULL,
			    json_pack("{s:o,s:o?}", "session", admin_text_json(id), "session_user",
				      user));
		admin_reply_json(req, 200, json_pack("{s:o,s:b}", "client_id", admin_text_json(id),
						      "deleted", 1));
		return;
	case SESSION_CONNECTED:
		json_decref(user);
		admin_reply_error(req, 409,
				  "session %s has a client connected: close its connection first",
				  id);
		return;
	default:
		json_decref(user);
		admin_reply_error(req, 404, "no session %s", id);
	}
}
