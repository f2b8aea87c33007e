#include "config.h"
#include "conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/certid.h"
#include "log.h"
#include "util/errmsg.h"
#include "net/url.h"
#include "router/address.h"

enum section { SEC_GLOBAL, SEC_LISTENER, SEC_STOMP, SEC_MQTT, SEC_HA, SEC_AUTH, SEC_QUEUE,
	       SEC_TOPIC, SEC_ADMIN, SEC_AUDIT, SEC_ALARM };

struct parser {
	struct wharf_config *cfg;
	const char *file;
	int line;
	enum section section;
	struct listener_config *listener;
	struct dest_config *dest;
	struct alarm_config *alarm;
	char *err;
	size_t errlen;
};

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	errmsg_vat(p->err, p->errlen, p->file, p->line, fmt, ap);
	va_end(ap);
	return -1;
}

struct wharf_config *config_new(void)
{
	struct wharf_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return NULL;
	cfg->data_dir = strdup("data");
	if (!cfg->data_dir) {
		free(cfg);
		return NULL;
	}
	cfg->log_level = LOG_INFO;
	cfg->tls.client_cert = -1;
	cfg->max_connection_output = 1024 * 1024;
	cfg->topic_max_pending = 100000;
	cfg->queue_memory_limit = 32 * 1024 * 1024;
	cfg->max_transactions = 64;
	cfg->max_transaction_bytes = 64 * 1024 * 1024;
	/* 40% of the machine's memory, as RabbitMQ's vm_memory_high_watermark. */
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	cfg->broker_memory_limit = pages > 0 && page > 0 ? (size_t)pages / 5 * 2 * (size_t)page : 0;
	cfg->shutdown_grace_ms = 2000;
	cfg->drop_log_interval_ms = 10000;
	cfg->handshake_timeout_ms = 10000;
	cfg->frame_timeout_ms = 60000;
	cfg->sync_batch_delay_ms = 10;
	cfg->ws_max_message = 4 * 1024 * 1024;
	cfg->stomp.max_frame_size = 4 * 1024 * 1024;
	cfg->stomp.max_headers = 64;
	cfg->stomp.max_header_length = 8192;
	cfg->stomp.heartbeat_ms = 10000;
	cfg->stomp.prefetch = 1000;
	cfg->mqtt.max_packet_size = 1024 * 1024;
	cfg->mqtt.receive_maximum = 100;
	cfg->mqtt.max_inflight = 100;
	cfg->mqtt.topic_alias_maximum = 10;
	cfg->mqtt.max_keepalive = 0;
	cfg->mqtt.max_session_expiry = 7 * 24 * 3600;
	cfg->mqtt.max_queued = 1000;
	cfg->mqtt.sys_interval_ms = 10000;
	cfg->ha.tls.client_cert = -1;
	cfg->admin.tls.client_cert = -1;
	cfg->ha.sync_timeout_ms = 5000;
	cfg->ha.timeout_ms = 3000;
	cfg->ha.standby_listen = true;
	cfg->ha.lease_ttl_ms = 2000;
	cfg->admin.metrics_max_destinations = 1000;
	cfg->admin.browse_max = 1000;
	cfg->auth.failure_delay_ms = 1000;
	cfg->auth.max_failures = 10;
	cfg->auth.failure_window_ms = 60000;
	cfg->max_connections_per_user = 10000;
	cfg->max_connections_per_address = 0;
	cfg->max_new_connections_per_address = 0;
	cfg->max_subscriptions_per_connection = 1000;
	cfg->max_unacked_per_connection = 10000;
	return cfg;
}

static void tls_config_free(struct tls_config *t)
{
	free(t->cert);
	free(t->key);
	free(t->ca);
	free(t->ciphers);
}

void config_clear_listeners(struct wharf_config *cfg)
{
	while (cfg->listeners) {
		struct listener_config *l = cfg->listeners;
		cfg->listeners = l->next;
		tls_config_free(&l->tls);
		free(l->name);
		free(l->url);
		free(l->allowed_origins);
		free(l);
	}
}

void config_free(struct wharf_config *cfg)
{
	if (!cfg)
		return;
	config_clear_listeners(cfg);
	while (cfg->dests) {
		struct dest_config *d = cfg->dests;
		cfg->dests = d->next;
		for (size_t i = 0; i < d->nbind; i++)
			free(d->bind[i]);
		free(d->bind);
		free(d->policy.dead_letter_queue);
		free(d->pattern);
		free(d);
	}
	while (cfg->alarms) {
		struct alarm_config *al = cfg->alarms;
		cfg->alarms = al->next;
		free(al->rule.queue);
		free(al->metric);
		free(al->name);
		free(al);
	}
	tls_config_free(&cfg->tls);
	struct ha_config *ha = &cfg->ha;
	tls_config_free(&ha->tls);
	free(ha->node_id);
	free(ha->listen);
	free(ha->peer);
	free(ha->secret);
	free(ha->advertise);
	free(ha->on_promote);
	free(ha->arbiter);
	free(ha->pair);
	free(cfg->admin.listen);
	tls_config_free(&cfg->admin.tls);
	free(cfg->auth.users_file);
	free(cfg->auth.acl_file);
	free(cfg->auth.mqtt_client_id_prefix);
	free(cfg->auth.stomp_client_id_prefix);
	free(cfg->audit.file);
	free(cfg->ws_allowed_origins);
	free(cfg->data_dir);
	free(cfg->log_file);
	free(cfg->user);
	free(cfg->group);
	free(cfg);
}

static struct listener_config *listener_append(struct wharf_config *cfg, const char *name)
{
	struct listener_config *l = calloc(1, sizeof(*l));
	if (!l || !(l->name = strdup(name))) {
		free(l);
		return NULL;
	}
	l->tls.client_cert = -1;
	l->allow_anonymous = -1;
	struct listener_config **pp = &cfg->listeners;
	while (*pp)
		pp = &(*pp)->next;
	*pp = l;
	return l;
}

int config_add_listener(struct wharf_config *cfg, const char *name, const char *url)
{
	struct listener_config *l = listener_append(cfg, name);
	if (!l || !(l->url = strdup(url)))
		return -1;
	return 0;
}

bool config_allow_anonymous(const struct wharf_config *cfg, const struct listener_config *l)
{
	return l->allow_anonymous >= 0 ? l->allow_anonymous == 1 : !cfg->auth.users_file;
}

/* ---- value parsers ------------------------------------------------------ */

static int parse_uint(const char *v, unsigned long long *out)
{
	if (!isdigit((unsigned char)*v))
		return -1;
	errno = 0;
	char *end;
	*out = strtoull(v, &end, 10);
	if (errno)
		return -1;
	return (int)(end - v);
}

/* Sizes take an optional unit: 64KiB, 4MiB, 1GiB (or k, M, G). */
static int parse_size(const char *v, size_t *out)
{
	unsigned long long n;
	int used = parse_uint(v, &n);
	if (used < 0)
		return -1;
	const char *unit = v + used;
	unsigned long long mult = 1;
	if (!*unit || !strcmp(unit, "B"))
		mult = 1;
	else if (!strcmp(unit, "KiB") || !strcmp(unit, "k") || !strcmp(unit, "K"))
		mult = 1024ULL;
	else if (!strcmp(unit, "MiB") || !strcmp(unit, "M"))
		mult = 1024ULL * 1024;
	else if (!strcmp(unit, "GiB") || !strcmp(unit, "G"))
		mult = 1024ULL * 1024 * 1024;
	else
		return -1;
	if (n > SIZE_MAX / mult)
		return -1;
	*out = (size_t)(n * mult);
	return 0;
}

/* Durations take a unit: 500ms, 10s, 2m, 1h, 4d; a bare number is
 * milliseconds. */
static int parse_duration_ms(const char *v, unsigned *out)
{
	unsigned long long n;
	int used = parse_uint(v, &n);
	if (used < 0)
		return -1;
	const char *unit = v + used;
	unsigned long long mult;
	if (!*unit || !strcmp(unit, "ms"))
		mult = 1;
	else if (!strcmp(unit, "s"))
		mult = 1000;
	else if (!strcmp(unit, "m"))
		mult = 60000;
	else if (!strcmp(unit, "h"))
		mult = 3600000;
	else if (!strcmp(unit, "d"))
		mult = 86400000;
	else
		return -1;
	if (n > 0xffffffffULL / mult)
		return -1;
	*out = (unsigned)(n * mult);
	return 0;
}

static int parse_bool(const char *v)
{
	if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
		return 1;
	if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off"))
		return 0;
	return -1;
}

static int set_string(struct parser *p, char **slot, const char *v)
{
	char *copy = strdup(v);
	if (!copy)
		return fail(p, "out of memory");
	free(*slot);
	*slot = copy;
	return 0;
}

static int set_size(struct parser *p, const char *key, size_t *slot, const char *v, size_t min)
{
	size_t n;
	if (parse_size(v, &n) < 0)
		return fail(p, "%s: '%s' is not a size (a number, optionally with KiB, MiB or GiB)",
			    key, v);
	if (n < min)
		return fail(p, "%s: must be at least %zu", key, min);
	*slot = n;
	return 0;
}

static int set_duration(struct parser *p, const char *key, unsigned *slot, const char *v)
{
	if (parse_duration_ms(v, slot) < 0)
		return fail(p, "%s: '%s' is not a duration (a number with ms, s, m, h or d)", key, v);
	return 0;
}

/* One of `names` (NULL-terminated); *slot gets its index. */
static int set_choice(struct parser *p, const char *key, int *slot, const char *v,
		      const char *const *names)
{
	for (int i = 0; names[i]; i++) {
		if (!strcmp(v, names[i])) {
			*slot = i;
			return 0;
		}
	}
	char list[160] = "";
	for (int i = 0; names[i]; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 i ? (names[i + 1] ? ", " : " or ") : "", names[i]);
	return fail(p, "%s: '%s' is not %s", key, v, list);
}

/* ---- sections ----------------------------------------------------------- */

/* tls_* keys, in a [listener] or at the top as defaults; 1 if `k` is not one. */
static int tls_key(struct parser *p, struct tls_config *t, const char *k, const char *v)
{
	if (!strcmp(k, "tls_cert"))
		return set_string(p, &t->cert, v);
	if (!strcmp(k, "tls_key"))
		return set_string(p, &t->key, v);
	if (!strcmp(k, "tls_ca"))
		return set_string(p, &t->ca, v);
	if (!strcmp(k, "tls_ciphers"))
		return set_string(p, &t->ciphers, v);
	if (!strcmp(k, "tls_client_cert")) {
		static const char *const names[] = { "none", "optional", "required", NULL };
		return set_choice(p, k, &t->client_cert, v, names);
	}
	if (!strcmp(k, "tls_min_version")) {
		if (!strcmp(v, "1.2"))
			t->min_version = 12;
		else if (!strcmp(v, "1.3"))
			t->min_version = 13;
		else
			return fail(p, "tls_min_version: '%s' is not 1.2 or 1.3", v);
		return 0;
	}
	return 1;
}

static int set_count(struct parser *p, const char *key, unsigned *slot, const char *v,
		     unsigned min, unsigned max);

static int global_key(struct parser *p, const char *k, const char *v)
{
	struct wharf_config *cfg = p->cfg;
	if (!strcmp(k, "data_dir"))
		return set_string(p, &cfg->data_dir, v);
	if (!strcmp(k, "log_file"))
		return set_string(p, &cfg->log_file, v);
	if (!strcmp(k, "user"))
		return set_string(p, &cfg->user, v);
	if (!strcmp(k, "group"))
		return set_string(p, &cfg->group, v);
	if (!strcmp(k, "log_format")) {
		int json = log_format_parse(v);
		if (json < 0)
			return fail(p, "log_format: '%s' is not text or json", v);
		cfg->log_format = json;
		return 0;
	}
	if (!strcmp(k, "log_level")) {
		int level = log_level_parse(v);
		if (level < 0)
			return fail(p, "log_level: '%s' is not one of error, warn, info, debug", v);
		cfg->log_level = level;
		return 0;
	}
	if (!strcmp(k, "max_connections"))
		return set_size(p, k, &cfg->max_connections, v, 0);
	if (!strcmp(k, "max_connection_output"))
		return set_size(p, k, &cfg->max_connection_output, v, 4096);
	if (!strcmp(k, "topic_max_pending"))
		return set_size(p, k, &cfg->topic_max_pending, v, 1);
	if (!strcmp(k, "queue_memory_limit"))
		return set_size(p, k, &cfg->queue_memory_limit, v, 4096);
	if (!strcmp(k, "max_transactions"))
		return set_size(p, k, &cfg->max_transactions, v, 1);
	if (!strcmp(k, "max_transaction_bytes"))
		return set_size(p, k, &cfg->max_transaction_bytes, v, 1024);
	if (!strcmp(k, "broker_memory_limit"))
		return set_size(p, k, &cfg->broker_memory_limit, v, 0);
	if (!strcmp(k, "shutdown_grace"))
		return set_duration(p, k, &cfg->shutdown_grace_ms, v);
	if (!strcmp(k, "drop_log_interval"))
		return set_duration(p, k, &cfg->drop_log_interval_ms, v);
	if (!strcmp(k, "handshake_timeout"))
		return set_duration(p, k, &cfg->handshake_timeout_ms, v);
	if (!strcmp(k, "frame_timeout"))
		return set_duration(p, k, &cfg->frame_timeout_ms, v);
	if (!strcmp(k, "sync")) {
		/* In the order of enum journal_sync. */
		static const char *const names[] = { "always", "batch", "never", NULL };
		return set_choice(p, k, &cfg->sync, v, names);
	}
	if (!strcmp(k, "sync_batch_delay")) {
		if (set_duration(p, k, &cfg->sync_batch_delay_ms, v) < 0)
			return -1;
		if (cfg->sync_batch_delay_ms > 1000)
			return fail(p, "%s: at most 1s", k);
		return 0;
	}
	if (!strcmp(k, "on_corruption")) {
		/* In the order of enum journal_on_corruption. */
		static const char *const names[] = { "quarantine", "refuse", NULL };
		return set_choice(p, k, &cfg->on_corruption, v, names);
	}
	if (!strcmp(k, "journal_segment_size"))
		return set_size(p, k, &cfg->journal_segment_size, v, 4096);
	if (!strcmp(k, "ws_max_message"))
		return set_size(p, k, &cfg->ws_max_message, v, 256);
	if (!strcmp(k, "ws_allowed_origins"))
		return set_string(p, &cfg->ws_allowed_origins, v);
	if (!strcmp(k, "max_connections_per_user"))
		return set_size(p, k, &cfg->max_connections_per_user, v, 0);
	if (!strcmp(k, "max_connections_per_address"))
		return set_size(p, k, &cfg->max_connections_per_address, v, 0);
	if (!strcmp(k, "max_new_connections_per_address"))
		return set_count(p, k, &cfg->max_new_connections_per_address, v, 0, 1000000);
	/* At most what a stored MQTT session record can count (persist.c). */
	if (!strcmp(k, "max_subscriptions_per_connection"))
		return set_count(p, k, &cfg->max_subscriptions_per_connection, v, 1, 65535);
	if (!strcmp(k, "max_unacked_per_connection"))
		return set_count(p, k, &cfg->max_unacked_per_connection, v, 1, 10000000);
	int rc = tls_key(p, &cfg->tls, k, v);
	if (rc <= 0)
		return rc;
	return fail(p, "unknown key '%s'", k);
}

static int stomp_key(struct parser *p, const char *k, const char *v)
{
	struct stomp_config *s = &p->cfg->stomp;
	if (!strcmp(k, "max_frame_size"))
		return set_size(p, k, &s->max_frame_size, v, 256);
	if (!strcmp(k, "max_headers"))
		return set_size(p, k, &s->max_headers, v, 1);
	if (!strcmp(k, "max_header_length"))
		return set_size(p, k, &s->max_header_length, v, 64);
	if (!strcmp(k, "heartbeat"))
		return set_duration(p, k, &s->heartbeat_ms, v);
	if (!strcmp(k, "prefetch")) {
		size_t n;
		if (set_size(p, k, &n, v, 1) < 0)
			return -1;
		if (n > 1000000)
			return fail(p, "prefetch: at most 1000000");
		s->prefetch = (unsigned)n;
		return 0;
	}
	if (!strcmp(k, "dialect")) {
		/* In the order of enum stomp_dialect. */
		static const char *const names[] = { "both", "activemq", "rabbitmq", NULL };
		return set_choice(p, k, &s->dialect, v, names);
	}
	return fail(p, "unknown key '%s' in [stomp]", k);
}

static int set_count(struct parser *p, const char *key, unsigned *slot, const char *v,
		     unsigned min, unsigned max)
{
	size_t n;
	if (parse_size(v, &n) < 0 || n < min || n > max)
		return fail(p, "%s: '%s' is not a whole number from %u to %u", key, v, min, max);
	*slot = (unsigned)n;
	return 0;
}

static int mqtt_key(struct parser *p, const char *k, const char *v)
{
	struct mqtt_config *m = &p->cfg->mqtt;
	unsigned ms;
	if (!strcmp(k, "max_packet_size")) {
		if (set_size(p, k, &m->max_packet_size, v, 64) < 0)
			return -1;
		if (m->max_packet_size > 268435460)
			return fail(p, "max_packet_size: at most 256MiB, MQTT's own limit");
		return 0;
	}
	if (!strcmp(k, "receive_maximum"))
		return set_count(p, k, &m->receive_maximum, v, 1, 65535);
	if (!strcmp(k, "max_inflight"))
		return set_count(p, k, &m->max_inflight, v, 1, 65535);
	if (!strcmp(k, "topic_alias_maximum"))
		return set_count(p, k, &m->topic_alias_maximum, v, 0, 65535);
	if (!strcmp(k, "max_keepalive"))
		return set_count(p, k, &m->max_keepalive, v, 0, 65535);
	if (!strcmp(k, "max_session_expiry")) {
		if (set_duration(p, k, &ms, v) < 0)
			return -1;
		m->max_session_expiry = ms / 1000;
		return 0;
	}
	if (!strcmp(k, "max_queued"))
		return set_size(p, k, &m->max_queued, v, 1);
	if (!strcmp(k, "sys_interval"))
		return set_duration(p, k, &m->sys_interval_ms, v);
	/* At most what a stored session record can count (persist.c). */
	if (!strcmp(k, "max_subscriptions_per_client"))
		return set_count(p, k, &m->max_subscriptions, v, 1, 65535);
	return fail(p, "unknown key '%s' in [mqtt]", k);
}

/* The link's address: repl://HOST:PORT, the port 61617 when left out. */
static int set_repl_url(struct parser *p, const char *key, char **slot, const char *v)
{
	if (strncmp(v, "repl://", 7) || !v[7])
		return fail(p, "%s: '%s' is not repl://HOST:PORT", key, v);
	if (strchr(v + 7, ':') || v[7] == '[')
		return set_string(p, slot, v);
	char *full = malloc(strlen(v) + 7);
	if (!full)
		return fail(p, "out of memory");
	sprintf(full, "%s:61617", v);
	free(*slot);
	*slot = full;
	return 0;
}

/* The shared secret, read from a file so that the config can be world
 * readable; a trailing newline is not part of it. */
static int set_secret_file(struct parser *p, struct ha_config *ha, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return fail(p, "secret_file: %s: %s", path, strerror(errno));
	char buf[1024];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	if (n < 16 || strlen(buf) != n)
		return fail(p, "secret_file: %s: the secret must be at least 16 bytes of text", path);
	return set_string(p, &ha->secret, buf);
}

static int ha_key(struct parser *p, const char *k, const char *v)
{
	struct ha_config *ha = &p->cfg->ha;
	if (!strcmp(k, "role")) {
		static const char *const names[] = { "none", "primary", "standby", "auto", NULL };
		return set_choice(p, k, &ha->role, v, names);
	}
	if (!strcmp(k, "node_id"))
		return set_string(p, &ha->node_id, v);
	if (!strcmp(k, "listen"))
		return set_repl_url(p, k, &ha->listen, v);
	if (!strcmp(k, "peer"))
		return set_repl_url(p, k, &ha->peer, v);
	if (!strcmp(k, "secret")) {
		if (strlen(v) < 16)
			return fail(p, "secret: must be at least 16 characters");
		return set_string(p, &ha->secret, v);
	}
	if (!strcmp(k, "secret_file"))
		return set_secret_file(p, ha, v);
	if (!strcmp(k, "sync")) {
		static const char *const names[] = { "replicated", "local", NULL };
		return set_choice(p, k, &ha->sync, v, names);
	}
	if (!strcmp(k, "sync_timeout"))
		return set_duration(p, k, &ha->sync_timeout_ms, v);
	if (!strcmp(k, "timeout"))
		return set_duration(p, k, &ha->timeout_ms, v);
	if (!strcmp(k, "advertise"))
		return set_string(p, &ha->advertise, v);
	if (!strcmp(k, "standby_listen")) {
		int b = parse_bool(v);
		if (b < 0)
			return fail(p, "standby_listen: '%s' is not true or false", v);
		ha->standby_listen = b;
		return 0;
	}
	if (!strcmp(k, "on_promote"))
		return set_string(p, &ha->on_promote, v);
	if (!strcmp(k, "arbiter")) {
		if (strcmp(v, "none") && strncmp(v, "etcd://", 7))
			return fail(p, "arbiter: '%s' is not none or etcd://HOST:PORT", v);
		return set_string(p, &ha->arbiter, v);
	}
	if (!strcmp(k, "pair"))
		return set_string(p, &ha->pair, v);
	if (!strcmp(k, "lease_ttl"))
		return set_duration(p, k, &ha->lease_ttl_ms, v);
	int rc = tls_key(p, &ha->tls, k, v);
	if (rc <= 0)
		return rc;
	return fail(p, "unknown key '%s' in [ha]", k);
}

static int admin_key(struct parser *p, const char *k, const char *v)
{
	struct admin_config *a = &p->cfg->admin;
	if (!strcmp(k, "listen")) {
		struct listen_url u;
		const char *why;
		if (url_parse(v, &u, &why) < 0)
			return fail(p, "listen: '%s': %s", v, why);
		if (strcmp(u.scheme, "http") && strcmp(u.scheme, "https"))
			return fail(p, "listen: '%s': the admin API speaks http:// or https://HOST:PORT",
				    v);
		return set_string(p, &a->listen, v);
	}
	if (!strcmp(k, "allow_remote")) {
		int b = parse_bool(v);
		if (b < 0)
			return fail(p, "allow_remote: '%s' is not true or false", v);
		a->allow_remote = b;
		return 0;
	}
	if (!strcmp(k, "allow_anonymous")) {
		int b = parse_bool(v);
		if (b < 0)
			return fail(p, "allow_anonymous: '%s' is not true or false", v);
		a->allow_anonymous = b;
		return 0;
	}
	if (!strcmp(k, "metrics_max_destinations"))
		return set_size(p, k, &a->metrics_max_destinations, v, 0);
	if (!strcmp(k, "browse_max"))
		return set_size(p, k, &a->browse_max, v, 1);
	int rc = tls_key(p, &a->tls, k, v);
	if (rc <= 0)
		return rc;
	return fail(p, "unknown key '%s' in [admin]", k);
}

static int auth_key(struct parser *p, const char *k, const char *v)
{
	struct auth_config *a = &p->cfg->auth;
	if (!strcmp(k, "users_file"))
		return set_string(p, &a->users_file, v);
	if (!strcmp(k, "acl_file"))
		return set_string(p, &a->acl_file, v);
	if (!strcmp(k, "mqtt_client_id_prefix"))
		return set_string(p, &a->mqtt_client_id_prefix, v);
	if (!strcmp(k, "stomp_client_id_prefix"))
		return set_string(p, &a->stomp_client_id_prefix, v);
	if (!strcmp(k, "failure_delay")) {
		if (set_duration(p, k, &a->failure_delay_ms, v) < 0)
			return -1;
		if (a->failure_delay_ms > 60000)
			return fail(p, "%s: at most 60s", k);
		return 0;
	}
	if (!strcmp(k, "max_failures_per_address"))
		return set_count(p, k, &a->max_failures, v, 0, 1000000);
	if (!strcmp(k, "failure_window")) {
		if (set_duration(p, k, &a->failure_window_ms, v) < 0)
			return -1;
		if (a->failure_window_ms == 0)
			return fail(p, "%s: must be more than 0", k);
		return 0;
	}
	return fail(p, "unknown key '%s' in [auth]", k);
}

static int audit_key(struct parser *p, const char *k, const char *v)
{
	if (!strcmp(k, "file"))
		return set_string(p, &p->cfg->audit.file, v);
	return fail(p, "unknown key '%s' in [audit]", k);
}

static int listener_key(struct parser *p, const char *k, const char *v)
{
	if (!strcmp(k, "url"))
		return set_string(p, &p->listener->url, v);
	if (!strcmp(k, "allow_anonymous")) {
		int b = parse_bool(v);
		if (b < 0)
			return fail(p, "allow_anonymous: '%s' is not true or false", v);
		p->listener->allow_anonymous = b;
		return 0;
	}
	if (!strcmp(k, "max_connections"))
		return set_size(p, k, &p->listener->max_connections, v, 0);
	if (!strcmp(k, "cert_identity"))
		return set_choice(p, k, &p->listener->cert_identity, v, certid_kind_names);
	if (!strcmp(k, "allowed_origins"))
		return set_string(p, &p->listener->allowed_origins, v);
	int rc = tls_key(p, &p->listener->tls, k, v);
	if (rc <= 0)
		return rc;
	return fail(p, "unknown key '%s' in [listener %s]", k, p->listener->name);
}

/* The policy keys of a [queue] section; 1 if `k` is not one. */
static int policy_key(struct parser *p, struct queue_policy *qp, const char *k, const char *v)
{
	struct queue_limits *l = &qp->limits;
	unsigned ms;
	int b;
	if (!strcmp(k, "ttl") || !strcmp(k, "retention")) {
		if (set_duration(p, k, &ms, v) < 0)
			return -1;
		if (ms == 0)
			return fail(p, "%s: must be more than 0", k);
		if (k[0] == 't') {
			l->ttl_ms = ms;
			qp->set |= POLICY_TTL;
		} else {
			if (ms > POLICY_MAX_RETENTION_MS)
				return fail(p, "retention: at most 14 days (14d)");
			l->retention_ms = ms;
			qp->set |= POLICY_RETENTION;
		}
		return 0;
	}
	if (!strcmp(k, "max_length")) {
		qp->set |= POLICY_MAX_LENGTH;
		return set_size(p, k, &l->max_length, v, 1);
	}
	if (!strcmp(k, "max_bytes")) {
		qp->set |= POLICY_MAX_BYTES;
		return set_size(p, k, &l->max_bytes, v, 1);
	}
	if (!strcmp(k, "overflow")) {
		/* In the order of enum queue_overflow. */
		static const char *const names[] = { "block", "drop-head", "reject-publish", NULL };
		int choice;
		if (set_choice(p, k, &choice, v, names) < 0)
			return -1;
		l->overflow = (enum queue_overflow)choice;
		qp->set |= POLICY_OVERFLOW;
		return 0;
	}
	if (!strcmp(k, "max_redeliveries")) {
		unsigned n = 0;
		if (set_count(p, k, &n, v, 1, 1000000) < 0)
			return -1;
		l->max_redeliveries = n;
		qp->set |= POLICY_MAX_REDELIVERIES;
		return 0;
	}
	if (!strcmp(k, "dead_letter_queue")) {
		if (address_validate(v, false) != 0)
			return fail(p, "dead_letter_queue: '%s' is not a valid queue name", v);
		qp->set |= POLICY_DEAD_LETTER_QUEUE;
		return set_string(p, &qp->dead_letter_queue, v);
	}
	if (!strcmp(k, "dead_letter_expired") || !strcmp(k, "priorities")) {
		if ((b = parse_bool(v)) < 0)
			return fail(p, "%s: '%s' is not true or false", k, v);
		if (k[0] == 'd') {
			l->dead_letter_expired = b;
			qp->set |= POLICY_DEAD_LETTER_EXPIRED;
		} else {
			l->priorities = b;
			qp->set |= POLICY_PRIORITIES;
		}
		return 0;
	}
	return 1;
}

static int dest_key(struct parser *p, const char *k, const char *v)
{
	struct dest_config *d = p->dest;
	const char *sec = d->kind == POLICY_QUEUE ? "queue" : "topic";
	if (!strcmp(k, "auto_create")) {
		int b = parse_bool(v);
		if (b < 0)
			return fail(p, "auto_create: '%s' is not true or false", v);
		d->auto_create = b;
		return 0;
	}
	if (!strcmp(k, "bind") && d->kind == POLICY_TOPIC) {
		char *copy = strdup(v);
		if (!copy)
			return fail(p, "out of memory");
		int rc = 0;
		char *save = NULL;
		for (char *q = strtok_r(copy, " \t,", &save); q; q = strtok_r(NULL, " \t,", &save)) {
			if (address_validate(q, false) != 0) {
				rc = fail(p, "bind: '%s' is not a valid queue name", q);
				break;
			}
			char **nb = realloc(d->bind, (d->nbind + 1) * sizeof(*nb));
			if (!nb || !(nb[d->nbind] = strdup(q))) {
				if (nb)
					d->bind = nb;
				rc = fail(p, "out of memory");
				break;
			}
			d->bind = nb;
			d->nbind++;
		}
		free(copy);
		return rc;
	}
	if (d->kind == POLICY_QUEUE) {
		int rc = policy_key(p, &d->policy, k, v);
		if (rc <= 0)
			return rc;
	}
	return fail(p, "unknown key '%s' in [%s %s]", k, sec, d->pattern);
}

static int alarm_key(struct parser *p, const char *k, const char *v)
{
	struct alarm_config *al = p->alarm;
	struct alarm_rule *r = &al->rule;
	if (!strcmp(k, "metric")) {
		const char *why;
		if (alarm_metric_parse(v, r, &why) < 0)
			return fail(p, "metric: '%s': %s", v, why);
		return set_string(p, &al->metric, v);
	}
	if (!strcmp(k, "comparison")) {
		if (alarm_cmp_parse(v, &r->cmp) < 0)
			return fail(p, "comparison: '%s' is not >, >=, < or <=", v);
		return 0;
	}
	if (!strcmp(k, "threshold")) {
		char *end;
		errno = 0;
		r->threshold = strtod(v, &end);
		if (*end || errno || !isfinite(r->threshold))
			return fail(p, "threshold: '%s' is not a number", v);
		al->has_threshold = true;
		return 0;
	}
	if (!strcmp(k, "period")) {
		if (set_duration(p, k, &al->period_ms, v) < 0)
			return -1;
		if (al->period_ms < 1000)
			return fail(p, "period: at least 1s");
		return 0;
	}
	if (!strcmp(k, "evaluation_periods"))
		return set_count(p, k, &r->evaluation_periods, v, 1, 1000);
	if (!strcmp(k, "treat_missing")) {
		int m;
		if (set_choice(p, k, &m, v, alarm_missing_names) < 0)
			return -1;
		r->missing = (enum alarm_missing)m;
		return 0;
	}
	return fail(p, "unknown key '%s' in [alarm %s]", k, al->name);
}

/* An alarm's name is one level of its topic, $SYS.alarms.NAME, in every
 * protocol: no dots, slashes or wildcards. */
static bool alarm_name_valid(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	return true;
}

static int alarm_section(struct parser *p, const char *name)
{
	if (!*name)
		return fail(p, "[alarm NAME] needs a name");
	if (!alarm_name_valid(name))
		return fail(p, "[alarm %s]: a name is 1 to 64 letters, digits, - or _", name);
	struct alarm_config **pp = &p->cfg->alarms;
	for (; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->name, name))
			return fail(p, "alarm '%s' is defined twice", name);
	struct alarm_config *al = calloc(1, sizeof(*al));
	if (!al || !(al->name = strdup(name))) {
		free(al);
		return fail(p, "out of memory");
	}
	al->rule.cmp = ALARM_GT;
	al->rule.evaluation_periods = 1;
	al->rule.missing = MISSING_INSUFFICIENT;
	al->period_ms = 60000;
	al->line = p->line;
	*pp = al;
	p->alarm = al;
	p->section = SEC_ALARM;
	return 0;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int section_header(struct parser *p, char *s)
{
	char *end = strchr(s, ']');
	if (!end || trim(end + 1)[0] != '\0')
		return fail(p, "section header must be [name] or [name argument]");
	*end = '\0';
	char *body = trim(s + 1);
	char *arg = body;
	while (*arg && !isspace((unsigned char)*arg))
		arg++;
	if (*arg)
		*arg++ = '\0';
	arg = trim(arg);

	if (!strcmp(body, "stomp") || !strcmp(body, "mqtt")) {
		if (*arg)
			return fail(p, "[%s] takes no argument", body);
		p->section = body[0] == 's' ? SEC_STOMP : SEC_MQTT;
		return 0;
	}
	if (!strcmp(body, "ha")) {
		if (*arg)
			return fail(p, "[ha] takes no argument");
		p->cfg->ha.line = p->line;
		p->section = SEC_HA;
		return 0;
	}
	if (!strcmp(body, "admin")) {
		if (*arg)
			return fail(p, "[admin] takes no argument");
		p->cfg->admin.line = p->line;
		p->section = SEC_ADMIN;
		return 0;
	}
	if (!strcmp(body, "auth")) {
		if (*arg)
			return fail(p, "[auth] takes no argument");
		p->cfg->auth.line = p->line;
		p->section = SEC_AUTH;
		return 0;
	}
	if (!strcmp(body, "audit")) {
		if (*arg)
			return fail(p, "[audit] takes no argument");
		p->section = SEC_AUDIT;
		return 0;
	}
	if (!strcmp(body, "listener")) {
		if (!*arg)
			return fail(p, "[listener NAME] needs a name");
		for (struct listener_config *l = p->cfg->listeners; l; l = l->next)
			if (!strcmp(l->name, arg))
				return fail(p, "listener '%s' is defined twice", arg);
		p->listener = listener_append(p->cfg, arg);
		if (!p->listener)
			return fail(p, "out of memory");
		p->listener->line = p->line;
		p->section = SEC_LISTENER;
		return 0;
	}
	if (!strcmp(body, "alarm"))
		return alarm_section(p, arg);
	if (!strcmp(body, "queue") || !strcmp(body, "topic")) {
		if (!*arg)
			return fail(p, "[%s PATTERN] needs a name pattern", body);
		if (address_validate(arg, true) != 0)
			return fail(p, "'%s' is not a valid name pattern", arg);
		struct dest_config *d = calloc(1, sizeof(*d));
		if (!d || !(d->pattern = strdup(arg))) {
			free(d);
			return fail(p, "out of memory");
		}
		d->kind = body[0] == 'q' ? POLICY_QUEUE : POLICY_TOPIC;
		d->auto_create = -1;
		struct dest_config **pp = &p->cfg->dests;
		while (*pp)
			pp = &(*pp)->next;
		*pp = d;
		p->dest = d;
		p->section = body[0] == 'q' ? SEC_QUEUE : SEC_TOPIC;
		return 0;
	}
	return fail(p, "unknown section [%s]", body);
}

/* A pair needs to know itself, its peer and the proof; checked once the
 * whole file is read, so keys may come in any order. */
static int check_ha(struct parser *p)
{
	struct ha_config *ha = &p->cfg->ha;
	if (ha->role == HA_NONE)
		return 0;
	p->line = ha->line;
	if (!ha->node_id)
		return fail(p, "[ha] needs node_id");
	if (!ha->listen || !ha->peer)
		return fail(p, "[ha] needs listen and peer (repl://HOST:PORT)");
	if (!ha->secret && !ha->tls.cert)
		return fail(p, "[ha] needs secret (or secret_file) or mutual TLS: the link refuses "
			       "unauthenticated peers");
	if (ha->tls.cert && !ha->secret && ha->tls.client_cert != 2)
		return fail(p, "[ha] without a secret needs tls_client_cert = required");
	if (ha->role == HA_AUTO && (!ha->arbiter || !strcmp(ha->arbiter, "none")))
		return fail(p, "[ha] role = auto needs an arbiter (etcd://HOST:PORT)");
	if (ha->arbiter && strcmp(ha->arbiter, "none") && ha->role != HA_AUTO)
		return fail(p, "[ha] with an arbiter needs role = auto (primary and standby are the "
			       "manual mode: wharfctl promote)");
	if (ha->arbiter && strcmp(ha->arbiter, "none") && !ha->pair)
		return fail(p, "[ha] with an arbiter needs pair (the pair's name)");
	return 0;
}

/* Unless users and TLS both cover the admin API, it serves this machine
 * only: a loopback address, or a wildcard one whose requests are checked. */
static bool admin_host_local(const char *host)
{
	struct in_addr v4;
	if (inet_pton(AF_INET, host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127 || v4.s_addr == INADDR_ANY;
	return !strcmp(host, "localhost") || !strcmp(host, "::1") ||
	       !strcmp(host, "*") || !strcmp(host, "0.0.0.0") || !strcmp(host, "::");
}

static int check_admin(struct parser *p)
{
	struct admin_config *a = &p->cfg->admin;
	struct listen_url u;
	const char *why;
	if (!a->listen || url_parse(a->listen, &u, &why) < 0)
		return 0;
	p->line = a->line;
	bool tls = !strcmp(u.scheme, "https");
	if (tls && !(a->tls.cert ? a->tls.cert : p->cfg->tls.cert))
		return fail(p, "[admin] listen = https:// needs tls_cert and tls_key (in [admin] or at "
			       "the top)");
	if (a->allow_remote || admin_host_local(u.host) || (tls && p->cfg->auth.users_file))
		return 0;
	return fail(p, "[admin] listen: %s is not a loopback address: other hosts are served over "
		       "https:// with [auth] users_file (or with allow_remote = true, unsafely)",
		    u.host);
}

static int check_complete(struct parser *p)
{
	if (p->cfg->group && !p->cfg->user)
		return fail(p, "group needs user");
	for (struct listener_config *l = p->cfg->listeners; l; l = l->next) {
		if (!l->url) {
			p->line = l->line;
			return fail(p, "[listener %s] has no url", l->name);
		}
		/* Without users nobody can log in: a listener closed to
		 * anonymous clients would let no one in. */
		if (l->allow_anonymous == 0 && !p->cfg->auth.users_file) {
			p->line = l->line;
			return fail(p, "[listener %s] allow_anonymous = false needs [auth] users_file",
				    l->name);
		}
		int client_cert = l->tls.client_cert >= 0 ? l->tls.client_cert : p->cfg->tls.client_cert;
		if (l->cert_identity && client_cert <= 0) {
			p->line = l->line;
			return fail(p, "[listener %s] cert_identity needs tls_client_cert = optional or required",
				    l->name);
		}
	}
	for (struct alarm_config *al = p->cfg->alarms; al; al = al->next) {
		p->line = al->line;
		if (!al->metric || !al->has_threshold)
			return fail(p, "[alarm %s] needs metric and threshold", al->name);
	}
	if (check_admin(p) < 0)
		return -1;
	return check_ha(p);
}

int config_parse(struct wharf_config *cfg, const char *name, const char *text, char *err,
		 size_t errlen)
{
	struct parser p = { .cfg = cfg, .file = name, .section = SEC_GLOBAL, .err = err,
			    .errlen = errlen };
	char *copy = strdup(text);
	if (!copy) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	int rc = 0;
	char *cursor = copy;
	for (;;) {
		char *nl = strchr(cursor, '\n');
		if (nl)
			*nl = '\0';
		p.line++;
		char *hash = strchr(cursor, '#');
		if (hash)
			*hash = '\0';
		char *s = trim(cursor);
		if (*s == '[') {
			rc = section_header(&p, s);
		} else if (*s) {
			char *eq = strchr(s, '=');
			if (!eq) {
				rc = fail(&p, "expected 'key = value' or a [section]");
			} else {
				*eq = '\0';
				char *k = trim(s), *v = trim(eq + 1);
				if (!*k)
					rc = fail(&p, "missing key before '='");
				else if (!*v)
					rc = fail(&p, "%s: missing value", k);
				else if (p.section == SEC_GLOBAL)
					rc = global_key(&p, k, v);
				else if (p.section == SEC_STOMP)
					rc = stomp_key(&p, k, v);
				else if (p.section == SEC_MQTT)
					rc = mqtt_key(&p, k, v);
				else if (p.section == SEC_HA)
					rc = ha_key(&p, k, v);
				else if (p.section == SEC_AUTH)
					rc = auth_key(&p, k, v);
				else if (p.section == SEC_LISTENER)
					rc = listener_key(&p, k, v);
				else if (p.section == SEC_ADMIN)
					rc = admin_key(&p, k, v);
				else if (p.section == SEC_AUDIT)
					rc = audit_key(&p, k, v);
				else if (p.section == SEC_ALARM)
					rc = alarm_key(&p, k, v);
				else
					rc = dest_key(&p, k, v);
			}
		}
		if (rc < 0 || !nl)
			break;
		cursor = nl + 1;
	}
	free(copy);
	if (rc == 0)
		rc = check_complete(&p);
	return rc;
}

char *config_read_text(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	char chunk[4096];
	size_t n;
	int rc = mem ? 0 : -1;
	while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (fwrite(chunk, 1, n, mem) != n)
			rc = -1;
	if (ferror(f))
		rc = -1;
	fclose(f);
	if (mem)
		fclose(mem);
	if (rc < 0 || !text || memchr(text, '\0', len)) {
		snprintf(err, errlen, "%s: cannot read the file as text", path);
		free(text);
		return NULL;
	}
	return text;
}

int config_load(struct wharf_config *cfg, const char *path, char *err, size_t errlen)
{
	char *text = config_read_text(path, err, errlen);
	if (!text)
		return -1;
	int rc = config_parse(cfg, path, text, err, errlen);
	free(text);
	return rc;
}
