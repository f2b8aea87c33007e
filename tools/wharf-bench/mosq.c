/* MQTT clients on libmosquitto (--client libmosquitto): the write pattern
 * of a real device library rather than wharf-bench's own batching client.
 * libmosquitto writes each packet with its own system call as it is made
 * (a PUBLISH, a subscriber's PUBACK) and reads one packet per wake-up, as
 * its own mosquitto_loop() does; this file only drives it from the run's
 * libevent loop instead of a thread per client.
 *
 * libmosquitto owns the socket: the protocol's connect hook starts
 * mosquitto_connect_async() and hands the run a duplicate of the socket to
 * watch (libmosquitto closes its own when the connection ends, and the
 * run's events must not outlive the descriptor they watch); the
 * transport's read and flush hooks are mosquitto_loop_read() and
 * mosquitto_loop_write(); the connection's own buffers stay empty. */
#include "config.h"
#include "wb.h"

#include <errno.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_BURST 1024 /* calls to mosquitto_loop_read() per wake-up, at most */

/* Inside libmosquitto (its callbacks run there: a CONNACK can start the
 * whole run's flow) no client's loop function may be called: it takes
 * locks its caller holds. Flushes wait for the write event then. */
static int in_library;

struct mosq_state {
	struct mosquitto *m;
	uint8_t *payload;             /* publishers: the message being built */
};

static struct mosq_state *st(const struct wb_client *c)
{
	return c->ps;
}

static void fail_rc(struct wb_client *c, const char *what, int rc)
{
	wb_fail(c, "%s: %s", what, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
}

/* ---- libmosquitto's callbacks ------------------------------------------------ */

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
	struct wb_client *c = obj;
	if (rc) {
		wb_fail(c, "CONNACK refused: %s", mosquitto_connack_string(rc));
		return;
	}
	if (c->role != WB_SUB) {
		wb_on_ready(c);
		return;
	}
	const struct wb_opts *o = c->run->o;
	char filter[320];
	if (o->kind == WB_QUEUE)
		snprintf(filter, sizeof filter, "$share/wharf-bench/%s", o->dest);
	else
		snprintf(filter, sizeof filter, "%s", o->dest);
	int e = mosquitto_subscribe(m, NULL, filter, o->qos);
	if (e)
		fail_rc(c, "subscribe", e);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted)
{
	struct wb_client *c = obj;
	(void)m;
	(void)mid;
	if (n < 1 || granted[0] >= 0x80) {
		wb_fail(c, "SUBACK refused the subscription");
		return;
	}
	wb_on_ready(c);
}

static void on_publish(struct mosquitto *m, void *obj, int mid, int reason,
		       const mosquitto_property *props)
{
	(void)m;
	(void)mid;
	(void)props;
	wb_on_confirm(obj, 1, reason >= 0x80);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
	(void)m;
	if (msg->payloadlen >= 0)
		wb_on_message(obj, msg->payload, (size_t)msg->payloadlen);
}

/* ---- the transport: libmosquitto's socket on the run's loop ------------------ */

static ssize_t tp_read(struct wb_conn *conn, void *buf, size_t len)
{
	struct wb_client *c = (struct wb_client *)conn;
	(void)buf;
	(void)len;
	/* In a thread of its own libmosquitto reads a packet (or, with QoS > 0
	 * messages in flight, that many) per wake-up; here many clients share
	 * one loop, so each reads what is there, packet by packet as the
	 * library does, lest a publisher's burst starve its subscriber. */
	for (int i = 0; i < READ_BURST; i++) {
		errno = 0;
		in_library++;
		int rc = mosquitto_loop_read(st(c)->m, 1);
		in_library--;
		if (rc == MOSQ_ERR_CONN_LOST)
			return 0;
		if (rc) {
			conn->err = rc == MOSQ_ERR_ERRNO ? NULL : mosquitto_strerror(rc);
			if (rc != MOSQ_ERR_ERRNO)
				errno = EPROTO;
			return -1;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || !conn->open)
			break;
	}
	/* The callbacks have run and answered; nothing is left for the
	 * caller to parse, and what they queued goes out now. */
	wb_conn_flush(conn);
	errno = EAGAIN;
	return -1;
}

static ssize_t tp_write(struct wb_conn *conn, const void *buf, size_t len)
{
	(void)conn;
	(void)buf;
	(void)len;
	errno = ENOTSUP; /* libmosquitto writes its own packets */
	return -1;
}

/* 1 when libmosquitto holds nothing unwritten, 0 when it waits for room. */
static int tp_flush(struct wb_conn *conn)
{
	struct wb_client *c = (struct wb_client *)conn;
	struct mosquitto *m = st(c)->m;
	if (in_library)
		return 0;
	if (mosquitto_want_write(m)) {
		in_library++;
		int rc = mosquitto_loop_write(m, 1);
		in_library--;
		if (rc && rc != MOSQ_ERR_NO_CONN) {
			conn->err = rc == MOSQ_ERR_ERRNO ? NULL : mosquitto_strerror(rc);
			return -1;
		}
	}
	if (mosquitto_want_write(m))
		return 0;
	if (c->blocked)
		wb_on_credit(c);
	return 1;
}

const struct wb_transport wb_mosq_tp = {
	.name = "libmosquitto",
	.read = tp_read,
	.write = tp_write,
	.flush = tp_flush,
};

/* ---- the protocol ------------------------------------------------------------ */

void wb_mosq_init(void)
{
	mosquitto_lib_init();
}

static int mosq_init(struct wb_client *c)
{
	const struct wb_opts *o = c->run->o;
	struct mosq_state *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	c->ps = s;
	s->m = mosquitto_new(c->id, !o->keep_session, c);
	if (!s->m)
		return -1;
	static const int versions[] = { [3] = MQTT_PROTOCOL_V31, [4] = MQTT_PROTOCOL_V311,
					 [5] = MQTT_PROTOCOL_V5 };
	mosquitto_int_option(s->m, MOSQ_OPT_PROTOCOL_VERSION, versions[o->mqtt_version]);
	mosquitto_int_option(s->m, MOSQ_OPT_TCP_NODELAY, 1);
	if (o->has_user && mosquitto_username_pw_set(s->m, o->user, o->has_pass ? o->pass : NULL))
		return -1;
	mosquitto_connect_callback_set(s->m, on_connect);
	mosquitto_subscribe_callback_set(s->m, on_subscribe);
	mosquitto_publish_v5_callback_set(s->m, on_publish);
	mosquitto_message_callback_set(s->m, on_message);
	if (c->role == WB_PUB) {
		c->confirms = o->qos > 0;
		/* libmosquitto's own in-flight limit (20 by default) would
		 * queue what the run's window lets through */
		unsigned w = o->window && o->window < 65535 ? o->window : 65535;
		mosquitto_int_option(s->m, MOSQ_OPT_SEND_MAXIMUM, (int)w);
		if (!(s->payload = malloc(o->size)))
			return -1;
	}
	return 0;
}

static void mosq_free(struct wb_client *c)
{
	struct mosq_state *s = st(c);
	if (s) {
		if (s->m)
			mosquitto_destroy(s->m);
		free(s->payload);
	}
	free(s);
	c->ps = NULL;
}

static int mosq_connect(struct wb_client *c)
{
	const struct wb_opts *o = c->run->o;
	int rc = mosquitto_connect_async(st(c)->m, o->host, o->port, (int)o->keepalive);
	if (rc) {
		fail_rc(c, "connect", rc);
		return -1;
	}
	int fd = dup(mosquitto_socket(st(c)->m));
	if (fd < 0)
		wb_fail(c, "dup: %s", strerror(errno));
	return fd;
}

/* CONNECT was queued by mosquitto_connect_async(); the flush sends it. */
static void mosq_start(struct wb_client *c)
{
	(void)c;
}

static size_t mosq_input(struct wb_client *c, const uint8_t *data, size_t len)
{
	(void)c;
	(void)data;
	return len;
}

/* Hold back while libmosquitto still has packets it could not write. */
static bool mosq_can_publish(const struct wb_client *c)
{
	return !mosquitto_want_write(st(c)->m);
}

static int mosq_publish(struct wb_client *c, uint64_t seq, uint64_t ts, bool last)
{
	const struct wb_opts *o = c->run->o;
	struct mosq_state *s = st(c);
	(void)last;
	wb_payload_build(s->payload, o->size, c->run->run_id, c->index, seq, ts);
	int rc = mosquitto_publish(s->m, NULL, o->dest, (int)o->size, s->payload, o->qos, false);
	if (rc) {
		fail_rc(c, "publish", rc);
		return -1;
	}
	return 0;
}

/* Confirmations (QoS > 0) are counted one by one; at QoS 0 the run's drain
 * waits for the subscribers. */
static void mosq_finish(struct wb_client *c)
{
	wb_on_finished(c);
}

static void mosq_ping(struct wb_client *c)
{
	in_library++;
	mosquitto_loop_misc(st(c)->m);
	in_library--;
}

static void mosq_disconnect(struct wb_client *c)
{
	mosquitto_disconnect(st(c)->m);
}

const struct wb_proto wb_mosq = {
	.name = "mqtt (libmosquitto)",
	.default_port = 1883,
	.init = mosq_init,
	.free = mosq_free,
	.connect = mosq_connect,
	.start = mosq_start,
	.input = mosq_input,
	.can_publish = mosq_can_publish,
	.publish = mosq_publish,
	.finish = mosq_finish,
	.ping = mosq_ping,
	.disconnect = mosq_disconnect,
};
