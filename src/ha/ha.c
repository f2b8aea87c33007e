/* The pair's replication link (ha/ha.h, docs/ha.md "Replication link").
 *
 * One `struct link` per TCP connection on the link, either way: accepted
 * ones start by sending CHALLENGE and wait for HELLO; the standby's own
 * connection to its active waits for CHALLENGE, answers HELLO and waits for
 * WELCOME. Nothing but those frames is read or sent before both sides have
 * proved the secret, and frames stay small (REPL_FRAME_AUTH) until then.
 * After it: an active ships its journal to one standby (ha_active.c,
 * sender.c) and gates confirmations on its ACKs; a standby writes what
 * comes into its mirror (ha_standby.c, mirror.c) and acknowledges once it
 * is on disk; a control client (wharfctl) asks for PROMOTE or STATUS
 * (ha_control.c). This file holds the links themselves: reading frames and
 * handing them to those, heartbeats and timeouts, listening, connecting. */
#include "config.h"
#include "ha/ha.h"
#include "ha/failover.h"
#include "ha/ha_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "broker.h"
#include "ha/auth.h"
#include "ha/frame.h"
#include "ha/link_tls.h"
#include "ha/mirror.h"
#include "ha/sender.h"
#include "log.h"
#include "net/listener.h"
#include "net/tls.h"
#include "net/url.h"
#include "store/journal.h"
#include "store/record.h"
#include "store/store.h"
#include "util/clock.h"

/* ---- links ------------------------------------------------------------ */

void hlink_send(struct link *l, const void *p, size_t n)
{
	bufferevent_write(l->bev, p, n);
	l->last_tx_ms = ha_now_ms();
}

void hlink_send_u64(struct link *l, uint8_t type, uint64_t v)
{
	uint8_t f[REPL_HEAD + 8];
	hlink_send(l, f, repl_u64s_encode(f, sizeof(f), type, &v, 1));
}

void hlink_send_text(struct link *l, const char *text)
{
	uint8_t f[REPL_HEAD + 2 + REPL_STR_MAX];
	size_t n = strlen(text);
	hlink_send(l, f, repl_text_encode(f, sizeof(f), text, n > REPL_STR_MAX ? REPL_STR_MAX : n));
}

void ha_gate_release(struct ha *ha)
{
	if (ha->j && !(ha->standby && ha->in_sync))
		journal_gate(ha->j, false);
}

/* The standby is gone: the gate opens and held confirmations go out, once
 * the arbiter (if any) no longer names it as the one that may take over. */
static void detach_standby(struct ha *ha)
{
	struct link *l = ha->standby;
	ha->standby = NULL;
	sender_free(l->sender);
	l->sender = NULL;
	ha->in_sync = false;
	if (failover_standby_gone(ha->failover))
		ha_gate_release(ha);
	ha->unacked_since_ms = 0;
}

void hlink_close(struct link *l)
{
	struct ha *ha = l->ha;
	if (l == ha->handover_ctl)
		ha->handover_ctl = NULL;
	if (l == ha->standby)
		detach_standby(ha);
	if (l == ha->upstream) {
		if (l->state == L_UPSTREAM)
			ha->drops++;
		ha->upstream = NULL;
		ha->in_sync = false;
		ha->next_connect_ms = ha_now_ms() + RECONNECT_MS;
	}
	LIST_REMOVE(l, le);
	bufferevent_free(l->bev);
	free(l);
}

/* Closes once what is queued has gone out (an answer to wharfctl). */
void hlink_close_flushed(struct link *l)
{
	l->state = L_CLOSING;
	bufferevent_disable(l->bev, EV_READ);
	if (!evbuffer_get_length(bufferevent_get_output(l->bev)))
		hlink_close(l);
}

void ha_drop_standby(struct ha *ha, const char *why)
{
	if (ha->handover >= HANDOVER_RESIGNED)
		log_info("replication: standby %s left (%s): it takes over", ha->standby->peer_id, why);
	else
		log_warn("replication: standby %s dropped (%s): running alone, degraded",
			 ha->standby->peer_id, why);
	ha->degraded = true;
	ha->drops++;
	hlink_close(ha->standby);
}

/* A wrong proof: warned, naming the remote address, at most once per
 * REFUSAL_LOG_MS (a misconfigured standby retries every second). */
void ha_refuse_bad_secret(struct link *l)
{
	struct ha *ha = l->ha;
	int64_t now = ha_now_ms();
	ha->refusals++;
	if (ha->last_refusal_log_ms && now - ha->last_refusal_log_ms < REFUSAL_LOG_MS) {
		ha->refusals_quiet++;
		return;
	}
	if (ha->refusals_quiet)
		log_warn("replication: peer %s refused: bad secret (%u more refusals since the last "
			 "warning)", l->addr, ha->refusals_quiet);
	else
		log_warn("replication: peer %s refused: bad secret", l->addr);
	ha->last_refusal_log_ms = now;
	ha->refusals_quiet = 0;
}

static bool authed(const struct link *l)
{
	return l->state == L_STANDBY || l->state == L_UPSTREAM || l->state == L_CONTROL;
}

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

static struct link *link_new(struct ha *ha, struct bufferevent *bev, enum link_state st,
			     const char *addr)
{
	struct link *l = calloc(1, sizeof(*l));
	if (!l) {
		bufferevent_free(bev);
		return NULL;
	}
	l->ha = ha;
	l->bev = bev;
	l->state = st;
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
	snprintf(l->peer_id, sizeof(l->peer_id), "%s", addr);
	l->opened_ms = l->last_rx_ms = l->last_tx_ms = ha_now_ms();
	LIST_INSERT_HEAD(&ha->links, l, le);
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, l);
	/* The sender goes on when the output drains to this. */
	bufferevent_setwatermark(bev, EV_WRITE, REPL_HIGH_WATER / 8, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return l;
}

static void nodelay(evutil_socket_t fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void ha_str_copy(char *out, size_t n, const struct repl_str *s)
{
	size_t k = s->len < n - 1 ? s->len : n - 1;
	memcpy(out, s->p, k);
	out[k] = '\0';
}

/* ---- frames ----------------------------------------------------------- */

/* 0: go on; 1: the link is closing (stop reading); -1: a bad frame; -2:
 * refused or failed (logged). The caller closes the link on < 0. */
static int handle(struct link *l, const struct repl_frame *f)
{
	if (f->type == REPL_HEARTBEAT && authed(l)) {
		uint64_t last;
		if (repl_u64s_decode(f, &last, 1) < 0)
			return -1;
		if (l->state == L_UPSTREAM)
			l->ha->peer_last = last;
		return 0;
	}
	switch (l->state) {
	case L_WAIT_HELLO:
		return f->type == REPL_HELLO ? ha_on_hello(l, f) : -1;
	case L_WAIT_CHALLENGE:
		return f->type == REPL_CHALLENGE ? ha_on_challenge(l, f) : -1;
	case L_WAIT_WELCOME:
		return f->type == REPL_WELCOME ? ha_on_welcome(l, f) : -1;
	case L_STANDBY:
		return f->type == REPL_ACK ? ha_on_ack(l, f) : -1;
	case L_UPSTREAM:
		return ha_on_mirror_frame(l, f);
	case L_CONTROL:
		return ha_on_control(l, f);
	default:
		return -1;
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	l->last_rx_ms = ha_now_ms();
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		if (avail < REPL_HEAD)
			break;
		size_t max = authed(l) ? REPL_FRAME_MAX : REPL_FRAME_AUTH;
		struct repl_frame f;
		size_t used;
		uint8_t *p = evbuffer_pullup(in, REPL_HEAD);
		int r = repl_frame_parse(p, REPL_HEAD, max, &f, &used);
		if (r == 0) {
			size_t need = 4 + (size_t)jget32(p);
			if (avail < need)
				break;
			p = evbuffer_pullup(in, (ssize_t)need);
			r = p ? repl_frame_parse(p, need, max, &f, &used) : -1;
		}
		int rc = r == 1 ? handle(l, &f) : -1;
		if (rc == -1)
			log_warn("replication: peer %s sent a malformed or unexpected frame (type %u)",
				 l->addr, r == 1 ? f.type : 0);
		if (rc < 0) {
			hlink_close(l);
			return;
		}
		if (rc == 1)
			return;
		evbuffer_drain(in, used);
	}
	if (l->state == L_UPSTREAM && ha_ack_burst(l) < 0)
		hlink_close(l);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;
	if (l->state == L_CLOSING) {
		if (!evbuffer_get_length(bufferevent_get_output(bev)))
			hlink_close(l);
		return;
	}
	if (l->sender)
		sender_kick(l->sender);
}

/* Whether a failed try to reach the peer is to be logged: once every
 * CONNECT_LOG_MS, as the standby tries again every second. */
static bool connect_log_due(struct ha *ha)
{
	int64_t now = ha_now_ms();
	if (ha->last_connect_log_ms && now - ha->last_connect_log_ms < CONNECT_LOG_MS)
		return false;
	ha->last_connect_log_ms = now;
	return true;
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct link *l = arg;
	struct ha *ha = l->ha;
	if (what & BEV_EVENT_CONNECTED) {
		/* A TLS bufferevent says so on accepted links too, once the
		 * handshake is done: nothing to do there. */
		if (l->state != L_CONNECTING)
			return;
		nodelay(bufferevent_getfd(bev));
		l->state = L_WAIT_CHALLENGE;
		l->last_rx_ms = ha_now_ms();
		log_debug("replication: connected to peer %s", l->addr);
		return;
	}
	char tls_err[256] = "";
	unsigned long e = ha->tls ? bufferevent_get_openssl_error(bev) : 0;
	if (e)
		ERR_error_string_n(e, tls_err, sizeof(tls_err));
	int dns_err = bufferevent_socket_get_dns_error(bev);
	if (l->state == L_CONNECTING) {
		if (connect_log_due(ha))
			log_warn("replication: cannot reach peer %s: %s (trying every second)", l->addr,
				 e	   ? tls_err
				 : dns_err ? evutil_gai_strerror(dns_err)
					   : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	} else if (l->state == L_WAIT_CHALLENGE || l->state == L_WAIT_WELCOME) {
		if (connect_log_due(ha))
			log_warn("replication: peer %s closed the link before welcoming this node "
				 "(a wrong secret, or not active?); trying every second", l->addr);
	} else if (l->state == L_WAIT_HELLO && e) {
		log_warn("replication: peer %s refused: TLS: %s", l->addr, tls_err);
		ha->refusals++;
	} else if (l == ha->standby) {
		ha_drop_standby(ha, "connection closed");
		return;
	} else if (l->state == L_UPSTREAM) {
		log_warn("replication: link to active %s closed; reconnecting", l->peer_id);
	}
	hlink_close(l);
}

/* ---- listening and connecting ---------------------------------------- */

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int slen,
		      void *arg)
{
	struct ha *ha = arg;
	char addr[80];
	url_format_addr(sa, addr, sizeof(addr));
	nodelay(fd);
	struct bufferevent *bev;
	if (ha->tls) {
		SSL *ssl = link_tls_server(ha->tls);
		bev = ssl ? bufferevent_openssl_socket_new(ha->b->base, fd, ssl,
							   BUFFEREVENT_SSL_ACCEPTING,
							   BEV_OPT_CLOSE_ON_FREE)
			  : NULL;
		if (ssl && !bev)
			SSL_free(ssl);
	} else {
		bev = bufferevent_socket_new(ha->b->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	struct link *l = bev ? link_new(ha, bev, L_WAIT_HELLO, addr) : NULL;
	if (!l) {
		if (!bev)
			evutil_closesocket(fd);
		return;
	}
	struct repl_challenge c = { .node_id = { ha->cfg->node_id, strlen(ha->cfg->node_id) } };
	uint8_t buf[REPL_FRAME_AUTH];
	size_t n;
	if (repl_nonce(l->nonce_a) < 0 || (memcpy(c.nonce, l->nonce_a, REPL_NONCE),
					   !(n = repl_challenge_encode(buf, sizeof(buf), &c)))) {
		hlink_close(l);
		return;
	}
	hlink_send(l, buf, n);
}

/* HOST and PORT of the listen URL, resolved for bind (blocking: at
 * start-up). */
static struct addrinfo *resolve_listen(const char *url)
{
	struct listen_url u;
	const char *why;
	if (url_parse(url, &u, &why) < 0)
		return NULL;
	char port[16];
	snprintf(port, sizeof(port), "%d", u.port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	if (getaddrinfo(u.host, port, &hints, &res) != 0)
		return NULL;
	return res;
}

static void connect_peer(struct ha *ha)
{
	struct listen_url u;
	const char *why;
	if (url_parse(ha->cfg->peer, &u, &why) < 0) {
		ha->next_connect_ms = ha_now_ms() + RECONNECT_MS;
		return;
	}
	char addr[sizeof(u.host) + 16];
	snprintf(addr, sizeof(addr), strchr(u.host, ':') ? "[%s]:%d" : "%s:%d", u.host, u.port);
	struct bufferevent *bev;
	if (ha->tls) {
		SSL *ssl = link_tls_client(ha->tls, u.host);
		bev = ssl ? bufferevent_openssl_socket_new(ha->b->base, -1, ssl,
							   BUFFEREVENT_SSL_CONNECTING,
							   BEV_OPT_CLOSE_ON_FREE)
			  : NULL;
		if (ssl && !bev)
			SSL_free(ssl);
	} else {
		bev = bufferevent_socket_new(ha->b->base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	struct link *l = bev ? link_new(ha, bev, L_CONNECTING, addr) : NULL;
	if (l) {
		ha->upstream = l;
		/* A name is looked up by evdns, never on the loop, which also
		 * campaigns, redirects clients and answers wharfctl; a lookup
		 * that fails or outlasts [ha] timeout ends this try as a connect
		 * would. */
		if (bufferevent_socket_connect_hostname(bev, ha->dns, AF_UNSPEC, u.host, u.port) < 0)
			hlink_close(l); /* sets the next try */
	}
	if (!l)
		ha->next_connect_ms = ha_now_ms() + RECONNECT_MS;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ha *ha = arg;
	int64_t now = ha_now_ms();
	unsigned timeout = ha->cfg->timeout_ms, beat = timeout / 3 ? timeout / 3 : 1;
	struct link *l = LIST_FIRST(&ha->links), *next;
	for (; l; l = next) {
		next = LIST_NEXT(l, le);
		if (l == ha->handover_ctl)
			continue; /* wharfctl waits for a switch-over's answer */
		if (l->state == L_CONNECTING) {
			/* Across a partition a connect is never answered, and the
			 * kernel would try again for minutes: the next attempt,
			 * once the network is back, must not wait that long. */
			if (now - l->opened_ms > (int64_t)timeout) {
				if (connect_log_due(ha))
					log_warn("replication: cannot reach peer %s: no answer in %u ms "
						 "(trying every second)", l->addr, timeout);
				hlink_close(l);
			}
			continue;
		}
		char why[64];
		if (now - l->last_rx_ms > (int64_t)timeout) {
			snprintf(why, sizeof(why), "silent for %u ms", timeout);
			if (l == ha->standby) {
				ha_drop_standby(ha, why);
			} else {
				if (l->state == L_UPSTREAM)
					log_warn("replication: active %s %s; reconnecting", l->peer_id, why);
				hlink_close(l);
			}
			continue;
		}
		if ((l->state == L_STANDBY || l->state == L_UPSTREAM) && now - l->last_tx_ms >= beat) {
			uint64_t last = l->state == L_STANDBY ? journal_durable_last(ha->j)
							      : mirror_last_seq(ha->mirror);
			hlink_send_u64(l, REPL_HEARTBEAT, last);
		}
	}
	if (ha->standby && sender_error(ha->standby->sender) < 0)
		ha_drop_standby(ha, "cannot ship the journal");
	if (ha->standby && ha->unacked_since_ms &&
	    now - ha->unacked_since_ms > (int64_t)ha->cfg->sync_timeout_ms) {
		char why[64];
		snprintf(why, sizeof(why), "no ack for %u ms", ha->cfg->sync_timeout_ms);
		ha_drop_standby(ha, why);
	}
	if (ha->mirror && !ha->upstream && now >= ha->next_connect_ms)
		connect_peer(ha);
}

static void accept_error(struct evconnlistener *evl, void *arg)
{
	struct ha *ha = arg;
	listener_accept_failed(evl, ha->accept_resume, "repl", &ha->accept_log);
}

static int listen_link(struct ha *ha)
{
	struct addrinfo *ai = resolve_listen(ha->cfg->listen);
	if (!ai) {
		log_error("replication: cannot resolve listen address %s", ha->cfg->listen);
		return -1;
	}
	ha->lis = evconnlistener_new_bind(ha->b->base, accept_cb, ha,
					  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						  LEV_OPT_CLOSE_ON_EXEC,
					  16, ai->ai_addr, (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	if (!ha->lis) {
		log_error("replication: cannot listen on %s: %s", ha->cfg->listen, strerror(errno));
		return -1;
	}
	if (!(ha->accept_resume = listener_resume_new(ha->b->base, ha->lis))) {
		log_error("out of memory");
		return -1;
	}
	evconnlistener_set_error_cb(ha->lis, accept_error);
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	char addr[80] = "?";
	if (getsockname(evconnlistener_get_fd(ha->lis), (struct sockaddr *)&bound, &blen) == 0)
		url_format_addr((struct sockaddr *)&bound, addr, sizeof(addr));
	log_info("listening repl %s", addr);
	return 0;
}

struct ha *ha_new(struct broker *b)
{
	struct ha *ha = calloc(1, sizeof(*ha));
	if (!ha) {
		log_error("out of memory");
		return NULL;
	}
	ha->b = b;
	ha->cfg = &b->cfg->ha;
	ha->replicated = ha->cfg->sync == HA_SYNC_REPLICATED;
	LIST_INIT(&ha->links);
	snprintf(ha->journal_dir, sizeof(ha->journal_dir), "%s/journal", b->cfg->data_dir);
	if (ha->cfg->tls.cert) {
		char err[768];
		if (!(ha->tls = link_tls_new(&ha->cfg->tls, err, sizeof(err)))) {
			log_error("%s", err);
			goto fail;
		}
	}
	/* Without a secret the config demands mutual TLS (conf.c): the
	 * certificates prove both ends, and the handshake's proofs, keyed
	 * with nothing, only keep the frames the same. */
	ha->secret = ha->cfg->secret ? ha->cfg->secret : "";
	if (!ha->cfg->secret && (!ha->tls || ha->cfg->tls.client_cert != TLS_CLIENT_REQUIRED)) {
		log_error("replication: [ha] needs a secret, or mutual TLS");
		goto fail;
	}
	if (!ha->cfg->secret)
		log_info("replication: the link is proved by mutual TLS alone (no secret)");
	ha->timer = event_new(b->base, -1, EV_PERSIST, timer_cb, ha);
	struct timeval tick = { 0, TICK_MS * 1000 };
	if (!ha->timer || event_add(ha->timer, &tick) < 0) {
		log_error("out of memory");
		goto fail;
	}
	if (ha_epoch_load(b->cfg->data_dir, &ha->epoch) < 0)
		goto fail;
	if (listen_link(ha) < 0)
		goto fail;
	if (ha->cfg->role != HA_PRIMARY) {
		char err[512];
		if (!(ha->mirror = mirror_open(b->cfg->data_dir, err, sizeof(err)))) {
			log_error("%s", err);
			goto fail;
		}
		log_info("replication: standby %s, holding records up to %" PRIu64
			 "; connecting to %s", ha->cfg->node_id, mirror_last_seq(ha->mirror),
			 ha->cfg->peer);
		struct listen_url u;
		const char *why;
		if (url_parse(ha->cfg->peer, &u, &why) == 0 &&
		    url_resolver(b->base, u.host, &ha->dns) < 0)
			goto fail;
		connect_peer(ha);
	}
	if (ha->cfg->arbiter && strcmp(ha->cfg->arbiter, "none") && !(ha->failover = failover_new(ha)))
		goto fail;
	return ha;
fail:
	ha_free(ha);
	return NULL;
}

void ha_stop(struct ha *ha)
{
	if (!ha || !ha->dns)
		return;
	if (ha->upstream && ha->upstream->state == L_CONNECTING)
		hlink_close(ha->upstream);
	ha->next_connect_ms = INT64_MAX;
	/* Its failed lookups' callbacks run from the loop, after this. */
	evdns_base_free(ha->dns, 1);
	ha->dns = NULL;
}

void ha_free(struct ha *ha)
{
	if (!ha)
		return;
	failover_free(ha->failover);
	ha->failover = NULL;
	ha_handover_free(ha);
	while (!LIST_EMPTY(&ha->links))
		hlink_close(LIST_FIRST(&ha->links));
	if (ha->j) {
		journal_set_tap(ha->j, NULL, NULL);
		journal_gate(ha->j, false);
	}
	if (ha->accept_resume)
		event_free(ha->accept_resume);
	if (ha->lis)
		evconnlistener_free(ha->lis);
	if (ha->timer)
		event_free(ha->timer);
	mirror_free(ha->mirror);
	link_tls_free(ha->tls);
	if (ha->dns) /* a lookup under way would want the loop again: ha_stop */
		evdns_base_free(ha->dns, 1);
	free(ha);
}
