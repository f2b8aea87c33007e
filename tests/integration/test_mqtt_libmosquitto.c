/* A real, independent MQTT client against wharfd: libmosquitto connects
 * (MQTT 3.1.1), subscribes at QoS 1, publishes 100 QoS 1 messages to the
 * topic it subscribed to, and checks it receives all 100, once, intact and
 * in order, then disconnects. Exit 0 on success.
 *
 * Usage: test_mqtt_libmosquitto PORT [TOPIC]   (or WHARF_MQTT_PORT in the
 * environment). Built and run by test_mqtt_libmosquitto.py. */
#define _POSIX_C_SOURCE 200809L

#include <mosquitto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COUNT 100
#define DEADLINE_S 30

struct state {
	const char *topic;
	bool connected, subscribed, disconnected;
	int connect_rc;
	int granted;
	int received;     /* messages in order so far */
	int published;    /* PUBACKs */
	int failures;
};

static void on_connect(struct mosquitto *m, void *arg, int rc)
{
	struct state *st = arg;
	(void)m;
	st->connected = true;
	st->connect_rc = rc;
}

static void on_subscribe(struct mosquitto *m, void *arg, int mid, int n, const int *granted)
{
	struct state *st = arg;
	(void)m;
	(void)mid;
	st->subscribed = true;
	st->granted = n == 1 ? granted[0] : -1;
}

static void on_publish(struct mosquitto *m, void *arg, int mid)
{
	struct state *st = arg;
	(void)m;
	(void)mid;
	st->published++;
}

static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
	struct state *st = arg;
	char want[32];
	(void)m;
	snprintf(want, sizeof(want), "message %03d", st->received);
	if (strcmp(msg->topic, st->topic) != 0) {
		fprintf(stderr, "message on unexpected topic %s\n", msg->topic);
		st->failures++;
		return;
	}
	if (msg->payloadlen != (int)strlen(want) || memcmp(msg->payload, want, strlen(want)) != 0) {
		fprintf(stderr, "message %d: got %.*s, wanted %s\n", st->received, msg->payloadlen,
			(const char *)msg->payload, want);
		st->failures++;
	}
	if (msg->qos != 1) {
		fprintf(stderr, "message %d: QoS %d, wanted 1\n", st->received, msg->qos);
		st->failures++;
	}
	st->received++;
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc)
{
	struct state *st = arg;
	(void)m;
	(void)rc;
	st->disconnected = true;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs the network loop until *flag or the deadline; false on timeout or
 * a network error. */
static bool loop_until(struct mosquitto *m, const bool *flag, double deadline, const char *what)
{
	while (!*flag) {
		if (now_s() > deadline) {
			fprintf(stderr, "timed out waiting for %s\n", what);
			return false;
		}
		int rc = mosquitto_loop(m, 100, 1);
		if (rc != MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "network loop failed waiting for %s: %s\n", what,
				mosquitto_strerror(rc));
			return false;
		}
	}
	return true;
}

int main(int argc, char **argv)
{
	const char *port_s = argc > 1 ? argv[1] : getenv("WHARF_MQTT_PORT");
	struct state st = { .topic = argc > 2 ? argv[2] : "libmosquitto/test" };
	if (!port_s) {
		fprintf(stderr, "usage: %s PORT [TOPIC]\n", argv[0]);
		return 2;
	}
	int port = atoi(port_s);
	double deadline = now_s() + DEADLINE_S;
	int status = 1;

	mosquitto_lib_init();
	struct mosquitto *m = mosquitto_new("libmosquitto-test", true, &st);
	if (!m) {
		fprintf(stderr, "mosquitto_new failed\n");
		return 1;
	}
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
	mosquitto_connect_callback_set(m, on_connect);
	mosquitto_subscribe_callback_set(m, on_subscribe);
	mosquitto_publish_callback_set(m, on_publish);
	mosquitto_message_callback_set(m, on_message);
	mosquitto_disconnect_callback_set(m, on_disconnect);

	int rc = mosquitto_connect(m, "127.0.0.1", port, 30);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "connect: %s\n", mosquitto_strerror(rc));
		goto out;
	}
	if (!loop_until(m, &st.connected, deadline, "CONNACK"))
		goto out;
	if (st.connect_rc != 0) {
		fprintf(stderr, "CONNACK return code %d\n", st.connect_rc);
		goto out;
	}
	if ((rc = mosquitto_subscribe(m, NULL, st.topic, 1)) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "subscribe: %s\n", mosquitto_strerror(rc));
		goto out;
	}
	if (!loop_until(m, &st.subscribed, deadline, "SUBACK"))
		goto out;
	if (st.granted != 1) {
		fprintf(stderr, "SUBACK granted %d, wanted 1\n", st.granted);
		goto out;
	}
	for (int i = 0; i < COUNT; i++) {
		char payload[32];
		int n = snprintf(payload, sizeof(payload), "message %03d", i);
		if ((rc = mosquitto_publish(m, NULL, st.topic, n, payload, 1, false)) !=
		    MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "publish %d: %s\n", i, mosquitto_strerror(rc));
			goto out;
		}
		mosquitto_loop(m, 0, 1);
	}
	bool done = false;
	while (!done) {
		if (now_s() > deadline) {
			fprintf(stderr, "timed out: %d published, %d received\n", st.published,
				st.received);
			goto out;
		}
		if ((rc = mosquitto_loop(m, 100, 1)) != MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "network loop: %s\n", mosquitto_strerror(rc));
			goto out;
		}
		done = st.published >= COUNT && st.received >= COUNT;
	}
	/* A little longer: nothing more (no duplicate) may arrive. */
	double settle = now_s() + 0.3;
	while (now_s() < settle)
		mosquitto_loop(m, 50, 1);
	if (st.received != COUNT) {
		fprintf(stderr, "received %d messages, wanted %d\n", st.received, COUNT);
		goto out;
	}
	if (st.failures)
		goto out;
	mosquitto_disconnect(m);
	loop_until(m, &st.disconnected, now_s() + 5, "the disconnect");
	printf("ok: %d published, %d received in order\n", st.published, st.received);
	status = 0;
out:
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();
	return status;
}
