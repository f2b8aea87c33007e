/* Transfers from the client: each message routed to its link's destination,
 * settled with the outcome; credit withheld while a destination is full. */
#include "config.h"

#include <proton/condition.h>
#include <proton/disposition.h>
#include <stddef.h>

#include "broker.h"
#include "net/conn.h"
#include "protocols/amqp/internal.h"
#include "protocols/amqp/mapping.h"

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
	const char *why = NULL;
	struct message *m = n >= 0 ? amqp_message_decode(ac->scratch.data, (size_t)n, &why) : NULL;
	bool m_ok = m != NULL;
	/* Pre-settled: the client will not hear whether it arrived, so it is
	 * sent at most once: dropped at a full destination, never slowed, not
	 * kept across a restart (durable implies qos >= 1). */
	bool at_most_once = pn_delivery_settled(pd);
	enum router_err err = ROUTER_EINVAL;
	if (m && al) {
		m->origin = conn_id(ac->c);
		if (at_most_once) {
			m->qos = 0;
			m->durable = false;
		}
		err = router_publish(ac->b->router, al->kind, al->name, &m, false);
	}
	message_unref(m);
	if (!at_most_once) {
		if (err == ROUTER_OK) {
			pn_delivery_update(pd, PN_ACCEPTED);
		} else {
			pn_condition_t *cond = pn_disposition_condition(pn_delivery_local(pd));
			pn_condition_set_name(cond, m_ok ? amqp_router_condition(err) : "amqp:decode-error");
			pn_condition_set_description(cond, m_ok ? router_strerror(err) : why);
			pn_delivery_update(pd, PN_REJECTED);
		}
	}
	pn_delivery_settle(pd);
	if (al && err == ROUTER_OK && !at_most_once && router_last_blocked(ac->b->router)) {
		/* The destination is full: the publisher gets no more credit
		 * until it drains, which is how AMQP slows a sender. */
		al->starved = true;
		router_wait_room(ac->b->router, &ac->waiter);
	} else if (!(al && al->starved) && pn_link_credit(link) < AMQP_LINK_CREDIT / 2) {
		pn_link_flow(link, AMQP_LINK_CREDIT - pn_link_credit(link));
	}
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
