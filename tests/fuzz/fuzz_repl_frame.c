/* libFuzzer target for the replication link's codec (src/ha/frame.c): an
 * arbitrary byte stream from a peer, cut into frames and every frame given
 * to every payload decoder. Besides never crashing or reading past the
 * input, a frame must parse the same from every prefix (0 until whole,
 * never -1 before the whole frame says so), and a payload a decoder takes
 * must encode back to the very same bytes.
 *
 * Input: a flags byte (bit 0: the frame limit before authentication
 * instead of after), then the peer's bytes. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ha/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const uint8_t *a, size_t an, const struct repl_frame *f)
{
	if (an != REPL_HEAD + f->len || memcmp(a + REPL_HEAD, f->payload, f->len) || a[4] != f->type)
		abort();
}

static void decoders(const struct repl_frame *f)
{
	static uint8_t out[REPL_FRAME_AUTH * 2];
	struct repl_challenge c;
	struct repl_hello h;
	struct repl_welcome w;
	struct repl_data d;
	struct repl_str s;
	uint64_t v[2];
	if (repl_challenge_decode(f, &c) == 0)
		same(out, repl_challenge_encode(out, sizeof(out), &c), f);
	if (repl_hello_decode(f, &h) == 0)
		same(out, repl_hello_encode(out, sizeof(out), &h), f);
	if (repl_welcome_decode(f, &w) == 0)
		same(out, repl_welcome_encode(out, sizeof(out), &w), f);
	if (repl_text_decode(f, &s) == 0)
		same(out, repl_text_encode(out, sizeof(out), s.p, s.len), f);
	if (repl_data_decode(f, &d) == 0) {
		if (d.bytes + d.len != f->payload + f->len || d.len + 24 != f->len)
			abort();
		repl_data_head(out, d.segment, d.offset, d.last_seq, d.len);
		if (memcmp(out + REPL_HEAD, f->payload, 24))
			abort();
	}
	for (size_t n = 0; n <= 2; n++)
		if (repl_u64s_decode(f, v, n) == 0)
			same(out, repl_u64s_encode(out, sizeof(out), f->type, v, n), f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t max = data[0] & 1 ? REPL_FRAME_AUTH : REPL_FRAME_MAX;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	for (;;) {
		struct repl_frame f;
		size_t used = 0;
		int r = repl_frame_parse(p, n, max, &f, &used);
		/* a prefix never says more than the whole */
		for (size_t k = 0; k < n && k < 64; k++) {
			struct repl_frame g;
			size_t u;
			int rk = repl_frame_parse(p, k, max, &g, &u);
			if (rk == 1 && (r != 1 || u != used))
				abort();
			if (rk < 0 && r >= 0)
				abort();
		}
		if (r != 1)
			break;
		if (used > n || f.payload + f.len != p + used)
			abort();
		decoders(&f);
		p += used;
		n -= used;
	}
	return 0;
}
