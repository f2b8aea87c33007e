/* Listening sockets: one per configured URL, each bound to a protocol. */
#ifndef WHARF_NET_LISTENER_H
#define WHARF_NET_LISTENER_H

struct broker;
struct listener;
struct proto_ops;

/* 0 if `url` is well formed and names a protocol we serve; else -1 and a
 * reason in *why (static). */
int listener_url_check(const char *url, const char **why);

/* Binds `url` and logs "listening PROTO HOST:PORT" with the real port.
 * Prepends the listener to b->listeners. -1 with a logged reason. */
int listener_open(struct broker *b, const char *name, const char *url);
/* Stops accepting on every listener of b and frees them. */
void listener_close_all(struct broker *b);

#endif
