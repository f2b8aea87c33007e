/* Persistent MQTT sessions across broker restarts. A session that outlives
 * its connection (clean session off, or a session expiry interval) keeps
 * each subscription's messages in a durable subscription queue of the
 * router, which the store keeps with its binding; what only MQTT knows
 * (the filters and their options, the expiry interval) is kept here, as
 * the store key "mqtt/session/CLIENT-ID":
 *     u8  version (1)
 *     u32 session expiry interval, u32 next subscription number
 *     u16 count, then per subscription:
 *         u16 filter length, filter, u16 queue length, queue,
 *         u8 qos, u8 flags (1 no local, 2 retain as published), u32 id
 * and apart, as it changes with every QoS 2 PUBLISH and PUBREL, the key
 * "mqtt/qos2/CLIENT-ID": the u16 packet ids of incoming QoS 2 messages
 * awaiting PUBREL (a resend of one is acknowledged, not routed again),
 * written before the PUBLISH's own message; the PUBREC waits for both
 * records, and the PUBCOMP for the record that removes the id (once it
 * goes, a new PUBLISH may reuse the id). Not kept: QoS 1/2 deliveries in
 * flight to the client (their messages are still in the queue and go
 * again, with new packet ids). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "protocols/mqtt/internal.h"
#include "store/record.h"
#include "store/store.h"
#include "util/buf.h"

#define KEY_PREFIX "mqtt/session/"
#define QOS2_PREFIX "mqtt/qos2/"
#define RECORD_VERSION 1

static char *session_key(const char *prefix, const char *id)
{
	size_t pl = strlen(prefix), il = strlen(id);
	char *k = malloc(pl + il + 1);
	if (k) {
		memcpy(k, prefix, pl);
		memcpy(k + pl, id, il + 1);
	}
	return k;
}

bool mqtt_client_durable(const struct mqtt_client *cl)
{
	return cl->session_expiry && cl->mb->b->store;
}

static int encode(struct buf *b, const struct mqtt_client *cl)
{
	uint8_t head[11];
	unsigned n = 0;
	for (const struct msub *sub = cl->subs; sub; sub = sub->next)
		n += sub->queue != NULL;
	if (n > 0xffff)
		return -1;
	head[0] = RECORD_VERSION;
	jput32(head + 1, cl->session_expiry);
	jput32(head + 5, cl->next_sub_no);
	head[9] = (uint8_t)n;
	head[10] = (uint8_t)(n >> 8);
	if (buf_append(b, head, sizeof(head)) < 0)
		return -1;
	for (const struct msub *sub = cl->subs; sub; sub = sub->next) {
		if (!sub->queue)
			continue;
		uint8_t opt[6] = { sub->qos,
				   (uint8_t)((sub->no_local ? 1 : 0) | (sub->retain_as_published ? 2 : 0)) };
		jput32(opt + 2, sub->sub_id);
		if (buf_append_str16(b, sub->filter) < 0 || buf_append_str16(b, sub->queue) < 0 ||
		    buf_append(b, opt, sizeof(opt)) < 0)
			return -1;
	}
	return 0;
}

static int encode_qos2(struct buf *b, const struct mqtt_client *cl)
{
	for (uint32_t i = 0; i < cl->nqos2_in; i++) {
		uint8_t pid[2] = { (uint8_t)cl->qos2_in[i], (uint8_t)(cl->qos2_in[i] >> 8) };
		if (buf_append(b, pid, 2) < 0)
			return -1;
	}
	return 0;
}

/* Puts the key under `prefix` with what encode makes of cl; deletes it
 * when that is nothing and `drop_empty`. c (may be NULL) waits for the
 * record. 0, or -1 when it cannot be written (logged). */
static int save(struct mqtt_client *cl, const char *prefix,
		int (*encode_fn)(struct buf *, const struct mqtt_client *), bool drop_empty,
		struct router_confirm *c)
{
	if (!mqtt_client_durable(cl))
		return 0;
	struct store *st = cl->mb->b->store;
	struct buf b = BUF_INIT;
	char *key = session_key(prefix, cl->id);
	int rc = !key || encode_fn(&b, cl) < 0 ? -1
		 : drop_empty && !b.len        ? store_del_confirmed(st, key, c)
					       : store_put_confirmed(st, key, b.data, b.len, c);
	if (rc < 0)
		log_warn("mqtt client %s: cannot keep the session in the store", cl->id);
	free(key);
	buf_free(&b);
	return rc;
}

int mqtt_session_save(struct mqtt_client *cl, struct router_confirm *c)
{
	return save(cl, KEY_PREFIX, encode, false, c);
}

int mqtt_session_save_qos2(struct mqtt_client *cl, struct router_confirm *c)
{
	return save(cl, QOS2_PREFIX, encode_qos2, true, c);
}

void mqtt_session_forget(struct mqtt_client *cl)
{
	struct store *st = cl->mb->b->store;
	if (!st)
		return;
	const char *prefixes[] = { KEY_PREFIX, QOS2_PREFIX };
	for (size_t i = 0; i < 2; i++) {
		char *key = session_key(prefixes[i], cl->id);
		if (key && store_del(st, key) < 0)
			log_warn("mqtt client %s: cannot remove the session from the store", cl->id);
		free(key);
	}
}

struct reader {
	const uint8_t *p;
	size_t left;
};

static bool get(struct reader *r, void *out, size_t n)
{
	if (r->left < n)
		return false;
	memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
	return true;
}

static char *get_u16str(struct reader *r)
{
	uint8_t n[2];
	if (!get(r, n, 2))
		return NULL;
	size_t len = (size_t)n[0] | (size_t)n[1] << 8;
	if (!len || len > r->left || memchr(r->p, 0, len))
		return NULL;
	char *s = strndup((const char *)r->p, len);
	r->p += len;
	r->left -= len;
	return s;
}

static int restore_subs(struct mqtt_client *cl, struct reader *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		char *filter = get_u16str(r);
		char *queue = filter ? get_u16str(r) : NULL;
		uint8_t opt[6];
		if (!queue || !get(r, opt, sizeof(opt)) || opt[0] > 2) {
			free(filter);
			free(queue);
			return -1;
		}
		if (mqtt_client_restore_sub(cl, filter, queue, opt[0], opt[1] & 1, (opt[1] & 2) != 0,
					    jget32(opt + 2)) < 0)
			log_warn("mqtt client %s: cannot restore its subscription to %s", cl->id, filter);
		free(filter);
		free(queue);
	}
	return 0;
}

static int restore_qos2(struct mqtt_client *cl)
{
	char *key = session_key(QOS2_PREFIX, cl->id);
	size_t len = 0;
	const uint8_t *p = key ? store_get(cl->mb->b->store, key, &len) : NULL;
	free(key);
	if (len % 2)
		return -1;
	for (size_t i = 0; p && i < len; i += 2)
		if (mqtt_client_qos2_add(cl, (uint16_t)(p[i] | p[i + 1] << 8), NULL) < 0)
			return -1;
	return 0;
}

static void restore_one(void *arg, const char *key, const void *val, size_t len)
{
	struct mqtt_broker *mb = arg;
	const char *id = key + strlen(KEY_PREFIX);
	struct reader r = { val, len };
	uint8_t head[11];
	if (!get(&r, head, sizeof(head)) || head[0] != RECORD_VERSION) {
		log_error("mqtt client %s: stored session unreadable; ignored", id);
		return;
	}
	struct mqtt_client *cl = mqtt_client_new(mb, id);
	if (!cl) {
		log_error("mqtt client %s: out of memory restoring its session", id);
		return;
	}
	cl->next_sub_no = jget32(head + 5);
	if (restore_subs(cl, &r, (unsigned)head[9] | (unsigned)head[10] << 8) < 0 || r.left ||
	    restore_qos2(cl) < 0)
		log_error("mqtt client %s: stored session damaged; kept what could be read", id);
	/* Only now: with an expiry the session is durable, and restoring it
	 * would write it again while the store walks its keys. */
	cl->session_expiry = jget32(head + 1);
	mqtt_client_start_expiry(cl);
}

void mqtt_sessions_restore(struct mqtt_broker *mb)
{
	if (mb->b->store)
		store_each(mb->b->store, KEY_PREFIX, restore_one, mb);
}
