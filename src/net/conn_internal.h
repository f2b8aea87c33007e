/* The inside of struct conn, for net/conn.c and the transports under it
 * (net/xprt.h: net/stream.c, net/ws.c). Adapters use net/conn.h only. */
#ifndef WHARF_NET_CONN_INTERNAL_H
#define WHARF_NET_CONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "auth/acl.h"
#include "net/conn.h"

struct bufferevent;
struct event;
struct xprt_ops;

struct conn {
	TAILQ_ENTRY(conn) link;
	struct broker *b;
	unsigned long id;
	struct bufferevent *bev;
	const struct proto_ops *proto;
	void *session;
	struct event *close_ev; /* deferred free, and the flush deadline */
	struct event *flush_ev;  /* plain TCP: writes the output at the end of the loop's pass (net/stream.c) */
	struct event *read_ev;   /* plain TCP: reads the socket into the bufferevent's input (net/stream.c) */
	struct event *handshake_ev; /* handshake_timeout, from accept */
	struct event *frame_ev;     /* frame_timeout, while a frame is unfinished */
	bool input_paused;
	bool flush_queued;       /* flush_ev is active (net/stream.c) */
	size_t max_output;
	unsigned long *listener_count; /* its listener's open connections, or NULL */
	bool closing;
	bool flushing;
	bool lingering;   /* closed with a last word: draining input a while */
	bool tls;                /* c->bev is an OpenSSL one (net/stream.c) */
	const struct xprt_ops *xprt; /* TCP/TLS, or WebSocket on top of it */
	void *xprt_state;        /* the transport's own; freed by xprt->free */
	char peer[64];
	char *listener;          /* its listener's name (conn_set_listener), or NULL */
	const char *mechanism;   /* how it logged in (util/audit.h); NULL: not yet */
	char *principal;
	struct conn_counts counts; /* net/conn.h */
	long long since_ms;        /* accepted, wall clock */
	bool allow_anonymous;             /* the listener's (conn_authenticate) */
	struct auth_request *auth_req;    /* pending conn_authenticate, or NULL */
	conn_auth_fn auth_done;
	char *auth_user;                  /* what it asked about, NULL: anonymous */
	char *client_id;                  /* conn_set_client_id, or NULL */
	int cert_kind;                    /* the listener's cert_identity (auth/certid.h) */
	bool cert_seen;                   /* a verified client certificate, under cert_kind */
	char *cert_user;                  /* the user it names, NULL: none */
	struct acl_who who;               /* conn_acl_who */
	char host[64];                    /* peer without port: counted in b->limits */
	char *login_user;                 /* counted in b->limits per user, or NULL */
	struct event *refuse_ev;          /* a limit's refusal, answered from the loop */
	char refusal[96];                 /* conn_refusal */
	bool ack_lazy;                    /* read at the end of busy passes (net/ackread.c) */
	unsigned ack_passes;              /* busy passes since a lazy read (net/ackread.c) */
	int64_t ack_read_ms;              /* when it was last read lazily (net/ackread.c) */
	bool ack_wanted;                  /* lazy, read every pass until it gives input */
	size_t last_read;                 /* bytes of its socket's last read (net/ackread.c) */
};

#endif
