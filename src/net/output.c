#include "config.h"
#include "net/output.h"

#include <event2/buffer.h>

#include "net/conn.h"
#include "router/message.h"

/* Bodies up to this size are copied next to the head: a reference costs an
 * evbuffer chain of its own, more than copying a few hundred bytes. */
#define COPY_BODY_MAX 512

static void unref_cleanup(const void *data, size_t len, void *arg)
{
	message_unref(arg);
}

int output_message(struct conn *c, const void *head, size_t head_len, struct message *m,
		   const void *trailer, size_t trailer_len)
{
	struct evbuffer *out = conn_output(c);
	if (evbuffer_add(out, head, head_len) < 0)
		return -1;
	if (m->body_len <= COPY_BODY_MAX) {
		if (m->body_len && evbuffer_add(out, m->body, m->body_len) < 0)
			return -1;
	} else {
		message_ref(m);
		if (evbuffer_add_reference(out, m->body, m->body_len, unref_cleanup, m) < 0) {
			message_unref(m);
			return -1;
		}
	}
	if (trailer_len && evbuffer_add(out, trailer, trailer_len) < 0)
		return -1;
	conn_count_msg_out(c);
	return 0;
}
