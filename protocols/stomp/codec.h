/* STOMP 1.0/1.1/1.2 codec: pure functions from bytes to frames and back.
 * No I/O, no libevent, no router: the session feeds it bytes and sends what it
 * builds. Every length read from the wire is checked against the limits. */
#ifndef WHARF_STOMP_CODEC_H
#define WHARF_STOMP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum stomp_command {
	STOMP_CMD_UNKNOWN = 0,
	STOMP_CMD_CONNECT,
	STOMP_CMD_STOMP,
	STOMP_CMD_SEND,
	STOMP_CMD_SUBSCRIBE,
	STOMP_CMD_UNSUBSCRIBE,
	STOMP_CMD_ACK,
	STOMP_CMD_NACK,
	STOMP_CMD_BEGIN,
	STOMP_CMD_COMMIT,
	STOMP_CMD_ABORT,
	STOMP_CMD_DISCONNECT,
	STOMP_CMD_CONNECTED,
	STOMP_CMD_MESSAGE,
	STOMP_CMD_RECEIPT,
	STOMP_CMD_ERROR,
};

/* Protocol versions as the session negotiates them; 0 means "not yet
 * negotiated" and decodes like 1.0 (no header escaping). */
enum stomp_version {
	STOMP_V_NONE = 0,
	STOMP_V10 = 10,
	STOMP_V11 = 11,
	STOMP_V12 = 12,
};

struct stomp_limits {
	size_t max_frame_size;    /* command + headers + body, in bytes */
	size_t max_headers;       /* number of header lines */
	size_t max_header_length; /* one header line, name and value, in bytes */
};

struct stomp_header {
	char *name;  /* NUL-terminated, unescaped */
	char *value; /* NUL-terminated, unescaped */
	size_t value_len;
};

/* A decoded frame. stomp_decode() allocates it; stomp_frame_free() frees it.
 * The body is its own allocation so a session can take it (set frame->body
 * to NULL after taking) and hand it to a message without copying. The body
 * always has a NUL after body_len bytes, so text bodies can be used as C
 * strings; a body may itself contain NUL bytes when content-length is given. */
struct stomp_frame {
	enum stomp_command command;
	size_t nheaders;
	struct stomp_header *headers;
	uint8_t *body;
	size_t body_len;
};

enum stomp_decode_status {
	STOMP_DECODE_FRAME,     /* *out holds a frame; *consumed bytes used */
	STOMP_DECODE_HEARTBEAT, /* only EOLs were consumed (*consumed > 0) */
	STOMP_DECODE_NEED_MORE, /* nothing consumed; *need is the least total
				   length worth trying again with */
	STOMP_DECODE_ERROR,     /* malformed or over a limit; *err says why */
};

/* Decode the first frame (or the heart-beat EOLs) at the start of buf.
 * On STOMP_DECODE_FRAME the caller owns *out and frees it with
 * stomp_frame_free(). On error *err points to a static message fit for the
 * ERROR frame's `message` header. `version` selects header escaping; the
 * CONNECT, STOMP and CONNECTED frames are never unescaped, as the spec says.
 * *scanned carries the search for the NUL that ends a frame without
 * content-length from one call to the next, so that a body arriving in
 * small pieces is searched once, not once per piece: pass 0 for a new
 * frame and, after NEED_MORE, the value it left, with the same bytes at
 * the start of buf (and more after them). It is 0 after any other result. */
enum stomp_decode_status stomp_decode(const uint8_t *buf, size_t len, enum stomp_version version,
				      const struct stomp_limits *lim, struct stomp_frame **out,
				      size_t *consumed, size_t *need, size_t *scanned,
				      const char **err);

void stomp_frame_free(struct stomp_frame *f);

/* First value of header `name` (the spec: the first occurrence wins), or NULL. */
const char *stomp_frame_get(const struct stomp_frame *f, const char *name);

const char *stomp_command_name(enum stomp_command cmd);

/* Append "COMMAND\n" to out. */
int stomp_encode_command(struct buf *out, enum stomp_command cmd);
/* Append "name:value\n", escaped for `version` unless the command is
 * CONNECT, STOMP or CONNECTED (never escaped). Returns -1 and appends
 * nothing for what no STOMP frame can carry: a NUL in the value, an empty
 * name, or (unescaped) a raw LF, a ':' in the name or a trailing CR. */
int stomp_encode_header(struct buf *out, enum stomp_version version, enum stomp_command cmd,
			const char *name, const char *value, size_t value_len);
/* Append the blank line that ends the headers. The body and its NUL are the
 * caller's to add (they may be added by reference, without a copy). */
int stomp_encode_end_headers(struct buf *out);

#endif
