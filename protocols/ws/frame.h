/* WebSocket framing (RFC 6455), server side, on wslay, with no I/O: bytes
 * from the client go in through ws_framer_recv(); the payload of each
 * complete data message comes out through `on_data`, and every byte for the
 * client (our messages, pongs, close frames) through `on_send`, in order.
 * wslay enforces client masking, the fragmentation and control frame rules,
 * close codes, UTF-8 in text messages and close reasons, and the maximum
 * message size, answering each violation with its RFC 6455 close code and
 * reading nothing more. The fragments of a message are gathered into one
 * buffer as they come, not kept frame by frame. */
#ifndef WHARF_WS_FRAME_H
#define WHARF_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A message in more than WS_MAX_FRAGMENTS frames closes with 1009, and each
 * frame after its first counts WS_FRAGMENT_COST bytes against max_message
 * (what a tiny frame costs to read), so a flood of one-byte continuation
 * frames ends early. */
#define WS_MAX_FRAGMENTS 4096
#define WS_FRAGMENT_COST 16

/* One whole message; `data` is the framer's, valid only during the call. */
typedef void ws_data_fn(void *arg, const uint8_t *data, size_t len);
/* Bytes for the client, to be sent in order. 0 once the caller holds them,
 * -1 when it cannot (wslay then stops writing). */
typedef int ws_send_fn(void *arg, const uint8_t *data, size_t len);

struct ws_framer_config {
	size_t max_message;       /* largest message a client may send, fragments
				     counted as above; past it 1009 */
	const char *text_refused; /* non-NULL: a text message closes with 1003 and this reason */
	ws_data_fn *on_data;
	ws_send_fn *on_send;
	void *arg;                /* passed to both callbacks */
};

struct ws_framer;

/* NULL when out of memory. The framer keeps no pointer into *cfg but the
 * `text_refused` string, which must outlive it. */
struct ws_framer *ws_framer_new(const struct ws_framer_config *cfg);
void ws_framer_free(struct ws_framer *f);

/* Feeds bytes from the client; *used says how many the framer took (fewer
 * than `len` once reading has stopped: the rest is not WebSocket data).
 * Replies wslay owes (pongs, the answer to a close, a close for a
 * violation) stay queued until the next ws_framer_send(). -1 when a frame
 * header is malformed or memory ran out: a close frame with 1002 has gone
 * out (unless a close went already), the framer sends nothing more, and
 * the connection must go. */
int ws_framer_recv(struct ws_framer *f, const uint8_t *data, size_t len, size_t *used);

/* Sends `len` bytes as one binary message (none when `len` is 0, or once
 * our own close is queued) and everything queued before it. -1 when wslay
 * refuses the message (a close already went out). */
int ws_framer_send(struct ws_framer *f, const uint8_t *data, size_t len);

/* Sends our close frame with `code`, after everything queued, unless a close
 * frame was queued or sent already. */
void ws_framer_close(struct ws_framer *f, uint16_t code);

/* False once the client's close arrived or its framing broke. */
bool ws_framer_reading(const struct ws_framer *f);
bool ws_framer_close_received(const struct ws_framer *f);
/* True between a frame's header and its last payload byte. */
bool ws_framer_in_frame(const struct ws_framer *f);
/* The code of the client's close frame (1005 when it gave none). */
uint16_t ws_framer_close_code(const struct ws_framer *f);

#endif
