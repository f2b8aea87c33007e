/* The WebSocket opening handshake (RFC 6455 §4.2): a pure parser of the
 * client's HTTP/1.1 upgrade request and the pieces of the server's answer.
 * No I/O; every length is checked against the buffer and the limit. */
#ifndef WHARF_WS_HANDSHAKE_H
#define WHARF_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#define WS_KEY_MAX 64
#define WS_FIELD_MAX 512

/* What the server needs from the request. Strings are NUL-terminated
 * copies, cut at their array size (a longer value is an error). */
struct ws_request {
	char key[WS_KEY_MAX];           /* Sec-WebSocket-Key */
	char protocols[WS_FIELD_MAX];   /* Sec-WebSocket-Protocol, as sent (comma list) */
	char origin[WS_FIELD_MAX];      /* Origin, or "" */
	char host[WS_FIELD_MAX];        /* Host, or "" */
	bool has_origin;
};

enum ws_hs_status {
	WS_HS_NEED_MORE, /* no complete request yet */
	WS_HS_OK,        /* *req filled, *consumed bytes used */
	WS_HS_ERROR,     /* *status is the HTTP status to answer, *why says why */
};

/* Parses the request at the start of buf; at most `max` bytes may make up
 * the request line and headers (past that: 431). */
enum ws_hs_status ws_handshake_parse(const char *buf, size_t len, size_t max,
				     struct ws_request *req, size_t *consumed, int *status,
				     const char **why);

/* The Sec-WebSocket-Accept value for a key: base64(SHA-1(key + GUID)),
 * 28 characters and a NUL. */
void ws_accept_value(const char *key, char out[29]);

/* The first of the client's offered subprotocols (a comma-separated list)
 * that is in `supported` (NULL-terminated), or NULL. */
const char *ws_pick_protocol(const char *offered, const char *const *supported);

#endif
