#include "config.h"
#include "protocols/mqtt/mapping.h"

#include <stdlib.h>
#include <string.h>

/* Swaps the separators and maps whole-level wildcards between the two
 * syntaxes; `to_router` picks the direction. */
static void convert(char *dst, const char *src, size_t len, bool to_router)
{
	char sep_in = to_router ? '/' : '.', sep_out = to_router ? '.' : '/';
	char one_in = to_router ? '+' : '*', one_out = to_router ? '*' : '+';
	char all_in = to_router ? '#' : '>', all_out = to_router ? '>' : '#';
	size_t level = 0; /* start of the current level */
	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		bool whole = i == level && (i + 1 == len || src[i + 1] == sep_in);
		if (c == sep_in) {
			dst[i] = sep_out;
			level = i + 1;
		} else if (c == sep_out) {
			dst[i] = sep_in;
		} else if (whole && c == one_in) {
			dst[i] = one_out;
		} else if (whole && c == all_in) {
			dst[i] = all_out;
		} else {
			dst[i] = c;
		}
	}
	dst[len] = '\0';
}

bool mqtt_name_mappable(const char *topic, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || topic[i] == '/') {
			if (i - start == 1 && (topic[start] == '*' || topic[start] == '>'))
				return false;
			start = i + 1;
		}
	}
	return true;
}

char *mqtt_to_router_name(const char *topic, size_t len)
{
	char *out = malloc(len + 1);
	if (out)
		convert(out, topic, len, true);
	return out;
}

int mqtt_from_router_name(struct buf *out, const char *name)
{
	size_t len = strlen(name);
	if (buf_reserve(out, len) < 0)
		return -1;
	convert(out->data + out->len, name, len, false);
	out->len += len;
	return 0;
}

static int set_str(char **field, struct mqtt_str s)
{
	char *copy = malloc(s.len + 1);
	if (!copy)
		return -1;
	memcpy(copy, s.p, s.len);
	copy[s.len] = '\0';
	free(*field);
	*field = copy;
	return 0;
}

struct message *mqtt_message_from_publish(const struct mqtt_packet *p, uint64_t origin,
					  int64_t now_ms)
{
	const struct mqtt_publish *pub = &p->publish;
	const struct mqtt_props *pr = &p->props;
	struct message *m = message_new();
	if (!m)
		return NULL;
	m->qos = pub->qos;
	m->durable = pub->qos >= 1;
	m->retain = pub->retain;
	m->origin = origin;
	uint8_t *body = malloc(pub->payload.len + 1);
	if (!body)
		goto fail;
	memcpy(body, pub->payload.p, pub->payload.len);
	body[pub->payload.len] = '\0';
	message_take_body(m, &body, pub->payload.len);
	if (mqtt_has(pr, MQTT_PROP_PAYLOAD_FORMAT))
		m->payload_format = pr->payload_format;
	if (mqtt_has(pr, MQTT_PROP_MESSAGE_EXPIRY))
		m->expiry_ms = now_ms + (int64_t)pr->message_expiry * 1000;
	if (mqtt_has(pr, MQTT_PROP_CONTENT_TYPE) && set_str(&m->content_type, pr->content_type) < 0)
		goto fail;
	if (mqtt_has(pr, MQTT_PROP_CORRELATION_DATA) &&
	    message_set_bytes(&m->correlation_id, &m->correlation_id_len, pr->correlation_data.p,
			      pr->correlation_data.len) < 0)
		goto fail;
	if (mqtt_has(pr, MQTT_PROP_RESPONSE_TOPIC)) {
		char *name = mqtt_to_router_name(pr->response_topic.p, pr->response_topic.len);
		char *reply = name ? malloc(strlen(name) + sizeof(ADDR_TOPIC_PREFIX)) : NULL;
		if (reply) {
			strcpy(reply, ADDR_TOPIC_PREFIX);
			strcat(reply, name);
		}
		free(name);
		if (!reply)
			goto fail;
		free(m->reply_to);
		m->reply_to = reply;
	}
	struct mqtt_prop_iter it;
	struct mqtt_user_prop up;
	mqtt_user_props_begin(&it, pr);
	while (mqtt_user_props_next(&it, &up)) {
		char *key = malloc(up.key.len + 1);
		if (!key)
			goto fail;
		memcpy(key, up.key.p, up.key.len);
		key[up.key.len] = '\0';
		int rc = message_add_prop(m, key, up.value.p, up.value.len);
		free(key);
		if (rc < 0)
			goto fail;
	}
	return m;
fail:
	message_unref(m);
	return NULL;
}

static struct mqtt_str mstr(const char *s, size_t len)
{
	return (struct mqtt_str){ s, (uint32_t)len };
}

int mqtt_publish_props(struct mqtt_packet *pkt, const struct message *m, int64_t now_ms,
		       struct buf *scratch)
{
	struct mqtt_props *pr = &pkt->props;
	if (m->payload_format) {
		pr->present |= MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT);
		pr->payload_format = 1;
	}
	if (m->expiry_ms) {
		int64_t left = (m->expiry_ms - now_ms + 999) / 1000;
		pr->present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
		pr->message_expiry = left < 1 ? 1 : left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
	}
	/* Fields another protocol filled with what MQTT cannot carry (text that
	 * is not UTF-8) are left out rather than failing the delivery. */
	if (m->content_type && mqtt_utf8_valid(m->content_type, strlen(m->content_type))) {
		pr->present |= MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
		pr->content_type = mstr(m->content_type, strlen(m->content_type));
	}
	if (m->correlation_id && m->correlation_id_len <= 0xFFFF) {
		pr->present |= MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
		pr->correlation_data = mstr(m->correlation_id, m->correlation_id_len);
	}
	size_t user_off = 0, nuser = 0;
	for (size_t i = 0; i < m->nprops; i++)
		if (mqtt_utf8_valid(m->props[i].name, strlen(m->props[i].name)) &&
		    mqtt_utf8_valid(m->props[i].value, m->props[i].value_len))
			nuser++;
	/* scratch holds the response topic, then the user property array;
	 * both are written before any pointer into scratch is taken. */
	size_t topic_off = 0, topic_len = 0;
	if (m->reply_to) {
		const char *t = m->reply_to;
		bool topic = !strncmp(t, ADDR_TOPIC_PREFIX, strlen(ADDR_TOPIC_PREFIX));
		if (topic) {
			if (mqtt_from_router_name(scratch, t + strlen(ADDR_TOPIC_PREFIX)) < 0)
				return -1;
		} else if (buf_append_str(scratch, t) < 0) {
			return -1;
		}
		topic_len = scratch->len;
		if (!mqtt_topic_name_valid(scratch->data, topic_len))
			topic_len = 0;
	}
	if (nuser) {
		size_t align = _Alignof(struct mqtt_user_prop);
		size_t pad = (align - scratch->len % align) % align;
		if (buf_reserve(scratch, pad + nuser * sizeof(struct mqtt_user_prop)) < 0)
			return -1;
		scratch->len += pad;
		user_off = scratch->len;
		scratch->len += nuser * sizeof(struct mqtt_user_prop);
	}
	if (topic_len) {
		pr->present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC);
		pr->response_topic = mstr(scratch->data + topic_off, topic_len);
	}
	if (nuser) {
		struct mqtt_user_prop *up = (struct mqtt_user_prop *)(void *)(scratch->data + user_off);
		size_t j = 0;
		for (size_t i = 0; i < m->nprops; i++) {
			const struct msg_prop *mp = &m->props[i];
			if (!mqtt_utf8_valid(mp->name, strlen(mp->name)) ||
			    !mqtt_utf8_valid(mp->value, mp->value_len))
				continue;
			up[j].key = mstr(mp->name, strlen(mp->name));
			up[j].value = mstr(mp->value, mp->value_len);
			j++;
		}
		pr->user = up;
		pr->n_user = (uint32_t)nuser;
	}
	return 0;
}
