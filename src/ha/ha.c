/* The pair's replication link (ha/ha.h, docs/ha.md "Replication link").
 *
 * One `struct link` per TCP connection on the link, either way: accepted
 * ones start by sending CHALLENGE and wait for HELLO; the standby's own
 * connection to its active waits for CHALLENGE, answers HELLO and waits for
 * WELCOME. Nothing but those frames is read or sent before both sides have
 * proved the secret, and frames stay small (REPL_FRAME_AUTH) until then.
 * After it: an active ships its journal to one standby (sender.c) and
 * gates confirmations on its ACKs; a standby writes what comes into its
 * mirror (mirror.c) and acknowledges once it is on disk; a control client
 * (wharfctl) asks for PROMOTE or STATUS. */
#include "config.h"
#include "ha/ha.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
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
#include "net/tls.h"
#include "net/url.h"
#include "store/journal.h"
#include "store/record.h"
#include "store/store.h"
#include "util/clock.h"

/* How often the timer looks at the links: heartbeats, silences, stalls
 * and reconnects are checked at this grain. */
#define TICK_MS 200
#define RECONNECT_MS 1000
/* A peer that cannot be reached is logged at most this often. */
#define CONNECT_LOG_MS 30000
/* A peer with a wrong secret retries every second: warned of this often. */
#define REFUSAL_LOG_MS 10000

enum link_state {
	L_CONNECTING,     /* ours, TCP not up yet */
	L_WAIT_CHALLENGE, /* ours: the listener speaks first */
	L_WAIT_WELCOME,   /* ours: HELLO sent */
	L_WAIT_HELLO,     /* accepted: CHALLENGE sent */
	L_STANDBY,        /* accepted: a standby we ship to */
	L_UPSTREAM,       /* ours: the active we mirror */
	L_CONTROL,        /* accepted: wharfctl */
	L_CLOSING,        /* the answer is being flushed, then it closes */
};

struct link {
	LIST_ENTRY(link) le;
	struct ha *ha;
	struct bufferevent *bev;
	enum link_state state;
	uint8_t nonce_a[REPL_NONCE]; /* the listener's */
	uint8_t nonce_b[REPL_NONCE]; /* the connector's */
	char addr[80];               /* the remote end, for logs */
	char peer_id[128];           /* its node_id, once known */
	int64_t opened_ms, last_rx_ms, last_tx_ms;
	bool ack_due;                /* standby: ACK after this burst */
	struct sender *sender;       /* L_STANDBY */
};

struct ha {
	struct broker *b;
	const struct ha_config *cfg;
	const char *secret;         /* cfg's, or "" under mutual TLS alone */
	struct evconnlistener *lis;
	struct link_tls *tls;       /* NULL: the link is plain TCP */
	LIST_HEAD(, link) links;
	struct link *standby;       /* active: the standby attached */
	struct link *upstream;      /* standby: the link to the active */
	struct mirror *mirror;      /* standby: the journal's copy */
	struct journal *j;          /* active: the store's journal */
	char journal_dir[4096];
	struct event *timer;
	bool replicated;            /* sync = replicated */
	bool in_sync, degraded;
	uint64_t acked;             /* active: the standby's last ACK */
	uint64_t sync_mark;         /* active: the durable end once all of it
	                             * was on the link; 0: not yet */
	int64_t unacked_since_ms;   /* active: durable records unacked since */
	int64_t next_connect_ms, last_connect_log_ms;
	int64_t last_refusal_log_ms;  /* bad secrets: one warning per REFUSAL_LOG_MS */
	unsigned refusals_quiet;      /* ... and how many went unlogged since */
	uint64_t peer_last;         /* standby: the active's last, as it said */
	uint64_t attaches, drops, refusals; /* counters, for status */
};

static int64_t now_ms(void)
{
	return clock_mono_ms();
}

/* ---- links ------------------------------------------------------------ */

static void link_send(struct link *l, const void *p, size_t n)
{
	bufferevent_write(l->bev, p, n);
	l->last_tx_ms = now_ms();
}

static void link_send_u64(struct link *l, uint8_t type, uint64_t v)
{
	uint8_t f[REPL_HEAD + 8];
	link_send(l, f, repl_u64s_encode(f, sizeof(f), type, &v, 1));
}

static void link_send_text(struct link *l, const char *text)
{
	uint8_t f[REPL_HEAD + 2 + REPL_STR_MAX];
	size_t n = strlen(text);
	link_send(l, f, repl_text_encode(f, sizeof(f), text, n > REPL_STR_MAX ? REPL_STR_MAX : n));
}

/* The standby is gone: the gate opens, held confirmations go out. */
static void detach_standby(struct ha *ha)
{
	struct link *l = ha->standby;
	ha->standby = NULL;
	sender_free(l->sender);
	l->sender = NULL;
	if (ha->j)
		journal_gate(ha->j, false);
	ha->in_sync = false;
	ha->unacked_since_ms = 0;
}

static void link_close(struct link *l)
{
	struct ha *ha = l->ha;
	if (l == ha->standby)
		detach_standby(ha);
	if (l == ha->upstream) {
		if (l->state == L_UPSTREAM)
			ha->drops++;
		ha->upstream = NULL;
		ha->in_sync = false;
		ha->next_connect_ms = now_ms() + RECONNECT_MS;
	}
	LIST_REMOVE(l, le);
	bufferevent_free(l->bev);
	free(l);
}

/* Closes once what is queued has gone out (an answer to wharfctl). */
static void link_close_flushed(struct link *l)
{
	l->state = L_CLOSING;
	bufferevent_disable(l->bev, EV_READ);
	if (!evbuffer_get_length(bufferevent_get_output(l->bev)))
		link_close(l);
}

static void drop_standby(struct ha *ha, const char *why)
{
	log_warn("replication: standby %s dropped (%s): running alone, degraded",
		 ha->standby->peer_id, why);
	ha->degraded = true;
	ha->drops++;
	link_close(ha->standby);
}

/* A wrong proof: warned, naming the remote address, at most once per
 * REFUSAL_LOG_MS (a misconfigured standby retries every second). */
static void refuse_bad_secret(struct link *l)
{
	struct ha *ha = l->ha;
	int64_t now = now_ms();
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
	l->opened_ms = l->last_rx_ms = l->last_tx_ms = now_ms();
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

static void str_copy(char *out, size_t n, const struct repl_str *s)
{
	size_t k = s->len < n - 1 ? s->len : n - 1;
	memcpy(out, s->p, k);
	out[k] = '\0';
}

/* ---- the active's side ----------------------------------------------- */

static void tap_cb(void *arg)
{
	struct ha *ha = arg;
	if (!ha->standby)
		return;
	if (!ha->unacked_since_ms && ha->acked < journal_durable_last(ha->j))
		ha->unacked_since_ms = now_ms();
	sender_kick(ha->standby->sender);
	if (sender_error(ha->standby->sender) < 0)
		drop_standby(ha, "cannot ship the journal");
}

void ha_activated(struct ha *ha)
{
	if (!ha || !ha->b->store)
		return;
	ha->j = store_journal(ha->b->store);
	journal_set_tap(ha->j, tap_cb, ha);
}

static int on_ack(struct link *l, const struct repl_frame *f)
{
	struct ha *ha = l->ha;
	uint64_t seq;
	if (repl_u64s_decode(f, &seq, 1) < 0)
		return -1;
	bool advanced = seq > ha->acked;
	if (advanced)
		ha->acked = seq;
	uint64_t durable = journal_durable_last(ha->j);
	/* the stall clock restarts only when the ACK moves */
	if (ha->acked >= durable)
		ha->unacked_since_ms = 0;
	else if (advanced || !ha->unacked_since_ms)
		ha->unacked_since_ms = now_ms();
	if (ha->in_sync) {
		if (ha->replicated)
			journal_gate_advance(ha->j, ha->acked);
	} else if (ha->acked >= durable || (ha->sync_mark && ha->acked >= ha->sync_mark)) {
		/* At the durable end, or at the end as it was when all of it
		 * had been put on the link: under a steady load the ACK may
		 * never meet the moving end exactly. From now on every
		 * confirmation above the ACK waits for the next one. */
		ha->in_sync = true;
		ha->degraded = false;
		log_info("replication: standby %s in sync", l->peer_id);
		if (ha->replicated) {
			journal_gate_advance(ha->j, ha->acked);
			journal_gate(ha->j, true);
		}
	} else if (!ha->sync_mark && sender_unsent(l->sender) == 0 &&
		   evbuffer_get_length(bufferevent_get_output(l->bev)) <= REPL_CHUNK) {
		ha->sync_mark = durable;
	}
	return 0;
}

/* A standby proved the secret: decide where it starts and go. */
static int attach_standby(struct link *l, const struct repl_hello *h, struct repl_welcome *w)
{
	struct ha *ha = l->ha;
	if (!ha->b->active || !ha->j) {
		log_warn("replication: standby %s (%s) refused: this node is not active", l->peer_id,
			 l->addr);
		ha->refusals++;
		return -1;
	}
	if (ha->standby) {
		log_warn("replication: standby %s (%s) refused: standby %s is attached already",
			 l->peer_id, l->addr, ha->standby->peer_id);
		ha->refusals++;
		return -1;
	}
	l->sender = sender_new(ha->b->base, ha->j, ha->journal_dir, bufferevent_get_output(l->bev));
	if (!l->sender || sender_start(l->sender, h->last_seq, w) < 0) {
		log_error("replication: out of memory attaching standby %s", l->peer_id);
		return -1;
	}
	ha->standby = l;
	ha->attaches++;
	l->state = L_STANDBY;
	ha->in_sync = false;
	ha->sync_mark = 0;
	if (w->mode == REPL_MODE_FULL)
		ha->acked = 0;
	else
		ha->acked = h->last_seq < w->from ? h->last_seq : w->from - 1;
	uint64_t behind = w->last_seq > ha->acked ? w->last_seq - ha->acked : 0;
	ha->unacked_since_ms = behind ? now_ms() : 0;
	if (w->mode == REPL_MODE_FULL && h->last_seq > w->last_seq)
		log_info("replication: standby %s catching up, %" PRIu64 " records behind (full copy; "
			 "it holds %" PRIu64 " records this node does not)",
			 l->peer_id, behind, h->last_seq - w->last_seq);
	else if (w->mode == REPL_MODE_FULL)
		log_info("replication: standby %s catching up, %" PRIu64 " records behind (full copy)",
			 l->peer_id, behind);
	else
		log_info("replication: standby %s catching up, %" PRIu64 " records behind (from "
			 "segment %" PRIu64 ")", l->peer_id, behind, w->from);
	return 0;
}

static int on_hello(struct link *l, const struct repl_frame *f)
{
	struct ha *ha = l->ha;
	struct repl_hello h;
	if (repl_hello_decode(f, &h) < 0)
		return -1;
	if (!repl_proof_ok(ha->secret, REPL_LABEL_HELLO, l->nonce_a, h.nonce, h.proof)) {
		refuse_bad_secret(l);
		return -2;
	}
	memcpy(l->nonce_b, h.nonce, REPL_NONCE);
	str_copy(l->peer_id, sizeof(l->peer_id), &h.node_id);
	struct repl_welcome w = { 0 };
	if (repl_proof(ha->secret, REPL_LABEL_WELCOME, l->nonce_b, l->nonce_a, w.proof) < 0)
		return -2;
	w.node_id = (struct repl_str){ ha->cfg->node_id, strlen(ha->cfg->node_id) };
	const char *adv = ha->cfg->advertise ? ha->cfg->advertise : "";
	w.advertise = (struct repl_str){ adv, strlen(adv) };
	if (h.role == REPL_ROLE_CONTROL) {
		w.mode = REPL_MODE_CONTROL;
		l->state = L_CONTROL;
	} else if (attach_standby(l, &h, &w) < 0) {
		return -2;
	}
	uint8_t buf[REPL_FRAME_AUTH];
	size_t n = repl_welcome_encode(buf, sizeof(buf), &w);
	if (!n)
		return -2;
	link_send(l, buf, n); /* the sender has queued nothing yet */
	if (l->sender)
		sender_kick(l->sender);
	return 0;
}

/* ---- the standby's side ---------------------------------------------- */

static int on_challenge(struct link *l, const struct repl_frame *f)
{
	struct ha *ha = l->ha;
	struct repl_challenge c;
	if (repl_challenge_decode(f, &c) < 0)
		return -1;
	memcpy(l->nonce_a, c.nonce, REPL_NONCE);
	str_copy(l->peer_id, sizeof(l->peer_id), &c.node_id);
	struct repl_hello h = { 0 };
	if (repl_nonce(l->nonce_b) < 0 ||
	    repl_proof(ha->secret, REPL_LABEL_HELLO, l->nonce_a, l->nonce_b, h.proof) < 0)
		return -2;
	memcpy(h.nonce, l->nonce_b, REPL_NONCE);
	h.node_id = (struct repl_str){ ha->cfg->node_id, strlen(ha->cfg->node_id) };
	h.last_seq = mirror_last_seq(ha->mirror);
	h.oldest = mirror_oldest(ha->mirror);
	h.role = REPL_ROLE_STANDBY;
	uint8_t buf[REPL_FRAME_AUTH];
	size_t n = repl_hello_encode(buf, sizeof(buf), &h);
	if (!n)
		return -2;
	link_send(l, buf, n);
	l->state = L_WAIT_WELCOME;
	return 0;
}

static int on_welcome(struct link *l, const struct repl_frame *f)
{
	struct ha *ha = l->ha;
	struct repl_welcome w;
	if (repl_welcome_decode(f, &w) < 0)
		return -1;
	if (!repl_proof_ok(ha->secret, REPL_LABEL_WELCOME, l->nonce_b, l->nonce_a, w.proof)) {
		refuse_bad_secret(l);
		return -2;
	}
	str_copy(l->peer_id, sizeof(l->peer_id), &w.node_id);
	if (w.mode == REPL_MODE_CONTROL)
		return -1;
	char adv[REPL_STR_MAX + 1];
	str_copy(adv, sizeof(adv), &w.advertise);
	broker_set_redirect(ha->b, adv);
	uint64_t mine = mirror_last_seq(ha->mirror);
	if (mine > w.last_seq)
		log_warn("replication: discarding %" PRIu64 " records the active %s does not have",
			 mine - w.last_seq, l->peer_id);
	char err[256];
	if (mirror_start(ha->mirror, w.mode, w.from, w.oldest, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -2;
	}
	if (w.mode == REPL_MODE_FULL)
		log_info("replication: attached to active %s: full copy", l->peer_id);
	else
		log_info("replication: attached to active %s: catching up from segment %" PRIu64,
			 l->peer_id, w.from);
	ha->peer_last = w.last_seq;
	ha->last_connect_log_ms = 0;
	ha->attaches++;
	l->state = L_UPSTREAM;
	l->ack_due = true;
	return 0;
}

static int on_mirror_frame(struct link *l, const struct repl_frame *f)
{
	struct mirror *m = l->ha->mirror;
	char err[256] = "";
	uint64_t v[2];
	int rc;
	switch (f->type) {
	case REPL_SEG_BEGIN:
		if (repl_u64s_decode(f, v, 1) < 0)
			return -1;
		rc = mirror_seg_begin(m, v[0], err, sizeof(err));
		break;
	case REPL_DATA: {
		struct repl_data d;
		if (repl_data_decode(f, &d) < 0)
			return -1;
		rc = mirror_data(m, &d, err, sizeof(err));
		break;
	}
	case REPL_STUB:
		if (repl_u64s_decode(f, v, 2) < 0)
			return -1;
		rc = mirror_stub(m, v[0], v[1], err, sizeof(err));
		break;
	case REPL_DROP:
		if (repl_u64s_decode(f, v, 1) < 0)
			return -1;
		rc = mirror_drop(m, v[0], err, sizeof(err));
		break;
	default:
		return -1;
	}
	if (rc < 0) {
		log_error("%s; dropping the link to start again", err);
		return -2;
	}
	return 0;
}

/* ---- control (wharfctl) ---------------------------------------------- */

static void promote(struct ha *ha, char *answer, size_t n)
{
	if (ha->b->active) {
		snprintf(answer, n, "already active");
		return;
	}
	if (ha->upstream)
		link_close(ha->upstream);
	mirror_free(ha->mirror); /* its lock goes: the store takes the directory */
	ha->mirror = NULL;
	if (broker_activate(ha->b) < 0) {
		snprintf(answer, n, "promotion failed: see the log of %s", ha->cfg->node_id);
		return;
	}
	log_info("replication: promoted: active");
	snprintf(answer, n, "promoted: active");
}

void ha_status(struct ha *ha, struct ha_status *out)
{
	memset(out, 0, sizeof(*out));
	out->active = ha->b->active;
	out->attaches = ha->attaches;
	out->drops = ha->drops;
	out->refusals = ha->refusals;
	out->in_sync = ha->in_sync;
	out->degraded = ha->degraded;
	if (out->active && ha->j) {
		out->connected = ha->standby != NULL;
		out->last_seq = journal_durable_last(ha->j);
		if (ha->standby) {
			out->lag_records = out->last_seq > ha->acked ? out->last_seq - ha->acked : 0;
			out->lag_bytes = sender_unsent(ha->standby->sender);
		}
	} else if (ha->mirror) {
		out->connected = ha->upstream && ha->upstream->state == L_UPSTREAM;
		out->in_sync = out->connected && mirror_last_seq(ha->mirror) >= ha->peer_last;
		out->last_seq = mirror_last_seq(ha->mirror);
		out->lag_records = ha->peer_last > out->last_seq ? ha->peer_last - out->last_seq : 0;
	}
}

static void status_text(struct ha *ha, char *out, size_t n)
{
	struct ha_status st;
	ha_status(ha, &st);
	snprintf(out, n,
		 "role: %s\nnode_id: %s\npeer: %s\nconnected: %s\nin_sync: %s\ndegraded: %s\n"
		 "last_seq: %" PRIu64 "\nlag_records: %" PRIu64 "\nlag_bytes: %" PRIu64 "\n"
		 "attaches: %" PRIu64 "\ndrops: %" PRIu64 "\nrefusals: %" PRIu64 "\n",
		 st.active ? "active" : "standby", ha->cfg->node_id, ha->cfg->peer,
		 st.connected ? "yes" : "no", st.in_sync ? "yes" : "no", st.degraded ? "yes" : "no",
		 st.last_seq, st.lag_records, st.lag_bytes, st.attaches, st.drops, st.refusals);
}

static int on_control(struct link *l, const struct repl_frame *f)
{
	char answer[REPL_STR_MAX];
	if (f->type == REPL_STATUS)
		status_text(l->ha, answer, sizeof(answer));
	else if (f->type == REPL_PROMOTE)
		promote(l->ha, answer, sizeof(answer));
	else
		return -1;
	link_send_text(l, answer);
	link_close_flushed(l);
	return 1;
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
		return f->type == REPL_HELLO ? on_hello(l, f) : -1;
	case L_WAIT_CHALLENGE:
		return f->type == REPL_CHALLENGE ? on_challenge(l, f) : -1;
	case L_WAIT_WELCOME:
		return f->type == REPL_WELCOME ? on_welcome(l, f) : -1;
	case L_STANDBY:
		return f->type == REPL_ACK ? on_ack(l, f) : -1;
	case L_UPSTREAM:
		return on_mirror_frame(l, f);
	case L_CONTROL:
		return on_control(l, f);
	default:
		return -1;
	}
}

/* The standby's burst is written: make it durable, then say so. */
static int ack_burst(struct link *l)
{
	struct ha *ha = l->ha;
	if (!l->ack_due && !mirror_dirty(ha->mirror))
		return 0;
	char err[256];
	if (mirror_sync(ha->mirror, err, sizeof(err)) < 0) {
		log_error("%s; dropping the link", err);
		return -1;
	}
	l->ack_due = false;
	link_send_u64(l, REPL_ACK, mirror_last_seq(ha->mirror));
	return 0;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	l->last_rx_ms = now_ms();
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
			link_close(l);
			return;
		}
		if (rc == 1)
			return;
		evbuffer_drain(in, used);
	}
	if (l->state == L_UPSTREAM && ack_burst(l) < 0)
		link_close(l);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;
	if (l->state == L_CLOSING) {
		if (!evbuffer_get_length(bufferevent_get_output(bev)))
			link_close(l);
		return;
	}
	if (l->sender)
		sender_kick(l->sender);
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
		l->last_rx_ms = now_ms();
		log_debug("replication: connected to peer %s", l->addr);
		return;
	}
	char tls_err[256] = "";
	unsigned long e = ha->tls ? bufferevent_get_openssl_error(bev) : 0;
	if (e)
		ERR_error_string_n(e, tls_err, sizeof(tls_err));
	if (l->state == L_CONNECTING || l->state == L_WAIT_CHALLENGE || l->state == L_WAIT_WELCOME) {
		/* Rate-limited: the standby tries again every second. */
		int64_t now = now_ms();
		if (!ha->last_connect_log_ms || now - ha->last_connect_log_ms >= CONNECT_LOG_MS) {
			if (l->state == L_CONNECTING)
				log_warn("replication: cannot reach peer %s: %s (trying every second)",
					 l->addr, e ? tls_err
						    : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
			else
				log_warn("replication: peer %s closed the link before welcoming this node "
					 "(a wrong secret, or not active?); trying every second", l->addr);
			ha->last_connect_log_ms = now;
		}
	} else if (l->state == L_WAIT_HELLO && e) {
		log_warn("replication: peer %s refused: TLS: %s", l->addr, tls_err);
		ha->refusals++;
	} else if (l == ha->standby) {
		drop_standby(ha, "connection closed");
		return;
	} else if (l->state == L_UPSTREAM) {
		log_warn("replication: link to active %s closed; reconnecting", l->peer_id);
	}
	link_close(l);
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
		link_close(l);
		return;
	}
	link_send(l, buf, n);
}

/* HOST and PORT of a repl:// URL, resolved. */
static struct addrinfo *resolve(const char *url, bool passive)
{
	struct listen_url u;
	const char *why;
	if (url_parse(url, &u, &why) < 0)
		return NULL;
	char port[16];
	snprintf(port, sizeof(port), "%d", u.port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	struct addrinfo *res = NULL;
	if (getaddrinfo(u.host, port, &hints, &res) != 0)
		return NULL;
	return res;
}

static void connect_peer(struct ha *ha)
{
	/* Blocking name resolution: a standby's loop serves no clients. */
	struct addrinfo *ai = resolve(ha->cfg->peer, false);
	if (!ai) {
		ha->next_connect_ms = now_ms() + RECONNECT_MS;
		return;
	}
	char addr[80];
	url_format_addr(ai->ai_addr, addr, sizeof(addr));
	struct bufferevent *bev;
	struct listen_url u;
	const char *why;
	if (ha->tls && url_parse(ha->cfg->peer, &u, &why) == 0) {
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
		if (bufferevent_socket_connect(bev, ai->ai_addr, (int)ai->ai_addrlen) < 0)
			link_close(l); /* sets the next try */
	}
	freeaddrinfo(ai);
	if (!l)
		ha->next_connect_ms = now_ms() + RECONNECT_MS;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ha *ha = arg;
	int64_t now = now_ms();
	unsigned timeout = ha->cfg->timeout_ms, beat = timeout / 3 ? timeout / 3 : 1;
	struct link *l = LIST_FIRST(&ha->links), *next;
	for (; l; l = next) {
		next = LIST_NEXT(l, le);
		if (l->state == L_CONNECTING)
			continue;
		char why[64];
		if (now - l->last_rx_ms > (int64_t)timeout) {
			snprintf(why, sizeof(why), "silent for %u ms", timeout);
			if (l == ha->standby) {
				drop_standby(ha, why);
			} else {
				if (l->state == L_UPSTREAM)
					log_warn("replication: active %s %s; reconnecting", l->peer_id, why);
				link_close(l);
			}
			continue;
		}
		if ((l->state == L_STANDBY || l->state == L_UPSTREAM) && now - l->last_tx_ms >= beat) {
			uint64_t last = l->state == L_STANDBY ? journal_durable_last(ha->j)
							      : mirror_last_seq(ha->mirror);
			link_send_u64(l, REPL_HEARTBEAT, last);
		}
	}
	if (ha->standby && sender_error(ha->standby->sender) < 0)
		drop_standby(ha, "cannot ship the journal");
	if (ha->standby && ha->unacked_since_ms &&
	    now - ha->unacked_since_ms > (int64_t)ha->cfg->sync_timeout_ms) {
		char why[64];
		snprintf(why, sizeof(why), "no ack for %u ms", ha->cfg->sync_timeout_ms);
		drop_standby(ha, why);
	}
	if (ha->mirror && !ha->upstream && now >= ha->next_connect_ms)
		connect_peer(ha);
}

static int listen_link(struct ha *ha)
{
	struct addrinfo *ai = resolve(ha->cfg->listen, true);
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
		connect_peer(ha);
	}
	return ha;
fail:
	ha_free(ha);
	return NULL;
}

void ha_free(struct ha *ha)
{
	if (!ha)
		return;
	while (!LIST_EMPTY(&ha->links))
		link_close(LIST_FIRST(&ha->links));
	if (ha->j) {
		journal_set_tap(ha->j, NULL, NULL);
		journal_gate(ha->j, false);
	}
	if (ha->lis)
		evconnlistener_free(ha->lis);
	if (ha->timer)
		event_free(ha->timer);
	mirror_free(ha->mirror);
	link_tls_free(ha->tls);
	free(ha);
}
