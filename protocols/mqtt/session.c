/* MQTT connections: the packet loop, CONNECT and its negotiation, keep
 * alive, wills, PUBLISH in (QoS 0, 1, 2), SUBSCRIBE and UNSUBSCRIBE. Client
 * sessions that outlive a connection are in client.c; the broker-wide
 * state and the $SYS topics in broker.c. */
#include "config.h"
#include "protocols/mqtt/session.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "broker.h"
#include "ha/redirect.h"
#include "log.h"
#include "net/output.h"
#include "net/protocol.h"
#include "protocols/mqtt/internal.h"
#include "protocols/mqtt/mapping.h"
#include "util/clock.h"

/* ---- output -------------------------------------------------------------- */

/* Sends what mc->out holds; on out of memory the connection closes. */
static void flush_out(struct mqtt_conn *mc)
{
	if (mc->out.len && conn_write(mc->c, mc->out.data, mc->out.len) < 0)
		conn_close(mc->c, false);
	if (mc->mb) /* NULL before CONNECT is taken */
		mc->mb->bytes_out += mc->out.len;
	buf_reset(&mc->out);
}

bool mqtt_conn_can_send(const struct mqtt_conn *mc)
{
	return mc->state == MC_CONNECTED && !conn_closing(mc->c) && !conn_output_full(mc->c);
}

int mqtt_conn_send_ack(struct mqtt_conn *mc, enum mqtt_type type, uint16_t pid, uint8_t reason)
{
	int rc = mqtt_encode_ack(&mc->out, mc->level, type, pid, reason, NULL, mc->peer_max_packet);
	flush_out(mc);
	return rc;
}

/* Returns 0 when sent, 1 when this client cannot take it (over its maximum
 * packet size, or a topic MQTT cannot name): the message is dropped for it
 * as if delivered, as MQTT 5 says; -1 on out of memory. */
int mqtt_conn_send_publish(struct mqtt_conn *mc, struct msub *sub, struct message *m,
			   uint8_t qos, uint16_t pid, bool dup, bool retained_delivery)
{
	/* Per-connection scratch, reused: no allocation per delivery. */
	struct buf *topic = &mc->topic, *scratch = &mc->scratch;
	struct mqtt_packet pkt = { .type = MQTT_PUBLISH, .packet_id = pid };
	int rc = -1;
	int64_t now = clock_wall_ms();
	buf_reset(topic);
	buf_reset(scratch);
	if (mqtt_from_router_name(topic, m->dest) < 0)
		goto out;
	pkt.publish.qos = qos;
	pkt.publish.dup = dup;
	pkt.publish.retain = retained_delivery || (sub->retain_as_published && m->retain);
	pkt.publish.topic = (struct mqtt_str){ topic->data, (uint32_t)topic->len };
	pkt.publish.payload = (struct mqtt_str){ (const char *)m->body, (uint32_t)m->body_len };
	if (m->body_len > MQTT_MAX_REMAINING) {
		rc = 1;
		goto out;
	}
	if (mc->level == MQTT_V5) {
		if (mqtt_publish_props(&pkt, m, now, scratch) < 0)
			goto out;
		if (sub->sub_id) {
			pkt.props.n_sub_ids = 1;
			pkt.props.sub_id = sub->sub_id;
		}
	}
	/* A PUBLISH keeps every user property (MQTT-3.3.2-17): one too large
	 * for the client is skipped whole (MQTT-3.1.2-25), as is one whose
	 * topic MQTT cannot carry ('+' or '#' from another protocol). */
	size_t start = mc->out.len;
	rc = mqtt_encode_publish_head(&mc->out, mc->level, &pkt, mc->peer_max_packet);
	if (rc != MQTT_ENCODE_OK) {
		rc = rc == MQTT_ENCODE_NOMEM ? -1 : 1;
		goto out;
	}
	if (output_message(mc->c, mc->out.data + start, mc->out.len - start, m, NULL, 0) < 0) {
		conn_close(mc->c, false);
		rc = -1;
	} else {
		mc->mb->msgs_out++;
		mc->mb->bytes_out += mc->out.len - start + m->body_len;
	}
	mc->out.len = start;
out:
	return rc;
}

/* Closes the connection with a reason: a DISCONNECT for MQTT 5 (when the
 * client is connected), a plain close before it. */
static void disconnect(struct mqtt_conn *mc, uint8_t reason, const char *why)
{
	if (mc->state == MC_DONE)
		return;
	conn_log(mc->c, LOG_INFO, "mqtt: disconnecting: %s (reason 0x%02x)", why, reason);
	if (mc->level == MQTT_V5 && mc->state == MC_CONNECTED) {
		struct mqtt_props props = { 0 };
		if (mc->problem_info) {
			props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
			props.reason_string = (struct mqtt_str){ why, (uint32_t)strlen(why) };
		}
		if (mqtt_encode_disconnect(&mc->out, mc->level, reason, &props, mc->peer_max_packet) < 0)
			mqtt_encode_disconnect(&mc->out, mc->level, reason, NULL, 0);
		flush_out(mc);
	}
	mc->state = MC_DONE;
	conn_close(mc->c, true);
}

/* ---- wills --------------------------------------------------------------- */

void mqtt_publish_will(struct mqtt_broker *mb, struct message **m, const char *topic,
		       int64_t expiry_ms)
{
	if (!*m)
		return;
	if (expiry_ms)
		(*m)->expiry_ms = clock_wall_ms() + expiry_ms;
	enum router_err err = router_publish(mb->b->router, DEST_TOPIC, topic, m, NULL);
	if (err != ROUTER_OK)
		log_info("mqtt: will to %s not published: %s", topic, router_strerror(err));
}

static void drop_will(struct mqtt_conn *mc)
{
	message_unref(mc->will);
	mc->will = NULL;
	free(mc->will_topic);
	mc->will_topic = NULL;
}

/* Lets go of the client session (kept or ended by its expiry). */
static void detach(struct mqtt_conn *mc, bool publish_will)
{
	if (!mc->cl)
		return;
	mc->mb->connected--;
	mqtt_client_detach(mc->cl, publish_will);
}

/* ---- keep alive ---------------------------------------------------------- */

static void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqtt_conn *mc = arg;
	/* The spec's grace: one and a half keep-alive periods. */
	if (clock_mono_ms() - mc->last_rx_ms > (int64_t)mc->keepalive * 1500)
		disconnect(mc, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout");
}

/* ---- CONNECT ------------------------------------------------------------- */

static void send_connack(struct mqtt_conn *mc, bool present, uint8_t reason,
			 const struct mqtt_props *props)
{
	uint8_t code = reason;
	if (mc->level != MQTT_V5) {
		int rc = mqtt_connack_rc_v311(reason);
		code = rc < 0 ? 2 : (uint8_t)rc;
	}
	mqtt_encode_connack(&mc->out, mc->level, present, code, props, mc->peer_max_packet);
	flush_out(mc);
}

/* The 5.0 CONNACK's properties: those whose value is not the spec's default
 * (retain, wildcard, subscription identifiers and shared subscriptions are
 * all available: said by leaving them out). `assigned_id` (NULL: none),
 * `server_keepalive` (0: none) and the session expiry when `set_expiry`. */
static void connack_props(struct mqtt_props *ack, const struct mqtt_config *cfg,
			  const char *assigned_id, uint16_t server_keepalive, bool set_expiry,
			  uint32_t expiry)
{
	if (cfg->receive_maximum != 65535) {
		ack->present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
		ack->receive_maximum = (uint16_t)cfg->receive_maximum;
	}
	if (cfg->topic_alias_maximum) {
		ack->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
		ack->topic_alias_maximum = (uint16_t)cfg->topic_alias_maximum;
	}
	ack->present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
	ack->maximum_packet_size = (uint32_t)cfg->max_packet_size;
	if (assigned_id) {
		ack->present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
		ack->assigned_client_id = (struct mqtt_str){ assigned_id, (uint32_t)strlen(assigned_id) };
	}
	if (server_keepalive) {
		ack->present |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE);
		ack->server_keep_alive = server_keepalive;
	}
	if (set_expiry) {
		ack->present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		ack->session_expiry = expiry;
	}
}

/* Whether a successful CONNACK with these properties fits the client's
 * maximum packet size (session present or not: the same size). */
static bool connack_fits(struct mqtt_conn *mc, const struct mqtt_props *ack)
{
	buf_reset(&mc->scratch);
	int rc = mqtt_encode_connack(&mc->scratch, mc->level, false, MQTT_RC_SUCCESS, ack,
				     mc->peer_max_packet);
	buf_reset(&mc->scratch);
	return rc == MQTT_ENCODE_OK;
}

static void refuse_connect_props(struct mqtt_conn *mc, uint8_t reason, const char *why,
				 const struct mqtt_props *props)
{
	conn_log(mc->c, LOG_INFO, "mqtt: connect refused: %s", why);
	send_connack(mc, false, reason, props);
	mc->state = MC_DONE;
	conn_close(mc->c, true);
}

static void refuse_connect(struct mqtt_conn *mc, uint8_t reason, const char *why)
{
	refuse_connect_props(mc, reason, why, NULL);
}

/* A connection limit (net/limits.h): 5.0 hears "quota exceeded" and the
 * limit's name as reason string; 3.1.1 has nothing nearer than "server
 * unavailable". */
static void refuse_limited(struct mqtt_conn *mc, const char *why)
{
	struct mqtt_props props = { 0 };
	if (mc->level != MQTT_V5) {
		refuse_connect(mc, MQTT_RC_SERVER_UNAVAILABLE, why);
		return;
	}
	props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
	props.reason_string = (struct mqtt_str){ why, (uint32_t)strlen(why) };
	refuse_connect_props(mc, MQTT_RC_QUOTA_EXCEEDED, why, &props);
}

/* A node that is not active: 5.0 clients hear "use another server" and
 * where (the Server Reference), or "server unavailable" when that is not
 * known; 3.1.1 has no redirect, only "server unavailable" (0x03). */
static bool redirect(struct mqtt_conn *mc)
{
	struct redirect_target to;
	if (!broker_redirect_for(mc->c, &to))
		return false;
	char ref[300];
	struct mqtt_props props = { 0 };
	if (to.port && mc->level == MQTT_V5) {
		redirect_target_text(&to, ref, sizeof(ref));
		props.present = MQTT_PROP_BIT(MQTT_PROP_SERVER_REFERENCE);
		props.server_reference = (struct mqtt_str){ ref, (uint32_t)strlen(ref) };
		conn_log(mc->c, LOG_DEBUG, "mqtt: standby: client sent to %s", ref);
		send_connack(mc, false, MQTT_RC_USE_ANOTHER_SERVER, &props);
	} else {
		conn_log(mc->c, LOG_DEBUG, "mqtt: standby: %s",
			 to.port ? "MQTT 3.1.1 has no redirect" : "the active node is not known");
		send_connack(mc, false, MQTT_RC_SERVER_UNAVAILABLE, NULL);
	}
	mc->state = MC_DONE;
	conn_close(mc->c, true);
	return true;
}

static int take_will(struct mqtt_conn *mc, const struct mqtt_packet *p)
{
	const struct mqtt_connect *cp = &p->connect;
	struct mqtt_packet as_publish = { .type = MQTT_PUBLISH };
	as_publish.publish.qos = cp->will_qos;
	as_publish.publish.retain = cp->will_retain;
	as_publish.publish.topic = cp->will_topic;
	as_publish.publish.payload = cp->will_payload;
	as_publish.props = cp->will_props;
	mc->will = mqtt_message_from_publish(&as_publish, conn_id(mc->c), 0);
	mc->will_topic = mqtt_to_router_name(cp->will_topic.p, cp->will_topic.len);
	/* Published later as the broker's own: its user is set now. */
	if (mc->will)
		message_del_prop(mc->will, MESSAGE_USER_PROP);
	if (!mc->will || !mc->will_topic ||
	    (strcmp(conn_principal(mc->c), "anonymous") &&
	     message_set_prop(mc->will, MESSAGE_USER_PROP, conn_principal(mc->c)) < 0)) {
		drop_will(mc);
		return -1;
	}
	/* Built with a zero clock, the expiry holds the bare interval: it
	 * starts when the will is published. */
	mc->will_expiry_ms = mc->will->expiry_ms;
	mc->will->expiry_ms = 0;
	if (mqtt_has(&cp->will_props, MQTT_PROP_WILL_DELAY))
		mc->will_delay = cp->will_props.will_delay;
	return 0;
}

/* The authenticator's answer: the CONNECT, left unread, is read again
 * (and this time answered), or the client hears its CONNACK refusal. */
static void auth_answered(void *session, enum auth_result r)
{
	struct mqtt_conn *mc = session;
	mc->authenticating = false;
	switch (r) {
	case AUTH_OK:
		mc->authenticated = true;
		conn_pause_input(mc->c, false);
		return;
	case AUTH_NO_ANONYMOUS:
		refuse_connect(mc, MQTT_RC_NOT_AUTHORIZED, "authentication failed: no user name");
		return;
	case AUTH_ERROR:
		refuse_connect(mc, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		return;
	case AUTH_LIMITED:
		refuse_limited(mc, conn_refusal(mc->c));
		return;
	default:
		refuse_connect(mc, MQTT_RC_BAD_USERNAME_OR_PASSWORD, "authentication failed");
		return;
	}
}

/* Asks about the CONNECT's user name and password (no user name:
 * anonymous); true when the answer is awaited (or a refusal went out). */
static bool authenticate(struct mqtt_conn *mc, const struct mqtt_connect *cp)
{
	if (mc->authenticated)
		return false;
	char *user = NULL;
	if (cp->has_username) {
		/* A NUL in the name (the codec lets U+0000 by) names no user. */
		user = malloc(cp->username.len + 1);
		if (user) {
			memcpy(user, cp->username.p, cp->username.len);
			user[cp->username.len] = '\0';
			if (strlen(user) != cp->username.len)
				user[0] = ':';
		}
	}
	/* The id it asks for names it in the audit log's login line; the one
	 * it gets is set once the login and the id's prefix are checked. */
	char *claimed = cp->client_id.len ? strndup(cp->client_id.p, cp->client_id.len) : NULL;
	int rc = -1;
	if ((!cp->has_username || user) && (!cp->client_id.len || claimed) &&
	    conn_set_client_id(mc->c, claimed) == 0)
		rc = conn_authenticate(mc->c, user, cp->has_password ? cp->password.p : "",
				       cp->has_password ? cp->password.len : 0, auth_answered);
	free(claimed);
	free(user);
	if (rc < 0) {
		refuse_connect(mc, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		return true;
	}
	mc->authenticating = true;
	conn_pause_input(mc->c, true);
	return true;
}

/* Removes from cl the subscriptions the ACLs do not let mc's user have
 * (a persistent one's queue too, as an UNSUBSCRIBE would): after a
 * reload, or when a connection resumes a session another user's made.
 * Whether any went. */
static bool drop_denied(struct mqtt_conn *mc, struct mqtt_client *cl)
{
	bool denied = false;
	struct msub *next;
	for (struct msub *m = cl->subs; m; m = next) {
		next = m->next;
		if (m->rs && !router_recheck(mc->mb->b->router, m->rs, conn_acl_who(mc->c))) {
			mqtt_client_unsubscribe(cl, m->filter);
			denied = true;
		}
	}
	return denied;
}

static void on_connect(struct mqtt_conn *mc, const struct mqtt_packet *p)
{
	const struct mqtt_connect *cp = &p->connect;
	const struct mqtt_props *pr = &p->props;
	const struct mqtt_config *cfg = mc->cfg;
	char idbuf[400], prefix[300] = "";
	mc->level = cp->level;
	if (redirect(mc))
		return;
	struct mqtt_broker *mb = mc->mb = protocol_state(conn_broker(mc->c), &mqtt_proto);
	if (mqtt_sys_start(mb) < 0) {
		refuse_connect(mc, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		return;
	}
	if (mqtt_has(pr, MQTT_PROP_AUTH_METHOD)) {
		refuse_connect(mc, MQTT_RC_BAD_AUTHENTICATION_METHOD, "authentication method not supported");
		return;
	}
	if (authenticate(mc, cp))
		return;
	char *id = malloc(cp->client_id.len + 1);
	if (!id) {
		refuse_connect(mc, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		return;
	}
	memcpy(id, cp->client_id.p, cp->client_id.len);
	id[cp->client_id.len] = '\0';
	bool assigned = cp->client_id.len == 0;
	/* [auth] mqtt_client_id_prefix: a client's id starts with its
	 * user's prefix, so that no user takes over another's session. */
	const char *want = conn_broker(mc->c)->cfg->auth.mqtt_client_id_prefix;
	int bound = want ? acl_client_id_check(want, conn_acl_who(mc->c),
					       assigned ? NULL : id, prefix, sizeof(prefix))
			 : 0;
	if (bound != 0) {
		free(id);
		refuse_connect(mc, MQTT_RC_CLIENT_ID_NOT_VALID,
			       bound < 0 ? "client id prefix too long" : "client id not the user's");
		return;
	}
	if (assigned) {
		/* The codec refused an empty id where the level forbids it. */
		snprintf(idbuf, sizeof(idbuf), "%swharf-%" PRIx64 "-%lu", prefix,
			 (uint64_t)clock_wall_ms(), ++mb->next_assigned);
		free(id);
		id = strdup(idbuf);
		if (!id) {
			refuse_connect(mc, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
			return;
		}
	}
	uint32_t expiry;
	if (mc->level == MQTT_V5)
		expiry = mqtt_has(pr, MQTT_PROP_SESSION_EXPIRY) ? pr->session_expiry : 0;
	else
		expiry = cp->clean_start ? 0 : UINT32_MAX;
	if (expiry > cfg->max_session_expiry && !(expiry == UINT32_MAX && mc->level != MQTT_V5))
		expiry = cfg->max_session_expiry;
	if (conn_set_client_id(mc->c, id) < 0 || (cp->will && take_will(mc, p) < 0)) {
		free(id);
		refuse_connect(mc, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		return;
	}
	/* A will is published after its client is gone: whether its user may
	 * publish there is asked now, and a will it may not send refuses the
	 * CONNECT (0x87, 3.1.1: 0x05) rather than vanish later. */
	if (cp->will && router_may_publish(mb->b->router, DEST_TOPIC, mc->will_topic,
					   conn_acl_who(mc->c)) == ROUTER_EDENIED) {
		free(id);
		drop_will(mc);
		refuse_connect(mc, MQTT_RC_NOT_AUTHORIZED, "will topic not allowed");
		return;
	}
	mc->keepalive = cp->keep_alive;
	bool server_keepalive = false;
	if (cfg->max_keepalive && (mc->keepalive == 0 || mc->keepalive > cfg->max_keepalive) &&
	    mc->level == MQTT_V5) {
		mc->keepalive = (uint16_t)cfg->max_keepalive;
		server_keepalive = true;
	}
	mc->peer_receive_max = mqtt_has(pr, MQTT_PROP_RECEIVE_MAXIMUM) ? pr->receive_maximum : 65535;
	mc->peer_max_packet = mqtt_has(pr, MQTT_PROP_MAXIMUM_PACKET_SIZE) ? pr->maximum_packet_size : 0;
	mc->problem_info = !mqtt_has(pr, MQTT_PROP_REQUEST_PROBLEM_INFO) || pr->request_problem_info;
	struct mqtt_props ack = { 0 };
	if (mc->level == MQTT_V5) {
		connack_props(&ack, cfg, assigned ? id : NULL, server_keepalive ? mc->keepalive : 0,
			      expiry != (mqtt_has(pr, MQTT_PROP_SESSION_EXPIRY) ? pr->session_expiry : 0),
			      expiry);
		/* Checked before the session changes: a client whose maximum
		 * packet size leaves no room for the CONNACK is let go as if it
		 * never came [MQTT-3.1.2-24]. */
		if (!connack_fits(mc, &ack)) {
			conn_log(mc->c, LOG_INFO, "mqtt: the CONNACK does not fit the client's maximum packet size %u", mc->peer_max_packet);
			free(id);
			drop_will(mc);
			mc->state = MC_DONE;
			conn_close(mc->c, false);
			return;
		}
	}

	struct mqtt_client *cl = mqtt_client_find(mb, id);
	if (cl && cl->mc) {
		/* Session take-over: the old connection goes, its will with it
		 * as on any abnormal close. */
		struct mqtt_conn *old = cl->mc;
		disconnect(old, MQTT_RC_SESSION_TAKEN_OVER, "session taken over");
		detach(old, true);
		cl = mqtt_client_find(mb, id);
	}
	if (cl && cp->clean_start) {
		/* The new connection cancels a delayed will [MQTT-3.1.3-9],
		 * even as the old session ends. */
		mqtt_client_cancel_will(cl);
		mqtt_client_free(cl, true);
		cl = NULL;
	}
	bool present = cl != NULL;
	if (!cl && !(cl = mqtt_client_new(mb, id))) {
		free(id);
		refuse_connect(mc, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		return;
	}
	free(id);
	cl->session_expiry = expiry;
	if (mqtt_client_durable(cl))
		mqtt_session_save(cl, NULL);
	else
		mqtt_session_forget(cl);

	if (cfg->topic_alias_maximum && mc->level == MQTT_V5) {
		mc->aliases = calloc(cfg->topic_alias_maximum + 1, sizeof(*mc->aliases));
		if (!mc->aliases) {
			refuse_connect(mc, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
			return;
		}
	}
	if (mc->keepalive) {
		mc->ka_ev = event_new(conn_base(mc->c), -1, EV_PERSIST, keepalive_cb, mc);
		unsigned half_ms = mc->keepalive * 500u;
		struct timeval tv = { half_ms / 1000, (half_ms % 1000) * 1000 };
		if (!mc->ka_ev || event_add(mc->ka_ev, &tv) < 0) {
			refuse_connect(mc, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
			return;
		}
	}

	if (assigned) /* the same text; `id` is gone */
		ack.assigned_client_id = (struct mqtt_str){ cl->id, (uint32_t)strlen(cl->id) };
	mc->state = MC_CONNECTED;
	conn_handshake_done(mc->c);
	send_connack(mc, present, MQTT_RC_SUCCESS, &ack);
	mb->connected++;
	conn_log(mc->c, LOG_DEBUG, "mqtt: connected as '%s', level %u, keep alive %u, session %s",
		  cl->id, mc->level, mc->keepalive, present ? "resumed" : "new");
	/* A session resumed by another user keeps only what that user may
	 * read; what was in flight for the rest is not sent again. */
	if (present)
		drop_denied(mc, cl);
	mqtt_client_attach(cl, mc);
}

static void send_held_acks(struct router_waiter *w)
{
	struct mqtt_conn *mc = (struct mqtt_conn *)((char *)w - offsetof(struct mqtt_conn, waiter));
	for (uint32_t i = 0; i < mc->nheld; i++)
		mqtt_encode_ack(&mc->out, mc->level, mc->held[i].type, mc->held[i].pid, 0, NULL,
				mc->peer_max_packet);
	mc->nheld = 0;
	flush_out(mc);
	if (mc->held_paused) {
		mc->held_paused = false;
		conn_pause_input(mc->c, false);
	}
}

/* A client that publishes only and was announced no Receive Maximum
 * (before MQTT 5) is slowed by its socket once receive_maximum acks are
 * held; one that also consumes is not (the acks of what it reads would
 * wait behind what it sent), and breaking the limit ends it. */
static bool slowed_by_tcp(const struct mqtt_conn *mc)
{
	return mc->level != MQTT_V5 && mc->cl && !mc->cl->subs;
}

/* Acknowledges a routed publish now, or later if it left a destination
 * full (`blocked`: this publish's own outcome, whoever published since). */
static void ack_publish(struct mqtt_conn *mc, enum mqtt_type type, uint16_t pid, uint8_t reason,
			bool blocked)
{
	if (reason != MQTT_RC_SUCCESS || (!blocked && !mc->nheld)) {
		mqtt_conn_send_ack(mc, type, pid, reason);
		return;
	}
	if (mc->nheld >= mc->cfg->receive_maximum && !slowed_by_tcp(mc)) {
		disconnect(mc, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED,
			   "too many unacknowledged publishes while a destination is full");
		return;
	}
	if (mc->nheld == mc->cap_held) {
		uint32_t cap = mc->cap_held ? mc->cap_held * 2 : 16;
		struct held_ack *h = realloc(mc->held, cap * sizeof(*h));
		if (!h) {
			disconnect(mc, MQTT_RC_UNSPECIFIED, "out of memory");
			return;
		}
		mc->held = h;
		mc->cap_held = cap;
	}
	mc->held[mc->nheld++] = (struct held_ack){ (uint8_t)type, pid };
	if (mc->nheld >= mc->cfg->receive_maximum) {
		mc->held_paused = true;
		conn_pause_input(mc->c, true);
	}
	router_wait_room(mc->mb->b->router, &mc->waiter);
}

/* ---- PUBLISH in ---------------------------------------------------------- */

/* The dotted topic of an incoming PUBLISH, resolving and recording topic
 * aliases. NULL with *reason set when the client broke the rules. */
static char *publish_topic(struct mqtt_conn *mc, const struct mqtt_packet *p, uint8_t *reason)
{
	const struct mqtt_str *t = &p->publish.topic;
	*reason = MQTT_RC_UNSPECIFIED;
	if (!mqtt_has(&p->props, MQTT_PROP_TOPIC_ALIAS))
		return mqtt_to_router_name(t->p, t->len);
	uint16_t alias = p->props.topic_alias;
	if (!mc->aliases || alias > mc->cfg->topic_alias_maximum) {
		*reason = MQTT_RC_TOPIC_ALIAS_INVALID;
		return NULL;
	}
	if (t->len) {
		char *name = mqtt_to_router_name(t->p, t->len);
		char *keep = name ? strdup(name) : NULL;
		if (!keep) {
			free(name);
			return NULL;
		}
		free(mc->aliases[alias]);
		mc->aliases[alias] = keep;
		return name;
	}
	if (!mc->aliases[alias]) {
		*reason = MQTT_RC_PROTOCOL_ERROR;
		return NULL;
	}
	return strdup(mc->aliases[alias]);
}

static uint8_t router_reason(enum router_err err)
{
	switch (err) {
	case ROUTER_OK: return MQTT_RC_SUCCESS;
	case ROUTER_EINVAL: return MQTT_RC_TOPIC_NAME_INVALID;
	case ROUTER_ENOTFOUND:
	case ROUTER_EFORBIDDEN:
	case ROUTER_EDENIED: return MQTT_RC_NOT_AUTHORIZED;
	case ROUTER_ENOMEM:
	case ROUTER_ESTORE: return MQTT_RC_UNSPECIFIED;
	case ROUTER_EFULL: return MQTT_RC_QUOTA_EXCEEDED;
	case ROUTER_PENDING: break;
	}
	return MQTT_RC_UNSPECIFIED;
}

/* A confirmation's tag: what the acknowledgement needs. The qos of a
 * PUBLISH's (1, 2), or TAG_PUBCOMP for a PUBREL's. */
#define TAG(qos, pid, reason) ((uint64_t)(qos) << 16 | (pid) | (uint64_t)(reason) << 24)
#define TAG_PUBCOMP 3
#define TAG_SUBACK 4
#define TAG_UNSUBACK 5
#define TAG_COUNT(t) ((uint32_t)((t) >> 33)) /* SUBACK, UNSUBACK: reason codes in e->text */
#define TAG_ID_SETTLED ((uint64_t)1 << 32) /* the QoS 2 id as on disk needs no change */
#define TAG_PID(t) ((uint16_t)(t))
#define TAG_QOS(t) ((uint8_t)((t) >> 16))
#define TAG_REASON(t) ((uint8_t)((t) >> 24))


/* SUBACK or UNSUBACK (codes: n reason codes, taken over) once the
 * session's new subscriptions are on disk: a client told it is subscribed
 * must not find, after a crash, that messages published since went past
 * it. In line with the PUBACKs before it. */
static void ack_subscriptions(struct mqtt_conn *mc, enum mqtt_type type, uint16_t pid,
			      uint8_t *codes, uint32_t n)
{
	struct confirm *e = confirmq_push(&mc->confirms);
	if (!e) {
		free(codes);
		disconnect(mc, MQTT_RC_UNSPECIFIED, "out of memory");
		return;
	}
	e->tag = TAG(type == MQTT_SUBACK ? TAG_SUBACK : TAG_UNSUBACK, pid, 0) | (uint64_t)n << 33;
	e->text = (char *)codes;
	if (mqtt_session_save(mc->cl, &e->rc) < 0)
		confirmq_ready(&mc->confirms, e, ROUTER_ESTORE);
	else
		confirmq_await(&mc->confirms, e);
}

static void release_suback(struct mqtt_conn *mc, struct confirm *e)
{
	if (e->err != ROUTER_OK) {
		disconnect(mc, MQTT_RC_UNSPECIFIED, "the store could not keep the subscriptions");
		return;
	}
	enum mqtt_type type = TAG_QOS(e->tag) == TAG_SUBACK ? MQTT_SUBACK : MQTT_UNSUBACK;
	mqtt_encode_suback(&mc->out, mc->level, type, TAG_PID(e->tag), (const uint8_t *)e->text,
			   TAG_COUNT(e->tag), NULL, mc->peer_max_packet);
	flush_out(mc);
}

/* The PUBCOMP of a PUBREL, once the removal of its id is on disk. */
static void release_pubcomp(struct mqtt_conn *mc, uint16_t pid, uint8_t reason, enum router_err err)
{
	if (err != ROUTER_OK) {
		/* The id may still be on disk, so it is not free: it waits for
		 * a PUBREL again, which the client sends again once it is back
		 * (PUBCOMP has no reason code for this). */
		if (reason == MQTT_RC_SUCCESS && !mqtt_client_qos2_has(mc->cl, pid))
			mqtt_client_qos2_add(mc->cl, pid, NULL);
		disconnect(mc, MQTT_RC_UNSPECIFIED, "the store could not record the PUBREL");
		return;
	}
	mqtt_conn_send_ack(mc, MQTT_PUBCOMP, pid, reason);
}

/* PUBACK or PUBREC, in the order the publishes came, each once the store
 * has the message (or refused it); PUBCOMP among them (see on_pubrel). */
static void release_confirm(void *ctx, struct confirm *e)
{
	struct mqtt_conn *mc = ctx;
	if (mc->state == MC_DONE)
		return;
	uint16_t pid = TAG_PID(e->tag);
	if (TAG_QOS(e->tag) == TAG_PUBCOMP) {
		release_pubcomp(mc, pid, TAG_REASON(e->tag), e->err);
		return;
	}
	if (TAG_QOS(e->tag) == TAG_SUBACK || TAG_QOS(e->tag) == TAG_UNSUBACK) {
		release_suback(mc, e);
		return;
	}
	uint8_t reason = TAG_REASON(e->tag) ? TAG_REASON(e->tag) : router_reason(e->err);
	if (reason != MQTT_RC_SUCCESS)
		conn_log(mc->c, LOG_DEBUG, "mqtt: publish (id %u) refused (0x%02x)", pid, reason);
	if (e->err == ROUTER_ESTORE && mc->level != MQTT_V5) {
		/* 3.1.1 acknowledges without a reason: a PUBACK would say the
		 * message is safe. Without one the client sends it again. */
		disconnect(mc, MQTT_RC_UNSPECIFIED, "the store could not keep the message");
		return;
	}
	if (TAG_QOS(e->tag) == 1) {
		ack_publish(mc, MQTT_PUBACK, pid, reason, e->blocked);
		return;
	}
	if (e->tag & TAG_ID_SETTLED) {
		if (e->err != ROUTER_OK) {
			/* The id may still be on disk: a new PUBLISH reusing it
			 * after a restart would be taken for a resend. */
			disconnect(mc, MQTT_RC_UNSPECIFIED, "the store could not record a packet id");
			return;
		}
	} else if (reason != MQTT_RC_SUCCESS) {
		/* The flow ends with this PUBREC and the client may reuse the id
		 * at once, so its removal goes to disk first (this entry then
		 * comes back here, still first in line). */
		e->tag = TAG(2, pid, reason) | TAG_ID_SETTLED;
		if (mqtt_client_qos2_del(mc->cl, pid, &e->rc) < 0) {
			disconnect(mc, MQTT_RC_UNSPECIFIED, "the store could not record a packet id");
			return;
		}
		if (confirmq_rearm(&mc->confirms, e))
			return;
	}
	ack_publish(mc, MQTT_PUBREC, pid, reason, e->blocked);
}

static void on_publish(struct mqtt_conn *mc, const struct mqtt_packet *p)
{
	struct mqtt_client *cl = mc->cl;
	uint8_t qos = p->publish.qos, reason;
	uint16_t pid = p->packet_id;
	if (qos == 2 && mqtt_client_qos2_has(cl, pid)) {
		/* A resend of what we routed: route nothing; its PUBREC goes in
		 * line, once what the store holds (the first copy) is on disk. */
		struct confirm *e = confirmq_push(&mc->confirms);
		if (!e) {
			disconnect(mc, MQTT_RC_UNSPECIFIED, "out of memory");
			return;
		}
		e->tag = TAG(2, pid, 0) | TAG_ID_SETTLED;
		confirmq_sync(&mc->confirms, e);
		return;
	}
	if (qos == 2 && cl->nqos2_in >= mc->cfg->receive_maximum) {
		disconnect(mc, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, "receive maximum exceeded");
		return;
	}
	char *topic = publish_topic(mc, p, &reason);
	if (!topic) {
		if (reason == MQTT_RC_UNSPECIFIED)
			disconnect(mc, MQTT_RC_UNSPECIFIED, "out of memory");
		else
			disconnect(mc, reason, "invalid topic alias");
		return;
	}
	struct message *m = NULL;
	struct confirm *e = NULL;
	if (qos && !(e = confirmq_push(&mc->confirms)))
		goto oom;
	if (p->props.payload_format == 1 && mqtt_has(&p->props, MQTT_PROP_PAYLOAD_FORMAT) &&
	    !mqtt_utf8_valid(p->publish.payload.p, p->publish.payload.len)) {
		free(topic);
		if (e) {
			e->tag = TAG(qos, pid, MQTT_RC_PAYLOAD_FORMAT_INVALID);
			confirmq_ready(&mc->confirms, e, ROUTER_OK);
		}
		return;
	}
	/* Before the store answers, so that a resend meanwhile is not routed
	 * twice. */
	if (qos == 2 && mqtt_client_qos2_add(cl, pid, &e->rc) < 0)
		goto oom;
	if (!(m = mqtt_message_from_publish(p, conn_id(mc->c), clock_wall_ms())))
		goto oom;
	mc->mb->msgs_in++;
	conn_count_msg_in(mc->c);
	/* A denied publish (ACLs) gets 0x87 in its PUBACK or PUBREC at 5.0;
	 * 3.1.1 has no reason code: the flow completes and the message is
	 * dropped, as Mosquitto does. */
	struct publish_ctx pc = { .principal = conn_principal(mc->c), .who = conn_acl_who(mc->c) };
	if (e) {
		e->tag = TAG(qos, pid, 0);
		confirmq_publish(&mc->confirms, e, DEST_TOPIC, topic, &m, &pc);
	} else {
		router_publish(mc->mb->b->router, DEST_TOPIC, topic, &m, &pc);
	}
	free(topic);
	return;
oom:
	free(topic);
	if (e)
		confirmq_ready(&mc->confirms, e, ROUTER_ENOMEM);
	disconnect(mc, MQTT_RC_UNSPECIFIED, "out of memory");
}

/* PUBREL: the id is free for a new PUBLISH once the PUBCOMP is out, so the
 * PUBCOMP waits until the id's removal is on disk (after a crash before
 * that, the id would come back and a new PUBLISH reusing it would be taken
 * for a resend: acknowledged, not routed), and goes in turn with the
 * PUBACKs and PUBRECs before it. */
static void on_pubrel(struct mqtt_conn *mc, uint16_t pid)
{
	struct confirm *e = confirmq_push(&mc->confirms);
	if (!e) {
		disconnect(mc, MQTT_RC_UNSPECIFIED, "out of memory");
		return;
	}
	int found = mqtt_client_qos2_del(mc->cl, pid, &e->rc);
	e->tag = TAG(TAG_PUBCOMP, pid, found ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND);
	if (found < 0)
		confirmq_ready(&mc->confirms, e, ROUTER_ESTORE);
	else if (!found && mqtt_client_durable(mc->cl))
		/* A PUBREL sent again: the removal it asked for last time may
		 * still be on its way to disk. */
		confirmq_sync(&mc->confirms, e);
	else
		confirmq_await(&mc->confirms, e);
}


/* ---- SUBSCRIBE, UNSUBSCRIBE ---------------------------------------------- */

static void on_subscribe(struct mqtt_conn *mc, const struct mqtt_packet *p)
{
	uint32_t n = p->subscribe.count;
	uint8_t *codes = malloc(n);
	if (!codes) {
		disconnect(mc, MQTT_RC_UNSPECIFIED, "out of memory");
		return;
	}
	uint32_t sub_id = mqtt_has(&p->props, MQTT_PROP_SUB_ID) ? p->props.sub_id : 0;
	struct mqtt_filter_iter it;
	struct mqtt_topic_filter f;
	uint32_t i = 0;
	mqtt_filters_begin(&it, p);
	while (i < n && mqtt_filters_next(&it, &f)) {
		uint8_t rc = f.reason;
		if (rc == MQTT_RC_SUCCESS)
			rc = mqtt_client_subscribe(mc->cl, &f, sub_id);
		/* 3.1.1 has one failure code for every reason. */
		codes[i++] = (mc->level != MQTT_V5 && rc >= 0x80) ? 0x80 : rc;
	}
	ack_subscriptions(mc, MQTT_SUBACK, p->packet_id, codes, i);
}

static void on_unsubscribe(struct mqtt_conn *mc, const struct mqtt_packet *p)
{
	uint32_t n = p->subscribe.count;
	uint8_t *codes = malloc(n);
	if (!codes) {
		disconnect(mc, MQTT_RC_UNSPECIFIED, "out of memory");
		return;
	}
	struct mqtt_filter_iter it;
	struct mqtt_topic_filter f;
	uint32_t i = 0;
	mqtt_filters_begin(&it, p);
	while (i < n && mqtt_filters_next(&it, &f)) {
		char *filter = malloc(f.filter.len + 1);
		if (!filter) {
			codes[i++] = MQTT_RC_UNSPECIFIED;
			continue;
		}
		memcpy(filter, f.filter.p, f.filter.len);
		filter[f.filter.len] = '\0';
		codes[i++] = mqtt_client_unsubscribe(mc->cl, filter);
		free(filter);
	}
	mqtt_client_resume(mc->cl);
	ack_subscriptions(mc, MQTT_UNSUBACK, p->packet_id, codes, i);
	flush_out(mc);
}

/* ---- the packet loop ----------------------------------------------------- */

static void on_disconnect(struct mqtt_conn *mc, const struct mqtt_packet *p)
{
	if (mc->level == MQTT_V5 && mqtt_has(&p->props, MQTT_PROP_SESSION_EXPIRY)) {
		if (mc->cl->session_expiry == 0 && p->props.session_expiry != 0) {
			disconnect(mc, MQTT_RC_PROTOCOL_ERROR, "session expiry set after connecting with 0");
			return;
		}
		mc->cl->session_expiry = p->props.session_expiry < mc->cfg->max_session_expiry
						 ? p->props.session_expiry
						 : mc->cfg->max_session_expiry;
		mqtt_session_save(mc->cl, NULL);
	}
	/* A normal DISCONNECT discards the will; 0x04 asks for it. */
	if (p->reason != MQTT_RC_DISCONNECT_WITH_WILL)
		drop_will(mc);
	mc->state = MC_DONE;
	conn_close(mc->c, true);
}

static void on_packet(struct mqtt_conn *mc, const struct mqtt_packet *p)
{
	if (mc->state == MC_AWAIT_CONNECT) {
		on_connect(mc, p); /* the codec lets nothing else through first */
		return;
	}
	switch (p->type) {
	case MQTT_PUBLISH:
		on_publish(mc, p);
		break;
	case MQTT_PUBACK:
		/* One for an id no longer in flight (a late duplicate) is
		 * ignored, as Mosquitto does. */
		if (mqtt_client_puback(mc->cl, p->packet_id) == MQTT_ACK_MISMATCH)
			disconnect(mc, MQTT_RC_PROTOCOL_ERROR, "PUBACK for a QoS 2 message");
		break;
	case MQTT_PUBREC:
		switch (mqtt_client_pubrec(mc->cl, p->packet_id, p->reason >= 0x80)) {
		case MQTT_ACK_OK:
			if (p->reason < 0x80)
				mqtt_conn_send_ack(mc, MQTT_PUBREL, p->packet_id, 0);
			break;
		case MQTT_ACK_UNKNOWN:
			if (p->reason < 0x80)
				mqtt_conn_send_ack(mc, MQTT_PUBREL, p->packet_id,
						   MQTT_RC_PACKET_ID_NOT_FOUND);
			break;
		case MQTT_ACK_MISMATCH:
			disconnect(mc, MQTT_RC_PROTOCOL_ERROR, "PUBREC for a QoS 1 message");
			break;
		}
		break;
	case MQTT_PUBREL:
		on_pubrel(mc, p->packet_id);
		break;
	case MQTT_PUBCOMP:
		if (mqtt_client_pubcomp(mc->cl, p->packet_id) == MQTT_ACK_MISMATCH)
			disconnect(mc, MQTT_RC_PROTOCOL_ERROR, "PUBCOMP for a message not yet released");
		break;
	case MQTT_SUBSCRIBE:
		on_subscribe(mc, p);
		break;
	case MQTT_UNSUBSCRIBE:
		on_unsubscribe(mc, p);
		break;
	case MQTT_PINGREQ:
		mqtt_encode_pingresp(&mc->out);
		flush_out(mc);
		break;
	case MQTT_DISCONNECT:
		on_disconnect(mc, p);
		break;
	case MQTT_AUTH:
		disconnect(mc, MQTT_RC_PROTOCOL_ERROR, "AUTH without an authentication method");
		break;
	default:
		disconnect(mc, MQTT_RC_PROTOCOL_ERROR, "unexpected packet");
		break;
	}
}

/* Bad input: MQTT 5 clients get the reason (in CONNACK if the CONNECT was
 * bad, else in DISCONNECT); 3.1.1 clients a CONNACK return code where one
 * exists, else a plain close. */
/* The protocol level of a CONNECT whose body was refused unread (too
 * large): read from its first bytes, or 0. */
static uint8_t peek_connect_level(const uint8_t *data, size_t len)
{
	size_t i = 1;
	while (i < len && i < 5 && (data[i] & 0x80))
		i++;
	i++; /* past the last length byte */
	if (len >= i + 7 && !memcmp(data + i, "\0\4MQTT", 6))
		return data[i + 6];
	if (len >= i + 9 && !memcmp(data + i, "\0\6MQIsdp", 8))
		return data[i + 8];
	return 0;
}

static void on_decode_error(struct mqtt_conn *mc, const struct mqtt_error *err,
			    const uint8_t *data, size_t len)
{
	if (mc->state == MC_AWAIT_CONNECT) {
		uint8_t level = err->level ? err->level : peek_connect_level(data, len);
		/* A level MQTT does not know, 0 included, still gets its
		 * CONNACK 0x01 [MQTT-3.1.2-2]. */
		if (err->type == MQTT_CONNECT &&
		    (level || err->reason == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION)) {
			mc->level = level == MQTT_V5 ? MQTT_V5 : MQTT_V311;
			if (err->reason == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION ||
			    (mc->level == MQTT_V5) || mqtt_connack_rc_v311(err->reason) > 0) {
				if (err->reason == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION &&
				    level != MQTT_V5)
					mc->level = MQTT_V311;
				refuse_connect(mc, err->reason, err->why);
				return;
			}
		}
		conn_log(mc->c, LOG_INFO, "mqtt: bad first packet: %s", err->why);
		mc->state = MC_DONE;
		conn_close(mc->c, false);
		return;
	}
	disconnect(mc, err->reason, err->why);
}

static void mqtt_input(void *session, struct evbuffer *in)
{
	struct mqtt_conn *mc = session;
	size_t len = evbuffer_get_length(in);
	mc->last_rx_ms = clock_mono_ms();
	if (len < mc->need)
		return;
	const uint8_t *data = evbuffer_pullup(in, -1);
	size_t off = 0;
	mc->need = 0;
	struct mqtt_decode_opts opts = { .max_packet_size = (uint32_t)mc->cfg->max_packet_size };
	/* Only PUBACKs, PUBRECs and PUBCOMPs for deliveries: the broker need
	 * not wake up for the next ones (conn_input_acks_only). */
	bool acks_only = mc->state == MC_CONNECTED;
	while (off < len && mc->state != MC_DONE) {
		struct mqtt_packet p;
		struct mqtt_error err = { 0 };
		size_t used = 0, need = 0;
		opts.level = mc->state == MC_AWAIT_CONNECT ? MQTT_LEVEL_NONE : mc->level;
		enum mqtt_decode_status st = mqtt_decode(data + off, len - off, &opts, &p, &used,
							 &need, &err);
		if (st == MQTT_DECODE_NEED_MORE) {
			mc->need = need;
			break;
		}
		if (st == MQTT_DECODE_ERROR) {
			on_decode_error(mc, &err, data + off, len - off);
			break;
		}
		acks_only = acks_only && (p.type == MQTT_PUBACK || p.type == MQTT_PUBREC ||
					  p.type == MQTT_PUBCOMP);
		on_packet(mc, &p);
		if (mc->authenticating)
			break; /* the CONNECT is decoded again once answered */
		off += used;
		if (mc->mb) /* NULL until CONNECT is taken */
			mc->mb->bytes_in += used;
		if (mc->held_paused)
			break; /* the rest is read once the held acks go out */
	}
	evbuffer_drain(in, off);
	if (mc->state == MC_CONNECTED)
		conn_input_acks_only(mc->c, acks_only && off == len);
}

static void mqtt_drained(void *session)
{
	struct mqtt_conn *mc = session;
	if (mc->paused && mc->cl && mc->state == MC_CONNECTED)
		mqtt_client_resume(mc->cl);
}

static void mqtt_shutdown(void *session, enum conn_end why)
{
	struct mqtt_conn *mc = session;
	if (why == CONN_END_ADMIN) {
		/* Closed by the server, not by the client's DISCONNECT: the
		 * will goes out [MQTT-3.1.2-8]. */
		disconnect(mc, MQTT_RC_ADMINISTRATIVE_ACTION, "closed by an administrator");
		return;
	}
	/* Stopping the broker is not the client's failure: no will. */
	drop_will(mc);
	disconnect(mc, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
}

/* The ACLs were reloaded: subscriptions they no longer allow leave the
 * session (drop_denied), and the client is told, MQTT 5 with DISCONNECT
 * 0x87 (not authorized), 3.1.1 by the close: left in place they would
 * hold the messages the rules now deny. */
static void mqtt_acl_changed(void *session)
{
	struct mqtt_conn *mc = session;
	if (mc->state == MC_CONNECTED && mc->cl && drop_denied(mc, mc->cl))
		disconnect(mc, MQTT_RC_NOT_AUTHORIZED, "a subscription is no longer allowed");
}

/* The broker-wide state (mc->mb) is taken at CONNECT: a standby has
 * none, and answers CONNECT with where to go instead. */
static void *mqtt_open(struct conn *c)
{
	struct broker *b = conn_broker(c);
	struct mqtt_conn *mc = calloc(1, sizeof(*mc));
	if (!mc)
		return NULL;
	mc->c = c;
	mc->cfg = &b->cfg->mqtt;
	mc->last_rx_ms = clock_mono_ms();
	mc->waiter.room = send_held_acks;
	confirmq_init(&mc->confirms, b->router, release_confirm, mc);
	return mc;
}

static void mqtt_closed(void *session)
{
	struct mqtt_conn *mc = session;
	bool normal = mc->state == MC_DONE && !mc->will;
	mc->state = MC_DONE;
	router_cancel_wait(&mc->waiter);
	confirmq_clear(&mc->confirms);
	free(mc->held);
	detach(mc, !normal);
	drop_will(mc);
	if (mc->ka_ev)
		event_free(mc->ka_ev);
	if (mc->aliases) {
		for (unsigned i = 0; i <= mc->cfg->topic_alias_maximum; i++)
			free(mc->aliases[i]);
		free(mc->aliases);
	}
	buf_free(&mc->out);
	buf_free(&mc->topic);
	buf_free(&mc->scratch);
	free(mc);
}

const struct proto_ops mqtt_proto = {
	.name = "mqtt",
	.open = mqtt_open,
	.input = mqtt_input,
	.drained = mqtt_drained,
	.shutdown = mqtt_shutdown,
	.closed = mqtt_closed,
	.acl_changed = mqtt_acl_changed,
};
