#include "config.h"
#include "store/msgcodec.h"

#include <stdlib.h>
#include <string.h>

#include "router/message.h"
#include "store/record.h"

#define MSGCODEC_VERSION 1
#define ABSENT 0xffffffffu
#define FIXED (6 + 8 + 8 + 4)
#define BODY_IN_AMQP 4u  /* flag: the body field is a length only */

static size_t str_size(const char *s, size_t len)
{
	return 4 + (s ? len : 0);
}

/* An AMQP message's body (one data section, last) is the tail of its
 * encoding: written once, not twice. */
static bool body_in_amqp(const struct message *m)
{
	return m->amqp && m->body && m->body_len && m->body_len <= m->amqp_len &&
	       !memcmp(m->amqp + m->amqp_len - m->body_len, m->body, m->body_len);
}

size_t msgcodec_size(const struct message *m)
{
	size_t n = FIXED;
	n += str_size(m->dest, m->dest ? strlen(m->dest) : 0);
	n += str_size(m->content_type, m->content_type ? strlen(m->content_type) : 0);
	n += str_size(m->correlation_id, m->correlation_id_len);
	n += str_size(m->reply_to, m->reply_to ? strlen(m->reply_to) : 0);
	for (size_t i = 0; i < m->nprops; i++)
		n += str_size(m->props[i].name, strlen(m->props[i].name)) +
		     str_size(m->props[i].value, m->props[i].value_len);
	n += body_in_amqp(m) ? 4 : str_size((const char *)m->body, m->body_len);
	n += str_size((const char *)m->amqp, m->amqp_len);
	return n;
}

static uint8_t *put_str(uint8_t *p, const void *s, size_t len)
{
	if (!s) {
		jput32(p, ABSENT);
		return p + 4;
	}
	jput32(p, (uint32_t)len);
	if (len)
		memcpy(p + 4, s, len);
	return p + 4 + len;
}

static uint8_t *put_cstr(uint8_t *p, const char *s)
{
	return put_str(p, s, s ? strlen(s) : 0);
}

uint8_t *msgcodec_write(uint8_t *p, const struct message *m)
{
	p[0] = MSGCODEC_VERSION;
	bool tail = body_in_amqp(m);
	p[1] = (uint8_t)((m->durable ? 1 : 0) | (m->retain ? 2 : 0) | (tail ? BODY_IN_AMQP : 0));
	p[2] = m->qos;
	p[3] = m->priority;
	p[4] = m->payload_format;
	p[5] = (uint8_t)m->dest_kind;
	jput64(p + 6, (uint64_t)m->timestamp_ms);
	jput64(p + 14, (uint64_t)m->expiry_ms);
	p += 22;
	p = put_cstr(p, m->dest);
	p = put_cstr(p, m->content_type);
	p = put_str(p, m->correlation_id, m->correlation_id_len);
	p = put_cstr(p, m->reply_to);
	jput32(p, (uint32_t)m->nprops);
	p += 4;
	for (size_t i = 0; i < m->nprops; i++) {
		p = put_cstr(p, m->props[i].name);
		p = put_str(p, m->props[i].value, m->props[i].value_len);
	}
	if (tail) {
		jput32(p, (uint32_t)m->body_len);
		p += 4;
	} else {
		p = put_str(p, m->body, m->body_len);
	}
	return put_str(p, m->amqp, m->amqp_len);
}

struct reader {
	const uint8_t *p;
	size_t left;
	const char *why;
};

static int get_u32(struct reader *r, uint32_t *n)
{
	if (r->left < 4) {
		r->why = "truncated length";
		return -1;
	}
	*n = jget32(r->p);
	r->p += 4;
	r->left -= 4;
	return 0;
}

/* The next str as a malloc'd copy with a NUL after it; *out NULL when
 * absent. -1 (why set) on a bad length or out of memory. */
static int get_str(struct reader *r, char **out, size_t *len)
{
	*out = NULL;
	if (len)
		*len = 0;
	uint32_t n;
	if (get_u32(r, &n) < 0)
		return -1;
	if (n == ABSENT)
		return 0;
	if (n > r->left) {
		r->why = "length past the end";
		return -1;
	}
	char *s = malloc((size_t)n + 1);
	if (!s) {
		r->why = "out of memory";
		return -1;
	}
	memcpy(s, r->p, n);
	s[n] = '\0';
	r->p += n;
	r->left -= n;
	*out = s;
	if (len)
		*len = n;
	return 0;
}

/* A length with no bytes after it (a body kept in the AMQP encoding). */
static int get_len(struct reader *r, size_t *len)
{
	uint32_t n;
	if (get_u32(r, &n) < 0)
		return -1;
	if (n == ABSENT) {
		r->why = "absent body kept in the AMQP encoding";
		return -1;
	}
	*len = n;
	return 0;
}

/* A text field: present, and no NUL inside (it is used as a C string). */
static int get_text(struct reader *r, char **out, bool required)
{
	size_t len;
	if (get_str(r, out, &len) < 0)
		return -1;
	if ((!*out && required) || (*out && strlen(*out) != len)) {
		r->why = *out ? "NUL inside a text field" : "missing destination";
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

static int get_props(struct reader *r, struct message *m)
{
	if (r->left < 4) {
		r->why = "truncated property count";
		return -1;
	}
	uint32_t n = jget32(r->p);
	r->p += 4;
	r->left -= 4;
	if (n > r->left / 8) { /* each takes at least two lengths */
		r->why = "property count past the end";
		return -1;
	}
	if (n && !(m->props = calloc(n, sizeof(*m->props)))) {
		r->why = "out of memory";
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct msg_prop *pr = &m->props[i];
		if (get_text(r, &pr->name, true) < 0)
			return -1;
		m->nprops++;
		if (get_str(r, &pr->value, &pr->value_len) < 0)
			return -1;
		if (!pr->value) {
			r->why = "property without a value";
			return -1;
		}
	}
	return 0;
}

struct message *msgcodec_read(const uint8_t *p, size_t n, const char **why)
{
	if (n < FIXED - 4 || p[0] != MSGCODEC_VERSION) {
		*why = n < FIXED - 4 ? "truncated message" : "unknown message encoding";
		return NULL;
	}
	if (p[1] & ~7u || p[2] > 2 || p[3] > 9 || p[4] > 1 || p[5] > DEST_TOPIC) {
		*why = "field out of range";
		return NULL;
	}
	struct message *m = message_new();
	if (!m) {
		*why = "out of memory";
		return NULL;
	}
	m->durable = p[1] & 1;
	m->retain = (p[1] & 2) != 0;
	m->qos = p[2];
	m->priority = p[3];
	m->payload_format = p[4];
	m->dest_kind = (enum dest_kind)p[5];
	m->timestamp_ms = (int64_t)jget64(p + 6);
	m->expiry_ms = (int64_t)jget64(p + 14);
	struct reader r = { p + 22, n - 22, NULL };
	char *body = NULL, *amqp = NULL;
	size_t body_len = 0;
	bool tail = p[1] & BODY_IN_AMQP;
	if (get_text(&r, &m->dest, true) < 0 || get_text(&r, &m->content_type, false) < 0 ||
	    get_str(&r, &m->correlation_id, &m->correlation_id_len) < 0 ||
	    get_text(&r, &m->reply_to, false) < 0 || get_props(&r, m) < 0 ||
	    (tail ? get_len(&r, &body_len) : get_str(&r, &body, &body_len)) < 0 ||
	    get_str(&r, &amqp, &m->amqp_len) < 0)
		goto fail;
	if (r.left) {
		r.why = "bytes after the message";
		goto fail;
	}
	if (tail) {
		if (!amqp || !body_len || body_len > m->amqp_len) {
			r.why = "body outside the AMQP encoding";
			goto fail;
		}
		if (!(body = malloc(body_len + 1))) {
			r.why = "out of memory";
			goto fail;
		}
		memcpy(body, amqp + m->amqp_len - body_len, body_len);
		body[body_len] = '\0';
	} else if (amqp && body && body_len && body_len <= m->amqp_len &&
		   !memcmp(amqp + m->amqp_len - body_len, body, body_len)) {
		/* The writer never stores such a body twice: one encoding per
		 * message. */
		r.why = "body stored twice";
		goto fail;
	}
	m->body = (uint8_t *)body;
	m->body_len = body_len;
	m->amqp = (uint8_t *)amqp;
	return m;
fail:
	free(body);
	free(amqp);
	*why = r.why;
	message_unref(m);
	return NULL;
}
