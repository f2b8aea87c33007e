/* libFuzzer target for the store's message encoding: arbitrary bytes go to
 * msgcodec_read, which must refuse them with a reason or return a message
 * whose encoding is exactly those bytes (the encoding has one form per
 * message, so replay and replication never change what they carry). */
#include "config.h"
#include "router/message.h"
#include "store/msgcodec.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			__builtin_trap();                                      \
	} while (0)

static void check_message(const struct message *m)
{
	CHECK(m->refs == 1 && m->id == 0);
	CHECK(m->dest != NULL);
	CHECK(!m->correlation_id || m->correlation_id[m->correlation_id_len] == '\0');
	CHECK(m->correlation_id || m->correlation_id_len == 0);
	CHECK(m->body || m->body_len == 0);
	CHECK(!m->body || m->body[m->body_len] == '\0');
	CHECK(m->amqp || m->amqp_len == 0);
	CHECK(m->qos <= 2 && m->priority <= 9 && m->payload_format <= 1);
	CHECK(m->dest_kind == DEST_QUEUE || m->dest_kind == DEST_TOPIC);
	CHECK(m->nprops == 0 || m->props);
	for (size_t i = 0; i < m->nprops; i++) {
		CHECK(m->props[i].name && m->props[i].value);
		CHECK(m->props[i].value[m->props[i].value_len] == '\0');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	struct message *m = msgcodec_read(data, size, &why);
	if (!m) {
		CHECK(why != NULL);
		return 0;
	}
	check_message(m);
	size_t n = msgcodec_size(m);
	CHECK(n == size);
	uint8_t *out = malloc(n);
	CHECK(out != NULL);
	CHECK(msgcodec_write(out, m) == out + n);
	CHECK(memcmp(out, data, n) == 0);
	free(out);
	message_unref(m);
	return 0;
}
