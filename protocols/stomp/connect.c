/* CONNECT and STOMP frames: version and heart-beat negotiation, the
 * client-id, CONNECTED; the heart-beat timers. */
#include "config.h"
#include "protocols/stomp/internal.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "broker.h"
#include "ha/redirect.h"
#include "log.h"
#include "net/conn.h"

/* ---- heart-beats -------------------------------------------------------- */

static void hb_send_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stomp_session *s = arg;
	if (clock_mono_ms() - s->last_tx_ms >= s->hb_send_ms / 2) {
		conn_write(s->c, "\n", 1);
		stomp_note_tx(s);
	}
}

static void hb_recv_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stomp_session *s = arg;
	/* While a full destination has us not reading the client, what it
	 * sends (heart-beats too) waits unread: that is not silence. */
	if (s->blocked)
		return;
	/* Half an interval of grace for the network, as the spec suggests. */
	if (clock_mono_ms() - s->last_rx_ms > (int64_t)s->hb_recv_ms * 3 / 2)
		stomp_send_error(s, "heart-beat timeout", NULL,
				 "no data received within the heart-beat interval");
}

static int start_timer(struct stomp_session *s, struct event **ev, unsigned ms,
		       event_callback_fn cb)
{
	*ev = event_new(conn_base(s->c), -1, EV_PERSIST, cb, s);
	if (!*ev)
		return -1;
	unsigned period = cb == hb_recv_cb ? ms / 2 : ms;
	struct timeval tv = { period / 1000, (period % 1000) * 1000 };
	return event_add(*ev, &tv);
}

void stomp_heartbeat_free(struct stomp_session *s)
{
	if (s->hb_send_ev)
		event_free(s->hb_send_ev);
	if (s->hb_recv_ev)
		event_free(s->hb_recv_ev);
}

/* ---- CONNECT ------------------------------------------------------------ */

/* A node that is not active answers CONNECT with an ERROR naming the active
 * node (active-host and active-port headers too), or saying it is not
 * known, and closes. */
static bool redirect(struct stomp_session *s, struct stomp_frame *f)
{
	struct redirect_target to;
	if (!broker_redirect_for(s->c, &to))
		return false;
	char message[400], at[300], port[16];
	const char *extra[] = { "active-host", to.host, "active-port", port, NULL };
	redirect_target_text(&to, at, sizeof(at));
	snprintf(port, sizeof(port), "%d", to.port);
	snprintf(message, sizeof(message), "standby: the active node is %s",
		 to.port ? at : "not known");
	stomp_send_error_frame(s, message, stomp_frame_get(f, "receipt"),
			       to.port ? "this node is a standby: connect to the active node"
				       : "this node is a standby; the active node is not known",
			       to.port ? extra : NULL);
	return true;
}

/* The authenticator's answer: the CONNECT, left unread, is read again
 * (and this time answered), or the client hears ERROR. */
static void auth_answered(void *session, enum auth_result r)
{
	struct stomp_session *s = session;
	s->authenticating = false;
	if (r == AUTH_LIMITED) {
		stomp_send_error(s, conn_refusal(s->c), NULL, "connection refused");
		return;
	}
	if (r != AUTH_OK) {
		stomp_send_error(s, "authentication failed", NULL,
				 r == AUTH_ERROR ? "out of memory" : NULL);
		return;
	}
	s->authenticated = true;
	conn_pause_input(s->c, false);
}

/* Asks about the CONNECT's login and passcode (no login, or an empty one:
 * anonymous); true when the answer is awaited (or an ERROR went out). */
static bool authenticate(struct stomp_session *s, struct stomp_frame *f)
{
	if (s->authenticated)
		return false;
	const char *login = stomp_frame_get(f, "login");
	const char *passcode = stomp_frame_get(f, "passcode");
	if (login && !*login)
		login = NULL;
	if (!passcode)
		passcode = "";
	/* The client-id it asks for names it in the audit log's login line;
	 * it is its own once the login and the id are checked. */
	const char *claimed = stomp_frame_get(f, "client-id");
	if (conn_set_client_id(s->c, claimed && *claimed ? claimed : NULL) < 0 ||
	    conn_authenticate(s->c, login, passcode, strlen(passcode), auth_answered) < 0) {
		stomp_send_error(s, "out of memory", NULL, NULL);
		return true;
	}
	s->authenticating = true;
	conn_pause_input(s->c, true);
	return true;
}

void stomp_on_connect(struct stomp_session *s, struct stomp_frame *f)
{
	const char *accept = stomp_frame_get(f, "accept-version");
	enum stomp_version v = STOMP_V10;
	if (accept) {
		v = STOMP_V_NONE;
		char *copy = strdup(accept);
		char *save = NULL;
		for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
			if (!strcmp(t, "1.2"))
				v = STOMP_V12;
			else if (!strcmp(t, "1.1") && v < STOMP_V11)
				v = STOMP_V11;
			else if (!strcmp(t, "1.0") && v < STOMP_V10)
				v = STOMP_V10;
		}
		free(copy);
	}
	if (v == STOMP_V_NONE) {
		static const char *const versions[] = { "version", "1.0,1.1,1.2", NULL };
		s->version = STOMP_V12;
		stomp_send_error_frame(s, "unsupported protocol version", stomp_frame_get(f, "receipt"),
				       "supported versions are 1.0, 1.1 and 1.2", versions);
		return;
	}
	s->version = v;
	if (redirect(s, f))
		return;
	unsigned cx = 0, cy = 0;
	const char *hb = stomp_frame_get(f, "heart-beat");
	if (hb && v >= STOMP_V11 && sscanf(hb, "%u,%u", &cx, &cy) != 2) {
		stomp_send_error(s, "malformed heart-beat header", NULL, "expected heart-beat:cx,cy");
		return;
	}
	if (authenticate(s, f))
		return;
	const char *client_id = stomp_frame_get(f, "client-id");
	const char *want = s->b->cfg->auth.stomp_client_id_prefix;
	char prefix[300], why[340];
	int bound = want && client_id && *client_id
		? acl_client_id_check(want, conn_acl_who(s->c), client_id, prefix,
				      sizeof(prefix))
		: 0;
	if (bound != 0) {
		/* [auth] stomp_client_id_prefix: durable subscriptions are
		 * named by client-id, so one user's may not be another's. */
		snprintf(why, sizeof(why), "a client-id must start with '%s'", prefix);
		stomp_send_error(s, bound > 0 ? "client id not the user's" : "client id prefix too long",
				 stomp_frame_get(f, "receipt"), bound > 0 ? why : NULL);
		return;
	}
	if (client_id && *client_id) {
		int rc = stomp_client_id_claim(&s->client_id, s->b, client_id);
		if (rc != 0) {
			stomp_send_error(s, rc > 0 ? "client id already in use" : "out of memory",
					 stomp_frame_get(f, "receipt"), rc > 0 ? client_id : NULL);
			return;
		}
		if (conn_set_client_id(s->c, client_id) < 0) {
			stomp_send_error(s, "out of memory", stomp_frame_get(f, "receipt"), NULL);
			return;
		}
	}
	unsigned offer = s->b->cfg->stomp.heartbeat_ms;
	/* We send as often as the client wants to hear from us, but no more
	 * often than we offer; likewise for what we expect to hear. */
	s->hb_send_ms = (cy && offer) ? (cy > offer ? cy : offer) : 0;
	s->hb_recv_ms = (cx && offer) ? (cx > offer ? cx : offer) : 0;
	s->last_rx_ms = s->last_tx_ms = clock_mono_ms();
	if ((s->hb_send_ms && start_timer(s, &s->hb_send_ev, s->hb_send_ms, hb_send_cb) < 0) ||
	    (s->hb_recv_ms && start_timer(s, &s->hb_recv_ev, s->hb_recv_ms, hb_recv_cb) < 0)) {
		stomp_send_error(s, "out of memory", NULL, NULL);
		return;
	}
	s->state = ST_CONNECTED;
	conn_handshake_done(s->c);
	char text[64];
	buf_reset(&s->out);
	stomp_encode_command(&s->out, STOMP_CMD_CONNECTED);
	stomp_hdr(s, STOMP_CMD_CONNECTED, "version",
		  v == STOMP_V12 ? "1.2" : v == STOMP_V11 ? "1.1" : "1.0");
	stomp_hdr(s, STOMP_CMD_CONNECTED, "server", "wharf/" PACKAGE_VERSION);
	snprintf(text, sizeof(text), "wharf-%lu", conn_id(s->c));
	stomp_hdr(s, STOMP_CMD_CONNECTED, "session", text);
	if (v >= STOMP_V11) {
		snprintf(text, sizeof(text), "%u,%u", offer, offer);
		stomp_hdr(s, STOMP_CMD_CONNECTED, "heart-beat", text);
	}
	stomp_encode_end_headers(&s->out);
	stomp_send_frame(s, NULL);
	conn_log(s->c, LOG_DEBUG, "stomp: connected, version %d, principal %s", v,
		  conn_principal(s->c));
}
