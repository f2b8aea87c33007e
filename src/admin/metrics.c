/* GET /metrics: the Prometheus text exposition format 0.0.4. Each family
 * gets its HELP and TYPE lines, then its samples; names follow Prometheus
 * conventions (wharf_ prefix, base units, _total for counters). */
#include "config.h"
#include "admin/internal.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin/alarms.h"
#include "broker.h"
#include "ha/ha.h"
#include "net/conn.h"
#include "net/protocol.h"
#include "router/router.h"
#include "store/journal.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/utf8.h"

#define OTHER "(other)"

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u(struct evbuffer *out, const char *name, uint64_t v)
{
	evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, v);
}

/* A label value as the format wants it: \ " and newline escaped, and
 * bytes of a name that is not UTF-8 shown as '?'. */
static void label_value(struct evbuffer *out, const char *v)
{
	bool utf8 = utf8_valid(v, strlen(v));
	for (const char *p = v; *p; p++) {
		if (!utf8 && (unsigned char)*p >= 0x80)
			evbuffer_add(out, "?", 1);
		else if (*p == '\\' || *p == '"')
			evbuffer_add_printf(out, "\\%c", *p);
		else if (*p == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, p, 1);
	}
}

static void sample_label(struct evbuffer *out, const char *name, const char *label,
			 const char *value, const char *number)
{
	evbuffer_add_printf(out, "%s{%s=\"", name, label);
	label_value(out, value);
	evbuffer_add_printf(out, "\"} %s\n", number);
}

/* A histogram family: cumulative buckets, +Inf, _sum and _count. */
static void histogram(struct evbuffer *out, const char *name, const char *help,
		      const struct hist *h)
{
	family(out, name, "histogram", help);
	uint64_t sum = 0;
	for (int i = 0; i <= HIST_NBOUNDS; i++) {
		sum += h->n[i];
		if (i < HIST_NBOUNDS)
			evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
					    hist_bounds[i], sum);
		else
			evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, sum);
	}
	evbuffer_add_printf(out, "%s_sum %.9g\n%s_count %" PRIu64 "\n", name, h->sum, name,
			    h->count);
}

/* ---- per protocol ----------------------------------------------------------- */

struct proto_sums {
	struct conn_counts n[PROTOCOLS_MAX];
	unsigned long long open[PROTOCOLS_MAX];
};

static void sum_conn(struct conn *c, void *arg)
{
	struct proto_sums *s = arg;
	const char *proto = conn_protocol(c);
	for (size_t i = 0; i < PROTOCOLS_MAX && protocols[i]; i++) {
		if (strcmp(protocols[i]->name, proto))
			continue;
		const struct conn_counts *n = conn_counts(c);
		s->n[i].msgs_in += n->msgs_in;
		s->n[i].msgs_out += n->msgs_out;
		s->n[i].bytes_in += n->bytes_in;
		s->n[i].bytes_out += n->bytes_out;
		s->open[i]++;
	}
}

static void per_protocol(struct evbuffer *out, struct broker *b)
{
	struct proto_sums s = { 0 };
	conn_each(b, sum_conn, &s);
	static const struct {
		const char *name, *type, *help;
	} fams[] = {
		{ "wharf_connections", "gauge", "Open client connections." },
		{ "wharf_connections_opened_total", "counter", "Client connections accepted." },
		{ "wharf_messages_received_total", "counter", "Messages published by clients." },
		{ "wharf_messages_sent_total", "counter", "Messages delivered to clients." },
		{ "wharf_received_bytes_total", "counter",
		  "Bytes read from clients (after TLS, WebSocket framing included)." },
		{ "wharf_sent_bytes_total", "counter",
		  "Bytes queued to clients (before TLS, WebSocket framing included)." },
	};
	for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
		family(out, fams[f].name, fams[f].type, fams[f].help);
		for (size_t i = 0; i < PROTOCOLS_MAX && protocols[i]; i++) {
			const struct conn_counts *g = &b->conns_gone[i], *n = &s.n[i];
			unsigned long long v[] = {
				s.open[i],
				s.open[i] + b->conns_closed[i],
				g->msgs_in + n->msgs_in,
				g->msgs_out + n->msgs_out,
				g->bytes_in + n->bytes_in,
				g->bytes_out + n->bytes_out,
			};
			char num[32];
			snprintf(num, sizeof(num), "%llu", v[f]);
			sample_label(out, fams[f].name, "protocol", protocols[i]->name, num);
		}
	}
}

/* ---- per destination, capped ------------------------------------------------ */

struct qfam {
	const char *name, *type, *help;
	double (*value)(const struct queue *q, int64_t now);
	bool max; /* the "other" series is the largest, not the sum */
};

static double q_depth(const struct queue *q, int64_t now) { return (double)queue_depth(q); }
static double q_unacked(const struct queue *q, int64_t now) { return (double)queue_unacked(q); }
static double q_paged(const struct queue *q, int64_t now) { return (double)queue_paged(q); }
static double q_bytes(const struct queue *q, int64_t now) { return (double)queue_bytes(q); }
static double q_consumers(const struct queue *q, int64_t now)
{
	return (double)queue_consumer_count(q);
}
static double q_enqueued(const struct queue *q, int64_t now)
{
	return (double)queue_stats(q)->enqueued;
}
static double q_acked(const struct queue *q, int64_t now) { return (double)queue_stats(q)->acked; }
static double q_dropped(const struct queue *q, int64_t now)
{
	return (double)queue_stats(q)->dropped;
}
static double q_age(const struct queue *q, int64_t now)
{
	int64_t oldest = queue_oldest_ms(q);
	return oldest && now > oldest ? (double)(now - oldest) / 1000.0 : 0.0;
}

static const struct qfam qfams[] = {
	{ "wharf_queue_messages", "gauge", "Messages waiting in the queue (paged included).",
	  q_depth, false },
	{ "wharf_queue_unacked_messages", "gauge", "Messages out to consumers, unacknowledged.",
	  q_unacked, false },
	{ "wharf_queue_paged_messages", "gauge", "Waiting messages kept on disk (paging).", q_paged,
	  false },
	{ "wharf_queue_bytes", "gauge", "Bodies of the waiting messages.", q_bytes, false },
	{ "wharf_queue_consumers", "gauge", "Consumers of the queue.", q_consumers, false },
	{ "wharf_queue_enqueued_messages_total", "counter", "Messages put in the queue.",
	  q_enqueued, false },
	{ "wharf_queue_dequeued_messages_total", "counter", "Messages consumed (acknowledged).",
	  q_acked, false },
	{ "wharf_queue_dropped_messages_total", "counter",
	  "Messages let go undelivered (docs/operations.md, Dropped messages).", q_dropped, false },
	{ "wharf_queue_oldest_message_age_seconds", "gauge",
	  "Age of the oldest waiting message in memory; 0 when none waits.", q_age, true },
};

int admin_queue_sample(const char *family, const struct queue *q, int64_t now, double *v)
{
	for (size_t f = 0; f < sizeof(qfams) / sizeof(qfams[0]); f++) {
		if (!strcmp(qfams[f].name, family)) {
			*v = qfams[f].value(q, now);
			return 0;
		}
	}
	return -1;
}

/* Returns how many queues went into the "other" series. */
static size_t per_queue(struct evbuffer *out, struct broker *b, size_t cap)
{
	struct queue **qs = NULL;
	size_t n = 0;
	if (admin_sorted_queues(b, &qs, &n) < 0)
		return 0;
	size_t shown = n < cap ? n : cap;
	int64_t now = clock_wall_ms();
	for (size_t f = 0; f < sizeof(qfams) / sizeof(qfams[0]); f++) {
		const struct qfam *qf = &qfams[f];
		family(out, qf->name, qf->type, qf->help);
		char num[48];
		for (size_t i = 0; i < shown; i++) {
			snprintf(num, sizeof(num), "%.15g", qf->value(qs[i], now));
			sample_label(out, qf->name, "queue", queue_name(qs[i]), num);
		}
		if (shown == n)
			continue;
		double other = 0;
		for (size_t i = shown; i < n; i++) {
			double v = qf->value(qs[i], now);
			other = qf->max ? (v > other ? v : other) : other + v;
		}
		snprintf(num, sizeof(num), "%.15g", other);
		sample_label(out, qf->name, "queue", OTHER, num);
	}
	free(qs);
	return n - shown;
}

struct topic_entry {
	char *name;
	size_t subscribers;
};

struct topic_list {
	struct topic_entry *t;
	size_t n, cap;
};

static void collect_topic(const char *name, size_t subscribers, bool retained, void *arg)
{
	struct topic_list *l = arg;
	if (name[0] == '$')
		return; /* the broker's own ($SYS): not the users' to watch here */
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct topic_entry *grown = realloc(l->t, cap * sizeof(*grown));
		if (!grown)
			return;
		l->t = grown;
		l->cap = cap;
	}
	if ((l->t[l->n].name = strdup(name)))
		l->t[l->n++].subscribers = subscribers;
}

static int by_topic(const void *x, const void *y)
{
	return strcmp(((const struct topic_entry *)x)->name, ((const struct topic_entry *)y)->name);
}

/* Returns how many topics went into the "other" series. */
static size_t per_topic(struct evbuffer *out, struct broker *b, size_t cap)
{
	struct topic_list l = { 0 };
	router_each_topic(b->router, collect_topic, &l);
	if (l.n)
		qsort(l.t, l.n, sizeof(*l.t), by_topic);
	const char *name = "wharf_topic_subscribers";
	family(out, name, "gauge",
	       "Subscriptions and bindings a topic's name matches (wildcards included).");
	char num[32];
	size_t other = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (i < cap) {
			snprintf(num, sizeof(num), "%zu", l.t[i].subscribers);
			sample_label(out, name, "topic", l.t[i].name, num);
		} else {
			other += l.t[i].subscribers;
		}
		free(l.t[i].name);
	}
	if (l.n > cap) {
		snprintf(num, sizeof(num), "%zu", other);
		sample_label(out, name, "topic", OTHER, num);
	}
	free(l.t);
	return l.n > cap ? l.n - cap : 0;
}

/* ---- the rest ---------------------------------------------------------------- */

static void store_metrics(struct evbuffer *out, struct broker *b)
{
	if (!b->store)
		return;
	struct store_stats ss;
	struct journal_stats js;
	store_stats(b->store, &ss);
	journal_stats(store_journal(b->store), &js);
	static const struct {
		const char *name, *type, *help;
	} f[] = {
		{ "wharf_store_messages", "gauge", "Durable messages stored and not yet consumed." },
		{ "wharf_store_write_errors_total", "counter",
		  "Durable publishes refused for a disk error." },
		{ "wharf_journal_records_total", "counter", "Journal records written since start." },
		{ "wharf_journal_written_bytes_total", "counter",
		  "Journal bytes written since start, framing included." },
		{ "wharf_journal_segments", "gauge", "Journal segment files." },
		{ "wharf_journal_fsyncs_total", "counter", "fdatasync calls on journal segments." },
		{ "wharf_journal_batches_total", "counter", "Journal write batches." },
		{ "wharf_journal_pending_records", "gauge", "Records appended, not yet on disk." },
		{ "wharf_journal_pending_bytes", "gauge", "Payload bytes appended, not yet on disk." },
		{ "wharf_journal_write_errors_total", "counter", "Journal batches that failed." },
	};
	uint64_t v[] = { ss.messages, ss.write_errors, js.records,  js.bytes,   js.segments,
			 js.fsyncs,   js.batches,      js.pending, js.pending_bytes, js.write_errors };
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		family(out, f[i].name, f[i].type, f[i].help);
		sample_u(out, f[i].name, v[i]);
	}
	histogram(out, "wharf_journal_fsync_duration_seconds",
		  "fdatasync of journal segments, on the journal's writer thread.", &js.fsync);
}

/* Virtual and resident memory in bytes, from /proc/self/statm. */
static int statm(uint64_t *size, uint64_t *resident)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long s, r;
	int rc = f && fscanf(f, "%lu %lu", &s, &r) == 2 ? 0 : -1;
	if (f)
		fclose(f);
	if (rc == 0) {
		*size = (uint64_t)s * (uint64_t)sysconf(_SC_PAGESIZE);
		*resident = (uint64_t)r * (uint64_t)sysconf(_SC_PAGESIZE);
	}
	return rc;
}

int admin_rss_bytes(uint64_t *v)
{
	uint64_t size;
	return statm(&size, v);
}

static void process_metrics(struct evbuffer *out, struct broker *b)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		family(out, "process_cpu_seconds_total", "counter",
		       "User and system CPU time of every thread.");
		evbuffer_add_printf(out, "process_cpu_seconds_total %.6f\n",
				    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
					    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	}
	uint64_t size, resident;
	if (statm(&size, &resident) == 0) {
		family(out, "process_resident_memory_bytes", "gauge", "Resident memory.");
		sample_u(out, "process_resident_memory_bytes", resident);
		family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory.");
		sample_u(out, "process_virtual_memory_bytes", size);
	}
	int64_t up_ms = clock_mono_ms() - b->started_ms;
	family(out, "process_start_time_seconds", "gauge", "Start time, seconds since the epoch.");
	evbuffer_add_printf(out, "process_start_time_seconds %.3f\n",
			    (double)(clock_wall_ms() - up_ms) / 1000.0);
}

static void gauge(struct evbuffer *out, const char *name, const char *type, const char *help,
		  uint64_t v)
{
	family(out, name, type, help);
	sample_u(out, name, v);
}

/* The pair's state (ha/ha.h), on a node of a pair. */
static void pair_metrics(struct evbuffer *out, struct broker *b)
{
	if (!b->ha)
		return;
	struct ha_status st;
	ha_status(b->ha, &st);
	gauge(out, "wharf_ha_epoch", "gauge", "The activation epoch of the history this node holds.",
	      st.epoch);
	gauge(out, "wharf_ha_connected", "gauge",
	      "1 while the replication link is up (active: a standby attached; standby: to the "
	      "active).",
	      st.connected);
	gauge(out, "wharf_ha_in_sync", "gauge",
	      "1 while the standby holds everything durable on the active.", st.in_sync);
	gauge(out, "wharf_ha_degraded", "gauge",
	      "1 on an active that dropped its standby and confirms alone.", st.degraded);
	gauge(out, "wharf_ha_lag_records", "gauge",
	      "Durable records the standby has not acknowledged.", st.lag_records);
	gauge(out, "wharf_ha_lag_bytes", "gauge", "Durable journal bytes not sent to the standby.",
	      st.lag_bytes);
	gauge(out, "wharf_ha_held_confirmations", "gauge",
	      "Confirmations waiting for the standby's acknowledgement.", st.held);
	gauge(out, "wharf_ha_link_drops_total", "counter",
	      "Replication links lost (active: standbys dropped).", st.drops);
}

static void alarm_sample(const char *name, enum alarm_state state, void *arg)
{
	char num[4];
	snprintf(num, sizeof(num), "%d", (int)state);
	sample_label(arg, "wharf_alarm_state", "alarm", name, num);
}

static void alarm_metrics(struct evbuffer *out, struct broker *b)
{
	if (!b->alarms)
		return;
	family(out, "wharf_alarm_state", "gauge",
	       "Each [alarm]'s state: 0 OK, 1 ALARM, 2 INSUFFICIENT_DATA.");
	alarms_each(b->alarms, alarm_sample, out);
}

void admin_metrics(struct admin *a, struct evhttp_request *req)
{
	struct broker *b = a->b;
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	const char *why;
	family(out, "wharf_up", "gauge", "1 while the broker's loop serves.");
	sample_u(out, "wharf_up", 1);
	family(out, "wharf_active", "gauge", "1 on the node that serves clients, 0 on a standby.");
	sample_u(out, "wharf_active", b->active);
	family(out, "wharf_ready", "gauge", "1 when /readyz says ready.");
	sample_u(out, "wharf_ready", admin_ready(b, &why));
	family(out, "wharf_build_info", "gauge", "The version, as a label.");
	sample_label(out, "wharf_build_info", "version", PACKAGE_VERSION, "1");
	per_protocol(out, b);
	pair_metrics(out, b);
	const struct router_stats *rs = router_stats(b->router);
	family(out, "wharf_messages_published_total", "counter",
	       "Messages routed (clients, the admin API and the broker's own).");
	sample_u(out, "wharf_messages_published_total", rs->published);
	family(out, "wharf_messages_dropped_total", "counter",
	       "Messages let go undelivered, by cause (docs/operations.md).");
	for (int why_ = 0; why_ < DROP_NCAUSES; why_++) {
		char num[32];
		snprintf(num, sizeof(num), "%" PRIu64, rs->dropped[why_]);
		sample_label(out, "wharf_messages_dropped_total", "cause", queue_drop_name(why_),
			     num);
	}
	family(out, "wharf_queues", "gauge", "Named queues.");
	sample_u(out, "wharf_queues", rs->queues);
	family(out, "wharf_topics", "gauge", "Topics known to exist.");
	sample_u(out, "wharf_topics", router_topic_count(b->router));
	family(out, "wharf_subscriptions", "gauge", "Subscriptions of every protocol.");
	sample_u(out, "wharf_subscriptions", rs->subscriptions);
	family(out, "wharf_retained_messages", "gauge", "Retained topic messages.");
	sample_u(out, "wharf_retained_messages", rs->retained);
	histogram(out, "wharf_confirm_latency_seconds",
		  "Durable publishes, from the publish to its confirmation (PUBACK, RECEIPT, "
		  "AMQP accepted) being sent.",
		  &rs->confirm_latency);
	size_t cap = b->cfg->admin.metrics_max_destinations;
	size_t omitted = per_queue(out, b, cap) + per_topic(out, b, cap);
	family(out, "wharf_metrics_omitted_destinations", "gauge",
	       "Queues and topics past [admin] metrics_max_destinations (each kind), summed into "
	       "the \"" OTHER "\" series of this scrape.");
	sample_u(out, "wharf_metrics_omitted_destinations", omitted);
	store_metrics(out, b);
	process_metrics(out, b);
	alarm_metrics(out, b);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", NULL);
}
