/* SUBSCRIBE and UNSUBSCRIBE: plain, durable (with durable.c) and RabbitMQ
 * temp-queue subscriptions, and their windows and ack modes. */
#include "config.h"
#include "protocols/stomp/internal.h"

#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "broker.h"
#include "log.h"
#include "net/conn.h"

/* ---- temp queues -------------------------------------------------------- */

/* A RabbitMQ temp queue of this connection (see stomp_temp_queue). */
struct stomp_temp {
	struct stomp_temp *next;
	char *name;  /* NAME of the client's /temp-queue/NAME */
	char *queue; /* the router's queue, "wharf.temp.CONN.N" */
};

static void temp_free(struct stomp_temp *t)
{
	free(t->name);
	free(t->queue);
	free(t);
}

/* RabbitMQ's temp queues: reply-to:/temp-queue/NAME on a SEND makes a
 * queue private to this connection (its name is opaque), subscribed at
 * once with ack:auto under the id "/temp-queue/NAME"; the message names
 * that queue as its reply-to, and the queue goes with the connection. The
 * queue's name (the session's), or NULL when it cannot be made. */
const char *stomp_temp_queue(struct stomp_session *s, const char *name)
{
	struct stomp_temp *t;
	for (t = s->temps; t; t = t->next)
		if (!strcmp(t->name, name))
			return t->queue;
	struct stomp_sub *sub = calloc(1, sizeof(*sub));
	struct buf id = BUF_INIT, queue = BUF_INIT, dest = BUF_INIT;
	enum router_err err;
	t = calloc(1, sizeof(*t));
	if (!t || !sub || buf_printf(&id, "/temp-queue/%s", name) < 0 ||
	    buf_printf(&queue, "wharf.temp.%lu.%lu", conn_id(s->c), ++s->next_temp) < 0 ||
	    buf_printf(&dest, "/reply-queue/%s", queue.data) < 0 || !(t->name = strdup(name)))
		goto fail;
	sub->id = id.data;
	sub->queue_dest = dest.data;
	sub->s = s;
	sub->seq = ++s->next_sub_seq;
	sub->ack = ACK_AUTO;
	sub->kind = DEST_QUEUE;
	sub->rabbit = true;
	struct subscribe_options opts = { .consumer.window = s->b->cfg->stomp.prefetch,
					  .consumer.auto_ack = true, .owner = true };
	sub->next = s->subs;
	s->subs = sub;
	sub->rs = router_subscribe(s->b->router, DEST_QUEUE, queue.data, &opts, &stomp_consumer_ops,
				   sub, &err);
	if (!sub->rs) {
		s->subs = sub->next;
		conn_log(s->c, LOG_INFO, "stomp: temp queue %s: %s", queue.data,
			 router_strerror(err));
		goto fail;
	}
	t->queue = queue.data;
	t->next = s->temps;
	s->temps = t;
	return t->queue;
fail:
	free(sub);
	buf_free(&id);
	buf_free(&queue);
	buf_free(&dest);
	if (t)
		temp_free(t);
	return NULL;
}

void stomp_temps_free(struct stomp_session *s)
{
	while (s->temps) {
		struct stomp_temp *t = s->temps;
		s->temps = t->next;
		router_delete_queue(s->b->router, t->queue);
		temp_free(t);
	}
}

/* ---- SUBSCRIBE ---------------------------------------------------------- */

struct stomp_sub *stomp_find_sub(struct stomp_session *s, const char *id)
{
	for (struct stomp_sub *sub = s->subs; sub; sub = sub->next)
		if (!strcmp(sub->id, id))
			return sub;
	return NULL;
}

/* What a SUBSCRIBE or UNSUBSCRIBE says of a durable subscription. ActiveMQ
 * names one with activemq.subscriptionName (or durable-subscription-name);
 * RabbitMQ asks with durable:true (persistent:true in its older plugin) and
 * auto-delete:false, and names it by its x-queue-name header, or else the
 * frame's id. Its durable:true alone
 * on a SUBSCRIBE makes a queue deleted with its last subscriber, which is
 * what a plain subscription is here; on an UNSUBSCRIBE it ends the durable
 * subscription, as there. False when the frame asks for none; *name is NULL
 * when it asks RabbitMQ's way without an id; *rabbit says it asked so. */
bool stomp_durable_request(struct stomp_frame *f, const char **name, bool *rabbit)
{
	*rabbit = false;
	*name = stomp_frame_get(f, "activemq.subscriptionName");
	if (!*name)
		*name = stomp_frame_get(f, "durable-subscription-name");
	if (*name)
		return true;
	int durable = stomp_header_bool(f, "durable");
	if (durable < 0)
		durable = stomp_header_bool(f, "persistent");
	if (durable != 1 ||
	    (f->command == STOMP_CMD_SUBSCRIBE && stomp_header_bool(f, "auto-delete") != 0))
		return false;
	*name = stomp_frame_get(f, "x-queue-name");
	if (!*name)
		*name = stomp_frame_get(f, "id");
	*rabbit = true;
	return true;
}

/* The queue of this client's durable subscription `name` (for the caller to
 * free), or NULL after an ERROR. RabbitMQ has no client-id: a subscription
 * asked its way without one is named by its id alone, as there, so that
 * its clients need no change. */
static char *durable_queue_of(struct stomp_session *s, const char *name, bool rabbit,
			      const char *receipt)
{
	if (!name) {
		stomp_send_error(s, "missing id header", receipt,
				 "a durable subscription is named by its id");
		return NULL;
	}
	if (!*name) {
		stomp_send_error(s, "empty durable subscription name", receipt, NULL);
		return NULL;
	}
	if (!s->client_id.id && !rabbit) {
		stomp_send_error(s, "durable subscription needs a client-id", receipt,
				 "send a client-id header on CONNECT: with the subscription name it "
				 "names the durable subscription");
		return NULL;
	}
	const char *cid = s->client_id.id ? s->client_id.id : "";
	const char *want = s->b->cfg->auth.stomp_client_id_prefix;
	char prefix[300];
	/* RabbitMQ's way, without a client-id: under a bound prefix the
	 * subscription is the user's, named as if its client-id were the
	 * prefix. */
	if (!s->client_id.id && want) {
		if (acl_client_id_check(want, conn_acl_who(s->c), NULL, prefix,
					sizeof(prefix)) < 0) {
			stomp_send_error(s, "client id prefix too long", receipt, NULL);
			return NULL;
		}
		cid = prefix;
	}
	char *q = stomp_durable_queue(cid, name);
	if (!q) {
		bool long_ = strlen(cid) + strlen(name) > STOMP_DURABLE_MAX_NAME;
		stomp_send_error(s, long_ ? "client-id and subscription name too long" : "out of memory",
				 receipt, long_ ? "they may have 2000 bytes together" : NULL);
	}
	return q;
}

static struct stomp_sub **find_durable(struct stomp_session *s, const char *queue)
{
	for (struct stomp_sub **pp = &s->subs; *pp; pp = &(*pp)->next)
		if ((*pp)->durable_queue && !strcmp((*pp)->durable_queue, queue))
			return pp;
	return NULL;
}

/* The window a SUBSCRIBE asks for: ActiveMQ's activemq.prefetchSize or
 * RabbitMQ's prefetch-count (0 there: no limit, here the largest window).
 * False after an ERROR. */
static bool sub_window(struct stomp_session *s, struct stomp_frame *f, const char *receipt,
		       unsigned *window, bool *rabbit)
{
	const char *prefetch = stomp_frame_get(f, "activemq.prefetchSize");
	const char *count = stomp_dialect_of(s) != STOMP_DIALECT_ACTIVEMQ
				    ? stomp_frame_get(f, "prefetch-count") : NULL;
	unsigned long long n;
	*window = s->b->cfg->stomp.prefetch;
	if (prefetch) {
		if (!stomp_parse_uint(prefetch, 1000000, &n) || n == 0) {
			stomp_send_error(s, "invalid activemq.prefetchSize", receipt,
					 "expected 1 to 1000000");
			return false;
		}
		*window = (unsigned)n;
	} else if (count) {
		if (!stomp_parse_uint(count, 1000000, &n)) {
			stomp_send_error(s, "invalid prefetch-count", receipt, "expected 0 to 1000000");
			return false;
		}
		*window = n ? (unsigned)n : 1000000;
		*rabbit = true;
	}
	return true;
}

static bool subscribe_to(struct stomp_session *s, struct stomp_frame *f, const char *dest,
			 const struct stomp_dest *d, const char *id, const char *receipt)
{
	const char *ack = stomp_frame_get(f, "ack");
	enum dest_kind kind = d->kind;
	const char *name = d->name;
	bool rabbit_style = d->rabbit || stomp_dialect_of(s) == STOMP_DIALECT_RABBITMQ;
	struct subscribe_options opts = { .who = conn_acl_who(s->c) };
	if (!sub_window(s, f, receipt, &opts.consumer.window, &rabbit_style))
		return false;
	enum ack_mode mode = ACK_AUTO;
	if (!ack || !strcmp(ack, "auto"))
		mode = ACK_AUTO;
	else if (!strcmp(ack, "client"))
		mode = ACK_CLIENT;
	else if (!strcmp(ack, "client-individual") && s->version >= STOMP_V11)
		mode = ACK_INDIVIDUAL;
	else {
		stomp_send_error(s, "invalid ack mode", receipt, ack);
		return false;
	}
	opts.consumer.auto_ack = mode == ACK_AUTO;
	const char *durable_name;
	bool rabbit = false;
	char *dq = NULL;
	bool fresh = false;
	enum router_err err;
	/* On a queue the durable headers ask for nothing more: a queue keeps
	 * its messages anyway. */
	if (kind == DEST_TOPIC && stomp_durable_request(f, &durable_name, &rabbit)) {
		if (!(dq = durable_queue_of(s, durable_name, rabbit, receipt)))
			return false;
		if (find_durable(s, dq)) {
			stomp_send_error(s, "durable subscription already active", receipt, durable_name);
			free(dq);
			return false;
		}
		if ((err = stomp_durable_keep(s->b, dq, name, &fresh)) != ROUTER_OK) {
			free(dq);
			stomp_send_router_error(s, err, dest, receipt);
			return false;
		}
		opts.durable_queue = dq;
	}
	struct stomp_sub *sub = calloc(1, sizeof(*sub));
	if (!sub || !(sub->id = strdup(id)) ||
	    (kind == DEST_QUEUE && !(sub->queue_dest = strdup(dest)))) {
		if (sub)
			free(sub->id);
		free(sub);
		if (fresh)
			stomp_durable_end(s->b, dq);
		free(dq);
		stomp_send_error(s, "out of memory", receipt, NULL);
		return false;
	}
	sub->durable_queue = dq;
	sub->topic_prefix = d->out_prefix;
	sub->rabbit = rabbit_style || rabbit;
	sub->s = s;
	sub->seq = ++s->next_sub_seq;
	sub->ack = mode;
	sub->kind = kind;
	/* Linked before subscribing: the router may deliver at once. */
	sub->next = s->subs;
	s->subs = sub;
	sub->rs = router_subscribe(s->b->router, kind, name, &opts, &stomp_consumer_ops, sub, &err);
	if (!sub->rs) {
		s->subs = sub->next;
		if (fresh)
			stomp_durable_end(s->b, dq);
		free(sub->durable_queue);
		free(sub->queue_dest);
		free(sub->id);
		free(sub);
		stomp_send_router_error(s, err, dest, receipt);
		return false;
	}
	return true;
}

bool stomp_on_subscribe(struct stomp_session *s, struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	const char *dest = stomp_frame_get(f, "destination");
	const char *id = stomp_frame_get(f, "id");
	struct stomp_dest d;
	if (!stomp_frame_dest(s, f, true, &d))
		return false;
	if (!id && s->version < STOMP_V11)
		id = dest; /* 1.0: the destination names the subscription */
	bool ok = false;
	unsigned max = s->b->cfg->max_subscriptions_per_connection, n = 0;
	for (const struct stomp_sub *sub = s->subs; sub; sub = sub->next)
		n++;
	if (!id)
		stomp_send_error(s, "missing id header", receipt, NULL);
	else if (stomp_find_sub(s, id))
		stomp_send_error(s, "subscription id already in use", receipt, id);
	else if (n >= max)
		stomp_send_error(s, conn_subscription_refused(s->c, "max_subscriptions_per_connection",
							      max),
				 receipt, dest);
	else
		ok = subscribe_to(s, f, dest, &d, id, receipt);
	stomp_dest_clear(&d);
	return ok;
}

static void sub_free(struct stomp_session *s, struct stomp_sub *sub)
{
	router_unsubscribe(s->b->router, sub->rs);
	free(sub->durable_queue);
	free(sub->queue_dest);
	free(sub->id);
	free(sub);
}

static struct stomp_sub *unlink_sub(struct stomp_sub **pp)
{
	struct stomp_sub *sub = *pp;
	*pp = sub->next;
	return sub;
}

void stomp_subs_free(struct stomp_session *s)
{
	while (s->subs) {
		struct stomp_sub *sub = s->subs;
		s->subs = sub->next;
		sub_free(s, sub);
	}
}

/* ---- UNSUBSCRIBE -------------------------------------------------------- */

/* A plain UNSUBSCRIBE detaches a durable subscription, as a disconnect
 * does; one with the headers that made it durable (RabbitMQ's durable:true
 * alone is enough) ends it. */
bool stomp_on_unsubscribe(struct stomp_session *s, struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	const char *id = stomp_frame_get(f, "id");
	const char *durable_name;
	bool rabbit;
	bool durable = stomp_durable_request(f, &durable_name, &rabbit);
	if (!id && s->version == STOMP_V10)
		id = stomp_frame_get(f, "destination");
	if (!id && !durable) {
		stomp_send_error(s, "missing id header", receipt, NULL);
		return false;
	}
	char *dq = NULL;
	if (durable && !(dq = durable_queue_of(s, durable_name, rabbit, receipt)))
		return false;
	struct stomp_sub **pp = NULL;
	if (id)
		for (pp = &s->subs; *pp && strcmp((*pp)->id, id); pp = &(*pp)->next)
			;
	bool had = pp && *pp;
	if (had) {
		struct stomp_sub *sub = unlink_sub(pp);
		/* The one named by id ends whatever named its queue (an
		 * x-queue-name the UNSUBSCRIBE need not repeat). */
		if (durable && sub->durable_queue) {
			free(dq);
			dq = sub->durable_queue;
			sub->durable_queue = NULL;
		}
		sub_free(s, sub);
		stomp_unacked_changed(s);
	}
	if (!durable) {
		if (!had)
			stomp_send_error(s, "no such subscription", receipt, id);
		return had;
	}
	/* Named by the header alone, the subscription may be consumed here
	 * under another id; the queue goes only once no one consumes it. */
	if ((pp = find_durable(s, dq)))
		sub_free(s, unlink_sub(pp));
	enum router_err err = stomp_durable_end(s->b, dq);
	free(dq);
	/* RabbitMQ's headers on a subscription that was not durable: it is
	 * gone, which is all they ask. */
	if (err == ROUTER_ENOTFOUND && had)
		err = ROUTER_OK;
	if (err == ROUTER_ENOTFOUND)
		stomp_send_error(s, "no such durable subscription", receipt, durable_name);
	else if (err != ROUTER_OK)
		stomp_send_router_error(s, err, durable_name, receipt);
	return err == ROUTER_OK;
}
