#include "config.h"
#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "net/conn.h"
#include "net/protocol.h"
#include "net/tls.h"
#include "net/url.h"
#include "net/ws.h"
#include "util/loglimit.h"

/* Out of descriptors, a listener stops accepting this long, so that a full
 * backlog does not spin the loop on accept(). */
#define ACCEPT_PAUSE_MS 100
/* A line repeated for every refused connection is logged at most this
 * often, with the count of those left out. */
#define LOG_EVERY_MS 10000

struct listener {
	struct listener *next;
	struct broker *b;
	struct evconnlistener *evl;
	const struct proto_ops *proto;
	struct tls_ctx *tls; /* NULL for plain TCP */
	bool ws;
	char *name;
	bool allow_anonymous;       /* config_allow_anonymous */
	int cert_identity;          /* enum certid_kind */
	const char *allowed_origins; /* ws_options; the broker's config's */
	size_t max_connections;     /* 0: the global limit only */
	unsigned long nconns;       /* open connections accepted here */
	struct event *resume_ev;    /* re-enables accepting after a pause */
	struct log_limit accept_log, limit_log;
	char url[320];              /* as bound, for broker_advertise */
};

/* What a listener URL's scheme names: a protocol from the registry
 * (net/protocol.h), or WebSocket, whose subprotocol picks it per
 * connection; and whether it runs over TLS. */
struct scheme {
	const char *name;
	const struct proto_ops *proto; /* NULL: chosen by WebSocket subprotocol */
	bool tls;
};

static bool find_scheme(const char *name, struct scheme *out)
{
	bool tls = false;
	const struct protocol *p = protocol_by_scheme(name, &tls);
	if (p)
		*out = (struct scheme){ name, p->ops, tls };
	else if (!strcmp(name, "ws") || !strcmp(name, "wss"))
		*out = (struct scheme){ name, NULL, !strcmp(name, "wss") };
	else
		return false;
	return true;
}

static void accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct listener *l = arg;
	const struct wharf_config *cfg = l->b->cfg;
	size_t global = cfg->max_connections;
	unsigned long held;
	if ((global && l->b->nconns >= global) || (l->max_connections && l->nconns >= l->max_connections)) {
		/* Accepted and closed at once: left in the backlog, the client
		 * would wait for nothing. */
		close(fd);
		if (log_limit_pass(&l->limit_log, LOG_EVERY_MS, &held))
			log_warn("listener %s: connection refused: max_connections (%zu) reached (%lu more refused since the last such line)",
				 l->name, l->max_connections && l->nconns >= l->max_connections
				 ? l->max_connections : global, held);
		return;
	}
	struct ws_options ws = { .max_message = cfg->ws_max_message,
				 .allowed_origins = l->allowed_origins,
				 .origin_log = &l->b->origin_log };
	struct conn *c = conn_accept(l->b, l->proto, l->tls, l->ws ? &ws : NULL, fd, sa, salen,
				     cfg->max_connection_output, &l->nconns);
	if (c && conn_set_listener(c, l->name) < 0) {
		conn_close(c, false);
		return;
	}
	if (c) {
		conn_set_allow_anonymous(c, l->allow_anonymous);
		conn_set_cert_identity(c, l->cert_identity);
	}
}

static void resume_cb(evutil_socket_t fd, short what, void *evl)
{
	evconnlistener_enable(evl);
}

struct event *listener_resume_new(struct event_base *base, struct evconnlistener *evl)
{
	return evtimer_new(base, resume_cb, evl);
}

void listener_accept_failed(struct evconnlistener *evl, struct event *resume_ev,
			    const char *name, struct log_limit *ll)
{
	int err = errno;
	unsigned long held;
	/* EMFILE and friends: the pending connection stays in the backlog and
	 * the socket stays readable, so retrying at once would spin. Accepting
	 * pauses and resumes after a while, when descriptors may be free. */
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	evconnlistener_disable(evl);
	evtimer_add(resume_ev, &tv);
	if (log_limit_pass(ll, LOG_EVERY_MS, &held))
		log_warn("listener %s: accept failed: %s; accepting pauses for %d ms at a time (%lu more failures since the last such line)",
			 name, strerror(err), ACCEPT_PAUSE_MS, held);
}

static void accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	listener_accept_failed(evl, l->resume_ev, l->name, &l->accept_log);
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

void listener_schemes_text(char *buf, size_t len)
{
	protocol_schemes_text(buf, len);
	size_t n = strlen(buf);
	snprintf(buf + n, len - n, ", ws, wss");
}

int listener_url_check(const char *url, const char **why)
{
	struct listen_url u;
	if (url_parse(url, &u, why) < 0)
		return -1;
	struct scheme scheme;
	if (!find_scheme(u.scheme, &scheme)) {
		/* *why is static: the text is made here, on the one thread
		 * that reads configs and opens listeners. */
		static char text[256];
		char schemes[200];
		listener_schemes_text(schemes, sizeof(schemes));
		snprintf(text, sizeof(text), "unsupported scheme (supported: %s)", schemes);
		*why = text;
		return -1;
	}
	return 0;
}

/* The listener's TLS settings, each falling back to the global one. */
struct tls_ctx *listener_tls_new(struct broker *b, const struct tls_config *t, const char *name)
{
	const struct tls_config *g = &b->cfg->tls;
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
		log_error("listener %s: %s", name, err);
	return tls;
}

/* The URL a client of another node is sent to for this listener: a
 * wildcard address is the host's name. */
static void advertised_url(struct listener *l, const char *scheme, const char *host, int port)
{
	char name[256];
	if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")) {
		if (gethostname(name, sizeof(name)) == 0) {
			name[sizeof(name) - 1] = '\0';
			host = name;
		}
	}
	bool v6 = strchr(host, ':') != NULL;
	snprintf(l->url, sizeof(l->url), "%s://%s%s%s:%d", scheme, v6 ? "[" : "", host,
		 v6 ? "]" : "", port);
}

/* Listeners are kept newest first: written from the end, in config order. */
static int advertise_from(const struct listener *l, char *buf, size_t len, size_t *used)
{
	if (!l)
		return 0;
	if (advertise_from(l->next, buf, len, used) < 0)
		return -1;
	int n = snprintf(buf + *used, len - *used, "%s%s", *used ? " " : "", l->url);
	if (n < 0 || (size_t)n >= len - *used)
		return -1;
	*used += (size_t)n;
	return 0;
}

int listener_advertise(struct broker *b, char *buf, size_t len)
{
	size_t used = 0;
	if (!len)
		return -1;
	buf[0] = '\0';
	return advertise_from(b->listeners, buf, len, &used);
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
	struct scheme scheme;
	find_scheme(u.scheme, &scheme);
	const struct proto_ops *proto = scheme.proto;
	if (lc->cert_identity && !scheme.tls) {
		log_error("listener %s: cert_identity needs a TLS url (%s has no certificates)", name,
			  url);
		return -1;
	}
	if (lc->allowed_origins && proto) {
		log_error("listener %s: allowed_origins needs a ws:// or wss:// url", name);
		return -1;
	}
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
	l->max_connections = lc->max_connections;
	l->allow_anonymous = config_allow_anonymous(b->cfg, lc);
	l->cert_identity = lc->cert_identity;
	l->allowed_origins = lc->allowed_origins ? lc->allowed_origins : b->cfg->ws_allowed_origins;
	if (scheme.tls && !(l->tls = listener_tls_new(b, &lc->tls, lc->name))) {
		free(l->name);
		free(l);
		return -1;
	}
	l->evl = evconnlistener_new_bind(b->base, accept_cb, l,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
					 1024, (struct sockaddr *)&ss, (int)sslen);
	if (l->evl && !(l->resume_ev = listener_resume_new(b->base, l->evl))) {
		evconnlistener_free(l->evl);
		l->evl = NULL;
		errno = ENOMEM;
	}
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
		log_info("listening %s [%s]:%d", scheme.name, host, port);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&bound;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		log_info("listening %s %s:%d", scheme.name, host, port);
	}
	advertised_url(l, scheme.name, host, port);
	l->next = b->listeners;
	b->listeners = l;
	return 0;
}

void listener_close_all(struct broker *b)
{
	while (b->listeners) {
		struct listener *l = b->listeners;
		b->listeners = l->next;
		event_free(l->resume_ev);
		evconnlistener_free(l->evl);
		conn_forget_count(b, &l->nconns);
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

void listener_each(struct broker *b,
		   void (*fn)(const char *name, const char *url, unsigned long conns,
			      size_t max_connections, void *arg),
		   void *arg)
{
	for (struct listener *l = b->listeners; l; l = l->next)
		fn(l->name, l->url, l->nconns, l->max_connections, arg);
}
