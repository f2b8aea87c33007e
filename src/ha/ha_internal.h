/* Shared by the files of the replication link (ha.c: links, frames,
 * timers, listening and connecting; ha_active.c: the active's side;
 * ha_standby.c: the standby's side; ha_control.c: PROMOTE, STATUS,
 * FAILOVER and LINK_DROP).
 * Not for other modules. Everything here runs on the broker's loop. */
#ifndef WHARF_HA_INTERNAL_H
#define WHARF_HA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "ha/epoch.h"
#include "ha/frame.h"
#include "util/clock.h"
#include "util/loglimit.h"

struct bufferevent;
struct evconnlistener;
struct event;
struct broker;
struct ha_config;
struct journal;
struct link_tls;
struct mirror;
struct sender;
struct failover;

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

/* A planned switch-over (wharfctl failover, ha_control.c). */
enum handover {
	HANDOVER_NONE,
	HANDOVER_SETTLE,    /* named queues hold their deliveries: waiting for acks */
	HANDOVER_WAIT,      /* client input stopped: waiting for the standby */
	HANDOVER_RESIGNED,  /* the lead given up: waiting for the standby to take it */
	HANDOVER_ANSWERED,  /* wharfctl answered: restarting once it has the answer */
};
/* How long the active waits for consumers to acknowledge what they hold
 * (then the rest is redelivered by the new active), and for its standby
 * before it refuses. */
#define HANDOVER_SETTLE_MS 3000
#define HANDOVER_WAIT_MS 10000
#define HANDOVER_TICK_MS 5
/* wharfctl link-drop holds the link down for at most this long. */
#define LINK_HOLD_MAX_MS 600000u

struct evdns_base;

struct ha {
	struct broker *b;
	const struct ha_config *cfg;
	const char *secret;         /* cfg's, or "" under mutual TLS alone */
	struct evconnlistener *lis;
	struct event *accept_resume; /* out of descriptors: accepting resumes */
	struct log_limit accept_log;
	struct link_tls *tls;       /* NULL: the link is plain TCP */
	struct evdns_base *dns;     /* resolves peer's name; NULL: it is an address */
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
	struct failover *failover;  /* role = auto: the arbiter's side */
	struct ha_epoch epoch;      /* this node's (ha/epoch.h) */
	uint64_t next_epoch;        /* set by a promotion for ha_activated */
	enum handover handover;     /* a switch-over in progress */
	struct link *handover_ctl;  /* ... the wharfctl waiting for its answer */
	struct event *handover_ev;  /* ... its timer, every HANDOVER_TICK_MS */
	int64_t handover_deadline_ms, handover_since_ms;
	char handover_to[128];      /* ... the standby that takes over */
	int64_t link_held_until_ms; /* active: wharfctl link-drop refuses the
	                             * standby's reconnects until then */

};


static inline int64_t ha_now_ms(void)
{
	return clock_mono_ms();
}

/* ha.c: links. hlink_close frees l (and detaches it as the standby or the
 * upstream); hlink_close_flushed closes once the output has gone out. */
void hlink_send(struct link *l, const void *p, size_t n);
void hlink_send_u64(struct link *l, uint8_t type, uint64_t v);
void hlink_send_text(struct link *l, const char *text);
void hlink_close(struct link *l);
void hlink_close_flushed(struct link *l);
/* ha.c: held confirmations may go out without a standby (the arbiter no
 * longer names one in sync), unless a standby in sync is back. */
void ha_gate_release(struct ha *ha);
/* ha.c: the attached standby goes, with the warning that says so. */
void ha_drop_standby(struct ha *ha, const char *why);
/* ha.c: a wrong proof, warned of at most once per REFUSAL_LOG_MS. */
void ha_refuse_bad_secret(struct link *l);
void ha_str_copy(char *out, size_t n, const struct repl_str *s);

/* Frame handlers: 0 to go on, 1 when the link is closing (stop reading),
 * -1 for a bad frame, -2 when refused or failed (logged); the caller closes
 * the link on < 0. */
int ha_on_hello(struct link *l, const struct repl_frame *f);      /* ha_active.c */
int ha_on_ack(struct link *l, const struct repl_frame *f);        /* ha_active.c */
int ha_on_challenge(struct link *l, const struct repl_frame *f);  /* ha_standby.c */
int ha_on_welcome(struct link *l, const struct repl_frame *f);    /* ha_standby.c */
int ha_on_mirror_frame(struct link *l, const struct repl_frame *f); /* ha_standby.c */
int ha_on_control(struct link *l, const struct repl_frame *f);    /* ha_control.c */
/* ha_control.c: frees the switch-over's timer (ha_free). */
void ha_handover_free(struct ha *ha);
/* ha_standby.c: after a burst of frames, sync the mirror and ACK. 0 or -1. */
int ha_ack_burst(struct link *l);

#endif
