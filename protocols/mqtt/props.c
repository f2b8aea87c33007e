/* MQTT codec helpers: UTF-8 and topic validation, the MQTT 5 property block
 * (decode, encode, iteration), reason code tables, names and equality. */
#include "config.h"
#include "protocols/mqtt/codec.h"

#include <stddef.h>
#include <string.h>

#include "protocols/mqtt/props.h"
#include "util/utf8.h"

bool mqtt_utf8_valid(const void *str, size_t n)
{
	return utf8_valid(str, n);
}

bool mqtt_topic_name_valid(const void *str, size_t n)
{
	const char *s = str;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '+' || s[i] == '#')
			return false;
	return true;
}

bool mqtt_topic_filter_valid(const void *str, size_t n)
{
	const char *s = str;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool starts_level = i == 0 || s[i - 1] == '/';
		if (s[i] == '+' && (!starts_level || (i + 1 < n && s[i + 1] != '/')))
			return false;
		if (s[i] == '#' && (!starts_level || i + 1 != n))
			return false;
	}
	return true;
}

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN 7

int mqtt_share_split(struct mqtt_str f, struct mqtt_str *share, struct mqtt_str *topic)
{
	if (f.len < SHARE_PREFIX_LEN || memcmp(f.p, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
		return 0;
	const char *g = f.p + SHARE_PREFIX_LEN;
	size_t rest = f.len - SHARE_PREFIX_LEN;
	const char *slash = memchr(g, '/', rest);
	if (!slash || slash == g)
		return -1;
	size_t glen = (size_t)(slash - g);
	if (memchr(g, '+', glen) || memchr(g, '#', glen))
		return -1;
	share->p = g;
	share->len = (uint32_t)glen;
	topic->p = slash + 1;
	topic->len = (uint32_t)(rest - glen - 1);
	return topic->len ? 1 : -1;
}

/* ---- property table ------------------------------------------------------ */

enum ptype { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VARINT, PT_STR, PT_BIN, PT_PAIR };

#define CX(t) (1u << (t))
#define WILL CX(MQTT_CTX_WILL)
#define AUTH_CTX (CX(MQTT_CONNECT) | CX(MQTT_CONNACK) | CX(MQTT_AUTH))
#define ANY_CTX                                                                                \
	(WILL | CX(MQTT_CONNECT) | CX(MQTT_CONNACK) | CX(MQTT_PUBLISH) | CX(MQTT_PUBACK) |       \
	 CX(MQTT_PUBREC) | CX(MQTT_PUBREL) | CX(MQTT_PUBCOMP) | CX(MQTT_SUBSCRIBE) |             \
	 CX(MQTT_SUBACK) | CX(MQTT_UNSUBSCRIBE) | CX(MQTT_UNSUBACK) | CX(MQTT_DISCONNECT) |      \
	 CX(MQTT_AUTH))
#define REASON_CTX                                                                             \
	(CX(MQTT_CONNACK) | CX(MQTT_PUBACK) | CX(MQTT_PUBREC) | CX(MQTT_PUBREL) |               \
	 CX(MQTT_PUBCOMP) | CX(MQTT_SUBACK) | CX(MQTT_UNSUBACK) | CX(MQTT_DISCONNECT) |         \
	 CX(MQTT_AUTH))
#define F(field) offsetof(struct mqtt_props, field)

struct pinfo {
	uint8_t type;
	uint16_t ctx; /* bit per packet type, bit 0 for the will */
	size_t off;   /* the value's field in struct mqtt_props */
	const char *name;
};

#define NPROPS (MQTT_PROP_SHARED_SUB_AVAILABLE + 1)

static const struct pinfo pinfo[NPROPS] = {
	[MQTT_PROP_PAYLOAD_FORMAT] = { PT_BYTE, CX(MQTT_PUBLISH) | WILL, F(payload_format),
				       "payload format indicator" },
	[MQTT_PROP_MESSAGE_EXPIRY] = { PT_U32, CX(MQTT_PUBLISH) | WILL, F(message_expiry),
				       "message expiry interval" },
	[MQTT_PROP_CONTENT_TYPE] = { PT_STR, CX(MQTT_PUBLISH) | WILL, F(content_type),
				     "content type" },
	[MQTT_PROP_RESPONSE_TOPIC] = { PT_STR, CX(MQTT_PUBLISH) | WILL, F(response_topic),
				       "response topic" },
	[MQTT_PROP_CORRELATION_DATA] = { PT_BIN, CX(MQTT_PUBLISH) | WILL, F(correlation_data),
					 "correlation data" },
	[MQTT_PROP_SUB_ID] = { PT_VARINT, CX(MQTT_PUBLISH) | CX(MQTT_SUBSCRIBE), F(sub_id),
			       "subscription identifier" },
	[MQTT_PROP_SESSION_EXPIRY] = { PT_U32,
				       CX(MQTT_CONNECT) | CX(MQTT_CONNACK) | CX(MQTT_DISCONNECT),
				       F(session_expiry), "session expiry interval" },
	[MQTT_PROP_ASSIGNED_CLIENT_ID] = { PT_STR, CX(MQTT_CONNACK), F(assigned_client_id),
					   "assigned client identifier" },
	[MQTT_PROP_SERVER_KEEP_ALIVE] = { PT_U16, CX(MQTT_CONNACK), F(server_keep_alive),
					  "server keep alive" },
	[MQTT_PROP_AUTH_METHOD] = { PT_STR, AUTH_CTX, F(auth_method), "authentication method" },
	[MQTT_PROP_AUTH_DATA] = { PT_BIN, AUTH_CTX, F(auth_data), "authentication data" },
	[MQTT_PROP_REQUEST_PROBLEM_INFO] = { PT_BYTE, CX(MQTT_CONNECT), F(request_problem_info),
					     "request problem information" },
	[MQTT_PROP_WILL_DELAY] = { PT_U32, WILL, F(will_delay), "will delay interval" },
	[MQTT_PROP_REQUEST_RESPONSE_INFO] = { PT_BYTE, CX(MQTT_CONNECT),
					      F(request_response_info),
					      "request response information" },
	[MQTT_PROP_RESPONSE_INFO] = { PT_STR, CX(MQTT_CONNACK), F(response_info),
				      "response information" },
	[MQTT_PROP_SERVER_REFERENCE] = { PT_STR, CX(MQTT_CONNACK) | CX(MQTT_DISCONNECT),
					 F(server_reference), "server reference" },
	[MQTT_PROP_REASON_STRING] = { PT_STR, REASON_CTX, F(reason_string), "reason string" },
	[MQTT_PROP_RECEIVE_MAXIMUM] = { PT_U16, CX(MQTT_CONNECT) | CX(MQTT_CONNACK),
					F(receive_maximum), "receive maximum" },
	[MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = { PT_U16, CX(MQTT_CONNECT) | CX(MQTT_CONNACK),
					    F(topic_alias_maximum), "topic alias maximum" },
	[MQTT_PROP_TOPIC_ALIAS] = { PT_U16, CX(MQTT_PUBLISH), F(topic_alias), "topic alias" },
	[MQTT_PROP_MAXIMUM_QOS] = { PT_BYTE, CX(MQTT_CONNACK), F(maximum_qos), "maximum QoS" },
	[MQTT_PROP_RETAIN_AVAILABLE] = { PT_BYTE, CX(MQTT_CONNACK), F(retain_available),
					 "retain available" },
	[MQTT_PROP_USER] = { PT_PAIR, ANY_CTX, 0, "user property" },
	[MQTT_PROP_MAXIMUM_PACKET_SIZE] = { PT_U32, CX(MQTT_CONNECT) | CX(MQTT_CONNACK),
					    F(maximum_packet_size), "maximum packet size" },
	[MQTT_PROP_WILDCARD_SUB_AVAILABLE] = { PT_BYTE, CX(MQTT_CONNACK),
					       F(wildcard_sub_available),
					       "wildcard subscription available" },
	[MQTT_PROP_SUB_ID_AVAILABLE] = { PT_BYTE, CX(MQTT_CONNACK), F(sub_id_available),
					 "subscription identifier available" },
	[MQTT_PROP_SHARED_SUB_AVAILABLE] = { PT_BYTE, CX(MQTT_CONNACK), F(shared_sub_available),
					     "shared subscription available" },
};

const char *mqtt_prop_name(enum mqtt_prop_id id)
{
	if ((unsigned)id >= NPROPS || pinfo[id].type == PT_NONE)
		return "unknown property";
	return pinfo[id].name;
}

static bool known(unsigned id)
{
	return id < NPROPS && pinfo[id].type != PT_NONE;
}

static uint32_t num_get(const struct mqtt_props *p, unsigned id)
{
	const char *f = (const char *)p + pinfo[id].off;
	switch (pinfo[id].type) {
	case PT_BYTE: return *(const uint8_t *)f;
	case PT_U16: return *(const uint16_t *)f;
	default: return *(const uint32_t *)f;
	}
}

static void num_set(struct mqtt_props *p, unsigned id, uint32_t v)
{
	char *f = (char *)p + pinfo[id].off;
	switch (pinfo[id].type) {
	case PT_BYTE: *(uint8_t *)f = (uint8_t)v; break;
	case PT_U16: *(uint16_t *)f = (uint16_t)v; break;
	default: *(uint32_t *)f = v; break;
	}
}

static struct mqtt_str str_get(const struct mqtt_props *p, unsigned id)
{
	return *(const struct mqtt_str *)((const char *)p + pinfo[id].off);
}

static bool is_str_type(unsigned id)
{
	return pinfo[id].type == PT_STR || pinfo[id].type == PT_BIN;
}

/* 0 if the value is one the spec allows, else the reason code refusing it. */
static uint8_t value_check(unsigned id, uint32_t v, struct mqtt_str s)
{
	switch (id) {
	case MQTT_PROP_PAYLOAD_FORMAT:
	case MQTT_PROP_REQUEST_PROBLEM_INFO:
	case MQTT_PROP_REQUEST_RESPONSE_INFO:
	case MQTT_PROP_MAXIMUM_QOS:
	case MQTT_PROP_RETAIN_AVAILABLE:
	case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
	case MQTT_PROP_SUB_ID_AVAILABLE:
	case MQTT_PROP_SHARED_SUB_AVAILABLE:
		return v > 1 ? MQTT_RC_PROTOCOL_ERROR : 0;
	case MQTT_PROP_RECEIVE_MAXIMUM:
	case MQTT_PROP_MAXIMUM_PACKET_SIZE:
		return v == 0 ? MQTT_RC_PROTOCOL_ERROR : 0;
	case MQTT_PROP_SUB_ID:
		return (v == 0 || v > MQTT_MAX_REMAINING) ? MQTT_RC_PROTOCOL_ERROR : 0;
	case MQTT_PROP_TOPIC_ALIAS:
		return v == 0 ? MQTT_RC_TOPIC_ALIAS_INVALID : 0;
	case MQTT_PROP_RESPONSE_TOPIC:
		return mqtt_topic_name_valid(s.p, s.len) ? 0 : MQTT_RC_PROTOCOL_ERROR;
	default:
		return 0;
	}
}

/* Read the value of property id (its identifier already read). False if the
 * block ends first; *bad_utf8 tells a string that is not UTF-8. */
static bool read_value(struct mqtt_rd *r, unsigned id, uint32_t *v, struct mqtt_str *s,
		       struct mqtt_str *s2, bool *bad_utf8)
{
	uint8_t b;
	uint16_t h;
	*bad_utf8 = false;
	switch (pinfo[id].type) {
	case PT_BYTE:
		if (!mqtt_rd_u8(r, &b))
			return false;
		*v = b;
		return true;
	case PT_U16:
		if (!mqtt_rd_u16(r, &h))
			return false;
		*v = h;
		return true;
	case PT_U32:
		return mqtt_rd_u32(r, v);
	case PT_VARINT:
		return mqtt_rd_varint(r, v);
	case PT_BIN:
		return mqtt_rd_bin(r, s);
	case PT_STR:
		if (!mqtt_rd_bin(r, s))
			return false;
		*bad_utf8 = !mqtt_utf8_valid(s->p, s->len);
		return true;
	case PT_PAIR:
		if (!mqtt_rd_bin(r, s) || !mqtt_rd_bin(r, s2))
			return false;
		*bad_utf8 = !mqtt_utf8_valid(s->p, s->len) || !mqtt_utf8_valid(s2->p, s2->len);
		return true;
	default:
		return false;
	}
}

static bool pfail(struct mqtt_error *err, uint8_t reason, const char *why)
{
	err->reason = reason;
	err->why = why;
	return false;
}

bool mqtt_props_decode(struct mqtt_rd *r, unsigned ctx, struct mqtt_props *out,
		       struct mqtt_error *err)
{
	memset(out, 0, sizeof(*out));
	uint32_t plen;
	size_t vn;
	if (mqtt_varint_scan(r->p, mqtt_rd_left(r), &plen, &vn) != 1)
		return pfail(err, MQTT_RC_MALFORMED, "bad property length");
	r->p += vn;
	if (plen > mqtt_rd_left(r))
		return pfail(err, MQTT_RC_MALFORMED, "property length past the end of the packet");
	struct mqtt_rd b = { r->p, r->p + plen };
	out->raw.p = (const char *)r->p;
	out->raw.len = plen;
	r->p += plen;

	while (b.p < b.end) {
		/* Identifiers are varints, but every one defined is one byte:
		 * a byte with the top bit set is no identifier we can parse. */
		unsigned id = *b.p++;
		if (!known(id))
			return pfail(err, MQTT_RC_MALFORMED, "unknown property identifier");
		if (!(pinfo[id].ctx & CX(ctx)))
			return pfail(err, MQTT_RC_PROTOCOL_ERROR, "property not allowed in this packet");
		bool repeats = id == MQTT_PROP_USER || (id == MQTT_PROP_SUB_ID && ctx == MQTT_PUBLISH);
		if (!repeats && (out->present & MQTT_PROP_BIT(id)))
			return pfail(err, MQTT_RC_PROTOCOL_ERROR, "property given twice");
		uint32_t v = 0;
		struct mqtt_str s = { NULL, 0 }, s2 = { NULL, 0 };
		bool bad_utf8;
		if (!read_value(&b, id, &v, &s, &s2, &bad_utf8))
			return pfail(err, MQTT_RC_MALFORMED, "property value past the end of its block");
		if (bad_utf8)
			return pfail(err, MQTT_RC_MALFORMED, "invalid UTF-8 string in property");
		uint8_t rc = value_check(id, v, s);
		if (rc)
			return pfail(err, rc,
				     rc == MQTT_RC_TOPIC_ALIAS_INVALID ? "topic alias 0"
								       : "property value not allowed");
		out->present |= MQTT_PROP_BIT(id);
		if (id == MQTT_PROP_USER) {
			out->n_user++;
		} else if (id == MQTT_PROP_SUB_ID) {
			if (out->n_sub_ids++ == 0)
				out->sub_id = v;
		} else if (is_str_type(id)) {
			*(struct mqtt_str *)((char *)out + pinfo[id].off) = s;
		} else {
			num_set(out, id, v);
		}
	}
	if (mqtt_has(out, MQTT_PROP_AUTH_DATA) && !mqtt_has(out, MQTT_PROP_AUTH_METHOD))
		return pfail(err, MQTT_RC_PROTOCOL_ERROR, "authentication data without a method");
	return true;
}

/* ---- iteration ----------------------------------------------------------- */

void mqtt_user_props_begin(struct mqtt_prop_iter *it, const struct mqtt_props *props)
{
	memset(it, 0, sizeof(*it));
	it->n = props->n_user;
	it->user = props->user;
	if (!it->user && props->raw.p) {
		it->p = (const uint8_t *)props->raw.p;
		it->end = it->p + props->raw.len;
	}
}

/* Next property `want` in the raw block; defensive against a block that was
 * never validated (it stops there). */
static bool raw_next(struct mqtt_prop_iter *it, unsigned want, uint32_t *v, struct mqtt_str *s,
		     struct mqtt_str *s2)
{
	while (it->p && it->p < it->end) {
		unsigned id = *it->p++;
		struct mqtt_rd r = { it->p, it->end };
		bool bad;
		if (!known(id) || !read_value(&r, id, v, s, s2, &bad)) {
			it->p = it->end;
			return false;
		}
		it->p = r.p;
		if (id == want)
			return true;
	}
	return false;
}

bool mqtt_user_props_next(struct mqtt_prop_iter *it, struct mqtt_user_prop *out)
{
	if (it->i >= it->n)
		return false;
	if (it->user) {
		*out = it->user[it->i++];
		return true;
	}
	uint32_t v;
	if (!raw_next(it, MQTT_PROP_USER, &v, &out->key, &out->value))
		return false;
	it->i++;
	return true;
}

void mqtt_sub_ids_begin(struct mqtt_prop_iter *it, const struct mqtt_props *props)
{
	memset(it, 0, sizeof(*it));
	it->n = props->n_sub_ids;
	it->ids = props->sub_ids;
	it->single = props->sub_id;
	/* One identifier is always sub_id (the first, when decoded), so a
	 * session can forward a decoded PUBLISH's properties with the
	 * subscriber's own identifier set; several come from the raw block. */
	if (!it->ids && it->n > 1) {
		if (props->raw.p) {
			it->p = (const uint8_t *)props->raw.p;
			it->end = it->p + props->raw.len;
		} else {
			it->n = 1; /* nothing to take the others from */
		}
	}
}

bool mqtt_sub_ids_next(struct mqtt_prop_iter *it, uint32_t *out)
{
	if (it->i >= it->n)
		return false;
	if (it->ids) {
		*out = it->ids[it->i++];
		return true;
	}
	if (!it->p) {
		it->i++;
		*out = it->single;
		return true;
	}
	struct mqtt_str s, s2;
	if (!raw_next(it, MQTT_PROP_SUB_ID, out, &s, &s2))
		return false;
	it->i++;
	return true;
}

/* ---- encoding ------------------------------------------------------------ */

/* Past this the packet is too large whatever the rest holds: stop counting
 * early, so an absurd array costs no more than a large packet. */
#define OVER(w) ((w)->n > MQTT_MAX_PACKET_SIZE)

/* CONNACK properties go in the order the spec lists them (3.2.2.3), which
 * strict clients expect; the rest, never valid there, follow so that they
 * are still refused. Other packets: by identifier. */
static const uint8_t connack_order[] = {
	MQTT_PROP_SESSION_EXPIRY, MQTT_PROP_RECEIVE_MAXIMUM, MQTT_PROP_MAXIMUM_QOS,
	MQTT_PROP_RETAIN_AVAILABLE, MQTT_PROP_MAXIMUM_PACKET_SIZE, MQTT_PROP_ASSIGNED_CLIENT_ID,
	MQTT_PROP_TOPIC_ALIAS_MAXIMUM, MQTT_PROP_REASON_STRING, MQTT_PROP_USER,
	MQTT_PROP_WILDCARD_SUB_AVAILABLE, MQTT_PROP_SUB_ID_AVAILABLE,
	MQTT_PROP_SHARED_SUB_AVAILABLE, MQTT_PROP_SERVER_KEEP_ALIVE, MQTT_PROP_RESPONSE_INFO,
	MQTT_PROP_SERVER_REFERENCE, MQTT_PROP_AUTH_METHOD, MQTT_PROP_AUTH_DATA,
	MQTT_PROP_PAYLOAD_FORMAT, MQTT_PROP_MESSAGE_EXPIRY, MQTT_PROP_CONTENT_TYPE,
	MQTT_PROP_RESPONSE_TOPIC, MQTT_PROP_CORRELATION_DATA, MQTT_PROP_SUB_ID,
	MQTT_PROP_REQUEST_PROBLEM_INFO, MQTT_PROP_WILL_DELAY, MQTT_PROP_REQUEST_RESPONSE_INFO,
	MQTT_PROP_TOPIC_ALIAS,
};

static int emit_block(struct mqtt_wr *w, unsigned ctx, const struct mqtt_props *p)
{
	bool connack = ctx == MQTT_CONNACK;
	unsigned n_ids = connack ? (unsigned)sizeof(connack_order) : NPROPS - 1;
	for (unsigned i = 0; i < n_ids; i++) {
		unsigned id = connack ? connack_order[i] : i + 1;
		if (!known(id))
			continue;
		if (id == MQTT_PROP_USER || id == MQTT_PROP_SUB_ID) {
			uint32_t n = id == MQTT_PROP_USER ? p->n_user : p->n_sub_ids;
			if (n == 0)
				continue;
			if (!(pinfo[id].ctx & CX(ctx)))
				return MQTT_ENCODE_INVALID;
			struct mqtt_prop_iter it;
			uint32_t got = 0;
			if (id == MQTT_PROP_USER) {
				struct mqtt_user_prop up;
				mqtt_user_props_begin(&it, p);
				while (mqtt_user_props_next(&it, &up)) {
					mqtt_put_u8(w, (uint8_t)id);
					if (!mqtt_put_str(w, up.key) || !mqtt_put_str(w, up.value))
						return MQTT_ENCODE_INVALID;
					got++;
					if (OVER(w))
						return MQTT_ENCODE_TOO_LARGE;
				}
			} else {
				if (n > 1 && ctx != MQTT_PUBLISH)
					return MQTT_ENCODE_INVALID;
				uint32_t v;
				mqtt_sub_ids_begin(&it, p);
				while (mqtt_sub_ids_next(&it, &v)) {
					if (value_check(id, v, (struct mqtt_str){ NULL, 0 }))
						return MQTT_ENCODE_INVALID;
					mqtt_put_u8(w, (uint8_t)id);
					mqtt_put_varint(w, v);
					got++;
					if (OVER(w))
						return MQTT_ENCODE_TOO_LARGE;
				}
			}
			if (got != n) /* the list had fewer entries than counted */
				return MQTT_ENCODE_INVALID;
			continue;
		}
		if (!(p->present & MQTT_PROP_BIT(id)))
			continue;
		if (!(pinfo[id].ctx & CX(ctx)))
			return MQTT_ENCODE_INVALID;
		uint32_t v = 0;
		struct mqtt_str s = { NULL, 0 };
		if (is_str_type(id))
			s = str_get(p, id);
		else
			v = num_get(p, id);
		if (value_check(id, v, s))
			return MQTT_ENCODE_INVALID;
		mqtt_put_u8(w, (uint8_t)id);
		switch (pinfo[id].type) {
		case PT_BYTE: mqtt_put_u8(w, (uint8_t)v); break;
		case PT_U16: mqtt_put_u16(w, (uint16_t)v); break;
		case PT_U32: mqtt_put_u32(w, v); break;
		case PT_STR:
			if (!mqtt_put_str(w, s))
				return MQTT_ENCODE_INVALID;
			break;
		case PT_BIN:
			if (!mqtt_put_bin(w, s))
				return MQTT_ENCODE_INVALID;
			break;
		default: break;
		}
	}
	if (mqtt_has(p, MQTT_PROP_AUTH_DATA) && !mqtt_has(p, MQTT_PROP_AUTH_METHOD))
		return MQTT_ENCODE_INVALID;
	return MQTT_ENCODE_OK;
}

int mqtt_props_emit(struct mqtt_wr *w, unsigned ctx, const struct mqtt_props *p)
{
	struct mqtt_wr c = { NULL, 0 };
	int rc = emit_block(&c, ctx, p);
	if (rc != MQTT_ENCODE_OK)
		return rc;
	if (c.n > MQTT_MAX_REMAINING)
		return MQTT_ENCODE_TOO_LARGE;
	mqtt_put_varint(w, (uint32_t)c.n);
	if (w->p)
		return emit_block(w, ctx, p); /* validated above: cannot fail */
	w->n += c.n;
	return MQTT_ENCODE_OK;
}

/* ---- reason codes -------------------------------------------------------- */

static const uint8_t rc_puback[] = { 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99 };
static const uint8_t rc_pubrel[] = { 0x00, 0x92 };
static const uint8_t rc_suback5[] = { 0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
				      0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2 };
static const uint8_t rc_suback3[] = { 0x00, 0x01, 0x02, 0x80 };
static const uint8_t rc_unsuback[] = { 0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91 };
static const uint8_t rc_connack[] = { 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
				      0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
				      0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F };
static const uint8_t rc_disconnect[] = { 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89,
					 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
					 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D,
					 0x9E, 0x9F, 0xA0, 0xA1, 0xA2 };
static const uint8_t rc_auth[] = { 0x00, 0x18, 0x19 };

#define IN(list, code) in_list(list, sizeof(list), code)

static bool in_list(const uint8_t *list, size_t n, uint8_t code)
{
	return memchr(list, code, n) != NULL;
}

bool mqtt_reason_valid(unsigned type, uint8_t level, uint8_t code)
{
	switch (type) {
	case MQTT_CONNACK: return level < MQTT_V5 ? code <= 5 : IN(rc_connack, code);
	case MQTT_PUBACK:
	case MQTT_PUBREC: return IN(rc_puback, code);
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: return IN(rc_pubrel, code);
	case MQTT_SUBACK: return level < MQTT_V5 ? IN(rc_suback3, code) : IN(rc_suback5, code);
	case MQTT_UNSUBACK: return IN(rc_unsuback, code);
	case MQTT_DISCONNECT: return IN(rc_disconnect, code);
	case MQTT_AUTH: return IN(rc_auth, code);
	default: return code == 0;
	}
}

int mqtt_connack_rc_v311(uint8_t reason)
{
	switch (reason) {
	case MQTT_RC_SUCCESS: return 0;
	case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION: return 1;
	case MQTT_RC_CLIENT_ID_NOT_VALID: return 2;
	case MQTT_RC_SERVER_UNAVAILABLE:
	case MQTT_RC_SERVER_BUSY: return 3;
	case MQTT_RC_BAD_USERNAME_OR_PASSWORD: return 4;
	case MQTT_RC_NOT_AUTHORIZED:
	case MQTT_RC_BANNED: return 5;
	default: return -1;
	}
}

/* ---- names and equality -------------------------------------------------- */

static const char *const type_names[] = {
	"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
	"PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK",
	"PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
};

const char *mqtt_type_name(enum mqtt_type t)
{
	if ((unsigned)t >= sizeof(type_names) / sizeof(type_names[0]))
		return type_names[0];
	return type_names[t];
}

bool mqtt_str_eq(struct mqtt_str a, struct mqtt_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool mqtt_props_equal(const struct mqtt_props *a, const struct mqtt_props *b)
{
	if (a->present != b->present || a->n_user != b->n_user || a->n_sub_ids != b->n_sub_ids)
		return false;
	for (unsigned id = 1; id < NPROPS; id++) {
		if (!known(id) || !(a->present & MQTT_PROP_BIT(id)) || id == MQTT_PROP_USER ||
		    id == MQTT_PROP_SUB_ID)
			continue;
		if (is_str_type(id) ? !mqtt_str_eq(str_get(a, id), str_get(b, id))
				    : num_get(a, id) != num_get(b, id))
			return false;
	}
	struct mqtt_prop_iter ia, ib;
	struct mqtt_user_prop ua, ub;
	mqtt_user_props_begin(&ia, a);
	mqtt_user_props_begin(&ib, b);
	for (;;) {
		bool ha = mqtt_user_props_next(&ia, &ua), hb = mqtt_user_props_next(&ib, &ub);
		if (ha != hb)
			return false;
		if (!ha)
			break;
		if (!mqtt_str_eq(ua.key, ub.key) || !mqtt_str_eq(ua.value, ub.value))
			return false;
	}
	uint32_t va, vb;
	mqtt_sub_ids_begin(&ia, a);
	mqtt_sub_ids_begin(&ib, b);
	for (;;) {
		bool ha = mqtt_sub_ids_next(&ia, &va), hb = mqtt_sub_ids_next(&ib, &vb);
		if (ha != hb)
			return false;
		if (!ha)
			return true;
		if (va != vb)
			return false;
	}
}

static bool filters_equal(const struct mqtt_packet *a, const struct mqtt_packet *b)
{
	if (a->subscribe.count != b->subscribe.count ||
	    a->subscribe.n_invalid != b->subscribe.n_invalid)
		return false;
	struct mqtt_filter_iter ia, ib;
	struct mqtt_topic_filter fa, fb;
	mqtt_filters_begin(&ia, a);
	mqtt_filters_begin(&ib, b);
	for (;;) {
		bool ha = mqtt_filters_next(&ia, &fa), hb = mqtt_filters_next(&ib, &fb);
		if (ha != hb)
			return false;
		if (!ha)
			return true;
		if (!mqtt_str_eq(fa.filter, fb.filter) || !mqtt_str_eq(fa.share, fb.share) ||
		    !mqtt_str_eq(fa.topic, fb.topic) || (fa.share.p == NULL) != (fb.share.p == NULL) ||
		    fa.reason != fb.reason)
			return false;
		if (a->type == MQTT_SUBSCRIBE &&
		    (fa.qos != fb.qos || fa.no_local != fb.no_local ||
		     fa.retain_as_published != fb.retain_as_published ||
		     fa.retain_handling != fb.retain_handling))
			return false;
	}
}

bool mqtt_packet_equal(uint8_t level, const struct mqtt_packet *a, const struct mqtt_packet *b)
{
	if (a->type != b->type || a->reason != b->reason)
		return false;
	if (level >= MQTT_V5 && !mqtt_props_equal(&a->props, &b->props))
		return false;
	switch (a->type) {
	case MQTT_CONNECT: {
		const struct mqtt_connect *x = &a->connect, *y = &b->connect;
		return x->level == y->level && mqtt_str_eq(x->protocol_name, y->protocol_name) &&
		       x->clean_start == y->clean_start && x->will == y->will &&
		       x->will_qos == y->will_qos && x->will_retain == y->will_retain &&
		       x->has_username == y->has_username && x->has_password == y->has_password &&
		       x->keep_alive == y->keep_alive && mqtt_str_eq(x->client_id, y->client_id) &&
		       mqtt_str_eq(x->will_topic, y->will_topic) &&
		       mqtt_str_eq(x->will_payload, y->will_payload) &&
		       mqtt_str_eq(x->username, y->username) &&
		       mqtt_str_eq(x->password, y->password) &&
		       (x->level < MQTT_V5 || mqtt_props_equal(&x->will_props, &y->will_props));
	}
	case MQTT_CONNACK:
		return a->connack.session_present == b->connack.session_present;
	case MQTT_PUBLISH:
		return a->publish.qos == b->publish.qos && a->publish.dup == b->publish.dup &&
		       a->publish.retain == b->publish.retain &&
		       (a->publish.qos == 0 || a->packet_id == b->packet_id) &&
		       mqtt_str_eq(a->publish.topic, b->publish.topic) &&
		       mqtt_str_eq(a->publish.payload, b->publish.payload);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return a->packet_id == b->packet_id;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		return a->packet_id == b->packet_id && filters_equal(a, b);
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		return a->packet_id == b->packet_id && a->suback.count == b->suback.count &&
		       (a->suback.count == 0 ||
			memcmp(a->suback.codes, b->suback.codes, a->suback.count) == 0);
	default:
		return true;
	}
}
