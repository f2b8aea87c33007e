#include "config.h"
#include "protocols/stomp/durable.h"

#include <stdlib.h>
#include <string.h>

#include "durable_sub.h"
#include "util/buf.h"

#define RECORD_PREFIX "stomp/durable/"

/* Hex keeps the two parts apart whatever bytes they hold (a '.' or a
 * wildcard in a client id would otherwise change the name's levels). */
static int append_hex(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (buf_append_char(b, hex[*p >> 4]) < 0 || buf_append_char(b, hex[*p & 15]) < 0)
			return -1;
	return 0;
}

char *stomp_durable_queue(const char *client_id, const char *name)
{
	if (strlen(client_id) + strlen(name) > STOMP_DURABLE_MAX_NAME)
		return NULL;
	struct buf b = BUF_INIT;
	if (buf_append_str(&b, "$stomp.") < 0 || append_hex(&b, client_id) < 0 ||
	    buf_append_char(&b, '.') < 0 || append_hex(&b, name) < 0 || buf_append_char(&b, '\0') < 0) {
		buf_free(&b);
		return NULL;
	}
	return b.data;
}

enum router_err stomp_durable_keep(struct broker *b, const char *queue, const char *pattern,
				   bool *fresh)
{
	return durable_sub_keep(b, RECORD_PREFIX, queue, pattern, fresh);
}

enum router_err stomp_durable_end(struct broker *b, const char *queue)
{
	return durable_sub_end(b, RECORD_PREFIX, queue);
}

/* Every claimed id of every broker in the process, told apart by broker:
 * a broker keeps no state for its STOMP adapter, and this list is all the
 * rule needs. A CONNECT with a client id searches it from end to end. */
static struct stomp_client_id *claims;

int stomp_client_id_claim(struct stomp_client_id *c, const struct broker *b, const char *id)
{
	for (struct stomp_client_id *o = claims; o; o = o->next)
		if (o->b == b && !strcmp(o->id, id))
			return 1;
	if (!(c->id = strdup(id)))
		return -1;
	c->b = b;
	c->next = claims;
	if (claims)
		claims->prevp = &c->next;
	c->prevp = &claims;
	claims = c;
	return 0;
}

void stomp_client_id_release(struct stomp_client_id *c)
{
	if (!c->id)
		return;
	*c->prevp = c->next;
	if (c->next)
		c->next->prevp = c->prevp;
	free(c->id);
	c->id = NULL;
}
