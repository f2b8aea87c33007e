#include "config.h"

#include <event2/http.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/internal.h"
#include "auth/acl.h"
#include "auth/auth.h"
#include "broker.h"
#include "log.h"
#include "util/audit.h"

/* A request whose password the authenticator checks; a->waits holds it
 * until the answer (admin_access_free cancels what is left). */
struct admin_wait {
	struct admin_wait *next, **prevp;
	struct admin *a;
	struct evhttp_request *req;
	struct auth_request *ar;
	admin_serve_fn serve;
	char user[132];
	char peer[64];
};

static void refuse_401(struct evhttp_request *req, const char *why)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
			  "Basic realm=\"wharf\", charset=\"UTF-8\"");
	admin_reply_error(req, 401, "%s", why);
}

/* Who asks with HTTP Basic credentials for `user` (NULL: unreadable). */
static struct audit_actor basic_actor(const char *user, const char *peer)
{
	return (struct audit_actor){ .principal = user, .mechanism = "basic", .protocol = "admin",
				     .listener = "admin", .remote = peer };
}

static void login_failed(const struct audit_actor *who, const char *reason)
{
	audit_event(&(struct audit_record){ .event = "connect_failed", .actor = who,
					    .reason = reason });
}

static void answered(void *arg, enum auth_result r, const char *reason)
{
	struct admin_wait *w = arg;
	*w->prevp = w->next;
	if (w->next)
		w->next->prevp = w->prevp;
	struct audit_actor who = basic_actor(w->user, w->peer);
	/* evhttp keeps a request whose client went away until it is
	 * answered, and frees it then. */
	if (r == AUTH_OK) {
		w->serve(w->a, w->req, &who);
	} else {
		login_failed(&who, reason);
		refuse_401(w->req, "authentication failed");
	}
	free(w);
}

/* "Basic BASE64(user:password)" into user (cap bytes) and a malloc'd
 * password of *len bytes; NULL when malformed. */
static unsigned char *basic_credentials(const char *header, char *user, size_t cap, size_t *len)
{
	if (strncasecmp(header, "Basic ", 6))
		return NULL;
	const char *b64 = header + 6;
	while (*b64 == ' ')
		b64++;
	size_t n = strlen(b64);
	if (!n || n % 4 || n > 4096)
		return NULL;
	unsigned char *raw = malloc(n / 4 * 3 + 1);
	int got = raw ? EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n) : -1;
	if (got < 0) {
		free(raw);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding's zero bytes too. */
	got -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
	unsigned char *colon = memchr(raw, ':', (size_t)got);
	size_t ulen = colon ? (size_t)(colon - raw) : 0;
	if (!colon || !ulen || ulen >= cap || memchr(raw, '\0', ulen)) {
		OPENSSL_cleanse(raw, (size_t)got);
		free(raw);
		return NULL;
	}
	memcpy(user, raw, ulen);
	user[ulen] = '\0';
	*len = (size_t)got - ulen - 1;
	memmove(raw, colon + 1, *len);
	return raw;
}

void admin_access(struct admin *a, struct evhttp_request *req, bool loopback,
		  admin_serve_fn serve)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	char peer[64];
	admin_peer(req, peer, sizeof(peer));
	struct audit_actor who = { .protocol = "admin", .listener = "admin", .remote = peer };
	/* Without users nothing is checked; health probes never are. */
	if (!auth_enabled(a->b->auth) || (path && (!strcmp(path, "/healthz") ||
						   !strcmp(path, "/readyz")))) {
		serve(a, req, &who);
		return;
	}
	const char *header = evhttp_find_header(evhttp_request_get_input_headers(req),
						"Authorization");
	if (!header) {
		who.principal = who.mechanism = "anonymous";
		if (a->b->cfg->admin.allow_anonymous && loopback)
			serve(a, req, &who);
		else
			refuse_401(req, "authentication required");
		return;
	}
	struct admin_wait *w = calloc(1, sizeof(*w));
	size_t len = 0;
	unsigned char *pw = w ? basic_credentials(header, w->user, sizeof(w->user), &len) : NULL;
	if (!pw) {
		free(w);
		who = basic_actor(NULL, peer);
		login_failed(&who, "malformed Authorization header");
		refuse_401(req, "malformed Authorization header (HTTP Basic expected)");
		return;
	}
	snprintf(w->peer, sizeof(w->peer), "%s", peer);
	w->a = a;
	w->req = req;
	w->serve = serve;
	w->ar = auth_request(a->b->auth, "admin", peer, w->user, (const char *)pw, len, false,
			     answered, w);
	OPENSSL_cleanse(pw, len);
	free(pw);
	if (!w->ar) {
		free(w);
		admin_reply_error(req, 500, "out of memory");
		return;
	}
	w->next = a->waits;
	w->prevp = &a->waits;
	if (a->waits)
		a->waits->prevp = &w->next;
	a->waits = w;
}

void admin_access_free(struct admin *a)
{
	struct admin_wait *w;
	while ((w = a->waits)) {
		a->waits = w->next;
		auth_cancel(w->ar);
		free(w);
	}
}

static bool allowed(struct admin *a, const char *user, enum acl_action action,
		    enum dest_kind kind, const char *name, bool pattern)
{
	return acl_check(auth_acl(a->b->auth), auth_users(a->b->auth), user, NULL, action, kind,
			 name, pattern);
}

/* A client can ask for 403s as fast as it likes: at most one audit line
 * this often, counting the denials left out before it. */
#define DENIAL_AUDIT_MS 1000

/* A 403 audited: who was denied action on kind:name. */
static void denied(struct admin *a, const struct audit_actor *who, enum acl_action action,
		   const char *kind, const char *name, const char *reason)
{
	unsigned long held;
	if (!audit_on() || !log_limit_pass(&a->denials, DENIAL_AUDIT_MS, &held))
		return;
	audit_event(&(struct audit_record){
		.event = "acl_denied", .actor = who, .destination = name, .kind = kind,
		.action = acl_action_name(action), .reason = reason,
		.detail = held ? json_pack("{s:I}", "suppressed", (json_int_t)held) : NULL });
}

bool admin_permitted(struct admin *a, struct evhttp_request *req, const struct audit_actor *who,
		     char **seg, size_t nseg)
{
	const char *user = who->principal;
	if (!user || !nseg || (strcmp(seg[0], "api") && strcmp(seg[0], "metrics")))
		return true;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	bool read = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;
	bool dest = nseg >= 4 && !strcmp(seg[0], "api") &&
		    (!strcmp(seg[2], "queues") || !strcmp(seg[2], "topics"));
	if (dest) {
		/* One destination: reading it is browsing, anything else
		 * administering it. */
		enum dest_kind kind = seg[2][0] == 'q' ? DEST_QUEUE : DEST_TOPIC;
		enum acl_action action = read ? ACL_BROWSE : ACL_ADMIN;
		if (allowed(a, user, action, kind, seg[3], false))
			return true;
		log_info("admin: user %s denied %s on %s %s", user, acl_action_name(action),
			 kind == DEST_QUEUE ? "queue" : "topic", seg[3]);
		denied(a, who, action, dest_kind_name(kind), seg[3], "no rule allows it");
		admin_reply_error(req, 403, "access refused: %s on %s %s", acl_action_name(action),
				  kind == DEST_QUEUE ? "queue" : "topic", seg[3]);
		return false;
	}
	/* The broker as a whole (lists, connections, metrics): admin over
	 * every destination, a rule whose pattern is `>`. */
	if (allowed(a, user, ACL_ADMIN, DEST_QUEUE, ">", true) &&
	    allowed(a, user, ACL_ADMIN, DEST_TOPIC, ">", true))
		return true;
	log_info("admin: user %s denied admin on the broker (%s)", user,
		 evhttp_request_get_uri(req));
	denied(a, who, ACL_ADMIN, NULL, ">", "admin on every destination (>) needed");
	admin_reply_error(req, 403, "access refused: admin on every destination (>) needed");
	return false;
}

void admin_peer(struct evhttp_request *req, char *buf, size_t len)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *host = NULL;
	ev_uint16_t port = 0;
	if (evcon)
		evhttp_connection_get_peer(evcon, &host, &port);
	snprintf(buf, len, "%s:%u", host ? host : "?", port);
}

void admin_audit(const struct audit_actor *who, const char *event, const char *queue,
		 json_t *detail)
{
	audit_event(&(struct audit_record){ .event = event, .actor = who, .destination = queue,
					    .kind = queue ? "queue" : NULL, .detail = detail });
}
