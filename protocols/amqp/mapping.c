#include "config.h"
#include "protocols/amqp/mapping.h"

#include <proton/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/utf8.h"

/* ---- addresses ----------------------------------------------------------- */

static bool has_capability(pn_terminus_t *t, const char *cap)
{
	pn_data_t *caps = t ? pn_terminus_capabilities(t) : NULL;
	if (!caps)
		return false;
	pn_data_rewind(caps);
	bool found = false;
	while (!found && pn_data_next(caps)) {
		pn_type_t type = pn_data_type(caps);
		if (type == PN_SYMBOL) {
			pn_bytes_t b = pn_data_get_symbol(caps);
			found = b.size == strlen(cap) && !memcmp(b.start, cap, b.size);
		} else if (type == PN_ARRAY) {
			pn_data_enter(caps);
			while (!found && pn_data_next(caps)) {
				pn_bytes_t b = pn_data_get_symbol(caps);
				found = b.size == strlen(cap) && !memcmp(b.start, cap, b.size);
			}
			pn_data_exit(caps);
		}
	}
	return found;
}

const char *amqp_destination(const char *address, pn_terminus_t *remote, enum dest_kind *kind)
{
	if (!strncmp(address, ADDR_QUEUE_PREFIX, strlen(ADDR_QUEUE_PREFIX))) {
		*kind = DEST_QUEUE;
		return address + strlen(ADDR_QUEUE_PREFIX);
	}
	if (!strncmp(address, ADDR_TOPIC_PREFIX, strlen(ADDR_TOPIC_PREFIX))) {
		*kind = DEST_TOPIC;
		return address + strlen(ADDR_TOPIC_PREFIX);
	}
	*kind = has_capability(remote, "topic") ? DEST_TOPIC : DEST_QUEUE;
	return address;
}

/* ---- messages ------------------------------------------------------------ */

/* Text of a simple AMQP value, for properties other protocols read as
 * strings; NULL for what has no obvious text form. */
static char *value_text(pn_data_t *d, size_t *len)
{
	char num[64];
	const char *src = num;
	size_t n;
	switch (pn_data_type(d)) {
	case PN_STRING: {
		pn_bytes_t b = pn_data_get_string(d);
		src = b.start;
		n = b.size;
		break;
	}
	case PN_SYMBOL: {
		pn_bytes_t b = pn_data_get_symbol(d);
		src = b.start;
		n = b.size;
		break;
	}
	case PN_BOOL: n = (size_t)snprintf(num, sizeof(num), "%s", pn_data_get_bool(d) ? "true" : "false"); break;
	case PN_UBYTE: n = (size_t)snprintf(num, sizeof(num), "%u", pn_data_get_ubyte(d)); break;
	case PN_BYTE: n = (size_t)snprintf(num, sizeof(num), "%d", pn_data_get_byte(d)); break;
	case PN_USHORT: n = (size_t)snprintf(num, sizeof(num), "%u", pn_data_get_ushort(d)); break;
	case PN_SHORT: n = (size_t)snprintf(num, sizeof(num), "%d", pn_data_get_short(d)); break;
	case PN_UINT: n = (size_t)snprintf(num, sizeof(num), "%u", pn_data_get_uint(d)); break;
	case PN_INT: n = (size_t)snprintf(num, sizeof(num), "%d", pn_data_get_int(d)); break;
	case PN_ULONG: n = (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)pn_data_get_ulong(d)); break;
	case PN_LONG: n = (size_t)snprintf(num, sizeof(num), "%lld", (long long)pn_data_get_long(d)); break;
	case PN_TIMESTAMP: n = (size_t)snprintf(num, sizeof(num), "%lld", (long long)pn_data_get_timestamp(d)); break;
	case PN_DOUBLE: n = (size_t)snprintf(num, sizeof(num), "%.17g", pn_data_get_double(d)); break;
	case PN_FLOAT: n = (size_t)snprintf(num, sizeof(num), "%.9g", (double)pn_data_get_float(d)); break;
	default: return NULL;
	}
	char *out = malloc(n + 1);
	if (out) {
		memcpy(out, src, n);
		out[n] = '\0';
		*len = n;
	}
	return out;
}

static int set_id(char **field, size_t *len, pn_msgid_t id)
{
	char num[32];
	switch (id.type) {
	case PN_STRING:
	case PN_SYMBOL:
	case PN_BINARY:
		return message_set_bytes(field, len, id.u.as_bytes.start, id.u.as_bytes.size);
	case PN_ULONG:
		snprintf(num, sizeof(num), "%llu", (unsigned long long)id.u.as_ulong);
		return message_set_bytes(field, len, num, strlen(num));
	case PN_UUID: {
		const unsigned char *u = (const unsigned char *)id.u.as_uuid.bytes;
		char text[37];
		snprintf(text, sizeof(text),
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
			 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
			 u[15]);
		return message_set_bytes(field, len, text, 36);
	}
	default:
		return 0;
	}
}

/* The body as other protocols see it: a data section's bytes; a string
 * amqp-value as UTF-8 text; a binary amqp-value's bytes; anything else as
 * its AMQP text form. */
static int take_body(struct message *m, pn_message_t *pm)
{
	pn_data_t *body = pn_message_body(pm);
	pn_data_rewind(body);
	const char *src = "";
	size_t n = 0;
	char *text = NULL;
	if (pn_data_next(body)) {
		pn_type_t t = pn_data_type(body);
		if (t == PN_BINARY) {
			pn_bytes_t b = pn_data_get_binary(body);
			src = b.start;
			n = b.size;
		} else if (t == PN_STRING) {
			pn_bytes_t b = pn_data_get_string(body);
			src = b.start;
			n = b.size;
			m->payload_format = 1;
		} else {
			size_t cap = 256;
			for (;;) {
				char *grown = realloc(text, cap);
				if (!grown) {
					free(text);
					return -1;
				}
				text = grown;
				size_t sz = cap;
				pn_data_rewind(body);
				if (pn_data_format(body, text, &sz) == 0) {
					n = sz;
					break;
				}
				if (cap > (1u << 26)) {
					n = 0;
					break;
				}
				cap *= 4;
			}
			src = text;
			m->payload_format = 1;
		}
	}
	uint8_t *copy = malloc(n + 1);
	if (!copy) {
		free(text);
		return -1;
	}
	memcpy(copy, src, n);
	copy[n] = '\0';
	message_take_body(m, &copy, n);
	free(text);
	return 0;
}

static int take_properties(struct message *m, pn_message_t *pm)
{
	pn_data_t *ap = pn_message_properties(pm);
	pn_data_rewind(ap);
	if (!pn_data_next(ap) || pn_data_type(ap) != PN_MAP)
		return 0;
	size_t n = pn_data_get_map(ap);
	pn_data_enter(ap);
	for (size_t i = 0; i + 1 < n; i += 2) {
		if (!pn_data_next(ap))
			break;
		char *key = NULL;
		size_t klen, vlen;
		if (pn_data_type(ap) == PN_STRING || pn_data_type(ap) == PN_SYMBOL)
			key = value_text(ap, &klen);
		if (!pn_data_next(ap)) {
			free(key);
			break;
		}
		char *value = key ? value_text(ap, &vlen) : NULL;
		int rc = (key && value && !memchr(key, '\0', klen))
				 ? message_add_prop(m, key, value, vlen)
				 : 0;
		free(key);
		free(value);
		if (rc < 0)
			return -1;
	}
	pn_data_exit(ap);
	return 0;
}

/* Every byte belongs to a described section of the message format
 * (descriptors 0x70 header to 0x78 footer): pn_message_decode alone lets
 * trailing garbage through. */
static bool sections_valid(const char *bytes, size_t len)
{
	pn_data_t *d = pn_data(4);
	size_t off = 0;
	bool ok = d && len > 0;
	while (ok && off < len) {
		pn_data_clear(d);
		ssize_t n = pn_data_decode(d, bytes + off, len - off);
		ok = n > 0;
		if (!ok)
			break;
		pn_data_rewind(d);
		ok = pn_data_next(d) && pn_data_type(d) == PN_DESCRIBED;
		if (ok) {
			pn_data_enter(d);
			ok = pn_data_next(d) && pn_data_type(d) == PN_ULONG &&
			     pn_data_get_ulong(d) >= 0x70 && pn_data_get_ulong(d) <= 0x78;
			pn_data_exit(d);
		}
		off += (size_t)n;
	}
	pn_data_free(d);
	return ok;
}

struct message *amqp_message_decode(const char *bytes, size_t len, char **to, const char **why)
{
	pn_message_t *pm = pn_message();
	struct message *m = message_new();
	*why = "out of memory";
	if (to)
		*to = NULL;
	if (!pm || !m)
		goto fail;
	if (!sections_valid(bytes, len) || pn_message_decode(pm, bytes, len) != 0) {
		*why = "not an AMQP message";
		goto fail;
	}
	m->durable = pn_message_is_durable(pm);
	m->qos = 1;
	m->priority = pn_message_get_priority(pm) > 9 ? 9 : pn_message_get_priority(pm);
	int64_t now = clock_wall_ms();
	if (pn_message_get_ttl(pm))
		m->expiry_ms = now + pn_message_get_ttl(pm);
	if (pn_message_get_expiry_time(pm) && (!m->expiry_ms || pn_message_get_expiry_time(pm) < m->expiry_ms))
		m->expiry_ms = pn_message_get_expiry_time(pm);
	const char *s;
	if ((s = pn_message_get_content_type(pm)) && message_set(&m->content_type, s) < 0)
		goto fail;
	if ((s = pn_message_get_reply_to(pm))) {
		/* Bare reply addresses are queues, as for links. */
		bool prefixed = !strncmp(s, ADDR_QUEUE_PREFIX, strlen(ADDR_QUEUE_PREFIX)) ||
				!strncmp(s, ADDR_TOPIC_PREFIX, strlen(ADDR_TOPIC_PREFIX));
		char *r = malloc(strlen(s) + sizeof(ADDR_QUEUE_PREFIX));
		if (!r)
			goto fail;
		sprintf(r, "%s%s", prefixed ? "" : ADDR_QUEUE_PREFIX, s);
		free(m->reply_to);
		m->reply_to = r;
	}
	if (set_id(&m->correlation_id, &m->correlation_id_len, pn_message_get_correlation_id(pm)) < 0)
		goto fail;
	if (take_properties(m, pm) < 0 || take_body(m, pm) < 0)
		goto fail;
	/* The group-id is the group the queue pins (router/group.h). */
	if ((s = pn_message_get_group_id(pm)) && *s && !message_group(m) &&
	    message_add_prop(m, MESSAGE_GROUP_PROP, s, strlen(s)) < 0)
		goto fail;
	if (to && (s = pn_message_get_address(pm)) && !(*to = strdup(s)))
		goto fail;
	m->amqp = malloc(len ? len : 1);
	if (!m->amqp)
		goto fail;
	memcpy(m->amqp, bytes, len);
	m->amqp_len = len;
	pn_message_free(pm);
	return m;
fail:
	pn_message_free(pm);
	message_unref(m);
	if (to) {
		free(*to);
		*to = NULL;
	}
	return NULL;
}

static int encode_into(pn_message_t *pm, struct buf *out)
{
	size_t cap = out->cap > 256 ? out->cap : 256;
	for (;;) {
		buf_reset(out);
		if (buf_reserve(out, cap) < 0)
			return -1;
		size_t size = out->cap - 1;
		int rc = pn_message_encode(pm, out->data, &size);
		if (rc == 0) {
			out->len = size;
			return 0;
		}
		if (rc != PN_OVERFLOW || cap > (1u << 30))
			return -1;
		cap *= 2;
	}
}

#define SECTION_HEADER 0x70

/* The sender's header fields a redelivery keeps. */
struct header_fields {
	bool durable;
	bool has_priority, has_ttl;
	uint8_t priority;
	uint32_t ttl;
};

/* How many bytes the header section at the start of bytes takes (0 if
 * the message has none), with its fields into *h. A field of the wrong
 * type is taken as absent: the message decoded once, so that is all the
 * care it needs. -1 on out of memory. */
static ssize_t read_header(const char *bytes, size_t len, struct header_fields *h)
{
	memset(h, 0, sizeof(*h));
	pn_data_t *d = pn_data(8);
	if (!d)
		return -1;
	ssize_t n = pn_data_decode(d, bytes, len);
	pn_data_rewind(d);
	bool header = n > 0 && pn_data_next(d) && pn_data_type(d) == PN_DESCRIBED;
	if (header) {
		pn_data_enter(d);
		header = pn_data_next(d) && pn_data_type(d) == PN_ULONG &&
			 pn_data_get_ulong(d) == SECTION_HEADER;
	}
	if (header && pn_data_next(d) && pn_data_type(d) == PN_LIST) {
		pn_data_enter(d);
		if (pn_data_next(d) && pn_data_type(d) == PN_BOOL)
			h->durable = pn_data_get_bool(d);
		if (pn_data_next(d) && pn_data_type(d) == PN_UBYTE) {
			h->has_priority = true;
			h->priority = pn_data_get_ubyte(d);
		}
		if (pn_data_next(d) && pn_data_type(d) == PN_UINT) {
			h->has_ttl = true;
			h->ttl = pn_data_get_uint(d);
		}
	}
	pn_data_free(d);
	return header ? n : 0;
}

/* A redelivery of what an AMQP client sent: a header of our own (its
 * durable, priority and ttl; first-acquirer false; our delivery count),
 * then every other section byte for byte, so several data sections and a
 * footer come through as they were sent. */
static int reheader(const char *bytes, size_t len, uint32_t delivery_count, struct buf *out)
{
	struct header_fields h;
	ssize_t old = read_header(bytes, len, &h);
	pn_data_t *d = old >= 0 ? pn_data(8) : NULL;
	if (!d)
		return -1;
	pn_data_put_described(d);
	pn_data_enter(d);
	pn_data_put_ulong(d, SECTION_HEADER);
	pn_data_put_list(d);
	pn_data_enter(d);
	pn_data_put_bool(d, h.durable);
	if (h.has_priority)
		pn_data_put_ubyte(d, h.priority);
	else
		pn_data_put_null(d);
	if (h.has_ttl)
		pn_data_put_uint(d, h.ttl);
	else
		pn_data_put_null(d);
	pn_data_put_bool(d, false);
	pn_data_put_uint(d, delivery_count);
	pn_data_exit(d);
	pn_data_exit(d);
	int rc = -1;
	ssize_t size = pn_data_encoded_size(d);
	buf_reset(out);
	if (size > 0 && buf_reserve(out, (size_t)size + (len - (size_t)old)) == 0 &&
	    pn_data_encode(d, out->data, (size_t)size) == size) {
		out->len = (size_t)size;
		rc = buf_append(out, bytes + old, len - (size_t)old);
	}
	pn_data_free(d);
	return rc;
}

int amqp_message_encode(const struct message *m, uint32_t delivery_count, struct buf *out)
{
	if (m->amqp && delivery_count == 0) {
		/* First delivery of what an AMQP client sent: the bytes as they came. */
		buf_reset(out);
		return buf_append(out, m->amqp, m->amqp_len);
	}
	if (m->amqp)
		return reheader((const char *)m->amqp, m->amqp_len, delivery_count, out);
	/* From another protocol: a message of our making. */
	pn_message_t *pm = pn_message();
	if (!pm)
		return -1;
	pn_message_set_durable(pm, m->durable);
	pn_message_set_priority(pm, m->priority);
	if (m->content_type)
		pn_message_set_content_type(pm, m->content_type);
	if (m->reply_to)
		pn_message_set_reply_to(pm, m->reply_to);
	if (m->correlation_id) {
		/* Text stays a string; MQTT's binary correlation data is binary. */
		bool text = utf8_valid(m->correlation_id, m->correlation_id_len);
		pn_msgid_t id = { .type = text ? PN_STRING : PN_BINARY };
		id.u.as_bytes = pn_bytes(m->correlation_id_len, m->correlation_id);
		pn_message_set_correlation_id(pm, id);
	}
	if (m->expiry_ms)
		pn_message_set_expiry_time(pm, m->expiry_ms);
	pn_message_set_creation_time(pm, m->timestamp_ms);
	const char *group = message_group(m);
	if (group)
		pn_message_set_group_id(pm, group);
	if (m->nprops) {
		pn_data_t *ap = pn_message_properties(pm);
		pn_data_put_map(ap);
		pn_data_enter(ap);
		for (size_t i = 0; i < m->nprops; i++) {
			if (m->props[i].value == group)
				continue; /* sent as the group-id */
			pn_data_put_string(ap, pn_bytes(strlen(m->props[i].name), m->props[i].name));
			pn_data_put_string(ap, pn_bytes(m->props[i].value_len, m->props[i].value));
		}
		pn_data_exit(ap);
	}
	/* Inferred: binary bytes go out as a data section, not an
	 * amqp-value holding binary. */
	pn_message_set_inferred(pm, true);
	pn_data_put_binary(pn_message_body(pm), pn_bytes(m->body_len, (const char *)m->body));
	pn_msgid_t id = { .type = PN_ULONG };
	id.u.as_ulong = m->id;
	pn_message_set_id(pm, id);
	pn_message_set_delivery_count(pm, delivery_count);
	int rc = encode_into(pm, out);
	pn_message_free(pm);
	return rc;
}
