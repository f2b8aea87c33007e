/* The config parser: values, sections, and FILE:LINE on every mistake. */
#include "config.h"

#include <string.h>

#include "conf.h"
#include "log.h"
#include "protocols/stomp/dest.h"
#include "tap.h"

static int parse(const char *text, char *err, size_t errlen, struct wharf_config **out)
{
	struct wharf_config *cfg = config_new();
	int rc = config_parse(cfg, "t.conf", text, err, errlen);
	if (out)
		*out = cfg;
	else
		config_free(cfg);
	return rc;
}

static void bad(const char *text, const char *want)
{
	char err[256] = "";
	int rc = parse(text, err, sizeof(err), NULL);
	ok(rc < 0 && strstr(err, want) != NULL, "refused: '%s' -> %s", want, err);
}

int main(void)
{
	char err[256];
	struct wharf_config *cfg;
	int rc = parse("# comment\n"
		       "data_dir = /var/lib/wharf   # trailing comment\n"
		       "log_level = debug\n"
		       "max_connection_output = 2MiB\n"
		       "max_transactions = 5\n"
		       "max_transaction_bytes = 1MiB\n"
		       "[listener one]\n"
		       "url = stomp://127.0.0.1:61613\n"
		       "[listener two]\n"
		       "url = stomp://[::1]:0\n"
		       "[stomp]\n"
		       "heartbeat = 5s\n"
		       "prefetch = 10\n"
		       "max_frame_size = 64KiB\n"
		       "dialect = rabbitmq\n"
		       "[topic orders.>]\n"
		       "bind = audit, billing\n"
		       "[queue fixed.*]\n"
		       "auto_create = false\n",
		       err, sizeof(err), &cfg);
	ok(rc == 0, "a full config parses (%s)", rc ? err : "ok");
	is_str(cfg->data_dir, "/var/lib/wharf", "data_dir");
	ok(cfg->log_level == LOG_DEBUG, "log_level");
	ok(cfg->max_connection_output == 2 * 1024 * 1024, "size with MiB");
	ok(cfg->listeners && cfg->listeners->next && !cfg->listeners->next->next, "two listeners");
	is_str(cfg->listeners->name, "one", "listener order kept");
	is_str(cfg->listeners->next->url, "stomp://[::1]:0", "listener url");
	ok(cfg->stomp.heartbeat_ms == 5000, "duration in s");
	ok(cfg->stomp.prefetch == 10, "prefetch");
	ok(cfg->stomp.max_frame_size == 65536, "KiB");
	ok(cfg->stomp.dialect == STOMP_DIALECT_RABBITMQ, "dialect");
	ok(cfg->max_transactions == 5 && cfg->max_transaction_bytes == 1024 * 1024,
	   "transaction bounds");
	ok(cfg->dests && cfg->dests->kind == POLICY_TOPIC && cfg->dests->nbind == 2, "topic binds");
	is_str(cfg->dests->bind[1], "billing", "bind list split on commas and spaces");
	ok(cfg->dests->next && cfg->dests->next->auto_create == 0, "queue auto_create false");
	config_clear_listeners(cfg);
	ok(cfg->listeners == NULL, "clear listeners");
	config_free(cfg);

	rc = parse("", err, sizeof(err), &cfg);
	ok(rc == 0 && cfg->mqtt.max_subscriptions == 0 && cfg->max_subscriptions_per_connection == 1000,
	   "max_subscriptions_per_client: max_subscriptions_per_connection, 1000, by default");
	ok(cfg->max_connections_per_user == 10000 && cfg->max_connections_per_address == 0 &&
	   cfg->max_new_connections_per_address == 0 && cfg->max_unacked_per_connection == 10000,
	   "connection limits by default");
	config_free(cfg);
	rc = parse("max_connections_per_user = 0\nmax_connections_per_address = 3\n"
		   "max_new_connections_per_address = 50\nmax_subscriptions_per_connection = 7\n",
		   err, sizeof(err), &cfg);
	ok(rc == 0 && cfg->max_connections_per_user == 0 && cfg->max_connections_per_address == 3 &&
	   cfg->max_new_connections_per_address == 50 && cfg->max_subscriptions_per_connection == 7,
	   "connection and subscription limits set");
	config_free(cfg);
	bad("max_subscriptions_per_connection = 0\n", "max_subscriptions_per_connection");
	bad("max_new_connections_per_address = many\n", "from 0 to 1000000");
	bad("max_unacked_per_connection = 0\n", "max_unacked_per_connection");
	rc = parse("[mqtt]\nmax_subscriptions_per_client = 65535\n", err, sizeof(err), &cfg);
	ok(rc == 0 && cfg->mqtt.max_subscriptions == 65535, "max_subscriptions_per_client set");
	config_free(cfg);
	bad("[mqtt]\nmax_subscriptions_per_client = 0\n", "max_subscriptions_per_client");
	bad("[mqtt]\nmax_subscriptions_per_client = 65536\n", "from 1 to 65535");
	rc = parse("[audit]\nfile = audit.log\n", err, sizeof(err), &cfg);
	ok(rc == 0 && cfg->audit.file && !strcmp(cfg->audit.file, "audit.log"), "[audit] file");
	config_free(cfg);
	rc = parse("", err, sizeof(err), &cfg);
	ok(rc == 0 && !cfg->audit.file, "no audit log by default");
	config_free(cfg);
	bad("[audit]\nrotate = daily\n", "t.conf:2: unknown key 'rotate' in [audit]");
	bad("[audit x]\n", "t.conf:1: [audit] takes no argument");
	bad("nonsense = 1\n", "t.conf:1: unknown key 'nonsense'");
	bad("\n\n[nope]\n", "t.conf:3: unknown section [nope]");
	bad("[listener a]\n", "t.conf:1: [listener a] has no url");
	bad("[listener a]\nurl = stomp://x:1\n[listener a]\nurl = stomp://x:2\n", "t.conf:3: listener 'a' is defined twice");
	bad("[stomp]\nmax_frame_size = lots\n", "t.conf:2: max_frame_size: 'lots' is not a size");
	bad("[stomp]\nheartbeat = 5 hours\n", "t.conf:2: heartbeat: '5 hours' is not a duration");
	bad("[stomp]\nprefetch = 0\n", "t.conf:2: prefetch: must be at least 1");
	bad("[stomp]\ndialect = openwire\n",
	    "t.conf:2: dialect: 'openwire' is not both, activemq or rabbitmq");
	bad("max_transactions = 0\n", "t.conf:1: max_transactions: must be at least 1");
	bad("log_level = loud\n", "t.conf:1: log_level");
	bad("just words\n", "t.conf:1: expected 'key = value'");
	bad("data_dir =\n", "t.conf:1: data_dir: missing value");
	bad("[queue a.>.b]\n", "t.conf:1: 'a.>.b' is not a valid name pattern");
	bad("[topic t]\nbind = q.*\n", "t.conf:2: bind: 'q.*' is not a valid queue name");
	bad("[queue q]\nbind = x\n", "t.conf:2: unknown key 'bind' in [queue q]");
	bad("[queue q]\nauto_create = maybe\n", "t.conf:2: auto_create");
	bad("[stomp extra]\n", "t.conf:1: [stomp] takes no argument");
	bad("[listener\n", "t.conf:1: section header");
	bad("max_connection_output = 99999999999999999999999\n", "not a size");
	bad("[stomp]\nmax_frame_size = 18446744073709551615GiB\n", "not a size");

	rc = parse("[queue orders.>]\n"
		   "ttl = 30s\n"
		   "retention = 14d\n"
		   "max_length = 1000\n"
		   "max_bytes = 1MiB\n"
		   "overflow = drop-head\n"
		   "max_redeliveries = 5\n"
		   "dead_letter_queue = orders.dead\n"
		   "dead_letter_expired = true\n"
		   "priorities = off\n"
		   "[queue >]\n"
		   "ttl = 2h\n",
		   err, sizeof(err), &cfg);
	ok(rc == 0, "queue policies parse (%s)", err);
	const struct queue_policy *qp = &cfg->dests->policy;
	ok(qp->limits.ttl_ms == 30000 && qp->limits.retention_ms == 14LL * 86400000,
	   "ttl and retention in ms, d is days");
	ok(qp->limits.max_length == 1000 && qp->limits.max_bytes == 1048576 &&
		   qp->limits.overflow == QUEUE_DROP_HEAD,
	   "max_length, max_bytes, overflow");
	ok(qp->limits.max_redeliveries == 5 && qp->limits.dead_letter_expired &&
		   !qp->limits.priorities,
	   "max_redeliveries, dead_letter_expired, priorities");
	is_str(qp->dead_letter_queue, "orders.dead", "dead_letter_queue");
	ok(qp->set == (POLICY_TTL | POLICY_RETENTION | POLICY_MAX_LENGTH | POLICY_MAX_BYTES |
		       POLICY_OVERFLOW | POLICY_MAX_REDELIVERIES | POLICY_DEAD_LETTER_QUEUE |
		       POLICY_DEAD_LETTER_EXPIRED | POLICY_PRIORITIES),
	   "every key marked as set");
	ok(cfg->dests->next->policy.set == POLICY_TTL &&
		   cfg->dests->next->policy.limits.ttl_ms == 7200000,
	   "a second section sets only what it names; h is hours");
	config_free(cfg);
	bad("[queue q]\nretention = 15d\n", "t.conf:2: retention: at most 14 days");
	bad("[queue q]\nretention = 0s\n", "t.conf:2: retention: must be more than 0");
	bad("[queue q]\nttl = soon\n", "t.conf:2: ttl: 'soon' is not a duration");
	bad("[queue q]\noverflow = spill\n",
	    "t.conf:2: overflow: 'spill' is not block, drop-head or reject-publish");
	bad("[queue q]\nmax_redeliveries = 0\n", "t.conf:2: max_redeliveries");
	bad("[queue q]\ndead_letter_queue = a.*\n", "t.conf:2: dead_letter_queue: 'a.*' is not");
	bad("[queue q]\npriorities = maybe\n", "t.conf:2: priorities");
	bad("[topic t]\nttl = 1s\n", "t.conf:2: unknown key 'ttl' in [topic t]");

	rc = parse("[ha]\nrole = standby\nnode_id = b\nlisten = repl://127.0.0.1\n"
		   "peer = repl://127.0.0.1:7001\nsecret = 0123456789abcdef\nsync = local\n"
		   "sync_timeout = 2s\nstandby_listen = false\n",
		   err, sizeof(err), &cfg);
	ok(rc == 0, "an [ha] section parses (%s)", err);
	ok(cfg->ha.role == HA_STANDBY && cfg->ha.sync == HA_SYNC_LOCAL &&
		   cfg->ha.sync_timeout_ms == 2000 && !cfg->ha.standby_listen,
	   "role, sync, sync_timeout, standby_listen");
	is_str(cfg->ha.listen, "repl://127.0.0.1:61617", "listen without a port gets 61617");
	is_str(cfg->ha.peer, "repl://127.0.0.1:7001", "peer keeps its port");
	config_free(cfg);
	bad("[ha]\nrole = primary\nnode_id = a\nlisten = repl://h\npeer = repl://p\n",
	    "t.conf:1: [ha] needs secret (or secret_file) or mutual TLS");
	bad("[ha]\nrole = primary\nlisten = repl://h\n", "t.conf:1: [ha] needs node_id");
	bad("[ha]\nsecret = short\n", "t.conf:2: secret: must be at least 16");
	bad("[ha]\npeer = tcp://h:1\n", "t.conf:2: peer: 'tcp://h:1' is not repl://HOST:PORT");
	bad("[ha]\nrole = leader\n", "t.conf:2: role: 'leader' is not none, primary, standby or auto");
	bad("[ha]\nrole = auto\nnode_id = a\nlisten = repl://h\npeer = repl://p\n"
	    "secret = 0123456789abcdef\n",
	    "t.conf:1: [ha] role = auto needs an arbiter");
	bad("[ha x]\n", "t.conf:1: [ha] takes no argument");

	/* [admin]: off unless set; loopback only unless allow_remote. */
	rc = parse("[admin]\nlisten = http://127.0.0.1:8161\nmetrics_max_destinations = 10\n", err,
		   sizeof(err), &cfg);
	ok(rc == 0 && !strcmp(cfg->admin.listen, "http://127.0.0.1:8161") &&
		   cfg->admin.metrics_max_destinations == 10 && !cfg->admin.allow_remote,
	   "[admin] listen and metrics_max_destinations");
	config_free(cfg);
	rc = parse("[admin]\nlisten = http://10.1.2.3:8161\nallow_remote = true\n", err, sizeof(err),
		   &cfg);
	ok(rc == 0 && cfg->admin.allow_remote, "[admin] allow_remote lets a remote address in");
	config_free(cfg);
	bad("[admin]\nlisten = http://10.1.2.3:8161\n", "t.conf:1: [admin] listen: 10.1.2.3 is not a loopback address");
	bad("[admin]\nlisten = ftp://127.0.0.1:1\n", "t.conf:2: listen: 'ftp://127.0.0.1:1': the admin API speaks http:// or https://");
	bad("[admin]\nlisten = https://127.0.0.1:1\n", "t.conf:1: [admin] listen = https:// needs tls_cert and tls_key");
	bad("[admin]\nport = 1\n", "t.conf:2: unknown key 'port' in [admin]");
	bad("[admin x]\n", "t.conf:1: [admin] takes no argument");

	cfg = config_new();
	ok(cfg->admin.listen == NULL && cfg->admin.metrics_max_destinations == 1000,
	   "defaults: no admin listener, 1000 destinations in /metrics");
	config_free(cfg);
	rc = parse("[auth]\nusers_file = /etc/wharf/users\nfailure_delay = 2s\n"
		   "max_failures_per_address = 5\nfailure_window = 30s\n"
		   "[listener a]\nurl = stomp://127.0.0.1:1\n"
		   "[listener b]\nurl = mqtt://127.0.0.1:2\nallow_anonymous = true\n",
		   err, sizeof(err), &cfg);
	ok(rc == 0, "an [auth] section parses (%s)", err);
	ok(cfg->auth.failure_delay_ms == 2000 && cfg->auth.max_failures == 5 &&
		   cfg->auth.failure_window_ms == 30000,
	   "failure_delay, max_failures_per_address, failure_window");
	is_str(cfg->auth.users_file, "/etc/wharf/users", "users_file");
	ok(!config_allow_anonymous(cfg, cfg->listeners) &&
		   config_allow_anonymous(cfg, cfg->listeners->next),
	   "with users, listeners refuse anonymous clients unless they allow them");
	config_free(cfg);
	rc = parse("[listener a]\nurl = stomp://127.0.0.1:1\n", err, sizeof(err), &cfg);
	ok(rc == 0 && cfg->auth.failure_delay_ms == 1000 && cfg->auth.max_failures == 10 &&
		   cfg->auth.failure_window_ms == 60000 && !cfg->auth.users_file &&
		   config_allow_anonymous(cfg, cfg->listeners),
	   "defaults: no users, 1s, 10 per 60s, anonymous allowed");
	config_free(cfg);
	bad("[listener a]\nurl = stomp://h:1\nallow_anonymous = false\n",
	    "t.conf:1: [listener a] allow_anonymous = false needs [auth] users_file");
	bad("[listener a]\nallow_anonymous = maybe\n", "t.conf:2: allow_anonymous: 'maybe' is not true or false");
	bad("[auth]\nfailure_delay = 2m\n", "t.conf:2: failure_delay: at most 60s");
	bad("[auth]\nfailure_window = 0\n", "t.conf:2: failure_window: must be more than 0");
	bad("[auth]\nusers = x\n", "t.conf:2: unknown key 'users' in [auth]");
	bad("[auth x]\n", "t.conf:1: [auth] takes no argument");

	cfg = config_new();
	ok(cfg->stomp.dialect == STOMP_DIALECT_BOTH && cfg->max_transactions == 64 &&
		   cfg->max_transaction_bytes == 64 * 1024 * 1024,
	   "defaults: dialect both, 64 transactions of 64 MiB");
	ok(config_load(cfg, "/nonexistent/wharf.conf", err, sizeof(err)) < 0 &&
		   strstr(err, "/nonexistent/wharf.conf"),
	   "a missing file names the path");
	config_free(cfg);
	return tap_done();
}
