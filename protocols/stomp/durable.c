#include "config.h"
#include "protocols/stomp/durable.h"

#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "store/store.h"
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

static char *record_key(const char *queue)
{
	struct buf b = BUF_INIT;
	if (buf_printf(&b, "%s%s", RECORD_PREFIX, queue) < 0) {
		buf_free(&b);
		return NULL;
	}
	return b.data;
}

/* The pattern kept for `queue`, for the caller to free; NULL with *err
 * ROUTER_ENOTFOUND when none is kept, ROUTER_ENOMEM when out of memory. */
static char *kept_pattern(struct broker *b, const char *key, enum router_err *err)
{
	size_t len;
	const char *v = store_get(b->store, key, &len);
	char *pattern = v ? strndup(v, len) : NULL;
	*err = !v ? ROUTER_ENOTFOUND : pattern ? ROUTER_OK : ROUTER_ENOMEM;
	return pattern;
}

enum router_err stomp_durable_keep(struct broker *b, const char *queue, const char *pattern,
				   bool *fresh)
{
	enum router_err err;
	char *key = record_key(queue);
	char *old = key ? kept_pattern(b, key, &err) : NULL;
	*fresh = true;
	if (!key) {
		err = ROUTER_ENOMEM;
		goto out;
	}
	if (err == ROUTER_ENOMEM)
		goto out;
	if (old && !strcmp(old, pattern)) {
		*fresh = false;
		err = ROUTER_OK;
		goto out;
	}
	if (old) {
		err = router_drop_durable(b->router, old, queue);
		if (err != ROUTER_OK && err != ROUTER_ENOTFOUND)
			goto out;
		log_info("stomp: durable subscription %s changes from %s to %s; what waited for it "
			 "is dropped", queue, old, pattern);
	}
	err = store_put(b->store, key, pattern, strlen(pattern)) < 0 ? ROUTER_ESTORE : ROUTER_OK;
out:
	free(old);
	free(key);
	return err;
}

enum router_err stomp_durable_end(struct broker *b, const char *queue)
{
	enum router_err err = ROUTER_ENOMEM;
	char *key = record_key(queue);
	char *pattern = key ? kept_pattern(b, key, &err) : NULL;
	if (!pattern)
		goto out;
	err = router_drop_durable(b->router, pattern, queue);
	/* No queue left to drop (a store that lost it): the record alone ends
	 * the subscription. */
	if (err == ROUTER_ENOTFOUND)
		err = ROUTER_OK;
	if (err == ROUTER_OK && store_del(b->store, key) < 0)
		err = ROUTER_ESTORE;
out:
	free(pattern);
	free(key);
	return err;
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
