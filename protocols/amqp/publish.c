/* Transfers from the client: each message routed to its link's destination,
 * settled with the outcome; credit withheld while a destination is full. */
#include "config.h"

#include <proton/condition.h>
#include <proton/disposition.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "net/conn.h"
#include "protocols/amqp/internal.h"
#include "protocols/amqp/mapping.h"
#include "router/address.h"

/* Where a message goes on an anonymous relay link: its `to` address, read
 * as a link's address is (DESIGN.md §3; a bare name is a queue). NULL with
 * the condition to reject it with when it has none usable. */
static const char *relay_destination(const char *to, enum dest_kind *kind, const char **cond,
				     const char **why)
{
	if (!to || !*to) {
		*cond = "amqp:not-found";
		*why = "a message on an anonymous relay link needs a to address";
		return NULL;
	}
	const char *name = amqp_destination(to, NULL, kind);
	if (address_validate(name, false) != 0) {
		*cond = "amqp:invalid-field";
		*why = "invalid to address";
		return NULL;
	}
	return name;
}

/* Credit back for what the link used, unless its destination is full:
 * then none until it drains, which is how AMQP slows a sender. */
static void top_up(struct amqp_conn *ac, struct amqp_link *al, pn_link_t *link, bool blocked)
{
	if (al && blocked) {
		al->starved = true;
		router_wait_room(ac->b->router, &ac->waiter);
	} else if (!(al && al->starved) && pn_link_credit(link) < AMQP_LINK_CREDIT / 2) {
		pn_link_flow(link, AMQP_LINK_CREDIT - pn_link_credit(link));
	}
}

/* The outcome of a transfer, settled: accepted, or rejected with why. */
static void settle_outcome(pn_delivery_t *pd, enum router_err err, const char *cond, const char *why)
{
	if (err == ROUTER_OK) {
		pn_delivery_update(pd, PN_ACCEPTED);
	} else {
		pn_condition_t *c = pn_disposition_condition(pn_delivery_local(pd));
		pn_condition_set_name(c, cond);
		pn_condition_set_description(c, why);
		pn_delivery_update(pd, PN_REJECTED);
	}
	pn_delivery_settle(pd);
}

void amqp_release_outcome(void *ctx, struct confirm *e)
{
	struct amqp_conn *ac = ctx;
	if (!e->ptr)
		return; /* its link went */
	settle_outcome(e->ptr, e->err, amqp_router_condition(e->err), router_strerror(e->err));
	amqp_schedule_flush(ac);
}

void amqp_outcomes_link_gone(struct amqp_conn *ac, pn_link_t *link)
{
	for (struct confirm *e = ac->confirms.head; e; e = e->next)
		if (e->ptr && pn_delivery_link(e->ptr) == link)
			e->ptr = NULL;
}

void amqp_receive(struct amqp_conn *ac, pn_delivery_t *pd)
{
	pn_link_t *link = pn_delivery_link(pd);
	struct amqp_link *al = pn_link_get_context(link);
	if (!pn_delivery_readable(pd) || pn_delivery_partial(pd))
		return;
	size_t size = pn_delivery_pending(pd);
	buf_reset(&ac->scratch);
	if (buf_reserve(&ac->scratch, size) < 0) {
		amqp_close_with_error(ac, "amqp:resource-limit-exceeded", "out of memory");
		return;
	}
	ssize_t n = pn_link_recv(link, ac->scratch.data, size);
	pn_link_advance(link);
	if (al && al->coordinator) {
		amqp_txn_control(ac, al, pd, ac->scratch.data, n > 0 ? (size_t)n : 0);
		top_up(ac, al, link, false);
		return;
	}
	bool relay = al && al->relay;
	char *to = NULL;
	const char *cond = "amqp:decode-error", *why = NULL;
	struct message *m = n >= 0 ? amqp_message_decode(ac->scratch.data, (size_t)n,
							 relay ? &to : NULL, &why)
				   : NULL;
	/* Pre-settled: the client will not hear whether it arrived, so it is
	 * sent at most once: dropped at a full destination, never slowed, not
	 * kept across a restart (durable implies qos >= 1). */
	bool at_most_once = pn_delivery_settled(pd);
	bool in_txn = pn_delivery_remote_state(pd) == AMQP_TRANSACTIONAL_STATE;
	enum router_err err = ROUTER_EINVAL;
	struct publish_ctx pc = { .principal = conn_principal(ac->c), .who = conn_acl_who(ac->c) };
	enum dest_kind kind = al ? al->kind : DEST_QUEUE;
	const char *dest = NULL;
	if (m) {
		/* What a link we refused still carries has nowhere to go. */
		cond = amqp_router_condition(err);
		why = router_strerror(err);
		if (relay)
			dest = relay_destination(to, &kind, &cond, &why);
		else if (al)
			dest = al->name;
	}
	if (dest) {
		m->origin = conn_id(ac->c);
		conn_count_msg_in(ac->c);
		/* A JMSXUserID of the client's making is replaced (publish_ctx.
		 * principal): AMQP consumers then get our encoding of the
		 * message, not its bytes as sent. */
		for (size_t i = 0; i < m->nprops; i++) {
			if (!strcmp(m->props[i].name, MESSAGE_USER_PROP)) {
				free(m->amqp);
				m->amqp = NULL;
				m->amqp_len = 0;
				break;
			}
		}
		if (at_most_once) {
			m->qos = 0;
			m->durable = false;
		}
		/* Under a transaction it waits for the commit; whether its
		 * destination takes it is known now. An unsettled transfer's
		 * outcome comes in order, once the store has what is durable. */
		struct confirm *e = NULL;
		if (in_txn)
			err = router_may_publish(ac->b->router, kind, dest, conn_acl_who(ac->c));
		else if (at_most_once || !(e = confirmq_push(&ac->confirms)))
			err = router_publish(ac->b->router, kind, dest, &m, &pc);
		else {
			e->ptr = pd;
			err = confirmq_publish(&ac->confirms, e, kind, dest, &m, &pc);
			free(to);
			top_up(ac, al, link, (err == ROUTER_OK || err == ROUTER_PENDING) && pc.blocked);
			return;
		}
		cond = amqp_router_condition(err);
		why = router_strerror(err);
	}
	/* Routed under a transaction: it gives the outcome (or refusal). */
	bool held = in_txn && err == ROUTER_OK;
	if (held && amqp_txn_publish(ac, pd, m, kind, dest) < 0)
		err = ROUTER_EINVAL;
	free(to);
	message_unref(m);
	if (at_most_once || held)
		pn_delivery_settle(pd);
	else
		settle_outcome(pd, err, cond, why);
	top_up(ac, al, link, err == ROUTER_OK && !at_most_once && !in_txn && pc.blocked);
}

void amqp_room(struct router_waiter *w)
{
	struct amqp_conn *ac = (struct amqp_conn *)((char *)w - offsetof(struct amqp_conn, waiter));
	for (struct amqp_link *al = ac->links; al; al = al->next) {
		if (!al->starved)
			continue;
		al->starved = false;
		pn_link_flow(al->link, AMQP_LINK_CREDIT - pn_link_credit(al->link));
	}
	amqp_schedule_flush(ac);
}
