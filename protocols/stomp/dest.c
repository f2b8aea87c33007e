#include "config.h"
#include "protocols/stomp/dest.h"

#include <stdlib.h>
#include <string.h>

#define INVALID "use /queue/NAME or /topic/NAME (wildcards * and > in SUBSCRIBE)"

/* The exchanges RabbitMQ declares itself, as Wharf maps them: amq.topic and
 * amq.direct route by key onto the topics (docs/stomp.md), amq.fanout is
 * one topic whatever the key. */
enum exchange { EX_TOPIC, EX_DIRECT, EX_FANOUT };

static const char *after(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(s, prefix, n) ? NULL : s + n;
}

/* RabbitMQ's `#` (zero or more words) is Wharf's `>` where Wharf has one:
 * as the last level. Returns the mapped copy, or NULL with *why set. */
static char *rabbit_pattern(const char *key, const char **why)
{
	char *out = strdup(key);
	if (!out) {
		*why = "out of memory";
		return NULL;
	}
	for (char *level = out;;) {
		char *dot = strchr(level, '.');
		if (level[0] == '#' && (level[1] == '\0' || level + 1 == dot)) {
			if (dot) {
				*why = "'#' is supported only as the last word of a pattern";
				free(out);
				return NULL;
			}
			*level = '>';
		}
		if (!dot)
			return out;
		level = dot + 1;
	}
}

static int set_name(struct stomp_dest *d, const char *name, bool rabbit_wildcards,
		    const char **why)
{
	d->name = rabbit_wildcards ? rabbit_pattern(name, why) : strdup(name);
	if (!d->name && !rabbit_wildcards)
		*why = "out of memory";
	return d->name ? 0 : -1;
}

/* "/exchange/NAME/KEY": only the exchanges RabbitMQ makes itself. */
static int parse_exchange(const char *rest, bool pattern, struct stomp_dest *d, const char **why)
{
	static const struct {
		const char *name;
		enum exchange kind;
	} exchanges[] = {
		{ "amq.topic/", EX_TOPIC },
		{ "amq.direct/", EX_DIRECT },
		{ "amq.fanout", EX_FANOUT },
	};
	d->kind = DEST_TOPIC;
	d->rabbit = true;
	for (size_t i = 0; i < sizeof(exchanges) / sizeof(exchanges[0]); i++) {
		const char *key = after(rest, exchanges[i].name);
		if (!key)
			continue;
		switch (exchanges[i].kind) {
		case EX_FANOUT:
			if (*key && *key != '/')
				break;
			d->out_prefix = "/exchange/";
			return set_name(d, "amq.fanout", false, why);
		case EX_DIRECT:
			d->out_prefix = "/exchange/amq.direct/";
			if (set_name(d, key, false, why) < 0)
				return -1;
			if (pattern && address_is_pattern(d->name)) {
				*why = "amq.direct keys with a * or > word are not supported";
				return -1;
			}
			return 0;
		case EX_TOPIC:
			d->out_prefix = "/exchange/amq.topic/";
			return set_name(d, key, pattern, why);
		}
	}
	*why = "unknown exchange: amq.topic, amq.direct and amq.fanout exist";
	return -1;
}

int stomp_dest_parse(const char *dest, enum stomp_dialect dialect, bool pattern,
		     struct stomp_dest *d, const char **why)
{
	const char *rest;
	bool rabbit = dialect != STOMP_DIALECT_ACTIVEMQ;
	memset(d, 0, sizeof(*d));
	*why = INVALID;
	if ((rest = after(dest, "/queue/"))) {
		d->kind = DEST_QUEUE;
		if (set_name(d, rest, false, why) < 0)
			return -1;
	} else if ((rest = after(dest, "/topic/"))) {
		d->kind = DEST_TOPIC;
		d->out_prefix = "/topic/";
		if (set_name(d, rest, rabbit && pattern, why) < 0)
			return -1;
	} else if (rabbit && ((rest = after(dest, "/amq/queue/")) ||
			      (!pattern && (rest = after(dest, "/reply-queue/"))))) {
		d->kind = DEST_QUEUE;
		d->rabbit = true;
		d->reply = dest[1] == 'r'; /* not /amq/queue/ */
		if (set_name(d, rest, false, why) < 0)
			return -1;
	} else if (rabbit && (rest = after(dest, "/exchange/"))) {
		if (parse_exchange(rest, pattern, d, why) < 0)
			goto fail;
	} else {
		return -1;
	}
	if (address_validate(d->name, pattern && d->kind == DEST_TOPIC) != 0) {
		*why = INVALID;
		goto fail;
	}
	return 0;
fail:
	stomp_dest_clear(d);
	return -1;
}

void stomp_dest_clear(struct stomp_dest *d)
{
	free(d->name);
	d->name = NULL;
}
