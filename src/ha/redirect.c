#include "config.h"
#include "ha/redirect.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "net/conn.h"
#include "net/protocol.h"
#include "net/url.h"

struct redirect_addr {
	const struct protocol *proto; /* NULL: ws or wss, any protocol */
	bool tls;
	struct redirect_target at;
};

struct redirect {
	size_t n;
	struct redirect_addr addr[];
};

void redirect_free(struct redirect *r)
{
	free(r);
}

/* One URL of the advertise text into *a; false (logged) if it is not a
 * client address we can send anyone to. */
static bool parse_addr(const char *url, struct redirect_addr *a)
{
	struct listen_url u;
	const char *why = NULL;
	if (url_parse(url, &u, &why) < 0) {
		log_warn("redirect: ignoring '%s': %s", url, why);
		return false;
	}
	a->proto = protocol_by_scheme(u.scheme, &a->tls);
	if (!a->proto && strcmp(u.scheme, "ws") && strcmp(u.scheme, "wss")) {
		/* A newer active may serve more protocols: not an error. */
		log_warn("redirect: ignoring '%s': unknown scheme", url);
		return false;
	}
	if (!a->proto)
		a->tls = !strcmp(u.scheme, "wss");
	if (!u.port || !strcmp(u.host, "*") || !strcmp(u.host, "0.0.0.0") || !strcmp(u.host, "::")) {
		log_warn("redirect: ignoring '%s': not an address a client can reach", url);
		return false;
	}
	snprintf(a->at.host, sizeof(a->at.host), "%s", u.host);
	a->at.port = u.port;
	return true;
}

int broker_set_redirect(struct broker *b, const char *advertise)
{
	redirect_free(b->redirect);
	b->redirect = NULL;
	if (!advertise || !*advertise) {
		log_info("redirect: the active node is not known");
		return 0;
	}
	char *copy = strdup(advertise);
	size_t words = 1;
	for (const char *p = advertise; *p; p++)
		words += isspace((unsigned char)*p) != 0;
	struct redirect *r = calloc(1, sizeof(*r) + words * sizeof(r->addr[0]));
	if (!copy || !r) {
		free(copy);
		free(r);
		log_error("redirect: out of memory");
		return -1;
	}
	char *save = NULL;
	for (char *w = strtok_r(copy, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save))
		if (parse_addr(w, &r->addr[r->n]))
			r->n++;
	free(copy);
	b->redirect = r;
	log_info("redirect: the active node is at %s", advertise);
	return 0;
}

/* How well an address fits a client of protocol `name` over tls/ws: the
 * highest wins, 0 never. */
static int fit(const struct redirect_addr *a, const char *name, bool tls, bool ws)
{
	if (!a->proto)
		return ws ? (a->tls == tls ? 4 : 3) : 0;
	if (strcmp(a->proto->name, name))
		return 0;
	return a->tls == tls ? 2 : 1;
}

bool broker_redirect_for(const struct conn *c, struct redirect_target *to)
{
	const struct broker *b = conn_broker(c);
	if (b->active)
		return false;
	memset(to, 0, sizeof(*to));
	const struct redirect *r = b->redirect;
	const char *name = conn_protocol(c);
	bool tls = conn_tls(c), ws = conn_websocket(c);
	int best = 0;
	for (size_t i = 0; r && i < r->n; i++) {
		int f = fit(&r->addr[i], name, tls, ws);
		if (f > best) {
			best = f;
			*to = r->addr[i].at;
		}
	}
	return true;
}

void redirect_target_text(const struct redirect_target *to, char *buf, size_t len)
{
	bool v6 = strchr(to->host, ':') != NULL;
	snprintf(buf, len, "%s%s%s:%d", v6 ? "[" : "", to->host, v6 ? "]" : "", to->port);
}
