/* AMQP links: attaching them to queues and topics (DESIGN.md §3), and the
 * deliveries to the client on links from the broker, within its credit. */
#include "config.h"

#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/disposition.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "durable_sub.h"
#include "log.h"
#include "net/conn.h"
#include "protocols/amqp/internal.h"
#include "protocols/amqp/mapping.h"

/* ---- deliveries to the client ---------------------------------------------- */

/* Whether the delivery being made passes max_unacked_per_connection
 * (the router counts it already) over all the connection's links: the
 * link pauses until some are settled (amqp_unacked_freed), whatever
 * credit it has. */
static bool unacked_full(struct amqp_conn *ac)
{
	size_t n = 0;
	for (const struct amqp_link *l = ac->links; l; l = l->next)
		if (l->rs)
			n += consumer_unacked(subscription_consumer(l->rs));
	ac->unacked_paused = n > ac->b->cfg->max_unacked_per_connection;
	return ac->unacked_paused;
}

void amqp_unacked_freed(struct amqp_conn *ac)
{
	if (!ac->unacked_paused)
		return;
	ac->unacked_paused = false;
	for (struct amqp_link *al = ac->links; al; al = al->next)
		if (al->rs)
			consumer_set_paused(subscription_consumer(al->rs), false);
}

static int amqp_deliver(void *ctx, struct delivery *d, struct message *m)
{
	struct amqp_link *al = ctx;
	struct amqp_conn *ac = al->ac;
	if (ac->done || conn_closing(ac->c) || conn_output_full(ac->c) || pn_link_credit(al->link) <= 0)
		return -1;
	if (pn_link_snd_settle_mode(al->link) != PN_SND_SETTLED && unacked_full(ac))
		return -1;
	if (amqp_message_encode(m, delivery_count(d) - 1, &ac->scratch) < 0)
		return -1;
	uint64_t tag = ++al->next_tag;
	pn_delivery_t *pd = pn_delivery(al->link, pn_dtag((const char *)&tag, sizeof(tag)));
	pn_link_send(al->link, ac->scratch.data, ac->scratch.len);
	pn_link_advance(al->link);
	conn_count_msg_out(ac->c);
	amqp_schedule_flush(ac);
	if (pn_link_snd_settle_mode(al->link) == PN_SND_SETTLED) {
		pn_delivery_settle(pd);
		return 1;
	}
	pn_delivery_set_context(pd, d);
	return 0;
}

static const struct consumer_ops amqp_consumer_ops = { .deliver = amqp_deliver };

void amqp_link_credit_changed(struct amqp_link *al)
{
	struct consumer *c = subscription_consumer(al->rs);
	consumer_set_credit(c, (unsigned)(pn_link_credit(al->link) > 0 ? pn_link_credit(al->link) : 0));
	if (pn_link_get_drain(al->link)) {
		/* Whatever is left after dispatch goes back, as drain asks. */
		pn_link_drained(al->link);
		consumer_set_credit(c, 0);
	}
}

void amqp_settle_outcome(pn_delivery_t *pd, uint64_t type, bool failed, bool undeliverable)
{
	struct delivery *d = pn_delivery_get_context(pd);
	pn_delivery_set_context(pd, NULL);
	enum nack_outcome how = failed ? NACK_FAILED : NACK_RELEASE;
	switch (d ? type : PN_RELEASED) {
	case PN_RELEASED:
		if (d)
			delivery_nack(d, NACK_RELEASE);
		break;
	case PN_MODIFIED:
		if (undeliverable)
			delivery_nack_elsewhere(d, how); /* not to this link again */
		else
			delivery_nack(d, how);
		break;
	case PN_REJECTED:
		delivery_nack(d, NACK_REJECT);
		break;
	default: /* accepted, or settled with no outcome (settle mode first) */
		delivery_ack(d, false);
		break;
	}
	pn_delivery_settle(pd);
}

void amqp_outcome(struct amqp_conn *ac, pn_delivery_t *pd)
{
	if (!pn_delivery_get_context(pd))
		return;
	uint64_t state = pn_delivery_remote_state(pd);
	if (state == AMQP_TRANSACTIONAL_STATE) {
		if (amqp_txn_outcome(ac, pd))
			return;
		/* Under a transaction we do not know: it goes back. */
		state = PN_RELEASED;
	} else {
		amqp_txn_forget_delivery(ac, pd);
	}
	pn_disposition_t *disp = pn_delivery_remote(pd);
	amqp_settle_outcome(pd, state, pn_disposition_is_failed(disp),
			    pn_disposition_is_undeliverable(disp));
	amqp_unacked_freed(ac);
}

/* ---- links --------------------------------------------------------------- */

/* The store's key for a durable subscription's pattern (durable_sub.h). */
#define DURABLE_RECORD_PREFIX "amqp/durable/"


void amqp_link_free(struct amqp_conn *ac, struct amqp_link *al, bool closed)
{
	for (struct amqp_link **pp = &ac->links; *pp; pp = &(*pp)->next) {
		if (*pp == al) {
			*pp = al->next;
			break;
		}
	}
	amqp_txn_link_gone(ac, al);
	amqp_outcomes_link_gone(ac, al->link);
	if (al->rs) {
		/* Deliveries still unsettled go back to their queue. */
		for (pn_delivery_t *pd = pn_unsettled_head(al->link); pd; pd = pn_unsettled_next(pd))
			pn_delivery_set_context(pd, NULL);
		router_unsubscribe(ac->b->router, al->rs);
	}
	if (al->temporary)
		router_delete_queue(ac->b->router, al->name);
	/* A subscription made before the store kept its pattern has no
	 * record: its binding and queue go all the same. */
	if (al->durable_queue && closed &&
	    durable_sub_end(ac->b, DURABLE_RECORD_PREFIX, al->durable_queue) == ROUTER_ENOTFOUND)
		router_drop_durable(ac->b->router, al->name, al->durable_queue);
	pn_link_set_context(al->link, NULL);
	free(al->durable_queue);
	free(al->name);
	free(al);
}

void amqp_links_acl_changed(struct amqp_conn *ac)
{
	struct amqp_link *next;
	bool ended = false;
	for (struct amqp_link *al = ac->links; al; al = next) {
		next = al->next;
		if (!al->rs || router_recheck(ac->b->router, al->rs, conn_acl_who(ac->c)))
			continue;
		pn_link_t *link = al->link;
		amqp_link_free(ac, al, false);
		pn_condition_set_name(pn_link_condition(link), "amqp:unauthorized-access");
		pn_condition_set_description(pn_link_condition(link),
					     "the access rules no longer allow this link");
		pn_link_close(link);
		ended = true;
	}
	if (ended)
		amqp_schedule_flush(ac);
}

/* The queue that keeps a durable topic subscription while its link is
 * detached: named for the client's container id and the link's name. */
static char *durable_queue_name(pn_link_t *link)
{
	const char *container = pn_connection_remote_container(
		pn_session_connection(pn_link_session(link)));
	const char *parts[] = { container ? container : "", pn_link_name(link) };
	struct buf b = BUF_INIT;
	if (buf_append_str(&b, "wharf.durable") < 0)
		return NULL;
	for (size_t i = 0; i < 2; i++) {
		if (buf_append_char(&b, '.') < 0) {
			buf_free(&b);
			return NULL;
		}
		for (const char *c = parts[i]; *c; c++) {
			/* One level each, plain characters only; the escape keeps
			 * distinct ids distinct ("a.b" and "a_b"). */
			bool plain = *c != '.' && *c != '*' && *c != '>' && *c != '_' &&
				     (unsigned char)*c >= 0x20 && *c != 0x7f;
			int rc = plain ? buf_append_char(&b, *c)
				       : buf_printf(&b, "_%02x", (unsigned char)*c);
			if (rc < 0) {
				buf_free(&b);
				return NULL;
			}
		}
	}
	return b.data;
}

void amqp_refuse_link(pn_link_t *link, const char *cond, const char *why)
{
	/* A refusing attach carries a null terminus, then the detach says why. */
	pn_terminus_set_type(pn_link_source(link), PN_UNSPECIFIED);
	pn_terminus_set_type(pn_link_target(link), PN_UNSPECIFIED);
	pn_condition_set_name(pn_link_condition(link), cond);
	pn_condition_set_description(pn_link_condition(link), why);
	pn_link_open(link);
	pn_link_close(link);
}

const char *amqp_router_condition(enum router_err err)
{
	switch (err) {
	case ROUTER_ENOTFOUND: return "amqp:not-found";
	case ROUTER_EFORBIDDEN: return "amqp:unauthorized-access";
	case ROUTER_EDENIED: return "amqp:unauthorized-access";
	case ROUTER_EINVAL: return "amqp:invalid-field";
	case ROUTER_EFULL: return "amqp:resource-limit-exceeded";
	default: return "amqp:internal-error";
	}
}

void amqp_link_open(struct amqp_conn *ac, pn_link_t *link)
{
	bool to_client = pn_link_is_sender(link);
	pn_terminus_t *remote = to_client ? pn_link_remote_source(link) : pn_link_remote_target(link);
	bool coordinator = !to_client && pn_terminus_get_type(remote) == PN_COORDINATOR;
	const char *address = coordinator ? NULL : pn_terminus_get_address(remote);
	bool dynamic = to_client && pn_terminus_is_dynamic(remote);
	/* A target without address: an anonymous relay, each message to
	 * where its `to` says (publish.c). */
	bool relay = !to_client && !coordinator && (!address || !*address);
	if (to_client && !dynamic && (!address || !*address)) {
		amqp_refuse_link(link, "amqp:not-implemented", "a source needs an address, or to be dynamic");
		return;
	}
	char temp[96];
	enum dest_kind kind = DEST_QUEUE;
	const char *name = NULL;
	if (dynamic) {
		snprintf(temp, sizeof(temp), "wharf.temp.%lu.%lu", conn_id(ac->c), ++ac->next_temp);
		name = temp;
	} else if (!relay && !coordinator) {
		name = amqp_destination(address, remote, &kind);
	}
	bool pattern = kind == DEST_TOPIC && to_client;
	if (name && address_validate(name, pattern) != 0) {
		amqp_refuse_link(link, "amqp:invalid-field", "invalid address");
		return;
	}
	unsigned max = ac->b->cfg->max_subscriptions_per_connection, n = 0;
	for (const struct amqp_link *l = ac->links; to_client && l; l = l->next)
		n += l->rs != NULL;
	if (to_client && n >= max) {
		amqp_refuse_link(link, "amqp:resource-limit-exceeded",
				 conn_subscription_refused(ac->c, "max_subscriptions_per_connection",
							   max));
		return;
	}
	struct amqp_link *al = calloc(1, sizeof(*al));
	if (!al || (name && !(al->name = strdup(name)))) {
		free(al);
		amqp_refuse_link(link, "amqp:resource-limit-exceeded", "out of memory");
		return;
	}
	al->ac = ac;
	al->link = link;
	al->kind = kind;
	al->temporary = dynamic;
	al->relay = relay;
	al->coordinator = coordinator;
	pn_terminus_copy(pn_link_source(link), pn_link_remote_source(link));
	pn_terminus_copy(pn_link_target(link), pn_link_remote_target(link));
	if (dynamic)
		pn_terminus_set_address(pn_link_source(link), temp);
	pn_link_set_context(link, al);
	al->next = ac->links;
	ac->links = al;
	if (to_client) {
		pn_link_set_snd_settle_mode(link, pn_link_remote_snd_settle_mode(link));
		struct subscribe_options so = { .consumer = { .credit_mode = true }, .owner = dynamic };
		so.who = conn_acl_who(ac->c);
		enum router_err err = ROUTER_OK;
		bool durable = kind == DEST_TOPIC && pn_terminus_get_durability(remote) != PN_NONDURABLE &&
			       pn_terminus_get_expiry_policy(remote) == PN_EXPIRE_NEVER;
		bool fresh = false;
		if (durable) {
			/* A queue bound to the pattern keeps what arrives while the
			 * link is detached; the link consumes from it. Attached
			 * again to another address, it starts afresh. */
			al->durable_queue = durable_queue_name(link);
			err = al->durable_queue ? durable_sub_keep(ac->b, DURABLE_RECORD_PREFIX,
								   al->durable_queue, name, &fresh)
						: ROUTER_ENOMEM;
			so.durable_queue = al->durable_queue;
		}
		conn_log(ac->c, LOG_DEBUG, "amqp: link '%s' from %s%s%s", pn_link_name(link), name,
			  durable ? ", durable in " : "", durable ? al->durable_queue : "");
		if (err == ROUTER_OK)
			al->rs = router_subscribe(ac->b->router, kind, name, &so, &amqp_consumer_ops, al,
						  &err);
		if (!al->rs) {
			if (fresh)
				durable_sub_end(ac->b, DURABLE_RECORD_PREFIX, al->durable_queue);
			amqp_link_free(ac, al, false);
			amqp_refuse_link(link, amqp_router_condition(err), router_strerror(err));
			return;
		}
		pn_link_open(link);
	} else {
		enum router_err err = name ? router_may_publish(ac->b->router, kind, name, conn_acl_who(ac->c)) : ROUTER_OK;
		if (err != ROUTER_OK) {
			amqp_link_free(ac, al, false);
			amqp_refuse_link(link, amqp_router_condition(err), router_strerror(err));
			return;
		}
		pn_link_open(link);
		pn_link_flow(link, AMQP_LINK_CREDIT);
	}
}
