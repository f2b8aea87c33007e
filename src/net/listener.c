#include "config.h"
#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/listener.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "broker.h"
#include "log.h"
#include "net/conn.h"
#include "net/tls.h"
#include "net/url.h"
#include "net/ws.h"
#include "protocols/amqp/session.h"
#include "protocols/mqtt/session.h"
#include "protocols/stomp/session.h"

struct listener {
	struct listener *next;
	struct broker *b;
	struct evconnlistener *evl;
	const struct proto_ops *proto;
	struct tls_ctx *tls; /* NULL for plain TCP */
	bool ws;
	char *name;
};

/* The scheme of a listener URL names its protocol and transport. */
static const struct scheme {
	const char *name;
	const struct proto_ops *proto; /* NULL: chosen by WebSocket subprotocol */
	bool tls;
} schemes[] = {
	{ "stomp", &stomp_proto, false },
	{ "stomps", &stomp_proto, true },
	{ "mqtt", &mqtt_proto, false },
	{ "mqtts", &mqtt_proto, true },
	{ "amqp", &amqp_proto, false },
	{ "amqps", &amqp_proto, true },
	{ "ws", NULL, false },
	{ "wss", NULL, true },
};

static const struct scheme *find_scheme(const char *name)
{
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strcmp(schemes[i].name, name))
			return &schemes[i];
	return NULL;
}

static void accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct listener *l = arg;
	const struct wharf_config *cfg = l->b->cfg;
	struct ws_options ws = { .max_message = cfg->ws_max_message,
				 .allowed_origins = cfg->ws_allowed_origins };
	conn_accept(l->b, l->proto, l->tls, l->ws ? &ws : NULL, fd, sa, salen,
		    cfg->max_connection_output);
}

static void accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	/* EMFILE and friends: keep the listener; the loop retries when a
	 * descriptor frees up. */
	log_warn("listener %s: accept failed: %s", l->name, strerror(errno));
}

static int resolve(const struct listen_url *u, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%d", u->port);
	const char *host = strcmp(u->host, "*") ? u->host : NULL;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		return rc;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int listener_url_check(const char *url, const char **why)
{
	struct listen_url u;
	if (url_parse(url, &u, why) < 0)
		return -1;
	if (!find_scheme(u.scheme)) {
		*why = "unsupported scheme (supported: stomp, stomps, mqtt, mqtts, amqp, amqps, ws, wss)";
		return -1;
	}
	return 0;
}

/* The listener's TLS settings, each falling back to the global one. */
static struct tls_ctx *make_tls(struct broker *b, const struct listener_config *lc)
{
	const struct tls_config *g = &b->cfg->tls, *t = &lc->tls;
	struct tls_options o = {
		.cert = t->cert ? t->cert : g->cert,
		.key = t->key ? t->key : g->key,
		.ca = t->ca ? t->ca : g->ca,
		.ciphers = t->ciphers ? t->ciphers : g->ciphers,
		.client_cert = t->client_cert >= 0 ? t->client_cert
			       : g->client_cert >= 0 ? g->client_cert : TLS_CLIENT_NONE,
		.min_version = t->min_version ? t->min_version : g->min_version ? g->min_version : 12,
	};
	char err[512];
	struct tls_ctx *tls = tls_ctx_new(&o, err, sizeof(err));
	if (!tls)
		log_error("listener %s: %s", lc->name, err);
	return tls;
}

int listener_open(struct broker *b, const struct listener_config *lc)
{
	const char *name = lc->name, *url = lc->url;
	struct listen_url u;
	const char *why;
	if (listener_url_check(url, &why) < 0 || url_parse(url, &u, &why) < 0) {
		log_error("listener %s: bad url '%s': %s", name, url, why);
		return -1;
	}
	const struct scheme *scheme = find_scheme(u.scheme);
	const struct proto_ops *proto = scheme->proto;
	struct sockaddr_storage ss;
	socklen_t sslen;
	int rc = resolve(&u, &ss, &sslen);
	if (rc != 0) {
		log_error("listener %s: cannot resolve '%s': %s", name, u.host, gai_strerror(rc));
		return -1;
	}
	struct listener *l = calloc(1, sizeof(*l));
	if (!l || !(l->name = strdup(name))) {
		free(l);
		log_error("listener %s: out of memory", name);
		return -1;
	}
	l->b = b;
	l->proto = proto;
	l->ws = !proto;
	if (scheme->tls && !(l->tls = make_tls(b, lc))) {
		free(l->name);
		free(l);
		return -1;
	}
	l->evl = evconnlistener_new_bind(b->base, accept_cb, l,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
					 1024, (struct sockaddr *)&ss, (int)sslen);
	if (!l->evl) {
		log_error("listener %s: cannot listen on %s: %s", name, url, strerror(errno));
		tls_ctx_free(l->tls);
		free(l->name);
		free(l);
		return -1;
	}
	evconnlistener_set_error_cb(l->evl, accept_error_cb);
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	getsockname(evconnlistener_get_fd(l->evl), (struct sockaddr *)&bound, &blen);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (bound.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&bound;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		log_info("listening %s [%s]:%d", scheme->name, host, port);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&bound;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		log_info("listening %s %s:%d", scheme->name, host, port);
	}
	l->next = b->listeners;
	b->listeners = l;
	return 0;
}

void listener_close_all(struct broker *b)
{
	while (b->listeners) {
		struct listener *l = b->listeners;
		b->listeners = l->next;
		evconnlistener_free(l->evl);
		tls_ctx_free(l->tls);
		free(l->name);
		free(l);
	}
}

void listener_reload_tls(struct broker *b)
{
	for (struct listener *l = b->listeners; l; l = l->next) {
		char err[512];
		if (!l->tls)
			continue;
		if (tls_ctx_reload(l->tls, err, sizeof(err)) < 0)
			log_error("listener %s: TLS reload failed, keeping the old certificate: %s",
				  l->name, err);
		else
			log_info("listener %s: TLS certificate reloaded", l->name);
	}
}
