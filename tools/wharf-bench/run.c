/* The engine: connects subscribers, idle connections and publishers (at
 * most --connect-concurrency handshakes at a time), starts the message flow
 * once every connection is ready, paces the publishers (window of
 * unconfirmed messages, --rate spread evenly, output high-water mark), and
 * ends the run when every subscriber has everything, when nothing more
 * arrives for --drain seconds after the publishers finished, on the first
 * error, or at --timeout. */
#include "config.h"
#include "wb.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH_BYTES (64 * 1024)  /* a publisher yields to the loop after this much */
#define OUT_HIGH (256 * 1024)    /* and stops producing while this much is unsent */
#define NS 1000000000ull
#define AMQP_TICK_S 5           /* proton's idle-timeout frames: brokers ask for 30 s or more */

static struct wb_client *of(struct wb_conn *conn)
{
	return (struct wb_client *)conn;
}

static struct wb_client *client_at(struct wb_run *r, unsigned i)
{
	const struct wb_opts *o = r->o;
	if (i < o->subscribers)
		return &r->subs[i];
	i -= o->subscribers;
	if (i < o->idle)
		return &r->idles[i];
	return &r->pubs[i - o->idle];
}

static uint64_t expected_total(const struct wb_run *r)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < r->o->publishers; i++)
		t += r->pubs[i].sent - r->pubs[i].rejected;
	return t;
}

/* ---- end of run ------------------------------------------------------------ */

static void end_run(struct wb_run *r)
{
	if (r->phase == WB_DONE)
		return;
	r->t_end = wb_now_ns();
	if (r->o->broker_pid && r->t_start)
		wb_proc_sample(r->o->broker_pid, &r->broker1);
	r->bench_cpu1 = wb_self_cpu();
	r->phase = WB_DONE;
	for (unsigned i = 0; i < r->o->publishers; i++)
		r->sent[i] = r->pubs[i].sent;
	event_base_loopbreak(r->base);
}

static void vreport(struct wb_client *c, const char *what, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (c)
		fprintf(stderr, "\r\033[Kwharf-bench: %s: %s: %s\n", what, c->id, msg);
	else
		fprintf(stderr, "\r\033[Kwharf-bench: %s: %s\n", what, msg);
}

void wb_fail(struct wb_client *c, const char *fmt, ...)
{
	struct wb_run *r = c->run;
	if (r->drill) {
		char dm[380];
		va_list dap;
		va_start(dap, fmt);
		vsnprintf(dm, sizeof dm, fmt, dap);
		va_end(dap);
		wb_drill_fail(c, dm);
		return;
	}
	if (r->phase == WB_DONE)
		return;
	va_list ap;
	va_start(ap, fmt);
	char msg[380];
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!r->failed)
		snprintf(r->error, sizeof r->error, "%s: %s", c->id, msg);
	r->failed = true;
	if (c->conn.open)
		wb_conn_close(&c->conn);
	end_run(r);
}

void wb_warn(struct wb_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(c, "warning", fmt, ap);
	va_end(ap);
}

/* ---- completion ------------------------------------------------------------- */

static void check_complete(struct wb_run *r)
{
	if (r->phase != WB_DRAINING)
		return;
	uint64_t want = expected_total(r);
	if (r->o->kind == WB_QUEUE) {
		if (r->o->subscribers && r->group.unique < want)
			return;
	} else {
		for (unsigned i = 0; i < r->o->subscribers; i++)
			if (r->subs[i].track.unique < want)
				return;
	}
	end_run(r);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wb_run *r = arg;
	uint64_t now = wb_now_ns();
	if (r->deliveries != r->last_deliveries) {
		r->last_deliveries = r->deliveries;
		r->t_drain_progress = now;
	} else if (now - r->t_drain_progress >= (uint64_t)(r->o->drain * 1e9)) {
		r->drain_gave_up = true;
		end_run(r);
	}
}

static void pubs_finished(struct wb_run *r)
{
	r->t_pubs_done = wb_now_ns();
	r->phase = WB_DRAINING;
	if (r->ev_duration)
		event_del(r->ev_duration);
	r->last_deliveries = r->deliveries;
	r->t_drain_progress = r->t_pubs_done;
	struct timeval tv = { 0, 100000 };
	event_add(r->ev_drain, &tv);
	check_complete(r);
}

static void check_pub_done(struct wb_client *c)
{
	struct wb_run *r = c->run;
	if (c->done || !c->finished || (c->confirms && c->confirmed + c->rejected < c->sent))
		return;
	c->done = true;
	c->t_done = wb_now_ns();
	if (++r->pubs_done == r->o->publishers)
		pubs_finished(r);
}

/* ---- publishers ------------------------------------------------------------- */

static void pump(struct wb_client *c);

/* What the protocol engine holds, then the connection's output. */
static void flush(struct wb_client *c)
{
	if (c->run->proto->flush && c->conn.open)
		c->run->proto->flush(c);
	wb_conn_flush(&c->conn);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

static void pump(struct wb_client *c)
{
	struct wb_run *r = c->run;
	const struct wb_opts *o = r->o;
	if ((r->phase != WB_FLOWING && r->phase != WB_DRAINING) || c->finishing || !c->conn.open) {
		wb_conn_set_producing(&c->conn, false);
		flush(c);
		return;
	}
	size_t start = wb_conn_pending(&c->conn);
	uint64_t end = o->duration ? r->t_start + (uint64_t)(o->duration * 1e9) : UINT64_MAX;
	uint64_t now = 0;
	bool more = false, wait_timer = false;
	c->blocked = false;
	for (;;) {
		if (c->stop || (o->count && c->sent >= o->count)) {
			c->finishing = true;
			r->proto->finish(c);
			break;
		}
		if (c->window && c->confirms && c->sent - c->confirmed - c->rejected >= c->window) {
			c->blocked = true;
			break;
		}
		if (!r->proto->can_publish(c)) {
			c->blocked = true;
			break;
		}
		size_t pending = wb_conn_pending(&c->conn);
		if (pending >= OUT_HIGH || pending - start >= BATCH_BYTES) {
			more = true;
			break;
		}
		now = wb_now_ns();
		if (now >= end) {
			c->stop = true;
			continue;
		}
		uint64_t ts = now;
		if (o->rate > 0) {
			if (c->next_due > now) {
				wait_timer = true;
				break;
			}
			if (o->intended_time)
				ts = c->next_due;
			c->next_due += c->interval;
		}
		bool last = o->count && c->sent + 1 == o->count;
		if (r->proto->publish(c, c->sent, ts, last) < 0 || !c->conn.open)
			return;
		c->sent++;
	}
	wb_conn_set_producing(&c->conn, more);
	if (wait_timer) {
		uint64_t d = c->next_due - now;
		struct timeval tv = { (time_t)(d / NS), (suseconds_t)(d % NS / 1000) };
		event_add(c->tick, &tv);
	}
	flush(c);
}

static void duration_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wb_run *r = arg;
	for (unsigned i = 0; i < r->o->publishers; i++) {
		struct wb_client *c = &r->pubs[i];
		if (!c->stop) {
			c->stop = true;
			if (!c->finishing)
				pump(c);
		}
	}
}

void wb_on_confirm(struct wb_client *c, uint64_t n, bool rejected)
{
	if (c->run->drill) {
		wb_drill_confirm(c, n, rejected);
		return;
	}
	if (rejected)
		c->rejected += n;
	else
		c->confirmed += n;
	if (c->finishing)
		check_pub_done(c);
	else
		wb_on_credit(c);
}

void wb_on_credit(struct wb_client *c)
{
	if (c->run->drill)
		return; /* the drill's publishers are paced by its timer */
	if (c->blocked && !c->finishing) /* pump again once this read is parsed */
		wb_conn_set_producing(&c->conn, true);
}

void wb_on_finished(struct wb_client *c)
{
	if (c->run->drill)
		return;
	c->finished = true;
	check_pub_done(c);
}

void wb_on_window(struct wb_client *c, unsigned window)
{
	if (!c->window || window < c->window) {
		if (c->window && c->run->o->window)
			wb_warn(c, "the broker limits unconfirmed messages to %u", window);
		c->window = window;
	}
}

/* ---- subscribers ------------------------------------------------------------ */

void wb_on_message(struct wb_client *c, const uint8_t *payload, size_t len)
{
	struct wb_run *r = c->run;
	if (r->drill) {
		wb_drill_message(c, payload, len);
		return;
	}
	struct wb_msginfo mi;
	enum wb_check k = wb_payload_check(payload, len, r->o->size, r->run_id, &mi);
	if (k == WB_MSG_FOREIGN) {
		c->track.foreign++;
		r->foreign++;
		return;
	}
	enum wb_seq s = k == WB_MSG_OK ? wb_track_record(&c->track, mi.pub, mi.seq) : WB_SEQ_BAD;
	if (s == WB_SEQ_BAD) {
		c->track.corrupt++;
		r->corrupt++;
		return;
	}
	r->deliveries++;
	if (s == WB_SEQ_DUP)
		return;
	uint64_t now = wb_now_ns();
	wb_hist_record(&r->lat, now >= mi.ts ? now - mi.ts : 0);
	c->t_last = r->t_last_recv = now;
	if (r->o->kind == WB_QUEUE)
		wb_track_record(&r->group, mi.pub, mi.seq);
	if (r->phase == WB_DRAINING)
		check_complete(r);
}

/* ---- connections ------------------------------------------------------------ */

static void begin_flow(struct wb_run *r);
static void on_connect(struct wb_conn *conn);
static size_t on_input(struct wb_conn *conn, const uint8_t *data, size_t len);
static void on_writable(struct wb_conn *conn);
static void on_close(struct wb_conn *conn, const char *why);
static const struct wb_conn_ops client_ops = { on_connect, on_input, on_writable, on_close };

static void start_more(struct wb_run *r)
{
	const struct wb_opts *o = r->o;
	while (r->connecting < o->connect_concurrency && r->next_start < r->total &&
	       r->phase == WB_CONNECTING) {
		struct wb_client *c = client_at(r, r->next_start++);
		if (r->proto->connect) {
			int fd = r->proto->connect(c);
			if (fd < 0)
				return;
			if (wb_conn_adopt(&c->conn, r->base, fd, &client_ops, r->tp) < 0) {
				wb_fail(c, "connect: %s", strerror(errno));
				return;
			}
		} else if (wb_conn_open(&c->conn, r->base, &r->addr, &client_ops, r->tp) < 0) {
			wb_fail(c, "connect: %s", strerror(errno));
			return;
		}
		c->started = true;
		r->connecting++;
	}
}

void wb_on_ready(struct wb_client *c)
{
	struct wb_run *r = c->run;
	if (r->drill) {
		wb_drill_ready(c);
		return;
	}
	if (c->ready)
		return;
	c->ready = true;
	r->connecting--;
	r->nready++;
	if (c->role == WB_IDLE)
		c->conn.lean = true;
	if (r->nready == r->total)
		begin_flow(r);
	else
		start_more(r);
}

static void on_connect(struct wb_conn *conn)
{
	struct wb_client *c = of(conn);
	c->run->proto->start(c);
}

static size_t on_input(struct wb_conn *conn, const uint8_t *data, size_t len)
{
	struct wb_client *c = of(conn);
	return c->run->proto->input(c, data, len);
}

static void on_writable(struct wb_conn *conn)
{
	struct wb_client *c = of(conn);
	if (c->role == WB_PUB)
		pump(c);
	else
		wb_conn_set_producing(conn, false);
}

static void on_close(struct wb_conn *conn, const char *why)
{
	struct wb_client *c = of(conn);
	struct wb_run *r = c->run;
	if (r->phase == WB_DONE || (c->role == WB_PUB && c->finished))
		return;
	if (c->role == WB_IDLE && c->ready) {
		if (!r->idle_lost++)
			wb_warn(c, "idle connection lost: %s", why);
		return;
	}
	wb_fail(c, "%s", why);
}


/* ---- timers ----------------------------------------------------------------- */

static void progress_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wb_run *r = arg;
	uint64_t now = wb_now_ns(), sent = 0, inflight = 0;
	for (unsigned i = 0; i < r->o->publishers; i++) {
		struct wb_client *c = &r->pubs[i];
		sent += c->sent;
		if (c->confirms)
			inflight += c->sent - c->confirmed - c->rejected;
	}
	double dt = (double)(now - r->t_progress_last) / 1e9;
	fprintf(stderr, "\r\033[K[%5.1fs] sent %" PRIu64 " (%.0f/s)  in flight %" PRIu64
		"  received %" PRIu64 " (%.0f/s)%s",
		(double)(now - r->t_start) / 1e9, sent, (double)(sent - r->progress_sent) / dt,
		inflight, r->deliveries, (double)(r->deliveries - r->progress_recv) / dt,
		r->phase == WB_DRAINING ? "  draining" : "");
	r->progress_sent = sent;
	r->progress_recv = r->deliveries;
	r->t_progress_last = now;
}

static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wb_run *r = arg;
	for (unsigned i = 0; i < r->total; i++) {
		struct wb_client *c = client_at(r, i);
		if (c->ready && c->conn.open && !(c->role == WB_PUB && c->finishing)) {
			r->proto->ping(c);
			flush(c);
		}
	}
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wb_run *r = arg;
	r->timed_out = true;
	end_run(r);
}

static void sigint_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wb_run *r = arg;
	r->interrupted = true;
	end_run(r);
}

static void begin_flow(struct wb_run *r)
{
	const struct wb_opts *o = r->o;
	r->phase = WB_FLOWING;
	if (o->broker_pid)
		wb_proc_sample(o->broker_pid, &r->broker0);
	r->bench_cpu0 = wb_self_cpu();
	r->t_start = r->t_progress_last = wb_now_ns();
	if (o->duration > 0) {
		struct timeval tv = { (time_t)o->duration,
				      (suseconds_t)((o->duration - (double)(time_t)o->duration) * 1e6) };
		event_add(r->ev_duration, &tv);
	}
	if (r->progress) {
		struct timeval tv = { 1, 0 };
		event_add(r->ev_progress, &tv);
	}
	for (unsigned i = 0; i < o->publishers; i++) {
		struct wb_client *c = &r->pubs[i];
		if (o->rate > 0) {
			c->interval = (uint64_t)(1e9 / o->rate);
			if (!c->interval)
				c->interval = 1;
			c->next_due = r->t_start + c->interval * i / o->publishers;
		}
		pump(c);
		if (r->phase == WB_DONE)
			return;
	}
	if (!o->publishers)
		pubs_finished(r);
}

/* ---- set-up and tear-down ------------------------------------------------------ */

static int init_client(struct wb_run *r, struct wb_client *c, enum wb_role role, unsigned i)
{
	const struct wb_opts *o = r->o;
	static const char *const names[] = { "pub", "sub", "idle" };
	memset(c, 0, sizeof *c);
	c->conn.fd = -1;
	c->conn.frame_writes = o->frame_writes;
	c->run = r;
	c->role = role;
	c->index = i;
	snprintf(c->id, sizeof c->id, "%s-%s-%u", o->client_prefix, names[role], i);
	if (r->proto->init(c) < 0)
		return -1;
	if (role == WB_PUB) {
		c->window = o->window;
		if (c->confirms && !c->window)
			c->window = 65535;
		c->tick = evtimer_new(r->base, tick_cb, c);
		if (!c->tick)
			return -1;
	}
	if (role == WB_SUB) {
		uint64_t hint = o->count ? o->count : 1u << 16;
		if (wb_track_init(&c->track, o->publishers, hint) < 0)
			return -1;
	}
	return 0;
}

int wb_run(struct wb_run *r, const struct wb_opts *o)
{
	memset(r, 0, sizeof *r);
	r->o = o;
	static const struct wb_proto *const protos[] = { &wb_mqtt, &wb_stomp, &wb_amqp };
	static const char *const subprotocols[] = { "mqtt", "v12.stomp", "amqp" };
	r->proto = protos[o->proto];
	r->tp = o->tp == WB_TP_TCP ? &wb_tcp : o->tp == WB_TP_TLS ? &wb_tls : &wb_ws;
	if (o->libmosquitto) {
		wb_mosq_init();
		r->proto = &wb_mosq;
		r->tp = &wb_mosq_tp;
	}
	if ((o->tp == WB_TP_TLS || o->tp == WB_TP_WSS) && wb_tls_init() < 0)
		return -1;
	if (o->tp == WB_TP_WS || o->tp == WB_TP_WSS)
		wb_ws_init(o->host, o->port, o->path, subprotocols[o->proto],
			   o->tp == WB_TP_WSS ? &wb_tls : &wb_tcp);
	r->t_begin = wb_now_ns();
	r->run_id = (uint32_t)(r->t_begin ^ (r->t_begin >> 32) ^ ((uint64_t)getpid() << 16));
	r->progress = !o->quiet && isatty(2);
	r->addr.sin_family = AF_INET;
	r->addr.sin_port = htons((uint16_t)o->port);
	r->addr.sin_addr.s_addr = htonl(0x7f000001);
	r->total = o->publishers + o->subscribers + o->idle;

	struct event_config *cfg = event_config_new();
	if (!cfg)
		return -1;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	r->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!r->base || wb_hist_init(&r->lat) < 0 || wb_payload_init(o->size) < 0)
		return -1;
	r->pubs = calloc(o->publishers + 1, sizeof *r->pubs);
	r->subs = calloc(o->subscribers + 1, sizeof *r->subs);
	r->idles = calloc(o->idle + 1, sizeof *r->idles);
	r->sent = calloc(o->publishers + 1, sizeof *r->sent);
	if (!r->pubs || !r->subs || !r->idles || !r->sent)
		return -1;
	if (o->kind == WB_QUEUE &&
	    wb_track_init(&r->group, o->publishers, o->count ? o->count : 1u << 16) < 0)
		return -1;
	for (unsigned i = 0; i < o->publishers; i++)
		if (init_client(r, &r->pubs[i], WB_PUB, i) < 0)
			return -1;
	for (unsigned i = 0; i < o->subscribers; i++)
		if (init_client(r, &r->subs[i], WB_SUB, i) < 0)
			return -1;
	for (unsigned i = 0; i < o->idle; i++)
		if (init_client(r, &r->idles[i], WB_IDLE, i) < 0)
			return -1;

	r->ev_timeout = evtimer_new(r->base, timeout_cb, r);
	r->ev_duration = evtimer_new(r->base, duration_cb, r);
	r->ev_progress = event_new(r->base, -1, EV_PERSIST, progress_cb, r);
	r->ev_ping = event_new(r->base, -1, EV_PERSIST, ping_cb, r);
	r->ev_drain = event_new(r->base, -1, EV_PERSIST, drain_cb, r);
	r->ev_sigint = evsignal_new(r->base, SIGINT, sigint_cb, r);
	if (!r->ev_timeout || !r->ev_duration || !r->ev_progress || !r->ev_ping || !r->ev_drain ||
	    !r->ev_sigint)
		return -1;
	struct timeval tv = { (time_t)o->timeout,
			      (suseconds_t)((o->timeout - (double)(time_t)o->timeout) * 1e6) };
	event_add(r->ev_timeout, &tv);
	event_add(r->ev_sigint, NULL);
	if (o->proto == WB_PROTO_MQTT && o->keepalive) {
		struct timeval ktv = { o->keepalive / 2 ? o->keepalive / 2 : 1, 0 };
		event_add(r->ev_ping, &ktv);
	} else if (o->proto == WB_PROTO_AMQP) {
		struct timeval ktv = { AMQP_TICK_S, 0 };
		event_add(r->ev_ping, &ktv);
	}

	r->phase = WB_CONNECTING;
	if (r->total == 0) {
		begin_flow(r);
	} else {
		start_more(r);
	}
	if (r->phase != WB_DONE)
		event_base_dispatch(r->base);
	if (r->progress)
		fprintf(stderr, "\r\033[K");

	/* leave politely: DISCONNECT where the handshake was done */
	for (unsigned i = 0; i < r->total; i++) {
		struct wb_client *c = client_at(r, i);
		if (c->conn.open && c->ready && !c->conn.connecting) {
			r->proto->disconnect(c);
			flush(c);
		}
	}
	return 0;
}

void wb_run_free(struct wb_run *r)
{
	for (unsigned i = 0; r->pubs && r->subs && r->idles && i < r->total; i++) {
		struct wb_client *c = client_at(r, i);
		if (c->conn.open)
			wb_conn_close(&c->conn);
		if (c->ps)
			r->proto->free(c);
		if (c->tick)
			event_free(c->tick);
		wb_track_free(&c->track);
	}
	wb_track_free(&r->group);
	wb_hist_free(&r->lat);
	struct event **evs[] = { &r->ev_timeout, &r->ev_duration, &r->ev_progress, &r->ev_ping,
				 &r->ev_drain, &r->ev_sigint };
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
		if (*evs[i]) {
			event_free(*evs[i]);
			*evs[i] = NULL;
		}
	free(r->pubs);
	free(r->subs);
	free(r->idles);
	free(r->sent);
	if (r->base)
		event_base_free(r->base);
	r->base = NULL;
}
