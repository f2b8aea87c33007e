#include "config.h"
#include "durable_sub.h"

#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "store/store.h"
#include "util/buf.h"

static char *record_key(const char *prefix, const char *queue)
{
	struct buf b = BUF_INIT;
	if (buf_printf(&b, "%s%s", prefix, queue) < 0) {
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

enum router_err durable_sub_keep(struct broker *b, const char *prefix, const char *queue,
				 const char *pattern, bool *fresh)
{
	enum router_err err;
	char *key = record_key(prefix, queue);
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
		log_info("durable subscription %s changes from %s to %s; what waited for it "
			 "is dropped", queue, old, pattern);
	}
	err = store_put(b->store, key, pattern, strlen(pattern)) < 0 ? ROUTER_ESTORE : ROUTER_OK;
out:
	free(old);
	free(key);
	return err;
}

enum router_err durable_sub_end(struct broker *b, const char *prefix, const char *queue)
{
	enum router_err err = ROUTER_ENOMEM;
	char *key = record_key(prefix, queue);
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
