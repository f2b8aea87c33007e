/* The broker's authenticator ([auth], docs/security.md): checks a
 * client's user name and password against the users file (auth/users.h)
 * for every protocol's handshake.
 *
 * Threads: auth_new, auth_request, auth_cancel, auth_reload and auth_free
 * run on the event loop. Password hashes are checked on ONE worker thread
 * of the authenticator's own (scrypt costs tens of milliseconds: never on
 * the loop); it reports back through util/wakeup, and every answer is
 * given on the loop, never inside the auth_request call that asked.
 *
 * Answers: a success from the cache of recent successful checks (an
 * HMAC-SHA256 under a random per-process key of user NUL password, valid
 * for the users file's generation it was made with) comes on the next loop
 * pass without hashing; a refusal always comes failure_delay after the
 * request, whatever its reason, so that timing tells nothing. An address
 * with max_failures_per_address refusals within failure_window is refused
 * without a check (and still after the delay) until its window ends. At
 * most a few checks of one address wait for the worker at once, the rest
 * behind them: a flood from one address does not queue ahead of others.
 * Refusals are logged at info (protocol, address, user, reason; never the
 * password), successes at debug. */
#ifndef WHARF_AUTH_AUTH_H
#define WHARF_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct auth;
struct acl;
struct users;
struct auth_request;

enum auth_result {
	AUTH_OK,
	AUTH_BAD_CREDENTIALS, /* unknown user or wrong password */
	AUTH_NO_ANONYMOUS,    /* no user name on a listener without allow_anonymous */
	AUTH_THROTTLED,       /* too many failures from the address lately */
	AUTH_ERROR,           /* out of memory */
	AUTH_LIMITED,         /* a connection limit (net/limits.h): conn_refusal says which */
};

struct auth_options {
	const char *users_file;  /* NULL: authentication off, every login accepted */
	unsigned failure_delay_ms;
	unsigned max_failures;   /* per address within window_ms; 0: no throttle */
	unsigned window_ms;
	const char *acl_file;    /* NULL: no rules, everything allowed (auth/acl.h) */
};

/* Loop thread. Loads the users file (if any) and starts the worker. NULL
 * with the reason ("FILE:LINE: message") in err. Free with auth_free. */
struct auth *auth_new(struct event_base *base, const struct auth_options *o, char *err,
		      size_t errlen);
/* Loop thread, after every request is answered or cancelled (the broker
 * frees its connections first). Stops and joins the worker. NULL: no-op. */
void auth_free(struct auth *a);
/* Whether a users file is configured (authentication on). */
bool auth_enabled(const struct auth *a);
/* SIGHUP: loads the users file and the acl_file again, each on its own.
 * On a mistake in one the old users (or rules) stay and the error
 * (FILE:LINE) is logged; checks in flight finish with the users they
 * started with. Each reload is audited (util/audit.h): user_change with
 * the names of the users added, removed and changed (never a hash),
 * config_reload for the rules; a failed one with its reason. 0, or -1
 * when old users or rules were kept. */
int auth_reload(struct auth *a);

/* The rules of the acl_file (NULL: none, everything allowed) and the
 * users (NULL: authentication off) as loaded now; both change at
 * auth_reload, which frees the old ones: callers take them again after
 * it (the broker hands them to the router). */
const struct acl *auth_acl(const struct auth *a);
const struct users *auth_users(const struct auth *a);

/* Called on the loop with the answer; `arg` is the caller's; `reason`
 * (NULL for AUTH_OK) says why a refusal, as the log does ("wrong
 * password", "unknown user", ...), valid during the call. The request is
 * freed by the authenticator right after done returns. */
typedef void (*auth_done_fn)(void *arg, enum auth_result r, const char *reason);

/* Loop thread. Asks whether `user` (NULL: anonymous, no password) may log
 * in with `password` (len bytes, any bytes) from `peer` ("HOST:PORT") over
 * `proto`; `allow_anonymous` is the listener's. Copies every argument.
 * The request belongs to the authenticator: the caller keeps the pointer
 * only to cancel it, and must not use it after done ran or after
 * auth_cancel. NULL on out of memory (done is then never called). */
struct auth_request *auth_request(struct auth *a, const char *proto, const char *peer,
				  const char *user, const char *password, size_t len,
				  bool allow_anonymous, auth_done_fn done, void *arg);
/* Loop thread. Like auth_request for a client whose verified TLS
 * certificate names `cert_user` (NULL: the certificate names none of the
 * listener's cert_identity kind: refused). No password: the certificate
 * is the proof. `login` (NULL: none given) must be cert_user; with a
 * users file cert_user must be in it. Refusals come after the failure
 * delay and count towards the throttle, as wrong passwords do. */
struct auth_request *auth_request_cert(struct auth *a, const char *proto, const char *peer,
				       const char *cert_user, const char *login, auth_done_fn done,
				       void *arg);
/* Loop thread. The asker goes away: done will not be called; the
 * authenticator frees the request (now, or when the worker is through
 * with it). NULL is a no-op. */
void auth_cancel(struct auth_request *r);

/* The address part of a peer "HOST:PORT" or "[V6]:PORT" into buf: what
 * the throttle counts failures by. */
void auth_peer_host(const char *peer, char *buf, size_t len);

#endif
