/* The JSON resources under /api/v1 (docs/admin-api.md). */
#include "config.h"
#include "admin/internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/alarms.h"
#include "broker.h"
#include "ha/ha.h"
#include "log.h"
#include "net/conn.h"
#include "net/listener.h"
#include "router/router.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/utf8.h"

/* Browse: the messages one request returns unless ?limit= says, and the
 * part of each body shown. */
#define BROWSE_DEFAULT 100
#define BROWSE_BODY_MAX (64 * 1024)
/* A sent message's headers: as many and as long as a STOMP client's. */
#define SEND_HEADERS_MAX 64
#define SEND_HEADER_NAME_MAX 256
#define SEND_HEADER_VALUE_MAX 8192

static const char *const role_names[] = { "none", "primary", "standby", "auto" };

json_t *admin_iso_time(long long ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char text[40];
	gmtime_r(&t, &tm);
	size_t n = strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(text + n, sizeof(text) - n, ".%03lldZ", ms % 1000);
	return json_string(text);
}

/* A name as JSON: a client may have made it of bytes that are not UTF-8
 * (JSON cannot carry them), shown as '?'. */
json_t *admin_text_json(const char *s)
{
	json_t *j = json_string(s);
	if (j)
		return j;
	char *copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static json_t *drops_json(const uint64_t n[DROP_NCAUSES])
{
	json_t *o = json_object();
	for (int why = 0; o && why < DROP_NCAUSES; why++)
		json_object_set_new(o, queue_drop_name(why), json_integer((json_int_t)n[why]));
	return o;
}

/* Which HTTP status a router error becomes. */
int admin_router_status(enum router_err err)
{
	switch (err) {
	case ROUTER_OK:
	case ROUTER_PENDING: return 200;
	case ROUTER_EINVAL: return 400;
	case ROUTER_EFORBIDDEN:
	case ROUTER_EDENIED: return 403;
	case ROUTER_ENOTFOUND: return 404;
	case ROUTER_EFULL: return 409;
	case ROUTER_ESTORE: return 503;
	case ROUTER_ENOMEM: break;
	}
	return 500;
}

void admin_method_not_allowed(struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	admin_reply_error(req, 405, "method not allowed (allowed: %s)", allow);
}

/* A destination name from the URL, checked as a client's would be. */
static bool valid_name(struct evhttp_request *req, const char *name)
{
	if (address_validate(name, false) == 0 && utf8_valid(name, strlen(name)))
		return true;
	/* The name is not shown: it may not be UTF-8. */
	admin_reply_error(req, 400, "invalid destination name");
	return false;
}

/* ---- /broker ---------------------------------------------------------------- */

static void get_broker(struct admin *a, struct evhttp_request *req)
{
	struct broker *b = a->b;
	const struct router_stats *rs = router_stats(b->router);
	const char *why = NULL;
	bool ready = admin_ready(b, &why);
	int64_t up_ms = clock_mono_ms() - b->started_ms;
	long long started = clock_wall_ms() - up_ms;
	json_t *j = json_pack("{s:s,s:s?,s:s,s:s,s:b,s:s?,s:o,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:o}",
			      "version", PACKAGE_VERSION, "node", b->cfg->ha.node_id, "state",
			      b->active ? "active" : "standby", "role",
			      role_names[b->cfg->ha.role & 3], "ready", ready, "not_ready_reason",
			      ready ? NULL : why, "started", admin_iso_time(started), "uptime_seconds",
			      up_ms / 1000.0, "connections", (json_int_t)b->nconns, "queues",
			      (json_int_t)rs->queues, "topics",
			      (json_int_t)router_topic_count(b->router), "subscriptions",
			      (json_int_t)rs->subscriptions, "retained", (json_int_t)rs->retained,
			      "published", (json_int_t)rs->published, "dropped",
			      drops_json(rs->dropped));
	if (j && b->store) {
		struct store_stats ss;
		store_stats(b->store, &ss);
		json_object_set_new(j, "store",
				    json_pack("{s:I,s:I,s:I}", "messages", (json_int_t)ss.messages,
					      "bindings", (json_int_t)ss.bindings, "write_errors",
					      (json_int_t)ss.write_errors));
	}
	admin_reply_json(req, 200, j);
}

/* ---- /pair -------------------------------------------------------------------- */

static void get_pair(struct admin *a, struct evhttp_request *req)
{
	struct broker *b = a->b;
	if (!b->ha) {
		admin_reply_error(req, 404, "this node is not one of a pair ([ha] role is none)");
		return;
	}
	struct ha_status st;
	ha_status(b->ha, &st);
	const struct ha_config *c = &b->cfg->ha;
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:b,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
			      "node", c->node_id, "role", role_names[c->role & 3], "state",
			      st.active ? "active" : "standby", "peer", c->peer, "epoch",
			      (json_int_t)st.epoch, "connected", st.connected, "in_sync", st.in_sync,
			      "degraded", st.degraded, "last_seq", (json_int_t)st.last_seq,
			      "lag_records", (json_int_t)st.lag_records, "lag_bytes",
			      (json_int_t)st.lag_bytes, "held_confirmations", (json_int_t)st.held,
			      "attaches", (json_int_t)st.attaches, "drops", (json_int_t)st.drops,
			      "refusals", (json_int_t)st.refusals);
	admin_reply_json(req, 200, j);
}

/* ---- /listeners ------------------------------------------------------------- */

static void listener_json(const char *name, const char *url, unsigned long conns,
			  size_t max_connections, void *arg)
{
	json_array_insert_new(arg, 0,
			      json_pack("{s:s,s:s,s:I,s:I}", "name", name, "url", url,
					"connections", (json_int_t)conns, "max_connections",
					(json_int_t)max_connections));
}

static void get_listeners(struct admin *a, struct evhttp_request *req)
{
	json_t *list = json_array();
	if (list)
		listener_each(a->b, listener_json, list);
	admin_reply_json(req, 200, list);
}

/* ---- /connections ----------------------------------------------------------- */

static json_t *conn_json(const struct conn *c)
{
	const struct conn_counts *n = conn_counts(c);
	return json_pack("{s:I,s:s,s:s,s:o,s:b,s:b,s:o,s:I,s:I,s:I,s:I,s:b}", "id",
			 (json_int_t)conn_id(c), "protocol", conn_protocol(c), "remote",
			 conn_peer(c), "principal", admin_text_json(conn_principal(c)), "tls",
			 conn_tls(c), "websocket", conn_websocket(c), "since",
			 admin_iso_time(conn_since_ms(c)),
			 "messages_in", (json_int_t)n->msgs_in, "messages_out",
			 (json_int_t)n->msgs_out, "bytes_in", (json_int_t)n->bytes_in, "bytes_out",
			 (json_int_t)n->bytes_out, "closing", conn_closing(c));
}

static void add_conn(struct conn *c, void *arg)
{
	json_array_append_new(arg, conn_json(c));
}

static void connections(struct admin *a, struct evhttp_request *req,
			const struct audit_actor *who, char **seg, size_t nseg)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (nseg == 0) {
		if (!admin_only_get(req))
			return;
		json_t *list = json_array();
		if (list)
			conn_each(a->b, add_conn, list);
		admin_reply_json(req, 200, list);
		return;
	}
	if (nseg > 1) {
		admin_reply_error(req, 404, "no such resource");
		return;
	}
	char *end;
	errno = 0;
	unsigned long id = strtoul(seg[0], &end, 10);
	if (!*seg[0] || *end || errno || seg[0][0] == '-') {
		admin_reply_error(req, 400, "a connection id is a number");
		return;
	}
	struct conn *c = conn_find(a->b, id);
	if (!c) {
		admin_reply_error(req, 404, "no connection %lu", id);
		return;
	}
	if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD) {
		admin_reply_json(req, 200, conn_json(c));
		return;
	}
	if (m != EVHTTP_REQ_DELETE) {
		admin_method_not_allowed(req, "GET, HEAD, DELETE");
		return;
	}
	conn_log(c, LOG_INFO, "admin: closing the connection (%s)", conn_protocol(c));
	admin_audit(who, "connection_closed", NULL,
		    json_pack("{s:I,s:s,s:s,s:o}", "closed_conn", (json_int_t)id, "closed_protocol",
			      conn_protocol(c), "closed_remote", conn_peer(c), "closed_principal",
			      admin_text_json(conn_principal(c))));
	conn_end(c, CONN_END_ADMIN);
	admin_reply_json(req, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id, "closed", 1));
}

/* ---- /queues ---------------------------------------------------------------- */

static json_t *queue_json(const struct queue *q, int64_t now)
{
	const struct queue_stats *st = queue_stats(q);
	int64_t oldest = queue_oldest_ms(q);
	json_t *age = oldest ? json_real((now > oldest ? now - oldest : 0) / 1000.0) : json_null();
	return json_pack("{s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:o}",
			 "name", admin_text_json(queue_name(q)), "depth",
			 (json_int_t)queue_depth(q), "paged", (json_int_t)queue_paged(q), "unacked",
			 (json_int_t)queue_unacked(q),
			 "consumers", (json_int_t)queue_consumer_count(q), "bindings",
			 (json_int_t)queue_bindings(q), "enqueued", (json_int_t)st->enqueued,
			 "dequeued", (json_int_t)st->acked, "delivered", (json_int_t)st->delivered,
			 "rejected", (json_int_t)st->rejected, "expired", (json_int_t)st->expired,
			 "dead_lettered", (json_int_t)st->dead_lettered, "dropped",
			 (json_int_t)st->dropped, "dropped_by_cause", drops_json(queue_drops(q)),
			 "bytes", (json_int_t)queue_bytes(q), "oldest_message_age_seconds", age);
}

static int by_name(const void *x, const void *y)
{
	return strcmp(queue_name(*(struct queue *const *)x), queue_name(*(struct queue *const *)y));
}

struct queue_list {
	struct queue **q;
	size_t n, cap;
	bool oom;
};

static void collect_queue(struct queue *q, void *arg)
{
	struct queue_list *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct queue **grown = realloc(l->q, cap * sizeof(*grown));
		if (!grown) {
			l->oom = true;
			return;
		}
		l->q = grown;
		l->cap = cap;
	}
	l->q[l->n++] = q;
}

int admin_sorted_queues(struct broker *b, struct queue ***out, size_t *n)
{
	struct queue_list l = { 0 };
	router_each_queue(b->router, collect_queue, &l);
	if (l.oom) {
		free(l.q);
		return -1;
	}
	if (l.n)
		qsort(l.q, l.n, sizeof(*l.q), by_name);
	*out = l.q;
	*n = l.n;
	return 0;
}

static void list_queues(struct admin *a, struct evhttp_request *req)
{
	struct queue **qs;
	size_t n;
	json_t *list = json_array();
	if (!list || admin_sorted_queues(a->b, &qs, &n) < 0) {
		json_decref(list);
		admin_reply_json(req, 500, NULL);
		return;
	}
	int64_t now = clock_wall_ms();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, queue_json(qs[i], now));
	free(qs);
	admin_reply_json(req, 200, list);
}

/* The request body as a JSON object; replies 400 and returns NULL when it
 * is not one. evhttp has already refused a body past ADMIN_MAX_BODY. */
json_t *admin_read_json(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	if (len > ADMIN_MAX_BODY) {
		admin_reply_error(req, 413, "request body over %d bytes", ADMIN_MAX_BODY);
		return NULL;
	}
	const char *text = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	json_error_t jerr;
	json_t *j = len ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	if (!j || !json_is_object(j)) {
		admin_reply_error(req, 400, "the body is not a JSON object%s%s", j ? "" : ": ",
				  j ? "" : len ? jerr.text : "empty");
		json_decref(j);
		return NULL;
	}
	return j;
}

static int set_header(struct message *m, const char *name, const char *value)
{
	if (!strcmp(name, "content-type"))
		return message_set(&m->content_type, value);
	if (!strcmp(name, "correlation-id"))
		return message_set_bytes(&m->correlation_id, &m->correlation_id_len, value,
					 strlen(value));
	if (!strcmp(name, "reply-to"))
		return message_set(&m->reply_to, value);
	if (!strcmp(name, "priority")) {
		if (value[0] < '0' || value[0] > '9' || value[1])
			return -2;
		m->priority = (uint8_t)(value[0] - '0');
		return 0;
	}
	return message_add_prop(m, name, value, strlen(value));
}

/* A message from {"body": "...", "headers": {...}, "persistent": bool};
 * NULL after a reply. */
static struct message *message_from_json(struct evhttp_request *req, json_t *j)
{
	json_t *body = json_object_get(j, "body"), *headers = json_object_get(j, "headers");
	json_t *persistent = json_object_get(j, "persistent");
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v) {
		if (strcmp(key, "body") && strcmp(key, "headers") && strcmp(key, "persistent")) {
			admin_reply_error(req, 400, "unknown field '%s' (body, headers, persistent)", key);
			return NULL;
		}
	}
	if ((body && !json_is_string(body)) || (headers && !json_is_object(headers)) ||
	    (persistent && !json_is_boolean(persistent))) {
		admin_reply_error(req, 400, "body is a string, headers an object of strings, "
					    "persistent true or false");
		return NULL;
	}
	if (headers && json_object_size(headers) > SEND_HEADERS_MAX) {
		admin_reply_error(req, 400, "more than %d headers", SEND_HEADERS_MAX);
		return NULL;
	}
	struct message *m = message_new();
	if (!m) {
		admin_reply_json(req, 500, NULL);
		return NULL;
	}
	m->priority = MESSAGE_DEFAULT_PRIORITY;
	m->durable = persistent && json_is_true(persistent);
	m->qos = 1;
	m->payload_format = 1; /* a JSON string is UTF-8 */
	json_object_foreach(headers, key, v) {
		size_t klen = strlen(key);
		if (!json_is_string(v) || !klen || klen > SEND_HEADER_NAME_MAX ||
		    json_string_length(v) > SEND_HEADER_VALUE_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			admin_reply_error(req, 400, "each header is a name of 1 to %d bytes and a "
						    "string of at most %d",
					  SEND_HEADER_NAME_MAX, SEND_HEADER_VALUE_MAX);
			message_unref(m);
			return NULL;
		}
		int rc = set_header(m, key, json_string_value(v));
		if (rc < 0) {
			if (rc == -2)
				admin_reply_error(req, 400, "priority is 0 to 9");
			else
				admin_reply_json(req, 500, NULL);
			message_unref(m);
			return NULL;
		}
	}
	size_t len = body ? json_string_length(body) : 0;
	uint8_t *copy = len ? malloc(len) : NULL;
	if (len && !copy) {
		admin_reply_json(req, 500, NULL);
		message_unref(m);
		return NULL;
	}
	if (len)
		memcpy(copy, json_string_value(body), len);
	message_take_body(m, &copy, len);
	return m;
}

/* POST .../NAME/messages: published as a client's would be (reserved
 * names refused), not waiting for the store. */
static void send_message(struct admin *a, struct evhttp_request *req, enum dest_kind kind,
			 const char *name)
{
	json_t *j = admin_read_json(req);
	if (!j)
		return;
	struct message *m = message_from_json(req, j);
	json_decref(j);
	if (!m)
		return;
	struct message *mine = message_ref(m);
	struct publish_ctx pc = { .broker_own = false };
	enum router_err err = router_publish(a->b->router, kind, name, &m, &pc);
	if (err != ROUTER_OK && err != ROUTER_PENDING)
		admin_reply_error(req, admin_router_status(err), "%s", router_strerror(err));
	else
		admin_reply_json(req, 201,
				 json_pack("{s:s,s:s,s:I,s:b}", "destination", name, "kind",
					   dest_kind_name(kind), "id", (json_int_t)mine->id,
					   "persistent", mine->durable));
	message_unref(mine);
}

struct browse {
	json_t *list;
};

static json_t *body_json(const struct message *m, json_t *o)
{
	size_t shown = m->body_len < BROWSE_BODY_MAX ? m->body_len : BROWSE_BODY_MAX;
	json_t *text = json_stringn((const char *)m->body, shown);
	if (text) {
		json_object_set_new(o, "body", text);
	} else {
		/* Not UTF-8: base64. */
		char *b64 = malloc(4 * ((shown + 2) / 3) + 1);
		if (b64) {
			EVP_EncodeBlock((unsigned char *)b64, m->body, (int)shown);
			json_object_set_new(o, "body_base64", json_string(b64));
			free(b64);
		}
	}
	json_object_set_new(o, "body_size", json_integer((json_int_t)m->body_len));
	json_object_set_new(o, "body_truncated", json_boolean(shown < m->body_len));
	return o;
}

static void browse_one(const struct message *m, uint32_t count, void *arg)
{
	struct browse *br = arg;
	json_t *headers = json_object();
	for (size_t i = 0; headers && i < m->nprops; i++) {
		json_t *v = json_stringn(m->props[i].value, m->props[i].value_len);
		if (v)
			json_object_set_new(headers, m->props[i].name, v);
	}
	if (headers && m->content_type)
		json_object_set_new(headers, "content-type", json_string(m->content_type));
	if (headers && m->reply_to)
		json_object_set_new(headers, "reply-to", json_string(m->reply_to));
	if (headers && m->correlation_id)
		json_object_set_new(headers, "correlation-id",
				    json_stringn(m->correlation_id, m->correlation_id_len));
	json_t *o = json_pack("{s:I,s:o,s:i,s:b,s:i,s:o}", "id", (json_int_t)m->id, "timestamp",
			      admin_iso_time(m->timestamp_ms), "priority", m->priority, "persistent",
			      m->durable, "delivery_count", (int)count, "headers",
			      headers ? headers : json_object());
	if (o)
		json_array_append_new(br->list, body_json(m, o));
}

static void browse(struct admin *a, struct evhttp_request *req, const struct queue *q)
{
	size_t limit = BROWSE_DEFAULT, max = a->b->cfg->admin.browse_max;
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq params = { 0 };
	if (query && evhttp_parse_query_str(query, &params) < 0) {
		admin_reply_error(req, 400, "malformed query string");
		return;
	}
	const char *l = evhttp_find_header(&params, "limit");
	if (l) {
		char *end;
		errno = 0;
		unsigned long n = strtoul(l, &end, 10);
		if (!*l || *end || errno || l[0] == '-' || n == 0 || n > max) {
			evhttp_clear_headers(&params);
			admin_reply_error(req, 400, "limit is 1 to %zu", max);
			return;
		}
		limit = n;
	}
	evhttp_clear_headers(&params);
	if (limit > max)
		limit = max;
	struct browse br = { json_array() };
	if (br.list)
		queue_browse(q, limit, browse_one, &br);
	admin_reply_json(req, 200, br.list);
}

static void one_queue(struct admin *a, struct evhttp_request *req,
		      const struct audit_actor *who, const char *name)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	struct router *r = a->b->router;
	if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD) {
		struct queue *q = router_find_queue(r, name);
		if (!q) {
			admin_reply_error(req, 404, "no queue %s", name);
			return;
		}
		admin_reply_json(req, 200, queue_json(q, clock_wall_ms()));
		return;
	}
	if (m == EVHTTP_REQ_PUT) {
		bool created = false;
		enum router_err err = router_create_queue(r, name, &created);
		if (err != ROUTER_OK) {
			admin_reply_error(req, admin_router_status(err), "%s", router_strerror(err));
			return;
		}
		if (created)
			admin_audit(who, "destination_created", name, NULL);
		admin_reply_json(req, created ? 201 : 200,
					queue_json(router_find_queue(r, name), clock_wall_ms()));
		return;
	}
	if (m == EVHTTP_REQ_DELETE) {
		struct queue *q = router_find_queue(r, name);
		if (!q) {
			admin_reply_error(req, 404, "no queue %s", name);
			return;
		}
		size_t depth = queue_depth(q);
		enum router_err err = router_delete_queue(r, name);
		if (err == ROUTER_EINVAL) {
			admin_reply_error(req, 409, "queue %s has consumers or bindings", name);
			return;
		}
		if (err != ROUTER_OK) {
			admin_reply_error(req, admin_router_status(err), "%s", router_strerror(err));
			return;
		}
		admin_audit(who, "destination_deleted", name,
			    json_pack("{s:I}", "dropped", (json_int_t)depth));
		admin_reply_json(req, 200, json_pack("{s:s,s:b,s:I}", "name", name, "deleted",
							     1, "dropped", (json_int_t)depth));
		return;
	}
	admin_method_not_allowed(req, "GET, HEAD, PUT, DELETE");
}

static void queues(struct admin *a, struct evhttp_request *req, const struct audit_actor *who,
		   char **seg, size_t nseg)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (nseg == 0) {
		if (!admin_only_get(req))
			return;
		list_queues(a, req);
		return;
	}
	const char *name = seg[0];
	if (!valid_name(req, name))
		return;
	if (nseg == 1) {
		one_queue(a, req, who, name);
		return;
	}
	if (nseg != 2) {
		admin_reply_error(req, 404, "no such resource");
		return;
	}
	if (!strcmp(seg[1], "purge")) {
		if (m != EVHTTP_REQ_POST) {
			admin_method_not_allowed(req, "POST");
			return;
		}
		size_t purged = 0;
		enum router_err err = router_purge_queue(a->b->router, name, &purged);
		if (err != ROUTER_OK) {
			admin_reply_error(req, admin_router_status(err), "no queue %s", name);
			return;
		}
		admin_audit(who, "queue_purged", name, json_pack("{s:I}", "purged", (json_int_t)purged));
		admin_reply_json(req, 200, json_pack("{s:s,s:I}", "name", name, "purged",
							     (json_int_t)purged));
		return;
	}
	if (!strcmp(seg[1], "move")) {
		admin_move(a, req, who, name);
		return;
	}
	if (strcmp(seg[1], "messages")) {
		admin_reply_error(req, 404, "no such resource");
		return;
	}
	if (m == EVHTTP_REQ_POST) {
		send_message(a, req, DEST_QUEUE, name);
		return;
	}
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		admin_method_not_allowed(req, "GET, HEAD, POST");
		return;
	}
	struct queue *q = router_find_queue(a->b->router, name);
	if (!q) {
		admin_reply_error(req, 404, "no queue %s", name);
		return;
	}
	browse(a, req, q);
}

/* ---- /topics ---------------------------------------------------------------- */

static void topic_json(const char *name, size_t subscribers, bool retained, void *arg)
{
	json_array_append_new(arg, json_pack("{s:o,s:I,s:b}", "name", admin_text_json(name),
					     "subscribers", (json_int_t)subscribers, "retained",
					     retained));
}

static int by_topic_name(const void *x, const void *y)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)x, "name")),
		      json_string_value(json_object_get(*(json_t *const *)y, "name")));
}

void admin_reply_sorted(struct evhttp_request *req, json_t *list,
			int (*cmp)(const void *x, const void *y))
{
	size_t n = json_array_size(list);
	json_t **items = malloc((n ? n : 1) * sizeof(*items));
	json_t *sorted = json_array();
	if (!list || !items || !sorted) {
		/* Unsorted rather than nothing. */
		free(items);
		json_decref(sorted);
		admin_reply_json(req, 200, list);
		return;
	}
	for (size_t i = 0; i < n; i++)
		items[i] = json_array_get(list, i);
	qsort(items, n, sizeof(*items), cmp);
	for (size_t i = 0; i < n; i++)
		json_array_append(sorted, items[i]);
	free(items);
	json_decref(list);
	admin_reply_json(req, 200, sorted);
}

static void topics(struct admin *a, struct evhttp_request *req, char **seg, size_t nseg)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (nseg == 0) {
		if (!admin_only_get(req))
			return;
		json_t *list = json_array();
		if (list)
			router_each_topic(a->b->router, topic_json, list);
		admin_reply_sorted(req, list, by_topic_name);
		return;
	}
	if (!valid_name(req, seg[0]))
		return;
	if (nseg == 2 && !strcmp(seg[1], "messages")) {
		if (m != EVHTTP_REQ_POST) {
			admin_method_not_allowed(req, "POST");
			return;
		}
		send_message(a, req, DEST_TOPIC, seg[0]);
		return;
	}
	admin_reply_error(req, 404, "no such resource");
}

/* GET /api/v1/alarms and /api/v1/alarms/NAME. */
static void alarms(struct admin *a, struct evhttp_request *req, const char *name)
{
	if (!admin_only_get(req))
		return;
	bool found;
	json_t *j = alarms_json(a->b->alarms, name, &found);
	if (!found)
		admin_reply_error(req, 404, "no such alarm '%s'", name);
	else
		admin_reply_json(req, 200, j);
}

/* ---- dispatch --------------------------------------------------------------- */

void admin_api(struct admin *a, struct evhttp_request *req, const struct audit_actor *who,
	       char **seg, size_t nseg)
{
	if (nseg == 0) {
		admin_reply_error(req, 404, "no such resource");
		return;
	}
	const char *what = seg[0];
	if (!strcmp(what, "broker") || !strcmp(what, "listeners") || !strcmp(what, "pair")) {
		if (nseg != 1) {
			admin_reply_error(req, 404, "no such resource");
			return;
		}
		if (!admin_only_get(req))
			return;
		if (what[0] == 'b')
			get_broker(a, req);
		else if (what[0] == 'p')
			get_pair(a, req);
		else
			get_listeners(a, req);
		return;
	}
	bool known = !strcmp(what, "connections") || !strcmp(what, "queues") ||
		     !strcmp(what, "topics") || !strcmp(what, "sessions") ||
		     (!strcmp(what, "bindings") && nseg == 1) ||
		     (!strcmp(what, "alarms") && nseg <= 2);
	if (!known) {
		admin_reply_error(req, 404, "no such resource");
		return;
	}
	/* A standby's router is not the pair's: its queues are empty until it
	 * is promoted. */
	if (!a->b->active) {
		admin_reply_error(req, 503, "standby: this node is not the active one");
		return;
	}
	if (what[0] == 'b') {
		admin_bindings(a, req);
		return;
	}
	if (what[0] == 'a') {
		alarms(a, req, nseg == 2 ? seg[1] : NULL);
		return;
	}
	if (what[0] == 'c') {
		connections(a, req, who, seg + 1, nseg - 1);
		return;
	}
	if (what[0] == 'q') {
		queues(a, req, who, seg + 1, nseg - 1);
		return;
	}
	if (what[0] == 's') {
		admin_sessions(a, req, who, seg + 1, nseg - 1);
		return;
	}
	topics(a, req, seg + 1, nseg - 1);
}
