/* wharfctl's admin commands (docs/operations.md, wharfctl): one request to
 * a broker's admin HTTP API (docs/admin-api.md) through libevent's evhttp
 * client, its JSON answer shown as an aligned table, or as it came with
 * --json. Exit status 0 ok, 1 the API's error (or none reached), 2 usage. */
#include "config.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/wharfctl/admin.h"
#include "util/utf8.h"

#define DEFAULT_ADMIN "http://127.0.0.1:8161"
#define TIMEOUT_S 30
/* A body longer than this is cut in browse's table (--json shows it all). */
#define BODY_SHOWN 40

struct opts {
	const char *admin;
	const char *user;     /* HTTP Basic, with the password below */
	char password[256];
	const char *cacert;   /* https://: the CA to trust (else the system's) */
	bool json, persistent;
	const char *to;
	long count;
};

struct answer {
	struct event_base *base;
	int status; /* 0: no answer */
	json_t *j;
};

static void got_answer(struct evhttp_request *req, void *arg)
{
	struct answer *an = arg;
	/* The connection stays open (keep-alive): the loop ends here. */
	event_base_loopexit(an->base, NULL);
	if (!req)
		return;
	an->status = evhttp_request_get_response_code(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	if (len)
		an->j = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL);
}

/* https://: a client SSL that checks the server's certificate against
 * --cacert (or the system's CAs) and the URL's host (a name or an IP
 * address). NULL with the reason printed. */
static SSL *client_ssl(const struct opts *o, const char *host)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	if (ctx && (o->cacert ? SSL_CTX_load_verify_locations(ctx, o->cacert, NULL)
			      : SSL_CTX_set_default_verify_paths(ctx)) == 1) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		ssl = SSL_new(ctx);
	}
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
	if (ssl && (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
			  : SSL_set1_host(ssl, host) && SSL_set_tlsext_host_name(ssl, host)) != 1) {
		SSL_free(ssl);
		ssl = NULL;
	}
	SSL_CTX_free(ctx); /* the SSL keeps its own reference */
	if (!ssl)
		fprintf(stderr, "wharfctl: cannot set up TLS%s%s\n", o->cacert ? " with " : "",
			o->cacert ? o->cacert : "");
	return ssl;
}

/* --user: "Basic " and base64 of user:password, in out. */
static void basic_auth(const struct opts *o, char *out, size_t len)
{
	char plain[512];
	int n = snprintf(plain, sizeof(plain), "%s:%s", o->user, o->password);
	unsigned char b64[4 * (sizeof(plain) / 3 + 1) + 1];
	if (n < 0 || (size_t)n >= sizeof(plain))
		n = 0;
	EVP_EncodeBlock(b64, (const unsigned char *)plain, n);
	snprintf(out, len, "Basic %s", b64);
	OPENSSL_cleanse(plain, sizeof(plain));
}

/* One request; the answer's JSON (NULL when not JSON) in an. -1 when no
 * answer came, with the reason printed. */
static int request(const struct opts *o, enum evhttp_cmd_type method, const char *path,
		   json_t *body, struct answer *an)
{
	struct evhttp_uri *uri = evhttp_uri_parse(o->admin);
	const char *host = uri ? evhttp_uri_get_host(uri) : NULL;
	const char *scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;
	bool tls = scheme && !strcmp(scheme, "https");
	if (!host || !scheme || (strcmp(scheme, "http") && !tls)) {
		fprintf(stderr, "wharfctl: --admin '%s' is not http:// or https://HOST:PORT\n",
			o->admin);
		if (uri)
			evhttp_uri_free(uri);
		return -1;
	}
	int port = evhttp_uri_get_port(uri);
	if (port < 0)
		port = tls ? 443 : 80;
	struct event_base *base = event_base_new();
	SSL *ssl = base && tls ? client_ssl(o, host) : NULL;
	struct bufferevent *bev =
		ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						     BEV_OPT_CLOSE_ON_FREE)
		    : NULL;
	struct evhttp_connection *conn =
		!base || (tls && !bev) ? NULL
		: evhttp_connection_base_bufferevent_new(base, NULL, bev, host, (ev_uint16_t)port);
	struct evhttp_request *req = conn ? evhttp_request_new(got_answer, an) : NULL;
	int rc = -1;
	an->base = base;
	an->status = 0;
	an->j = NULL;
	if (req) {
		evhttp_connection_set_timeout(conn, TIMEOUT_S);
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		evhttp_add_header(h, "Host", host);
		evhttp_add_header(h, "Accept", "application/json");
		if (o->user) {
			char auth[800];
			basic_auth(o, auth, sizeof(auth));
			evhttp_add_header(h, "Authorization", auth);
			OPENSSL_cleanse(auth, sizeof(auth));
		}
		if (body) {
			char *text = json_dumps(body, JSON_COMPACT);
			evhttp_add_header(h, "Content-Type", "application/json");
			if (text)
				evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
			free(text);
		}
		if (evhttp_make_request(conn, req, method, path) == 0) {
			event_base_dispatch(base);
			rc = an->status ? 0 : -1;
		}
	}
	if (rc < 0)
		fprintf(stderr, "wharfctl: no answer from the admin API at %s\n", o->admin);
	if (conn)
		evhttp_connection_free(conn);
	if (base)
		event_base_free(base);
	evhttp_uri_free(uri);
	return rc;
}

/* A destination's path: "/api/v1/KIND/NAME" + tail, NAME escaped. */
static char *dest_path(const char *kind, const char *name, const char *tail)
{
	char *esc = evhttp_uriencode(name, -1, 0);
	size_t n = esc ? strlen(kind) + strlen(esc) + strlen(tail) + 16 : 0;
	char *path = n ? malloc(n) : NULL;
	if (path)
		snprintf(path, n, "/api/v1/%s/%s%s", kind, esc, tail);
	free(esc);
	return path;
}

static void cell(const json_t *v, char *out, size_t cap)
{
	if (json_is_string(v))
		snprintf(out, cap, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(out, cap, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(out, cap, "%.1f", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(out, cap, "%s", json_is_true(v) ? "yes" : "no");
	else if (!v || json_is_null(v))
		snprintf(out, cap, "-");
	else {
		char *text = json_dumps(v, JSON_COMPACT);
		snprintf(out, cap, "%s", text ? text : "?");
		free(text);
	}
	/* A long name is cut to the cell, but between characters. */
	out[utf8_whole(out, strlen(out))] = '\0';
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
}

/* The rows of list as a table of the given columns (key=HEADER pairs,
 * NULL-ended), each column as wide as its widest cell. */
static void table(const json_t *list, const char *const *cols)
{
	size_t ncols = 0;
	while (cols[2 * ncols])
		ncols++;
	size_t width[16] = { 0 };
	char buf[256];
	for (size_t c = 0; c < ncols; c++)
		width[c] = strlen(cols[2 * c + 1]);
	size_t i;
	const json_t *row;
	json_array_foreach(list, i, row) {
		for (size_t c = 0; c < ncols; c++) {
			cell(json_object_get(row, cols[2 * c]), buf, sizeof(buf));
			if (strlen(buf) > width[c])
				width[c] = strlen(buf);
		}
	}
	for (size_t c = 0; c < ncols; c++)
		printf("%-*s%s", (int)width[c], cols[2 * c + 1], c + 1 < ncols ? "  " : "\n");
	json_array_foreach(list, i, row) {
		for (size_t c = 0; c < ncols; c++) {
			cell(json_object_get(row, cols[2 * c]), buf, sizeof(buf));
			if (c + 1 < ncols)
				printf("%-*s  ", (int)width[c], buf);
			else
				printf("%s\n", buf);
		}
	}
}

/* An object's members, one "key  value" line each, keys aligned. */
static void members(const json_t *o)
{
	size_t w = 0;
	const char *key;
	const json_t *v;
	char buf[256];
	json_object_foreach((json_t *)o, key, v) {
		if (strlen(key) > w)
			w = strlen(key);
	}
	json_object_foreach((json_t *)o, key, v) {
		cell(v, buf, sizeof(buf));
		printf("%-*s  %s\n", (int)w, key, buf);
	}
}

static const char *const queue_cols[] = { "name", "NAME", "depth", "DEPTH", "unacked", "UNACKED",
					  "consumers", "CONSUMERS", "enqueued", "ENQUEUED",
					  "dequeued", "DEQUEUED", "dead_lettered", "DEAD-LETTERED",
					  NULL };
static const char *const conn_cols[] = { "id", "ID", "protocol", "PROTOCOL", "remote", "REMOTE",
					 "principal", "PRINCIPAL", "since", "SINCE",
					 "messages_in", "IN", "messages_out", "OUT", NULL };
static const char *const msg_cols[] = { "id", "ID", "timestamp", "TIMESTAMP", "persistent",
					"PERSISTENT", "delivery_count", "DELIVERIES", "body", "BODY",
					NULL };
static const char *const binding_cols[] = { "pattern", "PATTERN", "kind", "KIND", "queue",
					    "QUEUE", "label", "SUBSCRIPTION", "consumers",
					    "CONSUMERS", "depth", "DEPTH", NULL };
static const char *const session_cols[] = { "client_id", "CLIENT-ID", "connected", "CONNECTED",
					    "user", "USER", "persistent", "PERSISTENT",
					    "expires_at", "EXPIRES", "queued", "QUEUED",
					    "inflight", "INFLIGHT", "will", "WILL",
					    "subscriptions", "SUBSCRIPTIONS", NULL };
static const char *const alarm_cols[] = { "name", "NAME", "state", "STATE", "value", "VALUE",
					  "comparison", "IF", "threshold", "THRESHOLD", "metric",
					  "METRIC", "since", "SINCE", NULL };

/* The answer shown: an error's text (exit 1), --json as it came, or the
 * table of cols (a list), or the object's members. */
static int show(const struct opts *o, const struct answer *an, const char *const *cols)
{
	if (an->status >= 400 || !an->j) {
		const char *err = json_string_value(json_object_get(an->j, "error"));
		fprintf(stderr, "wharfctl: %d %s\n", an->status, err ? err : "(no JSON answer)");
		return 1;
	}
	if (o->json) {
		char *text = json_dumps(an->j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", text ? text : "null");
		free(text);
	} else if (cols && json_is_array(an->j)) {
		table(an->j, cols);
	} else {
		members(an->j);
	}
	return 0;
}

/* Browse's bodies cut for the table. */
static void cut_bodies(json_t *list)
{
	size_t i;
	json_t *m;
	json_array_foreach(list, i, m) {
		const char *body = json_string_value(json_object_get(m, "body"));
		if (body && strlen(body) > BODY_SHOWN) {
			char cut[BODY_SHOWN + 4];
			snprintf(cut, sizeof(cut), "%.*s...", BODY_SHOWN, body);
			json_object_set_new(m, "body", json_string(cut));
		} else if (!body) {
			json_object_set_new(m, "body", json_string("(binary)"));
		}
	}
}

/* Each session's subscriptions as their filters, "a,b", for the table. */
static void sub_filters(json_t *list)
{
	size_t i, j;
	json_t *s, *sub;
	json_array_foreach(list, i, s) {
		char text[256] = "";
		size_t n = 0;
		json_array_foreach(json_object_get(s, "subscriptions"), j, sub) {
			const char *f = json_string_value(json_object_get(sub, "filter"));
			int w = snprintf(text + n, sizeof(text) - n, "%s%s", j ? "," : "", f ? f : "?");
			if (w < 0 || (size_t)w >= sizeof(text) - n)
				break;
			n += (size_t)w;
		}
		json_object_set_new(s, "subscriptions", json_string(text));
	}
}

/* One call and its answer shown; path NULL is out of memory. */
static int call(const struct opts *o, enum evhttp_cmd_type method, char *path, json_t *body,
		const char *const *cols, void (*adjust)(json_t *))
{
	struct answer an;
	int rc = 1;
	if (path && request(o, method, path, body, &an) == 0) {
		if (adjust && an.status < 400 && an.j && !o->json)
			adjust(an.j);
		rc = show(o, &an, cols);
		json_decref(an.j);
	}
	free(path);
	json_decref(body);
	return rc;
}

static int alarms(const struct opts *o)
{
	struct answer an;
	if (request(o, EVHTTP_REQ_GET, "/api/v1/alarms", NULL, &an) < 0)
		return 1;
	const char *err = json_string_value(json_object_get(an.j, "error"));
	int rc;
	if (an.status == 404 && err && !strcmp(err, "no such resource")) {
		fprintf(stderr, "wharfctl: no alarms endpoint on this broker\n");
		rc = 1;
	} else {
		rc = show(o, &an, alarm_cols);
	}
	json_decref(an.j);
	return rc;
}

/* DEST as /queue/NAME, /topic/NAME or NAME (a queue). */
static char *send_path(const char *dest)
{
	if (!strncmp(dest, "/topic/", 7))
		return dest_path("topics", dest + 7, "/messages");
	if (!strncmp(dest, "/queue/", 7))
		dest += 7;
	return dest_path("queues", dest, "/messages");
}

void wharfctl_admin_usage(FILE *f)
{
	fprintf(f,
		"Admin commands (over the broker's admin HTTP API, docs/admin-api.md):\n"
		"  wharfctl [--admin URL] [--json] COMMAND ...\n"
		"\n"
		"  broker                      the broker: version, state, counts\n"
		"  queues                      every queue: depth, unacked, consumers, counters\n"
		"  queue create|delete|purge NAME\n"
		"  browse NAME [--count N]     the first N waiting messages, not taken (100)\n"
		"  send DEST BODY [--persistent]\n"
		"                              DEST is /queue/NAME, /topic/NAME or NAME (a queue)\n"
		"  bindings                    topic bindings feeding queues: named queues,\n"
		"                              subscriptions, share groups, durable ones\n"
		"  connections                 client connections\n"
		"  close ID                    closes connection ID\n"
		"  sessions                    MQTT client sessions, connected or not\n"
		"  session show|delete ID      one session: its subscriptions; ends it (its\n"
		"                              client must not be connected)\n"
		"  move SRC [--to DST] [--count N]\n"
		"                              SRC's waiting messages to DST, or without --to\n"
		"                              each back to the queue it died in (a DLQ)\n"
		"  alarms                      alarms and their states\n"
		"\n"
		"  --admin URL   the admin API (default %s, the shipped config's);\n"
		"                https://HOST:PORT checks the broker's certificate\n"
		"  --cacert FILE with https://, the CA to trust (default: the system's)\n"
		"  --user NAME   log in as NAME (HTTP Basic); the password is read from\n"
		"                $WHARFCTL_PASSWORD, or from the first line of\n"
		"  --password-file FILE\n"
		"  --json        print the API's JSON answer instead of a table\n"
		"\n"
		"  Exit status: 0 done, 1 the API refused (its error printed) or did not\n"
		"  answer, 2 a usage mistake.\n",
		DEFAULT_ADMIN);
}

/* The password for --user: the first line of file, else
 * $WHARFCTL_PASSWORD. -1 when neither gives one. */
static int password_of(const char *file, char *out, size_t len)
{
	const char *env = getenv("WHARFCTL_PASSWORD");
	if (!file) {
		if (!env || strlen(env) >= len)
			return -1;
		snprintf(out, len, "%s", env);
		return 0;
	}
	FILE *f = fopen(file, "r");
	if (!f)
		return -1;
	char *got = fgets(out, (int)len, f);
	fclose(f);
	if (!got)
		return -1;
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

static int usage_error(const char *why)
{
	fprintf(stderr, "wharfctl: %s (wharfctl --help)\n", why);
	return 2;
}

bool wharfctl_admin_command(const char *word)
{
	static const char *const words[] = { "broker", "queues", "queue", "browse", "send",
					      "connections", "close", "move", "alarms", "bindings",
					      "sessions", "session", NULL };
	for (const char *const *w = words; *w; w++)
		if (!strcmp(word, *w))
			return true;
	return false;
}

int wharfctl_admin(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "admin", required_argument, NULL, 'a' }, { "json", no_argument, NULL, 'j' },
		{ "count", required_argument, NULL, 'n' }, { "to", required_argument, NULL, 't' },
		{ "persistent", no_argument, NULL, 'p' },  { "user", required_argument, NULL, 'u' },
		{ "cacert", required_argument, NULL, 'c' },
		{ "password-file", required_argument, NULL, 'P' }, { NULL, 0, NULL, 0 },
	};
	const char *password_file = NULL;
	struct opts o = { .admin = DEFAULT_ADMIN };
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'a': o.admin = optarg; break;
		case 'j': o.json = true; break;
		case 't': o.to = optarg; break;
		case 'p': o.persistent = true; break;
		case 'u': o.user = optarg; break;
		case 'c': o.cacert = optarg; break;
		case 'P': password_file = optarg; break;
		case 'n':
			o.count = strtol(optarg, &end, 10);
			if (*end || o.count < 1)
				return usage_error("--count is a number of at least 1");
			break;
		default: return usage_error("unknown option");
		}
	}
	if (o.user && password_of(password_file, o.password, sizeof(o.password)) < 0)
		return usage_error("--user needs $WHARFCTL_PASSWORD or a readable --password-file");
	char **w = argv + optind;
	int n = argc - optind;
	if (n < 1)
		return usage_error("no command");
	const char *cmd = w[0];
	if (!strcmp(cmd, "broker") && n == 1)
		return call(&o, EVHTTP_REQ_GET, strdup("/api/v1/broker"), NULL, NULL, NULL);
	if (!strcmp(cmd, "queues") && n == 1)
		return call(&o, EVHTTP_REQ_GET, strdup("/api/v1/queues"), NULL, queue_cols, NULL);
	if (!strcmp(cmd, "connections") && n == 1)
		return call(&o, EVHTTP_REQ_GET, strdup("/api/v1/connections"), NULL, conn_cols,
			    NULL);
	if (!strcmp(cmd, "bindings") && n == 1)
		return call(&o, EVHTTP_REQ_GET, strdup("/api/v1/bindings"), NULL, binding_cols,
			    NULL);
	if (!strcmp(cmd, "sessions") && n == 1)
		return call(&o, EVHTTP_REQ_GET, strdup("/api/v1/sessions"), NULL, session_cols,
			    sub_filters);
	if (!strcmp(cmd, "session") && n == 3) {
		if (!strcmp(w[1], "show"))
			return call(&o, EVHTTP_REQ_GET, dest_path("sessions", w[2], ""), NULL, NULL,
				    NULL);
		if (!strcmp(w[1], "delete"))
			return call(&o, EVHTTP_REQ_DELETE, dest_path("sessions", w[2], ""), NULL,
				    NULL, NULL);
		return usage_error("session show|delete ID");
	}
	if (!strcmp(cmd, "alarms") && n == 1)
		return alarms(&o);
	if (!strcmp(cmd, "close") && n == 2)
		return call(&o, EVHTTP_REQ_DELETE, dest_path("connections", w[1], ""), NULL, NULL,
			    NULL);
	if (!strcmp(cmd, "queue") && n == 3) {
		if (!strcmp(w[1], "create"))
			return call(&o, EVHTTP_REQ_PUT, dest_path("queues", w[2], ""), NULL, NULL, NULL);
		if (!strcmp(w[1], "delete"))
			return call(&o, EVHTTP_REQ_DELETE, dest_path("queues", w[2], ""), NULL, NULL,
				    NULL);
		if (!strcmp(w[1], "purge"))
			return call(&o, EVHTTP_REQ_POST, dest_path("queues", w[2], "/purge"), NULL,
				    NULL, NULL);
		return usage_error("queue create|delete|purge NAME");
	}
	if (!strcmp(cmd, "browse") && n == 2) {
		char tail[48];
		snprintf(tail, sizeof(tail), "/messages?limit=%ld", o.count ? o.count : 100);
		return call(&o, EVHTTP_REQ_GET, dest_path("queues", w[1], tail), NULL, msg_cols,
			    cut_bodies);
	}
	if (!strcmp(cmd, "send") && n == 3)
		return call(&o, EVHTTP_REQ_POST, send_path(w[1]),
			    json_pack("{s:s,s:b}", "body", w[2], "persistent", o.persistent), NULL,
			    NULL);
	if (!strcmp(cmd, "move") && n == 2) {
		json_t *body = json_object();
		if (body && o.to)
			json_object_set_new(body, "to", json_string(o.to));
		if (body && o.count)
			json_object_set_new(body, "count", json_integer(o.count));
		return call(&o, EVHTTP_REQ_POST, dest_path("queues", w[1], "/move"), body, NULL,
			    NULL);
	}
	return usage_error(wharfctl_admin_command(cmd) ? "wrong arguments" : "unknown command");
}
