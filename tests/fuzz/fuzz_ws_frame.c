/* libFuzzer target for the WebSocket frame path (protocols/ws/frame.c):
 * arbitrary client bytes, fed in chunks, with the adapter writing between
 * them and the broker closing part way. Besides never crashing or leaking,
 * the framer must agree with an independent reading of RFC 6455 here: the
 * same messages, in order, and none after a violation or a close; reading
 * stops exactly when the input warrants it; and what it sends is well-formed
 * server frames: unmasked, our messages unchanged, a pong only for a ping
 * with its payload, one close frame at most and nothing after it.
 *
 * Input: a flags byte (bit 0 refuses text as MQTT does, bits 1-2 pick the
 * maximum message size, bit 3 makes the adapter write after each chunk,
 * bit 4 closes half way, bit 5 closes with 1001), a chunk size byte (0: all
 * at once), then the client's bytes. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/ws/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A list of byte strings, kept as one run of bytes and their lengths. */
struct list {
	uint8_t *bytes;
	size_t len, cap;
	size_t *ends;
	size_t n, ncap;
};

/* Room for `need` elements; never NULL, even for none. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (p && need <= *cap)
		return p;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	void *q = realloc(p, c * elem);
	if (!q)
		abort();
	*cap = c;
	return q;
}

static void add_bytes(struct list *l, const uint8_t *d, size_t n)
{
	l->bytes = grow(l->bytes, &l->cap, l->len + n, 1);
	if (n)
		memcpy(l->bytes + l->len, d, n);
	l->len += n;
}

/* Ends the item being built with add_bytes(). */
static void end_item(struct list *l)
{
	l->ends = grow(l->ends, &l->ncap, l->n + 1, sizeof(size_t));
	l->ends[l->n++] = l->len;
}

static void add_item(struct list *l, const uint8_t *d, size_t n)
{
	add_bytes(l, d, n);
	end_item(l);
}

static void list_free(struct list *l)
{
	free(l->bytes);
	free(l->ends);
}

/* True when the first a->n items of b are a's, in order. */
static bool is_prefix(const struct list *a, const struct list *b)
{
	if (a->n > b->n)
		return false;
	size_t len = a->n ? a->ends[a->n - 1] : 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->ends[i] != b->ends[i])
			return false;
	return len == 0 || memcmp(a->bytes, b->bytes, len) == 0;
}

/* RFC 3629 by its table of well-formed byte sequences: 0 valid, 1 valid so
 * far but cut inside a character, -1 invalid. */
static int utf8_check(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i++];
		if (c < 0x80)
			continue;
		int k;
		uint8_t lo = 0x80, hi = 0xBF;
		if (c >= 0xC2 && c <= 0xDF) {
			k = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			k = 2;
			lo = c == 0xE0 ? 0xA0 : 0x80;
			hi = c == 0xED ? 0x9F : 0xBF;
		} else if (c >= 0xF0 && c <= 0xF4) {
			k = 3;
			lo = c == 0xF0 ? 0x90 : 0x80;
			hi = c == 0xF4 ? 0x8F : 0xBF;
		} else {
			return -1;
		}
		for (int j = 0; j < k; j++) {
			if (i == n)
				return 1;
			uint8_t d = s[i++];
			if (d < lo || d > hi)
				return -1;
			lo = 0x80;
			hi = 0xBF;
		}
	}
	return 0;
}

enum stop { RAN_OUT, BROKEN, CLOSED };

/* What RFC 6455 (and wslay's choices within it) make of the client's bytes. */
struct expect {
	struct list msgs;  /* data messages the adapter must get */
	struct list pings; /* ping payloads, in order */
	enum stop stop;
	bool hard;         /* broken in a frame header: the framer reports -1 */
	bool sure;         /* whether the framer has seen enough to have stopped reading */
};

static uint64_t be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void expect_stream(const uint8_t *s, size_t n, size_t max, bool text_refused,
			  struct expect *e)
{
	uint8_t *msg = NULL;
	size_t msg_len = 0, msg_cap = 0;
	bool in_msg = false, text = false;
	size_t fragments = 0;
	size_t pos = 0;
	e->sure = true;
	for (;;) {
		const uint8_t *f = s + pos;
		size_t avail = n - pos;
		if (avail < 2) {
			e->stop = RAN_OUT;
			break;
		}
		bool fin = f[0] & 0x80, masked = f[1] & 0x80;
		unsigned rsv = (f[0] >> 4) & 7, op = f[0] & 0xF, len7 = f[1] & 0x7F;
		bool ctrl = op & 8;
		if (ctrl && (len7 > 125 || !fin)) {
			e->stop = BROKEN;
			e->hard = true;
			break;
		}
		size_t hdr = 2;
		uint64_t len = len7;
		if (len7 >= 126) {
			size_t ext = len7 == 126 ? 2 : 8;
			if (avail < hdr + ext) {
				e->stop = RAN_OUT;
				break;
			}
			len = be(f + 2, ext);
			hdr += ext;
			if (ext == 2 ? len < 126 : len < 65536 || len >> 63) {
				e->stop = BROKEN;
				e->hard = true;
				break;
			}
		}
		if (masked) {
			if (avail < hdr + 4) {
				e->stop = RAN_OUT;
				break;
			}
			hdr += 4;
		}
		bool whole = avail - hdr >= len;
		size_t got = whole ? (size_t)len : avail - hdr;
		bool known = (ctrl && op <= 10) || (in_msg ? op == 0 : op == 1 || op == 2);
		if (!ctrl)
			fragments = in_msg ? fragments + 1 : 1;
		/* Each frame of a message past its first costs WS_FRAGMENT_COST. */
		bool too_big = ctrl ? len > max
			       : known && (fragments > WS_MAX_FRAGMENTS ||
					   (in_msg ? msg_len : 0) + len +
					   (fragments - 1) * WS_FRAGMENT_COST > max);
		if (rsv || !masked || !known || too_big) {
			e->stop = BROKEN;
			e->sure = whole;
			break;
		}
		uint8_t payload[125];
		uint8_t *dst = payload;
		if (!ctrl) {
			msg = grow(msg, &msg_cap, msg_len + got, 1);
			dst = msg + msg_len;
		}
		for (size_t i = 0; i < got; i++)
			dst[i] = f[hdr + i] ^ f[hdr - 4 + i % 4];
		if (!ctrl) {
			if (!in_msg)
				text = op == 1;
			in_msg = true;
			msg_len += got;
			if (text && utf8_check(msg, msg_len) < 0) {
				e->stop = BROKEN;
				break;
			}
		}
		if (!whole) {
			/* wslay checks a close reason chunk by chunk as it arrives. */
			e->sure = op != 8;
			e->stop = RAN_OUT;
			break;
		}
		pos += hdr + got;
		if (op == 8) {
			e->stop = CLOSED;
			break;
		}
		if (op == 9)
			add_item(&e->pings, payload, got);
		if (ctrl || !fin)
			continue;
		in_msg = false;
		if (text && (text_refused || utf8_check(msg, msg_len) != 0)) {
			e->stop = BROKEN;
			break;
		}
		add_item(&e->msgs, msg, msg_len);
		msg_len = 0;
	}
	free(msg);
}

struct run {
	struct list got;     /* messages the framer delivered */
	uint8_t *out;        /* bytes it sent */
	size_t out_len, out_cap;
	struct list written; /* adapter messages that must be on the wire */
	size_t max;
};

static void on_data(void *arg, const uint8_t *d, size_t len)
{
	struct run *r = arg;
	if (len > r->max)
		abort();
	add_item(&r->got, d, len);
}

static int on_send(void *arg, const uint8_t *d, size_t len)
{
	struct run *r = arg;
	r->out = grow(r->out, &r->out_cap, r->out_len + len, 1);
	memcpy(r->out + r->out_len, d, len);
	r->out_len += len;
	return 0;
}

static bool valid_close_code(unsigned code)
{
	return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
	       (code >= 3000 && code <= 4999);
}

/* Splits what the framer sent into frames, checking each; returns whether a
 * close frame ended it. */
static bool check_output(const struct run *r, const struct expect *e)
{
	struct list binary = { 0 }, pongs = { 0 };
	bool closed = false;
	size_t pos = 0;
	while (pos < r->out_len) {
		if (closed || r->out_len - pos < 2)
			abort();
		const uint8_t *f = r->out + pos;
		unsigned op = f[0] & 0xF, len7 = f[1] & 0x7F;
		if ((f[0] & 0xF0) != 0x80 || (f[1] & 0x80))
			abort(); /* one unmasked final frame per message */
		size_t hdr = 2;
		uint64_t len = len7;
		if (len7 >= 126) {
			hdr += len7 == 126 ? 2 : 8;
			if (r->out_len - pos < hdr)
				abort();
			len = be(f + 2, hdr - 2);
			if (len7 == 126 ? len < 126 : len < 65536)
				abort();
		}
		if (r->out_len - pos - hdr < len)
			abort();
		const uint8_t *p = f + hdr;
		if (op == 2) {
			add_item(&binary, p, len);
		} else if (op == 10 && len <= 125) {
			add_item(&pongs, p, len);
		} else if (op == 8 && len <= 125 && len != 1) {
			if (len >= 2 && !valid_close_code((unsigned)be(p, 2)))
				abort();
			closed = true;
		} else {
			abort();
		}
		pos += hdr + len;
	}
	bool ok = binary.n == r->written.n && is_prefix(&r->written, &binary) &&
		  is_prefix(&pongs, &e->pings);
	list_free(&binary);
	list_free(&pongs);
	if (!ok)
		abort();
	return closed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	static const size_t maxes[] = { 16, 125, 1000, 70000 };
	uint8_t flags = data[0];
	size_t chunk = data[1] ? data[1] : size;
	const uint8_t *in = data + 2;
	size_t n = size - 2;
	bool text_refused = flags & 1, writes = flags & 8, close_mid = flags & 16;
	struct run r = { .max = maxes[(flags >> 1) & 3] };
	struct ws_framer_config cfg = {
		.max_message = r.max,
		.text_refused = text_refused ? "binary frames only" : NULL,
		.on_data = on_data,
		.on_send = on_send,
		.arg = &r,
	};
	struct ws_framer *f = ws_framer_new(&cfg);
	if (!f)
		return 0;
	/* An exact-size copy, so ASan sees any read past the end. */
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		abort();
	memcpy(buf, in, n);
	bool failed = false, stopped = false, we_closed = false;
	size_t fed = 0;
	while (fed < n && !failed && !stopped) {
		size_t len = n - fed < chunk ? n - fed : chunk;
		size_t used = 0;
		if (ws_framer_recv(f, buf + fed, len, &used) < 0) {
			failed = true;
			break;
		}
		if (used > len)
			abort();
		stopped = used < len;
		fed += used;
		bool refused = ws_framer_send(f, writes ? buf + fed - used : NULL,
					      writes ? used : 0) < 0;
		if (writes && used && !we_closed && !refused)
			add_item(&r.written, buf + fed - used, used);
		if (close_mid && !we_closed && fed >= n / 2) {
			ws_framer_close(f, flags & 32 ? 1001 : 1000);
			we_closed = true;
		}
	}
	struct expect e = { 0 };
	expect_stream(buf, n, r.max, text_refused, &e);
	if (!is_prefix(&e.msgs, &r.got) || e.msgs.n != r.got.n)
		abort();
	if (failed && !(e.stop == BROKEN && e.hard))
		abort();
	if (e.sure && (e.hard != failed || ws_framer_reading(f) != (e.stop == RAN_OUT)))
		abort();
	bool closed = check_output(&r, &e);
	if (e.sure && !failed && !we_closed && closed != (e.stop != RAN_OUT))
		abort();
	ws_framer_free(f);
	free(buf);
	list_free(&r.got);
	list_free(&r.written);
	list_free(&e.msgs);
	list_free(&e.pings);
	free(r.out);
	return 0;
}
