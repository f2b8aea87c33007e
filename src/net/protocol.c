#include "config.h"
#include "net/protocol.h"

#include <stdio.h>
#include <string.h>

#include "broker.h"

const struct protocol *protocol_by_scheme(const char *scheme, bool *tls)
{
	for (const struct protocol *const *p = protocols; *p; p++) {
		if (!strcmp((*p)->scheme, scheme) || !strcmp((*p)->tls_scheme, scheme)) {
			*tls = !strcmp((*p)->tls_scheme, scheme);
			return *p;
		}
	}
	return NULL;
}

const struct protocol *protocol_by_subprotocol(const char *sub)
{
	for (const struct protocol *const *p = protocols; *p; p++)
		for (const char *const *s = (*p)->ws_subprotocols; s && *s; s++)
			if (!strcmp(*s, sub))
				return *p;
	return NULL;
}

void protocol_subprotocols(const char *out[PROTOCOL_SUBPROTOCOLS_MAX + 1])
{
	size_t n = 0;
	for (const struct protocol *const *p = protocols; *p; p++)
		for (const char *const *s = (*p)->ws_subprotocols; s && *s; s++)
			if (n < PROTOCOL_SUBPROTOCOLS_MAX)
				out[n++] = *s;
	out[n] = NULL;
}

/* items joined by ", ", the last two by `last` instead. */
static void join(const char *const *items, const char *last, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; items[i] && used < len; i++) {
		const char *sep = !i ? "" : items[i + 1] ? ", " : last;
		int n = snprintf(buf + used, len - used, "%s%s", sep, items[i]);
		if (n < 0)
			return;
		used += (size_t)n;
	}
}

void protocol_schemes_text(char *buf, size_t len)
{
	const char *names[2 * PROTOCOLS_MAX + 1];
	size_t n = 0;
	for (const struct protocol *const *p = protocols; *p; p++) {
		names[n++] = (*p)->scheme;
		names[n++] = (*p)->tls_scheme;
	}
	names[n] = NULL;
	join(names, ", ", buf, len);
}

void protocol_subprotocols_text(char *buf, size_t len)
{
	const char *subs[PROTOCOL_SUBPROTOCOLS_MAX + 1];
	protocol_subprotocols(subs);
	join(subs, " or ", buf, len);
}

int protocols_init(struct broker *b)
{
	for (size_t i = 0; protocols[i]; i++)
		if (protocols[i]->init && protocols[i]->init(b, &b->proto_state[i]) < 0)
			return -1;
	return 0;
}

void protocols_fini(struct broker *b)
{
	size_t n = 0;
	while (protocols[n])
		n++;
	while (n--) {
		if (b->proto_state[n])
			protocols[n]->fini(b->proto_state[n]);
		b->proto_state[n] = NULL;
	}
}

void *protocol_state(const struct broker *b, const struct proto_ops *ops)
{
	for (size_t i = 0; protocols[i]; i++)
		if (protocols[i]->ops == ops)
			return b->proto_state[i];
	return NULL;
}
