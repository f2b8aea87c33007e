#include "config.h"
#include "protocols/ws/origin.h"

#include <string.h>
#include <strings.h>

/* Splits "host[:port]" (host may be "[v6]"); the port defaults to dflt.
 * False when the port is not a number from 1 to 65535. */
static bool split_authority(const char *a, size_t len, size_t *hostlen, long *port, long dflt)
{
	const char *colon = NULL;
	if (len && a[0] == '[') {
		const char *close = memchr(a, ']', len);
		if (!close)
			return false;
		if ((size_t)(close - a) + 1 < len) {
			if (close[1] != ':')
				return false;
			colon = close + 1;
		}
	} else {
		colon = memchr(a, ':', len);
	}
	*hostlen = colon ? (size_t)(colon - a) : len;
	*port = dflt;
	if (!colon)
		return *hostlen > 0;
	const char *p = colon + 1, *end = a + len;
	if (p == end || end - p > 5)
		return false;
	long v = 0;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	*port = v;
	return *hostlen > 0 && v >= 1 && v <= 65535;
}

bool ws_same_origin(const char *origin, const char *host)
{
	long dflt;
	const char *auth;
	if (!strncasecmp(origin, "http://", 7)) {
		dflt = 80;
		auth = origin + 7;
	} else if (!strncasecmp(origin, "https://", 8)) {
		dflt = 443;
		auth = origin + 8;
	} else {
		return false;
	}
	size_t olen = strlen(auth), ohost, hhost;
	long oport, hport;
	/* An origin is scheme, host and port only: a path makes it not one. */
	if (strchr(auth, '/') || !split_authority(auth, olen, &ohost, &oport, dflt) ||
	    !split_authority(host, strlen(host), &hhost, &hport, dflt))
		return false;
	return ohost == hhost && oport == hport && strncasecmp(auth, host, ohost) == 0;
}

const char *ws_authority_host(const char *a, size_t *len)
{
	size_t n;
	long port;
	if (!split_authority(a, strlen(a), &n, &port, 80))
		return NULL;
	if (a[0] != '[') {
		*len = n;
		return a;
	}
	*len = n >= 2 ? n - 2 : 0;
	return a + 1;
}

bool ws_origin_listed(const char *list, const char *origin)
{
	size_t olen = strlen(origin);
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ' ' && *e != ',')
			e++;
		size_t n = (size_t)(e - p);
		if ((n == 1 && *p == '*') || (n == olen && n && strncmp(p, origin, olen) == 0))
			return true;
		p = e;
	}
	return false;
}
