/* MQTT client sessions: what MQTT keeps for a client id across its
 * connections (subscriptions, QoS 1/2 in flight, incoming QoS 2 ids, a
 * delayed will), and the router consumer that turns deliveries into
 * PUBLISH packets. */
#include "config.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "net/conn.h"
#include "protocols/mqtt/internal.h"
#include "protocols/mqtt/mapping.h"
#include "util/clock.h"

struct mqtt_client *mqtt_client_find(struct mqtt_broker *mb, const char *id)
{
	return map_get(mb->clients, id);
}

struct mqtt_client *mqtt_client_new(struct mqtt_broker *mb, const char *id)
{
	struct mqtt_client *cl = calloc(1, sizeof(*cl));
	if (!cl || !(cl->id = strdup(id)) || !(cl->subs_by_filter = map_new()) ||
	    map_put(mb->clients, id, cl) < 0) {
		if (cl) {
			map_free(cl->subs_by_filter);
			free(cl->id);
		}
		free(cl);
		return NULL;
	}
	cl->mb = mb;
	cl->next_pid = 1;
	return cl;
}

/* Adds sub to the session's list and index. -1 on out of memory. */
static int link_sub(struct mqtt_client *cl, struct msub *sub)
{
	if (map_put(cl->subs_by_filter, sub->filter, sub) < 0)
		return -1;
	sub->next = cl->subs;
	if (sub->next)
		sub->next->prevp = &sub->next;
	sub->prevp = &cl->subs;
	cl->subs = sub;
	cl->nsubs++;
	return 0;
}

static void unlink_sub(struct mqtt_client *cl, struct msub *sub)
{
	map_del(cl->subs_by_filter, sub->filter);
	*sub->prevp = sub->next;
	if (sub->next)
		sub->next->prevp = sub->prevp;
	cl->nsubs--;
}

/* Frees what sub holds, and sub. */
static void msub_release(struct msub *sub)
{
	free(sub->queue);
	free(sub->group);
	free(sub->pattern);
	free(sub->filter);
	free(sub);
}

/* Forgets the in-flight entries of sub whose deliveries go back to their
 * queue now (router_unsubscribe); `all`: also those settled already, which
 * only wait for PUBCOMP. */
static void forget_inflight(struct mqtt_client *cl, const struct msub *sub, bool all)
{
	uint32_t j = 0;
	for (uint32_t i = 0; i < cl->ninflight; i++)
		if (cl->inflight[i].sub != sub || (!all && !cl->inflight[i].d))
			cl->inflight[j++] = cl->inflight[i];
	cl->ninflight = j;
}

/* Unlinks and frees sub. */
static void msub_free(struct mqtt_client *cl, struct msub *sub, bool ending)
{
	unlink_sub(cl, sub);
	forget_inflight(cl, sub, true);
	if (sub->rs)
		router_unsubscribe(cl->mb->b->router, sub->rs);
	if (sub->queue && ending) {
		char *pattern = mqtt_to_router_name(sub->filter, strlen(sub->filter));
		if (!pattern || router_drop_durable(cl->mb->b->router, pattern, sub->queue) != ROUTER_OK)
			log_warn("mqtt client %s: cannot remove the queue of %s", cl->id, sub->filter);
		free(pattern);
	}
	msub_release(sub);
}

void mqtt_client_cancel_will(struct mqtt_client *cl)
{
	if (cl->will_ev)
		event_free(cl->will_ev);
	cl->will_ev = NULL;
	message_unref(cl->will);
	cl->will = NULL;
	free(cl->will_topic);
	cl->will_topic = NULL;
}

void mqtt_client_free(struct mqtt_client *cl, bool ending)
{
	if (cl->will && ending)
		mqtt_publish_will(cl->mb, &cl->will, cl->will_topic, cl->will_expiry_ms);
	mqtt_client_cancel_will(cl);
	if (ending)
		mqtt_session_forget(cl);
	while (cl->subs)
		msub_free(cl, cl->subs, ending);
	map_free(cl->subs_by_filter);
	if (cl->expiry_ev)
		event_free(cl->expiry_ev);
	map_del(cl->mb->clients, cl->id);
	free(cl->inflight);
	free(cl->qos2_in);
	free(cl->user);
	free(cl->id);
	free(cl);
}

static struct subscription *router_sub(struct mqtt_client *cl, struct msub *sub,
				       const char *pattern, bool retained, enum router_err *err);

/* While the client is away its subscriptions keep at most max_queued
 * messages each, dropping the oldest (as Mosquitto does); while it is
 * connected a full subscription slows its publishers instead. A share
 * group member leaves its group meanwhile: what it had in flight goes
 * back to the group's queue for the others, whose policy stays. */
static void park_subs(struct mqtt_client *cl)
{
	for (struct msub *sub = cl->subs; sub; sub = sub->next) {
		if (sub->group) {
			forget_inflight(cl, sub, false);
			router_unsubscribe(cl->mb->b->router, sub->rs);
			sub->rs = NULL;
			continue;
		}
		struct consumer *c = subscription_consumer(sub->rs);
		queue_set_overflow(consumer_queue(c), QUEUE_DROP_HEAD);
		consumer_set_paused(c, true);
	}
}

/* The client is back: share group members rejoin their groups. */
static void rejoin_shares(struct mqtt_client *cl)
{
	for (struct msub *sub = cl->subs; sub; sub = sub->next) {
		enum router_err err;
		if (sub->group && !sub->rs && !(sub->rs = router_sub(cl, sub, sub->pattern, false, &err)))
			log_warn("mqtt client %s: cannot rejoin %s: %s", cl->id, sub->filter,
				 router_strerror(err));
	}
}

void mqtt_client_resume(struct mqtt_client *cl)
{
	if (cl->mc)
		cl->mc->paused = false;
	for (struct msub *sub = cl->subs; sub && cl->mc && !cl->mc->paused; sub = sub->next) {
		if (!sub->rs)
			continue;
		struct consumer *c = subscription_consumer(sub->rs);
		if (!sub->group)
			queue_set_overflow(consumer_queue(c), QUEUE_BLOCK);
		consumer_set_paused(c, false);
	}
}

void mqtt_client_attach(struct mqtt_client *cl, struct mqtt_conn *mc)
{
	cl->mc = mc;
	mc->cl = cl;
	mqtt_client_cancel_will(cl);
	if (cl->expiry_ev) {
		event_free(cl->expiry_ev);
		cl->expiry_ev = NULL;
	}
	free(cl->user);
	cl->user = strdup(conn_principal(mc->c));
	/* What was in flight goes again, in order, before anything new. */
	for (uint32_t i = 0; i < cl->ninflight; i++) {
		struct inflight *f = &cl->inflight[i];
		if (f->state == IF_PUBCOMP) {
			mqtt_conn_send_ack(mc, MQTT_PUBREL, f->pid, 0);
		} else {
			struct message *m = (struct message *)delivery_message(f->d);
			uint8_t qos = f->state == IF_PUBACK ? 1 : 2;
			mqtt_conn_send_publish(mc, f->sub, m, qos, f->pid, true, delivery_retained(f->d));
		}
	}
	rejoin_shares(cl);
	mqtt_client_resume(cl);
}

static void expiry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqtt_client *cl = arg;
	log_debug("mqtt client %s: session expired", cl->id);
	mqtt_client_free(cl, true);
}

static void will_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqtt_client *cl = arg;
	mqtt_publish_will(cl->mb, &cl->will, cl->will_topic, cl->will_expiry_ms);
	mqtt_client_cancel_will(cl);
}

void mqtt_client_detach(struct mqtt_client *cl, bool publish_will)
{
	struct mqtt_conn *mc = cl->mc;
	cl->mc = NULL;
	mc->cl = NULL;
	park_subs(cl);
	if (publish_will && mc->will) {
		if (mc->will_delay && cl->session_expiry) {
			/* Held until the delay passes or the session ends, and
			 * dropped if the client comes back first. */
			cl->will = mc->will;
			cl->will_topic = mc->will_topic;
			cl->will_expiry_ms = mc->will_expiry_ms;
			mc->will = NULL;
			mc->will_topic = NULL;
			uint32_t delay = mc->will_delay < cl->session_expiry ? mc->will_delay
									      : cl->session_expiry;
			cl->will_ev = evtimer_new(conn_base(mc->c), will_cb, cl);
			if (cl->will_ev) {
				struct timeval tv = { delay, 0 };
				evtimer_add(cl->will_ev, &tv);
			} else {
				mqtt_publish_will(cl->mb, &cl->will, cl->will_topic, cl->will_expiry_ms);
			}
		} else {
			mqtt_publish_will(cl->mb, &mc->will, mc->will_topic, mc->will_expiry_ms);
		}
	}
	if (cl->session_expiry == 0) {
		mqtt_client_free(cl, true);
		return;
	}
	mqtt_client_start_expiry(cl);
}

int mqtt_client_start_expiry(struct mqtt_client *cl)
{
	if (cl->session_expiry == UINT32_MAX)
		return 0;
	cl->expiry_ev = evtimer_new(cl->mb->b->base, expiry_cb, cl);
	if (!cl->expiry_ev) {
		mqtt_client_free(cl, true);
		return -1;
	}
	struct timeval tv = { cl->session_expiry, 0 };
	evtimer_add(cl->expiry_ev, &tv);
	cl->expires_ms = clock_wall_ms() + cl->session_expiry * 1000LL;
	return 0;
}

/* ---- deliveries ---------------------------------------------------------- */

static int next_pid(struct mqtt_client *cl, uint16_t *pid)
{
	for (uint32_t tries = 0; tries < 65535; tries++) {
		uint16_t p = cl->next_pid++;
		if (cl->next_pid == 0)
			cl->next_pid = 1;
		bool used = false;
		for (uint32_t i = 0; i < cl->ninflight && !used; i++)
			used = cl->inflight[i].pid == p;
		if (!used) {
			*pid = p;
			return 0;
		}
	}
	return -1;
}

/* QoS 1 and 2 deliveries the client may have unacknowledged at once. */
static uint32_t window_of(const struct mqtt_conn *mc)
{
	uint32_t window = mc->peer_receive_max < mc->cfg->max_inflight ? mc->peer_receive_max
									: mc->cfg->max_inflight;
	uint32_t cap = mc->cl->mb->b->cfg->max_unacked_per_connection;
	return window < cap ? window : cap;
}

static int mqtt_deliver(void *ctx, struct delivery *d, struct message *m)
{
	struct msub *sub = ctx;
	struct mqtt_client *cl = sub->cl;
	struct mqtt_conn *mc = cl->mc;
	if (!mc || !mqtt_conn_can_send(mc)) {
		if (mc)
			mc->paused = true;
		return -1;
	}
	if (sub->no_local && m->origin == conn_id(mc->c))
		return 1;
	uint8_t qos = m->qos < sub->qos ? m->qos : sub->qos;
	if (qos == 0) {
		mqtt_conn_send_publish(mc, sub, m, 0, 0, false, delivery_retained(d));
		return 1;
	}
	if (cl->ninflight >= window_of(mc)) {
		mc->paused = true;
		cl->window_full = true;
		conn_acks_wanted(mc->c);
		return -1;
	}
	if (cl->ninflight == cl->cap_inflight) {
		uint32_t cap = cl->cap_inflight ? cl->cap_inflight * 2 : 16;
		struct inflight *f = realloc(cl->inflight, cap * sizeof(*f));
		if (!f)
			return -1;
		cl->inflight = f;
		cl->cap_inflight = cap;
	}
	uint16_t pid;
	if (next_pid(cl, &pid) < 0)
		return -1;
	int rc = mqtt_conn_send_publish(mc, sub, m, qos, pid, false, delivery_retained(d));
	if (rc > 0)
		return 1; /* the client cannot take it: dropped as if delivered */
	if (rc < 0)
		return -1;
	cl->inflight[cl->ninflight++] = (struct inflight){
		.pid = pid, .state = qos == 1 ? IF_PUBACK : IF_PUBREC, .d = d, .sub = sub
	};
	return 0;
}

static const struct consumer_ops mqtt_consumer_ops = { .deliver = mqtt_deliver };

/* Subscribes sub in the router to the dotted `pattern`, in its share group
 * or with its durable queue. */
static struct subscription *router_sub(struct mqtt_client *cl, struct msub *sub,
				       const char *pattern, bool retained, enum router_err *err)
{
	struct subscribe_options so = {
		/* Never auto-ack: QoS may change on a later SUBSCRIBE, and QoS 0
		 * deliveries are settled by returning 1 from mqtt_deliver. */
		.consumer = { .auto_ack = false },
		.share_group = sub->group,
		.retained = retained,
		.max_pending = cl->mb->b->cfg->mqtt.max_queued,
		.durable_queue = sub->queue,
		/* Sessions restored at start-up have no connection: checked
		 * when they were made. */
		.who = cl->mc ? conn_acl_who(cl->mc->c) : NULL,
	};
	return router_subscribe(cl->mb->b->router, DEST_TOPIC, pattern, &so, &mqtt_consumer_ops,
				sub, err);
}

static struct inflight *find_inflight(struct mqtt_client *cl, uint16_t pid, uint32_t *index)
{
	for (uint32_t i = 0; i < cl->ninflight; i++) {
		if (cl->inflight[i].pid == pid) {
			*index = i;
			return &cl->inflight[i];
		}
	}
	return NULL;
}

static void remove_inflight(struct mqtt_client *cl, uint32_t i)
{
	memmove(&cl->inflight[i], &cl->inflight[i + 1],
		(cl->ninflight - i - 1) * sizeof(*cl->inflight));
	cl->ninflight--;
}

/* An acknowledgement freed a slot. A full window reopens a quarter at a
 * time: refilled a slot per ack, a subscriber that fell behind costs a
 * wake-up and a write for every message, the acks arriving one by one
 * (TCP's silly window). */
static void acked(struct mqtt_client *cl)
{
	if (cl->window_full && cl->mc) {
		uint32_t window = window_of(cl->mc);
		if (cl->ninflight > window - window / 4) {
			conn_acks_wanted(cl->mc->c);
			return;
		}
	}
	cl->window_full = false;
	mqtt_client_resume(cl);
}

enum mqtt_ack_result mqtt_client_puback(struct mqtt_client *cl, uint16_t pid)
{
	uint32_t i;
	struct inflight *f = find_inflight(cl, pid, &i);
	if (!f)
		return MQTT_ACK_UNKNOWN;
	if (f->state != IF_PUBACK)
		return MQTT_ACK_MISMATCH;
	struct delivery *d = f->d;
	remove_inflight(cl, i);
	delivery_ack(d, false);
	acked(cl);
	return MQTT_ACK_OK;
}

enum mqtt_ack_result mqtt_client_pubrec(struct mqtt_client *cl, uint16_t pid, bool refused)
{
	uint32_t i;
	struct inflight *f = find_inflight(cl, pid, &i);
	if (!f)
		return MQTT_ACK_UNKNOWN;
	if (f->state == IF_PUBACK)
		return MQTT_ACK_MISMATCH;
	if (refused) {
		/* A PUBREC with an error code ends the exchange: no PUBREL. */
		struct delivery *d = f->d;
		remove_inflight(cl, i);
		if (d)
			delivery_ack(d, false);
		acked(cl);
		return MQTT_ACK_OK;
	}
	if (f->state == IF_PUBREC) {
		/* The client has it: the message is settled; only the PUBREL
		 * exchange remains. */
		struct delivery *d = f->d;
		f->d = NULL;
		f->state = IF_PUBCOMP;
		delivery_ack(d, false);
	}
	return MQTT_ACK_OK;
}

enum mqtt_ack_result mqtt_client_pubcomp(struct mqtt_client *cl, uint16_t pid)
{
	uint32_t i;
	struct inflight *f = find_inflight(cl, pid, &i);
	if (!f)
		return MQTT_ACK_UNKNOWN;
	if (f->state != IF_PUBCOMP)
		return MQTT_ACK_MISMATCH;
	remove_inflight(cl, i);
	acked(cl);
	return MQTT_ACK_OK;
}

bool mqtt_client_qos2_has(const struct mqtt_client *cl, uint16_t pid)
{
	for (uint32_t i = 0; i < cl->nqos2_in; i++)
		if (cl->qos2_in[i] == pid)
			return true;
	return false;
}

int mqtt_client_qos2_add(struct mqtt_client *cl, uint16_t pid, struct router_confirm *c)
{
	if (cl->nqos2_in == cl->cap_qos2_in) {
		uint32_t cap = cl->cap_qos2_in ? cl->cap_qos2_in * 2 : 8;
		uint16_t *a = realloc(cl->qos2_in, cap * sizeof(*a));
		if (!a)
			return -1;
		cl->qos2_in = a;
		cl->cap_qos2_in = cap;
	}
	cl->qos2_in[cl->nqos2_in++] = pid;
	mqtt_session_save_qos2(cl, c);
	return 0;
}

int mqtt_client_qos2_del(struct mqtt_client *cl, uint16_t pid, struct router_confirm *c)
{
	for (uint32_t i = 0; i < cl->nqos2_in; i++) {
		if (cl->qos2_in[i] == pid) {
			cl->qos2_in[i] = cl->qos2_in[--cl->nqos2_in];
			return mqtt_session_save_qos2(cl, c) < 0 ? -1 : 1;
		}
	}
	return 0;
}

/* ---- subscriptions ------------------------------------------------------- */

/* "$mqtt.HEX-CLIENT-ID.N": a name of the broker's own, apart for every
 * client id and subscription, whatever characters the id holds. */
static char *durable_queue_name(struct mqtt_client *cl)
{
	static const char hex[] = "0123456789abcdef";
	size_t il = strlen(cl->id);
	char *name = malloc(6 + 2 * il + 12);
	if (!name)
		return NULL;
	memcpy(name, "$mqtt.", 6);
	char *p = name + 6;
	for (size_t i = 0; i < il; i++) {
		*p++ = hex[(uint8_t)cl->id[i] >> 4];
		*p++ = hex[(uint8_t)cl->id[i] & 15];
	}
	snprintf(p, 12, ".%u", (unsigned)++cl->next_sub_no);
	return name;
}

int mqtt_client_restore_sub(struct mqtt_client *cl, const char *filter, const char *queue, uint8_t qos,
			    bool no_local, bool retain_as_published, uint32_t sub_id)
{
	struct msub *sub = calloc(1, sizeof(*sub));
	char *pattern = mqtt_to_router_name(filter, strlen(filter));
	if (!sub || !pattern || !(sub->filter = strdup(filter)) || !(sub->queue = strdup(queue))) {
		if (sub)
			msub_release(sub);
		free(pattern);
		return -1;
	}
	sub->cl = cl;
	sub->qos = qos;
	sub->no_local = no_local;
	sub->retain_as_published = retain_as_published;
	sub->sub_id = sub_id;
	enum router_err err;
	sub->rs = router_sub(cl, sub, pattern, false, &err);
	free(pattern);
	if (!sub->rs) {
		msub_release(sub);
		return -1;
	}
	if (link_sub(cl, sub) < 0) {
		router_unsubscribe(cl->mb->b->router, sub->rs);
		msub_release(sub);
		return -1;
	}
	struct consumer *c = subscription_consumer(sub->rs);
	queue_set_overflow(consumer_queue(c), QUEUE_DROP_HEAD);
	consumer_set_paused(c, true);
	return 0;
}

struct msub *mqtt_client_find_sub(struct mqtt_client *cl, const char *filter)
{
	return map_get(cl->subs_by_filter, filter);
}

uint8_t mqtt_client_subscribe(struct mqtt_client *cl, const struct mqtt_topic_filter *f,
			      uint32_t sub_id)
{
	struct mqtt_broker *mb = cl->mb;
	char *filter = malloc(f->filter.len + 1);
	char *pattern = mqtt_to_router_name(f->topic.p, f->topic.len);
	char *group = f->share.p ? malloc(f->share.len + 1) : NULL;
	struct msub *sub = NULL;
	uint8_t rc = MQTT_RC_UNSPECIFIED;
	if (!filter || !pattern || (f->share.p && !group))
		goto out;
	memcpy(filter, f->filter.p, f->filter.len);
	filter[f->filter.len] = '\0';
	if (group) {
		memcpy(group, f->share.p, f->share.len);
		group[f->share.len] = '\0';
	}
	if (!mqtt_name_mappable(f->topic.p, f->topic.len) || address_validate(pattern, true) != 0) {
		rc = MQTT_RC_TOPIC_FILTER_INVALID;
		goto out;
	}
	struct msub *old = mqtt_client_find_sub(cl, filter);
	if (old) {
		/* Same filter again: new options replace the old, the queue
		 * stays, and retained messages come again unless asked not to. */
		old->qos = f->qos;
		old->no_local = f->no_local;
		old->retain_as_published = f->retain_as_published;
		old->sub_id = sub_id;
		if (f->retain_handling == 0 && !group)
			router_send_retained(mb->b->router, old->rs);
		rc = f->qos;
		goto out;
	}
	const struct wharf_config *cfg = mb->b->cfg;
	unsigned max = cfg->mqtt.max_subscriptions ? cfg->mqtt.max_subscriptions
						   : cfg->max_subscriptions_per_connection;
	if (cl->nsubs >= max) {
		if (cl->mc)
			conn_subscription_refused(cl->mc->c, cfg->mqtt.max_subscriptions
						  ? "max_subscriptions_per_client"
						  : "max_subscriptions_per_connection", max);
		rc = MQTT_RC_QUOTA_EXCEEDED;
		goto out;
	}
	sub = calloc(1, sizeof(*sub));
	if (!sub)
		goto out;
	sub->cl = cl;
	sub->filter = filter;
	filter = NULL;
	sub->qos = f->qos;
	sub->no_local = f->no_local;
	sub->retain_as_published = f->retain_as_published;
	sub->sub_id = sub_id;
	if (!group && mqtt_client_durable(cl) && !(sub->queue = durable_queue_name(cl))) {
		msub_release(sub);
		goto out;
	}
	if (group) {
		/* Kept to rejoin the group after the client has been away. */
		sub->group = group;
		sub->pattern = pattern;
		group = pattern = NULL;
	}
	/* Linked first: retained messages are delivered during the call. */
	if (link_sub(cl, sub) < 0) {
		msub_release(sub);
		goto out;
	}
	enum router_err err;
	sub->rs = router_sub(cl, sub, sub->pattern ? sub->pattern : pattern,
			     f->retain_handling != 2, &err);
	if (!sub->rs) {
		unlink_sub(cl, sub);
		msub_release(sub);
		rc = err == ROUTER_ENOTFOUND || err == ROUTER_EDENIED ? MQTT_RC_NOT_AUTHORIZED
		     : err == ROUTER_EINVAL	 ? MQTT_RC_TOPIC_FILTER_INVALID
						 : MQTT_RC_UNSPECIFIED;
		goto out;
	}
	if (!cl->mc)
		consumer_set_paused(subscription_consumer(sub->rs), true);
	rc = f->qos;
out:
	free(filter);
	free(pattern);
	free(group);
	return rc;
}

uint8_t mqtt_client_unsubscribe(struct mqtt_client *cl, const char *filter)
{
	struct msub *sub = mqtt_client_find_sub(cl, filter);
	if (!sub)
		return MQTT_RC_NO_SUBSCRIPTION_EXISTED;
	msub_free(cl, sub, true);
	return MQTT_RC_SUCCESS;
}
