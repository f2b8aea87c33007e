#include "config.h"
#include "router/message.h"

#include <stdlib.h>
#include <string.h>

struct message *message_new(void)
{
	struct message *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->refs = 1;
	m->priority = MESSAGE_DEFAULT_PRIORITY;
	return m;
}

struct message *message_ref(struct message *m)
{
	m->refs++;
	return m;
}

void message_unref(struct message *m)
{
	if (!m || --m->refs > 0)
		return;
	for (size_t i = 0; i < m->nprops; i++) {
		free(m->props[i].name);
		free(m->props[i].value);
	}
	free(m->props);
	free(m->dest);
	free(m->content_type);
	free(m->correlation_id);
	free(m->reply_to);
	free(m->body);
	free(m->amqp);
	free(m);
}

int message_set(char **field, const char *value)
{
	char *copy = strdup(value);
	if (!copy)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

int message_set_bytes(char **field, size_t *len, const void *value, size_t value_len)
{
	char *copy = malloc(value_len + 1);
	if (!copy)
		return -1;
	memcpy(copy, value, value_len);
	copy[value_len] = '\0';
	free(*field);
	*field = copy;
	*len = value_len;
	return 0;
}

int message_add_prop(struct message *m, const char *name, const char *value, size_t value_len)
{
	struct msg_prop *props = realloc(m->props, (m->nprops + 1) * sizeof(*props));
	if (!props)
		return -1;
	m->props = props;
	struct msg_prop *p = &props[m->nprops];
	p->name = strdup(name);
	p->value = malloc(value_len + 1);
	if (!p->name || !p->value) {
		free(p->name);
		free(p->value);
		return -1;
	}
	memcpy(p->value, value, value_len);
	p->value[value_len] = '\0';
	p->value_len = value_len;
	m->nprops++;
	return 0;
}

void message_take_body(struct message *m, uint8_t **body, size_t len)
{
	free(m->body);
	m->body = *body;
	m->body_len = len;
	*body = NULL;
}

int message_set_prop(struct message *m, const char *name, const char *value)
{
	for (size_t i = 0; i < m->nprops; i++)
		if (!strcmp(m->props[i].name, name))
			return message_set_bytes(&m->props[i].value, &m->props[i].value_len, value,
						 strlen(value));
	return message_add_prop(m, name, value, strlen(value));
}

void message_del_prop(struct message *m, const char *name)
{
	for (size_t i = 0; i < m->nprops;) {
		if (strcmp(m->props[i].name, name)) {
			i++;
			continue;
		}
		free(m->props[i].name);
		free(m->props[i].value);
		memmove(&m->props[i], &m->props[i + 1], (m->nprops - i - 1) * sizeof(*m->props));
		m->nprops--;
	}
}

static int copy_bytes(uint8_t **to, const uint8_t *from, size_t len)
{
	if (!from)
		return 0;
	*to = malloc(len ? len : 1);
	if (!*to)
		return -1;
	memcpy(*to, from, len);
	return 0;
}

struct message *message_copy(const struct message *m)
{
	struct message *c = message_new();
	if (!c)
		return NULL;
	*c = *m;
	c->refs = 1;
	c->dest = c->content_type = c->correlation_id = c->reply_to = NULL;
	c->props = NULL;
	c->nprops = 0;
	c->body = c->amqp = NULL;
	bool failed = (m->dest && message_set(&c->dest, m->dest) < 0) ||
		      (m->content_type && message_set(&c->content_type, m->content_type) < 0) ||
		      (m->correlation_id &&
		       message_set_bytes(&c->correlation_id, &c->correlation_id_len,
					 m->correlation_id, m->correlation_id_len) < 0) ||
		      (m->reply_to && message_set(&c->reply_to, m->reply_to) < 0) ||
		      copy_bytes(&c->body, m->body, m->body_len) < 0 ||
		      copy_bytes(&c->amqp, m->amqp, m->amqp_len) < 0;
	for (size_t i = 0; !failed && i < m->nprops; i++)
		failed = message_add_prop(c, m->props[i].name, m->props[i].value,
					  m->props[i].value_len) < 0;
	if (failed) {
		message_unref(c);
		return NULL;
	}
	return c;
}

size_t mem_block(size_t n, bool allocated)
{
	if (!allocated)
		return 0;
	size_t b = (n + sizeof(size_t) + 15) & ~(size_t)15;
	return b < 32 ? 32 : b;
}

static size_t str_block(const char *s)
{
	return s ? mem_block(strlen(s) + 1, true) : 0;
}

size_t message_mem_size(const struct message *m)
{
	size_t n = mem_block(sizeof(*m), true) + str_block(m->dest) + str_block(m->content_type) +
		   str_block(m->reply_to) + mem_block(m->correlation_id_len + 1, m->correlation_id) +
		   mem_block(m->body_len, m->body) + mem_block(m->amqp_len, m->amqp) +
		   mem_block(m->nprops * sizeof(*m->props), m->props);
	for (size_t i = 0; i < m->nprops; i++)
		n += str_block(m->props[i].name) + mem_block(m->props[i].value_len + 1, m->props[i].value);
	return n;
}

const char *message_group(const struct message *m)
{
	for (size_t i = 0; i < m->nprops; i++)
		if (!strcmp(m->props[i].name, MESSAGE_GROUP_PROP))
			return m->props[i].value;
	return NULL;
}
