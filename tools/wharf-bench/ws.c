/* WebSocket client framing (RFC 6455) over plain TCP (ws) or TLS (wss): the
 * HTTP/1.1 upgrade with a subprotocol (mqtt, v12.stomp, amqp), then a byte
 * stream in binary frames both ways, as the protocols expect.
 *
 * Hand-rolled rather than on wslay's event API: the protocols parse in place
 * from the read buffer, so incoming frame headers are cut out of that buffer
 * where it lies, and outgoing bytes are masked while copied once into frames.
 * Each connection owns its struct wb_ws (c->ws), freed in ws_close. */
#include "config.h"
#include "wb.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FRAME_MAX (16 * 1024) /* bytes per outgoing frame: below any broker's message limit */
#define CARRY_MAX 256         /* an incomplete frame header, or bytes after the upgrade response */
#define RESPONSE_MAX 4096

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

enum phase { LOWER_HANDSHAKE, SEND_REQUEST, READ_RESPONSE, OPEN };

struct wb_ws {
	enum phase phase;
	char accept[32];           /* the Sec-WebSocket-Accept we expect */
	struct wb_buf out;         /* framed bytes (or the request) not yet written */
	char *response;            /* the upgrade response while it arrives */
	size_t response_len;
	uint8_t carry[CARRY_MAX];
	size_t ncarry;
	uint64_t remaining;        /* payload bytes left in the current frame */
	bool in_frame, control, closed;
	uint8_t opcode;
	uint8_t ctl[125];          /* a control frame's payload (ping, close) */
	size_t nctl;
	uint64_t mask_state;
};

static struct {
	char host[96];
	char path[128];
	const char *subprotocol;
	const struct wb_transport *lower;
} cfg;

void wb_ws_init(const char *host, int port, const char *path, const char *subprotocol,
		const struct wb_transport *lower)
{
	snprintf(cfg.host, sizeof cfg.host, "%s:%d", host, port);
	snprintf(cfg.path, sizeof cfg.path, "%s", *path ? path : "/");
	cfg.subprotocol = subprotocol;
	cfg.lower = lower;
}

/* ---- output ---------------------------------------------------------------- */

/* 1 all written, 0 some left (the socket is full), -1 failed. */
static int ws_flush(struct wb_conn *c)
{
	struct wb_ws *ws = c->ws;
	while (ws->out.off < ws->out.len) {
		ssize_t n = cfg.lower->write(c, ws->out.data + ws->out.off, ws->out.len - ws->out.off);
		if (n > 0) {
			ws->out.off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			c->want_write = true;
			return 0;
		}
		return -1;
	}
	ws->out.off = ws->out.len = 0;
	return 1;
}

static uint32_t next_mask(struct wb_ws *ws)
{
	/* xorshift: masking only keeps proxies from reading frames as HTTP */
	uint64_t x = ws->mask_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	ws->mask_state = x;
	return (uint32_t)x;
}

static int frame(struct wb_conn *c, uint8_t opcode, const uint8_t *data, size_t len)
{
	struct wb_ws *ws = c->ws;
	if (wb_buf_room(&ws->out, len + 14) < 0) {
		errno = ENOMEM;
		return -1;
	}
	uint8_t *p = ws->out.data + ws->out.len, *q = p;
	*q++ = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		*q++ = (uint8_t)(0x80 | len);
	} else if (len < 65536) {
		*q++ = 0x80 | 126;
		*q++ = (uint8_t)(len >> 8);
		*q++ = (uint8_t)len;
	} else {
		*q++ = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			*q++ = (uint8_t)((uint64_t)len >> (8 * i));
	}
	uint32_t m = next_mask(ws);
	uint8_t mask[4];
	memcpy(mask, &m, 4);
	memcpy(q, mask, 4);
	q += 4;
	uint64_t m8;
	uint8_t mb[8] = { mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3] };
	memcpy(&m8, mb, 8);
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t v;
		memcpy(&v, data + i, 8);
		v ^= m8;
		memcpy(q + i, &v, 8);
	}
	for (; i < len; i++)
		q[i] = data[i] ^ mask[i & 3];
	ws->out.len += (size_t)(q - p) + len;
	return 0;
}

/* Takes at most one frame's worth while earlier frames are still queued:
 * the connection's own buffer stays the place where output waits. */
static ssize_t ws_write(struct wb_conn *c, const void *buf, size_t len)
{
	int r = ws_flush(c);
	if (r < 0)
		return -1;
	if (r == 0) {
		errno = EAGAIN;
		return -1;
	}
	size_t n = len > FRAME_MAX ? FRAME_MAX : len;
	if (frame(c, 0x2, buf, n) < 0 || ws_flush(c) < 0)
		return -1;
	return (ssize_t)n;
}

static int ws_layer_flush(struct wb_conn *c)
{
	if (!c->ws || c->ws->phase != OPEN)
		return 1;
	return ws_flush(c);
}

/* ---- input ----------------------------------------------------------------- */

static void control_done(struct wb_conn *c)
{
	struct wb_ws *ws = c->ws;
	if (ws->opcode == 0x9) /* ping: pong with the same payload */
		frame(c, 0xA, ws->ctl, ws->nctl);
	else if (ws->opcode == 0x8)
		ws->closed = true;
	ws->nctl = 0;
}

/* Parses frames in buf[0, total), moving payload bytes down over the headers;
 * returns the payload length. An incomplete header goes to the carry. */
static size_t unframe(struct wb_conn *c, uint8_t *buf, size_t total)
{
	struct wb_ws *ws = c->ws;
	size_t pos = 0, w = 0;
	while (pos < total && !ws->closed && !c->err) {
		if (ws->in_frame) {
			size_t k = ws->remaining < total - pos ? (size_t)ws->remaining : total - pos;
			if (ws->control) {
				memcpy(ws->ctl + ws->nctl, buf + pos, k);
				ws->nctl += k;
			} else {
				memmove(buf + w, buf + pos, k);
				w += k;
			}
			pos += k;
			ws->remaining -= k;
			if (!ws->remaining) {
				ws->in_frame = false;
				if (ws->control)
					control_done(c);
			}
			continue;
		}
		size_t avail = total - pos;
		if (avail < 2)
			goto carry;
		uint8_t b0 = buf[pos], b1 = buf[pos + 1];
		size_t hl = 2 + ((b1 & 0x7f) == 126 ? 2 : (b1 & 0x7f) == 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
		if (avail < hl)
			goto carry;
		uint64_t len = b1 & 0x7f;
		if (len == 126)
			len = (uint64_t)buf[pos + 2] << 8 | buf[pos + 3];
		else if (len == 127)
			for (int i = 0; i < 8; i++)
				len = (i ? len << 8 : 0) | buf[pos + 2 + i];
		if (b1 & 0x80) {
			c->err = "the broker sent a masked WebSocket frame";
			break;
		}
		uint8_t op = b0 & 0x0f;
		ws->control = op >= 0x8;
		if (ws->control) {
			if (len > sizeof ws->ctl || !(b0 & 0x80)) {
				c->err = "bad WebSocket control frame";
				break;
			}
			ws->opcode = op;
		}
		pos += hl;
		ws->remaining = len;
		ws->in_frame = len > 0;
		if (!len && ws->control) {
			ws->nctl = 0;
			control_done(c);
		}
	}
	return w;
carry:
	ws->ncarry = total - pos;
	memcpy(ws->carry, buf + pos, ws->ncarry);
	return w;
}

static ssize_t closed(struct wb_conn *c)
{
	c->err = "WebSocket closed by the broker";
	errno = ECONNRESET;
	return -1;
}

static ssize_t ws_read(struct wb_conn *c, void *buf, size_t len)
{
	struct wb_ws *ws = c->ws;
	if (ws->closed)
		return closed(c);
	size_t n0 = ws->ncarry;
	memcpy(buf, ws->carry, n0);
	ws->ncarry = 0;
	ssize_t n = cfg.lower->read(c, (uint8_t *)buf + n0, len - n0);
	if (n == 0 || (n < 0 && !(n0 && errno == EAGAIN)))
		return n;
	size_t w = unframe(c, buf, n0 + (n > 0 ? (size_t)n : 0));
	if (c->err) {
		errno = EPROTO;
		return -1;
	}
	if (!w && ws->closed)
		return closed(c);
	if (!w) {
		errno = EAGAIN;
		return -1;
	}
	/* after a close frame: this data first, the close at the next read */
	return (ssize_t)w;
}

/* ---- the upgrade ------------------------------------------------------------- */

static int ws_open(struct wb_conn *c)
{
	struct wb_ws *ws = calloc(1, sizeof *ws);
	if (!ws) {
		errno = ENOMEM;
		return -1;
	}
	c->ws = ws;
	uint8_t key[16];
	if (RAND_bytes(key, sizeof key) != 1 || RAND_bytes((uint8_t *)&ws->mask_state, 8) != 1) {
		errno = EIO;
		return -1;
	}
	ws->mask_state |= 1;
	char key64[32];
	EVP_EncodeBlock((uint8_t *)key64, key, sizeof key);
	char concat[96];
	unsigned char sha[EVP_MAX_MD_SIZE];
	unsigned sha_len = 0;
	int n = snprintf(concat, sizeof concat, "%s%s", key64, GUID);
	if (!EVP_Digest(concat, (size_t)n, sha, &sha_len, EVP_sha1(), NULL)) {
		errno = EIO;
		return -1;
	}
	EVP_EncodeBlock((uint8_t *)ws->accept, sha, (int)sha_len);
	char req[512];
	n = snprintf(req, sizeof req,
		     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		     "Sec-WebSocket-Protocol: %s\r\n\r\n",
		     cfg.path, cfg.host, key64, cfg.subprotocol);
	if (wb_buf_room(&ws->out, (size_t)n) < 0) {
		errno = ENOMEM;
		return -1;
	}
	memcpy(ws->out.data, req, (size_t)n);
	ws->out.len = (size_t)n;
	ws->phase = LOWER_HANDSHAKE;
	return cfg.lower->open ? cfg.lower->open(c) : 0;
}

/* The value of header NAME in an HTTP response, or NULL. */
static const char *header(const char *resp, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(resp, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (!strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			*len = strcspn(v, "\r");
			return v;
		}
	}
	return NULL;
}

static int check_response(struct wb_conn *c, char *end)
{
	struct wb_ws *ws = c->ws;
	*end = 0;
	const char *resp = ws->response;
	size_t vl;
	const char *v;
	if (strncmp(resp, "HTTP/1.1 101", 12)) {
		static char status[160];
		snprintf(status, sizeof status, "WebSocket upgrade refused: %.*s", (int)strcspn(resp, "\r"),
			 resp);
		c->err = status;
		return -1;
	}
	if (!(v = header(resp, "Sec-WebSocket-Accept", &vl)) || vl != strlen(ws->accept) ||
	    memcmp(v, ws->accept, vl)) {
		c->err = "WebSocket upgrade: wrong Sec-WebSocket-Accept";
		return -1;
	}
	if (!(v = header(resp, "Sec-WebSocket-Protocol", &vl)) || vl != strlen(cfg.subprotocol) ||
	    strncasecmp(v, cfg.subprotocol, vl)) {
		c->err = "WebSocket upgrade: the broker did not choose our subprotocol";
		return -1;
	}
	return 0;
}

static int read_response(struct wb_conn *c)
{
	struct wb_ws *ws = c->ws;
	if (!ws->response && !(ws->response = malloc(RESPONSE_MAX + 1))) {
		errno = ENOMEM;
		return -1;
	}
	ssize_t n = cfg.lower->read(c, ws->response + ws->response_len,
				    RESPONSE_MAX - ws->response_len);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		c->want_write = false;
		return 0;
	}
	if (n <= 0) {
		if (!c->err)
			c->err = "connection closed during the WebSocket upgrade";
		return -1;
	}
	ws->response_len += (size_t)n;
	ws->response[ws->response_len] = 0;
	char *end = strstr(ws->response, "\r\n\r\n");
	if (!end) {
		if (ws->response_len < RESPONSE_MAX)
			return 0;
		c->err = "WebSocket upgrade response too long";
		return -1;
	}
	size_t rest = ws->response_len - (size_t)(end + 4 - ws->response);
	if (rest > CARRY_MAX) {
		c->err = "unexpected data after the WebSocket upgrade response";
		return -1;
	}
	memcpy(ws->carry, end + 4, rest);
	ws->ncarry = rest;
	if (check_response(c, end) < 0)
		return -1;
	free(ws->response);
	ws->response = NULL;
	ws->phase = OPEN;
	return 1;
}

static int ws_handshake(struct wb_conn *c)
{
	struct wb_ws *ws = c->ws;
	int r;
	switch (ws->phase) {
	case LOWER_HANDSHAKE:
		if (cfg.lower->handshake && (r = cfg.lower->handshake(c)) != 1)
			return r;
		ws->phase = SEND_REQUEST;
		/* fall through */
	case SEND_REQUEST:
		if ((r = ws_flush(c)) != 1)
			return r;
		ws->phase = READ_RESPONSE;
		c->want_write = false;
		return 0;
	case READ_RESPONSE:
		return read_response(c);
	case OPEN:
		break;
	}
	return 1;
}

static void ws_close(struct wb_conn *c)
{
	struct wb_ws *ws = c->ws;
	if (!ws)
		return;
	if (cfg.lower->close)
		cfg.lower->close(c);
	free(ws->out.data);
	free(ws->response);
	free(ws);
	c->ws = NULL;
}

const struct wb_transport wb_ws = {
	.name = "ws",
	.open = ws_open,
	.handshake = ws_handshake,
	.read = ws_read,
	.write = ws_write,
	.flush = ws_layer_flush,
	.close = ws_close,
};
