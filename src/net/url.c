#include "config.h"
#include "net/url.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

int url_parse(const char *s, struct listen_url *out, const char **why)
{
	const char *sep = strstr(s, "://");
	if (!sep || sep == s || (size_t)(sep - s) >= sizeof(out->scheme)) {
		*why = "expected SCHEME://HOST:PORT";
		return -1;
	}
	memcpy(out->scheme, s, (size_t)(sep - s));
	out->scheme[sep - s] = '\0';
	const char *host = sep + 3, *colon;
	size_t hlen;
	if (*host == '[') {
		const char *close = strchr(host, ']');
		if (!close || close[1] != ':') {
			*why = "an IPv6 address goes in brackets: [::1]:PORT";
			return -1;
		}
		host++;
		hlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(host, ':');
		if (!colon) {
			*why = "missing :PORT";
			return -1;
		}
		hlen = (size_t)(colon - host);
	}
	if (hlen == 0 || hlen >= sizeof(out->host)) {
		*why = "missing or overlong host";
		return -1;
	}
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	const char *port = colon + 1;
	char *end;
	long p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535 || *port == '-' || *port == '+') {
		*why = "the port must be a number from 0 to 65535";
		return -1;
	}
	out->port = (int)p;
	return 0;
}

void url_format_addr(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%d", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%d", host, ntohs(in6->sin6_port));
	} else {
		snprintf(out, len, "unix");
	}
}

int url_resolver(struct event_base *base, const char *host, struct evdns_base **out)
{
	unsigned char addr[16];
	*out = NULL;
	if (evutil_inet_pton(strchr(host, ':') ? AF_INET6 : AF_INET, host, addr) == 1)
		return 0;
	*out = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
					EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!*out) {
		log_error("no DNS resolver for %s", host);
		return -1;
	}
	return 0;
}
