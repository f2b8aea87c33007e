/* MQTT 3.1 / 3.1.1 / 5.0 codec: pure functions from bytes to packets and back.
 * No I/O, no libevent, no router: the session feeds it bytes and sends what it
 * builds. Every length read from the wire is checked against what remains.
 *
 * Ownership and lifetimes
 *
 * - Decoding is zero-copy and allocation-free. mqtt_decode() fills a struct
 *   mqtt_packet that the caller provides (on its stack, typically). Every
 *   string, binary field and payload in it is a struct mqtt_str pointing into
 *   the caller's input buffer: valid until the caller drains or moves those
 *   bytes, never NUL-terminated. Nothing needs freeing.
 * - Variable-count lists (SUBSCRIBE / UNSUBSCRIBE topic filters, user
 *   properties, subscription identifiers) are validated in place by the
 *   decoder and walked afterwards with the iterators below, so there is no
 *   capacity limit and no allocation either. SUBACK / UNSUBACK reason codes
 *   are a plain pointer into the buffer.
 * - Encoders append a whole packet to a struct buf (util/buf.h) or nothing:
 *   they never leave a partial packet behind, and never abort on OOM. They
 *   read the same structs the decoder fills (so a decoded packet can be
 *   re-encoded as it is), plus caller-owned arrays for the lists; they keep no
 *   pointer to anything after they return.
 *
 * Protocol levels: 3 is MQTT 3.1 ("MQIsdp"), 4 is 3.1.1, 5 is 5.0. Level 0
 * means "no CONNECT yet": the only packet decoded then is CONNECT, which
 * carries its own level (the session then passes that level from there on). */
#ifndef WHARF_MQTT_CODEC_H
#define WHARF_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
	MQTT_AUTH = 15,
};

enum mqtt_level {
	MQTT_LEVEL_NONE = 0, /* before CONNECT */
	MQTT_V31 = 3,
	MQTT_V311 = 4,
	MQTT_V5 = 5,
};

/* The largest remaining length a varint can carry, and so the largest packet. */
#define MQTT_MAX_REMAINING 268435455u
#define MQTT_MAX_PACKET_SIZE (MQTT_MAX_REMAINING + 5u)

/* MQTT 5 reason codes (section 2.4). 3.1.1 has none except CONNACK's return
 * codes; see mqtt_connack_rc_v311(). */
enum mqtt_reason {
	MQTT_RC_SUCCESS = 0x00, /* also normal disconnection, granted QoS 0 */
	MQTT_RC_GRANTED_QOS1 = 0x01,
	MQTT_RC_GRANTED_QOS2 = 0x02,
	MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
	MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
	MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
	MQTT_RC_CONTINUE_AUTHENTICATION = 0x18,
	MQTT_RC_REAUTHENTICATE = 0x19,
	MQTT_RC_UNSPECIFIED = 0x80,
	MQTT_RC_MALFORMED = 0x81,
	MQTT_RC_PROTOCOL_ERROR = 0x82,
	MQTT_RC_IMPLEMENTATION_SPECIFIC = 0x83,
	MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
	MQTT_RC_CLIENT_ID_NOT_VALID = 0x85,
	MQTT_RC_BAD_USERNAME_OR_PASSWORD = 0x86,
	MQTT_RC_NOT_AUTHORIZED = 0x87,
	MQTT_RC_SERVER_UNAVAILABLE = 0x88,
	MQTT_RC_SERVER_BUSY = 0x89,
	MQTT_RC_BANNED = 0x8A,
	MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
	MQTT_RC_BAD_AUTHENTICATION_METHOD = 0x8C,
	MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
	MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
	MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
	MQTT_RC_TOPIC_NAME_INVALID = 0x90,
	MQTT_RC_PACKET_ID_IN_USE = 0x91,
	MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
	MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93,
	MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
	MQTT_RC_PACKET_TOO_LARGE = 0x95,
	MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
	MQTT_RC_QUOTA_EXCEEDED = 0x97,
	MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
	MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
	MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
	MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
	MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
	MQTT_RC_SERVER_MOVED = 0x9D,
	MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
	MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
	MQTT_RC_MAXIMUM_CONNECT_TIME = 0xA0,
	MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
	MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* MQTT 5 property identifiers (section 2.2.2.2). */
enum mqtt_prop_id {
	MQTT_PROP_PAYLOAD_FORMAT = 0x01,
	MQTT_PROP_MESSAGE_EXPIRY = 0x02,
	MQTT_PROP_CONTENT_TYPE = 0x03,
	MQTT_PROP_RESPONSE_TOPIC = 0x08,
	MQTT_PROP_CORRELATION_DATA = 0x09,
	MQTT_PROP_SUB_ID = 0x0B,
	MQTT_PROP_SESSION_EXPIRY = 0x11,
	MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
	MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
	MQTT_PROP_AUTH_METHOD = 0x15,
	MQTT_PROP_AUTH_DATA = 0x16,
	MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
	MQTT_PROP_WILL_DELAY = 0x18,
	MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
	MQTT_PROP_RESPONSE_INFO = 0x1A,
	MQTT_PROP_SERVER_REFERENCE = 0x1C,
	MQTT_PROP_REASON_STRING = 0x1F,
	MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
	MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
	MQTT_PROP_TOPIC_ALIAS = 0x23,
	MQTT_PROP_MAXIMUM_QOS = 0x24,
	MQTT_PROP_RETAIN_AVAILABLE = 0x25,
	MQTT_PROP_USER = 0x26,
	MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
	MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
	MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Bit of a property in mqtt_props.present. */
#define MQTT_PROP_BIT(id) ((uint64_t)1 << (id))

/* A length-counted byte string: a UTF-8 string (validated: well formed, no
 * surrogates, no overlong forms, no U+0000), binary data or a payload.
 * Not NUL-terminated. p is NULL only when the field is absent (len 0). */
struct mqtt_str {
	const char *p;
	uint32_t len;
};

struct mqtt_user_prop {
	struct mqtt_str key;
	struct mqtt_str value;
};

/* Every MQTT 5 property: a presence bit in `present` (MQTT_PROP_BIT(id))
 * and a value. Values of absent properties are 0 / empty.
 *
 * Lists: user properties and subscription identifiers.
 * - Decoded: n_user / n_sub_ids count them, sub_id is the first
 *   subscription identifier (SUBSCRIBE carries at most one), `user` and
 *   `sub_ids` are NULL, and `raw` is the property block as received (ids and
 *   values); walk the lists with mqtt_user_props_*() / mqtt_sub_ids_*().
 * - To encode: set n_user and point `user` at that many entries, or leave
 *   `user` NULL to take the first n_user from `raw` (a decoded block, to pass
 *   properties on unchanged). Subscription identifiers: n_sub_ids of them
 *   from `sub_ids`; with `sub_ids` NULL, one is `sub_id` and several come
 *   from `raw`. So a session forwarding a decoded PUBLISH's properties sets
 *   n_sub_ids = 1 and sub_id to the subscriber's identifier (and clears the
 *   topic alias, which is per connection). The presence
 *   bits of MQTT_PROP_USER and MQTT_PROP_SUB_ID are ignored by encoders: the
 *   counts decide. A zeroed struct is "no properties". */
struct mqtt_props {
	uint64_t present;

	uint8_t payload_format;           /* 0x01: 0 bytes, 1 UTF-8 */
	uint32_t message_expiry;          /* 0x02: seconds */
	struct mqtt_str content_type;     /* 0x03 */
	struct mqtt_str response_topic;   /* 0x08: a topic name */
	struct mqtt_str correlation_data; /* 0x09: binary */
	uint32_t sub_id;                  /* 0x0B: first subscription identifier */
	uint32_t session_expiry;          /* 0x11: seconds */
	struct mqtt_str assigned_client_id; /* 0x12 */
	uint16_t server_keep_alive;       /* 0x13: seconds */
	struct mqtt_str auth_method;      /* 0x15 */
	struct mqtt_str auth_data;        /* 0x16: binary */
	uint8_t request_problem_info;     /* 0x17: 0 or 1 */
	uint32_t will_delay;              /* 0x18: seconds */
	uint8_t request_response_info;    /* 0x19: 0 or 1 */
	struct mqtt_str response_info;    /* 0x1A */
	struct mqtt_str server_reference; /* 0x1C */
	struct mqtt_str reason_string;    /* 0x1F */
	uint16_t receive_maximum;         /* 0x21: never 0 */
	uint16_t topic_alias_maximum;     /* 0x22 */
	uint16_t topic_alias;             /* 0x23: never 0 */
	uint8_t maximum_qos;              /* 0x24: 0 or 1 */
	uint8_t retain_available;         /* 0x25: 0 or 1 */
	uint32_t maximum_packet_size;     /* 0x27: never 0 */
	uint8_t wildcard_sub_available;   /* 0x28: 0 or 1 */
	uint8_t sub_id_available;         /* 0x29: 0 or 1 */
	uint8_t shared_sub_available;     /* 0x2A: 0 or 1 */

	uint32_t n_user;                   /* 0x26 */
	const struct mqtt_user_prop *user; /* encode: n_user entries, or NULL */
	uint32_t n_sub_ids;                /* 0x0B, PUBLISH may carry several */
	const uint32_t *sub_ids;           /* encode: n_sub_ids entries, or NULL */
	struct mqtt_str raw;               /* decode: the whole property block */
};

static inline bool mqtt_has(const struct mqtt_props *p, enum mqtt_prop_id id)
{
	return (p->present & MQTT_PROP_BIT(id)) != 0;
}

/* One SUBSCRIBE or UNSUBSCRIBE entry. */
struct mqtt_topic_filter {
	struct mqtt_str filter; /* as on the wire, "$share/GROUP/" included */
	struct mqtt_str share;  /* the share name of "$share/GROUP/f"; p NULL if not shared */
	struct mqtt_str topic;  /* the filter to match: `filter` without "$share/GROUP/" */
	uint8_t qos;            /* SUBSCRIBE: maximum QoS, 0..2 */
	bool no_local;          /* 5.0 only */
	bool retain_as_published; /* 5.0 only */
	uint8_t retain_handling;  /* 5.0 only: 0..2 */
	/* Decode: MQTT_RC_SUCCESS, or MQTT_RC_TOPIC_FILTER_INVALID for an
	 * empty filter, a misplaced '#' or '+', or a bad "$share/" name. Such a
	 * filter does not fail the packet: the session answers it with its own
	 * SUBACK / UNSUBACK code (0x8F in 5.0, 0x80 in 3.1.1 SUBACK) or closes
	 * the connection, as it prefers. Ignored by the encoder. */
	uint8_t reason;
};

struct mqtt_connect {
	struct mqtt_str protocol_name; /* decode: "MQTT" or "MQIsdp" */
	uint8_t level;                 /* 3, 4 or 5 (decode; the encoder uses its own `level`) */
	bool clean_start;              /* "clean session" before 5.0 */
	bool will;
	uint8_t will_qos;
	bool will_retain;
	bool has_username;
	bool has_password;
	uint16_t keep_alive;
	struct mqtt_str client_id;
	struct mqtt_str will_topic;    /* a valid topic name when `will` */
	struct mqtt_str will_payload;  /* binary */
	struct mqtt_str username;
	struct mqtt_str password;      /* binary */
	struct mqtt_props will_props;  /* 5.0 */
};

struct mqtt_connack {
	bool session_present; /* always false at level 3 */
};

struct mqtt_publish {
	uint8_t qos;
	bool dup;
	bool retain;
	struct mqtt_str topic; /* may be empty in 5.0 with a topic alias */
	struct mqtt_str payload;
};

/* SUBSCRIBE and UNSUBSCRIBE. */
struct mqtt_subscribe {
	uint32_t count;     /* at least 1 */
	uint32_t n_invalid; /* decode: entries whose reason is not success */
	const struct mqtt_topic_filter *filters; /* encode: count entries */
	struct mqtt_str raw; /* decode: the payload, walked by the iterator */
};

/* SUBACK and UNSUBACK: one reason code per filter (UNSUBACK has none
 * before 5.0). */
struct mqtt_suback {
	uint32_t count;
	const uint8_t *codes;
};

struct mqtt_packet {
	enum mqtt_type type;
	uint8_t flags;      /* decode: low nibble of the fixed header, as received */
	uint32_t size;      /* decode: whole packet, fixed header included */
	uint16_t packet_id; /* PUBLISH QoS > 0, PUBACK..PUBCOMP, (UN)SUBSCRIBE, (UN)SUBACK */
	/* CONNACK: the 5.0 reason code, or the 3.1.1 / 3.1 return code (0-5).
	 * PUBACK..PUBCOMP, DISCONNECT, AUTH: the 5.0 reason code (0 when the
	 * packet omits it, and always 0 before 5.0). */
	uint8_t reason;
	struct mqtt_props props; /* 5.0 only; zeroed otherwise */
	union {
		struct mqtt_connect connect;
		struct mqtt_connack connack;
		struct mqtt_publish publish;
		struct mqtt_subscribe subscribe; /* SUBSCRIBE, UNSUBSCRIBE */
		struct mqtt_suback suback;       /* SUBACK, UNSUBACK */
	};
};

/* ---- decoding ------------------------------------------------------------ */

struct mqtt_decode_opts {
	uint8_t level; /* 0 (expect CONNECT), 3, 4 or 5 */
	/* false: decode what a client sends (the broker's view); packets only a
	 * server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) are a protocol
	 * error. true: the client's view, the other way round (tests, bridges).
	 * With from_server the level must be 3, 4 or 5. */
	bool from_server;
	/* Largest whole packet accepted, fixed header included; 0 means the
	 * protocol's own maximum. Checked from the fixed header alone, so an
	 * oversized packet is refused before its body is buffered. */
	uint32_t max_packet_size;
};

enum mqtt_decode_status {
	MQTT_DECODE_PACKET,    /* *out holds a packet of *consumed bytes */
	MQTT_DECODE_NEED_MORE, /* nothing consumed; *need is the least total length
				  worth trying again with (the exact packet size once
				  the fixed header is in) */
	MQTT_DECODE_ERROR,     /* *err says why; close the connection */
};

struct mqtt_error {
	/* The MQTT 5 reason code to put in DISCONNECT (or in CONNACK, for an
	 * error in CONNECT): 0x81 malformed, 0x82 protocol error, 0x84
	 * unsupported protocol version, 0x85 client identifier not valid, 0x90
	 * topic name invalid, 0x94 topic alias invalid, 0x95 packet too large;
	 * 0x80 for a bad argument. Before 5.0 it only says what went wrong. */
	uint8_t reason;
	const char *why; /* static text for logs */
	uint8_t type;    /* the packet type, once its first byte was read; else 0 */
	uint8_t level;   /* CONNECT: the level the client asked for, once read; else 0 */
};

/* Decode the first packet at the start of buf. Nothing is allocated; on
 * MQTT_DECODE_PACKET *out points into buf (see the top of this file).
 * Errors (with the decisions this codec makes where the spec leaves the
 * code open) are listed in codec.c; the session maps err->reason for 3.1.1
 * clients with mqtt_connack_rc_v311() when the packet was a CONNECT.
 * Topic filter problems in (UN)SUBSCRIBE are reported per filter (see
 * struct mqtt_topic_filter), not as a packet error. */
enum mqtt_decode_status mqtt_decode(const uint8_t *buf, size_t len,
				    const struct mqtt_decode_opts *opts, struct mqtt_packet *out,
				    size_t *consumed, size_t *need, struct mqtt_error *err);

/* Walk the filters of a decoded (UN)SUBSCRIBE, or of one built for encoding
 * (pkt->subscribe.filters). Entries come out in packet order, with share,
 * topic and reason filled in. */
struct mqtt_filter_iter {
	const uint8_t *p, *end;
	const struct mqtt_topic_filter *arr;
	uint32_t i, n;
	bool options; /* SUBSCRIBE: an options byte follows each filter */
};
void mqtt_filters_begin(struct mqtt_filter_iter *it, const struct mqtt_packet *pkt);
bool mqtt_filters_next(struct mqtt_filter_iter *it, struct mqtt_topic_filter *out);

/* Walk user properties (in order, duplicates kept, as the spec requires)
 * and subscription identifiers, from the arrays or the raw block. */
struct mqtt_prop_iter {
	const uint8_t *p, *end;
	const struct mqtt_user_prop *user;
	const uint32_t *ids;
	uint32_t single;
	uint32_t i, n;
};
void mqtt_user_props_begin(struct mqtt_prop_iter *it, const struct mqtt_props *props);
bool mqtt_user_props_next(struct mqtt_prop_iter *it, struct mqtt_user_prop *out);
void mqtt_sub_ids_begin(struct mqtt_prop_iter *it, const struct mqtt_props *props);
bool mqtt_sub_ids_next(struct mqtt_prop_iter *it, uint32_t *out);

/* ---- encoding ------------------------------------------------------------ */

enum mqtt_encode_status {
	MQTT_ENCODE_OK = 0,
	MQTT_ENCODE_NOMEM = -1,     /* out of memory; out unchanged */
	MQTT_ENCODE_INVALID = -2,   /* cannot be expressed at this level (bad UTF-8,
				       a string over 65535 bytes, QoS 3, packet id 0,
				       a property this packet may not carry, AUTH
				       before 5.0, ...); out unchanged */
	MQTT_ENCODE_TOO_LARGE = -3, /* over max_packet_size or the protocol limit */
};

/* Size in bytes of the whole packet mqtt_encode() would write (for PUBLISH,
 * publish.payload.len bytes of payload included), or 0 if it cannot be
 * encoded at `level`. Packet properties (`props`) are only written at level 5
 * and ignored below it, so one packet struct serves every level. */
size_t mqtt_encoded_size(uint8_t level, const struct mqtt_packet *p);

/* Append packet p, encoded for `level`, to out. max_packet_size (0: none)
 * is the peer's Maximum Packet Size: a packet over it is not written
 * (MQTT_ENCODE_TOO_LARGE) and the session drops properties
 * (mqtt_trim_to_fit()) or skips the message, as MQTT 5 requires. Every
 * packet type can be encoded, so tests can play the client; the fields used
 * are the ones the decoder fills. On any failure out is unchanged. */
int mqtt_encode(struct buf *out, uint8_t level, const struct mqtt_packet *p,
		uint32_t max_packet_size);

/* Like mqtt_encode() for a PUBLISH, but stop before the payload: the
 * remaining length still counts publish.payload.len bytes (publish.payload.p
 * may be NULL), which the caller sends next, possibly by reference. */
int mqtt_encode_publish_head(struct buf *out, uint8_t level, const struct mqtt_packet *p,
			     uint32_t max_packet_size);

/* Drop what MQTT 5 lets a sender drop to fit the peer's Maximum Packet Size:
 * first the reason string, then the user properties. Returns true once
 * mqtt_encoded_size() fits (trimming only as much as needed), false if even
 * the bare packet does not (PUBLISH: the message must be skipped). */
bool mqtt_trim_to_fit(uint8_t level, struct mqtt_packet *p, uint32_t max_packet_size);

/* Convenience encoders for the server side. `props` may be NULL. */
int mqtt_encode_connack(struct buf *out, uint8_t level, bool session_present, uint8_t reason,
			const struct mqtt_props *props, uint32_t max_packet_size);
/* PUBACK, PUBREC, PUBREL or PUBCOMP; 5.0 uses the short form when the
 * reason is 0 and there are no properties. */
int mqtt_encode_ack(struct buf *out, uint8_t level, enum mqtt_type type, uint16_t packet_id,
		    uint8_t reason, const struct mqtt_props *props, uint32_t max_packet_size);
/* SUBACK or UNSUBACK with n reason codes (UNSUBACK before 5.0 ignores them). */
int mqtt_encode_suback(struct buf *out, uint8_t level, enum mqtt_type type, uint16_t packet_id,
		       const uint8_t *codes, uint32_t n, const struct mqtt_props *props,
		       uint32_t max_packet_size);
int mqtt_encode_pingresp(struct buf *out);
/* DISCONNECT: reason and props at 5.0; the two bytes E0 00 before. */
int mqtt_encode_disconnect(struct buf *out, uint8_t level, uint8_t reason,
			   const struct mqtt_props *props, uint32_t max_packet_size);
int mqtt_encode_auth(struct buf *out, uint8_t reason, const struct mqtt_props *props,
		     uint32_t max_packet_size);

/* ---- helpers ------------------------------------------------------------- */

/* The 3.1.1 / 3.1 CONNACK return code for an MQTT 5 reason code found in a
 * CONNECT, or -1 when 3.1.1 wants the connection closed without a CONNACK
 * (malformed packets and protocol errors): 0x84 -> 1, 0x85 -> 2, 0x88 / 0x89
 * -> 3, 0x86 -> 4, 0x87 -> 5, 0 -> 0. */
int mqtt_connack_rc_v311(uint8_t reason);

/* Well-formed UTF-8 (RFC 3629: no surrogates, no overlong forms, nothing
 * past U+10FFFF) without U+0000, as MQTT requires of every string. Also
 * what a session may use to check a payload with payload format 1. */
bool mqtt_utf8_valid(const void *s, size_t n);
/* A topic name as PUBLISH carries it: non-empty, no '+' or '#'. */
bool mqtt_topic_name_valid(const void *s, size_t n);
/* A topic filter: non-empty, '#' alone in the last level, '+' alone in its
 * level. Does not look at "$share/" (mqtt_filters_next() does). */
bool mqtt_topic_filter_valid(const void *s, size_t n);

const char *mqtt_type_name(enum mqtt_type t);
const char *mqtt_prop_name(enum mqtt_prop_id id);

bool mqtt_str_eq(struct mqtt_str a, struct mqtt_str b);
/* Field-by-field equality of two packets as decoded at `level` (lists
 * compared entry by entry, in order; raw pointers, flags and size ignored).
 * For tests and the fuzz target. */
bool mqtt_props_equal(const struct mqtt_props *a, const struct mqtt_props *b);
bool mqtt_packet_equal(uint8_t level, const struct mqtt_packet *a, const struct mqtt_packet *b);

#endif
