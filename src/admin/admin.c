#include "config.h"
#include "admin/admin.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "admin/internal.h"
#include "broker.h"
#include "log.h"
#include "net/listener.h"
#include "net/tls.h"
#include "net/url.h"
#include "protocols/ws/origin.h"
#include "util/audit.h"

/* Path segments a request may have: /api/v1/queues/NAME/messages is 5. */
#define MAX_SEGMENTS 8

bool admin_ready(const struct broker *b, const char **why)
{
	if (b->stopping)
		*why = "stopping";
	else if (!b->active)
		*why = "standby: this node is not the active one";
	else if (!b->store)
		*why = "the store is not open";
	else if (b->listen_deferred || !b->listeners)
		*why = "client listeners not bound";
	else
		return true;
	return false;
}

void admin_reply_json(struct evhttp_request *req, int code, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
	json_decref(j);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (!text) {
		evbuffer_add_printf(out, "{\"error\":\"out of memory\"}\n");
		evhttp_send_reply(req, 500, "Internal Server Error", NULL);
		return;
	}
	evbuffer_add(out, text, strlen(text));
	evbuffer_add(out, "\n", 1);
	free(text);
	evhttp_send_reply(req, code, NULL, NULL);
}

void admin_reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* The text may quote a name from the URL: json_string wants UTF-8. */
	json_t *msg = json_string(text);
	admin_reply_json(req, code, json_pack("{s:o}", "error", msg ? msg : json_string("?")));
}

static bool loopback(const struct sockaddr *sa)
{
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family != AF_INET6)
		return false;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* A browser that holds an operator's login (the console's HTTP Basic)
 * sends it with whatever another site's page makes it post here, and a
 * form's POST needs no CORS consent: a change must come from a page this
 * listener served, or from no browser at all (no Origin header). */
static bool same_origin(const struct admin *a, struct evhttp_request *req)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *origin = evhttp_find_header(in, "Origin");
	const char *host = evhttp_find_header(in, "Host");
	if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD || !origin)
		return true;
	const char *scheme = a->tls ? "https://" : "http://";
	return host && !strncasecmp(origin, scheme, strlen(scheme)) && ws_same_origin(origin, host);
}

/* Without logins, a page whose name an attacker's DNS points at 127.0.0.1
 * after it loaded (DNS rebinding) would be same-origin with the API and
 * read or change anything: such requests name the attacker's host in
 * Host, so only an IP address or localhost is taken there. */
static bool host_is_local_name(struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	if (!h)
		return true; /* HTTP/1.0, curl --http1.0: no page of a browser */
	char name[256];
	size_t n;
	const char *host = ws_authority_host(h, &n);
	if (!host || n == 0 || n >= sizeof(name))
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	unsigned char addr[16];
	return !strcasecmp(name, "localhost") || inet_pton(AF_INET, name, addr) == 1 ||
	       inet_pton(AF_INET6, name, addr) == 1;
}

/* The one place that decides whether a request may be served: clients on
 * this machine (loopback, 127.0.0.0/8 and ::1); others over https:// with
 * users (each request then logs in, access.c), or with allow_remote; and
 * no change asked by another site's page. 0, or the HTTP status to refuse
 * with and *why. */
static int admin_allowed(struct admin *a, struct evhttp_request *req, bool *local,
			 const char **why)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	*local = evcon && loopback(evhttp_connection_get_addr(evcon));
	if (!a->b->cfg->admin.allow_remote && !*local &&
	    !(a->tls && a->b->cfg->auth.users_file)) {
		*why = "the admin API serves loopback clients only (allow_remote = false)";
		return 403;
	}
	if (!same_origin(a, req)) {
		*why = "a change asked by another site's page (its Origin is not this listener)";
		return 403;
	}
	if (!a->b->cfg->auth.users_file && !a->b->cfg->admin.allow_remote &&
	    !host_is_local_name(req)) {
		*why = "without users the admin API answers only requests for localhost or an IP "
		       "address (Host)";
		return 403;
	}
	return 0;
}

bool admin_only_get(struct evhttp_request *req)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
	admin_reply_error(req, 405, "method not allowed");
	return false;
}

static void health(struct admin *a, struct evhttp_request *req, bool ready)
{
	const char *why = NULL;
	if (!admin_only_get(req))
		return;
	if (!ready || admin_ready(a->b, &why)) {
		admin_reply_json(req, 200, json_pack("{s:s}", "status", ready ? "ready" : "ok"));
		return;
	}
	admin_reply_json(req, 503, json_pack("{s:s,s:s}", "status", "not ready", "reason", why));
}

static const char *method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "?";
}

/* Splits the raw path at '/' and percent-decodes each segment; -1 for an
 * empty segment inside or too many segments, -2 for a NUL byte. */
static int split_path(const char *path, char **seg, size_t *nseg)
{
	*nseg = 0;
	const char *p = path;
	while (*p == '/')
		p++;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (!len || *nseg == MAX_SEGMENTS)
			return -1;
		char raw[1024];
		if (len >= sizeof(raw))
			return -1;
		memcpy(raw, p, len);
		raw[len] = '\0';
		size_t dlen = 0;
		char *dec = evhttp_uridecode(raw, 0, &dlen);
		if (!dec)
			return -1;
		seg[(*nseg)++] = dec;
		if (strlen(dec) != dlen)
			return -2;
		p += len;
		if (*p == '/' && p[1] == '\0')
			break; /* a trailing slash */
		if (*p == '/')
			p++;
	}
	return 0;
}

static void serve(struct admin *a, struct evhttp_request *req, const struct audit_actor *who);
static void route(struct admin *a, struct evhttp_request *req, const struct audit_actor *who,
		  const char *path, char **seg, size_t nseg);

static void request_cb(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const char *why = NULL;
	bool local;
	int refuse = admin_allowed(a, req, &local, &why);
	if (refuse) {
		admin_reply_error(req, refuse, "%s", why);
		return;
	}
	admin_access(a, req, local, serve);
}

static void serve(struct admin *a, struct evhttp_request *req, const struct audit_actor *who)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const char *user = who->principal;
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD)
		log_info("admin: %s%s%s %s %s", who->remote, user ? " user " : "", user ? user : "",
			 method_name(method), evhttp_request_get_uri(req));
	char *seg[MAX_SEGMENTS];
	size_t nseg = 0;
	int split = path ? split_path(path, seg, &nseg) : -1;
	if (split < 0)
		admin_reply_error(req, split == -2 ? 400 : 404, "%s",
				  split == -2 ? "a NUL byte in the path" : "no such resource");
	else if (admin_permitted(a, req, who, seg, nseg))
		route(a, req, who, path, seg, nseg);
	for (size_t i = 0; i < nseg; i++)
		free(seg[i]);
}

static void route(struct admin *a, struct evhttp_request *req, const struct audit_actor *who,
		  const char *path, char **seg, size_t nseg)
{
	if (nseg == 1 && !strcmp(seg[0], "healthz")) {
		health(a, req, false);
	} else if (nseg == 1 && !strcmp(seg[0], "readyz")) {
		health(a, req, true);
	} else if (nseg == 1 && !strcmp(seg[0], "metrics")) {
		if (admin_only_get(req))
			admin_metrics(a, req);
	} else if (nseg >= 2 && !strcmp(seg[0], "api") && !strcmp(seg[1], "v1")) {
		admin_api(a, req, who, seg + 2, nseg - 2);
	} else if (nseg == 0 || !strcmp(seg[0], "console")) {
		admin_console(req, path, seg, nseg);
	} else {
		admin_reply_error(req, 404, "no such resource");
	}
}

/* evhttp asks for each accepted connection's bufferevent: over https://
 * an OpenSSL one that does the server handshake. */
static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	struct admin *a = arg;
	struct ssl_st *ssl = tls_ctx_ssl_new(a->tls);
	if (!ssl)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

void admin_reload_tls(struct admin *a)
{
	char err[512];
	if (!a || !a->tls)
		return;
	if (tls_ctx_reload(a->tls, err, sizeof(err)) < 0)
		log_error("admin: TLS reload failed, keeping the old certificate: %s", err);
	else
		log_info("admin: TLS certificate reloaded");
}

/* The one admin server of the process, for accept_error: libevent hands
 * that callback the evhttp, which says nothing of it. */
static struct admin *the_admin;

/* Without it libevent retries a failing accept at once, forever: out of
 * descriptors the admin listener spun at 85 % CPU and logged 10 MB/s. */
static void accept_error(struct evconnlistener *evl, void *http)
{
	listener_accept_failed(evl, the_admin->accept_resume, "admin", &the_admin->accept_log);
}

int admin_open(struct broker *b)
{
	const struct admin_config *ac = &b->cfg->admin;
	if (!ac->listen)
		return 0;
	struct listen_url u;
	const char *why;
	if (url_parse(ac->listen, &u, &why) < 0) {
		log_error("[admin] listen: bad url '%s': %s", ac->listen, why);
		return -1;
	}
	struct admin *a = calloc(1, sizeof(*a));
	if (!a || !(a->http = evhttp_new(b->base))) {
		free(a);
		log_error("admin: out of memory");
		return -1;
	}
	a->b = b;
	b->admin = a;
	evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
	evhttp_set_max_headers_size(a->http, 16 * 1024);
	evhttp_set_timeout(a->http, 30);
	/* Every method reaches request_cb, which answers 405 itself. */
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(a->http, request_cb, a);
	if (!strcmp(u.scheme, "https")) {
		if (!(a->tls = listener_tls_new(b, &ac->tls, "admin")))
			return -1;
		evhttp_set_bevcb(a->http, tls_bev, a);
	}
	const char *host = strcmp(u.host, "*") ? u.host : "0.0.0.0";
	a->sock = evhttp_bind_socket_with_handle(a->http, host, (ev_uint16_t)u.port);
	if (!a->sock) {
		log_error("admin: cannot listen on %s", ac->listen);
		return -1;
	}
	struct evconnlistener *evl = evhttp_bound_socket_get_listener(a->sock);
	if (!(a->accept_resume = listener_resume_new(b->base, evl))) {
		log_error("admin: out of memory");
		return -1;
	}
	the_admin = a;
	evconnlistener_set_error_cb(evl, accept_error);
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	char name[INET6_ADDRSTRLEN] = "?";
	getsockname(evhttp_bound_socket_get_fd(a->sock), (struct sockaddr *)&bound, &blen);
	if (bound.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&bound;
		inet_ntop(AF_INET6, &in6->sin6_addr, name, sizeof(name));
		log_info("listening admin [%s]:%d", name, ntohs(in6->sin6_port));
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&bound;
		inet_ntop(AF_INET, &in->sin_addr, name, sizeof(name));
		log_info("listening admin %s:%d", name, ntohs(in->sin_port));
	}
	if (ac->allow_remote && !b->cfg->auth.users_file)
		log_warn("admin: allow_remote = true: the admin API serves any client that reaches "
			 "%s, without authentication", ac->listen);
	return 0;
}

void admin_free(struct admin *a)
{
	if (!a)
		return;
	admin_access_free(a);
	admin_moves_free(a);
	if (a->accept_resume)
		event_free(a->accept_resume);
	if (the_admin == a)
		the_admin = NULL;
	if (a->http)
		evhttp_free(a->http);
	tls_ctx_free(a->tls);
	free(a);
}
