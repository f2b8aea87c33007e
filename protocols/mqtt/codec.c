/* MQTT decoder: bytes to struct mqtt_packet, zero-copy, no allocation.
 *
 * What the receiver must refuse, and the reason code given (MQTT 5 terms;
 * before 5.0 the session just closes, except for the CONNACK return codes):
 *
 * fixed header
 *   packet type 0, or 15 (AUTH) before 5.0 ................... 0x81
 *   a first packet other than CONNECT, or a second CONNECT ..... 0x82
 *   a packet of the other side (CONNACK from a client, ...) .... 0x82
 *   reserved flags not as the spec lists them (PUBREL,
 *   SUBSCRIBE, UNSUBSCRIBE 0010, others 0000) ................. 0x81
 *     (not checked at level 3: MQTT 3.1 defined no reserved flags and
 *     its clients set DUP and QoS on these packets)
 *   PUBLISH QoS 3 .............................................. 0x81
 *   PUBLISH QoS 0 with DUP ..................................... 0x82
 *     (the spec says only "MUST be 0"; the packet parses, so by 4.13's
 *     definitions this is a protocol error rather than malformed)
 *   remaining length over 4 bytes, or not minimally encoded .... 0x81
 *   packet over max_packet_size, told from the fixed header .... 0x95
 * every packet
 *   a length past the end of the packet, trailing bytes ........ 0x81
 *   a UTF-8 string not well-formed or holding U+0000 ........... 0x81
 *   packet identifier 0 on PUBLISH QoS>0, (UN)SUBSCRIBE ........ 0x82
 *   unknown property ........................................... 0x81
 *   property not allowed in the packet, given twice, or with a
 *   value the spec forbids (receive maximum 0, ...) ............ 0x82
 *   reason code not defined for the packet ..................... 0x82
 * CONNECT
 *   protocol name/level other than MQTT 4|5 or MQIsdp 3 ........ 0x84
 *   reserved flag; will QoS/retain without will; will QoS 3;
 *   password without user name (before 5.0) ................... 0x81
 *   will topic empty or with wildcards ......................... 0x90
 *   empty client id at 3.1, or at 3.1.1 without clean session .. 0x85
 * PUBLISH
 *   '+' or '#' in the topic name ............................... 0x90
 *   topic alias 0 .............................................. 0x94
 *   empty topic name without a topic alias ..................... 0x82
 *   subscription identifier from a client ...................... 0x82
 *   response topic empty or with wildcards ..................... 0x82
 * SUBSCRIBE / UNSUBSCRIBE
 *   no topic filter ............................................ 0x82
 *   reserved subscription option bits .......................... 0x81
 *   QoS 3: 0x81 before 5.0, 0x82 at 5.0; retain handling 3 ..... 0x82
 *   no local on a shared subscription .......................... 0x82
 *   a filter that is not valid (see mqtt_topic_filter_valid(),
 *   and a bad "$share/") is NOT a packet error: it is reported per
 *   filter with reason 0x8F for the session's SUBACK / UNSUBACK.
 *
 * Left to the session: topic alias over the maximum it announced, receive
 * maximum, authentication exchanges, payload format 1 with a payload that is
 * not UTF-8 (mqtt_utf8_valid() is there for it), client id characters and
 * length (any UTF-8 is accepted), the control characters and non-characters
 * the spec only discourages. */
#include "config.h"
#include "protocols/mqtt/codec.h"

#include <string.h>

#include "protocols/mqtt/props.h"

static bool fail(struct mqtt_error *err, uint8_t reason, const char *why)
{
	err->reason = reason;
	err->why = why;
	return false;
}

#define MALFORMED(why) fail(err, MQTT_RC_MALFORMED, why)
#define PROTOCOL(why) fail(err, MQTT_RC_PROTOCOL_ERROR, why)

static bool get_str(struct mqtt_rd *r, struct mqtt_str *s, struct mqtt_error *err)
{
	if (!mqtt_rd_bin(r, s))
		return MALFORMED("string past the end of the packet");
	if (!mqtt_utf8_valid(s->p, s->len))
		return MALFORMED("invalid UTF-8 string");
	return true;
}

static bool get_bin(struct mqtt_rd *r, struct mqtt_str *s, struct mqtt_error *err)
{
	if (!mqtt_rd_bin(r, s))
		return MALFORMED("binary field past the end of the packet");
	return true;
}

static bool get_id(struct mqtt_rd *r, uint16_t *id, bool nonzero, struct mqtt_error *err)
{
	if (!mqtt_rd_u16(r, id))
		return MALFORMED("packet identifier past the end of the packet");
	if (nonzero && *id == 0)
		return PROTOCOL("packet identifier 0");
	return true;
}

static bool end(const struct mqtt_rd *r, struct mqtt_error *err)
{
	if (mqtt_rd_left(r))
		return MALFORMED("trailing bytes after the last field");
	return true;
}

static bool check_first_byte(uint8_t b, const struct mqtt_decode_opts *o, struct mqtt_error *err)
{
	unsigned type = b >> 4, flags = b & 0x0F;
	err->type = (uint8_t)type;
	if (type == 0)
		return MALFORMED("reserved packet type 0");
	if (o->level == MQTT_LEVEL_NONE && type != MQTT_CONNECT)
		return PROTOCOL("first packet is not CONNECT");
	if (o->level != MQTT_LEVEL_NONE && type == MQTT_CONNECT)
		return PROTOCOL("second CONNECT");
	if (type == MQTT_AUTH && o->level < MQTT_V5)
		return MALFORMED("reserved packet type 15 before MQTT 5");
	bool server_only = type == MQTT_CONNACK || type == MQTT_SUBACK || type == MQTT_UNSUBACK ||
			   type == MQTT_PINGRESP;
	bool client_only = type == MQTT_CONNECT || type == MQTT_SUBSCRIBE ||
			   type == MQTT_UNSUBSCRIBE || type == MQTT_PINGREQ;
	if (o->from_server ? client_only : server_only)
		return PROTOCOL("packet sent in the wrong direction");
	if (type == MQTT_PUBLISH) {
		unsigned qos = (flags >> 1) & 3;
		if (qos == 3)
			return MALFORMED("PUBLISH with QoS 3");
		if (qos == 0 && (flags & 8))
			return PROTOCOL("DUP set on a QoS 0 PUBLISH");
		return true;
	}
	if (o->level == MQTT_V31)
		return true;
	unsigned want = (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE)
				? 2 : 0;
	if (flags != want)
		return MALFORMED("reserved fixed header flags");
	return true;
}

static bool dec_connect(struct mqtt_rd *r, struct mqtt_packet *out, struct mqtt_error *err)
{
	struct mqtt_connect *c = &out->connect;
	uint8_t level, flags;
	if (!mqtt_rd_bin(r, &c->protocol_name) || !mqtt_rd_u8(r, &level))
		return MALFORMED("CONNECT too short");
	err->level = level;
	struct mqtt_str name = c->protocol_name;
	bool mqtt = name.len == 4 && memcmp(name.p, "MQTT", 4) == 0;
	bool isdp = name.len == 6 && memcmp(name.p, "MQIsdp", 6) == 0;
	if (!((mqtt && (level == MQTT_V311 || level == MQTT_V5)) || (isdp && level == MQTT_V31)))
		return fail(err, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION,
			    "unsupported protocol name or level");
	c->level = level;
	if (!mqtt_rd_u8(r, &flags) || !mqtt_rd_u16(r, &c->keep_alive))
		return MALFORMED("CONNECT too short");
	if (flags & 0x01)
		return MALFORMED("reserved CONNECT flag set");
	c->clean_start = flags & 0x02;
	c->will = flags & 0x04;
	c->will_qos = (flags >> 3) & 3;
	c->will_retain = flags & 0x20;
	c->has_password = flags & 0x40;
	c->has_username = flags & 0x80;
	if (!c->will && (c->will_qos || c->will_retain))
		return MALFORMED("will QoS or retain without a will");
	if (c->will_qos == 3)
		return MALFORMED("will QoS 3");
	if (level < MQTT_V5 && c->has_password && !c->has_username)
		return MALFORMED("password without user name");
	if (level == MQTT_V5 && !mqtt_props_decode(r, MQTT_CONNECT, &out->props, err))
		return false;
	if (!get_str(r, &c->client_id, err))
		return false;
	if (c->will) {
		if (level == MQTT_V5 && !mqtt_props_decode(r, MQTT_CTX_WILL, &c->will_props, err))
			return false;
		if (!get_str(r, &c->will_topic, err) || !get_bin(r, &c->will_payload, err))
			return false;
		if (!mqtt_topic_name_valid(c->will_topic.p, c->will_topic.len))
			return fail(err, MQTT_RC_TOPIC_NAME_INVALID, "invalid will topic");
	}
	if (c->has_username && !get_str(r, &c->username, err))
		return false;
	if (c->has_password && !get_bin(r, &c->password, err))
		return false;
	if (!end(r, err))
		return false;
	if (c->client_id.len == 0 &&
	    (level == MQTT_V31 || (level == MQTT_V311 && !c->clean_start)))
		return fail(err, MQTT_RC_CLIENT_ID_NOT_VALID, "empty client identifier");
	return true;
}

static bool dec_connack(struct mqtt_rd *r, uint8_t level, struct mqtt_packet *out,
			struct mqtt_error *err)
{
	uint8_t flags;
	if (!mqtt_rd_u8(r, &flags) || !mqtt_rd_u8(r, &out->reason))
		return MALFORMED("CONNACK too short");
	if (level != MQTT_V31) {
		if (flags & 0xFE)
			return MALFORMED("reserved CONNACK flags");
		out->connack.session_present = flags & 1;
	}
	if (!mqtt_reason_valid(MQTT_CONNACK, level, out->reason))
		return PROTOCOL("unknown CONNACK reason code");
	if (out->connack.session_present && out->reason)
		return PROTOCOL("session present with a failure code");
	if (level == MQTT_V5 && !mqtt_props_decode(r, MQTT_CONNACK, &out->props, err))
		return false;
	return end(r, err);
}

static bool dec_publish(struct mqtt_rd *r, uint8_t level, bool from_server,
			struct mqtt_packet *out, struct mqtt_error *err)
{
	struct mqtt_publish *p = &out->publish;
	p->qos = (out->flags >> 1) & 3;
	p->dup = out->flags & 8;
	p->retain = out->flags & 1;
	if (!get_str(r, &p->topic, err))
		return false;
	if (p->topic.len && !mqtt_topic_name_valid(p->topic.p, p->topic.len))
		return fail(err, MQTT_RC_TOPIC_NAME_INVALID, "wildcard in topic name");
	if (p->qos && !get_id(r, &out->packet_id, true, err))
		return false;
	if (level == MQTT_V5 && !mqtt_props_decode(r, MQTT_PUBLISH, &out->props, err))
		return false;
	if (p->topic.len == 0 && !mqtt_has(&out->props, MQTT_PROP_TOPIC_ALIAS))
		return PROTOCOL("empty topic name without a topic alias");
	if (!from_server && out->props.n_sub_ids)
		return PROTOCOL("subscription identifier in a PUBLISH from a client");
	p->payload.p = (const char *)r->p;
	p->payload.len = (uint32_t)mqtt_rd_left(r);
	r->p = r->end;
	return true;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
static bool dec_ack(struct mqtt_rd *r, uint8_t level, struct mqtt_packet *out,
		    struct mqtt_error *err)
{
	if (!get_id(r, &out->packet_id, false, err))
		return false;
	if (level == MQTT_V5 && mqtt_rd_left(r)) {
		mqtt_rd_u8(r, &out->reason);
		if (!mqtt_reason_valid(out->type, level, out->reason))
			return PROTOCOL("reason code not defined for this packet");
		if (mqtt_rd_left(r) && !mqtt_props_decode(r, out->type, &out->props, err))
			return false;
	}
	return end(r, err);
}

/* DISCONNECT and AUTH at 5.0: both may stop after the reason, or omit it. */
static bool dec_reason_props(struct mqtt_rd *r, uint8_t level, struct mqtt_packet *out,
			     struct mqtt_error *err)
{
	if (level == MQTT_V5 && mqtt_rd_left(r)) {
		mqtt_rd_u8(r, &out->reason);
		if (!mqtt_reason_valid(out->type, level, out->reason))
			return PROTOCOL("reason code not defined for this packet");
		if (mqtt_rd_left(r) && !mqtt_props_decode(r, out->type, &out->props, err))
			return false;
	}
	return end(r, err);
}

static void set_options(struct mqtt_topic_filter *t, uint8_t opt)
{
	t->qos = opt & 3;
	t->no_local = opt & 4;
	t->retain_as_published = opt & 8;
	t->retain_handling = (opt >> 4) & 3;
}

/* Fill share, topic and reason from t->filter. */
static void classify(struct mqtt_topic_filter *t)
{
	struct mqtt_str share, topic;
	int s = mqtt_share_split(t->filter, &share, &topic);
	t->share.p = NULL;
	t->share.len = 0;
	t->topic = t->filter;
	t->reason = MQTT_RC_SUCCESS;
	if (s > 0) {
		t->share = share;
		t->topic = topic;
	}
	if (s < 0 || !mqtt_topic_filter_valid(t->topic.p, t->topic.len))
		t->reason = MQTT_RC_TOPIC_FILTER_INVALID;
}

/* SUBSCRIBE and UNSUBSCRIBE. */
static bool dec_subscribe(struct mqtt_rd *r, uint8_t level, struct mqtt_packet *out,
			  struct mqtt_error *err)
{
	bool sub = out->type == MQTT_SUBSCRIBE;
	struct mqtt_subscribe *s = &out->subscribe;
	if (!get_id(r, &out->packet_id, true, err))
		return false;
	if (level == MQTT_V5 && !mqtt_props_decode(r, out->type, &out->props, err))
		return false;
	if (!mqtt_rd_left(r))
		return PROTOCOL("no topic filter");
	s->raw.p = (const char *)r->p;
	s->raw.len = (uint32_t)mqtt_rd_left(r);
	while (mqtt_rd_left(r)) {
		struct mqtt_topic_filter t;
		memset(&t, 0, sizeof(t));
		if (!get_str(r, &t.filter, err))
			return false;
		if (sub) {
			uint8_t opt;
			if (!mqtt_rd_u8(r, &opt))
				return MALFORMED("subscription options past the end of the packet");
			if (level < MQTT_V5 && (opt & 0xFC))
				return MALFORMED("reserved bits in requested QoS");
			if (level < MQTT_V5 && (opt & 3) == 3)
				return MALFORMED("subscription with QoS 3");
			if (opt & 0xC0)
				return MALFORMED("reserved subscription option bits");
			if ((opt & 3) == 3)
				return PROTOCOL("subscription with QoS 3");
			if (((opt >> 4) & 3) == 3)
				return PROTOCOL("retain handling 3");
			set_options(&t, opt);
		}
		classify(&t);
		if (t.no_local && t.share.p && t.reason == MQTT_RC_SUCCESS)
			return PROTOCOL("no local on a shared subscription");
		s->count++;
		if (t.reason != MQTT_RC_SUCCESS)
			s->n_invalid++;
	}
	return true;
}

/* SUBACK and UNSUBACK. */
static bool dec_suback(struct mqtt_rd *r, uint8_t level, struct mqtt_packet *out,
		       struct mqtt_error *err)
{
	if (!get_id(r, &out->packet_id, false, err))
		return false;
	if (out->type == MQTT_UNSUBACK && level < MQTT_V5)
		return end(r, err);
	if (level == MQTT_V5 && !mqtt_props_decode(r, out->type, &out->props, err))
		return false;
	if (!mqtt_rd_left(r))
		return PROTOCOL("no reason code");
	out->suback.codes = r->p;
	out->suback.count = (uint32_t)mqtt_rd_left(r);
	for (uint32_t i = 0; i < out->suback.count; i++)
		if (!mqtt_reason_valid(out->type, level, r->p[i]))
			return PROTOCOL("reason code not defined for this packet");
	r->p = r->end;
	return true;
}

static bool bad_opts(const struct mqtt_decode_opts *o)
{
	if (o->level == MQTT_LEVEL_NONE)
		return o->from_server;
	return o->level < MQTT_V31 || o->level > MQTT_V5;
}

enum mqtt_decode_status mqtt_decode(const uint8_t *buf, size_t len,
				    const struct mqtt_decode_opts *opts, struct mqtt_packet *out,
				    size_t *consumed, size_t *need, struct mqtt_error *err)
{
	*consumed = 0;
	*need = 0;
	memset(err, 0, sizeof(*err));
	memset(out, 0, sizeof(*out));
	if (bad_opts(opts)) {
		fail(err, MQTT_RC_UNSPECIFIED, "bad decoder options");
		return MQTT_DECODE_ERROR;
	}
	if (len == 0) {
		*need = 1;
		return MQTT_DECODE_NEED_MORE;
	}
	if (!check_first_byte(buf[0], opts, err))
		return MQTT_DECODE_ERROR;

	uint32_t rem;
	size_t vn;
	int s = mqtt_varint_scan(buf + 1, len - 1, &rem, &vn);
	if (s < 0) {
		MALFORMED("bad remaining length");
		return MQTT_DECODE_ERROR;
	}
	if (s == 0) {
		*need = len + 1;
		return MQTT_DECODE_NEED_MORE;
	}
	size_t total = 1 + vn + (size_t)rem;
	uint32_t max = opts->max_packet_size ? opts->max_packet_size : MQTT_MAX_PACKET_SIZE;
	if (total > max) {
		fail(err, MQTT_RC_PACKET_TOO_LARGE, "packet over the maximum packet size");
		return MQTT_DECODE_ERROR;
	}
	if (len < total) {
		*need = total;
		return MQTT_DECODE_NEED_MORE;
	}

	out->type = (enum mqtt_type)(buf[0] >> 4);
	out->flags = buf[0] & 0x0F;
	out->size = (uint32_t)total;
	struct mqtt_rd r = { buf + 1 + vn, buf + total };
	uint8_t level = opts->level;
	bool ok;
	switch (out->type) {
	case MQTT_CONNECT: ok = dec_connect(&r, out, err); break;
	case MQTT_CONNACK: ok = dec_connack(&r, level, out, err); break;
	case MQTT_PUBLISH: ok = dec_publish(&r, level, opts->from_server, out, err); break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: ok = dec_ack(&r, level, out, err); break;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: ok = dec_subscribe(&r, level, out, err); break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: ok = dec_suback(&r, level, out, err); break;
	case MQTT_PINGREQ:
	case MQTT_PINGRESP: ok = end(&r, err); break;
	case MQTT_DISCONNECT:
	case MQTT_AUTH: ok = dec_reason_props(&r, level, out, err); break;
	default: ok = MALFORMED("reserved packet type"); break;
	}
	if (!ok)
		return MQTT_DECODE_ERROR;
	*consumed = total;
	return MQTT_DECODE_PACKET;
}

void mqtt_filters_begin(struct mqtt_filter_iter *it, const struct mqtt_packet *pkt)
{
	memset(it, 0, sizeof(*it));
	if (pkt->type != MQTT_SUBSCRIBE && pkt->type != MQTT_UNSUBSCRIBE)
		return;
	it->options = pkt->type == MQTT_SUBSCRIBE;
	it->n = pkt->subscribe.count;
	it->arr = pkt->subscribe.filters;
	if (!it->arr && pkt->subscribe.raw.p) {
		it->p = (const uint8_t *)pkt->subscribe.raw.p;
		it->end = it->p + pkt->subscribe.raw.len;
	}
}

bool mqtt_filters_next(struct mqtt_filter_iter *it, struct mqtt_topic_filter *out)
{
	if (it->i >= it->n)
		return false;
	if (it->arr) {
		*out = it->arr[it->i++];
		classify(out);
		return true;
	}
	memset(out, 0, sizeof(*out));
	struct mqtt_rd r = { it->p, it->end };
	if (!it->p || !mqtt_rd_bin(&r, &out->filter))
		return false;
	if (it->options) {
		uint8_t opt;
		if (!mqtt_rd_u8(&r, &opt))
			return false;
		set_options(out, opt);
	}
	it->p = r.p;
	it->i++;
	classify(out);
	return true;
}
