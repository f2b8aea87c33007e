/* The arbiter over etcd's v3 JSON gateway (src/ha/arbiter.h has the design
 * and the timing argument). One request at a time on one HTTP connection:
 * the campaign is a chain of steps (revoke a stale lease, read, grant, txn),
 * the leader's a chain of keep-alives; a timer starts each step, another
 * bounds each request, a third is the lost deadline. A follower also keeps
 * a watch on the leader key open on a second connection, so that it reads
 * again as soon as the key goes instead of at the next poll; the poll stays,
 * in case the watch fails. */
#include "config.h"
#include "ha/arbiter.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "net/url.h"
#include "util/clock.h"

#define FAIL_LOG_INTERVAL_MS 30000

enum state {
	ST_IDLE,     /* not campaigning (a resign's revoke may be pending) */
	ST_CAMPAIGN, /* trying to take the leader key */
	ST_LEADER,   /* holding it */
};

enum req_kind { REQ_REVOKE, REQ_RANGE, REQ_GRANT, REQ_TXN, REQ_KEEPALIVE };

static const char *const req_names[] = { "lease revoke", "range", "lease grant", "txn",
					  "lease keep-alive" };

struct arbiter {
	struct event_base *base;
	struct evdns_base *dns; /* NULL when the host is an address */
	struct evhttp_connection *conn;
	struct evhttp_connection *watch_conn; /* the follower's watch only */
	struct evhttp_request *watch_req;     /* NULL: no watch open */
	char host_header[300];
	char *url, *node_id;
	char *leader_key, *epoch_key, *prefix, *prefix_end; /* base64 */
	char *last_key, *sync_key;                           /* base64 */
	unsigned ttl_ms, ttl_s;
	struct arbiter_cbs cbs;
	void *arg;

	enum state state;
	struct event *step_ev;     /* starts the next step */
	struct event *req_ev;      /* the request in flight's timeout */
	struct event *deadline_ev; /* the leader's lost deadline */
	struct evhttp_request *req;
	enum req_kind kind;
	int64_t sent_ms;  /* when the request in flight was sent */
	int64_t grant_ms; /* when the grant of lease was sent */
	int64_t lease;    /* our lease while granted or leading; 0: none */
	int64_t revoke;   /* a lease to revoke before anything else; 0: none */
	int64_t deadline_ms;
	unsigned backoff_ms;

	uint64_t epoch;          /* ours while leader, else as last read */
	int64_t epoch_mod_rev;   /* of the epoch key as read; 0: absent */
	char *leader;            /* as last seen; NULL: none or unknown */
	int64_t leader_rev;      /* its key's create_revision: one per term */
	int64_t reported_rev;    /* the term last reported to cbs->follower */

	/* Who may take over (ha/arbiter.h "Who may campaign"), as last read. */
	char *last, *sync;       /* NULL: absent */
	int64_t last_mod_rev, sync_mod_rev; /* 0: absent */
	bool waiting_logged;     /* "not campaigning" said for this state */

	/* The leader's writes of the sync key, on a connection of their own. */
	struct evhttp_connection *sync_conn;
	struct evhttp_request *sync_req;
	struct event *sync_ev;   /* a failed write's retry */
	char *sync_want;         /* the value asked for; NULL: none */
	bool sync_want_set;      /* something asked for and not written yet */
	void (*sync_done)(void *arg, bool ok);
	void *sync_arg;

	unsigned fails;          /* in the current run of failures */
	int64_t fail_logged_ms;  /* last failure log line */
};

static void step(struct arbiter *a);

/* ---- small helpers ---------------------------------------------------- */

static char *b64_encode(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
	return out;
}

/* A NUL-terminated copy of the decoded text; NULL if malformed. */
static char *b64_decode(const char *s)
{
	size_t n = strlen(s);
	if (n % 4)
		return NULL;
	char *out = malloc(n / 4 * 3 + 1);
	if (!out)
		return NULL;
	int len = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n) : 0;
	if (len < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	for (size_t i = n; i > 0 && s[i - 1] == '='; i--)
		len--;
	out[len] = '\0';
	return out;
}

/* An int64 field the gateway writes as a decimal string (or a number). */
static bool json_i64(json_t *obj, const char *key, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	const char *s = json_string_value(v);
	if (!s || !*s)
		return false;
	char *end;
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (*end || errno)
		return false;
	*out = x;
	return true;
}

static void set_leader(struct arbiter *a, const char *name, int64_t rev)
{
	a->leader_rev = rev;
	if (!name)
		a->reported_rev = 0;
	if (name && a->leader && !strcmp(name, a->leader))
		return;
	free(a->leader);
	a->leader = name ? strdup(name) : NULL;
}

/* Arms a timer to fire in ms (now if ms <= 0). */
static void arm(struct event *ev, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(ev, &tv);
}

static void schedule(struct arbiter *a, int64_t delay_ms)
{
	arm(a->step_ev, delay_ms);
}

/* ---- failures and their log ------------------------------------------- */

static void fail(struct arbiter *a, const char *why)
{
	int64_t now = clock_mono_ms();
	a->fails++;
	if (a->fails == 1 || now - a->fail_logged_ms >= FAIL_LOG_INTERVAL_MS) {
		log_warn("arbiter: etcd %s: %s failed: %s%s", a->url, req_names[a->kind], why,
			 a->fails > 1 ? " (still failing)" : "");
		a->fail_logged_ms = now;
	}
}

static void answered(struct arbiter *a)
{
	if (a->fails)
		log_info("arbiter: etcd %s answers again after %u failed requests", a->url, a->fails);
	a->fails = 0;
	a->backoff_ms = 0;
}

/* A campaign step failed: try again later, waiting longer each time. */
static void retry_later(struct arbiter *a)
{
	unsigned cap = a->ttl_ms > 1000 ? a->ttl_ms : 1000;
	a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : a->ttl_ms / 4;
	if (a->backoff_ms > cap)
		a->backoff_ms = cap;
	schedule(a, a->backoff_ms);
}

/* ---- requests ---------------------------------------------------------- */

static void cancel_request(struct arbiter *a)
{
	evtimer_del(a->req_ev);
	if (a->req) {
		evhttp_cancel_request(a->req);
		a->req = NULL;
	}
}

static void lose(struct arbiter *a, const char *why)
{
	log_warn("arbiter: lost the lead of the pair (%s): this node must stop being active", why);
	cancel_request(a);
	evtimer_del(a->deadline_ev);
	evtimer_del(a->step_ev);
	a->revoke = a->lease; /* it may outlive etcd's restart: revoke it when etcd answers */
	a->lease = 0;
	a->state = ST_CAMPAIGN;
	set_leader(a, NULL, 0);
	schedule(a, a->ttl_ms / 4);
	if (a->cbs.lost)
		a->cbs.lost(a->arg);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct arbiter *a = arg;
	if (a->state == ST_LEADER)
		lose(a, "the lease could not be renewed in time");
}

static void on_answer(struct arbiter *a, int code, json_t *body);
static void on_failure(struct arbiter *a, const char *why);

static void response_cb(struct evhttp_request *req, void *arg)
{
	struct arbiter *a = arg;
	a->req = NULL;
	evtimer_del(a->req_ev);
	int code = req ? evhttp_request_get_response_code(req) : 0;
	if (!code) {
		on_failure(a, "no answer (refused, closed or reset)");
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *text = (const char *)evbuffer_pullup(in, -1);
	json_error_t jerr;
	/* A keep-alive's streamed answer ends with a newline, maybe more. */
	json_t *body = text ? json_loadb(text, len, JSON_DISABLE_EOF_CHECK, &jerr) : NULL;
	if (!json_is_object(body)) {
		char why[160];
		snprintf(why, sizeof(why), "HTTP %d with no JSON object", code);
		json_decref(body);
		on_failure(a, why);
		return;
	}
	on_answer(a, code, body);
	json_decref(body);
}

static void req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct arbiter *a = arg;
	if (!a->req)
		return;
	evhttp_cancel_request(a->req);
	a->req = NULL;
	on_failure(a, "timed out");
}

/* A POST request with body (taken) as JSON; NULL on out of memory. */
static struct evhttp_request *new_request(struct arbiter *a, void (*cb)(struct evhttp_request *, void *),
					  json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	struct evhttp_request *req = text ? evhttp_request_new(cb, a) : NULL;
	if (req) {
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		evhttp_add_header(h, "Host", a->host_header);
		evhttp_add_header(h, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
	}
	free(text);
	return req;
}

/* Sends POST /v3/PATH with body (taken); the answer comes to on_answer or
 * on_failure, never from inside this call. */
static void send_request(struct arbiter *a, enum req_kind kind, const char *path, json_t *body,
			 unsigned timeout_ms)
{
	a->kind = kind;
	a->sent_ms = clock_mono_ms();
	struct evhttp_request *req = new_request(a, response_cb, body);
	if (!req) {
		on_failure(a, "out of memory");
		return;
	}
	/* The connection's own timeout backs up req_ev. */
	struct timeval tv = { (time_t)(a->ttl_ms / 1000) + 1, 0 };
	evhttp_connection_set_timeout_tv(a->conn, &tv);
	if (evhttp_make_request(a->conn, req, EVHTTP_REQ_POST, path) < 0) {
		on_failure(a, "could not send"); /* req is freed */
		return;
	}
	a->req = req;
	arm(a->req_ev, timeout_ms);
}

static json_t *lease_body(int64_t id)
{
	char s[24];
	snprintf(s, sizeof(s), "%" PRId64, id);
	return json_pack("{s:s}", "ID", s);
}

/* A compare that key is as read: its mod_revision, or absent. */
static json_t *unchanged(const char *key, int64_t mod_rev)
{
	char rev[24];
	snprintf(rev, sizeof(rev), "%" PRId64, mod_rev);
	return mod_rev ? json_pack("{s:s, s:s, s:s, s:s}", "key", key, "target", "MOD", "result",
				   "EQUAL", "mod_revision", rev)
		       : json_pack("{s:s, s:s, s:s, s:s}", "key", key, "target", "CREATE", "result",
				   "EQUAL", "create_revision", "0");
}

/* If the leader key is absent and the epoch, last and sync keys are as
 * read (what may_lead decided on): leader = node_id with the lease, epoch +
 * 1, last = node_id. */
static void send_txn(struct arbiter *a)
{
	char lease[24], next[24];
	snprintf(lease, sizeof(lease), "%" PRId64, a->lease);
	snprintf(next, sizeof(next), "%" PRIu64, a->epoch + 1);
	char *node = b64_encode(a->node_id), *value = b64_encode(next);
	json_t *body = NULL;
	if (node && value)
		body = json_pack("{s:[{s:s, s:s, s:s, s:s}, o, o, o],"
				 " s:[{s:{s:s, s:s, s:s}}, {s:{s:s, s:s}}, {s:{s:s, s:s}}],"
				 " s:[{s:{s:s}}, {s:{s:s}}]}",
				 "compare", "key", a->leader_key, "target", "CREATE", "result", "EQUAL",
				 "create_revision", "0", unchanged(a->epoch_key, a->epoch_mod_rev),
				 unchanged(a->last_key, a->last_mod_rev),
				 unchanged(a->sync_key, a->sync_mod_rev),
				 "success", "request_put", "key", a->leader_key, "value", node, "lease",
				 lease, "request_put", "key", a->epoch_key, "value", value, "request_put",
				 "key", a->last_key, "value", node,
				 "failure", "request_range", "key", a->leader_key,
				 "request_range", "key", a->epoch_key);
	free(node);
	free(value);
	send_request(a, REQ_TXN, "/v3/kv/txn", body, a->ttl_ms);
}

/* ---- the leader's sync key ------------------------------------------------ */

static void send_sync(struct arbiter *a);

static void sync_cb(struct evhttp_request *req, void *arg)
{
	struct arbiter *a = arg;
	a->sync_req = NULL;
	bool ok = false;
	if (req && evhttp_request_get_response_code(req) == 200) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		json_error_t jerr;
		json_t *body = json_loadb((const char *)evbuffer_pullup(in, -1),
					  evbuffer_get_length(in), 0, &jerr);
		ok = json_is_true(json_object_get(body, "succeeded"));
		json_decref(body);
	}
	if (a->sync_want_set) {
		send_sync(a); /* asked again meanwhile: that is what counts */
		return;
	}
	if (!ok)
		log_warn("arbiter: could not %s the pair's standby in sync in etcd%s",
			 a->sync_want ? "record" : "clear",
			 a->state == ST_LEADER ? "; trying again" : " (this node no longer leads)");
	if (!ok && a->state == ST_LEADER) {
		a->sync_want_set = true;
		arm(a->sync_ev, a->ttl_ms / 4);
		return;
	}
	if (a->sync_done)
		a->sync_done(a->sync_arg, ok);
}

static void sync_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct arbiter *a = arg;
	if (!a->sync_req && a->sync_want_set)
		send_sync(a);
}

/* If this node's lease still holds the leader key: put sync = sync_want,
 * or delete it. */
static void send_sync(struct arbiter *a)
{
	a->sync_want_set = false;
	char lease[24];
	snprintf(lease, sizeof(lease), "%" PRId64, a->lease);
	char *value = a->sync_want ? b64_encode(a->sync_want) : NULL;
	json_t *op = a->sync_want ? json_pack("{s:{s:s, s:s}}", "request_put", "key", a->sync_key,
					      "value", value ? value : "")
				  : json_pack("{s:{s:s}}", "request_delete_range", "key", a->sync_key);
	json_t *body = json_pack("{s:[{s:s, s:s, s:s, s:s}], s:[o]}", "compare", "key", a->leader_key,
				 "target", "LEASE", "result", "EQUAL", "lease", lease, "success", op);
	free(value);
	struct evhttp_request *req = body ? new_request(a, sync_cb, body) : NULL;
	struct timeval tv = { (time_t)(a->ttl_ms / 1000) + 1, 0 };
	evhttp_connection_set_timeout_tv(a->sync_conn, &tv);
	if (!req || evhttp_make_request(a->sync_conn, req, EVHTTP_REQ_POST, "/v3/kv/txn") < 0) {
		/* req is freed by a failed make_request */
		log_warn("arbiter: out of memory writing the sync key");
		if (a->sync_done)
			a->sync_done(a->sync_arg, false);
		return;
	}
	a->sync_req = req;
}

/* ---- the follower's watch ------------------------------------------------ */

static void stop_watch(struct arbiter *a)
{
	if (a->watch_req) {
		evhttp_cancel_request(a->watch_req);
		a->watch_req = NULL;
	}
}

/* The watch ended (etcd went, a timeout): the poll goes on, and the next
 * read that finds a leader opens another. */
static void watch_done_cb(struct evhttp_request *req, void *arg)
{
	struct arbiter *a = arg;
	a->watch_req = NULL;
}

/* Each message of the stream: once it carries events, read again now. The
 * watch stays open (it may not be cancelled from inside its own callback);
 * it ends when this node leads or stops campaigning. */
static void watch_chunk_cb(struct evhttp_request *req, void *arg)
{
	struct arbiter *a = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *text = (const char *)evbuffer_pullup(in, -1);
	json_t *msg = text ? json_loadb(text, len, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
	evbuffer_drain(in, len);
	log_debug("arbiter: watch: %.*s", (int)len, text ? text : "");
	if (json_array_size(json_object_get(json_object_get(msg, "result"), "events")) &&
	    a->state == ST_CAMPAIGN && !a->req)
		schedule(a, 0);
	json_decref(msg);
}

/* Watches the leader key from revision rev on. */
static void start_watch(struct arbiter *a, int64_t rev)
{
	char from[24];
	snprintf(from, sizeof(from), "%" PRId64, rev);
	struct evhttp_request *req = new_request(
		a, watch_done_cb,
		json_pack("{s:{s:s, s:s}}", "create_request", "key", a->leader_key, "start_revision",
			  from));
	if (!req)
		return;
	evhttp_request_set_chunked_cb(req, watch_chunk_cb);
	if (evhttp_make_request(a->watch_conn, req, EVHTTP_REQ_POST, "/v3/watch") == 0)
		a->watch_req = req;
}

/* ---- the steps ----------------------------------------------------------- */

static void step(struct arbiter *a)
{
	if (a->req)
		return;
	if (a->revoke) {
		send_request(a, REQ_REVOKE, "/v3/lease/revoke", lease_body(a->revoke), a->ttl_ms);
		return;
	}
	switch (a->state) {
	case ST_IDLE:
		return;
	case ST_CAMPAIGN:
		send_request(a, REQ_RANGE, "/v3/kv/range",
			     json_pack("{s:s, s:s}", "key", a->prefix, "range_end", a->prefix_end),
			     a->ttl_ms);
		return;
	case ST_LEADER:
		send_request(a, REQ_KEEPALIVE, "/v3/lease/keepalive", lease_body(a->lease),
			     a->ttl_ms / 3);
		return;
	}
}

static void step_cb(evutil_socket_t fd, short what, void *arg)
{
	step(arg);
}

/* A range answer's kvs (or each of a txn's failure ranges): the leader and
 * the epoch. */
static bool read_kvs(struct arbiter *a, json_t *kvs, bool *has_leader)
{
	size_t i;
	json_t *kv;
	bool ok = true;
	*has_leader = false;
	json_array_foreach(kvs, i, kv) {
		const char *key = json_string_value(json_object_get(kv, "key"));
		const char *v64 = json_string_value(json_object_get(kv, "value"));
		char *value = v64 ? b64_decode(v64) : strdup("");
		if (!key || !value) {
			free(value);
			continue;
		}
		if (!strcmp(key, a->leader_key)) {
			int64_t rev = 0;
			json_i64(kv, "create_revision", &rev);
			*has_leader = true;
			set_leader(a, value, rev);
		} else if (!strcmp(key, a->last_key) || !strcmp(key, a->sync_key)) {
			bool last = !strcmp(key, a->last_key);
			int64_t rev = 0;
			json_i64(kv, "mod_revision", &rev);
			free(last ? a->last : a->sync);
			*(last ? &a->last : &a->sync) = value;
			*(last ? &a->last_mod_rev : &a->sync_mod_rev) = rev;
			continue;
		} else if (!strcmp(key, a->epoch_key)) {
			char *end;
			errno = 0;
			unsigned long long e = strtoull(value, &end, 10);
			int64_t rev;
			if (!*value || *end || errno || !json_i64(kv, "mod_revision", &rev))
				ok = false;
			else {
				a->epoch = e;
				a->epoch_mod_rev = rev;
			}
		}
		free(value);
	}
	return ok;
}

/* Tells of a leader once per term. */
static void report_follower(struct arbiter *a)
{
	if (!a->leader || a->leader_rev == a->reported_rev)
		return;
	a->reported_rev = a->leader_rev;
	log_info("arbiter: %s leads the pair (epoch %" PRIu64 "), this node follows", a->leader,
		 a->epoch);
	if (a->cbs.follower)
		a->cbs.follower(a->arg, a->leader);
}

/* Another node leads, as an answer read at its header's revision says:
 * watch the key from there, poll again later, tell. */
static void follow(struct arbiter *a, json_t *answer)
{
	int64_t rev;
	if (!a->watch_req && json_i64(json_object_get(answer, "header"), "revision", &rev))
		start_watch(a, rev + 1);
	schedule(a, a->ttl_ms / 4);
	report_follower(a);
}

static void forget_successors(struct arbiter *a)
{
	free(a->last);
	free(a->sync);
	a->last = a->sync = NULL;
	a->last_mod_rev = a->sync_mod_rev = 0;
}

/* Whether this node may take the lead: see "Who may campaign" in the
 * header. */
static bool may_lead(struct arbiter *a)
{
	if ((!a->last && !a->sync) || (a->last && !strcmp(a->last, a->node_id)) ||
	    (a->sync && !strcmp(a->sync, a->node_id)))
		return true;
	if (!a->waiting_logged) {
		log_warn("arbiter: no active node, but this node (%s) may not take over: the last "
			 "active was %s and %s; waiting for %s to come back (or for wharfctl promote)",
			 a->node_id, a->last ? a->last : "unknown",
			 a->sync ? "another node was its standby in sync" : "it had no standby in sync",
			 a->last ? a->last : "it");
		a->waiting_logged = true;
	}
	return false;
}

static void on_range(struct arbiter *a, json_t *body)
{
	bool has_leader;
	a->epoch_mod_rev = 0;
	a->epoch = 0;
	forget_successors(a);
	if (!read_kvs(a, json_object_get(body, "kvs"), &has_leader)) {
		on_failure(a, "the epoch key holds no decimal number");
		return;
	}
	answered(a);
	if (has_leader) {
		a->waiting_logged = false;
		follow(a, body);
	} else if (!may_lead(a)) {
		set_leader(a, NULL, 0);
		follow(a, body);
	} else {
		set_leader(a, NULL, 0);
		json_t *grant = json_pack("{s:I}", "TTL", (json_int_t)a->ttl_s);
		send_request(a, REQ_GRANT, "/v3/lease/grant", grant, a->ttl_ms);
		a->grant_ms = a->sent_ms;
	}
}

static void on_txn(struct arbiter *a, json_t *body)
{
	answered(a);
	if (json_is_true(json_object_get(body, "succeeded"))) {
		a->epoch++;
		a->deadline_ms = a->grant_ms + a->ttl_ms - a->ttl_ms / 4;
		int64_t left = a->deadline_ms - clock_mono_ms();
		if (left <= 0) {
			/* Too slow to be safe: give the lead back and try again. */
			log_warn("arbiter: elected after the lease's deadline; giving it back");
			a->revoke = a->lease;
			a->lease = 0;
			schedule(a, 0);
			return;
		}
		a->state = ST_LEADER;
		stop_watch(a);
		set_leader(a, a->node_id, 0);
		arm(a->deadline_ev, left);
		schedule(a, a->grant_ms + a->ttl_ms / 3 - clock_mono_ms());
		log_info("arbiter: this node (%s) leads the pair at epoch %" PRIu64, a->node_id,
			 a->epoch);
		if (a->cbs.elected)
			a->cbs.elected(a->arg, a->epoch);
		return;
	}
	/* Someone was faster: drop our lease, see who leads. */
	a->revoke = a->lease;
	a->lease = 0;
	bool has_leader = false, leader_here;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(body, "responses"), i, r) {
		json_t *kvs = json_object_get(json_object_get(r, "response_range"), "kvs");
		read_kvs(a, kvs, &leader_here);
		has_leader |= leader_here;
	}
	if (has_leader) {
		follow(a, body);
	} else {
		retry_later(a); /* the epoch moved under us: read again */
	}
}

static void on_keepalive(struct arbiter *a, json_t *body)
{
	json_t *result = json_object_get(body, "result");
	int64_t ttl = 0;
	if (!json_is_object(result)) {
		on_failure(a, "an answer with no result");
		return;
	}
	answered(a);
	if (!json_i64(result, "TTL", &ttl) || ttl <= 0) {
		lose(a, "etcd says the lease expired");
		return;
	}
	a->deadline_ms = a->sent_ms + a->ttl_ms - a->ttl_ms / 4;
	int64_t left = a->deadline_ms - clock_mono_ms();
	if (left > 0) /* else the timer set before fires */
		arm(a->deadline_ev, left);
	schedule(a, a->sent_ms + a->ttl_ms / 3 - clock_mono_ms());
	if (a->cbs.renewed)
		a->cbs.renewed(a->arg, a->sent_ms);
}

static void on_answer(struct arbiter *a, int code, json_t *body)
{
	if (a->kind == REQ_REVOKE) {
		/* Revoked, or no such lease (404, grpc NotFound): either way gone. */
		if (code == 200 || code == 404) {
			answered(a);  /* and on with the campaign, if any */
			a->revoke = 0;
			schedule(a, 0);
			return;
		}
	} else if (code == 200) {
		switch (a->kind) {
		case REQ_RANGE:
			on_range(a, body);
			return;
		case REQ_GRANT:
			if (!json_i64(body, "ID", &a->lease) || !a->lease) {
				on_failure(a, "a grant with no lease ID");
				return;
			}
			answered(a);
			send_txn(a);
			return;
		case REQ_TXN:
			on_txn(a, body);
			return;
		case REQ_KEEPALIVE:
			on_keepalive(a, body);
			return;
		case REQ_REVOKE:
			break;
		}
	}
	const char *msg = json_string_value(json_object_get(body, "message"));
	char why[256];
	snprintf(why, sizeof(why), "HTTP %d: %s", code, msg ? msg : "(no message)");
	on_failure(a, why);
}

static void on_failure(struct arbiter *a, const char *why)
{
	fail(a, why);
	if (a->state == ST_LEADER) {
		/* The deadline timer decides when it is too late; try again at the
		 * next keep-alive time. */
		if (a->kind == REQ_KEEPALIVE)
			schedule(a, a->sent_ms + a->ttl_ms / 3 - clock_mono_ms());
		return;
	}
	if (a->kind == REQ_TXN && a->lease) {
		/* The txn may have been applied with its answer lost: revoke the
		 * lease, which deletes the leader key if it went in. */
		a->revoke = a->lease;
		a->lease = 0;
	}
	if (a->state == ST_IDLE) {
		/* A resign's revoke: the lease expires on its own. */
		a->revoke = 0;
		return;
	}
	retry_later(a);
}

/* ---- the API --------------------------------------------------------- */

static char *key_b64(const char *pair, const char *name)
{
	size_t n = strlen(pair) + strlen(name) + 9;
	char *k = malloc(n);
	if (!k)
		return NULL;
	snprintf(k, n, "/wharf/%s/%s", pair, name);
	char *out = b64_encode(k);
	free(k);
	return out;
}

struct arbiter *arbiter_new(struct event_base *base, const char *url, const char *pair,
			    const char *node_id, unsigned lease_ttl_ms, const struct arbiter_cbs *cbs,
			    void *arg)
{
	struct listen_url u;
	const char *why = NULL;
	if (url_parse(url, &u, &why) < 0 || strcmp(u.scheme, "etcd") || !u.port) {
		log_error("arbiter: '%s' is not etcd://HOST:PORT%s%s", url, why ? ": " : "",
			  why ? why : "");
		return NULL;
	}
	if (lease_ttl_ms < 4) {
		log_error("arbiter: lease_ttl of %u ms is too short", lease_ttl_ms);
		return NULL;
	}
	struct arbiter *a = calloc(1, sizeof(*a));
	if (!a)
		goto oom;
	a->base = base;
	a->cbs = *cbs;
	a->arg = arg;
	a->ttl_ms = lease_ttl_ms;
	a->ttl_s = (lease_ttl_ms + 999) / 1000;
	bool v6 = strchr(u.host, ':') != NULL;
	snprintf(a->host_header, sizeof(a->host_header), v6 ? "[%s]:%d" : "%s:%d", u.host, u.port);
	if (url_resolver(base, u.host, &a->dns) < 0) {
		arbiter_free(a);
		return NULL;
	}
	char *prefix = malloc(strlen(pair) + 9);
	if (prefix) {
		sprintf(prefix, "/wharf/%s/", pair);
		a->prefix = b64_encode(prefix);
		prefix[strlen(prefix) - 1]++; /* '/' + 1: the end of the prefix's range */
		a->prefix_end = b64_encode(prefix);
		free(prefix);
	}
	a->url = strdup(url);
	a->node_id = strdup(node_id);
	a->leader_key = key_b64(pair, "leader");
	a->epoch_key = key_b64(pair, "epoch");
	a->last_key = key_b64(pair, "last");
	a->sync_key = key_b64(pair, "sync");
	a->sync_conn = evhttp_connection_base_new(base, a->dns, u.host, (unsigned short)u.port);
	a->conn = evhttp_connection_base_new(base, a->dns, u.host, (unsigned short)u.port);
	a->watch_conn = evhttp_connection_base_new(base, a->dns, u.host, (unsigned short)u.port);
	a->step_ev = evtimer_new(base, step_cb, a);
	a->req_ev = evtimer_new(base, req_timeout_cb, a);
	a->deadline_ev = evtimer_new(base, deadline_cb, a);
	a->sync_ev = evtimer_new(base, sync_retry_cb, a);
	if (!a->prefix || !a->prefix_end || !a->url || !a->node_id || !a->leader_key ||
	    !a->epoch_key || !a->last_key || !a->sync_key || !a->sync_conn || !a->conn || !a->watch_conn || !a->step_ev || !a->req_ev || !a->deadline_ev || !a->sync_ev)
		goto oom;
	return a;
oom:
	log_error("arbiter: out of memory");
	arbiter_free(a);
	return NULL;
}

void arbiter_free(struct arbiter *a)
{
	if (!a)
		return;
	if (a->req_ev)
		cancel_request(a);
	if (a->conn)
		evhttp_connection_free(a->conn);
	if (a->watch_conn)
		evhttp_connection_free(a->watch_conn); /* and its watch, with no callback */
	if (a->sync_conn)
		evhttp_connection_free(a->sync_conn);
	if (a->dns)
		evdns_base_free(a->dns, 0);
	if (a->step_ev)
		event_free(a->step_ev);
	if (a->req_ev)
		event_free(a->req_ev);
	if (a->deadline_ev)
		event_free(a->deadline_ev);
	if (a->sync_ev)
		event_free(a->sync_ev);
	free(a->url);
	free(a->node_id);
	free(a->leader_key);
	free(a->epoch_key);
	free(a->last_key);
	free(a->sync_key);
	forget_successors(a);
	free(a->sync_want);
	free(a->prefix);
	free(a->prefix_end);
	free(a->leader);
	free(a);
}

void arbiter_campaign(struct arbiter *a)
{
	if (a->state != ST_IDLE)
		return;
	a->state = ST_CAMPAIGN;
	set_leader(a, NULL, 0);
	a->backoff_ms = 0;
	if (!a->req)
		schedule(a, 0);
}

void arbiter_resign(struct arbiter *a)
{
	if (a->state == ST_IDLE)
		return;
	if (a->state == ST_LEADER)
		log_info("arbiter: this node (%s) resigns the lead of the pair", a->node_id);
	/* Whatever was in flight (a keep-alive, a txn) is dropped; a lease we
	 * hold, or may hold through a txn in flight, is revoked. */
	cancel_request(a);
	stop_watch(a);
	evtimer_del(a->deadline_ev);
	evtimer_del(a->step_ev);
	if (a->lease) {
		if (a->revoke && a->revoke != a->lease)
			log_debug("arbiter: lease %" PRId64 " left to expire", a->revoke);
		a->revoke = a->lease;
		a->lease = 0;
	}
	a->state = ST_IDLE;
	set_leader(a, NULL, 0);
	a->backoff_ms = 0;
	if (a->revoke)
		schedule(a, 0);
}

void arbiter_set_sync(struct arbiter *a, const char *standby, void (*done)(void *arg, bool ok),
		      void *arg)
{
	char *want = standby ? strdup(standby) : NULL;
	if (standby && !want) {
		log_error("arbiter: out of memory");
		return;
	}
	free(a->sync_want);
	a->sync_want = want;
	a->sync_want_set = true;
	a->sync_done = done;
	a->sync_arg = arg;
	if (!a->sync_req) {
		evtimer_del(a->sync_ev);
		send_sync(a);
	}
}

bool arbiter_is_leader(const struct arbiter *a)
{
	return a->state == ST_LEADER && clock_mono_ms() < a->deadline_ms;
}

uint64_t arbiter_epoch(const struct arbiter *a)
{
	return a->epoch;
}

const char *arbiter_leader(const struct arbiter *a)
{
	return a->leader;
}

bool arbiter_idle(const struct arbiter *a)
{
	return a->state == ST_IDLE && !a->req && !evtimer_pending(a->step_ev, NULL);
}
