#include "config.h"
#include "router/address.h"

#include <stdlib.h>
#include <string.h>

static bool level_is(const char *s, size_t len, char c)
{
	return len == 1 && s[0] == c;
}

int address_validate(const char *name, bool pattern)
{
	size_t total = strlen(name);
	if (total == 0 || total > ADDRESS_MAX_LEN)
		return -1;
	for (const char *c = name; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return -1; /* control characters would break every text protocol's headers */
	const char *s = name;
	for (;;) {
		const char *dot = strchr(s, '.');
		size_t len = dot ? (size_t)(dot - s) : strlen(s);
		bool star = level_is(s, len, '*'), gt = level_is(s, len, '>');
		if ((star || gt) && !pattern)
			return -1;
		if (gt && dot)
			return -1; /* '>' only as the last level */
		if (!dot)
			return 0;
		s = dot + 1;
	}
}

bool address_is_pattern(const char *name)
{
	const char *s = name;
	for (;;) {
		const char *dot = strchr(s, '.');
		size_t len = dot ? (size_t)(dot - s) : strlen(s);
		if (level_is(s, len, '*') || level_is(s, len, '>'))
			return true;
		if (!dot)
			return false;
		s = dot + 1;
	}
}

bool address_match(const char *pattern, const char *name)
{
	const char *p = pattern, *n = name;
	bool first = true;
	for (;;) {
		const char *pd = strchr(p, '.');
		size_t plen = pd ? (size_t)(pd - p) : strlen(p);
		if (level_is(p, plen, '>'))
			return !(first && n[0] == '$');
		if (!n)
			return false;
		const char *nd = strchr(n, '.');
		size_t nlen = nd ? (size_t)(nd - n) : strlen(n);
		if (level_is(p, plen, '*')) {
			if (first && n[0] == '$')
				return false;
		} else if (plen != nlen || memcmp(p, n, plen) != 0) {
			return false;
		}
		first = false;
		if (!pd)
			return nd == NULL;
		p = pd + 1;
		n = nd ? nd + 1 : NULL;
	}
}

const char *dest_kind_name(enum dest_kind kind)
{
	return kind == DEST_QUEUE ? "queue" : "topic";
}

char **address_split(const char *name, size_t *nlevels)
{
	size_t len = strlen(name), n = 1;
	for (const char *p = name; *p; p++)
		n += *p == '.';
	char **levels = malloc(n * sizeof(*levels) + len + 1);
	if (!levels)
		return NULL;
	char *copy = (char *)(levels + n);
	memcpy(copy, name, len + 1);
	size_t i = 0;
	levels[i++] = copy;
	for (char *p = copy; *p; p++)
		if (*p == '.') {
			*p = '\0';
			levels[i++] = p + 1;
		}
	*nlevels = n;
	return levels;
}
