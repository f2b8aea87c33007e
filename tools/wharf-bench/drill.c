/* wharf-bench --drill: the failover drill of an active/standby pair
 * (docs/ha.md, "The failover drill"; tools/wharf-bench/README.md).
 *
 * For each protocol asked for (STOMP, MQTT QoS 1, AMQP 1.0) one publisher
 * and one subscriber, built on wharf-bench's own protocol clients
 * (stomp.c, mqtt.c, amqp.c), run a paced load against the pair. Each
 * connection starts on the first node and, whenever it fails or the node
 * answers with a redirect (a standby's STOMP ERROR, MQTT CONNACK 0x9C / 3 /
 * 0x88, AMQP close with amqp:connection:redirect), tries the other node
 * after a short pause. A publisher's every connection is
 * an incarnation of its own (the payload's publisher number), its
 * sequence numbers from 0; confirmations (receipts, PUBACKs, AMQP accepted
 * outcomes) come in order, so the confirmed messages of an incarnation are
 * a prefix. The subscriber keeps what it got across its connections (STOMP
 * client-individual acks; MQTT 3.1.1 clean session 0; AMQP a durable queue,
 * each delivery accepted once taken).
 *
 * The events, in turn, with the load running: a planned switch-over (the
 * active asked with wharfctl failover), a link cut (wharfctl link-drop: the
 * active drops its standby as a failed link would and refuses it back for
 * --cut-hold seconds), and a kill -9 of the active (its pid from wharfctl
 * status; only when the node's control address is on this machine).
 * Before each event the drill waits until the active says its standby is
 * in sync; after it, until every publisher has a confirmation from a
 * connection opened after the event (a link cut: from any connection, and
 * the active says its standby is in sync again); then --interval seconds.
 *
 * The report, per client and per event: the time without service (from
 * the last confirmation a connection opened before the event received to
 * the first one a connection opened after it received; a link cut, where
 * clients stay connected: the longest pause between two confirmations
 * until the standby is in sync again), and for the
 * messages confirmed from that event on: confirmed, lost (confirmed and
 * never consumed), duplicated (consumed again), redelivered (marked so by
 * the broker), reconnects and redirects seen.
 *
 * wharfctl is run as a child (--wharfctl, default next to this program or
 * in ../wharfctl/ of a build tree, else on PATH). Every wait is bounded
 * and --timeout ends the drill whatever happens. */
#include "config.h"
#include "wb.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_INC 256        /* connections of one publisher over a drill */
#define MAX_CLIENTS 3      /* one per protocol */
#define MAX_EVENTS 3
#define MAX_PHASE (MAX_EVENTS + 1)
#define TICK_MS 5
#define RETRY_MS 100
#define NS 1000000000ull

enum ev_kind { EV_SWITCH, EV_KILL, EV_CUT };
static const char *const ev_names[] = { "switch-over", "kill -9", "link cut" };

enum stage { ST_WARM, ST_BEFORE, ST_RECOVER, ST_SETTLE, ST_STOP, ST_DRAIN, ST_DONE };

struct dclient;

/* One connection of the drill: wb_client first (the protocols cast). */
struct dconn {
	struct wb_client c;
	struct dclient *dc;
	int node;              /* 0 or 1: the node it tries or is on */
	struct event *retry;
	bool up, quiet;
	uint64_t start_ns;     /* this connection's open */
};

struct dclient {
	const char *name;
	struct wb_opts o;
	struct wb_run r;
	struct sockaddr_in addr[2];
	struct dconn pub, sub;
	/* publisher */
	unsigned inc;                     /* incarnations so far */
	uint64_t inc_start[MAX_INC];
	uint64_t inc_sent[MAX_INC], inc_conf[MAX_INC];
	uint8_t *conf_phase[MAX_INC];     /* per confirmed sequence */
	size_t conf_cap[MAX_INC];
	double credit;
	uint64_t last_pace_ns;
	/* subscriber */
	struct wb_track track;
	/* per phase (0: before the first event) */
	uint64_t dups[MAX_PHASE], redeliv[MAX_PHASE], reconnects[MAX_PHASE],
		redirects[MAX_PHASE];
	/* per event */
	uint64_t last_before[MAX_EVENTS], first_after[MAX_EVENTS];
	uint64_t last_conf_ns;            /* the latest confirmation */
};

struct devent {
	enum ev_kind kind;
	bool done, skipped, failed;
	unsigned phase;            /* the phase it started (1..), 0: not triggered */
	uint64_t t_ns;
	char note[384];
	/* a link cut: the active it was asked of; when its status said the
	 * standby was attached again, in sync again (polled once the drop was
	 * answered: it had happened by then) */
	int node;
	uint64_t back_ns, sync_ns;
};

struct drill {
	struct event_base *base;
	struct event *tick, *sigint;
	uint32_t run_id;
	struct dclient cl[MAX_CLIENTS];
	unsigned ncl;
	char ctl[2][128];          /* repl://HOST:PORT of each node */
	char names[2][64];         /* node_id of each, once seen */
	const char *secret_file, *wharfctl;
	double rate, interval, drain, timeout, warm;
	struct devent ev[MAX_EVENTS];
	unsigned nev, cur;         /* events; the one under way */
	unsigned phase;            /* events triggered so far */
	enum stage stage;
	uint64_t t0, t_stage, t_status;
	pid_t child;               /* wharfctl failover, link-drop or status, running */
	const char *child_cmd;
	int child_out;
	char child_text[2048];
	size_t child_len;
	double cut_hold_s;         /* --cut-hold */
	char cut_hold[16];         /* ... for wharfctl --hold */
	bool timed_out, interrupted;
	bool local[2];             /* the node's control address is on this machine */
};

static struct drill D;

static uint64_t ms_since(uint64_t t)
{
	return (wb_now_ns() - t) / 1000000u;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "drill [%6.2fs] ", (double)(wb_now_ns() - D.t0) / 1e9);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- wharfctl -------------------------------------------------------------- */

static pid_t spawn_ctl(int node, const char *cmd, int *out_fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	/* GNU getopt takes the options after the command too */
	char *argv[] = { (char *)D.wharfctl, "--peer", D.ctl[node], "--secret-file",
			 (char *)D.secret_file, "--timeout", "40", (char *)cmd,
			 strcmp(cmd, "link-drop") ? NULL : "--hold", D.cut_hold, NULL };
	pid_t pid;
	int e = posix_spawnp(&pid, D.wharfctl, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (e) {
		close(p[0]);
		errno = e;
		return -1;
	}
	*out_fd = p[0];
	return pid;
}

/* wharfctl cmd to a node, its output read by child_poll. */
static int spawn_async(int node, const char *cmd)
{
	D.child = spawn_ctl(node, cmd, &D.child_out);
	if (D.child < 0) {
		D.child = 0;
		return -1;
	}
	fcntl(D.child_out, F_SETFL, O_NONBLOCK);
	D.child_len = 0;
	D.child_cmd = cmd;
	return 0;
}

/* wharfctl status of a node, blocking (milliseconds): its text, "" when
 * it does not answer. */
static void status(int node, char *out, size_t cap)
{
	out[0] = '\0';
	int fd;
	pid_t pid = spawn_ctl(node, "status", &fd);
	if (pid < 0)
		return;
	size_t n = 0;
	ssize_t k;
	while (n + 1 < cap && (k = read(fd, out + n, cap - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = '\0';
	close(fd);
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		out[0] = '\0';
}

static bool field(const char *text, const char *key, char *val, size_t cap)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (!strncmp(p, key, kl) && p[kl] == ':' && p[kl + 1] == ' ') {
			const char *v = p + kl + 2, *e = strchr(v, '\n');
			size_t n = e ? (size_t)(e - v) : strlen(v);
			if (n >= cap)
				n = cap - 1;
			memcpy(val, v, n);
			val[n] = '\0';
			return true;
		}
	}
	return false;
}

/* The node that says it is active and has its standby in sync: 0 or 1,
 * -1 when none (yet). *pid: its pid. */
static int active_in_sync(long *pid)
{
	for (int i = 0; i < 2; i++) {
		char text[2048], v[64];
		status(i, text, sizeof text);
		if (field(text, "node_id", v, sizeof v))
			snprintf(D.names[i], sizeof D.names[i], "%s", v);
		if (!field(text, "role", v, sizeof v) || strcmp(v, "active"))
			continue;
		if (!field(text, "in_sync", v, sizeof v) || strcmp(v, "yes"))
			return -1;
		*pid = field(text, "pid", v, sizeof v) ? atol(v) : 0;
		return i;
	}
	return -1;
}

/* ---- connections ------------------------------------------------------------ */

static void conn_on_connect(struct wb_conn *conn);
static size_t conn_on_input(struct wb_conn *conn, const uint8_t *data, size_t len);
static void conn_on_writable(struct wb_conn *conn);
static void conn_on_close(struct wb_conn *conn, const char *why);
static const struct wb_conn_ops drill_ops = { conn_on_connect, conn_on_input, conn_on_writable,
					      conn_on_close };

static struct dconn *dc_of(struct wb_client *c)
{
	return (struct dconn *)c;
}

static void flush(struct dconn *k)
{
	struct dclient *dc = k->dc;
	if (dc->r.proto->flush && k->c.conn.open)
		dc->r.proto->flush(&k->c);
	wb_conn_flush(&k->c.conn);
}

/* A fresh connection to k->node; the publisher's is a new incarnation. */
static void open_conn(struct dconn *k)
{
	struct dclient *dc = k->dc;
	struct wb_client *c = &k->c;
	if (D.stage >= ST_DRAIN && c->role == WB_PUB)
		return;
	if (c->ps)
		dc->r.proto->free(c);
	c->ps = NULL;
	c->ready = c->started = c->done = false;
	c->sent = c->confirmed = c->rejected = 0;
	c->redelivered = false;
	k->up = false;
	if (c->role == WB_PUB) {
		if (dc->inc >= MAX_INC) {
			say("%s: too many reconnects; the publisher stops", dc->name);
			return;
		}
		c->index = dc->inc++;
		dc->inc_start[c->index] = wb_now_ns();
		c->window = 100;
	}
	snprintf(c->id, sizeof c->id, "drill-%s-%s", dc->name, c->role == WB_PUB ? "pub" : "sub");
	if (dc->r.proto->init(c) < 0) {
		say("%s: out of memory", dc->name);
		return;
	}
	k->start_ns = wb_now_ns();
	if (wb_conn_open(&c->conn, D.base, &dc->addr[k->node], &drill_ops, &wb_tcp) < 0) {
		conn_on_close(&c->conn, strerror(errno));
		return;
	}
	c->started = true;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	open_conn(arg);
}

static void lost_conn(struct dconn *k, const char *why, bool redirect)
{
	struct dclient *dc = k->dc;
	if (D.stage == ST_DONE)
		return;
	if (k->c.conn.open)
		wb_conn_close(&k->c.conn);
	if (redirect)
		dc->redirects[D.phase]++;
	if (k->up)
		dc->reconnects[D.phase]++;
	if (k->up || (redirect && !k->quiet))
		say("%s %s: %s on node %d (%s); trying node %d", dc->name,
		    k->c.role == WB_PUB ? "publisher" : "subscriber", redirect ? "redirected" : "lost",
		    k->node + 1, why, (k->node ^ 1) + 1);
	k->quiet = redirect && !k->up; /* one line per outage, not per retry */
	k->up = false;
	k->node ^= 1;
	struct timeval tv = { 0, RETRY_MS * 1000 };
	event_add(k->retry, &tv);
}

static void conn_on_connect(struct wb_conn *conn)
{
	struct wb_client *c = (struct wb_client *)conn;
	dc_of(c)->dc->r.proto->start(c);
	flush(dc_of(c));
}

static size_t conn_on_input(struct wb_conn *conn, const uint8_t *data, size_t len)
{
	struct wb_client *c = (struct wb_client *)conn;
	size_t n = dc_of(c)->dc->r.proto->input(c, data, len);
	if (c->conn.open)
		flush(dc_of(c));
	return n;
}

static void conn_on_writable(struct wb_conn *conn)
{
	wb_conn_set_producing(conn, false);
}

static void conn_on_close(struct wb_conn *conn, const char *why)
{
	lost_conn(dc_of((struct wb_client *)conn), why, false);
}

/* ---- the protocols' callbacks (run.c hands them over) ---------------------- */

void wb_drill_ready(struct wb_client *c)
{
	struct dconn *k = dc_of(c);
	if (c->ready)
		return;
	c->ready = k->up = true;
	if (D.stage > ST_WARM || k->dc->inc > 1)
		say("%s %s: connected to node %d", k->dc->name,
		    c->role == WB_PUB ? "publisher" : "subscriber", k->node + 1);
}

/* A link cut's time without service: clients stay connected, so the
 * longest pause between two confirmations, from the one before the cut to
 * the standby in sync again. */
static void cut_pause(struct dclient *dc, unsigned e, uint64_t prev, uint64_t now)
{
	const struct devent *ev = &D.ev[e];
	if (ev->sync_ns && prev > ev->sync_ns)
		return;
	if (!dc->first_after[e] || now - prev > dc->first_after[e] - dc->last_before[e]) {
		dc->last_before[e] = prev;
		dc->first_after[e] = now;
	}
}

void wb_drill_confirm(struct wb_client *c, uint64_t n, bool rejected)
{
	struct dconn *k = dc_of(c);
	struct dclient *dc = k->dc;
	unsigned inc = c->index;
	if (rejected) {
		c->rejected += n;
		return;
	}
	uint64_t need = c->confirmed + n;
	if (need > dc->conf_cap[inc]) {
		size_t cap = dc->conf_cap[inc] ? dc->conf_cap[inc] : 1024;
		while (cap < need)
			cap *= 2;
		uint8_t *p = realloc(dc->conf_phase[inc], cap);
		if (!p)
			return;
		dc->conf_phase[inc] = p;
		dc->conf_cap[inc] = cap;
	}
	memset(dc->conf_phase[inc] + c->confirmed, (int)D.phase, n);
	c->confirmed += n;
	dc->inc_conf[inc] = c->confirmed;
	uint64_t now = wb_now_ns(), prev = dc->last_conf_ns;
	dc->last_conf_ns = now;
	for (unsigned e = 0; e < D.nev; e++) {
		if (!D.ev[e].phase)
			continue;
		if (D.ev[e].kind == EV_CUT) {
			cut_pause(dc, e, prev, now);
			continue;
		}
		if (dc->inc_start[inc] < D.ev[e].t_ns) {
			if (now > dc->last_before[e])
				dc->last_before[e] = now;
		} else if (!dc->first_after[e]) {
			dc->first_after[e] = now;
		}
	}
}

void wb_drill_message(struct wb_client *c, const uint8_t *payload, size_t len)
{
	struct dclient *dc = dc_of(c)->dc;
	struct wb_msginfo mi;
	if (wb_payload_check(payload, len, dc->o.size, D.run_id, &mi) != WB_MSG_OK)
		return;
	if (c->redelivered)
		dc->redeliv[D.phase]++;
	c->redelivered = false;
	if (wb_track_record(&dc->track, mi.pub, mi.seq) == WB_SEQ_DUP)
		dc->dups[D.phase]++;
}

void wb_drill_fail(struct wb_client *c, const char *msg)
{
	/* A standby's answer: STOMP ERROR "standby: ...", MQTT CONNACK
	 * 0x9C (use another server), 3 (server unavailable), 0x88, AMQP
	 * close with amqp:connection:redirect. */
	bool redirect = strstr(msg, "standby") || strstr(msg, "CONNACK: 0x9c") ||
			strstr(msg, "CONNACK: 0x03") || strstr(msg, "CONNACK: 0x88") ||
			strstr(msg, "amqp:connection:redirect");
	lost_conn(dc_of(c), msg, redirect);
}

/* ---- load ------------------------------------------------------------------- */

static void pace(struct dclient *dc, uint64_t now)
{
	struct wb_client *c = &dc->pub.c;
	double dt = (double)(now - dc->last_pace_ns) / 1e9;
	dc->last_pace_ns = now;
	if (D.stage >= ST_STOP || !c->ready || !c->conn.open) {
		dc->credit = 0;
		return;
	}
	dc->credit += dt * D.rate;
	if (dc->credit > 50)
		dc->credit = 50;
	while (dc->credit >= 1 && c->sent - c->confirmed - c->rejected < c->window &&
	       dc->r.proto->can_publish(c)) {
		if (dc->r.proto->publish(c, c->sent, now, false) < 0 || !c->conn.open)
			return;
		c->sent++;
		dc->inc_sent[c->index] = c->sent;
		dc->credit -= 1;
	}
	flush(&dc->pub);
}

/* ---- events ----------------------------------------------------------------- */

static bool all_served_since(unsigned e)
{
	for (unsigned i = 0; i < D.ncl; i++)
		if (!D.cl[i].first_after[e])
			return false;
	return true;
}

static void set_stage(enum stage s)
{
	D.stage = s;
	D.t_stage = wb_now_ns();
}

static void trigger(struct devent *ev)
{
	long pid = 0;
	int a = active_in_sync(&pid);
	if (a < 0)
		return; /* not yet: asked again on the next status poll */
	const char *an = D.names[a][0] ? D.names[a] : a ? "node 2" : "node 1";
	if (ev->kind == EV_SWITCH || ev->kind == EV_CUT) {
		const char *cmd = ev->kind == EV_SWITCH ? "failover" : "link-drop";
		ev->node = a;
		if (spawn_async(a, cmd) < 0) {
			snprintf(ev->note, sizeof ev->note, "cannot run %s: %s", D.wharfctl,
				 strerror(errno));
			ev->failed = true;
		} else {
			snprintf(ev->note, sizeof ev->note, "wharfctl %s to %s (the active)", cmd, an);
		}
	} else if (ev->kind == EV_KILL) {
		if (!D.local[a] || pid <= 0) {
			ev->skipped = true;
			snprintf(ev->note, sizeof ev->note, "skipped: %s is not on this machine (or gave "
				 "no pid)", an);
		} else if (kill((pid_t)pid, SIGKILL) < 0) {
			ev->skipped = true;
			snprintf(ev->note, sizeof ev->note, "skipped: kill %ld: %s", pid, strerror(errno));
		} else {
			snprintf(ev->note, sizeof ev->note, "kill -9 of %s (pid %ld), the active; it "
				 "stays down (restart it to make the pair whole)", an, pid);
		}
	}
	ev->t_ns = wb_now_ns();
	say("event %u: %s: %s", D.cur + 1, ev_names[ev->kind], ev->note);
	if (ev->skipped || ev->failed) {
		ev->done = true;
		D.cur++;
		set_stage(ST_BEFORE);
		return;
	}
	ev->phase = ++D.phase;
	/* the last confirmation before; old connections may still add some */
	for (unsigned i = 0; i < D.ncl; i++)
		D.cl[i].last_before[D.cur] = D.cl[i].last_conf_ns;
	set_stage(ST_RECOVER);
}

/* A link cut under way: the cut node's status, as it answered ("" when it
 * did not). Done once it says its standby is in sync again. */
static void cut_status(struct devent *ev, const char *text)
{
	char role[16] = "", conn[8] = "", sync[8] = "", degr[8] = "";
	field(text, "role", role, sizeof role);
	field(text, "connected", conn, sizeof conn);
	field(text, "in_sync", sync, sizeof sync);
	field(text, "degraded", degr, sizeof degr);
	uint64_t now = wb_now_ns();
	if (strcmp(role, "active"))
		return; /* asked again; bounded by ST_RECOVER's wait */
	if (!strcmp(conn, "yes") && !ev->back_ns)
		ev->back_ns = now;
	if (ev->back_ns && !strcmp(sync, "yes") && !strcmp(degr, "no")) {
		ev->sync_ns = now;
		size_t n = strlen(ev->note);
		snprintf(ev->note + n, sizeof ev->note - n, "; degraded for %.2f s: standby back after "
			 "%.2f s, in sync again after %.2f s", (double)(ev->sync_ns - ev->t_ns) / 1e9,
			 (double)(ev->back_ns - ev->t_ns) / 1e9, (double)(ev->sync_ns - ev->t_ns) / 1e9);
		say("event %u: link cut: standby in sync again after %.2f s", D.cur + 1,
		    (double)(ev->sync_ns - ev->t_ns) / 1e9);
	}
}

static void child_poll(void)
{
	if (D.child <= 0)
		return;
	ssize_t k;
	while (D.child_len + 1 < sizeof D.child_text &&
	       (k = read(D.child_out, D.child_text + D.child_len,
			 sizeof D.child_text - 1 - D.child_len)) > 0)
		D.child_len += (size_t)k;
	D.child_text[D.child_len] = '\0';
	int st;
	if (waitpid(D.child, &st, WNOHANG) != D.child)
		return;
	close(D.child_out);
	D.child = 0;
	struct devent *ev = &D.ev[D.cur];
	bool ok = WIFEXITED(st) && !WEXITSTATUS(st);
	if (!strcmp(D.child_cmd, "status")) {
		cut_status(ev, ok ? D.child_text : "");
		return;
	}
	char *nl = strchr(D.child_text, '\n');
	if (nl)
		*nl = '\0';
	say("wharfctl %s: %s", D.child_cmd, D.child_text);
	if (!ok) {
		ev->failed = true;
		snprintf(ev->note, sizeof ev->note, "refused: %.200s", D.child_text);
	} else {
		snprintf(ev->note, sizeof ev->note, "%.200s", D.child_text);
	}
}

static bool drained(void)
{
	for (unsigned i = 0; i < D.ncl; i++) {
		struct dclient *dc = &D.cl[i];
		for (unsigned inc = 0; inc < dc->inc; inc++)
			for (uint64_t s = 0; s < dc->inc_conf[inc]; s++) {
				struct wb_seqset *ss = &dc->track.pub[inc];
				if (s / 64 >= ss->nwords || !(ss->bits[s / 64] >> (s % 64) & 1))
					return false;
			}
	}
	return true;
}

static uint64_t track_total(void)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < D.ncl; i++)
		n += D.cl[i].track.deliveries;
	return n;
}

/* A link cut asked and answered, its standby not in sync again yet. */
static bool cut_pending(const struct devent *ev)
{
	return ev->kind == EV_CUT && !ev->failed && !ev->sync_ns;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = wb_now_ns();
	static uint64_t last_deliveries, t_progress;
	for (unsigned i = 0; i < D.ncl; i++)
		pace(&D.cl[i], now);
	child_poll();
	if ((now - D.t0) / 1e9 > D.timeout) {
		D.timed_out = true;
		say("--timeout %.0f s reached", D.timeout);
		set_stage(ST_DONE);
	}
	bool poll_status = ms_since(D.t_status) >= 300;
	switch (D.stage) {
	case ST_WARM: {
		bool ok = true;
		for (unsigned i = 0; i < D.ncl; i++)
			ok = ok && D.cl[i].pub.c.confirmed >= 20 && D.cl[i].sub.up;
		if (ok && ms_since(D.t_stage) >= D.warm * 1000)
			set_stage(ST_BEFORE);
		break;
	}
	case ST_BEFORE:
		if (D.cur >= D.nev) {
			set_stage(ST_STOP);
			break;
		}
		if (poll_status) {
			D.t_status = now;
			trigger(&D.ev[D.cur]);
			if (D.stage == ST_BEFORE && ms_since(D.t_stage) > 30000) {
				struct devent *ev = &D.ev[D.cur];
				ev->failed = ev->done = true;
				ev->t_ns = now;
				snprintf(ev->note, sizeof ev->note, "no active node with its standby in "
					 "sync within 30 s: not triggered");
				say("event %u: %s", D.cur + 1, ev->note);
				D.cur++;
				set_stage(ST_BEFORE);
			}
		}
		break;
	case ST_RECOVER:
		if (cut_pending(&D.ev[D.cur])) {
			if (!D.child && ms_since(D.t_status) >= 100) {
				D.t_status = now;
				spawn_async(D.ev[D.cur].node, "status");
			}
			if (ms_since(D.t_stage) > 30000 + D.cut_hold_s * 1000) {
				D.ev[D.cur].failed = true;
				say("event %u: the standby not in sync again within 30 s", D.cur + 1);
				set_stage(ST_SETTLE);
			}
		} else if (D.ev[D.cur].failed && !D.child) {
			say("event %u: %s", D.cur + 1, D.ev[D.cur].note);
			set_stage(ST_SETTLE);
		} else if (all_served_since(D.cur) && !D.child) {
			say("event %u: service back for every client", D.cur + 1);
			set_stage(ST_SETTLE);
		} else if (ms_since(D.t_stage) > 30000) {
			D.ev[D.cur].failed = true;
			say("event %u: no service within 30 s", D.cur + 1);
			set_stage(ST_SETTLE);
		}
		break;
	case ST_SETTLE:
		if (ms_since(D.t_stage) >= D.interval * 1000) {
			D.ev[D.cur].done = true;
			D.cur++;
			set_stage(ST_BEFORE);
		}
		break;
	case ST_STOP: {
		/* the publishers' last messages confirmed, or a second passed */
		bool idle = true;
		for (unsigned i = 0; i < D.ncl; i++) {
			struct wb_client *c = &D.cl[i].pub.c;
			idle = idle && (!c->conn.open || c->confirmed + c->rejected >= c->sent);
		}
		if (idle || ms_since(D.t_stage) >= 2000) {
			say("load stopped; draining the subscribers");
			last_deliveries = track_total();
			t_progress = now;
			set_stage(ST_DRAIN);
		}
		break;
	}
	case ST_DRAIN:
		if (track_total() != last_deliveries) {
			last_deliveries = track_total();
			t_progress = now;
		}
		if ((drained() && ms_since(t_progress) >= 500) ||
		    (now - t_progress) / 1e9 >= D.drain)
			set_stage(ST_DONE);
		break;
	case ST_DONE:
		break;
	}
	if (D.stage == ST_DONE)
		event_base_loopbreak(D.base);
}

static void sigint_cb(evutil_socket_t fd, short what, void *arg)
{
	D.interrupted = true;
	set_stage(ST_DONE);
	event_base_loopbreak(D.base);
}

/* ---- report ----------------------------------------------------------------- */

static int report(void)
{
	int status = 0;
	printf("failover drill: %u client%s at %.0f msg/s each, %u event%s\n", D.ncl,
	       D.ncl == 1 ? "" : "s", D.rate, D.nev, D.nev == 1 ? "" : "s");
	for (unsigned e = 0; e < D.nev; e++) {
		struct devent *ev = &D.ev[e];
		printf("  event %u: %-11s at %6.2f s: %s%s\n", e + 1, ev_names[ev->kind],
		       ev->t_ns ? (double)(ev->t_ns - D.t0) / 1e9 : 0.0, ev->note,
		       ev->failed ? " [FAILED]" : "");
		if (ev->failed)
			status = 1;
	}
	for (unsigned i = 0; i < D.ncl; i++) {
		struct dclient *dc = &D.cl[i];
		uint64_t conf[MAX_PHASE] = { 0 }, lost[MAX_PHASE] = { 0 };
		for (unsigned inc = 0; inc < dc->inc; inc++)
			for (uint64_t s = 0; s < dc->inc_conf[inc]; s++) {
				unsigned ph = dc->conf_phase[inc][s];
				conf[ph]++;
				struct wb_seqset *ss = &dc->track.pub[inc];
				if (s / 64 >= ss->nwords || !(ss->bits[s / 64] >> (s % 64) & 1))
					lost[ph]++;
			}
		printf("\nclient %s (%s):\n", dc->name,
		       dc->o.proto == WB_PROTO_MQTT   ? "MQTT 3.1.1 QoS 1, clean session 0"
		       : dc->o.proto == WB_PROTO_AMQP ? "AMQP 1.0, durable queue, accepted outcomes"
						       : "STOMP 1.2, persistent queue, receipts");
		printf("  %-24s %15s %10s %6s %11s %12s %11s %10s\n", "from", "without service",
		       "confirmed", "lost", "duplicated", "redelivered", "reconnects", "redirects");
		uint64_t tc = 0, tl = 0, td = 0, tr = 0, trc = 0, trd = 0;
		for (unsigned ph = 0; ph <= D.phase && ph < MAX_PHASE; ph++) {
			char what[40], gap[24] = "-";
			unsigned e = 0;
			if (!ph) {
				snprintf(what, sizeof what, "start");
			} else {
				for (e = 0; e + 1 < D.nev && D.ev[e].phase != ph; e++)
					;
				snprintf(what, sizeof what, "event %u (%s)", e + 1, ev_names[D.ev[e].kind]);
				if (dc->first_after[e] && dc->last_before[e])
					snprintf(gap, sizeof gap, "%.3f s",
						 (double)(dc->first_after[e] - dc->last_before[e]) / 1e9);
				else if (dc->first_after[e])
					snprintf(gap, sizeof gap, "%.3f s*",
						 (double)(dc->first_after[e] - D.ev[e].t_ns) / 1e9);
				else
					snprintf(gap, sizeof gap, "no service");
			}
			printf("  %-24s %15s %10" PRIu64 " %6" PRIu64 " %11" PRIu64 " %12" PRIu64
			       " %11" PRIu64 " %10" PRIu64 "\n",
			       what, gap, conf[ph], lost[ph], dc->dups[ph], dc->redeliv[ph],
			       dc->reconnects[ph], dc->redirects[ph]);
			tc += conf[ph];
			tl += lost[ph];
			td += dc->dups[ph];
			tr += dc->redeliv[ph];
			trc += dc->reconnects[ph];
			trd += dc->redirects[ph];
		}
		printf("  %-24s %15s %10" PRIu64 " %6" PRIu64 " %11" PRIu64 " %12" PRIu64 " %11" PRIu64
		       " %10" PRIu64 "\n",
		       "total", "", tc, tl, td, tr, trc, trd);
		if (tl)
			status = 1;
	}
	printf("\nwithout service: from the last confirmation on a connection opened before the "
	       "event\nto the first on one opened after it (* from the event itself); a link cut: "
	       "the longest\npause between confirmations until the standby is in sync again. lost: "
	       "confirmed, never\nconsumed. duplicated: consumed again. redelivered: marked so by "
	       "the broker.\n");
	if (D.timed_out || D.interrupted)
		status = 3;
	printf("result: %s\n", status == 0 ? "PASS (nothing confirmed was lost)"
			       : status == 3 ? "INCOMPLETE (timeout or interrupted)"
					     : "FAIL");
	return status;
}

/* ---- set-up ----------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: wharf-bench --drill --ctl repl://HOST:PORT,repl://HOST:PORT --secret-file FILE\n"
		"                   [--stomp HOST:PORT,HOST:PORT] [--mqtt HOST:PORT,HOST:PORT]\n"
		"                   [--amqp HOST:PORT,HOST:PORT]\n"
		"                   [--events switchover,cut,kill] [--rate N] [--interval S]\n"
		"                   [--warm S] [--drain S] [--timeout S] [--cut-hold S]\n"
		"                   [--wharfctl PATH]\n"
		"\n"
		"  --ctl          the two nodes' replication links ([ha] listen), node 1 first\n"
		"  --stomp/--mqtt/--amqp  the same two nodes' client addresses (at least one)\n"
		"  --events       in this order (default switchover,cut,kill; kill only on this machine,\n"
		"                 and the killed node stays down: no event after it has a standby)\n"
		"  --cut-hold     the link cut keeps the standby out this long (2)\n"
		"  --rate         messages/s per publisher (200)      --interval  seconds between events (3)\n"
		"  --warm         seconds of load before the first (2) --drain     idle seconds to stop (5)\n"
		"  --timeout      the whole drill at most (180)\n"
		"Exit status: 0 every event passed with nothing lost; 1 loss or a failed event;\n"
		"2 usage; 3 timeout.\n");
}

static int resolve(const char *hp, struct sockaddr_in *sa, char *host, size_t hcap)
{
	const char *colon = strrchr(hp, ':');
	if (!colon || colon == hp || (size_t)(colon - hp) >= hcap)
		return -1;
	memcpy(host, hp, (size_t)(colon - hp));
	host[colon - hp] = '\0';
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
	if (getaddrinfo(host, colon + 1, &hints, &ai))
		return -1;
	memcpy(sa, ai->ai_addr, sizeof *sa);
	freeaddrinfo(ai);
	return 0;
}

/* Both nodes' addresses; host: the first one's name. */
static int pair_of(const char *arg, struct sockaddr_in sa[2], char *host, size_t hcap)
{
	char a[256], other[128];
	snprintf(a, sizeof a, "%s", arg);
	char *comma = strchr(a, ',');
	if (!comma)
		return -1;
	*comma = '\0';
	return resolve(a, &sa[0], host, hcap) < 0 ||
			       resolve(comma + 1, &sa[1], other, sizeof other) < 0
		       ? -1
		       : 0;
}

static bool is_local(const char *url)
{
	const char *h = strstr(url, "://");
	h = h ? h + 3 : url;
	return !strncmp(h, "127.", 4) || !strncmp(h, "localhost:", 10) || !strncmp(h, "[::1]", 5);
}

static const char *find_wharfctl(const char *argv0)
{
	static char path[4096];
	const char *slash = strrchr(argv0, '/');
	if (slash) {
		int n = (int)(slash - argv0);
		snprintf(path, sizeof path, "%.*s/wharfctl", n, argv0);
		if (!access(path, X_OK))
			return path;
		snprintf(path, sizeof path, "%.*s/../wharfctl/wharfctl", n, argv0);
		if (!access(path, X_OK))
			return path;
	}
	return "wharfctl";
}

static int add_client(const char *name, enum wb_proto_id proto, const char *arg)
{
	struct dclient *dc = &D.cl[D.ncl];
	memset(dc, 0, sizeof *dc);
	dc->name = name;
	struct wb_opts *o = &dc->o;
	if (pair_of(arg, dc->addr, o->host, sizeof o->host) < 0) {
		fprintf(stderr, "wharf-bench: --%s '%s' is not HOST:PORT,HOST:PORT\n", name, arg);
		return -1;
	}
	o->proto = proto;
	o->tp = WB_TP_TCP;
	o->publishers = o->subscribers = 1;
	o->size = 64;
	o->qos = 1;
	o->mqtt_version = 4;
	o->keepalive = 0;
	o->persistent = true;
	o->keep_session = true;
	o->kind = proto == WB_PROTO_MQTT ? WB_TOPIC : WB_QUEUE;
	/* a queue of its own per protocol: the subscribers must not share */
	snprintf(o->dest, sizeof o->dest, "%s",
		 proto == WB_PROTO_STOMP  ? "wharf.drill"
		 : proto == WB_PROTO_AMQP ? "wharf.drill-amqp"
					  : "wharf/drill");
	o->window = 100;
	o->receipt_every = 1;
	o->prefetch = 100;
	o->ack = WB_ACK_CLIENT_INDIVIDUAL;
	snprintf(o->client_prefix, sizeof o->client_prefix, "drill");
	dc->r.o = o;
	dc->r.proto = proto == WB_PROTO_STOMP ? &wb_stomp : proto == WB_PROTO_AMQP ? &wb_amqp : &wb_mqtt;
	dc->r.tp = &wb_tcp;
	dc->r.drill = (struct wb_drill *)&D;
	D.ncl++;
	return 0;
}

int wb_drill_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "drill", no_argument, NULL, 'D' },
		{ "ctl", required_argument, NULL, 'c' },
		{ "secret-file", required_argument, NULL, 's' },
		{ "stomp", required_argument, NULL, 'S' },
		{ "mqtt", required_argument, NULL, 'M' },
		{ "amqp", required_argument, NULL, 'A' },
		{ "events", required_argument, NULL, 'e' },
		{ "rate", required_argument, NULL, 'r' },
		{ "interval", required_argument, NULL, 'i' },
		{ "warm", required_argument, NULL, 'w' },
		{ "drain", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 't' },
		{ "wharfctl", required_argument, NULL, 'x' },
		{ "cut-hold", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	memset(&D, 0, sizeof D);
	D.rate = 200;
	D.interval = 3;
	D.warm = 2;
	D.drain = 5;
	D.timeout = 180;
	D.cut_hold_s = 2;
	const char *ctl = NULL, *events = "switchover,cut,kill", *stomp = NULL, *mqtt = NULL,
		   *amqp = NULL;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'D': break;
		case 'c': ctl = optarg; break;
		case 's': D.secret_file = optarg; break;
		case 'S': stomp = optarg; break;
		case 'M': mqtt = optarg; break;
		case 'A': amqp = optarg; break;
		case 'e': events = optarg; break;
		case 'r': D.rate = atof(optarg); break;
		case 'i': D.interval = atof(optarg); break;
		case 'w': D.warm = atof(optarg); break;
		case 'd': D.drain = atof(optarg); break;
		case 't': D.timeout = atof(optarg); break;
		case 'x': D.wharfctl = optarg; break;
		case 'H': D.cut_hold_s = atof(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!ctl || !D.secret_file || (!stomp && !mqtt && !amqp) || optind != argc || D.rate <= 0 ||
	    D.timeout <= 0 || D.cut_hold_s < 0 || D.cut_hold_s > 600) {
		usage(stderr);
		return 2;
	}
	snprintf(D.cut_hold, sizeof D.cut_hold, "%.3f", D.cut_hold_s);
	const char *comma = strchr(ctl, ',');
	if (!comma || (size_t)(comma - ctl) >= sizeof D.ctl[0] || strlen(comma + 1) >= sizeof D.ctl[1]) {
		fprintf(stderr, "wharf-bench: --ctl needs both nodes: repl://A:P,repl://B:P\n");
		return 2;
	}
	snprintf(D.ctl[0], sizeof D.ctl[0], "%.*s", (int)(comma - ctl), ctl);
	snprintf(D.ctl[1], sizeof D.ctl[1], "%s", comma + 1);
	for (int i = 0; i < 2; i++)
		D.local[i] = is_local(D.ctl[i]);
	char evs[128];
	snprintf(evs, sizeof evs, "%s", events);
	for (char *save, *t = strtok_r(evs, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		enum ev_kind k;
		if (!strcmp(t, "switchover"))
			k = EV_SWITCH;
		else if (!strcmp(t, "kill"))
			k = EV_KILL;
		else if (!strcmp(t, "cut"))
			k = EV_CUT;
		else {
			fprintf(stderr, "wharf-bench: --events: '%s' is not switchover, kill or cut\n", t);
			return 2;
		}
		if (D.nev == MAX_EVENTS) {
			fprintf(stderr, "wharf-bench: --events: at most %d\n", MAX_EVENTS);
			return 2;
		}
		D.ev[D.nev++].kind = k;
	}
	if ((stomp && add_client("stomp", WB_PROTO_STOMP, stomp) < 0) ||
	    (mqtt && add_client("mqtt", WB_PROTO_MQTT, mqtt) < 0) ||
	    (amqp && add_client("amqp", WB_PROTO_AMQP, amqp) < 0))
		return 2;
	if (!D.wharfctl)
		D.wharfctl = find_wharfctl(argv[0]);
	signal(SIGPIPE, SIG_IGN);

	D.base = event_base_new();
	if (!D.base || wb_payload_init(64) < 0)
		return 4;
	D.t0 = wb_now_ns();
	D.run_id = (uint32_t)(D.t0 ^ (D.t0 >> 32) ^ ((uint64_t)getpid() << 16));
	for (unsigned i = 0; i < D.ncl; i++) {
		struct dclient *dc = &D.cl[i];
		dc->r.base = D.base;
		dc->r.run_id = D.run_id;
		if (wb_track_init(&dc->track, MAX_INC, 1u << 14) < 0)
			return 4;
		struct dconn *ks[2] = { &dc->pub, &dc->sub };
		for (int j = 0; j < 2; j++) {
			struct dconn *k = ks[j];
			k->dc = dc;
			k->c.conn.fd = -1;
			k->c.run = &dc->r;
			k->c.role = j ? WB_SUB : WB_PUB;
			k->retry = evtimer_new(D.base, retry_cb, k);
			if (!k->retry)
				return 4;
		}
		dc->last_pace_ns = D.t0;
	}
	D.tick = event_new(D.base, -1, EV_PERSIST, tick_cb, NULL);
	D.sigint = evsignal_new(D.base, SIGINT, sigint_cb, NULL);
	struct timeval tv = { 0, TICK_MS * 1000 };
	if (!D.tick || !D.sigint || event_add(D.tick, &tv) < 0 || event_add(D.sigint, NULL) < 0)
		return 4;
	say("%u client(s), control %s and %s, wharfctl %s", D.ncl, D.ctl[0], D.ctl[1], D.wharfctl);
	set_stage(ST_WARM);
	/* subscribers first, so that nothing published goes unseen */
	for (unsigned i = 0; i < D.ncl; i++)
		open_conn(&D.cl[i].sub);
	for (unsigned i = 0; i < D.ncl; i++)
		open_conn(&D.cl[i].pub);
	event_base_dispatch(D.base);
	if (D.child > 0) {
		kill(D.child, SIGTERM);
		waitpid(D.child, NULL, 0);
	}
	int st = report();
	fflush(stdout);
	for (unsigned i = 0; i < D.ncl; i++) {
		struct dclient *dc = &D.cl[i];
		struct dconn *ks[2] = { &dc->pub, &dc->sub };
		for (int j = 0; j < 2; j++) {
			if (ks[j]->c.conn.open) {
				if (ks[j]->c.ready) {
					dc->r.proto->disconnect(&ks[j]->c);
					flush(ks[j]);
				}
				wb_conn_close(&ks[j]->c.conn);
			}
			if (ks[j]->c.ps)
				dc->r.proto->free(&ks[j]->c);
			event_free(ks[j]->retry);
		}
		for (unsigned inc = 0; inc < dc->inc; inc++)
			free(dc->conf_phase[inc]);
		wb_track_free(&dc->track);
	}
	event_free(D.tick);
	event_free(D.sigint);
	event_base_free(D.base);
	return st;
}
