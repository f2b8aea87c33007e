/* Listener URLs: SCHEME://HOST:PORT, with [v6]:PORT for IPv6 and port 0
 * for a free port chosen by the kernel. */
#ifndef WHARF_NET_URL_H
#define WHARF_NET_URL_H

#include <stddef.h>

struct listen_url {
	char scheme[16];
	char host[256];
	int port;
};

/* 0 on success; -1 with a reason in *why (a static string). */
int url_parse(const char *s, struct listen_url *out, const char **why);

struct event_base;
struct evdns_base;
/* What resolves `host` without blocking the loop: libevent's evdns on
 * base (the system's resolv.conf and hosts file) in *out, or NULL when host
 * is an address and needs none. -1 (logged) when none can be made. Free
 * with evdns_base_free(*out, 0). Event-loop thread. */
int url_resolver(struct event_base *base, const char *host, struct evdns_base **out);

struct sockaddr;
/* "HOST:PORT", "[V6]:PORT", or "unix" for anything else: a peer or a bound
 * address, for logs. */
void url_format_addr(const struct sockaddr *sa, char *out, size_t len);

#endif
