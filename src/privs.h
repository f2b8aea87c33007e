/* Running as an unprivileged user: wharfd starts as root to bind ports
 * under 1024 and open its files, then becomes `user` (config `user`,
 * `group`) before it serves anyone. */
#ifndef WHARF_PRIVS_H
#define WHARF_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

/* The uid and gid of `user` and of `group` (NULL: the user's own group).
 * -1 with a message in err when either is unknown. */
int privs_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid, char *err,
		 size_t errlen);

/* While root: takes `user`'s groups and effective ids, so that what the
 * broker makes at start-up (the data directory, journal, lock) is the
 * user's and is checked against the user's rights; privs_resume_root
 * gives root back for binding ports. Nothing to do when not root or
 * without a user (0 then). -1 with a message in err. */
int privs_assume(const char *user, const char *group, char *err, size_t errlen);
/* Undoes privs_assume (the real and saved ids stayed root). */
int privs_resume_root(char *err, size_t errlen);

/* Becomes `user`: its supplementary groups, then gid, then uid, and checks
 * that root cannot be had back. Already running as that user (a restart
 * of a broker that dropped): nothing to do. -1 with a message in err when
 * any step fails; the caller must not go on. */
int privs_drop(const char *user, const char *group, char *err, size_t errlen);

#endif
