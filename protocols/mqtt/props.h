/* Internal to the MQTT codec (codec.c, encode.c, props.c): wire primitives
 * and the property block. Not for the session: use codec.h. */
#ifndef WHARF_MQTT_PROPS_H
#define WHARF_MQTT_PROPS_H

#include <string.h>

#include "protocols/mqtt/codec.h"

/* A reader over [p, end): every read checks what remains and fails
 * without moving when there is not enough. */
struct mqtt_rd {
	const uint8_t *p, *end;
};

static inline size_t mqtt_rd_left(const struct mqtt_rd *r)
{
	return (size_t)(r->end - r->p);
}

static inline bool mqtt_rd_u8(struct mqtt_rd *r, uint8_t *v)
{
	if (r->p >= r->end)
		return false;
	*v = *r->p++;
	return true;
}

static inline bool mqtt_rd_u16(struct mqtt_rd *r, uint16_t *v)
{
	if (mqtt_rd_left(r) < 2)
		return false;
	*v = (uint16_t)((r->p[0] << 8) | r->p[1]);
	r->p += 2;
	return true;
}

static inline bool mqtt_rd_u32(struct mqtt_rd *r, uint32_t *v)
{
	if (mqtt_rd_left(r) < 4)
		return false;
	*v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) |
	     r->p[3];
	r->p += 4;
	return true;
}

/* Variable Byte Integer: 1 to 4 bytes, minimal encoding ([MQTT-1.5.5-1]:
 * a multi-byte form never ends in a zero byte). Returns 1 with *v and *n
 * set, 0 if buf ends first, -1 if malformed. */
static inline int mqtt_varint_scan(const uint8_t *buf, size_t len, uint32_t *v, size_t *n)
{
	uint32_t val = 0;
	for (size_t i = 0; i < 4; i++) {
		if (i == len)
			return 0;
		val |= (uint32_t)(buf[i] & 0x7F) << (7 * i);
		if (!(buf[i] & 0x80)) {
			if (i > 0 && buf[i] == 0)
				return -1;
			*v = val;
			*n = i + 1;
			return 1;
		}
	}
	return -1;
}

static inline bool mqtt_rd_varint(struct mqtt_rd *r, uint32_t *v)
{
	size_t n;
	if (mqtt_varint_scan(r->p, mqtt_rd_left(r), v, &n) != 1)
		return false;
	r->p += n;
	return true;
}

/* Two-byte length then the bytes. */
static inline bool mqtt_rd_bin(struct mqtt_rd *r, struct mqtt_str *s)
{
	uint16_t n;
	struct mqtt_rd save = *r;
	if (!mqtt_rd_u16(r, &n) || mqtt_rd_left(r) < n) {
		*r = save;
		return false;
	}
	s->p = (const char *)r->p;
	s->len = n;
	r->p += n;
	return true;
}

static inline size_t mqtt_varint_len(uint32_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/* A writer that only counts when p is NULL: encoders run once to size the
 * packet (and validate it), then once more into reserved space. */
struct mqtt_wr {
	uint8_t *p;
	size_t n;
};

static inline void mqtt_put(struct mqtt_wr *w, const void *d, size_t n)
{
	if (w->p && n) {
		memcpy(w->p, d, n);
		w->p += n;
	}
	w->n += n;
}

static inline void mqtt_put_u8(struct mqtt_wr *w, uint8_t v)
{
	mqtt_put(w, &v, 1);
}

static inline void mqtt_put_u16(struct mqtt_wr *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	mqtt_put(w, b, 2);
}

static inline void mqtt_put_u32(struct mqtt_wr *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	mqtt_put(w, b, 4);
}

static inline void mqtt_put_varint(struct mqtt_wr *w, uint32_t v)
{
	uint8_t b[4];
	size_t n = 0;
	do {
		b[n] = (uint8_t)(v & 0x7F);
		v >>= 7;
		if (v)
			b[n] |= 0x80;
		n++;
	} while (v && n < 4);
	mqtt_put(w, b, n);
}

/* Binary data: false (nothing written) if over 65535 bytes. */
static inline bool mqtt_put_bin(struct mqtt_wr *w, struct mqtt_str s)
{
	if (s.len > 0xFFFF || (s.len && !s.p))
		return false;
	mqtt_put_u16(w, (uint16_t)s.len);
	mqtt_put(w, s.p, s.len);
	return true;
}

/* A UTF-8 string: also false if not valid UTF-8 or holding U+0000. */
static inline bool mqtt_put_str(struct mqtt_wr *w, struct mqtt_str s)
{
	if (s.len > 0xFFFF || (s.len && !s.p) || !mqtt_utf8_valid(s.p, s.len))
		return false;
	return mqtt_put_bin(w, s);
}

/* Where a property may appear: the packet type, or MQTT_CTX_WILL for the
 * will properties of CONNECT. */
#define MQTT_CTX_WILL 0u

/* Parse a property block (its varint length first) for context ctx. On
 * success fills *out (zeroed first) and returns true; else fills *err. */
bool mqtt_props_decode(struct mqtt_rd *r, unsigned ctx, struct mqtt_props *out,
		       struct mqtt_error *err);

/* Write (or, with w->p NULL, count and validate) the property block with its
 * varint length. Returns MQTT_ENCODE_OK, or MQTT_ENCODE_INVALID if a
 * property is not allowed in ctx or not representable, or
 * MQTT_ENCODE_TOO_LARGE. */
int mqtt_props_emit(struct mqtt_wr *w, unsigned ctx, const struct mqtt_props *p);

/* Is `code` a reason code that packet `type` may carry at `level`? (CONNACK
 * before 5.0: the return codes 0-5.) */
bool mqtt_reason_valid(unsigned type, uint8_t level, uint8_t code);

/* Split "$share/GROUP/filter": 0 not shared, 1 shared (share and topic
 * set), -1 starts with "$share/" but is not a valid shared filter. */
int mqtt_share_split(struct mqtt_str f, struct mqtt_str *share, struct mqtt_str *topic);

#endif
