/* AMQP local transactions (AMQP 1.0 §4): a coordinator link takes declare
 * and discharge; transfers and outcomes that name a transaction wait in it
 * until a discharge publishes and applies them (commit) or drops them
 * (rollback). */
#include "config.h"

#include <proton/codec.h>
#include <proton/condition.h>
#include <proton/disposition.h>
#include <proton/message.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "net/conn.h"
#include "protocols/amqp/internal.h"

/* Descriptors of the transaction types and outcomes (AMQP 1.0 §3.4, §4.5). */
#define DESC_ACCEPTED 0x24
#define DESC_REJECTED 0x25
#define DESC_RELEASED 0x26
#define DESC_MODIFIED 0x27
#define DESC_DECLARE 0x31
#define DESC_DISCHARGE 0x32
#define DESC_DECLARED 0x33
/* So much work (messages and outcomes) one transaction may hold. */
#define TXN_MAX_WORK 10000

struct txn_publish {
	struct message *m;
	enum dest_kind kind;
	char *dest;
};

/* An outcome the client gave a delivery of ours under the transaction. */
struct txn_outcome {
	pn_delivery_t *pd;
	uint64_t type;
	bool failed, undeliverable;
};

struct amqp_txn {
	struct amqp_txn *next;
	uint64_t id;
	struct amqp_link *coordinator;
	struct txn_publish *pubs;
	size_t npubs, cappubs;
	struct txn_outcome *outs;
	size_t nouts, capouts;
	size_t bytes; /* message_mem_size() of pubs */
};

/* The descriptor at d (the current node) as a number: a ulong, or the
 * symbolic name of one of the types above. */
static uint64_t descriptor(pn_data_t *d)
{
	static const struct {
		const char *name;
		uint64_t code;
	} names[] = {
		{ "amqp:accepted:list", DESC_ACCEPTED }, { "amqp:rejected:list", DESC_REJECTED },
		{ "amqp:released:list", DESC_RELEASED }, { "amqp:modified:list", DESC_MODIFIED },
		{ "amqp:declare:list", DESC_DECLARE },   { "amqp:discharge:list", DESC_DISCHARGE },
	};
	if (pn_data_type(d) == PN_ULONG)
		return pn_data_get_ulong(d);
	if (pn_data_type(d) != PN_SYMBOL)
		return 0;
	pn_bytes_t s = pn_data_get_symbol(d);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (s.size == strlen(names[i].name) && !memcmp(s.start, names[i].name, s.size))
			return names[i].code;
	return 0;
}

/* Enters the described value at the current node: *code its descriptor,
 * positioned before the first field of its list. */
static bool enter_described_list(pn_data_t *d, uint64_t *code)
{
	if (pn_data_type(d) != PN_DESCRIBED || !pn_data_enter(d) || !pn_data_next(d))
		return false;
	*code = descriptor(d);
	return pn_data_next(d) && pn_data_type(d) == PN_LIST && pn_data_enter(d);
}

/* A transaction id is the 8 bytes we gave it in declared. */
static struct amqp_txn *find(struct amqp_conn *ac, pn_data_t *d)
{
	if (pn_data_type(d) != PN_BINARY || pn_data_get_binary(d).size != 8)
		return NULL;
	uint64_t id = 0;
	const unsigned char *b = (const unsigned char *)pn_data_get_binary(d).start;
	for (int i = 0; i < 8; i++)
		id = id << 8 | b[i];
	for (struct amqp_txn *t = ac->txns; t; t = t->next)
		if (t->id == id)
			return t;
	return NULL;
}

/* Reads a transactional-state's fields (txn-id, then an outcome) from data
 * holding its list, or the state described. The transaction, or NULL when
 * it names none of ours. */
static struct amqp_txn *read_state(struct amqp_conn *ac, pn_data_t *data, struct txn_outcome *o)
{
	pn_data_rewind(data);
	if (!pn_data_next(data))
		return NULL;
	uint64_t code;
	if (pn_data_type(data) == PN_DESCRIBED) {
		if (!enter_described_list(data, &code))
			return NULL;
	} else if (pn_data_type(data) != PN_LIST || !pn_data_enter(data)) {
		return NULL;
	}
	if (!pn_data_next(data))
		return NULL;
	struct amqp_txn *t = find(ac, data);
	o->type = DESC_ACCEPTED;
	if (t && pn_data_next(data) && enter_described_list(data, &o->type) &&
	    o->type == DESC_MODIFIED) {
		if (pn_data_next(data) && pn_data_type(data) == PN_BOOL)
			o->failed = pn_data_get_bool(data);
		if (pn_data_next(data) && pn_data_type(data) == PN_BOOL)
			o->undeliverable = pn_data_get_bool(data);
	}
	return t;
}

/* The id as the client sees it: 8 bytes, big-endian. */
static void put_id(pn_data_t *data, uint64_t id)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(id >> (56 - 8 * i));
	pn_data_put_binary(data, pn_bytes(sizeof(b), (const char *)b));
}

static void reject(pn_delivery_t *pd, const char *cond, const char *why)
{
	pn_condition_t *c = pn_disposition_condition(pn_delivery_local(pd));
	pn_condition_set_name(c, cond);
	pn_condition_set_description(c, why);
	pn_delivery_update(pd, PN_REJECTED);
}

static void txn_free(struct amqp_txn *t)
{
	for (size_t i = 0; i < t->npubs; i++) {
		message_unref(t->pubs[i].m);
		free(t->pubs[i].dest);
	}
	free(t->pubs);
	free(t->outs);
	free(t);
}

static void unlink_txn(struct amqp_conn *ac, struct amqp_txn *t)
{
	for (struct amqp_txn **pp = &ac->txns; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			ac->ntxns--;
			ac->txn_bytes -= t->bytes;
			return;
		}
	}
}

/* Rollback: the messages are dropped; outcomes are forgotten, so their
 * deliveries stay with the client, which may settle them again; those it
 * settled already go back to their queue. */
static void rollback(struct amqp_txn *t)
{
	for (size_t i = 0; i < t->nouts; i++)
		if (pn_delivery_settled(t->outs[i].pd))
			amqp_settle_outcome(t->outs[i].pd, DESC_RELEASED, false, false);
	txn_free(t);
}

/* Commit: the messages published in the order they came, then the
 * outcomes applied. A destination that refuses a message now (it filled up, with
 * overflow reject-publish) loses it: the rest still goes. */
static void commit(struct amqp_conn *ac, struct amqp_txn *t)
{
	for (size_t i = 0; i < t->npubs; i++) {
		struct publish_ctx pc = { .principal = conn_principal(ac->c),
					  .who = conn_acl_who(ac->c) };
		enum router_err err = router_publish(ac->b->router, t->pubs[i].kind, t->pubs[i].dest,
						     &t->pubs[i].m, &pc);
		if (err != ROUTER_OK)
			conn_log(ac->c, LOG_WARN, "amqp: committed message to %s lost: %s",
				 t->pubs[i].dest, router_strerror(err));
	}
	for (size_t i = 0; i < t->nouts; i++)
		amqp_settle_outcome(t->outs[i].pd, t->outs[i].type, t->outs[i].failed,
				    t->outs[i].undeliverable);
	txn_free(t);
	amqp_unacked_freed(ac);
}

/* items (of *cap), with room for one more after n: moved, maybe; NULL
 * on out of memory, items left as they were. */
static void *make_room(void *items, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return items;
	size_t more = *cap ? *cap * 2 : 8;
	void *grown = realloc(items, more * size);
	if (grown)
		*cap = more;
	return grown;
}

static bool room_for_work(struct amqp_txn *t)
{
	return t->npubs + t->nouts < TXN_MAX_WORK;
}

static void declare(struct amqp_conn *ac, struct amqp_link *coordinator, pn_delivery_t *pd)
{
	if (ac->ntxns >= ac->b->cfg->max_transactions) {
		char why[96];
		snprintf(why, sizeof(why),
			 "too many open transactions: a connection may have at most %zu",
			 ac->b->cfg->max_transactions);
		reject(pd, "amqp:resource-limit-exceeded", why);
		return;
	}
	struct amqp_txn *t = calloc(1, sizeof(*t));
	if (!t) {
		reject(pd, "amqp:resource-limit-exceeded", "out of memory");
		return;
	}
	t->id = ++ac->next_txn;
	t->coordinator = coordinator;
	t->next = ac->txns;
	ac->txns = t;
	ac->ntxns++;
	pn_data_t *data = pn_disposition_data(pn_delivery_local(pd));
	pn_data_put_list(data);
	pn_data_enter(data);
	put_id(data, t->id);
	pn_data_exit(data);
	pn_delivery_update(pd, DESC_DECLARED);
}

void amqp_txn_control(struct amqp_conn *ac, struct amqp_link *coordinator, pn_delivery_t *pd,
		      const char *bytes, size_t len)
{
	pn_message_t *pm = pn_message();
	if (!pm) {
		reject(pd, "amqp:resource-limit-exceeded", "out of memory");
		return;
	}
	uint64_t code = 0;
	pn_data_t *body = pn_message_body(pm);
	if (pn_message_decode(pm, bytes, len) == 0) {
		pn_data_rewind(body);
		if (!pn_data_next(body) || !enter_described_list(body, &code))
			code = 0;
	}
	if (code == DESC_DECLARE) {
		declare(ac, coordinator, pd);
	} else if (code == DESC_DISCHARGE) {
		struct amqp_txn *t = pn_data_next(body) ? find(ac, body) : NULL;
		bool fail = pn_data_next(body) && pn_data_type(body) == PN_BOOL && pn_data_get_bool(body);
		struct confirm *e = t ? confirmq_push(&ac->confirms) : NULL;
		if (!t) {
			reject(pd, "amqp:transaction:unknown-id", "no such transaction");
		} else if (!e) {
			reject(pd, "amqp:resource-limit-exceeded", "out of memory");
		} else {
			unlink_txn(ac, t);
			if (fail)
				rollback(t);
			else
				commit(ac, t);
			/* Accepted once what the commit stored is on disk, and
			 * after the outcomes of transfers before it; settled
			 * then (publish.c). */
			e->ptr = pd;
			confirmq_sync(&ac->confirms, e);
			pn_message_free(pm);
			return;
		}
	} else {
		reject(pd, "amqp:decode-error", "not a declare or a discharge");
	}
	pn_message_free(pm);
	pn_delivery_settle(pd);
}

int amqp_txn_publish(struct amqp_conn *ac, pn_delivery_t *pd, struct message *m,
		     enum dest_kind kind, const char *dest)
{
	struct txn_outcome o = { 0 };
	struct amqp_txn *t = read_state(ac, pn_disposition_data(pn_delivery_remote(pd)), &o);
	if (!t) {
		reject(pd, "amqp:transaction:unknown-id", "no such transaction");
		return -1;
	}
	if (!room_for_work(t)) {
		reject(pd, "amqp:resource-limit-exceeded", "too much in one transaction");
		return -1;
	}
	size_t size = message_mem_size(m);
	if (ac->txn_bytes + size > ac->b->cfg->max_transaction_bytes) {
		char why[128];
		snprintf(why, sizeof(why),
			 "transaction too large: the open transactions of a connection hold at "
			 "most %zu bytes of messages",
			 ac->b->cfg->max_transaction_bytes);
		reject(pd, "amqp:resource-limit-exceeded", why);
		return -1;
	}
	struct txn_publish *pubs = make_room(t->pubs, &t->cappubs, t->npubs, sizeof(*pubs));
	if (pubs)
		t->pubs = pubs;
	char *copy = pubs ? strdup(dest) : NULL;
	if (!copy) {
		reject(pd, "amqp:resource-limit-exceeded", "out of memory");
		return -1;
	}
	t->pubs[t->npubs++] = (struct txn_publish){ .m = message_ref(m), .kind = kind, .dest = copy };
	t->bytes += size;
	ac->txn_bytes += size;
	/* The outcome it will have once committed, under the transaction. */
	pn_data_t *data = pn_disposition_data(pn_delivery_local(pd));
	pn_data_put_list(data);
	pn_data_enter(data);
	put_id(data, t->id);
	pn_data_put_described(data);
	pn_data_enter(data);
	pn_data_put_ulong(data, DESC_ACCEPTED);
	pn_data_put_list(data);
	pn_data_exit(data);
	pn_data_exit(data);
	pn_delivery_update(pd, AMQP_TRANSACTIONAL_STATE);
	return 0;
}

bool amqp_txn_outcome(struct amqp_conn *ac, pn_delivery_t *pd)
{
	struct txn_outcome o = { .pd = pd };
	struct amqp_txn *t = read_state(ac, pn_disposition_data(pn_delivery_remote(pd)), &o);
	if (!t || !room_for_work(t))
		return false;
	amqp_txn_forget_delivery(ac, pd);
	struct txn_outcome *outs = make_room(t->outs, &t->capouts, t->nouts, sizeof(*outs));
	if (!outs)
		return false;
	t->outs = outs;
	t->outs[t->nouts++] = o;
	return true;
}

void amqp_txn_forget_delivery(struct amqp_conn *ac, pn_delivery_t *pd)
{
	for (struct amqp_txn *t = ac->txns; t; t = t->next) {
		for (size_t i = 0; i < t->nouts;) {
			if (t->outs[i].pd == pd)
				t->outs[i] = t->outs[--t->nouts];
			else
				i++;
		}
	}
}

void amqp_txn_link_gone(struct amqp_conn *ac, struct amqp_link *al)
{
	for (struct amqp_txn *t = ac->txns; t; t = t->next) {
		for (size_t i = 0; i < t->nouts;) {
			if (pn_delivery_link(t->outs[i].pd) == al->link)
				t->outs[i] = t->outs[--t->nouts];
			else
				i++;
		}
	}
	/* A coordinator that goes takes its transactions with it. */
	struct amqp_txn **pp = &ac->txns;
	while (*pp) {
		struct amqp_txn *t = *pp;
		if (t->coordinator == al) {
			unlink_txn(ac, t);
			rollback(t);
		} else {
			pp = &t->next;
		}
	}
}
