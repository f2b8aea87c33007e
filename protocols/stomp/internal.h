/* Internal to the STOMP adapter: the session and what its files share.
 * session.c: the session, its input loop and dispatch by command, ERROR
 * frames and receipts on the wire, helpers to read a frame's headers;
 * connect.c: CONNECT, version and heart-beat negotiation, heart-beats;
 * send.c: SEND, publishing, receipts held for the store, a full
 * destination's back-pressure; deliver.c: deliveries as MESSAGE frames;
 * subscribe.c: SUBSCRIBE, UNSUBSCRIBE, durable subscriptions, temp queues;
 * ack.c: ACK, NACK; tx.c: BEGIN, COMMIT, ABORT.
 * Everything here runs on the event-loop thread. */
#ifndef WHARF_STOMP_INTERNAL_H
#define WHARF_STOMP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "protocols/stomp/codec.h"
#include "protocols/stomp/dest.h"
#include "protocols/stomp/durable.h"
#include "router/confirm.h"
#include "router/router.h"
#include "util/buf.h"
#include "util/clock.h"

struct conn;
struct event;
struct stomp_temp; /* subscribe.c's */
struct stomp_tx;   /* tx.c's */

enum ack_mode { ACK_AUTO, ACK_CLIENT, ACK_INDIVIDUAL };

struct stomp_session;

/* One subscription of a session, in s->subs; subscribe.c makes and frees
 * it (stomp_subs_free at the end). */
struct stomp_sub {
	struct stomp_sub *next;
	struct stomp_session *s;
	unsigned long seq;  /* our number for it, part of every ack id */
	char *id;           /* the client's subscription id */
	enum ack_mode ack;
	enum dest_kind kind;
	char *queue_dest;   /* the SUBSCRIBE's destination, for a queue subscription */
	const char *topic_prefix; /* a topic subscription's MESSAGE destinations start so */
	bool rabbit;        /* asked RabbitMQ's way: redelivered:false on first deliveries */
	char *durable_queue; /* a durable subscription's queue (protocols/stomp/durable.h) */
	struct subscription *rs;
};

/* A frame held in a transaction until COMMIT (tx.c); the transaction owns
 * it, and its msg and name. */
struct tx_op {
	struct tx_op *next;
	/* TX_REJECT: a NACK with RabbitMQ's requeue:false */
	enum op_type { TX_SEND, TX_ACK, TX_NACK, TX_REJECT } type;
	/* TX_SEND */
	enum dest_kind kind;
	char *name;
	struct message *msg;
	/* TX_ACK, TX_NACK, TX_REJECT */
	unsigned long sub_seq;
	uint64_t msg_id;
};

/* One connection; freed with it (stomp_proto.closed, session.c). */
struct stomp_session {
	struct conn *c;
	struct broker *b;
	enum { ST_AWAIT_CONNECT, ST_CONNECTED, ST_DONE } state;
	enum stomp_version version;
	struct stomp_limits lim;
	struct stomp_client_id client_id; /* the CONNECT's client-id, if any */
	size_t need;
	size_t scanned; /* stomp_decode()'s search for the NUL, kept between reads */
	struct stomp_sub *subs;
	unsigned long next_sub_seq;
	struct stomp_temp *temps;
	unsigned long next_temp;
	struct stomp_tx *txs;
	size_t ntxs, tx_bytes; /* open transactions, the bytes of all of them */
	bool paused;
	size_t unacked;     /* deliveries awaiting an ack, all subscriptions (deliver.c) */
	bool blocked;                 /* a destination is full: input paused */
	bool disconnecting;           /* DISCONNECT read: answer what is pending, close */
	/* CONNECT's credentials are with the authenticator: the frame waits
	 * unread (input paused) and is read again once they pass. */
	bool authenticating, authenticated;
	struct router_waiter waiter;
	/* Receipts in the order asked, each after the store has every durable
	 * message sent before it. */
	struct confirm_queue confirms;
	unsigned hb_send_ms, hb_recv_ms;
	int64_t last_rx_ms, last_tx_ms;
	struct event *hb_send_ev, *hb_recv_ev;
	struct buf out;
};

/* ---- output ------------------------------------------------------------- */

/* Something went out: the heart-beat we send can wait. */
static inline void stomp_note_tx(struct stomp_session *s)
{
	if (s->hb_send_ms)
		s->last_tx_ms = clock_mono_ms();
}

/* Adds a header to the frame head in s->out. */
static inline int stomp_hdr(struct stomp_session *s, enum stomp_command cmd, const char *name,
			    const char *value)
{
	return stomp_encode_header(&s->out, s->version, cmd, name, value, strlen(value));
}

/* session.c */
/* Sends s->out (a frame head) followed by an optional text body. */
int stomp_send_frame(struct stomp_session *s, const char *body);
/* Sends an ERROR frame and closes after flushing it. STOMP errors end the
 * connection; the broker and every other client carry on. `extra`, when
 * given, are more headers: name, value, ..., NULL (the versions we speak
 * after a failed negotiation, where a standby's active node is). */
void stomp_send_error_frame(struct stomp_session *s, const char *message, const char *receipt,
			    const char *detail, const char *const *extra);
/* stomp_send_error_frame without more headers. */
void stomp_send_error(struct stomp_session *s, const char *message, const char *receipt,
		      const char *detail);
/* The ERROR frame for a router error; `dest` is its detail. */
void stomp_send_router_error(struct stomp_session *s, enum router_err err, const char *dest,
			     const char *receipt);
/* Sends a RECEIPT frame now (stomp_queue_receipt waits its turn). */
int stomp_send_receipt(struct stomp_session *s, const char *receipt);
/* The broker's [stomp] dialect. */
enum stomp_dialect stomp_dialect_of(const struct stomp_session *s);
/* A decimal header value without sign, at most max, in *out. */
bool stomp_parse_uint(const char *v, unsigned long long max, unsigned long long *out);
/* A boolean header: 1 for true, 0 for false, -1 when absent or neither.
 * Any case, as RabbitMQ reads them: stomp.py sends Python's True/False. */
int stomp_header_bool(const struct stomp_frame *f, const char *name);
/* Headers that are the frame's own, not user properties. */
bool stomp_reserved_header(const char *name);
/* The frame's destination in *d (for the caller to clear); false after an
 * ERROR. pattern: a SUBSCRIBE's, which may hold wildcards. */
bool stomp_frame_dest(struct stomp_session *s, struct stomp_frame *f, bool pattern,
		      struct stomp_dest *d);

/* connect.c */
/* The CONNECT or STOMP frame: negotiates the version and heart-beats,
 * claims the client-id, answers CONNECTED (or ERROR). */
void stomp_on_connect(struct stomp_session *s, struct stomp_frame *f);
/* Frees the heart-beat timers, if any. */
void stomp_heartbeat_free(struct stomp_session *s);

/* send.c */
enum receipt_kind {
	RECEIPT_PLAIN,      /* once everything before it is confirmed */
	RECEIPT_SYNC,       /* also once the acks before it are on disk */
	RECEIPT_LAST,       /* the DISCONNECT's (may be NULL): then close */
};
/* A SEND frame. Returns -1 after an error reply, 0 when the caller is to
 * send the receipt, 1 when it is queued. */
int stomp_on_send(struct stomp_session *s, struct stomp_frame *f);
/* Publishes *m, which it takes (and nulls); a durable message's outcome
 * (and the receipt, if asked) waits for the store. Returns -1 after an
 * error reply, 0 when the caller is to send the receipt, 1 when it is
 * queued. */
int stomp_publish(struct stomp_session *s, enum dest_kind kind, const char *name,
		  struct message **m, const char *receipt);
/* Sends the receipt (may be NULL for RECEIPT_LAST) once the confirmations
 * before it are in, in the order asked. */
void stomp_queue_receipt(struct stomp_session *s, const char *receipt, enum receipt_kind kind);
/* confirm_queue release (ctx: the session): the receipt, or the ERROR. */
void stomp_release_confirm(void *ctx, struct confirm *e);
/* router_waiter room (s->waiter): the full destination has room, read
 * the client again. */
void stomp_room(struct router_waiter *w);

/* deliver.c */
/* The router's view of a struct stomp_sub (its ctx). */
extern const struct consumer_ops stomp_consumer_ops;
/* stomp_proto.drained: the output has room, deliveries paused resume. */
void stomp_drained(void *session);
/* Acks, nacks or an unsubscribe settled deliveries: the count against
 * max_unacked_per_connection is taken again, and paused subscriptions go
 * on. */
void stomp_unacked_changed(struct stomp_session *s);

/* subscribe.c */
/* The session's subscription with the client's id, or NULL. */
struct stomp_sub *stomp_find_sub(struct stomp_session *s, const char *id);
/* What a SUBSCRIBE or UNSUBSCRIBE says of a durable subscription: false
 * when it asks for none; *name (in f) is NULL when it asks RabbitMQ's
 * way without an id; *rabbit says it asked so. */
bool stomp_durable_request(struct stomp_frame *f, const char **name, bool *rabbit);
/* A SUBSCRIBE, an UNSUBSCRIBE; false after an ERROR. */
bool stomp_on_subscribe(struct stomp_session *s, struct stomp_frame *f);
bool stomp_on_unsubscribe(struct stomp_session *s, struct stomp_frame *f);
/* The router queue of the session's temp queue /temp-queue/NAME, made and
 * subscribed on first use (owned by the session); NULL when it cannot be
 * made. */
const char *stomp_temp_queue(struct stomp_session *s, const char *name);
/* Unsubscribes and frees every subscription of the session. */
void stomp_subs_free(struct stomp_session *s);
/* Deletes the session's temp queues and frees them. */
void stomp_temps_free(struct stomp_session *s);

/* ack.c */
/* An ACK or NACK frame; false after an ERROR. */
bool stomp_on_ack(struct stomp_session *s, struct stomp_frame *f, bool nack);
/* Applies an ACK, NACK or rejecting NACK (type) to the delivery msg_id of
 * subscription sub_seq (0: any); false if no outstanding delivery
 * matches. */
bool stomp_apply_ack(struct stomp_session *s, unsigned long sub_seq, uint64_t msg_id,
		     enum op_type type);

/* tx.c */
/* The transaction a frame names, or NULL; on a bad name (or a full
 * transaction) sends ERROR and sets *failed. */
struct stomp_tx *stomp_frame_tx(struct stomp_session *s, struct stomp_frame *f, bool *failed);
/* Adds op (taken) to t. */
void stomp_tx_add(struct stomp_session *s, struct stomp_tx *t, struct tx_op *op);
/* A BEGIN, COMMIT or ABORT frame; false after an ERROR. */
bool stomp_on_transaction(struct stomp_session *s, struct stomp_frame *f);
/* Frees the session's open transactions, with what they hold. */
void stomp_txs_free(struct stomp_session *s);

#endif
