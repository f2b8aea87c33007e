/* MQTT encoder: struct mqtt_packet to bytes. Each packet is built in two
 * passes over the same code: one that only counts (and validates), so the
 * size is known and checked against the peer's maximum before a byte is
 * written, then one into space reserved at once, so an encoder appends a
 * whole packet or nothing. What the encoder accepts, the decoder accepts. */
#include "config.h"
#include "protocols/mqtt/codec.h"

#include <string.h>

#include "protocols/mqtt/props.h"

#define TRY(x)                                                                 \
	do {                                                                   \
		int try_rc_ = (x);                                             \
		if (try_rc_ != MQTT_ENCODE_OK)                                 \
			return try_rc_;                                        \
	} while (0)
#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			return MQTT_ENCODE_INVALID;                            \
	} while (0)

static uint8_t first_byte(const struct mqtt_packet *p)
{
	uint8_t b = (uint8_t)(p->type << 4);
	if (p->type == MQTT_PUBLISH)
		b |= (uint8_t)((p->publish.dup << 3) | (p->publish.qos << 1) | p->publish.retain);
	else if (p->type == MQTT_PUBREL || p->type == MQTT_SUBSCRIBE ||
		 p->type == MQTT_UNSUBSCRIBE)
		b |= 2;
	return b;
}

static int emit_connect(struct mqtt_wr *w, uint8_t level, const struct mqtt_packet *p)
{
	const struct mqtt_connect *c = &p->connect;
	CHECK(c->will_qos <= 2 && (c->will || (!c->will_qos && !c->will_retain)));
	CHECK(level == MQTT_V5 || c->has_username || !c->has_password);
	CHECK(c->client_id.len || (level != MQTT_V31 && (level != MQTT_V311 || c->clean_start)));
	struct mqtt_str name = { level == MQTT_V31 ? "MQIsdp" : "MQTT", level == MQTT_V31 ? 6 : 4 };
	mqtt_put_str(w, name);
	mqtt_put_u8(w, level);
	mqtt_put_u8(w, (uint8_t)((c->has_username << 7) | (c->has_password << 6) |
				 (c->will_retain << 5) | (c->will_qos << 3) | (c->will << 2) |
				 (c->clean_start << 1)));
	mqtt_put_u16(w, c->keep_alive);
	if (level == MQTT_V5)
		TRY(mqtt_props_emit(w, MQTT_CONNECT, &p->props));
	CHECK(mqtt_put_str(w, c->client_id));
	if (c->will) {
		if (level == MQTT_V5)
			TRY(mqtt_props_emit(w, MQTT_CTX_WILL, &c->will_props));
		CHECK(mqtt_topic_name_valid(c->will_topic.p, c->will_topic.len));
		CHECK(mqtt_put_str(w, c->will_topic) && mqtt_put_bin(w, c->will_payload));
	}
	if (c->has_username)
		CHECK(mqtt_put_str(w, c->username));
	if (c->has_password)
		CHECK(mqtt_put_bin(w, c->password));
	return MQTT_ENCODE_OK;
}

static int emit_publish(struct mqtt_wr *w, uint8_t level, const struct mqtt_packet *p)
{
	const struct mqtt_publish *pub = &p->publish;
	CHECK(pub->qos <= 2 && (pub->qos || !pub->dup));
	if (pub->topic.len == 0)
		CHECK(level == MQTT_V5 && mqtt_has(&p->props, MQTT_PROP_TOPIC_ALIAS));
	else
		CHECK(mqtt_topic_name_valid(pub->topic.p, pub->topic.len));
	CHECK(mqtt_put_str(w, pub->topic));
	if (pub->qos) {
		CHECK(p->packet_id != 0);
		mqtt_put_u16(w, p->packet_id);
	}
	if (level == MQTT_V5)
		TRY(mqtt_props_emit(w, MQTT_PUBLISH, &p->props));
	return MQTT_ENCODE_OK; /* the payload is the caller's */
}

/* The 5.0 tail of PUBACK..PUBCOMP, DISCONNECT and AUTH: nothing when the
 * reason is 0 and there are no properties, else the reason, then the
 * property block if there are properties (AUTH: always, as its spec has no
 * short form with a reason alone). */
static int emit_reason_props(struct mqtt_wr *w, unsigned type, uint8_t reason,
			     const struct mqtt_props *props)
{
	CHECK(mqtt_reason_valid(type, MQTT_V5, reason));
	struct mqtt_wr c = { NULL, 0 };
	TRY(mqtt_props_emit(&c, type, props));
	bool empty = c.n == 1; /* the zero property length alone */
	if (reason == MQTT_RC_SUCCESS && empty)
		return MQTT_ENCODE_OK;
	mqtt_put_u8(w, reason);
	if (!empty || type == MQTT_AUTH)
		TRY(mqtt_props_emit(w, type, props));
	return MQTT_ENCODE_OK;
}

static int emit_subscribe(struct mqtt_wr *w, uint8_t level, const struct mqtt_packet *p)
{
	CHECK(p->packet_id != 0 && p->subscribe.count > 0);
	mqtt_put_u16(w, p->packet_id);
	if (level == MQTT_V5)
		TRY(mqtt_props_emit(w, p->type, &p->props));
	struct mqtt_filter_iter it;
	struct mqtt_topic_filter t;
	uint32_t got = 0;
	mqtt_filters_begin(&it, p);
	while (mqtt_filters_next(&it, &t)) {
		CHECK(mqtt_put_str(w, t.filter));
		if (p->type == MQTT_SUBSCRIBE) {
			CHECK(t.qos <= 2 && t.retain_handling <= 2);
			if (level < MQTT_V5)
				CHECK(!t.no_local && !t.retain_as_published && !t.retain_handling);
			else
				CHECK(!(t.no_local && t.share.p && t.reason == MQTT_RC_SUCCESS));
			mqtt_put_u8(w, (uint8_t)(t.qos | (t.no_local << 2) |
						 (t.retain_as_published << 3) |
						 (t.retain_handling << 4)));
		}
		got++;
		if (w->n > MQTT_MAX_PACKET_SIZE)
			return MQTT_ENCODE_TOO_LARGE;
	}
	CHECK(got == p->subscribe.count);
	return MQTT_ENCODE_OK;
}

static int emit_suback(struct mqtt_wr *w, uint8_t level, const struct mqtt_packet *p)
{
	mqtt_put_u16(w, p->packet_id);
	if (p->type == MQTT_UNSUBACK && level < MQTT_V5)
		return MQTT_ENCODE_OK;
	if (level == MQTT_V5)
		TRY(mqtt_props_emit(w, p->type, &p->props));
	CHECK(p->suback.count > 0 && p->suback.codes);
	if (p->suback.count > MQTT_MAX_REMAINING)
		return MQTT_ENCODE_TOO_LARGE;
	for (uint32_t i = 0; i < p->suback.count; i++)
		CHECK(mqtt_reason_valid(p->type, level, p->suback.codes[i]));
	mqtt_put(w, p->suback.codes, p->suback.count);
	return MQTT_ENCODE_OK;
}

/* Everything after the fixed header except a PUBLISH payload. */
static int emit_body(struct mqtt_wr *w, uint8_t level, const struct mqtt_packet *p)
{
	switch (p->type) {
	case MQTT_CONNECT: return emit_connect(w, level, p);
	case MQTT_CONNACK:
		CHECK(mqtt_reason_valid(MQTT_CONNACK, level, p->reason));
		CHECK(!(p->connack.session_present && p->reason));
		mqtt_put_u8(w, level == MQTT_V31 ? 0 : p->connack.session_present);
		mqtt_put_u8(w, p->reason);
		if (level == MQTT_V5)
			TRY(mqtt_props_emit(w, MQTT_CONNACK, &p->props));
		return MQTT_ENCODE_OK;
	case MQTT_PUBLISH: return emit_publish(w, level, p);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		mqtt_put_u16(w, p->packet_id);
		if (level == MQTT_V5)
			return emit_reason_props(w, p->type, p->reason, &p->props);
		return MQTT_ENCODE_OK;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: return emit_subscribe(w, level, p);
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: return emit_suback(w, level, p);
	case MQTT_PINGREQ:
	case MQTT_PINGRESP: return MQTT_ENCODE_OK;
	case MQTT_DISCONNECT:
		if (level == MQTT_V5)
			return emit_reason_props(w, p->type, p->reason, &p->props);
		return MQTT_ENCODE_OK;
	case MQTT_AUTH:
		CHECK(level == MQTT_V5);
		return emit_reason_props(w, p->type, p->reason, &p->props);
	default: return MQTT_ENCODE_INVALID;
	}
}

/* Size the packet into *size; then, if out is given, append it (the
 * payload too when with_payload). */
static int encode(struct buf *out, uint8_t level, const struct mqtt_packet *p, uint32_t max,
		  bool with_payload, size_t *size)
{
	if (level < MQTT_V31 || level > MQTT_V5)
		return MQTT_ENCODE_INVALID;
	struct mqtt_wr c = { NULL, 0 };
	TRY(emit_body(&c, level, p));
	uint32_t plen = p->type == MQTT_PUBLISH ? p->publish.payload.len : 0;
	if (c.n > MQTT_MAX_REMAINING || plen > MQTT_MAX_REMAINING - c.n)
		return MQTT_ENCODE_TOO_LARGE;
	uint32_t rem = (uint32_t)c.n + plen;
	size_t total = 1 + mqtt_varint_len(rem) + rem;
	*size = total;
	if (max && total > max)
		return MQTT_ENCODE_TOO_LARGE;
	if (!out)
		return MQTT_ENCODE_OK;
	if (with_payload && plen && !p->publish.payload.p)
		return MQTT_ENCODE_INVALID;
	size_t wlen = with_payload ? total : total - plen;
	if (buf_reserve(out, wlen) < 0)
		return MQTT_ENCODE_NOMEM;
	struct mqtt_wr w = { (uint8_t *)out->data + out->len, 0 };
	mqtt_put_u8(&w, first_byte(p));
	mqtt_put_varint(&w, rem);
	emit_body(&w, level, p); /* validated by the counting pass */
	if (with_payload)
		mqtt_put(&w, p->publish.payload.p, plen);
	out->len += w.n;
	out->data[out->len] = '\0';
	return MQTT_ENCODE_OK;
}

size_t mqtt_encoded_size(uint8_t level, const struct mqtt_packet *p)
{
	size_t n = 0;
	return encode(NULL, level, p, 0, true, &n) == MQTT_ENCODE_OK ? n : 0;
}

int mqtt_encode(struct buf *out, uint8_t level, const struct mqtt_packet *p,
		uint32_t max_packet_size)
{
	size_t n;
	return encode(out, level, p, max_packet_size, true, &n);
}

int mqtt_encode_publish_head(struct buf *out, uint8_t level, const struct mqtt_packet *p,
			     uint32_t max_packet_size)
{
	size_t n;
	if (p->type != MQTT_PUBLISH)
		return MQTT_ENCODE_INVALID;
	return encode(out, level, p, max_packet_size, false, &n);
}

static bool fits(uint8_t level, const struct mqtt_packet *p, uint32_t max)
{
	size_t n = mqtt_encoded_size(level, p);
	return n && n <= max;
}

bool mqtt_trim_to_fit(uint8_t level, struct mqtt_packet *p, uint32_t max_packet_size)
{
	uint32_t max = max_packet_size ? max_packet_size : MQTT_MAX_PACKET_SIZE;
	if (fits(level, p, max))
		return true;
	if (mqtt_has(&p->props, MQTT_PROP_REASON_STRING)) {
		p->props.present &= ~MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
		p->props.reason_string.p = NULL;
		p->props.reason_string.len = 0;
		if (fits(level, p, max))
			return true;
	}
	if (p->props.n_user) {
		p->props.n_user = 0;
		p->props.user = NULL;
		p->props.present &= ~MQTT_PROP_BIT(MQTT_PROP_USER);
		if (fits(level, p, max))
			return true;
	}
	return false;
}

/* ---- convenience encoders ------------------------------------------------ */

static void init(struct mqtt_packet *p, enum mqtt_type type, const struct mqtt_props *props)
{
	memset(p, 0, sizeof(*p));
	p->type = type;
	if (props)
		p->props = *props;
}

int mqtt_encode_connack(struct buf *out, uint8_t level, bool session_present, uint8_t reason,
			const struct mqtt_props *props, uint32_t max_packet_size)
{
	struct mqtt_packet p;
	init(&p, MQTT_CONNACK, props);
	p.connack.session_present = session_present;
	p.reason = reason;
	return mqtt_encode(out, level, &p, max_packet_size);
}

int mqtt_encode_ack(struct buf *out, uint8_t level, enum mqtt_type type, uint16_t packet_id,
		    uint8_t reason, const struct mqtt_props *props, uint32_t max_packet_size)
{
	if (type < MQTT_PUBACK || type > MQTT_PUBCOMP)
		return MQTT_ENCODE_INVALID;
	struct mqtt_packet p;
	init(&p, type, props);
	p.packet_id = packet_id;
	p.reason = reason;
	return mqtt_encode(out, level, &p, max_packet_size);
}

int mqtt_encode_suback(struct buf *out, uint8_t level, enum mqtt_type type, uint16_t packet_id,
		       const uint8_t *codes, uint32_t n, const struct mqtt_props *props,
		       uint32_t max_packet_size)
{
	if (type != MQTT_SUBACK && type != MQTT_UNSUBACK)
		return MQTT_ENCODE_INVALID;
	struct mqtt_packet p;
	init(&p, type, props);
	p.packet_id = packet_id;
	p.suback.codes = codes;
	p.suback.count = n;
	return mqtt_encode(out, level, &p, max_packet_size);
}

int mqtt_encode_pingresp(struct buf *out)
{
	struct mqtt_packet p;
	init(&p, MQTT_PINGRESP, NULL);
	return mqtt_encode(out, MQTT_V311, &p, 0);
}

int mqtt_encode_disconnect(struct buf *out, uint8_t level, uint8_t reason,
			   const struct mqtt_props *props, uint32_t max_packet_size)
{
	struct mqtt_packet p;
	init(&p, MQTT_DISCONNECT, props);
	p.reason = reason;
	return mqtt_encode(out, level, &p, max_packet_size);
}

int mqtt_encode_auth(struct buf *out, uint8_t reason, const struct mqtt_props *props,
		     uint32_t max_packet_size)
{
	struct mqtt_packet p;
	init(&p, MQTT_AUTH, props);
	p.reason = reason;
	return mqtt_encode(out, MQTT_V5, &p, max_packet_size);
}
