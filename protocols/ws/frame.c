#include "config.h"
#include "protocols/ws/frame.h"

#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "util/buf.h"

struct ws_framer {
	wslay_event_context_ptr ctx;
	struct ws_framer_config cfg;
	const uint8_t *in;   /* what ws_framer_recv() was given and wslay has not taken */
	size_t in_len;
	bool close_queued;   /* ours: adapter output after it is dropped */
	bool broken;         /* a frame header no client may send: nothing more */
	bool in_frame;       /* a frame's header came, its end not yet */
	bool data_frame;     /* the frame being read is a data frame */
	bool refused;        /* the message being read closed the connection */
	unsigned fragments;  /* frames of the message being read */
	struct buf msg;      /* its payload so far */
};

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		       void *user)
{
	(void)flags;
	struct ws_framer *f = user;
	if (!f->in_len) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	size_t n = len < f->in_len ? len : f->in_len;
	memcpy(buf, f->in, n);
	f->in += n;
	f->in_len -= n;
	return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *user)
{
	(void)flags;
	struct ws_framer *f = user;
	if (f->cfg.on_send(f->cfg.arg, data, len) < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

/* Closes with `code` and reads no more; the message being read is dropped. */
static void refuse(struct ws_framer *f, uint16_t code, const char *reason)
{
	wslay_event_queue_close(f->ctx, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
	wslay_event_shutdown_read(f->ctx);
	f->refused = true;
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		   void *user)
{
	struct ws_framer *f = user;
	if (wslay_is_ctrl_frame(arg->opcode) || f->refused)
		return; /* wslay answers pings and closes itself */
	if (arg->opcode == WSLAY_TEXT_FRAME && f->cfg.text_refused)
		refuse(f, WSLAY_CODE_UNSUPPORTED_DATA, f->cfg.text_refused);
	else
		f->cfg.on_data(f->cfg.arg, (const uint8_t *)f->msg.data, f->msg.len);
	/* An idle connection keeps no message buffer. */
	buf_free(&f->msg);
}

static void frame_start_cb(wslay_event_context_ptr ctx,
			   const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
	struct ws_framer *f = user;
	f->in_frame = true;
	f->data_frame = !wslay_is_ctrl_frame(arg->opcode);
	if (!f->data_frame || f->refused)
		return;
	if (arg->opcode != WSLAY_CONTINUATION_FRAME)
		f->fragments = 0;
	f->fragments++;
	/* wslay checks each frame against the maximum: with its buffering
	 * off, the whole message is ours to check. */
	uint64_t cost = (uint64_t)f->msg.len + arg->payload_length +
			(uint64_t)(f->fragments - 1) * WS_FRAGMENT_COST;
	if (f->fragments > WS_MAX_FRAGMENTS || cost > f->cfg.max_message)
		refuse(f, WSLAY_CODE_MESSAGE_TOO_BIG, NULL);
}

static void frame_chunk_cb(wslay_event_context_ptr ctx,
			   const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
	struct ws_framer *f = user;
	if (f->data_frame && !f->refused && arg->data_length &&
	    buf_append(&f->msg, arg->data, arg->data_length) < 0)
		refuse(f, WSLAY_CODE_INTERNAL_SERVER_ERROR, NULL);
}

static void frame_end_cb(wslay_event_context_ptr ctx, void *user)
{
	struct ws_framer *f = user;
	f->in_frame = false;
}

static const struct wslay_event_callbacks callbacks = {
	.recv_callback = recv_cb,
	.send_callback = send_cb,
	.on_frame_recv_start_callback = frame_start_cb,
	.on_frame_recv_chunk_callback = frame_chunk_cb,
	.on_frame_recv_end_callback = frame_end_cb,
	.on_msg_recv_callback = msg_cb,
};

struct ws_framer *ws_framer_new(const struct ws_framer_config *cfg)
{
	struct ws_framer *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->cfg = *cfg;
	if (wslay_event_context_server_init(&f->ctx, &callbacks, f) != 0) {
		free(f);
		return NULL;
	}
	wslay_event_config_set_max_recv_msg_length(f->ctx, cfg->max_message);
	/* wslay would keep each frame's payload in a chunk of its own, some
	 * hundred bytes a frame however small: frame_chunk_cb gathers them. */
	wslay_event_config_set_no_buffering(f->ctx, 1);
	return f;
}

void ws_framer_free(struct ws_framer *f)
{
	if (!f)
		return;
	wslay_event_context_free(f->ctx);
	buf_free(&f->msg);
	free(f);
}

int ws_framer_recv(struct ws_framer *f, const uint8_t *data, size_t len, size_t *used)
{
	f->in = data;
	f->in_len = len;
	int r = f->broken ? -1 : wslay_event_recv(f->ctx);
	*used = len - f->in_len;
	/* Nothing may keep a pointer into the caller's bytes. */
	f->in = NULL;
	f->in_len = 0;
	if (r != 0 && !f->broken) {
		/* wslay stops at such a header with a close frame queued that
		 * carries no code: 1002 says why, and then nothing more goes. */
		static const uint8_t close_1002[] = { 0x88, 0x02, 0x03, 0xea };
		f->broken = true;
		if (!wslay_event_get_close_sent(f->ctx))
			f->cfg.on_send(f->cfg.arg, close_1002, sizeof(close_1002));
	}
	return r == 0 ? 0 : -1;
}

int ws_framer_send(struct ws_framer *f, const uint8_t *data, size_t len)
{
	int r = 0;
	if (f->broken)
		return len ? -1 : 0;
	if (len && !f->close_queued) {
		struct wslay_event_msg msg = { WSLAY_BINARY_FRAME, data, len };
		r = wslay_event_queue_msg(f->ctx, &msg) == 0 ? 0 : -1;
	}
	/* wslay sends control frames ahead of queued messages: the last
	 * message must be out before ws_framer_close() queues the close. */
	wslay_event_send(f->ctx);
	return r;
}

void ws_framer_close(struct ws_framer *f, uint16_t code)
{
	if (f->broken || f->close_queued || wslay_event_get_close_sent(f->ctx))
		return;
	wslay_event_queue_close(f->ctx, code, NULL, 0);
	f->close_queued = true;
	wslay_event_send(f->ctx);
}

bool ws_framer_reading(const struct ws_framer *f)
{
	return wslay_event_get_read_enabled(f->ctx);
}

bool ws_framer_close_received(const struct ws_framer *f)
{
	return wslay_event_get_close_received(f->ctx);
}

bool ws_framer_in_frame(const struct ws_framer *f)
{
	return f->in_frame;
}

uint16_t ws_framer_close_code(const struct ws_framer *f)
{
	return wslay_event_get_status_code_received(f->ctx);
}
