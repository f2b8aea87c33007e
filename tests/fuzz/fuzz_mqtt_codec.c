/* libFuzzer target for the MQTT codec. The first input byte picks the
 * protocol level (0: expect CONNECT, then the level it asks for), the
 * direction (client->server or server->client packets) and a small or no
 * maximum packet size; the rest is a byte stream decoded packet after
 * packet, as a session would. Every packet is checked for the codec's own
 * promises, then re-encoded and decoded again: whatever the decoder accepts
 * the encoder must write back, canonically, and it must decode equal. */
#include "config.h"
#include "protocols/mqtt/codec.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			__builtin_trap();                                      \
	} while (0)

static const uint8_t levels[] = { 0, MQTT_V31, MQTT_V311, MQTT_V5 };

/* Walk the lists: the counts the decoder gave are what the iterators find. */
static void check_lists(const struct mqtt_packet *p)
{
	struct mqtt_prop_iter it;
	struct mqtt_user_prop up;
	uint32_t n = 0, v;
	mqtt_user_props_begin(&it, &p->props);
	while (mqtt_user_props_next(&it, &up)) {
		CHECK(mqtt_utf8_valid(up.key.p, up.key.len) &&
		      mqtt_utf8_valid(up.value.p, up.value.len));
		n++;
	}
	CHECK(n == p->props.n_user);
	n = 0;
	mqtt_sub_ids_begin(&it, &p->props);
	while (mqtt_sub_ids_next(&it, &v)) {
		CHECK(v >= 1 && v <= MQTT_MAX_REMAINING);
		CHECK(n > 0 || v == p->props.sub_id);
		n++;
	}
	CHECK(n == p->props.n_sub_ids);
	if (p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE) {
		struct mqtt_filter_iter fi;
		struct mqtt_topic_filter f;
		uint32_t bad = 0;
		n = 0;
		mqtt_filters_begin(&fi, p);
		while (mqtt_filters_next(&fi, &f)) {
			CHECK(mqtt_utf8_valid(f.filter.p, f.filter.len));
			CHECK(f.qos <= 2 && f.retain_handling <= 2);
			if (f.reason == MQTT_RC_SUCCESS)
				CHECK(mqtt_topic_filter_valid(f.topic.p, f.topic.len));
			else
				bad++;
			n++;
		}
		CHECK(n == p->subscribe.count && n > 0 && bad == p->subscribe.n_invalid);
	}
	if (p->type == MQTT_PUBLISH && p->publish.topic.len)
		CHECK(mqtt_topic_name_valid(p->publish.topic.p, p->publish.topic.len));
}

static void roundtrip(const struct mqtt_packet *p, uint8_t level, bool from_server)
{
	uint8_t lvl = p->type == MQTT_CONNECT ? p->connect.level : level;
	struct mqtt_decode_opts o = { p->type == MQTT_CONNECT ? 0 : lvl, from_server, 0 };
	struct buf b = BUF_INIT, b2 = BUF_INIT;
	int rc = mqtt_encode(&b, lvl, p, 0);
	if (rc == MQTT_ENCODE_NOMEM)
		goto out;
	CHECK(rc == MQTT_ENCODE_OK);
	CHECK(mqtt_encoded_size(lvl, p) == b.len);

	/* Decode from an exact-size copy so ASan sees any read past len. */
	uint8_t *copy = malloc(b.len);
	if (!copy)
		goto out;
	memcpy(copy, b.data, b.len);
	struct mqtt_packet q;
	size_t consumed, need;
	struct mqtt_error err;
	enum mqtt_decode_status st = mqtt_decode(copy, b.len, &o, &q, &consumed, &need, &err);
	CHECK(st == MQTT_DECODE_PACKET && consumed == b.len);
	CHECK(mqtt_packet_equal(lvl, p, &q));

	/* Encoding is canonical: the decoded copy encodes to the same bytes. */
	rc = mqtt_encode(&b2, lvl, &q, 0);
	if (rc == MQTT_ENCODE_OK)
		CHECK(b2.len == b.len && memcmp(b.data, b2.data, b.len) == 0);
	else
		CHECK(rc == MQTT_ENCODE_NOMEM);

	/* One byte under the size: refused, nothing written. */
	buf_reset(&b2);
	CHECK(mqtt_encode(&b2, lvl, p, (uint32_t)b.len - 1) == MQTT_ENCODE_TOO_LARGE &&
	      b2.len == 0);

	if (p->type == MQTT_PUBLISH) {
		rc = mqtt_encode_publish_head(&b2, lvl, p, 0);
		if (rc == MQTT_ENCODE_OK)
			CHECK(b2.len + p->publish.payload.len == b.len &&
			      memcmp(b2.data, b.data, b2.len) == 0);
	}

	/* Trimming to half the size either fits or says it cannot. */
	struct mqtt_packet t = *p;
	uint32_t half = (uint32_t)b.len / 2 + 1;
	if (mqtt_trim_to_fit(lvl, &t, half)) {
		size_t n = mqtt_encoded_size(lvl, &t);
		CHECK(n && n <= half);
	}
	free(copy);
out:
	buf_free(&b);
	buf_free(&b2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t level = levels[data[0] & 3];
	bool from_server = data[0] & 4;
	if (from_server && level == 0)
		level = MQTT_V5;
	uint32_t max = (data[0] & 8) ? 64 : 0;
	data++;
	size--;

	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);

	size_t off = 0;
	while (off < size) {
		struct mqtt_decode_opts o = { level, from_server, max };
		struct mqtt_packet p;
		size_t consumed, need, len = size - off;
		struct mqtt_error err;
		enum mqtt_decode_status st = mqtt_decode(buf + off, len, &o, &p, &consumed, &need,
							 &err);
		if (st == MQTT_DECODE_NEED_MORE) {
			CHECK(consumed == 0 && need > len);
			CHECK(need <= (max ? max : MQTT_MAX_PACKET_SIZE));
			break;
		}
		if (st == MQTT_DECODE_ERROR) {
			CHECK(err.why != NULL && consumed == 0 && err.reason >= 0x80);
			/* A decision never changes as bytes arrive: one byte
			 * less is the same error or a request for more. */
			struct mqtt_error e2;
			st = mqtt_decode(buf + off, len - 1, &o, &p, &consumed, &need, &e2);
			CHECK(st == MQTT_DECODE_NEED_MORE ||
			      (st == MQTT_DECODE_ERROR && e2.reason == err.reason && e2.why == err.why));
			break;
		}
		CHECK(st == MQTT_DECODE_PACKET && consumed > 0 && consumed <= len);
		CHECK(consumed == p.size && (!max || consumed <= max));
		check_lists(&p);
		roundtrip(&p, level, from_server);
		if (p.type == MQTT_CONNECT)
			level = p.connect.level;

		/* One byte short of a packet is never an error, and asks for
		 * exactly the missing byte. */
		struct mqtt_packet p2;
		st = mqtt_decode(buf + off, consumed - 1, &o, &p2, &len, &need, &err);
		CHECK(st == MQTT_DECODE_NEED_MORE && need == consumed);
		off += consumed;
	}
	free(buf);
	return 0;
}
