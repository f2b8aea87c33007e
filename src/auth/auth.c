#include "config.h"
#include "auth/auth.h"

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "auth/acl.h"
#include "auth/users.h"
#include "log.h"
#include "util/audit.h"
#include "util/clock.h"
#include "util/map.h"
#include "util/wakeup.h"

/* Successful checks remembered at most; past it the cache starts again. */
#define CACHE_MAX 4096
/* Addresses tracked at most; past it idle ones are dropped. */
#define PEERS_MAX 4096
/* At most this many checks of one address wait for the worker at once;
 * its others wait behind them (its peer's held list), so that a flood from
 * one address cannot fill the worker's queue ahead of everyone else. */
#define QUEUED_PER_ADDRESS 4

/* A users file as loaded, shared by the requests checked against it.
 * refs: the authenticator's current one, and each request; loop thread
 * only (the worker reads u, which is immutable). */
struct users_gen {
	struct users *u;
	unsigned long gen;
	unsigned refs;
};

/* Where a request is; changed under a->lock once it is the worker's. */
enum req_state {
	R_HELD,    /* waits for its address's turn (struct peer), on the loop */
	R_QUEUED,  /* waits for the worker */
	R_WORKING, /* the worker checks it */
	R_DONE,    /* checked, in a->done for the loop */
	R_TIMER,   /* answered, the answer waits for its time (ev) */
};

struct auth_request {
	TAILQ_ENTRY(auth_request) link;
	struct auth *a;
	enum req_state state;
	bool cancelled;          /* under a->lock: R_WORKING, R_DONE */
	bool ok, known;          /* the worker's verdict */
	enum auth_result result;
	int64_t start_ms;
	struct users_gen *g;
	char *user;              /* NULL: anonymous */
	char *password;          /* wiped and freed once checked */
	size_t len;
	char proto[16];
	char peer[64];
	const char *why;         /* a refusal's reason when result_text's is not it */
	struct peer *ps;         /* its address's, from R_HELD until the worker is through */
	struct event *ev;
	auth_done_fn done;
	void *arg;
};

TAILQ_HEAD(req_list, auth_request);

/* One client address: its refusals within the window (the throttle) and
 * its checks on their way to the worker (its fair share). Loop thread. */
struct peer {
	int64_t window_start_ms;
	unsigned count;
	bool logged;
	unsigned queued;       /* in a->queue or with the worker */
	struct req_list held;  /* R_HELD: waiting for a place in a->queue */
};

struct auth {
	struct event_base *base;
	char *users_file;
	unsigned delay_ms, max_failures, window_ms;
	struct users_gen *current; /* NULL: authentication off */
	char *acl_file;            /* NULL: no rules */
	struct acl *acl;
	unsigned long next_gen;
	unsigned char cache_key[32];
	struct map *cache;    /* hex HMAC -> generation */
	struct map *peers;    /* host -> struct peer */
	struct wakeup *wake;
	pthread_t worker;
	bool worker_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;                 /* under lock */
	struct req_list queue;     /* under lock: for the worker */
	struct req_list done;      /* under lock: for the loop */
};

/* ---- users generations --------------------------------------------------- */

static void gen_put(struct users_gen *g)
{
	if (g && --g->refs == 0) {
		users_free(g->u);
		free(g);
	}
}

static int load_users(struct auth *a, char *err, size_t errlen)
{
	struct users *u = users_load(a->users_file, err, errlen);
	struct users_gen *g = u ? calloc(1, sizeof(*g)) : NULL;
	if (!g) {
		if (u) {
			users_free(u);
			snprintf(err, errlen, "%s: out of memory", a->users_file);
		}
		return -1;
	}
	g->u = u;
	g->gen = ++a->next_gen;
	g->refs = 1;
	gen_put(a->current);
	a->current = g;
	return 0;
}

/* ---- the cache of successful checks ------------------------------------- */

/* The cache key of user and password: hex HMAC-SHA256(user NUL password). */
static int cache_key(const struct auth *a, const char *user, const char *pw, size_t len,
		     char hex[65])
{
	size_t ulen = strlen(user);
	unsigned char *data = malloc(ulen + 1 + len), mac[32];
	unsigned maclen = 0;
	if (!data)
		return -1;
	memcpy(data, user, ulen + 1);
	memcpy(data + ulen + 1, pw, len);
	unsigned char *res = HMAC(EVP_sha256(), a->cache_key, sizeof(a->cache_key), data,
				  ulen + 1 + len, mac, &maclen);
	OPENSSL_cleanse(data, ulen + 1 + len);
	free(data);
	if (!res || maclen != sizeof(mac))
		return -1;
	for (size_t i = 0; i < sizeof(mac); i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	return 0;
}

static bool cache_hit(const struct auth *a, const struct auth_request *r)
{
	char hex[65];
	if (cache_key(a, r->user, r->password, r->len, hex) < 0)
		return false;
	return (uintptr_t)map_get(a->cache, hex) == a->current->gen;
}

static void cache_add(struct auth *a, const struct auth_request *r)
{
	char hex[65];
	if (r->g != a->current || cache_key(a, r->user, r->password, r->len, hex) < 0)
		return;
	if (map_count(a->cache) >= CACHE_MAX) {
		struct map *fresh = map_new();
		if (!fresh)
			return;
		map_free(a->cache);
		a->cache = fresh;
	}
	map_put(a->cache, hex, (void *)(uintptr_t)r->g->gen);
}

/* ---- the throttle -------------------------------------------------------- */

void auth_peer_host(const char *peer, char *buf, size_t len)
{
	const char *end = strrchr(peer, ':');
	size_t n = end ? (size_t)(end - peer) : strlen(peer);
	if (n >= 2 && peer[0] == '[' && peer[n - 1] == ']') {
		peer++;
		n -= 2;
	}
	snprintf(buf, len, "%.*s", (int)n, peer);
}

struct prune_ctx {
	const struct auth *a;
	struct map *keep;
	int64_t now;
};

/* Keeps an address still in its window or with checks on their way;
 * frees the others. */
static void prune(const char *k, void *v, void *arg)
{
	struct prune_ctx *ctx = arg;
	struct peer *f = v;
	bool busy = f->queued || !TAILQ_EMPTY(&f->held);
	if ((busy || ctx->now - f->window_start_ms < ctx->a->window_ms) &&
	    map_put(ctx->keep, k, f) == 0)
		return;
	free(f);
}

/* The address's record, its window restarted if it is over; NULL when
 * it has none (create: make one). */
static struct peer *peer_of(struct auth *a, const char *peer, bool create, int64_t now)
{
	char host[64];
	auth_peer_host(peer, host, sizeof(host));
	struct peer *f = map_get(a->peers, host);
	if (f && now - f->window_start_ms >= a->window_ms) {
		f->window_start_ms = now;
		f->count = 0;
		f->logged = false;
	}
	if (f || !create)
		return f;
	if (map_count(a->peers) >= PEERS_MAX) {
		/* Only idle addresses whose window is over are dropped:
		 * forgetting one still counting would lift its throttle. */
		struct map *keep = map_new();
		if (!keep)
			return NULL;
		struct prune_ctx ctx = { a, keep, now };
		map_each(a->peers, prune, &ctx);
		map_free(a->peers);
		a->peers = keep;
	}
	if (!(f = calloc(1, sizeof(*f))) || map_put(a->peers, host, f) < 0) {
		free(f);
		return NULL;
	}
	f->window_start_ms = now;
	TAILQ_INIT(&f->held);
	return f;
}

static bool throttled(struct auth *a, const struct auth_request *r, int64_t now)
{
	if (!a->max_failures)
		return false;
	struct peer *f = peer_of(a, r->peer, false, now);
	if (!f || f->count < a->max_failures)
		return false;
	if (!f->logged) {
		char host[64];
		auth_peer_host(r->peer, host, sizeof(host));
		log_warn("auth: %s: %u failures within %u ms: its logins are refused unchecked until the window ends (logged once per window)",
			 host, f->count, a->window_ms);
		f->logged = true;
	}
	return true;
}

static void note_failure(struct auth *a, const struct auth_request *r, int64_t now)
{
	if (!a->max_failures)
		return;
	struct peer *f = peer_of(a, r->peer, true, now);
	if (!f)
		return;
	if (f->count++ == 0)
		f->window_start_ms = now; /* the window starts with the first refusal */
}

/* ---- the worker's queue, shared fairly among addresses ------------------- */

static void to_worker(struct auth *a, struct auth_request *r)
{
	if (r->ps)
		r->ps->queued++;
	pthread_mutex_lock(&a->lock);
	r->state = R_QUEUED;
	TAILQ_INSERT_TAIL(&a->queue, r, link);
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

/* r goes to the worker, or waits behind its address's checks already
 * there. */
static void enqueue(struct auth *a, struct auth_request *r)
{
	r->ps = peer_of(a, r->peer, true, r->start_ms);
	if (r->ps && r->ps->queued >= QUEUED_PER_ADDRESS) {
		r->state = R_HELD;
		TAILQ_INSERT_TAIL(&r->ps->held, r, link);
		return;
	}
	to_worker(a, r);
}

/* r is off the worker's queue (checked, or cancelled there): the next
 * held check of its address takes its place. */
static void release(struct auth *a, struct auth_request *r)
{
	struct peer *ps = r->ps;
	r->ps = NULL;
	if (!ps)
		return;
	ps->queued--;
	struct auth_request *next = TAILQ_FIRST(&ps->held);
	if (next) {
		TAILQ_REMOVE(&ps->held, next, link);
		to_worker(a, next);
	}
}

/* ---- answers ------------------------------------------------------------- */

static void req_free(struct auth_request *r)
{
	if (r->password) {
		OPENSSL_cleanse(r->password, r->len);
		free(r->password);
	}
	if (r->ev)
		event_free(r->ev);
	gen_put(r->g);
	free(r->user);
	free(r);
}

static const char *result_text(enum auth_result res, bool known)
{
	switch (res) {
	case AUTH_OK: return "accepted";
	case AUTH_BAD_CREDENTIALS: return known ? "wrong password" : "unknown user";
	case AUTH_NO_ANONYMOUS: return "anonymous login not allowed on this listener";
	case AUTH_THROTTLED: return "too many failures from this address";
	case AUTH_LIMITED: return "a connection limit reached";
	case AUTH_ERROR: break;
	}
	return "out of memory";
}

/* Why r was refused, as the log and the asker are told. */
static const char *refusal(const struct auth_request *r)
{
	return r->why ? r->why : result_text(r->result, r->known);
}

static void answer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_request *r = arg;
	(void)fd;
	(void)what;
	r->done(r->arg, r->result, r->result == AUTH_OK ? NULL : refusal(r));
	req_free(r);
}

/* A user name as it may go into a log line: what a client sent, so at
 * most 128 bytes and every byte outside printable ASCII as '?' (no line
 * of its making in the log). */
static void loggable(const char *user, char *buf, size_t cap)
{
	size_t n = 0;
	for (; user[n] && n < cap - 1 && n < 128; n++)
		buf[n] = user[n] > ' ' && user[n] < 0x7f ? user[n] : '?';
	buf[n] = '\0';
}

/* The verdict is in: logged, counted, and answered from the loop, a
 * refusal failure_delay after the request came. */
static void finish(struct auth_request *r, enum auth_result res)
{
	struct auth *a = r->a;
	int64_t now = clock_mono_ms();
	r->result = res;
	r->state = R_TIMER;
	if (r->password) {
		OPENSSL_cleanse(r->password, r->len);
		free(r->password);
		r->password = NULL;
	}
	char who[132] = "(anonymous)";
	if (r->user)
		loggable(r->user, who, sizeof(who));
	int64_t wait = 0;
	if (res == AUTH_OK) {
		log_debug("auth: %s %s: user %s authenticated", r->proto, r->peer, who);
	} else {
		log_info("auth: %s %s: user %s refused: %s", r->proto, r->peer, who, refusal(r));
		if (res != AUTH_THROTTLED && res != AUTH_ERROR)
			note_failure(a, r, now);
		wait = r->start_ms + a->delay_ms - now;
		if (wait < 0)
			wait = 0;
	}
	struct timeval tv = { wait / 1000, (wait % 1000) * 1000 };
	if (evtimer_add(r->ev, &tv) < 0)
		event_active(r->ev, EV_TIMEOUT, 0);
}

/* The worker reported: each checked request is answered. */
static void worker_done(void *arg)
{
	struct auth *a = arg;
	struct req_list done = TAILQ_HEAD_INITIALIZER(done);
	pthread_mutex_lock(&a->lock);
	TAILQ_CONCAT(&done, &a->done, link);
	pthread_mutex_unlock(&a->lock);
	struct auth_request *r;
	while ((r = TAILQ_FIRST(&done))) {
		TAILQ_REMOVE(&done, r, link);
		release(a, r);
		if (r->cancelled) {
			req_free(r);
			continue;
		}
		if (r->ok)
			cache_add(a, r);
		finish(r, r->ok ? AUTH_OK : AUTH_BAD_CREDENTIALS);
	}
}

static void *worker_main(void *arg)
{
	struct auth *a = arg;
	pthread_mutex_lock(&a->lock);
	for (;;) {
		while (!a->stop && TAILQ_EMPTY(&a->queue))
			pthread_cond_wait(&a->cond, &a->lock);
		if (a->stop)
			break;
		struct auth_request *r = TAILQ_FIRST(&a->queue);
		TAILQ_REMOVE(&a->queue, r, link);
		r->state = R_WORKING;
		pthread_mutex_unlock(&a->lock);
		/* users_verify takes the hash's time for an unknown name too. */
		bool ok = users_verify(r->g->u, r->user, r->password, r->len);
		bool known = users_exists(r->g->u, r->user);
		pthread_mutex_lock(&a->lock);
		r->ok = ok;
		r->known = known;
		r->state = R_DONE;
		TAILQ_INSERT_TAIL(&a->done, r, link);
		wakeup_post(a->wake);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* ---- the interface ------------------------------------------------------- */

struct auth *auth_new(struct event_base *base, const struct auth_options *o, char *err,
		      size_t errlen)
{
	struct auth *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->base = base;
	a->delay_ms = o->failure_delay_ms;
	a->max_failures = o->max_failures;
	a->window_ms = o->window_ms;
	TAILQ_INIT(&a->queue);
	TAILQ_INIT(&a->done);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->cache = map_new();
	a->peers = map_new();
	if (!a->cache || !a->peers || RAND_bytes(a->cache_key, sizeof(a->cache_key)) != 1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (o->acl_file && (!(a->acl_file = strdup(o->acl_file)) ||
			    !(a->acl = acl_load(a->acl_file, err, errlen)))) {
		if (!a->acl_file)
			snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!o->users_file)
		return a;
	if (!(a->users_file = strdup(o->users_file))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (load_users(a, err, errlen) < 0)
		goto fail;
	if (!(a->wake = wakeup_new(base, worker_done, a))) {
		snprintf(err, errlen, "cannot make the authenticator's pipe");
		goto fail;
	}
	if (pthread_create(&a->worker, NULL, worker_main, a) != 0) {
		snprintf(err, errlen, "cannot start the authenticator's thread");
		goto fail;
	}
	a->worker_started = true;
	return a;
fail:
	auth_free(a);
	return NULL;
}

static void free_peer(const char *k, void *v, void *arg)
{
	struct peer *ps = v;
	struct auth_request *r;
	(void)k;
	(void)arg;
	while ((r = TAILQ_FIRST(&ps->held))) {
		TAILQ_REMOVE(&ps->held, r, link);
		req_free(r);
	}
	free(ps);
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	if (a->worker_started) {
		pthread_mutex_lock(&a->lock);
		a->stop = true;
		pthread_cond_signal(&a->cond);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->worker, NULL);
	}
	struct auth_request *r;
	while ((r = TAILQ_FIRST(&a->queue))) {
		TAILQ_REMOVE(&a->queue, r, link);
		req_free(r);
	}
	while ((r = TAILQ_FIRST(&a->done))) {
		TAILQ_REMOVE(&a->done, r, link);
		req_free(r);
	}
	wakeup_free(a->wake);
	gen_put(a->current);
	acl_free(a->acl);
	free(a->acl_file);
	map_free(a->cache);
	if (a->peers) {
		map_each(a->peers, free_peer, NULL);
		map_free(a->peers);
	}
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	OPENSSL_cleanse(a->cache_key, sizeof(a->cache_key));
	free(a->users_file);
	free(a);
}

bool auth_enabled(const struct auth *a)
{
	return a && a->current;
}

const struct acl *auth_acl(const struct auth *a)
{
	return a ? a->acl : NULL;
}

const struct users *auth_users(const struct auth *a)
{
	return a && a->current ? a->current->u : NULL;
}

/* A reload of `file`, audited: `count` of what it holds now under
 * `counted` ("rules", "users"), or the reason the old stays. */
static void audit_reload(const char *event, const char *file, const char *reason,
			 const char *counted, size_t count, json_t *detail)
{
	if (!audit_on()) {
		json_decref(detail);
		return;
	}
	if (!detail)
		detail = json_object();
	json_object_set_new(detail, "file", json_string(file));
	if (!reason)
		json_object_set_new(detail, counted, json_integer((json_int_t)count));
	audit_event(&(struct audit_record){ .event = event, .reason = reason, .detail = detail });
}

static int reload_acl(struct auth *a)
{
	if (!a->acl_file)
		return 0;
	char err[512];
	struct acl *acl = acl_load(a->acl_file, err, sizeof(err));
	if (!acl) {
		log_error("acl: rules not reloaded, the old rules stay: %s", err);
		audit_reload("config_reload", a->acl_file, err, NULL, 0, NULL);
		return -1;
	}
	acl_free(a->acl);
	a->acl = acl;
	log_info("acl: %s reloaded: %zu rules", a->acl_file, acl_count(acl));
	audit_reload("config_reload", a->acl_file, NULL, "rules", acl_count(acl), NULL);
	return 0;
}

static void add_change(const char *name, enum users_change what, void *arg)
{
	static const char *const keys[] = { "added", "removed", "changed" };
	json_array_append_new(json_object_get(arg, keys[what]), json_string(name));
}

/* {"added": [...], "removed": [...], "changed": [...]}: user names. */
static json_t *users_changes(const struct users *before, const struct users *now)
{
	json_t *d = json_pack("{s:[],s:[],s:[]}", "added", "removed", "changed");
	if (d)
		users_diff(before, now, add_change, d);
	return d;
}

int auth_reload(struct auth *a)
{
	int rc = reload_acl(a);
	if (!a->users_file)
		return rc;
	char err[512];
	struct users_gen *before = a->current;
	before->refs++;
	if (load_users(a, err, sizeof(err)) < 0) {
		log_error("auth: users file not reloaded, the old users stay: %s", err);
		audit_reload("user_change", a->users_file, err, NULL, 0, NULL);
		gen_put(before);
		return -1;
	}
	struct map *fresh = map_new();
	if (fresh) { /* the old generation's entries can never hit again */
		map_free(a->cache);
		a->cache = fresh;
	}
	size_t n = users_count(a->current->u);
	log_info("auth: users file %s reloaded: %zu users", a->users_file, n);
	audit_reload("user_change", a->users_file, NULL, "users", n,
		     audit_on() ? users_changes(before->u, a->current->u) : NULL);
	gen_put(before);
	return rc;
}

static struct auth_request *req_new(struct auth *a, const char *proto, const char *peer,
				     auth_done_fn done, void *arg)
{
	struct auth_request *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->a = a;
	r->done = done;
	r->arg = arg;
	r->start_ms = clock_mono_ms();
	snprintf(r->proto, sizeof(r->proto), "%s", proto);
	snprintf(r->peer, sizeof(r->peer), "%s", peer);
	if (!(r->ev = evtimer_new(a->base, answer_cb, r))) {
		free(r);
		return NULL;
	}
	return r;
}

struct auth_request *auth_request(struct auth *a, const char *proto, const char *peer,
				  const char *user, const char *password, size_t len,
				  bool allow_anonymous, auth_done_fn done, void *arg)
{
	struct auth_request *r = req_new(a, proto, peer, done, arg);
	if (!r)
		return NULL;
	if ((user && !(r->user = strdup(user))) ||
	    (user && !(r->password = malloc(len ? len : 1)))) {
		req_free(r);
		return NULL;
	}
	if (user)
		memcpy(r->password, password, len);
	r->len = len;
	if (!a->current) {
		/* Authentication off: anyone, as anonymous (nothing validated). */
		finish(r, AUTH_OK);
		return r;
	}
	if (throttled(a, r, r->start_ms)) {
		finish(r, AUTH_THROTTLED);
		return r;
	}
	if (!user) {
		finish(r, allow_anonymous ? AUTH_OK : AUTH_NO_ANONYMOUS);
		return r;
	}
	if (cache_hit(a, r)) {
		r->known = true;
		finish(r, AUTH_OK);
		return r;
	}
	r->g = a->current;
	r->g->refs++;
	enqueue(a, r);
	return r;
}

struct auth_request *auth_request_cert(struct auth *a, const char *proto, const char *peer,
				       const char *cert_user, const char *login, auth_done_fn done,
				       void *arg)
{
	struct auth_request *r = req_new(a, proto, peer, done, arg);
	const char *named = cert_user ? cert_user : login;
	if (!r)
		return NULL;
	if (named && !(r->user = strdup(named))) {
		req_free(r);
		return NULL;
	}
	if (!cert_user)
		r->why = "the certificate names no user of the listener's cert_identity";
	else if (login && strcmp(login, cert_user))
		r->why = "the login is not the certificate's user";
	else if (a->current && !users_exists(a->current->u, cert_user))
		r->why = "the certificate's user is not in the users file";
	if (r->why || (a->current && throttled(a, r, r->start_ms))) {
		finish(r, r->why ? AUTH_BAD_CREDENTIALS : AUTH_THROTTLED);
		return r;
	}
	r->known = true;
	finish(r, AUTH_OK);
	return r;
}

void auth_cancel(struct auth_request *r)
{
	if (!r)
		return;
	struct auth *a = r->a;
	/* The state is read under the lock: the worker moves R_QUEUED on. */
	pthread_mutex_lock(&a->lock);
	enum req_state st = r->state;
	if (st == R_QUEUED)
		TAILQ_REMOVE(&a->queue, r, link);
	else if (st == R_WORKING || st == R_DONE)
		r->cancelled = true; /* worker_done frees it */
	pthread_mutex_unlock(&a->lock);
	switch (st) {
	case R_HELD:
		TAILQ_REMOVE(&r->ps->held, r, link);
		req_free(r);
		break;
	case R_QUEUED:
		release(a, r);
		req_free(r);
		break;
	case R_TIMER:
		req_free(r); /* event_free deletes the pending answer */
		break;
	case R_WORKING:
	case R_DONE:
		break;
	}
}
