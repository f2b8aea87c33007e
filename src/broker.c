#include "config.h"
#include "broker.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/alarms.h"
#include "auth/acl.h"
#include "auth/auth.h"
#include "ha/hook.h"
#include "ha/redirect.h"
#include "ha/ha.h"
#include "log.h"
#include "net/conn.h"
#include "net/limits.h"
#include "net/listener.h"
#include "net/protocol.h"
#include "router/router.h"
#include "store/store.h"
#include "util/audit.h"
#include "util/clock.h"
#include "util/memtrim.h"
#include "util/notify.h"

static int make_dirs(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -1;
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
			free(copy);
			return -1;
		}
		*p = '/';
	}
	int rc = mkdir(copy, 0700) < 0 && errno != EEXIST ? -1 : 0;
	free(copy);
	return rc;
}

/* One broker per data directory: a second one on the same files would
 * corrupt the journal. */
static int lock_data_dir(struct broker *b)
{
	const char *dir = b->cfg->data_dir;
	if (make_dirs(dir) < 0) {
		log_error("data dir %s: %s", dir, strerror(errno));
		return -1;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/wharfd.lock", dir);
	b->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (b->lock_fd < 0) {
		log_error("data dir %s: cannot open %s: %s", dir, path, strerror(errno));
		return -1;
	}
	if (flock(b->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("data dir %s is in use by another wharfd", dir);
		return -1;
	}
	return 0;
}

static int activate(struct broker *b, bool promoted);

/* [audit] file: a relative path is the data directory's, as the
 * broker's other files are, whatever directory it was started in. */
static int open_audit(const struct wharf_config *cfg)
{
	const char *file = cfg->audit.file;
	if (!file)
		return 0;
	char path[4096];
	if (file[0] == '/')
		snprintf(path, sizeof(path), "%s", file);
	else
		snprintf(path, sizeof(path), "%s/%s", cfg->data_dir, file);
	if (audit_open(path) < 0) {
		log_error("[audit] file: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	log_info("audit log: %s", path);
	return 0;
}

static void apply_destinations(struct broker *b)
{
	for (const struct dest_config *d = b->cfg->dests; d; d = d->next) {
		enum dest_kind kind = d->kind == POLICY_QUEUE ? DEST_QUEUE : DEST_TOPIC;
		if (d->auto_create >= 0)
			router_set_auto_create(b->router, kind, d->pattern, d->auto_create);
		if (d->policy.set)
			router_set_queue_policy(b->router, d->pattern, &d->policy);
		for (size_t i = 0; i < d->nbind; i++)
			router_bind(b->router, d->pattern, d->bind[i]);
	}
}

/* How often idle queues are swept for expired messages: expiry is checked
 * on every dispatch too, so this bounds only how late an idle queue lets
 * them go. */
#define EXPIRY_SWEEP_MS 1000

/* At most this many destinations are named in one drop report. */
#define DROP_REPORT_LINES 10

struct drop_report {
	unsigned seconds;
	unsigned lines, more;
};

static void log_drops(const char *label, const uint64_t n[DROP_NCAUSES], void *arg)
{
	struct drop_report *rep = arg;
	if (rep->lines == DROP_REPORT_LINES) {
		rep->more++;
		return;
	}
	rep->lines++;
	char causes[256] = "";
	uint64_t total = 0;
	size_t len = 0;
	for (int why = 0; why < DROP_NCAUSES; why++) {
		if (!n[why])
			continue;
		total += n[why];
		int k = snprintf(causes + len, sizeof(causes) - len, "%s%s %" PRIu64, len ? ", " : "",
				 queue_drop_name(why), n[why]);
		if (k > 0 && (size_t)k < sizeof(causes) - len)
			len += (size_t)k;
	}
	log_warn("%s: %" PRIu64 " messages dropped in the last %u s (%s)", label, total,
		 rep->seconds, causes);
}

/* Messages let go undelivered (at most once, by policy, expiry) are named
 * once per drop_log_interval, however many there are. */
static void report_drops(struct broker *b)
{
	unsigned ms = b->cfg->drop_log_interval_ms;
	int64_t now = clock_mono_ms();
	if (!ms || now < b->next_drop_report_ms)
		return;
	struct drop_report rep = { .seconds = ms / 1000 ? ms / 1000 : 1 };
	router_take_drops(b->router, log_drops, &rep);
	if (rep.more)
		log_warn("and %u more destinations dropped messages in the last %u s", rep.more,
			 rep.seconds);
	b->next_drop_report_ms = now + ms;
}

static void expiry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	router_expire(b->router);
	report_drops(b);
	memtrim(false); /* after a big drain, RSS comes down within seconds */
}

/* Tells systemd (Type=notify) where the broker is; a failure is logged
 * and otherwise ignored: the broker serves either way. */
static void tell_systemd(int rc)
{
	if (rc < 0)
		log_warn("cannot notify systemd at $NOTIFY_SOCKET: %s", strerror(errno));
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct broker *b = arg;
	if (sig == SIGHUP) {
		tell_systemd(notify_reloading());
		if (log_reopen() < 0)
			log_error("cannot reopen the log file: %s", strerror(errno));
		else
			log_info("log file reopened");
		if (audit_reopen() < 0)
			log_error("cannot reopen the audit log %s: %s", b->cfg->audit.file,
				  strerror(errno));
		listener_reload_tls(b);
		admin_reload_tls(b->admin);
		auth_reload(b->auth);
		router_set_acl(b->router, auth_acl(b->auth), auth_users(b->auth));
		conn_acl_changed(b);
		tell_systemd(notify_send("READY=1"));
		return;
	}
	log_info("signal %d: shutting down", (int)sig);
	broker_stop(b);
}

int broker_init(struct broker *b, struct wharf_config *cfg)
{
	memset(b, 0, sizeof(*b));
	b->cfg = cfg;
	b->lock_fd = -1;
	TAILQ_INIT(&b->conns);
	b->started_ms = clock_mono_ms();
	if (lock_data_dir(b) < 0 || open_audit(cfg) < 0)
		return -1;
	b->base = event_base_new();
	struct router_options ro = {
		.topic_max_pending = cfg->topic_max_pending,
		.queue_memory_limit = cfg->queue_memory_limit,
		.broker_memory_limit = cfg->broker_memory_limit,
	};
	b->router = router_new(&ro);
	if (!b->base || !b->router) {
		log_error("out of memory");
		return -1;
	}
	apply_destinations(b);
	struct auth_options ao = {
		.users_file = cfg->auth.users_file,
		.failure_delay_ms = cfg->auth.failure_delay_ms,
		.max_failures = cfg->auth.max_failures,
		.window_ms = cfg->auth.failure_window_ms,
		.acl_file = cfg->auth.acl_file,
	};
	char err[512];
	if (!(b->auth = auth_new(b->base, &ao, err, sizeof(err)))) {
		log_error("auth: %s", err);
		return -1;
	}
	if (!(b->limits = limits_new())) {
		log_error("out of memory");
		return -1;
	}
	if (cfg->auth.users_file)
		log_info("auth: users from %s", cfg->auth.users_file);
	router_set_acl(b->router, auth_acl(b->auth), auth_users(b->auth));
	if (cfg->auth.acl_file)
		log_info("acl: %zu rules from %s", acl_count(auth_acl(b->auth)), cfg->auth.acl_file);
	b->sig_term = evsignal_new(b->base, SIGTERM, signal_cb, b);
	b->sig_int = evsignal_new(b->base, SIGINT, signal_cb, b);
	b->sig_hup = evsignal_new(b->base, SIGHUP, signal_cb, b);
	b->expiry_timer = event_new(b->base, -1, EV_PERSIST, expiry_cb, b);
	if (!b->sig_term || !b->sig_int || !b->sig_hup || !b->expiry_timer) {
		log_error("out of memory");
		return -1;
	}
	evsignal_add(b->sig_term, NULL);
	evsignal_add(b->sig_int, NULL);
	evsignal_add(b->sig_hup, NULL);
	struct timeval sweep = { EXPIRY_SWEEP_MS / 1000, EXPIRY_SWEEP_MS % 1000 * 1000 };
	evtimer_add(b->expiry_timer, &sweep);
	signal(SIGPIPE, SIG_IGN);
	if (cfg->ha.role != HA_NONE && !(b->ha = ha_new(b)))
		return -1;
	if (cfg->ha.role == HA_NONE || cfg->ha.role == HA_PRIMARY)
		return activate(b, false);
	return 0;
}

static int open_listeners(struct broker *b)
{
	for (const struct listener_config *l = b->cfg->listeners; l; l = l->next)
		if (listener_open(b, l) < 0)
			return -1;
	return 0;
}

/* `promoted`: after start-up (not a primary's or single node's start). */
static int activate(struct broker *b, bool promoted)
{
	if (b->active)
		return 0;
	struct wharf_config *cfg = b->cfg;
	struct store_options so = {
		.dir = cfg->data_dir,
		.sync = (enum journal_sync)cfg->sync,
		.batch_delay_us = cfg->sync_batch_delay_ms * 1000u,
		.on_corruption = (enum journal_on_corruption)cfg->on_corruption,
		.segment_size = cfg->journal_segment_size,
	};
	char err[512];
	if (store_open(b->base, &so, b->router, &b->store, err, sizeof(err)) < 0) {
		log_error("store: %s", err);
		return -1;
	}
	if (protocols_init(b) < 0) {
		log_error("out of memory");
		return -1;
	}
	memtrim(true); /* replay freed what it read */
	if (!(b->alarms = alarms_new(b))) {
		log_error("out of memory");
		return -1;
	}
	b->active = true;
	if (b->listen_deferred) {
		b->listen_deferred = false;
		if (open_listeners(b) < 0)
			return -1;
	}
	if (promoted && cfg->ha.role != HA_NONE && cfg->ha.on_promote)
		ha_hook_run(b->base, &b->hook, cfg->ha.on_promote, cfg->ha.node_id);
	ha_activated(b->ha);
	return 0;
}

int broker_activate(struct broker *b)
{
	int rc = activate(b, true);
	if (rc == 0)
		tell_systemd(notify_send("STATUS=active"));
	return rc;
}

int broker_listen(struct broker *b)
{
	if (!b->cfg->listeners) {
		log_error("no listeners: give --listen URL or [listener NAME] sections");
		return -1;
	}
	if (!b->active && !b->cfg->ha.standby_listen) {
		log_info("standby: no client listeners until this node is active (standby_listen = false)");
		b->listen_deferred = true;
		return admin_open(b);
	}
	if (open_listeners(b) < 0)
		return -1;
	return admin_open(b);
}

int broker_advertise(struct broker *b, char *buf, size_t len)
{
	const char *text = b->cfg->ha.advertise;
	if (!text)
		return listener_advertise(b, buf, len);
	return snprintf(buf, len, "%s", text) < (int)len ? 0 : -1;
}

void broker_restart(struct broker *b)
{
	fflush(NULL);
	if (b->argv) {
		/* No descriptor of this broker may reach the new program: the
		 * data directory's lock, the listeners' ports. */
		close_range(3, ~0U, 0);
		execv("/proc/self/exe", b->argv);
	}
	_exit(75);
}

int broker_run(struct broker *b)
{
	log_info("wharfd %s started (data dir %s)", PACKAGE_VERSION, b->cfg->data_dir);
	/* The journal is replayed (an active node's) and the listeners are
	 * bound: clients can connect. */
	tell_systemd(notify_send(b->active ? "READY=1\nSTATUS=active" : "READY=1\nSTATUS=standby"));
	return event_base_dispatch(b->base) < 0 ? -1 : 0;
}

/* Waits for connections to drain, checking every 50 ms, until the grace
 * period ends. */
static void stop_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	if (b->nconns == 0 || clock_mono_ms() >= b->stop_deadline_ms) {
		event_base_loopexit(b->base, NULL);
		return;
	}
	struct timeval tv = { 0, 50000 };
	evtimer_add(b->stop_timer, &tv);
}

void broker_stop(struct broker *b)
{
	if (b->stopping)
		return;
	b->stopping = true;
	tell_systemd(notify_send("STOPPING=1"));
	ha_stop(b->ha);
	listener_close_all(b);
	conn_shutdown_all(b);
	b->stop_deadline_ms = clock_mono_ms() + b->cfg->shutdown_grace_ms;
	b->stop_timer = evtimer_new(b->base, stop_poll_cb, b);
	if (!b->stop_timer) {
		event_base_loopexit(b->base, NULL);
		return;
	}
	struct timeval now = { 0, 0 };
	evtimer_add(b->stop_timer, &now);
}

void broker_free(struct broker *b)
{
	ha_free(b->ha); /* first: confirmations held for the standby go out */
	b->ha = NULL;
	listener_close_all(b);
	admin_free(b->admin);
	b->admin = NULL;
	alarms_free(b->alarms);
	b->alarms = NULL;
	if (b->base)
		conn_free_all(b);
	protocols_fini(b);
	auth_free(b->auth); /* its requests went with the connections */
	limits_free(b->limits);
	redirect_free(b->redirect);
	ha_hook_free(b->hook);
	store_close(b->store);
	router_free(b->router);
	if (b->stop_timer)
		event_free(b->stop_timer);
	if (b->expiry_timer)
		event_free(b->expiry_timer);
	if (b->sig_term)
		event_free(b->sig_term);
	if (b->sig_int)
		event_free(b->sig_int);
	if (b->sig_hup)
		event_free(b->sig_hup);
	if (b->base)
		event_base_free(b->base);
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	audit_close();
	config_free(b->cfg);
	b->cfg = NULL;
}
