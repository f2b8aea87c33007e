/* The replication link's wire format (docs/ha.md, "Replication link"): a
 * pure codec, bytes in and frames out, every length checked. No libevent,
 * no sockets: wharfd's link (ha.c), wharfctl and the fuzz target share it.
 *
 * A frame: u32 length (little endian) of what follows, u8 type, payload.
 * Integers in payloads are little endian; a string is a u16 length and its
 * bytes (at most REPL_STR_MAX, no NUL inside). Pure functions, any thread. */
#ifndef WHARF_HA_FRAME_H
#define WHARF_HA_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/record.h"

/* The largest frame once the peer has proved the secret: a DATA frame, its
 * fields and a segment's header, with the largest record a journal may hold
 * (a message of up to JREC_MAX_PAYLOAD bytes travels in one frame; records
 * are otherwise shipped a REPL_CHUNK at a time). Before that,
 * REPL_FRAME_AUTH. */
#define REPL_FRAME_MAX (JSEG_HEADER + JREC_HEADER + JREC_MAX_PAYLOAD + 64u)
#define REPL_FRAME_AUTH 4096u
#define REPL_NONCE 32u
#define REPL_MAC 32u
#define REPL_STR_MAX 1024u

enum repl_type {
	REPL_CHALLENGE = 1, /* listener -> connector: nonce_a, node_id */
	REPL_HELLO,         /* proof, nonce_b, node_id, last_seq, oldest, role, epoch */
	REPL_WELCOME,       /* proof, node_id, advertise, mode, from, oldest, last,
	                     * epoch, epoch_start */
	REPL_SEG_BEGIN,     /* first */
	REPL_DATA,          /* segment, offset, last_seq, bytes */
	REPL_STUB,          /* first, next */
	REPL_DROP,          /* first */
	REPL_ACK,           /* seq */
	REPL_HEARTBEAT,     /* nothing */
	REPL_PROMOTE,       /* nothing: control -> standby */
	REPL_STATUS,        /* nothing: control -> node */
	REPL_TEXT,          /* text: the answer to PROMOTE, STATUS or FAILOVER */
	REPL_FAILOVER,      /* nothing: control -> active, a planned switch-over */
	REPL_LINK_DROP,     /* hold_ms: control -> active, drop the standby's link */
	REPL_TYPE_MAX = REPL_LINK_DROP,
};

/* HELLO's role: what the connecting side wants. */
enum repl_role { REPL_ROLE_STANDBY = 1, REPL_ROLE_CONTROL = 2 };
/* WELCOME's mode: where the standby's copy starts. */
enum repl_mode { REPL_MODE_CATCHUP = 1, REPL_MODE_FULL = 2, REPL_MODE_CONTROL = 3 };

/* A string inside a frame: not NUL-terminated. */
struct repl_str {
	const char *p;
	size_t len;
};

struct repl_frame {
	uint8_t type;
	const uint8_t *payload; /* points into the parsed bytes */
	size_t len;
};

/* The frame at p[0..n): 1 and *out, *used set when it is whole; 0 when more
 * bytes are needed; -1 when it cannot be a frame (a length over `max` or
 * under 1, an unknown type). */
int repl_frame_parse(const uint8_t *p, size_t n, size_t max, struct repl_frame *out, size_t *used);
/* Writes the 5-byte head of a frame with `len` payload bytes. */
#define REPL_HEAD 5u
void repl_frame_head(uint8_t *out, uint8_t type, size_t len);

struct repl_challenge {
	uint8_t nonce[REPL_NONCE];
	struct repl_str node_id;
};
struct repl_hello {
	uint8_t proof[REPL_MAC];
	uint8_t nonce[REPL_NONCE];
	struct repl_str node_id;
	uint64_t last_seq;  /* its last durable record, 0: none */
	uint64_t oldest;    /* first number of its oldest segment, 0: none */
	uint8_t role;       /* enum repl_role */
	uint64_t epoch;     /* the epoch of the history its journal holds (ha/epoch.h) */
};
struct repl_welcome {
	uint8_t proof[REPL_MAC];
	struct repl_str node_id;
	struct repl_str advertise;
	uint8_t mode;       /* enum repl_mode */
	uint64_t from;      /* CATCHUP: the standby drops its segments >= from */
	uint64_t oldest;    /* ... and those below the active's oldest */
	uint64_t last_seq;  /* the active's last durable record */
	uint64_t epoch;       /* the active's epoch */
	uint64_t epoch_start; /* the first record the active wrote in it */
};
struct repl_data {
	uint64_t segment, offset, last_seq;
	const uint8_t *bytes;
	size_t len;
};

/* Payload decoders: 0, or -1 when the payload is malformed (too short, too
 * long, a string too long or holding a NUL, a field out of range). */
int repl_challenge_decode(const struct repl_frame *f, struct repl_challenge *out);
int repl_hello_decode(const struct repl_frame *f, struct repl_hello *out);
int repl_welcome_decode(const struct repl_frame *f, struct repl_welcome *out);
int repl_data_decode(const struct repl_frame *f, struct repl_data *out);
/* Frames of n u64 fields (SEG_BEGIN, DROP, ACK, LINK_DROP: 1; STUB: 2; HEARTBEAT,
 * PROMOTE, STATUS, FAILOVER: 0). */
int repl_u64s_decode(const struct repl_frame *f, uint64_t *v, size_t n);
int repl_text_decode(const struct repl_frame *f, struct repl_str *out);

/* Encoders into a caller's buffer: the whole frame's size, or 0 when it
 * does not fit in cap or a string is too long. */
size_t repl_challenge_encode(uint8_t *out, size_t cap, const struct repl_challenge *c);
size_t repl_hello_encode(uint8_t *out, size_t cap, const struct repl_hello *h);
size_t repl_welcome_encode(uint8_t *out, size_t cap, const struct repl_welcome *w);
/* DATA's head and fields (the bytes follow, len of them). */
#define REPL_DATA_HEAD (REPL_HEAD + 24u)
void repl_data_head(uint8_t *out, uint64_t segment, uint64_t offset, uint64_t last_seq, size_t len);
size_t repl_u64s_encode(uint8_t *out, size_t cap, uint8_t type, const uint64_t *v, size_t n);
size_t repl_text_encode(uint8_t *out, size_t cap, const char *text, size_t len);

#endif
