/* wharf-bench: the load generator of Wharf.
 *
 * One process, one libevent loop, no threads. The layers, bottom up:
 *   net.c      non-blocking TCP connections with linear in/out buffers and
 *              the transport vtable; plain TCP
 *   tls.c      TLS on OpenSSL (a wb_transport)
 *   ws.c       WebSocket client framing over TCP or TLS (a wb_transport)
 *   mqtt.c     MQTT 3.1/3.1.1/5 client (QoS 0, 1, 2)            }
 *   stomp.c    STOMP 1.2 client (SEND/receipts, SUBSCRIBE/ACK)   } struct wb_proto
 *   amqp.c     AMQP 1.0 client on proton's connection driver     }
 *   mosq.c     MQTT through libmosquitto (--client libmosquitto): its own
 *              socket and write pattern, driven from the run's loop
 *   payload.c  the message header (run, publisher, sequence, send time,
 *              checksum) and its verification
 *   stats.c    latency histogram, per-subscriber sequence tracking
 *   run.c      the engine: connection set-up, pacing, windows, end of run
 *   main.c     options, broker /proc sampling, the report
 * A protocol adapter only frames bytes; pacing, windows, verification and
 * timing live in run.c. A protocol never knows its transport. */
#ifndef WHARF_BENCH_WB_H
#define WHARF_BENCH_WB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>

struct event_base;
struct event;

/* ---- options ------------------------------------------------------------- */

enum wb_proto_id { WB_PROTO_MQTT, WB_PROTO_STOMP, WB_PROTO_AMQP };
enum wb_tp_id { WB_TP_TCP, WB_TP_TLS, WB_TP_WS, WB_TP_WSS };
enum wb_kind { WB_TOPIC, WB_QUEUE };
enum wb_ack { WB_ACK_AUTO, WB_ACK_CLIENT, WB_ACK_CLIENT_INDIVIDUAL };

struct wb_opts {
	const char *url;
	enum wb_proto_id proto;
	enum wb_tp_id tp;
	char host[64];
	char path[128];           /* WebSocket request path */
	int port;
	char user[128], pass[128];
	bool has_user, has_pass;
	unsigned publishers, subscribers, idle;
	uint64_t count;           /* messages per publisher; 0 with duration */
	double duration;          /* seconds; 0 with count */
	size_t size;              /* payload bytes, >= WB_HDR_SIZE */
	int qos;                  /* MQTT */
	int mqtt_version;         /* 3, 4 or 5 */
	unsigned keepalive;       /* MQTT seconds */
	bool persistent;          /* STOMP persistent:true, AMQP header durable */
	bool presettled;          /* AMQP: transfers settled on sending (at most once) */
	enum wb_kind kind;
	char dest[256];           /* topic / destination name, no prefix */
	double rate;              /* messages/s per publisher; 0 = as fast as possible */
	unsigned window;          /* unconfirmed messages per publisher; 0 = unbounded */
	unsigned receipt_every;   /* STOMP: a receipt every K messages */
	unsigned prefetch;        /* STOMP prefetch; AMQP link credit; MQTT 5 receive maximum of subscribers */
	enum wb_ack ack;          /* STOMP */
	pid_t broker_pid;
	bool json, strict, intended_time, quiet;
	double timeout;           /* overall deadline, seconds */
	double drain;             /* give up when nothing arrives for this long after the publishers end */
	unsigned connect_concurrency;
	char client_prefix[48];
	bool keep_session;        /* MQTT: clean session 0 (the drill's subscriber) */
	bool libmosquitto;        /* MQTT clients are libmosquitto's (mosq.c) */
	bool frame_writes;        /* one write() per frame, as most client libraries do */
};

/* ---- payload (payload.c) ------------------------------------------------- */

/* Every payload starts with this header (little endian):
 *   0  u32 run id      4  u32 publisher
 *   8  u64 sequence   16  u64 send time, CLOCK_MONOTONIC ns
 *  24  u64 checksum of every other byte of the payload
 * and is padded to --size with bytes that depend on the sequence. */
#define WB_HDR_SIZE 32

struct wb_msginfo {
	uint32_t run, pub;
	uint64_t seq, ts;
};

enum wb_check { WB_MSG_OK, WB_MSG_CORRUPT, WB_MSG_FOREIGN };

int wb_payload_init(size_t size);
void wb_payload_build(uint8_t *dst, size_t size, uint32_t run, uint32_t pub, uint64_t seq,
		      uint64_t ts);
enum wb_check wb_payload_check(const uint8_t *p, size_t len, size_t want, uint32_t run,
			       struct wb_msginfo *out);
uint64_t wb_hash(const void *data, size_t len, uint64_t seed);

/* ---- statistics (stats.c) ------------------------------------------------ */

/* Log-bucket histogram: values below 2^WB_HIST_SUB are exact, above that
 * each power of two has 2^(WB_HIST_SUB-1) buckets, so a bucket spans at most
 * 1/256 of its value and the reported midpoint is within 0.2%. */
#define WB_HIST_SUB 9
struct wb_hist {
	uint64_t *counts;
	size_t nbuckets;
	uint64_t n, min, max;
	double sum;
};
int wb_hist_init(struct wb_hist *h);
void wb_hist_free(struct wb_hist *h);
void wb_hist_record(struct wb_hist *h, uint64_t v);
uint64_t wb_hist_quantile(const struct wb_hist *h, double q);

/* The sequence numbers one receiver (or a group of competing receivers)
 * got from each publisher. */
struct wb_seqset {
	uint64_t *bits;
	uint64_t nwords;
	uint64_t unique;
	uint64_t next;            /* highest sequence seen + 1 */
};
struct wb_track {
	unsigned npub;
	struct wb_seqset *pub;
	uint64_t deliveries;      /* every valid delivery, duplicates included */
	uint64_t unique, dups, ooo, corrupt, foreign;
};
enum wb_seq { WB_SEQ_NEW, WB_SEQ_DUP, WB_SEQ_OOO, WB_SEQ_BAD };
int wb_track_init(struct wb_track *t, unsigned npub, uint64_t hint);
void wb_track_free(struct wb_track *t);
enum wb_seq wb_track_record(struct wb_track *t, uint32_t pub, uint64_t seq);
/* Sequences in [0, sent[p]) that t has not seen, summed over publishers. */
uint64_t wb_track_missing(const struct wb_track *t, const uint64_t *sent);

/* ---- connections (net.c) ------------------------------------------------- */

struct wb_buf {
	uint8_t *data;
	size_t off, len, cap;
};

/* Room for n more bytes at data + len, moving what is unread to the front
 * first; -1 when out of memory. */
int wb_buf_room(struct wb_buf *b, size_t n);

struct wb_conn;
struct wb_ws;
struct wb_conn_ops {
	void (*on_connect)(struct wb_conn *c);     /* TCP up: send the protocol handshake */
	/* Parse what arrived; return the bytes consumed (the rest is kept). */
	size_t (*on_input)(struct wb_conn *c, const uint8_t *data, size_t len);
	void (*on_writable)(struct wb_conn *c);    /* output drained while producing */
	void (*on_close)(struct wb_conn *c, const char *why);
};

/* Where the bytes go. read and write behave as read(2) and send(2) (-1 with
 * errno EAGAIN when nothing can move now; c->err may name a failure).
 * Optional hooks: open sets up the layer's state once TCP is up; handshake
 * returns 1 when done, 0 to be called again on the next event (c->want_write
 * says whether it waits to write), -1 on failure; flush writes what the
 * layer itself holds: 1 all out, 0 some left, -1 failed; close frees. */
struct wb_transport {
	const char *name;
	int (*open)(struct wb_conn *c);
	int (*handshake)(struct wb_conn *c);
	ssize_t (*read)(struct wb_conn *c, void *buf, size_t len);
	ssize_t (*write)(struct wb_conn *c, const void *buf, size_t len);
	int (*flush)(struct wb_conn *c);
	void (*close)(struct wb_conn *c);
};
extern const struct wb_transport wb_tcp, wb_tls, wb_ws;

/* Set up once per run, before any connection opens. */
int wb_tls_init(void);
void wb_ws_init(const char *host, int port, const char *path, const char *subprotocol,
		const struct wb_transport *lower);

struct wb_conn {
	int fd;
	struct event *ev_read, *ev_write;
	struct wb_buf in, out;
	const struct wb_conn_ops *ops;
	const struct wb_transport *tp;
	void *tls;                    /* tls.c: the SSL object */
	struct wb_ws *ws;             /* ws.c: framing state */
	const char *err;              /* a transport's last failure, static text */
	bool open, connecting, handshaking, want_write, producing, write_armed, lean, busy;
	bool frame_writes;            /* flush after each frame (--frame-writes) */
	uint64_t bytes_in, bytes_out;
};

int wb_conn_open(struct wb_conn *c, struct event_base *base, const struct sockaddr_in *sa,
		 const struct wb_conn_ops *ops, const struct wb_transport *tp);
/* Watches fd, a socket a client library opened and connects itself (its
 * transport's hooks move the bytes); calls ops->on_connect at once. */
int wb_conn_adopt(struct wb_conn *c, struct event_base *base, int fd,
		  const struct wb_conn_ops *ops, const struct wb_transport *tp);
uint8_t *wb_conn_reserve(struct wb_conn *c, size_t n); /* NULL when out of memory */
void wb_conn_commit(struct wb_conn *c, size_t n);
int wb_conn_append(struct wb_conn *c, const void *data, size_t n);
static inline size_t wb_conn_pending(const struct wb_conn *c) { return c->out.len - c->out.off; }
void wb_conn_flush(struct wb_conn *c);
void wb_conn_set_producing(struct wb_conn *c, bool on);
void wb_conn_close(struct wb_conn *c);

/* ---- clients and protocols ----------------------------------------------- */

enum wb_role { WB_PUB, WB_SUB, WB_IDLE };

struct wb_run;

struct wb_client {
	struct wb_conn conn;          /* first: a wb_conn * is a wb_client * */
	struct wb_run *run;
	enum wb_role role;
	unsigned index;               /* within its role */
	char id[64];                  /* client id */
	void *ps;                     /* protocol state */
	bool started, ready, done;
	/* publisher */
	uint64_t sent, confirmed, rejected;
	unsigned window;              /* effective window: the broker may lower it */
	bool confirms;                /* publishes are confirmed (MQTT QoS > 0, STOMP receipts) */
	bool stop, finishing, finished, blocked;
	uint64_t next_due, interval;  /* --rate: ns */
	struct event *tick;
	uint64_t t_done;
	/* subscriber */
	struct wb_track track;
	uint64_t t_last;
	bool redelivered;             /* the delivery being handed over says so (STOMP
	                               * redelivered:true, MQTT DUP) */
};

struct wb_proto {
	const char *name;
	int default_port;
	int (*init)(struct wb_client *c);             /* allocate c->ps; set c->confirms */
	void (*free)(struct wb_client *c);
	/* Optional: the protocol's client library connects by itself; returns
	 * the socket for the run to watch, -1 on failure (after wb_fail). */
	int (*connect)(struct wb_client *c);
	void (*start)(struct wb_client *c);           /* connected: CONNECT (and SUBSCRIBE) */
	size_t (*input)(struct wb_client *c, const uint8_t *data, size_t len);
	bool (*can_publish)(const struct wb_client *c);
	int (*publish)(struct wb_client *c, uint64_t seq, uint64_t ts, bool last);
	void (*finish)(struct wb_client *c);          /* ask the broker to confirm all was read */
	void (*ping)(struct wb_client *c);
	void (*disconnect)(struct wb_client *c);
	/* Optional: move what the protocol engine buffered into the
	 * connection's output (AMQP: proton's frames). */
	void (*flush)(struct wb_client *c);
};
extern const struct wb_proto wb_mqtt;
extern const struct wb_proto wb_stomp;
extern const struct wb_proto wb_amqp;
extern const struct wb_proto wb_mosq;
extern const struct wb_transport wb_mosq_tp;
void wb_mosq_init(void);                          /* once, before wb_mosq's first client */

/* Called by the protocols. */
void wb_on_ready(struct wb_client *c);            /* connected (and subscribed) */
void wb_on_confirm(struct wb_client *c, uint64_t n, bool rejected);
void wb_on_credit(struct wb_client *c);           /* can_publish may have turned true */
void wb_on_finished(struct wb_client *c);         /* the finish marker came back */
void wb_on_message(struct wb_client *c, const uint8_t *payload, size_t len);
void wb_on_window(struct wb_client *c, unsigned window); /* broker's limit */
void wb_fail(struct wb_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void wb_warn(struct wb_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- the run (run.c) ----------------------------------------------------- */

enum wb_phase { WB_CONNECTING, WB_FLOWING, WB_DRAINING, WB_DONE };

struct wb_proc_sample {
	bool ok;
	double cpu_s;                 /* all threads' run time: schedstat (ns) if readable, else cpu_stat_s */
	double cpu_stat_s;            /* utime + stime from /proc/PID/stat (clock ticks) */
	bool precise;
	uint64_t rss_kib, hwm_kib;
};

struct wb_run {
	const struct wb_opts *o;
	const struct wb_proto *proto;
	const struct wb_transport *tp;
	struct event_base *base;
	struct sockaddr_in addr;
	uint32_t run_id;
	enum wb_phase phase;
	struct wb_client *pubs, *subs, *idles;
	unsigned nready, nstarted, total, next_start, connecting;
	unsigned pubs_done, idle_lost;
	struct wb_track group;        /* queues: what all subscribers got together */
	struct wb_hist lat;
	uint64_t *sent;               /* per publisher, at the end */
	uint64_t deliveries, unique, corrupt, foreign;
	uint64_t last_deliveries;     /* drain progress */
	uint64_t t_begin, t_start, t_pubs_done, t_last_recv, t_end, t_progress_last;
	uint64_t t_drain_progress;
	uint64_t progress_sent, progress_recv;
	bool timed_out, interrupted, drain_gave_up, failed, progress;
	char error[512];
	struct event *ev_timeout, *ev_duration, *ev_progress, *ev_ping, *ev_drain, *ev_sigint;
	struct wb_proc_sample broker0, broker1;
	double bench_cpu0, bench_cpu1;
	struct wb_drill *drill;       /* --drill: the callbacks below go to drill.c */
};

int wb_run(struct wb_run *r, const struct wb_opts *o);
void wb_run_free(struct wb_run *r);
int wb_proc_sample(pid_t pid, struct wb_proc_sample *s);
double wb_self_cpu(void);

uint64_t wb_now_ns(void);

/* ---- the failover drill (drill.c) ------------------------------------------ */

struct wb_drill;
/* wharf-bench --drill ...: its own options, load, events and report. */
int wb_drill_main(int argc, char **argv);
/* The protocol callbacks of a drill's clients (run.c hands them over). */
void wb_drill_ready(struct wb_client *c);
void wb_drill_confirm(struct wb_client *c, uint64_t n, bool rejected);
void wb_drill_message(struct wb_client *c, const uint8_t *payload, size_t len);
void wb_drill_fail(struct wb_client *c, const char *msg);

#endif
