/* What a standby answers at each protocol's handshake (DESIGN.md §7,
 * src/ha/redirect.h): a broker set up as a standby, never activated, with
 * the active node's addresses given as the replication link gives them
 * (broker_set_redirect), and real connections on socket pairs. The exact
 * bytes of the MQTT CONNACKs and the STOMP ERROR frame are checked; the
 * AMQP close is read by proton's engine as a client's. */
#include "config.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <proton/codec.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/event.h>
#include <proton/sasl.h>
#include <proton/transport.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "ha/ha.h"
#include "log.h"
#include "net/conn.h"
#include "net/ws.h"
#include "protocols/amqp/session.h"
#include "protocols/mqtt/session.h"
#include "protocols/stomp/session.h"
#include "tap.h"

static struct broker b;
static unsigned long nconns;

/* A client connection to b's adapter `proto` (NULL: over WebSocket). */
static int client(const struct proto_ops *proto)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -1;
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(1) };
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct ws_options ws = { .max_message = 65536 };
	conn_accept(&b, proto, NULL, proto ? NULL : &ws, sv[0], (struct sockaddr *)&peer,
		    sizeof(peer), 1 << 20, &nconns);
	return sv[1];
}

/* Runs the loop until the broker closes fd's other end; what it sent. */
static size_t exchange(int fd, const void *req, size_t reqlen, unsigned char *out, size_t cap)
{
	size_t n = 0;
	if (write(fd, req, reqlen) != (ssize_t)reqlen)
		return 0;
	for (int i = 0; i < 200; i++) {
		event_base_loop(b.base, EVLOOP_NONBLOCK);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 10) <= 0)
			continue;
		ssize_t k = read(fd, out + n, cap - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	event_base_loop(b.base, EVLOOP_NONBLOCK);
	return n;
}

static bool bytes_are(const unsigned char *got, size_t n, const char *want, size_t wn)
{
	if (n == wn && !memcmp(got, want, n))
		return true;
	printf("#   got %zu bytes:", n);
	for (size_t i = 0; i < n && i < 64; i++)
		printf(" %02x", got[i]);
	printf("\n");
	return false;
}

static const char mqtt5_connect[] = "\x10\x0e\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x01" "a";
static const char mqtt311_connect[] = "\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01" "a";

static void test_mqtt(bool known)
{
	unsigned char out[512];
	size_t n = exchange(client(&mqtt_proto), mqtt5_connect, sizeof(mqtt5_connect) - 1, out,
			    sizeof(out));
	if (known) {
		static const char want[] = "\x20\x13\x00\x9c\x10\x1c\x00\x0d" "10.0.0.1:1883";
		ok(bytes_are(out, n, want, sizeof(want) - 1),
		   "MQTT 5: CONNACK 0x9C, Server Reference 10.0.0.1:1883, then the close");
	} else {
		ok(bytes_are(out, n, "\x20\x03\x00\x88\x00", 5),
		   "MQTT 5, active not known: CONNACK 0x88, then the close");
	}
	n = exchange(client(&mqtt_proto), mqtt311_connect, sizeof(mqtt311_connect) - 1, out,
		     sizeof(out));
	ok(bytes_are(out, n, "\x20\x02\x00\x03", 4), "MQTT 3.1.1%s: CONNACK 3, then the close",
	   known ? "" : ", active not known");
}

static void test_stomp(bool known)
{
	static const char req[] = "CONNECT\naccept-version:1.2\nhost:x\nreceipt:r1\n\n";
	unsigned char out[1024];
	size_t n = exchange(client(&stomp_proto), req, sizeof(req), out, sizeof(out) - 1);
	out[n] = '\0';
	const char *want = known ? "ERROR\n"
				   "message:standby\\c the active node is 10.0.0.1\\c61613\n"
				   "active-host:10.0.0.1\n"
				   "active-port:61613\n"
				   "receipt-id:r1\n"
				 : "ERROR\n"
				   "message:standby\\c the active node is not known\n"
				   "receipt-id:r1\n";
	ok(n > strlen(want) && !strncmp((char *)out, want, strlen(want)) && out[n - 1] == '\0',
	   "STOMP%s: ERROR saying where the active node is, then the close",
	   known ? "" : ", active not known");
	if (n <= strlen(want) || strncmp((char *)out, want, strlen(want)))
		printf("#   got '%s'\n", (char *)out);
}

/* An AMQP client on proton's engine: SASL ANONYMOUS, open, and the
 * broker's close condition. */
static void test_amqp(bool known)
{
	pn_connection_driver_t d;
	pn_connection_driver_init(&d, NULL, NULL);
	pn_sasl_allowed_mechs(pn_sasl(d.transport), "ANONYMOUS");
	pn_connection_set_container(d.connection, "test");
	pn_connection_open(d.connection);
	int fd = client(&amqp_proto);
	bool closed = false;
	for (int i = 0; i < 300 && !closed && !pn_connection_driver_finished(&d); i++) {
		pn_bytes_t w = pn_connection_driver_write_buffer(&d);
		if (w.size) {
			ssize_t k = write(fd, w.start, w.size);
			if (k > 0)
				pn_connection_driver_write_done(&d, (size_t)k);
		}
		event_base_loop(b.base, EVLOOP_NONBLOCK);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 10) > 0) {
			pn_rwbytes_t r = pn_connection_driver_read_buffer(&d);
			ssize_t k = r.size ? read(fd, r.start, r.size) : 0;
			if (k > 0)
				pn_connection_driver_read_done(&d, (size_t)k);
			else
				pn_connection_driver_read_close(&d);
		}
		pn_event_t *e;
		while ((e = pn_connection_driver_next_event(&d)))
			if (pn_event_type(e) == PN_CONNECTION_REMOTE_CLOSE)
				closed = true;
	}
	ok(closed && (pn_connection_state(d.connection) & PN_REMOTE_ACTIVE) == 0,
	   "AMQP%s: the open is answered, then closed", known ? "" : ", active not known");
	pn_condition_t *cond = pn_connection_remote_condition(d.connection);
	const char *name = pn_condition_get_name(cond);
	is_str(name, known ? "amqp:connection:redirect" : "amqp:connection:forced",
	       "AMQP: the close's condition");
	if (known) {
		pn_data_t *info = pn_condition_info(cond);
		char text[256] = "";
		size_t len = sizeof(text);
		pn_data_rewind(info);
		pn_data_format(info, text, &len);
		is_str(text, "{:hostname=\"10.0.0.2\", :\"network-host\"=\"10.0.0.2\", :port=5672}",
		       "AMQP: the redirect's info map");
	}
	close(fd);
	event_base_loop(b.base, EVLOOP_NONBLOCK);
	pn_connection_driver_destroy(&d);
}

/* Over WebSocket, the active's ws address is preferred. */
static void test_ws_mqtt(void)
{
	char req[1024];
	int n = snprintf(req, sizeof(req),
			 "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
			 "Sec-WebSocket-Protocol: mqtt\r\n\r\n"
			 "\x82%c%c%c%c%c", (char)(0x80 | (sizeof(mqtt5_connect) - 1)), 0, 0, 0, 0);
	memcpy(req + n, mqtt5_connect, sizeof(mqtt5_connect) - 1);
	n += (int)sizeof(mqtt5_connect) - 1;
	unsigned char out[1024];
	size_t got = exchange(client(NULL), req, (size_t)n, out, sizeof(out));
	static const char want[] = "\x82\x15\x20\x13\x00\x9c\x10\x1c\x00\x0d" "10.0.0.9:8080";
	const unsigned char *end = memmem(out, got, "\r\n\r\n", 4);
	size_t rest = end ? got - (size_t)(end + 4 - out) : 0;
	ok(end && rest >= sizeof(want) - 1 && !memcmp(end + 4, want, sizeof(want) - 1),
	   "MQTT 5 over WebSocket: sent to the active's ws address");
}

/* A standby's config in dir: its link listens on an ephemeral port and
 * its peer (port 1) never answers. */
static struct wharf_config *standby_config(const char *dir)
{
	struct wharf_config *cfg = config_new();
	free(cfg->data_dir);
	cfg->data_dir = strdup(dir);
	cfg->ha.role = HA_STANDBY;
	cfg->ha.node_id = strdup("n2");
	cfg->ha.secret = strdup("0123456789abcdef");
	cfg->ha.listen = strdup("repl://127.0.0.1:0");
	cfg->ha.peer = strdup("repl://127.0.0.1:1");
	return cfg;
}

/* The advertise text from bound listeners; standby_listen = false leaves
 * them to broker_activate, which (a promotion) also runs on_promote. */
static void test_listen_and_promote(const char *dir)
{
	char text[1024], out[128], want[300];
	struct wharf_config *cfg = standby_config(dir);
	cfg->ha.standby_listen = false;
	snprintf(out, sizeof(out), "%s/hook.out", dir);
	snprintf(text, sizeof(text), "echo \"$WHARF_NODE_ID $WHARF_ROLE\" > %s.tmp && mv %s.tmp %s",
		 out, out, out);
	cfg->ha.on_promote = strdup(text);
	config_add_listener(cfg, "a", "mqtt://127.0.0.1:0");
	config_add_listener(cfg, "b", "stomp://0.0.0.0:0");
	ok(broker_init(&b, cfg) == 0 && broker_listen(&b) == 0 && !b.listeners,
	   "standby_listen = false: a standby opens no client listener");
	ok(broker_advertise(&b, text, sizeof(text)) == 0 && !strcmp(text, ""),
	   "no listener: nothing to advertise");
	ok(ha_promote(b.ha, 0) == 0 && b.active && b.listeners, "a promotion opens them");
	char host[256];
	gethostname(host, sizeof(host));
	snprintf(want, sizeof(want), "stomp://%s:", host);
	ok(broker_advertise(&b, text, sizeof(text)) == 0 && !strncmp(text, "mqtt://127.0.0.1:", 17) &&
	   strstr(text, want) && !strstr(text, ":0 ") && strcmp(text + strlen(text) - 2, ":0"),
	   "advertised: the bound ports, the host name for 0.0.0.0: %s", text);
	FILE *f = NULL;
	for (int i = 0; i < 500 && !(f = fopen(out, "r")); i++) {
		event_base_loop(b.base, EVLOOP_NONBLOCK);
		usleep(10000);
	}
	char line[64] = "";
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		fclose(f);
	}
	is_str(line, "n2 active\n", "on_promote ran with WHARF_NODE_ID and WHARF_ROLE");
	ok(broker_advertise(&b, text, 8) < 0, "a short buffer: -1");
	broker_free(&b);

	cfg = config_new();
	free(cfg->data_dir);
	cfg->data_dir = strdup(dir);
	cfg->ha.advertise = strdup("amqp://a:1 mqtt://a:2");
	ok(broker_init(&b, cfg) == 0 && broker_advertise(&b, text, sizeof(text)) == 0 &&
	   !strcmp(text, "amqp://a:1 mqtt://a:2"), "ha.advertise is advertised as it is");
	broker_free(&b);
}

int main(void)
{
	char dir[] = "/tmp/wharf-redirect-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	log_set_level(LOG_ERROR);
	ok(broker_init(&b, standby_config(dir)) == 0 && !b.active, "a standby starts, not active");

	test_mqtt(false);
	test_stomp(false);
	test_amqp(false);

	ok(broker_set_redirect(&b, "stomp://10.0.0.1:61613 stomps://10.0.0.1:61614 "
				   "mqtts://10.0.0.1:8883 mqtt://10.0.0.1:1883 bogus://x:1 "
				   "amqp://10.0.0.2:5672 ws://10.0.0.9:8080 mqtt://0.0.0.0:1") == 0,
	   "the active's addresses set");
	test_mqtt(true);
	test_stomp(true);
	test_amqp(true);
	test_ws_mqtt();

	ok(broker_set_redirect(&b, "") == 0, "the active is not known again");
	test_mqtt(false);
	for (int i = 0; i < 300 && b.nconns; i++) {
		event_base_loop(b.base, EVLOOP_NONBLOCK);
		usleep(10000);
	}
	ok(b.nconns == 0, "every connection is gone");

	broker_free(&b);
	test_listen_and_promote(dir);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? tap_done() : 1;
}
