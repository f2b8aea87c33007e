#include "config.h"
#include "protocols/mqtt/codec.h"

#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* ---- helpers ------------------------------------------------------------- */

/* Decoded packets point into their input: inputs are kept in exact-size
 * allocations (so ASan sees any read past the end) until the test ends. */
static void **arena;
static size_t narena;

static uint8_t *keep(const void *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	void **a = realloc(arena, (narena + 1) * sizeof(*a));
	if (!c || !a) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
	if (n)
		memcpy(c, p, n);
	arena = a;
	arena[narena++] = c;
	return c;
}

static void arena_free(void)
{
	for (size_t i = 0; i < narena; i++)
		free(arena[i]);
	free(arena);
}

/* "30 05 00 03 61 2f 62" -> bytes, kept in the arena. */
static size_t hex(const char *s, const uint8_t **out)
{
	uint8_t tmp[1024];
	size_t n = 0;
	while (*s && n < sizeof(tmp)) {
		if (*s == ' ') {
			s++;
			continue;
		}
		unsigned v;
		if (sscanf(s, "%2x", &v) != 1)
			break;
		tmp[n++] = (uint8_t)v;
		s += 2;
	}
	*out = keep(tmp, n);
	return n;
}

struct res {
	enum mqtt_decode_status st;
	struct mqtt_packet pkt;
	size_t consumed, need;
	struct mqtt_error err;
};

static struct res dec_max(const void *bytes, size_t len, uint8_t level, bool from_server,
			  uint32_t max)
{
	struct res r;
	struct mqtt_decode_opts o = { .level = level, .from_server = from_server,
				      .max_packet_size = max };
	const uint8_t *copy = keep(bytes, len);
	r.st = mqtt_decode(copy, len, &o, &r.pkt, &r.consumed, &r.need, &r.err);
	return r;
}

static struct res dec(const void *bytes, size_t len, uint8_t level, bool from_server)
{
	return dec_max(bytes, len, level, from_server, 0);
}

/* Feed the packet one byte more at a time, as a socket might: every strict
 * prefix asks for more (never past the packet), the whole gives a packet. */
static bool splits_ok(const uint8_t *b, size_t len, uint8_t level, bool fs, uint32_t max)
{
	for (size_t k = 0; k < len; k++) {
		struct mqtt_decode_opts o = { level, fs, max };
		struct mqtt_packet p;
		size_t consumed, need;
		struct mqtt_error e;
		uint8_t *c = malloc(k ? k : 1);
		if (!c)
			return false;
		memcpy(c, b, k);
		enum mqtt_decode_status st = mqtt_decode(c, k, &o, &p, &consumed, &need, &e);
		free(c);
		if (st != MQTT_DECODE_NEED_MORE || consumed != 0 || need <= k || need > len) {
			printf("# split at %zu of %zu: status %d need %zu (%s)\n", k, len, st, need,
			       e.why ? e.why : "");
			return false;
		}
	}
	return true;
}

/* An error, and every prefix of the input gives more-please or that same
 * error: a decision never changes as bytes arrive. */
static struct res expect_err_bytes(const char *what, const uint8_t *b, size_t len, uint8_t level,
				   bool fs, uint8_t reason)
{
	struct res r = dec(b, len, level, fs);
	bool mono = true;
	for (size_t k = 0; k < len && mono; k++) {
		struct res p = dec(b, k, level, fs);
		if (!(p.st == MQTT_DECODE_NEED_MORE ||
		      (p.st == MQTT_DECODE_ERROR && p.err.reason == r.err.reason &&
		       p.err.why == r.err.why)))
			mono = false;
	}
	ok(r.st == MQTT_DECODE_ERROR && r.err.reason == reason && r.consumed == 0 && r.err.why &&
		   mono,
	   "%s: error 0x%02x (%s)", what, reason, r.err.why ? r.err.why : "-");
	if (r.st != MQTT_DECODE_ERROR || r.err.reason != reason)
		printf("#   got status %d reason 0x%02x\n", r.st, r.err.reason);
	return r;
}

static struct res expect_err(const char *what, const char *hx, uint8_t level, bool fs,
			     uint8_t reason)
{
	const uint8_t *b;
	size_t n = hex(hx, &b);
	return expect_err_bytes(what, b, n, level, fs, reason);
}

static struct res expect_pkt_bytes(const char *what, const uint8_t *b, size_t len,
				   uint8_t level, bool fs)
{
	struct res r = dec(b, len, level, fs);
	ok(r.st == MQTT_DECODE_PACKET && r.consumed == len && r.pkt.size == len &&
		   splits_ok(b, len, level, fs, 0),
	   "%s: decodes, and NEED_MORE at every split point", what);
	if (r.st != MQTT_DECODE_PACKET)
		printf("#   status %d reason 0x%02x: %s\n", r.st, r.err.reason,
		       r.err.why ? r.err.why : "");
	return r;
}

static struct res expect_pkt(const char *what, const char *hx, uint8_t level, bool fs)
{
	const uint8_t *b;
	size_t n = hex(hx, &b);
	return expect_pkt_bytes(what, b, n, level, fs);
}

static bool buf_is(const struct buf *b, const char *hx)
{
	const uint8_t *want;
	size_t n = hex(hx, &want);
	bool same = b->len == n && memcmp(b->data, want, n) == 0;
	if (!same) {
		printf("#   got  ");
		for (size_t i = 0; i < b->len; i++)
			printf("%02x ", (uint8_t)b->data[i]);
		printf("\n#   want %s\n", hx);
	}
	return same;
}

static struct mqtt_str S(const char *s)
{
	struct mqtt_str m = { s, (uint32_t)strlen(s) };
	return m;
}

static bool str_is(struct mqtt_str m, const char *s)
{
	return mqtt_str_eq(m, S(s));
}

/* Encode in, decode it (checking every split point), re-encode the decoded
 * packet: the bytes must be identical and decode to an equal packet. The
 * first decode is returned for field checks. */
static struct res roundtrip(const char *what, uint8_t level, bool fs, const struct mqtt_packet *in)
{
	struct res r;
	memset(&r, 0, sizeof(r));
	r.st = MQTT_DECODE_ERROR;
	struct buf b1 = BUF_INIT, b2 = BUF_INIT;
	int rc = mqtt_encode(&b1, level, in, 0);
	size_t size = mqtt_encoded_size(level, in);
	uint8_t dlevel = in->type == MQTT_CONNECT ? 0 : level;
	if (rc != MQTT_ENCODE_OK || size != b1.len) {
		ok(0, "%s: encodes (rc %d, size %zu, len %zu)", what, rc, size, b1.len);
		goto out;
	}
	const uint8_t *bytes = keep(b1.data, b1.len);
	r = dec(bytes, b1.len, dlevel, fs);
	bool good = r.st == MQTT_DECODE_PACKET && r.consumed == b1.len &&
		    splits_ok(bytes, b1.len, dlevel, fs, 0);
	if (r.st != MQTT_DECODE_PACKET)
		printf("#   status %d reason 0x%02x: %s\n", r.st, r.err.reason,
		       r.err.why ? r.err.why : "");
	if (good) {
		rc = mqtt_encode(&b2, level, &r.pkt, 0);
		good = rc == MQTT_ENCODE_OK && b2.len == b1.len &&
		       memcmp(b1.data, b2.data, b1.len) == 0;
		struct res r2 = dec(b2.data, b2.len, dlevel, fs);
		good = good && r2.st == MQTT_DECODE_PACKET && mqtt_packet_equal(level, &r.pkt, &r2.pkt);
	}
	ok(good, "%s: round trip at level %u", what, level);
out:
	buf_free(&b1);
	buf_free(&b2);
	return r;
}

/* ---- varints and sizes --------------------------------------------------- */

static void test_varint(void)
{
	static const struct {
		uint32_t v;
		const char *hx;
	} cases[] = {
		{ 0, "00" },
		{ 127, "7f" },
		{ 128, "80 01" },
		{ 16383, "ff 7f" },
		{ 16384, "80 80 01" },
		{ 2097151, "ff ff 7f" },
		{ 2097152, "80 80 80 01" },
		{ 268435455, "ff ff ff 7f" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t v = cases[i].v;
		/* The head of a QoS 0 PUBLISH to "a" whose remaining length is v
		 * (topic: 3 bytes, so v >= 3; v < 3 goes through PINGREQ-like
		 * headers below). */
		char hx[64];
		snprintf(hx, sizeof(hx), "30 %s", cases[i].hx);
		const uint8_t *b;
		size_t n = hex(hx, &b);
		struct res r = dec(b, n, MQTT_V311, false);
		size_t want = n + v;
		if (v == 0) {
			/* PUBLISH with nothing: malformed, once complete */
			ok(r.st == MQTT_DECODE_ERROR && r.err.reason == MQTT_RC_MALFORMED,
			   "varint 0: empty PUBLISH is malformed");
		} else {
			ok(r.st == MQTT_DECODE_NEED_MORE && r.need == want,
			   "varint %u: header alone asks for %zu bytes (got %zu)", v, want, r.need);
		}
		if (v >= 3) {
			struct mqtt_packet p;
			memset(&p, 0, sizeof(p));
			p.type = MQTT_PUBLISH;
			p.publish.topic = S("a");
			p.publish.payload.len = v - 3;
			struct buf out = BUF_INIT;
			int rc = mqtt_encode_publish_head(&out, MQTT_V311, &p, 0);
			snprintf(hx, sizeof(hx), "30 %s 00 01 61", cases[i].hx);
			ok(rc == MQTT_ENCODE_OK && buf_is(&out, hx) &&
				   mqtt_encoded_size(MQTT_V311, &p) == want,
			   "varint %u: encoder writes %s", v, cases[i].hx);
			buf_free(&out);
		}
	}
	expect_err("5-byte remaining length", "30 ff ff ff ff 01", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	expect_err("4 bytes with continuation", "30 80 80 80 80", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	expect_err("non-minimal remaining length", "c0 80 00", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	struct res r = dec("\x30\xff\xff", 3, MQTT_V311, false);
	ok(r.st == MQTT_DECODE_NEED_MORE && r.need == 4, "partial varint asks for one more byte");

	/* 268435455 + 1 cannot be expressed */
	struct mqtt_packet p;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.publish.topic = S("a");
	p.publish.payload.len = MQTT_MAX_REMAINING - 2;
	struct buf out = BUF_INIT;
	ok(mqtt_encode_publish_head(&out, MQTT_V311, &p, 0) == MQTT_ENCODE_TOO_LARGE &&
		   out.len == 0 && mqtt_encoded_size(MQTT_V311, &p) == 0,
	   "remaining length over 268435455 is refused");
	buf_free(&out);
}

static void test_max_packet_size(void)
{
	/* A PUBLISH announcing 1000 bytes: refused from its 3-byte header. */
	struct res r = dec_max("\x30\xe5\x07", 3, MQTT_V311, false, 100);
	ok(r.st == MQTT_DECODE_ERROR && r.err.reason == MQTT_RC_PACKET_TOO_LARGE &&
		   r.err.type == MQTT_PUBLISH,
	   "over max packet size refused from the fixed header alone");
	r = dec_max("\x30\x63", 2, MQTT_V311, false, 100);
	ok(r.st == MQTT_DECODE_ERROR && r.err.reason == MQTT_RC_PACKET_TOO_LARGE,
	   "one over: 99 bytes of remaining length + 2 of header > 100");
	r = dec_max("\x30\x62", 2, MQTT_V311, false, 100);
	ok(r.st == MQTT_DECODE_NEED_MORE && r.need == 100, "exactly the maximum is accepted");
	r = dec_max("\xc0\x00", 2, MQTT_V311, false, 2);
	ok(r.st == MQTT_DECODE_PACKET && r.pkt.type == MQTT_PINGREQ, "2-byte packet at max 2");
}

/* ---- UTF-8 and topics ---------------------------------------------------- */

static void test_utf8(void)
{
	static const struct {
		const char *hx;
		bool valid;
		const char *what;
	} cases[] = {
		{ "", true, "empty" },
		{ "61 62 63", true, "ASCII" },
		{ "7f", true, "U+007F" },
		{ "c2 80", true, "U+0080" },
		{ "df bf", true, "U+07FF" },
		{ "e0 a0 80", true, "U+0800" },
		{ "ed 9f bf", true, "U+D7FF" },
		{ "ee 80 80", true, "U+E000" },
		{ "ef bf bf", true, "U+FFFF" },
		{ "f0 90 80 80", true, "U+10000" },
		{ "f4 8f bf bf", true, "U+10FFFF" },
		{ "ef bb bf", true, "BOM U+FEFF" },
		{ "00", false, "U+0000" },
		{ "61 00 62", false, "embedded U+0000" },
		{ "c0 80", false, "overlong U+0000" },
		{ "c1 bf", false, "overlong 2-byte" },
		{ "e0 80 80", false, "overlong 3-byte" },
		{ "e0 9f bf", false, "overlong U+07FF" },
		{ "f0 80 80 80", false, "overlong 4-byte" },
		{ "f0 8f bf bf", false, "overlong U+FFFF" },
		{ "ed a0 80", false, "surrogate U+D800" },
		{ "ed bf bf", false, "surrogate U+DFFF" },
		{ "f4 90 80 80", false, "past U+10FFFF" },
		{ "f5 80 80 80", false, "lead byte F5" },
		{ "ff", false, "byte FF" },
		{ "80", false, "lone continuation" },
		{ "c2", false, "truncated 2-byte" },
		{ "e0 a0", false, "truncated 3-byte" },
		{ "f0 90 80", false, "truncated 4-byte" },
		{ "c2 41", false, "bad continuation" },
		{ "e1 80 41", false, "bad third byte" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const uint8_t *b;
		size_t n = hex(cases[i].hx, &b);
		ok(mqtt_utf8_valid(b, n) == cases[i].valid, "UTF-8 %s: %s", cases[i].what,
		   cases[i].valid ? "valid" : "invalid");
	}
	/* Through the decoder: a topic with a surrogate, an overlong, a NUL. */
	expect_err("PUBLISH topic with a surrogate", "30 05 00 03 ed a0 80", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	expect_err("PUBLISH topic with overlong '/'", "30 04 00 02 c0 af", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	expect_err("PUBLISH topic with U+0000", "30 05 00 03 61 00 62", MQTT_V5, false,
		   MQTT_RC_MALFORMED);
	expect_pkt("PUBLISH topic in 4-byte UTF-8", "30 07 00 04 f0 9f 98 80 00", MQTT_V5,
		   false);
}

static void test_topics(void)
{
	static const struct {
		const char *f;
		bool valid;
	} filters[] = {
		{ "a/b", true },  { "#", true },     { "+", true },     { "a/#", true },
		{ "a/+/b", true }, { "+/+", true },  { "/", true },     { "a//b", true },
		{ "+/#", true },  { "", false },     { "a#", false },   { "a/#/b", false },
		{ "a+", false },  { "a/+b", false }, { "##", false },   { "a/b#", false },
		{ "+a", false },  { "#/", false },
	};
	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
		ok(mqtt_topic_filter_valid(filters[i].f, strlen(filters[i].f)) == filters[i].valid,
		   "filter '%s' %s", filters[i].f, filters[i].valid ? "valid" : "invalid");
	ok(mqtt_topic_name_valid("a/b", 3) && !mqtt_topic_name_valid("a/+", 3) &&
		   !mqtt_topic_name_valid("#", 1) && !mqtt_topic_name_valid("", 0),
	   "topic names: no wildcards, not empty");
}

/* ---- CONNECT ------------------------------------------------------------- */

static void test_connect(void)
{
	/* A 3.1.1 CONNECT by hand: clean session, keep alive 60, id "c1",
	 * will "w/t" "bye" QoS 1 retained, user "u", password "p". */
	struct res r = expect_pkt("3.1.1 CONNECT",
				  "10 1e 00 04 4d 51 54 54 04 ee 00 3c 00 02 63 31"
				  " 00 03 77 2f 74 00 03 62 79 65 00 01 75 00 01 70",
				  0, false);
	struct mqtt_connect *c = &r.pkt.connect;
	ok(r.pkt.type == MQTT_CONNECT && c->level == 4 && c->clean_start && c->will &&
		   c->will_qos == 1 && c->will_retain && c->has_username && c->has_password &&
		   c->keep_alive == 60 && str_is(c->client_id, "c1") &&
		   str_is(c->will_topic, "w/t") && str_is(c->will_payload, "bye") &&
		   str_is(c->username, "u") && str_is(c->password, "p") &&
		   str_is(c->protocol_name, "MQTT"),
	   "3.1.1 CONNECT fields");

	/* Each level through the encoder. */
	for (uint8_t level = 3; level <= 5; level++) {
		struct mqtt_packet p;
		memset(&p, 0, sizeof(p));
		p.type = MQTT_CONNECT;
		p.connect.clean_start = level != 4;
		p.connect.keep_alive = 30;
		p.connect.client_id = S("dev-1");
		p.connect.has_username = true;
		p.connect.username = S("user");
		if (level == 5) {
			p.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY) |
					  MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM) |
					  MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE) |
					  MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM) |
					  MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFO) |
					  MQTT_PROP_BIT(MQTT_PROP_REQUEST_RESPONSE_INFO) |
					  MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD) |
					  MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
			p.props.session_expiry = 3600;
			p.props.receive_maximum = 20;
			p.props.maximum_packet_size = 65536;
			p.props.topic_alias_maximum = 10;
			p.props.request_problem_info = 0;
			p.props.request_response_info = 1;
			p.props.auth_method = S("SCRAM-SHA-1");
			p.props.auth_data = S("\x01\x02");
			p.connect.will = true;
			p.connect.will_qos = 2;
			p.connect.will_topic = S("status/dev-1");
			p.connect.will_payload = S("offline");
			p.connect.will_props.present = MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY) |
						       MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) |
						       MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY) |
						       MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) |
						       MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) |
						       MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
			p.connect.will_props.will_delay = 5;
			p.connect.will_props.payload_format = 1;
			p.connect.will_props.message_expiry = 99;
			p.connect.will_props.content_type = S("text/plain");
			p.connect.will_props.response_topic = S("r/t");
			p.connect.will_props.correlation_data = S("\x00\xff");
			p.connect.will_props.correlation_data.len = 2;
			/* password without user name is fine in 5.0 */
			p.connect.has_username = false;
			p.connect.username.p = NULL;
			p.connect.username.len = 0;
			p.connect.has_password = true;
			p.connect.password = S("secret");
		}
		char what[32];
		snprintf(what, sizeof(what), "CONNECT level %u", level);
		r = roundtrip(what, level, false, &p);
		c = &r.pkt.connect;
		ok(r.st == MQTT_DECODE_PACKET && c->level == level &&
			   str_is(c->protocol_name, level == 3 ? "MQIsdp" : "MQTT") &&
			   str_is(c->client_id, "dev-1") && c->keep_alive == 30,
		   "%s: fields", what);
		if (level == 5) {
			struct mqtt_props *pp = &r.pkt.props, *w = &c->will_props;
			ok(pp->session_expiry == 3600 && pp->receive_maximum == 20 &&
				   pp->maximum_packet_size == 65536 && pp->topic_alias_maximum == 10 &&
				   mqtt_has(pp, MQTT_PROP_REQUEST_PROBLEM_INFO) &&
				   pp->request_problem_info == 0 && pp->request_response_info == 1 &&
				   str_is(pp->auth_method, "SCRAM-SHA-1") && pp->auth_data.len == 2 &&
				   !mqtt_has(pp, MQTT_PROP_USER),
			   "CONNECT 5.0 properties");
			ok(c->will && c->will_qos == 2 && !c->will_retain && w->will_delay == 5 &&
				   w->payload_format == 1 && w->message_expiry == 99 &&
				   str_is(w->content_type, "text/plain") &&
				   str_is(w->response_topic, "r/t") && w->correlation_data.len == 2 &&
				   memcmp(w->correlation_data.p, "\x00\xff", 2) == 0 &&
				   str_is(c->will_topic, "status/dev-1") &&
				   str_is(c->will_payload, "offline"),
			   "CONNECT 5.0 will and its properties");
			ok(!c->has_username && c->has_password && str_is(c->password, "secret"),
			   "CONNECT 5.0 password without user name");
		}
	}

	/* Protocol name and level. */
	r = expect_err("CONNECT MQTT level 6", "10 0c 00 04 4d 51 54 54 06 02 00 3c 00 00", 0,
		       false, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
	ok(r.err.type == MQTT_CONNECT && r.err.level == 6 &&
		   mqtt_connack_rc_v311(r.err.reason) == 1,
	   "unsupported level: type, level and 3.1.1 return code 1 reported");
	expect_err("CONNECT MQTT level 3", "10 0c 00 04 4d 51 54 54 03 02 00 3c 00 00", 0, false,
		   MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
	expect_err("CONNECT MQIsdp level 4",
		   "10 0e 00 06 4d 51 49 73 64 70 04 02 00 3c 00 00", 0, false,
		   MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
	expect_err("CONNECT protocol name 'MQTX'", "10 0c 00 04 4d 51 54 58 04 02 00 3c 00 00", 0,
		   false, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
	r = expect_pkt("3.1 CONNECT (MQIsdp)",
		       "10 10 00 06 4d 51 49 73 64 70 03 02 00 3c 00 02 69 64", 0, false);
	ok(r.pkt.connect.level == 3, "3.1 level");

	/* Flags. */
	expect_err("CONNECT reserved flag", "10 0d 00 04 4d 51 54 54 04 03 00 3c 00 01 61", 0,
		   false, MQTT_RC_MALFORMED);
	expect_err("will QoS without will", "10 0d 00 04 4d 51 54 54 04 0a 00 3c 00 01 61", 0,
		   false, MQTT_RC_MALFORMED);
	expect_err("will retain without will", "10 0d 00 04 4d 51 54 54 04 22 00 3c 00 01 61", 0,
		   false, MQTT_RC_MALFORMED);
	expect_err("will QoS 3",
		   "10 13 00 04 4d 51 54 54 04 1e 00 3c 00 01 61 00 01 74 00 01 78", 0, false,
		   MQTT_RC_MALFORMED);
	expect_err("3.1.1 password without user name",
		   "10 10 00 04 4d 51 54 54 04 42 00 3c 00 01 61 00 01 70", 0, false,
		   MQTT_RC_MALFORMED);
	expect_err("CONNECT fixed header flags", "11 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 61",
		   0, false, MQTT_RC_MALFORMED);

	/* Client identifiers. */
	r = expect_err("3.1.1 empty client id, no clean session",
		       "10 0c 00 04 4d 51 54 54 04 00 00 3c 00 00", 0, false,
		       MQTT_RC_CLIENT_ID_NOT_VALID);
	ok(mqtt_connack_rc_v311(r.err.reason) == 2 && r.err.level == 4,
	   "client id not valid maps to 3.1.1 return code 2");
	expect_pkt("3.1.1 empty client id with clean session",
		   "10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00", 0, false);
	expect_err("3.1 empty client id", "10 0e 00 06 4d 51 49 73 64 70 03 02 00 3c 00 00", 0,
		   false, MQTT_RC_CLIENT_ID_NOT_VALID);
	expect_pkt("5.0 empty client id, clean start 0",
		   "10 0d 00 04 4d 51 54 54 05 00 00 3c 00 00 00", 0, false);
	expect_err("client id not UTF-8", "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 c3 28", 0,
		   false, MQTT_RC_MALFORMED);

	/* Lengths and trailing bytes. */
	expect_err("CONNECT trailing byte", "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 01 61 ff", 0,
		   false, MQTT_RC_MALFORMED);
	expect_err("client id longer than the packet",
		   "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 09 61", 0, false, MQTT_RC_MALFORMED);
	expect_err("user name flag but no user name",
		   "10 0d 00 04 4d 51 54 54 04 82 00 3c 00 01 61", 0, false, MQTT_RC_MALFORMED);
	expect_err("will topic with wildcard",
		   "10 13 00 04 4d 51 54 54 04 06 00 3c 00 01 61 00 01 23 00 01 78", 0, false,
		   MQTT_RC_TOPIC_NAME_INVALID);

	/* Order of packets. */
	expect_err("first packet PUBLISH", "30 03 00 01 61", 0, false, MQTT_RC_PROTOCOL_ERROR);
	expect_err("second CONNECT", "10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00", MQTT_V311,
		   false, MQTT_RC_PROTOCOL_ERROR);

	/* 5.0 properties in CONNECT. */
	expect_err("property length past the packet",
		   "10 0e 00 04 4d 51 54 54 05 02 00 3c 09 11 00 00", 0, false, MQTT_RC_MALFORMED);
	expect_err("property value past its block",
		   "10 10 00 04 4d 51 54 54 05 02 00 3c 02 11 00 00 00 00", 0, false,
		   MQTT_RC_MALFORMED);
	expect_err("topic alias in CONNECT",
		   "10 10 00 04 4d 51 54 54 05 02 00 3c 03 23 00 01 00 00", 0, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("session expiry twice",
		   "10 17 00 04 4d 51 54 54 05 02 00 3c 0a 11 00 00 00 01 11 00 00 00 02 00 00", 0,
		   false, MQTT_RC_PROTOCOL_ERROR);
	expect_err("receive maximum 0",
		   "10 10 00 04 4d 51 54 54 05 02 00 3c 03 21 00 00 00 00", 0, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("maximum packet size 0",
		   "10 12 00 04 4d 51 54 54 05 02 00 3c 05 27 00 00 00 00 00 00", 0, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("request problem information 2",
		   "10 0f 00 04 4d 51 54 54 05 02 00 3c 02 17 02 00 00", 0, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("unknown property 0x7f", "10 0f 00 04 4d 51 54 54 05 02 00 3c 02 7f 00 00 00",
		   0, false, MQTT_RC_MALFORMED);
	expect_err("authentication data without method",
		   "10 11 00 04 4d 51 54 54 05 02 00 3c 04 16 00 01 78 00 00", 0, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("will delay outside the will",
		   "10 12 00 04 4d 51 54 54 05 02 00 3c 05 18 00 00 00 01 00 00", 0, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("user property key not UTF-8",
		   "10 14 00 04 4d 51 54 54 05 02 00 3c 07 26 00 01 ff 00 01 76 00 00", 0, false,
		   MQTT_RC_MALFORMED);
	r = expect_pkt("CONNECT with two user properties (same key kept twice)",
		       "10 1b 00 04 4d 51 54 54 05 02 00 3c 0e 26 00 01 6b 00 01 31 26 00 01 6b"
		       " 00 01 32 00 00",
		       0, false);
	struct mqtt_prop_iter it;
	struct mqtt_user_prop up, up2;
	mqtt_user_props_begin(&it, &r.pkt.props);
	ok(r.pkt.props.n_user == 2 && mqtt_user_props_next(&it, &up) &&
		   mqtt_user_props_next(&it, &up2) && !mqtt_user_props_next(&it, &up) &&
		   str_is(up.key, "k") && str_is(up.value, "1") && str_is(up2.key, "k") &&
		   str_is(up2.value, "2"),
	   "user properties in order");
}

/* ---- PUBLISH ------------------------------------------------------------- */

static void test_publish(void)
{
	struct res r = expect_pkt("3.1.1 PUBLISH QoS 0", "30 08 00 03 61 2f 62 68 69 21",
				  MQTT_V311, false);
	ok(r.pkt.publish.qos == 0 && !r.pkt.publish.dup && !r.pkt.publish.retain &&
		   str_is(r.pkt.publish.topic, "a/b") && str_is(r.pkt.publish.payload, "hi!"),
	   "PUBLISH QoS 0 fields");
	r = expect_pkt("3.1.1 PUBLISH QoS 1 dup retain", "3b 07 00 01 74 00 2a 6f 6b", MQTT_V311,
		       false);
	ok(r.pkt.publish.qos == 1 && r.pkt.publish.dup && r.pkt.publish.retain &&
		   r.pkt.packet_id == 42 && str_is(r.pkt.publish.payload, "ok"),
	   "PUBLISH QoS 1 fields");
	r = expect_pkt("PUBLISH QoS 2 empty payload", "34 05 00 01 74 ff ff", MQTT_V31, false);
	ok(r.pkt.publish.qos == 2 && r.pkt.packet_id == 0xFFFF && r.pkt.publish.payload.len == 0,
	   "PUBLISH QoS 2 fields");
	r = expect_pkt("5.0 PUBLISH no properties", "30 06 00 01 74 00 68 69", MQTT_V5, false);
	ok(r.pkt.props.present == 0 && str_is(r.pkt.publish.payload, "hi"), "5.0 PUBLISH fields");

	expect_err("PUBLISH QoS 3", "36 05 00 01 74 00 01", MQTT_V311, false, MQTT_RC_MALFORMED);
	expect_err("PUBLISH QoS 0 with DUP", "38 03 00 01 74", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("PUBLISH QoS 1 packet id 0", "32 05 00 01 74 00 00", MQTT_V311, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("PUBLISH topic with '+'", "30 05 00 03 61 2f 2b", MQTT_V311, false,
		   MQTT_RC_TOPIC_NAME_INVALID);
	expect_err("PUBLISH topic with '#'", "30 03 00 01 23", MQTT_V5, false,
		   MQTT_RC_TOPIC_NAME_INVALID);
	expect_err("3.1.1 PUBLISH empty topic", "30 02 00 00", MQTT_V311, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("5.0 PUBLISH empty topic, no alias", "30 03 00 00 00", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	r = expect_pkt("5.0 PUBLISH empty topic with alias", "30 07 00 00 03 23 00 07 78",
		       MQTT_V5, false);
	ok(r.pkt.props.topic_alias == 7 && r.pkt.publish.topic.len == 0 &&
		   str_is(r.pkt.publish.payload, "x"),
	   "topic alias decoded");
	expect_err("topic alias 0", "30 08 00 01 74 03 23 00 00 78", MQTT_V5, false,
		   MQTT_RC_TOPIC_ALIAS_INVALID);
	expect_err("subscription identifier from a client", "30 06 00 01 74 02 0b 01", MQTT_V5,
		   false, MQTT_RC_PROTOCOL_ERROR);
	expect_err("topic length past the packet", "30 03 00 05 74", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	expect_err("QoS 1 without room for the id", "32 04 00 01 74 00", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	expect_err("PUBLISH with session expiry", "30 09 00 01 74 05 11 00 00 00 01", MQTT_V5,
		   false, MQTT_RC_PROTOCOL_ERROR);
	expect_err("response topic with wildcard", "30 09 00 01 74 05 08 00 02 61 23", MQTT_V5,
		   false, MQTT_RC_PROTOCOL_ERROR);
	expect_err("payload format 2", "30 06 00 01 74 02 01 02", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("topic alias twice", "30 0a 00 01 74 06 23 00 01 23 00 02", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);

	/* Every PUBLISH property, and several subscription identifiers (the
	 * server's PUBLISH to a client), round trip. */
	static const struct mqtt_user_prop ups[] = {
		{ { "k1", 2 }, { "v1", 2 } },
		{ { "k2", 2 }, { "", 0 } },
		{ { "k1", 2 }, { "v3", 2 } },
	};
	static const uint32_t ids[] = { 1, 127, 128, 268435455 };
	struct mqtt_packet p;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.packet_id = 7;
	p.publish.qos = 1;
	p.publish.retain = true;
	p.publish.topic = S("sensors/t1");
	p.publish.payload = S("{\"t\":21}");
	p.props.present = MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) |
			  MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY) |
			  MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) |
			  MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) |
			  MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA) |
			  MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
	p.props.payload_format = 1;
	p.props.message_expiry = 0xFFFFFFFF;
	p.props.content_type = S("application/json");
	p.props.response_topic = S("replies/1");
	p.props.correlation_data = S("abc");
	p.props.topic_alias = 65535;
	p.props.n_user = 3;
	p.props.user = ups;
	p.props.n_sub_ids = 4;
	p.props.sub_ids = ids;
	r = roundtrip("PUBLISH with every property", MQTT_V5, true, &p);
	struct mqtt_props *pp = &r.pkt.props;
	ok(pp->payload_format == 1 && pp->message_expiry == 0xFFFFFFFF &&
		   str_is(pp->content_type, "application/json") &&
		   str_is(pp->response_topic, "replies/1") && str_is(pp->correlation_data, "abc") &&
		   pp->topic_alias == 65535 && pp->n_user == 3 && pp->n_sub_ids == 4 &&
		   pp->sub_id == 1,
	   "PUBLISH properties decoded");
	struct mqtt_prop_iter it;
	uint32_t v, got[4] = { 0 };
	size_t n = 0;
	mqtt_sub_ids_begin(&it, pp);
	while (n < 4 && mqtt_sub_ids_next(&it, &v))
		got[n++] = v;
	ok(n == 4 && memcmp(got, ids, sizeof(ids)) == 0 && !mqtt_sub_ids_next(&it, &v),
	   "subscription identifiers in order");
	struct mqtt_user_prop up;
	bool same = true;
	n = 0;
	mqtt_user_props_begin(&it, pp);
	while (mqtt_user_props_next(&it, &up)) {
		same = same && n < 3 && mqtt_str_eq(up.key, ups[n].key) &&
		       mqtt_str_eq(up.value, ups[n].value);
		n++;
	}
	ok(same && n == 3, "user properties in order, empty value and repeated key kept");
	ok(r.pkt.publish.qos == 1 && r.pkt.packet_id == 7 && r.pkt.publish.retain &&
		   str_is(r.pkt.publish.payload, "{\"t\":21}"),
	   "PUBLISH fields after properties");

	/* Re-encoding from the decoded raw block (no arrays) gives the same. */
	struct buf b = BUF_INIT, b2 = BUF_INIT;
	mqtt_encode(&b, MQTT_V5, &p, 0);
	ok(mqtt_encode(&b2, MQTT_V5, &r.pkt, 0) == MQTT_ENCODE_OK && b.len == b2.len &&
		   memcmp(b.data, b2.data, b.len) == 0,
	   "decoded properties re-encode byte for byte");
	/* The head plus the payload is the whole packet. */
	buf_reset(&b2);
	ok(mqtt_encode_publish_head(&b2, MQTT_V5, &p, 0) == MQTT_ENCODE_OK &&
		   b2.len + p.publish.payload.len == b.len && memcmp(b.data, b2.data, b2.len) == 0,
	   "PUBLISH head + payload == PUBLISH");
	/* One subscription identifier from sub_id alone. */
	p.props.sub_ids = NULL;
	p.props.n_sub_ids = 1;
	p.props.sub_id = 300;
	r = roundtrip("PUBLISH with one sub_id", MQTT_V5, true, &p);
	ok(r.pkt.props.n_sub_ids == 1 && r.pkt.props.sub_id == 300, "single subscription id");
	buf_free(&b);
	buf_free(&b2);

	/* A session forwards a client's PUBLISH: its decoded properties (user
	 * properties from the raw block) plus the subscriber's identifier. */
	r = expect_pkt("client PUBLISH with user property and content type",
		       "30 14 00 01 74 0e 03 00 01 78 26 00 01 6b 00 01 76 23 00 02 70 6c", MQTT_V5,
		       false);
	struct mqtt_packet fwd;
	memset(&fwd, 0, sizeof(fwd));
	fwd.type = MQTT_PUBLISH;
	fwd.publish = r.pkt.publish;
	fwd.props = r.pkt.props;
	fwd.props.present &= ~MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
	fwd.props.n_sub_ids = 1;
	fwd.props.sub_id = 77;
	struct res f = roundtrip("forwarded PUBLISH", MQTT_V5, true, &fwd);
	mqtt_user_props_begin(&it, &f.pkt.props);
	ok(f.pkt.props.n_sub_ids == 1 && f.pkt.props.sub_id == 77 &&
		   str_is(f.pkt.props.content_type, "x") && f.pkt.props.n_user == 1 &&
		   mqtt_user_props_next(&it, &up) && str_is(up.key, "k") && str_is(up.value, "v") &&
		   !mqtt_has(&f.pkt.props, MQTT_PROP_TOPIC_ALIAS) && str_is(f.pkt.publish.payload, "pl"),
	   "forwarded properties keep the user property, carry the new identifier");
	fwd.props.n_sub_ids = 2; /* two identifiers but neither a list nor a block holding two */
	fwd.props.raw.p = NULL;
	fwd.props.raw.len = 0;
	fwd.props.n_user = 0;
	ok(mqtt_encoded_size(MQTT_V5, &fwd) == 0, "two identifiers without a list are refused");

	/* Same packet at 3.1.1 and 3.1: properties are not written. */
	for (uint8_t level = 3; level <= 4; level++) {
		r = roundtrip("PUBLISH below 5.0", level, false, &p);
		ok(r.pkt.props.present == 0 && str_is(r.pkt.publish.topic, "sensors/t1"),
		   "level %u: no properties", level);
	}
	/* QoS 0 and 2 at each level */
	for (uint8_t level = 3; level <= 5; level++) {
		memset(&p, 0, sizeof(p));
		p.type = MQTT_PUBLISH;
		p.publish.topic = S("x");
		p.publish.qos = (uint8_t)(level - 3);
		p.packet_id = p.publish.qos ? 9 : 0;
		p.publish.payload = S("pay");
		r = roundtrip("PUBLISH", level, false, &p);
		ok(r.pkt.publish.qos == level - 3, "QoS %u at level %u", level - 3, level);
	}
}

/* ---- acknowledgements ---------------------------------------------------- */

static void test_acks(void)
{
	static const char *const first[] = { "40", "50", "62", "70" };
	for (int i = 0; i < 4; i++) {
		enum mqtt_type t = (enum mqtt_type)(MQTT_PUBACK + i);
		char hx[64];
		snprintf(hx, sizeof(hx), "%s 02 12 34", first[i]);
		struct res r = expect_pkt(mqtt_type_name(t), hx, MQTT_V311, false);
		ok(r.pkt.type == t && r.pkt.packet_id == 0x1234 && r.pkt.reason == 0, "%s fields",
		   mqtt_type_name(t));
		r = expect_pkt(mqtt_type_name(t), hx, MQTT_V5, false);
		ok(r.pkt.reason == 0 && r.pkt.props.present == 0, "5.0 %s short form",
		   mqtt_type_name(t));
		snprintf(hx, sizeof(hx), "%s 03 12 34 00", first[i]);
		expect_err("3.1.1 ack with a reason byte", hx, MQTT_V311, false, MQTT_RC_MALFORMED);

		struct buf b = BUF_INIT;
		snprintf(hx, sizeof(hx), "%s 02 12 34", first[i]);
		ok(mqtt_encode_ack(&b, MQTT_V311, t, 0x1234, 0, NULL, 0) == 0 && buf_is(&b, hx),
		   "encode 3.1.1 %s", mqtt_type_name(t));
		buf_reset(&b);
		ok(mqtt_encode_ack(&b, MQTT_V5, t, 0x1234, 0, NULL, 0) == 0 && buf_is(&b, hx),
		   "encode 5.0 %s short form", mqtt_type_name(t));
		buf_free(&b);
	}
	struct res r = expect_pkt("PUBACK reason only", "40 03 00 01 10", MQTT_V5, false);
	ok(r.pkt.reason == MQTT_RC_NO_MATCHING_SUBSCRIBERS, "PUBACK reason 0x10");
	r = expect_pkt("PUBREC reason and properties",
		       "50 0f 00 01 80 0b 1f 00 03 62 61 64 26 00 00 00 00", MQTT_V5, false);
	ok(r.pkt.reason == 0x80 && str_is(r.pkt.props.reason_string, "bad") &&
		   r.pkt.props.n_user == 1,
	   "PUBREC reason string and user property");
	expect_err("PUBREL with reason 0x10", "62 03 00 01 10", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("PUBACK with an unknown reason", "40 03 00 01 05", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("PUBACK with a topic alias", "40 07 00 01 00 03 23 00 01", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("PUBREL flags 0 at 3.1.1", "60 02 00 01", MQTT_V311, false, MQTT_RC_MALFORMED);
	expect_err("PUBACK flags 2", "42 02 00 01", MQTT_V5, false, MQTT_RC_MALFORMED);
	expect_pkt("PUBREL flags 0 at 3.1 (no reserved flags then)", "60 02 00 01", MQTT_V31,
		   false);
	expect_err("PUBACK too short", "40 01 00", MQTT_V311, false, MQTT_RC_MALFORMED);

	/* 5.0 encodings with a reason and with properties. */
	struct buf b = BUF_INIT;
	ok(mqtt_encode_ack(&b, MQTT_V5, MQTT_PUBREC, 1, MQTT_RC_QUOTA_EXCEEDED, NULL, 0) == 0 &&
		   buf_is(&b, "50 03 00 01 97"),
	   "PUBREC with reason, no properties");
	struct mqtt_props props;
	memset(&props, 0, sizeof(props));
	props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
	props.reason_string = S("no");
	buf_reset(&b);
	ok(mqtt_encode_ack(&b, MQTT_V5, MQTT_PUBCOMP, 1, 0x92, &props, 0) == 0 &&
		   buf_is(&b, "70 09 00 01 92 05 1f 00 02 6e 6f"),
	   "PUBCOMP with reason string");
	buf_reset(&b);
	ok(mqtt_encode_ack(&b, MQTT_V5, MQTT_PUBACK, 1, 0, &props, 0) == 0 &&
		   buf_is(&b, "40 09 00 01 00 05 1f 00 02 6e 6f"),
	   "PUBACK success with properties keeps the reason byte");
	buf_reset(&b);
	ok(mqtt_encode_ack(&b, MQTT_V5, MQTT_PUBREL, 1, 0x10, NULL, 0) == MQTT_ENCODE_INVALID &&
		   b.len == 0,
	   "PUBREL refuses a PUBACK reason code");
	ok(mqtt_encode_ack(&b, MQTT_V311, MQTT_PUBREL, 3, 0, NULL, 0) == 0 &&
		   buf_is(&b, "62 02 00 03"),
	   "PUBREL fixed header flags 0010");
	buf_free(&b);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE --------------------------------------------- */

static void test_subscribe(void)
{
	struct res r = expect_pkt("3.1.1 SUBSCRIBE", "82 0c 00 0a 00 03 61 2f 62 01 00 01 23 02",
				  MQTT_V311, false);
	struct mqtt_filter_iter it;
	struct mqtt_topic_filter f1, f2, f3;
	mqtt_filters_begin(&it, &r.pkt);
	ok(r.pkt.packet_id == 10 && r.pkt.subscribe.count == 2 && r.pkt.subscribe.n_invalid == 0 &&
		   mqtt_filters_next(&it, &f1) && mqtt_filters_next(&it, &f2) &&
		   !mqtt_filters_next(&it, &f3) && str_is(f1.filter, "a/b") && f1.qos == 1 &&
		   str_is(f2.filter, "#") && f2.qos == 2 && f1.reason == 0 && !f1.share.p,
	   "SUBSCRIBE filters");

	r = expect_pkt("5.0 SUBSCRIBE with options, shared and invalid filters",
		       "82 2e 00 01 02 0b 05"
		       " 00 0d 24 73 68 61 72 65 2f 67 31 2f 61 2f 2b 29" /* $share/g1/a/+ rap rh=2 */
		       " 00 03 61 2f 23 04"                         /* a/# no local */
		       " 00 05 61 2f 23 2f 62 00"                   /* a/#/b: invalid */
		       " 00 08 24 73 68 61 72 65 2f 67 00",        /* $share/g: invalid */
		       MQTT_V5, false);
	ok(r.pkt.subscribe.count == 4 && r.pkt.subscribe.n_invalid == 2 &&
		   r.pkt.props.sub_id == 5,
	   "SUBSCRIBE: 4 filters, 2 invalid, subscription identifier 5");
	mqtt_filters_begin(&it, &r.pkt);
	struct mqtt_topic_filter f4;
	bool got = mqtt_filters_next(&it, &f1) && mqtt_filters_next(&it, &f2) &&
		   mqtt_filters_next(&it, &f3) && mqtt_filters_next(&it, &f4);
	ok(got && str_is(f1.share, "g1") && str_is(f1.topic, "a/+") && f1.qos == 1 &&
		   f1.retain_as_published && f1.retain_handling == 2 && !f1.no_local &&
		   f1.reason == 0,
	   "shared subscription split and options");
	ok(got && f2.no_local && f2.qos == 0 && !f2.share.p && str_is(f2.topic, "a/#") &&
		   f3.reason == MQTT_RC_TOPIC_FILTER_INVALID &&
		   f4.reason == MQTT_RC_TOPIC_FILTER_INVALID,
	   "per-filter reasons");

	expect_err("SUBSCRIBE flags 0", "80 06 00 01 00 01 61 00", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	expect_pkt("SUBSCRIBE flags 0 at 3.1", "80 06 00 01 00 01 61 00", MQTT_V31, false);
	expect_err("SUBSCRIBE without filters", "82 02 00 01", MQTT_V311, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("5.0 SUBSCRIBE without filters", "82 03 00 01 00", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("SUBSCRIBE packet id 0", "82 06 00 00 00 01 61 00", MQTT_V311, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("3.1.1 options reserved bit", "82 06 00 01 00 01 61 04", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	expect_err("3.1.1 subscription QoS 3", "82 06 00 01 00 01 61 03", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	expect_err("5.0 options reserved bits", "82 07 00 01 00 00 01 61 40", MQTT_V5, false,
		   MQTT_RC_MALFORMED);
	expect_err("5.0 subscription QoS 3", "82 07 00 01 00 00 01 61 03", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("retain handling 3", "82 07 00 01 00 00 01 61 30", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("no local on a shared subscription",
		   "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 67 2f 61 04", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("missing options byte", "82 05 00 01 00 01 61", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	expect_err("subscription identifier twice", "82 0b 00 01 04 0b 01 0b 02 00 01 61 00",
		   MQTT_V5, false, MQTT_RC_PROTOCOL_ERROR);
	expect_err("subscription identifier 0", "82 09 00 01 02 0b 00 00 01 61 00", MQTT_V5,
		   false, MQTT_RC_PROTOCOL_ERROR);
	expect_err("filter not UTF-8", "82 06 00 01 00 01 80 00", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	r = expect_pkt("empty filter is a per-filter error", "82 05 00 01 00 00 00", MQTT_V311,
		       false);
	ok(r.pkt.subscribe.n_invalid == 1, "empty filter counted invalid");

	r = expect_pkt("3.1.1 UNSUBSCRIBE", "a2 09 00 02 00 01 61 00 02 2b 2b", MQTT_V311, false);
	mqtt_filters_begin(&it, &r.pkt);
	ok(r.pkt.subscribe.count == 2 && r.pkt.subscribe.n_invalid == 1 &&
		   mqtt_filters_next(&it, &f1) && mqtt_filters_next(&it, &f2) &&
		   str_is(f1.filter, "a") && f1.reason == 0 &&
		   f2.reason == MQTT_RC_TOPIC_FILTER_INVALID,
	   "UNSUBSCRIBE filters");
	expect_pkt("5.0 UNSUBSCRIBE with user property",
		   "a2 0d 00 02 07 26 00 01 6b 00 01 76 00 01 61", MQTT_V5, false);
	expect_err("UNSUBSCRIBE without filters", "a2 02 00 01", MQTT_V311, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("UNSUBSCRIBE packet id 0", "a2 05 00 00 00 01 61", MQTT_V311, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("UNSUBSCRIBE flags 0", "a0 05 00 01 00 01 61", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	expect_err("UNSUBSCRIBE with a subscription identifier",
		   "a2 08 00 01 02 0b 01 00 01 61", MQTT_V5, false, MQTT_RC_PROTOCOL_ERROR);

	/* Through the encoder, at every level. */
	static const struct mqtt_topic_filter fs[] = {
		{ .filter = { "a/+/c", 5 }, .qos = 1 },
		{ .filter = { "$share/grp/x/#", 14 }, .qos = 2 },
		{ .filter = { "", 0 }, .qos = 0 },
	};
	static const struct mqtt_topic_filter fs5[] = {
		{ .filter = { "a/b", 3 }, .qos = 1, .no_local = true, .retain_as_published = true,
		  .retain_handling = 1 },
	};
	for (uint8_t level = 3; level <= 5; level++) {
		struct mqtt_packet p;
		memset(&p, 0, sizeof(p));
		p.type = MQTT_SUBSCRIBE;
		p.packet_id = 99;
		p.subscribe.count = 3;
		p.subscribe.filters = fs;
		r = roundtrip("SUBSCRIBE", level, false, &p);
		mqtt_filters_begin(&it, &r.pkt);
		got = mqtt_filters_next(&it, &f1) && mqtt_filters_next(&it, &f2) &&
		      mqtt_filters_next(&it, &f3);
		ok(got && r.pkt.subscribe.n_invalid == 1 && str_is(f2.share, "grp") &&
			   str_is(f2.topic, "x/#") && f2.qos == 2 &&
			   f3.reason == MQTT_RC_TOPIC_FILTER_INVALID,
		   "SUBSCRIBE level %u decoded", level);
		p.type = MQTT_UNSUBSCRIBE;
		r = roundtrip("UNSUBSCRIBE", level, false, &p);
		ok(r.pkt.subscribe.count == 3 && r.pkt.subscribe.n_invalid == 1,
		   "UNSUBSCRIBE level %u decoded", level);
		p.type = MQTT_SUBSCRIBE;
		p.subscribe.count = 1;
		p.subscribe.filters = fs5;
		struct buf b = BUF_INIT;
		int rc = mqtt_encode(&b, level, &p, 0);
		ok(level == 5 ? rc == MQTT_ENCODE_OK : rc == MQTT_ENCODE_INVALID,
		   "5.0 subscription options %s at level %u", level == 5 ? "encode" : "refused",
		   level);
		buf_free(&b);
	}
}

/* ---- server -> client packets -------------------------------------------- */

static void test_server_packets(void)
{
	struct buf b = BUF_INIT;
	ok(mqtt_encode_connack(&b, MQTT_V311, true, 0, NULL, 0) == 0 && buf_is(&b, "20 02 01 00"),
	   "3.1.1 CONNACK session present");
	buf_reset(&b);
	ok(mqtt_encode_connack(&b, MQTT_V31, true, 0, NULL, 0) == 0 && buf_is(&b, "20 02 00 00"),
	   "3.1 CONNACK has no session present flag");
	buf_reset(&b);
	ok(mqtt_encode_connack(&b, MQTT_V311, false, 5, NULL, 0) == 0 &&
		   buf_is(&b, "20 02 00 05"),
	   "3.1.1 CONNACK not authorized");
	buf_reset(&b);
	ok(mqtt_encode_connack(&b, MQTT_V311, false, 6, NULL, 0) == MQTT_ENCODE_INVALID &&
		   mqtt_encode_connack(&b, MQTT_V311, true, 5, NULL, 0) == MQTT_ENCODE_INVALID &&
		   b.len == 0,
	   "3.1.1 CONNACK return code 6, or session present with an error, refused");
	ok(mqtt_encode_connack(&b, MQTT_V5, false, 0, NULL, 0) == 0 &&
		   buf_is(&b, "20 03 00 00 00"),
	   "5.0 CONNACK without properties");
	buf_reset(&b);

	/* Every CONNACK property. */
	static const struct mqtt_user_prop up[] = { { { "node", 4 }, { "a", 1 } } };
	struct mqtt_packet p;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNACK;
	p.connack.session_present = true;
	struct mqtt_props *pp = &p.props;
	pp->present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY) |
		      MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID) |
		      MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE) |
		      MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD) | MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA) |
		      MQTT_PROP_BIT(MQTT_PROP_RESPONSE_INFO) |
		      MQTT_PROP_BIT(MQTT_PROP_SERVER_REFERENCE) |
		      MQTT_PROP_BIT(MQTT_PROP_REASON_STRING) |
		      MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM) |
		      MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM) |
		      MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_QOS) |
		      MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE) |
		      MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE) |
		      MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE) |
		      MQTT_PROP_BIT(MQTT_PROP_SUB_ID_AVAILABLE) |
		      MQTT_PROP_BIT(MQTT_PROP_SHARED_SUB_AVAILABLE);
	pp->session_expiry = 60;
	pp->assigned_client_id = S("auto-1");
	pp->server_keep_alive = 120;
	pp->auth_method = S("PLAIN");
	pp->auth_data = S("x");
	pp->response_info = S("resp/");
	pp->server_reference = S("other:1883");
	pp->reason_string = S("welcome");
	pp->receive_maximum = 100;
	pp->topic_alias_maximum = 16;
	pp->maximum_qos = 1;
	pp->retain_available = 0;
	pp->maximum_packet_size = 1 << 20;
	pp->wildcard_sub_available = 1;
	pp->sub_id_available = 1;
	pp->shared_sub_available = 0;
	pp->n_user = 1;
	pp->user = up;
	struct res r = roundtrip("CONNACK with every property", MQTT_V5, true, &p);
	pp = &r.pkt.props;
	ok(r.pkt.connack.session_present && pp->session_expiry == 60 &&
		   str_is(pp->assigned_client_id, "auto-1") && pp->server_keep_alive == 120 &&
		   str_is(pp->auth_method, "PLAIN") && str_is(pp->auth_data, "x") &&
		   str_is(pp->response_info, "resp/") &&
		   str_is(pp->server_reference, "other:1883") &&
		   str_is(pp->reason_string, "welcome") && pp->receive_maximum == 100 &&
		   pp->topic_alias_maximum == 16 && pp->maximum_qos == 1 &&
		   mqtt_has(pp, MQTT_PROP_RETAIN_AVAILABLE) && pp->retain_available == 0 &&
		   pp->maximum_packet_size == (1u << 20) && pp->wildcard_sub_available == 1 &&
		   pp->sub_id_available == 1 && mqtt_has(pp, MQTT_PROP_SHARED_SUB_AVAILABLE) &&
		   pp->n_user == 1,
	   "CONNACK properties decoded");
	for (uint8_t level = 3; level <= 4; level++) {
		r = roundtrip("CONNACK", level, true, &p);
		ok(r.pkt.connack.session_present == (level == 4) && r.pkt.props.present == 0,
		   "CONNACK level %u", level);
	}
	p.props.present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
	p.props.topic_alias = 1;
	ok(mqtt_encode(&b, MQTT_V5, &p, 0) == MQTT_ENCODE_INVALID && b.len == 0,
	   "CONNACK with a topic alias is refused");
	p.props.present &= ~MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
	p.props.maximum_qos = 2;
	ok(mqtt_encode(&b, MQTT_V5, &p, 0) == MQTT_ENCODE_INVALID, "maximum QoS 2 refused");

	expect_err("CONNACK reserved flags", "20 02 02 00", MQTT_V311, true, MQTT_RC_MALFORMED);
	expect_pkt("3.1 CONNACK ignores the flags byte", "20 02 02 00", MQTT_V31, true);
	expect_err("CONNACK unknown return code", "20 02 00 06", MQTT_V311, true,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("CONNACK session present with error", "20 02 01 05", MQTT_V311, true,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("5.0 CONNACK without property length", "20 02 00 00", MQTT_V5, true,
		   MQTT_RC_MALFORMED);
	expect_err("CONNACK from a client", "20 02 00 00", MQTT_V311, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("maximum QoS 2 in CONNACK", "20 05 00 00 02 24 02", MQTT_V5, true,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("retain available 2", "20 05 00 00 02 25 02", MQTT_V5, true,
		   MQTT_RC_PROTOCOL_ERROR);

	/* SUBACK / UNSUBACK */
	static const uint8_t codes[] = { 0, 1, 2, 0x80 };
	buf_reset(&b);
	ok(mqtt_encode_suback(&b, MQTT_V311, MQTT_SUBACK, 5, codes, 4, NULL, 0) == 0 &&
		   buf_is(&b, "90 06 00 05 00 01 02 80"),
	   "3.1.1 SUBACK");
	buf_reset(&b);
	static const uint8_t codes5[] = { 0x8F, 0xA2, 0x01 };
	ok(mqtt_encode_suback(&b, MQTT_V5, MQTT_SUBACK, 5, codes5, 3, NULL, 0) == 0 &&
		   buf_is(&b, "90 06 00 05 00 8f a2 01"),
	   "5.0 SUBACK");
	r = expect_pkt_bytes("SUBACK decodes", (const uint8_t *)b.data, b.len, MQTT_V5, true);
	ok(r.pkt.suback.count == 3 && memcmp(r.pkt.suback.codes, codes5, 3) == 0,
	   "SUBACK codes");
	buf_reset(&b);
	ok(mqtt_encode_suback(&b, MQTT_V311, MQTT_SUBACK, 5, codes5, 3, NULL, 0) ==
		   MQTT_ENCODE_INVALID,
	   "3.1.1 SUBACK refuses 5.0 codes");
	ok(mqtt_encode_suback(&b, MQTT_V311, MQTT_UNSUBACK, 5, NULL, 0, NULL, 0) == 0 &&
		   buf_is(&b, "b0 02 00 05"),
	   "3.1.1 UNSUBACK");
	buf_reset(&b);
	static const uint8_t ucodes[] = { 0x00, 0x11 };
	ok(mqtt_encode_suback(&b, MQTT_V5, MQTT_UNSUBACK, 5, ucodes, 2, NULL, 0) == 0 &&
		   buf_is(&b, "b0 05 00 05 00 00 11"),
	   "5.0 UNSUBACK");
	r = expect_pkt_bytes("UNSUBACK decodes", (const uint8_t *)b.data, b.len, MQTT_V5, true);
	ok(r.pkt.suback.count == 2, "UNSUBACK codes");
	expect_pkt("3.1.1 UNSUBACK", "b0 02 00 05", MQTT_V311, true);
	expect_err("SUBACK without codes", "90 02 00 01", MQTT_V311, true, MQTT_RC_PROTOCOL_ERROR);
	expect_err("SUBACK code 0x11", "90 04 00 01 00 11", MQTT_V5, true,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("SUBACK from a client", "90 03 00 01 00", MQTT_V311, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("3.1.1 UNSUBACK with payload", "b0 03 00 01 00", MQTT_V311, true,
		   MQTT_RC_MALFORMED);

	/* PINGREQ / PINGRESP */
	buf_reset(&b);
	ok(mqtt_encode_pingresp(&b) == 0 && buf_is(&b, "d0 00"), "PINGRESP");
	r = expect_pkt("PINGRESP decodes", "d0 00", MQTT_V5, true);
	ok(r.pkt.type == MQTT_PINGRESP, "PINGRESP type");
	r = expect_pkt("PINGREQ decodes", "c0 00", MQTT_V311, false);
	ok(r.pkt.type == MQTT_PINGREQ, "PINGREQ type");
	expect_err("PINGREQ with a body", "c0 01 00", MQTT_V311, false, MQTT_RC_MALFORMED);
	expect_err("PINGREQ flags", "c1 00", MQTT_V311, false, MQTT_RC_MALFORMED);
	expect_err("PINGRESP from a client", "d0 00", MQTT_V311, false, MQTT_RC_PROTOCOL_ERROR);
	expect_err("PINGREQ from a server", "c0 00", MQTT_V311, true, MQTT_RC_PROTOCOL_ERROR);
	expect_err("packet type 0", "00 00", MQTT_V311, false, MQTT_RC_MALFORMED);
	buf_free(&b);
}

/* ---- DISCONNECT and AUTH ------------------------------------------------- */

static void test_disconnect_auth(void)
{
	struct buf b = BUF_INIT;
	ok(mqtt_encode_disconnect(&b, MQTT_V311, 0x8E, NULL, 0) == 0 && buf_is(&b, "e0 00"),
	   "3.1.1 DISCONNECT ignores the reason");
	buf_reset(&b);
	ok(mqtt_encode_disconnect(&b, MQTT_V5, 0, NULL, 0) == 0 && buf_is(&b, "e0 00"),
	   "5.0 DISCONNECT normal, short form");
	buf_reset(&b);
	ok(mqtt_encode_disconnect(&b, MQTT_V5, MQTT_RC_SESSION_TAKEN_OVER, NULL, 0) == 0 &&
		   buf_is(&b, "e0 01 8e"),
	   "5.0 DISCONNECT session taken over");
	buf_reset(&b);
	struct mqtt_props props;
	memset(&props, 0, sizeof(props));
	props.present = MQTT_PROP_BIT(MQTT_PROP_SERVER_REFERENCE);
	props.server_reference = S("b:1883");
	ok(mqtt_encode_disconnect(&b, MQTT_V5, MQTT_RC_USE_ANOTHER_SERVER, &props, 0) == 0 &&
		   buf_is(&b, "e0 0b 9c 09 1c 00 06 62 3a 31 38 38 33"),
	   "5.0 DISCONNECT use another server with a reference");
	struct res r = expect_pkt_bytes("DISCONNECT with server reference decodes",
					(const uint8_t *)b.data, b.len, MQTT_V5, true);
	ok(r.pkt.reason == 0x9C && str_is(r.pkt.props.server_reference, "b:1883"),
	   "DISCONNECT fields");
	buf_reset(&b);
	ok(mqtt_encode_disconnect(&b, MQTT_V5, 0x05, NULL, 0) == MQTT_ENCODE_INVALID,
	   "DISCONNECT with an undefined reason is refused");

	r = expect_pkt("3.1.1 DISCONNECT", "e0 00", MQTT_V311, false);
	ok(r.pkt.type == MQTT_DISCONNECT, "DISCONNECT type");
	expect_err("3.1.1 DISCONNECT with a body", "e0 01 00", MQTT_V311, false,
		   MQTT_RC_MALFORMED);
	r = expect_pkt("5.0 DISCONNECT with will", "e0 01 04", MQTT_V5, false);
	ok(r.pkt.reason == MQTT_RC_DISCONNECT_WITH_WILL, "reason 0x04");
	r = expect_pkt("5.0 DISCONNECT with session expiry", "e0 07 00 05 11 00 00 00 0a",
		       MQTT_V5, false);
	ok(r.pkt.props.session_expiry == 10, "session expiry in DISCONNECT");
	expect_err("DISCONNECT reason 0x05", "e0 01 05", MQTT_V5, false, MQTT_RC_PROTOCOL_ERROR);
	expect_err("DISCONNECT with receive maximum", "e0 05 00 03 21 00 01", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	expect_err("DISCONNECT flags", "e2 00", MQTT_V5, false, MQTT_RC_MALFORMED);

	/* AUTH */
	buf_reset(&b);
	ok(mqtt_encode_auth(&b, 0, NULL, 0) == 0 && buf_is(&b, "f0 00"), "AUTH success short");
	memset(&props, 0, sizeof(props));
	props.present = MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD) | MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
	props.auth_method = S("M");
	props.auth_data = S("d");
	buf_reset(&b);
	ok(mqtt_encode_auth(&b, MQTT_RC_CONTINUE_AUTHENTICATION, &props, 0) == 0 &&
		   buf_is(&b, "f0 0a 18 08 15 00 01 4d 16 00 01 64"),
	   "AUTH continue with method and data");
	r = expect_pkt_bytes("AUTH decodes", (const uint8_t *)b.data, b.len, MQTT_V5, false);
	ok(r.pkt.reason == 0x18 && str_is(r.pkt.props.auth_method, "M") &&
		   str_is(r.pkt.props.auth_data, "d"),
	   "AUTH fields");
	buf_reset(&b);
	ok(mqtt_encode_auth(&b, MQTT_RC_REAUTHENTICATE, NULL, 0) == 0 &&
		   buf_is(&b, "f0 02 19 00"),
	   "AUTH with a reason always carries the property length");
	expect_err("AUTH at 3.1.1", "f0 00", MQTT_V311, false, MQTT_RC_MALFORMED);
	expect_err("AUTH reason 0x04", "f0 02 04 00", MQTT_V5, false, MQTT_RC_PROTOCOL_ERROR);
	expect_err("AUTH data without method", "f0 06 18 04 16 00 01 64", MQTT_V5, false,
		   MQTT_RC_PROTOCOL_ERROR);
	struct mqtt_packet p;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_AUTH;
	ok(mqtt_encode(&b, MQTT_V311, &p, 0) == MQTT_ENCODE_INVALID, "AUTH refused before 5.0");
	buf_free(&b);
}

/* ---- maximum packet size on the way out ---------------------------------- */

static void test_encode_limits(void)
{
	struct mqtt_packet p;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBACK;
	p.packet_id = 1;
	p.reason = MQTT_RC_NOT_AUTHORIZED;
	static const struct mqtt_user_prop up[] = { { { "why", 3 }, { "acl", 3 } } };
	p.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
	p.props.reason_string = S("not allowed to publish there");
	p.props.n_user = 1;
	p.props.user = up;
	size_t full = mqtt_encoded_size(MQTT_V5, &p);
	struct buf b = BUF_INIT;
	buf_append(&b, "xy", 2);
	ok(full == 2 + 2 + 1 + 1 + 31 + 11 && mqtt_encode(&b, MQTT_V5, &p, (uint32_t)full - 1) ==
							     MQTT_ENCODE_TOO_LARGE &&
		   b.len == 2,
	   "over the peer's maximum: not written, buffer unchanged (size %zu)", full);
	ok(mqtt_encode(&b, MQTT_V5, &p, (uint32_t)full) == 0 && b.len == 2 + full,
	   "exactly the maximum is written");
	struct mqtt_packet q = p;
	ok(mqtt_trim_to_fit(MQTT_V5, &q, 20) && !mqtt_has(&q.props, MQTT_PROP_REASON_STRING) &&
		   q.props.n_user == 1 && mqtt_encoded_size(MQTT_V5, &q) <= 20,
	   "trim drops the reason string first");
	q = p;
	ok(mqtt_trim_to_fit(MQTT_V5, &q, 8) && q.props.n_user == 0 &&
		   mqtt_encoded_size(MQTT_V5, &q) == 5,
	   "then the user properties");
	q = p;
	ok(mqtt_trim_to_fit(MQTT_V5, &q, (uint32_t)full) &&
		   mqtt_has(&q.props, MQTT_PROP_REASON_STRING),
	   "nothing dropped when it fits");
	memset(&q, 0, sizeof(q));
	q.type = MQTT_PUBLISH;
	q.publish.topic = S("t");
	q.publish.payload.len = 100;
	ok(!mqtt_trim_to_fit(MQTT_V5, &q, 50), "a PUBLISH over the maximum cannot be trimmed");

	/* Invalid input leaves the buffer alone. */
	size_t before = b.len;
	memset(&q, 0, sizeof(q));
	q.type = MQTT_PUBLISH;
	q.publish.topic = S("a/+");
	ok(mqtt_encode(&b, MQTT_V311, &q, 0) == MQTT_ENCODE_INVALID, "wildcard topic refused");
	q.publish.topic = S("a");
	q.publish.qos = 3;
	ok(mqtt_encode(&b, MQTT_V311, &q, 0) == MQTT_ENCODE_INVALID, "QoS 3 refused");
	q.publish.qos = 1;
	ok(mqtt_encode(&b, MQTT_V311, &q, 0) == MQTT_ENCODE_INVALID, "packet id 0 refused");
	q.publish.qos = 0;
	q.publish.topic = S("\xed\xa0\x80");
	ok(mqtt_encode(&b, MQTT_V311, &q, 0) == MQTT_ENCODE_INVALID, "surrogate topic refused");
	static char big[70000];
	memset(big, 'a', sizeof(big));
	q.publish.topic.p = big;
	q.publish.topic.len = sizeof(big);
	ok(mqtt_encode(&b, MQTT_V311, &q, 0) == MQTT_ENCODE_INVALID, "topic over 65535 refused");
	q.publish.topic = S("a");
	q.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
	q.props.reason_string = S("x");
	ok(mqtt_encode(&b, MQTT_V5, &q, 0) == MQTT_ENCODE_INVALID,
	   "reason string in PUBLISH refused");
	ok(mqtt_encode(&b, MQTT_V311, &q, 0) == MQTT_ENCODE_OK,
	   "but properties are ignored below 5.0");
	q.props.present = 0;
	q.props.n_user = 2; /* more than the (empty) list holds */
	ok(mqtt_encode(&b, MQTT_V5, &q, 0) == MQTT_ENCODE_INVALID, "user count without a list");
	q.props.n_user = 0;
	ok(mqtt_encode(&b, 6, &q, 0) == MQTT_ENCODE_INVALID, "level 6 refused");
	ok(b.len == before + 5, "failed encodes appended nothing");
	buf_free(&b);
}

/* ---- streams ------------------------------------------------------------- */

static void test_stream(void)
{
	/* CONNECT then PUBLISH then PINGREQ then DISCONNECT in one buffer,
	 * decoded as a session would: the level comes from CONNECT. */
	const uint8_t *b;
	size_t n = hex("10 0d 00 04 4d 51 54 54 05 02 00 3c 00 00 00"
		       " 32 08 00 01 74 00 05 00 68 69"
		       " c0 00"
		       " e0 00",
		       &b);
	uint8_t level = 0;
	size_t off = 0;
	int types[8], nt = 0;
	while (off < n && nt < 8) {
		struct res r = dec(b + off, n - off, level, false);
		if (r.st != MQTT_DECODE_PACKET)
			break;
		types[nt++] = r.pkt.type;
		if (r.pkt.type == MQTT_CONNECT)
			level = r.pkt.connect.level;
		off += r.consumed;
	}
	ok(off == n && nt == 4 && types[0] == MQTT_CONNECT && types[1] == MQTT_PUBLISH &&
		   types[2] == MQTT_PINGREQ && types[3] == MQTT_DISCONNECT && level == 5,
	   "a stream of four packets");
	struct res r = dec(b, 0, 0, false);
	ok(r.st == MQTT_DECODE_NEED_MORE && r.need == 1, "empty input needs one byte");
	struct mqtt_decode_opts o = { 0, true, 0 };
	struct mqtt_packet p;
	size_t consumed, need;
	struct mqtt_error e;
	ok(mqtt_decode(b, n, &o, &p, &consumed, &need, &e) == MQTT_DECODE_ERROR &&
		   e.reason == MQTT_RC_UNSPECIFIED,
	   "from_server at level 0 is a caller error");
	ok(strcmp(mqtt_type_name(MQTT_UNSUBACK), "UNSUBACK") == 0 &&
		   strcmp(mqtt_prop_name(MQTT_PROP_TOPIC_ALIAS), "topic alias") == 0 &&
		   mqtt_connack_rc_v311(MQTT_RC_MALFORMED) == -1 &&
		   mqtt_connack_rc_v311(MQTT_RC_BAD_USERNAME_OR_PASSWORD) == 4,
	   "names and 3.1.1 return code mapping");
}

int main(void)
{
	test_varint();
	test_max_packet_size();
	test_utf8();
	test_topics();
	test_connect();
	test_publish();
	test_acks();
	test_subscribe();
	test_server_packets();
	test_disconnect_auth();
	test_encode_limits();
	test_stream();
	arena_free();
	return tap_done();
}
