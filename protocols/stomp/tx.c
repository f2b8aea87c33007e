/* Transactions: BEGIN, COMMIT, ABORT, the SENDs, ACKs and NACKs held until
 * COMMIT, and the bounds on what a connection's transactions hold. */
#include "config.h"
#include "protocols/stomp/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"

/* Frames one transaction may hold before COMMIT; past it the client gets an
 * ERROR, so a transaction cannot grow the broker without bound. */
#define STOMP_MAX_TX_FRAMES 10000

/* An open transaction, in s->txs: BEGIN makes it, COMMIT and ABORT end it. */
struct stomp_tx {
	struct stomp_tx *next;
	char *id;
	struct tx_op *ops, **tail;
	size_t nops;
	size_t bytes; /* message_mem_size() of its SENDs */
};

static struct stomp_tx *find_tx(struct stomp_session *s, const char *id)
{
	for (struct stomp_tx *t = s->txs; t; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

/* The transaction a frame names, or NULL; on a bad name sends ERROR and
 * sets *failed. */
struct stomp_tx *stomp_frame_tx(struct stomp_session *s, struct stomp_frame *f, bool *failed)
{
	const char *id = stomp_frame_get(f, "transaction");
	*failed = false;
	if (!id)
		return NULL;
	struct stomp_tx *t = find_tx(s, id);
	if (!t) {
		stomp_send_error(s, "unknown transaction", stomp_frame_get(f, "receipt"), id);
		*failed = true;
	} else if (t->nops >= STOMP_MAX_TX_FRAMES) {
		stomp_send_error(s, "transaction too large", stomp_frame_get(f, "receipt"),
				 "a transaction holds at most 10000 frames");
		*failed = true;
	}
	return t;
}

void stomp_tx_add(struct stomp_session *s, struct stomp_tx *t, struct tx_op *op)
{
	*t->tail = op;
	t->tail = &op->next;
	t->nops++;
	if (op->msg) {
		size_t n = message_mem_size(op->msg);
		t->bytes += n;
		s->tx_bytes += n;
	}
}

static void tx_op_free(struct tx_op *op)
{
	message_unref(op->msg);
	free(op->name);
	free(op);
}

static void tx_free(struct stomp_tx *t)
{
	while (t->ops) {
		struct tx_op *op = t->ops;
		t->ops = op->next;
		tx_op_free(op);
	}
	free(t->id);
	free(t);
}

static struct stomp_tx *tx_unlink(struct stomp_session *s, const char *id)
{
	for (struct stomp_tx **pp = &s->txs; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->id, id)) {
			struct stomp_tx *t = *pp;
			*pp = t->next;
			s->ntxs--;
			s->tx_bytes -= t->bytes;
			return t;
		}
	}
	return NULL;
}

bool stomp_on_transaction(struct stomp_session *s, struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	const char *id = stomp_frame_get(f, "transaction");
	if (!id) {
		stomp_send_error(s, "missing transaction header", receipt, NULL);
		return false;
	}
	if (f->command == STOMP_CMD_BEGIN) {
		if (find_tx(s, id)) {
			stomp_send_error(s, "transaction already begun", receipt, id);
			return false;
		}
		if (s->ntxs >= s->b->cfg->max_transactions) {
			char why[96];
			snprintf(why, sizeof(why), "a connection may have at most %zu open at once",
				 s->b->cfg->max_transactions);
			stomp_send_error(s, "too many open transactions", receipt, why);
			return false;
		}
		struct stomp_tx *t = calloc(1, sizeof(*t));
		if (!t || !(t->id = strdup(id))) {
			free(t);
			stomp_send_error(s, "out of memory", receipt, NULL);
			return false;
		}
		t->tail = &t->ops;
		t->next = s->txs;
		s->txs = t;
		s->ntxs++;
		return true;
	}
	struct stomp_tx *t = tx_unlink(s, id);
	if (!t) {
		stomp_send_error(s, "unknown transaction", receipt, id);
		return false;
	}
	int rc = 0;
	if (f->command == STOMP_CMD_COMMIT) {
		/* Acks of messages redelivered elsewhere since are moot, not errors.
		 * The COMMIT's receipt waits behind the durable messages. */
		for (struct tx_op *op = t->ops; op && rc >= 0; op = op->next) {
			if (op->type == TX_SEND)
				rc = stomp_publish(s, op->kind, op->name, &op->msg, NULL);
			else
				stomp_apply_ack(s, op->sub_seq, op->msg_id, op->type);
		}
		stomp_unacked_changed(s);
	}
	tx_free(t);
	return rc >= 0;
}

void stomp_txs_free(struct stomp_session *s)
{
	while (s->txs) {
		struct stomp_tx *t = s->txs;
		s->txs = t->next;
		tx_free(t);
	}
}
