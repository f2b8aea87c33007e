/* Listening sockets: one per configured URL, each bound to a protocol. */
#ifndef WHARF_NET_LISTENER_H
#define WHARF_NET_LISTENER_H

#include <stddef.h>

struct broker;
struct listener;
struct proto_ops;

/* 0 if `url` is well formed and names a protocol we serve; else -1 and a
 * reason in *why (static). */
int listener_url_check(const char *url, const char **why);
/* Every scheme a listener URL may have, ", "-separated into buf (cut at
 * len): the protocols' own and the WebSocket ones. */
void listener_schemes_text(char *buf, size_t len);

struct listener_config;

/* Binds the listener's url and logs "listening SCHEME HOST:PORT" with the
 * real port (SCHEME as in the url: stomp, stomps, mqtt, mqtts). Prepends
 * the listener to b->listeners. -1 with a logged reason. */
int listener_open(struct broker *b, const struct listener_config *lc);
/* Every bound listener's URL, space-separated, in config order, with its
 * real port; a wildcard address (0.0.0.0, ::) is replaced by the host's
 * name (gethostname). -1 if it does not fit in len. */
int listener_advertise(struct broker *b, char *buf, size_t len);
/* A server TLS context from t, what t leaves unset taken from the
 * top-level tls_* keys; NULL with the reason logged under `name`. */
struct tls_config;
struct tls_ctx *listener_tls_new(struct broker *b, const struct tls_config *t, const char *name);
/* Reloads every TLS listener's certificate and key (SIGHUP); connections
 * already open keep theirs. */
void listener_reload_tls(struct broker *b);
/* Calls fn for each bound listener of b, newest first: its name, its URL
 * with the real port (as listener_advertise, the wildcard address kept
 * as the host's name), its open connections and its max_connections (0:
 * none of its own). For the admin API. */
void listener_each(struct broker *b,
		   void (*fn)(const char *name, const char *url, unsigned long conns,
			      size_t max_connections, void *arg),
		   void *arg);
struct event;
struct event_base;
struct evconnlistener;
struct log_limit;
/* A timer that re-enables evl, for listener_accept_failed; the caller
 * frees it (event_free) before evl. NULL on out of memory. */
struct event *listener_resume_new(struct event_base *base, struct evconnlistener *evl);
/* Accepting on evl failed (errno says why: EMFILE and friends): accepting
 * pauses, and resume_ev (listener_resume_new's) is armed for a while
 * later; a line says so, at most every 10 s (ll). */
void listener_accept_failed(struct evconnlistener *evl, struct event *resume_ev,
			    const char *name, struct log_limit *ll);
/* Stops accepting on every listener of b and frees them. */
void listener_close_all(struct broker *b);

#endif
