/* A small non-blocking MQTT 3.1, 3.1.1 and 5.0 client: CONNECT, PUBLISH at
 * QoS 0, 1 and 2 in both directions, SUBSCRIBE, PINGREQ, DISCONNECT.
 * Publishes are encoded straight into the connection's output buffer from a
 * prefix computed once per publisher; acknowledgements are appended while a
 * read is parsed and leave in the one write() that follows it. */
#include "config.h"
#include "wb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	CONNECT = 1, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP,
	SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH
};

#define PID_FREE 0
#define PID_WAIT_ACK 1  /* PUBACK (QoS 1) or PUBREC (QoS 2) */
#define PID_WAIT_COMP 2 /* PUBCOMP */

struct mqtt_state {
	int version;
	int qos;
	uint8_t *pid_state;    /* publishers at QoS > 0: one byte per packet id */
	uint16_t next_pid;
	unsigned inflight;
	uint8_t *pre;            /* publishers: PUBLISH fixed header, length and topic */
	size_t pre_len;
	uint64_t pings_sent, pongs;
	uint64_t finish_marker;  /* the PINGRESP that ends a publisher */
	uint32_t max_packet;     /* CONNACK's maximum packet size, 0 = none */
};

static struct mqtt_state *st(const struct wb_client *c)
{
	return c->ps;
}

/* ---- encoding helpers ---------------------------------------------------- */

static size_t varint_put(uint8_t *p, uint32_t v)
{
	size_t n = 0;
	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
	} while (v);
	return n;
}

/* 1 = complete (value, bytes used), 0 = need more bytes, -1 = malformed. */
static int varint_get(const uint8_t *p, size_t len, uint32_t *v, size_t *used)
{
	uint32_t r = 0;
	for (size_t i = 0; i < 4; i++) {
		if (i >= len)
			return 0;
		r |= (uint32_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = r;
			*used = i + 1;
			return 1;
		}
	}
	return -1;
}

static size_t str_put(uint8_t *p, const char *s)
{
	size_t n = strlen(s);
	p[0] = (uint8_t)(n >> 8);
	p[1] = (uint8_t)n;
	memcpy(p + 2, s, n);
	return n + 2;
}

static uint8_t *out(struct wb_client *c, size_t n)
{
	if (!c->conn.open)
		return NULL;
	uint8_t *p = wb_conn_reserve(&c->conn, n);
	if (!p)
		wb_fail(c, "out of memory");
	return p;
}

static void send_short(struct wb_client *c, uint8_t b0, uint16_t pid)
{
	uint8_t *p = out(c, 4);
	if (!p)
		return;
	p[0] = b0;
	p[1] = 2;
	p[2] = (uint8_t)(pid >> 8);
	p[3] = (uint8_t)pid;
	wb_conn_commit(&c->conn, 4);
}

/* Walks MQTT 5 properties; reports the ones a client acts on. */
static int props_walk(struct wb_client *c, const uint8_t *p, size_t len, uint32_t *recv_max,
		      uint32_t *max_packet, char *reason, size_t reason_len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t id = p[i++];
		size_t n;
		uint32_t v;
		switch (id) {
		case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2a:
			n = 1;
			break;
		case 0x13: case 0x21: case 0x22: case 0x23:
			n = 2;
			if (id == 0x21 && i + 2 <= len && recv_max)
				*recv_max = (uint32_t)p[i] << 8 | p[i + 1];
			break;
		case 0x02: case 0x11: case 0x18: case 0x27:
			n = 4;
			if (id == 0x27 && i + 4 <= len && max_packet)
				*max_packet = (uint32_t)p[i] << 24 | (uint32_t)p[i + 1] << 16 |
					      (uint32_t)p[i + 2] << 8 | p[i + 3];
			break;
		case 0x0b:
			if (varint_get(p + i, len - i, &v, &n) != 1)
				return -1;
			break;
		case 0x03: case 0x08: case 0x12: case 0x15: case 0x1a: case 0x1c: case 0x1f:
		case 0x09: case 0x16:
			if (i + 2 > len)
				return -1;
			n = 2 + ((size_t)p[i] << 8 | p[i + 1]);
			if (id == 0x1f && reason && i + n <= len)
				snprintf(reason, reason_len, "%.*s", (int)(n - 2), (const char *)p + i + 2);
			break;
		case 0x26: {
			if (i + 2 > len)
				return -1;
			size_t k = 2 + ((size_t)p[i] << 8 | p[i + 1]);
			if (i + k + 2 > len)
				return -1;
			n = k + 2 + ((size_t)p[i + k] << 8 | p[i + k + 1]);
			break;
		}
		default:
			return -1;
		}
		if (i + n > len)
			return -1;
		i += n;
	}
	return 0;
}

/* ---- lifecycle ----------------------------------------------------------- */

static const char *sub_filter(const struct wb_client *c, char *buf, size_t len)
{
	const struct wb_opts *o = c->run->o;
	if (o->kind == WB_QUEUE)
		snprintf(buf, len, "$share/wharf-bench/%s", o->dest);
	else
		snprintf(buf, len, "%s", o->dest);
	return buf;
}

static int mqtt_init(struct wb_client *c)
{
	const struct wb_opts *o = c->run->o;
	struct mqtt_state *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	c->ps = s;
	s->version = o->mqtt_version;
	s->qos = o->qos;
	s->next_pid = 1;
	if (c->role != WB_PUB)
		return 0;
	c->confirms = o->qos > 0;
	if (c->confirms) {
		s->pid_state = calloc(65536, 1);
		if (!s->pid_state)
			return -1;
	}
	/* fixed header, remaining length, topic: the same for every publish */
	size_t tlen = strlen(o->dest);
	if (tlen > 65535 || !(s->pre = malloc(tlen + 8)))
		return -1;
	uint32_t rl = (uint32_t)(2 + tlen + (o->qos ? 2 : 0) + (s->version == 5 ? 1 : 0) + o->size);
	s->pre[0] = (uint8_t)(0x30 | (o->qos << 1));
	s->pre_len = 1 + varint_put(s->pre + 1, rl);
	s->pre_len += str_put(s->pre + s->pre_len, o->dest);
	return 0;
}

static void mqtt_free(struct wb_client *c)
{
	struct mqtt_state *s = st(c);
	if (s) {
		free(s->pid_state);
		free(s->pre);
	}
	free(s);
	c->ps = NULL;
}

static void mqtt_start(struct wb_client *c)
{
	const struct wb_opts *o = c->run->o;
	struct mqtt_state *s = st(c);
	uint8_t body[1024];
	size_t n = 0;
	if (s->version == 3) {
		n += str_put(body + n, "MQIsdp");
		body[n++] = 3;
	} else {
		n += str_put(body + n, "MQTT");
		body[n++] = (uint8_t)s->version;
	}
	body[n++] = (uint8_t)((o->keep_session ? 0 : 0x02) | (o->has_user ? 0x80 : 0) | (o->has_pass ? 0x40 : 0));
	body[n++] = (uint8_t)(o->keepalive >> 8);
	body[n++] = (uint8_t)o->keepalive;
	if (s->version == 5) {
		if (c->role == WB_SUB && o->prefetch) {
			unsigned rm = o->prefetch > 65535 ? 65535 : o->prefetch;
			body[n++] = 3;
			body[n++] = 0x21;
			body[n++] = (uint8_t)(rm >> 8);
			body[n++] = (uint8_t)rm;
		} else {
			body[n++] = 0;
		}
	}
	n += str_put(body + n, c->id);
	if (o->has_user)
		n += str_put(body + n, o->user);
	if (o->has_pass)
		n += str_put(body + n, o->pass);
	uint8_t *p = out(c, n + 5);
	if (!p)
		return;
	p[0] = CONNECT << 4;
	size_t h = 1 + varint_put(p + 1, (uint32_t)n);
	memcpy(p + h, body, n);
	wb_conn_commit(&c->conn, h + n);
}

static void subscribe(struct wb_client *c)
{
	struct mqtt_state *s = st(c);
	char filter[320];
	sub_filter(c, filter, sizeof filter);
	uint8_t body[400];
	size_t n = 0;
	body[n++] = 0;
	body[n++] = 1; /* packet id 1 */
	if (s->version == 5)
		body[n++] = 0;
	n += str_put(body + n, filter);
	body[n++] = (uint8_t)s->qos;
	uint8_t *p = out(c, n + 5);
	if (!p)
		return;
	p[0] = SUBSCRIBE << 4 | 0x02;
	size_t h = 1 + varint_put(p + 1, (uint32_t)n);
	memcpy(p + h, body, n);
	wb_conn_commit(&c->conn, h + n);
}

static bool mqtt_can_publish(const struct wb_client *c)
{
	const struct mqtt_state *s = st(c);
	return !s->pid_state || s->inflight < 65535;
}

static int mqtt_publish(struct wb_client *c, uint64_t seq, uint64_t ts, bool last)
{
	struct mqtt_state *s = st(c);
	const struct wb_opts *o = c->run->o;
	size_t total = s->pre_len + (s->qos ? 2 : 0) + (s->version == 5 ? 1 : 0) + o->size;
	uint8_t *p = out(c, total);
	if (!p)
		return -1;
	memcpy(p, s->pre, s->pre_len);
	uint8_t *q = p + s->pre_len;
	if (s->qos) {
		uint16_t pid = s->next_pid;
		while (s->pid_state[pid] != PID_FREE)
			pid = (uint16_t)(pid == 65535 ? 1 : pid + 1);
		s->pid_state[pid] = PID_WAIT_ACK;
		s->next_pid = (uint16_t)(pid == 65535 ? 1 : pid + 1);
		s->inflight++;
		*q++ = (uint8_t)(pid >> 8);
		*q++ = (uint8_t)pid;
	}
	if (s->version == 5)
		*q++ = 0;
	wb_payload_build(q, o->size, c->run->run_id, c->index, seq, ts);
	wb_conn_commit(&c->conn, total);
	return 0;
}

static void mqtt_ping(struct wb_client *c)
{
	uint8_t *p = out(c, 2);
	if (!p)
		return;
	p[0] = PINGREQ << 4;
	p[1] = 0;
	wb_conn_commit(&c->conn, 2);
	st(c)->pings_sent++;
}

/* The broker answers a PINGREQ after everything sent before it was read. */
static void mqtt_finish(struct wb_client *c)
{
	mqtt_ping(c);
	st(c)->finish_marker = st(c)->pings_sent;
}

static void mqtt_disconnect(struct wb_client *c)
{
	uint8_t *p = out(c, 2);
	if (!p)
		return;
	p[0] = DISCONNECT << 4;
	p[1] = 0;
	wb_conn_commit(&c->conn, 2);
}

/* ---- input --------------------------------------------------------------- */

static const char *connack_text(int version, uint8_t rc)
{
	if (version < 5) {
		static const char *const t[] = { "accepted", "unacceptable protocol version",
			"identifier rejected", "server unavailable", "bad user name or password",
			"not authorized" };
		return rc < 6 ? t[rc] : "unknown";
	}
	switch (rc) {
	case 0x84: return "unsupported protocol version";
	case 0x85: return "client identifier not valid";
	case 0x86: return "bad user name or password";
	case 0x87: return "not authorized";
	case 0x88: return "server unavailable";
	case 0x89: return "server busy";
	case 0x97: return "quota exceeded";
	default: return "refused";
	}
}

static void on_connack(struct wb_client *c, const uint8_t *b, size_t rl)
{
	struct mqtt_state *s = st(c);
	if (rl < 2) {
		wb_fail(c, "malformed CONNACK");
		return;
	}
	if (b[1]) {
		wb_fail(c, "CONNACK: 0x%02x %s", b[1], connack_text(s->version, b[1]));
		return;
	}
	if (s->version == 5 && rl > 2) {
		uint32_t plen, rm = 0;
		size_t used;
		if (varint_get(b + 2, rl - 2, &plen, &used) != 1 || 2 + used + plen > rl ||
		    props_walk(c, b + 2 + used, plen, &rm, &s->max_packet, NULL, 0) < 0) {
			wb_fail(c, "malformed CONNACK properties");
			return;
		}
		if (rm && c->role == WB_PUB && c->confirms)
			wb_on_window(c, rm);
		size_t publish_len = s->pre_len + 3 + c->run->o->size;
		if (c->role == WB_PUB && s->max_packet && publish_len > s->max_packet) {
			wb_fail(c, "the broker's maximum packet size (%u) is below a publish (%zu)",
				s->max_packet, publish_len);
			return;
		}
	}
	if (c->role == WB_SUB)
		subscribe(c);
	else
		wb_on_ready(c);
}

static void on_publish(struct wb_client *c, uint8_t flags, const uint8_t *b, size_t rl)
{
	struct mqtt_state *s = st(c);
	int qos = (flags >> 1) & 3;
	size_t pos = 2;
	uint16_t pid = 0;
	if (rl < 2 || qos == 3)
		goto bad;
	pos += (size_t)b[0] << 8 | b[1];
	if (qos) {
		if (pos + 2 > rl)
			goto bad;
		pid = (uint16_t)(b[pos] << 8 | b[pos + 1]);
		pos += 2;
	}
	if (s->version == 5) {
		uint32_t plen;
		size_t used;
		if (pos > rl || varint_get(b + pos, rl - pos, &plen, &used) != 1)
			goto bad;
		pos += used + plen;
	}
	if (pos > rl)
		goto bad;
	c->redelivered = flags & 0x08; /* DUP */
	wb_on_message(c, b + pos, rl - pos);
	if (qos == 1)
		send_short(c, PUBACK << 4, pid);
	else if (qos == 2)
		send_short(c, PUBREC << 4, pid);
	return;
bad:
	wb_fail(c, "malformed PUBLISH");
}

static void on_ack(struct wb_client *c, int type, const uint8_t *b, size_t rl)
{
	struct mqtt_state *s = st(c);
	if (rl < 2) {
		wb_fail(c, "malformed acknowledgement");
		return;
	}
	uint16_t pid = (uint16_t)(b[0] << 8 | b[1]);
	uint8_t reason = rl > 2 ? b[2] : 0;
	if (type == PUBREL) { /* we receive at QoS 2 */
		send_short(c, PUBCOMP << 4, pid);
		return;
	}
	uint8_t want = type == PUBCOMP ? PID_WAIT_COMP : PID_WAIT_ACK;
	if (!s->pid_state || !pid || s->pid_state[pid] != want ||
	    (type == PUBACK && s->qos != 1) || (type == PUBREC && s->qos != 2)) {
		wb_fail(c, "unexpected %s for packet id %u",
			type == PUBACK ? "PUBACK" : type == PUBREC ? "PUBREC" : "PUBCOMP", pid);
		return;
	}
	if (type == PUBREC && reason < 0x80) {
		s->pid_state[pid] = PID_WAIT_COMP;
		send_short(c, PUBREL << 4 | 0x02, pid);
		return;
	}
	s->pid_state[pid] = PID_FREE;
	s->inflight--;
	wb_on_confirm(c, 1, reason >= 0x80);
}

static void on_suback(struct wb_client *c, const uint8_t *b, size_t rl)
{
	struct mqtt_state *s = st(c);
	size_t pos = 2;
	if (rl < 3)
		goto bad;
	if (s->version == 5) {
		uint32_t plen;
		size_t used;
		if (varint_get(b + 2, rl - 2, &plen, &used) != 1)
			goto bad;
		pos += used + plen;
	}
	if (pos >= rl)
		goto bad;
	if (b[pos] >= 0x80) {
		wb_fail(c, "subscription refused (0x%02x)", b[pos]);
		return;
	}
	if ((int)b[pos] < s->qos)
		wb_warn(c, "subscription granted at QoS %d only", b[pos]);
	wb_on_ready(c);
	return;
bad:
	wb_fail(c, "malformed SUBACK");
}

static void on_disconnect(struct wb_client *c, const uint8_t *b, size_t rl)
{
	char reason[256] = "";
	uint8_t code = rl ? b[0] : 0;
	if (rl > 1) {
		uint32_t plen;
		size_t used;
		if (varint_get(b + 1, rl - 1, &plen, &used) == 1 && 1 + used + plen <= rl)
			props_walk(c, b + 1 + used, plen, NULL, NULL, reason, sizeof reason);
	}
	wb_fail(c, "the broker sent DISCONNECT 0x%02x%s%s", code, *reason ? ": " : "", reason);
}

static size_t mqtt_input(struct wb_client *c, const uint8_t *data, size_t len)
{
	struct mqtt_state *s = st(c);
	size_t pos = 0;
	while (pos < len && c->conn.open) {
		uint32_t rl;
		size_t used;
		if (len - pos < 2)
			break;
		int r = varint_get(data + pos + 1, len - pos - 1, &rl, &used);
		if (r == 0)
			break;
		if (r < 0) {
			wb_fail(c, "malformed remaining length");
			break;
		}
		size_t h = 1 + used;
		if (len - pos - h < rl)
			break;
		uint8_t b0 = data[pos];
		const uint8_t *b = data + pos + h;
		pos += h + rl;
		switch (b0 >> 4) {
		case CONNACK:
			on_connack(c, b, rl);
			break;
		case PUBLISH:
			on_publish(c, b0 & 0x0f, b, rl);
			break;
		case PUBACK:
		case PUBREC:
		case PUBREL:
		case PUBCOMP:
			on_ack(c, b0 >> 4, b, rl);
			break;
		case SUBACK:
			on_suback(c, b, rl);
			break;
		case PINGRESP:
			s->pongs++;
			if (s->finish_marker && s->pongs == s->finish_marker)
				wb_on_finished(c);
			break;
		case DISCONNECT:
			on_disconnect(c, b, rl);
			break;
		default:
			wb_fail(c, "unexpected packet type %d", b0 >> 4);
			break;
		}
	}
	return pos;
}

const struct wb_proto wb_mqtt = {
	.name = "mqtt",
	.default_port = 1883,
	.init = mqtt_init,
	.free = mqtt_free,
	.start = mqtt_start,
	.input = mqtt_input,
	.can_publish = mqtt_can_publish,
	.publish = mqtt_publish,
	.finish = mqtt_finish,
	.ping = mqtt_ping,
	.disconnect = mqtt_disconnect,
};
