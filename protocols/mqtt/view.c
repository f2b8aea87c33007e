/* The MQTT client sessions as the admin API sees them (net/sessions.h):
 * a snapshot of each, and their removal. */
#include "config.h"
#include "protocols/mqtt/session.h"

#include <stdlib.h>

#include "log.h"
#include "net/conn.h"
#include "net/sessions.h"
#include "protocols/mqtt/internal.h"

/* Calls fn with cl's snapshot. -1 on out of memory. */
static int view(const struct mqtt_client *cl, session_view_fn fn, void *arg)
{
	struct session_sub_view *subs = calloc(cl->nsubs ? cl->nsubs : 1, sizeof(*subs));
	if (!subs)
		return -1;
	size_t n = 0;
	for (const struct msub *sub = cl->subs; sub && n < cl->nsubs; sub = sub->next, n++) {
		subs[n] = (struct session_sub_view){
			.filter = sub->filter,
			.qos = sub->qos,
			.no_local = sub->no_local,
			.retain_as_published = sub->retain_as_published,
			.id = sub->sub_id,
			/* A share member's group queue is the group's, not its. */
			.queued_known = sub->rs && !sub->group,
		};
		if (subs[n].queued_known)
			subs[n].queued = queue_depth(consumer_queue(subscription_consumer(sub->rs)));
	}
	struct mqtt_conn *mc = cl->mc;
	struct session_view v = {
		.protocol = "mqtt",
		.client_id = cl->id,
		.user = cl->user,
		.conn_id = mc ? conn_id(mc->c) : 0,
		.persistent = cl->session_expiry != 0,
		.durable = mqtt_client_durable(cl),
		.expiry_interval = cl->session_expiry,
		.expires_ms = !mc && cl->expiry_ev ? cl->expires_ms : 0,
		.will = mc ? mc->will != NULL : cl->will != NULL,
		.inflight = cl->ninflight,
		.subs = subs,
		.nsubs = n,
	};
	fn(&v, arg);
	free(subs);
	return 0;
}

struct each_ctx {
	session_view_fn fn;
	void *arg;
	int rc;
};

static void each_client(const char *id, void *value, void *arg)
{
	struct each_ctx *x = arg;
	if (view(value, x->fn, x->arg) < 0)
		x->rc = -1;
}

static int each(void *state, session_view_fn fn, void *arg)
{
	struct mqtt_broker *mb = state;
	struct each_ctx x = { fn, arg, 0 };
	map_each(mb->clients, each_client, &x);
	return x.rc;
}

static int find(void *state, const char *id, session_view_fn fn, void *arg)
{
	const struct mqtt_client *cl = mqtt_client_find(state, id);
	if (!cl)
		return 0;
	return view(cl, fn, arg) < 0 ? -1 : 1;
}

/* A connected session is left alone: ending it under its client would
 * leave a connection without a session; the operator closes the
 * connection first (docs/admin-api.md). */
static int remove_session(void *state, const char *id)
{
	struct mqtt_client *cl = mqtt_client_find(state, id);
	if (!cl)
		return SESSION_NONE;
	if (cl->mc)
		return SESSION_CONNECTED;
	log_info("mqtt client %s: session ended by the admin API", cl->id);
	mqtt_client_free(cl, true);
	return SESSION_REMOVED;
}

const struct session_ops mqtt_sessions = { .each = each, .find = find, .remove = remove_session };
