/* Internal to the MQTT adapter: the connection (session.c) and the client
 * session that outlives it (client.c). */
#ifndef WHARF_MQTT_INTERNAL_H
#define WHARF_MQTT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "protocols/mqtt/codec.h"
#include "router/confirm.h"
#include "router/router.h"
#include "util/buf.h"
#include "util/map.h"

struct broker;
struct conn;
struct event;
struct mqtt_client;

struct mqtt_broker {
	struct broker *b;
	struct map *clients;   /* client id -> struct mqtt_client */
	struct event *sys_ev;  /* $SYS publishing */
	unsigned long next_assigned;
	/* For $SYS: */
	uint64_t connected, msgs_in, msgs_out, bytes_in, bytes_out;
};

/* One network connection. */
struct mqtt_conn {
	struct conn *c;
	struct mqtt_broker *mb;
	const struct mqtt_config *cfg;
	enum { MC_AWAIT_CONNECT, MC_CONNECTED, MC_DONE } state;
	uint8_t level;
	struct mqtt_client *cl;     /* attached client session, once connected */
	uint16_t keepalive;         /* seconds, as agreed */
	int64_t last_rx_ms;
	struct event *ka_ev;
	uint32_t peer_max_packet;   /* 0: no limit */
	uint16_t peer_receive_max;
	bool problem_info;          /* may we send reason strings */
	char **aliases;             /* inbound topic aliases, cfg topic_alias_maximum of them */
	struct message *will;       /* published on an abnormal close */
	char *will_topic;           /* dotted */
	uint32_t will_delay;
	int64_t will_expiry_ms;     /* its message expiry interval, counted from publication */
	bool paused;                /* some subscription waits for room */
	/* CONNECT's credentials are with the authenticator: the packet waits
	 * unread (input paused) and is read again once they pass. */
	bool authenticating, authenticated;
	size_t need;
	struct buf out;
	struct buf topic, scratch;  /* reused by each PUBLISH sent */
	/* Acknowledgements held back while a destination is full: the
	 * client's own in-flight limit then slows it, and its connection is
	 * still read (it may be consuming what it waits on). */
	struct held_ack { uint8_t type; uint16_t pid; } *held;
	uint32_t nheld, cap_held;
	/* receive_maximum acks are held for a client before MQTT 5, which was
	 * told no limit, and that only publishes: its input is paused until
	 * they go out (TCP slows it, as RabbitMQ and Mosquitto do). */
	bool held_paused;
	struct router_waiter waiter;
	struct confirm_queue confirms; /* PUBACK/PUBREC in publish order */
};

enum inflight_state { IF_PUBACK, IF_PUBREC, IF_PUBCOMP };

struct inflight {
	uint16_t pid;
	uint8_t state;
	struct delivery *d;         /* NULL once PUBREC has settled it */
	struct msub *sub;
};

/* One subscription of a client session. */
struct msub {
	struct msub *next, **prevp;
	struct mqtt_client *cl;
	char *filter;               /* as the client wrote it, "$share/g/" included */
	uint8_t qos;
	bool no_local, retain_as_published;
	uint32_t sub_id;            /* 0: none */
	char *queue;                /* a persistent session's durable queue, or NULL */
	/* A share group member's group and dotted pattern, to rejoin with;
	 * NULL for a subscription of its own. */
	char *group, *pattern;
	struct subscription *rs;    /* NULL while a share member's client is away */
};

/* A client session: what MQTT keeps across connections. */
struct mqtt_client {
	char *id;
	struct mqtt_broker *mb;
	struct mqtt_conn *mc;       /* attached connection, or NULL */
	struct msub *subs;
	struct map *subs_by_filter; /* filter -> struct msub: a SUBSCRIBE of n
				       filters costs O(n), not O(n * subs) */
	uint32_t nsubs;
	uint32_t session_expiry;    /* seconds after the connection ends */
	struct event *expiry_ev;
	int64_t expires_ms;         /* wall clock ms expiry_ev ends it at */
	char *user;                 /* who attached last (admin API); NULL: not
				       known, or no memory to keep it */
	struct inflight *inflight;  /* outgoing QoS 1/2, in send order */
	uint32_t ninflight, cap_inflight;
	bool window_full;           /* deliveries wait for acks (client.c acked) */
	uint16_t next_pid;
	uint32_t next_sub_no;       /* names durable subscription queues */
	uint16_t *qos2_in;          /* incoming QoS 2 ids awaiting PUBREL */
	uint32_t nqos2_in, cap_qos2_in;
	/* A will whose delay outlives its connection. */
	struct message *will;
	char *will_topic;
	int64_t will_expiry_ms;
	struct event *will_ev;
};

/* broker.c */
/* Starts publishing $SYS/broker/... (at the first MQTT connection: a broker
 * no MQTT client uses has no $SYS topics); 0 if already started. */
int mqtt_sys_start(struct mqtt_broker *mb);

/* client.c */
struct mqtt_client *mqtt_client_find(struct mqtt_broker *mb, const char *id);
struct mqtt_client *mqtt_client_new(struct mqtt_broker *mb, const char *id);
/* Frees the session. `ending`: the session ends (publishes a will still
 * pending, drops its durable state); false when the broker itself stops
 * and a persistent session is to come back after the restart. */
void mqtt_client_free(struct mqtt_client *cl, bool ending);
/* Drops a will held for its delay. */
void mqtt_client_cancel_will(struct mqtt_client *cl);
/* Starts the session expiry timer of a session with no connection. -1 when
 * it cannot (the session is then freed). */
int mqtt_client_start_expiry(struct mqtt_client *cl);
/* A subscription of a persistent session read back from the store. */
int mqtt_client_restore_sub(struct mqtt_client *cl, const char *filter, const char *queue, uint8_t qos,
			    bool no_local, bool retain_as_published, uint32_t sub_id);

/* persist.c */
/* Whether the session is kept across broker restarts. */
bool mqtt_client_durable(const struct mqtt_client *cl);
/* Writes (or removes) the session's record in the store; c (may be NULL)
 * waits for the record (store_put_confirmed). 0, or -1 when it cannot be
 * written (logged). */
int mqtt_session_save(struct mqtt_client *cl, struct router_confirm *c);
/* Writes the ids of incoming QoS 2 messages awaiting PUBREL, on their own:
 * they change with every such PUBLISH and PUBREL. `c` (may be NULL): the
 * confirmation (the PUBREC, the PUBCOMP) that is to wait for the record
 * too. 0, or -1 when the record cannot be written (c does not wait). */
int mqtt_session_save_qos2(struct mqtt_client *cl, struct router_confirm *c);
void mqtt_session_forget(struct mqtt_client *cl);
/* Recreates the stored sessions, without connections. */
void mqtt_sessions_restore(struct mqtt_broker *mb);
/* Connects mc to cl: resends what is in flight (DUP set) and resumes
 * deliveries. */
void mqtt_client_attach(struct mqtt_client *cl, struct mqtt_conn *mc);
/* The connection is gone: keep the session for session_expiry seconds (or
 * end it now), and arrange its will. */
void mqtt_client_detach(struct mqtt_client *cl, bool publish_will);
/* Resumes deliveries paused for want of room. */
void mqtt_client_resume(struct mqtt_client *cl);

struct msub *mqtt_client_find_sub(struct mqtt_client *cl, const char *filter);
/* Subscribes (or updates an existing subscription); returns the SUBACK
 * code. The caller saves the session (mqtt_session_save) once per
 * SUBSCRIBE, not once per filter. */
uint8_t mqtt_client_subscribe(struct mqtt_client *cl, const struct mqtt_topic_filter *f,
			      uint32_t sub_id);
/* Returns the UNSUBACK code. The caller saves the session and resumes
 * deliveries (mqtt_client_resume) once per UNSUBSCRIBE. */
uint8_t mqtt_client_unsubscribe(struct mqtt_client *cl, const char *filter);

/* Acknowledgements from the client, by packet id. */
enum mqtt_ack_result {
	MQTT_ACK_OK,
	MQTT_ACK_UNKNOWN,   /* no message in flight with that id */
	MQTT_ACK_MISMATCH,  /* the wrong acknowledgement for the message's QoS
			       or stage (PUBACK for QoS 2, PUBREC for QoS 1,
			       PUBCOMP before PUBREC): a protocol error */
};
enum mqtt_ack_result mqtt_client_puback(struct mqtt_client *cl, uint16_t pid);
/* refused: the client's PUBREC carried an error code. */
enum mqtt_ack_result mqtt_client_pubrec(struct mqtt_client *cl, uint16_t pid, bool refused);
enum mqtt_ack_result mqtt_client_pubcomp(struct mqtt_client *cl, uint16_t pid);

/* Incoming QoS 2: whether pid is awaiting PUBREL; record it (its PUBREC's
 * confirmation c, may be NULL, waits for the store's record); forget it
 * (its PUBCOMP's confirmation c, may be NULL, waits for the record that
 * removes it). qos2_del: 1 when pid was there, 0 when not, -1 when it was
 * forgotten but the store cannot record that (c does not wait). */
bool mqtt_client_qos2_has(const struct mqtt_client *cl, uint16_t pid);
int mqtt_client_qos2_add(struct mqtt_client *cl, uint16_t pid, struct router_confirm *c);
int mqtt_client_qos2_del(struct mqtt_client *cl, uint16_t pid, struct router_confirm *c);

/* session.c, for client.c */
int mqtt_conn_send_publish(struct mqtt_conn *mc, struct msub *sub, struct message *m,
			   uint8_t qos, uint16_t pid, bool dup, bool retained_delivery);
int mqtt_conn_send_ack(struct mqtt_conn *mc, enum mqtt_type type, uint16_t pid, uint8_t reason);
bool mqtt_conn_can_send(const struct mqtt_conn *mc);
/* Publishes a will message (takes it) to its dotted topic; its expiry
 * interval (ms, 0 for none) starts now, as MQTT 5 says. */
void mqtt_publish_will(struct mqtt_broker *mb, struct message **m, const char *topic,
		       int64_t expiry_ms);

#endif
