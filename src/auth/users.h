/* The users file ([auth] users_file): who may log in, with what password,
 * in which groups. One user per line,
 *     NAME:HASH[:GROUP,GROUP...]
 * `#` comments and blank lines allowed. HASH is a PHC string (the format
 * of passlib and argon2's tools) of scrypt:
 *     $scrypt$ln=LOG2N,r=R,p=P$SALT$KEY    (SALT, KEY: base64, no padding)
 * A file holds no password, only what checks one; it is written by
 * `wharfctl user` and read at start-up and on SIGHUP.
 *
 * Pure apart from users_load's read of the file; users_verify costs what
 * the hash says (tens of milliseconds at the default): callers keep it off
 * the event loop (auth/auth.h). Any thread; a struct users is immutable
 * once loaded. */
#ifndef WHARF_AUTH_USERS_H
#define WHARF_AUTH_USERS_H

#include <stdbool.h>
#include <stddef.h>

struct users;

/* The scrypt cost new hashes get: N = 2^14, r = 8, p = 1 (16 MiB, about
 * 40 ms on one core), OWASP's floor for scrypt. */
#define USERS_DEFAULT_LOG2N 14
#define USERS_MAX_LOG2N 20

/* Loads `path`. NULL with "FILE:LINE: message" in err on a mistake, or
 * "FILE: reason" when it cannot be read. Free with users_free. */
struct users *users_load(const char *path, char *err, size_t errlen);
/* Parses text as a users file named `name` (tests, wharfctl). */
struct users *users_parse(const char *name, const char *text, char *err, size_t errlen);
void users_free(struct users *u);

size_t users_count(const struct users *u);
/* Whether `name` is a user (no password check). */
bool users_exists(const struct users *u, const char *name);
/* Whether `name` is in `group`. */
bool users_in_group(const struct users *u, const char *name, const char *group);
enum users_change { USERS_ADDED, USERS_REMOVED, USERS_CHANGED };
/* What changed from `before` to `now` (a reload), name by name: fn is
 * called for each user of now not in before (added), of before not in
 * now (removed), and in both with another hash or other groups (changed),
 * in no particular order. Names only: the hashes stay here. */
void users_diff(const struct users *before, const struct users *now,
		void (*fn)(const char *name, enum users_change what, void *arg), void *arg);
/* Checks name's password: true only when the user exists and the
 * password matches its hash. Takes the hash's time whether or not the
 * user exists, so that a caller cannot tell which is which by timing. */
bool users_verify(const struct users *u, const char *name, const char *password, size_t len);

/* A new PHC scrypt hash of password with a random salt, at cost 2^log2n;
 * malloc'd, NULL on failure (out of memory, or log2n out of 10..20). */
char *users_hash(const char *password, size_t len, unsigned log2n);
/* Checks password against one PHC hash; false on a malformed hash. */
bool users_hash_check(const char *hash, const char *password, size_t len);
/* Whether `name` can be a user name: 1 to 128 bytes of printable ASCII
 * without ':', '#' or spaces (they separate fields in the file). */
bool users_name_valid(const char *name);

#endif
