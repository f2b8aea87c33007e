/* libFuzzer target for the STOMP codec. The first input byte picks the
 * version and the limits; the rest is a byte stream decoded frame after
 * frame, as a session would. Every frame is checked for the codec's own
 * promises and then re-encoded and decoded again: what the encoder accepts
 * must come back unchanged. */
#include "config.h"
#include "protocols/stomp/codec.h"
#include "protocols/stomp/dest.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			__builtin_trap();                                      \
	} while (0)

static const enum stomp_version versions[] = { STOMP_V_NONE, STOMP_V10, STOMP_V11, STOMP_V12 };

static const struct stomp_limits wide = {
	.max_frame_size = 1 << 20,
	.max_headers = 1 << 10,
	.max_header_length = 1 << 16,
};

/* A destination maps, in every dialect, onto a valid name or nothing. */
static void check_dest(const char *dest)
{
	for (int dialect = STOMP_DIALECT_BOTH; dialect <= STOMP_DIALECT_RABBITMQ; dialect++) {
		for (int pattern = 0; pattern < 2; pattern++) {
			struct stomp_dest d;
			const char *why = NULL;
			if (stomp_dest_parse(dest, (enum stomp_dialect)dialect, pattern, &d, &why) < 0) {
				CHECK(why != NULL && d.name == NULL);
				continue;
			}
			CHECK(address_validate(d.name, pattern && d.kind == DEST_TOPIC) == 0);
			CHECK(d.kind == DEST_QUEUE || d.out_prefix != NULL);
			stomp_dest_clear(&d);
		}
	}
}

static void check_frame(const struct stomp_frame *f, enum stomp_version v)
{
	CHECK(f->body && f->body[f->body_len] == '\0');
	CHECK(stomp_command_name(f->command) != NULL && f->command != STOMP_CMD_UNKNOWN);
	for (size_t i = 0; i < f->nheaders; i++) {
		CHECK(f->headers[i].name[0] != '\0');
		CHECK(strlen(f->headers[i].value) == f->headers[i].value_len);
	}
	if (f->nheaders)
		CHECK(stomp_frame_get(f, f->headers[0].name) == f->headers[0].value);
	const char *dest = stomp_frame_get(f, "destination");
	if (dest)
		check_dest(dest);

	struct buf b = BUF_INIT;
	if (stomp_encode_command(&b, f->command) < 0)
		goto out;
	for (size_t i = 0; i < f->nheaders; i++)
		if (stomp_encode_header(&b, v, f->command, f->headers[i].name, f->headers[i].value,
					f->headers[i].value_len) < 0)
			goto out; /* not representable: nothing to compare */
	/* A body without content-length ran to the first NUL, so it holds
	 * none and can be written back as it is. */
	if (stomp_encode_end_headers(&b) < 0 || buf_append(&b, f->body, f->body_len) < 0 ||
	    buf_append(&b, "", 1) < 0)
		goto out;

	struct stomp_frame *g;
	size_t consumed, need, scanned = 0;
	const char *err;
	enum stomp_decode_status st = stomp_decode((const uint8_t *)b.data, b.len, v, &wide, &g,
						   &consumed, &need, &scanned, &err);
	if (st == STOMP_DECODE_ERROR && err && strcmp(err, "out of memory") == 0)
		goto out;
	CHECK(st == STOMP_DECODE_FRAME && consumed == b.len);
	CHECK(g->command == f->command && g->nheaders == f->nheaders);
	CHECK(g->body_len == f->body_len && memcmp(g->body, f->body, f->body_len) == 0);
	for (size_t i = 0; i < f->nheaders; i++) {
		CHECK(strcmp(g->headers[i].name, f->headers[i].name) == 0);
		CHECK(g->headers[i].value_len == f->headers[i].value_len);
		CHECK(memcmp(g->headers[i].value, f->headers[i].value, f->headers[i].value_len) == 0);
	}
	stomp_frame_free(g);
out:
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum stomp_version v = versions[data[0] & 3];
	/* Small limits so the fuzzer reaches every limit check quickly. */
	struct stomp_limits lim = {
		.max_frame_size = (data[0] & 4) ? 96 : 2048,
		.max_headers = (data[0] & 8) ? 2 : 16,
		.max_header_length = (data[0] & 16) ? 12 : 256,
	};
	data++;
	size--;

	/* Decode from an exact-size copy so ASan sees any read past len. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);

	size_t off = 0;
	while (off < size) {
		struct stomp_frame *f;
		size_t consumed, need, scanned = 0;
		const char *err;
		size_t len = size - off;
		enum stomp_decode_status st =
			stomp_decode(buf + off, len, v, &lim, &f, &consumed, &need, &scanned, &err);
		if (st == STOMP_DECODE_NEED_MORE) {
			CHECK(consumed == 0 && f == NULL && need > len);
			break;
		}
		if (st == STOMP_DECODE_ERROR) {
			CHECK(err != NULL && f == NULL && consumed == 0);
			break;
		}
		CHECK(consumed > 0 && consumed <= len);
		if (st == STOMP_DECODE_HEARTBEAT) {
			CHECK(f == NULL);
			off += consumed;
			continue;
		}
		CHECK(st == STOMP_DECODE_FRAME && f != NULL);
		CHECK(consumed <= lim.max_frame_size);
		check_frame(f, v);
		stomp_frame_free(f);

		/* One byte short of a frame is never an error, and asks for
		 * exactly the missing byte; resuming its search finds the same
		 * frame. */
		st = stomp_decode(buf + off, consumed - 1, v, &lim, &f, &len, &need, &scanned, &err);
		CHECK(st == STOMP_DECODE_NEED_MORE && need == consumed && scanned < consumed);
		size_t again;
		st = stomp_decode(buf + off, consumed, v, &lim, &f, &again, &need, &scanned, &err);
		CHECK(st == STOMP_DECODE_FRAME && again == consumed && scanned == 0);
		stomp_frame_free(f);
		off += consumed;
	}
	free(buf);
	return 0;
}
